/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member.c: a member's lifecycle, its transport sink, and the stamping and
 * fan-out of events (actors layer). See member.h and member_internal.h.
 */
#include "member_internal.h"
#include "member_store_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>
#if !defined(CK_F_PR_CAS_64_2_VALUE) || !defined(CK_F_PR_LOAD_64_2)
#error "member.c stamps events with ck's double-width compare-and-set (x86_64, aarch64)"
#endif

#include "executor.h"
#include "topology_json.h"

static void leader_view_free(aether_snapshot *s) { free(s); }

/* A change to the leader view: edit gets a copy of the current one (zeros
 * if none) and says whether it changed anything (and *ok, its verdict);
 * the copy replaces the current view by compare-and-set, again on a race.
 * Lock-free: any thread (actors, transport callbacks), bounded by the other
 * writers' progress. Returns edit's verdict. */
static bool leader_view_update(aether_member *m, bool (*edit)(member_leader_view *v, const void *arg, bool *ok),
                               const void *arg)
{
    bool ok = true;
    aether_rcu_read_lock();
    for (;;) { /* bounded: each failed round means another writer succeeded */
        const member_leader_view *cur = (const member_leader_view *)aether_snapshot_current(&m->leader_view);
        member_leader_view draft; /* on the stack: most calls change nothing */
        if (cur != NULL)
            draft = *cur;
        else
            memset(&draft, 0, sizeof(draft));
        if (!edit(&draft, arg, &ok))
            break;
        member_leader_view *next = malloc(sizeof(*next));
        if (next == NULL) {
            AETHER_ERROR(MEMBER_LOG, "%s: out of memory updating the leader view", m->cfg.node.str);
            ok = false;
            break;
        }
        *next = draft;
        next->base.free_fn = leader_view_free;
        if (aether_snapshot_replace(&m->leader_view, cur != NULL ? &cur->base : NULL, &next->base))
            break;
        free(next);
    }
    aether_rcu_read_unlock();
    return ok;
}

static bool view_clear(member_leader_view *v, const void *arg, bool *ok)
{
    (void)arg;
    (void)ok;
    bool changed = v->view_term != 0 || v->speaker_term != 0 || v->view_leader.len != 0 || v->speaker.len != 0;
    memset(&v->view_term, 0, sizeof(*v) - offsetof(member_leader_view, view_term));
    return changed;
}

/* A new generation: terms start again, so does the stamping (stamp_next). */
static void stamp_reset(aether_member *m)
{
    uint64_t cur[2], zero[2] = { 0, 0 };
    ck_pr_load_64_2(m->stamp, cur);
    while (!ck_pr_cas_64_2_value(m->stamp, cur, zero, cur))
        ; /* bounded by the emitters' progress */
}

/* ---- helpers shared by the actors ---------------------------------------- */

bool member_may_lead(const aether_member *m, aether_term *term_out)
{
    aether_term t = __atomic_load_n(&m->leading_term, __ATOMIC_ACQUIRE);
    if (t == AETHER_TERM_NONE)
        return false;
    if (member_now_ns(m) >= __atomic_load_n(&m->lease_deadline_ns, __ATOMIC_ACQUIRE))
        return false; /* the lease may have lapsed: stop at once (I1) */
    if (term_out != NULL)
        *term_out = t;
    return true;
}

