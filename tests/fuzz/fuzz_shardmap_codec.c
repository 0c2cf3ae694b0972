/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_shardmap_codec.c: libFuzzer target for ShardMap format 2 decoding
 * (actors/shardmap_codec.h; tests layer, fuzz build only). Seeds:
 * tests/corpus/shardmap_codec/, written by this target's own seed mode from
 * shardmap_codec_seeds.h (tools/fuzz --gen-corpus shardmap_codec).
 *
 * Properties, each an abort when broken:
 *  1. a refusal is AETHER_EINVAL, err.code equal to it, a message, *out NULL;
 *  2. an accepted map passes aether_shardmap_validate (the test oracle), and
 *     so does its clone;
 *  3. peek reads the decoded version, term and gen;
 *  4. lossless and canonical: encode(decode(x)) == x byte for byte (the
 *     layout has one encoding per map, so an accepted input that would
 *     re-encode differently was bent or had something dropped);
 *  5. the map equals the one its format-1 JSON gives back (an independent
 *     path through the builder): the direct layout (build_le) and the
 *     builder agree.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "shardmap_codec.h"
#include "shardmap_codec_seeds.h"
#include "shardmap_json.h"

static bool map_equal(const aether_shardmap *a, const aether_shardmap *b)
{
    if (a->version != b->version || a->term != b->term || a->shard_count != b->shard_count ||
        a->replication != b->replication)
        return false;
    for (uint32_t s = 0; s < a->shard_count; s++) {
        const aether_shard_entry *ea = aether_shardmap_entry(a, s), *eb = aether_shardmap_entry(b, s);
        if (ea->owner_count != eb->owner_count || ea->state != eb->state)
            return false;
        const aether_node_index *ra = aether_shardmap_owners(a, s), *rb = aether_shardmap_owners(b, s);
        for (uint32_t j = 0; j < ea->owner_count; j++)
            if (!aether_node_id_equal(&a->nodes[ra[j]], &b->nodes[rb[j]]))
                return false;
        if (ea->state == AETHER_SHARD_MOVING &&
            !aether_node_id_equal(&a->nodes[ea->to], &b->nodes[eb->to]))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    aether_shardmap *m = NULL;
    aether_err err = {0};
    uint64_t gen = 0;
    aether_status st = aether_shardmap_codec_decode((const char *)data, size, &m, &gen, &err);
    if (st != AETHER_OK) {
        FUZZ_CHECK(st == AETHER_EINVAL, "refused with %s: %s", aether_status_str(st), err.msg);
        FUZZ_CHECK(err.code == st && err.msg[0] != '\0', "refusal without its error");
        FUZZ_CHECK(m == NULL, "refusal left a map behind");
        return 0;
    }
    FUZZ_CHECK(m != NULL, "AETHER_OK without a map");
    st = aether_shardmap_validate(m, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded map fails validate: %s", err.msg);
    aether_shardmap *c = aether_shardmap_clone(m);
    FUZZ_CHECK(c != NULL && aether_shardmap_validate(c, &err) == AETHER_OK, "clone: %s", err.msg);
    aether_shardmap_destroy(c);

    uint64_t v = 0, t = 0, g = 0;
    FUZZ_CHECK(aether_shardmap_codec_peek((const char *)data, size, &v, &t, &g) &&
                   v == m->version && t == m->term && g == gen,
               "peek disagrees with decode");

    char *enc = NULL;
    size_t len = 0;
    st = aether_shardmap_codec_encode(m, gen, &enc, &len, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded map does not encode: %s", err.msg);
    FUZZ_CHECK(len == size && memcmp(enc, data, size) == 0,
               "encode(decode(x)) != x: %zu bytes in, %zu out", size, len);
    free(enc);

    char *json = NULL;
    size_t jlen = 0;
    aether_shardmap *j = NULL;
    FUZZ_CHECK(aether_shardmap_json_encode(m, &json, &jlen, &err) == AETHER_OK, "json: %s", err.msg);
    FUZZ_CHECK(aether_shardmap_json_decode(json, jlen, &j, &err) == AETHER_OK, "json back: %s",
               err.msg);
    FUZZ_CHECK(map_equal(m, j), "the direct layout and the builder disagree");
    free(json);
    aether_shardmap_destroy(j);
    aether_shardmap_destroy(m);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_seed_dir();
    if (dir == NULL)
        return 0;
    for (size_t i = 0; i < CODEC_SEED_COUNT; i++) {
        aether_err err = {0};
        aether_shardmap *m = codec_seed_map(&codec_seeds[i], &err);
        FUZZ_CHECK(m != NULL, "seed %s: %s", codec_seeds[i].name, err.msg);
        char *buf = NULL;
        size_t len = 0;
        FUZZ_CHECK(aether_shardmap_codec_encode(m, codec_seeds[i].gen, &buf, &len, &err) == AETHER_OK,
                   "%s", err.msg);
        fuzz_seed_write(dir, codec_seeds[i].name, buf, len);
        free(buf);
        aether_shardmap_destroy(m);
    }
    exit(0);
}
