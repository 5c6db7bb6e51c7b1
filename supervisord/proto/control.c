/*
 * control.c: building and reading control-protocol frames (control.h).
 * Shared by arbord and arborctl; no I/O here, only bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/control.h"

static bool reserve(struct proto_buf *buf, size_t more)
{
    if (buf->failed)
        return false;
    if (buf->len + more <= buf->cap)
        return true;
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < buf->len + more)
        cap *= 2;
    char *grown = realloc(buf->data, cap);
    if (!grown) {
        buf->failed = true;
        return false;
    }
    buf->data = grown;
    buf->cap = cap;
    return true;
}

static void put(struct proto_buf *buf, const void *bytes, size_t n)
{
    if (!reserve(buf, n))
        return;
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
}

void proto_buf_free(struct proto_buf *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

void proto_begin(struct proto_buf *buf, enum control_frame_type type)
{
    uint32_t length = 0;
    uint16_t t = (uint16_t)type, reserved = 0;
    buf->frame_start = buf->len;
    put(buf, &length, sizeof(length));
    put(buf, &t, sizeof(t));
    put(buf, &reserved, sizeof(reserved));
}

void proto_add(struct proto_buf *buf, const char *key, const void *value, size_t len)
{
    uint16_t klen = (uint16_t)strlen(key);
    uint32_t vlen = (uint32_t)len;
    put(buf, &klen, sizeof(klen));
    put(buf, key, klen);
    put(buf, &vlen, sizeof(vlen));
    put(buf, value, len);
}

void proto_add_str(struct proto_buf *buf, const char *key, const char *value)
{
    proto_add(buf, key, value, strlen(value));
}

void proto_add_int(struct proto_buf *buf, const char *key, long long value)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%lld", value);
    proto_add(buf, key, text, (size_t)n);
}

void proto_end(struct proto_buf *buf)
{
    if (buf->failed)
        return;
    uint32_t length = (uint32_t)(buf->len - buf->frame_start - CONTROL_HEADER_SIZE);
    memcpy(buf->data + buf->frame_start, &length, sizeof(length));
}

void proto_consume(struct proto_buf *buf, size_t n)
{
    if (n >= buf->len) {
        buf->len = 0;
        return;
    }
    memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
}

long proto_frame(const char *data, size_t avail, size_t max, uint16_t *ret_type,
                 const char **ret_payload, uint32_t *ret_length)
{
    if (avail < CONTROL_HEADER_SIZE)
        return 0;
    uint32_t length;
    uint16_t type, reserved;
    memcpy(&length, data, sizeof(length));
    memcpy(&type, data + 4, sizeof(type));
    memcpy(&reserved, data + 6, sizeof(reserved));
    if (type == 0 || type >= FRAME_TYPE_MAX || reserved != 0 || length > max)
        return -1;
    if (avail < CONTROL_HEADER_SIZE + (size_t)length)
        return 0;
    *ret_type = type;
    *ret_payload = data + CONTROL_HEADER_SIZE;
    *ret_length = length;
    return (long)(CONTROL_HEADER_SIZE + length);
}

int proto_next_field(const char **cursor, const char *end, struct proto_field *ret)
{
    const char *p = *cursor;
    if (p == end)
        return 0;
    uint16_t klen;
    uint32_t vlen;
    if ((size_t)(end - p) < sizeof(klen))
        return -1;
    memcpy(&klen, p, sizeof(klen));
    p += sizeof(klen);
    if ((size_t)(end - p) < (size_t)klen + sizeof(vlen))
        return -1;
    ret->key = p;
    ret->key_len = klen;
    p += klen;
    memcpy(&vlen, p, sizeof(vlen));
    p += sizeof(vlen);
    if ((size_t)(end - p) < vlen)
        return -1;
    ret->value = p;
    ret->value_len = vlen;
    *cursor = p + vlen;
    return 1;
}

bool proto_key_is(const struct proto_field *field, const char *key)
{
    return field->key_len == strlen(key) && memcmp(field->key, key, field->key_len) == 0;
}

const char *proto_value_str(const struct proto_field *field, char *buf, size_t size)
{
    size_t n = field->value_len < size - 1 ? field->value_len : size - 1;
    memcpy(buf, field->value, n);
    buf[n] = '\0';
    return buf;
}

bool proto_value_int(const struct proto_field *field, long long *ret)
{
    char text[32];
    if (field->value_len == 0 || field->value_len >= sizeof(text))
        return false;
    proto_value_str(field, text, sizeof(text));
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || *end)
        return false;
    *ret = value;
    return true;
}
