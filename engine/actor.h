/* SPDX-License-Identifier: Apache-2.0 */
/*
 * actor.h: an actor is a mailbox, a handler and state that only the handler
 * touches (engine layer).
 *
 * DESIGN
 * Scheduling keeps one rule: an actor is scheduled at most once at a time, so
 * its handler never runs on two threads at once and its state needs no lock.
 *  1. A send enqueues into the mailbox ring; its slot reservation is an
 *     atomic RMW on the ring's p_head (a full barrier); then it looks at
 *     `scheduled`. A batch send is one reservation of many slots and then
 *     one look, the same steps.
 *  1b. No delivery is lost (DESIGN 3): aether_actor_send that finds the ring
 *     full, or the overflow list non-empty, appends the message to the
 *     actor's overflow list instead: ovf_count++ (an atomic RMW, the full
 *     barrier of step 3's Dekker in place of the reservation), link the
 *     node, then look at `scheduled` as in step 1. The runner takes from
 *     the list only when the ring holds no reservation, and decrements
 *     ovf_count after unlinking. Per-sender order holds: a sender's message
 *     goes to the list only if its own earlier ring messages are reserved
 *     already (so they are taken first: the runner waits for an empty
 *     ring; it acquires a node's link before it reads p_head, so a
 *     sender's reservation made before it listed that node is always
 *     seen), and while any listed message is untaken (ovf_count > 0) every
 *     send goes behind it in the list; once the runner has taken the last
 *     one, its handler sees it before any later ring message. The list is
 *     bounded by overflow_max (memory): past it aether_actor_send returns
 *     AETHER_EFULL, which no domain flow should reach (an error log and
 *     aether_mailbox_overflow_refused_total say so). Every send that meets a
 *     full ring is counted (aether_mailbox_full_total) and each burst, from
 *     an empty list to an empty list, is logged once (rate-limited). The
 *     list never makes a sender wait, so an actor sending to a full actor
 *     cannot deadlock; aether_actor_try_send is the ring alone, for a
 *     sender that is not an actor and prefers to wait (it backs off and
 *     retries) or a timer that fires again later. State that supersedes
 *     itself (a map, a topology) need not queue at all: see aether_latest.
 *  2. If `scheduled` is false, the sender tries to flip it to true; the one
 *     that wins hands the actor to its executor (executor->ops->schedule).
 *  3. The runner handles at most batch_max messages. If more are queued it
 *     stays scheduled and goes back to the end of the run queue (fairness).
 *     Otherwise it stores scheduled = false, fences, and looks at p_head
 *     once more, and at ovf_count: a message reserved (or counted into the
 *     list) in between is either seen here (the runner takes `scheduled`
 *     back with an exchange and reschedules, even if the slot is not
 *     committed or the node not linked yet) or its sender saw `scheduled ==
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
 *  - aether_actor_send, aether_actor_try_send, aether_actor_try_send_batch,
 *    aether_latest_post, aether_timer_start/cancel: any thread.
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
/* Messages an actor's overflow list may hold (actor.h step 1b): 64 full
 * default mailboxes, about 12 MiB of nodes; a bound on memory, not a
 * working size. */
#define AETHER_ACTOR_OVERFLOW_DEFAULT (64u * AETHER_ACTOR_MAILBOX_DEFAULT)

