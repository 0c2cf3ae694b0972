/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_topo_store.c: the cluster actor's store requests (actors layer,
 * private to the cluster actor's files): the leader's topology writes
 * (commits), the take-over (policy 10: the stored map's terms, the stored
 * topology read and its key fenced, the changes nobody announced
 * announced), the settling of a write whose outcome was lost, a node's
 * re-reads of the stored topology, and the leader's write-backs.
 *
 * DESIGN: member_cluster_internal.h, "The cluster actor's store requests"
 * (one request in flight, what is held behind it, why nothing acts on a
 * stale view meanwhile). Each request is sent from one handler run and
 * finished in the run that handles its completion (member_topo_store_done):
 * what the synchronous call's caller did after the call is done there, on
 * what the request carried back.
 * Threading: cluster actor only. A request is the store actor's between
 * its two messages (member_store_internal.h); this file reads nothing of
 * it meanwhile.
 */
#include "member_cluster_internal.h"
#include "shardmap_codec.h"
#include "topology_json.h"

#include <stdlib.h>
#include <string.h>

static const char *io_name(cluster_io io)
{
    static const char *const names[] = {
        [CLUSTER_IO_NONE] = "none",          [CLUSTER_IO_COMMIT] = "commit",
        [CLUSTER_IO_SETTLE] = "settle",      [CLUSTER_IO_MAP_TERMS] = "map terms",
        [CLUSTER_IO_TAKEOVER] = "take-over", [CLUSTER_IO_RELOAD] = "reload",
        [CLUSTER_IO_REFENCE] = "write-back",
    };
    return (unsigned)io < sizeof(names) / sizeof(names[0]) ? names[io] : "?";
}

bool member_topo_store_holds(cluster_io io, uint16_t type)
{
    switch (io) {
    case CLUSTER_IO_NONE:
        return false;
    case CLUSTER_IO_REFENCE:
        /* Writes back what this actor holds, replacing nothing of it: only
         * decisions wait (the next write names the revision it leaves). */
        return type == MSG_COMMAND;
    case CLUSTER_IO_COMMIT:
    case CLUSTER_IO_SETTLE:
    case CLUSTER_IO_MAP_TERMS:
    case CLUSTER_IO_TAKEOVER:
    case CLUSTER_IO_RELOAD:
        /* Their completion replaces the topology (or decides whether it
         * may be used): nothing is applied to, or decided on, the one it
         * replaces. */
        return type == MSG_COMMAND || type == MSG_EVENT || type == MSG_LEADER_NOTE;
    }
    AETHER_ASSERT(!"cluster actor: unknown store request");
    return true;
}

/* Sends r as the request in flight, of kind io, for `term`. False (the
 * store actor's mailbox refused it: treated as a store that did not
 * answer): r freed, nothing in flight. */
static bool io_send(aether_member *m, member_store_req *r, cluster_io io, aether_term term)
{
    member_cluster_state *cs = m->cs;
    AETHER_ASSERT(cs->io == CLUSTER_IO_NONE && io != CLUSTER_IO_NONE);
    if (r == NULL)
        return false;
    r->tag = io;
    if (member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        return false;
    }
    cs->io = io;
    cs->io_term = term;
    cs->io_gen_changes = cs->gen_changes_seen;
    return true;
}

/* A MEMBER_STORE_TOPO_FENCE request carrying our topology (what is written
 * when the key is absent or of a lost generation). NULL: no memory. */
static member_store_req *fence_req(aether_member *m)
{
    member_store_req *r = member_store_req_new(MEMBER_STORE_TOPO_FENCE, m->cluster);
    if (r == NULL)
        return NULL;
    /* Stamped with the generation we act in (member_state.c, "Generations"). */
    uint64_t gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    if (aether_topology_json_encode_gen(&m->cs->topo, gen, &r->value, &r->len, NULL) != AETHER_OK) {
        member_store_req_free(r);
        return NULL;
    }
    r->state_gen = gen;
    r->state_version = m->cs->topo.version;
    return r;
}

/* ---- adopting the stored topology ------------------------------------------ */

/* Any node: adopt the stored topology read (st: the read's status; json,
 * len, rev: what it gave). We missed events (paused, cut off, started late,
 * or just elected): every change a leader announced is there (store first),
 * so it is never behind what we applied, and it is adopted even when its
 * version is not above ours (after a gap our version says little, and a
 * new leader starts from the store). True if the store answered. */
