/* SPDX-License-Identifier: Apache-2.0 */
/*
 * codec.c: the versioned JSON wire envelope, encoded and decoded with
 * jansson (transport layer). Pure functions, any thread; the shape, the
 * decoding order and the error classes are in codec.h.
 *
 * Every message type except Reply is described by one table row: its wire
 * name and the ordered list of its data fields, each with a kind (u64, u32,
 * shard, node id, reason, address, zone, owners) and the offset of the C
 * member that holds it. Encoding and decoding both walk the same row and
 * both call the same check_* function per field, so the canonical key order
 * and the validity rules cannot drift apart between the two directions:
 * whatever encode emits, decode accepts, and decode stores exactly what
 * encode reads back.
 */
#include "codec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "assertion.h"
#include "json_util.h"
#include "keyhash.h"
#include "shardmap.h"

#define CODEC_MODULE "codec"
/* jansson integers are json_int_t (long long): the wire range of u64 fields. */
#define CODEC_U64_MAX ((uint64_t)INT64_MAX)
/* Bytes of untrusted text (unknown keys, type names, jansson's excerpt)
 * quoted in an error. */
#define CODEC_QUOTE_MAX 48
/* At most one WARN line per window per aether_codec_stats. */
#define CODEC_LOG_WINDOW_NS AETHER_NS_PER_S

AETHER_STATIC_ASSERT(sizeof(json_int_t) == sizeof(int64_t), "jansson integers are 64-bit");
AETHER_STATIC_ASSERT(AETHER_SHARD_COUNT_MAX <= UINT32_MAX, "shard ids fit in u32");
AETHER_STATIC_ASSERT(AETHER_REPLICATION_MAX <= 16, "owners are checked pairwise");
AETHER_STATIC_ASSERT(AETHER_SHARD_COUNT_MAX % 64 == 0, "shard_seen has one bit per shard");
AETHER_STATIC_ASSERT(AETHER_CODEC_REPLY_REASON_MAX < AETHER_ERR_MSG_MAX + 64,
                     "a reply reason is a short human sentence");

/* ---- field tables -------------------------------------------------------- */

typedef enum field_kind {
    F_U64,     /* uint64_t, 0..2^63-1 */
    F_U32,     /* uint32_t, 0..2^32-1 */
    F_SHARD,   /* uint32_t, below the shard limit */
    F_NODE,    /* aether_node_id */
    F_REASON,  /* char[AETHER_REASON_MAX + 1], no control bytes */
    F_ADDRESS, /* char[AETHER_NODE_ADDRESS_LEN_MAX + 1], 1.. bytes, no control bytes */
    F_ZONE,    /* char[AETHER_NODE_ZONE_LEN_MAX + 1], "" or the NodeId alphabet */
    F_SHARD_COUNT, /* uint32_t, 1..AETHER_SHARD_COUNT_MAX */
    F_REPLICATION, /* uint32_t, 1..AETHER_REPLICATION_MAX */
    F_WIRE,    /* uint32_t, a wire version 1..AETHER_WIRE_VERSION_LIMIT */
    F_HEX64,   /* uint64_t, on the wire 16 lowercase hex digits (any 64-bit value) */
    F_U64_OPT, /* uint64_t, 0..2^63-1; optional: sent only when not 0, absent = 0 (a
                  sender that predates it sends the same message as before) */
    F_FLAG,    /* bool; optional: sent only when true, absent = false (a sender that
                  predates it sends the same message as before) */
    F_ASSIGNMENTS, /* ShardAssigned's entries: [{shard,owners}], 1..AETHER_EVENT_BATCH_MAX,
                      shards distinct (the event's shards, count, nodes) */
    F_MOVES,   /* ShardMigrated's entries: [{shard,from,to}], likewise */
} field_kind;

typedef struct field_spec {
    const char *key;
    field_kind kind;
    size_t off; /* of the member, from the base of the decoded value */
    size_t aux; /* unused (0) */
} field_spec;

typedef struct type_spec {
    const char *name;       /* wire "type" */
    aether_codec_kind kind;
    int sub;                /* aether_event_type / aether_command_type; 0 otherwise */
    const field_spec *fields;
    size_t n_fields;
    /* Fields [group_from, n_fields) are one all-or-none group (0 = none):
     * absent together when the first of them is 0 (encode), and decoded as
     * zeros when none is there. JoinCluster's admission terms: a node that
     * predates them sends none (codec.h). */
    size_t group_from;
} type_spec;

#define EV(member) offsetof(aether_event, data.member)
#define CMD(member) offsetof(aether_command, data.member)
#define REL(member) offsetof(aether_release_ack, member)
#define HB(member) offsetof(aether_codec_heartbeat, member)
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const field_spec f_node_joined[] = {
    {"node", F_NODE, EV(node_joined.node), 0},
    {"address", F_ADDRESS, EV(node_joined.address), 0},
    {"zone", F_ZONE, EV(node_joined.zone), 0},
    {"incarnation", F_U64, EV(node_joined.incarnation), 0},
    {"map_version", F_U64, EV(node_joined.map_version), 0},
    {"nonce", F_U64_OPT, EV(node_joined.nonce), 0},
};
static const field_spec f_node_draining[] = {{"node", F_NODE, EV(node_draining.node), 0}};
static const field_spec f_node_left[] = {{"node", F_NODE, EV(node_left.node), 0}};
static const field_spec f_node_failed[] = {
    {"node", F_NODE, EV(node_failed.node), 0},
    {"silent_ms", F_U64, EV(node_failed.silent_ms), 0},
};
static const field_spec f_leader_elected[] = {
    {"leader", F_NODE, EV(leader_elected.leader), 0},
    {"term", F_U64, EV(leader_elected.term), 0},
    {"ttl_ms", F_U64, EV(leader_elected.ttl_ms), 0},
};
static const field_spec f_lease_renewed[] = {
    {"leader", F_NODE, EV(lease_renewed.leader), 0},
    {"term", F_U64, EV(lease_renewed.term), 0},
    {"map_version", F_U64, EV(lease_renewed.map_version), 0},
    {"topology_version", F_U64, EV(lease_renewed.topology_version), 0},
};
static const field_spec f_leadership_lost[] = {
    {"leader", F_NODE, EV(leadership_lost.leader), 0},
    {"term", F_U64, EV(leadership_lost.term), 0},
    {"reason", F_REASON, EV(leadership_lost.reason), 0},
};
static const field_spec f_shard_assigned[] = {
    {"map_version", F_U64, EV(shard_assigned.map_version), 0},
    {"shards", F_ASSIGNMENTS, 0, 0},
};
static const field_spec f_shard_migrated[] = {
    {"map_version", F_U64, EV(shard_migrated.map_version), 0},
    {"reason", F_REASON, EV(shard_migrated.reason), 0},
    {"moves", F_MOVES, 0, 0},
};
static const field_spec f_rebalance_started[] = {
    {"reason", F_REASON, EV(rebalance_started.reason), 0},
    {"from_version", F_U64, EV(rebalance_started.from_version), 0},
    {"moves_planned", F_U32, EV(rebalance_started.moves_planned), 0},
};
static const field_spec f_rebalance_completed[] = {
    {"map_version", F_U64, EV(rebalance_completed.map_version), 0},
    {"moved", F_U32, EV(rebalance_completed.moved), 0},
    {"duration_ms", F_U64, EV(rebalance_completed.duration_ms), 0},
};

static const field_spec f_join[] = {
    {"node", F_NODE, CMD(join.info.id), 0},
    {"address", F_ADDRESS, CMD(join.info.address), 0},
    {"zone", F_ZONE, CMD(join.info.zone), 0},
    {"incarnation", F_U64, CMD(join.info.incarnation), 0},
    {"map_term", F_U64_OPT, CMD(join.map_term), 0},
    {"nonce", F_U64_OPT, CMD(join.info.nonce), 0},
    {"shard_count", F_SHARD_COUNT, CMD(join.terms.shard_count), 0},
    {"replication", F_REPLICATION, CMD(join.terms.replication), 0},
    {"wire_min", F_WIRE, CMD(join.terms.wire_min), 0},
    {"wire_max", F_WIRE, CMD(join.terms.wire_max), 0},
    {"params", F_HEX64, CMD(join.terms.params), 0},
};
#define JOIN_TERMS_FROM 6u
static const field_spec f_leave[] = {{"node", F_NODE, CMD(leave.node), 0}};
static const field_spec f_mark_failed[] = {
    {"node", F_NODE, CMD(mark_failed.node), 0},
    {"silent_ms", F_U64, CMD(mark_failed.silent_ms), 0},
    {"force", F_FLAG, CMD(mark_failed.force), 0},
    {"incarnation", F_U64_OPT, CMD(mark_failed.incarnation), 0},
};
static const field_spec f_elect[] = {{"candidate", F_NODE, CMD(elect.candidate), 0}};
static const field_spec f_rebalance[] = {
    {"reason", F_REASON, CMD(rebalance.reason), 0},
    {"release_brake", F_FLAG, CMD(rebalance.release_brake), 0},
};

