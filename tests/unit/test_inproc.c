/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_inproc.c: the in-process hub (transport/inproc.h): synchronous
 * delivery, the simulated network on the step executor (delays, loss,
 * FIFO links, duplicates, partitions, timeouts), and the reply routing that
 * keeps a stopped node's answers from reaching it.
 */
#include <stdio.h>
#include <string.h>

#include "cu_test.h"
#include "exec_step.h"
#include "inproc.h"

#define MAX_SEEN 4096

typedef struct recorder {
    aether_executor *ex; /* NULL: no clock */
    uint64_t seq[MAX_SEEN];     /* seq of each event received, in order */
    uint64_t at_ns[MAX_SEEN];
    uint32_t n;
    uint32_t heartbeats, commands, releases;
    bool answer_commands;
} recorder;

static void rec_event(void *arg, const aether_event *e)
{
    recorder *r = arg;
    if (r->n < MAX_SEEN) {
        r->seq[r->n] = e->seq;
        r->at_ns[r->n] = r->ex ? aether_clock_now_ns(aether_executor_clock(r->ex)) : 0;
        r->n++;
    }
}

static void rec_heartbeat(void *arg, const aether_node_id *node, uint64_t inc)
{
    (void)node;
    (void)inc;
    ((recorder *)arg)->heartbeats++;
}

static void rec_command(void *arg, const aether_command *c, aether_reply_fn reply, void *reply_arg)
{
    recorder *r = arg;
    (void)c;
    r->commands++;
    if (r->answer_commands)
        reply(reply_arg, AETHER_OK, "");
    else
        reply(reply_arg, AETHER_ESTATE, "no");
}

static void rec_release(void *arg, const aether_release_ack *a)
{
    (void)a;
    ((recorder *)arg)->releases++;
}

typedef struct answers {
    uint32_t n;
    aether_status last;
} answers;

static void on_answer(void *arg, aether_status st, const char *reason)
{
    (void)reason;
    answers *a = arg;
    a->n++;
    a->last = st;
}

static aether_node_id id_of(const char *s)
{
    aether_node_id id;
    CU_ASSERT_FATAL(aether_node_id_from_cstr(s, &id, NULL) == AETHER_OK);
    return id;
}

static aether_transport *endpoint(aether_inproc_hub *h, const char *name, recorder *r)
{
    aether_node_id id = id_of(name);
    aether_transport *t = NULL;
    CU_ASSERT_FATAL(aether_inproc_endpoint_create(h, &id, &t) == AETHER_OK);
    if (r != NULL) {
        aether_transport_sink sink = { .on_event = rec_event, .on_heartbeat = rec_heartbeat,
                                       .on_command = rec_command, .on_release = rec_release,
                                       .arg = r };
        CU_ASSERT_FATAL(aether_transport_bind(t, &sink) == AETHER_OK);
    }
    return t;
}

static aether_event *event_from(const char *node, uint64_t seq)
{
    aether_event *e = aether_event_create(AETHER_EVT_LEASE_RENEWED);
    CU_ASSERT_FATAL(e != NULL);
    e->node = id_of(node);
    e->term = 1;
    e->seq = seq;
    return e;
}

static aether_inproc_hub *net_hub(aether_executor *ex, const aether_inproc_net_faults *f)
{
    aether_inproc_net_config c = { .executor = ex, .seed = 7, .faults = *f };
    aether_inproc_hub *h = NULL;
    CU_ASSERT_FATAL(aether_inproc_hub_create_net(&c, &h) == AETHER_OK);
    return h;
}

static aether_executor *step(uint64_t seed)
{
    aether_step_config sc = { .seed = seed, .start_ns = AETHER_NS_PER_S };
    aether_executor *ex = NULL;
    CU_ASSERT_FATAL(aether_step_create(&sc, &ex) == AETHER_OK);
    return ex;
}

/* The default hub delivers before publish returns, echo included. */
static void test_sync_delivery(void)
{
    aether_inproc_hub *h = NULL;
    CU_ASSERT_FATAL(aether_inproc_hub_create(&h) == AETHER_OK);
    recorder a = { 0 }, b = { 0 };
    aether_transport *ta = endpoint(h, "a", &a), *tb = endpoint(h, "b", &b);
    aether_event *e = event_from("a", 1);
    CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_OK);
    CU_ASSERT_EQUAL(a.n, 1);
    CU_ASSERT_EQUAL(b.n, 1);
    /* A one-way partition: a's group cannot reach b's; b still reaches a. */
    aether_node_id ib = id_of("b");
    aether_inproc_set_group(h, &ib, 1);
    aether_inproc_set_link(h, 0, 1, false);
    CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_OK);
    CU_ASSERT_EQUAL(b.n, 1);
    aether_event *f = event_from("b", 1);
    CU_ASSERT_EQUAL(aether_transport_publish_event(tb, f), AETHER_OK);
    CU_ASSERT_EQUAL(a.n, 3);
    aether_inproc_heal(h);
    CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_OK);
    CU_ASSERT_EQUAL(b.n, 3);
    aether_event_release(e);
    aether_event_release(f);
    aether_transport_destroy(ta);
    aether_transport_destroy(tb);
    aether_inproc_hub_destroy(h);
}