static bool adopt(aether_member *m, aether_status st, const char *json, size_t len, uint64_t rev)
{
    member_cluster_state *cs = m->cs;
    aether_topology t;
    if (st == AETHER_OK)
        st = member_state_topology_decode(m, json, len, 0, &t);
    if (st == AETHER_ENOTFOUND)
        cs->heard_init = true; /* nothing stored: whatever comes, events announce it */
    if (st != AETHER_OK)
        return st == AETHER_ESTALE || st == AETHER_ENOTFOUND || st == AETHER_EINVAL;
    if (!cs->heard_init) {
        aether_topology h;
        if (aether_topology_copy(&t, &h) == AETHER_OK) {
            aether_topology_fini(&cs->heard);
            cs->heard = h;
            cs->heard_init = true;
        }
    } else {
        /* A node the leader forgot (node_retention_ms) is gone from what we
         * heard too: bounded by what heard holds. */
        for (uint32_t i = cs->heard.count; i-- > 0;)
            if (aether_topology_find(&t, &cs->heard.nodes[i].id) == NULL)
                (void)aether_topology_remove(&cs->heard, &cs->heard.nodes[i].id);
    }
    t.leader = cs->topo.leader;
    t.term = cs->topo.term;
    aether_topology_fini(&cs->topo);
    cs->topo = t;
    cs->state_rev = rev;
    for (uint32_t i = 0; i < cs->topo.count; i++) { /* bounded: AETHER_TOPOLOGY_NODES_MAX */
        hb_entry *h = member_detect_hb_find(cs, &cs->topo.nodes[i].id, true);
        if (h != NULL && h->last_ns == 0)
            h->last_ns = member_now_ns(m);
    }
    /* A node the leader forgot is gone from here too. */
    member_detect_hb_prune(cs, member_now_ns(m), (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS);
    member_cluster_publish_self_status(m);
    return true;
}

/* ---- commits: a leader's change written --------------------------------------
 *
 * Leader: a change reaches the state store BEFORE anyone hears of it, so a
 * successor that takes over from the store never misses what a node saw.
 * The change is applied to a copy of the topology and the copy sent to the
 * store actor (member_topo_store_commit_send); only once it is stored
 * (commit_done) does the copy become ours, is the snapshot published and
 * are its events announced (member_announce_committed: member_internal.h,
 * step 1), and is the command that asked for it answered. Otherwise nothing
 * changed: the command is refused (its sender retries) or the leader tries
 * again later. */

member_topo_commit *member_topo_store_commit_new(aether_member *m, topo_commit_kind kind, aether_term term)
{
    member_topo_commit *tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return NULL;
    if (aether_topology_copy(&m->cs->topo, &tc->next) != AETHER_OK) {
        free(tc);
        return NULL;
    }
    tc->kind = kind;
    tc->term = term;
    tc->gen_changes = m->cs->gen_changes_seen;
    return tc;
}

/* Frees tc: its events released, its command (if any) answered st/why. */
static void commit_free(aether_member *m, member_topo_commit *tc, aether_status st, const aether_err *why)
{
    for (uint32_t i = 0; i < tc->n; i++)
        aether_event_release(tc->ev[i]);
    if (tc->box != NULL) {
        member_admit_answer(m, tc->box, st, why, false);
        member_cmd_box_free(tc->box);
    }
    aether_topology_fini(&tc->next);
    free(tc);
}

aether_status member_topo_store_commit_send(aether_member *m, member_topo_commit *tc, aether_err *why)
{
    member_cluster_state *cs = m->cs;
    AETHER_ASSERT(cs->io == CLUSTER_IO_NONE && cs->commit == NULL && tc->box == NULL);
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_PUT, m->cluster);
    uint64_t gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    aether_status st = r != NULL ? aether_topology_json_encode_gen(&tc->next, gen, &r->value, &r->len, NULL)
                                 : AETHER_ENOMEM;
    if (st == AETHER_OK) {
        snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_TOPOLOGY);
        r->state_gen = gen;
        r->state_version = tc->next.version;
        r->state_rev = cs->state_rev;
        if (!io_send(m, r, CLUSTER_IO_COMMIT, tc->term))
            st = AETHER_EFULL;
        r = NULL; /* io_send took it */
    }
    if (st != AETHER_OK) {
        member_store_req_free(r);
        aether_err_set(why, AETHER_EUNAVAILABLE,
                       "the change could not be recorded in the state store (%s); retry",
                       aether_status_str(st));
        commit_free(m, tc, AETHER_OK, NULL);
        return AETHER_EUNAVAILABLE;
    }
    cs->commit = tc;
    return AETHER_OK;
}

