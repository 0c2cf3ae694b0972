/*
 * baseline_spscring.h: limit B of the mailbox bench, a raw Concurrency Kit
 * single-producer single-consumer ring of aether_msg values (bench layer).
 *
 * This is the floor the actor mailbox is built on, minus everything the
 * runtime adds: no producer CAS (the mailbox is MPSC), no scheduling
 * handshake (fence + flag), no run queue, no batching. The typed ring
 * (CK_RING_PROTOTYPE) copies the 32-byte message into the slot, exactly as
 * the mailbox does. Send and receive are inline so the limit carries no call
 * overhead.
 *
 * Threading: one producer thread and one consumer thread at a time.
 */
#ifndef BENCH_BASELINE_SPSCRING_H
#define BENCH_BASELINE_SPSCRING_H

#include <stdbool.h>
#include <stdint.h>
#include <ck_ring.h>

#include "mailbox.h"
#include "status.h"

CK_RING_PROTOTYPE(bench_spsc_msg, aether_msg)

typedef struct bench_spscring {
    /* ck's indices (producer owns p_*, consumer owns c_head), cache-line aligned
     * so they sit on separate lines as ck intends. */
    struct ck_ring ring __attribute__((aligned(64)));
    aether_msg *slots;   /* [capacity]; immutable pointer after init */
} bench_spscring;

/* capacity: a power of two >= 2 (holds capacity - 1 messages, as in ck_ring). */
aether_status bench_spscring_init(bench_spscring *r, uint32_t capacity);
void bench_spscring_fini(bench_spscring *r);

/* Producer only. False when full. */
static inline bool bench_spscring_send(bench_spscring *r, const aether_msg *m)
{
    /* ck's typed enqueue takes a non-const pointer but only reads it. */
    return ck_ring_enqueue_spsc_bench_spsc_msg(&r->ring, r->slots, (aether_msg *)m);
}

/* Consumer only. False when empty. */
static inline bool bench_spscring_recv(bench_spscring *r, aether_msg *out)
{
    return ck_ring_dequeue_spsc_bench_spsc_msg(&r->ring, r->slots, out);
}

#endif
