/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topology_json.c: topology <-> JSON with jansson (actors layer). See
 * topology_json.h.
 */
#include "topology_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "json_util.h"
#include "keyhash.h"
#include "shardmap.h"

aether_status aether_topology_json_encode(const aether_topology *t, char **out, size_t *len_out,
                                          aether_err *err)
{
    return aether_topology_json_encode_gen(t, 0, out, len_out, err);
}

aether_status aether_topology_json_encode_gen(const aether_topology *t, uint64_t generation,
                                              char **out, size_t *len_out, aether_err *err)
{
    json_t *nodes = json_array();
    json_t *root = json_pack("{s:I}", "version", (json_int_t)t->version);
    /* Key order: version, gen (when said), nodes. */
    if (root == NULL || aether_json_generation_set(root, generation) != 0) {
        json_decref(root);
        json_decref(nodes);
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    }
    if (json_object_set_new(root, "nodes", nodes) != 0) { /* releases nodes */
        json_decref(root);
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < t->count; i++) {
        const aether_node_info *n = &t->nodes[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "id", n->id.str, "address", n->address,
                              "zone", n->zone, "status", aether_node_status_name(n->status),
                              "incarnation", (json_int_t)n->incarnation, "joined_at_ms",
                              (json_int_t)n->joined_at_ms);
        /* Optional (topology.h, "Incarnations"): absent when 0, so a record
         * without one reads as before. */
        if (o != NULL && n->nonce != 0 &&
            json_object_set_new(o, "nonce", json_integer((json_int_t)n->nonce)) != 0) {
            json_decref(o);
            o = NULL;
        }
        /* Optional too (node.h, aether_node_info.terms): absent when not
         * recorded. */
        char params[17];
        snprintf(params, sizeof(params), "%016" PRIx64, n->terms.params);
        if (o != NULL && n->terms.shard_count != 0 &&
            json_object_set_new(o, "terms",
                                json_pack("{s:I,s:I,s:I,s:I,s:s}", "shard_count",
                                          (json_int_t)n->terms.shard_count, "replication",
                                          (json_int_t)n->terms.replication, "wire_min",
                                          (json_int_t)n->terms.wire_min, "wire_max",
                                          (json_int_t)n->terms.wire_max, "params", params)) != 0) {
            json_decref(o);
            o = NULL;
        }
        if (o == NULL || json_array_append_new(nodes, o) != 0) {
            json_decref(root);
            return aether_err_set(err, AETHER_ENOMEM, "out of memory");
        }
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    *out = s;
    if (len_out)
        *len_out = strlen(s);
    return AETHER_OK;
}

static aether_status get_u64(json_t *o, const char *key, uint64_t *v, const char *path, aether_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return aether_err_set(err, AETHER_EINVAL, "%s.%s: missing or not a non-negative integer", path, key);
    *v = (uint64_t)json_integer_value(x);
    return AETHER_OK;
}

static const char *get_str(json_t *o, const char *key)
{
    json_t *x = json_object_get(o, key);
    return json_is_string(x) ? json_string_value(x) : NULL;
}

/* A node record's optional "terms" (aether_node_info.terms), checked as a
 * JoinCluster's are (transport/codec.h). */
static aether_status get_terms(json_t *o, aether_admission *terms, const char *path, aether_err *err)
{
    json_t *x = json_object_get(o, "terms");
    uint64_t sc = 0, r = 0, wmin = 0, wmax = 0;
    char tpath[64];
    snprintf(tpath, sizeof(tpath), "%s.terms", path);
    aether_status st;
    if (!json_is_object(x) || json_object_size(x) != 5u)
        return aether_err_set(err, AETHER_EINVAL,
                              "%s: expected shard_count, replication, wire_min, wire_max, params", tpath);
    if ((st = get_u64(x, "shard_count", &sc, tpath, err)) != AETHER_OK ||
        (st = get_u64(x, "replication", &r, tpath, err)) != AETHER_OK ||
        (st = get_u64(x, "wire_min", &wmin, tpath, err)) != AETHER_OK ||
        (st = get_u64(x, "wire_max", &wmax, tpath, err)) != AETHER_OK)
        return st;
    const char *hex = get_str(x, "params");
    char *end = NULL;
    unsigned long long params = hex != NULL && strlen(hex) == 16 ? strtoull(hex, &end, 16) : 0;
    if (hex == NULL || end != hex + 16 || strspn(hex, "0123456789abcdef") != 16)
        return aether_err_set(err, AETHER_EINVAL, "%s.params: expected 16 lowercase hex digits", tpath);
    if (sc < 1 || sc > AETHER_SHARD_COUNT_MAX || r < 1 || r > AETHER_REPLICATION_MAX || wmin < 1 ||
        wmin > wmax || wmax > AETHER_WIRE_VERSION_LIMIT)
        return aether_err_set(err, AETHER_EINVAL, "%s: out of range", tpath);
    terms->shard_count = (uint32_t)sc;
    terms->replication = (uint32_t)r;
    terms->wire_min = (uint32_t)wmin;
    terms->wire_max = (uint32_t)wmax;
    terms->params = (uint64_t)params;
    return AETHER_OK;
}


aether_status aether_topology_json_decode(const char *buf, size_t len, aether_topology *t,
                                          aether_err *err)
{
    uint64_t gen;
    return aether_topology_json_decode_gen(buf, len, t, &gen, err);
}

aether_status aether_topology_json_decode_gen(const char *buf, size_t len, aether_topology *t,
                                              uint64_t *generation, aether_err *err)
{
    *generation = 0;
    if (len > AETHER_TOPOLOGY_JSON_MAX_BYTES)
        return aether_err_set(err, AETHER_EINVAL, "topology: %zu bytes, more than %u", len,
                              AETHER_TOPOLOGY_JSON_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return aether_err_set(err, AETHER_EINVAL, "topology: malformed JSON at line %d: %s",
                              jerr.line, jerr.text);
    aether_status st = AETHER_OK;
    aether_topology next;
    aether_topology_init(&next, &t->self);
    json_t *nodes = json_object_get(root, "nodes");
    bool has_gen = json_is_object(root) && json_object_get(root, "gen") != NULL;
    if (!json_is_object(root) || json_object_size(root) != 2u + has_gen) {
        st = aether_err_set(err, AETHER_EINVAL, "topology: expected an object with version, [gen,] nodes");
        goto out;
    }
    uint64_t gen = 0;
    if (!aether_json_generation_get(root, &gen)) {
        st = aether_err_set(err, AETHER_EINVAL,
                            "topology.gen: expected 16 lowercase hex digits naming a generation "
                            "(not all zeros)");
        goto out;
    }
    uint64_t version = 0;
    if ((st = get_u64(root, "version", &version, "topology", err)) != AETHER_OK)
        goto out;
    if (!json_is_array(nodes) || json_array_size(nodes) > AETHER_TOPOLOGY_NODES_MAX) {
        st = aether_err_set(err, AETHER_EINVAL, "topology.nodes: missing, not an array or too long");
        goto out;
    }
    size_t i;
    json_t *o;
    json_array_foreach(nodes, i, o)
    {
        char path[48];
        snprintf(path, sizeof(path), "nodes[%zu]", i);
        const char *id = get_str(o, "id"), *address = get_str(o, "address"),
                   *zone = get_str(o, "zone"), *status = get_str(o, "status");
        uint64_t inc = 0, joined = 0, nonce = 0;
        aether_node_status ns;
        aether_node_info info;
        bool has_nonce = json_is_object(o) && json_object_get(o, "nonce") != NULL;
        bool has_terms = json_is_object(o) && json_object_get(o, "terms") != NULL;
        aether_admission terms = {0};
        if (!json_is_object(o) || json_object_size(o) != 6u + has_nonce + has_terms || !id ||
            !address || !zone || !status) {
            st = aether_err_set(err, AETHER_EINVAL, "%s: expected id, address, zone, status, incarnation, joined_at_ms[, nonce][, terms]", path);
            goto out;
        }
        if ((st = get_u64(o, "incarnation", &inc, path, err)) != AETHER_OK ||
            (st = get_u64(o, "joined_at_ms", &joined, path, err)) != AETHER_OK ||
            (has_nonce && (st = get_u64(o, "nonce", &nonce, path, err)) != AETHER_OK) ||
            (has_terms && (st = get_terms(o, &terms, path, err)) != AETHER_OK))
            goto out;
        if ((st = aether_node_status_parse(status, &ns, err)) != AETHER_OK ||
            (st = aether_node_info_make(&info, id, address, zone, ns, inc, joined, err)) != AETHER_OK) {
            aether_err_prefix(err, "%s", path);
            goto out;
        }
        if (aether_topology_find(&next, &info.id) != NULL) {
            st = aether_err_set(err, AETHER_EINVAL, "%s.id: duplicate node %s", path, info.id.str);
            goto out;
        }
        /* Apply as a join, then set the status: keeps the sorted insert in one place. */
        aether_event *e = aether_event_create(AETHER_EVT_NODE_JOINED);
        if (e == NULL) {
            st = aether_err_set(err, AETHER_ENOMEM, "out of memory");
            goto out;
        }
        e->data.node_joined.node = info.id;
        memcpy(e->data.node_joined.address, info.address, sizeof(info.address));
        memcpy(e->data.node_joined.zone, info.zone, sizeof(info.zone));
        e->data.node_joined.incarnation = inc;
        e->data.node_joined.nonce = nonce;
        e->ts_ms = joined;
        aether_topology_apply(&next, e);
        aether_event_release(e);
        aether_node_info *slot = (aether_node_info *)aether_topology_find(&next, &info.id);
        if (slot == NULL) {
            st = aether_err_set(err, AETHER_ENOMEM, "out of memory");
            goto out;
        }
        slot->status = ns;
        slot->terms = terms;
    }
    /* apply() counted the inserts in next.version; the stored version rules. */
    free(t->nodes);
    t->nodes = next.nodes;
    t->count = next.count;
    t->cap = next.cap;
    t->version = version;
    *generation = gen;
    next.nodes = NULL;
out:
    aether_topology_fini(&next);
    json_decref(root);
    return st;
}
