/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_lease.c: the leadership lease protocol over in-memory stores
 * (actors/lease.h): single winner, terms from create revisions, terms that
 * keep increasing across a lease-bucket re-creation, renewal and its send
 * time, loss to a successor, may_act arithmetic, reconcile after unknown
 * outcomes, conditional resign.
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "lease.h"

#define MS AETHER_NS_PER_MS
#define TTL_MS 1000u
#define MARGIN_MS 100u

static aether_sim_clock sim;
static aether_kv *lease_kv;
static aether_kv *state_kv;
static aether_rng rng;

/* The generation of the store the tests start from: an established
 * cluster's (a store without one makes the first acquire wait a ttl,
 * lease.h step 2c; the generation_* tests start from that). */
#define GEN0 UINT64_C(0x0123456789abcdef)

static void seed_generation(void)
{
    uint64_t rev;
    CU_ASSERT_EQUAL_FATAL(aether_kv_create(state_kv, "generation", "0123456789abcdef", 16, &rev,
                                           NULL),
                          AETHER_OK);
}

static void stores_up(void)
{
    aether_sim_clock_init(&sim, 5000 * MS, 0);
    aether_rng_seed(&rng, 7);
    aether_kv_mem_config lc = {.name = "lease", .ttl_ms = TTL_MS, .clock = &sim.base, .rng = &rng};
    aether_kv_mem_config sc = {.name = "state", .ttl_ms = 0, .clock = &sim.base, .rng = &rng};
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&lc, &lease_kv, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&sc, &state_kv, NULL), AETHER_OK);
    seed_generation();
}

static void stores_down(void)
{
    aether_kv_destroy(lease_kv);
    aether_kv_destroy(state_kv);
    lease_kv = state_kv = NULL;
}

static aether_lease_config node_cfg(const char *id)
{
    aether_lease_config cfg = {
        .lease_kv = lease_kv,
        .state_kv = state_kv,
        .clock = &sim.base,
        .ttl_ms = TTL_MS,
        .safety_margin_ms = MARGIN_MS,
    };
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr(id, &cfg.self, NULL), AETHER_OK);
    return cfg;
}

static aether_term recorded(const aether_lease_config *cfg)
{
    aether_term t;
    uint64_t rev;
    CU_ASSERT_EQUAL_FATAL(aether_lease_recorded_term(cfg, &t, &rev, NULL), AETHER_OK);
    return t;
}

static void test_acquire_term_is_create_revision(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held h;
    aether_err err = {0};
    /* Something else was written first: the term is the bucket revision. */
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(lease_kv, "noise", "x", 1, &r, NULL), AETHER_OK);
    uint64_t t0 = sim.now_ns;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, &err), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 2);
    CU_ASSERT_EQUAL(h.revision, 2);
    CU_ASSERT_TRUE(aether_node_id_equal(&h.lease.leader, &a.self));
    CU_ASSERT_EQUAL(h.lease.acquired_at_ns, t0);
    CU_ASSERT_EQUAL(h.lease.renewed_at_ns, t0);
    CU_ASSERT_EQUAL(recorded(&a), 2);
    CU_ASSERT_TRUE(aether_lease_may_act(&h.lease, sim.now_ns, MARGIN_MS));
    /* Followers read who holds it. */
    aether_lease_value v;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(v.leader.str, "node-a");
    CU_ASSERT_EQUAL(v.ttl_ms, TTL_MS);
    CU_ASSERT_EQUAL(v.nonce, h.nonce);
    CU_ASSERT_EQUAL(r, 2);
    stores_down();
}

static void test_two_contenders_one_wins(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, &err), AETHER_EEXIST);
    CU_ASSERT_EQUAL(hb.lease.term, AETHER_TERM_NONE);
    CU_ASSERT_FALSE(aether_lease_may_act(&hb.lease, sim.now_ns, MARGIN_MS));
    /* Still one holder after the loser's attempt; the record is the winner's. */
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(v.leader.str, "node-a");
    CU_ASSERT_EQUAL(recorded(&a), ha.lease.term);
    /* Even the same node id, as a new incarnation (new nonce), loses. */
    aether_lease_held ha2;
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &ha2, NULL), AETHER_EEXIST);
    stores_down();
}

/* A clock that moves 1 ms every time it is read: tells reads apart. */
typedef struct tick_clock {
    aether_clock base;
    uint64_t now;
} tick_clock;

static uint64_t tick_now(aether_clock *c)
{
    tick_clock *t = (tick_clock *)c;
    t->now += MS;
    return t->now;
}

static uint64_t tick_wall(aether_clock *c)
{
    (void)c;
    return 0;
}

static const aether_clock_ops tick_ops = {tick_now, tick_wall};

static void test_renew_keeps_term_uses_send_time(void)
{
    tick_clock tc = {.base = {&tick_ops}, .now = 0};
    aether_rng_seed(&rng, 3);
    aether_kv_mem_config lc = {.name = "lease", .ttl_ms = TTL_MS, .clock = &tc.base};
    aether_kv_mem_config sc = {.name = "state", .clock = &tc.base};
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&lc, &lease_kv, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&sc, &state_kv, NULL), AETHER_OK);
    seed_generation();
    aether_lease_config a = node_cfg("node-a");
    a.clock = &tc.base;
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    aether_term term = h.lease.term;
    uint64_t acquired = h.lease.acquired_at_ns;
    for (int i = 0; i < 3; i++) {
        uint64_t before = tc.now;
        uint64_t rev = h.revision;
        CU_ASSERT_EQUAL_FATAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_OK);
        /* The renewal's own read, before the store's: send time, not reply time. */
        CU_ASSERT_EQUAL(h.lease.renewed_at_ns, before + MS);
        CU_ASSERT_TRUE(h.lease.renewed_at_ns < tc.now);
        CU_ASSERT_EQUAL(h.lease.term, term);
        CU_ASSERT_EQUAL(h.lease.acquired_at_ns, acquired);
        CU_ASSERT_TRUE(h.revision > rev);
    }
    /* The renewed value names the term for followers. */
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(v.term, term);
    CU_ASSERT_EQUAL(r, h.revision);
    stores_down();
}

