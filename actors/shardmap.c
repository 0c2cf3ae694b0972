/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap.c: building, validating and freeing ShardMaps (actors layer).
 * See shardmap.h for the layout and the rules. A builder is used by one
 * thread at a time; a built map is immutable and freed by plain free() of its
 * single allocation (directly, or by the snapshot free_fn once published).
 */
#include "shardmap.h"

#include <stdlib.h>
#include <string.h>

struct aether_shardmap_builder {
    uint64_t version;
    aether_term term;
    uint32_t shard_count;
    uint32_t replication;
    uint32_t node_count;
    uint32_t node_cap;
    aether_node_id *nodes;      /* [node_cap], insertion order = builder index */
    uint32_t *table;            /* open addressing, [table_cap]: 0 empty, else index + 1 */
    uint32_t table_cap;         /* power of two, > 2 * node_count */
    aether_shard_entry *shards; /* [shard_count], builder indices */
    aether_node_index *owners;  /* [shard_count * replication], NONE past owner_count */
};

#define BUILDER_TABLE_CAP_MIN 16u
#define BUILDER_NODE_CAP_MIN 8u
AETHER_STATIC_ASSERT((BUILDER_TABLE_CAP_MIN & (BUILDER_TABLE_CAP_MIN - 1)) == 0,
                     "table capacity is a power of two");

const char *aether_shard_state_name(aether_shard_state s)
{
    switch (s) {
    case AETHER_SHARD_STABLE:
        return "stable";
    case AETHER_SHARD_MOVING:
        return "moving";
    }
    return "?";
}

/* ---- map ----------------------------------------------------------------- */

static void shardmap_free_snapshot(aether_snapshot *s)
{
    /* snap is the first member and the map is one allocation. */
    free(s);
}

void aether_shardmap_destroy(aether_shardmap *m)
{
    if (m == NULL)
        return;
    AETHER_ASSERT(m->snap.free_fn == shardmap_free_snapshot);
    free(m);
}

aether_shardmap *aether_shardmap_clone(const aether_shardmap *m)
{
    AETHER_ASSERT(m != NULL && m->snap.free_fn == shardmap_free_snapshot);
    /* One allocation, the owner index last (aether_shardmap_build). */
    const char *base = (const char *)m;
    const char *end = (const char *)(m->owner_shards + m->owner_start[m->node_count]);
    size_t total = (size_t)(end - base);
    char *block = malloc(total);
    if (block == NULL)
        return NULL;
    memcpy(block, base, total);
    aether_shardmap *c = (aether_shardmap *)block;
    memset(&c->snap, 0, sizeof(c->snap)); /* never published */
    c->snap.free_fn = shardmap_free_snapshot;
#define RELOCATE(field) c->field = (void *)(block + ((const char *)m->field - base))
    RELOCATE(nodes);
    RELOCATE(shards);
    RELOCATE(owners);
    RELOCATE(primary_start);
    RELOCATE(primary_shards);
    RELOCATE(owner_start);
    RELOCATE(owner_shards);
#undef RELOCATE
    return c;
}

aether_node_index aether_shardmap_find_node(const aether_shardmap *m, const aether_node_id *id)
{
    uint32_t lo = 0, hi = m->node_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = aether_node_id_compare(&m->nodes[mid], id);
        if (c == 0)
            return (aether_node_index)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return AETHER_NODE_INDEX_NONE;
}

bool aether_shardmap_names_node(const aether_shardmap *m, const aether_node_id *id)
{
    aether_node_index idx = aether_shardmap_find_node(m, id);
    if (idx == AETHER_NODE_INDEX_NONE)
        return false;
    size_t owned = 0;
    (void)aether_shardmap_node_owner_shards(m, idx, &owned);
    if (owned > 0)
        return true;
    for (uint32_t s = 0; s < m->shard_count; s++) /* bounded: shard_count */
        if (m->shards[s].state == AETHER_SHARD_MOVING && m->shards[s].to == idx)
            return true;
    return false;
}

static const char *node_name(const aether_shardmap *m, aether_node_index i)
{
    return i < m->node_count ? m->nodes[i].str : "?";
}

/* Checks one CSR index against the shard table: offsets cover exactly
 * `total` entries, every list is strictly ascending, and every listed shard
 * really has the node in the role (primary or any owner). With the totals
 * equal, that makes each list exactly the node's set of shards. */
