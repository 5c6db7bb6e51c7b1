/*
 * spawn.c: see spawn.h. Everything after vfork() in the child is limited
 * to system calls and async-signal-safe functions: the child runs in
 * arbord's own memory until it execs, so it must not allocate, touch
 * stdio, or return.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "os/spawn.h"

static void report_and_exit(int status_fd, int step, int error)
{
    struct spawn_failure failure = {.step = step, .error = error};
    ssize_t n = write(status_fd, &failure, sizeof(failure));
    (void)n;
    /* As tini and shells do: 127 for a missing program, 126 otherwise. */
    _exit(step == SPAWN_STEP_EXEC && error == ENOENT ? 127 : 126);
}

static void write_pid(char *slot, pid_t pid)
{
    char *digits = slot + strlen(slot) - SPAWN_PID_DIGITS;
    char tmp[SPAWN_PID_DIGITS];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + pid % 10);
        pid /= 10;
    } while (pid > 0 && n < SPAWN_PID_DIGITS);
    for (int i = 0; i < n; i++)
        digits[i] = tmp[n - 1 - i];
    digits[n] = '\0';
}

/* Move every fd we must place out of the way of the targets first, so that
 * dup2() onto 0..3+n never clobbers a source still needed. */
static int arrange_fds(const struct spawn_request *req)
{
    int n = req->n_pass_fds;
    int floor = 3 + n + 3;
    int sources[3 + SPAWN_MAX_PASS_FDS];
    sources[0] = req->stdin_fd;
    sources[1] = req->stdout_fd;
    sources[2] = req->stderr_fd;
    for (int i = 0; i < n; i++)
        sources[3 + i] = req->pass_fds[i];
    for (int i = 0; i < 3 + n; i++) {
        int moved = fcntl(sources[i], F_DUPFD_CLOEXEC, floor);
        if (moved < 0)
            return -1;
        sources[i] = moved;
    }
    for (int i = 0; i < 3 + n; i++)
        if (dup2(sources[i], i) < 0) /* dup2 clears FD_CLOEXEC on the target */
            return -1;
    /* Everything else closes at exec; the status pipe must stay until then. */
    if (syscall(SYS_close_range, 3 + n, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3 + n; fd < 65536; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0)
                fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    return 0;
}

/* Move ourselves into the cgroup, when clone3 could not start us there.
 * The write synchronises RCU in the kernel: ~5-10 ms for a lone restart. */
static int join_cgroup(int dir_fd)
{
    int fd = openat(dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, "0", 1);
    close(fd);
    return n == 1 ? 0 : -1;
}

/* A child sets back to SIG_DFL the signals whose disposition arbord has
 * changed: the ignored ones (only SIG_IGN survives execve) and those with
 * a handler (which would otherwise run in the child, on arbord's memory,
 * between unblocking signals and execve). A handful of system calls
 * instead of 62 (18 us here) while arbord waits; until noted, every one. */
static sigset_t changed;
static bool changed_noted;

void spawn_note_signals(void)
{
    sigemptyset(&changed);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, NULL, &old) < 0 || (old.sa_flags & SA_SIGINFO) ||
            old.sa_handler != SIG_DFL)
            sigaddset(&changed, sig);
    }
    changed_noted = true;
}

static void child_side(const struct spawn_request *req, int status_fd, bool in_cgroup)
{
    /* Keep the status pipe above every fd number arrange_fds() targets. */
    int high = fcntl(status_fd, F_DUPFD_CLOEXEC, 3 + req->n_pass_fds);
    if (high >= 0)
        status_fd = high;

    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && (!changed_noted || sigismember(&changed, sig)))
            sigaction(sig, &dfl, NULL);

    if (setsid() < 0)
        report_and_exit(status_fd, SPAWN_STEP_SETSID, errno);
    if (req->cgroup_fd >= 0 && !in_cgroup && join_cgroup(req->cgroup_fd) < 0)
        report_and_exit(status_fd, SPAWN_STEP_CGROUP, errno);
    if (arrange_fds(req) < 0)
        report_and_exit(status_fd, SPAWN_STEP_FDS, errno);

    pid_t self = getpid();
    for (int i = 0; i < 2; i++)
        if (req->pid_slots[i])
            write_pid(req->pid_slots[i], self);

    if (req->set_umask)
        umask(req->umask);
    if (req->working_directory && chdir(req->working_directory) < 0)
        report_and_exit(status_fd, SPAWN_STEP_CHDIR, errno);
    if (req->set_ids) {
        if (setgroups((size_t)req->n_groups, req->groups) < 0)
            report_and_exit(status_fd, SPAWN_STEP_GROUPS, errno);
        if (setresgid(req->gid, req->gid, req->gid) < 0)
            report_and_exit(status_fd, SPAWN_STEP_GID, errno);
        if (setresuid(req->uid, req->uid, req->uid) < 0)
            report_and_exit(status_fd, SPAWN_STEP_UID, errno);
    }

    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(req->path, req->argv, req->envp);
    report_and_exit(status_fd, SPAWN_STEP_EXEC, errno);
}

