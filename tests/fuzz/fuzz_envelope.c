/*
 * fuzz_envelope.c: libarbor's mailbox framing (lib/arbor.c): the envelope
 * codec, and a message sent and received through a real mailbox socket.
 *
 * The input: byte 0 holds flags (bit 0: send with an envelope, through
 * arbor_send_from(); bit 1: receive with ARBOR_PEEK first), bytes 1-2 the
 * size of the receive buffer (little-endian, 0 to 65535), byte 3 the
 * length N of the sender's name, and with bit 0 the next N bytes are that
 * name; the rest is the message. Without bit 0 the message goes out with
 * arbor_send() as it is, so it may itself begin with an envelope, or
 * something close to one, as a raw sender's might.
 *
 * Checks: decode finds an envelope only where its rules say (magic,
 * version, a length within the datagram, a valid unit name), and encoding
 * the name it found gives back the same bytes; encode accepts exactly the
 * names unit files accept (the same rule: [A-Za-z0-9][A-Za-z0-9_.-]*, at
 * most 64 bytes), and decode reads back what encode wrote; a message
 * arrives with its envelope taken off, cut to the buffer, `truncated` set
 * exactly when it was cut, the sender's name as sent; a peek leaves the
 * message for the next read, which sees the same; arbor_reply() answers
 * the mailbox the envelope named (this one, "box", or no such mailbox),
 * with an envelope naming $ARBOR_UNIT, and fails without an envelope.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "arbor.h"
#include "fuzz.h"

#define MAILBOX "box"

static int mailbox_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *runtime = fuzz_scratch_dir("envelope");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char dir[4096];

    /* Where arbor_send() looks: $ARBOR_RUNTIME/mailbox/NAME; and who
     * arbor_reply() says is answering. */
    setenv("ARBOR_RUNTIME", runtime, 1);
    setenv("ARBOR_UNIT", MAILBOX, 1);
    snprintf(dir, sizeof(dir), "%s/mailbox", runtime);
    if (mkdir(dir, 0700) < 0 || snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/" MAILBOX,
                                         dir) >= (int)sizeof(addr.sun_path))
        abort();
    mailbox_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (mailbox_fd < 0 || bind(mailbox_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        fprintf(stderr, "fuzz_envelope: cannot bind %s: %s\n", addr.sun_path, strerror(errno));
        abort();
    }
    int size = 1 << 20;
    setsockopt(mailbox_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return 0;
}

static bool name_char(unsigned char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (!first && (c == '_' || c == '.' || c == '-'));
}

/* The envelope rule of arbor.h, as the spec writes it. */
static size_t expected_envelope(const uint8_t *msg, size_t len)
{
    if (len < 6 || msg[0] != 0 || msg[1] != 'A' || msg[2] != 'R' || msg[3] != 'B' || msg[4] != 1)
        return 0;
    size_t n = msg[5];
    if (n < 1 || n > ARBOR_NAME_MAX || len < 6 + n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char(msg[6 + i], i == 0))
            return 0;
    return 6 + n;
}

static void check_decode(const uint8_t *msg, size_t len)
{
    char name[ARBOR_NAME_MAX + 1];
    uint8_t again[ARBOR_ENVELOPE_MAX];
    /* An exact copy: ASan sees a read past the datagram. */
    uint8_t *copy = calloc(len ? len : 1, 1);

    FUZZ_CHECK(copy);
    if (len)
        memcpy(copy, msg, len);
    memset(name, 'x', sizeof(name));
    size_t skip = arbor_envelope_decode(copy, len, name);
    FUZZ_CHECK(skip == expected_envelope(msg, len));
    FUZZ_CHECK(arbor_envelope_decode(copy, len, NULL) == skip);
    if (skip == 0) {
        FUZZ_CHECK(name[0] == '\0');
    } else {
        FUZZ_CHECK(strlen(name) == skip - 6 && !memcmp(name, msg + 6, skip - 6));
        FUZZ_CHECK(arbor_envelope_encode(name, again, sizeof(again)) == (ssize_t)skip);
        FUZZ_CHECK(!memcmp(again, msg, skip));
        /* One byte short of room is EMSGSIZE, not an overflow. */
        errno = 0;
        FUZZ_CHECK(arbor_envelope_encode(name, again, skip - 1) == -1 && errno == EMSGSIZE);
    }
    free(copy);
}

static void check_encode(const char *name)
{
    uint8_t buf[ARBOR_ENVELOPE_MAX + 16];
    char back[ARBOR_NAME_MAX + 1];
    size_t len = strlen(name);
    bool valid = len >= 1 && len <= ARBOR_NAME_MAX;

    for (size_t i = 0; i < len && valid; i++)
        valid = name_char((unsigned char)name[i], i == 0);
    errno = 0;
    ssize_t r = arbor_envelope_encode(name, buf, sizeof(buf));
    if (!valid) {
        FUZZ_CHECK(r == -1 && errno == EINVAL);
        return;
    }
    FUZZ_CHECK(r == (ssize_t)(6 + len));
    FUZZ_CHECK(arbor_envelope_decode(buf, (size_t)r, back) == (size_t)r && !strcmp(back, name));
    /* Cut anywhere inside, it is no envelope at all. */
    for (size_t cut = 0; cut < (size_t)r; cut++)
        FUZZ_CHECK(arbor_envelope_decode(buf, cut, back) == 0 && back[0] == '\0');
}

/* One arbor_recv_flags(), checked against the datagram that was sent. */
/* Answer a received message with arbor_reply(), as the receiver would: to
 * the mailbox its envelope names, with an envelope naming $ARBOR_UNIT
 * ("box", this mailbox). Only "box" exists here, so that is the one reply
 * that arrives; it holds the answer and names "box". */
static void check_reply(const struct arbor_sender *sender, const uint8_t *msg, size_t len)
{
    uint8_t buf[256];
    struct arbor_sender from;

    if (len > sizeof(buf))
        len = sizeof(buf);
    errno = 0;
    int r = arbor_reply(sender, msg, len, ARBOR_NONBLOCK);
    if (!sender->name[0]) {
        FUZZ_CHECK(r == -1 && errno == EDESTADDRREQ);
        return;
    }
    if (strcmp(sender->name, MAILBOX) != 0) {
        FUZZ_CHECK(r == -1 && errno == ENOENT);
        return;
    }
    FUZZ_CHECK(r == 0);
    ssize_t got = arbor_recv_flags(mailbox_fd, buf, sizeof(buf), &from, ARBOR_NONBLOCK);
    FUZZ_CHECK(got == (ssize_t)len && !memcmp(buf, msg, len));
    FUZZ_CHECK(!strcmp(from.name, MAILBOX) && !from.truncated);
}

/* One arbor_recv_flags(), checked against the datagram that was sent. */
static void check_recv(const uint8_t *sent, size_t sent_len, size_t buf_len, int flags)
{
    uint8_t *buf = malloc(buf_len ? buf_len : 1);
    struct arbor_sender sender;
    char name[ARBOR_NAME_MAX + 1];

    FUZZ_CHECK(buf);
    memset(&sender, 'x', sizeof(sender));
    size_t skip = arbor_envelope_decode(sent, sent_len, name);
    ssize_t got = arbor_recv_flags(mailbox_fd, buf_len ? buf : NULL, buf_len, &sender,
                                   ARBOR_NONBLOCK | flags);
    size_t message = sent_len - skip;
    size_t want = message < buf_len ? message : buf_len;
    FUZZ_CHECK(got == (ssize_t)want);
    FUZZ_CHECK(!memcmp(buf, sent + skip, want));
    FUZZ_CHECK(!strcmp(sender.name, name));
    FUZZ_CHECK(sender.truncated == (message > buf_len));
    if (!(flags & ARBOR_PEEK))
        check_reply(&sender, buf, want);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (mailbox_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    check_decode(data, size);
    char *as_name = fuzz_strndup(data, size);
    check_encode(as_name);
    free(as_name);
    if (size < 4)
        return 0;

    bool with_envelope = data[0] & 1, peek = data[0] & 2;
    size_t buf_len = (size_t)data[1] | (size_t)data[2] << 8;
    size_t name_len = data[3];
    const uint8_t *rest = data + 4;
    size_t rest_len = size - 4;
    char *from = NULL;
    if (with_envelope) {
        if (name_len > rest_len)
            name_len = rest_len;
        from = fuzz_strndup(rest, name_len);
        rest += name_len;
        rest_len -= name_len;
    }
    check_decode(rest, rest_len);

    /* The datagram as it should arrive: the envelope, then the message. */
    uint8_t *sent = malloc(ARBOR_ENVELOPE_MAX + rest_len);
    size_t sent_len = 0;
    FUZZ_CHECK(sent);
    int r;
    errno = 0;
    if (with_envelope) {
        ssize_t env = arbor_envelope_encode(from, sent, ARBOR_ENVELOPE_MAX);
        r = arbor_send_from(from, MAILBOX, rest, rest_len, ARBOR_NONBLOCK);
        if (env < 0) {
            FUZZ_CHECK(r == -1 && errno == EINVAL);
            goto out;
        }
        sent_len = (size_t)env;
    } else {
        r = arbor_send(MAILBOX, rest, rest_len, ARBOR_NONBLOCK);
    }
    if (sent_len + rest_len > ARBOR_MESSAGE_MAX) {
        FUZZ_CHECK(r == -1 && errno == EMSGSIZE);
        goto out;
    }
    FUZZ_CHECK(r == 0);
    memcpy(sent + sent_len, rest, rest_len);
    sent_len += rest_len;

    if (peek)
        check_recv(sent, sent_len, buf_len, ARBOR_PEEK);
    check_recv(sent, sent_len, buf_len, 0);
    FUZZ_CHECK(arbor_recv_flags(mailbox_fd, NULL, 0, NULL, ARBOR_NONBLOCK) == -1 &&
               errno == EAGAIN);
out:
    free(sent);
    free(from);
    return 0;
}