bool member_topo_store_busy(aether_member *m, aether_err *why)
{
    if (m->cs->io == CLUSTER_IO_NONE)
        return false;
    m->cs->failcheck_deferred = true;
    if (why != NULL)
        aether_err_set(why, AETHER_EUNAVAILABLE, "leader busy recording a change; retry");
    return true;
}

static void clear_doubt(member_cluster_state *cs)
{
    free(cs->doubt_json);
    cs->doubt_json = NULL;
    aether_event_release(cs->doubt_event);
    cs->doubt_event = NULL;
}

/* The store's answer to a commit (r): the change is ours, published and
 * announced, and its command answered; or it was not recorded. True if it
 * was. */
static bool commit_done(aether_member *m, member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    member_topo_commit *tc = cs->commit;
    AETHER_ASSERT(tc != NULL);
    cs->commit = NULL;
    aether_status st = r->st;
    if (tc->gen_changes != cs->gen_changes_seen) {
        /* A new generation began meanwhile (member_apply_follow_generation):
         * the topology is read from the store again before anything is
         * decided. */
        if (st == AETHER_OK)
            st = AETHER_ESTALE;
        cs->topo_dirty = true;
    } else {
        cs->state_rev = r->state_rev; /* as member_state_put left it */
    }
    if (st == AETHER_EUNKNOWN && tc->doubtable && cs->doubt_json == NULL) {
        /* It may land later: remember it; the settling (take-over step 0)
         * decides before we decide (or acknowledge) anything else. */
        cs->doubt_json = r->value;
        cs->doubt_len = r->len;
        cs->doubt_version = tc->next.version;
        cs->doubt_event = tc->n == 1 ? aether_event_retain(tc->ev[0]) : NULL;
        r->value = NULL;
    }
    if (st != AETHER_OK) {
        if (st == AETHER_ESTALE && tc->gen_changes == cs->gen_changes_seen)
            cs->loaded_term = AETHER_TERM_NONE; /* the store is ahead of us: read it first */
        aether_err why;
        aether_err_set(&why, AETHER_EUNAVAILABLE,
                       "the change could not be recorded in the state store (%s); retry",
                       aether_status_str(st));
        if (tc->kind == TOPO_COMMIT_FORGET)
            AETHER_WARN(MEMBER_LOG, "%s: could not forget %u departed node(s): %s", m->cfg.node.str,
                        tc->n_gone, why.msg);
        else if (tc->kind == TOPO_COMMIT_WRITE_BACK)
            cs->foreign_checked_ns = 0; /* again at the next check */
        else if (tc->box == NULL && tc->n > 0)
            AETHER_WARN(MEMBER_LOG, "%s: %s not recorded: %s", m->cfg.node.str,
                        aether_event_type_name(tc->ev[0]->type), why.msg);
        commit_free(m, tc, AETHER_EUNAVAILABLE, &why);
        return false;
    }
    aether_topology_fini(&cs->topo);
    cs->topo = tc->next;
    memset(&tc->next, 0, sizeof(tc->next));
    if (tc->kind == TOPO_COMMIT_WRITE_BACK) {
        AETHER_INFO(MEMBER_LOG, "%s: topology v%llu written back over a lost generation's",
                    m->cfg.node.str, (unsigned long long)cs->topo.version);
    } else if (tc->kind == TOPO_COMMIT_FORGET) {
        member_detect_hb_prune(cs, member_now_ns(m), (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS);
        member_cluster_publish_self_status(m);
        __atomic_add_fetch(&m->nodes_forgotten, tc->n_gone, __ATOMIC_RELAXED);
        for (uint32_t i = 0; i < tc->n_gone; i++)
            AETHER_INFO(MEMBER_LOG, "%s: forgot %s (departed %llu ms ago; node_retention_ms %u)",
                        m->cfg.node.str, tc->gone[i].str, (unsigned long long)tc->age_ms[i],
                        m->cfg.node_retention_ms);
    } else {
        for (uint32_t i = 0; i < tc->n; i++)
            member_detect_heard_if_joined(m, tc->ev[i]);
        if (tc->keepalive) {
            /* A keep-alive (or an admission) counts as a heartbeat: its
             * reply is the acknowledgement the node's serving right rests
             * on (member_cluster.c, step 2). */
            hb_entry *h = member_detect_hb_find(cs, &tc->join_id, true);
            if (h != NULL)
                h->last_ns = member_now_ns(m);
        }
        member_announce_committed(m, tc->ev, tc->n, tc->term); /* takes the events over */
        tc->n = 0;
    }
    commit_free(m, tc, AETHER_OK, NULL);
    return true;
}

/* ---- the take-over (policy 10) ----------------------------------------------- */

/* The event that takes `was` (NULL: a node we did not know) to `now`, if
 * a topology change explains the difference; NULL otherwise. */
static aether_event *change_event(const aether_node_info *was, const aether_node_info *now,
                                  uint64_t map_version)
{
    aether_event *e = NULL;
    if (was == NULL && now->status != AETHER_NODE_ACTIVE)
        return NULL; /* history of a node we never knew: nothing a consumer needs */
    bool rejoined = now->status == AETHER_NODE_ACTIVE &&
                    (was == NULL || was->status != AETHER_NODE_ACTIVE || was->incarnation != now->incarnation);
    if (rejoined) {
        if ((e = aether_event_create(AETHER_EVT_NODE_JOINED)) != NULL) {
            e->data.node_joined.node = now->id;
            snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "%s", now->address);
            snprintf(e->data.node_joined.zone, sizeof(e->data.node_joined.zone), "%s", now->zone);
            e->data.node_joined.incarnation = now->incarnation;
            e->data.node_joined.map_version = map_version;
        }
    } else if (was != NULL && was->status == now->status) {
        return NULL;
    } else if (now->status == AETHER_NODE_DRAINING) {
        if ((e = aether_event_create(AETHER_EVT_NODE_DRAINING)) != NULL)
            e->data.node_draining.node = now->id;
    } else if (now->status == AETHER_NODE_LEFT) {
        if ((e = aether_event_create(AETHER_EVT_NODE_LEFT)) != NULL)
            e->data.node_left.node = now->id;
    } else if (now->status == AETHER_NODE_FAILED) {
        if ((e = aether_event_create(AETHER_EVT_NODE_FAILED)) != NULL)
            e->data.node_failed.node = now->id; /* silent_ms 0: not measured by us */
    }
    return e;
}

