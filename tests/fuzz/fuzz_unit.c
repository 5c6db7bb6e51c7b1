/*
 * fuzz_unit.c: a whole unit directory through the real loader.
 *
 * The input is a directory written out as text: each line "== NAME" starts
 * a file called NAME (its bytes are everything up to the next such line);
 * bytes before the first one, if any, go to "a.service". "== NAME/" makes
 * a directory, "== NAME -> TARGET" a symlink (TARGET in the directory, or
 * "." or ".."), and "== NAME !0666" a file of that mode (arbord run as
 * root refuses unit files others may write). The files are written to a
 * scratch directory, which unit_load_dir() then reads, parses (inih, the
 * line reader, every key parser: durations, ExecStart= quoting,
 * Environment=, ...) and validates (names, Children=, cycles, the tree).
 * Files whose names are not NAME.service or NAME.supervisor are only read
 * through EnvironmentFile=: the scratch directory is also open as fd 200,
 * so EnvironmentFile=/proc/self/fd/200/NAME reaches them, and env_build()
 * reads them for every service of a valid set, as arbord does at start.
 *
 * Checks: the result agrees with the diagnostics, every diagnostic is
 * printable, the set is sorted and every unit in it is well formed, a
 * unit's content hash is FNV-1a of its file, a valid set builds a tree
 * with every unit in it exactly once and the settings of its file, the
 * tree prints one line per node, env_build() gives every variable once
 * (with LISTEN_FDNAMES= the names it was given, in order), and loading
 * the same directory again gives the same result.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "os/env.h"
#include "unit/unit.h"

#define FILES_MAX 32
#define FILE_NAME_MAX 200
#define DIR_FD 200
#define DIR_FD_PREFIX "/proc/self/fd/200/"

static const char *dir;

enum input_kind { INPUT_FILE, INPUT_DIR, INPUT_LINK };

struct input_file {
    char name[FILE_NAME_MAX + 1];
    enum input_kind kind;
    char target[FILE_NAME_MAX + 1]; /* INPUT_LINK */
    int mode;                       /* INPUT_FILE: -1 for 0644 */
    const uint8_t *data;
    size_t len;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dir = fuzz_scratch_dir("unit");
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fcntl(DIR_FD, F_GETFD) >= 0 || dup2(fd, DIR_FD) != DIR_FD) {
        fprintf(stderr, "fuzz_unit: cannot open the scratch directory as fd %d\n", DIR_FD);
        abort();
    }
    close(fd);
    return 0;
}

/* A name from the "== " line, in `out`: '/' and NUL become '_'. */
static void input_name(char *out, const uint8_t *text, size_t len, bool link_target)
{
    if (len > FILE_NAME_MAX)
        len = FILE_NAME_MAX;
    for (size_t i = 0; i < len; i++)
        out[i] = text[i] == '/' || text[i] == '\0' ? '_' : (char)text[i];
    out[len] = '\0';
    if (!*out || (!link_target && (!strcmp(out, ".") || !strcmp(out, ".."))))
        strcpy(out, "_");
}

/* "== NAME", "== NAME/" (a directory), "== NAME -> TARGET" (a symlink to
 * TARGET, in the directory: no '/'), "== NAME !MODE" (MODE octal). */
static void input_header(struct input_file *f, const uint8_t *text, size_t len)
{
    const uint8_t *arrow = memmem(text, len, " -> ", 4);

    f->kind = INPUT_FILE;
    f->mode = -1;
    if (arrow) {
        f->kind = INPUT_LINK;
        size_t tlen = len - (size_t)(arrow + 4 - text);
        input_name(f->target, arrow + 4, tlen, true);
        len = (size_t)(arrow - text);
    } else {
        size_t digits = 0;
        while (digits < len && digits < 4 && text[len - 1 - digits] >= '0' &&
               text[len - 1 - digits] <= '7')
            digits++;
        if (digits > 0 && len >= digits + 2 && !memcmp(text + len - digits - 2, " !", 2)) {
            f->mode = 0;
            for (size_t i = len - digits; i < len; i++)
                f->mode = f->mode * 8 + (text[i] - '0');
            len -= digits + 2;
        }
        if (len > 0 && text[len - 1] == '/') {
            f->kind = INPUT_DIR;
            len--;
        }
    }
    input_name(f->name, text, len, false);
}