static void test_renew_after_takeover_conflicts(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    /* a is paused past its TTL; the store expires the key silently. */
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    CU_ASSERT_FALSE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > ha.lease.term);
    CU_ASSERT_EQUAL(recorded(&b), hb.lease.term);
    /* a wakes up and renews: refused, and it must not act. Its holding is
     * unchanged: it still names the term it lost (for LeadershipLost). */
    aether_lease_held before = ha;
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &ha, &err), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(memcmp(&ha, &before, sizeof(ha)), 0);
    CU_ASSERT_FALSE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_TRUE(aether_lease_may_act(&hb.lease, sim.now_ns, MARGIN_MS));
    /* a's resign cannot delete b's lease (conditional delete). */
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_ECONFLICT);
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(v.leader.str, "node-b");
    CU_ASSERT_EQUAL(aether_lease_renew(&b, &hb, &hb, NULL), AETHER_OK);
    stores_down();
}

static void test_may_act_boundary(void)
{
    aether_lease l = {.term = 5, .ttl_ms = TTL_MS, .safety_margin_ms = MARGIN_MS,
                      .acquired_at_ns = 1000, .renewed_at_ns = 2000};
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("node-a", &l.leader, NULL), AETHER_OK);
    uint64_t deadline = 2000 + (TTL_MS - MARGIN_MS) * MS;
    CU_ASSERT_TRUE(aether_lease_may_act(&l, 2000, MARGIN_MS));
    CU_ASSERT_TRUE(aether_lease_may_act(&l, deadline - 1, MARGIN_MS));
    CU_ASSERT_FALSE(aether_lease_may_act(&l, deadline, MARGIN_MS)); /* strict */
    CU_ASSERT_FALSE(aether_lease_may_act(&l, deadline + 1, MARGIN_MS));
    /* Agrees with node.h on the lease's own margin. */
    CU_ASSERT_EQUAL(aether_lease_may_act(&l, deadline - 1, l.safety_margin_ms),
                    aether_lease_valid_at(&l, deadline - 1));
    CU_ASSERT_EQUAL(aether_lease_may_act(&l, deadline, l.safety_margin_ms),
                    aether_lease_valid_at(&l, deadline));
    /* Margin 0: up to the TTL itself; a larger margin: earlier. */
    CU_ASSERT_TRUE(aether_lease_may_act(&l, 2000 + TTL_MS * MS - 1, 0));
    CU_ASSERT_FALSE(aether_lease_may_act(&l, 2000 + TTL_MS * MS, 0));
    CU_ASSERT_FALSE(aether_lease_may_act(&l, 2000 + 1 * MS, TTL_MS - 1));
    CU_ASSERT_TRUE(aether_lease_may_act(&l, 2000 + 1 * MS - 1, TTL_MS - 1));
    /* No term, no acting. */
    l.term = AETHER_TERM_NONE;
    CU_ASSERT_FALSE(aether_lease_may_act(&l, 2000, MARGIN_MS));
    /* A large renewed_at does not wrap. */
    l.term = 1;
    l.renewed_at_ns = UINT64_MAX - (TTL_MS - MARGIN_MS) * MS;
    CU_ASSERT_TRUE(aether_lease_may_act(&l, UINT64_MAX - 1, MARGIN_MS));
    CU_ASSERT_FALSE(aether_lease_may_act(&l, UINT64_MAX, MARGIN_MS));
}

static void test_wipe_keeps_terms_increasing(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b"), c = node_cfg("node-c");
    aether_lease_held ha, hb, hc;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(ha.lease.term, 1);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_OK); /* marker at 5 */
    CU_ASSERT_EQUAL(ha.lease.term, 1); /* a value: the caller drops it, resign does not */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(hb.lease.term, 6);
    CU_ASSERT_EQUAL(recorded(&b), 6);
    aether_sim_clock_advance_ns(&sim, 2 * TTL_MS * MS); /* b dies */

    /* The lease bucket is deleted and re-created: revisions restart at 1. */
    aether_kv_mem_wipe(lease_kv);
    aether_err err = {0};
    /* Step 2b: created at revision 1 <= 6, so b may still act until its
     * deadline: the key (term 0) is left to expire; nobody else gets it. */
    CU_ASSERT_EQUAL(aether_lease_acquire(&c, &rng, &hc, &err), AETHER_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "re-created"));
    CU_ASSERT_EQUAL(hc.lease.term, AETHER_TERM_NONE);
    CU_ASSERT_FALSE(aether_lease_may_act(&hc.lease, sim.now_ns, MARGIN_MS));
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&c, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(v.term, AETHER_TERM_NONE);
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_EEXIST);
    /* A ttl later it has expired; having waited, c goes on. */
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    c.restart_waited = true;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&c, &rng, &hc, &err), AETHER_OK);
    /* Created at revision 2, advanced with updates 3..7: the term is 7. */
    CU_ASSERT_EQUAL(hc.lease.term, 7);
    CU_ASSERT_TRUE(hc.lease.term > hb.lease.term);
    CU_ASSERT_EQUAL(hc.revision, 7);
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(lease_kv), 7);
    CU_ASSERT_EQUAL(recorded(&c), 7);
    CU_ASSERT_TRUE(aether_lease_may_act(&hc.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_EQUAL(aether_lease_renew(&c, &hc, &hc, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(hc.lease.term, 7);
    stores_down();
}

static void test_advance_budget_keeps_progress(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    /* A record far above the fresh bucket, as after a wipe of a busy one. */
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "term", "10", 2, &r, NULL), AETHER_OK);
    a.advance_steps_max = 4;
    b.advance_steps_max = 4;
    a.restart_waited = b.restart_waited = true; /* step 2b: waited already */
    aether_lease_held h;
    aether_err err = {0};
    /* create 1 + 4 updates = 5 <= 10: out of budget, key released (marker 6). */
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, &err), AETHER_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "recorded term 10"));
    CU_ASSERT_EQUAL(h.lease.term, AETHER_TERM_NONE);
    aether_lease_value v;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(recorded(&a), 10);
    /* The next campaign (another node) continues from there: create over the
     * marker (7), updates 8..11 > 10. */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &h, &err), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 11);
    CU_ASSERT_EQUAL(recorded(&b), 11);
    stores_down();
}

