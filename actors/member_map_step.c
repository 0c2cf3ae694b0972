/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_map_step.c: the leader's map step (actors layer, part of the
 * ShardAssignment actor: member_assign_internal.h).
 *
 * DESIGN: member_assign.c, steps 4 to 6. One step derives the next map
 * from the current one towards the strategy's target in two passes (the
 * shards Releasing, then the rest), within max_concurrent_handoffs; checks
 * it against I2/I3 and the topology it came from; records it in the state
 * store (a request to the store actor); then, on its completion, publishes,
 * installs and reports it. A map that cannot be recorded is never
 * published and what the step consumed is put back; one that went stale
 * while its write was in flight is installed but not published, and the
 * next step follows at once. The commit spans two handler runs of the
 * assign actor, and no barrier is passed between them: member_internal.h,
 * "The leader's two commit points", step 2.
 * Threading: called only from the assign actor; the state is its own.
 */
#include "member_assign_internal.h"

#include <stdlib.h>
#include <string.h>

#include "invariants.h"

static aether_status set_ids(aether_shardmap_builder *b, uint32_t s, const aether_node_id *ids,
                             uint32_t n)
{
    aether_node_index idx[AETHER_REPLICATION_MAX];
    for (uint32_t j = 0; j < n; j++) {
        aether_status st = aether_shardmap_builder_add_node(b, &ids[j], &idx[j], NULL);
        if (st != AETHER_OK)
            return st;
    }
    return aether_shardmap_builder_set_owners(b, s, idx, n, NULL);
}

/* What a step did to one shard, reported once its map is out. */
typedef enum placement_kind {
    PLACED_ASSIGNED,     /* an unowned shard got an owner: ShardAssigned */
    PLACED_FAILOVER,     /* the owner is gone, a replica took over: ShardMigrated "failover" */
    PLACED_HANDOFF_DONE, /* Releasing -> Stable at the target: ShardMigrated "handoff" */
} placement_kind;

typedef struct placement {
    uint32_t shard;
    aether_node_id from, to;
    placement_kind kind;
    uint64_t since_ns; /* PLACED_HANDOFF_DONE: when the handoff was decreed (0 = unknown) */
} placement;

/* The placements of one kind of a step (in their order), in events of at
 * most AETHER_EVENT_BATCH_MAX entries: ShardAssigned with the owners in map
 * (as->cur, the map just installed), ShardMigrated with reason. An event
 * that cannot be built (out of memory) is not emitted; the map, not the
 * events, is the authority (DESIGN 2). */
static void emit_batches(aether_member *m, const placement *done, uint32_t n_done,
                         placement_kind kind, const aether_shardmap *map, uint64_t version,
                         const char *reason)
{
    aether_event_type type =
        kind == PLACED_ASSIGNED ? AETHER_EVT_SHARD_ASSIGNED : AETHER_EVT_SHARD_MIGRATED;
    uint32_t total = 0;
    for (uint32_t i = 0; i < n_done; i++)
        total += done[i].kind == kind;
    uint32_t i = 0;
    while (total > 0) { /* bounded: total drops by the batch each round */
        uint32_t count = total < AETHER_EVENT_BATCH_MAX ? total : AETHER_EVENT_BATCH_MAX;
        total -= count;
        aether_event *e = aether_event_create_batch(type, count);
        aether_event_nodes_ix ix = {0};
        aether_status st = AETHER_ENOMEM;
        if (e != NULL)
            st = aether_event_nodes_ix_init(&ix, e);
        for (uint32_t k = 0; k < count; i++) { /* bounded: i < n_done */
            AETHER_ASSERT(i < n_done);
            const placement *p = &done[i];
            if (p->kind != kind)
                continue;
            if (st != AETHER_OK) {
                k++;
                continue;
            }
            if (kind == PLACED_ASSIGNED) {
                aether_shard_owners *so = &e->data.shard_assigned.shards[k];
                const aether_shard_entry *en = aether_shardmap_entry(map, p->shard);
                const aether_node_index *o = aether_shardmap_owners(map, p->shard);
                so->shard = p->shard;
                so->owner_count = (uint16_t)en->owner_count;
                for (uint32_t j = 0; j < en->owner_count && st == AETHER_OK; j++)
                    st = aether_event_nodes_ix_add(&ix, &map->nodes[o[j]], &so->owners[j]);
            } else {
                aether_shard_move *mv = &e->data.shard_migrated.moves[k];
                mv->shard = p->shard;
                st = aether_event_nodes_ix_add(&ix, &p->from, &mv->from);
                if (st == AETHER_OK)
                    st = aether_event_nodes_ix_add(&ix, &p->to, &mv->to);
            }
            k++;
        }
        if (e != NULL && st == AETHER_OK) {
            aether_event_nodes_ix_fini(&ix);
            if (kind == PLACED_ASSIGNED) {
                e->data.shard_assigned.map_version = map->version;
            } else {
                e->data.shard_migrated.map_version = version;
                aether_event_set_reason(e->data.shard_migrated.reason, reason);
            }
            member_assign_emit(m, e);
        } else {
            aether_event_nodes_ix_fini(&ix);
            aether_event_release(e);
            AETHER_WARN(MEMBER_LOG, "%s: out of memory building a %s event of map %llu: not "
                        "emitted (the map is published)", m->cfg.node.str,
                        aether_event_type_name(type), (unsigned long long)version);
        }
    }
}

