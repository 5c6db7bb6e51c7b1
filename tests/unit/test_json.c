/*
 * test_json.c: arborctl's JSON writer (ctl/json.c). Every string must come
 * out as valid JSON whatever bytes it holds: each control character, quotes
 * and backslashes, embedded NULs, and bytes that are not UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

/* Write `len` bytes as a JSON string; return the text (caller frees). */
static char *escape(const char *bytes, size_t len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    json_write_string(out, bytes, len);
    assert_int_equal(fclose(out), 0);
    return text;
}

static void expect_escape(const char *bytes, size_t len, const char *expected)
{
    char *text = escape(bytes, len);
    assert_string_equal(text, expected);
    free(text);
}

#define EXPECT(literal, expected) expect_escape(literal, sizeof(literal) - 1, expected)

static void test_plain(void **state)
{
    EXPECT("", "\"\"");
    EXPECT("db", "\"db\"");
    EXPECT("hello, world 123 ~!@#$%^&*()", "\"hello, world 123 ~!@#$%^&*()\"");
    EXPECT("a/b", "\"a/b\""); /* the solidus needs no escape */
}

static void test_quote_and_backslash(void **state)
{
    EXPECT("\"", "\"\\\"\"");
    EXPECT("\\", "\"\\\\\"");
    EXPECT("say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\"");
    EXPECT("\\u0041", "\"\\\\u0041\""); /* not an escape: stays literal */
}

static void test_every_control_character(void **state)
{
    for (int c = 0; c < 0x20; c++) {
        char byte = (char)c;
        char expected[16];
        switch (c) {
        case '\b':
            strcpy(expected, "\"\\b\"");
            break;
        case '\f':
            strcpy(expected, "\"\\f\"");
            break;
        case '\n':
            strcpy(expected, "\"\\n\"");
            break;
        case '\r':
            strcpy(expected, "\"\\r\"");
            break;
        case '\t':
            strcpy(expected, "\"\\t\"");
            break;
        default:
            snprintf(expected, sizeof(expected), "\"\\u%04x\"", c);
        }
        expect_escape(&byte, 1, expected);
    }
    EXPECT("\x7f", "\"\\u007f\"");
    EXPECT("\x1b[31mred\x1b[0m", "\"\\u001b[31mred\\u001b[0m\"");
}

static void test_embedded_nul(void **state)
{
    EXPECT("a\0b", "\"a\\u0000b\"");
    EXPECT("\0", "\"\\u0000\"");
    EXPECT("\0\0", "\"\\u0000\\u0000\"");
}

static void test_valid_utf8_passes(void **state)
{
    EXPECT("caf\xc3\xa9", "\"caf\xc3\xa9\"");                 /* U+00E9 */
    EXPECT("\xc2\x80", "\"\xc2\x80\"");                       /* U+0080, smallest 2-byte */
    EXPECT("\xe2\x82\xac", "\"\xe2\x82\xac\"");               /* U+20AC */
    EXPECT("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");               /* U+0800 */
    EXPECT("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");               /* U+D7FF */
    EXPECT("\xee\x80\x80", "\"\xee\x80\x80\"");               /* U+E000 */
    EXPECT("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");               /* U+FFFD itself */
    EXPECT("\xf0\x9f\x8c\xb3", "\"\xf0\x9f\x8c\xb3\"");       /* U+1F333, a tree */
    EXPECT("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");       /* U+10FFFF */
    EXPECT("\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\""); /* line/paragraph separators */
}

