/*
 * test_libarbor: libarbor (lib/arbor.h) without arbord: the envelope codec,
 * arbor_mailbox_fd()'s reading of LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, and
 * send, receive and reply over real sockets standing in for mailboxes
 * (a socket bound at TMP/mailbox/NAME is all a sender can see of one).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arbor.h"

/* ---- helpers ---------------------------------------------------------------- */

static char tmpdir[PATH_MAX];

static int make_tmpdir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_libarbor.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/mailbox", tmpdir);
    assert_int_equal(mkdir(path, 0755), 0);
    setenv("ARBOR_RUNTIME", tmpdir, 1);
    unsetenv("ARBOR_UNIT");
    return 0;
}

static int remove_tmpdir(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A datagram (or `type`) socket bound at `path`, as arbord binds a mailbox. */
static int bind_at(const char *path, int type)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    if (type == SOCK_SEQPACKET)
        assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* The mailbox NAME under $ARBOR_RUNTIME. */
static int mailbox(const char *name)
{
    char path[PATH_MAX + 80];
    snprintf(path, sizeof(path), "%s/mailbox/%s", tmpdir, name);
    return bind_at(path, SOCK_DGRAM);
}

static void socket_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- the envelope ----------------------------------------------------------- */

static void test_envelope_layout(void **state)
{
    unsigned char buf[ARBOR_ENVELOPE_MAX];
    assert_int_equal(arbor_envelope_encode("web-1", buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "\0ARB\x01\x05web-1", 11);

    char name[ARBOR_NAME_MAX + 1] = "junk";
    assert_int_equal(arbor_envelope_decode(buf, 11, name), 11);
    assert_string_equal(name, "web-1");
    /* The same with the message after it, and with no room for the name. */
    unsigned char msg[32];
    memcpy(msg, buf, 11);
    memcpy(msg + 11, "hello", 5);
    assert_int_equal(arbor_envelope_decode(msg, 16, NULL), 11);
    assert_int_equal(arbor_envelope_decode(msg, 10, name), 0);
    assert_string_equal(name, "");
}

static void test_envelope_longest_name(void **state)
{
    char longest[ARBOR_NAME_MAX + 2];
    memset(longest, 'a', ARBOR_NAME_MAX);
    longest[ARBOR_NAME_MAX] = '\0';
    unsigned char buf[ARBOR_ENVELOPE_MAX];
    assert_int_equal(arbor_envelope_encode(longest, buf, sizeof(buf)), ARBOR_ENVELOPE_MAX);
    char name[ARBOR_NAME_MAX + 1];
    assert_int_equal(arbor_envelope_decode(buf, sizeof(buf), name), ARBOR_ENVELOPE_MAX);
    assert_string_equal(name, longest);

    /* One byte longer is no unit name. */
    longest[ARBOR_NAME_MAX] = 'a';
    longest[ARBOR_NAME_MAX + 1] = '\0';
    errno = 0;
    assert_int_equal(arbor_envelope_encode(longest, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_envelope_encode_errors(void **state)
{
    unsigned char buf[ARBOR_ENVELOPE_MAX];
    static const char *const bad[] = {"", "-x", ".x", "a/b", "../etc", "a b", "a\n", "é"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(arbor_envelope_encode(bad[i], buf, sizeof(buf)), -1);
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_int_equal(arbor_envelope_encode(NULL, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(arbor_envelope_encode("abc", buf, 8), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(arbor_envelope_encode("abc", buf, 9), 9);
}

/* Whatever is not exactly an envelope is a plain message. */
static void test_envelope_decode_plain(void **state)
{
    static const struct {
        const char *data;
        size_t len;
    } plain[] = {
        {"", 0},
        {"hello", 5},
        {"\0ARB", 4},
        {"\0ARB\x01", 5},
        {"\0ARB\x01\x03"
         "ab",
         8}, /* shorter than its name */
        {"\0ARB\x02\x03"
         "abc",
         9}, /* a version we do not know */
        {"\0ARB\x01\x00"
         "abc",
         9}, /* an empty name */
        {"\0ARB\x01\x41"
         "abc",
         9}, /* a name longer than any */
        {"\0ARB\x01\x03"
         "a/c",
         9}, /* not a unit name */
        {"\0ARB\x01\x03"
         "-bc",
         9},
        {"\0arb\x01\x03"
         "abc",
         9},
        {"\1ARB\x01\x03"
         "abc",
         9},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char name[ARBOR_NAME_MAX + 1] = "junk";
        assert_int_equal(arbor_envelope_decode(plain[i].data, plain[i].len, name), 0);
        assert_string_equal(name, "");
    }
    assert_int_equal(arbor_envelope_decode("\0ARB\x01\x03"
                                           "abc",
                                           9, NULL),
                     9);
}

/* ---- receiving -------------------------------------------------------------- */

static void send_raw(int fd, const void *data, size_t len)
{
    assert_int_equal(send(fd, data, len, 0), (ssize_t)len);
}

static void test_recv_plain_byte_for_byte(void **state)
{
    int sv[2];
    socket_pair(sv);
    struct arbor_sender from = {.name = "junk"};
    char buf[256];

    send_raw(sv[1], "hello", 5);
    assert_int_equal(arbor_recv(sv[0], buf, sizeof(buf), &from), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_string_equal(from.name, "");
    assert_false(from.truncated);

    /* Longer than the envelope's room, with NULs in it. */
    char big[200];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    send_raw(sv[1], big, sizeof(big));
    assert_int_equal(arbor_recv(sv[0], buf, sizeof(buf), &from), sizeof(big));
    assert_memory_equal(buf, big, sizeof(big));

    /* An empty message is a message. */
    send_raw(sv[1], "", 0);
    assert_int_equal(arbor_recv(sv[0], buf, sizeof(buf), NULL), 0);
    close(sv[0]);
    close(sv[1]);
}

/* An enveloped message comes out as it went in, for every size around the
 * envelope's room, into buffers just big enough, and too small. */
static void test_recv_envelope_every_size(void **state)
{
    int sv[2];
    socket_pair(sv);
    unsigned char datagram[512], payload[300], buf[400];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (unsigned char)(i * 13 + 1);
    static const char *const names[] = {"a", "counter", "x123456789.abcdefghij_klmnopqrstuvwxyz-"};

    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        ssize_t h = arbor_envelope_encode(names[k], datagram, sizeof(datagram));
        assert_true(h > 0);
        for (size_t len = 0; len <= 200; len += (len < 80 ? 1 : 17)) {
            memcpy(datagram + h, payload, len);
            /* Room for all of it. */
            send_raw(sv[1], datagram, (size_t)h + len);
            struct arbor_sender from;
            memset(buf, 0xee, sizeof(buf));
            assert_int_equal(arbor_recv(sv[0], buf, len, &from), (ssize_t)len);
            assert_memory_equal(buf, payload, len);
            assert_string_equal(from.name, names[k]);
            assert_false(from.truncated);
            assert_int_equal(buf[len], 0xee); /* nothing written past len */
            /* Room for less: the start of it, and truncated says so. */
            if (len > 0) {
                size_t room = len / 2;
                send_raw(sv[1], datagram, (size_t)h + len);
                memset(buf, 0xee, sizeof(buf));
                assert_int_equal(arbor_recv(sv[0], buf, room, &from), (ssize_t)room);
                assert_memory_equal(buf, payload, room);
                assert_int_equal(buf[room], 0xee);
                assert_true(from.truncated);
                assert_string_equal(from.name, names[k]);
            }
        }
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_recv_truncated_plain(void **state)
{
    int sv[2];
    socket_pair(sv);
    char big[1000], buf[10];
    memset(big, 'x', sizeof(big));
    big[0] = 'a';
    send_raw(sv[1], big, sizeof(big));
    struct arbor_sender from;
    assert_int_equal(arbor_recv(sv[0], buf, sizeof(buf), &from), 10);
    assert_memory_equal(buf, "axxxxxxxxx", 10);
    assert_true(from.truncated);
    close(sv[0]);
    close(sv[1]);
}

static void test_recv_peek_drop_nonblock(void **state)
{
    int sv[2];
    socket_pair(sv);
    char buf[64];
    struct arbor_sender from;

    errno = 0;
    assert_int_equal(arbor_recv_flags(sv[0], buf, sizeof(buf), NULL, ARBOR_NONBLOCK), -1);
    assert_int_equal(errno, EAGAIN);

    unsigned char datagram[64];
    ssize_t h = arbor_envelope_encode("ticker", datagram, sizeof(datagram));
    memcpy(datagram + h, "41", 2);
    send_raw(sv[1], datagram, (size_t)h + 2);
    send_raw(sv[1], "42", 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(arbor_recv_flags(sv[0], buf, sizeof(buf), &from, ARBOR_PEEK), 2);
        assert_memory_equal(buf, "41", 2);
        assert_string_equal(from.name, "ticker");
    }
    assert_int_equal(arbor_recv_flags(sv[0], NULL, 0, NULL, 0), 0); /* drop */
    assert_int_equal(arbor_recv_flags(sv[0], buf, sizeof(buf), &from, ARBOR_NONBLOCK), 2);
    assert_memory_equal(buf, "42", 2);
    assert_string_equal(from.name, "");

    errno = 0;
    assert_int_equal(arbor_recv_flags(sv[0], buf, sizeof(buf), NULL, 0x100), -1);
    assert_int_equal(errno, EINVAL);
    close(sv[0]);
    close(sv[1]);
}

/* ---- arbor_mailbox_fd() ----------------------------------------------------- */

static void set_listen_env(const char *pid, const char *fds, const char *names)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (pid)
        setenv("LISTEN_PID", pid, 1);
    if (fds)
        setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
}

static void my_pid(char *buf, size_t size)
{
    /* arbord writes it zero-padded to a fixed width. */
    snprintf(buf, size, "%010d", (int)getpid());
}

static void expect_no_fd(int error)
{
    errno = 0;
    assert_int_equal(arbor_mailbox_fd(), -1);
    assert_int_equal(errno, error);
}

static void test_mailbox_fd(void **state)
{
    char pid[32];
    my_pid(pid, sizeof(pid));
    int saved3 = dup(3), saved4 = dup(4); /* whatever the test runner left there */
    int sv[2];
    socket_pair(sv);
    assert_int_equal(dup2(sv[0], 3), 3); /* dup2 clears close-on-exec */
    assert_int_equal(dup2(sv[1], 4), 4);

    set_listen_env(pid, "1", "mailbox");
    assert_int_equal(arbor_mailbox_fd(), 3);
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    /* The environment is left alone: a second call finds it again. */
    assert_int_equal(arbor_mailbox_fd(), 3);

    set_listen_env(pid, "2", "data:mailbox");
    assert_int_equal(arbor_mailbox_fd(), 4);
    set_listen_env(pid, "2", "mailbox:data");
    assert_int_equal(arbor_mailbox_fd(), 3);

    /* None for us. */
    set_listen_env(NULL, NULL, NULL);
    expect_no_fd(ENOENT);
    set_listen_env(pid, "1", NULL);
    expect_no_fd(ENOENT);
    set_listen_env(pid, "1", "data");
    expect_no_fd(ENOENT);
    set_listen_env(pid, "1", "mailboxes");
    expect_no_fd(ENOENT);
    set_listen_env(pid, "1", "data:mailbox"); /* named, but beyond LISTEN_FDS */
    expect_no_fd(ENOENT);
    set_listen_env(pid, "0", "mailbox");
    expect_no_fd(ENOENT);
    char other[32];
    snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
    set_listen_env(other, "1", "mailbox"); /* inherited from a parent */
    expect_no_fd(ENOENT);

    /* Malformed. */
    set_listen_env("12x", "1", "mailbox");
    expect_no_fd(EINVAL);
    set_listen_env(pid, "one", "mailbox");
    expect_no_fd(EINVAL);
    set_listen_env(pid, "-1", "mailbox");
    expect_no_fd(EINVAL);
    set_listen_env("", "1", "mailbox");
    expect_no_fd(EINVAL);

    /* Named, but not an open socket. */
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(dup2(pipefd[0], 3), 3);
    set_listen_env(pid, "1", "mailbox");
    expect_no_fd(ENOTSOCK);
    close(3);
    expect_no_fd(EBADF);

    close(pipefd[0]);
    close(pipefd[1]);
    close(4);
    close(sv[0]);
    close(sv[1]);
    if (saved3 >= 0) {
        dup2(saved3, 3);
        close(saved3);
    }
    if (saved4 >= 0) {
        dup2(saved4, 4);
        close(saved4);
    }
    set_listen_env(NULL, NULL, NULL);
}

/* ---- sending ---------------------------------------------------------------- */

static void test_send_by_name(void **state)
{
    int box = mailbox("counter");
    char buf[ARBOR_MESSAGE_MAX];
    struct arbor_sender from;

    assert_int_equal(arbor_send("counter", "41", 2, 0), 0);
    assert_int_equal(recv(box, buf, sizeof(buf), MSG_DONTWAIT), 2); /* byte for byte */
    assert_memory_equal(buf, "41", 2);

    assert_int_equal(arbor_send("counter", "", 0, 0), 0);
    assert_int_equal(arbor_recv(box, buf, sizeof(buf), &from), 0);

    /* 64 KiB is the most; one more byte is EMSGSIZE and sends nothing. */
    char *big = calloc(1, ARBOR_MESSAGE_MAX + 1);
    assert_non_null(big);
    assert_int_equal(arbor_send("counter", big, ARBOR_MESSAGE_MAX, 0), 0);
    assert_int_equal(arbor_recv(box, buf, sizeof(buf), &from), ARBOR_MESSAGE_MAX);
    errno = 0;
    assert_int_equal(arbor_send("counter", big, ARBOR_MESSAGE_MAX + 1, 0), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(recv(box, buf, sizeof(buf), MSG_DONTWAIT), -1);
    free(big);
    close(box);
}

static void test_send_errors(void **state)
{
    static const char *const bad[] = {"", "../x", "a/b", ".hidden", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(arbor_send(bad[i], "x", 1, 0), -1);
        assert_int_equal(errno, EINVAL);
    }
    errno = 0;
    assert_int_equal(arbor_send("nobody", "x", 1, 0), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(arbor_send("nobody", "x", 1, 0x10), -1);
    assert_int_equal(errno, EINVAL);

    /* A socket left behind by an arbord that is gone. */
    close(mailbox("stale"));
    errno = 0;
    assert_int_equal(arbor_send("stale", "x", 1, 0), -1);
    assert_int_equal(errno, ECONNREFUSED);

    /* No runtime directory to look in (a user without XDG_RUNTIME_DIR). */
    if (geteuid() != 0) {
        char *xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
        unsetenv("ARBOR_RUNTIME");
        unsetenv("XDG_RUNTIME_DIR");
        errno = 0;
        assert_int_equal(arbor_send("counter", "x", 1, 0), -1);
        assert_int_equal(errno, ENOENT);
        if (xdg)
            setenv("XDG_RUNTIME_DIR", xdg, 1);
        free(xdg);
        setenv("ARBOR_RUNTIME", tmpdir, 1);
    }
}

/* Access is the socket's write permission (MailboxMode=): a user it does
 * not let in gets EACCES. Needs root, to be someone else. */
static void test_send_eacces(void **state)
{
    if (geteuid() != 0)
        skip();
    int box = mailbox("private");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/mailbox/private", tmpdir);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(chmod(tmpdir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        errno = 0;
        int r = arbor_send("private", "x", 1, 0);
        _exit(r == -1 && errno == EACCES ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Opened up, the same user gets through. */
    assert_int_equal(chmod(path, 0622), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        _exit(arbor_send("private", "x", 1, 0) == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    char buf[4];
    assert_int_equal(recv(box, buf, sizeof(buf), MSG_DONTWAIT), 1);
    close(box);
}

static void test_send_runtime_fallbacks(void **state)
{
    char path[PATH_MAX + 32];
    unsetenv("ARBOR_RUNTIME");
    if (geteuid() == 0) {
        /* /run/arbor: nothing there in a test, or not this name. */
        errno = 0;
        assert_int_equal(arbor_send("test-libarbor-nobody", "x", 1, 0), -1);
        assert_int_equal(errno, ENOENT);
    } else {
        char *xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
        snprintf(path, sizeof(path), "%s/arbor", tmpdir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/arbor/mailbox", tmpdir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/arbor/mailbox/x", tmpdir);
        int box = bind_at(path, SOCK_DGRAM);
        setenv("XDG_RUNTIME_DIR", tmpdir, 1);
        assert_int_equal(arbor_send("x", "via xdg", 7, 0), 0);
        char buf[16];
        assert_int_equal(recv(box, buf, sizeof(buf), MSG_DONTWAIT), 7);
        close(box);
        if (xdg)
            setenv("XDG_RUNTIME_DIR", xdg, 1);
        else
            unsetenv("XDG_RUNTIME_DIR");
        free(xdg);
    }
    setenv("ARBOR_RUNTIME", tmpdir, 1);
}

/* Back-pressure: a full mailbox makes a non-blocking send fail with
 * EAGAIN, and nothing is half sent. */
static void test_send_nonblock_full(void **state)
{
    int box = mailbox("full");
    int sent = 0;
    for (; sent < 100000; sent++)
        if (arbor_send("full", "m", 1, ARBOR_NONBLOCK) < 0)
            break;
    assert_int_equal(errno, EAGAIN);
    assert_true(sent > 0);
    char buf[8];
    int got = 0;
    while (recv(box, buf, sizeof(buf), MSG_DONTWAIT) == 1)
        got++;
    assert_int_equal(got, sent);
    close(box);
}

static void test_send_to_long_path_and_seqpacket(void **state)
{
    /* A path longer than sun_path, reached through its directory. */
    char dir[PATH_MAX + 8], path[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/", tmpdir);
    while (strlen(dir) < 150)
        strcat(dir, "d");
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/box", dir);
    assert_true(strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path));

    char here[PATH_MAX];
    assert_non_null(getcwd(here, sizeof(here)));
    assert_int_equal(chdir(dir), 0);
    int box = bind_at("box", SOCK_DGRAM);
    assert_int_equal(chdir(here), 0);
    assert_int_equal(arbor_send_to_path(path, "far", 3, 0), 0);
    char buf[8];
    assert_int_equal(recv(box, buf, sizeof(buf), MSG_DONTWAIT), 3);
    close(box);

    /* A seqpacket socket keeps a message one message too. */
    snprintf(path, sizeof(path), "%s/seq", tmpdir);
    int listener = bind_at(path, SOCK_SEQPACKET);
    assert_int_equal(arbor_send_to_path(path, "packet", 6, 0), 0);
    int conn = accept(listener, NULL, NULL);
    assert_true(conn >= 0);
    assert_int_equal(recv(conn, buf, sizeof(buf), 0), 6);
    assert_memory_equal(buf, "packet", 6);
    close(conn);
    close(listener);
}

/* ---- envelopes end to end: send_from, recv, reply --------------------------- */

static void test_send_from_recv_reply(void **state)
{
    int counter = mailbox("counter"), ticker = mailbox("ticker");
    char buf[128];
    struct arbor_sender from;

    assert_int_equal(arbor_send_from("ticker", "counter", "41", 2, 0), 0);
    /* A plain recv() sees the envelope in front. */
    assert_int_equal(recv(counter, buf, sizeof(buf), MSG_PEEK), 6 + 6 + 2);
    assert_memory_equal(buf, "\0ARB\x01\x06", 6);
    assert_memory_equal(buf + 6, "ticker41", 8);
    /* arbor_recv() takes it off. */
    assert_int_equal(arbor_recv(counter, buf, sizeof(buf), &from), 2);
    assert_memory_equal(buf, "41", 2);
    assert_string_equal(from.name, "ticker");

    /* The answer goes to ticker's mailbox; with ARBOR_UNIT set, it says who
     * answered. */
    setenv("ARBOR_UNIT", "counter", 1);
    assert_int_equal(arbor_reply(&from, "ack 41", 6, 0), 0);
    assert_int_equal(arbor_recv(ticker, buf, sizeof(buf), &from), 6);
    assert_memory_equal(buf, "ack 41", 6);
    assert_string_equal(from.name, "counter");

    /* my_name NULL: $ARBOR_UNIT. */
    assert_int_equal(arbor_send_from(NULL, "ticker", "hi", 2, 0), 0);
    assert_int_equal(arbor_recv(ticker, buf, sizeof(buf), &from), 2);
    assert_string_equal(from.name, "counter");

    /* Without ARBOR_UNIT the answer is plain. */
    unsetenv("ARBOR_UNIT");
    strcpy(from.name, "ticker");
    assert_int_equal(arbor_reply(&from, "plain", 5, 0), 0);
    assert_int_equal(recv(ticker, buf, sizeof(buf), MSG_DONTWAIT), 5);
    errno = 0;
    assert_int_equal(arbor_send_from(NULL, "ticker", "hi", 2, 0), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(arbor_send_from("a/b", "ticker", "hi", 2, 0), -1);
    assert_int_equal(errno, EINVAL);

    /* A plain message cannot be answered. */
    from.name[0] = '\0';
    errno = 0;
    assert_int_equal(arbor_reply(&from, "x", 1, 0), -1);
    assert_int_equal(errno, EDESTADDRREQ);

    /* The envelope counts against the 64 KiB of the datagram: the longest
     * message with the longest name is 70 bytes short of it. */
    size_t most = ARBOR_MESSAGE_MAX - ARBOR_ENVELOPE_MAX;
    char *big = calloc(1, ARBOR_MESSAGE_MAX);
    char *in = malloc(ARBOR_MESSAGE_MAX);
    assert_non_null(big);
    assert_non_null(in);
    memset(big, 'z', ARBOR_MESSAGE_MAX);
    char longest[ARBOR_NAME_MAX + 1];
    memset(longest, 'n', ARBOR_NAME_MAX);
    longest[ARBOR_NAME_MAX] = '\0';
    assert_int_equal(arbor_send_from(longest, "counter", big, most, 0), 0);
    assert_int_equal(recv(counter, in, ARBOR_MESSAGE_MAX, MSG_PEEK | MSG_TRUNC), ARBOR_MESSAGE_MAX);
    assert_int_equal(arbor_recv(counter, in, ARBOR_MESSAGE_MAX, &from), (ssize_t)most);
    assert_memory_equal(in, big, most);
    assert_string_equal(from.name, longest);
    assert_false(from.truncated);
    errno = 0;
    assert_int_equal(arbor_send_from(longest, "counter", big, most + 1, 0), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(arbor_send_from("a", "counter", big, ARBOR_MESSAGE_MAX - 7, 0), 0);
    assert_int_equal(arbor_recv(counter, in, ARBOR_MESSAGE_MAX, &from), ARBOR_MESSAGE_MAX - 7);
    errno = 0;
    assert_int_equal(arbor_send_from("a", "counter", big, ARBOR_MESSAGE_MAX - 6, 0), -1);
    assert_int_equal(errno, EMSGSIZE);
    free(big);
    free(in);
    close(counter);
    close(ticker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_layout),
        cmocka_unit_test(test_envelope_longest_name),
        cmocka_unit_test(test_envelope_encode_errors),
        cmocka_unit_test(test_envelope_decode_plain),
        cmocka_unit_test(test_recv_plain_byte_for_byte),
        cmocka_unit_test(test_recv_envelope_every_size),
        cmocka_unit_test(test_recv_truncated_plain),
        cmocka_unit_test(test_recv_peek_drop_nonblock),
        cmocka_unit_test(test_mailbox_fd),
        cmocka_unit_test(test_send_by_name),
        cmocka_unit_test(test_send_errors),
        cmocka_unit_test(test_send_eacces),
        cmocka_unit_test(test_send_runtime_fallbacks),
        cmocka_unit_test(test_send_nonblock_full),
        cmocka_unit_test(test_send_to_long_path_and_seqpacket),
        cmocka_unit_test(test_send_from_recv_reply),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
