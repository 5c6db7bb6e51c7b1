/*
 * keys.c: the key table of unit files and one small parser per key.
 *
 * parse_key_value() is called by parse.c's handler for every key line: it
 * finds the key for the current section, enforces "one value" for scalar
 * keys (naming the line of the first), and runs the key's parser, which
 * fills the struct unit or explains what it expected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unit/parse.h"
#include "unit/unit.h"

const char *const section_names[] = {
    [SECTION_UNIT] = "Unit",
    [SECTION_SERVICE] = "Service",
    [SECTION_SUPERVISOR] = "Supervisor",
};

/* ---- small helpers ------------------------------------------------------ */

/* inih's isspace(), without the locale. */
bool parse_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

char *parse_lskip(char *s)
{
    while (*s && parse_space(*s))
        s++;
    return s;
}

/* Trim trailing whitespace of [s, end) by writing a NUL. */
void parse_rstrip(char *s, char *end)
{
    while (end > s && parse_space(end[-1]))
        end--;
    *end = '\0';
}

/* inih's find_chars_or_comment(): the first of `chars`, or the ';' of an
 * inline comment (a ';' right after whitespace), or the end. Using its
 * exact rule keeps our split of long lines identical to inih's own. */
char *parse_find(char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = parse_space(*s);
        s++;
    }
    return s;
}

/* A value as quoted in a message: a long one is cut (at a character
 * boundary) so that one bad 60 KiB line does not make a 60 KiB message. */
const char *parse_shorten(const char *value, char *buf, size_t size)
{
    size_t len = strlen(value);
    if (len <= PARSE_QUOTE_MAX || size < PARSE_QUOTE_MAX + 4)
        return value;
    len = PARSE_QUOTE_MAX;
    while (len > 0 && ((unsigned char)value[len] & 0xc0) == 0x80)
        len--;
    snprintf(buf, size, "%.*s...", (int)len, value);
    return buf;
}

int parse_oom(struct parse_ctx *ctx)
{
    ctx->why = "out of memory";
    return -1;
}

static int parse_strdup(struct parse_ctx *ctx, char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return parse_oom(ctx);
    free(*field);
    *field = copy;
    return 0;
}

/* Append `s` (owned) to a NULL-terminated vector of *n entries. */
static int parse_strv_push(char ***strv, size_t *n, char *s)
{
    char **grown = realloc(*strv, (*n + 2) * sizeof(*grown));
    if (!grown)
        return -1;
    grown[(*n)++] = s;
    grown[*n] = NULL;
    *strv = grown;
    return 0;
}

static void parse_strv_reset(char ***strv, size_t *n)
{
    strv_free(*strv);
    *strv = NULL;
    *n = 0;
}

/* ---- enum values -------------------------------------------------------- */

struct parse_enum {
    const char *name;
    int value;
};

static const struct parse_enum strategies[] = {
    {"one-for-one", STRATEGY_ONE_FOR_ONE},
    {"one-for-all", STRATEGY_ONE_FOR_ALL},
    {"rest-for-one", STRATEGY_REST_FOR_ONE},
    {NULL, 0},
};

/* The systemd spellings map onto OTP's restart types. */
static const struct parse_enum restart_types[] = {
    {"permanent", RESTART_PERMANENT},
    {"transient", RESTART_TRANSIENT},
    {"temporary", RESTART_TEMPORARY},
    {"always", RESTART_PERMANENT},
    {"on-failure", RESTART_TRANSIENT},
    {"no", RESTART_TEMPORARY},
    {NULL, 0},
};

static const struct parse_enum auto_shutdowns[] = {
    {"never", AUTO_SHUTDOWN_NEVER},
    {"any-significant", AUTO_SHUTDOWN_ANY_SIGNIFICANT},
    {"all-significant", AUTO_SHUTDOWN_ALL_SIGNIFICANT},
    {NULL, 0},
};

static const struct parse_enum service_types[] = {
    {"simple", SERVICE_SIMPLE},
    {"exec", SERVICE_EXEC},
    {"notify", SERVICE_NOTIFY},
    {"oneshot", SERVICE_ONESHOT},
    {NULL, 0},
};

static const struct parse_enum output_modes[] = {
    {"log", OUTPUT_LOG},
    {"inherit", OUTPUT_INHERIT},
    {"null", OUTPUT_NULL},
    {NULL, 0},
};

