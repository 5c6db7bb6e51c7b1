/*
 * mailbox_bench: 64-byte messages through an arbor mailbox, against a raw
 * AF_UNIX datagram socketpair between two processes, in the same run.
 *
 *   mailbox_bench raw [N PINGS]           socketpair: throughput and round trip
 *   mailbox_bench bound N PATH            a datagram socket bound at PATH: throughput
 *   mailbox_bench send PATH REPLY N       throughput into a mailbox at PATH
 *   mailbox_bench ping PATH REPLY N       round trips through a mailbox
 *   mailbox_bench timed PATH SECONDS      send for that long (blocking on
 *                                         back-pressure); print messages/s
 *   mailbox_bench receiver                as a service: reads fd 3; echoes each
 *                                         "p" message to $BENCH_REPLY, and
 *                                         reports every 10,000th count there
 *
 * The driver is bench/mailbox_bench.py, which starts arbord with the
 * receiver as a Mailbox=yes service and runs these modes side by side.
 */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct sockaddr_un address(const char *path, socklen_t *len)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
    return a;
}

static int bound_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    socklen_t len;
    struct sockaddr_un a = address(path, &len);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0) {
        perror(path);
        exit(1);
    }
    return fd;
}

/* ---- raw socketpair ---- */

static void raw(long n, long pings)
{
    int sv[2], back[2];
    char buf[MESSAGE] = "m";
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, back);
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < n; i++)
            recv(sv[1], buf, sizeof(buf), 0);
        send(back[1], "done", 4, 0);
        for (long i = 0; i < pings; i++) {
            recv(sv[1], buf, sizeof(buf), 0);
            send(back[1], buf, MESSAGE, 0);
        }
        _exit(0);
    }
    double t0 = now();
    for (long i = 0; i < n; i++)
        send(sv[0], buf, MESSAGE, 0);
    recv(back[0], buf, sizeof(buf), 0);
    double elapsed = now() - t0;
    double *rtt = malloc((size_t)pings * sizeof(*rtt));
    for (long i = 0; i < pings; i++) {
        double t = now();
        send(sv[0], buf, MESSAGE, 0);
        recv(back[0], buf, sizeof(buf), 0);
        rtt[i] = (now() - t) * 1e6;
    }
    waitpid(child, NULL, 0);
    qsort(rtt, (size_t)pings, sizeof(*rtt), compare);
    printf("raw throughput %.0f msg/s\n", (double)n / elapsed);
    printf("raw rtt p50 %.1f us p99 %.1f us\n", rtt[pings / 2], rtt[pings * 99 / 100]);
    free(rtt);
}

/* The same with a datagram socket bound to a path, as any service
 * reading a Unix socket has: the kernel queues at most
 * net.unix.max_dgram_qlen (10) datagrams for it, however fast it reads. */
static void raw_bound(long n, const char *path)
{
    int back[2];
    char buf[MESSAGE] = "m";
    socketpair(AF_UNIX, SOCK_DGRAM, 0, back);
    int in = bound_socket(path);
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < n; i++)
            recv(in, buf, sizeof(buf), 0);
        send(back[1], "done", 4, 0);
        _exit(0);
    }
    int out = socket(AF_UNIX, SOCK_DGRAM, 0);
    socklen_t len;
    struct sockaddr_un to = address(path, &len);
    double t0 = now();
    for (long i = 0; i < n; i++)
        sendto(out, buf, MESSAGE, 0, (struct sockaddr *)&to, len);
    recv(back[0], buf, sizeof(buf), 0);
    printf("bound throughput %.0f msg/s\n", (double)n / (now() - t0));
    waitpid(child, NULL, 0);
    unlink(path);
}

/* ---- through a mailbox ---- */

/* Send n messages; the receiver reports its count every 10,000 messages
 * to the reply socket: stop the clock at the report for n. */
