/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_assign.c: the ShardAssignment actor of a member (actors layer).
 *
 * DESIGN
 * Every node (follower side):
 *  1. Applies maps (its own as leader, or copies from the transport) whose
 *     version is newer: publishes them in the routing slot, then reconciles
 *     what it serves with what the map says, shard by shard: it serves a
 *     shard iff it is the shard's primary and the shard is stable and the
 *     node is not fenced. A shard it serves that stops qualifying is
 *     released (on_shard_released) BEFORE anything else; a shard moving away
 *     from it is acknowledged to the leader (ShardReleased) after the release,
 *     on every map that still shows it moving (idempotent, survives a change
 *     of leader). A shard that starts qualifying is acquired.
 *  2. Fences itself: when its serving right lapses (no leader acknowledged
 *     a keep-alive it sent in the last failure_timeout - fence_margin, see
 *     member_cluster.c), it releases everything it serves. The leader cannot
 *     declare it failed before failure_timeout after that keep-alive, so by
 *     the time its shards are given to others, it serves none of them. It
 *     unfences, and takes its shards back, once the right holds again.
 * The leader (member_may_lead):
 *  3. Rebalances (policies 5, 6, 7, 8): NodeJoined arms one debounce timer
 *     (a burst of joins gives one rebalance), NodeFailed / NodeDraining /
 *     NodeLeft rebalance at once, LeaderElected(self) takes over (policy 10:
 *     once the cluster actor has read the stored topology in this term, it
 *     reads the stored map and adopts it if newer, then republishes under its
 *     term; until both reads succeed it publishes nothing; the strategy is
 *     deterministic and moves nothing if the topology did not change: I4).
 *     A rebalance that cannot run now (the lease in doubt for a moment, a
 *     map that could not be recorded) is retried on the next tick.
 *  4. A rebalance asks the strategy for a target map, then derives the next
 *     published map from the current one: replica-only changes are applied
 *     directly; a shard whose primary is gone (failed, left) is reassigned
 *     directly (its old owner fenced itself, see 2); a shard whose primary is
 *     healthy is marked moving to its new primary (Stable -> Releasing) if
 *     that is an Active node, at most max_concurrent_handoffs at a time, the
 *     rest queued in shard order. A handoff whose target stopped being the
 *     plan's, or Active, ends where the plan wants the shard now (a step
 *     that still diverges from the plan schedules the next one).
 *  5. ShardReleased acknowledgements are collected and applied together
 *     (one new map per HANDOFF_FLUSH_MS window): the shard becomes stable
 *     with its target owners (Releasing -> Stable(to)). A handoff older than
 *     handoff_timeout is completed by decree: the old owner has fenced itself
 *     or released it by then.
 *  6. Every map is checked against the invariants and recorded in the state
 *     store (key "map", member_state.c) BEFORE it is published to the
 *     cluster and applied locally (1); a map that fails either is dropped,
 *     what its attempt consumed is put back, and the next tick tries again.
 *     The store calls are requests to the store actor (member_store_internal.h):
 *     one map write in flight at a time, the barrier of a departure answered
 *     only after it (member_internal.h, "The leader's two commit points",
 *     step 2), the map checked again against the topology snapshot before
 *     it is published; the reads of the stored map (a follower's catch-up,
 *     a take-over, an announcement judged) one at a time as well, what is
 *     asked for meanwhile riding on the next read. RebalanceStarted opens a session, ShardAssigned /
 *     ShardMigrated report each placement, RebalanceCompleted closes it when
 *     the published map equals the target.
 *  7. Brake: more than brake_max_offline nodes failing or leaving within
 *     brake_window_ms engages the brake: the strategy only restores I2 until
 *     the window clears (then a rebalance runs).
 * The map step of 4 to 6 is in member_assign's second file,
 * member_map_step.c; the state both share, member_assign_internal.h.
 * Threading: state owned by the assign actor; the routing slot's single writer.
 */
#include "member_assign_internal.h"

#include <stdlib.h>
#include <string.h>

#include "invariants.h"
#include "keyhash.h"
#include "policies.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"
#include "topology_json.h"


/* A node offered maps it cannot serve hears of them every LeaseRenewed. */
#define INCOMPAT_LOG_WINDOW_NS (60u * AETHER_NS_PER_S)

aether_status member_assign_init(aether_member *m)
{
    member_assign_state *as = calloc(1, sizeof(*as));
    if (as == NULL)
        return AETHER_ENOMEM;
    m->as = as;
    aether_log_ratelimit_init(&as->incompat_log, INCOMPAT_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&as->refute_log, 1000u * AETHER_NS_PER_MS);
    uint32_t s = m->cfg.shard_count;
    as->serving = calloc(s, 1);
    as->done = calloc(s, 1);
    as->moving_since_ns = calloc(s, sizeof(uint64_t));
    as->move_version = calloc(s, sizeof(uint64_t));
    as->save_done = calloc(s, 1);
    as->save_moving_since = calloc(s, sizeof(uint64_t));
    as->save_move_version = calloc(s, sizeof(uint64_t));
    if (as->serving == NULL || as->done == NULL || as->moving_since_ns == NULL ||
        as->move_version == NULL || as->save_done == NULL || as->save_moving_since == NULL ||
        as->save_move_version == NULL)
        return AETHER_ENOMEM;
    return aether_topology_init(&as->topo, &m->cfg.node);
}

void member_assign_fini(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as == NULL)
        return;
    aether_topology_fini(&as->topo);
    aether_shardmap_destroy(as->target);
    member_map_hint_free(as->read_hint);
    aether_event_release(as->read_announce);
    free(as->serving);
    free(as->done);
    free(as->moving_since_ns);
    free(as->move_version);
    free(as->save_done);
    free(as->save_moving_since);
    free(as->save_move_version);
    free(as);
    m->as = NULL;
}

void member_assign_drop(void *state, const aether_msg *msg)
{
    (void)state;
    if (msg->flags & AETHER_MSG_REF)
        return; /* released by the runtime */
    if (msg->type == MSG_STORE_DONE)
        member_store_req_free(msg->ptr);
    else
        free(msg->ptr); /* MSG_MAP_HINT and MSG_SELF_REFUTED carry none: NULL */
}

void member_assign_start(aether_member *m)
{
    uint64_t every = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    aether_msg t = { .type = MSG_TICK_CHECK };
    (void)aether_timer_start(m->assign, every, every, &t, NULL);
}

/* ---- follower side: serving what the map says ------------------------------ */

static void send_ack(aether_member *m, uint32_t shard, const aether_shardmap *map)
{
    aether_release_ack ack = { .from = m->cfg.node, .shard = shard,
                               .map_version = map->version, .term = map->term };
    (void)aether_transport_send_release(m->deps.transport, &ack);
}

static void reconcile(aether_member *m)
{
    member_assign_state *as = m->as;
    if (__atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST))
        as->went_down = true;
    const aether_shardmap *map = as->cur;
    if (map == NULL)
        return;
    aether_node_index me = aether_shardmap_find_node(map, &m->cfg.node);
    bool down = as->fenced || __atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST) ||
                member_incompatible(m) || as->old_gen_map;
    /* Releases first, across all shards, then acquisitions. */
    for (uint32_t s = 0; s < map->shard_count; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(map, s);
        bool primary = me != AETHER_NODE_INDEX_NONE && e->owner_count > 0 && e->primary == me;
        bool want = primary && e->state == AETHER_SHARD_STABLE && !down;
        if (as->serving[s] && !want) {
            if (m->cb.on_shard_released)
                m->cb.on_shard_released(m->cb.arg, s, map->version);
            as->serving[s] = 0;
            as->serving_count--;
        }
        if (primary && e->state == AETHER_SHARD_MOVING && !as->serving[s])
            send_ack(m, s, map);
    }
    /* Acquire only from a map that is current (the newest term we know of,
     * not older than the leader announced) while our serving rights hold:
     * a lagging node must not pick up shards its map no longer gives it. */
    bool current = map->version > as->acquire_floor && aether_member_may_serve(m) &&
                   member_now_ns(m) >= as->serve_after_ns;
    for (uint32_t s = 0; s < map->shard_count && !down && current; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(map, s);
        bool want = me != AETHER_NODE_INDEX_NONE && e->owner_count > 0 && e->primary == me &&
                    e->state == AETHER_SHARD_STABLE;
        if (want && !as->serving[s]) {
            as->serving[s] = 1;
            as->serving_count++;
            if (m->cb.on_shard_acquired)
                m->cb.on_shard_acquired(m->cb.arg, s, map->version);
        }
    }
    AETHER_ASSERT(as->serving_count <= map->shard_count);
    __atomic_store_n(&m->shards_serving, as->serving_count, __ATOMIC_RELAXED);
}

