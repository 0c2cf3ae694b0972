/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_options.c: the public options object (transport layer; contract in
 * aether_options.h). A thin shell over settings.c: every key, parse rule,
 * range and error sentence is the parameter table's, so the file, the
 * environment, aether-node's flags and this API can never disagree.
 *
 * Threading: an options object is owned by one thread at a time; the error
 * text is thread-local.
 */
#include "aether_facade.h"
#include "assertion.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* One sentence per thread, like nats.c's nats_GetLastError. */
static __thread char last_error[AETHER_ERR_MSG_MAX + 64];

const char *const aether_facade_env_ignored[] = {
    "AETHER_CONFIG", "AETHER_NATS_SERVER", "AETHER_KEEP_LOGS", "AETHER_SIM_SEED", "AETHER_SIM_SEEDS",
    "AETHER_SIM_TRACE", NULL,
};

aether_status aether_facade_fail(aether_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return st;
}

const char *aether_last_error(void) { return last_error; }

aether_status aether_options_create(aether_options **out)
{
    if (out == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_options_create: out is NULL");
    *out = NULL;
    aether_options *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return aether_facade_fail(AETHER_ENOMEM, "aether_options_create: out of memory");
    aether_settings_defaults(&o->s);
    *out = o;
    return AETHER_OK;
}

void aether_options_destroy(aether_options *opts) { free(opts); }

aether_status aether_options_set(aether_options *opts, const char *key, const char *value)
{
    if (opts == NULL || key == NULL || value == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_options_set: %s is NULL",
                                  opts == NULL ? "opts" : key == NULL ? "key" : "value");
    aether_err err = { 0 };
    aether_status st = aether_settings_set(&opts->s, key, value, "aether_options_set", &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "%s", err.msg);
    return AETHER_OK;
}

aether_status aether_options_get(const aether_options *opts, const char *key, char *buf, size_t cap)
{
    if (opts == NULL || key == NULL || buf == NULL || cap == 0)
        return aether_facade_fail(AETHER_EINVAL, "aether_options_get: %s",
                                  opts == NULL ? "opts is NULL" : key == NULL ? "key is NULL"
                                                                  : "no buffer");
    buf[0] = '\0';
    if (!aether_settings_known(key))
        return aether_facade_fail(AETHER_ENOTFOUND, "aether_options_get: %s: unknown parameter", key);
    /* The table's own writer (aether_settings_describe), one line per
     * parameter: "key = value", "# key = " when unset. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return aether_facade_fail(AETHER_ENOMEM, "aether_options_get: out of memory");
    aether_settings_describe(&opts->s, f);
    fclose(f);
    aether_status st = AETHER_ENOTFOUND;
    size_t klen = strlen(key);
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        char *p = line;
        if (strncmp(p, "# ", 2) == 0)
            p += 2;
        if (strncmp(p, key, klen) == 0 && strncmp(p + klen, " = ", 3) == 0) {
            const char *v = p + klen + 3;
            st = strlen(v) < cap ? AETHER_OK : AETHER_EFULL;
            snprintf(buf, cap, "%s", v);
            break;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
    if (st == AETHER_EFULL)
        return aether_facade_fail(st, "aether_options_get: %s: value longer than %zu bytes", key, cap - 1);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "aether_options_get: %s: not described", key);
    return AETHER_OK;
}

aether_status aether_options_load_file(aether_options *opts, const char *path)
{
    if (opts == NULL || path == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_options_load_file: %s is NULL",
                                  opts == NULL ? "opts" : "path");
    aether_err err = { 0 };
    aether_status st = aether_settings_load_file(&opts->s, path, &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "%s", err.msg);
    return AETHER_OK;
}

aether_status aether_options_load_env(aether_options *opts)
{
    if (opts == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_options_load_env: opts is NULL");
    aether_err err = { 0 };
    aether_status st = aether_settings_load_env(&opts->s, environ, aether_facade_env_ignored, &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "%s", err.msg);
    return AETHER_OK;
}

#define SET_CALLBACK(field, argfield)                                                                  \
    do {                                                                                               \
        if (opts == NULL)                                                                              \
            return aether_facade_fail(AETHER_EINVAL, "%s: opts is NULL", __func__);                     \
        opts->field = fn;                                                                              \
        opts->argfield = fn != NULL ? arg : NULL;                                                      \
        return AETHER_OK;                                                                              \
    } while (0)

aether_status aether_options_on_shard_acquired(aether_options *opts, aether_shard_acquired_fn fn, void *arg)
{
    SET_CALLBACK(on_acquired, acquired_arg);
}

aether_status aether_options_on_shard_released(aether_options *opts, aether_shard_released_fn fn, void *arg)
{
    SET_CALLBACK(on_released, released_arg);
}

aether_status aether_options_on_leader_changed(aether_options *opts, aether_leader_changed_fn fn, void *arg)
{
    SET_CALLBACK(on_leader, leader_arg);
}

aether_status aether_options_on_map_installed(aether_options *opts, aether_map_installed_fn fn, void *arg)
{
    SET_CALLBACK(on_map, map_arg);
}

/* ---- internal (aether_node_hooks.h) ------------------------------------------ */

void aether_options_set_settings(aether_options *opts, const aether_settings *s)
{
    AETHER_ASSERT(opts != NULL && s != NULL);
    opts->s = *s;
}

void aether_options_set_hooks(aether_options *opts, const aether_node_hooks *hooks)
{
    AETHER_ASSERT(opts != NULL);
    if (hooks != NULL)
        opts->hooks = *hooks;
    else
        memset(&opts->hooks, 0, sizeof(opts->hooks));
}
