/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshot.h: RCU-published immutable snapshots (engine layer), on liburcu's
 * "memb" flavour (membarrier-based, no signals, no quiescent-state duty).
 *
 * DESIGN
 *  1. A writer builds a whole new object (it embeds aether_snapshot first) and
 *     calls aether_snapshot_publish: one rcu_xchg_pointer makes it current.
 *  2. Readers, inside aether_rcu_read_lock/unlock, load the current pointer
 *     with aether_snapshot_current (rcu_dereference) and may use the object
 *     until they unlock. They never write to it.
 *  3. The old object is handed to call_rcu and freed by its free_fn after a
 *     grace period, i.e. after every read-side section that could have seen
 *     it has ended. Nobody waits on the write path.
 * The read side is inlined (_LGPL_SOURCE) and costs two thread-local
 * increments and compiler barriers: no atomics, no shared-cache-line writes.
 *
 * Registration: a thread must be registered with RCU before its first read
 * lock. aether_rcu_read_lock registers the calling thread on first use (a
 * thread-local flag) and a thread-exit hook unregisters it, so embedders
 * need not think about it; aether_rcu_register_thread exists for threads that
 * want to do it up front. Pool workers and the step executor's thread are
 * registered by the executor. Read sections nest; never block or call
 * aether_rcu_barrier inside one.
 *
 * Writers: publish may be called from any registered thread, but publishes
 * to one slot must be serialised by the caller (one actor owns each slot).
 */
#ifndef AETHER_SNAPSHOT_H
#define AETHER_SNAPSHOT_H

#include <stdbool.h>
#include <urcu/urcu-memb.h>

#include "tsan.h"

typedef struct aether_snapshot aether_snapshot;
typedef void (*aether_snapshot_free_fn)(aether_snapshot *s);

struct aether_snapshot {
    struct rcu_head rcu;              /* used by call_rcu at retirement */
    aether_snapshot_free_fn free_fn;  /* immutable after publication */
};

typedef struct aether_snapshot_slot {
    aether_snapshot *current; /* RCU-published: rcu_xchg_pointer / rcu_dereference */
} aether_snapshot_slot;

/* Registers the calling thread now (idempotent); unregister before exit is
 * automatic for threads created with pthread_create. */
void aether_rcu_register_thread(void);
void aether_rcu_unregister_thread(void);
/* Waits until every call_rcu callback queued so far has run (shutdown, tests).
 * Not inside a read-side section. */
void aether_rcu_barrier(void);
/* Starts liburcu's reclaimer thread (the default call_rcu thread) now, with
 * every signal blocked (thread.h); otherwise the first call_rcu starts it
 * with its caller's mask. Idempotent; any thread. */
void aether_rcu_start_reclaimer(void);

extern __thread int aether_rcu_registered_;
void aether_rcu_register_slow_(void);
/* A token the reclaim path acquires, for TSan only (see tsan.h). */
extern int aether_rcu_tsan_token_;

static inline void aether_rcu_read_lock(void)
{
    if (__builtin_expect(!aether_rcu_registered_, 0))
        aether_rcu_register_slow_();
    urcu_memb_read_lock();
}

static inline void aether_rcu_read_unlock(void)
{
    /* Everything this reader did happens before the grace period ends. */
    AETHER_TSAN_RELEASE(&aether_rcu_tsan_token_);
    urcu_memb_read_unlock();
}

void aether_snapshot_slot_init(aether_snapshot_slot *slot);
/* Retires the current object (if any) through call_rcu. No readers may start
 * on the slot afterwards. */
void aether_snapshot_slot_fini(aether_snapshot_slot *slot);

/* Makes next current (NULL allowed: "nothing published") and retires the
 * previous object after a grace period. Takes ownership of next. */
void aether_snapshot_publish(aether_snapshot_slot *slot, aether_snapshot *next);

/* The compare-and-set form of publish, for a slot with several writers:
 * makes next current only if expected (NULL: nothing published) still is,
 * and then retires expected after a grace period (true). False: another
 * writer published first; next stays the caller's. Call it inside the
 * read-side section in which expected was read, so expected cannot be
 * reclaimed (and its address reused) before the comparison. */
bool aether_snapshot_replace(aether_snapshot_slot *slot, const aether_snapshot *expected,
                             aether_snapshot *next);
/* Inside a read-side section only: the current object or NULL. */
static inline const aether_snapshot *aether_snapshot_current(const aether_snapshot_slot *slot)
{
    const aether_snapshot *s = rcu_dereference(slot->current);
    AETHER_TSAN_ACQUIRE(slot);
    return s;
}

/* Outside any read-side section, for the slot's single writer only. */
static inline const aether_snapshot *aether_snapshot_current_writer(const aether_snapshot_slot *slot)
{
    return slot->current;
}

#endif
