/* SPDX-License-Identifier: Apache-2.0 */
/*
 * strategy.c: the default rebalancing strategy, "balanced" (actors layer).
 * The algorithm, its rules and its cost are in strategy.h (DESIGN). Pure:
 * every call allocates its own scratch; any thread.
 *
 * Indices: the topology is copied and sorted by id; a node is named by its
 * position there ("topo index", uint32_t). The eligible set E, zones, targets
 * and deficits are arrays over topo indices. A shard's new owner list is the
 * row lst[s * kw .. + lc[s]) of topo indices, primary first.
 *
 * The picker answers "which eligible node has the largest deficit (ties: the
 * smaller index) among those not in this shard's list and whose zone has
 * room in this shard?" in O(R log N): every zone keeps a binary max-heap of
 * its nodes by deficit and a heap of zones is ordered by their best node. A
 * best-first walk over the heaps skips the few zones and nodes the shard
 * excludes (at most R of each), so it touches O(R) heap entries.
 */
#include "strategy.h"

#include <stdlib.h>
#include <string.h>

#define ST_NONE UINT32_MAX
#define ST_FRONTIER_MAX 64u /* best-first walk: 1 + 2 * (excluded + 1) entries suffice */
#define ST_ROW_MAX (AETHER_REPLICATION_MAX + 1u)

AETHER_STATIC_ASSERT(2u * (ST_ROW_MAX + 1u) + 1u < ST_FRONTIER_MAX,
                     "the walk never outgrows its frontier");

/* ---- nodes ------------------------------------------------------------------ */

static bool zone_is_valid(const char *zone, size_t cap)
{
    const char *end = memchr(zone, '\0', cap);
    if (end == NULL)
        return false;
    for (const char *c = zone; c < end; c++)
        if (!aether_node_id_char_is_valid((unsigned char)*c))
            return false;
    return true;
}

aether_status aether_strategy_node_make(aether_strategy_node *out, const char *id,
                                        const char *zone, aether_node_status status,
                                        aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    aether_status st = aether_node_id_from_cstr(id == NULL ? "" : id, &out->id, err);
    if (st != AETHER_OK) {
        aether_err_prefix(err, "id");
        return st;
    }
    if (zone != NULL) {
        size_t len = strlen(zone);
        if (len > AETHER_NODE_ZONE_LEN_MAX) {
            memset(out, 0, sizeof(*out));
            return aether_err_set(err, AETHER_EINVAL, "zone: %zu characters, more than %d", len,
                                  AETHER_NODE_ZONE_LEN_MAX);
        }
        memcpy(out->zone, zone, len + 1);
        if (!zone_is_valid(out->zone, sizeof(out->zone))) {
            memset(out, 0, sizeof(*out));
            return aether_err_set(err, AETHER_EINVAL, "zone: '%s' has a character outside "
                                  "[A-Za-z0-9_.-]", zone);
        }
    }
    if ((unsigned)status >= AETHER_NODE_STATUS_COUNT_) {
        memset(out, 0, sizeof(*out));
        return aether_err_set(err, AETHER_EINVAL, "status: %d out of range", (int)status);
    }
    out->status = status;
    return AETHER_OK;
}

void aether_strategy_node_from_info(aether_strategy_node *out, const aether_node_info *info)
{
    AETHER_ASSERT(out != NULL && info != NULL);
    memset(out, 0, sizeof(*out));
    out->id = info->id;
    AETHER_STATIC_ASSERT(sizeof(out->zone) == sizeof(info->zone), "same zone buffer");
    memcpy(out->zone, info->zone, sizeof(out->zone));
    out->zone[sizeof(out->zone) - 1] = '\0';
    out->status = info->status;
}

void aether_strategy_zone_quotas(const uint32_t *zone_nodes, uint32_t zone_count, uint32_t k,
                                 uint32_t *quota_out)
{
    uint32_t level = 1;
    for (;; level++) {
        uint64_t sum = 0;
        for (uint32_t z = 0; z < zone_count; z++)
            sum += zone_nodes[z] < level ? zone_nodes[z] : level;
        /* Every zone full at this level: no higher level adds room. */
        bool saturated = true;
        for (uint32_t z = 0; z < zone_count && saturated; z++)
            saturated = zone_nodes[z] <= level;
        if (sum >= k || saturated)
            break;
    }
    for (uint32_t z = 0; z < zone_count; z++)
        quota_out[z] = zone_nodes[z] < level ? zone_nodes[z] : level;
}

void aether_rebalance_plan_destroy(aether_rebalance_plan *p)
{
    if (p == NULL)
        return;
    free(p->nodes);
    free(p->moves);
    free(p);
}

/* ---- context ---------------------------------------------------------------- */

typedef struct st_ctx {
    uint32_t S, R, k, kw;          /* shards, R asked, owners per shard, row width (R) */
    uint32_t n;                    /* topology size */
    aether_strategy_node *nodes;   /* [n] sorted by id */
    const aether_shardmap *old;    /* may be NULL */
    uint32_t *old_to_topo;         /* [old nodes] topo index or ST_NONE */
    uint32_t *topo_to_old;         /* [n] old map index or ST_NONE */
    bool *elig;                    /* [n] in E */
    uint32_t e;                    /* |E| */
    uint32_t *zone_of;             /* [n] zone of an E node, ST_NONE otherwise */
    uint32_t zc;                   /* zones among E */
    uint32_t *zone_nodes;          /* [zc] */
    uint32_t *zone_quota;          /* [zc] */
    uint32_t *v;                   /* [S*kw] valid old owners */
    uint8_t *vc;                   /* [S] */
    uint32_t *vprim;               /* [S] valid old primary or ST_NONE */
    uint32_t *lst;                 /* [S*kw] new owners, primary first */
    uint8_t *lc;                   /* [S] */
    uint32_t *cur_p, *cur_o;       /* [n] valid primaries / slots now */
    uint32_t *tp, *to;             /* [n] targets */
    int64_t *pdef, *sdef;          /* [n] target - load */
    int64_t *sexc;                 /* [n] scratch: projected slot excess */
    uint64_t *hash;                /* [n] XXH64 of the id: tie-break spread */
} st_ctx;

static void ctx_free(st_ctx *c)
{
    free(c->nodes);
    free(c->old_to_topo);
    free(c->topo_to_old);
    free(c->elig);
    free(c->zone_of);
    free(c->zone_nodes);
    free(c->zone_quota);
    free(c->v);
    free(c->vc);
    free(c->vprim);
    free(c->lst);
    free(c->lc);
    free(c->cur_p);
    free(c->cur_o);
    free(c->tp);
    free(c->to);
    free(c->pdef);
    free(c->sdef);
    free(c->sexc);
    free(c->hash);
}

static int node_compare(const void *a, const void *b)
{
    return aether_node_id_compare(&((const aether_strategy_node *)a)->id,
                                  &((const aether_strategy_node *)b)->id);
}

/* Zone order: zoneless nodes first, each its own zone (by id), then by zone
 * name, then by id. Elements are pointers into the id-sorted array. */
