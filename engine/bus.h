/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus.h: the event bus (engine layer).
 *
 * A publisher (usually an actor, from its handler) publishes a message on a
 * topic 0..63; every subscriber whose topic mask has that bit receives it:
 *  - an actor subscriber gets it in its mailbox;
 *  - a function subscriber is called on the publisher's thread and must only
 *    enqueue (into a mailbox, a pipe, a NATS publish buffer), never block or
 *    touch another actor's state.
 * Order: the events of one publisher reach each subscriber in the order they
 * were published (mailboxes are FIFO per producer). Events of different
 * publishers interleave in no promised order.
 *
 * Payloads: if msg->flags has AETHER_MSG_REF, msg->ptr is an aether_ref; the
 * bus takes one extra reference per actor delivery, and the publisher keeps
 * its own. A function subscriber borrows the payload for the call (retain it
 * to keep it). A message without AETHER_MSG_REF must carry no owned payload.
 *
 * No delivery is lost (DESIGN 3): an actor delivery goes through
 * aether_actor_send, so a full mailbox holds the event in the actor's
 * overflow list, in publish order, counted in aether_mailbox_full_total
 * and logged once per burst (actor.h step 1b); the publisher never waits.
 * Events are facts that must arrive in order, so they are never coalesced
 * here; state that supersedes itself goes through aether_latest instead.
 * What still fails is a closed mailbox (the actor is shutting down) or an
 * overflow list at its memory bound: publish returns how many deliveries
 * failed, counts them in the bus's failed_deliveries counter and logs
 * (rate-limited).
 *
 * Threading: publish from any thread; subscribe/unsubscribe from any thread
 * except inside a function subscriber. The subscriber list is guarded by a
 * mutex held during a publish (publishers never block on anything else).
 */
#ifndef AETHER_BUS_H
#define AETHER_BUS_H

#include <stdint.h>

#include "actor.h"
#include "mailbox.h"
#include "metrics.h"
#include "status.h"

typedef struct aether_bus aether_bus;
typedef uint64_t aether_bus_sub_id; /* 0 is never valid */

typedef void (*aether_bus_fn)(void *arg, uint32_t topic, const aether_msg *msg);

#define AETHER_BUS_TOPIC_MAX 64u
#define AETHER_BUS_ALL_TOPICS UINT64_MAX

/* metrics may be NULL; labels are added to the bus's series. */
aether_status aether_bus_create(aether_metrics *metrics, const char *metric_labels,
                                aether_bus **out);
void aether_bus_destroy(aether_bus *bus); /* NULL is fine */

aether_status aether_bus_subscribe_actor(aether_bus *bus, uint64_t topic_mask, aether_actor *a,
                                         aether_bus_sub_id *out);
aether_status aether_bus_subscribe_fn(aether_bus *bus, uint64_t topic_mask, aether_bus_fn fn,
                                      void *arg, aether_bus_sub_id *out);
/* AETHER_ENOTFOUND if id is unknown. After it returns the subscriber
 * receives nothing more. */
aether_status aether_bus_unsubscribe(aether_bus *bus, aether_bus_sub_id id);

/* Returns the number of actor deliveries that failed (0 = all delivered). */
uint32_t aether_bus_publish(aether_bus *bus, uint32_t topic, const aether_msg *msg);

uint64_t aether_bus_failed_deliveries(const aether_bus *bus);

#endif
