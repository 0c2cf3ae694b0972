/*
 * inproc.h: the in-process transport (transport layer): nodes living in one
 * process reach each other through a hub, with no server. It is the embedded
 * default (aether-node --embedded) and the network of deterministic tests.
 *
 * Delivery is synchronous and in endpoint-creation order: a publish calls
 * every bound endpoint's sink (including the sender's own: echo) before it
 * returns, under the hub mutex, so one publisher's messages reach each node
 * in order and deliveries from different threads never interleave within
 * one message. Sinks only enqueue (transport.h), so holding the mutex
 * across them cannot deadlock. Commands and release acknowledgements go to
 * the first endpoint that serves commands.
 *
 * Faults for tests: an isolated endpoint neither sends nor receives
 * (a partition of one node from all others); its sends fail with
 * AETHER_EUNAVAILABLE.
 *
 * Threading: any thread. Destroy every endpoint before the hub.
 */
#ifndef AETHER_INPROC_H
#define AETHER_INPROC_H

#include <stdbool.h>

#include "node_id.h"
#include "transport.h"

typedef struct aether_inproc_hub aether_inproc_hub;

aether_status aether_inproc_hub_create(aether_inproc_hub **out);
void aether_inproc_hub_destroy(aether_inproc_hub *hub); /* NULL is fine */

/* An endpoint for node `self` (ids need not be unique: a restarted node gets
 * a new endpoint while the old one is being torn down). Destroy it with
 * aether_transport_destroy. */
aether_status aether_inproc_endpoint_create(aether_inproc_hub *hub, const aether_node_id *self,
                                            aether_transport **out);

void aether_inproc_set_isolated(aether_inproc_hub *hub, const aether_node_id *node, bool isolated);

/* Messages delivered so far (all kinds, all endpoints), for tests. */
uint64_t aether_inproc_delivered(const aether_inproc_hub *hub);

#endif
