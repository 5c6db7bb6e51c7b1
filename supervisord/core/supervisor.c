/*
 * supervisor.c: OTP's supervisor behaviour over a tree of nodes.
 *
 * See core.h for the theory of operation. In short: events are queued and
 * drained by core_run(); a supervisor's work is a set of pending_stop /
 * pending_start flags on its children, carried out one child at a time by
 * supervisor_advance(), which counts keep cheap when a supervisor has
 * thousands of children; a supervisor that finishes starting or ending
 * tells its parent through the queue, never by calling into it, so no
 * handler runs inside another supervisor's step.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

enum core_event_kind {
    EVENT_READY,
    EVENT_EXITED,
    EVENT_DEADLINE,
    EVENT_START_TREE,
    EVENT_SHUTDOWN,
    EVENT_STOP,
    EVENT_START,
    EVENT_RESTART,
    EVENT_WATCHDOG,
    EVENT_EXTEND,
    EVENT_STOPPING_NOTIFIED,
    EVENT_WATCHDOG_TRIGGER,
    EVENT_WATCHDOG_SET,
    EVENT_CHILD_SETTLED, /* internal: a supervisor became ready or stopped */
    EVENT_CHILD_ENDED,   /* internal: a supervisor ended by itself */
    EVENT_KIND_MAX
};

struct core_event {
    enum core_event_kind kind;
    struct node *node;
    struct exit_status status;
    msec_t extra;
};

static void supervisor_advance(struct core *core, struct node *sup);
static void begin_start(struct core *core, struct node *node);
static void begin_stop(struct core *core, struct node *node);

/* ---- the event queue ---- */

static void post(struct core *core, struct core_event event)
{
    if (core->queue_count == core->queue_capacity) {
        size_t capacity = core->queue_capacity ? core->queue_capacity * 2 : 64;
        struct core_event *grown = malloc(capacity * sizeof(*grown));
        if (!grown)
            abort(); /* the queue is tiny; without it the tree cannot be run */
        for (size_t i = 0; i < core->queue_count; i++)
            grown[i] = core->queue[(core->queue_head + i) % core->queue_capacity];
        free(core->queue);
        core->queue = grown;
        core->queue_capacity = capacity;
        core->queue_head = 0;
    }
    core->queue[(core->queue_head + core->queue_count) % core->queue_capacity] = event;
    core->queue_count++;
}

static void post_kind(struct core *core, enum core_event_kind kind, struct node *node)
{
    post(core, (struct core_event){.kind = kind, .node = node});
}

void core_init(struct core *core, struct node *root, const struct core_ops *ops, void *ctx)
{
    memset(core, 0, sizeof(*core));
    core->root = root;
    core->ops = ops;
    core->ctx = ctx;
}

void core_free(struct core *core)
{
    free(core->queue);
    core->queue = NULL;
    core->queue_count = core->queue_capacity = 0;
}

void core_post_ready(struct core *core, struct node *service)
{
    post_kind(core, EVENT_READY, service);
}

void core_post_exited(struct core *core, struct node *service, struct exit_status status)
{
    post(core, (struct core_event){.kind = EVENT_EXITED, .node = service, .status = status});
}

void core_post_deadline(struct core *core, struct node *node)
{
    post_kind(core, EVENT_DEADLINE, node);
}

void core_start_tree(struct core *core)
{
    post_kind(core, EVENT_START_TREE, core->root);
}

void core_shutdown(struct core *core)
{
    post_kind(core, EVENT_SHUTDOWN, core->root);
}

void core_stop_node(struct core *core, struct node *node)
{
    post_kind(core, EVENT_STOP, node);
}

void core_start_node(struct core *core, struct node *node)
{
    post_kind(core, EVENT_START, node);
}

void core_restart_node(struct core *core, struct node *node)
{
    post_kind(core, EVENT_RESTART, node);
}

void core_watchdog_ping(struct core *core, struct node *service)
{
    post_kind(core, EVENT_WATCHDOG, service);
}

void core_extend_timeout(struct core *core, struct node *service, msec_t extra)
{
    post(core, (struct core_event){.kind = EVENT_EXTEND, .node = service, .extra = extra});
}

void core_stopping_notified(struct core *core, struct node *service)
{
    post_kind(core, EVENT_STOPPING_NOTIFIED, service);
}

