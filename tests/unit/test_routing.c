/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_routing.c: the hot-path read models over an RCU-published ShardMap
 * (actors/routing.h): lookups by key, shard and node, versions, the moving
 * flag, and readers racing a writer that republishes.
 *
 * AETHER_TEST_LABELS: concurrency
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "keyhash.h"
#include "routing.h"

static aether_node_id nid(const char *s)
{
    aether_node_id id;
    aether_status st = aether_node_id_from_cstr(s, &id, NULL);
    AETHER_ASSERT(st == AETHER_OK);
    return id;
}

/* A map of `shards` shards, R = 2, over four nodes "<prefix>n0".."<prefix>n3":
 * shard s is owned by (n[s%4], n[(s+1)%4]); when `moving_to` >= 0 shard 0 is
 * moving to n[moving_to]. */
static aether_shardmap *make_map(const char *prefix, uint32_t shards, uint64_t version,
                                 int moving_to)
{
    aether_shardmap_builder *b = NULL;
    aether_status st = aether_shardmap_builder_create(shards, 2, &b, NULL);
    AETHER_ASSERT(st == AETHER_OK);
    aether_shardmap_builder_set_version(b, version);
    aether_shardmap_builder_set_term(b, version * 10);
    aether_node_index n[4];
    for (int i = 0; i < 4; i++) {
        char name[40];
        snprintf(name, sizeof(name), "%sn%d", prefix, i);
        aether_node_id id = nid(name);
        st = aether_shardmap_builder_add_node(b, &id, &n[i], NULL);
        AETHER_ASSERT(st == AETHER_OK);
    }
    for (uint32_t s = 0; s < shards; s++) {
        aether_node_index o[2] = {n[s % 4], n[(s + 1) % 4]};
        st = aether_shardmap_builder_set_owners(b, s, o, 2, NULL);
        AETHER_ASSERT(st == AETHER_OK);
    }
    if (moving_to >= 0) {
        st = aether_shardmap_builder_set_moving(b, 0, n[moving_to], NULL);
        AETHER_ASSERT(st == AETHER_OK);
    }
    aether_shardmap *m = NULL;
    aether_err err = {0};
    st = aether_shardmap_build(b, &m, &err);
    if (st != AETHER_OK)
        fprintf(stderr, "build: %s\n", err.msg);
    AETHER_ASSERT(st == AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return m;
}

static void test_not_found_before_publish(void)
{
    aether_shardmap_slot slot;
    aether_shardmap_slot_init(&slot);
    aether_shard_route r;
    aether_node_id ids[2];
    uint32_t shards[4];
    size_t n = 99;
    uint64_t v = 0;
    aether_node_id a = nid("a");
    CU_ASSERT_EQUAL(aether_route_key(&slot, "user:42", 7, &r), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 0, &r), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 0, ids, 2, &n), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(aether_route_node_shards(&slot, &a, shards, 4, &n, &v), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_route_node_primary_shards(&slot, &a, shards, 4, &n, NULL),
                    AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_route_map_version(&slot, &v), AETHER_ENOTFOUND);
    aether_shardmap_slot_fini(&slot);
}