static const field_spec f_release[] = {
    {"shard", F_SHARD, REL(shard), 0},
    {"from", F_NODE, REL(from), 0},
    {"map_version", F_U64, REL(map_version), 0},
    {"term", F_U64, REL(term), 0},
};
static const field_spec f_heartbeat[] = {
    {"node", F_NODE, HB(node), 0},
    {"incarnation", F_U64, HB(incarnation), 0},
};

#define ROW_EVT(name, sub, f) {name, AETHER_CODEC_EVENT, sub, f, N_OF(f), 0}
#define ROW_CMD(name, sub, f) {name, AETHER_CODEC_COMMAND, sub, f, N_OF(f), 0}

/* Indexed by nothing: looked up by name (decode) or by kind and sub (encode). */
static const type_spec types[] = {
    ROW_EVT("NodeJoined", AETHER_EVT_NODE_JOINED, f_node_joined),
    ROW_EVT("NodeDraining", AETHER_EVT_NODE_DRAINING, f_node_draining),
    ROW_EVT("NodeLeft", AETHER_EVT_NODE_LEFT, f_node_left),
    ROW_EVT("NodeFailed", AETHER_EVT_NODE_FAILED, f_node_failed),
    ROW_EVT("LeaderElected", AETHER_EVT_LEADER_ELECTED, f_leader_elected),
    ROW_EVT("LeaseRenewed", AETHER_EVT_LEASE_RENEWED, f_lease_renewed),
    ROW_EVT("LeadershipLost", AETHER_EVT_LEADERSHIP_LOST, f_leadership_lost),
    ROW_EVT("ShardAssigned", AETHER_EVT_SHARD_ASSIGNED, f_shard_assigned),
    ROW_EVT("ShardMigrated", AETHER_EVT_SHARD_MIGRATED, f_shard_migrated),
    ROW_EVT("RebalanceStarted", AETHER_EVT_REBALANCE_STARTED, f_rebalance_started),
    ROW_EVT("RebalanceCompleted", AETHER_EVT_REBALANCE_COMPLETED, f_rebalance_completed),
    {"JoinCluster", AETHER_CODEC_COMMAND, AETHER_CMD_JOIN_CLUSTER, f_join, N_OF(f_join),
     JOIN_TERMS_FROM},
    ROW_CMD("LeaveCluster", AETHER_CMD_LEAVE_CLUSTER, f_leave),
    ROW_CMD("MarkNodeFailed", AETHER_CMD_MARK_NODE_FAILED, f_mark_failed),
    ROW_CMD("ElectLeader", AETHER_CMD_ELECT_LEADER, f_elect),
    {"AssignShards", AETHER_CODEC_COMMAND, AETHER_CMD_ASSIGN_SHARDS, NULL, 0, 0},
    ROW_CMD("RebalanceShards", AETHER_CMD_REBALANCE_SHARDS, f_rebalance),
    {AETHER_CODEC_TYPE_RELEASE, AETHER_CODEC_RELEASE, 0, f_release, N_OF(f_release), 0},
    {AETHER_CODEC_TYPE_HEARTBEAT, AETHER_CODEC_HEARTBEAT, 0, f_heartbeat, N_OF(f_heartbeat), 0},
};

AETHER_STATIC_ASSERT(N_OF(types) == (AETHER_EVT_COUNT_ - 1) + (AETHER_CMD_COUNT_ - 1) + 2,
                     "one row per event, per command, ShardReleased and Heartbeat");

static const type_spec *spec_by_kind(aether_codec_kind kind, int sub)
{
    for (size_t i = 0; i < N_OF(types); i++)
        if (types[i].kind == kind && types[i].sub == sub)
            return &types[i];
    return NULL;
}

static const type_spec *spec_by_name(const char *name)
{
    for (size_t i = 0; i < N_OF(types); i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

/* Envelope keys, in canonical order. */
static const char *const envelope_keys[] = {"v", "type", "cluster", "gen", "term", "seq", "node",
                                            "ts", "data"};
static const char *const reply_keys[] = {"v", "type", "status", "reason"};

/* ---- messages and shared checks ------------------------------------------ */

const char *aether_codec_reject_name(aether_codec_reject r)
{
    static const char *const names[AETHER_CODEC_REJECT_COUNT_] = {
        [AETHER_CODEC_REJECT_MALFORMED] = "malformed",
        [AETHER_CODEC_REJECT_OVERSIZED] = "oversized",
        [AETHER_CODEC_REJECT_UNKNOWN_TYPE] = "unknown_type",
        [AETHER_CODEC_REJECT_BAD_FIELD] = "bad_field",
        [AETHER_CODEC_REJECT_STALE_TERM] = "stale_term",
        [AETHER_CODEC_REJECT_WRONG_CLUSTER] = "wrong_cluster",
        [AETHER_CODEC_REJECT_UNAUTHENTICATED] = "unauthenticated",
    };
    if ((unsigned)r >= AETHER_CODEC_REJECT_COUNT_)
        return "?";
    return names[r];
}

/* "data.key" or "key": where a field sits, for messages. */
static aether_status field_err(aether_err *err, bool in_data, const char *key, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));

static aether_status field_err(aether_err *err, bool in_data, const char *key, const char *fmt,
                               ...)
{
    char what[AETHER_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return aether_err_set(err, AETHER_EINVAL, "%s%s: %s", in_data ? "data." : "", key, what);
}

/* Copies untrusted text for a message: at most CODEC_QUOTE_MAX bytes,
 * bytes outside printable ASCII shown as '?', "..." when cut. */
static void quote_untrusted(char *dst, size_t cap, const char *s, size_t len)
{
    AETHER_ASSERT(cap > CODEC_QUOTE_MAX + 4);
    size_t n = len < CODEC_QUOTE_MAX ? len : CODEC_QUOTE_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n < len) {
        memcpy(dst + n, "...", 4);
    } else {
        dst[n] = '\0';
    }
}

static bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* A reason (event, command or reply): at most max bytes, no control bytes. */
static aether_status check_text(aether_err *err, bool in_data, const char *key, const char *s,
                                size_t len, size_t max)
{
    if (len > max)
        return field_err(err, in_data, key, "%zu bytes, longer than %zu", len, max);
    for (size_t i = 0; i < len; i++)
        if (is_control((unsigned char)s[i]))
            return field_err(err, in_data, key, "control byte 0x%02x at position %zu",
                             (unsigned char)s[i], i);
    return AETHER_OK;
}

static aether_status check_address(aether_err *err, const char *key, const char *s, size_t len)
{
    if (len == 0)
        return field_err(err, true, key, "empty");
    return check_text(err, true, key, s, len, AETHER_NODE_ADDRESS_LEN_MAX);
}

static aether_status check_zone(aether_err *err, const char *key, const char *s, size_t len)
{
    if (len > AETHER_NODE_ZONE_LEN_MAX)
        return field_err(err, true, key, "%zu characters, longer than %d", len,
                         AETHER_NODE_ZONE_LEN_MAX);
    for (size_t i = 0; i < len; i++)
        if (!aether_node_id_char_is_valid((unsigned char)s[i]))
            return field_err(err, true, key, "byte 0x%02x at position %zu, outside [A-Za-z0-9_.-]",
                             (unsigned char)s[i], i);
    return AETHER_OK;
}

static uint32_t shard_limit(const aether_codec_limits *lim)
{
    if (lim != NULL && lim->shard_count != 0 && lim->shard_count < AETHER_SHARD_COUNT_MAX)
        return lim->shard_count;
    return AETHER_SHARD_COUNT_MAX;
}

static aether_status check_u64(aether_err *err, bool in_data, const char *key, uint64_t v)
{
    if (v > CODEC_U64_MAX)
        return field_err(err, in_data, key, "%" PRIu64 " out of range 0..%" PRIu64, v,
                         CODEC_U64_MAX);
    return AETHER_OK;
}

static aether_status check_shard(aether_err *err, const char *key, uint64_t v, uint32_t limit)
{
    if (v >= limit)
        return field_err(err, true, key, "%" PRIu64 " out of range 0..%u", v, limit - 1);
    return AETHER_OK;
}

/* The bounds of a ranged u32 kind. */
static void range_of(field_kind kind, uint64_t *lo, uint64_t *hi)
{
    switch (kind) {
    case F_SHARD_COUNT:
        *lo = 1;
        *hi = AETHER_SHARD_COUNT_MAX;
        return;
    case F_REPLICATION:
        *lo = 1;
        *hi = AETHER_REPLICATION_MAX;
        return;
    case F_WIRE:
        *lo = 1;
        *hi = AETHER_WIRE_VERSION_LIMIT;
        return;
    default:
        AETHER_ASSERT(!"not a ranged field");
    }
}

static aether_status check_range(aether_err *err, const char *key, field_kind kind, uint64_t v)
{
    uint64_t lo, hi;
    range_of(kind, &lo, &hi);
    if (v < lo || v > hi)
        return field_err(err, true, key, "%" PRIu64 " out of range %" PRIu64 "..%" PRIu64, v, lo,
                         hi);
    return AETHER_OK;
}

/* 16 lowercase hex digits, exactly (canonical: one spelling per value). */
#define CODEC_HEX64_LEN 16u
static aether_status parse_hex64(aether_err *err, const char *key, const char *s, size_t len,
                                 uint64_t *out)
{
    if (len != CODEC_HEX64_LEN)
        return field_err(err, true, key, "expected %u lowercase hex digits, got %zu characters",
                         CODEC_HEX64_LEN, len);
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a') + 10u;
        else
            return field_err(err, true, key, "byte 0x%02x at position %zu is not a lowercase hex "
                             "digit", (unsigned char)c, i);
        v = (v << 4) | d;
    }
    *out = v;
    return AETHER_OK;
}

