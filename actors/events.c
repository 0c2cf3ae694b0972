/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.c: event and command names, event allocation and formatting
 * (actors layer). See events.h.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[AETHER_EVT_COUNT_] = {
    [AETHER_EVT_NODE_JOINED] = "NodeJoined",
    [AETHER_EVT_NODE_DRAINING] = "NodeDraining",
    [AETHER_EVT_NODE_LEFT] = "NodeLeft",
    [AETHER_EVT_NODE_FAILED] = "NodeFailed",
    [AETHER_EVT_LEADER_ELECTED] = "LeaderElected",
    [AETHER_EVT_LEASE_RENEWED] = "LeaseRenewed",
    [AETHER_EVT_LEADERSHIP_LOST] = "LeadershipLost",
    [AETHER_EVT_SHARD_ASSIGNED] = "ShardAssigned",
    [AETHER_EVT_SHARD_MIGRATED] = "ShardMigrated",
    [AETHER_EVT_REBALANCE_STARTED] = "RebalanceStarted",
    [AETHER_EVT_REBALANCE_COMPLETED] = "RebalanceCompleted",
};

static const char *const command_names[AETHER_CMD_COUNT_] = {
    [AETHER_CMD_JOIN_CLUSTER] = "JoinCluster",
    [AETHER_CMD_LEAVE_CLUSTER] = "LeaveCluster",
    [AETHER_CMD_MARK_NODE_FAILED] = "MarkNodeFailed",
    [AETHER_CMD_ELECT_LEADER] = "ElectLeader",
    [AETHER_CMD_ASSIGN_SHARDS] = "AssignShards",
    [AETHER_CMD_REBALANCE_SHARDS] = "RebalanceShards",
};

AETHER_STATIC_ASSERT(AETHER_EVT_COUNT_ == 12, "eleven events (DESIGN 2), numbered from 1");
AETHER_STATIC_ASSERT(AETHER_CMD_COUNT_ == 7, "six commands (DESIGN 2), numbered from 1");
AETHER_STATIC_ASSERT(AETHER_EVT_COUNT_ <= 64, "every event type is a bus topic");

const char *aether_event_type_name(aether_event_type t)
{
    if (t <= 0 || t >= AETHER_EVT_COUNT_)
        return "?";
    return event_names[t];
}

const char *aether_command_type_name(aether_command_type t)
{
    if (t <= 0 || t >= AETHER_CMD_COUNT_)
        return "?";
    return command_names[t];
}

aether_status aether_event_type_parse(const char *name, aether_event_type *out, aether_err *err)
{
    for (int t = 1; t < AETHER_EVT_COUNT_; t++) {
        if (name != NULL && strcmp(name, event_names[t]) == 0) {
            *out = (aether_event_type)t;
            return AETHER_OK;
        }
    }
    return aether_err_set(err, AETHER_EINVAL, "unknown event type '%.64s'", name ? name : "(null)");
}

aether_status aether_command_type_parse(const char *name, aether_command_type *out,
                                        aether_err *err)
{
    for (int t = 1; t < AETHER_CMD_COUNT_; t++) {
        if (name != NULL && strcmp(name, command_names[t]) == 0) {
            *out = (aether_command_type)t;
            return AETHER_OK;
        }
    }
    return aether_err_set(err, AETHER_EINVAL, "unknown command type '%.64s'",
                          name ? name : "(null)");
}

static void event_free(aether_ref *ref)
{
    aether_event *e = (aether_event *)ref;
    free(e->nodes);
    free(e);
}

aether_event *aether_event_create(aether_event_type type)
{
    AETHER_ASSERT(type > 0 && type < AETHER_EVT_COUNT_);
    aether_event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    aether_ref_init(&e->ref, event_free);
    e->type = type;
    return e;
}

/* The entries follow the event in one allocation (aligned for either kind). */
AETHER_STATIC_ASSERT(sizeof(aether_event) % _Alignof(aether_shard_owners) == 0 &&
                         sizeof(aether_event) % _Alignof(aether_shard_move) == 0,
                     "entries follow the event aligned");

