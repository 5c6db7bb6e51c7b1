/*
 * arbor.c: libarbor, the mailbox client (arbor.h has the contract and the
 * envelope format; arbor-mailbox(7) the rest).
 *
 * Every call stands alone: a send opens a socket, connects it to the
 * mailbox, sends one datagram and closes it; nothing is cached, so there
 * is no global state to lock and a mailbox that arbord re-creates is found
 * again by the next call. Errors are -1 and errno, as in the socket calls
 * underneath, and the library never prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "arbor.h"

/* The first fd of the sd_listen_fds() protocol. */
#define LISTEN_FDS_START 3

static const unsigned char envelope_magic[4] = {0x00, 'A', 'R', 'B'};
#define ENVELOPE_VERSION 1
#define ENVELOPE_HEADER 6 /* magic, version, name length */

/* ---- names and the envelope ----------------------------------------------- */

static bool name_char(unsigned char c, bool first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '_' || c == '.' || c == '-');
}

/* A unit name of `len` bytes: the rule of arbor.unit(5). */
static bool name_valid(const char *name, size_t len)
{
    if (len == 0 || len > ARBOR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)name[i], i == 0))
            return false;
    return true;
}

static bool name_valid_string(const char *name)
{
    return name && name_valid(name, strnlen(name, ARBOR_NAME_MAX + 1));
}

ssize_t arbor_envelope_encode(const char *name, void *buf, size_t size)
{
    if (!name_valid_string(name)) {
        errno = EINVAL;
        return -1;
    }
    size_t len = strlen(name);
    if (size < ENVELOPE_HEADER + len) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char *out = buf;
    memcpy(out, envelope_magic, sizeof(envelope_magic));
    out[4] = ENVELOPE_VERSION;
    out[5] = (unsigned char)len;
    memcpy(out + ENVELOPE_HEADER, name, len);
    return (ssize_t)(ENVELOPE_HEADER + len);
}

size_t arbor_envelope_decode(const void *msg, size_t len, char *ret_name)
{
    const unsigned char *in = msg;
    if (ret_name)
        ret_name[0] = '\0';
    if (len < ENVELOPE_HEADER || memcmp(in, envelope_magic, sizeof(envelope_magic)) != 0 ||
        in[4] != ENVELOPE_VERSION)
        return 0;
    size_t n = in[5];
    if (len < ENVELOPE_HEADER + n || !name_valid((const char *)in + ENVELOPE_HEADER, n))
        return 0;
    if (ret_name) {
        memcpy(ret_name, in + ENVELOPE_HEADER, n);
        ret_name[n] = '\0';
    }
    return ENVELOPE_HEADER + n;
}

/* ---- finding one's own mailbox ---------------------------------------------- */

/* A decimal number from the environment: 0, or -1 when it is not one. */
static int parse_number(const char *text, unsigned long *ret)
{
    char *end;
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end)
        return -1;
    *ret = v;
    return 0;
}

/* The position of `name` in a colon-separated list, or -1. */
static long list_index(const char *list, const char *name)
{
    size_t len = strlen(name);
    long i = 0;
    for (const char *p = list;; i++) {
        const char *colon = strchr(p, ':');
        size_t item = colon ? (size_t)(colon - p) : strlen(p);
        if (item == len && memcmp(p, name, len) == 0)
            return i;
        if (!colon)
            return -1;
        p = colon + 1;
    }
}

int arbor_mailbox_fd(void)
{
    const char *pid_text = getenv("LISTEN_PID");
    const char *fds_text = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    unsigned long pid, n_fds;

    if (!pid_text || !fds_text || !names) {
        errno = ENOENT;
        return -1;
    }
    if (parse_number(pid_text, &pid) < 0 || parse_number(fds_text, &n_fds) < 0 ||
        n_fds > INT_MAX - LISTEN_FDS_START) {
        errno = EINVAL;
        return -1;
    }
    /* Inherited from a parent that was handed the fds, not meant for us. */
    if (pid != (unsigned long)getpid()) {
        errno = ENOENT;
        return -1;
    }
    long index = list_index(names, "mailbox");
    if (index < 0 || (unsigned long)index >= n_fds) {
        errno = ENOENT;
        return -1;
    }
    int fd = LISTEN_FDS_START + (int)index;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1; /* EBADF */
    if (!S_ISSOCK(st.st_mode)) {
        errno = ENOTSOCK;
        return -1;
    }
    int fd_flags = fcntl(fd, F_GETFD);
    if (fd_flags >= 0 && !(fd_flags & FD_CLOEXEC))
        fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC);
    return fd;
}

