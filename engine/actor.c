/* SPDX-License-Identifier: Apache-2.0 */
/*
 * actor.c: actors, their scheduling handshake and their timers (engine
 * layer). The protocol and the threading rules are in actor.h.
 */
#include "actor.h"

#include <ck_pr.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "executor.h"
#include "log.h"

/* Messages copied out of the mailbox per ring pass of a run. */
#define RUN_CHUNK 64u

/* One message that found the ring full (actor.h, "No delivery is lost"). */
typedef struct overflow_node {
    struct overflow_node *next; /* atomic: the producer's link store (release) pairs
                                 * with the consumer's acquire load */
    aether_msg msg;
} overflow_node;

struct aether_actor {
    aether_mailbox mailbox;  /* see mailbox.h */
    /* Read by every send; written by a sender that wakes the actor, by the
     * runner when it goes idle, and once by close: own cache line, so a
     * streaming sender's loads hit while the actor stays scheduled. */
    uint32_t scheduled __attribute__((aligned(64))); /* atomic: the handshake flag */
    uint32_t closed;         /* atomic: set once by close */
    /* The overflow list (Vyukov's MPSC node queue): senders exchange
     * ovf_head; the runner owns ovf_tail (the current dummy node). */
    overflow_node *ovf_head __attribute__((aligned(64))); /* atomic: xchg, acq_rel */
    uint64_t ovf_count;      /* atomic: messages in the list; a sender increments
                              * (seq_cst RMW) before it links, the runner decrements
                              * after it unlinks; > 0 sends every send to the list */
    uint64_t full_sends;     /* atomic, relaxed: sends that found the ring full or
                              * the list non-empty (listed or refused) */
    uint64_t ovf_refused;    /* atomic, relaxed: sends refused past overflow_max */
    uint64_t ovf_burst;      /* atomic, relaxed: messages listed since the list was
                              * last empty (for the log line) */
    /* Runner-owned below (read by others only through atomics). */
    uint64_t processed __attribute__((aligned(64))); /* atomic, single writer */
    uint32_t runs_active;    /* atomic: runs in progress (the runner's two RMWs per
                              * run, off the senders' line); its decrement (release)
                              * is a run's last access to the actor */
    overflow_node *ovf_tail;  /* the list's dummy: &ovf_stub or the last node taken */
    overflow_node ovf_stub;
    /* Immutable after create. */
    aether_executor *ex;
    aether_actor_handle_fn handle;
    aether_actor_drop_fn drop;
    void *state;
    uint32_t batch_max;
    uint32_t overflow_max;   /* messages the overflow list may hold */
    bool attached;
    uint32_t exec_flags;     /* the executor's own marks (the step executor's freeze) */
    aether_counter *m_full;       /* may be NULL */
    aether_counter *m_refused;    /* may be NULL */
    aether_counter *m_processed;  /* may be NULL */
    aether_histogram *m_handler;  /* may be NULL: time in the handler per message */
    aether_metrics *metrics;      /* NULL unless the depth gauge is registered */
    char *metric_labels;          /* the depth gauge's labels (malloc'd) */
    aether_log_ratelimit full_log;
    const aether_log_context *log_ctx;   /* may be NULL; borrowed */
    const char *(*log_subject)(const aether_msg *msg, const char **field); /* may be NULL */
    char name[AETHER_ACTOR_NAME_MAX + 1];
};

static int64_t depth_gauge(void *arg) { return aether_actor_depth(arg); }
static int64_t overflow_gauge(void *arg) { return (int64_t)aether_actor_overflow_depth(arg); }

/* The buckets of aether_actor_handler_seconds: 10 us .. 5 s, dense around
 * the 1 ms a handler should stay under (issue 14). */
