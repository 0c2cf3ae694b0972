/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshot.c: RCU snapshot slots and thread registration (engine layer).
 * See snapshot.h for the protocol and the threading rules.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stddef.h>

#include "assertion.h"
#include "thread.h"

__thread int aether_rcu_registered_;
int aether_rcu_tsan_token_;

static pthread_key_t unregister_key;
static pthread_once_t unregister_once = PTHREAD_ONCE_INIT;

/* Runs at the exit of a thread that registered lazily: liburcu must not keep
 * a dead thread on its reader list (a grace period would wait for it). */
static void unregister_at_exit(void *arg)
{
    (void)arg;
    if (aether_rcu_registered_) {
        urcu_memb_unregister_thread();
        aether_rcu_registered_ = 0;
    }
}

static void make_key(void)
{
    int rc = pthread_key_create(&unregister_key, unregister_at_exit);
    AETHER_ASSERT(rc == 0);
}

void aether_rcu_register_thread(void)
{
    if (aether_rcu_registered_)
        return;
    pthread_once(&unregister_once, make_key);
    urcu_memb_register_thread();
    aether_rcu_registered_ = 1;
    /* Any non-NULL value makes the destructor run at thread exit. */
    pthread_setspecific(unregister_key, (void *)1);
}

void aether_rcu_register_slow_(void) { aether_rcu_register_thread(); }

void aether_rcu_unregister_thread(void)
{
    if (!aether_rcu_registered_)
        return;
    urcu_memb_unregister_thread();
    aether_rcu_registered_ = 0;
    pthread_setspecific(unregister_key, NULL);
}

void aether_rcu_barrier(void)
{
    /* rcu_barrier needs no registration, but must not run inside a read-side
     * section; liburcu checks that itself. */
    urcu_memb_barrier();
}

void aether_rcu_start_reclaimer(void)
{
    sigset_t old;
    aether_signals_block_all(&old);
    (void)urcu_memb_get_default_call_rcu_data();
    aether_signals_restore(&old);
}

static void reclaim(struct rcu_head *head)
{
    aether_snapshot *s = caa_container_of(head, aether_snapshot, rcu);
    /* Every read-side section that could see s ended before this callback. */
    AETHER_TSAN_ACQUIRE(&aether_rcu_tsan_token_);
    s->free_fn(s);
}

void aether_snapshot_slot_init(aether_snapshot_slot *slot) { slot->current = NULL; }

void aether_snapshot_publish(aether_snapshot_slot *slot, aether_snapshot *next)
{
    if (next != NULL)
        AETHER_ASSERT(next->free_fn != NULL);
    /* call_rcu takes a read-side lock internally: the caller must be registered. */
    if (!aether_rcu_registered_)
        aether_rcu_register_slow_();
    /* Everything written into next happens before a reader's acquire. */
    AETHER_TSAN_RELEASE(slot);
    aether_snapshot *old = rcu_xchg_pointer(&slot->current, next);
    /* The writer's own accesses to old (building it, reading it) happen
     * before its reclamation, like every reader's. */
    AETHER_TSAN_RELEASE(&aether_rcu_tsan_token_);
    if (old != NULL)
        urcu_memb_call_rcu(&old->rcu, reclaim);
}

bool aether_snapshot_replace(aether_snapshot_slot *slot, const aether_snapshot *expected,
                             aether_snapshot *next)
{
    AETHER_ASSERT(next != NULL && next->free_fn != NULL);
    if (!aether_rcu_registered_)
        aether_rcu_register_slow_();
    AETHER_TSAN_RELEASE(slot);
    aether_snapshot *old = rcu_cmpxchg_pointer(&slot->current, (aether_snapshot *)expected, next);
    if (old != expected)
        return false;
    AETHER_TSAN_RELEASE(&aether_rcu_tsan_token_);
    if (old != NULL)
        urcu_memb_call_rcu(&old->rcu, reclaim);
    return true;
}

void aether_snapshot_slot_fini(aether_snapshot_slot *slot)
{
    aether_snapshot_publish(slot, NULL);
}
