/*
 * reaper.h: reap arbord's children, the one a SIGCHLD names first.
 *
 * waitpid(-1) walks every child the kernel knows for us: with 1,000
 * services about 0.2 ms, and libev called it two or three times per exit, before the
 * restart could begin. SIGCHLD's siginfo names the child that exited, and
 * waitpid() on a named pid costs the same whatever the number of
 * children (Linux 5.14 and later), so that child is reaped and handled
 * (its restart spawned) first. Standard signals merge, though: a child
 * that exits while a SIGCHLD is still pending sends none of its own, so
 * one full scan still follows, a little later (loop.c), so that it does
 * not delay the restarted child, and so that a storm of exits pays for
 * one scan every few milliseconds, not one per exit.
 *
 * SIGCHLD stays blocked in arbord; a signalfd says when one is pending.
 */
#ifndef ARBOR_REAPER_H
#define ARBOR_REAPER_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The signals the reaper keeps blocked (SIGCHLD): a caller that sets
 * the signal mask must keep them in it. */
void reaper_signals(sigset_t *set);

/* Block them and open the signalfd (non-blocking, close-on-exec).
 * Returns the fd or -errno. */
int reaper_open(void);

/* Called for every child reaped, with its wait status. */
typedef void reaper_fn(void *ctx, pid_t pid, int status);

/* Take every pending SIGCHLD and reap and report the children they
 * name. Returns true if any came: reaper_scan() is then due. */
bool reaper_run(reaper_fn *fn, void *ctx);

/* Reap and report every child that has exited. */
void reaper_scan(reaper_fn *fn, void *ctx);

#endif
