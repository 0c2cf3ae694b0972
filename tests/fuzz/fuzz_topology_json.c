/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_topology_json.c: libFuzzer target for topology JSON decoding
 * (actors/topology_json.h; tests layer, fuzz build only). Seeds:
 * tests/corpus/topology_json/, written by this target's own seed mode from
 * topologies built with aether_topology_apply and encoded with
 * aether_topology_json_encode_gen (tools/fuzz --gen-corpus).
 *
 * Each input is decoded into a copy of a topology that already holds two
 * nodes, a leader and a term. Properties, each an abort when broken:
 *  1. a refusal is AETHER_EINVAL (or ENOMEM) with err.code equal to it and a
 *     message, and leaves the topology exactly as it was;
 *  2. an accepted topology keeps self, leader and term; its nodes are
 *     strictly ascending by id and each passes aether_node_info_validate;
 *  3. lossless: every node object of the input equals (jansson json_equal)
 *     the re-encoded object of the node with that id, and the versions
 *     and gens (absent in both, or equal) match, so nothing the input said
 *     was dropped or bent;
 *  4. round trip: decode(encode(t)) == t, and encode(decode(encode(t))) ==
 *     encode(t) byte for byte.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fuzz_util.h"
#include "topology.h"
#include "topology_json.h"

static aether_topology template_topo; /* immutable after LLVMFuzzerInitialize */

static aether_node_id make_id(const char *s)
{
    aether_node_id id;
    aether_err err = {0};
    FUZZ_CHECK(aether_node_id_from_cstr(s, &id, &err) == AETHER_OK, "%s", err.msg);
    return id;
}

static bool info_equal(const aether_node_info *a, const aether_node_info *b)
{
    return aether_node_id_equal(&a->id, &b->id) && strcmp(a->address, b->address) == 0 &&
           strcmp(a->zone, b->zone) == 0 && a->status == b->status &&
           a->incarnation == b->incarnation && a->joined_at_ms == b->joined_at_ms &&
           a->nonce == b->nonce;
}

/* The nodes and version (what the JSON carries), plus the leadership view
 * decode must keep. */
static bool topo_equal(const aether_topology *a, const aether_topology *b)
{
    if (a->version != b->version || a->count != b->count || a->term != b->term ||
        !aether_node_id_equal(&a->self, &b->self) ||
        memcmp(&a->leader, &b->leader, sizeof(a->leader)) != 0)
        return false;
    for (uint32_t i = 0; i < a->count; i++)
        if (!info_equal(&a->nodes[i], &b->nodes[i]))
            return false;
    return true;
}

static void init_copy(aether_topology *t)
{
    FUZZ_CHECK(aether_topology_copy(&template_topo, t) == AETHER_OK, "topology copy");
}

