/*
 * arbor.h: libarbor, the client side of arbor's mailboxes.
 *
 * A service with Mailbox=yes owns a mailbox: a Unix datagram socket at
 * RUNTIME/mailbox/NAME that arbord holds for the life of the unit, so that
 * messages sent while the service is down wait for its next instance. The
 * service reads it on the fd arbord hands it (arbor_mailbox_fd()); anyone
 * the socket's permissions allow sends to it by name (arbor_send()).
 * arbor-mailbox(7) has the whole story: delivery guarantees, access, and
 * an example pair of services.
 *
 * Replies
 * -------
 * A receiver may be handed the bound socket itself or one end of a
 * socketpair that arbord writes into (see arbor-mailbox(7), "direct" and
 * "forward"), so the kernel's sender address says nothing reliable about
 * who sent a message. A sender that wants an answer says where to send it:
 * arbor_send_from() puts a small envelope naming the sender's own mailbox
 * in front of the message, arbor_recv() takes it off again and reports the
 * name, and arbor_reply() sends to that mailbox by name. Messages sent
 * without an envelope (arbor_send(), arborctl send, a plain sendto())
 * arrive byte for byte, with no sender.
 *
 * The envelope, version 1, is ARBOR_ENVELOPE_MAX bytes at most:
 *
 *   offset 0  4 bytes  magic: 0x00 'A' 'R' 'B'
 *   offset 4  1 byte   version: 0x01
 *   offset 5  1 byte   N, the length of the name: 1 to ARBOR_NAME_MAX
 *   offset 6  N bytes  the sender's mailbox name (no NUL), a unit name:
 *                      [A-Za-z0-9][A-Za-z0-9_.-]*
 *   offset 6+N         the message itself
 *
 * arbor_recv() takes off only an envelope that is exactly this; anything
 * else, including a version it does not know, is a plain message and is
 * returned whole. A plain message that happens to begin with the same
 * bytes would be taken for an envelope: raw senders should not start a
 * message with a NUL byte. A reader that uses recv() itself sees the
 * envelope as the first bytes of the datagram.
 *
 * Errors
 * ------
 * Every function returns -1 and sets errno on failure, as the system calls
 * it wraps do. Nothing here prints, keeps global state or changes the
 * environment: every function may be called from any thread.
 *
 *   ENOENT        no such mailbox (no socket at the path), no runtime
 *                 directory to look in, or (arbor_mailbox_fd) no mailbox
 *                 handed to this process
 *   ECONNREFUSED  the socket exists but nothing holds it: arbord is not
 *                 running
 *   EACCES        the mailbox's permissions do not let this user send
 *                 (MailboxMode=, MailboxGroup=: arbor-mailbox(7), ACCESS)
 *   EAGAIN        ARBOR_NONBLOCK and the mailbox is full (back-pressure)
 *   EMSGSIZE      a datagram longer than ARBOR_MESSAGE_MAX: the message, plus
 *                 its envelope if it has one
 *   EINVAL        a name that is not a unit name, or bad flags
 *   EDESTADDRREQ  arbor_reply() to a message that had no envelope
 *   EINTR         a signal handler interrupted a wait; nothing was sent or
 *                 received
 */
#ifndef ARBOR_H
#define ARBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ARBOR_NAME_MAX 64 /* a mailbox name (a unit name), in bytes */
/* The longest datagram a mailbox carries (SPEC: one datagram, up to 64
 * KiB), envelope included: a message sent with an envelope naming NAME may
 * be ARBOR_MESSAGE_MAX - 6 - strlen(NAME) bytes long. A buffer this big
 * never truncates a message, for arbor_recv() or for a plain recv(). */
#define ARBOR_MESSAGE_MAX 65536
#define ARBOR_ENVELOPE_MAX (6 + ARBOR_NAME_MAX) /* the longest envelope */

/* Flags. */
#define ARBOR_NONBLOCK 0x1 /* send, recv: fail with EAGAIN instead of waiting */
#define ARBOR_PEEK 0x2     /* recv: leave the message where it is (MSG_PEEK) */

