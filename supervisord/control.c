/*
 * control.c: the control socket, see control.h and proto/control.h.
 *
 * A client goes through phases: HELLO (version check), REQUEST (one
 * command), then either an immediate RESULT, or WAITING for nodes to
 * settle (start, stop, restart, wait, shutdown) or FOLLOWING a service's
 * output (logs -f). Clients live in a list, newest first, so the oldest
 * idle one is at the tail when room must be made.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "daemon.h"
#include "logring.h"
#include "mailbox.h"
#include "os/log.h"
#include "proto/control.h"
#include "reload.h"
#include "upgrade.h"
#include "reexec.h"
#include "state.h"

enum client_phase { PHASE_HELLO, PHASE_REQUEST, PHASE_WAITING, PHASE_FOLLOWING, PHASE_DONE };

enum wait_kind {
    WAIT_STOP,
    WAIT_START,
    WAIT_READY,
    WAIT_SHUTDOWN,
    WAIT_RELOAD,
    WAIT_UPGRADE,
    WAIT_REEXEC
};

struct waited {
    struct node *node;
    unsigned starts_before;
    int outcome; /* 0 pending, 1 done, -1 failed */
};

struct client {
    ev_io io;
    ev_timer timer;
    struct daemon *d;
    struct client *prev, *next;
    bool dead; /* dropped: off the list, freed when the loop comes round */
    uid_t uid;
    bool privileged;
    enum client_phase phase;
    char *in;
    size_t in_len;
    struct proto_buf out;
    bool close_after_flush;
    /* WAITING */
    enum wait_kind wait;
    struct waited *waited;
    size_t n_waited;
    /* FOLLOWING */
    struct node *follow;
};

struct control {
    int fd;
    ev_io io;
    ev_prepare reaper; /* frees dropped clients, outside every callback */
    char *path;
    struct client *clients; /* newest first */
    size_t n_clients;
    struct client *graveyard;
    int spare_fd;    /* held in reserve for when fds run out (shed_connection) */
    ev_timer resume; /* listening again after a pause for lack of fds */
};

static void client_drop(struct client *c);
static struct client *client_add(struct daemon *d, int fd, uid_t uid);

/* ---- output ---- */

