/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap_codec_seeds.h: the maps of tests/corpus/shardmap_codec/ (tests
 * layer). One table, two users: the fuzz target writes them as its seed
 * corpus (tools/fuzz --gen-corpus shardmap_codec), and the unit test
 * shardmap_codec.corpus_vectors checks that every file there is byte for
 * byte what aether_shardmap_codec_encode makes of its map today, so the
 * files are exact vectors for other decoders (the JavaScript consumer reads
 * them: docs/examples/js-consumer, `npm test`).
 *
 * Threading: any thread; a pure builder.
 */
#ifndef AETHER_SHARDMAP_CODEC_SEEDS_H
#define AETHER_SHARDMAP_CODEC_SEEDS_H

#include <stdint.h>

#include "shardmap.h"

typedef struct codec_seed {
    const char *name;
    uint32_t shard_count, replication;
    uint64_t version, term;
    uint32_t nodes;        /* 0 = a map without owners */
    uint32_t moving_every; /* every k-th shard moving (0 = none) */
    uint64_t gen;          /* the writer's generation (0 = none said) */
} codec_seed;

/* Every shape the decoder distinguishes: no owners, R = 1, partial and full
 * replica rows, moving shards, the extreme version/term/gen, a long id, the
 * largest shard id. */
static const codec_seed codec_seeds[] = {
    {"empty-1x1.bin", 1, 1, 0, 0, 0, 0, 0},
    {"empty-8x3.bin", 8, 3, 1, 1, 0, 0, 0},
    {"single-8x1.bin", 8, 1, 3, 1, 1, 0, 0},
    {"three-16x2.bin", 16, 2, 7, 42, 3, 0, 0},
    {"three-16x2-moving.bin", 16, 2, 8, 42, 3, 3, 0x5be0c2a1d7f3e944ull},
    {"five-32x3-moving.bin", 32, 3, 120, 9, 5, 4, 0x0123456789abcdefull},
    {"seven-24x7.bin", 24, 7, 2, 2, 7, 5, 0},
    {"max-version-4x2.bin", 4, 2, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, 2, 2, UINT64_MAX},
    {"eight-65536x1.bin", 65536, 1, 1000, 3, 8, 4096, 0x5be0c2a1d7f3e944ull},
};
#define CODEC_SEED_COUNT (sizeof(codec_seeds) / sizeof(codec_seeds[0]))

static const char *const codec_seed_ids[] = {
    "node-a", "node-b", "node-c", "n.4", "Node_E", "z-9", "a.b-c_d.EF",
    "node-0123456789abcdef0123456789abcdef0123456789abcdef0123456789a" /* 64 bytes: the longest id */};

/* The seed's map, or NULL (with err) if the builder refuses it. */
static inline aether_shardmap *codec_seed_map(const codec_seed *s, aether_err *err)
{
    aether_shardmap_builder *b = NULL;
    aether_shardmap *m = NULL;
    if (aether_shardmap_builder_create(s->shard_count, s->replication, &b, err) != AETHER_OK)
        return NULL;
    aether_shardmap_builder_set_version(b, s->version);
    aether_shardmap_builder_set_term(b, s->term);
    aether_node_index idx[8];
    for (uint32_t i = 0; i < s->nodes; i++) {
        aether_node_id id;
        if (aether_node_id_from_cstr(codec_seed_ids[i], &id, err) != AETHER_OK ||
            aether_shardmap_builder_add_node(b, &id, &idx[i], err) != AETHER_OK)
            goto out;
    }
    uint32_t r = s->replication < s->nodes ? s->replication : s->nodes;
    for (uint32_t sh = 0; s->nodes > 0 && sh < s->shard_count; sh++) {
        /* Owners rotate; every other shard has one replica fewer than it
         * could, so partial rows (0xFFFF slots) appear too. */
        uint32_t n = (sh % 2 == 1 && r > 1) ? r - 1 : r;
        aether_node_index row[8];
        for (uint32_t j = 0; j < n; j++)
            row[j] = idx[(sh + j) % s->nodes];
        if (aether_shardmap_builder_set_owners(b, sh, row, n, err) != AETHER_OK)
            goto out;
        uint32_t to = n < s->nodes ? (sh + n) % s->nodes : (sh + 1) % s->nodes;
        if (s->moving_every != 0 && s->nodes > 1 &&
            (sh % s->moving_every == 0 || sh == s->shard_count - 1) &&
            aether_shardmap_builder_set_moving(b, sh, idx[to], err) != AETHER_OK)
            goto out;
    }
    (void)aether_shardmap_build(b, &m, err);
out:
    aether_shardmap_builder_destroy(b);
    return m;
}

#endif
