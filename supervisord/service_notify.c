/*
 * service_notify.c: what arbord does with sd_notify messages: decide
 * whether the sender may speak for the service (see notify.h for the
 * socket side), then turn READY=1, WATCHDOG=, EXTEND_TIMEOUT_USEC=,
 * STOPPING=1, STATUS= and MAINPID= into core events and service state.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "os/log.h"
#include "os/notify.h"
#include "os/procs.h"
#include "pidmap.h"
#include "service_fds.h"
#include "upgrade.h"

static bool notify_authorized(struct service_os *svc, const struct ucred *cred)
{
    struct node *node = svc->node;
    int belongs = procs_belongs(node->name, svc->cgroup > 0, svc->pgid, node->pid, cred->pid);
    if (belongs == 1)
        return true;
    if (belongs == 0)
        return false;
    /* The sender has gone (systemd-notify from a script often has): fall
     * back on its user, which must be the service's own or root. */
    uid_t owner = svc->unit->uid != (uid_t)-1 ? svc->unit->uid : getuid();
    return cred->uid == 0 || cred->uid == owner;
}

void close_main_pidfd(struct service_os *svc)
{
    struct main_pid_watch *w = svc->main_watch;
    if (!w)
        return;
    if (w->io.fd >= 0) {
        ev_io_stop(svc->daemon->loop, &w->io);
        close(w->io.fd);
    }
    ev_timer_stop(svc->daemon->loop, &w->poll);
    free(w);
    svc->main_watch = NULL;
}

/* A main process that was not our child exited. If it has been re-parented
 * to us meanwhile, its status is there to read (WNOWAIT leaves the reaping
 * to the reaper, whose child_exited then finds it no longer main). Otherwise its
 * parent reaps it and the status is unknown to us: judged as abnormal. */
static void main_pid_gone(struct service_os *svc)
{
    pid_t pid = svc->main_watch->pid;
    close_main_pidfd(svc);
    if (svc->node->pid != pid)
        return;
    pidmap_remove(&svc->daemon->pids, pid);
    struct exit_status status = {.known = false};
    siginfo_t info = {0};
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        status.known = true;
        status.signaled = info.si_code != CLD_EXITED;
        status.value = info.si_status;
    } else {
        log_unit(LOG_WARNING, svc->node->name,
                 "main pid %d exited; not our child, so its status is unknown", (int)pid);
    }
    core_post_exited(&svc->daemon->core, svc->node, status);
    run_core(svc->daemon);
}

static void on_main_pidfd(struct ev_loop *loop, ev_io *w, int revents)
{
    main_pid_gone(w->data);
}

/* Without pidfd_open(2) (before Linux 5.3, some seccomp profiles,
 * valgrind): look every 200 ms. A zombie is dead too: its parent, not
 * us, has yet to reap it. */
static void on_main_pid_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct service_os *svc = w->data;
    if (!procs_alive(svc->main_watch->pid))
        main_pid_gone(svc);
}

static struct main_pid_watch *new_watch(struct service_os *svc, pid_t pid)
{
    close_main_pidfd(svc);
    struct main_pid_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->pid = pid;
    ev_io_init(&w->io, on_main_pidfd, -1, EV_READ);
    w->io.data = svc;
    ev_timer_init(&w->poll, on_main_pid_poll, 0.2, 0.2);
    w->poll.data = svc;
    svc->main_watch = w;
    return w;
}

int watch_main_pidfd(struct service_os *svc, pid_t pid, int fd)
{
    struct main_pid_watch *w = new_watch(svc, pid);
    if (!w)
        return -ENOMEM;
    if (fd >= 0) {
        ev_io_set(&w->io, fd, EV_READ);
        ev_io_start(svc->daemon->loop, &w->io);
    } else {
        ev_timer_start(svc->daemon->loop, &w->poll);
    }
    return 0;
}

static void watch_main_pid(struct service_os *svc, pid_t pid)
{
    close_main_pidfd(svc);
    if (procs_parent(pid) == getpid())
        return; /* its exit reaches child_exited with a real status */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0 && errno != ESRCH)
        log_unit(LOG_INFO, svc->node->name, "cannot watch main pid %d: %s; polling it instead",
                 (int)pid, strerror(errno));
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (watch_main_pidfd(svc, pid, fd) < 0) {
        log_unit(LOG_WARNING, svc->node->name, "cannot watch main pid %d: out of memory", (int)pid);
        if (fd >= 0)
            close(fd);
    }
}

