/*
 * main.c: arborctl, the control command of arbord.
 *
 * main() reads the global options, finds the command in the verb table,
 * reads that command's options and arguments against the table's rules,
 * and runs its handler. A handler asks arbord (one request, one
 * connection: client.c) and prints the answer, for people (render.c) or as
 * one JSON document (json.c). The exit status is arbord's verdict (RESULT
 * exit=), or arborctl's own: 2 for a usage error, 4 when arbord cannot be
 * reached, 1 when the conversation itself broke.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arbor.h"
#include "client.h"
#include "json.h"
#include "render.h"
#include "unit/unit.h"

#ifndef ARBOR_VERSION
#define ARBOR_VERSION "0"
#endif

/* How long arbord may take to answer HELLO before arborctl gives up. */
#define HELLO_TIMEOUT_MS 10000
/* The largest mailbox message (SPEC 4: one datagram, up to 64 KiB). */
#define MAILBOX_MESSAGE_MAX ARBOR_MESSAGE_MAX
/* The most recent lines `logs -n` may ask for. */
#define LOG_LINES_MAX 1000000

struct ctl;

struct verb {
    const char *name;
    const char *args;       /* the usage after the name */
    const char *summary;    /* one line for the command list */
    const char *help;       /* more for "arborctl COMMAND --help": options, notes */
    const char *options;    /* the command options it takes: their short letters */
    int min_args, max_args; /* positional arguments; max -1: any number */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

struct ctl {
    const struct verb *verb;
    const char *runtime;
    char runtime_buf[PATH_MAX];
    char socket_path[PATH_MAX];
    bool json;
    struct render render;
    /* command options */
    bool no_block, follow;
    long lines;           /* -1: arbord's default */
    int signal;           /* kill */
    long long timeout_ms; /* wait; -1: forever */
    /* Waits for arbord end when *interrupted is set (logs -f). */
    volatile sig_atomic_t *interrupted;
    const sigset_t *wait_mask;
};

static const struct verb verbs[];

/* ---- usage ---------------------------------------------------------------- */

static void print_usage_line(FILE *out, const struct verb *verb)
{
    if (verb)
        fprintf(out, "Usage: arborctl [-r DIR] [--json] %s%s%s\n", verb->name,
                *verb->args ? " " : "", verb->args);
    else
        fprintf(out, "Usage: arborctl [-r DIR] [--json] COMMAND [ARGS]\n");
}

static void print_help(FILE *out, const struct verb *verb)
{
    print_usage_line(out, verb);
    if (verb) {
        fprintf(out, "%c%s.\n", verb->summary[0] - 'a' + 'A', verb->summary + 1);
        if (*verb->help)
            fprintf(out, "\n%s", verb->help);
        fprintf(out, "\nSee arborctl(8).\n");
        return;
    }
    fprintf(out, "Control arbord, the arbor supervisor.\n\nCommands:\n");
    for (const struct verb *v = verbs; v->name; v++) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", v->name, v->args);
        fprintf(out, "  %-32s %s\n", left, v->summary);
    }
    fprintf(out,
            "\nOptions:\n"
            "  -r, --runtime DIR   arbord's runtime directory (default $ARBOR_RUNTIME,\n"
            "                      else /run/arbor as root, $XDG_RUNTIME_DIR/arbor otherwise)\n"
            "      --json          print one JSON document (logs -f: one object a line)\n"
            "  -h, --help          show this help, or a command's with COMMAND --help\n"
            "  -V, --version       show the version\n"
            "\n"
            "Exit status: 0 done, 1 failed or refused, 2 usage, 3 no such unit,\n"
            "4 cannot reach arbord. See arborctl(8).\n");
}

/* A usage error: the reason and the usage on stderr (and, with --json, a
 * document on stdout, so a script always has one to read). */
static int usage_error(const struct ctl *ctl, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct ctl *ctl, const char *format, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, format);
    vsnprintf(reason, sizeof(reason), format, ap);
    va_end(ap);
    fprintf(stderr, "arborctl: %s\n", reason);
    print_usage_line(stderr, ctl->verb);
    if (ctl->json) {
        struct json json;
        json_init(&json, stdout);
        json_object_begin(&json);
        json_key(&json, "ok");
        json_bool(&json, false);
        json_key(&json, "exit");
        json_int(&json, CONTROL_EXIT_USAGE);
        json_key(&json, "errors");
        json_array_begin(&json);
        json_cstring(&json, reason);
        json_array_end(&json);
        json_key(&json, "message");
        json_null(&json);
        json_object_end(&json);
        json_finish(&json);
    }
    return CONTROL_EXIT_USAGE;
}

/* ---- talking to arbord -------------------------------------------------- */