static void test_lookups(void)
{
    aether_shardmap_slot slot;
    aether_shardmap_slot_init(&slot);
    aether_shardmap *m = make_map("node-", 16, 3, 3);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_slot_publish(&slot, &m), AETHER_OK);
    CU_ASSERT_PTR_NULL(m); /* the slot owns it now */

    /* By key: the shard is the documented rule, the primary n[shard % 4]. */
    const char *keys[] = {"user:42", "", "order/17", "\xff\x00z", "a much longer key, 40 bytes.."};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t len = strlen(keys[i]);
        aether_shard_route r;
        CU_ASSERT_EQUAL_FATAL(aether_route_key(&slot, keys[i], len, &r), AETHER_OK);
        CU_ASSERT_EQUAL(r.shard, aether_key_shard(keys[i], len, 16));
        CU_ASSERT_EQUAL(r.map_version, 3);
        CU_ASSERT_EQUAL(r.term, 30);
        CU_ASSERT_EQUAL(r.owner_count, 2);
        char want[16];
        snprintf(want, sizeof(want), "node-n%u", r.shard % 4);
        CU_ASSERT_STRING_EQUAL(r.primary.str, want);
        CU_ASSERT_EQUAL(r.moving, r.shard == 0);
    }
    aether_shard_route r;
    CU_ASSERT_EQUAL(aether_route_key(&slot, "user:42", 7, &r), AETHER_OK);
    CU_ASSERT_EQUAL(r.shard, 450 % 16); /* the keyhash.h vector, for 16 shards */

    /* By shard, with the moving flag. */
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 0, &r), AETHER_OK);
    CU_ASSERT_TRUE(r.moving);
    CU_ASSERT_STRING_EQUAL(r.primary.str, "node-n0"); /* the old owner still answers */
    CU_ASSERT_STRING_EQUAL(r.to.str, "node-n3");
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 6, &r), AETHER_OK);
    CU_ASSERT_FALSE(r.moving);
    CU_ASSERT_EQUAL(r.to.len, 0);
    CU_ASSERT_STRING_EQUAL(r.primary.str, "node-n2");
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 16, &r), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_route_shard(&slot, UINT32_MAX, &r), AETHER_EINVAL);

    /* Owners, primary first; a short buffer gets EFULL and the count. */
    aether_node_id ids[4];
    size_t n = 0;
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 2, ids, 4, &n), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0].str, "node-n2");
    CU_ASSERT_STRING_EQUAL(ids[1].str, "node-n3");
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 3, ids, 1, &n), AETHER_EFULL);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0].str, "node-n3");
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 3, NULL, 0, &n), AETHER_EFULL);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 17, ids, 4, &n), AETHER_EINVAL);

    /* By node: n0 owns s = 0 mod 4 (primary) and s = 3 mod 4 (replica). */
    uint32_t shards[16];
    uint64_t v = 0;
    aether_node_id n0 = nid("node-n0");
    CU_ASSERT_EQUAL(aether_route_node_shards(&slot, &n0, shards, 16, &n, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 3);
    uint32_t want_any[] = {0, 3, 4, 7, 8, 11, 12, 15};
    CU_ASSERT_EQUAL_FATAL(n, 8);
    CU_ASSERT_EQUAL(memcmp(shards, want_any, sizeof(want_any)), 0);
    CU_ASSERT_EQUAL(aether_route_node_primary_shards(&slot, &n0, shards, 16, &n, &v), AETHER_OK);
    uint32_t want_primary[] = {0, 4, 8, 12};
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(shards, want_primary, sizeof(want_primary)), 0);
    CU_ASSERT_EQUAL(aether_route_node_shards(&slot, &n0, shards, 3, &n, NULL), AETHER_EFULL);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(memcmp(shards, want_any, 3 * sizeof(uint32_t)), 0);
    aether_node_id ghost = nid("node-n9");
    CU_ASSERT_EQUAL(aether_route_node_shards(&slot, &ghost, shards, 16, &n, &v), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(n, 0);

    /* Republishing: an older or equal version is refused and stays ours. */
    aether_shardmap *same = make_map("other-", 16, 3, -1);
    CU_ASSERT_EQUAL(aether_shardmap_slot_publish(&slot, &same), AETHER_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(same);
    aether_shardmap_destroy(same);
    aether_shardmap *next = make_map("other-", 32, 4, -1);
    CU_ASSERT_EQUAL(aether_shardmap_slot_publish(&slot, &next), AETHER_OK);
    CU_ASSERT_EQUAL(aether_route_map_version(&slot, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 4);
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 0, &r), AETHER_OK);
    CU_ASSERT_FALSE(r.moving);
    CU_ASSERT_STRING_EQUAL(r.primary.str, "other-n0");
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 31, &r), AETHER_OK); /* now in range */
    CU_ASSERT_EQUAL(aether_route_node_shards(&slot, &n0, shards, 16, &n, &v), AETHER_ENOTFOUND);

    aether_shardmap_slot_fini(&slot);
    CU_ASSERT_EQUAL(aether_route_shard(&slot, 0, &r), AETHER_ENOTFOUND);
    aether_rcu_barrier(); /* the retired maps are freed (the leak checker agrees) */
}

