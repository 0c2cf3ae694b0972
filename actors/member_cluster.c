/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_cluster.c: the Cluster actor of a member (actors layer).
 *
 * DESIGN
 *  Every node: applies topology events (its own decisions are applied when
 *  decided, so their echo on the bus is skipped), calls the embedder's
 *  on_event for every event in order, and every heartbeat_interval_ms
 *  publishes a heartbeat and sends the leader a keep-alive: a JoinCluster
 *  request (idempotent for a healthy member; for a node that is not one yet,
 *  or was declared Failed while alive, it is the request to be admitted, with
 *  a new incarnation).
 *  Serving rights rest on the keep-alive's acknowledgement, never on merely
 *  hearing from the leader:
 *   1. the node reads its clock (s) just before sending keep-alive k and
 *      keeps s in a slot that travels as the request's reply argument;
 *   2. the leader, on accepting k, counts it as a heartbeat (receipt time
 *      r >= s) and replies OK naming the version of its current map
 *      ("map_version=V");
 *   3. on that reply the node first raises the version it knows the leader
 *      has to V (its map must be at least that recent for it to serve:
 *      aether_member_may_serve), then raises ack_sent_ns to s; it may serve
 *      until s + failure_timeout - fence_margin (member_serving_right);
 *   4. the leader declares a node failed only failure_timeout after the
 *      last heartbeat or keep-alive it received (>= r), and a new leader not
 *      before failure_timeout after it started leading (after the old
 *      leader's lease, and so every acknowledgement it gave, ended).
 *  So a node's right ends before anyone may be given its shards, whatever
 *  the network does: a node that hears the leader but is not heard (a
 *  one-way partition) gets no acknowledgement and stops serving in time.
 *  The margin covers clock drift between the two clocks; delays and lost
 *  replies only make the node stop earlier. Because the acknowledgement
 *  names the leader's map, a node that missed maps (and the LeaseRenewed
 *  that announce them) stops serving from its stale map at the first
 *  acknowledgement after them; one that hears nothing loses its right
 *  within failure_timeout - fence_margin < handoff_timeout: a handoff
 *  completed by decree never meets an old owner still serving.
 *  The leader (member_may_lead): decides commands (topology.h), applies and
 *  emits the events, replies; records heartbeats; declares Failed each
 *  healthy node silent for failure_timeout_ms (policy 4) as soon as its
 *  deadline passes (the check is timed for the earliest deadline, and runs
 *  at least every heartbeat interval), counting silence from no earlier
 *  than the moment it started leading, so a new leader does not fail nodes
 *  it has not had time to hear.
 *  Claims from the wire are judged against the leader's own record (DESIGN
 *  2.4): a heartbeat counts only when it names a healthy member's current
 *  incarnation (anything else - a ghost id, an older process, a Failed
 *  node's - is counted in aether_heartbeats_ignored_total and changes
 *  nothing, not even the size of the record); a MarkNodeFailed request from
 *  the wire is decided only when the leader has heard nothing from the node
 *  for more than failure_timeout_ms, as its own check would, unless it
 *  carries force (an operator: aetherctl fail --force), which is logged;
 *  a forced one for a node still heard makes the leader stop hearing it
 *  (no acknowledged keep-alive, no heartbeat counted) and the failure
 *  check fails it once it has been silent failure_timeout_ms, so it has
 *  fenced first (judge_request).
 *  Not sooner: a node stops serving by its own clock only once its
 *  keep-alives have gone unanswered for about failure_timeout_ms, and the
 *  leader hands a failed node's shards away at once (the decree), so a
 *  node failed while it can still serve would share its shards (aether-sim
 *  --extra-faults adversary, seeds 300006 and 300066: a forged request
 *  granted after two missed beats in a loss burst).
 *  The leader's own failure check (policy 4) is not a request: it decides
 *  from that record directly.
 *  Its changes reach the state store before anyone hears of them (a
 *  request to the store actor, one at a time; commands that come
 *  meanwhile wait behind it and are decided in order on the topology it
 *  leaves); a write whose outcome was lost is settled before the next
 *  decision, and a new leader rewrites the stored topology once read (the
 *  fence), so a timed-out write of anyone can never land behind a decision
 *  taken without it (member_topo_store.c). Its events are
 *  announced in the order of member_internal.h ("The leader's two commit
 *  points"): a NodeFailed or NodeLeft only once the assign actor has
 *  answered a barrier sent after the snapshot that has it (member_announce.c);
 *  meanwhile no departed node is re-admitted.
 *  It also completes drains: NodeLeft when ShardAssignment reports a
 *  draining node owns nothing (policy 7). A node asked to drain repeats its
 *  LeaveCluster every heartbeat until it has left.
 *  One process per node id (DESIGN 2.4: the newest process wins). Each
 *  process claims an incarnation (m->incarnation: its start time in wall
 *  ms; a rejoin after a failure claims the failed record's + 1) and knows
 *  which one it claims, so a record of its id at a higher incarnation is
 *  never its own:
 *   1. before its admission, a process that meets a record of another
 *      process of its id at or above its claim (an earlier process started
 *      with a clock ahead, or in the same millisecond of a clock stepped
 *      back) claims above it, so its admission supersedes it;
 *   2. once admitted, a process that meets its id at a higher incarnation -
 *      in a NodeJoined, in the stored topology, in its own decision as
 *      leader, or in a leader's ESUPERSEDED refusal of its keep-alive - is
 *      superseded: it stops serving at once (self_down, fenced), says so
 *      (an ERROR line, aether_superseded, on_superseded, ESUPERSEDED from
 *      the API), resigns if it leads, and never heartbeats, campaigns or
 *      sends a command again. The leader refuses its keep-alives from the
 *      admission on (topology.c), so its serving right lapses within
 *      failure_timeout - fence_margin even if it hears nothing.
 *   3. the leader assigns incarnations (topology.h, "Incarnations"): what a
 *      process claims is a hint; the record of its nonce is its own, and a
 *      record of its nonce at another incarnation is the one assigned to
 *      it: adopted (check_own_record), upward always, downward only while
 *      healthy and above the record it last asked a new one above.
 *
 * The actor's files (each with its own header comment; what they share:
 * member_cluster_internal.h, with the ordering argument for the store
 * requests):
 *  - member_cluster.c (this file): the actor - its state's lifecycle, the
 *    dispatch of its messages and the queue of those held behind a store
 *    request, the heartbeat tick and keep-alives (the serving rights
 *    above), one process per node id;
 *  - member_apply.c: event application (the term's sequence, reports
 *    about this node, LeaderElected);
 *  - member_admit.c: commands (judged, decided as leader, answered);
 *  - member_detect.c: failure detection and retention (the leader's
 *    heartbeat record, policy 4);
 *  - member_topo_store.c: the store requests (commits, the take-over's
 *    reads and fence, the settling of a write in doubt, re-reads,
 *    write-backs);
 *  - member_announce.c, member_shape.c: announcements, and admission with
 *    no stored terms.
 * Threading: all state below is owned by the cluster actor.
 */
#include "member_cluster_internal.h"

#include <stdlib.h>
#include <string.h>

/* A node from before admission checks asks every heartbeat. */
#define REFUSE_LOG_WINDOW_NS (10u * AETHER_NS_PER_S)
/* Events dropped past CLUSTER_HELD_EVENTS_MAX: one line per window. */
#define HELD_LOG_WINDOW_NS (1u * AETHER_NS_PER_S)

aether_status member_cluster_init(aether_member *m)
{
    m->cs = calloc(1, sizeof(*m->cs));
    if (m->cs == NULL)
        return AETHER_ENOMEM;
    aether_log_ratelimit_init(&m->cs->refuse_log, REFUSE_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&m->cs->hb_log, REFUSE_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&m->cs->fail_log, REFUSE_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&m->cs->force_log, REFUSE_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&m->cs->seq_log, SEQ_LOG_WINDOW_NS);
    aether_log_ratelimit_init(&m->cs->held_log, HELD_LOG_WINDOW_NS);
    aether_status st = aether_topology_init(&m->cs->heard, &m->cfg.node);
    return st != AETHER_OK ? st : aether_topology_init(&m->cs->topo, &m->cfg.node);
}

/* Frees a held message of `type` (its command answered "leader stopped"). */
static void held_free(uint16_t type, void *ptr)
{
    if (type == MSG_COMMAND) {
        member_cmd_box *b = ptr;
        if (b->reply)
            b->reply(b->reply_arg, AETHER_ECLOSED, "leader stopped");
        member_cmd_box_free(b);
    } else if (type == MSG_EVENT) {
        aether_event_release(ptr);
    } else {
        free(ptr);
    }
}

void member_cluster_fini(aether_member *m)
{
    if (m->cs == NULL)
        return;
    member_topo_store_fini(m);
    aether_topology_fini(&m->cs->topo);
    aether_topology_fini(&m->cs->heard);
    for (uint32_t i = 0; i < m->cs->held_count; i++) {
        cluster_held *h = &m->cs->held[(m->cs->held_head + i) % m->cs->held_cap];
        held_free(h->type, h->ptr);
    }
    free(m->cs->held);
    for (uint32_t i = 0; i < m->cs->ann_count; i++)
        aether_event_release(m->cs->ann[m->cs->ann_head + i].e);
    free(m->cs->ann);
    free(m->cs->hb);
    free(m->cs);
    m->cs = NULL;
}

void member_cluster_drop(void *state, const aether_msg *msg)
{
    (void)state;
    if (msg->type == MSG_COMMAND) {
        member_cmd_box *b = msg->ptr;
        if (b->reply)
            b->reply(b->reply_arg, AETHER_ECLOSED, "leader stopped");
        member_cmd_box_free(b);
        return;
    }
    if (msg->flags & AETHER_MSG_REF)
        return; /* released by the runtime */
    if (msg->type == MSG_STORE_DONE) {
        member_store_req_free(msg->ptr);
        return;
    }
    free(msg->ptr);
}

void member_cluster_start(aether_member *m)
{
    uint64_t hb_ns = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    aether_msg hb = { .type = MSG_TICK_HEARTBEAT };
    /* Generation 0: the controlling thread must not touch the actor's
     * state (the transport is bound, the actor may be running). */
    aether_msg fc = { .type = MSG_TICK_FAILCHECK, .arg64 = 0 };
    (void)aether_timer_start(m->cluster, 0, hb_ns, &hb, NULL);
    (void)aether_timer_start(m->cluster, hb_ns, 0, &fc, NULL);
}

/* Step 2 of "one process per node id": stop for good. Cluster actor. */
static void supersede(aether_member *m, uint64_t by, const char *how)
{
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return;
    uint64_t mine = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->superseded_by, by, __ATOMIC_RELAXED);
    __atomic_store_n(&m->self_down, 1, __ATOMIC_SEQ_CST); /* aether_member_may_serve: false now */
    __atomic_store_n(&m->superseded, 1, __ATOMIC_SEQ_CST);
    if (by != 0)
        AETHER_ERROR(MEMBER_LOG, "%s: superseded by a newer process of node %s (incarnation %llu > "
                     "%llu, %s): serving nothing, never campaigning or heartbeating again",
                     m->cfg.node.str, m->cfg.node.str, (unsigned long long)by,
                     (unsigned long long)mine, how);
    else
        AETHER_ERROR(MEMBER_LOG, "%s: superseded by a newer process of node %s (incarnation %llu, "
                     "%s): serving nothing, never campaigning or heartbeating again",
                     m->cfg.node.str, m->cfg.node.str, (unsigned long long)mine, how);
    member_send_tick(m->assign, MSG_SUPERSEDED, by); /* release everything, fence */
    member_send_tick(m->lease, MSG_SUPERSEDED, by);  /* resign if leading */
    if (m->cb.on_superseded != NULL)
        m->cb.on_superseded(m->cb.arg, mine, by);
}