/* A new leader announces, in its term, what the stored topology records
 * and what this node heard announced lacks (`before`: cs->heard): a change
 * its predecessor stored but never announced (its write timed out and
 * landed, then it lost the lease), even if this node adopted it from the
 * store while catching up, or one this node missed. Without it a consumer
 * of the events (and the observer of tools/chaos) would see shards leave a
 * node nobody declared Failed. Others may have applied some of them
 * already: applying again changes nothing. The snapshot that has them is
 * published already (adopt): they join the announcement queue, empty at
 * this point (member_topo_store_loaded), in `term` (member_internal.h,
 * "The leader's two commit points"). False if there is no room for them
 * (out of memory): nothing queued. */
static bool announce_stored_changes(aether_member *m, const aether_topology *before, aether_term term)
{
    member_cluster_state *cs = m->cs;
    uint64_t map_version = __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST);
    uint32_t n = 0;
    for (uint32_t pass = 0; pass < 2; pass++) { /* count (and make room), then queue */
        if (pass == 1 && (n == 0 || !member_announce_reserve(cs, n)))
            break;
        for (uint32_t i = 0; i < cs->topo.count; i++) { /* bounded: AETHER_TOPOLOGY_NODES_MAX */
            const aether_node_info *now = &cs->topo.nodes[i];
            if (aether_node_id_equal(&now->id, &m->cfg.node))
                continue; /* our own record: we know where we stand (a past run's Failed is history) */
            aether_event *e = change_event(aether_topology_find(before, &now->id), now, map_version);
            if (e == NULL)
                continue;
            if (pass == 0) {
                n++;
                aether_event_release(e);
            } else {
                member_announce_push(m, e, term);
            }
        }
    }
    if (n > 0 && cs->ann_count == 0)
        return false;
    if (n > 0)
        AETHER_INFO(MEMBER_LOG, "%s: announcing %u change(s) found in the stored topology", m->cfg.node.str, n);
    member_announce_flush(m);
    return true;
}

/* Quorum of configuration, step 2: the nodes the stored topology records
 * when the count begins (the electorate beside the nodes heard): every one
 * whose record carries its admission terms, and the healthy ones whose
 * record does not (member_shape.c, step 2d). */
