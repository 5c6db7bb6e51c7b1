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

struct restart_window {
    unsigned head, count, capacity;
    msec_t times[];
};

static msec_t *ring_at(struct restart_window *w, size_t i)
{
    return &w->times[(w->head + i) % w->capacity];
}

/* Grow the ring, keeping its order. On ENOMEM the ring keeps its size and
 * the caller overwrites the oldest entry: the window gets shorter, which
 * errs on the side of restarting. */
static void ring_grow(struct node *sup, size_t limit)
{
    struct restart_window *old = sup->supervision->window;
    size_t have = old ? old->capacity : 0;
    size_t capacity = have ? have * 2 : 4;
    if (capacity > limit)
        capacity = limit;
    if (capacity <= have)
        return;
    struct restart_window *w = malloc(sizeof(*w) + capacity * sizeof(w->times[0]));
    if (!w)
        return;
    w->head = 0;
    w->count = old ? old->count : 0;
    w->capacity = (unsigned)capacity;
    for (size_t i = 0; i < w->count; i++)
        w->times[i] = *ring_at(old, i);
    free(old);
    sup->supervision->window = w;
}

bool intensity_add_restart(struct node *sup, msec_t now)
{
    size_t limit = (size_t)sup->config->intensity + 1;
    struct restart_window *w = sup->supervision->window;

    while (w && w->count > 0 && *ring_at(w, 0) < now - sup->config->period) {
        w->head = (w->head + 1) % w->capacity;
        w->count--;
    }
    if (!w || w->count == w->capacity)
        ring_grow(sup, limit);
    w = sup->supervision->window;
    if (!w)
        return sup->config->intensity > 0; /* no memory at all: only 0 gives up */
    if (w->count == w->capacity) {
        w->head = (w->head + 1) % w->capacity;
        w->count--;
    }
    *ring_at(w, w->count) = now;
    w->count++;
    return w->count <= (size_t)sup->config->intensity;
}

void intensity_reset(struct node *sup)
{
    if (sup->supervision->window)
        sup->supervision->window->count = 0;
}

size_t intensity_count(const struct node *sup)
{
    return sup->supervision && sup->supervision->window ? sup->supervision->window->count : 0;
}

msec_t intensity_time(const struct node *sup, size_t i)
{
    const struct restart_window *w = sup->supervision->window;
    return w->times[(w->head + i) % w->capacity];
}

msec_t *intensity_restore(struct node *sup, size_t n)
{
    free(sup->supervision->window);
    struct restart_window *w = malloc(sizeof(*w) + n * sizeof(w->times[0]));
    sup->supervision->window = w;
    if (!w)
        return NULL;
    w->head = 0;
    w->count = w->capacity = (unsigned)n;
    return w->times;
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
