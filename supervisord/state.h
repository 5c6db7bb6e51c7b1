/*
 * state.h: the format arbord hands its state over in across a re-exec
 * (reexec.h). A record is a key, then fields, each after one space, then a
 * newline. A field is a decimal integer, or a string written as
 * LENGTH:BYTES (any bytes), or ~ for none. Readers check every field and
 * mark the whole stream bad at the first surprise.
 */
#ifndef ARBOR_STATE_H
#define ARBOR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct state_out {
    FILE *f;
    int *fds; /* every fd written with st_fd(): they must survive the exec */
    size_t n_fds, fds_cap;
    bool failed; /* out of memory */
};

void st_record(struct state_out *out, const char *key);
void st_int(struct state_out *out, long long value);
void st_bytes(struct state_out *out, const void *data, size_t len);
void st_str(struct state_out *out, const char *s); /* NULL: ~ */
/* An fd (or -1) that the next arbord inherits under the same number. */
void st_fd(struct state_out *out, int fd);
void st_end(struct state_out *out);

struct state_in {
    FILE *f;
    bool bad;
    char why[160]; /* the first problem */
    char key[32];  /* the current record's key */
};

/* Read the next record's key: false at the end of the stream (or when bad). */
bool st_next(struct state_in *in);
long long st_get_int(struct state_in *in);
/* An inherited fd (or -1): made close-on-exec again, as arbord keeps all. */
int st_get_fd(struct state_in *in);
/* A string, malloc'd and NUL-terminated (*ret_len without the NUL); NULL
 * for ~ (and when bad). */
char *st_get_str(struct state_in *in, size_t *ret_len);
/* The record must end here. */
void st_get_end(struct state_in *in);
/* Mark the stream bad (a record that makes no sense). */
void st_fail(struct state_in *in, const char *why);

#endif
