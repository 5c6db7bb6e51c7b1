/*
 * spawn_floor.c: the machine's own limit for starting services, to hold
 * arbord's spawn throughput against (bench/side_by_side.py).
 *
 *   spawn_floor posix_spawn|fork|vfork N PROGRAM [ARG...]
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
 * "supervise" is the floor of crash-to-respawn latency: the least a
 * supervisor can do, a blocking waitpid() on its one child and a
 * posix_spawn() of the next as soon as it returns, for ever (until it is
 * killed; its last child is then left to whoever reaps orphans).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Start one child; returns its pid once it has exec'd, or -1. */
static pid_t start_one(const char *mode, char **argv)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid;
    if (strcmp(mode, "posix_spawn") == 0) {
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
        fprintf(stderr, "usage: spawn_floor posix_spawn|fork|vfork|supervise N PROGRAM [ARG...]\n");
        return 100;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    if (strcmp(mode, "supervise") == 0) {
        for (;;) {
            pid_t pid = start_one("posix_spawn", argv + 3);
            if (pid < 0) {
                perror("spawn_floor: start");
                return 111;
            }
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (n <= 0 || (strcmp(mode, "posix_spawn") && strcmp(mode, "fork") && strcmp(mode, "vfork"))) {
        fprintf(stderr, "spawn_floor: bad mode or count\n");
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
        pids[started] = start_one(mode, argv + 3);
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
    free(pids);
    free(each);
    return status;
}
