/*
 * intensity.c: OTP's restart-intensity window and exit classification.
 *
 * add_restart() in OTP's supervisor.erl keeps the restart times that are
 * no older than Period, adds the new one, and gives up when more than
 * Intensity remain. We keep the same rule on a millisecond clock: an entry
 * stays while it is >= now - period (the window is inclusive, as OTP's).
 * Only the newest intensity+1 times can ever matter, so the ring never
 * grows past that.
 */
#include <signal.h>
#include <stdlib.h>

#include "core/core.h"

static msec_t *ring_at(struct node *sup, size_t i)
{
    return &sup->restart_times[(sup->restart_head + i) % sup->restart_capacity];
}

/* Grow the ring, keeping its order. On ENOMEM the ring keeps its size and
 * the caller overwrites the oldest entry: the window gets shorter, which
 * errs on the side of restarting. */
static void ring_grow(struct node *sup, size_t limit)
{
    size_t capacity = sup->restart_capacity ? sup->restart_capacity * 2 : 4;
    if (capacity > limit)
        capacity = limit;
    if (capacity <= sup->restart_capacity)
        return;
    msec_t *times = malloc(capacity * sizeof(*times));
    if (!times)
        return;
    for (size_t i = 0; i < sup->restart_count; i++)
        times[i] = *ring_at(sup, i);
    free(sup->restart_times);
    sup->restart_times = times;
    sup->restart_capacity = capacity;
    sup->restart_head = 0;
}

bool intensity_add_restart(struct node *sup, msec_t now)
{
    size_t limit = (size_t)sup->config.intensity + 1;

    while (sup->restart_count > 0 && *ring_at(sup, 0) < now - sup->config.period) {
        sup->restart_head = (sup->restart_head + 1) % sup->restart_capacity;
        sup->restart_count--;
    }
    if (sup->restart_count == sup->restart_capacity)
        ring_grow(sup, limit);
    if (sup->restart_capacity == 0)
        return sup->config.intensity > 0; /* no memory at all: only 0 gives up */
    if (sup->restart_count == sup->restart_capacity) {
        sup->restart_head = (sup->restart_head + 1) % sup->restart_capacity;
        sup->restart_count--;
    }
    *ring_at(sup, sup->restart_count) = now;
    sup->restart_count++;
    return sup->restart_count <= (size_t)sup->config.intensity;
}

enum exit_class exit_classify(struct exit_status status, int stop_signal)
{
    if (!status.known)
        return EXIT_ABNORMAL;
    if (status.signaled)
        return status.value == stop_signal ? EXIT_SHUTDOWN : EXIT_ABNORMAL;
    return status.value == 0 ? EXIT_NORMAL : EXIT_ABNORMAL;
}

int exit_status_code(struct exit_status status)
{
    if (!status.known)
        return 1;
    if (status.signaled)
        return 128 + status.value;
    return status.value;
}
