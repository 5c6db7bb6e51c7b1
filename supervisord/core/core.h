/*
 * core.h: the supervision tree as a pure state machine.
 *
 * Theory of operation
 * -------------------
 * The core knows OTP's rules and nothing about the operating system: no
 * syscalls, no libev, no logging. The OS shell (loop.c) owns processes,
 * timers and sockets. The two talk in one direction each:
 *
 *   shell -> core   events: a service became ready, a service's main process
 *                   exited, a deadline passed, an operator command arrived.
 *                   They are posted with core_post_*() and take effect in
 *                   core_run(), which drains an internal queue, so no
 *                   strategy ever recurses into another.
 *   core -> shell   actions, through the struct core_ops callbacks: spawn a
 *                   service, signal it, kill everything it left, arm or
 *                   disarm its single deadline, report a state change, end.
 *                   An op never calls back into the core; a failure it
 *                   cannot return (say, a fork that failed) it reports by
 *                   return value or as a later event.
 *
 * Every supervisor works like an OTP supervisor process: it does one thing
 * at a time. Its children carry two flags, pending_stop and pending_start;
 * supervisor_advance() first stops flagged children from last to first,
 * then starts flagged children from first to last, and never begins a step
 * while a child is still starting or stopping. Strategies are therefore
 * just ways of setting flags: one-for-one flags the failed child,
 * one-for-all every child, rest-for-one the failed child and those after
 * it. A child that is a supervisor starts by flagging all its own children,
 * is ready when its flags drain, and stops the same way in reverse.
 *
 * Intensity is OTP's add_restart(): each restart decision appends the time
 * to the supervisor's window; if more than `intensity` entries fall within
 * `period`, the supervisor gives up: it stops every child (last to first)
 * and ends with reason "shutdown", which its parent treats by the entry's
 * restart type. A failed start is an abnormal exit like any other, so each
 * retry counts too.
 *
 * Time is milliseconds on a monotonic clock, passed in by the caller with
 * every call, so tests drive the core with a fake clock.
 */
#ifndef ARBOR_CORE_H
#define ARBOR_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t msec_t;

/* Duration sentinels for Shutdown= and StartTimeout=. */
#define DURATION_INFINITY ((msec_t)-1)
#define SHUTDOWN_BRUTAL_KILL ((msec_t)0)

enum node_kind { NODE_SERVICE, NODE_SUPERVISOR, NODE_KIND_MAX };

enum strategy { STRATEGY_ONE_FOR_ONE, STRATEGY_ONE_FOR_ALL, STRATEGY_REST_FOR_ONE, STRATEGY_MAX };

enum restart_type { RESTART_PERMANENT, RESTART_TRANSIENT, RESTART_TEMPORARY, RESTART_MAX };

enum auto_shutdown {
    AUTO_SHUTDOWN_NEVER,
    AUTO_SHUTDOWN_ANY_SIGNIFICANT,
    AUTO_SHUTDOWN_ALL_SIGNIFICANT,
    AUTO_SHUTDOWN_MAX
};

enum service_type {
    SERVICE_SIMPLE,
    SERVICE_EXEC,
    SERVICE_NOTIFY,
    SERVICE_ONESHOT,
    SERVICE_TYPE_MAX
};

enum node_state {
    NODE_STOPPED,  /* not running: never started, or stopped by a parent or operator */
    NODE_STARTING, /* spawned / starting children, not ready yet */
    NODE_RUNNING,  /* ready */
    NODE_STOPPING, /* stop signal sent / stopping children */
    NODE_DONE,     /* ended by itself and not restarted: normal exit, oneshot done */
    NODE_FAILED,   /* ended abnormally and not restarted, or a supervisor gave up */
    NODE_STATE_MAX
};

/* How a process or supervisor ended. */
struct exit_status {
    bool known;    /* false: never exited, or the status could not be learnt */
    bool signaled; /* true: killed by signal `value`; false: exited with code `value` */
    int value;
};