void core_watchdog_set(struct core *core, struct node *service, msec_t timeout)
{
    post(core, (struct core_event){.kind = EVENT_WATCHDOG_SET, .node = service, .extra = timeout});
}

void core_watchdog_trigger(struct core *core, struct node *service)
{
    post_kind(core, EVENT_WATCHDOG_TRIGGER, service);
}

/* ---- small helpers ---- */

static bool is_active(const struct node *node)
{
    return node->state == NODE_STARTING || node->state == NODE_RUNNING ||
           node->state == NODE_STOPPING;
}

static bool is_busy(const struct node *node)
{
    return node->state == NODE_STARTING || node->state == NODE_STOPPING;
}

/* The flags go through these, which keep the parent's counts. */
static void flag_start(struct node *node, bool on)
{
    if (node->pending_start == on)
        return;
    node->pending_start = on;
    struct supervision *sv = node->parent ? node->parent->supervision : NULL;
    if (!sv)
        return;
    if (!on) {
        sv->to_start--;
        return;
    }
    if (sv->to_start++ == 0 || node->position < sv->start_from)
        sv->start_from = node->position;
}

static void flag_stop(struct node *node, bool on)
{
    if (node->pending_stop == on)
        return;
    node->pending_stop = on;
    struct supervision *sv = node->parent ? node->parent->supervision : NULL;
    if (sv) {
        if (on)
            sv->to_stop++;
        else
            sv->to_stop--;
    }
}

static void set_state(struct core *core, struct node *node, enum node_state state)
{
    enum node_state from = node->state;
    if (from == state)
        return;
    bool was_busy = is_busy(node);
    node->state = state;
    if (node->parent && was_busy != is_busy(node)) {
        if (was_busy)
            node->parent->supervision->busy--;
        else
            node->parent->supervision->busy++;
    }
    node->since = core->now;
    core->ops->transition(core->ctx, node, from);
}

static void set_deadline(struct core *core, struct node *node, msec_t when)
{
    node->deadline = when;
    core->ops->set_deadline(core->ctx, node, when);
}

/* Whether OTP would restart a child that ended with this class. */
static bool restart_wanted(enum restart_type restart, enum exit_class class)
{
    switch (restart) {
    case RESTART_PERMANENT:
        return true;
    case RESTART_TRANSIENT:
        return class == EXIT_ABNORMAL;
    default:
        return false;
    }
}

/* ---- starting and stopping one node ---- */

static void start_service(struct core *core, struct node *svc)
{
    svc->stop_reason = STOP_NONE;
    svc->stopping_notified = false;
    svc->watchdog = svc->config->watchdog; /* WATCHDOG_USEC= lasts one instance */
    set_state(core, svc, NODE_STARTING);
    int pid = core->ops->spawn(core->ctx, svc);
    if (pid <= 0) {
        /* Judged like any failed start, from the queue, so that it never
         * runs inside the parent's own step. */
        svc->pid = 0;
        core_post_exited(core, svc, (struct exit_status){.known = false});
        return;
    }
    svc->pid = pid;
    if (svc->config->type == SERVICE_SIMPLE) {
        set_state(core, svc, NODE_RUNNING);
        if (svc->watchdog > 0)
            set_deadline(core, svc, core->now + svc->watchdog);
    } else if (svc->config->start_timeout != DURATION_INFINITY) {
        set_deadline(core, svc, core->now + svc->config->start_timeout);
    }
}

static void start_supervisor(struct core *core, struct node *sup, bool by_operator)
{
    /* A (re)started supervisor is a new OTP process: empty restart history. */
    intensity_reset(sup);
    sup->giving_up = sup->auto_ending = false;
    sup->end_code = 0;
    set_state(core, sup, NODE_STARTING);
    for (size_t i = 0; i < sup->n_children; i++) {
        struct node *child = sup->children[i];
        flag_stop(child, false);
        flag_start(child, !child->held);
        /* Children started because the operator started their supervisor
         * are not restarts either. */
        child->operator_start = by_operator && child->pending_start;
    }
    supervisor_advance(core, sup);
}

