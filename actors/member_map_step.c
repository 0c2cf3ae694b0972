/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_map_step.c: the leader's map step (actors layer, part of the
 * ShardAssignment actor: member_assign_internal.h).
 *
 * DESIGN: member_assign.c, steps 4 to 6. One step derives the next map
 * from the current one towards the strategy's target in two passes (the
 * shards Releasing, then the rest), within max_concurrent_handoffs; checks
 * it against I2/I3 and the topology it came from; records it in the state
 * store; then publishes, installs and reports it. A map that cannot be
 * recorded is never published and what the step consumed is put back.
 * The commit lies within one handler run: member_internal.h, "The
 * leader's two commit points", step 2.
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
 * flight. Lives for one call of member_map_step_commit. */
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
} map_step;

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

/* The step's map was not recorded, so not published: what it consumed is
 * put back as step_save found it; tick_check tries again. */
static void step_restore(member_assign_state *as, uint32_t shard_count, const map_step *st)
{
    memcpy(as->done, as->save_done, shard_count);
    memcpy(as->moving_since_ns, as->save_moving_since, (size_t)shard_count * sizeof(uint64_t));
    memcpy(as->move_version, as->save_move_version, (size_t)shard_count * sizeof(uint64_t));
    as->n_done = st->save_n_done;
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

/* Records *next in the state store (member_assign_write_state). On AETHER_OK *json is
 * what to publish (the caller frees it); on failure *next is destroyed
 * (NULL), and a store ahead of us (AETHER_ESTALE) is read again before the
 * next map (loaded_term). */
static aether_status record_map(aether_member *m, aether_shardmap **next, char **json, size_t *len)
{
    aether_status rc = member_assign_write_state(m, *next, json, len);
    if (rc != AETHER_OK) {
        aether_shardmap_destroy(*next);
        *next = NULL;
    }
    if (rc == AETHER_ESTALE)
        m->as->loaded_term = AETHER_TERM_NONE; /* the store is ahead of us: read it again */
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
 * towards the target (pass_moving, pass_stable), checks it, records it,
 * publishes and applies it, and emits the events. Nothing if it would
 * change nothing. With as->topo just refreshed in the same handler run
 * (advance, release_brake: member_internal.h, step 2). */
void member_map_step_commit(aether_member *m, const char *reason)
{
    member_assign_state *as = m->as;
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
    uint64_t from_version = st.cur ? st.cur->version : 0;
    aether_shardmap *next = NULL;
    char *json = NULL;
    size_t json_len = 0;
    rc = build_checked(m, &st, term, &next);
    AETHER_DEEP_ASSERT(rc != AETHER_OK || map_step_is_valid(&st, next));
    if (rc == AETHER_OK)
        rc = record_map(m, &next, &json, &json_len);
    if (rc != AETHER_OK) {
        step_restore(as, S, &st);
        free(st.done);
        return;
    }
    as->publish_pending = false;
    open_session(m, &st, reason, from_version);
    uint64_t version = next->version;
    (void)aether_transport_publish_map_json(m->deps.transport, next, json, json_len);
    free(json);
    if (!member_assign_adopt(m, next, false)) {
        free(st.done);
        return;
    }
    AETHER_ASSERT(as->cur != NULL && as->cur->version == version);
    report_placements(m, &st, version);
    free(st.done);
    after_publication(m, &st, version);
}
