/*
 * json_util.c: see json_util.h (actors layer).
 */
#include "json_util.h"

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
    if (!json_is_string(v) || json_string_length(v) != 16)
        return false;
    const char *s = json_string_value(v);
    uint64_t g = 0;
    for (int i = 0; i < 16; i++) { /* bounded: 16 digits */
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        g = (g << 4) | d;
    }
    if (g == 0)
        return false; /* 0 means "not said": an encoder omits the field instead */
    *gen = g;
    return true;
}

int aether_json_generation_set(json_t *obj, uint64_t gen)
{
    if (gen == 0)
        return 0;
    char text[17];
    snprintf(text, sizeof(text), "%016" PRIx64, gen);
    return json_object_set_new(obj, "gen", json_string(text));
}