static void client_watch(struct client *c)
{
    int events = EV_READ | (c->out.len > 0 ? EV_WRITE : 0);
    if (c->io.events == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->d->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(c->d->loop, &c->io);
}

/* Write what we can; returns false if the client was dropped. */
static bool client_flush(struct client *c)
{
    if (c->out.failed || c->out.len > CONTROL_OUTPUT_MAX) {
        log_msg(LOG_WARNING, "control: dropping a client that does not read its replies");
        client_drop(c);
        return false;
    }
    while (c->out.len > 0) {
        ssize_t n = send(c->io.fd, c->out.data, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            client_drop(c);
            return false;
        }
        proto_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0 && c->close_after_flush) {
        client_drop(c);
        return false;
    }
    client_watch(c);
    return true;
}

/* RESULT, then close once it is written. */
static void client_result(struct client *c, int exit, const char *message, const char *error)
{
    proto_begin(&c->out, FRAME_RESULT);
    proto_add_int(&c->out, "ok", exit == CONTROL_EXIT_OK);
    proto_add_int(&c->out, "exit", exit);
    if (message && *message)
        proto_add_str(&c->out, "message", message);
    if (error && *error)
        proto_add_str(&c->out, "error", error);
    proto_end(&c->out);
    c->phase = PHASE_DONE;
    c->close_after_flush = true;
    client_flush(c);
}

/* ---- describing units ---- */

static void add_unit_frame(struct proto_buf *out, struct daemon *d, const struct node *node,
                           int depth)
{
    const struct unit *unit = unit_set_find(d->units, node->name);
    const struct service_os *svc = node->kind == NODE_SERVICE ? node->os : NULL;
    proto_begin(out, FRAME_UNIT);
    proto_add_str(out, "name", node->name);
    proto_add_str(out, "kind", node_kind_name(node->kind));
    if (node->parent)
        proto_add_str(out, "parent", node->parent->name);
    proto_add_int(out, "depth", depth);
    proto_add_str(out, "state", node_state_name(node->state));
    if (node->pid > 0)
        proto_add_int(out, "pid", node->pid);
    proto_add_int(out, "restarts", node->restarts);
    if (node->state == NODE_RUNNING)
        proto_add_int(out, "uptime_ms", now_ms() - node->since);
    if (node->last_exit.known)
        proto_add_int(out, node->last_exit.signaled ? "exit_signal" : "exit_code",
                      node->last_exit.value);
    if (svc && svc->status_text)
        proto_add_str(out, "status", svc->status_text);
    if (unit && unit->extra->description)
        proto_add_str(out, "description", unit->extra->description);
    if (svc && svc->mailbox) {
        struct mailbox_stats st;
        mailbox_get_stats(svc->mailbox, &st);
        proto_add_int(out, "mailbox_queued", (long long)st.held);
        proto_add_int(out, "mailbox_socket_bytes", (long long)st.socket_bytes);
        proto_add_int(out, "mailbox_kept", (long long)st.kept);
        proto_add_int(out, "mailbox_forwarded", (long long)st.forwarded);
        proto_add_int(out, "mailbox_reclaimed", (long long)st.reclaimed);
        proto_add_int(out, "mailbox_direct", st.direct);
        proto_add_int(out, "mailbox_capacity", svc->unit->extra->mailbox_capacity);
    }
    if (node->kind == NODE_SERVICE)
        proto_add_str(out, "type", service_type_name(node->config->type));
    else
        proto_add_str(out, "strategy", strategy_name(node->config->strategy));
    if (node->parent)
        proto_add_str(out, "restart", restart_type_name(node->config->restart));
    proto_add_int(out, "held", node->held);
    proto_end(out);
}

static void add_subtree(struct proto_buf *out, struct daemon *d, const struct node *node, int depth)
{
    add_unit_frame(out, d, node, depth);
    for (size_t i = 0; i < node->n_children; i++)
        add_subtree(out, d, node->children[i], depth + 1);
}

static int depth_of(const struct node *node)
{
    int depth = 0;
    for (; node->parent; node = node->parent)
        depth++;
    return depth;
}

/* ---- requests ---- */

#define REQUEST_UNITS_MAX 8192

struct request {
    char command[16];
    struct node *nodes[REQUEST_UNITS_MAX];
    size_t n_nodes;
    char missing[UNIT_NAME_MAX * 4];
    bool no_block, follow, bad;
    long long signal, lines, timeout_ms;
};

static bool is_active(const struct node *node)
{
    return node->state == NODE_STARTING || node->state == NODE_RUNNING ||
           node->state == NODE_STOPPING;
}

static void parse_request(struct daemon *d, const char *payload, uint32_t length, struct request *r)
{
    const char *cursor = payload, *end = payload + length;
    struct proto_field f;
    int more;
    char name[UNIT_NAME_MAX + 1];
    r->signal = SIGTERM;
    r->lines = 10;
    r->timeout_ms = -1;
    while ((more = proto_next_field(&cursor, end, &f)) == 1) {
        bool has_nul = memchr(f.value, '\0', f.value_len) != NULL;
        if (proto_key_is(&f, "command")) {
            if (has_nul || f.value_len >= sizeof(r->command))
                snprintf(r->command, sizeof(r->command), "?");
            else
                proto_value_str(&f, r->command, sizeof(r->command));
        } else if (proto_key_is(&f, "unit")) {
            struct node *node = NULL;
            if (f.value_len <= UNIT_NAME_MAX && !has_nul)
                node = node_find(d->root, proto_value_str(&f, name, sizeof(name)));
            if (!node) {
                if (!r->missing[0])
                    snprintf(r->missing, sizeof(r->missing), "%.*s",
                             (int)(f.value_len > 200 ? 200 : f.value_len), f.value);
                if (!r->missing[0])
                    snprintf(r->missing, sizeof(r->missing), "(a name with a NUL byte)");
            } else if (r->n_nodes < REQUEST_UNITS_MAX) {
                r->nodes[r->n_nodes++] = node;
            }
        } else if (proto_key_is(&f, "no_block")) {
            long long v;
            r->no_block = proto_value_int(&f, &v) && v;
        } else if (proto_key_is(&f, "follow")) {
            long long v;
            r->follow = proto_value_int(&f, &v) && v;
        } else if (proto_key_is(&f, "signal")) {
            if (!proto_value_int(&f, &r->signal) || r->signal < 0 || r->signal >= NSIG)
                r->bad = true;
        } else if (proto_key_is(&f, "lines")) {
            if (!proto_value_int(&f, &r->lines) || r->lines < 0)
                r->bad = true;
        } else if (proto_key_is(&f, "timeout_ms")) {
            if (!proto_value_int(&f, &r->timeout_ms) || r->timeout_ms < 0)
                r->bad = true;
        }
    }
    if (more < 0)
        r->bad = true;
}

static void cmd_status(struct client *c, struct request *r)
{
    if (r->n_nodes == 0)
        add_subtree(&c->out, c->d, c->d->root, 0);
    for (size_t i = 0; i < r->n_nodes; i++)
        add_subtree(&c->out, c->d, r->nodes[i], depth_of(r->nodes[i]));
    client_result(c, CONTROL_EXIT_OK, NULL, NULL);
}

/* ---- waiting for nodes to settle ---- */

static int outcome_of(enum wait_kind kind, const struct waited *w, bool shutting_down)
{
    const struct node *n = w->node;
    bool oneshot_done =
        n->state == NODE_DONE && n->kind == NODE_SERVICE && n->config->type == SERVICE_ONESHOT;
    switch (kind) {
    case WAIT_STOP:
        return is_active(n) ? 0 : 1;
    case WAIT_START:
        if (n->starts == w->starts_before)
            return shutting_down ? -1 : 0; /* not started yet */
        if (n->state == NODE_RUNNING || oneshot_done)
            return 1;
        if (is_active(n))
            return 0;
        return -1;
    case WAIT_READY:
        if (n->state == NODE_RUNNING || oneshot_done)
            return 1;
        if (n->state == NODE_STARTING || n->pending_start)
            return shutting_down ? -1 : 0;
        return -1;
    default:
        return 0;
    }
}

static void describe_node(const struct node *n, char *buf, size_t size)
{
    char how[64];
    describe_exit(n->last_exit, how, sizeof(how));
    if (n->state == NODE_RUNNING && n->pid > 0)
        snprintf(buf, size, "%s: running (pid %d)", n->name, n->pid);
    else if (n->state == NODE_FAILED || (n->state == NODE_STOPPED && n->last_exit.known))
        snprintf(buf, size, "%s: %s (%s)", n->name, node_state_name(n->state), how);
    else
        snprintf(buf, size, "%s: %s", n->name, node_state_name(n->state));
}

/* All settled? Then answer: one line per unit, errors for the failed. */
static void check_waiting(struct client *c)
{
    bool shutting_down = c->d->core.shutting_down;
    bool all = true, failed = false;
    for (size_t i = 0; i < c->n_waited; i++) {
        struct waited *w = &c->waited[i];
        if (w->outcome == 0)
            w->outcome = outcome_of(c->wait, w, shutting_down);
        all = all && w->outcome != 0;
        failed = failed || w->outcome < 0;
    }
    if (!all)
        return;
    struct proto_buf *out = &c->out;
    proto_begin(out, FRAME_RESULT);
    proto_add_int(out, "ok", !failed);
    proto_add_int(out, "exit", failed ? CONTROL_EXIT_FAILED : CONTROL_EXIT_OK);
    for (size_t i = 0; i < c->n_waited; i++) {
        char line[256];
        describe_node(c->waited[i].node, line, sizeof(line));
        proto_add_str(out, c->waited[i].outcome < 0 ? "error" : "message", line);
    }
    proto_end(out);
    free(c->waited);
    c->waited = NULL;
    c->n_waited = 0;
    c->phase = PHASE_DONE;
    c->close_after_flush = true;
    client_flush(c);
}

static void start_waiting(struct client *c, enum wait_kind kind, struct request *r)
{
    c->waited = calloc(r->n_nodes, sizeof(*c->waited));
    if (!c->waited) {
        client_result(c, CONTROL_EXIT_FAILED, NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < r->n_nodes; i++) {
        struct node *node = r->nodes[i];
        c->waited[i].node = node;
        c->waited[i].starts_before = node->starts;
        /* A start of a unit already starting is answered when it is ready. */
        if (kind == WAIT_START && node->state == NODE_STARTING && strcmp(r->command, "start") == 0)
            c->waited[i].starts_before = node->starts - 1;
    }
    c->n_waited = r->n_nodes;
    c->wait = kind;
    c->phase = PHASE_WAITING;
    ev_timer_stop(c->d->loop, &c->timer);
    if (kind == WAIT_READY && r->timeout_ms >= 0) {
        ev_timer_set(&c->timer, (double)r->timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->d->loop, &c->timer);
    }
    check_waiting(c);
}

/* ---- commands that change things ---- */

/* `restart root` restarts the root's children (the root itself cannot stop
 * without ending arbord): wait for them instead. */
static void expand_root_restart(struct daemon *d, struct request *r)
{
    for (size_t i = 0; i < r->n_nodes; i++) {
        if (r->nodes[i] != d->root)
            continue;
        r->nodes[i] = r->nodes[--r->n_nodes];
        for (size_t j = 0; j < d->root->n_children && r->n_nodes < REQUEST_UNITS_MAX; j++)
            if (!d->root->children[j]->held)
                r->nodes[r->n_nodes++] = d->root->children[j];
        return;
    }
}

static void cmd_change(struct client *c, struct request *r)
{
    struct daemon *d = c->d;
    enum wait_kind kind = WAIT_START;
    if (d->core.shutting_down) {
        client_result(c, CONTROL_EXIT_FAILED, NULL, "arbord is shutting down");
        return;
    }
    bool restart_root = false;
    for (size_t i = 0; i < r->n_nodes; i++)
        restart_root =
            restart_root || (r->nodes[i] == d->root && strcmp(r->command, "restart") == 0);
    for (size_t i = 0; i < r->n_nodes; i++) {
        struct node *node = r->nodes[i];
        if (strcmp(r->command, "stop") == 0) {
            core_stop_node(&d->core, node);
            kind = WAIT_STOP;
        } else if (strcmp(r->command, "start") == 0) {
            core_start_node(&d->core, node);
        } else {
            core_restart_node(&d->core, node);
        }
    }
    if (restart_root)
        expand_root_restart(d, r);
    /* Record "starts so far" before the core acts, then let it act. */
    struct waited *snapshot = NULL;
    if (!r->no_block)
        start_waiting(c, kind, r), snapshot = c->waited;
    /* A start of something already running is done at once. */
    for (size_t i = 0; snapshot && i < c->n_waited; i++)
        if (strcmp(r->command, "start") == 0 && c->waited[i].node->state == NODE_RUNNING)
            c->waited[i].outcome = 1;
    run_core(d);
    if (c->dead)
        return;
    if (r->no_block) {
        client_result(c, CONTROL_EXIT_OK, "queued", NULL);
        return;
    }
    if (c->phase == PHASE_WAITING)
        check_waiting(c);
}

/* Answered by control_upgrade_settled() once the old instance has gone or
 * the new one has failed. */
static void cmd_upgrade(struct client *c, struct request *r)
{
    char why[320];
    if (upgrade_begin(c->d, r->nodes[0], why, sizeof(why)) < 0) {
        client_result(c, CONTROL_EXIT_FAILED, NULL, why);
        return;
    }
    c->waited = calloc(1, sizeof(*c->waited));
    if (!c->waited) {
        client_result(c, CONTROL_EXIT_FAILED, NULL, "out of memory (the upgrade goes on)");
        return;
    }
    c->waited[0].node = r->nodes[0];
    c->n_waited = 1;
    c->wait = WAIT_UPGRADE;
    c->phase = PHASE_WAITING;
    ev_timer_stop(c->d->loop, &c->timer);
    run_core(c->d);
}

static void signal_subtree(struct node *node, int sig, int *count)
{
    if (node->kind == NODE_SERVICE) {
        struct service_os *svc = node->os;
        if (node->pid > 0 && (kill(-svc->pgid, sig) == 0 || kill(node->pid, sig) == 0))
            (*count)++;
        return;
    }
    for (size_t i = 0; i < node->n_children; i++)
        signal_subtree(node->children[i], sig, count);
}

static void cmd_kill(struct client *c, struct request *r)
{
    int count = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        signal_subtree(r->nodes[i], (int)r->signal, &count);
    char message[128];
    snprintf(message, sizeof(message), "signal %lld sent to %d service%s", r->signal, count,
             count == 1 ? "" : "s");
    if (count == 0)
        client_result(c, CONTROL_EXIT_FAILED, NULL, "not running");
    else
        client_result(c, CONTROL_EXIT_OK, message, NULL);
}

/* ---- logs ---- */

static void add_log_frame(struct proto_buf *out, const char *unit, pid_t pid, int64_t time_ms,
                          const char *line, size_t len)
{
    proto_begin(out, FRAME_LOG);
    proto_add_str(out, "unit", unit);
    proto_add_int(out, "pid", pid);
    proto_add_int(out, "time_ms", time_ms);
    proto_add(out, "line", line, len);
    proto_end(out);
}

struct log_visit {
    struct proto_buf *out;
    const char *unit;
};

static void visit_log(void *ctx, pid_t pid, int64_t time_ms, const char *line, size_t len)
{
    struct log_visit *v = ctx;
    add_log_frame(v->out, v->unit, pid, time_ms, line, len);
}

static void cmd_logs(struct client *c, struct request *r)
{
    struct node *node = r->nodes[0];
    if (node->kind != NODE_SERVICE) {
        client_result(c, CONTROL_EXIT_FAILED, NULL, "a supervisor has no output of its own");
        return;
    }
    struct service_os *svc = node->os;
    struct log_visit v = {&c->out, node->name};
    log_ring_last(svc->logs, (size_t)r->lines, visit_log, &v);
    if (!r->follow) {
        client_result(c, CONTROL_EXIT_OK, NULL, NULL);
        return;
    }
    c->phase = PHASE_FOLLOWING;
    c->follow = node;
    ev_timer_stop(c->d->loop, &c->timer);
    client_flush(c);
}

void control_output(struct daemon *d, struct service_os *svc, pid_t pid, msec_t time_ms,
                    const char *line, size_t len)
{
    if (!d->control)
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase != PHASE_FOLLOWING || c->follow != svc->node)
            continue;
        add_log_frame(&c->out, svc->node->name, pid, time_ms, line, len);
        client_flush(c);
    }
}

