/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap_json.c: ShardMap <-> JSON with jansson (actors layer). Pure
 * functions, any thread. See shardmap_json.h for the shape and the rules.
 *
 * Decoding goes through the builder: node ids are interned by its hash table
 * (O(1) per owner), and aether_shardmap_build re-validates the result, so a
 * rule missed here still cannot produce an invalid map. The checks below
 * exist to name the offending field by its JSON path.
 */
#include "shardmap_json.h"
#include "lease.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

/* jansson integers are json_int_t (long long): the wire range of version and term. */
#define JSON_U64_MAX ((uint64_t)INT64_MAX)

/* The largest canonical map fits the input limit: per shard at most R owner
 * strings and a "to" string (an id plus quotes and comma each) and under 64
 * bytes of punctuation, keys and numbers. */
AETHER_STATIC_ASSERT((uint64_t)AETHER_SHARD_COUNT_MAX *
                             ((AETHER_REPLICATION_MAX + 1) * (AETHER_NODE_ID_LEN_MAX + 3) + 64) <
                         AETHER_SHARDMAP_JSON_MAX_BYTES,
                     "the largest canonical ShardMap fits AETHER_SHARDMAP_JSON_MAX_BYTES");

/* ---- encode -------------------------------------------------------------- */

aether_status aether_shardmap_json_pack(const aether_shardmap *m, json_t **out, aether_err *err)
{
    return aether_shardmap_json_pack_gen(m, 0, out, err);
}

aether_status aether_shardmap_json_pack_gen(const aether_shardmap *m, uint64_t generation,
                                            json_t **out, aether_err *err)
{
    AETHER_ASSERT(m != NULL && out != NULL);
    *out = NULL;
    if (m->version > JSON_U64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "version: %llu exceeds the JSON range 2^63-1",
                              (unsigned long long)m->version);
    if (m->term > JSON_U64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "term: %llu exceeds the JSON range 2^63-1",
                              (unsigned long long)m->term);

    /* json_*_set_new returns -1 on failure (and releases the value, even a
     * NULL one), so failures are collected in rc and checked once per object. */
    int rc = 0;
    json_t *root = json_object();
    json_t *shards = json_array();
    if (root == NULL || shards == NULL) {
        json_decref(shards);
        goto fail;
    }
    rc |= json_object_set_new(root, "version", json_integer((json_int_t)m->version));
    rc |= json_object_set_new(root, "term", json_integer((json_int_t)m->term));
    rc |= aether_json_generation_set(root, generation); /* nothing when 0 */
    rc |= json_object_set_new(root, "shard_count", json_integer(m->shard_count));
    rc |= json_object_set_new(root, "replication", json_integer(m->replication));
    rc |= json_object_set_new(root, "shards", shards); /* root owns shards from here */
    if (rc != 0)
        goto fail;
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(m, s);
        const aether_node_index *row = aether_shardmap_owners(m, s);
        json_t *shard = json_object();
        json_t *owners = json_array();
        if (shard == NULL || owners == NULL) {
            json_decref(shard);
            json_decref(owners);
            goto fail;
        }
        rc |= json_array_append_new(shards, shard); /* shards owns shard */
        rc |= json_object_set_new(shard, "id", json_integer(s));
        rc |= json_object_set_new(shard, "owners", owners);
        for (uint32_t j = 0; j < e->owner_count; j++)
            rc |= json_array_append_new(owners,
                                        json_stringn(m->nodes[row[j]].str, m->nodes[row[j]].len));
        const char *state = aether_shard_state_name((aether_shard_state)e->state);
        rc |= json_object_set_new(shard, "state", json_string(state));
        if (e->state == AETHER_SHARD_MOVING)
            rc |= json_object_set_new(shard, "to",
                                      json_stringn(m->nodes[e->to].str, m->nodes[e->to].len));
        if (rc != 0)
            goto fail;
    }
    *out = root;
    return AETHER_OK;
fail:
    json_decref(root);
    return aether_err_set(err, AETHER_ENOMEM, "shardmap json: out of memory");
}

aether_status aether_shardmap_json_encode(const aether_shardmap *m, char **out, size_t *len_out,
                                          aether_err *err)
{
    return aether_shardmap_json_encode_gen(m, 0, out, len_out, err);
}

