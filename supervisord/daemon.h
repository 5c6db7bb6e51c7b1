/*
 * daemon.h: the state of a running arbord, shared by the files of the OS
 * shell: loop.c (libev wiring and the core's ops), service_notify.c
 * (sd_notify), control.c (the control socket) and reload.c.
 */
#ifndef ARBOR_DAEMON_H
#define ARBOR_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#include "core/core.h"
#include "loop.h"
#include "pidmap.h"
#include "unit/unit.h"

struct daemon;
struct output_stream;
struct log_ring;
struct mailbox;
struct control;
struct reload;
struct upgrade;
struct reexec;
struct mailbox_settings;
struct listen_socket;
struct stored_fd;

struct main_pid_watch {
    ev_io io;      /* its pidfd: readable once it has exited (fd -1 without pidfds) */
    ev_timer poll; /* without pidfd_open(2): a look every 200 ms */
    pid_t pid;
};

struct service_os {
    struct node *node;
    const struct unit *unit;
    struct daemon *daemon;
    ev_io notify_io;
    /* Allocated only while needed (most services, most of the time, have
     * none of them): */
    ev_timer *timer;                   /* the node's deadline */
    ev_io *status_io;                  /* the spawn status pipe of the instance being started */
    struct main_pid_watch *main_watch; /* a MAINPID= that is not our child (a pidfd) */
    char *status_text;                 /* last STATUS= */
    struct log_ring *logs;   /* recent output, for arborctl logs; NULL until the first line */
    struct mailbox *mailbox; /* Mailbox=yes, else NULL */
    struct output_stream *output;
    /* -1 not tried yet, 0 none (process-tree fallback), 1 its own cgroup,
     * SERVICE_CGROUP_KILLED its own, emptied by cgroup.kill (see loop.c) */
    int cgroup;
    pid_t pgid;
    struct listen_socket *listens; /* Listen=, in unit order (service_fds.h) */
    struct stored_fd *stored;      /* the fd store */
    unsigned n_stored;
    unsigned n_listens;      /* (beside n_stored: no padding, thousands of these) */
    struct upgrade *upgrade; /* an `arborctl upgrade` under way, or NULL */
};

#define SERVICE_CGROUP_KILLED 2

struct daemon {
    struct ev_loop *loop;
    struct core core;
    struct unit_set *units;
    struct node *root;
    const struct daemon_options *options;
    struct service_os **services;
    size_t n_services;
    struct pidmap pids; /* main pid -> service; entries are checked against node->pid */
    int devnull;
    int exit_status;
    bool ended;
    struct control *control;  /* the control socket and its clients */
    struct reload *reload;    /* a reload under way, or NULL */
    struct upgrade *upgrades; /* upgrades under way (upgrade.h) */
    struct reexec *reexec;    /* a re-exec being checked, or just done (reexec.h) */
    char reload_summary[160];
    ev_io reaper; /* child exits: the signalfd of os/reaper.h */
    ev_timer reap_scan;
    ev_signal sig_term, sig_int, sig_quit, sig_hup, sig_usr1, sig_usr2;
};

/* Monotonic milliseconds: the core's clock. */
msec_t now_ms(void);
/* Drain the core's queue; break the loop once the root has ended. */
void run_core(struct daemon *d);
/* The service whose main process is `pid`, or NULL. */
struct service_os *service_by_pid(struct daemon *d, pid_t pid);
bool is_main_pid(pid_t pid, void *ctx);
/* "exit status 3", "killed by SIGKILL", "no exit status". */
void describe_exit(struct exit_status status, char *buf, size_t size);

/* A service's OS state with its watchers initialised and nothing opened
 * (service_setup() and a re-exec's restore). NULL on ENOMEM. */
struct service_os *service_alloc(struct daemon *d, struct node *node, const struct unit *unit);
/* RUNTIME/notify/NAME, the service's notify socket. */
void service_notify_path(const struct service_os *svc, char *buf, size_t size);
/* Watch the spawn status pipe `fd` of the instance being started. */
int service_watch_status(struct service_os *svc, int fd);
/* Arm (when > 0) or disarm the service's one timer, in core time. */
void service_arm_timer(struct service_os *svc, msec_t when);
/* Capture the output pipe `fd` of one of the service's processes. */
struct output_stream *service_output_open(struct daemon *d, struct service_os *svc, pid_t pid,
                                          int fd);
/* The mailbox settings a unit asks for. */
void mailbox_settings_of(const struct unit *unit, struct mailbox_settings *ret);

/* Create a service's OS state (notify socket, timers) / free it and drop
 * every reference to it (pid table, output streams). */
int service_setup(struct daemon *d, struct node *node, const struct unit *unit);
void service_teardown(struct daemon *d, struct service_os *svc);
/* Bring a service's OS state in line with its unit (after a reload):
 * open, reconfigure or close its mailbox. */
void service_refresh(struct daemon *d, struct service_os *svc);
/* A process of a service, just started. */
struct instance {
    pid_t pid;
    int status_fd;                /* the spawn status pipe (spawn.h) */
    struct output_stream *output; /* its captured output, or NULL */
};
/* Start a process of `svc` with `unit`'s settings, passing `mailbox_fd`
 * (or -1), the Listen= sockets and the fd store. Logs its own failures.
 * Returns 0 or -errno. */
int service_spawn(struct daemon *d, struct service_os *svc, const struct unit *unit, int mailbox_fd,
                  struct instance *ret);

/* Rebuild d->services from the tree. Returns 0 or -ENOMEM. */
int collect_services(struct daemon *d);

/* service_notify.c */
void on_notify(struct ev_loop *loop, ev_io *w, int revents);
/* Watch `fd`, a pidfd of `pid`, the service's main process (not our
 * child), or with fd -1 poll it. Returns 0 or -ENOMEM. */
int watch_main_pidfd(struct service_os *svc, pid_t pid, int fd);
void drain_notify(struct service_os *svc, int limit);
void close_main_pidfd(struct service_os *svc);

#endif
