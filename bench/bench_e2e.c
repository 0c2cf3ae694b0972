/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_e2e.c: `aether-bench e2e`, a node joining a real cluster: from its
 * JoinCluster to the new map on every node, on a real nats-server with real
 * aether-node processes (bench layer).
 *
 * Setup: pcluster.h (one nats-server -js, --nodes aether-node --trace
 * processes n1..nN, default settings), settled. Then --joins times, from a
 * settled cluster:
 *  1. t_spawn: start aether-node n<N+1> (its JoinCluster goes out as soon
 *     as it is connected: this is "sending JoinCluster");
 *  2. t_joined: the earliest NodeJoined(n<N+1>) line (the leader's, as it
 *     emits it);
 *  3. the leader's first RebalanceStarted after t_joined names from_version
 *     V: map V+1 is the first map of that rebalance (shards start moving to
 *     the new node), and the session's RebalanceCompleted names the last
 *     map (every handoff done, the new node serving its shards);
 *  4. t_first / t_final: when the last of all N+1 nodes printed MAP >= V+1
 *     / >= the completed version;
 *  5. SIGTERM n<N+1>: it drains and leaves; wait for its exit (0) and a
 *     settled cluster; pace so the rebalance brake stays off.
 * --shards and --replication set every node's; --nodes goes up to 20.
 * Rows: the bootstrap (first process start -> a map on every node, target
 * 2 s, issue 16; -> settled), NodeJoined -> first map on all nodes (target
 * rebalance_debounce_ms + 10 ms up to 1024 shards, issue 4 section 8;
 * + 50 ms above, issue 16), process start -> first map on all nodes
 * (what an operator waits for, including process start, NATS connect and
 * KV bind; no target), process start -> NodeJoined, NodeJoined -> last map
 * of the rebalance on all nodes; and the floor: KV compare-and-set round
 * trips on the same server. Then the run's health (pcl_report_health: no
 * live leader lost, no reconnect, no mailbox overflow; the target of each
 * is 0) and the handler run times.
 *
 * Exit status: 0 when every join ran (targets met or not: the table says);
 * 1 when the cluster could not be set up or did not settle.
 *
 * Threading: main thread only.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aether_internal.h"
#include "bench.h"
#include "pcluster.h"
#include "report.h"

#define KV_FLOOR_WARMUP 50u
#define KV_FLOOR_SAMPLES 1000u
#define JOIN_MARGIN_MS 10.0       /* the allowance above the debounce, up to 1024 shards (issue 4) */
#define JOIN_MARGIN_BIG_MS 50.0   /* above 1024 shards (issue 16: 65 536 shards, 20 nodes) */
#define BOOT_TARGET_MS 2000.0     /* first process start -> a map on every node (issue 16) */

typedef struct e2e_series {
    double *v;
    unsigned n, timeouts;
} e2e_series;

static void e2e_add(e2e_series *s, double ms) { s->v[s->n++] = ms; }

static double us_to_ms(uint64_t us) { return (double)us / 1000.0; }

/* The last live node's first MAP >= version since `since`; 0 if one has not. */
static uint64_t all_reached(const pcluster *c, uint64_t version, uint64_t since)
{
    uint64_t last = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        if (!pcl_live(c, i))
            continue;
        uint64_t t = pcl_map_reached(c, i, version, since);
        if (t == 0)
            return 0;
        if (t > last)
            last = t;
    }
    return last;
}

/* Pumps until done() says so, c->step_limit_ms pass or interrupted. */
static bool wait_step(pcluster *c, uint64_t t0)
{
    if (pcl_interrupted() || c->unexpected_exits > 0 || pcl_now_us() - t0 > c->step_limit_ms * 1000ull)
        return false;
    pcl_pump(c, 5);
    return true;
}

typedef struct e2e_run {
    pcluster c;
    aether_config def;
    e2e_series first_from_joined, first_from_spawn, spawn_to_joined, final_from_joined;
    unsigned exit_bad;
} e2e_run;

