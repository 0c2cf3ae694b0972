/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_shardmap_json.c: libFuzzer target for ShardMap JSON decoding
 * (actors/shardmap_json.h; tests layer, fuzz build only). Seeds:
 * tests/corpus/shardmap_json/, written by this target's own seed mode with
 * the builder and aether_shardmap_json_encode_gen (tools/fuzz --gen-corpus).
 *
 * Properties, each an abort when broken:
 *  1. a refusal is AETHER_EINVAL, err.code equal to it, a message, *out NULL;
 *  2. an accepted map passes aether_shardmap_validate (the test oracle) and
 *     has exactly the shard_count and replication it was given;
 *  3. round trip: encode accepts it (with the decoded gen); decode(encode(m))
 *     equals m (version, term, counts, node table, every shard's entry and
 *     owner row) and gives the same gen, which peek_gen reads too; and
 *     encode(decode(encode(m))) == encode(m) byte for byte;
 *  4. lossless: the input's version, term, shard_count, replication and gen
 *     (the writer's generation, optional: absent in both or equal), and
 *     each of its shard objects (in whatever order the input lists them),
 *     equal (jansson json_equal) those of the re-encoding, so decode
 *     dropped or bent nothing the input said.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "shardmap_json.h"

static bool map_equal(const aether_shardmap *a, const aether_shardmap *b)
{
    if (a->version != b->version || a->term != b->term || a->shard_count != b->shard_count ||
        a->replication != b->replication || a->node_count != b->node_count)
        return false;
    for (uint32_t i = 0; i < a->node_count; i++)
        if (!aether_node_id_equal(&a->nodes[i], &b->nodes[i]))
            return false;
    for (uint32_t s = 0; s < a->shard_count; s++) {
        const aether_shard_entry *ea = aether_shardmap_entry(a, s);
        const aether_shard_entry *eb = aether_shardmap_entry(b, s);
        if (memcmp(ea, eb, sizeof(*ea)) != 0)
            return false;
        if (memcmp(aether_shardmap_owners(a, s), aether_shardmap_owners(b, s),
                   ea->owner_count * sizeof(aether_node_index)) != 0)
            return false;
    }
    return true;
}

/* Property 4. The encoding lists shards by id, so input shard k is
 * compared with encoded shard id(k). */
static void check_lossless(const uint8_t *data, size_t size, const char *enc, size_t enc_len)
{
    json_error_t jerr;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                            &jerr);
    json_t *out = json_loadb(enc, enc_len, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(in != NULL && out != NULL, "accepted input or its encoding is not JSON");
    static const char *const scalars[] = {"version", "term", "shard_count", "replication"};
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
        FUZZ_CHECK(json_equal(json_object_get(in, scalars[i]), json_object_get(out, scalars[i])),
                   "%s changed in decoding\n  encoding: %.300s", scalars[i], enc);
    json_t *in_gen = json_object_get(in, "gen"), *out_gen = json_object_get(out, "gen");
    FUZZ_CHECK((in_gen == NULL && out_gen == NULL) || json_equal(in_gen, out_gen),
               "gen changed in decoding\n  encoding: %.300s", enc);
    json_t *in_shards = json_object_get(in, "shards"), *out_shards = json_object_get(out, "shards");
    FUZZ_CHECK(json_array_size(in_shards) == json_array_size(out_shards), "%zu shards in, %zu out",
               json_array_size(in_shards), json_array_size(out_shards));
    size_t k;
    json_t *shard;
    json_array_foreach(in_shards, k, shard) {
        json_int_t id = json_integer_value(json_object_get(shard, "id"));
        FUZZ_CHECK(json_equal(shard, json_array_get(out_shards, (size_t)id)),
                   "shards[%zu] (id %lld) changed in decoding\n  encoding: %.300s", k,
                   (long long)id, enc);
    }
    json_decref(in);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    aether_shardmap *m1 = NULL;
    aether_err err = {0};
    uint64_t gen1 = 0, gen2 = 0, peeked = 0;
    aether_status st = aether_shardmap_json_decode_gen((const char *)data, size, &m1, &gen1, &err);
    if (st != AETHER_OK) {
        FUZZ_CHECK(st == AETHER_EINVAL, "refused with %s: %s", aether_status_str(st), err.msg);
        FUZZ_CHECK(err.code == st && err.msg[0] != '\0', "refusal without its error");
        FUZZ_CHECK(m1 == NULL, "refusal left a map behind");
        return 0;
    }
    FUZZ_CHECK(m1 != NULL, "AETHER_OK without a map");
    st = aether_shardmap_validate(m1, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded map fails validate: %s", err.msg);

    char *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;
    aether_shardmap_json_peek_gen((const char *)data, size, &peeked);
    FUZZ_CHECK(peeked == gen1, "peek_gen %016llx, decode %016llx", (unsigned long long)peeked,
               (unsigned long long)gen1);
    st = aether_shardmap_json_encode_gen(m1, gen1, &e1, &l1, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded map does not encode: %s", err.msg);
    FUZZ_CHECK(l1 == strlen(e1), "encoding length %zu, strlen %zu", l1, strlen(e1));
    check_lossless(data, size, e1, l1);
    aether_shardmap *m2 = NULL;
    st = aether_shardmap_json_decode_gen(e1, l1, &m2, &gen2, &err);
    FUZZ_CHECK(st == AETHER_OK, "own encoding refused: %s\n  encoding: %.300s", err.msg, e1);
    FUZZ_CHECK(gen1 == gen2, "gen %016llx came back as %016llx", (unsigned long long)gen1,
               (unsigned long long)gen2);
    FUZZ_CHECK(map_equal(m1, m2), "decode(encode(m)) != m\n  encoding: %.300s", e1);
    st = aether_shardmap_json_encode_gen(m2, gen2, &e2, &l2, &err);
    FUZZ_CHECK(st == AETHER_OK, "second encode failed: %s", err.msg);
    FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0,
               "not a fixed point:\n  first:  %.300s\n  second: %.300s", e1, e2);
    free(e1);
    free(e2);
    aether_shardmap_destroy(m1);
    aether_shardmap_destroy(m2);
    return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

typedef struct seed_map {
    const char *name;
    uint32_t shard_count, replication;
    uint64_t version, term;
    uint32_t nodes;     /* 0 = a map without owners */
    uint32_t moving_every; /* every k-th shard moving (0 = none) */
    uint64_t gen;          /* the writer's generation (0 = none written) */
} seed_map;

/* Small maps of every shape the decoder distinguishes: no owners, R = 1,
 * partial and full replica sets, moving shards, the extreme version/term,
 * odd-looking node ids. */
static const seed_map seed_maps[] = {
    {"empty-1x1.json", 1, 1, 0, 0, 0, 0},
    {"empty-8x3.json", 8, 3, 1, 1, 0, 0},
    {"single-8x1.json", 8, 1, 3, 1, 1, 0},
    {"three-16x2.json", 16, 2, 7, 42, 3, 0},
    {"three-16x2-moving.json", 16, 2, 8, 42, 3, 3},
    {"five-32x3-moving.json", 32, 3, 120, 9, 5, 4},
    {"seven-24x7.json", 24, 7, 2, 2, 7, 5},
    {"max-version-4x2.json", 4, 2, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, 2, 2},
    {"gen-16x2-moving.json", 16, 2, 9, 43, 3, 3, 0x5be0c2a1d7f3e944ull},
    {"gen-max-4x1.json", 4, 1, 1, 1, 2, 0, UINT64_MAX},
};

static const char *const seed_ids[] = {"node-a", "node-b", "node-c", "n.4",
                                       "Node_E", "z-9",    "a.b-c_d.EF"};

static void write_seed_map(const char *dir, const seed_map *s)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    FUZZ_CHECK(aether_shardmap_builder_create(s->shard_count, s->replication, &b, &err) ==
                   AETHER_OK,
               "builder: %s", err.msg);
    aether_shardmap_builder_set_version(b, s->version);
    aether_shardmap_builder_set_term(b, s->term);
    aether_node_index idx[8];
    for (uint32_t i = 0; i < s->nodes; i++) {
        aether_node_id id;
        FUZZ_CHECK(aether_node_id_from_cstr(seed_ids[i], &id, &err) == AETHER_OK, "%s", err.msg);
        FUZZ_CHECK(aether_shardmap_builder_add_node(b, &id, &idx[i], &err) == AETHER_OK, "%s",
                   err.msg);
    }
    uint32_t r = s->replication < s->nodes ? s->replication : s->nodes;
    for (uint32_t sh = 0; s->nodes > 0 && sh < s->shard_count; sh++) {
        /* Owners rotate over the nodes; every other shard has one fewer
         * replica than it could, so partial rows appear too. */
        uint32_t n = (sh % 2 == 1 && r > 1) ? r - 1 : r;
        aether_node_index row[8];
        for (uint32_t j = 0; j < n; j++)
            row[j] = idx[(sh + j) % s->nodes];
        FUZZ_CHECK(aether_shardmap_builder_set_owners(b, sh, row, n, &err) == AETHER_OK, "%s",
                   err.msg);
        /* A moving shard's target: a node outside the row when there is
         * one, else the first replica; never the primary. */
        uint32_t to = n < s->nodes ? (sh + n) % s->nodes : (sh + 1) % s->nodes;
        if (s->moving_every != 0 && s->nodes > 1 && sh % s->moving_every == 0)
            FUZZ_CHECK(aether_shardmap_builder_set_moving(b, sh, idx[to], &err) == AETHER_OK,
                       "%s", err.msg);
    }
    aether_shardmap *m = NULL;
    FUZZ_CHECK(aether_shardmap_build(b, &m, &err) == AETHER_OK, "build %s: %s", s->name,
               err.msg);
    char *text = NULL;
    size_t len = 0;
    FUZZ_CHECK(aether_shardmap_json_encode_gen(m, s->gen, &text, &len, &err) == AETHER_OK, "%s",
               err.msg);
    fuzz_seed_write(dir, s->name, text, len);
    free(text);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_seed_dir();
    if (dir == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(seed_maps) / sizeof(seed_maps[0]); i++)
        write_seed_map(dir, &seed_maps[i]);
    exit(0);
}
