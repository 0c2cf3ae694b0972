/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_apply.c: event application, the every-node side of the cluster
 * actor (actors layer, private to the cluster actor's files): events are
 * checked against the term's sequence, applied to the topology (or the
 * store read instead, after a gap), passed to the embedder's on_event in
 * order and to the assign actor; reports about this node are judged
 * against the stored topology; a LeaderElected of this node starts the
 * take-over (member_topo_store.c).
 *
 * The sequence of leader events.
 * DESIGN (DESIGN.md "events carry a per-term sequence number"): the leader
 * of term T stamps its events 1, 2, 3... and NATS delivers one publisher's
 * messages in order, so another node sees each term's events increasing,
 * with holes where some were lost. Anyone who may publish on the event
 * subjects can also send an event naming the leader and T with any seq.
 * A seq is therefore evidence, never an authority:
 *  1. the first event of a newer term starts its sequence (seq_top);
 *  2. an event up to SEQ_JUMP_MAX ahead of seq_top is taken and becomes
 *     seq_top; a hole before it is a gap: counted, logged, and the node
 *     re-reads the state store (the authority: the leader stores every
 *     change before it publishes it) instead of applying the event;
 *  3. an event farther than SEQ_JUMP_MAX from seq_top (ahead or behind) is
 *     a jump: counted, logged, the store re-read, the event neither applied
 *     nor passed on, and seq_top NOT moved: a forged seq 5000 cannot make
 *     the leader's 7, 8, 9 look old. Only when no event at all has been
 *     taken in sequence for a whole lease ttl while jumps keep coming (the
 *     leader renews every ttl/4, so its LeaseRenewed would have been) were
 *     more than SEQ_JUMP_MAX events lost: the jump then starts the sequence
 *     afresh;
 *  4. an event at or below seq_top already taken (the SEQ_WINDOW bits) is a
 *     duplicate or a forged copy: dropped, counted, the store re-read; one
 *     not taken yet arrived out of order (reordered, or behind a forged
 *     seq_top that stayed within reach): not applied nor passed on (on_event
 *     sees events in order), but marked, and the store re-read, so what it
 *     changed reaches this node all the same.
 * Whatever a forger sends, the genuine events keep being taken, and every
 * anomaly ends with the node holding the stored topology and map.
 *
 * Reads of the stored topology are requests to the store actor
 * (member_topo_store_reload): the handling that depends on the answer goes
 * on in member_apply_reloaded, and the events that come meanwhile wait
 * behind the read (member_cluster_internal.h, "The cluster actor's store
 * requests"). A read that cannot be sent (another request in flight) is a
 * store that did not answer: each caller has its fallback, as when the
 * store is out of reach.
 * Threading: cluster actor only.
 */
#include "member_cluster_internal.h"

#include <string.h>

typedef enum seq_anomaly { SEQ_GAP, SEQ_JUMP, SEQ_DUPLICATE, SEQ_LATE, SEQ_RESTART } seq_anomaly;

/* What the stored topology says of a report about this node. */
typedef enum self_verdict {
    SELF_UNKNOWN,   /* the store did not answer: keep what the report implies */
    SELF_CONFIRMED, /* the store agrees (or this run is not admitted: nothing to refute) */
    SELF_REFUTED,   /* the store names this run otherwise: the report was not the leader's */
} self_verdict;

static bool seq_bit(const member_cluster_state *cs, uint64_t s)
{
    return (cs->seq_seen[(s % SEQ_WINDOW) / 64u] >> (s % 64u)) & 1u;
}

static void seq_mark(member_cluster_state *cs, uint64_t s, bool on)
{
    uint64_t bit = 1ull << (s % 64u);
    if (on)
        cs->seq_seen[(s % SEQ_WINDOW) / 64u] |= bit;
    else
        cs->seq_seen[(s % SEQ_WINDOW) / 64u] &= ~bit;
}

static void seq_restart(member_cluster_state *cs, aether_term term, uint64_t s)
{
    cs->seq_term = term;
    cs->seq_top = s;
    memset(cs->seq_seen, 0, sizeof(cs->seq_seen));
    seq_mark(cs, s, true);
    cs->jump_since_ns = 0;
}

/* Counts and logs (rate-limited) an anomaly, and has the store re-read. */
static void seq_note(aether_member *m, const aether_event *e, seq_anomaly kind)
{
    member_cluster_state *cs = m->cs;
    static const char *const what[] = {
        [SEQ_GAP] = "skips events (lost?)",
        [SEQ_JUMP] = "is far from the term's sequence (forged or a burst lost): not applied",
        [SEQ_DUPLICATE] = "was already taken (a duplicate or a forged copy): dropped",
        [SEQ_LATE] = "arrived out of order: not applied",
        [SEQ_RESTART] = "restarts the term's sequence after a whole lease of jumps",
    };
    if (kind == SEQ_DUPLICATE)
        __atomic_add_fetch(&m->seq_duplicates, 1, __ATOMIC_RELAXED);
    else if (kind != SEQ_LATE)
        __atomic_add_fetch(&m->seq_gaps, 1, __ATOMIC_RELAXED);
    cs->topo_dirty = true;
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&cs->seq_log, member_now_ns(m), &suppressed))
        AETHER_WARN(MEMBER_LOG,
                    "%s: %s of term %llu seq %llu from %s %s (seq %llu taken last); reading the state "
                    "store%s%.0llu%s",
                    m->cfg.node.str, aether_event_type_name(e->type), (unsigned long long)e->term,
                    (unsigned long long)e->seq, e->node.str, what[kind], (unsigned long long)cs->seq_top,
                    suppressed ? " (" : "", (unsigned long long)suppressed,
                    suppressed ? " more anomalies not logged)" : "");
}