/* Exit classes, as OTP sees exit reasons. */
enum exit_class {
    EXIT_NORMAL,   /* exit code 0 (reason normal) */
    EXIT_SHUTDOWN, /* killed by its own stop signal, or a supervisor that ended (reason shutdown) */
    EXIT_ABNORMAL, /* anything else, including a failed start */
    EXIT_CLASS_MAX
};

/* Settings a unit file gives a node (see arbor.unit(5)). */
struct node_config {
    enum restart_type restart;
    bool significant;
    /* supervisors */
    enum strategy strategy;
    int intensity;
    msec_t period;
    enum auto_shutdown auto_shutdown;
    /* services */
    enum service_type type;
    int kill_signal;
    msec_t shutdown;      /* SHUTDOWN_BRUTAL_KILL, DURATION_INFINITY or ms */
    msec_t start_timeout; /* DURATION_INFINITY or ms */
    msec_t watchdog;      /* 0 = off */
};

/* Why a service is being stopped; decides how its exit is judged. */
enum stop_reason {
    STOP_NONE,
    STOP_ORDERED,       /* by its supervisor's strategy, shutdown or an operator */
    STOP_START_TIMEOUT, /* not ready within StartTimeout: ends as a failed start */
    STOP_WATCHDOG,      /* WATCHDOG=1 missing: ends as an abnormal exit */
    STOP_REASON_MAX
};

struct node {
    char *name; /* stored right after the node (node_new) */
    /* Not a copy: the unit's own (thousands of nodes). Whoever builds or
     * re-points a node keeps this alive for as long as the node uses it. */
    const struct node_config *config;

    /* Tree links. The root has parent NULL. children[] is in start order. */
    struct node *parent;
    struct node **children;
    unsigned position; /* index in parent->children */
    unsigned n_children;

    /* Runtime state. (Ordered to leave no padding: thousands of nodes.) */
    enum node_kind kind;
    enum node_state state;
    bool pending_start;     /* parent's job: start this child */
    bool pending_stop;      /* parent's job: stop this child */
    bool held;              /* stopped by the operator: no strategy starts it */
    bool started_once;      /* a later start by the parent counts as a restart */
    bool operator_start;    /* the next start was asked for by the operator: not a restart */
    bool giving_up;         /* supervisor: stopping because intensity was exceeded */
    bool auto_ending;       /* supervisor: stopping because of AutoShutdown */
    bool stopping_notified; /* service sent STOPPING=1 */
    enum stop_reason stop_reason;
    int pid;           /* service main pid, 0 when none */
    msec_t since;      /* time of the last state change */
    msec_t deadline;   /* 0 = none */
    msec_t watchdog;   /* this instance's watchdog: WatchdogSec=, or WATCHDOG_USEC= */
    unsigned restarts; /* restarts of this node by its parent */
    unsigned starts;   /* every start, so a waiter can tell "started since" */
    struct exit_status last_exit;
    int end_code; /* supervisor: exit status it ended with (AutoShutdown / gave up) */

    /* Supervisor: what its children are doing (supervisor.c) and the
     * restart times inside the intensity window (intensity.c). NULL for a
     * service: only supervisors have it. */
    struct supervision *supervision;

    void *os; /* owned by the OS shell; the core never touches it */
};

/* What the core asks of the world. Every op gets the core's `ctx`. */
struct core_ops {
    /* Start a service's process. Return its pid (> 0), or a negative errno
     * for a failure known at once; the core then treats it as a failed start. */
    int (*spawn)(void *ctx, struct node *service);
    /* Send a signal to the service's process group. */
    void (*signal)(void *ctx, struct node *service, int sig);
    /* SIGKILL the process group and every descendant still alive. */
    void (*kill_all)(void *ctx, struct node *service);
    /* Arm (when > 0) or disarm (0) the node's one deadline, in core time. */
    void (*set_deadline)(void *ctx, struct node *node, msec_t when);
    /* The node changed state; `from` is the old state. For logging. */
    void (*transition)(void *ctx, struct node *node, enum node_state from);
    /* The root ended; arbord should exit with `status`. */
    void (*root_ended)(void *ctx, int status);
};

struct core_event;