/* Step 1: this process, not admitted yet, claims above `held` (an earlier
 * process's incarnation of our id) - by a step of its own, not + 1, which
 * that process claims when it rejoins after being failed (the same claim
 * would make two processes one). Cluster actor. */
static void claim_above(aether_member *m, uint64_t held, const char *what)
{
    uint64_t claim = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    if (held < claim)
        return;
    uint64_t h = (m->deps.seed ^ m->self_info.incarnation) * UINT64_C(0x9e3779b97f4a7c15);
    uint64_t next = held + 2 + ((h >> 32) % CLAIM_STEP_MAX);
    AETHER_WARN(MEMBER_LOG, "%s: node %s is held by incarnation %llu (%s), above this process's "
                "%llu: claiming %llu",
                m->cfg.node.str, m->cfg.node.str, (unsigned long long)held, what,
                (unsigned long long)claim, (unsigned long long)next);
    __atomic_store_n(&m->incarnation, next, __ATOMIC_SEQ_CST);
}

/* Steps 1 and 2 of "one process per node id", on every topology this actor
 * publishes: which record of our id is ours, and whether a newer process
 * holds it. */
static void check_own_record(aether_member *m)
{
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return;
    const aether_node_info *me = aether_topology_find(&m->cs->topo, &m->cfg.node);
    if (me == NULL)
        return;
    uint64_t claim = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    /* Our record at another incarnation than we claim: the one the leader
     * assigned us (topology.h, "Incarnations"), ours from now on. */
    if (me->nonce != 0 && me->nonce == m->self_info.nonce && me->incarnation != claim) {
        /* Down is ours only above the record we asked to leave behind
         * (tick_heartbeat): the one below is what we asked a new one for. */
        if (me->incarnation > claim ||
            (aether_node_status_is_healthy(me->status) && me->incarnation > m->cs->asked_above)) {
            AETHER_INFO(MEMBER_LOG, "%s: the leader assigned this process incarnation %llu (it "
                        "asked as %llu)", m->cfg.node.str, (unsigned long long)me->incarnation,
                        (unsigned long long)claim);
            __atomic_store_n(&m->incarnation, me->incarnation, __ATOMIC_SEQ_CST);
            claim = me->incarnation;
        }
    }
    if (member_record_is_newer(m, me) && __atomic_load_n(&m->admitted, __ATOMIC_SEQ_CST)) {
        supersede(m, me->incarnation, "its NodeJoined or the stored topology");
        return;
    }
    /* Not admitted yet, and another process of our id holds a record at or
     * above our claim: an earlier process (its clock ahead of ours, or a
     * clock stepped back between two runs, so both started "at" the same
     * millisecond: the leader refuses an equal claim as ESTALE). This one
     * is the newer: claim above it - by a step of its own, not + 1, which
     * that process claims when it rejoins after being failed (the same
     * claim would make two processes one). */
    if (!__atomic_load_n(&m->admitted, __ATOMIC_SEQ_CST) && !member_record_is_mine(m, me) &&
        me->incarnation >= claim) {
        claim_above(m, me->incarnation, aether_node_status_name(me->status));
        return;
    }
    if (member_record_is_mine(m, me) && me->incarnation == claim && aether_node_status_is_healthy(me->status))
        __atomic_store_n(&m->admitted, 1, __ATOMIC_SEQ_CST);
}

