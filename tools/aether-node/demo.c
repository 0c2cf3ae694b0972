/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/demo.c: the embedded demo scenario (tools layer; main
 * thread; the settled predicate is node_run.h DESIGN 4).
 *
 * The demo scenario (--scenario demo) drives a 5-node cluster through a
 * join, a graceful drain, a follower crash and a leader crash on the real
 * clock, waits (bounded) for the cluster to settle after each step, and
 * prints a summary: per step its duration, the shards moved, the leader and
 * its term; the final shards per node; the failover time; and the
 * single-ownership violations seen (exit 1 unless zero and every step
 * settled).
 */
#include <jansson.h>

#include "invariants.h"
#include "node_run.h"

#define SETTLE_POLL_MS 10u
#define SETTLE_QUIET_MS 300u        /* settled must hold this long (> rebalance debounce) */
#define FAILOVER_POLL_MS 1u
AETHER_STATIC_ASSERT(SETTLE_QUIET_MS > 100u, "longer than the default rebalance debounce");

/* ---- demo scenario ------------------------------------------------------------ */

typedef struct goal {
    uint64_t version_above;   /* the leader's map version must exceed this */
    aether_term term_above;   /* the leader's term must exceed this */
} goal;

/* One look at the cluster: 0 if settled by the definition in the DESIGN
 * note (minus the quiet period), else -1 and why. */
static int settled_now(node_run *d, const goal *g, char *why, size_t cap, int *leader_out,
                       uint64_t *version_out)
{
    /* One leader and one map version over the live nodes: the oracle
     * (actors/invariants.h); the demo's goals are its own. */
    aether_oracle_view views[NODES_MAX];
    AETHER_ASSERT(d->n_nodes <= NODES_MAX);
    uint64_t served = 0;
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        views[i] = (aether_oracle_view){ .name = n->id, .node = n->id, .running = n->live };
        if (!n->live)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        views[i].is_leader = v.is_leader;
        views[i].map_version = v.map_version;
        served += v.shards_serving;
        if (!v.member || v.status != AETHER_NODE_ACTIVE) {
            snprintf(why, cap, "%s is not an Active member yet", n->id);
            return -1;
        }
        /* Every admitted node gets shards once balanced (when there are
         * enough of them): a node still at zero is a rebalance to come. */
        if (v.shards_serving == 0 && d->base.shard_count >= DEMO_SLOTS) {
            snprintf(why, cap, "%s serves nothing yet", n->id);
            return -1;
        }
    }
    aether_err err;
    uint64_t version = 0;
    uint32_t li = 0;
    if (aether_invariants_check_one_version(views, d->n_nodes, &version, &err) != AETHER_OK ||
        aether_invariants_leader(views, d->n_nodes, &li, &err) != AETHER_OK) {
        snprintf(why, cap, "%s", err.msg);
        return -1;
    }
    int leader = (int)li;
    *leader_out = leader;
    *version_out = version;
    aether_member_view lv;
    aether_member_view_get(d->nodes[leader].m, &lv);
    if (served != d->base.shard_count) {
        snprintf(why, cap, "%llu of %u shards served", (unsigned long long)served, d->base.shard_count);
        return -1;
    }
    if (version <= g->version_above) {
        snprintf(why, cap, "map still v%llu", (unsigned long long)version);
        return -1;
    }
    if (lv.term <= g->term_above) {
        snprintf(why, cap, "leader term still %llu", (unsigned long long)lv.term);
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    bool open = d->session_open;
    pthread_mutex_unlock(&d->mu);
    if (open) {
        snprintf(why, cap, "rebalance in progress");
        return -1;
    }
    return 0;
}

/* Waits (bounded by SETTLE_LIMIT_MS) until settled_now holds for
 * SETTLE_QUIET_MS on one map version. Fills the step's end fields. */
