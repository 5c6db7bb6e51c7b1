/*
 * loop.h: the OS shell around the core. It owns the libev loop, one
 * struct service_os per service (timer, notify socket, status pipe, output
 * stream, cgroup), and turns OS happenings into core events and core
 * actions into system calls.
 */
#ifndef ARBOR_LOOP_H
#define ARBOR_LOOP_H

#include <stdbool.h>

#include "core/core.h"
#include "unit/unit.h"

struct daemon_options {
    const char *unit_dir;
    const char *runtime_dir;
    bool verbose;
    bool no_cgroups;
    bool init;         /* PID 1 (or --init): after the tree, kill what is left in the namespace */
    const char *exe;   /* the binary arbord was started from, for reexec; NULL if unknown */
    char *const *argv; /* the command line to re-execute with (without --state-fd) */
    int lock_fd;       /* the runtime lock, carried over a re-exec */
};

struct state_in;

/* Run the tree from a validated unit set until it ends. Returns arbord's
 * exit status. Takes ownership of `units`. With `restore` (a re-exec), the
 * tree is not started but taken over as the state describes it. */
int daemon_run(const struct daemon_options *options, struct unit_set *units,
               struct state_in *restore);

#endif