void member_cluster_publish_self_status(aether_member *m)
{
    check_own_record(m);
    const aether_node_info *me = aether_topology_find(&m->cs->topo, &m->cfg.node);
    __atomic_store_n(&m->self_status, member_self_status_word(me), __ATOMIC_RELAXED);
    /* This run drained and left: it has nothing left to do, and must not
     * come back as a new node once the leader forgets its record. */
    if (me != NULL && me->status == AETHER_NODE_LEFT && __atomic_load_n(&m->admitted, __ATOMIC_SEQ_CST) &&
        member_record_is_mine(m, me))
        __atomic_store_n(&m->self_left, 1, __ATOMIC_SEQ_CST); /* this process's record, not a past one's */
    member_detect_note_departures(m);
    uint32_t others = 0;
    for (uint32_t i = 0; i < m->cs->topo.count; i++)
        others += m->cs->topo.nodes[i].status == AETHER_NODE_ACTIVE &&
                  !aether_node_id_equal(&m->cs->topo.nodes[i].id, &m->cfg.node);
    __atomic_store_n(&m->active_others, others, __ATOMIC_RELAXED);
    aether_topology_snapshot *ts = aether_topology_snapshot_create(&m->cs->topo);
    if (ts != NULL) {
        ts->publication = ++m->cs->publications;
        aether_snapshot_publish(&m->topo_slot, &ts->snap);
    }
    else
        AETHER_ERROR(MEMBER_LOG, "%s: out of memory publishing the topology", m->cfg.node.str);
    __atomic_store_n(&m->topology_version, m->cs->topo.version, __ATOMIC_RELAXED);
}

