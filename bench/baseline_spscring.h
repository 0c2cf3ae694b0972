/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_spscring.h: limit B of the mailbox bench, a raw Concurrency Kit
 * single-producer single-consumer ring of aether_msg values (bench layer).
 *
 * This is the floor the actor mailbox is built on, minus everything the
 * runtime adds: no producer CAS (the mailbox is MPSC), no scheduling
 * handshake (fence + flag), no run queue. Both sides move batches: a side
 * exchanges its index once per batch, not once per message, which is the
 * most the ring itself can carry (one message per call ping-pongs both index
 * lines per message and ran slower than the actor path, so it was no
 * limit). Each message is a 32-byte copy into its slot, as in the mailbox.
 * Send and receive are inline so the limit carries no call overhead.
 *
 * Threading: one producer thread and one consumer thread at a time.
 */
#ifndef BENCH_BASELINE_SPSCRING_H
#define BENCH_BASELINE_SPSCRING_H

#include <stdbool.h>
#include <stdint.h>
#include <ck_pr.h>
#include <ck_ring.h>

#include "mailbox.h"
#include "status.h"

typedef struct bench_spscring {
    /* ck's indices (producer owns p_*, consumer owns c_head), cache-line aligned
     * so they sit on separate lines as ck intends. */
    struct ck_ring ring __attribute__((aligned(64)));
    aether_msg *slots;   /* [capacity]; immutable pointer after init */
} bench_spscring;

/* capacity: a power of two >= 2 (holds capacity - 1 messages, as in ck_ring). */
aether_status bench_spscring_init(bench_spscring *r, uint32_t capacity);
void bench_spscring_fini(bench_spscring *r);

/* The ring's real limit: one index exchange per batch instead of per
 * message. The same protocol as ck's _ck_ring_enqueue_sp/_ck_ring_dequeue_sc
 * (read the other side's index once, copy, store fence, publish our index
 * once), on ck's own fields. */

/* Producer only. Copies up to n messages (a prefix of msgs, in order) into
 * the ring; returns how many fitted (0 when full). */
static inline uint32_t bench_spscring_send_batch(bench_spscring *r, const aether_msg *msgs, uint32_t n)
{
    const unsigned int mask = r->ring.mask;
    unsigned int consumer = ck_pr_load_uint(&r->ring.c_head);
    unsigned int producer = r->ring.p_tail;
    unsigned int room = mask - (producer - consumer); /* one slot stays free */
    uint32_t k = n < room ? n : room;
    for (uint32_t i = 0; i < k; i++)
        r->slots[(producer + i) & mask] = msgs[i];
    ck_pr_fence_store();
    ck_pr_store_uint(&r->ring.p_tail, producer + k);
    return k;
}

/* Consumer only. Copies up to max messages into out, oldest first; returns
 * how many (0 when empty). */
static inline uint32_t bench_spscring_recv_batch(bench_spscring *r, aether_msg *out, uint32_t max)
{
    const unsigned int mask = r->ring.mask;
    unsigned int consumer = r->ring.c_head;
    unsigned int producer = ck_pr_load_uint(&r->ring.p_tail);
    unsigned int avail = producer - consumer;
    uint32_t k = max < avail ? max : avail;
    if (k == 0)
        return 0;
    ck_pr_fence_load();
    for (uint32_t i = 0; i < k; i++)
        out[i] = r->slots[(consumer + i) & mask];
    ck_pr_fence_store();
    ck_pr_store_uint(&r->ring.c_head, consumer + k);
    return k;
}

#endif
