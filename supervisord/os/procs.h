/*
 * procs.h: which processes belong to a service, so that none outlives it.
 *
 * Where arbord can create cgroups (cgroup v2, writable), each service gets
 * one, <arbord's cgroup>/arbord-<pid>/<service>; its processes join it in
 * the child before exec and cannot leave it, so setsid() or double forks
 * change nothing. Killing the service writes cgroup.kill.
 *
 * Elsewhere arbord falls back on the process tree: the service's process
 * group, the descendants of its main process, and orphans it adopted as
 * child subreaper that still carry the service's ARBOR_UNIT= environment
 * entry. That misses a process that both left the group and cleared its
 * environment; arbord.8 says so.
 */
#ifndef ARBOR_PROCS_H
#define ARBOR_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

/* Find cgroup v2 and create arbord's own group. Returns true when services
 * will get cgroups; `disable` forces the process-tree fallback. */
bool procs_init(bool disable);
/* After a re-exec: take over the group the previous arbord made (its
 * absolute path and the path /proc/PID/cgroup shows), or none. */
void procs_adopt(bool enabled, const char *base, const char *relative);
/* The same, for handing over: false when there are no cgroups. */
bool procs_describe(const char **ret_base, const char **ret_relative);
bool procs_have_cgroups(void);
/* Remove the cgroups arbord made (empty ones; at exit). */
void procs_cleanup(void);
/* As a container's init, once the tree has stopped: SIGTERM whatever is
 * left (every other process of the PID namespace when we are PID 1, else
 * our own descendants), up to `grace_ms` for them to exit while we reap,
 * then SIGKILL and reap until no child is left. */
void procs_end_all(bool namespace_init, int grace_ms);

/* Create (or reuse) the service's cgroup; false when there are no cgroups
 * or it cannot be made (then the fallback applies to it). No fd is kept:
 * thousands of services must not cost thousands of descriptors. */
bool procs_group_create(const char *service);
/* Open the service's cgroup directory, for a child to be born in or to
 * join (-1 on failure). */
int procs_group_dir_fd(const char *service);
/* Remove the service's cgroup if it is empty. */
void procs_group_remove(const char *service);
/* Replace the service's cgroup by a new one if it is empty: 1 done, 0 it
 * is still in use (kept), -1 it is gone and could not be made again. */
int procs_group_renew(const char *service);

/* Is `pid` the main process of some service? (The fallback must not take
 * another service's main process for an orphan.) */
typedef bool (*procs_is_main_fn)(pid_t pid, void *ctx);

/* SIGKILL every process of the service: its process group `pgid`, its
 * cgroup, or in the fallback the tree under `main_pid` (0 once reaped) and
 * adopted orphans tagged with the unit's name. Returns true when it wrote
 * to the cgroup's cgroup.kill (an empty cgroup is left alone). */
bool procs_kill_all(const char *service, bool cgroup, pid_t pgid, pid_t main_pid,
                    procs_is_main_fn is_main, void *ctx);

/* Does `pid` belong to the service? 1 yes, 0 it is alive and does not,
 * -1 it has gone (or cannot be examined). */
int procs_belongs(const char *service, bool cgroup, pid_t pgid, pid_t main_pid, pid_t pid);

/* The parent of `pid`, or -1 when it is gone. */
pid_t procs_parent(pid_t pid);
/* Whether `pid` is alive: it exists and is not a zombie. */
bool procs_alive(pid_t pid);

#endif