/* One join; false when the cluster could not be brought back to settled. */
static bool e2e_join(e2e_run *r, uint32_t j)
{
    pcluster *c = &r->c;
    char why[160] = "";
    if (!pcl_pace(c, r->def.brake_window_ms, r->def.brake_max_offline ? r->def.brake_max_offline
                                                                      : (c->n_nodes - 1u) / 3u) ||
        !pcl_wait_settled(c, PCL_SETTLE_QUIET_MS, c->settle_limit_ms, why, sizeof(why))) {
        fprintf(stderr, "aether-bench: e2e: not settled before a join: %s\n", why);
        return false;
    }
    const char *id = c->nodes[j].id;
    if (!pcl_spawn(c, j)) {
        fprintf(stderr, "aether-bench: e2e: cannot start %s\n", id);
        return false;
    }
    uint64_t t_spawn = c->nodes[j].spawned_us, t0 = pcl_now_us();
    /* Values are copied out of the records at once: keeping more records
     * may move them. */
    uint64_t t_joined = 0, t_started = 0, from_version = 0, t_completed = 0, last_version = 0;
    uint64_t t_first = 0, t_final = 0;
    while (wait_step(c, t0)) { /* bounded: c->step_limit_ms */
        const pcl_rec *e;
        if (t_joined == 0 && (e = pcl_first_event(c, t_spawn, "NodeJoined", id, -1)) != NULL)
            t_joined = e->us;
        if (t_joined != 0 && t_started == 0 &&
            (e = pcl_first_event(c, t_joined, "RebalanceStarted", NULL, -1)) != NULL) {
            t_started = e->us;
            from_version = e->num;
        }
        if (t_started != 0 && t_completed == 0 &&
            (e = pcl_first_event(c, t_started, "RebalanceCompleted", NULL, -1)) != NULL) {
            t_completed = e->us;
            last_version = e->num;
        }
        if (t_started != 0 && t_first == 0)
            t_first = all_reached(c, from_version + 1, t_spawn);
        if (t_completed != 0 && t_final == 0)
            t_final = all_reached(c, last_version, t_spawn);
        if (t_first != 0 && t_final != 0)
            break;
    }
    if (t_joined != 0)
        e2e_add(&r->spawn_to_joined, us_to_ms(t_joined - t_spawn));
    else
        r->spawn_to_joined.timeouts++;
    if (t_first != 0) {
        e2e_add(&r->first_from_joined, us_to_ms(t_first - t_joined));
        e2e_add(&r->first_from_spawn, us_to_ms(t_first - t_spawn));
    } else {
        r->first_from_joined.timeouts++;
        r->first_from_spawn.timeouts++;
    }
    if (t_final != 0)
        e2e_add(&r->final_from_joined, us_to_ms(t_final - t_joined));
    else
        r->final_from_joined.timeouts++;
    if (t_first == 0 || t_final == 0)
        fprintf(stderr, "aether-bench: e2e: join %s: %s within %u ms\n", id,
                t_joined == 0 ? "no NodeJoined" : t_started == 0 ? "no RebalanceStarted"
                                                  : t_first == 0  ? "first map not on every node"
                                                                  : "last map not on every node",
                c->step_limit_ms);

    /* Drain it: SIGTERM, exit 0, a settled cluster without it. */
    uint64_t t_term = pcl_signal(c, j, SIGTERM);
    if (!pcl_wait_exit(c, j, c->exit_limit_ms)) {
        fprintf(stderr, "aether-bench: e2e: %s still running %u ms after SIGTERM; killing it\n", id,
                c->exit_limit_ms);
        pcl_signal(c, j, SIGKILL);
        r->exit_bad++;
    } else if (!WIFEXITED(c->nodes[j].last_status) || WEXITSTATUS(c->nodes[j].last_status) != 0) {
        r->exit_bad++;
    }
    const pcl_rec *left = pcl_first_event(c, t_term, "NodeLeft", id, -1);
    pcl_note_offline(c, left != NULL ? left->us : pcl_now_us());
    if (!pcl_wait_settled(c, PCL_SETTLE_QUIET_MS, c->settle_limit_ms, why, sizeof(why))) {
        fprintf(stderr, "aether-bench: e2e: not settled after %s left: %s\n", id, why);
        return false;
    }
    return true;
}

/* One table row from a series (sorted in place); true if its target is met. */
static bool e2e_row(const bench_opts *o, const char *metric, e2e_series *s, double target_ms,
                    const bench_latency *floor)
{
    bench_samples_write(o, "e2e", metric, s->v, s->n); /* before the sort */
    bench_latency l = bench_latency_of(s->v, s->n, s->timeouts, target_ms);
    return bench_report_latency_row(o, "e2e", metric, &l, target_ms, "kv_cas", floor);
}

static bool e2e_alloc(e2e_series *s, unsigned n)
{
    s->v = calloc(n ? n : 1, sizeof(double));
    return s->v != NULL;
}