static const uint64_t handler_bounds_ns[] = {
    10000u, 50000u, 100000u, 250000u, 500000u, 1000000u, 2500000u, 5000000u,
    10000000u, 50000000u, 100000000u, 500000000u, 1000000000u, 5000000000u,
};
AETHER_STATIC_ASSERT(sizeof(handler_bounds_ns) / sizeof(handler_bounds_ns[0]) <=
                         AETHER_HISTOGRAM_BUCKETS_MAX,
                     "the handler histogram fits");

aether_status aether_actor_create(aether_executor *ex, const aether_actor_config *cfg,
                                  aether_actor **out)
{
    AETHER_ASSERT(ex != NULL && cfg != NULL && out != NULL);
    AETHER_ASSERT(cfg->handle != NULL);
    *out = NULL;
    uint32_t cap = cfg->mailbox_capacity ? cfg->mailbox_capacity : AETHER_ACTOR_MAILBOX_DEFAULT;
    uint32_t batch = cfg->batch_max ? cfg->batch_max : AETHER_ACTOR_BATCH_DEFAULT;
    if (batch > AETHER_ACTOR_BATCH_MAX)
        return AETHER_EINVAL;
    const char *name = cfg->name ? cfg->name : "actor";
    if (strlen(name) > AETHER_ACTOR_NAME_MAX)
        return AETHER_EINVAL;

    aether_actor *a = aligned_alloc(64, sizeof(*a));
    if (a == NULL)
        return AETHER_ENOMEM;
    memset(a, 0, sizeof(*a));
    a->ex = ex;
    a->handle = cfg->handle;
    a->drop = cfg->drop;
    a->state = cfg->state;
    a->log_ctx = cfg->log_context;
    a->log_subject = cfg->log_subject;
    a->batch_max = batch;
    a->overflow_max = cfg->overflow_max ? cfg->overflow_max : AETHER_ACTOR_OVERFLOW_DEFAULT;
    a->ovf_stub.next = NULL;
    a->ovf_head = &a->ovf_stub;
    a->ovf_tail = &a->ovf_stub;
    snprintf(a->name, sizeof(a->name), "%s", name);
    aether_log_ratelimit_init(&a->full_log, AETHER_NS_PER_S);

    aether_status st = aether_mailbox_init(&a->mailbox, cap);
    if (st != AETHER_OK) {
        free(a);
        return st;
    }
    st = ex->ops->attach(ex, a);
    if (st != AETHER_OK)
        goto fail;
    a->attached = true;

    if (cfg->metrics != NULL) {
        char labels[256];
        int n = snprintf(labels, sizeof(labels), "actor=\"%s\"%s%s", a->name,
                         cfg->metric_labels ? "," : "", cfg->metric_labels ? cfg->metric_labels : "");
        if (n < 0 || (size_t)n >= sizeof(labels)) {
            st = AETHER_EINVAL;
            goto fail;
        }
        a->m_full = aether_metrics_counter(
            cfg->metrics, "aether_mailbox_full_total",
            "Sends that found the actor's mailbox full: held in its overflow list in order "
            "(aether_actor_send), or refused to a sender that waits (aether_actor_try_send).",
            labels);
        a->m_refused = aether_metrics_counter(
            cfg->metrics, "aether_mailbox_overflow_refused_total",
            "Sends refused because the actor's overflow list was at its bound as well.", labels);
        a->m_processed = aether_metrics_counter(cfg->metrics, "aether_actor_messages_total",
                                                "Messages handled by the actor.", labels);
        a->m_handler = aether_metrics_histogram(
            cfg->metrics, "aether_actor_handler_seconds",
            "Time the actor's handler took per message, by the executor's clock (simulated on the "
            "step executor).",
            labels, handler_bounds_ns, sizeof(handler_bounds_ns) / sizeof(handler_bounds_ns[0]));
        a->metric_labels = strdup(labels);
        if (a->metric_labels == NULL) {
            st = AETHER_ENOMEM;
            goto fail;
        }
        st = aether_metrics_gauge_fn(cfg->metrics, "aether_mailbox_depth",
                                     "Messages waiting in the actor's mailbox.", labels,
                                     depth_gauge, a);
        if (st == AETHER_OK) {
            a->metrics = cfg->metrics;
            st = aether_metrics_gauge_fn(cfg->metrics, "aether_mailbox_overflow_depth",
                                         "Messages waiting in the actor's overflow list (sent "
                                         "while its mailbox was full).",
                                         labels, overflow_gauge, a);
            if (st != AETHER_OK) { /* the depth gauge alone is released by destroy */
                aether_metrics_gauge_fn_release(a->metrics, "aether_mailbox_depth", labels, a);
                a->metrics = NULL;
            }
        }
        if (a->m_full == NULL || a->m_refused == NULL || a->m_processed == NULL ||
            a->m_handler == NULL || st != AETHER_OK) {
            st = st != AETHER_OK ? st : AETHER_EINVAL;
            goto fail;
        }
    }
    *out = a;
    return AETHER_OK;
fail:
    aether_actor_destroy(a);
    return st;
}

