/*
 * test_core.c: the pure supervision core against OTP's rules.
 *
 * The core never touches the OS; here it runs against a fake one. The fake
 * spawn hands out increasing pids (or fails on request), signal and kill_all
 * are recorded, set_deadline is remembered per node, transitions and the
 * root's end are logged. Time is a fake clock: advance_time() fires every
 * armed deadline that falls due, in time order, at its exact time.
 *
 * What the OS saw is kept as one readable line per test step, e.g.
 *     "signal c TERM, signal b TERM, spawn a"
 * and expect_os() compares it and starts a new step. "kill X" is a kill_all
 * of a process that is still alive (the clean-up kill_all the core does
 * after every exit is counted separately, in proc->cleanups). "end N" is
 * root_ended(N).
 *
 * After every step the fake checks the invariants that hold whatever the
 * strategy: a service's process is alive exactly while its node is
 * starting, running or stopping; nothing is spawned while alive; nothing is
 * signalled that is not alive (so never pid 0); root_ended comes once.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

/* ------------------------------------------------------------------ */
/* The fake OS                                                          */
/* ------------------------------------------------------------------ */

#define MAX_PROCS 32

struct proc {
    struct node *node;
    int pid;            /* current (or last) pid */
    bool alive;         /* the main process exists */
    msec_t deadline;    /* as last armed through set_deadline, 0 = none */
    int spawn_failures; /* the next this-many spawns fail */
    int spawn_errno;
    unsigned spawns;   /* successful spawns */
    unsigned cleanups; /* kill_all after the main process had exited */
};

static struct {
    struct core core;
    struct node *root;
    msec_t now;
    int next_pid;
    struct proc procs[MAX_PROCS];
    size_t n_procs;
    char os[8192];
    char transitions[16384];
    int root_ended_calls;
    int root_status;
    /* Nodes point at their config (the unit's, in arbord): these are ours. */
    struct node_config configs[128];
    size_t n_configs;
} F;

/* A test changes a node's config in place: it owns the storage. */
#define CFG(node) ((struct node_config *)(node)->config)

static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len > 0)
        len += (size_t)snprintf(buf + len, size - len, ", ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
    if (strlen(buf) >= size - 1)
        fail_msg("log buffer overflow");
}

static struct proc *proc_of(struct node *node)
{
    for (size_t i = 0; i < F.n_procs; i++)
        if (F.procs[i].node == node)
            return &F.procs[i];
    if (F.n_procs == MAX_PROCS)
        fail_msg("too many nodes for the fake OS");
    struct proc *p = &F.procs[F.n_procs++];
    memset(p, 0, sizeof(*p));
    p->node = node;
    return p;
}

static const char *sig_name(int sig)
{
    const char *name = sigabbrev_np(sig);
    return name ? name : "?";
}

static int fake_spawn(void *ctx, struct node *svc)
{
    struct proc *p = proc_of(svc);
    if (svc->kind != NODE_SERVICE)
        fail_msg("spawn of supervisor %s", svc->name);
    if (svc->state != NODE_STARTING)
        fail_msg("spawn of %s in state %s", svc->name, node_state_name(svc->state));
    if (p->alive || svc->pid != 0)
        fail_msg("%s spawned twice (pid %d still alive)", svc->name, p->pid);
    if (p->spawn_failures > 0) {
        p->spawn_failures--;
        append(F.os, sizeof(F.os), "spawn %s failed", svc->name);
        return -p->spawn_errno;
    }
    p->pid = F.next_pid++;
    p->alive = true;
    p->spawns++;
    append(F.os, sizeof(F.os), "spawn %s", svc->name);
    return p->pid;
}

static void fake_signal(void *ctx, struct node *svc, int sig)
{
    struct proc *p = proc_of(svc);
    if (svc->pid <= 0)
        fail_msg("signal %s to %s with pid %d", sig_name(sig), svc->name, svc->pid);
    if (!p->alive || svc->pid != p->pid)
        fail_msg("signal %s to %s, which is not running", sig_name(sig), svc->name);
    append(F.os, sizeof(F.os), "signal %s %s", svc->name, sig_name(sig));
}

static void fake_kill_all(void *ctx, struct node *svc)
{
    struct proc *p = proc_of(svc);
    if (svc->kind != NODE_SERVICE)
        fail_msg("kill_all of supervisor %s", svc->name);
    if (p->alive) {
        if (svc->pid != p->pid)
            fail_msg("kill_all %s: core pid %d, real pid %d", svc->name, svc->pid, p->pid);
        append(F.os, sizeof(F.os), "kill %s", svc->name);
    } else {
        p->cleanups++;
    }
}

static void fake_set_deadline(void *ctx, struct node *node, msec_t when)
{
    if (when < 0 || (when > 0 && when < F.now))
        fail_msg("%s: deadline %lld armed in the past (now %lld)", node->name, (long long)when,
                 (long long)F.now);
    proc_of(node)->deadline = when;
}

static void fake_transition(void *ctx, struct node *node, enum node_state from)
{
    if (from == node->state)
        fail_msg("%s: transition to the same state %s", node->name, node_state_name(from));
    append(F.transitions, sizeof(F.transitions), "%s:%s->%s", node->name, node_state_name(from),
           node_state_name(node->state));
}

static void fake_root_ended(void *ctx, int status)
{
    F.root_ended_calls++;
    if (F.root_ended_calls > 1)
        fail_msg("root_ended called twice (%d, then %d)", F.root_status, status);
    F.root_status = status;
    append(F.os, sizeof(F.os), "end %d", status);
}

static const struct core_ops fake_ops = {
    .spawn = fake_spawn,
    .signal = fake_signal,
    .kill_all = fake_kill_all,
    .set_deadline = fake_set_deadline,
    .transition = fake_transition,
    .root_ended = fake_root_ended,
};

/* A service's process exists exactly while the core thinks it is active. */
static void check_invariants(void)
{
    /* The counts that let a supervisor skip its children match them. */
    if (!core_counts_consistent(F.root))
        fail_msg("a supervisor's counts of busy and flagged children are off");
    for (size_t i = 0; i < F.n_procs; i++) {
        struct proc *p = &F.procs[i];
        struct node *n = p->node;
        if (n->kind != NODE_SERVICE)
            continue;
        bool active =
            n->state == NODE_STARTING || n->state == NODE_RUNNING || n->state == NODE_STOPPING;
        if (p->alive && !active)
            fail_msg("%s (pid %d) is alive but the core says %s", n->name, p->pid,
                     node_state_name(n->state));
        if (!p->alive && active)
            fail_msg("%s is %s but has no process", n->name, node_state_name(n->state));
        if (p->alive && n->pid != p->pid)
            fail_msg("%s: core pid %d, real pid %d", n->name, n->pid, p->pid);
        if (!p->alive && n->pid != 0)
            fail_msg("%s: core keeps pid %d of a dead process", n->name, n->pid);
    }
}

