/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap.h: the immutable ShardMap value object and its builder (actors
 * layer).
 *
 * A ShardMap (DESIGN 2) says, for a map version and the term that produced
 * it, which nodes own each of shard_count shards: a primary first, then up
 * to replication-1 replicas, all distinct, and whether the shard is moving
 * (handoff in progress, with its target). It is never mutated once built:
 * new maps are built whole and published through RCU (routing.h), which is
 * why aether_snapshot is its first member.
 *
 * DESIGN
 *  1. A builder collects version, term, nodes and per-shard owners. Nodes are
 *     interned (hash table) and named by builder-local indices while building.
 *  2. aether_shardmap_build sorts the node table by id (so equal maps have
 *     equal layouts regardless of insertion order), remaps every index,
 *     lays the whole map out in ONE allocation, precomputes the per-node
 *     index and runs aether_shardmap_validate before handing the map out:
 *     a map that exists is a valid map.
 *  3. Layout for the hot path: `shards[]` holds one 8-byte entry per shard
 *     with the primary's node index, the handoff target, the owner count and
 *     the state, so a key lookup reads one entry (1024 shards = 8 KiB, in
 *     L1). The full owner lists sit in a parallel row-per-shard array
 *     `owners[shard * replication + j]`; the node table holds the ids.
 *  4. Per-node index (CSR): for node n, primary_shards[primary_start[n] ..
 *     primary_start[n+1]) are the shards where n is primary, owner_shards
 *     [owner_start[n] .. owner_start[n+1]) those where n is any owner, both
 *     ascending. GetNodeShards is O(log nodes + that node's shards).
 *
 * Rules checked by aether_shardmap_validate (errors name the field):
 *   shard_count 1..AETHER_SHARD_COUNT_MAX, replication 1..AETHER_REPLICATION_MAX,
 *   nodes distinct, valid, ascending, at most AETHER_SHARDMAP_NODES_MAX;
 *   per shard: owner_count <= replication; owners distinct and in range;
 *   owner_count 0 only when the map has no nodes ("shards[7]: no primary
 *   owner"); stable => no target; moving => a target that is a node and not
 *   the primary. Health of owners (I3) is not the map's business: the map
 *   does not know the topology (actors/invariants checks that).
 *
 * Threading: a builder belongs to one thread at a time. A built map is
 * immutable: any thread may read it. An unpublished map is freed with
 * aether_shardmap_destroy by its owner; once published (routing.h) the slot
 * owns it and frees it after an RCU grace period, and readers may only touch
 * it inside an RCU read-side section.
 */
#ifndef AETHER_SHARDMAP_H
#define AETHER_SHARDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "assertion.h"
#include "keyhash.h"
#include "node.h"
#include "node_id.h"
#include "snapshot.h"
#include "status.h"

#define AETHER_REPLICATION_MAX 7u
#define AETHER_SHARDMAP_NODES_MAX 65535u

/* A node's position in a map's (sorted) node table. */
typedef uint16_t aether_node_index;
#define AETHER_NODE_INDEX_NONE ((aether_node_index)0xFFFFu)

AETHER_STATIC_ASSERT(AETHER_SHARD_COUNT_MAX == 65536u, "shard ids fit in 16 bits");
AETHER_STATIC_ASSERT(AETHER_SHARDMAP_NODES_MAX == AETHER_NODE_INDEX_NONE,
                     "every real index is below the NONE marker");
AETHER_STATIC_ASSERT(AETHER_REPLICATION_MAX >= 1 && AETHER_REPLICATION_MAX <= 255,
                     "owner_count fits in uint8_t");

typedef enum aether_shard_state {
    AETHER_SHARD_STABLE = 0, /* served by its primary */
    AETHER_SHARD_MOVING = 1, /* handoff to `to` in progress; lookups still answer the primary */
} aether_shard_state;

/* "stable" / "moving" (the JSON names); "?" out of range. */
const char *aether_shard_state_name(aether_shard_state s);

/* The hot per-shard record (8 bytes). */
typedef struct aether_shard_entry {
    aether_node_index primary; /* == owners row[0]; NONE iff owner_count == 0 */
    aether_node_index to;      /* handoff target; NONE unless state is MOVING */
    uint8_t owner_count;       /* 0..replication */
    uint8_t state;             /* aether_shard_state */
    uint16_t reserved_;        /* zero */
} aether_shard_entry;

AETHER_STATIC_ASSERT(sizeof(aether_shard_entry) == 8, "one 8-byte entry per shard");

/* Every field is immutable after aether_shardmap_build; every array lives in
 * the same allocation as the struct. */
typedef struct aether_shardmap {
    aether_snapshot snap;             /* FIRST: RCU publication (snapshot.h) */
    uint64_t version;                 /* +1 per change */
    aether_term term;                 /* term of the leader that produced it */
    uint32_t shard_count;             /* 1..AETHER_SHARD_COUNT_MAX */
    uint32_t replication;             /* R, 1..AETHER_REPLICATION_MAX */
    uint32_t node_count;              /* 0..AETHER_SHARDMAP_NODES_MAX */
    const aether_node_id *nodes;      /* [node_count], strictly ascending */
    const aether_shard_entry *shards; /* [shard_count] */
    const aether_node_index *owners;  /* [shard_count * replication], rows per shard */
    const uint32_t *primary_start;    /* [node_count + 1], offsets into primary_shards */
    const uint32_t *primary_shards;   /* shard ids, ascending per node */
    const uint32_t *owner_start;      /* [node_count + 1], offsets into owner_shards */
    const uint32_t *owner_shards;     /* shard ids, ascending per node */
} aether_shardmap;

AETHER_STATIC_ASSERT(offsetof(aether_shardmap, snap) == 0, "snapshot header first");

/* ---- read accessors (any thread that may see the map) -------------------- */

static inline const aether_shard_entry *aether_shardmap_entry(const aether_shardmap *m,
                                                              uint32_t shard)
{
    AETHER_ASSERT(shard < m->shard_count);
    return &m->shards[shard];
}

/* The owners of a shard (primary first); entry->owner_count of them. */
static inline const aether_node_index *aether_shardmap_owners(const aether_shardmap *m,
                                                              uint32_t shard)
{
    AETHER_ASSERT(shard < m->shard_count);
    return &m->owners[(size_t)shard * m->replication];
}

static inline const aether_node_id *aether_shardmap_node(const aether_shardmap *m,
                                                         aether_node_index index)
{
    AETHER_ASSERT(index < m->node_count);
    return &m->nodes[index];
}

/* The index of a node by id (binary search), or AETHER_NODE_INDEX_NONE. */
aether_node_index aether_shardmap_find_node(const aether_shardmap *m, const aether_node_id *id);

/* Shards where node `index` is primary / any owner, ascending; *count_out set. */
static inline const uint32_t *aether_shardmap_node_primary_shards(const aether_shardmap *m,
                                                                  aether_node_index index,
                                                                  size_t *count_out)
{
    AETHER_ASSERT(index < m->node_count);
    *count_out = m->primary_start[index + 1] - m->primary_start[index];
    return &m->primary_shards[m->primary_start[index]];
}

static inline const uint32_t *aether_shardmap_node_owner_shards(const aether_shardmap *m,
                                                                aether_node_index index,
                                                                size_t *count_out)
{
    AETHER_ASSERT(index < m->node_count);
    *count_out = m->owner_start[index + 1] - m->owner_start[index];
    return &m->owner_shards[m->owner_start[index]];
}

/* True when the map gives node id a role: an owner (primary or replica) of
 * some shard, or the target of a handoff. A node merely listed in the node
 * table (it owned something in an earlier version) is not named. O(log
 * nodes + shard_count). */
bool aether_shardmap_names_node(const aether_shardmap *m, const aether_node_id *id);

/* Checks every rule listed at the top, plus the per-node index. AETHER_OK or
 * AETHER_EINVAL with the field named, e.g. "shards[3].owners[1]: duplicate
 * owner node-a". Built maps always pass; this is also the test oracle. */
aether_status aether_shardmap_validate(const aether_shardmap *m, aether_err *err);

/* Frees a map that was never published. NULL is a no-op. A published map
 * belongs to its slot: never destroy it yourself. */
void aether_shardmap_destroy(aether_shardmap *m);

/* An identical, unpublished copy of a built map (one memcpy of its single
 * allocation, pointers relocated): what a node keeps of a map it received.
 * NULL when out of memory. */
aether_shardmap *aether_shardmap_clone(const aether_shardmap *m);

/* Builds a map straight from its final layout, without a builder: what a
 * decoder of the compact wire shape (shardmap_codec.h) holds. nodes[0..
 * node_count) strictly ascending; rows_le: shard_count * replication
 * little-endian u16 map indices, shard-major, primary first, NONE (0xFFFF)
 * in a shard's unused slots after its owners; moving_le: moving_count
 * (u16 shard, u16 target index) little-endian pairs. The result is
 * validated as aether_shardmap_build's is (AETHER_EINVAL naming the field,
 * e.g. "shards[3].owners[1]: duplicate owner node-a"; an owner after an
 * empty slot is "shards[3].owners[2]: an owner after an empty slot").
 * AETHER_ENOMEM. On AETHER_OK *out is a valid unpublished map. */
aether_status aether_shardmap_build_le(uint64_t version, aether_term term, uint32_t shard_count,
                                       uint32_t replication, const aether_node_id *nodes,
                                       uint32_t node_count, const unsigned char *rows_le,
                                       const unsigned char *moving_le, uint32_t moving_count,
                                       aether_shardmap **out, aether_err *err);

/* ---- builder (one thread at a time) --------------------------------------- */

typedef struct aether_shardmap_builder aether_shardmap_builder;

/* A builder for a map of shard_count shards with replication R. Every shard
 * starts stable with no owners; version and term start at 0.
 * AETHER_EINVAL (counts out of range) or AETHER_ENOMEM; *out NULL then. */
aether_status aether_shardmap_builder_create(uint32_t shard_count, uint32_t replication,
                                             aether_shardmap_builder **out, aether_err *err);

/* A builder holding a copy of m (same nodes, owners, states, version and
 * term), to derive the next map. */
aether_status aether_shardmap_builder_from_map(const aether_shardmap *m,
                                               aether_shardmap_builder **out, aether_err *err);

void aether_shardmap_builder_destroy(aether_shardmap_builder *b); /* NULL is a no-op */

/* Drops from the node table every node that owns nothing and is no
 * handoff target (a node that left or failed stays in every map derived
 * from an earlier one otherwise), renumbering the builder indices. The
 * built map names the same owners. AETHER_ENOMEM leaves b unchanged. */
aether_status aether_shardmap_builder_drop_unnamed(aether_shardmap_builder *b, aether_err *err);

void aether_shardmap_builder_set_version(aether_shardmap_builder *b, uint64_t version);
void aether_shardmap_builder_set_term(aether_shardmap_builder *b, aether_term term);

/* Adds a node (idempotent: an id already present gives its existing index).
 * *index_out is a builder index, valid for this builder only (the built map
 * sorts its nodes). AETHER_EINVAL if id is not a valid NodeId or the table
 * already holds AETHER_SHARDMAP_NODES_MAX nodes; AETHER_ENOMEM. O(1) average. */
aether_status aether_shardmap_builder_add_node(aether_shardmap_builder *b,
                                               const aether_node_id *id,
                                               aether_node_index *index_out, aether_err *err);

/* The builder index of id, or AETHER_NODE_INDEX_NONE. */
aether_node_index aether_shardmap_builder_find_node(const aether_shardmap_builder *b,
                                                    const aether_node_id *id);

uint32_t aether_shardmap_builder_node_count(const aether_shardmap_builder *b);

/* Sets a shard's owners, primary first (builder indices). count 0 clears
 * them. AETHER_EINVAL for shard out of range ("shards[9]: ..."), count >
 * replication ("shards[3].owners: 3 owners, more than replication 2"), an
 * unknown index or a duplicate ("shards[3].owners[1]: duplicate owner node-a").
 * The shard is left unchanged on error. */
aether_status aether_shardmap_builder_set_owners(aether_shardmap_builder *b, uint32_t shard,
                                                 const aether_node_index *owners, size_t count,
                                                 aether_err *err);

/* Marks a shard moving to node `to` (builder index). AETHER_EINVAL for shard
 * out of range or `to` NONE/unknown ("shards[3].to: ..."). Whether `to`
 * differs from the primary is checked by build (owners may be set later). */
aether_status aether_shardmap_builder_set_moving(aether_shardmap_builder *b, uint32_t shard,
                                                 aether_node_index to, aether_err *err);

/* Marks a shard stable (clears its target). AETHER_EINVAL for shard out of range. */
aether_status aether_shardmap_builder_set_stable(aether_shardmap_builder *b, uint32_t shard,
                                                 aether_err *err);

/* Freezes the builder's content into a new map: sorts nodes, remaps,
 * computes the per-node index, validates. On AETHER_OK *out is a valid map
 * owned by the caller; otherwise *out is NULL and err says why (EINVAL,
 * ENOMEM). The builder is not changed and may be reused or destroyed. */
aether_status aether_shardmap_build(const aether_shardmap_builder *b, aether_shardmap **out,
                                    aether_err *err);

#endif