static void drop_message(aether_actor *a, const aether_msg *m)
{
    if (m->flags & AETHER_MSG_REF)
        aether_ref_release(m->ptr);
    else if (a->drop != NULL)
        a->drop(a->state, m);
}

void aether_actor_destroy(aether_actor *a)
{
    if (a == NULL)
        return;
    if (a->attached) {
        aether_actor_close(a);
        a->ex->ops->detach(a->ex, a);
    }
    if (a->metrics != NULL) {
        aether_metrics_gauge_fn_release(a->metrics, "aether_mailbox_depth", a->metric_labels, a);
        aether_metrics_gauge_fn_release(a->metrics, "aether_mailbox_overflow_depth",
                                        a->metric_labels, a);
    }
    free(a->metric_labels);
    if (a->mailbox.slots != NULL) {
        aether_msg m;
        while (aether_mailbox_recv_sc(&a->mailbox, &m, 1) == 1)
            drop_message(a, &m);
        aether_mailbox_fini(&a->mailbox);
    }
    /* No sender any more (destroy's contract): the list is quiescent. */
    overflow_node *n = a->ovf_tail->next;
    if (a->ovf_tail != &a->ovf_stub)
        free(a->ovf_tail);
    while (n != NULL) { /* bounded: ovf_count nodes */
        overflow_node *next = n->next;
        drop_message(a, &n->msg);
        free(n);
        n = next;
    }
    free(a);
}

/* A send that found the ring full (or the overflow list in use): counted
 * always; said once per burst, a burst starting when the list was empty
 * (listed == true, first) or a try_send was refused, and rate-limited. */
static void note_full(aether_actor *a, bool listed, bool first)
{
    __atomic_fetch_add(&a->full_sends, 1, __ATOMIC_RELAXED);
    if (a->m_full != NULL)
        aether_counter_inc(a->m_full);
    if (listed && !first)
        return;
    uint64_t suppressed = 0;
    if (!aether_log_ratelimit_allow(&a->full_log, aether_clock_now_ns(a->ex->clock), &suppressed))
        return;
    if (listed)
        AETHER_WARN("actor", "actor '%s' mailbox full (capacity %u): sends held in its overflow "
                    "list, in order, until it catches up (%llu more bursts not logged)",
                    a->name, a->mailbox.capacity, (unsigned long long)suppressed);
    else
        AETHER_WARN("actor", "actor '%s' mailbox full (capacity %u): try_send refused, the "
                    "sender waits (%llu more not logged)",
                    a->name, a->mailbox.capacity, (unsigned long long)suppressed);
}

/* Step 2 of the handshake, after an enqueue. */
static void schedule_after_send(aether_actor *a)
{
    /* Dekker with the runner's unschedule, on (p_head, scheduled): our slot
     * reservation is an atomic RMW on p_head, ordered before this load of
     * `scheduled` (a no-op fence on x86, where locked instructions are full
     * barriers; a real one elsewhere); the runner stores scheduled = 0, full
     * fence, then reads p_head. One of us sees the other. No mfence per
     * message: 1.5x (one producer) to 2x (two) on the mailbox bench. */
    ck_pr_fence_atomic_load();
    if (!__atomic_load_n(&a->scheduled, __ATOMIC_ACQUIRE)) {
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&a->scheduled, &expected, 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            a->ex->ops->schedule(a->ex, a);
    }
}

