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

#include <stdint.h>

#include "events.h"
#include "node.h"
#include "node_id.h"
#include "status.h"

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
} aether_config;

/* Fills every field with its default; node stays empty (required). */
void aether_config_defaults(aether_config *c);
/* AETHER_OK, or AETHER_EINVAL with err naming the parameter and why. */
aether_status aether_config_validate(const aether_config *c, aether_err *err);

#endif
