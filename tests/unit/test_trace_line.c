/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trace_line.c: the harnesses' one reader of `aether-node --trace`
 * lines (tests/support/trace_line.h; tests layer).
 *
 * EVENT lines are built with aether_event_format, the function aether-node
 * itself prints them with, so a change of the event text that the reader
 * does not follow fails here rather than in a bench that silently waits.
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "events.h"
#include "node_id.h"
#include "trace_line.h"

/* "T <us> <node> EVENT <Type> <aether_event_format line>" into buf. */
static void event_line(char *buf, size_t cap, uint64_t us, const char *printer, const aether_event *e)
{
    char text[1024];
    CU_ASSERT_FATAL(aether_event_format(e, text, sizeof(text)) > 0);
    snprintf(buf, cap, "T %llu %s EVENT %s %s", (unsigned long long)us, printer,
             aether_event_type_name(e->type), text);
}

static void set_id(aether_node_id *id, const char *s)
{
    CU_ASSERT_FATAL(aether_node_id_from_cstr(s, id, NULL) == AETHER_OK);
}

static void test_map_and_leader(void)
{
    char line[256];
    trl_line l;
    snprintf(line, sizeof(line), "T 1234 n1 MAP 7 3 gen=00000000000000ab");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_EQUAL(l.kind, TRL_MAP);
    CU_ASSERT_EQUAL(l.us, 1234u);
    CU_ASSERT_STRING_EQUAL(l.node, "n1");
    CU_ASSERT_EQUAL(l.num, 7u);
    CU_ASSERT_EQUAL(l.term, 3u);

    snprintf(line, sizeof(line), "T 99 n2 LEADER n3 4 gen=00000000000000ab");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_EQUAL(l.kind, TRL_LEADER);
    CU_ASSERT_STRING_EQUAL(l.leader, "n3");
    CU_ASSERT_EQUAL(l.num, 4u);
    snprintf(line, sizeof(line), "T 99 n2 LEADER - 5");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_PTR_NULL(l.leader);

    snprintf(line, sizeof(line), "T 5 n1 STATS decoded=3");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_EQUAL(l.kind, TRL_OTHER);
}

static void test_not_trace_and_malformed(void)
{
    static const char *const other[] = { "", "+12ms n1 NodeJoined", "Trace", "T" };
    static const char *const bad[] = { "T x n1 MAP 1", "T 1 n1", "T 1 n1 MAP", "T 1 n1 MAP v2",
                                       "T 1 n1 MAP 2 x", "T 1 n1 LEADER n2", "T 1 n1 LEADER n2 -1",
                                       "T 1 n1 EVENT", "T 18446744073709551616 n1 MAP 1" };
    char line[128];
    trl_line l;
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        snprintf(line, sizeof(line), "%s", other[i]);
        CU_ASSERT_EQUAL(trl_parse(line, &l), TRL_NOT_TRACE);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "%s", bad[i]);
        if (trl_parse(line, &l) != TRL_MALFORMED)
            CU_FAIL(bad[i]);
    }
}