/* ------------------------------------------------------------------ */
/* Trees                                                                */
/* ------------------------------------------------------------------ */

static struct node_config service_config(enum service_type type)
{
    return (struct node_config){
        .restart = RESTART_PERMANENT,
        .type = type,
        .kill_signal = SIGTERM,
        .shutdown = 5000,
        .start_timeout = 30000,
        .watchdog = 0,
    };
}

static struct node_config supervisor_config(enum strategy strategy)
{
    return (struct node_config){
        .restart = RESTART_PERMANENT,
        .strategy = strategy,
        .intensity = 5,
        .period = 10000,
        .auto_shutdown = AUTO_SHUTDOWN_NEVER,
        .kill_signal = SIGTERM,
        .shutdown = DURATION_INFINITY,
        .start_timeout = DURATION_INFINITY,
    };
}

static const struct node_config *keep_config(struct node_config config)
{
    assert_true(F.n_configs < sizeof(F.configs) / sizeof(F.configs[0]));
    F.configs[F.n_configs] = config;
    return &F.configs[F.n_configs++];
}

static struct node *attach(struct node *sup, struct node *node)
{
    assert_non_null(node);
    proc_of(node);
    if (sup)
        assert_int_equal(node_add_child(sup, node), 0);
    return node;
}

static struct node *make_root(enum strategy strategy)
{
    F.root =
        attach(NULL, node_new("root", NODE_SUPERVISOR, keep_config(supervisor_config(strategy))));
    core_init(&F.core, F.root, &fake_ops, NULL);
    return F.root;
}

static struct node *add_service(struct node *sup, const char *name, enum service_type type)
{
    return attach(sup, node_new(name, NODE_SERVICE, keep_config(service_config(type))));
}

static struct node *add_supervisor(struct node *sup, const char *name, enum strategy strategy)
{
    return attach(sup, node_new(name, NODE_SUPERVISOR, keep_config(supervisor_config(strategy))));
}

/* add_services(root, SERVICE_SIMPLE, "a", "b", NULL) */
static void add_services(struct node *sup, enum service_type type, ...)
{
    va_list ap;
    va_start(ap, type);
    for (const char *name; (name = va_arg(ap, const char *));)
        add_service(sup, name, type);
    va_end(ap);
}

static struct node *N(const char *name)
{
    struct node *node = node_find(F.root, name);
    if (!node)
        fail_msg("no node %s", name);
    return node;
}

static void set_restart(const char *name, enum restart_type restart)
{
    CFG(N(name))->restart = restart;
}

static void make_significant(const char *name, enum restart_type restart)
{
    CFG(N(name))->restart = restart;
    CFG(N(name))->significant = true;
}

/* ------------------------------------------------------------------ */
/* Driving the core                                                     */
/* ------------------------------------------------------------------ */

static void run(void)
{
    core_run(&F.core, F.now);
    check_invariants();
}

static void start_tree(void)
{
    core_start_tree(&F.core);
    run();
}

static void ready(const char *name)
{
    core_post_ready(&F.core, N(name));
    run();
}

static void exit_with(const char *name, struct exit_status status)
{
    struct node *node = N(name);
    struct proc *p = proc_of(node);
    if (!p->alive)
        fail_msg("test bug: %s is not running, it cannot exit", name);
    p->alive = false;
    core_post_exited(&F.core, node, status);
    run();
}

/* The main process exited with `code` (0 = normal). */
static void crash(const char *name, int code)
{
    exit_with(name, (struct exit_status){.known = true, .signaled = false, .value = code});
}

/* The main process was killed by `sig`. */
static void killed(const char *name, int sig)
{
    exit_with(name, (struct exit_status){.known = true, .signaled = true, .value = sig});
}

/* Move the fake clock, firing due deadlines at their own times, in order. */
static void advance_time(msec_t ms)
{
    msec_t target = F.now + ms;
    for (int guard = 0;; guard++) {
        if (guard > 1000)
            fail_msg("deadlines keep firing");
        struct proc *next = NULL;
        for (size_t i = 0; i < F.n_procs; i++) {
            struct proc *p = &F.procs[i];
            if (p->deadline > 0 && p->deadline <= target && (!next || p->deadline < next->deadline))
                next = p;
        }
        if (!next)
            break;
        if (next->deadline > F.now)
            F.now = next->deadline;
        core_post_deadline(&F.core, next->node);
        run();
    }
    F.now = target;
    run();
}

static void shutdown_tree(void)
{
    core_shutdown(&F.core);
    run();
}

static void stop(const char *name)
{
    core_stop_node(&F.core, N(name));
    run();
}

static void start(const char *name)
{
    core_start_node(&F.core, N(name));
    run();
}

static void restart(const char *name)
{
    core_restart_node(&F.core, N(name));
    run();
}

static void ping(const char *name)
{
    core_watchdog_ping(&F.core, N(name));
    run();
}

static void extend(const char *name, msec_t extra)
{
    core_extend_timeout(&F.core, N(name), extra);
    run();
}

static void watchdog_trigger(const char *name)
{
    core_watchdog_trigger(&F.core, N(name));
    run();
}

static void fail_spawn(const char *name, int times, int err)
{
    struct proc *p = proc_of(N(name));
    p->spawn_failures = times;
    p->spawn_errno = err;
}

/* ------------------------------------------------------------------ */
/* Assertions                                                           */
/* ------------------------------------------------------------------ */

/* What the OS saw since the last expect_os(); starts a new step. The
 * macros report the test's own line on failure. */
static void expect_os_at(const char *expected, const char *file, int line)
{
    _assert_string_equal(F.os, expected, file, line);
    F.os[0] = '\0';
}
#define expect_os(expected) expect_os_at((expected), __FILE__, __LINE__)

static void clear_os(void)
{
    F.os[0] = '\0';
}

static void clear_transitions(void)
{
    F.transitions[0] = '\0';
}

static void expect_state_at(const char *name, const char *state, const char *file, int line)
{
    _assert_string_equal(node_state_name(N(name)->state), state, file, line);
}
#define expect_state(name, state) expect_state_at((name), (state), __FILE__, __LINE__)

static msec_t deadline_of(const char *name)
{
    return proc_of(N(name))->deadline;
}

static unsigned restarts_of(const char *name)
{
    return N(name)->restarts;
}

static unsigned spawns_of(const char *name)
{
    return proc_of(N(name))->spawns;
}

static int pid_of(const char *name)
{
    return N(name)->pid;
}

static void expect_not_ended(void)
{
    assert_int_equal(F.root_ended_calls, 0);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    F.now = 1000000;
    F.next_pid = 100;
    return 0;
}

static int teardown(void **state)
{
    core_free(&F.core);
    node_free_tree(F.root);
    F.root = NULL;
    return 0;
}

/* ================================================================== */
/* Pure helpers                                                         */
/* ================================================================== */