void member_note_term(aether_member *m, aether_term term)
{
    uint64_t cur = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
    while (term > cur &&
           !__atomic_compare_exchange_n(&m->highest_term, &cur, term, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

bool member_adopt_generation(aether_member *m, uint64_t gen, aether_term recorded, aether_term seen_before)
{
    uint64_t old = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    if (gen == 0 || gen == old)
        return false;
    /* The generation first: from here events of the old one are dropped at
     * the door, so none raises a baseline after the reset below. */
    __atomic_store_n(&m->generation, gen, __ATOMIC_SEQ_CST);
    /* The first one this process reads: the terms it has seen so far are of
     * this generation only if none is above its record (a term is recorded
     * before it is acted on); one above was of a generation since lost. */
    uint64_t seen = seen_before;
    if (old == 0 && seen <= recorded)
        return false;
    __atomic_store_n(&m->highest_term, recorded, __ATOMIC_RELAXED);
    stamp_reset(m);
    (void)leader_view_update(m, view_clear, NULL);
    uint64_t n = __atomic_add_fetch(&m->generation_changes, 1, __ATOMIC_RELAXED);
    if (old != 0)
        AETHER_WARN(MEMBER_LOG, "%s: generation changed from %016llx to %016llx: the store was lost "
                    "(terms are compared within a generation; the record there is term %llu) "
                    "(%llu so far)",
                    m->cfg.node.str, (unsigned long long)old, (unsigned long long)gen,
                    (unsigned long long)recorded, (unsigned long long)n);
    else
        AETHER_WARN(MEMBER_LOG, "%s: generation changed from an unknown one to %016llx: the store "
                    "was lost (this node saw term %llu, above the record there, term %llu) "
                    "(%llu so far)",
                    m->cfg.node.str, (unsigned long long)gen, (unsigned long long)seen,
                    (unsigned long long)recorded, (unsigned long long)n);
    return true;
}

void member_check_generation(aether_member *m)
{
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&m->generation_check, &expected, 1, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return; /* one is queued already */
    aether_msg msg = { .type = MSG_GENERATION_CHECK };
    if (aether_actor_send(m->lease, &msg) != AETHER_OK)
        __atomic_store_n(&m->generation_check, 0, __ATOMIC_SEQ_CST); /* full: the next one asks */
}

typedef struct leader_note {
    const aether_node_id *leader;
    aether_term term;
} leader_note;

static bool view_note(member_leader_view *v, const void *arg, bool *ok)
{
    const leader_note *n = arg;
    (void)ok;
    bool changed = false;
    if (n->leader != NULL && n->leader->len > 0 && n->term > v->speaker_term) {
        v->speaker_term = n->term;
        v->speaker = *n->leader;
        changed = true;
    }
    if (n->term >= v->view_term) {
        v->view_term = n->term;
        if (n->leader != NULL)
            v->view_leader = *n->leader;
        else
            memset(&v->view_leader, 0, sizeof(v->view_leader));
        changed = true;
    }
    return changed;
}

void member_set_leader_view(aether_member *m, const aether_node_id *leader, aether_term term)
{
    leader_note n = { leader, term };
    (void)leader_view_update(m, view_note, &n);
}

void member_notify_leader(aether_member *m, const aether_node_id *leader, aether_term term)
{
    __atomic_add_fetch(&m->leader_changes, 1, __ATOMIC_RELAXED);
    if (m->cb.on_leader_changed == NULL)
        return;
    member_leader_box *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        AETHER_ERROR(MEMBER_LOG, "%s: out of memory telling the embedder of leader term %llu",
                     m->cfg.node.str, (unsigned long long)term);
        return;
    }
    if (leader != NULL)
        b->leader = *leader;
    b->term = term;
    b->generation_changes = __atomic_load_n(&m->generation_changes, __ATOMIC_RELAXED);
    (void)member_send_owned(m, m->cluster, MSG_LEADER_NOTE, b);
}

aether_status member_send_owned(aether_member *m, aether_actor *a, uint16_t type, void *payload)
{
    aether_msg msg = { .type = type, .ptr = payload };
    aether_status st = aether_actor_send(a, &msg);
    if (st != AETHER_OK) {
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->send_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: message %u to %s refused (%s) [%llu more suppressed]",
                        m->cfg.node.str, type, aether_actor_name(a), aether_status_str(st),
                        (unsigned long long)suppressed);
        free(payload);
    }
    return st;
}

void member_cmd_box_free(member_cmd_box *b)
{
    if (b == NULL)
        return;
    if (b->inflight != NULL)
        __atomic_sub_fetch(b->inflight, 1, __ATOMIC_RELAXED);
    free(b);
}

void member_send_tick(aether_actor *a, uint16_t type, uint64_t arg)
{
    aether_msg msg = { .type = type, .arg64 = arg };
    /* Not only ticks go this way (MSG_SUPERSEDED, MSG_LEASE_START): a full
     * mailbox lists it in order (actor.h step 1b); only a closed actor (this
     * member stopping) refuses it. */
    (void)aether_actor_send(a, &msg);
}

aether_status member_state_topology_decode(aether_member *m, const char *json, size_t len,
                                           uint64_t than_version, aether_topology *out)
{
    aether_err err;
    uint64_t gen = 0;
    aether_topology_init(out, &m->cfg.node);
    aether_status st = aether_topology_json_decode_gen(json, len, out, &gen, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(MEMBER_LOG, "%s: stored topology unreadable: %s", m->cfg.node.str, err.msg);
    } else if ((st = member_state_generation_check(m, MEMBER_STATE_TOPOLOGY, gen, out->version)) !=
               AETHER_OK) {
        /* A lost generation's (member_state.c, "Generations"): none of ours
         * is stored; or we follow none yet: as if the store did not answer. */
        if (st == AETHER_ESTALE)
            st = AETHER_ENOTFOUND;
    } else if (out->version <= than_version) {
        st = AETHER_ESTALE;
    } else {
        member_check_self_down(m, out);
        return AETHER_OK;
    }
    aether_topology_fini(out);
    return st;
}

/* Local fan-out: the bus hands e to every actor whose mask wants it. Every
 * event this node sees, its own or another's, passes here first. */
static void deliver_local(aether_member *m, const aether_event *e)
{
    /* The leader publishes NodeFailed/NodeLeft before the map that gives our
     * shards away; flag it here, on the transport thread, so we stop serving
     * (aether_member_may_serve) before our actors even see it. */
    if ((e->type == AETHER_EVT_NODE_FAILED && aether_node_id_equal(&e->data.node_failed.node, &m->cfg.node)) ||
        (e->type == AETHER_EVT_NODE_LEFT && aether_node_id_equal(&e->data.node_left.node, &m->cfg.node))) {
        /* Count first, then flag: a refutation read before this report
         * (MSG_SELF_REFUTED) then never clears the flag it set. */
        __atomic_add_fetch(&m->self_down_reports, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&m->self_down, 1, __ATOMIC_SEQ_CST);
    }
    /* Cleared only by the assign actor, after it has released what it held
     * from before (a comeback must not revive stale shards), or when the
     * stored topology says the report was not the leader's (the cluster
     * actor checks every such report from another node against it). */

    /* Events are facts in order: never coalesced. A full mailbox holds the
     * event in the actor's overflow list (bus.h, actor.h step 1b), counted
     * in aether_mailbox_full_total{actor=...}; what fails here is only a
     * closed actor (this member stopping) or an overflow list at its memory
     * bound, which the bus counts (aether_bus_failed_deliveries_total). */
    aether_msg msg = { .type = MSG_EVENT, .flags = AETHER_MSG_REF, .ptr = (void *)&e->ref };
    uint32_t failed = aether_bus_publish(m->bus, aether_event_topic(e->type), &msg);
    if (failed > 0)
        AETHER_WARN(MEMBER_LOG, "%s: %u local deliveries of %s failed (actor closed or its "
                    "overflow list full; see aether_bus_failed_deliveries_total)",
                    m->cfg.node.str, failed, aether_event_type_name(e->type));
}

/* DESIGN 7: lease renewals and failures, counted where this node's own
 * lease events are stamped. A LeadershipLost while this node is Draining or
 * Left is the resign of policy 9, not a failure. */
static void count_lease_event(aether_member *m, const aether_event *e)
{
    if (e->type == AETHER_EVT_LEASE_RENEWED) {
        __atomic_add_fetch(&m->lease_renewals, 1, __ATOMIC_RELAXED);
    } else if (e->type == AETHER_EVT_LEADERSHIP_LOST) {
        aether_node_status st;
        if (!member_self_status(m, &st) || (st != AETHER_NODE_DRAINING && st != AETHER_NODE_LEFT))
            __atomic_add_fetch(&m->lease_failures, 1, __ATOMIC_RELAXED);
    }
}

/* The next seq of term for this node's events: 1 for a term above the last
 * stamped, the last + 1 for the same; 0 for an older term (refused). Any
 * of the emitting actors, lock-free: one {term, seq} pair, compare-and-set
 * as a whole; bounded by the other emitters' progress. */
static uint64_t stamp_next(aether_member *m, aether_term term)
{
    uint64_t cur[2], next[2];
    ck_pr_load_64_2(m->stamp, cur);
    do {
        if (term < cur[0])
            return 0;
        next[0] = term;
        next[1] = term > cur[0] ? 1 : cur[1] + 1;
    } while (!ck_pr_cas_64_2_value(m->stamp, cur, next, cur));
    return next[1];
}

/* A heartbeat's stamp: seq 0 (outside the numbering), refused (false) for
 * a term older than the last stamped, like stamp_next. */
static bool stamp_heartbeat(aether_member *m, aether_term term)
{
    uint64_t cur[2];
    ck_pr_load_64_2(m->stamp, cur);
    return term >= cur[0];
}

aether_status member_emit(aether_member *m, aether_event *e, aether_term force_term)
{
    aether_term term = force_term;
    if (term == AETHER_TERM_NONE && !member_may_lead(m, &term)) {
        aether_event_release(e);
        return AETHER_ENOTLEADER;
    }
    /* LeaseRenewed is a heartbeat outside the per-term numbering (seq 0,
     * events.h): the event stream does not store it (DESIGN 2), and a
     * numbered renewal would leave a gap there at every renewal. Followers
     * learn of a missed change from its map and topology versions. */
    bool heartbeat = e->type == AETHER_EVT_LEASE_RENEWED;
    uint64_t seq = heartbeat ? 0 : stamp_next(m, term);
    if (heartbeat ? !stamp_heartbeat(m, term) : seq == 0) {
        aether_event_release(e);
        return AETHER_ESTALE;
    }
    e->seq = seq;
    e->generation = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    count_lease_event(m, e);
    e->term = term;
    e->node = m->cfg.node;
    snprintf(e->cluster, sizeof(e->cluster), "%s", m->cfg.cluster);
    if (e->ts_ms == 0)
        e->ts_ms = aether_clock_wall_ms(m->clock);
    deliver_local(m, e);
    aether_status st = aether_transport_publish_event(m->deps.transport, e);
    if (st != AETHER_OK)
        AETHER_WARN(MEMBER_LOG, "%s: publishing %s failed (%s)", m->cfg.node.str,
                    aether_event_type_name(e->type), aether_status_str(st));
    aether_event_release(e);
    return AETHER_OK;
}

/* ---- transport sink (transport threads: only enqueue) --------------------- */

/* Every event is issued by the leader of its term (DESIGN, wire shapes).
 * A remote event is admitted only if its emitter speaks for its term: the
 * LeaderElected of term T names its own emitter and binds T to it; later
 * events of T must come from that node; a node that learns of T mid-term
 * (no LeaderElected seen) binds T to the first emitter it hears, which
 * the lease makes the only one that can be stamping T. LeaderElected and
 * LeadershipLost must name their emitter and their envelope's term, and
 * neither may speak for this node: its own leadership it knows first-hand.
 * Transport thread; lock-free (leader_view_update). */
/* speaks_for_term's edit: binds e's term to its emitter if the term is
 * newer than the bound one; *ok false if the term is bound to another. */
static bool view_bind_speaker(member_leader_view *v, const void *arg, bool *ok)
{
    const aether_event *e = arg;
    if (e->term > v->speaker_term) {
        v->speaker_term = e->term;
        v->speaker = e->node;
        return true;
    }
    if (e->term == v->speaker_term && !aether_node_id_equal(&e->node, &v->speaker))
        *ok = false;
    return false;
}

static bool speaks_for_term(aether_member *m, const aether_event *e, const char **why)
{
    const aether_node_id *named = NULL;
    aether_term named_term = e->term;
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        named = &e->data.leader_elected.leader;
        named_term = e->data.leader_elected.term;
    } else if (e->type == AETHER_EVT_LEADERSHIP_LOST) {
        named = &e->data.leadership_lost.leader;
        named_term = e->data.leadership_lost.term;
    }
    if (named != NULL) {
        if (!aether_node_id_equal(named, &e->node) || named_term != e->term) {
            *why = "names another node or term than its envelope";
            return false;
        }
        if (aether_node_id_equal(named, &m->cfg.node)) {
            *why = "speaks for this node";
            return false;
        }
    }
    if (!leader_view_update(m, view_bind_speaker, e)) {
        *why = "its emitter does not lead that term";
        return false;
    }
    return true;
}

bool member_speaker_bound(aether_member *m, aether_term term)
{
    aether_rcu_read_lock();
    const member_leader_view *v = (const member_leader_view *)aether_snapshot_current(&m->leader_view);
    bool bound = v != NULL && v->speaker_term >= term && v->speaker.len > 0;
    aether_rcu_read_unlock();
    return bound;
}

void member_admit_event(aether_member *m, const aether_event *e)
{
    const char *why = NULL;
    if (e->term >= __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED) && !speaks_for_term(m, e, &why)) {
        __atomic_add_fetch(&m->impostor_dropped, 1, __ATOMIC_RELAXED);
        AETHER_WARN(MEMBER_LOG, "%s: dropped %s of term %llu from %s: %s", m->cfg.node.str,
                    aether_event_type_name(e->type), (unsigned long long)e->term, e->node.str, why);
        return;
    }
    if (e->term < __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&m->stale_dropped, 1, __ATOMIC_RELAXED);
        AETHER_DEBUG(MEMBER_LOG, "%s: dropped %s of term %llu (seen %llu)", m->cfg.node.str,
                     aether_event_type_name(e->type), (unsigned long long)e->term,
                     (unsigned long long)__atomic_load_n(&m->highest_term, __ATOMIC_RELAXED));
        return;
    }
    member_note_term(m, e->term);
    /* A LeaseRenewed's map version counts against this node only once the
     * assign actor finds the store backing it (member_assign.c, announced). */
    deliver_local(m, e);
}

