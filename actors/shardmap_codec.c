/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap_codec.c: ShardMap format 2 <-> bytes (actors layer). Pure
 * functions, any thread. See shardmap_codec.h for the layout and the rules.
 *
 * Decoding parses the node table (required ascending: the map's own order,
 * so table indices are map indices) and hands the owner rows and moves, as
 * they are on the wire, to aether_shardmap_build_le: one allocation, no
 * builder, no hashing, then the full aether_shardmap_validate, which names
 * the field of any rule broken. Measured (aether-bench mapcodec, 65 536 x
 * R3 over 20 nodes) that is what keeps decode under 2 ms: through the
 * builder it took 2.3 ms of CPU.
 */
#include "shardmap_codec.h"

#include <stdlib.h>
#include <string.h>

#define WIRE_U64_MAX ((uint64_t)INT64_MAX) /* as in format 1: JSON readers stay exact */
#define NONE AETHER_NODE_INDEX_NONE

AETHER_STATIC_ASSERT(AETHER_SHARD_COUNT_MAX - 1u <= UINT16_MAX, "a shard id fits in a u16");
AETHER_STATIC_ASSERT(AETHER_SHARDMAP_CODEC_MAX_BYTES < ((size_t)32 << 20),
                     "the largest map stays a bounded allocation");

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t moving_count(const aether_shardmap *m)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < m->shard_count; s++)
        n += m->shards[s].state == AETHER_SHARD_MOVING;
    return n;
}

size_t aether_shardmap_codec_len(const aether_shardmap *m)
{
    size_t len = AETHER_SHARDMAP_CODEC_HEADER_LEN;
    for (uint32_t i = 0; i < m->node_count; i++)
        len += 1u + m->nodes[i].len;
    len += (size_t)m->shard_count * m->replication * 2u;
    return len + (size_t)moving_count(m) * 4u;
}

aether_status aether_shardmap_codec_encode(const aether_shardmap *m, uint64_t generation,
                                           char **out, size_t *len_out, aether_err *err)
{
    AETHER_ASSERT(m != NULL && out != NULL);
    *out = NULL;
    if (m->version > WIRE_U64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "version: %llu exceeds 2^63-1",
                              (unsigned long long)m->version);
    if (m->term > WIRE_U64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "term: %llu exceeds 2^63-1",
                              (unsigned long long)m->term);
    uint32_t moving = moving_count(m);
    size_t len = aether_shardmap_codec_len(m);
    AETHER_ASSERT(len <= AETHER_SHARDMAP_CODEC_MAX_BYTES);
    unsigned char *buf = malloc(len + 1);
    if (buf == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "shardmap codec: out of memory (%zu bytes)", len);
    unsigned char *p = buf;
    memcpy(p, AETHER_SHARDMAP_CODEC_MAGIC, 4);
    p[4] = AETHER_SHARDMAP_CODEC_FORMAT;
    p[5] = (unsigned char)m->replication;
    put16(p + 6, 0);
    put32(p + 8, m->shard_count);
    put64(p + 12, m->version);
    put64(p + 20, m->term);
    put64(p + 28, generation);
    put32(p + 36, m->node_count);
    put32(p + 40, moving);
    p += AETHER_SHARDMAP_CODEC_HEADER_LEN;
    for (uint32_t i = 0; i < m->node_count; i++) {
        *p++ = m->nodes[i].len;
        memcpy(p, m->nodes[i].str, m->nodes[i].len);
        p += m->nodes[i].len;
    }
    /* The rows are the map's own owners[] with NONE already in unused slots
     * (shardmap.c keeps them so); written explicitly to stay independent. */
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_node_index *row = aether_shardmap_owners(m, s);
        uint32_t k = m->shards[s].owner_count;
        for (uint32_t j = 0; j < m->replication; j++, p += 2)
            put16(p, j < k ? row[j] : NONE);
    }
    for (uint32_t s = 0; s < m->shard_count; s++)
        if (m->shards[s].state == AETHER_SHARD_MOVING) {
            put16(p, (uint16_t)s);
            put16(p + 2, m->shards[s].to);
            p += 4;
        }
    AETHER_ASSERT((size_t)(p - buf) == len);
    *p = 0;
    *out = (char *)buf;
    if (len_out != NULL)
        *len_out = len;
    return AETHER_OK;
}

bool aether_shardmap_codec_peek(const char *buf, size_t len, uint64_t *version, uint64_t *term,
                                uint64_t *generation)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (buf == NULL || len < AETHER_SHARDMAP_CODEC_HEADER_LEN ||
        memcmp(p, AETHER_SHARDMAP_CODEC_MAGIC, 4) != 0 || p[4] != AETHER_SHARDMAP_CODEC_FORMAT)
        return false;
    *version = get64(p + 12);
    *term = get64(p + 20);
    *generation = get64(p + 28);
    return true;
}

bool aether_shardmap_codec_is_format1(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
        i++;
    return i < len && buf[i] == '{';
}

/* Why bytes that are not format 2 were refused, naming what they look like. */
static aether_status not_format2(const unsigned char *p, size_t len, aether_err *err)
{
    if (aether_shardmap_codec_is_format1((const char *)p, len))
        return aether_err_set(err, AETHER_EINVAL,
                              "input: map format 1 (JSON), this reader takes format 2 only: "
                              "upgrade the writer (docs/wire.md, upgrade order)");
    if (len < 4 || memcmp(p, AETHER_SHARDMAP_CODEC_MAGIC, 4) != 0)
        return aether_err_set(err, AETHER_EINVAL, "magic: not a ShardMap (expected \"AMAP\")");
    if (len < 5)
        return aether_err_set(err, AETHER_EINVAL, "input: %zu bytes, shorter than the %u-byte header",
                              len, AETHER_SHARDMAP_CODEC_HEADER_LEN);
    return aether_err_set(err, AETHER_EINVAL, "format: %u, this reader takes format %u",
                          p[4], AETHER_SHARDMAP_CODEC_FORMAT);
}

