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

#include <sys/types.h>

#define OUTPUT_LINE_MAX 4096

struct ev_loop;
struct output_stream;

/* Take ownership of the read end `fd` and start logging it. */
struct output_stream *output_open(struct ev_loop *loop, const char *unit, pid_t pid, int fd);
/* Stop logging (at exit) and free; reads what is already in the pipe first. */
void output_close(struct ev_loop *loop, struct output_stream *stream);
/* Streams still open (for shutdown). */
void output_close_all(struct ev_loop *loop);

#endif