static void test_exit_classify(void **state)
{
    struct exit_status code0 = {.known = true, .value = 0};
    struct exit_status code1 = {.known = true, .value = 1};
    struct exit_status term = {.known = true, .signaled = true, .value = SIGTERM};
    struct exit_status segv = {.known = true, .signaled = true, .value = SIGSEGV};
    struct exit_status unknown = {.known = false};

    assert_int_equal(exit_classify(code0, SIGTERM), EXIT_NORMAL);
    assert_int_equal(exit_classify(code1, SIGTERM), EXIT_ABNORMAL);
    assert_int_equal(exit_classify(term, SIGTERM), EXIT_SHUTDOWN);
    assert_int_equal(exit_classify(term, SIGINT), EXIT_ABNORMAL);
    assert_int_equal(exit_classify(segv, SIGTERM), EXIT_ABNORMAL);
    assert_int_equal(exit_classify(unknown, SIGTERM), EXIT_ABNORMAL);

    assert_int_equal(exit_status_code(code0), 0);
    assert_int_equal(exit_status_code(code1), 1);
    assert_int_equal(exit_status_code(segv), 128 + SIGSEGV);
}

/* OTP add_restart(): keep R >= Now - Period, add Now, give up above Intensity. */
static void test_intensity_window_is_inclusive(void **state)
{
    struct node_config config = supervisor_config(STRATEGY_ONE_FOR_ONE);
    config.intensity = 2;
    config.period = 1000;
    struct node *sup = node_new("sup", NODE_SUPERVISOR, &config);
    assert_non_null(sup);

    assert_true(intensity_add_restart(sup, 0));
    assert_true(intensity_add_restart(sup, 0));
    assert_false(intensity_add_restart(sup, 1000)); /* 0 is still inside [0, 1000] */
    node_free_tree(sup);

    sup = node_new("sup", NODE_SUPERVISOR, &config);
    assert_true(intensity_add_restart(sup, 0));
    assert_true(intensity_add_restart(sup, 500));
    assert_true(intensity_add_restart(sup, 1001)); /* 0 fell out of [1, 1001] */
    assert_false(intensity_add_restart(sup, 1001));
    node_free_tree(sup);

    config.intensity = 0;
    sup = node_new("sup", NODE_SUPERVISOR, &config);
    assert_false(intensity_add_restart(sup, 0));
    node_free_tree(sup);
}

/* ================================================================== */
/* Start order                                                          */
/* ================================================================== */

static void test_start_exec_children_one_at_a_time(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_EXEC, "a", "b", "c", NULL);

    start_tree();
    expect_os("spawn a");
    expect_state("a", "starting");
    expect_state("b", "stopped");
    expect_state("root", "starting");

    ready("a");
    expect_os("spawn b");
    ready("b");
    expect_os("spawn c");
    expect_state("root", "starting");
    ready("c");
    expect_os("");
    expect_state("root", "running");
    expect_state("c", "running");
}

static void test_start_notify_child_waits_for_ready(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_NOTIFY);
    add_service(root, "b", SERVICE_SIMPLE);
    add_service(root, "c", SERVICE_NOTIFY);

    start_tree();
    expect_os("spawn a");
    advance_time(29999); /* just inside its start timeout */
    expect_os("");
    expect_state("a", "starting");

    ready("a");
    expect_os("spawn b, spawn c"); /* b is simple: running as soon as it is forked */
    expect_state("b", "running");
    expect_state("c", "starting");
    expect_state("root", "starting");
    ready("c");
    expect_state("root", "running");
}

/* While a child is in flight, the operator starts c and then b: both wait,
 * and then start in tree order, b first (the supervisor's step begins its
 * search at the lowest child flagged to start, which b just lowered). */
static void test_children_flagged_while_one_is_in_flight_start_in_order(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_NOTIFY, "a", "b", "c", NULL);
    start_tree();
    ready("a");
    ready("b");
    ready("c");
    stop("b");
    killed("b", SIGTERM);
    stop("c");
    killed("c", SIGTERM);
    restart("a");
    killed("a", SIGTERM);
    expect_state("a", "starting");
    clear_os();

    start("c");
    start("b");
    expect_os("");
    ready("a");
    expect_os("spawn b");
    ready("b");
    expect_os("spawn c");
    ready("c");
    expect_state("root", "running");
}

static void test_start_simple_children_run_at_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);

    start_tree();
    expect_os("spawn a, spawn b, spawn c");
    expect_state("a", "running");
    expect_state("c", "running");
    expect_state("root", "running");
    assert_int_equal(deadline_of("a"), 0); /* no start timeout for simple */
}

static void test_start_transitions_are_reported(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_EXEC);

    start_tree();
    ready("a");
    assert_string_equal(F.transitions, "root:stopped->starting, a:stopped->starting, "
                                       "a:starting->running, root:starting->running");
    clear_transitions();
    crash("a", 1);
    assert_string_equal(F.transitions, "a:running->failed, a:failed->starting");
}

static void test_start_timeout_armed_while_starting(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_EXEC);
    msec_t t0 = F.now;

    start_tree();
    assert_int_equal(deadline_of("a"), t0 + 30000);
    advance_time(10);
    ready("a");
    assert_int_equal(deadline_of("a"), 0);
}

static void test_start_oneshot_done_then_next(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "setup", SERVICE_ONESHOT);
    add_service(root, "b", SERVICE_EXEC);

    start_tree();
    expect_os("spawn setup");
    expect_state("setup", "starting");

    crash("setup", 0);
    expect_os("spawn b");
    expect_state("setup", "exited");
    assert_int_equal(restarts_of("setup"), 0);
    ready("b");
    expect_state("root", "running");
    advance_time(60000);
    expect_os(""); /* a finished oneshot is not run again */
    assert_int_equal(spawns_of("setup"), 1);
}

static void test_start_oneshot_failure_is_a_failed_start(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "setup", SERVICE_ONESHOT);
    add_service(root, "b", SERVICE_SIMPLE);

    start_tree();
    expect_os("spawn setup");
    crash("setup", 1);
    expect_os("spawn setup"); /* retried; b still waits */
    assert_int_equal(restarts_of("setup"), 1);
    expect_state("b", "stopped");

    crash("setup", 0);
    expect_os("spawn b");
    expect_state("root", "running");
}

static void test_start_nested_supervisor_ready_when_all_children_are(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_EXEC, "x", "y", NULL);
    add_service(root, "z", SERVICE_EXEC);

    start_tree();
    expect_os("spawn x");
    ready("x");
    expect_os("spawn y");
    expect_state("sub", "starting");
    ready("y");
    expect_state("sub", "running");
    expect_os("spawn z");
    expect_state("root", "starting");
    ready("z");
    expect_state("root", "running");
}

/* ================================================================== */
/* Strategies                                                           */
/* ================================================================== */

