/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.h: the eleven domain events and the six commands (actors layer).
 *
 * An event is an immutable, reference-counted record (engine/ref.h) so the
 * bus can hand one object to many actors. Every event carries the header of
 * DESIGN 2: type, cluster, term, emitting node, per-term sequence number,
 * wall-clock timestamp, and its data. Leader-issued events of term T come
 * only from the leader of T with seq 1, 2, 3, ... without gaps within T;
 * LeaseRenewed, a heartbeat every ttl/4 that the event stream does not
 * store, carries seq 0: outside the numbering, so the stored events of a
 * term have no gaps either (member.c, member_emit).
 *
 * A command is a plain value: the request a node sends, with the sender's
 * view of the term so a handler can refuse stale senders.
 *
 * Names are DESIGN's, exactly ("NodeJoined", "JoinCluster"): they travel on
 * the wire as `type` and in subjects (aether.<cluster>.evt.<Type>).
 *
 * Threading: an event is built by one thread, then never written again (it
 * may be read from any thread while a reference is held). Commands are values.
 */
#ifndef AETHER_EVENTS_H
#define AETHER_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"
#include "node_id.h"
#include "ref.h"
#include "shardmap.h"
#include "status.h"

#define AETHER_CLUSTER_NAME_MAX 64u
#define AETHER_REASON_MAX 63u

typedef enum aether_event_type {
    AETHER_EVT_NODE_JOINED = 1,
    AETHER_EVT_NODE_DRAINING,
    AETHER_EVT_NODE_LEFT,
    AETHER_EVT_NODE_FAILED,
    AETHER_EVT_LEADER_ELECTED,
    AETHER_EVT_LEASE_RENEWED,
    AETHER_EVT_LEADERSHIP_LOST,
    AETHER_EVT_SHARD_ASSIGNED,
    AETHER_EVT_SHARD_MIGRATED,
    AETHER_EVT_REBALANCE_STARTED,
    AETHER_EVT_REBALANCE_COMPLETED,
    AETHER_EVT_COUNT_
} aether_event_type;

/* DESIGN's name ("NodeJoined"); "?" when out of range. */
const char *aether_event_type_name(aether_event_type t);
/* The inverse; AETHER_EINVAL (with err naming the input) if unknown. */
aether_status aether_event_type_parse(const char *name, aether_event_type *out, aether_err *err);
/* Bus topic of an event type (engine/bus.h topics 0..63). */
static inline uint32_t aether_event_topic(aether_event_type t) { return (uint32_t)t; }

/* DESIGN 2, event table: ShardAssigned and ShardMigrated carry at most this
 * many entries; a leader with more splits them over several events (a
 * bootstrap of 65 536 shards is 64 ShardAssigned). */
#define AETHER_EVENT_BATCH_MAX 1024u
/* Distinct node ids one batch can name: every owner of every entry. */
#define AETHER_EVENT_BATCH_NODES_MAX (AETHER_EVENT_BATCH_MAX * AETHER_REPLICATION_MAX)
AETHER_STATIC_ASSERT(AETHER_EVENT_BATCH_NODES_MAX <= UINT16_MAX, "node indices fit in u16");

/* One ShardAssigned entry: the shard and its owners (primary first), as
 * indices into the event's node table. */
typedef struct aether_shard_owners {
    uint32_t shard;
    uint16_t owner_count;                      /* 0..AETHER_REPLICATION_MAX */
    uint16_t owners[AETHER_REPLICATION_MAX];   /* < node_count */
} aether_shard_owners;

/* One ShardMigrated entry: the shard and its old and new primary, as
 * indices into the event's node table. */
typedef struct aether_shard_move {
    uint32_t shard;
    uint16_t from, to;                         /* < node_count */
} aether_shard_move;

