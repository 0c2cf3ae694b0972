/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_failover.c: `aether-bench failover`, leadership and failure
 * handling on a real nats-server with real aether-node processes (bench
 * layer).
 *
 * Setup: pcluster.h (one nats-server -js, --nodes aether-node --trace
 * processes n1..nN (up to 20), --shards and --replication as given (the
 * node's defaults otherwise), default settings).
 * Then --kills rounds, each of three attempts, every one starting from a
 * settled cluster (pcl_settled) and ending with the victim restarted and
 * the cluster settled again:
 *  1. leader crash: kill -9 of the agreed leader L (term T) at t_kill ->
 *     every survivor prints LEADER <x> <term> with x != L and term > T.
 *     Sample = the last survivor's line - t_kill. Then L's NodeFailed.
 *  2. follower crash: kill -9 of a follower F (round robin) at t_kill ->
 *     NodeFailed(F) -> the leader's RebalanceStarted (from_version V) ->
 *     every survivor installs a map >= V+1 (a failed primary's shards are
 *     reassigned directly in the first map: member_assign.c step 4).
 *     Sample = the last survivor's MAP line - t_kill.
 *  3. graceful resign: SIGTERM of the leader L at t_term. The daemon drains
 *     its node; a draining leader resigns (deletes the lease key, emits
 *     LeadershipLost: policy 9) and the others campaign at once. Sample =
 *     the last survivor's LEADER line naming a new leader - L's own
 *     LeadershipLost line. If L printed no LeadershipLost before a
 *     survivor saw the new leader, it did not resign first: counted and
 *     reported (such an attempt gives no resign sample).
 * Before every attempt the bench paces itself so the rebalance brake stays
 * off (pcl_pace): at most brake_max_offline (nodes / 3) losses per
 * brake_window_ms. Before the rounds, the floor: KV_FLOOR_SAMPLES
 * compare-and-set round trips on a JetStream KV bucket of the same server,
 * with the cluster running.
 *
 * Targets at default settings (issue 4, section 8; issue 16 for the
 * bootstrap: first process start -> a map on every node <= 2 s): leader crash p99 <=
 * lease_ttl_ms + 150; follower crash p99 <= failure_timeout_ms + 150;
 * resign p99 <= 100 ms. Then the run's health (pcl_report_health: no live
 * leader lost, no reconnect, no mailbox overflow; each target 0).
 *
 * Exit status: 0 when every round ran (targets met or not: the table says);
 * 1 when the cluster could not be set up or did not settle (the reason and
 * the node logs' tails on stderr).
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
#define FAILOVER_MARGIN_MS 150.0  /* the allowance above ttl / failure timeout */
#define RESIGN_TARGET_MS 100.0
#define BOOT_TARGET_MS 2000.0     /* first process start -> a map on every node (issue 16) */

typedef struct fo_series {
    double *v;
    unsigned n, timeouts;
} fo_series;

typedef struct fo_run {
    pcluster c;
    aether_config def;
    uint32_t max_offline;
    unsigned next_follower;
    fo_series leader_all, leader_first, follower_reowned, follower_detect, resign, resign_from_term;
    unsigned resign_not_first; /* leader gone without resigning first */
    unsigned resign_exit_bad;  /* SIGTERM'd leader did not exit 0 */
} fo_run;

static void fo_add(fo_series *s, double ms)
{
    s->v[s->n++] = ms;
}

static double us_to_ms(uint64_t us) { return (double)us / 1000.0; }

/* Waits until pred(r, arg) gives a time (non-zero) or r->c.step_limit_ms pass. */
typedef uint64_t (*fo_probe)(fo_run *r, const void *arg);

static uint64_t fo_wait(fo_run *r, fo_probe probe, const void *arg)
{
    uint64_t t0 = pcl_now_us();
    for (;;) { /* bounded: r->c.step_limit_ms */
        uint64_t t = probe(r, arg);
        if (t != 0)
            return t;
        if (pcl_interrupted() || r->c.unexpected_exits > 0 ||
            pcl_now_us() - t0 > (uint64_t)r->c.step_limit_ms * 1000ull)
            return 0;
        pcl_pump(&r->c, 5);
    }
}

/* ---- probes ------------------------------------------------------------------ */

typedef struct new_leader_arg {
    const char *old;
    uint64_t min_term, since;
    uint64_t first; /* out: the earliest survivor's time */
} new_leader_arg;

/* The last live node's time of learning of a leader other than old. */
static uint64_t probe_all_new_leader(fo_run *r, const void *varg)
{
    new_leader_arg *a = (new_leader_arg *)varg;
    uint64_t last = 0, first = 0;
    for (uint32_t i = 0; i < r->c.n_nodes; i++) {
        if (!pcl_live(&r->c, i))
            continue;
        uint64_t t = pcl_leader_seen(&r->c, i, a->old, a->min_term, a->since);
        if (t == 0)
            return 0;
        if (t > last)
            last = t;
        if (first == 0 || t < first)
            first = t;
    }
    a->first = first;
    return last;
}

typedef struct event_arg {
    const char *type, *who;
    uint64_t since;
    int reader;
    const pcl_rec *rec; /* out */
} event_arg;

static uint64_t probe_event(fo_run *r, const void *varg)
{
    event_arg *a = (event_arg *)varg;
    a->rec = pcl_first_event(&r->c, a->since, a->type, a->who, a->reader);
    return a->rec ? a->rec->us : 0;
}

typedef struct map_arg {
    uint64_t version, since;
} map_arg;

static uint64_t probe_all_map(fo_run *r, const void *varg)
{
    const map_arg *a = varg;
    uint64_t last = 0;
    for (uint32_t i = 0; i < r->c.n_nodes; i++) {
        if (!pcl_live(&r->c, i))
            continue;
        uint64_t t = pcl_map_reached(&r->c, i, a->version, a->since);
        if (t == 0)
            return 0;
        if (t > last)
            last = t;
    }
    return last;
}

/* ---- attempts ------------------------------------------------------------------ */

static bool fo_settled_leader(fo_run *r, int *leader)
{
    char why[160] = "";
    if (!pcl_wait_settled(&r->c, PCL_SETTLE_QUIET_MS, r->c.settle_limit_ms, why, sizeof(why))) {
        fprintf(stderr, "aether-bench: failover: cluster not settled within %u ms: %s\n",
                r->c.settle_limit_ms, why);
        return false;
    }
    *leader = pcl_leader(&r->c);
    return *leader >= 0;
}

/* Waits for victim's NodeFailed/NodeLeft since `since` and notes the loss
 * for the pacing. */
static void fo_note_loss(fo_run *r, uint32_t victim, const char *type, uint64_t since)
{
    event_arg ev = { .type = type, .who = r->c.nodes[victim].id, .since = since, .reader = -1 };
    uint64_t t = fo_wait(r, probe_event, &ev);
    pcl_note_offline(&r->c, t != 0 ? t : pcl_now_us());
}

static bool fo_leader_crash(fo_run *r)
{
    int L;
    if (!fo_settled_leader(r, &L) || !pcl_pace(&r->c, r->def.brake_window_ms, r->max_offline) ||
        !fo_settled_leader(r, &L))
        return false;
    pcl_node *victim = &r->c.nodes[L];
    uint64_t term = victim->view.term;
    uint64_t t_kill = pcl_signal(&r->c, (uint32_t)L, SIGKILL);
    new_leader_arg a = { .old = victim->id, .min_term = term + 1, .since = t_kill };
    uint64_t t_all = fo_wait(r, probe_all_new_leader, &a);
    if (t_all != 0) {
        fo_add(&r->leader_all, us_to_ms(t_all - t_kill));
        fo_add(&r->leader_first, us_to_ms(a.first - t_kill));
    } else {
        r->leader_all.timeouts++;
        r->leader_first.timeouts++;
    }
    fo_note_loss(r, (uint32_t)L, "NodeFailed", t_kill);
    return pcl_rejoin(&r->c, (uint32_t)L);
}

static bool fo_follower_crash(fo_run *r)
{
    int L;
    if (!fo_settled_leader(r, &L) || !pcl_pace(&r->c, r->def.brake_window_ms, r->max_offline) ||
        !fo_settled_leader(r, &L))
        return false;
    uint32_t v = r->next_follower % r->c.n_nodes;
    if ((int)v == L)
        v = (v + 1) % r->c.n_nodes;
    r->next_follower = v + 1;
    const char *id = r->c.nodes[v].id;
    uint64_t t_kill = pcl_signal(&r->c, v, SIGKILL);
    event_arg failed = { .type = "NodeFailed", .who = id, .since = t_kill, .reader = -1 };
    uint64_t t_failed = fo_wait(r, probe_event, &failed);
    if (t_failed == 0) {
        r->follower_detect.timeouts++;
        r->follower_reowned.timeouts++;
        pcl_note_offline(&r->c, pcl_now_us());
        return pcl_rejoin(&r->c, v);
    }
    pcl_note_offline(&r->c, t_failed);
    fo_add(&r->follower_detect, us_to_ms(t_failed - t_kill));
    event_arg started = { .type = "RebalanceStarted", .since = t_failed, .reader = -1 };
    uint64_t t_started = fo_wait(r, probe_event, &started);
    uint64_t t_all = 0;
    if (t_started != 0) {
        map_arg m = { .version = started.rec->num + 1, .since = t_kill };
        t_all = fo_wait(r, probe_all_map, &m);
    }
    if (t_all != 0)
        fo_add(&r->follower_reowned, us_to_ms(t_all - t_kill));
    else
        r->follower_reowned.timeouts++;
    return pcl_rejoin(&r->c, v);
}

static bool fo_resign(fo_run *r)
{
    int L;
    if (!fo_settled_leader(r, &L) || !pcl_pace(&r->c, r->def.brake_window_ms, r->max_offline) ||
        !fo_settled_leader(r, &L))
        return false;
    pcl_node *victim = &r->c.nodes[L];
    uint64_t term = victim->view.term;
    uint64_t t_term = pcl_signal(&r->c, (uint32_t)L, SIGTERM);
    /* The survivors: every live node but L (L stays live while it drains). */
    new_leader_arg a = { .old = victim->id, .min_term = term + 1, .since = t_term };
    uint64_t t_all = 0, t0 = pcl_now_us();
    for (;;) { /* bounded: r->c.step_limit_ms */
        uint64_t last = 0;
        bool all = true;
        for (uint32_t i = 0; i < r->c.n_nodes && all; i++) {
            if ((int)i == L || !pcl_live(&r->c, i))
                continue;
            uint64_t t = pcl_leader_seen(&r->c, i, victim->id, a.min_term, t_term);
            if (t == 0)
                all = false;
            else if (t > last)
                last = t;
        }
        if (all && last != 0) {
            t_all = last;
            break;
        }
        if (pcl_interrupted() || r->c.unexpected_exits > 0 ||
            pcl_now_us() - t0 > (uint64_t)r->c.step_limit_ms * 1000ull)
            break;
        pcl_pump(&r->c, 5);
    }
    const pcl_rec *lost = pcl_first_event(&r->c, t_term, "LeadershipLost", victim->id, L);
    if (t_all == 0) {
        r->resign.timeouts++;
        r->resign_from_term.timeouts++;
    } else {
        fo_add(&r->resign_from_term, us_to_ms(t_all - t_term));
        if (lost != NULL && lost->us <= t_all)
            fo_add(&r->resign, us_to_ms(t_all - lost->us));
        else
            r->resign_not_first++;
    }
    if (!pcl_wait_exit(&r->c, (uint32_t)L, r->c.exit_limit_ms)) {
        fprintf(stderr, "aether-bench: failover: %s still running %u ms after SIGTERM; killing it\n",
                victim->id, r->c.exit_limit_ms);
        pcl_signal(&r->c, (uint32_t)L, SIGKILL);
        r->resign_exit_bad++;
    } else if (!WIFEXITED(victim->last_status) || WEXITSTATUS(victim->last_status) != 0) {
        r->resign_exit_bad++;
    }
    const pcl_rec *left = pcl_first_event(&r->c, t_term, "NodeLeft", victim->id, -1);
    pcl_note_offline(&r->c, left != NULL ? left->us : pcl_now_us());
    return pcl_rejoin(&r->c, (uint32_t)L);
}

/* ---- entry point ------------------------------------------------------------------ */

/* One table row from a series (sorted in place); true if its target is met. */
static bool fo_row(const bench_opts *o, const char *metric, fo_series *s, double target_ms,
                   const bench_latency *floor)
{
    bench_samples_write(o, "failover", metric, s->v, s->n); /* before the sort */
    bench_latency l = bench_latency_of(s->v, s->n, s->timeouts, target_ms);
    return bench_report_latency_row(o, "failover", metric, &l, target_ms, "kv_cas", floor);
}

static bool fo_alloc(fo_series *s, unsigned n)
{
    s->v = calloc(n ? n : 1, sizeof(double));
    return s->v != NULL;
}

int bench_failover_main(const bench_opts *oin)
{
    bench_opts o = *oin;
    o.processes = true;
    fo_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return 1;
    aether_config_defaults(&r->def);
    if (o.shards != 0)
        r->def.shard_count = o.shards;
    if (o.replication != 0)
        r->def.replication = o.replication;
    r->max_offline = o.nodes / 3u; /* aether_config: brake_max_offline 0 = a third of the nodes */
    double *floor_ms = calloc(KV_FLOOR_SAMPLES, sizeof(double));
    bool ok = floor_ms != NULL && fo_alloc(&r->leader_all, o.kills) && fo_alloc(&r->leader_first, o.kills) &&
              fo_alloc(&r->follower_reowned, o.kills) && fo_alloc(&r->follower_detect, o.kills) &&
              fo_alloc(&r->resign, o.kills) && fo_alloc(&r->resign_from_term, o.kills);
    int rc = 1;
    unsigned rounds = 0, n_floor = 0;
    if (!ok || !pcl_setup(&r->c, "failover", r->def.shard_count, o.replication))
        goto out;
    bench_report_machine(&o); /* the load average before the run */
    if (!o.json)
        fprintf(stderr, "aether-bench failover: nats-server at %s, %u nodes, %u rounds of 3 attempts "
                        "(paced: <= %u loss per %u ms brake window)\n",
                r->c.url, o.nodes, o.kills, r->max_offline, r->def.brake_window_ms);
    if (!pcl_bootstrap(&r->c, o.nodes, "n")) {
        /* What the nodes went through is the finding: report it. */
        bench_report_latency_begin(&o, "failover", "the bootstrap did not settle");
        pcl_report_bootstrap(&o, "failover", &r->c, BOOT_TARGET_MS);
        pcl_report_health(&o, "failover", &r->c);
        for (uint32_t i = 0; i < r->c.n_nodes; i++)
            pcl_tail_log(&r->c, i, 8);
        goto out;
    }
    n_floor = pcl_kv_floor(&r->c, KV_FLOOR_WARMUP, KV_FLOOR_SAMPLES, floor_ms);
    for (rounds = 0; rounds < o.kills; rounds++) {
        if (!fo_leader_crash(r) || !fo_follower_crash(r) || !fo_resign(r))
            break;
        if (!o.json)
            fprintf(stderr, "  round %u/%u done\n", rounds + 1, o.kills);
    }
    if (rounds < o.kills) {
        fprintf(stderr, "aether-bench: failover: stopped after %u of %u rounds%s\n", rounds, o.kills,
                pcl_interrupted() ? " (interrupted)" : "");
        for (uint32_t i = 0; i < r->c.n_nodes; i++)
            pcl_tail_log(&r->c, i, 8);
    } else {
        rc = 0;
    }

    char note[512];
    snprintf(note, sizeof(note),
             "nats-server %s; %u aether-node processes, %u shards, replication %u, default settings "
             "(lease ttl %u ms, failure timeout %u ms, election jitter 0..%u ms); %u of %u rounds; p50/floor "
             "= p50 / the KV CAS p50",
             r->c.url, o.nodes, r->def.shard_count, r->def.replication, r->def.lease_ttl_ms, r->def.failure_timeout_ms,
             r->def.election_jitter_ms, rounds, o.kills);
    bench_report_latency_begin(&o, "failover", note);
    bench_samples_write(&o, "failover", "floor: KV compare-and-set round trip (aether_kv_update)", floor_ms,
                        n_floor);
    bench_latency fl = bench_latency_of(floor_ms, n_floor, 0, -1);
    double t_leader = r->def.lease_ttl_ms + FAILOVER_MARGIN_MS;
    double t_follower = r->def.failure_timeout_ms + FAILOVER_MARGIN_MS;
    unsigned met = 0, targets = 4;
    met += pcl_report_bootstrap(&o, "failover", &r->c, BOOT_TARGET_MS);
    met += fo_row(&o, "leader kill -9 -> LeaderElected on all survivors", &r->leader_all, t_leader, &fl);
    fo_row(&o, "leader kill -9 -> first survivor knows the new leader", &r->leader_first, -1, &fl);
    met += fo_row(&o, "follower kill -9 -> map without it on all survivors", &r->follower_reowned, t_follower,
                  &fl);
    fo_row(&o, "follower kill -9 -> NodeFailed emitted", &r->follower_detect, -1, &fl);
    met += fo_row(&o, "resign (LeadershipLost) -> new leader on all survivors", &r->resign, RESIGN_TARGET_MS,
                  &fl);
    fo_row(&o, "leader SIGTERM -> new leader on all survivors", &r->resign_from_term, -1, &fl);
    bench_report_latency_row(&o, "failover", "floor: KV compare-and-set round trip (aether_kv_update)", &fl,
                             -1, NULL, NULL);
    bench_report_note(&o, "targets met: %u of %u", met, targets);
    pcl_report_handlers(&o, "failover", &r->c);
    pcl_report_health(&o, "failover", &r->c);
    if (r->resign_not_first > 0)
        bench_report_note(&o, "%u SIGTERM'd leader(s) were replaced without a LeadershipLost first: the "
                              "daemon did not resign the lease before leaving", r->resign_not_first);
    if (r->resign_exit_bad > 0)
        bench_report_note(&o, "%u SIGTERM'd leader(s) did not exit 0 within %u ms", r->resign_exit_bad,
                          r->c.exit_limit_ms);
    bench_report_note(&o, "1-minute load average at the end: %.2f (nats-server and %u nodes share %ld cores)",
                      bench_load_average(), o.nodes, sysconf(_SC_NPROCESSORS_ONLN));
    if (r->c.lines_bad > 0 || r->c.lines_overlong > 0)
        bench_report_note(&o, "trace lines not understood: %llu, overlong: %llu",
                          (unsigned long long)r->c.lines_bad, (unsigned long long)r->c.lines_overlong);
    if (r->c.unexpected_exits > 0)
        rc = 1;
out:
    pcl_teardown(&r->c);
    free(floor_ms);
    free(r->leader_all.v);
    free(r->leader_first.v);
    free(r->follower_reowned.v);
    free(r->follower_detect.v);
    free(r->resign.v);
    free(r->resign_from_term.v);
    free(r);
    return rc;
}