/* One conversation: connect, request, frames, RESULT. Whatever goes wrong,
 * `result` ends up saying what, with arborctl's exit status. */
struct conversation {
    struct client client;
    struct result result;
    bool answered;    /* a RESULT came */
    bool closed;      /* arbord closed the connection without one */
    bool interrupted; /* a signal ended the wait (logs -f) */
    char hint[256];   /* for people only: what to check */
};

/* A UNIT or LOG frame: 0 to go on, 1 to stop reading (quietly), -errno for
 * a frame that cannot be decoded. */
typedef int frame_handler(struct ctl *ctl, const struct client_frame *frame, void *arg);

static void fail(struct conversation *conv, int exit, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct conversation *conv, int exit, const char *format, ...)
{
    char line[PATH_MAX + 256];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(line, sizeof(line), format, ap);
    va_end(ap);
    result_free(&conv->result);
    conv->result.ok = false;
    conv->result.exit = exit;
    result_add(&conv->result.errors, &conv->result.n_errors, line,
               n < 0                      ? 0
               : (size_t)n < sizeof(line) ? (size_t)n
                                          : sizeof(line) - 1);
}

static void unreachable_hint(struct ctl *ctl, struct conversation *conv, int error)
{
    struct stat st;
    if (error == -ENOENT && stat(ctl->runtime, &st) < 0)
        snprintf(conv->hint, sizeof(conv->hint),
                 "%s does not exist: is arbord running with this runtime directory "
                 "(-r DIR or $ARBOR_RUNTIME)?",
                 ctl->runtime);
    else if (error == -ENOENT)
        snprintf(conv->hint, sizeof(conv->hint), "no control socket: is arbord running?");
    else if (error == -ECONNREFUSED)
        snprintf(conv->hint, sizeof(conv->hint),
                 "nothing listens on the socket: arbord is not running");
    else if (error == -EACCES)
        snprintf(conv->hint, sizeof(conv->hint), "no permission to use the socket");
}

static int converse(struct ctl *ctl, struct conversation *conv, struct proto_buf *request,
                    frame_handler *handler, void *arg)
{
    memset(conv, 0, sizeof(*conv));
    conv->client.interrupted = ctl->interrupted;
    conv->client.wait_mask = ctl->wait_mask;
    int r = client_connect(&conv->client, ctl->socket_path, HELLO_TIMEOUT_MS, &conv->result);
    if (r == -EINTR) {
        conv->interrupted = true;
        return 0;
    }
    if (r == -EPROTONOSUPPORT) {
        conv->answered = true; /* arbord refused us at HELLO, and said why */
        return conv->result.exit;
    }
    if (r < 0) {
        fail(conv, CONTROL_EXIT_UNREACHABLE, "cannot reach arbord at %s: %s", ctl->socket_path,
             r == -ETIMEDOUT ? "no answer" : strerror(-r));
        unreachable_hint(ctl, conv, r);
        return conv->result.exit;
    }

    r = client_send(&conv->client, request);
    if (r == -EMSGSIZE)
        fail(conv, CONTROL_EXIT_USAGE, "too many units for one request");
    else if (r < 0)
        fail(conv, CONTROL_EXIT_FAILED, "cannot send the request: %s", strerror(-r));

    while (r >= 0) {
        struct client_frame frame;
        r = client_next(&conv->client, &frame);
        if (r == 0 || r == -ECONNRESET) {
            conv->closed = true;
            break;
        }
        if (r == -EINTR) {
            conv->interrupted = true;
            break;
        }
        if (r == -EPROTO)
            fail(conv, CONTROL_EXIT_FAILED, "protocol error: malformed frame from arbord");
        else if (r < 0)
            fail(conv, CONTROL_EXIT_FAILED, "lost arbord: %s", strerror(-r));
        if (r < 0)
            break;
        if (frame.type == FRAME_RESULT) {
            r = client_decode_result(&frame, &conv->result);
            if (r < 0) {
                fail(conv, CONTROL_EXIT_FAILED, "protocol error: malformed RESULT from arbord");
                break;
            }
            conv->answered = true;
            break;
        }
        if (frame.type == FRAME_HELLO || frame.type == FRAME_REQUEST) {
            fail(conv, CONTROL_EXIT_FAILED, "protocol error: unexpected frame from arbord");
            break;
        }
        r = handler ? handler(ctl, &frame, arg) : 0;
        if (r == 1) {
            conv->interrupted = true;
            break;
        }
        if (r < 0) {
            fail(conv, CONTROL_EXIT_FAILED, "%s",
                 r == -ENOMEM ? "out of memory" : "protocol error: malformed frame from arbord");
            break;
        }
    }
    client_close(&conv->client);
    return conv->result.exit;
}

