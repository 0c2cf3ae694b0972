/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_node.h: one embedded cluster node (public, installed as
 * <aether/aether_node.h>; transport layer, the facade over the actors'
 * member, the transports and the stores). docs/embedding.md walks through
 * it with an example.
 *
 * Lifecycle:
 *   aether_node_start      joins the cluster (over NATS when nats_urls is
 *                          set, else in-process), returns at once;
 *   aether_node_wait_ready until this node has a map it can serve from;
 *   ... route and check routes from any thread; callbacks fire ...
 *   aether_node_drain      leaves gracefully: its shards are handed off;
 *   aether_node_stop       halts without leaving (the others declare it
 *                          failed after failure_timeout_ms: a crash);
 *   aether_node_destroy    frees it (stops it first if needed).
 *
 * Modes (chosen by the options):
 *  - NATS (nats_urls set): the node connects with the nats_* parameters,
 *    creates the KV buckets aether_<cluster>_lease (TTL lease_ttl_ms) and
 *    aether_<cluster>_state if they are missing (waiting up to
 *    nats_connect_timeout_ms for JetStream), loads cluster_secret_file if
 *    set, and talks to the other processes of its cluster. One node per
 *    process and node id (a second process of the same id supersedes the
 *    first: AETHER_ESUPERSEDED).
 *  - In-process (no nats_urls; the embedded default): every node started in
 *    this process with the same "cluster" shares one in-process cluster
 *    (transport hub, lease and state stores, executor), created by the
 *    first node and freed with the last. Several nodes per process; no
 *    server. Their shard_count, replication and lease_ttl_ms must agree.
 *
 * Threading and signals:
 *  - start, wait_ready, drain, stop and destroy of one node from one thread
 *    at a time, never from a callback (aether_options.h). Any thread of the
 *    program may be that thread.
 *  - The lookups (route_*, check_route, map_version, may_serve, name) from
 *    any thread, concurrently, lock-free, until aether_node_destroy begins;
 *    nothing needs registering first.
 *  - Every thread the library starts (executor workers, timers, the RCU
 *    reclaimer, the NATS client's threads) blocks every signal, whatever the
 *    calling thread's mask: a program that waits for SIGTERM with sigwait
 *    gets it, and a handler never runs on a library thread. To that end
 *    aether_node_start runs with every signal blocked in the calling thread
 *    (NATS mode: up to a few nats_connect_timeout_ms) and restores its mask
 *    before returning; a signal aimed at that thread meanwhile is delivered
 *    then.
 *
 * Ownership: the library owns the aether_node until aether_node_destroy;
 * strings it returns (aether_node_name, aether_version, aether_status_str)
 * are its own, valid as long as the node (or, for constants, forever);
 * every aether_route is the caller's, filled with copies.
 */
#ifndef AETHER_PUBLIC_NODE_H
#define AETHER_PUBLIC_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aether_options.h"
#include "aether_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest node id (1..64 of [A-Za-z0-9_.-]). */
#define AETHER_ID_LEN_MAX 64

/* What aether_node_check_route tells the receiver of a routed message. */
typedef enum aether_route_answer {
    AETHER_ROUTE_LOOKUP = 0, /* filled by a plain lookup (route_key/_shard/_hash), not a check */
    AETHER_ROUTE_MINE,       /* this node owns the shard and serves it now: serve the message */
    AETHER_ROUTE_MOVED,      /* another node owns it (owner, map_version): forward there or
                                tell the sender, which fast-forwards (Redis MOVED) */
    AETHER_ROUTE_MOVING,     /* a handoff from this node to `to` is under way and this node
                                has released the shard: send to `to` (Redis ASK) */
    AETHER_ROUTE_BEHIND,     /* the caller knows a newer map than this node: the node has
                                just asked for the stored map; ask again shortly */
    AETHER_ROUTE_TRYAGAIN,   /* this node's map names it but it does not serve the shard at
                                this instant (acquire not done yet, fenced from the leader,
                                no map yet, no owner): hold the message and ask again
                                (Redis TRYAGAIN) */
} aether_route_answer;

/* The answer to "who owns this key / shard", as copies: valid after the
 * call whatever the cluster does meanwhile. Every field comes from one map. */
typedef struct aether_route {
    uint64_t map_version;        /* the map that answered (0: no map) */
    uint64_t term;               /* the leader term that produced it */
    uint32_t shard;              /* the shard */
    uint32_t owner_count;        /* owners of the shard (primary + replicas) */
    bool moving;                 /* a handoff owner -> to is under way */
    bool self;                   /* owner is this node */
    aether_route_answer answer;  /* check_route's verdict; AETHER_ROUTE_LOOKUP otherwise */
    char owner[AETHER_ID_LEN_MAX + 1]; /* the primary owner's node id; "" when none */
    char to[AETHER_ID_LEN_MAX + 1];    /* the handoff target when moving; "" otherwise */
} aether_route;

/* Starts a node with a copy of opts (opts may be destroyed afterwards).
 * Returns once the node runs (joined or joining): use aether_node_wait_ready
 * before routing. Required parameter: "node". On success *out is the
 * caller's (aether_node_destroy); on failure *out is NULL and nothing is
 * left running.
 * AETHER_OK;
 * AETHER_EINVAL   no node id, a combination the configuration check refuses
 *                 (aether_last_error names the parameter), NULL argument;
 * AETHER_EEXIST   in-process: a node of this id already runs in this
 *                 process's cluster of that name;
 * AETHER_EINCOMPATIBLE in-process: shard_count, replication or lease_ttl_ms
 *                 differ from the in-process cluster's; NATS: a bucket exists
 *                 with another TTL or replica count;
 * AETHER_EUNAVAILABLE NATS or JetStream not reachable within
 *                 nats_connect_timeout_ms;
 * AETHER_EPERM    the server refused the credentials or the KV operations;
 * AETHER_ENOTFOUND a file named by the options (secret, credentials) is missing;
 * AETHER_ENOMEM, AETHER_EIO (a thread could not be created). */
AETHER_API aether_status aether_node_start(const aether_options *opts, aether_node **out);

/* Waits until this node is ready: admitted, a map installed, and its right
 * to serve confirmed (aether_node_may_serve). timeout_ms 0 only checks.
 * AETHER_OK; AETHER_ETIMEOUT (aether_last_error says what is missing: no
 * leader known, not admitted yet, no map yet, fenced); AETHER_EINCOMPATIBLE
 * (the leader refused this node: aether_last_error has its reason; final);
 * AETHER_ESUPERSEDED (final); AETHER_ECLOSED (stopped); AETHER_EINVAL. */
AETHER_API aether_status aether_node_wait_ready(aether_node *node, uint32_t timeout_ms);

/* The hot path, from any thread, lock-free, no allocation: the shard of
 * the key (XXH64(key, len, seed 0) % shard_count; key may be NULL when len
 * is 0) and its owners in this node's current map. These three do not set
 * aether_last_error.
 * AETHER_OK; AETHER_ENOTFOUND: no map yet (map_version 0), or the shard has
 * no owner (the other fields filled, owner ""); AETHER_EINVAL (NULL
 * argument; route_shard: shard >= shard_count). */
AETHER_API aether_status aether_node_route_key(const aether_node *node, const void *key, size_t len,
                                               aether_route *out);
AETHER_API aether_status aether_node_route_shard(const aether_node *node, uint32_t shard,
                                                 aether_route *out);
/* For runtimes that hash their keys already with XXH64 seed 0: the shard is
 * hash % shard_count (so hash == XXH64(key) routes exactly as route_key). */
AETHER_API aether_status aether_node_route_hash(const aether_node *node, uint64_t hash, aether_route *out);

/* The receiving side of a routed message (DESIGN "stale-route answers"):
 * a message for `shard`, routed by a sender whose map had version
 * caller_map_version (0 if unknown), arrived here. out->answer says what
 * to do (aether_route_answer); the rest of *out is this node's route for
 * the shard. In order:
 *   caller_map_version > this node's map version: BEHIND, and the node
 *     reads the stored map at once (at most one read asked per 2 ms,
 *     whoever asks);
 *   this node serves the shard now (acquired, not released, its right to
 *     serve holds): MINE (also while a handoff away from it is under way
 *     and it has not released yet: moving and `to` are set);
 *   a handoff away from this node that it has released: MOVING (to);
 *   another node owns it: MOVED (owner, map_version);
 *   otherwise TRYAGAIN.
 * MINE is a statement about this instant: a program that serves must not
 * serve past on_shard_released (it serialises its serving with that
 * callback, e.g. one lock per shard or per worker).
 * Any thread, lock-free. AETHER_OK; AETHER_EINVAL (NULL, shard out of
 * range); AETHER_ESUPERSEDED (this process was superseded: serve nothing). */
AETHER_API aether_status aether_node_check_route(aether_node *node, uint32_t shard, uint64_t caller_map_version,
                                                 aether_route *out);

/* The shard of a key without a node: XXH64(key, len, seed 0) % shard_count,
 * the documented function any language computes (docs/wire.md has the vectors:
 * "user:42" is shard 450 of 1024). shard_count 0 gives 0. Any thread. */
AETHER_API uint32_t aether_shard_of_key(const void *key, size_t len, uint32_t shard_count);

/* The version of this node's current map. AETHER_OK; AETHER_ENOTFOUND (no
 * map yet, *version 0). Any thread. */
AETHER_API aether_status aether_node_map_version(const aether_node *node, uint64_t *version);

/* True while this node may serve the shards it acquired, by its own clock
 * (admitted, map current, in touch with the leader). Any thread. */
AETHER_API bool aether_node_may_serve(const aether_node *node);

/* This node's id ("node" parameter), owned by the node. Any thread. */
AETHER_API const char *aether_node_name(const aether_node *node);

/* Leaves the cluster gracefully and waits up to timeout_ms for the leader
 * to declare it Left (its shards handed off: on_shard_released fires for
 * each). A node that leads hands the lease over first. Call stop/destroy
 * afterwards. AETHER_OK (left); AETHER_ETIMEOUT (asked, not left yet: call
 * again to keep waiting); AETHER_ESUPERSEDED; AETHER_ECLOSED (stopped);
 * AETHER_ENOTLEADER (no leader reachable to ask, after timeout_ms);
 * AETHER_EINVAL. */
AETHER_API aether_status aether_node_drain(aether_node *node, uint32_t timeout_ms);

/* Halts the node without leaving: no callback runs after it returns; the
 * routes keep answering from the last map. Idempotent. NULL is fine. */
AETHER_API void aether_node_stop(aether_node *node);

/* Stops (if needed) and frees the node; the last node of an in-process
 * cluster frees the cluster, a NATS node closes its connection. No call on
 * the node may be running or start. NULL is fine. */
AETHER_API void aether_node_destroy(aether_node *node);

/* The library's version, "MAJOR.MINOR.PATCH" (the one aether_version.h has
 * at compile time). Never NULL. */
AETHER_API const char *aether_version(void);

#ifdef __cplusplus
}
#endif

#endif