aether_status aether_shardmap_json_encode_gen(const aether_shardmap *m, uint64_t generation,
                                              char **out, size_t *len_out, aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    json_t *root = NULL;
    aether_status st = aether_shardmap_json_pack_gen(m, generation, &root, err);
    if (st != AETHER_OK)
        return st;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "shardmap json: out of memory");
    *out = text;
    if (len_out != NULL)
        *len_out = strlen(text);
    return AETHER_OK;
}

/* ---- decode -------------------------------------------------------------- */

/* Where a field sits, for error messages, formatted only when one is
 * reported: "key" at the top level (pos == NO_POS) or "shards[pos].key". */
#define NO_POS SIZE_MAX

static aether_status field_error(aether_err *err, size_t pos, const char *key, const char *fmt,
                                 ...) __attribute__((format(printf, 4, 5)));

static aether_status field_error(aether_err *err, size_t pos, const char *key, const char *fmt,
                                 ...)
{
    char what[AETHER_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (pos == NO_POS)
        return aether_err_set(err, AETHER_EINVAL, "%.40s: %s", key, what);
    return aether_err_set(err, AETHER_EINVAL, "shards[%zu].%.40s: %s", pos, key, what);
}

/* An integer field of obj in min..max. */
static aether_status get_uint(const json_t *obj, const char *key, uint64_t min, uint64_t max,
                              size_t pos, uint64_t *out, aether_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return field_error(err, pos, key, "missing");
    if (!json_is_integer(v))
        return field_error(err, pos, key, "expected an integer, got %s", aether_json_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return field_error(err, pos, key, "%lld out of range %llu..%llu", (long long)i,
                           (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)i;
    return AETHER_OK;
}

/* Refuses keys of obj outside the allowed list. */
static aether_status check_keys(const json_t *obj, const char *const *allowed, size_t n_allowed,
                                size_t pos, aether_err *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; i < n_allowed && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known)
            return field_error(err, pos, key, "unknown field");
    }
    return AETHER_OK;
}

/* A NodeId from a JSON string value, interned into the builder. */
static aether_status intern_node(aether_shardmap_builder *b, const json_t *v,
                                 aether_node_index *index_out, aether_node_id *id_out,
                                 aether_err *err)
{
    if (!json_is_string(v))
        return aether_err_set(err, AETHER_EINVAL, "expected a string, got %s", aether_json_type_name(v));
    aether_status st = aether_node_id_parse(json_string_value(v), json_string_length(v), id_out,
                                            err);
    if (st != AETHER_OK)
        return st;
    return aether_shardmap_builder_add_node(b, id_out, index_out, err);
}

static const char *const root_keys[] = {"version", "term", "gen", "shard_count", "replication",
                                        "shards"};
static const char *const shard_keys[] = {"id", "owners", "state", "to"};

/* Decodes shards[pos] into the builder. seen[id] marks ids already decoded. */
static aether_status decode_shard(aether_shardmap_builder *b, const json_t *jshard, size_t pos,
                                  uint32_t shard_count, uint32_t replication, uint8_t *seen,
                                  bool *empty_out, aether_err *err)
{
    aether_status st;
    if (!json_is_object(jshard))
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu]: expected an object, got %s", pos,
                              aether_json_type_name(jshard));
    if ((st = check_keys(jshard, shard_keys, 4, pos, err)) != AETHER_OK)
        return st;

    uint64_t id;
    if ((st = get_uint(jshard, "id", 0, shard_count - 1, pos, &id, err)) != AETHER_OK)
        return st;
    if (seen[id])
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].id: duplicate shard id %llu", pos,
                              (unsigned long long)id);
    seen[id] = 1;

    const json_t *jowners = json_object_get(jshard, "owners");
    if (jowners == NULL)
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].owners: missing", pos);
    if (!json_is_array(jowners))
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].owners: expected an array, got %s",
                              pos, aether_json_type_name(jowners));
    size_t n_owners = json_array_size(jowners);
    if (n_owners > replication)
        return aether_err_set(err, AETHER_EINVAL,
                              "shards[%zu].owners: %zu owners, more than replication %u", pos,
                              n_owners, replication);
    aether_node_index owners[AETHER_REPLICATION_MAX];
    aether_node_id id_buf;
    for (size_t j = 0; j < n_owners; j++) {
        st = intern_node(b, json_array_get(jowners, j), &owners[j], &id_buf, err);
        if (st != AETHER_OK) {
            aether_err_prefix(err, "shards[%zu].owners[%zu]", pos, j);
            return st;
        }
        for (size_t k = 0; k < j; k++)
            if (owners[k] == owners[j])
                return aether_err_set(err, AETHER_EINVAL,
                                      "shards[%zu].owners[%zu]: duplicate owner %s", pos, j,
                                      id_buf.str);
    }
    if ((st = aether_shardmap_builder_set_owners(b, (uint32_t)id, owners, n_owners, err)) !=
        AETHER_OK)
        return st;
    *empty_out = n_owners == 0;

    const json_t *jstate = json_object_get(jshard, "state");
    if (jstate == NULL)
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].state: missing", pos);
    if (!json_is_string(jstate))
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].state: expected a string, got %s",
                              pos, aether_json_type_name(jstate));
    const char *state = json_string_value(jstate);
    const json_t *jto = json_object_get(jshard, "to");
    if (strcmp(state, "stable") == 0 && json_string_length(jstate) == 6) {
        if (jto != NULL)
            return aether_err_set(err, AETHER_EINVAL,
                                  "shards[%zu].to: only allowed when state is moving", pos);
        return AETHER_OK;
    }
    if (strcmp(state, "moving") != 0 || json_string_length(jstate) != 6)
        return aether_err_set(err, AETHER_EINVAL,
                              "shards[%zu].state: unknown state '%.32s' "
                              "(expected stable or moving)",
                              pos, state);
    if (jto == NULL)
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].to: missing on a moving shard",
                              pos);
    if (n_owners == 0)
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu]: moving without a primary owner",
                              pos);
    aether_node_index to;
    if ((st = intern_node(b, jto, &to, &id_buf, err)) != AETHER_OK) {
        aether_err_prefix(err, "shards[%zu].to", pos);
        return st;
    }
    if (to == owners[0])
        return aether_err_set(err, AETHER_EINVAL, "shards[%zu].to: %s is already the primary",
                              pos, id_buf.str);
    return aether_shardmap_builder_set_moving(b, (uint32_t)id, to, err);
}