static void test_wide_gap_compacts(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    /* A lease bucket re-created under a record of a long-lived cluster (one
     * revision per renewal): 100000 updates would be needed, far above the
     * default budget; the compaction crosses the gap at once. */
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "term", "100000", 6, &r, NULL), AETHER_OK);
    a.restart_waited = b.restart_waited = true; /* step 2b: waited already */
    aether_lease_held h;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, &err), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 100001);
    CU_ASSERT_EQUAL(h.revision, 100001);
    CU_ASSERT_EQUAL(recorded(&a), 100001);
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(lease_kv), 100001);
    CU_ASSERT_TRUE(aether_lease_may_act(&h.lease, sim.now_ns, MARGIN_MS));
    aether_lease_value v;
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r, 100001);
    CU_ASSERT_TRUE(aether_node_id_equal(&v.leader, &a.self));
    /* Another candidate meanwhile only finds it held. */
    aether_lease_held hb;
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_EEXIST);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 100001);
    stores_down();
}

/* A state store that runs a hook once, just before its first get: stands
 * for a candidate stalled between its create and reading the record (a
 * SIGSTOP, a slow reply on a loaded machine). Everything else goes to the
 * in-memory state store. */
typedef struct stall_kv {
    aether_kv base;
    aether_kv *inner;
    void (*hook)(void);
} stall_kv;

static aether_kv *stall_inner(aether_kv *kv) { return ((stall_kv *)kv)->inner; }

static aether_status stall_create(aether_kv *kv, const char *key, const void *value, size_t len,
                                  uint64_t *rev_out, aether_err *err)
{
    return aether_kv_create(stall_inner(kv), key, value, len, rev_out, err);
}

static aether_status stall_update(aether_kv *kv, const char *key, const void *value, size_t len,
                                  uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    return aether_kv_update(stall_inner(kv), key, value, len, expected, rev_out, err);
}

static aether_status stall_del(aether_kv *kv, const char *key, uint64_t expected,
                               uint64_t *rev_out, aether_err *err)
{
    return aether_kv_delete(stall_inner(kv), key, expected, rev_out, err);
}

static aether_status stall_get(aether_kv *kv, const char *key, aether_kv_entry *out,
                               aether_err *err)
{
    stall_kv *st = (stall_kv *)kv;
    void (*hook)(void) = st->hook;
    st->hook = NULL;
    if (hook != NULL)
        hook();
    return aether_kv_get(st->inner, key, out, err);
}

static aether_status stall_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn,
                                 void *arg, aether_kv_watcher **out, aether_err *err)
{
    return aether_kv_watch(stall_inner(kv), pattern, fn, arg, out, err);
}

static void stall_unwatch(aether_kv *kv, aether_kv_watcher *w) { aether_kv_unwatch(stall_inner(kv), w); }
static uint64_t stall_ttl_ms(aether_kv *kv) { return aether_kv_ttl_ms(stall_inner(kv)); }
static void stall_destroy(aether_kv *kv) { (void)kv; /* the inner store is the test's */ }

static const aether_kv_ops stall_ops = {
    .create = stall_create, .update = stall_update, .del = stall_del, .get = stall_get,
    .watch = stall_watch, .unwatch = stall_unwatch, .ttl_ms = stall_ttl_ms,
    .destroy = stall_destroy,
};

static aether_lease_held stall_b_held;
static aether_status stall_b_status;

/* While node-a is stalled after its create (revision 1): that lease
 * expires, node-b leads a term and renews it 14 times (revisions 2..16), is
 * cut off, its lease expires, and it wins again after: term 17, recorded,
 * its lease at revision 17 (not renewed yet). The chaos run of seed 42 had
 * this shape: n5 led 128 and renewed 129..141, then won 142. */
static void stall_hook(void)
{
    aether_lease_config b = node_cfg("node-b");
    aether_sim_clock_advance_ns(&sim, 2 * TTL_MS * MS);
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 2);
    for (int i = 0; i < 14; i++) /* bounded: 14 renewals */
        CU_ASSERT_EQUAL(aether_lease_renew(&b, &h, &h, NULL), AETHER_OK);
    aether_sim_clock_advance_ns(&sim, 2 * TTL_MS * MS);
    stall_b_status = aether_lease_acquire(&b, &rng, &stall_b_held, NULL);
}

/* Issue 12 (tools/chaos --seed 42: "two leaders acting at once", terms 142
 * and 143): a candidate whose create is far below the record it then reads
 * (stalled, not a re-created bucket) and that had waited out an earlier
 * restart (restart_waited) crossed the gap by compacting the lease bucket.
 * Compacting to record + 1 removed the live lease of the record's holder
 * (its key at exactly that revision until its first renewal) without a
 * revision of its own, and the candidate won the next one: two holders. */
