/*
 * upgrade.c: see upgrade.h for the theory of operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "daemon.h"
#include "mailbox.h"
#include "os/log.h"
#include "os/notify.h"
#include "os/output.h"
#include "os/procs.h"
#include "os/spawn.h"
#include "reload.h"
#include "upgrade.h"

enum upgrade_phase { UPGRADE_STARTING, UPGRADE_FAILING, UPGRADE_RETIRING };

struct upgrade {
    struct upgrade *next; /* d->upgrades */
    struct daemon *d;
    struct service_os *svc;
    enum upgrade_phase phase;
    struct unit *spare; /* the unit not in the set: the old one, until the end */
    pid_t new_pid;
    pid_t old_pid, old_pgid; /* RETIRING */
    ev_io status_io;         /* the new instance's spawn status pipe */
    ev_io old_pidfd;         /* RETIRING: the old main process's exit */
    ev_timer timer;          /* StartTimeout, then a stop timeout */
    ev_timer poll;           /* RETIRING without pidfd_open(2) */
    struct output_stream *output;
    int kill_signal; /* of the instance being stopped */
    bool killed;     /* SIGKILL sent */
    char error[256];
};

static void signal_group(pid_t pgid, pid_t pid, int sig)
{
    if (pgid > 0 && kill(-pgid, sig) == 0)
        return;
    if (pid > 0)
        kill(pid, sig);
}

/* Swap the unit in the set (and the service) for `unit`; the one taken
 * out becomes the spare. */
static void install_unit(struct upgrade *up, struct unit *unit, bool refresh)
{
    struct unit_set *set = up->d->units;
    const struct unit *current = up->svc->unit;
    for (size_t i = 0; i < set->count; i++) {
        if (set->units[i] == current) {
            up->spare = set->units[i];
            set->units[i] = unit;
            break;
        }
    }
    up->svc->unit = unit;
    if (refresh)
        service_refresh(up->d, up->svc); /* Listen= sockets the new unit adds */
}

static void stop_watchers(struct upgrade *up)
{
    struct ev_loop *loop = up->d->loop;
    ev_timer_stop(loop, &up->timer);
    ev_timer_stop(loop, &up->poll);
    if (up->status_io.fd >= 0) {
        ev_io_stop(loop, &up->status_io);
        close(up->status_io.fd);
        ev_io_set(&up->status_io, -1, EV_READ);
    }
    if (up->old_pidfd.fd >= 0) {
        ev_io_stop(loop, &up->old_pidfd);
        close(up->old_pidfd.fd);
        ev_io_set(&up->old_pidfd, -1, EV_READ);
    }
}

/* Tell the operator, and forget the upgrade. */
static void settle(struct upgrade *up, int exit, const char *message)
{
    struct daemon *d = up->d;
    struct service_os *svc = up->svc;
    stop_watchers(up);
    for (struct upgrade **p = &d->upgrades; *p; p = &(*p)->next) {
        if (*p == up) {
            *p = up->next;
            break;
        }
    }
    svc->upgrade = NULL;
    unit_free(up->spare);
    if (exit == 0)
        log_unit(LOG_INFO, svc->node->name, "upgrade: %s", message);
    else
        log_unit(LOG_ERR, svc->node->name, "upgrade failed: %s", message);
    control_upgrade_settled(d, svc->node, exit, message);
    free(up);
}

/* Stop the new instance; its exit settles the upgrade as a failure. The
 * old unit goes back at once, before the core can start anything with
 * the new one. */