/* One attempt at the next map: the builder it fills from the current map,
 * the placements it reports once the map is out, and what it left in
 * flight. Built on the stack by member_map_step_commit; once its map is
 * built it moves to the heap and rides with the map's write to the store
 * actor (the request's ctx) until member_map_step_stored. */
typedef struct map_step {
    const aether_shardmap *cur;  /* the map derived from (NULL: none yet) */
    const aether_shardmap *tgt;  /* the strategy's target (as->target) */
    aether_shardmap_builder *b;  /* owned until build_checked */
    placement *done;             /* [shard_count], owned: reported once the map is out */
    uint32_t n_done;
    uint32_t in_flight;          /* handoffs Releasing in the next map */
    uint32_t started;            /* of those, begun by this step */
    uint32_t queued;             /* handoffs the budget (max_concurrent_handoffs) holds back */
    uint32_t diverged;           /* handoffs ended short of where the target wants the shard */
    bool changed;                /* the next map differs from cur */
    uint64_t now;
    uint32_t save_n_done;        /* as->n_done before the step (step_restore) */
    bool save_force;             /* as->force_publish before the step */
    /* Kept for the completion (member_map_step_stored): */
    aether_term term;            /* the term the map is of */
    uint64_t from_version;       /* cur's version (0: none) */
    uint64_t gen_changes;        /* as->gen_changes_seen when it was built */
    char reason[64];             /* why the step ran (RebalanceStarted) */
} map_step;

static void map_step_free(void *p)
{
    map_step *st = p;
    if (st == NULL)
        return;
    aether_shardmap_builder_destroy(st->b);
    free(st->done);
    free(st);
}

/* A Releasing shard of the current map, as pass_moving judges it. */
typedef struct moving_row {
    uint32_t shard;
    aether_node_id cur_ids[AETHER_REPLICATION_MAX]; /* its owners in cur, primary first */
    aether_node_id tgt_ids[AETHER_REPLICATION_MAX]; /* its owners in the target */
    uint32_t n_cur, n_tgt;
    aether_node_id to;           /* the handoff's target */
    bool primary_ok;             /* the old owner is healthy */
    bool to_ok;                  /* the handoff's target is Active */
} moving_row;

/* Leader, before a map step: may a map be committed now, and in which
 * term? False: not now; publish_pending is set where a later tick may
 * succeed (the lease in doubt, the stored state not read yet, ...). */
static bool may_commit_map(aether_member *m, aether_term *term)
{
    member_assign_state *as = m->as;
    if (as->target == NULL)
        return false;
    if (!member_may_lead(m, term)) {
        as->publish_pending = true; /* a lease in doubt for a moment: tick_check retries */
        return false;
    }
    if (as->loaded_term != *term) {
        as->publish_pending = true; /* policy 10: the stored state first (tick_check) */
        return false;
    }
    if (member_incompatible(m) || member_stood_down(m, *term))
        return false; /* not a leader for this cluster: it resigns (member_lease.c) */
    if (as->first_map_after_ns != 0 && member_now_ns(m) < as->first_map_after_ns) {
        as->publish_pending = true; /* a take-over from nothing: not yet (wait_first_map) */
        return false;
    }
    if (__atomic_load_n(&m->shape_blocked_term, __ATOMIC_SEQ_CST) == *term &&
        __atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) != *term) {
        as->publish_pending = true; /* our shape lacks a majority: no first map
                                       (member_shape.c, "Quorum of configuration") */
        return false;
    }
    if (aether_topology_count_status(&as->topo, AETHER_NODE_ACTIVE) +
            aether_topology_count_status(&as->topo, AETHER_NODE_DRAINING) ==
        0)
        return false; /* nobody to own anything: wait for a join (it rebalances) */
    return true;
}