static aether_status check_node_index(const aether_shardmap *m, const uint32_t *start,
                                      const uint32_t *list, uint32_t total, bool primary_only,
                                      const char *what, aether_err *err)
{
    uint32_t n_nodes = m->node_count;
    if (start == NULL || (total > 0 && list == NULL))
        return aether_err_set(err, AETHER_EINVAL, "%s: missing", what);
    if (start[0] != 0 || start[n_nodes] != total)
        return aether_err_set(err, AETHER_EINVAL, "%s: covers %u entries, expected %u", what,
                              start[n_nodes] - start[0], total);
    for (uint32_t n = 0; n < n_nodes; n++) {
        if (start[n + 1] < start[n] || start[n + 1] > total)
            return aether_err_set(err, AETHER_EINVAL, "%s[%s]: bad offsets", what,
                                  m->nodes[n].str);
        for (uint32_t k = start[n]; k < start[n + 1]; k++) {
            uint32_t s = list[k];
            if (s >= m->shard_count || (k > start[n] && list[k - 1] >= s))
                return aether_err_set(err, AETHER_EINVAL,
                                      "%s[%s]: shard %u out of range or out of order", what,
                                      m->nodes[n].str, s);
            const aether_shard_entry *e = &m->shards[s];
            bool found = false;
            if (primary_only) {
                found = e->owner_count > 0 && e->primary == n;
            } else {
                const aether_node_index *row = &m->owners[(size_t)s * m->replication];
                for (uint32_t j = 0; j < e->owner_count && !found; j++)
                    found = row[j] == n;
            }
            if (!found)
                return aether_err_set(err, AETHER_EINVAL, "%s[%s]: lists shard %u it does not own",
                                      what, m->nodes[n].str, s);
        }
    }
    return AETHER_OK;
}

/* Every rule but the per-node index; *primaries_out and *owners_out the
 * totals that index must cover. */
static aether_status validate_fields(const aether_shardmap *m, uint32_t *primaries_out,
                                     uint32_t *owners_out, aether_err *err)
{
    AETHER_ASSERT(m != NULL);
    const uint32_t n_nodes = m->node_count, r = m->replication;
    if (m->shard_count == 0 || m->shard_count > AETHER_SHARD_COUNT_MAX)
        return aether_err_set(err, AETHER_EINVAL, "shard_count: %u out of range 1..%u",
                              m->shard_count, AETHER_SHARD_COUNT_MAX);
    if (r == 0 || r > AETHER_REPLICATION_MAX)
        return aether_err_set(err, AETHER_EINVAL, "replication: %u out of range 1..%u", r,
                              AETHER_REPLICATION_MAX);
    if (n_nodes > AETHER_SHARDMAP_NODES_MAX)
        return aether_err_set(err, AETHER_EINVAL, "nodes: %u nodes, more than %u", n_nodes,
                              AETHER_SHARDMAP_NODES_MAX);
    if (m->shards == NULL || m->owners == NULL || (n_nodes > 0 && m->nodes == NULL))
        return aether_err_set(err, AETHER_EINVAL, "map: missing arrays");
    for (uint32_t i = 0; i < n_nodes; i++) {
        if (!aether_node_id_is_valid(&m->nodes[i]))
            return aether_err_set(err, AETHER_EINVAL, "nodes[%u]: not a valid node id", i);
        if (i > 0 && aether_node_id_compare(&m->nodes[i - 1], &m->nodes[i]) >= 0)
            return aether_err_set(err, AETHER_EINVAL,
                                  "nodes[%u]: %s does not sort after %s (the node table must be "
                                  "sorted and distinct)",
                                  i, m->nodes[i].str, m->nodes[i - 1].str);
    }

    uint32_t primaries = 0, owner_total = 0;
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *e = &m->shards[s];
        const aether_node_index *row = &m->owners[(size_t)s * r];
        if (e->owner_count > r)
            return aether_err_set(err, AETHER_EINVAL,
                                  "shards[%u].owners: %u owners, more than replication %u", s,
                                  e->owner_count, r);
        if (e->owner_count == 0) {
            if (n_nodes > 0)
                return aether_err_set(err, AETHER_EINVAL, "shards[%u]: no primary owner", s);
            if (e->primary != AETHER_NODE_INDEX_NONE)
                return aether_err_set(err, AETHER_EINVAL, "shards[%u]: primary set without owners",
                                      s);
        } else {
            for (uint32_t j = 0; j < e->owner_count; j++) {
                if (row[j] >= n_nodes)
                    return aether_err_set(err, AETHER_EINVAL,
                                          "shards[%u].owners[%u]: node index %u out of range "
                                          "(%u nodes)",
                                          s, j, row[j], n_nodes);
                for (uint32_t k = 0; k < j; k++)
                    if (row[k] == row[j])
                        return aether_err_set(err, AETHER_EINVAL,
                                              "shards[%u].owners[%u]: duplicate owner %s", s, j,
                                              m->nodes[row[j]].str);
            }
            if (e->primary != row[0])
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u]: primary disagrees with owners[0]", s);
            primaries++;
            owner_total += e->owner_count;
        }
        switch (e->state) {
        case AETHER_SHARD_STABLE:
            if (e->to != AETHER_NODE_INDEX_NONE)
                return aether_err_set(err, AETHER_EINVAL, "shards[%u].to: set on a stable shard",
                                      s);
            break;
        case AETHER_SHARD_MOVING:
            if (e->to == AETHER_NODE_INDEX_NONE)
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u].to: missing on a moving shard", s);
            if (e->to >= n_nodes)
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u].to: node index %u out of range (%u nodes)", s,
                                      e->to, n_nodes);
            if (e->owner_count == 0)
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u]: moving without a primary owner", s);
            if (e->to == e->primary)
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u].to: %s is already the primary", s,
                                      node_name(m, e->to));
            break;
        default:
            return aether_err_set(err, AETHER_EINVAL, "shards[%u].state: unknown state %u", s,
                                  e->state);
        }
    }

    *primaries_out = primaries;
    *owners_out = owner_total;
    return AETHER_OK;
}