static int parse_enum_value(const struct parse_enum *table, const char *value, int *ret)
{
    for (; table->name; table++) {
        if (strcmp(table->name, value) == 0) {
            *ret = table->value;
            return 0;
        }
    }
    return -1;
}

/* ---- key parsers: [Unit] and [Supervisor] -------------------------------- */

/* Each parser gets a non-empty value (unless its key allows empty) and
 * returns 0, or -1 for the generic "KEY=VALUE: expected ..." message
 * (with ctx->why, if set, in place of "expected ..."). A parser that
 * reports its own, more precise errors returns 0. */
typedef int (*parse_key_fn)(struct parse_ctx *ctx, const char *value);

static int key_description(struct parse_ctx *ctx, const char *value)
{
    return parse_strdup(ctx, &ctx->extra->description, value);
}

static int key_strategy(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(strategies, value, &v) < 0)
        return -1;
    ctx->unit->config.strategy = v;
    return 0;
}

static int key_intensity(struct parse_ctx *ctx, const char *value)
{
    unsigned long v;
    if (parse_uint(value, 1000000, &v) < 0)
        return -1;
    ctx->unit->config.intensity = (int)v;
    return 0;
}

static int key_period(struct parse_ctx *ctx, const char *value)
{
    msec_t v;
    if (parse_duration(value, &v) < 0 || v <= 0)
        return -1;
    ctx->unit->config.period = v;
    return 0;
}

static int key_children(struct parse_ctx *ctx, const char *value)
{
    struct unit_extra *x = ctx->extra;

    if (!*value) { /* an empty Children= starts the list again */
        x->n_children = 0;
        ctx->children_names_len = 0;
        return 0;
    }
    for (const char *p = value; *p;) {
        size_t len = strcspn(p, " \t\v\f\r\n");
        if (len == 0) {
            p++;
            continue;
        }
        /* Names one after the other, each NUL-terminated, lines beside:
         * parse_finish() makes them x->children (one block). A name is
         * copied to the end first and kept only if valid. */
        if (ctx->children_names_len + len + 1 > ctx->children_names_size) {
            size_t size = (ctx->children_names_size + len + 1) * 2;
            char *grown = realloc(ctx->children_names, size);
            if (!grown)
                return parse_oom(ctx);
            ctx->children_names = grown;
            ctx->children_names_size = size;
        }
        char *name = ctx->children_names + ctx->children_names_len;
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        if (!unit_name_valid(name)) {
            char buf[PARSE_QUOTE_MAX + 4];
            parse_error(ctx,
                        "Children=: '%s' is not a unit name: names match "
                        "[A-Za-z0-9][A-Za-z0-9_.-]*, at most %d bytes",
                        parse_shorten(name, buf, sizeof(buf)), UNIT_NAME_MAX);
            continue;
        }
        int *lines = realloc(ctx->children_lines, (x->n_children + 1) * sizeof(*lines));
        if (!lines)
            return parse_oom(ctx);
        ctx->children_lines = lines;
        ctx->children_names_len += len + 1;
        ctx->children_lines[x->n_children++] = ctx->lineno;
    }
    return 0;
}

static int key_restart(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(restart_types, value, &v) < 0)
        return -1;
    ctx->unit->config.restart = v;
    ctx->unit->line_restart = ctx->lineno;
    return 0;
}

static int key_auto_shutdown(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(auto_shutdowns, value, &v) < 0)
        return -1;
    ctx->unit->config.auto_shutdown = v;
    ctx->unit->line_auto_shutdown = ctx->lineno;
    return 0;
}

static int key_significant(struct parse_ctx *ctx, const char *value)
{
    if (parse_bool(value, &ctx->unit->config.significant) < 0)
        return -1;
    ctx->unit->line_significant = ctx->lineno;
    return 0;
}

/* ---- key parsers: [Service] --------------------------------------------- */

static int key_exec_start(struct parse_ctx *ctx, const char *value)
{
    char **argv = parse_command_line(value, &ctx->why);
    if (!argv)
        return -1;
    if (!argv[0] || !argv[0][0])
        ctx->why = "the program name is empty";
    else if (argv[0][0] != '/' && strchr(argv[0], '/'))
        ctx->why = "the program must be an absolute path or a bare name without '/' "
                   "(systemd's -, @ and + prefixes are not supported)";
    if (ctx->why) {
        free(argv);
        return -1;
    }
    free(ctx->unit->argv);
    ctx->unit->argv = argv;
    ctx->unit->line_exec_start = ctx->lineno;
    return 0;
}