/* The optional group of ts (its first field a u32) is absent in base. */
static bool group_absent(const type_spec *ts, const char *base)
{
    if (ts->group_from == 0)
        return false;
    uint32_t v;
    memcpy(&v, base + ts->fields[ts->group_from].off, sizeof(v));
    return v == 0;
}

/* An absent group is all zeros: anything else would not survive the trip
 * (decode gives zeros), so encode refuses it. */
static aether_status check_group_zero(const type_spec *ts, const char *base, aether_err *err)
{
    for (size_t i = ts->group_from + 1; i < ts->n_fields; i++) {
        const field_spec *f = &ts->fields[i];
        uint64_t v = 0;
        if (f->kind == F_U64 || f->kind == F_HEX64) {
            memcpy(&v, base + f->off, sizeof(v));
        } else {
            uint32_t v32;
            memcpy(&v32, base + f->off, sizeof(v32));
            v = v32;
        }
        if (v != 0)
            return field_err(err, true, ts->fields[ts->group_from].key,
                             "0 (no terms) while %s is set", f->key);
    }
    return AETHER_OK;
}

/* Owners of one batch entry are distinct (at most AETHER_REPLICATION_MAX,
 * checked by the caller before the array is read). */
static aether_status check_owner_unique(aether_err *err, const char *key, uint32_t i,
                                        const aether_event *e, const uint16_t *owners, uint32_t j)
{
    for (uint32_t k = 0; k < j; k++)
        if (aether_node_id_equal(aether_event_node(e, owners[k]), aether_event_node(e, owners[j])))
            return aether_err_set(err, AETHER_EINVAL, "data.%s[%u].owners[%u]: duplicate owner %s",
                                  key, i, j, aether_event_node(e, owners[j])->str);
    return AETHER_OK;
}

/* Shards already named by a batch: one bit per possible shard. */
typedef struct shard_seen {
    uint64_t bits[AETHER_SHARD_COUNT_MAX / 64];
} shard_seen;

/* Shard of entry i of batch key: below limit, not named before. */
static aether_status check_batch_shard(aether_err *err, const char *key, uint32_t i, uint64_t v,
                                       uint32_t limit, shard_seen *seen)
{
    if (v >= limit)
        return aether_err_set(err, AETHER_EINVAL, "data.%s[%u].shard: %" PRIu64
                              " out of range 0..%u", key, i, v, limit - 1);
    uint64_t bit = UINT64_C(1) << (v % 64);
    if (seen->bits[v / 64] & bit)
        return aether_err_set(err, AETHER_EINVAL, "data.%s[%u].shard: shard %" PRIu64
                              " named twice in one event", key, i, v);
    seen->bits[v / 64] |= bit;
    return AETHER_OK;
}

/* The entry count of a batch: 1..AETHER_EVENT_BATCH_MAX. */
static aether_status check_batch_count(aether_err *err, const char *key, size_t n)
{
    if (n == 0)
        return field_err(err, true, key, "empty; a batch holds 1..%u entries",
                         AETHER_EVENT_BATCH_MAX);
    if (n > AETHER_EVENT_BATCH_MAX)
        return field_err(err, true, key, "%zu entries, more than %u", n, AETHER_EVENT_BATCH_MAX);
    return AETHER_OK;
}

static aether_status check_cluster(aether_err *err, const char *s, size_t len)
{
    aether_node_id tmp;
    aether_err inner = {0};
    if (aether_node_id_parse(s, len, &tmp, &inner) != AETHER_OK)
        return aether_err_set(err, AETHER_EINVAL, "cluster: not a valid cluster name: %s",
                              inner.msg);
    return AETHER_OK;
}

/* ---- encode -------------------------------------------------------------- */

/* A node id from our own memory: valid, or the caller broke it. */
static aether_status put_node(json_t *obj, aether_err *err, bool in_data, const char *key,
                              const aether_node_id *id, int *rc)
{
    if (!aether_node_id_is_valid(id))
        return field_err(err, in_data, key, "not a valid node id (length %u)", id->len);
    *rc |= json_object_set_new(obj, key, json_stringn(id->str, id->len));
    return AETHER_OK;
}

static aether_status put_u64(json_t *obj, aether_err *err, bool in_data, const char *key,
                             uint64_t v, int *rc)
{
    aether_status st = check_u64(err, in_data, key, v);
    if (st == AETHER_OK)
        *rc |= json_object_set_new(obj, key, json_integer((json_int_t)v));
    return st;
}

/* A NUL-terminated buffer of cap bytes: the terminator must be inside. */
static aether_status buf_len(aether_err *err, const char *key, const char *s, size_t cap,
                             size_t *len)
{
    *len = strnlen(s, cap);
    if (*len == cap)
        return field_err(err, true, key, "not terminated within %zu bytes", cap);
    return AETHER_OK;
}

/* A node of batch e by index, checked (an event built by hand may hold any). */
static aether_status put_batch_node(json_t *obj, aether_err *err, const char *key, uint32_t i,
                                    const char *sub, const aether_event *e, uint32_t index,
                                    bool append, int *rc)
{
    if (index >= e->node_count || !aether_node_id_is_valid(&e->nodes[index]))
        return aether_err_set(err, AETHER_EINVAL, "data.%s[%u].%s: node %u is not a valid node "
                              "id of the event's %u", key, i, sub, index, e->node_count);
    json_t *s = json_stringn(e->nodes[index].str, e->nodes[index].len);
    *rc |= append ? json_array_append_new(obj, s) : json_object_set_new(obj, sub, s);
    return AETHER_OK;
}