static void test_invalid_utf8(void **state)
{
    EXPECT("\x80", "\"\\ufffd\""); /* a lone continuation byte */
    EXPECT("\xbf", "\"\\ufffd\"");
    EXPECT("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
    EXPECT("\xc1\xbf", "\"\\ufffd\\ufffd\"");                       /* overlong */
    EXPECT("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong 3-byte */
    EXPECT("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong 4-byte */
    EXPECT("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+D800 */
    EXPECT("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+DFFF */
    EXPECT("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
    EXPECT("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    EXPECT("\xfe\xff", "\"\\ufffd\\ufffd\"");
    EXPECT("\xc3", "\"\\ufffd\"");                     /* truncated at the end */
    EXPECT("\xe2\x82", "\"\\ufffd\\ufffd\"");          /* truncated at the end */
    EXPECT("\xe2\x82x", "\"\\ufffd\\ufffdx\"");        /* truncated before ASCII */
    EXPECT("\xc3\"", "\"\\ufffd\\\"\"");               /* truncated before a quote */
    EXPECT("a\xffz\xc3\xa9", "\"a\\ufffdz\xc3\xa9\""); /* good text around a bad byte */
}

/* Every single byte value, and every pair, gives a string that is valid
 * JSON by a tiny checker: quoted, only legal escapes, no raw controls. */
static bool valid_json_string(const char *s)
{
    size_t len = strlen(s);
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return false;
    for (size_t i = 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"')
            return false;
        if (c == '\\') {
            char e = s[++i];
            if (e == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!strchr("0123456789abcdef", s[i + k]) || s[i + k] == '\0')
                        return false;
                i += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return false;
            }
        }
    }
    return true;
}

static void test_all_bytes_and_pairs(void **state)
{
    for (int a = 0; a < 256; a++) {
        for (int b = -1; b < 256; b++) {
            char bytes[2] = {(char)a, (char)b};
            char *text = escape(bytes, b < 0 ? 1 : 2);
            if (!valid_json_string(text))
                fail_msg("bytes %02x %02x give %s", a, b & 0xff, text);
            free(text);
        }
    }
}

static void test_utf8_length(void **state)
{
    assert_int_equal(json_utf8_length((const unsigned char *)"a", 1), 1);
    assert_int_equal(json_utf8_length((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(json_utf8_length((const unsigned char *)"\xc3\xa9", 1), 0);
    assert_int_equal(json_utf8_length((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(json_utf8_length((const unsigned char *)"\xf0\x9f\x8c\xb3", 4), 4);
    assert_int_equal(json_utf8_length((const unsigned char *)"\xf0\x9f\x8c", 3), 0);
    assert_int_equal(json_utf8_length((const unsigned char *)"", 0), 0);
}

static char *document(void (*build)(struct json *))
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    struct json json;
    json_init(&json, out);
    build(&json);
    json_finish(&json);
    fclose(out);
    return text;
}

static void build_nested(struct json *json)
{
    json_object_begin(json);
    json_key(json, "ok");
    json_bool(json, true);
    json_key(json, "exit");
    json_int(json, 0);
    json_key(json, "errors");
    json_array_begin(json);
    json_array_end(json);
    json_key(json, "message");
    json_cstring(json, NULL);
    json_key(json, "units");
    json_array_begin(json);
    for (int i = 0; i < 2; i++) {
        json_object_begin(json);
        json_key(json, "name");
        json_string(json, "a\0\n", 3);
        json_key(json, "pid");
        if (i)
            json_int(json, -42);
        else
            json_null(json);
        json_key(json, "last_exit");
        json_object_begin(json);
        json_key(json, "signal");
        json_int(json, 9);
        json_object_end(json);
        json_object_end(json);
    }
    json_array_end(json);
    json_key(json, "w\"eird\x01key");
    json_bool(json, false);
    json_object_end(json);
}

static void test_document_structure(void **state)
{
    char *text = document(build_nested);
    assert_string_equal(text,
                        "{\"ok\":true,\"exit\":0,\"errors\":[],\"message\":null,\"units\":["
                        "{\"name\":\"a\\u0000\\n\",\"pid\":null,\"last_exit\":{\"signal\":9}},"
                        "{\"name\":\"a\\u0000\\n\",\"pid\":-42,\"last_exit\":{\"signal\":9}}],"
                        "\"w\\\"eird\\u0001key\":false}\n");
    free(text);
}

static void build_array_of_scalars(struct json *json)
{
    json_array_begin(json);
    json_int(json, 1);
    json_cstring(json, "two");
    json_null(json);
    json_bool(json, true);
    json_array_begin(json);
    json_array_end(json);
    json_object_begin(json);
    json_object_end(json);
    json_int(json, INT64_MIN);
    json_array_end(json);
}

static void test_array_commas(void **state)
{
    char *text = document(build_array_of_scalars);
    assert_string_equal(text, "[1,\"two\",null,true,[],{},-9223372036854775808]\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quote_and_backslash),
        cmocka_unit_test(test_every_control_character),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_valid_utf8_passes),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_all_bytes_and_pairs),
        cmocka_unit_test(test_utf8_length),
        cmocka_unit_test(test_document_structure),
        cmocka_unit_test(test_array_commas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