/* Tells the assign actor that e has been applied and published. */
void member_cluster_notify_assign(aether_member *m, aether_event *e)
{
    aether_msg msg = { .type = MSG_TOPOLOGY, .flags = AETHER_MSG_REF, .ptr = &aether_event_retain(e)->ref };
    if (aether_actor_send(m->assign, &msg) != AETHER_OK) {
        AETHER_WARN(MEMBER_LOG, "%s: assign actor did not take %s", m->cfg.node.str,
                    aether_event_type_name(e->type));
        aether_event_release(e);
    }
}

static void reply_cb(void *arg, aether_status st, const char *reason)
{
    aether_member *m = arg;
    /* Only a JoinCluster is refused so (and EPERM comes only from a
     * leader's allowed_nodes: the transport maps NATS refusals otherwise). */
    if (st == AETHER_EINCOMPATIBLE || st == AETHER_EPERM)
        member_note_refused(m, reason);
    member_reply_box *b = malloc(sizeof(*b));
    if (b == NULL)
        return;
    b->status = st;
    snprintf(b->reason, sizeof(b->reason), "%s", reason ? reason : "");
    member_send_owned(m, m->cluster, MSG_REPLY, b);
}

/* A keep-alive's reply (transport thread): on OK the serving right moves to
 * the request's send time (step 3); the slot is free again either way. */