void member_claim_dropped(aether_member *m, const aether_event *e, const char *reason, const char *why)
{
    uint64_t *counter = strcmp(reason, "term_unconfirmed") == 0 ? &m->forged_term_dropped
                        : strcmp(reason, "term_leader") == 0    ? &m->forged_leader_dropped
                                                                : &m->claims_unverified;
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&m->claim_log, member_now_ns(m), &suppressed))
        AETHER_WARN(MEMBER_LOG, "%s: dropped %s of term %llu from %s (%s): %s [%llu more suppressed]",
                    m->cfg.node.str, aether_event_type_name(e->type), (unsigned long long)e->term,
                    e->node.str, reason, why, (unsigned long long)suppressed);
}

/* DESIGN 2.4: a term above every one this node knows is a claim, believed
 * only once the lease store confirms it. The check is the lease actor's
 * (it reads the stores; member_lease.c, judge_claim): the event goes there
 * and is admitted or dropped when the answer is in; this thread never
 * waits. A term the store refuted within the last window is dropped here
 * without asking again, so a flood of one forged term costs one read per
 * window. raising: e's term is above the highest; else it only queues
 * behind claims for order. False: not queued, the caller admits it. */
static bool claim_term(aether_member *m, const aether_event *e, bool raising)
{
    if (raising) {
        uint64_t until = __atomic_load_n(&m->term_refuted_until_ns, __ATOMIC_RELAXED);
        if (until != 0 && member_now_ns(m) < until &&
            e->term >= __atomic_load_n(&m->term_refuted, __ATOMIC_RELAXED)) {
            member_claim_dropped(m, e, "term_unconfirmed", "the lease store refuted that term just now");
            return true;
        }
    }
    uint32_t cap = MEMBER_TERM_ORDERED_MAX;
    if (cap > m->cfg.mailbox_capacity / 4u)
        cap = m->cfg.mailbox_capacity / 4u > 0 ? m->cfg.mailbox_capacity / 4u : 1;
    if (raising && cap > MEMBER_TERM_CLAIMS_MAX)
        cap = MEMBER_TERM_CLAIMS_MAX;
    if (__atomic_add_fetch(&m->claims_inflight, 1, __ATOMIC_SEQ_CST) > cap) {
        __atomic_sub_fetch(&m->claims_inflight, 1, __ATOMIC_SEQ_CST);
        if (!raising)
            return false; /* applied out of order rather than lost */
        member_claim_dropped(m, e, "unverified", "too many term claims are waiting for the lease store");
        return true;
    }
    aether_event *held = aether_event_retain((aether_event *)e);
    aether_msg msg = { .type = MSG_TERM_CLAIM, .flags = AETHER_MSG_REF, .ptr = &held->ref };
    if (aether_actor_send(m->lease, &msg) != AETHER_OK) {
        __atomic_sub_fetch(&m->claims_inflight, 1, __ATOMIC_SEQ_CST);
        aether_event_release(held);
        if (!raising)
            return false;
        member_claim_dropped(m, e, "unverified", "the lease actor's mailbox is full");
    }
    return true;
}

static void sink_event(void *arg, const aether_event *e)
{
    aether_member *m = arg;
    if (aether_node_id_equal(&e->node, &m->cfg.node))
        return; /* our own, already delivered locally */
    /* (generation, term) fencing (member_internal.h, "Generations"). */
    uint64_t gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    if (e->generation != 0 && e->generation != gen) {
        member_check_generation(m); /* the store says which generation is current */
        if (gen != 0) {
            __atomic_add_fetch(&m->generation_dropped, 1, __ATOMIC_RELAXED);
            AETHER_DEBUG(MEMBER_LOG, "%s: dropped %s of generation %016llx term %llu from %s: "
                         "this node follows generation %016llx",
                         m->cfg.node.str, aether_event_type_name(e->type),
                         (unsigned long long)e->generation, (unsigned long long)e->term,
                         e->node.str, (unsigned long long)gen);
            return;
        }
    }
    /* Nothing of a claimed term - not even the speaker it would bind - is
     * taken before the store confirms it (claim_term). */
    aether_term high = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
    if (e->term > high && claim_term(m, e, true))
        return;
    /* Nor is the speaker of a term this node knows but has bound to nobody
     * (it learnt the term from a reply or a lease read, or it came back
     * mid-term): the first event of that term would bind it to whoever
     * sent it, a forger as well as the leader, so the store names the
     * leader first (judge_claim). */
    if (e->term == high && !member_speaker_bound(m, e->term) && claim_term(m, e, true))
        return;
    if (e->term == high && __atomic_load_n(&m->claims_inflight, __ATOMIC_SEQ_CST) > 0 &&
        claim_term(m, e, false))
        return;
    member_admit_event(m, e);
}

/* A publication on the map subject is a hint, never the map itself
 * (DESIGN "believe the store"): anyone who may publish there could send a
 * map of the present term with any version, and a node that installed it
 * would serve what the leader never assigned and drop the leader's later
 * maps as older. The leader records every map in the state store before
 * publishing it (member_internal.h), and publishes the very bytes it
 * stored, so the assign actor reads the stored map and installs it
 * (member_assign.c, MSG_MAP_HINT); when the stored bytes are the published
 * ones it installs the copy the transport already decoded, else it decodes
 * the stored bytes. Publications that arrive while one waits replace it:
 * one store read per burst. A map of an older term, or not newer than ours,
 * asks for nothing; a map never raises the term (only the stored map it
 * leads to is believed). */
void member_map_hint_free(member_map_hint *h)
{
    if (h == NULL)
        return;
    aether_shardmap_destroy(h->map);
    free(h->json);
    free(h);
}