static void begin_start(struct core *core, struct node *node)
{
    bool by_operator = node->operator_start;
    if (node->started_once && !by_operator)
        node->restarts++;
    node->started_once = true;
    node->operator_start = false;
    node->starts++;
    if (node->kind == NODE_SERVICE)
        start_service(core, node);
    else
        start_supervisor(core, node, by_operator);
}

/* Send the stop signal (or SIGKILL at once) and arm the Shutdown timer. */
static void signal_service(struct core *core, struct node *svc, int sig)
{
    set_state(core, svc, NODE_STOPPING);
    if (svc->pid <= 0) {
        set_deadline(core, svc, 0); /* a failed spawn: its exit is already queued */
        return;
    }
    if (svc->config->shutdown == SHUTDOWN_BRUTAL_KILL) {
        core->ops->kill_all(core->ctx, svc);
        set_deadline(core, svc, 0);
        return;
    }
    core->ops->signal(core->ctx, svc, sig);
    if (svc->config->shutdown == DURATION_INFINITY)
        set_deadline(core, svc, 0);
    else
        set_deadline(core, svc, core->now + svc->config->shutdown);
}

static void stop_supervisor(struct core *core, struct node *sup)
{
    set_state(core, sup, NODE_STOPPING);
    for (size_t i = 0; i < sup->n_children; i++) {
        struct node *child = sup->children[i];
        flag_start(child, false);
        flag_stop(child, is_active(child));
    }
    supervisor_advance(core, sup);
}

static void begin_stop(struct core *core, struct node *node)
{
    if (node->kind == NODE_SERVICE) {
        if (node->stop_reason == STOP_NONE)
            node->stop_reason = STOP_ORDERED;
        signal_service(core, node, node->config->kill_signal);
    } else {
        stop_supervisor(core, node);
    }
}

/* ---- a supervisor's step ---- */

/* The supervisor has nothing left to do: it is ready, or it has ended. */
static void supervisor_settle(struct core *core, struct node *sup)
{
    if (sup->state == NODE_STARTING) {
        set_state(core, sup, NODE_RUNNING);
        post_kind(core, EVENT_CHILD_SETTLED, sup);
        return;
    }
    if (sup->state != NODE_STOPPING)
        return;
    if (sup->giving_up || sup->auto_ending) {
        set_state(core, sup, sup->giving_up ? NODE_FAILED : NODE_DONE);
        post_kind(core, EVENT_CHILD_ENDED, sup);
        return;
    }
    set_state(core, sup, NODE_STOPPED);
    post_kind(core, EVENT_CHILD_SETTLED, sup);
}

/* One supervisor step: stop flagged children last to first, then start
 * flagged children first to last, one at a time. Returns when a child is
 * in flight; the event that settles it calls us again. */
static void supervisor_advance(struct core *core, struct node *sup)
{
    if (!is_active(sup))
        return;
    struct supervision *sv = sup->supervision;
again:
    /* A child in flight, and none flagged to stop (the one case that acts
     * on a child in flight): wait for it. */
    if (sv->busy > 0 && sv->to_stop == 0)
        return;
    for (size_t i = 0; sv->busy > 0 && i < sup->n_children; i++) {
        struct node *child = sup->children[i];
        if (!is_busy(child))
            continue;
        /* The one child in flight is still starting but must stop (a
         * shutdown or a group restart): it was started last, so stopping
         * it first keeps the reverse order, and nobody waits out its
         * StartTimeout. */
        if (child->state == NODE_STARTING && child->pending_stop) {
            flag_stop(child, false);
            begin_stop(core, child);
        }
        if (is_busy(child))
            return;
        goto again;
    }
    for (size_t i = sup->n_children; sv->to_stop > 0 && i-- > 0;) {
        struct node *child = sup->children[i];
        if (!child->pending_stop)
            continue;
        flag_stop(child, false);
        if (child->state != NODE_RUNNING)
            continue;
        begin_stop(core, child);
        goto again;
    }
    for (size_t i = sv->start_from; sv->to_start > 0 && i < sup->n_children; i++) {
        struct node *child = sup->children[i];
        if (!child->pending_start)
            continue;
        flag_start(child, false);
        /* Nothing starts during a shutdown, not even in a subtree the
         * reverse-order stop has not reached yet. */
        if (sup->state == NODE_STOPPING || core->shutting_down || child->held || is_active(child))
            continue;
        begin_start(core, child);
        goto again;
    }
    supervisor_settle(core, sup);
}