static size_t input_split(const uint8_t *data, size_t size, struct input_file *files)
{
    size_t n = 0, pos = 0;
    struct input_file *cur = &files[n++];

    strcpy(cur->name, "a.service");
    cur->kind = INPUT_FILE;
    cur->mode = -1;
    cur->data = data;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        if (end - pos >= 3 && !memcmp(data + pos, "== ", 3) && n < FILES_MAX) {
            cur->len = (size_t)(data + pos - cur->data);
            cur = &files[n++];
            input_header(cur, data + pos + 3, end - pos - 3);
            cur->data = data + (nl ? end + 1 : end);
        }
        pos = nl ? end + 1 : size;
    }
    cur->len = (size_t)(data + size - cur->data);
    return n;
}

/* Make one entry of the input in the scratch directory. */
static void input_write(const struct input_file *f)
{
    char *path;
    FUZZ_CHECK(asprintf(&path, "%s/%s", dir, f->name) > 0);
    if (f->kind == INPUT_DIR) {
        FUZZ_CHECK(mkdir(path, 0755) == 0);
    } else if (f->kind == INPUT_LINK) {
        FUZZ_CHECK(symlink(f->target, path) == 0);
    } else {
        fuzz_write_file(path, f->data, f->len);
        if (f->mode >= 0)
            FUZZ_CHECK(chmod(path, (mode_t)f->mode) == 0);
    }
    free(path);
}

static uint64_t fnv1a(const uint8_t *data, size_t len)
{
    uint64_t hash = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ data[i]) * 1099511628211ull;
    return hash;
}

static bool diag_says(const struct diagnostics *diag, const char *path, const char *text)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < diag->count; i++)
        if (!strncmp(diag->messages[i], path, plen) && strstr(diag->messages[i] + plen, text))
            return true;
    return false;
}