/* True while the overflow list holds (or is being handed) a message: every
 * send must then go behind it (per-sender order, actor.h). */
static inline bool overflow_in_use(const aether_actor *a)
{
    return __atomic_load_n(&a->ovf_count, __ATOMIC_ACQUIRE) != 0;
}

/* Step 1b of actor.h: the ring was full or the list in use. Appends a copy
 * of msg to the list (malloc'd node), unless the list is at overflow_max. */
static aether_status overflow_send(aether_actor *a, const aether_msg *msg)
{
    overflow_node *n = malloc(sizeof(*n));
    if (AETHER_UNLIKELY(n == NULL)) {
        AETHER_ERROR("actor", "actor '%s': out of memory for its overflow list; send refused",
                     a->name);
        __atomic_fetch_add(&a->ovf_refused, 1, __ATOMIC_RELAXED);
        if (a->m_refused != NULL)
            aether_counter_inc(a->m_refused);
        return AETHER_ENOMEM;
    }
    /* The increment is the sender's full barrier of the handshake (an
     * atomic RMW, as the ring's reservation is) and comes before the link:
     * the runner never sees a node it has not been counted for. */
    uint64_t before = __atomic_fetch_add(&a->ovf_count, 1, __ATOMIC_SEQ_CST);
    if (AETHER_UNLIKELY(before >= a->overflow_max)) {
        __atomic_fetch_sub(&a->ovf_count, 1, __ATOMIC_SEQ_CST);
        free(n);
        __atomic_fetch_add(&a->ovf_refused, 1, __ATOMIC_RELAXED);
        if (a->m_refused != NULL)
            aether_counter_inc(a->m_refused);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&a->full_log, aether_clock_now_ns(a->ex->clock),
                                       &suppressed))
            AETHER_ERROR("actor", "actor '%s' mailbox (%u) and overflow list (%u) full: send "
                         "refused (%llu more not logged)",
                         a->name, a->mailbox.capacity, a->overflow_max,
                         (unsigned long long)suppressed);
        return AETHER_EFULL;
    }
    n->msg = *msg;
    __atomic_store_n(&n->next, NULL, __ATOMIC_RELAXED);
    overflow_node *prev = __atomic_exchange_n(&a->ovf_head, n, __ATOMIC_ACQ_REL);
    __atomic_store_n(&prev->next, n, __ATOMIC_RELEASE);
    uint64_t burst = __atomic_fetch_add(&a->ovf_burst, 1, __ATOMIC_RELAXED);
    note_full(a, true, before == 0 && burst == 0);
    schedule_after_send(a);
    return AETHER_OK;
}

/* The ring alone: AETHER_OK (sent, scheduled), AETHER_ECLOSED, or
 * AETHER_EFULL when the ring is full or the overflow list is in use (a
 * message must not pass the listed ones: step 1b). */
static aether_status send_ring(aether_actor *a, const aether_msg *msg)
{
    if (AETHER_UNLIKELY(__atomic_load_n(&a->closed, __ATOMIC_RELAXED)))
        return AETHER_ECLOSED;
    if (AETHER_LIKELY(!overflow_in_use(a)) &&
        AETHER_LIKELY(aether_mailbox_send_mpsc(&a->mailbox, msg) == AETHER_OK)) {
        schedule_after_send(a);
        return AETHER_OK;
    }
    return AETHER_EFULL;
}

aether_status aether_actor_send(aether_actor *a, const aether_msg *msg)
{
    aether_status st = send_ring(a, msg);
    return st == AETHER_EFULL ? overflow_send(a, msg) : st;
}

