/* SPDX-License-Identifier: Apache-2.0 */
/*
 * node.h: the node value objects: NodeStatus, NodeInfo, Term and the
 * LeadershipLease (actors layer).
 *
 * NodeStatus lifecycle (DESIGN 2): Active -> Draining -> Left, and
 * Active|Draining -> Failed. A Left or Failed node that comes back rejoins as
 * Active with a higher incarnation: that is a new NodeInfo, not a transition.
 * Healthy = Active or Draining; only Active nodes receive new shards.
 *
 * Lease (DESIGN 2.4): the holder acts as leader only while
 *     now < renewed_at + ttl - safety_margin
 * on its own monotonic clock, where renewed_at is when the successful
 * create/update was *sent* (the server's TTL starts later, never earlier) and
 * the margin covers clock drift between holder and store. Because the margin
 * is subtracted, the holder stops acting strictly before any other node can
 * win the key after the TTL expires: that is what makes I1 hold at every
 * instant, not just per term.
 *
 * Threading: plain values; every function is pure and may be called from any
 * thread. Times are injected (the clock is never read here).
 */
#ifndef AETHER_NODE_H
#define AETHER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "assertion.h"
#include "node_id.h"
#include "status.h"

/* ---- NodeStatus ---------------------------------------------------------- */

typedef enum aether_node_status {
    AETHER_NODE_ACTIVE = 0, /* serving; may receive new shards; may lead (I5) */
    AETHER_NODE_DRAINING,   /* leaving gracefully: shards are moved away */
    AETHER_NODE_LEFT,       /* gone after draining; owns nothing */
    AETHER_NODE_FAILED,     /* declared failed by the leader (silent too long) */
    AETHER_NODE_STATUS_COUNT_
} aether_node_status;

/* The wire/CLI name: "active", "draining", "left", "failed"; "?" when s is out
 * of range. Never NULL. */
const char *aether_node_status_name(aether_node_status s);

/* Parses exactly one of the names above (case-sensitive). AETHER_EINVAL with
 * a message naming the unknown value otherwise. */
aether_status aether_node_status_parse(const char *name, aether_node_status *out,
                                       aether_err *err);

/* Healthy = Active or Draining (owners must be healthy, I3). */
static inline bool aether_node_status_is_healthy(aether_node_status s)
{
    return s == AETHER_NODE_ACTIVE || s == AETHER_NODE_DRAINING;
}

/* True when `to` may follow `from` within one incarnation: Active->Draining,
 * Draining->Left, Active->Failed, Draining->Failed. Staying put is not a
 * transition (false). */
bool aether_node_status_transition_is_valid(aether_node_status from, aether_node_status to);

/* ---- NodeInfo ------------------------------------------------------------ */

/* What every member of a cluster must share (DESIGN 2, "Admission"): a
 * JoinCluster carries the joiner's, the leader compares them with the
 * cluster's (aether_admission_check). `params` fingerprints the other
 * cluster-wide parameters (aether_config_admission says which). */
typedef struct aether_admission {
    uint32_t shard_count;       /* 1..AETHER_SHARD_COUNT_MAX */
    uint32_t replication;       /* 1..AETHER_REPLICATION_MAX */
    uint32_t wire_min, wire_max; /* 1 <= wire_min <= wire_max <= AETHER_WIRE_VERSION_LIMIT */
    uint64_t params;            /* fingerprint, any value */
} aether_admission;


#define AETHER_NODE_ADDRESS_LEN_MAX 255
#define AETHER_NODE_ZONE_LEN_MAX 64

typedef struct aether_node_info {
    aether_node_id id;
    char address[AETHER_NODE_ADDRESS_LEN_MAX + 1]; /* opaque, 1..255 bytes, no control bytes */
    char zone[AETHER_NODE_ZONE_LEN_MAX + 1];       /* "" = no zone; else NodeId alphabet */
    aether_node_status status;
    uint64_t incarnation;  /* grows each time the same id rejoins; assigned by the leader
                              (topology.h, "Incarnations") */
    uint64_t joined_at_ms; /* wall clock, ms since the Unix epoch */
    uint64_t nonce;        /* the process's nonce, drawn once per process (1..2^63-1; 0 =
                              not said: a process or leader from before leader-assigned
                              incarnations) */
    aether_admission terms; /* the terms its JoinCluster carried when a leader admitted it,
                               kept in the stored topology (member_shape.c: the recorded
                               shapes); shard_count 0 = not recorded (an older record,
                               a bare aggregate, or a follower's copy built from events) */
} aether_node_info;

/* Builds and validates a NodeInfo from strings (zone NULL or "" = none).
 * AETHER_EINVAL with a message naming the field ("address: ...",
 * "zone: ...", "id: ...") on bad input; *out is zeroed then. */
aether_status aether_node_info_make(aether_node_info *out, const char *id, const char *address,
                                    const char *zone, aether_node_status status,
                                    uint64_t incarnation, uint64_t joined_at_ms, aether_err *err);

/* Checks every field of an existing NodeInfo (e.g. one decoded from the wire). */
aether_status aether_node_info_validate(const aether_node_info *info, aether_err *err);

/* ---- Term and LeadershipLease -------------------------------------------- */

/* The KV revision at which the leader's lease was created: the fencing token.
 * Strictly increasing across leaders; 0 is never a real term. */
typedef uint64_t aether_term;
#define AETHER_TERM_NONE ((aether_term)0)

/* A generous upper bound that keeps the nanosecond arithmetic far from
 * overflow: one day. */
#define AETHER_LEASE_TTL_MS_MAX UINT64_C(86400000)

typedef struct aether_lease {
    aether_node_id leader;
    aether_term term;          /* >= 1 */
    uint64_t ttl_ms;           /* 1..AETHER_LEASE_TTL_MS_MAX */
    uint64_t acquired_at_ns;   /* holder's monotonic clock, when the create was sent */
    uint64_t renewed_at_ns;    /* holder's monotonic clock, when the last successful
                                  create/update was sent; >= acquired_at_ns */
    uint64_t safety_margin_ms; /* < ttl_ms: covers clock drift */
} aether_lease;

/* Checks the lease: valid leader id, term >= 1, ttl in range, margin < ttl,
 * renewed_at >= acquired_at, deadline representable in u64. AETHER_EINVAL with
 * the field named ("ttl_ms: ...") otherwise. */
aether_status aether_lease_validate(const aether_lease *lease, aether_err *err);

/* The instant (holder's monotonic ns) from which the holder must no longer act
 * as leader: renewed_at + (ttl - safety_margin), in ns. The lease must have
 * passed aether_lease_validate (asserted: margin < ttl, no overflow). */
static inline uint64_t aether_lease_deadline_ns(const aether_lease *lease)
{
    AETHER_ASSERT(lease->safety_margin_ms < lease->ttl_ms);
    AETHER_ASSERT(lease->ttl_ms <= AETHER_LEASE_TTL_MS_MAX);
    uint64_t window_ns = (lease->ttl_ms - lease->safety_margin_ms) * UINT64_C(1000000);
    AETHER_ASSERT(lease->renewed_at_ns <= UINT64_MAX - window_ns);
    return lease->renewed_at_ns + window_ns;
}

/* True while the holder may act as leader at now_ns: now < deadline (strict;
 * at the deadline itself it must already have stopped). */
static inline bool aether_lease_valid_at(const aether_lease *lease, uint64_t now_ns)
{
    return now_ns < aether_lease_deadline_ns(lease);
}

#endif