/* ShardAssigned's "shards" or ShardMigrated's "moves" (field_kind). */
static aether_status pack_batch(json_t *data, const field_spec *f, const aether_event *e,
                                aether_err *err, int *rc)
{
    const bool assign = f->kind == F_ASSIGNMENTS;
    AETHER_ASSERT(e->type == (assign ? AETHER_EVT_SHARD_ASSIGNED : AETHER_EVT_SHARD_MIGRATED));
    uint32_t n = assign ? e->data.shard_assigned.count : e->data.shard_migrated.count;
    const void *entries = assign ? (const void *)e->data.shard_assigned.shards
                                 : (const void *)e->data.shard_migrated.moves;
    aether_status st = check_batch_count(err, f->key, n);
    if (st != AETHER_OK)
        return st;
    AETHER_ASSERT(entries != NULL); /* aether_event_create_batch made room for n */
    shard_seen *seen = calloc(1, sizeof(*seen));
    json_t *arr = json_array();
    *rc |= json_object_set_new(data, f->key, arr); /* data owns arr (NULL: rc = -1) */
    if (arr == NULL || seen == NULL) {
        free(seen);
        *rc = -1;
        return AETHER_OK;
    }
    for (uint32_t i = 0; i < n && st == AETHER_OK; i++) { /* bounded: AETHER_EVENT_BATCH_MAX */
        json_t *o = json_object();
        *rc |= json_array_append_new(arr, o);
        if (o == NULL)
            break;
        if (assign) {
            const aether_shard_owners *so = &((const aether_shard_owners *)entries)[i];
            if ((st = check_batch_shard(err, f->key, i, so->shard, AETHER_SHARD_COUNT_MAX,
                                        seen)) != AETHER_OK)
                break;
            if (so->owner_count > AETHER_REPLICATION_MAX) {
                st = aether_err_set(err, AETHER_EINVAL, "data.%s[%u].owners: %u owners, more "
                                    "than %u", f->key, i, so->owner_count, AETHER_REPLICATION_MAX);
                break;
            }
            *rc |= json_object_set_new(o, "shard", json_integer((json_int_t)so->shard));
            json_t *owners = json_array();
            *rc |= json_object_set_new(o, "owners", owners);
            for (uint32_t j = 0; owners != NULL && j < so->owner_count && st == AETHER_OK; j++) {
                st = put_batch_node(owners, err, f->key, i, "owners", e, so->owners[j], true, rc);
                if (st == AETHER_OK)
                    st = check_owner_unique(err, f->key, i, e, so->owners, j);
            }
        } else {
            const aether_shard_move *mv = &((const aether_shard_move *)entries)[i];
            if ((st = check_batch_shard(err, f->key, i, mv->shard, AETHER_SHARD_COUNT_MAX,
                                        seen)) != AETHER_OK)
                break;
            *rc |= json_object_set_new(o, "shard", json_integer((json_int_t)mv->shard));
            if ((st = put_batch_node(o, err, f->key, i, "from", e, mv->from, false, rc)) ==
                AETHER_OK)
                st = put_batch_node(o, err, f->key, i, "to", e, mv->to, false, rc);
        }
    }
    free(seen);
    return st;
}

static aether_status pack_field(json_t *data, const field_spec *f, const char *base,
                                aether_err *err, int *rc)
{
    const void *p = base + f->off;
    aether_status st;
    size_t len;
    switch (f->kind) {
    case F_U64:
    case F_U64_OPT: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        if (f->kind == F_U64_OPT && v == 0)
            return AETHER_OK; /* absent means 0 */
        return put_u64(data, err, true, f->key, v, rc);
    }
    case F_U32:
    case F_SHARD: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        if (f->kind == F_SHARD && (st = check_shard(err, f->key, v, AETHER_SHARD_COUNT_MAX)))
            return st;
        *rc |= json_object_set_new(data, f->key, json_integer((json_int_t)v));
        return AETHER_OK;
    }
    case F_NODE:
        return put_node(data, err, true, f->key, (const aether_node_id *)p, rc);
    case F_REASON:
        if ((st = buf_len(err, f->key, p, AETHER_REASON_MAX + 1, &len)) ||
            (st = check_text(err, true, f->key, p, len, AETHER_REASON_MAX)))
            return st;
        *rc |= json_object_set_new(data, f->key, json_stringn(p, len));
        return AETHER_OK;
    case F_ADDRESS:
        if ((st = buf_len(err, f->key, p, AETHER_NODE_ADDRESS_LEN_MAX + 1, &len)) ||
            (st = check_address(err, f->key, p, len)))
            return st;
        *rc |= json_object_set_new(data, f->key, json_stringn(p, len));
        return AETHER_OK;
    case F_ZONE:
        if ((st = buf_len(err, f->key, p, AETHER_NODE_ZONE_LEN_MAX + 1, &len)) ||
            (st = check_zone(err, f->key, p, len)))
            return st;
        *rc |= json_object_set_new(data, f->key, json_stringn(p, len));
        return AETHER_OK;
    case F_FLAG: {
        bool v;
        memcpy(&v, p, sizeof(v));
        if (v)
            *rc |= json_object_set_new(data, f->key, json_true());
        return AETHER_OK;
    }
    case F_ASSIGNMENTS:
    case F_MOVES:
        return pack_batch(data, f, (const aether_event *)(const void *)base, err, rc);
    case F_SHARD_COUNT:
    case F_REPLICATION:
    case F_WIRE: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        if ((st = check_range(err, f->key, f->kind, v)) != AETHER_OK)
            return st;
        *rc |= json_object_set_new(data, f->key, json_integer((json_int_t)v));
        return AETHER_OK;
    }
    case F_HEX64: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        char hex[CODEC_HEX64_LEN + 1];
        snprintf(hex, sizeof(hex), "%016" PRIx64, v);
        *rc |= json_object_set_new(data, f->key, json_stringn(hex, CODEC_HEX64_LEN));
        return AETHER_OK;
    }
    }
    AETHER_ASSERT(!"unknown field kind");
    return AETHER_EINVAL;
}

/* Builds the whole envelope of a table-described message and dumps it. */
static aether_status encode_envelope(const type_spec *ts, const aether_codec_header *hdr,
                                     const char *base, char **out, size_t *len, aether_err *err)
{
    AETHER_ASSERT(ts != NULL && hdr != NULL && base != NULL && out != NULL);
    aether_status st;
    int rc = 0;
    size_t clen = strnlen(hdr->cluster, sizeof(hdr->cluster));
    if (clen == sizeof(hdr->cluster))
        return aether_err_set(err, AETHER_EINVAL, "cluster: not terminated");
    if ((st = check_cluster(err, hdr->cluster, clen)) != AETHER_OK)
        return st;

    json_t *root = json_object();
    json_t *data = json_object();
    if (root == NULL || data == NULL) {
        json_decref(data);
        goto nomem;
    }
    rc |= json_object_set_new(root, "v", json_integer(AETHER_CODEC_VERSION));
    rc |= json_object_set_new(root, "type", json_string(ts->name));
    rc |= json_object_set_new(root, "cluster", json_stringn(hdr->cluster, clen));
    if (hdr->generation != 0) { /* optional: absent = none known (codec.h) */
        char gen[20];
        snprintf(gen, sizeof(gen), "%016" PRIx64, hdr->generation);
        rc |= json_object_set_new(root, "gen", json_string(gen));
    }
    if ((st = put_u64(root, err, false, "term", hdr->term, &rc)) != AETHER_OK ||
        (st = put_u64(root, err, false, "seq", hdr->seq, &rc)) != AETHER_OK ||
        (st = put_node(root, err, false, "node", &hdr->node, &rc)) != AETHER_OK ||
        (st = put_u64(root, err, false, "ts", hdr->ts_ms, &rc)) != AETHER_OK) {
        json_decref(data);
        goto fail;
    }
    rc |= json_object_set_new(root, "data", data); /* root owns data from here */
    size_t n_fields = group_absent(ts, base) ? ts->group_from : ts->n_fields;
    if (n_fields < ts->n_fields && (st = check_group_zero(ts, base, err)) != AETHER_OK)
        goto fail;
    for (size_t i = 0; i < n_fields; i++)
        if ((st = pack_field(data, &ts->fields[i], base, err, &rc)) != AETHER_OK)
            goto fail;
    if (ts->kind == AETHER_CODEC_COMMAND && ts->sub == AETHER_CMD_JOIN_CLUSTER &&
        n_fields == ts->n_fields) {
        const aether_admission *a = &((const aether_command *)(const void *)base)->data.join.terms;
        if (a->wire_min > a->wire_max) {
            st = field_err(err, true, "wire_max", "%u is below wire_min %u", a->wire_max,
                           a->wire_min);
            goto fail;
        }
    }
    if (rc != 0)
        goto nomem;
    char *text = json_dumps(root, JSON_COMPACT);
    if (text == NULL)
        goto nomem;
    json_decref(root);
    *out = text;
    if (len != NULL)
        *len = strlen(text);
    return AETHER_OK;
nomem:
    st = aether_err_set(err, AETHER_ENOMEM, "codec: out of memory");
fail:
    json_decref(root);
    return st;
}

static aether_codec_header event_header(const aether_event *e)
{
    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.cluster, e->cluster, sizeof(h.cluster));
    h.generation = e->generation;
    h.term = e->term;
    h.seq = e->seq;
    h.node = e->node;
    h.ts_ms = e->ts_ms;
    return h;
}

static aether_codec_header command_header(const aether_command *c, uint64_t ts_ms)
{
    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.cluster, c->cluster, sizeof(h.cluster));
    h.generation = c->generation;
    h.term = c->term;
    h.seq = 0;
    h.node = c->sender;
    h.ts_ms = ts_ms;
    return h;
}

