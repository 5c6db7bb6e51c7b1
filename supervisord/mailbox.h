/*
 * mailbox.h: a service's mailbox, RUNTIME/mailbox/NAME, which outlives
 * every instance of the service.
 *
 * Theory of operation
 * -------------------
 * The mailbox is a datagram socket P that arbord binds when the unit loads
 * and holds until the unit goes away, so the kernel keeps what is queued
 * in it whatever the service does. Senders write to its path.
 *
 * An instance is handed the mailbox in one of two ways, chosen when it
 * starts:
 *
 *   direct    arbord holds nothing back: fd 3 *is* P. arbord is out of the
 *             message path and delivery costs what a plain Unix socket
 *             costs. Used whenever nothing is waiting in arbord.
 *   forward   arbord holds messages kept while the service was down (or
 *             not yet handed on): fd 3 is one end of a socketpair, and
 *             arbord writes its backlog into the other end, oldest first,
 *             then goes on reading P and passing each message on. Nothing
 *             newer can overtake: everything from P goes through the same
 *             queue behind the backlog.
 *
 * While no instance runs, arbord reads P into its backlog (so the
 * kernel's tiny datagram queue, net.unix.max_dgram_qlen, never fills),
 * up to MailboxCapacity messages; past that it stops reading, the kernel
 * queue fills, and senders block or get EAGAIN: back-pressure, never loss.
 * When an instance ends, whatever it left unread in the socketpair is
 * taken back, at the front of the backlog, since it is older than
 * anything arbord still holds. A message an instance had already read is
 * the instance's own business (read with MSG_PEEK for at-least-once).
 */
#ifndef ARBOR_MAILBOX_H
#define ARBOR_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ev_loop;
struct mailbox;

struct mailbox_settings {
    unsigned capacity; /* messages arbord keeps */
    uid_t owner;       /* the socket's owner: the service's user */
    gid_t group;
    mode_t mode; /* who may send: the socket's write permission */
};

struct mailbox_stats {
    bool direct;           /* the running instance reads the socket itself */
    uint64_t held;         /* messages in arbord's backlog, exactly */
    uint64_t socket_bytes; /* bytes waiting in the socket the instance reads */
    uint64_t kept;         /* messages ever taken into the backlog */
    uint64_t forwarded;    /* messages ever passed on by arbord */
    uint64_t reclaimed;    /* messages taken back from an instance that ended */
};

/* Create the socket at `path`. Returns NULL with `why` filled on failure. */
struct mailbox *mailbox_open(struct ev_loop *loop, const char *path, const char *name,
                             const struct mailbox_settings *settings, char *why, size_t size);
/* New settings (reload): capacity, owner, group and mode. */
int mailbox_configure(struct mailbox *mb, const struct mailbox_settings *settings, char *why,
                      size_t size);
/* Close everything and unlink the path; queued messages are dropped. */
void mailbox_close(struct mailbox *mb);

/* An instance is about to start: the fd to hand it as fd 3 (the mailbox
 * stays open in arbord too). */
int mailbox_instance_fd(struct mailbox *mb);
/* The fd the running instance was handed, for a second instance started
 * beside it (an upgrade): both read the same socket. */
int mailbox_running_fd(struct mailbox *mb);
/* The instance has ended: arbord keeps what comes until the next one. */
void mailbox_instance_ended(struct mailbox *mb);

void mailbox_get_stats(const struct mailbox *mb, struct mailbox_stats *ret);

/* Re-exec (reexec.h): write the rest of a "mailbox" record (fds, state,
 * totals) and one "message" record per message arbord holds; read them
 * back in the next arbord. NULL when the state is bad. */
struct state_out;
struct state_in;
void mailbox_save(const struct mailbox *mb, struct state_out *out);
struct mailbox *mailbox_restore(struct ev_loop *loop, const char *path, const char *name,
                                const struct mailbox_settings *settings, struct state_in *in);

#endif
