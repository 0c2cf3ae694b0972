/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_shardmap_json.c: the ShardMap wire shape (actors/shardmap_json.h):
 * exact encoding, byte-identical round trips, and strict decoding that names
 * the offending field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cu_test.h"
#include "shardmap_json.h"
#include "map_fixture.h"


static const char SMALL_JSON[] =
    "{\"version\":7,\"term\":42,\"shard_count\":4,\"replication\":2,\"shards\":["
    "{\"id\":0,\"owners\":[\"node-a\",\"node-c\"],\"state\":\"stable\"},"
    "{\"id\":1,\"owners\":[\"node-b\"],\"state\":\"moving\",\"to\":\"node-a\"},"
    "{\"id\":2,\"owners\":[\"node-c\",\"node-b\"],\"state\":\"stable\"},"
    "{\"id\":3,\"owners\":[\"node-b\",\"node-a\"],\"state\":\"stable\"}]}";

static void test_encode_exact_shape(void)
{
    aether_shardmap *m = small_map();
    char *text = NULL;
    size_t len = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(m, &text, &len, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, SMALL_JSON);
    CU_ASSERT_EQUAL(len, strlen(SMALL_JSON));
    free(text);
    aether_shardmap_destroy(m);
}

static void test_round_trip_identical(void)
{
    aether_shardmap *m = small_map();
    aether_err err = {0};
    char *t1 = NULL, *t2 = NULL;
    size_t l1, l2;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(m, &t1, &l1, &err), AETHER_OK);
    aether_shardmap *d = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode(t1, l1, &d, &err), AETHER_OK);
    CU_ASSERT_EQUAL(d->version, 7);
    CU_ASSERT_EQUAL(d->term, 42);
    CU_ASSERT_EQUAL(d->node_count, 3);
    CU_ASSERT_EQUAL(aether_shardmap_entry(d, 1)->state, AETHER_SHARD_MOVING);
    CU_ASSERT_STRING_EQUAL(aether_shardmap_node(d, aether_shardmap_entry(d, 1)->to)->str, "node-a");
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &t2, &l2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(l1, l2);
    CU_ASSERT_STRING_EQUAL(t1, t2);
    free(t1);
    free(t2);
    aether_shardmap_destroy(d);
    aether_shardmap_destroy(m);
}

/* Shards in any order, whitespace: decodes, and re-encodes canonically. */
static void test_decode_any_order(void)
{
    const char *in =
        "{ \"shards\": [\n"
        "  {\"state\":\"stable\",\"owners\":[\"node-b\",\"node-a\"],\"id\":3},\n"
        "  {\"id\":1,\"to\":\"node-a\",\"owners\":[\"node-b\"],\"state\":\"moving\"},\n"
        "  {\"id\":2,\"owners\":[\"node-c\",\"node-b\"],\"state\":\"stable\"},\n"
        "  {\"id\":0,\"owners\":[\"node-a\",\"node-c\"],\"state\":\"stable\"}\n"
        "], \"replication\":2, \"shard_count\":4, \"term\":42, \"version\":7 }";
    aether_shardmap *d = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode(in, strlen(in), &d, &err), AETHER_OK);
    char *t = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &t, NULL, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(t, SMALL_JSON);
    free(t);
    aether_shardmap_destroy(d);

    /* A map with no nodes: every shard empty. */
    const char *empty = "{\"version\":0,\"term\":0,\"shard_count\":2,\"replication\":1,\"shards\":["
                        "{\"id\":0,\"owners\":[],\"state\":\"stable\"},"
                        "{\"id\":1,\"owners\":[],\"state\":\"stable\"}]}";
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode(empty, strlen(empty), &d, &err), AETHER_OK);
    CU_ASSERT_EQUAL(d->node_count, 0);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &t, NULL, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(t, empty);
    free(t);
    aether_shardmap_destroy(d);
}

#define HDR(n, r)                                                                          \
    "{\"version\":1,\"term\":1,\"shard_count\":" #n ",\"replication\":" #r ",\"shards\":["
#define S_OK(id, owner) "{\"id\":" #id ",\"owners\":[\"" owner "\"],\"state\":\"stable\"}"

