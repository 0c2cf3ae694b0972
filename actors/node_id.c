/* SPDX-License-Identifier: Apache-2.0 */
/*
 * node_id.c: parsing and comparing NodeIds (actors layer). Pure functions,
 * any thread. See node_id.h.
 */
#include "node_id.h"

#include <stdio.h>

#include "keyhash.h"

/* Renders a byte for an error message: 'c' when printable ASCII, else nothing. */
static void describe_byte(unsigned char c, char *buf, size_t size)
{
    if (c >= 0x20 && c < 0x7f && c != '\'')
        snprintf(buf, size, " ('%c')", c);
    else
        buf[0] = '\0';
}

/* True when every byte of s[0..len) is printable ASCII, so it can be quoted. */
static bool quotable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* The position of the first empty subject token in s[0..len) (a '.' first,
 * last, or right after another '.'), or len when there is none. */
static size_t empty_token_at(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '.' && (i == 0 || i + 1 == len || s[i + 1] == '.'))
            return i;
    return len;
}

aether_status aether_node_id_parse_as(const char *what, const char *s, size_t len,
                                      aether_node_id *out, aether_err *err)
{
    AETHER_ASSERT(what != NULL && out != NULL);
    AETHER_ASSERT(s != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return aether_err_set(err, AETHER_EINVAL, "%s is empty", what);
    if (len > AETHER_NODE_ID_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "%s is %zu characters long, more than %d", what,
                              len, AETHER_NODE_ID_LEN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!aether_node_id_char_is_valid(c)) {
            char shown[8];
            describe_byte(c, shown, sizeof(shown));
            if (quotable(s, len))
                return aether_err_set(err, AETHER_EINVAL,
                                      "%s '%.*s' has byte 0x%02x%s at position %zu, "
                                      "outside [A-Za-z0-9_.-]",
                                      what, (int)len, s, c, shown, i);
            return aether_err_set(err, AETHER_EINVAL,
                                  "%s has byte 0x%02x%s at position %zu, "
                                  "outside [A-Za-z0-9_.-]",
                                  what, c, shown, i);
        }
    }
    /* Every byte is printable here, so the value can be quoted. */
    size_t dot = empty_token_at(s, len);
    if (dot < len)
        return aether_err_set(err, AETHER_EINVAL,
                              "%s '%.*s' has an empty subject token at position %zu (a '.' "
                              "first, last or next to another '.'; NATS subjects allow none)",
                              what, (int)len, s, dot);
    memcpy(out->str, s, len);
    out->len = (uint8_t)len;
    AETHER_ASSERT(aether_node_id_is_valid(out));
    return AETHER_OK;
}

aether_status aether_node_id_parse(const char *s, size_t len, aether_node_id *out,
                                   aether_err *err)
{
    return aether_node_id_parse_as("node id", s, len, out, err);
}

aether_status aether_node_id_from_cstr(const char *s, aether_node_id *out, aether_err *err)
{
    AETHER_ASSERT(s != NULL);
    /* strnlen bounds the scan: anything longer is refused anyway. */
    return aether_node_id_parse(s, strnlen(s, AETHER_NODE_ID_LEN_MAX + 1), out, err);
}

bool aether_node_id_is_valid(const aether_node_id *id)
{
    if (id->len == 0 || id->len > AETHER_NODE_ID_LEN_MAX)
        return false;
    for (size_t i = 0; i < id->len; i++)
        if (!aether_node_id_char_is_valid((unsigned char)id->str[i]))
            return false;
    if (empty_token_at(id->str, id->len) < id->len)
        return false;
    for (size_t i = id->len; i < sizeof(id->str); i++)
        if (id->str[i] != '\0')
            return false;
    return true;
}

int aether_node_id_compare(const aether_node_id *a, const aether_node_id *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

uint64_t aether_node_id_hash(const aether_node_id *id)
{
    return aether_key_hash(id->str, id->len);
}