/* Property 3: the input's nodes against the re-encoding's, matched by id. */
static void check_lossless(const uint8_t *data, size_t size, const char *enc, size_t enc_len)
{
    json_error_t jerr;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    json_t *out = json_loadb(enc, enc_len, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(in != NULL && out != NULL, "accepted input or its encoding is not JSON");
    FUZZ_CHECK(json_equal(json_object_get(in, "version"), json_object_get(out, "version")),
               "version changed\n  encoding: %.300s", enc);
    json_t *in_gen = json_object_get(in, "gen"), *out_gen = json_object_get(out, "gen");
    FUZZ_CHECK((in_gen == NULL && out_gen == NULL) || json_equal(in_gen, out_gen),
               "gen changed\n  encoding: %.300s", enc);
    json_t *in_nodes = json_object_get(in, "nodes"), *out_nodes = json_object_get(out, "nodes");
    FUZZ_CHECK(json_array_size(in_nodes) == json_array_size(out_nodes),
               "%zu nodes in, %zu out", json_array_size(in_nodes), json_array_size(out_nodes));
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(in_nodes, i, a) {
        bool found = false;
        json_array_foreach(out_nodes, j, b) {
            if (json_equal(json_object_get(a, "id"), json_object_get(b, "id"))) {
                found = true;
                FUZZ_CHECK(json_equal(a, b), "nodes[%zu] changed in decoding\n  encoding: %.300s",
                           i, enc);
            }
        }
        FUZZ_CHECK(found, "nodes[%zu]: its id is not in the encoding\n  encoding: %.300s", i,
                   enc);
    }
    json_decref(in);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    aether_topology t1;
    init_copy(&t1);
    aether_err err = {0};
    uint64_t gen1 = 0, gen2 = 0;
    aether_status st = aether_topology_json_decode_gen((const char *)data, size, &t1, &gen1, &err);
    if (st != AETHER_OK) {
        FUZZ_CHECK(st == AETHER_EINVAL || st == AETHER_ENOMEM, "refused with %s: %s",
                   aether_status_str(st), err.msg);
        FUZZ_CHECK(err.code == st && err.msg[0] != '\0', "refusal without its error");
        FUZZ_CHECK(topo_equal(&t1, &template_topo), "a refusal changed the topology");
        aether_topology_fini(&t1);
        return 0;
    }
    FUZZ_CHECK(aether_node_id_equal(&t1.self, &template_topo.self) &&
                   t1.term == template_topo.term &&
                   memcmp(&t1.leader, &template_topo.leader, sizeof(t1.leader)) == 0,
               "decode changed self, leader or term");
    FUZZ_CHECK(t1.count <= AETHER_TOPOLOGY_NODES_MAX, "%u nodes", t1.count);
    for (uint32_t i = 0; i < t1.count; i++) {
        st = aether_node_info_validate(&t1.nodes[i], &err);
        FUZZ_CHECK(st == AETHER_OK, "nodes[%u] invalid: %s", i, err.msg);
        FUZZ_CHECK(i == 0 || aether_node_id_compare(&t1.nodes[i - 1].id, &t1.nodes[i].id) < 0,
                   "nodes not strictly ascending at %u", i);
    }

    char *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;
    st = aether_topology_json_encode_gen(&t1, gen1, &e1, &l1, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded topology does not encode: %s", err.msg);
    FUZZ_CHECK(l1 == strlen(e1), "encoding length %zu, strlen %zu", l1, strlen(e1));
    check_lossless(data, size, e1, l1);
    aether_topology t2;
    init_copy(&t2);
    st = aether_topology_json_decode_gen(e1, l1, &t2, &gen2, &err);
    FUZZ_CHECK(st == AETHER_OK, "own encoding refused: %s\n  encoding: %.300s", err.msg, e1);
    FUZZ_CHECK(gen1 == gen2, "gen %016llx came back as %016llx", (unsigned long long)gen1,
               (unsigned long long)gen2);
    FUZZ_CHECK(topo_equal(&t1, &t2), "decode(encode(t)) != t\n  encoding: %.300s", e1);
    st = aether_topology_json_encode_gen(&t2, gen2, &e2, &l2, &err);
    FUZZ_CHECK(st == AETHER_OK, "second encode failed: %s", err.msg);
    FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0,
               "not a fixed point:\n  first:  %.300s\n  second: %.300s", e1, e2);
    free(e1);
    free(e2);
    aether_topology_fini(&t1);
    aether_topology_fini(&t2);
    return 0;
}

/* ---- the template and the seeds ------------------------------------------- */

/* Applies one status event (Draining, Left or Failed) for id. */
static void set_status(aether_topology *t, const char *id, aether_event_type type)
{
    aether_event *e = aether_event_create(type);
    FUZZ_CHECK(e != NULL, "out of memory");
    aether_node_id nid = make_id(id);
    switch (type) {
    case AETHER_EVT_NODE_DRAINING:
        e->data.node_draining.node = nid;
        break;
    case AETHER_EVT_NODE_LEFT:
        e->data.node_left.node = nid;
        break;
    default:
        e->data.node_failed.node = nid;
        break;
    }
    FUZZ_CHECK(aether_topology_apply(t, e), "status event for %s not applied", id);
    aether_event_release(e);
}

/* Applies the events the Cluster actor would: a join, then the status
 * changes that lead to `status`. */
static void join(aether_topology *t, const char *id, const char *address, const char *zone,
                 uint64_t incarnation, uint64_t joined_at_ms, aether_node_status status)
{
    aether_event *e = aether_event_create(AETHER_EVT_NODE_JOINED);
    FUZZ_CHECK(e != NULL, "out of memory");
    e->data.node_joined.node = make_id(id);
    snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "%s", address);
    snprintf(e->data.node_joined.zone, sizeof(e->data.node_joined.zone), "%s", zone);
    e->data.node_joined.incarnation = incarnation;
    e->ts_ms = joined_at_ms;
    FUZZ_CHECK(aether_topology_apply(t, e), "join of %s not applied", id);
    aether_event_release(e);
    switch (status) {
    case AETHER_NODE_DRAINING:
        set_status(t, id, AETHER_EVT_NODE_DRAINING);
        break;
    case AETHER_NODE_LEFT:
        set_status(t, id, AETHER_EVT_NODE_DRAINING);
        set_status(t, id, AETHER_EVT_NODE_LEFT);
        break;
    case AETHER_NODE_FAILED:
        set_status(t, id, AETHER_EVT_NODE_FAILED);
        break;
    default:
        break;
    }
}