static void sink_map(void *arg, const aether_shardmap *map, const char *json, size_t len)
{
    aether_member *m = arg;
    if (map->term < __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&m->stale_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (map->version <= __atomic_load_n(&m->map_version, __ATOMIC_RELAXED))
        return; /* our own echo, or old news */
    aether_msg msg = { .type = MSG_MAP_HINT };
    member_map_hint *h = calloc(1, sizeof(*h));
    if (h != NULL && (h->map = aether_shardmap_clone(map)) != NULL && json != NULL &&
        (h->json = malloc(len + 1)) != NULL) {
        memcpy(h->json, json, len);
        h->json[len] = '\0';
        h->len = len;
    }
    if (h == NULL || h->map == NULL) { /* out of memory: a bare hint still reads the store */
        member_map_hint_free(h);
        (void)aether_actor_send(m->assign, &msg);
        return;
    }
    member_map_hint *old = __atomic_exchange_n(&m->map_hint, h, __ATOMIC_SEQ_CST);
    if (old != NULL) {
        member_map_hint_free(old); /* a hint is queued: it takes ours instead */
        return;
    }
    if (aether_actor_send(m->assign, &msg) != AETHER_OK) /* LeaseRenewed catches up */
        member_map_hint_free(__atomic_exchange_n(&m->map_hint, NULL, __ATOMIC_SEQ_CST));
}

static void sink_heartbeat(void *arg, const aether_node_id *node, uint64_t incarnation)
{
    aether_member *m = arg;
    if (!member_may_lead(m, NULL))
        return; /* only the leader listens */
    member_hb_box *b = malloc(sizeof(*b));
    if (b == NULL)
        return;
    b->node = *node;
    b->incarnation = incarnation;
    member_send_owned(m, m->cluster, MSG_HEARTBEAT, b);
}

/* info names a healthy member of the published topology at its
 * incarnation. Any thread. */
static bool is_member_at(aether_member *m, const aether_node_info *info)
{
    bool yes = false;
    aether_rcu_read_lock();
    const aether_topology_snapshot *ts =
        (const aether_topology_snapshot *)aether_snapshot_current(&m->topo_slot);
    const aether_node_info *n = ts != NULL ? aether_topology_find(&ts->topo, &info->id) : NULL;
    yes = n != NULL && aether_node_status_is_healthy(n->status) && aether_node_info_same_process(n, info);
    aether_rcu_read_unlock();
    return yes;
}

/* A command from the wire (transport thread): queued for the cluster actor
 * within its budget (MEMBER_CMD_INFLIGHT_*), else answered busy at once. */
static void sink_command(void *arg, const aether_command *c, aether_reply_fn reply, void *reply_arg)
{
    aether_member *m = arg;
    bool join = c->type == AETHER_CMD_JOIN_CLUSTER;
    /* A join from an id allowed_nodes does not name takes no place: it is
     * refused here, at once, so a flood of made-up ids cannot crowd out the
     * keep-alives (cfg is immutable; the topology is the cluster actor's
     * published snapshot). A healthy member at its incarnation goes on, as
     * judge_request acknowledges it whatever the list says. */
    if (join && !aether_config_allows(&m->cfg, &c->data.join.info.id) && !is_member_at(m, &c->data.join.info)) {
        __atomic_add_fetch(&m->joins_refused, 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->busy_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: join of %s refused: not in allowed_nodes [%llu more suppressed]",
                        m->cfg.node.str, c->data.join.info.id.str, (unsigned long long)suppressed);
        if (reply) {
            char why[AETHER_NODE_ID_LEN_MAX + 64];
            snprintf(why, sizeof(why), "%s is not in the cluster's allowed_nodes", c->data.join.info.id.str);
            reply(reply_arg, AETHER_EPERM, why);
        }
        return;
    }
    uint32_t *inflight = &m->cmd_inflight[join ? MEMBER_CMD_BUDGET_JOIN : MEMBER_CMD_BUDGET_OTHER];
    /* A quarter of the mailbox at most, so timers, heartbeats and events
     * always fit beside the commands (mailbox_capacity may be as low as 64). */
    uint32_t cap = join ? MEMBER_CMD_INFLIGHT_JOIN_MAX : MEMBER_CMD_INFLIGHT_OTHER_MAX;
    uint32_t quarter = m->cfg.mailbox_capacity / 4u;
    if (cap > quarter)
        cap = quarter > 0 ? quarter : 1;
    if (__atomic_add_fetch(inflight, 1, __ATOMIC_RELAXED) > cap) {
        __atomic_sub_fetch(inflight, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&m->commands_busy, 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->busy_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: %s from %s answered busy: %u commands of its kind are "
                        "waiting [%llu more suppressed]", m->cfg.node.str,
                        aether_command_type_name(c->type), c->sender.len ? c->sender.str : "?", cap,
                        (unsigned long long)suppressed);
        if (reply)
            reply(reply_arg, AETHER_EFULL, "leader busy; retry");
        return;
    }
    member_cmd_box *b = malloc(sizeof(*b));
    if (b == NULL) {
        __atomic_sub_fetch(inflight, 1, __ATOMIC_RELAXED);
        if (reply)
            reply(reply_arg, AETHER_ENOMEM, "leader out of memory");
        return;
    }
    b->cmd = *c;
    b->reply = reply;
    b->reply_arg = reply_arg;
    b->inflight = inflight;
    aether_msg msg = { .type = MSG_COMMAND, .ptr = b };
    if (aether_actor_send(m->cluster, &msg) != AETHER_OK) {
        __atomic_add_fetch(&m->commands_busy, 1, __ATOMIC_RELAXED);
        if (reply)
            reply(reply_arg, AETHER_EFULL, "leader busy; retry");
        member_cmd_box_free(b);
    }
}

static void sink_release(void *arg, const aether_release_ack *ack)
{
    aether_member *m = arg;
    aether_release_ack *b = malloc(sizeof(*b));
    if (b == NULL)
        return;
    *b = *ack;
    member_send_owned(m, m->assign, MSG_RELEASE, b);
}

/* ---- metrics (DESIGN 7): computed at scrape time from the atomics ---------- */

/* Every function below runs on the scraping thread (metrics.h): it reads the
 * member's atomics, or the RCU-published map and topology inside a read-side
 * section, never an actor's own state. */
static int64_t g_role(void *a) { return member_may_lead(a, NULL) ? 1 : 0; }
static int64_t g_term(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->highest_term, __ATOMIC_RELAXED); }
static int64_t g_map_version(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->map_version, __ATOMIC_RELAXED); }
static int64_t g_serving(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->shards_serving, __ATOMIC_RELAXED); }
static int64_t g_fenced(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->fenced, __ATOMIC_RELAXED); }
static int64_t g_superseded(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->superseded, __ATOMIC_SEQ_CST); }
static int64_t g_incarnation(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->incarnation, __ATOMIC_SEQ_CST); }
static int64_t g_leader_changes(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->leader_changes, __ATOMIC_RELAXED); }
static int64_t g_rebalances(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->rebalances, __ATOMIC_RELAXED); }
static int64_t g_moved(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->shards_moved, __ATOMIC_RELAXED); }
static int64_t g_forgotten(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->nodes_forgotten, __ATOMIC_RELAXED); }
static int64_t g_brake_releases(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->brake_releases, __ATOMIC_RELAXED); }
static int64_t g_stale(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->stale_dropped, __ATOMIC_RELAXED); }
static int64_t g_gen_changes(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->generation_changes, __ATOMIC_RELAXED); }
static int64_t g_gen_dropped(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->generation_dropped, __ATOMIC_RELAXED); }
static int64_t g_state_too_large(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->state_too_large, __ATOMIC_RELAXED); }
static int64_t g_gen_refused(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->generation_values_refused, __ATOMIC_RELAXED); }
static int64_t g_impostor(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->impostor_dropped, __ATOMIC_RELAXED); }
static int64_t g_forged_term(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->forged_term_dropped, __ATOMIC_RELAXED); }
static int64_t g_forged_leader(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->forged_leader_dropped, __ATOMIC_RELAXED); }
static int64_t g_claims_unverified(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->claims_unverified, __ATOMIC_RELAXED); }
static int64_t g_incompatible(void *a) { return member_incompatible(a) ? 1 : 0; }
static int64_t g_fail_refused(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->fail_requests_refused, __ATOMIC_RELAXED); }
static int64_t g_hb_ignored(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->heartbeats_ignored, __ATOMIC_RELAXED); }
static int64_t g_commands_busy(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->commands_busy, __ATOMIC_RELAXED); }
static int64_t g_joins_refused(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->joins_refused, __ATOMIC_RELAXED); }
static int64_t g_shape_refusals(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->shape_refusals, __ATOMIC_RELAXED); }
static int64_t g_seq_gaps(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->seq_gaps, __ATOMIC_RELAXED); }
static int64_t g_seq_dups(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->seq_duplicates, __ATOMIC_RELAXED); }
static int64_t g_refuted(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->events_refuted, __ATOMIC_RELAXED); }
static int64_t g_map_reads(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->map_reads, __ATOMIC_RELAXED); }
static int64_t g_maps_unpublished(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->maps_unpublished, __ATOMIC_RELAXED); }
static int64_t g_brake(void *a)
{
    aether_member *m = a;
    return member_may_lead(m, NULL) && __atomic_load_n(&m->brake_engaged, __ATOMIC_RELAXED) ? 1 : 0;
}
static int64_t g_renewals(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->lease_renewals, __ATOMIC_RELAXED); }
static int64_t g_term_record_missing(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->term_record_missing, __ATOMIC_RELAXED); }
static int64_t g_state_rewrites(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->state_lost_gen, __ATOMIC_RELAXED); }
static int64_t g_lease_failures(void *a) { return (int64_t)__atomic_load_n(&((aether_member *)a)->lease_failures, __ATOMIC_RELAXED); }
static int64_t g_lag(void *a)
{
    aether_member *m = a;
    uint64_t have = __atomic_load_n(&m->map_version, __ATOMIC_RELAXED);
    uint64_t announced = __atomic_load_n(&m->announced_version, __ATOMIC_RELAXED);
    return announced > have ? (int64_t)(announced - have) : 0;
}

/* Heartbeat intervals since the newest keep-alive a leader acknowledged was
 * sent, less the one in flight: 0 while keep-alives are answered, growing
 * by one per interval while they are not (member_cluster.c, serving
 * rights). The leader acknowledges itself by leading: 0. Before the first
 * acknowledgement: 0 (nothing was missed yet, admission is pending). */
static int64_t g_heartbeats_missed(void *a)
{
    aether_member *m = a;
    if (member_may_lead(m, NULL))
        return 0;
    uint64_t acked = __atomic_load_n(&m->ack_sent_ns, __ATOMIC_RELAXED);
    uint64_t now = member_now_ns(m);
    uint64_t every = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    if (acked == 0 || now <= acked || every == 0)
        return 0;
    uint64_t intervals = (now - acked) / every;
    return intervals > 1 ? (int64_t)(intervals - 1) : 0;
}

/* What this node's current map says, counted in one read-side section. */
typedef enum map_count {
    MAP_UNOWNED,      /* shards with no owner (I2) */
    MAP_MOVING,       /* shards in handoff */
    MAP_PRIMARY,      /* shards whose primary is this node */
    MAP_REPLICA,      /* shards where this node is a replica */
} map_count;