static void shape_take_recorded(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    cs->n_shape_recorded = 0;
    for (uint32_t i = 0; i < cs->topo.count && cs->n_shape_recorded < SHAPE_VOTES_MAX; i++) {
        const aether_node_info *n = &cs->topo.nodes[i]; /* bounded: SHAPE_VOTES_MAX */
        bool said = n->terms.shard_count != 0;
        if (aether_node_id_equal(&n->id, &m->cfg.node) ||
            (!said && !aether_node_status_is_healthy(n->status)))
            continue;
        shape_record *r = &cs->shape_recorded[cs->n_shape_recorded++];
        r->id = n->id;
        r->said = said;
        r->agrees = said && aether_admission_check(&m->admission, &n->terms, NULL) == AETHER_OK;
    }
    cs->shape_recorded_taken = true;
}

bool member_topo_store_loaded(aether_member *m, aether_term term)
{
    member_cluster_state *cs = m->cs;
    if (cs->doubt_json == NULL && cs->loaded_term == term)
        return true;
    /* A leader that cannot serve the cluster's map decides nothing and
     * resigns: it neither fences nor announces. A failed step waits its
     * turn (io_retry_ns): a store that refuses at once must not turn every
     * command into a read. */
    if (cs->io != CLUSTER_IO_NONE || member_incompatible(m) || member_stood_down(m, term) ||
        member_now_ns(m) < cs->io_retry_ns)
        return false;
    if (cs->doubt_json != NULL) { /* step 0 */
        member_store_req *r = fence_req(m);
        if (r != NULL) {
            r->doubt = malloc(cs->doubt_len);
            if (r->doubt != NULL) {
                memcpy(r->doubt, cs->doubt_json, cs->doubt_len);
                r->doubt_len = cs->doubt_len;
                r->doubt_version = cs->doubt_version;
            }
        }
        if (r == NULL || r->doubt == NULL) {
            member_store_req_free(r);
            return false;
        }
        (void)io_send(m, r, CLUSTER_IO_SETTLE, term);
        return false;
    }
    /* Read the store only with nothing left to announce (a reload within
     * the term): what it has and `heard` lacks is then exactly what nobody
     * announced. A new term's queue holds only entries of ended terms,
     * dropped here (member_internal.h, step 5). */
    member_announce_flush(m);
    if (cs->ann_count > 0)
        return false;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_GET, m->cluster); /* step 1 */
    if (r != NULL)
        snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_MAP);
    (void)io_send(m, r, CLUSTER_IO_MAP_TERMS, term);
    return false;
}

/* Step 0 done. A topology write whose outcome was lost may be applied
 * whenever (a KV timeout), recording a change nobody announced - say
 * NodeFailed of a node we went on acknowledging. So, before any other
 * decision, the store actor read the key (MEMBER_STORE_TOPO_FENCE with the
 * in-doubt bytes):
 *  1. our in-doubt value there (RECORDED): it was applied: adopt it and
 *     announce the change now;
 *  2. another value stamped at or above it (SUPERSEDED): someone else
 *     wrote since; the in-doubt write can no longer apply; read the store
 *     again (the take-over's steps 1-2);
 *  3. otherwise what is there was rewritten at its revision (REWRITTEN),
 *     or ours written where there was none or a lost generation's (OURS):
 *     the key's revision moved, so the in-doubt write, which named the old
 *     revision (or expected the key absent), can never apply.
 * False if the doubt remains. */