static void test_stalled_candidate_keeps_a_live_lease(void)
{
    stores_up();
    stall_kv stall = {.base = {&stall_ops}, .inner = state_kv, .hook = stall_hook};
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    a.state_kv = &stall.base;
    a.restart_waited = true; /* an earlier campaign waited out a restart */
    stall_b_status = AETHER_EINVAL;
    aether_lease_held ha;
    aether_err err = {0};
    aether_status s = aether_lease_acquire(&a, &rng, &ha, &err);
    CU_ASSERT_EQUAL_FATAL(stall_b_status, AETHER_OK);
    CU_ASSERT_EQUAL(stall_b_held.lease.term, 17);
    /* node-b holds term 17 and may act: node-a must not win. */
    CU_ASSERT_TRUE(aether_lease_may_act(&stall_b_held.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_EQUAL(s, AETHER_EEXIST);
    CU_ASSERT_FALSE(s == AETHER_OK && aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r, 17);
    CU_ASSERT_EQUAL(v.nonce, stall_b_held.nonce);
    CU_ASSERT_EQUAL(recorded(&b), 17);
    CU_ASSERT_EQUAL(aether_lease_renew(&b, &stall_b_held, &stall_b_held, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(stall_b_held.lease.term, 17);
    stores_down();
}

/* While node-a is between its create and reading the record: node-b's
 * create lands on top of node-a's key, at the next revision, as if the
 * store had let two creates over one marker through (nats-server 2.9 on
 * R3 buckets, issue 12). */
static aether_lease_held overtaken_a_key;
static void overtake_hook(void)
{
    aether_lease_value v;
    uint64_t rev;
    aether_lease_config b = node_cfg("node-b");
    CU_ASSERT_EQUAL_FATAL(aether_lease_read(&b, &v, &rev, NULL), AETHER_OK);
    overtaken_a_key.revision = rev;
    aether_lease_value bv = {.leader = b.self, .ttl_ms = TTL_MS, .term = AETHER_TERM_NONE,
                             .nonce = 0xb0b};
    char buf[AETHER_LEASE_VALUE_LEN_MAX];
    size_t len;
    CU_ASSERT_EQUAL_FATAL(aether_lease_value_encode(&bv, buf, sizeof(buf), &len, NULL), AETHER_OK);
    uint64_t r2;
    CU_ASSERT_EQUAL_FATAL(aether_kv_update(lease_kv, "leader", buf, len, rev, &r2, NULL), AETHER_OK);
}

/* A store that lets a second create through (above) must not make two
 * leaders: the candidate whose write was overtaken checks, after recording
 * its term and before its first act, that the key still holds its write
 * (lease.h step 5), and steps back. */
static void test_overtaken_create_does_not_lead(void)
{
    stores_up();
    stall_kv stall = {.base = {&stall_ops}, .inner = state_kv, .hook = overtake_hook};
    aether_lease_config a = node_cfg("node-a");
    a.state_kv = &stall.base;
    aether_lease_held ha;
    aether_err err = {0};
    aether_status s = aether_lease_acquire(&a, &rng, &ha, &err);
    CU_ASSERT_EQUAL(overtaken_a_key.revision, 1);
    CU_ASSERT_EQUAL(s, AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(ha.lease.term, AETHER_TERM_NONE);
    CU_ASSERT_FALSE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    /* node-b's write is untouched (node-a's release was conditional). */
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r, 2);
    CU_ASSERT_EQUAL(v.nonce, 0xb0b);
    stores_down();
}

static void test_record_again_after_state_loss(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(recorded(&a), h.lease.term);
    bool rewritten = true;
    /* Intact: nothing written. */
    CU_ASSERT_EQUAL(aether_lease_record_again(&a, &h, &rewritten, NULL), AETHER_OK);
    CU_ASSERT_FALSE(rewritten);
    /* The state bucket deleted and re-created empty: the record comes back. */
    aether_kv_mem_wipe(state_kv);
    CU_ASSERT_EQUAL(recorded(&a), AETHER_TERM_NONE);
    CU_ASSERT_EQUAL(aether_lease_record_again(&a, &h, &rewritten, NULL), AETHER_OK);
    CU_ASSERT_TRUE(rewritten);
    CU_ASSERT_EQUAL(recorded(&a), h.lease.term);
    aether_term t1 = h.lease.term;
    /* So a later loss of the lease bucket still gives a higher term. */
    aether_sim_clock_advance_ns(&sim, 2 * TTL_MS * MS);
    aether_kv_mem_wipe(lease_kv);
    aether_lease_held hb;
    b.restart_waited = true; /* step 2b: waited already */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > t1);
    /* A deposed holder never lowers the record. */
    CU_ASSERT_EQUAL(aether_lease_record_again(&a, &h, &rewritten, NULL), AETHER_OK);
    CU_ASSERT_FALSE(rewritten);
    CU_ASSERT_EQUAL(recorded(&a), hb.lease.term);
    stores_down();
}

static void test_term_floor_when_no_record(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    uint64_t highest = 7; /* what a node that lived through a store loss has seen */
    a.term_floor = &highest;
    b.term_floor = &highest;
    aether_lease_held h;
    /* Both buckets lost: no record; the floor stands in, and the lease of
     * term 7 may still be acted on for a ttl (step 2b). */
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_ESTALE);
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS); /* the held key expires */
    a.restart_waited = true;
    /* Then the winner continues above its floor. */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 8);
    CU_ASSERT_EQUAL(h.floor_used, 7);
    CU_ASSERT_EQUAL(recorded(&a), 8);
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &h, NULL), AETHER_OK);
    /* A record exists: it is the authority, the floor does not count. */
    highest = 100;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_TRUE(h.lease.term > 8 && h.lease.term < 100);
    CU_ASSERT_EQUAL(h.floor_used, AETHER_TERM_NONE);
    CU_ASSERT_EQUAL(aether_lease_resign(&b, &h, NULL), AETHER_OK);
    /* An absurd floor (a forged term that slipped in) is not believed. */
    aether_kv_mem_wipe(state_kv);
    aether_kv_mem_wipe(lease_kv);
    highest = AETHER_LEASE_TERM_FLOOR_MAX;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 1);
    CU_ASSERT_EQUAL(h.floor_used, AETHER_TERM_NONE);
    stores_down();
}

