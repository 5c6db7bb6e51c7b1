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
bool procs_have_cgroups(void);
/* Remove the cgroups arbord made (empty ones; at exit). */
void procs_cleanup(void);

/* Create (or reuse) the service's cgroup. Returns a directory fd and sets
 * *ret_procs_fd to its cgroup.procs, or returns -1 when there are no
 * cgroups or creation failed (then the fallback applies to it). */
int procs_group_open(const char *service, int *ret_procs_fd);
/* Close the fds and remove the cgroup if it is empty. */
void procs_group_close(const char *service, int dir_fd, int procs_fd);

/* Is `pid` the main process of some service? (The fallback must not take
 * another service's main process for an orphan.) */
typedef bool (*procs_is_main_fn)(pid_t pid, void *ctx);

/* SIGKILL every process of the service: its process group `pgid`, its
 * cgroup, or in the fallback the tree under `main_pid` (0 once reaped) and
 * adopted orphans tagged with the unit's name. */
void procs_kill_all(const char *service, int dir_fd, pid_t pgid, pid_t main_pid,
                    procs_is_main_fn is_main, void *ctx);

/* Does `pid` belong to the service? 1 yes, 0 it is alive and does not,
 * -1 it has gone (or cannot be examined). */
int procs_belongs(const char *service, int dir_fd, pid_t pgid, pid_t main_pid, pid_t pid);

/* The parent of `pid`, or -1 when it is gone. */
pid_t procs_parent(pid_t pid);

#endif