static void test_map_without_nodes(void)
{
    aether_shardmap_slot slot;
    aether_shardmap_slot_init(&slot);
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(8, 1, &b, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, 1);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_slot_publish(&slot, &m), AETHER_OK);
    aether_shard_route r;
    memset(&r, 0xAB, sizeof(r));
    CU_ASSERT_EQUAL(aether_route_key(&slot, "user:42", 7, &r), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(r.shard, 450 % 8);
    CU_ASSERT_EQUAL(r.map_version, 1);
    CU_ASSERT_EQUAL(r.owner_count, 0);
    CU_ASSERT_EQUAL(r.primary.len, 0);
    size_t n = 9;
    aether_node_id ids[1];
    CU_ASSERT_EQUAL(aether_route_owners(&slot, 0, ids, 1, &n), AETHER_OK);
    CU_ASSERT_EQUAL(n, 0);
    aether_shardmap_slot_fini(&slot);
    aether_rcu_barrier();
}

/* ---- readers racing a writer ---------------------------------------------- */

#define RACE_MAPS 2000
#define RACE_SHARDS 64
#define RACE_READERS 2

typedef struct reader {
    const aether_shardmap_slot *slot;
    const int *done;           /* atomic, acquire: set by the writer when finished */
    unsigned seed;
    uint64_t lookups;
    uint64_t versions_seen;    /* distinct versions observed */
    uint64_t last_version;
    uint64_t failures;
    char first_failure[160];
} reader;

static void fail(reader *rd, const char *what, uint64_t version)
{
    if (rd->failures++ == 0)
        snprintf(rd->first_failure, sizeof(rd->first_failure), "%s (version %" PRIu64 ")", what,
                 version);
}

/* Every field of one answer must come from one map: node names carry the
 * version of the map they belong to. */
static void check_route(reader *rd, const aether_shard_route *r)
{
    char want[48];
    snprintf(want, sizeof(want), "v%" PRIu64 "-n%u", r->map_version, r->shard % 4);
    if (strcmp(r->primary.str, want) != 0)
        fail(rd, "primary does not belong to the map version", r->map_version);
    if (r->term != r->map_version * 10)
        fail(rd, "term does not belong to the map version", r->map_version);
    if (r->owner_count != 2)
        fail(rd, "owner count", r->map_version);
    bool odd = r->map_version % 2 == 1;
    if (r->moving != (odd && r->shard == 0))
        fail(rd, "moving flag", r->map_version);
    if (r->moving) {
        snprintf(want, sizeof(want), "v%" PRIu64 "-n2", r->map_version);
        if (strcmp(r->to.str, want) != 0)
            fail(rd, "handoff target does not belong to the map version", r->map_version);
    }
    if (r->map_version < rd->last_version)
        fail(rd, "version went backwards", r->map_version);
    if (r->map_version > rd->last_version)
        rd->versions_seen++;
    rd->last_version = r->map_version;
}