static void write_seed_gen(const char *dir, const char *name, const aether_topology *t,
                           uint64_t gen)
{
    char *text = NULL;
    size_t len = 0;
    aether_err err = {0};
    FUZZ_CHECK(aether_topology_json_encode_gen(t, gen, &text, &len, &err) == AETHER_OK, "%s",
               err.msg);
    fuzz_seed_write(dir, name, text, len);
    free(text);
}

static void write_seed(const char *dir, const char *name, const aether_topology *t)
{
    write_seed_gen(dir, name, t, 0);
}

static void write_seeds(const char *dir)
{
    aether_node_id self = make_id("seed-self");
    aether_topology t;
    FUZZ_CHECK(aether_topology_init(&t, &self) == AETHER_OK, "init");
    write_seed(dir, "empty.json", &t);
    join(&t, "node-a", "10.0.0.1:4000", "", 1, 1767225600000, AETHER_NODE_ACTIVE);
    write_seed(dir, "one-active.json", &t);
    write_seed_gen(dir, "one-active-gen.json", &t, 0x5be0c2a1d7f3e944ull); /* the writer's generation */
    join(&t, "node-b", "10.0.0.2:4000", "z1", 3, 1767225600123, AETHER_NODE_DRAINING);
    join(&t, "node-c", "[::1]:4222", "z2", 2, 1767225601000, AETHER_NODE_FAILED);
    join(&t, "node-d", "nats://host-d.example:4222", "z1", 7, 1767225602000, AETHER_NODE_LEFT);
    join(&t, "A_node.5", "host e, port 5 (spaces and UTF-8 \xc3\xa9 allowed)", "zone_3.b",
         9223372036854775807ull, 9223372036854775807ull, AETHER_NODE_ACTIVE);
    write_seed(dir, "five-every-status.json", &t);
    aether_topology_fini(&t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    aether_node_id self = make_id("fuzz-self");
    FUZZ_CHECK(aether_topology_init(&template_topo, &self) == AETHER_OK, "init");
    join(&template_topo, "old-1", "10.9.9.1:1", "", 1, 1, AETHER_NODE_ACTIVE);
    join(&template_topo, "old-2", "10.9.9.2:2", "zz", 2, 2, AETHER_NODE_FAILED);
    aether_node_id leader = make_id("old-1");
    aether_topology_set_leader(&template_topo, &leader, 17);
    const char *dir = fuzz_seed_dir();
    if (dir == NULL)
        return 0;
    write_seeds(dir);
    exit(0);
}