static void test_one_for_one_restarts_only_the_failed_child(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();
    int pid_a = pid_of("a"), pid_c = pid_of("c");

    crash("b", 1);
    expect_os("spawn b");
    expect_state("b", "running");
    assert_int_equal(restarts_of("b"), 1);
    assert_int_equal(restarts_of("a"), 0);
    assert_int_equal(restarts_of("c"), 0);
    assert_int_equal(pid_of("a"), pid_a);
    assert_int_equal(pid_of("c"), pid_c);
}

static void test_one_for_all_stops_others_in_reverse_then_starts_all(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();

    crash("b", 1);
    expect_os("signal c TERM"); /* one at a time: a waits until c is gone */
    expect_state("c", "stopping");
    expect_state("a", "running");
    killed("c", SIGTERM);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("spawn a, spawn b, spawn c");
    assert_int_equal(restarts_of("a"), 1);
    assert_int_equal(restarts_of("b"), 1);
    assert_int_equal(restarts_of("c"), 1);
    expect_state("root", "running");
}

static void test_one_for_all_waits_for_each_ready_when_restarting(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    add_services(root, SERVICE_EXEC, "a", "b", "c", NULL);
    start_tree();
    ready("a");
    ready("b");
    ready("c");
    clear_os();

    crash("a", 2);
    expect_os("signal c TERM");
    killed("c", SIGTERM);
    expect_os("signal b TERM");
    killed("b", SIGTERM);
    expect_os("spawn a");
    ready("a");
    expect_os("spawn b");
    ready("b");
    expect_os("spawn c");
    ready("c");
    expect_os("");
    expect_state("root", "running");
}

static void test_rest_for_one_restarts_failed_and_later_children(void **state)
{
    struct node *root = make_root(STRATEGY_REST_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", "d", NULL);
    start_tree();
    clear_os();
    int pid_a = pid_of("a");

    crash("b", 1);
    expect_os("signal d TERM");
    killed("d", SIGTERM);
    expect_os("signal c TERM");
    killed("c", SIGTERM);
    expect_os("spawn b, spawn c, spawn d");
    assert_int_equal(pid_of("a"), pid_a);
    assert_int_equal(restarts_of("a"), 0);
    assert_int_equal(restarts_of("d"), 1);
}

static void test_rest_for_one_last_child_is_one_for_one(void **state)
{
    struct node *root = make_root(STRATEGY_REST_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();

    crash("b", 1);
    expect_os("spawn b");
}

static void test_group_restart_drops_temporary_sibling(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    add_services(root, SERVICE_SIMPLE, "a", "t", "c", NULL);
    set_restart("t", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("c", 1);
    expect_os("signal t TERM");
    killed("t", SIGTERM);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("spawn a, spawn c");
    expect_state("t", "stopped");
    advance_time(60000);
    expect_os("");
}

/* A sibling the strategy is about to stop that dies on its own meanwhile
 * is collateral, as OTP's shutdown/2 consumes its 'EXIT': the group restart
 * still counts once. */
static void test_group_restart_sibling_dying_meanwhile_counts_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    CFG(root)->intensity = 1;
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();

    crash("a", 1);
    expect_os("signal c TERM");
    crash("b", 1); /* b was flagged to stop next; it just went first */
    expect_os("");
    killed("c", SIGTERM);
    expect_os("spawn a, spawn b, spawn c");
    expect_not_ended();
    expect_state("root", "running");
}

/* ================================================================== */
/* Restart types                                                        */
/* ================================================================== */

static void test_permanent_restarted_even_after_exit_0(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("a", 0);
    expect_os("spawn a");
    killed("a", SIGTERM); /* even killed by its own stop signal */
    expect_os("spawn a");
    assert_int_equal(restarts_of("a"), 2);
}

static void test_transient_not_restarted_after_exit_0(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0; /* any counted restart would end the root */
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    set_restart("a", RESTART_TRANSIENT);
    start_tree();
    clear_os();

    crash("a", 0);
    expect_os("");
    expect_state("a", "exited");
    expect_state("root", "running");
    expect_not_ended();
}

static void test_transient_not_restarted_when_killed_by_its_stop_signal(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    set_restart("a", RESTART_TRANSIENT);
    CFG(N("a"))->kill_signal = SIGINT;
    start_tree();
    clear_os();

    killed("a", SIGINT);
    expect_os("");
    expect_state("a", "stopped");
    expect_state("root", "running");
    expect_not_ended();
}

static void test_transient_restarted_after_abnormal_exit(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    set_restart("a", RESTART_TRANSIENT);
    CFG(N("a"))->kill_signal = SIGINT;
    start_tree();
    clear_os();

    crash("a", 3);
    expect_os("spawn a");
    killed("a", SIGSEGV);
    expect_os("spawn a");
    killed("a", SIGTERM); /* not its stop signal (SIGINT): abnormal */
    expect_os("spawn a");
    assert_int_equal(restarts_of("a"), 3);
}

static void test_temporary_never_restarted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    set_restart("a", RESTART_TEMPORARY);
    set_restart("b", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("a", 1);
    killed("b", SIGKILL);
    expect_os("");
    expect_state("a", "failed");
    expect_state("b", "failed");
    expect_state("root", "running");
    expect_not_ended();
}

/* ================================================================== */
/* Intensity                                                            */
/* ================================================================== */

static void test_more_than_intensity_restarts_gives_up(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE); /* intensity 5 in 10 s */
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();

    for (int i = 0; i < 5; i++) {
        crash("b", 1);
        expect_os("spawn b");
    }
    crash("b", 1); /* the 6th within the period */
    expect_os("signal c TERM");
    expect_state("root", "stopping");
    killed("c", SIGTERM);
    expect_os("signal a TERM");
    expect_not_ended();
    killed("a", SIGTERM);
    expect_os("end 1");
    expect_state("root", "failed");
    assert_int_equal(restarts_of("b"), 5);
}

static void test_intensity_window_includes_both_ends(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 1;
    CFG(root)->period = 10000;
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("a", 1);
    expect_os("spawn a");
    advance_time(10000); /* exactly one Period later: both count */
    crash("a", 1);
    expect_os("end 1");
}

static void test_intensity_forgets_restarts_outside_the_window(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 1;
    CFG(root)->period = 10000;
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("a", 1);
    expect_os("spawn a");
    advance_time(10001);
    crash("a", 1);
    expect_os("spawn a"); /* the first one fell out of the window */
    advance_time(5000);
    crash("a", 1);
    expect_os("end 1");
}

static void test_intensity_zero_gives_up_at_first_crash(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();

    crash("b", 1);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 1");
}

static void test_group_restart_counts_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    CFG(root)->intensity = 1;
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();

    crash("a", 1); /* three children restarted: one restart */
    expect_os("signal c TERM");
    killed("c", SIGTERM);
    expect_os("signal b TERM");
    killed("b", SIGTERM);
    expect_os("spawn a, spawn b, spawn c");
    expect_not_ended();

    crash("c", 1); /* the second restart within the period */
    expect_os("signal b TERM");
    killed("b", SIGTERM);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 1");
}