static void test_reconcile_unknown_applied(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    uint64_t old_rev = h.revision, old_renewed = h.lease.renewed_at_ns;
    aether_sim_clock_advance_ns(&sim, 250 * MS);
    uint64_t sent = sim.now_ns;
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 1);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_EUNKNOWN);
    /* Maybe: nothing believed yet. */
    CU_ASSERT_TRUE(h.pending);
    CU_ASSERT_EQUAL(h.revision, old_rev);
    CU_ASSERT_EQUAL(h.lease.renewed_at_ns, old_renewed);
    aether_sim_clock_advance_ns(&sim, 10 * MS);
    /* A failed re-read keeps it pending. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_GET, AETHER_KV_FAULT_UNAVAILABLE, 1);
    bool applied = true;
    CU_ASSERT_EQUAL(aether_lease_reconcile(&a, &h, &h, &applied, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_TRUE(h.pending);
    CU_ASSERT_EQUAL(h.lease.renewed_at_ns, old_renewed);
    CU_ASSERT_EQUAL(aether_lease_reconcile(&a, &h, &h, &applied, NULL), AETHER_OK);
    CU_ASSERT_TRUE(applied);
    CU_ASSERT_FALSE(h.pending);
    CU_ASSERT_TRUE(h.revision > old_rev);
    CU_ASSERT_EQUAL(h.lease.renewed_at_ns, sent); /* the send time of the maybe-renewal */
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_OK);
    stores_down();
}

static void test_reconcile_unknown_not_applied(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held h, hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    uint64_t old_rev = h.revision, old_renewed = h.lease.renewed_at_ns;
    aether_sim_clock_advance_ns(&sim, 250 * MS);
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED,
                            1);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_EUNKNOWN);
    bool applied = true;
    CU_ASSERT_EQUAL(aether_lease_reconcile(&a, &h, &h, &applied, NULL), AETHER_OK);
    CU_ASSERT_FALSE(applied);
    CU_ASSERT_FALSE(h.pending);
    CU_ASSERT_EQUAL(h.revision, old_rev);
    CU_ASSERT_EQUAL(h.lease.renewed_at_ns, old_renewed); /* the old deadline stands */
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_OK);

    /* Not applied, and meanwhile the lease expired and b took it: lost. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED,
                            1);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_EUNKNOWN);
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    aether_err err = {0};
    aether_lease_held lost = h;
    CU_ASSERT_EQUAL(aether_lease_reconcile(&a, &h, &h, &applied, &err), AETHER_ECONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "another node"));
    CU_ASSERT_EQUAL(memcmp(&h, &lost, sizeof(h)), 0); /* a failed call changes nothing */
    CU_ASSERT_FALSE(applied);
    CU_ASSERT_FALSE(aether_lease_may_act(&h.lease, sim.now_ns, MARGIN_MS));
    stores_down();
}

/* The lease key deleted under a live holder (an operator, a store
 * accident): the renewal fails, and the holding it returns still names the
 * term, so the holder can say which leadership ended. */
static void test_renew_after_delete_keeps_the_lost_term(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    aether_term term = h.lease.term;
    CU_ASSERT_FATAL(term != AETHER_TERM_NONE);
    CU_ASSERT_EQUAL_FATAL(aether_kv_delete(lease_kv, AETHER_LEASE_KEY_DEFAULT, 0, NULL, NULL), AETHER_OK);
    aether_sim_clock_advance_ns(&sim, 250 * MS);
    aether_lease_held next, before = h;
    memset(&next, 0xab, sizeof(next));
    aether_status st = aether_lease_renew(&a, &h, &next, NULL);
    CU_ASSERT(st == AETHER_ECONFLICT || st == AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(memcmp(&h, &before, sizeof(h)), 0);
    CU_ASSERT_EQUAL(memcmp(&next, &h, sizeof(h)), 0);
    CU_ASSERT_EQUAL(next.lease.term, term);
    /* Resigning the lost lease deletes nothing of anyone else's. */
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &h, NULL), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(h.lease.term, term);
    stores_down();
}

static void test_acquire_under_faults(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held h;
    /* Unavailable: nothing acquired, nothing left behind. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_CREATE, AETHER_KV_FAULT_UNAVAILABLE, 1);
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(lease_kv), 0);
    /* Unknown but not applied: re-read shows nothing, so not acquired. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_CREATE, AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED,
                            1);
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_EUNAVAILABLE);
    /* Unknown but applied: re-read finds our nonce, we hold it. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_CREATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 1);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(h.lease.term, 1);
    CU_ASSERT_EQUAL(recorded(&a), 1);
    /* The state store down after winning the key: the key is left to
     * expire, never acted on (a release would move the bucket counter
     * towards the record: lease.h, "Any failure"). */
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &h, NULL), AETHER_OK);
    uint64_t before = aether_kv_mem_last_revision(lease_kv);
    aether_kv_mem_fail_next(state_kv, AETHER_KV_CALL_GET, AETHER_KV_FAULT_UNAVAILABLE, 1);
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_EUNAVAILABLE);
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(v.term, AETHER_TERM_NONE);
    CU_ASSERT_EQUAL(r, before + 1); /* our create, nothing after it */
    CU_ASSERT_FALSE(aether_lease_may_act(&h.lease, sim.now_ns, MARGIN_MS));
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS); /* it expires */
    /* The term record timing out but applied still counts as recorded. */
    aether_kv_mem_fail_next(state_kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 1);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(recorded(&a), h.lease.term);
    stores_down();
}

typedef struct deletes_seen {
    unsigned deletes;
    uint64_t revision;
} deletes_seen;

static void count_deletes(void *arg, const aether_kv_event *ev)
{
    deletes_seen *d = arg;
    if (ev->op == AETHER_KV_OP_DELETE) {
        d->deletes++;
        d->revision = ev->revision;
    }
}

static void test_resign_fires_delete_event(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    deletes_seen seen = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(lease_kv, "leader", count_deletes, &seen, &w, NULL),
                          AETHER_OK);
    aether_lease_held h;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_OK);
    aether_lease_held before = h;
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &h, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(memcmp(&h, &before, sizeof(h)), 0); /* the caller drops the holding */
    /* The key is gone: the resigned holding can no longer be renewed. */
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &h, &h, NULL), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(seen.deletes, 1); /* followers watching the key learn at once */
    CU_ASSERT_EQUAL(seen.revision, 2);
    /* Expiry, by contrast, is silent (nats-server 2.9): followers must probe. */
    aether_lease_held h2;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h2, NULL), AETHER_OK);
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    CU_ASSERT_EQUAL(seen.deletes, 1);
    aether_kv_unwatch(lease_kv, w);
    /* A follower campaigns at once, without waiting for the TTL. */
    aether_lease_held hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > h2.lease.term);
    stores_down();
}


