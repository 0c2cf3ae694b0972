/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_policies.c: the policy table (actors/policies.h). One test per
 * event-driven policy: its trigger gives its reaction, for the right role
 * only. The
 * effect of each reaction on a running cluster is tested in test_cluster.c
 * (named in each test below).
 */
#include "cu_test.h"
#include "policies.h"

static bool says(aether_event_type t, bool leader, bool self, aether_policy_reaction r)
{
    return aether_policy_says(t, leader, self, r);
}

/* Every row names a DESIGN policy, in DESIGN's order, and prescribes
 * something. */
static void test_rows_in_design_order(void)
{
    uint32_t n;
    const aether_policy *p = aether_policies(&n);
    CU_ASSERT_EQUAL(n, 9);
    for (uint32_t i = 0; i < n; i++) {
        CU_ASSERT(p[i].id > 0 && p[i].id < AETHER_POLICY_COUNT_);
        CU_ASSERT(i == 0 || p[i].id >= p[i - 1].id);
        CU_ASSERT_PTR_NOT_NULL(p[i].name);
        CU_ASSERT_PTR_NOT_NULL(p[i].rule);
        CU_ASSERT(p[i].reaction != AETHER_REACT_NONE);
    }
}

/* 1, 2, 4. Driven by a timer or a command, not an event: no row (a row
 * nothing dispatches on is a comment; policies.h names the code).
 * Effect: test_cluster bootstrap_* (exactly one LeaderElected),
 * leader_change_alone_moves_nothing (renewals refused -> LeadershipLost),
 * follower_crash (NodeFailed after the timeout). */
static void test_p1_p2_p4_have_no_row(void)
{
    uint32_t n;
    const aether_policy *p = aether_policies(&n);
    for (uint32_t i = 0; i < n; i++) {
        CU_ASSERT_NOT_EQUAL(p[i].id, AETHER_POLICY_SINGLE_LEADER);
        CU_ASSERT_NOT_EQUAL(p[i].id, AETHER_POLICY_LEASE_RENEWAL);
        CU_ASSERT_NOT_EQUAL(p[i].id, AETHER_POLICY_FAILURE_DETECTION);
    }
}

/* 3. Effect: test_cluster leader_crash, leader_drains_and_steps_down. */
static void test_p3_re_election(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_LEADERSHIP_LOST, false, false, AETHER_REACT_CAMPAIGN_SOON));
    CU_ASSERT_FALSE(says(AETHER_EVT_LEASE_RENEWED, false, false, AETHER_REACT_CAMPAIGN_SOON));
}

/* 5. Effect: test_cluster join, join_burst_gives_one_rebalance. */
static void test_p5_join_rebalance(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_NODE_JOINED, true, false, AETHER_REACT_REBALANCE_DEBOUNCED));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_JOINED, true, false, AETHER_REACT_REBALANCE_NOW));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_JOINED, false, false, AETHER_REACT_REBALANCE_DEBOUNCED));
}

/* 6. Effect: test_cluster follower_crash, half_the_nodes_fail_brake_keeps_i2. */
static void test_p6_failure_rebalance(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_NODE_FAILED, true, false, AETHER_REACT_REBALANCE_NOW));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_FAILED, false, false, AETHER_REACT_REBALANCE_NOW));
}

/* 7. Effect: test_cluster graceful_leave (NodeDraining, shards moved, NodeLeft). */
static void test_p7_drain(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_NODE_DRAINING, true, false, AETHER_REACT_REBALANCE_NOW));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_DRAINING, false, false, AETHER_REACT_REBALANCE_NOW));
}

/* 8. Effect: test_cluster rebalance_command_on_a_balanced_map_moves_nothing,
 * join_burst_gives_one_rebalance. No event outside the topology changes
 * rebalances. */
static void test_p8_stability(void)
{
    for (int t = 1; t < AETHER_EVT_COUNT_; t++) {
        bool topo = t == AETHER_EVT_NODE_JOINED || t == AETHER_EVT_NODE_FAILED ||
                    t == AETHER_EVT_NODE_DRAINING || t == AETHER_EVT_NODE_LEFT;
        bool moves = says((aether_event_type)t, true, false, AETHER_REACT_REBALANCE_NOW) ||
                     says((aether_event_type)t, true, false, AETHER_REACT_REBALANCE_DEBOUNCED);
        CU_ASSERT_EQUAL(moves, topo);
    }
}

/* 9. Effect: test_cluster leader_drains_and_steps_down. */
static void test_p9_step_down(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_NODE_DRAINING, true, true, AETHER_REACT_RESIGN));
    CU_ASSERT_TRUE(says(AETHER_EVT_NODE_FAILED, true, true, AETHER_REACT_RESIGN));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_DRAINING, true, false, AETHER_REACT_RESIGN));
    CU_ASSERT_FALSE(says(AETHER_EVT_NODE_DRAINING, false, true, AETHER_REACT_RESIGN));
}

/* 10. Effect: test_cluster leader_crash_mid_rebalance, leader_change_alone_moves_nothing. */
static void test_p10_take_over(void)
{
    CU_ASSERT_TRUE(says(AETHER_EVT_LEADER_ELECTED, true, true, AETHER_REACT_TAKE_OVER));
    CU_ASSERT_FALSE(says(AETHER_EVT_LEADER_ELECTED, false, false, AETHER_REACT_TAKE_OVER));
}

static CU_TestInfo tests[] = {
    AETHER_TEST(rows_in_design_order),
    AETHER_TEST(p1_p2_p4_have_no_row),
    AETHER_TEST(p3_re_election),
    AETHER_TEST(p5_join_rebalance),
    AETHER_TEST(p6_failure_rebalance),
    AETHER_TEST(p7_drain),
    AETHER_TEST(p8_stability),
    AETHER_TEST(p9_step_down),
    AETHER_TEST(p10_take_over),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("policies", NULL, NULL, tests);