static bool settle_done(aether_member *m, member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    if (cs->doubt_json == NULL)
        return true; /* settled meanwhile (cannot happen: one request at a time) */
    switch (r->fenced) {
    case MEMBER_STORE_FENCE_FAILED:
        return false;
    case MEMBER_STORE_FENCE_OURS:
    case MEMBER_STORE_FENCE_REWRITTEN:
        cs->state_rev = r->state_rev;
        clear_doubt(cs);
        return true;
    case MEMBER_STORE_FENCE_SUPERSEDED:
        clear_doubt(cs);
        cs->loaded_term = AETHER_TERM_NONE; /* someone else wrote since: read it */
        return true;
    case MEMBER_STORE_FENCE_RECORDED:
        break;
    }
    /* Settled only with nothing else to announce, and room for it: a
     * change that revives a node is announced before the snapshot has it
     * (member_internal.h, step 4). */
    if (cs->ann_count > 0 || !member_announce_reserve(cs, 1))
        return false;
    aether_event *e = cs->doubt_event;
    cs->doubt_event = NULL;
    clear_doubt(cs);
    aether_term term = AETHER_TERM_NONE;
    bool early = e != NULL && !member_announce_is_departure(e) && member_may_lead(m, &term);
    if (early) {
        AETHER_INFO(MEMBER_LOG, "%s: %s was recorded after all: announcing it", m->cfg.node.str,
                    aether_event_type_name(e->type));
        aether_event_retain(e);
        (void)member_emit(m, e, AETHER_TERM_NONE);
    }
    if (!adopt(m, AETHER_OK, r->got, r->got_len, r->got_rev)) { /* adopts it (and its revision) */
        aether_event_release(e);
        cs->loaded_term = AETHER_TERM_NONE;
        return false;
    }
    if (e == NULL) { /* a retention removal: no event announces it */
        AETHER_INFO(MEMBER_LOG, "%s: a topology change without an event was recorded after all",
                    m->cfg.node.str);
        return true;
    }
    member_detect_heard_if_joined(m, e);
    if (early) {
        member_cluster_notify_assign(m, e);
        aether_event_release(e);
        return true;
    }
    AETHER_INFO(MEMBER_LOG, "%s: %s was recorded after all: announcing it", m->cfg.node.str,
                aether_event_type_name(e->type));
    (void)member_may_lead(m, &term);
    member_announce_push(m, e, term); /* a departure: after the barrier (step 1) */
    member_announce_flush(m);
    return true;
}

/* Step 1 done. Admission starts with the leader itself: the stored map
 * says what the cluster runs (shard_count, replication). A leader that
 * differs (it won the lease before anyone could refuse it) must decide
 * nothing - not even its own admission - so this runs before the first
 * decision of each term. Then step 2 is sent. False if the store did not
 * answer (or step 2 could not be sent). */
static bool map_terms_done(aether_member *m, member_store_req *r, aether_term term)
{
    member_cluster_state *cs = m->cs;
    aether_term now_term;
    if (!member_may_lead(m, &now_term) || now_term != term)
        return true; /* that term ended: the next take-over starts afresh */
    bool absent = r->st == AETHER_ENOTFOUND; /* a new cluster, or the state bucket lost:
                                                see member_shape_newcomer_refuses */
    if (r->st != AETHER_OK && !absent)
        return false;
    aether_shardmap *stored = NULL;
    aether_err err;
    uint64_t gen = 0;
    if (!absent && aether_shardmap_codec_decode(r->value, r->len, &stored, &gen, &err) == AETHER_OK) {
        aether_status st = member_state_generation_check(m, MEMBER_STATE_MAP, gen, stored->version);
        if (st == AETHER_EUNAVAILABLE) {
            aether_shardmap_destroy(stored);
            return false; /* we follow no generation yet: ask again later */
        }
        /* A lost generation's map (member_state.c, "Generations"): none of
         * ours is stored. */
        absent = st == AETHER_ESTALE;
        if (!absent && (stored->shard_count != m->cfg.shard_count ||
                        stored->replication != m->cfg.replication)) {
            if (!__atomic_exchange_n(&m->map_incompatible, 1, __ATOMIC_SEQ_CST))
                AETHER_ERROR(MEMBER_LOG,
                             "%s: the stored map v%llu has %u shards and replication %u, this node "
                             "is configured for %u shards and replication %u: not leading this "
                             "cluster",
                             m->cfg.node.str, (unsigned long long)stored->version,
                             stored->shard_count, stored->replication, m->cfg.shard_count,
                             m->cfg.replication);
        }
        aether_shardmap_destroy(stored);
    } /* else unreadable: the assign actor says so and does not adopt it */
    if (member_incompatible(m))
        return true; /* not a leader for this cluster: it neither fences nor announces */
    /* No stored map, and none held: nothing says our terms are the
     * cluster's (member_shape_newcomer_refuses). */
    cs->newcomer_term = absent && __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST) == 0
                            ? term : AETHER_TERM_NONE;
    if (absent && cs->shape_term != term) { /* Quorum of configuration: count afresh */
        cs->shape_term = term;
        cs->shape_since_ns = member_now_ns(m);
        cs->shape_heard_ns = 0;
        cs->n_shape_votes = 0;
        cs->n_shape_recorded = 0;
        cs->shape_recorded_taken = false;
        __atomic_store_n(&m->shape_blocked_term, AETHER_TERM_NONE, __ATOMIC_SEQ_CST);
    } else if (!absent) {
        cs->shape_term = AETHER_TERM_NONE;
    }
    /* Read, then fence, in one request: rewriting the key at the revision
     * read moves it, so a write of the previous leader still in flight (a
     * timed-out one) can never land after what we read. */
    return io_send(m, fence_req(m), CLUSTER_IO_TAKEOVER, term);
}