/* Remembers what a step consumes (collected releases, handoff clocks, the
 * forced publication), so step_restore can put it back. */
static void step_save(member_assign_state *as, uint32_t shard_count, map_step *st)
{
    memcpy(as->save_done, as->done, shard_count);
    memcpy(as->save_moving_since, as->moving_since_ns, (size_t)shard_count * sizeof(uint64_t));
    memcpy(as->save_move_version, as->move_version, (size_t)shard_count * sizeof(uint64_t));
    st->save_n_done = as->n_done;
    st->save_force = as->force_publish;
}

/* The step's map was not published: what it consumed is put back as
 * step_save found it; tick_check tries again. Releases collected while its
 * write was in flight (collect_release, decree_timed_out) are kept with
 * the ones put back. */
static void step_restore(member_assign_state *as, uint32_t shard_count, const map_step *st)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < shard_count; s++) {
        as->done[s] |= as->save_done[s];
        n += as->done[s] != 0;
    }
    memcpy(as->moving_since_ns, as->save_moving_since, (size_t)shard_count * sizeof(uint64_t));
    memcpy(as->move_version, as->save_move_version, (size_t)shard_count * sizeof(uint64_t));
    AETHER_ASSERT(n >= st->save_n_done || st->save_n_done <= shard_count);
    as->n_done = n;
    as->force_publish = st->save_force;
    as->publish_pending = true;
}

/* The primary and those of the other owners still healthy (I3), into keep;
 * returns how many. */
static uint32_t keep_healthy(const member_assign_state *as, const aether_node_id *ids, uint32_t n,
                             aether_node_id *keep)
{
    uint32_t nk = 0;
    for (uint32_t j = 0; j < n; j++)
        if (j == 0 || member_assign_is_healthy(as, &ids[j]))
            keep[nk++] = ids[j];
    return nk;
}

/* since_ns: when the handoff began (PLACED_HANDOFF_DONE; 0 otherwise), for
 * aether_handoff_duration_seconds once the map is out. */
static void place(map_step *st, uint32_t shard, const aether_node_id *from,
                  const aether_node_id *to, placement_kind kind, uint64_t since_ns)
{
    st->done[st->n_done++] =
        (placement){ shard, from != NULL ? *from : (aether_node_id){ 0 }, *to, kind, since_ns };
}

/* A released handoff (acknowledged, decreed, or its old owner failed) ends:
 * the shard becomes Stable where the target wants it if it can, else with
 * the healthy owners it has. */
static void finish_released(aether_member *m, map_step *st, const moving_row *r)
{
    member_assign_state *as = m->as;
    uint32_t s = r->shard;
    if (r->n_tgt > 0 && aether_node_id_equal(&r->tgt_ids[0], &r->to) && r->to_ok) {
        set_ids(st->b, s, r->tgt_ids, r->n_tgt);
        place(st, s, &r->cur_ids[0], &r->to, PLACED_HANDOFF_DONE, as->moving_since_ns[s]);
    } else if (r->n_tgt > 0 && (!r->primary_ok || !r->to_ok)) {
        /* The old owner is gone (it fenced itself) or has let go, and
         * `to` is no longer Active: straight to where the target wants
         * the shard now (back to the old owner, maybe), not to a
         * stale or dead `to`. */
        set_ids(st->b, s, r->tgt_ids, r->n_tgt);
        if (!aether_node_id_equal(&r->tgt_ids[0], &r->cur_ids[0]))
            place(st, s, &r->cur_ids[0], &r->tgt_ids[0], PLACED_FAILOVER, 0);
    } else if (!r->to_ok) {
        /* No target to follow: the healthy owners keep it. */
        aether_node_id keep[AETHER_REPLICATION_MAX];
        set_ids(st->b, s, keep, keep_healthy(as, r->cur_ids, r->n_cur, keep));
    } else { /* the target moved on: put `to` first, keep the healthy rest */
        aether_node_id ids[AETHER_REPLICATION_MAX];
        uint32_t n = 0;
        ids[n++] = r->to;
        for (uint32_t j = 1; j < r->n_cur && n < m->cfg.replication; j++)
            if (!aether_node_id_equal(&r->cur_ids[j], &r->to) &&
                member_assign_is_healthy(as, &r->cur_ids[j]))
                ids[n++] = r->cur_ids[j];
        set_ids(st->b, s, ids, n);
        place(st, s, &r->cur_ids[0], &r->to, PLACED_HANDOFF_DONE, as->moving_since_ns[s]);
        /* Still not where the target wants it: the next step moves it
         * on, so the session is not complete. */
        if (r->n_tgt > 0)
            st->diverged++;
    }
    aether_shardmap_builder_set_stable(st->b, s, NULL);
    as->done[s] = 0;
    as->moving_since_ns[s] = 0;
    st->changed = true;
}