aether_status aether_shardmap_validate(const aether_shardmap *m, aether_err *err)
{
    uint32_t primaries = 0, owner_total = 0;
    aether_status st = validate_fields(m, &primaries, &owner_total, err);
    if (st != AETHER_OK)
        return st;
    st = check_node_index(m, m->primary_start, m->primary_shards, primaries, true,
                          "primary_index", err);
    if (st != AETHER_OK)
        return st;
    return check_node_index(m, m->owner_start, m->owner_shards, owner_total, false,
                            "owner_index", err);
}

/* ---- builder ------------------------------------------------------------- */

aether_status aether_shardmap_builder_create(uint32_t shard_count, uint32_t replication,
                                             aether_shardmap_builder **out, aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    if (shard_count == 0 || shard_count > AETHER_SHARD_COUNT_MAX)
        return aether_err_set(err, AETHER_EINVAL, "shard_count: %u out of range 1..%u",
                              shard_count, AETHER_SHARD_COUNT_MAX);
    if (replication == 0 || replication > AETHER_REPLICATION_MAX)
        return aether_err_set(err, AETHER_EINVAL, "replication: %u out of range 1..%u",
                              replication, AETHER_REPLICATION_MAX);

    aether_shardmap_builder *b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto fail;
    b->shard_count = shard_count;
    b->replication = replication;
    b->node_cap = BUILDER_NODE_CAP_MIN;
    b->table_cap = BUILDER_TABLE_CAP_MIN;
    b->nodes = calloc(b->node_cap, sizeof(*b->nodes));
    b->table = calloc(b->table_cap, sizeof(*b->table));
    b->shards = calloc(shard_count, sizeof(*b->shards));
    b->owners = malloc((size_t)shard_count * replication * sizeof(*b->owners));
    if (b->nodes == NULL || b->table == NULL || b->shards == NULL || b->owners == NULL)
        goto fail;
    for (uint32_t s = 0; s < shard_count; s++) {
        b->shards[s].primary = AETHER_NODE_INDEX_NONE;
        b->shards[s].to = AETHER_NODE_INDEX_NONE;
        b->shards[s].state = AETHER_SHARD_STABLE;
    }
    for (size_t i = 0; i < (size_t)shard_count * replication; i++)
        b->owners[i] = AETHER_NODE_INDEX_NONE;
    *out = b;
    return AETHER_OK;
fail:
    aether_shardmap_builder_destroy(b);
    return aether_err_set(err, AETHER_ENOMEM, "shardmap builder: out of memory");
}

void aether_shardmap_builder_destroy(aether_shardmap_builder *b)
{
    if (b == NULL)
        return;
    free(b->nodes);
    free(b->table);
    free(b->shards);
    free(b->owners);
    free(b);
}