/* Delays move deliveries later on the simulated clock; each link stays FIFO;
 * the same seed gives the same times. */
static void run_fifo(uint64_t seed, uint64_t *times_out)
{
    aether_executor *ex = step(seed);
    aether_inproc_net_faults f = { .delay_kind = AETHER_INPROC_DELAY_EXPONENTIAL,
                                   .delay_min_us = 100, .delay_mean_us = 2000, .delay_max_us = 20000 };
    aether_inproc_hub *h = net_hub(ex, &f);
    recorder b = { .ex = ex };
    aether_transport *ta = endpoint(h, "a", NULL), *tb = endpoint(h, "b", &b);
    for (uint64_t i = 1; i <= 100; i++) {
        aether_event *e = event_from("a", i);
        CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_OK);
        aether_event_release(e);
    }
    CU_ASSERT_EQUAL(b.n, 0); /* nothing yet: all in flight */
    aether_step_run_for(ex, AETHER_NS_PER_S, 1000000);
    CU_ASSERT_EQUAL(b.n, 100);
    for (uint32_t i = 0; i < b.n; i++) {
        CU_ASSERT_EQUAL(b.seq[i], i + 1); /* FIFO */
        CU_ASSERT(b.at_ns[i] >= AETHER_NS_PER_S + 100000);
        CU_ASSERT(i == 0 || b.at_ns[i] >= b.at_ns[i - 1]);
        times_out[i] = b.at_ns[i];
    }
    aether_transport_destroy(ta);
    aether_transport_destroy(tb);
    aether_inproc_hub_destroy(h);
    aether_executor_destroy(ex);
}

static void test_net_delay_fifo_deterministic(void)
{
    uint64_t t1[100], t2[100];
    run_fifo(1, t1);
    run_fifo(1, t2);
    CU_ASSERT_EQUAL(memcmp(t1, t2, sizeof(t1)), 0);
}

/* Loss, duplicates and reordering show up in the counts and the order. */
static void test_net_loss_dup_reorder(void)
{
    aether_executor *ex = step(3);
    aether_inproc_net_faults f = { .delay_min_us = 100, .delay_max_us = 1000, .loss_ppm = 100000,
                                   .dup_ppm = 100000, .reorder_ppm = 200000 };
    aether_inproc_hub *h = net_hub(ex, &f);
    recorder b = { .ex = ex };
    aether_transport *ta = endpoint(h, "a", NULL), *tb = endpoint(h, "b", &b);
    for (uint64_t i = 1; i <= 1000; i++) {
        aether_event *e = event_from("a", i);
        aether_transport_publish_event(ta, e);
        aether_event_release(e);
    }
    aether_step_run_for(ex, AETHER_NS_PER_S, 1000000);
    aether_inproc_stats st;
    aether_inproc_stats_get(h, &st);
    CU_ASSERT(st.lost > 50 && st.lost < 200);
    CU_ASSERT(st.duplicated > 40);
    CU_ASSERT(st.reordered > 100);
    CU_ASSERT_EQUAL(b.n, 1000 - st.lost + st.duplicated);
    uint32_t inversions = 0;
    for (uint32_t i = 1; i < b.n; i++)
        inversions += b.seq[i] < b.seq[i - 1];
    CU_ASSERT(inversions > 0);
    /* Heal: the same network, clean. */
    aether_inproc_net_faults clean = { .delay_min_us = 100, .delay_max_us = 1000 };
    CU_ASSERT_EQUAL(aether_inproc_set_net_faults(h, &clean), AETHER_OK);
    uint32_t before = b.n;
    for (uint64_t i = 1; i <= 100; i++) {
        aether_event *e = event_from("a", 2000 + i);
        aether_transport_publish_event(ta, e);
        aether_event_release(e);
    }
    aether_step_run_for(ex, AETHER_NS_PER_S, 1000000);
    CU_ASSERT_EQUAL(b.n - before, 100);
    aether_transport_destroy(ta);
    aether_transport_destroy(tb);
    aether_inproc_hub_destroy(h);
    aether_executor_destroy(ex);
}