struct child_start {
    const struct spawn_request *req;
    int status_fd;
    int unshare_below; /* > 0: born sharing arbord's fd table (below) */
};

/* AddressSanitizer cannot follow a child onto a stack of its own (it
 * keeps the poison of frames that never return, and mistakes the stack
 * for a buffer): its builds use the vfork path, which the tests also cover
 * by making clone3 fail. */
#if defined(__SANITIZE_ADDRESS__)
#define ARBOR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARBOR_ASAN 1
#endif
#endif

#if defined(__x86_64__) && !defined(ARBOR_ASAN)
/* clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP): a vfork whose child
 * is born in its cgroup. The child must run on a stack of its own, which
 * no C wrapper allows (it would return through the parent's frames), so
 * the child's first instructions are here: call entry(arg), which never
 * returns. Only rax, rcx and r11 change across a syscall, so entry and
 * arg are still in their registers in the child. */
static long clone3_call(struct clone_args *args, void (*entry)(void *), void *arg)
{
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "mov %[arg], %%rdi\n\t"
                     "call *%[entry]\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "a"((long)SYS_clone3), "D"(args),
                       "S"(sizeof(*args)), [entry] "r"(entry), [arg] "r"(arg)
                     : "rcx", "r11", "memory");
    return ret;
}
#define HAVE_CLONE3_CALL 1
#endif

#ifdef HAVE_CLONE3_CALL
static void clone3_child(void *arg)
{
    const struct child_start *start = arg;
    /* Born sharing arbord's fd table: take a table of our own holding only
     * the fds below unshare_below (the slots), before touching any fd. */
    if (start->unshare_below > 0 &&
        syscall(SYS_close_range, start->unshare_below, ~0U, CLOSE_RANGE_UNSHARE) < 0 &&
        unshare(CLONE_FILES) < 0)
        report_and_exit(start->status_fd, SPAWN_STEP_FDS, errno);
    child_side(start->req, start->status_fd, start->req->cgroup_fd >= 0);
}

/* Only one child at a time runs on it: the parent waits until it execs. */
static _Alignas(64) unsigned char clone3_stack[64 * 1024];
static bool clone3_unusable;

static bool clone3_usable(void)
{
    return !clone3_unusable;
}

/* Returns the pid, -errno, or 0 when clone3 cannot be used here (a kernel
 * before 5.7, or a seccomp filter that refuses it, as Docker's does).
 * unshare_below > 0: the child shares our fd table until it has copied
 * the fds below that number (CLONE_FILES; see spawn_reserve_slots()). */
static pid_t clone3_spawn(const struct spawn_request *req, int status_fd, int unshare_below)
{
    if (clone3_unusable)
        return 0;
    struct child_start start = {.req = req, .status_fd = status_fd, .unshare_below = unshare_below};
    struct clone_args args = {
        .flags = CLONE_VM | CLONE_VFORK,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)clone3_stack,
        .stack_size = sizeof(clone3_stack),
    };
    if (req->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)req->cgroup_fd;
    }
    if (unshare_below > 0)
        args.flags |= CLONE_FILES;
    long r = clone3_call(&args, clone3_child, &start);
    if (r == -ENOSYS || r == -E2BIG || r == -EINVAL || r == -EPERM) {
        clone3_unusable = true;
        return 0;
    }
    return (pid_t)r;
}
#else
static bool clone3_usable(void)
{
    return false;
}

static pid_t clone3_spawn(const struct spawn_request *req, int status_fd, int unshare_below)
{
    (void)req;
    (void)status_fd;
    (void)unshare_below;
    return 0;
}
#endif

/* Slots: low fd numbers arbord keeps (on /dev/null) for the fds a child
 * must have. A child copies its parent's whole fd table, and its exec
 * then closes every inherited fd one by one: with 1,000 services (2,000
 * fds) that was ~0.7 ms of each start. Instead, the fds a child needs are
 * dup'd into the slots, the child is born sharing arbord's table and
 * takes a copy of only the fds below the last slot. */
#define SPAWN_SLOTS 32
static int slots[SPAWN_SLOTS];
static int n_slots;
static int slot_filler = -1;
static int slots_end; /* 1 + the highest slot */

void spawn_reserve_slots(void)
{
    slot_filler = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (n_slots = 0; slot_filler >= 0 && n_slots < SPAWN_SLOTS; n_slots++) {
        slots[n_slots] = fcntl(slot_filler, F_DUPFD_CLOEXEC, 3);
        if (slots[n_slots] < 0)
            break;
        if (slots[n_slots] >= slots_end)
            slots_end = slots[n_slots] + 1;
    }
}

/* Put the request's fds in the slots: *fast becomes the same request with
 * slot numbers, *status_slot the status pipe's. False (nothing held) if
 * they do not fit. */