/* The move is off (the target gave the shard back to its primary, or `to`
 * is no longer Active, or both ends are gone): Stable again, where the
 * target wants it or with the healthy owners it has. */
static void call_off_handoff(aether_member *m, map_step *st, const moving_row *r)
{
    member_assign_state *as = m->as;
    uint32_t s = r->shard;
    if (r->n_tgt > 0 && (aether_node_id_equal(&r->tgt_ids[0], &r->cur_ids[0]) || !r->primary_ok)) {
        set_ids(st->b, s, r->tgt_ids, r->n_tgt);
        if (!aether_node_id_equal(&r->tgt_ids[0], &r->cur_ids[0]))
            place(st, s, &r->cur_ids[0], &r->tgt_ids[0], PLACED_FAILOVER, 0);
    } else {
        aether_node_id keep[AETHER_REPLICATION_MAX];
        set_ids(st->b, s, keep, keep_healthy(as, r->cur_ids, r->n_cur, keep));
    }
    aether_shardmap_builder_set_stable(st->b, s, NULL);
    as->moving_since_ns[s] = 0;
    st->changed = true;
}

/* The handoff goes on: replicas no longer healthy leave the row (I3); it
 * counts against the budget. */
static void keep_in_flight(aether_member *m, map_step *st, const moving_row *r)
{
    aether_node_id keep[AETHER_REPLICATION_MAX];
    uint32_t nk = keep_healthy(m->as, r->cur_ids, r->n_cur, keep);
    if (nk != r->n_cur) {
        set_ids(st->b, r->shard, keep, nk);
        aether_shardmap_builder_set_moving(st->b, r->shard,
                                           aether_shardmap_builder_find_node(st->b, &r->to), NULL);
        st->changed = true;
    }
    st->in_flight++;
}

/* Pass 1: every Releasing shard of cur is finished (released), called off
 * or kept in flight; a release collected for a shard not Releasing is
 * forgotten. Consumes as->done (as->n_done = 0 after). */
static void pass_moving(aether_member *m, map_step *st)
{
    member_assign_state *as = m->as;
    const aether_shardmap *cur = st->cur;
    for (uint32_t s = 0; cur != NULL && s < m->cfg.shard_count; s++) {
        const aether_shard_entry *c = aether_shardmap_entry(cur, s);
        if (c->state != AETHER_SHARD_MOVING) {
            /* A release collected for a move that ended otherwise (a map
             * adopted from the store, a change of plan) must not complete
             * the next move of this shard before its old owner lets go. */
            as->done[s] = 0;
            continue;
        }
        AETHER_ASSERT(c->to < cur->node_count); /* a Releasing shard has a target (I1) */
        moving_row r = { .shard = s };
        r.n_cur = member_assign_owner_ids(cur, s, r.cur_ids);
        r.n_tgt = member_assign_owner_ids(st->tgt, s, r.tgt_ids);
        r.to = cur->nodes[c->to];
        r.primary_ok = member_assign_is_healthy(as, &r.cur_ids[0]);
        r.to_ok = member_assign_is_active(as, &r.to);
        if (!as->done[s] && !r.primary_ok && r.to_ok)
            as->done[s] = 1; /* the old owner failed mid-handoff: it fenced itself */
        if (as->done[s])
            finish_released(m, st, &r);
        else if (!r.to_ok || !r.primary_ok ||
                 (r.n_tgt > 0 && aether_node_id_equal(&r.tgt_ids[0], &r.cur_ids[0])))
            call_off_handoff(m, st, &r);
        else
            keep_in_flight(m, st, &r);
    }
    as->n_done = 0;
}

