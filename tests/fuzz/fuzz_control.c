/*
 * fuzz_control.c: the control protocol decoder (supervisord/proto/control.c)
 * and arborctl's reading of server frames (ctl/client.c).
 *
 * The input is a byte stream as it would arrive on the control socket:
 * frames back to back. It is decoded three ways:
 *
 *  - as arbord reads a client: proto_frame() with CONTROL_REQUEST_MAX, then
 *    proto_next_field() over each payload, with proto_key_is(),
 *    proto_value_str() and proto_value_int() on every field;
 *  - as arborctl reads arbord: a thread plays the server on a real socket,
 *    reads arborctl's HELLO and sends the input; client_connect() takes
 *    the first frame as the server's HELLO (or a refusal), client_next()
 *    the others, and client_decode_unit(), _log() or _result() decodes
 *    each by its type; then again with client_next() alone, from a socket
 *    that splits the stream into pieces of 1 to 700 bytes;
 *  - and every well-formed frame is built again with proto_begin(),
 *    proto_add() and proto_end(), which must give back the same bytes.
 *
 * Checks: every frame and field lies inside the input and the walk ends
 * where it should; arborctl's HELLO is the one control.h specifies;
 * arborctl finds exactly the frames proto_frame() does and ends as it
 * should (0 at a clean end, -EPROTO otherwise); a number read by
 * proto_value_int() prints back as the same number; a decoded RESULT obeys
 * its rules (ok exactly when exit is 0, exit within 0..125); decoded texts
 * are NUL-terminated copies of their fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "fuzz.h"
#include "proto/control.h"

/* Inputs up to this size also go through a socket. */
#define SOCKET_INPUT_MAX (1024 * 1024)
#define FRAMES_MAX 4096

/* The socket a thread listens on as arbord, for client_connect(). */
static struct sockaddr_un server_addr = {.sun_family = AF_UNIX};
static int server_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir("control");
    if (snprintf(server_addr.sun_path, sizeof(server_addr.sun_path), "%s/control.sock", dir) >=
        (int)sizeof(server_addr.sun_path))
        abort();
    server_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) ||
        listen(server_fd, 16) < 0) {
        fprintf(stderr, "fuzz_control: cannot listen on %s\n", server_addr.sun_path);
        abort();
    }
    return 0;
}

struct frame_ref {
    uint16_t type;
    size_t offset; /* of the payload, in the input */
    uint32_t length;
};

static void check_text(const struct text *t, const struct proto_field *f)
{
    FUZZ_CHECK(t->data && t->len == f->value_len && t->data[t->len] == '\0');
    FUZZ_CHECK(!memcmp(t->data, f->value, f->value_len));
}

/* Walk the fields of one payload; rebuild the frame if they are well formed. */
static void check_payload(uint16_t type, const char *payload, uint32_t length, const char *frame)
{
    const char *cursor = payload, *end = payload + length;
    struct proto_field f;
    struct proto_buf rebuilt = {0};
    bool nul_in_key = false;
    int r;

    proto_begin(&rebuilt, type);
    while ((r = proto_next_field(&cursor, end, &f)) == 1) {
        FUZZ_CHECK(f.key >= payload && f.key + f.key_len <= end);
        FUZZ_CHECK(f.value >= f.key + f.key_len && f.value + f.value_len <= end);
        FUZZ_CHECK(cursor == f.value + f.value_len);

        char small[8], big[256];
        const char *s = proto_value_str(&f, small, sizeof(small));
        FUZZ_CHECK(s == small && strlen(s) <= sizeof(small) - 1);
        proto_value_str(&f, big, sizeof(big));
        FUZZ_CHECK(!memcmp(big, f.value, f.value_len < sizeof(big) - 1 ? f.value_len : 255));

        long long v;
        if (proto_value_int(&f, &v)) {
            struct proto_buf num = {0};
            proto_begin(&num, FRAME_RESULT);
            proto_add_int(&num, "n", v);
            proto_end(&num);
            const char *c = num.data + CONTROL_HEADER_SIZE;
            struct proto_field nf;
            long long back;
            FUZZ_CHECK(proto_next_field(&c, num.data + num.len, &nf) == 1);
            FUZZ_CHECK(proto_key_is(&nf, "n") && proto_value_int(&nf, &back) && back == v);
            proto_buf_free(&num);
        }
        FUZZ_CHECK(proto_key_is(&f, "version") == (f.key_len == 7 && !memcmp(f.key, "version", 7)));

        /* proto_add() takes a C string key: a key holding a NUL cannot be rebuilt. */
        if (memchr(f.key, '\0', f.key_len)) {
            nul_in_key = true;
        } else {
            char key[65536];
            memcpy(key, f.key, f.key_len);
            key[f.key_len] = '\0';
            proto_add(&rebuilt, key, f.value, f.value_len);
        }
    }
    FUZZ_CHECK(r == 0 || r == -1);
    FUZZ_CHECK(cursor >= payload && cursor <= end);
    if (r == 0)
        FUZZ_CHECK(cursor == end);
    proto_end(&rebuilt);
    if (r == 0 && !nul_in_key) {
        FUZZ_CHECK(!rebuilt.failed);
        FUZZ_CHECK(rebuilt.len == CONTROL_HEADER_SIZE + length);
        FUZZ_CHECK(!memcmp(rebuilt.data, frame, rebuilt.len));
    }
    proto_buf_free(&rebuilt);
}