static void keepalive_reply(void *arg, aether_status st, const char *reason)
{
    keepalive_slot *k = arg;
    if (st == AETHER_EINCOMPATIBLE || st == AETHER_EPERM)
        member_note_refused(k->m, reason);
    if (st != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: keep-alive refused (%s): %s", k->m->cfg.node.str,
                     aether_status_str(st), reason ? reason : "");
    if (st == AETHER_ESUPERSEDED)
        reply_cb(k->m, st, reason); /* the cluster actor decides (MSG_REPLY) */
    /* Only an acknowledgement that names the leader's map counts: the node
     * learns from it whether its own map is current (step 3). */
    size_t plen = strlen(KEEPALIVE_MAP_PREFIX);
    char *end = NULL;
    unsigned long long version = 0;
    if (st == AETHER_OK && reason != NULL && strncmp(reason, KEEPALIVE_MAP_PREFIX, plen) == 0) {
        version = strtoull(reason + plen, &end, 10);
        if (end == reason + plen || *end != '\0')
            st = AETHER_EINVAL;
    } else if (st == AETHER_OK) {
        st = AETHER_EINVAL;
    }
    if (st == AETHER_OK) {
        aether_member *m = k->m;
        /* First what the leader's map is, then the right: never a moment
         * with the right extended and our staleness unknown. */
        uint64_t ann = __atomic_load_n(&m->announced_version, __ATOMIC_SEQ_CST);
        while (version > ann && !__atomic_compare_exchange_n(&m->announced_version, &ann, version,
                                                             false, __ATOMIC_SEQ_CST,
                                                             __ATOMIC_SEQ_CST))
            ;
        uint64_t sent = k->sent_ns;
        uint64_t cur = __atomic_load_n(&m->ack_sent_ns, __ATOMIC_RELAXED);
        while (sent > cur && !__atomic_compare_exchange_n(&m->ack_sent_ns, &cur, sent, false,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
    }
    __atomic_store_n(&k->busy, 0, __ATOMIC_RELEASE);
}

static void send_to_leader(aether_member *m, const aether_command *c)
{
    aether_status st = aether_transport_send_command(m->deps.transport, c, reply_cb, m);
    if (st != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: %s not sent (%s); retrying later", m->cfg.node.str,
                     aether_command_type_name(c->type), aether_status_str(st));
}

void member_cluster_base_command(aether_member *m, aether_command *c, aether_command_type type)
{
    memset(c, 0, sizeof(*c));
    c->type = type;
    snprintf(c->cluster, sizeof(c->cluster), "%s", m->cfg.cluster);
    c->term = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
    c->generation = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    c->sender = m->cfg.node;
}

/* member_internal.h, step 6: while anything waits to be announced, a
 * barrier or its ack may have found a full mailbox; ask again (the assign
 * actor answers any number; acks coalesce). */
static void retry_announcements(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    if (cs->ann_count == 0)
        return;
    if (cs->barrier_acked < cs->barrier_seq)
        cs->barrier_sent = cs->barrier_acked;
    member_announce_flush(m);
}

/* This tick's keep-alive (a JoinCluster) c, sent to the leader. Step 1: a
 * free slot carries the send time; with none free (replies slower than
 * KEEPALIVE_SLOTS ticks) this tick's request earns no right. */
static void send_keepalive(aether_member *m, const aether_command *c)
{
    member_cluster_state *cs = m->cs;
    keepalive_slot *k = NULL;
    for (uint32_t i = 0; i < KEEPALIVE_SLOTS && k == NULL; i++)
        if (!__atomic_load_n(&cs->keepalive[i].busy, __ATOMIC_ACQUIRE))
            k = &cs->keepalive[i];
    aether_status st;
    if (k != NULL) {
        k->m = m;
        k->sent_ns = member_now_ns(m);
        __atomic_store_n(&k->busy, 1, __ATOMIC_RELAXED);
        st = aether_transport_send_command(m->deps.transport, c, keepalive_reply, k);
        if (st != AETHER_OK)
            __atomic_store_n(&k->busy, 0, __ATOMIC_RELAXED); /* never sent: no reply comes */
    } else {
        st = aether_transport_send_command(m->deps.transport, c, reply_cb, m);
    }
    if (st != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: keep-alive not sent (%s)", m->cfg.node.str,
                     aether_status_str(st));
}

/* MSG_TICK_HEARTBEAT: pending announcements, this node's shape, then (a
 * member that may speak for its id) its heartbeat and its keep-alive - a
 * request for a new incarnation when its record is not healthy - and a
 * drain asked again. */
static void tick_heartbeat(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    retry_announcements(m);
    member_shape_check_self(m);
    if (__atomic_load_n(&m->refused, __ATOMIC_ACQUIRE))
        return; /* refused as incompatible: asking again cannot help (member.h) */
    if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return; /* the newer process speaks for our id now */
    /* This run left for good: no heartbeat either. A leader that admitted
     * our id again (a join this process sent before it learnt it had left)
     * must stop hearing it, fail it and hand its shards on; heartbeats
     * without the keep-alives that would let it serve kept such a record
     * Active and its shards served by nobody (seed 9085). */
    if (__atomic_load_n(&m->self_left, __ATOMIC_SEQ_CST))
        return;
    uint64_t claim = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    aether_status hs = aether_transport_publish_heartbeat(m->deps.transport, &m->cfg.node, claim);
    __atomic_store_n(&m->transport_down, hs != AETHER_OK, __ATOMIC_RELAXED);
    member_apply_self_report_retry(m); /* a report the store could not judge yet: ask again */
    const aether_node_info *me = aether_topology_find(&cs->topo, &m->cfg.node);
    /* Ours: the record at the incarnation this process claims (a higher one
     * is another process's: check_own_record). */
    bool ours = me != NULL && member_record_is_mine(m, me);
    /* Down on a report the store could not confirm yet (pending) is no
     * reason to rejoin: our keep-alive keeps the incarnation the leader
     * knows. Once the store has answered, the flag is the assign actor's
     * to clear (a refutation it accepts) or ours to act on (rejoin). */
    bool down = __atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST) && !cs->self_report_pending;
    bool healthy = ours && aether_node_status_is_healthy(me->status) && !down;
    if ((ours && me->status == AETHER_NODE_LEFT) || __atomic_load_n(&m->self_left, __ATOMIC_SEQ_CST))
        return; /* this run of the node left for good (even once its record is forgotten) */
    aether_command c;
    member_cluster_base_command(m, &c, AETHER_CMD_JOIN_CLUSTER);
    c.data.join.info = m->self_info;
    c.data.join.terms = m->admission;
    /* The map we hold (of our own terms: adopt installs no other), for a
     * leader that took over from nothing (member_cluster_lead_command, "newcomer", and the
     * quorum of configuration); with none of this generation, the one we
     * held in an earlier one: evidence of our shape all the same. */
    if (__atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST) != 0)
        c.data.join.map_term = __atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST);
    else
        c.data.join.map_term = __atomic_load_n(&m->old_map_term, __ATOMIC_SEQ_CST);
    /* A process down while its record is still Draining here has heard a
     * report about itself that this actor has not applied yet - most
     * likely its own NodeLeft: it waits for the record to say which (Left:
     * it stops below; Failed: it rejoins), rather than ask a new
     * incarnation the leader would grant over its Left record. */
    bool wait_record = down && ours && me->status == AETHER_NODE_DRAINING;
    if (!healthy && !wait_record) {
        if (ours) { /* declared failed (or about to be): ask for a newer incarnation */
            claim = (me->incarnation > claim ? me->incarnation : claim) + 1;
            cs->asked_above = me->incarnation; /* check_own_record adopts only above it */
            AETHER_INFO(MEMBER_LOG, "%s: its record (incarnation %llu) is %s%s: asking for a new "
                        "incarnation", m->cfg.node.str, (unsigned long long)me->incarnation,
                        aether_node_status_name(me->status), down ? ", and this process is down" : "");
            __atomic_store_n(&m->incarnation, claim, __ATOMIC_SEQ_CST);
        }
        cs->join_requests++;
    }
    c.data.join.info.incarnation = claim; /* healthy: a keep-alive (idempotent) */
    send_keepalive(m, &c);
    /* A drain survives a lost request, a change of leader and a failure
     * followed by a rejoin: ask again (idempotent) until this run has left. */
    if (cs->drain_requested && healthy) {
        aether_command l;
        member_cluster_base_command(m, &l, AETHER_CMD_LEAVE_CLUSTER);
        l.data.leave.node = m->cfg.node;
        send_to_leader(m, &l);
    }
}

