/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_assign_internal.h: what the files of the ShardAssignment actor
 * share (actors layer, private to member_assign.c and member_map_step.c):
 * its state, its bounds and the helpers both call.
 *
 * Threading: everything here is owned by the assign actor (one of the
 * member's four actors: member_internal.h).
 */
#ifndef AETHER_MEMBER_ASSIGN_INTERNAL_H
#define AETHER_MEMBER_ASSIGN_INTERNAL_H

#include "member_internal.h"
#include "member_store_internal.h"
#include "shardmap.h"

#define OFFLINE_RING 64u /* remembered fail/leave times for the brake */
/* Release acknowledgements are collected into one map (issue 16): the map
 * is applied once every shard moving in the current map is acknowledged, or
 * when the window closes on the stragglers. The window grows with the map,
 * HANDOFF_FLUSH_MS plus HANDOFF_FLUSH_MS_PER_1K per 1024 owner slots (10 ms
 * at 1024 x R1, 74 ms at 65 536 x R1, 202 ms at 65 536 x R3): every map
 * costs every node a stored-map read and a decode, and at 65 536 shards a
 * map per 10 ms window (measured: 17 maps a second, 27 shards moved per map
 * during a join of the 11th node) kept the 2-core machine saturated and the
 * leader's lease renewals and keep-alive acknowledgements waiting for a
 * core (integration.nats_scale, 1 run in 4 lost its leader). */
#define HANDOFF_FLUSH_MS 10u
#define HANDOFF_FLUSH_MS_PER_1K 1u

struct member_assign_state {
    aether_topology topo;
    const aether_shardmap *cur;  /* the slot's current map (we are its only writer) */
    uint8_t *serving;            /* [shard_count] */
    uint32_t serving_count;
    bool fenced;
    /* leader side */
    aether_term lead_term;       /* 0 = not leading */
    aether_shardmap *target;     /* owned: the strategy's latest answer */
    uint64_t *moving_since_ns;   /* [shard_count]: when we started the handoff */
    uint64_t *move_version;      /* [shard_count]: first map version of that handoff under
                                    our leadership; older acknowledgements are for other moves */
    uint8_t *done;               /* [shard_count]: released (ack or decree), to apply */
    uint32_t n_done;
    uint32_t cur_moving;         /* shards moving in cur (counted at install) */
    bool flush_pending;
    uint64_t flush_gen;          /* the armed flush timer's number; a MSG_FLUSH of another
                                    (arg64 != 0) is stale: the map it waited for is out */
    uint64_t debounce_gen;
    bool debounce_armed;
    bool session_active;
    uint64_t session_start_ns;
    uint32_t session_moved;
    uint64_t offline_ns[OFFLINE_RING];
    uint32_t offline_n;
    bool brake;
    uint64_t brake_released_ns;  /* an operator released the brake then (our clock): losses
                                    before it no longer count; 0 = never */
    uint64_t state_rev;          /* revision of the stored map we last wrote or read */
    uint64_t state_version;      /* the version of the map we last read there */
    uint64_t state_hash;         /* XXH64 of those bytes: a re-created bucket numbers its
                                    revisions from 1 again, so a revision alone does not
                                    name a value */
    bool force_publish;          /* a node came back: publish a new version even if
                                    nothing moves (its acquire floor needs a newer map) */
    bool went_down;              /* we were Failed/Left (self_down) since our last join */
    bool admitted;               /* our own NodeJoined of this run was handled once */
    aether_log_ratelimit refute_log; /* announcements the store does not back */
    uint64_t announce_doubt;     /* the highest announcement counted while the store could
                                    not tell (0 = none): re-checked at each LeaseRenewed */
    uint64_t acquire_floor;      /* after coming back from Failed/Left: acquire only from
                                    maps newer than this (older ones predate our return) */
    bool admitted_once;          /* this process's first admission was handled */
    uint64_t serve_after_ns;     /* acquire nothing before this (our clock; 0 = no wait):
                                    an earlier process of our id may still hold its shards */
    aether_term loaded_term;     /* the term in which we read the stored map and topology as
                                    leader (policy 10): until then we publish nothing */
    uint64_t topo_publication;   /* of the cluster actor's snapshot we copied last */
    bool publish_pending;        /* a map could not be recorded: try again next tick */
    uint64_t state_lost_seen;    /* the m->state_lost_gen whose map write-back is done */
    uint64_t foreign_checked_ns; /* as leader: when the stored map was last checked for a
                                    lost generation's write over ours (check_foreign_map) */
    uint64_t gen_changes_seen;   /* the m->generation_changes handled (new_generation) */
    bool old_gen_map;            /* cur is a map of a generation before the one we follow:
                                  serve nothing from it, install the next stored map
                                  whatever its version (new_generation) */
    uint64_t version_floor;      /* this term's maps are numbered above it (takeover_load:
                                    no stored map); 0 = none */
    uint64_t first_map_after_ns; /* a take-over from nothing publishes no map before this
                                    (our clock; wait_first_map); 0 = no wait */
    /* advance() puts these back when its map cannot be recorded: */
    uint8_t *save_done;          /* [shard_count] */
    uint64_t *save_moving_since; /* [shard_count] */
    uint64_t *save_move_version; /* [shard_count] */
    aether_log_ratelimit incompat_log; /* maps we cannot serve: one line per window */
    /* The store actor (member_store_internal.h; member_internal.h, step 2). */
    bool map_write_inflight;     /* a write of the map is out (a step's, or a write-back):
                                    at most one at a time */
    uint64_t barrier_deferred;   /* the highest MSG_ANNOUNCE_BARRIER handled while it was (0 =
                                    none): acknowledged once the write is done */
    bool step_wanted;            /* a map step was asked for meanwhile: run when it is done */
    char step_reason[64];        /* the latest such step's reason */
    bool map_read_inflight;      /* a read of the stored map is out */
    aether_term takeover_read_term; /* the term a take-over's map read was asked for in */
    uint32_t map_read_wants;     /* MEMBER_ASSIGN_READ_* bits: what to do with the next read
                                    (asked for while one was out) */
    member_map_hint *read_hint;  /* the newest publication to compare the next read with */
    aether_event *read_announce; /* the newest LeaseRenewed whose announcement the next read
                                    judges (one reference) */
    bool topo_read_inflight;     /* a read of the stored topology is out */
    bool foreign_inflight;       /* check_foreign_map's test is out */
};

/* What an assign actor's store request is (member_store_req.tag). */
enum {
    MEMBER_ASSIGN_STORE_STEP = 1,   /* a map step's map (ctx: the step) */
    MEMBER_ASSIGN_STORE_WRITE_BACK, /* the published map stored again (rewrite_lost_map) */
    MEMBER_ASSIGN_STORE_OVER_FOREIGN, /* the same, over a lost generation's (check_foreign_map) */
    MEMBER_ASSIGN_STORE_FOREIGN,    /* check_foreign_map's test */
    MEMBER_ASSIGN_STORE_MAP_READ,   /* a read of the stored map (arg: MEMBER_ASSIGN_READ_* bits) */
    MEMBER_ASSIGN_STORE_TOPO_READ,  /* a read of the stored topology */
};

/* What a read of the stored map is for (bits; several ride on one read). */
enum {
    MEMBER_ASSIGN_READ_TAKEOVER = 1u << 0, /* policy 10: takeover_load carries on */
    MEMBER_ASSIGN_READ_HINT = 1u << 1,     /* a publication (map_hinted): as->read_hint */
    MEMBER_ASSIGN_READ_ANNOUNCE = 1u << 2, /* a LeaseRenewed's map version: as->read_announce */
    MEMBER_ASSIGN_READ_RECHECK = 1u << 3,  /* recheck_announcement */
    MEMBER_ASSIGN_READ_CATCH_UP = 1u << 4, /* install it if newer, nothing else */
    MEMBER_ASSIGN_READ_ADMIT = 1u << 5,    /* self_admitted: the map names this id? */
};

/* The leader's map step (member_map_step.c): derives and checks the next
 * map and sends it to the store actor; nothing if it would change nothing.
 * With as->topo just refreshed in the same handler run (member_internal.h,
 * step 2). While a map write is in flight it only notes that a step is
 * wanted (member_assign_want_step). */
void member_map_step_commit(aether_member *m, const char *reason);
/* The completion of the step's write (tag MEMBER_ASSIGN_STORE_STEP):
 * publishes, applies and reports the map if it was stored and is still
 * valid, else puts back what the step consumed. r stays the caller's. */
void member_map_step_stored(aether_member *m, member_store_req *r);
/* A map step was asked for while a map write is in flight: it runs once
 * the write is done (member_assign.c). */
void member_assign_want_step(aether_member *m, const char *reason);
/* as->topo := the cluster actor's latest snapshot (member_assign.c). */
void member_assign_refresh_topology(aether_member *m);

/* Helpers of the assign actor (member_assign.c) the map step calls. */
/* Takes ownership of map and installs it if newer (routing slot,
 * reconcile); false if not installed. `stored`: read from the state store
 * (the authority), not received from the wire. */
bool member_assign_adopt(aether_member *m, aether_shardmap *map, bool stored);
/* id is Active or Draining in as->topo. */
bool member_assign_is_healthy(const member_assign_state *as, const aether_node_id *id);
/* id is Active in as->topo. */
bool member_assign_is_active(const member_assign_state *as, const aether_node_id *id);
/* Emits e (NULL: nothing) as this node's, under the term it leads. */
void member_assign_emit(aether_member *m, aether_event *e);
/* Owners of shard s of map as ids, primary first; returns the count. */
uint32_t member_assign_owner_ids(const aether_shardmap *map, uint32_t s, aether_node_id *ids);
/* The same owners in the same order. */
bool member_assign_same_ids(const aether_node_id *a, uint32_t na, const aether_node_id *b,
                            uint32_t nb);

#endif