/* Takes ownership of map. `stored`: it was read from the state store (the
 * authority), not received from the wire (a hint, forgeable). */
bool member_assign_adopt(aether_member *m, aether_shardmap *map, bool stored)
{
    member_assign_state *as = m->as;
    if (map->shard_count != m->cfg.shard_count || map->replication != m->cfg.replication) {
        /* A map we cannot serve (admission let us in under other terms, or
         * the cluster was re-created): never installed. If the store holds
         * it and it is newer than ours, the cluster has moved on without
         * us: serve nothing (the one we hold is stale), say so in
         * aether_node_incompatible, and neither campaign nor lead. One from
         * the wire only says so if the store agrees (a lagging node reads
         * the store at the next LeaseRenewed): a forged publication must
         * not silence every node. An older one is a late copy. */
        bool newer = as->cur == NULL || map->version > as->cur->version;
        if (newer && !stored) {
            uint64_t suppressed = 0;
            if (aether_log_ratelimit_allow(&as->incompat_log, member_now_ns(m), &suppressed))
                AETHER_WARN(MEMBER_LOG,
                            "%s: map v%llu received with %u shards and replication %u, this node "
                            "is configured for %u shards and replication %u: not installed (the "
                            "stored map decides) [%llu more suppressed]",
                            m->cfg.node.str, (unsigned long long)map->version, map->shard_count,
                            map->replication, m->cfg.shard_count, m->cfg.replication,
                            (unsigned long long)suppressed);
        } else if (newer) {
            bool was = __atomic_exchange_n(&m->map_incompatible, 1, __ATOMIC_SEQ_CST) != 0;
            uint64_t suppressed = 0;
            bool allow = aether_log_ratelimit_allow(&as->incompat_log, member_now_ns(m), &suppressed);
            if (!was || allow) /* at once when it starts, then once per window */
                AETHER_ERROR(MEMBER_LOG,
                             "%s: map v%llu has %u shards and replication %u, this node is "
                             "configured for %u shards and replication %u: it cannot serve this "
                             "cluster and serves "
                             "nothing [%llu more suppressed]",
                             m->cfg.node.str, (unsigned long long)map->version, map->shard_count,
                             map->replication, m->cfg.shard_count, m->cfg.replication,
                             (unsigned long long)suppressed);
            reconcile(m);
        }
        aether_shardmap_destroy(map);
        return false;
    }
    uint64_t version = map->version;
    aether_term term = map->term;
    if (aether_shardmap_slot_publish(&m->slot, &map) != AETHER_OK) {
        aether_shardmap_destroy(map); /* not newer */
        return false;
    }
    as->cur = aether_shardmap_slot_current(&m->slot); /* alive until our next publish */
    AETHER_ASSERT(as->cur != NULL && as->cur->version == version); /* we are its only writer */
    as->cur_moving = 0;
    for (uint32_t s = 0; s < as->cur->shard_count; s++) /* bounded: shard_count */
        as->cur_moving += as->cur->shards[s].state == AETHER_SHARD_MOVING;
    as->old_gen_map = false; /* a map of the generation we follow */
    if (__atomic_exchange_n(&m->map_incompatible, 0, __ATOMIC_SEQ_CST))
        AETHER_WARN(MEMBER_LOG, "%s: map v%llu is one this node can serve again", m->cfg.node.str,
                    (unsigned long long)version);
    __atomic_store_n(&m->map_term, term, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->map_version, version, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->map_generation, __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST),
                     __ATOMIC_SEQ_CST);
    if (m->cb.on_map_installed != NULL)
        m->cb.on_map_installed(m->cb.arg, version, term);
    reconcile(m);
    return true;
}

static void fence(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->fenced)
        return;
    as->fenced = true;
    __atomic_store_n(&m->fenced, 1, __ATOMIC_RELAXED);
    AETHER_WARN(MEMBER_LOG, "%s: no keep-alive acknowledged for %u ms: fenced, serving nothing",
                m->cfg.node.str, m->cfg.failure_timeout_ms - m->cfg.fence_margin_ms);
    reconcile(m);
}

/* The right holds again: take back what the map gives us. */
static void unfence(aether_member *m)
{
    member_assign_state *as = m->as;
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return; /* fenced for good (superseded() below) */
    if (as->fenced) {
        as->fenced = false;
        __atomic_store_n(&m->fenced, 0, __ATOMIC_RELAXED);
        reconcile(m);
        return;
    }
    /* Not fenced, but acquisitions may have been refused while the right or
     * the map's currency was lacking: catch up if a stable primary shard of
     * ours is not served (O(our shards)). */
    const aether_shardmap *map = as->cur;
    aether_node_index me = map != NULL ? aether_shardmap_find_node(map, &m->cfg.node)
                                       : AETHER_NODE_INDEX_NONE;
    if (me == AETHER_NODE_INDEX_NONE)
        return;
    size_t n = 0;
    const uint32_t *mine = aether_shardmap_node_primary_shards(map, me, &n);
    for (size_t k = 0; k < n; k++) {
        if (aether_shardmap_entry(map, mine[k])->state == AETHER_SHARD_STABLE && !as->serving[mine[k]]) {
            reconcile(m);
            return;
        }
    }
}

/* ---- leader side ----------------------------------------------------------- */

bool member_assign_is_healthy(const member_assign_state *as, const aether_node_id *id)
{
    const aether_node_info *n = aether_topology_find(&as->topo, id);
    return n != NULL && aether_node_status_is_healthy(n->status);
}

bool member_assign_is_active(const member_assign_state *as, const aether_node_id *id)
{
    const aether_node_info *n = aether_topology_find(&as->topo, id);
    return n != NULL && n->status == AETHER_NODE_ACTIVE;
}

void member_assign_emit(aether_member *m, aether_event *e)
{
    if (e != NULL)
        (void)member_emit(m, e, AETHER_TERM_NONE);
}

/* Owners of shard s of map as ids; returns the count. */
uint32_t member_assign_owner_ids(const aether_shardmap *map, uint32_t s, aether_node_id *ids)
{
    const aether_shard_entry *e = aether_shardmap_entry(map, s);
    const aether_node_index *o = aether_shardmap_owners(map, s);
    for (uint32_t j = 0; j < e->owner_count; j++)
        ids[j] = map->nodes[o[j]];
    return e->owner_count;
}

bool member_assign_same_ids(const aether_node_id *a, uint32_t na, const aether_node_id *b,
                            uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t j = 0; j < na; j++)
        if (!aether_node_id_equal(&a[j], &b[j]))
            return false;
    return true;
}

/* Stores the published map again (rewrite_lost_map, check_foreign_map:
 * nothing new is published, member_internal.h), as a request to the store
 * actor; its completion is write_back_done. False if not sent now (a map
 * write in flight, no memory, the store actor's mailbox refused it): the
 * caller's next tick tries again. */
static bool send_write_back(aether_member *m, uint64_t tag, uint64_t arg)
{
    member_assign_state *as = m->as;
    if (as->map_write_inflight || as->cur == NULL)
        return false;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_PUT, m->assign);
    if (r == NULL)
        return false;
    snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_MAP);
    r->tag = tag;
    r->arg = arg;
    r->gen = as->gen_changes_seen;
    /* Stamped with the generation we act in (member_state.c, "Generations");
     * encoded here: as->cur is not ours to lend to another thread (the
     * slot frees it after our next publication). */
    r->state_gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    r->state_term = as->cur->term;
    r->state_version = as->cur->version;
    r->state_rev = as->state_rev;
    if (aether_shardmap_codec_encode(as->cur, r->state_gen, &r->value, &r->len, NULL) != AETHER_OK ||
        member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        return false;
    }
    as->map_write_inflight = true;
    return true;
}

/* A read of the stored map (a lagging node catching up, or a new leader
 * taking over, policy 10), done by the store actor: st, json (ours to
 * free), len, rev and hash are what it returned. Installs the stored map
 * if newer than ours. AETHER_OK if the store answered (nothing stored, or
 * nothing newer, counts), else its error. *stored_version: the stored
 * map's version (0: none stored). *absent: the store holds no map (of our
 * generation). pub (may be NULL): a publication; if its bytes are the
 * stored bytes, its already decoded map is taken (pub->map becomes NULL)
 * instead of decoding them again: the transport decoded it from exactly
 * those bytes. */
