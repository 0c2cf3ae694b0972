/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_mutexq.h: baseline A of the mailbox bench, the textbook bounded
 * queue: a ring of aether_msg values under one pthread mutex with two
 * condition variables (bench layer).
 *
 * One message per lock acquisition on both sides, as a hand-written work
 * queue would do it. A producer that finds the queue full waits on not_full
 * (counted in full_waits); the consumer waits on not_empty. Signals are sent
 * only when the other side is waiting, so a busy queue makes no futex calls
 * beyond the lock's own.
 *
 * Threading: push from any number of threads, pop from one consumer at a
 * time; init/fini with no concurrent users.
 */
#ifndef BENCH_BASELINE_MUTEXQ_H
#define BENCH_BASELINE_MUTEXQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mailbox.h"
#include "status.h"

typedef struct bench_mutexq {
    pthread_mutex_t mu;
    pthread_cond_t not_full;
    pthread_cond_t not_empty;
    /* Everything below under mu. */
    aether_msg *slots;      /* [capacity] */
    uint32_t capacity;      /* power of two; holds capacity messages */
    uint32_t head;          /* next to pop */
    uint32_t count;         /* messages queued */
    uint32_t push_waiters;  /* producers waiting on not_full */
    uint32_t pop_waiters;   /* consumers waiting on not_empty */
    uint64_t full_waits;    /* pushes that found the queue full */
} bench_mutexq;

aether_status bench_mutexq_init(bench_mutexq *q, uint32_t capacity);
void bench_mutexq_fini(bench_mutexq *q);
/* Blocks while full, at most timeout_ns; false on timeout (nothing queued). */
bool bench_mutexq_push(bench_mutexq *q, const aether_msg *m, uint64_t timeout_ns);
/* Blocks while empty, at most timeout_ns; false on timeout. */
bool bench_mutexq_pop(bench_mutexq *q, aether_msg *out, uint64_t timeout_ns);
uint64_t bench_mutexq_full_waits(bench_mutexq *q);

#endif