aether_status aether_actor_try_send(aether_actor *a, const aether_msg *msg)
{
    aether_status st = send_ring(a, msg);
    if (st == AETHER_EFULL)
        note_full(a, false, false);
    return st;
}

aether_status aether_actor_try_send_batch(aether_actor *a, const aether_msg *msgs, uint32_t n,
                                          uint32_t *sent)
{
    AETHER_ASSERT(sent != NULL && (msgs != NULL || n == 0));
    *sent = 0;
    if (AETHER_UNLIKELY(__atomic_load_n(&a->closed, __ATOMIC_RELAXED)))
        return AETHER_ECLOSED;
    if (n == 0)
        return AETHER_OK;
    uint32_t k = 0;
    if (AETHER_LIKELY(!overflow_in_use(a)))
        k = aether_mailbox_send_batch_mpsc(&a->mailbox, msgs, n);
    AETHER_ASSERT(k <= n);
    *sent = k;
    if (k > 0) /* one reservation, one handshake for the whole batch */
        schedule_after_send(a);
    if (AETHER_UNLIKELY(k < n)) {
        note_full(a, false, false);
        return AETHER_EFULL;
    }
    return AETHER_OK;
}

/* Runner only. Takes up to max messages from the overflow list, oldest
 * first, each only while the ring is empty of reservations: everything in
 * the ring was reserved before the listed messages of the same sender
 * (actor.h, step 1b). Acquiring the node's link before reading p_head
 * makes a sender's earlier reservation visible whenever its later listed
 * node is. */
static uint32_t overflow_take(aether_actor *a, aether_msg *out, uint32_t max)
{
    uint32_t n = 0;
    while (n < max) {
        overflow_node *tail = a->ovf_tail;
        overflow_node *next = __atomic_load_n(&tail->next, __ATOMIC_ACQUIRE);
        if (next == NULL || aether_mailbox_pending_sc(&a->mailbox) != 0)
            break;
        out[n++] = next->msg;
        a->ovf_tail = next; /* next is the new dummy; its message is copied out */
        if (tail != &a->ovf_stub)
            free(tail);
        uint64_t left = __atomic_sub_fetch(&a->ovf_count, 1, __ATOMIC_SEQ_CST);
        if (left == 0)
            __atomic_store_n(&a->ovf_burst, 0, __ATOMIC_RELAXED);
    }
    return n;
}