/* Step 2 done: the stored topology adopted, the key fenced; the changes
 * nobody announced are announced and the assign actor may take over. */
static bool takeover_done(aether_member *m, member_store_req *r, aether_term term)
{
    member_cluster_state *cs = m->cs;
    bool read = false;
    if (r->fenced == MEMBER_STORE_FENCE_OURS)
        read = adopt(m, AETHER_ENOTFOUND, NULL, 0, 0); /* none of ours stored */
    else if (r->got != NULL)
        read = adopt(m, AETHER_OK, r->got, r->got_len, r->got_rev);
    if (!read || (r->fenced != MEMBER_STORE_FENCE_OURS && r->fenced != MEMBER_STORE_FENCE_REWRITTEN))
        return false;
    cs->state_rev = r->state_rev;
    aether_term now_term;
    if (!member_may_lead(m, &now_term) || now_term != term || member_incompatible(m))
        return true; /* adopted; that term's take-over is over */
    if (cs->shape_term == term && !cs->shape_recorded_taken)
        shape_take_recorded(m);
    member_cluster_publish_self_status(m); /* the assign actor takes over from this snapshot */
    if (!announce_stored_changes(m, &cs->heard, term))
        return false;
    cs->loaded_term = term;
    cs->topo_dirty = false;
    /* The assign actor takes over once they are announced: no map of this
     * term comes before a NodeJoined it found (step 4). */
    if (cs->ann_count > 0)
        cs->loaded_pending_term = term;
    else
        __atomic_store_n(&m->topo_loaded_term, term, __ATOMIC_RELEASE);
    return true;
}

/* ---- re-reads and write-backs --------------------------------------------------- */

bool member_topo_store_reload(aether_member *m, cluster_reload_for why, const aether_event *e,
                              bool taken, uint64_t reports)
{
    member_cluster_state *cs = m->cs;
    if (cs->io != CLUSTER_IO_NONE)
        return false; /* as a store that did not answer: the caller's fallback */
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_GET, m->cluster);
    if (r != NULL)
        snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_TOPOLOGY);
    if (!io_send(m, r, CLUSTER_IO_RELOAD, AETHER_TERM_NONE))
        return false;
    cs->io_for = why;
    cs->io_event = e != NULL ? aether_event_retain((aether_event *)e) : NULL;
    cs->io_taken = taken;
    cs->io_reports = reports;
    return true;
}

void member_topo_store_refence(aether_member *m, aether_term term)
{
    member_cluster_state *cs = m->cs;
    uint64_t lost = __atomic_load_n(&m->state_lost_gen, __ATOMIC_RELAXED);
    if (lost == cs->state_lost_seen || cs->io != CLUSTER_IO_NONE)
        return;
    if (io_send(m, fence_req(m), CLUSTER_IO_REFENCE, term))
        cs->io_lost = lost;
}

/* The state bucket was lost and the lease actor recorded our term again
 * (member_lease.c, step 6): our topology is written back (created from
 * ours where the key is absent). A failure is retried at the next check. */
static bool refence_done(aether_member *m, member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    if (r->fenced != MEMBER_STORE_FENCE_OURS && r->fenced != MEMBER_STORE_FENCE_REWRITTEN)
        return false;
    cs->state_rev = r->state_rev;
    cs->state_lost_seen = cs->io_lost;
    AETHER_INFO(MEMBER_LOG, "%s: topology v%llu written back to the state store", m->cfg.node.str,
                (unsigned long long)cs->topo.version);
    return true;
}

void member_topo_store_check_foreign(aether_member *m, uint64_t now)
{
    member_cluster_state *cs = m->cs;
    if (cs->foreign_inflight ||
        now - cs->foreign_checked_ns < (uint64_t)m->cfg.lease_ttl_ms * AETHER_NS_PER_MS)
        return;
    cs->foreign_checked_ns = now;
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_FOREIGN, m->cluster);
    if (r == NULL)
        return;
    snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_TOPOLOGY);
    r->tag = CLUSTER_STORE_FOREIGN_TAG;
    r->state_rev = cs->state_rev;
    if (member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        cs->foreign_checked_ns = 0; /* again at the next check */
        return;
    }
    cs->foreign_inflight = true;
}

