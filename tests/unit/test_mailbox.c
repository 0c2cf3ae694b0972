/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_mailbox.c: the bounded MPSC mailbox (engine/mailbox.h): single and
 * batch sends, batch receives.
 * AETHER_TEST_LABELS: concurrency
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "cu_test.h"
#include "mailbox.h"

static void test_init_rejects_bad_capacity(void)
{
    aether_mailbox mb;
    CU_ASSERT_EQUAL(aether_mailbox_init(&mb, 0), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_mailbox_init(&mb, 1), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_mailbox_init(&mb, 100), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_mailbox_init(&mb, AETHER_MAILBOX_CAPACITY_MAX * 2), AETHER_EINVAL);
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&mb, 64), AETHER_OK);
    aether_mailbox_fini(&mb);
}

static void test_order_single_producer(void)
{
    aether_mailbox mb;
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&mb, 16), AETHER_OK);
    for (uint64_t round = 0; round < 10; round++) {
        for (uint64_t i = 0; i < 10; i++) {
            aether_msg m = { .type = 7, .arg64 = round * 100 + i, .arg64b = ~i };
            CU_ASSERT_EQUAL(aether_mailbox_send_mpsc(&mb, &m), AETHER_OK);
        }
        CU_ASSERT_EQUAL(aether_mailbox_depth(&mb), 10);
        aether_msg out[16];
        CU_ASSERT_EQUAL_FATAL(aether_mailbox_recv_sc(&mb, out, 16), 10);
        for (uint64_t i = 0; i < 10; i++) {
            CU_ASSERT_EQUAL(out[i].type, 7);
            CU_ASSERT_EQUAL(out[i].arg64, round * 100 + i);
            CU_ASSERT_EQUAL(out[i].arg64b, ~i);
        }
    }
    CU_ASSERT_EQUAL(aether_mailbox_depth(&mb), 0);
    aether_mailbox_fini(&mb);
}

static void test_full_mailbox_error(void)
{
    aether_mailbox mb;
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&mb, 8), AETHER_OK);
    aether_msg m = { .type = 1 };
    for (int i = 0; i < 7; i++) { /* capacity - 1 usable slots, as ck_ring */
        m.arg64 = (uint64_t)i;
        CU_ASSERT_EQUAL(aether_mailbox_send_mpsc(&mb, &m), AETHER_OK);
    }
    m.arg64 = 99;
    CU_ASSERT_EQUAL(aether_mailbox_send_mpsc(&mb, &m), AETHER_EFULL);
    CU_ASSERT_EQUAL(aether_mailbox_send_mpsc(&mb, &m), AETHER_EFULL);
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&mb), 2);
    aether_msg out;
    CU_ASSERT_EQUAL(aether_mailbox_recv_sc(&mb, &out, 1), 1);
    CU_ASSERT_EQUAL(out.arg64, 0);
    CU_ASSERT_EQUAL(aether_mailbox_send_mpsc(&mb, &m), AETHER_OK);
    /* The refused messages were not half-delivered: 6 old + 99. */
    aether_msg all[8];
    CU_ASSERT_EQUAL(aether_mailbox_recv_sc(&mb, all, 8), 7);
    CU_ASSERT_EQUAL(all[5].arg64, 6);
    CU_ASSERT_EQUAL(all[6].arg64, 99);
    aether_mailbox_fini(&mb);
}

#define STRESS_PRODUCERS 4
#define STRESS_PER_PRODUCER 200000u

typedef struct stress_ctx {
    aether_mailbox mb;
    uint32_t start;
} stress_ctx;

typedef struct producer_arg {
    stress_ctx *ctx;
    uint32_t id;
    uint64_t full_retries;
} producer_arg;

static void *producer(void *arg)
{
    producer_arg *pa = arg;
    while (!__atomic_load_n(&pa->ctx->start, __ATOMIC_ACQUIRE))
        ;
    for (uint64_t i = 0; i < STRESS_PER_PRODUCER; i++) {
        aether_msg m = { .type = 1, .arg32 = pa->id, .arg64 = i };
        while (aether_mailbox_send_mpsc(&pa->ctx->mb, &m) == AETHER_EFULL) {
            pa->full_retries++;
            sched_yield();
        }
    }
    return NULL;
}

