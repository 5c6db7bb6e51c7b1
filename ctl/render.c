/*
 * render.c: the status tree, log lines and results, for people and as
 * JSON (render.h).
 *
 * The tree is drawn from each unit's parent, not from the server's depth
 * field, so "status web db" (two subtrees) draws two trees whose tops have
 * no connectors. Columns line up across the whole table; a column no row
 * uses takes no space; STATUS= text comes last and is the one thing
 * shortened to fit a terminal.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_DIM "\033[2m"
#define ANSI_RED_BOLD "\033[1;31m"
#define ANSI_GREEN "\033[32m"
#define ANSI_YELLOW "\033[33m"

/* The widest a tree-and-name column grows for alignment; a longer name
 * pushes its own row's columns right instead of every row's. */
#define NAME_COLUMN_MAX 48

/* ---- escaping untrusted text ------------------------------------------- */

/* The next piece of `s`: how many bytes it takes, and whether it must be
 * escaped (each of its bytes as \xNN) or can be written as it is (one
 * column). Control characters are C0 (tab too unless `keep_tab`), DEL and
 * the C1 range U+0080..U+009F. */
static size_t next_piece(const unsigned char *s, size_t len, bool keep_tab, bool *ret_escape)
{
    unsigned char c = s[0];
    if (c < 0x20 || c == 0x7f) {
        *ret_escape = !(c == '\t' && keep_tab);
        return 1;
    }
    size_t n = json_utf8_length(s, len);
    if (n == 0) {
        *ret_escape = true;
        return 1;
    }
    /* C1 controls; the line and paragraph separators and the bidi
     * embeddings and isolates (U+2028..U+202E, U+2066..U+2069), which can
     * make text read other than it is. */
    *ret_escape = (n == 2 && c == 0xc2 && s[1] <= 0x9f) ||
                  (n == 3 && c == 0xe2 && s[1] == 0x80 && s[2] >= 0xa8 && s[2] <= 0xae) ||
                  (n == 3 && c == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9);
    return n;
}

/* Write `s` escaped; with `max_cols` > 0, shorten it to that many columns
 * ending in "...". Returns the columns written. */
static size_t put_escaped(FILE *out, const char *text, size_t len, bool keep_tab, size_t max_cols)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t total = 0;
    bool escape;

    for (size_t i = 0; i < len;) {
        size_t n = next_piece(s + i, len - i, keep_tab, &escape);
        total += escape ? 4 * n : 1;
        i += n;
    }
    size_t limit = SIZE_MAX;
    if (max_cols > 0 && total > max_cols)
        limit = max_cols > 3 ? max_cols - 3 : 0;

    size_t cols = 0;
    for (size_t i = 0; i < len;) {
        size_t n = next_piece(s + i, len - i, keep_tab, &escape);
        size_t w = escape ? 4 * n : 1;
        if (cols + w > limit)
            break;
        if (escape)
            for (size_t k = 0; k < n; k++)
                fprintf(out, "\\x%02x", s[i + k]);
        else
            fwrite(s + i, 1, n, out);
        cols += w;
        i += n;
    }
    if (limit != SIZE_MAX) {
        fputs("...", out);
        cols += 3;
    }
    return cols;
}

/* An escaped, NUL-terminated copy, and its width in columns. */
static char *escape_dup(const struct text *text, size_t *ret_cols)
{
    char *copy = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&copy, &size);
    if (!mem)
        return NULL;
    size_t cols = text->data ? put_escaped(mem, text->data, text->len, false, 0) : 0;
    if (fclose(mem) != 0) {
        free(copy);
        return NULL;
    }
    if (ret_cols)
        *ret_cols = cols;
    return copy;
}

void render_line(FILE *out, const char *text, size_t len)
{
    put_escaped(out, text, len, true, 0);
    fputc('\n', out);
}

/* ---- small formats ------------------------------------------------------ */

