/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_util.c: see json_util.h (actors layer).
 */
#include "json_util.h"
#include "lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *aether_json_type_name(const json_t *v)
{
    if (v == NULL)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

bool aether_json_generation_get(const json_t *obj, uint64_t *gen)
{
    const json_t *v = json_object_get(obj, "gen");
    if (v == NULL) {
        *gen = 0;
        return true;
    }
    /* 0 means "not said": an encoder omits the field instead, so parse refuses it */
    return json_is_string(v) && aether_lease_generation_parse(json_string_value(v), json_string_length(v), gen);
}

int aether_json_generation_set(json_t *obj, uint64_t gen)
{
    if (gen == 0)
        return 0;
    char text[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
    aether_lease_generation_format(gen, text, sizeof(text));
    return json_object_set_new(obj, "gen", json_string(text));
}
