/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_snapshot.c: RCU snapshot slots (engine/snapshot.h): publication,
 * lazy registration, and republishing while readers read.
 * AETHER_TEST_LABELS: concurrency
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "snapshot.h"

#define MAGIC_LIVE UINT64_C(0x5ca1ab1e5ca1ab1e)
#define MAGIC_DEAD UINT64_C(0xdeaddeaddeaddead)
#define WORDS 32

typedef struct obj {
    aether_snapshot hdr; /* first */
    uint64_t magic;
    uint64_t version;
    uint64_t words[WORDS]; /* all equal to version: a torn object shows */
} obj;

static uint64_t freed; /* atomic */

static void obj_free(aether_snapshot *s)
{
    obj *o = (obj *)s;
    o->magic = MAGIC_DEAD;
    __atomic_add_fetch(&freed, 1, __ATOMIC_RELAXED);
    free(o);
}

static obj *obj_new(uint64_t version)
{
    obj *o = malloc(sizeof(*o));
    CU_ASSERT_FATAL(o != NULL);
    o->hdr.free_fn = obj_free;
    o->magic = MAGIC_LIVE;
    o->version = version;
    for (int i = 0; i < WORDS; i++)
        o->words[i] = version;
    return o;
}

static void test_publish_and_read(void)
{
    aether_snapshot_slot slot;
    aether_snapshot_slot_init(&slot);
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    aether_rcu_read_lock();
    CU_ASSERT_PTR_NULL(aether_snapshot_current(&slot));
    aether_rcu_read_unlock();
    aether_snapshot_publish(&slot, &obj_new(1)->hdr);
    aether_snapshot_publish(&slot, &obj_new(2)->hdr);
    aether_rcu_read_lock();
    const obj *o = (const obj *)aether_snapshot_current(&slot);
    CU_ASSERT_FATAL(o != NULL);
    CU_ASSERT_EQUAL(o->version, 2);
    aether_rcu_read_unlock();
    aether_rcu_barrier();
    CU_ASSERT_EQUAL(__atomic_load_n(&freed, __ATOMIC_RELAXED), 1);
    aether_snapshot_slot_fini(&slot);
    aether_rcu_barrier();
    CU_ASSERT_EQUAL(__atomic_load_n(&freed, __ATOMIC_RELAXED), 2);
}

#define READERS 2
#define PUBLISHES 5000u

typedef struct reader_ctx {
    aether_snapshot_slot *slot;
    uint32_t *stop;
    uint64_t reads;
    uint64_t torn;
    uint64_t backwards;
} reader_ctx;

static void *reader(void *arg)
{
    reader_ctx *r = arg;
    uint64_t last = 0;
    /* No explicit registration: the first read lock does it. A reader
     * that a loaded machine did not schedule before the publisher finished
     * still reads once (the slot holds the last object until fini, after
     * the join), so reads > 0 judges the readers, not the scheduler. */
    while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE) || r->reads == 0) {
        aether_rcu_read_lock();
        const obj *o = (const obj *)aether_snapshot_current(r->slot);
        if (o != NULL) {
            if (o->magic != MAGIC_LIVE)
                r->torn++;
            for (int i = 0; i < WORDS; i++)
                if (o->words[i] != o->version)
                    r->torn++;
            if (o->version < last)
                r->backwards++;
            last = o->version;
            r->reads++;
        }
        aether_rcu_read_unlock();
    }
    return NULL;
}

static void test_republish_while_reading(void)
{
    aether_snapshot_slot slot;
    aether_snapshot_slot_init(&slot);
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    uint32_t stop = 0;
    pthread_t th[READERS];
    reader_ctx ctx[READERS];
    for (int i = 0; i < READERS; i++) {
        ctx[i] = (reader_ctx){ .slot = &slot, .stop = &stop };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, reader, &ctx[i]), 0);
    }
    for (uint64_t v = 1; v <= PUBLISHES; v++) {
        aether_snapshot_publish(&slot, &obj_new(v)->hdr);
        if (v % 64 == 0)
            sched_yield();
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    uint64_t reads = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(ctx[i].torn, 0);
        CU_ASSERT_EQUAL(ctx[i].backwards, 0);
        reads += ctx[i].reads;
    }
    CU_ASSERT(reads > 0);
    aether_snapshot_slot_fini(&slot);
    aether_rcu_barrier();
    /* Every object published was retired exactly once. */
    CU_ASSERT_EQUAL(__atomic_load_n(&freed, __ATOMIC_RELAXED), PUBLISHES);
}

static void test_nested_read_sections(void)
{
    aether_snapshot_slot slot;
    aether_snapshot_slot_init(&slot);
    aether_snapshot_publish(&slot, &obj_new(7)->hdr);
    aether_rcu_read_lock();
    aether_rcu_read_lock();
    const obj *o = (const obj *)aether_snapshot_current(&slot);
    CU_ASSERT_EQUAL(o->version, 7);
    aether_rcu_read_unlock();
    CU_ASSERT_EQUAL(o->magic, MAGIC_LIVE);
    aether_rcu_read_unlock();
    aether_snapshot_slot_fini(&slot);
    aether_rcu_barrier();
}

/* aether_snapshot_replace with several writers: each adds 1 to the
 * current version by compare-and-set; none is lost, every retired object
 * is freed once, and a replace naming a stale object fails. */
#define REPLACE_WRITERS 4
#define REPLACE_ROUNDS 2000

static void *replace_writer(void *arg)
{
    aether_snapshot_slot *slot = arg;
    for (int i = 0; i < REPLACE_ROUNDS; i++) { /* bounded */
        for (;;) { /* bounded by the other writers' progress */
            aether_rcu_read_lock();
            const obj *cur = (const obj *)aether_snapshot_current(slot);
            obj *next = obj_new(cur->version + 1);
            bool done = aether_snapshot_replace(slot, &cur->hdr, &next->hdr);
            aether_rcu_read_unlock();
            if (done)
                break;
            free(next);
        }
    }
    aether_rcu_unregister_thread();
    return NULL;
}

static void test_replace_by_several_writers(void)
{
    aether_snapshot_slot slot;
    aether_snapshot_slot_init(&slot);
    __atomic_store_n(&freed, 0, __ATOMIC_RELAXED);
    obj *stale = obj_new(0);
    CU_ASSERT_TRUE(aether_snapshot_replace(&slot, NULL, &stale->hdr));
    obj *extra = obj_new(99);
    CU_ASSERT_FALSE(aether_snapshot_replace(&slot, NULL, &extra->hdr)); /* not NULL any more */
    pthread_t th[REPLACE_WRITERS];
    for (int i = 0; i < REPLACE_WRITERS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, replace_writer, &slot), 0);
    for (int i = 0; i < REPLACE_WRITERS; i++)
        pthread_join(th[i], NULL);
    aether_rcu_read_lock();
    const obj *o = (const obj *)aether_snapshot_current(&slot);
    CU_ASSERT_EQUAL(o->version, (uint64_t)REPLACE_WRITERS * REPLACE_ROUNDS);
    aether_rcu_read_unlock();
    free(extra);
    aether_snapshot_slot_fini(&slot);
    aether_rcu_barrier();
    CU_ASSERT_EQUAL(__atomic_load_n(&freed, __ATOMIC_RELAXED), (uint64_t)REPLACE_WRITERS * REPLACE_ROUNDS + 1);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(publish_and_read),
    AETHER_TEST(republish_while_reading),
    AETHER_TEST(nested_read_sections),
    AETHER_TEST(replace_by_several_writers),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("snapshot", NULL, NULL, tests);
