/*
 * service_fds.c: see service_fds.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "os/listen.h"
#include "os/log.h"
#include "os/spawn.h"
#include "service_fds.h"

/* ---- Listen= ---- */

static struct listen_socket *find_listen(struct listen_socket *list, size_t n, const char *address)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].address && strcmp(list[i].address, address) == 0)
            return &list[i];
    return NULL;
}

static int bind_one(struct service_os *svc, struct listen_socket *ls)
{
    char why[512];
    int fd = listen_open(ls->address, why, sizeof(why));
    if (fd < 0) {
        log_unit(LOG_ERR, svc->node->name, "Listen=%s", why);
        return fd;
    }
    ls->fd = fd;
    return 0;
}

void service_listen_refresh(struct service_os *svc)
{
    const struct unit *unit = svc->unit;
    struct listen_socket *next = NULL;
    if (unit->extra->n_listen > 0 && !(next = calloc(unit->extra->n_listen, sizeof(*next)))) {
        log_unit(LOG_ERR, svc->node->name, "Listen=: out of memory; sockets unchanged");
        return;
    }
    for (size_t i = 0; i < unit->extra->n_listen; i++) {
        const char *address = unit->extra->listen[i];
        /* The same address twice is one socket, passed twice. */
        struct listen_socket *have = find_listen(svc->listens, svc->n_listens, address);
        next[i].fd = -1;
        next[i].address = strdup(address);
        if (have && have->fd >= 0) {
            next[i].fd = have->fd;
            have->fd = -1; /* moved */
        } else if (next[i].address && !find_listen(next, i, address)) {
            bind_one(svc, &next[i]);
        }
    }
    for (size_t i = 0; i < svc->n_listens; i++) {
        struct listen_socket *old = &svc->listens[i];
        if (old->fd >= 0 && !find_listen(next, unit->extra->n_listen, old->address))
            listen_close(old->address, old->fd);
        else if (old->fd >= 0)
            close(old->fd); /* a duplicate entry's own copy: the path stays */
        free(old->address);
    }
    free(svc->listens);
    svc->listens = next;
    svc->n_listens = (unsigned)unit->extra->n_listen;
}

/* ---- the fd store ---- */

void fdstore_add(struct service_os *svc, const char *name, int *fds, int n)
{
    /* Everything an instance inherits must fit in what spawn passes. */
    unsigned room = SPAWN_MAX_PASS_FDS - 1 - (unsigned)svc->n_listens;
    unsigned max = svc->unit->extra->fd_store_max < room ? svc->unit->extra->fd_store_max : room;
    if (!name)
        name = "stored";
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (svc->n_stored >= max) {
            close(fds[i]);
            continue;
        }
        struct stored_fd *grown = realloc(svc->stored, (svc->n_stored + 1) * sizeof(*grown));
        char *copy = strdup(name);
        if (grown)
            svc->stored = grown;
        if (!grown || !copy) {
            free(copy);
            close(fds[i]);
            continue;
        }
        svc->stored[svc->n_stored++] = (struct stored_fd){.fd = fds[i], .name = copy};
        kept++;
    }
    if (kept < n)
        log_unit(LOG_WARNING, svc->node->name,
                 "fd store: %d of %d fds named %s refused (FileDescriptorStoreMax=%u, %u stored)",
                 n - kept, n, name, max, svc->n_stored);
    else
        log_unit(LOG_DEBUG, svc->node->name, "fd store: %d fds named %s kept (%u stored)", n, name,
                 svc->n_stored);
}

int fdstore_remove(struct service_os *svc, const char *name)
{
    unsigned kept = 0;
    int removed = 0;
    for (unsigned i = 0; i < svc->n_stored; i++) {
        if (strcmp(svc->stored[i].name, name) == 0) {
            close(svc->stored[i].fd);
            free(svc->stored[i].name);
            removed++;
        } else {
            svc->stored[kept++] = svc->stored[i];
        }
    }
    svc->n_stored = kept;
    return removed;
}

void fdstore_trim(struct service_os *svc)
{
    unsigned max = svc->unit->extra->fd_store_max;
    if (svc->n_stored <= max)
        return;
    log_unit(LOG_WARNING, svc->node->name,
             "fd store: FileDescriptorStoreMax=%u; dropping the %u newest stored fds", max,
             svc->n_stored - max);
    while (svc->n_stored > max) {
        struct stored_fd *s = &svc->stored[--svc->n_stored];
        close(s->fd);
        free(s->name);
    }
}

void fdstore_clear(struct service_os *svc)
{
    for (unsigned i = 0; i < svc->n_stored; i++) {
        close(svc->stored[i].fd);
        free(svc->stored[i].name);
    }
    free(svc->stored);
    svc->stored = NULL;
    svc->n_stored = 0;
}

void service_fds_close(struct service_os *svc)
{
    for (size_t i = 0; i < svc->n_listens; i++) {
        struct listen_socket *ls = &svc->listens[i];
        if (ls->fd >= 0)
            listen_close(ls->address, ls->fd);
        free(ls->address);
    }
    free(svc->listens);
    svc->listens = NULL;
    svc->n_listens = 0;
    fdstore_clear(svc);
}

/* ---- handing them to an instance ---- */

int passed_fds_collect(struct service_os *svc, int mailbox_fd, struct passed_fds *ret, char *why,
                       size_t size)
{
    size_t cap = 1 + svc->n_listens + svc->n_stored;
    memset(ret, 0, sizeof(*ret));
    if (cap > SPAWN_MAX_PASS_FDS) {
        snprintf(why, size, "more than %d fds to pass", SPAWN_MAX_PASS_FDS);
        return -EMFILE;
    }
    ret->fds = malloc(cap * sizeof(*ret->fds));
    ret->names = malloc(cap * sizeof(*ret->names));
    if (!ret->fds || !ret->names) {
        passed_fds_free(ret);
        snprintf(why, size, "out of memory");
        return -ENOMEM;
    }
    if (mailbox_fd >= 0) {
        ret->fds[ret->n] = mailbox_fd;
        ret->names[ret->n++] = "mailbox";
    }
    for (size_t i = 0; i < svc->n_listens; i++) {
        struct listen_socket *ls = &svc->listens[i];
        struct listen_socket *first = find_listen(svc->listens, i, ls->address);
        if (first) { /* listed twice: the same socket */
            ret->fds[ret->n] = first->fd;
            ret->names[ret->n++] = "listen";
            continue;
        }
        if (ls->fd < 0) {
            int r = listen_open(ls->address, why, size);
            if (r < 0) {
                passed_fds_free(ret);
                return r;
            }
            ls->fd = r;
        }
        ret->fds[ret->n] = ls->fd;
        ret->names[ret->n++] = "listen";
    }
    for (unsigned i = 0; i < svc->n_stored; i++) {
        ret->fds[ret->n] = svc->stored[i].fd;
        ret->names[ret->n++] = svc->stored[i].name;
    }
    return 0;
}

void passed_fds_free(struct passed_fds *p)
{
    free(p->fds);
    free(p->names);
    memset(p, 0, sizeof(*p));
}
