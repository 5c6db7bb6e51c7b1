/*
 * loop.c: see loop.h.
 *
 * Every libev callback ends in run_core(): OS callbacks only post events,
 * and the core's queue is drained in one place, so a strategy never runs
 * inside another callback's half-finished work. Child exits, orphans
 * included, come from the reaper (os/reaper.h), which hands over the
 * child a SIGCHLD names before it looks at all the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "loop.h"
#include "os/env.h"
#include "os/log.h"
#include "os/notify.h"
#include "os/output.h"
#include "os/procs.h"
#include "os/reaper.h"
#include "os/spawn.h"
#include "control.h"
#include "logring.h"
#include "mailbox.h"
#include "pidmap.h"
#include "reload.h"
#include "service_fds.h"
#include "upgrade.h"
#include "reexec.h"
#include "state.h"

msec_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (msec_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void run_core(struct daemon *d)
{
    core_run(&d->core, now_ms());
    reload_continue(d); /* between core steps, never inside one */
    if (d->ended)
        ev_break(d->loop, EVBREAK_ALL);
}

/* The service whose main process is `pid`. The map may still hold a pid
 * that stopped being main (MAINPID= moved it): such entries are dropped. */
struct service_os *service_by_pid(struct daemon *d, pid_t pid)
{
    struct service_os *svc = pidmap_get(&d->pids, pid);
    if (svc && svc->node->pid == pid)
        return svc;
    if (svc)
        pidmap_remove(&d->pids, pid);
    return NULL;
}

bool is_main_pid(pid_t pid, void *ctx)
{
    return service_by_pid(ctx, pid) != NULL;
}

/* ---- describing exits ---- */

void describe_exit(struct exit_status status, char *buf, size_t size)
{
    if (!status.known)
        snprintf(buf, size, "no exit status");
    else if (status.signaled)
        snprintf(buf, size, "killed by SIG%s",
                 sigabbrev_np(status.value) ? sigabbrev_np(status.value) : "?");
    else
        snprintf(buf, size, "exit status %d", status.value);
}

/* ---- the spawn status pipe ---- */

static void close_status_pipe(struct service_os *svc)
{
    if (!svc->status_io)
        return;
    ev_io_stop(svc->daemon->loop, svc->status_io);
    close(svc->status_io->fd);
    free(svc->status_io);
    svc->status_io = NULL;
}

/* What the status pipe said: a step failed (logged here; the child's exit
 * status follows), or exec worked, which is readiness for Type=exec. */
static void spawn_outcome(struct service_os *svc, bool failed, const struct spawn_failure *failure)
{
    if (failed)
        log_unit(LOG_ERR, svc->node->name, "cannot start %s: %s failed: %s", svc->unit->argv[0],
                 spawn_step_name(failure->step), strerror(failure->error));
    else if (svc->unit->config.type == SERVICE_EXEC)
        core_post_ready(&svc->daemon->core, svc->node);
}

/* Learn whether exec worked (a pipe handed over by re-exec). Returns true
 * once the answer is known. */
static bool check_status_pipe(struct service_os *svc)
{
    struct spawn_failure failure;
    int r = spawn_read_status(svc->status_io->fd, &failure);
    if (r == -EAGAIN)
        return false;
    spawn_outcome(svc, r == 1, &failure);
    close_status_pipe(svc);
    return true;
}

static void on_status_pipe(struct ev_loop *loop, ev_io *w, int revents)
{
    struct service_os *svc = w->data;
    check_status_pipe(svc);
    run_core(svc->daemon);
}

/* Watchers that most services need only now and then are allocated when
 * needed: thousands of services each carry a pointer, not a watcher. */
int service_watch_status(struct service_os *svc, int fd)
{
    svc->status_io = malloc(sizeof(*svc->status_io));
    if (!svc->status_io)
        return -ENOMEM;
    ev_io_init(svc->status_io, on_status_pipe, fd, EV_READ);
    svc->status_io->data = svc;
    ev_io_start(svc->daemon->loop, svc->status_io);
    return 0;
}

/* ---- timers ---- */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

