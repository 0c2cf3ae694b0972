/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_rebalance.c: `aether-bench rebalance`, the default rebalancing
 * strategy against ring consistent hashing, rendezvous hashing and jump
 * consistent hash (bench layer).
 *
 * Quality cases, S = 1024 shards, N in {3, 10, 32, 100}, R in {1, 3}:
 *   join     N nodes, one more joins
 *   remove   N nodes, the middle one (in join order) fails
 *   churn    50 seeded steps from N nodes: a random node fails or a new
 *            one joins (the count stays within [max(2, N/2), 2N])
 * Metrics per case (deterministic: one run, min = max = median):
 *   moved/min   primaries that changed owner / the theoretical minimum of
 *               a balanced result (strategy.h: orphans + excess over the
 *               targets), summed over the steps of a churn; 1.0 is optimal
 *   max/avg     the most primaries on one node / S over the nodes; worst
 *               step of a churn; 1.0 is perfect balance
 *   slots added/min, slots max-min   the default strategy's owner slots
 *               (data copies) against their minimum, and its slot spread
 * Every baseline row compares the same metric for the same case
 * (ratio = default / baseline: below 1 is better for both metrics).
 * Speed cases: one strategy call (median of --runs) for a join at
 * 1024 x 100 and 65536 x 1000 and a bootstrap at 65536 x 1000, R = 3,
 * against a full ring placement of the same size.
 *
 * Targets (README of the strategy, quoted by the bench): default moved/min
 * <= 1.05 and slot spread <= 1 in every case; 1024 x 100 <= 1 ms;
 * 65536 x 1000 <= 100 ms.
 *
 * Threading: main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines_placement.h"
#include "bench.h"
#include "report.h"
#include "rng.h"
#include "shardmap.h"
#include "strategy.h"

#define RB_BENCH "rebalance"
#define RB_SHARDS 1024u
#define RB_CHURN_STEPS 50u
#define RB_CHURN_SEED UINT64_C(0x5EB4A1)
#define RB_NODES_MAX 256u /* 2 * the largest N, plus joins */
#define RB_RUNS_MIN 5u

enum { RB_DEFAULT, RB_RING, RB_RENDEZVOUS, RB_JUMP, RB_SCHEMES };
static const char *const RB_NAMES[RB_SCHEMES] = {"default", "ring", "rendezvous", "jump"};

/* The cluster as the bench drives it: live nodes in join order, each with
 * a global number g (its id is "n<g>"). */
typedef struct rb_world {
    uint32_t live[RB_NODES_MAX];
    uint32_t count;
    uint32_t next_g;
} rb_world;

/* One scheme's state: the primary (global number) of each shard. */
typedef struct rb_scheme {
    uint32_t primary[AETHER_SHARD_COUNT_MAX];
    uint64_t moved, minimum;
    double worst_max_avg;
} rb_scheme;

typedef struct rb_run {
    uint32_t shards, r;
    rb_world w;
    aether_shardmap *map; /* the default strategy's current map */
    rb_scheme s[RB_SCHEMES];
    uint32_t *owners;     /* scratch [shards * r] */
    uint64_t slots_added, slots_min;
    uint32_t worst_slot_spread;
} rb_run;

static aether_node_id rb_id(uint32_t g)
{
    char buf[16];
    aether_node_id id;
    snprintf(buf, sizeof(buf), "n%05u", g);
    aether_status st = aether_node_id_from_cstr(buf, &id, NULL);
    AETHER_ASSERT(st == AETHER_OK);
    return id;
}

static uint32_t rb_g_of(const aether_node_id *id)
{
    return (uint32_t)strtoul(id->str + 1, NULL, 10);
}

/* Records one step of a scheme: moved primaries and the balance. */
static void rb_account(rb_run *run, int k, const uint32_t *primary, bool first, uint64_t minimum)
{
    rb_scheme *s = &run->s[k];
    uint32_t counts[RB_NODES_MAX * 4] = {0};
    uint64_t moved = 0;
    for (uint32_t sh = 0; sh < run->shards; sh++) {
        moved += !first && s->primary[sh] != primary[sh];
        s->primary[sh] = primary[sh];
        if (primary[sh] < RB_NODES_MAX * 4)
            counts[primary[sh]]++;
    }
    uint32_t max = 0;
    for (uint32_t i = 0; i < run->w.count; i++)
        max = counts[run->w.live[i]] > max ? counts[run->w.live[i]] : max;
    double avg = (double)run->shards / run->w.count;
    double ma = max / avg;
    if (!first) {
        s->moved += moved;
        s->minimum += minimum;
        s->worst_max_avg = ma > s->worst_max_avg ? ma : s->worst_max_avg;
    }
}