/* ---- sending -------------------------------------------------------------- */

/* RUNTIME/mailbox/NAME into `buf`: 0, or -1 with errno ENOENT (no runtime
 * directory can be chosen) or ENAMETOOLONG. */
static int mailbox_path(const char *name, char *buf, size_t size)
{
    const char *runtime = getenv("ARBOR_RUNTIME");
    const char *suffix = "";
    if (!runtime || !*runtime) {
        if (geteuid() == 0) {
            runtime = "/run/arbor";
        } else {
            runtime = getenv("XDG_RUNTIME_DIR");
            suffix = "/arbor";
            if (!runtime || !*runtime) {
                errno = ENOENT;
                return -1;
            }
        }
    }
    int n = snprintf(buf, size, "%s%s/mailbox/%s", runtime, suffix, name);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Fill `addr` for `path`. A path too long for sun_path is reached through
 * its directory, /proc/self/fd/N/NAME, N an O_PATH fd of the directory,
 * which *ret_dirfd then holds (else -1). 0, or -1 and errno. */
static int socket_address(const char *path, struct sockaddr_un *addr, int *ret_dirfd)
{
    *ret_dirfd = -1;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len < sizeof(addr->sun_path)) {
        memcpy(addr->sun_path, path, len + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char dir[PATH_MAX];
    if (dirlen == 0 || dirlen >= sizeof(dir) || strlen(slash + 1) + 32 >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, dirlen);
    dir[dirlen] = '\0';
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dirfd, slash + 1);
    *ret_dirfd = dirfd;
    return 0;
}

/* Connect a new socket to the mailbox: a datagram socket, or a seqpacket
 * one if that is what is there (connect() says EPROTOTYPE); both keep a
 * message one message. The fd, or -1 and errno. */
static int connect_mailbox(const char *path)
{
    static const int types[] = {SOCK_DGRAM, SOCK_SEQPACKET};
    struct sockaddr_un addr;
    int dirfd, fd = -1;
    if (socket_address(path, &addr, &dirfd) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) == 0)
            break;
        int error = errno;
        close(fd);
        fd = -1;
        errno = error;
        if (error != EPROTOTYPE)
            break;
    }
    if (dirfd >= 0) {
        int error = errno;
        close(dirfd);
        errno = error;
    }
    return fd;
}

/* One datagram: the envelope naming `from` (none when NULL), then the
 * message. */
