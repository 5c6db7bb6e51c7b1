/*
 * logring.c: see logring.h. A record is a 16-byte header (length, pid,
 * time) then the line; records may wrap around the end of the buffer, so
 * every access goes through ring_read/ring_write.
 */
#include <stdlib.h>
#include <string.h>

#include "logring.h"

struct record_header {
    uint32_t len;
    int32_t pid;
    int64_t time_ms;
};

struct log_ring {
    size_t capacity, head, used, count;
    char data[];
};

static void ring_read(const struct log_ring *r, size_t at, void *out, size_t n)
{
    at %= r->capacity;
    size_t first = r->capacity - at < n ? r->capacity - at : n;
    memcpy(out, r->data + at, first);
    memcpy((char *)out + first, r->data, n - first);
}

static void ring_write(struct log_ring *r, size_t at, const void *in, size_t n)
{
    at %= r->capacity;
    size_t first = r->capacity - at < n ? r->capacity - at : n;
    memcpy(r->data + at, in, first);
    memcpy(r->data, (const char *)in + first, n - first);
}

struct log_ring *log_ring_new(size_t capacity)
{
    struct log_ring *r = malloc(sizeof(*r) + capacity);
    if (!r)
        return NULL;
    r->capacity = capacity;
    r->head = r->used = r->count = 0;
    return r;
}

void log_ring_free(struct log_ring *ring)
{
    free(ring);
}

size_t log_ring_count(const struct log_ring *ring)
{
    return ring ? ring->count : 0;
}

static void drop_oldest(struct log_ring *r)
{
    struct record_header h;
    ring_read(r, r->head, &h, sizeof(h));
    size_t size = sizeof(h) + h.len;
    r->head = (r->head + size) % r->capacity;
    r->used -= size;
    r->count--;
}

void log_ring_append(struct log_ring *r, pid_t pid, int64_t time_ms, const char *line, size_t len)
{
    if (len > LOG_RING_LINE_MAX)
        len = LOG_RING_LINE_MAX;
    struct record_header h = {.len = (uint32_t)len, .pid = pid, .time_ms = time_ms};
    size_t need = sizeof(h) + len;
    if (need > r->capacity)
        return;
    while (r->used + need > r->capacity)
        drop_oldest(r);
    size_t tail = r->head + r->used;
    ring_write(r, tail, &h, sizeof(h));
    ring_write(r, tail + sizeof(h), line, len);
    r->used += need;
    r->count++;
}

void log_ring_last(const struct log_ring *r, size_t n, log_ring_visit_fn visit, void *ctx)
{
    if (!r)
        return;
    size_t at = r->head;
    char line[LOG_RING_LINE_MAX];
    for (size_t i = 0; i < r->count; i++) {
        struct record_header h;
        ring_read(r, at, &h, sizeof(h));
        if (i + n >= r->count) {
            ring_read(r, at + sizeof(h), line, h.len);
            visit(ctx, h.pid, h.time_ms, line, h.len);
        }
        at += sizeof(h) + h.len;
    }
}