/* ---- dispatch ---- */

struct command {
    const char *name;
    bool changes;  /* needs root or arbord's own user */
    int min_units; /* how many unit= it needs */
    int max_units; /* -1: any number */
};

static const struct command commands[] = {
    {"status", false, 0, -1}, {"start", true, 1, -1}, {"stop", true, 1, -1},
    {"restart", true, 1, -1}, {"kill", true, 1, -1},  {"reload", true, 0, 0},
    {"logs", false, 1, 1},    {"wait", false, 1, 1},  {"shutdown", true, 0, 0},
    {"upgrade", true, 1, 1},  {"reexec", true, 0, 0},
};

static void handle_request(struct client *c, const char *payload, uint32_t length)
{
    static struct request r; /* large; one request is handled at a time */
    memset(&r, 0, sizeof(r));
    parse_request(c->d, payload, length, &r);
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, r.command) == 0)
            cmd = &commands[i];
    char why[320];
    if (!cmd || r.bad) {
        snprintf(why, sizeof(why), cmd ? "bad request" : "unknown command '%s'", r.command);
        client_result(c, CONTROL_EXIT_USAGE, NULL, why);
        return;
    }
    if (r.missing[0]) {
        snprintf(why, sizeof(why), "no such unit: %s", r.missing);
        client_result(c, CONTROL_EXIT_NO_UNIT, NULL, why);
        return;
    }
    if ((int)r.n_nodes < cmd->min_units ||
        (cmd->max_units >= 0 && (int)r.n_nodes > cmd->max_units)) {
        snprintf(why, sizeof(why), "%s: wrong number of units", cmd->name);
        client_result(c, CONTROL_EXIT_USAGE, NULL, why);
        return;
    }
    if (cmd->changes && !c->privileged) {
        struct passwd *pw = geteuid() == 0 ? NULL : getpwuid(geteuid());
        snprintf(why, sizeof(why), "permission denied: only root%s%s may %s (you are uid %d)",
                 pw ? " or " : "", pw ? pw->pw_name : "", cmd->name, (int)c->uid);
        client_result(c, CONTROL_EXIT_FAILED, NULL, why);
        return;
    }
    log_msg(cmd->changes ? LOG_INFO : LOG_DEBUG, "control: %s from uid %d", cmd->name, (int)c->uid);
    if (strcmp(r.command, "status") == 0) {
        cmd_status(c, &r);
    } else if (strcmp(r.command, "kill") == 0) {
        cmd_kill(c, &r);
    } else if (strcmp(r.command, "logs") == 0) {
        cmd_logs(c, &r);
    } else if (strcmp(r.command, "wait") == 0) {
        start_waiting(c, WAIT_READY, &r);
    } else if (strcmp(r.command, "shutdown") == 0) {
        c->phase = PHASE_WAITING;
        c->wait = WAIT_SHUTDOWN;
        ev_timer_stop(c->d->loop, &c->timer);
        core_shutdown(&c->d->core);
        run_core(c->d);
    } else if (strcmp(r.command, "upgrade") == 0) {
        cmd_upgrade(c, &r);
    } else if (strcmp(r.command, "reexec") == 0) {
        if (reexec_request(c->d, why, sizeof(why)) < 0) {
            client_result(c, CONTROL_EXIT_FAILED, NULL, why);
        } else {
            c->phase = PHASE_WAITING;
            c->wait = WAIT_REEXEC;
            ev_timer_stop(c->d->loop, &c->timer);
        }
    } else if (strcmp(r.command, "reload") == 0) {
        struct diagnostics diag = {0};
        int rr = reload_request(c->d, &diag);
        if (rr < 0) {
            proto_begin(&c->out, FRAME_RESULT);
            proto_add_int(&c->out, "ok", 0);
            proto_add_int(&c->out, "exit", CONTROL_EXIT_FAILED);
            for (size_t i = 0; i < diag.count; i++)
                proto_add_str(&c->out, "error", diag.messages[i]);
            if (diag.count == 0)
                proto_add_str(&c->out, "error",
                              rr == -EBUSY ? "a reload is already under way" : "reload failed");
            proto_end(&c->out);
            c->phase = PHASE_DONE;
            c->close_after_flush = true;
            client_flush(c);
        } else {
            c->phase = PHASE_WAITING;
            c->wait = WAIT_RELOAD;
            ev_timer_stop(c->d->loop, &c->timer);
            control_reload_settled(c->d); /* it may be done already */
        }
        diag_free(&diag);
    } else {
        cmd_change(c, &r);
    }
}