static void test_give_up_stops_children_in_reverse_and_escalates(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 1;
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->intensity = 0;
    add_services(sub, SERVICE_SIMPLE, "x", "y", "z", NULL);
    add_service(root, "w", SERVICE_SIMPLE);
    start_tree();
    clear_os();
    int pid_w = pid_of("w");

    crash("y", 1);
    expect_os("signal z TERM");
    expect_state("sub", "stopping");
    killed("z", SIGTERM);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    /* sub failed; permanent, so root restarts it (one restart of root's) */
    expect_os("spawn x, spawn y, spawn z");
    expect_state("sub", "running");
    assert_int_equal(restarts_of("sub"), 1);
    assert_int_equal(pid_of("w"), pid_w);

    crash("x", 1); /* sub gives up again: root's 2nd restart > intensity 1 */
    expect_os("signal z TERM");
    killed("z", SIGTERM);
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os("signal w TERM");
    expect_state("sub", "failed");
    killed("w", SIGTERM);
    expect_os("end 1");
}

static void test_restarted_supervisor_starts_with_empty_history(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->intensity = 1;
    add_service(sub, "x", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("x", 1);
    expect_os("spawn x");
    crash("x", 1); /* sub gives up, root restarts it */
    expect_os("spawn x");
    crash("x", 1); /* a fresh sub: one restart allowed again */
    expect_os("spawn x");
    assert_int_equal(restarts_of("sub"), 1);
}

static void test_transient_supervisor_giving_up_is_not_restarted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0; /* would give up if the sub counted */
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->intensity = 0;
    CFG(sub)->restart = RESTART_TRANSIENT;
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "w", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("x", 1);
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os(""); /* not restarted; the root carries on */
    expect_state("sub", "failed");
    expect_state("root", "running");
    expect_state("w", "running");
    expect_not_ended();
}

static void test_temporary_supervisor_giving_up_is_not_restarted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    CFG(root)->intensity = 0;
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->intensity = 0;
    CFG(sub)->restart = RESTART_TEMPORARY;
    add_service(sub, "x", SERVICE_SIMPLE);
    add_service(root, "w", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("x", 1);
    expect_os(""); /* not even a one-for-all restart of w */
    expect_state("sub", "failed");
    expect_state("w", "running");
    expect_not_ended();
}

/* ================================================================== */
/* Failed starts                                                        */
/* ================================================================== */

static void test_spawn_error_is_retried_until_intensity(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 2;
    add_services(root, SERVICE_EXEC, "a", "b", NULL);
    fail_spawn("a", 100, ENOENT);

    start_tree();
    expect_os("spawn a failed, spawn a failed, spawn a failed, end 1");
    assert_int_equal(restarts_of("a"), 2);
    expect_state("a", "failed");
    expect_state("b", "stopped");
    assert_false(N("a")->last_exit.known);
}

static void test_spawn_error_then_success(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    fail_spawn("a", 1, EAGAIN);

    start_tree();
    expect_os("spawn a failed, spawn a, spawn b");
    assert_int_equal(restarts_of("a"), 1);
    expect_state("root", "running");
}

static void test_exit_before_ready_is_a_failed_start(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 1;
    add_services(root, SERVICE_NOTIFY, "a", "b", NULL);
    set_restart("a", RESTART_TRANSIENT);

    start_tree();
    expect_os("spawn a");
    crash("a", 0); /* even exit 0: it never said READY=1 */
    expect_os("spawn a");
    expect_state("b", "stopped");
    assert_int_equal(restarts_of("a"), 1);
    crash("a", 127);
    expect_os("end 1");
    assert_int_equal(spawns_of("b"), 0);
}

static void test_start_timeout_is_a_failed_start(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 1;
    CFG(root)->period = 100000; /* both timeouts inside one period */
    add_service(root, "a", SERVICE_EXEC);
    set_restart("a", RESTART_TRANSIENT);
    msec_t t0 = F.now;

    start_tree();
    expect_os("spawn a");
    advance_time(29999);
    expect_os("");
    advance_time(1);
    expect_os("signal a TERM");
    expect_state("a", "stopping");
    assert_int_equal(deadline_of("a"), t0 + 30000 + 5000);

    killed("a", SIGTERM); /* its own stop signal, but the start failed */
    expect_os("spawn a");
    assert_int_equal(restarts_of("a"), 1);
    assert_true(N("a")->last_exit.signaled);
    assert_int_equal(N("a")->last_exit.value, SIGTERM);

    advance_time(30000);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 1");
}

static void test_start_timeout_then_stop_timeout(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_EXEC);

    start_tree();
    clear_os();
    advance_time(30000);
    expect_os("signal a TERM");
    advance_time(4999);
    expect_os("");
    advance_time(1);
    expect_os("kill a");
    killed("a", SIGKILL);
    expect_os("spawn a");
}

static void test_start_timeout_infinity_never_fires(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_NOTIFY);
    CFG(N("a"))->start_timeout = DURATION_INFINITY;

    start_tree();
    clear_os();
    assert_int_equal(deadline_of("a"), 0);
    advance_time(10 * 60 * 60 * 1000);
    expect_os("");
    expect_state("a", "starting");
}

/* ================================================================== */
/* Stop timeouts                                                        */
/* ================================================================== */

static void test_stop_timeout_kills_everything(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();
    msec_t t0 = F.now;

    stop("a");
    expect_os("signal a TERM");
    assert_int_equal(deadline_of("a"), t0 + 5000);
    advance_time(4999);
    expect_os("");
    advance_time(1);
    expect_os("kill a");
    expect_state("a", "stopping");
    killed("a", SIGKILL);
    expect_os("");
    expect_state("a", "stopped");
    assert_int_equal(deadline_of("a"), 0);
}

static void test_brutal_kill_kills_at_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    CFG(N("a"))->shutdown = SHUTDOWN_BRUTAL_KILL;
    start_tree();
    clear_os();

    stop("a");
    expect_os("kill a");
    assert_int_equal(deadline_of("a"), 0);
    killed("a", SIGKILL);
    expect_state("a", "stopped");
}

static void test_shutdown_infinity_waits_forever(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    CFG(N("a"))->shutdown = DURATION_INFINITY;
    start_tree();
    clear_os();

    stop("a");
    expect_os("signal a TERM");
    assert_int_equal(deadline_of("a"), 0);
    advance_time(24 * 60 * 60 * 1000);
    expect_os("");
    expect_state("a", "stopping");
}

static void test_exit_cleans_up_descendants(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();

    crash("a", 1);
    assert_int_equal(proc_of(N("a"))->cleanups, 1);
    stop("a");
    killed("a", SIGTERM);
    assert_int_equal(proc_of(N("a"))->cleanups, 2);
}

/* ================================================================== */
/* Watchdog and EXTEND_TIMEOUT                                          */
/* ================================================================== */