static int64_t map_count_of(aether_member *m, map_count what)
{
    int64_t n = 0;
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(&m->slot);
    if (map == NULL) {
        /* No map yet: nothing is owned. */
        n = what == MAP_UNOWNED ? (int64_t)m->cfg.shard_count : 0;
    } else if (what == MAP_UNOWNED || what == MAP_MOVING) {
        for (uint32_t s = 0; s < map->shard_count; s++) {
            const aether_shard_entry *e = aether_shardmap_entry(map, s);
            n += what == MAP_UNOWNED ? e->owner_count == 0 : e->state == AETHER_SHARD_MOVING;
        }
    } else {
        aether_node_index me = aether_shardmap_find_node(map, &m->cfg.node);
        if (me != AETHER_NODE_INDEX_NONE) {
            size_t primary = 0, any = 0;
            (void)aether_shardmap_node_primary_shards(map, me, &primary);
            (void)aether_shardmap_node_owner_shards(map, me, &any);
            n = what == MAP_PRIMARY ? (int64_t)primary : (int64_t)(any - primary);
        }
    }
    aether_rcu_read_unlock();
    return n;
}

static int64_t g_unowned(void *a) { return map_count_of(a, MAP_UNOWNED); }
static int64_t g_handoffs(void *a) { return map_count_of(a, MAP_MOVING); }
static int64_t g_assigned_primary(void *a) { return map_count_of(a, MAP_PRIMARY); }
static int64_t g_assigned_replica(void *a) { return map_count_of(a, MAP_REPLICA); }

/* Nodes by status in this node's topology (the cluster actor's snapshot). */
static int64_t nodes_in(aether_member *m, aether_node_status status)
{
    int64_t n = 0;
    aether_rcu_read_lock();
    const aether_topology_snapshot *ts =
        (const aether_topology_snapshot *)aether_snapshot_current(&m->topo_slot);
    if (ts != NULL)
        n = (int64_t)aether_topology_count_status(&ts->topo, status);
    aether_rcu_read_unlock();
    return n;
}

static int64_t g_nodes_active(void *a) { return nodes_in(a, AETHER_NODE_ACTIVE); }
static int64_t g_nodes_draining(void *a) { return nodes_in(a, AETHER_NODE_DRAINING); }
static int64_t g_nodes_left(void *a) { return nodes_in(a, AETHER_NODE_LEFT); }
static int64_t g_nodes_failed(void *a) { return nodes_in(a, AETHER_NODE_FAILED); }

/* One row per series; `extra` is appended to the node label. Names are
 * documented in docs/observability.md; counters end in _total. */
static const struct {
    const char *name;
    const char *extra;
    bool counter;
    const char *help;
    aether_gauge_fn fn;
} member_series[] = {
    { "aether_role_leader", NULL, false, "1 while this node holds the lease and may act as leader.", g_role },
    { "aether_term", NULL, false, "Highest leader term this node has seen.", g_term },
    { "aether_leader_changes_total", NULL, true, "Leader changes this node has seen.", g_leader_changes },
    { "aether_lease_renewals_total", NULL, true, "Lease renewals this node made as leader (LeaseRenewed).",
      g_renewals },
    { "aether_lease_failures_total", NULL, true,
      "Leaderships this node lost other than by resigning while draining: a renewal failed or came too "
      "late, the lease was taken, a newer term was elected, or it was cut off.",
      g_lease_failures },
    { "aether_state_rewrites_total", NULL, true,
      "Times this node, as leader, found the state store had lost the record of its term (the state "
      "bucket deleted and re-created empty) and wrote the term, the topology and the map back.",
      g_state_rewrites },
    { "aether_term_record_missing_total", NULL, true,
      "Elections this node won while the state store recorded no term (the state bucket lost, with the "
      "lease bucket): it continued above the highest term it had seen.",
      g_term_record_missing },
    { "aether_map_version", NULL, false, "Version of the ShardMap this node publishes for lookups.", g_map_version },
    { "aether_map_version_lag", NULL, false,
      "How many map versions this node is behind what the leader announced (LeaseRenewed, keep-alive "
      "acknowledgements).",
      g_lag },
    { "aether_shards_owned", NULL, false, "Shards this node serves now (stable primaries, not fenced).", g_serving },
    { "aether_shards_assigned", "role=\"primary\"", false,
      "Shards this node's current map gives it, by role (primary or replica).", g_assigned_primary },
    { "aether_shards_assigned", "role=\"replica\"", false, NULL, g_assigned_replica },
    { "aether_shards_unowned", NULL, false,
      "Shards without an owner in this node's current map (I2; all of them before the first map).",
      g_unowned },
    { "aether_handoffs_in_flight", NULL, false, "Shards moving (Releasing) in this node's current map.", g_handoffs },
    { "aether_fenced", NULL, false, "1 while this node is cut off from the leader and serves nothing.", g_fenced },
    { "aether_superseded", NULL, false,
      "1 once a newer process of this node id was admitted: this process serves nothing and must exit.",
      g_superseded },
    { "aether_incarnation", NULL, false,
      "The incarnation this process claims for its node id: its start time until the leader's "
      "assignment is read, then the one the leader assigned.",
      g_incarnation },
    { "aether_rebalances_total", NULL, true, "Rebalances this node completed as leader.", g_rebalances },
    { "aether_rebalance_brake", NULL, false,
      "1 while this node leads with the rebalance brake engaged (too many nodes lost within "
      "brake_window_ms: only I2 is restored).",
      g_brake },
    { "aether_brake_releases_total", NULL, true,
      "Rebalance brakes an operator released on this node as leader (aetherctl rebalance "
      "--release-brake).",
      g_brake_releases },
    { "aether_shards_moved_total", NULL, true, "Shards this node moved as leader.", g_moved },
    { "aether_nodes_forgotten_total", NULL, true,
      "Left or Failed nodes this node removed from the topology as leader, node_retention_ms after "
      "they departed.",
      g_forgotten },
    { "aether_heartbeats_missed", NULL, false,
      "Heartbeat intervals since the newest acknowledged keep-alive, less the one in flight (0 on the "
      "leader).",
      g_heartbeats_missed },
    { "aether_nodes", "status=\"active\"", false, "Nodes by status in this node's topology.", g_nodes_active },
    { "aether_nodes", "status=\"draining\"", false, NULL, g_nodes_draining },
    { "aether_nodes", "status=\"left\"", false, NULL, g_nodes_left },
    { "aether_nodes", "status=\"failed\"", false, NULL, g_nodes_failed },
    { "aether_stale_messages_dropped_total", NULL, true, "Messages dropped for carrying an older term.", g_stale },
    { "aether_generation_changes_total", NULL, true,
      "Times this node moved to a new cluster generation: the state store (with the lease store) "
      "was lost and a new generation began; terms restart their comparison there.",
      g_gen_changes },
    { "aether_generation_events_dropped_total", NULL, true,
      "Events dropped because they carry another cluster generation than the one the state store "
      "names (an older epoch, or forged).",
      g_gen_dropped },
    { "aether_generation_values_refused_total", NULL, true,
      "Stored maps and topologies read from the state store and refused, not installed, because "
      "their gen is another cluster generation than the one this node follows (a value of a lost "
      "generation written back by a deposed leader).",
      g_gen_refused },
    { "aether_state_values_too_large_total", NULL, true,
      "Maps and topologies not written to the state store (nor published) because their encoding "
      "is larger than one KV value may be (960 KiB, under NATS's default 1 MiB max_payload).",
      g_state_too_large },
    { "aether_impostor_events_dropped_total", NULL, true,
      "Events dropped because their emitter does not lead their term.", g_impostor },
    { "aether_forged_messages_dropped_total", "reason=\"term_unconfirmed\"", true,
      "Messages dropped as forged, by reason. term_unconfirmed: an event whose term is above "
      "every term this node knows and that the lease store does not have (neither the recorded "
      "term nor the lease is that high); term_leader: an event of a term the lease names another "
      "leader of.",
      g_forged_term },
    { "aether_forged_messages_dropped_total", "reason=\"term_leader\"", true, NULL, g_forged_leader },
    { "aether_term_claims_unverified_total", NULL, true,
      "Events of a new term dropped unjudged: the lease store could not be read, or too many such "
      "events were waiting for it. A real term's next event asks again.",
      g_claims_unverified },
    { "aether_node_incompatible", NULL, false,
      "1 while this node cannot serve the cluster: a leader refused its join (shard_count, "
      "replication, wire versions or parameters differ) or the newest map has another "
      "shard_count or replication. It serves nothing then.",
      g_incompatible },
    { "aether_joins_refused_total", NULL, true,
      "Joins this node refused as leader because the joiner's shard_count, replication, wire "
      "versions or parameters differ from the cluster's (or are missing).",
      g_joins_refused },
    { "aether_shape_refusals_total", NULL, true,
      "Terms this node led with no map stored and refused itself because its shape (shard_count, "
      "replication, wire versions, parameters) was not the majority's of the live nodes it heard "
      "(quorum of configuration, docs/cluster.md).",
      g_shape_refusals },
    { "aether_commands_busy_total", NULL, true,
      "Commands from the wire this node answered 'busy' at once as leader: more than 64 (1024 "
      "JoinCluster) of their kind were already waiting for the cluster actor.",
      g_commands_busy },
    { "aether_fail_requests_refused_total", NULL, true,
      "MarkNodeFailed requests this node refused as leader because it still heard the node "
      "(heartbeat or keep-alive within two heartbeat intervals) and the request was not forced.",
      g_fail_refused },
    { "aether_heartbeats_ignored_total", NULL, true,
      "Heartbeats this node ignored as leader: from an id that is not a healthy member, or from "
      "another incarnation than the member's current one.",
      g_hb_ignored },
    { "aether_event_seq_gaps_total", NULL, true,
      "Leader events whose seq skipped ahead of or jumped far from the term's sequence (a lost or "
      "forged event): each made this node re-read the state store.",
      g_seq_gaps },
    { "aether_event_seq_duplicates_total", NULL, true,
      "Leader events dropped because their seq was already taken (a duplicate or a forged copy).",
      g_seq_dups },
    { "aether_events_refuted_total", NULL, true,
      "Events the state store contradicted, not applied: NodeFailed, NodeLeft or NodeJoined about "
      "this node, LeaseRenewed announcing a map the store does not have.",
      g_refuted },
    { "aether_map_store_reads_total", NULL, true,
      "Stored-map reads a map publication asked for (a publication is a hint; the stored map is "
      "installed).",
      g_map_reads },
    { "aether_maps_unpublished_total", NULL, true,
      "Maps the leader stored and installed but did not publish to the cluster: a topology "
      "change (or the end of its term) made them stale while their write was in flight; the "
      "next map, derived from them, follows at once.",
      g_maps_unpublished },
};
#define MEMBER_SERIES_COUNT (sizeof(member_series) / sizeof(member_series[0]))
#define MEMBER_LABELS_MAX 160u