/* The end of a conversation that should have had a RESULT and did not. */
static void require_answer(struct conversation *conv)
{
    if (!conv->answered && conv->result.n_errors == 0)
        fail(conv, CONTROL_EXIT_FAILED, "arbord closed the connection without an answer");
}

static void print_hint(const struct ctl *ctl, const struct conversation *conv)
{
    if (conv->hint[0] && !ctl->json)
        fprintf(stderr, "arborctl: hint: %s\n", conv->hint);
}

/* The human form of a result: messages to stdout, errors to stderr. */
static void print_result(struct ctl *ctl, const struct conversation *conv)
{
    render_result(&ctl->render, stderr, &conv->result);
    if (!conv->result.ok && conv->result.n_errors == 0)
        fprintf(stderr, "arborctl: %s failed\n", ctl->verb->name);
    print_hint(ctl, conv);
}

/* With --json the document goes to stdout; errors still go to stderr too,
 * so a script that only checks the exit status still tells a human why. */
static void errors_to_stderr(const struct result *result)
{
    for (size_t i = 0; i < result->n_errors; i++) {
        fputs("arborctl: ", stderr);
        render_line(stderr, result->errors[i].data, result->errors[i].len);
    }
}

static void json_result_document(struct ctl *ctl, const struct conversation *conv)
{
    errors_to_stderr(&conv->result);
    struct json json;
    json_init(&json, stdout);
    json_object_begin(&json);
    render_json_result(&json, &conv->result);
    json_object_end(&json);
    json_finish(&json);
}

static struct proto_buf request_begin(const char *command)
{
    struct proto_buf request = {0};
    proto_begin(&request, FRAME_REQUEST);
    proto_add_str(&request, "command", command);
    return request;
}

static void request_add_units(struct proto_buf *request, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        proto_add_str(request, "unit", argv[i]);
}

/* Ask, print the result, exit as arbord says: the commands whose only
 * answer is a RESULT. */
static int ask(struct ctl *ctl, struct proto_buf *request, bool closing_is_success)
{
    struct conversation conv;
    proto_end(request);
    converse(ctl, &conv, request, NULL, NULL);
    proto_buf_free(request);
    if (closing_is_success && conv.closed && !conv.answered) {
        conv.result.ok = true; /* arbord is gone, which is what was asked */
        conv.result.exit = CONTROL_EXIT_OK;
    }
    require_answer(&conv);
    if (ctl->json)
        json_result_document(ctl, &conv);
    else
        print_result(ctl, &conv);
    int status = conv.result.exit;
    result_free(&conv.result);
    return status;
}

/* ---- status and mailbox ------------------------------------------------- */

struct unit_list {
    struct unit_info *units;
    size_t n, cap;
};

static int collect_unit(struct ctl *ctl, const struct client_frame *frame, void *arg)
{
    struct unit_list *list = arg;
    if (frame->type != FRAME_UNIT)
        return 0; /* a newer arbord's frame: not ours to judge */
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 64;
        struct unit_info *grown = realloc(list->units, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        list->units = grown;
        list->cap = cap;
    }
    int r = client_decode_unit(frame, &list->units[list->n]);
    if (r < 0)
        return r;
    list->n++;
    return 0;
}

static void unit_list_free(struct unit_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        unit_info_free(&list->units[i]);
    free(list->units);
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    struct unit_list list = {0};
    struct conversation conv;
    struct proto_buf request = request_begin("status");
    request_add_units(&request, argc, argv);
    proto_end(&request);
    converse(ctl, &conv, &request, collect_unit, &list);
    proto_buf_free(&request);
    require_answer(&conv);

    if (ctl->json) {
        struct json json;
        json_init(&json, stdout);
        json_object_begin(&json);
        errors_to_stderr(&conv.result);
        render_json_result(&json, &conv.result);
        json_key(&json, "units");
        json_array_begin(&json);
        for (size_t i = 0; i < list.n; i++)
            render_json_unit(&json, &list.units[i]);
        json_array_end(&json);
        json_object_end(&json);
        json_finish(&json);
    } else {
        render_status(&ctl->render, list.units, list.n);
        print_result(ctl, &conv);
    }
    int status = conv.result.exit;
    result_free(&conv.result);
    unit_list_free(&list);
    return status;
}

/* One line of `mailbox`: a number arbord may not have sent (an older one). */
static void print_mailbox_count(const char *label, const struct opt_int *value, const char *meaning)
{
    if (value->set)
        printf("  %-13s %lld %s\n", label, value->value, meaning);
}

/* The first line is what `status` shows; the rest, one number a line, as
 * arbor-mailbox(7) explains them. */
