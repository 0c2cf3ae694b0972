/*
 * json_util.h: small jansson helpers shared by the strict decoders
 * (shardmap_json, topology_json, transport/codec) (actors layer).
 * Threading: pure functions.
 */
#ifndef AETHER_JSON_UTIL_H
#define AETHER_JSON_UTIL_H

#include <jansson.h>

/* "an object", "a string", ... for error messages; "nothing" for NULL. */
const char *aether_json_type_name(const json_t *v);

#endif