static void fail(struct upgrade *up, bool at_once, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct upgrade *up, bool at_once, const char *fmt, ...)
{
    if (up->phase != UPGRADE_STARTING)
        return;
    if (!up->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(up->error, sizeof(up->error), fmt, ap);
        va_end(ap);
    }
    const struct unit *new_unit = up->svc->unit;
    install_unit(up, up->spare, true); /* the old unit back; the new one is spare */
    up->kill_signal = at_once || new_unit->config.shutdown == SHUTDOWN_BRUTAL_KILL
                          ? SIGKILL
                          : new_unit->config.kill_signal;
    up->killed = up->kill_signal == SIGKILL;
    up->phase = UPGRADE_FAILING;
    ev_timer_stop(up->d->loop, &up->timer);
    signal_group(up->new_pid, up->new_pid, up->kill_signal);
    msec_t grace = new_unit->config.shutdown;
    if (!up->killed && grace != DURATION_INFINITY) {
        ev_timer_set(&up->timer, (double)grace / 1000.0, 0.0);
        ev_timer_start(up->d->loop, &up->timer);
    }
}

/* The old main process is gone: the upgrade is done. What else it left
 * in its process group goes too, as at any stop. */
static void retired(struct upgrade *up)
{
    char message[160];
    signal_group(up->old_pgid, 0, SIGKILL);
    snprintf(message, sizeof(message), "%s upgraded: pid %d replaced pid %d", up->svc->node->name,
             (int)up->new_pid, (int)up->old_pid);
    settle(up, 0, message);
}

static void on_old_pidfd(struct ev_loop *loop, ev_io *w, int revents)
{
    struct upgrade *up = w->data;
    struct daemon *d = up->d;
    retired(up); /* frees it */
    run_core(d);
}

static void on_old_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upgrade *up = w->data;
    struct daemon *d = up->d;
    if (procs_alive(up->old_pid))
        return;
    retired(up); /* frees it */
    run_core(d);
}

/* Ready: the new instance becomes the service's main process, the old one
 * is told to stop. */
static void promote(struct upgrade *up)
{
    struct daemon *d = up->d;
    struct service_os *svc = up->svc;
    struct node *node = svc->node;

    if (up->status_io.fd >= 0) {
        ev_io_stop(d->loop, &up->status_io);
        close(up->status_io.fd);
        ev_io_set(&up->status_io, -1, EV_READ);
    }
    ev_timer_stop(d->loop, &up->timer);
    up->old_pid = node->pid;
    up->old_pgid = svc->pgid;
    up->kill_signal =
        node->config->shutdown == SHUTDOWN_BRUTAL_KILL ? SIGKILL : node->config->kill_signal;
    msec_t grace = node->config->shutdown;

    close_main_pidfd(svc);
    node->pid = up->new_pid;
    node->config = &svc->unit->config; /* the old unit (the spare) goes next */
    svc->pgid = up->new_pid;
    pidmap_put(&d->pids, up->new_pid, svc);
    svc->output = up->output; /* the old stream lives on until its EOF */
    free(svc->status_text);
    svc->status_text = NULL;
    unit_free(up->spare);
    up->spare = NULL;
    up->phase = UPGRADE_RETIRING;
    core_watchdog_ping(&d->core, node); /* a fresh interval for the new instance */
    log_unit(LOG_INFO, node->name, "upgrade: pid %d is ready; stopping pid %d", (int)up->new_pid,
             (int)up->old_pid);

    int fd = (int)syscall(SYS_pidfd_open, up->old_pid, 0);
    int error = errno;
    signal_group(up->old_pgid, up->old_pid, up->kill_signal);
    if (fd < 0 && error == ESRCH) { /* already gone */
        retired(up);
        return;
    }
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        ev_io_set(&up->old_pidfd, fd, EV_READ);
        ev_io_start(d->loop, &up->old_pidfd);
    } else { /* no pidfd_open(2): look every 100 ms */
        ev_timer_start(d->loop, &up->poll);
    }
    up->killed = up->kill_signal == SIGKILL;
    if (!up->killed && grace != DURATION_INFINITY) {
        ev_timer_set(&up->timer, (double)grace / 1000.0, 0.0);
        ev_timer_start(d->loop, &up->timer);
    }
}