/* What arborctl makes of one frame. */
static void check_client_decode(const struct client_frame *frame)
{
    const char *cursor = frame->payload, *end = frame->payload + frame->length;
    struct proto_field f;

    if (frame->type == FRAME_RESULT) {
        struct result res;
        if (client_decode_result(frame, &res) == 0) {
            FUZZ_CHECK(res.exit >= 0 && res.exit <= 125);
            FUZZ_CHECK(res.ok == (res.exit == 0));
            size_t errors = 0, messages = 0;
            while (proto_next_field(&cursor, end, &f) == 1) {
                if (proto_key_is(&f, "error"))
                    check_text(&res.errors[errors++], &f);
                else if (proto_key_is(&f, "message"))
                    check_text(&res.messages[messages++], &f);
            }
            FUZZ_CHECK(errors == res.n_errors && messages == res.n_messages);
            result_free(&res);
            FUZZ_CHECK(!res.errors && !res.messages);
        }
    } else if (frame->type == FRAME_UNIT) {
        struct unit_info unit;
        if (client_decode_unit(frame, &unit) == 0) {
            struct proto_field last_name = {0};
            while (proto_next_field(&cursor, end, &f) == 1)
                if (proto_key_is(&f, "name"))
                    last_name = f; /* a repeated key: the last one wins */
            check_text(&unit.name, &last_name);
            unit_info_free(&unit);
        }
    } else if (frame->type == FRAME_LOG) {
        struct log_line line;
        if (client_decode_log(frame, &line) == 0) {
            FUZZ_CHECK(line.line.data && line.line.data[line.line.len] == '\0');
            log_line_free(&line);
        }
    }
}

/* The server's end, in a thread of its own, so that any amount fits. It
 * sends the input in pieces of 1 to 700 bytes, which split headers and
 * fields anywhere: over SOCK_SEQPACKET each read() returns one piece (a
 * stream socket may do the same, this one always does). */
struct server {
    int fd; /* connected, or -1: accept() one from server_fd */
    const uint8_t *data;
    size_t size;
    bool hello_ok; /* the client's HELLO was version=1 */
};