static bool wait_settled(node_run *d, step_rec *s, const goal *g)
{
    uint64_t steady_since = 0, steady_version = 0;
    char why[AETHER_ERR_MSG_MAX] = "not checked";
    for (uint32_t t = 0; t < SETTLE_LIMIT_MS / SETTLE_POLL_MS && node_stop_signal == 0; t++) {
        int leader = -1;
        uint64_t version = 0;
        if (settled_now(d, g, why, sizeof(why), &leader, &version) == 0) {
            uint64_t now = node_now_ns();
            if (steady_since == 0 || version != steady_version) {
                steady_since = now;
                steady_version = version;
            } else if (now - steady_since >= SETTLE_QUIET_MS * AETHER_NS_PER_MS) {
                aether_member_view v;
                aether_member_view_get(d->nodes[leader].m, &v);
                snprintf(s->leader, sizeof(s->leader), "%s", d->nodes[leader].id);
                s->term = v.term;
                s->map_version = version;
                s->settled = true;
                s->why[0] = '\0';
                return true;
            }
        } else {
            steady_since = 0;
        }
        node_flush_quiet_batches(d, false);
        node_idle_ms(d, SETTLE_POLL_MS);
    }
    snprintf(s->why, sizeof(s->why), "%s", node_stop_signal ? "interrupted" : why);
    s->settled = false;
    return false;
}

static void step_begin(node_run *d, uint32_t k, const char *name)
{
    step_rec *s = &d->steps[k];
    node_flush_quiet_batches(d, true);
    node_say(d, "\n== step %u: %s\n", k + 1, name);
    pthread_mutex_lock(&d->mu);
    s->name = name;
    s->start_ns = node_now_ns();
    d->step = (int)k;
    pthread_mutex_unlock(&d->mu);
}

static void step_end(node_run *d, uint32_t k)
{
    step_rec *s = &d->steps[k];
    s->end_ns = node_now_ns();
    node_flush_quiet_batches(d, true);
    if (s->settled)
        node_say(d, "-- settled in %llu ms: leader %s term %llu map v%llu\n",
            (unsigned long long)((s->end_ns - s->start_ns) / AETHER_NS_PER_MS), s->leader,
            (unsigned long long)s->term, (unsigned long long)s->map_version);
    else
        node_say(d, "-- NOT settled after %llu ms: %s\n",
            (unsigned long long)((s->end_ns - s->start_ns) / AETHER_NS_PER_MS), s->why);
}

/* A live node other than the leader (and other than `skip`), highest index
 * first so the joiner and the first nodes stay; -1 if none. */
static int pick_follower(node_run *d, int skip)
{
    for (int i = (int)d->n_nodes - 2; i >= 0; i--) {
        node_slot *n = &d->nodes[i];
        if (!n->live || i == skip)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (!v.is_leader)
            return i;
    }
    return -1;
}

static int current_leader(node_run *d)
{
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        if (!d->nodes[i].live)
            continue;
        aether_member_view v;
        aether_member_view_get(d->nodes[i].m, &v);
        if (v.is_leader)
            return (int)i;
    }
    return -1;
}

/* Waits until node i is Left and owns nothing in the leader's map. */
static bool wait_drained(node_run *d, uint32_t i, step_rec *s)
{
    node_slot *n = &d->nodes[i];
    aether_node_id nid;
    (void)aether_node_id_from_cstr(n->id, &nid, NULL);
    char why[AETHER_ERR_MSG_MAX] = "not checked";
    for (uint32_t t = 0; t < SETTLE_LIMIT_MS / SETTLE_POLL_MS && node_stop_signal == 0; t++) {
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        int leader = current_leader(d);
        size_t owned = 1;
        if (leader >= 0) {
            uint32_t one;
            aether_status st = aether_route_node_shards(aether_member_slot(d->nodes[leader].m), &nid,
                                                        &one, 0, &owned, NULL);
            if (st == AETHER_ENOTFOUND)
                owned = 0;
        }
        pthread_mutex_lock(&d->mu);
        uint32_t serving = n->serving_count;
        pthread_mutex_unlock(&d->mu);
        if (v.status == AETHER_NODE_LEFT && v.shards_serving == 0 && serving == 0 && owned == 0)
            return true;
        snprintf(why, sizeof(why), "%s is %s, serves %u, owns %zu in the leader's map", n->id,
                 aether_node_status_name(v.status), v.shards_serving, owned);
        node_flush_quiet_batches(d, false);
        node_idle_ms(d, SETTLE_POLL_MS);
    }
    snprintf(s->why, sizeof(s->why), "%s", node_stop_signal ? "interrupted" : why);
    return false;
}

static uint64_t step_ms(const step_rec *s) { return (s->end_ns - s->start_ns) / AETHER_NS_PER_MS; }

