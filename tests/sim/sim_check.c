/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_check.c: the simulator's checks (tests layer): what it observes of the
 * nodes, judged by the oracle (actors/invariants.h) where one applies.
 * See sim_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- checks ----------------------------------------------------------------- */

/* I1 at this instant: at most one node may act as leader
 * (aether_invariants_check_one_leader over the nodes that ever led, or all
 * of them while scan_every_step). */
void sim_check_leaders(sim *s)
{
    uint32_t count = s->scan_every_step ? s->n_nodes : s->n_led, k_views = 0;
    for (uint32_t k = 0; k < count; k++) {
        snode *n = s->scan_every_step ? &s->nodes[k] : &s->nodes[s->led[k]];
        if (n->m == NULL || (!s->scan_every_step && !n->ever_led))
            continue;
        if (!aether_member_leads(n->m))
            continue;
        s->views[k_views++] = (aether_oracle_view){ .name = n->id, .node = n->id, .running = true,
                                                    .is_leader = true };
    }
    aether_err err;
    if (k_views > 1 && aether_invariants_check_one_leader(s->views, k_views, &err) != AETHER_OK)
        sim_world_fail(s, "%s", err.msg);
}

/* A node that holds shards and regains the right to serve must not hold one
 * that another node serves. */
void sim_check_serving(sim *s, snode *n)
{
    bool ms = may_serve(n);
    if (ms && !n->may_serve_last && n->serving_count > 0) {
        for (uint32_t sh = 0; sh < s->o.shards; sh++) {
            if (!n->serving[sh])
                continue;
            snode *o = sim_check_co_holder(s, n, sh);
            if (o != NULL) {
                sim_world_fail(s, "single ownership: %s may serve shard %u again while %s serves it", n->id,
                     sh, o->id);
                break;
            }
        }
    }
    n->may_serve_last = ms;
}

void sim_check_node_ms(sim *s, snode *n)
{
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.generation != n->view_gen) { /* terms are compared within a generation */
        n->view_gen = v.generation;
        n->last_term = 0;
    }
    if (v.map_generation != n->map_view_gen) { /* map versions within theirs */
        n->map_view_gen = v.map_generation;
        n->last_map_version = 0;
    }
    if (v.map_version < n->last_map_version)
        sim_world_fail(s, "%s: map version went back from %" PRIu64 " to %" PRIu64, n->id, n->last_map_version,
             v.map_version);
    if (v.term < n->last_term)
        sim_world_fail(s, "%s: term went back from %" PRIu64 " to %" PRIu64, n->id, n->last_term, v.term);
    n->last_map_version = v.map_version;
    n->last_term = v.term;
    /* I5, with the grace the design allows (a new leader admits itself
     * within a heartbeat; a draining one leaves once a successor exists). */
    bool bad = false;
    if (v.is_leader && (!v.member || v.status != AETHER_NODE_ACTIVE)) {
        aether_topology topo;
        if (aether_member_topology(n->m, &topo) == AETHER_OK) {
            for (uint32_t i = 0; i < topo.count && !bad; i++)
                bad = topo.nodes[i].status == AETHER_NODE_ACTIVE &&
                      strcmp(topo.nodes[i].id.str, n->id) != 0;
            aether_topology_fini(&topo);
        } else {
            bad = true;
        }
    }
    /* The leader records its own admission in the state store first: while
     * it cannot reach the store, or while it is paused or isolated (its lease
     * runs out, or it resigns, meanwhile), or after a slow store call stalled
     * the world, I5 cannot be restored in time, and the grace starts again. */
    if (!bad || sim_store_down(&n->px[SIM_STORE_STATE]) || n->paused || n->isolated ||
        n->i5_bad_since_ns < s->last_stall_ns) {
        n->i5_bad_since_ns = 0;
    } else if (n->i5_bad_since_ns == 0) {
        n->i5_bad_since_ns = now_ns(s);
    } else if (now_ns(s) - n->i5_bad_since_ns > (uint64_t)s->base.failure_timeout_ms * MS) {
        sim_world_fail(s, "I5: leader %s has been %s for %" PRIu64 " ms while an Active node exists", n->id,
             v.member ? aether_node_status_name(v.status) : "not a member",
             (now_ns(s) - n->i5_bad_since_ns) / MS);
    }
}

void sim_check_step(sim *s)
{
    sim_check_leaders(s);
    if (s->scan_every_step)
        for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++)
            if (s->nodes[i].m != NULL)
                sim_check_serving(s, &s->nodes[i]);
}

/* ---- liveness ----------------------------------------------------------------- */
/* Every node's view for the oracle (actors/invariants.h), into s->views. */
static void oracle_views(sim *s)
{
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        aether_oracle_view *ov = &s->views[i];
        *ov = (aether_oracle_view){ .name = n->id, .node = n->id, .running = n->m != NULL,
                                    .frozen = n->paused, .serving = n->serving,
                                    .serving_count = n->serving_count };
        if (n->m == NULL) {
            /* Its id is another process's now, or it must be out of service. */
            ov->expect = n->superseded || sim_world_id_running_elsewhere(s, n) ? AETHER_EXPECT_ANY
                                                                      : AETHER_EXPECT_DOWN;
            continue;
        }
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        ov->is_leader = v.is_leader;
        ov->may_serve = may_serve(n);
        ov->map_version = v.map_version;
        /* Left, then forgotten by the leader (node_retention_ms): the node
         * itself knows it left for good. */
        ov->expect = !n->drain_requested ? AETHER_EXPECT_ACTIVE
                     : v.has_left        ? AETHER_EXPECT_LEFT_OR_FORGOTTEN
                                         : AETHER_EXPECT_LEFT;
    }
}