static const struct {
    const char *json;
    const char *expect; /* substring of err.msg */
} MALFORMED[] = {
    {"", "invalid JSON"},
    {"{", "invalid JSON"},
    {"[]", "root: expected an object, got an array"},
    {"\"map\"", "root: expected an object, got a string"},
    {"{\"version\":1,\"version\":2}", "invalid JSON"}, /* duplicate key */
    {"{\"term\":1,\"shard_count\":1,\"replication\":1,\"shards\":[" S_OK(0, "a") "]}",
     "version: missing"},
    {"{\"version\":\"7\",\"term\":1,\"shard_count\":1,\"replication\":1,\"shards\":[]}",
     "version: expected an integer, got a string"},
    {"{\"version\":7.0,\"term\":1,\"shard_count\":1,\"replication\":1,\"shards\":[]}",
     "version: expected an integer, got a real"},
    {"{\"version\":-1,\"term\":1,\"shard_count\":1,\"replication\":1,\"shards\":[]}",
     "version: -1 out of range"},
    {"{\"version\":1,\"term\":null,\"shard_count\":1,\"replication\":1,\"shards\":[]}",
     "term: expected an integer, got null"},
    {"{\"version\":1,\"term\":99999999999999999999,\"shard_count\":1,\"replication\":1,"
     "\"shards\":[]}",
     "invalid JSON"}, /* beyond jansson's integer range */
    {HDR(0, 1) "]}", "shard_count: 0 out of range 1..65536"},
    {HDR(65537, 1) "]}", "shard_count: 65537 out of range"},
    {HDR(1, 0) S_OK(0, "a") "]}", "replication: 0 out of range 1..7"},
    {HDR(1, 8) S_OK(0, "a") "]}", "replication: 8 out of range"},
    {"{\"version\":1,\"term\":1,\"shard_count\":1,\"replication\":1,\"shards\":{}}",
     "shards: expected an array, got an object"},
    {"{\"version\":1,\"term\":1,\"shard_count\":1,\"replication\":1}", "shards: missing"},
    {HDR(2, 1) S_OK(0, "a") "]}", "shards: 1 entries, shard_count is 2"},
    {HDR(2, 1) S_OK(0, "a") "," S_OK(1, "a") "," S_OK(2, "a") "]}",
     "shards: 3 entries, shard_count is 2"},
    {HDR(2, 1) S_OK(0, "a") ",7]}", "shards[1]: expected an object, got an integer"},
    {HDR(1, 1) "{\"owners\":[\"a\"],\"state\":\"stable\"}]}", "shards[0].id: missing"},
    {HDR(2, 1) S_OK(0, "a") "," S_OK(2, "a") "]}", "shards[1].id: 2 out of range 0..1"},
    {HDR(2, 1) S_OK(0, "a") "," S_OK(0, "a") "]}", "shards[1].id: duplicate shard id 0"},
    {HDR(1, 1) "{\"id\":0,\"state\":\"stable\"}]}", "shards[0].owners: missing"},
    {HDR(1, 1) "{\"id\":0,\"owners\":\"a\",\"state\":\"stable\"}]}",
     "shards[0].owners: expected an array, got a string"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[1],\"state\":\"stable\"}]}",
     "shards[0].owners[0]: expected a string, got an integer"},
    {HDR(1, 2) "{\"id\":0,\"owners\":[\"a\",\"a b\"],\"state\":\"stable\"}]}",
     "shards[0].owners[1]: node id 'a b' has byte 0x20"},
    {HDR(2, 1) S_OK(0, "a") "," S_OK(1, "") "]}", "shards[1].owners[0]: node id is empty"},
    {HDR(1, 1) S_OK(0, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") "]}",
     "shards[0].owners[0]: node id is 65 characters long"},
    {HDR(1, 1) S_OK(0, "a\\u0000b") "]}", "invalid JSON"}, /* NUL in a string */
    {HDR(1, 2) "{\"id\":0,\"owners\":[\"node-a\",\"node-a\"],\"state\":\"stable\"}]}",
     "shards[0].owners[1]: duplicate owner node-a"},
    {HDR(1, 2) "{\"id\":0,\"owners\":[\"a\",\"b\",\"c\"],\"state\":\"stable\"}]}",
     "shards[0].owners: 3 owners, more than replication 2"},
    {HDR(2, 1) S_OK(0, "a") ",{\"id\":1,\"owners\":[],\"state\":\"stable\"}]}",
     "shards[1]: no primary owner"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"]}]}", "shards[0].state: missing"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"],\"state\":\"paused\"}]}",
     "shards[0].state: unknown state 'paused'"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"],\"state\":true}]}",
     "shards[0].state: expected a string, got a boolean"},
    {HDR(2, 1) S_OK(0, "a") ",{\"id\":1,\"owners\":[\"b\"],\"state\":\"moving\"}]}",
     "shards[1].to: missing on a moving shard"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"],\"state\":\"stable\",\"to\":\"b\"}]}",
     "shards[0].to: only allowed when state is moving"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"node-a\"],\"state\":\"moving\",\"to\":\"node-a\"}]}",
     "shards[0].to: node-a is already the primary"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"],\"state\":\"moving\",\"to\":\"b/c\"}]}",
     "shards[0].to: node id 'b/c'"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[],\"state\":\"moving\",\"to\":\"b\"}]}",
     "shards[0]: moving without a primary owner"},
    {HDR(1, 1) S_OK(0, "a") "],\"extra\":1}", "extra: unknown field"},
    {"{\"version\":1,\"term\":1,\"gen\":\"0000000000000000\",\"shard_count\":1,\"replication\":1,"
     "\"shards\":[" S_OK(0, "a") "]}",
     "gen: expected 16 lowercase hex digits"},
    {"{\"version\":1,\"term\":1,\"gen\":\"5BE0C2A1D7F3E944\",\"shard_count\":1,\"replication\":1,"
     "\"shards\":[" S_OK(0, "a") "]}",
     "gen: expected 16 lowercase hex digits"},
    {"{\"version\":1,\"term\":1,\"gen\":12,\"shard_count\":1,\"replication\":1,"
     "\"shards\":[" S_OK(0, "a") "]}",
     "gen: expected 16 lowercase hex digits"},
    {HDR(1, 1) "{\"id\":0,\"owners\":[\"a\"],\"state\":\"stable\",\"color\":\"red\"}]}",
     "shards[0].color: unknown field"},
};

