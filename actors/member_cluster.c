/*
 * member_cluster.c: the Cluster actor of a member (actors layer).
 *
 * DESIGN
 *  Every node: applies topology events (its own decisions are applied when
 *  decided, so their echo on the bus is skipped), calls the embedder's
 *  on_event for every event in order, sends a heartbeat every
 *  heartbeat_interval_ms and, until it is a healthy member, asks the leader
 *  to admit it (JoinCluster, retried on every heartbeat tick; idempotent).
 *  A node that learns it was declared Failed (paused, cut off) asks again and
 *  comes back with a new incarnation.
 *  The leader (member_may_lead): decides commands (topology.h), applies and
 *  emits the events, replies; records heartbeats; every heartbeat interval
 *  declares Failed each healthy node silent for failure_timeout_ms
 *  (policy 4), counting silence from no earlier than the moment it started
 *  leading, so a new leader does not fail nodes it has not had time to hear.
 *  It also completes drains: NodeLeft when ShardAssignment reports a
 *  draining node owns nothing (policy 7).
 * Threading: all state below is owned by the cluster actor.
 */
#include "member_internal.h"
#include "topology_json.h"

#include <stdlib.h>
#include <string.h>

/* Nodes declared failed per failure-check tick, at most. */
#define FAILCHECK_BATCH_MAX 64u

typedef struct hb_entry {
    aether_node_id id;
    uint64_t last_ns;
} hb_entry;

struct member_cluster_state {
    aether_topology topo;
    hb_entry *hb;             /* ascending by id */
    uint32_t n_hb, cap_hb;
    aether_term lead_term;    /* the term we started leading in (0 = follower) */
    uint64_t lead_since_ns;
    uint64_t join_requests;
    uint64_t state_rev;       /* revision of the stored topology we last wrote */
};

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
    cs->n_hb++;
    return &cs->hb[lo];
}

aether_status member_cluster_init(aether_member *m)
{
    m->cs = calloc(1, sizeof(*m->cs));
    if (m->cs == NULL)
        return AETHER_ENOMEM;
    return aether_topology_init(&m->cs->topo, &m->cfg.node);
}

void member_cluster_fini(aether_member *m)
{
    if (m->cs == NULL)
        return;
    aether_topology_fini(&m->cs->topo);
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
    }
    free(msg->ptr);
}

void member_cluster_start(aether_member *m)
{
    uint64_t hb_ns = (uint64_t)m->cfg.heartbeat_interval_ms * AETHER_NS_PER_MS;
    aether_msg hb = { .type = MSG_TICK_HEARTBEAT };
    aether_msg fc = { .type = MSG_TICK_FAILCHECK };
    (void)aether_timer_start(m->cluster, 0, hb_ns, &hb, NULL);
    (void)aether_timer_start(m->cluster, hb_ns, hb_ns, &fc, NULL);
}

static void publish_self_status(aether_member *m)
{
    const aether_node_info *me = aether_topology_find(&m->cs->topo, &m->cfg.node);
    __atomic_store_n(&m->self_status, me ? (uint32_t)me->status + 1 : 0, __ATOMIC_RELAXED);
    uint32_t others = 0;
    for (uint32_t i = 0; i < m->cs->topo.count; i++)
        others += m->cs->topo.nodes[i].status == AETHER_NODE_ACTIVE &&
                  !aether_node_id_equal(&m->cs->topo.nodes[i].id, &m->cfg.node);
    __atomic_store_n(&m->active_others, others, __ATOMIC_RELAXED);
    aether_topology_snapshot *ts = aether_topology_snapshot_create(&m->cs->topo);
    if (ts != NULL)
        aether_snapshot_publish(&m->topo_slot, &ts->snap);
    else
        AETHER_ERROR(MEMBER_LOG, "%s: out of memory publishing the topology", m->cfg.node.str);
    __atomic_store_n(&m->topology_version, m->cs->topo.version, __ATOMIC_RELAXED);
}

/* Leader: the topology goes to the state store after every change, so a
 * node that starts, lags or takes over reads all of it at once. */
static void store_topology(aether_member *m)
{
    char *json = NULL;
    size_t len = 0;
    if (aether_topology_json_encode(&m->cs->topo, &json, &len, NULL) == AETHER_OK)
        (void)member_state_put(m, MEMBER_STATE_TOPOLOGY, json, len, &m->cs->state_rev);
    free(json);
}

/* Any node: adopt the stored topology if it is newer than ours (we missed
 * events: paused, cut off, started late, or just elected). */
static void load_topology(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    aether_topology t;
    uint64_t rev = 0;
    if (member_state_topology_newer(m, cs->topo.version, &t, &rev) != AETHER_OK)
        return;
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
    publish_self_status(m);
}

/* Tells the assign actor that e has been applied and published. */
static void notify_assign(aether_member *m, aether_event *e)
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
    member_reply_box *b = malloc(sizeof(*b));
    if (b == NULL)
        return;
    b->status = st;
    snprintf(b->reason, sizeof(b->reason), "%s", reason ? reason : "");
    member_send_owned(m, m->cluster, MSG_REPLY, b);
}

