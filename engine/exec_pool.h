/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_pool.h: the thread-pool executor (engine layer).
 *
 * `workers` threads (default: one per online core) take scheduled actors from
 * one bounded many-producer many-consumer run queue (ck_ring) and run a batch
 * of each (again, up to 16 runs, while no other actor waits). A worker
 * with nothing to do spins as long as spinning has lately paid (an adaptive
 * bound, exec_pool.c), then parks on a
 * condition variable; a schedule wakes one parked worker only if there is
 * one (no syscall on the busy path). The workers fire the timers on the real
 * clock themselves (before each run; a parked worker wakes at the earliest
 * deadline): a pool of N workers is N threads, no timer thread. Every
 * worker registers itself with RCU, so handlers may read and
 * publish snapshots.
 *
 * Threading: create/start/stop/destroy from one controlling thread, never
 * from a worker. Many processes' worth of nodes share one pool: the run queue
 * holds each actor at most once, so its capacity (max_actors) bounds it.
 */
#ifndef AETHER_EXEC_POOL_H
#define AETHER_EXEC_POOL_H

#include <stdint.h>

#include "executor.h"

typedef struct aether_pool_config {
    uint32_t workers;    /* 0 = number of online cores */
    uint32_t max_actors; /* 0 = 4096; rounded up to a power of two */
    uint32_t spin_iterations; /* the ceiling of the adaptive idle spin before parking
                                 (exec_pool.c, Idle spin); 0 = default 2000 */
    uint32_t nice_increment;  /* 0 = the creator's priority; else each worker lowers its own
                                 by this much (aether_thread_lower_priority): a pool of bulk
                                 work that must yield the CPU to latency-bound threads */
} aether_pool_config;

/* The workers of a pool that runs the actors of one node (a process of one
 * node over NATS): one per online core, at most AETHER_POOL_NODE_WORKERS_MAX.
 * Over NATS it runs the cluster and lease actors (the assign actor has a
 * bulk executor of its own, the store actor's two lanes an I/O one each): a third worker
 * would only add a thread (docs/tuning.md). */
#define AETHER_POOL_NODE_WORKERS_MAX 2u
uint32_t aether_pool_node_workers(void);

aether_status aether_pool_create(const aether_pool_config *cfg, aether_executor **out);
/* Starts the workers. AETHER_ESTATE if already started or stopped. */
aether_status aether_pool_start(aether_executor *ex);
/* Workers finish their current batch and exit; timers stop. Queued messages
 * stay in mailboxes until their actors are destroyed. A stopped pool does not
 * restart. Idempotent. */
void aether_pool_stop(aether_executor *ex);
uint32_t aether_pool_workers(const aether_executor *ex);

#endif