/* A new generation (member_internal.h): its terms are not comparable with
 * the old one's. The sequence starts again, the store says what the
 * topology is, and the term and leader of the old generation are
 * forgotten: aether_topology_set_leader never lowers the term, so a node
 * that had seen term 310 of the old generation refused every command of
 * its own term 7 in the new one as stale, was cut off (its own keep-alives
 * refused) and resigned, and so did every leader after it (aether-sim
 * --soak --seed 100056 --duration 120 --extra-faults
 * misfit,twin,kv-loss-both,forge: "I5: leader n7 is failed" after 40 s of
 * leaders lasting one failure_timeout each). Called first on every
 * message. */
void member_apply_follow_generation(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t gc = __atomic_load_n(&m->generation_changes, __ATOMIC_RELAXED);
    if (gc == cs->gen_changes_seen)
        return;
    cs->gen_changes_seen = gc;
    seq_restart(cs, AETHER_TERM_NONE, 0);
    cs->topo_dirty = true;
    cs->topo.term = AETHER_TERM_NONE;
    memset(&cs->topo.leader, 0, sizeof(cs->topo.leader));
    cs->lead_term = cs->loaded_term = AETHER_TERM_NONE;
    __atomic_store_n(&m->topo_loaded_term, AETHER_TERM_NONE, __ATOMIC_RELEASE);
    /* Terms start again in the new generation: an entry of the old one
     * must never pass for one of a new term with the same number
     * (member_internal.h, step 5). */
    for (uint32_t i = 0; i < cs->ann_count; i++) /* bounded: ANNOUNCE_PENDING_MAX */
        aether_event_release(cs->ann[cs->ann_head + i].e);
    cs->ann_dropped += cs->ann_count;
    cs->ann_head = cs->ann_count = 0;
    cs->loaded_pending_term = AETHER_TERM_NONE;
}

/* Sequence check of another node's leader-issued event (DESIGN above).
 * False: not applied (stale, duplicate, jump, out of order). Sets
 * topo_dirty when the store must be read. */