aether_status aether_codec_encode_event(const aether_event *e, char **out, size_t *len,
                                        aether_err *err)
{
    AETHER_ASSERT(e != NULL && out != NULL);
    *out = NULL;
    const type_spec *ts = spec_by_kind(AETHER_CODEC_EVENT, (int)e->type);
    if (ts == NULL)
        return aether_err_set(err, AETHER_EINVAL, "type: unknown event type %d", (int)e->type);
    aether_codec_header h = event_header(e);
    return encode_envelope(ts, &h, (const char *)e, out, len, err);
}

aether_status aether_codec_encode_command(const aether_command *c, uint64_t ts_ms, char **out,
                                          size_t *len, aether_err *err)
{
    AETHER_ASSERT(c != NULL && out != NULL);
    *out = NULL;
    const type_spec *ts = spec_by_kind(AETHER_CODEC_COMMAND, (int)c->type);
    if (ts == NULL)
        return aether_err_set(err, AETHER_EINVAL, "type: unknown command type %d", (int)c->type);
    aether_codec_header h = command_header(c, ts_ms);
    return encode_envelope(ts, &h, (const char *)c, out, len, err);
}

aether_status aether_codec_encode_release(const aether_codec_header *hdr,
                                          const aether_release_ack *ack, char **out, size_t *len,
                                          aether_err *err)
{
    AETHER_ASSERT(hdr != NULL && ack != NULL && out != NULL);
    *out = NULL;
    if (hdr->seq != 0)
        return aether_err_set(err, AETHER_EINVAL, "seq: must be 0 for %s",
                              AETHER_CODEC_TYPE_RELEASE);
    if (!aether_node_id_equal(&ack->from, &hdr->node))
        return aether_err_set(err, AETHER_EINVAL, "data.from: a node releases only its own shards");
    return encode_envelope(spec_by_kind(AETHER_CODEC_RELEASE, 0), hdr, (const char *)ack, out,
                           len, err);
}

aether_status aether_codec_encode_heartbeat(const aether_codec_header *hdr, uint64_t incarnation,
                                            char **out, size_t *len, aether_err *err)
{
    AETHER_ASSERT(hdr != NULL && out != NULL);
    *out = NULL;
    if (hdr->seq != 0)
        return aether_err_set(err, AETHER_EINVAL, "seq: must be 0 for %s",
                              AETHER_CODEC_TYPE_HEARTBEAT);
    aether_codec_heartbeat hb = {.node = hdr->node, .incarnation = incarnation};
    return encode_envelope(spec_by_kind(AETHER_CODEC_HEARTBEAT, 0), hdr, (const char *)&hb, out,
                           len, err);
}

aether_status aether_codec_encode_reply(aether_status status, const char *reason, char **out,
                                        size_t *len, aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    if ((unsigned)status >= AETHER_STATUS_COUNT_)
        return aether_err_set(err, AETHER_EINVAL, "status: unknown value %u", (unsigned)status);
    if (reason == NULL)
        reason = "";
    size_t rlen = strnlen(reason, AETHER_CODEC_REPLY_REASON_MAX + 1);
    aether_status st = check_text(err, false, "reason", reason, rlen, AETHER_CODEC_REPLY_REASON_MAX);
    if (st != AETHER_OK)
        return st;
    json_t *root = json_object();
    if (root == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "codec: out of memory");
    int rc = 0;
    rc |= json_object_set_new(root, "v", json_integer(AETHER_CODEC_VERSION));
    rc |= json_object_set_new(root, "type", json_string(AETHER_CODEC_TYPE_REPLY));
    rc |= json_object_set_new(root, "status", json_string(aether_status_str(status)));
    rc |= json_object_set_new(root, "reason", json_stringn(reason, rlen));
    char *text = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "codec: out of memory");
    *out = text;
    if (len != NULL)
        *len = strlen(text);
    return AETHER_OK;
}

aether_status aether_codec_encode_msg(const aether_codec_msg *msg, char **out, size_t *len,
                                      aether_err *err)
{
    AETHER_ASSERT(msg != NULL && out != NULL);
    switch (msg->kind) {
    case AETHER_CODEC_EVENT:
        AETHER_ASSERT(msg->u.event != NULL);
        return aether_codec_encode_event(msg->u.event, out, len, err);
    case AETHER_CODEC_COMMAND:
        return aether_codec_encode_command(&msg->u.command, msg->hdr.ts_ms, out, len, err);
    case AETHER_CODEC_RELEASE:
        return aether_codec_encode_release(&msg->hdr, &msg->u.release, out, len, err);
    case AETHER_CODEC_HEARTBEAT:
        return aether_codec_encode_heartbeat(&msg->hdr, msg->u.heartbeat.incarnation, out, len,
                                             err);
    case AETHER_CODEC_REPLY:
        return aether_codec_encode_reply(msg->u.reply.status, msg->u.reply.reason, out, len, err);
    }
    AETHER_ASSERT(!"aether_codec_msg with an unknown kind");
    return AETHER_EINVAL;
}

void aether_codec_msg_fini(aether_codec_msg *msg)
{
    if (msg == NULL)
        return;
    if (msg->kind == AETHER_CODEC_EVENT)
        aether_event_release(msg->u.event);
    memset(msg, 0, sizeof(*msg));
}

/* ---- decode -------------------------------------------------------------- */

/* One decode call: the limits and the class of the refusal being reported. */
typedef struct dec {
    const aether_codec_limits *lim; /* never NULL (defaults substituted) */
    aether_err *err;                /* never NULL (a local one when the caller gave none) */
    aether_codec_reject cls;        /* of the refusal; BAD_FIELD unless a step says otherwise */
} dec;

/* Refuses keys of obj outside allowed[0..n). */
static aether_status check_keys(dec *d, const json_t *obj, bool in_data, const char *const *allowed,
                                size_t n)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            char shown[CODEC_QUOTE_MAX + 8];
            quote_untrusted(shown, sizeof(shown), key, strlen(key));
            return aether_err_set(d->err, AETHER_EINVAL, "%s%s: unknown field",
                                  in_data ? "data." : "", shown);
        }
    }
    return AETHER_OK;
}

static aether_status get_value(dec *d, const json_t *obj, bool in_data, const char *key,
                               json_t **out)
{
    *out = json_object_get(obj, key);
    if (*out == NULL)
        return field_err(d->err, in_data, key, "missing");
    return AETHER_OK;
}

/* A non-negative integer up to max. */
static aether_status get_uint(dec *d, const json_t *obj, bool in_data, const char *key,
                              uint64_t max, uint64_t *out)
{
    json_t *v;
    aether_status st = get_value(d, obj, in_data, key, &v);
    if (st != AETHER_OK)
        return st;
    if (!json_is_integer(v))
        return field_err(d->err, in_data, key, "expected a non-negative integer, got %s",
                         aether_json_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0)
        return field_err(d->err, in_data, key, "%lld is not a non-negative integer", (long long)i);
    if ((uint64_t)i > max)
        return field_err(d->err, in_data, key, "%lld out of range 0..%" PRIu64, (long long)i, max);
    *out = (uint64_t)i;
    return AETHER_OK;
}

