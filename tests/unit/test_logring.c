/*
 * test_logring.c: the per-service log ring: order, eviction of the oldest,
 * records that wrap around the end, and lines longer than the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "logring.h"

struct seen {
    char lines[64][LOG_RING_LINE_MAX + 1];
    pid_t pids[64];
    size_t count;
};

static void collect(void *ctx, pid_t pid, int64_t time_ms, const char *line, size_t len)
{
    struct seen *s = ctx;
    assert_true(s->count < 64);
    memcpy(s->lines[s->count], line, len);
    s->lines[s->count][len] = '\0';
    s->pids[s->count] = pid;
    s->count++;
}

static void test_last_n_oldest_first(void **state)
{
    struct log_ring *r = log_ring_new(4096);
    char line[32];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(line, sizeof(line), "line %d", i);
        log_ring_append(r, 100 + i, i, line, (size_t)n);
    }
    static struct seen s;
    s.count = 0;
    log_ring_last(r, 3, collect, &s);
    assert_int_equal(s.count, 3);
    assert_string_equal(s.lines[0], "line 7");
    assert_string_equal(s.lines[2], "line 9");
    assert_int_equal(s.pids[2], 109);
    s.count = 0;
    log_ring_last(r, 100, collect, &s);
    assert_int_equal(s.count, 10);
    log_ring_free(r);
}

static void test_eviction_and_wrap(void **state)
{
    /* 200 bytes hold a few 40-byte records; append many so that records
     * wrap around the end again and again. */
    struct log_ring *r = log_ring_new(200);
    char line[64];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(line, sizeof(line), "record %04d %.*s", i, i % 17, "xxxxxxxxxxxxxxxxx");
        log_ring_append(r, i, i, line, (size_t)n);
    }
    static struct seen s;
    s.count = 0;
    log_ring_last(r, 64, collect, &s);
    assert_true(s.count >= 3);
    assert_int_equal(s.count, log_ring_count(r));
    /* The newest record is last and whole; they are consecutive. */
    assert_memory_equal(s.lines[s.count - 1], "record 0999", 11);
    for (size_t i = 1; i < s.count; i++)
        assert_int_equal(s.pids[i], s.pids[i - 1] + 1);
    log_ring_free(r);
}

static void test_long_line_is_cut(void **state)
{
    struct log_ring *r = log_ring_new(LOG_RING_SIZE);
    static char big[LOG_RING_LINE_MAX * 2];
    memset(big, 'y', sizeof(big));
    log_ring_append(r, 1, 0, big, sizeof(big));
    static struct seen s;
    s.count = 0;
    log_ring_last(r, 1, collect, &s);
    assert_int_equal(s.count, 1);
    assert_int_equal(strlen(s.lines[0]), LOG_RING_LINE_MAX);
    log_ring_free(r);
    log_ring_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_n_oldest_first),
        cmocka_unit_test(test_eviction_and_wrap),
        cmocka_unit_test(test_long_line_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
