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
 *  Timers: one thread, a (deadline, id) min-heap under timer_mu, sleeping on
 *  a CLOCK_MONOTONIC condition variable until the earliest deadline.
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
#define DEFAULT_SPIN 2000u
#define WORKERS_MAX 256u

enum { POOL_CREATED, POOL_RUNNING, POOL_STOPPED };

typedef struct pool_exec {
    aether_executor base; /* first */
    /* Immutable after create. */
    uint32_t nworkers;
    uint32_t max_actors;
    uint32_t spin;
    struct ck_ring runq;
    struct ck_ring_buffer *runq_buf;
    pthread_t *threads;
    /* Atomics. */
    uint32_t sleepers;   /* seq_cst: workers about to wait or waiting */
    uint32_t running;    /* seq_cst: 1 while workers should run */
    uint32_t attached;   /* relaxed: actors attached */
    /* Parking. */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv;
    /* Timers: everything below under timer_mu. */
    pthread_mutex_t timer_mu;
    pthread_cond_t timer_cv;
    aether_timer_heap timers;
    bool timer_stop;
    pthread_t timer_thread;
    /* Lifecycle: controlling thread only. */
    int state;
    uint32_t started_workers;
    bool timer_started;
} pool_exec;

/* The pool whose worker the current thread is (NULL elsewhere). */
static __thread pool_exec *current_worker_pool;

static pool_exec *as_pool(aether_executor *ex) { return (pool_exec *)ex; }

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

static void *worker_main(void *arg)
{
    pool_exec *p = arg;
    current_worker_pool = p;
    aether_rcu_register_thread();
    while (__atomic_load_n(&p->running, __ATOMIC_SEQ_CST)) {
        aether_actor *a = runq_pop(p);
        for (uint32_t i = 0; a == NULL && i < p->spin; i++) {
            __builtin_ia32_pause();
            a = runq_pop(p);
        }
        if (a != NULL) {
            if (aether_actor_run_(a, aether_actor_batch_max_(a)))
                runq_push(p, a);
            continue;
        }
        pthread_mutex_lock(&p->park_mu);
        __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
        if (ck_ring_size(&p->runq) == 0 && __atomic_load_n(&p->running, __ATOMIC_SEQ_CST))
            pthread_cond_wait(&p->park_cv, &p->park_mu);
        __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&p->park_mu);
    }
    aether_rcu_unregister_thread();
    current_worker_pool = NULL;
    return NULL;
}

static void deadline_to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / AETHER_NS_PER_S);
    ts->tv_nsec = (long)(ns % AETHER_NS_PER_S);
}

static void *timer_main(void *arg)
{
    pool_exec *p = arg;
    pthread_mutex_lock(&p->timer_mu);
    while (!p->timer_stop) {
        uint64_t now = aether_clock_now_ns(p->base.clock);
        aether_timer_heap_fire_due(&p->timers, now);
        uint64_t next;
        if (!aether_timer_heap_next(&p->timers, &next)) {
            pthread_cond_wait(&p->timer_cv, &p->timer_mu);
        } else if (next > now) {
            struct timespec ts;
            deadline_to_timespec(next, &ts);
            int rc = pthread_cond_timedwait(&p->timer_cv, &p->timer_mu, &ts);
            AETHER_ASSERT(rc == 0 || rc == ETIMEDOUT);
        }
    }
    pthread_mutex_unlock(&p->timer_mu);
    return NULL;
}

static aether_status pool_timer_start(aether_executor *ex, aether_actor *target, uint64_t delay_ns,
                                      uint64_t period_ns, const aether_msg *msg,
                                      aether_timer_id *out)
{
    pool_exec *p = as_pool(ex);
    uint64_t deadline = aether_clock_now_ns(ex->clock) + delay_ns;
    pthread_mutex_lock(&p->timer_mu);
    uint64_t old_next = UINT64_MAX;
    (void)aether_timer_heap_next(&p->timers, &old_next);
    aether_status st = aether_timer_heap_add(&p->timers, deadline, period_ns, target, msg, out);
    if (st == AETHER_OK && deadline < old_next)
        pthread_cond_signal(&p->timer_cv);
    pthread_mutex_unlock(&p->timer_mu);
    return st;
}

static bool pool_timer_cancel(aether_executor *ex, aether_timer_id id)
{
    pool_exec *p = as_pool(ex);
    pthread_mutex_lock(&p->timer_mu);
    bool found = aether_timer_heap_cancel(&p->timers, id);
    pthread_mutex_unlock(&p->timer_mu);
    return found;
}

static void pool_destroy(aether_executor *ex)
{
    pool_exec *p = as_pool(ex);
    aether_pool_stop(ex);
    AETHER_ASSERT(__atomic_load_n(&p->attached, __ATOMIC_RELAXED) == 0);
    aether_timer_heap_fini(&p->timers);
    pthread_cond_destroy(&p->timer_cv);
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

aether_status aether_pool_create(const aether_pool_config *cfg, aether_executor **out)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    aether_pool_config c = cfg ? *cfg : (aether_pool_config){ 0 };
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.workers = n > 0 ? (uint32_t)n : 1;
    }
    if (c.workers > WORKERS_MAX || c.max_actors > (1u << 24))
        return AETHER_EINVAL;
    if (c.max_actors == 0)
        c.max_actors = DEFAULT_MAX_ACTORS;
    pool_exec *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return AETHER_ENOMEM;
    p->nworkers = c.workers;
    p->max_actors = c.max_actors;
    p->spin = c.spin_iterations ? c.spin_iterations : DEFAULT_SPIN;
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
    pthread_cond_init(&p->park_cv, NULL);
    pthread_mutex_init(&p->timer_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->timer_cv, &ca);
    pthread_condattr_destroy(&ca);
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
    if (aether_thread_create(&p->timer_thread, timer_main, p) != 0) {
        AETHER_ERROR("pool", "cannot start the timer thread");
        aether_pool_stop(ex);
        return AETHER_EIO;
    }
    p->timer_started = true;
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
    if (p->timer_started) {
        pthread_mutex_lock(&p->timer_mu);
        p->timer_stop = true;
        pthread_cond_signal(&p->timer_cv);
        pthread_mutex_unlock(&p->timer_mu);
        pthread_join(p->timer_thread, NULL);
    }
}

uint32_t aether_pool_workers(const aether_executor *ex) { return ((const pool_exec *)ex)->nworkers; }