/* ---- input ---- */

static void handle_frame(struct client *c, uint16_t type, const char *payload, uint32_t length)
{
    if (c->phase == PHASE_HELLO) {
        const char *cursor = payload, *end = payload + length;
        struct proto_field f;
        long long version = -1;
        while (proto_next_field(&cursor, end, &f) == 1)
            if (proto_key_is(&f, "version"))
                proto_value_int(&f, &version);
        if (type != FRAME_HELLO || version != CONTROL_PROTOCOL_VERSION) {
            client_result(c, CONTROL_EXIT_FAILED, NULL,
                          "protocol version mismatch: arbord speaks version 1");
            return;
        }
        proto_begin(&c->out, FRAME_HELLO);
        proto_add_int(&c->out, "version", CONTROL_PROTOCOL_VERSION);
        proto_add_int(&c->out, "pid", getpid());
        proto_end(&c->out);
        c->phase = PHASE_REQUEST;
        client_flush(c);
        return;
    }
    if (c->phase == PHASE_REQUEST && type == FRAME_REQUEST) {
        handle_request(c, payload, length);
        return;
    }
    client_drop(c); /* anything else is a protocol error */
}

static void client_read(struct client *c)
{
    size_t cap = CONTROL_HEADER_SIZE + CONTROL_REQUEST_MAX;
    for (;;) {
        if (c->phase != PHASE_HELLO && c->phase != PHASE_REQUEST) {
            /* Nothing more is expected: only notice the close. */
            char sink[256];
            ssize_t n = recv(c->io.fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                client_drop(c);
            return;
        }
        if (!c->in && !(c->in = malloc(cap))) {
            client_drop(c);
            return;
        }
        ssize_t n = recv(c->io.fd, c->in + c->in_len, cap - c->in_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            client_drop(c);
            return;
        }
        c->in_len += (size_t)n;
        uint16_t type;
        const char *payload;
        uint32_t length;
        long size;
        while ((size = proto_frame(c->in, c->in_len, CONTROL_REQUEST_MAX, &type, &payload,
                                   &length)) > 0) {
            enum client_phase before = c->phase;
            handle_frame(c, type, payload, length);
            if (c->dead || c->phase == PHASE_DONE)
                return;
            memmove(c->in, c->in + size, c->in_len - (size_t)size);
            c->in_len -= (size_t)size;
            if (before == c->phase)
                break;
        }
        if (size < 0) {
            client_drop(c);
            return;
        }
    }
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = (struct client *)w;
    if ((revents & EV_WRITE) && !client_flush(c))
        return;
    if ((revents & EV_READ) && !c->dead)
        client_read(c);
}

static void on_client_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *c = (struct client *)((char *)w - offsetof(struct client, timer));
    if (c->phase == PHASE_WAITING && c->wait == WAIT_READY) {
        free(c->waited);
        c->waited = NULL;
        c->n_waited = 0;
        client_result(c, CONTROL_EXIT_FAILED, NULL, "timed out");
        return;
    }
    log_msg(LOG_DEBUG, "control: dropping a client that did not send its request in time");
    client_drop(c);
}