/* "gen" (the writer's generation): after term, round-trips through the
 * _gen pair, is dropped by the plain decode, read by peek_gen without a
 * decode (and not confused with a node named "gen"); absent decodes as 0. */
static void test_generation_stamp(void)
{
    aether_shardmap *m = small_map();
    char *t1 = NULL, *t2 = NULL;
    size_t l1 = 0, l2 = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode_gen(m, 0x5be0c2a1d7f3e944ull, &t1, &l1, &err),
                          AETHER_OK);
    CU_ASSERT_EQUAL(strncmp(t1, "{\"version\":7,\"term\":42,\"gen\":\"5be0c2a1d7f3e944\",", 48), 0);
    aether_shardmap *d = NULL;
    uint64_t gen = 0;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode_gen(t1, l1, &d, &gen, &err), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0x5be0c2a1d7f3e944ull);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode_gen(d, gen, &t2, &l2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(l1, l2);
    CU_ASSERT_STRING_EQUAL(t1, t2);
    aether_shardmap_json_peek_gen(t1, l1, &gen);
    CU_ASSERT_EQUAL(gen, 0x5be0c2a1d7f3e944ull);
    aether_shardmap_destroy(d);
    free(t2);
    /* The plain decode accepts it and the plain encode writes none. */
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode(t1, l1, &d, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &t2, NULL, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(t2, SMALL_JSON);
    aether_shardmap_destroy(d);
    free(t1);
    /* Absent: 0, "not said" (a map from before generations). */
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode_gen(t2, l2 = strlen(t2), &d, &gen, &err), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0);
    aether_shardmap_json_peek_gen(t2, l2, &gen);
    CU_ASSERT_EQUAL(gen, 0);
    aether_shardmap_destroy(d);
    free(t2);
    /* A node called "gen" is not the key; a spaced key still is. */
    const char *named = "{\"version\":1,\"term\":1,\"shard_count\":1,\"replication\":1,"
                        "\"shards\":[{\"id\":0,\"owners\":[\"gen\"],\"state\":\"stable\"}]}";
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode_gen(named, strlen(named), &d, &gen, &err), AETHER_OK);
    aether_shardmap_destroy(d);
    aether_shardmap_json_peek_gen(named, strlen(named), &gen);
    CU_ASSERT_EQUAL(gen, 0);
    const char *spaced = "{\"shards\":[{\"id\":0,\"owners\":[\"gen\"],\"state\":\"stable\"}], "
                         "\"gen\" : \"00000000000000ff\", \"version\":1,\"term\":1,"
                         "\"shard_count\":1,\"replication\":1}";
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode_gen(spaced, strlen(spaced), &d, &gen, &err), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0xff);
    aether_shardmap_destroy(d);
    gen = 0;
    aether_shardmap_json_peek_gen(spaced, strlen(spaced), &gen);
    CU_ASSERT_EQUAL(gen, 0xff);
    aether_shardmap_destroy(m);
}

