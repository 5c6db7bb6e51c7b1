/*
 * control.h: arbord's side of the control socket (the protocol itself is
 * proto/control.h).
 *
 * Clients are served from the event loop, many at once: each has its own
 * input and output buffer, a deadline to finish its request, and, for a
 * command that waits (start, stop, restart, wait, logs -f, shutdown), a
 * place in a list the daemon consults after every state change. A client
 * that sends garbage, too much, or too slowly is dropped; when the
 * connection limit is reached the oldest client that has not yet sent its
 * request makes room, so idle connections cannot lock operators out.
 */
#ifndef ARBOR_CONTROL_H
#define ARBOR_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "core/core.h"

struct daemon;
struct service_os;

#define CONTROL_CLIENTS_MAX 256
#define CONTROL_REQUEST_TIMEOUT 10.0         /* seconds to send HELLO and REQUEST */
#define CONTROL_OUTPUT_MAX (8 * 1024 * 1024) /* queued for one client before it is dropped */

/* Bind RUNTIME/control.sock and start accepting. Returns 0 or -errno. */
int control_open(struct daemon *d);
/* The same with the listening socket a re-exec inherited (or -1). */
int control_open_fd(struct daemon *d, int inherited);
/* Answer clients waiting for the shutdown, drop the rest, unlink. */
void control_close(struct daemon *d);

/* A node changed state: settle the clients waiting on it. */
void control_transition(struct daemon *d, struct node *node);
/* A service wrote a line: pass it to `logs -f` clients. */
void control_output(struct daemon *d, struct service_os *svc, pid_t pid, msec_t time_ms,
                    const char *line, size_t len);
/* A reload finished: answer the clients that asked for it. */
void control_reload_settled(struct daemon *d);
/* An upgrade of `node` ended: answer the client that asked for it. */
void control_upgrade_settled(struct daemon *d, struct node *node, int exit, const char *message);
/* Re-exec (reexec.h): the check failed, answer the clients that asked. */
void control_reexec_failed(struct daemon *d, const char *why);
/* Write the listening socket and the waiting clients to the state. */
struct state_out;
void control_save(struct daemon *d, struct state_out *out);
/* In the next arbord: answer a client that asked for the re-exec. */
void control_answer_reexec(struct daemon *d, int fd, uid_t uid, const char *message);
/* A node is about to be freed (reload): forget every reference to it. */
void control_forget(struct daemon *d, struct node *node);

#endif