void service_arm_timer(struct service_os *svc, msec_t when)
{
    struct ev_loop *loop = svc->daemon->loop;
    if (svc->timer)
        ev_timer_stop(loop, svc->timer);
    if (when <= 0) {
        free(svc->timer);
        svc->timer = NULL;
        return;
    }
    if (!svc->timer) {
        svc->timer = malloc(sizeof(*svc->timer));
        if (!svc->timer) {
            log_unit(LOG_ERR, svc->node->name, "out of memory: a deadline is not armed");
            return;
        }
        ev_timer_init(svc->timer, on_timer, 0.0, 0.0);
        svc->timer->data = svc;
    }
    msec_t delay = when - now_ms() + 1;
    ev_timer_set(svc->timer, delay > 0 ? (double)delay / 1000.0 : 0.0, 0.0);
    ev_timer_start(loop, svc->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct service_os *svc = w->data;
    if (svc->node->deadline > now_ms()) {
        service_arm_timer(svc, svc->node->deadline); /* woke a little early */
        return;
    }
    free(svc->timer); /* fired: the core arms a new one if it wants */
    svc->timer = NULL;
    core_post_deadline(&svc->daemon->core, svc->node);
    run_core(svc->daemon);
}

/* ---- captured output ---- */

/* Each whole line a service writes: to arbord's log, the service's ring,
 * and any `logs -f` client. */
static void service_output_line(void *ctx, pid_t pid, const char *line, size_t len)
{
    struct service_os *svc = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    msec_t when = (msec_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    log_output(svc->node->name, pid, line, len);
    if (!svc->logs)
        svc->logs = log_ring_new(LOG_RING_SIZE);
    if (svc->logs)
        log_ring_append(svc->logs, pid, when, line, len);
    control_output(svc->daemon, svc, pid, when, line, len);
}

struct output_stream *service_output_open(struct daemon *d, struct service_os *svc, pid_t pid,
                                          int fd)
{
    return output_open(d->loop, svc->node->name, pid, fd, service_output_line, svc);
}

/* ---- core ops ---- */

int service_spawn(struct daemon *d, struct service_os *svc, const struct unit *unit, int mailbox_fd,
                  struct instance *ret)
{
    struct node *node = svc->node;
    char path[PATH_MAX];
    char why[512];
    struct env env = {0};
    struct passed_fds passed;
    int out[2] = {-1, -1};
    int error;

    if ((error = passed_fds_collect(svc, mailbox_fd, &passed, why, sizeof(why))) < 0) {
        log_unit(LOG_ERR, node->name, "cannot start: %s", why);
        return error;
    }
    char notify_path[PATH_MAX];
    service_notify_path(svc, notify_path, sizeof(notify_path));
    if ((error = env_build(&env, unit, d->options->runtime_dir, notify_path, passed.names,
                           passed.n)) < 0) {
        log_unit(LOG_ERR, node->name, "cannot start: %s", env.error);
        goto out;
    }
    if (strchr(unit->argv[0], '/')) {
        snprintf(path, sizeof(path), "%s", unit->argv[0]);
    } else if ((error = spawn_find_program(unit->argv[0], env_path(&env), path, sizeof(path))) <
               0) {
        log_unit(LOG_ERR, node->name, "cannot start %s: %s in PATH", unit->argv[0],
                 error == -ENOENT ? "not found" : strerror(-error));
        goto out;
    }
    bool capture = unit->standard_output == OUTPUT_LOG || unit->standard_error == OUTPUT_LOG;
    if (capture && pipe2(out, O_CLOEXEC) < 0) {
        error = -errno;
        log_unit(LOG_ERR, node->name, "cannot start: pipe: %s", strerror(errno));
        goto out;
    }
    int modes[2] = {unit->standard_output, unit->standard_error};
    int fds[2];
    for (int i = 0; i < 2; i++)
        fds[i] = modes[i] == OUTPUT_LOG ? out[1] : modes[i] == OUTPUT_INHERIT ? 1 + i : d->devnull;

    if (svc->cgroup < 0)
        svc->cgroup = procs_group_create(node->name);
    /* A cgroup that cgroup.kill was ever written to kills every child
     * later born in it by clone3(CLONE_INTO_CGROUP) (Linux 6.18 here): use
     * a new one, or while the old one still holds dying processes, join
     * it the slow way. */
    if (svc->cgroup == SERVICE_CGROUP_KILLED && procs_group_renew(node->name) != 0)
        svc->cgroup = procs_have_cgroups() && procs_group_create(node->name);
    int cgroup_fd = svc->cgroup ? procs_group_dir_fd(node->name) : -1;
    struct spawn_request req = {
        .path = path,
        .argv = unit->argv,
        .envp = env.entries,
        .pid_slots = {env.watchdog_pid_slot, env.listen_pid_slot},
        .pass_fds = passed.fds,
        .n_pass_fds = passed.n,
        .stdin_fd = d->devnull,
        .stdout_fd = fds[0],
        .stderr_fd = fds[1],
        .cgroup_fd = cgroup_fd,
        .cgroup_join = svc->cgroup == SERVICE_CGROUP_KILLED,
        .set_ids = unit->uid != (uid_t)-1 || unit->gid != (gid_t)-1,
        .uid = unit->uid != (uid_t)-1 ? unit->uid : getuid(),
        .gid = unit->gid != (gid_t)-1 ? unit->gid : getgid(),
        .groups = unit->extra->groups,
        .n_groups = unit->extra->n_groups,
        .working_directory = unit->extra->working_directory,
        .set_umask = unit->umask_set,
        .umask = unit->umask,
    };
    pid_t pid = spawn_process(&req, &ret->status_fd);
    if (cgroup_fd >= 0)
        close(cgroup_fd);
    if (out[1] >= 0)
        close(out[1]);
    if (pid < 0) {
        if (out[0] >= 0)
            close(out[0]);
        log_unit(LOG_ERR, node->name, "cannot start: fork: %s", strerror((int)-pid));
        error = (int)pid;
        goto out;
    }
    ret->pid = pid;
    ret->output = out[0] >= 0 ? service_output_open(d, svc, pid, out[0]) : NULL;
    error = 0;
out:
    env_free(&env);
    passed_fds_free(&passed);
    return error;
}

static int op_spawn(void *ctx, struct node *node)
{
    struct daemon *d = ctx;
    struct service_os *svc = node->os;
    struct instance inst;
    int mailbox_fd = svc->mailbox ? mailbox_instance_fd(svc->mailbox) : -1;
    int r = service_spawn(d, svc, svc->unit, mailbox_fd, &inst);
    if (r < 0) {
        if (svc->mailbox)
            mailbox_instance_ended(svc->mailbox);
        return r;
    }
    svc->pgid = inst.pid;
    pidmap_put(&d->pids, inst.pid, svc);
    svc->output = inst.output;
    if (node->restarts > 0 && node->started_once)
        log_unit(LOG_INFO, node->name, "starting pid %d (restart %u)", (int)inst.pid,
                 node->restarts);
    else
        log_unit(LOG_INFO, node->name, "starting pid %d", (int)inst.pid);
    /* No need to wait for the pipe's EOF: spawn_process() returns once the
     * child has exec'd or exited, and a failing child writes before it
     * exits. An empty pipe means exec is past its point of no return. */
    struct spawn_failure failure;
    spawn_outcome(svc, spawn_read_status(inst.status_fd, &failure) == 1, &failure);
    close(inst.status_fd);
    return inst.pid;
}

static void op_signal(void *ctx, struct node *node, int sig)
{
    struct service_os *svc = node->os;
    if (svc->pgid > 0 && kill(-svc->pgid, sig) == 0)
        return;
    if (node->pid > 0)
        kill(node->pid, sig); /* it left its group: at least the main process */
}

static void op_kill_all(void *ctx, struct node *node)
{
    struct service_os *svc = node->os;
    if (procs_kill_all(node->name, svc->cgroup > 0, svc->pgid, node->pid, is_main_pid, ctx))
        svc->cgroup = SERVICE_CGROUP_KILLED;
}

static void op_set_deadline(void *ctx, struct node *node, msec_t when)
{
    if (node->kind == NODE_SERVICE)
        service_arm_timer(node->os, when);
}

static void log_stopping(struct node *node)
{
    const char *sig = sigabbrev_np(node->config->kill_signal);
    switch (node->stop_reason) {
    case STOP_START_TIMEOUT:
        log_unit(LOG_ERR, node->name, "not ready after StartTimeout; stopping it");
        break;
    case STOP_WATCHDOG:
        log_unit(LOG_ERR, node->name, "watchdog timeout; sending SIGABRT");
        break;
    default:
        if (node->config->shutdown == SHUTDOWN_BRUTAL_KILL)
            log_unit(LOG_INFO, node->name, "stopping (SIGKILL)");
        else
            log_unit(LOG_INFO, node->name, "stopping (SIG%s)", sig ? sig : "?");
    }
}

static void op_transition(void *ctx, struct node *node, enum node_state from)
{
    char how[64];
    describe_exit(node->last_exit, how, sizeof(how));
    bool service = node->kind == NODE_SERVICE;
    switch (node->state) {
    case NODE_STARTING:
        if (!service)
            log_unit(LOG_INFO, node->name, "starting");
        break;
    case NODE_RUNNING:
        if (service)
            log_unit(LOG_INFO, node->name, "running (pid %d)", node->pid);
        else
            log_unit(LOG_INFO, node->name, "running");
        break;
    case NODE_STOPPING:
        if (service)
            log_stopping(node);
        else if (node->giving_up)
            log_unit(LOG_ERR, node->name,
                     "more than %d restarts within %lldms: giving up, stopping all children",
                     node->config->intensity, (long long)node->config->period);
        else if (node->auto_ending)
            log_unit(LOG_INFO, node->name, "a significant child ended: shutting down");
        else
            log_unit(LOG_INFO, node->name, "stopping");
        break;
    case NODE_STOPPED:
        log_unit(LOG_INFO, node->name, service ? "stopped (%s)" : "stopped", how);
        break;
    case NODE_DONE:
        log_unit(LOG_INFO, node->name, service ? "exited (%s)" : "shut down", how);
        break;
    case NODE_FAILED:
        if (!service)
            log_unit(LOG_ERR, node->name, "failed");
        else if (from == NODE_STARTING)
            log_unit(LOG_ERR, node->name, "failed to start (%s)", how);
        else
            log_unit(LOG_WARNING, node->name, "failed (%s)", how);
        break;
    default:
        break;
    }
}

/* `arborctl stop` of the node or of a supervisor above it. */
static bool stopped_by_operator(const struct node *node)
{
    for (; node; node = node->parent)
        if (node->held)
            return true;
    return false;
}

static void op_transition_and_tell(void *ctx, struct node *node, enum node_state from)
{
    struct daemon *d = ctx;
    op_transition(ctx, node, from);
    struct service_os *svc = node->kind == NODE_SERVICE ? node->os : NULL;
    bool ended =
        node->state == NODE_STOPPED || node->state == NODE_DONE || node->state == NODE_FAILED;
    if (svc && svc->mailbox && ended)
        mailbox_instance_ended(svc->mailbox); /* arbord keeps what comes meanwhile */
    if (svc && ended && svc->n_stored > 0 && stopped_by_operator(node)) {
        log_unit(LOG_INFO, node->name, "stopped by the operator: %u stored fds dropped",
                 svc->n_stored);
        fdstore_clear(svc);
    }
    if (svc && svc->upgrade)
        upgrade_node_changed(svc);
    control_transition(ctx, node);
    /* Under a manager of our own (systemd's NOTIFY_SOCKET): ready once the
     * whole tree is; stopping when the root begins to stop. */
    if (node == d->root && node->state == NODE_RUNNING)
        sd_notify(0, "READY=1\nSTATUS=supervision tree running");
    else if (node == d->root && node->state == NODE_STOPPING)
        sd_notify(0, "STOPPING=1\nSTATUS=stopping the tree");
}

static void op_root_ended(void *ctx, int status)
{
    struct daemon *d = ctx;
    d->ended = true;
    d->exit_status = status;
}

static const struct core_ops daemon_ops = {
    .spawn = op_spawn,
    .signal = op_signal,
    .kill_all = op_kill_all,
    .set_deadline = op_set_deadline,
    .transition = op_transition_and_tell,
    .root_ended = op_root_ended,
};

/* ---- children and signals ---- */

static void child_exited(void *ctx, pid_t pid, int status)
{
    struct daemon *d = ctx;
    if (reexec_child_exited(d, pid, status) || upgrade_child_exited(d, pid, status)) {
        run_core(d);
        return;
    }
    struct service_os *svc = service_by_pid(d, pid);
    pidmap_remove(&d->pids, pid); /* dead, whoever it was */
    if (!svc) {
        log_msg(LOG_DEBUG, "reaped pid %d (not a main process)", (int)pid);
        return;
    }
    /* Settle what the process said before it died: whether exec worked,
     * and its last notify messages (READY=1 just before exiting counts). */
    if (svc->status_io)
        check_status_pipe(svc);
    drain_notify(svc, 1024);
    if (svc->node->pid != pid) {
        /* Its last words were MAINPID= of another process: not the end. */
        log_msg(LOG_DEBUG, "reaped pid %d (not a main process)", (int)pid);
        run_core(d);
        return;
    }
    struct exit_status exit = {.known = true};
    if (WIFSIGNALED(status)) {
        exit.signaled = true;
        exit.value = WTERMSIG(status);
    } else {
        exit.value = WEXITSTATUS(status);
    }
    svc->output = NULL;     /* the stream lives on until EOF, then frees itself */
    free(svc->status_text); /* STATUS= described that instance */
    svc->status_text = NULL;
    close_main_pidfd(svc);
    core_post_exited(&d->core, svc->node, exit);
    run_core(d);
}

/* The full scan waits a little (os/reaper.h): the exit a SIGCHLD named
 * has been dealt with, and its restarted child is busy exec'ing. */
#define REAP_SCAN_DELAY 0.002

static void on_reap_scan(struct ev_loop *loop, ev_timer *w, int revents)
{
    reaper_scan(child_exited, w->data);
}

static void on_reaper(struct ev_loop *loop, ev_io *w, int revents)
{
    struct daemon *d = w->data;
    /* EV_CUSTOM: fed at start-up, when a SIGCHLD may have come before the
     * signalfd existed. */
    if ((reaper_run(child_exited, d) || (revents & EV_CUSTOM)) && !ev_is_active(&d->reap_scan)) {
        ev_now_update(loop); /* the delay counts from now, not the loop's start */
        /* Set again each time: a one-shot timer that has fired keeps how
         * late it fired as its delay, and would fire at once. */
        ev_timer_set(&d->reap_scan, REAP_SCAN_DELAY, 0.0);
        ev_timer_start(loop, &d->reap_scan);
    }
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *d = w->data;
    if (d->core.shutting_down) {
        log_msg(LOG_INFO, "SIG%s again: shutdown already under way", sigabbrev_np(w->signum));
        return;
    }
    log_msg(LOG_INFO, "SIG%s: shutting down", sigabbrev_np(w->signum));
    core_shutdown(&d->core);
    run_core(d);
}

/* SIGUSR1: the state of the tree, to the log (handy where no arborctl is). */
static void log_tree(const struct node *node, int depth)
{
    char how[64] = "";
    if (node->last_exit.known)
        describe_exit(node->last_exit, how, sizeof(how));
    log_msg(LOG_INFO, "%*s%s: %s%s%.0d restarts %u%s%s", depth * 2, "", node->name,
            node_state_name(node->state), node->pid > 0 ? " pid " : "", node->pid, node->restarts,
            *how ? ", last " : "", how);
    for (size_t i = 0; i < node->n_children; i++)
        log_tree(node->children[i], depth + 1);
}

static void on_user_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *d = w->data;
    if (w->signum == SIGUSR1)
        log_tree(d->root, 0);
    else
        log_msg(LOG_INFO, "SIGUSR2: ignored");
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *d = w->data;
    struct diagnostics diag = {0};
    log_msg(LOG_INFO, "SIGHUP: reloading %s", d->options->unit_dir);
    int r = reload_request(d, &diag); /* logs its own problems */
    if (r == -EBUSY)
        log_msg(LOG_WARNING, "SIGHUP: a reload is already under way");
    diag_free(&diag);
}

/* ---- setting up and tearing down services ---- */

/* RUNTIME/notify/NAME: computed, not stored (thousands of services). */
void service_notify_path(const struct service_os *svc, char *buf, size_t size)
{
    snprintf(buf, size, "%s/notify/%s", svc->daemon->options->runtime_dir, svc->node->name);
}

struct service_os *service_alloc(struct daemon *d, struct node *node, const struct unit *unit)
{
    struct service_os *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return NULL;
    svc->node = node;
    svc->unit = unit;
    svc->daemon = d;
    svc->cgroup = -1;
    ev_io_init(&svc->notify_io, on_notify, -1, EV_READ);
    svc->notify_io.data = svc;
    node->os = svc;
    return svc;
}

int service_setup(struct daemon *d, struct node *node, const struct unit *unit)
{
    struct service_os *svc = service_alloc(d, node, unit);
    if (!svc)
        return -ENOMEM;
    char notify_path[PATH_MAX];
    service_notify_path(svc, notify_path, sizeof(notify_path));
    int fd = notify_socket_open(notify_path);
    if (fd < 0) {
        log_unit(LOG_ERR, node->name, "cannot create notify socket %s: %s", notify_path,
                 strerror(-fd));
        return fd;
    }
    ev_io_set(&svc->notify_io, fd, EV_READ);
    ev_io_start(d->loop, &svc->notify_io);
    service_refresh(d, svc);
    return 0;
}

void mailbox_settings_of(const struct unit *unit, struct mailbox_settings *ret)
{
    ret->capacity = unit->extra->mailbox_capacity;
    ret->owner = unit->uid != (uid_t)-1 ? unit->uid : geteuid();
    ret->group = unit->extra->mailbox_gid != (gid_t)-1 ? unit->extra->mailbox_gid
                 : unit->gid != (gid_t)-1              ? unit->gid
                                                       : getegid();
    ret->mode = unit->extra->mailbox_mode;
}

void service_refresh(struct daemon *d, struct service_os *svc)
{
    const struct unit *unit = svc->unit;
    char why[512];
    service_listen_refresh(svc);
    fdstore_trim(svc);
    if (!unit->mailbox) {
        mailbox_close(svc->mailbox);
        svc->mailbox = NULL;
        return;
    }
    struct mailbox_settings settings;
    mailbox_settings_of(unit, &settings);
    if (svc->mailbox) {
        if (mailbox_configure(svc->mailbox, &settings, why, sizeof(why)) < 0)
            log_unit(LOG_ERR, unit->name, "mailbox: %s", why);
        return;
    }
    char *path;
    if (asprintf(&path, "%s/mailbox/%s", d->options->runtime_dir, unit->name) < 0)
        return;
    svc->mailbox = mailbox_open(d->loop, path, unit->name, &settings, why, sizeof(why));
    if (!svc->mailbox)
        log_unit(LOG_ERR, unit->name, "cannot create mailbox: %s", why);
    free(path);
}

void service_teardown(struct daemon *d, struct service_os *svc)
{
    upgrade_forget(d, svc);
    pidmap_remove_value(&d->pids, svc);
    output_detach(svc);
    service_fds_close(svc);
    log_ring_free(svc->logs);
    mailbox_close(svc->mailbox);
    service_arm_timer(svc, 0);
    close_status_pipe(svc);
    close_main_pidfd(svc);
    if (svc->notify_io.fd >= 0) {
        ev_io_stop(d->loop, &svc->notify_io);
        close(svc->notify_io.fd);
        char notify_path[PATH_MAX];
        service_notify_path(svc, notify_path, sizeof(notify_path));
        unlink(notify_path);
    }
    if (svc->cgroup > 0)
        procs_group_remove(svc->node->name);
    free(svc->status_text);
    svc->node->os = NULL;
    free(svc);
}

static void list_services(struct node *node, struct service_os **list, size_t *n)
{
    if (node->kind == NODE_SERVICE && node->os)
        list[(*n)++] = node->os;
    for (size_t i = 0; i < node->n_children; i++)
        list_services(node->children[i], list, n);
}

int collect_services(struct daemon *d)
{
    struct service_os **list = calloc(d->units->count + 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    free(d->services);
    d->services = list;
    d->n_services = 0;
    list_services(d->root, d->services, &d->n_services);
    return 0;
}

static int setup_tree(struct daemon *d, struct node *node)
{
    if (node->kind == NODE_SERVICE) {
        const struct unit *unit = unit_set_find(d->units, node->name);
        return unit ? service_setup(d, node, unit) : -ENOENT;
    }
    for (size_t i = 0; i < node->n_children; i++) {
        int r = setup_tree(d, node->children[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int make_runtime_dirs(const char *runtime)
{
    char path[PATH_MAX];
    if (mkdir(runtime, 0755) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/notify", runtime);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/mailbox", runtime);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int daemon_run(const struct daemon_options *options, struct unit_set *units,
               struct state_in *restore)
{
    struct daemon d = {.options = options, .exit_status = 1};
    /* The set is ours from now on: a reload replaces it. */
    d.units = malloc(sizeof(*d.units));
    if (!d.units)
        return 1;
    *d.units = *units;
    memset(units, 0, sizeof(*units));
    int r = make_runtime_dirs(options->runtime_dir);
    if (r < 0) {
        log_msg(LOG_ERR, "cannot create runtime directory %s: %s", options->runtime_dir,
                strerror(-r));
        return 1;
    }
    /* Not libev's default loop: that one would reap children itself. */
    d.loop = ev_loop_new(EVFLAG_NOENV);
    if (!d.loop) {
        log_msg(LOG_ERR, "cannot initialise the event loop");
        return 1;
    }
    int reaper_fd = reaper_open();
    if (reaper_fd < 0) {
        log_msg(LOG_ERR, "cannot watch child exits: %s", strerror(-reaper_fd));
        return 1;
    }
    ev_io_init(&d.reaper, on_reaper, reaper_fd, EV_READ);
    log_attach(d.loop);
    if (!restore)
        procs_init(options->no_cgroups);
    d.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    d.root = unit_build_tree(d.units);
    if (d.devnull < 0 || !d.root) {
        log_msg(LOG_ERR, "out of memory");
        return 1;
    }
    if (restore) {
        if (reexec_restore(&d, restore) < 0)
            goto out;
        core_recount(d.root); /* states and flags were set directly */
        fclose(restore->f);   /* read: its memfd goes, with its copy of everything */
        restore->f = NULL;
    } else if (setup_tree(&d, d.root) < 0 || collect_services(&d) < 0) {
        goto out;
    } else if ((r = control_open(&d)) < 0) {
        log_msg(LOG_ERR, "cannot create the control socket in %s: %s", options->runtime_dir,
                strerror(-r));
        goto out;
    }

    ev_set_priority(&d.reaper, EV_MAXPRI); /* exits before other news */
    d.reaper.data = &d;
    ev_io_start(d.loop, &d.reaper);
    ev_timer_init(&d.reap_scan, on_reap_scan, REAP_SCAN_DELAY, 0);
    d.reap_scan.data = &d;
    /* Every signal arbord acts on has a handler: as PID 1 the kernel drops
     * signals left at their default action. */
    ev_signal_init(&d.sig_term, on_stop_signal, SIGTERM);
    ev_signal_init(&d.sig_int, on_stop_signal, SIGINT);
    ev_signal_init(&d.sig_quit, on_stop_signal, SIGQUIT);
    ev_signal_init(&d.sig_hup, on_hup, SIGHUP);
    ev_signal_init(&d.sig_usr1, on_user_signal, SIGUSR1);
    ev_signal_init(&d.sig_usr2, on_user_signal, SIGUSR2);
    ev_signal *signals[] = {&d.sig_term, &d.sig_int,  &d.sig_quit,
                            &d.sig_hup,  &d.sig_usr1, &d.sig_usr2};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        signals[i]->data = &d;
        ev_signal_start(d.loop, signals[i]);
    }
    spawn_note_signals(); /* every disposition is set: children reset these */
    ev_feed_event(d.loop, &d.reaper, EV_CUSTOM);

    core_init(&d.core, d.root, &daemon_ops, &d);
    if (restore) {
        /* Blocked across the exec: the handlers exist now. */
        sigset_t reaped;
        reaper_signals(&reaped);
        sigprocmask(SIG_SETMASK, &reaped, NULL);
        reexec_resume(&d);
    } else {
        log_msg(LOG_INFO, "starting %zu services from %s", d.n_services, options->unit_dir);
        core_start_tree(&d.core);
    }
    run_core(&d);
    if (!d.ended)
        ev_run(d.loop, 0);
    log_msg(LOG_INFO, "exiting with status %d", d.exit_status);

out:
    control_close(&d);
    output_close_all(d.loop);
    for (size_t i = 0; i < d.n_services; i++)
        service_teardown(&d, d.services[i]);
    /* As an init, leftovers get SIGTERM and a grace first; then (and
     * otherwise) cgroups are emptied and removed. */
    if (options->init)
        procs_end_all(getpid() == 1, 2000);
    procs_cleanup();
    core_free(&d.core);
    pidmap_free(&d.pids);
    node_free_tree(d.root);
    free(d.services);
    unit_set_free(d.units);
    free(d.units);
    close(d.devnull);
    close(d.reaper.fd);
    return d.exit_status;
}
