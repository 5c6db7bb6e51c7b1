/*
 * test_unit.c: unit files, from bytes on disk to the printed tree.
 *
 * Small cases are written inline into a temporary directory, so each test
 * shows the file it parses; whole trees live under tests/data/units/. Every
 * expected diagnostic is matched as a substring that includes FILE:LINE,
 * because the line numbers are the part inih alone cannot give us.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit/unit.h"

#define DATA ARBOR_TEST_DATA "/units/"

static char tmp_dir[PATH_MAX];

/* ---- helpers ------------------------------------------------------------ */

static void dump_diag(const struct diagnostics *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        print_message("    %s\n", diag->messages[i]);
}

static bool diag_has(const struct diagnostics *diag, const char *needle)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strstr(diag->messages[i], needle))
            return true;
    return false;
}

#define assert_diag(diag, needle)                                                                  \
    do {                                                                                           \
        if (!diag_has((diag), (needle))) {                                                         \
            print_message("missing diagnostic: %s\nhave:\n", (needle));                            \
            dump_diag(diag);                                                                       \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_diag_count(diag, n)                                                                 \
    do {                                                                                           \
        if ((diag)->count != (size_t)(n)) {                                                        \
            print_message("expected %d diagnostics, have %zu:\n", (int)(n), (diag)->count);        \
            dump_diag(diag);                                                                       \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static const char *tmp_path(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    return path;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

/* Parse `text` as the unit file `file` (NAME.service or NAME.supervisor). */
static struct unit *parse_bytes(const char *file, const void *text, size_t len,
                                struct diagnostics *diag)
{
    char name[256];
    const char *dot = strrchr(file, '.');
    enum node_kind kind = strcmp(dot, ".service") == 0 ? NODE_SERVICE : NODE_SUPERVISOR;

    snprintf(name, sizeof(name), "%.*s", (int)(dot - file), file);
    return unit_parse_file(write_file(file, text, len), name, kind, diag);
}

static struct unit *parse_text(const char *file, const char *text, struct diagnostics *diag)
{
    return parse_bytes(file, text, strlen(text), diag);
}

/* A string of `n` copies of `c`, for long lines. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static char *print_to_string(const struct node *root, const struct unit_set *set)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    unit_print_tree(f, root, set);
    fclose(f);
    return text;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/arbor-test-unit.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    return nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- values.c ----------------------------------------------------------- */

static void test_duration_valid(void **state)
{
    static const struct {
        const char *text;
        msec_t ms;
    } cases[] = {
        {"500ms", 500},
        {"5s", 5000},
        {"2min", 120000},
        {"1h", 3600000},
        {"10", 10000},
        {"0", 0},
        {"1.5s", 1500},
        {"0.5", 500},
        {".25s", 250},
        {"1min 30s", 90000},
        {"1min30s", 90000},
        {"2 min", 120000},
        {"3sec", 3000},
        {"1m", 60000},
        {"1hour", 3600000},
        {"2hours", 7200000},
        {"1d", 86400000},
        {"1500us", 2},
        {"1us", 1},
        {"0.0001s", 1},
        {"250msec", 250},
        {"1.0000009s", 1000},
        {"1.1234567890s", 1124},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msec_t ms = -42;
        if (parse_duration(cases[i].text, &ms) < 0)
            fail_msg("parse_duration(\"%s\") failed", cases[i].text);
        if (ms != cases[i].ms)
            fail_msg("parse_duration(\"%s\") = %lld, want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
    }
}

static void test_duration_invalid(void **state)
{
    static const char *const cases[] = {
        "",
        "-1s",
        "+1s",
        "5x",
        "s",
        "1.s",
        "1..5s",
        "abc",
        "1min 30",
        "infinity",
        " 5s",
        "5s,",
        "5 s x",
        "1e3s",
        "0x10",
        "5S",
        "5Min",
        "1.5.5s",
        "36501d",
        "99999999999999999999s",
        "18446744073709551615h",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msec_t ms = -42;
        if (parse_duration(cases[i], &ms) == 0)
            fail_msg("parse_duration(\"%s\") accepted: %lld", cases[i], (long long)ms);
        assert_int_equal(ms, -42); /* untouched on failure */
    }
}

static void test_signal(void **state)
{
    int sig = 0;
    assert_int_equal(parse_signal("SIGTERM", &sig), 0);
    assert_int_equal(sig, SIGTERM);
    assert_int_equal(parse_signal("TERM", &sig), 0);
    assert_int_equal(sig, SIGTERM);
    assert_int_equal(parse_signal("9", &sig), 0);
    assert_int_equal(sig, 9);
    assert_int_equal(parse_signal("SIGUSR2", &sig), 0);
    assert_int_equal(sig, SIGUSR2);
    assert_int_equal(parse_signal("HUP", &sig), 0);
    assert_int_equal(sig, SIGHUP);
    assert_int_equal(parse_signal("64", &sig), 0);
    assert_int_equal(sig, 64);
    assert_int_equal(parse_signal("SIGRTMIN+2", &sig), 0);
    assert_int_equal(sig, SIGRTMIN + 2);
    assert_int_equal(parse_signal("RTMAX", &sig), 0);
    assert_int_equal(sig, SIGRTMAX);

    static const char *const bad[] = {"0",     "65",       "-1",  "term",        "SIGFOO",
                                      "",      "SIG",      "15x", "SIGRTMIN+99", "RTMIN-1",
                                      "SIG15", "SIGTERM ", "1e1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sig = -42;
        if (parse_signal(bad[i], &sig) == 0)
            fail_msg("parse_signal(\"%s\") accepted: %d", bad[i], sig);
        assert_int_equal(sig, -42);
    }
}

static void test_bool(void **state)
{
    static const char *const yes[] = {"yes", "YES", "y", "true", "True", "t", "on", "1"};
    static const char *const no[] = {"no", "No", "n", "false", "f", "off", "OFF", "0"};
    static const char *const bad[] = {"", "2", "yess", "maybe", "nope", " yes"};
    bool b;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        assert_int_equal(parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        b = true;
        assert_int_equal(parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse_bool(bad[i], &b), -1);
}

static void test_uint(void **state)
{
    unsigned long v = 7;
    assert_int_equal(parse_uint("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_uint("1000000", 1000000, &v), 0);
    assert_int_equal(v, 1000000);
    assert_int_equal(parse_uint("1000001", 1000000, &v), -1);
    assert_int_equal(parse_uint("", 10, &v), -1);
    assert_int_equal(parse_uint("+1", 10, &v), -1);
    assert_int_equal(parse_uint("-1", 10, &v), -1);
    assert_int_equal(parse_uint("0x1", 10, &v), -1);
    assert_int_equal(parse_uint("1 ", 10, &v), -1);
    assert_int_equal(parse_uint("99999999999999999999999", ULONG_MAX, &v), -1);
    assert_int_equal(v, 1000000);
}

/* Each case: a command line and its argv joined with '|'. */
static void test_command_line(void **state)
{
    static const struct {
        const char *text, *argv;
    } cases[] = {
        {"/bin/echo hello world", "/bin/echo|hello|world"},
        {"  a   b\t c  ", "a|b|c"},
        {"a 'b c' d", "a|b c|d"},
        {"a \"b c\" d", "a|b c|d"},
        {"'' \"\"", "|"},
        {"a'b'\"c\"d", "abcd"},
        {"a\\ b", "a b"},
        {"\\'x\\'", "'x'"},
        {"'a\\b'", "a\\b"},
        {"\"a\\\"b\"", "a\"b"},
        {"\"a\\\\b\"", "a\\b"},
        {"\"a\\nb\"", "a\\nb"},
        {"\"$HOME `x`\"", "$HOME `x`"},
        {"\"\\$HOME\"", "$HOME"},
        {"'it''s'", "its"},
        {"a\"'\"b", "a'b"},
        {"x # not a comment", "x|#|not|a|comment"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *error = NULL;
        char **argv = parse_command_line(cases[i].text, &error);
        if (!argv)
            fail_msg("parse_command_line(%s): %s", cases[i].text, error);
        char joined[256] = "";
        for (size_t k = 0; argv[k]; k++)
            snprintf(joined + strlen(joined), sizeof(joined) - strlen(joined), "%s%s", k ? "|" : "",
                     argv[k]);
        if (strcmp(joined, cases[i].argv) != 0)
            fail_msg("parse_command_line(%s) = %s, want %s", cases[i].text, joined, cases[i].argv);
        free(argv);
    }
}

static void test_command_line_errors(void **state)
{
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"a 'b", "unterminated single quote"},
        {"a \"b", "unterminated double quote"},
        {"a \"b\\\"", "unterminated double quote"},
        {"a \\", "a backslash at the end escapes nothing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *error = NULL;
        assert_null(parse_command_line(cases[i].text, &error));
        assert_string_equal(error, cases[i].error);
    }
}

static void test_name_valid(void **state)
{
    char *max = repeat('a', UNIT_NAME_MAX), *over = repeat('a', UNIT_NAME_MAX + 1);

    assert_true(unit_name_valid("db"));
    assert_true(unit_name_valid("0db"));
    assert_true(unit_name_valid("my-app_2.v1"));
    assert_true(unit_name_valid(max));
    assert_false(unit_name_valid(over));
    assert_false(unit_name_valid(""));
    assert_false(unit_name_valid("-db"));
    assert_false(unit_name_valid("_db"));
    assert_false(unit_name_valid(".db"));
    assert_false(unit_name_valid("a b"));
    assert_false(unit_name_valid("a/b"));
    assert_false(unit_name_valid("a@b"));
    assert_false(unit_name_valid("caf\xc3\xa9"));
    free(max);
    free(over);
}

/* ---- diag.c ------------------------------------------------------------- */

static void test_diag(void **state)
{
    struct diagnostics diag = {0};

    diag_add(&diag, "u/db.service", 4, "Type=%s: expected %s", "forking", "simple");
    diag_add(&diag, "u/db.service", 0, "no ExecStart=");
    diag_add(&diag, NULL, 0, "out of %s", "memory");
    diag_add(&diag, "f", 1, "escape \x1b[31mred\x7f\n");
    assert_int_equal(diag.count, 4);
    assert_int_equal(diag_problems(&diag), 4);
    assert_string_equal(diag.messages[0], "u/db.service:4: Type=forking: expected simple");
    assert_string_equal(diag.messages[1], "u/db.service: no ExecStart=");
    assert_string_equal(diag.messages[2], "out of memory");
    assert_string_equal(diag.messages[3], "f:1: escape ?[31mred??");
    for (int i = 0; i < 100; i++)
        diag_add(&diag, "f", i + 1, "many");
    assert_int_equal(diag.count, 104);
    diag_free(&diag);
    assert_int_equal(diag.count, 0);
    assert_null(diag.messages);
    diag_free(&diag); /* twice is fine */
    diag_free(NULL);
}

/* ---- parse.c: good files ------------------------------------------------ */

static void test_parse_service_all_keys(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("db.service",
                                "# a comment\n"
                                "; another\n"
                                "[Unit]\n"
                                "Description=The database ; inline comment\n"
                                "\n"
                                "[Service]\n"
                                "ExecStart=/usr/bin/postgres -D '/var/lib/my pg'\n"
                                "Type=notify\n"
                                "Restart=on-failure\n"
                                "KillSignal=INT\n"
                                "Shutdown=2.5s\n"
                                "StartTimeout=2min\n"
                                "WatchdogSec=500ms\n"
                                "Significant=yes\n"
                                "Mailbox=yes\n"
                                "MailboxCapacity=128\n"
                                "User=root\n"
                                "Group=0\n"
                                "WorkingDirectory=/var/lib/pg\n"
                                "Environment=A=1 \"B=two words\"\n"
                                "Environment=C='x y' A=3\n"
                                "EnvironmentFile=-/etc/default/db\n"
                                "EnvironmentFile=/etc/db.env\n"
                                "UMask=0027\n"
                                "StandardOutput=null\n"
                                "StandardError=inherit\n"
                                "Listen=/run/db.sock\n"
                                "Listen=127.0.0.1:5432\n"
                                "Listen=[::1]:5432\n"
                                "FileDescriptorStoreMax=8\n",
                                &diag);
    assert_non_null(u);
    assert_diag_count(&diag, 0);
    assert_string_equal(u->name, "db");
    assert_int_equal(u->kind, NODE_SERVICE);
    assert_string_equal(u->extra->description, "The database");
    assert_string_equal(u->argv[0], "/usr/bin/postgres");
    assert_string_equal(u->argv[1], "-D");
    assert_string_equal(u->argv[2], "/var/lib/my pg");
    assert_null(u->argv[3]);
    assert_int_equal(u->line_exec_start, 7);
    assert_int_equal(u->config.type, SERVICE_NOTIFY);
    assert_int_equal(u->config.restart, RESTART_TRANSIENT);
    assert_int_equal(u->line_restart, 9);
    assert_int_equal(u->config.kill_signal, SIGINT);
    assert_int_equal(u->config.shutdown, 2500);
    assert_int_equal(u->config.start_timeout, 120000);
    assert_int_equal(u->config.watchdog, 500);
    assert_true(u->config.significant);
    assert_int_equal(u->line_significant, 14);
    assert_true(u->mailbox);
    assert_int_equal(u->extra->mailbox_capacity, 128);
    assert_string_equal(u->extra->user, "root");
    assert_string_equal(u->extra->group, "0");
    assert_int_equal(u->uid, 0);
    assert_int_equal(u->gid, 0);
    assert_true(u->extra->n_groups >= 1);
    assert_int_equal(u->extra->groups[0], 0);
    assert_string_equal(u->extra->working_directory, "/var/lib/pg");
    assert_int_equal(u->extra->n_environment, 3);
    assert_string_equal(u->extra->environment[0], "A=3");
    assert_string_equal(u->extra->environment[1], "B=two words");
    assert_string_equal(u->extra->environment[2], "C=x y");
    assert_null(u->extra->environment[3]);
    assert_int_equal(u->extra->n_environment_files, 2);
    assert_string_equal(u->extra->environment_files[0].path, "/etc/default/db");
    assert_true(u->extra->environment_files[0].optional);
    assert_string_equal(u->extra->environment_files[1].path, "/etc/db.env");
    assert_false(u->extra->environment_files[1].optional);
    assert_true(u->umask_set);
    assert_int_equal(u->umask, 027);
    assert_int_equal(u->standard_output, OUTPUT_NULL);
    assert_int_equal(u->standard_error, OUTPUT_INHERIT);
    assert_int_equal(u->extra->n_listen, 3);
    assert_string_equal(u->extra->listen[0], "/run/db.sock");
    assert_string_equal(u->extra->listen[1], "127.0.0.1:5432");
    assert_string_equal(u->extra->listen[2], "[::1]:5432");
    assert_int_equal(u->extra->fd_store_max, 8);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_service_defaults(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("min.service", "[Service]\nExecStart=sleep 1\n", &diag);

    assert_non_null(u);
    assert_diag_count(&diag, 0);
    assert_null(u->extra->description);
    assert_string_equal(u->argv[0], "sleep");
    assert_int_equal(u->config.type, SERVICE_EXEC);
    assert_int_equal(u->config.restart, RESTART_PERMANENT);
    assert_int_equal(u->config.kill_signal, SIGTERM);
    assert_int_equal(u->config.shutdown, 5000);
    assert_int_equal(u->config.start_timeout, 30000);
    assert_int_equal(u->config.watchdog, 0);
    assert_false(u->config.significant);
    assert_false(u->mailbox);
    assert_int_equal(u->extra->mailbox_capacity, 4096);
    assert_null(u->extra->user);
    assert_int_equal(u->uid, (uid_t)-1);
    assert_int_equal(u->gid, (gid_t)-1);
    assert_null(u->extra->groups);
    assert_int_equal(u->extra->n_environment, 0);
    assert_int_equal(u->extra->n_environment_files, 0);
    assert_false(u->umask_set);
    assert_int_equal(u->standard_output, OUTPUT_LOG);
    assert_int_equal(u->standard_error, OUTPUT_LOG);
    assert_int_equal(u->extra->n_listen, 0);
    assert_int_equal(u->extra->fd_store_max, 0);
    assert_int_equal(u->line_restart, 0);
    assert_int_equal(u->line_significant, 0);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_supervisor(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("web.supervisor",
                                "[Unit]\n"
                                "Description=Web tier\n"
                                "[Supervisor]\n"
                                "Strategy=rest-for-one\n"
                                "Intensity=0\n"
                                "Period=1.5min\n"
                                "Children=a b\n"
                                "Children=c\n"
                                "Restart=temporary\n"
                                "AutoShutdown=all-significant\n"
                                "Significant=true\n",
                                &diag);
    assert_non_null(u);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->kind, NODE_SUPERVISOR);
    assert_int_equal(u->config.strategy, STRATEGY_REST_FOR_ONE);
    assert_int_equal(u->config.intensity, 0);
    assert_int_equal(u->config.period, 90000);
    assert_int_equal(u->extra->n_children, 3);
    assert_string_equal(u->extra->children[0], "a");
    assert_string_equal(u->extra->children[1], "b");
    assert_string_equal(u->extra->children[2], "c");
    assert_int_equal(u->extra->children_lines[0], 7);
    assert_int_equal(u->extra->children_lines[1], 7);
    assert_int_equal(u->extra->children_lines[2], 8);
    assert_int_equal(u->config.restart, RESTART_TEMPORARY);
    assert_int_equal(u->config.auto_shutdown, AUTO_SHUTDOWN_ALL_SIGNIFICANT);
    assert_int_equal(u->line_auto_shutdown, 10);
    assert_true(u->config.significant);
    unit_free(u);

    /* Defaults, and an empty file is a valid empty supervisor. */
    u = parse_text("empty.supervisor", "", &diag);
    assert_non_null(u);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->config.strategy, STRATEGY_ONE_FOR_ONE);
    assert_int_equal(u->config.intensity, 5);
    assert_int_equal(u->config.period, 10000);
    assert_int_equal(u->config.restart, RESTART_PERMANENT);
    assert_int_equal(u->config.auto_shutdown, AUTO_SHUTDOWN_NEVER);
    assert_false(u->config.significant);
    assert_int_equal(u->extra->n_children, 0);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_children_reset(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text(
        "s.supervisor", "[Supervisor]\nChildren=a b\nChildren=\nChildren=c  d\t e\n", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->extra->n_children, 3);
    assert_string_equal(u->extra->children[0], "c");
    assert_string_equal(u->extra->children[2], "e");
    assert_int_equal(u->extra->children_lines[0], 4);
    unit_free(u);

    u = parse_text("s.supervisor", "[Supervisor]\nChildren=ok bad/name -x also_ok\n", &diag);
    assert_diag(&diag, "s.supervisor:2: Children=: 'bad/name' is not a unit name: names match "
                       "[A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes");
    assert_diag(&diag, "s.supervisor:2: Children=: '-x' is not a unit name");
    assert_diag_count(&diag, 2);
    assert_int_equal(u->extra->n_children, 2);
    assert_string_equal(u->extra->children[1], "also_ok");
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_repeatable_resets(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("e.service",
                                "[Service]\nExecStart=/bin/true\n"
                                "Environment=A=1 B=2\nEnvironment=\nEnvironment=C=3\n"
                                "EnvironmentFile=/a\nEnvironmentFile=\nEnvironmentFile=-/b\n"
                                "Listen=/x.sock\nListen=\nListen=/y.sock\n"
                                "Environment=EMPTY= D=\"\"\n",
                                &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->extra->n_environment, 3);
    assert_string_equal(u->extra->environment[0], "C=3");
    assert_string_equal(u->extra->environment[1], "EMPTY=");
    assert_string_equal(u->extra->environment[2], "D=");
    assert_int_equal(u->extra->n_environment_files, 1);
    assert_string_equal(u->extra->environment_files[0].path, "/b");
    assert_int_equal(u->extra->n_listen, 1);
    assert_string_equal(u->extra->listen[0], "/y.sock");
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_special_values(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("v.service",
                                "[Service]\nExecStart=/bin/true\nShutdown=brutal-kill\n"
                                "StartTimeout=infinity\nRestart=always\nKillSignal=9\n",
                                &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->config.shutdown, SHUTDOWN_BRUTAL_KILL);
    assert_int_equal(u->config.start_timeout, DURATION_INFINITY);
    assert_int_equal(u->config.restart, RESTART_PERMANENT);
    assert_int_equal(u->config.kill_signal, SIGKILL);
    unit_free(u);

    u = parse_text("v.service",
                   "[Service]\nExecStart=/bin/true\nShutdown=infinity\nStartTimeout=0\n"
                   "Restart=no\nUMask=7\n",
                   &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->config.shutdown, DURATION_INFINITY);
    assert_int_equal(u->config.start_timeout, DURATION_INFINITY); /* 0 = none, as systemd */
    assert_int_equal(u->config.restart, RESTART_TEMPORARY);
    assert_int_equal(u->umask, 07);
    unit_free(u);

    u = parse_text("v.service", "[Service]\nExecStart=/bin/true\nShutdown=0\n", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->config.shutdown, SHUTDOWN_BRUTAL_KILL);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_user_group(void **state)
{
    struct diagnostics diag = {0};
    struct passwd *pw = getpwnam("root");
    assert_non_null(pw);

    struct unit *u = parse_text("u.service", "[Service]\nExecStart=/bin/true\nUser=root\n", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->uid, 0);
    assert_int_equal(u->gid, 0);
    assert_true(u->extra->n_groups >= 1);
    unit_free(u);

    /* Group= after User= still overrides the primary group. */
    u = parse_text("u.service", "[Service]\nExecStart=/bin/true\nUser=0\nGroup=4242\n", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->uid, 0);
    assert_int_equal(u->gid, 4242);
    assert_int_equal(u->extra->groups[0], 4242);
    unit_free(u);

    u = parse_text("u.service", "[Service]\nExecStart=/bin/true\nGroup=root\n", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->uid, (uid_t)-1);
    assert_int_equal(u->gid, 0);
    assert_int_equal(u->extra->n_groups, 0);
    unit_free(u);

    /* A uid with no passwd entry is fine with a Group=, an error without. */
    if (!getpwuid(54321)) {
        u = parse_text("u.service", "[Service]\nExecStart=/bin/true\nUser=54321\nGroup=54321\n",
                       &diag);
        assert_diag_count(&diag, 0);
        assert_int_equal(u->uid, 54321);
        assert_int_equal(u->gid, 54321);
        assert_int_equal(u->extra->n_groups, 0);
        unit_free(u);
        u = parse_text("u.service", "[Service]\nExecStart=/bin/true\nUser=54321\n", &diag);
        assert_diag(&diag, "u.service:3: User=54321: uid 54321 has no passwd entry, so no "
                           "primary group: add Group=");
        unit_free(u);
        diag_free(&diag);
    }

    u = parse_text("u.service",
                   "[Service]\nExecStart=/bin/true\nUser=no-such-user-arbor\n"
                   "Group=no-such-group-arbor\n",
                   &diag);
    assert_diag(&diag, "u.service:3: User=no-such-user-arbor: no such user");
    assert_diag(&diag, "u.service:4: Group=no-such-group-arbor: no such group");
    assert_diag_count(&diag, 2);
    unit_free(u);
    diag_free(&diag);
}

/* ---- parse.c: bad values, one message each ------------------------------- */

struct bad_case {
    const char *file; /* NAME.service or NAME.supervisor */
    const char *text;
    const char *message; /* expected, after "FILE:" */
};

static void check_bad_cases(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct diagnostics diag = {0};
        char want[1024];
        struct unit *u = parse_text(cases[i].file, cases[i].text, &diag);
        assert_non_null(u);
        snprintf(want, sizeof(want), "%s:%s", cases[i].file, cases[i].message);
        if (diag.count != 1 || !strstr(diag.messages[0], want)) {
            print_message("case %zu: want exactly: ...%s\nhave:\n", i, want);
            dump_diag(&diag);
            fail();
        }
        unit_free(u);
        diag_free(&diag);
    }
}

#define SVC "[Service]\nExecStart=/bin/true\n"
#define SUP "[Supervisor]\n"

static void test_parse_bad_service_values(void **state)
{
    static const struct bad_case cases[] = {
        {"s.service", SVC "Type=forking\n",
         "3: Type=forking: expected simple, exec, notify or oneshot"},
        {"s.service", SVC "Type=\n", "3: Type= is empty: expected simple, exec, notify or oneshot"},
        {"s.service", SVC "Restart=sometimes\n",
         "3: Restart=sometimes: expected permanent, transient or temporary (or always, "
         "on-failure, no)"},
        {"s.service", SVC "KillSignal=SIGFOO\n",
         "3: KillSignal=SIGFOO: expected a signal name such as SIGTERM or TERM, or a number "
         "from 1 to 64"},
        {"s.service", SVC "Shutdown=soon\n",
         "3: Shutdown=soon: expected a duration such as 5s or 500ms, brutal-kill or infinity"},
        {"s.service", SVC "StartTimeout=-1\n",
         "3: StartTimeout=-1: expected a duration such as 30s, or infinity"},
        {"s.service", SVC "WatchdogSec=infinity\n",
         "3: WatchdogSec=infinity: expected a duration such as 10s, or 0 for none"},
        {"s.service", SVC "Significant=maybe\n", "3: Significant=maybe: expected yes or no"},
        {"s.service", SVC "Mailbox=2\n", "3: Mailbox=2: expected yes or no"},
        {"s.service", SVC "MailboxCapacity=0\n",
         "3: MailboxCapacity=0: expected an integer from 1 to 1048576"},
        {"s.service", SVC "MailboxCapacity=1048577\n",
         "3: MailboxCapacity=1048577: expected an integer from 1 to 1048576"},
        {"s.service", SVC "WorkingDirectory=var/lib\n",
         "3: WorkingDirectory=var/lib: expected an absolute path"},
        {"s.service", SVC "Environment=1BAD=x\n",
         "3: Environment=: '1BAD=x' is not an assignment: expected VAR=VALUE with VAR matching "
         "[A-Za-z_][A-Za-z0-9_]*"},
        {"s.service", SVC "Environment=OK=1 NOEQUALS\n",
         "3: Environment=: 'NOEQUALS' is not an assignment"},
        {"s.service", SVC "Environment=A=\"x\n", "3: Environment=A=\"x: unterminated double quote"},
        {"s.service", SVC "EnvironmentFile=etc/x\n",
         "3: EnvironmentFile=etc/x: expected an absolute path, with a leading '-' if the file "
         "may be missing"},
        {"s.service", SVC "EnvironmentFile=-\n", "3: EnvironmentFile=-: expected"},
        {"s.service", SVC "UMask=0800\n",
         "3: UMask=0800: expected an octal mode from 0000 to 0777, such as 0022"},
        {"s.service", SVC "UMask=01000\n", "3: UMask=01000: expected an octal mode"},
        {"s.service", SVC "StandardOutput=journal\n",
         "3: StandardOutput=journal: expected log, inherit or null"},
        {"s.service", SVC "StandardError=file\n",
         "3: StandardError=file: expected log, inherit or null"},
        {"s.service", SVC "Listen=localhost:80\n",
         "3: Listen=localhost:80: expected an absolute socket path (under 108 bytes) or "
         "IP:PORT, such as 127.0.0.1:8080 or [::1]:8080"},
        {"s.service", SVC "Listen=127.0.0.1:0\n", "3: Listen=127.0.0.1:0: expected"},
        {"s.service", SVC "Listen=[::1:80\n", "3: Listen=[::1:80: expected"},
        {"s.service", SVC "FileDescriptorStoreMax=-1\n",
         "3: FileDescriptorStoreMax=-1: expected an integer from 0 to 65536"},
        {"s.service", SVC "Type=simple\nType=notify\n",
         "4: Type= given twice (first at line 3); it takes one value"},
        {"s.service", "[Service]\nExecStart=bin/foo\n",
         "2: ExecStart=bin/foo: the program must be an absolute path or a bare name without '/' "
         "(systemd's -, @ and + prefixes are not supported)"},
        {"s.service", "[Service]\nExecStart=-/bin/foo\n",
         "2: ExecStart=-/bin/foo: the program must be an absolute path"},
        {"s.service", "[Service]\nExecStart=''\n", "2: ExecStart='': the program name is empty"},
        {"s.service", "[Service]\nExecStart=/bin/echo 'x\n",
         "2: ExecStart=/bin/echo 'x: unterminated single quote"},
        {"s.service", "[Service]\n", " no ExecStart=: a service needs one in [Service]"},
        {"s.service", "", " no ExecStart=: a service needs one in [Service]"},
        {"s.service", SVC "Restart=transient\nSignificant=yes\nRestart=permanent\n",
         "5: Restart= given twice (first at line 3)"},
        {"s.service", SVC "Significant=yes\n",
         "3: Significant=yes needs Restart=transient or temporary, not permanent: a permanent "
         "child is always restarted, so it never ends by itself"},
    };
    check_bad_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_bad_supervisor_values(void **state)
{
    static const struct bad_case cases[] = {
        {"s.supervisor", SUP "Strategy=simple-one-for-one\n",
         "2: Strategy=simple-one-for-one: expected one-for-one, one-for-all or rest-for-one"},
        {"s.supervisor", SUP "Intensity=1000001\n",
         "2: Intensity=1000001: expected an integer from 0 to 1000000"},
        {"s.supervisor", SUP "Intensity=-1\n", "2: Intensity=-1: expected an integer"},
        {"s.supervisor", SUP "Intensity=five\n", "2: Intensity=five: expected an integer"},
        {"s.supervisor", SUP "Period=0\n",
         "2: Period=0: expected a duration greater than 0, such as 10s, 500ms or 2min"},
        {"s.supervisor", SUP "Period=0s\n", "2: Period=0s: expected a duration greater than 0"},
        {"s.supervisor", SUP "Period=\n", "2: Period= is empty: expected a duration"},
        {"s.supervisor", SUP "AutoShutdown=sometimes\n",
         "2: AutoShutdown=sometimes: expected never, any-significant or all-significant"},
        {"s.supervisor", SUP "Strategy=one-for-all\nStrategy=one-for-one\n",
         "3: Strategy= given twice (first at line 2)"},
        {"s.supervisor", SUP "Restart=transient\nSignificant=yes\nSignificant=no\n",
         "4: Significant= given twice (first at line 3)"},
    };
    check_bad_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_bad_keys_and_sections(void **state)
{
    static const struct bad_case cases[] = {
        {"s.service", SVC "Strategy=one-for-one\n",
         "3: Strategy= is a [Supervisor] key, and a .service file has [Unit] and [Service]"},
        {"s.supervisor", SUP "ExecStart=/bin/true\n",
         "2: ExecStart= is a [Service] key, and a .supervisor file has [Unit] and [Supervisor]"},
        {"s.service", SVC "Description=x\n", "3: Description= belongs in [Unit], not in [Service]"},
        {"s.service", "[Unit]\nExecStart=/bin/true\n[Service]\nExecStart=/bin/true\n",
         "2: ExecStart= belongs in [Service], not in [Unit]"},
        {"s.service", SVC "execstart=/bin/true\n",
         "3: unknown key execstart= in [Service]: keys are case-sensitive; did you mean "
         "ExecStart=?"},
        {"s.service", SVC "Foo=bar\n",
         "3: unknown key Foo= in [Service]: expected ExecStart=, Type=, Restart=, KillSignal=, "
         "Shutdown=, StartTimeout=, WatchdogSec=, Significant=, Mailbox=, MailboxCapacity=, "
         "MailboxMode=, MailboxGroup=, "
         "User=, Group=, WorkingDirectory=, Environment=, EnvironmentFile=, UMask=, "
         "StandardOutput=, StandardError=, Listen=, FileDescriptorStoreMax="},
        {"s.supervisor", "[Unit]\nAfter=x\n",
         "2: unknown key After= in [Unit]: expected "
         "Description="},
        {"s.service", "Type=notify\n" SVC,
         "1: Type= comes before any section header: a .service file has [Unit] and [Service]"},
        {"s.service", SVC "[Install]\nWantedBy=multi-user.target\nAlso=x\n",
         "3: unknown section [Install]: a .service file has [Unit] and [Service]"},
        {"s.service", SVC "[Supervisor]\nStrategy=one-for-all\n",
         "3: section [Supervisor] is not allowed here: a .service file has [Unit] and "
         "[Service]"},
        {"s.supervisor", SUP "[Service]\nType=notify\n",
         "2: section [Service] is not allowed here: a .supervisor file has [Unit] and "
         "[Supervisor]"},
        {"s.service", SVC "[service]\nType=notify\n", "3: unknown section [service]"},
        {"s.service", SVC "[ Service ]\n", "3: unknown section [ Service ]"},
        {"s.service", SVC "[Service] trailing\n",
         "3: unexpected text after ']': only a comment may follow a section header"},
        {"s.service", SVC "just some words\n",
         "3: expected KEY=VALUE, a [Section] header or a comment"},
        {"s.service", SVC "=value\n", "3: no key name before '='"},
        {"s.service", SVC "  Type=notify\n",
         "3: indented line: continuation lines are not supported"},
        {"s.service", SVC "\tType=notify\n",
         "3: indented line: continuation lines are not supported"},
        {"s.service", SVC "Type ;comment = notify\n",
         "3: expected KEY=VALUE, a [Section] header or a comment"},
    };
    check_bad_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- parse.c: lines, the part inih would get wrong ----------------------- */

/* A broken section header is reported, and the keys under it are skipped
 * rather than reported once each. */
static void test_parse_broken_header(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("h.service", "[Service\nExecStart=/bin/true\nType=bogus\n", &diag);
    assert_diag(&diag, "h.service:1: section header without a closing ']': expected [Unit], "
                       "[Service] or [Supervisor]");
    assert_diag(&diag, "h.service: no ExecStart=");
    assert_diag_count(&diag, 2);
    unit_free(u);
    diag_free(&diag);
}

/* inih reports only the first bad line; we report every one. */
static void test_parse_every_bad_line_reported(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("j.service",
                                "[Service]\n"
                                "ExecStart=/bin/true\n"
                                "junk one\n"
                                "Type=notify\n"
                                "junk two\n"
                                "[Unit\n"
                                "[Service]\n"
                                "junk three\n"
                                "Restart=transient\n",
                                &diag);
    assert_diag(&diag, "j.service:3: expected KEY=VALUE");
    assert_diag(&diag, "j.service:5: expected KEY=VALUE");
    assert_diag(&diag, "j.service:6: section header without a closing ']'");
    assert_diag(&diag, "j.service:8: expected KEY=VALUE");
    assert_diag_count(&diag, 4);
    assert_int_equal(u->config.type, SERVICE_NOTIFY);
    assert_int_equal(u->config.restart, RESTART_TRANSIENT);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_comments(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("c.service",
                                "# comment\n"
                                "; comment\n"
                                "[Service] ; comment after a header\n"
                                "   ; an indented comment, as in SPEC's examples\n"
                                "\t# another\n"
                                "   \t \n"
                                "ExecStart=/bin/echo a;b #c ;d\n"
                                "Type=notify;x\n",
                                &diag);
    /* "a;b" keeps its ';' (no space before it); "#c" is not a comment
     * inline; " ;d" is. Type=notify;x is therefore a bad value. */
    assert_diag(&diag, "c.service:8: Type=notify;x: expected");
    assert_diag_count(&diag, 1);
    assert_string_equal(u->argv[1], "a;b");
    assert_string_equal(u->argv[2], "#c");
    assert_null(u->argv[3]);
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_crlf_bom_colon(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u = parse_text("w.service",
                                "\xef\xbb\xbf[Unit]\r\n"
                                "Description: windows file\r\n"
                                "\r\n"
                                "[Service]\r\n"
                                "ExecStart=/bin/true\r\n"
                                "Type = notify \r\n"
                                "Environment=A=x:y\r\n",
                                &diag);
    assert_diag_count(&diag, 0);
    assert_string_equal(u->extra->description, "windows file");
    assert_string_equal(u->argv[0], "/bin/true");
    assert_null(u->argv[1]);
    assert_int_equal(u->config.type, SERVICE_NOTIFY);
    assert_string_equal(u->extra->environment[0], "A=x:y");
    unit_free(u);

    /* A BOM only counts on the first line. */
    u = parse_text("w.service", "[Service]\nExecStart=/bin/true\n\xef\xbb\xbfType=notify\n", &diag);
    assert_diag(&diag, "w.service:3: unknown key \xef\xbb\xbfType= in [Service]");
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_nul_bytes(void **state)
{
    static const char text[] = "[Service]\nExecStart=/bin/true\nType=no\0tify\nRestart=bad\n";
    struct diagnostics diag = {0};
    struct unit *u = parse_bytes("n.service", text, sizeof(text) - 1, &diag);

    assert_non_null(u);
    assert_diag(&diag, "n.service:3: NUL byte in line: a unit file is text");
    assert_diag(&diag, "n.service:4: Restart=bad: expected");
    assert_diag_count(&diag, 2);
    unit_free(u);
    diag_free(&diag);
}

/* A Children= line of 1,000 names (about 6 KiB) is one line, not thirty. */
static void test_parse_long_children(void **state)
{
    size_t size = 16 + 1000 * 6 + 64;
    char *text = malloc(size);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, size, "[Supervisor]\nChildren=");
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(text + len, size - len, "c%04d ", i);
    snprintf(text + len, size - len, "   ; a comment\nBogus=1\n");

    struct diagnostics diag = {0};
    struct unit *u = parse_text("big.supervisor", text, &diag);
    assert_diag(&diag, "big.supervisor:3: unknown key Bogus=");
    assert_diag_count(&diag, 1);
    assert_int_equal(u->extra->n_children, 1000);
    for (int i = 0; i < 1000; i++) {
        char want[8];
        snprintf(want, sizeof(want), "c%04d", i);
        assert_string_equal(u->extra->children[i], want);
        assert_int_equal(u->extra->children_lines[i], 2);
    }
    unit_free(u);
    diag_free(&diag);
    free(text);
}

static void test_parse_long_exec_start(void **state)
{
    char *arg = repeat('A', 5000);
    char *text = NULL;
    assert_true(asprintf(&text,
                         "[Service]\n"
                         "ExecStart=  /bin/echo %s 'quoted arg' \"dq\\\"x\" a;b   ; comment\t\n"
                         "Type=notify\n",
                         arg) > 0);
    struct diagnostics diag = {0};
    struct unit *u = parse_text("long.service", text, &diag);

    assert_diag_count(&diag, 0);
    assert_string_equal(u->argv[0], "/bin/echo");
    assert_string_equal(u->argv[1], arg);
    assert_string_equal(u->argv[2], "quoted arg");
    assert_string_equal(u->argv[3], "dq\"x");
    assert_string_equal(u->argv[4], "a;b");
    assert_null(u->argv[5]);
    assert_int_equal(u->line_exec_start, 2);
    assert_int_equal(u->config.type, SERVICE_NOTIFY);
    unit_free(u);
    diag_free(&diag);
    free(text);
    free(arg);
}

/* A long bad value is reported with its line, and quoted only in part. */
static void test_parse_long_bad_value(void **state)
{
    char *junk = repeat('x', 3000);
    char *text = NULL;
    assert_true(asprintf(&text, "[Service]\nExecStart=/bin/true\nType=%s\n", junk) > 0);
    struct diagnostics diag = {0};
    struct unit *u = parse_text("lb.service", text, &diag);

    assert_diag_count(&diag, 1);
    assert_diag(&diag, "lb.service:3: Type=xxxxxxxxxx");
    assert_diag(&diag, "xxx...: expected simple, exec, notify or oneshot");
    assert_true(strlen(diag.messages[0]) < 300);
    unit_free(u);
    diag_free(&diag);
    free(text);
    free(junk);
}

/* The same line, short (split by inih) and long (split by our reader),
 * gives the same value; and the short one is what inih itself gives. */
struct captured {
    char value[512];
};

static int capture_handler(void *user, const char *section, const char *name, const char *value)
{
    struct captured *c = user;
    snprintf(c->value, sizeof(c->value), "%s", value);
    return 1;
}

static void test_parse_long_split_like_inih(void **state)
{
    static const struct {
        const char *lead, *body, *value;
    } cases[] = {
        {"", "hello", "hello"},
        {"   ", "hello   ", "hello"},
        {"", "a;b", "a;b"},
        {"", "a ;b", "a"},
        {"", "a\t;b ; c", "a"},
        {"", "a #b", "a #b"},
        {"", "\"q\" 'r'", "\"q\" 'r'"},
        {"", "a=b:c", "a=b:c"},
        {" \t", "x\t ", "x"},
        {"", ";x", ";x"},
        {"", "a;b ;c", "a;b"},
        {"", "", ""},
    };
    char *pad = repeat('p', 400);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *line = NULL, *text = NULL, *want = NULL;
        struct diagnostics diag = {0};
        struct captured captured = {{0}};

        /* inih on the short line */
        assert_true(asprintf(&line, "Description=%s%s", cases[i].lead, cases[i].body) > 0);
        assert_true(strlen(line) < 190);
        assert_true(asprintf(&text, "[Unit]\n%s\n", line) > 0);
        assert_int_equal(ini_parse_string(text, capture_handler, &captured), 0);
        assert_string_equal(captured.value, cases[i].value);

        /* ours, short */
        struct unit *u = parse_text("split.supervisor", text, &diag);
        assert_diag_count(&diag, 0);
        assert_string_equal(u->extra->description, cases[i].value);
        unit_free(u);
        free(text);

        /* ours, long: the padding goes right after the leading blanks */
        assert_true(
            asprintf(&text, "[Unit]\nDescription=%s%s%s\n", cases[i].lead, pad, cases[i].body) > 0);
        assert_true(asprintf(&want, "%s%s", pad, cases[i].value) > 0);
        u = parse_text("split.supervisor", text, &diag);
        assert_diag_count(&diag, 0);
        assert_string_equal(u->extra->description, want);
        unit_free(u);
        free(text);
        free(want);
        free(line);
    }

    /* The key side: blanks around the key and a ':' separator. */
    char *text = NULL;
    assert_true(asprintf(&text, "[Unit]\nDescription \t: %s\n", pad) > 0);
    struct diagnostics diag = {0};
    struct unit *u = parse_text("split.supervisor", text, &diag);
    assert_diag_count(&diag, 0);
    assert_string_equal(u->extra->description, pad);
    unit_free(u);
    free(text);
    free(pad);
}

/* 65536 bytes parse whole (with LF or CRLF); one more is an error, and the
 * line numbers after it stay right. */
static void test_parse_line_limit(void **state)
{
    const size_t prefix = strlen("Description=");
    char *value = repeat('d', UNIT_LINE_MAX - prefix);
    char *over = repeat('o', UNIT_LINE_MAX - prefix + 1);
    char *huge = repeat('h', 70 * 1024);
    char *text = NULL;
    struct diagnostics diag = {0};

    assert_true(asprintf(&text, "[Unit]\nDescription=%s\n", value) > 0);
    struct unit *u = parse_text("max.supervisor", text, &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(strlen(u->extra->description), UNIT_LINE_MAX - prefix);
    unit_free(u);
    free(text);

    assert_true(asprintf(&text, "[Unit]\r\nDescription=%s\r\n", value) > 0);
    u = parse_text("max.supervisor", text, &diag);
    assert_diag_count(&diag, 0);
    assert_string_equal(u->extra->description, value);
    unit_free(u);
    free(text);

    assert_true(asprintf(&text, "[Unit]\nDescription=%s\n[Supervisor]\nBogus=1\n", over) > 0);
    u = parse_text("over.supervisor", text, &diag);
    assert_diag(&diag, "over.supervisor:2: line too long (over 65536 bytes)");
    assert_diag(&diag, "over.supervisor:4: unknown key Bogus=");
    assert_diag_count(&diag, 2);
    assert_null(u->extra->description);
    unit_free(u);
    free(text);
    diag_free(&diag);

    /* 70 KiB without a key, and without a final newline. */
    assert_true(asprintf(&text, "[Supervisor]\nIntensity=7\n%s", huge) > 0);
    u = parse_text("huge.supervisor", text, &diag);
    assert_diag(&diag, "huge.supervisor:3: line too long (over 65536 bytes)");
    assert_diag_count(&diag, 1);
    assert_int_equal(u->config.intensity, 7);
    unit_free(u);
    free(text);
    diag_free(&diag);
    free(value);
    free(over);
    free(huge);
}

static void test_parse_last_line_without_newline(void **state)
{
    struct diagnostics diag = {0};
    struct unit *u =
        parse_text("nl.service", "[Service]\nExecStart=/bin/true\nType=oneshot", &diag);
    assert_diag_count(&diag, 0);
    assert_int_equal(u->config.type, SERVICE_ONESHOT);
    unit_free(u);
    diag_free(&diag);
}

/* Random bytes: no crash, a bounded number of messages. */
static void test_parse_binary_garbage(void **state)
{
    size_t size = 256 * 1024;
    unsigned char *junk = malloc(size);
    uint32_t x = 12345;
    assert_non_null(junk);
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245 + 12345;
        junk[i] = (unsigned char)(x >> 16);
    }
    for (int seed = 0; seed < 2; seed++) {
        struct diagnostics diag = {0};
        struct unit *u = parse_bytes(seed ? "g.supervisor" : "g.service", junk + seed * 1000,
                                     size - (size_t)seed * 1000, &diag);
        assert_non_null(u);
        assert_true(diag.count >= 1);
        assert_true(diag.count <= 52);
        for (size_t i = 0; i < diag.count; i++)
            for (const char *p = diag.messages[i]; *p; p++)
                assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
        unit_free(u);
        diag_free(&diag);
    }
    free(junk);
}

static void test_parse_too_many_errors(void **state)
{
    char text[200 * 8 + 32] = "[Service]\n";
    for (int i = 0; i < 200; i++)
        strcat(text, "junk!!\n");
    struct diagnostics diag = {0};
    struct unit *u = parse_text("many.service", text, &diag);

    assert_diag_count(&diag, 52);
    assert_diag(&diag, "many.service:2: expected KEY=VALUE");
    assert_diag(&diag, "many.service:51: expected KEY=VALUE");
    assert_diag(&diag,
                "many.service: too many errors (50) after line 51; the rest of the file was not "
                "read");
    assert_diag(&diag, "many.service: no ExecStart=");
    unit_free(u);
    diag_free(&diag);
}

static void test_parse_not_a_file(void **state)
{
    struct diagnostics diag = {0};

    assert_int_equal(mkdir(tmp_path("dir.service"), 0755), 0);
    assert_null(unit_parse_file(tmp_path("dir.service"), "dir", NODE_SERVICE, &diag));
    assert_diag(&diag, "dir.service: is a directory, not a unit file");

    assert_null(unit_parse_file(tmp_path("missing.service"), "missing", NODE_SERVICE, &diag));
    assert_diag(&diag, "missing.service: cannot open: No such file or directory");

    /* A FIFO must neither block the loader nor be read. */
    assert_int_equal(mkfifo(tmp_path("fifo.service"), 0644), 0);
    assert_null(unit_parse_file(tmp_path("fifo.service"), "fifo", NODE_SERVICE, &diag));
    assert_diag(&diag, "fifo.service: not a regular file");
    assert_diag_count(&diag, 3);
    diag_free(&diag);
    rmdir(tmp_path("dir.service"));
    unlink(tmp_path("fifo.service"));
}

/* ---- load.c ------------------------------------------------------------- */

static void test_load_valid_root(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "valid-root", &set, &diag), 0);
    assert_diag_count(&diag, 0);
    assert_true(set.explicit_root);
    assert_int_equal(set.count, 5); /* README.md, notes.txt, dotfiles, backups ignored */
    static const char *const names[] = {"app", "cache", "db", "root", "web"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(set.units[i]->name, names[i]);
    assert_string_equal(set.units[2]->path, DATA "valid-root/db.service");
    assert_ptr_equal(unit_set_find(&set, "web"), set.units[4]);
    assert_null(unit_set_find(&set, "nope"));
    assert_null(unit_set_find(&set, "hidden"));

    struct node *root = unit_build_tree(&set);
    assert_non_null(root);
    assert_string_equal(root->name, "root");
    assert_null(root->parent);
    assert_int_equal(root->n_children, 2);
    assert_string_equal(root->children[0]->name, "db");
    assert_string_equal(root->children[1]->name, "web");
    struct node *web = root->children[1];
    assert_int_equal(web->kind, NODE_SUPERVISOR);
    assert_int_equal(web->config->strategy, STRATEGY_REST_FOR_ONE);
    assert_int_equal(web->n_children, 2);
    assert_string_equal(web->children[0]->name, "cache");
    assert_string_equal(web->children[1]->name, "app");
    assert_ptr_equal(web->children[1]->parent, web);
    assert_int_equal(web->children[1]->position, 1);
    assert_true(web->children[1]->config->significant);
    assert_ptr_equal(node_find(root, "app"), web->children[1]);

    char *text = print_to_string(root, &set);
    assert_string_equal(text, "root  supervisor one-for-all intensity 2/1min\n"
                              "├── db  service notify permanent mailbox\n"
                              "└── web  supervisor rest-for-one intensity 3/5s transient "
                              "auto-shutdown any-significant\n"
                              "    ├── cache  service simple permanent\n"
                              "    └── app  service exec temporary significant\n");
    free(text);
    node_free_tree(root);
    unit_set_free(&set);
    unit_set_free(&set); /* twice is fine */
    diag_free(&diag);
}

static void test_load_valid_implicit(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "valid-implicit/", &set, &diag), 0);
    assert_diag_count(&diag, 0);
    assert_false(set.explicit_root);
    assert_string_equal(set.units[0]->path, DATA "valid-implicit/a.service");

    struct node *root = unit_build_tree(&set);
    assert_non_null(root);
    assert_string_equal(root->name, "root");
    assert_int_equal(root->kind, NODE_SUPERVISOR);
    assert_int_equal(root->config->strategy, STRATEGY_ONE_FOR_ONE);
    assert_int_equal(root->config->intensity, 5);
    assert_int_equal(root->config->period, 10000);
    assert_int_equal(root->config->auto_shutdown, AUTO_SHUTDOWN_NEVER);

    char *text = print_to_string(root, &set);
    assert_string_equal(text, "root  supervisor one-for-one intensity 5/10s (implicit)\n"
                              "├── a  service oneshot temporary\n"
                              "├── b  supervisor one-for-one intensity 5/10s permanent\n"
                              "│   └── c  service exec permanent\n"
                              "├── d  service exec transient\n"
                              "└── empty  supervisor one-for-all intensity 5/10s permanent\n");
    free(text);
    node_free_tree(root);
    unit_set_free(&set);
    diag_free(&diag);
}

/* SPEC.md's own examples, verbatim: indented comments, inline comments. */
static void test_load_spec_examples(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;
    bool have_postgres = getpwnam("postgres") != NULL;

    int r = unit_load_dir(DATA "spec", &set, &diag);
    if (have_postgres) {
        assert_int_equal(r, 0);
        assert_diag_count(&diag, 0);
    } else {
        assert_int_equal(r, -1);
        assert_diag(&diag, "spec/db.service:17: User=postgres: no such user");
        assert_diag_count(&diag, 1);
    }
    struct unit *db = unit_set_find(&set, "db");
    assert_non_null(db);
    assert_string_equal(db->extra->description, "Postgres");
    assert_string_equal(db->argv[0], "/usr/bin/postgres");
    assert_string_equal(db->argv[1], "-D");
    assert_string_equal(db->argv[2], "/var/lib/pg");
    assert_null(db->argv[3]);
    assert_int_equal(db->config.type, SERVICE_NOTIFY);
    assert_int_equal(db->config.shutdown, 5000);
    assert_int_equal(db->extra->mailbox_capacity, 4096);
    struct unit *root = unit_set_find(&set, "root");
    assert_int_equal(root->config.strategy, STRATEGY_REST_FOR_ONE);
    assert_int_equal(root->extra->n_children, 3);
    assert_string_equal(root->extra->children[2], "web");
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_broken_children(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "broken-children", &set, &diag), -1);
    assert_diag(&diag, "broken-children/root.supervisor:2: Children=: a is already listed by " DATA
                       "broken-children/other.supervisor:2: a unit has one supervisor");
    assert_diag(&diag, "broken-children/root.supervisor:2: Children=: no unit named nosuch (no "
                       "nosuch.service or nosuch.supervisor here)");
    assert_diag(&diag, "broken-children/root.supervisor:3: Children=: a is listed twice (first at "
                       "line 2)");
    assert_diag_count(&diag, 3);
    assert_int_equal(set.count, 4); /* the set is filled all the same */
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_broken_unlisted(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "broken-unlisted", &set, &diag), -1);
    assert_diag(&diag, "broken-unlisted/thief.supervisor:2: Children=: root cannot be a child: "
                       "root.supervisor is the top of the tree");
    assert_diag(&diag, "broken-unlisted/orphan.service: not listed by any supervisor: with "
                       "root.supervisor, every unit must be in its tree");
    assert_diag(&diag, "broken-unlisted/lone.supervisor: not listed by any supervisor");
    assert_diag(&diag, "broken-unlisted/thief.supervisor: not listed by any supervisor");
    assert_diag(&diag, "broken-unlisted/kid.service: not in root.supervisor's tree: its "
                       "supervisor lone is not in it");
    assert_diag_count(&diag, 5);
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_broken_cycle(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "broken-cycle", &set, &diag), -1);
    assert_diag(&diag, "broken-cycle/self.supervisor:2: Children=: self lists itself: a "
                       "supervisor cannot contain itself");
    assert_diag(&diag, "broken-cycle/q.supervisor:2: Children=: listing p makes a cycle: q -> p "
                       "-> q; a supervisor cannot contain itself");
    assert_diag(&diag, "broken-cycle/z.supervisor:3: Children=: listing x makes a cycle: z -> x "
                       "-> y -> z; a supervisor cannot contain itself");
    assert_diag_count(&diag, 3);
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_broken_names(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "broken-names", &set, &diag), -1);
    assert_diag(&diag, "broken-names/_under.service: bad unit name '_under': names match "
                       "[A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes");
    assert_diag(&diag, "broken-names/bad@name.service: bad unit name 'bad@name'");
    assert_diag(&diag,
                "broken-names/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
                ".service: bad unit name");
    assert_diag(&diag, "broken-names/dup.supervisor: the name dup is also used by " DATA
                       "broken-names/dup.service: a name is one unit, a service or a supervisor");
    assert_diag(&diag, "broken-names/root.service: the name root is reserved for the root "
                       "supervisor: rename this unit, or write root.supervisor");
    assert_diag_count(&diag, 5);
    assert_int_equal(set.count, 3); /* dup.service, mmm..., root.service */
    assert_int_equal(set.units[0]->kind, NODE_SERVICE);
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_broken_significant(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "broken-significant", &set, &diag), -1);
    assert_diag(&diag, "broken-significant/perm.service:3: Significant=yes needs "
                       "Restart=transient or temporary, not permanent");
    assert_diag(&diag, "broken-significant/child.service:4: Significant=yes, but its supervisor "
                       "sup has AutoShutdown=never: set AutoShutdown=any-significant or "
                       "all-significant in " DATA "broken-significant/sup.supervisor");
    assert_diag(&diag, "broken-significant/loner.service:4: Significant=yes, but the implicit "
                       "root supervisor has AutoShutdown=never: list loner in a supervisor with "
                       "AutoShutdown=any-significant or all-significant, or write "
                       "root.supervisor");
    assert_diag(&diag, "broken-significant/perm.service:3: Significant=yes, but the implicit "
                       "root");
    assert_diag_count(&diag, 4);
    unit_set_free(&set);
    diag_free(&diag);
}

static void test_load_unreadable_dir(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(unit_load_dir(DATA "no-such-dir", &set, &diag), -1);
    assert_diag(&diag, "no-such-dir: cannot read unit directory: No such file or directory");
    assert_diag_count(&diag, 1);
    assert_int_equal(set.count, 0);
    unit_set_free(&set);
    diag_free(&diag);
}

/* Odd directory entries: a directory named like a unit is ignored; a FIFO,
 * a dangling symlink and bad names are reported; an empty set is valid. */
static void test_load_odd_entries(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(mkdir(tmp_path("odd"), 0755), 0);
    assert_int_equal(unit_load_dir(tmp_path("odd"), &set, &diag), 0);
    assert_diag_count(&diag, 0);
    struct node *root = unit_build_tree(&set);
    char *text = print_to_string(root, &set);
    assert_string_equal(text, "root  supervisor one-for-one intensity 5/10s (implicit)\n");
    free(text);
    node_free_tree(root);
    unit_set_free(&set);

    assert_int_equal(mkdir(tmp_path("odd/x.service"), 0755), 0);
    assert_int_equal(mkfifo(tmp_path("odd/f.service"), 0644), 0);
    assert_int_equal(symlink("/nonexistent/arbor", tmp_path("odd/gone.supervisor")), 0);
    write_text("odd/-dash.service", "[Service]\nExecStart=/bin/true\n");
    write_text("odd/a b.service", "[Service]\nExecStart=/bin/true\n");
    write_text("odd/.service", "junk");
    write_text("odd/ok.service", "[Service]\nExecStart=/bin/true\n");
    assert_int_equal(symlink("ok.service", tmp_path("odd/link.service")), 0);

    assert_int_equal(unit_load_dir(tmp_path("odd"), &set, &diag), -1);
    assert_diag(&diag, "odd/f.service: not a regular file");
    assert_diag(&diag, "odd/gone.supervisor: cannot read: No such file or directory");
    assert_diag(&diag, "odd/-dash.service: bad unit name '-dash'");
    assert_diag(&diag, "odd/a b.service: bad unit name 'a b'");
    assert_diag_count(&diag, 4);
    assert_int_equal(set.count, 2); /* link and ok */
    assert_string_equal(set.units[0]->name, "link");
    unit_set_free(&set);
    diag_free(&diag);
}

/* A unit that fails to parse still takes part in validation, so one run
 * reports problems of both kinds. */
static void test_load_reports_everything(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;

    assert_int_equal(mkdir(tmp_path("all"), 0755), 0);
    write_text("all/s.supervisor", "[Supervisor]\nChildren=a b\nStrategy=bogus\n");
    write_text("all/a.service", "[Service]\nExecStart=/bin/true\nType=x\n");
    assert_int_equal(unit_load_dir(tmp_path("all"), &set, &diag), -1);
    assert_diag(&diag, "all/s.supervisor:3: Strategy=bogus: expected");
    assert_diag(&diag, "all/a.service:3: Type=x: expected");
    assert_diag(&diag, "all/s.supervisor:2: Children=: no unit named b");
    assert_diag_count(&diag, 3);
    unit_set_free(&set);
    diag_free(&diag);
}

/* A thousand children, built and printed in order. */
static void test_load_wide_tree(void **state)
{
    struct diagnostics diag = {0};
    struct unit_set set;
    size_t size = 32 + 1000 * 6;
    char *text = malloc(size);
    assert_non_null(text);

    assert_int_equal(mkdir(tmp_path("wide"), 0755), 0);
    size_t len = (size_t)snprintf(text, size, "[Supervisor]\nChildren=");
    for (int i = 999; i >= 0; i--) {
        char file[64];
        len += (size_t)snprintf(text + len, size - len, "w%03d ", i);
        snprintf(file, sizeof(file), "wide/w%03d.service", i);
        write_text(file, "[Service]\nExecStart=true\n");
    }
    write_text("wide/root.supervisor", text);
    assert_int_equal(unit_load_dir(tmp_path("wide"), &set, &diag), 0);
    assert_diag_count(&diag, 0);
    struct node *root = unit_build_tree(&set);
    assert_int_equal(root->n_children, 1000);
    assert_string_equal(root->children[0]->name, "w999");
    assert_string_equal(root->children[999]->name, "w000");
    node_free_tree(root);
    unit_set_free(&set);
    diag_free(&diag);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid),
        cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_command_line_errors),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_diag),
        cmocka_unit_test(test_parse_service_all_keys),
        cmocka_unit_test(test_parse_service_defaults),
        cmocka_unit_test(test_parse_supervisor),
        cmocka_unit_test(test_parse_children_reset),
        cmocka_unit_test(test_parse_repeatable_resets),
        cmocka_unit_test(test_parse_special_values),
        cmocka_unit_test(test_parse_user_group),
        cmocka_unit_test(test_parse_bad_service_values),
        cmocka_unit_test(test_parse_bad_supervisor_values),
        cmocka_unit_test(test_parse_bad_keys_and_sections),
        cmocka_unit_test(test_parse_broken_header),
        cmocka_unit_test(test_parse_every_bad_line_reported),
        cmocka_unit_test(test_parse_comments),
        cmocka_unit_test(test_parse_crlf_bom_colon),
        cmocka_unit_test(test_parse_nul_bytes),
        cmocka_unit_test(test_parse_long_children),
        cmocka_unit_test(test_parse_long_exec_start),
        cmocka_unit_test(test_parse_long_bad_value),
        cmocka_unit_test(test_parse_long_split_like_inih),
        cmocka_unit_test(test_parse_line_limit),
        cmocka_unit_test(test_parse_last_line_without_newline),
        cmocka_unit_test(test_parse_binary_garbage),
        cmocka_unit_test(test_parse_too_many_errors),
        cmocka_unit_test(test_parse_not_a_file),
        cmocka_unit_test(test_load_valid_root),
        cmocka_unit_test(test_load_valid_implicit),
        cmocka_unit_test(test_load_spec_examples),
        cmocka_unit_test(test_load_broken_children),
        cmocka_unit_test(test_load_broken_unlisted),
        cmocka_unit_test(test_load_broken_cycle),
        cmocka_unit_test(test_load_broken_names),
        cmocka_unit_test(test_load_broken_significant),
        cmocka_unit_test(test_load_unreadable_dir),
        cmocka_unit_test(test_load_odd_entries),
        cmocka_unit_test(test_load_reports_everything),
        cmocka_unit_test(test_load_wide_tree),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