struct core {
    struct node *root;
    const struct core_ops *ops;
    void *ctx;
    msec_t now;
    bool shutting_down;
    bool root_ended;
    /* The event queue: a growable ring. */
    struct core_event *queue;
    size_t queue_head, queue_count, queue_capacity;
};

/* Tree construction. Nodes are created by the loader; the core takes their
 * config as given (validation happened earlier) and keeps the pointer, not
 * a copy. Returns NULL on ENOMEM. */
struct node *node_new(const char *name, enum node_kind kind, const struct node_config *config);
/* Append `child` to `supervisor`'s children. Returns 0 or -ENOMEM. */
int node_add_child(struct node *supervisor, struct node *child);
/* Free a node and its subtree. Accepts NULL. */
void node_free_tree(struct node *node);
/* Free one node, not its children (reload re-links those). Accepts NULL. */
void node_free(struct node *node);
/* Depth-first search by name; NULL when absent. */
struct node *node_find(struct node *root, const char *name);

void core_init(struct core *core, struct node *root, const struct core_ops *ops, void *ctx);
void core_free(struct core *core); /* frees the queue, not the tree */

/* Events from the shell. `now` is the current core time. */
void core_post_ready(struct core *core, struct node *service);
void core_post_exited(struct core *core, struct node *service, struct exit_status status);
void core_post_deadline(struct core *core, struct node *node);

/* Operator and lifecycle requests. */
void core_start_tree(struct core *core); /* start the root */
void core_shutdown(struct core *core);   /* stop the tree in reverse order */
void core_stop_node(struct core *core, struct node *node);
void core_start_node(struct core *core, struct node *node);
void core_restart_node(struct core *core, struct node *node);

/* Notify-protocol refinements, applied at once (they only move deadlines). */
void core_watchdog_ping(struct core *core, struct node *service);
void core_extend_timeout(struct core *core, struct node *service, msec_t extra);
void core_stopping_notified(struct core *core, struct node *service);
/* WATCHDOG_USEC=: this instance's watchdog becomes `timeout` (0 = off). */
void core_watchdog_set(struct core *core, struct node *service, msec_t timeout);
/* WATCHDOG=trigger: act as if the watchdog had expired, now. */
void core_watchdog_trigger(struct core *core, struct node *service);

/* Drain the event queue at time `now`. */
void core_run(struct core *core, msec_t now);

/* Pure helpers, exposed for tests and the shell. */
enum exit_class exit_classify(struct exit_status status, int stop_signal);
int exit_status_code(struct exit_status status); /* code, or 128+signal */
/* A supervisor's counts of its children that are starting or stopping,
 * and that are flagged to start or to stop, so that its step costs
 * nothing per child when there is nothing to do (thousands of children).
 * set_state() and the core's own flag changes keep them; code that sets
 * states or flags directly (a re-exec's restore, a reload's rebuild)
 * calls core_recount() on the tree afterwards. */
struct supervision {
    unsigned busy, to_start, to_stop;
    unsigned start_from;           /* no child below this position is flagged to start */
    struct restart_window *window; /* NULL until the first restart */
};
void core_recount(struct node *root);
/* The same counts computed afresh equal the kept ones (tests). */
bool core_counts_consistent(const struct node *root);

/* OTP add_restart(): record a restart at `now`; false if intensity exceeded. */
bool intensity_add_restart(struct node *supervisor, msec_t now);
/* A (re)started supervisor: an empty window. */
void intensity_reset(struct node *supervisor);
/* The restart times in the window, oldest first (a re-exec hands them on). */
size_t intensity_count(const struct node *supervisor);
msec_t intensity_time(const struct node *supervisor, size_t i);
/* A window of `n` restart times (n > 0) for the caller to fill, oldest
 * first, replacing any; NULL on ENOMEM. */
msec_t *intensity_restore(struct node *supervisor, size_t n);

const char *node_state_name(enum node_state state);
const char *node_kind_name(enum node_kind kind);
const char *strategy_name(enum strategy strategy);
const char *restart_type_name(enum restart_type restart);
const char *auto_shutdown_name(enum auto_shutdown value);
const char *service_type_name(enum service_type type);

#endif