static void print_mailbox(const struct unit_info *unit, const char *name)
{
    bool running = unit->pid.set;
    printf("%s: %lld queued\n", name, unit->mailbox_queued.value);
    if (unit->mailbox_capacity.set)
        printf("  %-13s %lld messages arbord may hold before senders wait\n", "capacity",
               unit->mailbox_capacity.value);
    if (unit->mailbox_direct.set)
        printf("  %-13s %s\n", "delivery",
               !running                     ? "none: no instance runs, arbord keeps what comes"
               : unit->mailbox_direct.value ? "direct: the instance reads the socket itself"
                                            : "forward: arbord passes messages on to the instance");
    print_mailbox_count("socket_bytes", &unit->mailbox_socket_bytes,
                        "bytes waiting in the socket the instance reads");
    print_mailbox_count("kept", &unit->mailbox_kept, "messages taken in by arbord, in total");
    print_mailbox_count("forwarded", &unit->mailbox_forwarded,
                        "messages passed on by arbord, in total");
    print_mailbox_count("reclaimed", &unit->mailbox_reclaimed,
                        "unread messages taken back from ended instances, in total");
}

/* What is queued in a mailbox, as status reports it, and its totals. */
static int cmd_mailbox(struct ctl *ctl, int argc, char **argv)
{
    struct unit_list list = {0};
    struct conversation conv;
    struct proto_buf request = request_begin("status");
    proto_add_str(&request, "unit", argv[0]);
    proto_end(&request);
    converse(ctl, &conv, &request, collect_unit, &list);
    proto_buf_free(&request);
    require_answer(&conv);

    const struct unit_info *unit = NULL;
    for (size_t i = 0; i < list.n && !unit; i++)
        if (strcmp(list.units[i].name.data, argv[0]) == 0)
            unit = &list.units[i];
    if (conv.result.ok && !unit)
        fail(&conv, CONTROL_EXIT_FAILED, "arbord did not report %s", argv[0]);
    else if (conv.result.ok && !unit->mailbox_queued.set)
        fail(&conv, CONTROL_EXIT_FAILED, "%s has no mailbox", argv[0]);

    if (ctl->json) {
        static const struct unit_info none; /* every member null */
        struct json json;
        json_init(&json, stdout);
        json_object_begin(&json);
        errors_to_stderr(&conv.result);
        render_json_result(&json, &conv.result);
        json_key(&json, "unit");
        json_cstring(&json, argv[0]);
        render_json_mailbox(&json, conv.result.ok ? unit : &none);
        json_object_end(&json);
        json_finish(&json);
    } else {
        if (conv.result.ok)
            print_mailbox(unit, argv[0]);
        print_result(ctl, &conv);
    }
    int status = conv.result.exit;
    result_free(&conv.result);
    unit_list_free(&list);
    return status;
}

/* ---- commands that change things ---------------------------------------- */

/* start, stop, restart. */
static int cmd_change(struct ctl *ctl, int argc, char **argv)
{
    struct proto_buf request = request_begin(ctl->verb->name);
    request_add_units(&request, argc, argv);
    if (ctl->no_block)
        proto_add_int(&request, "no_block", 1);
    return ask(ctl, &request, false);
}

static int cmd_kill(struct ctl *ctl, int argc, char **argv)
{
    struct proto_buf request = request_begin("kill");
    request_add_units(&request, argc, argv);
    proto_add_int(&request, "signal", ctl->signal);
    return ask(ctl, &request, false);
}

static int cmd_wait(struct ctl *ctl, int argc, char **argv)
{
    struct proto_buf request = request_begin("wait");
    request_add_units(&request, argc, argv);
    if (ctl->timeout_ms >= 0)
        proto_add_int(&request, "timeout_ms", ctl->timeout_ms);
    return ask(ctl, &request, false);
}

/* reload, reexec */
static int cmd_plain(struct ctl *ctl, int argc, char **argv)
{
    struct proto_buf request = request_begin(ctl->verb->name);
    return ask(ctl, &request, false);
}

/* arbord answers once the tree has stopped, just before it exits; if it
 * is gone without a word, it has still done what was asked. */
static int cmd_shutdown(struct ctl *ctl, int argc, char **argv)
{
    struct proto_buf request = request_begin("shutdown");
    return ask(ctl, &request, true);
}

/* ---- logs --------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = 1;
}

/* For logs -f: SIGINT, SIGTERM and SIGHUP end the wait for more lines,
 * cleanly. They stay blocked except inside ppoll() (client.c), so one that
 * comes while a line is printed is acted on at the next wait, not lost. */
static void catch_interrupts(struct ctl *ctl)
{
    static sigset_t wait_mask;
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigset_t block;
    sigemptyset(&block);
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        sigaction(signals[i], &sa, NULL);
        sigaddset(&block, signals[i]);
    }
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        sigdelset(&wait_mask, signals[i]);
    ctl->interrupted = &interrupted;
    ctl->wait_mask = &wait_mask;
}