/* ---- clients ---- */

/* Close and unlink at once; free later, so that a caller up the stack
 * still holding `c` only finds it marked dead. */
static void client_drop(struct client *c)
{
    if (c->dead)
        return;
    struct control *ctl = c->d->control;
    c->dead = true;
    ev_io_stop(c->d->loop, &c->io);
    ev_timer_stop(c->d->loop, &c->timer);
    close(c->io.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl->n_clients--;
    c->prev = NULL;
    c->next = ctl->graveyard;
    ctl->graveyard = c;
}

static void free_dead(struct control *ctl)
{
    while (ctl->graveyard) {
        struct client *c = ctl->graveyard;
        ctl->graveyard = c->next;
        free(c->in);
        free(c->waited);
        proto_buf_free(&c->out);
        free(c);
    }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    free_dead(w->data);
}

/* Make room for a newcomer: drop the oldest client still sending its
 * request; failing that, when the newcomer may change things, the oldest
 * client that may not (readers must never lock root out). */
static bool make_room(struct control *ctl, bool for_privileged)
{
    struct client *idle = NULL, *reader = NULL;
    for (struct client *c = ctl->clients; c; c = c->next) {
        if (c->phase == PHASE_HELLO || c->phase == PHASE_REQUEST)
            idle = c;
        if (!c->privileged)
            reader = c;
    }
    struct client *victim = idle ? idle : for_privileged ? reader : NULL;
    if (!victim)
        return false;
    client_drop(victim);
    return true;
}

/* Out of fds: the pending connection would keep the listening socket
 * readable and the loop spinning. Give back the spare fd kept for this,
 * take the connection and close it at once (the client sees the close and
 * can retry), then take the spare again: degraded, never stuck. If even
 * that fails (the limit was lowered below the fds arbord holds, so the
 * spare's number is no help), stop listening for a second: the backlog
 * keeps the clients, and arbord sleeps instead of spinning. Returns false
 * in that case. */
static bool shed_connection(struct daemon *d)
{
    struct control *ctl = d->control;
    static unsigned long shed;
    if (ctl->spare_fd >= 0) {
        close(ctl->spare_fd);
        ctl->spare_fd = -1;
    }
    int fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    ctl->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (shed++ % 100 == 0)
        log_msg(LOG_WARNING, "control: out of file descriptors: %lu connection%s refused", shed,
                shed == 1 ? "" : "s");
    if (fd >= 0)
        return true;
    ev_io_stop(d->loop, &ctl->io);
    ev_timer_set(&ctl->resume, 1.0, 0.0);
    ev_timer_start(d->loop, &ctl->resume);
    return false;
}

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct control *ctl = w->data;
    ev_io_start(loop, &ctl->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct daemon *d = w->data;
    struct control *ctl = d->control;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                if (!shed_connection(d))
                    return;
                continue;
            }
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_msg(LOG_WARNING, "control: accept: %s", strerror(errno));
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            (ctl->n_clients >= CONTROL_CLIENTS_MAX &&
             !make_room(ctl, cred.uid == 0 || cred.uid == geteuid()))) {
            close(fd);
            continue;
        }
        if (!client_add(d, fd, cred.uid))
            close(fd);
    }
}

