/*
 * reload.c: see reload.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "daemon.h"
#include "os/log.h"
#include "reload.h"

struct reload {
    struct unit_set *units; /* the new set, until it replaces the old */
    struct node **stopping; /* nodes stopped in step 1, until inactive */
    size_t n_stopping;
    char **restart; /* names of changed services to start again in step 3 */
    size_t n_restart;
    unsigned added, removed, changed;
};

static bool is_active(const struct node *node)
{
    return node->state == NODE_STARTING || node->state == NODE_RUNNING ||
           node->state == NODE_STOPPING;
}

bool reload_in_progress(const struct daemon *d)
{
    return d->reload != NULL;
}

const char *reload_summary(const struct daemon *d)
{
    return d->reload_summary;
}

/* ---- step 1: what must stop ---- */

/* The name of `name`'s supervisor in the new set ("root" for an adopted
 * unit under an implicit root), or NULL for the root itself. */
static const char *new_parent_of(const struct unit_set *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct unit *u = set->units[i];
        for (size_t j = 0; u->kind == NODE_SUPERVISOR && j < u->extra->n_children; j++)
            if (strcmp(u->extra->children[j], name) == 0)
                return u->name;
    }
    return strcmp(name, "root") == 0 ? NULL : "root";
}

static bool survives(const struct unit_set *set, const struct node *node)
{
    if (!node->parent)
        return true; /* the root is always "root", a supervisor */
    const struct unit *u = unit_set_find(set, node->name);
    return u && u->kind == node->kind;
}

static bool push_node(struct reload *r, struct node *node)
{
    struct node **grown = realloc(r->stopping, (r->n_stopping + 1) * sizeof(*grown));
    if (!grown)
        return false;
    r->stopping = grown;
    r->stopping[r->n_stopping++] = node;
    return true;
}

static bool push_restart(struct reload *r, const char *name)
{
    char **grown = realloc(r->restart, (r->n_restart + 1) * sizeof(*grown));
    if (!grown)
        return false;
    r->restart = grown;
    if (!(r->restart[r->n_restart] = strdup(name)))
        return false;
    r->n_restart++;
    return true;
}

/* Walk the old tree: stop the top of each removed branch, and each service
 * that changed, or whose old supervisor is going away. */
static bool plan(struct daemon *d, struct reload *r, struct node *node, bool parent_removed)
{
    bool removed = !survives(r->units, node);
    if (removed) {
        r->removed++;
        if (!parent_removed && is_active(node) && !push_node(r, node))
            return false;
    } else if (node->parent) {
        const struct unit *old = unit_set_find(d->units, node->name);
        const struct unit *now = unit_set_find(r->units, node->name);
        const char *new_parent = new_parent_of(r->units, node->name);
        bool moved_out = parent_removed && new_parent;
        bool changed = node->kind == NODE_SERVICE && old && old->content_hash != now->content_hash;
        if (changed || moved_out) {
            r->changed++;
            if (!node->held && !push_restart(r, node->name))
                return false;
            if (!parent_removed && is_active(node) && !push_node(r, node))
                return false;
        }
    }
    for (size_t i = 0; i < node->n_children; i++)
        if (!plan(d, r, node->children[i], removed || parent_removed))
            return false;
    return true;
}

static void reload_free(struct reload *r)
{
    if (!r)
        return;
    if (r->units) {
        unit_set_free(r->units);
        free(r->units);
    }
    for (size_t i = 0; i < r->n_restart; i++)
        free(r->restart[i]);
    free(r->restart);
    free(r->stopping);
    free(r);
}

int reload_request(struct daemon *d, struct diagnostics *diag)
{
    if (d->reload)
        return -EBUSY;
    if (d->upgrades) {
        diag_add(diag, NULL, 0, "an upgrade is under way; reload after it");
        return -EBUSY;
    }
    if (d->core.shutting_down)
        return -ESHUTDOWN;
    struct reload *r = calloc(1, sizeof(*r));
    if (!r || !(r->units = calloc(1, sizeof(*r->units)))) {
        free(r);
        return -ENOMEM;
    }
    if (unit_load_dir(d->options->unit_dir, r->units, diag) < 0) {
        log_msg(LOG_ERR, "reload: %zu problem%s in %s; nothing changed", diag->count,
                diag->count == 1 ? "" : "s", d->options->unit_dir);
        for (size_t i = 0; i < diag->count; i++)
            log_msg(LOG_ERR, "reload: %s", diag->messages[i]);
        reload_free(r);
        return -EINVAL;
    }
    for (size_t i = 0; i < r->units->count; i++)
        if (!node_find(d->root, r->units->units[i]->name))
            r->added++;
    if (!plan(d, r, d->root, false)) {
        reload_free(r);
        return -ENOMEM;
    }
    log_msg(LOG_INFO, "reload: %u added, %u removed, %u changed; stopping %zu first", r->added,
            r->removed, r->changed, r->n_stopping);
    d->reload = r;
    for (size_t i = 0; i < r->n_stopping; i++)
        core_stop_node(&d->core, r->stopping[i]);
    run_core(d); /* which calls reload_continue() */
    return 0;
}

/* ---- step 2: restructure ---- */

