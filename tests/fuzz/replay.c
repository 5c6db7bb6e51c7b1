/*
 * replay.c: the main() of a fuzz target in a normal build. It feeds the
 * target every file of the directories (or the files) named on the
 * command line, once each, in name order, and fails (the target aborts)
 * on the first input that breaks a check or trips a sanitizer.
 *
 *   fuzz-replay-TARGET [--require] PATH...
 *
 * A PATH after --require must hold at least one input (the seed corpus);
 * the others may be missing or empty (regressions). libFuzzer's own main()
 * does the same for `fuzz-TARGET -runs=0 DIR...`.
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Targets that need no set-up do not define LLVMFuzzerInitialize(). */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(data, cap);
            if (!grown)
                abort();
            data = grown;
        }
        size_t n = fread(data + size, 1, cap - size, f);
        size += n;
        if (n == 0)
            break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(data);
        return -1;
    }
    /* An exact-size copy, so that ASan sees a read past the input's end. */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact)
        abort();
    if (size)
        memcpy(exact, data, size);
    free(data);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    replayed++;
    return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Returns the number of inputs replayed from `path`, or -1. */
static long replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) < 0 ? -1 : 1;

    struct dirent **names;
    int n = scandir(path, &names, NULL, name_cmp);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char *file = NULL;
        /* Dotfiles (.gitkeep) are not inputs. */
        if (names[i]->d_name[0] != '.' && count >= 0) {
            if (asprintf(&file, "%s/%s", path, names[i]->d_name) < 0)
                abort();
            if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
                count = replay_file(file) < 0 ? -1 : count + 1;
            free(file);
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    bool require = false;
    int status = 0;

    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--require") == 0) {
            require = true;
            continue;
        }
        long n = replay_path(argv[i]);
        if (n < 0 || (require && n == 0)) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], n < 0 ? "failed" : "no inputs");
            status = 1;
        }
        require = false;
    }
    fprintf(stderr, "replay: %lu inputs, %s\n", replayed, status ? "FAILED" : "all passed");
    return status;
}
