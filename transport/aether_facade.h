/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_facade.h: what the public API's two modules share (transport
 * layer, internal: never installed). aether_options.c owns the options and
 * the thread-local error text; aether_node.c reads the options to start a
 * node.
 */
#ifndef AETHER_FACADE_H
#define AETHER_FACADE_H

#include "aether_node.h"
#include "aether_options.h"
#include "aether_node_hooks.h"
#include "settings.h"
#include "status.h"

struct aether_options {
    aether_settings s; /* the one parameter table's values (settings.h) */
    aether_shard_acquired_fn on_acquired;
    void *acquired_arg;
    aether_shard_released_fn on_released;
    void *released_arg;
    aether_leader_changed_fn on_leader;
    void *leader_arg;
    aether_map_installed_fn on_map;
    void *map_arg;
    aether_node_hooks hooks; /* the tools' internal extras (aether_internal.h); zero = none */
};

/* Records the sentence aether_last_error returns on this thread and
 * returns st (which must not be AETHER_OK). */
aether_status aether_facade_fail(aether_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The environment variables the tools read themselves (not parameters). */
extern const char *const aether_facade_env_ignored[];

#endif
