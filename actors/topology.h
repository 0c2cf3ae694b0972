/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topology.h: the Cluster aggregate's state and its decide/apply functions
 * (actors layer).
 *
 * DESIGN
 * The aggregate is split the event-sourcing way so that the same rules run
 * in the Cluster actor, in followers replaying the leader's events, in the
 * simulator and in tests:
 *  1. aether_topology_decide(state, command, now) looks at the state only and
 *     either accepts (fills 0..n events, unstamped: the actor adds term, seq,
 *     emitter and timestamp) or rejects with a reason a person can read
 *     ("not leader; leader is node-b, term 17", "node-x unknown",
 *     "term 12 is older than 15").
 *  2. aether_topology_apply(state, event) is the only thing that changes the
 *     state. It is total: an event that does not fit (unknown node for
 *     NodeLeft, ...) is counted and ignored, never a crash, because followers
 *     apply what the leader sent.
 * Node lifecycle (DESIGN 2): Active -> Draining -> Left; Active|Draining ->
 * Failed; a Left or Failed node that joins again comes back Active with a
 * higher incarnation. A join of a node that is already healthy with the same
 * address and its current incarnation (or incarnation 0: "whichever") is
 * idempotent (accepted, no event), so retries are safe; members send one
 * every heartbeat as their keep-alive. A join naming an incarnation the
 * topology already has (or passed) for a node that is not healthy under it
 * is refused with ESTALE: it comes from a run that missed its own failure
 * and must not be acknowledged; that run rejoins with a newer incarnation.
 * Admission: a JoinCluster that would admit a node (a new one, a rejoin,
 * a new incarnation) must carry terms equal to the cluster's
 * (aether_admission_check: wire versions, shard_count, replication,
 * parameters fingerprint); a joiner that differs is refused with
 * EINCOMPATIBLE and the sentence naming the difference, and no event: it
 * is never admitted, so no map ever names it. The keep-alive of an
 * established member (healthy under the incarnation it names) is not
 * judged again (decide_join says why).
 * One naming an incarnation below the one a healthy record has is refused
 * with ESUPERSEDED: a newer process of that id was admitted since, and the
 * asker must stop (DESIGN 2.4, member_cluster.c).
 * Incarnations (DESIGN 2.4: "assigned by the leader and stored, never
 * dictated by a joiner"): a joiner presents a nonce drawn once per process
 * (node.h); the record keeps it, so the leader tells one process of an id
 * from another by it, whatever incarnation either names. For a join with a
 * nonce the leader decides:
 *  - the record's process (same nonce), healthy, naming the record's
 *    incarnation or one below (or 0): a keep-alive, idempotent;
 *  - another process naming an incarnation below a healthy record's:
 *    ESUPERSEDED (an older process); naming the record's or one below it
 *    otherwise: ESTALE (a run that missed its failure, or someone else's
 *    number: never acknowledged);
 *  - anything else (no record, a departed one, another process naming 0,
 *    any process naming one above the record: it wants a new incarnation,
 *    as a process that believes it was failed does): admitted with
 *    max(record + 1, min(named, leader's wall clock + AHEAD_MAX)), the
 *    leader's clock standing in for a name of 0. The number a joiner names
 *    (its start time, so a process started later still wins over one that
 *    waited longer to join) is a hint: the leader clamps it and keeps it
 *    above the record, so no join can push an id's incarnation out of
 *    reach, and a record of another process is never taken over by naming
 *    its number (ESTALE above).
 *    A join from another process of a healthy id is a second process:
 *    the newest process wins (the duplicate-id rule), and the old one is
 *    superseded.
 * The admitted process learns its incarnation from its NodeJoined or the
 * stored record, which carry its nonce (member_cluster.c). A join without
 * a nonce (a node from before: wire compatibility) still names its own,
 * as before, but never above the leader's clock by more than
 * AETHER_INCARNATION_AHEAD_MAX_MS and never over a healthy record that has
 * a nonce.
 * NodeLeft is not decided here: the drain policy emits it when the node owns
 * no shards any more (policies.h).
 * Retention (DESIGN 2): a Left or Failed node is forgotten - removed, no
 * event - node_retention_ms after it departed, by the clock of the leader
 * that removes it, and never while the leader's map names it
 * (aether_topology_may_forget); the same id joins again as a new node.
 *
 * Threading: a topology is owned by one actor (or one test); not
 * synchronised. Nodes are kept sorted by id, so iteration order is
 * deterministic.
 */
#ifndef AETHER_TOPOLOGY_H
#define AETHER_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "node.h"
#include "node_id.h"
#include "snapshot.h"
#include "status.h"

#define AETHER_TOPOLOGY_NODES_MAX 65535u
/* How far ahead of the leader's wall clock an incarnation may be named (a
 * start time in ms cannot be): a join with a nonce is clamped to it, one
 * without is refused beyond it. */
#define AETHER_INCARNATION_AHEAD_MAX_MS (UINT64_C(24) * 3600u * 1000u)
/* At most this many events from one decision. */
#define AETHER_TOPOLOGY_DECIDE_MAX 1u

typedef struct aether_topology {
    aether_node_info *nodes;       /* [count], ascending by id */
    uint32_t count, cap;
    uint64_t version;              /* +1 per applied change */
    /* The leadership view the decide step needs ("only the leader issues
     * Cluster changes"); maintained by the Cluster actor from lease events. */
    aether_node_id self;
    aether_node_id leader;         /* len 0 = no known leader */
    aether_term term;              /* highest term seen */
    /* The cluster's admission terms (DESIGN 2, "Admission"), set by the
     * Cluster actor from its configuration; like the leadership view, not
     * part of the stored value. shard_count 0 = not set: a bare aggregate
     * (unit tests) admits any joiner; a member always sets it. */
    aether_admission admission;
    uint64_t ignored_events;       /* apply() could not use them */
} aether_topology;

aether_status aether_topology_init(aether_topology *t, const aether_node_id *self);
void aether_topology_fini(aether_topology *t);
/* Deep copy (for strategies and snapshots). */
aether_status aether_topology_copy(const aether_topology *src, aether_topology *dst);

/* An immutable copy of a topology for RCU publication (the GetClusterTopology
 * read model): the Cluster actor publishes one after every change. */
typedef struct aether_topology_snapshot {
    aether_snapshot snap; /* FIRST */
    aether_topology topo;
    uint64_t publication; /* set by the publisher before publishing: tells one snapshot
                             from the next (versions may repeat across a reload,
                             addresses are reused) */
} aether_topology_snapshot;

/* NULL when out of memory. Published with aether_snapshot_publish; freed by
 * its free_fn after a grace period. */
aether_topology_snapshot *aether_topology_snapshot_create(const aether_topology *t);

/* NULL if unknown. The pointer is valid until the next apply. */
const aether_node_info *aether_topology_find(const aether_topology *t, const aether_node_id *id);
uint32_t aether_topology_count_status(const aether_topology *t, aether_node_status s);
static inline bool aether_topology_is_leader(const aether_topology *t)
{
    return t->leader.len > 0 && aether_node_id_equal(&t->leader, &t->self);
}

/* Records the leader of a term (from LeaderElected / LeadershipLost). Terms
 * only grow: an older term is ignored (returns false). */
bool aether_topology_set_leader(aether_topology *t, const aether_node_id *leader, aether_term term);

/* claim names record's process: the same nonce when both have one, else
 * the same incarnation. Pure. */
bool aether_node_info_same_process(const aether_node_info *record, const aether_node_info *claim);

/* Departed = Left or Failed: no longer a member, only remembered. */
static inline bool aether_node_status_is_departed(aether_node_status s)
{
    return s == AETHER_NODE_LEFT || s == AETHER_NODE_FAILED;
}

/* Active + Draining: the nodes every "a third of the nodes" rule counts. */
uint32_t aether_topology_count_live(const aether_topology *t);

/* Retention: true when n may be dropped from the topology at now_ns. It is
 * Left or Failed; departed_ns (when the deciding leader saw it depart, by
 * its own monotonic clock; 0 = not seen) is at least retention_ns before
 * now_ns; and map - the leader's current map - does not name it (owner or
 * handoff target, aether_shardmap_names_node). map NULL (no map known):
 * false, nothing is forgotten blind. Pure. */
bool aether_topology_may_forget(const aether_node_info *n, uint64_t departed_ns, uint64_t now_ns,
                                uint64_t retention_ns, const aether_shardmap *map);

/* Removes node id (a retention decision); version +1. False if unknown or
 * healthy (only a departed node is ever forgotten). */
bool aether_topology_remove(aether_topology *t, const aether_node_id *id);

/* Records the terms node id was admitted with (aether_node_info.terms: the
 * leader sets them on the record it is about to store, after applying the
 * NodeJoined its JoinCluster decided; events do not carry them). The
 * version is not moved: the write that stores the record does. False if
 * the node is unknown. */
bool aether_topology_set_terms(aether_topology *t, const aether_node_id *id,
                               const aether_admission *terms);

/* Decides a Cluster command (JoinCluster, LeaveCluster, MarkNodeFailed).
 * A LeaveCluster of the last Active node is refused (ESTATE): nobody could
 * take its shards. AETHER_OK: *n_events (0..AETHER_TOPOLOGY_DECIDE_MAX) unstamped events were
 * created in events[] (the caller owns one reference each). Otherwise the
 * command is rejected: the status says why (ENOTLEADER, ESTALE, ESUPERSEDED, ENOTFOUND,
 * ESTATE, EINVAL, EINCOMPATIBLE) and reason holds the sentence. */
aether_status aether_topology_decide(const aether_topology *t, const aether_command *cmd,
                                     uint64_t now_wall_ms, aether_event **events,
                                     uint32_t *n_events, aether_err *reason);

/* Applies a Cluster event (NodeJoined, NodeDraining, NodeLeft, NodeFailed);
 * other types are ignored. Returns true if the state changed. */
bool aether_topology_apply(aether_topology *t, const aether_event *e);

#endif
