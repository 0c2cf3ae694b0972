/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailbox.c: the bounded MPSC mailbox on ck_ring (engine layer). See
 * mailbox.h for the contract.
 *
 * The ring stores aether_msg values (CK_RING_PROTOTYPE), so a send is one CAS
 * on the producer index plus a 32-byte copy; no allocation. A batch send and
 * a receive work a batch at a time on ck's own indices, with ck's protocol
 * and fences (the typed ring has no batch calls): one CAS reserves a batch,
 * one p_tail store publishes it, one c_head store hands a batch back. Under TSan the
 * ring's own index traffic (inline assembly) is invisible, so each send
 * releases and each receive acquires the mailbox address, and the slot copies
 * are hidden from TSan (see tsan.h).
 */
#include "mailbox.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "tsan.h"

CK_RING_PROTOTYPE(aether_msg, aether_msg)

/* Busy-wait rounds for our turn to commit before yielding the core. */
#define COMMIT_SPINS 64u

AETHER_STATIC_ASSERT(sizeof(aether_msg) == 32, "a message is half a cache line");

aether_status aether_mailbox_init(aether_mailbox *mb, uint32_t capacity)
{
    if (capacity < AETHER_MAILBOX_CAPACITY_MIN || capacity > AETHER_MAILBOX_CAPACITY_MAX ||
        !aether_is_power_of_two(capacity))
        return AETHER_EINVAL;
    mb->slots = aligned_alloc(64, (size_t)capacity * sizeof(aether_msg));
    if (mb->slots == NULL)
        return AETHER_ENOMEM;
    ck_ring_init(&mb->ring, capacity);
    mb->capacity = capacity;
    mb->full_count = 0;
    return AETHER_OK;
}

void aether_mailbox_fini(aether_mailbox *mb)
{
    free(mb->slots);
    mb->slots = NULL;
}

/* ck commits tickets in order: a producer waits until every reservation
 * before its own (`ticket`) is committed, then publishes its `count` slots.
 * If the producer before it was preempted between its reserve and its
 * commit, a pure spin burns our whole time slice while it cannot run (a
 * convoy that took a 4-producer test on 2 cores from milliseconds to
 * minutes). So: spin briefly, then yield the core. */
static void commit_in_turn(aether_mailbox *mb, unsigned int ticket, uint32_t count)
{
    for (uint32_t spins = 0; ck_pr_load_uint(&mb->ring.p_tail) != ticket; spins++) {
        if (spins < COMMIT_SPINS)
            ck_pr_stall();
        else
            sched_yield();
    }
    ck_pr_fence_store(); /* the slot copies before the slots are published */
    ck_pr_store_uint(&mb->ring.p_tail, ticket + count);
}

aether_status aether_mailbox_send_mpsc(aether_mailbox *mb, const aether_msg *msg)
{
    unsigned int ticket;
    AETHER_TSAN_RELEASE(mb);
    AETHER_TSAN_IGNORE_BEGIN();
    aether_msg *slot = ck_ring_enqueue_reserve_mpsc_aether_msg(&mb->ring, mb->slots, &ticket);
    if (AETHER_UNLIKELY(slot == NULL)) {
        AETHER_TSAN_IGNORE_END();
        __atomic_fetch_add(&mb->full_count, 1, __ATOMIC_RELAXED);
        return AETHER_EFULL;
    }
    *slot = *msg;
    commit_in_turn(mb, ticket, 1); /* ck_ring_enqueue_commit_mpsc, with a yield */
    AETHER_TSAN_IGNORE_END();
    return AETHER_OK;
}

/* ck's _ck_ring_enqueue_reserve_mp for `n` slots at once: one CAS on p_head
 * claims as many as fit, up to n. Returns how many (0: full) and sets
 * *ticket to the first. */
static uint32_t reserve_mp(aether_mailbox *mb, uint32_t n, unsigned int *ticket)
{
    const unsigned int mask = mb->ring.mask;
    unsigned int producer = ck_pr_load_uint(&mb->ring.p_head);
    for (;;) { /* bounded by the other producers' progress, as in ck */
        ck_pr_fence_load();
        unsigned int consumer = ck_pr_load_uint(&mb->ring.c_head);
        unsigned int used = producer - consumer;
        if (AETHER_LIKELY(used < mask)) {
            uint32_t room = mask - used; /* one slot stays free, as in ck */
            uint32_t k = n < room ? n : room;
            if (ck_pr_cas_uint_value(&mb->ring.p_head, producer, producer + k, &producer)) {
                *ticket = producer;
                return k;
            }
        } else {
            /* Full, or our p_head is older than the c_head we read: full
             * only if p_head has not moved meanwhile. */
            ck_pr_fence_load();
            unsigned int now = ck_pr_load_uint(&mb->ring.p_head);
            if (now == producer)
                return 0;
            producer = now;
        }
    }
}

uint32_t aether_mailbox_send_batch_mpsc(aether_mailbox *mb, const aether_msg *msgs, uint32_t n)
{
    if (n == 0)
        return 0;
    unsigned int ticket;
    AETHER_TSAN_RELEASE(mb);
    AETHER_TSAN_IGNORE_BEGIN();
    uint32_t k = reserve_mp(mb, n, &ticket);
    AETHER_ASSERT(k <= n);
    if (k > 0) {
        uint32_t first = ticket & mb->ring.mask;
        uint32_t until_wrap = mb->capacity - first;
        uint32_t a = k < until_wrap ? k : until_wrap;
        memcpy(&mb->slots[first], msgs, (size_t)a * sizeof(*msgs));
        memcpy(&mb->slots[0], msgs + a, (size_t)(k - a) * sizeof(*msgs));
        commit_in_turn(mb, ticket, k);
    }
    AETHER_TSAN_IGNORE_END();
    if (k < n)
        __atomic_fetch_add(&mb->full_count, 1, __ATOMIC_RELAXED);
    return k;
}

uint32_t aether_mailbox_recv_sc(aether_mailbox *mb, aether_msg *out, uint32_t max)
{
    /* ck's _ck_ring_dequeue_sc, a batch at a time: one read of the
     * producers' p_tail and one store of c_head per call, not per message,
     * so the two index lines cross between cores once per batch. */
    const unsigned int mask = mb->ring.mask;
    AETHER_TSAN_IGNORE_BEGIN();
    unsigned int consumer = ck_pr_load_uint(&mb->ring.c_head);
    unsigned int committed = ck_pr_load_uint(&mb->ring.p_tail) - consumer;
    AETHER_ASSERT(committed <= mask);
    uint32_t n = max < committed ? max : committed;
    if (n > 0) {
        ck_pr_fence_load(); /* the slots after our snapshot of p_tail */
        uint32_t first = consumer & mask;
        uint32_t until_wrap = mb->capacity - first;
        uint32_t a = n < until_wrap ? n : until_wrap;
        memcpy(out, &mb->slots[first], (size_t)a * sizeof(*out));
        memcpy(out + a, &mb->slots[0], (size_t)(n - a) * sizeof(*out));
        /* The copies (loads of the slots) before the slots are handed back
         * (a store): load->store order, so a release fence. ck's own
         * dequeue has a store fence here, which orders stores only; the
         * same on x86 (TSO), not on arm64 or POWER. */
        ck_pr_fence_release();
        ck_pr_store_uint(&mb->ring.c_head, consumer + n);
    }
    AETHER_TSAN_IGNORE_END();
    if (n > 0)
        AETHER_TSAN_ACQUIRE(mb);
    return n;
}

uint32_t aether_mailbox_depth(const aether_mailbox *mb)
{
    return ck_ring_size(&mb->ring);
}