static bool run_batch(aether_actor *a, uint32_t max)
{
    AETHER_ASSERT(__atomic_load_n(&a->scheduled, __ATOMIC_ACQUIRE) == 1);
    bool closed = __atomic_load_n(&a->closed, __ATOMIC_ACQUIRE);
    uint32_t done = 0;
    aether_msg buf[RUN_CHUNK];
    /* The handlers' log lines name this actor's node and term (log.h); the
     * thread's own context comes back after the batch. */
    const aether_log_context *prev_ctx = NULL;
    if (a->log_ctx != NULL)
        prev_ctx = aether_log_thread_context_set(a->log_ctx);
    while (!closed && done < max) {
        uint32_t want = max - done < RUN_CHUNK ? max - done : RUN_CHUNK;
        uint32_t n = aether_mailbox_recv_sc(&a->mailbox, buf, want);
        if (n == 0 && overflow_in_use(a))
            n = overflow_take(a, buf, want);
        for (uint32_t i = 0; i < n; i++) {
            /* Closed meanwhile: close waits for the message in hand only,
             * not the batch (a handler may block on a store call for
             * seconds). The rest would never run anyway: dropped. */
            if (AETHER_UNLIKELY(__atomic_load_n(&a->closed, __ATOMIC_ACQUIRE))) {
                for (uint32_t j = i; j < n; j++) /* bounded: n <= RUN_CHUNK */
                    drop_message(a, &buf[j]);
                closed = true;
                n = i;
                break;
            }
            if (a->ex->trace != NULL)
                a->ex->trace(a->ex->trace_arg, aether_clock_now_ns(a->ex->clock), a, &buf[i]);
            if (a->log_subject != NULL) {
                const char *field = NULL;
                const char *subject = a->log_subject(&buf[i], &field);
                aether_log_thread_subject_set(field, subject);
                if (subject != NULL) /* the line names the subject itself (log.h) */
                    AETHER_DEBUG("actor", "%s handles it", a->name);
            }
            if (a->m_handler != NULL) {
                uint64_t t0 = aether_clock_now_ns(a->ex->clock);
                a->handle(a->state, a, &buf[i]);
                uint64_t t1 = aether_clock_now_ns(a->ex->clock);
                aether_histogram_observe_ns(a->m_handler, t1 > t0 ? t1 - t0 : 0);
            } else {
                a->handle(a->state, a, &buf[i]);
            }
            if (buf[i].flags & AETHER_MSG_REF)
                aether_ref_release(buf[i].ptr);
        }
        done += n;
        if (n < want)
            break;
    }
    if (a->log_subject != NULL)
        aether_log_thread_subject_set(NULL, NULL);
    if (a->log_ctx != NULL)
        (void)aether_log_thread_context_set(prev_ctx);
    if (done > 0) {
        __atomic_store_n(&a->processed, a->processed + done, __ATOMIC_RELAXED);
        if (a->m_processed != NULL)
            aether_counter_add(a->m_processed, done);
    }
    /* Stay scheduled only for a message we could take now; a reserved slot
     * whose producer has not committed yet goes the unschedule path below,
     * which yields the core to that producer. */
    if (!closed && (aether_mailbox_ready_sc(&a->mailbox) ||
                    (overflow_in_use(a) && aether_mailbox_pending_sc(&a->mailbox) == 0 &&
                     __atomic_load_n(&a->ovf_tail->next, __ATOMIC_ACQUIRE) != NULL)))
        return true; /* stay scheduled; back of the run queue */
    __atomic_store_n(&a->scheduled, 0, __ATOMIC_SEQ_CST);
    ck_pr_fence_memory(); /* full fence; also invisible to TSan, which rejects C11 fences */
    /* pending counts reserved slots not yet committed too, and ovf_count a
     * listed message not linked yet: if a producer is between the two steps
     * we take the actor back and come round again (through the run queue)
     * until its message lands. */
    if (!__atomic_load_n(&a->closed, __ATOMIC_ACQUIRE) &&
        (aether_mailbox_pending_sc(&a->mailbox) > 0 || overflow_in_use(a)) &&
        __atomic_exchange_n(&a->scheduled, 1, __ATOMIC_ACQ_REL) == 0) {
        /* Nothing was committed yet: the producer holding the slot may be
         * preempted; give it the core instead of spinning round the run queue. */
        if (done == 0)
            sched_yield();
        return true;
    }
    return false;
}

bool aether_actor_run_(aether_actor *a, uint32_t max)
{
    /* close() waits for runs_active == 0 and then scheduled == 0, in that
     * order: the increment precedes this run's unschedule, the decrement
     * follows its last access (including the re-check after unscheduling). */
    __atomic_add_fetch(&a->runs_active, 1, __ATOMIC_SEQ_CST);
    bool again = run_batch(a, max);
    __atomic_sub_fetch(&a->runs_active, 1, __ATOMIC_RELEASE);
    return again;
}

bool aether_actor_is_idle_(const aether_actor *a)
{
    if (__atomic_load_n(&a->runs_active, __ATOMIC_ACQUIRE) != 0)
        return false;
    return __atomic_load_n(&a->scheduled, __ATOMIC_ACQUIRE) == 0;
}

void aether_actor_close(aether_actor *a)
{
    __atomic_store_n(&a->closed, 1, __ATOMIC_SEQ_CST);
    a->ex->ops->quiesce(a->ex, a);
}

uint32_t aether_actor_batch_max_(const aether_actor *a) { return a->batch_max; }