static aether_status stored_map_read(aether_member *m, aether_status st, char *json, size_t len,
                                     uint64_t rev, uint64_t hash, member_map_hint *pub,
                                     uint64_t *stored_version, bool *absent)
{
    member_assign_state *as = m->as;
    *stored_version = 0;
    *absent = st == AETHER_ENOTFOUND;
    uint64_t t0 = member_now_ns(m);
    if (st != AETHER_OK) {
        free(json);
        return st == AETHER_ENOTFOUND ? AETHER_OK : st;
    }
    if (as->cur != NULL && rev != 0 && rev == as->state_rev && hash == as->state_hash) {
        free(json); /* the very value we installed (or wrote) last: nothing to decode */
        *stored_version = as->state_version;
        return AETHER_OK;
    }
    aether_shardmap *stored = NULL;
    aether_err err = { .code = AETHER_OK, .msg = "" };
    aether_status dst;
    bool same = pub != NULL && pub->map != NULL && pub->json != NULL && pub->len == len &&
                memcmp(pub->json, json, len) == 0;
    uint64_t gen = 0;
    if (same) {
        stored = pub->map; /* the published bytes are the stored ones */
        pub->map = NULL;
        uint64_t v_, t_;
        (void)aether_shardmap_codec_peek(json, len, &v_, &t_, &gen); /* the transport decoded these bytes */
        dst = AETHER_OK;
    } else {
        dst = aether_shardmap_codec_decode(json, len, &stored, &gen, &err);
    }
    aether_status gst = dst == AETHER_OK
                            ? member_state_generation_check(m, MEMBER_STATE_MAP, gen, stored->version)
                            : AETHER_OK;
    if (gst != AETHER_OK) {
        /* Of another generation than ours (member_state.c, "Generations"):
         * no map of ours is stored. Never installed, never a version to
         * compare with; read (and refused) again at each hint or tick
         * until the leader writes its own back (within lease_ttl_ms: its
         * foreign check, check_foreign_map). Or we follow
         * none yet: as if the store had not answered. */
        aether_shardmap_destroy(stored);
        free(json);
        *absent = gst == AETHER_ESTALE;
        return gst == AETHER_ESTALE ? AETHER_OK : gst;
    }
    uint64_t took = member_now_ns(m) - t0;
    __atomic_add_fetch(&m->map_reads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->map_read_ns, took, __ATOMIC_RELAXED);
    member_observe_ns(m->h_map_read, took);
    if (dst == AETHER_OK)
        *stored_version = as->state_version = stored->version;
    if (dst == AETHER_OK)
        as->state_hash = hash;
    if (dst != AETHER_OK) {
        AETHER_WARN(MEMBER_LOG, "%s: stored map unreadable: %s", m->cfg.node.str, err.msg);
    } else if (!as->old_gen_map && stored->term < __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED) &&
               as->cur != NULL && stored->version <= as->cur->version) {
        as->state_rev = rev; /* seen: not read again until it changes */
        aether_shardmap_destroy(stored);
    } else if (as->cur == NULL || as->old_gen_map || stored->version > as->cur->version) {
        AETHER_DEBUG(MEMBER_LOG, "%s: stored map v%llu (%zu bytes) installed (decoded in %llu us, %s)",
                     m->cfg.node.str, (unsigned long long)stored->version, len,
                     (unsigned long long)(took / 1000u),
                     same ? "the published bytes: not decoded again" : "decoded");
        as->state_rev = rev;
        /* The leader of its term wrote it, by compare-and-set: its term is
         * confirmed (a publication's term is not: sink_map). */
        member_note_term(m, stored->term);
        (void)member_assign_adopt(m, stored, true);
    } else {
        as->state_rev = rev;
        aether_shardmap_destroy(stored);
    }
    free(json);
    return AETHER_OK;
}

static void hint_free(void *p) { member_map_hint_free(p); }

/* Asks the store actor for the stored map, for `wants` (MEMBER_ASSIGN_READ_*
 * bits; map_read_done acts on them). One read at a time: what is asked for
 * while one is out rides on the next, sent when it is done (a read that
 * began before the ask might miss what it asks about). */
static void request_map_read(aether_member *m, uint32_t wants)
{
    member_assign_state *as = m->as;
    as->map_read_wants |= wants;
    if (as->map_read_inflight || as->map_read_wants == 0)
        return;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_GET, m->assign);
    if (r == NULL)
        return; /* the wants stay: the next ask or tick sends them */
    snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_MAP);
    r->tag = MEMBER_ASSIGN_STORE_MAP_READ;
    r->arg = as->map_read_wants;
    r->ctx = as->read_hint;
    r->ctx_free = hint_free;
    r->event = as->read_announce;
    r->state_term = as->takeover_read_term;
    if (member_store_request(m, r) != AETHER_OK) {
        r->ctx = NULL; /* still ours: the next ask sends them */
        r->event = NULL;
        member_store_req_free(r);
        return;
    }
    as->read_hint = NULL;
    as->read_announce = NULL;
    as->map_read_wants = 0;
    as->map_read_inflight = true;
}

/* The cluster actor's latest topology (its RCU snapshot): the assign actor
 * never keeps a view of its own that could lag behind the aggregate. */
void member_assign_refresh_topology(aether_member *m)
{
    member_assign_state *as = m->as;
    aether_rcu_read_lock();
    const aether_topology_snapshot *ts =
        (const aether_topology_snapshot *)aether_snapshot_current(&m->topo_slot);
    if (ts != NULL && ts->publication != as->topo_publication) {
        aether_topology t;
        if (aether_topology_copy(&ts->topo, &t) == AETHER_OK) {
            aether_topology_fini(&as->topo);
            as->topo = t;
            as->topo_publication = ts->publication;
        }
    }
    aether_rcu_read_unlock();
}

/* A follower behind: asks the store actor for the stored topology
 * (topology_read_done installs it if newer than ours). One read at a time. */
static void request_topology_read(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->topo_read_inflight)
        return;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_GET, m->assign);
    if (r == NULL)
        return;
    snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_TOPOLOGY);
    r->tag = MEMBER_ASSIGN_STORE_TOPO_READ;
    if (member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        return;
    }
    as->topo_read_inflight = true;
}

static void topology_read_done(aether_member *m, member_store_req *r)
{
    member_assign_state *as = m->as;
    as->topo_read_inflight = false;
    aether_topology t;
    if (r->st != AETHER_OK ||
        member_state_topology_decode(m, r->value, r->len, as->topo.version, &t) != AETHER_OK)
        return;
    aether_topology_fini(&as->topo);
    as->topo = t;
    reconcile(m); /* if we learnt we are down: release, and remember it */
}

/* Failures and leaves within the window, after the operator's last
 * release of the brake (those before it are forgiven). */
static uint32_t offline_recent(member_assign_state *as, uint64_t now, uint64_t window_ns)
{
    uint32_t n = 0, count = as->offline_n < OFFLINE_RING ? as->offline_n : OFFLINE_RING;
    for (uint32_t i = 0; i < count; i++)
        n += now - as->offline_ns[i] <= window_ns && as->offline_ns[i] > as->brake_released_ns;
    return n;
}

/* How many losses within the window the brake tolerates: brake_max_offline,
 * or (0) a third of the live nodes - Active + Draining, never the Left and
 * Failed ids the topology still remembers - counted as they were when the
 * window opened: the live ones now plus the `recent` that went offline
 * within it. So 3 of 5 live nodes lost in a burst engage the brake however
 * many departed ids the topology holds. */
static uint32_t brake_tolerance(const aether_member *m, const member_assign_state *as, uint32_t recent)
{
    if (m->cfg.brake_max_offline != 0)
        return m->cfg.brake_max_offline;
    return (aether_topology_count_live(&as->topo) + recent) / 3;
}

/* The target gives shards only to nodes healthy in as->topo. */
static bool target_healthy(const member_assign_state *as)
{
    const aether_shardmap *t = as->target;
    for (uint32_t i = 0; i < t->node_count; i++) { /* bounded: the target's node table */
        if (member_assign_is_healthy(as, &t->nodes[i]))
            continue;
        size_t owned = 0;
        (void)aether_shardmap_node_owner_shards(t, (aether_node_index)i, &owned);
        if (owned > 0)
            return false;
    }
    return true;
}

static bool compute_target(aether_member *m);

/* The leader's map commit point (member_internal.h, "The leader's two
 * commit points"): in this handler run the snapshot is read and the map
 * derived and checked against it and sent to the store actor; its
 * completion checks it again and publishes it. A departure is announced
 * only after this actor has passed the barrier sent after its snapshot,
 * which it does only with no map write in flight, so never while a commit
 * that could name the node is under way. A change committed just before (a node failed while we were
 * busy) is in the snapshot we read; if the target still gives that node
 * shards, it is computed again first, so the map follows the topology
 * rather than being refused. `recompute`: compute the target in any case
 * (a rebalance). */