typedef struct aether_event {
    aether_ref ref;                            /* FIRST: refcount, frees the event */
    aether_event_type type;
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    aether_term term;                          /* term of the emitter's leadership view */
    uint64_t generation;                       /* the emitter's cluster generation (lease.h,
                                                  GENERATION); 0 = not said (an emitter
                                                  from before generations) */
    aether_node_id node;                       /* the emitting node */
    uint64_t seq;                              /* per-term sequence, >= 1 when leader-issued;
                                                  0 for LeaseRenewed */
    uint64_t ts_ms;                            /* wall clock of the emitter */
    /* ShardAssigned and ShardMigrated: the node ids their entries name, each
     * once, in order of first use (entries hold indices into it). Owned by
     * the event (freed with it); NULL and 0 for every other type. */
    aether_node_id *nodes;
    uint32_t node_count;
    union {
        struct {
            aether_node_id node;
            char address[AETHER_NODE_ADDRESS_LEN_MAX + 1];
            char zone[AETHER_NODE_ZONE_LEN_MAX + 1];
            uint64_t incarnation;
            uint64_t map_version; /* the leader's map when it admitted the node: a node
                                     coming back acquires only from later maps */
            uint64_t nonce;       /* the admitted process's nonce (node.h; 0 = not said) */
        } node_joined;
        struct {
            aether_node_id node;
        } node_draining, node_left;
        struct {
            aether_node_id node;
            uint64_t silent_ms;
        } node_failed;
        struct {
            aether_node_id leader;
            aether_term term;
            uint64_t ttl_ms;
        } leader_elected;
        struct {
            aether_node_id leader;
            aether_term term;
            uint64_t map_version;      /* the leader's map: followers check theirs is current */
            uint64_t topology_version; /* the leader's topology, likewise */
        } lease_renewed;
        struct {
            aether_node_id leader;
            aether_term term;
            char reason[AETHER_REASON_MAX + 1];
        } leadership_lost;
        struct {
            uint64_t map_version;
            uint32_t count;               /* 1..AETHER_EVENT_BATCH_MAX */
            aether_shard_owners *shards;  /* [count], in the event's allocation */
        } shard_assigned;
        struct {
            uint64_t map_version;
            char reason[AETHER_REASON_MAX + 1]; /* "failover", "handoff": one per event */
            uint32_t count;               /* 1..AETHER_EVENT_BATCH_MAX */
            aether_shard_move *moves;     /* [count], in the event's allocation */
        } shard_migrated;
        struct {
            char reason[AETHER_REASON_MAX + 1];
            uint64_t from_version;
            uint32_t moves_planned;
        } rebalance_started;
        struct {
            uint64_t map_version;
            uint32_t moved;
            uint64_t duration_ms;
        } rebalance_completed;
    } data;
} aether_event;

/* A zeroed event of the given type with one reference; NULL when out of
 * memory. Fill it, then share it (never write after sharing). */
aether_event *aether_event_create(aether_event_type type);
static inline aether_event *aether_event_retain(aether_event *e)
{
    aether_ref_retain(&e->ref);
    return e;
}
/* NULL is fine. */
static inline void aether_event_release(aether_event *e)
{
    if (e != NULL)
        aether_ref_release(&e->ref);
}

/* A zeroed ShardAssigned or ShardMigrated with room for count entries
 * (1..AETHER_EVENT_BATCH_MAX, all of them counted: fill each) and an empty
 * node table; NULL when out of memory. */
aether_event *aether_event_create_batch(aether_event_type type, uint32_t count);

/* The node table of a batch under construction, with a hash index so that
 * adding is O(1) at any cluster size. One thread; _fini frees the index (the
 * table belongs to the event). */
typedef struct aether_event_nodes_ix {
    aether_event *e;   /* the batch being filled (not owned) */
    uint16_t *slots;   /* open addressing, 0 = empty, else index + 1 */
    uint32_t mask;     /* slot count - 1 */
    uint32_t cap;      /* of e->nodes */
} aether_event_nodes_ix;
aether_status aether_event_nodes_ix_init(aether_event_nodes_ix *ix, aether_event *e);
void aether_event_nodes_ix_fini(aether_event_nodes_ix *ix);
/* The index of id in the node table, added if new. AETHER_ENOMEM; AETHER_EFULL
 * past AETHER_EVENT_BATCH_NODES_MAX distinct ids. id must be valid. */
aether_status aether_event_nodes_ix_add(aether_event_nodes_ix *ix, const aether_node_id *id,
                                        uint16_t *index);

/* Node i of a batch's table (i < node_count). */
static inline const aether_node_id *aether_event_node(const aether_event *e, uint32_t i)
{
    AETHER_ASSERT(i < e->node_count);
    return &e->nodes[i];
}

/* Value equality: the struct without its refcount and pointers, byte for
 * byte, then what the pointers point at (a batch's entries and node
 * table). For events built from zeroed memory, as aether_event_create and
 * every decoder make them (padding compares equal). Tests and fuzzers use
 * it to check that decode(encode(e)) == e. */
bool aether_event_equal(const aether_event *a, const aether_event *b);

/* Entries of a batch event (ShardAssigned, ShardMigrated); 1 for any other. */
uint32_t aether_event_entry_count(const aether_event *e);

/* Copies s into a fixed reason buffer, truncating; for the data.reason fields. */
void aether_event_set_reason(char dst[AETHER_REASON_MAX + 1], const char *s);

/* One line a person can read: "NodeJoined term=3 seq=7 node=a data{node=b ...}".
 * A batch shows its count and its first entries ("shards=1024 [0:a,b 1:b,c ...]"). 
 * Returns the length that would have been written (snprintf rules). */
