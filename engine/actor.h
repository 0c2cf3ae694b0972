/* SPDX-License-Identifier: Apache-2.0 */
/*
 * actor.h: an actor is a mailbox, a handler and state that only the handler
 * touches (engine layer).
 *
 * DESIGN
 * Scheduling keeps one rule: an actor is scheduled at most once at a time, so
 * its handler never runs on two threads at once and its state needs no lock.
 *  1. A send enqueues into the mailbox (bounded; full -> AETHER_EFULL to the
 *     sender, counted); its slot reservation is an atomic RMW on the ring's
 *     p_head (a full barrier); then it looks at `scheduled`. A batch send
 *     is one reservation of many slots and then one look, the same steps.
 *  2. If `scheduled` is false, the sender tries to flip it to true; the one
 *     that wins hands the actor to its executor (executor->ops->schedule).
 *  3. The runner handles at most batch_max messages. If more are queued it
 *     stays scheduled and goes back to the end of the run queue (fairness).
 *     Otherwise it stores scheduled = false, fences, and looks at p_head
 *     once more: a message reserved in between is either seen here (the
 *     runner takes `scheduled` back with an exchange and reschedules, even
 *     if the slot is not committed yet) or its sender saw `scheduled ==
 *     false` after our store (step 2). Each side has a full barrier between
 *     its store and its load, so one always sees the other (Dekker): no
 *     message is stranded and no actor is scheduled twice.
 *  4. close() flips `closed`, then waits until no run is in progress
 *     (runs_active == 0, read first) and none is pending (scheduled == 0).
 *     A run looks at `closed` before each message: close waits for the
 *     message in hand, not the rest of the batch, which is dropped (a
 *     handler may block on a store call for seconds; issue 12). Then:
 *     a run's decrement of runs_active is its last access to the actor, so
 *     destroy after close never races a runner's final re-check.
 * An idle actor therefore costs nothing: it sits in no queue, and the worker
 * threads park when the run queue is empty.
 *
 * Threading:
 *  - aether_actor_send, aether_actor_send_batch, aether_timer_start/cancel:
 *    any thread.
 *  - the handler runs on whatever thread the executor picks, one at a time.
 *  - aether_actor_close: any thread except a worker of the same executor
 *    (it waits for the actor to finish its current run).
 *  - aether_actor_destroy: once no thread can send to the actor any more and
 *    it is closed (or its executor is stopped).
 */
#ifndef AETHER_ACTOR_H
#define AETHER_ACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "log.h"
#include "mailbox.h"
#include "metrics.h"
#include "ref.h"
#include "status.h"

typedef struct aether_actor aether_actor;
typedef struct aether_executor aether_executor;

/* Handles one message. msg->ptr ownership follows msg->type, except that a
 * message flagged AETHER_MSG_REF only lends its reference for the call. */
typedef void (*aether_actor_handle_fn)(void *state, aether_actor *self, const aether_msg *msg);
/* Frees the payload of a message that will never be handled (destroy with a
 * non-empty mailbox). REF payloads are released by the runtime, not here. */
typedef void (*aether_actor_drop_fn)(void *state, const aether_msg *msg);

#define AETHER_ACTOR_MAILBOX_DEFAULT 4096u
#define AETHER_ACTOR_BATCH_DEFAULT 64u
#define AETHER_ACTOR_BATCH_MAX 1024u
#define AETHER_ACTOR_NAME_MAX 64u

typedef struct aether_actor_config {
    const char *name;              /* copied; for logs and metric labels */
    uint32_t mailbox_capacity;     /* power of two; 0 = AETHER_ACTOR_MAILBOX_DEFAULT */
    uint32_t batch_max;            /* messages per run; 0 = AETHER_ACTOR_BATCH_DEFAULT */
    aether_actor_handle_fn handle; /* required */
    aether_actor_drop_fn drop;     /* may be NULL */
    void *state;                   /* handed to handle/drop; owned by the caller */
    aether_metrics *metrics;       /* optional: registers the actor's series */
    const char *metric_labels;     /* optional extra labels, e.g. node="node-a" */
    /* Optional: while the actor runs, its thread's log context (log.h),
     * and per message what it concerns (returns a static type name and sets
     * *field to "event" or "command"; NULL: nothing to name). Borrowed: both
     * must outlive the actor. log_subject is called before the handler, so
     * it may read the payload. */
    const aether_log_context *log_context;
    const char *(*log_subject)(const aether_msg *msg, const char **field);
} aether_actor_config;

aether_status aether_actor_create(aether_executor *ex, const aether_actor_config *cfg,
                                  aether_actor **out);

/* Any thread. AETHER_OK, AETHER_EFULL (mailbox full, counted) or AETHER_ECLOSED.
 * On failure the caller keeps ownership of msg->ptr. */
aether_status aether_actor_send(aether_actor *a, const aether_msg *msg);

/* Any thread. Sends msgs[0..n) in order, reserving the mailbox once: one
 * atomic on its index, one publication and one scheduling check for the
 * batch instead of one each per message (for a producer that has many
 * messages for one actor at once). Sets *sent to how many went in, always a
 * prefix; the messages of one call reach the handler back to back.
 * AETHER_OK: all n (n == 0 sends nothing). AETHER_EFULL: the mailbox had
 * room for only *sent of them (counted once). AETHER_ECLOSED: none. The
 * caller keeps ownership of the payloads of msgs[*sent..n). */
aether_status aether_actor_send_batch(aether_actor *a, const aether_msg *msgs, uint32_t n,
                                      uint32_t *sent);

/* Refuses further sends (AETHER_ECLOSED), cancels nothing else, and returns
 * once the actor is not running. Messages still queued are dropped by
 * aether_actor_destroy. Idempotent. */
void aether_actor_close(aether_actor *a);

/* NULL is fine. See the threading rules above. */
void aether_actor_destroy(aether_actor *a);

const char *aether_actor_name(const aether_actor *a);
void *aether_actor_state(const aether_actor *a);
aether_executor *aether_actor_executor(const aether_actor *a);
/* The executor's clock: real on the pool, simulated on the step executor. */
aether_clock *aether_actor_clock(const aether_actor *a);
/* Messages handled so far (atomic read). */
uint64_t aether_actor_processed(const aether_actor *a);
uint32_t aether_actor_depth(const aether_actor *a);
uint64_t aether_actor_full_count(const aether_actor *a);

/* ---- Timers ------------------------------------------------------------
 * A timer sends a copy of msg to its target actor after delay_ns, then every
 * period_ns if period_ns > 0. msg must carry no payload (flags 0, ptr NULL):
 * it is delivered many times. The clock is the executor's. If the mailbox is
 * full at a fire, the fire is counted and retried 1 ms later (simulated or
 * real), never dropped. Cancel stops future fires; a fire already queued in
 * the mailbox is still delivered, so actors tag timer messages (arg64) and
 * ignore stale ones. Any thread. */
typedef uint64_t aether_timer_id; /* 0 is never a valid id */

aether_status aether_timer_start(aether_actor *target, uint64_t delay_ns, uint64_t period_ns,
                                 const aether_msg *msg, aether_timer_id *out);
/* True if the timer was pending and is now cancelled. */
bool aether_timer_cancel(aether_actor *target, aether_timer_id id);

#endif
