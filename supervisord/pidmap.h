/*
 * pidmap.h: a small hash table from pid to pointer, so that arbord finds
 * the service of an exited pid (and tells main processes from orphans) in
 * constant time however many services it runs.
 */
#ifndef ARBOR_PIDMAP_H
#define ARBOR_PIDMAP_H

#include <stddef.h>
#include <sys/types.h>

struct pidmap {
    struct pidmap_slot {
        pid_t pid; /* 0 = empty */
        void *value;
    } * slots;
    size_t capacity, count; /* capacity is 0 or a power of two */
};

/* Insert or replace. Returns 0 or -ENOMEM. */
int pidmap_put(struct pidmap *map, pid_t pid, void *value);
/* The value for pid, or NULL. */
void *pidmap_get(const struct pidmap *map, pid_t pid);
void pidmap_remove(struct pidmap *map, pid_t pid);
/* Remove every entry whose value is `value` (a whole scan: rare use). */
void pidmap_remove_value(struct pidmap *map, const void *value);
void pidmap_free(struct pidmap *map);

#endif
