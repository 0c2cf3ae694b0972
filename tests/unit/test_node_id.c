/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_node_id.c: the NodeId value object (actors/node_id.h).
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "keyhash.h"
#include "node_id.h"

static aether_status parse(const char *s, aether_node_id *id, aether_err *err)
{
    return aether_node_id_parse(s, strlen(s), id, err);
}

static void test_valid_ids(void)
{
    const char *good[] = {"a", "Z", "0", "node-a", "node_1", "n.o.d.e", "-", "_", "a.b",
                          "ABCxyz019", "10.0.0.1", "node-a.eu-west-1_b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        aether_node_id id;
        aether_err err = {0};
        CU_ASSERT_EQUAL_FATAL(parse(good[i], &id, &err), AETHER_OK);
        CU_ASSERT_EQUAL(id.len, strlen(good[i]));
        CU_ASSERT_STRING_EQUAL(id.str, good[i]);
        CU_ASSERT_TRUE(aether_node_id_is_valid(&id));
    }
}

static void test_empty_rejected(void)
{
    aether_node_id id;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_node_id_parse("", 0, &id, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(err.code, AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "empty"));
    CU_ASSERT_EQUAL(aether_node_id_parse(NULL, 0, &id, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("", &id, NULL), AETHER_EINVAL);
    CU_ASSERT_EQUAL(id.len, 0); /* left zeroed */
}

/* NATS subject token rules: no empty token, so no '.' first, last or next
 * to another '.' (issue 13: heartbeats of '.' went to "hb.." and never
 * arrived). The message names the id and the position. */
static void test_empty_token_rejected(void)
{
    struct {
        const char *s;
        const char *expect;
    } bad[] = {
        {".", "'.' has an empty subject token at position 0"},
        {"..", "'..' has an empty subject token at position 0"},
        {"a..b", "'a..b' has an empty subject token at position 1"},
        {".a", "position 0"},
        {"a.", "position 1"},
        {"a.b.", "position 3"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aether_node_id id;
        aether_err err = {0};
        CU_ASSERT_EQUAL(parse(bad[i].s, &id, &err), AETHER_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].expect));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node id"));
        CU_ASSERT_EQUAL(id.len, 0);
    }
    /* Another noun for the same rules. */
    aether_node_id id;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_node_id_parse_as("cluster name", "", 0, &id, &err), AETHER_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "cluster name is empty");
    CU_ASSERT_EQUAL(aether_node_id_parse_as("zone", "eu..west", 8, &id, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "zone 'eu..west' has an empty subject token"));
}

static void test_length_boundary(void)
{
    char buf[80];
    memset(buf, 'x', sizeof(buf));
    aether_node_id id;
    aether_err err = {0};
    /* 64 is the last accepted length. */
    CU_ASSERT_EQUAL(aether_node_id_parse(buf, 64, &id, &err), AETHER_OK);
    CU_ASSERT_EQUAL(id.len, 64);
    CU_ASSERT_EQUAL(id.str[64], '\0');
    CU_ASSERT_EQUAL(strlen(id.str), 64);
    /* 65 is refused, naming the length. */
    CU_ASSERT_EQUAL(aether_node_id_parse(buf, 65, &id, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "65"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "64"));
    CU_ASSERT_EQUAL(aether_node_id_parse(buf, 80, &id, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "80"));
    /* from_cstr on a long string is refused too, without reading it all. */
    buf[79] = '\0';
    CU_ASSERT_EQUAL(aether_node_id_from_cstr(buf, &id, &err), AETHER_EINVAL);
    buf[64] = '\0';
    CU_ASSERT_EQUAL(aether_node_id_from_cstr(buf, &id, &err), AETHER_OK);
}

static void test_bad_characters(void)
{
    /* One representative of each class outside [A-Za-z0-9_.-]. */
    struct {
        const char *s;
        size_t len;
        const char *expect; /* substring of the message */
    } bad[] = {
        {"a b", 3, "0x20"},           /* space */
        {"node/a", 6, "0x2f"},        /* slash */
        {"node:a", 6, "position 4"},  /* colon, at 4 */
        {"node*", 5, "0x2a"},         /* NATS wildcard */
        {"node>", 5, "0x3e"},         /* NATS wildcard */
        {"a\tb", 3, "0x09"},          /* control */
        {"a\nb", 3, "0x0a"},          /* newline */
        {"a\0b", 3, "0x00"},          /* embedded NUL */
        {"h\xc3\xa9llo", 6, "0xc3"},  /* UTF-8 */
        {"\xff", 1, "0xff"},          /* high byte */
        {"a\"b", 3, "0x22"},          /* quote */
        {"a+b", 3, "position 1"},     /* plus, at 1 */
        {"a~", 2, "0x7e"},            /* tilde */
        {"a\x7f", 2, "0x7f"},         /* DEL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aether_node_id id;
        aether_err err = {0};
        CU_ASSERT_EQUAL(aether_node_id_parse(bad[i].s, bad[i].len, &id, &err), AETHER_EINVAL);
        if (strstr(err.msg, bad[i].expect) == NULL) {
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err.msg, bad[i].expect);
            CU_FAIL("message does not name the bad byte/position");
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "[A-Za-z0-9_.-]"));
    }
    /* The message quotes a printable id. */
    aether_err err = {0};
    aether_node_id id;
    CU_ASSERT_EQUAL(parse("a b", &id, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'a b'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "position 1"));
}

static void test_equal_compare_hash(void)
{
    aether_node_id a, a2, b, ab;
    CU_ASSERT_EQUAL_FATAL(parse("node-a", &a, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(parse("node-a", &a2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(parse("node-b", &b, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(parse("node-ab", &ab, NULL), AETHER_OK);
    CU_ASSERT_TRUE(aether_node_id_equal(&a, &a2));
    CU_ASSERT_FALSE(aether_node_id_equal(&a, &b));
    CU_ASSERT_FALSE(aether_node_id_equal(&a, &ab));
    CU_ASSERT_EQUAL(memcmp(&a, &a2, sizeof(a)), 0); /* zero tail: bytewise equal too */
    CU_ASSERT_EQUAL(aether_node_id_compare(&a, &a2), 0);
    CU_ASSERT_TRUE(aether_node_id_compare(&a, &b) < 0);
    CU_ASSERT_TRUE(aether_node_id_compare(&b, &a) > 0);
    CU_ASSERT_TRUE(aether_node_id_compare(&a, &ab) < 0); /* prefix first */
    CU_ASSERT_TRUE(aether_node_id_compare(&ab, &b) < 0);
    CU_ASSERT_TRUE(aether_node_id_compare(&ab, &a) > 0);
    CU_ASSERT_EQUAL(aether_node_id_hash(&a), aether_node_id_hash(&a2));
    CU_ASSERT_NOT_EQUAL(aether_node_id_hash(&a), aether_node_id_hash(&b));
    /* Stable: XXH64("node-a", seed 0), so other processes agree. */
    CU_ASSERT_EQUAL(aether_node_id_hash(&a), XXH64("node-a", 6, 0));
}

static CU_TestInfo tests[] = {
    AETHER_TEST(valid_ids),
    AETHER_TEST(empty_rejected),
    AETHER_TEST(empty_token_rejected),
    AETHER_TEST(length_boundary),
    AETHER_TEST(bad_characters),
    AETHER_TEST(equal_compare_hash),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("node_id", NULL, NULL, tests);