typedef struct aether_actor_config {
    const char *name;              /* copied; for logs and metric labels */
    uint32_t mailbox_capacity;     /* power of two; 0 = AETHER_ACTOR_MAILBOX_DEFAULT */
    uint32_t batch_max;            /* messages per run; 0 = AETHER_ACTOR_BATCH_DEFAULT */
    uint32_t overflow_max;         /* overflow list bound; 0 = AETHER_ACTOR_OVERFLOW_DEFAULT */
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

/* Any thread; never waits. AETHER_OK (in the ring, or in the overflow list
 * if the ring was full: counted, step 1b), AETHER_ECLOSED, or, past the
 * overflow bound, AETHER_EFULL (AETHER_ENOMEM if no node could be
 * allocated). On failure the caller keeps ownership of msg->ptr. */
aether_status aether_actor_send(aether_actor *a, const aether_msg *msg);

/* Any thread; never waits. The ring only: AETHER_OK, AETHER_EFULL (the ring
 * is full or the overflow list in use; counted) or AETHER_ECLOSED. For a
 * sender that handles backpressure itself: a thread that is not an actor
 * waits with backoff and retries, a timer fires again later. On failure the
 * caller keeps ownership of msg->ptr. */
aether_status aether_actor_try_send(aether_actor *a, const aether_msg *msg);

/* Any thread; never waits. Sends msgs[0..n) in order into the ring,
 * reserving it once: one atomic on its index, one publication and one
 * scheduling check for the batch instead of one each per message (for a
 * producer that has many messages for one actor at once). Sets *sent to how
 * many went in, always a prefix; the messages of one call reach the handler
 * back to back. AETHER_OK: all n (n == 0 sends nothing). AETHER_EFULL: the
 * ring had room for only *sent of them (counted once), as try_send.
 * AETHER_ECLOSED: none. The caller keeps ownership of the payloads of
 * msgs[*sent..n). */
aether_status aether_actor_try_send_batch(aether_actor *a, const aether_msg *msgs, uint32_t n,
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
/* Messages in the overflow list now (atomic read). */
uint64_t aether_actor_overflow_depth(const aether_actor *a);
/* Sends that met a full ring (listed or refused to try_send), so far. */
uint64_t aether_actor_full_count(const aether_actor *a);
/* Sends refused past the overflow bound (or for want of memory), so far. */
uint64_t aether_actor_refused_count(const aether_actor *a);

/* ---- Latest value: state that supersedes itself ------------------------
 * DESIGN 3: "a full mailbox makes the sender wait or coalesce (state
 * supersedes state)". A map, a topology or a "re-read now" hint sent to an
 * actor need not queue: only the newest matters. The sender posts an
 * aether_ref into the receiver's slot; the receiver, on the wake-up message,
 * takes whatever is newest.
 *  1. post: exchange the slot's value with the new one (acq_rel).
 *  2. If the old value was NULL, no wake-up is pending: send `wake` with
 *     aether_actor_send (never lost, step 1b). Otherwise the old value was
 *     never taken: release it (superseded, counted) and send nothing; the
 *     wake-up of the post that filled the empty slot is still to be
 *     handled, since a take would have emptied the slot.
 *  3. take (the receiver, on `wake`): exchange the slot with NULL; returns
 *     the newest value (the caller owns that reference) or NULL (an earlier
 *     wake-up took it already).
 * So at most one wake-up per slot is in flight, whatever the rate of posts,
 * and the newest value posted is always taken after its post. Any thread
 * posts; one actor takes. */
typedef struct aether_latest {
    aether_ref *value;        /* atomic: exchanged by post and take */
    uint64_t superseded;      /* atomic, relaxed: values replaced before taken */
    aether_counter *m_superseded; /* immutable after init; may be NULL */
} aether_latest;

/* m_superseded (may be NULL) is incremented with every superseded value,
 * e.g. aether_mailbox_coalesced_total{actor=...}. */
void aether_latest_init(aether_latest *l, aether_counter *m_superseded);
/* No post or take may run any more; releases a value never taken. */
void aether_latest_fini(aether_latest *l);
/* Any thread. Takes over the caller's reference of value, on success and
 * on failure. AETHER_OK, or the wake-up could not be sent (AETHER_ECLOSED;
 * past the overflow bound AETHER_EFULL or AETHER_ENOMEM): then the slot is
 * emptied (the value released) so that the next post wakes the actor
 * again. wake must carry no payload. */
aether_status aether_latest_post(aether_latest *l, aether_actor *to, aether_ref *value,
                                 const aether_msg *wake);
/* The receiving actor only. The newest value or NULL; the caller owns it. */
aether_ref *aether_latest_take(aether_latest *l);
static inline uint64_t aether_latest_superseded(const aether_latest *l)
{
    return __atomic_load_n(&l->superseded, __ATOMIC_RELAXED);
}

/* ---- Timers ------------------------------------------------------------
 * A timer sends a copy of msg to its target actor after delay_ns, then every
 * period_ns if period_ns > 0. msg must carry no payload (flags 0, ptr NULL):
 * it is delivered many times. The clock is the executor's. If the mailbox is
 * full at a fire (aether_actor_try_send: a tick is state, it does not queue
 * behind itself in the overflow list), the fire is counted and retried 1 ms
 * later (simulated or real), never dropped. Cancel stops future fires; a fire already queued in
 * the mailbox is still delivered, so actors tag timer messages (arg64) and
 * ignore stale ones. Any thread. */
typedef uint64_t aether_timer_id; /* 0 is never a valid id */

aether_status aether_timer_start(aether_actor *target, uint64_t delay_ns, uint64_t period_ns,
                                 const aether_msg *msg, aether_timer_id *out);
/* True if the timer was pending and is now cancelled. */
bool aether_timer_cancel(aether_actor *target, aether_timer_id id);

#endif
