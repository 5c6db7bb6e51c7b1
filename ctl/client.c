/*
 * client.c: connecting to arbord and reading its frames (client.h).
 *
 * The server is trusted to be arbord, not to be bug-free: every length is
 * checked by the codec before it is used, a frame may arrive in any number
 * of pieces, and a server that closes, stalls (during the handshake) or
 * sends garbage ends the conversation with an error instead of a crash.
 * SIGPIPE is never raised here (MSG_NOSIGNAL), whatever main() does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define READ_CHUNK (64 * 1024)

/* ---- connecting --------------------------------------------------------- */

/* Fill `addr` for `path`. A path too long for sun_path is reached through
 * its directory: /proc/self/fd/N/NAME, N an O_PATH descriptor of the
 * directory, which *ret_dirfd then holds (else -1). */
static int socket_address(const char *path, struct sockaddr_un *addr, int *ret_dirfd)
{
    *ret_dirfd = -1;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) < sizeof(addr->sun_path)) {
        memcpy(addr->sun_path, path, strlen(path) + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    if (!slash || strlen(slash + 1) + 32 >= sizeof(addr->sun_path))
        return -ENAMETOOLONG;
    char dir[PATH_MAX];
    size_t dirlen = (size_t)(slash - path);
    if (dirlen == 0 || dirlen >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, dirlen);
    dir[dirlen] = '\0';
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dirfd, slash + 1);
    *ret_dirfd = dirfd;
    return 0;
}