static bool fill_slots(const struct spawn_request *req, int status_fd, struct spawn_request *fast,
                       int *pass_slots, int *status_slot)
{
    int n = req->n_pass_fds;
    if (3 + n + 1 > n_slots)
        return false;
    int sources[3 + SPAWN_SLOTS + 1];
    sources[0] = req->stdin_fd;
    sources[1] = req->stdout_fd;
    sources[2] = req->stderr_fd;
    for (int i = 0; i < n; i++)
        sources[3 + i] = req->pass_fds[i];
    sources[3 + n] = status_fd;
    for (int i = 0; i < 3 + n + 1; i++) {
        if (dup3(sources[i], slots[i], O_CLOEXEC) < 0) {
            for (int j = 0; j < i; j++)
                dup3(slot_filler, slots[j], O_CLOEXEC);
            return false;
        }
    }
    *fast = *req;
    fast->stdin_fd = slots[0];
    fast->stdout_fd = slots[1];
    fast->stderr_fd = slots[2];
    for (int i = 0; i < n; i++)
        pass_slots[i] = slots[3 + i];
    fast->pass_fds = pass_slots;
    *status_slot = slots[3 + n];
    return true;
}

/* Let go of what the slots held (the pipes' write ends above all: their
 * readers wait for EOF). */
static void empty_slots(int used)
{
    for (int i = 0; i < used; i++)
        dup3(slot_filler, slots[i], O_CLOEXEC);
}

pid_t spawn_process(const struct spawn_request *req, int *ret_status_fd)
{
    int status_pipe[2];
    if (req->n_pass_fds > SPAWN_MAX_PASS_FDS)
        return -EINVAL;
    if (pipe2(status_pipe, O_CLOEXEC) < 0)
        return -errno;

    /* Block every signal across the fork: libev's handler must not run in
     * the child (it would write to the eventfd the parent shares).
     *
     * vfork: the child borrows arbord's memory until it execs, so the cost
     * of a start does not grow with arbord's size (fork copies the page
     * tables: thousands of services make that measurable). That is safe
     * here because the child only makes system calls, allocates nothing,
     * never returns from child_side(), and has its own signal handlers
     * and fd table (no CLONE_SIGHAND, no CLONE_FILES); arbord is
     * suspended until the child has exec'd or exited. The clone3 path is
     * the same vfork, with the child born in its cgroup. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = 0;
    if (!req->cgroup_join) {
        struct spawn_request fast;
        int pass_slots[SPAWN_SLOTS], status_slot;
        if (clone3_usable() && fill_slots(req, status_pipe[1], &fast, pass_slots, &status_slot)) {
            pid = clone3_spawn(&fast, status_slot, slots_end);
            empty_slots(3 + req->n_pass_fds + 1);
        } else {
            pid = clone3_spawn(req, status_pipe[1], 0);
        }
    }
    int saved = pid < 0 ? -pid : 0;
    if (pid == 0) {
        pid = vfork();
        if (pid == 0) {
            close(status_pipe[0]);
            child_side(req, status_pipe[1], false);
        }
        saved = errno;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(status_pipe[1]);
    if (pid < 0) {
        close(status_pipe[0]);
        return -saved;
    }
    fcntl(status_pipe[0], F_SETFL, O_NONBLOCK);
    *ret_status_fd = status_pipe[0];
    return pid;
}

int spawn_read_status(int fd, struct spawn_failure *ret)
{
    struct spawn_failure failure;
    ssize_t n;
    do {
        n = read(fd, &failure, sizeof(failure));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? -EAGAIN : 0;
    if (n == 0)
        return 0;
    if (n != sizeof(failure)) {
        failure.step = SPAWN_STEP_EXEC;
        failure.error = EIO;
    }
    *ret = failure;
    return 1;
}

const char *spawn_step_name(int step)
{
    switch (step) {
    case SPAWN_STEP_SETSID:
        return "setsid";
    case SPAWN_STEP_CGROUP:
        return "joining its cgroup";
    case SPAWN_STEP_FDS:
        return "setting up file descriptors";
    case SPAWN_STEP_CHDIR:
        return "chdir to WorkingDirectory";
    case SPAWN_STEP_GROUPS:
        return "setgroups";
    case SPAWN_STEP_GID:
        return "setgid";
    case SPAWN_STEP_UID:
        return "setuid";
    default:
        return "exec";
    }
}

int spawn_find_program(const char *name, const char *path_list, char *buf, size_t size)
{
    int error = ENOENT;
    const char *dir = path_list;
    while (dir && *dir) {
        const char *end = strchr(dir, ':');
        size_t len = end ? (size_t)(end - dir) : strlen(dir);
        if (len > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)len, dir, name) < size) {
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(buf, X_OK) == 0)
                    return 0;
                error = EACCES;
            }
        }
        dir = end ? end + 1 : NULL;
    }
    return -error;
}
