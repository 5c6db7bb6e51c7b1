/*
 * json.c: the JSON writer (json.h). No allocation: everything streams to
 * the FILE, so a status of thousands of units costs no memory here.
 */
#include <assert.h>
#include <string.h>

#include "json.h"

void json_init(struct json *json, FILE *out)
{
    json->out = out;
    json->depth = 0;
    json->has_items[0] = false;
    json->after_key = false;
}

/* Before any value: the comma that separates it from the previous one. */
static void before_value(struct json *json)
{
    if (json->after_key) {
        json->after_key = false;
        return;
    }
    if (json->has_items[json->depth])
        fputc(',', json->out);
    json->has_items[json->depth] = true;
}

static void open_level(struct json *json, char bracket)
{
    before_value(json);
    assert(json->depth < JSON_DEPTH_MAX);
    fputc(bracket, json->out);
    json->depth++;
    json->has_items[json->depth] = false;
}

static void close_level(struct json *json, char bracket)
{
    assert(json->depth > 0 && !json->after_key);
    json->depth--;
    fputc(bracket, json->out);
}

void json_object_begin(struct json *json)
{
    open_level(json, '{');
}

void json_object_end(struct json *json)
{
    close_level(json, '}');
}

void json_array_begin(struct json *json)
{
    open_level(json, '[');
}

void json_array_end(struct json *json)
{
    close_level(json, ']');
}

void json_key(struct json *json, const char *key)
{
    assert(!json->after_key);
    before_value(json);
    json_write_string(json->out, key, strlen(key));
    fputc(':', json->out);
    json->after_key = true;
}

void json_string(struct json *json, const char *value, size_t len)
{
    before_value(json);
    json_write_string(json->out, value, len);
}

void json_cstring(struct json *json, const char *value)
{
    if (value)
        json_string(json, value, strlen(value));
    else
        json_null(json);
}

void json_int(struct json *json, long long value)
{
    before_value(json);
    fprintf(json->out, "%lld", value);
}

void json_bool(struct json *json, bool value)
{
    before_value(json);
    fputs(value ? "true" : "false", json->out);
}

void json_null(struct json *json)
{
    before_value(json);
    fputs("null", json->out);
}

void json_finish(struct json *json)
{
    assert(json->depth == 0);
    fputc('\n', json->out);
    fflush(json->out);
}

/* Unicode 15, table 3-7: the well-formed byte sequences. */
size_t json_utf8_length(const unsigned char *s, size_t avail)
{
    if (avail == 0)
        return 0;
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* no overlong forms */
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0; /* a continuation byte, 0xc0, 0xc1 or 0xf5..0xff */
    }
    if (avail < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void json_write_string(FILE *out, const char *value, size_t len)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t i = 0;

    fputc('"', out);
    while (i < len) {
        unsigned char c = s[i];
        switch (c) {
        case '"':
            fputs("\\\"", out);
            i++;
            continue;
        case '\\':
            fputs("\\\\", out);
            i++;
            continue;
        case '\b':
            fputs("\\b", out);
            i++;
            continue;
        case '\f':
            fputs("\\f", out);
            i++;
            continue;
        case '\n':
            fputs("\\n", out);
            i++;
            continue;
        case '\r':
            fputs("\\r", out);
            i++;
            continue;
        case '\t':
            fputs("\\t", out);
            i++;
            continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            i++;
            continue;
        }
        size_t n = json_utf8_length(s + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
        } else if (n == 3 && c == 0xe2 && s[i + 1] == 0x80 &&
                   (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            fputs(s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", out);
            i += 3;
        } else {
            fwrite(s + i, 1, n, out);
            i += n;
        }
    }
    fputc('"', out);
}