/* ---- the daemon's side ---- */

void control_transition(struct daemon *d, struct node *node)
{
    if (!d->control)
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase != PHASE_WAITING || c->wait == WAIT_SHUTDOWN || c->wait == WAIT_RELOAD ||
            c->wait == WAIT_UPGRADE || c->wait == WAIT_REEXEC)
            continue;
        bool concerned = d->core.shutting_down;
        for (size_t i = 0; i < c->n_waited && !concerned; i++)
            concerned = c->waited[i].node == node;
        if (concerned)
            check_waiting(c);
    }
}

void control_reload_settled(struct daemon *d)
{
    if (!d->control || reload_in_progress(d))
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase == PHASE_WAITING && c->wait == WAIT_RELOAD)
            client_result(c, CONTROL_EXIT_OK, reload_summary(d), NULL);
    }
}

void control_upgrade_settled(struct daemon *d, struct node *node, int exit, const char *message)
{
    if (!d->control)
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase == PHASE_WAITING && c->wait == WAIT_UPGRADE && c->waited[0].node == node)
            client_result(c, exit, exit == 0 ? message : NULL, exit == 0 ? NULL : message);
    }
}

void control_reexec_failed(struct daemon *d, const char *why)
{
    if (!d->control)
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase == PHASE_WAITING && c->wait == WAIT_REEXEC)
            client_result(c, CONTROL_EXIT_FAILED, NULL, why);
    }
}

