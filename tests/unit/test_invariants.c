/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_invariants.c: the invariant checks every test and the product use as
 * their oracle (actors/invariants.h). Each check is shown to pass on a good
 * state and to name the violation on a bad one.
 */
#include <stdio.h>
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

/* ---- a running cluster, as a harness sees it ---------------------------------- */

/* Two Active nodes a (z1) and b (z2); R = 2; a leads; a serves 0 and 2, b 1
 * and 3, both on v1: settled. Each test below breaks one thing. */
typedef struct fixture {
    aether_topology topo;
    aether_shardmap *map;
    uint8_t serving[2][4];
    aether_oracle_view views[3];
    aether_settled_input in;
} fixture;

static void fixture_init(fixture *f, const char *const owners[4])
{
    memset(f, 0, sizeof(*f));
    aether_topology_init(&f->topo, NULL);
    add_node(&f->topo, "a", "z1", AETHER_NODE_ACTIVE);
    add_node(&f->topo, "b", "z2", AETHER_NODE_ACTIVE);
    f->map = make_map(owners, -1, NULL);
    f->serving[0][0] = f->serving[0][2] = 1;
    f->serving[1][1] = f->serving[1][3] = 1;
    const char *names[2] = { "a", "b" };
    for (int i = 0; i < 2; i++)
        f->views[i] = (aether_oracle_view){ .name = names[i], .node = names[i], .running = true,
                                            .may_serve = true, .map_version = 1,
                                            .serving = f->serving[i], .serving_count = 2,
                                            .expect = AETHER_EXPECT_ACTIVE };
    f->views[0].is_leader = true;
    f->in = (aether_settled_input){ .views = f->views, .n_views = 2, .leader = 0, .map = f->map,
                                    .topo = &f->topo, .replication = 2 };
}

static void fixture_fini(fixture *f)
{
    aether_shardmap_destroy(f->map);
    aether_topology_fini(&f->topo);
}

static const char *const balanced_owners[4] = { "a,b", "b,a", "a,b", "b,a" };

/* Runs the settled check on f and expects msg ("" = settled). */
static void expect_settled(fixture *f, const char *msg)
{
    aether_err err = { 0 };
    aether_status st = aether_invariants_check_settled(&f->in, &err);
    if (msg[0] == '\0') {
        if (st != AETHER_OK)
            fprintf(stderr, "unexpected: %s\n", err.msg);
        CU_ASSERT_EQUAL(st, AETHER_OK);
    } else {
        CU_ASSERT_EQUAL(st, AETHER_ESTATE);
        CU_ASSERT_STRING_EQUAL(err.msg, msg);
    }
}

