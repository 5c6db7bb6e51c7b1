/*
 * notify.c: see notify.h. The read path follows systemd's own receiver
 * (manager_dispatch_notify_fd): MSG_TRUNC tells us a datagram was too long,
 * and a datagram without credentials is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "os/notify.h"

int notify_socket_open(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Before bind: credentials are attached at send time only if the
     * receiver already asked for them. */
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
        goto fail;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        goto fail;
    if (chmod(path, 0666) < 0)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    return -saved;
}

/* Collect the fds of SCM_RIGHTS messages; past `max`, close them. */
static int take_passed_fds(struct msghdr *msg, int *fds, int max)
{
    int n_fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *passed = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, passed + i, sizeof(fd)); /* CMSG_DATA may be unaligned */
            if (n_fds < max)
                fds[n_fds++] = fd;
            else
                close(fd);
        }
    }
    return n_fds;
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

ssize_t notify_receive(int fd, char *buf, size_t size, struct ucred *ret_cred, int *fds,
                       int *ret_n_fds)
{
    /* Room for the credentials and the most fds the kernel passes. */
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * NOTIFY_FDS_MAX)];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = &control,
        .msg_controllen = sizeof(control),
    };
    ssize_t n;
    *ret_n_fds = 0;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int n_fds = take_passed_fds(&msg, fds, NOTIFY_FDS_MAX);
    if ((size_t)n >= size || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        close_fds(fds, n_fds);
        return -EMSGSIZE;
    }
    bool have_cred = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
            c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            memcpy(ret_cred, CMSG_DATA(c), sizeof(*ret_cred));
            have_cred = true;
        }
    }
    if (!have_cred || ret_cred->pid <= 0) {
        close_fds(fds, n_fds);
        return -EPERM;
    }
    *ret_n_fds = n_fds;
    return n;
}

bool notify_fdname_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > 255)
        return false;
    for (const char *p = name; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == ':')
            return false;
    return true;
}

static bool parse_number(const char *text, long long *ret)
{
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end == text || *end || value < 0)
        return false;
    *ret = value;
    return true;
}

static void parse_line(char *line, struct notify_message *m)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return;
    *eq = '\0';
    const char *key = line, *value = eq + 1;
    long long number;

    /* Among READY/RELOADING/STOPPING the last in a message wins. */
    if (strcmp(key, "READY") == 0 && strcmp(value, "1") == 0) {
        m->ready = true;
        m->reloading = m->stopping = false;
    } else if (strcmp(key, "RELOADING") == 0 && strcmp(value, "1") == 0) {
        m->reloading = true;
        m->ready = m->stopping = false;
    } else if (strcmp(key, "STOPPING") == 0 && strcmp(value, "1") == 0) {
        m->stopping = true;
        m->ready = m->reloading = false;
    } else if (strcmp(key, "STATUS") == 0 && !m->status) {
        m->status = value;
    } else if (strcmp(key, "WATCHDOG") == 0) {
        if (strcmp(value, "1") == 0)
            m->watchdog = true;
        else if (strcmp(value, "trigger") == 0)
            m->watchdog_trigger = true;
    } else if (strcmp(key, "EXTEND_TIMEOUT_USEC") == 0 && m->extend_usec < 0) {
        if (parse_number(value, &number))
            m->extend_usec = number;
    } else if (strcmp(key, "WATCHDOG_USEC") == 0 && m->watchdog_usec < 0) {
        if (parse_number(value, &number))
            m->watchdog_usec = number;
    } else if (strcmp(key, "MAINPID") == 0 && m->main_pid == 0) {
        if (parse_number(value, &number) && number > 0 && number < (1LL << 22))
            m->main_pid = (pid_t)number;
    } else if (strcmp(key, "FDSTORE") == 0) {
        m->fdstore = strcmp(value, "1") == 0;
    } else if (strcmp(key, "FDSTOREREMOVE") == 0) {
        m->fdstore_remove = strcmp(value, "1") == 0;
    } else if (strcmp(key, "FDNAME") == 0 && !m->fdname) {
        m->fdname = value;
    } else if (strcmp(key, "ERRNO") == 0 && m->error_number == 0) {
        if (parse_number(value, &number) && number < 4096)
            m->error_number = (int)number;
    }
}

int notify_parse(char *buf, size_t len, struct notify_message *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->extend_usec = ret->watchdog_usec = -1;
    /* One trailing NUL is tolerated, as sd_notify senders sometimes add it. */
    if (len > 0 && buf[len - 1] == '\0')
        len--;
    if (memchr(buf, '\0', len))
        return -EINVAL;
    buf[len] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n\r", &save); line; line = strtok_r(NULL, "\n\r", &save))
        parse_line(line, ret);
    return 0;
}
