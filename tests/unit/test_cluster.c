/*
 * test_cluster.c: embedded clusters on the step executor (actors/member.h):
 * bootstrap, join, drain, crashes, a paused leader, join bursts and the
 * brake, each checked against the invariants (tests/support/sim_cluster.h).
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "sim_cluster.h"

#define SETTLE_MS 3000

static void expect_clean(sim_cluster *c)
{
    char why[256];
    uint32_t v = sim_violations(c, why, sizeof(why));
    if (v != 0)
        fprintf(stderr, "violation: %s\n", why);
    CU_ASSERT_EQUAL(v, 0);
}

static void expect_settled(sim_cluster *c)
{
    char why[256] = "";
    int rc = sim_settled(c, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "not settled at %llu ms: %s\n", (unsigned long long)sim_now_ms(c), why);
    CU_ASSERT_EQUAL(rc, 0);
}

static sim_cluster *boot(uint64_t seed, uint32_t n, uint32_t shards)
{
    sim_options o = { .seed = seed, .shard_count = shards };
    sim_cluster *c = sim_cluster_create(&o);
    CU_ASSERT_FATAL(c != NULL);
    for (uint32_t i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%u", i);
        CU_ASSERT_FATAL(sim_add(c, id, NULL) != NULL);
    }
    sim_run_ms(c, SETTLE_MS);
    return c;
}

static void check_balance(sim_cluster *c, uint32_t n, uint32_t shards)
{
    uint32_t lo = UINT32_MAX, hi = 0, total = 0;
    for (uint32_t i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%u", i);
        uint32_t k = sim_serving(c, id);
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
        total += k;
    }
    CU_ASSERT_EQUAL(total, shards);
    CU_ASSERT(hi - lo <= 1);
}

static void bootstrap(uint32_t n)
{
    sim_cluster *c = boot(n, n, 64);
    CU_ASSERT_PTR_NOT_NULL(sim_leader(c));
    expect_settled(c);
    check_balance(c, n, 64);
    CU_ASSERT_EQUAL(sim_event_count(c, AETHER_EVT_LEADER_ELECTED), 1);
    CU_ASSERT_EQUAL(sim_event_count(c, AETHER_EVT_NODE_JOINED), n);
    expect_clean(c);
    sim_cluster_destroy(c);
}

static void test_bootstrap_1(void) { bootstrap(1); }
static void test_bootstrap_3(void) { bootstrap(3); }
static void test_bootstrap_10(void) { bootstrap(10); }

static CU_TestInfo tests[] = {
    AETHER_TEST(bootstrap_1),
    AETHER_TEST(bootstrap_3),
    AETHER_TEST(bootstrap_10),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("cluster", NULL, NULL, tests);
