/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailbox.c: the bounded MPSC mailbox on ck_ring's indices (engine layer).
 * See mailbox.h for the contract.
 *
 * DESIGN
 * ck_ring's multi-producer enqueue (ck_ring_enqueue_mpsc/_mpmc, 0.7) is two
 * steps: a CAS on p_head reserves a slot, then the producer waits until
 * p_tail reaches its ticket and stores p_tail = ticket + 1. Commits happen
 * in ticket order, so a producer preempted between the two steps stalls
 * every producer behind it for the rest of its time slice: with 4 producers
 * on 2 cores that convoy took the mailbox bench to 0.05x the mutex queue.
 * We keep ck's reservation (the CAS on p_head, its fullness test against
 * c_head) and replace the commit with a per-slot sequence number, as in
 * Vyukov's bounded MPMC queue:
 *  1. reserve: one CAS on p_head claims tickets t .. t+k-1 if the consumer
 *     has freed them (p_head - c_head < mask, one slot stays free, as in ck);
 *  2. write the messages into their slots;
 *  3. commit: a store fence, then seq[t & mask] = t + 1 for each ticket.
 *     No producer ever waits for another one.
 *  4. the consumer takes slots from c_head on while seq[i & mask] == i + 1
 *     (a load fence after the scan orders the slot copies after it), copies
 *     them, a release fence, then stores c_head (handing the slots back).
 * A preempted producer now leaves a hole at its ticket: the consumer stops
 * there (FIFO), the others' later slots wait behind it, and the producers
 * themselves carry on until the ring is full. seq needs no reset: a slot's
 * stale value is the previous lap's t + 1 - capacity (init writes that for
 * lap -1), never t + 1 as capacity <= 2^24 < 2^32.
 *
 * The ring stores aether_msg values, so a send is one CAS plus a 32-byte
 * copy and one seq store; no allocation. Under TSan the ring's own index
 * traffic (inline assembly) is invisible, so each send releases and each
 * receive acquires the mailbox address, and the slot copies are hidden from
 * TSan (see tsan.h).
 */
#include "mailbox.h"

#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "tsan.h"

AETHER_STATIC_ASSERT(sizeof(aether_msg) == 32, "a message is half a cache line");
AETHER_STATIC_ASSERT(AETHER_MAILBOX_CAPACITY_MAX <= (1u << 24),
                     "a slot's stale sequence number never equals a current ticket + 1");

aether_status aether_mailbox_init(aether_mailbox *mb, uint32_t capacity)
{
    if (capacity < AETHER_MAILBOX_CAPACITY_MIN || capacity > AETHER_MAILBOX_CAPACITY_MAX ||
        !aether_is_power_of_two(capacity))
        return AETHER_EINVAL;
    mb->slots = aligned_alloc(64, (size_t)capacity * sizeof(aether_msg));
    size_t seq_bytes = (size_t)capacity * sizeof(*mb->seq);
    mb->seq = aligned_alloc(64, seq_bytes < 64 ? 64 : seq_bytes);
    if (mb->slots == NULL || mb->seq == NULL) {
        free(mb->slots);
        free(mb->seq);
        mb->slots = NULL;
        mb->seq = NULL;
        return AETHER_ENOMEM;
    }
    /* Slot i's "previous lap" committed: ticket i - capacity, seq i - capacity + 1. */
    for (uint32_t i = 0; i < capacity; i++)
        mb->seq[i] = i - capacity + 1u;
    ck_ring_init(&mb->ring, capacity);
    mb->capacity = capacity;
    mb->full_count = 0;
    return AETHER_OK;
}

void aether_mailbox_fini(aether_mailbox *mb)
{
    free(mb->slots);
    free(mb->seq);
    mb->slots = NULL;
    mb->seq = NULL;
}

/* Step 1: ck's _ck_ring_enqueue_reserve_mp for `n` slots at once: one CAS
 * on p_head claims as many as fit, up to n. Returns how many (0: full) and
 * sets *ticket to the first. */
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

/* Step 3: the slot copies before the sequence numbers that publish them;
 * each slot on its own, so no producer waits for another. */
static void commit_slots(aether_mailbox *mb, unsigned int ticket, uint32_t count)
{
    const unsigned int mask = mb->ring.mask;
    ck_pr_fence_store();
    for (uint32_t i = 0; i < count; i++) /* bounded: count <= capacity - 1 */
        ck_pr_store_uint(&mb->seq[(ticket + i) & mask], ticket + i + 1u);
}

aether_status aether_mailbox_send_mpsc(aether_mailbox *mb, const aether_msg *msg)
{
    unsigned int ticket;
    AETHER_TSAN_RELEASE(mb);
    AETHER_TSAN_IGNORE_BEGIN();
    uint32_t k = reserve_mp(mb, 1, &ticket);
    if (AETHER_UNLIKELY(k == 0)) {
        AETHER_TSAN_IGNORE_END();
        __atomic_fetch_add(&mb->full_count, 1, __ATOMIC_RELAXED);
        return AETHER_EFULL;
    }
    mb->slots[ticket & mb->ring.mask] = *msg;
    commit_slots(mb, ticket, 1);
    AETHER_TSAN_IGNORE_END();
    return AETHER_OK;
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
        commit_slots(mb, ticket, k);
    }
    AETHER_TSAN_IGNORE_END();
    if (k < n)
        __atomic_fetch_add(&mb->full_count, 1, __ATOMIC_RELAXED);
    return k;
}

uint32_t aether_mailbox_recv_sc(aether_mailbox *mb, aether_msg *out, uint32_t max)
{
    /* Step 4, a batch at a time: the committed run of slots from c_head,
     * one c_head store per call, not per message. */
    const unsigned int mask = mb->ring.mask;
    AETHER_TSAN_IGNORE_BEGIN();
    unsigned int consumer = ck_pr_load_uint(&mb->ring.c_head);
    uint32_t n = 0;
    if (max > mask)
        max = mask; /* never more than the ring holds */
    while (n < max && ck_pr_load_uint(&mb->seq[(consumer + n) & mask]) == consumer + n + 1u)
        n++;
    if (n > 0) {
        ck_pr_fence_load(); /* the slots after their sequence numbers */
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

bool aether_mailbox_ready_sc(const aether_mailbox *mb)
{
    AETHER_TSAN_IGNORE_BEGIN();
    unsigned int consumer = ck_pr_load_uint(&mb->ring.c_head);
    bool ready = ck_pr_load_uint(&mb->seq[consumer & mb->ring.mask]) == consumer + 1u;
    AETHER_TSAN_IGNORE_END();
    return ready;
}

uint32_t aether_mailbox_depth(const aether_mailbox *mb)
{
    /* Reserved, committed or not; p_head is read second, so never below
     * c_head. */
    unsigned int c = ck_pr_load_uint(&mb->ring.c_head);
    ck_pr_fence_load();
    unsigned int p = ck_pr_load_uint(&mb->ring.p_head);
    return p - c;
}
