/*
 * parse.c: one unit file into a struct unit.
 *
 * Theory of operation
 * -------------------
 * inih does the INI parsing, but Debian's build of it has three traits we
 * must not inherit: its handler gets no line numbers, lines over ~200 bytes
 * are silently split in two, and an indented line continues the previous
 * value. So inih reads through our own line reader (ini_parse_stream), and
 * the reader sees every physical line before inih does:
 *
 *  - It counts lines. inih r55 calls the reader once per line and handles
 *    that line before asking for the next, so while the handler runs,
 *    ctx->lineno is the line being handled.
 *  - It classifies the line itself (blank, comment, section, key=value or
 *    junk) with the same rules as inih, and reports every bad line. inih
 *    only returns its first error line, and we want all of them; so inih
 *    only ever gets lines we know it accepts, and a bad line becomes blank.
 *  - Indented lines never reach inih: a comment is blanked, anything else
 *    is an error instead of a silent continuation.
 *  - A key=value line too long for inih's buffer is split here, and inih
 *    gets a short placeholder line instead; the handler then takes the key
 *    and value from ctx rather than from inih.
 *
 * The reader also tracks the current section, so the handler knows whether
 * the section was valid for this kind of unit without re-judging it for
 * each key. The handler looks the key up in a table and runs its parser;
 * it always returns 1, because problems are recorded as diagnostics.
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

/* inih's handler. `section` is ignored: the reader tracks sections itself,
 * whole and with their validity. Always 1: problems are diagnostics. */
static int parse_handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;

    if (ctx->long_pending) {
        /* inih got the placeholder; the real line was split by the reader. */
        name = ctx->long_key;
        value = ctx->long_value;
        ctx->long_pending = false;
    }
    parse_key_value(ctx, name, value);
    return 1;
}

/* ---- the line reader ---------------------------------------------------- */

/* Read one physical line into ctx->line, without its "\n". Returns its
 * length, -1 at the end of the file, or -2 on a read error. At most
 * UNIT_LINE_MAX + 1 bytes are kept (the limit, plus a CR); the rest of a
 * longer line is consumed and the length returned is UNIT_LINE_MAX + 2. */
static long parse_read_line(struct parse_ctx *ctx)
{
    long len = 0;
    bool overflow = false;
    int c;

    errno = 0;
    while ((c = getc_unlocked(ctx->file)) != EOF && c != '\n') {
        /* FNV-1a over every byte read: reload compares files by it. */
        ctx->unit->content_hash = (ctx->unit->content_hash ^ (unsigned char)c) * 1099511628211ull;
        if (len < UNIT_LINE_MAX + 1)
            ctx->line[len++] = (char)c;
        else
            overflow = true;
    }
    if (c == EOF && ferror(ctx->file)) {
        ctx->read_errno = errno ? errno : EIO;
        return -2;
    }
    if (c == '\n')
        ctx->unit->content_hash = (ctx->unit->content_hash ^ '\n') * 1099511628211ull;
    if (c == EOF && len == 0)
        return -1;
    ctx->line[len] = '\0';
    return overflow ? UNIT_LINE_MAX + 2 : len;
}

/* A section header. Returns what inih gets for it. */
static const char *parse_section_line(struct parse_ctx *ctx, char *line, int num)
{
    char *end = parse_find(line + 1, "]");
    char buf[PARSE_QUOTE_MAX + 4];

    ctx->section = SECTION_IGNORED;
    if (*end != ']') {
        parse_error(ctx, "section header without a closing ']': expected [Unit], [Service] or "
                         "[Supervisor]");
        return "";
    }
    char *rest = parse_lskip(end + 1);
    if (*rest && *rest != ';' && *rest != '#')
        parse_error(ctx, "unexpected text after ']': only a comment may follow a section header");

    enum parse_section section = parse_section_lookup(line + 1, (size_t)(end - line - 1));
    *end = '\0'; /* only for messages: inih gets no copy of a rejected header */
    if (section == SECTION_NONE) {
        parse_error(ctx, "unknown section [%s]: %s", parse_shorten(line + 1, buf, sizeof(buf)),
                    parse_sections_allowed_text(ctx->unit->kind));
        return "";
    }
    if (!parse_section_allowed(ctx->unit->kind, section)) {
        parse_error(ctx, "section [%s] is not allowed here: %s", line + 1,
                    parse_sections_allowed_text(ctx->unit->kind));
        return "";
    }
    *end = ']';
    ctx->section = section;
    return strlen(line) + 2 <= (size_t)num ? line : "";
}