aether_event *aether_event_create_batch(aether_event_type type, uint32_t count)
{
    AETHER_ASSERT(type == AETHER_EVT_SHARD_ASSIGNED || type == AETHER_EVT_SHARD_MIGRATED);
    AETHER_ASSERT(count >= 1 && count <= AETHER_EVENT_BATCH_MAX);
    size_t entry = type == AETHER_EVT_SHARD_ASSIGNED ? sizeof(aether_shard_owners)
                                                     : sizeof(aether_shard_move);
    aether_event *e = calloc(1, sizeof(*e) + (size_t)count * entry);
    if (e == NULL)
        return NULL;
    aether_ref_init(&e->ref, event_free);
    e->type = type;
    if (type == AETHER_EVT_SHARD_ASSIGNED) {
        e->data.shard_assigned.count = count;
        e->data.shard_assigned.shards = (aether_shard_owners *)(void *)(e + 1);
    } else {
        e->data.shard_migrated.count = count;
        e->data.shard_migrated.moves = (aether_shard_move *)(void *)(e + 1);
    }
    return e;
}

uint32_t aether_event_entry_count(const aether_event *e)
{
    if (e->type == AETHER_EVT_SHARD_ASSIGNED)
        return e->data.shard_assigned.count;
    if (e->type == AETHER_EVT_SHARD_MIGRATED)
        return e->data.shard_migrated.count;
    return 1;
}

/* Twice the most distinct ids a batch can name: the probe always ends. */
#define NODES_IX_SLOTS 16384u
AETHER_STATIC_ASSERT(NODES_IX_SLOTS >= 2 * AETHER_EVENT_BATCH_NODES_MAX &&
                         (NODES_IX_SLOTS & (NODES_IX_SLOTS - 1)) == 0,
                     "a power of two, at most half full");

aether_status aether_event_nodes_ix_init(aether_event_nodes_ix *ix, aether_event *e)
{
    AETHER_ASSERT(e != NULL && e->nodes == NULL && e->node_count == 0);
    memset(ix, 0, sizeof(*ix));
    ix->e = e;
    ix->slots = calloc(NODES_IX_SLOTS, sizeof(*ix->slots));
    if (ix->slots == NULL)
        return AETHER_ENOMEM;
    ix->mask = NODES_IX_SLOTS - 1;
    return AETHER_OK;
}

void aether_event_nodes_ix_fini(aether_event_nodes_ix *ix)
{
    if (ix == NULL)
        return;
    free(ix->slots);
    memset(ix, 0, sizeof(*ix));
}

static uint32_t id_hash(const aether_node_id *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < id->len; i++) /* bounded: AETHER_NODE_ID_LEN_MAX */
        h = (h ^ (uint8_t)id->str[i]) * 16777619u;
    return h;
}