static void *reader_main(void *arg)
{
    reader *rd = arg;
    char key[32];
    aether_shard_route r;
    for (uint64_t i = 0;; i++) {
        bool last = __atomic_load_n(rd->done, __ATOMIC_ACQUIRE) != 0;
        int len = snprintf(key, sizeof(key), "key-%u-%" PRIu64, rd->seed, i);
        aether_status st = aether_route_key(rd->slot, key, (size_t)len, &r);
        if (st == AETHER_OK) {
            if (r.shard != aether_key_shard(key, (size_t)len, RACE_SHARDS))
                fail(rd, "shard is not the key's", r.map_version);
            check_route(rd, &r);
        } else if (st != AETHER_ENOTFOUND || rd->last_version != 0) {
            fail(rd, "route_key failed after a publish", rd->last_version);
        }
        if ((i & 7) == 0 && aether_route_shard(rd->slot, 0, &r) == AETHER_OK)
            check_route(rd, &r);
        if ((i & 15) == 0) {
            /* Owners of one shard come from one map: same version prefix. */
            aether_node_id ids[2];
            size_t n = 0;
            if (aether_route_owners(rd->slot, 5, ids, 2, &n) == AETHER_OK) {
                uint64_t v1 = 0, v2 = 0;
                unsigned k1 = 9, k2 = 9;
                if (n != 2 || sscanf(ids[0].str, "v%" SCNu64 "-n%u", &v1, &k1) != 2 ||
                    sscanf(ids[1].str, "v%" SCNu64 "-n%u", &v2, &k2) != 2 || v1 != v2 ||
                    k1 != 1 || k2 != 2 || v1 < rd->last_version)
                    fail(rd, "owners are not one map's", v1);
            }
            /* A node's shards: n1 owns s = 1 or 0 mod 4. */
            char name[48];
            snprintf(name, sizeof(name), "v%" PRIu64 "-n1", rd->last_version);
            aether_node_id id = nid(name);
            uint32_t shards[RACE_SHARDS];
            uint64_t v = 0;
            if (aether_route_node_shards(rd->slot, &id, shards, RACE_SHARDS, &n, &v) == AETHER_OK) {
                if (v != rd->last_version || n != RACE_SHARDS / 2)
                    fail(rd, "node shards", v);
                for (size_t j = 0; j < n; j++)
                    if (shards[j] % 4 != 0 && shards[j] % 4 != 1)
                        fail(rd, "node shards content", v);
            }
        }
        rd->lookups++;
        if (last)
            break;
    }
    return NULL;
}

static void test_readers_race_writer(void)
{
    aether_shardmap_slot slot;
    aether_shardmap_slot_init(&slot);
    int done = 0;
    reader readers[RACE_READERS];
    pthread_t threads[RACE_READERS];
    for (int i = 0; i < RACE_READERS; i++) {
        memset(&readers[i], 0, sizeof(readers[i]));
        readers[i].slot = &slot;
        readers[i].done = &done;
        readers[i].seed = (unsigned)i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
    }
    /* The writer: this thread, the slot's only publisher. */
    for (uint64_t v = 1; v <= RACE_MAPS; v++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "v%" PRIu64 "-", v);
        aether_shardmap *m = make_map(prefix, RACE_SHARDS, v, v % 2 == 1 ? 2 : -1);
        aether_status st = aether_shardmap_slot_publish(&slot, &m);
        CU_ASSERT_EQUAL(st, AETHER_OK);
        if (st != AETHER_OK)
            aether_shardmap_destroy(m);
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < RACE_READERS; i++)
        CU_ASSERT_EQUAL(pthread_join(threads[i], NULL), 0);

    for (int i = 0; i < RACE_READERS; i++) {
        reader *rd = &readers[i];
        fprintf(stderr, "reader %d: %" PRIu64 " lookups, %" PRIu64 " versions seen, last %" PRIu64
                "\n", i, rd->lookups, rd->versions_seen, rd->last_version);
        if (rd->failures > 0)
            fprintf(stderr, "reader %d: %" PRIu64 " failures, first: %s\n", i, rd->failures,
                    rd->first_failure);
        CU_ASSERT_EQUAL(rd->failures, 0);
        CU_ASSERT_TRUE(rd->lookups > 0);
        /* Its last lookup started after the final publish. */
        CU_ASSERT_EQUAL(rd->last_version, RACE_MAPS);
    }
    aether_shardmap_slot_fini(&slot);
    aether_rcu_barrier();
}

static CU_TestInfo tests[] = {
    AETHER_TEST(not_found_before_publish),
    AETHER_TEST(lookups),
    AETHER_TEST(map_without_nodes),
    AETHER_TEST(readers_race_writer),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("routing", NULL, NULL, tests);