static void test_multi_producer_stress(void)
{
    stress_ctx ctx = { .start = 0 };
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&ctx.mb, 1024), AETHER_OK);
    pthread_t th[STRESS_PRODUCERS];
    producer_arg args[STRESS_PRODUCERS];
    for (uint32_t i = 0; i < STRESS_PRODUCERS; i++) {
        args[i] = (producer_arg){ &ctx, i, 0 };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, producer, &args[i]), 0);
    }
    __atomic_store_n(&ctx.start, 1, __ATOMIC_RELEASE);
    uint64_t next[STRESS_PRODUCERS] = { 0 };
    uint64_t total = 0, order_errors = 0;
    aether_msg buf[64];
    while (total < (uint64_t)STRESS_PRODUCERS * STRESS_PER_PRODUCER) {
        uint32_t n = aether_mailbox_recv_sc(&ctx.mb, buf, 64);
        if (n == 0)
            sched_yield(); /* like an actor that parks: give producers the core */
        for (uint32_t i = 0; i < n; i++) {
            uint32_t p = buf[i].arg32;
            if (p >= STRESS_PRODUCERS || buf[i].arg64 != next[p])
                order_errors++;
            else
                next[p]++;
        }
        total += n;
    }
    uint64_t retries = 0;
    for (uint32_t i = 0; i < STRESS_PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        retries += args[i].full_retries;
        CU_ASSERT_EQUAL(next[i], STRESS_PER_PRODUCER);
    }
    CU_ASSERT_EQUAL(order_errors, 0);
    CU_ASSERT_EQUAL(aether_mailbox_depth(&ctx.mb), 0);
    /* Every refusal was counted, none silently dropped. */
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&ctx.mb), retries);
    aether_mailbox_fini(&ctx.mb);
}

/* A batch send takes what fits, a prefix in order, counts one refusal, and
 * copies correctly across the ring's wrap-around. */
static void test_batch_send_prefix_when_full(void)
{
    aether_mailbox mb;
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&mb, 8), AETHER_OK); /* 7 usable */
    aether_msg in[16], out[16];
    for (uint32_t i = 0; i < 16; i++)
        in[i] = (aether_msg){ .type = 3, .arg32 = i, .arg64 = 100 + i, .arg64b = ~(uint64_t)i };
    CU_ASSERT_EQUAL(aether_mailbox_send_batch_mpsc(&mb, in, 0), 0);
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&mb), 0);
    CU_ASSERT_EQUAL(aether_mailbox_send_batch_mpsc(&mb, in, 5), 5);
    CU_ASSERT_EQUAL(aether_mailbox_send_batch_mpsc(&mb, in + 5, 5), 2); /* room for 2 */
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&mb), 1);
    CU_ASSERT_EQUAL(aether_mailbox_send_batch_mpsc(&mb, in + 7, 3), 0);
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&mb), 2);
    CU_ASSERT_EQUAL(aether_mailbox_depth(&mb), 7);
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_recv_sc(&mb, out, 16), 7);
    for (uint32_t i = 0; i < 7; i++) {
        CU_ASSERT_EQUAL(out[i].arg32, i);
        CU_ASSERT_EQUAL(out[i].arg64, 100 + i);
        CU_ASSERT_EQUAL(out[i].arg64b, ~(uint64_t)i);
    }
    /* Indices now at 7: a batch of 6 wraps after one slot, and a receive
     * of it wraps too (partly, then the rest). */
    for (uint32_t round = 0; round < 5; round++) {
        CU_ASSERT_EQUAL(aether_mailbox_send_batch_mpsc(&mb, in + round, 6), 6);
        CU_ASSERT_EQUAL_FATAL(aether_mailbox_recv_sc(&mb, out, 4), 4);
        CU_ASSERT_EQUAL_FATAL(aether_mailbox_recv_sc(&mb, out + 4, 16), 2);
        for (uint32_t i = 0; i < 6; i++)
            CU_ASSERT_EQUAL(out[i].arg64, 100 + round + i);
    }
    CU_ASSERT_EQUAL(aether_mailbox_depth(&mb), 0);
    aether_mailbox_fini(&mb);
}

/* Producers mixing batch and single sends: per-producer order holds and the
 * messages of one batch call come out back to back (one reservation). */