static void test_watchdog_armed_at_ready_and_moved_by_ping(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_NOTIFY);
    set_restart("a", RESTART_TRANSIENT);
    CFG(N("a"))->watchdog = 1000;
    msec_t t0 = F.now;

    start_tree();
    clear_os();
    assert_int_equal(deadline_of("a"), t0 + 30000); /* the start timeout */
    advance_time(100);
    ready("a");
    assert_int_equal(deadline_of("a"), t0 + 1100);
    advance_time(500);
    ping("a");
    assert_int_equal(deadline_of("a"), t0 + 1600);
    advance_time(999);
    expect_os("");
    advance_time(1);
    expect_os("signal a ABRT");

    killed("a", SIGABRT); /* abnormal: a transient is restarted */
    expect_os("spawn a");
    assert_int_equal(restarts_of("a"), 1);
}

static void test_watchdog_exit_is_abnormal_whatever_the_status(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    set_restart("a", RESTART_TRANSIENT);
    CFG(N("a"))->watchdog = 2000;
    msec_t t0 = F.now;

    start_tree();
    clear_os();
    assert_int_equal(deadline_of("a"), t0 + 2000); /* simple: armed at once */
    advance_time(2000);
    expect_os("signal a ABRT");
    crash("a", 0); /* caught SIGABRT and exited 0: still a watchdog failure */
    expect_os("spawn a");
}

static void test_watchdog_trigger_acts_as_expiry(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_NOTIFY);
    set_restart("a", RESTART_TRANSIENT);
    start_tree();
    clear_os();

    watchdog_trigger("a"); /* still starting: nothing to do */
    expect_os("");
    ready("a");
    clear_os();
    watchdog_trigger("a"); /* WATCHDOG=trigger, even with WatchdogSec=0 */
    expect_os("signal a ABRT");
    watchdog_trigger("a"); /* already stopping */
    expect_os("");
    killed("a", SIGABRT);
    expect_os("spawn a");
}

static void test_watchdog_ping_without_watchdog_does_nothing(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    ping("a");
    assert_int_equal(deadline_of("a"), 0);
    advance_time(100000);
    expect_os("");
}

static void test_extend_timeout_moves_start_deadline_later_only(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_NOTIFY);
    msec_t t0 = F.now;

    start_tree();
    clear_os();
    advance_time(10000);
    extend("a", 60000);
    assert_int_equal(deadline_of("a"), t0 + 70000);
    extend("a", 1000); /* never earlier */
    assert_int_equal(deadline_of("a"), t0 + 70000);

    advance_time(20000); /* the original start timeout */
    expect_os("");
    advance_time(39999);
    expect_os("");
    advance_time(1);
    expect_os("signal a TERM");
}

static void test_extend_timeout_moves_stop_deadline(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();
    msec_t t0 = F.now;

    stop("a");
    expect_os("signal a TERM");
    extend("a", 20000);
    assert_int_equal(deadline_of("a"), t0 + 20000);
    advance_time(19999);
    expect_os("");
    advance_time(1);
    expect_os("kill a");
}

static void test_stale_events_are_ignored(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_EXEC);
    add_service(root, "b", SERVICE_SIMPLE);
    start_tree();
    ready("a");
    clear_os();
    clear_transitions();

    ready("a");                          /* a second READY=1 */
    core_post_deadline(&F.core, N("a")); /* a timer the core already disarmed */
    run();
    stop("b");
    killed("b", SIGTERM);
    clear_os();
    clear_transitions();
    core_post_exited(&F.core, N("b"), (struct exit_status){.known = true, .value = 1});
    run(); /* a duplicate exit for a stopped service */
    ready("b");
    expect_os("");
    assert_string_equal(F.transitions, "");
}

static void test_stopping_notification_changes_nothing(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    core_stopping_notified(&F.core, N("a"));
    run();
    assert_true(N("a")->stopping_notified);
    expect_state("a", "running");
    crash("a", 0); /* permanent: restarted as usual */
    expect_os("spawn a");
    assert_false(N("a")->stopping_notified);
}

/* ================================================================== */
/* Shutdown                                                             */
/* ================================================================== */

static void test_shutdown_reverse_depth_first(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "b", SERVICE_SIMPLE);
    start_tree();
    expect_os("spawn a, spawn x, spawn y, spawn b");

    shutdown_tree();
    expect_os("signal b TERM");
    killed("b", SIGTERM);
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    expect_state("sub", "stopped");
    expect_os("signal a TERM");
    expect_not_ended();
    killed("a", SIGTERM);
    expect_os("end 0");
    assert_int_equal(F.root_status, 0);
    expect_state("root", "stopped");
}

static void test_shutdown_sends_each_service_its_kill_signal(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    CFG(N("a"))->kill_signal = SIGINT;
    CFG(N("b"))->kill_signal = SIGHUP;
    start_tree();
    clear_os();

    shutdown_tree();
    expect_os("signal b HUP");
    killed("b", SIGHUP);
    expect_os("signal a INT");
    killed("a", SIGINT);
    expect_os("end 0");
}

static void test_shutdown_kills_after_stop_timeout(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();

    shutdown_tree();
    expect_os("signal b TERM");
    advance_time(5000);
    expect_os("kill b");
    killed("b", SIGKILL);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 0");
}

static void test_shutdown_stops_a_starting_child_at_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_EXEC, "a", "b", "c", NULL);
    start_tree();
    ready("a");
    clear_os();
    expect_state("b", "starting");

    shutdown_tree();
    expect_os("signal b TERM"); /* not waiting out its start timeout */
    killed("b", SIGTERM);
    expect_state("b", "stopped");
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 0");
    assert_int_equal(spawns_of("c"), 0);
    assert_int_equal(restarts_of("b"), 0);
}

static void test_shutdown_exits_meanwhile_are_not_restarted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();

    shutdown_tree();
    expect_os("signal b TERM");
    crash("a", 1);
    expect_os("");
    killed("b", SIGTERM);
    expect_os("end 0");
    assert_int_equal(F.root_status, 0);
}

static void test_shutdown_nested_exits_meanwhile_are_not_restarted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "b", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    shutdown_tree();
    expect_os("signal b TERM");
    crash("x", 1); /* sub has not been reached yet */
    expect_os("");
    killed("b", SIGTERM);
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os("end 0");
    assert_int_equal(spawns_of("x"), 1);
}

static void test_shutdown_cancels_a_nested_group_restart(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ALL);
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "b", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("x", 1);
    expect_os("signal y TERM"); /* sub's group restart under way */
    shutdown_tree();
    expect_os("signal b TERM");
    killed("y", SIGTERM); /* sub would now start x and y again */
    expect_os("");
    killed("b", SIGTERM);
    expect_os("end 0");
    assert_int_equal(spawns_of("x"), 1);
    assert_int_equal(spawns_of("y"), 1);
}