aether_status aether_shardmap_builder_drop_unnamed(aether_shardmap_builder *b, aether_err *err)
{
    AETHER_ASSERT(b != NULL);
    const uint32_t n = b->node_count, r = b->replication;
    uint8_t *used = calloc((size_t)n + 1, 1);
    aether_node_index *remap = malloc(((size_t)n + 1) * sizeof(*remap));
    aether_shardmap_builder *nb = NULL;
    aether_status st = AETHER_ENOMEM;
    if (used == NULL || remap == NULL)
        goto out;
    for (uint32_t s = 0; s < b->shard_count; s++) {
        const aether_shard_entry *e = &b->shards[s];
        for (uint32_t j = 0; j < e->owner_count; j++)
            used[b->owners[(size_t)s * r + j]] = 1;
        if (e->state == AETHER_SHARD_MOVING && e->to != AETHER_NODE_INDEX_NONE)
            used[e->to] = 1;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++)
        kept += used[i];
    if (kept == n) {
        st = AETHER_OK;
        goto out;
    }
    if ((st = aether_shardmap_builder_create(b->shard_count, r, &nb, err)) != AETHER_OK)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        remap[i] = AETHER_NODE_INDEX_NONE;
        if (used[i] && (st = aether_shardmap_builder_add_node(nb, &b->nodes[i], &remap[i], err)) !=
                           AETHER_OK)
            goto out;
    }
    for (uint32_t s = 0; s < b->shard_count; s++) {
        aether_shard_entry e = b->shards[s];
        for (uint32_t j = 0; j < r; j++) {
            aether_node_index o = b->owners[(size_t)s * r + j];
            nb->owners[(size_t)s * r + j] = j < e.owner_count ? remap[o] : AETHER_NODE_INDEX_NONE;
        }
        if (e.primary != AETHER_NODE_INDEX_NONE)
            e.primary = remap[e.primary];
        if (e.to != AETHER_NODE_INDEX_NONE)
            e.to = remap[e.to];
        nb->shards[s] = e;
    }
    nb->version = b->version;
    nb->term = b->term;
    /* Swap the contents: the caller's builder is now the compact one. */
    aether_shardmap_builder tmp = *b;
    *b = *nb;
    *nb = tmp;
    st = AETHER_OK;
out:
    aether_shardmap_builder_destroy(nb);
    free(used);
    free(remap);
    if (st == AETHER_ENOMEM)
        aether_err_set(err, AETHER_ENOMEM, "shardmap builder: out of memory");
    return st;
}

void aether_shardmap_builder_set_version(aether_shardmap_builder *b, uint64_t version)
{
    b->version = version;
}

void aether_shardmap_builder_set_term(aether_shardmap_builder *b, aether_term term)
{
    b->term = term;
}

uint32_t aether_shardmap_builder_node_count(const aether_shardmap_builder *b)
{
    return b->node_count;
}

/* The table slot holding id, or the empty slot where it would go. */
static uint32_t *table_probe(uint32_t *table, uint32_t cap, const aether_node_id *nodes,
                             const aether_node_id *id, uint64_t hash)
{
    uint32_t mask = cap - 1;
    /* The table is never more than half full, so the probe ends. */
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        if (table[i] == 0 || aether_node_id_equal(&nodes[table[i] - 1], id))
            return &table[i];
    }
}

aether_node_index aether_shardmap_builder_find_node(const aether_shardmap_builder *b,
                                                    const aether_node_id *id)
{
    if (id->len == 0 || id->len > AETHER_NODE_ID_LEN_MAX)
        return AETHER_NODE_INDEX_NONE;
    uint32_t *slot = table_probe(b->table, b->table_cap, b->nodes, id, aether_node_id_hash(id));
    return *slot == 0 ? AETHER_NODE_INDEX_NONE : (aether_node_index)(*slot - 1);
}

static aether_status table_grow(aether_shardmap_builder *b)
{
    uint32_t cap = b->table_cap * 2;
    uint32_t *table = calloc(cap, sizeof(*table));
    if (table == NULL)
        return AETHER_ENOMEM;
    for (uint32_t i = 0; i < b->node_count; i++) {
        uint32_t *slot = table_probe(table, cap, b->nodes, &b->nodes[i],
                                     aether_node_id_hash(&b->nodes[i]));
        AETHER_ASSERT(*slot == 0);
        *slot = i + 1;
    }
    free(b->table);
    b->table = table;
    b->table_cap = cap;
    return AETHER_OK;
}

