/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/nats_mode.c: one node per process over NATS (tools
 * layer; main thread). What it does: main.c's header, NATS mode.
 */
#include "node_run.h"

/* ---- NATS mode (one node) ------------------------------------------------------ */

/* Prints a line when this node's is_leader flips, or when it leads a new
 * term (a loss and a re-election between two polls: both lines). */
static void leader_poll(node_run *d)
{
    node_slot *n = &d->nodes[0];
    if (n->m == NULL)
        return;
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.is_leader == d->was_leader && (!v.is_leader || v.term == d->was_leader_term))
        return;
    if (v.is_leader && d->was_leader)
        node_say(d, "+%llums %s LEADER lost term=%llu leader=%s\n", (unsigned long long)node_since_start_ms(d),
            n->id, (unsigned long long)d->was_leader_term, n->id);
    d->was_leader = v.is_leader;
    d->was_leader_term = v.is_leader ? v.term : 0;
    if (v.is_leader)
        node_say(d, "+%llums %s LEADER elected term=%llu\n", (unsigned long long)node_since_start_ms(d), n->id,
            (unsigned long long)v.term);
    else
        node_say(d, "+%llums %s LEADER lost term=%llu leader=%s\n", (unsigned long long)node_since_start_ms(d),
            n->id, (unsigned long long)v.term, v.leader.len ? v.leader.str : "-");
}