struct logs {
    const char *unit;
    struct json *json; /* the document's "lines" array; NULL in human or follow mode */
};

static int print_log(struct ctl *ctl, const struct client_frame *frame, void *arg)
{
    struct logs *logs = arg;
    struct log_line line;
    if (frame->type != FRAME_LOG)
        return 0;
    int r = client_decode_log(frame, &line);
    if (r < 0)
        return r;
    if (logs->json) {
        render_json_log(logs->json, &line, logs->unit);
    } else if (ctl->json) { /* follow: JSON Lines */
        struct json json;
        json_init(&json, stdout);
        render_json_log(&json, &line, logs->unit);
        json_finish(&json);
    } else {
        render_log(&ctl->render, &line, logs->unit);
    }
    log_line_free(&line);
    if (ctl->follow && !ctl->json)
        fflush(stdout);
    /* Nobody reads any more (logs -f | head): stop following, quietly. */
    return ctl->follow && ferror(stdout) ? 1 : 0;
}

static int cmd_logs(struct ctl *ctl, int argc, char **argv)
{
    struct logs logs = {.unit = argv[0]};
    struct json json;
    struct proto_buf request = request_begin("logs");
    proto_add_str(&request, "unit", argv[0]);
    if (ctl->lines >= 0)
        proto_add_int(&request, "lines", ctl->lines);
    if (ctl->follow)
        proto_add_int(&request, "follow", 1);
    proto_end(&request);

    if (ctl->json && !ctl->follow) {
        /* One document; the lines stream into it as they come. */
        json_init(&json, stdout);
        json_object_begin(&json);
        json_key(&json, "unit");
        json_cstring(&json, argv[0]);
        json_key(&json, "lines");
        json_array_begin(&json);
        logs.json = &json;
    }

    struct conversation conv;
    if (ctl->follow)
        catch_interrupts(ctl);
    converse(ctl, &conv, &request, print_log, &logs);
    proto_buf_free(&request);

    /* Following ends cleanly when the operator stops it or arbord closes;
     * only a RESULT (an error) or a failure says otherwise. */
    if (ctl->follow && !conv.answered && conv.result.n_errors == 0) {
        conv.result.ok = true;
        conv.result.exit = CONTROL_EXIT_OK;
    } else {
        require_answer(&conv);
    }

    if (logs.json) {
        json_array_end(&json);
        errors_to_stderr(&conv.result);
        render_json_result(&json, &conv.result);
        json_object_end(&json);
        json_finish(&json);
    } else if (ctl->json) {
        if (!conv.result.ok)
            json_result_document(ctl, &conv); /* the last line of the stream */
    } else {
        print_result(ctl, &conv);
    }
    int status = conv.result.exit;
    result_free(&conv.result);
    return status;
}

/* ---- send --------------------------------------------------------------- */

