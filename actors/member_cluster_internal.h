/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_cluster_internal.h: what the files of the cluster actor share
 * (actors layer, private to member_cluster.c, member_apply.c,
 * member_admit.c, member_detect.c, member_topo_store.c, member_announce.c
 * and member_shape.c): its state, its bounds, and the order of its store
 * requests.
 *
 * DESIGN: the cluster actor's store requests (DESIGN 3: an actor never
 * blocks; issue 14, item 1).
 * The cluster actor never waits on the state store: every read and write
 * it needs - a leader's change (a commit), the take-over's reads and fence
 * (policy 10), the settling of a write whose outcome was lost, a node's
 * re-read of the stored topology, a leader's write-back - is a request to
 * the store actor (member_store_internal.h), and what the synchronous call's
 * caller did after the call is done in the run that handles its completion
 * (MSG_STORE_DONE, member_topo_store_done). A synchronous call was safe
 * because nothing ran between the call and the use of its answer. What
 * keeps the asynchronous one as safe:
 *  1. One request at a time. cs->io names the request in flight
 *     (cluster_io; CLUSTER_IO_NONE: none). It is set in the run that sends
 *     the request (io_send: only with none in flight, asserted) and
 *     cleared first thing in the run that handles its completion. The
 *     store actor runs one sender's requests in order and delivers their
 *     completions in order (member_store_internal.h, step 3), so every
 *     completion handled is that of cs->io (asserted on its tag). The one
 *     request outside the slot is the leader's foreign-generation test
 *     (CLUSTER_STORE_FOREIGN_TAG): a read of nothing this actor holds,
 *     whose answer only ever starts a commit, which takes the slot like
 *     any other.
 *  2. What is pending, and what continues at the completion:
 *     COMMIT: cs->commit, the topology the change makes and its events
 *       (made ours, published, announced, the command answered);
 *     SETTLE, MAP_TERMS, TAKEOVER: the take-over's steps 0-2 for io_term
 *       (member_topo_store_loaded sends the step that is due; step 1's
 *       completion sends step 2; the last sets loaded_term). A step whose
 *       term ended meanwhile adopts what it read and sets nothing;
 *     RELOAD: io_for, the rest of the handling that asked for the read
 *       (member_apply_reloaded), with the event it continues (io_event: a
 *       reference), that event's sequence verdict (io_taken: in_sequence
 *       ran once, before the read) and the self-down report count from
 *       before the read (io_reports: a report that comes during the read is
 *       not refuted by it);
 *     REFENCE: io_lost, the lost state bucket it writes back for.
 *  3. What waits. While a request is in flight, a message whose handling
 *     would read or change what its completion replaces is not handled: it
 *     waits in cs->held in the order it came (member_cluster_hold), and the
 *     completion's run handles the waiting messages in that order, after
 *     the continuation (member_cluster_drain), up to the first one held by
 *     the next request (one the continuation or a drained message sent).
 *     Once one waits, every later command, event and leader note waits
 *     behind it (the order of arrival is kept across kinds). Held
 *     (member_topo_store_holds):
 *     - behind every request: commands. A command is judged and decided on
 *       cs->topo, and the next commit names the revision the previous one
 *       left (state_rev): decided before the completion, it would be
 *       decided on the topology from before the change (a keep-alive of a
 *       node being failed acknowledged), or stored over a revision about
 *       to move. A leader's command that comes before the take-over is
 *       done starts its next step and waits for it, rather than being
 *       refused (member_admit_command);
 *     - behind every request but REFENCE: events and leader notes. The
 *       completion replaces cs->topo as a whole (a commit's copy made
 *       before the request, or what the store had): an event applied
 *       meanwhile would be lost by the replacement. Held, it is applied
 *       after, on top of it, in order - as if the synchronous call, made in
 *       the handler of the message that asked for it, had come first. A
 *       leader note keeps its place among the events (the embedder's
 *       on_leader_changed and on_event are one sequence: member.h).
 *     So after every handler run cs->held is empty or its first message is
 *     held by cs->io (asserted at the end of member_cluster_handle).
 *  4. Why nothing else acts on a stale view meanwhile: every other message
 *     this actor handles with a request in flight reads nothing the
 *     completion changes, or reads it only as the synchronous version did
 *     had it come just before the message that sent the request:
 *     - the heartbeat tick publishes the heartbeat and sends the keep-alive
 *       from our own record: as from the topology before the request. Its
 *       retry of a report about us is not sent while a request is in
 *       flight, and self_report_pending stays set until a completion
 *       clears it, so the keep-alive keeps the incarnation the leader
 *       knows (member_cluster.c, tick_heartbeat);
 *     - the failure check decides nothing while a request is in flight: it
 *       is run again after the completion (failcheck_deferred); the
 *       leader's own decisions (a drain completed, a misfit failed by the
 *       quorum of configuration, itself failed, departed nodes forgotten)
 *       are refused "busy" (member_topo_store_busy) and asked again at
 *       their own cadence;
 *     - a heartbeat from the wire (the leader's record of who it heard)
 *       is evidence of life whatever the record it is checked against;
 *     - an announce ack announces what was stored and published before
 *       (member_internal.h, step 3), which no request in flight changes:
 *       the take-over reads only with nothing left to announce, and a
 *       settling that finds its write recorded announces it only with the
 *       queue empty, tested at its completion;
 *     - replies, a drain asked of this node, commands sent to the leader:
 *       no topology.
 *  5. Unknown outcome: re-read before acting. A commit whose outcome was
 *     lost (AETHER_EUNKNOWN) leaves its bytes in doubt_json; while it
 *     stands member_topo_store_loaded is false, so no command is decided
 *     and no node declared failed until step 0 (SETTLE: a read of the key,
 *     and a rewrite at the revision read unless it finds the write applied
 *     or overtaken) has settled it. A read that did not answer (any error,
 *     an unknown outcome among them) is handled as the synchronous read
 *     that did not answer was: each continuation keeps its fallback (the
 *     event applied as it came, the report kept pending, topo_dirty kept
 *     set); a take-over step that failed is not sent again before a
 *     heartbeat interval (io_retry_ns), so a store that refuses at once
 *     does not turn every command into a read, and meanwhile the leader
 *     refuses its commands "retry" as it did.
 *  6. Liveness: the store actor answers every request it accepted (a
 *     completion a full mailbox refused is sent again: member_store_internal.h,
 *     step 3); one it refused was never in flight (io stays NONE; the
 *     caller falls back as when the store does not answer). So what waits
 *     waits at most one store round trip per request, bounded by the
 *     store's timeout. The queue is bounded: commands by their budgets
 *     (member.c, sink_command), events by CLUSTER_HELD_EVENTS_MAX (past it
 *     one is dropped and topo_dirty set: the store is read, as after any
 *     loss), leader notes by the lease actor's one per leader change.
 *  7. Generations: a completion of a request sent before a new generation
 *     began (io_gen_changes) changes nothing of the new one: a commit is
 *     refused (commit_done), a take-over step or write-back ends, a
 *     reload's bytes are not adopted (its continuation runs as if the
 *     store had not answered; topo_dirty, set by the change, reads again).
 * Checked by: the unit scenarios of test_cluster (a leader's commands
 * during its take-over, a write in doubt settled), the multi-threaded
 * wave (test_cluster_mt: the store actor on its own executor, as in
 * production), and every simulator seed (tools/soak), which runs the
 * store actor on the step executor and checks I1-I5 and the departures
 * oracle on every map it sees.
 *
 * Threading: everything here is owned by the cluster actor (one of the
 * member's four actors: member_internal.h), but for the fields said
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

/* The cluster actor's store request in flight (member_cluster_state.io;
 * member_topo_store.c). */
typedef enum cluster_io {
    CLUSTER_IO_NONE = 0,
    CLUSTER_IO_COMMIT,    /* a leader's change written (member_topo_store_commit_send: cs->commit) */
    CLUSTER_IO_SETTLE,    /* a write in doubt looked for, the key fenced (take-over step 0) */
    CLUSTER_IO_MAP_TERMS, /* the stored map's shard_count and replication (take-over step 1) */
    CLUSTER_IO_TAKEOVER,  /* the stored topology read and its key fenced (take-over step 2) */
    CLUSTER_IO_RELOAD,    /* any node: the stored topology read, to catch up */
    CLUSTER_IO_REFENCE,   /* a leader's topology written back after a lost state bucket */
} cluster_io;
/* The tag of the one request that is not the one in flight: the leader's
 * foreign-generation test (member_topo_store_check_foreign), a read whose answer
 * only ever starts a commit. */
#define CLUSTER_STORE_FOREIGN_TAG 0x100u

/* What a CLUSTER_IO_RELOAD continues at its completion (member_apply.c,
 * member_apply_reloaded). */
typedef enum cluster_reload_for {
    CLUSTER_RELOAD_REREAD,      /* a seq anomaly, a LeaseRenewed naming another version: the
                                   store's topology adopted, topo_dirty cleared */
    CLUSTER_RELOAD_ANNOUNCED,   /* a topology event after a gap: not applied if the store
                                   answered (it has it), applied if not */
    CLUSTER_RELOAD_SELF_REPORT, /* a report about this node (or, NULL, its retry): judged
                                   against what the store has */
} cluster_reload_for;

/* A message held behind the request in flight: MSG_COMMAND (the box,
 * owned), MSG_EVENT (one reference), MSG_LEADER_NOTE (the box, owned). */
typedef struct cluster_held {
    uint16_t type;
    void *ptr;
} cluster_held;
/* Events held at most; past it one is dropped and the stored topology read
 * instead (as after any loss: the store is the authority). Commands are
 * bounded by their budgets (member.c, sink_command). */
#define CLUSTER_HELD_EVENTS_MAX 1024u

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
     * applied, later): settled before anything else (the take-over's step 0,
     * member_topo_store.c). */
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
    /* The store actor (member_store_internal.h): the one request of this
     * actor in flight (io; member_topo_store.c), what it is for, and the
     * messages held behind it, in the order they came
     * (held[held_head .. held_head + held_count), a ring of held_cap; see
     * "The cluster actor's store requests" above). */
    cluster_io io;
    aether_term io_term;      /* the term a take-over step or a commit serves */
    uint64_t io_gen_changes;  /* gen_changes_seen when it was sent: a completion of an
                                 ended generation changes nothing */
    cluster_reload_for io_for; /* CLUSTER_IO_RELOAD: what continues at its completion */
    aether_event *io_event;   /* CLUSTER_IO_RELOAD: the event it continues (one reference) */
    bool io_taken;            /* ... and that event's in_sequence verdict */
    uint64_t io_reports;      /* ... m->self_down_reports when it was sent */
    uint64_t io_lost;         /* CLUSTER_IO_REFENCE: the m->state_lost_gen it writes back for */
    uint64_t io_retry_ns;     /* a take-over step that failed: the next not before this */
    struct member_topo_commit *commit; /* CLUSTER_IO_COMMIT: the change being written */
    cluster_held *held;
    uint32_t held_head, held_count, held_cap;
    uint32_t held_events;     /* MSG_EVENT among them (at most CLUSTER_HELD_EVENTS_MAX) */
    uint64_t held_dropped;    /* events dropped past that bound (the store is read instead) */
    aether_log_ratelimit held_log;
    bool failcheck_deferred;  /* a failure check skipped or cut short by a request in flight:
                                 run again once it is done */
    bool foreign_inflight;    /* member_topo_store_check_foreign's test is out */
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