static aether_status get_string(dec *d, const json_t *obj, bool in_data, const char *key,
                                const char **s, size_t *len)
{
    json_t *v;
    aether_status st = get_value(d, obj, in_data, key, &v);
    if (st != AETHER_OK)
        return st;
    if (!json_is_string(v))
        return field_err(d->err, in_data, key, "expected a string, got %s", aether_json_type_name(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return AETHER_OK;
}

static aether_status node_from_json(dec *d, const json_t *v, aether_node_id *out)
{
    if (!json_is_string(v))
        return aether_err_set(d->err, AETHER_EINVAL, "expected a string, got %s", aether_json_type_name(v));
    return aether_node_id_parse(json_string_value(v), json_string_length(v), out, d->err);
}

static aether_status get_node(dec *d, const json_t *obj, bool in_data, const char *key,
                              aether_node_id *out)
{
    json_t *v;
    aether_status st = get_value(d, obj, in_data, key, &v);
    if (st != AETHER_OK)
        return st;
    if ((st = node_from_json(d, v, out)) != AETHER_OK)
        aether_err_prefix(d->err, "%s%s", in_data ? "data." : "", key);
    return st;
}

/* A string field copied into a cap-byte buffer after check() accepts it. */
static aether_status get_text(dec *d, const json_t *data, const field_spec *f, char *dst,
                              size_t cap)
{
    const char *s = NULL; /* set whenever get_string succeeds; gcc -O3 cannot tell */
    size_t len = 0;
    aether_status st = get_string(d, data, true, f->key, &s, &len);
    if (st != AETHER_OK)
        return st;
    switch (f->kind) {
    case F_REASON:
        st = check_text(d->err, true, f->key, s, len, AETHER_REASON_MAX);
        break;
    case F_ADDRESS:
        st = check_address(d->err, f->key, s, len);
        break;
    case F_ZONE:
        st = check_zone(d->err, f->key, s, len);
        break;
    default:
        AETHER_ASSERT(!"not a text field");
    }
    if (st != AETHER_OK)
        return st;
    AETHER_ASSERT(len < cap); /* every check bounds the length below its buffer */
    memcpy(dst, s, len);
    dst[len] = '\0';
    return AETHER_OK;
}

/* A node id of entry i of a batch, added to the event's node table. */
static aether_status get_batch_node(dec *d, const json_t *v, const char *key, uint32_t i,
                                    const char *sub, int j, aether_event_nodes_ix *ix,
                                    uint16_t *index)
{
    aether_node_id id;
    aether_status st = node_from_json(d, v, &id);
    if (st == AETHER_OK && (st = aether_event_nodes_ix_add(ix, &id, index)) == AETHER_ENOMEM)
        return aether_err_set(d->err, AETHER_ENOMEM, "codec: out of memory");
    if (st == AETHER_EFULL) /* cannot happen: entries x owners bound the table */
        st = aether_err_set(d->err, AETHER_EINVAL, "more than %u node ids",
                            AETHER_EVENT_BATCH_NODES_MAX);
    if (st != AETHER_OK) {
        if (j >= 0)
            aether_err_prefix(d->err, "data.%s[%u].%s[%d]", key, i, sub, j);
        else
            aether_err_prefix(d->err, "data.%s[%u].%s", key, i, sub);
    }
    return st;
}

/* One entry object of a batch: exactly the keys named. */
static aether_status check_entry_keys(dec *d, const json_t *o, const char *key, uint32_t i,
                                      const char *const *allowed, size_t n)
{
    if (!json_is_object(o))
        return aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u]: expected an object, got %s",
                              key, i, aether_json_type_name(o));
    const char *k;
    json_t *value;
    json_object_foreach((json_t *)o, k, value) {
        bool known = false;
        for (size_t a = 0; a < n && !known; a++)
            known = strcmp(k, allowed[a]) == 0;
        if (!known) {
            char shown[CODEC_QUOTE_MAX + 8];
            quote_untrusted(shown, sizeof(shown), k, strlen(k));
            return aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u].%s: unknown field", key, i,
                                  shown);
        }
    }
    for (size_t a = 0; a < n; a++)
        if (json_object_get(o, allowed[a]) == NULL)
            return aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u].%s: missing", key, i,
                                  allowed[a]);
    return AETHER_OK;
}

/* "shards" of a ShardAssigned or "moves" of a ShardMigrated into e, which
 * decode_envelope made with room for the array's entries when the array
 * had 1..AETHER_EVENT_BATCH_MAX of them (else this refuses it before any
 * entry is touched). */
static aether_status unpack_batch(dec *d, const json_t *data, const field_spec *f,
                                  aether_event *e)
{
    const bool assign = f->kind == F_ASSIGNMENTS;
    json_t *arr;
    aether_status st = get_value(d, data, true, f->key, &arr);
    if (st != AETHER_OK)
        return st;
    if (!json_is_array(arr))
        return field_err(d->err, true, f->key, "expected an array, got %s",
                         aether_json_type_name(arr));
    size_t n = json_array_size(arr);
    if ((st = check_batch_count(d->err, f->key, n)) != AETHER_OK)
        return st;
    AETHER_ASSERT(n == aether_event_entry_count(e)); /* decode_envelope sized it */
    static const char *const assign_keys[] = {"shard", "owners"};
    static const char *const move_keys[] = {"shard", "from", "to"};
    uint32_t limit = shard_limit(d->lim);
    aether_event_nodes_ix ix;
    shard_seen *seen = calloc(1, sizeof(*seen));
    if (seen == NULL || aether_event_nodes_ix_init(&ix, e) != AETHER_OK) {
        free(seen);
        return aether_err_set(d->err, AETHER_ENOMEM, "codec: out of memory");
    }
    for (uint32_t i = 0; i < (uint32_t)n && st == AETHER_OK; i++) { /* bounded: BATCH_MAX */
        const json_t *o = json_array_get(arr, i);
        if ((st = check_entry_keys(d, o, f->key, i, assign ? assign_keys : move_keys,
                                   assign ? 2 : 3)) != AETHER_OK)
            break;
        const json_t *js = json_object_get(o, "shard");
        if (!json_is_integer(js) || json_integer_value(js) < 0) {
            st = aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u].shard: expected a "
                                "non-negative integer", f->key, i);
            break;
        }
        uint64_t shard = (uint64_t)json_integer_value(js);
        if ((st = check_batch_shard(d->err, f->key, i, shard, limit, seen)) != AETHER_OK)
            break;
        if (assign) {
            aether_shard_owners *so = &e->data.shard_assigned.shards[i];
            so->shard = (uint32_t)shard;
            const json_t *owners = json_object_get(o, "owners");
            if (!json_is_array(owners)) {
                st = aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u].owners: expected an "
                                    "array, got %s", f->key, i, aether_json_type_name(owners));
                break;
            }
            size_t no = json_array_size(owners);
            if (no > AETHER_REPLICATION_MAX) {
                st = aether_err_set(d->err, AETHER_EINVAL, "data.%s[%u].owners: %zu owners, "
                                    "more than %u", f->key, i, no, AETHER_REPLICATION_MAX);
                break;
            }
            so->owner_count = (uint16_t)no;
            for (uint32_t j = 0; j < (uint32_t)no && st == AETHER_OK; j++) {
                st = get_batch_node(d, json_array_get(owners, j), f->key, i, "owners", (int)j,
                                    &ix, &so->owners[j]);
                if (st == AETHER_OK)
                    st = check_owner_unique(d->err, f->key, i, e, so->owners, j);
            }
        } else {
            aether_shard_move *mv = &e->data.shard_migrated.moves[i];
            mv->shard = (uint32_t)shard;
            st = get_batch_node(d, json_object_get(o, "from"), f->key, i, "from", -1, &ix,
                                &mv->from);
            if (st == AETHER_OK)
                st = get_batch_node(d, json_object_get(o, "to"), f->key, i, "to", -1, &ix,
                                    &mv->to);
        }
    }
    aether_event_nodes_ix_fini(&ix);
    free(seen);
    return st;
}

static aether_status unpack_field(dec *d, const json_t *data, const field_spec *f, char *base)
{
    void *p = base + f->off;
    uint64_t v;
    aether_status st;
    switch (f->kind) {
    case F_U64:
        if ((st = get_uint(d, data, true, f->key, CODEC_U64_MAX, &v)) == AETHER_OK)
            memcpy(p, &v, sizeof(v));
        return st;
    case F_U64_OPT:
        v = 0;
        if (json_object_get(data, f->key) != NULL &&
            (st = get_uint(d, data, true, f->key, CODEC_U64_MAX, &v)) != AETHER_OK)
            return st;
        memcpy(p, &v, sizeof(v));
        return AETHER_OK;
    case F_U32:
    case F_SHARD: {
        uint64_t max = f->kind == F_SHARD ? shard_limit(d->lim) - 1u : UINT32_MAX;
        if ((st = get_uint(d, data, true, f->key, max, &v)) == AETHER_OK) {
            uint32_t v32 = (uint32_t)v;
            memcpy(p, &v32, sizeof(v32));
        }
        return st;
    }
    case F_NODE:
        return get_node(d, data, true, f->key, (aether_node_id *)p);
    case F_REASON:
        return get_text(d, data, f, p, AETHER_REASON_MAX + 1);
    case F_ADDRESS:
        return get_text(d, data, f, p, AETHER_NODE_ADDRESS_LEN_MAX + 1);
    case F_ZONE:
        return get_text(d, data, f, p, AETHER_NODE_ZONE_LEN_MAX + 1);
    case F_ASSIGNMENTS:
    case F_MOVES:
        return unpack_batch(d, data, f, (aether_event *)(void *)base);
    case F_SHARD_COUNT:
    case F_REPLICATION:
    case F_WIRE: {
        uint64_t lo, hi;
        range_of(f->kind, &lo, &hi);
        if ((st = get_uint(d, data, true, f->key, hi, &v)) != AETHER_OK)
            return st;
        if ((st = check_range(d->err, f->key, f->kind, v)) != AETHER_OK)
            return st;
        uint32_t v32 = (uint32_t)v;
        memcpy(p, &v32, sizeof(v32));
        return AETHER_OK;
    }
    case F_HEX64: {
        const char *s = NULL;
        size_t len = 0;
        if ((st = get_string(d, data, true, f->key, &s, &len)) != AETHER_OK ||
            (st = parse_hex64(d->err, f->key, s, len, &v)) != AETHER_OK)
            return st;
        memcpy(p, &v, sizeof(v));
        return AETHER_OK;
    }
    case F_FLAG: {
        const json_t *x = json_object_get(data, f->key);
        if (x != NULL && !json_is_boolean(x))
            return field_err(d->err, true, f->key, "expected true or false, got %s",
                             aether_json_type_name(x));
        bool b = x != NULL && json_is_true(x);
        memcpy(p, &b, sizeof(b));
        return AETHER_OK;
    }
    }
    AETHER_ASSERT(!"unknown field kind");
    return AETHER_EINVAL;
}