static void test_operator_start_during_shutdown_is_refused(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "b", SERVICE_SIMPLE);
    start_tree();
    stop("y");
    killed("y", SIGTERM);
    clear_os();

    shutdown_tree();
    expect_os("signal b TERM");
    start("y");
    restart("b");
    expect_os("");
    killed("b", SIGTERM);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    expect_os("end 0");
}

static void test_shutdown_before_start_ends_at_once(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);

    shutdown_tree();
    expect_os("end 0");
    start_tree(); /* too late */
    expect_os("");
}

static void test_shutdown_during_failed_spawn(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();
    fail_spawn("b", 1, ENOMEM);

    core_post_exited(&F.core, N("b"),
                     (struct exit_status){.known = true, .signaled = true, .value = SIGSEGV});
    proc_of(N("b"))->alive = false;
    core_shutdown(&F.core); /* queued behind the crash */
    run();
    expect_os("spawn b failed, signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 0");
}

/* ================================================================== */
/* AutoShutdown                                                         */
/* ================================================================== */

static void test_any_significant_transient_normal_exit_ends_root(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "a", "s", "b", NULL);
    make_significant("s", RESTART_TRANSIENT);
    start_tree();
    clear_os();

    crash("s", 0);
    expect_os("signal b TERM");
    killed("b", SIGTERM);
    expect_os("signal a TERM");
    expect_not_ended();
    killed("a", SIGTERM);
    expect_os("end 0");
}

static void test_any_significant_exit_status_is_the_childs(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "a", "s", NULL);
    make_significant("s", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    killed("s", SIGSEGV);
    expect_os("signal a TERM");
    killed("a", SIGTERM); /* the others' exits do not change the status */
    expect_os("end 139");
}

static void test_any_significant_temporary_exit_code(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_service(root, "s", SERVICE_SIMPLE);
    make_significant("s", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("s", 3);
    expect_os("end 3");
}

static void test_significant_child_restarted_does_not_trigger(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "a", "s", NULL);
    make_significant("s", RESTART_TRANSIENT);
    start_tree();
    clear_os();

    crash("s", 1);
    expect_os("spawn s");
    expect_not_ended();
    expect_state("root", "running");
}

static void test_all_significant_waits_for_the_last(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ALL_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "a", "s1", "s2", NULL);
    make_significant("s1", RESTART_TRANSIENT);
    make_significant("s2", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("s1", 0);
    expect_os("");
    expect_state("root", "running");
    crash("s2", 4);
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 4");
}

static void test_significant_stopped_by_strategy_does_not_trigger(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "s", "t", "b", NULL);
    make_significant("s", RESTART_TRANSIENT);
    make_significant("t", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("b", 1);
    expect_os("signal t TERM");
    killed("t", SIGTERM);
    expect_os("signal s TERM");
    killed("s", SIGTERM);
    expect_os("spawn s, spawn b"); /* t, temporary, is dropped */
    expect_not_ended();
    expect_state("root", "running");
}

static void test_significant_dying_while_flagged_for_stop_does_not_trigger(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "s", "a", "b", NULL);
    make_significant("s", RESTART_TEMPORARY);
    start_tree();
    clear_os();

    crash("a", 1);
    expect_os("signal b TERM");
    crash("s", 0); /* collateral of the group restart: it just went first */
    expect_os("");
    killed("b", SIGTERM);
    expect_os("spawn a, spawn b");
    expect_state("s", "exited");
    expect_not_ended();
}

static void test_significant_stopped_by_operator_does_not_trigger(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(root, SERVICE_SIMPLE, "a", "s", NULL);
    make_significant("s", RESTART_TRANSIENT);
    start_tree();
    clear_os();

    stop("s");
    expect_os("signal s TERM");
    crash("s", 0); /* exits 0 on SIGTERM */
    expect_os("");
    expect_not_ended();
    expect_state("root", "running");
}

static void test_significant_oneshot_done_triggers(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_service(root, "db", SERVICE_SIMPLE);
    add_service(root, "job", SERVICE_ONESHOT);
    make_significant("job", RESTART_TRANSIENT);
    start_tree();
    expect_os("spawn db, spawn job");

    crash("job", 0); /* the job ended by itself and is not run again */
    expect_os("signal db TERM");
    killed("db", SIGTERM);
    expect_os("end 0");
}

static void test_nested_auto_shutdown_parent_carries_on(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->restart = RESTART_TRANSIENT;
    CFG(sub)->auto_shutdown = AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    add_services(sub, SERVICE_SIMPLE, "s", "x", NULL);
    make_significant("s", RESTART_TEMPORARY);
    add_service(root, "w", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    crash("s", 0);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    expect_os("");
    expect_state("sub", "exited");
    expect_state("w", "running");
    expect_state("root", "running");
    expect_not_ended();
}

/* ================================================================== */
/* Operator                                                             */
/* ================================================================== */

static void test_operator_stop_holds_without_counting(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();

    stop("a");
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("");
    expect_state("a", "stopped");
    expect_state("root", "running");
    advance_time(60000);
    expect_os("");
    assert_int_equal(restarts_of("a"), 0);

    start("a");
    expect_os("spawn a");
    assert_int_equal(restarts_of("a"), 0); /* an operator start is not a restart */
    expect_not_ended();
}

static void test_operator_stop_of_a_starting_child(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_EXEC, "a", "b", NULL);
    start_tree();
    clear_os();

    stop("a");
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("spawn b"); /* the supervisor goes on without it */
    expect_state("a", "stopped");
    assert_int_equal(restarts_of("a"), 0);
}

static void test_held_child_not_started_by_group_restart(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ALL);
    add_services(root, SERVICE_SIMPLE, "a", "b", "c", NULL);
    start_tree();
    clear_os();

    stop("b");
    killed("b", SIGTERM);
    clear_os();
    crash("a", 1);
    expect_os("signal c TERM");
    killed("c", SIGTERM);
    expect_os("spawn a, spawn c");
    expect_state("b", "stopped");

    start("b");
    expect_os("spawn b");
    assert_int_equal(restarts_of("b"), 0);
}

static void test_held_child_not_started_when_its_supervisor_restarts(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    CFG(sub)->intensity = 0;
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    start_tree();
    stop("y");
    killed("y", SIGTERM);
    clear_os();

    crash("x", 1); /* sub gives up; root restarts it */
    expect_os("spawn x");
    expect_state("y", "stopped");
    assert_int_equal(restarts_of("sub"), 1);
}

static void test_operator_restart_not_counted(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    add_services(root, SERVICE_SIMPLE, "a", "b", NULL);
    start_tree();
    clear_os();
    int pid_b = pid_of("b");

    restart("a");
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("spawn a");
    expect_state("root", "running");
    assert_int_equal(pid_of("b"), pid_b);
    assert_int_equal(restarts_of("a"), 0);
    expect_not_ended();

    restart("a");
    killed("a", SIGTERM);
    expect_os("signal a TERM, spawn a");
    expect_not_ended();
}