/* ---- the counts ---- */

/* Fills the counts of `ret`, not its window. */
static void count_children(const struct node *sup, struct supervision *ret)
{
    ret->busy = ret->to_start = ret->to_stop = 0;
    ret->start_from = 0;
    for (size_t i = 0; i < sup->n_children; i++) {
        const struct node *child = sup->children[i];
        ret->busy += is_busy(child);
        ret->to_stop += child->pending_stop;
        if (child->pending_start && ret->to_start++ == 0)
            ret->start_from = (unsigned)i;
    }
}

void core_recount(struct node *root)
{
    if (!root || !root->supervision)
        return;
    count_children(root, root->supervision);
    for (size_t i = 0; i < root->n_children; i++)
        core_recount(root->children[i]);
}

bool core_counts_consistent(const struct node *root)
{
    if (!root || !root->supervision)
        return true;
    struct supervision counts;
    count_children(root, &counts);
    const struct supervision *sv = root->supervision;
    if (counts.busy != sv->busy || counts.to_start != sv->to_start ||
        counts.to_stop != sv->to_stop ||
        (counts.to_start > 0 && counts.start_from < sv->start_from))
        return false;
    for (size_t i = 0; i < root->n_children; i++)
        if (!core_counts_consistent(root->children[i]))
            return false;
    return true;
}

/* ---- failures, strategies, intensity ---- */

static void apply_strategy(struct node *sup, struct node *failed)
{
    size_t from;
    switch (sup->config->strategy) {
    case STRATEGY_ONE_FOR_ALL:
        from = 0;
        break;
    case STRATEGY_REST_FOR_ONE:
        from = failed->position;
        break;
    default:
        flag_start(failed, true);
        return;
    }
    for (size_t i = from; i < sup->n_children; i++) {
        struct node *child = sup->children[i];
        if (child != failed && is_active(child))
            flag_stop(child, true);
        /* As in OTP, a temporary sibling stopped by a group restart is
         * not started again. */
        if (child == failed || (!child->held && child->config->restart != RESTART_TEMPORARY))
            flag_start(child, true);
    }
}

static int end_code_of(const struct node *node)
{
    return node->kind == NODE_SUPERVISOR ? node->end_code : exit_status_code(node->last_exit);
}

static bool significant_alive(const struct node *sup)
{
    for (size_t i = 0; i < sup->n_children; i++) {
        const struct node *child = sup->children[i];
        if (child->config->significant && (is_active(child) || child->pending_start))
            return true;
    }
    return false;
}

/* A significant child ended by itself and will not be restarted. */
static void check_auto_shutdown(struct core *core, struct node *sup, struct node *child)
{
    if (sup->config->auto_shutdown == AUTO_SHUTDOWN_NEVER)
        return;
    if (sup->config->auto_shutdown == AUTO_SHUTDOWN_ALL_SIGNIFICANT && significant_alive(sup))
        return;
    sup->auto_ending = true;
    sup->end_code = end_code_of(child);
    stop_supervisor(core, sup);
}

static void give_up(struct core *core, struct node *sup)
{
    sup->giving_up = true;
    sup->end_code = 1;
    stop_supervisor(core, sup);
}

/* `child` ended by itself (or failed to start) with `class`; its state is
 * already FAILED, DONE or STOPPED. The parent reacts as OTP's would. */
static void child_ended(struct core *core, struct node *child, enum exit_class class)
{
    struct node *sup = child->parent;
    if (!sup) {
        /* The root itself ended: gave up, or AutoShutdown. */
        if (!core->root_ended) {
            core->root_ended = true;
            core->ops->root_ended(core->ctx, end_code_of(child));
        }
        return;
    }
    if (core->shutting_down || (sup->state != NODE_STARTING && sup->state != NODE_RUNNING)) {
        supervisor_advance(core, sup); /* stopping anyway: just carry on */
        return;
    }
    if (child->pending_stop) {
        /* The supervisor had already decided to stop this child (a group
         * restart, an operator stop) and it died first. As OTP's shutdown/2
         * consumes the 'EXIT' of a child it terminates, this is that stop:
         * no second restart counted, no AutoShutdown; pending_start still
         * says whether it comes back. */
        flag_stop(child, false);
        supervisor_advance(core, sup);
        return;
    }
    if (!restart_wanted(child->config->restart, class)) {
        if (child->config->significant)
            check_auto_shutdown(core, sup, child);
        supervisor_advance(core, sup);
        return;
    }
    if (!intensity_add_restart(sup, core->now)) {
        give_up(core, sup);
        return;
    }
    apply_strategy(sup, child);
    supervisor_advance(core, sup);
}