static void advance(aether_member *m, const char *reason, bool recompute)
{
    member_assign_state *as = m->as;
    member_assign_refresh_topology(m);
    /* Our own id's record is not healthy (Failed/Left) while this process,
     * not superseded, leads: the record is an earlier process's (an older
     * leader's write that landed unannounced) and our own admission is
     * still in flight at the store actor (member_admit.c, lead_command).
     * A step now would fail over our id's shards with no NodeFailed, and
     * the next rebalance would move them back (chaos seed 42). Identity is
     * the node id: a re-admitted process keeps what the map names for it
     * (self_admitted). So no step until the record is ours: our NodeJoined
     * forces a publication and rebalances, and tick_check retries
     * publish_pending. Liveness: our keep-alives go through that admission;
     * if it never lands, they are not acknowledged and the lease actor
     * resigns (cut_off), if it is refused as incompatible it resigns too
     * (member_incompatible), and a NodeFailed/NodeLeft of our own node
     * makes it resign (policy 9): we never lead for long without it. */
    const aether_node_info *self = aether_topology_find(&as->topo, &m->cfg.node);
    if (self != NULL && !aether_node_status_is_healthy(self->status) &&
        !__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST)) {
        as->publish_pending = true;
        return;
    }
    if ((!recompute && (as->target == NULL || target_healthy(as))) || compute_target(m))
        member_map_step_commit(m, reason);
}

static void rebalance(aether_member *m, const char *reason)
{
    member_assign_state *as = m->as;
    if (!member_may_lead(m, NULL)) {
        /* Not now (not leading, or the lease in doubt for a moment): if we
         * do lead again in this term, tick_check runs it then. */
        as->publish_pending = true;
        return;
    }
    advance(m, reason, true);
}

/* A new target from as->topo (refreshed by the caller) and the current
 * map. False if the strategy failed (logged; the previous target stays). */
static bool compute_target(aether_member *m)
{
    member_assign_state *as = m->as;
    uint64_t now = member_now_ns(m);
    uint32_t nodes = as->topo.count;
    uint32_t recent = offline_recent(as, now, (uint64_t)m->cfg.brake_window_ms * AETHER_NS_PER_MS);
    uint32_t max_offline = brake_tolerance(m, as, recent);
    bool brake = max_offline > 0 && recent > max_offline;
    if (brake != as->brake)
        AETHER_WARN(MEMBER_LOG, "%s: rebalance brake %s", m->cfg.node.str, brake ? "engaged" : "released");
    as->brake = brake;
    __atomic_store_n(&m->brake_engaged, brake ? 1u : 0u, __ATOMIC_RELAXED);
    aether_strategy_node *sn = calloc(nodes ? nodes : 1, sizeof(*sn));
    if (sn == NULL)
        return false;
    for (uint32_t i = 0; i < nodes; i++)
        aether_strategy_node_from_info(&sn[i], &as->topo.nodes[i]);
    aether_strategy_config sc = { .shard_count = m->cfg.shard_count,
                                  .replication = m->cfg.replication,
                                  .max_moves = 0,
                                  .brake_engaged = brake };
    aether_shardmap *target = NULL;
    aether_rebalance_plan *plan = NULL;
    aether_err err;
    aether_status st = aether_strategy_default()->compute(as->cur, sn, nodes, &sc, as->lead_term,
                                                          &target, &plan, &err);
    free(sn);
    aether_rebalance_plan_destroy(plan);
    if (st != AETHER_OK) {
        AETHER_ERROR(MEMBER_LOG, "%s: strategy: %s", m->cfg.node.str, err.msg);
        return false;
    }
    aether_shardmap_destroy(as->target);
    as->target = target;
    return true;
}

/* Take-over from nothing (a leader that finds no map in the state store,
 * the bucket lost): it does not know who serves what. The map it holds may
 * be older than the one a node serves - it may hold none - and its topology
 * may lack nodes that still serve, so a shard it gives may still be served
 * by its old owner, under a right an earlier leader's acknowledgement gave
 * (member_cluster.c, DESIGN steps 1-4). So:
 *  1. it sets m->mapless_term: from then on it acknowledges no other
 *     node's keep-alive until its first map is out (member_cluster.c,
 *     ack_withheld) - an acknowledgement naming the map it has would extend
 *     a right to serve under an older one. Keep-alives still count
 *     (admission, heartbeats): the first map places the nodes it hears;
 *  2. then it reads its clock (t) and publishes no map before t +
 *     failure_timeout. Every acknowledgement that extended a right under an
 *     earlier map was for a keep-alive sent before its receiver decided it:
 *     an earlier leader's, before that leader's lease ended, before ours
 *     began; ours, before the cluster actor read mapless_term unset, before
 *     step 1 (seq_cst), before t. Such a right ends at that send time +
 *     failure_timeout - fence_margin (the margin covers the drift of the
 *     two clocks), before t + failure_timeout: by then nobody serves under
 *     an earlier map, whatever our map gives. (Acknowledgements never name
 *     a version that does not exist: a node's "announced" version only
 *     grows, and one this leader never published would keep it from
 *     serving under the maps of a later leader that found a stored map.)
 * Rights under our own maps, and handoffs, work as usual from there. A
 * store loss costs the cluster its service for about failure_timeout, and
 * moves the shards this node's map and topology place otherwise than the
 * lost map did (none when it held the current ones); a new cluster (term
 * 1, no map held) does not wait. */
static void wait_first_map(aether_member *m)
{
    member_assign_state *as = m->as;
    __atomic_store_n(&m->mapless_term, as->lead_term, __ATOMIC_SEQ_CST);
    uint64_t wait = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
    as->first_map_after_ns = member_now_ns(m) + wait; /* read after the store: step 2 */
    /* The timer runs on the executor's clock, ours may be slower by up to
     * the drift the fence margin covers: a check that comes early retries
     * at the next tick. */
    aether_msg t = { .type = MSG_TICK_CHECK };
    (void)aether_timer_start(m->assign, wait + (uint64_t)m->cfg.fence_margin_ms * AETHER_NS_PER_MS, 0,
                             &t, NULL);
}

/* Policy 10: read the stored topology and map before anything else in this
 * term; a change the previous leader recorded may have escaped us. Until
 * both reads succeed the leader publishes nothing (tick_check retries).
 * The map read is a request to the store actor: takeover_loaded carries on
 * when it is done. True once done. */
static bool takeover_load(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->lead_term == AETHER_TERM_NONE)
        return false;
    if (as->loaded_term == as->lead_term)
        return true;
    /* The topology is the cluster actor's: it read the stored one for this
     * term and published it before saying so. */
    if (__atomic_load_n(&m->topo_loaded_term, __ATOMIC_ACQUIRE) != as->lead_term)
        return false;
    as->takeover_read_term = as->lead_term; /* a read sent from here on is of this term */
    request_map_read(m, MEMBER_ASSIGN_READ_TAKEOVER);
    return false;
}

/* takeover_load's map read is done (st: AETHER_OK if the store answered;
 * absent: it holds no map of ours), for a read sent while leading `term`. */
static void takeover_loaded(aether_member *m, aether_term term, aether_status st, bool absent)
{
    member_assign_state *as = m->as;
    if (st != AETHER_OK || as->lead_term == AETHER_TERM_NONE || as->lead_term != term ||
        as->loaded_term == as->lead_term ||
        __atomic_load_n(&m->topo_loaded_term, __ATOMIC_ACQUIRE) != as->lead_term)
        return; /* tick_check asks again */
    member_assign_refresh_topology(m);
    if (__atomic_load_n(&m->map_incompatible, __ATOMIC_SEQ_CST))
        return; /* the stored map is not ours to serve: publish nothing; the lease
                   actor resigns at its next renewal */
    as->version_floor = 0;
    if (absent && (as->cur != NULL || as->lead_term > 1)) {
        /* No stored map, and not a new cluster (term 1, nothing held): the
         * state bucket was lost. Maps of earlier terms this node never saw
         * may exist with any small version, and a node holding one would
         * ignore ours as older: number ours from lead_term << 20. Every
         * earlier term is below lead_term, and a term publishes far fewer
         * than 2^20 maps per lease revision (the revision moves with every
         * renewal), so every version published before is below it too.
         * And whatever this node holds may be older than what the others
         * serve: take over from nothing (wait_first_map). */
        as->version_floor = member_map_version_floor(as->lead_term);
        if (as->cur != NULL && as->cur->version >= as->version_floor)
            as->version_floor = 0;
        wait_first_map(m);
        AETHER_WARN(MEMBER_LOG, "%s: the state store holds no map (state bucket lost?): taking over "
                    "from the map this node holds (v%llu), numbering from v%llu, publishing in %u ms "
                    "(every earlier serving right lapsed)", m->cfg.node.str,
                    (unsigned long long)(as->cur != NULL ? as->cur->version : 0),
                    (unsigned long long)as->version_floor + 1, m->cfg.failure_timeout_ms);
    }
    as->loaded_term = as->lead_term;
    uint64_t now = member_now_ns(m);
    if (as->cur != NULL)
        for (uint32_t s = 0; s < m->cfg.shard_count; s++)
            if (aether_shardmap_entry(as->cur, s)->state == AETHER_SHARD_MOVING) {
                as->moving_since_ns[s] = now; /* in-flight handoffs: their clocks restart */
                as->move_version[s] = as->cur->version + 1; /* acks must answer our maps */
            }
    if (aether_topology_count_status(&as->topo, AETHER_NODE_ACTIVE) > 0)
        rebalance(m, "takeover");
}