/* The foreign test is done: a lost generation's topology over ours is
 * overwritten with the topology we hold, stored again (no change, nothing
 * to announce, nothing the assign actor must see first), as a commit of its
 * own, once no request is in flight. */
static void foreign_checked(aether_member *m, const member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    cs->foreign_inflight = false;
    aether_term term;
    if (!r->foreign || !member_may_lead(m, &term))
        return;
    aether_err why;
    member_topo_commit *tc = !member_topo_store_busy(m, &why)
                                 ? member_topo_store_commit_new(m, TOPO_COMMIT_WRITE_BACK, term)
                                 : NULL;
    if (tc == NULL || member_topo_store_commit_send(m, tc, &why) != AETHER_OK)
        cs->foreign_checked_ns = 0; /* again at the next check */
}

/* ---- completions ---------------------------------------------------------------- */

void member_topo_store_done(aether_member *m, member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    if (r->tag == CLUSTER_STORE_FOREIGN_TAG) {
        foreign_checked(m, r);
        return;
    }
    /* One request in flight, and the store actor answers in order: this is
     * its completion (member_store_internal.h, step 3). */
    cluster_io io = cs->io;
    AETHER_ASSERT(io != CLUSTER_IO_NONE && r->tag == (uint64_t)io);
    aether_term term = cs->io_term;
    bool same_gen = cs->io_gen_changes == cs->gen_changes_seen;
    cs->io = CLUSTER_IO_NONE;
    bool ok = true;
    switch (io) {
    case CLUSTER_IO_COMMIT:
        ok = commit_done(m, r); /* its own test of the generation */
        break;
    case CLUSTER_IO_SETTLE:
        ok = settle_done(m, r);
        break;
    case CLUSTER_IO_MAP_TERMS:
        ok = !same_gen || map_terms_done(m, r, term);
        break;
    case CLUSTER_IO_TAKEOVER:
        ok = !same_gen || takeover_done(m, r, term);
        break;
    case CLUSTER_IO_RELOAD: {
        aether_event *e = cs->io_event;
        cs->io_event = NULL;
        /* Read before a new generation began: its bytes are of the old
         * bucket; the continuation runs as if the store had not answered
         * (topo_dirty, set by the change, reads it again). */
        bool answered = same_gen && adopt(m, r->st, r->value, r->len, r->state_rev);
        member_apply_reloaded(m, cs->io_for, e, cs->io_taken, cs->io_reports, answered);
        aether_event_release(e);
        break;
    }
    case CLUSTER_IO_REFENCE:
        ok = !same_gen || refence_done(m, r);
        break;
    case CLUSTER_IO_NONE:
        AETHER_ASSERT(!"cluster actor: a completion with nothing in flight");
    }
    if (!ok) {
        AETHER_DEBUG(MEMBER_LOG, "%s: topology %s not done (%s)", m->cfg.node.str, io_name(io),
                     aether_status_str(r->st));
        if (io != CLUSTER_IO_COMMIT && io != CLUSTER_IO_RELOAD)
            cs->io_retry_ns = member_now_ns(m) + (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    }
    /* The take-over's next step, if one is due (it holds what waits). */
    aether_term lead;
    if (cs->io == CLUSTER_IO_NONE && member_may_lead(m, &lead))
        (void)member_topo_store_loaded(m, lead);
    /* What came meanwhile, in order, up to the next request that holds it. */
    member_cluster_drain(m);
    /* A failure check the request put off runs now, if it went through
     * (after a failure the check's own cadence retries: a store that
     * refuses at once must not turn the check into a busy loop). */
    if (cs->io == CLUSTER_IO_NONE && cs->failcheck_deferred && ok) {
        cs->failcheck_deferred = false;
        member_detect_failcheck_at(m, member_now_ns(m) + 1); /* at least FAILCHECK_SLACK_NS away */
    }
}

void member_topo_store_fini(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    aether_err closed;
    aether_err_set(&closed, AETHER_ECLOSED, "leader stopped");
    if (cs->commit != NULL)
        commit_free(m, cs->commit, AETHER_ECLOSED, &closed);
    cs->commit = NULL;
    aether_event_release(cs->io_event);
    cs->io_event = NULL;
    clear_doubt(cs);
}
