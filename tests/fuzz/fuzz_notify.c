/*
 * fuzz_notify.c: the receiving side of sd_notify (supervisord/os/notify.c).
 *
 * The input is one datagram. It is sent to a real notify socket made by
 * notify_socket_open(), received with notify_receive() (credentials,
 * MSG_TRUNC, passed fds) and parsed in place with notify_parse(), exactly
 * as service_notify.c does; a message with FDSTORE=1 carries an fd, as a
 * real one would.
 *
 * Checks: a datagram of up to NOTIFY_MESSAGE_MAX bytes arrives whole, with
 * this process's credentials and its fd (close-on-exec), and a longer one
 * is -EMSGSIZE with its fd closed; notify_parse() fails exactly on a NUL
 * byte (one trailing NUL allowed); STATUS= and FDNAME= point into the
 * buffer and hold no line break; FDNAME= is judged by its rule (1 to 255
 * printable ASCII bytes, no ':'); the numbers are within their ranges; at
 * most one of READY, RELOADING and STOPPING is set; parsing a copy gives
 * the same answer (it is pure).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "os/notify.h"

static int notify_fd = -1, send_fd = -1;
static struct sockaddr_un notify_addr = {.sun_family = AF_UNIX};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir("notify");
    if (snprintf(notify_addr.sun_path, sizeof(notify_addr.sun_path), "%s/n", dir) >=
        (int)sizeof(notify_addr.sun_path))
        abort();
    notify_fd = notify_socket_open(notify_addr.sun_path);
    send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0 || send_fd < 0) {
        fprintf(stderr, "fuzz_notify: cannot open the notify socket: %s\n", strerror(-notify_fd));
        abort();
    }
    /* Room for the longest datagram a target input makes. */
    int size = 1 << 20;
    setsockopt(send_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(notify_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return 0;
}

static void check_message(const char *buf, size_t len, const struct notify_message *m)
{
    FUZZ_CHECK(m->ready + m->reloading + m->stopping <= 1);
    if (m->status) {
        FUZZ_CHECK(m->status >= buf && m->status <= buf + len);
        FUZZ_CHECK(m->status + strlen(m->status) <= buf + len);
        FUZZ_CHECK(!strpbrk(m->status, "\r\n"));
    }
    FUZZ_CHECK(m->extend_usec >= -1 && m->watchdog_usec >= -1);
    FUZZ_CHECK(m->main_pid >= 0 && m->main_pid < (1 << 22));
    FUZZ_CHECK(m->error_number >= 0 && m->error_number < 4096);
    if (m->fdname) {
        FUZZ_CHECK(m->fdname >= buf && m->fdname + strlen(m->fdname) <= buf + len);
        FUZZ_CHECK(!strpbrk(m->fdname, "\r\n"));
        /* The name rule: 1 to 255 printable ASCII bytes, no ':'. */
        size_t flen = strlen(m->fdname);
        bool valid = flen >= 1 && flen <= 255 && !strchr(m->fdname, ':');
        for (const char *p = m->fdname; *p && valid; p++)
            valid = *p >= 0x21 && *p <= 0x7e;
        FUZZ_CHECK(notify_fdname_valid(m->fdname) == valid);
    }
}

static void check_parse(const uint8_t *data, size_t size)
{
    /* notify_parse() writes a NUL after the message: size + 1 bytes. */
    char *buf = malloc(size + 1), *copy = malloc(size + 1);
    struct notify_message m, m2;

    FUZZ_CHECK(buf && copy);
    if (size)
        memcpy(buf, data, size);
    memcpy(copy, buf, size);
    int r = notify_parse(buf, size, &m);
    size_t body = size > 0 && data[size - 1] == '\0' ? size - 1 : size;
    FUZZ_CHECK(r == 0 || r == -EINVAL);
    FUZZ_CHECK((r == -EINVAL) == (memchr(data, '\0', body) != NULL));
    if (r == 0) {
        check_message(buf, size, &m);
        FUZZ_CHECK(notify_parse(copy, size, &m2) == 0);
        FUZZ_CHECK(m.fdstore == m2.fdstore && m.fdstore_remove == m2.fdstore_remove);
        FUZZ_CHECK(!m.fdname == !m2.fdname);
        FUZZ_CHECK(m.ready == m2.ready && m.stopping == m2.stopping &&
                   m.reloading == m2.reloading && m.watchdog == m2.watchdog &&
                   m.watchdog_trigger == m2.watchdog_trigger && m.extend_usec == m2.extend_usec &&
                   m.watchdog_usec == m2.watchdog_usec && m.main_pid == m2.main_pid &&
                   m.error_number == m2.error_number);
        FUZZ_CHECK(!m.status == !m2.status);
        if (m.status)
            FUZZ_CHECK(!strcmp(m.status, m2.status) && m.status - buf == m2.status - copy);
    }
    free(buf);
    free(copy);
}

/* Send the datagram (with an fd if it asks to store one), as a service
 * would. Returns whether an fd went with it. */
static bool send_datagram(const uint8_t *data, size_t size)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
    struct msghdr msg = {
        .msg_name = &notify_addr,
        .msg_namelen = sizeof(notify_addr),
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    int fd = -1;

    if (memmem(data, size, "FDSTORE=1", 9)) {
        fd = dup(STDERR_FILENO);
        FUZZ_CHECK(fd >= 0);
        memset(&control, 0, sizeof(control));
        msg.msg_control = &control;
        msg.msg_controllen = sizeof(control);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    FUZZ_CHECK(sendmsg(send_fd, &msg, MSG_NOSIGNAL) == (ssize_t)size);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (notify_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    check_parse(data, size);

    /* Through the socket, as service_notify.c receives it. */
    char buf[NOTIFY_MESSAGE_MAX + 1];
    struct ucred cred = {0};
    int fds[NOTIFY_FDS_MAX], n_fds = -1;
    int free_fd = fuzz_lowest_free_fd();
    bool passed = send_datagram(data, size);
    ssize_t n = notify_receive(notify_fd, buf, sizeof(buf), &cred, fds, &n_fds);
    if (size <= NOTIFY_MESSAGE_MAX) {
        FUZZ_CHECK(n == (ssize_t)size);
        FUZZ_CHECK(cred.pid == getpid() && cred.uid == getuid());
        FUZZ_CHECK(!memcmp(buf, data, size));
        /* The fd sent is handed over, close-on-exec; the caller closes it. */
        FUZZ_CHECK(n_fds == (passed ? 1 : 0));
        for (int i = 0; i < n_fds; i++) {
            FUZZ_CHECK(fcntl(fds[i], F_GETFD) == FD_CLOEXEC);
            close(fds[i]);
        }
        struct notify_message m;
        if (notify_parse(buf, (size_t)n, &m) == 0)
            check_message(buf, (size_t)n, &m);
    } else {
        /* Dropped: any fd that came with it is closed, none handed over. */
        FUZZ_CHECK(n == -EMSGSIZE && n_fds == 0);
    }
    FUZZ_CHECK(fuzz_lowest_free_fd() == free_fd);
    FUZZ_CHECK(notify_receive(notify_fd, buf, sizeof(buf), &cred, fds, &n_fds) == -EAGAIN);
    return 0;
}
