/*
 * state.c: see state.h.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

void st_record(struct state_out *out, const char *key)
{
    fputs(key, out->f);
}

void st_int(struct state_out *out, long long value)
{
    fprintf(out->f, " %lld", value);
}

void st_bytes(struct state_out *out, const void *data, size_t len)
{
    fprintf(out->f, " %zu:", len);
    fwrite(data, 1, len, out->f);
}

void st_str(struct state_out *out, const char *s)
{
    if (s)
        st_bytes(out, s, strlen(s));
    else
        fputs(" ~", out->f);
}

void st_fd(struct state_out *out, int fd)
{
    st_int(out, fd);
    if (fd < 0)
        return;
    if (out->n_fds == out->fds_cap) {
        size_t cap = out->fds_cap ? out->fds_cap * 2 : 64;
        int *grown = realloc(out->fds, cap * sizeof(*grown));
        if (!grown) {
            out->failed = true;
            return;
        }
        out->fds = grown;
        out->fds_cap = cap;
    }
    out->fds[out->n_fds++] = fd;
}

void st_end(struct state_out *out)
{
    fputc('\n', out->f);
}

void st_fail(struct state_in *in, const char *why)
{
    if (!in->bad)
        snprintf(in->why, sizeof(in->why), "record %s: %s", in->key, why);
    in->bad = true;
}

bool st_next(struct state_in *in)
{
    if (in->bad)
        return false;
    size_t n = 0;
    int c;
    while ((c = fgetc(in->f)) != EOF && c != ' ' && c != '\n') {
        if (n + 1 >= sizeof(in->key)) {
            st_fail(in, "key too long");
            return false;
        }
        in->key[n++] = (char)c;
    }
    in->key[n] = '\0';
    if (c == EOF && n == 0)
        return false;
    if (c == '\n')
        ungetc(c, in->f); /* a record with no fields */
    else if (c == EOF) {
        st_fail(in, "truncated");
        return false;
    } else {
        ungetc(c, in->f);
    }
    return true;
}

/* Every field starts with one space. */
static bool field_start(struct state_in *in)
{
    if (in->bad)
        return false;
    if (fgetc(in->f) != ' ') {
        st_fail(in, "missing field");
        return false;
    }
    return true;
}

long long st_get_int(struct state_in *in)
{
    if (!field_start(in))
        return 0;
    long long value;
    if (fscanf(in->f, "%lld", &value) != 1) {
        st_fail(in, "expected a number");
        return 0;
    }
    return value;
}

int st_get_fd(struct state_in *in)
{
    long long fd = st_get_int(in);
    if (fd < -1 || fd > INT_MAX || (fd >= 0 && fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)) {
        st_fail(in, "not an open fd");
        return -1;
    }
    return (int)fd;
}

char *st_get_str(struct state_in *in, size_t *ret_len)
{
    if (ret_len)
        *ret_len = 0;
    if (!field_start(in))
        return NULL;
    int c = fgetc(in->f);
    if (c == '~')
        return NULL;
    ungetc(c, in->f);
    size_t len;
    if (fscanf(in->f, "%zu", &len) != 1 || fgetc(in->f) != ':' || len > (size_t)INT_MAX) {
        st_fail(in, "expected a string");
        return NULL;
    }
    char *s = malloc(len + 1);
    if (!s) {
        st_fail(in, "out of memory");
        return NULL;
    }
    if (fread(s, 1, len, in->f) != len) {
        free(s);
        st_fail(in, "truncated string");
        return NULL;
    }
    s[len] = '\0';
    if (ret_len)
        *ret_len = len;
    return s;
}

void st_get_end(struct state_in *in)
{
    if (!in->bad && fgetc(in->f) != '\n')
        st_fail(in, "unexpected field");
}