/* ---- event handlers ---- */

static void on_ready(struct core *core, struct node *svc)
{
    if (svc->state != NODE_STARTING)
        return;
    set_state(core, svc, NODE_RUNNING);
    set_deadline(core, svc, svc->watchdog > 0 ? core->now + svc->watchdog : 0);
    supervisor_advance(core, svc->parent);
}

static void on_exited(struct core *core, struct node *svc, struct exit_status status)
{
    enum node_state from = svc->state;
    if (!is_active(svc))
        return;
    bool had_process = svc->pid > 0;
    svc->pid = 0;
    svc->last_exit = status;
    set_deadline(core, svc, 0);
    if (had_process)
        core->ops->kill_all(core->ctx, svc); /* no descendant survives its service */

    enum stop_reason reason = svc->stop_reason;
    svc->stop_reason = STOP_NONE;
    if (from == NODE_STOPPING && reason == STOP_ORDERED) {
        set_state(core, svc, NODE_STOPPED);
        supervisor_advance(core, svc->parent);
        return;
    }
    if (from == NODE_STARTING && svc->config->type == SERVICE_ONESHOT && status.known &&
        !status.signaled && status.value == 0) {
        set_state(core, svc, NODE_DONE); /* a oneshot is ready when it exits 0 */
        /* ... and it has also ended by itself, not to be run again: for a
         * significant one that is AutoShutdown's cue. */
        struct node *sup = svc->parent;
        if (svc->config->significant && !core->shutting_down &&
            (sup->state == NODE_STARTING || sup->state == NODE_RUNNING))
            check_auto_shutdown(core, sup, svc);
        supervisor_advance(core, sup);
        return;
    }
    enum exit_class class = EXIT_ABNORMAL; /* failed start, start timeout, watchdog */
    if (from == NODE_RUNNING || (from == NODE_STOPPING && reason == STOP_NONE))
        class = exit_classify(status, svc->config->kill_signal);
    set_state(core, svc,
              class == EXIT_ABNORMAL ? NODE_FAILED
              : class == EXIT_NORMAL ? NODE_DONE
                                     : NODE_STOPPED);
    child_ended(core, svc, class);
}

static void on_deadline(struct core *core, struct node *node)
{
    if (node->deadline == 0 || core->now < node->deadline)
        return; /* stale or moved: set_deadline re-armed the timer */
    set_deadline(core, node, 0);
    if (node->kind != NODE_SERVICE)
        return;
    switch (node->state) {
    case NODE_STARTING:
        node->stop_reason = STOP_START_TIMEOUT;
        signal_service(core, node, node->config->kill_signal);
        break;
    case NODE_RUNNING:
        /* As systemd's WatchdogSignal= default: SIGABRT, so a core can tell why. */
        node->stop_reason = STOP_WATCHDOG;
        signal_service(core, node, SIGABRT);
        break;
    case NODE_STOPPING:
        core->ops->kill_all(core->ctx, node);
        break;
    default:
        break;
    }
}

static void on_start_tree(struct core *core)
{
    struct node *root = core->root;
    if (core->shutting_down || is_active(root))
        return;
    begin_start(core, root);
}

static void on_shutdown(struct core *core)
{
    struct node *root = core->root;
    if (core->shutting_down)
        return;
    core->shutting_down = true;
    if (!is_active(root)) {
        if (!core->root_ended) {
            core->root_ended = true;
            core->ops->root_ended(core->ctx, 0);
        }
        return;
    }
    if (root->state != NODE_STOPPING)
        stop_supervisor(core, root);
}

static void on_stop(struct core *core, struct node *node)
{
    if (!node->parent) {
        on_shutdown(core);
        return;
    }
    node->held = true;
    flag_start(node, false);
    flag_stop(node, is_active(node));
    supervisor_advance(core, node->parent);
}

