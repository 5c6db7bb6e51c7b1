/*
 * main.c: arbord, the arbor supervision daemon.
 *
 * main() is the list of steps: read options, load and validate the units
 * (all errors at once, FILE:LINE), stop there for --check, prepare the
 * process (signals, fd limit, subreaper, runtime lock), then hand over to
 * the loop until the tree ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "reexec.h"
#include "state.h"
#include "os/log.h"
#include "os/spawn.h"
#include "unit/unit.h"

#ifndef ARBOR_VERSION
#define ARBOR_VERSION "0"
#endif

enum { EXIT_ROOT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: arbord [OPTIONS]\n"
            "Supervise a tree of services the way Erlang/OTP supervises processes.\n"
            "\n"
            "  -u, --units DIR     unit directory (default $ARBOR_UNITS, else /etc/arbor)\n"
            "  -r, --runtime DIR   runtime directory for sockets (default $ARBOR_RUNTIME,\n"
            "                      else /run/arbor as root, $XDG_RUNTIME_DIR/arbor otherwise)\n"
            "      --check         validate the units, print the tree, exit 0 (valid) or 1\n"
            "      --init          act as a container's init even when not PID 1: at the end,\n"
            "                      kill every process left in the namespace\n"
            "      --no-cgroups    track services by process tree even where cgroups work\n"
            "  -v, --verbose       log debug messages too\n"
            "  -h, --help          show this help\n"
            "  -V, --version       show the version\n"
            "\n"
            "SIGTERM or SIGINT stops the tree in reverse order and exits 0.\n"
            "Exit status: 0 after a shutdown, 1 when the root supervisor gave up,\n"
            "2 for bad options or units; under AutoShutdown, the significant child's.\n"
            "See arbord(8) and arbor.unit(5).\n");
}

struct options {
    struct daemon_options daemon;
    bool check;
    int state_fd; /* --state-fd: a re-exec's state (reexec.h), else -1 */
    char runtime_buf[PATH_MAX];
};

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"units", required_argument, NULL, 'u'},
        {"runtime", required_argument, NULL, 'r'},
        {"check", no_argument, NULL, 'c'},
        {"init", no_argument, NULL, 'I'},
        {"no-cgroups", no_argument, NULL, 'G'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"state-fd", required_argument, NULL, 'S'}, /* internal: reexec */
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "u:r:vhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->daemon.unit_dir = optarg;
            break;
        case 'r':
            o->daemon.runtime_dir = optarg;
            break;
        case 'c':
            o->check = true;
            break;
        case 'G':
            o->daemon.no_cgroups = true;
            break;
        case 'I':
            o->daemon.init = true;
            break;
        case 'v':
            o->daemon.verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("arbord %s\n", ARBOR_VERSION);
            exit(0);
        case 'S':
            o->state_fd = atoi(optarg);
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "arbord: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->daemon.unit_dir)
        o->daemon.unit_dir = getenv("ARBOR_UNITS");
    if (!o->daemon.unit_dir || !*o->daemon.unit_dir)
        o->daemon.unit_dir = "/etc/arbor";
    if (!o->daemon.runtime_dir)
        o->daemon.runtime_dir = getenv("ARBOR_RUNTIME");
    if (!o->daemon.runtime_dir || !*o->daemon.runtime_dir) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (geteuid() == 0) {
            o->daemon.runtime_dir = "/run/arbor";
        } else if (xdg && *xdg) {
            snprintf(o->runtime_buf, sizeof(o->runtime_buf), "%s/arbor", xdg);
            o->daemon.runtime_dir = o->runtime_buf;
        } else if (!o->check) {
            fprintf(stderr, "arbord: no runtime directory: use -r DIR, $ARBOR_RUNTIME or "
                            "$XDG_RUNTIME_DIR\n");
            return -1;
        }
    }
    return 0;
}

/* Print every problem, FILE:LINE: message, and say how many. */
static void report_diagnostics(const struct diagnostics *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "%s\n", diag->messages[i]);
    fprintf(stderr, "arbord: %zu problem%s found; nothing started\n", diag->count,
            diag->count == 1 ? "" : "s");
}

/* The process arbord must be before the first fork. */
static void prepare_process(bool reexec)
{
    /* libev never unblocks a signal blocked at start: begin from an empty
     * mask. (After a re-exec everything stays blocked until the handlers
     * exist; daemon_run() unblocks.) SIGPIPE would kill us on a closed log
     * reader: ignore it (the children get default dispositions back in
     * spawn.c). */
    sigset_t empty;
    sigemptyset(&empty);
    if (!reexec)
        sigprocmask(SIG_SETMASK, &empty, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A terminal's job control must never stop the supervisor (nor, as
     * PID 1, could anything resume it). Children get defaults back. */
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);

    /* Thousands of services need thousands of fds. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    spawn_reserve_slots();

    /* Orphans of our services come back to us, so that we reap them and
     * can find the ones that left their process group. */
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_msg(LOG_WARNING, "cannot become a child subreaper: %s", strerror(errno));
}