static uint64_t stored_generation(const aether_lease_config *cfg)
{
    uint64_t g, rev;
    CU_ASSERT_EQUAL_FATAL(aether_lease_generation(cfg, &g, &rev, NULL), AETHER_OK);
    return g;
}

/* GENERATION (lease.h): the first acquire creates the state bucket's
 * generation, later ones keep it, and renewals say it in the lease value. */
static void test_generation_created_once(void)
{
    stores_up();
    aether_kv_mem_wipe(state_kv); /* a brand-new cluster: no generation yet */
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    CU_ASSERT_EQUAL(stored_generation(&a), 0);
    /* Step 2c: the generation is born, but nobody acts in it for a ttl:
     * the key stays (term 0) and keeps everyone out until it expires. */
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &ha, &err), AETHER_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "began generation"));
    uint64_t g = stored_generation(&a);
    CU_ASSERT_NOT_EQUAL(g, 0);
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_EEXIST);
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    /* Expired: whoever comes next finds the generation and goes on. */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(stored_generation(&a), g);
    CU_ASSERT_EQUAL(ha.generation, g);
    CU_ASSERT_FALSE(ha.generation_created);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &ha, NULL), AETHER_OK);
    aether_lease_value v;
    uint64_t r;
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(v.generation, g);
    CU_ASSERT_EQUAL(v.term, ha.lease.term);
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(hb.generation, g);
    CU_ASSERT_FALSE(hb.generation_created);
    CU_ASSERT_TRUE(hb.lease.term > ha.lease.term);
    /* Having waited a ttl (restart_waited), the creator goes on at once. */
    aether_kv_mem_wipe(lease_kv);
    aether_kv_mem_wipe(state_kv);
    aether_sim_clock_advance_ns(&sim, 2 * TTL_MS * MS);
    aether_lease_config c = node_cfg("node-c");
    c.restart_waited = true;
    aether_lease_held hc;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&c, &rng, &hc, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hc.generation_created);
    CU_ASSERT_NOT_EQUAL(hc.generation, g);
    stores_down();
}

/* The state bucket lost alone under a live leader: it writes back the same
 * generation, then its term; the next leader continues both. */
static void test_generation_kept_when_state_lost_alone(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    uint64_t g = ha.generation;
    aether_kv_mem_wipe(state_kv);
    bool rewritten = false;
    CU_ASSERT_EQUAL(aether_lease_record_again(&a, &ha, &rewritten, NULL), AETHER_OK);
    CU_ASSERT_TRUE(rewritten);
    CU_ASSERT_EQUAL(stored_generation(&a), g);
    CU_ASSERT_EQUAL(recorded(&a), ha.lease.term);
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(hb.generation, g);
    CU_ASSERT_TRUE(hb.lease.term > ha.lease.term);
    stores_down();
}

/* Both buckets lost and every node restarted (no floor): terms start low
 * again, as lease.h says they may, but in a new generation, so
 * (generation, term) does not repeat; and the new one is acted on only once
 * the old holder's deadline has passed. A deposed holder that tries to write its record back into the
 * new state bucket is told its generation is over. */
static void test_generation_new_when_both_lost(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(ha.lease.term, 1);
    uint64_t g1 = ha.generation;
    CU_ASSERT_EQUAL(g1, GEN0);
    aether_kv_mem_wipe(lease_kv);
    aether_kv_mem_wipe(state_kv);
    /* b never saw a term (no floor): it cannot know that a holds term 1
     * until its deadline; it begins a generation and waits (step 2c). */
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, &err), AETHER_ESTALE);
    CU_ASSERT_TRUE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS)); /* a may still act */
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    CU_ASSERT_FALSE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    b.restart_waited = true;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    /* Revision 2 (the expired key was 1): close to a's term 1, and a
     * fresh bucket could give exactly 1; only the pair is unique. */
    CU_ASSERT_TRUE(hb.lease.term <= 2);
    CU_ASSERT_NOT_EQUAL(hb.generation, g1);
    CU_ASSERT_NOT_EQUAL(hb.generation, 0);
    CU_ASSERT_FALSE(hb.generation_created); /* the waiting acquire created it */
    CU_ASSERT_EQUAL(stored_generation(&b), hb.generation);
    /* a's renewal fails in the new lease bucket; its record is refused. */
    aether_kv_mem_wipe(state_kv); /* make its record look lost again */
    uint64_t rev;
    char text[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
    aether_lease_generation_format(hb.generation, text, sizeof(text));
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "generation", text, strlen(text), &rev, NULL),
                    AETHER_OK);
    bool rewritten = true;
    CU_ASSERT_EQUAL(aether_lease_record_again(&a, &ha, &rewritten, &err), AETHER_ESTALE);
    CU_ASSERT_FALSE(rewritten);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "new one"));
    CU_ASSERT_EQUAL(recorded(&a), AETHER_TERM_NONE);
    stores_down();
}

/* A state bucket from before generations (a record, no generation) gets
 * one at the next acquire, and its record still counts. */
