/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_shardmap.c: the ShardMap builder, validation and per-node index
 * (actors/shardmap.h).
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "shardmap.h"

static aether_node_id nid(const char *s)
{
    aether_node_id id;
    aether_status st = aether_node_id_from_cstr(s, &id, NULL);
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    return id;
}

static aether_node_index add(aether_shardmap_builder *b, const char *s)
{
    aether_node_id id = nid(s);
    aether_node_index idx = AETHER_NODE_INDEX_NONE;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &id, &idx, NULL), AETHER_OK);
    return idx;
}

static bool contains(const char *msg, const char *want)
{
    if (strstr(msg, want) != NULL)
        return true;
    fprintf(stderr, "message '%s' lacks '%s'\n", msg, want);
    return false;
}

/* A node that owns nothing and is no handoff target leaves the node table
 * (a departed node must not stay in every later map); owners, states and
 * targets are the same after the renumbering. */
static void test_drop_unnamed_nodes(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(4, 2, &b, NULL), AETHER_OK);
    aether_node_index gone = add(b, "gone"), a = add(b, "a"), old = add(b, "old"), c = add(b, "c"),
                      t = add(b, "target");
    (void)gone;
    (void)old;
    aether_node_index r0[2] = {c, a}, r1[1] = {a}, r2[1] = {c}, r3[2] = {a, c};
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 0, r0, 2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 1, r1, 1, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 2, r2, 1, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 3, r3, 2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_moving(b, 1, t, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, 9);
    CU_ASSERT_EQUAL(aether_shardmap_builder_drop_unnamed(b, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_node_count(b), 3);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(m->version, 9);
    CU_ASSERT_EQUAL(m->node_count, 3);
    aether_node_id g = nid("gone"), o = nid("old"), tg = nid("target");
    CU_ASSERT_EQUAL(aether_shardmap_find_node(m, &g), AETHER_NODE_INDEX_NONE);
    CU_ASSERT_EQUAL(aether_shardmap_find_node(m, &o), AETHER_NODE_INDEX_NONE);
    CU_ASSERT_FALSE(aether_shardmap_names_node(m, &g));
    CU_ASSERT_TRUE(aether_shardmap_names_node(m, &tg)); /* only a handoff target */
    const aether_shard_entry *e1 = aether_shardmap_entry(m, 1);
    CU_ASSERT_EQUAL(e1->state, AETHER_SHARD_MOVING);
    CU_ASSERT_STRING_EQUAL(m->nodes[e1->to].str, "target");
    CU_ASSERT_STRING_EQUAL(m->nodes[e1->primary].str, "a");
    const aether_node_index *o0 = aether_shardmap_owners(m, 0);
    CU_ASSERT_STRING_EQUAL(m->nodes[o0[0]].str, "c");
    CU_ASSERT_STRING_EQUAL(m->nodes[o0[1]].str, "a");
    CU_ASSERT_EQUAL(aether_shardmap_validate(m, NULL), AETHER_OK);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

/* 8 shards, R = 2, nodes added out of order: c, a, b. */
static void test_builder_happy_path(void)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(8, 2, &b, &err), AETHER_OK);
    aether_shardmap_builder_set_version(b, 7);
    aether_shardmap_builder_set_term(b, 42);
    aether_node_index c = add(b, "node-c"), a = add(b, "node-a"), bb = add(b, "node-b");
    CU_ASSERT_EQUAL(add(b, "node-a"), a); /* idempotent */
    CU_ASSERT_EQUAL(aether_shardmap_builder_node_count(b), 3);
    aether_node_id x = nid("node-x");
    CU_ASSERT_EQUAL(aether_shardmap_builder_find_node(b, &x), AETHER_NODE_INDEX_NONE);
    aether_node_index trio[3] = {a, bb, c};
    for (uint32_t s = 0; s < 8; s++) {
        aether_node_index o[2] = {trio[s % 3], trio[(s + 1) % 3]};
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, o, 2, &err), AETHER_OK);
    }
    aether_node_index solo = c;
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 7, &solo, 1, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_moving(b, 3, bb, &err), AETHER_OK);

    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m->version, 7);
    CU_ASSERT_EQUAL(m->term, 42);
    CU_ASSERT_EQUAL(m->shard_count, 8);
    CU_ASSERT_EQUAL(m->replication, 2);
    CU_ASSERT_EQUAL_FATAL(m->node_count, 3);
    /* Sorted node table. */
    CU_ASSERT_STRING_EQUAL(m->nodes[0].str, "node-a");
    CU_ASSERT_STRING_EQUAL(m->nodes[1].str, "node-b");
    CU_ASSERT_STRING_EQUAL(m->nodes[2].str, "node-c");
    aether_node_id nb = nid("node-b");
    CU_ASSERT_EQUAL(aether_shardmap_find_node(m, &nb), 1);
    CU_ASSERT_EQUAL(aether_shardmap_find_node(m, &x), AETHER_NODE_INDEX_NONE);
    /* Owners survive the remap: shard 0 = (a, b), shard 2 = (c, a). */
    const aether_node_index *o0 = aether_shardmap_owners(m, 0);
    CU_ASSERT_STRING_EQUAL(aether_shardmap_node(m, o0[0])->str, "node-a");
    CU_ASSERT_STRING_EQUAL(aether_shardmap_node(m, o0[1])->str, "node-b");
    const aether_shard_entry *e2 = aether_shardmap_entry(m, 2);
    CU_ASSERT_EQUAL(e2->owner_count, 2);
    CU_ASSERT_STRING_EQUAL(aether_shardmap_node(m, e2->primary)->str, "node-c");
    CU_ASSERT_EQUAL(aether_shardmap_owners(m, 2)[1], 0);
    const aether_shard_entry *e3 = aether_shardmap_entry(m, 3);
    CU_ASSERT_EQUAL(e3->state, AETHER_SHARD_MOVING);
    CU_ASSERT_STRING_EQUAL(aether_shardmap_node(m, e3->to)->str, "node-b");
    CU_ASSERT_EQUAL(aether_shardmap_entry(m, 4)->state, AETHER_SHARD_STABLE);
    CU_ASSERT_EQUAL(aether_shardmap_entry(m, 4)->to, AETHER_NODE_INDEX_NONE);
    CU_ASSERT_EQUAL(aether_shardmap_entry(m, 7)->owner_count, 1);
    CU_ASSERT_EQUAL(aether_shardmap_validate(m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m->snap.free_fn != NULL, true);

    /* from_map round trip: same content, builds an equal map. */
    aether_shardmap_builder *b2 = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_from_map(m, &b2, &err), AETHER_OK);
    aether_shardmap *m2 = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b2, &m2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m2->version, 7);
    CU_ASSERT_EQUAL(memcmp(m2->shards, m->shards, 8 * sizeof(aether_shard_entry)), 0);
    CU_ASSERT_EQUAL(memcmp(m2->owners, m->owners, 16 * sizeof(aether_node_index)), 0);
    aether_shardmap_destroy(m2);
    aether_shardmap_builder_destroy(b2);

    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
    aether_shardmap_destroy(NULL);
    aether_shardmap_builder_destroy(NULL);
}

