/*
 * env.c: see env.h.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os/env.h"
#include "os/spawn.h"

extern char **environ;

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static bool is_manager_variable(const char *entry)
{
    static const char *const names[] = {"NOTIFY_SOCKET=",  "LISTEN_PID=",   "LISTEN_FDS=",
                                        "LISTEN_FDNAMES=", "WATCHDOG_PID=", "WATCHDOG_USEC="};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

static size_t key_length(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Add or replace; takes ownership of `entry`. Returns the stored pointer. */
static char *env_put(struct env *env, char *entry)
{
    if (!entry)
        return NULL;
    size_t klen = key_length(entry);
    for (size_t i = 0; i < env->count; i++) {
        if (key_length(env->entries[i]) == klen && strncmp(env->entries[i], entry, klen) == 0) {
            free(env->entries[i]);
            env->entries[i] = entry;
            return entry;
        }
    }
    if (env->count + 1 >= env->capacity) {
        size_t capacity = env->capacity ? env->capacity * 2 : 64;
        char **grown = realloc(env->entries, capacity * sizeof(*grown));
        if (!grown) {
            free(entry);
            return NULL;
        }
        env->entries = grown;
        env->capacity = capacity;
    }
    env->entries[env->count++] = entry;
    env->entries[env->count] = NULL;
    return entry;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    char *s;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

int env_parse_file_line(const char *line, char **ret)
{
    while (isspace((unsigned char)*line))
        line++;
    if (*line == '\0' || *line == '#' || *line == ';')
        return 0;
    if (strncmp(line, "export ", 7) == 0)
        line += 7;
    const char *eq = strchr(line, '=');
    if (!eq || eq == line)
        return -1;
    for (const char *p = line; p < eq; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_') || (p == line && isdigit((unsigned char)*p)))
            return -1;
    const char *v = eq + 1;
    size_t len = strlen(v);
    while (len > 0 && isspace((unsigned char)v[len - 1]))
        len--;
    char *value = malloc(len + 1);
    if (!value)
        return -1;
    size_t out = 0;
    if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
        char quote = v[0];
        for (size_t i = 1; i < len - 1; i++) {
            if (quote == '"' && v[i] == '\\' && i + 1 < len - 1)
                i++;
            value[out++] = v[i];
        }
    } else {
        memcpy(value, v, len);
        out = len;
    }
    value[out] = '\0';
    *ret = format("%.*s=%s", (int)(eq - line), line, value);
    free(value);
    return *ret ? 1 : -1;
}

static int read_env_file(struct env *env, const struct env_file *file)
{
    FILE *f = fopen(file->path, "re");
    if (!f) {
        if (file->optional && errno == ENOENT)
            return 0;
        snprintf(env->error, sizeof(env->error), "EnvironmentFile=%s: %s", file->path,
                 strerror(errno));
        return -errno;
    }
    char *line = NULL;
    size_t size = 0;
    int lineno = 0;
    int result = 0;
    while (getline(&line, &size, f) >= 0) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        char *entry;
        int r = env_parse_file_line(line, &entry);
        if (r < 0) {
            snprintf(env->error, sizeof(env->error), "%s:%d: not a VAR=value line", file->path,
                     lineno);
            result = -EINVAL;
            break;
        }
        if (r > 0 && !env_put(env, entry)) {
            result = -ENOMEM;
            break;
        }
    }
    free(line);
    fclose(f);
    return result;
}

const char *env_path(const struct env *env)
{
    for (size_t i = 0; i < env->count; i++)
        if (strncmp(env->entries[i], "PATH=", 5) == 0)
            return env->entries[i] + 5;
    return DEFAULT_PATH;
}

int env_build(struct env *env, const struct unit *unit, const char *runtime_dir,
              const char *notify_path, const char *const *fd_names, int n_fds)
{
    memset(env, 0, sizeof(*env));
    for (char **e = environ; *e; e++)
        if (!is_manager_variable(*e) && !env_put(env, strdup(*e)))
            goto nomem;
    if (!getenv("PATH") && !env_put(env, strdup("PATH=" DEFAULT_PATH)))
        goto nomem;
    if (unit->uid != (uid_t)-1) {
        struct passwd *pw = getpwuid(unit->uid);
        if (pw && !(env_put(env, format("HOME=%s", pw->pw_dir)) &&
                    env_put(env, format("USER=%s", pw->pw_name)) &&
                    env_put(env, format("LOGNAME=%s", pw->pw_name)) &&
                    env_put(env, format("SHELL=%s", pw->pw_shell))))
            goto nomem;
    }
    for (size_t i = 0; i < unit->extra->n_environment; i++)
        if (!env_put(env, strdup(unit->extra->environment[i])))
            goto nomem;
    /* As in systemd, the files override Environment=. */
    for (size_t i = 0; i < unit->extra->n_environment_files; i++) {
        int r = read_env_file(env, &unit->extra->environment_files[i]);
        if (r < 0)
            return r;
    }
    if (!env_put(env, format("ARBOR_UNIT=%s", unit->name)) ||
        !env_put(env, format("ARBOR_RUNTIME=%s", runtime_dir)) ||
        !env_put(env, format("NOTIFY_SOCKET=%s", notify_path)))
        goto nomem;
    if (unit->config.watchdog > 0) {
        if (!env_put(env, format("WATCHDOG_USEC=%lld", (long long)unit->config.watchdog * 1000)))
            goto nomem;
        /* Filled in by the child with its own pid (spawn.h). */
        env->watchdog_pid_slot = env_put(env, format("WATCHDOG_PID=%0*d", SPAWN_PID_DIGITS, 0));
        if (!env->watchdog_pid_slot)
            goto nomem;
    }
    if (n_fds > 0) {
        /* sd_listen_fds_with_names() reads these; LISTEN_PID is filled in
         * by the child with its own pid. */
        size_t len = sizeof("LISTEN_FDNAMES=");
        for (int i = 0; i < n_fds; i++)
            len += strlen(fd_names[i]) + 1;
        char *names = malloc(len);
        if (!names)
            goto nomem;
        char *p = stpcpy(names, "LISTEN_FDNAMES=");
        for (int i = 0; i < n_fds; i++)
            p = stpcpy(i ? stpcpy(p, ":") : p, fd_names[i]);
        if (!env_put(env, format("LISTEN_FDS=%d", n_fds))) {
            free(names);
            goto nomem;
        }
        if (!env_put(env, names))
            goto nomem;
        env->listen_pid_slot = env_put(env, format("LISTEN_PID=%0*d", SPAWN_PID_DIGITS, 0));
        if (!env->listen_pid_slot)
            goto nomem;
    }
    return 0;
nomem:
    snprintf(env->error, sizeof(env->error), "out of memory");
    return -ENOMEM;
}

void env_free(struct env *env)
{
    for (size_t i = 0; i < env->count; i++)
        free(env->entries[i]);
    free(env->entries);
    env->entries = NULL;
    env->count = env->capacity = 0;
}
