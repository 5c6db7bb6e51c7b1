/*
 * bench_svc.c: the service every supervisor runs in bench/side_by_side.py.
 *
 * It reads CLOCK_MONOTONIC at its ELF entry point, before the C library
 * starts (on x86-64; elsewhere first thing in main()), so the time it
 * reports is the time its exec completed. The C library's own start-up is
 * the service's business, not the supervisor's, and not small here: a
 * static glibc probes the CPU with cpuid, which traps to the hypervisor on
 * this VM (measured: 240-290 us from the entry point to main()). The
 * benchmark's killer reads the same clock just before kill(), and the
 * difference is the crash-to-respawn latency. Then it does what its
 * options say and waits for ever (or crashes on purpose).
 *
 *   bench_svc [-s FIFO] [-c FILE] [-n] [-f FD] [-x MS]
 *
 *   -s FIFO  write "PID NANOSECONDS\n" to FIFO (one write, atomic)
 *   -c FILE  append one byte to FILE: its size counts the starts
 *   -n       send READY=1 to $NOTIFY_SOCKET (sd_notify, as a raw datagram)
 *   -f FD    write a newline to FD and close it (s6's notification-fd)
 *   -x MS    sleep MS milliseconds, then exit 1; otherwise pause() for ever
 *
 * When its first argument is not an option (or there is none) it reads its
 * options, split on blanks, from the file "bench-args" in its working
 * directory if there is one: s6-supervise and runsv run ./run (a symbolic
 * link to this program) in the service's directory, with no arguments or
 * just the service's name. Without that file it just waits.
 *
 * Linked statically where the C library allows it, so that a start costs
 * the supervisor's work and the kernel's, not the dynamic loader's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 32

/* Set by bench_entry before the C library runs; zero if it did not. */
struct timespec exec_time;

#if defined(__x86_64__)
/* The entry point (linked with -e bench_entry): clock_gettime by a raw
 * system call into exec_time, then the C library's _start with the stack
 * and %rdx (the dynamic linker's fini function) as the kernel left them. */
__asm__(".text\n"
        ".globl bench_entry\n"
        ".type bench_entry, @function\n"
        "bench_entry:\n"
        "    mov %rdx, %r12\n"
        "    mov $228, %eax\n" /* SYS_clock_gettime */
        "    mov $1, %edi\n"   /* CLOCK_MONOTONIC */
        "    lea exec_time(%rip), %rsi\n"
        "    syscall\n"
        "    mov %r12, %rdx\n"
        "    jmp _start\n");
#endif

static void stamp(const char *fifo, const struct timespec *t)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%d %lld\n", (int)getpid(),
                     (long long)t->tv_sec * 1000000000LL + t->tv_nsec);
    /* Opened non-blocking, so that no reader (the benchmark is gone) does
     * not hang us; written blocking, so that a full pipe loses nothing. */
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    fcntl(fd, F_SETFL, 0);
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

static void count(const char *file)
{
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, "x", 1);
    (void)w;
    close(fd);
}

static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(addr.sun_path))
        return;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    static const char msg[] = "READY=1";
    ssize_t w = sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&addr,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    (void)w;
    close(fd);
}

/* Arguments from ./bench-args, for a supervisor that passes none. */
static int args_from_file(char **argv, char *buf, size_t size)
{
    int fd = open("bench-args", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int argc = 1;
    for (char *tok = strtok(buf, " \t\n"); tok && argc < MAX_ARGS - 1; tok = strtok(NULL, " \t\n"))
        argv[argc++] = tok;
    argv[argc] = NULL;
    return argc;
}

int main(int argc, char **argv)
{
    struct timespec started = exec_time;
    if (started.tv_sec == 0 && started.tv_nsec == 0)
        clock_gettime(CLOCK_MONOTONIC, &started);

    char *file_argv[MAX_ARGS] = {argv[0]};
    char file_buf[4096];
    if (argc == 1 || argv[1][0] != '-') {
        int n = args_from_file(file_argv, file_buf, sizeof(file_buf));
        if (n > 0) {
            argc = n;
            argv = file_argv;
        }
    }

    const char *fifo = NULL, *counter = NULL;
    int notify = 0, notify_fd = -1;
    long crash_ms = -1;
    int opt;
    while ((opt = getopt(argc, argv, "s:c:nf:x:")) != -1) {
        switch (opt) {
        case 's':
            fifo = optarg;
            break;
        case 'c':
            counter = optarg;
            break;
        case 'n':
            notify = 1;
            break;
        case 'f':
            notify_fd = atoi(optarg);
            break;
        case 'x':
            crash_ms = atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_svc [-s FIFO] [-c FILE] [-n] [-f FD] [-x MS]\n");
            return 100;
        }
    }

    if (fifo)
        stamp(fifo, &started);
    if (counter)
        count(counter);
    if (notify)
        notify_ready();
    if (notify_fd >= 0) {
        ssize_t w = write(notify_fd, "\n", 1);
        (void)w;
        close(notify_fd);
    }
    if (crash_ms >= 0) {
        struct timespec nap = {crash_ms / 1000, (crash_ms % 1000) * 1000000L};
        while (nanosleep(&nap, &nap) < 0 && errno == EINTR)
            ;
        return 1;
    }
    for (;;)
        pause();
}