/* MSG_LEADER_NOTE: the embedder's on_leader_changed, on this actor (the
 * thread of on_event). The lease actor noted the term before it sent
 * this: every event taken after this callback is judged against it
 * (in_sequence). The caller frees b. */
static void on_leader_note(aether_member *m, const member_leader_box *b)
{
    /* A generation change since: the note is of a term of the ended
     * generation, which the embedder must not take for one of the new
     * (terms start again there: seed 100168 of kv-aba, told term 138 of
     * the old generation after the new one began, then term 109 of the
     * new one). The new generation's leader is noted when known. */
    bool ended = b->generation_changes != __atomic_load_n(&m->generation_changes, __ATOMIC_RELAXED);
    AETHER_ASSERT(ended || b->term <= __atomic_load_n(&m->highest_term, __ATOMIC_ACQUIRE));
    if (ended)
        AETHER_DEBUG(MEMBER_LOG, "%s: leader of term %llu not reported: its generation ended",
                     m->cfg.node.str, (unsigned long long)b->term);
    else if (m->cb.on_leader_changed != NULL)
        m->cb.on_leader_changed(m->cb.arg, b->leader.len > 0 ? &b->leader : NULL, b->term);
}

/* MSG_REPLY: the leader's answer to a command this node sent (a
 * keep-alive, a drain, ...). The caller frees b. */