static int zone_ptr_compare(const void *a, const void *b)
{
    const aether_strategy_node *x = *(const aether_strategy_node *const *)a;
    const aether_strategy_node *y = *(const aether_strategy_node *const *)b;
    int c = strcmp(x->zone, y->zone);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

static int u64_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- picker ----------------------------------------------------------------- */

typedef struct st_picker {
    const int64_t *def;       /* deficit per topo index */
    const uint32_t *zone_of;
    uint32_t zc;
    uint32_t *zstart;         /* [zc + 1] each zone's slice of zh */
    uint32_t *zh;             /* [e] per-zone max-heaps of topo indices */
    uint32_t *npos;           /* [n] a node's position in its zone's heap */
    uint32_t *top;            /* [zc] max-heap of zones by their best node */
    uint32_t *zpos;           /* [zc] a zone's position in top */
} st_picker;

static void picker_fini(st_picker *p)
{
    free(p->zstart);
    free(p->zh);
    free(p->npos);
    free(p->top);
    free(p->zpos);
    memset(p, 0, sizeof(*p));
}

static inline bool node_better(const st_picker *p, uint32_t a, uint32_t b)
{
    return p->def[a] > p->def[b] || (p->def[a] == p->def[b] && a < b);
}

static inline uint32_t zone_head(const st_picker *p, uint32_t z)
{
    return p->zh[p->zstart[z]];
}

static inline bool zone_better(const st_picker *p, uint32_t a, uint32_t b)
{
    return node_better(p, zone_head(p, a), zone_head(p, b));
}

static void zh_swap(st_picker *p, uint32_t base, uint32_t i, uint32_t j)
{
    uint32_t a = p->zh[base + i], b = p->zh[base + j];
    p->zh[base + i] = b;
    p->zh[base + j] = a;
    p->npos[b] = i;
    p->npos[a] = j;
}

static void zh_down(st_picker *p, uint32_t z, uint32_t i)
{
    uint32_t base = p->zstart[z], len = p->zstart[z + 1] - base;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < len && node_better(p, p->zh[base + l], p->zh[base + best]))
            best = l;
        if (r < len && node_better(p, p->zh[base + r], p->zh[base + best]))
            best = r;
        if (best == i)
            break;
        zh_swap(p, base, i, best);
        i = best;
    }
}

/* Restores the heap after the key at position i changed (either way). */
static void zh_fix(st_picker *p, uint32_t z, uint32_t i)
{
    uint32_t base = p->zstart[z];
    while (i > 0) {
        uint32_t up = (i - 1) / 2;
        if (!node_better(p, p->zh[base + i], p->zh[base + up]))
            break;
        zh_swap(p, base, i, up);
        i = up;
    }
    zh_down(p, z, i);
}

static void top_swap(st_picker *p, uint32_t i, uint32_t j)
{
    uint32_t a = p->top[i], b = p->top[j];
    p->top[i] = b;
    p->top[j] = a;
    p->zpos[b] = i;
    p->zpos[a] = j;
}

static void top_down(st_picker *p, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < p->zc && zone_better(p, p->top[l], p->top[best]))
            best = l;
        if (r < p->zc && zone_better(p, p->top[r], p->top[best]))
            best = r;
        if (best == i)
            break;
        top_swap(p, i, best);
        i = best;
    }
}

static void top_fix(st_picker *p, uint32_t i)
{
    while (i > 0) {
        uint32_t up = (i - 1) / 2;
        if (!zone_better(p, p->top[i], p->top[up]))
            break;
        top_swap(p, i, up);
        i = up;
    }
    top_down(p, i);
}

/* Call after def[node] changed. */
static void picker_update(st_picker *p, uint32_t node)
{
    uint32_t z = p->zone_of[node];
    AETHER_ASSERT(z < p->zc);
    zh_fix(p, z, p->npos[node]);
    top_fix(p, p->zpos[z]);
}

static aether_status picker_init(st_picker *p, const st_ctx *c, const int64_t *def)
{
    memset(p, 0, sizeof(*p));
    p->def = def;
    p->zone_of = c->zone_of;
    p->zc = c->zc;
    p->zstart = calloc((size_t)c->zc + 1, sizeof(*p->zstart));
    p->zh = malloc(((size_t)c->e + 1) * sizeof(*p->zh));
    p->npos = malloc(((size_t)c->n + 1) * sizeof(*p->npos));
    p->top = malloc(((size_t)c->zc + 1) * sizeof(*p->top));
    p->zpos = malloc(((size_t)c->zc + 1) * sizeof(*p->zpos));
    if (p->zstart == NULL || p->zh == NULL || p->npos == NULL || p->top == NULL ||
        p->zpos == NULL) {
        picker_fini(p);
        return AETHER_ENOMEM;
    }
    for (uint32_t z = 0; z < c->zc; z++)
        p->zstart[z + 1] = p->zstart[z] + c->zone_nodes[z];
    uint32_t *fill = p->zpos; /* scratch until the zone heap is built */
    for (uint32_t z = 0; z < c->zc; z++)
        fill[z] = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->elig[i])
            continue;
        uint32_t z = c->zone_of[i];
        p->zh[p->zstart[z] + fill[z]] = i;
        p->npos[i] = fill[z]++;
    }
    for (uint32_t z = 0; z < c->zc; z++) {
        uint32_t len = p->zstart[z + 1] - p->zstart[z];
        for (uint32_t i = len / 2; i-- > 0;)
            zh_down(p, z, i);
    }
    for (uint32_t z = 0; z < c->zc; z++) {
        p->top[z] = z;
        p->zpos[z] = z;
    }
    for (uint32_t i = p->zc / 2; i-- > 0;)
        top_down(p, i);
    return AETHER_OK;
}

/* What a shard excludes: its owners (never picked) and, for zone room, the
 * owners except `ignore` (the one being replaced, or ST_NONE). */
typedef struct st_view {
    const uint32_t *owners;
    uint32_t count;
    uint32_t ignore;
    uint32_t zones[ST_ROW_MAX];
    uint32_t zone_counts[ST_ROW_MAX];
    uint32_t zone_n;
} st_view;

static void view_init(st_view *w, const st_ctx *c, const uint32_t *owners, uint32_t count,
                      uint32_t ignore)
{
    AETHER_ASSERT(count <= ST_ROW_MAX);
    w->owners = owners;
    w->count = count;
    w->ignore = ignore;
    w->zone_n = 0;
    for (uint32_t j = 0; j < count; j++) {
        uint32_t z = c->zone_of[owners[j]];
        if (owners[j] == ignore || z == ST_NONE)
            continue;
        uint32_t t = 0;
        while (t < w->zone_n && w->zones[t] != z)
            t++;
        if (t == w->zone_n) {
            w->zones[t] = z;
            w->zone_counts[t] = 0;
            w->zone_n++;
        }
        w->zone_counts[t]++;
    }
}

static bool view_has(const st_view *w, uint32_t node)
{
    for (uint32_t j = 0; j < w->count; j++)
        if (w->owners[j] == node)
            return true;
    return false;
}

static bool view_zone_room(const st_view *w, const st_ctx *c, uint32_t z)
{
    for (uint32_t t = 0; t < w->zone_n; t++)
        if (w->zones[t] == z)
            return w->zone_counts[t] < c->zone_quota[z];
    return c->zone_quota[z] > 0;
}

/* Best node of zone z that the view does not hold, or ST_NONE. */
static uint32_t best_in_zone(const st_picker *p, const st_view *w, uint32_t z)
{
    uint32_t base = p->zstart[z], len = p->zstart[z + 1] - base;
    uint32_t fr[ST_FRONTIER_MAX];
    uint32_t nf = 0;
    if (len == 0)
        return ST_NONE;
    fr[nf++] = 0;
    while (nf > 0) {
        uint32_t bi = 0;
        for (uint32_t i = 1; i < nf; i++)
            if (node_better(p, p->zh[base + fr[i]], p->zh[base + fr[bi]]))
                bi = i;
        uint32_t pos = fr[bi];
        fr[bi] = fr[--nf];
        uint32_t node = p->zh[base + pos];
        if (!view_has(w, node))
            return node;
        for (uint32_t ch = 2 * pos + 1; ch <= 2 * pos + 2 && ch < len; ch++) {
            AETHER_ASSERT(nf < ST_FRONTIER_MAX);
            fr[nf++] = ch;
        }
    }
    return ST_NONE;
}