static void print_summary_text(node_run *d, uint32_t steps_run, double failover_ms, int leader, bool ok)
{
    printf("\n== summary (%u nodes at start, %u shards, seed %llu)\n", DEMO_NODES, d->base.shard_count,
           (unsigned long long)d->opt.seed);
    printf("%-4s %-34s %9s %7s %-8s %5s %5s %s\n", "step", "what", "duration", "moved", "leader", "term",
           "map", "result");
    for (uint32_t k = 0; k < steps_run; k++) {
        const step_rec *s = &d->steps[k];
        char dur[24];
        snprintf(dur, sizeof(dur), "%llu ms", (unsigned long long)step_ms(s));
        printf("%-4u %-34s %9s %7u %-8s %5llu %5llu %s\n", k + 1, s->name, dur, s->moved,
               s->settled ? s->leader : "-", (unsigned long long)s->term,
               (unsigned long long)s->map_version, s->settled ? "settled" : s->why);
    }
    printf("\nfinal shards per node:\n");
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const node_slot *n = &d->nodes[i];
        const char *state = n->live ? "live" : n->left ? "left (drained)" : n->crashed ? "crashed" : "-";
        printf("  %-8s %-15s %5u%s\n", n->id, state, n->serving_count,
               leader == (int)i ? "  (leader)" : "");
    }
    if (failover_ms >= 0)
        printf("\nleader failover: %.0f ms from the crash to a new node acting as leader\n", failover_ms);
    else
        printf("\nleader failover: not measured\n");
    printf("single-ownership/I1 violations: %u%s%s\n", d->violations, d->violations ? ", first: " : "",
           d->violations ? d->first_violation : "");
    printf("result: %s\n", ok ? "OK" : "FAILED");
}

static void print_summary_json(node_run *d, uint32_t steps_run, double failover_ms, bool ok)
{
    json_t *root = json_object();
    json_t *steps = json_array();
    for (uint32_t k = 0; k < steps_run; k++) {
        const step_rec *s = &d->steps[k];
        json_t *js = json_object();
        json_object_set_new(js, "step", json_integer(k + 1));
        json_object_set_new(js, "what", json_string(s->name));
        json_object_set_new(js, "duration_ms", json_integer((json_int_t)step_ms(s)));
        json_object_set_new(js, "moved", json_integer(s->moved));
        json_object_set_new(js, "settled", json_boolean(s->settled));
        json_object_set_new(js, "leader", s->settled ? json_string(s->leader) : json_null());
        json_object_set_new(js, "term", json_integer((json_int_t)s->term));
        json_object_set_new(js, "map_version", json_integer((json_int_t)s->map_version));
        if (!s->settled)
            json_object_set_new(js, "why", json_string(s->why));
        json_array_append_new(steps, js);
    }
    json_t *shards = json_object();
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const node_slot *n = &d->nodes[i];
        json_t *jn = json_object();
        json_object_set_new(jn, "state", json_string(n->live ? "live" : n->left ? "left" : n->crashed ? "crashed" : "-"));
        json_object_set_new(jn, "shards", json_integer(n->serving_count));
        json_object_set_new(shards, n->id, jn);
    }
    json_object_set_new(root, "nodes_at_start", json_integer(DEMO_NODES));
    json_object_set_new(root, "shard_count", json_integer(d->base.shard_count));
    json_object_set_new(root, "seed", json_integer((json_int_t)d->opt.seed));
    json_object_set_new(root, "steps", steps);
    json_object_set_new(root, "final", shards);
    json_object_set_new(root, "failover_ms", failover_ms >= 0 ? json_real(failover_ms) : json_null());
    json_object_set_new(root, "violations", json_integer(d->violations));
    if (d->violations)
        json_object_set_new(root, "first_violation", json_string(d->first_violation));
    json_object_set_new(root, "ok", json_boolean(ok));
    json_dumpf(root, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(root);
}

