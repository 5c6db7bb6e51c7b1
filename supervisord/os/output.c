/*
 * output.c: see output.h. Streams are kept in a list so that arbord can
 * flush and close them all when it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "os/log.h"
#include "os/output.h"

struct output_stream {
    ev_io io;
    output_sink_fn sink; /* NULL: only arbord's log */
    void *ctx;
    pid_t pid;
    unsigned partial_len; /* <= OUTPUT_LINE_MAX; beside pid: no padding */
    char *partial;        /* an unfinished line, allocated only while there is one */
    struct output_stream *prev, *next;
    char unit[]; /* its own copy: a stream may outlive its unit */
};

static struct output_stream *streams;

static void emit(struct output_stream *s, const char *line, size_t len)
{
    if (s->sink)
        s->sink(s->ctx, s->pid, line, len);
    else
        log_output(s->unit, s->pid, line, len);
}

static void keep_partial(struct output_stream *s, const char *data, size_t len);

static void emit_line(struct output_stream *s, const char *data, size_t len)
{
    if (s->partial_len == 0) {
        /* A long line that arrived in one read: log it in parts, whole. */
        while (len > OUTPUT_LINE_MAX) {
            emit(s, data, OUTPUT_LINE_MAX);
            data += OUTPUT_LINE_MAX;
            len -= OUTPUT_LINE_MAX;
        }
        emit(s, data, len);
        return;
    }
    keep_partial(s, data, len); /* logs full OUTPUT_LINE_MAX parts on the way */
    if (s->partial_len > 0)
        emit(s, s->partial, s->partial_len);
    free(s->partial);
    s->partial = NULL;
    s->partial_len = 0;
}

/* Keep the tail of a chunk that ends mid-line; flush it when it is full. */
static void keep_partial(struct output_stream *s, const char *data, size_t len)
{
    while (len > 0) {
        if (!s->partial) {
            s->partial = malloc(OUTPUT_LINE_MAX);
            if (!s->partial) {
                emit(s, data, len);
                return;
            }
        }
        size_t take = OUTPUT_LINE_MAX - s->partial_len;
        if (take > len)
            take = len;
        memcpy(s->partial + s->partial_len, data, take);
        s->partial_len += (unsigned)take;
        data += take;
        len -= take;
        if (s->partial_len == OUTPUT_LINE_MAX) {
            emit(s, s->partial, s->partial_len);
            s->partial_len = 0;
        }
    }
}

static void consume(struct output_stream *s, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        if (!nl) {
            keep_partial(s, data, len);
            return;
        }
        emit_line(s, data, (size_t)(nl - data));
        len -= (size_t)(nl - data) + 1;
        data = nl + 1;
    }
}

static void destroy(struct ev_loop *loop, struct output_stream *s)
{
    if (s->partial_len > 0)
        emit(s, s->partial, s->partial_len);
    ev_io_stop(loop, &s->io);
    close(s->io.fd);
    if (s->prev)
        s->prev->next = s->next;
    else
        streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->partial);
    free(s);
}

/* Read what is there now; returns false at EOF or a hard error. */
static bool read_available(struct output_stream *s, int rounds)
{
    static char chunk[65536];
    for (int i = 0; i < rounds; i++) {
        ssize_t n = read(s->io.fd, chunk, sizeof(chunk));
        if (n > 0) {
            consume(s, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EINTR))
            continue;
        return n < 0 && errno == EAGAIN;
    }
    return true;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct output_stream *s = (struct output_stream *)w;
    /* A few reads per wakeup, so one chatty service cannot starve the loop. */
    if (!read_available(s, 4))
        destroy(loop, s);
}

struct output_stream *output_open(struct ev_loop *loop, const char *unit, pid_t pid, int fd,
                                  output_sink_fn sink, void *ctx)
{
    size_t name_size = strlen(unit) + 1;
    struct output_stream *s = calloc(1, sizeof(*s) + name_size);
    if (!s) {
        close(fd);
        return NULL;
    }
    memcpy(s->unit, unit, name_size);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    s->pid = pid;
    s->sink = sink;
    s->ctx = ctx;
    ev_io_init(&s->io, on_readable, fd, EV_READ);
    ev_io_start(loop, &s->io);
    s->next = streams;
    if (streams)
        streams->prev = s;
    streams = s;
    return s;
}

void output_close(struct ev_loop *loop, struct output_stream *s)
{
    read_available(s, 16);
    destroy(loop, s);
}

void output_detach(void *ctx)
{
    for (struct output_stream *s = streams; s; s = s->next)
        if (s->ctx == ctx) {
            s->sink = NULL;
            s->ctx = NULL;
        }
}

void output_close_all(struct ev_loop *loop)
{
    while (streams)
        output_close(loop, streams);
}

void output_visit(output_visit_fn visit, void *ctx)
{
    for (struct output_stream *s = streams; s; s = s->next)
        visit(ctx, s->unit, s->pid, s->io.fd, s->sink != NULL, s->partial, s->partial_len);
}

void output_restore_partial(struct output_stream *s, const char *partial, size_t len)
{
    if (s && len > 0)
        keep_partial(s, partial, len);
}
