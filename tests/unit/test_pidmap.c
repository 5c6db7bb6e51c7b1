/*
 * test_pidmap.c: the pid -> service hash table, against a plain array as
 * the reference, through many inserts and removals (removal shifts entries
 * back, the part easiest to get wrong).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pidmap.h"

#define PIDS 5000

static void test_put_get_replace(void **state)
{
    struct pidmap map = {0};
    int a, b;
    assert_null(pidmap_get(&map, 42));
    assert_int_equal(pidmap_put(&map, 42, &a), 0);
    assert_ptr_equal(pidmap_get(&map, 42), &a);
    assert_int_equal(pidmap_put(&map, 42, &b), 0);
    assert_ptr_equal(pidmap_get(&map, 42), &b);
    assert_int_equal(map.count, 1);
    pidmap_remove(&map, 42);
    assert_null(pidmap_get(&map, 42));
    pidmap_remove(&map, 42); /* absent: nothing happens */
    assert_int_equal(map.count, 0);
    pidmap_free(&map);
}

static void test_random_against_reference(void **state)
{
    static void *reference[PIDS + 1];
    static int values[PIDS + 1];
    struct pidmap map = {0};
    srand(7);
    for (int round = 0; round < 200000; round++) {
        pid_t pid = 1 + rand() % PIDS;
        if (rand() % 3) {
            assert_int_equal(pidmap_put(&map, pid, &values[pid]), 0);
            reference[pid] = &values[pid];
        } else {
            pidmap_remove(&map, pid);
            reference[pid] = NULL;
        }
        if (round % 997 == 0) {
            size_t count = 0;
            for (pid_t p = 1; p <= PIDS; p++) {
                assert_ptr_equal(pidmap_get(&map, p), reference[p]);
                count += reference[p] != NULL;
            }
            assert_int_equal(map.count, count);
        }
    }
    pidmap_free(&map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
