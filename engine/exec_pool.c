/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_pool.c: the thread-pool executor (engine layer). See exec_pool.h.
 *
 * DESIGN
 *  Run queue: a ck_ring MPMC of actor pointers. An actor is in it at most
 *  once (actor.h's handshake), so a capacity above max_actors means an
 *  enqueue cannot fail (asserted).
 *  Parking (no lost wake-up):
 *   worker:    lock; sleepers++ (seq_cst); if queue empty and running: wait; sleepers--; unlock
 *   scheduler: enqueue; fence (seq_cst); if sleepers > 0: lock; signal; unlock
 *  If the scheduler reads sleepers == 0, the worker's increment comes later in
 *  the single total order, so its emptiness check sees the enqueue; otherwise
 *  the signal comes after the worker holds the lock, i.e. while it waits or
 *  before it checks. A busy pool never takes the lock.
 *  Timers, on the workers (no thread of their own: docs/tuning.md): a
 *  (deadline, id) min-heap under timer_mu; next_ns (seq_cst) mirrors its
 *  earliest deadline. A worker fires what is due before each run
 *  (timers_poll: an atomic load and a clock read while nothing is due;
 *  trylock, so one worker fires and the others run actors) and parks with
 *  a timed wait until next_ns. A timer_start that brings next_ns forward
 *  wakes the parked workers: it stores next_ns, then broadcasts park_cv
 *  under park_mu; a worker reads next_ns after taking park_mu and
 *  announcing itself in sleepers, so either it sees the new deadline or it
 *  is waiting when the broadcast comes (the run queue's argument above).
 *  A due timer waits at most for the actor batch its worker is running.
 *  Idle spin: a worker that finds the run queue empty polls it for up to
 *  `limit` pause rounds before it parks; limit is the worker's own and
 *  adapts (as Go's scheduler and crossbeam's Backoff bound spinning by
 *  whether it pays): a spin that fails (parks) halves it, down to
 *  SPIN_FLOOR; a spin that finds work after i rounds raises it to 2i if
 *  that is more, up to `spin` (spin_iterations). So a worker whose
 *  producers are running (work back within a few rounds) keeps a short
 *  spin, one whose producers are preempted or idle parks almost at once
 *  and leaves the core to them, and one whose work comes back late but
 *  reliably learns to wait that long. Every spin is bounded by `spin`:
 *  no unbounded busy-wait (DESIGN 3).
 *  Reruns: an actor still scheduled after its run (more messages) runs
 *  again on the same worker, without the push and pop, while the run
 *  queue is empty, at most RERUNS_MAX times in a row (then to the back of
 *  the queue); the due timers are fired between runs. Another actor that
 *  becomes runnable meanwhile waits for one run at most (the queue is
 *  looked at after each), as it would behind the push.
 */
#include "exec_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ck_ring.h>

#include "assertion.h"
#include "log.h"
#include "snapshot.h"
#include "thread.h"
#include "timer_heap.h"
#include "tsan.h"

#define DEFAULT_MAX_ACTORS 4096u
#define DEFAULT_SPIN 2000u      /* the adaptive spin's ceiling, pause rounds */
#define SPIN_FLOOR 64u          /* the adaptive spin's floor (DESIGN, Idle spin) */
#define RERUNS_MAX 16u          /* runs of one actor back to back (DESIGN, Reruns) */
#define WORKERS_MAX 256u

enum { POOL_CREATED, POOL_RUNNING, POOL_STOPPED };

typedef struct pool_exec {
    aether_executor base; /* first */
    /* Immutable after create. */
    uint32_t nworkers;
    uint32_t max_actors;
    uint32_t spin;       /* the idle spin's ceiling, pause rounds (DESIGN, Idle spin) */
    uint32_t nice_increment;
    struct ck_ring runq;
    struct ck_ring_buffer *runq_buf;
    pthread_t *threads;
    /* Atomics. */
    uint32_t sleepers;   /* seq_cst: workers about to wait or waiting */
    uint32_t running;    /* seq_cst: 1 while workers should run */
    uint32_t attached;   /* relaxed: actors attached */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv;
    uint64_t next_ns;    /* seq_cst: the heap's earliest deadline, UINT64_MAX when empty;
                            written under timer_mu */
    /* Parking. */
    /* Timers: the heap under timer_mu. */
    pthread_mutex_t timer_mu;
    aether_timer_heap timers;
    /* Lifecycle: controlling thread only. */
    int state;
    uint32_t started_workers;
} pool_exec;

/* The pool whose worker the current thread is (NULL elsewhere). */
static __thread pool_exec *current_worker_pool;

static pool_exec *as_pool(aether_executor *ex) { return (pool_exec *)ex; }

/* timer_mu held: next_ns from the heap. */
static void next_update_locked(pool_exec *p)
{
    uint64_t next = UINT64_MAX;
    (void)aether_timer_heap_next(&p->timers, &next);
    __atomic_store_n(&p->next_ns, next, __ATOMIC_SEQ_CST);
}

static aether_status pool_attach(aether_executor *ex, aether_actor *a)
{
    pool_exec *p = as_pool(ex);
    (void)a;
    uint32_t n = __atomic_add_fetch(&p->attached, 1, __ATOMIC_RELAXED);
    if (n > p->max_actors) {
        __atomic_sub_fetch(&p->attached, 1, __ATOMIC_RELAXED);
        return AETHER_EFULL;
    }
    return AETHER_OK;
}

static void pool_detach(aether_executor *ex, aether_actor *a)
{
    pool_exec *p = as_pool(ex);
    pthread_mutex_lock(&p->timer_mu);
    aether_timer_heap_cancel_target(&p->timers, a);
    next_update_locked(p);
    pthread_mutex_unlock(&p->timer_mu);
    uint32_t old = __atomic_fetch_sub(&p->attached, 1, __ATOMIC_RELAXED);
    AETHER_ASSERT(old > 0);
}

static void runq_push(pool_exec *p, aether_actor *a)
{
    /* The next runner, on whichever worker, sees everything the previous
     * runner and the scheduling sender did. */
    AETHER_TSAN_RELEASE(a);
    AETHER_TSAN_IGNORE_BEGIN();
    bool ok = ck_ring_enqueue_mpmc(&p->runq, p->runq_buf, a);
    AETHER_TSAN_IGNORE_END();
    AETHER_ASSERT(ok); /* capacity > max_actors and each actor is queued once */
    ck_pr_fence_memory(); /* full fence; also invisible to TSan, which rejects C11 fences */
    if (__atomic_load_n(&p->sleepers, __ATOMIC_RELAXED) > 0) {
        pthread_mutex_lock(&p->park_mu);
        pthread_cond_signal(&p->park_cv);
        pthread_mutex_unlock(&p->park_mu);
    }
}

static aether_actor *runq_pop(pool_exec *p)
{
    void *a = NULL;
    AETHER_TSAN_IGNORE_BEGIN();
    bool ok = ck_ring_dequeue_mpmc(&p->runq, p->runq_buf, &a);
    AETHER_TSAN_IGNORE_END();
    if (!ok)
        return NULL;
    AETHER_TSAN_ACQUIRE(a);
    return a;
}

static void pool_schedule(aether_executor *ex, aether_actor *a)
{
    runq_push(as_pool(ex), a);
}

static void pool_quiesce(aether_executor *ex, aether_actor *a)
{
    pool_exec *p = as_pool(ex);
    AETHER_ASSERT(current_worker_pool != p); /* would wait on itself */
    /* Once closed, a run only unschedules; wait for that run. Bounded by one
     * batch of the handler in flight. */
    while (!aether_actor_is_idle_(a) && __atomic_load_n(&p->running, __ATOMIC_SEQ_CST)) {
        struct timespec ts = { 0, 50 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* Fires the due timers unless another worker is at it (DESIGN, Timers). */
static void timers_poll(pool_exec *p)
{
    uint64_t next = __atomic_load_n(&p->next_ns, __ATOMIC_SEQ_CST);
    if (next == UINT64_MAX || next > aether_clock_now_ns(p->base.clock))
        return;
    if (pthread_mutex_trylock(&p->timer_mu) != 0)
        return; /* another worker fires them */
    (void)aether_timer_heap_fire_due(&p->timers, aether_clock_now_ns(p->base.clock));
    next_update_locked(p);
    pthread_mutex_unlock(&p->timer_mu);
}

static void deadline_to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / AETHER_NS_PER_S);
    ts->tv_nsec = (long)(ns % AETHER_NS_PER_S);
}

/* Runs a, again while it stays scheduled and no other actor waits in the
 * run queue, at most RERUNS_MAX times (DESIGN, Reruns); then back of the
 * queue if it still has messages. */
static void run_actor(pool_exec *p, aether_actor *a)
{
    uint32_t batch = aether_actor_batch_max_(a);
    for (uint32_t runs = 0; aether_actor_run_(a, batch); runs++) {
        if (runs == RERUNS_MAX || ck_ring_size(&p->runq) != 0 ||
            !__atomic_load_n(&p->running, __ATOMIC_RELAXED)) {
            runq_push(p, a);
            return;
        }
        timers_poll(p);
    }
}

/* The next idle spin's bound (DESIGN, Idle spin): found after `rounds`
 * rounds, or not found (the worker parks next). */
static uint32_t spin_adapt(uint32_t limit, bool found, uint32_t rounds, uint32_t ceiling)
{
    uint32_t floor = SPIN_FLOOR < ceiling ? SPIN_FLOOR : ceiling;
    if (!found)
        limit /= 2;
    else if (rounds > limit / 2)
        limit = rounds * 2;
    limit = limit < floor ? floor : limit > ceiling ? ceiling : limit;
    AETHER_ASSERT(limit >= floor && limit <= ceiling);
    return limit;
}

static void *worker_main(void *arg)
{
    pool_exec *p = arg;
    current_worker_pool = p;
    aether_rcu_register_thread();
    if (p->nice_increment > 0) {
        int rc = aether_thread_lower_priority((int)p->nice_increment);
        if (rc != 0) /* it only runs at the normal priority */
            AETHER_WARN("pool", "cannot lower a worker's priority by %u: %s", p->nice_increment,
                        strerror(rc));
    }
    uint32_t limit = SPIN_FLOOR < p->spin ? SPIN_FLOOR : p->spin; /* DESIGN, Idle spin */
    while (__atomic_load_n(&p->running, __ATOMIC_SEQ_CST)) {
        timers_poll(p);
        aether_actor *a = runq_pop(p);
        if (a == NULL) {
            uint32_t i = 0;
            while (a == NULL && i < limit) {
                __builtin_ia32_pause();
                a = runq_pop(p);
                i++;
            }
            limit = spin_adapt(limit, a != NULL, i, p->spin);
        }
        if (a != NULL) {
            run_actor(p, a);
            continue;
        }
        pthread_mutex_lock(&p->park_mu);
        __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
        uint64_t next = __atomic_load_n(&p->next_ns, __ATOMIC_SEQ_CST);
        if (ck_ring_size(&p->runq) == 0 && __atomic_load_n(&p->running, __ATOMIC_SEQ_CST) &&
            next > aether_clock_now_ns(p->base.clock)) {
            if (next == UINT64_MAX) {
                pthread_cond_wait(&p->park_cv, &p->park_mu);
            } else {
                struct timespec ts;
                deadline_to_timespec(next, &ts);
                int rc = pthread_cond_timedwait(&p->park_cv, &p->park_mu, &ts);
                AETHER_ASSERT(rc == 0 || rc == ETIMEDOUT);
            }
        }
        __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&p->park_mu);
    }
    aether_rcu_unregister_thread();
    current_worker_pool = NULL;
    return NULL;
}

static aether_status pool_timer_start(aether_executor *ex, aether_actor *target, uint64_t delay_ns,
                                      uint64_t period_ns, const aether_msg *msg,
                                      aether_timer_id *out)
{
    pool_exec *p = as_pool(ex);
    uint64_t deadline = aether_clock_now_ns(ex->clock) + delay_ns;
    pthread_mutex_lock(&p->timer_mu);
    uint64_t old_next = __atomic_load_n(&p->next_ns, __ATOMIC_SEQ_CST);
    aether_status st = aether_timer_heap_add(&p->timers, deadline, period_ns, target, msg, out);
    if (st == AETHER_OK)
        next_update_locked(p);
    pthread_mutex_unlock(&p->timer_mu);
    if (st == AETHER_OK && deadline < old_next &&
        __atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) > 0) { /* the parked wait for an older deadline */
        pthread_mutex_lock(&p->park_mu);
        pthread_cond_broadcast(&p->park_cv);
        pthread_mutex_unlock(&p->park_mu);
    }
    return st;
}

static bool pool_timer_cancel(aether_executor *ex, aether_timer_id id)
{
    pool_exec *p = as_pool(ex);
    pthread_mutex_lock(&p->timer_mu);
    bool found = aether_timer_heap_cancel(&p->timers, id);
    next_update_locked(p); /* a later next_ns: a parked worker wakes once for nothing */
    pthread_mutex_unlock(&p->timer_mu);
    return found;
}

static void pool_destroy(aether_executor *ex)
{
    pool_exec *p = as_pool(ex);
    aether_pool_stop(ex);
    AETHER_ASSERT(__atomic_load_n(&p->attached, __ATOMIC_RELAXED) == 0);
    aether_timer_heap_fini(&p->timers);
    pthread_mutex_destroy(&p->timer_mu);
    pthread_cond_destroy(&p->park_cv);
    pthread_mutex_destroy(&p->park_mu);
    free(p->threads);
    free(p->runq_buf);
    free(p);
}

static const aether_executor_ops pool_ops = {
    .attach = pool_attach,
    .detach = pool_detach,
    .schedule = pool_schedule,
    .quiesce = pool_quiesce,
    .timer_start = pool_timer_start,
    .timer_cancel = pool_timer_cancel,
    .destroy = pool_destroy,
};

static uint32_t round_up_pow2(uint32_t x)
{
    uint32_t r = 1;
    while (r < x)
        r <<= 1;
    return r;
}

uint32_t aether_pool_node_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n <= 0 ? 1u : (uint32_t)n < AETHER_POOL_NODE_WORKERS_MAX ? (uint32_t)n : AETHER_POOL_NODE_WORKERS_MAX;
}

