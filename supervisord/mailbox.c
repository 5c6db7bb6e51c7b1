/*
 * mailbox.c: see mailbox.h for the theory of operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <ev.h>

#include "mailbox.h"
#include "os/log.h"
#include "state.h"

/* How much arbord may have written into an instance's socketpair and not
 * yet seen read; the rest waits in the backlog. */
#define MAILBOX_PAIR_BUFFER (4 * 1024 * 1024)

struct message {
    struct message *next;
    uint32_t len;
    char data[];
};

struct mailbox {
    struct ev_loop *loop;
    char *path, *name;
    struct mailbox_settings settings;
    int public_fd;                 /* P: bound at the path, held for the unit's life */
    int pair_service, pair_arbord; /* the forward socketpair, or -1 */
    ev_io public_io;               /* arbord reading P */
    ev_io pair_io;                 /* waiting for room in the socketpair */
    bool running;                  /* an instance is running */
    bool forwarding;               /* ... and reads the socketpair */
    struct message *head, *tail;   /* the backlog, oldest first */
    uint64_t count;
    uint64_t kept, forwarded, reclaimed;
};

/* ---- the backlog ---- */

static void push_back(struct mailbox *mb, struct message *m)
{
    m->next = NULL;
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    mb->count++;
}

static struct message *pop_front(struct mailbox *mb)
{
    struct message *m = mb->head;
    if (!m)
        return NULL;
    mb->head = m->next;
    if (!mb->head)
        mb->tail = NULL;
    mb->count--;
    return m;
}

/* Receive one datagram whole, whatever its size. NULL when none is
 * waiting (or on an error, logged). */
static struct message *receive(struct mailbox *mb, int fd)
{
    char probe;
    ssize_t size;
    do {
        size = recv(fd, &probe, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    } while (size < 0 && errno == EINTR);
    if (size < 0) {
        if (errno != EAGAIN)
            log_unit(LOG_WARNING, mb->name, "mailbox: recv: %s", strerror(errno));
        return NULL;
    }
    struct message *m = malloc(sizeof(*m) + (size_t)size);
    if (!m)
        return NULL; /* left in the socket: back-pressure, not loss */
    ssize_t n;
    do {
        n = recv(fd, m->data, (size_t)size, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        free(m);
        return NULL;
    }
    m->len = (uint32_t)n;
    return m;
}

/* ---- which fd arbord watches ---- */

/* arbord reads P when no instance runs, or when it forwards, and while
 * there is room in the backlog; it waits for room in the socketpair only
 * while it forwards and has something to pass on. */
static void update_watchers(struct mailbox *mb)
{
    bool read_public = (!mb->running || mb->forwarding) && mb->count < mb->settings.capacity;
    if (read_public && !ev_is_active(&mb->public_io))
        ev_io_start(mb->loop, &mb->public_io);
    else if (!read_public && ev_is_active(&mb->public_io))
        ev_io_stop(mb->loop, &mb->public_io);

    bool wait_pair = mb->forwarding && mb->head;
    if (wait_pair && !ev_is_active(&mb->pair_io))
        ev_io_start(mb->loop, &mb->pair_io);
    else if (!wait_pair && ev_is_active(&mb->pair_io))
        ev_io_stop(mb->loop, &mb->pair_io);
}

#define MAILBOX_BATCH 32
/* SPEC promises messages of up to 64 KiB, but a datagram may be as large
 * as its sender's SO_SNDBUF, which an unprivileged sender can raise to
 * twice net.core.wmem_max; arbord must not cut one it accepted. So each
 * receive buffer is that large (pages never written cost nothing). Only a
 * sender with CAP_NET_ADMIN (SO_SNDBUFFORCE) can go past it; arbor-mailbox(7)
 * says so. */
static size_t message_max(void)
{
    static size_t max;
    if (max)
        return max;
    unsigned long wmem = 0;
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "re");
    if (!f || fscanf(f, "%lu", &wmem) != 1)
        wmem = 212992;
    if (f)
        fclose(f);
    max = 2 * wmem > 256 * 1024 ? 2 * wmem : 256 * 1024;
    return max;
}

/* Pass the backlog on, oldest first, as far as the socketpair takes it,
 * a batch per system call. */
static void forward(struct mailbox *mb)
{
    while (mb->forwarding && mb->head) {
        struct mmsghdr msgs[MAILBOX_BATCH];
        struct iovec iov[MAILBOX_BATCH];
        unsigned n = 0;
        for (struct message *m = mb->head; m && n < MAILBOX_BATCH; m = m->next, n++) {
            iov[n] = (struct iovec){.iov_base = m->data, .iov_len = m->len};
            msgs[n] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[n], .msg_iovlen = 1}};
        }
        int sent = sendmmsg(mb->pair_arbord, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) {
            if (sent < 0 && errno != EAGAIN && errno != ENOBUFS)
                log_unit(LOG_WARNING, mb->name, "mailbox: passing messages on: %s",
                         strerror(errno));
            break;
        }
        for (int i = 0; i < sent; i++)
            free(pop_front(mb));
        mb->forwarded += (uint64_t)sent;
        if ((unsigned)sent < n)
            break; /* the socketpair is full: wait until it is writable */
    }
}