static int key_type(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(service_types, value, &v) < 0)
        return -1;
    ctx->unit->config.type = v;
    return 0;
}

static int key_kill_signal(struct parse_ctx *ctx, const char *value)
{
    return parse_signal(value, &ctx->unit->config.kill_signal);
}

static int key_shutdown(struct parse_ctx *ctx, const char *value)
{
    msec_t v;
    if (strcmp(value, "brutal-kill") == 0)
        v = SHUTDOWN_BRUTAL_KILL;
    else if (strcmp(value, "infinity") == 0)
        v = DURATION_INFINITY;
    else if (parse_duration(value, &v) < 0)
        return -1;
    /* A duration of 0 is brutal-kill, as SHUTDOWN_BRUTAL_KILL is 0. */
    ctx->unit->config.shutdown = v;
    return 0;
}

static int key_start_timeout(struct parse_ctx *ctx, const char *value)
{
    msec_t v;
    if (strcmp(value, "infinity") == 0)
        v = DURATION_INFINITY;
    else if (parse_duration(value, &v) < 0)
        return -1;
    /* As systemd's TimeoutStartSec=0: no timeout, not "fail at once". */
    ctx->unit->config.start_timeout = v == 0 ? DURATION_INFINITY : v;
    return 0;
}

static int key_watchdog(struct parse_ctx *ctx, const char *value)
{
    return parse_duration(value, &ctx->unit->config.watchdog);
}

static int key_mailbox(struct parse_ctx *ctx, const char *value)
{
    return parse_bool(value, &ctx->unit->mailbox);
}

static int key_mailbox_capacity(struct parse_ctx *ctx, const char *value)
{
    unsigned long v;
    if (parse_uint(value, 1048576, &v) < 0 || v < 1)
        return -1;
    ctx->extra->mailbox_capacity = (unsigned)v;
    return 0;
}

static int key_mailbox_mode(struct parse_ctx *ctx, const char *value)
{
    char *end;
    errno = 0;
    unsigned long mode = strtoul(value, &end, 8);
    if (errno || *end || end == value || mode > 0777)
        return -1;
    ctx->extra->mailbox_mode = (mode_t)mode;
    return 0;
}

/* Resolved at once: a group name does not depend on other keys. */
static int key_mailbox_group(struct parse_ctx *ctx, const char *value)
{
    unsigned long id;
    if (parse_uint(value, (gid_t)-2, &id) == 0) {
        ctx->extra->mailbox_gid = (gid_t)id;
        return 0;
    }
    struct group *gr = getgrnam(value);
    if (!gr) {
        ctx->why = "no such group";
        return -1;
    }
    ctx->extra->mailbox_gid = gr->gr_gid;
    return 0;
}

/* User= and Group= are resolved once the whole file is read, as Group=
 * may come after User= and changes what User= resolves to. */
static int key_user(struct parse_ctx *ctx, const char *value)
{
    ctx->line_user = ctx->lineno;
    return parse_strdup(ctx, &ctx->extra->user, value);
}

static int key_group(struct parse_ctx *ctx, const char *value)
{
    ctx->line_group = ctx->lineno;
    return parse_strdup(ctx, &ctx->extra->group, value);
}

static int key_working_directory(struct parse_ctx *ctx, const char *value)
{
    if (value[0] != '/')
        return -1;
    return parse_strdup(ctx, &ctx->extra->working_directory, value);
}

