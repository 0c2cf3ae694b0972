/* SPDX-License-Identifier: Apache-2.0 */
/*
 * thread.h: how the library starts its threads (engine layer).
 *
 * Every thread libaether starts blocks every signal, whatever the mask of
 * the thread that starts it (docs/embedding.md, "Signals"): a program that
 * waits for SIGTERM with sigwait, or handles it on a thread of its own,
 * gets it, and a handler never interrupts an actor. A new thread inherits
 * its creator's mask, so the creator blocks everything around
 * pthread_create and restores its own mask afterwards. Threads started by
 * the libraries we call (nats.c, liburcu's reclaimer) are covered the same
 * way: the call that starts them runs between aether_signals_block_all and
 * aether_signals_restore (transport/aether_node.c).
 *
 * Any thread; no shared state.
 */
#ifndef AETHER_THREAD_H
#define AETHER_THREAD_H

#include <pthread.h>
#include <signal.h>

/* Blocks every signal in the calling thread; *old receives its mask. */
void aether_signals_block_all(sigset_t *old);
/* Puts back the mask aether_signals_block_all saved. */
void aether_signals_restore(const sigset_t *old);

/* pthread_create (default attributes) of a thread that blocks every
 * signal. Returns pthread_create's result (0 on success). */
int aether_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* Bulk work yields the CPU (issue 16): raises the calling thread's nice
 * value by `by` (Linux schedules threads, so only this thread), which any
 * thread may do without privilege and never undo. A thread that does bulk
 * work (decoding, encoding and storing whole maps) lowers itself so that,
 * on a saturated machine, the threads of lease renewals, keep-alives and
 * heartbeats get a core first: they wake, run for microseconds and sleep,
 * and the scheduler weighs a nice-10 thread at about a tenth of a nice-0
 * one. Returns 0, or the errno of getpriority/setpriority (then nothing
 * changed: the thread runs at its old priority, which is only slower). */
#define AETHER_THREAD_BULK_NICE 10
int aether_thread_lower_priority(int by);

#endif