/* The eligible node with the largest deficit that the view allows, or
 * ST_NONE when every zone is full for this shard. */
static uint32_t picker_best(const st_picker *p, const st_ctx *c, const st_view *w)
{
    uint32_t fr[ST_FRONTIER_MAX];
    uint32_t nf = 0, best = ST_NONE;
    if (p->zc == 0)
        return ST_NONE;
    fr[nf++] = 0;
    while (nf > 0) {
        uint32_t bi = 0;
        for (uint32_t i = 1; i < nf; i++)
            if (zone_better(p, p->top[fr[i]], p->top[fr[bi]]))
                bi = i;
        uint32_t pos = fr[bi];
        fr[bi] = fr[--nf];
        uint32_t z = p->top[pos];
        /* Everything below is no better than this zone's head. */
        if (best != ST_NONE && !node_better(p, zone_head(p, z), best))
            break;
        for (uint32_t ch = 2 * pos + 1; ch <= 2 * pos + 2 && ch < p->zc; ch++) {
            AETHER_ASSERT(nf < ST_FRONTIER_MAX);
            fr[nf++] = ch;
        }
        if (!view_zone_room(w, c, z))
            continue;
        uint32_t cand = best_in_zone(p, w, z);
        if (cand != ST_NONE && (best == ST_NONE || node_better(p, cand, best)))
            best = cand;
    }
    return best;
}

#define ST_SPREAD_MAX 8u /* tied candidates a spread pick chooses among */

static uint64_t st_mix(uint64_t x)
{
    x ^= x >> 31;
    x *= UINT64_C(0x7fb5d329728ea185);
    x ^= x >> 27;
    x *= UINT64_C(0x81dadef4bc2dd44d);
    return x ^ (x >> 33);
}

/* picker_best, except that among up to ST_SPREAD_MAX allowed nodes tied at
 * the best deficit the one with the highest hash of (shard, node id) wins.
 * Ties are common (at bootstrap every node is tied); breaking them by id
 * would give many shards the same owner set, and when a node of such a set
 * fails the survivors cannot take each other's slots. Mixing the sets keeps
 * later repairs at their minimum. Deterministic: ids, not input order. */
static uint32_t picker_best_spread(const st_picker *p, const st_ctx *c, const st_view *w,
                                   uint32_t shard)
{
    uint32_t best = picker_best(p, c, w);
    if (best == ST_NONE)
        return ST_NONE;
    const int64_t target = p->def[best];
    uint32_t cand[ST_SPREAD_MAX], ncand = 0;
    uint32_t fr[ST_FRONTIER_MAX], nf = 0;
    fr[nf++] = 0;
    while (nf > 0 && ncand < ST_SPREAD_MAX) {
        uint32_t pos = fr[--nf]; /* any order: every zone reached has a tied head */
        uint32_t z = p->top[pos];
        if (p->def[zone_head(p, z)] < target)
            continue;
        for (uint32_t ch = 2 * pos + 1; ch <= 2 * pos + 2 && ch < p->zc; ch++)
            if (nf < ST_FRONTIER_MAX)
                fr[nf++] = ch;
        if (!view_zone_room(w, c, z))
            continue;
        uint32_t base = p->zstart[z], len = p->zstart[z + 1] - base;
        uint32_t zf[ST_FRONTIER_MAX], nz = 0;
        zf[nz++] = 0;
        while (nz > 0 && ncand < ST_SPREAD_MAX) {
            uint32_t zp = zf[--nz];
            uint32_t node = p->zh[base + zp];
            if (p->def[node] < target)
                continue;
            for (uint32_t ch = 2 * zp + 1; ch <= 2 * zp + 2 && ch < len; ch++)
                if (nz < ST_FRONTIER_MAX)
                    zf[nz++] = ch;
            if (!view_has(w, node))
                cand[ncand++] = node;
        }
    }
    uint64_t salt = st_mix((uint64_t)shard + UINT64_C(0x9e3779b97f4a7c15));
    uint64_t best_key = st_mix(salt ^ c->hash[best]);
    for (uint32_t i = 0; i < ncand; i++) {
        uint64_t key = st_mix(salt ^ c->hash[cand[i]]);
        if (key > best_key || (key == best_key && cand[i] < best)) {
            best = cand[i];
            best_key = key;
        }
    }
    return best;
}

/* ---- setup: validate, sort, eligible set, zones, valid old owners ----------- */