/* Pass 2, one shard not Releasing in cur: towards the target. An unowned
 * shard is assigned, a replica-only change or a lost primary is applied
 * directly, a healthy primary hands the shard off to an Active target
 * within the budget (the rest queued). */
static void step_stable_shard(aether_member *m, map_step *st, uint32_t s)
{
    member_assign_state *as = m->as;
    const aether_shardmap *cur = st->cur;
    aether_node_id c_ids[AETHER_REPLICATION_MAX], t_ids[AETHER_REPLICATION_MAX];
    uint32_t nt = member_assign_owner_ids(st->tgt, s, t_ids);
    if (cur == NULL || aether_shardmap_entry(cur, s)->owner_count == 0) {
        if (nt > 0) {
            set_ids(st->b, s, t_ids, nt);
            place(st, s, NULL, &t_ids[0], PLACED_ASSIGNED, 0);
            st->changed = true;
        }
        return;
    }
    const aether_shard_entry *c = aether_shardmap_entry(cur, s);
    if (c->state == AETHER_SHARD_MOVING)
        return; /* pass 1 */
    uint32_t nc = member_assign_owner_ids(cur, s, c_ids);
    if (nt == 0 || member_assign_same_ids(c_ids, nc, t_ids, nt))
        return;
    if (aether_node_id_equal(&c_ids[0], &t_ids[0]) || !member_assign_is_healthy(as, &c_ids[0])) {
        set_ids(st->b, s, t_ids, nt); /* replicas only, or the primary is gone */
        if (!aether_node_id_equal(&c_ids[0], &t_ids[0]))
            place(st, s, &c_ids[0], &t_ids[0], PLACED_FAILOVER, 0);
        st->changed = true;
        return;
    }
    /* The primary stays until the handoff; replicas that are no longer
     * healthy leave the row now (I3). */
    aether_node_id keep[AETHER_REPLICATION_MAX];
    uint32_t nk = keep_healthy(as, c_ids, nc, keep);
    if (nk != nc) {
        set_ids(st->b, s, keep, nk);
        st->changed = true;
    }
    if (!member_assign_is_active(as, &t_ids[0]))
        return; /* a handoff goes only to an Active node (I3); with none Active
                   (all draining) the healthy primary keeps the shard */
    if (st->in_flight >= m->cfg.max_concurrent_handoffs) {
        st->queued++;
        return;
    }
    aether_node_index to;
    if (aether_shardmap_builder_add_node(st->b, &t_ids[0], &to, NULL) == AETHER_OK &&
        aether_shardmap_builder_set_moving(st->b, s, to, NULL) == AETHER_OK) {
        as->moving_since_ns[s] = st->now;
        as->move_version[s] = (cur ? cur->version : 0) + 1;
        as->done[s] = 0;
        st->in_flight++;
        st->started++;
        st->changed = true;
    }
}

/* Pass 2: every shard pass 1 left alone, towards the target. */
static void pass_stable(aether_member *m, map_step *st)
{
    for (uint32_t s = 0; s < m->cfg.shard_count; s++)
        step_stable_shard(m, st, s);
    /* The budget: no handoff begins while max_concurrent_handoffs are in
     * flight (a map adopted from another leader may hold more: none starts
     * then). */
    AETHER_ASSERT(st->started == 0 || st->in_flight <= m->cfg.max_concurrent_handoffs);
}

/* The next map from the step's builder (consumed): version one above the
 * current map's (or above this term's floor, takeover_load), this term.
 * Refused (AETHER_ESTATE, logged) if it breaks I2/I3 against as->topo, the
 * topology it came from; the next tick recomputes the target
 * (publish_pending). With no healthy node at all (the leader not admitted
 * yet, everyone else failed) no map can hold, and none is published until
 * one joins. *next: the map (the caller owns it) on AETHER_OK. */