static bool env_name_valid(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static void check_unit(const struct unit *u, const struct input_file *files, size_t n_files,
                       const struct diagnostics *diag)
{
    FUZZ_CHECK(unit_name_valid(u->name));
    FUZZ_CHECK(u->kind == NODE_SERVICE || u->kind == NODE_SUPERVISOR);
    const char *suffix = u->kind == NODE_SERVICE ? ".service" : ".supervisor";
    size_t dlen = strlen(dir), nlen = strlen(u->name);
    FUZZ_CHECK(!strncmp(u->path, dir, dlen) && u->path[dlen] == '/');
    FUZZ_CHECK(!strncmp(u->path + dlen + 1, u->name, nlen));
    FUZZ_CHECK(!strcmp(u->path + dlen + 1 + nlen, suffix));

    /* reload compares files by this hash; a file given up on is partly read. */
    for (size_t i = 0; i < n_files; i++) {
        if (strcmp(files[i].name, u->path + dlen + 1) != 0)
            continue;
        if (files[i].kind == INPUT_FILE && !diag_says(diag, u->path, ": too many errors"))
            FUZZ_CHECK(u->content_hash == fnv1a(files[i].data, files[i].len));
        break;
    }

    FUZZ_CHECK(u->config.restart >= 0 && u->config.restart < RESTART_MAX);
    FUZZ_CHECK(u->config.strategy >= 0 && u->config.strategy < STRATEGY_MAX);
    FUZZ_CHECK(u->config.auto_shutdown >= 0 && u->config.auto_shutdown < AUTO_SHUTDOWN_MAX);
    FUZZ_CHECK(u->config.type >= 0 && u->config.type < SERVICE_TYPE_MAX);
    FUZZ_CHECK(u->config.kill_signal >= 1 && u->config.kill_signal <= 64);
    FUZZ_CHECK(u->config.shutdown >= 0 || u->config.shutdown == DURATION_INFINITY);
    FUZZ_CHECK(u->config.start_timeout > 0 || u->config.start_timeout == DURATION_INFINITY);
    FUZZ_CHECK(u->config.watchdog >= 0);
    FUZZ_CHECK(u->config.period >= 0);
    FUZZ_CHECK(u->config.intensity >= 0);
    FUZZ_CHECK(u->standard_output < OUTPUT_MODE_MAX && u->standard_error < OUTPUT_MODE_MAX);
    FUZZ_CHECK(u->extra->mailbox_capacity >= 1 && u->extra->mailbox_mode <= 0777 &&
               u->umask <= 0777);

    if (u->argv) {
        FUZZ_CHECK(u->argv[0] && u->argv[0][0]);
        FUZZ_CHECK(u->argv[0][0] == '/' || !strchr(u->argv[0], '/'));
    }
    for (size_t i = 0; i < u->extra->n_environment; i++) {
        const char *eq = strchr(u->extra->environment[i], '=');
        FUZZ_CHECK(eq && env_name_valid(u->extra->environment[i],
                                        (size_t)(eq - u->extra->environment[i])));
        for (size_t j = 0; j < i; j++) /* each variable once: later lines replace */
            FUZZ_CHECK(strncmp(u->extra->environment[j], u->extra->environment[i],
                               (size_t)(eq - u->extra->environment[i]) + 1) != 0);
    }
    FUZZ_CHECK(u->extra->n_environment == 0 ||
               u->extra->environment[u->extra->n_environment] == NULL);
    for (size_t i = 0; i < u->extra->n_environment_files; i++)
        FUZZ_CHECK(u->extra->environment_files[i].path[0] == '/');
    if (u->extra->working_directory)
        FUZZ_CHECK(u->extra->working_directory[0] == '/');
    for (size_t i = 0; i < u->extra->n_children; i++)
        FUZZ_CHECK(u->extra->children[i] && u->extra->children_lines[i] > 0);
}

/* Walk the tree: each node once, linked both ways, its unit's settings. */
static size_t check_tree(const struct node *node, const struct unit_set *set, bool *seen)
{
    size_t count = 1;
    const struct unit *u = unit_set_find(set, node->name);

    if (u) {
        size_t i = 0;
        while (set->units[i] != u)
            i++;
        FUZZ_CHECK(!seen[i]);
        seen[i] = true;
        FUZZ_CHECK(node->kind == u->kind);
        FUZZ_CHECK(node->config->restart == u->config.restart);
        FUZZ_CHECK(node->config->strategy == u->config.strategy);
        FUZZ_CHECK(node->config->intensity == u->config.intensity);
        FUZZ_CHECK(node->config->period == u->config.period);
        FUZZ_CHECK(node->config->shutdown == u->config.shutdown);
        FUZZ_CHECK(node->config->kill_signal == u->config.kill_signal);
        FUZZ_CHECK(node->n_children <= u->extra->n_children);
    } else {
        /* Only the implicit root has no unit. */
        FUZZ_CHECK(!node->parent && !set->explicit_root && !strcmp(node->name, "root"));
    }
    for (size_t i = 0; i < node->n_children; i++) {
        FUZZ_CHECK(node->children[i]->parent == node && node->children[i]->position == i);
        count += check_tree(node->children[i], set, seen);
    }
    return count;
}

/* Only files in the scratch directory: /dev/zero or a FIFO would hang. */
static bool env_files_inside(const struct unit *u)
{
    for (size_t i = 0; i < u->extra->n_environment_files; i++) {
        const char *path = u->extra->environment_files[i].path;
        if (strncmp(path, DIR_FD_PREFIX, strlen(DIR_FD_PREFIX)) != 0)
            return false;
        const char *name = path + strlen(DIR_FD_PREFIX);
        if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            return false;
    }
    return true;
}

/* As arbord starts the service: its Listen= entries stand in for the
 * names of the fds it would pass (LISTEN_FDNAMES=). */
static void check_env(const struct unit *u)
{
    struct env env;
    int n_fds = (int)u->extra->n_listen;
    int r = env_build(&env, u, "/run/arbor-fuzz", "/run/arbor-fuzz/notify/x",
                      (const char *const *)u->extra->listen, n_fds);

    if (r == 0) {
        bool unit_seen = false, names_seen = false;
        FUZZ_CHECK(env.entries && env.entries[env.count] == NULL);
        for (size_t i = 0; i < env.count; i++) {
            const char *e = env.entries[i], *eq = strchr(e, '=');
            FUZZ_CHECK(eq);
            size_t klen = (size_t)(eq - e);
            for (size_t j = 0; j < i; j++)
                FUZZ_CHECK(strncmp(env.entries[j], e, klen + 1) != 0);
            if (!strncmp(e, "ARBOR_UNIT=", 11)) {
                FUZZ_CHECK(!strcmp(e + 11, u->name));
                unit_seen = true;
            } else if (!strncmp(e, "LISTEN_FDNAMES=", 15) && n_fds > 0) {
                /* The names, in order, joined with ':'. */
                const char *p = e + 15;
                for (int k = 0; k < n_fds; k++) {
                    size_t len = strlen(u->extra->listen[k]);
                    FUZZ_CHECK(!strncmp(p, u->extra->listen[k], len));
                    p += len;
                    FUZZ_CHECK(*p == (k + 1 < n_fds ? ':' : '\0'));
                    p += *p == ':';
                }
                names_seen = true;
            } else if (!strncmp(e, "LISTEN_FDS=", 11) && n_fds > 0) {
                FUZZ_CHECK(atoi(e + 11) == n_fds);
            }
        }
        FUZZ_CHECK(unit_seen && names_seen == (n_fds > 0));
        FUZZ_CHECK(!env.listen_pid_slot == (n_fds == 0));
        FUZZ_CHECK(strlen(env_path(&env)) > 0);
    } else {
        FUZZ_CHECK(r < 0 && env.error[0]);
    }
    env_free(&env);
}

static void check_set(const struct unit_set *set, const struct diagnostics *diag, int r,
                      const struct input_file *files, size_t n_files)
{
    FUZZ_CHECK((r == 0) == (diag_problems(diag) == 0));
    for (size_t i = 0; i < diag->count; i++)
        for (const unsigned char *p = (const unsigned char *)diag->messages[i]; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
    for (size_t i = 0; i < set->count; i++) {
        if (i > 0)
            FUZZ_CHECK(strcmp(set->units[i - 1]->name, set->units[i]->name) < 0);
        FUZZ_CHECK(unit_set_find(set, set->units[i]->name) == set->units[i]);
        check_unit(set->units[i], files, n_files, diag);
    }
    struct unit *root = unit_set_find(set, "root");
    FUZZ_CHECK(set->explicit_root == (root && root->kind == NODE_SUPERVISOR));
    if (r != 0)
        return;

    /* A valid set: what arbord goes on to do with it. */
    struct node *tree = unit_build_tree(set);
    FUZZ_CHECK(tree);
    bool *seen = calloc(set->count + 1, sizeof(bool));
    FUZZ_CHECK(seen);
    size_t nodes = check_tree(tree, set, seen);
    FUZZ_CHECK(nodes == set->count + (set->explicit_root ? 0 : 1));
    free(seen);

    char *text = NULL;
    size_t text_len = 0;
    FILE *out = open_memstream(&text, &text_len);
    FUZZ_CHECK(out);
    unit_print_tree(out, tree, set);
    FUZZ_CHECK(fclose(out) == 0);
    size_t lines = 0;
    for (size_t i = 0; i < text_len; i++)
        lines += text[i] == '\n';
    FUZZ_CHECK(lines == nodes && text_len > 0 && text[text_len - 1] == '\n');
    free(text);
    node_free_tree(tree);

    for (size_t i = 0; i < set->count; i++)
        if (set->units[i]->kind == NODE_SERVICE && env_files_inside(set->units[i]))
            check_env(set->units[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct input_file files[FILES_MAX];
    size_t n_files = input_split(data, size, files);

    if (!dir)
        LLVMFuzzerInitialize(NULL, NULL);
    /* Nothing before the first "== " line: no "a.service" (an empty one
     * is still "== a.service" away). */
    if (files[0].len == 0)
        files[0].name[0] = '\0';
    for (size_t i = 0; i < n_files; i++) {
        bool dup = !files[i].name[0];
        for (size_t j = 0; j < i && !dup; j++)
            dup = !strcmp(files[i].name, files[j].name);
        if (dup) { /* the first file of a name is the one on disk */
            files[i].name[0] = '\0';
            continue;
        }
        input_write(&files[i]);
    }

    struct unit_set set, again;
    struct diagnostics diag = {0}, diag2 = {0};
    int r = unit_load_dir(dir, &set, &diag);
    if (getenv("FUZZ_UNIT_VERBOSE")) { /* what the loader said, to read an input */
        fprintf(stderr, "unit_load_dir: %d, %zu units\n", r, set.count);
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "  %s\n", diag.messages[i]);
    }
    check_set(&set, &diag, r, files, n_files);

    /* Loading is deterministic: the same files, the same answer. */
    int r2 = unit_load_dir(dir, &again, &diag2);
    FUZZ_CHECK(r2 == r && again.count == set.count && diag2.count == diag.count);
    for (size_t i = 0; i < diag.count; i++)
        FUZZ_CHECK(!strcmp(diag.messages[i], diag2.messages[i]));
    for (size_t i = 0; i < set.count; i++)
        FUZZ_CHECK(!strcmp(set.units[i]->name, again.units[i]->name) &&
                   set.units[i]->content_hash == again.units[i]->content_hash);

    unit_set_free(&set);
    unit_set_free(&again);
    diag_free(&diag);
    diag_free(&diag2);
    fuzz_empty_dir(dir);
    return 0;
}