static aether_status ctx_setup(st_ctx *c, const aether_shardmap *old,
                               const aether_strategy_node *nodes, size_t node_count,
                               const aether_strategy_config *cfg, aether_err *err)
{
    if (cfg->shard_count == 0 || cfg->shard_count > AETHER_SHARD_COUNT_MAX)
        return aether_err_set(err, AETHER_EINVAL, "config.shard_count: %u out of range 1..%u",
                              cfg->shard_count, AETHER_SHARD_COUNT_MAX);
    if (cfg->replication == 0 || cfg->replication > AETHER_REPLICATION_MAX)
        return aether_err_set(err, AETHER_EINVAL, "config.replication: %u out of range 1..%u",
                              cfg->replication, AETHER_REPLICATION_MAX);
    if (node_count > AETHER_SHARDMAP_NODES_MAX)
        return aether_err_set(err, AETHER_EINVAL, "topology: %zu nodes, more than %u",
                              node_count, AETHER_SHARDMAP_NODES_MAX);
    if (old != NULL && old->shard_count != cfg->shard_count)
        return aether_err_set(err, AETHER_EINVAL,
                              "old.shard_count: %u differs from config.shard_count %u",
                              old->shard_count, cfg->shard_count);
    if (old != NULL && old->version == UINT64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "old.version: cannot grow past 2^64-1");
    for (size_t i = 0; i < node_count; i++) {
        if (!aether_node_id_is_valid(&nodes[i].id))
            return aether_err_set(err, AETHER_EINVAL, "topology[%zu].id: not a valid node id",
                                  i);
        if ((unsigned)nodes[i].status >= AETHER_NODE_STATUS_COUNT_)
            return aether_err_set(err, AETHER_EINVAL, "topology[%zu].status: %d out of range",
                                  i, (int)nodes[i].status);
        if (!zone_is_valid(nodes[i].zone, sizeof(nodes[i].zone)))
            return aether_err_set(err, AETHER_EINVAL,
                                  "topology[%zu].zone: not a valid zone name", i);
    }

    const uint32_t S = cfg->shard_count, n = (uint32_t)node_count;
    c->S = S;
    c->R = cfg->replication;
    c->n = n;
    c->old = old;
    size_t n1 = (size_t)n + 1;
    c->nodes = malloc(n1 * sizeof(*c->nodes));
    c->topo_to_old = malloc(n1 * sizeof(*c->topo_to_old));
    c->elig = calloc(n1, sizeof(*c->elig));
    c->zone_of = malloc(n1 * sizeof(*c->zone_of));
    c->zone_nodes = calloc(n1, sizeof(*c->zone_nodes));
    c->zone_quota = calloc(n1, sizeof(*c->zone_quota));
    c->cur_p = calloc(n1, sizeof(*c->cur_p));
    c->cur_o = calloc(n1, sizeof(*c->cur_o));
    c->tp = calloc(n1, sizeof(*c->tp));
    c->to = calloc(n1, sizeof(*c->to));
    c->pdef = calloc(n1, sizeof(*c->pdef));
    c->sdef = calloc(n1, sizeof(*c->sdef));
    c->sexc = calloc(n1, sizeof(*c->sexc));
    c->hash = calloc(n1, sizeof(*c->hash));
    uint32_t old_n = old != NULL ? old->node_count : 0;
    c->old_to_topo = malloc(((size_t)old_n + 1) * sizeof(*c->old_to_topo));
    if (c->nodes == NULL || c->topo_to_old == NULL || c->elig == NULL || c->zone_of == NULL ||
        c->zone_nodes == NULL || c->zone_quota == NULL || c->cur_p == NULL || c->cur_o == NULL ||
        c->tp == NULL || c->to == NULL || c->pdef == NULL || c->sdef == NULL ||
        c->sexc == NULL || c->hash == NULL || c->old_to_topo == NULL)
        return AETHER_ENOMEM;

    if (n > 0)
        memcpy(c->nodes, nodes, (size_t)n * sizeof(*nodes));
    qsort(c->nodes, n, sizeof(*c->nodes), node_compare);
    for (uint32_t i = 0; i < n; i++)
        c->hash[i] = aether_node_id_hash(&c->nodes[i].id);
    for (uint32_t i = 1; i < n; i++)
        if (aether_node_id_equal(&c->nodes[i - 1].id, &c->nodes[i].id))
            return aether_err_set(err, AETHER_EINVAL, "topology: duplicate node %s",
                                  c->nodes[i].id.str);

    /* E: Active nodes; if none, the Draining ones (I2 before draining). */
    uint32_t active = 0;
    for (uint32_t i = 0; i < n; i++)
        active += c->nodes[i].status == AETHER_NODE_ACTIVE;
    aether_node_status want = active > 0 ? AETHER_NODE_ACTIVE : AETHER_NODE_DRAINING;
    c->e = 0;
    for (uint32_t i = 0; i < n; i++) {
        c->elig[i] = c->nodes[i].status == want;
        c->e += c->elig[i];
        c->zone_of[i] = ST_NONE;
        c->topo_to_old[i] = ST_NONE;
    }
    c->k = c->R < c->e ? c->R : c->e;
    c->kw = c->R; /* the brake keeps up to R healthy owners, whatever k is */

    /* Zones among E. */
    if (c->e > 0) {
        const aether_strategy_node **by_zone = malloc((size_t)c->e * sizeof(*by_zone));
        if (by_zone == NULL)
            return AETHER_ENOMEM;
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (c->elig[i])
                by_zone[m++] = &c->nodes[i];
        qsort(by_zone, m, sizeof(*by_zone), zone_ptr_compare);
        c->zc = 0;
        for (uint32_t j = 0; j < m; j++) {
            bool same = j > 0 && by_zone[j]->zone[0] != '\0' &&
                        strcmp(by_zone[j]->zone, by_zone[j - 1]->zone) == 0;
            if (!same)
                c->zc++;
            uint32_t z = c->zc - 1;
            c->zone_of[by_zone[j] - c->nodes] = z;
            c->zone_nodes[z]++;
        }
        free(by_zone);
        aether_strategy_zone_quotas(c->zone_nodes, c->zc, c->k, c->zone_quota);
    }

    /* Old map <-> topology (both sorted: one merge). */
    for (uint32_t a = 0, b = 0; a < old_n; a++) {
        c->old_to_topo[a] = ST_NONE;
        while (b < n && aether_node_id_compare(&c->nodes[b].id, &old->nodes[a]) < 0)
            b++;
        if (b < n && aether_node_id_equal(&c->nodes[b].id, &old->nodes[a])) {
            c->old_to_topo[a] = b;
            c->topo_to_old[b] = a;
        }
    }

    size_t rows = (size_t)S * c->kw;
    c->v = malloc(rows * sizeof(*c->v));
    c->vc = calloc(S, sizeof(*c->vc));
    c->vprim = malloc((size_t)S * sizeof(*c->vprim));
    c->lst = malloc(rows * sizeof(*c->lst));
    c->lc = calloc(S, sizeof(*c->lc));
    if (c->v == NULL || c->vc == NULL || c->vprim == NULL || c->lst == NULL || c->lc == NULL)
        return AETHER_ENOMEM;

    /* V(s): valid old owners, in order, zone quota kept, at most k. */
    for (uint32_t s = 0; s < S; s++) {
        c->vprim[s] = ST_NONE;
        if (old == NULL)
            continue;
        const aether_shard_entry *en = &old->shards[s];
        const aether_node_index *row = aether_shardmap_owners(old, s);
        uint32_t *vr = &c->v[(size_t)s * c->kw];
        for (uint32_t j = 0; j < en->owner_count && c->vc[s] < c->k; j++) {
            uint32_t t = c->old_to_topo[row[j]];
            if (t == ST_NONE || !c->elig[t])
                continue;
            st_view w;
            view_init(&w, c, vr, c->vc[s], ST_NONE);
            if (!view_zone_room(&w, c, c->zone_of[t]))
                continue;
            vr[c->vc[s]++] = t;
            if (j == 0)
                c->vprim[s] = t;
        }
        if (c->vprim[s] != ST_NONE)
            c->cur_p[c->vprim[s]]++;
        for (uint32_t j = 0; j < c->vc[s]; j++)
            c->cur_o[vr[j]]++;
    }
    return AETHER_OK;
}

/* ---- targets ----------------------------------------------------------------- */

/* Eligible nodes ordered by (cur desc, id asc), written to out[e]. */
static aether_status order_by_current(const st_ctx *c, const uint32_t *cur, uint32_t *out)
{
    uint64_t *keys = malloc(((size_t)c->e + 1) * sizeof(*keys));
    if (keys == NULL)
        return AETHER_ENOMEM;
    uint32_t m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->elig[i])
            keys[m++] = ((uint64_t)(UINT32_MAX - cur[i]) << 32) | i;
    qsort(keys, m, sizeof(*keys), u64_compare);
    for (uint32_t j = 0; j < m; j++)
        out[j] = (uint32_t)keys[j];
    free(keys);
    return AETHER_OK;
}