static int compare_nodes(const void *a, const void *b)
{
    return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

static void collect(struct node *node, struct node ***list, size_t *n)
{
    (*list)[(*n)++] = node;
    for (size_t i = 0; i < node->n_children; i++)
        collect(node->children[i], list, n);
}

static size_t count_nodes(const struct node *node)
{
    size_t n = 1;
    for (size_t i = 0; i < node->n_children; i++)
        n += count_nodes(node->children[i]);
    return n;
}

static struct node *find_old(struct node **old, size_t n, const char *name)
{
    struct node key = {.name = (char *)name}, *keyp = &key;
    struct node **found = bsearch(&keyp, old, n, sizeof(*old), compare_nodes);
    return found ? *found : NULL;
}

/* Make `real` look like `shape` (a freshly built node of the new tree):
 * its config, and children mapped onto surviving or new nodes. Returns
 * false on ENOMEM. `used` marks old nodes that survive. */
static bool adopt(struct daemon *d, struct node *shape, struct node *real, struct node **old,
                  size_t n_old, bool *used, struct node ***fresh, size_t *n_fresh)
{
    real->config = shape->config;
    free(real->children);
    real->children = NULL;
    real->n_children = 0;
    for (size_t i = 0; i < shape->n_children; i++) {
        struct node *s = shape->children[i];
        struct node *child = find_old(old, n_old, s->name);
        if (child && child->kind == s->kind && child->parent) {
            used[child->position] = true; /* position: index in `old`, see below */
        } else {
            child = node_new(s->name, s->kind, s->config);
            if (!child)
                return false;
            (*fresh)[(*n_fresh)++] = child;
        }
        if (node_add_child(real, child) < 0)
            return false;
        if (!adopt(d, s, child, old, n_old, used, fresh, n_fresh))
            return false;
    }
    return true;
}

static void set_positions(struct node *node)
{
    for (size_t i = 0; i < node->n_children; i++) {
        node->children[i]->parent = node;
        node->children[i]->position = i;
        set_positions(node->children[i]);
    }
}

static void start_marked(struct daemon *d, struct node *node)
{
    if (node->pending_start) {
        node->pending_start = false;
        if (node->parent && is_active(node->parent))
            core_start_node(&d->core, node);
    }
    for (size_t i = 0; i < node->n_children; i++)
        start_marked(d, node->children[i]);
}

static bool restructure(struct daemon *d, struct reload *r)
{
    struct node *shape = unit_build_tree(r->units);
    size_t n_old = count_nodes(d->root), n_old_filled = 0;
    struct node **old = malloc(n_old * sizeof(*old));
    bool *used = calloc(n_old, sizeof(*used));
    struct node **fresh = malloc((r->units->count + 1) * sizeof(*fresh));
    size_t n_fresh = 0;
    bool ok = shape && old && used && fresh;
    if (ok) {
        collect(d->root, &old, &n_old_filled);
        qsort(old, n_old, sizeof(*old), compare_nodes);
        /* Until set_positions() runs, `position` indexes `old`, so that
         * adopt() can mark survivors in O(1). */
        for (size_t i = 0; i < n_old; i++)
            old[i]->position = i;
        used[d->root->position] = true;
        ok = adopt(d, shape, d->root, old, n_old, used, &fresh, &n_fresh);
    }
    if (!ok) {
        /* Only an allocation can fail here; the tree may be half-built.
         * There is no sane way on: stop the daemon rather than guess. */
        log_msg(LOG_ERR, "reload: out of memory while rebuilding the tree; shutting down");
        node_free_tree(shape);
        free(old);
        free(used);
        free(fresh);
        return false;
    }
    set_positions(d->root);
    d->root->parent = NULL;

    /* Removed nodes: forget them everywhere, then free them. */
    for (size_t i = 0; i < n_old; i++) {
        if (used[i])
            continue;
        control_forget(d, old[i]);
        if (old[i]->kind == NODE_SERVICE && old[i]->os)
            service_teardown(d, old[i]->os);
        node_free(old[i]); /* not its children: each is re-linked or freed on its own */
    }
    /* The new set replaces the old; services point at their new units. */
    struct unit_set *previous = d->units;
    d->units = r->units;
    r->units = previous;
    for (size_t i = 0; i < n_fresh; i++)
        if (fresh[i]->kind == NODE_SERVICE &&
            service_setup(d, fresh[i], unit_set_find(d->units, fresh[i]->name)) < 0)
            log_unit(LOG_ERR, fresh[i]->name, "reload: cannot set the service up");
    if (collect_services(d) < 0)
        log_msg(LOG_ERR, "reload: out of memory listing services");
    for (size_t i = 0; i < d->n_services; i++) {
        d->services[i]->unit = unit_set_find(d->units, d->services[i]->node->name);
        service_refresh(d, d->services[i]);
    }

    /* Step 3: new units and changed services start in their place, in
     * tree order (each start is queued, so the first cannot overtake). */
    for (size_t i = 0; i < n_fresh; i++)
        fresh[i]->pending_start = true; /* marks, read and cleared just below */
    for (size_t i = 0; i < r->n_restart; i++) {
        struct node *node = node_find(d->root, r->restart[i]);
        if (node)
            node->pending_start = true;
    }
    start_marked(d, d->root);
    core_recount(d->root); /* children moved between supervisors */
    node_free_tree(shape);
    free(old);
    free(used);
    free(fresh);
    return true;
}

void reload_continue(struct daemon *d)
{
    struct reload *r = d->reload;
    if (!r)
        return;
    if (!d->core.shutting_down)
        for (size_t i = 0; i < r->n_stopping; i++)
            if (is_active(r->stopping[i]))
                return;
    d->reload = NULL;
    if (d->core.shutting_down) {
        snprintf(d->reload_summary, sizeof(d->reload_summary), "reload abandoned: shutting down");
    } else if (restructure(d, r)) {
        snprintf(d->reload_summary, sizeof(d->reload_summary),
                 "reloaded: %u added, %u removed, %u changed", r->added, r->removed, r->changed);
        log_msg(LOG_INFO, "%s", d->reload_summary);
    } else {
        core_shutdown(&d->core);
    }
    reload_free(r);
    run_core(d);
    control_reload_settled(d);
}
