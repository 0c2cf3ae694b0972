/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member.h: a running cluster node - the embedding API (actors layer).
 *
 * A member is one node of a cluster: its Cluster, LeadershipLease and
 * ShardAssignment actors, run by an executor the embedder provides, talking
 * to the other nodes through a transport (actors/transport.h), with the lease
 * and the state in two KV stores (actors/kv_store.h). Many members may share
 * one executor, one in-process hub and one pair of stores (N nodes in one
 * process), or each have their own (one node per process, over NATS).
 *
 * Lifecycle: aether_member_start joins the cluster (it campaigns for the
 * lease, and whoever leads admits it); aether_member_drain leaves gracefully
 * (its shards are handed off, then NodeLeft); aether_member_stop halts it
 * without leaving (others will declare it failed) - a crash, as far as the
 * cluster can tell; aether_member_destroy frees it after stop. A member
 * whose node id is taken over by a newer process (started with the same
 * id) is superseded (member_cluster.c): it stops serving, on_superseded
 * fires, drain/rebalance/elect return AETHER_ESUPERSEDED; the embedder
 * should stop and destroy it and exit.
 *
 * Callbacks run on the member's actor threads (one at a time per member) and
 * must return quickly and must not call back into the member except for
 * lookups:
 *  - on_shard_released fires on the old owner before on_shard_acquired fires
 *    on the new one (handoff protocol, DESIGN 2); after released returns the
 *    embedder must not serve the shard;
 *  - on_leader_changed when this member learns of a new leader (or none);
 *    leader may be NULL (no leader known for term);
 *  - on_event for every event this member applies or emits, in order;
 *    on_leader_changed and on_event run on one actor (the cluster's), so
 *    they are one sequence: after on_leader_changed(term T), on_event never
 *    delivers another node's event of a term below T but LeadershipLost
 *    (within a generation: terms start again in a new one, and a change
 *    of a generation that ended before it could be reported is not
 *    reported at all);
 *  - on_map_installed when a newer ShardMap becomes this member's lookups.
 *
 * Threading: start, drain, stop and destroy from one controlling thread that
 * is not a worker of the executor (on the step executor: its own thread).
 * Lookups and the status view from any thread, lock-free (routing.h).
 */
#ifndef AETHER_MEMBER_H
#define AETHER_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "events.h"
#include "executor.h"
#include "kv_store.h"
#include "metrics.h"
#include "routing.h"
#include "topology.h"
#include "transport.h"

typedef struct aether_member aether_member;

typedef struct aether_member_callbacks {
    void (*on_shard_acquired)(void *arg, uint32_t shard, uint64_t map_version);
    void (*on_shard_released)(void *arg, uint32_t shard, uint64_t map_version);
    void (*on_leader_changed)(void *arg, const aether_node_id *leader, aether_term term);
    void (*on_event)(void *arg, const aether_event *e);
    /* A newer map was just published to this member's lookups (its shards
     * are reconciled right after). */
    void (*on_map_installed)(void *arg, uint64_t map_version, aether_term map_term);
    /* A newer process of this node id was admitted (DESIGN 2.4): this one
     * has stopped serving (on_shard_released follows for what it held),
     * will never campaign, heartbeat or send a command again, and should
     * exit. by_incarnation is 0 when the leader's refusal did not say. */
    void (*on_superseded)(void *arg, uint64_t incarnation, uint64_t by_incarnation);
    void *arg;
} aether_member_callbacks;

typedef struct aether_member_deps {
    aether_executor *executor;    /* runs the member's actors; required */
    aether_executor *io_executor; /* optional: runs the member's store actor, the one actor
                                     that waits on the KV stores (a JetStream round trip per
                                     call on NATS): a pool of its own, so no worker that runs
                                     the domain actors waits on I/O. NULL = `executor` (the
                                     step executor, in-memory stores) */
    aether_executor *lease_io_executor; /* optional: runs the store actor's lease lane, which
                                     makes the lease actor's store calls only (campaigns,
                                     renewals, resignations, generation and term reads): a
                                     one-thread pool of its own, so a renewal never waits
                                     behind a map's write or read on `io_executor`
                                     (member_store_internal.h, item 6). NULL = `io_executor`,
                                     else `executor` */
    aether_executor *bulk_executor; /* optional: runs the member's assign actor, whose map
                                     steps, decodes and reconciles are the bulk of a node's CPU
                                     at large shard counts: a pool of its own at a lower
                                     priority (AETHER_THREAD_BULK_NICE), so on a saturated
                                     machine the cluster and lease actors (keep-alives,
                                     heartbeats, renewals) get a core first (issue 16). NULL =
                                     `executor` */
    aether_transport *transport;  /* this node's endpoint; bound by start, unbound by stop */
    aether_kv *lease_store;       /* TTL = lease_ttl_ms; shared by the cluster */
    aether_kv *state_store;       /* no TTL; shared by the cluster */
    aether_metrics *metrics;      /* optional */
    const char *metric_labels;    /* optional: the labels on every series of this member
                                     (caller keeps the string alive until stop). NULL =
                                     node="<id>", for registries shared by several members
                                     (simulator, demo); "" = none, for one node per
                                     process, where the scrape target is the node
                                     (aether_node_info names it; docs/observability.md). */
    uint64_t seed;                /* election jitter and lease nonces */
    uint64_t incarnation;         /* optional: this process's incarnation, its start time in
                                     wall-clock ms (docs/cluster.md, one process per node id);
                                     0 = the member clock's wall time at aether_member_start.
                                     A process that waits before starting its member (for
                                     JetStream, up to a minute) passes the time it started,
                                     so a process started after it is still the newer one. */
    aether_clock *clock;          /* optional: this node's own clock (a simulation's drifting
                                     clock); NULL = the executor's. Timers still run on the
                                     executor's clock; every deadline the member computes,
                                     checks or reports is read from this one. */
} aether_member_deps;

aether_status aether_member_start(const aether_config *cfg, const aether_member_deps *deps,
                                  const aether_member_callbacks *cb, aether_member **out,
                                  aether_err *err);
/* Asks the leader to drain this node (LeaveCluster). The leave completes
 * asynchronously: watch for NodeLeft. */
aether_status aether_member_drain(aether_member *m);
/* Asks the leader for an explicit rebalance (RebalanceShards; the reason is
 * recorded in RebalanceStarted). Asynchronous. */
aether_status aether_member_rebalance(aether_member *m, const char *reason);
/* ElectLeader: this node tries to take the lease now (it can only succeed
 * if nobody holds it). Asynchronous. */
aether_status aether_member_elect(aether_member *m);
/* Asks this member to read the stored map now (someone knows a newer one
 * than it has: the stale-route answer "behind"). Asynchronous: the map is
 * installed, if newer, by the ShardAssignment actor. AETHER_OK, or the
 * mailbox's refusal (AETHER_EFULL, AETHER_ECLOSED). Any thread. */
aether_status aether_member_read_stored_map(aether_member *m);
/* Halts the actors and unbinds the transport; no leave. Idempotent. */
void aether_member_stop(aether_member *m);
void aether_member_destroy(aether_member *m); /* NULL is fine; stops first */

/* The routing slot this member publishes its current map into (lookups:
 * routing.h, any thread). */
const aether_shardmap_slot *aether_member_slot(const aether_member *m);
const aether_node_id *aether_member_id(const aether_member *m);

/* True while this node's right to serve the shards it acquired holds, by
 * its own clock: it is admitted and not known to be down, its map is
 * current, and it leads or a leader acknowledged a keep-alive this node sent
 * less than failure_timeout - fence_margin ago (docs/cluster.md, "Serving
 * rights"). A process that was paused (GC, SIGSTOP) sees false at once when
 * it resumes, before its actors have run: an embedder checks this before
 * serving a request. Any thread. */
bool aether_member_may_serve(const aether_member *m);

/* Admission (DESIGN 2, docs/cluster.md "Admission"): AETHER_OK unless a
 * leader refused this node's join because its shard_count, replication,
 * wire versions or parameters fingerprint differ from the cluster's:
 * AETHER_EINCOMPATIBLE, with why holding the leader's sentence (e.g.
 * "shard_count 1024 differs from the cluster's 64"). Final: the node sends
 * no more joins, never campaigns and serves nothing; fix the configuration
 * and start again. Poll it after start (aether-node exits 2 on it). A node
 * offered a map it cannot serve (another shard_count or replication) is
 * not refused but shows it in the view's `incompatible` and the
 * aether_node_incompatible gauge, and serves nothing while it lasts. Any
 * thread. */
aether_status aether_member_admission(const aether_member *m, aether_err *why);

/* True while this node holds the lease and may act as leader (by its own
 * clock); the view's is_leader, without the rest of the view. Any thread. */
bool aether_member_leads(const aether_member *m);

/* GetClusterTopology: a copy of this member's current topology (the Cluster
 * actor's RCU snapshot) into *out, which the caller finis. AETHER_ENOTFOUND
 * before the first snapshot, AETHER_ENOMEM. Any thread. */
aether_status aether_member_topology(const aether_member *m, aether_topology *out);

/* The member's five actors (cluster, lease, assign, and the two lanes of
 * the store actor that makes its store calls: the state lane, the lease
 * lane), for simulations that pause a node (aether_step_freeze): a paused
 * process makes no store calls either. The store actor's lanes run on the
 * member's executor only without deps.io_executor and
 * deps.lease_io_executor (as in the simulator). */
#define AETHER_MEMBER_ACTORS 5
void aether_member_actors(const aether_member *m, aether_actor *out[AETHER_MEMBER_ACTORS]);

/* A consistent-enough view for status displays and tests (atomics). */
typedef struct aether_member_view {
    bool is_leader;          /* holds the lease and may act */
    aether_term term;        /* highest term seen */
    aether_node_id leader;   /* len 0 = none known */
    uint64_t map_version;    /* of the published map */
    uint64_t map_generation; /* the generation map_version counts in: versions never go back
                                within one (a new generation numbers its maps afresh) */
    uint32_t shards_serving; /* shards this node serves (acquired, not released) */
    bool fenced;             /* cut off from the leader: serving nothing */
    bool superseded;         /* a newer process of this node id was admitted: serving nothing
                                for good, exit (aether_member_drain etc. return ESUPERSEDED) */
    uint64_t incarnation;    /* the incarnation this process claims */
    uint64_t superseded_by;  /* the newer one (0: not superseded, or not known) */
    aether_node_status status; /* this node's status in its own topology view */
    bool member;             /* this node appears in its topology */
    bool has_left;           /* this run drained and was declared Left: nothing left to do
                                (sticky; it never asks to join again) */
    uint64_t stale_dropped;  /* messages dropped for an older term */
    uint64_t generation;     /* the cluster generation this node follows (lease.h,
                                GENERATION); 0 = not read from the state store yet */
    uint64_t generation_changes; /* times it moved to a new one (the store was lost) */
    uint64_t generation_dropped; /* events dropped for another generation */
    uint64_t generation_values_refused; /* stored maps/topologies refused for being of
                                           another generation than this node follows */
    uint64_t impostor_dropped; /* events dropped: their emitter does not lead their term */
    uint64_t leader_changes;
    bool brake_engaged;      /* as leader: the rebalance brake holds (only I2 is restored) */
    uint64_t rebalances;     /* rebalances this node completed as leader */
    uint64_t shards_moved;   /* shards it moved as leader */
    uint64_t topology_version; /* of this node's topology view */
    uint32_t nodes_active, nodes_draining; /* in that view */
    bool incompatible;       /* refused at admission, or the newest map offered has another
                                shard_count or replication: serving nothing */
} aether_member_view;

void aether_member_view_get(const aether_member *m, aether_member_view *out);

#endif