static bool parse_env_name_valid(const char *name, size_t len)
{
    if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Set one VAR=VALUE (owned), replacing an earlier assignment of VAR in
 * place, so the list holds each variable once and later lines win. */
static int parse_env_set(struct unit_extra *x, char *assignment)
{
    size_t len = strcspn(assignment, "=") + 1;
    for (size_t i = 0; i < x->n_environment; i++) {
        if (strncmp(x->environment[i], assignment, len) == 0) {
            free(x->environment[i]);
            x->environment[i] = assignment;
            return 0;
        }
    }
    return parse_strv_push(&x->environment, &x->n_environment, assignment);
}

static int key_environment(struct parse_ctx *ctx, const char *value)
{
    if (!*value) {
        parse_strv_reset(&ctx->extra->environment, &ctx->extra->n_environment);
        return 0;
    }
    char **words = parse_command_line(value, &ctx->why);
    if (!words)
        return -1;
    int r = 0;
    for (size_t i = 0; words[i] && r == 0; i++) {
        const char *eq = strchr(words[i], '=');
        if (!eq || !parse_env_name_valid(words[i], (size_t)(eq - words[i]))) {
            char buf[PARSE_QUOTE_MAX + 4];
            parse_error(ctx,
                        "Environment=: '%s' is not an assignment: expected VAR=VALUE "
                        "with VAR matching [A-Za-z_][A-Za-z0-9_]*",
                        parse_shorten(words[i], buf, sizeof(buf)));
            continue;
        }
        char *copy = strdup(words[i]);
        if (!copy || parse_env_set(ctx->extra, copy) < 0) {
            free(copy);
            r = parse_oom(ctx);
        }
    }
    free(words);
    return r;
}

static int key_environment_file(struct parse_ctx *ctx, const char *value)
{
    struct unit_extra *x = ctx->extra;

    if (!*value) {
        for (size_t i = 0; i < x->n_environment_files; i++)
            free(x->environment_files[i].path);
        free(x->environment_files);
        x->environment_files = NULL;
        x->n_environment_files = 0;
        return 0;
    }
    bool optional = value[0] == '-';
    const char *path = optional ? value + 1 : value;
    if (path[0] != '/')
        return -1;
    struct env_file *grown =
        realloc(x->environment_files, (x->n_environment_files + 1) * sizeof(*grown));
    if (!grown)
        return parse_oom(ctx);
    x->environment_files = grown;
    char *copy = strdup(path);
    if (!copy)
        return parse_oom(ctx);
    grown[x->n_environment_files++] = (struct env_file){.path = copy, .optional = optional};
    return 0;
}

static int key_umask(struct parse_ctx *ctx, const char *value)
{
    unsigned long v = 0;
    if (!*value || strlen(value) > 4)
        return -1;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        v = v * 8 + (unsigned long)(*p - '0');
    }
    if (v > 0777)
        return -1;
    ctx->unit->umask = (mode_t)v;
    ctx->unit->umask_set = true;
    return 0;
}

static int key_standard_output(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(output_modes, value, &v) < 0)
        return -1;
    ctx->unit->standard_output = v;
    return 0;
}

static int key_standard_error(struct parse_ctx *ctx, const char *value)
{
    int v;
    if (parse_enum_value(output_modes, value, &v) < 0)
        return -1;
    ctx->unit->standard_error = v;
    return 0;
}

/* "HOST:PORT" with a numeric IPv4 host, or "[IPv6]:PORT". */
static bool parse_inet_address_valid(const char *value)
{
    const char *colon = strrchr(value, ':');
    unsigned long port;
    char host[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];

    if (!colon || parse_uint(colon + 1, 65535, &port) < 0 || port == 0)
        return false;
    size_t len = (size_t)(colon - value);
    int family = AF_INET;
    if (value[0] == '[') {
        if (len < 2 || value[len - 1] != ']')
            return false;
        value++;
        len -= 2;
        family = AF_INET6;
    }
    if (len >= sizeof(host))
        return false;
    memcpy(host, value, len);
    host[len] = '\0';
    return inet_pton(family, host, addr) == 1;
}

static int key_listen(struct parse_ctx *ctx, const char *value)
{
    struct unit_extra *x = ctx->extra;

    if (!*value) {
        parse_strv_reset(&x->listen, &x->n_listen);
        return 0;
    }
    if (value[0] == '/' ? strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)
                        : !parse_inet_address_valid(value))
        return -1;
    char *copy = strdup(value);
    if (!copy || parse_strv_push(&x->listen, &x->n_listen, copy) < 0) {
        free(copy);
        return parse_oom(ctx);
    }
    return 0;
}

static int key_fd_store_max(struct parse_ctx *ctx, const char *value)
{
    unsigned long v;
    if (parse_uint(value, 65536, &v) < 0)
        return -1;
    ctx->extra->fd_store_max = (unsigned)v;
    return 0;
}

/* ---- the key table ------------------------------------------------------ */

enum {
    KEY_REPEATABLE = 1 << 0, /* each line adds; an empty value resets */
    KEY_EMPTY_OK = 1 << 1,   /* an empty value is a value */
};

struct parse_key {
    const char *name;
    enum parse_section section;
    unsigned flags;
    parse_key_fn parse;
    const char *expect; /* what is allowed, for messages */
};