/* The labels every series of this member carries (deps.metric_labels). */
static void base_labels(const aether_member *m, char *buf, size_t cap)
{
    if (m->deps.metric_labels != NULL)
        snprintf(buf, cap, "%s", m->deps.metric_labels);
    else
        snprintf(buf, cap, "node=\"%s\"", m->cfg.node.str);
}

static void series_labels(const aether_member *m, size_t i, char *buf, size_t cap)
{
    char base[MEMBER_LABELS_MAX];
    base_labels(m, base, sizeof(base));
    const char *extra = member_series[i].extra;
    int w = snprintf(buf, cap, "%s%s%s", base, base[0] != '\0' && extra != NULL ? "," : "",
                     extra != NULL ? extra : "");
    AETHER_ASSERT(w >= 0 && (size_t)w < cap);
}

/* Histogram buckets (engine/metrics.h: bounds in ns; US(x) = x microseconds), chosen from a
 * measured run (nats-server 2.9 on loopback, 3 nodes of 1024 shards, a
 * join, a drain, a kill -9 and a rebalance; docs/observability.md) and
 * from the configuration's bounds, so that the alert thresholds fall on a
 * bucket edge:
 *  - lease renewal (one CAS): measured 77 renewals, 48 <= 1 ms, 75 <= 5 ms,
 *    all <= 20 ms. Edges from 0.25 ms (the loopback floor) to 1 s (the
 *    default lease_ttl_ms: a renewal that slow is lost anyway); 100 ms is
 *    the default lease_safety_margin_ms (ttl/10) and 250 ms the renew
 *    interval (ttl/4), the two thresholds to alert on.
 *  - handoff: measured 512 (n4 joining, then drained), 91 <= 20 ms, all
 *    <= 50 ms, mean 28 ms: fine steps (20/30/50/75 ms) around the mode,
 *    then coarse up to 10 s; 5 s is the default handoff_timeout_ms (above
 *    it the old owner's fence, not its release, ended the handoff).
 *  - rebalance: measured 4 sessions of 1024 shards, 10 ms to 200 ms; a
 *    session moves its shards max_concurrent_handoffs (64) at a time, so
 *    16384 shards over a WAN take tens of seconds: edges up to 120 s. */
#define US(x) ((uint64_t)(x) * 1000u)
static const uint64_t lease_renew_bounds_ns[] = { US(250),    US(500),    US(1000),   US(2500),
                                                  US(5000),   US(10000),  US(25000),  US(50000),
                                                  US(100000), US(250000), US(500000), US(1000000) };
static const uint64_t handoff_bounds_ns[] = { US(5000),   US(10000),   US(20000),   US(30000),  US(50000),
                                              US(75000),  US(100000),  US(250000),  US(500000),
                                              US(1000000), US(2500000), US(5000000), US(10000000) };
/*  - stored-map read (a get and, unless the bytes were the published ones,
 *    a decode): measured 14 reads of a 1024-shard map, mean 3.6 ms (the
 *    former microseconds counter); the decode grows with shard_count, so
 *    the edges reach 1 s. */
static const uint64_t map_read_bounds_ns[] = { US(250),    US(500),    US(1000),   US(2500),
                                               US(5000),   US(10000),  US(25000),  US(50000),
                                               US(100000), US(250000), US(500000), US(1000000) };
static const uint64_t rebalance_bounds_ns[] = { US(10000),    US(25000),    US(50000),   US(100000),
                                                US(250000),   US(500000),   US(1000000), US(2500000),
                                                US(5000000),  US(10000000), US(30000000), US(60000000),
                                                US(120000000) };
#define BOUNDS(a) (a), (uint32_t)(sizeof(a) / sizeof((a)[0]))

static aether_status register_histograms(aether_member *m)
{
    char labels[MEMBER_LABELS_MAX];
    base_labels(m, labels, sizeof(labels));
    m->h_lease_renew = aether_metrics_histogram(
        m->deps.metrics, "aether_lease_renewal_seconds",
        "Time of this node's successful lease renewals as leader (one compare-and-set on the "
        "lease bucket), on its clock.",
        labels, BOUNDS(lease_renew_bounds_ns));
    m->h_handoff = aether_metrics_histogram(
        m->deps.metrics, "aether_handoff_duration_seconds",
        "Handoffs this node completed as leader: from the map that decreed the move (or this "
        "node's take-over of one in flight) to the map that completes it.",
        labels, BOUNDS(handoff_bounds_ns));
    m->h_rebalance = aether_metrics_histogram(
        m->deps.metrics, "aether_rebalance_duration_seconds",
        "Rebalances this node completed as leader: RebalanceStarted to RebalanceCompleted "
        "(the event's duration_ms, here in seconds).",
        labels, BOUNDS(rebalance_bounds_ns));
    m->h_map_read = aether_metrics_histogram(
        m->deps.metrics, "aether_map_store_read_seconds",
        "Stored-map reads a map publication asked for: the get, and the decoding unless the "
        "stored bytes were the published ones.",
        labels, BOUNDS(map_read_bounds_ns));
    return m->h_lease_renew != NULL && m->h_handoff != NULL && m->h_rebalance != NULL &&
                   m->h_map_read != NULL
               ? AETHER_OK
               : AETHER_EINVAL;
}

static aether_status register_metrics(aether_member *m)
{
    aether_status hst = register_histograms(m);
    if (hst != AETHER_OK)
        return hst;
    for (size_t i = 0; i < MEMBER_SERIES_COUNT; i++) {
        char labels[MEMBER_LABELS_MAX];
        series_labels(m, i, labels, sizeof(labels));
        aether_status st = member_series[i].counter
                               ? aether_metrics_counter_fn(m->deps.metrics, member_series[i].name,
                                                           member_series[i].help, labels,
                                                           member_series[i].fn, m)
                               : aether_metrics_gauge_fn(m->deps.metrics, member_series[i].name,
                                                         member_series[i].help, labels,
                                                         member_series[i].fn, m);
        if (st != AETHER_OK)
            return st;
    }
    return AETHER_OK;
}

static void release_metrics(aether_member *m)
{
    for (size_t i = 0; i < MEMBER_SERIES_COUNT; i++) {
        char labels[MEMBER_LABELS_MAX];
        series_labels(m, i, labels, sizeof(labels));
        aether_metrics_gauge_fn_release(m->deps.metrics, member_series[i].name, labels, m);
    }
}

/* What an actor's message concerns, for its log lines (log.h): the event it
 * applies or the command it handles. Called before the handler. */
