/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap_json.h: the JSON view of a ShardMap (format 1), encoded and
 * decoded with jansson (actors layer).
 *
 * No longer the wire shape: the stored and published map is format 2
 * (shardmap_codec.h, wire version 2). This view stays for people and
 * tools: `aetherctl plan --json` / `--from`, comparing maps in tests, the
 * bench baseline (`aether-bench mapcodec`). At 65 536 shards x R3 it is
 * 6.6 MB and decodes in ~150 ms of CPU, which is why the wire moved.
 *
 *   {"version":7,"term":42,"gen":"5be0c2a1d7f3e944","shard_count":1024,"replication":2,
 *    "shards":[{"id":0,"owners":["node-a","node-c"],"state":"stable"},
 *              {"id":1,"owners":["node-b"],"state":"moving","to":"node-a"}, ...]}
 *
 * Encoding is canonical: compact, keys in the order above, shards by id,
 * "to" only on moving shards. So encode(decode(encode(m))) is byte-identical
 * to encode(m) (with the generation decoded, for the _gen pair).
 *
 * "gen" (optional) is the cluster generation the writer acted in (lease.h,
 * GENERATION): the leader stamps the maps it stores and publishes with it,
 * so a reader can refuse a map of a lost generation (member_state.c,
 * "Generations"). It is not part of the map's value (aether_shardmap has
 * no such field): the _gen functions take and return it beside the map, the
 * plain ones write none and accept and drop one. Absent (a map written
 * before generations, or by a writer that has read none) decodes as 0, "not
 * said"; present it must be 16 lowercase hex digits, not all zeros.
 *
 * Decoding is strict, because the map arrives from other processes (KV,
 * NATS) and a bad one must be refused, never half-applied:
 *  - input larger than AETHER_SHARDMAP_JSON_MAX_BYTES, invalid JSON,
 *    duplicate object keys, a root that is not an object;
 *  - a field missing, of the wrong type, out of range, or unknown; a
 *    "gen" that is not 16 lowercase hex digits or is all zeros;
 *  - version/term not integers in 0..2^63-1 (jansson's integer range);
 *  - shards array length != shard_count; every id in 0..shard_count-1
 *    exactly once, in any order;
 *  - owners: strings that are valid NodeIds, distinct, at most replication,
 *    at least one whenever any shard has owners;
 *  - state "stable" or "moving"; "to" present iff moving, a valid NodeId
 *    and not the primary.
 * Each is AETHER_EINVAL with an aether_err naming the field path, e.g.
 * "shards[12].owners[0]: node id is empty" (the index is the position in the
 * "shards" array). Node ids are interned in a hash table, so decoding a
 * 65536-shard map is linear in its size.
 *
 * Threading: pure functions over their arguments; any thread. The map given
 * to encode may be a published one only inside an RCU read-side section.
 */
#ifndef AETHER_SHARDMAP_JSON_H
#define AETHER_SHARDMAP_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "shardmap.h"
#include "status.h"

/* Inputs above this size are refused before parsing. The largest canonical
 * map (65536 shards, R = 7, 64-character ids, all moving) is under 40 MiB. */
#define AETHER_SHARDMAP_JSON_MAX_BYTES ((size_t)64 << 20)

/* Encodes m. On AETHER_OK *out is a NUL-terminated malloc'd string (free with
 * free()) and *len_out its length (len_out may be NULL). AETHER_EINVAL when
 * version or term exceeds 2^63-1, AETHER_ENOMEM. */
aether_status aether_shardmap_json_encode(const aether_shardmap *m, char **out, size_t *len_out,
                                          aether_err *err);

/* The same, stamped "gen" = generation (0: none written). */
aether_status aether_shardmap_json_encode_gen(const aether_shardmap *m, uint64_t generation,
                                              char **out, size_t *len_out, aether_err *err);

/* Decodes len bytes (need not be NUL-terminated). On AETHER_OK *out is a new,
 * valid, unpublished map owned by the caller; otherwise *out is NULL. */
aether_status aether_shardmap_json_decode(const char *buf, size_t len, aether_shardmap **out,
                                          aether_err *err);
/* The same; *generation: the map's "gen" (0: absent), set on AETHER_OK. */
aether_status aether_shardmap_json_decode_gen(const char *buf, size_t len, aether_shardmap **out,
                                              uint64_t *generation, aether_err *err);

/* The "gen" of bytes that aether_shardmap_json_decode accepted (only
 * those: the caller vouches for it), without decoding them again: a scan
 * for the root key, linear in len. In an accepted map "gen" followed by a
 * colon can only be that key (shard objects have no such key, and node ids
 * and states are never followed by one). *generation: 0 when absent. */
void aether_shardmap_json_peek_gen(const char *buf, size_t len, uint64_t *generation);

/* The same on jansson values, for callers embedding a map in a larger
 * document (the wire envelope). pack returns a new reference. */
aether_status aether_shardmap_json_pack(const aether_shardmap *m, json_t **out, aether_err *err);
aether_status aether_shardmap_json_unpack(const json_t *root, aether_shardmap **out,
                                          aether_err *err);
aether_status aether_shardmap_json_pack_gen(const aether_shardmap *m, uint64_t generation,
                                            json_t **out, aether_err *err);
aether_status aether_shardmap_json_unpack_gen(const json_t *root, aether_shardmap **out,
                                              uint64_t *generation, aether_err *err);

#endif