aether_status aether_shardmap_json_unpack(const json_t *root, aether_shardmap **out,
                                          aether_err *err)
{
    uint64_t gen;
    return aether_shardmap_json_unpack_gen(root, out, &gen, err);
}

aether_status aether_shardmap_json_unpack_gen(const json_t *root, aether_shardmap **out,
                                              uint64_t *generation, aether_err *err)
{
    AETHER_ASSERT(out != NULL && generation != NULL);
    *out = NULL;
    *generation = 0;
    aether_shardmap_builder *b = NULL;
    uint8_t *seen = NULL;
    aether_status st;
    if (root == NULL || !json_is_object(root)) {
        st = aether_err_set(err, AETHER_EINVAL, "root: expected an object, got %s",
                            root ? aether_json_type_name(root) : "nothing");
        goto fail;
    }
    if ((st = check_keys(root, root_keys, sizeof(root_keys) / sizeof(root_keys[0]), NO_POS,
                         err)) != AETHER_OK)
        goto fail;
    uint64_t gen = 0;
    if (!aether_json_generation_get(root, &gen)) {
        st = aether_err_set(err, AETHER_EINVAL,
                            "gen: expected 16 lowercase hex digits naming a generation (not all zeros)");
        goto fail;
    }
    uint64_t version, term, shard_count, replication;
    if ((st = get_uint(root, "version", 0, JSON_U64_MAX, NO_POS, &version, err)) != AETHER_OK ||
        (st = get_uint(root, "term", 0, JSON_U64_MAX, NO_POS, &term, err)) != AETHER_OK ||
        (st = get_uint(root, "shard_count", 1, AETHER_SHARD_COUNT_MAX, NO_POS, &shard_count,
                       err)) != AETHER_OK ||
        (st = get_uint(root, "replication", 1, AETHER_REPLICATION_MAX, NO_POS, &replication,
                       err)) != AETHER_OK)
        goto fail;
    const json_t *jshards = json_object_get(root, "shards");
    if (jshards == NULL) {
        st = aether_err_set(err, AETHER_EINVAL, "shards: missing");
        goto fail;
    }
    if (!json_is_array(jshards)) {
        st = aether_err_set(err, AETHER_EINVAL, "shards: expected an array, got %s",
                            aether_json_type_name(jshards));
        goto fail;
    }
    if (json_array_size(jshards) != shard_count) {
        st = aether_err_set(err, AETHER_EINVAL, "shards: %zu entries, shard_count is %llu",
                            json_array_size(jshards), (unsigned long long)shard_count);
        goto fail;
    }
    if ((st = aether_shardmap_builder_create((uint32_t)shard_count, (uint32_t)replication, &b,
                                             err)) != AETHER_OK)
        goto fail;
    aether_shardmap_builder_set_version(b, version);
    aether_shardmap_builder_set_term(b, term);
    seen = calloc(shard_count, 1);
    if (seen == NULL) {
        st = aether_err_set(err, AETHER_ENOMEM, "shardmap json: out of memory");
        goto fail;
    }
    /* Ids are each present once and there are shard_count entries, so every
     * id is covered once the loop ends. */
    size_t first_empty = SIZE_MAX;
    for (size_t pos = 0; pos < shard_count; pos++) {
        bool empty = false;
        st = decode_shard(b, json_array_get(jshards, pos), pos, (uint32_t)shard_count,
                          (uint32_t)replication, seen, &empty, err);
        if (st != AETHER_OK)
            goto fail;
        if (empty && first_empty == SIZE_MAX)
            first_empty = pos;
    }
    if (first_empty != SIZE_MAX && aether_shardmap_builder_node_count(b) > 0) {
        st = aether_err_set(err, AETHER_EINVAL, "shards[%zu]: no primary owner", first_empty);
        goto fail;
    }
    if ((st = aether_shardmap_build(b, out, err)) != AETHER_OK)
        goto fail;
    *generation = gen;
    free(seen);
    aether_shardmap_builder_destroy(b);
    return AETHER_OK;
fail:
    AETHER_ASSERT(st != AETHER_OK);
    free(seen);
    aether_shardmap_builder_destroy(b);
    return st;
}