aether_status aether_shardmap_builder_add_node(aether_shardmap_builder *b,
                                               const aether_node_id *id,
                                               aether_node_index *index_out, aether_err *err)
{
    AETHER_ASSERT(b != NULL && id != NULL);
    /* The length bound keeps the probe's memcmp inside the value; the full
     * check runs only for ids not seen yet (interning is the hot part of
     * decoding a large map). */
    if (id->len == 0 || id->len > AETHER_NODE_ID_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "node: not a valid node id");
    uint64_t hash = aether_node_id_hash(id);
    uint32_t *slot = table_probe(b->table, b->table_cap, b->nodes, id, hash);
    if (*slot != 0) {
        if (index_out != NULL)
            *index_out = (aether_node_index)(*slot - 1);
        return AETHER_OK;
    }
    if (!aether_node_id_is_valid(id))
        return aether_err_set(err, AETHER_EINVAL, "node: not a valid node id");
    if (b->node_count >= AETHER_SHARDMAP_NODES_MAX)
        return aether_err_set(err, AETHER_EINVAL, "nodes: more than %u nodes",
                              AETHER_SHARDMAP_NODES_MAX);
    if (b->node_count == b->node_cap) {
        uint32_t cap = b->node_cap * 2;
        aether_node_id *nodes = realloc(b->nodes, (size_t)cap * sizeof(*nodes));
        if (nodes == NULL)
            return aether_err_set(err, AETHER_ENOMEM, "nodes: out of memory");
        b->nodes = nodes;
        b->node_cap = cap;
    }
    if ((b->node_count + 1) * 2 > b->table_cap) {
        if (table_grow(b) != AETHER_OK)
            return aether_err_set(err, AETHER_ENOMEM, "nodes: out of memory");
        slot = table_probe(b->table, b->table_cap, b->nodes, id, hash);
    }
    uint32_t index = b->node_count++;
    b->nodes[index] = *id;
    *slot = index + 1;
    if (index_out != NULL)
        *index_out = (aether_node_index)index;
    return AETHER_OK;
}

aether_status aether_shardmap_builder_set_owners(aether_shardmap_builder *b, uint32_t shard,
                                                 const aether_node_index *owners, size_t count,
                                                 aether_err *err)
{
    AETHER_ASSERT(b != NULL && (owners != NULL || count == 0));
    if (shard >= b->shard_count)
        return aether_err_set(err, AETHER_EINVAL, "shards[%u]: shard out of range 0..%u", shard,
                              b->shard_count - 1);
    if (count > b->replication)
        return aether_err_set(err, AETHER_EINVAL,
                              "shards[%u].owners: %zu owners, more than replication %u", shard,
                              count, b->replication);
    for (size_t j = 0; j < count; j++) {
        if (owners[j] >= b->node_count)
            return aether_err_set(err, AETHER_EINVAL,
                                  "shards[%u].owners[%zu]: no node with builder index %u", shard,
                                  j, owners[j]);
        for (size_t k = 0; k < j; k++)
            if (owners[k] == owners[j])
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%u].owners[%zu]: duplicate owner %s", shard, j,
                                      b->nodes[owners[j]].str);
    }
    aether_node_index *row = &b->owners[(size_t)shard * b->replication];
    for (uint32_t j = 0; j < b->replication; j++)
        row[j] = j < count ? owners[j] : AETHER_NODE_INDEX_NONE;
    b->shards[shard].owner_count = (uint8_t)count;
    b->shards[shard].primary = count > 0 ? owners[0] : AETHER_NODE_INDEX_NONE;
    return AETHER_OK;
}

aether_status aether_shardmap_builder_set_moving(aether_shardmap_builder *b, uint32_t shard,
                                                 aether_node_index to, aether_err *err)
{
    AETHER_ASSERT(b != NULL);
    if (shard >= b->shard_count)
        return aether_err_set(err, AETHER_EINVAL, "shards[%u]: shard out of range 0..%u", shard,
                              b->shard_count - 1);
    if (to == AETHER_NODE_INDEX_NONE)
        return aether_err_set(err, AETHER_EINVAL, "shards[%u].to: a moving shard needs a target",
                              shard);
    if (to >= b->node_count)
        return aether_err_set(err, AETHER_EINVAL, "shards[%u].to: no node with builder index %u",
                              shard, to);
    b->shards[shard].state = AETHER_SHARD_MOVING;
    b->shards[shard].to = to;
    return AETHER_OK;
}

aether_status aether_shardmap_builder_set_stable(aether_shardmap_builder *b, uint32_t shard,
                                                 aether_err *err)
{
    AETHER_ASSERT(b != NULL);
    if (shard >= b->shard_count)
        return aether_err_set(err, AETHER_EINVAL, "shards[%u]: shard out of range 0..%u", shard,
                              b->shard_count - 1);
    b->shards[shard].state = AETHER_SHARD_STABLE;
    b->shards[shard].to = AETHER_NODE_INDEX_NONE;
    return AETHER_OK;
}