static void on_reply(aether_member *m, const member_reply_box *b)
{
    /* Step 2: a leader says a newer process holds our id. Only an
     * admitted process can be superseded: one not admitted yet claims
     * above the record once it reads it (step 1). */
    if (b->status == AETHER_ESUPERSEDED) {
        unsigned long long by = 0;
        const char *p = strstr(b->reason, "superseded by incarnation ");
        if (p != NULL)
            by = strtoull(p + strlen("superseded by incarnation "), NULL, 10);
        if (__atomic_load_n(&m->admitted, __ATOMIC_SEQ_CST)) {
            /* A late refusal of a claim this process has since raised
             * (it rejoined above it) is about its past, not a newer one. */
            if ((uint64_t)by > __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST))
                supersede(m, (uint64_t)by, "the leader refused its keep-alive");
        } else if (by != 0 && !__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
            /* Step 1 by the refusal: the process holding our id may be
             * the leader itself, whose events we never apply (their
             * emitter is our id). */
            claim_above(m, (uint64_t)by, "the leader's refusal");
    }
    if (b->status != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: leader said %s: %s", m->cfg.node.str,
                     aether_status_str(b->status), b->reason);
}

/* ---- messages held behind a store request --------------------------------------
 * (member_cluster_internal.h, "The cluster actor's store requests".) */

void member_cluster_hold(aether_member *m, uint16_t type, void *ptr, bool at_front)
{
    member_cluster_state *cs = m->cs;
    AETHER_ASSERT(type == MSG_COMMAND || type == MSG_EVENT || type == MSG_LEADER_NOTE);
    bool room = type != MSG_EVENT || cs->held_events < CLUSTER_HELD_EVENTS_MAX;
    if (room && cs->held_count == cs->held_cap) {
        uint32_t cap = cs->held_cap ? cs->held_cap * 2 : 16;
        cluster_held *q = malloc((size_t)cap * sizeof(*q));
        if (q != NULL) {
            for (uint32_t i = 0; i < cs->held_count; i++)
                q[i] = cs->held[(cs->held_head + i) % cs->held_cap];
            free(cs->held);
            cs->held = q;
            cs->held_cap = cap;
            cs->held_head = 0;
        }
        room = q != NULL;
    }
    if (!room) {
        /* A command is told to retry; an event is lost as on the wire, and
         * the store read instead (the authority); a leader note is lost as
         * to a full mailbox. */
        if (type == MSG_COMMAND) {
            member_cmd_box *b = ptr;
            aether_err why;
            member_admit_answer(m, b, aether_err_set(&why, AETHER_EUNAVAILABLE, "leader busy; retry"),
                                &why, false);
            member_cmd_box_free(b);
            return;
        }
        if (type == MSG_EVENT)
            cs->topo_dirty = true;
        cs->held_dropped++;
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&cs->held_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: a message waiting for a topology read was dropped (%llu so "
                        "far; %u events wait) [%llu more suppressed]", m->cfg.node.str,
                        (unsigned long long)cs->held_dropped, cs->held_events,
                        (unsigned long long)suppressed);
        held_free(type, ptr);
        return;
    }
    if (at_front) {
        cs->held_head = (cs->held_head + cs->held_cap - 1) % cs->held_cap;
        cs->held[cs->held_head] = (cluster_held){ .type = type, .ptr = ptr };
    } else {
        cs->held[(cs->held_head + cs->held_count) % cs->held_cap] = (cluster_held){ .type = type, .ptr = ptr };
    }
    cs->held_count++;
    cs->held_events += type == MSG_EVENT;
}

