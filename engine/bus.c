/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bus.c: the event bus, topics 0..63 fanned out to actor mailboxes and to
 * function subscribers (engine layer).
 *
 * Threading: publish, subscribe and unsubscribe from any thread, all under
 * the bus mutex; never subscribe, unsubscribe, publish on or destroy a bus
 * from inside one of its own function subscribers (asserted: it would
 * deadlock on the mutex the publish holds). The failed-delivery count is a
 * relaxed atomic readable from any thread.
 *
 * DESIGN
 * A publish holds the mutex for the whole fan-out:
 *  1. for each subscriber, in subscription order, whose mask has the topic bit:
 *  2. an actor subscriber gets a copy of the message. If it carries
 *     AETHER_MSG_REF, the bus retains the payload first (the receiver may run
 *     and release it before aether_actor_send even returns) and releases that
 *     reference again if the send fails (closed mailbox, or its overflow
 *     list at its bound: a full ring alone never fails, actor.h step 1b);
 *  3. a function subscriber is called with the publisher's message; it
 *     borrows the payload for the call.
 *  4. after unlocking, failures are added to the bus counter and metric and
 *     logged at most once per second with the count suppressed meanwhile.
 * Holding the mutex through the fan-out gives the two promises of bus.h:
 * a publisher's events reach each subscriber in publish order (its sends to
 * one mailbox are sequential, and mailboxes are FIFO per producer), and once
 * unsubscribe returns no publish is still delivering to that subscriber.
 * Messages already in an actor's mailbox at that point are still handled:
 * the actor has them already. Publishers never wait on anything but this
 * mutex, because actor sends and function subscribers never block.
 *
 * Reference accounting: the publisher owns one reference across the call;
 * every successful actor delivery owns one more, released by the actor
 * runtime after the handler (or when the message is dropped). So the payload
 * is freed exactly once, by whichever holder releases last.
 *
 * The rate-limit window is measured on the clock of the actor whose delivery
 * failed (the executor's: simulated under the step executor), so simulated
 * runs log reproducibly.
 */
#include "bus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "log.h"
#include "ref.h"

#define BUS_SUBSCRIBERS_MAX 1024u          /* subscribers per bus */
#define BUS_WARN_WINDOW_NS AETHER_NS_PER_S /* at most one failure line per window */

AETHER_STATIC_ASSERT(AETHER_BUS_TOPIC_MAX == 64u, "a topic mask is one uint64_t");

typedef struct bus_sub {
    aether_bus_sub_id id; /* > 0 */
    uint64_t mask;        /* != 0 */
    aether_actor *actor;  /* actor subscriber, or NULL */
    aether_bus_fn fn;     /* function subscriber, or NULL */
    void *arg;
} bus_sub;

struct aether_bus {
    pthread_mutex_t mu;
    bus_sub *subs;                   /* under mu; subscription order */
    uint32_t sub_count;              /* under mu */
    uint32_t sub_cap;                /* under mu */
    aether_bus_sub_id next_id;       /* under mu; ids are never reused */
    uint64_t failed;                 /* atomic, relaxed */
    aether_counter *failed_metric;   /* immutable after create; NULL without metrics */
    aether_log_ratelimit failed_log; /* lock-free, any thread */
};

/* The bus whose function subscriber this thread is running (the innermost
 * one), if any: re-entering that bus would deadlock on its mutex. */
static __thread const aether_bus *bus_calling;

aether_status aether_bus_create(aether_metrics *metrics, const char *metric_labels,
                                aether_bus **out)
{
    AETHER_ASSERT(out != NULL);
    aether_status st = AETHER_OK;
    aether_bus *bus;

    *out = NULL;
    bus = calloc(1, sizeof(*bus));
    if (bus == NULL)
        return AETHER_ENOMEM;
    if (pthread_mutex_init(&bus->mu, NULL) != 0) {
        free(bus);
        return AETHER_ENOMEM;
    }
    bus->next_id = 1;
    aether_log_ratelimit_init(&bus->failed_log, BUS_WARN_WINDOW_NS);
    if (metrics != NULL) {
        bus->failed_metric = aether_metrics_counter(
            metrics, "aether_bus_failed_deliveries_total",
            "Bus deliveries refused by an actor mailbox (closed, or its overflow list at its "
            "bound; a full mailbox alone holds the event in its overflow list).",
            metric_labels);
        if (bus->failed_metric == NULL) {
            st = AETHER_EINVAL; /* the registry logged why */
            goto fail;
        }
    }
    *out = bus;
    return AETHER_OK;

fail:
    aether_bus_destroy(bus);
    return st;
}

void aether_bus_destroy(aether_bus *bus)
{
    if (bus == NULL)
        return;
    AETHER_ASSERT(bus_calling != bus);
    pthread_mutex_destroy(&bus->mu);
    free(bus->subs);
    free(bus);
}

static aether_status subscribe(aether_bus *bus, const bus_sub *proto, aether_bus_sub_id *out)
{
    AETHER_ASSERT(bus != NULL && out != NULL);
    AETHER_ASSERT(bus_calling != bus);
    aether_status st = AETHER_OK;

    *out = 0;
    if (proto->mask == 0)
        return AETHER_EINVAL; /* it could never receive anything */
    pthread_mutex_lock(&bus->mu);
    if (bus->sub_count == BUS_SUBSCRIBERS_MAX) {
        st = AETHER_EFULL;
        goto out;
    }
    if (bus->sub_count == bus->sub_cap) {
        uint32_t cap = bus->sub_cap != 0 ? bus->sub_cap * 2 : 8;
        if (cap > BUS_SUBSCRIBERS_MAX)
            cap = BUS_SUBSCRIBERS_MAX;
        bus_sub *subs = realloc(bus->subs, cap * sizeof(*subs));
        if (subs == NULL) {
            st = AETHER_ENOMEM;
            goto out;
        }
        bus->subs = subs;
        bus->sub_cap = cap;
    }
    bus_sub *s = &bus->subs[bus->sub_count++];
    *s = *proto;
    s->id = bus->next_id++;
    *out = s->id;
out:
    pthread_mutex_unlock(&bus->mu);
    if (st != AETHER_OK)
        AETHER_ERROR("bus", "subscribe refused: %s (%u subscribers)", aether_status_str(st),
                     (unsigned)BUS_SUBSCRIBERS_MAX);
    return st;
}

aether_status aether_bus_subscribe_actor(aether_bus *bus, uint64_t topic_mask, aether_actor *a,
                                         aether_bus_sub_id *out)
{
    AETHER_ASSERT(a != NULL);
    bus_sub proto = { .mask = topic_mask, .actor = a };
    return subscribe(bus, &proto, out);
}

aether_status aether_bus_subscribe_fn(aether_bus *bus, uint64_t topic_mask, aether_bus_fn fn,
                                      void *arg, aether_bus_sub_id *out)
{
    AETHER_ASSERT(fn != NULL);
    bus_sub proto = { .mask = topic_mask, .fn = fn, .arg = arg };
    return subscribe(bus, &proto, out);
}

aether_status aether_bus_unsubscribe(aether_bus *bus, aether_bus_sub_id id)
{
    AETHER_ASSERT(bus != NULL);
    AETHER_ASSERT(bus_calling != bus);
    aether_status st = AETHER_ENOTFOUND;

    pthread_mutex_lock(&bus->mu);
    for (uint32_t i = 0; i < bus->sub_count; i++) {
        if (bus->subs[i].id != id)
            continue;
        /* Keep the others in subscription order: delivery order across
         * subscribers stays the same from run to run. */
        memmove(&bus->subs[i], &bus->subs[i + 1], (bus->sub_count - i - 1) * sizeof(bus_sub));
        bus->sub_count--;
        st = AETHER_OK;
        break;
    }
    pthread_mutex_unlock(&bus->mu);
    return st;
}

uint32_t aether_bus_publish(aether_bus *bus, uint32_t topic, const aether_msg *msg)
{
    AETHER_ASSERT(bus != NULL && msg != NULL);
    AETHER_ASSERT(topic < AETHER_BUS_TOPIC_MAX);
    AETHER_ASSERT(bus_calling != bus);
    const bool is_ref = (msg->flags & AETHER_MSG_REF) != 0;
    AETHER_ASSERT(!is_ref || msg->ptr != NULL);
    const uint64_t bit = UINT64_C(1) << topic;
    uint32_t failed = 0;
    aether_status first_status = AETHER_OK;
    char first_actor[AETHER_ACTOR_NAME_MAX] = "";
    aether_clock *first_clock = NULL;

    pthread_mutex_lock(&bus->mu);
    for (uint32_t i = 0; i < bus->sub_count; i++) {
        const bus_sub *s = &bus->subs[i];
        if ((s->mask & bit) == 0)
            continue;
        if (s->fn != NULL) {
            /* Restore, not clear: this publish may itself run inside a
             * function subscriber of another bus. */
            const aether_bus *outer = bus_calling;
            bus_calling = bus;
            s->fn(s->arg, topic, msg);
            bus_calling = outer;
            continue;
        }
        if (is_ref)
            aether_ref_retain(msg->ptr);
        aether_status st = aether_actor_send(s->actor, msg);
        if (st == AETHER_OK)
            continue;
        if (is_ref)
            aether_ref_release(msg->ptr); /* never the last: the publisher holds one */
        if (failed++ == 0) {
            first_status = st;
            snprintf(first_actor, sizeof(first_actor), "%s", aether_actor_name(s->actor));
            first_clock = aether_actor_clock(s->actor);
        }
    }
    pthread_mutex_unlock(&bus->mu);

    if (failed > 0) {
        __atomic_fetch_add(&bus->failed, failed, __ATOMIC_RELAXED);
        if (bus->failed_metric != NULL)
            aether_counter_add(bus->failed_metric, failed);
        uint64_t suppressed;
        if (aether_log_enabled(AETHER_LOG_WARN) &&
            aether_log_ratelimit_allow(&bus->failed_log, aether_clock_now_ns(first_clock),
                                       &suppressed))
            aether_log_write(AETHER_LOG_WARN, "bus",
                             "topic %u type %u: %u deliveries failed (first: actor '%s': %s); "
                             "%llu failure lines suppressed",
                             topic, (unsigned)msg->type, failed, first_actor,
                             aether_status_str(first_status), (unsigned long long)suppressed);
    }
    return failed;
}

uint64_t aether_bus_failed_deliveries(const aether_bus *bus)
{
    AETHER_ASSERT(bus != NULL);
    return __atomic_load_n(&bus->failed, __ATOMIC_RELAXED);
}