int aether_event_format(const aether_event *e, char *buf, size_t cap);

/* ---- commands ------------------------------------------------------------ */

/* The wire versions this build speaks: the shapes of everything nodes
 * exchange (envelopes, stored and published values). A joiner names its
 * range in JoinCluster; the leader admits it only if its own version is
 * inside (docs/wire.md, "Admission"), so a mixed cluster never runs.
 *   1  envelopes "v":1; the ShardMap as JSON, one object per shard (format 1)
 *   2  envelopes unchanged ("v":1); the ShardMap in format 2 (shardmap_codec.h);
 *      ShardAssigned/ShardMigrated in batches of up to AETHER_EVENT_BATCH_MAX
 *      entries (one shard each before), LeaseRenewed with seq 0
 * The envelope stayed at "v":1 so that a node of version 1 still decodes
 * the refusal of its join and logs why (AETHER_WIRE_VERSION_ENVELOPE). */
#define AETHER_WIRE_VERSION 2u
#define AETHER_WIRE_VERSION_MIN 2u
#define AETHER_WIRE_VERSION_MAX 2u
/* The last wire version whose ShardMap was format 1 (its nodes are refused
 * with that reason). */
#define AETHER_WIRE_VERSION_MAP_FORMAT_1 1u
/* The envelope's "v" in every wire version so far (transport/codec.h). */
#define AETHER_WIRE_VERSION_ENVELOPE 1u
/* Upper bound of a wire version on the wire (range checks). */
#define AETHER_WIRE_VERSION_LIMIT 65535u

/* aether_admission (what every member must share) is in node.h: a NodeInfo
 * record carries the terms it was admitted with. */

/* AETHER_OK if a joiner with `joiner` may serve in a cluster run with
 * `cluster`; AETHER_EINCOMPATIBLE with the first difference as a sentence
 * ("shard_count 1024 differs from the cluster's 64") otherwise. Checked in
 * this order: wire versions, shard_count, replication, params. A joiner
 * without terms (shard_count 0: it predates admission) is refused with
 * AETHER_EINVAL ("... predates admission checks; upgrade it"): its own
 * decoder knows that status, not EINCOMPATIBLE. */
aether_status aether_admission_check(const aether_admission *cluster,
                                     const aether_admission *joiner, aether_err *why);

typedef enum aether_command_type {
    AETHER_CMD_JOIN_CLUSTER = 1,
    AETHER_CMD_LEAVE_CLUSTER,
    AETHER_CMD_MARK_NODE_FAILED,
    AETHER_CMD_ELECT_LEADER,
    AETHER_CMD_ASSIGN_SHARDS,
    AETHER_CMD_REBALANCE_SHARDS,
    AETHER_CMD_COUNT_
} aether_command_type;

const char *aether_command_type_name(aether_command_type t);
aether_status aether_command_type_parse(const char *name, aether_command_type *out,
                                        aether_err *err);

typedef struct aether_command {
    aether_command_type type;
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    aether_term term;      /* the highest term the sender has seen (0 = none) */
    uint64_t generation;   /* the sender's generation (0 = none known / not said) */
    aether_node_id sender;
    union {
        struct {
            aether_node_info info; /* status is ignored: a join makes the node Active */
            aether_admission terms; /* what the joiner must share with the cluster */
            aether_term map_term;   /* the term of the map the joiner holds (it installs only
                                       maps of its own terms), 0 = none: a leader that took
                                       over with no stored map learns from it that the
                                       joiner's terms are the cluster's (member_cluster.c) */
        } join;
        struct {
            aether_node_id node;
        } leave;
        struct {
            aether_node_id node;
            uint64_t silent_ms;
            bool force; /* an operator removes a node the leader still hears (aetherctl
                           fail --force); on the wire only when true. Without it the
                           leader fails the node only if its own record agrees. */
            uint64_t incarnation; /* the incarnation the asker saw (aetherctl fail reads the
                                     stored topology): refused if the node is at another
                                     one now (it rejoined since). 0 = any; on the wire only
                                     when not 0 */
        } mark_failed;
        struct {
            aether_node_id candidate;
        } elect;
        struct {
            char reason[AETHER_REASON_MAX + 1];
            bool release_brake; /* an operator releases the rebalance brake (the reason says
                                   who asked); on the wire only when true */
        } rebalance; /* AssignShards carries no data */
    } data;
} aether_command;

/* Cluster names use the NodeId alphabet and length (they go into NATS
 * subjects and bucket names). */
aether_status aether_cluster_name_validate(const char *name, aether_err *err);

#endif