aether_status aether_pool_create(const aether_pool_config *cfg, aether_executor **out)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    aether_pool_config c = cfg ? *cfg : (aether_pool_config){ 0 };
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.workers = n > 0 ? (uint32_t)n : 1;
    }
    if (c.workers > WORKERS_MAX || c.max_actors > (1u << 24) || c.nice_increment > 39u)
        return AETHER_EINVAL;
    if (c.max_actors == 0)
        c.max_actors = DEFAULT_MAX_ACTORS;
    pool_exec *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return AETHER_ENOMEM;
    p->nworkers = c.workers;
    p->max_actors = c.max_actors;
    p->spin = c.spin_iterations ? c.spin_iterations : DEFAULT_SPIN;
    p->nice_increment = c.nice_increment;
    /* One ring slot stays free: 2x the rounded bound holds every actor. */
    uint32_t ring = round_up_pow2(c.max_actors) * 2;
    p->runq_buf = calloc(ring, sizeof(*p->runq_buf));
    p->threads = calloc(c.workers, sizeof(*p->threads));
    if (p->runq_buf == NULL || p->threads == NULL) {
        free(p->runq_buf);
        free(p->threads);
        free(p);
        return AETHER_ENOMEM;
    }
    ck_ring_init(&p->runq, ring);
    pthread_mutex_init(&p->park_mu, NULL);
    pthread_condattr_t ca; /* timed parks wait for CLOCK_MONOTONIC deadlines */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->park_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->timer_mu, NULL);
    p->next_ns = UINT64_MAX;
    aether_timer_heap_init(&p->timers);
    p->base.ops = &pool_ops;
    p->base.clock = aether_clock_real();
    p->state = POOL_CREATED;
    *out = &p->base;
    return AETHER_OK;
}

