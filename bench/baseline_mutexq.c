/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_mutexq.c: the mutex+condvar bounded queue (bench layer). See
 * baseline_mutexq.h.
 *
 * Threading: push any thread, pop one consumer; every field but the sync
 * objects is guarded by mu. Both sides wait with a deadline, so a stuck peer
 * turns into a reported failure, not a hang.
 */
#include "baseline_mutexq.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "assertion.h"

aether_status bench_mutexq_init(bench_mutexq *q, uint32_t capacity)
{
    if (!aether_is_power_of_two(capacity))
        return AETHER_EINVAL;
    q->slots = aligned_alloc(64, (size_t)capacity * sizeof(aether_msg));
    if (q->slots == NULL)
        return AETHER_ENOMEM;
    q->capacity = capacity;
    q->head = 0;
    q->count = 0;
    q->push_waiters = 0;
    q->pop_waiters = 0;
    q->full_waits = 0;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_full, &ca);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_condattr_destroy(&ca);
    return AETHER_OK;
}

void bench_mutexq_fini(bench_mutexq *q)
{
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->mu);
    free(q->slots);
    q->slots = NULL;
}

/* An absolute CLOCK_MONOTONIC deadline timeout_ns from now. */
static struct timespec deadline_in(uint64_t timeout_ns)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t ns = (uint64_t)dl.tv_nsec + timeout_ns;
    dl.tv_sec += (time_t)(ns / 1000000000u);
    dl.tv_nsec = (long)(ns % 1000000000u);
    return dl;
}

bool bench_mutexq_push(bench_mutexq *q, const aether_msg *m, uint64_t timeout_ns)
{
    pthread_mutex_lock(&q->mu);
    if (q->count == q->capacity) {
        /* The deadline is computed only when we have to wait: a queue with
         * room pays no clock read per message. */
        q->full_waits++;
        struct timespec dl = deadline_in(timeout_ns);
        while (q->count == q->capacity) {
            q->push_waiters++;
            int rc = pthread_cond_timedwait(&q->not_full, &q->mu, &dl);
            q->push_waiters--;
            AETHER_ASSERT(rc == 0 || rc == ETIMEDOUT);
            if (rc == ETIMEDOUT && q->count == q->capacity) {
                pthread_mutex_unlock(&q->mu);
                return false;
            }
        }
    }
    q->slots[(q->head + q->count) & (q->capacity - 1)] = *m;
    q->count++;
    if (q->pop_waiters > 0)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return true;
}

bool bench_mutexq_pop(bench_mutexq *q, aether_msg *out, uint64_t timeout_ns)
{
    pthread_mutex_lock(&q->mu);
    if (q->count == 0) {
        struct timespec dl = deadline_in(timeout_ns);
        while (q->count == 0) {
            q->pop_waiters++;
            int rc = pthread_cond_timedwait(&q->not_empty, &q->mu, &dl);
            q->pop_waiters--;
            AETHER_ASSERT(rc == 0 || rc == ETIMEDOUT);
            if (rc == ETIMEDOUT && q->count == 0) {
                pthread_mutex_unlock(&q->mu);
                return false;
            }
        }
    }
    *out = q->slots[q->head];
    q->head = (q->head + 1) & (q->capacity - 1);
    q->count--;
    if (q->push_waiters > 0)
        pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return true;
}

uint64_t bench_mutexq_full_waits(bench_mutexq *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t n = q->full_waits;
    pthread_mutex_unlock(&q->mu);
    return n;
}