/* The cluster actor's store requests (member_topo_store.c; "The cluster
 * actor's store requests" above). */
/* A leader's change being written: the topology it makes (a copy of ours,
 * changed) and what follows once it is stored. */
typedef enum topo_commit_kind {
    TOPO_COMMIT_DECIDED,    /* events decided (a command, the failure check, a drain) */
    TOPO_COMMIT_FORGET,     /* departed nodes removed (member_detect.c, forget): no event */
    TOPO_COMMIT_WRITE_BACK, /* the topology held, stored again over a lost generation's
                               (member_topo_store_check_foreign): no change */
} topo_commit_kind;
typedef struct member_topo_commit {
    topo_commit_kind kind;
    aether_topology next;        /* the topology once stored (owned) */
    aether_event *ev[AETHER_TOPOLOGY_DECIDE_MAX]; /* the change's events (owned) */
    uint32_t n;
    aether_term term;            /* decided in */
    bool doubtable;              /* an unknown outcome is remembered (take-over step 0) */
    bool keepalive;              /* a JoinCluster: counted as a heartbeat of join_id once stored */
    aether_node_id join_id;
    member_cmd_box *box;         /* the command to answer once done (owned), or NULL */
    uint64_t gen_changes;        /* cs->gen_changes_seen when decided */
    aether_node_id gone[FORGET_BATCH_MAX]; /* TOPO_COMMIT_FORGET */
    uint64_t age_ms[FORGET_BATCH_MAX];
    uint32_t n_gone;
} member_topo_commit;
/* A commit whose topology is a copy of ours (NULL: no memory). */
member_topo_commit *member_topo_store_commit_new(aether_member *m, topo_commit_kind kind,
                                                 aether_term term);
