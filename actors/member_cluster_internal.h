/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_cluster_internal.h: what the files of the cluster actor share
 * (actors layer, private to member_cluster.c, member_announce.c and
 * member_shape.c): its state and its bounds.
 *
 * Threading: everything here is owned by the cluster actor (one of the
 * member's three actors: member_internal.h), but for the fields said
 * otherwise.
 */
#ifndef AETHER_MEMBER_CLUSTER_INTERNAL_H
#define AETHER_MEMBER_CLUSTER_INTERNAL_H

#include "member_internal.h"
#include "member_store_internal.h"

/* Nodes declared failed per failure-check tick, at most. */
#define FAILCHECK_BATCH_MAX 64u
/* A failure check that is not due yet waits at least this long: the
 * deadline is read on this node's clock, the timer runs on the executor's,
 * and the two may differ by the drift the configuration allows. */
#define FAILCHECK_SLACK_NS (1u * AETHER_NS_PER_MS)
/* Keep-alives awaiting their reply, at most (one per heartbeat tick). A
 * transport answers every request it accepted while it stays bound - with a
 * timeout at worst (transport.h) - so a slot always comes back, and never
 * while a reply could still name it: no acknowledgement is credited with a
 * later request's send time. */
#define KEEPALIVE_SLOTS 16u
/* Departed nodes forgotten per topology write, at most (the rest at the
 * next check, an interval later). */
#define FORGET_BATCH_MAX 256u
/* Sequence numbers of leader events remembered below the highest one taken
 * (duplicates among them are recognised), and the distance from it beyond
 * which an event is a jump, not the next in line (in_sequence). */
#define SEQ_WINDOW 1024u
#define SEQ_JUMP_MAX SEQ_WINDOW
AETHER_STATIC_ASSERT(SEQ_WINDOW % 64u == 0, "the seen-window is whole words");
/* At most one WARN line per this long about seq anomalies (a flood of
 * forgeries gives one line per window, with the count suppressed). */
#define SEQ_LOG_WINDOW_NS (1000u * AETHER_NS_PER_MS)

/* The text of a keep-alive's acknowledgement: this prefix and the version of
 * the map the leader has when it accepts the keep-alive. */
#define KEEPALIVE_MAP_PREFIX "map_version="

/* A process not admitted yet that finds its id at a higher incarnation
 * claims above it by 2 + (its own hash % this): see check_own_record. */
#define CLAIM_STEP_MAX 1000000u

/* One keep-alive in flight: the reply argument. `busy` is the hand-off
 * between the cluster actor (sets it, writes sent_ns, sends) and the
 * transport thread that delivers the reply (reads sent_ns, clears busy with
 * release order; the actor's acquire load pairs with it). */
typedef struct keepalive_slot {
    aether_member *m;
    uint64_t sent_ns;
    uint32_t busy;
} keepalive_slot;

typedef struct hb_entry {
    aether_node_id id;
    uint64_t last_ns;
    uint64_t departed_ns; /* when this node first saw it Left or Failed (its own clock);
                             0 = healthy, or not in the topology */
    uint64_t forced_inc;  /* the incarnation an operator's forced MarkNodeFailed named while
                             the node was still heard (judge_request); 0 = none. That
                             process is heard no more: last_ns stays, its keep-alives go
                             unacknowledged, and the failure check fails it on time */
} hb_entry;

/* Announcements waiting for the assign actor's barrier, at most (every
 * node of a topology changing at once, and its rejoin refused meanwhile). */
#define ANNOUNCE_PENDING_MAX AETHER_TOPOLOGY_NODES_MAX

/* One stored change not announced yet: its event, the barrier number it
 * waits for (0: none), and the term it was decided in. */
typedef struct announce_entry {
    aether_event *e;
    uint64_t barrier;
    aether_term term;
} announce_entry;

/* Quorum of configuration (member_shape.c): the shapes heard, one per node, at most. */
#define SHAPE_VOTES_MAX 256u
/* A counting leader that took over from nothing and hears no other node
 * waits this many failure timeouts before it publishes its shape alone. */
#define SHAPE_ALONE_TIMEOUTS 5u

/* One live node's shape as this leader heard it in a mapless term. */
typedef struct shape_vote {
    aether_node_id id;
    bool agrees;     /* its admission terms are ours */
    bool holds_map;  /* its keep-alive named a map it holds (map_term != 0) */
    uint64_t last_ns; /* its last keep-alive (our clock) */
} shape_vote;

/* One node of the stored topology as a counting leader found it. */
typedef struct shape_record {
    aether_node_id id;
    bool said;   /* its record carries the terms it was admitted with */
    bool agrees; /* ... and they are ours (only when said) */
} shape_record;

struct member_cluster_state {
    aether_topology topo;
    /* The topology as this node heard it announced: every topology event it
     * took (its own and the leaders'), on top of the first stored topology
     * it read (what was announced before it was there). Catching up from
     * the store changes topo, never this: a new leader announces what the
     * store has and this lacks (announce_stored_changes), so a change that
     * was stored but never announced (a leader's write that timed out and
     * landed, then it lost the lease) is announced even when this node had
     * already adopted it from the store. */
    aether_topology heard;
    bool heard_init;          /* heard holds the first stored topology (or there was none) */
    hb_entry *hb;             /* ascending by id */
    uint32_t n_hb, cap_hb;
    aether_term lead_term;    /* the term we started leading in (0 = follower) */
    uint64_t lead_since_ns;
    uint64_t failcheck_gen;   /* only the newest failure-check timer counts */
    uint64_t failcheck_at_ns; /* when it fires (this node's clock) */
    uint64_t join_requests;
    uint64_t state_rev;       /* revision of the stored topology we last wrote */
    uint64_t asked_above;  /* the record of ours this process last asked a new incarnation
                              above (tick_heartbeat): a healthy record of ours at or below it is
                              not adopted (check_own_record); 0 = none */
    keepalive_slot keepalive[KEEPALIVE_SLOTS];
    bool drain_requested;     /* aether_member_drain was called: ask until we are Draining */
    aether_term loaded_term;  /* the term in which we read the stored topology as leader */
    uint64_t state_lost_seen; /* the m->state_lost_gen whose topology write-back is done */
    uint64_t foreign_checked_ns; /* as leader: the stored topology last checked for a lost
                                    generation's write over ours (member_state_foreign) */
    uint64_t publications;    /* snapshots published so far */
    /* Leader-issued events seen (DESIGN: seq 1, 2, 3... per term; see
     * in_sequence): a gap, a jump, a duplicate or a late copy tells us our
     * topology may not be the leader's, whatever the version numbers say
     * (they count changes applied here). */
    aether_term seq_term;
    uint64_t seq_top;         /* highest seq of seq_term taken in sequence */
    uint64_t seq_seen[SEQ_WINDOW / 64u]; /* bit s % SEQ_WINDOW: s taken, for s in
                                            (seq_top - SEQ_WINDOW, seq_top] */
    uint64_t jump_since_ns;   /* first jump since an event was last taken in sequence; 0 = none */
    uint64_t reread_ns;       /* when a seq anomaly last made us re-read the store */
    aether_log_ratelimit seq_log; /* one WARN per window for seq anomalies */
    bool topo_dirty;          /* a topology event came after a gap: read the store */
    uint64_t gen_changes_seen; /* the m->generation_changes the sequence was restarted for */
    /* A NodeFailed/NodeLeft about us that the store could neither confirm
     * nor refute yet (unreadable): checked again every heartbeat. */
    bool self_report_pending;
    /* The term in which we lead with no map stored and none held (a new
     * cluster, or the state bucket lost with us a newcomer): our terms are
     * the cluster's only until a member shows otherwise
     * (member_shape_newcomer_refuses). 0 = not so in any term. */
    aether_term newcomer_term;
    /* Quorum of configuration: the term in which we lead with no stored map
     * and count the shapes of the nodes we hear (0 = none), since when, and
     * what we heard. */
    aether_term shape_term;
    uint64_t shape_since_ns;
    uint64_t shape_heard_ns; /* the first other node's keep-alive in shape_term; 0 = none */
    shape_vote shape_votes[SHAPE_VOTES_MAX];
    uint32_t n_shape_votes;
    /* The stored topology's nodes when the count began (us excluded): those
     * whose record carries their admission terms, in any state, and the
     * healthy ones whose record does not; they vote too when not heard, by
     * their recorded shape or as "unknown" (step 2). */
    shape_record shape_recorded[SHAPE_VOTES_MAX];
    uint32_t n_shape_recorded;
    bool shape_recorded_taken;
    /* A change whose write to the state store timed out (it may still be
     * applied, later): settled before anything else (settle_doubt). */
    char *doubt_json;         /* the topology we tried to write; NULL = no doubt */
    size_t doubt_len;
    uint64_t doubt_version;
    aether_event *doubt_event;/* the change, announced only if it turns out recorded */
    aether_log_ratelimit refuse_log; /* joins refused by admission: one line per window */
    aether_log_ratelimit hb_log;     /* heartbeats ignored: one line per window */
    aether_log_ratelimit fail_log;   /* MarkNodeFailed requests refused: one line per window */
    aether_log_ratelimit force_log;  /* MarkNodeFailed requests forced: one line per window */
    /* Announcements (member_internal.h, "The leader's two commit points"):
     * events of stored changes not announced yet, oldest first, at
     * ann[ann_head .. ann_head + ann_count). */
    announce_entry *ann;
    uint32_t ann_head, ann_count, ann_cap;
    uint64_t barrier_seq;     /* the newest barrier number an entry waits for */
    uint64_t barrier_sent;    /* the newest sent to the assign actor */
    uint64_t barrier_acked;   /* the newest it answered */
    aether_term loaded_pending_term; /* a take-over whose stored changes are queued: the
                                        assign actor takes over (topo_loaded_term) once
                                        they are announced; 0 = none */
    uint64_t ann_dropped;     /* entries dropped because their term ended */
    /* The store actor (member_store_internal.h): the leader's topology write
     * in flight (NULL: none; member_cluster.c, commit_send), and the
     * commands that came meanwhile, decided in the order they came once it
     * is done (cmdq[cmdq_head .. cmdq_head + cmdq_count), a ring of
     * cmdq_cap; bounded by the command budgets, member.c sink_command). */
    struct member_topo_commit *commit;
    member_cmd_box **cmdq;
    uint32_t cmdq_head, cmdq_count, cmdq_cap;
    bool failcheck_deferred;  /* a failure check skipped or cut short by a write in flight:
                                 run again once it is done */
    bool foreign_inflight;    /* check_foreign_topology's test is out */
};

/* Announcements (member_announce.c; member_internal.h, "The leader's two
 * commit points"). */
/* A NodeFailed or NodeLeft: announced only after a barrier. */
bool member_announce_is_departure(const aether_event *e);
/* Room for n more entries, grown if needed; called before the change is
 * committed, so that queueing it afterwards cannot fail. False (out of
 * memory, or ANNOUNCE_PENDING_MAX): the caller does not commit it. */
bool member_announce_reserve(member_cluster_state *cs, uint32_t n);
/* Step 1: e (taken over), a change stored in `term`, to the back of the
 * queue. */
void member_announce_push(aether_member *m, aether_event *e, aether_term term);
/* Steps 3 and 5: announces what the assign actor's barrier lets through. */
void member_announce_flush(aether_member *m);
/* A leader's change ev[0..n) (taken over), just stored in `term`:
 * published and announced in the order of member_internal.h. */
void member_announce_committed(aether_member *m, aether_event *const *ev, uint32_t n,
                               aether_term term);

/* Admission with no stored terms (member_shape.c). */
/* A JoinCluster c, to a leader of `term` with no map stored, would make it
 * the node that does not fit (a member of other terms): it stands down in
 * `term` and records itself Failed. True then (the joiner is told to
 * retry). */
bool member_shape_newcomer_refuses(aether_member *m, const aether_command *c, aether_term term);
/* The quorum of configuration is being counted in `term` (no map of it
 * yet). */
bool member_shape_counting(aether_member *m, aether_term term);
/* Step 1: notes the shape of the joiner of c; AETHER_OK if it is ours,
 * else EUNAVAILABLE (retry) in why. */
aether_status member_shape_note(aether_member *m, const aether_command *c, aether_term term,
                                aether_err *why);
/* Steps 2c and 3, on every heartbeat tick of a counting leader. */
void member_shape_check_self(aether_member *m);

/* Cluster actor helpers (member_cluster.c) the files above call. */
/* A command of `type` from this node, stamped with its term and generation. */
void member_cluster_base_command(aether_member *m, aether_command *c, aether_command_type type);
/* Decides a command as leader: applies and emits its events. */
aether_status member_cluster_lead_command(aether_member *m, const aether_command *c,
                                          aether_err *why);
/* This node, as leader, records itself Failed (policy 9 then resigns). */
void member_cluster_fail_self(aether_member *m);
/* Tells the assign actor that e has been applied and published. */
void member_cluster_notify_assign(aether_member *m, aether_event *e);
/* Publishes this node's status (m->self_status) from the topology. */
void member_cluster_publish_self_status(aether_member *m);

#endif
