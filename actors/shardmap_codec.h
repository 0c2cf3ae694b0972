/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shardmap_codec.h: ShardMap format 2, the compact wire shape of the stored
 * map (KV key "map") and of every map publication (actors layer).
 *
 * A little-endian binary layout (docs/wire.md, "ShardMap format 2"):
 *
 *   off size  field
 *     0    4  magic "AMAP"
 *     4    1  format = 2
 *     5    1  replication R (1..7)
 *     6    2  flags = 0 (reserved; a reader refuses any other value)
 *     8    4  shard_count S (1..65536)
 *    12    8  version (0..2^63-1)
 *    20    8  term (0..2^63-1)
 *    28    8  gen: the writer's cluster generation, 0 = not said
 *    36    4  node_count N (0..65535)
 *    40    4  moving_count M (0..S)
 *    44       node table: N x (u8 len 1..64, len bytes of a NodeId), ids
 *             strictly ascending (bytewise, shorter first on a common prefix:
 *             the map's order, node_id.h)
 *             owners: S x R u16 node-table indices, shard-major, primary
 *             first; a shard with k < R owners has 0xFFFF in its last R-k
 *             slots (never before an owner)
 *             moving: M x (u16 shard, u16 target index), shards strictly
 *             ascending
 *   end       exactly here: the length is 44 + sum(1 + len) + 2SR + 4M
 *
 * One allocation-free pass per section; decoding builds the map through
 * aether_shardmap_build, which validates it again, so a rule missed here
 * still cannot produce an invalid map. At 65 536 shards x R3 over 20 nodes
 * a map is 393 KiB (format 1 was 5.4 MiB): one KV value, one publication,
 * under NATS's default 1 MiB payload (bench: `aether-bench mapcodec`).
 *
 * Encoding is canonical (the map's own node table and order), so
 * encode(decode(b)) == b byte for byte, and equal maps encode equal.
 *
 * Decoding is strict (the bytes come from other processes): a short or long
 * input, another magic or format (format 1, JSON, is named: "map format 1
 * (JSON) ... upgrade the writer"), flags != 0, a count out of range, a node
 * id that is not a valid NodeId or out of order, an owner index out of
 * range, duplicate in its shard, or 0xFFFF before an owner, a shard without
 * owners while the map has nodes, a moving shard out of order, without a
 * primary, or moving to its primary. Each is AETHER_EINVAL with an
 * aether_err naming the field ("owners[12][1]: duplicate owner node-a").
 *
 * Threading: pure functions over their arguments; any thread. A published
 * map may be encoded only inside an RCU read-side section.
 */
#ifndef AETHER_SHARDMAP_CODEC_H
#define AETHER_SHARDMAP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardmap.h"
#include "status.h"

#define AETHER_SHARDMAP_CODEC_FORMAT 2u
#define AETHER_SHARDMAP_CODEC_MAGIC "AMAP"
#define AETHER_SHARDMAP_CODEC_HEADER_LEN 44u
/* The largest map: 65 535 ids of 64 bytes, 65 536 x 7 owners, all moving. */
#define AETHER_SHARDMAP_CODEC_MAX_BYTES                                                   \
    ((size_t)AETHER_SHARDMAP_CODEC_HEADER_LEN +                                           \
     (size_t)AETHER_SHARDMAP_NODES_MAX * (1u + AETHER_NODE_ID_LEN_MAX) +                  \
     (size_t)AETHER_SHARD_COUNT_MAX * AETHER_REPLICATION_MAX * 2u +                       \
     (size_t)AETHER_SHARD_COUNT_MAX * 4u)

/* The encoded length of m (what encode will produce). */
size_t aether_shardmap_codec_len(const aether_shardmap *m);

/* Encodes m stamped with generation (0: none). On AETHER_OK *out is a
 * malloc'd buffer (free with free()) of *len_out bytes, followed by one NUL
 * byte that is not part of it (so a caller may treat it as a C buffer).
 * AETHER_EINVAL when version or term exceeds 2^63-1; AETHER_ENOMEM. */
aether_status aether_shardmap_codec_encode(const aether_shardmap *m, uint64_t generation,
                                           char **out, size_t *len_out, aether_err *err);

/* Decodes len bytes. On AETHER_OK *out is a new, valid, unpublished map
 * owned by the caller and *generation its gen (0: not said); otherwise *out
 * is NULL. generation may be NULL. */
aether_status aether_shardmap_codec_decode(const char *buf, size_t len, aether_shardmap **out,
                                           uint64_t *generation, aether_err *err);

/* The header of bytes that look like a format-2 map (magic, format and a
 * length of at least the header), without decoding the rest: what the state
 * store compares before a write. False for anything else. */
bool aether_shardmap_codec_peek(const char *buf, size_t len, uint64_t *version, uint64_t *term,
                                uint64_t *generation);

/* True if the bytes look like a map of format 1 (a JSON object: the first
 * byte that is not white space is '{'), what releases before wire version 2
 * stored (docs/wire.md, "Upgrade order"). */
bool aether_shardmap_codec_is_format1(const char *buf, size_t len);

#endif
