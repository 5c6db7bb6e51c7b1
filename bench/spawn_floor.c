/*
 * spawn_floor.c: the machine's own limit for starting services, to hold
 * arbord's spawn throughput against (bench/side_by_side.py).
 *
 *   spawn_floor posix_spawn|fork|vfork|cgroup N PROGRAM [ARG...]
 *   spawn_floor supervise 0 PROGRAM [ARG...]
 *
 * Starts N copies of PROGRAM one at a time, as a supervisor starts
 * Type=exec services: each start waits until the child's execve() has
 * succeeded (EOF on a close-on-exec pipe, the way arbord learns it) before
 * the next begins, and every child stays alive. Then it prints
 *
 *   MODE N SECONDS PER_SECOND P50_US
 *
 * and SIGKILLs and reaps every child it started (with SPAWN_FLOOR_HOLD=1 in
 * its environment, only once its standard input is at end of file, so that
 * a driver can first hear from every child). Nothing else is done per
 * start: no setsid, no signal resets, no fd shuffling, no environment built;
 * that is the point of a floor.
 *
 * "cgroup" is the floor of a supervisor that gives every service a cgroup
 * of its own, as arbord does by default: per start, a mkdir under a
 * cgroup2 directory of our own and clone3(CLONE_VM | CLONE_VFORK |
 * CLONE_INTO_CGROUP) into it, then exec (x86-64 only; exit 100 when
 * there is no writable cgroup2 here).
 *
 * "supervise" is the floor of crash-to-respawn latency: the least a
 * supervisor can do, a blocking waitpid() on its one child and a
 * posix_spawn() of the next as soon as it returns, for ever (until it is
 * killed; its last child is then left to whoever reaps orphans).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- "cgroup": a cgroup per child, the child born in it ---- */

static char cgroup_dir[PATH_MAX]; /* ours: CGROUP2_MOUNT/OUR_CGROUP/spawn-floor-PID */
static int cgroup_dir_fd = -1;

/* The cgroup2 directory this process is in, from /proc/self/mountinfo and
 * /proc/self/cgroup's "0::" line. */
static int own_cgroup2(char *buf, size_t size)
{
    char line[4096], mount[PATH_MAX] = "", rel[PATH_MAX] = "";
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    while (!mount[0] && fgets(line, sizeof(line), f)) {
        char *dash = strstr(line, " - cgroup2 ");
        char point[PATH_MAX];
        if (dash && sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1)
            snprintf(mount, sizeof(mount), "%s", point);
    }
    fclose(f);
    if (!(f = fopen("/proc/self/cgroup", "re")))
        return -1;
    while (!rel[0] && fgets(line, sizeof(line), f))
        if (strncmp(line, "0::", 3) == 0)
            snprintf(rel, sizeof(rel), "%.*s", (int)strcspn(line + 3, "\n"), line + 3);
    fclose(f);
    if (!mount[0] || !rel[0])
        return -1;
    int n = snprintf(buf, size, "%s%s", mount, strcmp(rel, "/") ? rel : "");
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static int cgroup_prepare(void)
{
#if !defined(__x86_64__)
    errno = ENOSYS; /* clone3_vfork() below is x86-64 assembly */
    return -1;
#endif
    char own[PATH_MAX];
    if (own_cgroup2(own, sizeof(own)) < 0)
        return -1;
    int n = snprintf(cgroup_dir, sizeof(cgroup_dir), "%.*s/spawn-floor-%d", PATH_MAX - 64, own,
                     (int)getpid());
    if (n < 0 || mkdir(cgroup_dir, 0755) < 0)
        return -1;
    cgroup_dir_fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return cgroup_dir_fd < 0 ? -1 : 0;
}

static void cgroup_remove(long n)
{
    char name[32];
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "c%ld", i);
        unlinkat(cgroup_dir_fd, name, AT_REMOVEDIR);
    }
    close(cgroup_dir_fd);
    rmdir(cgroup_dir);
}

#if defined(__x86_64__)
struct exec_args {
    char **argv;
    int status_fd;
};