int node_demo_run(node_run *d)
{
    node_say(d, "aether-node demo: %u nodes on the real clock (pool of %u workers), %u shards, seed %llu\n",
        DEMO_NODES, aether_pool_workers(d->ex), d->base.shard_count, (unsigned long long)d->opt.seed);
    uint32_t k = 0;
    bool ok = true;
    double failover_ms = -1;
    const uint32_t joiner = DEMO_NODES; /* index of node-6 */

    /* (a) five nodes start and settle. */
    step_begin(d, k, "start 5 nodes");
    for (uint32_t i = 0; i < DEMO_NODES && ok; i++)
        ok = node_start(d, i) == 0;
    goal g = { .version_above = 0, .term_above = 0 };
    ok = ok && wait_settled(d, &d->steps[k], &g);
    step_end(d, k++);

    /* (b) a sixth node joins. */
    if (ok) {
        step_begin(d, k, "node-6 joins");
        g = (goal){ .version_above = d->steps[k - 1].map_version };
        ok = node_start(d, joiner) == 0 && wait_settled(d, &d->steps[k], &g);
        step_end(d, k++);
    }

    /* (c) graceful drain of a follower. */
    if (ok) {
        int victim = pick_follower(d, -1);
        static char name_c[96];
        snprintf(name_c, sizeof(name_c), "drain %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_c);
        ok = victim >= 0 && aether_member_drain(d->nodes[victim].m) == AETHER_OK &&
             wait_drained(d, (uint32_t)victim, &d->steps[k]);
        if (ok) {
            node_say(d, "+%llums %s is Left and owns nothing: stopping it\n",
                (unsigned long long)node_since_start_ms(d), d->nodes[victim].id);
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].left = true;
            g = (goal){ .version_above = d->steps[k - 1].map_version };
            ok = wait_settled(d, &d->steps[k], &g);
        }
        step_end(d, k++);
    }

    /* (d) crash a follower: no drain, its shards are re-owned after it is
     * declared failed. */
    if (ok) {
        int victim = pick_follower(d, -1);
        static char name_d[96];
        snprintf(name_d, sizeof(name_d), "crash follower %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_d);
        ok = victim >= 0;
        if (ok) {
            node_say(d, "+%llums crashing %s (serving %u)\n", (unsigned long long)node_since_start_ms(d),
                d->nodes[victim].id, d->nodes[victim].serving_count);
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].crashed = true;
            g = (goal){ .version_above = d->steps[k - 1].map_version };
            ok = wait_settled(d, &d->steps[k], &g);
        }
        step_end(d, k++);
    }

    /* (e) crash the leader: measure the failover. */
    if (ok) {
        int victim = current_leader(d);
        static char name_e[96];
        snprintf(name_e, sizeof(name_e), "crash leader %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_e);
        ok = victim >= 0;
        if (ok) {
            aether_member_view old;
            aether_member_view_get(d->nodes[victim].m, &old);
            node_say(d, "+%llums crashing the leader %s (term %llu, serving %u)\n",
                (unsigned long long)node_since_start_ms(d), d->nodes[victim].id,
                (unsigned long long)old.term, d->nodes[victim].serving_count);
            uint64_t t0 = node_now_ns();
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].crashed = true;
            int next = -1;
            for (uint32_t t = 0; t < SETTLE_LIMIT_MS / FAILOVER_POLL_MS && next < 0 && node_stop_signal == 0; t++) {
                for (uint32_t i = 0; i < d->n_nodes && next < 0; i++) {
                    if (!d->nodes[i].live)
                        continue;
                    aether_member_view v;
                    aether_member_view_get(d->nodes[i].m, &v);
                    if (v.is_leader && v.term > old.term)
                        next = (int)i;
                }
                if (next < 0)
                    node_idle_ms(d, FAILOVER_POLL_MS);
            }
            if (next >= 0) {
                failover_ms = (double)(node_now_ns() - t0) / 1e6;
                node_say(d, "+%llums %s acts as leader: failover %.0f ms\n",
                    (unsigned long long)node_since_start_ms(d), d->nodes[next].id, failover_ms);
            }
            g = (goal){ .version_above = d->steps[k - 1].map_version, .term_above = old.term };
            ok = next >= 0 && wait_settled(d, &d->steps[k], &g);
            if (next < 0)
                snprintf(d->steps[k].why, sizeof(d->steps[k].why), "no new leader within %u ms",
                         SETTLE_LIMIT_MS);
        }
        step_end(d, k++);
    }

    node_flush_quiet_batches(d, true);
    int leader = current_leader(d); /* views are read outside mu */
    pthread_mutex_lock(&d->mu);
    d->step = -1;
    bool pass = ok && k == DEMO_STEPS && d->violations == 0;
    /* The summary reads the tracking state: hold mu so late callbacks wait. */
    if (d->opt.json)
        print_summary_json(d, k, failover_ms, pass);
    else
        print_summary_text(d, k, failover_ms, leader, pass);
    fflush(stdout);
    pthread_mutex_unlock(&d->mu);
    return pass ? 0 : 1;
}

