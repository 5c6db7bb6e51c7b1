/*
 * fuzz.h: what every fuzz target shares.
 *
 * Each target defines LLVMFuzzerTestOneInput() (and, if it needs a scratch
 * directory or a socket, LLVMFuzzerInitialize()) and is built twice: with
 * libFuzzer (-DARBOR_FUZZ=ON, clang, tests/fuzz/run.sh), and in every
 * normal build with replay.c, which feeds it the seed corpus and the
 * regressions once each (ctest fuzz.replay.<target>).
 *
 * A target checks properties of the code it calls (a round trip, a
 * pointer inside its buffer, ...) with FUZZ_CHECK, which aborts: under
 * libFuzzer that is a crash with an input saved, under ctest a failure.
 */
#ifndef ARBOR_FUZZ_H
#define ARBOR_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string (cut at its first NUL byte, as a C
 * caller would see it), in a buffer of exactly the right size so that
 * ASan catches a read past the end. Never NULL: aborts on ENOMEM. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    size_t len = 0;
    while (len < size && data[len])
        len++;
    char *s = malloc(len + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < len; i++)
        s[i] = (char)data[i];
    s[len] = '\0';
    return s;
}

/* fuzz.c */

/* A fresh directory of this process's own, $TMPDIR/arbor-fuzz-WHAT.XXXXXX,
 * removed with everything in it at exit. Aborts on failure. */
const char *fuzz_scratch_dir(const char *what);
/* Write `len` bytes to `path` (created 0644, truncated). Aborts on failure. */
void fuzz_write_file(const char *path, const void *data, size_t len);
/* Remove everything inside `dir`, leaving `dir` itself. */
void fuzz_empty_dir(const char *dir);
/* The lowest fd number not in use: fds a call leaves open move it up. */
int fuzz_lowest_free_fd(void);
/* Whether to let a known bug pass: a check that fails on one guards itself
 * with this, `what` naming its input in regressions-pending/. True when
 * FUZZ_TOLERATE_PENDING=1 (run.sh sets it, so that fuzzing goes on past
 * bugs already reported), false otherwise (ctest, a replay by hand). */
bool fuzz_pending(const char *what);

#endif