static void takeover(aether_member *m, aether_term term)
{
    member_assign_state *as = m->as;
    as->lead_term = term;
    as->publish_pending = false; /* the take-over rebalances anyway */
    as->loaded_term = AETHER_TERM_NONE;
    as->first_map_after_ns = 0;
    as->session_active = false;
    as->force_publish = true; /* every node needs a map of our term before it may serve */
    memset(as->moving_since_ns, 0, m->cfg.shard_count * sizeof(uint64_t));
    memset(as->done, 0, m->cfg.shard_count);
    as->n_done = 0;
    (void)takeover_load(m);
}

/* The operator's release of the brake (RebalanceShards release_brake):
 * the losses seen so far are forgiven (only later ones count towards the
 * brake again), the brake drops and a full rebalance runs at once, as a
 * session of its own opened by RebalanceStarted `brake released by
 * operator`. Who asked is logged and counted. A brake that cleared between
 * the request and now is released all the same (nothing to forgive). */
static void release_brake(aether_member *m, const char *who)
{
    member_assign_state *as = m->as;
    aether_term term;
    if (!member_may_lead(m, &term) || as->lead_term != term || as->loaded_term != term) {
        AETHER_WARN(MEMBER_LOG, "%s: brake release asked by %s: not leading now; ask again",
                    m->cfg.node.str, who);
        return;
    }
    uint64_t now = member_now_ns(m);
    as->brake_released_ns = now;
    __atomic_add_fetch(&m->brake_releases, 1, __ATOMIC_RELAXED);
    AETHER_WARN(MEMBER_LOG, "%s: rebalance brake released by operator %s (was %s)", m->cfg.node.str, who,
                as->brake ? "engaged" : "already clear");
    member_assign_refresh_topology(m); /* the map commit below checks against it (member_internal.h, step 2) */
    if (compute_target(m)) { /* brake off now: nothing recent counts */
        aether_event *e = aether_event_create(AETHER_EVT_REBALANCE_STARTED);
        if (e != NULL) {
            uint32_t planned = 0;
            aether_node_id c_ids[AETHER_REPLICATION_MAX], t_ids[AETHER_REPLICATION_MAX];
            for (uint32_t s = 0; as->cur != NULL && s < m->cfg.shard_count; s++) {
                uint32_t nc = member_assign_owner_ids(as->cur, s, c_ids);
                uint32_t nt = member_assign_owner_ids(as->target, s, t_ids);
                planned += !member_assign_same_ids(c_ids, nc, t_ids, nt);
            }
            aether_event_set_reason(e->data.rebalance_started.reason, "brake released by operator");
            e->data.rebalance_started.from_version = as->cur != NULL ? as->cur->version : 0;
            e->data.rebalance_started.moves_planned = planned;
            member_assign_emit(m, e);
        }
        /* The session is this one from here; a map is published even if
         * nothing moves, so that it closes (RebalanceCompleted). */
        as->session_active = true;
        as->session_start_ns = now;
        as->session_moved = 0;
        as->force_publish = true;
        member_map_step_commit(m, "brake released by operator");
    }
}

static void arm_debounce(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->debounce_armed)
        return; /* policy 8: the burst rides on the timer already running */
    as->debounce_armed = true;
    as->debounce_gen++;
    aether_msg t = { .type = MSG_TICK_DEBOUNCE, .arg64 = as->debounce_gen };
    (void)aether_timer_start(m->assign, (uint64_t)m->cfg.rebalance_debounce_ms * AETHER_NS_PER_MS, 0,
                             &t, NULL);
}

/* Leader, with the map of its own term loaded (takeover_load): a Draining
 * node that owns nothing in it has drained. Judged on any other map - one
 * from before a pause, say, in which the node had not yet been given what
 * it serves now - it would be declared Left while serving. */
static void notify_drained(aether_member *m)
{
    member_assign_state *as = m->as;
    aether_term term;
    if (as->cur == NULL || !member_may_lead(m, &term) || as->lead_term != term || as->loaded_term != term)
        return;
    for (uint32_t i = 0; i < as->topo.count; i++) {
        const aether_node_info *n = &as->topo.nodes[i];
        if (n->status != AETHER_NODE_DRAINING)
            continue;
        aether_node_index idx = aether_shardmap_find_node(as->cur, &n->id);
        size_t owned = 0;
        if (idx != AETHER_NODE_INDEX_NONE)
            (void)aether_shardmap_node_owner_shards(as->cur, idx, &owned);
        if (owned > 0)
            continue;
        aether_node_id *id = malloc(sizeof(*id));
        if (id != NULL) {
            *id = n->id;
            member_send_owned(m, m->cluster, MSG_DRAINED, id);
        }
    }
}

/* A LeaseRenewed names a map newer than ours: catch up from the store,
 * and count the announcement against us (aether_member_may_serve: a node
 * whose map is older than the leader's serves nothing) only if the store
 * backs it. The leader stores a map before it publishes it, and announces
 * only published maps, so a genuine announcement is never above the stored
 * version; one that is names the present term in vain, and believed, it
 * would keep this node from serving until a map that high existed. A store
 * that does not answer cannot tell: the announcement counts (the safe
 * side). */
static void announced(aether_member *m, const aether_event *e)
{
    member_assign_state *as = m->as;
    /* One judged per read: the highest announcement since the last one
     * (counting it counts every lower one the store backs as well). */
    if (as->read_announce == NULL ||
        e->data.lease_renewed.map_version >= as->read_announce->data.lease_renewed.map_version) {
        aether_event_release(as->read_announce);
        as->read_announce = aether_event_retain((aether_event *)e);
    }
    request_map_read(m, MEMBER_ASSIGN_READ_ANNOUNCE);
}

