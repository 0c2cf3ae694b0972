/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rng.c: the seeded random source (tests layer).
 *
 * Replays depend on one seed giving one stream on every machine, so the first
 * outputs are pinned to values computed by an independent implementation of
 * splitmix64 + xoshiro256**. Statistical checks use fixed seeds: they are
 * deterministic, never flaky.
 */
#include <string.h>

#include "cu_test.h"
#include "rng.h"

static void test_known_stream(void)
{
    static const uint64_t want0[] = { UINT64_C(0x99ec5f36cb75f2b4), UINT64_C(0xbf6e1f784956452a),
                                      UINT64_C(0x1a5f849d4933e6e0), UINT64_C(0x6aa594f1262d2d2c) };
    static const uint64_t want42[] = { UINT64_C(0x15780b2e0c2ec716), UINT64_C(0x6104d9866d113a7e),
                                       UINT64_C(0xae17533239e499a1), UINT64_C(0xecb8ad4703b360a1) };
    aether_rng r;
    aether_rng_seed(&r, 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(aether_rng_next(&r), want0[i]);
    aether_rng_seed(&r, 42);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(aether_rng_next(&r), want42[i]);
}

static void test_same_seed_same_stream(void)
{
    aether_rng a, b;
    aether_rng_seed(&a, 0xdeadbeef);
    aether_rng_seed(&b, 0xdeadbeef);
    for (int i = 0; i < 10000; i++) {
        CU_ASSERT_EQUAL_FATAL(aether_rng_next(&a), aether_rng_next(&b));
        CU_ASSERT_EQUAL_FATAL(aether_rng_below(&a, 1000), aether_rng_below(&b, 1000));
        CU_ASSERT_EQUAL_FATAL(aether_rng_range(&a, 5, 9), aether_rng_range(&b, 5, 9));
    }
    /* Re-seeding restarts the stream. */
    aether_rng_seed(&a, 7);
    uint64_t first = aether_rng_next(&a);
    aether_rng_next(&a);
    aether_rng_seed(&a, 7);
    CU_ASSERT_EQUAL(aether_rng_next(&a), first);
}

static void test_different_seeds_differ(void)
{
    aether_rng a, b;
    /* Neighbouring seeds must not give related streams. */
    for (uint64_t s = 0; s < 64; s++) {
        aether_rng_seed(&a, s);
        aether_rng_seed(&b, s + 1);
        int equal = 0;
        for (int i = 0; i < 1000; i++)
            equal += aether_rng_next(&a) == aether_rng_next(&b);
        CU_ASSERT_EQUAL(equal, 0);
    }
}

static void test_below_bounds_and_uniformity(void)
{
    aether_rng r;
    aether_rng_seed(&r, 12345);
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL_FATAL(aether_rng_below(&r, 1), 0);

    /* A bound that does not divide 2^64, where modulo would be biased. */
    enum { BUCKETS = 7, DRAWS = 700000 };
    uint32_t hist[BUCKETS] = { 0 };
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = aether_rng_below(&r, BUCKETS);
        CU_ASSERT_FATAL(v < BUCKETS);
        hist[v]++;
    }
    /* Chi-square with 6 degrees of freedom: 22.46 is the p = 0.001 tail. */
    double expect = (double)DRAWS / BUCKETS, chi2 = 0;
    for (int k = 0; k < BUCKETS; k++)
        chi2 += (hist[k] - expect) * (hist[k] - expect) / expect;
    CU_ASSERT_TRUE(chi2 < 22.46);

    /* Huge bounds stay in range; the top half of the range is reached. */
    uint64_t big = (UINT64_C(1) << 63) + 12345, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = aether_rng_below(&r, big);
        CU_ASSERT_FATAL(v < big);
        if (v > hi)
            hi = v;
    }
    CU_ASSERT_TRUE(hi > big / 2);
}

static void test_range_inclusive(void)
{
    aether_rng r;
    aether_rng_seed(&r, 99);
    int seen[3] = { 0 };
    for (int i = 0; i < 3000; i++) {
        uint64_t v = aether_rng_range(&r, 5, 7);
        CU_ASSERT_FATAL(v >= 5 && v <= 7);
        seen[v - 5]++;
    }
    /* Both ends are reached, about a third of the time each. */
    for (int k = 0; k < 3; k++)
        CU_ASSERT_TRUE(seen[k] > 850 && seen[k] < 1150);

    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(aether_rng_range(&r, 42, 42), 42);
    /* The full range does not overflow hi - lo + 1. */
    int top_half = 0;
    for (int i = 0; i < 1000; i++)
        top_half += aether_rng_range(&r, 0, UINT64_MAX) >> 63;
    CU_ASSERT_TRUE(top_half > 400 && top_half < 600);
    uint64_t v = aether_rng_range(&r, UINT64_MAX - 1, UINT64_MAX);
    CU_ASSERT_TRUE(v >= UINT64_MAX - 1);
}

static void test_split_is_independent_and_deterministic(void)
{
    aether_rng p1, p2, c1, c2;
    aether_rng_seed(&p1, 5);
    aether_rng_seed(&p2, 5);
    aether_rng_split(&p1, &c1);
    aether_rng_split(&p2, &c2);
    CU_ASSERT_EQUAL(memcmp(&c1, &c2, sizeof(c1)), 0);
    int equal = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = aether_rng_next(&p1), b = aether_rng_next(&c1);
        equal += a == b;
        CU_ASSERT_EQUAL_FATAL(a, aether_rng_next(&p2));
        CU_ASSERT_EQUAL_FATAL(b, aether_rng_next(&c2));
    }
    CU_ASSERT_EQUAL(equal, 0);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(known_stream),
    AETHER_TEST(same_seed_same_stream),
    AETHER_TEST(different_seeds_differ),
    AETHER_TEST(below_bounds_and_uniformity),
    AETHER_TEST(range_inclusive),
    AETHER_TEST(split_is_independent_and_deterministic),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("rng", NULL, NULL, tests);
