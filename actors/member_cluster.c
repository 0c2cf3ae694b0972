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
 *  Its changes reach the state store before anyone hears of them
 *  (commit_send: a request to the store actor, one at a time; commands
 *  that come meanwhile wait behind it and are decided in order on the
 *  topology it leaves, commit_done); a write whose outcome was lost is settled before the
 *  next decision (settle_doubt), and a new leader rewrites the stored
 *  topology once read (fence_topology_key), so a timed-out write of anyone
 *  can never land behind a decision taken without it. Its events are
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
 * Threading: all state below is owned by the cluster actor.
 */
#include "member_cluster_internal.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"
#include "topology_json.h"

#include <jansson.h>

#include <stdlib.h>
#include <string.h>



/* A node from before admission checks asks every heartbeat. */
#define REFUSE_LOG_WINDOW_NS (10u * AETHER_NS_PER_S)

static void commit_free(aether_member *m, struct member_topo_commit *tc, aether_status st,
                        const aether_err *why);

static hb_entry *hb_find(member_cluster_state *cs, const aether_node_id *id, bool create)
{
    uint32_t lo = 0, hi = cs->n_hb;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = aether_node_id_compare(&cs->hb[mid].id, id);
        if (c == 0)
            return &cs->hb[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!create)
        return NULL;
    if (cs->n_hb == cs->cap_hb) {
        uint32_t cap = cs->cap_hb ? cs->cap_hb * 2 : 16;
        hb_entry *v = realloc(cs->hb, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        cs->hb = v;
        cs->cap_hb = cap;
    }
    memmove(&cs->hb[lo + 1], &cs->hb[lo], (size_t)(cs->n_hb - lo) * sizeof(*cs->hb));
    cs->hb[lo].id = *id;
    cs->hb[lo].last_ns = 0;
    cs->hb[lo].departed_ns = 0;
    cs->hb[lo].forced_inc = 0;
    cs->n_hb++;
    return &cs->hb[lo];
}

/* After a NodeJoined (e of another type: nothing): the admitted node is a
 * new process, heard now; a forced failure pending for the old one is moot. */
static void hb_heard_if_joined(aether_member *m, const aether_event *e)
{
    if (e->type != AETHER_EVT_NODE_JOINED)
        return;
    hb_entry *h = hb_find(m->cs, &e->data.node_joined.node, true);
    if (h != NULL) {
        h->last_ns = member_now_ns(m);
        h->forced_inc = 0;
    }
}

/* Drops the records of ids the topology no longer has (forgotten nodes):
 * the table stays as small as the topology, plus nodes heard from but not
 * admitted yet - those are kept while they keep talking. O(entries * log
 * nodes). */
static void hb_prune(member_cluster_state *cs, uint64_t now_ns, uint64_t keep_ns)
{
    uint32_t w = 0;
    for (uint32_t r = 0; r < cs->n_hb; r++) {
        hb_entry *h = &cs->hb[r];
        bool known = aether_topology_find(&cs->topo, &h->id) != NULL;
        bool recent = h->last_ns != 0 && now_ns >= h->last_ns && now_ns - h->last_ns < keep_ns;
        if (known || (recent && h->departed_ns == 0))
            cs->hb[w++] = *h;
    }
    cs->n_hb = w;
}

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
    aether_status st = aether_topology_init(&m->cs->heard, &m->cfg.node);
    return st != AETHER_OK ? st : aether_topology_init(&m->cs->topo, &m->cfg.node);
}