/* The read for announced is done: judge e against it. */
static void announced_judged(aether_member *m, const aether_event *e, aether_status st,
                             uint64_t stored, bool absent)
{
    uint64_t v = e->data.lease_renewed.map_version;
    /* No map stored (the state bucket was lost and not written back yet)
     * cannot refute the announcement: counted, the safe side (a node
     * behind it serves nothing until it has the map). */
    if (st == AETHER_OK && !absent && stored < v) {
        __atomic_add_fetch(&m->events_refuted, 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->as->refute_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: LeaseRenewed from %s (term %llu seq %llu) announces map v%llu, "
                        "the state store has v%llu: not believed (%llu more not logged)",
                        m->cfg.node.str, e->node.str, (unsigned long long)e->term,
                        (unsigned long long)e->seq, (unsigned long long)v, (unsigned long long)stored,
                        (unsigned long long)suppressed);
        return;
    }
    if (st != AETHER_OK && v > m->as->announce_doubt)
        m->as->announce_doubt = v; /* counted on trust: withdrawn if the store refutes it */
    uint64_t cur = __atomic_load_n(&m->announced_version, __ATOMIC_SEQ_CST);
    while (v > cur && !__atomic_compare_exchange_n(&m->announced_version, &cur, v, false,
                                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

/* An announcement counted while the store could not tell (announced) stays
 * counted only until the store answers: one it refutes is withdrawn, or a
 * forged LeaseRenewed naming v2^63-1 during a store outage would keep this
 * node from serving for good (aether-sim --extra-faults adversary, seed
 * 300040). Only the doubtful value itself is lowered, to the stored
 * version (a genuine announcement is never above it); any other value was
 * raised since by someone the store or the leader backs. */
static void recheck_announcement(aether_member *m)
{
    if (m->as->announce_doubt != 0)
        request_map_read(m, MEMBER_ASSIGN_READ_RECHECK);
}

/* The read for recheck_announcement is done. */
static void recheck_judged(aether_member *m, aether_status st, uint64_t stored, bool absent)
{
    member_assign_state *as = m->as;
    if (as->announce_doubt == 0 || st != AETHER_OK || absent)
        return; /* still cannot tell */
    uint64_t doubt = as->announce_doubt;
    as->announce_doubt = 0;
    if (stored >= doubt)
        return; /* backed after all */
    uint64_t expected = doubt;
    if (__atomic_compare_exchange_n(&m->announced_version, &expected, stored, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&m->events_refuted, 1, __ATOMIC_RELAXED);
        AETHER_WARN(MEMBER_LOG, "%s: an announced map v%llu, counted while the state store could not "
                    "tell, is refuted by it (v%llu): withdrawn", m->cfg.node.str,
                    (unsigned long long)doubt, (unsigned long long)stored);
    }
}

/* Our own NodeJoined, of this process's incarnation: this run is admitted
 * (again). */
static void self_admitted(aether_member *m, const aether_event *e)
{
    member_assign_state *as = m->as;
    /* Back from Failed/Left: first release what we held from before
     * (self_down is still set), then count as up again. The maps we
     * hold were made while we were out, so only a later map may give
     * us shards. */
    if (!as->admitted_once) {
        /* This process's first admission. If the map names our id, an
         * earlier process of it may still serve its shards: one the
         * leader acknowledged just before admitting us keeps its right
         * for failure_timeout - fence_margin after that keep-alive
         * (member_cluster.c: none is acknowledged after our admission).
         * Waiting failure_timeout from here outlasts it. */
        as->admitted_once = true;
        if (as->cur == NULL) {
            /* No map yet: the stored one says. Until its read is done
             * (admit_checked), wait as if it named us: a map installed
             * meanwhile must not give us shards before the wait. */
            as->serve_after_ns =
                member_now_ns(m) + (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
            request_map_read(m, MEMBER_ASSIGN_READ_ADMIT);
        } else if (aether_shardmap_find_node(as->cur, &m->cfg.node) != AETHER_NODE_INDEX_NONE) {
            as->serve_after_ns =
                member_now_ns(m) + (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
            AETHER_INFO(MEMBER_LOG, "%s: admitted; the map names this id already: serving "
                        "from %u ms on (an earlier process of it may still hold its shards)",
                        m->cfg.node.str, m->cfg.failure_timeout_ms);
        }
    }
    reconcile(m);
    if (as->went_down) /* maps up to the leader's at our admission predate it */
        as->acquire_floor = e->data.node_joined.map_version;
    as->went_down = false;
    as->admitted = true;
    __atomic_store_n(&m->self_down, 0, __ATOMIC_SEQ_CST);
    reconcile(m);
}

/* self_admitted's read is done: the wait it set stands only if the map
 * (the stored one, or one installed meanwhile) names this id. */
static void admit_checked(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->cur != NULL && aether_shardmap_find_node(as->cur, &m->cfg.node) != AETHER_NODE_INDEX_NONE) {
        AETHER_INFO(MEMBER_LOG, "%s: admitted; the map names this id already: serving from %u ms "
                    "after admission on (an earlier process of it may still hold its shards)",
                    m->cfg.node.str, m->cfg.failure_timeout_ms);
        return;
    }
    as->serve_after_ns = 0;
    reconcile(m);
}

static void on_event(aether_member *m, const aether_event *e)
{
    member_assign_state *as = m->as;
    switch (e->type) {
    case AETHER_EVT_LEADER_ELECTED:
        if (aether_policy_says(e->type, member_may_lead(m, NULL),
                               aether_node_id_equal(&e->data.leader_elected.leader, &m->cfg.node),
                               AETHER_REACT_TAKE_OVER))
            takeover(m, e->data.leader_elected.term);
        else
            as->lead_term = AETHER_TERM_NONE;
        return;
    case AETHER_EVT_LEADERSHIP_LOST:
        if (aether_node_id_equal(&e->data.leadership_lost.leader, &m->cfg.node))
            as->lead_term = AETHER_TERM_NONE;
        return;
    case AETHER_EVT_LEASE_RENEWED:
        if (!member_may_lead(m, NULL) && e->data.lease_renewed.topology_version > as->topo.version)
            request_topology_read(m); /* a follower behind: are we still in? */
        recheck_announcement(m);
        if (as->cur == NULL || as->old_gen_map ||
            e->data.lease_renewed.map_version > as->cur->version)
            announced(m, e); /* we missed a publication, or it is not the leader's */
        if (as->cur != NULL && e->data.lease_renewed.map_version == as->cur->version &&
            member_serving_right(m))
            unfence(m);
        return;
    case AETHER_EVT_NODE_JOINED:
        /* Every admission gets a map published after it, even if nothing
         * moves: a node coming back acquires only from maps newer than the
         * one current at its admission (acquire_floor). */
        as->force_publish = true;
        /* Our admission: the incarnation this process claims (a higher one
         * is a newer process of our id: member_cluster.c supersedes us). */
        if (aether_node_id_equal(&e->data.node_joined.node, &m->cfg.node) &&
            e->data.node_joined.incarnation == __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST) &&
            !__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
            self_admitted(m, e);
        if (aether_policy_says(e->type, member_may_lead(m, NULL), false, AETHER_REACT_REBALANCE_DEBOUNCED))
            arm_debounce(m);
        return;
    case AETHER_EVT_NODE_FAILED:
    case AETHER_EVT_NODE_LEFT:
        as->offline_ns[as->offline_n++ % OFFLINE_RING] = member_now_ns(m);
        if (aether_node_id_equal(e->type == AETHER_EVT_NODE_FAILED ? &e->data.node_failed.node
                                                                   : &e->data.node_left.node,
                                 &m->cfg.node)) {
            as->went_down = true;
            reconcile(m); /* self_down is set: release everything */
        }
        /* fall through */
    case AETHER_EVT_NODE_DRAINING:
        /* rebalance() reads the cluster actor's topology: a follower copies
         * nothing (1000 nodes each copying 1000-node topologies per event
         * add up). */
        if (aether_policy_says(e->type, member_may_lead(m, NULL), false, AETHER_REACT_REBALANCE_NOW))
            rebalance(m, aether_event_type_name(e->type));
        return;
    default:
        return;
    }
}

/* A newer process of our id was admitted (member_cluster.c): release
 * everything now and stay fenced for good. self_down is already set. */
static void superseded(aether_member *m)
{
    member_assign_state *as = m->as;
    if (!as->fenced) {
        as->fenced = true;
        __atomic_store_n(&m->fenced, 1, __ATOMIC_RELAXED);
    }
    as->lead_term = AETHER_TERM_NONE;
    reconcile(m);
}

/* The state bucket was lost and the lease actor recorded our term again
 * (member_lease.c, step 6): write the current map back, so a take-over,
 * a lagging node and aetherctl find it. The map already published, stored
 * again: nothing new is published (member_internal.h); put_inline creates the key when it is absent and never overwrites
 * a newer map. A failure is retried at the next tick. */
static void rewrite_lost_map(aether_member *m)
{
    member_assign_state *as = m->as;
    uint64_t lost = __atomic_load_n(&m->state_lost_gen, __ATOMIC_RELAXED);
    if (lost == as->state_lost_seen)
        return;
    if (as->cur == NULL || as->old_gen_map) {
        /* Nothing of this generation to write back yet. A map of an earlier
         * generation is never written into this one's bucket: a take-over
         * would start from it and every node would install it as this
         * generation's (aether-sim --soak --seed 100015 --duration 120
         * --extra-faults misfit,twin,kv-loss-both,forge: n1, leading term 44
         * of a new generation and waiting to publish its first map, wrote
         * back the old generation's map of term 51; n13 took over from it).
         * The first map of this generation is written when it is published. */
        as->state_lost_seen = lost;
        return;
    }
    (void)send_write_back(m, MEMBER_ASSIGN_STORE_WRITE_BACK, lost); /* write_back_done */
}

/* As leader, once per lease_ttl_ms: a deposed leader of a lost generation
 * may have written its map over ours by compare-and-set (an ABA,
 * member_state.c "Generations"); every reader refuses it, so a node that
 * needs the stored map (it missed a publication, or starts) would wait for
 * our next change. Write ours back at once (aether-sim --soak --seed 100155
 * --duration 20 --extra-faults kv-aba: n0, cut off while n7 took over,
 * refused the stored map for 30 s and never served). The map already
 * published, stored again (member_internal.h); a failure is retried at the next check. */
static void check_foreign_map(aether_member *m)
{
    member_assign_state *as = m->as;
    uint64_t now = member_now_ns(m);
    uint64_t every = (uint64_t)m->cfg.lease_ttl_ms * AETHER_NS_PER_MS;
    if (as->cur == NULL || as->old_gen_map || now - as->foreign_checked_ns < every)
        return;
    if (as->foreign_inflight)
        return;
    as->foreign_checked_ns = now;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_FOREIGN, m->assign);
    if (r == NULL)
        return;
    snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_MAP);
    r->tag = MEMBER_ASSIGN_STORE_FOREIGN;
    r->state_rev = as->state_rev;
    if (member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        as->foreign_checked_ns = 0; /* try again at the next tick */
        return;
    }
    as->foreign_inflight = true;
}

/* check_foreign_map's test is done: a lost generation's map over ours is
 * overwritten with ours. */
static void foreign_checked(aether_member *m, const member_store_req *r)
{
    member_assign_state *as = m->as;
    as->foreign_inflight = false;
    if (!r->foreign || !member_may_lead(m, NULL) || as->cur == NULL || as->old_gen_map)
        return;
    if (!send_write_back(m, MEMBER_ASSIGN_STORE_OVER_FOREIGN, 0))
        as->foreign_checked_ns = 0; /* try again at the next tick */
}

/* A write-back is done (rewrite_lost_map: arg = the state_lost_gen it
 * answers; check_foreign_map). */
static void write_back_done(aether_member *m, const member_store_req *r)
{
    member_assign_state *as = m->as;
    AETHER_ASSERT(as->map_write_inflight);
    as->map_write_inflight = false;
    bool same_gen = r->gen == as->gen_changes_seen;
    if (r->st == AETHER_OK && same_gen) {
        as->state_rev = r->state_rev;
        as->state_version = r->state_version;
        as->state_hash = r->hash;
    }
    if (r->tag == MEMBER_ASSIGN_STORE_WRITE_BACK) {
        if (r->st == AETHER_ESTALE) {
            as->state_lost_seen = r->arg; /* a newer map is stored already: nothing to restore */
        } else if (r->st == AETHER_OK) {
            as->state_lost_seen = r->arg;
            AETHER_INFO(MEMBER_LOG, "%s: map v%llu written back to the state store", m->cfg.node.str,
                        (unsigned long long)r->state_version);
        }
    } else if (r->st == AETHER_OK) {
        AETHER_INFO(MEMBER_LOG, "%s: map v%llu written back over a lost generation's",
                    m->cfg.node.str, (unsigned long long)r->state_version);
    } else {
        as->foreign_checked_ns = 0; /* try again at the next tick */
    }
}

/* The cluster actor found every NodeFailed/NodeLeft about this node up to
 * report number `reports` contradicted by the stored topology (it names this
 * run healthy): none was the leader's, whose changes are stored before they
 * are published. Resume, unless a report came since (count, then flag, in
 * member.c: clearing, then re-reading the count, cannot hide a newer one),
 * or this run has not been admitted yet (its own NodeJoined clears the flag,
 * with the acquire floor). Serving still needs a current map and an
 * acknowledged keep-alive (aether_member_may_serve). */
static void self_refuted(aether_member *m, uint64_t reports)
{
    member_assign_state *as = m->as;
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return; /* a newer process holds our id: down for good */
    if (!as->admitted || !__atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&m->self_down_reports, __ATOMIC_SEQ_CST) != reports)
        return;
    __atomic_store_n(&m->self_down, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&m->self_down_reports, __ATOMIC_SEQ_CST) != reports) {
        __atomic_store_n(&m->self_down, 1, __ATOMIC_SEQ_CST); /* a report raced us: keep it */
        return;
    }
    AETHER_INFO(MEMBER_LOG, "%s: the stored topology names this node healthy: serving again", m->cfg.node.str);
    reconcile(m);
}