aether_status aether_event_nodes_ix_add(aether_event_nodes_ix *ix, const aether_node_id *id,
                                        uint16_t *index)
{
    AETHER_ASSERT(ix->slots != NULL && aether_node_id_is_valid(id));
    aether_event *e = ix->e;
    uint32_t i = id_hash(id) & ix->mask;
    for (uint32_t probes = 0; probes <= ix->mask; probes++, i = (i + 1) & ix->mask) {
        uint16_t s = ix->slots[i];
        if (s == 0)
            break;
        if (aether_node_id_equal(&e->nodes[s - 1u], id)) {
            *index = (uint16_t)(s - 1u);
            return AETHER_OK;
        }
    }
    AETHER_ASSERT(ix->slots[i] == 0); /* at most half full: an empty slot ends the probe */
    if (e->node_count >= AETHER_EVENT_BATCH_NODES_MAX)
        return AETHER_EFULL;
    if (e->node_count == ix->cap) {
        uint32_t cap = ix->cap ? ix->cap * 2 : 8;
        if (cap > AETHER_EVENT_BATCH_NODES_MAX)
            cap = AETHER_EVENT_BATCH_NODES_MAX;
        aether_node_id *n = realloc(e->nodes, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return AETHER_ENOMEM;
        e->nodes = n;
        ix->cap = cap;
    }
    e->nodes[e->node_count] = *id;
    *index = (uint16_t)e->node_count;
    ix->slots[i] = (uint16_t)(e->node_count + 1u);
    e->node_count++;
    return AETHER_OK;
}

void aether_event_set_reason(char dst[AETHER_REASON_MAX + 1], const char *s)
{
    snprintf(dst, AETHER_REASON_MAX + 1, "%s", s != NULL ? s : "");
}

int aether_event_format(const aether_event *e, char *buf, size_t cap)
{
    char data[512];
    switch (e->type) {
    case AETHER_EVT_NODE_JOINED:
        snprintf(data, sizeof(data), "node=%s address=%s zone=%s incarnation=%llu",
                 e->data.node_joined.node.str, e->data.node_joined.address,
                 e->data.node_joined.zone[0] ? e->data.node_joined.zone : "-",
                 (unsigned long long)e->data.node_joined.incarnation);
        break;
    case AETHER_EVT_NODE_DRAINING:
        snprintf(data, sizeof(data), "node=%s", e->data.node_draining.node.str);
        break;
    case AETHER_EVT_NODE_LEFT:
        snprintf(data, sizeof(data), "node=%s", e->data.node_left.node.str);
        break;
    case AETHER_EVT_NODE_FAILED:
        snprintf(data, sizeof(data), "node=%s silent_ms=%llu", e->data.node_failed.node.str,
                 (unsigned long long)e->data.node_failed.silent_ms);
        break;
    case AETHER_EVT_LEADER_ELECTED:
        snprintf(data, sizeof(data), "leader=%s term=%llu ttl_ms=%llu",
                 e->data.leader_elected.leader.str,
                 (unsigned long long)e->data.leader_elected.term,
                 (unsigned long long)e->data.leader_elected.ttl_ms);
        break;
    case AETHER_EVT_LEASE_RENEWED:
        snprintf(data, sizeof(data), "leader=%s term=%llu map_version=%llu topology_version=%llu",
                 e->data.lease_renewed.leader.str, (unsigned long long)e->data.lease_renewed.term,
                 (unsigned long long)e->data.lease_renewed.map_version,
                 (unsigned long long)e->data.lease_renewed.topology_version);
        break;
    case AETHER_EVT_LEADERSHIP_LOST:
        snprintf(data, sizeof(data), "leader=%s term=%llu reason=%s",
                 e->data.leadership_lost.leader.str,
                 (unsigned long long)e->data.leadership_lost.term,
                 e->data.leadership_lost.reason);
        break;
    case AETHER_EVT_SHARD_ASSIGNED: {
        /* The count, then as many entries as fit ("... " when cut). */
        const uint32_t count = e->data.shard_assigned.count;
        int n = snprintf(data, sizeof(data), "map_version=%llu shards=%u [",
                         (unsigned long long)e->data.shard_assigned.map_version, count);
        for (uint32_t i = 0; i < count && n > 0 && (size_t)n + 80 < sizeof(data); i++) {
            const aether_shard_owners *so = &e->data.shard_assigned.shards[i];
            n += snprintf(data + n, sizeof(data) - (size_t)n, "%s%u:", i ? " " : "", so->shard);
            for (uint32_t j = 0; j < so->owner_count && (size_t)n + 80 < sizeof(data); j++)
                n += snprintf(data + n, sizeof(data) - (size_t)n, "%s%s", j ? "," : "",
                              aether_event_node(e, so->owners[j])->str);
            if (i + 1 < count && (size_t)n + 80 >= sizeof(data))
                n += snprintf(data + n, sizeof(data) - (size_t)n, " ...");
        }
        if (n > 0 && (size_t)n < sizeof(data))
            snprintf(data + n, sizeof(data) - (size_t)n, "]");
        break;
    }
    case AETHER_EVT_SHARD_MIGRATED: {
        const uint32_t count = e->data.shard_migrated.count;
        int n = snprintf(data, sizeof(data), "map_version=%llu reason=%s moves=%u [",
                         (unsigned long long)e->data.shard_migrated.map_version,
                         e->data.shard_migrated.reason, count);
        for (uint32_t i = 0; i < count && n > 0 && (size_t)n + 150 < sizeof(data); i++) {
            const aether_shard_move *mv = &e->data.shard_migrated.moves[i];
            n += snprintf(data + n, sizeof(data) - (size_t)n, "%s%u:%s>%s", i ? " " : "",
                          mv->shard, aether_event_node(e, mv->from)->str,
                          aether_event_node(e, mv->to)->str);
            if (i + 1 < count && (size_t)n + 150 >= sizeof(data))
                n += snprintf(data + n, sizeof(data) - (size_t)n, " ...");
        }
        if (n > 0 && (size_t)n < sizeof(data))
            snprintf(data + n, sizeof(data) - (size_t)n, "]");
        break;
    }
    case AETHER_EVT_REBALANCE_STARTED:
        snprintf(data, sizeof(data), "reason=%s from_version=%llu moves_planned=%u",
                 e->data.rebalance_started.reason,
                 (unsigned long long)e->data.rebalance_started.from_version,
                 e->data.rebalance_started.moves_planned);
        break;
    case AETHER_EVT_REBALANCE_COMPLETED:
        snprintf(data, sizeof(data), "map_version=%llu moved=%u duration_ms=%llu",
                 (unsigned long long)e->data.rebalance_completed.map_version,
                 e->data.rebalance_completed.moved,
                 (unsigned long long)e->data.rebalance_completed.duration_ms);
        break;
    default:
        snprintf(data, sizeof(data), "?");
        break;
    }
    return snprintf(buf, cap, "%s term=%llu seq=%llu node=%s %s", aether_event_type_name(e->type),
                    (unsigned long long)e->term, (unsigned long long)e->seq,
                    e->node.len ? e->node.str : "-", data);
}

aether_status aether_cluster_name_validate(const char *name, aether_err *err)
{
    aether_node_id tmp;
    aether_err inner;
    if (name == NULL)
        return aether_err_set(err, AETHER_EINVAL, "cluster name missing");
    if (aether_node_id_parse_as("cluster name", name, strnlen(name, AETHER_NODE_ID_LEN_MAX + 1),
                                &tmp, &inner) != AETHER_OK)
        return aether_err_set(err, AETHER_EINVAL, "%s", inner.msg);
    return AETHER_OK;
}

aether_status aether_admission_check(const aether_admission *cluster,
                                     const aether_admission *joiner, aether_err *why)
{
    AETHER_ASSERT(cluster != NULL && joiner != NULL);
    AETHER_ASSERT(cluster->shard_count > 0 && cluster->wire_min <= AETHER_WIRE_VERSION &&
                  AETHER_WIRE_VERSION <= cluster->wire_max);
    /* EINVAL, not EINCOMPATIBLE: the sender predates that status too and
     * would not decode it in the reply. */
    if (joiner->shard_count == 0)
        return aether_err_set(why, AETHER_EINVAL,
                              "the join names no shard_count, replication, wire versions or "
                              "parameters: the node predates admission checks; upgrade it");
    /* The cluster speaks the leader's version: the joiner must understand it. */
    if (joiner->wire_max <= AETHER_WIRE_VERSION_MAP_FORMAT_1)
        return aether_err_set(why, AETHER_EINCOMPATIBLE,
                              "wire versions %u..%u do not include the cluster's %u: the node "
                              "reads map format 1 only, this cluster stores and publishes map "
                              "format 2; upgrade it (docs/wire.md, \"Upgrade order\")",
                              joiner->wire_min, joiner->wire_max, AETHER_WIRE_VERSION);
    if (joiner->wire_min > AETHER_WIRE_VERSION || joiner->wire_max < AETHER_WIRE_VERSION)
        return aether_err_set(why, AETHER_EINCOMPATIBLE,
                              "wire versions %u..%u do not include the cluster's %u",
                              joiner->wire_min, joiner->wire_max, AETHER_WIRE_VERSION);
    if (joiner->shard_count != cluster->shard_count)
        return aether_err_set(why, AETHER_EINCOMPATIBLE, "shard_count %u differs from the cluster's %u",
                              joiner->shard_count, cluster->shard_count);
    if (joiner->replication != cluster->replication)
        return aether_err_set(why, AETHER_EINCOMPATIBLE, "replication %u differs from the cluster's %u",
                              joiner->replication, cluster->replication);
    if (joiner->params != cluster->params)
        return aether_err_set(why, AETHER_EINCOMPATIBLE,
                              "parameters fingerprint %016llx differs from the cluster's %016llx "
                              "(lease_ttl_ms, failure_timeout_ms, fence_margin_ms, "
                              "handoff_timeout_ms must be equal on every node)",
                              (unsigned long long)joiner->params, (unsigned long long)cluster->params);
    return AETHER_OK;
}

bool aether_event_equal(const aether_event *pa, const aether_event *pb)
{
    aether_event ea = *pa, eb = *pb;
    ea.ref = eb.ref;
    ea.nodes = eb.nodes = NULL;
    const void *xa = NULL, *xb = NULL;
    size_t xlen = 0;
    if (ea.type == AETHER_EVT_SHARD_ASSIGNED) {
        xa = ea.data.shard_assigned.shards;
        xb = eb.data.shard_assigned.shards;
        xlen = ea.data.shard_assigned.count * sizeof(aether_shard_owners);
        ea.data.shard_assigned.shards = eb.data.shard_assigned.shards = NULL;
    } else if (ea.type == AETHER_EVT_SHARD_MIGRATED) {
        xa = ea.data.shard_migrated.moves;
        xb = eb.data.shard_migrated.moves;
        xlen = ea.data.shard_migrated.count * sizeof(aether_shard_move);
        ea.data.shard_migrated.moves = eb.data.shard_migrated.moves = NULL;
    }
    return memcmp(&ea, &eb, sizeof(ea)) == 0 && (xlen == 0 || memcmp(xa, xb, xlen) == 0) &&
           (ea.node_count == 0 ||
            memcmp(pa->nodes, pb->nodes, ea.node_count * sizeof(aether_node_id)) == 0);
}