static void send_mode(const char *path, const char *reply, long n)
{
    int out = socket(AF_UNIX, SOCK_DGRAM, 0), in = bound_socket(reply);
    socklen_t len;
    struct sockaddr_un to = address(path, &len);
    char buf[MESSAGE] = "m", report[64];
    long count = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        while (sendto(out, buf, MESSAGE, 0, (struct sockaddr *)&to, len) < 0) {
            if (errno != EINTR) {
                perror("sendto");
                exit(1);
            }
        }
        /* Take the receiver's reports as they come, so they never pile up. */
        ssize_t r;
        while (i % 1000 == 0 && (r = recv(in, report, sizeof(report) - 1, MSG_DONTWAIT)) > 0) {
            report[r] = '\0';
            count = atol(report + 1);
        }
    }
    while (count < n) {
        ssize_t r = recv(in, report, sizeof(report) - 1, 0);
        if (r <= 0)
            continue;
        report[r] = '\0';
        count = atol(report + 1);
    }
    printf("mailbox throughput %.0f msg/s\n", (double)n / (now() - t0));
    unlink(reply);
}

static void ping_mode(const char *path, const char *reply, long pings)
{
    int out = socket(AF_UNIX, SOCK_DGRAM, 0), in = bound_socket(reply);
    socklen_t len;
    struct sockaddr_un to = address(path, &len);
    char buf[MESSAGE] = "p";
    double *rtt = malloc((size_t)pings * sizeof(*rtt));
    for (long i = 0; i < pings; i++) {
        double t = now();
        sendto(out, buf, MESSAGE, 0, (struct sockaddr *)&to, len);
        recv(in, buf, sizeof(buf), 0);
        rtt[i] = (now() - t) * 1e6;
    }
    qsort(rtt, (size_t)pings, sizeof(*rtt), compare);
    printf("mailbox rtt p50 %.1f us p99 %.1f us\n", rtt[pings / 2], rtt[pings * 99 / 100]);
    free(rtt);
    unlink(reply);
}

static void timed_mode(const char *path, double seconds)
{
    int out = socket(AF_UNIX, SOCK_DGRAM, 0);
    socklen_t len;
    struct sockaddr_un to = address(path, &len);
    char buf[MESSAGE] = "m";
    long sent = 0;
    double t0 = now(), end = t0 + seconds;
    while (now() < end) {
        for (int i = 0; i < 1000; i++)
            if (sendto(out, buf, MESSAGE, 0, (struct sockaddr *)&to, len) == MESSAGE)
                sent++;
    }
    printf("mailbox throughput under restarts %.0f msg/s (%ld sent)\n", (double)sent / (now() - t0),
           sent);
}

/* As a service: count messages; echo pings; report every 10,000. The
 * count survives restarts through $BENCH_COUNT_FILE, so the driver can
 * restart it during a run and still see totals. */
static void receiver(void)
{
    const char *reply = getenv("BENCH_REPLY");
    const char *count_file = getenv("BENCH_COUNT_FILE");
    int out = socket(AF_UNIX, SOCK_DGRAM, 0);
    socklen_t len;
    struct sockaddr_un to = address(reply, &len);
    long count = 0;
    FILE *f = count_file ? fopen(count_file, "r") : NULL;
    if (f) {
        if (fscanf(f, "%ld", &count) != 1)
            count = 0;
        fclose(f);
    }
    char buf[65536];
    for (;;) {
        ssize_t r = recv(3, buf, sizeof(buf), 0);
        if (r <= 0)
            continue;
        if (buf[0] == 'p') {
            sendto(out, buf, (size_t)r, 0, (struct sockaddr *)&to, len);
            continue;
        }
        if (++count % 10000 == 0) {
            char report[32];
            int n = snprintf(report, sizeof(report), "c%ld", count);
            sendto(out, report, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&to, len);
            if (count_file && (f = fopen(count_file, "w"))) {
                fprintf(f, "%ld\n", count);
                fclose(f);
            }
        }
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "raw") == 0)
        raw(argc > 2 ? atol(argv[2]) : 1000000, argc > 3 ? atol(argv[3]) : 20000);
    else if (argc == 5 && strcmp(argv[1], "send") == 0)
        send_mode(argv[2], argv[3], atol(argv[4]));
    else if (argc == 5 && strcmp(argv[1], "ping") == 0)
        ping_mode(argv[2], argv[3], atol(argv[4]));
    else if (argc == 4 && strcmp(argv[1], "bound") == 0)
        raw_bound(atol(argv[2]), argv[3]);
    else if (argc == 4 && strcmp(argv[1], "timed") == 0)
        timed_mode(argv[2], atof(argv[3]));
    else if (argc == 2 && strcmp(argv[1], "receiver") == 0)
        receiver();
    else {
        fprintf(stderr, "usage: see the comment at the top of mailbox_bench.c\n");
        return 2;
    }
    return 0;
}