/* The message: MESSAGE itself, or stdin for "-". */
static char *read_message(const char *arg, size_t *ret_len)
{
    if (strcmp(arg, "-") != 0) {
        *ret_len = strlen(arg);
        return strdup(arg);
    }
    size_t cap = MAILBOX_MESSAGE_MAX + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    while (len < cap) {
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret_len = len;
    return buf;
}

static int cmd_send(struct ctl *ctl, int argc, char **argv)
{
    struct conversation conv;
    memset(&conv, 0, sizeof(conv));
    size_t len;
    char *message = read_message(argv[1], &len);
    if (!message)
        return usage_error(ctl, "cannot read the message: %s", strerror(errno));
    if (len > MAILBOX_MESSAGE_MAX) {
        free(message);
        return usage_error(ctl, "the message is longer than 64 KiB");
    }

    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/mailbox/%s", ctl->runtime, argv[0]);
    int r = arbor_send_to_path(path, message, len, ctl->no_block ? ARBOR_NONBLOCK : 0);
    int error = errno;
    free(message);
    if (r == 0) {
        conv.result.ok = true;
    } else if (error == ENOENT) {
        fail(&conv, CONTROL_EXIT_NO_UNIT, "no mailbox %s at %s", argv[0], path);
        snprintf(conv.hint, sizeof(conv.hint),
                 "is %s a service with Mailbox=yes, and is arbord running with %s?", argv[0],
                 ctl->runtime);
    } else if (error == EAGAIN) {
        fail(&conv, CONTROL_EXIT_FAILED, "the mailbox of %s is full", argv[0]);
    } else if (error == ECONNREFUSED) {
        fail(&conv, CONTROL_EXIT_FAILED, "nothing holds the mailbox of %s: is arbord running?",
             argv[0]);
    } else if (error == EACCES) {
        fail(&conv, CONTROL_EXIT_FAILED, "no permission to send to the mailbox of %s (%s)", argv[0],
             path);
        snprintf(conv.hint, sizeof(conv.hint),
                 "only its service's user and root may send, unless its unit opens it up with "
                 "MailboxMode= and MailboxGroup= (see arbor-mailbox(7))");
    } else {
        fail(&conv, CONTROL_EXIT_FAILED, "cannot send to %s: %s", path, strerror(error));
    }
    if (ctl->json)
        json_result_document(ctl, &conv);
    else
        print_result(ctl, &conv);
    int status = conv.result.exit;
    result_free(&conv.result);
    return status;
}

/* ---- help --------------------------------------------------------------- */

static const struct verb *find_verb(const char *name)
{
    for (const struct verb *v = verbs; v->name; v++)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}

static int cmd_help(struct ctl *ctl, int argc, char **argv)
{
    const struct verb *verb = NULL;
    if (argc > 0 && !(verb = find_verb(argv[0]))) {
        ctl->verb = NULL;
        return usage_error(ctl, "unknown command '%s'", argv[0]);
    }
    print_help(stdout, verb);
    return 0;
}

/* ---- the verb table ------------------------------------------------------ */

/* Command options, by short letter (those without one have a code >= 256). */
enum { OPT_NO_BLOCK = 256, OPT_TIMEOUT, OPT_JSON };

static const struct verb verbs[] = {
    {"status", "[NAME...]", "show the tree: state, pid, uptime, restarts, last exit, mailbox",
     "With NAMEs, only their subtrees.\n", "", 0, -1, cmd_status},
    {"start", "[--no-block] NAME...", "start units (a supervisor: its subtree) and wait",
     "Waits until every unit is ready, or has failed (exit 1).\n"
     "      --no-block   return as soon as arbord has the request\n",
     "b", 1, -1, cmd_change},
    {"stop", "[--no-block] NAME...", "stop units and wait; they stay stopped",
     "Waits until every unit has stopped. A stopped unit stays stopped, and is\n"
     "no failure, until it is started again.\n"
     "      --no-block   return as soon as arbord has the request\n",
     "b", 1, -1, cmd_change},
    {"restart", "[--no-block] NAME...", "stop, then start units, and wait",
     "Waits until every unit is ready again, or has failed (exit 1).\n"
     "      --no-block   return as soon as arbord has the request\n",
     "b", 1, -1, cmd_change},
    {"kill", "[-s SIGNAL] NAME...", "signal the process groups of services",
     "A supervisor stands for every service under it.\n"
     "  -s, --signal SIGNAL   TERM, SIGTERM, RTMIN+2 or a number (default SIGTERM)\n",
     "s", 1, -1, cmd_kill},
    {"reload", "", "re-read the unit files and apply what changed",
     "A bad unit changes nothing; each problem is reported as FILE:LINE: message.\n", "", 0, 0,
     cmd_plain},
    {"upgrade", "NAME", "start a new instance of NAME beside the old one, then retire the old",
     "Re-reads NAME's unit file as it is on disk now (no reload needed) and starts a\n"
     "new instance with the same mailbox, Listen= sockets and stored fds. Once it is\n"
     "ready the old one is stopped, and the command returns when it has exited (0).\n"
     "If the new one is not ready within StartTimeout, or dies first, it is stopped,\n"
     "the old one keeps running, and the command exits 1. Never counts as a restart.\n",
     "", 1, 1, cmd_change},
    {"reexec", "", "execute arbord's binary again, keeping every service running",
     "The binary at the path arbord was started from (perhaps a newer one) is first\n"
     "run with --version; if that fails, exit 1 and the old arbord carries on.\n"
     "Pids, supervision state, mailboxes and their messages, stored fds and\n"
     "Listen= sockets all carry over. Refused while a reload or an upgrade is under\n"
     "way, or when a unit file changed on disk since it was loaded (reload first).\n",
     "", 0, 0, cmd_plain},
    {"logs", "[-f] [-n N] NAME", "show a service's recent output",
     "  -f, --follow      keep printing new lines until interrupted\n"
     "  -n, --lines N     how many recent lines (default 10)\n",
     "fn", 1, 1, cmd_logs},
    {"wait", "[--timeout DURATION] NAME", "wait until NAME is ready (0) or failed (1)",
     "A stopped or failed unit exits 1 at once.\n"
     "      --timeout DURATION   give up after 500ms, 5s, 2min... (exit 1)\n",
     "t", 1, 1, cmd_wait},
    {"send", "[--no-block] NAME MESSAGE", "send MESSAGE to NAME's mailbox",
     "MESSAGE - reads the message from standard input (at most 64 KiB).\n"
     "      --no-block   fail (exit 1) instead of waiting when the mailbox is full\n",
     "b", 2, 2, cmd_send},
    {"mailbox", "NAME", "show how many messages wait in NAME's mailbox",
     "Also how they are delivered and the totals arbord has kept, forwarded and\n"
     "reclaimed; see arbor-mailbox(7).\n",
     "", 1, 1, cmd_mailbox},
    {"shutdown", "", "stop the tree in reverse order; arbord exits",
     "Returns once the tree has stopped.\n", "", 0, 0, cmd_shutdown},
    {"help", "[COMMAND]", "show this help, or a command's", "", "", 0, 1, cmd_help},
    {NULL, NULL, NULL, NULL, NULL, 0, 0, NULL},
};

/* ---- options --------------------------------------------------------------- */

static int resolve_runtime(struct ctl *ctl)
{
    if (!ctl->runtime || !*ctl->runtime)
        ctl->runtime = getenv("ARBOR_RUNTIME");
    if (!ctl->runtime || !*ctl->runtime) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (geteuid() == 0) {
            ctl->runtime = "/run/arbor";
        } else if (xdg && *xdg) {
            snprintf(ctl->runtime_buf, sizeof(ctl->runtime_buf), "%s/arbor", xdg);
            ctl->runtime = ctl->runtime_buf;
        } else {
            return -1;
        }
    }
    int n = snprintf(ctl->socket_path, sizeof(ctl->socket_path), "%s/%s", ctl->runtime,
                     CONTROL_SOCKET_NAME);
    return n < 0 || (size_t)n >= sizeof(ctl->socket_path) ? -1 : 0;
}

