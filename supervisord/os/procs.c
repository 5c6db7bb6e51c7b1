/*
 * procs.c: see procs.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os/log.h"
#include "os/procs.h"

static struct {
    bool enabled;
    int base_fd;             /* arbord-<pid>, open: a start walks one name, not the path */
    char base[PATH_MAX];     /* absolute path of arbord-<pid> */
    char relative[PATH_MAX]; /* the same as /proc/PID/cgroup shows it */
} cg = {.base_fd = -1};

static bool open_base(void)
{
    if (cg.base_fd >= 0)
        close(cg.base_fd);
    cg.base_fd = open(cg.base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return cg.base_fd >= 0;
}

/* The cgroup2 mount point and the root of that mount, from mountinfo. */
static bool find_cgroup2(char *mount, size_t mount_size, char *root, size_t root_size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        /* id parent major:minor root mountpoint options ... - fstype source ... */
        char mroot[1024], mpoint[1024], fstype[64];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(dash, " - %63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
            continue;
        if (sscanf(line, "%*s %*s %*s %1023s %1023s", mroot, mpoint) != 2)
            continue;
        found = (size_t)snprintf(mount, mount_size, "%s", mpoint) < mount_size &&
                (size_t)snprintf(root, root_size, "%s", mroot) < root_size;
    }
    fclose(f);
    return found;
}

static bool own_cgroup(char *buf, size_t size)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = (size_t)snprintf(buf, size, "%s", line + 3) < size;
    }
    fclose(f);
    return found;
}

bool procs_init(bool disable)
{
    char mount[1024], root[1024], own[2048];
    if (disable || !find_cgroup2(mount, sizeof(mount), root, sizeof(root)) ||
        !own_cgroup(own, sizeof(own)))
        goto fallback;
    /* The path of our group inside the mount: strip the mount's own root. */
    const char *inside = own;
    size_t root_len = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (root_len && strncmp(own, root, root_len) == 0)
        inside = own + root_len;
    /* arbord-PID, or arbord-PID.N when that exists: two arbords that are
     * both PID 1 of their namespaces may share a cgroup, and each must
     * have a group of its own. */
    for (int attempt = 0;; attempt++) {
        char name[64];
        if (attempt == 0)
            snprintf(name, sizeof(name), "arbord-%d", (int)getpid());
        else
            snprintf(name, sizeof(name), "arbord-%d.%d", (int)getpid(), attempt);
        int n = snprintf(cg.base, sizeof(cg.base), "%s%s%s%s", mount, inside,
                         inside[strlen(inside) - 1] == '/' ? "" : "/", name);
        int m = snprintf(cg.relative, sizeof(cg.relative), "%s%s%s", own,
                         own[strlen(own) - 1] == '/' ? "" : "/", name);
        if (n < 0 || (size_t)n >= sizeof(cg.base) || m < 0 || (size_t)m >= sizeof(cg.relative))
            goto fallback;
        if (mkdir(cg.base, 0755) == 0)
            break;
        if (errno != EEXIST || attempt >= 100) {
            log_msg(LOG_INFO, "no cgroup for services (%s: %s); tracking the process tree instead",
                    cg.base, strerror(errno));
            goto fallback;
        }
    }
    if (!open_base()) {
        log_msg(LOG_INFO, "no cgroup for services (%s: %s); tracking the process tree instead",
                cg.base, strerror(errno));
        rmdir(cg.base);
        goto fallback;
    }
    cg.enabled = true;
    log_msg(LOG_DEBUG, "services get cgroups under %s", cg.base);
    return true;
fallback:
    cg.enabled = false;
    return false;
}

void procs_adopt(bool enabled, const char *base, const char *relative)
{
    cg.enabled = enabled && base && relative && strlen(base) < sizeof(cg.base) &&
                 strlen(relative) < sizeof(cg.relative);
    if (cg.enabled) {
        strcpy(cg.base, base);
        strcpy(cg.relative, relative);
        cg.enabled = open_base();
    }
}

bool procs_describe(const char **ret_base, const char **ret_relative)
{
    *ret_base = cg.base;
    *ret_relative = cg.relative;
    return cg.enabled;
}

