/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topology.c: the Cluster aggregate's decide/apply (actors layer). See
 * topology.h for the rules and the threading contract.
 */
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

aether_status aether_topology_init(aether_topology *t, const aether_node_id *self)
{
    memset(t, 0, sizeof(*t));
    if (self != NULL)
        t->self = *self;
    return AETHER_OK;
}

void aether_topology_fini(aether_topology *t)
{
    free(t->nodes);
    memset(t, 0, sizeof(*t));
}

aether_status aether_topology_copy(const aether_topology *src, aether_topology *dst)
{
    *dst = *src;
    dst->nodes = NULL;
    dst->cap = 0;
    if (src->count > 0) {
        dst->nodes = malloc((size_t)src->count * sizeof(*dst->nodes));
        if (dst->nodes == NULL)
            return AETHER_ENOMEM;
        memcpy(dst->nodes, src->nodes, (size_t)src->count * sizeof(*dst->nodes));
        dst->cap = src->count;
    }
    return AETHER_OK;
}

static void snapshot_free(aether_snapshot *s)
{
    aether_topology_snapshot *ts = (aether_topology_snapshot *)s;
    aether_topology_fini(&ts->topo);
    free(ts);
}

aether_topology_snapshot *aether_topology_snapshot_create(const aether_topology *t)
{
    aether_topology_snapshot *ts = calloc(1, sizeof(*ts));
    if (ts == NULL)
        return NULL;
    if (aether_topology_copy(t, &ts->topo) != AETHER_OK) {
        free(ts);
        return NULL;
    }
    ts->snap.free_fn = snapshot_free;
    return ts;
}

