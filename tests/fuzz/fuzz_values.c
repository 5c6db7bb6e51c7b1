/*
 * fuzz_values.c: the value parsers of unit files, one text through all of
 * them: parse_duration(), parse_command_line() (ExecStart= and
 * Environment= quoting), parse_signal(), parse_bool(), parse_uint(),
 * unit_name_valid(), and env_parse_file_line() (one EnvironmentFile= line).
 *
 * The input is the text, cut at its first NUL (a C string, as the INI
 * layer and arborctl pass it).
 *
 * Checks: a duration is within its bounds and "<N>ms" parses back to the
 * same N; a command line quoted back word by word (each in '...') splits
 * into the same argv; a signal name found parses back from its own
 * abbreviation; an accepted integer is what strtoul() reads and within the
 * maximum; the unit-name rule is the one libarbor applies to envelopes;
 * an environment-file line keeps its variable name.
 */
#include <signal.h>
#include <string.h>

#include "arbor.h"
#include "fuzz.h"
#include "os/env.h"
#include "unit/unit.h"

#define DURATION_MAX_MS (100LL * 365 * 86400 * 1000)

static void check_duration(const char *text)
{
    msec_t ms = -2, again = -2;
    char buf[32];

    if (parse_duration(text, &ms) < 0) {
        FUZZ_CHECK(ms == -2); /* a rejected value leaves the default alone */
        return;
    }
    FUZZ_CHECK(ms >= 0 && ms <= DURATION_MAX_MS);
    snprintf(buf, sizeof(buf), "%lldms", (long long)ms);
    FUZZ_CHECK(parse_duration(buf, &again) == 0 && again == ms);
}

/* Each word in single quotes ('\'' for a quote): sh's own way. */
static char *quote_words(char **argv)
{
    size_t len = 1;
    for (char **w = argv; *w; w++)
        len += 4 * strlen(*w) + 3;
    char *text = malloc(len), *p = text;
    FUZZ_CHECK(text);
    for (char **w = argv; *w; w++) {
        if (w != argv)
            *p++ = ' ';
        *p++ = '\'';
        for (const char *c = *w; *c; c++) {
            if (*c == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *c;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return text;
}

static void check_command_line(const char *text)
{
    const char *error = NULL;
    char **argv = parse_command_line(text, &error);

    if (!argv) {
        FUZZ_CHECK(error && *error);
        return;
    }
    size_t n = 0;
    size_t total = 0;
    for (; argv[n]; n++)
        total += strlen(argv[n]);
    FUZZ_CHECK(total <= strlen(text)); /* quoting only ever removes bytes */
    /* No quotes or backslashes: words are just what blanks separate. */
    if (!strpbrk(text, "'\"\\")) {
        size_t words = 0;
        for (const char *p = text; *p; p++)
            if (*p != ' ' && *p != '\t' && (p == text || p[-1] == ' ' || p[-1] == '\t'))
                words++;
        FUZZ_CHECK(words == n);
    }

    char *quoted = quote_words(argv);
    char **again = parse_command_line(quoted, &error);
    FUZZ_CHECK(again);
    size_t i = 0;
    for (; argv[i] && again[i]; i++)
        FUZZ_CHECK(!strcmp(argv[i], again[i]));
    FUZZ_CHECK(!argv[i] && !again[i]);
    free(again);
    free(quoted);
    free(argv);
}

static void check_signal(const char *text)
{
    int sig = -1, again = -1;

    if (parse_signal(text, &sig) < 0) {
        FUZZ_CHECK(sig == -1);
        return;
    }
    FUZZ_CHECK(sig >= 1 && sig <= SIGRTMAX);
    if (sig < SIGRTMIN && sigabbrev_np(sig)) {
        FUZZ_CHECK(parse_signal(sigabbrev_np(sig), &again) == 0 && again == sig);
        char signame[32];
        snprintf(signame, sizeof(signame), "SIG%s", sigabbrev_np(sig));
        FUZZ_CHECK(parse_signal(signame, &again) == 0 && again == sig);
    }
}

static void check_uint(const char *text, unsigned long max)
{
    unsigned long v = 12345;

    if (parse_uint(text, max, &v) < 0) {
        FUZZ_CHECK(v == 12345);
        return;
    }
    FUZZ_CHECK(v <= max && strspn(text, "0123456789") == strlen(text));
    FUZZ_CHECK(strtoul(text, NULL, 10) == v);
}

static void check_name(const char *text)
{
    char buf[ARBOR_ENVELOPE_MAX];
    bool valid = unit_name_valid(text);

    /* arbord names mailboxes after units; libarbor must agree on names. */
    FUZZ_CHECK(valid == (arbor_envelope_encode(text, buf, sizeof(buf)) >= 0));
    FUZZ_CHECK(!valid || strlen(text) <= UNIT_NAME_MAX);
}

static void check_env_line(const char *text)
{
    char *entry = NULL;
    int r = env_parse_file_line(text, &entry);

    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r <= 0)
        return;
    FUZZ_CHECK(entry);
    const char *eq = strchr(entry, '=');
    FUZZ_CHECK(eq && eq > entry);
    size_t klen = (size_t)(eq - entry);
    /* The name is the line's own, after blanks and "export ". */
    const char *line = text + strspn(text, " \t\n\v\f\r");
    if (!strncmp(line, "export ", 7))
        line += 7;
    FUZZ_CHECK(!strncmp(line, entry, klen + 1));
    FUZZ_CHECK(strlen(entry) <= strlen(line));
    free(entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    bool b = false;

    check_duration(text);
    check_command_line(text);
    check_signal(text);
    check_uint(text, 1000000);
    check_uint(text, (unsigned long)-1);
    check_name(text);
    check_env_line(text);
    if (parse_bool(text, &b) == 0)
        FUZZ_CHECK(strlen(text) <= 5);
    free(text);
    return 0;
}