bool aether_actor_is_scheduled_(const aether_actor *a)
{
    return __atomic_load_n(&a->scheduled, __ATOMIC_ACQUIRE) != 0;
}

void aether_actor_unschedule_(aether_actor *a) { __atomic_store_n(&a->scheduled, 0, __ATOMIC_RELEASE); }

const char *aether_actor_name(const aether_actor *a) { return a->name; }
void *aether_actor_state(const aether_actor *a) { return a->state; }
aether_executor *aether_actor_executor(const aether_actor *a) { return a->ex; }
aether_clock *aether_actor_clock(const aether_actor *a) { return a->ex->clock; }
uint64_t aether_actor_processed(const aether_actor *a)
{
    return __atomic_load_n(&a->processed, __ATOMIC_RELAXED);
}
uint32_t aether_actor_depth(const aether_actor *a) { return aether_mailbox_depth(&a->mailbox); }
uint64_t aether_actor_overflow_depth(const aether_actor *a)
{
    return __atomic_load_n(&a->ovf_count, __ATOMIC_RELAXED);
}
uint64_t aether_actor_full_count(const aether_actor *a)
{
    return __atomic_load_n(&a->full_sends, __ATOMIC_RELAXED);
}
uint64_t aether_actor_refused_count(const aether_actor *a)
{
    return __atomic_load_n(&a->ovf_refused, __ATOMIC_RELAXED);
}

void aether_latest_init(aether_latest *l, aether_counter *m_superseded)
{
    l->value = NULL;
    l->superseded = 0;
    l->m_superseded = m_superseded;
}

void aether_latest_fini(aether_latest *l)
{
    aether_ref_release(__atomic_exchange_n(&l->value, NULL, __ATOMIC_ACQ_REL));
}

aether_status aether_latest_post(aether_latest *l, aether_actor *to, aether_ref *value,
                                 const aether_msg *wake)
{
    AETHER_ASSERT(value != NULL && wake != NULL && wake->flags == 0 && wake->ptr == NULL);
    aether_ref *old = __atomic_exchange_n(&l->value, value, __ATOMIC_ACQ_REL);
    if (old != NULL) { /* step 2: a wake-up is pending; the newest wins */
        aether_ref_release(old);
        __atomic_fetch_add(&l->superseded, 1, __ATOMIC_RELAXED);
        if (l->m_superseded != NULL)
            aether_counter_inc(l->m_superseded);
        return AETHER_OK;
    }
    aether_status st = aether_actor_send(to, wake);
    if (AETHER_UNLIKELY(st != AETHER_OK)) {
        /* A closed actor (shutdown) or a full overflow list: no wake-up is
         * pending, so empty the slot again; a value left there would make
         * every later post supersede it without waking anyone. */
        aether_ref_release(__atomic_exchange_n(&l->value, NULL, __ATOMIC_ACQ_REL));
    }
    return st;
}

aether_ref *aether_latest_take(aether_latest *l)
{
    return __atomic_exchange_n(&l->value, NULL, __ATOMIC_ACQ_REL);
}

aether_status aether_timer_start(aether_actor *target, uint64_t delay_ns, uint64_t period_ns,
                                 const aether_msg *msg, aether_timer_id *out)
{
    AETHER_ASSERT(msg->flags == 0 && msg->ptr == NULL);
    return target->ex->ops->timer_start(target->ex, target, delay_ns, period_ns, msg, out);
}

uint32_t aether_actor_exec_flags_(const aether_actor *a) { return a->exec_flags; }
void aether_actor_set_exec_flags_(aether_actor *a, uint32_t flags) { a->exec_flags = flags; }

bool aether_timer_cancel(aether_actor *target, aether_timer_id id)
{
    return target->ex->ops->timer_cancel(target->ex, id);
}

void aether_executor_destroy(aether_executor *ex)
{
    if (ex != NULL)
        ex->ops->destroy(ex);
}
