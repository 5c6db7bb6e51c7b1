/*
 * json.h: a small streaming JSON writer for arborctl's --json output.
 *
 * The writer emits compact JSON (one line, no spaces) to a stdio stream and
 * inserts the commas itself: the caller only says begin/end, key, value.
 *
 * Strings are byte strings of any content, and the output is always valid
 * JSON (RFC 8259) in UTF-8:
 *   - `"` and `\` are escaped as \" and \\;
 *   - \b \f \n \r \t use their short escapes, every other byte below 0x20
 *     and DEL (0x7f) becomes \u00XX (lower-case hex), NUL included;
 *   - well-formed UTF-8 passes through unchanged, except U+2028 and U+2029,
 *     written \u2028 and \u2029 so the output is also valid JavaScript;
 *   - each byte that is not part of a well-formed UTF-8 sequence (a stray
 *     continuation byte, a truncated sequence, an overlong form, a
 *     surrogate, a code point above U+10FFFF, 0xC0, 0xC1, 0xF5..0xFF)
 *     becomes one U+FFFD, written \ufffd.
 * The conversion is lossy only for bytes that are not UTF-8; JSON strings
 * cannot hold raw bytes.
 *
 * Contract: the caller nests correctly (a key before each object member,
 * no key in an array) and at most JSON_DEPTH_MAX levels deep; misuse is
 * a programming error, caught by assert().
 */
#ifndef ARBOR_CTL_JSON_H
#define ARBOR_CTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 16

struct json {
    FILE *out;
    int depth;
    bool has_items[JSON_DEPTH_MAX + 1]; /* a value was written at this level */
    bool after_key;                     /* the next value is a member's */
};

void json_init(struct json *json, FILE *out);
void json_object_begin(struct json *json);
void json_object_end(struct json *json);
void json_array_begin(struct json *json);
void json_array_end(struct json *json);
/* A member's name; its value comes next. */
void json_key(struct json *json, const char *key);
/* `len` bytes of any content, escaped as above. */
void json_string(struct json *json, const char *value, size_t len);
/* A NUL-terminated string, or null when `value` is NULL. */
void json_cstring(struct json *json, const char *value);
void json_int(struct json *json, long long value);
void json_bool(struct json *json, bool value);
void json_null(struct json *json);
/* End the document: a newline, then flush the stream. */
void json_finish(struct json *json);

/* Write `len` bytes as a quoted, escaped JSON string. */
void json_write_string(FILE *out, const char *value, size_t len);

/* The length of the well-formed UTF-8 sequence at `s` (1 to 4), or 0 when
 * the bytes there (at most `avail`) do not start one. */
size_t json_utf8_length(const unsigned char *s, size_t avail);

#endif