static void on_start(struct core *core, struct node *node)
{
    if (!node->parent) {
        on_start_tree(core);
        return;
    }
    node->held = false;
    if (node->state == NODE_STARTING || node->state == NODE_RUNNING)
        return;
    /* A node still stopping starts again once it has stopped. */
    flag_start(node, true);
    node->operator_start = true;
    if (!is_active(node->parent))
        on_start(core, node->parent); /* starting it starts this child too */
    else
        supervisor_advance(core, node->parent);
}

static void on_restart(struct core *core, struct node *node)
{
    struct node *sup = node->parent;
    if (!sup) {
        /* The root cannot stop without ending arbord: restarting it means
         * restarting all its children, as one operator action. */
        for (size_t i = 0; i < node->n_children; i++) {
            struct node *child = node->children[i];
            flag_stop(child, is_active(child));
            flag_start(child, !child->held);
            child->operator_start = child->pending_start;
        }
        supervisor_advance(core, node);
        return;
    }
    node->held = false;
    flag_stop(node, is_active(node));
    flag_start(node, true);
    node->operator_start = true;
    if (!is_active(sup))
        on_start(core, sup);
    else
        supervisor_advance(core, sup);
}

static void on_watchdog(struct core *core, struct node *svc)
{
    if (svc->state == NODE_RUNNING && svc->watchdog > 0)
        set_deadline(core, svc, core->now + svc->watchdog);
}

static void on_extend(struct core *core, struct node *svc, msec_t extra)
{
    msec_t when = core->now + extra;
    if (svc->deadline == 0 || svc->deadline >= when)
        return;
    if (svc->state == NODE_STARTING || svc->state == NODE_STOPPING ||
        (svc->state == NODE_RUNNING && svc->watchdog > 0))
        set_deadline(core, svc, when);
}

static void on_child_ended(struct core *core, struct node *sup)
{
    /* A supervisor that gave up or shut itself down ends with reason
     * shutdown, even before it was ready (SPEC: its parent treats it by
     * its restart type, so a transient one is not restarted). */
    child_ended(core, sup, EXIT_SHUTDOWN);
}

static void dispatch(struct core *core, const struct core_event *event)
{
    struct node *node = event->node;
    switch (event->kind) {
    case EVENT_READY:
        on_ready(core, node);
        break;
    case EVENT_EXITED:
        on_exited(core, node, event->status);
        break;
    case EVENT_DEADLINE:
        on_deadline(core, node);
        break;
    case EVENT_START_TREE:
        on_start_tree(core);
        break;
    case EVENT_SHUTDOWN:
        on_shutdown(core);
        break;
    case EVENT_STOP:
        on_stop(core, node);
        break;
    case EVENT_START:
        on_start(core, node);
        break;
    case EVENT_RESTART:
        on_restart(core, node);
        break;
    case EVENT_WATCHDOG:
        on_watchdog(core, node);
        break;
    case EVENT_EXTEND:
        on_extend(core, node, event->extra);
        break;
    case EVENT_WATCHDOG_SET:
        /* As systemd: a new timeout also counts as a ping; 0 turns it off. */
        node->watchdog = event->extra;
        if (node->state == NODE_RUNNING)
            set_deadline(core, node, node->watchdog > 0 ? core->now + node->watchdog : 0);
        break;
    case EVENT_WATCHDOG_TRIGGER:
        if (node->state == NODE_RUNNING) {
            node->stop_reason = STOP_WATCHDOG;
            signal_service(core, node, SIGABRT);
        }
        break;
    case EVENT_STOPPING_NOTIFIED:
        node->stopping_notified = true;
        break;
    case EVENT_CHILD_SETTLED:
        if (node->parent)
            supervisor_advance(core, node->parent);
        else if (node->state == NODE_STOPPED)
            child_ended(core, node, EXIT_SHUTDOWN);
        break;
    case EVENT_CHILD_ENDED:
        on_child_ended(core, node);
        break;
    default:
        break;
    }
}

void core_run(struct core *core, msec_t now)
{
    core->now = now;
    while (core->queue_count > 0) {
        struct core_event event = core->queue[core->queue_head];
        core->queue_head = (core->queue_head + 1) % core->queue_capacity;
        core->queue_count--;
        dispatch(core, &event);
    }
}