int node_nats_mode_run(node_run *d)
{
    node_slot *n = &d->nodes[0];
    node_say(d, "aether-node: nats %s, node %s, cluster %s, %u shards, replication %u, pool of %u workers\n",
        d->opt.s.nats.urls, n->id, d->base.cluster, d->base.shard_count, d->base.replication,
        aether_pool_node_workers());
    int rc = node_start(d, 0);
    if (rc == NODE_START_STOPPED)
        return 0; /* stopped while waiting for JetStream: never joined (said so) */
    if (rc != 0)
        return rc;
    node_say(d, "+%llums %s started\n", (unsigned long long)node_since_start_ms(d), n->id);
    node_notify_systemd("READY=1\nSTATUS=running: joining or serving (aetherctl status)");
    uint64_t deadline = d->opt.duration_s > 0
                            ? d->start_ns + (uint64_t)(d->opt.duration_s * 1e9)
                            : UINT64_MAX;
    aether_member_view v;
    bool superseded = false;
    bool left = false; /* drained from outside (aetherctl drain) and declared Left */
    while (node_stop_signal == 0 && node_now_ns() < deadline && !superseded && !left) {
        node_idle_ms(d, TICK_MS);
        node_flush_quiet_batches(d, false);
        leader_poll(d);
        aether_err why = { 0 };
        if (aether_member_admission(n->m, &why) == AETHER_EINCOMPATIBLE) {
            /* Nothing to drain: the cluster never admitted this node. */
            node_flush_quiet_batches(d, true);
            fprintf(stderr, "aether-node: %s: join refused: %s\n", n->id, why.msg);
            char params[256];
            (void)aether_config_params_text(&d->base, params, sizeof(params));
            fprintf(stderr, "aether-node: %s: this node: shard_count %u, replication %u, wire "
                    "versions %u..%u, %s\n", n->id, d->base.shard_count, d->base.replication,
                    AETHER_WIRE_VERSION_MIN, AETHER_WIRE_VERSION_MAX, params);
            return EXIT_INCOMPATIBLE;
        }
        aether_member_view_get(n->m, &v);
        superseded = v.superseded;
        left = v.has_left;
    }
    node_flush_quiet_batches(d, true);
    if (superseded) {
        /* No drain: a LeaveCluster names the node id, which the newer
         * process holds now (aether_member_drain refuses it anyway). */
        fprintf(stderr, "aether-node: %s superseded by a newer process of node %s (incarnation %llu > "
                "%llu): exiting %d without draining\n", n->id, n->id,
                (unsigned long long)v.superseded_by, (unsigned long long)v.incarnation, EXIT_SUPERSEDED);
        node_say(d, "+%llums %s superseded (incarnation %llu > %llu): stopping\n",
            (unsigned long long)node_since_start_ms(d), n->id, (unsigned long long)v.superseded_by,
            (unsigned long long)v.incarnation);
        node_print_status(d);
        return EXIT_SUPERSEDED;
    }
    node_say(d, "+%llums stopping (%s)\n", (unsigned long long)node_since_start_ms(d),
        left                    ? "drained and left: nothing left to do"
        : node_stop_signal == SIGINT  ? "SIGINT"
        : node_stop_signal == SIGTERM ? "SIGTERM"
                                 : "duration reached");

    /* Drain, bounded: until the leader says Left (a leader resigns first,
     * member_lease.c policy 9, and its successor finishes the drain). A
     * node that has left already skips it. */
    node_notify_systemd("STOPPING=1\nSTATUS=draining");
    aether_status st = left ? AETHER_OK : aether_node_drain(d->node, 0); /* asks once, returns */
    if (st == AETHER_ETIMEOUT || st == AETHER_ENOTLEADER) /* asked; not Left yet: waited for below */
        st = AETHER_OK;
    uint64_t limit_ms = (uint64_t)d->base.handoff_timeout_ms + DRAIN_EXTRA_MS;
    if (!left)
        node_say(d, "+%llums %s draining (%s; waiting at most %llu ms)\n",
            (unsigned long long)node_since_start_ms(d), n->id,
            st == AETHER_OK ? "leave requested" : aether_status_str(st), (unsigned long long)limit_ms);
    uint64_t t0 = node_now_ns(), asked = t0;
    bool done = false;
    for (;;) {
        aether_member_view_get(n->m, &v);
        if (v.status == AETHER_NODE_LEFT || v.has_left) { /* the leader's NodeLeft: not declared
                                                              failed later */
            done = true;
            break;
        }
        if (v.status == AETHER_NODE_DRAINING && v.nodes_active == 0) {
            node_say(d, "+%llums %s no other active node: nothing to hand off to\n",
                (unsigned long long)node_since_start_ms(d), n->id);
            done = true;
            break;
        }
        uint64_t now = node_now_ns();
        if (now - t0 >= limit_ms * AETHER_NS_PER_MS)
            break;
        if (v.status == AETHER_NODE_ACTIVE && now - asked >= DRAIN_RETRY_MS * AETHER_NS_PER_MS) {
            (void)aether_node_drain(d->node, 0); /* asks again: the leader may have changed */
            asked = now;
        }
        node_idle_ms(d, TICK_MS);
        node_flush_quiet_batches(d, false);
        leader_poll(d);
    }
    node_flush_quiet_batches(d, true);
    leader_poll(d);
    if (done)
        node_say(d, "+%llums %s drained: status %s, serving %u\n", (unsigned long long)node_since_start_ms(d), n->id,
            aether_node_status_name(v.status), v.shards_serving);
    else
        node_say(d, "+%llums %s drain not finished after %llu ms (status %s, serving %u): stopping anyway\n",
            (unsigned long long)node_since_start_ms(d), n->id, (unsigned long long)limit_ms,
            aether_node_status_name(v.status), v.shards_serving);
    node_print_status(d);
    aether_member_view_get(n->m, &v);
    node_trace(d, n, "STATS decoded=%llu decode_rejected=%llu stale_dropped=%llu leader_changes=%llu "
          "rebalances=%llu shards_moved=%llu map_version=%llu term=%llu serving=%u",
          (unsigned long long)aether_codec_stats_decoded(aether_node_codec_stats(d->node)),
          (unsigned long long)aether_codec_stats_rejected_total(aether_node_codec_stats(d->node)),
          (unsigned long long)v.stale_dropped, (unsigned long long)v.leader_changes,
          (unsigned long long)v.rebalances, (unsigned long long)v.shards_moved,
          (unsigned long long)v.map_version, (unsigned long long)v.term, v.shards_serving);
    return node_violations_exit(d);
}

