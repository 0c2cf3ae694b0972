/* SPDX-License-Identifier: Apache-2.0 */
/*
 * invariants.c: the domain invariants (actors layer). See invariants.h.
 */
#include "invariants.h"

#include <stdlib.h>
#include <string.h>

#include "assertion.h"

aether_status aether_invariants_check_map(const aether_shardmap *map, const aether_topology *topo,
                                          aether_err *err)
{
    /* Per map node: its status in the topology (resolved once, not per shard). */
    uint32_t healthy_nodes = 0, zones = 0;
    for (uint32_t i = 0; i < topo->count; i++)
        healthy_nodes += aether_node_status_is_healthy(topo->nodes[i].status);
    /* Distinct zones among Active nodes (topology order is by id, so count
     * a zone when no earlier Active node has it). */
    for (uint32_t i = 0; i < topo->count; i++) {
        const aether_node_info *n = &topo->nodes[i];
        if (n->status != AETHER_NODE_ACTIVE || n->zone[0] == '\0')
            continue;
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = topo->nodes[j].status == AETHER_NODE_ACTIVE &&
                   strcmp(topo->nodes[j].zone, n->zone) == 0;
        zones += !seen;
    }
    const aether_node_info **info = NULL;
    if (map->node_count > 0) {
        info = calloc(map->node_count, sizeof(*info));
        if (info == NULL)
            return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < map->node_count; i++)
        info[i] = aether_topology_find(topo, &map->nodes[i]);

    aether_status st = AETHER_OK;
    for (uint32_t s = 0; s < map->shard_count && st == AETHER_OK; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(map, s);
        const aether_node_index *owners = aether_shardmap_owners(map, s);
        if (e->owner_count == 0) {
            if (healthy_nodes > 0)
                st = aether_err_set(err, AETHER_ESTATE, "I2: shard %u has no primary", s);
            continue;
        }
        for (uint32_t j = 0; j < e->owner_count && st == AETHER_OK; j++) {
            const aether_node_info *n = info[owners[j]];
            if (n == NULL || !aether_node_status_is_healthy(n->status))
                st = aether_err_set(err, AETHER_ESTATE, "I3: shard %u owner %s is %s", s,
                                    map->nodes[owners[j]].str,
                                    n == NULL ? "unknown" : aether_node_status_name(n->status));
        }
        if (st == AETHER_OK && zones >= e->owner_count && e->owner_count > 1) {
            for (uint32_t j = 1; j < e->owner_count && st == AETHER_OK; j++)
                for (uint32_t k = 0; k < j && st == AETHER_OK; k++)
                    if (strcmp(info[owners[j]]->zone, info[owners[k]]->zone) == 0)
                        st = aether_err_set(err, AETHER_ESTATE,
                                            "I3: shard %u has two owners in zone %s while %u zones exist",
                                            s, info[owners[j]]->zone, zones);
        }
        if (st == AETHER_OK && e->state == AETHER_SHARD_MOVING) {
            const aether_node_info *to = info[e->to];
            if (to == NULL || to->status != AETHER_NODE_ACTIVE)
                st = aether_err_set(err, AETHER_ESTATE, "I3: shard %u moves to %s, which is %s", s,
                                    map->nodes[e->to].str,
                                    to == NULL ? "unknown" : aether_node_status_name(to->status));
        }
    }
    free(info);
    return st;
}

aether_status aether_invariants_check_leader(const aether_topology *topo,
                                             const aether_node_id *leader, aether_err *err)
{
    const aether_node_info *n = aether_topology_find(topo, leader);
    if (n == NULL)
        return aether_err_set(err, AETHER_ESTATE, "I5: leader %s is not a member", leader->str);
    if (n->status != AETHER_NODE_ACTIVE)
        return aether_err_set(err, AETHER_ESTATE, "I5: leader %s is %s", leader->str,
                              aether_node_status_name(n->status));
    return AETHER_OK;
}