aether_status aether_shardmap_builder_from_map(const aether_shardmap *m,
                                               aether_shardmap_builder **out, aether_err *err)
{
    AETHER_ASSERT(m != NULL && out != NULL);
    aether_shardmap_builder *b = NULL;
    aether_status st = aether_shardmap_builder_create(m->shard_count, m->replication, &b, err);
    if (st != AETHER_OK)
        return st;
    b->version = m->version;
    b->term = m->term;
    for (uint32_t i = 0; i < m->node_count; i++) {
        aether_node_index idx = AETHER_NODE_INDEX_NONE;
        if ((st = aether_shardmap_builder_add_node(b, &m->nodes[i], &idx, err)) != AETHER_OK)
            goto fail;
        AETHER_ASSERT(idx == i); /* distinct ids: builder order = map order */
    }
    memcpy(b->shards, m->shards, (size_t)m->shard_count * sizeof(*b->shards));
    memcpy(b->owners, m->owners, (size_t)m->shard_count * m->replication * sizeof(*b->owners));
    *out = b;
    return AETHER_OK;
fail:
    aether_shardmap_builder_destroy(b);
    return st;
}

/* ---- build --------------------------------------------------------------- */

static int node_ptr_compare(const void *a, const void *b)
{
    return aether_node_id_compare(*(const aether_node_id *const *)a,
                                  *(const aether_node_id *const *)b);
}

static size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

/* The writable view of a new map's arrays (the map's own fields are const). */
typedef struct map_arrays {
    aether_node_id *nodes;
    aether_shard_entry *shards;
    aether_node_index *owners;
    uint32_t *pstart, *ostart; /* n + 1 each, zeroed */
    uint32_t *plist, *olist;
} map_arrays;

/* The one block layout of a map (both builders): the struct, then nodes,
 * shards, owners (shard_count x R), the two index starts (n + 1 each), the
 * primary list and the owner list, each 8-aligned; the owner list last, so
 * clone copies up to its used end. The struct and both starts are zeroed;
 * every other array is the builder's to write whole (through *a). NULL when
 * out of memory. */
static aether_shardmap *map_block(uint64_t version, aether_term term, uint32_t sc, uint32_t r,
                                  uint32_t n, size_t primary_slots, size_t owner_slots,
                                  map_arrays *a)
{
    size_t off_nodes = align8(sizeof(aether_shardmap));
    size_t off_shards = align8(off_nodes + (size_t)n * sizeof(aether_node_id));
    size_t off_owners = align8(off_shards + (size_t)sc * sizeof(aether_shard_entry));
    size_t off_pstart = align8(off_owners + (size_t)sc * r * sizeof(aether_node_index));
    size_t off_ostart = align8(off_pstart + (size_t)(n + 1) * sizeof(uint32_t));
    size_t off_plist = align8(off_ostart + (size_t)(n + 1) * sizeof(uint32_t));
    size_t off_olist = align8(off_plist + primary_slots * sizeof(uint32_t));
    char *block = malloc(off_olist + owner_slots * sizeof(uint32_t));
    if (block == NULL)
        return NULL;
    *a = (map_arrays){
        .nodes = (aether_node_id *)(block + off_nodes),
        .shards = (aether_shard_entry *)(block + off_shards),
        .owners = (aether_node_index *)(block + off_owners),
        .pstart = (uint32_t *)(block + off_pstart),
        .ostart = (uint32_t *)(block + off_ostart),
        .plist = (uint32_t *)(block + off_plist),
        .olist = (uint32_t *)(block + off_olist),
    };
    memset(a->pstart, 0, (size_t)(n + 1) * sizeof(uint32_t));
    memset(a->ostart, 0, (size_t)(n + 1) * sizeof(uint32_t));
    aether_shardmap *m = (aether_shardmap *)block;
    memset(m, 0, sizeof(*m));
    m->snap.free_fn = shardmap_free_snapshot;
    m->version = version;
    m->term = term;
    m->shard_count = sc;
    m->replication = r;
    m->node_count = n;
    m->nodes = a->nodes;
    m->shards = a->shards;
    m->owners = a->owners;
    m->primary_start = a->pstart;
    m->owner_start = a->ostart;
    m->primary_shards = a->plist;
    m->owner_shards = a->olist;
    return m;
}

/* Fills start[0..n] (prefix sums) and list from the shard table, iterating
 * shards in order so each node's list comes out ascending. `cursor` is
 * scratch of n + 1 entries. */
static void fill_node_index(aether_shardmap *m, uint32_t *start, uint32_t *list,
                            uint32_t *cursor, bool primary_only)
{
    uint32_t n = m->node_count;
    memset(start, 0, (n + 1) * sizeof(*start));
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *e = &m->shards[s];
        const aether_node_index *row = &m->owners[(size_t)s * m->replication];
        uint32_t k = primary_only ? (e->owner_count > 0 ? 1 : 0) : e->owner_count;
        for (uint32_t j = 0; j < k; j++)
            start[row[j] + 1]++;
    }
    for (uint32_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    memcpy(cursor, start, (n + 1) * sizeof(*cursor));
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *e = &m->shards[s];
        const aether_node_index *row = &m->owners[(size_t)s * m->replication];
        uint32_t k = primary_only ? (e->owner_count > 0 ? 1 : 0) : e->owner_count;
        for (uint32_t j = 0; j < k; j++)
            list[cursor[row[j]]++] = s;
    }
}