static void apply_main_pid(struct service_os *svc, pid_t pid)
{
    struct node *node = svc->node;
    if (node->pid == 0 || pid == node->pid)
        return;
    /* Only a process of the service itself, whoever asks: systemd lets root
     * name any pid, but a pid of another service, of arbord or pid 1 would
     * make this service's stop signal someone else's. */
    if (pid == 1 || pid == getpid() ||
        procs_belongs(node->name, svc->cgroup > 0, svc->pgid, node->pid, pid) != 1) {
        log_unit(LOG_WARNING, node->name, "MAINPID=%d ignored: not a process of this service",
                 (int)pid);
        return;
    }
    if (kill(pid, 0) < 0) {
        log_unit(LOG_WARNING, node->name, "MAINPID=%d ignored: no such process", (int)pid);
        return;
    }
    log_unit(LOG_INFO, node->name, "main pid is now %d", (int)pid);
    node->pid = pid;
    pidmap_put(&svc->daemon->pids, pid, svc);
    watch_main_pid(svc, pid);
}

static void apply_notify(struct service_os *svc, const struct notify_message *m,
                         const struct ucred *cred)
{
    struct core *core = &svc->daemon->core;
    struct node *node = svc->node;
    if (m->status) {
        free(svc->status_text);
        svc->status_text = strdup(m->status);
        log_unit(LOG_DEBUG, node->name, "status: %s", m->status);
    }
    if (m->main_pid)
        apply_main_pid(svc, m->main_pid);
    if (m->extend_usec >= 0)
        core_extend_timeout(core, node, (msec_t)(m->extend_usec / 1000));
    if (m->watchdog_usec >= 0)
        core_watchdog_set(core, node, (msec_t)((m->watchdog_usec + 999) / 1000));
    if (m->watchdog)
        core_watchdog_ping(core, node);
    if (m->watchdog_trigger)
        core_watchdog_trigger(core, node);
    if (m->stopping) {
        log_unit(LOG_INFO, node->name, "service says it is stopping");
        core_stopping_notified(core, node);
    }
    if (m->ready) {
        if (svc->unit->config.type == SERVICE_NOTIFY)
            core_post_ready(core, node);
        else
            log_unit(LOG_DEBUG, node->name, "READY=1 ignored: Type=%s",
                     service_type_name(svc->unit->config.type));
    }
}

/* FDSTORE=1 and FDSTOREREMOVE=1: fds sent without FDSTORE=1 are closed,
 * as systemd does. */
static void apply_fds(struct service_os *svc, const struct notify_message *m, int *fds, int n_fds)
{
    const char *name = svc->node->name;
    if (m->fdstore_remove) {
        if (m->fdname && notify_fdname_valid(m->fdname))
            log_unit(LOG_DEBUG, name, "fd store: %d fds named %s removed",
                     fdstore_remove(svc, m->fdname), m->fdname);
        else
            log_unit(LOG_WARNING, name, "FDSTOREREMOVE=1 ignored: no valid FDNAME=");
    }
    if (n_fds == 0)
        return;
    const char *refused = NULL;
    if (!m->fdstore)
        refused = "sent without FDSTORE=1";
    else if (svc->unit->extra->fd_store_max == 0)
        refused = "FileDescriptorStoreMax=0";
    else if (m->fdname && !notify_fdname_valid(m->fdname))
        refused = "FDNAME= is not a valid name";
    if (!refused) {
        fdstore_add(svc, m->fdname, fds, n_fds);
        return;
    }
    log_unit(LOG_WARNING, name, "%d fds closed: %s", n_fds, refused);
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Handle what is waiting on the service's notify socket, at most `limit`
 * datagrams, so a flooding service cannot starve the loop. */
void drain_notify(struct service_os *svc, int limit)
{
    char buf[NOTIFY_MESSAGE_MAX + 1];
    int fds[NOTIFY_FDS_MAX];
    for (int i = 0; i < limit; i++) {
        struct ucred cred;
        int n_fds;
        ssize_t n = notify_receive(svc->notify_io.fd, buf, sizeof(buf), &cred, fds, &n_fds);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            log_unit(LOG_WARNING, svc->node->name, "notify message dropped: %s",
                     n == -EMSGSIZE ? "too long" : "no sender credentials");
            continue;
        }
        /* The instance an upgrade is starting speaks for itself only. */
        bool from_upgrade = svc->upgrade && upgrade_owns_sender(svc->upgrade, cred.pid);
        if (!from_upgrade && !notify_authorized(svc, &cred)) {
            log_unit(LOG_WARNING, svc->node->name,
                     "notify message from pid %d (uid %d) ignored: not a process of this service",
                     (int)cred.pid, (int)cred.uid);
            close_all(fds, n_fds);
            continue;
        }
        struct notify_message m;
        if (notify_parse(buf, (size_t)n, &m) < 0) {
            log_unit(LOG_WARNING, svc->node->name, "notify message with a NUL byte ignored");
            close_all(fds, n_fds);
            continue;
        }
        apply_fds(svc, &m, fds, n_fds);
        if (from_upgrade)
            upgrade_notify(svc->upgrade, &m);
        else
            apply_notify(svc, &m, &cred);
    }
}

void on_notify(struct ev_loop *loop, ev_io *w, int revents)
{
    struct service_os *svc = w->data;
    drain_notify(svc, 64);
    run_core(svc->daemon);
}
