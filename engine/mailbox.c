/*
 * mailbox.c: the bounded MPSC mailbox on ck_ring (engine layer). See
 * mailbox.h for the contract.
 *
 * The ring stores aether_msg values (CK_RING_PROTOTYPE), so a send is one CAS
 * on the producer index plus a 32-byte copy; no allocation. Under TSan the
 * ring's own index traffic (inline assembly) is invisible, so each send
 * releases and each receive acquires the mailbox address, and the slot copies
 * are hidden from TSan (see tsan.h).
 */
#include "mailbox.h"

#include <sched.h>
#include <stdlib.h>

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
    /* ck commits tickets in order, spinning until the previous producer has
     * committed. If that producer was preempted between its reserve and its
     * commit, a pure spin burns our whole time slice while it cannot run (a
     * convoy that took a 4-producer test on 2 cores from milliseconds to
     * minutes). So: spin briefly, then yield the core. */
    for (uint32_t spins = 0; ck_pr_load_uint(&mb->ring.p_tail) != ticket; spins++) {
        if (spins < COMMIT_SPINS)
            ck_pr_stall();
        else
            sched_yield();
    }
    ck_ring_enqueue_commit_mpsc(&mb->ring, ticket);
    AETHER_TSAN_IGNORE_END();
    return AETHER_OK;
}

uint32_t aether_mailbox_recv_sc(aether_mailbox *mb, aether_msg *out, uint32_t max)
{
    uint32_t n = 0;
    AETHER_TSAN_IGNORE_BEGIN();
    while (n < max && ck_ring_dequeue_mpsc_aether_msg(&mb->ring, mb->slots, &out[n]))
        n++;
    AETHER_TSAN_IGNORE_END();
    if (n > 0)
        AETHER_TSAN_ACQUIRE(mb);
    return n;
}

uint32_t aether_mailbox_depth(const aether_mailbox *mb)
{
    return ck_ring_size(&mb->ring);
}
