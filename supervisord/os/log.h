/*
 * log.h: arbord's own log and the captured output of services.
 *
 * Everything goes to stderr, line by line, and to the journal when one is
 * listening. Writing never blocks the daemon: stderr gets its own
 * non-blocking file description, lines wait in a bounded buffer while it is
 * full, and when even the buffer is full lines are dropped and counted (a
 * stuck log reader must not stop supervision).
 */
#ifndef ARBOR_LOG_H
#define ARBOR_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

struct ev_loop;

void log_init(bool verbose);
/* Start flushing through the loop; before this, writes block briefly. */
void log_attach(struct ev_loop *loop);
/* Write out whatever is buffered, waiting if need be (at exit). */
void log_flush(void);

/* "arbord: message" */
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "arbord: unit: message" */
void log_unit(int priority, const char *unit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line a service wrote: "unit[pid]: line". `line` need not be terminated. */
void log_output(const char *unit, int pid, const char *line, size_t len);

bool log_verbose(void);

#endif
