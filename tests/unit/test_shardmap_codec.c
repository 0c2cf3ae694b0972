/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_shardmap_codec.c: ShardMap format 2 (actors/shardmap_codec.h): the
 * exact bytes, byte-identical round trips that keep every field (version,
 * term, gen, shard_count, replication, the node table, owners, moving
 * shards and targets), and strict decoding that names the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/shardmap_codec_seeds.h"
#include "cu_test.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"
#include "map_fixture.h"


/* The bytes of small_map() stamped gen 5be0c2a1d7f3e944, by hand from
 * docs/wire.md: header, node table a/b/c (indices 0/1/2), rows, moves. */
static const unsigned char SMALL[] = {
    'A', 'M', 'A', 'P', 2, 2, 0, 0,             /* magic, format, R, flags */
    4, 0, 0, 0,                                 /* shard_count */
    7, 0, 0, 0, 0, 0, 0, 0,                     /* version */
    42, 0, 0, 0, 0, 0, 0, 0,                    /* term */
    0x44, 0xe9, 0xf3, 0xd7, 0xa1, 0xc2, 0xe0, 0x5b, /* gen */
    3, 0, 0, 0,                                 /* node_count */
    1, 0, 0, 0,                                 /* moving_count */
    6, 'n', 'o', 'd', 'e', '-', 'a',
    6, 'n', 'o', 'd', 'e', '-', 'b',
    6, 'n', 'o', 'd', 'e', '-', 'c',
    0, 0, 2, 0,                                 /* shard 0: a, c */
    1, 0, 0xff, 0xff,                           /* shard 1: b, - */
    2, 0, 1, 0,                                 /* shard 2: c, b */
    1, 0, 0, 0,                                 /* shard 3: b, a */
    1, 0, 0, 0,                                 /* moving: shard 1 -> a */
};
#define GEN 0x5be0c2a1d7f3e944ull

static void test_encode_exact_bytes(void)
{
    aether_shardmap *m = small_map();
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, GEN, &buf, &len, &err), AETHER_OK);
    CU_ASSERT_EQUAL(len, sizeof(SMALL));
    CU_ASSERT_EQUAL(len, aether_shardmap_codec_len(m));
    CU_ASSERT(memcmp(buf, SMALL, sizeof(SMALL)) == 0);
    CU_ASSERT_EQUAL(buf[len], 0);
    free(buf);
    aether_shardmap_destroy(m);
}

/* Every field survives, compared through the format-1 JSON (which names
 * them all) and the raw arrays; encode(decode(b)) == b. */
