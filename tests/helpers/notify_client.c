/*
 * notify_client: a tiny service for the integration tests, linked with
 * libsystemd so that arbord is tested against the real sd_notify().
 *
 *   notify_client STEP...
 *
 * Steps run in order: "sleep:SECONDS", "exit:CODE", "fork-notify:MSG" (a
 * child sends MSG and exits before the parent goes on), "watchdog-loop"
 * (ping at half of WATCHDOG_USEC, forever), "pause" (wait for a signal,
 * forever), "echo:TEXT" (to stdout); anything else is sent with
 * sd_notify(0, STEP). With no exit step it pauses at the end.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

static void sleep_seconds(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds};
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) < 0)
        ;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *step = argv[i];
        if (strncmp(step, "sleep:", 6) == 0) {
            sleep_seconds(atof(step + 6));
        } else if (strncmp(step, "exit:", 5) == 0) {
            return atoi(step + 5);
        } else if (strncmp(step, "echo:", 5) == 0) {
            printf("%s\n", step + 5);
        } else if (strncmp(step, "fork-notify:", 12) == 0) {
            pid_t pid = fork();
            if (pid == 0) {
                int r = sd_notify(0, step + 12);
                _exit(r > 0 ? 0 : 1);
            }
            int status;
            waitpid(pid, &status, 0);
        } else if (strcmp(step, "watchdog-loop") == 0) {
            uint64_t usec = 0;
            if (sd_watchdog_enabled(0, &usec) <= 0) {
                fprintf(stderr, "watchdog not enabled\n");
                return 3;
            }
            for (;;) {
                sd_notify(0, "WATCHDOG=1");
                sleep_seconds((double)usec / 2e6);
            }
        } else if (strcmp(step, "pause") == 0) {
            for (;;)
                pause();
        } else {
            int r = sd_notify(0, step);
            if (r <= 0) {
                fprintf(stderr, "sd_notify(%s) returned %d\n", step, r);
                return 4;
            }
        }
    }
    for (;;)
        pause();
}