static aether_status build_checked(aether_member *m, map_step *st, aether_term term,
                                   aether_shardmap **next)
{
    member_assign_state *as = m->as;
    uint64_t from_version = st->cur ? st->cur->version : 0;
    /* Nodes that own nothing any more leave the map's node table: departed
     * ids do not pile up in every map (and the leader may forget them). */
    (void)aether_shardmap_builder_drop_unnamed(st->b, NULL);
    uint64_t base_version = as->version_floor > from_version ? as->version_floor : from_version;
    aether_shardmap_builder_set_version(st->b, base_version + 1);
    aether_shardmap_builder_set_term(st->b, term);
    aether_err err;
    *next = NULL;
    aether_status rc = aether_shardmap_build(st->b, next, &err);
    aether_shardmap_builder_destroy(st->b);
    st->b = NULL;
    if (rc == AETHER_OK) {
        /* A new map's version is the previous one's + 1, unless this term
         * numbers from a floor above it (a take-over from a lost store). */
        AETHER_ASSERT((*next)->version == from_version + 1 ||
                      ((*next)->version == as->version_floor + 1 && as->version_floor > from_version));
        AETHER_ASSERT((*next)->term == term);
        if (aether_invariants_check_map(*next, &as->topo, &err) != AETHER_OK) {
            AETHER_ERROR(MEMBER_LOG, "%s: refusing to publish map v%llu: %s", m->cfg.node.str,
                         (unsigned long long)(*next)->version, err.msg);
            aether_shardmap_destroy(*next);
            *next = NULL;
            rc = AETHER_ESTATE;
        }
    } else if (rc != AETHER_ESTATE) {
        AETHER_ERROR(MEMBER_LOG, "%s: building map: %s", m->cfg.node.str, err.msg);
    }
    return rc;
}

/* The step's counts agree with the map it built (AETHER_DEEP_ASSERT:
 * O(shards)): every Releasing shard has a target other than its primary,
 * and as many are Releasing as the step left in flight. */
static bool map_step_is_valid(const map_step *st, const aether_shardmap *next)
{
    uint32_t moving = 0;
    for (uint32_t s = 0; s < next->shard_count; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(next, s);
        if (e->state != AETHER_SHARD_MOVING)
            continue;
        if (e->to >= next->node_count || e->to == e->primary || e->owner_count == 0)
            return false;
        moving++;
    }
    return moving == st->in_flight;
}

/* A step that places or moves a shard opens a rebalance session if none is
 * open: RebalanceStarted. */
static void open_session(aether_member *m, const map_step *st, const char *reason, uint64_t from_version)
{
    member_assign_state *as = m->as;
    if (as->session_active || (st->n_done == 0 && st->started == 0))
        return;
    as->session_active = true;
    as->session_start_ns = st->now;
    as->session_moved = 0;
    aether_event *e = aether_event_create(AETHER_EVT_REBALANCE_STARTED);
    if (e != NULL) {
        aether_event_set_reason(e->data.rebalance_started.reason, as->brake ? "brake" : reason);
        e->data.rebalance_started.from_version = from_version;
        e->data.rebalance_started.moves_planned = st->n_done + st->started + st->queued;
        member_assign_emit(m, e);
    }
}

/* The step's placements, once its map (version) is out: ShardAssigned,
 * then ShardMigrated "failover", then "handoff", each in batches of at most
 * AETHER_EVENT_BATCH_MAX entries; moves counted. */
static void report_placements(aether_member *m, const map_step *st, uint64_t version)
{
    member_assign_state *as = m->as;
    emit_batches(m, st->done, st->n_done, PLACED_ASSIGNED, as->cur, version, NULL);
    emit_batches(m, st->done, st->n_done, PLACED_FAILOVER, as->cur, version, "failover");
    emit_batches(m, st->done, st->n_done, PLACED_HANDOFF_DONE, as->cur, version, "handoff");
    for (uint32_t i = 0; i < st->n_done; i++) {
        const placement *p = &st->done[i];
        if (p->kind == PLACED_HANDOFF_DONE && p->since_ns != 0)
            member_observe_ns(m->h_handoff, member_now_ns(m) - p->since_ns);
        if (p->kind != PLACED_ASSIGNED) {
            as->session_moved++;
            __atomic_add_fetch(&m->shards_moved, 1, __ATOMIC_RELAXED);
        }
    }
}

/* After the map (version) is out: a diverged handoff schedules the next
 * step; a session with nothing left in flight, queued or diverged closes
 * (RebalanceCompleted). */