static const struct parse_key parse_keys[] = {
    {"Description", SECTION_UNIT, KEY_EMPTY_OK, key_description, "any text"},

    {"Strategy", SECTION_SUPERVISOR, 0, key_strategy, "one-for-one, one-for-all or rest-for-one"},
    {"Intensity", SECTION_SUPERVISOR, 0, key_intensity, "an integer from 0 to 1000000"},
    {"Period", SECTION_SUPERVISOR, 0, key_period,
     "a duration greater than 0, such as 10s, 500ms or 2min"},
    {"Children", SECTION_SUPERVISOR, KEY_REPEATABLE, key_children,
     "unit names separated by spaces"},
    {"Restart", SECTION_SUPERVISOR, 0, key_restart,
     "permanent, transient or temporary (or always, on-failure, no)"},
    {"AutoShutdown", SECTION_SUPERVISOR, 0, key_auto_shutdown,
     "never, any-significant or all-significant"},
    {"Significant", SECTION_SUPERVISOR, 0, key_significant, "yes or no"},

    {"ExecStart", SECTION_SERVICE, 0, key_exec_start,
     "a program (absolute path or bare name) and its arguments, quoted as in sh"},
    {"Type", SECTION_SERVICE, 0, key_type, "simple, exec, notify or oneshot"},
    {"Restart", SECTION_SERVICE, 0, key_restart,
     "permanent, transient or temporary (or always, on-failure, no)"},
    {"KillSignal", SECTION_SERVICE, 0, key_kill_signal,
     "a signal name such as SIGTERM or TERM, or a number from 1 to 64"},
    {"Shutdown", SECTION_SERVICE, 0, key_shutdown,
     "a duration such as 5s or 500ms, brutal-kill or infinity"},
    {"StartTimeout", SECTION_SERVICE, 0, key_start_timeout, "a duration such as 30s, or infinity"},
    {"WatchdogSec", SECTION_SERVICE, 0, key_watchdog, "a duration such as 10s, or 0 for none"},
    {"Significant", SECTION_SERVICE, 0, key_significant, "yes or no"},
    {"Mailbox", SECTION_SERVICE, 0, key_mailbox, "yes or no"},
    {"MailboxCapacity", SECTION_SERVICE, 0, key_mailbox_capacity, "an integer from 1 to 1048576"},
    {"MailboxMode", SECTION_SERVICE, 0, key_mailbox_mode,
     "an octal mode from 0000 to 0777, such as 0660"},
    {"MailboxGroup", SECTION_SERVICE, 0, key_mailbox_group, "a group name or gid"},
    {"User", SECTION_SERVICE, 0, key_user, "a user name or uid"},
    {"Group", SECTION_SERVICE, 0, key_group, "a group name or gid"},
    {"WorkingDirectory", SECTION_SERVICE, 0, key_working_directory, "an absolute path"},
    {"Environment", SECTION_SERVICE, KEY_REPEATABLE, key_environment,
     "VAR=VALUE assignments, quoted as in sh"},
    {"EnvironmentFile", SECTION_SERVICE, KEY_REPEATABLE, key_environment_file,
     "an absolute path, with a leading '-' if the file may be missing"},
    {"UMask", SECTION_SERVICE, 0, key_umask, "an octal mode from 0000 to 0777, such as 0022"},
    {"StandardOutput", SECTION_SERVICE, 0, key_standard_output, "log, inherit or null"},
    {"StandardError", SECTION_SERVICE, 0, key_standard_error, "log, inherit or null"},
    {"Listen", SECTION_SERVICE, KEY_REPEATABLE, key_listen,
     "an absolute socket path (under 108 bytes) or IP:PORT, such as 127.0.0.1:8080 or "
     "[::1]:8080"},
    {"FileDescriptorStoreMax", SECTION_SERVICE, 0, key_fd_store_max, "an integer from 0 to 65536"},
};

#define PARSE_KEYS_COUNT (sizeof(parse_keys) / sizeof(parse_keys[0]))
_Static_assert(PARSE_KEYS_COUNT <= PARSE_KEYS_MAX, "raise PARSE_KEYS_MAX");

static const struct parse_key *parse_key_find(enum parse_section section, const char *name)
{
    for (size_t i = 0; i < PARSE_KEYS_COUNT; i++)
        if (parse_keys[i].section == section && strcmp(parse_keys[i].name, name) == 0)
            return &parse_keys[i];
    return NULL;
}