/* A key=value line, split as inih splits it. Returns what inih gets. */
static const char *parse_key_line(struct parse_ctx *ctx, char *line, int num)
{
    char *end = parse_find(line, "=:");

    if (*end != '=' && *end != ':') {
        parse_error(ctx, "expected KEY=VALUE, a [Section] header or a comment");
        return "";
    }
    if (end == line) {
        parse_error(ctx, "no key name before '%c'", *end);
        return "";
    }
    if (strlen(line) + 2 <= (size_t)num)
        return line; /* short enough: inih splits it the same way */

    /* Too long for inih: split it here, exactly as inih would. */
    char *value = end + 1;
    char *value_end = parse_find(value, NULL);
    parse_rstrip(line, end);
    value = parse_lskip(value);
    parse_rstrip(value, value_end > value ? value_end : value);
    ctx->long_key = line;
    ctx->long_value = value;
    ctx->long_pending = true;
    return PARSE_PLACEHOLDER;
}

/* Judge one physical line (of `len` bytes, CR and BOM not yet removed) and
 * return what inih gets for it: "" for a blank line. */
static const char *parse_line(struct parse_ctx *ctx, char *line, long len, int num)
{
    if (len > UNIT_LINE_MAX + 1 || (len == UNIT_LINE_MAX + 1 && line[UNIT_LINE_MAX] != '\r')) {
        parse_error(ctx, "line too long (over %d bytes)", UNIT_LINE_MAX);
        return "";
    }
    if (memchr(line, '\0', (size_t)len)) {
        parse_error(ctx, "NUL byte in line: a unit file is text");
        return "";
    }
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (ctx->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
        line += 3; /* a UTF-8 byte order mark */

    if (parse_space(*line)) {
        char *start = parse_lskip(line);
        if (*start && *start != '#' && *start != ';')
            parse_error(ctx, "indented line: continuation lines are not supported");
        return ""; /* blank, an indented comment, or an error */
    }
    if (!*line || *line == '#' || *line == ';')
        return "";
    if (*line == '[')
        return parse_section_line(ctx, line, num);
    return parse_key_line(ctx, line, num);
}

static char *parse_reader(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;

    ctx->long_pending = false;
    if (ctx->gave_up)
        return NULL;
    if (num < (int)sizeof(PARSE_PLACEHOLDER) + 1) { /* inih's buffer is 200 bytes */
        diag_add(ctx->diag, ctx->path, 0, "internal error: INI line buffer too small");
        ctx->gave_up = true;
        return NULL;
    }
    if (diag_problems(ctx->diag) - ctx->diag_start >= PARSE_ERRORS_MAX) {
        diag_add(ctx->diag, ctx->path, 0,
                 "too many errors (%d) after line %d; the rest of the file was not read",
                 PARSE_ERRORS_MAX, ctx->lineno);
        ctx->gave_up = true;
        return NULL;
    }
    long len = parse_read_line(ctx);
    if (len < 0)
        return NULL;
    ctx->lineno++;
    snprintf(str, (size_t)num, "%s\n", parse_line(ctx, ctx->line, len, num));
    return str;
}

/* ---- after the last line ------------------------------------------------ */

static int parse_getgrouplist(struct unit *u, struct unit_extra *x, const char *user)
{
    int n = 16;
    for (int tries = 0; tries < 8; tries++) {
        gid_t *groups = malloc((size_t)n * sizeof(*groups));
        if (!groups)
            return -1;
        int want = n;
        if (getgrouplist(user, u->gid, groups, &want) >= 0) {
            free(x->groups);
            x->groups = groups;
            x->n_groups = want;
            return 0;
        }
        free(groups);
        n = want > n ? want : n * 2;
    }
    return -1;
}

static void parse_resolve_group(struct parse_ctx *ctx)
{
    struct unit *u = ctx->unit;
    const struct unit_extra *x = ctx->extra;
    unsigned long id;

    ctx->lineno = ctx->line_group;
    if (parse_uint(x->group, (gid_t)-2, &id) == 0) {
        u->gid = (gid_t)id;
        return;
    }
    struct group *gr = getgrnam(x->group);
    if (gr)
        u->gid = gr->gr_gid;
    else
        parse_error(ctx, "Group=%s: no such group", x->group);
}

/* User= gives the uid, the primary group (unless Group= is set) and the
 * supplementary groups; a numeric uid needs no passwd entry. */
static void parse_resolve_user(struct parse_ctx *ctx)
{
    struct unit *u = ctx->unit;
    struct unit_extra *x = ctx->extra;
    unsigned long id = 0;
    struct passwd *pw;

    ctx->lineno = ctx->line_user;
    if (parse_uint(x->user, (uid_t)-2, &id) == 0) {
        u->uid = (uid_t)id;
        pw = getpwuid(u->uid);
    } else if ((pw = getpwnam(x->user))) {
        u->uid = pw->pw_uid;
    } else {
        parse_error(ctx, "User=%s: no such user", x->user);
        return;
    }
    if (!pw && !x->group) {
        parse_error(ctx, "User=%s: uid %lu has no passwd entry, so no primary group: add Group=",
                    x->user, id);
        return;
    }
    if (!x->group)
        u->gid = pw->pw_gid;
    if (pw && u->gid != (gid_t)-1) {
        char *name = strdup(pw->pw_name); /* getgrouplist() may reuse pw's storage */
        if (!name || parse_getgrouplist(u, x, name) < 0)
            parse_error(ctx, "User=%s: cannot read its supplementary groups", x->user);
        free(name);
    }
}

/* Children= as one block: the pointers, the lines, then the names. */
static void parse_children(struct parse_ctx *ctx)
{
    struct unit_extra *x = ctx->extra;
    size_t n = x->n_children;
    if (n == 0)
        return;
    char **block = malloc(n * (sizeof(char *) + sizeof(int)) + ctx->children_names_len);
    if (!block) {
        diag_add(ctx->diag, ctx->path, 0, "out of memory");
        x->n_children = 0;
        return;
    }
    int *lines = (int *)(block + n);
    char *names = (char *)(lines + n);
    memcpy(lines, ctx->children_lines, n * sizeof(int));
    memcpy(names, ctx->children_names, ctx->children_names_len);
    for (size_t i = 0; i < n; i++) {
        block[i] = names;
        names += strlen(names) + 1;
    }
    x->children = block;
    x->children_lines = lines;
}

/* Checks of one file that need all of it. */
static void parse_finish(struct parse_ctx *ctx)
{
    struct unit *u = ctx->unit;
    const struct unit_extra *x = ctx->extra;

    parse_children(ctx);
    if (x->group)
        parse_resolve_group(ctx);
    if (x->user)
        parse_resolve_user(ctx);
    /* A bad ExecStart= was reported already; only a missing one is new. */
    if (u->kind == NODE_SERVICE && !parse_key_first_line(ctx, SECTION_SERVICE, "ExecStart"))
        diag_add(ctx->diag, ctx->path, 0, "no ExecStart=: a service needs one in [Service]");
    if (u->config.significant && u->config.restart == RESTART_PERMANENT)
        diag_add(ctx->diag, ctx->path, u->line_significant,
                 "Significant=yes needs Restart=transient or temporary, not permanent: a "
                 "permanent child is always restarted, so it never ends by itself");
}

/* ---- units -------------------------------------------------------------- */

void unit_config_defaults(enum node_kind kind, struct node_config *ret)
{
    *ret = (struct node_config){
        .restart = RESTART_PERMANENT,
        .significant = false,
        .strategy = STRATEGY_ONE_FOR_ONE,
        .intensity = 5,
        .period = 10000,
        .auto_shutdown = AUTO_SHUTDOWN_NEVER,
        .type = SERVICE_EXEC,
        .kill_signal = SIGTERM,
        /* OTP gives a supervisor child infinity: it stops its own children. */
        .shutdown = kind == NODE_SUPERVISOR ? DURATION_INFINITY : 5000,
        .start_timeout = 30000,
        .watchdog = 0,
    };
}

const struct unit_extra unit_extra_defaults = {
    .mailbox_capacity = 4096,
    .mailbox_mode = 0600,
    .mailbox_gid = (gid_t)-1,
};

static struct unit *unit_new(const char *path, const char *name, enum node_kind kind)
{
    /* Name and path live right after the unit: one allocation, not three. */
    size_t name_size = strlen(name) + 1, path_size = strlen(path) + 1;
    struct unit *u = calloc(1, sizeof(*u) + name_size + path_size);
    if (!u)
        return NULL;
    u->name = memcpy(u + 1, name, name_size);
    u->path = memcpy(u->name + name_size, path, path_size);
    u->kind = kind;
    u->content_hash = 14695981039346656037ull; /* FNV-1a offset basis */
    unit_config_defaults(kind, &u->config);
    u->uid = (uid_t)-1;
    u->gid = (gid_t)-1;
    u->standard_output = u->standard_error = OUTPUT_LOG;
    /* Written while parsing; given back by unit_settle() if left as is. */
    struct unit_extra *extra = malloc(sizeof(*extra));
    if (!extra) {
        free(u);
        return NULL;
    }
    memcpy(extra, &unit_extra_defaults, sizeof(*extra));
    u->extra = extra;
    return u;
}

/* A unit that set none of the rare keys shares the defaults. */
static void unit_settle(struct unit *u)
{
    if (u->extra != &unit_extra_defaults &&
        memcmp(u->extra, &unit_extra_defaults, sizeof(*u->extra)) == 0) {
        free((void *)u->extra);
        u->extra = &unit_extra_defaults;
    }
}

void unit_free(struct unit *unit)
{
    if (!unit)
        return;
    free(unit->argv);
    const struct unit_extra *x = unit->extra;
    if (x != &unit_extra_defaults) {
        free(x->description);
        free(x->children); /* with the lines and the names: one block */
        free(x->user);
        free(x->group);
        free(x->groups);
        free(x->working_directory);
        strv_free(x->environment);
        for (size_t i = 0; i < x->n_environment_files; i++)
            free(x->environment_files[i].path);
        free(x->environment_files);
        strv_free(x->listen);
        free((void *)x);
    }
    free(unit);
}

/* Open a regular file for reading. A FIFO or device named like a unit must
 * not block or do anything on open, hence O_NONBLOCK before the check. */
static FILE *parse_open(const char *path, struct diagnostics *diag)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0) {
        diag_add(diag, path, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        diag_add(diag, path, 0, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_add(diag, path, 0, "%s",
                 S_ISDIR(st.st_mode) ? "is a directory, not a unit file" : "not a regular file");
        close(fd);
        return NULL;
    }
    FILE *file = fdopen(fd, "r");
    if (!file) {
        diag_add(diag, path, 0, "cannot open: %s", strerror(errno));
        close(fd);
    }
    return file;
}

struct unit *unit_parse_file(const char *path, const char *name, enum node_kind kind,
                             struct diagnostics *diag)
{
    FILE *file = parse_open(path, diag);
    return file ? unit_parse_stream(file, path, name, kind, diag) : NULL;
}

struct unit *unit_parse_stream(FILE *file, const char *path, const char *name, enum node_kind kind,
                               struct diagnostics *diag)
{
    struct parse_ctx ctx = {.path = path, .diag = diag, .diag_start = diag_problems(diag)};

    ctx.file = file;
    ctx.unit = unit_new(path, name, kind);
    ctx.line = malloc(UNIT_LINE_MAX + 2);
    if (!ctx.unit || !ctx.line) {
        diag_add(diag, path, 0, "out of memory");
        goto fail;
    }
    ctx.extra = (struct unit_extra *)ctx.unit->extra;

    int r = ini_parse_stream(parse_reader, &ctx, parse_handler, &ctx);
    if (ctx.read_errno) {
        diag_add(diag, path, 0, "read error: %s", strerror(ctx.read_errno));
        goto fail;
    }
    if (r == -2)
        diag_add(diag, path, 0, "out of memory");
    else if (r > 0) /* should not happen: inih only gets lines we checked */
        diag_add(diag, path, r, "line rejected by the INI parser");
    parse_finish(&ctx);
    unit_settle(ctx.unit);

    fclose(ctx.file);
    free(ctx.line);
    free(ctx.children_names);
    free(ctx.children_lines);
    return ctx.unit;

fail:
    fclose(ctx.file);
    free(ctx.line);
    free(ctx.children_names);
    free(ctx.children_lines);
    unit_free(ctx.unit);
    return NULL;
}