static void test_round_trip_every_field(void)
{
    aether_shardmap *m = small_map(), *d = NULL;
    uint64_t gen = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_decode((const char *)SMALL, sizeof(SMALL), &d,
                                                       &gen, &err), AETHER_OK);
    CU_ASSERT_EQUAL(gen, GEN);
    CU_ASSERT_EQUAL(d->version, 7);
    CU_ASSERT_EQUAL(d->term, 42);
    CU_ASSERT_EQUAL(d->shard_count, 4);
    CU_ASSERT_EQUAL(d->replication, 2);
    CU_ASSERT_EQUAL(d->node_count, 3);
    CU_ASSERT_EQUAL(d->shards[1].state, AETHER_SHARD_MOVING);
    CU_ASSERT_EQUAL(d->shards[1].to, 0);
    CU_ASSERT_EQUAL(d->shards[1].owner_count, 1);
    CU_ASSERT(memcmp(d->shards, m->shards, 4 * sizeof(*d->shards)) == 0);
    CU_ASSERT(memcmp(d->owners, m->owners, 8 * sizeof(*d->owners)) == 0);
    CU_ASSERT_EQUAL(aether_shardmap_validate(d, &err), AETHER_OK);
    char *j1 = NULL, *j2 = NULL, *b2 = NULL;
    size_t l2 = 0;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(m, &j1, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(d, &j2, NULL, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(j1, j2);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(d, gen, &b2, &l2, NULL), AETHER_OK);
    CU_ASSERT(l2 == sizeof(SMALL) && memcmp(b2, SMALL, l2) == 0);
    /* A clone of a decoded map (its own layout) is the same map. */
    aether_shardmap *c = aether_shardmap_clone(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(aether_shardmap_validate(c, &err), AETHER_OK);
    size_t k = 0;
    const uint32_t *ps = aether_shardmap_node_primary_shards(c, 1, &k); /* node-b */
    CU_ASSERT(k == 2 && ps[0] == 1 && ps[1] == 3);
    aether_shardmap_destroy(c);
    uint64_t v = 0, t = 0, g = 0;
    CU_ASSERT(aether_shardmap_codec_peek((const char *)SMALL, sizeof(SMALL), &v, &t, &g));
    CU_ASSERT(v == 7 && t == 42 && g == GEN);
    CU_ASSERT_FALSE(aether_shardmap_codec_peek(j1, strlen(j1), &v, &t, &g));
    free(j1);
    free(j2);
    free(b2);
    aether_shardmap_destroy(d);
    aether_shardmap_destroy(m);
}

/* A map with no nodes (before the first assignment) and one whose node
 * table names a node that owns nothing: both survive. */
static void test_round_trip_edges(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(3, 3, &b, NULL), AETHER_OK);
    aether_shardmap *m = NULL, *d = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    char *buf = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, 0, &buf, &len, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(len, AETHER_SHARDMAP_CODEC_HEADER_LEN + 3 * 3 * 2);
    uint64_t gen = 1;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_decode(buf, len, &d, &gen, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0);
    CU_ASSERT_EQUAL(d->node_count, 0);
    CU_ASSERT_EQUAL(d->shards[2].owner_count, 0);
    aether_shardmap_destroy(d);
    free(buf);
    aether_shardmap_destroy(m);

    aether_node_index x, y;
    aether_node_id ix = nid("x"), iy = nid("y-unnamed");
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &ix, &x, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &iy, &y, NULL), AETHER_OK);
    for (uint32_t s = 0; s < 3; s++)
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, &x, 1, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, 0, &buf, &len, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_decode(buf, len, &d, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(d->node_count, 2);
    CU_ASSERT_FALSE(aether_shardmap_names_node(d, &iy));
    CU_ASSERT_TRUE(aether_shardmap_names_node(d, &ix));
    aether_shardmap_destroy(d);
    free(buf);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

/* A copy of SMALL with one change, decoded: refused, err names the field. */
static void refused(size_t at, unsigned char value, size_t len, const char *want)
{
    unsigned char buf[sizeof(SMALL) + 8];
    memcpy(buf, SMALL, sizeof(SMALL));
    if (at < sizeof(SMALL))
        buf[at] = value;
    aether_shardmap *m = (aether_shardmap *)1;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)buf, len, &m, NULL, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(m);
    if (strstr(err.msg, want) == NULL)
        fprintf(stderr, "\n  at %zu = %u, len %zu: want '%s', got '%s'\n", at, value, len, want,
                err.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
}

#define NODES_AT 44u              /* the node table */
#define ROWS_AT (NODES_AT + 21u)  /* 3 x (1 + 6) */
#define MOVES_AT (ROWS_AT + 16u)  /* 4 shards x R2 x 2 */

static void test_malformed_inputs(void)
{
    size_t n = sizeof(SMALL);
    refused(0, 'B', n, "magic: not a ShardMap");
    refused(4, 1, n, "format: 1, this reader takes format 2");
    refused(5, 0, n, "replication: 0 out of range");
    refused(5, 8, n, "replication: 8 out of range");
    refused(6, 1, n, "flags: 0x0001");
    refused(8, 0, n, "shard_count: 0 out of range");
    refused(10, 2, n, "shard_count: 131076 out of range");
    refused(19, 0x80, n, "version: 9223372036854775815 out of range");
    refused(27, 0x80, n, "term: 9223372036854775850 out of range");
    refused(36, 4, n, "nodes[3]: node id is empty"); /* the rows read as a fourth id */
    refused(n, 0, NODES_AT + 10, "nodes[1]: input ends inside the node table");
    refused(40, 5, n, "moving_count: 5, more than shard_count 4");
    refused(n, 0, n - 1, "input: 19 bytes after the node table, the owners and moves of 4 shards x R2 and 1 moving take 20");
    refused(n, 0, n + 1, "input: 21 bytes after the node table");
    refused(0, 'A', 20, "shorter than the 44-byte header");
    refused(NODES_AT, 0, n, "nodes[0]");
    refused(NODES_AT + 6, 'c', n, "nodes[1]: node-b not after node-c (ids ascending, distinct)");
    refused(NODES_AT + 1, ' ', n, "nodes[0]");
    refused(ROWS_AT + 2, 0, n, "shards[0].owners[1]: duplicate owner node-a");
    refused(ROWS_AT + 2, 3, n, "shards[0].owners[1]: node index 3 out of range (3 nodes)");
    refused(ROWS_AT + 4, 0xff, n, "shards[1].owners[0]: node index 255 out of range");
    refused(MOVES_AT + 2, 1, n, "shards[1].to: node-b is already the primary");
    refused(MOVES_AT + 2, 9, n, "shards[1].to: node index 9 out of range");
    refused(MOVES_AT, 4, n, "moving[0]: shard 4 out of range");

    /* Empty rows while the map has nodes; format 1 named; junk. */
    unsigned char buf[sizeof(SMALL)];
    memcpy(buf, SMALL, n);
    memset(buf + ROWS_AT + 12, 0xff, 4); /* shard 3: no owners */
    aether_shardmap *m = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)buf, n, &m, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "shards[3]: no primary owner"));
    memcpy(buf, SMALL, n);
    const unsigned char gap[4] = {0xff, 0xff, 1, 0}; /* shard 1: -, b */
    memcpy(buf + ROWS_AT + 4, gap, 4);
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)buf, n, &m, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "shards[1].owners[1]: an owner after an empty slot"));
    const char *f1 = " {\"version\":7,\"term\":42,\"shard_count\":4,\"replication\":2,\"shards\":[]}";
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode(f1, strlen(f1), &m, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "map format 1 (JSON)"));
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode("", 0, &m, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode("AMA", 3, &m, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)SMALL,
                                                 AETHER_SHARDMAP_CODEC_MAX_BYTES + 1, &m, NULL,
                                                 &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "more than the limit"));
    /* Moves out of order: two moves, the second before the first. */
    unsigned char two[sizeof(SMALL) + 4];
    memcpy(two, SMALL, n);
    two[40] = 2;
    const unsigned char more[4] = {0, 0, 1, 0}; /* shard 0 -> node-b */
    memcpy(two + n, more, 4);
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)two, n + 4, &m, NULL, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "moving[1].shard: 0 not after 1"));
    two[n] = 1; /* the same shard twice */
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)two, n + 4, &m, NULL, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "moving[1].shard: 1 not after 1"));
    two[n] = 2; /* in order: decodes */
    CU_ASSERT_EQUAL(aether_shardmap_codec_decode((const char *)two, n + 4, &m, NULL, &err), AETHER_OK);
    aether_shardmap_destroy(m);
}