static bool in_sequence(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    /* Our own events were applied when decided and are passed on in full
     * (on_event sees every one this node stamped, in order). */
    if (aether_node_id_equal(&e->node, &m->cfg.node) || e->seq == 0)
        return true;
    /* Admitted (member.c) before this node learnt of a newer term - the
     * lease read it, or a LeaderElected overtook this one in the mailbox:
     * a deposed leader's change is not applied now. If the store has it,
     * the next change of the new term reads the store (topo_dirty). */
    if (e->term < __atomic_load_n(&m->highest_term, __ATOMIC_ACQUIRE) &&
        e->type != AETHER_EVT_LEADERSHIP_LOST) {
        cs->topo_dirty = true;
        __atomic_add_fetch(&m->stale_dropped, 1, __ATOMIC_RELAXED);
        return false;
    }
    if (e->term > cs->seq_term) { /* 1 */
        seq_restart(cs, e->term, e->seq);
        cs->topo_dirty |= e->seq != 1; /* we learnt of the term mid-way */
        return true;
    }
    if (e->term < cs->seq_term)
        return e->type == AETHER_EVT_LEADERSHIP_LOST;
    uint64_t s = e->seq;
    if (s > cs->seq_top + SEQ_JUMP_MAX || s + SEQ_JUMP_MAX <= cs->seq_top) { /* 3 */
        uint64_t now = member_now_ns(m);
        if (cs->jump_since_ns != 0 &&
            now - cs->jump_since_ns >= (uint64_t)m->cfg.lease_ttl_ms * AETHER_NS_PER_MS) {
            seq_note(m, e, SEQ_RESTART);
            seq_restart(cs, e->term, s);
            return true;
        }
        if (cs->jump_since_ns == 0)
            cs->jump_since_ns = now != 0 ? now : 1;
        seq_note(m, e, SEQ_JUMP);
        return false;
    }
    if (s > cs->seq_top) { /* 2 */
        for (uint64_t k = cs->seq_top + 1; k < s; k++) /* bounded: SEQ_JUMP_MAX */
            seq_mark(cs, k, false); /* their slots held seqs now out of the window */
        if (s != cs->seq_top + 1)
            seq_note(m, e, SEQ_GAP);
        cs->seq_top = s;
        seq_mark(cs, s, true);
        cs->jump_since_ns = 0;
        return true;
    }
    if (seq_bit(cs, s)) { /* 4 */
        seq_note(m, e, SEQ_DUPLICATE);
        return false;
    }
    seq_mark(cs, s, true);
    cs->jump_since_ns = 0; /* the term's sequence is alive within reach */
    seq_note(m, e, SEQ_LATE);
    return false;
}

/* After a seq anomaly: the stored topology now (at most once per
 * heartbeat interval; in between, topo_dirty makes the next topology event
 * or LeaseRenewed read it), and the stored map (the assign actor). The
 * read is a request: its completion clears topo_dirty (member_apply_reloaded);
 * one that cannot be sent leaves it set, and the next asks again. */
static void reread_store(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t every = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    if (!cs->topo_dirty || (cs->reread_ns != 0 && now - cs->reread_ns < every))
        return;
    cs->reread_ns = now;
    (void)member_topo_store_reload(m, CLUSTER_RELOAD_REREAD, NULL, false, 0);
    aether_msg hint = { .type = MSG_MAP_HINT }; /* no publication: read the store */
    (void)aether_actor_send(m->assign, &hint);  /* refused: the next LeaseRenewed reads it */
}

/* A remote NodeFailed/NodeLeft/NodeJoined about this node (e), or, with e
 * NULL, the pending retry of one, judged on the stored topology just read
 * and adopted (answered; the leader stored the change before publishing
 * it, so a genuine report is always there; member_internal.h). `reports`
 * is m->self_down_reports from before the read was sent: a report that came
 * after it is not refuted by it. A NodeFailed or NodeLeft the store
 * contradicts - it names this run Active or Draining - was never the
 * leader's: the assign actor is told to serve again (MSG_SELF_REFUTED,
 * unless a report came since). A NodeJoined of ours is confirmed when the
 * store has this node Active at that incarnation or later. */
static self_verdict self_report_verdict(aether_member *m, const aether_event *e, bool answered,
                                        uint64_t reports)
{
    member_cluster_state *cs = m->cs;
    bool joined = e != NULL && e->type == AETHER_EVT_NODE_JOINED;
    if (!answered) {
        if (!joined)
            cs->self_report_pending = true; /* checked again every heartbeat */
        return SELF_UNKNOWN;
    }
    cs->topo_dirty = false;
    const aether_node_info *me = aether_topology_find(&cs->topo, &m->cfg.node);
    if (joined) {
        if (me != NULL && me->status == AETHER_NODE_ACTIVE &&
            me->incarnation >= e->data.node_joined.incarnation)
            return SELF_CONFIRMED;
    } else {
        cs->self_report_pending = false;
        /* The record of the incarnation this process claims (a higher one
         * is a newer process's: that one being healthy refutes nothing). */
        if (me == NULL || !member_record_is_mine(m, me) || !aether_node_status_is_healthy(me->status))
            return SELF_CONFIRMED;
        aether_msg msg = { .type = MSG_SELF_REFUTED, .arg64 = reports };
        (void)aether_actor_send(m->assign, &msg); /* refused: the next report or rejoin settles it */
    }
    __atomic_add_fetch(&m->events_refuted, 1, __ATOMIC_RELAXED);
    if (e != NULL)
        AETHER_WARN(MEMBER_LOG,
                    "%s: %s about this node from %s (term %llu seq %llu) contradicts the stored topology "
                    "(v%llu names this node %s): not applied",
                    m->cfg.node.str, aether_event_type_name(e->type), e->node.str, (unsigned long long)e->term,
                    (unsigned long long)e->seq, (unsigned long long)cs->topo.version,
                    me != NULL ? aether_node_status_name(me->status) : "unknown");
    else
        AETHER_WARN(MEMBER_LOG, "%s: the stored topology (v%llu) names this node %s: a report of it "
                    "down was not the leader's", m->cfg.node.str, (unsigned long long)cs->topo.version,
                    me != NULL ? aether_node_status_name(me->status) : "unknown");
    return SELF_REFUTED;
}