/* Handles one message of `type` that nothing holds any more (taken over). */
static void run_unheld(aether_member *m, uint16_t type, void *ptr)
{
    switch (type) {
    case MSG_COMMAND:
        member_admit_command(m, ptr, true); /* held again, at the front, if it starts a read */
        break;
    case MSG_EVENT:
        member_apply_event(m, ptr);
        aether_event_release(ptr);
        break;
    case MSG_LEADER_NOTE:
        on_leader_note(m, ptr);
        free(ptr);
        break;
    default:
        AETHER_ASSERT(!"cluster actor: a held message of an unknown type");
    }
}

void member_cluster_drain(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    /* Bounded: each turn takes one message off the queue, or puts the one
     * it took back at the front and stops (the request it started holds
     * it); a message handled here adds none behind itself. */
    while (cs->held_count > 0 && !member_topo_store_holds(cs->io, cs->held[cs->held_head].type)) {
        cluster_held h = cs->held[cs->held_head];
        cs->held_head = (cs->held_head + 1) % cs->held_cap;
        cs->held_count--;
        cs->held_events -= h.type == MSG_EVENT;
        run_unheld(m, h.type, h.ptr);
    }
}

/* A message of `type` waits if the request in flight holds it, or if any
 * message waits already (arrival order is kept across kinds). */
static bool must_hold(const member_cluster_state *cs, uint16_t type)
{
    return cs->held_count > 0 || member_topo_store_holds(cs->io, type);
}

void member_cluster_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_member *m = state;
    member_cluster_state *cs = m->cs;
    (void)self;
    member_apply_follow_generation(m);
    switch (msg->type) {
    case MSG_EVENT:
        if (must_hold(cs, MSG_EVENT))
            member_cluster_hold(m, MSG_EVENT, aether_event_retain((aether_event *)msg->ptr), false);
        else
            member_apply_event(m, (const aether_event *)msg->ptr);
        break;
    case MSG_COMMAND:
        member_admit_command(m, msg->ptr, false); /* takes the box over; held if it must wait */
        break;
    case MSG_STORE_DONE: {
        member_store_req *r = msg->ptr;
        member_topo_store_done(m, r);
        member_store_req_free(r);
        break;
    }
    case MSG_ANNOUNCE_ACK: /* member_internal.h, steps 2-3 */
        AETHER_ASSERT(msg->arg64 <= cs->barrier_seq); /* the assign actor echoes ours */
        if (msg->arg64 > cs->barrier_acked)
            cs->barrier_acked = msg->arg64;
        member_announce_flush(m);
        break;
    case MSG_HEARTBEAT:
        member_detect_on_heartbeat(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_TICK_HEARTBEAT:
        tick_heartbeat(m);
        break;
    case MSG_TICK_FAILCHECK:
        if (msg->arg64 == cs->failcheck_gen)
            member_detect_tick(m);
        break;
    case MSG_DRAINED:
        member_admit_drained(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_DRAIN_SELF: {
        if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
            break; /* a LeaveCluster would drain the newer process of our id */
        cs->drain_requested = true;
        aether_command c;
        member_cluster_base_command(m, &c, AETHER_CMD_LEAVE_CLUSTER);
        c.data.leave.node = m->cfg.node;
        send_to_leader(m, &c);
        break;
    }
    case MSG_SEND_COMMAND: {
        aether_command *c = msg->ptr;
        if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST)) {
            free(c); /* it speaks for our id no more */
            break;
        }
        c->term = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
        c->generation = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
        send_to_leader(m, c);
        free(c);
        break;
    }
    case MSG_LEADER_NOTE:
        /* In the order of the events around it (the embedder's two
         * callbacks are one sequence: member_notify_leader). */
        if (must_hold(cs, MSG_LEADER_NOTE))
            member_cluster_hold(m, MSG_LEADER_NOTE, msg->ptr, false);
        else {
            on_leader_note(m, msg->ptr);
            free(msg->ptr);
        }
        break;
    case MSG_REPLY:
        on_reply(m, msg->ptr);
        free(msg->ptr);
        break;
    default:
        AETHER_ASSERT(!"cluster actor: unknown message type");
    }
    /* What waits is held by the request in flight (else it would have run). */
    AETHER_ASSERT(cs->held_count == 0 || member_topo_store_holds(cs->io, cs->held[cs->held_head].type));
}