aether_status aether_invariants_check_stable(const aether_shardmap *old, const aether_shardmap *next,
                                             bool topology_changed, bool explicit_rebalance,
                                             aether_err *err)
{
    if (topology_changed || explicit_rebalance || old == NULL)
        return AETHER_OK;
    if (old->shard_count != next->shard_count)
        return aether_err_set(err, AETHER_ESTATE, "I4: shard count changed from %u to %u",
                              old->shard_count, next->shard_count);
    for (uint32_t s = 0; s < old->shard_count; s++) {
        const aether_shard_entry *a = aether_shardmap_entry(old, s);
        const aether_shard_entry *b = aether_shardmap_entry(next, s);
        bool same = a->owner_count == b->owner_count;
        const aether_node_index *oa = aether_shardmap_owners(old, s);
        const aether_node_index *ob = aether_shardmap_owners(next, s);
        for (uint32_t j = 0; same && j < a->owner_count; j++)
            same = aether_node_id_equal(&old->nodes[oa[j]], &next->nodes[ob[j]]);
        if (!same)
            return aether_err_set(err, AETHER_ESTATE,
                                  "I4: shard %u changed owners without a topology change or rebalance",
                                  s);
    }
    return AETHER_OK;
}

aether_status aether_invariants_check_claims(uint32_t shard_count,
                                             const aether_ownership_claim *claims,
                                             uint32_t n_claims, aether_err *err)
{
    /* owner_of[s] = 1 + index of the claim that serves s; 0 = nobody. */
    uint32_t *owner_of = calloc(shard_count ? shard_count : 1, sizeof(*owner_of));
    if (owner_of == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    aether_status st = AETHER_OK;
    for (uint32_t c = 0; c < n_claims && st == AETHER_OK; c++) {
        for (uint32_t k = 0; k < claims[c].count && st == AETHER_OK; k++) {
            uint32_t s = claims[c].shards[k];
            if (s >= shard_count) {
                st = aether_err_set(err, AETHER_EINVAL, "%s claims shard %u of %u",
                                    claims[c].node.str, s, shard_count);
            } else if (owner_of[s] != 0 && owner_of[s] != c + 1) {
                st = aether_err_set(err, AETHER_ESTATE,
                                    "single ownership: shard %u served by %s and %s", s,
                                    claims[owner_of[s] - 1].node.str, claims[c].node.str);
            } else {
                owner_of[s] = c + 1;
            }
        }
    }
    free(owner_of);
    return st;
}

void aether_term_registry_init(aether_term_registry *r) { memset(r, 0, sizeof(*r)); }

void aether_term_registry_fini(aether_term_registry *r)
{
    free(r->entries);
    memset(r, 0, sizeof(*r));
}

static bool entry_below(const struct aether_term_entry *e, uint64_t generation, aether_term term)
{
    return e->generation < generation || (e->generation == generation && e->term < term);
}

aether_status aether_term_registry_record(aether_term_registry *r, uint64_t generation,
                                          aether_term term, const aether_node_id *leader,
                                          aether_err *err)
{
    uint32_t lo = 0, hi = r->count;
    while (lo < hi) { /* bounded: log2(count) halvings */
        uint32_t mid = lo + (hi - lo) / 2;
        if (entry_below(&r->entries[mid], generation, term))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->count && r->entries[lo].term == term && r->entries[lo].generation == generation) {
        if (aether_node_id_equal(&r->entries[lo].leader, leader))
            return AETHER_OK;
        if (generation == 0)
            return aether_err_set(err, AETHER_ESTATE, "I1: term %llu has two leaders, %s and %s",
                                  (unsigned long long)term, r->entries[lo].leader.str, leader->str);
        return aether_err_set(err, AETHER_ESTATE,
                              "I1: term %llu of generation %016llx has two leaders, %s and %s",
                              (unsigned long long)term, (unsigned long long)generation,
                              r->entries[lo].leader.str, leader->str);
    }
    if (r->count == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        struct aether_term_entry *v = realloc(r->entries, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return aether_err_set(err, AETHER_ENOMEM, "out of memory");
        r->entries = v;
        r->cap = cap;
    }
    memmove(&r->entries[lo + 1], &r->entries[lo], (size_t)(r->count - lo) * sizeof(*r->entries));
    r->entries[lo].generation = generation;
    r->entries[lo].term = term;
    r->entries[lo].leader = *leader;
    r->count++;
    return AETHER_OK;
}

void aether_departures_init(aether_departures *d) { memset(d, 0, sizeof(*d)); }

void aether_departures_fini(aether_departures *d)
{
    free(d->entries);
    memset(d, 0, sizeof(*d));
}

aether_status aether_departures_note(aether_departures *d, const aether_event *e)
{
    const aether_node_id *node;
    if (e->type == AETHER_EVT_NODE_FAILED)
        node = &e->data.node_failed.node;
    else if (e->type == AETHER_EVT_NODE_LEFT)
        node = &e->data.node_left.node;
    else if (e->type == AETHER_EVT_NODE_JOINED)
        node = &e->data.node_joined.node;
    else
        return AETHER_OK;
    if (e->type == AETHER_EVT_NODE_JOINED) {
        uint32_t w = 0;
        for (uint32_t r = 0; r < d->count; r++)
            if (!aether_node_id_equal(&d->entries[r].node, node))
                d->entries[w++] = d->entries[r];
        d->count = w;
        return AETHER_OK;
    }
    for (uint32_t i = 0; i < d->count; i++)
        if (aether_node_id_equal(&d->entries[i].node, node) &&
            aether_node_id_equal(&d->entries[i].emitter, &e->node) && d->entries[i].term == e->term)
            return AETHER_OK; /* a repeat */
    if (d->count == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2u : 16u;
        struct aether_departure *v = realloc(d->entries, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return AETHER_ENOMEM;
        d->entries = v;
        d->cap = cap;
    }
    d->entries[d->count++] = (struct aether_departure){ .node = *node, .emitter = e->node, .term = e->term };
    return AETHER_OK;
}

aether_status aether_departures_check_map(const aether_departures *d, const aether_node_id *from,
                                          const aether_shardmap *map, aether_err *err)
{
    for (uint32_t i = 0; i < d->count; i++) {
        const struct aether_departure *x = &d->entries[i];
        if (x->term != map->term || !aether_node_id_equal(&x->emitter, from))
            continue;
        aether_node_index idx = aether_shardmap_find_node(map, &x->node);
        if (idx == AETHER_NODE_INDEX_NONE)
            continue;
        size_t owned = 0;
        (void)aether_shardmap_node_owner_shards(map, idx, &owned);
        if (owned > 0)
            return aether_err_set(err, AETHER_ESTATE,
                                  "departures: %s published map v%llu (term %llu) giving %zu shard(s) "
                                  "to %s after announcing its departure in that term",
                                  from->str, (unsigned long long)map->version,
                                  (unsigned long long)map->term, owned, x->node.str);
    }
    return AETHER_OK;
}

/* ---- a running cluster, as a harness sees it ---------------------------------- */

aether_status aether_invariants_check_one_leader(const aether_oracle_view *views, uint32_t n,
                                                 aether_err *err)
{
    const aether_oracle_view *leader = NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (!views[i].running || !views[i].is_leader)
            continue;
        if (leader != NULL)
            return aether_err_set(err, AETHER_ESTATE, "I1: %s and %s both act as leader", leader->name,
                                  views[i].name);
        leader = &views[i];
    }
    return AETHER_OK;
}

aether_status aether_invariants_leader(const aether_oracle_view *views, uint32_t n,
                                       uint32_t *leader, aether_err *err)
{
    uint32_t found = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (!views[i].running || views[i].frozen || !views[i].is_leader)
            continue;
        if (found != UINT32_MAX)
            return aether_err_set(err, AETHER_ESTATE, "two nodes act as leader: %s and %s",
                                  views[found].name, views[i].name);
        found = i;
    }
    if (found == UINT32_MAX)
        return aether_err_set(err, AETHER_ESTATE, "no leader");
    *leader = found;
    return AETHER_OK;
}

aether_status aether_invariants_check_one_version(const aether_oracle_view *views, uint32_t n,
                                                  uint64_t *version, aether_err *err)
{
    const aether_oracle_view *first = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const aether_oracle_view *v = &views[i];
        if (!v->running || v->frozen || v->incompatible)
            continue;
        if (v->map_version == 0)
            return aether_err_set(err, AETHER_ESTATE, "%s has no map yet", v->name);
        if (first != NULL && v->map_version != first->map_version)
            return aether_err_set(err, AETHER_ESTATE, "%s on map v%llu, others on v%llu", v->name,
                                  (unsigned long long)v->map_version,
                                  (unsigned long long)first->map_version);
        if (first == NULL)
            first = v;
    }
    if (first == NULL)
        return aether_err_set(err, AETHER_ESTATE, "no live node");
    *version = first->map_version;
    return AETHER_OK;
}