static void test_generation_upgrade_keeps_record(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held h;
    uint64_t rev;
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "term", "30", 2, &rev, NULL), AETHER_OK);
    aether_err err = {0};
    a.restart_waited = true; /* the lease bucket's counter is below 30 */
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &h, &err), AETHER_OK);
    CU_ASSERT_TRUE(h.lease.term > 30);
    CU_ASSERT_NOT_EQUAL(h.generation, 0);
    CU_ASSERT_EQUAL(stored_generation(&a), h.generation);
    /* Junk under the generation key is refused, not guessed at. */
    aether_kv_mem_wipe(state_kv);
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "generation", "0000000000000000", 16, &rev, NULL),
                    AETHER_OK);
    uint64_t g;
    CU_ASSERT_EQUAL(aether_lease_generation(&a, &g, &rev, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(g, 0);
    stores_down();
}

/* Step 2c whatever the floor: b saw term 1, but the re-created lease
 * bucket is already past it (revision 2), so step 2b alone would let b act
 * at once while a, the holder of term 1, still may. */
static void test_generation_birth_waits_above_floor(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(ha.lease.term, 1);
    aether_kv_mem_wipe(lease_kv);
    aether_kv_mem_wipe(state_kv);
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(lease_kv, "noise", "x", 1, &r, NULL), AETHER_OK);
    uint64_t floor = 1; /* b saw term 1 */
    b.term_floor = &floor;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, &err), AETHER_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "began generation"));
    CU_ASSERT_TRUE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_FALSE(aether_lease_may_act(&hb.lease, sim.now_ns, MARGIN_MS));
    /* A ttl later a has stopped: b goes on in the generation it began. */
    aether_sim_clock_advance_ns(&sim, TTL_MS * MS);
    b.restart_waited = true;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > floor);
    CU_ASSERT_NOT_EQUAL(hb.generation, ha.generation);
    stores_down();
}

/* The lease bucket lost under a live holder while the state store is out:
 * candidates that cannot read the record keep their keys (left to expire)
 * instead of releasing them, so the bucket counter cannot pass the record
 * in a few tries and let a candidate act beside the holder (step 2b's
 * evidence is a revision at or below the record). */
static void test_state_outage_keeps_restart_evidence(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b"), c = node_cfg("node-c");
    aether_lease_held ha, hb, hc;
    uint64_t r;
    for (int i = 0; i < 3; i++) { /* bounded: 3 */
        char k[8];
        snprintf(k, sizeof(k), "n%d", i);
        CU_ASSERT_EQUAL(aether_kv_create(lease_kv, k, "x", 1, &r, NULL), AETHER_OK);
    }
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(ha.lease.term, 4);
    aether_kv_mem_wipe(lease_kv);
    for (int i = 0; i < 4; i++) { /* bounded: 4 tries while the state store is out */
        aether_kv_mem_fail_next(state_kv, AETHER_KV_CALL_GET, AETHER_KV_FAULT_UNAVAILABLE, 1);
        CU_ASSERT_NOT_EQUAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
        aether_kv_mem_clear_faults(state_kv);
    }
    CU_ASSERT_TRUE(aether_kv_mem_last_revision(lease_kv) <= 1);
    /* The store back, a still within its deadline: nobody else acts. */
    CU_ASSERT_TRUE(aether_lease_may_act(&ha.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_NOT_EQUAL(aether_lease_acquire(&c, &rng, &hc, NULL), AETHER_OK);
    CU_ASSERT_FALSE(aether_lease_may_act(&hc.lease, sim.now_ns, MARGIN_MS));
    stores_down();
}

/* Both buckets lost; a held term 1 and stopped, but b has held term 2
 * since, which a never heard of: a's floor (1) is its own stopped term, yet
 * it must wait (step 2c), for b may still act. */
static void test_generation_own_stopped_floor_waits(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a"), b = node_cfg("node-b");
    aether_lease_held ha, hb;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > ha.lease.term);
    aether_kv_mem_wipe(lease_kv);
    aether_kv_mem_wipe(state_kv);
    uint64_t floor = ha.lease.term; /* a knows only its own term */
    a.term_floor = &floor;
    a.own_stopped_term = ha.lease.term;
    aether_lease_held again;
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &again, NULL), AETHER_ESTALE);
    CU_ASSERT_TRUE(aether_lease_may_act(&hb.lease, sim.now_ns, MARGIN_MS));
    CU_ASSERT_FALSE(aether_lease_may_act(&again.lease, sim.now_ns, MARGIN_MS));
    stores_down();
}

/* Revisions repeat across lives of the lease bucket: a holds its lease at
 * revision r; the bucket is lost and, in the new life, b's write lands at
 * the same r. A renewal or a resign naming r alone would take b's key
 * (aether-sim --soak --seed 100033 --duration 120 --extra-faults
 * misfit,twin,kv-loss-both,forge: n7's resign deleted n5's key of term 33
 * and n7 led term 35 beside it). Both must see the key is not a's. */
static void test_renew_and_resign_check_the_value(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_lease_held ha, next;
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&a, &rng, &ha, NULL), AETHER_OK);
    aether_kv_mem_wipe(lease_kv);
    uint64_t r = 0;
    for (uint64_t i = 1; i < ha.revision; i++) /* bounded: ha.revision - 1 markers */
        CU_ASSERT_EQUAL_FATAL(aether_kv_delete(lease_kv, "filler", 0, NULL, NULL), AETHER_OK);
    aether_lease_value bv = {.ttl_ms = TTL_MS, .term = ha.lease.term, .nonce = ha.nonce ^ 1u,
                             .generation = ha.generation};
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr("node-b", &bv.leader, NULL), AETHER_OK);
    char buf[AETHER_LEASE_VALUE_LEN_MAX];
    size_t len;
    CU_ASSERT_EQUAL_FATAL(aether_lease_value_encode(&bv, buf, sizeof(buf), &len, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_kv_create(lease_kv, "leader", buf, len, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(r, ha.revision); /* the same number, another life */
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &next, &err), AETHER_ECONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "another node's write"));
    CU_ASSERT_EQUAL(next.lease.term, ha.lease.term); /* it still names the lost term */
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, &err), AETHER_ECONFLICT);
    aether_lease_value seen;
    uint64_t seen_rev;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &seen, &seen_rev, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(seen_rev, ha.revision); /* b's key untouched */
    CU_ASSERT_TRUE(aether_node_id_equal(&seen.leader, &bv.leader));
    /* A read that fails sends nothing: not renewed, the old deadline stands. */
    aether_kv_mem_fail_next(lease_kv, AETHER_KV_CALL_GET, AETHER_KV_FAULT_UNAVAILABLE, 1);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &next, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_FALSE(next.pending);
    stores_down();
}

