/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_util.h: small jansson helpers shared by the strict decoders
 * (shardmap_json, topology_json, transport/codec) (actors layer).
 * Threading: pure functions.
 */
#ifndef AETHER_JSON_UTIL_H
#define AETHER_JSON_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* "an object", "a string", ... for error messages; "nothing" for NULL. */
const char *aether_json_type_name(const json_t *v);

/* The optional "gen" of a stored value (a ShardMap, a topology): the
 * cluster generation its writer acted in (lease.h, GENERATION), 16
 * lowercase hex digits, never all zeros. Absent: *gen = 0 ("not said": a
 * value written before generations) and true. Present but not such a
 * string: false (*gen untouched). */
bool aether_json_generation_get(const json_t *obj, uint64_t *gen);
/* Sets "gen" on obj to gen when gen != 0 (0: nothing is added). 0, or -1
 * when out of memory (as json_object_set_new). */
int aether_json_generation_set(json_t *obj, uint64_t gen);

#endif
