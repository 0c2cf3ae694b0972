/* SPDX-License-Identifier: Apache-2.0 */
/*
 * codec.h: the wire codec of the NATS transport: every message a node puts on
 * or takes off the wire, as a versioned JSON envelope (transport layer).
 *
 * DESIGN (DESIGN 4, "Wire"). One shape for everything but command replies:
 *
 *   {"v":1,"type":"NodeJoined","cluster":"prod","gen":"5be0c2a1d7f3e944",
 *    "term":42,"seq":7,"node":"node-a","ts":1767225600123,"data":{...}}
 *
 *  - "gen" (optional, 16 lowercase hex digits, not all zeros) is the
 *    sender's cluster generation (actors/lease.h, GENERATION): one life of
 *    the state bucket, so that (gen, term) never repeats even when terms do
 *    (both buckets lost). It is absent when the sender knows none yet (a
 *    node that has not read the state store) or predates generations; a
 *    receiver then judges the message by its term alone, as before. The
 *    codec only carries it: which generation is current is the state
 *    store's to say, and the member fences on it (member_internal.h,
 *    "Generations"). Encode omits it for 0, so old peers' messages and ours
 *    without one are byte for byte what they were.
 *
 *  - events: type is the event's DESIGN name; the header is the event's own
 *    (cluster, term, emitting node, per-term seq, wall-clock ts); data is
 *    DESIGN 2's table plus our extras, in this key order:
 *      NodeJoined         {node,address,zone,incarnation,map_version,[nonce]}
 *      NodeDraining       {node}            NodeLeft {node}
 *      NodeFailed         {node,silent_ms}
 *      LeaderElected      {leader,term,ttl_ms}
 *      LeaseRenewed       {leader,term,map_version,topology_version}
 *      LeadershipLost     {leader,term,reason}
 *      ShardAssigned      {map_version,shards:[{shard,owners:[..]},..]}
 *      ShardMigrated      {map_version,reason,moves:[{shard,from,to},..]}
 *      RebalanceStarted   {reason,from_version,moves_planned}
 *      RebalanceCompleted {map_version,moved,duration_ms}
 *    A batch (shards, moves) holds 1..AETHER_EVENT_BATCH_MAX (1024) entries,
 *    each naming a distinct shard; its node ids fill the event's node table
 *    in order of first use (events.h), so decode(encode(x)) is x. *  - commands: type is the command's name, node the sender, term the
 *    sender's highest seen term, seq 0; data per aether_command:
 *      JoinCluster {node,address,zone,incarnation,[map_term],[nonce],
 *                   shard_count,replication,wire_min,wire_max,params}
 *                                                    LeaveCluster {node}
 *      MarkNodeFailed {node,silent_ms,[force],[incarnation]}   ElectLeader {candidate}
 *      AssignShards {}   RebalanceShards {reason}
 *    JoinCluster's last five fields are its admission terms (events.h,
 *    aether_admission): shard_count 1..65536, replication 1..7, wire_min
 *    <= wire_max in 1..65535, params 16 lowercase hex digits. They come all
 *    together or not at all: a node that predates admission sends none,
 *    which decodes as terms of zeros (shard_count 0) and which the leader
 *    refuses for a new admission (aether_admission_check) while it still
 *    acknowledges an established member's keep-alive (topology.h). Some
 *    but not all of them is a bad_field refusal; so is any out of range.
 *    Encode omits all five when shard_count is 0 (canonical either way).
 *    map_term (the term of the map the joiner holds) is optional: sent only
 *    when not 0, absent decodes as 0 (what senders that predate it send).
 *    So is nonce (the joining process's nonce, 1..2^63-1: the leader
 *    assigns incarnations by it, topology.h), in JoinCluster and as the
 *    last field of NodeJoined.
 *  - "ShardReleased" (internal command, aether_release_ack), seq 0:
 *      {shard,from,map_version,term}
 *  - "Heartbeat", seq 0: {node,incarnation}
 *  - the reply to a command, without header:
 *      {"v":1,"type":"Reply","status":"ENOTLEADER","reason":"not leader; ..."}
 *    status is an aether_status_str name ("OK" included), reason may be "".
 *
 * Encoding is canonical: compact, keys in the orders above, every field
 * always present (an absent zone is ""). So for every kind
 *     encode(decode(encode(x))) == encode(x), byte for byte,
 * and encode refuses (AETHER_EINVAL, naming the field) any value decode
 * would refuse under default limits, so what we send we also accept.
 *
 * Decoding is strict, because anything on the wire may be malformed, forged
 * or replayed by a deposed leader. In order:
 *  1. size above limits->max_bytes: refused before parsing (oversized);
 *  2. jansson with JSON_REJECT_DUPLICATES: invalid JSON, duplicate keys,
 *     trailing bytes, nesting deeper than jansson's 2048 (malformed); an
 *     integer beyond 2^63-1 (bad_field: jansson cannot name the field);
 *  3. a root that is not an object (malformed); "v" missing or not 1, "type"
 *     missing or unknown (unknown_type);
 *  4. each field, envelope first then data: unknown keys, missing keys,
 *     wrong JSON types, integers out of range (u64 fields 0..2^63-1, u32
 *     fields 0..2^32-1, shard < min(limits->shard_count, 65536), seq 0 where
 *     it must be), invalid NodeIds / cluster names / zones / addresses,
 *     reasons longer than AETHER_REASON_MAX (replies:
 *     AETHER_CODEC_REPLY_REASON_MAX) or holding control bytes, owners more
 *     than AETHER_REPLICATION_MAX or duplicated, a batch empty, longer than
 *     AETHER_EVENT_BATCH_MAX or naming a shard twice, an entry with unknown
 *     or missing keys, a Heartbeat or ShardReleased
 *     speaking for a node other than its sender (bad_field);
 *  5. only once the message is well formed: a cluster other than
 *     limits->cluster (wrong_cluster), then a fencing term below
 *     limits->min_term (stale_term, AETHER_ESTALE). The fencing term is the
 *     envelope term of an event and data.term of a ShardReleased (the term of
 *     the map it acknowledges). Commands and heartbeats are not fenced here:
 *     a joining node legitimately knows no term yet; their handlers judge.
 * Every refusal is AETHER_EINVAL (AETHER_ESTALE for 5's term) with an
 * aether_err naming the field path, e.g. "data.shards[0].owners[2]: duplicate
 * owner node-a", "term: -1 is not a non-negative integer", "v: unsupported version
 * 2". Text copied from the input into a message (unknown keys and types) is
 * cut short and stripped of non-printable bytes, so a forged message cannot
 * forge log lines.
 *
 * Why it cannot crash or leak: the input is bounded before jansson sees it,
 * jansson bounds the nesting depth, every string is copied only after its
 * length is checked against the destination, and the parsed tree has one
 * owner released on the single exit path of decode.
 *
 * Threading: every function is pure over its arguments and may be called
 * from any thread. An aether_codec_stats may be shared by any number of
 * threads decoding at once: its counters are relaxed atomics (totals, not a
 * consistent snapshot) and its log limiter is lock-free.
 */