static aether_status compute_targets(st_ctx *c)
{
    if (c->e == 0)
        return AETHER_OK;
    aether_status st = AETHER_ENOMEM;
    uint32_t *order = malloc((size_t)c->e * sizeof(*order));
    bool *clamped = calloc((size_t)c->zc, sizeof(*clamped));
    uint64_t *given = calloc((size_t)c->zc, sizeof(*given));
    if (order == NULL || clamped == NULL || given == NULL)
        goto out;

    /* Primaries: S/e each, the remainder to the nodes holding more now. */
    uint32_t qp = c->S / c->e, rp = c->S % c->e;
    if ((st = order_by_current(c, c->cur_p, order)) != AETHER_OK)
        goto out;
    for (uint32_t j = 0; j < c->e; j++)
        c->tp[order[j]] = qp + (j < rp);

    if (c->k == 1) {
        for (uint32_t i = 0; i < c->n; i++)
            c->to[i] = c->tp[i];
        st = AETHER_OK;
        goto out;
    }

    /* Slots: water-filling under the zone caps S * q_z. */
    const uint64_t T = (uint64_t)c->S * c->k;
    uint64_t q = 0, r = 0;
    for (;;) {
        uint64_t nU = 0, Trem = T;
        for (uint32_t z = 0; z < c->zc; z++) {
            if (clamped[z])
                Trem -= (uint64_t)c->S * c->zone_quota[z];
            else
                nU += c->zone_nodes[z];
        }
        if (nU == 0) {
            q = r = 0;
            break;
        }
        q = Trem / nU;
        r = Trem % nU;
        bool any = false;
        for (uint32_t z = 0; z < c->zc; z++) {
            if (!clamped[z] && (uint64_t)c->zone_nodes[z] * q > (uint64_t)c->S * c->zone_quota[z])
                clamped[z] = any = true;
        }
        if (any)
            continue;
        uint64_t room = 0;
        for (uint32_t z = 0; z < c->zc; z++) {
            if (clamped[z])
                continue;
            uint64_t zr = (uint64_t)c->S * c->zone_quota[z] - (uint64_t)c->zone_nodes[z] * q;
            room += zr < c->zone_nodes[z] ? zr : c->zone_nodes[z];
        }
        if (room >= r)
            break;
        for (uint32_t z = 0; z < c->zc; z++) {
            uint64_t zr = (uint64_t)c->S * c->zone_quota[z] - (uint64_t)c->zone_nodes[z] * q;
            if (!clamped[z] && zr < c->zone_nodes[z])
                clamped[z] = true;
        }
    }
    if ((st = order_by_current(c, c->cur_o, order)) != AETHER_OK)
        goto out;
    /* Clamped zones: their cap, spread by the same order. Unclamped: q. */
    for (uint32_t j = 0; j < c->e; j++) {
        uint32_t i = order[j], z = c->zone_of[i];
        if (clamped[z]) {
            uint64_t cap = (uint64_t)c->S * c->zone_quota[z];
            uint64_t share = cap / c->zone_nodes[z], rest = cap % c->zone_nodes[z];
            c->to[i] = (uint32_t)(share + (given[z] < rest));
            given[z]++;
        } else {
            c->to[i] = (uint32_t)q;
            given[z] += q;
        }
    }
    /* The remainder: nodes whose primary target needs it first, then the
     * nodes holding more now; never past a zone's cap. */
    for (int pass = 0; pass < 2 && r > 0; pass++) {
        for (uint32_t j = 0; j < c->e && r > 0; j++) {
            uint32_t i = order[j], z = c->zone_of[i];
            if (clamped[z] || c->to[i] != q)
                continue;
            if (pass == 0 && c->tp[i] <= c->to[i])
                continue;
            if (given[z] >= (uint64_t)c->S * c->zone_quota[z])
                continue;
            c->to[i]++;
            given[z]++;
            r--;
        }
    }
    AETHER_ASSERT(r == 0);

    /* slot_target >= primary_target: move a primary unit to a node with room. */
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->elig[i] || c->to[i] >= c->tp[i])
            continue;
        for (uint32_t m = 0; m < c->n && c->to[i] < c->tp[i]; m++) {
            if (c->elig[m] && c->tp[m] == qp && c->to[m] > c->tp[m] && c->tp[i] == qp + 1) {
                c->tp[m]++;
                c->tp[i]--;
            }
        }
    }
    st = AETHER_OK;
out:
    free(order);
    free(clamped);
    free(given);
    return st;
}

/* ---- primaries (DESIGN step 3) ------------------------------------------------ */

/* Among V(s) minus `skip`, the node with the largest positive primary
 * deficit (ties by index), or ST_NONE. */
static uint32_t promotable(const st_ctx *c, uint32_t s, uint32_t skip)
{
    const uint32_t *vr = &c->v[(size_t)s * c->kw];
    uint32_t best = ST_NONE;
    for (uint32_t j = 0; j < c->vc[s]; j++) {
        uint32_t m = vr[j];
        if (m == skip || c->pdef[m] <= 0)
            continue;
        if (best == ST_NONE || c->pdef[m] > c->pdef[best] ||
            (c->pdef[m] == c->pdef[best] && m < best))
            best = m;
    }
    return best;
}

static void give_primary(st_ctx *c, st_picker *pk, uint32_t *prim, uint32_t s, uint32_t m)
{
    AETHER_ASSERT(m != ST_NONE && c->pdef[m] > 0);
    prim[s] = m;
    c->pdef[m]--;
    picker_update(pk, m);
}

static uint32_t pick_primary_elsewhere(st_ctx *c, st_picker *pk, uint32_t s)
{
    st_view w;
    view_init(&w, c, &c->v[(size_t)s * c->kw], c->vc[s], ST_NONE);
    uint32_t m = picker_best(pk, c, &w);
    if (m == ST_NONE || c->pdef[m] <= 0) {
        /* No zone-compatible node is short of primaries: take the best one
         * anywhere; step 4 sheds the owner its zone cannot hold. */
        st_view none;
        view_init(&none, c, NULL, 0, ST_NONE);
        m = picker_best(pk, c, &none);
    }
    return m;
}

static aether_status assign_primaries(st_ctx *c, uint32_t *prim)
{
    st_picker pk;
    int64_t *excess = calloc((size_t)c->n + 1, sizeof(*excess));
    if (excess == NULL)
        return AETHER_ENOMEM;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->elig[i])
            continue;
        uint32_t keep = c->cur_p[i] < c->tp[i] ? c->cur_p[i] : c->tp[i];
        c->pdef[i] = (int64_t)c->tp[i] - keep;
        excess[i] = (int64_t)c->cur_p[i] - keep;
    }
    if (picker_init(&pk, c, c->pdef) != AETHER_OK) {
        free(excess);
        return AETHER_ENOMEM;
    }
    for (uint32_t s = 0; s < c->S; s++)
        prim[s] = c->vprim[s];
    /* a. Excess primaries that a replica under target can take over. */
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t p = c->vprim[s];
        if (p == ST_NONE || excess[p] == 0)
            continue;
        uint32_t m = promotable(c, s, p);
        if (m != ST_NONE) {
            give_primary(c, &pk, prim, s, m);
            excess[p]--;
        }
    }
    /* b. Orphans (I2): promote if possible, else the neediest node. */
    for (uint32_t s = 0; s < c->S; s++) {
        if (c->vprim[s] != ST_NONE)
            continue;
        uint32_t m = promotable(c, s, ST_NONE);
        if (m == ST_NONE)
            m = pick_primary_elsewhere(c, &pk, s);
        give_primary(c, &pk, prim, s, m);
    }
    /* c. The remaining excess, by shard id. */
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t p = c->vprim[s];
        if (p == ST_NONE || prim[s] != p || excess[p] == 0)
            continue;
        give_primary(c, &pk, prim, s, pick_primary_elsewhere(c, &pk, s));
        excess[p]--;
    }
    for (uint32_t i = 0; i < c->n; i++)
        AETHER_ASSERT(!c->elig[i] || (c->pdef[i] == 0 && excess[i] == 0));
    picker_fini(&pk);
    free(excess);
    return AETHER_OK;
}

/* ---- owner slots (DESIGN step 4) ---------------------------------------------- */

static bool was_old_owner(const st_ctx *c, uint32_t s, uint32_t node)
{
    if (c->old == NULL || c->topo_to_old[node] == ST_NONE)
        return false;
    const aether_shard_entry *en = &c->old->shards[s];
    const aether_node_index *row = aether_shardmap_owners(c->old, s);
    for (uint32_t j = 0; j < en->owner_count; j++)
        if (row[j] == c->topo_to_old[node])
            return true;
    return false;
}