aether_status aether_shardmap_codec_decode(const char *buf, size_t len, aether_shardmap **out,
                                           uint64_t *generation, aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    AETHER_ASSERT(buf != NULL || len == 0);
    *out = NULL;
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    if (len > AETHER_SHARDMAP_CODEC_MAX_BYTES)
        return aether_err_set(err, AETHER_EINVAL, "input: %zu bytes, more than the limit %zu", len,
                              AETHER_SHARDMAP_CODEC_MAX_BYTES);
    if (len < 5 || memcmp(p, AETHER_SHARDMAP_CODEC_MAGIC, 4) != 0 ||
        p[4] != AETHER_SHARDMAP_CODEC_FORMAT)
        return not_format2(p, len, err);
    if (len < AETHER_SHARDMAP_CODEC_HEADER_LEN)
        return aether_err_set(err, AETHER_EINVAL, "input: %zu bytes, shorter than the %u-byte header",
                              len, AETHER_SHARDMAP_CODEC_HEADER_LEN);
    uint32_t r = p[5];
    uint16_t flags = get16(p + 6);
    uint32_t sc = get32(p + 8);
    uint64_t version = get64(p + 12), term = get64(p + 20), gen = get64(p + 28);
    uint32_t n = get32(p + 36), moving = get32(p + 40);
    if (r < 1 || r > AETHER_REPLICATION_MAX)
        return aether_err_set(err, AETHER_EINVAL, "replication: %u out of range 1..%u", r,
                              AETHER_REPLICATION_MAX);
    if (flags != 0)
        return aether_err_set(err, AETHER_EINVAL, "flags: 0x%04x, expected 0", flags);
    if (sc < 1 || sc > AETHER_SHARD_COUNT_MAX)
        return aether_err_set(err, AETHER_EINVAL, "shard_count: %u out of range 1..%u", sc,
                              AETHER_SHARD_COUNT_MAX);
    if (version > WIRE_U64_MAX || term > WIRE_U64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "%s: %llu out of range 0..2^63-1",
                              version > WIRE_U64_MAX ? "version" : "term",
                              (unsigned long long)(version > WIRE_U64_MAX ? version : term));
    if (n > AETHER_SHARDMAP_NODES_MAX)
        return aether_err_set(err, AETHER_EINVAL, "node_count: %u out of range 0..%u", n,
                              AETHER_SHARDMAP_NODES_MAX);
    if (moving > sc)
        return aether_err_set(err, AETHER_EINVAL, "moving_count: %u, more than shard_count %u",
                              moving, sc);
    /* Lengths before reading: every section below is bounded by `end`. */
    p += AETHER_SHARDMAP_CODEC_HEADER_LEN;
    aether_status st = AETHER_OK;
    aether_node_id *nodes = n > 0 ? malloc((size_t)n * sizeof(*nodes)) : NULL;
    if (n > 0 && nodes == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "shardmap codec: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 1 || (size_t)(end - p) < 1u + p[0]) {
            st = aether_err_set(err, AETHER_EINVAL, "nodes[%u]: input ends inside the node table",
                                i);
            goto fail;
        }
        if ((st = aether_node_id_parse((const char *)p + 1, p[0], &nodes[i], err)) != AETHER_OK) {
            aether_err_prefix(err, "nodes[%u]", i);
            goto fail;
        }
        if (i > 0 && aether_node_id_compare(&nodes[i - 1], &nodes[i]) >= 0) {
            st = aether_err_set(err, AETHER_EINVAL, "nodes[%u]: %s not after %s (ids ascending, "
                                "distinct)", i, nodes[i].str, nodes[i - 1].str);
            goto fail;
        }
        p += 1u + p[0];
    }
    size_t want = (size_t)sc * r * 2u + (size_t)moving * 4u;
    if ((size_t)(end - p) != want) {
        st = aether_err_set(err, AETHER_EINVAL, "input: %zu bytes after the node table, the "
                            "owners and moves of %u shards x R%u and %u moving take %zu",
                            (size_t)(end - p), sc, r, moving, want);
        goto fail;
    }
    const unsigned char *rows = p, *moves = p + (size_t)sc * r * 2u;
    /* Canonical order of the moves (the rest of their rules: build_le). */
    for (uint32_t i = 1; i < moving; i++)
        if (get16(moves + 4u * i) <= get16(moves + 4u * (i - 1))) {
            st = aether_err_set(err, AETHER_EINVAL, "moving[%u].shard: %u not after %u (shards "
                                "ascending)", i, get16(moves + 4u * i),
                                get16(moves + 4u * (i - 1)));
            goto fail;
        }
    /* An empty row while the map has nodes is refused by validate ("shards[7]:
     * no primary owner"); duplicates, indices out of range, a target that
     * is the primary likewise, by the field. */
    st = aether_shardmap_build_le(version, term, sc, r, nodes, n, rows, moves, moving, out, err);
    if (st != AETHER_OK)
        goto fail;
    free(nodes);
    if (generation != NULL)
        *generation = gen;
    return AETHER_OK;
fail:
    AETHER_ASSERT(st != AETHER_OK);
    free(nodes);
    return st;
}