static void test_config_and_value_checks(void)
{
    stores_up();
    aether_lease_config a = node_cfg("node-a");
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_lease_config_validate(&a, &err), AETHER_OK);
    aether_lease_config bad = a;
    bad.ttl_ms = 2000; /* differs from the bucket TTL */
    CU_ASSERT_EQUAL(aether_lease_config_validate(&bad, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bucket TTL"));
    bad = a;
    bad.state_kv = lease_kv; /* the term record would expire */
    CU_ASSERT_EQUAL(aether_lease_config_validate(&bad, &err), AETHER_EINVAL);
    bad = a;
    bad.safety_margin_ms = TTL_MS;
    CU_ASSERT_EQUAL(aether_lease_config_validate(&bad, &err), AETHER_EINVAL);
    bad = a;
    bad.lease_key = "bad key";
    CU_ASSERT_EQUAL(aether_lease_config_validate(&bad, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lease_key"));
    aether_lease_held h;
    CU_ASSERT_EQUAL(aether_lease_acquire(&bad, &rng, &h, NULL), AETHER_EINVAL);

    /* Value codec round trip and strictness. */
    aether_lease_value v = {.ttl_ms = 1000, .term = 42, .nonce = 0x9f86d081884c7d65ull};
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("node-a", &v.leader, NULL), AETHER_OK);
    char buf[AETHER_LEASE_VALUE_LEN_MAX];
    size_t len;
    CU_ASSERT_EQUAL(aether_lease_value_encode(&v, buf, sizeof(buf), &len, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(buf, "{\"leader\":\"node-a\",\"ttl_ms\":1000,\"term\":42,"
                                "\"nonce\":\"9f86d081884c7d65\"}");
    aether_lease_value back;
    CU_ASSERT_EQUAL(aether_lease_value_decode(buf, len, &back, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(memcmp(&back, &v, sizeof(v)), 0);
    /* With a generation: a fifth field, canonical, round trip. */
    v.generation = 0x5be0c2a1d7f3e944ull;
    CU_ASSERT_EQUAL(aether_lease_value_encode(&v, buf, sizeof(buf), &len, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(buf, "{\"leader\":\"node-a\",\"ttl_ms\":1000,\"term\":42,"
                                "\"nonce\":\"9f86d081884c7d65\",\"gen\":\"5be0c2a1d7f3e944\"}");
    CU_ASSERT_EQUAL(aether_lease_value_decode(buf, len, &back, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(memcmp(&back, &v, sizeof(v)), 0);
    const char *junk[] = {
        "", "[]", "{}", "not json",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"0000000000000000\","
        "\"gen\":\"0000000000000000\"}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"0000000000000000\","
        "\"gen\":7}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"0000000000000000\","
        "\"gen\":\"5be0c2a1d7f3e944\",\"x\":1}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"gen\":\"5be0c2a1d7f3e944\",\"x\":1}",
        "{\"leader\":\"a b\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"0000000000000000\"}",
        "{\"leader\":\"a\",\"ttl_ms\":0,\"term\":1,\"nonce\":\"0000000000000000\"}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":-1,\"nonce\":\"0000000000000000\"}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"xyz\"}",
        "{\"leader\":\"a\",\"ttl_ms\":1000,\"term\":1,\"nonce\":\"0000000000000000\",\"x\":1}",
        "{\"leader\":\"a\",\"leader\":\"b\",\"ttl_ms\":1000,\"term\":1}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        CU_ASSERT_EQUAL(aether_lease_value_decode(junk[i], strlen(junk[i]), &back, NULL),
                        AETHER_EINVAL);
    /* A malformed term record is refused, not guessed at. */
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(state_kv, "term", "12x", 3, &r, NULL), AETHER_OK);
    aether_term t;
    CU_ASSERT_EQUAL(aether_lease_recorded_term(&a, &t, &r, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_lease_acquire(&a, &rng, &h, NULL), AETHER_EINVAL);
    aether_lease_value lv;
    CU_ASSERT_EQUAL(aether_lease_read(&a, &lv, &r, NULL), AETHER_OK); /* left to expire */
    CU_ASSERT_EQUAL(lv.term, AETHER_TERM_NONE);
    stores_down();
}

static CU_TestInfo tests[] = {
    AETHER_TEST(acquire_term_is_create_revision),
    AETHER_TEST(two_contenders_one_wins),
    AETHER_TEST(renew_keeps_term_uses_send_time),
    AETHER_TEST(renew_after_takeover_conflicts),
    AETHER_TEST(may_act_boundary),
    AETHER_TEST(wipe_keeps_terms_increasing),
    AETHER_TEST(wide_gap_compacts),
    AETHER_TEST(stalled_candidate_keeps_a_live_lease),
    AETHER_TEST(overtaken_create_does_not_lead),
    AETHER_TEST(record_again_after_state_loss),
    AETHER_TEST(term_floor_when_no_record),
    AETHER_TEST(advance_budget_keeps_progress),
    AETHER_TEST(reconcile_unknown_applied),
    AETHER_TEST(reconcile_unknown_not_applied),
    AETHER_TEST(renew_after_delete_keeps_the_lost_term),
    AETHER_TEST(acquire_under_faults),
    AETHER_TEST(resign_fires_delete_event),
    AETHER_TEST(generation_created_once),
    AETHER_TEST(generation_kept_when_state_lost_alone),
    AETHER_TEST(generation_new_when_both_lost),
    AETHER_TEST(generation_upgrade_keeps_record),
    AETHER_TEST(generation_birth_waits_above_floor),
    AETHER_TEST(state_outage_keeps_restart_evidence),
    AETHER_TEST(generation_own_stopped_floor_waits),
    AETHER_TEST(renew_and_resign_check_the_value),
    AETHER_TEST(config_and_value_checks),
    CU_TEST_INFO_NULL,
};

AETHER_SUITE("lease", NULL, NULL, tests);