static void after_publication(aether_member *m, const map_step *st, uint64_t version)
{
    member_assign_state *as = m->as;
    if (st->diverged > 0 && !as->flush_pending) {
        as->flush_pending = true; /* the next step, once this map is out */
        member_send_tick(m->assign, MSG_FLUSH, 0);
    }
    if (as->session_active && st->in_flight == 0 && st->queued == 0 && st->diverged == 0) {
        as->session_active = false;
        __atomic_add_fetch(&m->rebalances, 1, __ATOMIC_RELAXED);
        aether_event *e = aether_event_create(AETHER_EVT_REBALANCE_COMPLETED);
        if (e != NULL) {
            e->data.rebalance_completed.map_version = version;
            e->data.rebalance_completed.moved = as->session_moved;
            uint64_t took_ns = member_now_ns(m) - as->session_start_ns;
            e->data.rebalance_completed.duration_ms = took_ns / AETHER_NS_PER_MS;
            member_observe_ns(m->h_rebalance, took_ns);
            member_assign_emit(m, e);
        }
    }
}

/* The leader's map step: derives the next map from the current one
 * towards the target (pass_moving, pass_stable), checks it against the
 * topology snapshot just refreshed (advance, release_brake:
 * member_internal.h, step 2) and hands it to the store actor, which
 * encodes and records it; member_map_step_stored publishes it. Nothing if
 * it would change nothing. While a map write is in flight no step runs:
 * the request is noted (member_assign_want_step) and runs, on the map
 * then published, once the write is done. */
void member_map_step_commit(aether_member *m, const char *reason)
{
    member_assign_state *as = m->as;
    if (as->map_write_inflight) {
        member_assign_want_step(m, reason);
        return;
    }
    aether_term term;
    if (!may_commit_map(m, &term))
        return;
    uint32_t S = m->cfg.shard_count;
    map_step st = { .cur = as->cur, .tgt = as->target, .changed = as->cur == NULL };
    /* The passes index both maps by shard: member_assign_adopt installs no
     * map of another shard_count, and the strategy answers in ours. */
    AETHER_ASSERT(st.tgt->shard_count == S && (st.cur == NULL || st.cur->shard_count == S));
    step_save(as, S, &st);
    st.now = member_now_ns(m);
    aether_status rc = st.cur ? aether_shardmap_builder_from_map(st.cur, &st.b, NULL)
                              : aether_shardmap_builder_create(S, m->cfg.replication, &st.b, NULL);
    st.done = calloc(S, sizeof(*st.done));
    if (rc != AETHER_OK || st.done == NULL) {
        free(st.done);
        aether_shardmap_builder_destroy(st.b);
        return;
    }
    pass_moving(m, &st);
    pass_stable(m, &st);
    if (!st.changed && !(as->force_publish && st.cur != NULL)) {
        free(st.done);
        aether_shardmap_builder_destroy(st.b);
        return;
    }
    as->force_publish = false;
    st.from_version = st.cur ? st.cur->version : 0;
    st.term = term;
    st.gen_changes = as->gen_changes_seen;
    snprintf(st.reason, sizeof(st.reason), "%s", reason);
    aether_shardmap *next = NULL;
    rc = build_checked(m, &st, term, &next);
    AETHER_DEEP_ASSERT(rc != AETHER_OK || map_step_is_valid(&st, next));
    map_step *held = NULL;
    member_store_req *r = NULL;
    if (rc == AETHER_OK) {
        held = malloc(sizeof(*held));
        r = member_store_req_new(MEMBER_STORE_STATE_PUT, m->assign);
        rc = held != NULL && r != NULL ? AETHER_OK : AETHER_ENOMEM;
    }
    if (rc == AETHER_OK) {
        *held = st;
        held->cur = held->tgt = NULL; /* not read after this run: the maps may change */
        st.done = NULL;
        snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_MAP);
        r->tag = MEMBER_ASSIGN_STORE_STEP;
        /* Stamped with the generation we act in (member_state.c, "Generations"). */
        r->state_gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
        r->state_term = next->term;
        r->state_version = next->version;
        r->state_rev = as->state_rev;
        r->map = next;
        r->ctx = held;
        r->ctx_free = map_step_free;
        next = NULL;
        held = NULL;
        rc = member_store_request(m, r);
        if (rc == AETHER_OK)
            r = NULL;
    }
    if (rc != AETHER_OK) {
        member_store_req_free(r); /* with the map and the step it carries */
        free(held);
        aether_shardmap_destroy(next);
        step_restore(as, S, &st);
        free(st.done);
        return;
    }
    as->map_write_inflight = true;
}

