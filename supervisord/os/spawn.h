/*
 * spawn.h: fork and exec one service process.
 *
 * The child is born in its cgroup where the kernel can do that
 * (clone3 with CLONE_INTO_CGROUP), else it joins it first thing. It runs
 * only async-signal-safe calls: it resets every signal to its default,
 * makes its own session and process group, arranges fds 0-2 and the passed fds from 3 on, closes
 * the rest at exec, fills in the pid-dependent environment entries, drops privileges, unblocks all
 * signals and execs. If any step fails it writes which step and errno to a close-on-exec pipe, so
 * the parent learns "exec worked" from EOF and the reason of a failure from the data.
 */
#ifndef ARBOR_SPAWN_H
#define ARBOR_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

enum spawn_step {
    SPAWN_STEP_SETSID = 1,
    SPAWN_STEP_CGROUP,
    SPAWN_STEP_FDS,
    SPAWN_STEP_CHDIR,
    SPAWN_STEP_GROUPS,
    SPAWN_STEP_GID,
    SPAWN_STEP_UID,
    SPAWN_STEP_EXEC,
};

/* What the child reports on the status pipe when a step fails. */
struct spawn_failure {
    int step;
    int error;
};

#define SPAWN_MAX_PASS_FDS 1024
#define SPAWN_PID_DIGITS 10

struct spawn_request {
    const char *path;  /* absolute path of the program */
    char *const *argv; /* NULL-terminated */
    char *const *envp; /* NULL-terminated; may contain pid slots, below */
    /* Entries of envp ending in SPAWN_PID_DIGITS '0's to be overwritten
     * with the child's own pid (LISTEN_PID=, WATCHDOG_PID=). */
    char *pid_slots[2];
    int stdin_fd, stdout_fd, stderr_fd; /* each must be a valid fd */
    const int *pass_fds;                /* become fds 3, 4, ... */
    int n_pass_fds;
    int cgroup_fd;    /* the cgroup directory to start in, or -1 */
    bool cgroup_join; /* join it after the fork; never be born in it */
    bool set_ids;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int n_groups;
    const char *working_directory; /* or NULL */
    bool set_umask;
    mode_t umask;
};

/* Keep a few low fd numbers for the fds each child needs, which makes a
 * start cost the same however many fds arbord holds. Call once, early. */
void spawn_reserve_slots(void);
/* Note which signals arbord ignores or handles (a child sets those back
 * to default): after arbord's last change of a disposition, before the
 * first start. */
void spawn_note_signals(void);

/* Fork and exec. Returns, once the child has exec'd (past exec's point of
 * no return) or exited, the pid and sets *ret_status_fd (non-blocking,
 * close-on-exec read end of the status pipe: a failed step is in it by
 * then), or returns -errno. */
pid_t spawn_process(const struct spawn_request *req, int *ret_status_fd);

/* Read a finished status pipe: 0 when exec succeeded (EOF), 1 when a step
 * failed (fills *ret), -EAGAIN when the child has not got that far yet. */
int spawn_read_status(int fd, struct spawn_failure *ret);

const char *spawn_step_name(int step);

/* Find `name` in `path_list` (colon-separated) as an executable file. On
 * success writes the full path to `buf` and returns 0; else -errno. */
int spawn_find_program(const char *name, const char *path_list, char *buf, size_t size);

#endif
