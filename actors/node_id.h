/* SPDX-License-Identifier: Apache-2.0 */
/*
 * node_id.h: the NodeId value object (actors layer).
 *
 * A NodeId names one node of the cluster: 1..64 characters of [A-Za-z0-9_.-],
 * with no empty NATS subject token (no '.' first, last or next to another
 * '.': `.`, `..`, `a..b` and `a.` are refused, `a.b` is fine). The restricted
 * alphabet and the token rule are what let ids appear unescaped in NATS
 * subjects (`aether.<cluster>.hb.<node>`; `hb..` would never be delivered),
 * KV keys, metric labels and JSON, so every id that
 * enters the process from outside (configuration, wire, CLI) goes through
 * aether_node_id_parse and nothing else builds one.
 *
 * Representation: a fixed-size value (66 bytes) holding the length and a
 * NUL-terminated copy, so it is copied by assignment, needs no allocation and
 * can be embedded in snapshots and copied out of them on the hot path
 * (routing.h copies a whole aether_node_id into its result). Bytes after the
 * terminator are always zero, so two equal ids are also equal bytewise.
 *
 * Threading: a plain immutable value; every function is pure and may be
 * called from any thread.
 */
#ifndef AETHER_NODE_ID_H
#define AETHER_NODE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "assertion.h"
#include "status.h"

#define AETHER_NODE_ID_LEN_MAX 64

typedef struct aether_node_id {
    uint8_t len;                            /* 1..AETHER_NODE_ID_LEN_MAX once parsed */
    char str[AETHER_NODE_ID_LEN_MAX + 1];   /* NUL-terminated; zero-filled after len */
} aether_node_id;

AETHER_STATIC_ASSERT(AETHER_NODE_ID_LEN_MAX <= UINT8_MAX, "len fits in uint8_t");
AETHER_STATIC_ASSERT(sizeof(aether_node_id) == AETHER_NODE_ID_LEN_MAX + 2, "no padding");

/* True for the bytes allowed in a NodeId: [A-Za-z0-9_.-]. */
static inline bool aether_node_id_char_is_valid(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Parses len bytes at s (not necessarily NUL-terminated; an embedded NUL is a
 * bad character). On success fills *out and returns AETHER_OK; otherwise
 * returns AETHER_EINVAL, leaves *out zeroed and explains in err, e.g.
 *   "node id is empty"
 *   "node id is 70 characters long, more than 64"
 *   "node id 'a b' has byte 0x20 (' ') at position 1, outside [A-Za-z0-9_.-]"
 *   "node id 'a..b' has an empty subject token at position 1 (...)"
 * s may be NULL only when len is 0. */
aether_status aether_node_id_parse(const char *s, size_t len, aether_node_id *out,
                                   aether_err *err);

/* aether_node_id_parse for another name with the same rules (a cluster
 * name, a zone): `what` replaces "node id" in the error ("cluster name is
 * empty"). */
aether_status aether_node_id_parse_as(const char *what, const char *s, size_t len,
                                      aether_node_id *out, aether_err *err);

/* aether_node_id_parse on a NUL-terminated string. */
aether_status aether_node_id_from_cstr(const char *s, aether_node_id *out, aether_err *err);

/* Assert-only predicate: a well-formed value (valid length and characters,
 * terminator in place, zero tail). */
bool aether_node_id_is_valid(const aether_node_id *id);

static inline bool aether_node_id_equal(const aether_node_id *a, const aether_node_id *b)
{
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* Total order for sorting: bytewise lexicographic, a proper prefix first
 * (the order of strcmp on the strings). <0, 0, >0. */
int aether_node_id_compare(const aether_node_id *a, const aether_node_id *b);

/* XXH64 of the id's bytes, seed 0: stable across runs and processes (never
 * steers behaviour through iteration order; see CONVENTIONS "Determinism"). */
uint64_t aether_node_id_hash(const aether_node_id *id);

#endif