/* Why a stored map is not installed at all (NULL: it is): the generation
 * it was built in has ended, or another map was installed since it was
 * derived (it is not newer than ours then, or not derived from it). */
static const char *void_reason(aether_member *m, const map_step *st)
{
    member_assign_state *as = m->as;
    if (as->gen_changes_seen != st->gen_changes)
        return "a new generation began";
    if ((as->cur != NULL ? as->cur->version : 0) != st->from_version)
        return "another map was installed meanwhile";
    return NULL;
}

/* Why a stored map is installed here but not published to the cluster
 * (NULL: it is published): this node no longer leads its term, or the map
 * no longer passes I2/I3 against the topology snapshot as it is now
 * (member_internal.h, step 2). */
static const char *stale_reason(aether_member *m, const map_step *st, const aether_shardmap *next,
                                aether_err *err)
{
    member_assign_state *as = m->as;
    aether_term term;
    if (!member_may_lead(m, &term) || term != st->term || as->lead_term != term)
        return "no longer leading its term";
    member_assign_refresh_topology(m);
    if (aether_invariants_check_map(next, &as->topo, err) != AETHER_OK)
        return err->msg;
    return NULL;
}

void member_map_step_stored(aether_member *m, member_store_req *r)
{
    member_assign_state *as = m->as;
    AETHER_ASSERT(r->tag == MEMBER_ASSIGN_STORE_STEP && as->map_write_inflight);
    as->map_write_inflight = false;
    map_step *st = r->ctx;
    aether_shardmap *next = r->map;
    r->map = NULL;
    uint32_t S = m->cfg.shard_count;
    const char *void_why = void_reason(m, st);
    if (r->st != AETHER_OK || void_why != NULL) {
        /* Not stored: never published; what the step consumed is put back
         * and the next tick tries again. A store ahead of us
         * (AETHER_ESTALE) is read again before the next map. Stored but
         * void (a new generation: its bucket is read afresh; another map
         * installed: ours is not newer, or the store's compare-and-set
         * answers the next write): the same. */
        if (r->st == AETHER_ESTALE && as->gen_changes_seen == st->gen_changes)
            as->loaded_term = AETHER_TERM_NONE;
        if (r->st == AETHER_OK)
            AETHER_WARN(MEMBER_LOG, "%s: map v%llu stored but not installed: %s", m->cfg.node.str,
                        (unsigned long long)next->version, void_why);
        aether_shardmap_destroy(next);
        step_restore(as, S, st);
        return;
    }
    as->state_rev = r->state_rev;
    as->state_version = next->version;
    as->state_hash = r->hash;
    aether_err err = { .code = AETHER_OK, .msg = "" };
    const char *why = stale_reason(m, st, next, &err);
    if (why != NULL) {
        /* Stored (the state store is the authority: a node that reads it
         * installs it) but gone stale while its write was in flight: a
         * topology change committed meanwhile, say. It is installed here
         * and not published to the cluster; the next map, derived from it,
         * runs at once (map_write_done) and moves what it gave a node no
         * longer fit. Nothing announced yet names it (the barrier of any
         * departure in the snapshot waits for this run). */
        AETHER_WARN(MEMBER_LOG, "%s: map v%llu stored, not published: %s; the next map follows",
                    m->cfg.node.str, (unsigned long long)next->version, why);
        __atomic_add_fetch(&m->maps_unpublished, 1, __ATOMIC_RELAXED);
        if (!as->step_wanted) {
            as->step_wanted = true;
            snprintf(as->step_reason, sizeof(as->step_reason), "%s", "stale map");
        }
    } else {
        as->publish_pending = false;
    }
    open_session(m, st, st->reason, st->from_version);
    uint64_t version = next->version;
    if (why == NULL)
        (void)aether_transport_publish_map_json(m->deps.transport, next, r->value, r->len);
    if (!member_assign_adopt(m, next, false))
        return;
    AETHER_ASSERT(as->cur != NULL && as->cur->version == version);
    report_placements(m, st, version);
    after_publication(m, st, version);
}