aether_status aether_shardmap_build(const aether_shardmap_builder *b, aether_shardmap **out,
                                    aether_err *err)
{
    AETHER_ASSERT(b != NULL && out != NULL);
    *out = NULL;
    const uint32_t n = b->node_count, sc = b->shard_count, r = b->replication;
    aether_status st = AETHER_ENOMEM;
    const aether_node_id **order = malloc((n + 1) * sizeof(*order));
    aether_node_index *remap = malloc((n + 1) * sizeof(*remap));
    uint32_t *cursor = malloc((n + 1) * sizeof(*cursor));
    aether_shardmap *m = NULL;
    if (order == NULL || remap == NULL || cursor == NULL)
        goto fail;

    /* 1. Sort the node table; remap[builder index] = map index. */
    for (uint32_t i = 0; i < n; i++)
        order[i] = &b->nodes[i];
    qsort(order, n, sizeof(*order), node_ptr_compare);
    for (uint32_t i = 0; i < n; i++)
        remap[order[i] - b->nodes] = (aether_node_index)i;

    /* 2. Lay out one block. Owner indices in the builder are < n (checked
     *    when set), so the counts below bound the index sizes. */
    uint32_t primaries = 0, owner_total = 0;
    for (uint32_t s = 0; s < sc; s++) {
        primaries += b->shards[s].owner_count > 0;
        owner_total += b->shards[s].owner_count;
    }
    map_arrays a;
    m = map_block(b->version, b->term, sc, r, n, primaries, owner_total, &a);
    if (m == NULL)
        goto fail;
    aether_node_id *nodes = a.nodes;
    aether_shard_entry *shards = a.shards;
    aether_node_index *owners = a.owners;

    /* 3. Copy with indices remapped. */
    for (uint32_t i = 0; i < n; i++)
        nodes[i] = *order[i];
    for (uint32_t s = 0; s < sc; s++) {
        const aether_shard_entry *be = &b->shards[s];
        const aether_node_index *brow = &b->owners[(size_t)s * r];
        aether_node_index *row = &owners[(size_t)s * r];
        for (uint32_t j = 0; j < r; j++)
            row[j] = j < be->owner_count ? remap[brow[j]] : AETHER_NODE_INDEX_NONE;
        shards[s] = (aether_shard_entry){
            .primary = be->owner_count > 0 ? row[0] : AETHER_NODE_INDEX_NONE,
            .to = be->to == AETHER_NODE_INDEX_NONE ? AETHER_NODE_INDEX_NONE : remap[be->to],
            .owner_count = be->owner_count,
            .state = be->state};
    }

    /* 4. Per-node index. */
    fill_node_index(m, a.pstart, a.plist, cursor, true);
    fill_node_index(m, a.ostart, a.olist, cursor, false);

    /* 5. A map that exists is a valid map. */
    if ((st = aether_shardmap_validate(m, err)) != AETHER_OK)
        goto fail;
    free(order);
    free(remap);
    free(cursor);
    *out = m;
    return AETHER_OK;
fail:
    if (st == AETHER_ENOMEM)
        aether_err_set(err, AETHER_ENOMEM, "shardmap: out of memory");
    free(order);
    free(remap);
    free(cursor);
    free(m);
    return st;
}

/* ---- direct layout (shardmap.h, aether_shardmap_build_le) ---------------- */

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* DESIGN (build_le). A decoder's map is built in three passes over the
 * rows, not build's eight (builder, copy, two index fills of two passes,
 * validate, the index check), because at 65 536 shards x R3 that is what
 * keeps a decode under 2 ms (aether-bench mapcodec):
 *  1. copy the rows, fill the entries, check each owner index against the
 *     table and count every node's primaries and owners (the index starts);
 *  2. the moving shards;
 *  3. the per-node lists, in shard order (so each comes out ascending), then
 *     every field rule of aether_shardmap_validate.
 * The per-node index is not checked again (check_node_index): it is derived
 * in step 3 from rows whose indices step 1 checked, by the same counting
 * that aether_shardmap_build's validated maps use in every test.
 * Layout: build's, with the owner list sized for every slot (shard_count x
 * R); a map whose shards have fewer than R owners (fewer nodes than R)
 * leaves the tail of its block unused (clone copies only the used part). */
