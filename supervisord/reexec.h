/*
 * reexec.h: `arborctl reexec`, arbord executing its own binary again
 * without stopping any service (SPEC section 7).
 *
 * Theory of operation
 * -------------------
 * The services are arbord's children and stay so across execve(): same
 * pid, same children, same open files. What execve() loses is arbord's
 * memory and every close-on-exec fd. So before it, arbord writes its state
 * (state.h) into a memfd: the bytes of every unit file (the new arbord
 * rebuilds the very same tree from them, whatever is on disk now), each
 * node's supervision state with its intensity history and deadlines (the
 * monotonic clock is the system's, so they stay valid), each service's
 * fds (notify socket, spawn status pipe, pidfd, Listen= sockets, stored
 * fds, mailbox sockets) by number, the messages arbord holds for each
 * mailbox, the recent output for `arborctl logs`, the output pipes with
 * their unfinished lines, the control socket and the client that asked.
 * Those fds lose close-on-exec; everything else closes.
 *
 * Order of events:
 *   1. refuse while a reload, an upgrade or the shutdown is under way, or
 *      when a unit file changed on disk since it was loaded (reload first);
 *   2. run the binary at the path arbord was started from with --version
 *      in a child: it must exit 0 within 10 s, else exit 1, nothing done;
 *   3. write the state, block every signal (the mask survives execve, so
 *      nothing is lost or fatal before the new handlers exist), execve();
 *   4. if execve() fails, put close-on-exec back, unblock, answer exit 1;
 *   5. the new arbord (--state-fd N) reads the state, takes the fds over,
 *      starts its watchers, unblocks signals, reaps what exited meanwhile,
 *      and answers the client: exit 0.
 * Other control clients (logs -f, wait) see their connection close.
 */
#ifndef ARBOR_REEXEC_H
#define ARBOR_REEXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daemon;
struct state_in;
struct unit_set;
struct diagnostics;

/* Begin a re-exec: checks, then the binary check in a child. 0 when under
 * way (the outcome reaches the waiting clients), -1 with `why`. */
int reexec_request(struct daemon *d, char *why, size_t size);
/* A child exited: true if it was the binary check. */
bool reexec_child_exited(struct daemon *d, pid_t pid, int status);

/* In the new arbord: the state's header and units, up to the daemon part.
 * Returns 0 with `set` validated and *ret_lock the runtime lock's fd, or
 * -1 with the problem in `diag`. */
int reexec_read_units(struct state_in *in, struct unit_set *set, struct diagnostics *diag,
                      int *ret_lock);
/* Take over the services, the control socket and the mailboxes from the
 * rest of the state, for the tree just built from those units. Returns 0,
 * or -1 (logged): the state cannot be used. */
int reexec_restore(struct daemon *d, struct state_in *in);
/* Once the loop's watchers are set: arm the deadlines and answer the
 * clients that asked for the re-exec. */
void reexec_resume(struct daemon *d);

#endif