static const struct option longopts[] = {
    {"runtime", required_argument, NULL, 'r'},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"no-block", no_argument, NULL, OPT_NO_BLOCK},
    {"signal", required_argument, NULL, 's'},
    {"follow", no_argument, NULL, 'f'},
    {"lines", required_argument, NULL, 'n'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static bool option_allowed(const struct verb *verb, int c)
{
    int letter = c == OPT_NO_BLOCK ? 'b' : c == OPT_TIMEOUT ? 't' : c;
    return strchr(verb->options, letter) != NULL;
}

static const char *option_name(int c)
{
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* A kill signal: a name in any case, with or without SIG, or a number. */
static int parse_kill_signal(const char *text, int *ret)
{
    char upper[32];
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof(upper))
        return -1;
    for (size_t i = 0; i <= len; i++)
        upper[i] = text[i] >= 'a' && text[i] <= 'z' ? (char)(text[i] - 'a' + 'A') : text[i];
    return parse_signal(upper, ret);
}

/* One command option. 0, or an exit status (help, usage error). */
static int command_option(struct ctl *ctl, int c, const char *arg, bool *ret_help)
{
    unsigned long value;
    msec_t duration;

    switch (c) {
    case 'r':
        ctl->runtime = arg;
        return 0;
    case OPT_JSON:
        ctl->json = true;
        return 0;
    case 'h':
        *ret_help = true;
        return 0;
    case 'V':
        return usage_error(ctl, "--version goes before the command");
    default:
        break;
    }
    if (!option_allowed(ctl->verb, c))
        return usage_error(ctl, "option --%s does not apply to %s", option_name(c),
                           ctl->verb->name);
    switch (c) {
    case OPT_NO_BLOCK:
        ctl->no_block = true;
        break;
    case 'f':
        ctl->follow = true;
        break;
    case 's':
        if (parse_kill_signal(arg, &ctl->signal) < 0)
            return usage_error(ctl, "'%s' is not a signal", arg);
        break;
    case 'n':
        if (parse_uint(arg, LOG_LINES_MAX, &value) < 0)
            return usage_error(ctl, "'%s' is not a number of lines (0 to %d)", arg, LOG_LINES_MAX);
        ctl->lines = (long)value;
        break;
    case OPT_TIMEOUT:
        if (strcmp(arg, "infinity") == 0)
            ctl->timeout_ms = -1;
        else if (parse_duration(arg, &duration) < 0)
            return usage_error(ctl, "'%s' is not a duration (500ms, 5s, 2min, infinity)", arg);
        else
            ctl->timeout_ms = duration;
        break;
    }
    return 0;
}

/* The command's options and arguments; argv[0] is the command. Returns 0,
 * or an exit status when there is nothing to run. */
static int parse_command(struct ctl *ctl, int argc, char **argv, int *ret_first)
{
    bool help = false;
    int c;

    opterr = 0;
    optind = 0; /* glibc: start afresh, on a new vector */
    while ((c = getopt_long(argc, argv, ":r:hVs:fn:", longopts, NULL)) != -1) {
        if (c == '?' && optopt > 0 && optopt < 256)
            return usage_error(ctl, "unknown option '-%c'", optopt);
        if (c == '?')
            return usage_error(ctl, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error(ctl, "option '%s' needs a value", argv[optind - 1]);
        int r = command_option(ctl, c, optarg, &help);
        if (r)
            return r;
    }
    if (help) {
        print_help(stdout, ctl->verb);
        return -1;
    }
    int n = argc - optind;
    if (n < ctl->verb->min_args)
        return usage_error(ctl, "%s needs %s", ctl->verb->name,
                           ctl->verb->min_args == 1 ? "a unit name" : "a unit name and a message");
    if (ctl->verb->max_args >= 0 && n > ctl->verb->max_args)
        return usage_error(ctl, "%s takes %s: '%s' is one too many", ctl->verb->name,
                           ctl->verb->max_args == 0   ? "no arguments"
                           : ctl->verb->max_args == 1 ? "one argument"
                                                      : "two arguments",
                           argv[optind + ctl->verb->max_args]);
    /* Unit names: the first argument of every command but help, and all
     * of them where there is no other kind (send's MESSAGE is not one). */
    if (ctl->verb->run != cmd_help) {
        int names = ctl->verb->run == cmd_send ? 1 : n;
        for (int i = 0; i < names; i++)
            if (!unit_name_valid(argv[optind + i]))
                return usage_error(ctl, "'%s' is not a unit name", argv[optind + i]);
    }
    *ret_first = optind;
    return 0;
}

/* The options before the command. Returns 0, or an exit status. */
static int parse_global(struct ctl *ctl, int argc, char **argv)
{
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:r:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            ctl->runtime = optarg;
            break;
        case OPT_JSON:
            ctl->json = true;
            break;
        case 'h':
            print_help(stdout, NULL);
            return -1;
        case 'V':
            printf("arborctl %s\n", ARBOR_VERSION);
            return -1;
        case ':':
            return usage_error(ctl, "option '%s' needs a value", argv[optind - 1]);
        case '?':
            if (optopt > 0 && optopt < 256)
                return usage_error(ctl, "unknown option '-%c'", optopt);
            return usage_error(ctl, "unknown option '%s'", argv[optind - 1]);
        default:
            return usage_error(ctl, "option --%s goes after the command", option_name(c));
        }
    }
    return 0;
}

