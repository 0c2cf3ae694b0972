/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_node.c: NodeStatus, NodeInfo and the lease arithmetic (actors/node.h).
 */
#include <string.h>

#include "cu_test.h"
#include "node.h"

static void test_status_names(void)
{
    const char *names[] = {"active", "draining", "left", "failed"};
    for (unsigned i = 0; i < AETHER_NODE_STATUS_COUNT_; i++) {
        CU_ASSERT_STRING_EQUAL(aether_node_status_name((aether_node_status)i), names[i]);
        aether_node_status s = AETHER_NODE_STATUS_COUNT_;
        CU_ASSERT_EQUAL(aether_node_status_parse(names[i], &s, NULL), AETHER_OK);
        CU_ASSERT_EQUAL(s, (aether_node_status)i);
    }
    CU_ASSERT_STRING_EQUAL(aether_node_status_name(AETHER_NODE_STATUS_COUNT_), "?");
    aether_err err = {0};
    aether_node_status s;
    CU_ASSERT_EQUAL(aether_node_status_parse("Active", &s, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'Active'"));
    CU_ASSERT_EQUAL(aether_node_status_parse("", &s, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_node_status_parse("gone", &s, &err), AETHER_EINVAL);
}

static void test_status_healthy_and_transitions(void)
{
    CU_ASSERT_TRUE(aether_node_status_is_healthy(AETHER_NODE_ACTIVE));
    CU_ASSERT_TRUE(aether_node_status_is_healthy(AETHER_NODE_DRAINING));
    CU_ASSERT_FALSE(aether_node_status_is_healthy(AETHER_NODE_LEFT));
    CU_ASSERT_FALSE(aether_node_status_is_healthy(AETHER_NODE_FAILED));

    /* The DESIGN lifecycle, and nothing else. */
    int allowed[4][4] = {{0}};
    allowed[AETHER_NODE_ACTIVE][AETHER_NODE_DRAINING] = 1;
    allowed[AETHER_NODE_DRAINING][AETHER_NODE_LEFT] = 1;
    allowed[AETHER_NODE_ACTIVE][AETHER_NODE_FAILED] = 1;
    allowed[AETHER_NODE_DRAINING][AETHER_NODE_FAILED] = 1;
    for (int f = 0; f < 4; f++)
        for (int t = 0; t < 4; t++)
            CU_ASSERT_EQUAL(aether_node_status_transition_is_valid((aether_node_status)f,
                                                                   (aether_node_status)t),
                            allowed[f][t] != 0);
}

static void test_node_info(void)
{
    aether_node_info info;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_node_info_make(&info, "node-a", "nats://10.0.0.1:4222",
                                                "eu-west-1a", AETHER_NODE_ACTIVE, 3, 1700000000000,
                                                &err),
                          AETHER_OK);
    CU_ASSERT_STRING_EQUAL(info.id.str, "node-a");
    CU_ASSERT_STRING_EQUAL(info.address, "nats://10.0.0.1:4222");
    CU_ASSERT_STRING_EQUAL(info.zone, "eu-west-1a");
    CU_ASSERT_EQUAL(info.incarnation, 3);
    CU_ASSERT_EQUAL(aether_node_info_validate(&info, &err), AETHER_OK);

    /* Zone is optional. */
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n1", "host:1", NULL, AETHER_NODE_DRAINING, 1, 0,
                                          &err),
                    AETHER_OK);
    CU_ASSERT_STRING_EQUAL(info.zone, "");

    /* Each field named in its error. */
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "bad id", "h", NULL, AETHER_NODE_ACTIVE, 1, 0,
                                          &err),
                    AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "id: ", 4), 0);
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", "", NULL, AETHER_NODE_ACTIVE, 1, 0, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "address"));
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", "a\nb", NULL, AETHER_NODE_ACTIVE, 1, 0,
                                          &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "address"));
    char long_addr[300];
    memset(long_addr, 'h', sizeof(long_addr) - 1);
    long_addr[sizeof(long_addr) - 1] = '\0';
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", long_addr, NULL, AETHER_NODE_ACTIVE, 1, 0,
                                          &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "address"));
    long_addr[255] = '\0'; /* exactly 255 is fine */
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", long_addr, NULL, AETHER_NODE_ACTIVE, 1, 0,
                                          &err),
                    AETHER_OK);
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", "h", "eu west", AETHER_NODE_ACTIVE, 1, 0,
                                          &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "zone"));
    CU_ASSERT_EQUAL(aether_node_info_make(&info, "n", "h", NULL, AETHER_NODE_STATUS_COUNT_, 1, 0,
                                          &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "status"));
}

