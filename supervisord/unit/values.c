/*
 * values.c: parsers for the value types of unit files.
 *
 * Each parser takes the whole value (already trimmed by the INI layer) and
 * either accepts all of it or rejects it: "5sx", "+5" or "5 " are errors,
 * never a silent prefix match. They return 0 or -1 and touch *ret only on
 * success, so a rejected value leaves the default in place.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "unit/unit.h"

/* ASCII classes: <ctype.h> follows the locale, unit files do not. */
static bool ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool ascii_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- durations ---------------------------------------------------------- */

/* Each unit's length in microseconds, the finest unit accepted. A suffix
 * must match one of these exactly, so their order does not matter. */
static const struct {
    const char *suffix;
    uint64_t usec;
} duration_units[] = {
    {"us", 1ULL},
    {"usec", 1ULL},
    {"ms", 1000ULL},
    {"msec", 1000ULL},
    {"s", 1000000ULL},
    {"sec", 1000000ULL},
    {"second", 1000000ULL},
    {"seconds", 1000000ULL},
    {"m", 60000000ULL},
    {"min", 60000000ULL},
    {"minute", 60000000ULL},
    {"minutes", 60000000ULL},
    {"h", 3600000000ULL},
    {"hr", 3600000000ULL},
    {"hour", 3600000000ULL},
    {"hours", 3600000000ULL},
    {"d", 86400000000ULL},
    {"day", 86400000000ULL},
    {"days", 86400000000ULL},
};

/* Only six decimals matter at microsecond resolution; more are accepted
 * (they must still be digits) and ignored. */
#define DURATION_FRACTION_DIGITS 6

/* The largest duration: a hundred years is "forever" for a timer, and it
 * keeps every later `now + duration` far from overflowing msec_t. */
#define DURATION_MAX_USEC (100ULL * 365 * 86400000000ULL)

static int duration_unit(const char *suffix, size_t len, uint64_t *ret)
{
    for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
        if (strlen(duration_units[i].suffix) == len &&
            memcmp(duration_units[i].suffix, suffix, len) == 0) {
            *ret = duration_units[i].usec;
            return 0;
        }
    }
    return -1;
}

/* One "1.5min" component at *p. Adds its value to *total; `alone` says
 * whether a bare number (seconds) is acceptable. */
static int duration_component(const char **p, bool alone, uint64_t *total)
{
    const char *s = *p;
    uint64_t whole = 0, fraction = 0, scale = 1, unit;

    if (!ascii_digit(*s) && !(*s == '.' && ascii_digit(s[1])))
        return -1;
    for (; ascii_digit(*s); s++)
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*s - '0'), &whole))
            return -1;
    if (*s == '.') {
        s++;
        if (!ascii_digit(*s))
            return -1;
        for (int digits = 0; ascii_digit(*s); s++, digits++) {
            if (digits < DURATION_FRACTION_DIGITS) {
                fraction = fraction * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
        }
    }
    while (*s == ' ' || *s == '\t')
        s++;

    const char *suffix = s;
    while (ascii_alpha(*s))
        s++;
    if (s == suffix) {
        if (!alone)
            return -1;
        unit = 1000000ULL; /* a bare number is seconds */
    } else if (duration_unit(suffix, (size_t)(s - suffix), &unit) < 0) {
        return -1;
    }

    uint64_t value;
    if (__builtin_mul_overflow(whole, unit, &value) ||
        __builtin_add_overflow(value, fraction * unit / scale, &value) ||
        __builtin_add_overflow(*total, value, total))
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    *p = s;
    return 0;
}

int parse_duration(const char *text, msec_t *ret)
{
    const char *p = text;
    uint64_t total = 0;

    if (!*p)
        return -1;
    /* A bare number must be the whole value: in "1min 30" the 30 has no
     * obvious unit, so it is rejected rather than guessed. */
    bool alone = true;
    for (const char *q = p; *q; q++)
        if (ascii_alpha(*q))
            alone = false;
    while (*p)
        if (duration_component(&p, alone, &total) < 0)
            return -1;
    if (total > DURATION_MAX_USEC)
        return -1;
    /* Round up, so that a tiny non-zero duration never becomes 0 ("off"). */
    *ret = (msec_t)((total + 999) / 1000);
    return 0;
}

/* ---- integers ----------------------------------------------------------- */

int parse_uint(const char *text, unsigned long max, unsigned long *ret)
{
    unsigned long value = 0;

    /* Digits only: no sign, no blanks, no 0x; strtoul() accepts all three. */
    if (!ascii_digit(*text))
        return -1;
    for (const char *p = text; *p; p++) {
        if (!ascii_digit(*p) || __builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, (unsigned long)(*p - '0'), &value) || value > max)
            return -1;
    }
    *ret = value;
    return 0;
}

/* ---- signals ------------------------------------------------------------ */

#define SIGNAL_NUMBER_MAX 64

/* "RTMIN", "RTMIN+3", "RTMAX-2", "RTMAX". */
static int parse_realtime_signal(const char *name, int *ret)
{
    int base, sign;
    unsigned long offset = 0;

    if (strncmp(name, "RTMIN", 5) == 0)
        base = SIGRTMIN, sign = 1;
    else if (strncmp(name, "RTMAX", 5) == 0)
        base = SIGRTMAX, sign = -1;
    else
        return -1;
    name += 5;
    if (*name) {
        if (*name != (sign > 0 ? '+' : '-') ||
            parse_uint(name + 1, (unsigned long)(SIGRTMAX - SIGRTMIN), &offset) < 0)
            return -1;
    }
    *ret = base + sign * (int)offset;
    return 0;
}