/* Leader, on the tick: handoffs older than handoff_timeout (read from a
 * clock read after the store calls above it) are released by decree: the
 * old owner has fenced itself or let go by then. Returns how many. */
static uint32_t decree_timed_out(aether_member *m, uint64_t now)
{
    member_assign_state *as = m->as;
    uint64_t timeout = (uint64_t)m->cfg.handoff_timeout_ms * AETHER_NS_PER_MS;
    uint32_t decreed = 0;
    for (uint32_t s = 0; as->cur != NULL && s < m->cfg.shard_count; s++) {
        if (as->moving_since_ns[s] != 0 && !as->done[s] && now > as->moving_since_ns[s] &&
            now - as->moving_since_ns[s] > timeout &&
            aether_shardmap_entry(as->cur, s)->state == AETHER_SHARD_MOVING) {
            as->done[s] = 1;
            decreed++;
        }
    }
    return decreed;
}

/* Leader of `term`, on the tick: the take-over first (policy 10), then the
 * write-backs, a map that could not be recorded, timed-out handoffs, the
 * brake's window and the drains. */
static void tick_check_leader(aether_member *m, aether_term term)
{
    member_assign_state *as = m->as;
    if (as->lead_term != term)
        return; /* our LeaderElected is still in the mailbox: nothing as leader before it */
    if (as->loaded_term != term) {
        (void)takeover_load(m);
        return;
    }
    member_assign_refresh_topology(m); /* the brake and the drains below read it */
    rewrite_lost_map(m);
    check_foreign_map(m);
    if (as->publish_pending && as->loaded_term == term)
        rebalance(m, as->first_map_after_ns != 0 &&
                             __atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) != term
                         ? "takeover" /* from nothing, after its wait */
                         : "retry");
    /* Read here, not at the top of the tick: the write-back and the
     * rebalance above call the store (a slow call takes time), and a
     * handoff they started has its moving_since after a clock read taken
     * before them. With such a `now`,
     * now - moving_since wrapped around and every handoff just started
     * was decreed at once, before its old owner had even heard of it
     * (aether-sim --soak --seed 100127 --duration 120 --extra-faults
     * misfit,twin,kv-loss,forge: "n8 acquired shard 16 (map v2097199)
     * while n12 still serves it", 64 handoffs decreed the instant they
     * began). */
    uint64_t now = member_now_ns(m);
    uint32_t decreed = decree_timed_out(m, now);
    if (decreed > 0) {
        AETHER_WARN(MEMBER_LOG, "%s: %u handoffs timed out: released by decree", m->cfg.node.str, decreed);
        advance(m, "handoff timeout", false);
    }
    if (as->brake) {
        uint32_t recent = offline_recent(as, now, (uint64_t)m->cfg.brake_window_ms * AETHER_NS_PER_MS);
        if (recent <= brake_tolerance(m, as, recent))
            rebalance(m, "brake released");
    }
    notify_drained(m);
}

/* Follower: acknowledgements can be lost (a leader that died before
 * reading them): repeat them while the map still shows a shard leaving
 * us. */
static void repeat_releases(aether_member *m)
{
    member_assign_state *as = m->as;
    if (as->cur == NULL)
        return;
    aether_node_index me = aether_shardmap_find_node(as->cur, &m->cfg.node);
    size_t n = 0;
    const uint32_t *mine = me != AETHER_NODE_INDEX_NONE
                               ? aether_shardmap_node_primary_shards(as->cur, me, &n)
                               : NULL;
    for (size_t k = 0; k < n; k++)
        if (aether_shardmap_entry(as->cur, mine[k])->state == AETHER_SHARD_MOVING &&
            !as->serving[mine[k]])
            send_ack(m, mine[k], as->cur);
}

/* MSG_TICK_CHECK: fencing once the serving right has lapsed (every node),
 * then the leader's or the follower's periodic work. */
static void tick_check(aether_member *m)
{
    member_assign_state *as = m->as;
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST)) {
        superseded(m); /* never unfenced again */
        return;
    }
    if (!member_serving_right(m)) {
        if (as->serving_count > 0)
            fence(m);
    } else {
        unfence(m);
    }
    aether_term term;
    if (member_may_lead(m, &term))
        tick_check_leader(m, term);
    else
        repeat_releases(m);
}

/* The node moved to a new generation (member_internal.h, "Generations"):
 * the map we hold is the old one's, and map versions of the new one are
 * numbered on their own (a new generation's v5 is not an old v5). Serve
 * nothing from it; install the next stored map whatever its version (the
 * slot takes it: aether_shardmap_slot_new_generation); compare versions
 * and terms within the new generation from then on. A leader's take-over
 * still starts from the map it holds (takeover_load). */
static void new_generation(aether_member *m)
{
    member_assign_state *as = m->as;
    uint64_t gc = __atomic_load_n(&m->generation_changes, __ATOMIC_RELAXED);
    if (gc == as->gen_changes_seen)
        return;
    as->gen_changes_seen = gc;
    as->old_gen_map = as->cur != NULL;
    if (as->cur != NULL) /* evidence of the cluster's shape all the same (member_cluster.c) */
        __atomic_store_n(&m->old_map_term, as->cur->term != AETHER_TERM_NONE ? as->cur->term : 1u,
                         __ATOMIC_SEQ_CST);
    as->acquire_floor = 0;
    as->state_rev = as->state_version = as->state_hash = 0;
    as->lead_term = as->loaded_term = AETHER_TERM_NONE;
    as->publish_pending = false;
    aether_shardmap_slot_new_generation(&m->slot);
    __atomic_store_n(&m->map_version, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->map_term, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->announced_version, 0, __ATOMIC_SEQ_CST);
    as->announce_doubt = 0;
    __atomic_store_n(&m->map_generation, __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST),
                     __ATOMIC_SEQ_CST);
    AETHER_INFO(MEMBER_LOG, "%s: new generation: the map held (v%llu) is the old one's; serving "
                "nothing until a map of this generation is installed", m->cfg.node.str,
                (unsigned long long)(as->cur != NULL ? as->cur->version : 0));
    reconcile(m); /* releases everything */
    request_map_read(m, MEMBER_ASSIGN_READ_CATCH_UP);
}