void control_save(struct daemon *d, struct state_out *out)
{
    struct control *ctl = d->control;
    st_record(out, "control");
    st_fd(out, ctl->fd);
    st_end(out);
    /* The clients that asked for the re-exec get their answer from the next
     * arbord; every other connection closes with the exec. */
    for (struct client *c = ctl->clients; c; c = c->next) {
        if (c->phase != PHASE_WAITING || c->wait != WAIT_REEXEC || c->dead)
            continue;
        st_record(out, "reexec-client");
        st_fd(out, c->io.fd);
        st_int(out, (long long)c->uid);
        st_end(out);
    }
}

static struct client *client_add(struct daemon *d, int fd, uid_t uid)
{
    struct control *ctl = d->control;
    struct client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->d = d;
    c->uid = uid;
    c->privileged = uid == 0 || uid == geteuid();
    ev_io_init(&c->io, on_client_io, fd, EV_READ);
    ev_io_start(d->loop, &c->io);
    ev_timer_init(&c->timer, on_client_timer, CONTROL_REQUEST_TIMEOUT, 0.0);
    ev_timer_start(d->loop, &c->timer);
    c->next = ctl->clients;
    if (ctl->clients)
        ctl->clients->prev = c;
    ctl->clients = c;
    ctl->n_clients++;
    return c;
}