#ifndef AETHER_CODEC_H
#define AETHER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "node.h"
#include "node_id.h"
#include "status.h"
#include "transport.h"

#define AETHER_CODEC_VERSION 1
AETHER_STATIC_ASSERT(AETHER_CODEC_VERSION == AETHER_WIRE_VERSION_ENVELOPE,
                     "the codec writes the envelope of the wire version the members announce "
                     "(events.h: wire version 2 changed the map, not the envelope)");
/* Default input limit; DESIGN 4 "oversized": NATS's default max_payload.
 * The largest canonical message is a ShardAssigned of AETHER_EVENT_BATCH_MAX
 * shards with AETHER_REPLICATION_MAX owners of 64-byte ids, about 494 KiB
 * (test_codec checks it fits); every other kind is under 1 KiB. */
#define AETHER_CODEC_MAX_BYTES_DEFAULT ((size_t)1 << 20)
/* Longest reply reason; longer reasons are cut by the encoder's caller. */
#define AETHER_CODEC_REPLY_REASON_MAX 255u

/* Wire type names of the kinds that are neither events nor commands. */
#define AETHER_CODEC_TYPE_RELEASE "ShardReleased"
#define AETHER_CODEC_TYPE_HEARTBEAT "Heartbeat"
#define AETHER_CODEC_TYPE_REPLY "Reply"