/* Sends tc's topology to the store actor; tc is taken over either way.
 * AETHER_OK: in flight (cs->commit); its completion finishes it. Else not
 * recorded: tc freed (events released), why says so. Only with nothing in
 * flight. */
aether_status member_topo_store_commit_send(aether_member *m, member_topo_commit *tc, aether_err *why);
/* A request is in flight: a leader's own decision is refused (why, if not
 * NULL) and runs again once it is done (failcheck_deferred, or its asker's
 * next tick). */
bool member_topo_store_busy(aether_member *m, aether_err *why);
/* Does the request `io` in flight hold a message of `type` back? */
bool member_topo_store_holds(cluster_io io, uint16_t type);
/* Policy 10, strictly: the leader of `term` has settled any write in doubt
 * and read (and fenced) the stored state in this term. False: not yet -
 * the next step is sent if none is in flight and none failed lately. */
bool member_topo_store_loaded(aether_member *m, aether_term term);
/* Reads the stored topology; its completion adopts it and calls
 * member_apply_reloaded(why, e, taken, reports). False: not sent (another
 * request in flight, or the store actor refused it): the caller goes on as
 * when the store does not answer. */
bool member_topo_store_reload(aether_member *m, cluster_reload_for why, const aether_event *e,
                              bool taken, uint64_t reports);
