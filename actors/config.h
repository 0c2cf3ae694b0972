/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h: a node's configuration, its defaults (DESIGN 5) and the check
 * that refuses timings that cannot be safe (actors layer).
 *
 * Safety rules (each refusal names the parameter and the reason):
 *  - lease_renew_interval_ms <= lease_ttl_ms / 3: a leader must get at least
 *    two renewals in before its lease can lapse;
 *  - lease_safety_margin_ms (covers clock drift between holder and server)
 *    below the ttl, and ttl - margin > renew interval;
 *  - failure_timeout_ms >= 2 * heartbeat_interval_ms: one lost heartbeat must
 *    not fail a node;
 *  - fence_margin_ms < failure_timeout_ms: a node cut off from the leader
 *    fences itself (stops serving) at failure_timeout - fence_margin, before
 *    the leader may declare it failed and hand its shards to others;
 *  - handoff_timeout_ms > failure_timeout_ms: an old owner that never saw
 *    the handoff (cut off) has fenced itself before the leader releases its
 *    shard by decree;
 *  - node_retention_ms >= failure_timeout_ms and >= brake_window_ms: a node
 *    is remembered at least as long as its departure can still matter to
 *    failure detection and to the brake;
 *  - replication <= AETHER_REPLICATION_MAX, shard_count 1..65536,
 *    mailbox_capacity a power of two.
 * Threading: a value; no shared state.
 */
#ifndef AETHER_CONFIG_H
#define AETHER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "node.h"
#include "node_id.h"
#include "status.h"

/* allowed_nodes' text bound: 64 ids of 63 characters and their commas. */
#define AETHER_ALLOWED_NODES_TEXT_MAX 4095

typedef struct aether_config {
    char cluster[AETHER_CLUSTER_NAME_MAX + 1]; /* default "aether" */
    aether_node_id node;                       /* required */
    char address[AETHER_NODE_ADDRESS_LEN_MAX + 1]; /* default: the node id */
    char zone[AETHER_NODE_ZONE_LEN_MAX + 1];   /* "" = none */

    uint32_t shard_count;             /* 1024 */
    uint32_t replication;             /* 1 */
    uint32_t heartbeat_interval_ms;   /* 200 */
    uint32_t failure_timeout_ms;      /* 1000 */
    uint32_t lease_ttl_ms;            /* 1000 */
    uint32_t lease_renew_interval_ms; /* ttl / 4 */
    uint32_t lease_safety_margin_ms;  /* ttl / 10: clock drift allowance */
    uint32_t election_jitter_ms;      /* 50: campaign after 0..jitter */
    uint32_t rebalance_debounce_ms;   /* 100 */
    uint32_t handoff_timeout_ms;      /* 5000 */
    uint32_t fence_margin_ms;         /* 200: drift allowance for self-fencing */
    uint32_t mailbox_capacity;        /* 4096 */
    uint32_t max_concurrent_handoffs; /* 64 */
    uint32_t brake_max_offline;       /* 0 = one third of the live (Active + Draining) nodes */
    uint32_t brake_window_ms;         /* 10000 */
    uint32_t node_retention_ms;       /* 600000: a Left or Failed node is forgotten after this */
    /* "" (default): any id that passes admission may join. Otherwise the ids
     * this node, as leader, admits: comma-separated NodeIds ("n1,n2,n3"),
     * this node's own among them. Per node (not in the admission
     * fingerprint): a rolling restart changes it; the leader's list counts. */
    char allowed_nodes[AETHER_ALLOWED_NODES_TEXT_MAX + 1];
} aether_config;

/* True when c admits id: allowed_nodes is "" or names it. Pure. */
bool aether_config_allows(const aether_config *c, const aether_node_id *id);

/* Fills every field with its default; node stays empty (required). */
void aether_config_defaults(aether_config *c);
/* AETHER_OK, or AETHER_EINVAL with err naming the parameter and why. */
aether_status aether_config_validate(const aether_config *c, aether_err *err);

/* What this configuration must share with every other member (DESIGN 2,
 * "Admission"; docs/cluster.md): shard_count, replication, the wire
 * versions this build speaks, and `params`, the XXH64 of a canonical text
 * naming the other cluster-wide parameters:
 *   key hashing (XXH64, seed 0), the rebalancing strategy's name,
 *   lease_ttl_ms (the lease bucket's TTL: a holder acting on a longer one
 *   would outlive its lease), failure_timeout_ms and fence_margin_ms (a
 *   node serves until failure_timeout - fence_margin after an
 *   acknowledged keep-alive by its own values, the leader fails it after
 *   failure_timeout by its own), handoff_timeout_ms (an old owner fences a
 *   Releasing shard by its own value, the leader decrees by its own).
 * Per-node parameters (heartbeat interval, renew interval, safety margin,
 * jitter, debounce, mailbox, handoff budget, brake) may differ. */
void aether_config_admission(const aether_config *c, aether_admission *out);
/* The canonical text the fingerprint hashes, for logs ("key_hash=xxh64-seed0
 * strategy=balanced lease_ttl_ms=1000 ..."); snprintf rules. */
int aether_config_params_text(const aether_config *c, char *buf, size_t cap);

#endif
