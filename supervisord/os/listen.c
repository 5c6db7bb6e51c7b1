/*
 * listen.c: see listen.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "os/listen.h"

union any_addr {
    struct sockaddr sa;
    struct sockaddr_un un;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* The parser has checked the syntax; this turns it into an address. */
static int resolve(const char *address, union any_addr *ret, socklen_t *ret_len)
{
    memset(ret, 0, sizeof(*ret));
    if (address[0] == '/') {
        if (strlen(address) >= sizeof(ret->un.sun_path))
            return -ENAMETOOLONG;
        ret->un.sun_family = AF_UNIX;
        strcpy(ret->un.sun_path, address);
        *ret_len = sizeof(ret->un);
        return 0;
    }
    const char *colon = strrchr(address, ':');
    if (!colon)
        return -EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -EINVAL;
    char host[INET6_ADDRSTRLEN + 2];
    size_t len = (size_t)(colon - address);
    if (len >= sizeof(host))
        return -EINVAL;
    memcpy(host, address, len);
    host[len] = '\0';
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']') {
        host[len - 1] = '\0';
        ret->in6.sin6_family = AF_INET6;
        ret->in6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &ret->in6.sin6_addr) != 1)
            return -EINVAL;
        *ret_len = sizeof(ret->in6);
        return 0;
    }
    ret->in.sin_family = AF_INET;
    ret->in.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &ret->in.sin_addr) != 1)
        return -EINVAL;
    *ret_len = sizeof(ret->in);
    return 0;
}

int listen_open(const char *address, char *why, size_t size)
{
    union any_addr addr;
    socklen_t len;
    int r = resolve(address, &addr, &len);
    if (r < 0) {
        snprintf(why, size, "%s: not a valid address", address);
        return r;
    }
    int fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        snprintf(why, size, "%s: socket: %s", address, strerror(errno));
        return r;
    }
    const char *step = "bind";
    if (addr.sa.sa_family == AF_UNIX) {
        /* Replace a socket left by an earlier run; never any other file. */
        struct stat st;
        if (lstat(address, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(address);
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (bind(fd, &addr.sa, len) < 0)
        goto fail;
    step = "chmod";
    if (addr.sa.sa_family == AF_UNIX && chmod(address, 0666) < 0)
        goto fail;
    step = "listen";
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:
    r = -errno;
    snprintf(why, size, "%s: %s: %s", address, step, strerror(errno));
    if (addr.sa.sa_family == AF_UNIX && strcmp(step, "bind") != 0)
        unlink(address);
    close(fd);
    return r;
}

void listen_close(const char *address, int fd)
{
    if (fd < 0)
        return;
    close(fd);
    if (address[0] == '/')
        unlink(address);
}