static aether_status decode_reply(dec *d, const json_t *root, aether_codec_msg *out)
{
    aether_status st;
    const char *s;
    size_t len;
    if ((st = check_keys(d, root, false, reply_keys, N_OF(reply_keys))) != AETHER_OK)
        return st;
    if ((st = get_string(d, root, false, "status", &s, &len)) != AETHER_OK)
        return st;
    int found = -1;
    for (int i = 0; i < AETHER_STATUS_COUNT_ && found < 0; i++)
        if (strlen(aether_status_str((aether_status)i)) == len &&
            memcmp(aether_status_str((aether_status)i), s, len) == 0)
            found = i;
    if (found < 0) {
        char shown[CODEC_QUOTE_MAX + 8];
        quote_untrusted(shown, sizeof(shown), s, len);
        return aether_err_set(d->err, AETHER_EINVAL, "status: unknown status '%s'", shown);
    }
    if ((st = get_string(d, root, false, "reason", &s, &len)) != AETHER_OK)
        return st;
    if ((st = check_text(d->err, false, "reason", s, len, AETHER_CODEC_REPLY_REASON_MAX)) !=
        AETHER_OK)
        return st;
    out->kind = AETHER_CODEC_REPLY;
    out->u.reply.status = (aether_status)found;
    memcpy(out->u.reply.reason, s, len);
    out->u.reply.reason[len] = '\0';
    return AETHER_OK;
}

/* "gen": exactly 16 lowercase hex digits, not all zeros (0 means absent). */
static bool parse_generation(const char *s, size_t len, uint64_t *out)
{
    if (len != 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; i++) { /* bounded: 16 digits */
        char c = s[i];
        if (c >= '0' && c <= '9')
            v = (v << 4) | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (v << 4) | (uint64_t)(c - 'a' + 10);
        else
            return false;
    }
    *out = v;
    return v != 0;
}

static aether_status decode_header(dec *d, const json_t *root, aether_codec_header *h)
{
    aether_status st;
    const char *s;
    size_t len;
    if ((st = get_string(d, root, false, "cluster", &s, &len)) != AETHER_OK ||
        (st = check_cluster(d->err, s, len)) != AETHER_OK)
        return st;
    memcpy(h->cluster, s, len); /* a valid name is at most AETHER_NODE_ID_LEN_MAX bytes */
    AETHER_STATIC_ASSERT(AETHER_NODE_ID_LEN_MAX <= AETHER_CLUSTER_NAME_MAX, "cluster fits");
    h->generation = 0;
    if (json_object_get(root, "gen") != NULL) { /* optional (codec.h) */
        if ((st = get_string(d, root, false, "gen", &s, &len)) != AETHER_OK)
            return st;
        if (!parse_generation(s, len, &h->generation)) {
            char shown[CODEC_QUOTE_MAX + 8];
            quote_untrusted(shown, sizeof(shown), s, len);
            return field_err(d->err, false, "gen", "'%s' is not 16 lowercase hex digits naming "
                             "a generation", shown);
        }
    }
    if ((st = get_uint(d, root, false, "term", CODEC_U64_MAX, &h->term)) != AETHER_OK ||
        (st = get_uint(d, root, false, "seq", CODEC_U64_MAX, &h->seq)) != AETHER_OK ||
        (st = get_node(d, root, false, "node", &h->node)) != AETHER_OK ||
        (st = get_uint(d, root, false, "ts", CODEC_U64_MAX, &h->ts_ms)) != AETHER_OK)
        return st;
    return AETHER_OK;
}

/* The table-described kinds. On failure out may hold a half-filled event; the
 * caller releases it through aether_codec_msg_fini. */
static aether_status decode_envelope(dec *d, const json_t *root, const type_spec *ts,
                                     aether_codec_msg *out)
{
    aether_status st;
    if ((st = check_keys(d, root, false, envelope_keys, N_OF(envelope_keys))) != AETHER_OK ||
        (st = decode_header(d, root, &out->hdr)) != AETHER_OK)
        return st;
    json_t *data;
    if ((st = get_value(d, root, false, "data", &data)) != AETHER_OK)
        return st;
    if (!json_is_object(data))
        return field_err(d->err, false, "data", "expected an object, got %s", aether_json_type_name(data));

    /* The fields of the row may name only keys of the row. */
    const char *allowed[12];
    AETHER_ASSERT(ts->n_fields <= N_OF(allowed));
    for (size_t i = 0; i < ts->n_fields; i++)
        allowed[i] = ts->fields[i].key;
    if ((st = check_keys(d, data, true, allowed, ts->n_fields)) != AETHER_OK)
        return st;

    char *base;
    switch (ts->kind) {
    case AETHER_CODEC_EVENT: {
        /* A batch gets room for its array's entries, when their count is in
         * range (unpack_batch refuses it otherwise, touching none). */
        const json_t *arr = NULL;
        if (ts->sub == AETHER_EVT_SHARD_ASSIGNED)
            arr = json_object_get(data, "shards");
        else if (ts->sub == AETHER_EVT_SHARD_MIGRATED)
            arr = json_object_get(data, "moves");
        size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
        if (n >= 1 && n <= AETHER_EVENT_BATCH_MAX)
            out->u.event = aether_event_create_batch((aether_event_type)ts->sub, (uint32_t)n);
        else
            out->u.event = aether_event_create((aether_event_type)ts->sub);
        if (out->u.event == NULL)
            return aether_err_set(d->err, AETHER_ENOMEM, "codec: out of memory");
        base = (char *)out->u.event;
        break;
    }
    case AETHER_CODEC_COMMAND:
        base = (char *)&out->u.command;
        break;
    case AETHER_CODEC_RELEASE:
        base = (char *)&out->u.release;
        break;
    case AETHER_CODEC_HEARTBEAT:
        base = (char *)&out->u.heartbeat;
        break;
    default:
        AETHER_ASSERT(!"not an envelope kind");
        return AETHER_EINVAL;
    }
    out->kind = ts->kind;
    /* An optional group: none of its keys (zeros), or all of them. */
    size_t n_fields = ts->n_fields;
    if (ts->group_from != 0) {
        size_t present = 0;
        for (size_t i = ts->group_from; i < ts->n_fields; i++)
            present += json_object_get(data, ts->fields[i].key) != NULL;
        if (present == 0)
            n_fields = ts->group_from;
    }
    for (size_t i = 0; i < n_fields; i++)
        if ((st = unpack_field(d, data, &ts->fields[i], base)) != AETHER_OK)
            return st;

    const aether_codec_header *h = &out->hdr;
    if (ts->kind != AETHER_CODEC_EVENT && h->seq != 0)
        return aether_err_set(d->err, AETHER_EINVAL, "seq: must be 0 for %s, got %" PRIu64,
                              ts->name, h->seq);
    switch (ts->kind) {
    case AETHER_CODEC_EVENT: {
        aether_event *e = out->u.event;
        memcpy(e->cluster, h->cluster, sizeof(e->cluster));
        e->generation = h->generation;
        e->term = h->term;
        e->seq = h->seq;
        e->node = h->node;
        e->ts_ms = h->ts_ms;
        break;
    }
    case AETHER_CODEC_COMMAND: {
        aether_command *c = &out->u.command;
        c->type = (aether_command_type)ts->sub;
        memcpy(c->cluster, h->cluster, sizeof(c->cluster));
        c->generation = h->generation;
        c->term = h->term;
        c->sender = h->node;
        if (c->type == AETHER_CMD_JOIN_CLUSTER) {
            const aether_admission *a = &c->data.join.terms;
            if (a->wire_min > a->wire_max)
                return aether_err_set(d->err, AETHER_EINVAL,
                                      "data.wire_max: %u is below wire_min %u", a->wire_max,
                                      a->wire_min);
            c->data.join.info.status = AETHER_NODE_ACTIVE;
            /* The table checks are node.h's rules; this keeps them honest. */
            AETHER_ASSERT(aether_node_info_validate(&c->data.join.info, NULL) == AETHER_OK);
        }
        break;
    }
    case AETHER_CODEC_RELEASE:
        if (!aether_node_id_equal(&out->u.release.from, &h->node))
            return aether_err_set(d->err, AETHER_EINVAL,
                                  "data.from: %s releases a shard of %s; a node releases only "
                                  "its own",
                                  h->node.str, out->u.release.from.str);
        break;
    case AETHER_CODEC_HEARTBEAT:
        if (!aether_node_id_equal(&out->u.heartbeat.node, &h->node))
            return aether_err_set(d->err, AETHER_EINVAL,
                                  "data.node: heartbeat for %s sent by %s; a node beats only "
                                  "for itself",
                                  out->u.heartbeat.node.str, h->node.str);
        break;
    default:
        break;
    }

    /* Policy, on a well-formed message only (codec.h step 5). */
    if (d->lim->cluster != NULL && strcmp(d->lim->cluster, h->cluster) != 0) {
        d->cls = AETHER_CODEC_REJECT_WRONG_CLUSTER;
        return aether_err_set(d->err, AETHER_EINVAL, "cluster: '%s' is not this cluster '%.64s'",
                              h->cluster, d->lim->cluster);
    }
    if (d->lim->min_term != 0) {
        bool fenced = true;
        aether_term t = h->term;
        const char *what = "term";
        if (ts->kind == AETHER_CODEC_RELEASE) {
            t = out->u.release.term;
            what = "data.term";
        } else if (ts->kind != AETHER_CODEC_EVENT) {
            fenced = false;
        }
        if (fenced && t < d->lim->min_term) {
            d->cls = AETHER_CODEC_REJECT_STALE_TERM;
            return aether_err_set(d->err, AETHER_ESTALE, "%s: %" PRIu64 " is older than %" PRIu64,
                                  what, t, d->lim->min_term);
        }
    }
    return AETHER_OK;
}