/* ---- statistics ---------------------------------------------------------- */

/* Why a message was refused; one counter each. */
typedef enum aether_codec_reject {
    AETHER_CODEC_REJECT_MALFORMED = 0, /* not JSON, duplicate keys, root not an object */
    AETHER_CODEC_REJECT_OVERSIZED,     /* above limits->max_bytes, never parsed */
    AETHER_CODEC_REJECT_UNKNOWN_TYPE,  /* "v" or "type" missing, unsupported or unknown */
    AETHER_CODEC_REJECT_BAD_FIELD,     /* a field missing, unknown, mistyped or out of range */
    AETHER_CODEC_REJECT_STALE_TERM,    /* fencing term below limits->min_term */
    AETHER_CODEC_REJECT_WRONG_CLUSTER, /* cluster other than limits->cluster */
    AETHER_CODEC_REJECT_UNAUTHENTICATED, /* with a cluster secret: tag missing, wrong, stale or
                                            replayed (transport/auth.h; counted by the NATS
                                            transport and KV stores, never by the decoder) */
    AETHER_CODEC_REJECT_COUNT_
} aether_codec_reject;

/* "malformed", "oversized", "unknown_type", "bad_field", "stale_term",
 * "wrong_cluster", "unauthenticated" (metric labels); "?" out of range. */
const char *aether_codec_reject_name(aether_codec_reject r);

typedef struct aether_codec_stats {
    uint64_t decoded;                             /* atomic, relaxed: messages accepted */
    uint64_t rejected[AETHER_CODEC_REJECT_COUNT_]; /* atomic, relaxed: refusals by class */
    aether_log_ratelimit log_limit;               /* lock-free: one WARN line per second */
    aether_clock *clock;                          /* immutable after init: the limiter's time */
} aether_codec_stats;

/* Zeroes the counters. clock NULL = the real clock; it must outlive stats. */
void aether_codec_stats_init(aether_codec_stats *stats, aether_clock *clock);
uint64_t aether_codec_stats_decoded(const aether_codec_stats *stats);
uint64_t aether_codec_stats_rejected(const aether_codec_stats *stats, aether_codec_reject r);
/* Sum of every refusal class. */
uint64_t aether_codec_stats_rejected_total(const aether_codec_stats *stats);

/* ---- decoding limits ----------------------------------------------------- */

/* A zeroed struct means the defaults, field by field. Borrowed for the call. */
typedef struct aether_codec_limits {
    size_t max_bytes;          /* 0 = AETHER_CODEC_MAX_BYTES_DEFAULT */
    uint32_t shard_count;      /* 0 = no map known: shard < AETHER_SHARD_COUNT_MAX */
    const char *cluster;       /* NULL = any valid cluster name */
    aether_term min_term;      /* 0 = no fencing here (see step 5) */
    aether_codec_stats *stats; /* NULL = neither counted nor logged */
} aether_codec_limits;

/* ---- messages ------------------------------------------------------------ */

typedef enum aether_codec_kind {
    AETHER_CODEC_EVENT = 1,
    AETHER_CODEC_COMMAND,
    AETHER_CODEC_RELEASE,
    AETHER_CODEC_HEARTBEAT,
    AETHER_CODEC_REPLY,
} aether_codec_kind;