static int set_send_timeout(int fd, int timeout_ms)
{
    struct timeval tv = {0, 0};
    if (timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect(), bounded by the send timeout (a full listen backlog makes a
 * Unix-socket connect wait for room) and finished by poll() if a signal
 * interrupts it. */
static int connect_socket(int fd, const struct sockaddr_un *addr)
{
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
        return 0;
    if (errno == EAGAIN)
        return -ETIMEDOUT;
    if (errno != EINTR && errno != EINPROGRESS)
        return -errno;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
        return -errno;
    return -error;
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static bool field_is_version(const struct proto_field *field)
{
    long long version;
    return proto_value_int(field, &version) && version == CONTROL_PROTOCOL_VERSION;
}

/* The server's HELLO: version=1 and its pid. */
static int read_hello(struct client *client, struct result *ret_refusal)
{
    struct client_frame frame;
    int r = client_next(client, &frame);
    if (r == 0)
        return -ECONNRESET;
    if (r < 0)
        return r;
    if (frame.type == FRAME_RESULT) {
        /* A refusal is ok=0 with a failing exit; anything else answering
         * HELLO is a broken server, never a success. */
        if (client_decode_result(&frame, ret_refusal) < 0)
            return -EPROTO;
        if (ret_refusal->ok || ret_refusal->exit <= 0) {
            result_free(ret_refusal);
            return -EPROTO;
        }
        return -EPROTONOSUPPORT;
    }
    if (frame.type != FRAME_HELLO)
        return -EPROTO;

    const char *cursor = frame.payload, *end = frame.payload + frame.length;
    struct proto_field field;
    bool version_ok = false;
    while ((r = proto_next_field(&cursor, end, &field)) > 0) {
        if (proto_key_is(&field, "version"))
            version_ok = field_is_version(&field);
        else if (proto_key_is(&field, "pid") && !proto_value_int(&field, &client->server_pid))
            return -EPROTO;
    }
    return r < 0 || !version_ok ? -EPROTO : 0;
}

int client_connect(struct client *client, const char *path, int timeout_ms,
                   struct result *ret_refusal)
{
    volatile sig_atomic_t *interrupted = client->interrupted;
    const sigset_t *wait_mask = client->wait_mask;
    memset(client, 0, sizeof(*client));
    client->fd = -1;
    client->interrupted = interrupted;
    client->wait_mask = wait_mask;
    client->timeout_ms = timeout_ms;
    memset(ret_refusal, 0, sizeof(*ret_refusal));

    struct sockaddr_un addr;
    int dirfd;
    int r = socket_address(path, &addr, &dirfd);
    if (r < 0)
        return r;
    client->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client->fd < 0) {
        r = -errno;
        goto fail;
    }
    set_send_timeout(client->fd, timeout_ms);
    r = connect_socket(client->fd, &addr);
    if (r < 0)
        goto fail;

    struct proto_buf hello = {0};
    proto_begin(&hello, FRAME_HELLO);
    proto_add_int(&hello, "version", CONTROL_PROTOCOL_VERSION);
    proto_end(&hello);
    r = hello.failed ? -ENOMEM : send_all(client->fd, hello.data, hello.len);
    proto_buf_free(&hello);
    if (r < 0)
        goto fail;
    r = read_hello(client, ret_refusal);
    if (r < 0)
        goto fail;

    /* From here on a request may take as long as it takes (a stop waits
     * for Shutdown=, logs -f forever): no more timeouts. */
    set_send_timeout(client->fd, 0);
    client->timeout_ms = -1;
    if (dirfd >= 0)
        close(dirfd);
    return 0;

fail:
    if (dirfd >= 0)
        close(dirfd);
    client_close(client);
    return r;
}

int client_send(struct client *client, const struct proto_buf *request)
{
    if (request->failed)
        return -ENOMEM;
    /* Check every frame's size as the server will, so an oversized request
     * is a clear error here instead of a silent disconnect there. */
    for (size_t at = 0; at + CONTROL_HEADER_SIZE <= request->len;) {
        uint32_t length;
        memcpy(&length, request->data + at, sizeof(length));
        if (length > CONTROL_REQUEST_MAX)
            return -EMSGSIZE;
        at += CONTROL_HEADER_SIZE + (size_t)length;
    }
    return send_all(client->fd, request->data, request->len);
}

/* ---- reading ------------------------------------------------------------ */

/* Wait for the socket to be readable, then read into `dst`: the count,
 * 0 at end of file, or -errno. */
static ssize_t wait_and_read(struct client *client, char *dst, size_t room)
{
    for (;;) {
        if (client->interrupted && *client->interrupted)
            return -EINTR;
        struct pollfd pfd = {.fd = client->fd, .events = POLLIN};
        struct timespec ts, *tsp = NULL;
        if (client->timeout_ms >= 0) {
            ts.tv_sec = client->timeout_ms / 1000;
            ts.tv_nsec = (long)(client->timeout_ms % 1000) * 1000000L;
            tsp = &ts;
        }
        int ready = ppoll(&pfd, 1, tsp, client->wait_mask);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (ready == 0)
            return -ETIMEDOUT;
        ssize_t n = read(client->fd, dst, room);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        return n;
    }
}

/* Room for at least `want` bytes in the buffer, counted from its start;
 * the unread bytes are moved to the front first. */
static int reserve(struct client *client, size_t want)
{
    if (client->consumed) {
        memmove(client->buf, client->buf + client->consumed, client->len - client->consumed);
        client->len -= client->consumed;
        client->consumed = 0;
    }
    if (want <= client->cap)
        return 0;
    size_t cap = client->cap ? client->cap : READ_CHUNK;
    while (cap < want)
        cap *= 2;
    char *grown = realloc(client->buf, cap);
    if (!grown)
        return -ENOMEM;
    client->buf = grown;
    client->cap = cap;
    return 0;
}

int client_next(struct client *client, struct client_frame *ret)
{
    for (;;) {
        const char *data = client->buf ? client->buf + client->consumed : "";
        size_t avail = client->len - client->consumed;
        long size =
            proto_frame(data, avail, CONTROL_REPLY_MAX, &ret->type, &ret->payload, &ret->length);
        if (size < 0)
            return -EPROTO;
        if (size > 0) {
            client->consumed += (size_t)size;
            return 1;
        }

        /* Not a whole frame yet. Once its header is in (and valid, or
         * proto_frame() would have said so), make room for all of it. */
        size_t want = avail + READ_CHUNK;
        if (avail >= CONTROL_HEADER_SIZE) {
            uint32_t length;
            memcpy(&length, data, sizeof(length));
            if (CONTROL_HEADER_SIZE + (size_t)length > want)
                want = CONTROL_HEADER_SIZE + (size_t)length;
        }
        if (reserve(client, want) < 0)
            return -ENOMEM;
        ssize_t n = wait_and_read(client, client->buf + client->len, client->cap - client->len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return client->len == 0 ? 0 : -EPROTO;
        client->len += (size_t)n;
    }
}

void client_close(struct client *client)
{
    if (client->fd >= 0)
        close(client->fd);
    client->fd = -1;
    free(client->buf);
    client->buf = NULL;
    client->len = client->cap = client->consumed = 0;
}

/* ---- decoding ----------------------------------------------------------- */

static int set_text(const struct proto_field *field, struct text *text)
{
    char *copy = malloc(field->value_len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, field->value, field->value_len);
    copy[field->value_len] = '\0';
    free(text->data); /* a repeated key: the last one wins */
    text->data = copy;
    text->len = field->value_len;
    return 0;
}

static int set_int(const struct proto_field *field, struct opt_int *value)
{
    if (!proto_value_int(field, &value->value))
        return -EPROTO;
    value->set = true;
    return 0;
}

static void text_free(struct text *text)
{
    free(text->data);
    text->data = NULL;
    text->len = 0;
}

/* One UNIT field into *unit: 0, -EPROTO, -ENOMEM. */
static int unit_field(const struct proto_field *f, struct unit_info *unit)
{
    static const struct {
        const char *key;
        size_t offset;
    } texts[] =
        {
            {"name", offsetof(struct unit_info, name)},
            {"kind", offsetof(struct unit_info, kind)},
            {"parent", offsetof(struct unit_info, parent)},
            {"state", offsetof(struct unit_info, state)},
            {"status", offsetof(struct unit_info, status)},
            {"description", offsetof(struct unit_info, description)},
            {"type", offsetof(struct unit_info, type)},
            {"restart", offsetof(struct unit_info, restart)},
            {"strategy", offsetof(struct unit_info, strategy)},
        },
      ints[] = {
          {"depth", offsetof(struct unit_info, depth)},
          {"pid", offsetof(struct unit_info, pid)},
          {"restarts", offsetof(struct unit_info, restarts)},
          {"uptime_ms", offsetof(struct unit_info, uptime_ms)},
          {"exit_code", offsetof(struct unit_info, exit_code)},
          {"exit_signal", offsetof(struct unit_info, exit_signal)},
          {"mailbox_queued", offsetof(struct unit_info, mailbox_queued)},
          {"mailbox_socket_bytes", offsetof(struct unit_info, mailbox_socket_bytes)},
          {"mailbox_kept", offsetof(struct unit_info, mailbox_kept)},
          {"mailbox_forwarded", offsetof(struct unit_info, mailbox_forwarded)},
          {"mailbox_reclaimed", offsetof(struct unit_info, mailbox_reclaimed)},
          {"mailbox_direct", offsetof(struct unit_info, mailbox_direct)},
          {"mailbox_capacity", offsetof(struct unit_info, mailbox_capacity)},
      };
    char *base = (char *)unit;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (proto_key_is(f, texts[i].key))
            return set_text(f, (struct text *)(base + texts[i].offset));
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (proto_key_is(f, ints[i].key))
            return set_int(f, (struct opt_int *)(base + ints[i].offset));
    if (proto_key_is(f, "held")) {
        struct opt_int held = {0};
        if (set_int(f, &held) < 0)
            return -EPROTO;
        unit->held = held.value != 0;
    }
    return 0;
}

int client_decode_unit(const struct client_frame *frame, struct unit_info *ret)
{
    const char *cursor = frame->payload, *end = frame->payload + frame->length;
    struct proto_field field;
    int r;

    memset(ret, 0, sizeof(*ret));
    while ((r = proto_next_field(&cursor, end, &field)) > 0)
        if ((r = unit_field(&field, ret)) < 0)
            break;
    if (r == 0 && !ret->name.data)
        r = -EPROTO;
    if (r < 0) {
        unit_info_free(ret);
        return r == -ENOMEM ? r : -EPROTO;
    }
    return 0;
}

int client_decode_log(const struct client_frame *frame, struct log_line *ret)
{
    const char *cursor = frame->payload, *end = frame->payload + frame->length;
    struct proto_field f;
    int r;

    memset(ret, 0, sizeof(*ret));
    while ((r = proto_next_field(&cursor, end, &f)) > 0) {
        if (proto_key_is(&f, "unit"))
            r = set_text(&f, &ret->unit);
        else if (proto_key_is(&f, "line"))
            r = set_text(&f, &ret->line);
        else if (proto_key_is(&f, "pid"))
            r = set_int(&f, &ret->pid);
        else if (proto_key_is(&f, "time_ms"))
            r = set_int(&f, &ret->time_ms);
        if (r < 0)
            break;
    }
    if (r == 0 && !ret->line.data)
        r = -EPROTO;
    if (r < 0) {
        log_line_free(ret);
        return r == -ENOMEM ? r : -EPROTO;
    }
    return 0;
}

int result_add(struct text **list, size_t *n, const char *line, size_t len)
{
    struct text *grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    *list = grown;
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, line, len);
    copy[len] = '\0';
    grown[*n] = (struct text){copy, len};
    (*n)++;
    return 0;
}

int client_decode_result(const struct client_frame *frame, struct result *ret)
{
    const char *cursor = frame->payload, *end = frame->payload + frame->length;
    struct proto_field f;
    struct opt_int ok = {0}, exit_status = {0};
    int r;

    memset(ret, 0, sizeof(*ret));
    while ((r = proto_next_field(&cursor, end, &f)) > 0) {
        if (proto_key_is(&f, "ok"))
            r = set_int(&f, &ok);
        else if (proto_key_is(&f, "exit"))
            r = set_int(&f, &exit_status);
        else if (proto_key_is(&f, "error"))
            r = result_add(&ret->errors, &ret->n_errors, f.value, f.value_len);
        else if (proto_key_is(&f, "message"))
            r = result_add(&ret->messages, &ret->n_messages, f.value, f.value_len);
        if (r < 0)
            break;
    }
    if (r == 0 && !ok.set)
        r = -EPROTO;
    if (r < 0) {
        result_free(ret);
        return r == -ENOMEM ? r : -EPROTO;
    }

    /* ok and exit must agree, and exit must be a status a shell can see
     * without confusing it with a signal (126 and above): a server that
     * says otherwise gets the benefit of the doubt only towards failure. */
    ret->ok = ok.value != 0;
    if (exit_status.set && exit_status.value >= 0 && exit_status.value <= 125)
        ret->exit = (int)exit_status.value;
    else
        ret->exit = ret->ok ? 0 : CONTROL_EXIT_FAILED;
    if (!ret->ok && ret->exit == 0)
        ret->exit = CONTROL_EXIT_FAILED;
    if (ret->ok && ret->exit != 0)
        ret->ok = false;
    return 0;
}

void unit_info_free(struct unit_info *unit)
{
    struct text *texts[] = {&unit->name,  &unit->kind,    &unit->parent,
                            &unit->state, &unit->status,  &unit->description,
                            &unit->type,  &unit->restart, &unit->strategy};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        text_free(texts[i]);
}

void log_line_free(struct log_line *line)
{
    text_free(&line->unit);
    text_free(&line->line);
}

void result_free(struct result *result)
{
    for (size_t i = 0; i < result->n_errors; i++)
        text_free(&result->errors[i]);
    free(result->errors);
    result->errors = NULL;
    result->n_errors = 0;
    for (size_t i = 0; i < result->n_messages; i++)
        text_free(&result->messages[i]);
    free(result->messages);
    result->messages = NULL;
    result->n_messages = 0;
}