/* Index of id, or of where it would be inserted (with *found false). */
static uint32_t lower_bound(const aether_topology *t, const aether_node_id *id, bool *found)
{
    uint32_t lo = 0, hi = t->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (aether_node_id_compare(&t->nodes[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->count && aether_node_id_equal(&t->nodes[lo].id, id);
    return lo;
}

const aether_node_info *aether_topology_find(const aether_topology *t, const aether_node_id *id)
{
    bool found;
    uint32_t i = lower_bound(t, id, &found);
    return found ? &t->nodes[i] : NULL;
}

uint32_t aether_topology_count_status(const aether_topology *t, aether_node_status s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->count; i++)
        n += t->nodes[i].status == s;
    return n;
}

uint32_t aether_topology_count_live(const aether_topology *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->count; i++)
        n += aether_node_status_is_healthy(t->nodes[i].status);
    return n;
}

bool aether_topology_may_forget(const aether_node_info *n, uint64_t departed_ns, uint64_t now_ns,
                                uint64_t retention_ns, const aether_shardmap *map)
{
    if (!aether_node_status_is_departed(n->status) || departed_ns == 0 || map == NULL)
        return false;
    if (now_ns < departed_ns || now_ns - departed_ns < retention_ns)
        return false;
    return !aether_shardmap_names_node(map, &n->id);
}

bool aether_topology_remove(aether_topology *t, const aether_node_id *id)
{
    bool found;
    uint32_t i = lower_bound(t, id, &found);
    if (!found || !aether_node_status_is_departed(t->nodes[i].status))
        return false;
    memmove(&t->nodes[i], &t->nodes[i + 1], (size_t)(t->count - i - 1) * sizeof(*t->nodes));
    t->count--;
    t->version++;
    return true;
}

bool aether_topology_set_terms(aether_topology *t, const aether_node_id *id,
                               const aether_admission *terms)
{
    bool found;
    uint32_t i = lower_bound(t, id, &found);
    if (!found)
        return false;
    t->nodes[i].terms = *terms;
    return true;
}

bool aether_topology_set_leader(aether_topology *t, const aether_node_id *leader, aether_term term)
{
    if (term < t->term)
        return false;
    t->term = term;
    if (leader != NULL)
        t->leader = *leader;
    else
        memset(&t->leader, 0, sizeof(t->leader));
    return true;
}

static aether_event *new_event(aether_event_type type, aether_event **events, uint32_t *n)
{
    AETHER_ASSERT(*n < AETHER_TOPOLOGY_DECIDE_MAX);
    aether_event *e = aether_event_create(type);
    if (e != NULL)
        events[(*n)++] = e;
    return e;
}

bool aether_node_info_same_process(const aether_node_info *record, const aether_node_info *claim)
{
    if (record->nonce != 0 && claim->nonce != 0)
        return record->nonce == claim->nonce;
    return claim->incarnation == record->incarnation;
}

/* The incarnation the leader gives an admission ("Incarnations" in
 * topology.h): the joiner's start time as a hint, clamped to the leader's
 * wall clock + AETHER_INCARNATION_AHEAD_MAX_MS (the leader's clock when
 * the joiner names none), and always above the id's record. */
static uint64_t assigned_incarnation(const aether_node_info *old, uint64_t hint, uint64_t now_wall_ms)
{
    uint64_t inc = hint;
    if (inc == 0)
        inc = now_wall_ms;
    if (now_wall_ms > 0 && inc > now_wall_ms + AETHER_INCARNATION_AHEAD_MAX_MS)
        inc = now_wall_ms + AETHER_INCARNATION_AHEAD_MAX_MS;
    if (inc == 0)
        inc = 1;
    if (old != NULL && old->incarnation >= inc)
        inc = old->incarnation + 1;
    return inc;
}

static aether_status decide_join(const aether_topology *t, const aether_command *cmd,
                                 uint64_t now_wall_ms, aether_event **events, uint32_t *n,
                                 aether_err *reason)
{
    aether_node_info info = cmd->data.join.info;
    info.status = AETHER_NODE_ACTIVE;
    aether_err inner;
    if (aether_node_info_validate(&info, &inner) != AETHER_OK)
        return aether_err_set(reason, AETHER_EINVAL, "JoinCluster: %s", inner.msg);
    if (info.nonce > (uint64_t)INT64_MAX)
        return aether_err_set(reason, AETHER_EINVAL, "JoinCluster: nonce %llu out of range",
                              (unsigned long long)info.nonce);
    const aether_node_info *old = aether_topology_find(t, &info.id);
    /* Admission: a node that cannot serve this cluster's maps is never
     * admitted, so no map names it (I2). An established member's keep-alive
     * (healthy under this process) is not judged again: it was admitted
     * by an earlier leader - perhaps one that predates the check - and a
     * leader that differs from its members (it won the lease before anyone
     * could refuse it) must not silence them all; such a member's serving
     * is guarded on its own side (a map it cannot serve is not installed). */
    bool healthy = old != NULL && aether_node_status_is_healthy(old->status);
    /* A process naming an incarnation above its own record asks for a new
     * one (it believes it was failed): not a keep-alive. */
    bool established = healthy && ((info.incarnation == 0 && info.nonce == 0) ||
                                   (aether_node_info_same_process(old, &info) &&
                                    (info.nonce == 0 || info.incarnation <= old->incarnation)));
    if (t->admission.shard_count != 0 && !established) {
        aether_status adm = aether_admission_check(&t->admission, &cmd->data.join.terms, reason);
        if (adm != AETHER_OK)
            return adm;
    }
    uint64_t incarnation;
    if (info.nonce != 0) {
        /* The leader assigns (topology.h, "Incarnations"); the claim only
         * says which process asks: its current incarnation (a keep-alive),
         * or one above the record (a process that wants a new one). */
        if (established)
            return AETHER_OK; /* this process's keep-alive: idempotent */
        if (healthy && info.incarnation != 0 && info.incarnation < old->incarnation)
            return aether_err_set(reason, AETHER_ESUPERSEDED,
                                  "%s incarnation %llu is superseded by incarnation %llu (a newer "
                                  "process of this node id)",
                                  info.id.str, (unsigned long long)info.incarnation,
                                  (unsigned long long)old->incarnation);
        if (old != NULL && info.incarnation != 0 && info.incarnation <= old->incarnation)
            return aether_err_set(reason, AETHER_ESTALE,
                                  "%s incarnation %llu is not current (%llu is %s): rejoin with "
                                  "a newer one",
                                  info.id.str, (unsigned long long)info.incarnation,
                                  (unsigned long long)old->incarnation,
                                  aether_node_status_name(old->status));
        incarnation = assigned_incarnation(old, info.incarnation, now_wall_ms);
    } else {
        /* A joiner from before leader-assigned incarnations dictates its
         * own (wire compatibility), within bounds: never above the
         * leader's clock by more than AETHER_INCARNATION_AHEAD_MAX_MS (a
         * start time cannot be; 2^63-1 would keep the id out for good),
         * and never over a process that presents a nonce (only a process
         * the leader can tell apart may supersede one). */
        if (now_wall_ms > 0 && info.incarnation > now_wall_ms + AETHER_INCARNATION_AHEAD_MAX_MS)
            return aether_err_set(reason, AETHER_EINVAL,
                                  "%s incarnation %llu is ahead of the leader's clock (%llu ms) by "
                                  "more than %llu ms",
                                  info.id.str, (unsigned long long)info.incarnation,
                                  (unsigned long long)now_wall_ms,
                                  (unsigned long long)AETHER_INCARNATION_AHEAD_MAX_MS);
        incarnation = info.incarnation > 0 ? info.incarnation : 1;
        if (old != NULL) {
            bool same = strcmp(old->address, info.address) == 0 && strcmp(old->zone, info.zone) == 0;
            /* A member's keep-alive names its current incarnation (0: a caller
             * that does not track incarnations); the reply is the
             * acknowledgement its serving right rests on, so it is given only
             * to the incarnation the topology knows as healthy. */
            if (established && same)
                return AETHER_OK; /* already a member: idempotent retry */
            /* A newer process of this id holds the healthy record: the asker
             * is an older one (DESIGN 2.4: the newest process wins). */
            if (healthy && info.incarnation != 0 && info.incarnation < old->incarnation)
                return aether_err_set(reason, AETHER_ESUPERSEDED,
                                      "%s incarnation %llu is superseded by incarnation %llu (a newer "
                                      "process of this node id)",
                                      info.id.str, (unsigned long long)info.incarnation,
                                      (unsigned long long)old->incarnation);
            if (info.incarnation != 0 && info.incarnation <= old->incarnation)
                return aether_err_set(reason, AETHER_ESTALE,
                                      "%s incarnation %llu is not current (%llu is %s): rejoin with "
                                      "a newer one",
                                      info.id.str, (unsigned long long)info.incarnation,
                                      (unsigned long long)old->incarnation,
                                      aether_node_status_name(old->status));
            if (healthy && old->nonce != 0)
                return aether_err_set(reason, AETHER_EINVAL,
                                      "%s: a join without a process nonce cannot supersede "
                                      "incarnation %llu (a process that presents one)",
                                      info.id.str, (unsigned long long)old->incarnation);
            if (incarnation <= old->incarnation)
                incarnation = old->incarnation + 1;
        }
    }
    if (old == NULL && t->count >= AETHER_TOPOLOGY_NODES_MAX)
        return aether_err_set(reason, AETHER_ESTATE, "cluster already has %u nodes",
                              AETHER_TOPOLOGY_NODES_MAX);
    aether_event *e = new_event(AETHER_EVT_NODE_JOINED, events, n);
    if (e == NULL)
        return aether_err_set(reason, AETHER_ENOMEM, "out of memory");
    e->data.node_joined.node = info.id;
    memcpy(e->data.node_joined.address, info.address, sizeof(info.address));
    memcpy(e->data.node_joined.zone, info.zone, sizeof(info.zone));
    e->data.node_joined.incarnation = incarnation;
    e->data.node_joined.nonce = info.nonce;
    e->ts_ms = now_wall_ms;
    return AETHER_OK;
}

static aether_status decide_leave(const aether_topology *t, const aether_command *cmd,
                                  aether_event **events, uint32_t *n, aether_err *reason)
{
    const aether_node_id *id = &cmd->data.leave.node;
    const aether_node_info *old = aether_topology_find(t, id);
    if (old == NULL)
        return aether_err_set(reason, AETHER_ENOTFOUND, "%s unknown", id->str);
    switch (old->status) {
    case AETHER_NODE_ACTIVE: {
        /* The last Active node has nobody to hand its shards to, nor to
         * lead once it would step down (policy 9): its drain could never
         * complete, only leave the cluster with a leader that may not
         * campaign and shards nobody takes. Without a cluster secret anyone
         * may send this command (docs/runbook.md, "The cluster secret"). */
        uint32_t others = 0;
        for (uint32_t i = 0; i < t->count; i++)
            others += t->nodes[i].status == AETHER_NODE_ACTIVE && !aether_node_id_equal(&t->nodes[i].id, id);
        if (others == 0)
            return aether_err_set(reason, AETHER_ESTATE,
                                  "%s is the last Active node: nobody could take its shards", id->str);
        aether_event *e = new_event(AETHER_EVT_NODE_DRAINING, events, n);
        if (e == NULL)
            return aether_err_set(reason, AETHER_ENOMEM, "out of memory");
        e->data.node_draining.node = *id;
        return AETHER_OK;
    }
    case AETHER_NODE_DRAINING:
        return AETHER_OK; /* already leaving */
    case AETHER_NODE_LEFT:
        return aether_err_set(reason, AETHER_ESTATE, "%s already left", id->str);
    default:
        return aether_err_set(reason, AETHER_ESTATE, "%s is %s", id->str,
                              aether_node_status_name(old->status));
    }
}

static aether_status decide_failed(const aether_topology *t, const aether_command *cmd,
                                   aether_event **events, uint32_t *n, aether_err *reason)
{
    const aether_node_id *id = &cmd->data.mark_failed.node;
    const aether_node_info *old = aether_topology_find(t, id);
    if (old == NULL)
        return aether_err_set(reason, AETHER_ENOTFOUND, "%s unknown", id->str);
    /* A request that names the incarnation its asker saw is about that
     * process only: a retry that arrives after the node rejoined (a new
     * incarnation) must not fail the new one. */
    uint64_t seen = cmd->data.mark_failed.incarnation;
    if (seen != 0 && seen != old->incarnation)
        return aether_err_set(reason, AETHER_ESTALE,
                              "%s is at incarnation %llu (%s), not %llu as asked: it rejoined since; "
                              "not failed",
                              id->str, (unsigned long long)old->incarnation,
                              aether_node_status_name(old->status), (unsigned long long)seen);
    if (old->status == AETHER_NODE_FAILED)
        return AETHER_OK; /* idempotent */
    if (!aether_node_status_is_healthy(old->status))
        return aether_err_set(reason, AETHER_ESTATE, "%s is %s", id->str,
                              aether_node_status_name(old->status));
    aether_event *e = new_event(AETHER_EVT_NODE_FAILED, events, n);
    if (e == NULL)
        return aether_err_set(reason, AETHER_ENOMEM, "out of memory");
    e->data.node_failed.node = *id;
    e->data.node_failed.silent_ms = cmd->data.mark_failed.silent_ms;
    return AETHER_OK;
}

aether_status aether_topology_decide(const aether_topology *t, const aether_command *cmd,
                                     uint64_t now_wall_ms, aether_event **events,
                                     uint32_t *n_events, aether_err *reason)
{
    *n_events = 0;
    if (cmd->type != AETHER_CMD_JOIN_CLUSTER && cmd->type != AETHER_CMD_LEAVE_CLUSTER &&
        cmd->type != AETHER_CMD_MARK_NODE_FAILED)
        return aether_err_set(reason, AETHER_EINVAL, "%s is not a Cluster command",
                              aether_command_type_name(cmd->type));
    if (cmd->term != AETHER_TERM_NONE && cmd->term < t->term)
        return aether_err_set(reason, AETHER_ESTALE, "term %llu is older than %llu",
                              (unsigned long long)cmd->term, (unsigned long long)t->term);
    if (!aether_topology_is_leader(t)) {
        if (t->leader.len == 0)
            return aether_err_set(reason, AETHER_ENOTLEADER, "not leader; no leader known (term %llu)",
                                  (unsigned long long)t->term);
        return aether_err_set(reason, AETHER_ENOTLEADER, "not leader; leader is %s, term %llu",
                              t->leader.str, (unsigned long long)t->term);
    }
    aether_status st;
    switch (cmd->type) {
    case AETHER_CMD_JOIN_CLUSTER:
        st = decide_join(t, cmd, now_wall_ms, events, n_events, reason);
        break;
    case AETHER_CMD_LEAVE_CLUSTER:
        st = decide_leave(t, cmd, events, n_events, reason);
        break;
    default:
        st = decide_failed(t, cmd, events, n_events, reason);
        break;
    }
    if (st != AETHER_OK) {
        for (uint32_t i = 0; i < *n_events; i++)
            aether_event_release(events[i]);
        *n_events = 0;
    }
    return st;
}

static bool insert(aether_topology *t, uint32_t at, const aether_node_info *info)
{
    if (t->count == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 8;
        aether_node_info *v = realloc(t->nodes, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return false;
        t->nodes = v;
        t->cap = cap;
    }
    memmove(&t->nodes[at + 1], &t->nodes[at], (size_t)(t->count - at) * sizeof(*t->nodes));
    t->nodes[at] = *info;
    t->count++;
    return true;
}

static bool ignore(aether_topology *t, const aether_event *e, const char *why)
{
    t->ignored_events++;
    AETHER_WARN("topology", "ignoring %s term %llu seq %llu: %s", aether_event_type_name(e->type),
                (unsigned long long)e->term, (unsigned long long)e->seq, why);
    return false;
}

static bool set_status(aether_topology *t, const aether_event *e, const aether_node_id *id,
                       aether_node_status to)
{
    bool found;
    uint32_t i = lower_bound(t, id, &found);
    if (!found)
        return ignore(t, e, "unknown node");
    aether_node_info *n = &t->nodes[i];
    if (n->status == to)
        return false;
    if (!aether_node_status_transition_is_valid(n->status, to))
        return ignore(t, e, "transition not allowed");
    n->status = to;
    t->version++;
    return true;
}

bool aether_topology_apply(aether_topology *t, const aether_event *e)
{
    switch (e->type) {
    case AETHER_EVT_NODE_JOINED: {
        const typeof(e->data.node_joined) *d = &e->data.node_joined;
        aether_node_info info;
        aether_err err;
        if (aether_node_info_make(&info, d->node.str, d->address, d->zone, AETHER_NODE_ACTIVE,
                                  d->incarnation, e->ts_ms, &err) != AETHER_OK)
            return ignore(t, e, err.msg);
        info.nonce = d->nonce;
        bool found;
        uint32_t i = lower_bound(t, &d->node, &found);
        if (found) {
            const aether_node_info *old = &t->nodes[i];
            if (d->incarnation < old->incarnation)
                return ignore(t, e, "older incarnation");
            if (d->incarnation == old->incarnation && old->status == AETHER_NODE_ACTIVE &&
                old->nonce == info.nonce &&
                strcmp(old->address, info.address) == 0 && strcmp(old->zone, info.zone) == 0)
                return false; /* seen already (a replay after a snapshot): no change */
            t->nodes[i] = info;
        } else if (t->count >= AETHER_TOPOLOGY_NODES_MAX || !insert(t, i, &info)) {
            return ignore(t, e, "no room for the node");
        }
        t->version++;
        return true;
    }
    case AETHER_EVT_NODE_DRAINING:
        return set_status(t, e, &e->data.node_draining.node, AETHER_NODE_DRAINING);
    case AETHER_EVT_NODE_LEFT:
        return set_status(t, e, &e->data.node_left.node, AETHER_NODE_LEFT);
    case AETHER_EVT_NODE_FAILED:
        return set_status(t, e, &e->data.node_failed.node, AETHER_NODE_FAILED);
    default:
        return false;
    }
}
