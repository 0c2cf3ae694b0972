/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topology_json.h: the Cluster aggregate's state as JSON, for the state
 * store (key "topology") so a starting, lagging or newly elected node can
 * read the whole topology at once (actors layer).
 *
 *   {"version":12,"gen":"5be0c2a1d7f3e944","nodes":[{"id":"a","address":"10.0.0.1:4000",
 *     "zone":"z1","status":"active","incarnation":3,"joined_at_ms":1767225600000}, ...]}
 *
 * "gen" (optional) is the cluster generation the writing leader acted in
 * (lease.h, GENERATION), as in the stored map (shardmap_json.h): readers
 * refuse a topology of another generation than theirs (member_state.c,
 * "Generations"). Absent (written before generations) decodes as 0, "not
 * said"; present it must be 16 lowercase hex digits, not all zeros. It is
 * not part of aether_topology: the _gen functions carry it beside.
 *
 * Decoding is strict (unknown fields, bad ids, statuses, duplicates are
 * refused with the field named) and never crashes on bad input.
 * Threading: pure functions.
 */
#ifndef AETHER_TOPOLOGY_JSON_H
#define AETHER_TOPOLOGY_JSON_H

#include <stddef.h>

#include "topology.h"

#define AETHER_TOPOLOGY_JSON_MAX_BYTES (16u * 1024u * 1024u)

/* *out is malloc'd, NUL-terminated; caller frees. */
aether_status aether_topology_json_encode(const aether_topology *t, char **out, size_t *len_out,
                                          aether_err *err);
/* Replaces the nodes and version of t (self, leader and term are kept). On
 * error t is unchanged. */
aether_status aether_topology_json_decode(const char *buf, size_t len, aether_topology *t,
                                          aether_err *err);
/* The same pair with the value's "gen" (0: none written / absent; decode
 * leaves *generation 0 unless AETHER_OK). */
aether_status aether_topology_json_encode_gen(const aether_topology *t, uint64_t generation,
                                              char **out, size_t *len_out, aether_err *err);
aether_status aether_topology_json_decode_gen(const char *buf, size_t len, aether_topology *t,
                                              uint64_t *generation, aether_err *err);

#endif