static aether_lease make_lease(void)
{
    aether_lease l;
    memset(&l, 0, sizeof(l));
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("node-a", &l.leader, NULL), AETHER_OK);
    l.term = 42;
    l.ttl_ms = 1000;
    l.safety_margin_ms = 100;
    l.acquired_at_ns = UINT64_C(5000000000);
    l.renewed_at_ns = UINT64_C(7000000000);
    return l;
}

static void test_lease_deadline(void)
{
    aether_lease l = make_lease();
    CU_ASSERT_EQUAL_FATAL(aether_lease_validate(&l, NULL), AETHER_OK);
    /* renewed_at + ttl - margin = 7 s + 1000 ms - 100 ms = 7.9 s */
    CU_ASSERT_EQUAL(aether_lease_deadline_ns(&l), UINT64_C(7900000000));
    CU_ASSERT_TRUE(aether_lease_valid_at(&l, UINT64_C(7000000000)));
    CU_ASSERT_TRUE(aether_lease_valid_at(&l, UINT64_C(7899999999)));
    CU_ASSERT_FALSE(aether_lease_valid_at(&l, UINT64_C(7900000000))); /* strict */
    CU_ASSERT_FALSE(aether_lease_valid_at(&l, UINT64_C(8000000000)));
    /* The deadline follows renewals, not acquisition. */
    l.renewed_at_ns += UINT64_C(250000000);
    CU_ASSERT_EQUAL(aether_lease_deadline_ns(&l), UINT64_C(8150000000));
    /* No margin: exactly renewed_at + ttl. */
    l.safety_margin_ms = 0;
    CU_ASSERT_EQUAL(aether_lease_deadline_ns(&l), UINT64_C(8250000000));
    /* Large values near the representable end still compute exactly. */
    l.ttl_ms = AETHER_LEASE_TTL_MS_MAX;
    l.renewed_at_ns = UINT64_MAX - AETHER_LEASE_TTL_MS_MAX * UINT64_C(1000000);
    CU_ASSERT_EQUAL(aether_lease_validate(&l, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_deadline_ns(&l), UINT64_MAX);
}

static void test_lease_validation(void)
{
    aether_err err = {0};
    aether_lease l = make_lease();
    l.safety_margin_ms = l.ttl_ms;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "safety_margin_ms", 16), 0);

    l = make_lease();
    l.ttl_ms = 0;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "ttl_ms", 6), 0);
    l.ttl_ms = AETHER_LEASE_TTL_MS_MAX + 1;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);

    l = make_lease();
    l.term = AETHER_TERM_NONE;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "term", 4), 0);

    l = make_lease();
    l.renewed_at_ns = l.acquired_at_ns - 1;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "renewed_at_ns", 13), 0);

    l = make_lease();
    l.renewed_at_ns = UINT64_MAX - 1;
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "2^64"));

    l = make_lease();
    memset(&l.leader, 0, sizeof(l.leader));
    CU_ASSERT_EQUAL(aether_lease_validate(&l, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(strncmp(err.msg, "leader", 6), 0);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(status_names),
    AETHER_TEST(status_healthy_and_transitions),
    AETHER_TEST(node_info),
    AETHER_TEST(lease_deadline),
    AETHER_TEST(lease_validation),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("node", NULL, NULL, tests);