/* The process of node id `node`: the running one if any, else the first
 * view of that id; NULL if none. */
static const aether_oracle_view *view_of(const aether_settled_input *in, const char *node)
{
    const aether_oracle_view *first = NULL;
    for (uint32_t i = 0; i < in->n_views; i++) {
        if (strcmp(in->views[i].node, node) != 0)
            continue;
        if (in->views[i].running)
            return &in->views[i];
        if (first == NULL)
            first = &in->views[i];
    }
    return first;
}

static const aether_node_info *topo_find_str(const aether_topology *topo, const char *node)
{
    const aether_node_info *info = NULL;
    for (uint32_t k = 0; k < topo->count; k++)
        if (strcmp(topo->nodes[k].id.str, node) == 0)
            info = &topo->nodes[k];
    return info;
}

/* Each view's record in the leader's topology is what its harness expects. */
static aether_status settled_membership(const aether_settled_input *in, aether_err *err)
{
    for (uint32_t i = 0; i < in->n_views; i++) {
        const aether_oracle_view *v = &in->views[i];
        const aether_node_info *info = topo_find_str(in->topo, v->node);
        aether_node_status want = AETHER_NODE_ACTIVE;
        switch (v->expect) {
        case AETHER_EXPECT_ANY:
            continue;
        case AETHER_EXPECT_DOWN:
            if (info != NULL && aether_node_status_is_healthy(info->status))
                return aether_err_set(err, AETHER_ESTATE, "%s is down but %s", v->name,
                                      aether_node_status_name(info->status));
            continue;
        case AETHER_EXPECT_LEFT_OR_FORGOTTEN:
            if (info == NULL)
                continue;
            want = AETHER_NODE_LEFT;
            break;
        case AETHER_EXPECT_LEFT:
            want = AETHER_NODE_LEFT;
            break;
        case AETHER_EXPECT_ACTIVE:
            break;
        }
        if (info == NULL || info->status != want)
            return aether_err_set(err, AETHER_ESTATE, "%s is %s, should be %s", v->name,
                                  info ? aether_node_status_name(info->status) : "unknown",
                                  aether_node_status_name(want));
    }
    return AETHER_OK;
}