/* The scale the format exists for: 65 536 shards x R3 over 20 nodes, under
 * 512 KB (docs/tuning.md), one shard in 64 moving, round trip exact. */
static void test_large_map(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(65536, 3, &b, NULL), AETHER_OK);
    aether_node_index idx[20];
    for (int n = 0; n < 20; n++) {
        char s[32];
        snprintf(s, sizeof(s), "node-%012x", n * 4663);
        aether_node_id id = nid(s);
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &id, &idx[n], NULL), AETHER_OK);
    }
    for (uint32_t s = 0; s < 65536; s++) {
        aether_node_index o[3] = {idx[s % 20], idx[(s + 1) % 20], idx[(s + 2) % 20]};
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, o, 3, NULL), AETHER_OK);
        if (s % 64 == 0)
            CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_moving(b, s, idx[(s + 3) % 20], NULL),
                                  AETHER_OK);
    }
    aether_shardmap_builder_set_version(b, 1u << 20);
    aether_shardmap *m = NULL, *d = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    char *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, GEN, &b1, &l1, NULL), AETHER_OK);
    CU_ASSERT(l1 < 512u * 1000u);
    CU_ASSERT_EQUAL(l1, 44u + 20u * 18u + 65536u * 6u + 1024u * 4u);
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_decode(b1, l1, &d, NULL, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_validate(d, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(d, GEN, &b2, &l2, NULL), AETHER_OK);
    CU_ASSERT(l1 == l2 && memcmp(b1, b2, l1) == 0);
    free(b1);
    free(b2);
    aether_shardmap_destroy(d);
    aether_shardmap_destroy(m);
}

static void test_encode_refuses_unrepresentable(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(1, 1, &b, NULL), AETHER_OK);
    aether_shardmap_builder_set_term(b, UINT64_MAX);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    char *t = (char *)1;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_codec_encode(m, 0, &t, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "term"));
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

/* tests/corpus/shardmap_codec/ holds exact vectors: each file is byte for
 * byte today's encoding of its seed map (shardmap_codec_seeds.h), and
 * decodes back to it. A change of the layout fails here until the corpus
 * is regenerated (tools/fuzz --gen-corpus shardmap_codec) and docs/wire.md
 * and the JavaScript consumer follow. */
static void test_corpus_vectors(void)
{
    for (size_t i = 0; i < CODEC_SEED_COUNT; i++) {
        const codec_seed *s = &codec_seeds[i];
        char path[512];
        snprintf(path, sizeof(path), "%s/../corpus/shardmap_codec/%s", AETHER_TEST_VECTORS_DIR,
                 s->name);
        FILE *f = fopen(path, "rb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        static char file[1u << 20];
        size_t flen = fread(file, 1, sizeof(file), f);
        fclose(f);
        aether_err err = {0};
        aether_shardmap *m = codec_seed_map(s, &err), *d = NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        char *buf = NULL;
        size_t len = 0;
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, s->gen, &buf, &len, NULL), AETHER_OK);
        if (flen != len || memcmp(file, buf, len) != 0)
            fprintf(stderr, "\n  %s: %zu bytes on file, the encoder makes %zu (different bytes)\n",
                    s->name, flen, len);
        CU_ASSERT(flen == len && memcmp(file, buf, len) == 0);
        uint64_t gen = 0;
        CU_ASSERT_EQUAL(aether_shardmap_codec_decode(file, flen, &d, &gen, &err), AETHER_OK);
        CU_ASSERT_EQUAL(gen, s->gen);
        aether_shardmap_destroy(d);
        free(buf);
        aether_shardmap_destroy(m);
    }
}

static CU_TestInfo tests[] = {
    AETHER_TEST(corpus_vectors),
    AETHER_TEST(encode_exact_bytes),
    AETHER_TEST(round_trip_every_field),
    AETHER_TEST(round_trip_edges),
    AETHER_TEST(malformed_inputs),
    AETHER_TEST(large_map),
    AETHER_TEST(encode_refuses_unrepresentable),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("shardmap_codec", NULL, NULL, tests);