static void on_status_pipe(struct ev_loop *loop, ev_io *w, int revents)
{
    struct upgrade *up = w->data;
    struct daemon *d = up->d;
    struct spawn_failure failure;
    int r = spawn_read_status(w->fd, &failure);
    if (r == -EAGAIN)
        return;
    ev_io_stop(loop, w);
    close(w->fd);
    ev_io_set(w, -1, EV_READ);
    if (r == 1) {
        snprintf(up->error, sizeof(up->error), "cannot start %s: %s failed: %s",
                 up->svc->unit->argv[0], spawn_step_name(failure.step), strerror(failure.error));
        /* The child exits by itself; its exit settles the upgrade. */
    } else if (up->svc->unit->config.type != SERVICE_NOTIFY) {
        promote(up); /* may settle and free it */
    }
    run_core(d);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upgrade *up = w->data;
    switch (up->phase) {
    case UPGRADE_STARTING:
        fail(up, false, "the new instance was not ready within StartTimeout");
        break;
    case UPGRADE_FAILING:
        up->killed = true;
        signal_group(up->new_pid, up->new_pid, SIGKILL);
        break;
    case UPGRADE_RETIRING:
        log_unit(LOG_WARNING, up->svc->node->name,
                 "upgrade: old pid %d did not stop in time; sending SIGKILL", (int)up->old_pid);
        up->killed = true;
        signal_group(up->old_pgid, up->old_pid, SIGKILL);
        break;
    }
    run_core(up->d);
}

int upgrade_begin(struct daemon *d, struct node *node, char *why, size_t size)
{
    struct service_os *svc = node->kind == NODE_SERVICE ? node->os : NULL;
    if (!svc) {
        snprintf(why, size, "%s is a supervisor: only services can be upgraded", node->name);
        return -1;
    }
    if (d->core.shutting_down) {
        snprintf(why, size, "arbord is shutting down");
        return -1;
    }
    if (svc->upgrade) {
        snprintf(why, size, "an upgrade of %s is already under way", node->name);
        return -1;
    }
    if (reload_in_progress(d)) {
        snprintf(why, size, "a reload is under way");
        return -1;
    }
    if (node->state != NODE_RUNNING || node->pid <= 0) {
        snprintf(why, size, "%s is not running (%s)", node->name, node_state_name(node->state));
        return -1;
    }
    if (svc->unit->config.type == SERVICE_ONESHOT) {
        snprintf(why, size, "%s is Type=oneshot: use restart", node->name);
        return -1;
    }

    /* The unit as it is on disk now. */
    struct diagnostics diag = {0};
    struct unit *unit = unit_file_trusted(svc->unit->path, &diag) == 0
                            ? unit_parse_file(svc->unit->path, node->name, NODE_SERVICE, &diag)
                            : NULL;
    if (!unit || diag_problems(&diag) > 0) {
        snprintf(why, size, "%s", diag.count ? diag.messages[0] : "cannot read the unit file");
        for (size_t i = 0; i < diag.count; i++)
            log_unit(LOG_ERR, node->name, "upgrade: %s", diag.messages[i]);
        unit_free(unit);
        diag_free(&diag);
        return -1;
    }
    diag_free(&diag);
    const char *refused = NULL;
    if (unit->config.type == SERVICE_ONESHOT)
        refused = "the new unit is Type=oneshot";
    else if (unit->mailbox != svc->unit->mailbox)
        refused = "Mailbox= changed: an upgrade keeps the mailbox; use restart";
    if (refused) {
        snprintf(why, size, "%s", refused);
        unit_free(unit);
        return -1;
    }

    struct upgrade *up = calloc(1, sizeof(*up));
    if (!up) {
        snprintf(why, size, "out of memory");
        unit_free(unit);
        return -1;
    }
    up->d = d;
    up->svc = svc;
    ev_io_init(&up->status_io, on_status_pipe, -1, EV_READ);
    up->status_io.data = up;
    ev_io_init(&up->old_pidfd, on_old_pidfd, -1, EV_READ);
    up->old_pidfd.data = up;
    ev_timer_init(&up->timer, on_timer, 0.0, 0.0);
    up->timer.data = up;
    ev_timer_init(&up->poll, on_old_poll, 0.1, 0.1);
    up->poll.data = up;
    install_unit(up, unit, true);

    struct instance inst;
    int mailbox_fd = svc->mailbox ? mailbox_running_fd(svc->mailbox) : -1;
    if (service_spawn(d, svc, unit, mailbox_fd, &inst) < 0) {
        install_unit(up, up->spare, true);
        unit_free(up->spare);
        free(up);
        snprintf(why, size, "cannot start the new instance (see arbord's log)");
        return -1;
    }
    up->new_pid = inst.pid;
    up->output = inst.output;
    ev_io_set(&up->status_io, inst.status_fd, EV_READ);
    ev_io_start(d->loop, &up->status_io);
    if (unit->config.start_timeout != DURATION_INFINITY) {
        ev_timer_set(&up->timer, (double)unit->config.start_timeout / 1000.0, 0.0);
        ev_timer_start(d->loop, &up->timer);
    }
    up->phase = UPGRADE_STARTING;
    svc->upgrade = up;
    up->next = d->upgrades;
    d->upgrades = up;
    log_unit(LOG_INFO, node->name, "upgrade: starting pid %d beside pid %d", (int)inst.pid,
             (int)node->pid);
    return 0;
}