static uint32_t holders_of(const aether_settled_input *in, uint32_t shard)
{
    if (in->holders != NULL)
        return in->holders[shard];
    uint32_t k = 0;
    for (uint32_t i = 0; i < in->n_views; i++)
        k += in->views[i].serving != NULL && in->views[i].serving[shard] != 0;
    return k;
}

/* Every shard stable, min(R, Active) owners, all Active and running, served
 * by its primary and by nobody else. */
static aether_status settled_shards(const aether_settled_input *in, uint32_t active, aether_err *err)
{
    const aether_shardmap *map = in->map;
    uint32_t want_owners = active < in->replication ? active : in->replication;
    for (uint32_t sh = 0; sh < map->shard_count; sh++) {
        const aether_shard_entry *e = aether_shardmap_entry(map, sh);
        if (e->state != AETHER_SHARD_STABLE)
            return aether_err_set(err, AETHER_ESTATE, "shard %u still moving", sh);
        if (e->owner_count != want_owners && (!in->brake_engaged || e->owner_count == 0))
            return aether_err_set(err, AETHER_ESTATE, "I2/I3: shard %u has %u owners, want %u", sh,
                                  e->owner_count, want_owners);
        const aether_node_index *o = aether_shardmap_owners(map, sh);
        for (uint32_t j = 0; j < e->owner_count; j++) {
            const char *id = map->nodes[o[j]].str;
            const aether_oracle_view *on = view_of(in, id);
            const aether_node_info *info = aether_topology_find(in->topo, &map->nodes[o[j]]);
            if (on == NULL || !on->running || info == NULL || info->status != AETHER_NODE_ACTIVE)
                return aether_err_set(err, AETHER_ESTATE, "I2/I3: shard %u owner %s is %s", sh, id,
                                      on == NULL || !on->running ? "down"
                                      : info ? aether_node_status_name(info->status)
                                             : "unknown");
        }
        if (e->owner_count == 0 || in->serving_unobserved)
            continue;
        const aether_oracle_view *primary = view_of(in, map->nodes[e->primary].str);
        uint32_t holders = holders_of(in, sh);
        if (primary->serving == NULL || !primary->serving[sh] || !primary->may_serve)
            return aether_err_set(err, AETHER_ESTATE, "shard %u: primary %s does not serve it", sh,
                                  primary->name);
        if (holders != 1)
            return aether_err_set(err, AETHER_ESTATE, "shard %u held by %u nodes", sh, holders);
    }
    return AETHER_OK;
}

