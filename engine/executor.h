/* SPDX-License-Identifier: Apache-2.0 */
/*
 * executor.h: what runs actors (engine layer). Two implementations:
 *  - exec_pool.h: a pool of worker threads on the real clock (production);
 *  - exec_step.h: one thread, a simulated clock and a seeded choice of the
 *    next actor (tests and simulation).
 * Domain code sees only aether_actor and aether_timer; it cannot tell which
 * executor runs it.
 *
 * This header is also the contract between actor.c and an executor:
 *  - attach/detach when an actor is created/destroyed;
 *  - schedule(a) exactly once per idle -> scheduled transition; the executor
 *    must later call aether_actor_run_ on some thread, and again each time
 *    that returns true;
 *  - quiesce(a) returns once a closed actor is not running.
 */
#ifndef AETHER_EXECUTOR_H
#define AETHER_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "actor.h"
#include "clock.h"

/* Called by the step executor for every message it delivers (tests record
 * traces with it). */
typedef void (*aether_exec_trace_fn)(void *arg, uint64_t now_ns, const aether_actor *a,
                                     const aether_msg *msg);

typedef struct aether_executor_ops {
    aether_status (*attach)(aether_executor *ex, aether_actor *a);
    void (*detach)(aether_executor *ex, aether_actor *a);
    void (*schedule)(aether_executor *ex, aether_actor *a);
    void (*quiesce)(aether_executor *ex, aether_actor *a);
    aether_status (*timer_start)(aether_executor *ex, aether_actor *target, uint64_t delay_ns,
                                 uint64_t period_ns, const aether_msg *msg, aether_timer_id *out);
    bool (*timer_cancel)(aether_executor *ex, aether_timer_id id);
    void (*destroy)(aether_executor *ex);
} aether_executor_ops;

struct aether_executor {
    const aether_executor_ops *ops; /* immutable after init */
    aether_clock *clock;            /* immutable after init */
    aether_exec_trace_fn trace;     /* immutable while actors run; NULL = off */
    void *trace_arg;
};

/* Stops nothing by itself: stop a pool first, destroy every actor, then the
 * executor. NULL is fine. */
void aether_executor_destroy(aether_executor *ex);

static inline aether_clock *aether_executor_clock(aether_executor *ex) { return ex->clock; }

/* For executors only: runs up to max messages of a scheduled actor on the
 * calling thread. Returns true if the actor is still scheduled and must be
 * run again; false if it went idle (or is closed). */
bool aether_actor_run_(aether_actor *a, uint32_t max);
/* For executors only: the batch size the actor was configured with. */
uint32_t aether_actor_batch_max_(const aether_actor *a);
/* For executors only: true while the actor is scheduled (acquire load). */
bool aether_actor_is_scheduled_(const aether_actor *a);
/* For executors' quiesce: true once no run is in progress or pending. A
 * closed actor that is idle is never run again. */
bool aether_actor_is_idle_(const aether_actor *a);
/* For executors only: marks of the executor's own, kept in the actor (the
 * step executor's "frozen"), touched only by the executor's thread. */
uint32_t aether_actor_exec_flags_(const aether_actor *a);
void aether_actor_set_exec_flags_(aether_actor *a, uint32_t flags);
/* For the step executor's close: take the actor off the scheduled state. */
void aether_actor_unschedule_(aether_actor *a);

#endif
