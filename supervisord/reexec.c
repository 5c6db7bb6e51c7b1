/*
 * reexec.c: see reexec.h for the theory of operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "daemon.h"
#include "logring.h"
#include "mailbox.h"
#include "os/log.h"
#include "os/output.h"
#include "os/procs.h"
#include "reexec.h"
#include "reload.h"
#include "service_fds.h"
#include "state.h"

#define REEXEC_CHECK_TIMEOUT 10.0 /* seconds for `arbord --version` */
#define STATE_VERSION 1

extern char **environ;

struct reexec {
    pid_t check_pid;
    ev_timer timer;
    /* In the new arbord: the clients to answer. */
    int *client_fds;
    uid_t *client_uids;
    size_t n_clients;
};

static void reexec_free(struct daemon *d)
{
    struct reexec *r = d->reexec;
    if (!r)
        return;
    ev_timer_stop(d->loop, &r->timer);
    free(r->client_fds);
    free(r->client_uids);
    free(r);
    d->reexec = NULL;
}

static void fail(struct daemon *d, const char *why)
{
    log_msg(LOG_ERR, "reexec: %s; carrying on", why);
    control_reexec_failed(d, why);
    reexec_free(d);
}

/* ---- writing the state ---- */

/* The unit file's bytes, if they are still what was loaded. */
static char *unit_bytes(const struct unit *unit, size_t *ret_len, char *why, size_t size)
{
    FILE *f = fopen(unit->path, "re");
    char *data = NULL;
    size_t len = 0;
    if (f) {
        FILE *mem = open_memstream(&data, &len);
        char buf[8192];
        size_t n;
        while (mem && (n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, mem);
        if (mem)
            fclose(mem);
        fclose(f);
    }
    if (!data) {
        snprintf(why, size, "cannot read %s: %s", unit->path, strerror(errno));
        return NULL;
    }
    struct diagnostics diag = {0};
    FILE *mem = fmemopen(data, len ? len : 1, "r");
    struct unit *again =
        mem ? unit_parse_stream(mem, unit->path, unit->name, unit->kind, &diag) : NULL;
    bool same = again && diag_problems(&diag) == 0 && again->content_hash == unit->content_hash;
    unit_free(again);
    diag_free(&diag);
    if (!same) {
        snprintf(why, size, "%s changed since it was loaded: reload (or upgrade) first",
                 unit->path);
        free(data);
        return NULL;
    }
    *ret_len = len;
    return data;
}

static void save_ring_line(void *ctx, pid_t pid, int64_t time_ms, const char *line, size_t len)
{
    struct state_out *out = ctx;
    st_record(out, "ring");
    st_int(out, pid);
    st_int(out, time_ms);
    st_bytes(out, line, len);
    st_end(out);
}

static void save_service(struct state_out *out, struct service_os *svc)
{
    st_record(out, "service");
    st_fd(out, svc->notify_io.fd);
    st_fd(out, svc->status_io ? svc->status_io->fd : -1);
    st_fd(out, svc->main_watch ? svc->main_watch->io.fd : -1);
    st_int(out, svc->main_watch ? svc->main_watch->pid : 0);
    st_int(out, svc->cgroup);
    st_int(out, svc->pgid);
    st_str(out, svc->status_text);
    st_end(out);
    for (size_t i = 0; i < svc->n_listens; i++) {
        st_record(out, "listen");
        st_str(out, svc->listens[i].address);
        st_fd(out, svc->listens[i].fd);
        st_end(out);
    }
    for (unsigned i = 0; i < svc->n_stored; i++) {
        st_record(out, "stored");
        st_str(out, svc->stored[i].name);
        st_fd(out, svc->stored[i].fd);
        st_end(out);
    }
    if (svc->mailbox) {
        st_record(out, "mailbox");
        mailbox_save(svc->mailbox, out);
    }
    if (svc->logs)
        log_ring_last(svc->logs, log_ring_count(svc->logs), save_ring_line, out);
    st_record(out, "service-end");
    st_end(out);
}

static void save_node(struct state_out *out, const struct node *node)
{
    unsigned flags = (unsigned)node->pending_start | (unsigned)node->pending_stop << 1 |
                     (unsigned)node->held << 2 | (unsigned)node->started_once << 3 |
                     (unsigned)node->operator_start << 4 | (unsigned)node->giving_up << 5 |
                     (unsigned)node->auto_ending << 6 | (unsigned)node->stopping_notified << 7;
    st_record(out, "node");
    st_str(out, node->name);
    st_int(out, node->state);
    st_int(out, flags);
    st_int(out, node->stop_reason);
    st_int(out, node->pid);
    st_int(out, node->since);
    st_int(out, node->deadline);
    st_int(out, node->watchdog);
    st_int(out, node->restarts);
    st_int(out, node->starts);
    st_int(out, node->last_exit.known);
    st_int(out, node->last_exit.signaled);
    st_int(out, node->last_exit.value);
    st_int(out, node->end_code);
    st_int(out, (long long)intensity_count(node));
    for (size_t i = 0; i < intensity_count(node); i++)
        st_int(out, intensity_time(node, i));
    st_end(out);
    if (node->kind == NODE_SERVICE)
        save_service(out, node->os);
    for (size_t i = 0; i < node->n_children; i++)
        save_node(out, node->children[i]);
}

static void save_output(void *ctx, const char *unit, pid_t pid, int fd, bool attached,
                        const char *partial, size_t partial_len)
{
    struct state_out *out = ctx;
    st_record(out, "output");
    st_str(out, unit);
    st_int(out, pid);
    st_fd(out, fd);
    st_int(out, attached);
    st_bytes(out, partial ? partial : "", partial_len);
    st_end(out);
}

/* Write everything into a new memfd. Returns it (offset 0), or -1 with
 * `why`; out->fds lists the fds that must survive. */
static int write_state(struct daemon *d, struct state_out *out, char *why, size_t size)
{
    int fd = memfd_create("arbord-state", MFD_CLOEXEC);
    if (fd < 0) {
        snprintf(why, size, "memfd_create: %s", strerror(errno));
        return -1;
    }
    int dup_fd = dup(fd);
    out->f = dup_fd >= 0 ? fdopen(dup_fd, "w") : NULL;
    if (!out->f) {
        snprintf(why, size, "cannot write the state: %s", strerror(errno));
        if (dup_fd >= 0)
            close(dup_fd);
        close(fd);
        return -1;
    }
    st_record(out, "arbor-state");
    st_int(out, STATE_VERSION);
    st_end(out);
    st_record(out, "lock");
    st_fd(out, d->options->lock_fd);
    st_end(out);
    for (size_t i = 0; i < d->units->count; i++) {
        const struct unit *unit = d->units->units[i];
        size_t len;
        char *bytes = unit_bytes(unit, &len, why, size);
        if (!bytes) {
            fclose(out->f);
            close(fd);
            return -1;
        }
        st_record(out, "unit");
        st_str(out, unit->name);
        st_int(out, unit->kind);
        st_str(out, unit->path);
        st_bytes(out, bytes, len);
        st_end(out);
        free(bytes);
    }
    st_record(out, "units-end");
    st_end(out);
    const char *base, *relative;
    bool cgroups = procs_describe(&base, &relative);
    st_record(out, "cgroup");
    st_int(out, cgroups);
    st_str(out, base);
    st_str(out, relative);
    st_end(out);
    save_node(out, d->root);
    output_visit(save_output, out);
    control_save(d, out);
    st_record(out, "end");
    st_end(out);
    bool ok = fflush(out->f) == 0 && !ferror(out->f) && !out->failed;
    fclose(out->f);
    out->f = NULL;
    if (!ok || lseek(fd, 0, SEEK_SET) < 0) {
        snprintf(why, size, "cannot write the state: %s", strerror(errno ? errno : ENOMEM));
        close(fd);
        return -1;
    }
    return fd;
}

static void set_cloexec(const int *fds, size_t n, bool on)
{
    for (size_t i = 0; i < n; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        if (flags >= 0)
            fcntl(fds[i], F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
    }
}

/* The check passed: write the state and become the new binary. Returns
 * only on failure. */
static void exec_now(struct daemon *d)
{
    char why[512];
    if (d->upgrades || reload_in_progress(d) || d->core.shutting_down) {
        fail(d, "an upgrade, a reload or the shutdown began meanwhile");
        return;
    }
    struct state_out out = {0};
    int state = write_state(d, &out, why, sizeof(why));
    if (state < 0) {
        free(out.fds);
        fail(d, why);
        return;
    }
    size_t argc = 0;
    while (d->options->argv[argc])
        argc++;
    char **argv = calloc(argc + 3, sizeof(*argv));
    char fd_arg[16];
    snprintf(fd_arg, sizeof(fd_arg), "%d", state);
    if (!argv) {
        close(state);
        free(out.fds);
        fail(d, "out of memory");
        return;
    }
    for (size_t i = 0; i < argc; i++)
        argv[i] = d->options->argv[i];
    argv[argc] = "--state-fd";
    argv[argc + 1] = fd_arg;

    log_msg(LOG_INFO, "reexec: executing %s (%zu fds carried over)", d->options->exe,
            out.n_fds + 1);
    log_flush();
    set_cloexec(out.fds, out.n_fds, false);
    set_cloexec(&state, 1, false);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    execve(d->options->exe, argv, environ);
    int error = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    set_cloexec(out.fds, out.n_fds, true);
    close(state);
    free(out.fds);
    free(argv);
    snprintf(why, sizeof(why), "cannot execute %s: %s", d->options->exe, strerror(error));
    fail(d, why);
}

/* ---- the binary check ---- */

static void on_check_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct daemon *d = w->data;
    kill(d->reexec->check_pid, SIGKILL); /* its exit is reaped as any other */
    d->reexec->check_pid = -1;
    fail(d, "the new binary did not answer --version within 10 s");
}

int reexec_request(struct daemon *d, char *why, size_t size)
{
    if (d->reexec)
        snprintf(why, size, "a re-exec is already under way");
    else if (d->core.shutting_down)
        snprintf(why, size, "arbord is shutting down");
    else if (reload_in_progress(d))
        snprintf(why, size, "a reload is under way");
    else if (d->upgrades)
        snprintf(why, size, "an upgrade is under way");
    else if (!d->options->exe)
        snprintf(why, size, "arbord does not know the path it was started from");
    else
        why[0] = '\0';
    if (why[0])
        return -1;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_adddup2(&actions, d->devnull, fd);
    /* Not with SIGCHLD blocked, as arbord keeps it (os/reaper.h). */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {(char *)d->options->exe, "--version", NULL};
    pid_t pid;
    int r = posix_spawn(&pid, d->options->exe, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (r != 0) {
        snprintf(why, size, "cannot run %s: %s", d->options->exe, strerror(r));
        return -1;
    }
    struct reexec *re = calloc(1, sizeof(*re));
    if (!re) {
        kill(pid, SIGKILL);
        snprintf(why, size, "out of memory");
        return -1;
    }
    re->check_pid = pid;
    ev_timer_init(&re->timer, on_check_timeout, REEXEC_CHECK_TIMEOUT, 0.0);
    re->timer.data = d;
    ev_timer_start(d->loop, &re->timer);
    d->reexec = re;
    log_msg(LOG_INFO, "reexec: checking %s --version (pid %d)", d->options->exe, (int)pid);
    return 0;
}

bool reexec_child_exited(struct daemon *d, pid_t pid, int status)
{
    if (!d->reexec || d->reexec->check_pid != pid)
        return false;
    ev_timer_stop(d->loop, &d->reexec->timer);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[160];
        char how[64];
        struct exit_status exit = {.known = true,
                                   .signaled = WIFSIGNALED(status),
                                   .value = WIFSIGNALED(status) ? WTERMSIG(status)
                                                                : WEXITSTATUS(status)};
        describe_exit(exit, how, sizeof(how));
        snprintf(why, sizeof(why), "%s --version failed (%s)", d->options->exe, how);
        fail(d, why);
        return true;
    }
    exec_now(d); /* returns only if it failed */
    return true;
}

/* ---- reading it back ---- */

static bool expect(struct state_in *in, const char *key)
{
    if (!st_next(in) || strcmp(in->key, key) != 0) {
        if (!in->bad)
            snprintf(in->why, sizeof(in->why), "expected %s, found %s", key, in->key);
        in->bad = true;
        return false;
    }
    return true;
}

int reexec_read_units(struct state_in *in, struct unit_set *set, struct diagnostics *diag,
                      int *ret_lock)
{
    *set = (struct unit_set){0};
    size_t cap = 0;
    if (expect(in, "arbor-state") && st_get_int(in) != STATE_VERSION)
        st_fail(in, "a state version this arbord does not read");
    st_get_end(in);
    if (expect(in, "lock"))
        *ret_lock = st_get_fd(in);
    st_get_end(in);
    while (st_next(in) && strcmp(in->key, "unit") == 0) {
        size_t len;
        char *name = st_get_str(in, NULL);
        long long kind = st_get_int(in);
        char *path = st_get_str(in, NULL);
        char *bytes = st_get_str(in, &len);
        st_get_end(in);
        FILE *mem = bytes ? fmemopen(bytes, len ? len : 1, "r") : NULL;
        struct unit *unit = mem && name && path && (kind == NODE_SERVICE || kind == NODE_SUPERVISOR)
                                ? unit_parse_stream(mem, path, name, (enum node_kind)kind, diag)
                                : NULL;
        if (mem && !unit)
            fclose(mem);
        free(name);
        free(path);
        free(bytes);
        if (!unit) {
            st_fail(in, "a unit that does not parse");
            break;
        }
        if (set->count == cap) {
            cap = cap ? cap * 2 : 64;
            struct unit **grown = realloc(set->units, cap * sizeof(*grown));
            if (!grown) {
                unit_free(unit);
                st_fail(in, "out of memory");
                break;
            }
            set->units = grown;
        }
        set->units[set->count++] = unit;
    }
    if (!in->bad && strcmp(in->key, "units-end") != 0)
        st_fail(in, "expected units-end");
    st_get_end(in);
    if (in->bad) {
        diag_add(diag, NULL, 0, "re-exec state: %s", in->why);
        return -1;
    }
    return unit_set_validate(set, diag);
}

static void restore_ring_line(struct service_os *svc, struct state_in *in)
{
    pid_t pid = (pid_t)st_get_int(in);
    long long time_ms = st_get_int(in);
    size_t len;
    char *line = st_get_str(in, &len);
    st_get_end(in);
    if (!line)
        return;
    if (!svc->logs)
        svc->logs = log_ring_new(LOG_RING_SIZE);
    if (svc->logs)
        log_ring_append(svc->logs, pid, time_ms, line, len);
    free(line);
}

static int restore_service(struct daemon *d, struct node *node, struct state_in *in)
{
    const struct unit *unit = unit_set_find(d->units, node->name);
    struct service_os *svc = unit ? service_alloc(d, node, unit) : NULL;
    if (!svc) {
        st_fail(in, "out of memory");
        return -1;
    }
    if (!expect(in, "service"))
        return -1;
    int notify_fd = st_get_fd(in);
    int status_fd = st_get_fd(in);
    int pidfd = st_get_fd(in);
    pid_t watched = (pid_t)st_get_int(in);
    svc->cgroup = (int)st_get_int(in);
    svc->pgid = (pid_t)st_get_int(in);
    svc->status_text = st_get_str(in, NULL);
    st_get_end(in);
    if (in->bad)
        return -1;
    ev_io_set(&svc->notify_io, notify_fd, EV_READ);
    ev_io_start(d->loop, &svc->notify_io);
    if ((status_fd >= 0 && service_watch_status(svc, status_fd) < 0) ||
        (watched > 0 && watch_main_pidfd(svc, watched, pidfd) < 0)) {
        st_fail(in, "out of memory");
        return -1;
    }
    if (node->pid > 0)
        pidmap_put(&d->pids, node->pid, svc);

    while (st_next(in) && strcmp(in->key, "service-end") != 0) {
        if (strcmp(in->key, "listen") == 0) {
            char *address = st_get_str(in, NULL);
            int fd = st_get_fd(in);
            st_get_end(in);
            struct listen_socket *grown =
                realloc(svc->listens, (svc->n_listens + 1) * sizeof(*grown));
            if (!grown || !address) {
                free(address);
                st_fail(in, "out of memory");
                break;
            }
            svc->listens = grown;
            svc->listens[svc->n_listens++] = (struct listen_socket){.address = address, .fd = fd};
        } else if (strcmp(in->key, "stored") == 0) {
            char *name = st_get_str(in, NULL);
            int fd = st_get_fd(in);
            st_get_end(in);
            struct stored_fd *grown = realloc(svc->stored, (svc->n_stored + 1) * sizeof(*grown));
            if (!grown || !name) {
                free(name);
                st_fail(in, "out of memory");
                break;
            }
            svc->stored = grown;
            svc->stored[svc->n_stored++] = (struct stored_fd){.fd = fd, .name = name};
        } else if (strcmp(in->key, "mailbox") == 0) {
            char *path;
            struct mailbox_settings settings;
            mailbox_settings_of(unit, &settings);
            if (asprintf(&path, "%s/mailbox/%s", d->options->runtime_dir, unit->name) < 0) {
                st_fail(in, "out of memory");
                break;
            }
            svc->mailbox = mailbox_restore(d->loop, path, unit->name, &settings, in);
            free(path);
        } else if (strcmp(in->key, "ring") == 0) {
            restore_ring_line(svc, in);
        } else {
            st_fail(in, "unknown record in a service");
        }
    }
    st_get_end(in);
    return in->bad ? -1 : 0;
}

static int restore_node(struct daemon *d, struct node *node, struct state_in *in)
{
    if (!expect(in, "node"))
        return -1;
    char *name = st_get_str(in, NULL);
    bool same = name && strcmp(name, node->name) == 0;
    free(name);
    if (!same) {
        st_fail(in, "the tree does not match the units");
        return -1;
    }
    node->state = (enum node_state)st_get_int(in);
    unsigned flags = (unsigned)st_get_int(in);
    node->pending_start = flags & 1;
    node->pending_stop = flags >> 1 & 1;
    node->held = flags >> 2 & 1;
    node->started_once = flags >> 3 & 1;
    node->operator_start = flags >> 4 & 1;
    node->giving_up = flags >> 5 & 1;
    node->auto_ending = flags >> 6 & 1;
    node->stopping_notified = flags >> 7 & 1;
    node->stop_reason = (enum stop_reason)st_get_int(in);
    node->pid = (int)st_get_int(in);
    node->since = st_get_int(in);
    node->deadline = st_get_int(in);
    node->watchdog = st_get_int(in);
    node->restarts = (unsigned)st_get_int(in);
    node->starts = (unsigned)st_get_int(in);
    node->last_exit.known = st_get_int(in) != 0;
    node->last_exit.signaled = st_get_int(in) != 0;
    node->last_exit.value = (int)st_get_int(in);
    node->end_code = (int)st_get_int(in);
    long long n = st_get_int(in);
    if (n < 0 || n > 1000000 || (n > 0 && !node->supervision)) {
        st_fail(in, "a bad restart history");
        return -1;
    }
    if (n > 0) {
        msec_t *times = intensity_restore(node, (size_t)n);
        if (!times) {
            st_fail(in, "out of memory");
            return -1;
        }
        for (long long i = 0; i < n; i++)
            times[i] = st_get_int(in);
    }
    st_get_end(in);
    if (in->bad || node->state < 0 || node->state >= NODE_STATE_MAX ||
        node->stop_reason >= STOP_REASON_MAX) {
        st_fail(in, "a bad node");
        return -1;
    }
    if (node->kind == NODE_SERVICE && restore_service(d, node, in) < 0)
        return -1;
    for (size_t i = 0; i < node->n_children; i++)
        if (restore_node(d, node->children[i], in) < 0)
            return -1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const struct service_os *x = *(struct service_os *const *)a;
    const struct service_os *y = *(struct service_os *const *)b;
    return strcmp(x->node->name, y->node->name);
}

static struct service_os *find_service(struct service_os **sorted, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, sorted[mid]->node->name);
        if (c == 0)
            return sorted[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int restore_outputs(struct daemon *d, struct state_in *in)
{
    struct service_os **sorted = malloc((d->n_services + 1) * sizeof(*sorted));
    if (!sorted) {
        st_fail(in, "out of memory");
        return -1;
    }
    memcpy(sorted, d->services, d->n_services * sizeof(*sorted));
    qsort(sorted, d->n_services, sizeof(*sorted), by_name);
    while (st_next(in) && strcmp(in->key, "output") == 0) {
        size_t len;
        char *unit = st_get_str(in, NULL);
        pid_t pid = (pid_t)st_get_int(in);
        int fd = st_get_fd(in);
        bool attached = st_get_int(in) != 0;
        char *partial = st_get_str(in, &len);
        st_get_end(in);
        if (in->bad || !unit || fd < 0) {
            free(unit);
            free(partial);
            st_fail(in, "a bad output stream");
            break;
        }
        struct service_os *svc = attached ? find_service(sorted, d->n_services, unit) : NULL;
        struct output_stream *s = svc ? service_output_open(d, svc, pid, fd)
                                      : output_open(d->loop, unit, pid, fd, NULL, NULL);
        output_restore_partial(s, partial, len);
        free(unit);
        free(partial);
    }
    free(sorted);
    return in->bad ? -1 : 0;
}

int reexec_restore(struct daemon *d, struct state_in *in)
{
    if (expect(in, "cgroup")) {
        bool enabled = st_get_int(in) != 0;
        char *base = st_get_str(in, NULL);
        char *relative = st_get_str(in, NULL);
        st_get_end(in);
        procs_adopt(enabled, base, relative);
        free(base);
        free(relative);
    }
    if (in->bad || restore_node(d, d->root, in) < 0 || collect_services(d) < 0 ||
        restore_outputs(d, in) < 0)
        goto bad;
    /* restore_outputs() stopped at the first record after the streams. */
    if (strcmp(in->key, "control") != 0) {
        st_fail(in, "expected control");
        goto bad;
    }
    int listen_fd = st_get_fd(in);
    st_get_end(in);
    if (in->bad || control_open_fd(d, listen_fd) < 0)
        goto bad;
    struct reexec *re = calloc(1, sizeof(*re));
    if (!re)
        goto bad;
    d->reexec = re;
    re->check_pid = -1;
    while (st_next(in) && strcmp(in->key, "reexec-client") == 0) {
        int fd = st_get_fd(in);
        uid_t uid = (uid_t)st_get_int(in);
        st_get_end(in);
        int *fds = realloc(re->client_fds, (re->n_clients + 1) * sizeof(*fds));
        if (fds)
            re->client_fds = fds;
        uid_t *uids = realloc(re->client_uids, (re->n_clients + 1) * sizeof(*uids));
        if (uids)
            re->client_uids = uids;
        if (!fds || !uids || fd < 0) {
            st_fail(in, "a bad client");
            goto bad;
        }
        re->client_fds[re->n_clients] = fd;
        re->client_uids[re->n_clients++] = uid;
    }
    if (in->bad || strcmp(in->key, "end") != 0) {
        st_fail(in, "expected end");
        goto bad;
    }
    return 0;
bad:
    log_msg(LOG_ERR, "reexec: cannot take over from the previous arbord: %s",
            in->bad ? in->why : "out of memory");
    return -1;
}

void reexec_resume(struct daemon *d)
{
    for (size_t i = 0; i < d->n_services; i++) {
        struct service_os *svc = d->services[i];
        if (svc->node->deadline > 0)
            service_arm_timer(svc, svc->node->deadline);
    }
    char message[128];
    snprintf(message, sizeof(message), "re-executed: arbord pid %d, %zu services carried over",
             (int)getpid(), d->n_services);
    log_msg(LOG_INFO, "reexec: %s", message);
    struct reexec *re = d->reexec;
    for (size_t i = 0; re && i < re->n_clients; i++)
        control_answer_reexec(d, re->client_fds[i], re->client_uids[i], message);
    reexec_free(d);
}