int parse_signal(const char *text, int *ret)
{
    unsigned long number;

    if (ascii_digit(*text)) {
        if (parse_uint(text, SIGNAL_NUMBER_MAX, &number) < 0 || number < 1)
            return -1;
        *ret = (int)number;
        return 0;
    }
    /* Names are case-sensitive, as in systemd and kill(1): SIGTERM or TERM. */
    const char *name = strncmp(text, "SIG", 3) == 0 ? text + 3 : text;
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcmp(abbrev, name) == 0) {
            *ret = sig;
            return 0;
        }
    }
    return parse_realtime_signal(name, ret);
}

/* ---- booleans ----------------------------------------------------------- */

int parse_bool(const char *text, bool *ret)
{
    static const char *const yes[] = {"1", "yes", "y", "true", "t", "on"};
    static const char *const no[] = {"0", "no", "n", "false", "f", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -1;
}

/* ---- command lines ------------------------------------------------------ */

/* A growable string and a growable string vector, just enough for the
 * splitter below. */
struct words {
    char **strv;
    size_t count, capacity;
    char *word;
    size_t len, size;
    bool in_word; /* a word has begun, even if empty (''), so it is kept */
};

static int words_putc(struct words *w, char c)
{
    if (w->len + 1 >= w->size) {
        size_t size = w->size ? w->size * 2 : 64;
        char *grown = realloc(w->word, size);
        if (!grown)
            return -1;
        w->word = grown;
        w->size = size;
    }
    w->word[w->len++] = c;
    w->word[w->len] = '\0';
    w->in_word = true;
    return 0;
}

static int words_end(struct words *w)
{
    if (!w->in_word)
        return 0;
    if (w->count + 2 > w->capacity) {
        size_t capacity = w->capacity ? w->capacity * 2 : 8;
        char **grown = realloc(w->strv, capacity * sizeof(*grown));
        if (!grown)
            return -1;
        w->strv = grown;
        w->capacity = capacity;
    }
    char *copy = strndup(w->word ? w->word : "", w->len);
    if (!copy)
        return -1;
    w->strv[w->count++] = copy;
    w->strv[w->count] = NULL;
    w->len = 0;
    w->in_word = false;
    return 0;
}

/* Inside double quotes, as in sh(1), a backslash escapes only these; before
 * anything else it is an ordinary character. */
static bool dquote_escapable(char c)
{
    return c == '"' || c == '\\' || c == '$' || c == '`';
}

/* Split `text` into w. POSIX shell quoting without any expansion: the same
 * line gives the same argv here as in sh, so operators can test commands
 * in a shell first. Returns NULL or an error message. */
static const char *words_split(struct words *w, const char *text)
{
    static const char *const oom = "out of memory";

    for (const char *p = text; *p; p++) {
        int r = 0;
        if (*p == ' ' || *p == '\t') {
            r = words_end(w);
        } else if (*p == '\'') {
            const char *close = strchr(p + 1, '\'');
            if (!close)
                return "unterminated single quote";
            w->in_word = true;
            for (p++; p < close && r == 0; p++)
                r = words_putc(w, *p);
            p = close;
        } else if (*p == '"') {
            w->in_word = true;
            for (p++; *p != '"' && r == 0; p++) {
                if (!*p)
                    return "unterminated double quote";
                if (*p == '\\' && dquote_escapable(p[1]))
                    p++;
                r = words_putc(w, *p);
            }
        } else if (*p == '\\') {
            if (!*++p)
                return "a backslash at the end escapes nothing";
            r = words_putc(w, *p);
        } else {
            r = words_putc(w, *p);
        }
        if (r < 0)
            return oom;
    }
    return words_end(w) < 0 ? oom : NULL;
}

char **parse_command_line(const char *text, const char **ret_error)
{
    struct words w = {0};

    const char *error = words_split(&w, text);
    free(w.word);
    if (!error && !w.strv) {
        w.strv = calloc(1, sizeof(char *)); /* no words: an empty argv */
        if (!w.strv)
            error = "out of memory";
    }
    if (error) {
        strv_free(w.strv);
        *ret_error = error;
        return NULL;
    }
    /* Kept for the unit's life, thousands of times: one allocation, the
     * pointers followed by the words, with no spare slots. */
    size_t bytes = (w.count + 1) * sizeof(char *);
    for (size_t i = 0; i < w.count; i++)
        bytes += strlen(w.strv[i]) + 1;
    char **packed = malloc(bytes);
    if (!packed) {
        strv_free(w.strv);
        *ret_error = "out of memory";
        return NULL;
    }
    char *text_at = (char *)(packed + w.count + 1);
    for (size_t i = 0; i < w.count; i++) {
        size_t len = strlen(w.strv[i]) + 1;
        packed[i] = memcpy(text_at, w.strv[i], len);
        text_at += len;
    }
    packed[w.count] = NULL;
    strv_free(w.strv);
    return packed;
}

void strv_free(char **strv)
{
    if (!strv)
        return;
    for (char **p = strv; *p; p++)
        free(*p);
    free(strv);
}

/* ---- names -------------------------------------------------------------- */

bool unit_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > UNIT_NAME_MAX || !(ascii_alpha(name[0]) || ascii_digit(name[0])))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!(ascii_alpha(c) || ascii_digit(c) || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}
