/*
 * logring.h: the recent output of one service, for `arborctl logs`.
 *
 * A fixed-size byte ring of records (pid, time, line); appending evicts
 * the oldest records. Allocated on a service's first line of output, so
 * quiet services cost nothing.
 */
#ifndef ARBOR_LOGRING_H
#define ARBOR_LOGRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOG_RING_SIZE (32 * 1024)
#define LOG_RING_LINE_MAX 4096 /* longer lines are kept cut to this */

struct log_ring;

struct log_ring *log_ring_new(size_t capacity);
void log_ring_free(struct log_ring *ring); /* accepts NULL */
void log_ring_append(struct log_ring *ring, pid_t pid, int64_t time_ms, const char *line,
                     size_t len);
size_t log_ring_count(const struct log_ring *ring);

typedef void (*log_ring_visit_fn)(void *ctx, pid_t pid, int64_t time_ms, const char *line,
                                  size_t len);
/* Visit the last `n` records, oldest first. */
void log_ring_last(const struct log_ring *ring, size_t n, log_ring_visit_fn visit, void *ctx);

#endif