void control_answer_reexec(struct daemon *d, int fd, uid_t uid, const char *message)
{
    struct client *c = client_add(d, fd, uid);
    if (!c) {
        close(fd);
        return;
    }
    c->phase = PHASE_WAITING;
    client_result(c, CONTROL_EXIT_OK, message, NULL);
}

void control_forget(struct daemon *d, struct node *node)
{
    if (!d->control)
        return;
    struct client *next;
    for (struct client *c = d->control->clients; c; c = next) {
        next = c->next;
        if (c->phase == PHASE_FOLLOWING && c->follow == node) {
            c->follow = NULL;
            client_result(c, CONTROL_EXIT_FAILED, NULL, "the unit was removed by a reload");
            continue;
        }
        if (c->phase != PHASE_WAITING)
            continue;
        for (size_t i = 0; i < c->n_waited; i++) {
            if (c->waited[i].node != node)
                continue;
            free(c->waited);
            c->waited = NULL;
            c->n_waited = 0;
            client_result(c, CONTROL_EXIT_FAILED, NULL, "the unit was removed by a reload");
            break;
        }
    }
}

int control_open(struct daemon *d)
{
    return control_open_fd(d, -1);
}

int control_open_fd(struct daemon *d, int inherited)
{
    struct control *ctl = calloc(1, sizeof(*ctl));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!ctl)
        return -ENOMEM;
    if (asprintf(&ctl->path, "%s/%s", d->options->runtime_dir, CONTROL_SOCKET_NAME) < 0) {
        free(ctl);
        return -ENOMEM;
    }
    int error = 0;
    if (strlen(ctl->path) >= sizeof(addr.sun_path)) {
        error = -ENAMETOOLONG;
        goto fail;
    }
    strcpy(addr.sun_path, ctl->path);
    if (inherited >= 0) { /* a re-exec: bound and listening already */
        ctl->fd = inherited;
        fcntl(ctl->fd, F_SETFD, FD_CLOEXEC);
        goto listening;
    }
    ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->fd < 0) {
        error = -errno;
        goto fail;
    }
    unlink(ctl->path); /* we hold the runtime lock: whatever is there is stale */
    if (bind(ctl->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || chmod(ctl->path, 0666) < 0 ||
        listen(ctl->fd, 128) < 0) {
        error = -errno;
        close(ctl->fd);
        goto fail;
    }
listening:
    ev_io_init(&ctl->io, on_accept, ctl->fd, EV_READ);
    ctl->io.data = d;
    ev_io_start(d->loop, &ctl->io);
    ctl->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ev_timer_init(&ctl->resume, on_resume, 1.0, 0.0);
    ctl->resume.data = ctl;
    ev_prepare_init(&ctl->reaper, on_prepare);
    ctl->reaper.data = ctl;
    ev_prepare_start(d->loop, &ctl->reaper);
    d->control = ctl;
    return 0;
fail:
    free(ctl->path);
    free(ctl);
    return error;
}

void control_close(struct daemon *d)
{
    struct control *ctl = d->control;
    if (!ctl)
        return;
    ev_io_stop(d->loop, &ctl->io);
    ev_timer_stop(d->loop, &ctl->resume);
    ev_prepare_stop(d->loop, &ctl->reaper);
    close(ctl->fd);
    unlink(ctl->path);
    while (ctl->clients) {
        struct client *c = ctl->clients;
        if (c->phase == PHASE_WAITING && c->wait == WAIT_SHUTDOWN) {
            /* The tree has stopped: say so, with a bounded wait for the
             * client to take it (the loop is no longer running). */
            struct timeval tv = {.tv_sec = 1};
            int flags = fcntl(c->io.fd, F_GETFL);
            fcntl(c->io.fd, F_SETFL, flags & ~O_NONBLOCK);
            setsockopt(c->io.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            proto_begin(&c->out, FRAME_RESULT);
            proto_add_int(&c->out, "ok", 1);
            proto_add_int(&c->out, "exit", CONTROL_EXIT_OK);
            proto_add_str(&c->out, "message", "the tree has stopped; arbord is exiting");
            proto_end(&c->out);
            if (!c->out.failed && send(c->io.fd, c->out.data, c->out.len, MSG_NOSIGNAL) < 0)
                log_msg(LOG_DEBUG, "control: could not tell a client about the shutdown");
        }
        client_drop(c);
    }
    free_dead(ctl);
    if (ctl->spare_fd >= 0)
        close(ctl->spare_fd);
    free(ctl->path);
    free(ctl);
    d->control = NULL;
}
