/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_lockedmap.c: lock-published shard maps for the lookup bench's
 * baselines (bench layer). See baseline_lockedmap.h.
 *
 * Threading: lookups any thread (under the lock of the kind), swap by the one
 * writer thread.
 */
#include "baseline_lockedmap.h"

#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "keyhash.h"

void bench_lockedmap_init(bench_lockedmap *lm, bench_lock_kind kind, aether_shardmap **map)
{
    AETHER_ASSERT(map != NULL && *map != NULL);
    lm->kind = kind;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lm->rw, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&lm->mu, NULL);
    lm->cur = *map;
    lm->retired = NULL;
    lm->retired_count = 0;
    lm->retired_cap = 0;
    *map = NULL;
}

void bench_lockedmap_fini(bench_lockedmap *lm)
{
    aether_shardmap_destroy(lm->cur);
    lm->cur = NULL;
    for (size_t i = 0; i < lm->retired_count; i++)
        aether_shardmap_destroy(lm->retired[i]);
    free(lm->retired);
    lm->retired = NULL;
    pthread_mutex_destroy(&lm->mu);
    pthread_rwlock_destroy(&lm->rw);
}

static inline aether_status lookup(const aether_shardmap *m, uint64_t hash, aether_shard_route *out)
{
    if (AETHER_UNLIKELY(m == NULL))
        return AETHER_ENOTFOUND;
    return aether_route_fill(m, aether_key_shard_of_hash(hash, m->shard_count), out);
}

aether_status bench_lockedmap_route_key(bench_lockedmap *lm, const void *key, size_t len,
                                        aether_shard_route *out)
{
    uint64_t hash = aether_key_hash(key, len);
    aether_status st;
    switch (lm->kind) {
    case BENCH_LOCK_RWLOCK:
        pthread_rwlock_rdlock(&lm->rw);
        st = lookup(lm->cur, hash, out);
        pthread_rwlock_unlock(&lm->rw);
        break;
    case BENCH_LOCK_MUTEX:
        pthread_mutex_lock(&lm->mu);
        st = lookup(lm->cur, hash, out);
        pthread_mutex_unlock(&lm->mu);
        break;
    default:
        st = lookup(__atomic_load_n(&lm->cur, __ATOMIC_ACQUIRE), hash, out);
        break;
    }
    return st;
}

aether_status bench_lockedmap_swap(bench_lockedmap *lm, aether_shardmap **next)
{
    AETHER_ASSERT(next != NULL && *next != NULL);
    aether_shardmap *old;
    if (lm->kind == BENCH_LOCK_NONE) {
        if (lm->retired_count == lm->retired_cap) {
            size_t cap = lm->retired_cap ? lm->retired_cap * 2 : 1024;
            aether_shardmap **r = realloc(lm->retired, cap * sizeof(*r));
            if (r == NULL)
                return AETHER_ENOMEM;
            lm->retired = r;
            lm->retired_cap = cap;
        }
        /* Readers may still be on the old map: keep it until fini. */
        lm->retired[lm->retired_count++] = lm->cur;
        __atomic_store_n(&lm->cur, *next, __ATOMIC_RELEASE);
        *next = NULL;
        return AETHER_OK;
    }
    if (lm->kind == BENCH_LOCK_RWLOCK) {
        pthread_rwlock_wrlock(&lm->rw);
        old = lm->cur;
        lm->cur = *next;
        pthread_rwlock_unlock(&lm->rw);
    } else {
        pthread_mutex_lock(&lm->mu);
        old = lm->cur;
        lm->cur = *next;
        pthread_mutex_unlock(&lm->mu);
    }
    *next = NULL;
    /* No reader can hold old: each one loads the pointer under the lock and
     * is done with the map before it unlocks. */
    aether_shardmap_destroy(old);
    return AETHER_OK;
}
