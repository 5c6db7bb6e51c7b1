/*
 * fuzz.c: helpers shared by the fuzz targets (fuzz.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#define SCRATCH_MAX 4

static char *scratch[SCRATCH_MAX];
static size_t n_scratch;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_scratch(void)
{
    for (size_t i = 0; i < n_scratch; i++)
        nftw(scratch[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_scratch_dir(const char *what)
{
    const char *tmp = getenv("TMPDIR");
    char *dir;

    if (n_scratch == SCRATCH_MAX)
        abort();
    if (asprintf(&dir, "%s/arbor-fuzz-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", what) < 0)
        abort();
    if (!mkdtemp(dir)) {
        fprintf(stderr, "fuzz: mkdtemp %s: %s\n", dir, strerror(errno));
        abort();
    }
    if (n_scratch == 0)
        atexit(remove_scratch);
    scratch[n_scratch++] = dir;
    return dir;
}

void fuzz_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    const char *p = data;

    if (fd < 0) {
        fprintf(stderr, "fuzz: open %s: %s\n", path, strerror(errno));
        abort();
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz: write %s: %s\n", path, strerror(errno));
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
    close(fd);
}

static int remove_inside(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

void fuzz_empty_dir(const char *dir)
{
    nftw(dir, remove_inside, 16, FTW_DEPTH | FTW_PHYS);
}

int fuzz_lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        abort();
    close(fd);
    return fd;
}

bool fuzz_pending(const char *what)
{
    static bool said;
    const char *tolerate = getenv("FUZZ_TOLERATE_PENDING");

    if (!tolerate || strcmp(tolerate, "1") != 0)
        return false;
    if (!said) {
        fprintf(stderr, "fuzz: tolerating a known bug: regressions-pending/%s\n", what);
        said = true;
    }
    return true;
}