static const char *log_subject(const aether_msg *msg, const char **field)
{
    switch (msg->type) {
    case MSG_EVENT:
    case MSG_TOPOLOGY:
        *field = "event";
        return aether_event_type_name(((const aether_event *)msg->ptr)->type);
    case MSG_COMMAND:
        *field = "command";
        return aether_command_type_name(((const member_cmd_box *)msg->ptr)->cmd.type);
    case MSG_SEND_COMMAND:
        *field = "command";
        return aether_command_type_name(((const aether_command *)msg->ptr)->type);
    default:
        return NULL;
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

const aether_shardmap_slot *aether_member_slot(const aether_member *m) { return &m->slot; }
const aether_node_id *aether_member_id(const aether_member *m) { return &m->cfg.node; }

void member_check_self_down(aether_member *m, const aether_topology *t)
{
    const aether_node_info *me = aether_topology_find(t, &m->cfg.node);
    uint64_t claim = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    if (me != NULL && (me->incarnation >= claim || member_record_is_mine(m, me)) &&
        (me->status == AETHER_NODE_FAILED || me->status == AETHER_NODE_LEFT))
        __atomic_store_n(&m->self_down, 1, __ATOMIC_SEQ_CST);
    /* A newer process of our id holds it: stop serving now; the cluster
     * actor declares us superseded when it publishes this topology. */
    if (me != NULL && member_record_is_newer(m, me) && __atomic_load_n(&m->admitted, __ATOMIC_SEQ_CST))
        __atomic_store_n(&m->self_down, 1, __ATOMIC_SEQ_CST);
}

void member_note_refused(aether_member *m, const char *reason)
{
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&m->refused_claim, &expected, 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return; /* said once already */
    snprintf(m->refused_reason, sizeof(m->refused_reason), "%s", reason ? reason : "");
    __atomic_store_n(&m->refused, 1, __ATOMIC_RELEASE);
    AETHER_ERROR(MEMBER_LOG, "%s: join refused: %s; serving nothing, not campaigning, no more "
                 "join requests (fix the configuration and restart)", m->cfg.node.str,
                 m->refused_reason);
}

aether_status aether_member_admission(const aether_member *m, aether_err *why)
{
    if (__atomic_load_n(&m->refused, __ATOMIC_ACQUIRE))
        return aether_err_set(why, AETHER_EINCOMPATIBLE, "%s", m->refused_reason);
    return AETHER_OK;
}

bool aether_member_may_serve(const aether_member *m)
{
    if (__atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST) || member_incompatible(m) ||
        __atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return false;
    /* Our map must be current: of the newest term we know of (a new leader
     * may have declared us failed before we heard of it) and not older than
     * what the leader last announced. */
    if (__atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) < __atomic_load_n(&m->highest_term, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST) <
            __atomic_load_n(&m->announced_version, __ATOMIC_SEQ_CST))
        return false;
    return member_serving_right(m);
}

bool member_serving_right(const aether_member *m)
{
    if (member_may_lead(m, NULL))
        return true;
    uint64_t acked = __atomic_load_n(&m->ack_sent_ns, __ATOMIC_RELAXED);
    uint64_t limit = (uint64_t)(m->cfg.failure_timeout_ms - m->cfg.fence_margin_ms) * AETHER_NS_PER_MS;
    return acked != 0 && member_now_ns(m) < acked + limit;
}

bool aether_member_leads(const aether_member *m) { return member_may_lead(m, NULL); }

aether_status aether_member_topology(const aether_member *m, aether_topology *out)
{
    aether_status st = AETHER_ENOTFOUND;
    aether_rcu_read_lock();
    const aether_topology_snapshot *ts =
        (const aether_topology_snapshot *)aether_snapshot_current(&m->topo_slot);
    if (ts != NULL)
        st = aether_topology_copy(&ts->topo, out);
    aether_rcu_read_unlock();
    return st;
}

void aether_member_actors(const aether_member *m, aether_actor *out[AETHER_MEMBER_ACTORS])
{
    out[0] = m->cluster;
    out[1] = m->lease;
    out[2] = m->assign;
    out[3] = m->store;
    out[4] = m->store_lease;
}

aether_status aether_member_start(const aether_config *cfg, const aether_member_deps *deps,
                                  const aether_member_callbacks *cb, aether_member **out,
                                  aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && deps != NULL && out != NULL);
    *out = NULL;
    aether_status st = aether_config_validate(cfg, err);
    if (st != AETHER_OK)
        return st;
    if (deps->executor == NULL || deps->transport == NULL || deps->lease_store == NULL ||
        deps->state_store == NULL)
        return aether_err_set(err, AETHER_EINVAL,
                              "member needs an executor, a transport and both stores");
    aether_member *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    m->cfg = *cfg;
    if (m->cfg.address[0] == '\0')
        snprintf(m->cfg.address, sizeof(m->cfg.address), "%s", cfg->node.str);
    m->deps = *deps;
    if (cb != NULL)
        m->cb = *cb;
    m->clock = deps->clock != NULL ? deps->clock : aether_executor_clock(deps->executor);
    /* Not admitted yet: a new process serves nothing until the leader has
     * admitted this incarnation (NodeJoined), even if the map still names
     * this node id from an earlier run the leader may be failing right now. */
    m->self_down = 1;
    m->log_ctx.node = m->cfg.node.str;
    aether_log_ratelimit_init(&m->busy_log, AETHER_NS_PER_S);
    aether_log_ratelimit_init(&m->gen_value_log, AETHER_NS_PER_S);
    aether_log_ratelimit_init(&m->state_size_log, AETHER_NS_PER_S);
    aether_log_ratelimit_init(&m->send_log, AETHER_NS_PER_S);
    aether_log_ratelimit_init(&m->claim_log, AETHER_NS_PER_S);
    m->log_ctx.term = &m->highest_term;
    aether_snapshot_slot_init(&m->leader_view);
    aether_shardmap_slot_init(&m->slot);
    aether_snapshot_slot_init(&m->topo_slot);
    st = aether_node_info_make(&m->self_info, m->cfg.node.str, m->cfg.address, m->cfg.zone,
                               AETHER_NODE_ACTIVE, 0, aether_clock_wall_ms(m->clock), err);
    if (st != AETHER_OK)
        goto fail;
    /* The incarnation tells this run of the node from earlier ones (and
     * from a later one started beside it: member_cluster.c). */
    m->self_info.incarnation =
        deps->incarnation != 0 ? deps->incarnation : aether_clock_wall_ms(m->clock);
    /* The process's nonce (topology.h, "Incarnations"): the leader tells
     * this process from any other of our id by it. Drawn from the seed, the
     * id and the start incarnation (two processes started with one --seed
     * still differ by their start time), 1..2^63-1. */
    uint64_t x = deps->seed ^ aether_node_id_hash(&m->cfg.node) ^
                 (m->self_info.incarnation * UINT64_C(0x9e3779b97f4a7c15));
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    m->self_info.nonce = (x & (uint64_t)INT64_MAX) != 0 ? (x & (uint64_t)INT64_MAX) : 1;
    aether_config_admission(&m->cfg, &m->admission);
    m->incarnation = m->self_info.incarnation;

    char labels[MEMBER_LABELS_MAX];
    base_labels(m, labels, sizeof(labels));
    st = aether_bus_create(deps->metrics, labels, &m->bus);
    if (st != AETHER_OK)
        goto fail;
    if (deps->metrics != NULL && (st = register_metrics(m)) != AETHER_OK) {
        aether_err_set(err, st, "cannot register the node's metrics");
        goto fail;
    }
    if ((st = member_cluster_init(m)) != AETHER_OK || (st = member_lease_init(m)) != AETHER_OK ||
        (st = member_assign_init(m)) != AETHER_OK || (st = member_store_init(m)) != AETHER_OK)
        goto fail;

    const struct {
        const char *name;
        aether_actor_handle_fn handle;
        aether_actor_drop_fn drop;
        void *state;
        aether_actor **slot;
        aether_executor *ex;
        uint32_t mailbox;
    } actors[] = {
        { "cluster", member_cluster_handle, member_cluster_drop, m, &m->cluster, deps->executor,
          m->cfg.mailbox_capacity },
        { "lease", member_lease_handle, member_lease_drop, m, &m->lease, deps->executor,
          m->cfg.mailbox_capacity },
        /* The bulk of the CPU (whole maps): on the bulk executor when the
         * embedder gives one (member.h). */
        { "assign", member_assign_handle, member_assign_drop, m, &m->assign,
          deps->bulk_executor != NULL ? deps->bulk_executor : deps->executor, m->cfg.mailbox_capacity },
        /* The actor that waits on the stores (member_store_internal.h), in
         * two lanes: the state lane on the I/O executor, the lease lane on
         * its own (item 6), when the embedder gives them. */
        { "store", member_store_handle, member_store_drop, m->ss, &m->store,
          deps->io_executor != NULL ? deps->io_executor : deps->executor, MEMBER_STORE_MAILBOX },
        { "store_lease", member_store_handle, member_store_drop, m->ss_lease, &m->store_lease,
          deps->lease_io_executor != NULL ? deps->lease_io_executor
          : deps->io_executor != NULL     ? deps->io_executor
                                          : deps->executor,
          MEMBER_STORE_MAILBOX },
    };
    for (size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++) {
        aether_actor_config ac = {
            .name = actors[i].name,
            .mailbox_capacity = actors[i].mailbox,
            .handle = actors[i].handle,
            .drop = actors[i].drop,
            .state = actors[i].state,
            .metrics = deps->metrics,
            .metric_labels = labels[0] != '\0' ? labels : NULL,
            .log_context = &m->log_ctx,
            .log_subject = log_subject,
        };
        st = aether_actor_create(actors[i].ex, &ac, actors[i].slot);
        if (st != AETHER_OK) {
            aether_err_set(err, st, "cannot create the %s actor", actors[i].name);
            goto fail;
        }
    }
    /* Who hears what (DESIGN 2 policies): cluster everything (it also feeds
     * on_event); lease its own and the node events that decide whether it may
     * campaign; assign the topology and leadership. */
    uint64_t lease_topics = (1ull << AETHER_EVT_LEADER_ELECTED) | (1ull << AETHER_EVT_LEASE_RENEWED) |
                            (1ull << AETHER_EVT_LEADERSHIP_LOST) | (1ull << AETHER_EVT_NODE_JOINED) |
                            (1ull << AETHER_EVT_NODE_DRAINING) | (1ull << AETHER_EVT_NODE_FAILED) |
                            (1ull << AETHER_EVT_NODE_LEFT);
    /* The assign actor hears topology changes from the cluster actor once they
     * are applied (MSG_TOPOLOGY), so it never acts on a topology older than
     * the event; from the bus it takes leadership news only. */
    uint64_t assign_topics = (1ull << AETHER_EVT_LEADER_ELECTED) | (1ull << AETHER_EVT_LEASE_RENEWED) |
                             (1ull << AETHER_EVT_LEADERSHIP_LOST);
    aether_bus_sub_id sub;
    if ((st = aether_bus_subscribe_actor(m->bus, AETHER_BUS_ALL_TOPICS, m->cluster, &sub)) != AETHER_OK ||
        (st = aether_bus_subscribe_actor(m->bus, lease_topics, m->lease, &sub)) != AETHER_OK ||
        (st = aether_bus_subscribe_actor(m->bus, assign_topics, m->assign, &sub)) != AETHER_OK) {
        aether_err_set(err, st, "cannot subscribe the actors");
        goto fail;
    }
    aether_transport_sink sink = {
        .on_event = sink_event,
        .on_map = sink_map,
        .on_heartbeat = sink_heartbeat,
        .on_command = sink_command,
        .on_release = sink_release,
        .arg = m,
    };
    st = aether_transport_bind(deps->transport, &sink);
    if (st != AETHER_OK) {
        aether_err_set(err, st, "cannot bind the transport");
        goto fail;
    }
    m->started = true;
    member_cluster_start(m);
    member_lease_start(m);
    member_assign_start(m);
    *out = m;
    return AETHER_OK;
fail:
    aether_member_destroy(m);
    return st;
}