static void test_operator_restart_of_held_child_starts_it(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_services(root, SERVICE_SIMPLE, "a", NULL);
    start_tree();
    stop("a");
    killed("a", SIGTERM);
    clear_os();

    restart("a");
    expect_os("spawn a");
    expect_state("a", "running");
}

static void test_operator_stop_and_start_a_subtree(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    CFG(root)->intensity = 0;
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_SIMPLE, "x", "y", NULL);
    add_service(root, "w", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    stop("sub");
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    expect_os("");
    expect_state("sub", "stopped");
    expect_state("w", "running");
    expect_state("root", "running");

    start("sub");
    expect_os("spawn x, spawn y");
    expect_state("sub", "running");
    assert_int_equal(restarts_of("sub"), 0);
    expect_not_ended();
}

static void test_operator_restart_a_subtree(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    struct node *sub = add_supervisor(root, "sub", STRATEGY_ONE_FOR_ONE);
    add_services(sub, SERVICE_EXEC, "x", "y", NULL);
    start_tree();
    ready("x");
    ready("y");
    clear_os();

    restart("sub");
    expect_os("signal y TERM");
    killed("y", SIGTERM);
    expect_os("signal x TERM");
    killed("x", SIGTERM);
    expect_os("spawn x");
    ready("x");
    expect_os("spawn y");
    ready("y");
    expect_state("sub", "running");
}

static void test_operator_stop_root_is_shutdown(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    clear_os();

    stop("root");
    expect_os("signal a TERM");
    killed("a", SIGTERM);
    expect_os("end 0");
}

/* ================================================================== */
/* Counters                                                             */
/* ================================================================== */

static void test_restarts_and_last_exit(void **state)
{
    struct node *root = make_root(STRATEGY_ONE_FOR_ONE);
    add_service(root, "a", SERVICE_SIMPLE);
    start_tree();
    assert_false(N("a")->last_exit.known);

    crash("a", 3);
    assert_int_equal(restarts_of("a"), 1);
    assert_true(N("a")->last_exit.known);
    assert_false(N("a")->last_exit.signaled);
    assert_int_equal(N("a")->last_exit.value, 3);

    killed("a", SIGSEGV);
    assert_int_equal(restarts_of("a"), 2);
    assert_true(N("a")->last_exit.signaled);
    assert_int_equal(N("a")->last_exit.value, SIGSEGV);
    assert_int_equal(spawns_of("a"), 3);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_exit_classify),
        T(test_intensity_window_is_inclusive),

        T(test_start_exec_children_one_at_a_time),
        T(test_start_notify_child_waits_for_ready),
        T(test_children_flagged_while_one_is_in_flight_start_in_order),
        T(test_start_simple_children_run_at_once),
        T(test_start_transitions_are_reported),
        T(test_start_timeout_armed_while_starting),
        T(test_start_oneshot_done_then_next),
        T(test_start_oneshot_failure_is_a_failed_start),
        T(test_start_nested_supervisor_ready_when_all_children_are),

        T(test_one_for_one_restarts_only_the_failed_child),
        T(test_one_for_all_stops_others_in_reverse_then_starts_all),
        T(test_one_for_all_waits_for_each_ready_when_restarting),
        T(test_rest_for_one_restarts_failed_and_later_children),
        T(test_rest_for_one_last_child_is_one_for_one),
        T(test_group_restart_drops_temporary_sibling),
        T(test_group_restart_sibling_dying_meanwhile_counts_once),

        T(test_permanent_restarted_even_after_exit_0),
        T(test_transient_not_restarted_after_exit_0),
        T(test_transient_not_restarted_when_killed_by_its_stop_signal),
        T(test_transient_restarted_after_abnormal_exit),
        T(test_temporary_never_restarted),

        T(test_more_than_intensity_restarts_gives_up),
        T(test_intensity_window_includes_both_ends),
        T(test_intensity_forgets_restarts_outside_the_window),
        T(test_intensity_zero_gives_up_at_first_crash),
        T(test_group_restart_counts_once),
        T(test_give_up_stops_children_in_reverse_and_escalates),
        T(test_restarted_supervisor_starts_with_empty_history),
        T(test_transient_supervisor_giving_up_is_not_restarted),
        T(test_temporary_supervisor_giving_up_is_not_restarted),

        T(test_spawn_error_is_retried_until_intensity),
        T(test_spawn_error_then_success),
        T(test_exit_before_ready_is_a_failed_start),
        T(test_start_timeout_is_a_failed_start),
        T(test_start_timeout_then_stop_timeout),
        T(test_start_timeout_infinity_never_fires),

        T(test_stop_timeout_kills_everything),
        T(test_brutal_kill_kills_at_once),
        T(test_shutdown_infinity_waits_forever),
        T(test_exit_cleans_up_descendants),

        T(test_watchdog_armed_at_ready_and_moved_by_ping),
        T(test_watchdog_exit_is_abnormal_whatever_the_status),
        T(test_watchdog_trigger_acts_as_expiry),
        T(test_watchdog_ping_without_watchdog_does_nothing),
        T(test_extend_timeout_moves_start_deadline_later_only),
        T(test_extend_timeout_moves_stop_deadline),
        T(test_stale_events_are_ignored),
        T(test_stopping_notification_changes_nothing),

        T(test_shutdown_reverse_depth_first),
        T(test_shutdown_sends_each_service_its_kill_signal),
        T(test_shutdown_kills_after_stop_timeout),
        T(test_shutdown_stops_a_starting_child_at_once),
        T(test_shutdown_exits_meanwhile_are_not_restarted),
        T(test_shutdown_nested_exits_meanwhile_are_not_restarted),
        T(test_shutdown_cancels_a_nested_group_restart),
        T(test_operator_start_during_shutdown_is_refused),
        T(test_shutdown_before_start_ends_at_once),
        T(test_shutdown_during_failed_spawn),

        T(test_any_significant_transient_normal_exit_ends_root),
        T(test_any_significant_exit_status_is_the_childs),
        T(test_any_significant_temporary_exit_code),
        T(test_significant_child_restarted_does_not_trigger),
        T(test_all_significant_waits_for_the_last),
        T(test_significant_stopped_by_strategy_does_not_trigger),
        T(test_significant_dying_while_flagged_for_stop_does_not_trigger),
        T(test_significant_stopped_by_operator_does_not_trigger),
        T(test_significant_oneshot_done_triggers),
        T(test_nested_auto_shutdown_parent_carries_on),

        T(test_operator_stop_holds_without_counting),
        T(test_operator_stop_of_a_starting_child),
        T(test_held_child_not_started_by_group_restart),
        T(test_held_child_not_started_when_its_supervisor_restarts),
        T(test_operator_restart_not_counted),
        T(test_operator_restart_of_held_child_starts_it),
        T(test_operator_stop_and_start_a_subtree),
        T(test_operator_restart_a_subtree),
        T(test_operator_stop_root_is_shutdown),

        T(test_restarts_and_last_exit),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