static void kill_cgroup(int dir_fd);
static void kill_adopted_orphans(void);

bool procs_have_cgroups(void)
{
    return cg.enabled;
}

/* Remove every service cgroup and our own. Killed processes leave their
 * cgroup only once reaped, and the loop has stopped by now, so reap here
 * (orphans are ours as subreaper) and retry for up to two seconds. */
void procs_cleanup(void)
{
    if (!cg.enabled) {
        kill_adopted_orphans();
        return;
    }
    for (int attempt = 0; attempt < 200; attempt++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        DIR *d = opendir(cg.base);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_type != DT_DIR || e->d_name[0] == '.')
                continue;
            int dir = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir >= 0) {
                kill_cgroup(dir);
                close(dir);
            }
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
        if (d)
            closedir(d);
        if (rmdir(cg.base) == 0 || errno == ENOENT) {
            close(cg.base_fd);
            cg.base_fd = -1;
            return;
        }
        usleep(10000);
    }
    log_msg(LOG_WARNING, "cannot remove %s: %s", cg.base, strerror(errno));
}

bool procs_group_create(const char *service)
{
    if (!cg.enabled)
        return false;
    if (mkdirat(cg.base_fd, service, 0755) < 0 && errno != EEXIST) {
        log_unit(LOG_WARNING, service, "cannot create cgroup %s/%s: %s", cg.base, service,
                 strerror(errno));
        return false;
    }
    return true;
}

int procs_group_dir_fd(const char *service)
{
    return cg.enabled ? openat(cg.base_fd, service, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
}

void procs_group_remove(const char *service)
{
    if (cg.enabled)
        unlinkat(cg.base_fd, service, AT_REMOVEDIR); /* fails while a process is still dying */
}

int procs_group_renew(const char *service)
{
    if (!cg.enabled)
        return -1;
    if (unlinkat(cg.base_fd, service, AT_REMOVEDIR) < 0)
        return errno == ENOENT && procs_group_create(service) ? 1 : 0;
    return procs_group_create(service) ? 1 : -1;
}

/* ---- the process-tree fallback ---- */

struct proc_stat {
    pid_t ppid, pgid;
    char state;
};

static bool read_stat(pid_t pid, struct proc_stat *ret)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: parse after the last ')'. */
    char *rparen = strrchr(buf, ')');
    int ppid, pgid;
    char state;
    if (!rparen || sscanf(rparen + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
        return false;
    ret->ppid = ppid;
    ret->pgid = pgid;
    ret->state = state;
    return true;
}

/* /proc/PID/NAME read whole, NUL-terminated, into a buffer reused by the
 * next call; NULL if it cannot be opened. arbord may have thousands of
 * children (their list is one file) and a service any environment. */
static const char *read_proc(pid_t pid, const char *name, size_t *len)
{
    static char *buf;
    static size_t cap;
    char path[320];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    *len = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            size_t grown_cap = cap ? cap * 2 : 65536;
            char *grown = realloc(buf, grown_cap);
            if (!grown)
                break;
            buf = grown;
            cap = grown_cap;
        }
        ssize_t n = read(fd, buf + *len, cap - *len - 1);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[*len] = '\0';
    return buf;
}

/* Inside an execve, from the moment the new program's memory replaces the
 * old to the moment the kernel writes its arguments, /proc/PID/cmdline and
 * environ read empty; a finished exec always has a cmdline since Linux 5.18
 * (before it, one run with no arguments at all costs the full wait below). */
static bool mid_exec(pid_t pid)
{
    size_t len;
    return read_proc(pid, "cmdline", &len) && len == 0 && procs_alive(pid);
}

static bool environ_has(pid_t pid, const char *entry)
{
    /* Empty may not be the process's own environment: it may be inside an
     * exec, or have exec'd since the file was opened (the memory read is
     * gone). Read until it is not empty, or empty twice, each time with no
     * exec under way once read; while one is, wait (microseconds of the
     * kernel's work; 500 waits of 0.1 ms at most), or an orphan caught
     * there would pass for untagged and live. */
    size_t n = 0;
    const char *env = NULL;
    for (int settled = 0, waits = 0; settled < 2 && waits < 500;) {
        env = read_proc(pid, "environ", &n);
        if (!env || n > 0)
            break;
        if (!mid_exec(pid)) {
            settled++;
        } else {
            settled = 0;
            waits++;
            usleep(100);
        }
    }
    if (!env || n == 0)
        return false;
    size_t len = strlen(entry);
    for (const char *p = env; p < env + n; p += strlen(p) + 1)
        if (strncmp(p, entry, len) == 0 && p[len] == '\0')
            return true;
    return false;
}

/* A growable list of pids. */
struct pid_list {
    pid_t *pids;
    size_t count, capacity;
};

static void pid_list_push(struct pid_list *list, pid_t pid)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 64;
        pid_t *grown = realloc(list->pids, capacity * sizeof(*grown));
        if (!grown)
            return;
        list->pids = grown;
        list->capacity = capacity;
    }
    list->pids[list->count++] = pid;
}

