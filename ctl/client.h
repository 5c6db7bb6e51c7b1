/*
 * client.h: arborctl's end of the control protocol (proto/control.h).
 *
 * One connection carries one request: client_connect() opens
 * RUNTIME/control.sock and exchanges HELLOs, client_send() sends the
 * REQUEST, client_next() hands out the server's frames one at a time, and
 * the client_decode_*() functions turn a frame into a plain struct.
 *
 * Errors are negative errno values. Nothing here prints: main.c decides
 * what an error means to the operator.
 */
#ifndef ARBOR_CTL_CLIENT_H
#define ARBOR_CTL_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/control.h"

/* A byte string from the server, copied and NUL-terminated for
 * convenience; it may hold NULs itself, so `len` is the truth. NULL data:
 * the field was absent. */
struct text {
    char *data;
    size_t len;
};

/* A number field that may be absent. */
struct opt_int {
    bool set;
    long long value;
};

/* A UNIT frame (status). The mailbox_* fields are set for a service with
 * a mailbox (mailbox_queued always; the others from arbords that send
 * them): see arbor-mailbox(7) for what each counts. */
struct unit_info {
    struct text name, kind, parent, state, status, description, type, restart, strategy;
    struct opt_int depth, pid, restarts, uptime_ms, exit_code, exit_signal;
    struct opt_int mailbox_queued, mailbox_socket_bytes, mailbox_kept, mailbox_forwarded,
        mailbox_reclaimed, mailbox_direct, mailbox_capacity;
    bool held;
};

/* A LOG frame. */
struct log_line {
    struct text unit, line;
    struct opt_int pid, time_ms;
};

/* A RESULT frame. arbord may repeat message= as well as error= (one
 * line per unit of a start or stop), so both are lists. */
struct result {
    bool ok;
    int exit; /* always 0..125; 0 exactly when ok */
    struct text *messages;
    size_t n_messages;
    struct text *errors;
    size_t n_errors;
};

/* Add a line to a result's errors or messages: 0 or -ENOMEM. */
int result_add(struct text **list, size_t *n, const char *line, size_t len);

struct client_frame {
    uint16_t type;
    const char *payload; /* valid until the next client_next() */
    uint32_t length;
};

struct client {
    int fd;
    char *buf;
    size_t len, cap;
    size_t consumed;      /* the frame last handed out, dropped by the next call */
    long long server_pid; /* from the server's HELLO */
    int timeout_ms;       /* per wait for the server; -1 = forever */
    /* Waiting is interruptible: when `interrupted` is set and becomes
     * non-zero, client_next() returns -EINTR. While waiting, the signal
     * mask is `wait_mask` (ppoll), so a signal that is blocked otherwise
     * cannot slip in between the check and the wait. */
    volatile sig_atomic_t *interrupted;
    const sigset_t *wait_mask;
};

/* Connect to the socket at `path` and exchange HELLOs (client->interrupted
 * and client->wait_mask, if set before, are kept and apply already), waiting at most
 * `timeout_ms` for the server's. 0 on success. -EPROTONOSUPPORT when the
 * server answered with a RESULT instead (a version it does not speak),
 * which is then in *ret_refusal (free with result_free()); -EPROTO for a
 * malformed answer; -ETIMEDOUT; -ECONNRESET when it closed first; another
 * -errno from socket()/connect(). On failure the client is closed. */
int client_connect(struct client *client, const char *path, int timeout_ms,
                   struct result *ret_refusal);

/* Send the frames in `request` whole: 0, -EMSGSIZE when a frame is over
 * CONTROL_REQUEST_MAX, -ENOMEM when building it failed, or -errno. */
int client_send(struct client *client, const struct proto_buf *request);

/* The next frame from the server: 1 and *ret filled; 0 when the server
 * closed the connection between frames; -EPROTO for an invalid frame or a
 * close in the middle of one; -EINTR when interrupted (see above);
 * -ETIMEDOUT; -ENOMEM; or the -errno of a failed read. */
int client_next(struct client *client, struct client_frame *ret);

void client_close(struct client *client);

/* Decode a frame's fields: 0, -EPROTO (malformed, a number that is not
 * one, a UNIT without a name) or -ENOMEM. Unknown keys are ignored, so a
 * newer arbord may add fields. On failure nothing needs freeing. */
int client_decode_unit(const struct client_frame *frame, struct unit_info *ret);
int client_decode_log(const struct client_frame *frame, struct log_line *ret);
int client_decode_result(const struct client_frame *frame, struct result *ret);

void unit_info_free(struct unit_info *unit);
void log_line_free(struct log_line *line);
void result_free(struct result *result);

#endif