static void test_create_rejects_bad_counts(void)
{
    aether_shardmap_builder *b = (aether_shardmap_builder *)1;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_shardmap_builder_create(0, 1, &b, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_TRUE(contains(err.msg, "shard_count"));
    CU_ASSERT_EQUAL(aether_shardmap_builder_create(AETHER_SHARD_COUNT_MAX + 1, 1, &b, &err),
                    AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_shardmap_builder_create(16, 0, &b, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "replication"));
    CU_ASSERT_EQUAL(aether_shardmap_builder_create(16, AETHER_REPLICATION_MAX + 1, &b, &err),
                    AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_shardmap_builder_create(AETHER_SHARD_COUNT_MAX, AETHER_REPLICATION_MAX,
                                                   &b, &err),
                    AETHER_OK);
    aether_shardmap_builder_destroy(b);
}

static void test_replicas_not_distinct_rejected(void)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(4, 3, &b, &err), AETHER_OK);
    aether_node_index a = add(b, "node-a"), c = add(b, "node-c");
    aether_node_index o[3] = {c, a, a};
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 3, o, 3, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[3].owners[2]: duplicate owner node-a"));
    o[2] = c;
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 3, o, 3, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[3].owners[2]: duplicate owner node-c"));
    /* The shard was left unchanged: building fails for lack of a primary. */
    for (uint32_t s = 0; s < 3; s++)
        CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, s, o, 2, &err), AETHER_OK);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL(aether_shardmap_build(b, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_TRUE(contains(err.msg, "shards[3]: no primary owner"));
    aether_shardmap_builder_destroy(b);
}

static void test_primary_missing_rejected(void)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(10, 1, &b, &err), AETHER_OK);
    aether_node_index a = add(b, "node-a");
    for (uint32_t s = 0; s < 10; s++)
        if (s != 7)
            CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, s, &a, 1, &err), AETHER_OK);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL(aether_shardmap_build(b, &m, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[7]: no primary owner"));
    /* Clearing owners of a covered shard brings the error back. */
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 7, &a, 1, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 2, NULL, 0, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_build(b, &m, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[2]: no primary owner"));
    aether_shardmap_builder_destroy(b);

    /* A map with no nodes at all may have ownerless shards (a cluster with
     * nobody in it yet). */
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(4, 1, &b, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m->node_count, 0);
    CU_ASSERT_EQUAL(aether_shardmap_entry(m, 0)->owner_count, 0);
    CU_ASSERT_EQUAL(aether_shardmap_entry(m, 0)->primary, AETHER_NODE_INDEX_NONE);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

static void test_too_many_owners_rejected(void)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(4, 2, &b, &err), AETHER_OK);
    aether_node_index o[3] = {add(b, "a"), add(b, "b"), add(b, "c")};
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 1, o, 3, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[1].owners: 3 owners, more than replication 2"));
    /* Other bad calls name their field too. */
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 4, o, 1, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[4]"));
    aether_node_index bogus[1] = {9};
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 0, bogus, 1, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[0].owners[0]"));
    aether_shardmap_builder_destroy(b);

    /* validate() catches it on a map that did not come from a builder. */
    aether_node_id nodes[2] = {nid("a"), nid("b")};
    aether_shard_entry shards[1] = {{.primary = 0, .to = AETHER_NODE_INDEX_NONE, .owner_count = 2}};
    aether_node_index owners[1] = {0};
    uint32_t start[3] = {0, 1, 1}, plist[1] = {0}, ostart[3] = {0, 1, 2}, olist[2] = {0, 0};
    aether_shardmap fake = {.shard_count = 1, .replication = 1, .node_count = 2, .nodes = nodes,
                            .shards = shards, .owners = owners, .primary_start = start,
                            .primary_shards = plist, .owner_start = ostart, .owner_shards = olist};
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[0].owners: 2 owners, more than replication 1"));
    /* Fixed up it passes; then an unsorted node table is caught. */
    shards[0].owner_count = 1;
    ostart[2] = 1;
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_OK);
    nodes[1] = nid("A");
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "nodes[1]"));
    nodes[1] = nid("b");
    /* And a per-node index that lies. */
    plist[0] = 0;
    start[1] = 0;
    start[2] = 1; /* claims node b is primary of shard 0 */
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "primary_index[b]"));
}