static void send_to_leader(aether_member *m, const aether_command *c)
{
    aether_status st = aether_transport_send_command(m->deps.transport, c, reply_cb, m);
    if (st != AETHER_OK)
        AETHER_DEBUG(MEMBER_LOG, "%s: %s not sent (%s); retrying later", m->cfg.node.str,
                     aether_command_type_name(c->type), aether_status_str(st));
}

static void base_command(aether_member *m, aether_command *c, aether_command_type type)
{
    memset(c, 0, sizeof(*c));
    c->type = type;
    snprintf(c->cluster, sizeof(c->cluster), "%s", m->cfg.cluster);
    c->term = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
    c->sender = m->cfg.node;
}

/* Decides a command as leader: applies and emits its events. */
static aether_status lead_command(aether_member *m, const aether_command *c, aether_err *why)
{
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
    if (c->type == AETHER_CMD_REBALANCE_SHARDS || c->type == AETHER_CMD_ASSIGN_SHARDS) {
        if (c->term != AETHER_TERM_NONE && c->term < term)
            return aether_err_set(why, AETHER_ESTALE, "term %llu is older than %llu",
                                  (unsigned long long)c->term, (unsigned long long)term);
        char *reason = strdup(c->type == AETHER_CMD_ASSIGN_SHARDS ? "AssignShards"
                              : c->data.rebalance.reason[0] ? c->data.rebalance.reason
                                                            : "RebalanceShards");
        if (reason == NULL || member_send_owned(m, m->assign, MSG_REBALANCE, reason) != AETHER_OK)
            return aether_err_set(why, AETHER_EFULL, "leader busy; retry");
        return AETHER_OK;
    }
    if (c->type == AETHER_CMD_ELECT_LEADER)
        return aether_err_set(why, AETHER_EINVAL,
                              "ElectLeader is decided by each node's lease, not by the leader");
    /* The aggregate checks leadership against its own view; it is ours. */
    aether_topology_set_leader(&cs->topo, &m->cfg.node, term);
    aether_event *ev[AETHER_TOPOLOGY_DECIDE_MAX];
    uint32_t n = 0;
    aether_status st = aether_topology_decide(&cs->topo, c, aether_clock_wall_ms(m->clock), ev, &n, why);
    if (st != AETHER_OK)
        return st;
    for (uint32_t i = 0; i < n; i++) {
        aether_topology_apply(&cs->topo, ev[i]);
        if (ev[i]->type == AETHER_EVT_NODE_JOINED) {
            ev[i]->data.node_joined.map_version = __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST);
            hb_entry *h = hb_find(cs, &ev[i]->data.node_joined.node, true);
            if (h != NULL)
                h->last_ns = member_now_ns(m);
        }
    }
    publish_self_status(m);
    if (n > 0)
        store_topology(m);
    for (uint32_t i = 0; i < n; i++) {
        aether_event_retain(ev[i]);
        (void)member_emit(m, ev[i], AETHER_TERM_NONE); /* stamps it, takes one reference */
        notify_assign(m, ev[i]);
        aether_event_release(ev[i]);
    }
    return AETHER_OK;
}

static void on_event(aether_member *m, const aether_event *e)
{
    member_cluster_state *cs = m->cs;
    if (m->cb.on_event != NULL)
        m->cb.on_event(m->cb.arg, e);
    switch (e->type) {
    case AETHER_EVT_LEADER_ELECTED: {
        const aether_node_id *leader = &e->data.leader_elected.leader;
        aether_term term = e->data.leader_elected.term;
        if (!aether_topology_set_leader(&cs->topo, leader, term))
            return;
        if (aether_node_id_equal(leader, &m->cfg.node)) {
            load_topology(m); /* policy 10: take over from the stored state */
            cs->lead_term = term;
            cs->lead_since_ns = member_now_ns(m);
            for (uint32_t i = 0; i < cs->n_hb; i++)
                cs->hb[i].last_ns = cs->lead_since_ns;
        } else {
            cs->lead_term = AETHER_TERM_NONE;
        }
        return;
    }
    case AETHER_EVT_LEASE_RENEWED:
        if (e->data.lease_renewed.topology_version > cs->topo.version)
            load_topology(m);
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
        if (aether_node_id_equal(&e->node, &m->cfg.node))
            return; /* ours: applied, published and passed on when decided */
        aether_topology_apply(&cs->topo, e);
        if (e->type == AETHER_EVT_NODE_JOINED) {
            hb_entry *h = hb_find(cs, &e->data.node_joined.node, true);
            if (h != NULL)
                h->last_ns = member_now_ns(m);
        }
        publish_self_status(m);
        notify_assign(m, (aether_event *)e);
        return;
    default:
        return;
    }
}

