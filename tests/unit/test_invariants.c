/*
 * test_invariants.c: the invariant checks every test and the product use as
 * their oracle (actors/invariants.h). Each check is shown to pass on a good
 * state and to name the violation on a bad one.
 */
#include <string.h>

#include "cu_test.h"
#include "invariants.h"

static aether_node_id id_of(const char *s)
{
    aether_node_id id;
    CU_ASSERT_FATAL(aether_node_id_from_cstr(s, &id, NULL) == AETHER_OK);
    return id;
}

static void add_node(aether_topology *t, const char *id, const char *zone, aether_node_status st)
{
    aether_event *e = aether_event_create(AETHER_EVT_NODE_JOINED);
    e->data.node_joined.node = id_of(id);
    strcpy(e->data.node_joined.address, "addr");
    strcpy(e->data.node_joined.zone, zone);
    e->data.node_joined.incarnation = 1;
    CU_ASSERT_TRUE(aether_topology_apply(t, e));
    aether_event_release(e);
    if (st == AETHER_NODE_ACTIVE)
        return;
    aether_event *d = aether_event_create(st == AETHER_NODE_FAILED ? AETHER_EVT_NODE_FAILED
                                                                   : AETHER_EVT_NODE_DRAINING);
    d->data.node_failed.node = id_of(id); /* same layout for both: node first */
    d->data.node_draining.node = id_of(id);
    CU_ASSERT_TRUE(aether_topology_apply(t, d));
    aether_event_release(d);
}

/* A 4-shard map, R = 2, owners given as "a,b" strings per shard ("" = none). */
static aether_shardmap *make_map(const char *const owners[4], int moving_shard, const char *to)
{
    aether_shardmap_builder *b;
    CU_ASSERT_FATAL(aether_shardmap_builder_create(4, 2, &b, NULL) == AETHER_OK);
    aether_shardmap_builder_set_version(b, 1);
    for (uint32_t s = 0; s < 4; s++) {
        aether_node_index idx[2];
        size_t n = 0;
        char buf[64];
        strcpy(buf, owners[s]);
        for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
            aether_node_id id = id_of(tok);
            CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &id, &idx[n++], NULL) == AETHER_OK);
        }
        CU_ASSERT_FATAL(aether_shardmap_builder_set_owners(b, s, idx, n, NULL) == AETHER_OK);
    }
    if (moving_shard >= 0) {
        aether_node_id id = id_of(to);
        aether_node_index ti;
        CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &id, &ti, NULL) == AETHER_OK);
        CU_ASSERT_FATAL(aether_shardmap_builder_set_moving(b, (uint32_t)moving_shard, ti, NULL) == AETHER_OK);
    }
    aether_shardmap *m = NULL;
    aether_err err;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, &err), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return m;
}

