/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timer_heap.h: the timers of one executor, a binary min-heap ordered by
 * (deadline, id) so equal deadlines fire in creation order (engine layer,
 * internal to the executors).
 *
 * Threading: not synchronised. The step executor uses it from its one
 * thread; the pool guards it with its timer mutex.
 */
#ifndef AETHER_TIMER_HEAP_H
#define AETHER_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "actor.h"
#include "mailbox.h"

/* A fire that finds the target's mailbox full is retried this much later. */
#define AETHER_TIMER_RETRY_NS UINT64_C(1000000)
#define AETHER_TIMER_MAX 1000000u

typedef struct aether_timer_entry {
    uint64_t deadline_ns;
    aether_timer_id id;
    uint64_t period_ns; /* 0 = one-shot */
    aether_actor *target;
    aether_msg msg;
} aether_timer_entry;

typedef struct aether_timer_heap {
    aether_timer_entry *v;
    uint32_t n, cap;
    aether_timer_id next_id; /* ids start at 1 and never repeat */
    uint64_t retries;        /* fires deferred because the mailbox was full */
} aether_timer_heap;

void aether_timer_heap_init(aether_timer_heap *h);
void aether_timer_heap_fini(aether_timer_heap *h);
/* Adds a timer; assigns and returns its id through *id_out. */
aether_status aether_timer_heap_add(aether_timer_heap *h, uint64_t deadline_ns, uint64_t period_ns,
                                    aether_actor *target, const aether_msg *msg,
                                    aether_timer_id *id_out);
bool aether_timer_heap_cancel(aether_timer_heap *h, aether_timer_id id);
/* Cancels every timer aimed at target; returns how many. */
uint32_t aether_timer_heap_cancel_target(aether_timer_heap *h, const aether_actor *target);
bool aether_timer_heap_next(const aether_timer_heap *h, uint64_t *deadline_ns);
/* Fires every timer due at now_ns, in (deadline, id) order: sends the copy
 * of its message, re-arms periodic timers at deadline + period (skipping
 * periods already missed), defers a fire that meets a full mailbox by
 * AETHER_TIMER_RETRY_NS, drops timers whose actor is closed. Returns the
 * number of messages delivered. */
uint32_t aether_timer_heap_fire_due(aether_timer_heap *h, uint64_t now_ns);

#endif