/* 0 when the cluster has settled (DESIGN 4: aether_invariants_check_settled),
 * else writes why. */
int sim_check_settled(sim *s, char *why, size_t cap)
{
    oracle_views(s);
    aether_err err = { 0 };
    uint32_t li = 0;
    if (aether_invariants_leader(s->views, s->n_nodes, &li, &err) != AETHER_OK)
        return snprintf(why, cap, "%s", err.msg), -1;
    snode *leader = &s->nodes[li];
    aether_topology topo;
    bool have_topo = aether_member_topology(leader->m, &topo) == AETHER_OK;
    aether_rcu_read_lock();
    aether_settled_input in = {
        .views = s->views, .n_views = s->n_nodes, .leader = li,
        .map = aether_shardmap_slot_current(aether_member_slot(leader->m)),
        .topo = have_topo ? &topo : NULL, .replication = s->o.replication, .holders = s->holders,
    };
    aether_status st = aether_invariants_check_settled(&in, &err);
    aether_rcu_read_unlock();
    if (have_topo)
        aether_topology_fini(&topo);
    if (st != AETHER_OK)
        return snprintf(why, cap, "%s", err.msg), -1;
    return 0;
}

/* For a liveness failure: every node's view and, per node of the leader's
 * topology, its status and what the leader's map gives it. */
void sim_check_describe(sim *s)
{
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL) {
            sim_world_trace(s, "STATE %s down%s", n->id, n->left ? " (left)" : "");
            continue;
        }
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (v.is_leader)
            leader = n;
        sim_world_trace(s, "STATE %s %s%s term %" PRIu64 " map v%" PRIu64 " %s serving %u may_serve %d%s",
                   n->id, v.is_leader ? "LEADER " : "", v.member ? aether_node_status_name(v.status) : "non-member",
                   v.term, v.map_version, v.fenced ? "fenced" : "", n->serving_count, may_serve(n),
                   n->paused ? " paused" : "");
    }
    if (leader == NULL)
        return;
    aether_topology topo;
    if (aether_member_topology(leader->m, &topo) != AETHER_OK)
        return;
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(aether_member_slot(leader->m));
    for (uint32_t i = 0; map != NULL && i < topo.count; i++) {
        aether_node_index idx = aether_shardmap_find_node(map, &topo.nodes[i].id);
        size_t p = 0, o = 0;
        if (idx != AETHER_NODE_INDEX_NONE) {
            (void)aether_shardmap_node_primary_shards(map, idx, &p);
            (void)aether_shardmap_node_owner_shards(map, idx, &o);
        }
        sim_world_trace(s, "STATE leader's view: %s %s inc %" PRIu64 ": %zu primaries, %zu owned",
                   topo.nodes[i].id.str, aether_node_status_name(topo.nodes[i].status),
                   topo.nodes[i].incarnation, p, o);
    }
    /* What the default strategy would do from here. */
    aether_strategy_node *sn = calloc(topo.count ? topo.count : 1, sizeof(*sn));
    for (uint32_t i = 0; sn != NULL && i < topo.count; i++)
        aether_strategy_node_from_info(&sn[i], &topo.nodes[i]);
    aether_strategy_config sc = { .shard_count = s->o.shards, .replication = s->o.replication };
    aether_shardmap *target = NULL;
    aether_rebalance_plan *plan = NULL;
    if (sn != NULL && map != NULL &&
        aether_strategy_default()->compute(map, sn, topo.count, &sc, map->term, &target, &plan,
                                           NULL) == AETHER_OK)
        sim_world_trace(s, "STATE the strategy from here: %u primaries move, %u slots added, %u deferred",
                   plan->primaries_moved, plan->slots_added, plan->deferred);
    aether_shardmap_destroy(target);
    aether_rebalance_plan_destroy(plan);
    free(sn);
    aether_rcu_read_unlock();
    aether_topology_fini(&topo);
}

/* The leader's map is balanced within the strategy's bound
 * (aether_invariants_check_balance): what the strategy reaches once no
 * brake holds it back. 0 if so, else writes why. */
int sim_check_balanced(sim *s, char *why, size_t cap)
{
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        aether_member_view v;
        if (s->nodes[i].m != NULL && (aether_member_view_get(s->nodes[i].m, &v), v.is_leader))
            leader = &s->nodes[i];
    }
    if (leader == NULL)
        return snprintf(why, cap, "no leader"), -1;
    aether_topology topo;
    if (aether_member_topology(leader->m, &topo) != AETHER_OK)
        return snprintf(why, cap, "no topology"), -1;
    int rc = 0;
    aether_err err = { 0 };
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(aether_member_slot(leader->m));
    if (map == NULL)
        rc = -1, snprintf(why, cap, "no map");
    else if (aether_invariants_check_balance(map, &topo, &err) != AETHER_OK)
        rc = -1, snprintf(why, cap, "%s", err.msg);
    aether_rcu_read_unlock();
    aether_topology_fini(&topo);
    return rc;
}
