/*
 * upgrade.h: `arborctl upgrade NAME`, a new instance of a running service
 * started beside the old one (SPEC section 7).
 *
 * Theory of operation
 * -------------------
 * The core never sees an upgrade: to it the service stays running
 * throughout. This file re-reads the unit file, installs the new unit,
 * and starts a second process with the same mailbox fd, Listen= sockets
 * and stored fds, tracked here, not in the pid table. Its notify messages
 * (recognised by pid or process group) come here too. Then:
 *
 *   STARTING   waiting for the new instance to be ready (exec done; or
 *              READY=1 for Type=notify), within StartTimeout.
 *     ready    -> the new pid becomes the node's main pid; the old one is
 *                 sent its stop signal (SIGKILL after its stop timeout)
 *                 and watched by pidfd: RETIRING. Its exit, seen through
 *                 the pidfd, settles the upgrade (exit 0).
 *     fails    (exits, exec fails, StartTimeout, or the node leaves
 *                 "running" because the old instance died or was
 *                 stopped) -> the old unit is put back at once, the new
 *                 instance is stopped: FAILING; its exit settles the
 *                 upgrade (exit 1).
 *
 * An upgrade is not a restart: nothing is posted to the core, so it never
 * counts against intensity. The mailbox is shared, not handed over: both
 * instances read the same socket during the overlap, so nothing queued is
 * lost and there is always a reader.
 */
#ifndef ARBOR_UPGRADE_H
#define ARBOR_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daemon;
struct node;
struct service_os;
struct upgrade;
struct notify_message;

/* Begin upgrading `node`. Returns 0 (the outcome reaches the control
 * clients through control_upgrade_settled()), or -1 with `why` filled
 * when nothing was started. */
int upgrade_begin(struct daemon *d, struct node *node, char *why, size_t size);

/* Whether `pid` belongs to the instance an upgrade is starting. */
bool upgrade_owns_sender(const struct upgrade *up, pid_t pid);
/* A notify message from that instance (FDSTORE is handled by the caller). */
void upgrade_notify(struct upgrade *up, const struct notify_message *m);
/* A child exited: true if it was an upgrade's new instance. */
bool upgrade_child_exited(struct daemon *d, pid_t pid, int status);
/* The service's node changed state. */
void upgrade_node_changed(struct service_os *svc);
/* The service is going away (arbord exits): end its upgrade now. */
void upgrade_forget(struct daemon *d, struct service_os *svc);

#endif