/* Read a batch from P into the backlog. Returns how many were read. */
static int read_batch(struct mailbox *mb)
{
    static char *buffers[MAILBOX_BATCH];
    size_t max = message_max();
    for (unsigned i = 0; i < MAILBOX_BATCH; i++)
        if (!buffers[i] && !(buffers[i] = malloc(max)))
            return 0; /* left in the socket: back-pressure, not loss */
    struct mmsghdr msgs[MAILBOX_BATCH];
    struct iovec iov[MAILBOX_BATCH];
    uint64_t room = mb->settings.capacity - mb->count;
    unsigned want = room < MAILBOX_BATCH ? (unsigned)room : MAILBOX_BATCH;
    for (unsigned i = 0; i < want; i++) {
        iov[i] = (struct iovec){.iov_base = buffers[i], .iov_len = max};
        msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
    }
    int n;
    do {
        n = recvmmsg(mb->public_fd, msgs, want, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN)
            log_unit(LOG_WARNING, mb->name, "mailbox: recv: %s", strerror(errno));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            log_unit(LOG_WARNING, mb->name, "mailbox: a message over %zu bytes was cut to size",
                     max);
            msgs[i].msg_len = (unsigned)max;
        }
        struct message *m = malloc(sizeof(*m) + msgs[i].msg_len);
        if (!m) {
            log_unit(LOG_ERR, mb->name, "mailbox: out of memory: a message was lost");
            continue;
        }
        m->len = msgs[i].msg_len;
        memcpy(m->data, buffers[i], m->len);
        push_back(mb, m);
        mb->kept++;
    }
    return n;
}

static void read_public(struct mailbox *mb)
{
    /* A bounded number of batches per wakeup, so a flood cannot starve
     * the loop. */
    for (int i = 0; i < 8 && mb->count < mb->settings.capacity; i++) {
        int n = read_batch(mb);
        if (mb->forwarding)
            forward(mb);
        if (n < MAILBOX_BATCH)
            break;
    }
}

static void on_public(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mailbox *mb = w->data;
    read_public(mb);
    update_watchers(mb);
}

static void on_pair_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mailbox *mb = w->data;
    forward(mb);
    update_watchers(mb);
}

/* ---- instances ---- */

/* Take back what an ended instance left unread in the socketpair: it is
 * older than anything in the backlog, so it goes in front, in order. */
static void reclaim(struct mailbox *mb)
{
    if (mb->pair_service < 0)
        return;
    struct message *first = NULL, *last = NULL;
    uint64_t n = 0;
    struct message *m;
    while ((m = receive(mb, mb->pair_service))) {
        m->next = NULL;
        if (last)
            last->next = m;
        else
            first = m;
        last = m;
        n++;
    }
    if (!first)
        return;
    last->next = mb->head;
    mb->head = first;
    if (!mb->tail)
        mb->tail = last;
    mb->count += n;
    mb->reclaimed += n;
}