static void keep_old_owners(st_ctx *c, const uint32_t *prim)
{
    /* Projected excess if every valid old owner stayed. */
    for (uint32_t i = 0; i < c->n; i++)
        c->sexc[i] = -(int64_t)c->to[i];
    for (uint32_t s = 0; s < c->S; s++) {
        c->sexc[prim[s]]++;
        const uint32_t *vr = &c->v[(size_t)s * c->kw];
        for (uint32_t j = 0; j < c->vc[s]; j++)
            if (vr[j] != prim[s])
                c->sexc[vr[j]]++;
    }
    for (uint32_t s = 0; s < c->S; s++) {
        const uint32_t *vr = &c->v[(size_t)s * c->kw];
        uint32_t cand[ST_ROW_MAX], nc = 0;
        for (uint32_t j = 0; j < c->vc[s]; j++)
            if (vr[j] != prim[s])
                cand[nc++] = vr[j];
        /* Too many: shed the most over-target member (later ones on ties). */
        while (1 + nc > c->k) {
            uint32_t d = 0;
            for (uint32_t j = 1; j < nc; j++)
                if (c->sexc[cand[j]] >= c->sexc[cand[d]])
                    d = j;
            c->sexc[cand[d]]--;
            memmove(&cand[d], &cand[d + 1], (nc - d - 1) * sizeof(*cand));
            nc--;
        }
        uint32_t *row = &c->lst[(size_t)s * c->kw];
        row[0] = prim[s];
        c->lc[s] = 1;
        for (uint32_t j = 0; j < nc; j++) {
            st_view w;
            view_init(&w, c, row, c->lc[s], ST_NONE);
            if (view_zone_room(&w, c, c->zone_of[cand[j]]))
                row[c->lc[s]++] = cand[j];
            else
                c->sexc[cand[j]]--;
        }
    }
}

/* Augmenting paths (DESIGN step 4, last part). The greedy fill can end with
 * a node over its slot target while the nodes under target all sit in the
 * shards it could give away (few nodes, tight zone quotas). A breadth-first
 * search over nodes finds a chain O -> n1 -> ... -> D where each arrow hands
 * one replica slot of a shard to a node allowed there; applying it moves one unit of load from O to
 * D and leaves every node in between unchanged. A path uses a shard at most
 * once, so each shard sees one replacement and the zone checks stay exact.
 * A first pass hands over only new slots; a second one may also hand over
 * kept ones (an extra copy each) because balance is required. Work is
 * bounded by ST_REPAIR_WORK_MAX; past it the map stays as it is (valid,
 * possibly off balance; never seen in the tests). */
#define ST_REPAIR_WORK_MAX (UINT64_C(1) << 25)

typedef struct st_rec {
    uint32_t shard;
    uint32_t next; /* next record of the same node, ST_NONE at the end */
    uint8_t pos;   /* position in the shard's row (>= 1: a replica) */
} st_rec;

typedef struct st_repair {
    st_rec *rec;
    uint32_t nrec, caprec;
    uint32_t *head;       /* [n] first record of a node (may be stale) */
    uint32_t *par_node;   /* [n] BFS parent */
    uint32_t *par_rec;    /* [n] record used to reach the node */
    uint32_t *queue;      /* [n] */
    uint32_t *unv;        /* [e] nodes not yet visited in this BFS */
    uint64_t work;
} st_repair;

static void repair_fini(st_repair *r)
{
    free(r->rec);
    free(r->head);
    free(r->par_node);
    free(r->par_rec);
    free(r->queue);
    free(r->unv);
}

static bool repair_push(st_repair *r, uint32_t node, uint32_t shard, uint32_t pos)
{
    if (r->nrec == r->caprec) {
        uint32_t cap = r->caprec * 2 + 16;
        st_rec *rec = realloc(r->rec, (size_t)cap * sizeof(*rec));
        if (rec == NULL)
            return false;
        r->rec = rec;
        r->caprec = cap;
    }
    r->rec[r->nrec] = (st_rec){.shard = shard, .next = r->head[node], .pos = (uint8_t)pos};
    r->head[node] = r->nrec++;
    return true;
}

/* True when the BFS path to `node` already hands over a slot of `shard`. */
static bool path_uses(const st_repair *r, uint32_t node, uint32_t origin, uint32_t shard)
{
    for (uint32_t x = node; x != origin; x = r->par_node[x])
        if (r->rec[r->par_rec[x]].shard == shard)
            return true;
    return false;
}

/* One augmenting path from over-target node o; true when applied. */
static bool repair_one(st_ctx *c, st_repair *r, uint32_t o, bool allow_kept, bool *oom)
{
    uint32_t nu = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->elig[i] && i != o)
            r->unv[nu++] = i;
    uint32_t qh = 0, qt = 0;
    r->queue[qt++] = o;
    while (qh < qt && nu > 0) {
        uint32_t a = r->queue[qh++];
        for (uint32_t x = r->head[a]; x != ST_NONE && nu > 0; x = r->rec[x].next) {
            uint32_t s = r->rec[x].shard, j = r->rec[x].pos;
            uint32_t *row = &c->lst[(size_t)s * c->kw];
            if (j >= c->lc[s] || row[j] != a || path_uses(r, a, o, s) ||
                (!allow_kept && was_old_owner(c, s, a)))
                continue;
            st_view w;
            view_init(&w, c, row, c->lc[s], a);
            for (uint32_t u = 0; u < nu; u++) {
                if (++r->work > ST_REPAIR_WORK_MAX)
                    return false;
                uint32_t b = r->unv[u];
                if (view_has(&w, b) || !view_zone_room(&w, c, c->zone_of[b]))
                    continue;
                r->par_node[b] = a;
                r->par_rec[b] = x;
                r->unv[u--] = r->unv[--nu];
                if (c->sdef[b] > 0) {
                    /* Apply from the far end back to o. */
                    for (uint32_t y = b; y != o; y = r->par_node[y]) {
                        st_rec *rec = &r->rec[r->par_rec[y]];
                        c->lst[(size_t)rec->shard * c->kw + rec->pos] = y;
                        uint32_t sh = rec->shard, ps = rec->pos;
                        if (!repair_push(r, y, sh, ps)) {
                            *oom = true;
                            return false;
                        }
                    }
                    c->sdef[b]--;
                    c->sdef[o]++;
                    return true;
                }
                r->queue[qt++] = b;
            }
        }
    }
    return false;
}

static aether_status repair_slots(st_ctx *c)
{
    st_repair r;
    memset(&r, 0, sizeof(r));
    aether_status st = AETHER_ENOMEM;
    size_t n1 = (size_t)c->n + 1;
    r.head = malloc(n1 * sizeof(*r.head));
    r.par_node = malloc(n1 * sizeof(*r.par_node));
    r.par_rec = malloc(n1 * sizeof(*r.par_rec));
    r.queue = malloc(n1 * sizeof(*r.queue));
    r.unv = malloc(n1 * sizeof(*r.unv));
    if (r.head == NULL || r.par_node == NULL || r.par_rec == NULL ||
        r.queue == NULL || r.unv == NULL)
        goto out;
    for (uint32_t i = 0; i < c->n; i++)
        r.head[i] = ST_NONE;
    /* Records in reverse shard order so each node's list runs by shard id. */
    for (uint32_t s = c->S; s-- > 0;)
        for (uint32_t j = c->lc[s]; j-- > 1;) {
            uint32_t a = c->lst[(size_t)s * c->kw + j];
            if (!repair_push(&r, a, s, j))
                goto out;
        }
    /* Pass 0 hands over new slots only (no extra copy); pass 1 also kept
     * ones, because balance is required and may need them. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t o = 0; o < c->n; o++) {
            bool oom = false;
            while (c->elig[o] && c->sdef[o] < 0 && repair_one(c, &r, o, pass == 1, &oom))
                ;
            if (oom)
                goto out;
        }
    }
    st = AETHER_OK;
out:
    repair_fini(&r);
    return st;
}

static aether_status fill_and_balance_slots(st_ctx *c)
{
    aether_status st = AETHER_ENOMEM;
    st_picker pk;
    for (uint32_t i = 0; i < c->n; i++)
        c->sdef[i] = c->elig[i] ? (int64_t)c->to[i] : 0;
    for (uint32_t s = 0; s < c->S; s++)
        for (uint32_t j = 0; j < c->lc[s]; j++)
            c->sdef[c->lst[(size_t)s * c->kw + j]]--;
    if (picker_init(&pk, c, c->sdef) != AETHER_OK)
        return AETHER_ENOMEM;

    /* Fill short lists by shard id. When every node that may take the slot
     * is at target, the least over-target one takes it: balancing below
     * moves it on. */
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t *row = &c->lst[(size_t)s * c->kw];
        while (c->lc[s] < c->k) {
            st_view w;
            view_init(&w, c, row, c->lc[s], ST_NONE);
            uint32_t m = picker_best_spread(&pk, c, &w, s);
            AETHER_ASSERT(m != ST_NONE); /* the zone quotas leave room for k owners */
            row[c->lc[s]++] = m;
            c->sdef[m]--;
            picker_update(&pk, m);
        }
    }

    /* Balance: augmenting paths hand load from nodes over target to nodes
     * under it. */
    bool over = false;
    for (uint32_t i = 0; i < c->n && !over; i++)
        over = c->elig[i] && c->sdef[i] < 0;
    if (over && repair_slots(c) != AETHER_OK)
        goto out;
    st = AETHER_OK;