/* Places the current world with every scheme; returns 0 or -1. */
static int rb_step(rb_run *run, bool first)
{
    aether_strategy_node nodes[RB_NODES_MAX];
    aether_node_id ids[RB_NODES_MAX];
    for (uint32_t i = 0; i < run->w.count; i++) {
        ids[i] = rb_id(run->w.live[i]);
        memset(&nodes[i], 0, sizeof(nodes[i]));
        nodes[i].id = ids[i];
        nodes[i].status = AETHER_NODE_ACTIVE;
    }
    aether_strategy_config cfg = {.shard_count = run->shards, .replication = run->r};
    aether_shardmap *next = NULL;
    aether_rebalance_plan *plan = NULL;
    aether_err err = {0};
    if (aether_strategy_default()->compute(run->map, nodes, run->w.count, &cfg, 1, &next, &plan,
                                           &err) != AETHER_OK) {
        fprintf(stderr, "rebalance: strategy failed: %s\n", err.msg);
        return -1;
    }
    uint64_t minimum = plan->primaries_min;
    uint32_t primary[AETHER_SHARD_COUNT_MAX];
    for (uint32_t sh = 0; sh < run->shards; sh++)
        primary[sh] = rb_g_of(&next->nodes[next->shards[sh].primary]);
    rb_account(run, RB_DEFAULT, primary, first, minimum);
    if (!first) {
        run->slots_added += plan->slots_added;
        run->slots_min += plan->slots_min;
    }
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < plan->node_count; i++) {
        if (plan->nodes[i].status != AETHER_NODE_ACTIVE || !plan->nodes[i].in_topology)
            continue;
        lo = plan->nodes[i].slots_after < lo ? plan->nodes[i].slots_after : lo;
        hi = plan->nodes[i].slots_after > hi ? plan->nodes[i].slots_after : hi;
    }
    run->worst_slot_spread = hi - lo > run->worst_slot_spread ? hi - lo : run->worst_slot_spread;
    aether_rebalance_plan_destroy(plan);
    aether_shardmap_destroy(run->map);
    run->map = next;

    for (int k = RB_RING; k < RB_SCHEMES; k++) {
        if (k == RB_RING) {
            if (bench_ring_place(ids, run->w.count, run->shards, run->r, run->owners) !=
                AETHER_OK) {
                fprintf(stderr, "rebalance: out of memory\n");
                return -1;
            }
        } else if (k == RB_RENDEZVOUS) {
            bench_rendezvous_place(ids, run->w.count, run->shards, run->r, run->owners);
        } else {
            bench_jump_place(ids, run->w.count, run->shards, run->r, run->owners);
        }
        for (uint32_t sh = 0; sh < run->shards; sh++)
            primary[sh] = run->w.live[run->owners[(size_t)sh * run->r]];
        rb_account(run, k, primary, first, minimum);
    }
    return 0;
}

static void rb_join(rb_world *w)
{
    AETHER_ASSERT(w->count < RB_NODES_MAX);
    w->live[w->count++] = w->next_g++;
}

static void rb_remove(rb_world *w, uint32_t pos)
{
    AETHER_ASSERT(pos < w->count);
    memmove(&w->live[pos], &w->live[pos + 1], (w->count - pos - 1) * sizeof(w->live[0]));
    w->count--;
}

typedef enum rb_kind { RB_JOIN, RB_REMOVE, RB_CHURN } rb_kind;