/* A map was published (member.c, sink_map): a follower reads the stored
 * one, the authority, and compares it with the publication. */
static void map_hinted(aether_member *m)
{
    member_assign_state *as = m->as;
    /* Taken before the read is asked for: a publication after this point
     * asks again (member.c, sink_map). */
    member_map_hint *h = __atomic_exchange_n(&m->map_hint, NULL, __ATOMIC_SEQ_CST);
    if (member_may_lead(m, NULL)) { /* while we lead, only our maps count */
        member_map_hint_free(h);
        return;
    }
    if (h != NULL) { /* the newest publication is the one to compare with */
        member_map_hint_free(as->read_hint);
        as->read_hint = h;
    }
    request_map_read(m, MEMBER_ASSIGN_READ_HINT);
}

/* A read of the stored map is done: install it if newer, then what each
 * asker wanted, in the order the synchronous reads were made in. */
static void map_read_done(aether_member *m, member_store_req *r)
{
    member_assign_state *as = m->as;
    as->map_read_inflight = false;
    uint32_t wants = (uint32_t)r->arg;
    uint64_t stored = 0;
    bool absent = false;
    char *json = r->value;
    r->value = NULL;
    aether_status st = stored_map_read(m, r->st, json, r->len, r->state_rev, r->hash, r->ctx,
                                       &stored, &absent);
    if ((wants & MEMBER_ASSIGN_READ_HINT) && st != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: a map was published but the stored one is not readable "
                                 "now; the next LeaseRenewed asks again", m->cfg.node.str);
    if (wants & MEMBER_ASSIGN_READ_ADMIT)
        admit_checked(m);
    if (wants & MEMBER_ASSIGN_READ_RECHECK)
        recheck_judged(m, st, stored, absent);
    if ((wants & MEMBER_ASSIGN_READ_ANNOUNCE) && r->event != NULL)
        announced_judged(m, r->event, st, stored, absent);
    if (wants & MEMBER_ASSIGN_READ_TAKEOVER)
        takeover_loaded(m, r->state_term, st, absent);
    request_map_read(m, 0); /* what was asked for meanwhile */
}

/* The window of HANDOFF_FLUSH_MS for this map shape. */
static uint64_t handoff_flush_ns(const aether_member *m)
{
    uint64_t slots_k = (uint64_t)m->cfg.shard_count * m->cfg.replication / 1024u;
    return ((uint64_t)HANDOFF_FLUSH_MS + slots_k * HANDOFF_FLUSH_MS_PER_1K) * AETHER_NS_PER_MS;
}

/* Leader: a ShardReleased of the old owner of a handoff of our term, for a
 * map of this handoff, is collected (as->done) for the next flush. Any
 * other is ignored (a late, repeated or foreign acknowledgement). The
 * caller keeps ack. */
static void collect_release(aether_member *m, const aether_release_ack *ack)
{
    member_assign_state *as = m->as;
    if (!member_may_lead(m, NULL) || as->cur == NULL || ack->shard >= m->cfg.shard_count)
        return;
    const aether_shard_entry *e = aether_shardmap_entry(as->cur, ack->shard);
    if (e->state != AETHER_SHARD_MOVING || ack->term != as->lead_term ||
        ack->map_version < as->move_version[ack->shard] ||
        !aether_node_id_equal(&as->cur->nodes[e->primary], &ack->from) || as->done[ack->shard])
        return;
    as->done[ack->shard] = 1;
    as->n_done++;
    AETHER_ASSERT(as->n_done <= m->cfg.shard_count); /* one per shard until consumed */
    if (as->n_done == as->cur_moving) {
        /* Every handoff of the current map is acknowledged: nothing to
         * wait for (a timer still armed finds its number stale). */
        as->flush_pending = true;
        as->flush_gen++;
        member_send_tick(m->assign, MSG_FLUSH, 0);
    } else if (!as->flush_pending) {
        /* Collect the acknowledgements that arrive within a window into
         * one map: with many nodes they come one by one, and a map per
         * acknowledgement would flood every node with whole maps. */
        as->flush_pending = true;
        aether_msg t = { .type = MSG_FLUSH, .arg64 = ++as->flush_gen };
        if (aether_timer_start(m->assign, handoff_flush_ns(m), 0, &t, NULL) != AETHER_OK)
            member_send_tick(m->assign, MSG_FLUSH, 0);
    }
}

static void send_ack_barrier(aether_member *m, uint64_t b)
{
    aether_msg ack = { .type = MSG_ANNOUNCE_ACK, .arg64 = b };
    if (aether_actor_send(m->cluster, &ack) != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: barrier %llu not acknowledged (cluster mailbox full); it "
                     "asks again", m->cfg.node.str, (unsigned long long)b);
}

/* member_internal.h, step 2: answer barrier b, at once if no map write is
 * in flight, else once it is done (the map published or abandoned:
 * map_write_done). Every map commit that begins after the answer reads the
 * snapshot the cluster actor published before sending b. */
static void pass_barrier(aether_member *m, uint64_t b)
{
    member_assign_state *as = m->as;
    if (as->map_write_inflight) {
        if (b > as->barrier_deferred)
            as->barrier_deferred = b; /* an ack of b covers every number up to b */
        return;
    }
    send_ack_barrier(m, b);
}

void member_assign_want_step(aether_member *m, const char *reason)
{
    member_assign_state *as = m->as;
    AETHER_ASSERT(as->map_write_inflight);
    as->step_wanted = true;
    snprintf(as->step_reason, sizeof(as->step_reason), "%s", reason);
}

/* A map write is done and its map published or abandoned: the barriers
 * that waited for it are answered first, then the step asked for meanwhile
 * runs, on a snapshot read afresh (member_internal.h, step 2). */
static void map_write_done(aether_member *m)
{
    member_assign_state *as = m->as;
    AETHER_ASSERT(!as->map_write_inflight);
    if (as->barrier_deferred != 0) {
        uint64_t b = as->barrier_deferred;
        as->barrier_deferred = 0;
        send_ack_barrier(m, b);
    }
    if (as->step_wanted) {
        as->step_wanted = false;
        char reason[sizeof(as->step_reason)];
        memcpy(reason, as->step_reason, sizeof(reason));
        advance(m, reason, false);
    }
}

static void store_done(aether_member *m, member_store_req *r)
{
    switch (r->tag) {
    case MEMBER_ASSIGN_STORE_STEP:
        member_map_step_stored(m, r);
        map_write_done(m);
        break;
    case MEMBER_ASSIGN_STORE_WRITE_BACK:
    case MEMBER_ASSIGN_STORE_OVER_FOREIGN:
        write_back_done(m, r);
        map_write_done(m);
        break;
    case MEMBER_ASSIGN_STORE_FOREIGN:
        foreign_checked(m, r);
        break;
    case MEMBER_ASSIGN_STORE_MAP_READ:
        map_read_done(m, r);
        break;
    case MEMBER_ASSIGN_STORE_TOPO_READ:
        topology_read_done(m, r);
        break;
    default:
        AETHER_ASSERT(!"assign actor: a completion of another actor's request");
    }
}

void member_assign_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_member *m = state;
    member_assign_state *as = m->as;
    (void)self;
    new_generation(m);
    switch (msg->type) {
    case MSG_EVENT:
        on_event(m, (const aether_event *)msg->ptr);
        break;
    case MSG_MAP_HINT:
        map_hinted(m);
        break;
    case MSG_SELF_REFUTED:
        self_refuted(m, msg->arg64);
        break;
    case MSG_RELEASE:
        collect_release(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_TOPOLOGY: /* applied by the cluster actor; its snapshot is published */
        on_event(m, (const aether_event *)msg->ptr);
        break;
    case MSG_REBALANCE: /* an explicit RebalanceShards / AssignShards (I4 allows it) */
        rebalance(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_RELEASE_BRAKE:
        release_brake(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_FLUSH:
        if (msg->arg64 != 0 && msg->arg64 != as->flush_gen)
            break; /* a window whose map went out early */
        as->flush_gen++;
        as->flush_pending = false;
        advance(m, "handoff", false);
        notify_drained(m);
        break;
    case MSG_TICK_DEBOUNCE:
        if (msg->arg64 == as->debounce_gen) {
            as->debounce_armed = false;
            rebalance(m, "NodeJoined");
        }
        break;
    case MSG_TICK_CHECK:
        tick_check(m);
        break;
    case MSG_ANNOUNCE_BARRIER:
        pass_barrier(m, msg->arg64);
        break;
    case MSG_SUPERSEDED:
        superseded(m);
        break;
    case MSG_STORE_DONE:
        store_done(m, msg->ptr);
        member_store_req_free(msg->ptr);
        break;
    default:
        AETHER_ASSERT(!"assign actor: unknown message type");
    }
}