aether_status aether_shardmap_build_le(uint64_t version, aether_term term, uint32_t shard_count,
                                       uint32_t replication, const aether_node_id *nodes_in,
                                       uint32_t node_count, const unsigned char *rows_le,
                                       const unsigned char *moving_le, uint32_t moving_count,
                                       aether_shardmap **out, aether_err *err)
{
    AETHER_ASSERT(out != NULL && (rows_le != NULL || shard_count == 0));
    *out = NULL;
    const uint32_t n = node_count, sc = shard_count, r = replication;
    if (sc == 0 || sc > AETHER_SHARD_COUNT_MAX || r == 0 || r > AETHER_REPLICATION_MAX ||
        n > AETHER_SHARDMAP_NODES_MAX)
        return aether_err_set(err, AETHER_EINVAL, "map: shard_count %u, replication %u, %u nodes: "
                              "out of range", sc, r, n);
    uint32_t *pcur = malloc((size_t)(n + 1) * 2 * sizeof(*pcur));
    /* The owner list is sized for every slot (shard_count x R). */
    map_arrays a;
    aether_shardmap *m = map_block(version, term, sc, r, n, sc, (size_t)sc * r, &a);
    if (m == NULL || pcur == NULL) {
        free(pcur);
        free(m);
        return aether_err_set(err, AETHER_ENOMEM, "shardmap: out of memory");
    }
    uint32_t *ocur = pcur + n + 1;
    aether_shard_entry *shards = a.shards;
    aether_node_index *owners = a.owners;
    uint32_t *pstart = a.pstart, *ostart = a.ostart, *plist = a.plist, *olist = a.olist;
    if (n > 0)
        memcpy(a.nodes, nodes_in, (size_t)n * sizeof(*a.nodes));

    /* 1. Rows, entries, counts. */
    aether_status st = AETHER_OK;
    for (uint32_t s = 0; s < sc && st == AETHER_OK; s++) {
        const unsigned char *brow = rows_le + (size_t)s * r * 2u;
        aether_node_index *row = &owners[(size_t)s * r];
        uint32_t k = 0;
        for (uint32_t j = 0; j < r; j++) {
            aether_node_index v = le16(brow + 2u * j);
            row[j] = v;
            if (v == AETHER_NODE_INDEX_NONE)
                continue;
            if (k != j)
                st = aether_err_set(err, AETHER_EINVAL,
                                    "shards[%u].owners[%u]: an owner after an empty slot", s, j);
            else if (v >= n)
                st = aether_err_set(err, AETHER_EINVAL,
                                    "shards[%u].owners[%u]: node index %u out of range (%u nodes)",
                                    s, j, v, n);
            else
                ostart[v + 1]++;
            k++;
        }
        if (k > 0 && st == AETHER_OK)
            pstart[row[0] + 1]++;
        shards[s] = (aether_shard_entry){.primary = row[0], .to = AETHER_NODE_INDEX_NONE,
                                         .owner_count = (uint8_t)k, .state = AETHER_SHARD_STABLE};
    }
    /* 2. Moving shards (the rest of their rules: validate_fields). */
    for (uint32_t i = 0; i < moving_count && st == AETHER_OK; i++) {
        uint32_t s = le16(moving_le + 4u * i);
        if (s >= sc || shards[s].state == AETHER_SHARD_MOVING)
            st = aether_err_set(err, AETHER_EINVAL, "moving[%u]: shard %u out of range or twice",
                                i, s);
        else {
            shards[s].state = AETHER_SHARD_MOVING;
            shards[s].to = le16(moving_le + 4u * i + 2u);
        }
    }
    /* 3. Lists, then the field rules. */
    uint32_t primaries = 0, owner_total = 0;
    if (st == AETHER_OK) {
        for (uint32_t i = 0; i < n; i++) {
            pstart[i + 1] += pstart[i];
            ostart[i + 1] += ostart[i];
        }
        memcpy(pcur, pstart, (size_t)(n + 1) * sizeof(*pcur));
        memcpy(ocur, ostart, (size_t)(n + 1) * sizeof(*ocur));
        for (uint32_t s = 0; s < sc; s++) {
            const aether_node_index *row = &owners[(size_t)s * r];
            uint32_t k = shards[s].owner_count;
            if (k > 0)
                plist[pcur[row[0]]++] = s;
            for (uint32_t j = 0; j < k; j++)
                olist[ocur[row[j]]++] = s;
        }
        st = validate_fields(m, &primaries, &owner_total, err);
    }
    free(pcur);
    if (st != AETHER_OK) {
        free(m);
        return st;
    }
    AETHER_ASSERT(pstart[n] == primaries && ostart[n] == owner_total);
    *out = m;
    return AETHER_OK;
}