static int make_pair(struct mailbox *mb)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* The instance's end blocks, as a plain recv() expects; arbord only
     * ever touches it with MSG_DONTWAIT. arbord's end never blocks. */
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    int size = MAILBOX_PAIR_BUFFER;
    if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    mb->pair_service = sv[0];
    mb->pair_arbord = sv[1];
    ev_io_init(&mb->pair_io, on_pair_writable, mb->pair_arbord, EV_WRITE);
    mb->pair_io.data = mb;
    return 0;
}

/* An instance may have set O_NONBLOCK on its fd 3; the file description
 * is shared with arbord and the next instance, which expects a plain
 * blocking recv(). */
static void make_blocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK))
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

int mailbox_instance_fd(struct mailbox *mb)
{
    reclaim(mb);
    mb->running = true;
    mb->forwarding = mb->head != NULL;
    if (mb->forwarding && mb->pair_service < 0 && make_pair(mb) < 0) {
        log_unit(LOG_ERR, mb->name, "mailbox: socketpair: %s; handing over the socket itself",
                 strerror(errno));
        mb->forwarding = false; /* the backlog waits for the next instance */
    }
    if (mb->forwarding)
        forward(mb);
    update_watchers(mb);
    int fd = mb->forwarding ? mb->pair_service : mb->public_fd;
    make_blocking(fd);
    return fd;
}

int mailbox_running_fd(struct mailbox *mb)
{
    if (!mb->running)
        return mailbox_instance_fd(mb);
    return mb->forwarding ? mb->pair_service : mb->public_fd;
}

void mailbox_instance_ended(struct mailbox *mb)
{
    mb->running = false;
    mb->forwarding = false;
    reclaim(mb);
    update_watchers(mb);
}

/* ---- the socket ---- */

static int apply_settings(struct mailbox *mb, const struct mailbox_settings *s, char *why,
                          size_t size)
{
    if (chown(mb->path, s->owner, s->group) < 0 || chmod(mb->path, s->mode) < 0) {
        snprintf(why, size, "%s: %s", mb->path, strerror(errno));
        return -1;
    }
    mb->settings = *s;
    return 0;
}

struct mailbox *mailbox_open(struct ev_loop *loop, const char *path, const char *name,
                             const struct mailbox_settings *settings, char *why, size_t size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct mailbox *mb = calloc(1, sizeof(*mb));
    if (!mb || !(mb->path = strdup(path)) || !(mb->name = strdup(name))) {
        snprintf(why, size, "out of memory");
        goto fail;
    }
    mb->loop = loop;
    mb->pair_service = mb->pair_arbord = -1;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(why, size, "%s: path too long for a socket", path);
        goto fail;
    }
    strcpy(addr.sun_path, path);
    /* Blocking: an instance may be handed this very socket and expects a
     * plain recv() to wait. arbord itself only uses MSG_DONTWAIT on it. */
    mb->public_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (mb->public_fd < 0) {
        snprintf(why, size, "socket: %s", strerror(errno));
        goto fail;
    }
    unlink(path); /* we hold the runtime lock: whatever is there is stale */
    /* Bind with no permission for anyone, then open it up as configured,
     * so there is no moment when others could send. */
    mode_t old = umask(0777);
    int r = bind(mb->public_fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (r < 0) {
        snprintf(why, size, "%s: %s", path, strerror(errno));
        close(mb->public_fd);
        goto fail;
    }
    if (apply_settings(mb, settings, why, size) < 0) {
        close(mb->public_fd);
        unlink(path);
        goto fail;
    }
    ev_io_init(&mb->public_io, on_public, mb->public_fd, EV_READ);
    mb->public_io.data = mb;
    update_watchers(mb);
    return mb;
fail:
    if (mb) {
        free(mb->path);
        free(mb->name);
    }
    free(mb);
    return NULL;
}

int mailbox_configure(struct mailbox *mb, const struct mailbox_settings *settings, char *why,
                      size_t size)
{
    int r = apply_settings(mb, settings, why, size);
    update_watchers(mb);
    return r;
}

