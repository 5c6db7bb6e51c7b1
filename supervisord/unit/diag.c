/*
 * diag.c: the list of problems found while loading units.
 *
 * Loading never stops at the first problem: every message is appended here
 * and the caller prints them all. Library code never prints, so this list is
 * the only way problems leave the unit module.
 *
 * Messages quote text from the files, and a hostile or binary file can hold
 * escape sequences; control bytes are replaced with '?' so that printing a
 * diagnostic to a terminal is always safe.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/unit.h"

static void diag_sanitize(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static int diag_grow(struct diagnostics *diag)
{
    if (diag->count < diag->capacity)
        return 0;
    size_t capacity = diag->capacity ? diag->capacity * 2 : 8;
    char **grown = realloc(diag->messages, capacity * sizeof(*grown));
    if (!grown)
        return -1;
    diag->messages = grown;
    diag->capacity = capacity;
    return 0;
}

void diag_add(struct diagnostics *diag, const char *file, int line, const char *fmt, ...)
{
    char *body = NULL, *message = NULL;
    va_list args;

    va_start(args, fmt);
    int n = vasprintf(&body, fmt, args);
    va_end(args);
    if (n < 0)
        goto lost;

    if (file && line > 0)
        n = asprintf(&message, "%s:%d: %s", file, line, body);
    else if (file)
        n = asprintf(&message, "%s: %s", file, body);
    else
        n = asprintf(&message, "%s", body);
    free(body);
    if (n < 0 || diag_grow(diag) < 0)
        goto lost;

    diag_sanitize(message);
    diag->messages[diag->count++] = message;
    return;

lost:
    /* Out of memory: the text is gone, but the problem must still count,
     * or a broken unit set could pass as valid. */
    if (n >= 0)
        free(message);
    diag->dropped++;
}

size_t diag_problems(const struct diagnostics *diag)
{
    return diag->count + diag->dropped;
}

void diag_free(struct diagnostics *diag)
{
    if (!diag)
        return;
    for (size_t i = 0; i < diag->count; i++)
        free(diag->messages[i]);
    free(diag->messages);
    diag->messages = NULL;
    diag->count = diag->capacity = diag->dropped = 0;
}
