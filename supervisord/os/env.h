/*
 * env.h: the environment a service starts with.
 *
 * Built fresh for every start, in this order, later entries replacing
 * earlier ones with the same name: arbord's own environment (minus the
 * variables that describe arbord's own manager: NOTIFY_SOCKET, LISTEN_*,
 * WATCHDOG_*), HOME/USER/LOGNAME/SHELL of User=, each Environment=, each
 * EnvironmentFile= (files override Environment=, as in systemd), then ARBOR_UNIT, NOTIFY_SOCKET and
 * the watchdog variables. EnvironmentFile= is read at start, as systemd does, so a changed file
 * takes effect at the next restart.
 */
#ifndef ARBOR_ENV_H
#define ARBOR_ENV_H

#include "unit/unit.h"

struct env {
    char **entries; /* NULL-terminated, for execve */
    size_t count, capacity;
    char *watchdog_pid_slot; /* the WATCHDOG_PID= entry, or NULL */
    char *listen_pid_slot;   /* the LISTEN_PID= entry, or NULL */
    char error[512];         /* why env_build failed */
};

/* Returns 0, or -errno with env->error set. Always call env_free().
 * `fd_names` (NULL for none) describes the fds passed from 3 on, for
 * LISTEN_FDS=, LISTEN_FDNAMES= and LISTEN_PID=. */
int env_build(struct env *env, const struct unit *unit, const char *runtime_dir,
              const char *notify_path, const char *const *fd_names, int n_fds);
void env_free(struct env *env);
/* The PATH a bare ExecStart= name is looked up in: the service's own. */
const char *env_path(const struct env *env);
/* Parse one EnvironmentFile= line into a "KEY=VALUE" string (malloc'd).
 * Returns 1 with *ret set, 0 for a blank or comment line, -1 if invalid. */
int env_parse_file_line(const char *line, char **ret);

#endif