static int rb_case(const bench_opts *o, uint32_t n, uint32_t r, rb_kind kind, bool *met)
{
    static rb_run run; /* large: one at a time, main thread */
    aether_shardmap_destroy(run.map);
    free(run.owners);
    memset(&run, 0, sizeof(run));
    run.shards = RB_SHARDS;
    run.r = r;
    run.owners = malloc((size_t)RB_SHARDS * r * sizeof(*run.owners));
    if (run.owners == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        rb_join(&run.w);
    if (rb_step(&run, true) != 0)
        return -1;
    if (kind == RB_JOIN) {
        rb_join(&run.w);
        if (rb_step(&run, false) != 0)
            return -1;
    } else if (kind == RB_REMOVE) {
        rb_remove(&run.w, n / 2);
        if (rb_step(&run, false) != 0)
            return -1;
    } else {
        aether_rng rng;
        aether_rng_seed(&rng, RB_CHURN_SEED ^ ((uint64_t)n << 8) ^ r);
        uint32_t lo = n / 2 > 2 ? n / 2 : 2;
        for (uint32_t step = 0; step < RB_CHURN_STEPS; step++) {
            bool remove = run.w.count >= 2 * n ||
                          (run.w.count > lo && aether_rng_below(&rng, 2) == 0);
            if (remove)
                rb_remove(&run.w, (uint32_t)aether_rng_below(&rng, run.w.count));
            else
                rb_join(&run.w);
            if (rb_step(&run, false) != 0)
                return -1;
        }
    }
    static const char *const kinds[] = {"join", "remove", "churn50"};
    char name[48];
    snprintf(name, sizeof(name), "%s N=%u R=%u", kinds[kind], n, r);
    double ratio[RB_SCHEMES];
    for (int k = 0; k < RB_SCHEMES; k++)
        ratio[k] = run.s[k].minimum > 0 ? (double)run.s[k].moved / run.s[k].minimum : 1.0;
    for (int k = RB_RING; k < RB_SCHEMES; k++) {
        bench_stats st = {ratio[RB_DEFAULT], ratio[RB_DEFAULT], ratio[RB_DEFAULT]};
        bench_report_row(o, RB_BENCH, name, "moved/min", &st, "x", RB_NAMES[k], ratio[k]);
    }
    for (int k = RB_RING; k < RB_SCHEMES; k++) {
        double v = run.s[RB_DEFAULT].worst_max_avg;
        bench_stats st = {v, v, v};
        bench_report_row(o, RB_BENCH, name, "max/avg", &st, "x", RB_NAMES[k],
                         run.s[k].worst_max_avg);
    }
    double sr = run.slots_min > 0 ? (double)run.slots_added / run.slots_min : 1.0;
    bench_stats st = {sr, sr, sr};
    bench_report_row(o, RB_BENCH, name, "slots added/min", &st, "x", NULL, 0);
    st = (bench_stats){run.worst_slot_spread, run.worst_slot_spread, run.worst_slot_spread};
    bench_report_row(o, RB_BENCH, name, "slots max-min", &st, "shards", NULL, 0);
    if (ratio[RB_DEFAULT] > 1.05 || run.worst_slot_spread > 1)
        *met = false;
    aether_shardmap_destroy(run.map);
    run.map = NULL;
    free(run.owners);
    run.owners = NULL;
    return 0;
}

/* ---- speed ---------------------------------------------------------------------- */

static int rb_time(const bench_opts *o, uint32_t shards, uint32_t n, bool bootstrap,
                   double target_ms, bool *met)
{
    int rc = -1;
    unsigned runs = o->runs > RB_RUNS_MIN ? o->runs : RB_RUNS_MIN;
    aether_strategy_node *nodes = calloc(n, sizeof(*nodes));
    aether_node_id *ids = calloc(n, sizeof(*ids));
    uint32_t *owners = malloc((size_t)shards * 3 * sizeof(*owners));
    double *t = calloc(runs, sizeof(*t)), *tb = calloc(runs, sizeof(*tb));
    aether_shardmap *old = NULL;
    if (nodes == NULL || ids == NULL || owners == NULL || t == NULL || tb == NULL)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = rb_id(i);
        nodes[i].id = ids[i];
        nodes[i].status = AETHER_NODE_ACTIVE;
    }
    aether_strategy_config cfg = {.shard_count = shards, .replication = 3};
    aether_err err = {0};
    if (!bootstrap &&
        aether_strategy_balanced_compute(NULL, nodes, n - 1, &cfg, 1, &old, NULL, &err) !=
            AETHER_OK) {
        fprintf(stderr, "rebalance: %s\n", err.msg);
        goto out;
    }
    for (unsigned i = 0; i < runs; i++) {
        aether_shardmap *m = NULL;
        uint64_t t0 = bench_now_ns();
        aether_status st = aether_strategy_balanced_compute(old, nodes, n, &cfg, 2, &m, NULL,
                                                            &err);
        uint64_t t1 = bench_now_ns();
        aether_shardmap_destroy(m);
        if (st != AETHER_OK) {
            fprintf(stderr, "rebalance: %s\n", err.msg);
            goto out;
        }
        if (bench_ring_place(ids, n, shards, 3, owners) != AETHER_OK)
            goto out;
        uint64_t t2 = bench_now_ns();
        t[i] = (double)(t1 - t0) / 1e6;
        tb[i] = (double)(t2 - t1) / 1e6;
    }
    bench_stats st = bench_stats_of(t, runs), sb = bench_stats_of(tb, runs);
    char name[48];
    snprintf(name, sizeof(name), "%s %ux%u R=3", bootstrap ? "bootstrap" : "join", shards, n);
    bench_report_row(o, RB_BENCH, name, "time", &st, "ms", "ring", sb.median);
    if (st.median > target_ms)
        *met = false;
    rc = 0;
out:
    aether_shardmap_destroy(old);
    free(nodes);
    free(ids);
    free(owners);
    free(t);
    free(tb);
    return rc;
}

int bench_rebalance_main(const bench_opts *o)
{
    bench_report_begin(o, RB_BENCH,
                       "S=1024; moved/min: primaries moved / theoretical minimum (1 = optimal); "
                       "max/avg: primary load balance (1 = perfect);\nratio = default / "
                       "baseline. Targets: moved/min <= 1.05, slots max-min <= 1, "
                       "1024x100 <= 1 ms, 65536x1000 <= 100 ms.");
    static const uint32_t ns[] = {3, 10, 32, 100};
    static const uint32_t rs[] = {1, 3};
    bool quality = true, speed = true;
    for (size_t kind = 0; kind < 3; kind++)
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
            for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++)
                if (rb_case(o, ns[i], rs[j], (rb_kind)kind, &quality) != 0)
                    return 1;
    if (rb_time(o, 1024, 100, false, 1.0, &speed) != 0 ||
        rb_time(o, 65536, 1000, false, 100.0, &speed) != 0 ||
        rb_time(o, 65536, 1000, true, 100.0, &speed) != 0)
        return 1;
    bench_report_note(o, "targets: quality %s, speed %s", quality ? "met" : "MISSED",
                      speed ? "met" : "MISSED");
    return 0;
}
