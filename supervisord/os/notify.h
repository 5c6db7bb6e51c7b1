/*
 * notify.h: the receiving side of the sd_notify protocol.
 *
 * Each service gets its own datagram socket, RUNTIME/notify/NAME, so the
 * socket a message came in on names the service; the sender's credentials
 * (SO_PASSCRED, set before the socket is bound, so before anyone can send)
 * then decide whether the sender may speak for it. The message text itself
 * is never trusted to say who sent it.
 */
#ifndef ARBOR_NOTIFY_H
#define ARBOR_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* systemd's NOTIFY_BUFFER_MAX: longer datagrams are dropped. */
#define NOTIFY_MESSAGE_MAX 4096

struct notify_message {
    bool ready;
    bool stopping;
    bool reloading;
    bool watchdog;           /* WATCHDOG=1 */
    bool watchdog_trigger;   /* WATCHDOG=trigger */
    const char *status;      /* STATUS= text (points into the buffer), or NULL */
    long long extend_usec;   /* EXTEND_TIMEOUT_USEC=, -1 when absent */
    long long watchdog_usec; /* WATCHDOG_USEC=, -1 when absent */
    pid_t main_pid;          /* MAINPID=, 0 when absent */
    int error_number;        /* ERRNO=, 0 when absent */
    bool fdstore;            /* FDSTORE=1: keep the fds sent with this message */
    bool fdstore_remove;     /* FDSTOREREMOVE=1: drop the stored fds named FDNAME= */
    const char *fdname;      /* FDNAME=, or NULL */
};

/* The most fds one message may carry (systemd's SCM_MAX_FD, less one). */
#define NOTIFY_FDS_MAX 253

/* Bind a notify socket at `path` (replacing a stale one), mode 0666.
 * Returns the fd (non-blocking, close-on-exec) or -errno. */
int notify_socket_open(const char *path);

/* Receive one datagram. Returns its length and the sender's credentials,
 * -EAGAIN when none is waiting, or another -errno for a datagram that was
 * dropped (too long, no credentials). The fds sent with an accepted
 * datagram are in `fds` (room for NOTIFY_FDS_MAX, close-on-exec), and are
 * the caller's to keep or close; those of a dropped one are closed. */
ssize_t notify_receive(int fd, char *buf, size_t size, struct ucred *ret_cred, int *fds,
                       int *ret_n_fds);

/* FDNAME= as systemd accepts it: 1 to 255 printable ASCII bytes, no ':'
 * (the separator of LISTEN_FDNAMES). */
bool notify_fdname_valid(const char *name);

/* Parse a datagram of `len` bytes in place. Returns 0, or -EINVAL when it
 * holds a NUL byte (the protocol forbids them). Unknown fields are
 * ignored; for value fields the first occurrence wins, as in systemd. */
int notify_parse(char *buf, size_t len, struct notify_message *ret);

#endif