static void test_moving_without_to_rejected(void)
{
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(2, 1, &b, &err), AETHER_OK);
    aether_node_index a = add(b, "node-a"), c = add(b, "node-c");
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 0, &a, 1, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_owners(b, 1, &c, 1, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_moving(b, 1, AETHER_NODE_INDEX_NONE, &err),
                    AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[1].to"));
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_moving(b, 1, 5, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[1].to"));
    /* Moving to its own primary is caught at build. */
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_moving(b, 1, c, &err), AETHER_OK);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL(aether_shardmap_build(b, &m, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[1].to: node-c is already the primary"));
    CU_ASSERT_EQUAL(aether_shardmap_builder_set_stable(b, 1, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);

    /* On a hand-made map: moving with no target, stable with one. */
    aether_node_id nodes[2] = {nid("a"), nid("b")};
    aether_shard_entry shards[1] = {{.primary = 0,
                                     .to = AETHER_NODE_INDEX_NONE,
                                     .owner_count = 1,
                                     .state = AETHER_SHARD_MOVING}};
    aether_node_index owners[1] = {0};
    uint32_t start[3] = {0, 1, 1}, plist[1] = {0}, ostart[3] = {0, 1, 1}, olist[1] = {0};
    aether_shardmap fake = {.shard_count = 1, .replication = 1, .node_count = 2, .nodes = nodes,
                            .shards = shards, .owners = owners, .primary_start = start,
                            .primary_shards = plist, .owner_start = ostart, .owner_shards = olist};
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[0].to: missing on a moving shard"));
    shards[0].state = AETHER_SHARD_STABLE;
    shards[0].to = 1;
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[0].to: set on a stable shard"));
    shards[0].state = 9;
    CU_ASSERT_EQUAL(aether_shardmap_validate(&fake, &err), AETHER_EINVAL);
    CU_ASSERT_TRUE(contains(err.msg, "shards[0].state"));
}

/* The CSR index against a brute-force scan of a larger map. */
static void test_per_node_index(void)
{
    enum { SHARDS = 1000, NODES = 7, R = 3 };
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(SHARDS, R, &b, &err), AETHER_OK);
    aether_node_index idx[NODES];
    char name[16];
    for (int i = NODES - 1; i >= 0; i--) { /* reverse order: remap matters */
        snprintf(name, sizeof(name), "n%d", i);
        idx[i] = add(b, name);
    }
    for (uint32_t s = 0; s < SHARDS; s++) {
        /* Varying owner counts (1..3) and a deterministic spread. */
        size_t count = 1 + s % R;
        aether_node_index o[R];
        for (size_t j = 0; j < count; j++)
            o[j] = idx[(s * 5 + j * 2) % NODES];
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, o, count, &err), AETHER_OK);
    }
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    size_t total_primary = 0, total_owner = 0;
    for (aether_node_index n = 0; n < m->node_count; n++) {
        size_t np, no;
        const uint32_t *pl = aether_shardmap_node_primary_shards(m, n, &np);
        const uint32_t *ol = aether_shardmap_node_owner_shards(m, n, &no);
        size_t ep = 0, eo = 0;
        for (uint32_t s = 0; s < SHARDS; s++) {
            const aether_shard_entry *e = aether_shardmap_entry(m, s);
            const aether_node_index *row = aether_shardmap_owners(m, s);
            if (e->primary == n) {
                CU_ASSERT_TRUE_FATAL(ep < np);
                CU_ASSERT_EQUAL(pl[ep], s); /* ascending, exact */
                ep++;
            }
            for (uint32_t j = 0; j < e->owner_count; j++) {
                if (row[j] == n) {
                    CU_ASSERT_TRUE_FATAL(eo < no);
                    CU_ASSERT_EQUAL(ol[eo], s);
                    eo++;
                }
            }
        }
        CU_ASSERT_EQUAL(ep, np);
        CU_ASSERT_EQUAL(eo, no);
        total_primary += np;
        total_owner += no;
    }
    CU_ASSERT_EQUAL(total_primary, SHARDS);
    CU_ASSERT_EQUAL(total_owner, 1999); /* sum over s < 1000 of 1 + s % 3 */
    /* A clone is the same map in its own memory: valid, equal field by field,
     * and alive after the original is gone. */
    aether_shardmap *c = aether_shardmap_clone(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(aether_shardmap_validate(c, &err), AETHER_OK);
    CU_ASSERT_EQUAL(c->version, m->version);
    CU_ASSERT_EQUAL(c->node_count, m->node_count);
    CU_ASSERT_PTR_NOT_EQUAL(c->shards, m->shards);
    CU_ASSERT_EQUAL(memcmp(c->shards, m->shards, SHARDS * sizeof(*c->shards)), 0);
    CU_ASSERT_EQUAL(memcmp(c->owners, m->owners, (size_t)SHARDS * R * sizeof(*c->owners)), 0);
    aether_node_id n3 = nid("n3");
    aether_node_index i3 = aether_shardmap_find_node(m, &n3);
    aether_shardmap_destroy(m);
    CU_ASSERT_EQUAL(aether_shardmap_find_node(c, &n3), i3);
    size_t np_c;
    (void)aether_shardmap_node_primary_shards(c, i3, &np_c);
    CU_ASSERT(np_c > 0);
    aether_shardmap_destroy(c);
    aether_shardmap_builder_destroy(b);
}

/* Many nodes: the intern table grows and stays correct. */
static void test_many_nodes(void)
{
    enum { NODES = 5000 };
    aether_shardmap_builder *b = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(NODES, 1, &b, &err), AETHER_OK);
    char name[16];
    for (int i = 0; i < NODES; i++) {
        snprintf(name, sizeof(name), "node-%05d", (i * 7919) % NODES);
        aether_node_index ix = add(b, name);
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, (uint32_t)i, &ix, 1, &err),
                              AETHER_OK);
    }
    CU_ASSERT_EQUAL(aether_shardmap_builder_node_count(b), NODES);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    for (int i = 0; i < NODES; i++) {
        snprintf(name, sizeof(name), "node-%05d", i);
        aether_node_id id = nid(name);
        CU_ASSERT_EQUAL(aether_shardmap_find_node(m, &id), (aether_node_index)i);
        CU_ASSERT_NOT_EQUAL(aether_shardmap_builder_find_node(b, &id), AETHER_NODE_INDEX_NONE);
    }
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(builder_happy_path),
    AETHER_TEST(drop_unnamed_nodes),
    AETHER_TEST(create_rejects_bad_counts),
    AETHER_TEST(replicas_not_distinct_rejected),
    AETHER_TEST(primary_missing_rejected),
    AETHER_TEST(too_many_owners_rejected),
    AETHER_TEST(moving_without_to_rejected),
    AETHER_TEST(per_node_index),
    AETHER_TEST(many_nodes),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("shardmap", NULL, NULL, tests);
