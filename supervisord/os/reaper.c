/*
 * reaper.c: see reaper.h.
 */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "os/reaper.h"

void reaper_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
}

int reaper_open(void)
{
    sigset_t set;
    reaper_signals(&set);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* 0 or -1 when there is nothing to reap: the pid named by a signal was
 * already reaped by a scan, or it is not (or no longer) our child. */
static pid_t reap(pid_t pid, reaper_fn *fn, void *ctx)
{
    int status;
    pid_t r;
    do {
        r = waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r > 0)
        fn(ctx, r, status);
    return r;
}

bool reaper_run(reaper_fn *fn, void *ctx)
{
    sigset_t set;
    reaper_signals(&set);
    /* Dequeued with sigtimedwait(), not read from the signalfd: this
     * keeps the siginfo exactly as the kernel sent it. */
    const struct timespec now = {0, 0};
    siginfo_t info;
    int sig;
    bool any = false;
    while ((sig = sigtimedwait(&set, &info, &now)) == SIGCHLD || (sig < 0 && errno == EINTR)) {
        if (sig != SIGCHLD)
            continue;
        any = true;
        if (info.si_pid > 0 && info.si_code != CLD_STOPPED && info.si_code != CLD_CONTINUED)
            reap(info.si_pid, fn, ctx);
    }
    return any;
}

void reaper_scan(reaper_fn *fn, void *ctx)
{
    while (reap(-1, fn, ctx) > 0)
        ;
}
