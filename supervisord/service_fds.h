/*
 * service_fds.h: the file descriptors every instance of a service
 * inherits from arbord, in SPEC section 7's order: the mailbox (name
 * "mailbox"), the Listen= sockets in unit order ("listen"), then the fd
 * store (each its FDNAME=, default "stored").
 *
 * Listen= sockets are bound when the unit loads (and again at a start if
 * binding failed then) and held until the unit goes away or stops listing
 * them. The fd store follows systemd's semantics: a service sends
 * FDSTORE=1 (with FDNAME=) and fds on its notify socket; arbord keeps up
 * to FileDescriptorStoreMax= of them, never watching them (a memfd cannot
 * be polled), and hands them to each later instance, after a crash, a
 * restart or an upgrade. FDSTOREREMOVE=1 with FDNAME= drops them, and so
 * do `arborctl stop` and removing the unit.
 */
#ifndef ARBOR_SERVICE_FDS_H
#define ARBOR_SERVICE_FDS_H

#include <stddef.h>

struct service_os;

struct listen_socket {
    char *address; /* as written in Listen= */
    int fd;        /* -1 while it could not be bound */
};

struct stored_fd {
    int fd;
    char *name;
};

/* Bind what the unit's Listen= lists and close what it no longer does
 * (at setup and after a reload); failures are logged. */
void service_listen_refresh(struct service_os *svc);

/* Store `n` fds under `name` (NULL: "stored"); takes them over, closing
 * those past FileDescriptorStoreMax= with a warning. */
void fdstore_add(struct service_os *svc, const char *name, int *fds, int n);
/* Drop every stored fd named `name`. Returns how many. */
int fdstore_remove(struct service_os *svc, const char *name);
/* Drop stored fds beyond FileDescriptorStoreMax= (all, when it is 0). */
void fdstore_trim(struct service_os *svc);
void fdstore_clear(struct service_os *svc);

/* Close and forget every Listen= socket and stored fd (teardown). */
void service_fds_close(struct service_os *svc);

/* What an instance inherits, from fd 3 on. */
struct passed_fds {
    int *fds;
    const char **names;
    int n;
};

/* Collect the fds for an instance; `mailbox_fd` is -1 without a mailbox.
 * A Listen= socket that is not bound is tried again; if it still fails
 * the start fails: returns -errno with `why` filled. */
int passed_fds_collect(struct service_os *svc, int mailbox_fd, struct passed_fds *ret, char *why,
                       size_t size);
void passed_fds_free(struct passed_fds *p);

#endif
