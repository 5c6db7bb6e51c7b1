/*
 * output.h: capture of a service's stdout/stderr (StandardOutput=log).
 *
 * Each instance writes into its own pipe; arbord reads it without blocking
 * and logs whole lines as "unit[pid]: line". A stream outlives its process
 * until the pipe reaches EOF (a dying descendant may still be writing), and
 * frees itself then. A line longer than OUTPUT_LINE_MAX is logged in parts.
 */
#ifndef ARBOR_OUTPUT_H
#define ARBOR_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define OUTPUT_LINE_MAX 4096

struct ev_loop;
struct output_stream;

/* Where each whole line goes (arbord's log, the service's ring, followers). */
typedef void (*output_sink_fn)(void *ctx, pid_t pid, const char *line, size_t len);

/* Take ownership of the read end `fd` and pass its lines to `sink`. */
struct output_stream *output_open(struct ev_loop *loop, const char *unit, pid_t pid, int fd,
                                  output_sink_fn sink, void *ctx);
/* The context is going away (its unit was removed): the streams still
 * draining into it only log from now on. */
void output_detach(void *ctx);
/* Stop logging (at exit) and free; reads what is already in the pipe first. */
void output_close(struct ev_loop *loop, struct output_stream *stream);
/* Streams still open (for shutdown). */
void output_close_all(struct ev_loop *loop);

/* Re-exec: visit every open stream (its unit, pid, fd, whether it still
 * has a sink, and its unfinished line); then the next arbord reopens each
 * with output_open() and gives it back its unfinished line. */
typedef void (*output_visit_fn)(void *ctx, const char *unit, pid_t pid, int fd, bool attached,
                                const char *partial, size_t partial_len);
void output_visit(output_visit_fn visit, void *ctx);
void output_restore_partial(struct output_stream *stream, const char *partial, size_t len);

#endif