/* One arbord per runtime directory: hold a lock on RUNTIME/arbord.pid. */
static int lock_runtime(const char *runtime)
{
    char path[PATH_MAX];
    if (mkdir(runtime, 0755) < 0 && errno != EEXIST) {
        log_msg(LOG_ERR, "cannot create runtime directory %s: %s", runtime, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/arbord.pid", runtime);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_msg(LOG_ERR, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        log_msg(LOG_ERR, "another arbord is running with runtime directory %s", runtime);
        close(fd);
        return -1;
    }
    /* A runtime directory that cannot take these few bytes cannot take the
     * sockets either: say so now, with the reason, rather than later. */
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    ssize_t written = ftruncate(fd, 0) < 0 ? -1 : write(fd, pid, (size_t)n);
    if (written != n) {
        log_msg(LOG_ERR, "cannot write %s: %s", path,
                written < 0 ? strerror(errno) : "short write");
        close(fd);
        return -1;
    }
    return fd; /* kept open, so locked, until exit */
}

/* What `arborctl reexec` executes again: the binary's path as it was at
 * start (a newer file may be put there meanwhile), and our command line
 * without a previous --state-fd. */
static void remember_command(int argc, char **argv, struct options *o)
{
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0 && (exe[n] = '\0', strstr(exe, " (deleted)") == NULL))
        o->daemon.exe = exe;
    char **copy = calloc((size_t)argc + 1, sizeof(*copy));
    int k = 0;
    for (int i = 0; copy && i < argc; i++) {
        if (strcmp(argv[i], "--state-fd") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--state-fd=", 11) == 0)
            continue;
        copy[k++] = argv[i];
    }
    o->daemon.argv = copy;
}

/* After a re-exec: the units come from the state, not the directory. */
static int load_units(struct options *o, struct unit_set *units, struct diagnostics *diag,
                      struct state_in *state)
{
    if (o->state_fd < 0)
        return unit_load_dir(o->daemon.unit_dir, units, diag);
    fcntl(o->state_fd, F_SETFD, FD_CLOEXEC);
    state->f = fdopen(o->state_fd, "r");
    if (!state->f) {
        diag_add(diag, NULL, 0, "re-exec state: fd %d: %s", o->state_fd, strerror(errno));
        return -1;
    }
    return reexec_read_units(state, units, diag, &o->daemon.lock_fd);
}

int main(int argc, char **argv)
{
    struct options o = {.state_fd = -1, .daemon = {.lock_fd = -1}};
    if (parse_options(argc, argv, &o) < 0)
        return EXIT_USAGE;

    struct unit_set units = {0};
    struct diagnostics diag = {0};
    struct state_in state = {0};
    int loaded = load_units(&o, &units, &diag, &state);
    if (o.check) {
        if (loaded == 0) {
            struct node *root = unit_build_tree(&units);
            unit_print_tree(stdout, root, &units);
            node_free_tree(root);
        } else {
            for (size_t i = 0; i < diag.count; i++)
                fprintf(stderr, "%s\n", diag.messages[i]);
        }
        diag_free(&diag);
        unit_set_free(&units);
        return loaded == 0 ? 0 : 1;
    }
    if (loaded < 0) {
        report_diagnostics(&diag);
        diag_free(&diag);
        unit_set_free(&units);
        return EXIT_USAGE;
    }
    diag_free(&diag);

    log_init(o.daemon.verbose);
    if (getpid() == 1)
        o.daemon.init = true;
    prepare_process(state.f != NULL);
    int lock = state.f ? o.daemon.lock_fd : lock_runtime(o.daemon.runtime_dir);
    if (lock < 0) {
        unit_set_free(&units);
        return EXIT_ROOT_FAILED;
    }
    o.daemon.lock_fd = lock;
    /* Socket paths handed to services (NOTIFY_SOCKET) must be absolute. */
    char runtime[PATH_MAX];
    if (realpath(o.daemon.runtime_dir, runtime))
        o.daemon.runtime_dir = runtime;
    remember_command(argc, argv, &o);
    int status = daemon_run(&o.daemon, &units, state.f ? &state : NULL);
    if (state.f)
        fclose(state.f);
    unit_set_free(&units);
    close(lock);
    free((void *)o.daemon.argv);
    log_flush();
    return status;
}