static void cgroup_child(void *p)
{
    struct exec_args *a = p;
    execv(a->argv[0], a->argv);
    int e = errno;
    ssize_t w = write(a->status_fd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

/* The child runs on its own stack from the instruction after the syscall:
 * it calls cgroup_child(arg) (registers other than rax, rcx and r11 are as
 * the parent left them), which execs or exits. */
static long clone3_vfork(struct clone_args *args, void (*fn)(void *), void *arg)
{
    long r;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 2f\n\t"
                     "mov %[arg], %%rdi\n\t"
                     "call *%[fn]\n\t"
                     "ud2\n"
                     "2:"
                     : "=a"(r)
                     : "a"((long)SYS_clone3), "D"(args),
                       "S"(sizeof(*args)), [fn] "r"(fn), [arg] "r"(arg)
                     : "rcx", "r11", "memory");
    return r;
}

static _Alignas(64) unsigned char child_stack[64 * 1024];

static pid_t cgroup_spawn(long i, char **argv, int status_fd)
{
    char name[32];
    snprintf(name, sizeof(name), "c%ld", i);
    if (mkdirat(cgroup_dir_fd, name, 0755) < 0)
        return -1;
    int fd = openat(cgroup_dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct exec_args a = {.argv = argv, .status_fd = status_fd};
    struct clone_args args = {
        .flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)child_stack,
        .stack_size = sizeof(child_stack),
        .cgroup = (uint64_t)fd,
    };
    long r = clone3_vfork(&args, cgroup_child, &a);
    close(fd);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return (pid_t)r;
}
#else
static pid_t cgroup_spawn(long i, char **argv, int status_fd)
{
    (void)i, (void)argv, (void)status_fd;
    errno = ENOSYS;
    return -1;
}
#endif

/* Start one child (the i-th); returns its pid once it has exec'd, or -1. */
static pid_t start_one(const char *mode, long i, char **argv)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid;
    if (strcmp(mode, "cgroup") == 0) {
        pid = cgroup_spawn(i, argv, fds[1]);
    } else if (strcmp(mode, "posix_spawn") == 0) {
        int r = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
        if (r != 0) {
            errno = r;
            pid = -1;
        }
    } else {
        pid = strcmp(mode, "vfork") == 0 ? vfork() : fork();
        if (pid == 0) {
            execv(argv[0], argv);
            int e = errno;
            ssize_t w = write(fds[1], &e, sizeof(e));
            (void)w;
            _exit(127);
        }
    }
    close(fds[1]);
    if (pid > 0) {
        int e;
        ssize_t n;
        do {
            n = read(fds[0], &e, sizeof(e));
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            fprintf(stderr, "spawn_floor: exec %s: %s\n", argv[0], strerror(e));
            waitpid(pid, NULL, 0);
            pid = -1;
        }
    }
    close(fds[0]);
    return pid;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: spawn_floor posix_spawn|fork|vfork|cgroup|supervise N PROGRAM [ARG...]\n");
        return 100;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    if (strcmp(mode, "supervise") == 0) {
        for (;;) {
            pid_t pid = start_one("posix_spawn", 0, argv + 3);
            if (pid < 0) {
                perror("spawn_floor: start");
                return 111;
            }
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    bool cgroup = strcmp(mode, "cgroup") == 0;
    if (n <= 0 ||
        (strcmp(mode, "posix_spawn") && strcmp(mode, "fork") && strcmp(mode, "vfork") && !cgroup)) {
        fprintf(stderr, "spawn_floor: bad mode or count\n");
        return 100;
    }
    if (cgroup && cgroup_prepare() < 0) {
        fprintf(stderr, "spawn_floor: cgroup: not here (x86-64 and a writable cgroup2): %s\n",
                strerror(errno));
        return 100;
    }
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    double *each = calloc((size_t)n, sizeof(*each));
    if (!pids || !each)
        return 111;
    long started = 0;
    int status = 0;
    double t0 = now();
    for (; started < n; started++) {
        double t = now();
        pids[started] = start_one(mode, started, argv + 3);
        each[started] = now() - t;
        if (pids[started] < 0) {
            perror("spawn_floor: start");
            status = 111;
            break;
        }
    }
    double total = now() - t0;
    if (status == 0) {
        qsort(each, (size_t)n, sizeof(*each), cmp_double);
        printf("%s %ld %.6f %.1f %.1f\n", mode, n, total, (double)n / total, each[n / 2] * 1e6);
        fflush(stdout);
    }
    const char *hold = getenv("SPAWN_FLOOR_HOLD");
    if (hold && strcmp(hold, "1") == 0) {
        char buf[256];
        for (;;) {
            ssize_t r = read(0, buf, sizeof(buf));
            if (r > 0 || (r < 0 && errno == EINTR))
                continue;
            break;
        }
    }
    for (long i = 0; i < started; i++)
        kill(pids[i], SIGKILL);
    for (long i = 0; i < started; i++)
        waitpid(pids[i], NULL, 0);
    if (cgroup)
        cgroup_remove(started + 1);
    free(pids);
    free(each);
    return status;
}