static void test_one_leader_at_an_instant(void)
{
    fixture f;
    fixture_init(&f, balanced_owners);
    aether_err err;
    uint32_t li = 9;
    CU_ASSERT_EQUAL(aether_invariants_check_one_leader(f.views, 2, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_leader(f.views, 2, &li, &err), AETHER_OK);
    CU_ASSERT_EQUAL(li, 0);
    f.views[1].is_leader = true;
    CU_ASSERT_EQUAL(aether_invariants_check_one_leader(f.views, 2, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "I1: a and b both act as leader");
    CU_ASSERT_EQUAL(aether_invariants_leader(f.views, 2, &li, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "two nodes act as leader: a and b");
    /* A paused leader still counts for I1 (it acts when it resumes), but
     * is not the one the cluster settles on. */
    f.views[0].frozen = true;
    CU_ASSERT_EQUAL(aether_invariants_check_one_leader(f.views, 2, &err), AETHER_ESTATE);
    CU_ASSERT_EQUAL(aether_invariants_leader(f.views, 2, &li, &err), AETHER_OK);
    CU_ASSERT_EQUAL(li, 1);
    f.views[1].is_leader = false;
    CU_ASSERT_EQUAL(aether_invariants_leader(f.views, 2, &li, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "no leader");
    /* A stopped process acts as nothing. */
    f.views[0].frozen = false;
    f.views[1].is_leader = true;
    f.views[1].running = false;
    CU_ASSERT_EQUAL(aether_invariants_check_one_leader(f.views, 2, &err), AETHER_OK);
    fixture_fini(&f);
}

static void test_settled_and_each_way_it_is_not(void)
{
    fixture f;
    fixture_init(&f, balanced_owners);
    expect_settled(&f, "");

    f.in.topo = NULL;
    expect_settled(&f, "leader a has no topology");
    f.in.topo = &f.topo;
    f.in.map = NULL;
    expect_settled(&f, "leader a has no map");
    f.in.map = f.map;

    /* Membership as the harness expects it. */
    f.views[1].expect = AETHER_EXPECT_LEFT;
    expect_settled(&f, "b is active, should be left");
    f.views[1].expect = AETHER_EXPECT_DOWN;
    expect_settled(&f, "b is down but active");
    f.views[1].expect = AETHER_EXPECT_ANY;
    expect_settled(&f, "");
    f.views[2] = (aether_oracle_view){ .name = "c", .node = "c", .expect = AETHER_EXPECT_ACTIVE };
    f.in.n_views = 3;
    expect_settled(&f, "c is unknown, should be active");
    f.views[2].expect = AETHER_EXPECT_LEFT_OR_FORGOTTEN;
    expect_settled(&f, "");
    f.views[2].expect = AETHER_EXPECT_DOWN;
    expect_settled(&f, "");
    /* A process that cannot serve the cluster must serve nothing. */
    f.views[2] = (aether_oracle_view){ .name = "x", .node = "x", .running = true,
                                       .incompatible = true, .serving_count = 1 };
    expect_settled(&f, "x cannot serve this cluster but serves 1 shards");
    f.in.n_views = 2;
    f.views[1].expect = AETHER_EXPECT_ACTIVE;

    /* Shards: served by the primary, by nobody else, by running owners. */
    f.serving[1][0] = 1;
    expect_settled(&f, "shard 0 held by 2 nodes");
    f.in.serving_unobserved = true; /* a script sees no serving: the rest holds */
    expect_settled(&f, "");
    f.in.serving_unobserved = false;
    f.serving[1][0] = 0;
    f.serving[0][2] = 0;
    expect_settled(&f, "shard 2: primary a does not serve it");
    f.serving[0][2] = 1;
    f.views[0].may_serve = false;
    expect_settled(&f, "shard 0: primary a does not serve it");
    f.views[0].may_serve = true;
    f.views[1].running = false;
    expect_settled(&f, "I2/I3: shard 0 owner b is down");
    f.views[1].running = true;

    /* Every process on the leader's version, serving only if it may. */
    f.views[1].map_version = 0;
    expect_settled(&f, "b has map v0, leader a v1");
    f.views[1].frozen = true; /* paused: its view is stale */
    expect_settled(&f, "");
    f.views[1].frozen = false;
    f.views[1].map_version = 1;
    fixture_fini(&f);

    /* min(R, Active) owners, unless the brake holds the rebalance back. */
    const char *thin[4] = { "a", "b,a", "a,b", "b,a" };
    fixture_init(&f, thin);
    expect_settled(&f, "I2/I3: shard 0 has 1 owners, want 2");
    f.in.brake_engaged = true;
    expect_settled(&f, "");
    fixture_fini(&f);

    /* I5: the leader is Active. */
    fixture_init(&f, balanced_owners);
    add_node(&f.topo, "c", "z1", AETHER_NODE_DRAINING);
    f.views[0] = (aether_oracle_view){ .name = "c", .node = "c", .running = true, .is_leader = true };
    expect_settled(&f, "I5: leader c is draining");
    fixture_fini(&f);
}

static void test_settled_needs_stable_shards(void)
{
    fixture f;
    fixture_init(&f, balanced_owners);
    aether_shardmap_destroy(f.map);
    f.map = make_map(balanced_owners, 1, "a");
    f.in.map = f.map;
    expect_settled(&f, "shard 1 still moving");
    fixture_fini(&f);
}

static void test_balance_within_the_strategy_bound(void)
{
    fixture f;
    fixture_init(&f, balanced_owners);
    aether_err err;
    CU_ASSERT_EQUAL(aether_invariants_check_balance(f.map, &f.topo, &err), AETHER_OK);
    /* An Active node the map does not name owns nothing: 0..4. */
    add_node(&f.topo, "c", "z3", AETHER_NODE_ACTIVE);
    CU_ASSERT_EQUAL(aether_invariants_check_balance(f.map, &f.topo, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "primaries per Active node 0..2, owners 0..4");
    fixture_fini(&f);
    const char *lopsided[4] = { "a,b", "a,b", "a,b", "b,a" };
    fixture_init(&f, lopsided);
    CU_ASSERT_EQUAL(aether_invariants_check_balance(f.map, &f.topo, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "primaries per Active node 1..3, owners 4..4");
    fixture_fini(&f);
}

static void test_one_map_version(void)
{
    fixture f;
    fixture_init(&f, balanced_owners);
    aether_err err;
    uint64_t v = 0;
    CU_ASSERT_EQUAL(aether_invariants_check_one_version(f.views, 2, &v, &err), AETHER_OK);
    CU_ASSERT_EQUAL(v, 1);
    f.views[1].map_version = 2;
    CU_ASSERT_EQUAL(aether_invariants_check_one_version(f.views, 2, &v, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "b on map v2, others on v1");
    f.views[1].map_version = 0;
    CU_ASSERT_EQUAL(aether_invariants_check_one_version(f.views, 2, &v, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "b has no map yet");
    f.views[1].incompatible = true; /* never installs the cluster's maps */
    CU_ASSERT_EQUAL(aether_invariants_check_one_version(f.views, 2, &v, &err), AETHER_OK);
    f.views[0].running = false;
    CU_ASSERT_EQUAL(aether_invariants_check_one_version(f.views, 2, &v, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "no live node");
    fixture_fini(&f);
}

static void test_progress_never_goes_back(void)
{
    aether_err err;
    CU_ASSERT_EQUAL(aether_invariants_check_progress("n1", "map version", 4, 4, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_progress("n1", "map version", 4, 5, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_invariants_check_progress("n1", "term", 4, 3, &err), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(err.msg, "n1: term went back from 4 to 3");
}

static CU_TestInfo tests[] = {
    AETHER_TEST(map_after_announced_departure),
    AETHER_TEST(map_ok_and_i2_i3_violations),
    AETHER_TEST(leader_must_be_active),
    AETHER_TEST(stability),
    AETHER_TEST(single_ownership_claims),
    AETHER_TEST(one_leader_per_term),
    AETHER_TEST(one_leader_at_an_instant),
    AETHER_TEST(settled_and_each_way_it_is_not),
    AETHER_TEST(settled_needs_stable_shards),
    AETHER_TEST(balance_within_the_strategy_bound),
    AETHER_TEST(one_map_version),
    AETHER_TEST(progress_never_goes_back),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("invariants", NULL, NULL, tests);