/* Node events: the emitter is the first node=, the subject the last. */
static void test_event_fields(void)
{
    aether_event e;
    memset(&e, 0, sizeof(e));
    e.type = AETHER_EVT_NODE_JOINED;
    e.term = 6;
    e.seq = 11;
    set_id(&e.node, "n1");
    set_id(&e.data.node_joined.node, "n5");
    snprintf(e.data.node_joined.address, sizeof(e.data.node_joined.address), "n5");
    char line[1200];
    event_line(line, sizeof(line), 777, "n2", &e);
    trl_line l;
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_EQUAL(l.kind, TRL_EVENT);
    CU_ASSERT_STRING_EQUAL(l.node, "n2");
    CU_ASSERT_STRING_EQUAL(l.type, "NodeJoined");
    CU_ASSERT_EQUAL(l.term, 6u);
    CU_ASSERT_STRING_EQUAL(trl_first(&l, "node"), "n1");
    CU_ASSERT_STRING_EQUAL(trl_last(&l, "node"), "n5");
    CU_ASSERT_STRING_EQUAL(trl_first(&l, "seq"), "11");
    CU_ASSERT_PTR_NULL(trl_first(&l, "no_such_key"));
    CU_ASSERT_PTR_NULL(trl_first(&l, "nod")); /* a key is matched whole */

    memset(&e, 0, sizeof(e));
    e.type = AETHER_EVT_LEADERSHIP_LOST;
    e.term = 8;
    set_id(&e.node, "n3");
    set_id(&e.data.leadership_lost.leader, "n3");
    e.data.leadership_lost.term = 8;
    snprintf(e.data.leadership_lost.reason, sizeof(e.data.leadership_lost.reason), "lease lost at renewal");
    event_line(line, sizeof(line), 778, "n3", &e);
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    CU_ASSERT_STRING_EQUAL(trl_last(&l, "leader"), "n3");
    char reason[64];
    trl_reason(&l, reason, sizeof(reason));
    CU_ASSERT_STRING_EQUAL(reason, "lease lost at renewal");

    memset(&e, 0, sizeof(e));
    e.type = AETHER_EVT_REBALANCE_STARTED;
    set_id(&e.node, "n3");
    snprintf(e.data.rebalance_started.reason, sizeof(e.data.rebalance_started.reason), "brake");
    e.data.rebalance_started.from_version = 41;
    event_line(line, sizeof(line), 779, "n3", &e);
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_reason(&l, reason, sizeof(reason));
    CU_ASSERT_STRING_EQUAL(reason, "brake");
    uint64_t v = 0;
    CU_ASSERT_TRUE(trl_u64(trl_last(&l, "from_version"), &v));
    CU_ASSERT_EQUAL(v, 41u);
}

/* The view: the newest map, the leader from LEADER lines, and from a
 * LeaseRenewed only when it says something newer. */
static void test_view(void)
{
    trl_view v;
    memset(&v, 0, sizeof(v));
    char line[1200];
    trl_line l;
    snprintf(line, sizeof(line), "T 100 n4 MAP 5 2");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_view_apply(&v, &l);
    snprintf(line, sizeof(line), "T 101 n4 MAP 4 2"); /* an older map does not go back */
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_view_apply(&v, &l);
    CU_ASSERT_EQUAL(v.map_version, 5u);
    CU_ASSERT_EQUAL(v.map_us, 100u);
    CU_ASSERT_FALSE(v.leader_known);

    aether_event e;
    memset(&e, 0, sizeof(e));
    e.type = AETHER_EVT_LEASE_RENEWED;
    e.term = 2;
    set_id(&e.node, "n1");
    set_id(&e.data.lease_renewed.leader, "n1");
    e.data.lease_renewed.term = 2;
    event_line(line, sizeof(line), 150, "n4", &e);
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_view_apply(&v, &l);
    CU_ASSERT_TRUE(v.leader_known);
    CU_ASSERT_STRING_EQUAL(v.leader, "n1");
    CU_ASSERT_EQUAL(v.term, 2u);
    CU_ASSERT_EQUAL(v.changed_us, 150u);

    snprintf(line, sizeof(line), "T 200 n4 LEADER n2 3");
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_view_apply(&v, &l);
    event_line(line, sizeof(line), 250, "n4", &e); /* a late renewal of term 2 changes nothing */
    CU_ASSERT_EQUAL_FATAL(trl_parse(line, &l), TRL_PARSED);
    trl_view_apply(&v, &l);
    CU_ASSERT_STRING_EQUAL(v.leader, "n2");
    CU_ASSERT_EQUAL(v.term, 3u);
    CU_ASSERT_EQUAL(v.leader_us, 200u);
    CU_ASSERT_EQUAL(v.changed_us, 200u);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(map_and_leader),
    AETHER_TEST(not_trace_and_malformed),
    AETHER_TEST(event_fields),
    AETHER_TEST(view),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("trace_line", NULL, NULL, tests);
