/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_options.h: how an embedded node is configured (public, installed
 * as <aether/aether_options.h>; transport layer, the facade over the node).
 *
 * An aether_options is an opaque bag of parameters, built the way nats.c
 * builds a natsOptions: create it, set what differs from the defaults,
 * hand it to aether_node_start (which copies what it needs: the options may
 * be changed or destroyed afterwards, and one options object may start any
 * number of nodes), destroy it. New parameters never change the ABI.
 *
 * Parameters are set by key, with the very keys of the configuration file
 * and of the AETHER_<KEY> environment variables (docs/configuration.md has
 * the table: "node", "cluster", "shard_count", "lease_ttl_ms", "nats_urls",
 * ...; one table serves every source). Values are strings, parsed and
 * range-checked as the file's are. Later calls override earlier ones, so
 *     aether_options_load_file(o, "node.ini");
 *     aether_options_load_env(o);
 *     aether_options_set(o, "node", "node-7");
 * gives the file < environment < code precedence aether-node gives file <
 * environment < flags.
 *
 * Errors: every call that fails returns its status and leaves one sentence
 * naming the key (and the file and line, or the variable) and the reason in
 * a thread-local buffer, aether_last_error(), the way nats.c keeps
 * nats_GetLastError: "aether_options_set: shard_count wants an integer 1..65536, not '0'".
 * A secret's value (nats_password, nats_token) is never quoted.
 *
 * Threading: an options object belongs to one thread at a time (no locks);
 * aether_node_start only reads it.
 */
#ifndef AETHER_PUBLIC_OPTIONS_H
#define AETHER_PUBLIC_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "aether_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aether_options aether_options;
typedef struct aether_node aether_node; /* aether_node.h */

/* A new options object with every default (docs/configuration.md; no node
 * id, no NATS URL: in-process). *out is the caller's: free it with
 * aether_options_destroy. AETHER_OK; AETHER_EINVAL (out NULL); AETHER_ENOMEM. */
AETHER_API aether_status aether_options_create(aether_options **out);

/* Frees opts. NULL is fine. Nodes started with it are not affected. */
AETHER_API void aether_options_destroy(aether_options *opts);

/* Sets one parameter: key as in the configuration file ("lease_ttl_ms"),
 * value as its text ("1500"; booleans 1/0, true/false, yes/no, on/off).
 * Both strings are copied. AETHER_OK; AETHER_EINVAL: an unknown key, a
 * value that does not parse, is out of range or too long, or a NULL
 * argument (aether_last_error names the key and why). */
AETHER_API aether_status aether_options_set(aether_options *opts, const char *key, const char *value);

/* The current value of a parameter as text, in the file's format, into
 * buf (NUL-terminated): secrets read "(set)" or "". AETHER_OK;
 * AETHER_ENOTFOUND (unknown key); AETHER_EFULL (cap too small; truncated);
 * AETHER_EINVAL (NULL argument). */
AETHER_API aether_status aether_options_get(const aether_options *opts, const char *key, char *buf,
                                            size_t cap);

/* Reads a configuration file (INI: `key = value`, [node] [cluster] [nats]
 * sections; docs/configuration.md). AETHER_OK; AETHER_ENOTFOUND (cannot
 * open it); AETHER_EINVAL (a syntax error, an unknown or refused key, a
 * key set twice: the file, line and key are named). On failure the
 * parameters read before the bad line stay set. */
AETHER_API aether_status aether_options_load_file(aether_options *opts, const char *path);

/* Applies every AETHER_<KEY> environment variable that names a parameter
 * (AETHER_LEASE_TTL_MS=1500). A variable with the prefix that names no
 * parameter is refused (a typo must not be ignored), except those the
 * tools read themselves: AETHER_CONFIG, AETHER_NATS_SERVER,
 * AETHER_KEEP_LOGS, AETHER_SIM_*. AETHER_OK; AETHER_EINVAL (the variable
 * and why). Reads the environment: do not call it while another thread
 * calls setenv. */
AETHER_API aether_status aether_options_load_env(aether_options *opts);

/* ---- callbacks -------------------------------------------------------------
 *
 * Set on the options, called for every node started with them; `arg` is
 * passed back untouched. Each may be left unset (NULL fn: nothing is called).
 *
 * Thread: the node's own library threads (its actors run on an executor
 * whose threads block every signal), one callback at a time per node and
 * never on the thread that called aether_node_start. Two nodes' callbacks
 * may run at the same time.
 * Allowed inside: every lookup of aether_node.h (route_*, check_route,
 * map_version, may_serve, name), and the program's own work. Not allowed:
 * aether_node_wait_ready, _drain, _stop, _destroy on any node (they wait
 * for these very threads: deadlock), nor aether_node_start.
 * Duration: return within a few milliseconds. The node's heartbeats and
 * lease renewals run on the same threads; a callback that blocks longer
 * than heartbeat_interval_ms can get its node declared failed.
 * Pointers passed in (node, leader) are valid during the call only.
 *
 * Handoff order (DESIGN 2, "Shard handoff"): on_shard_released fires on the
 * old owner before on_shard_acquired fires on the new one. When
 * on_shard_released returns, the program must have stopped serving the
 * shard (finish or hand back what is in flight inside the callback).
 */

/* This node now owns `shard` as of the map `map_version`: serve it. */
typedef void (*aether_shard_acquired_fn)(aether_node *node, uint32_t shard, uint64_t map_version,
                                         void *arg);
/* This node no longer owns `shard`: stop serving it before returning. */
typedef void (*aether_shard_released_fn)(aether_node *node, uint32_t shard, uint64_t map_version,
                                         void *arg);
/* This node learned of a new leader, or that there is none. `leader` is
 * never NULL: the leader's node id, or "" (empty string) when no node
 * leads `term` (the lease expired or was resigned). */
typedef void (*aether_leader_changed_fn)(aether_node *node, const char *leader, uint64_t term,
                                         void *arg);
/* A newer shard map became this node's lookups (its acquired/released
 * callbacks for that map follow). */
typedef void (*aether_map_installed_fn)(aether_node *node, uint64_t map_version, uint64_t term,
                                        void *arg);

/* Each setter: AETHER_OK, or AETHER_EINVAL when opts is NULL. fn NULL
 * clears the callback. */
AETHER_API aether_status aether_options_on_shard_acquired(aether_options *opts, aether_shard_acquired_fn fn,
                                                          void *arg);
AETHER_API aether_status aether_options_on_shard_released(aether_options *opts, aether_shard_released_fn fn,
                                                          void *arg);
AETHER_API aether_status aether_options_on_leader_changed(aether_options *opts, aether_leader_changed_fn fn,
                                                          void *arg);
AETHER_API aether_status aether_options_on_map_installed(aether_options *opts, aether_map_installed_fn fn,
                                                         void *arg);

/* The sentence the last failing call of this API made on this thread
 * ("" if none yet). Valid until the thread's next failing call; never
 * NULL. A successful call does not clear it. */
AETHER_API const char *aether_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
