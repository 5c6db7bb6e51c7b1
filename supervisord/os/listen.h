/*
 * listen.h: the sockets of Listen= (SPEC section 7), bound by arbord and
 * held across every instance of a service, so connections made while it
 * restarts wait in the kernel's backlog instead of being refused.
 */
#ifndef ARBOR_LISTEN_H
#define ARBOR_LISTEN_H

#include <stddef.h>

/* Bind and listen on `address`: an absolute Unix socket path (a stale
 * socket there is replaced; the new one gets mode 0666, as systemd's
 * SocketMode= default), "IPv4:PORT" or "[IPv6]:PORT". The fd is blocking
 * (what a service expects of an inherited socket) and close-on-exec.
 * Returns it, or -errno with `why` filled. */
int listen_open(const char *address, char *why, size_t size);

/* Close a socket from listen_open(); a Unix path is unlinked. */
void listen_close(const char *address, int fd);

#endif