aether_status aether_invariants_check_settled(const aether_settled_input *in, aether_err *err)
{
    AETHER_ASSERT(in->leader < in->n_views);
    const aether_oracle_view *leader = &in->views[in->leader];
    if (in->topo == NULL)
        return aether_err_set(err, AETHER_ESTATE, "leader %s has no topology", leader->name);
    uint32_t active = 0;
    for (uint32_t i = 0; i < in->topo->count; i++)
        active += in->topo->nodes[i].status == AETHER_NODE_ACTIVE;
    const aether_node_info *me = topo_find_str(in->topo, leader->node);
    if (me == NULL || me->status != AETHER_NODE_ACTIVE)
        return aether_err_set(err, AETHER_ESTATE, "I5: leader %s is %s", leader->name,
                              me ? aether_node_status_name(me->status) : "not a member");
    aether_status st = settled_membership(in, err);
    if (st != AETHER_OK)
        return st;
    if (in->map == NULL)
        return aether_err_set(err, AETHER_ESTATE, "leader %s has no map", leader->name);
    st = settled_shards(in, active, err);
    if (st != AETHER_OK)
        return st;
    for (uint32_t i = 0; i < in->n_views; i++) {
        const aether_oracle_view *v = &in->views[i];
        if (!v->running || v->frozen)
            continue;
        if (v->incompatible) { /* it never installs the cluster's maps */
            if (v->serving_count != 0)
                return aether_err_set(err, AETHER_ESTATE, "%s cannot serve this cluster but serves %u shards",
                                      v->name, v->serving_count);
            continue;
        }
        if (v->map_version != in->map->version)
            return aether_err_set(err, AETHER_ESTATE, "%s has map v%llu, leader %s v%llu", v->name,
                                  (unsigned long long)v->map_version, leader->name,
                                  (unsigned long long)in->map->version);
        if (v->serving_count > 0 && !v->may_serve && !in->serving_unobserved)
            return aether_err_set(err, AETHER_ESTATE, "%s holds shards but may not serve", v->name);
    }
    return AETHER_OK;
}

aether_status aether_invariants_check_balance(const aether_shardmap *map, const aether_topology *topo,
                                              aether_err *err)
{
    uint32_t pmin = UINT32_MAX, pmax = 0, omin = UINT32_MAX, omax = 0;
    for (uint32_t i = 0; i < topo->count; i++) {
        if (topo->nodes[i].status != AETHER_NODE_ACTIVE)
            continue;
        aether_node_index idx = aether_shardmap_find_node(map, &topo->nodes[i].id);
        size_t p = 0, o = 0;
        if (idx != AETHER_NODE_INDEX_NONE) {
            (void)aether_shardmap_node_primary_shards(map, idx, &p);
            (void)aether_shardmap_node_owner_shards(map, idx, &o);
        }
        pmin = (uint32_t)p < pmin ? (uint32_t)p : pmin;
        pmax = (uint32_t)p > pmax ? (uint32_t)p : pmax;
        omin = (uint32_t)o < omin ? (uint32_t)o : omin;
        omax = (uint32_t)o > omax ? (uint32_t)o : omax;
    }
    if (pmin != UINT32_MAX && (pmax > pmin + 1 || omax > omin + 1))
        return aether_err_set(err, AETHER_ESTATE, "primaries per Active node %u..%u, owners %u..%u",
                              pmin, pmax, omin, omax);
    return AETHER_OK;
}

aether_status aether_invariants_check_progress(const char *name, const char *what, uint64_t before,
                                               uint64_t now, aether_err *err)
{
    if (now < before)
        return aether_err_set(err, AETHER_ESTATE, "%s: %s went back from %llu to %llu", name, what,
                              (unsigned long long)before, (unsigned long long)now);
    return AETHER_OK;
}