static void tick_heartbeat(aether_member *m)
{
    (void)aether_transport_publish_heartbeat(m->deps.transport, &m->cfg.node,
                                             m->self_info.incarnation);
    const aether_node_info *me = aether_topology_find(&m->cs->topo, &m->cfg.node);
    bool healthy = me != NULL && aether_node_status_is_healthy(me->status) &&
                   me->incarnation >= m->self_info.incarnation &&
                   !__atomic_load_n(&m->self_down, __ATOMIC_SEQ_CST);
    if (healthy || (me != NULL && me->status == AETHER_NODE_LEFT &&
                    me->incarnation >= m->self_info.incarnation))
        return; /* a member, or this run of the node left for good */
    aether_command c;
    base_command(m, &c, AETHER_CMD_JOIN_CLUSTER);
    c.data.join.info = m->self_info;
    if (me != NULL && me->incarnation >= c.data.join.info.incarnation)
        c.data.join.info.incarnation = me->incarnation + 1;
    m->cs->join_requests++;
    send_to_leader(m, &c);
}

static void tick_failcheck(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    aether_term term;
    if (!member_may_lead(m, &term) || cs->lead_term != term)
        return; /* not leading, or LeaderElected not seen here yet: no grace start */
    uint64_t now = member_now_ns(m);
    uint64_t timeout = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
    /* Collect first: deciding changes the topology we iterate. The rest of a
     * larger wave is declared on the next tick. */
    aether_node_id silent[FAILCHECK_BATCH_MAX];
    uint64_t silent_ms[FAILCHECK_BATCH_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < cs->topo.count && n < FAILCHECK_BATCH_MAX; i++) {
        const aether_node_info *node = &cs->topo.nodes[i];
        if (!aether_node_status_is_healthy(node->status) ||
            aether_node_id_equal(&node->id, &m->cfg.node))
            continue;
        hb_entry *h = hb_find(cs, &node->id, true);
        uint64_t since = h ? h->last_ns : cs->lead_since_ns;
        if (since < cs->lead_since_ns)
            since = cs->lead_since_ns;
        if (now > since && now - since > timeout) {
            silent[n] = node->id;
            silent_ms[n] = (now - since) / AETHER_NS_PER_MS;
            n++;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        aether_command c;
        base_command(m, &c, AETHER_CMD_MARK_NODE_FAILED);
        c.data.mark_failed.node = silent[i];
        c.data.mark_failed.silent_ms = silent_ms[i];
        aether_err why;
        if (lead_command(m, &c, &why) != AETHER_OK)
            AETHER_WARN(MEMBER_LOG, "%s: could not fail %s: %s", m->cfg.node.str, silent[i].str,
                        why.msg);
        else
            AETHER_INFO(MEMBER_LOG, "%s: %s silent for %llu ms: failed", m->cfg.node.str,
                        silent[i].str, (unsigned long long)silent_ms[i]);
    }
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
    aether_topology_apply(&m->cs->topo, e);
    publish_self_status(m);
    store_topology(m);
    aether_event_retain(e);
    (void)member_emit(m, e, AETHER_TERM_NONE);
    notify_assign(m, e);
    aether_event_release(e);
}

void member_cluster_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_member *m = state;
    (void)self;
    switch (msg->type) {
    case MSG_EVENT:
        on_event(m, (const aether_event *)msg->ptr);
        break;
    case MSG_COMMAND: {
        member_cmd_box *b = msg->ptr;
        aether_err why = { .code = AETHER_OK, .msg = "" };
        aether_status st = lead_command(m, &b->cmd, &why);
        if (b->reply)
            b->reply(b->reply_arg, st, st == AETHER_OK ? "" : why.msg);
        free(b);
        break;
    }
    case MSG_HEARTBEAT: {
        member_hb_box *b = msg->ptr;
        hb_entry *h = hb_find(m->cs, &b->node, true);
        if (h != NULL)
            h->last_ns = member_now_ns(m);
        free(b);
        break;
    }
    case MSG_TICK_HEARTBEAT:
        tick_heartbeat(m);
        break;
    case MSG_TICK_FAILCHECK:
        tick_failcheck(m);
        break;
    case MSG_DRAINED:
        on_drained(m, msg->ptr);
        free(msg->ptr);
        break;
    case MSG_DRAIN_SELF: {
        aether_command c;
        base_command(m, &c, AETHER_CMD_LEAVE_CLUSTER);
        c.data.leave.node = m->cfg.node;
        send_to_leader(m, &c);
        break;
    }
    case MSG_SEND_COMMAND: {
        aether_command *c = msg->ptr;
        c->term = __atomic_load_n(&m->highest_term, __ATOMIC_RELAXED);
        send_to_leader(m, c);
        free(c);
        break;
    }
    case MSG_REPLY: {
        member_reply_box *b = msg->ptr;
        if (b->status != AETHER_OK)
            AETHER_DEBUG(MEMBER_LOG, "%s: leader said %s: %s", m->cfg.node.str,
                         aether_status_str(b->status), b->reason);
        free(b);
        break;
    }
    default:
        AETHER_ASSERT(!"cluster actor: unknown message type");
    }
}