out:
    picker_fini(&pk);
    return st;
}

/* ---- budget (DESIGN step 5) ---------------------------------------------------- */

/* The old primary as a topo index if it is healthy, else ST_NONE. */
static uint32_t old_healthy_primary(const st_ctx *c, uint32_t s)
{
    if (c->old == NULL || c->old->shards[s].owner_count == 0)
        return ST_NONE;
    uint32_t t = c->old_to_topo[c->old->shards[s].primary];
    if (t == ST_NONE || !aether_node_status_is_healthy(c->nodes[t].status))
        return ST_NONE;
    return t;
}

static void apply_budget(st_ctx *c, uint32_t max_moves, uint32_t *deferred)
{
    uint64_t used = 0;
    for (uint32_t s = 0; s < c->S; s++)
        if (old_healthy_primary(c, s) == ST_NONE)
            used++; /* I2 restorations, never deferred */
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t p = old_healthy_primary(c, s);
        uint32_t *row = &c->lst[(size_t)s * c->kw];
        if (p == ST_NONE || row[0] == p)
            continue;
        if (used < max_moves) {
            used++;
            continue;
        }
        (*deferred)++;
        uint32_t keep[ST_ROW_MAX], nk = 0;
        keep[nk++] = p;
        for (uint32_t j = 0; j < c->lc[s] && nk < c->k; j++) {
            if (row[j] == p)
                continue;
            st_view w;
            view_init(&w, c, keep, nk, ST_NONE);
            if (view_zone_room(&w, c, c->zone_of[row[j]]))
                keep[nk++] = row[j];
        }
        memcpy(row, keep, nk * sizeof(*keep));
        c->lc[s] = (uint8_t)nk;
    }
}

/* ---- brake (DESIGN step 6) ----------------------------------------------------- */

static aether_status brake(st_ctx *c)
{
    /* Here pdef holds -(primaries so far) so the picker prefers the least
     * loaded node. */
    st_picker pk;
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t *row = &c->lst[(size_t)s * c->kw];
        c->lc[s] = 0;
        if (c->old == NULL)
            continue;
        const aether_shard_entry *en = &c->old->shards[s];
        const aether_node_index *orow = aether_shardmap_owners(c->old, s);
        for (uint32_t j = 0; j < en->owner_count && c->lc[s] < c->kw; j++) {
            uint32_t t = c->old_to_topo[orow[j]];
            if (t != ST_NONE && aether_node_status_is_healthy(c->nodes[t].status))
                row[c->lc[s]++] = t;
        }
        if (old_healthy_primary(c, s) != ST_NONE)
            c->pdef[row[0]]--;
    }
    if (c->e == 0)
        return AETHER_OK;
    if (picker_init(&pk, c, c->pdef) != AETHER_OK)
        return AETHER_ENOMEM;
    for (uint32_t s = 0; s < c->S; s++) {
        if (old_healthy_primary(c, s) != ST_NONE)
            continue;
        uint32_t *row = &c->lst[(size_t)s * c->kw];
        uint32_t best = ST_NONE, pos = 0;
        for (uint32_t j = 0; j < c->lc[s]; j++) {
            uint32_t m = row[j];
            if (c->elig[m] && (best == ST_NONE || c->pdef[m] > c->pdef[best] ||
                               (c->pdef[m] == c->pdef[best] && m < best))) {
                best = m;
                pos = j;
            }
        }
        if (best == ST_NONE) {
            st_view none;
            view_init(&none, c, NULL, 0, ST_NONE);
            best = picker_best(&pk, c, &none);
            AETHER_ASSERT(best != ST_NONE);
            if (c->lc[s] == c->kw)
                c->lc[s]--; /* R shrank: the last owner makes room */
            pos = c->lc[s]++;
            row[pos] = best;
        }
        memmove(&row[1], &row[0], pos * sizeof(*row));
        row[0] = best;
        c->pdef[best]--;
        picker_update(&pk, best);
    }
    picker_fini(&pk);
    return AETHER_OK;
}

/* ---- map and plan --------------------------------------------------------------- */

static aether_status build_map(const st_ctx *c, const aether_strategy_config *cfg,
                               aether_term term, aether_shardmap **out, aether_err *err)
{
    aether_shardmap_builder *b = NULL;
    aether_node_index *bidx = malloc(((size_t)c->n + 1) * sizeof(*bidx));
    aether_status st = AETHER_ENOMEM;
    if (bidx == NULL)
        goto fail;
    if ((st = aether_shardmap_builder_create(c->S, cfg->replication, &b, err)) != AETHER_OK)
        goto fail;
    aether_shardmap_builder_set_version(b, c->old != NULL ? c->old->version + 1 : 1);
    aether_shardmap_builder_set_term(b, term);
    for (uint32_t i = 0; i < c->n; i++) {
        bidx[i] = AETHER_NODE_INDEX_NONE;
        if (!aether_node_status_is_healthy(c->nodes[i].status))
            continue;
        if ((st = aether_shardmap_builder_add_node(b, &c->nodes[i].id, &bidx[i], err)) !=
            AETHER_OK)
            goto fail;
    }
    for (uint32_t s = 0; s < c->S; s++) {
        aether_node_index row[ST_ROW_MAX];
        for (uint32_t j = 0; j < c->lc[s]; j++) {
            AETHER_ASSERT(bidx[c->lst[(size_t)s * c->kw + j]] != AETHER_NODE_INDEX_NONE);
            row[j] = bidx[c->lst[(size_t)s * c->kw + j]];
        }
        if ((st = aether_shardmap_builder_set_owners(b, s, row, c->lc[s], err)) != AETHER_OK)
            goto fail;
    }
    st = aether_shardmap_build(b, out, err);
fail:
    if (st == AETHER_ENOMEM)
        aether_err_set(err, AETHER_ENOMEM, "strategy: out of memory");
    aether_shardmap_builder_destroy(b);
    free(bidx);
    return st;
}