static void test_map_ok_and_i2_i3_violations(void)
{
    aether_topology t;
    aether_topology_init(&t, NULL);
    add_node(&t, "a", "z1", AETHER_NODE_ACTIVE);
    add_node(&t, "b", "z2", AETHER_NODE_ACTIVE);
    add_node(&t, "c", "z2", AETHER_NODE_FAILED);
    add_node(&t, "d", "z1", AETHER_NODE_DRAINING);
    aether_err err;

    const char *good[4] = { "a,b", "b,a", "a,b", "d,b" };
    aether_shardmap *m = make_map(good, 1, "a");
    CU_ASSERT_EQUAL(aether_invariants_check_map(m, &t, &err), AETHER_OK);
    aether_shardmap_destroy(m);

    /* A map builds with an ownerless shard only when it has no nodes at all
     * (shardmap.h); against a topology with healthy nodes that breaks I2. */
    const char *orphan[4] = { "", "", "", "" };
    m = make_map(orphan, -1, NULL);
    CU_ASSERT_EQUAL(aether_invariants_check_map(m, &t, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I2: shard 0 has no primary");
    aether_shardmap_destroy(m);

    const char *failed_owner[4] = { "a,b", "b,a", "c,a", "b,a" };
    m = make_map(failed_owner, -1, NULL);
    CU_ASSERT_EQUAL(aether_invariants_check_map(m, &t, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I3: shard 2 owner c is failed");
    aether_shardmap_destroy(m);

    const char *same_zone[4] = { "a,b", "b,a", "a,d", "b,a" };
    m = make_map(same_zone, -1, NULL);
    CU_ASSERT_EQUAL(aether_invariants_check_map(m, &t, &err), AETHER_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "I3: shard 2 has two owners in zone z1"));
    aether_shardmap_destroy(m);

    /* Moving to a draining node is not allowed: new shards go to Active nodes. */
    m = make_map(good, 0, "d");
    CU_ASSERT_EQUAL(aether_invariants_check_map(m, &t, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I3: shard 0 moves to d, which is draining");
    aether_shardmap_destroy(m);
    aether_topology_fini(&t);
}

static void test_leader_must_be_active(void)
{
    aether_topology t;
    aether_topology_init(&t, NULL);
    add_node(&t, "a", "", AETHER_NODE_ACTIVE);
    add_node(&t, "d", "", AETHER_NODE_DRAINING);
    aether_err err;
    aether_node_id a = id_of("a"), d = id_of("d"), x = id_of("x");
    CU_ASSERT_EQUAL(aether_invariants_check_leader(&t, &a, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_leader(&t, &d, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I5: leader d is draining");
    CU_ASSERT_EQUAL(aether_invariants_check_leader(&t, &x, &err), AETHER_ESTATE);
    aether_topology_fini(&t);
}

static void test_stability(void)
{
    const char *m1[4] = { "a,b", "b,a", "a,b", "b,a" };
    const char *m2[4] = { "a,b", "b,a", "b,a", "b,a" };
    aether_shardmap *x = make_map(m1, -1, NULL), *y = make_map(m1, -1, NULL), *z = make_map(m2, -1, NULL);
    aether_err err;
    CU_ASSERT_EQUAL(aether_invariants_check_stable(x, y, false, false, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_stable(x, z, false, false, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I4: shard 2 changed owners without a topology change or rebalance");
    CU_ASSERT_EQUAL(aether_invariants_check_stable(x, z, true, false, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_stable(x, z, false, true, &err), AETHER_OK);
    aether_shardmap_destroy(x);
    aether_shardmap_destroy(y);
    aether_shardmap_destroy(z);
}

static void test_single_ownership_claims(void)
{
    uint32_t a_shards[] = { 0, 2 }, b_shards[] = { 1, 3 }, c_shards[] = { 2 };
    aether_ownership_claim claims[3] = {
        { id_of("a"), a_shards, 2 }, { id_of("b"), b_shards, 2 }, { id_of("c"), c_shards, 1 },
    };
    aether_err err;
    CU_ASSERT_EQUAL(aether_invariants_check_claims(4, claims, 2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_claims(4, claims, 3, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "single ownership: shard 2 served by a and c");
    uint32_t bad[] = { 9 };
    aether_ownership_claim out_of_range = { id_of("z"), bad, 1 };
    CU_ASSERT_EQUAL(aether_invariants_check_claims(4, &out_of_range, 1, &err), AETHER_EINVAL);
}

static void test_one_leader_per_term(void)
{
    aether_term_registry r;
    aether_term_registry_init(&r);
    aether_node_id a = id_of("a"), b = id_of("b");
    aether_err err;
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0, 7, &a, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0, 3, &b, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0, 7, &a, &err), AETHER_OK); /* seen again */
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0, 7, &b, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I1: term 7 has two leaders, a and b");
    CU_ASSERT_EQUAL(r.count, 2);
    CU_ASSERT_EQUAL(r.entries[0].term, 3);
    /* Terms repeat across generations (both stores lost); the pair does not. */
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0x5be0, 7, &b, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0x5be0, 3, &a, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_term_registry_record(&r, 0x5be0, 7, &a, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I1: term 7 of generation 0000000000005be0 has two leaders, b and a");
    CU_ASSERT_EQUAL(r.count, 4);
    CU_ASSERT_EQUAL(r.entries[3].generation, 0x5be0);
    CU_ASSERT_EQUAL(r.entries[3].term, 7);
    aether_term_registry_fini(&r);
}

static aether_event *topo_event(aether_event_type type, const char *node, const char *emitter,
                                aether_term term)
{
    aether_event *e = aether_event_create(type);
    CU_ASSERT_FATAL(e != NULL);
    e->node = id_of(emitter);
    e->term = term;
    if (type == AETHER_EVT_NODE_FAILED)
        e->data.node_failed.node = id_of(node);
    else if (type == AETHER_EVT_NODE_LEFT)
        e->data.node_left.node = id_of(node);
    else
        e->data.node_joined.node = id_of(node);
    return e;
}

static void note(aether_departures *d, aether_event_type type, const char *node, const char *emitter,
                 aether_term term)
{
    aether_event *e = topo_event(type, node, emitter, term);
    CU_ASSERT_EQUAL(aether_departures_note(d, e), AETHER_OK);
    aether_event_release(e);
}

/* A map of term `term` giving shard 0 to a and b, shard 1 to c (R 2). */
static aether_shardmap *map_of_term(aether_term term)
{
    aether_shardmap_builder *b;
    CU_ASSERT_FATAL(aether_shardmap_builder_create(2, 2, &b, NULL) == AETHER_OK);
    aether_shardmap_builder_set_version(b, 9);
    aether_shardmap_builder_set_term(b, term);
    const char *rows[2][2] = { { "a", "b" }, { "c", NULL } };
    for (uint32_t s = 0; s < 2; s++) {
        aether_node_index idx[2];
        size_t n = 0;
        for (uint32_t j = 0; j < 2 && rows[s][j] != NULL; j++) {
            aether_node_id id = id_of(rows[s][j]);
            CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &id, &idx[n++], NULL) == AETHER_OK);
        }
        CU_ASSERT_FATAL(aether_shardmap_builder_set_owners(b, s, idx, n, NULL) == AETHER_OK);
    }
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return m;
}

/* Announced departures (member_internal.h, "The leader's two commit
 * points"): a leader's map of term T naming a node it announced departed in
 * T is refused; a revival, another term or another emitter is not judged. */
static void test_map_after_announced_departure(void)
{
    aether_departures d;
    aether_departures_init(&d);
    aether_shardmap *m5 = map_of_term(5), *m6 = map_of_term(6);
    aether_node_id l = id_of("l"), k = id_of("k");
    aether_err err;
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m5, &err), AETHER_OK);
    note(&d, AETHER_EVT_NODE_FAILED, "z", "l", 5); /* names nobody on the map */
    note(&d, AETHER_EVT_NODE_LEFT, "c", "l", 4);   /* an older term of l's */
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m5, &err), AETHER_OK);
    note(&d, AETHER_EVT_NODE_FAILED, "b", "l", 5);
    note(&d, AETHER_EVT_NODE_FAILED, "b", "l", 5); /* a repeat: one entry */
    CU_ASSERT_EQUAL(d.count, 3);
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m5, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "departures: l published map v9 (term 5) giving 1 shard(s) to b "
                                    "after announcing its departure in that term");
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m6, &err), AETHER_OK); /* a later term */
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &k, m5, &err), AETHER_OK); /* another node */
    note(&d, AETHER_EVT_NODE_JOINED, "b", "k", 6); /* revived, by anyone */
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m5, &err), AETHER_OK);
    CU_ASSERT_EQUAL(d.count, 2);
    note(&d, AETHER_EVT_NODE_LEFT, "c", "l", 6);
    CU_ASSERT_EQUAL(aether_departures_check_map(&d, &l, m6, &err), AETHER_ESTATE);
    aether_shardmap_destroy(m5);
    aether_shardmap_destroy(m6);
    aether_departures_fini(&d);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(map_after_announced_departure),
    AETHER_TEST(map_ok_and_i2_i3_violations),
    AETHER_TEST(leader_must_be_active),
    AETHER_TEST(stability),
    AETHER_TEST(single_ownership_claims),
    AETHER_TEST(one_leader_per_term),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("invariants", NULL, NULL, tests);
