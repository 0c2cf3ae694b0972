/* SPDX-License-Identifier: Apache-2.0 */
/*
 * thread.c: threads that block every signal (engine layer; thread.h).
 */
#include "thread.h"

#include "assertion.h"

void aether_signals_block_all(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    int rc = pthread_sigmask(SIG_BLOCK, &all, old);
    AETHER_ASSERT(rc == 0); /* fails only for a bad `how` */
}

void aether_signals_restore(const sigset_t *old)
{
    int rc = pthread_sigmask(SIG_SETMASK, old, NULL);
    AETHER_ASSERT(rc == 0);
}

int aether_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t old;
    aether_signals_block_all(&old);
    int rc = pthread_create(t, NULL, fn, arg);
    aether_signals_restore(&old);
    return rc;
}
