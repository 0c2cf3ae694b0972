/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.h: how a node reaches the other nodes of its cluster, as the
 * domain sees it (actors layer). Implementations live in transport/: the
 * in-process hub (transport/inproc.h) and NATS (transport/nats_transport.h).
 *
 * A transport is one node's endpoint. What the node sends:
 *  - events (leader-issued or node-local) to every node;
 *  - ShardMap publications to every node;
 *  - heartbeats to every node (the leader listens);
 *  - commands to the current leader, with an asynchronous reply: a command
 *    that send_command accepted (AETHER_OK) is answered exactly once while
 *    the endpoint stays bound - by the leader, or by the transport with a
 *    timeout or "closed" - and never after unbind (the member's keep-alives
 *    rely on both).
 * What the node receives arrives through the sink it binds: the callbacks
 * run on a transport thread (or the step executor's thread) and must only
 * copy what they need into an actor mailbox; they never block and never
 * touch actor state. An endpoint receives its own broadcasts back (echo);
 * the node drops them by emitter.
 *
 * Commands reach only a node that serves them (the leader calls
 * serve_commands(true) while it leads). With nobody serving, send_command
 * returns AETHER_ENOTLEADER and the sender retries later.
 *
 * Threading: every operation from any thread; sinks as above. Publications,
 * send_command, send_release and serve_commands never wait (an actor calls
 * them from its handler). bind, unbind and destroy may wait for the
 * transport's own thread (NATS: its actor), so call them from a thread that
 * is not running a sink callback or a reply_fn (the node's lifecycle calls).
 */
#ifndef AETHER_TRANSPORT_H
#define AETHER_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "shardmap.h"
#include "status.h"

typedef struct aether_transport aether_transport;

/* The reply to a command: AETHER_OK or the rejection and its reason. Called
 * once, on any thread; must only enqueue. */
typedef void (*aether_reply_fn)(void *arg, aether_status status, const char *reason);

/* A ShardReleased acknowledgement (internal command of ShardAssignment). */
typedef struct aether_release_ack {
    aether_node_id from;  /* the old owner */
    uint32_t shard;
    uint64_t map_version; /* version of the map that asked for the release */
    aether_term term;     /* term of that map */
} aether_release_ack;

typedef struct aether_transport_sink {
    /* e is borrowed for the call (retain it to keep it). */
    void (*on_event)(void *arg, const aether_event *e);
    /* m is borrowed for the call (copy it to keep it). json/len: the bytes
     * as they were published (the canonical JSON of m), borrowed too; NULL
     * and 0 when the transport has none (a publish_map without JSON). */
    void (*on_map)(void *arg, const aether_shardmap *m, const char *json, size_t len);
    void (*on_heartbeat)(void *arg, const aether_node_id *node, uint64_t incarnation);
    /* Only while serving commands. reply must be called exactly once. */
    void (*on_command)(void *arg, const aether_command *c, aether_reply_fn reply, void *reply_arg);
    void (*on_release)(void *arg, const aether_release_ack *ack);
    void *arg;
} aether_transport_sink;

typedef struct aether_transport_ops {
    aether_status (*bind)(aether_transport *t, const aether_transport_sink *sink);
    void (*unbind)(aether_transport *t);
    aether_status (*publish_event)(aether_transport *t, const aether_event *e);
    aether_status (*publish_map)(aether_transport *t, const aether_shardmap *m);
    aether_status (*publish_heartbeat)(aether_transport *t, const aether_node_id *node,
                                       uint64_t incarnation);
    aether_status (*send_command)(aether_transport *t, const aether_command *c, aether_reply_fn reply,
                                  void *reply_arg);
    /* To the node serving commands (the leader). */
    aether_status (*send_release)(aether_transport *t, const aether_release_ack *ack);
    aether_status (*serve_commands)(aether_transport *t, bool on);
    void (*destroy)(aether_transport *t);
    /* Optional (NULL: publish_map): m together with its canonical bytes
     * (map format 2, shardmap_codec.h), already encoded by the caller (the
     * very value it stored) - a transport sends them as they are instead
     * of encoding m again. (The name predates format 2.) */
    aether_status (*publish_map_json)(aether_transport *t, const aether_shardmap *m, const char *json,
                                      size_t len);
} aether_transport_ops;

struct aether_transport {
    const aether_transport_ops *ops; /* immutable */
};

static inline aether_status aether_transport_bind(aether_transport *t, const aether_transport_sink *s)
{
    return t->ops->bind(t, s);
}
static inline void aether_transport_unbind(aether_transport *t) { t->ops->unbind(t); }
static inline aether_status aether_transport_publish_event(aether_transport *t, const aether_event *e)
{
    return t->ops->publish_event(t, e);
}
static inline aether_status aether_transport_publish_map(aether_transport *t, const aether_shardmap *m)
{
    return t->ops->publish_map(t, m);
}
static inline aether_status aether_transport_publish_map_json(aether_transport *t,
                                                              const aether_shardmap *m,
                                                              const char *json, size_t len)
{
    return t->ops->publish_map_json != NULL ? t->ops->publish_map_json(t, m, json, len)
                                            : t->ops->publish_map(t, m);
}
static inline aether_status aether_transport_publish_heartbeat(aether_transport *t,
                                                               const aether_node_id *node,
                                                               uint64_t incarnation)
{
    return t->ops->publish_heartbeat(t, node, incarnation);
}
static inline aether_status aether_transport_send_command(aether_transport *t,
                                                          const aether_command *c,
                                                          aether_reply_fn reply, void *reply_arg)
{
    return t->ops->send_command(t, c, reply, reply_arg);
}
static inline aether_status aether_transport_send_release(aether_transport *t,
                                                          const aether_release_ack *ack)
{
    return t->ops->send_release(t, ack);
}
static inline aether_status aether_transport_serve_commands(aether_transport *t, bool on)
{
    return t->ops->serve_commands(t, on);
}
/* NULL is fine. */
static inline void aether_transport_destroy(aether_transport *t)
{
    if (t != NULL)
        t->ops->destroy(t);
}

#endif