static aether_status build_plan(const st_ctx *c, const aether_strategy_config *cfg,
                                uint32_t deferred, aether_rebalance_plan **out)
{
    const aether_shardmap *old = c->old;
    uint32_t old_n = old != NULL ? old->node_count : 0;
    aether_rebalance_plan *p = calloc(1, sizeof(*p));
    uint32_t *old_to_plan = malloc(((size_t)old_n + 1) * sizeof(*old_to_plan));
    uint32_t *topo_to_plan = malloc(((size_t)c->n + 1) * sizeof(*topo_to_plan));
    if (p == NULL || old_to_plan == NULL || topo_to_plan == NULL)
        goto fail;
    p->nodes = calloc((size_t)c->n + old_n + 1, sizeof(*p->nodes));
    if (p->nodes == NULL)
        goto fail;
    p->from_version = old != NULL ? old->version : 0;
    p->to_version = old != NULL ? old->version + 1 : 1;
    p->shard_count = c->S;
    p->replication = cfg->replication;
    p->owner_count = c->k;
    p->eligible_count = c->e;
    p->zone_count = c->zc;
    p->brake_engaged = cfg->brake_engaged;
    p->deferred = deferred;

    /* Union of the topology and the old map's nodes, both sorted. */
    uint32_t a = 0, b = 0, m = 0;
    while (a < c->n || b < old_n) {
        int cmp = a >= c->n ? 1 : b >= old_n ? -1
                                             : aether_node_id_compare(&c->nodes[a].id,
                                                                      &old->nodes[b]);
        aether_plan_node *pn = &p->nodes[m];
        if (cmp <= 0) {
            pn->id = c->nodes[a].id;
            pn->in_topology = true;
            pn->status = c->nodes[a].status;
            pn->primary_target = c->elig[a] ? c->tp[a] : 0;
            pn->slot_target = c->elig[a] ? c->to[a] : 0;
            topo_to_plan[a++] = m;
        } else {
            pn->id = old->nodes[b];
            pn->status = AETHER_NODE_FAILED;
        }
        if (cmp >= 0) {
            size_t np, no;
            aether_shardmap_node_primary_shards(old, (aether_node_index)b, &np);
            aether_shardmap_node_owner_shards(old, (aether_node_index)b, &no);
            pn->primaries_before = (uint32_t)np;
            pn->slots_before = (uint32_t)no;
            old_to_plan[b++] = m;
        }
        m++;
    }
    p->node_count = m;

    uint32_t moved = 0;
    for (uint32_t s = 0; s < c->S; s++) {
        const uint32_t *row = &c->lst[(size_t)s * c->kw];
        uint32_t from = old != NULL && old->shards[s].owner_count > 0
                            ? old_to_plan[old->shards[s].primary]
                            : AETHER_PLAN_NODE_NONE;
        uint32_t to = c->lc[s] > 0 ? topo_to_plan[row[0]] : AETHER_PLAN_NODE_NONE;
        moved += from != to;
        for (uint32_t j = 0; j < c->lc[s]; j++) {
            p->nodes[topo_to_plan[row[j]]].slots_after++;
            p->slots_added += !was_old_owner(c, s, row[j]);
        }
        if (c->lc[s] > 0)
            p->nodes[topo_to_plan[row[0]]].primaries_after++;
        if (old_healthy_primary(c, s) == ST_NONE)
            p->orphans++;
        if (old != NULL) {
            const aether_node_index *orow = aether_shardmap_owners(old, s);
            for (uint32_t j = 0; j < old->shards[s].owner_count; j++) {
                uint32_t t = c->old_to_topo[orow[j]];
                bool still = false;
                for (uint32_t x = 0; x < c->lc[s] && !still && t != ST_NONE; x++)
                    still = row[x] == t;
                p->slots_removed += !still;
            }
        }
    }
    p->moves = malloc(((size_t)moved + 1) * sizeof(*p->moves));
    if (p->moves == NULL)
        goto fail;
    for (uint32_t s = 0; s < c->S; s++) {
        uint32_t from = old != NULL && old->shards[s].owner_count > 0
                            ? old_to_plan[old->shards[s].primary]
                            : AETHER_PLAN_NODE_NONE;
        uint32_t to = c->lc[s] > 0 ? topo_to_plan[c->lst[(size_t)s * c->kw]]
                                   : AETHER_PLAN_NODE_NONE;
        if (from != to)
            p->moves[p->move_count++] = (aether_plan_move){s, from, to};
    }
    p->primaries_moved = p->move_count;

    /* Theoretical minima (strategy.h DESIGN). */
    if (cfg->brake_engaged || c->e == 0) {
        p->primaries_min = c->e == 0 ? p->primaries_moved : p->orphans;
        p->slots_min = p->slots_added;
    } else {
        uint64_t keep_p = 0, keep_o = 0;
        for (uint32_t i = 0; i < c->n; i++) {
            if (!c->elig[i])
                continue;
            keep_p += c->cur_p[i] < c->tp[i] ? c->cur_p[i] : c->tp[i];
            keep_o += c->cur_o[i] < c->to[i] ? c->cur_o[i] : c->to[i];
        }
        p->primaries_min = (uint32_t)(c->S - keep_p);
        p->slots_min = (uint32_t)((uint64_t)c->S * c->k - keep_o);
        /* The spread rule is about the balance of the Active nodes. */
        uint32_t lo = UINT32_MAX, hi = 0;
        for (uint32_t i = 0; i < c->n; i++) {
            if (!c->elig[i])
                continue;
            lo = c->to[i] < lo ? c->to[i] : lo;
            hi = c->to[i] > hi ? c->to[i] : hi;
        }
        p->zone_limited = hi > lo + 1;
    }
    free(old_to_plan);
    free(topo_to_plan);
    *out = p;
    return AETHER_OK;
fail:
    free(old_to_plan);
    free(topo_to_plan);
    aether_rebalance_plan_destroy(p);
    return AETHER_ENOMEM;
}

/* ---- entry points ----------------------------------------------------------------- */

aether_status aether_strategy_balanced_compute(const aether_shardmap *old,
                                               const aether_strategy_node *nodes,
                                               size_t node_count,
                                               const aether_strategy_config *config,
                                               aether_term term, aether_shardmap **map_out,
                                               aether_rebalance_plan **plan_out, aether_err *err)
{
    AETHER_ASSERT(config != NULL && map_out != NULL);
    AETHER_ASSERT(nodes != NULL || node_count == 0);
    *map_out = NULL;
    if (plan_out != NULL)
        *plan_out = NULL;
    st_ctx c;
    memset(&c, 0, sizeof(c));
    uint32_t *prim = NULL, deferred = 0;
    aether_shardmap *map = NULL;
    aether_status st = ctx_setup(&c, old, nodes, node_count, config, err);
    if (st != AETHER_OK)
        goto fail;
    if (config->brake_engaged) {
        if ((st = brake(&c)) != AETHER_OK)
            goto fail;
    } else if (c.e > 0) {
        st = AETHER_ENOMEM;
        prim = malloc((size_t)c.S * sizeof(*prim));
        if (prim == NULL)
            goto fail;
        if ((st = compute_targets(&c)) != AETHER_OK)
            goto fail;
        if ((st = assign_primaries(&c, prim)) != AETHER_OK)
            goto fail;
        keep_old_owners(&c, prim);
        if ((st = fill_and_balance_slots(&c)) != AETHER_OK)
            goto fail;
        if (config->max_moves > 0)
            apply_budget(&c, config->max_moves, &deferred);
    }
    if ((st = build_map(&c, config, term, &map, err)) != AETHER_OK)
        goto fail;
    if (plan_out != NULL && (st = build_plan(&c, config, deferred, plan_out)) != AETHER_OK)
        goto fail;
    free(prim);
    ctx_free(&c);
    *map_out = map;
    return AETHER_OK;
fail:
    if (st == AETHER_ENOMEM)
        aether_err_set(err, AETHER_ENOMEM, "strategy: out of memory");
    aether_shardmap_destroy(map);
    free(prim);
    ctx_free(&c);
    return st;
}

static const aether_strategy STRATEGY_BALANCED = {
    .name = "balanced",
    .compute = aether_strategy_balanced_compute,
};

const aether_strategy *aether_strategy_default(void)
{
    return &STRATEGY_BALANCED;
}
