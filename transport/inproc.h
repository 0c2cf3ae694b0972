/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inproc.h: the in-process transport (transport layer): nodes living in one
 * process reach each other through a hub, with no server. It is the embedded
 * default (aether-node --embedded) and the network of deterministic tests
 * and of the simulator (tools/aether-sim).
 *
 * Two delivery modes, chosen when the hub is created:
 *
 *  - Synchronous (aether_inproc_hub_create, the default): a publish calls
 *    every bound endpoint's sink (including the sender's own: echo) before
 *    it returns, under the hub mutex, so one publisher's messages reach each
 *    node in order and deliveries from different threads never interleave
 *    within one message. Sinks only enqueue (transport.h), so holding the
 *    mutex across them cannot deadlock.
 *
 *  - Simulated network (aether_inproc_hub_create_net): every delivery to
 *    every receiver goes through a queue ordered by (delivery time, sequence)
 *    on the executor's clock, and a "net" actor on that executor hands due
 *    messages to the sinks. Each delivery draws, from the hub's own seeded
 *    generator, a delay (uniform or exponential, bounded), a loss, a
 *    duplicate (a second copy, later) and a reordering (it ignores the
 *    link's FIFO order); without reordering a link (sender endpoint ->
 *    receiver endpoint) is FIFO, as NATS is per connection. On the step
 *    executor a run is therefore a function of the seeds. Rates can change
 *    at any time (heal = all zero). Heartbeats reach only endpoints serving
 *    commands (only the leader listens; the sink drops them elsewhere anyway),
 *    which keeps a 1000-node simulation from spending its time on them.
 *    A command or release ack goes to the endpoint serving commands when it
 *    is sent (none reachable: AETHER_ENOTLEADER at once, like NATS "no
 *    responders"); a command that is lost on the way there or back, or whose
 *    server is gone on arrival, is answered AETHER_EUNKNOWN after
 *    request_timeout (a NATS request timeout). Commands and replies are
 *    never duplicated (a request has one answer).
 *
 * In both modes a command's reply is routed back through the hub: it reaches
 * the sender only while its endpoint exists and has not been unbound since it
 * was bound, so a reply that comes after its node stopped is dropped instead
 * of touching a freed node. Until then every command that send_command
 * accepted gets exactly one answer (a timeout, at worst), as on NATS.
 *
 * Faults (both modes): an isolated endpoint neither sends nor receives
 * (a partition of one node from all others); its sends fail with
 * AETHER_EUNAVAILABLE. Partitions between groups: every node id is in a
 * group (0 by default, up to AETHER_INPROC_GROUPS_MAX), and each ordered
 * pair of groups has a link that is up or down; a message from a node of
 * group a reaches a node of group b only while link a->b is up (checked when
 * sent and again when delivered, so a partition also cuts what is in
 * flight). Symmetric partition = both directions down; one-way = one.
 *
 * Threading: any thread. Destroy every endpoint before the hub. A network
 * hub's executor must outlive the hub (the net actor is destroyed with it).
 */
#ifndef AETHER_INPROC_H
#define AETHER_INPROC_H

#include <stdbool.h>

#include "executor.h"
#include "node_id.h"
#include "transport.h"

#define AETHER_INPROC_GROUPS_MAX 16u

typedef struct aether_inproc_hub aether_inproc_hub;

/* A synchronous hub. */
aether_status aether_inproc_hub_create(aether_inproc_hub **out);

typedef enum aether_inproc_delay_kind {
    AETHER_INPROC_DELAY_UNIFORM = 0,     /* uniform in [min, max] */
    AETHER_INPROC_DELAY_EXPONENTIAL = 1, /* min + exponential with mean (mean - min), capped at max */
} aether_inproc_delay_kind;

/* The network's behaviour; every rate is per delivery (one message to one
 * receiver), in parts per million. */
typedef struct aether_inproc_net_faults {
    aether_inproc_delay_kind delay_kind;
    uint64_t delay_min_us;  /* <= delay_mean_us <= delay_max_us */
    uint64_t delay_mean_us; /* exponential only */
    uint64_t delay_max_us;  /* <= AETHER_INPROC_DELAY_MAX_US */
    uint32_t loss_ppm;
    uint32_t dup_ppm;
    uint32_t reorder_ppm;   /* such a delivery may also take up to 4x delay_max_us */
} aether_inproc_net_faults;

#define AETHER_INPROC_DELAY_MAX_US UINT64_C(60000000) /* one minute */

typedef struct aether_inproc_net_config {
    aether_executor *executor;   /* required: its clock times deliveries, its net actor runs them */
    uint64_t seed;               /* the hub's generator */
    aether_inproc_net_faults faults;
    uint64_t request_timeout_us; /* a lost command is answered EUNKNOWN after this; 0 = 1 s */
    uint32_t queue_max;          /* deliveries in flight; 0 = 4M; beyond it a delivery is
                                    dropped and counted (a lost message, never a crash) */
} aether_inproc_net_config;

/* A hub with a simulated network. AETHER_EINVAL for a bad config. */
aether_status aether_inproc_hub_create_net(const aether_inproc_net_config *cfg,
                                           aether_inproc_hub **out);
/* Network hubs only (asserted): new rates from now on (what is in flight keeps
 * its draws). EINVAL if inconsistent. */
aether_status aether_inproc_set_net_faults(aether_inproc_hub *hub, const aether_inproc_net_faults *f);

void aether_inproc_hub_destroy(aether_inproc_hub *hub); /* NULL is fine */

/* An endpoint for node `self` (ids need not be unique: a restarted node gets
 * a new endpoint while the old one is being torn down). Destroy it with
 * aether_transport_destroy. */
aether_status aether_inproc_endpoint_create(aether_inproc_hub *hub, const aether_node_id *self,
                                            aether_transport **out);

void aether_inproc_set_isolated(aether_inproc_hub *hub, const aether_node_id *node, bool isolated);

/* Puts node in group (< AETHER_INPROC_GROUPS_MAX); group 0 forgets it. */
void aether_inproc_set_group(aether_inproc_hub *hub, const aether_node_id *node, uint32_t group);
/* Link from group a to group b (a == b allowed) up or down. */
void aether_inproc_set_link(aether_inproc_hub *hub, uint32_t from_group, uint32_t to_group, bool up);
/* Every link up, every node back in group 0, nobody isolated. Rates stay. */
void aether_inproc_heal(aether_inproc_hub *hub);

/* An observer of every map an endpoint publishes (a simulation's oracle):
 * called on the publisher's thread, under the hub mutex, before delivery.
 * It must not call into the hub. NULL turns it off. */
typedef void (*aether_inproc_map_tap_fn)(void *arg, const aether_node_id *from,
                                         const aether_shardmap *map);
void aether_inproc_set_map_tap(aether_inproc_hub *hub, aether_inproc_map_tap_fn fn, void *arg);
/* The same for every event an endpoint publishes: with the map tap, one
 * total order of what each publisher put on the hub (under the hub mutex). */
typedef void (*aether_inproc_event_tap_fn)(void *arg, const aether_node_id *from,
                                           const aether_event *event);
void aether_inproc_set_event_tap(aether_inproc_hub *hub, aether_inproc_event_tap_fn fn, void *arg);

typedef struct aether_inproc_stats {
    uint64_t delivered;  /* sink calls */
    uint64_t lost;       /* by the loss rate */
    uint64_t duplicated;
    uint64_t reordered;
    uint64_t blocked;    /* by a partition or an isolation, at send or at delivery */
    uint64_t dropped;    /* queue full, or the receiver was gone on arrival */
    uint64_t timeouts;   /* commands answered EUNKNOWN */
    uint64_t in_flight;  /* deliveries queued now */
} aether_inproc_stats;

void aether_inproc_stats_get(aether_inproc_hub *hub, aether_inproc_stats *out);

/* Messages delivered so far (all kinds, all endpoints), for tests. */
uint64_t aether_inproc_delivered(const aether_inproc_hub *hub);

#endif