void member_cluster_fini(aether_member *m)
{
    if (m->cs == NULL)
        return;
    aether_topology_fini(&m->cs->topo);
    aether_topology_fini(&m->cs->heard);
    free(m->cs->doubt_json);
    aether_event_release(m->cs->doubt_event);
    aether_err closed;
    aether_err_set(&closed, AETHER_ECLOSED, "leader stopped");
    if (m->cs->commit != NULL)
        commit_free(m, m->cs->commit, AETHER_ECLOSED, &closed);
    for (uint32_t i = 0; i < m->cs->cmdq_count; i++) {
        member_cmd_box *b = m->cs->cmdq[(m->cs->cmdq_head + i) % m->cs->cmdq_cap];
        if (b->reply)
            b->reply(b->reply_arg, AETHER_ECLOSED, "leader stopped");
        member_cmd_box_free(b);
    }
    free(m->cs->cmdq);
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

/* (Re)arms the failure check for at_ns (this node's clock); older timers
 * become stale. Cluster actor only. */
static void failcheck_at(aether_member *m, uint64_t at_ns)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t delay = at_ns > now ? at_ns - now : 0;
    if (delay > 0 && delay < FAILCHECK_SLACK_NS)
        delay = FAILCHECK_SLACK_NS;
    cs->failcheck_at_ns = now + delay;
    cs->failcheck_gen++;
    aether_msg fc = { .type = MSG_TICK_FAILCHECK, .arg64 = cs->failcheck_gen };
    (void)aether_timer_start(m->cluster, delay, 0, &fc, NULL);
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

/* Retention's clock (DESIGN 2): when this node first saw each node Left or
 * Failed, by its own clock. A node that comes to lead keeps what it saw as a
 * follower; one it saw depart only in a stored topology counts from then. So
 * a change of leader may delay forgetting, never hasten it. */
static void note_departures(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    for (uint32_t i = 0; i < cs->topo.count; i++) { /* bounded: AETHER_TOPOLOGY_NODES_MAX */
        const aether_node_info *n = &cs->topo.nodes[i];
        bool departed = aether_node_status_is_departed(n->status);
        hb_entry *h = hb_find(cs, &n->id, departed);
        if (h == NULL)
            continue;
        if (!departed)
            h->departed_ns = 0;
        else if (h->departed_ns == 0)
            h->departed_ns = now;
    }
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
    note_departures(m);
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

/* Any node: adopt the stored topology (we missed events: paused, cut off,
 * started late, or just elected). Every change a leader announced is
 * there (store first), so it is never behind what we applied; `force`
 * adopts it even when its version is not above ours (after a gap our
 * version says little, and a new leader starts from the store). True if
 * the store answered. */
static bool load_topology(aether_member *m, bool force)
{
    member_cluster_state *cs = m->cs;
    aether_topology t;
    uint64_t rev = 0;
    char *json = NULL;
    size_t len = 0;
    aether_status st = member_state_get(m, MEMBER_STATE_TOPOLOGY, &json, &len, &rev);
    if (st == AETHER_OK)
        st = member_state_topology_decode(m, json, len, force ? 0 : cs->topo.version, &t);
    free(json);
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
    for (uint32_t i = 0; i < cs->topo.count; i++) {
        hb_entry *h = hb_find(cs, &cs->topo.nodes[i].id, true);
        if (h != NULL && h->last_ns == 0)
            h->last_ns = member_now_ns(m);
    }
    /* A node the leader forgot is gone from here too. */
    hb_prune(cs, member_now_ns(m), (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS);
    member_cluster_publish_self_status(m);
    return true;
}

/* Policy 10, strictly: a new leader decides nothing before it has read the
 * stored topology once in its term (a change it missed may be there). */
static bool settle_doubt(aether_member *m);

static bool fence_topology_key(aether_member *m);

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
 * store while catching up, or one this node missed. Without it a consumer of the events (and the observer
 * of tools/chaos) would see shards leave a node nobody declared Failed.
 * Others may have applied some of them already: applying again changes
 * nothing. The snapshot that has them is published already (load_topology):
 * they join the announcement queue, empty at this point (state_loaded), in
 * `term` (member_internal.h, "The leader's two commit points"). False if
 * there is no room for them (out of memory): nothing queued. */
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

/* Admission starts with the leader itself: the stored map says what the
 * cluster runs (shard_count, replication). A leader that differs (it won
 * the lease before anyone could refuse it) must decide nothing - not even
 * its own admission - so this runs before the first decision of each term.
 * False if the store did not answer. */
static bool check_stored_map_terms(aether_member *m, bool *absent)
{
    char *json = NULL;
    size_t len = 0;
    aether_status st = member_state_get(m, MEMBER_STATE_MAP, &json, &len, NULL);
    *absent = st == AETHER_ENOTFOUND;
    if (st == AETHER_ENOTFOUND)
        return true; /* a new cluster, or the state bucket lost: see member_shape_newcomer_refuses */
    if (st != AETHER_OK)
        return false;
    aether_shardmap *stored = NULL;
    aether_err err;
    uint64_t gen = 0;
    st = aether_shardmap_codec_decode(json, len, &stored, &gen, &err);
    free(json);
    if (st != AETHER_OK)
        return true; /* unreadable: the assign actor says so and does not adopt it */
    st = member_state_generation_check(m, MEMBER_STATE_MAP, gen, stored->version);
    if (st != AETHER_OK) {
        /* A lost generation's map (member_state.c, "Generations"): none of
         * ours is stored; or we follow none yet: ask again later. */
        aether_shardmap_destroy(stored);
        *absent = st == AETHER_ESTALE;
        return st == AETHER_ESTALE;
    }
    if (stored->shard_count != m->cfg.shard_count || stored->replication != m->cfg.replication) {
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

static bool state_loaded(aether_member *m, aether_term term)
{
    member_cluster_state *cs = m->cs;
    if (!settle_doubt(m))
        return false;
    if (cs->loaded_term == term)
        return true;
    /* Read the store only with nothing left to announce (a reload within
     * the term): what it has and `heard` lacks is then exactly what nobody
     * announced. A new term's queue holds only entries of ended terms,
     * dropped here (member_internal.h, step 5). */
    member_announce_flush(m);
    if (cs->ann_count > 0)
        return false;
    bool absent = false;
    if (!check_stored_map_terms(m, &absent) || member_incompatible(m))
        return false; /* not a leader for this cluster: it neither fences nor announces */
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
    /* Read, then fence: rewriting the key moves its revision, so a write of
     * the previous leader still in flight (a timed-out one) can never land
     * after what we read. */
    if (load_topology(m, true) && fence_topology_key(m)) {
        if (cs->shape_term == term && !cs->shape_recorded_taken)
            shape_take_recorded(m);
        member_cluster_publish_self_status(m); /* the assign actor takes over from this snapshot */
        if (announce_stored_changes(m, &cs->heard, term)) {
            cs->loaded_term = term;
            cs->topo_dirty = false;
            /* The assign actor takes over once they are announced: no map
             * of this term comes before a NodeJoined it found (step 4). */
            if (cs->ann_count > 0)
                cs->loaded_pending_term = term;
            else
                __atomic_store_n(&m->topo_loaded_term, term, __ATOMIC_RELEASE);
        }
    }
    return cs->loaded_term == term;
}

/* Leader: a change reaches the state store BEFORE anyone hears of it, so a
 * successor that takes over from the store never misses what a node saw.
 * The change is applied to a copy of the topology and the copy sent to the
 * store actor (commit_send); only once it is stored (commit_done) does the
 * copy become ours, is the snapshot published and are its events
 * announced (member_announce_committed: member_internal.h, step 1), and is
 * the command that asked for it answered. Otherwise nothing changed: the
 * command is refused (its sender retries) or the leader tries again later.
 * One write in flight at a time: the commands that come meanwhile wait in
 * cs->cmdq and are decided, in order, against the topology it leaves
 * (a keep-alive of a node being failed is not acknowledged on the topology
 * from before); the leader's own decisions (failure check, drains,
 * retention) are skipped and run again when it is done. */
typedef enum topo_commit_kind {
    TOPO_COMMIT_DECIDED, /* events decided (a command, the failure check, a drain) */
    TOPO_COMMIT_FORGET,  /* departed nodes removed (forget_departed): no event */
    TOPO_COMMIT_WRITE_BACK, /* the topology held, stored again over a lost generation's
                               (check_foreign_topology): no change */
} topo_commit_kind;

/* What a cluster actor's store request is (member_store_req.tag). */
enum {
    CLUSTER_STORE_COMMIT = 0,   /* commit_send's write (cs->commit) */
    CLUSTER_STORE_FOREIGN,      /* check_foreign_topology's test */
};

typedef struct member_topo_commit {
    topo_commit_kind kind;
    aether_topology next;        /* the topology once stored (owned) */
    aether_event *ev[AETHER_TOPOLOGY_DECIDE_MAX]; /* the change's events (owned) */
    uint32_t n;
    aether_term term;            /* decided in */
    bool doubtable;              /* an unknown outcome is remembered (settle_doubt) */
    bool keepalive;              /* a JoinCluster: counted as a heartbeat of join_id once stored */
    aether_node_id join_id;
    member_cmd_box *box;         /* the command to answer once done (owned), or NULL */
    uint64_t gen_changes;        /* cs->gen_changes_seen when decided */
    aether_node_id gone[FORGET_BATCH_MAX]; /* TOPO_COMMIT_FORGET */
    uint64_t age_ms[FORGET_BATCH_MAX];
    uint32_t n_gone;
} member_topo_commit;

/* A commit whose topology is a copy of ours (NULL: no memory). */
static member_topo_commit *commit_new(aether_member *m, topo_commit_kind kind, aether_term term)
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

static void command_answer(aether_member *m, member_cmd_box *b, aether_status st,
                           const aether_err *why, bool deferred);
static void on_command(aether_member *m, member_cmd_box *b);

/* Frees tc: its events released, its command (if any) answered st/why. */
static void commit_free(aether_member *m, struct member_topo_commit *tc, aether_status st,
                        const aether_err *why)
{
    for (uint32_t i = 0; i < tc->n; i++)
        aether_event_release(tc->ev[i]);
    if (tc->box != NULL) {
        command_answer(m, tc->box, st, why, false);
        member_cmd_box_free(tc->box);
    }
    aether_topology_fini(&tc->next);
    free(tc);
}

/* Sends tc's topology to the store actor; tc is taken over either way.
 * AETHER_OK: in flight (cs->commit; commit_done finishes it). Else not
 * recorded: tc freed (events released), why says so. */
static aether_status commit_send(aether_member *m, member_topo_commit *tc, aether_err *why)
{
    member_cluster_state *cs = m->cs;
    AETHER_ASSERT(cs->commit == NULL && tc->box == NULL);
    member_store_req *r = member_store_req_new(MEMBER_STORE_STATE_PUT, m->cluster);
    /* Stamped with the generation we act in (member_state.c, "Generations"). */
    uint64_t gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    aether_status st = r != NULL ? aether_topology_json_encode_gen(&tc->next, gen, &r->value, &r->len, NULL)
                                 : AETHER_ENOMEM;
    if (st == AETHER_OK) {
        snprintf(r->key, sizeof(r->key), "%s", MEMBER_STATE_TOPOLOGY);
        r->tag = CLUSTER_STORE_COMMIT;
        r->state_gen = gen;
        r->state_version = tc->next.version;
        r->state_rev = cs->state_rev;
        st = member_store_request(m, r);
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

/* Refuses a leader's own decision while a write is in flight (it runs
 * again when the write is done: failcheck_deferred, or its asker's next
 * tick). */
static bool commit_busy(aether_member *m, aether_err *why)
{
    if (m->cs->commit == NULL)
        return false;
    m->cs->failcheck_deferred = true;
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

/* A topology write whose outcome was lost may be applied whenever (a
 * KV timeout), recording a change nobody announced - say NodeFailed of a
 * node we went on acknowledging. So, before any other decision:
 *  1. read the key: our in-doubt value there means it was applied: adopt
 *     it and announce the change now;
 *  2. another value stamped at or above it: someone else wrote since; the
 *     in-doubt write can no longer apply; read the store again later;
 *  3. otherwise rewrite what is there (compare-and-set on its revision):
 *     the key's revision moves, so the in-doubt write, which named the old
 *     revision, can never apply.
 * True when no doubt remains. */
/* Rewrites the stored topology as it is (compare-and-set on its revision),
 * or writes ours when it is absent or of a lost generation: afterwards no
 * write that named an earlier revision (or expected the key absent) can be
 * applied, and no foreign value is written back as if it were ours. */
static bool fence_topology_key(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    aether_kv *kv = m->deps.state_store;
    aether_kv_entry cur;
    uint64_t rev = 0;
    aether_status st = aether_kv_get(kv, MEMBER_STATE_TOPOLOGY, &cur, NULL);
    bool ours = st == AETHER_ENOTFOUND;
    if (st == AETHER_OK && member_state_value_foreign(m, MEMBER_STATE_TOPOLOGY, (const char *)cur.value,
                                                      cur.value_len)) {
        aether_kv_entry_fini(&cur);
        ours = true;
    }
    if (ours) {
        /* Written by member_state_put: only in a bucket of our generation
         * (member_state.c, "Generations"), or a deposed leader of a lost
         * one would seed the new bucket with its topology; it replaces a
         * lost generation's value. */
        char *json = NULL;
        size_t len = 0;
        uint64_t gen = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
        st = aether_topology_json_encode_gen(&cs->topo, gen, &json, &len, NULL);
        if (st == AETHER_OK)
            st = member_state_put(m, MEMBER_STATE_TOPOLOGY, json, len, gen, 0, cs->topo.version, &rev);
        free(json);
    } else if (st == AETHER_OK) {
        st = aether_kv_update(kv, MEMBER_STATE_TOPOLOGY, cur.value, cur.value_len, cur.revision,
                              &rev, NULL);
        aether_kv_entry_fini(&cur);
    }
    if (st != AETHER_OK)
        return false;
    cs->state_rev = rev;
    return true;
}

static bool settle_doubt(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    if (cs->doubt_json == NULL)
        return true;
    aether_kv *kv = m->deps.state_store;
    aether_kv_entry cur;
    aether_status st = aether_kv_get(kv, MEMBER_STATE_TOPOLOGY, &cur, NULL);
    if (st == AETHER_ENOTFOUND) {
        /* The doubtful write was the first: create the key with what we hold,
         * so that the late create finds it (EEXIST). */
        if (fence_topology_key(m))
            clear_doubt(cs);
        return cs->doubt_json == NULL;
    }
    if (st != AETHER_OK)
        return false;
    if (cur.value_len == cs->doubt_len && memcmp(cur.value, cs->doubt_json, cur.value_len) == 0) {
        aether_kv_entry_fini(&cur);
        /* Settled only with nothing else to announce, and room for it: a
         * change that revives a node is announced before the snapshot has
         * it (member_internal.h, step 4). */
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
        if (!load_topology(m, true)) { /* adopts it (and its revision) */
            aether_event_release(e);
            cs->loaded_term = AETHER_TERM_NONE;
            return false;
        }
        if (e == NULL) { /* a retention removal: no event announces it */
            AETHER_INFO(MEMBER_LOG, "%s: a topology change without an event was recorded after all",
                        m->cfg.node.str);
            return true;
        }
        hb_heard_if_joined(m, e);
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
    uint64_t v = 0;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)cur.value, cur.value_len, 0, &jerr);
    json_t *jv = json_object_get(root, "version");
    if (json_is_integer(jv))
        v = (uint64_t)json_integer_value(jv);
    json_decref(root);
    aether_kv_entry_fini(&cur);
    if (v >= cs->doubt_version) {
        clear_doubt(cs);
        cs->loaded_term = AETHER_TERM_NONE; /* someone else wrote since: read it */
    } else if (fence_topology_key(m)) {
        clear_doubt(cs);
    }
    return cs->doubt_json == NULL;
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

/* One leader-decided topology event (e, owned): recorded in the state store,
 * then published and announced in the order of member_internal.h ("The
 * leader's two commit points"). Not recorded: released, nothing announced. */
static aether_status announce_one(aether_member *m, aether_event *e, bool unsay_self,
                                   aether_err *why)
{
    aether_term term = AETHER_TERM_NONE;
    if (!member_may_lead(m, &term)) {
        aether_event_release(e);
        return aether_err_set(why, AETHER_ENOTLEADER, "not leader");
    }
    if (commit_busy(m, why)) {
        aether_event_release(e);
        return AETHER_EUNAVAILABLE;
    }
    if (!member_announce_reserve(m->cs, 1)) {
        aether_event_release(e);
        return aether_err_set(why, AETHER_EUNAVAILABLE, "leader busy announcing; retry");
    }
    member_topo_commit *tc = commit_new(m, TOPO_COMMIT_DECIDED, term);
    if (tc == NULL) {
        aether_event_release(e);
        return aether_err_set(why, AETHER_ENOMEM, "leader out of memory");
    }
    aether_topology_apply(&tc->next, e);
    if (unsay_self) {
        /* A node that doubts its own shape withdraws it from the record
         * (member_shape.c, step 2d): refused, its terms vote for nobody. */
        aether_admission none = {0};
        aether_topology_set_terms(&tc->next, &m->cfg.node, &none);
    }
    tc->ev[tc->n++] = e;
    tc->doubtable = true;
    return commit_send(m, tc, why); /* commit_done announces it */
}

void member_cluster_fail_self(aether_member *m)
{
    aether_event *e = aether_event_create(AETHER_EVT_NODE_FAILED);
    if (e == NULL)
        return;
    e->data.node_failed.node = m->cfg.node;
    aether_err why;
    if (announce_one(m, e, true, &why) != AETHER_OK)
        AETHER_WARN(MEMBER_LOG, "%s: could not record itself failed: %s", m->cfg.node.str, why.msg);
}

/* Leader of `term`: RebalanceShards and AssignShards go to the assign
 * actor (the operator's release of the brake too); nothing is decided
 * here. */
static aether_status forward_rebalance(aether_member *m, const aether_command *c, aether_term term,
                                       aether_err *why)
{
    if (c->term != AETHER_TERM_NONE && c->term < term)
        return aether_err_set(why, AETHER_ESTALE, "term %llu is older than %llu",
                              (unsigned long long)c->term, (unsigned long long)term);
    if (c->type == AETHER_CMD_REBALANCE_SHARDS && c->data.rebalance.release_brake) {
        /* The operator's release (DESIGN: until an operator or the
         * window clears it). Refused when there is nothing to release,
         * so the operator learns it; the assign actor records who asked. */
        if (!__atomic_load_n(&m->brake_engaged, __ATOMIC_RELAXED))
            return aether_err_set(why, AETHER_ESTATE, "the rebalance brake is not engaged");
        char who[AETHER_NODE_ID_LEN_MAX + AETHER_REASON_MAX + 8];
        snprintf(who, sizeof(who), "%s%s%s%s", c->sender.len ? c->sender.str : "?",
                 c->data.rebalance.reason[0] ? " (" : "", c->data.rebalance.reason,
                 c->data.rebalance.reason[0] ? ")" : "");
        char *asker = strdup(who);
        if (asker == NULL || member_send_owned(m, m->assign, MSG_RELEASE_BRAKE, asker) != AETHER_OK)
            return aether_err_set(why, AETHER_EFULL, "leader busy; retry");
        return AETHER_OK;
    }
    char *reason = strdup(c->type == AETHER_CMD_ASSIGN_SHARDS ? "AssignShards"
                          : c->data.rebalance.reason[0] ? c->data.rebalance.reason
                                                        : "RebalanceShards");
    if (reason == NULL || member_send_owned(m, m->assign, MSG_REBALANCE, reason) != AETHER_OK)
        return aether_err_set(why, AETHER_EFULL, "leader busy; retry");
    return AETHER_OK;
}

/* Leader of `term`, before deciding a topology command: may this leader
 * decide at all (its state loaded, its configuration the cluster's), and
 * is the command one to decide (a keep-alive of an older process of our
 * own id is not)? AETHER_OK: decide it. */
static aether_status may_decide(aether_member *m, const aether_command *c, aether_term term,
                                aether_err *why)
{
    /* A leader that cannot serve the cluster's map (it won the lease before
     * anyone could refuse it; state_loaded compares it with the stored map)
     * decides nothing, its own admission included, and resigns
     * (member_lease.c): judged by its terms every newcomer would look
     * incompatible, and it would fail the members it cannot hear. */
    bool loaded = state_loaded(m, term);
    if (member_incompatible(m) || member_stood_down(m, term))
        return aether_err_set(why, AETHER_ENOTLEADER,
                              "not leader: this node's configuration does not match the "
                              "cluster's map (resigning)");
    if (!loaded)
        return aether_err_set(why, AETHER_EUNAVAILABLE,
                              "taking over: the stored topology is not readable yet; retry");
    if (member_shape_newcomer_refuses(m, c, term))
        return aether_err_set(why, AETHER_ENOTLEADER,
                              "not leader: this node's configuration does not match the "
                              "cluster's (resigning)");
    if (c->type == AETHER_CMD_JOIN_CLUSTER && member_shape_counting(m, term)) {
        aether_status ss = member_shape_note(m, c, term, why);
        if (ss != AETHER_OK)
            return ss;
    }
    /* A keep-alive of our own id from an older process than this one (we
     * lead before our own admission landed, so the record may still be
     * its): never acknowledged, or it would keep serving beside us. */
    uint64_t claim = __atomic_load_n(&m->incarnation, __ATOMIC_SEQ_CST);
    if (c->type == AETHER_CMD_JOIN_CLUSTER && aether_node_id_equal(&c->data.join.info.id, &m->cfg.node) &&
        c->data.join.info.nonce != m->self_info.nonce &&
        c->data.join.info.incarnation != 0 && c->data.join.info.incarnation < claim &&
        !__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
        return aether_err_set(why, AETHER_ESUPERSEDED,
                              "%s incarnation %llu is superseded by incarnation %llu (a newer "
                              "process of this node id)",
                              m->cfg.node.str, (unsigned long long)c->data.join.info.incarnation,
                              (unsigned long long)claim);
    return AETHER_OK;
}

/* A join the aggregate refused as incompatible (or without terms): counted
 * and logged (one line per window). */
static void note_join_refused(aether_member *m, const aether_command *c, aether_status st,
                              const aether_err *why)
{
    member_cluster_state *cs = m->cs;
    if (c->type != AETHER_CMD_JOIN_CLUSTER ||
        !(st == AETHER_EINCOMPATIBLE || (st == AETHER_EINVAL && c->data.join.terms.shard_count == 0)))
        return;
    __atomic_add_fetch(&m->joins_refused, 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&cs->refuse_log, member_now_ns(m), &suppressed))
        AETHER_WARN(MEMBER_LOG, "%s: join of %s refused: %s [%llu more suppressed]",
                    m->cfg.node.str, c->data.join.info.id.str, why->msg,
                    (unsigned long long)suppressed);
}

/* Decides a command as leader: its events go to the store actor
 * (*pending: commit_done applies and emits them, and answers the command
 * the caller hands it); a command that changes nothing is done here. */
static aether_status lead_command(aether_member *m, const aether_command *c, aether_err *why,
                                  bool *pending)
{
    *pending = false;
    member_cluster_state *cs = m->cs;
    aether_term term;
    if (!member_may_lead(m, &term)) {
        if (cs->topo.leader.len && !aether_node_id_equal(&cs->topo.leader, &m->cfg.node))
            return aether_err_set(why, AETHER_ENOTLEADER, "not leader; leader is %s, term %llu",
                                  cs->topo.leader.str, (unsigned long long)cs->topo.term);
        return aether_err_set(why, AETHER_ENOTLEADER, "not leader (term %llu)",
                              (unsigned long long)cs->topo.term);
    }
    if (c->term != AETHER_TERM_NONE && c->term > term)
        return aether_err_set(why, AETHER_ENOTLEADER, "not leader; term %llu is newer than ours (%llu)",
                              (unsigned long long)c->term, (unsigned long long)term);
    if (c->type == AETHER_CMD_REBALANCE_SHARDS || c->type == AETHER_CMD_ASSIGN_SHARDS)
        return forward_rebalance(m, c, term, why);
    if (c->type == AETHER_CMD_ELECT_LEADER)
        return aether_err_set(why, AETHER_EINVAL,
                              "ElectLeader is decided by each node's lease, not by the leader");
    if (commit_busy(m, why))
        return AETHER_EUNAVAILABLE; /* on_command queues commands; the leader's own retry */
    aether_status st = may_decide(m, c, term, why);
    if (st != AETHER_OK)
        return st;
    /* The aggregate checks leadership against its own view; it is ours. */
    aether_topology_set_leader(&cs->topo, &m->cfg.node, term);
    /* The cluster's admission terms are ours: we match the stored map
     * (member_incompatible above), and our timings are the ones we lead by. */
    cs->topo.admission = m->admission;
    /* While anything waits to be announced, no departed node is revived
     * (member_internal.h, step 4): its keep-alive asks again. */
    if (c->type == AETHER_CMD_JOIN_CLUSTER && cs->ann_count > 0) {
        const aether_node_info *was = aether_topology_find(&cs->topo, &c->data.join.info.id);
        if (was != NULL && aether_node_status_is_departed(was->status))
            return aether_err_set(why, AETHER_EUNAVAILABLE,
                                  "%s: the leader is still announcing a departure; retry",
                                  c->data.join.info.id.str);
    }
    aether_event *ev[AETHER_TOPOLOGY_DECIDE_MAX];
    uint32_t n = 0;
    st = aether_topology_decide(&cs->topo, c, aether_clock_wall_ms(m->clock), ev, &n, why);
    if (st != AETHER_OK) {
        note_join_refused(m, c, st, why);
        return st;
    }
    AETHER_ASSERT(n <= AETHER_TOPOLOGY_DECIDE_MAX);
    for (uint32_t i = 0; i < n; i++)
        if (ev[i]->type == AETHER_EVT_NODE_JOINED)
            ev[i]->data.node_joined.map_version = __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST);
    member_topo_commit *tc = NULL;
    if (n > 0 && !member_announce_reserve(cs, n))
        st = aether_err_set(why, AETHER_EUNAVAILABLE, "leader busy announcing; retry");
    else if (n > 0 && (tc = commit_new(m, TOPO_COMMIT_DECIDED, term)) == NULL)
        st = aether_err_set(why, AETHER_ENOMEM, "leader out of memory");
    if (st != AETHER_OK) {
        for (uint32_t i = 0; i < n; i++)
            aether_event_release(ev[i]);
        return st;
    }
    if (n > 0) {
        for (uint32_t i = 0; i < n; i++) {
            aether_topology_apply(&tc->next, ev[i]);
            tc->ev[i] = ev[i];
        }
        /* The record keeps the terms the node was admitted with: the shape
         * the stored topology says it runs (member_shape.c, the recorded
         * shapes). */
        if (c->type == AETHER_CMD_JOIN_CLUSTER && c->data.join.terms.shard_count != 0)
            aether_topology_set_terms(&tc->next, &c->data.join.info.id, &c->data.join.terms);
        tc->n = n;
        tc->doubtable = n == 1;
        tc->keepalive = c->type == AETHER_CMD_JOIN_CLUSTER;
        if (tc->keepalive)
            tc->join_id = c->data.join.info.id;
        st = commit_send(m, tc, why);
        *pending = st == AETHER_OK;
        return st;
    }
    if (c->type == AETHER_CMD_JOIN_CLUSTER) {
        /* A keep-alive (or an admission) counts as a heartbeat: its reply is
         * the acknowledgement the node's serving right rests on (step 2). */
        hb_entry *h = hb_find(cs, &c->data.join.info.id, true);
        if (h != NULL)
            h->last_ns = member_now_ns(m);
    }
    member_cluster_publish_self_status(m);
    return AETHER_OK;
}

aether_status member_cluster_lead_command(aether_member *m, const aether_command *c,
                                          aether_err *why)
{
    bool pending;
    return lead_command(m, c, why, &pending);
}

/* The store actor's answer to commit_send (r: the request, the caller's):
 * the change is ours, published and announced, and its command answered;
 * or it was not recorded. Then the commands that waited are decided, and a
 * failure check cut short runs again. */
static void commit_done(aether_member *m, member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    member_topo_commit *tc = cs->commit;
    AETHER_ASSERT(tc != NULL);
    cs->commit = NULL;
    aether_status st = r->st;
    if (tc->gen_changes != cs->gen_changes_seen) {
        /* A new generation began meanwhile (follow_generation): the
         * topology is read from the store again before anything is decided. */
        if (st == AETHER_OK)
            st = AETHER_ESTALE;
        cs->topo_dirty = true;
    } else {
        cs->state_rev = r->state_rev; /* as member_state_put left it */
    }
    if (st == AETHER_EUNKNOWN && tc->doubtable && cs->doubt_json == NULL) {
        /* It may land later: remember it; settle_doubt decides before we
         * decide (or acknowledge) anything else. */
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
    } else {
        aether_topology_fini(&cs->topo);
        cs->topo = tc->next;
        memset(&tc->next, 0, sizeof(tc->next));
        if (tc->kind == TOPO_COMMIT_WRITE_BACK) {
            AETHER_INFO(MEMBER_LOG, "%s: topology v%llu written back over a lost generation's",
                        m->cfg.node.str, (unsigned long long)cs->topo.version);
        } else if (tc->kind == TOPO_COMMIT_FORGET) {
            uint64_t now = member_now_ns(m);
            hb_prune(cs, now, (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS);
            member_cluster_publish_self_status(m);
            __atomic_add_fetch(&m->nodes_forgotten, tc->n_gone, __ATOMIC_RELAXED);
            for (uint32_t i = 0; i < tc->n_gone; i++)
                AETHER_INFO(MEMBER_LOG, "%s: forgot %s (departed %llu ms ago; node_retention_ms %u)",
                            m->cfg.node.str, tc->gone[i].str, (unsigned long long)tc->age_ms[i],
                            m->cfg.node_retention_ms);
        } else {
            for (uint32_t i = 0; i < tc->n; i++)
                hb_heard_if_joined(m, tc->ev[i]);
            if (tc->keepalive) {
                /* A keep-alive (or an admission) counts as a heartbeat: its
                 * reply is the acknowledgement the node's serving right
                 * rests on (step 2). */
                hb_entry *h = hb_find(cs, &tc->join_id, true);
                if (h != NULL)
                    h->last_ns = member_now_ns(m);
            }
            member_announce_committed(m, tc->ev, tc->n, tc->term); /* takes the events over */
            tc->n = 0;
        }
        commit_free(m, tc, AETHER_OK, NULL);
    }
    /* The commands that came meanwhile, in order, up to the next write. */
    while (cs->commit == NULL && cs->cmdq_count > 0) {
        member_cmd_box *b = cs->cmdq[cs->cmdq_head];
        cs->cmdq_head = (cs->cmdq_head + 1) % cs->cmdq_cap;
        cs->cmdq_count--;
        on_command(m, b);
    }
    /* A failure check the write put off runs now, if the write went
     * through (after a failed one the check's own cadence retries: a store
     * that refuses at once must not turn the check into a busy loop). */
    if (cs->commit == NULL && cs->failcheck_deferred && st == AETHER_OK) {
        cs->failcheck_deferred = false;
        failcheck_at(m, member_now_ns(m) + 1); /* at least FAILCHECK_SLACK_NS away */
    }
}

/* ---- the sequence of leader events -------------------------------------------
 *
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
 * anomaly ends with the node holding the stored topology and map. Cluster
 * actor only. */

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

typedef enum seq_anomaly { SEQ_GAP, SEQ_JUMP, SEQ_DUPLICATE, SEQ_LATE, SEQ_RESTART } seq_anomaly;

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
static void follow_generation(aether_member *m)
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
 * or LeaseRenewed read it), and the stored map (the assign actor). */
static void reread_store(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t every = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    if (!cs->topo_dirty || (cs->reread_ns != 0 && now - cs->reread_ns < every))
        return;
    cs->reread_ns = now;
    if (load_topology(m, true))
        cs->topo_dirty = false;
    aether_msg hint = { .type = MSG_MAP_HINT }; /* no publication: read the store */
    (void)aether_actor_send(m->assign, &hint);  /* refused: the next LeaseRenewed reads it */
}

/* What the stored topology says of a report about this node. */
typedef enum self_verdict {
    SELF_UNKNOWN,   /* the store did not answer: keep what the report implies */
    SELF_CONFIRMED, /* the store agrees (or this run is not admitted: nothing to refute) */
    SELF_REFUTED,   /* the store names this run otherwise: the report was not the leader's */
} self_verdict;

/* A remote NodeFailed/NodeLeft/NodeJoined about this node (e), or, with e
 * NULL, the pending retry of one: re-reads the stored topology and adopts
 * it (the leader stored the change before publishing it, so a genuine
 * report is always there; member_internal.h). A NodeFailed or NodeLeft
 * the store contradicts - it names this run Active or Draining - was never
 * the leader's: the assign actor is told to serve again (MSG_SELF_REFUTED,
 * unless a report came since). A NodeJoined of ours is confirmed when the
 * store has this node Active at that incarnation or later. */
static self_verdict check_self_report(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    bool joined = e != NULL && e->type == AETHER_EVT_NODE_JOINED;
    uint64_t reports = __atomic_load_n(&m->self_down_reports, __ATOMIC_SEQ_CST);
    if (!load_topology(m, true)) {
        if (!joined)
            cs->self_report_pending = true;
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
        (void)state_loaded(m, term); /* policy 10: take over from the stored state */
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

/* A topology event announced (ours or a leader's), in sequence: heard;
 * another node's decision is applied (or the store read, after a gap),
 * published and passed to the assign actor. */
static void topology_announced(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    (void)aether_topology_apply(&cs->heard, e); /* announced: ours or a leader's */
    if (aether_node_id_equal(&e->node, &m->cfg.node))
        return; /* ours: applied, published and passed on when decided */
    if (!cs->topo_dirty || !load_topology(m, true))
        aether_topology_apply(&cs->topo, e); /* in sequence, or the store is out of reach */
    else
        cs->topo_dirty = false; /* the store has this change, and all before it */
    hb_heard_if_joined(m, e);
    member_cluster_publish_self_status(m);
    member_cluster_notify_assign(m, (aether_event *)e);
}

static void on_event(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    bool taken = in_sequence(m, e);
    if (about_self(m, e)) {
        /* Whatever its seq or term: the sink may have stopped us serving on
         * it, and only the store says whether that stands. */
        self_verdict v = check_self_report(m, e);
        if (v == SELF_REFUTED) {
            reread_store(m);
            return;
        }
        if (v == SELF_CONFIRMED) { /* the stored topology is adopted and published */
            if (taken && m->cb.on_event != NULL)
                m->cb.on_event(m->cb.arg, e);
            if (taken)
                (void)aether_topology_apply(&cs->heard, e);
            hb_heard_if_joined(m, e);
            member_cluster_notify_assign(m, (aether_event *)e);
            return;
        }
        /* SELF_UNKNOWN: as if the store had not been asked. */
    }
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
        if (cs->topo_dirty) {
            reread_store(m); /* the map too, after an anomaly */
        }
        if ((e->data.lease_renewed.topology_version != cs->topo.version || cs->topo_dirty) &&
            load_topology(m, true))
            cs->topo_dirty = false;
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
    if (cs->self_report_pending)
        (void)check_self_report(m, NULL); /* the store could not say yet: ask again */
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

/* Retention (DESIGN 2), leader only, with the stored topology read in
 * this term: Left and Failed nodes seen departed node_retention_ms ago
 * (note_departures) are removed in one topology write (compare-and-set,
 * like any change), never one that the current map names:
 *  1. the map consulted is this node's published map, and only once it is
 *     of our term (the take-over published one): it is the one every later
 *     map derives from;
 *  2. no map the assign actor commits later can name it: the node has been
 *     departed in every snapshot since its departure was announced
 *     (member_internal.h, steps 1-2), and I3 is checked against the
 *     snapshot before publication; the next map is computed from a
 *     topology without it.
 * No event announces the removal: followers converge on the stored
 * topology, whose version they see move in the next LeaseRenewed
 * (docs/cluster.md, "Forgetting departed nodes"). A failed write changes
 * nothing here; the next check tries again. */
static void forget_departed(aether_member *m, aether_term term)
{
    member_cluster_state *cs = m->cs;
    if (__atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) != term)
        return;
    uint64_t now = member_now_ns(m);
    uint64_t retention = (uint64_t)m->cfg.node_retention_ms * AETHER_NS_PER_MS;
    /* Cheap pass first (no lock): anyone old enough? */
    bool due = false;
    for (uint32_t i = 0; i < cs->topo.count && !due; i++) {
        const aether_node_info *n = &cs->topo.nodes[i];
        hb_entry *h = aether_node_status_is_departed(n->status) ? hb_find(cs, &n->id, false) : NULL;
        due = h != NULL && h->departed_ns != 0 && now - h->departed_ns >= retention;
    }
    if (!due)
        return;
    aether_node_id gone[FORGET_BATCH_MAX];
    uint64_t age_ms[FORGET_BATCH_MAX];
    uint32_t n_gone = 0;
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(&m->slot);
    for (uint32_t i = 0; i < cs->topo.count && n_gone < FORGET_BATCH_MAX; i++) {
        const aether_node_info *n = &cs->topo.nodes[i];
        if (aether_node_id_equal(&n->id, &m->cfg.node))
            continue;
        hb_entry *h = hb_find(cs, &n->id, false);
        uint64_t since = h != NULL ? h->departed_ns : 0;
        if (!aether_topology_may_forget(n, since, now, retention, map))
            continue;
        gone[n_gone] = n->id;
        age_ms[n_gone++] = (now - since) / AETHER_NS_PER_MS;
    }
    aether_rcu_read_unlock();
    aether_err why;
    member_topo_commit *tc = n_gone > 0 && !commit_busy(m, &why) ? commit_new(m, TOPO_COMMIT_FORGET, term)
                                                                 : NULL;
    if (tc == NULL)
        return;
    for (uint32_t i = 0; i < n_gone; i++) {
        bool removed = aether_topology_remove(&tc->next, &gone[i]);
        AETHER_ASSERT(removed); /* departed, and in the topology we copied */
        tc->gone[i] = gone[i];
        tc->age_ms[i] = age_ms[i];
    }
    tc->n_gone = n_gone;
    /* One write for the batch: version +1 (whatever the count), so a
     * follower's version says nothing; it reads the store (LeaseRenewed). */
    tc->next.version = cs->topo.version + 1;
    tc->doubtable = true;
    if (commit_send(m, tc, &why) != AETHER_OK) /* commit_done finishes it */
        AETHER_WARN(MEMBER_LOG, "%s: could not forget %u departed node(s): %s", m->cfg.node.str, n_gone,
                    why.msg);
}

/* Policy 4, on time: the check runs when the first healthy node's silence
 * can exceed failure_timeout, not on a fixed tick, so a silent node is
 * declared failed within FAILCHECK_SLACK_NS (and the timer's lateness) of
 * its deadline. Declaring it then is what the serving rights allow
 * (DESIGN step 4: never before failure_timeout after the last heartbeat or
 * keep-alive received); polling only ever declared it later.
 * Returns when to look again (this node's clock): the earliest deadline,
 * and no later than one heartbeat interval from now, so a deadline that
 * moves earlier between two checks (a new term, a node met in a stored
 * topology) is still met within an interval, as the periodic check did. */
/* The state bucket was lost and the lease actor recorded our term again
 * (member_lease.c, step 6): write our topology back. fence_topology_key
 * creates the key from ours when it is absent; a failure is retried at
 * the next check. */
static void rewrite_lost_topology(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t lost = __atomic_load_n(&m->state_lost_gen, __ATOMIC_RELAXED);
    if (lost != cs->state_lost_seen && fence_topology_key(m)) {
        cs->state_lost_seen = lost;
        AETHER_INFO(MEMBER_LOG, "%s: topology v%llu written back to the state store", m->cfg.node.str,
                    (unsigned long long)cs->topo.version);
    }
}

/* Once per lease_ttl_ms: a deposed leader of a lost generation may have
 * written its topology over ours (member_state.c, "Generations"); every
 * reader refuses it: write ours back (put replaces it). */
static void check_foreign_topology(aether_member *m, uint64_t now)
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
    r->tag = CLUSTER_STORE_FOREIGN;
    r->state_rev = cs->state_rev;
    if (member_store_request(m, r) != AETHER_OK) {
        member_store_req_free(r);
        cs->foreign_checked_ns = 0; /* again at the next check */
        return;
    }
    cs->foreign_inflight = true;
}

/* check_foreign_topology's test is done: a lost generation's topology over
 * ours is overwritten with the topology we hold, stored again (no change,
 * nothing to announce, nothing the assign actor must see first), as a
 * commit of its own, behind any write in flight. */
static void foreign_checked(aether_member *m, const member_store_req *r)
{
    member_cluster_state *cs = m->cs;
    cs->foreign_inflight = false;
    aether_term term;
    if (!r->foreign || !member_may_lead(m, &term))
        return;
    aether_err why;
    member_topo_commit *tc = !commit_busy(m, &why) ? commit_new(m, TOPO_COMMIT_WRITE_BACK, term) : NULL;
    if (tc == NULL || commit_send(m, tc, &why) != AETHER_OK)
        cs->foreign_checked_ns = 0; /* again at the next check */
}

/* Leader: the healthy nodes (not us) silent for more than failure_timeout
 * since last heard (or since we lead), at most FAILCHECK_BATCH_MAX, into
 * silent/silent_ms; returns how many. Lowers *next to the first instant
 * another one's silence exceeds the timeout (to now if more than a batch
 * is due). */
static uint32_t collect_silent(aether_member *m, uint64_t now, aether_node_id *silent,
                               uint64_t *silent_ms, uint64_t *next)
{
    member_cluster_state *cs = m->cs;
    uint64_t timeout = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
    uint32_t n = 0;
    for (uint32_t i = 0; i < cs->topo.count; i++) {
        const aether_node_info *node = &cs->topo.nodes[i];
        if (!aether_node_status_is_healthy(node->status) ||
            aether_node_id_equal(&node->id, &m->cfg.node))
            continue;
        hb_entry *h = hb_find(cs, &node->id, true);
        uint64_t since = h ? h->last_ns : cs->lead_since_ns;
        if (since < cs->lead_since_ns)
            since = cs->lead_since_ns;
        if (now > since && now - since > timeout) {
            if (n == FAILCHECK_BATCH_MAX) {
                *next = now; /* more than one batch is due */
                continue;
            }
            silent[n] = node->id;
            silent_ms[n] = (now - since) / AETHER_NS_PER_MS;
            n++;
        } else if (since + timeout + 1 < *next) {
            *next = since + timeout + 1; /* the first instant its silence exceeds the timeout */
        }
    }
    return n;
}

/* Leader, policy 4: MarkNodeFailed decided for each of the n silent nodes. */
static void fail_silent(aether_member *m, const aether_node_id *silent, const uint64_t *silent_ms,
                        uint32_t n)
{
    AETHER_ASSERT(n <= FAILCHECK_BATCH_MAX);
    for (uint32_t i = 0; i < n; i++) {
        aether_command c;
        member_cluster_base_command(m, &c, AETHER_CMD_MARK_NODE_FAILED);
        c.data.mark_failed.node = silent[i];
        c.data.mark_failed.silent_ms = silent_ms[i];
        aether_err why;
        /* Refused (the store unreachable): the node stays due; the next
         * check, at most an interval away, tries again. */
        if (m->cs->commit != NULL) {
            m->cs->failcheck_deferred = true; /* the rest once this write is done */
            return;
        }
        if (member_cluster_lead_command(m, &c, &why) != AETHER_OK)
            AETHER_WARN(MEMBER_LOG, "%s: could not fail %s: %s", m->cfg.node.str, silent[i].str,
                        why.msg);
        else
            AETHER_INFO(MEMBER_LOG, "%s: %s silent for %llu ms: failed", m->cfg.node.str,
                        silent[i].str, (unsigned long long)silent_ms[i]);
    }
}

/* MSG_TICK_FAILCHECK (policy 4), leader with its stored state loaded: the
 * write-backs, then silent nodes failed and departed ones forgotten.
 * Returns when to check next. */
static uint64_t tick_failcheck(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t next = now + (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    aether_term term;
    if (!member_may_lead(m, &term) || cs->lead_term != term)
        return next; /* not leading, or LeaderElected not seen here yet (no grace start) */
    if (cs->commit != NULL) {
        cs->failcheck_deferred = true; /* commit_done runs it again */
        return next;
    }
    if (!state_loaded(m, term))
        return next; /* the stored state not read yet */
    rewrite_lost_topology(m);
    check_foreign_topology(m, now);
    /* Collect first: deciding changes the topology we iterate. The rest of a
     * larger wave is declared by the next check, at once. */
    aether_node_id silent[FAILCHECK_BATCH_MAX];
    uint64_t silent_ms[FAILCHECK_BATCH_MAX];
    uint32_t n = collect_silent(m, now, silent, silent_ms, &next);
    fail_silent(m, silent, silent_ms, n);
    forget_departed(m, term);
    return next;
}

static void on_drained(aether_member *m, const aether_node_id *node)
{
    const aether_node_info *n = aether_topology_find(&m->cs->topo, node);
    if (n == NULL || n->status != AETHER_NODE_DRAINING || !member_may_lead(m, NULL))
        return;
    aether_event *e = aether_event_create(AETHER_EVT_NODE_LEFT);
    if (e == NULL)
        return;
    e->data.node_left.node = *node;
    aether_err why;
    aether_term term = AETHER_TERM_NONE;
    if (!member_may_lead(m, &term) || m->cs->commit != NULL || !state_loaded(m, term)) {
        aether_event_release(e); /* the assign actor reports it again next tick */
        return;
    }
    (void)announce_one(m, e, false, &why); /* not recorded: the assign actor reports it again */
}

/* A heartbeat from the wire (only the leader is sent them): recorded only
 * for a healthy member's current incarnation. */
static void on_heartbeat(aether_member *m, const member_hb_box *b)
{
    member_cluster_state *cs = m->cs;
    const aether_node_info *info = aether_topology_find(&cs->topo, &b->node);
    if (info != NULL && aether_node_status_is_healthy(info->status) &&
        info->incarnation == b->incarnation) {
        hb_entry *h = hb_find(cs, &b->node, true);
        if (h != NULL && h->forced_inc != b->incarnation) /* being failed by force: not heard */
            h->last_ns = member_now_ns(m);
        return;
    }
    __atomic_add_fetch(&m->heartbeats_ignored, 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (!aether_log_ratelimit_allow(&cs->hb_log, member_now_ns(m), &suppressed))
        return;
    /* INFO, not WARN: a node heartbeats from its start, before its
     * admission (or its rejoin with a new incarnation) lands. */
    if (info == NULL)
        AETHER_INFO(MEMBER_LOG, "%s: heartbeat of %s ignored: not a member [%llu more suppressed]",
                    m->cfg.node.str, b->node.str, (unsigned long long)suppressed);
    else
        AETHER_INFO(MEMBER_LOG,
                    "%s: heartbeat of %s incarnation %llu ignored: the member is %s, incarnation "
                    "%llu [%llu more suppressed]",
                    m->cfg.node.str, b->node.str, (unsigned long long)b->incarnation,
                    aether_node_status_name(info->status), (unsigned long long)info->incarnation,
                    (unsigned long long)suppressed);
}

/* Leader: a JoinCluster is acknowledged unless an operator's force is
 * failing that process, or its id is neither allowed nor a healthy member
 * at the incarnation it claims (AETHER_EPERM, counted and logged). */
static aether_status judge_join(aether_member *m, const aether_command *c, aether_err *why)
{
    member_cluster_state *cs = m->cs;
    const aether_node_id *id = &c->data.join.info.id;
    const aether_node_info *cur = aether_topology_find(&cs->topo, id);
    const hb_entry *fh = cur != NULL ? hb_find(cs, id, false) : NULL;
    if (fh != NULL && fh->forced_inc != 0 && fh->forced_inc == cur->incarnation &&
        aether_node_status_is_healthy(cur->status) &&
        aether_node_info_same_process(cur, &c->data.join.info))
        return aether_err_set(why, AETHER_EUNAVAILABLE,
                              "%s is being failed by an operator's force: not acknowledged",
                              id->str);
    if (aether_config_allows(&m->cfg, id))
        return AETHER_OK;
    /* A healthy member at the incarnation it claims keeps its
     * acknowledgements whatever this leader's list says (the list is per
     * node: one leader's typo must not stop the members it omits, as
     * decide_join keeps established members in spite of admission). */
    const aether_node_info *known = aether_topology_find(&cs->topo, id);
    if (known != NULL && aether_node_status_is_healthy(known->status) &&
        aether_node_info_same_process(known, &c->data.join.info))
        return AETHER_OK;
    __atomic_add_fetch(&m->joins_refused, 1, __ATOMIC_RELAXED);
    aether_err_set(why, AETHER_EPERM, "%s is not in the cluster's allowed_nodes", id->str);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&cs->refuse_log, member_now_ns(m), &suppressed))
        AETHER_WARN(MEMBER_LOG, "%s: join of %s refused: %s [%llu more suppressed]", m->cfg.node.str,
                    id->str, why->msg, (unsigned long long)suppressed);
    return AETHER_EPERM;
}

/* Leader of `term`: a MarkNodeFailed of a node still heard is refused, or
 * with force deferred (see judge_request). */
static aether_status judge_mark_failed(aether_member *m, const aether_command *c, aether_term term,
                                       bool *deferred, aether_err *why)
{
    member_cluster_state *cs = m->cs;
    /* The record is this term's only once LeaderElected was seen here (the
     * grace start, lead_since_ns) and the stored state read: before that,
     * silence cannot be judged (tick_failcheck waits the same way). */
    if (cs->lead_term != term || !state_loaded(m, term))
        return aether_err_set(why, AETHER_EUNAVAILABLE,
                              "taking over: the leader cannot judge silence yet; retry");
    const aether_node_id *id = &c->data.mark_failed.node;
    const aether_node_info *info = aether_topology_find(&cs->topo, id);
    if ((c->term != AETHER_TERM_NONE && c->term < cs->topo.term) || info == NULL ||
        !aether_node_status_is_healthy(info->status) ||
        (c->data.mark_failed.incarnation != 0 && c->data.mark_failed.incarnation != info->incarnation))
        return AETHER_OK; /* refused (stale, unknown, another incarnation: decide_failed) or
                             idempotent: member_cluster_lead_command says so */
    uint64_t now = member_now_ns(m);
    const hb_entry *h = hb_find(cs, id, false);
    uint64_t since = h != NULL && h->last_ns > cs->lead_since_ns ? h->last_ns : cs->lead_since_ns;
    uint64_t quiet = now > since ? now - since : 0;
    uint64_t limit = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS; /* as tick_failcheck */
    uint64_t suppressed = 0;
    if (aether_node_id_equal(id, &m->cfg.node)) /* forced or not: its own keep-alives keep it heard */
        return aether_err_set(why, AETHER_ESTATE,
                              "%s leads: a leader is not failed by request; stop its process "
                              "(another node takes over) or drain it",
                              id->str);
    if (c->data.mark_failed.force) {
        bool heard = quiet <= limit;
        if (aether_log_ratelimit_allow(&cs->force_log, now, &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: %s failed by request of %s, forced (last heard %llu ms ago%s) "
                        "[%llu more suppressed]", m->cfg.node.str, id->str,
                        c->sender.len ? c->sender.str : "?",
                        (unsigned long long)(quiet / AETHER_NS_PER_MS),
                        heard ? ": no longer heard, failed once silent for failure_timeout_ms" : "",
                        (unsigned long long)suppressed);
        if (!heard)
            return AETHER_OK;
        hb_entry *fh = hb_find(cs, id, true);
        if (fh == NULL)
            return aether_err_set(why, AETHER_ENOMEM, "out of memory");
        if (fh->forced_inc == 0) {
            fh->forced_inc = info->incarnation;
            fh->last_ns = since; /* the last time it counted (at least the grace start) */
        }
        *deferred = true;
        return AETHER_OK;
    }
    if (quiet > limit)
        return AETHER_OK;
    __atomic_add_fetch(&m->fail_requests_refused, 1, __ATOMIC_RELAXED);
    aether_err_set(why, AETHER_ESTATE,
                   "%s is alive: the leader heard it %llu ms ago (failure_timeout_ms %u); "
                   "use force (aetherctl fail --force) to remove it anyway",
                   id->str, (unsigned long long)(quiet / AETHER_NS_PER_MS),
                   m->cfg.failure_timeout_ms);
    if (aether_log_ratelimit_allow(&cs->fail_log, now, &suppressed))
        AETHER_WARN(MEMBER_LOG, "%s: MarkNodeFailed of %s from %s refused: %s [%llu more suppressed]",
                    m->cfg.node.str, id->str, c->sender.len ? c->sender.str : "?", why->msg,
                    (unsigned long long)suppressed);
    return AETHER_ESTATE;
}

/* A command from the wire, before it is decided: a JoinCluster from an id
 * the leader's allowed_nodes does not name is refused (EPERM), and so is a
 * keep-alive of a process being failed by force (EUNAVAILABLE: no
 * acknowledgement, below); a MarkNodeFailed is a request the leader grants
 * only when its own record says the node is silent. An operator's forced
 * one (aetherctl fail --force) is granted even so, but not at once when
 * the node was heard within failure_timeout_ms: it still serves then, and
 * the leader would hand its shards out at once (the decree) while it does:
 * two owners (adversary soak, seed 300010: "n6 acquired shard 17 while n0
 * still serves it", 243 ms after n0 was heard). Instead the leader stops
 * hearing that process (hb_entry.forced_inc): its heartbeats and
 * keep-alives no longer count and its keep-alives are not acknowledged, so
 * it fences by its own clock exactly as if it had gone silent at its last
 * acknowledgement, and the failure check (tick_failcheck) fails it once
 * that silence passes failure_timeout_ms, the bound every failure keeps.
 * *deferred is set then: the request is answered OK, nothing decided yet.
 * The leader itself is not failed by request (its own check never fails
 * it): ESTATE, naming what to do instead. Leadership itself is
 * member_cluster_lead_command's. */
static aether_status judge_request(aether_member *m, const aether_command *c, bool *deferred,
                                   aether_err *why)
{
    *deferred = false;
    aether_term term;
    if (!member_may_lead(m, &term))
        return AETHER_OK;
    if (c->type == AETHER_CMD_JOIN_CLUSTER)
        return judge_join(m, c, why);
    if (c->type != AETHER_CMD_MARK_NODE_FAILED)
        return AETHER_OK;
    return judge_mark_failed(m, c, term, deferred, why);
}

/* A keep-alive this leader decided but does not acknowledge: in a term it
 * took over from nothing (no stored map: the state bucket lost;
 * member_assign.c, wait_first_map), another node's, until this term's
 * first map is out. Such an acknowledgement would name a map older than
 * the ones a node may serve and extend its right to serve under it; the
 * keep-alive still counts (admission, heartbeat), and the node's right
 * lapses in time, before our first map can give its shards away. Our own
 * keep-alive is acknowledged (cut_off in member_lease.c): a leader serves
 * nothing before it holds a map of its term (aether_member_may_serve). */
static bool ack_withheld(aether_member *m, const aether_command *c)
{
    aether_term term;
    return member_may_lead(m, &term) && __atomic_load_n(&m->mapless_term, __ATOMIC_SEQ_CST) == term &&
           __atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) != term &&
           !aether_node_id_equal(&c->data.join.info.id, &m->cfg.node);
}

/* Answers command b: st, or why when refused; a keep-alive's
 * acknowledgement names the map the leader has now. `deferred`: a forced
 * MarkNodeFailed granted for later (judge_request). b stays the caller's. */
static void command_answer(aether_member *m, member_cmd_box *b, aether_status st,
                           const aether_err *why, bool deferred)
{
    aether_err w = { .code = AETHER_OK, .msg = "" };
    if (why != NULL)
        w = *why;
    char ok_reason[64] = "";
    if (deferred)
        snprintf(ok_reason, sizeof(ok_reason), "failed once silent for %u ms", m->cfg.failure_timeout_ms);
    if (st == AETHER_OK && b->cmd.type == AETHER_CMD_JOIN_CLUSTER && ack_withheld(m, &b->cmd))
        st = aether_err_set(&w, AETHER_EUNAVAILABLE, "taking over with no stored map: no "
                            "acknowledgement before this term's first map; retry");
    if (st == AETHER_OK && b->cmd.type == AETHER_CMD_JOIN_CLUSTER)
        /* Step 2: the acknowledgement names the map the leader has now. */
        snprintf(ok_reason, sizeof(ok_reason), KEEPALIVE_MAP_PREFIX "%llu",
                 (unsigned long long)__atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST));
    if (b->reply)
        b->reply(b->reply_arg, st, st == AETHER_OK ? ok_reason : w.msg);
}

/* Queues b behind the topology write in flight (commit_done decides it).
 * False (no memory): the caller refuses it, "retry". */
static bool command_queue(member_cluster_state *cs, member_cmd_box *b)
{
    if (cs->cmdq_count == cs->cmdq_cap) {
        uint32_t cap = cs->cmdq_cap ? cs->cmdq_cap * 2 : 16;
        member_cmd_box **q = malloc((size_t)cap * sizeof(*q));
        if (q == NULL)
            return false;
        for (uint32_t i = 0; i < cs->cmdq_count; i++)
            q[i] = cs->cmdq[(cs->cmdq_head + i) % cs->cmdq_cap];
        free(cs->cmdq);
        cs->cmdq = q;
        cs->cmdq_cap = cap;
        cs->cmdq_head = 0;
    }
    cs->cmdq[(cs->cmdq_head + cs->cmdq_count) % cs->cmdq_cap] = b;
    cs->cmdq_count++;
    return true;
}

/* MSG_COMMAND: a command from the wire, judged (judge_request), decided
 * as leader (lead_command) and answered (command_answer). While a
 * topology write is in flight it waits behind it (command_queue), in
 * order: it is judged and decided on the topology that write leaves. A
 * command whose change goes to the store is answered once it is stored
 * (commit_done). Takes b over. */
static void on_command(aether_member *m, member_cmd_box *b)
{
    member_cluster_state *cs = m->cs;
    aether_err why = { .code = AETHER_OK, .msg = "" };
    if (cs->commit != NULL) {
        if (command_queue(cs, b))
            return;
        command_answer(m, b, aether_err_set(&why, AETHER_EUNAVAILABLE, "leader busy; retry"), &why,
                       false);
        member_cmd_box_free(b);
        return;
    }
    bool deferred = false, pending = false;
    aether_status st = judge_request(m, &b->cmd, &deferred, &why);
    if (st == AETHER_OK && !deferred)
        st = lead_command(m, &b->cmd, &why, &pending);
    if (pending) {
        AETHER_ASSERT(cs->commit != NULL && cs->commit->box == NULL);
        cs->commit->box = b; /* answered by commit_done */
        return;
    }
    command_answer(m, b, st, &why, deferred);
    member_cmd_box_free(b);
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

void member_cluster_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_member *m = state;
    (void)self;
    follow_generation(m);
    switch (msg->type) {
    case MSG_EVENT:
        on_event(m, (const aether_event *)msg->ptr);
        break;
    case MSG_COMMAND:
        on_command(m, msg->ptr); /* takes the box over */
        break;
    case MSG_STORE_DONE: {
        member_store_req *r = msg->ptr;
        if (r->tag == CLUSTER_STORE_FOREIGN)
            foreign_checked(m, r);
        else
            commit_done(m, r);
        member_store_req_free(r);
        break;
    }
    case MSG_ANNOUNCE_ACK: /* member_internal.h, steps 2-3 */
        AETHER_ASSERT(msg->arg64 <= m->cs->barrier_seq); /* the assign actor echoes ours */
        if (msg->arg64 > m->cs->barrier_acked)
            m->cs->barrier_acked = msg->arg64;
        member_announce_flush(m);
        break;
    case MSG_HEARTBEAT:
        on_heartbeat(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_TICK_HEARTBEAT:
        tick_heartbeat(m);
        break;
    case MSG_TICK_FAILCHECK:
        if (msg->arg64 == m->cs->failcheck_gen)
            failcheck_at(m, tick_failcheck(m));
        break;
    case MSG_DRAINED:
        on_drained(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_DRAIN_SELF: {
        if (__atomic_load_n(&m->superseded, __ATOMIC_SEQ_CST))
            break; /* a LeaveCluster would drain the newer process of our id */
        m->cs->drain_requested = true;
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
        on_leader_note(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_REPLY:
        on_reply(m, msg->ptr);
        free(msg->ptr);
        break;
    default:
        AETHER_ASSERT(!"cluster actor: unknown message type");
    }
}
