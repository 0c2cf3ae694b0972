/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_admit.c: commands, the deciding side of the cluster actor (actors
 * layer, private to the cluster actor's files): a command from the wire is
 * judged against the leader's own record (judge_request: allowed_nodes, a
 * MarkNodeFailed of a node still heard, an operator's force), the leader
 * decides it (lead_command: admission, the aggregate's decision, the
 * change sent to the store) and answers it (member_admit_answer: a
 * keep-alive's acknowledgement names the leader's map).
 *
 * DESIGN
 *  1. A command is decided only by the leader of a term whose stored
 *     state it has loaded (policy 10; member_topo_store_loaded): one that
 *     comes before the take-over is done waits behind its reads, and one
 *     that comes while any change is being written waits behind that write
 *     (member_cluster_internal.h, "The cluster actor's store requests"), so
 *     every command is decided on the topology the previous one left.
 *  2. A leader whose configuration does not match the stored map, or
 *     that stood down in its term, decides nothing, its own admission
 *     included (it resigns: member_lease.c).
 *  3. While anything waits to be announced, no departed node is revived
 *     (member_internal.h, "The leader's two commit points", step 4).
 * Threading: cluster actor only.
 */
#include "member_cluster_internal.h"

#include <stdlib.h>
#include <string.h>

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
     * anyone could refuse it; the take-over compares it with the stored
     * map, member_topo_store.c) decides nothing, its own admission
     * included, and resigns (member_lease.c): judged by its terms every
     * newcomer would look incompatible, and it would fail the members it
     * cannot hear. */
    bool loaded = member_topo_store_loaded(m, term);
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
 * (*pending: its completion, member_topo_store.c commit_done, applies and
 * emits them, and answers the command the caller hands it); a command that
 * changes nothing is done here. */
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
    if (member_topo_store_busy(m, why))
        return AETHER_EUNAVAILABLE; /* member_admit_command holds commands; the leader's own retry */
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
    else if (n > 0 && (tc = member_topo_store_commit_new(m, TOPO_COMMIT_DECIDED, term)) == NULL)
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
        st = member_topo_store_commit_send(m, tc, why);
        *pending = st == AETHER_OK;
        return st;
    }
    if (c->type == AETHER_CMD_JOIN_CLUSTER) {
        /* A keep-alive (or an admission) counts as a heartbeat: its reply is
         * the acknowledgement the node's serving right rests on (step 2). */
        hb_entry *h = member_detect_hb_find(cs, &c->data.join.info.id, true);
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

/* One leader-decided topology event (e, owned): recorded in the state store,
 * then published and announced in the order of member_internal.h ("The
 * leader's two commit points"). Not recorded: released, nothing announced. */
aether_status member_admit_announce_one(aether_member *m, aether_event *e, bool unsay_self,
                                        aether_err *why)
{
    aether_term term = AETHER_TERM_NONE;
    if (!member_may_lead(m, &term)) {
        aether_event_release(e);
        return aether_err_set(why, AETHER_ENOTLEADER, "not leader");
    }
    if (member_topo_store_busy(m, why)) {
        aether_event_release(e);
        return AETHER_EUNAVAILABLE;
    }
    if (!member_announce_reserve(m->cs, 1)) {
        aether_event_release(e);
        return aether_err_set(why, AETHER_EUNAVAILABLE, "leader busy announcing; retry");
    }
    member_topo_commit *tc = member_topo_store_commit_new(m, TOPO_COMMIT_DECIDED, term);
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
    return member_topo_store_commit_send(m, tc, why); /* its completion announces it */
}

void member_cluster_fail_self(aether_member *m)
{
    aether_event *e = aether_event_create(AETHER_EVT_NODE_FAILED);
    if (e == NULL)
        return;
    e->data.node_failed.node = m->cfg.node;
    aether_err why;
    if (member_admit_announce_one(m, e, true, &why) != AETHER_OK)
        AETHER_WARN(MEMBER_LOG, "%s: could not record itself failed: %s", m->cfg.node.str, why.msg);
}

/* MSG_DRAINED: a draining node owns nothing (the assign actor, policy 7):
 * the leader records it Left. */
void member_admit_drained(aether_member *m, const aether_node_id *node)
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
    if (!member_may_lead(m, &term) || m->cs->io != CLUSTER_IO_NONE ||
        !member_topo_store_loaded(m, term)) {
        aether_event_release(e); /* the assign actor reports it again next tick */
        return;
    }
    (void)member_admit_announce_one(m, e, false, &why); /* not recorded: the assign actor reports it again */
}

/* Leader: a JoinCluster is acknowledged unless an operator's force is
 * failing that process, or its id is neither allowed nor a healthy member
 * at the incarnation it claims (AETHER_EPERM, counted and logged). */
static aether_status judge_join(aether_member *m, const aether_command *c, aether_err *why)
{
    member_cluster_state *cs = m->cs;
    const aether_node_id *id = &c->data.join.info.id;
    const aether_node_info *cur = aether_topology_find(&cs->topo, id);
    const hb_entry *fh = cur != NULL ? member_detect_hb_find(cs, id, false) : NULL;
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
     * silence cannot be judged (the failure check, member_detect.c, waits the same way). */
    if (cs->lead_term != term || !member_topo_store_loaded(m, term))
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
    const hb_entry *h = member_detect_hb_find(cs, id, false);
    uint64_t since = h != NULL && h->last_ns > cs->lead_since_ns ? h->last_ns : cs->lead_since_ns;
    uint64_t quiet = now > since ? now - since : 0;
    uint64_t limit = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS; /* as the failure check */
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
        hb_entry *fh = member_detect_hb_find(cs, id, true);
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
 * acknowledgement, and the failure check (member_detect.c) fails it once
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
void member_admit_answer(aether_member *m, member_cmd_box *b, aether_status st,
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

/* MSG_COMMAND: a command from the wire, judged (judge_request), decided
 * as leader (lead_command) and answered (member_admit_answer). While a
 * store request that holds commands is in flight (a topology write, or the
 * take-over's reads, which a leader's command starts if they are due) it
 * waits behind it, in order: it is judged and decided on the topology that
 * request leaves. A command whose change goes to the store is answered
 * once it is stored (member_topo_store.c, commit_done). Takes b over. */
void member_admit_command(aether_member *m, member_cmd_box *b, bool from_held)
{
    member_cluster_state *cs = m->cs;
    if (!from_held && cs->held_count > 0) {
        member_cluster_hold(m, MSG_COMMAND, b, false); /* behind what waits: in order */
        return;
    }
    /* A leader decides nothing before its take-over is done (policy 10):
     * its next step goes out, if due, and the command waits for it rather
     * than being refused (it is refused below if none could go out). */
    aether_term term;
    if (cs->io == CLUSTER_IO_NONE && member_may_lead(m, &term))
        (void)member_topo_store_loaded(m, term);
    if (member_topo_store_holds(cs->io, MSG_COMMAND)) {
        member_cluster_hold(m, MSG_COMMAND, b, from_held);
        return;
    }
    aether_err why = { .code = AETHER_OK, .msg = "" };
    bool deferred = false, pending = false;
    aether_status st = judge_request(m, &b->cmd, &deferred, &why);
    if (st == AETHER_OK && !deferred)
        st = lead_command(m, &b->cmd, &why, &pending);
    if (pending) {
        AETHER_ASSERT(cs->io == CLUSTER_IO_COMMIT && cs->commit != NULL && cs->commit->box == NULL);
        cs->commit->box = b; /* answered by commit_done */
        return;
    }
    member_admit_answer(m, b, st, &why, deferred);
    member_cmd_box_free(b);
}
