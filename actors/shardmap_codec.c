/*
 * shardmap_codec.c: ShardMap format 2 <-> bytes (actors layer). Pure
 * functions, any thread. See shardmap_codec.h for the layout and the rules.
 *
 * Decoding reads the node table into a builder in table order: the table is
 * required ascending, which is the order aether_shardmap_build sorts into,
 * so builder indices, table indices and the built map's indices are the
 * same and the owner array is used as it is. The checks here exist to name
 * the offending field; aether_shardmap_build validates the result again.
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

/* Why bytes that are not format 2 were refused, naming what they look like. */
static aether_status not_format2(const unsigned char *p, size_t len, aether_err *err)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i < len && p[i] == '{')
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
    aether_shardmap_builder *b = NULL;
    aether_status st = aether_shardmap_builder_create(sc, r, &b, err);
    if (st != AETHER_OK)
        return st;
    aether_shardmap_builder_set_version(b, version);
    aether_shardmap_builder_set_term(b, term);
    aether_node_id prev = {0}, id;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 1 || (size_t)(end - p) < 1u + p[0]) {
            st = aether_err_set(err, AETHER_EINVAL, "nodes[%u]: input ends inside the node table",
                                i);
            goto fail;
        }
        if ((st = aether_node_id_parse((const char *)p + 1, p[0], &id, err)) != AETHER_OK) {
            aether_err_prefix(err, "nodes[%u]", i);
            goto fail;
        }
        if (i > 0 && aether_node_id_compare(&prev, &id) >= 0) {
            st = aether_err_set(err, AETHER_EINVAL, "nodes[%u]: %s not after %s (ids ascending, "
                                "distinct)", i, id.str, prev.str);
            goto fail;
        }
        aether_node_index got;
        if ((st = aether_shardmap_builder_add_node(b, &id, &got, err)) != AETHER_OK)
            goto fail;
        AETHER_ASSERT(got == i);
        prev = id;
        p += 1u + p[0];
    }
    size_t want = (size_t)sc * r * 2u + (size_t)moving * 4u;
    if ((size_t)(end - p) != want) {
        st = aether_err_set(err, AETHER_EINVAL, "input: %zu bytes after the node table, the "
                            "owners and moves of %u shards x R%u and %u moving take %zu",
                            (size_t)(end - p), sc, r, moving, want);
        goto fail;
    }
    for (uint32_t s = 0; s < sc; s++, p += 2u * r) {
        aether_node_index row[AETHER_REPLICATION_MAX];
        uint32_t k = 0;
        for (uint32_t j = 0; j < r; j++) {
            row[j] = get16(p + 2u * j);
            if (row[j] == NONE)
                continue;
            if (k != j) {
                st = aether_err_set(err, AETHER_EINVAL, "owners[%u][%u]: an owner after an empty "
                                    "slot", s, j);
                goto fail;
            }
            if (row[j] >= n) {
                st = aether_err_set(err, AETHER_EINVAL, "owners[%u][%u]: node index %u, the table "
                                    "has %u", s, j, row[j], n);
                goto fail;
            }
            for (uint32_t q = 0; q < j; q++)
                if (row[q] == row[j]) {
                    st = aether_err_set(err, AETHER_EINVAL, "owners[%u][%u]: duplicate owner "
                                        "(node index %u)", s, j, row[j]);
                    goto fail;
                }
            k++;
        }
        if (k == 0 && n > 0) {
            st = aether_err_set(err, AETHER_EINVAL, "owners[%u]: no primary owner", s);
            goto fail;
        }
        if (k > 0 && (st = aether_shardmap_builder_set_owners(b, s, row, k, err)) != AETHER_OK)
            goto fail;
    }
    int64_t last = -1;
    for (uint32_t i = 0; i < moving; i++, p += 4) {
        uint16_t s = get16(p), to = get16(p + 2);
        if ((int64_t)s <= last || s >= sc) {
            st = aether_err_set(err, AETHER_EINVAL, "moving[%u].shard: %u (shards ascending, "
                                "below %u)", i, s, sc);
            goto fail;
        }
        last = s;
        const unsigned char *row = (const unsigned char *)buf + (end - (const unsigned char *)buf) -
                                   (size_t)moving * 4u - ((size_t)sc - s) * 2u * r;
        uint16_t primary = get16(row);
        if (primary == NONE) {
            st = aether_err_set(err, AETHER_EINVAL, "moving[%u]: shard %u moving without a primary "
                                "owner", i, s);
            goto fail;
        }
        if (to >= n || to == primary) {
            st = aether_err_set(err, AETHER_EINVAL, "moving[%u].to: %s", i,
                                to >= n ? "not a node of the table" : "already the primary");
            goto fail;
        }
        if ((st = aether_shardmap_builder_set_moving(b, s, to, err)) != AETHER_OK)
            goto fail;
    }
    AETHER_ASSERT(p == end);
    if ((st = aether_shardmap_build(b, out, err)) != AETHER_OK)
        goto fail;
    aether_shardmap_builder_destroy(b);
    if (generation != NULL)
        *generation = gen;
    return AETHER_OK;
fail:
    AETHER_ASSERT(st != AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return st;
}
