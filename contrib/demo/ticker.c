/*
 * arbor-demo-ticker: the sending half of the demo's mailbox pair
 * (units/demo/ticker.service). Every half second it sends the next number,
 * as text, to the mailbox of `counter`, with libarbor:
 *
 *   arbor_send("counter", "41", 2, 0);
 *
 * It never needs to know whether counter is running: while counter is
 * down, arbord keeps the messages, and the next instance reads them in
 * order. The send only waits if counter's mailbox is full (back-pressure).
 *
 *   arbor-demo-ticker [MAILBOX [INTERVAL_MS]]   (default: counter 500)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arbor.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    const char *to = argc > 1 ? argv[1] : "counter";
    long interval_ms = argc > 2 ? atol(argv[2]) : 500;
    int last_error = 0;

    setvbuf(stdout, NULL, _IOLBF, 0); /* arbord reads our output line by line */
    printf("ticker: up; sending a number to %s every %ld ms\n", to, interval_ms);
    for (unsigned long n = 1;;) {
        char text[32];
        int len = snprintf(text, sizeof(text), "%lu", n);
        if (arbor_send(to, text, (size_t)len, 0) < 0) {
            /* Not lost: not sent. Say why once, and try the same number
             * again. */
            if (errno != last_error)
                printf("ticker: cannot send %lu to %s: %s%s\n", n, to, strerror(errno),
                       errno == EACCES ? " (see MailboxMode= in arbor.unit(5))" : "");
            last_error = errno;
            sleep_ms(1000);
            continue;
        }
        last_error = 0;
        if (n % 10 == 0)
            printf("ticker: sent %lu so far\n", n);
        n++;
        sleep_ms(interval_ms);
    }
}
