/*
 * unit.h: unit files as data.
 *
 * Loading is two passes. unit_parse_file() turns one file into a struct
 * unit through inih, with a key table and our own line reader (inih on
 * Debian has no line numbers, splits lines over ~200 bytes and treats
 * indented lines as continuations; the reader counts lines, passes long
 * values around inih, and rejects indented lines). unit_load_dir() parses a
 * whole directory, then validates names, references and the tree shape,
 * and builds the core's node tree. Every problem is appended to a
 * struct diagnostics as "FILE:LINE: message" (or "FILE: message"), and
 * loading goes on so that all problems are reported at once.
 */
#ifndef ARBOR_UNIT_H
#define ARBOR_UNIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/core.h"

#define UNIT_NAME_MAX 64
#define UNIT_LINE_MAX 65536

enum output_mode { OUTPUT_LOG, OUTPUT_INHERIT, OUTPUT_NULL, OUTPUT_MODE_MAX };

struct diagnostics {
    char **messages; /* each "FILE:LINE: message", no trailing newline */
    size_t count, capacity;
    size_t dropped; /* messages lost to ENOMEM: still problems, without text */
};

void diag_add(struct diagnostics *diag, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void diag_free(struct diagnostics *diag);
/* Problems recorded so far, including those whose text was lost to ENOMEM. */
size_t diag_problems(const struct diagnostics *diag);

struct env_file {
    char *path;
    bool optional; /* written with a leading '-': a missing file is not an error */
};

/* What most units never set, in a block of its own: a unit that sets none
 * of it points at unit_extra_defaults (shared, never written) instead of
 * carrying 136 bytes of empty fields (thousands of units). */
struct unit_extra {
    char *description;
    /* Supervisor: Children=, in order, with the line each name came from. */
    char **children;
    int *children_lines;
    size_t n_children;
    /* Service. */
    char *user, *group; /* as written; NULL when unset */
    gid_t *groups;      /* supplementary groups of User= (getgrouplist), resolved at load */
    int n_groups;
    unsigned mailbox_capacity; /* MailboxCapacity=, default 4096 */
    char *working_directory;
    char **environment; /* "KEY=VALUE" strings, NULL-terminated, in order; NULL if none */
    size_t n_environment;
    struct env_file *environment_files;
    size_t n_environment_files;
    mode_t mailbox_mode;   /* MailboxMode=, default 0600 */
    gid_t mailbox_gid;     /* MailboxGroup=, (gid_t)-1 when unset */
    unsigned fd_store_max; /* FileDescriptorStoreMax=, default 0 */
    /* SPEC section 7, stored for the OS shell. */
    char **listen; /* Listen=, NULL-terminated (NULL if none), as written: /path or IP:PORT */
    size_t n_listen;
};

extern const struct unit_extra unit_extra_defaults;

struct unit {
    char *name;                     /* file name without the suffix */
    char *path;                     /* as found: DIR/NAME.service */
    uint64_t content_hash;          /* FNV-1a of the file's bytes: reload's "changed?" */
    const struct unit_extra *extra; /* never NULL; &unit_extra_defaults when all unset */
    struct node_config config;
    enum node_kind kind;

    /* Line of each key that later checks may need to blame (0 = not set). */
    int line_restart, line_significant, line_auto_shutdown, line_exec_start;
    bool umask_set; /* (here, not with the other fields: no padding) */
    bool mailbox;

    /* Service. */
    char **argv; /* ExecStart=, NULL-terminated; argv[0] absolute or a bare name */
    uid_t uid;   /* resolved at load; (uid_t)-1 when User= unset */
    gid_t gid;   /* resolved at load; (gid_t)-1 when neither User= nor Group= */
    mode_t umask;
    enum output_mode standard_output, standard_error;
};

struct unit_set {
    struct unit **units; /* sorted by name */
    size_t count;
    bool explicit_root; /* root.supervisor exists */
};

/* Parse one file. `kind` comes from its suffix, `name` from its file name.
 * Returns a unit even when there were errors (they are in `diag`), or NULL
 * when the file could not be read at all (also reported in `diag`). */
struct unit *unit_parse_file(const char *path, const char *name, enum node_kind kind,
                             struct diagnostics *diag);
/* The same from an open stream (closed before returning); `path` names
 * it in messages and becomes unit->path. */
struct unit *unit_parse_stream(FILE *file, const char *path, const char *name, enum node_kind kind,
                               struct diagnostics *diag);
void unit_free(struct unit *unit);

/* Read every unit in `dir` and validate the set. Returns 0 when the set is
 * valid, -1 when `diag` holds problems; `set` is filled in either case. */
int unit_load_dir(const char *dir, struct unit_set *set, struct diagnostics *diag);
void unit_set_free(struct unit_set *set);
/* As root, a unit file another user owns or may write is refused (0, or
 * -1 with the reason in `diag`); unit_load_dir() checks every file and
 * the directory itself. */
int unit_file_trusted(const char *path, struct diagnostics *diag);
/* Validate a set built unit by unit (a re-exec's, from unit_parse_stream()),
 * as unit_load_dir() does: sorts it by name first. 0, or -1 with `diag`. */
int unit_set_validate(struct unit_set *set, struct diagnostics *diag);
struct unit *unit_set_find(const struct unit_set *set, const char *name);

/* Build the core tree of a valid set: root.supervisor, or an implicit
 * one-for-one root named "root" adopting every unit no supervisor lists,
 * in name order. Returns NULL on ENOMEM. node->name is a copy. */
struct node *unit_build_tree(const struct unit_set *set);

/* Print the tree, one line per node, for --check. */
void unit_print_tree(FILE *out, const struct node *root, const struct unit_set *set);

/* The defaults of a unit of `kind` (arbor.unit(5)); also the implicit root's. */
void unit_config_defaults(enum node_kind kind, struct node_config *ret);

/* Value parsers, shared with tests. Each returns 0 or -1. */
int parse_duration(const char *text, msec_t *ret); /* 500ms, 5s, 2min, 1h, bare seconds */
int parse_signal(const char *text, int *ret);      /* SIGTERM, TERM, 15 */
int parse_bool(const char *text, bool *ret);       /* yes/no, true/false, on/off, 1/0 */
int parse_uint(const char *text, unsigned long max, unsigned long *ret); /* digits only, <= max */
/* Split a command line with shell-style quoting (no expansion). Returns a
 * NULL-terminated argv in one allocation (free() it, not strv_free()), or
 * NULL with *ret_error set to a static message. */
char **parse_command_line(const char *text, const char **ret_error);
void strv_free(char **strv);
bool unit_name_valid(const char *name);

#endif