/* A command to a server that does not answer in time - lost, or its server
 * gone - is answered EUNKNOWN once; a real answer comes once; nothing comes
 * after the sender unbinds. Heartbeats reach only the server. */
static void test_net_commands_answered_once(void)
{
    aether_executor *ex = step(5);
    aether_inproc_net_faults f = { .delay_min_us = 100, .delay_max_us = 500 };
    aether_inproc_hub *h = net_hub(ex, &f);
    recorder srv = { .ex = ex, .answer_commands = true }, cli = { .ex = ex };
    aether_transport *ts = endpoint(h, "s", &srv), *tc = endpoint(h, "c", &cli);
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_REBALANCE_SHARDS;
    cmd.sender = id_of("c");
    answers a = { 0 };
    CU_ASSERT_EQUAL(aether_transport_send_command(tc, &cmd, on_answer, &a), AETHER_ENOTLEADER);
    CU_ASSERT_EQUAL(aether_transport_serve_commands(ts, true), AETHER_OK);
    CU_ASSERT_EQUAL(aether_transport_send_command(tc, &cmd, on_answer, &a), AETHER_OK);
    aether_node_id ic = id_of("c");
    CU_ASSERT_EQUAL(aether_transport_publish_heartbeat(tc, &ic, 1), AETHER_OK);
    aether_step_run_for(ex, 10 * AETHER_NS_PER_MS, 100000);
    CU_ASSERT_EQUAL(a.n, 1);
    CU_ASSERT_EQUAL(a.last, AETHER_OK);
    CU_ASSERT_EQUAL(srv.heartbeats, 1);
    CU_ASSERT_EQUAL(cli.heartbeats, 0);
    /* The server stops serving while the command is in flight: a timeout. */
    CU_ASSERT_EQUAL(aether_transport_send_command(tc, &cmd, on_answer, &a), AETHER_OK);
    aether_transport_serve_commands(ts, false);
    aether_step_run_for(ex, 100 * AETHER_NS_PER_MS, 100000);
    CU_ASSERT_EQUAL(a.n, 1); /* not yet: the timeout is 1 s */
    aether_step_run_for(ex, AETHER_NS_PER_S, 100000);
    CU_ASSERT_EQUAL(a.n, 2);
    CU_ASSERT_EQUAL(a.last, AETHER_EUNKNOWN);
    /* A sender that unbinds hears nothing more. */
    aether_transport_serve_commands(ts, true);
    CU_ASSERT_EQUAL(aether_transport_send_command(tc, &cmd, on_answer, &a), AETHER_OK);
    aether_transport_unbind(tc);
    aether_step_run_for(ex, 2 * AETHER_NS_PER_S, 100000);
    CU_ASSERT_EQUAL(a.n, 2);
    aether_transport_destroy(ts);
    aether_transport_destroy(tc);
    aether_inproc_hub_destroy(h);
    aether_executor_destroy(ex);
}

/* A partition also cuts what is in flight; an isolated sender is told. */
static void test_net_partition_and_isolation(void)
{
    aether_executor *ex = step(9);
    aether_inproc_net_faults f = { .delay_min_us = 1000, .delay_max_us = 1000 };
    aether_inproc_hub *h = net_hub(ex, &f);
    recorder b = { .ex = ex };
    aether_transport *ta = endpoint(h, "a", NULL), *tb = endpoint(h, "b", &b);
    aether_event *e = event_from("a", 1);
    aether_transport_publish_event(ta, e);
    aether_node_id ia = id_of("a");
    aether_inproc_set_group(h, &ia, 2);
    aether_inproc_set_link(h, 2, 0, false);
    aether_step_run_for(ex, 10 * AETHER_NS_PER_MS, 100000);
    CU_ASSERT_EQUAL(b.n, 0);
    aether_inproc_heal(h);
    aether_inproc_set_isolated(h, &ia, true);
    CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_EUNAVAILABLE);
    aether_inproc_set_isolated(h, &ia, false);
    CU_ASSERT_EQUAL(aether_transport_publish_event(ta, e), AETHER_OK);
    aether_step_run_for(ex, 10 * AETHER_NS_PER_MS, 100000);
    CU_ASSERT_EQUAL(b.n, 1);
    aether_event_release(e);
    aether_transport_destroy(ta);
    aether_transport_destroy(tb);
    aether_inproc_hub_destroy(h);
    aether_executor_destroy(ex);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(sync_delivery),
    AETHER_TEST(net_delay_fifo_deterministic),
    AETHER_TEST(net_loss_dup_reorder),
    AETHER_TEST(net_commands_answered_once),
    AETHER_TEST(net_partition_and_isolation),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("inproc", NULL, NULL, tests);