/* Colour, escaping and width follow from where stdout goes. */
static void setup_render(struct ctl *ctl)
{
    bool tty = isatty(STDOUT_FILENO);
    const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
    ctl->render.out = stdout;
    ctl->render.raw_log = !tty;
    ctl->render.color = tty && !(no_color && *no_color) && !(term && strcmp(term, "dumb") == 0);
    struct winsize ws;
    if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        ctl->render.width = ws.ws_col;
}

/* Anything that went wrong writing stdout: a full disk is an error; a
 * reader that went away (EPIPE) is not worth one. */
static int check_stdout(int status)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return status;
    if (errno == EPIPE)
        return status;
    fprintf(stderr, "arborctl: cannot write the output: %s\n", strerror(errno));
    return status ? status : CONTROL_EXIT_FAILED;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {.lines = -1, .signal = SIGTERM, .timeout_ms = -1};

    /* A closed socket or pipe must be an error return, never a death. */
    signal(SIGPIPE, SIG_IGN);

    /* --json, wherever it is, decides the form of even a usage error. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            ctl.json = true;

    int status = parse_global(&ctl, argc, argv);
    if (status)
        return status < 0 ? 0 : status;
    int command = optind;
    if (command >= argc)
        return usage_error(&ctl, "no command");
    const char *name = argv[command];
    ctl.verb = find_verb(name);
    if (!ctl.verb)
        return usage_error(&ctl, "unknown command '%s'", name);

    int first = 1;
    status = parse_command(&ctl, argc - command, argv + command, &first);
    if (status)
        return status < 0 ? check_stdout(0) : status;
    char **args = argv + command + first;
    int n_args = argc - command - first;

    setup_render(&ctl);
    if (ctl.verb->run != cmd_help && resolve_runtime(&ctl) < 0) {
        struct conversation conv = {0};
        fail(&conv, CONTROL_EXIT_UNREACHABLE,
             "cannot reach arbord: no runtime directory (use -r DIR, $ARBOR_RUNTIME or "
             "$XDG_RUNTIME_DIR)");
        if (ctl.json)
            json_result_document(&ctl, &conv);
        else
            print_result(&ctl, &conv);
        result_free(&conv.result);
        return CONTROL_EXIT_UNREACHABLE;
    }
    status = ctl.verb->run(&ctl, n_args, args);
    return check_stdout(status);
}