void member_apply_self_report_retry(aether_member *m)
{
    if (!m->cs->self_report_pending)
        return;
    uint64_t reports = __atomic_load_n(&m->self_down_reports, __ATOMIC_SEQ_CST);
    (void)member_topo_store_reload(m, CLUSTER_RELOAD_SELF_REPORT, NULL, false, reports);
    /* Not sent: still pending, the next tick asks again. */
}

static bool about_self(const aether_member *m, const aether_event *e)
{
    const aether_node_id *who = e->type == AETHER_EVT_NODE_FAILED   ? &e->data.node_failed.node
                                : e->type == AETHER_EVT_NODE_LEFT   ? &e->data.node_left.node
                                : e->type == AETHER_EVT_NODE_JOINED ? &e->data.node_joined.node
                                                                    : NULL;
    return who != NULL && aether_node_id_equal(who, &m->cfg.node) &&
           !aether_node_id_equal(&e->node, &m->cfg.node);
}

/* LeaderElected, in sequence: the leader of our topology; as the new
 * leader, the take-over starts (policy 10) and every node's silence is
 * counted from now. */
static void leader_elected(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    const aether_node_id *leader = &e->data.leader_elected.leader;
    aether_term term = e->data.leader_elected.term;
    if (!aether_topology_set_leader(&cs->topo, leader, term))
        return;
    if (aether_node_id_equal(leader, &m->cfg.node)) {
        cs->io_retry_ns = 0; /* a new term's take-over is not put off by an old failure */
        (void)member_topo_store_loaded(m, term); /* policy 10: take over from the stored state */
        cs->lead_term = term;
        cs->lead_since_ns = member_now_ns(m);
        for (uint32_t i = 0; i < cs->n_hb; i++) {
            cs->hb[i].last_ns = cs->lead_since_ns;
            cs->hb[i].forced_inc = 0; /* an earlier term's request: asked again if still meant */
        }
    } else {
        cs->lead_term = AETHER_TERM_NONE;
    }
}

/* The rest of a topology event announced by another node, once the store
 * was read (loaded: it has this change, and all before it) or could not
 * be (applied in sequence, or the store out of reach): published and
 * passed to the assign actor. */
static void announced_rest(aether_member *m, const aether_event *e, bool loaded)
{
    member_cluster_state *cs = m->cs;
    if (!loaded)
        aether_topology_apply(&cs->topo, e);
    else
        cs->topo_dirty = false;
    member_detect_heard_if_joined(m, e);
    member_cluster_publish_self_status(m);
    member_cluster_notify_assign(m, (aether_event *)e);
}

/* A topology event announced (ours or a leader's), in sequence: heard;
 * another node's decision is applied (or the store read, after a gap). */
static void topology_announced(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    (void)aether_topology_apply(&cs->heard, e); /* announced: ours or a leader's */
    if (aether_node_id_equal(&e->node, &m->cfg.node))
        return; /* ours: applied, published and passed on when decided */
    if (cs->topo_dirty && member_topo_store_reload(m, CLUSTER_RELOAD_ANNOUNCED, e, true, 0))
        return; /* announced_rest at the completion */
    announced_rest(m, e, false);
}