/* What arbor_recv() learnt besides the message. */
struct arbor_sender {
    /* The sender's mailbox, from the envelope; "" for a plain message. It
     * is a return address, not a proof of identity: any process allowed
     * to send may put any name in it. */
    char name[ARBOR_NAME_MAX + 1];
    /* The message was longer than the buffer; the rest of it is gone
     * (unless ARBOR_PEEK). */
    bool truncated;
};

/* This process's own mailbox: the fd named "mailbox" in LISTEN_FDNAMES,
 * among the LISTEN_FDS fds from 3 on, when LISTEN_PID is this process
 * (the sd_listen_fds() protocol, read without libsystemd). The fd is made
 * close-on-exec, as sd_listen_fds() does; the environment is left alone.
 * Returns the fd, or -1 with errno ENOENT when this process was handed no
 * mailbox, EINVAL when the variables are malformed, EBADF or ENOTSOCK when
 * the fd they name is not an open socket. */
int arbor_mailbox_fd(void);

/* Send one message, as one datagram, to the mailbox of service `name`, at
 * RUNTIME/mailbox/NAME, RUNTIME being $ARBOR_RUNTIME, else /run/arbor for
 * root, else $XDG_RUNTIME_DIR/arbor. `flags`: 0 or ARBOR_NONBLOCK. Without
 * ARBOR_NONBLOCK, a full mailbox makes it wait for room: back-pressure.
 * Returns 0, or -1 and errno (see above). */
int arbor_send(const char *name, const void *buf, size_t len, int flags);

/* The same, to a mailbox socket given by its path (any length: a path too
 * long for a socket address is reached through its directory). */
int arbor_send_to_path(const char *path, const void *buf, size_t len, int flags);

/* Send with an envelope naming `my_name` as the mailbox to answer to (the
 * receiver's arbor_recv() reports it, and arbor_reply() answers there).
 * `my_name` NULL means $ARBOR_UNIT, the name arbord gives every service it
 * starts. EINVAL when it is not a unit name or is NULL with $ARBOR_UNIT
 * unset; EMSGSIZE when the message and the envelope (6 bytes and the
 * name) make more than ARBOR_MESSAGE_MAX. */
int arbor_send_from(const char *my_name, const char *name, const void *buf, size_t len, int flags);

/* Receive one message from a mailbox fd, blocking until one comes (unless
 * the fd is non-blocking). An envelope, if the message has one, is taken
 * off: `buf` gets the message as its sender passed it, and `ret_sender`
 * (may be NULL) the sender's name and whether the message was cut short.
 * Returns the length stored in `buf` (at most `len`), or -1 and errno. */
ssize_t arbor_recv(int fd, void *buf, size_t len, struct arbor_sender *ret_sender);

/* arbor_recv() with flags: ARBOR_NONBLOCK (EAGAIN when nothing waits) and
 * ARBOR_PEEK (the message stays in the mailbox, for at-least-once
 * handling: peek, act, then drop it). arbor_recv_flags(fd, NULL, 0, NULL,
 * 0) drops the next message. */
ssize_t arbor_recv_flags(int fd, void *buf, size_t len, struct arbor_sender *ret_sender, int flags);

/* Answer the sender of a message received with arbor_recv(): send to the
 * mailbox its envelope named. The answer has an envelope of its own,
 * naming $ARBOR_UNIT, when that is set to a unit name (so the answer can
 * be answered), and none otherwise. EDESTADDRREQ when the message had no
 * envelope. */
int arbor_reply(const struct arbor_sender *to, const void *buf, size_t len, int flags);

/* The envelope codec, for those who build or read datagrams themselves.
 * Encode: write the envelope naming `name` into `buf`; its length, or -1
 * with errno EINVAL (not a unit name) or EMSGSIZE (`size` too small).
 * Decode: the length of the envelope at the start of `msg`, with the name
 * copied into `ret_name` (ARBOR_NAME_MAX + 1 bytes, or NULL) as a string;
 * 0 when `msg` has no envelope (and `ret_name` is then ""). */
ssize_t arbor_envelope_encode(const char *name, void *buf, size_t size);
size_t arbor_envelope_decode(const void *msg, size_t len, char *ret_name);

#ifdef __cplusplus
}
#endif

#endif
