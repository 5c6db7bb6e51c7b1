/*
 * pidmap.c: open addressing with linear probing; removal shifts the
 * following entries back, so there are no tombstones to sweep.
 */
#include <errno.h>
#include <stdlib.h>

#include "pidmap.h"

static size_t slot_of(const struct pidmap *map, pid_t pid)
{
    /* Fibonacci hashing spreads consecutive pids. */
    return (size_t)(((unsigned long long)(unsigned)pid * 11400714819323198485ull) >> 32) &
           (map->capacity - 1);
}

static int grow(struct pidmap *map)
{
    size_t capacity = map->capacity ? map->capacity * 2 : 64;
    struct pidmap_slot *old = map->slots;
    size_t old_capacity = map->capacity;
    map->slots = calloc(capacity, sizeof(*map->slots));
    if (!map->slots) {
        map->slots = old;
        return -ENOMEM;
    }
    map->capacity = capacity;
    map->count = 0;
    for (size_t i = 0; i < old_capacity; i++)
        if (old[i].pid)
            pidmap_put(map, old[i].pid, old[i].value);
    free(old);
    return 0;
}

int pidmap_put(struct pidmap *map, pid_t pid, void *value)
{
    if ((map->count + 1) * 2 > map->capacity && grow(map) < 0)
        return -ENOMEM;
    size_t i = slot_of(map, pid);
    while (map->slots[i].pid && map->slots[i].pid != pid)
        i = (i + 1) & (map->capacity - 1);
    if (!map->slots[i].pid)
        map->count++;
    map->slots[i].pid = pid;
    map->slots[i].value = value;
    return 0;
}

void *pidmap_get(const struct pidmap *map, pid_t pid)
{
    if (map->capacity == 0 || pid <= 0)
        return NULL;
    for (size_t i = slot_of(map, pid); map->slots[i].pid; i = (i + 1) & (map->capacity - 1))
        if (map->slots[i].pid == pid)
            return map->slots[i].value;
    return NULL;
}

void pidmap_remove(struct pidmap *map, pid_t pid)
{
    if (map->capacity == 0 || pid <= 0)
        return;
    size_t mask = map->capacity - 1, i = slot_of(map, pid);
    while (map->slots[i].pid != pid) {
        if (!map->slots[i].pid)
            return;
        i = (i + 1) & mask;
    }
    /* Shift back every following entry that may no longer be reachable. */
    for (size_t j = (i + 1) & mask; map->slots[j].pid; j = (j + 1) & mask) {
        size_t home = slot_of(map, map->slots[j].pid);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            map->slots[i] = map->slots[j];
            i = j;
        }
    }
    map->slots[i].pid = 0;
    map->slots[i].value = NULL;
    map->count--;
}

void pidmap_remove_value(struct pidmap *map, const void *value)
{
    for (size_t i = 0; i < map->capacity;) {
        if (map->slots[i].pid && map->slots[i].value == value)
            pidmap_remove(map, map->slots[i].pid); /* may shift a later entry into i */
        else
            i++;
    }
}

void pidmap_free(struct pidmap *map)
{
    free(map->slots);
    map->slots = NULL;
    map->capacity = map->count = 0;
}
