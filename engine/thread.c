/* SPDX-License-Identifier: Apache-2.0 */
/*
 * thread.c: threads that block every signal (engine layer; thread.h).
 */
#include "thread.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int aether_thread_lower_priority(int by)
{
    AETHER_ASSERT(by >= 0);
    /* PRIO_PROCESS with a thread id: on Linux the nice value is per thread. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno != 0)
        return errno;
    int want = cur + by > 19 ? 19 : cur + by;
    if (want != cur && setpriority(PRIO_PROCESS, tid, want) != 0)
        return errno;
    return 0;
}