static void *server_main(void *arg)
{
    struct server *sv = arg;
    if (sv->fd < 0) {
        sv->fd = accept4(server_fd, NULL, NULL, SOCK_CLOEXEC);
        if (sv->fd < 0)
            return NULL;
        /* control.h: u32 length 14, u16 HELLO, u16 0, then version=1. */
        static const char hello[] = "\x0e\0\0\0\x01\0\0\0\x07\0version\x01\0\0\0"
                                    "1";
        char got[sizeof(hello) - 1];
        size_t have = 0;
        while (have < sizeof(got)) {
            ssize_t n = read(sv->fd, got + have, sizeof(got) - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        sv->hello_ok = have == sizeof(got) && !memcmp(got, hello, sizeof(got));
    }
    for (size_t off = 0, k = 0; off < sv->size; k++) {
        size_t chunk = 1 + (k * 2654435761u + sv->size) % 700;
        if (chunk > sv->size - off)
            chunk = sv->size - off;
        ssize_t n = send(sv->fd, sv->data + off, chunk, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the client gave up: EPIPE */
        off += (size_t)n;
    }
    close(sv->fd);
    return NULL;
}

/* client_connect(): the first frame must be the server's HELLO. Returns
 * how many frames it took (0 or 1), or -1 when the connection failed. */
static int check_connect(struct client *client, const uint8_t *data, size_t size,
                         const struct frame_ref *frames, size_t n_frames)
{
    struct result refusal;
    int r = client_connect(client, server_addr.sun_path, 60000, &refusal);

    if (r == 0) {
        /* A HELLO, whose version=1 and pid= (if any) arborctl accepted. */
        FUZZ_CHECK(n_frames > 0 && frames[0].type == FRAME_HELLO);
        const char *cursor = (const char *)data + frames[0].offset;
        const char *end = cursor + frames[0].length;
        struct proto_field f;
        long long pid = 0;
        while (proto_next_field(&cursor, end, &f) == 1)
            if (proto_key_is(&f, "pid"))
                FUZZ_CHECK(proto_value_int(&f, &pid));
        FUZZ_CHECK(client->server_pid == pid);
        return 1;
    }
    if (r == -EPROTONOSUPPORT) {
        /* A refusal: a RESULT, decoded, that the caller must free. */
        FUZZ_CHECK(n_frames > 0 && frames[0].type == FRAME_RESULT);
        /* control.h: a refusal is ok=0 (arborctl once took ok=1 for one
         * and exited 0 having sent nothing: regressions/control/). */
        FUZZ_CHECK(!refusal.ok && refusal.exit > 0);
        result_free(&refusal);
    } else if (r == -ECONNRESET) {
        FUZZ_CHECK(size == 0); /* closed before a single byte */
    } else {
        FUZZ_CHECK(r == -EPROTO);
        FUZZ_CHECK(size > 0);
    }
    return -1;
}

/* Read the bytes as arborctl would: through client_connect() and a stream
 * socket, or (`pieces`) with client_next() alone from a SOCK_SEQPACKET
 * socketpair that hands them over in small pieces, starting from the state
 * the first read leaves (a 64 KiB buffer). `expect` is how client_next()
 * must end: 0 (a clean end), -EPROTO, or 1 for either. */
static void check_client(const uint8_t *data, size_t size, const struct frame_ref *frames,
                         size_t n_frames, int expect, bool pieces)
{
    struct server sv = {.fd = -1, .data = data, .size = size};
    struct client client = {.fd = -1};
    pthread_t thread;
    size_t i = 0;

    if (pieces) {
        int pair[2];
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
        sv.fd = pair[1];
        client.fd = pair[0];
        client.timeout_ms = 60000;
        client.cap = 64 * 1024;
        client.buf = malloc(client.cap);
        FUZZ_CHECK(client.buf);
    }
    FUZZ_CHECK(pthread_create(&thread, NULL, server_main, &sv) == 0);
    if (!pieces) {
        int taken = check_connect(&client, data, size, frames, n_frames);
        if (taken < 0) {
            FUZZ_CHECK(pthread_join(thread, NULL) == 0);
            FUZZ_CHECK(sv.hello_ok);
            return;
        }
        i = (size_t)taken;
    }

    struct client_frame frame;
    int r;
    while ((r = client_next(&client, &frame)) == 1) {
        /* arborctl takes frames up to CONTROL_REPLY_MAX, arbord only up
         * to CONTROL_REQUEST_MAX: past the server's frames it may go on. */
        if (i < n_frames) {
            FUZZ_CHECK(frame.type == frames[i].type && frame.length == frames[i].length);
            FUZZ_CHECK(!memcmp(frame.payload, data + frames[i].offset, frame.length));
        }
        check_client_decode(&frame);
        i++;
    }
    FUZZ_CHECK(i >= n_frames);
    FUZZ_CHECK(r == 0 || r == -EPROTO);
    if (expect != 1)
        FUZZ_CHECK(r == expect);
    client_close(&client);
    FUZZ_CHECK(pthread_join(thread, NULL) == 0);
    if (!pieces)
        FUZZ_CHECK(sv.hello_ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact copy: the codec takes char, and ASan guards the end. */
    char *bytes = malloc(size ? size : 1);
    static struct frame_ref frames[FRAMES_MAX];
    size_t n_frames = 0, pos = 0;
    long r = 0;

    if (server_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    FUZZ_CHECK(bytes);
    if (size)
        memcpy(bytes, data, size);
    while (pos < size && n_frames < FRAMES_MAX) {
        uint16_t type = 0;
        const char *payload = NULL;
        uint32_t length = 0;
        r = proto_frame(bytes + pos, size - pos, CONTROL_REQUEST_MAX, &type, &payload, &length);
        if (r <= 0)
            break;
        FUZZ_CHECK((size_t)r == CONTROL_HEADER_SIZE + (size_t)length && (size_t)r <= size - pos);
        FUZZ_CHECK(type > 0 && type < FRAME_TYPE_MAX && length <= CONTROL_REQUEST_MAX);
        FUZZ_CHECK(payload == bytes + pos + CONTROL_HEADER_SIZE);
        check_payload(type, payload, length, bytes + pos);
        frames[n_frames++] = (struct frame_ref){type, pos + CONTROL_HEADER_SIZE, length};
        pos += (size_t)r;
    }
    /* A short tail is "need more", never an error, under 8 bytes. */
    if (pos < size && size - pos < CONTROL_HEADER_SIZE)
        FUZZ_CHECK(r == 0);

    if (size <= SOCKET_INPUT_MAX && n_frames < FRAMES_MAX) {
        /* The same frames end the same way for arborctl, unless arbord
         * stopped at a frame too long for it but not for arborctl. */
        int expect = 1;
        if (pos == size)
            expect = 0;
        else if (r == 0) /* the stream ends inside a frame */
            expect = -EPROTO;
        else if (size - pos >= CONTROL_HEADER_SIZE) {
            uint32_t length;
            memcpy(&length, bytes + pos, sizeof(length));
            if (length <= CONTROL_REQUEST_MAX) /* a bad type or reserved field */
                expect = -EPROTO;
        }
        check_client(data, size, frames, n_frames, expect, false);
        check_client(data, size, frames, n_frames, expect, true);
    }
    free(bytes);
    return 0;
}