aether_status aether_member_drain(aether_member *m)
{
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return AETHER_ESUPERSEDED; /* a drain now would drain the newer process */
    aether_msg msg = { .type = MSG_DRAIN_SELF };
    return aether_actor_send(m->cluster, &msg);
}

aether_status aether_member_rebalance(aether_member *m, const char *reason)
{
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return AETHER_ESUPERSEDED;
    aether_command *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return AETHER_ENOMEM;
    c->type = AETHER_CMD_REBALANCE_SHARDS;
    snprintf(c->cluster, sizeof(c->cluster), "%s", m->cfg.cluster);
    c->sender = m->cfg.node;
    aether_event_set_reason(c->data.rebalance.reason, reason ? reason : "RebalanceShards");
    return member_send_owned(m, m->cluster, MSG_SEND_COMMAND, c);
}

aether_status aether_member_elect(aether_member *m)
{
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return AETHER_ESUPERSEDED;
    aether_msg msg = { .type = MSG_CAMPAIGN_NOW };
    return aether_actor_send(m->lease, &msg);
}

void aether_member_stop(aether_member *m)
{
    if (m == NULL || m->stopped)
        return;
    m->stopped = true;
    if (m->started)
        aether_transport_unbind(m->deps.transport);
    /* No more input from the transport; now quiesce the actors. */
    if (m->cluster)
        aether_actor_close(m->cluster);
    if (m->lease)
        aether_actor_close(m->lease);
    if (m->assign)
        aether_actor_close(m->assign);
    /* Last: a request it is running (a store call, up to the store's
     * timeout) completes to a closed requester and is freed. */
    if (m->store)
        aether_actor_close(m->store);
    if (m->store_lease)
        aether_actor_close(m->store_lease);
    __atomic_store_n(&m->leading_term, AETHER_TERM_NONE, __ATOMIC_RELEASE);
}

void aether_member_destroy(aether_member *m)
{
    if (m == NULL)
        return;
    aether_member_stop(m);
    if (m->deps.metrics != NULL)
        release_metrics(m);
    aether_bus_destroy(m->bus);
    aether_actor_destroy(m->cluster);
    aether_actor_destroy(m->lease);
    aether_actor_destroy(m->assign);
    aether_actor_destroy(m->store);
    aether_actor_destroy(m->store_lease);
    member_map_hint_free(__atomic_exchange_n(&m->map_hint, NULL, __ATOMIC_SEQ_CST));
    member_store_fini(m);
    member_assign_fini(m);
    member_lease_fini(m);
    member_cluster_fini(m);
    aether_shardmap_slot_fini(&m->slot);
    aether_snapshot_slot_fini(&m->topo_slot);
    aether_snapshot_slot_fini(&m->leader_view);
    free(m);
}

void aether_member_view_get(const aether_member *m, aether_member_view *out)
{
    memset(out, 0, sizeof(*out));
    out->is_leader = member_may_lead(m, NULL);
    out->term = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
    aether_rcu_read_lock();
    const member_leader_view *lv = (const member_leader_view *)aether_snapshot_current(&m->leader_view);
    if (lv != NULL)
        out->leader = lv->view_leader;
    aether_rcu_read_unlock();
    /* The generation first: a version read after it is of that one or a
     * later one (the assign actor writes the version, then the generation). */
    out->map_generation = __atomic_load_n(&m->map_generation, __ATOMIC_SEQ_CST);
    out->map_version = __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST);
    out->shards_serving = __atomic_load_n(&m->shards_serving, __ATOMIC_RELAXED);
    out->fenced = __atomic_load_n(&m->fenced, __ATOMIC_RELAXED) != 0;
    out->superseded = __atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST) != 0;
    out->incarnation = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    out->superseded_by = __atomic_load_n(&m->superseded_by, __ATOMIC_RELAXED);
    out->status = AETHER_NODE_ACTIVE; /* when not a member */
    out->member = member_self_status(m, &out->status);
    out->stale_dropped = __atomic_load_n(&m->stale_dropped, __ATOMIC_RELAXED);
    out->generation = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    out->generation_changes = __atomic_load_n(&m->generation_changes, __ATOMIC_RELAXED);
    out->generation_dropped = __atomic_load_n(&m->generation_dropped, __ATOMIC_RELAXED);
    out->generation_values_refused = __atomic_load_n(&m->generation_values_refused, __ATOMIC_RELAXED);
    out->impostor_dropped = __atomic_load_n(&m->impostor_dropped, __ATOMIC_RELAXED);
    out->leader_changes = __atomic_load_n(&m->leader_changes, __ATOMIC_RELAXED);
    out->rebalances = __atomic_load_n(&m->rebalances, __ATOMIC_RELAXED);
    out->shards_moved = __atomic_load_n(&m->shards_moved, __ATOMIC_RELAXED);
    out->incompatible = member_incompatible(m);
    out->brake_engaged = out->is_leader && __atomic_load_n(&m->brake_engaged, __ATOMIC_RELAXED) != 0;
    out->has_left = __atomic_load_n(&m->self_left, __ATOMIC_SEQ_CST) != 0;
    aether_rcu_read_lock();
    const aether_topology_snapshot *ts =
        (const aether_topology_snapshot *)aether_snapshot_current(&m->topo_slot);
    if (ts != NULL) {
        out->topology_version = ts->topo.version;
        out->nodes_active = aether_topology_count_status(&ts->topo, AETHER_NODE_ACTIVE);
        out->nodes_draining = aether_topology_count_status(&ts->topo, AETHER_NODE_DRAINING);
    }
    aether_rcu_read_unlock();
}

/* A peer told the embedder it knows a newer map than ours (the "behind"
 * answer of aether_node_check_route): the assign actor reads the stored
 * map now, as after a publication (MSG_MAP_HINT without a hint). */
aether_status aether_member_read_stored_map(aether_member *m)
{
    aether_msg msg = { .type = MSG_MAP_HINT };
    return aether_actor_send(m->assign, &msg);
}