#define BATCH_PRODUCERS 4
#define BATCH_PER_PRODUCER 200000u
#define BATCH_LEN_MAX 48u

static void *batch_producer(void *arg)
{
    producer_arg *pa = arg;
    while (!__atomic_load_n(&pa->ctx->start, __ATOMIC_ACQUIRE))
        ;
    aether_msg batch[BATCH_LEN_MAX];
    uint32_t seed = pa->id * 2654435761u + 1;
    for (uint64_t i = 0; i < BATCH_PER_PRODUCER;) {
        seed = seed * 1103515245u + 12345u;
        uint32_t len = 1 + (seed >> 16) % BATCH_LEN_MAX;
        if (len > BATCH_PER_PRODUCER - i)
            len = (uint32_t)(BATCH_PER_PRODUCER - i);
        /* arg64b: position within the call that sends it (0 = first). */
        for (uint32_t j = 0; j < len; j++)
            batch[j] = (aether_msg){ .type = 1, .arg32 = pa->id, .arg64 = i + j, .arg64b = j };
        uint32_t sent = 0;
        while (sent < len) {
            uint32_t k = len == 1 ? (aether_mailbox_send_mpsc(&pa->ctx->mb, batch) == AETHER_OK)
                                  : aether_mailbox_send_batch_mpsc(&pa->ctx->mb, batch + sent, len - sent);
            sent += k;
            if (sent < len) {
                pa->full_retries++;
                for (uint32_t j = sent; j < len; j++) /* the rest is a new call */
                    batch[j].arg64b = j - sent;
                sched_yield();
            }
        }
        i += len;
    }
    return NULL;
}

static void test_batch_send_multi_producer_stress(void)
{
    stress_ctx ctx = { .start = 0 };
    CU_ASSERT_EQUAL_FATAL(aether_mailbox_init(&ctx.mb, 4096), AETHER_OK);
    pthread_t th[BATCH_PRODUCERS];
    producer_arg args[BATCH_PRODUCERS];
    for (uint32_t i = 0; i < BATCH_PRODUCERS; i++) {
        args[i] = (producer_arg){ &ctx, i, 0 };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, batch_producer, &args[i]), 0);
    }
    __atomic_store_n(&ctx.start, 1, __ATOMIC_RELEASE);
    uint64_t next[BATCH_PRODUCERS] = { 0 };
    uint64_t total = 0, order_errors = 0, split_batches = 0;
    aether_msg prev = { .arg32 = UINT32_MAX };
    aether_msg buf[64];
    while (total < (uint64_t)BATCH_PRODUCERS * BATCH_PER_PRODUCER) {
        uint32_t n = aether_mailbox_recv_sc(&ctx.mb, buf, 64);
        if (n == 0)
            sched_yield();
        for (uint32_t i = 0; i < n; i++) {
            uint32_t p = buf[i].arg32;
            if (p >= BATCH_PRODUCERS || buf[i].arg64 != next[p])
                order_errors++;
            else
                next[p]++;
            /* Not the first of its call: the message before it must be its
             * predecessor in the same call, from the same producer. */
            if (buf[i].arg64b > 0 && (prev.arg32 != p || prev.arg64b + 1 != buf[i].arg64b))
                split_batches++;
            prev = buf[i];
        }
        total += n;
    }
    uint64_t retries = 0;
    for (uint32_t i = 0; i < BATCH_PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        retries += args[i].full_retries;
        CU_ASSERT_EQUAL(next[i], BATCH_PER_PRODUCER);
    }
    CU_ASSERT_EQUAL(order_errors, 0);
    CU_ASSERT_EQUAL(split_batches, 0);
    CU_ASSERT_EQUAL(aether_mailbox_depth(&ctx.mb), 0);
    CU_ASSERT_EQUAL(aether_mailbox_full_count(&ctx.mb), retries);
    aether_mailbox_fini(&ctx.mb);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(init_rejects_bad_capacity),
    AETHER_TEST(order_single_producer),
    AETHER_TEST(full_mailbox_error),
    AETHER_TEST(multi_producer_stress),
    AETHER_TEST(batch_send_prefix_when_full),
    AETHER_TEST(batch_send_multi_producer_stress),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("mailbox", NULL, NULL, tests);