aether_status aether_pool_start(aether_executor *ex)
{
    pool_exec *p = as_pool(ex);
    if (p->state != POOL_CREATED)
        return AETHER_ESTATE;
    p->state = POOL_RUNNING;
    __atomic_store_n(&p->running, 1, __ATOMIC_SEQ_CST);
    for (uint32_t i = 0; i < p->nworkers; i++) {
        if (aether_thread_create(&p->threads[i], worker_main, p) != 0) { /* signals blocked: thread.h */
            AETHER_ERROR("pool", "cannot start worker %u of %u", i, p->nworkers);
            aether_pool_stop(ex);
            return AETHER_EIO;
        }
        p->started_workers++;
    }
    return AETHER_OK;
}

void aether_pool_stop(aether_executor *ex)
{
    pool_exec *p = as_pool(ex);
    AETHER_ASSERT(current_worker_pool != p);
    if (p->state != POOL_RUNNING) {
        p->state = POOL_STOPPED;
        return;
    }
    p->state = POOL_STOPPED;
    __atomic_store_n(&p->running, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&p->park_mu);
    pthread_cond_broadcast(&p->park_cv);
    pthread_mutex_unlock(&p->park_mu);
    for (uint32_t i = 0; i < p->started_workers; i++)
        pthread_join(p->threads[i], NULL);
}

uint32_t aether_pool_workers(const aether_executor *ex) { return ((const pool_exec *)ex)->nworkers; }