/* Append the children of `pid`: /proc/PID/task/TID/children of each of its
 * threads lists them, so no walk over every process is needed. The file
 * is read whole and parsed by hand: arbord itself may have thousands of
 * children, and this runs after every service exit without cgroups. */
static void push_children(struct pid_list *list, pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    struct dirent *t;
    while (tasks && (t = readdir(tasks))) {
        if (!isdigit((unsigned char)t->d_name[0]))
            continue;
        char name[300];
        snprintf(name, sizeof(name), "task/%s/children", t->d_name);
        size_t len;
        const char *p = read_proc(pid, name, &len);
        for (char *end; p && *p; p = end) {
            long child = strtol(p, &end, 10);
            if (end == p)
                break;
            pid_list_push(list, (pid_t)child);
        }
    }
    if (tasks)
        closedir(tasks);
}

/* The tree under main_pid while it lives; once it has died, its children
 * were re-parented to us (subreaper): our children that are not another
 * service's main process and carry this unit's ARBOR_UNIT= tag. */
static void kill_tree_fallback(const char *service, pid_t main_pid, procs_is_main_fn is_main,
                               void *ctx)
{
    struct pid_list tree = {0}, ours = {0};
    char tag[128];
    snprintf(tag, sizeof(tag), "ARBOR_UNIT=%s", service);
    if (main_pid > 0)
        pid_list_push(&tree, main_pid);
    push_children(&ours, getpid());
    for (size_t i = 0; i < ours.count; i++)
        if (ours.pids[i] != main_pid && !is_main(ours.pids[i], ctx) &&
            environ_has(ours.pids[i], tag))
            pid_list_push(&tree, ours.pids[i]);
    for (size_t i = 0; i < tree.count && i < 100000; i++)
        push_children(&tree, tree.pids[i]);
    for (size_t i = 0; i < tree.count; i++)
        kill(tree.pids[i], SIGKILL);
    free(tree.pids);
    free(ours.pids);
}

/* Without cgroups, an orphan that cleared its environment cannot be told
 * apart; but once every service has stopped, any child we still have was
 * adopted from one of them, so none may outlive arbord. */
static void kill_adopted_orphans(void)
{
    pid_t self = getpid();
    /* Killing one may re-parent its own children to us: repeat until we
     * have no child left (or give up after a few seconds). */
    for (int round = 0; round < 500; round++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
            return;
        struct pid_list ours = {0};
        push_children(&ours, self);
        for (size_t i = 0; i < ours.count; i++)
            kill(ours.pids[i], SIGKILL);
        free(ours.pids);
        usleep(10000);
    }
}

/* Signal every descendant of ours, depth first. */
static void signal_descendants(int sig)
{
    struct pid_list tree = {0};
    push_children(&tree, getpid());
    for (size_t i = 0; i < tree.count && i < 100000; i++)
        push_children(&tree, tree.pids[i]);
    for (size_t i = 0; i < tree.count; i++)
        kill(tree.pids[i], sig);
    free(tree.pids);
}

