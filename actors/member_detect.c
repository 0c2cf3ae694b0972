/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_detect.c: failure detection, the leader's side of the cluster
 * actor (actors layer, private to the cluster actor's files): the
 * heartbeat record, policy 4 (silent nodes failed on time), and retention
 * (departed nodes forgotten after node_retention_ms).
 *
 * DESIGN (the serving-right protocol this rests on: member_cluster.c)
 *  1. Every heartbeat or keep-alive the leader accepts from a healthy
 *     member's current incarnation sets its record's last_ns (this node's
 *     clock); nothing else does - a ghost id, an older process, a process
 *     being failed by an operator's force are counted and ignored.
 *  2. The failure check runs when the first healthy node's silence can
 *     exceed failure_timeout_ms (and at least every heartbeat interval),
 *     counting silence from no earlier than the moment this node started
 *     leading, so a new leader does not fail nodes it has not had time to
 *     hear; each silent node is failed by a MarkNodeFailed decided here
 *     (member_admit.c), at most FAILCHECK_BATCH_MAX per check.
 *  3. The check decides only with the stored state loaded in its term
 *     (member_topo_store_loaded) and with no store request in flight: one
 *     put off by a request is run again when it is done
 *     (failcheck_deferred; member_cluster_internal.h, "The cluster actor's
 *     store requests").
 * Threading: cluster actor only.
 */
#include "member_cluster_internal.h"

#include <stdlib.h>
#include <string.h>

hb_entry *member_detect_hb_find(member_cluster_state *cs, const aether_node_id *id, bool create)
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
void member_detect_heard_if_joined(aether_member *m, const aether_event *e)
{
    if (e->type != AETHER_EVT_NODE_JOINED)
        return;
    hb_entry *h = member_detect_hb_find(m->cs, &e->data.node_joined.node, true);
    if (h != NULL) {
        h->last_ns = member_now_ns(m);
        h->forced_inc = 0;
    }
}

/* Drops the records of ids the topology no longer has (forgotten nodes):
 * the table stays as small as the topology, plus nodes heard from but not
 * admitted yet - those are kept while they keep talking. O(entries * log
 * nodes). */
void member_detect_hb_prune(member_cluster_state *cs, uint64_t now_ns, uint64_t keep_ns)
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

/* Retention's clock (DESIGN 2): when this node first saw each node Left or
 * Failed, by its own clock. A node that comes to lead keeps what it saw as a
 * follower; one it saw depart only in a stored topology counts from then. So
 * a change of leader may delay forgetting, never hasten it. */
void member_detect_note_departures(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    for (uint32_t i = 0; i < cs->topo.count; i++) { /* bounded: AETHER_TOPOLOGY_NODES_MAX */
        const aether_node_info *n = &cs->topo.nodes[i];
        bool departed = aether_node_status_is_departed(n->status);
        hb_entry *h = member_detect_hb_find(cs, &n->id, departed);
        if (h == NULL)
            continue;
        if (!departed)
            h->departed_ns = 0;
        else if (h->departed_ns == 0)
            h->departed_ns = now;
    }
}

/* (Re)arms the failure check for at_ns (this node's clock); older timers
 * become stale. Cluster actor only. */
void member_detect_failcheck_at(aether_member *m, uint64_t at_ns)
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
        hb_entry *h = aether_node_status_is_departed(n->status) ? member_detect_hb_find(cs, &n->id, false)
                                                                : NULL;
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
        hb_entry *h = member_detect_hb_find(cs, &n->id, false);
        uint64_t since = h != NULL ? h->departed_ns : 0;
        if (!aether_topology_may_forget(n, since, now, retention, map))
            continue;
        gone[n_gone] = n->id;
        age_ms[n_gone++] = (now - since) / AETHER_NS_PER_MS;
    }
    aether_rcu_read_unlock();
    aether_err why;
    member_topo_commit *tc = n_gone > 0 && !member_topo_store_busy(m, &why)
                                 ? member_topo_store_commit_new(m, TOPO_COMMIT_FORGET, term)
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
    if (member_topo_store_commit_send(m, tc, &why) != AETHER_OK) /* its completion finishes it */
        AETHER_WARN(MEMBER_LOG, "%s: could not forget %u departed node(s): %s", m->cfg.node.str, n_gone,
                    why.msg);
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
        hb_entry *h = member_detect_hb_find(cs, &node->id, true);
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
        if (m->cs->io != CLUSTER_IO_NONE) {
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

/* Policy 4, on time: the check runs when the first healthy node's silence
 * can exceed failure_timeout, not on a fixed tick, so a silent node is
 * declared failed within FAILCHECK_SLACK_NS (and the timer's lateness) of
 * its deadline. Declaring it then is what the serving rights allow
 * (member_cluster.c, step 4: never before failure_timeout after the last
 * heartbeat or keep-alive received); polling only ever declared it later.
 * Returns when to look again (this node's clock): the earliest deadline,
 * and no later than one heartbeat interval from now, so a deadline that
 * moves earlier between two checks (a new term, a node met in a stored
 * topology) is still met within an interval, as the periodic check did.
 * MSG_TICK_FAILCHECK (policy 4), leader with its stored state loaded: the
 * write-backs, then silent nodes failed and departed ones forgotten.
 * Returns when to check next. */
static uint64_t detect_tick_failcheck(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t next = now + (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    aether_term term;
    if (!member_may_lead(m, &term) || cs->lead_term != term)
        return next; /* not leading, or LeaderElected not seen here yet (no grace start) */
    if (cs->io != CLUSTER_IO_NONE) {
        cs->failcheck_deferred = true; /* member_topo_store_done runs it again */
        return next;
    }
    if (!member_topo_store_loaded(m, term))
        return next; /* the stored state not read yet (the take-over's next step is out) */
    member_topo_store_refence(m, term);  /* after a lost state bucket: ours written back */
    member_topo_store_check_foreign(m, now);
    /* Collect first: deciding changes the topology we iterate. The rest of a
     * larger wave is declared by the next check, at once. */
    aether_node_id silent[FAILCHECK_BATCH_MAX];
    uint64_t silent_ms[FAILCHECK_BATCH_MAX];
    uint32_t n = collect_silent(m, now, silent, silent_ms, &next);
    fail_silent(m, silent, silent_ms, n);
    forget_departed(m, term);
    return next;
}

/* A heartbeat from the wire (only the leader is sent them): recorded only
 * for a healthy member's current incarnation. */
void member_detect_on_heartbeat(aether_member *m, const member_hb_box *b)
{
    member_cluster_state *cs = m->cs;
    const aether_node_info *info = aether_topology_find(&cs->topo, &b->node);
    if (info != NULL && aether_node_status_is_healthy(info->status) &&
        info->incarnation == b->incarnation) {
        hb_entry *h = member_detect_hb_find(cs, &b->node, true);
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

void member_detect_tick(aether_member *m)
{
    member_detect_failcheck_at(m, detect_tick_failcheck(m));
}