void mailbox_close(struct mailbox *mb)
{
    if (!mb)
        return;
    ev_io_stop(mb->loop, &mb->public_io);
    if (mb->pair_arbord >= 0) {
        ev_io_stop(mb->loop, &mb->pair_io);
        close(mb->pair_arbord);
        close(mb->pair_service);
    }
    close(mb->public_fd);
    unlink(mb->path);
    if (mb->count > 0)
        log_unit(LOG_WARNING, mb->name, "mailbox removed with %llu messages unread",
                 (unsigned long long)mb->count);
    while (mb->head)
        free(pop_front(mb));
    free(mb->path);
    free(mb->name);
    free(mb);
}

void mailbox_get_stats(const struct mailbox *mb, struct mailbox_stats *ret)
{
    int bytes = 0;
    memset(ret, 0, sizeof(*ret));
    ret->direct = mb->running && !mb->forwarding;
    ret->held = mb->count;
    ret->kept = mb->kept;
    ret->forwarded = mb->forwarded;
    ret->reclaimed = mb->reclaimed;
    /* Linux counts no datagrams: bytes are the closest it tells. For P
     * SIOCINQ is only the next datagram's size; for the socketpair,
     * SIOCOUTQ on arbord's end is what the instance has not read yet. */
    if (mb->forwarding && ioctl(mb->pair_arbord, SIOCOUTQ, &bytes) == 0)
        ret->socket_bytes = (uint64_t)bytes;
    else if (!mb->forwarding && ioctl(mb->public_fd, SIOCINQ, &bytes) == 0)
        ret->socket_bytes = (uint64_t)bytes;
}

/* ---- re-exec ---- */

void mailbox_save(const struct mailbox *mb, struct state_out *out)
{
    st_fd(out, mb->public_fd);
    st_fd(out, mb->pair_service);
    st_fd(out, mb->pair_arbord);
    st_int(out, mb->running);
    st_int(out, mb->forwarding);
    st_int(out, (long long)mb->kept);
    st_int(out, (long long)mb->forwarded);
    st_int(out, (long long)mb->reclaimed);
    st_int(out, (long long)mb->count);
    st_end(out);
    for (const struct message *m = mb->head; m; m = m->next) {
        st_record(out, "message");
        st_bytes(out, m->data, m->len);
        st_end(out);
    }
}

struct mailbox *mailbox_restore(struct ev_loop *loop, const char *path, const char *name,
                                const struct mailbox_settings *settings, struct state_in *in)
{
    struct mailbox *mb = calloc(1, sizeof(*mb));
    if (!mb || !(mb->path = strdup(path)) || !(mb->name = strdup(name))) {
        if (mb)
            free(mb->path);
        free(mb);
        st_fail(in, "out of memory");
        return NULL;
    }
    mb->loop = loop;
    mb->settings = *settings;
    mb->public_fd = st_get_fd(in);
    mb->pair_service = st_get_fd(in);
    mb->pair_arbord = st_get_fd(in);
    mb->running = st_get_int(in) != 0;
    mb->forwarding = st_get_int(in) != 0;
    mb->kept = (uint64_t)st_get_int(in);
    mb->forwarded = (uint64_t)st_get_int(in);
    mb->reclaimed = (uint64_t)st_get_int(in);
    long long count = st_get_int(in);
    st_get_end(in);
    for (long long i = 0; i < count && st_next(in); i++) {
        size_t len;
        char *data = strcmp(in->key, "message") == 0 ? st_get_str(in, &len) : NULL;
        st_get_end(in);
        struct message *m = data ? malloc(sizeof(*m) + len) : NULL;
        if (m) {
            m->len = (uint32_t)len;
            memcpy(m->data, data, len);
            push_back(mb, m);
        } else {
            st_fail(in, "expected a message");
        }
        free(data);
    }
    ev_io_init(&mb->public_io, on_public, mb->public_fd, EV_READ);
    mb->public_io.data = mb;
    if (mb->pair_arbord >= 0) {
        ev_io_init(&mb->pair_io, on_pair_writable, mb->pair_arbord, EV_WRITE);
        mb->pair_io.data = mb;
    }
    update_watchers(mb);
    if (mb->forwarding)
        forward(mb);
    update_watchers(mb);
    return mb;
}
