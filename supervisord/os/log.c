/*
 * log.c: see log.h. One fixed buffer of LOG_BUFFER bytes holds what stderr
 * could not take yet; an ev_io watcher drains it when stderr is writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <systemd/sd-journal.h>

#include "os/log.h"

#define LOG_BUFFER (256 * 1024)
#define LOG_LINE_MAX 8192

static struct {
    int fd;
    bool is_socket;
    bool verbose;
    bool journal;
    char buffer[LOG_BUFFER];
    size_t used;
    unsigned long dropped;
    struct ev_loop *loop;
    ev_io writable;
} logger = {.fd = 2};

static ssize_t write_some(const char *data, size_t len)
{
    ssize_t n;
    do {
        n = logger.is_socket ? send(logger.fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                             : write(logger.fd, data, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Write from the front of the buffer; keep what does not fit. */
static void drain(void)
{
    size_t done = 0;
    while (done < logger.used) {
        ssize_t n = write_some(logger.buffer + done, logger.used - done);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                done = logger.used; /* stderr is gone: nothing more to do */
            break;
        }
        done += (size_t)n;
    }
    memmove(logger.buffer, logger.buffer + done, logger.used - done);
    logger.used -= done;
    if (logger.loop) {
        if (logger.used > 0)
            ev_io_start(logger.loop, &logger.writable);
        else
            ev_io_stop(logger.loop, &logger.writable);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    drain();
}

/* Services' output may fill only part of the buffer, so that arbord's own
 * messages (transitions, errors) still fit while a service floods. */
#define LOG_OUTPUT_SHARE (LOG_BUFFER / 4 * 3)

static void append(const char *data, size_t len, size_t limit)
{
    /* The note about dropped lines waits for room outside the reserve, so
     * that notes cannot crowd out arbord's own messages either. */
    if (logger.dropped > 0 && logger.used + 64 < LOG_OUTPUT_SHARE) {
        char note[64];
        int n = snprintf(note, sizeof(note), "arbord: %lu log lines dropped (stderr full)\n",
                         logger.dropped);
        logger.dropped = 0;
        memcpy(logger.buffer + logger.used, note, (size_t)n);
        logger.used += (size_t)n;
    }
    if (logger.used + len > limit) {
        logger.dropped++;
        return;
    }
    memcpy(logger.buffer + logger.used, data, len);
    logger.used += len;
    drain();
}

/* Give stderr a file description of our own so O_NONBLOCK does not leak to
 * whoever shares it (a terminal, a container runtime's pipe). */
static void make_nonblocking_stderr(void)
{
    struct stat st;
    if (fstat(2, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        logger.is_socket = true;
        return;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
        return; /* a file: writes do not block for long */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0)
        logger.fd = fd;
}

/* Under systemd, JOURNAL_STREAM names the journal stream our stderr is
 * connected to: then write structured entries to the journal instead (with
 * ARBOR_UNIT= as a field), rather than the same lines twice. */
static bool stderr_is_journal(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!stream || sscanf(stream, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(bool verbose)
{
    logger.verbose = verbose;
    logger.journal = stderr_is_journal() && access("/run/systemd/journal/socket", W_OK) == 0;
    make_nonblocking_stderr();
}

void log_attach(struct ev_loop *loop)
{
    logger.loop = loop;
    ev_io_init(&logger.writable, on_writable, logger.fd, EV_WRITE);
    drain();
}

void log_flush(void)
{
    int flags = fcntl(logger.fd, F_GETFL);
    if (logger.fd != 2 && flags >= 0)
        fcntl(logger.fd, F_SETFL, flags & ~O_NONBLOCK);
    logger.loop = NULL;
    while (logger.used > 0) {
        size_t before = logger.used;
        drain();
        if (logger.used == before)
            break;
    }
}

bool log_verbose(void)
{
    return logger.verbose;
}

static void emit(int priority, const char *unit, const char *text, size_t len, const char *line,
                 size_t limit)
{
    if (priority == LOG_DEBUG && !logger.verbose)
        return;
    if (!logger.journal)
        append(line, strlen(line), limit);
    else
        sd_journal_send("MESSAGE=%.*s", (int)len, text, "PRIORITY=%d", priority,
                        "SYSLOG_IDENTIFIER=arbord", "ARBOR_UNIT=%s", unit ? unit : "", NULL);
}

void log_msg(int priority, const char *fmt, ...)
{
    char text[LOG_LINE_MAX], line[LOG_LINE_MAX + 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "arbord: %s\n", text);
    emit(priority, NULL, text, strlen(text), line, LOG_BUFFER);
}

void log_unit(int priority, const char *unit, const char *fmt, ...)
{
    char text[LOG_LINE_MAX], line[LOG_LINE_MAX + 96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "arbord: %s: %s\n", unit, text);
    emit(priority, unit, text, strlen(text), line, LOG_BUFFER);
}

void log_output(const char *unit, int pid, const char *text, size_t len)
{
    char line[LOG_LINE_MAX + 96];
    if (len > LOG_LINE_MAX)
        len = LOG_LINE_MAX;
    snprintf(line, sizeof(line), "%s[%d]: %.*s\n", unit, pid, (int)len, text);
    emit(LOG_INFO, unit, text, len, line, LOG_OUTPUT_SHARE);
}