void render_uptime(long long ms, char *buf, size_t size)
{
    long long s = ms < 0 ? 0 : ms / 1000;
    if (s < 60)
        snprintf(buf, size, "%llds", s);
    else if (s < 3600)
        snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, size, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

const char *render_signal_name(long long signal, char *buf, size_t size)
{
    if (signal >= 1 && signal < SIGRTMIN) {
        const char *abbrev = sigabbrev_np((int)signal);
        if (!abbrev)
            return NULL;
        snprintf(buf, size, "SIG%s", abbrev);
        return buf;
    }
    if (signal >= SIGRTMIN && signal <= SIGRTMAX) {
        if (signal == SIGRTMIN)
            snprintf(buf, size, "SIGRTMIN");
        else
            snprintf(buf, size, "SIGRTMIN+%lld", signal - SIGRTMIN);
        return buf;
    }
    return NULL;
}

static bool text_is(const struct text *text, const char *value)
{
    return text->data && text->len == strlen(value) && memcmp(text->data, value, text->len) == 0;
}

static bool text_equal(const struct text *a, const struct text *b)
{
    return a->data && b->data && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* ---- the status tree ---------------------------------------------------- */

enum column {
    COLUMN_KIND,
    COLUMN_STATE,
    COLUMN_PID,
    COLUMN_UPTIME,
    COLUMN_RESTARTS,
    COLUMN_LAST_EXIT,
    COLUMN_MAILBOX,
    COLUMN_MAX
};

struct row {
    int parent;       /* the parent's row, -1 at the top of a tree */
    bool last;        /* the last child of its parent */
    char *cont;       /* the drawing this row's children inherit */
    size_t cont_cols; /* its width: 3 columns a level */
    char *name;       /* escaped */
    size_t name_cols;
    char *cell[COLUMN_MAX]; /* NULL: empty */
    size_t cell_cols[COLUMN_MAX];
    const char *state_color;
};

/* Find each row's parent: the units come depth first, so the parent of a
 * unit is on the stack of its predecessors' ancestors. */
static void link_rows(const struct unit_info *units, size_t n, struct row *rows, int *stack)
{
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        while (top > 0 && !text_equal(&units[stack[top - 1]].name, &units[i].parent))
            top--;
        rows[i].parent = top > 0 ? stack[top - 1] : -1;
        stack[top++] = (int)i;
    }
    /* Walking backwards, the first child met of each parent is its last. */
    bool *seen = calloc(n + 1, sizeof(*seen));
    for (size_t i = n; i-- > 0;) {
        size_t slot = (size_t)(rows[i].parent + 1);
        rows[i].last = !seen || !seen[slot];
        if (seen)
            seen[slot] = true;
    }
    free(seen);
}

/* A row's tree drawing, as inherited by its children. */
static char *continuation(const struct row *rows, const struct row *row, size_t *ret_cols)
{
    if (row->parent < 0) {
        *ret_cols = 0;
        return strdup("");
    }
    const struct row *parent = &rows[row->parent];
    const char *more = row->last ? "   " : "\u2502  ";
    size_t len = strlen(parent->cont) + strlen(more);
    char *cont = malloc(len + 1);
    if (cont)
        snprintf(cont, len + 1, "%s%s", parent->cont, more);
    *ret_cols = parent->cont_cols + 3;
    return cont;
}

static char *format_cell(size_t *ret_cols, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static char *format_cell(size_t *ret_cols, const char *format, ...)
{
    va_list ap;
    char *cell = NULL;
    va_start(ap, format);
    int n = vasprintf(&cell, format, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    *ret_cols = (size_t)n; /* only ASCII goes through here */
    return cell;
}

static const char *state_color(const struct unit_info *unit)
{
    if (text_is(&unit->state, "running"))
        return ANSI_GREEN;
    if (text_is(&unit->state, "starting") || text_is(&unit->state, "stopping"))
        return ANSI_YELLOW;
    if (text_is(&unit->state, "failed"))
        return ANSI_RED_BOLD;
    return NULL;
}

static void fill_cells(const struct unit_info *u, struct row *row)
{
    size_t *w = row->cell_cols;
    char signame[32];

    row->cell[COLUMN_KIND] = escape_dup(&u->kind, &w[COLUMN_KIND]);
    if (u->held) {
        struct text state = u->state.data ? u->state : (struct text){"stopped", 7};
        char *escaped = escape_dup(&state, &w[COLUMN_STATE]);
        row->cell[COLUMN_STATE] =
            escaped ? format_cell(&w[COLUMN_STATE], "%s (by operator)", escaped) : NULL;
        free(escaped);
    } else {
        row->cell[COLUMN_STATE] = escape_dup(&u->state, &w[COLUMN_STATE]);
    }
    row->state_color = state_color(u);
    if (u->pid.set)
        row->cell[COLUMN_PID] = format_cell(&w[COLUMN_PID], "pid %lld", u->pid.value);
    if (u->uptime_ms.set) {
        char up[32];
        render_uptime(u->uptime_ms.value, up, sizeof(up));
        row->cell[COLUMN_UPTIME] = format_cell(&w[COLUMN_UPTIME], "up %s", up);
    }
    if (u->restarts.set)
        row->cell[COLUMN_RESTARTS] =
            format_cell(&w[COLUMN_RESTARTS], "restarts %lld", u->restarts.value);
    if (u->exit_signal.set) {
        const char *name = render_signal_name(u->exit_signal.value, signame, sizeof(signame));
        row->cell[COLUMN_LAST_EXIT] =
            name ? format_cell(&w[COLUMN_LAST_EXIT], "last exit %s", name)
                 : format_cell(&w[COLUMN_LAST_EXIT], "last exit signal %lld", u->exit_signal.value);
    } else if (u->exit_code.set) {
        row->cell[COLUMN_LAST_EXIT] =
            format_cell(&w[COLUMN_LAST_EXIT], "last exit %lld", u->exit_code.value);
    }
    if (u->mailbox_queued.set)
        row->cell[COLUMN_MAILBOX] =
            format_cell(&w[COLUMN_MAILBOX], "mailbox %lld", u->mailbox_queued.value);
    for (int c = 0; c < COLUMN_MAX; c++)
        if (!row->cell[c])
            w[c] = 0;
}

static void pad(FILE *out, size_t n)
{
    while (n-- > 0)
        fputc(' ', out);
}

static void put_colored(const struct render *render, const char *color, const char *text)
{
    if (render->color && color)
        fprintf(render->out, "%s%s%s", color, text, ANSI_RESET);
    else
        fputs(text, render->out);
}

static void print_row(const struct render *render, const struct unit_info *unit,
                      const struct row *rows, const struct row *row, size_t name_width,
                      const size_t *widths)
{
    FILE *out = render->out;
    size_t col = 0;

    if (row->parent >= 0) {
        fprintf(out, "%s%s", rows[row->parent].cont, row->last ? "\u2514\u2500 " : "\u251c\u2500 ");
        col += rows[row->parent].cont_cols + 3;
    }
    bool supervisor = text_is(&unit->kind, "supervisor");
    put_colored(render, supervisor ? ANSI_BOLD : NULL, row->name ? row->name : "?");
    col += row->name_cols;

    /* Each column starts where the widest cell before it ends; a row whose
     * name overflowed its column keeps two spaces between cells instead. */
    size_t start = name_width;
    for (int c = 0; c < COLUMN_MAX; c++) {
        if (widths[c] == 0)
            continue;
        start += 2;
        if (row->cell[c]) {
            size_t gap = col + 2 > start ? 2 : start - col;
            pad(out, gap);
            col += gap;
            put_colored(render, c == COLUMN_STATE ? row->state_color : NULL, row->cell[c]);
            col += row->cell_cols[c];
        }
        start += widths[c];
    }

    if (unit->status.data && unit->status.len > 0) {
        size_t gap = col + 2 > start + 2 ? 2 : start + 2 - col;
        pad(out, gap);
        col += gap;
        size_t room = 0;
        if (render->width > 0)
            room = (size_t)render->width > col + 8 ? (size_t)render->width - col : 8;
        if (render->color)
            fputs(ANSI_DIM, out);
        put_escaped(out, unit->status.data, unit->status.len, false, room);
        if (render->color)
            fputs(ANSI_RESET, out);
    }
    fputc('\n', out);
}

void render_status(const struct render *render, const struct unit_info *units, size_t n)
{
    if (n == 0)
        return;
    struct row *rows = calloc(n, sizeof(*rows));
    int *stack = calloc(n, sizeof(*stack));
    if (!rows || !stack) {
        free(rows);
        free(stack);
        fputs("arborctl: out of memory\n", stderr);
        return;
    }
    link_rows(units, n, rows, stack);

    size_t name_width = 0, widths[COLUMN_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        struct row *row = &rows[i];
        row->cont = continuation(rows, row, &row->cont_cols);
        if (!row->cont) {
            row->cont = strdup("");
            row->cont_cols = 0;
        }
        row->name = escape_dup(&units[i].name, &row->name_cols);
        size_t lead = row->parent >= 0 ? rows[row->parent].cont_cols + 3 : 0;
        if (lead + row->name_cols <= NAME_COLUMN_MAX && lead + row->name_cols > name_width)
            name_width = lead + row->name_cols;
        fill_cells(&units[i], row);
        for (int c = 0; c < COLUMN_MAX; c++)
            if (row->cell_cols[c] > widths[c])
                widths[c] = row->cell_cols[c];
    }
    /* Every line, once every width is known. */
    for (size_t i = 0; i < n; i++)
        print_row(render, &units[i], rows, &rows[i], name_width, widths);

    for (size_t i = 0; i < n; i++) {
        free(rows[i].cont);
        free(rows[i].name);
        for (int c = 0; c < COLUMN_MAX; c++)
            free(rows[i].cell[c]);
    }
    free(rows);
    free(stack);
}

/* ---- log lines and results ---------------------------------------------- */

void render_log(const struct render *render, const struct log_line *line, const char *unit)
{
    FILE *out = render->out;
    if (line->unit.data)
        put_escaped(out, line->unit.data, line->unit.len, false, 0);
    else
        fputs(unit ? unit : "?", out);
    if (line->pid.set)
        fprintf(out, "[%lld]", line->pid.value);
    fputs(": ", out);
    if (render->raw_log)
        fwrite(line->line.data, 1, line->line.len, out);
    else
        put_escaped(out, line->line.data, line->line.len, true, 0);
    fputc('\n', out);
}

void render_result(const struct render *render, FILE *err, const struct result *result)
{
    for (size_t i = 0; i < result->n_messages; i++)
        render_line(render->out, result->messages[i].data, result->messages[i].len);
    fflush(render->out);
    for (size_t i = 0; i < result->n_errors; i++) {
        fputs("arborctl: ", err);
        render_line(err, result->errors[i].data, result->errors[i].len);
    }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_text(struct json *json, const char *key, const struct text *text)
{
    json_key(json, key);
    if (text->data)
        json_string(json, text->data, text->len);
    else
        json_null(json);
}

static void json_opt_int(struct json *json, const char *key, const struct opt_int *value)
{
    json_key(json, key);
    if (value->set)
        json_int(json, value->value);
    else
        json_null(json);
}

void render_json_result(struct json *json, const struct result *result)
{
    json_key(json, "ok");
    json_bool(json, result->ok);
    json_key(json, "exit");
    json_int(json, result->exit);
    json_key(json, "errors");
    json_array_begin(json);
    for (size_t i = 0; i < result->n_errors; i++)
        json_string(json, result->errors[i].data, result->errors[i].len);
    json_array_end(json);
    /* Lines joined with newlines: one string, or null when there is none. */
    json_key(json, "message");
    if (result->n_messages == 0) {
        json_null(json);
        return;
    }
    char *joined = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&joined, &size);
    for (size_t i = 0; mem && i < result->n_messages; i++) {
        if (i > 0)
            fputc('\n', mem);
        fwrite(result->messages[i].data, 1, result->messages[i].len, mem);
    }
    if (mem && fclose(mem) == 0)
        json_string(json, joined, size);
    else
        json_string(json, result->messages[0].data, result->messages[0].len);
    free(joined);
}

void render_json_unit(struct json *json, const struct unit_info *u)
{
    char signame[32];

    json_object_begin(json);
    json_text(json, "name", &u->name);
    json_text(json, "kind", &u->kind);
    json_text(json, "parent", &u->parent);
    json_opt_int(json, "depth", &u->depth);
    json_text(json, "state", &u->state);
    json_key(json, "held");
    json_bool(json, u->held);
    json_opt_int(json, "pid", &u->pid);
    json_key(json, "restarts");
    json_int(json, u->restarts.set ? u->restarts.value : 0);
    json_opt_int(json, "uptime_ms", &u->uptime_ms);
    json_key(json, "last_exit");
    if (u->exit_signal.set) {
        json_object_begin(json);
        json_key(json, "signal");
        json_int(json, u->exit_signal.value);
        json_key(json, "signal_name");
        json_cstring(json, render_signal_name(u->exit_signal.value, signame, sizeof(signame)));
        json_object_end(json);
    } else if (u->exit_code.set) {
        json_object_begin(json);
        json_key(json, "code");
        json_int(json, u->exit_code.value);
        json_object_end(json);
    } else {
        json_null(json);
    }
    json_text(json, "status", &u->status);
    json_text(json, "description", &u->description);
    json_text(json, "type", &u->type);
    json_text(json, "restart", &u->restart);
    json_text(json, "strategy", &u->strategy);
    json_key(json, "mailbox");
    if (u->mailbox_queued.set) {
        json_object_begin(json);
        render_json_mailbox(json, u);
        json_object_end(json);
    } else {
        json_null(json);
    }
    json_object_end(json);
}

void render_json_mailbox(struct json *json, const struct unit_info *u)
{
    json_opt_int(json, "queued", &u->mailbox_queued);
    json_opt_int(json, "socket_bytes", &u->mailbox_socket_bytes);
    json_opt_int(json, "kept", &u->mailbox_kept);
    json_opt_int(json, "forwarded", &u->mailbox_forwarded);
    json_opt_int(json, "reclaimed", &u->mailbox_reclaimed);
    json_key(json, "direct");
    if (u->mailbox_direct.set)
        json_bool(json, u->mailbox_direct.value != 0);
    else
        json_null(json);
    json_opt_int(json, "capacity", &u->mailbox_capacity);
}

void render_json_log(struct json *json, const struct log_line *line, const char *unit)
{
    json_object_begin(json);
    json_key(json, "unit");
    if (line->unit.data)
        json_string(json, line->unit.data, line->unit.len);
    else
        json_cstring(json, unit);
    json_opt_int(json, "pid", &line->pid);
    json_opt_int(json, "time_ms", &line->time_ms);
    json_text(json, "line", &line->line);
    json_object_end(json);
}