int parse_key_first_line(const struct parse_ctx *ctx, enum parse_section section, const char *name)
{
    const struct parse_key *key = parse_key_find(section, name);
    return key ? ctx->key_lines[key - parse_keys] : 0;
}

/* ---- sections ----------------------------------------------------------- */

bool parse_section_allowed(enum node_kind kind, enum parse_section section)
{
    return section == SECTION_UNIT ||
           section == (kind == NODE_SERVICE ? SECTION_SERVICE : SECTION_SUPERVISOR);
}

/* "a .service file has [Unit] and [Service]" */
const char *parse_sections_allowed_text(enum node_kind kind)
{
    return kind == NODE_SERVICE ? "a .service file has [Unit] and [Service]"
                                : "a .supervisor file has [Unit] and [Supervisor]";
}

enum parse_section parse_section_lookup(const char *name, size_t len)
{
    for (int s = SECTION_UNIT; s <= SECTION_SUPERVISOR; s++)
        if (strlen(section_names[s]) == len && memcmp(section_names[s], name, len) == 0)
            return s;
    return SECTION_NONE;
}

/* ---- unknown keys ------------------------------------------------------- */

/* Say why `name` is not a key here, and what would be. */
static void parse_unknown_key(struct parse_ctx *ctx, const char *name)
{
    enum node_kind kind = ctx->unit->kind;
    const char *here = section_names[ctx->section];
    char buf[PARSE_QUOTE_MAX + 4];

    for (size_t i = 0; i < PARSE_KEYS_COUNT; i++) {
        const struct parse_key *k = &parse_keys[i];
        if (strcmp(k->name, name) != 0)
            continue;
        if (parse_section_allowed(kind, k->section))
            parse_error(ctx, "%s= belongs in [%s], not in [%s]", name, section_names[k->section],
                        here);
        else
            parse_error(ctx, "%s= is a [%s] key, and %s", name, section_names[k->section],
                        parse_sections_allowed_text(kind));
        return;
    }
    for (size_t i = 0; i < PARSE_KEYS_COUNT; i++) {
        if (parse_keys[i].section == ctx->section && strcasecmp(parse_keys[i].name, name) == 0) {
            parse_error(ctx, "unknown key %s= in [%s]: keys are case-sensitive; did you mean %s=?",
                        parse_shorten(name, buf, sizeof(buf)), here, parse_keys[i].name);
            return;
        }
    }
    char list[1024];
    size_t len = 0;
    for (size_t i = 0; i < PARSE_KEYS_COUNT && len < sizeof(list); i++)
        if (parse_keys[i].section == ctx->section)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s=", len ? ", " : "",
                                    parse_keys[i].name);
    parse_error(ctx, "unknown key %s= in [%s]: expected %s", parse_shorten(name, buf, sizeof(buf)),
                here, list);
}

/* ---- the handler -------------------------------------------------------- */

void parse_key_value(struct parse_ctx *ctx, const char *name, const char *value)
{
    char buf[PARSE_QUOTE_MAX + 4];

    if (ctx->section == SECTION_IGNORED)
        return;
    if (ctx->section == SECTION_NONE) {
        parse_error(ctx, "%s= comes before any section header: %s",
                    parse_shorten(name, buf, sizeof(buf)),
                    parse_sections_allowed_text(ctx->unit->kind));
        return;
    }
    const struct parse_key *key = parse_key_find(ctx->section, name);
    if (!key) {
        parse_unknown_key(ctx, name);
        return;
    }
    if (!(key->flags & KEY_REPEATABLE)) {
        int *first = &ctx->key_lines[key - parse_keys];
        if (*first) {
            parse_error(ctx, "%s= given twice (first at line %d); it takes one value", name,
                        *first);
            return;
        }
        *first = ctx->lineno;
    }
    if (!*value && !(key->flags & (KEY_REPEATABLE | KEY_EMPTY_OK))) {
        parse_error(ctx, "%s= is empty: expected %s", name, key->expect);
        return;
    }
    ctx->why = NULL;
    if (key->parse(ctx, value) < 0) {
        const char *shown = parse_shorten(value, buf, sizeof(buf));
        if (ctx->why)
            parse_error(ctx, "%s=%s: %s", name, shown, ctx->why);
        else
            parse_error(ctx, "%s=%s: expected %s", name, shown, key->expect);
    }
}