/* Reap what has exited; true once we have no child at all. */
static bool reap_all(void)
{
    pid_t pid;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        ;
    return pid < 0 && errno == ECHILD;
}

/* Nothing left to wait for? As PID 1: no other process in the namespace
 * (kill(-1, 0) finds none; some may not be our children, e.g. entered
 * with setns). Otherwise: no child of ours. Reaps what has exited. */
static bool nothing_left(bool namespace_init)
{
    bool no_child = reap_all();
    if (!namespace_init)
        return no_child;
    return kill(-1, 0) < 0 && errno == ESRCH;
}

void procs_end_all(bool namespace_init, int grace_ms)
{
    /* kill(-1) from PID 1 reaches every other process of its namespace,
     * and nothing outside it; from anywhere else it would reach the whole
     * machine, so there only our own descendants are signalled. */
    int sigs[2] = {SIGTERM, SIGKILL};
    for (int round = 0; round < 2; round++) {
        if (nothing_left(namespace_init))
            return;
        if (round == 0)
            log_msg(LOG_INFO, "ending the processes left over: SIGTERM, then SIGKILL after %d ms",
                    grace_ms);
        if (namespace_init)
            kill(-1, sigs[round]);
        else
            signal_descendants(sigs[round]);
        int wait_ms = round == 0 ? grace_ms : 5000;
        for (int waited = 0; waited < wait_ms; waited += 10) {
            if (nothing_left(namespace_init))
                return;
            usleep(10000);
        }
    }
    log_msg(LOG_WARNING, "processes are still left after SIGKILL");
}

static void kill_cgroup(int dir_fd)
{
    int fd = openat(dir_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = write(fd, "1", 1);
        close(fd);
        if (n == 1)
            return;
    }
    /* Kernels before 5.14 have no cgroup.kill: signal each member. */
    fd = openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    int pid;
    while (f && fscanf(f, "%d", &pid) == 1)
        kill(pid, SIGKILL);
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
}

/* Does the cgroup hold a process? Yes when it cannot be told. */
static bool cgroup_populated(int dir_fd)
{
    char buf[256];
    int fd = openat(dir_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    return strstr(buf, "populated 0") == NULL;
}

bool procs_kill_all(const char *service, bool cgroup, pid_t pgid, pid_t main_pid,
                    procs_is_main_fn is_main, void *ctx)
{
    if (pgid > 0)
        kill(-pgid, SIGKILL);
    if (!cgroup) {
        kill_tree_fallback(service, main_pid, is_main, ctx);
        return false;
    }
    int dir = procs_group_dir_fd(service);
    bool killed = false;
    if (dir >= 0) {
        killed = cgroup_populated(dir);
        if (killed)
            kill_cgroup(dir);
        close(dir);
    }
    return killed;
}

static int cgroup_belongs(const char *service, pid_t pid)
{
    char path[64], line[4096], want[PATH_MAX + 8];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    snprintf(want, sizeof(want), "0::%s/%s", cg.relative, service);
    int result = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, want) == 0)
            result = 1;
    }
    fclose(f);
    return result;
}

pid_t procs_parent(pid_t pid)
{
    struct proc_stat st;
    return read_stat(pid, &st) ? st.ppid : -1;
}

bool procs_alive(pid_t pid)
{
    struct proc_stat st;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return false;
    return !read_stat(pid, &st) || (st.state != 'Z' && st.state != 'X');
}

int procs_belongs(const char *service, bool cgroup, pid_t pgid, pid_t main_pid, pid_t pid)
{
    if (pid <= 0)
        return -1;
    if (pid == main_pid)
        return 1;
    if (cgroup)
        return cgroup_belongs(service, pid);
    struct proc_stat st;
    if (!read_stat(pid, &st))
        return -1;
    if (pgid > 0 && st.pgid == pgid)
        return 1;
    /* Walk up the parents to the main process. */
    for (int depth = 0; depth < 64 && st.ppid > 1; depth++) {
        if (st.ppid == main_pid)
            return 1;
        if (!read_stat(st.ppid, &st))
            break;
    }
    return 0;
}