/* Steps 2..5 of codec.h on a size-checked buffer. */
static aether_status decode_tree(dec *d, const void *buf, size_t len, aether_codec_msg *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        enum json_error_code code = json_error_code(&jerr);
        if (code == json_error_out_of_memory)
            return aether_err_set(d->err, AETHER_ENOMEM, "codec: out of memory");
        d->cls = code == json_error_numeric_overflow ? AETHER_CODEC_REJECT_BAD_FIELD
                                                     : AETHER_CODEC_REJECT_MALFORMED;
        /* jerr.text may quote input near the error: strip it like any other. */
        char shown[CODEC_QUOTE_MAX + 8];
        quote_untrusted(shown, sizeof(shown), jerr.text, strnlen(jerr.text, sizeof(jerr.text)));
        if (code == json_error_numeric_overflow)
            return aether_err_set(d->err, AETHER_EINVAL,
                                  "integer out of range 0..%" PRIu64 " at line %d column %d",
                                  CODEC_U64_MAX, jerr.line, jerr.column);
        return aether_err_set(d->err, AETHER_EINVAL, "malformed JSON at line %d column %d: %s",
                              jerr.line, jerr.column, shown);
    }

    aether_status st;
    const char *s;
    size_t slen;
    uint64_t v;
    if (!json_is_object(root)) {
        d->cls = AETHER_CODEC_REJECT_MALFORMED;
        st = aether_err_set(d->err, AETHER_EINVAL, "root: expected an object, got %s",
                            aether_json_type_name(root));
        goto done;
    }
    d->cls = AETHER_CODEC_REJECT_UNKNOWN_TYPE;
    json_t *jv = json_object_get(root, "v");
    if (jv != NULL && json_is_integer(jv) && json_integer_value(jv) != AETHER_CODEC_VERSION) {
        st = aether_err_set(d->err, AETHER_EINVAL, "v: unsupported version %lld",
                            (long long)json_integer_value(jv));
        goto done;
    }
    if ((st = get_uint(d, root, false, "v", AETHER_CODEC_VERSION, &v)) != AETHER_OK ||
        (st = get_string(d, root, false, "type", &s, &slen)) != AETHER_OK)
        goto done;
    const type_spec *ts = strlen(s) == slen ? spec_by_name(s) : NULL;
    if (ts == NULL && strcmp(s, AETHER_CODEC_TYPE_REPLY) != 0) {
        char shown[CODEC_QUOTE_MAX + 8];
        quote_untrusted(shown, sizeof(shown), s, slen);
        st = aether_err_set(d->err, AETHER_EINVAL, "type: unknown message type '%s'", shown);
        goto done;
    }
    d->cls = AETHER_CODEC_REJECT_BAD_FIELD;
    st = ts == NULL ? decode_reply(d, root, out) : decode_envelope(d, root, ts, out);
done:
    json_decref(root);
    return st;
}

aether_status aether_codec_decode(const void *buf, size_t len, const aether_codec_limits *limits,
                                  aether_codec_msg *out, aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    AETHER_ASSERT(buf != NULL || len == 0);
    static const aether_codec_limits defaults;
    memset(out, 0, sizeof(*out));
    aether_err local = {0};
    dec d = {
        .lim = limits != NULL ? limits : &defaults,
        .err = err != NULL ? err : &local,
        .cls = AETHER_CODEC_REJECT_MALFORMED,
    };
    size_t max = d.lim->max_bytes != 0 ? d.lim->max_bytes : AETHER_CODEC_MAX_BYTES_DEFAULT;

    aether_status st;
    if (len > max) {
        d.cls = AETHER_CODEC_REJECT_OVERSIZED;
        st = aether_err_set(d.err, AETHER_EINVAL, "message: %zu bytes, more than the limit %zu",
                            len, max);
    } else {
        st = decode_tree(&d, buf, len, out);
    }

    aether_codec_stats *stats = d.lim->stats;
    if (st == AETHER_OK) {
        if (stats != NULL)
            __atomic_fetch_add(&stats->decoded, 1, __ATOMIC_RELAXED);
        return AETHER_OK;
    }
    aether_codec_msg_fini(out);
    if (stats != NULL && st != AETHER_ENOMEM) {
        __atomic_fetch_add(&stats->rejected[d.cls], 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_enabled(AETHER_LOG_WARN) &&
            aether_log_ratelimit_allow(&stats->log_limit, aether_clock_now_ns(stats->clock),
                                       &suppressed))
            aether_log_write(AETHER_LOG_WARN, CODEC_MODULE,
                             "rejected a %zu-byte message (%s, %s): %s [%" PRIu64
                             " more suppressed]",
                             len, aether_codec_reject_name(d.cls), aether_status_str(st),
                             d.err->msg, suppressed);
    }
    return st;
}

/* ---- statistics ---------------------------------------------------------- */

void aether_codec_stats_init(aether_codec_stats *stats, aether_clock *clock)
{
    AETHER_ASSERT(stats != NULL);
    memset(stats, 0, sizeof(*stats));
    stats->clock = clock != NULL ? clock : aether_clock_real();
    aether_log_ratelimit_init(&stats->log_limit, CODEC_LOG_WINDOW_NS);
}

uint64_t aether_codec_stats_decoded(const aether_codec_stats *stats)
{
    AETHER_ASSERT(stats != NULL);
    return __atomic_load_n(&stats->decoded, __ATOMIC_RELAXED);
}

uint64_t aether_codec_stats_rejected(const aether_codec_stats *stats, aether_codec_reject r)
{
    AETHER_ASSERT(stats != NULL && (unsigned)r < AETHER_CODEC_REJECT_COUNT_);
    return __atomic_load_n(&stats->rejected[r], __ATOMIC_RELAXED);
}

uint64_t aether_codec_stats_rejected_total(const aether_codec_stats *stats)
{
    uint64_t sum = 0;
    for (int r = 0; r < AETHER_CODEC_REJECT_COUNT_; r++)
        sum += aether_codec_stats_rejected(stats, (aether_codec_reject)r);
    return sum;
}