bool upgrade_owns_sender(const struct upgrade *up, pid_t pid)
{
    if (up->phase == UPGRADE_RETIRING || up->new_pid <= 0)
        return false;
    return pid == up->new_pid || getpgid(pid) == up->new_pid;
}

void upgrade_notify(struct upgrade *up, const struct notify_message *m)
{
    if (up->phase != UPGRADE_STARTING)
        return;
    if (m->ready && up->svc->unit->config.type == SERVICE_NOTIFY)
        promote(up);
    else if (m->stopping)
        fail(up, false, "the new instance said STOPPING=1 before it was ready");
}

bool upgrade_child_exited(struct daemon *d, pid_t pid, int status)
{
    struct upgrade *up = d->upgrades;
    while (up && !(up->new_pid == pid && up->phase != UPGRADE_RETIRING))
        up = up->next;
    if (!up)
        return false;
    char how[64];
    struct exit_status exit = {.known = true,
                               .signaled = WIFSIGNALED(status),
                               .value =
                                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)};
    describe_exit(exit, how, sizeof(how));
    struct spawn_failure failure;
    if (up->status_io.fd >= 0 && spawn_read_status(up->status_io.fd, &failure) == 1)
        snprintf(up->error, sizeof(up->error), "cannot start %s: %s failed: %s",
                 up->svc->unit->argv[0], spawn_step_name(failure.step), strerror(failure.error));
    fail(up, true, "the new instance exited (%s) before it was ready", how);
    signal_group(up->new_pid, 0, SIGKILL); /* whatever it left behind */
    char message[sizeof(up->error) + 64];
    snprintf(message, sizeof(message), "%s; pid %d keeps running", up->error,
             (int)up->svc->node->pid);
    settle(up, 1, message);
    return true;
}

void upgrade_node_changed(struct service_os *svc)
{
    struct upgrade *up = svc->upgrade;
    if (up->phase == UPGRADE_STARTING && svc->node->state != NODE_RUNNING)
        fail(up, true, "%s left the running state during the upgrade", svc->node->name);
}

void upgrade_forget(struct daemon *d, struct service_os *svc)
{
    struct upgrade *up = svc->upgrade;
    if (!up)
        return;
    if (up->phase != UPGRADE_RETIRING)
        signal_group(up->new_pid, up->new_pid, SIGKILL);
    if (up->phase == UPGRADE_STARTING) {
        /* Put the old unit back in the set, which frees it. */
        install_unit(up, up->spare, false);
    }
    settle(up, 1, "arbord is exiting");
}