/* A report about this node the store confirmed: taken as any event. */
static void self_confirmed(aether_member *m, const aether_event *e, bool taken)
{
    member_cluster_state *cs = m->cs;
    if (taken && m->cb.on_event != NULL)
        m->cb.on_event(m->cb.arg, e);
    if (taken)
        (void)aether_topology_apply(&cs->heard, e);
    member_detect_heard_if_joined(m, e);
    member_cluster_notify_assign(m, (aether_event *)e);
}

/* An event after its sequence check (taken) and, if it was about this
 * node, its judgment (or none, the store not answering). */
static void event_rest(aether_member *m, const aether_event *e, bool taken)
{
    member_cluster_state *cs = m->cs;
    if (!taken) {
        reread_store(m);
        return;
    }
    if (cs->topo_dirty && e->type != AETHER_EVT_LEASE_RENEWED && e->type != AETHER_EVT_NODE_JOINED &&
        e->type != AETHER_EVT_NODE_DRAINING && e->type != AETHER_EVT_NODE_LEFT &&
        e->type != AETHER_EVT_NODE_FAILED)
        reread_store(m); /* topology events and renewals read it below */
    if (m->cb.on_event != NULL)
        m->cb.on_event(m->cb.arg, e);
    switch (e->type) {
    case AETHER_EVT_LEADER_ELECTED:
        leader_elected(m, e);
        return;
    case AETHER_EVT_LEASE_RENEWED:
        if (cs->topo_dirty)
            reread_store(m); /* the map too, after an anomaly */
        /* Another version than ours, or an anomaly: the stored topology
         * (its completion clears topo_dirty), unless one is already out. */
        if ((e->data.lease_renewed.topology_version != cs->topo.version || cs->topo_dirty) &&
            cs->io == CLUSTER_IO_NONE)
            (void)member_topo_store_reload(m, CLUSTER_RELOAD_REREAD, NULL, false, 0);
        return;
    case AETHER_EVT_LEADERSHIP_LOST:
        if (aether_node_id_equal(&cs->topo.leader, &e->data.leadership_lost.leader) &&
            cs->topo.term == e->data.leadership_lost.term)
            memset(&cs->topo.leader, 0, sizeof(cs->topo.leader));
        if (aether_node_id_equal(&e->data.leadership_lost.leader, &m->cfg.node))
            cs->lead_term = AETHER_TERM_NONE;
        return;
    case AETHER_EVT_NODE_JOINED:
    case AETHER_EVT_NODE_DRAINING:
    case AETHER_EVT_NODE_LEFT:
    case AETHER_EVT_NODE_FAILED:
        topology_announced(m, e);
        return;
    default:
        return;
    }
}

void member_apply_event(aether_member *m, const aether_event *e)
{
    AETHER_ASSERT(!member_topo_store_holds(m->cs->io, MSG_EVENT)); /* held, not handled */
    bool taken = in_sequence(m, e);
    if (about_self(m, e)) {
        /* Whatever its seq or term: the sink may have stopped us serving on
         * it, and only the store says whether that stands. */
        uint64_t reports = __atomic_load_n(&m->self_down_reports, __ATOMIC_SEQ_CST);
        if (member_topo_store_reload(m, CLUSTER_RELOAD_SELF_REPORT, e, taken, reports))
            return; /* member_apply_reloaded goes on */
        (void)self_report_verdict(m, e, false, reports); /* SELF_UNKNOWN: as if not asked */
    }
    event_rest(m, e, taken);
}

void member_apply_reloaded(aether_member *m, cluster_reload_for why, const aether_event *e,
                           bool taken, uint64_t reports, bool answered)
{
    switch (why) {
    case CLUSTER_RELOAD_REREAD:
        if (answered)
            m->cs->topo_dirty = false;
        return;
    case CLUSTER_RELOAD_ANNOUNCED:
        AETHER_ASSERT(e != NULL);
        announced_rest(m, e, answered);
        return;
    case CLUSTER_RELOAD_SELF_REPORT: {
        self_verdict v = self_report_verdict(m, e, answered, reports);
        if (e == NULL)
            return; /* the heartbeat tick's retry: judged, nothing more */
        if (v == SELF_REFUTED)
            return; /* the store is read (and topo_dirty clear): nothing to re-read */
        if (v == SELF_CONFIRMED) { /* the stored topology is adopted and published */
            self_confirmed(m, e, taken);
            return;
        }
        event_rest(m, e, taken); /* SELF_UNKNOWN: as if the store had not been asked */
        return;
    }
    }
    AETHER_ASSERT(!"cluster actor: unknown reload");
}
