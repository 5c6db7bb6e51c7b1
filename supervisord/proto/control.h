/*
 * control.h: the control protocol between arbord and arborctl.
 *
 * Transport: a SOCK_STREAM Unix socket, RUNTIME/control.sock, mode 0666;
 * who may do what is decided by the peer's credentials (SO_PEERCRED), not
 * by the file mode: root and arbord's own user may change anything, anyone
 * else may only read (status, logs, wait).
 *
 * Everything on the wire is a frame: an 8-byte header, then `length` bytes
 * of payload. Lengths are checked against the limits below before anything
 * is read or allocated.
 *
 *   header   u32 length | u16 type | u16 reserved (0)      (host byte order:
 *                                                          both ends share a host)
 *   payload  fields, back to back, each:
 *            u16 key length | key | u32 value length | value
 *
 * Keys are short ASCII words; values are bytes (text unless said so).
 * Numbers are decimal text. A key may repeat (unit=, error=).
 *
 * A conversation (one request per connection):
 *   client  HELLO   version=1
 *   server  HELLO   version=1 pid=<arbord pid>
 *   client  REQUEST command=<verb> [unit=NAME]... [options]
 *   server  zero or more UNIT or LOG frames, then RESULT
 *           (for "logs" with follow=1, LOG frames go on until the client
 *           closes the connection; RESULT comes only on error)
 *   server  closes
 * A version the server does not speak gets RESULT ok=0 and a close. A
 * malformed, oversized or too slow client is simply disconnected.
 *
 * REQUEST fields
 *   command    status | start | stop | restart | kill | reload | logs | wait | shutdown
 *   unit       a unit name (repeatable; status with none = every unit)
 *   no_block   1: start/stop/restart return as soon as the request is made
 *   signal     kill: the signal number
 *   lines      logs: how many recent lines (default 10)
 *   follow     logs: 1 = keep sending new lines
 *   timeout_ms wait: give up after this long (exit 1); absent = forever
 *
 * UNIT fields (status: one per unit, depth first, in start order)
 *   name kind(service|supervisor) parent(absent at the root) depth state
 *   pid(absent when none) restarts uptime_ms(absent when not running)
 *   exit_code | exit_signal (the last exit, absent if none) status (STATUS=)
 *   description type restart strategy held(1 when stopped by the operator)
 *   mailbox_queued (absent without a mailbox)
 *
 * LOG fields: unit pid time_ms (milliseconds since the Unix epoch) line
 *
 * RESULT fields
 *   ok      1 or 0
 *   exit    arborctl's exit status: 0 done, 1 failed or refused,
 *           2 usage, 3 no such unit (4, cannot reach arbord, is arborctl's own)
 *   error   a line of explanation (repeatable: reload gives one per problem,
 *           start/stop/restart one per unit that failed)
 *   message a line for the operator (optional, repeatable: start/stop/restart
 *           give one per unit that reached its goal)
 */
#ifndef ARBOR_PROTO_CONTROL_H
#define ARBOR_PROTO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_SOCKET_NAME "control.sock"

#define CONTROL_HEADER_SIZE 8
#define CONTROL_REQUEST_MAX (128 * 1024)     /* a client frame, payload bytes */
#define CONTROL_REPLY_MAX (16 * 1024 * 1024) /* a server frame, payload bytes */

enum control_frame_type {
    FRAME_HELLO = 1,
    FRAME_REQUEST = 2,
    FRAME_UNIT = 3,
    FRAME_LOG = 4,
    FRAME_RESULT = 5,
    FRAME_TYPE_MAX
};

/* arborctl's exit statuses, carried in RESULT exit=. */
enum control_exit {
    CONTROL_EXIT_OK = 0,
    CONTROL_EXIT_FAILED = 1,
    CONTROL_EXIT_USAGE = 2,
    CONTROL_EXIT_NO_UNIT = 3,
    CONTROL_EXIT_UNREACHABLE = 4,
};

/* ---- building frames ---- */

struct proto_buf {
    char *data;
    size_t len, cap;
    size_t frame_start; /* offset of the open frame's header */
    bool failed;        /* ENOMEM happened: the buffer is unusable */
};

void proto_buf_free(struct proto_buf *buf);
/* Open a frame of `type`; fields follow; proto_end() closes it. Several
 * frames may be built one after another in one buffer. */
void proto_begin(struct proto_buf *buf, enum control_frame_type type);
void proto_add(struct proto_buf *buf, const char *key, const void *value, size_t len);
void proto_add_str(struct proto_buf *buf, const char *key, const char *value);
void proto_add_int(struct proto_buf *buf, const char *key, long long value);
void proto_end(struct proto_buf *buf);
/* Drop the first `n` bytes (after writing them out). */
void proto_consume(struct proto_buf *buf, size_t n);

/* ---- reading frames ---- */

/* If `avail` bytes at `data` hold a whole frame, return its total size and
 * fill the type and payload; 0 when more bytes are needed; -1 when the
 * header is invalid or the payload exceeds `max`. */
long proto_frame(const char *data, size_t avail, size_t max, uint16_t *ret_type,
                 const char **ret_payload, uint32_t *ret_length);

struct proto_field {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

/* Iterate the fields of a payload: 1 a field, 0 the end, -1 malformed. */
int proto_next_field(const char **cursor, const char *end, struct proto_field *ret);
bool proto_key_is(const struct proto_field *field, const char *key);
/* The value as a NUL-terminated string in `buf` (truncated to fit). */
const char *proto_value_str(const struct proto_field *field, char *buf, size_t size);
/* The value as a number; false when it is not one. */
bool proto_value_int(const struct proto_field *field, long long *ret);

#endif