/* Leader of `term`: writes the topology back after a lost state bucket
 * (m->state_lost_gen moved), if nothing is in flight. */
void member_topo_store_refence(aether_member *m, aether_term term);
/* Leader: once per lease_ttl_ms, tests whether a deposed leader of a lost
 * generation wrote its topology over ours (written back if so). */
void member_topo_store_check_foreign(aether_member *m, uint64_t now);
/* MSG_STORE_DONE: a request of this actor done (r stays the caller's). */
void member_topo_store_done(aether_member *m, member_store_req *r);
void member_topo_store_fini(aether_member *m);

/* Failure detection (member_detect.c): the leader's heartbeat record. */
/* The record of id (created if asked and absent; NULL: no memory). */
hb_entry *member_detect_hb_find(member_cluster_state *cs, const aether_node_id *id, bool create);
/* After a NodeJoined (another event: nothing): the admitted node is a new
 * process, heard now. */
void member_detect_heard_if_joined(aether_member *m, const aether_event *e);
/* Drops the records of ids the topology no longer has, but for nodes heard
 * within keep_ns that are not departed. */
void member_detect_hb_prune(member_cluster_state *cs, uint64_t now_ns, uint64_t keep_ns);
/* (Re)arms the failure check for at_ns (this node's clock). */
void member_detect_failcheck_at(aether_member *m, uint64_t at_ns);
/* MSG_TICK_FAILCHECK of the current timer generation. */
void member_detect_tick(aether_member *m);
/* MSG_HEARTBEAT. */
void member_detect_on_heartbeat(aether_member *m, const member_hb_box *b);
/* Retention's clock: when this node first saw each node departed. */
void member_detect_note_departures(aether_member *m);

/* Commands (member_admit.c). */
/* MSG_COMMAND (b taken over): judged, decided as leader, answered - or
 * held behind the request in flight (at the front of the queue if it came
 * from there: `from_held`). */
void member_admit_command(aether_member *m, member_cmd_box *b, bool from_held);
/* Answers command b (it stays the caller's): st, or why when refused. */
void member_admit_answer(aether_member *m, member_cmd_box *b, aether_status st,
                         const aether_err *why, bool deferred);
/* One leader-decided topology event (e, owned): recorded, then published
 * and announced. Not recorded: released, nothing announced. unsay_self:
 * the record of this node loses its admission terms in the same write
 * (member_shape.c, step 2d). */
aether_status member_admit_announce_one(aether_member *m, aether_event *e, bool unsay_self,
                                        aether_err *why);
/* MSG_DRAINED: node owns nothing; the leader records it Left. */
void member_admit_drained(aether_member *m, const aether_node_id *node);
/* Decides a command as leader: applies and emits its events. */
aether_status member_cluster_lead_command(aether_member *m, const aether_command *c,
                                          aether_err *why);
/* This node, as leader, records itself Failed (policy 9 then resigns). */
void member_cluster_fail_self(aether_member *m);

/* Event application (member_apply.c). */
/* A new generation began: the sequence and the term start again. Called
 * first on every message. */
void member_apply_follow_generation(aether_member *m);
/* MSG_EVENT (not held). */
void member_apply_event(aether_member *m, const aether_event *e);
/* A CLUSTER_IO_RELOAD done: `answered` if the store's topology was read
 * (and adopted); the rest of the handling that asked for it. */
void member_apply_reloaded(aether_member *m, cluster_reload_for why, const aether_event *e,
                           bool taken, uint64_t reports, bool answered);
/* The heartbeat tick's retry of a report about us the store could not
 * judge yet (self_report_pending). */
void member_apply_self_report_retry(aether_member *m);

/* The actor (member_cluster.c). */
/* A command of `type` from this node, stamped with its term and generation. */
void member_cluster_base_command(aether_member *m, aether_command *c, aether_command_type type);
/* Tells the assign actor that e has been applied and published. */
void member_cluster_notify_assign(aether_member *m, aether_event *e);
/* Publishes this node's status (m->self_status) from the topology. */
void member_cluster_publish_self_status(aether_member *m);
/* Holds a message behind the request in flight (ptr taken over; an event
 * is retained by the caller). at_front: it came from the queue's front. */
void member_cluster_hold(aether_member *m, uint16_t type, void *ptr, bool at_front);
/* Handles what waits, in order, up to the first the request in flight
 * holds. */
void member_cluster_drain(aether_member *m);

#endif