aether_status aether_shardmap_json_decode(const char *buf, size_t len, aether_shardmap **out,
                                          aether_err *err)
{
    uint64_t gen;
    return aether_shardmap_json_decode_gen(buf, len, out, &gen, err);
}

aether_status aether_shardmap_json_decode_gen(const char *buf, size_t len, aether_shardmap **out,
                                              uint64_t *generation, aether_err *err)
{
    AETHER_ASSERT(out != NULL && generation != NULL);
    *generation = 0;
    AETHER_ASSERT(buf != NULL || len == 0);
    *out = NULL;
    if (len > AETHER_SHARDMAP_JSON_MAX_BYTES)
        return aether_err_set(err, AETHER_EINVAL, "input: %zu bytes, more than the limit %zu",
                              len, AETHER_SHARDMAP_JSON_MAX_BYTES);
    json_error_t jerr;
    /* DECODE_ANY: a scalar root is refused below with a message naming it. */
    json_t *root =
        json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL)
        return aether_err_set(err, AETHER_EINVAL, "input: invalid JSON at line %d column %d: %s",
                              jerr.line, jerr.column, jerr.text);
    aether_status st = aether_shardmap_json_unpack_gen(root, out, generation, err);
    json_decref(root);
    return st;
}

static bool json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void aether_shardmap_json_peek_gen(const char *buf, size_t len, uint64_t *generation)
{
    *generation = 0;
    const char *p = buf, *end = buf + len;
    /* Bounded: each round moves p forward past a match. */
    while (p < end) {
        const char *k = memmem(p, (size_t)(end - p), "\"gen\"", 5);
        if (k == NULL)
            return;
        p = k + 5;
        while (p < end && json_ws(*p))
            p++;
        if (p >= end || *p != ':')
            continue; /* a string value "gen" (a node id), not the key */
        p++;
        while (p < end && json_ws(*p))
            p++;
        if (end - p < 18 || p[0] != '"' || p[17] != '"')
            return; /* the decoder refuses that: not for us to judge */
        uint64_t g = 0;
        if (aether_lease_generation_parse(p + 1, 16, &g))
            *generation = g;
        return;
    }
}
