/*
 * parse.h: what parse.c (the line reader and inih's handler) and keys.c
 * (the key table and one parser per key) share. Internal to unit/.
 */
#ifndef ARBOR_UNIT_PARSE_H
#define ARBOR_UNIT_PARSE_H

#include <stdbool.h>
#include <stdio.h>

#include "unit/unit.h"

/* After this many problems in one file it is probably not a unit file at
 * all (a binary, say); stop reading rather than list every line. */
#define PARSE_ERRORS_MAX 50
/* Bytes of a value quoted in a message. */
#define PARSE_QUOTE_MAX 60
/* Room for every key of the table; checked at compile time below. */
#define PARSE_KEYS_MAX 40
/* What inih gets instead of a key line too long for its buffer. */
#define PARSE_PLACEHOLDER "arbor.long-line="

enum parse_section {
    SECTION_NONE,    /* before the first header */
    SECTION_UNIT,    /* [Unit] */
    SECTION_SERVICE, /* [Service] */
    SECTION_SUPERVISOR,
    SECTION_IGNORED, /* a bad header: already reported, its keys are skipped */
};

extern const char *const section_names[];

struct parse_ctx {
    FILE *file;
    const char *path;
    struct unit *unit;
    struct unit_extra *extra; /* unit->extra, writable while parsing */
    struct diagnostics *diag;
    size_t diag_start; /* problems before this file, to count its own */
    char *line;        /* the physical line being handled */
    int lineno;
    int read_errno;
    bool gave_up;
    enum parse_section section;
    /* A long key line, split by the reader, waiting for the handler. */
    bool long_pending;
    const char *long_key, *long_value;
    /* Set by a key parser to explain a rejected value better than `expect`. */
    const char *why;
    int key_lines[PARSE_KEYS_MAX]; /* line of each scalar key's first use */
    int line_user, line_group;
    /* Children= while parsing: the names, NUL after each, and their lines. */
    char *children_names;
    size_t children_names_len, children_names_size;
    int *children_lines;
};

#define parse_error(ctx, ...) diag_add((ctx)->diag, (ctx)->path, (ctx)->lineno, __VA_ARGS__)

bool parse_space(char c);
char *parse_lskip(char *s);
void parse_rstrip(char *s, char *end);
char *parse_find(char *s, const char *chars);
const char *parse_shorten(const char *value, char *buf, size_t size);
int parse_oom(struct parse_ctx *ctx);
bool parse_section_allowed(enum node_kind kind, enum parse_section section);
const char *parse_sections_allowed_text(enum node_kind kind);
enum parse_section parse_section_lookup(const char *name, size_t len);
void parse_key_value(struct parse_ctx *ctx, const char *name, const char *value);
/* The line a scalar key was first given on in this file, 0 if never. */
int parse_key_first_line(const struct parse_ctx *ctx, enum parse_section section, const char *name);

#endif
