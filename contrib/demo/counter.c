/*
 * arbor-demo-counter: the receiving half of the demo's mailbox pair
 * (units/demo/counter.service, Mailbox=yes). It reads the numbers ticker
 * sends, checks that each is the one after the last, and crashes on
 * purpose every few messages, to show that no message is lost across a
 * crash and a restart.
 *
 * It reads the at-least-once way (arbor-mailbox(7)): peek at the next
 * message, act on it, and only then drop it from the mailbox. A crash
 * between acting and dropping leaves the message in the mailbox, and the
 * next instance gets it again; it is never lost. This demo crashes exactly
 * there, so after each restart the first message is the one the last
 * instance died holding, and counter says so.
 *
 * To tell "in order" from "a gap" across its own restarts, counter keeps
 * the last number it saw in a file ($ARBOR_RUNTIME/demo-counter.last, else
 * /tmp/demo-counter.last): a process that crashes forgets everything else.
 *
 *   arbor-demo-counter [STATE_FILE]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arbor.h"

static unsigned long load_last(const char *path)
{
    unsigned long last = 0;
    FILE *f = fopen(path, "re");
    if (f) {
        if (fscanf(f, "%lu", &last) != 1)
            last = 0;
        fclose(f);
    }
    return last;
}

/* Written whole, then renamed over the old one: never half a number. */
static void save_last(const char *path, unsigned long last)
{
    char tmp[4096 + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f || fprintf(f, "%lu\n", last) < 0 || fclose(f) != 0 || rename(tmp, path) < 0)
        printf("counter: cannot save the last number to %s: %s\n", path, strerror(errno));
}

static void report(unsigned long n, unsigned long last)
{
    if (last == 0 || n == last + 1)
        printf("counter: got %lu (in order)\n", n);
    else if (n == last)
        printf("counter: got %lu again: the last instance crashed before dropping it "
               "(at-least-once)\n",
               n);
    else if (n == 1)
        printf("counter: got 1: ticker started counting again\n");
    else if (n > last + 1)
        printf("counter: got %lu: GAP, %lu message(s) missing after %lu!\n", n, n - last - 1, last);
    else
        printf("counter: got %lu: OUT OF ORDER, the last was %lu!\n", n, last);
}

int main(int argc, char **argv)
{
    char state[4096];
    const char *runtime = getenv("ARBOR_RUNTIME");
    if (argc > 1)
        snprintf(state, sizeof(state), "%s", argv[1]);
    else
        snprintf(state, sizeof(state), "%s/demo-counter.last",
                 runtime && *runtime ? runtime : "/tmp");

    setvbuf(stdout, NULL, _IOLBF, 0); /* arbord reads our output line by line */
    int fd = arbor_mailbox_fd();
    if (fd < 0) {
        printf("counter: no mailbox (%s): run me as a service with Mailbox=yes\n", strerror(errno));
        return 1;
    }
    unsigned long last = load_last(state);
    srand((unsigned)getpid());
    int crash_after = 7 + rand() % 4; /* messages this instance handles */
    printf("counter: up (pid %d); the last number seen was %lu; will crash after %d\n",
           (int)getpid(), last, crash_after);

    for (int handled = 0;;) {
        char buf[64];
        /* Peek: the message stays in the mailbox until it is dropped. */
        ssize_t len = arbor_recv_flags(fd, buf, sizeof(buf) - 1, NULL, ARBOR_PEEK);
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0) {
            printf("counter: recv: %s\n", strerror(errno));
            return 1;
        }
        buf[len] = '\0';
        char *end;
        unsigned long n = strtoul(buf, &end, 10);
        if (end == buf || *end) {
            printf("counter: ignoring a message that is not a number: \"%s\"\n", buf);
        } else {
            report(n, last);
            last = n;
            save_last(state, last);
            if (++handled == crash_after) {
                printf("counter: crashing on purpose, with %lu read but not dropped\n", n);
                _exit(3);
            }
        }
        /* Done with it: now drop it. */
        arbor_recv_flags(fd, NULL, 0, NULL, 0);
    }
}
