/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_lockedmap.h: the baselines of the lookup bench, the same
 * GetShardOwner(key) work as aether_route_key (routing.h) over the same
 * immutable aether_shardmap, published under a lock instead of RCU (bench
 * layer).
 *
 *   RWLOCK  a reader takes pthread_rwlock_rdlock per lookup; the writer takes
 *           the write lock to swap the pointer (writer-preferring, so the
 *           1000/s writer is not starved by back-to-back readers), then frees
 *           the old map after unlocking.
 *   MUTEX   the same under one pthread_mutex.
 *   NONE    the limit: the same code path minus any synchronisation: the
 *           reader does one pointer load and no read-side section, the writer
 *           swaps the pointer with a plain store (release, which on x86 is
 *           the same mov; so are the reader's acquire load and RCU's
 *           rcu_dereference) and never frees a map while readers may run:
 *           replaced maps are kept on a retired list until fini. That is RCU
 *           minus its read-side bookkeeping and minus reclamation.
 *
 * The lookup mirrors routing.c: hash before the critical section, load the
 * map once, copy the answer out (the same fill as routing.c's fill_route),
 * release. It is an out-of-line call, as aether_route_key is.
 *
 * Threading: lookups from any thread; swap from one writer thread; init/fini
 * with no concurrent users.
 */
#ifndef BENCH_BASELINE_LOCKEDMAP_H
#define BENCH_BASELINE_LOCKEDMAP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "routing.h"
#include "shardmap.h"
#include "status.h"

typedef enum bench_lock_kind {
    BENCH_LOCK_RWLOCK,
    BENCH_LOCK_MUTEX,
    BENCH_LOCK_NONE,
} bench_lock_kind;

typedef struct bench_lockedmap {
    bench_lock_kind kind;    /* immutable after init */
    pthread_rwlock_t rw;     /* RWLOCK */
    pthread_mutex_t mu;      /* MUTEX */
    aether_shardmap *cur;    /* under the lock (NONE: atomic, release/acquire) */
    aether_shardmap **retired; /* NONE: writer-owned, freed by fini */
    size_t retired_count, retired_cap;
} bench_lockedmap;

/* Takes ownership of *map (sets it to NULL). */
void bench_lockedmap_init(bench_lockedmap *lm, bench_lock_kind kind, aether_shardmap **map);
void bench_lockedmap_fini(bench_lockedmap *lm);

/* As aether_route_key. */
aether_status bench_lockedmap_route_key(bench_lockedmap *lm, const void *key, size_t len,
                                        aether_shard_route *out);

/* Writer only: makes *next current and frees the previous map (NONE: keeps
 * it until fini); takes ownership of *next. AETHER_ENOMEM (NONE only, the
 * retired list could not grow): nothing changed, the caller keeps *next. */
aether_status bench_lockedmap_swap(bench_lockedmap *lm, aether_shardmap **next);

#endif