static void test_malformed_inputs(void)
{
    size_t n = sizeof(MALFORMED) / sizeof(MALFORMED[0]);
    CU_ASSERT_TRUE(n >= 20);
    for (size_t i = 0; i < n; i++) {
        aether_shardmap *m = (aether_shardmap *)1;
        aether_err err = {0};
        aether_status st =
            aether_shardmap_json_decode(MALFORMED[i].json, strlen(MALFORMED[i].json), &m, &err);
        CU_ASSERT_EQUAL(st, AETHER_EINVAL);
        CU_ASSERT_EQUAL(err.code, AETHER_EINVAL);
        CU_ASSERT_PTR_NULL(m);
        if (st != AETHER_EINVAL || strstr(err.msg, MALFORMED[i].expect) == NULL) {
            fprintf(stderr, "case %zu: status %s, message '%s', expected '%s'\n", i,
                    aether_status_str(st), err.msg, MALFORMED[i].expect);
            CU_FAIL("malformed input not refused with the expected field");
        }
        if (st == AETHER_OK)
            aether_shardmap_destroy(m);
    }
}

static void test_size_limit(void)
{
    /* The length is refused before the buffer is read. */
    const char tiny[] = "{}";
    aether_shardmap *m = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_json_decode(tiny, AETHER_SHARDMAP_JSON_MAX_BYTES + 1, &m, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "more than the limit"));
    CU_ASSERT_PTR_NULL(m);
}

/* The largest map: 65536 shards, R = 3, 200 nodes. Decoding interns ids, so
 * this takes well under a second (the bound below is for sanitizer builds). */
static void test_large_map(void)
{
    enum { SHARDS = 65536, NODES = 200, R = 3 };
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(SHARDS, R, &b, &err), AETHER_OK);
    aether_shardmap_builder_set_version(b, 123456789);
    aether_shardmap_builder_set_term(b, 987654321);
    aether_node_index idx[NODES];
    char name[32];
    for (int i = 0; i < NODES; i++) {
        snprintf(name, sizeof(name), "node-%03d.zone-%d", i, i % 3);
        aether_node_id id = nid(name);
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &id, &idx[i], &err), AETHER_OK);
    }
    for (uint32_t s = 0; s < SHARDS; s++) {
        aether_node_index o[R] = {idx[s % NODES], idx[(s + 1) % NODES], idx[(s + 2) % NODES]};
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, o, R, &err), AETHER_OK);
        if (s % 97 == 0)
            CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_moving(b, s, idx[(s + 5) % NODES],
                                                                     &err),
                                  AETHER_OK);
    }
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    aether_shardmap_builder_destroy(b);

    char *t1 = NULL, *t2 = NULL;
    size_t l1, l2;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(m, &t1, &l1, &err), AETHER_OK);
    struct timespec t0, t9;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    aether_shardmap *d = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_decode(t1, l1, &d, &err), AETHER_OK);
    clock_gettime(CLOCK_MONOTONIC, &t9);
    double ms = (t9.tv_sec - t0.tv_sec) * 1e3 + (t9.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "decode of %d shards (%zu bytes): %.1f ms\n", SHARDS, l1, ms);
    CU_ASSERT_TRUE(ms < 10000.0);
    CU_ASSERT_EQUAL(d->shard_count, SHARDS);
    CU_ASSERT_EQUAL(d->node_count, NODES);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &t2, &l2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(l1, l2);
    CU_ASSERT_EQUAL(memcmp(t1, t2, l1), 0);
    free(t1);
    free(t2);
    aether_shardmap_destroy(d);
    aether_shardmap_destroy(m);
}

static void test_encode_refuses_unrepresentable(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(1, 1, &b, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, UINT64_MAX);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    char *t = (char *)1;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_json_encode(m, &t, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "version"));
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(encode_exact_shape),
    AETHER_TEST(round_trip_identical),
    AETHER_TEST(decode_any_order),
    AETHER_TEST(generation_stamp),
    AETHER_TEST(malformed_inputs),
    AETHER_TEST(size_limit),
    AETHER_TEST(large_map),
    AETHER_TEST(encode_refuses_unrepresentable),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("shardmap_json", NULL, NULL, tests);
