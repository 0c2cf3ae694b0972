/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_internal.h: what the member's actors share (actors layer,
 * private to member*.c).
 *
 * DESIGN
 * One member = three domain actors + the store actor + a local bus + a routing slot:
 *  - cluster (member_cluster.c): the Cluster aggregate. Every node applies
 *    topology events; the leader also decides commands, records heartbeats
 *    and declares silent nodes failed. It also calls the embedder's on_event
 *    for every event, in order.
 *  - lease (member_lease.c): LeadershipLease. Campaigns, renews, resigns;
 *    the only writer of `leading_term` / `lease_deadline_ns`.
 *  - assign (member_assign.c): ShardAssignment. The leader computes maps and
 *    runs handoffs; every node applies maps, serves its shards and fences
 *    itself when it loses the leader.
 *  - store (member_store.c, member_store_internal.h): no aggregate; the one
 *    actor that waits on the KV stores. The others send it requests (copies
 *    of every input) and get each back as MSG_STORE_DONE. On deps.io_executor
 *    when given (production), else on the member's executor; the lease
 *    actor's requests run on a second instance, the lease lane (on
 *    deps.lease_io_executor when given), so that map I/O never delays a
 *    renewal (member_store_internal.h, item 6). Every store
 *    call of the member goes through it (member_store.c is the one file
 *    that calls the stores): the lease actor's, the assign actor's map and
 *    topology reads and writes, and the cluster actor's topology writes,
 *    reads, fences and checks (member_topo_store.c; the order they keep:
 *    member_cluster_internal.h, "The cluster actor's store requests").
 * Events reach the actors through the member's bus, from two sources: the
 * transport (other nodes' events; echoes of our own are dropped) and
 * member_emit (this node's events, stamped first). Stale terms are dropped
 * at the door (member_on_event) and counted.
 *
 * Generations (lease.h, GENERATION): `generation` is the generation this
 * node follows, 0 until it has read one. Only the lease actor writes it,
 * and only with what it read from the state store (the authority): at an
 * acquire (the generation its term is recorded in), at start, and when
 * asked to look (MSG_GENERATION_CHECK) because an event, a lease value or
 * its own record write-back named another. Every event this node emits
 * carries it. The sink drops events of any other generation (counted in
 * generation_dropped) and asks the lease actor to look: a newer generation
 * is adopted once the store shows it, an older or forged one never is.
 * Moving to a new generation (member_adopt_generation) logs one line,
 * counts generation_changes and resets what compares terms across it:
 * highest_term (to the new generation's record), the stamp, the speaker
 * and the leader view; the lease actor forgets the leader it knew. Terms
 * are fenced on (generation, term) that way, never on term alone across a
 * change. Events without a generation (an emitter from before
 * generations, or one that has read none yet) are judged by term alone.
 *
 * The leader's two commit points (issue 14: no lock between the actors).
 * A topology change is committed by the cluster actor [store it (a request
 * to the store actor; the commands that come meanwhile wait behind it, in
 * order, and the leader's own decisions are put off), and on its
 * completion make it its topology, publish the snapshot (topo_slot),
 * announce its events]; a map by the assign actor
 * [read the snapshot, derive the map, check I2/I3 against that snapshot,
 * store it (a request to the store actor), and on its completion check it
 * again against the snapshot as it is then and publish it]. What must
 * hold: no map this node stores or publishes (transport-publishes or
 * RCU-publishes in the slot) names as owner a node whose NodeFailed or
 * NodeLeft it has already announced, unless a NodeJoined of that node was
 * announced in between. The order comes from the message flow, a barrier
 * between the two actors:
 *  1. The cluster actor stores the change (compare-and-set), and in the run
 *     that handles the store's answer makes it its topology and publishes
 *     the snapshot S (rcu_assign_pointer: release). Until then nothing of
 *     it exists outside the store: not in cs->topo (no command is decided,
 *     no keep-alive acknowledged on it: they wait), not in a snapshot, not
 *     announced; so the order below starts at that run, as it started at
 *     the write when the write was made in the handler.
 *     Nothing is announced yet: each event goes to the back of the
 *     announcement queue (member_announce.c), in the order
 *     decided, tagged with the term it was decided in. A NodeFailed or
 *     NodeLeft also takes a new barrier number b, and the cluster actor
 *     sends MSG_ANNOUNCE_BARRIER(b) to the assign actor - after publishing S
 *     in program order, and the send is a full barrier (engine/actor.h,
 *     step 1) that the assign actor's dequeue reads: publish(S) happens
 *     before the assign actor handles b.
 *  2. A map commit spans two runs of the assign actor: the run that reads
 *     the snapshot, derives and checks the map and sends it to the store
 *     actor (member_map_step_commit: map_write_inflight set), and the run
 *     that handles its completion (member_map_step_stored). At most one map
 *     write is in flight (a step asked for meanwhile waits, coalesced into
 *     one, and runs after the completion on the map then current; the
 *     write-backs of the published map wait their turn the same way). The
 *     assign actor answers MSG_ANNOUNCE_ACK(b) at once when no map write is
 *     in flight, else it keeps the highest b and answers it in the
 *     completion's run, after the map was published or abandoned
 *     (map_write_done). So when the ack of b is sent, every map commit that
 *     began before has ended: its store and publication happen before the
 *     ack, before the events of b are announced. Every map commit that
 *     begins after the ack reads the snapshot afresh (refresh_topology,
 *     rcu_dereference: S or a newer one, since S was published before b
 *     was handled) and is refused unless it passes I3 against it
 *     (aether_invariants_check_map: owners are healthy). In S and every
 *     later snapshot the node is departed - unless a later change revived
 *     it (NodeJoined), see 4.
 *     A commit in flight when S was published read an older snapshot, in
 *     which the node may still be healthy: its map may name it. That map is
 *     stored and installed before any NodeFailed/NodeLeft of S is announced
 *     (its ack waits for the completion's run), so the order above holds
 *     for it. At the completion it is checked again against the snapshot
 *     as it is then (S or newer): failing, it is installed (it is stored,
 *     and the state store is the authority: any node reading it installs
 *     it) but not published to the cluster, and the next map, derived from
 *     it, is asked for at once (map_write_done runs it right after the ack,
 *     on S or newer): it moves what the stale map gave the departed node.
 *     Without the second check the order above would still hold, but the
 *     leader would publish a map its own topology already contradicts
 *     (I3 at publication, which the simulator checks). A completion that
 *     finds the generation ended, or another map installed since, installs
 *     nothing.
 *  3. On the ack of b the cluster actor announces (member_emit, then
 *     MSG_TOPOLOGY to the assign actor) the queue's events up to the last
 *     one that waited for b, in order; events that remove nobody wait only
 *     for the ones before them. So each NodeFailed/NodeLeft is announced
 *     after step 2 for its barrier, and no map naming its node is published
 *     after that.
 *  4. Revivals. A snapshot in which a departed node is healthy again must
 *     not be read by a map commit before that NodeJoined is announced, or a
 *     map could name the node between its NodeFailed and its NodeJoined.
 *     So while the queue holds anything, the leader revives no node: a
 *     JoinCluster of a node its topology has departed is refused "retry"
 *     (the node's next keep-alive asks again); a write in doubt that turned
 *     out stored is settled only once the queue is empty; a reload of the
 *     stored topology waits for an empty queue. With the queue empty, a
 *     change that removes nobody is announced first and its snapshot
 *     published after (member_announce_committed, the settling of a write in
 *     doubt: member_topo_store.c), so no map reads
 *     a revival before its NodeJoined is out. (The re-check at a map
 *     write's completion, 2, reads the snapshot too, but only to refuse:
 *     a revival it sees lets through nothing the first check refused.) A
 *     take-over announces what
 *     the stored topology has and `heard` lacks, revivals among them, after
 *     publishing the snapshot; the assign actor takes over in that term
 *     (topo_loaded_term) only once the queue is empty, and publishes no map
 *     of the term before.
 *  5. Terms: an entry is announced only while this node leads the term it
 *     was decided in (m->leading_term). Once that term has ended it is
 *     dropped, never announced late in another term: the change is stored
 *     (step 1), and whoever takes over next - this node too - announces
 *     what the stored topology has and its announcements lack
 *     (announce_stored_changes, against `heard`, which only announced
 *     events reach). While the lease is merely in doubt (leading_term still
 *     the term, its deadline passed) entries wait. A move to a new
 *     generation drops every entry (terms start again there: an old entry
 *     must not pass for one of a new term of the same number).
 *  6. Liveness: barriers coalesce (an ack of b covers every number up to
 *     b); a barrier the assign actor's full mailbox refused, or an ack lost
 *     to a full cluster mailbox, is sent again at the next heartbeat tick
 *     while anything waits. The wait is at most one map write (one store
 *     round trip, bounded by the store's timeout) and the run of an assign
 *     handler: nothing blocks on it, the cluster actor goes on deciding
 *     (changes that revive nobody) meanwhile.
 * Not covered by the rule, on purpose: the write-backs of the map this node
 * already published (rewrite_lost_map, check_foreign_map) store the same
 * version again, nothing new; forget_departed removes only departed nodes
 * the published map does not name, and no later map can name them (2).
 * Nor a map write whose outcome was lost (a KV timeout) that lands later:
 * it was never published, and what settles it is the state store's
 * compare-and-set (the next map's write finds the revision moved and
 * reads the store first), as it was under the lock this replaces.
 * Checked by the oracle: aether_departures_check_map (actors/invariants.h)
 * in the multi-threaded failure wave (tests/unit/test_cluster_mt.c), where
 * the two actors run on two workers, and on every map the simulator sees,
 * with I3 against the leader's snapshot at the moment it publishes.
 *
 * Acting as leader needs both `leading_term != 0` and now < lease deadline
 * (member_may_lead): the second test is what stops a paused leader at once
 * when it resumes past its deadline, before the lease actor has even run.
 */
#ifndef AETHER_MEMBER_INTERNAL_H
#define AETHER_MEMBER_INTERNAL_H

#include <stdio.h>

#include "actor.h"
#include "bus.h"
#include "lease.h"
#include "log.h"
#include "member.h"
#include "rng.h"
#include "snapshot.h"
#include "strategy.h"
#include "topology.h"

/* Message types (aether_msg.type), per actor. */
enum {
    /* every actor */
    MSG_EVENT = 1,       /* ptr: aether_event (AETHER_MSG_REF) */
    /* cluster */
    MSG_COMMAND,         /* ptr: member_cmd_box (owned) */
    MSG_HEARTBEAT,       /* ptr: member_hb_box (owned) */
    MSG_TICK_HEARTBEAT,  /* timer */
    MSG_TICK_FAILCHECK,  /* timer */
    MSG_DRAINED,         /* ptr: aether_node_id (owned): a draining node owns nothing */
    MSG_DRAIN_SELF,      /* ask the leader to drain this node */
    MSG_REPLY,           /* ptr: member_reply_box (owned) */
    /* lease */
    MSG_TICK_CAMPAIGN,   /* timer; arg64 = generation */
    MSG_TICK_RENEW,      /* timer */
    /* assign */
    MSG_MAP_HINT,        /* a map was published: read the stored one (member.c, sink_map) */
    MSG_SELF_REFUTED,    /* arg64: self_down_reports when the cluster actor found the stored
                            topology contradicting a NodeFailed/NodeLeft about this node */
    MSG_RELEASE,         /* ptr: aether_release_ack (owned) */
    MSG_TICK_DEBOUNCE,   /* timer; arg64 = generation */
    MSG_TICK_CHECK,      /* timer: fencing and handoff timeouts */
    MSG_FLUSH,           /* apply collected release acks */
    MSG_REBALANCE,       /* ptr: reason string (owned): RebalanceShards / AssignShards */
    MSG_RELEASE_BRAKE,   /* ptr: who asked (owned string): RebalanceShards release_brake */
    MSG_CAMPAIGN_NOW,    /* lease: ElectLeader from this node's embedder */
    MSG_LEASE_START,     /* lease: arm the first campaign (from the actor's own thread) */
    MSG_SEND_COMMAND,    /* cluster: ptr: aether_command (owned) to send to the leader */
    MSG_TOPOLOGY,        /* assign: ptr: the topology event the cluster actor just applied
                            (AETHER_MSG_REF); its snapshot is already published */
    MSG_LEADER_NOTE,     /* cluster: ptr: member_leader_box (owned): call on_leader_changed */
    MSG_GENERATION_CHECK, /* lease: read the state store's generation (member.c, sink_event) */
    MSG_TERM_CLAIM,      /* lease: ptr: aether_event (AETHER_MSG_REF) that would raise this
                            node's highest term, or one queued behind such (member.c,
                            sink_event): believed once the lease store confirms its term */
    MSG_ANNOUNCE_BARRIER, /* assign: arg64 = barrier number; answered with MSG_ANNOUNCE_ACK
                            once no map write is in flight (header, "The leader's two
                            commit points", step 2) */
    MSG_ANNOUNCE_ACK,    /* cluster: arg64 = the barrier number the assign actor passed */
    MSG_SUPERSEDED,      /* lease, assign: this process is superseded (member_cluster.c):
                            stop at once; arg64 = the newer incarnation. A lost one is made
                            up for by their ticks, which read m->superseded too */
    MSG_STORE_REQ,       /* store: ptr: member_store_req (owned) to run */
    MSG_STORE_RETRY,     /* store: timer: send the completions a full mailbox refused */
    MSG_STORE_DONE,      /* lease, assign, cluster: ptr: member_store_req (owned),
                            a request the store actor ran (member_store_internal.h) */
};

/* A map publication, kept to be compared with the stored map (member.c,
 * sink_map; member_assign.c, MSG_MAP_HINT). */
typedef struct member_map_hint {
    aether_shardmap *map; /* the published map (owned copy) */
    char *json;           /* the bytes it was decoded from (owned), or NULL */
    size_t len;
} member_map_hint;
void member_map_hint_free(member_map_hint *h); /* NULL is fine */

typedef struct member_cmd_box {
    aether_command cmd;
    aether_reply_fn reply; /* may be NULL */
    void *reply_arg;
    uint32_t *inflight;    /* the budget it holds a place in (sink_command), or NULL */
} member_cmd_box;
/* Gives back the box's place in its budget and frees it. NULL is fine. */
void member_cmd_box_free(member_cmd_box *b);

/* Term claims (member.c, sink_event; member_lease.c, judge_claim): an
 * event that would raise this node's highest term, or bind a term it knows
 * to a speaker, waits for the lease actor's read of the lease store; at
 * most MEMBER_TERM_CLAIMS_MAX of them at once (past that one is dropped unverified: a later event of a real
 * term asks again). While any waits, events of the present term queue
 * behind them (at most MEMBER_TERM_ORDERED_MAX, a quarter of the mailbox),
 * so a term's events are applied in the order they came. */
#define MEMBER_TERM_CLAIMS_MAX 16u
#define MEMBER_TERM_ORDERED_MAX 256u

/* Commands from the wire waiting for the cluster actor, at most (member.c
 * sink_command): past the budget the sender is told "busy" at once, so a
 * flood never fills the cluster actor's mailbox, where keep-alives,
 * heartbeats and timers must still fit. JoinCluster (every member's
 * keep-alive, every heartbeat interval) has a budget of its own, so a flood
 * of any other command never crowds out a keep-alive. */
#define MEMBER_CMD_INFLIGHT_JOIN_MAX 1024u
#define MEMBER_CMD_INFLIGHT_OTHER_MAX 64u
typedef enum member_cmd_budget {
    MEMBER_CMD_BUDGET_JOIN,  /* JoinCluster: MEMBER_CMD_INFLIGHT_JOIN_MAX */
    MEMBER_CMD_BUDGET_OTHER, /* every other command: MEMBER_CMD_INFLIGHT_OTHER_MAX */
    MEMBER_CMD_BUDGETS
} member_cmd_budget;

typedef struct member_hb_box {
    aether_node_id node;
    uint64_t incarnation;
} member_hb_box;

/* A leader change the lease actor learnt, for the embedder's callback. */
typedef struct member_leader_box {
    aether_node_id leader; /* len 0: none */
    aether_term term;
    uint64_t generation_changes; /* m->generation_changes when it was noted */
} member_leader_box;

typedef struct member_reply_box {
    aether_status status;
    char reason[AETHER_ERR_MSG_MAX];
} member_reply_box;

typedef struct member_cluster_state member_cluster_state;
typedef struct member_lease_state member_lease_state;
typedef struct member_assign_state member_assign_state;
typedef struct member_store_state member_store_state;

/* The leader as this node knows it (view_*: aether_member_view_get) and the
 * emitter that speaks for the newest term seen (speaker_*: set by
 * LeaderElected, local or remote, or by the first event of a term this node
 * learns of mid-term; remote events of that term from any other node are
 * dropped: member.c, speaks_for_term). Immutable once published. */
typedef struct member_leader_view {
    aether_snapshot base;
    aether_term view_term;
    aether_node_id view_leader;
    aether_term speaker_term;
    aether_node_id speaker;
} member_leader_view;

struct aether_member {
    /* Immutable after start. */
    aether_config cfg;
    aether_member_deps deps;
    aether_member_callbacks cb;
    aether_clock *clock;
    aether_node_info self_info;
    aether_admission admission;   /* what this node must share with the cluster
                                     (aether_config_admission of cfg) */
    aether_actor *cluster, *lease, *assign;
    aether_actor *store;          /* the store actor's state lane: the only caller of the
                                     blocking store functions but for the lease actor's
                                     (member_store_internal.h) */
    aether_actor *store_lease;    /* the store actor's lease lane: the lease actor's store
                                     calls only (member_store_internal.h, item 6) */
    aether_bus *bus;
    aether_shardmap_slot slot;
    aether_snapshot_slot topo_slot; /* aether_topology_snapshot, written by the cluster actor */
    member_cluster_state *cs;
    member_lease_state *ls;
    member_assign_state *as;
    member_store_state *ss;       /* the state lane's (m->store) */
    member_store_state *ss_lease; /* the lease lane's (m->store_lease) */
    bool started, stopped;

    /* Atomics (relaxed unless said). */
    uint64_t highest_term;        /* max term seen anywhere */
    uint64_t leading_term;        /* release by lease actor: the term we lead, 0 = none */
    uint64_t lease_deadline_ns;   /* with leading_term: act only before this */
    uint64_t ack_sent_ns;         /* max (relaxed CAS): when this node sent, by its own clock,
                                     the newest keep-alive a leader acknowledged; 0 = never */
    uint64_t map_version;         /* of the published map */
    uint64_t map_generation;      /* seq_cst, assign actor: the generation map_version counts in
                                     (written after it; 0 = none yet) */
    uint64_t map_term;            /* of the published map */
    uint64_t announced_version;   /* highest map version a leader announced (LeaseRenewed) */
    uint64_t topology_version;    /* of the cluster actor's topology */
    uint64_t topo_loaded_term;    /* release by the cluster actor, after publishing the
                                     topology it read from the state store as leader of
                                     this term; the assign actor takes over only then */
    uint32_t shards_serving;
    uint32_t fenced;
    uint32_t self_status;         /* this node in the cluster actor's topology, written by it:
                                     member_self_status_word (read: member_self_status) */
    uint32_t active_others;       /* Active nodes other than us (cluster actor's view) */
    uint32_t transport_down;      /* the transport refused our last heartbeat (isolated,
                                     disconnected): we do not campaign */
    /* One process per node id (member_cluster.c, DESIGN "superseded"). */
    uint64_t incarnation;         /* the incarnation this process claims: self_info's at start,
                                     raised only by the cluster actor (a rejoin after a failure,
                                     or a newer record of our id met before our admission), and
                                     set by it to the one a leader assigned (a record with our
                                     nonce); heartbeats and keep-alives carry it. Seq-cst. */
    uint32_t admitted;            /* seq-cst, set once by the cluster actor: a leader admitted
                                     this process (our id Active at an incarnation it claimed) */
    uint32_t superseded;          /* seq-cst, set once by the cluster actor: a newer process of
                                     our id was admitted; this one serves nothing, never
                                     campaigns, heartbeats or sends a command again */
    uint64_t superseded_by;       /* the newer incarnation (relaxed; written before superseded) */
    uint32_t self_down;           /* we serve nothing: set at start (not admitted yet) and by
                                     the sink the moment NodeFailed/NodeLeft about us arrives,
                                     before any later map can; cleared by the assign actor
                                     once our own NodeJoined is handled, or once the stored
                                     topology refuted every such report (MSG_SELF_REFUTED) */
    uint64_t self_down_reports;   /* seq_cst: NodeFailed/NodeLeft about us the sink has seen,
                                     incremented with self_down set: a refutation read
                                     before a later report does not clear it */
    struct member_map_hint *map_hint; /* seq_cst exchange: the newest map publication the assign
                                     actor has not looked at; non-NULL while a MSG_MAP_HINT is
                                     queued (publications coalesce into one store read).
                                     Whoever exchanges it out owns it (member.c, sink_map) */
    uint64_t seq_gaps;            /* relaxed: leader events with a seq gap or jump (cluster actor) */
    uint64_t seq_duplicates;      /* relaxed: leader events whose seq was already taken */
    uint64_t events_refuted;      /* relaxed: events the state store contradicted (about this
                                     node, or a LeaseRenewed's map): not applied */
    uint64_t map_reads;           /* relaxed: stored-map reads on a publication hint */
    uint64_t map_read_ns;         /* relaxed: their total duration, this node's clock */
    uint64_t maps_unpublished;    /* relaxed: maps the leader stored and installed but did not
                                     publish: stale once their write was done (member_map_step.c) */
    uint64_t state_too_large;     /* relaxed: state-store writes refused before they were
                                     tried, the value above MEMBER_STATE_VALUE_MAX
                                     (member_state_put) */
    aether_log_ratelimit state_size_log; /* those refusals, and format-1 maps read
                                     (member_state.c): one line per window (lock-free) */
    uint64_t stale_dropped;
    uint64_t leader_changes;
    uint64_t rebalances;
    uint64_t shards_moved;
    /* Histograms (NULL without a registry; immutable after start, observed
     * with relaxed atomics): lease renewal CAS (lease actor), handoff from
     * decree to completing map, rebalance session (assign actor, leader). */
    aether_histogram *h_lease_renew, *h_handoff, *h_rebalance, *h_map_read;
    uint32_t brake_engaged;       /* atomic: 1 while this leader's rebalance brake holds */
    uint64_t brake_releases;      /* operator releases of the brake this node handled as leader */
    uint64_t nodes_forgotten;     /* departed nodes this node removed as leader (retention) */
    uint32_t self_left;           /* seq_cst, sticky: this run drained and is Left (cluster
                                     actor); it never asks to join again */
    uint64_t lease_renewals;      /* LeaseRenewed this node emitted (member_emit) */
    uint64_t lease_failures;      /* LeadershipLost it emitted, resigns while draining aside */
    /* Admission (DESIGN 2): this node cannot serve the cluster it met. */
    uint32_t refused;             /* release (member_note_refused), after refused_reason: a
                                     leader refused our join as incompatible; never cleared */
    uint32_t refused_claim;       /* CAS 0 -> 1: the one writer of refused_reason */
    char refused_reason[AETHER_ERR_MSG_MAX]; /* written once, before `refused` */
    uint32_t map_incompatible;    /* seq_cst: the newest map offered (assign actor) or the
                                     stored map read as leader (cluster actor) has another
                                     shard_count or replication than ours; cleared by the
                                     assign actor when it installs a map we can serve */
    uint64_t joins_refused;       /* leader side: joins refused by admission (counter) */
    uint64_t stood_down_term;     /* seq_cst, cluster actor: the term in which this node, leading
                                     with no map stored and none held, heard a member whose terms
                                     differ (member_shape_newcomer_refuses): in it, it decides
                                     nothing and publishes no map, and it resigns. Not
                                     final, unlike `refused`: a keep-alive can be forged */
    uint64_t stood_down_until_ns; /* seq_cst, with it: no campaign before this (the members'
                                     turn to lead, and to judge this node's admission) */
    uint32_t cmd_inflight[MEMBER_CMD_BUDGETS]; /* commands from the wire queued for the
                                     cluster actor, per budget (atomic) */
    uint64_t commands_busy;       /* commands answered "busy" past that budget (counter) */
    aether_log_ratelimit busy_log;/* those answers: one line per window (lock-free) */
    aether_log_ratelimit send_log;/* member_send_owned refusals: one line per window */
    uint64_t fail_requests_refused; /* leader side: MarkNodeFailed requests refused because
                                     the leader still hears the node (counter) */
    uint64_t heartbeats_ignored;  /* leader side: heartbeats from an id or incarnation that is
                                     not a healthy member's current one (counter) */
    uint64_t term_record_missing; /* elections this node won with no term recorded in the state
                                     store: it continued above its highest_term (lease.h) */
    uint64_t mapless_term;        /* seq_cst, written by the assign actor: the term in which this
                                     node, as leader, found no map in the state store (it was
                                     lost) and took over from nothing (member_assign.c,
                                     takeover_load). In that term it acknowledges no other node's
                                     keep-alive before its first map is out (member_cluster.c,
                                     ack_withheld): no node serves under an earlier map on its word */
    uint64_t shape_refusals;      /* relaxed: terms this node led with no map stored and
                                     refused itself, its shape lacking a majority (counter) */
    uint64_t old_map_term;        /* seq_cst, set by the assign actor: the term of the map this
                                     process held when it last moved to a new generation (0 =
                                     none). Never cleared: a map it installed has the cluster's
                                     shape all the same; keep-alives name it as map_term while
                                     no map of the new generation is held (member_shape.c,
                                     "Quorum of configuration") */
    uint64_t shape_blocked_term;  /* seq_cst, written by the cluster actor: the term in which
                                     this node leads with no map stored and its admission terms
                                     (its "shape": shard_count, replication, ...) are not shared
                                     by a majority of the live nodes it hears; the assign actor
                                     publishes no first map in it (member_shape.c, "Quorum of
                                     configuration"). 0 = none */
    uint64_t generation;          /* seq_cst, written by the lease actor only: the cluster
                                     generation this node follows (0 = none read yet) */
    uint64_t generation_changes;  /* relaxed: moves to a new generation (the store was lost) */
    uint64_t generation_dropped;  /* relaxed: events of another generation, dropped */
    uint64_t generation_values_refused; /* relaxed: stored maps/topologies of another
                                     generation, refused (member_state_generation_check) */
    aether_log_ratelimit gen_value_log; /* those refusals: one line per window (lock-free) */
    uint32_t generation_check;    /* seq_cst CAS 0 -> 1: a MSG_GENERATION_CHECK is queued */
    uint64_t state_lost_gen;      /* bumped (relaxed) by the lease actor each time, as leader,
                                     it found its term's record gone from the state store (the
                                     state bucket lost) and wrote it back; the cluster and
                                     assign actors then write back the topology and the map
                                     (each remembers the generation it handled) */
    /* Immutable after start: the log context of the member's actors (node,
     * and highest_term above). */
    aether_log_context log_ctx;

    /* Stamping of this node's events, shared by the three actors that emit
     * (member_emit): {term, seq} of the last event stamped, read and
     * replaced as one by a double-width compare-and-set (ck_pr_cas_64_2),
     * never under a lock. */
    uint64_t stamp[2] __attribute__((aligned(16)));
    /* The leader as this node knows it, and the speaker of the newest term
     * seen: one immutable member_leader_view, RCU-published and replaced by
     * compare-and-set (aether_snapshot_replace) by whichever actor or
     * transport thread changes it; never under a lock. NULL: none yet. */
    aether_snapshot_slot leader_view;
    uint64_t impostor_dropped; /* atomic: events from a node not leading their term */
    /* Term claims (DESIGN 2.4: "a message that would raise a node's highest
     * known term is believed only once the lease store confirms it"). */
    uint32_t claims_inflight;     /* atomic: MSG_TERM_CLAIM queued for the lease actor */
    aether_term term_refuted;     /* relaxed, written by the lease actor: the lowest term the
                                     store refuted in the window below; claims at or above it
                                     are dropped at the door until then, with no new read */
    uint64_t term_refuted_until_ns; /* relaxed, lease actor: end of that window (0 = none) */
    uint64_t forged_term_dropped; /* atomic: claims whose term the lease store does not have */
    uint64_t forged_leader_dropped; /* atomic: claims of a term the lease names another leader of */
    uint64_t claims_unverified;   /* atomic: claims dropped unjudged (store unreadable, or too
                                     many waiting) */
    aether_log_ratelimit claim_log; /* the lines for those drops: one per window */
};

/* After a lost state store, the maps of a term T are numbered from
 * T << MEMBER_MAP_VERSION_TERM_SHIFT (member_assign.c, takeover_load): above
 * every version published before. Terms at or above
 * MEMBER_MAP_VERSION_FLOOR_TERM_MAX keep the plain numbering (room to count
 * on in 64 bits): member_map_version_floor is 0 for them. */
#define MEMBER_MAP_VERSION_TERM_SHIFT 20u
#define MEMBER_MAP_VERSION_FLOOR_TERM_MAX (UINT64_C(1) << 40)
static inline uint64_t member_map_version_floor(aether_term term)
{
    return term < MEMBER_MAP_VERSION_FLOOR_TERM_MAX ? term << MEMBER_MAP_VERSION_TERM_SHIFT : 0;
}

/* Actor handlers and state lifecycles (member_*.c). */
aether_status member_cluster_init(aether_member *m);
void member_cluster_fini(aether_member *m);
void member_cluster_handle(void *state, aether_actor *self, const aether_msg *msg);
void member_cluster_drop(void *state, const aether_msg *msg);
void member_cluster_start(aether_member *m);

aether_status member_lease_init(aether_member *m);
void member_lease_fini(aether_member *m);
void member_lease_handle(void *state, aether_actor *self, const aether_msg *msg);
void member_lease_drop(void *state, const aether_msg *msg);
void member_lease_start(aether_member *m);

aether_status member_assign_init(aether_member *m);
void member_assign_fini(aether_member *m);
void member_assign_handle(void *state, aether_actor *self, const aether_msg *msg);
void member_assign_drop(void *state, const aether_msg *msg);
void member_assign_start(aether_member *m);

/* Shared helpers (member.c). */
/* record (of our id) is this process's: the same nonce when the record has
 * one, else the incarnation this process claims (topology.h,
 * "Incarnations"). Any thread. */
static inline bool member_record_is_mine(const aether_member *m, const aether_node_info *record)
{
    if (record->nonce != 0)
        return record->nonce == m->self_info.nonce;
    return record->incarnation == __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
}
/* record (of our id) is a newer process's than this one. Any thread. */
static inline bool member_record_is_newer(const aether_member *m, const aether_node_info *record)
{
    return !member_record_is_mine(m, record) &&
           record->incarnation > __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
}
static inline uint64_t member_now_ns(const aether_member *m) { return aether_clock_now_ns(m->clock); }
/* m->self_status as one word: 0 while our id is not in the topology (not
 * a member yet, or forgotten), else our record's status + 1. */
#define MEMBER_SELF_STATUS_NONE 0u
static inline uint32_t member_self_status_word(const aether_node_info *me)
{
    return me != NULL ? (uint32_t)me->status + 1u : MEMBER_SELF_STATUS_NONE;
}
/* This node's status as the cluster actor last published it (relaxed):
 * false if it is not a member (*status untouched). Any thread. */
static inline bool member_self_status(const aether_member *m, aether_node_status *status)
{
    uint32_t w = __atomic_load_n(&m->self_status, __ATOMIC_RELAXED);
    if (w == MEMBER_SELF_STATUS_NONE)
        return false;
    *status = (aether_node_status)(w - 1u);
    return true;
}
/* This node is a member with status s (one relaxed read). Any thread. */
static inline bool member_self_is(const aether_member *m, aether_node_status s)
{
    aether_node_status st;
    return member_self_status(m, &st) && st == s;
}
bool member_may_lead(const aether_member *m, aether_term *term_out);
/* Stamps e as this node's (term = the term we lead, next seq), delivers it
 * to the local actors and publishes it to the cluster. Takes over the
 * caller's reference. AETHER_ENOTLEADER (e released) if we may not lead;
 * node-local events (LeadershipLost) pass force_term. */
aether_status member_emit(aether_member *m, aether_event *e, aether_term force_term);
/* Sends a message carrying an owned payload to an actor; frees it (with
 * free()) and counts a warning if the mailbox refuses. */
aether_status member_send_owned(aether_member *m, aether_actor *a, uint16_t type, void *payload);
void member_send_tick(aether_actor *a, uint16_t type, uint64_t arg);
void member_set_leader_view(aether_member *m, const aether_node_id *leader, aether_term term);
void member_note_term(aether_member *m, aether_term term);
/* Lease actor only: follow generation `gen`, read from the state store
 * whose term record was `recorded` (0 = none). Nothing if it is the one we
 * follow; else publishes it and, unless we followed none and have seen no
 * term above `recorded` (terms are recorded before they are acted on, so
 * a higher one was of a lost generation), resets the baselines of the
 * header ("Generations"), logs and counts the change. True if it did. */
/* seen_before: this node's highest_term when the store read that gave
 * (gen, recorded) began. Only terms known then can be judged against that
 * record: a term learnt since may have been recorded after the read. */
bool member_adopt_generation(aether_member *m, uint64_t gen, aether_term recorded, aether_term seen_before);
/* Any thread: ask the lease actor to read the store's generation (one
 * request queued at a time). */
void member_check_generation(aether_member *m);
/* The state store (DESIGN 4: the current map and topology, so a starting or
 * lagging node reads them at once, and a new leader takes over from them).
 * The leader writes a change there BEFORE it publishes it (events, maps):
 * whatever any node has seen, a successor finds in the store.
 * put writes with compare-and-set from *rev (0 = unknown: read first). On a
 * lost compare-and-set or an unknown outcome it reads what is there: our own
 * value is success; a value stamped (term, version) at or above ours
 * ("version", "term" in the JSON; a topology has no term) is never
 * overwritten: AETHER_ESTALE (we are deposed, or took over from an older
 * state: reload). `gen` is the generation the value is stamped with (its
 * "gen"; 0 = none): a stored value stamped with another one is not
 * compared but replaced, only in a bucket of `gen` (AETHER_ESTALE if the
 * bucket is of another generation, AETHER_EUNAVAILABLE if it names none
 * yet, or the store's error reading it) (member_state.c, "Generations"). A key found absent is created only in a bucket whose
 * generation is ours (member_state.c, "Generations"): none there yet is
 * AETHER_EUNAVAILABLE, another is AETHER_ESTALE. AETHER_EUNKNOWN: not known to be stored, and a write of
 * ours whose outcome was lost may still be applied later (a KV timeout): the
 * caller must settle that before deciding anything that depends on it. Any
 * other failure: not stored; the caller does not publish the change and
 * tries again later. get returns a malloc'd copy. */
#define MEMBER_STATE_MAP "map"
#define MEMBER_STATE_TOPOLOGY "topology"
#define MEMBER_STATE_PUT_ROUNDS_MAX 4u
/* The largest value member_state_put writes: under the 1 MiB a NATS message
 * (hence a KV value) carries by default, with room for the message's
 * subject and headers. A larger value is refused (AETHER_EINVAL, counted in
 * state_too_large, logged with its size and this limit): one KV value per
 * key, never split (member_state.c). */
#define MEMBER_STATE_VALUE_MAX (960u * 1024u)
/* put, get and foreign call the store: the store actor's only
 * (member_store.c; the unit tests call put on a stopped member). */
aether_status member_state_put(aether_member *m, const char *key, const char *value, size_t len,
                               uint64_t gen, uint64_t term, uint64_t version, uint64_t *rev);
aether_status member_state_get(aether_member *m, const char *key, char **value, size_t *len,
                               uint64_t *rev);
/* A stored value's generation against the one this node follows (DESIGN
 * 2.4; member_state.c, "Generations"): may the value of `key` (stamped gen
 * `value_gen`, 0 = not said, version `version`) be used? AETHER_OK: yes.
 * AETHER_ESTALE: it is of another generation: refused, logged (naming
 * both), counted in generation_values_refused; the caller reads it as no
 * value at all. AETHER_EUNAVAILABLE: this node follows no generation yet
 * and the value names one: not used now (nor counted), the caller treats it
 * as a store that did not answer. Either refusal asks the lease actor to
 * read the store's generation. Any thread. */
aether_status member_state_generation_check(aether_member *m, const char *key, uint64_t value_gen,
                                            uint64_t version);
/* Leader only (the writer of `key`, one actor per key): is the value stored
 * under `key` no longer the one we last wrote or read (revision `rev`) but
 * one of another generation than ours? Then a deposed leader of a lost
 * generation wrote over ours (an ABA: member_state.c, "Generations"), every
 * reader refuses it, and the caller writes its own value back (put replaces
 * it). One get of the key (of the manifest only, for a value in parts); the
 * callers ask at most once per lease_ttl_ms. Logged when true. */
bool member_state_foreign(aether_member *m, const char *key, uint64_t rev);
/* The (term, version) stamp of a stored map (format 2: its header) or
 * topology (a JSON object; no term: 0); *gen its generation (0: absent or
 * malformed). False if the value is neither. Any thread. */
bool member_state_stamp(const char *json, size_t len, uint64_t *term, uint64_t *version,
                        uint64_t *gen);
/* The test of member_state_foreign on a value already read (its bytes as
 * stored: a map, topology or manifest). Logged when true. */
bool member_state_value_foreign(aether_member *m, const char *key, const char *value, size_t len);
/* The stored topology's bytes (json, len: a read of MEMBER_STATE_TOPOLOGY)
 * decoded, if its version is above than_version (AETHER_OK; the caller
 * owns *out), AETHER_ESTALE if not newer, else the decoder's error
 * (logged). Also notes whether it says we are down. One of another
 * generation is AETHER_ENOTFOUND: no topology of ours is stored; one read
 * before this node follows a generation is AETHER_EUNAVAILABLE
 * (member_state_generation_check). Any thread (no store call: the read is
 * the store actor's). */
aether_status member_state_topology_decode(aether_member *m, const char *json, size_t len,
                                           uint64_t than_version, aether_topology *out);
/* Sets self_down if topology t says this node (this run or a later one)
 * is Failed or Left: a node that missed its own NodeFailed learns it here. */
void member_check_self_down(aether_member *m, const aether_topology *t);
/* This node's right to serve by time alone (DESIGN of member_cluster.c):
 * it leads, or a leader acknowledged a keep-alive it sent less than
 * failure_timeout - fence_margin ago. Any thread. */
bool member_serving_right(const aether_member *m);
/* This node cannot serve the cluster's maps (refused at admission, or the
 * newest map has another shard_count/replication): it serves nothing, does
 * not campaign, and a leader in that state resigns. Any thread. */
static inline bool member_incompatible(const aether_member *m)
{
    return __atomic_load_n(&m->refused, __ATOMIC_ACQUIRE) != 0 ||
           __atomic_load_n(&m->map_incompatible, __ATOMIC_SEQ_CST) != 0;
}
/* This node stood down in `term` (member_shape_newcomer_refuses): it does not act
 * as that term's leader. Any thread. */
static inline bool member_stood_down(const aether_member *m, aether_term term)
{
    return term != AETHER_TERM_NONE && __atomic_load_n(&m->stood_down_term, __ATOMIC_SEQ_CST) == term;
}
/* Records that a leader refused our join as incompatible (reason: its
 * sentence); the first call wins and logs. Any thread. */
void member_note_refused(aether_member *m, const char *reason);
/* Tells the embedder (on_leader_changed, if any) of a leader change: the
 * callback runs on the cluster actor, the thread that calls on_event, so
 * the two are one sequence. Any thread; the caller notes the term first
 * (member_note_term), so every event the cluster actor takes after the
 * callback is judged against it (DESIGN 2.4: nothing older than the
 * highest term seen is applied after that term is known). */
void member_notify_leader(aether_member *m, const aether_node_id *leader, aether_term term);
/* An event from the wire whose term is confirmed (or not above this
 * node's highest): the speaker and staleness checks, the term noted, the
 * local fan-out (member.c). Transport thread or the lease actor. */
void member_admit_event(aether_member *m, const aether_event *e);
/* True once term (or a later one) is bound to a speaker (member.c,
 * speaks_for_term; member_set_leader_view): an event of term from an
 * unbound term waits for the lease store to name the leader (judge_claim).
 * Any thread; lock-free (an RCU read). */
bool member_speaker_bound(aether_member *m, aether_term term);
/* A claim the lease actor judged (member_lease.c): counts and logs a drop.
 * reason: "term_unconfirmed", "term_leader" or "unverified". */
void member_claim_dropped(aether_member *m, const aether_event *e, const char *reason, const char *why);

#define MEMBER_LOG "member"


/* One observation into a member histogram; nothing without a registry. */
static inline void member_observe_ns(aether_histogram *h, uint64_t ns)
{
    if (h != NULL)
        aether_histogram_observe_ns(h, ns);
}

#endif
