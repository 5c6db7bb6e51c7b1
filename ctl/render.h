/*
 * render.h: what arborctl prints: the status tree, log lines and results,
 * for people (render_*) and as JSON members (render_json_*).
 *
 * Text from the server (names, STATUS=, errors, log lines) is untrusted:
 * in human output, control characters (C0, DEL, C1) and bytes that are
 * not UTF-8 are written as \xNN escapes, so a service cannot move the
 * operator's cursor or retitle the terminal. Log lines are the one
 * exception when stdout is not a terminal: a pipe gets their bytes as
 * they are.
 */
#ifndef ARBOR_CTL_RENDER_H
#define ARBOR_CTL_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "client.h"
#include "json.h"

struct render {
    FILE *out;
    bool color;   /* ANSI colours: stdout is a terminal and NO_COLOR is unset */
    bool raw_log; /* log lines unescaped: stdout is not a terminal */
    int width;    /* terminal columns, to shorten STATUS= text; 0 = no limit */
};

/* The tree of `units`, in the depth-first order the server sent them:
 * connectors drawn from each unit's parent, aligned columns. */
void render_status(const struct render *render, const struct unit_info *units, size_t n);
/* "NAME[pid]: line"; `unit` names the unit when the frame does not. */
void render_log(const struct render *render, const struct log_line *line, const char *unit);
/* The message to render->out, each error to `err` as "arborctl: error". */
void render_result(const struct render *render, FILE *err, const struct result *result);
/* One line of text to `out`, escaped as above, then a newline. */
void render_line(FILE *out, const char *text, size_t len);

/* JSON: the members "ok", "exit", "errors" and "message" of a result. */
void render_json_result(struct json *json, const struct result *result);
/* A unit object (schema in arborctl(8)). */
void render_json_unit(struct json *json, const struct unit_info *unit);
/* The members of a unit's mailbox object: "queued", "socket_bytes",
 * "kept", "forwarded", "reclaimed", "direct", "capacity" (null when arbord
 * did not send one). */
void render_json_mailbox(struct json *json, const struct unit_info *unit);
/* A log line object: {"unit","pid","time_ms","line"}. */
void render_json_log(struct json *json, const struct log_line *line, const char *unit);

/* "45s", "3m12s", "2h05m", "3d04h". */
void render_uptime(long long ms, char *buf, size_t size);
/* "SIGKILL", "SIGRTMIN+3"; NULL for a number that is no signal. */
const char *render_signal_name(long long signal, char *buf, size_t size);

#endif