/* The envelope header (everything but v, type and data). */
typedef struct aether_codec_header {
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    uint64_t generation; /* "gen": the sender's generation; 0 = absent */
    aether_term term;    /* the sender's term (events: the emitter's) */
    uint64_t seq;        /* events: per-term sequence; 0 for every other kind */
    aether_node_id node; /* the sender (events: the emitting node) */
    uint64_t ts_ms;      /* the sender's wall clock, ms since the Unix epoch */
} aether_codec_header;

typedef struct aether_codec_heartbeat {
    aether_node_id node; /* always the sender */
    uint64_t incarnation;
} aether_codec_heartbeat;

typedef struct aether_codec_reply {
    aether_status status;
    char reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
} aether_codec_reply;

/* A decoded message. Release with aether_codec_msg_fini. */
typedef struct aether_codec_msg {
    aether_codec_kind kind;
    /* COMMAND, RELEASE, HEARTBEAT: the envelope. EVENT: a copy of the event's
     * header. REPLY: zeroed. */
    aether_codec_header hdr;
    union {
        aether_event *event;     /* EVENT: a new event with one reference, owned by msg */
        aether_command command;  /* COMMAND: cluster/term/sender as in hdr; a JoinCluster's
                                    info is Active with joined_at_ms 0 (not on the wire) */
        aether_release_ack release;
        aether_codec_heartbeat heartbeat;
        aether_codec_reply reply;
    } u;
} aether_codec_msg;

/* Releases what msg owns (the event of an EVENT) and zeroes it. To keep the
 * event, take it first: `e = msg.u.event; msg.u.event = NULL;`. NULL is fine. */
void aether_codec_msg_fini(aether_codec_msg *msg);

/* ---- encoding -------------------------------------------------------------
 * Each encoder, on AETHER_OK, sets *out to a NUL-terminated malloc'd string
 * (free with free()) and *len to its length (len may be NULL). Otherwise *out
 * is NULL and the status is AETHER_EINVAL (a field decode would refuse, named
 * in err) or AETHER_ENOMEM. */

aether_status aether_codec_encode_event(const aether_event *e, char **out, size_t *len,
                                        aether_err *err);
/* The header comes from the command (cluster, term, sender), seq 0, ts_ms. */
aether_status aether_codec_encode_command(const aether_command *c, uint64_t ts_ms, char **out,
                                          size_t *len, aether_err *err);
/* hdr->seq must be 0; the ack's from must be hdr->node. */
aether_status aether_codec_encode_release(const aether_codec_header *hdr,
                                          const aether_release_ack *ack, char **out, size_t *len,
                                          aether_err *err);
/* hdr->seq must be 0; the heartbeat's node is hdr->node. */
aether_status aether_codec_encode_heartbeat(const aether_codec_header *hdr, uint64_t incarnation,
                                            char **out, size_t *len, aether_err *err);
/* reason NULL = "". */
aether_status aether_codec_encode_reply(aether_status status, const char *reason, char **out,
                                        size_t *len, aether_err *err);
/* Any decoded message back to its bytes (dispatches on msg->kind). */
aether_status aether_codec_encode_msg(const aether_codec_msg *msg, char **out, size_t *len,
                                      aether_err *err);

/* ---- decoding ------------------------------------------------------------ */

/* Decodes len bytes at buf (need not be NUL-terminated; buf may be NULL only
 * when len is 0) under limits (NULL = all defaults). On AETHER_OK *out holds
 * the message (see aether_codec_msg for who owns what) and limits->stats, if
 * any, counts it decoded. Otherwise *out is zeroed, the status is
 * AETHER_EINVAL or AETHER_ESTALE (or AETHER_ENOMEM), err explains, and
 * limits->stats counts the refusal by class and logs one rate-limited WARN
 * line (module "codec"); AETHER_ENOMEM is ours, not the sender's, and is
 * neither counted nor logged. */
aether_status aether_codec_decode(const void *buf, size_t len, const aether_codec_limits *limits,
                                  aether_codec_msg *out, aether_err *err);

#endif
