/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routing.c: lookups over the RCU-published ShardMap (actors layer). Any
 * thread for lookups; publish/fini by the slot's single writer. See
 * routing.h for the protocol.
 *
 * Every lookup follows the same shape: read lock, load the map once, copy
 * out, unlock. Nothing read from the map is used after the unlock, which is
 * what makes freeing it after a grace period safe.
 */
#include "routing.h"

#include <string.h>

#include "keyhash.h"

void aether_shardmap_slot_init(aether_shardmap_slot *slot)
{
    AETHER_ASSERT(slot != NULL);
    aether_snapshot_slot_init(&slot->snap);
    slot->published_version_writer = 0;
    slot->published_writer = false;
}

void aether_shardmap_slot_fini(aether_shardmap_slot *slot)
{
    AETHER_ASSERT(slot != NULL);
    aether_snapshot_slot_fini(&slot->snap);
    slot->published_writer = false;
}

aether_status aether_shardmap_slot_publish(aether_shardmap_slot *slot, aether_shardmap **map)
{
    AETHER_ASSERT(slot != NULL && map != NULL && *map != NULL);
    aether_shardmap *next = *map;
    AETHER_ASSERT(next->snap.free_fn != NULL); /* built by aether_shardmap_build */
    /* The version comes from the writer's own record, not from the current
     * map: once published, a map is only read inside read-side sections
     * (that is what its grace period, and TSan's model of it, covers). */
    if (slot->published_writer && next->version <= slot->published_version_writer)
        return AETHER_ESTALE;
    slot->published_version_writer = next->version;
    slot->published_writer = true;
    aether_snapshot_publish(&slot->snap, &next->snap);
    *map = NULL;
    return AETHER_OK;
}

void aether_shardmap_slot_new_generation(aether_shardmap_slot *slot)
{
    AETHER_ASSERT(slot != NULL);
    slot->published_writer = false; /* the next version is not compared */
}

aether_status aether_route_key(const aether_shardmap_slot *slot, const void *key, size_t len,
                               aether_shard_route *out)
{
    /* Hash outside the read section: it does not depend on the map. */
    uint64_t hash = aether_key_hash(key, len);
    aether_status st;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(slot);
    if (AETHER_UNLIKELY(m == NULL))
        st = AETHER_ENOTFOUND;
    else
        st = aether_route_fill(m, aether_key_shard_of_hash(hash, m->shard_count), out);
    aether_rcu_read_unlock();
    return st;
}

aether_status aether_route_shard(const aether_shardmap_slot *slot, uint32_t shard,
                                 aether_shard_route *out)
{
    aether_status st;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(slot);
    if (m == NULL)
        st = AETHER_ENOTFOUND;
    else if (shard >= m->shard_count)
        st = AETHER_EINVAL;
    else
        st = aether_route_fill(m, shard, out);
    aether_rcu_read_unlock();
    return st;
}

aether_status aether_route_owners(const aether_shardmap_slot *slot, uint32_t shard,
                                  aether_node_id *ids, size_t max, size_t *n_out)
{
    AETHER_ASSERT(n_out != NULL && (ids != NULL || max == 0));
    aether_status st = AETHER_OK;
    *n_out = 0;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(slot);
    if (m == NULL) {
        st = AETHER_ENOTFOUND;
    } else if (shard >= m->shard_count) {
        st = AETHER_EINVAL;
    } else {
        const aether_shard_entry *e = aether_shardmap_entry(m, shard);
        const aether_node_index *row = aether_shardmap_owners(m, shard);
        size_t n = e->owner_count;
        for (size_t j = 0; j < n && j < max; j++)
            ids[j] = m->nodes[row[j]];
        *n_out = n;
        if (n > max)
            st = AETHER_EFULL;
    }
    aether_rcu_read_unlock();
    return st;
}

static aether_status node_shards(const aether_shardmap_slot *slot, const aether_node_id *node,
                                 uint32_t *out, size_t max, size_t *n_out, uint64_t *version_out,
                                 bool primary_only)
{
    AETHER_ASSERT(node != NULL && n_out != NULL && (out != NULL || max == 0));
    aether_status st = AETHER_OK;
    *n_out = 0;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(slot);
    if (m == NULL) {
        st = AETHER_ENOTFOUND;
        goto out;
    }
    if (version_out != NULL)
        *version_out = m->version;
    aether_node_index idx = aether_shardmap_find_node(m, node);
    if (idx == AETHER_NODE_INDEX_NONE) {
        st = AETHER_ENOTFOUND;
        goto out;
    }
    size_t n;
    const uint32_t *list = primary_only ? aether_shardmap_node_primary_shards(m, idx, &n)
                                        : aether_shardmap_node_owner_shards(m, idx, &n);
    if (n > 0 && max > 0)
        memcpy(out, list, (n < max ? n : max) * sizeof(*out));
    *n_out = n;
    if (n > max)
        st = AETHER_EFULL;
out:
    aether_rcu_read_unlock();
    return st;
}

aether_status aether_route_node_shards(const aether_shardmap_slot *slot,
                                       const aether_node_id *node, uint32_t *out, size_t max,
                                       size_t *n_out, uint64_t *version_out)
{
    return node_shards(slot, node, out, max, n_out, version_out, false);
}

aether_status aether_route_node_primary_shards(const aether_shardmap_slot *slot,
                                               const aether_node_id *node, uint32_t *out,
                                               size_t max, size_t *n_out,
                                               uint64_t *version_out)
{
    return node_shards(slot, node, out, max, n_out, version_out, true);
}

aether_status aether_route_map_version(const aether_shardmap_slot *slot, uint64_t *version_out)
{
    AETHER_ASSERT(version_out != NULL);
    aether_status st = AETHER_OK;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(slot);
    if (m == NULL)
        st = AETHER_ENOTFOUND;
    else
        *version_out = m->version;
    aether_rcu_read_unlock();
    return st;
}