static int send_message(const char *path, const char *from, const void *buf, size_t len, int flags)
{
    unsigned char envelope[ARBOR_ENVELOPE_MAX];
    ssize_t envelope_len = 0;

    if ((flags & ~ARBOR_NONBLOCK) || !path || (!buf && len > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (from && (envelope_len = arbor_envelope_encode(from, envelope, sizeof(envelope))) < 0)
        return -1;
    /* The datagram, envelope and all, is what the 64 KiB limit is about. */
    if (len > ARBOR_MESSAGE_MAX - (size_t)envelope_len) {
        errno = EMSGSIZE;
        return -1;
    }

    int fd = connect_mailbox(path);
    if (fd < 0)
        return -1;
    struct iovec iov[2] = {
        {.iov_base = envelope, .iov_len = (size_t)envelope_len},
        {.iov_base = (void *)buf, .iov_len = len},
    };
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    int send_flags = MSG_NOSIGNAL | (flags & ARBOR_NONBLOCK ? MSG_DONTWAIT : 0);
    ssize_t n = sendmsg(fd, &msg, send_flags);
    int error = errno;
    close(fd);
    if (n < 0) {
        errno = error == EWOULDBLOCK ? EAGAIN : error;
        return -1;
    }
    if ((size_t)n != (size_t)envelope_len + len) {
        errno = EMSGSIZE; /* a datagram is all or nothing; this cannot happen */
        return -1;
    }
    return 0;
}

int arbor_send_to_path(const char *path, const void *buf, size_t len, int flags)
{
    return send_message(path, NULL, buf, len, flags);
}

/* To a mailbox by name, from `from` (NULL: no envelope). */
static int send_by_name(const char *from, const char *name, const void *buf, size_t len, int flags)
{
    char path[PATH_MAX];
    if (!name_valid_string(name)) {
        errno = EINVAL;
        return -1;
    }
    if (mailbox_path(name, path, sizeof(path)) < 0)
        return -1;
    return send_message(path, from, buf, len, flags);
}

int arbor_send(const char *name, const void *buf, size_t len, int flags)
{
    return send_by_name(NULL, name, buf, len, flags);
}

int arbor_send_from(const char *my_name, const char *name, const void *buf, size_t len, int flags)
{
    if (!my_name)
        my_name = getenv("ARBOR_UNIT");
    if (!name_valid_string(my_name)) {
        errno = EINVAL;
        return -1;
    }
    return send_by_name(my_name, name, buf, len, flags);
}

int arbor_reply(const struct arbor_sender *to, const void *buf, size_t len, int flags)
{
    if (!to) {
        errno = EINVAL;
        return -1;
    }
    if (!to->name[0]) {
        errno = EDESTADDRREQ;
        return -1;
    }
    const char *me = getenv("ARBOR_UNIT");
    return send_by_name(name_valid_string(me) ? me : NULL, to->name, buf, len, flags);
}

/* ---- receiving ------------------------------------------------------------ */

ssize_t arbor_recv_flags(int fd, void *buf, size_t len, struct arbor_sender *ret_sender, int flags)
{
    /* The datagram's first bytes land in `head`, where an envelope fits
     * whole, and the rest in `buf`; then the message is moved to the start
     * of `buf`. One recvmsg() takes the datagram atomically, whatever
     * other readers of the fd do, and `buf` of `len` bytes still holds
     * `len` bytes of the message. */
    unsigned char head[ARBOR_ENVELOPE_MAX];
    char name[ARBOR_NAME_MAX + 1];

    if ((flags & ~(ARBOR_NONBLOCK | ARBOR_PEEK)) || (!buf && len > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    struct iovec iov[2] = {
        {.iov_base = head, .iov_len = sizeof(head)},
        {.iov_base = buf, .iov_len = len},
    };
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
    int recv_flags =
        (flags & ARBOR_NONBLOCK ? MSG_DONTWAIT : 0) | (flags & ARBOR_PEEK ? MSG_PEEK : 0);
    ssize_t got = recvmsg(fd, &msg, recv_flags);
    if (got < 0) {
        if (errno == EWOULDBLOCK)
            errno = EAGAIN;
        return -1;
    }

    size_t total = (size_t)got;
    size_t in_head = total < sizeof(head) ? total : sizeof(head);
    size_t skip = arbor_envelope_decode(head, in_head, name); /* <= in_head */
    size_t available = total - skip;
    size_t out = available < len ? available : len;
    /* Message byte j is datagram byte skip + j: in head while that is
     * below sizeof(head), else at buf[skip + j - sizeof(head)], which is
     * never after buf[j], so moving buf's part up first is safe. */
    size_t from_head = in_head - skip < out ? in_head - skip : out;
    if (out > from_head)
        memmove((char *)buf + from_head, buf, out - from_head);
    if (from_head > 0)
        memcpy(buf, head + skip, from_head);

    if (ret_sender) {
        memcpy(ret_sender->name, name, sizeof(ret_sender->name));
        ret_sender->truncated = (msg.msg_flags & MSG_TRUNC) || available > len;
    }
    return (ssize_t)out;
}

ssize_t arbor_recv(int fd, void *buf, size_t len, struct arbor_sender *ret_sender)
{
    return arbor_recv_flags(fd, buf, len, ret_sender, 0);
}