int bench_e2e_main(const bench_opts *oin)
{
    bench_opts o = *oin;
    o.processes = true;
    e2e_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return 1;
    aether_config_defaults(&r->def);
    if (o.shards != 0)
        r->def.shard_count = o.shards;
    if (o.replication != 0)
        r->def.replication = o.replication;
    double *floor_ms = calloc(KV_FLOOR_SAMPLES, sizeof(double));
    bool ok = floor_ms != NULL && e2e_alloc(&r->first_from_joined, o.joins) &&
              e2e_alloc(&r->first_from_spawn, o.joins) && e2e_alloc(&r->spawn_to_joined, o.joins) &&
              e2e_alloc(&r->final_from_joined, o.joins);
    int rc = 1;
    unsigned done = 0, n_floor = 0;
    if (!ok || !pcl_setup(&r->c, "e2e", r->def.shard_count, o.replication))
        goto out;
    bench_report_machine(&o); /* the load average before the run */
    if (!o.json)
        fprintf(stderr, "aether-bench e2e: nats-server at %s, %u nodes, %u joins\n", r->c.url, o.nodes,
                o.joins);
    if (!pcl_bootstrap(&r->c, o.nodes, "n")) {
        /* What the nodes went through is the finding: report it. */
        bench_report_latency_begin(&o, "e2e", "the bootstrap did not settle");
        pcl_report_bootstrap(&o, "e2e", &r->c, BOOT_TARGET_MS);
        pcl_report_health(&o, "e2e", &r->c);
        for (uint32_t i = 0; i < r->c.n_nodes; i++)
            pcl_tail_log(&r->c, i, 8);
        goto out;
    }
    n_floor = pcl_kv_floor(&r->c, KV_FLOOR_WARMUP, KV_FLOOR_SAMPLES, floor_ms);
    char jid[16];
    snprintf(jid, sizeof(jid), "n%u", o.nodes + 1u);
    int j = pcl_add_node(&r->c, jid);
    if (j < 0)
        goto out;
    for (done = 0; done < o.joins; done++) {
        if (!e2e_join(r, (uint32_t)j))
            break;
        if (!o.json)
            fprintf(stderr, "  join %u/%u done\n", done + 1, o.joins);
    }
    if (done < o.joins) {
        fprintf(stderr, "aether-bench: e2e: stopped after %u of %u joins%s\n", done, o.joins,
                pcl_interrupted() ? " (interrupted)" : "");
        for (uint32_t i = 0; i < r->c.n_nodes; i++)
            pcl_tail_log(&r->c, i, 8);
    } else {
        rc = 0;
    }

    char note[512];
    snprintf(note, sizeof(note),
             "nats-server %s; %u aether-node processes + 1 joining, %u shards, replication %u, default "
             "settings (rebalance debounce %u ms, %u handoffs at a time); %u of %u joins; p50/floor = p50 / the "
             "KV CAS p50",
             r->c.url, o.nodes, r->def.shard_count, r->def.replication, r->def.rebalance_debounce_ms,
             r->def.max_concurrent_handoffs, done, o.joins);
    bench_report_latency_begin(&o, "e2e", note);
    bench_samples_write(&o, "e2e", "floor: KV compare-and-set round trip (aether_kv_update)", floor_ms,
                        n_floor);
    bench_latency fl = bench_latency_of(floor_ms, n_floor, 0, -1);
    double margin = r->def.shard_count > 1024u ? JOIN_MARGIN_BIG_MS : JOIN_MARGIN_MS;
    bool boot_met = pcl_report_bootstrap(&o, "e2e", &r->c, BOOT_TARGET_MS);
    bool met = e2e_row(&o, "join: NodeJoined -> first new map on all nodes", &r->first_from_joined,
                       r->def.rebalance_debounce_ms + margin, &fl);
    e2e_row(&o, "join: process start -> first new map on all nodes", &r->first_from_spawn, -1, &fl);
    e2e_row(&o, "join: process start -> NodeJoined emitted", &r->spawn_to_joined, -1, &fl);
    e2e_row(&o, "join: NodeJoined -> last map of the rebalance on all nodes", &r->final_from_joined, -1, &fl);
    bench_report_latency_row(&o, "e2e", "floor: KV compare-and-set round trip (aether_kv_update)", &fl, -1,
                             NULL, NULL);
    bench_report_note(&o, "targets met: join %s, bootstrap %s", met ? "yes" : "no", boot_met ? "yes" : "no");
    pcl_report_handlers(&o, "e2e", &r->c);
    pcl_report_health(&o, "e2e", &r->c);
    if (r->exit_bad > 0)
        bench_report_note(&o, "%u drained node(s) did not exit 0 within %u ms", r->exit_bad,
                          r->c.exit_limit_ms);
    bench_report_note(&o, "1-minute load average at the end: %.2f (nats-server and %u nodes share %ld cores)",
                      bench_load_average(), o.nodes + 1u, sysconf(_SC_NPROCESSORS_ONLN));
    if (r->c.lines_bad > 0 || r->c.lines_overlong > 0)
        bench_report_note(&o, "trace lines not understood: %llu, overlong: %llu",
                          (unsigned long long)r->c.lines_bad, (unsigned long long)r->c.lines_overlong);
    if (r->c.unexpected_exits > 0)
        rc = 1;
out:
    pcl_teardown(&r->c);
    free(floor_ms);
    free(r->first_from_joined.v);
    free(r->first_from_spawn.v);
    free(r->spawn_to_joined.v);
    free(r->final_from_joined.v);
    free(r);
    return rc;
}
