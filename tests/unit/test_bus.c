/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_bus.c: the event bus on the deterministic step executor (tests layer).
 *
 * Subscribers are actors that record what they handle, and functions that
 * record what they are called with. Payload lifetimes are checked with a
 * counting free function; a full mailbox with a two-slot mailbox (one usable
 * slot), whose overflow list takes the rest. Everything runs on the test thread.
 */
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cu_test.h"
#include "exec_step.h"
#include "log.h"
#include "metrics.h"
#include "ref.h"

#define REC_MAX 512

typedef struct recorder {
    uint32_t n;
    uint16_t types[REC_MAX];
    uint64_t args[REC_MAX];
    void *ptrs[REC_MAX];
    uint32_t ref_counts[REC_MAX]; /* payload refcount seen by the handler */
} recorder;

static void record_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    recorder *r = state;
    CU_ASSERT_FATAL(r->n < REC_MAX);
    r->types[r->n] = msg->type;
    r->args[r->n] = msg->arg64;
    r->ptrs[r->n] = msg->ptr;
    r->ref_counts[r->n] = (msg->flags & AETHER_MSG_REF)
        ? __atomic_load_n(&((aether_ref *)msg->ptr)->count, __ATOMIC_RELAXED)
        : 0;
    r->n++;
}

typedef struct payload {
    aether_ref ref; /* first */
    int value;
} payload;

static int payloads_freed;

static void payload_free(aether_ref *ref)
{
    payloads_freed++;
    free((payload *)ref);
}

static payload *payload_new(int value)
{
    payload *p = malloc(sizeof(*p));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    aether_ref_init(&p->ref, payload_free);
    p->value = value;
    return p;
}

static int log_lines;
static char last_log[1024];

/* Counts the bus's own lines (the actor runtime logs full mailboxes too). */
static void capture_sink(void *arg, aether_log_level level, const char *line, int len)
{
    if (strstr(line, " bus: ") == NULL)
        return;
    log_lines++;
    snprintf(last_log, sizeof(last_log), "%s", line);
}

/* A step executor with up to 4 recording actors. */
typedef struct fixture {
    aether_executor *ex;
    aether_actor *actors[4];
    recorder rec[4];
    int n_actors;
} fixture;

static fixture *fx_new(int n_actors, uint32_t mailbox_capacity)
{
    fixture *f = calloc(1, sizeof(*f));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    aether_step_config sc = { .seed = 7 };
    CU_ASSERT_EQUAL_FATAL(aether_step_create(&sc, &f->ex), AETHER_OK);
    for (int i = 0; i < n_actors; i++) {
        char name[16];
        snprintf(name, sizeof(name), "sub%d", i);
        aether_actor_config ac = {
            .name = name,
            .mailbox_capacity = mailbox_capacity,
            .handle = record_handle,
            .state = &f->rec[i],
        };
        CU_ASSERT_EQUAL_FATAL(aether_actor_create(f->ex, &ac, &f->actors[i]), AETHER_OK);
    }
    f->n_actors = n_actors;
    payloads_freed = 0;
    log_lines = 0;
    last_log[0] = '\0';
    aether_log_set_sink(capture_sink, NULL);
    return f;
}

static void fx_run(fixture *f) { aether_step_run_until_idle(f->ex, 100000); }

static void fx_free(fixture *f)
{
    for (int i = 0; i < f->n_actors; i++)
        aether_actor_destroy(f->actors[i]);
    aether_executor_destroy(f->ex);
    free(f);
    aether_log_set_sink(NULL, NULL);
}

static aether_msg msg_of(uint16_t type, uint64_t arg)
{
    aether_msg m = { .type = type, .arg64 = arg };
    return m;
}

static void test_order_per_publisher(void)
{
    fixture *f = fx_new(3, 1024);
    aether_bus *bus = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(NULL, NULL, &bus), AETHER_OK);
    aether_bus_sub_id ids[3];
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(
            aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[i], &ids[i]),
            AETHER_OK);
        CU_ASSERT_NOT_EQUAL(ids[i], 0);
        for (int j = 0; j < i; j++)
            CU_ASSERT_NOT_EQUAL(ids[i], ids[j]);
    }

    /* Publish in rounds and let the seeded scheduler interleave the actors
     * between rounds: each subscriber still sees 0..299 in order. */
    for (uint64_t k = 0; k < 300; k++) {
        aether_msg m = msg_of(1, k);
        CU_ASSERT_EQUAL(aether_bus_publish(bus, (uint32_t)(k % 64), &m), 0);
        if (k % 50 == 49)
            aether_step_run_one(f->ex);
    }
    fx_run(f);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(f->rec[i].n, 300);
        for (uint32_t k = 0; k < 300; k++)
            CU_ASSERT_EQUAL_FATAL(f->rec[i].args[k], k);
    }
    CU_ASSERT_EQUAL(aether_bus_failed_deliveries(bus), 0);
    CU_ASSERT_EQUAL(log_lines, 0);
    aether_bus_destroy(bus);
    fx_free(f);
}

static void test_topic_mask_filtering(void)
{
    fixture *f = fx_new(3, 128);
    aether_bus *bus = NULL;
    aether_bus_sub_id id;
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(NULL, NULL, &bus), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, UINT64_C(1) << 1, f->actors[0], &id), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, (UINT64_C(1) << 2) | (UINT64_C(1) << 63),
                                               f->actors[1], &id),
                    AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[2], &id),
                    AETHER_OK);
    /* A subscriber that can never receive anything is refused. */
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, 0, f->actors[0], &id), AETHER_EINVAL);

    for (uint32_t t = 0; t < AETHER_BUS_TOPIC_MAX; t++) {
        aether_msg m = msg_of((uint16_t)t, t);
        CU_ASSERT_EQUAL(aether_bus_publish(bus, t, &m), 0);
    }
    fx_run(f);
    CU_ASSERT_EQUAL_FATAL(f->rec[0].n, 1);
    CU_ASSERT_EQUAL(f->rec[0].types[0], 1);
    CU_ASSERT_EQUAL_FATAL(f->rec[1].n, 2);
    CU_ASSERT_EQUAL(f->rec[1].types[0], 2);
    CU_ASSERT_EQUAL(f->rec[1].types[1], 63);
    CU_ASSERT_EQUAL_FATAL(f->rec[2].n, 64);
    for (uint32_t t = 0; t < 64; t++)
        CU_ASSERT_EQUAL(f->rec[2].types[t], t);
    aether_bus_destroy(bus);
    fx_free(f);
}

typedef struct fn_calls {
    int n;
    uint32_t topics[16];
    aether_msg msgs[16];
    uint32_t ref_counts[16];
} fn_calls;

static void fn_record(void *arg, uint32_t topic, const aether_msg *msg)
{
    fn_calls *c = arg;
    CU_ASSERT_FATAL(c->n < 16);
    c->topics[c->n] = topic;
    c->msgs[c->n] = *msg;
    c->ref_counts[c->n] = (msg->flags & AETHER_MSG_REF)
        ? __atomic_load_n(&((aether_ref *)msg->ptr)->count, __ATOMIC_RELAXED)
        : 0;
    c->n++;
}

static void test_function_subscriber(void)
{
    fixture *f = fx_new(1, 64);
    aether_bus *bus = NULL;
    aether_bus_sub_id id_fn, id_actor;
    fn_calls calls = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(NULL, NULL, &bus), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[0], &id_actor),
                    AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_fn(bus, UINT64_C(1) << 5 | UINT64_C(1) << 6, fn_record,
                                            &calls, &id_fn),
                    AETHER_OK);

    aether_msg m = { .type = 9, .arg32 = 3, .arg64 = 77, .arg64b = 88 };
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 5, &m), 0);
    /* Called synchronously on the publisher's thread, with the message as is. */
    CU_ASSERT_EQUAL_FATAL(calls.n, 1);
    CU_ASSERT_EQUAL(calls.topics[0], 5);
    CU_ASSERT_EQUAL(memcmp(&calls.msgs[0], &m, sizeof(m)), 0);
    aether_msg other = msg_of(1, 1);
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 4, &other), 0);
    CU_ASSERT_EQUAL(calls.n, 1);

    /* A function subscriber borrows a REF payload: the bus takes references
     * for the actor delivery only. */
    payload *p = payload_new(5);
    aether_msg rm = { .type = 2, .flags = AETHER_MSG_REF, .ptr = &p->ref };
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 6, &rm), 0);
    CU_ASSERT_EQUAL_FATAL(calls.n, 2);
    CU_ASSERT_PTR_EQUAL(calls.msgs[1].ptr, &p->ref);
    CU_ASSERT_EQUAL(calls.ref_counts[1], 2); /* publisher + queued actor delivery */
    aether_ref_release(&p->ref);
    CU_ASSERT_EQUAL(payloads_freed, 0);
    fx_run(f);
    CU_ASSERT_EQUAL(payloads_freed, 1);
    CU_ASSERT_EQUAL(f->rec[0].n, 3);
    aether_bus_destroy(bus);
    fx_free(f);
}

static void test_ref_payload_freed_once(void)
{
    fixture *f = fx_new(3, 64);
    aether_bus *bus = NULL;
    aether_bus_sub_id id;
    fn_calls calls = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(NULL, NULL, &bus), AETHER_OK);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[i], &id),
                        AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_fn(bus, AETHER_BUS_ALL_TOPICS, fn_record, &calls, &id),
                    AETHER_OK);

    payload *p = payload_new(42);
    aether_msg m = { .type = 3, .flags = AETHER_MSG_REF, .ptr = &p->ref };
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 0, &m), 0);
    CU_ASSERT_EQUAL(p->ref.count, 4); /* the publisher's own + one per actor */
    aether_ref_release(&p->ref);      /* the publisher is done with it */
    CU_ASSERT_EQUAL(payloads_freed, 0);

    /* Run the actors one step at a time: it is freed only after the last. */
    uint32_t handled = 0;
    while (aether_step_run_one(f->ex)) {
        handled = f->rec[0].n + f->rec[1].n + f->rec[2].n;
        CU_ASSERT_EQUAL(payloads_freed, handled == 3 ? 1 : 0);
    }
    CU_ASSERT_EQUAL(handled, 3);
    CU_ASSERT_EQUAL(payloads_freed, 1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(f->rec[i].n, 1);
        CU_ASSERT_PTR_EQUAL(f->rec[i].ptrs[0], &p->ref);
        CU_ASSERT_TRUE(f->rec[i].ref_counts[0] >= 1);
    }

    /* Undelivered: a payload still queued when its actor is destroyed is
     * released by the runtime, still exactly once overall. */
    payload *q = payload_new(43);
    m.ptr = &q->ref;
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 0, &m), 0);
    aether_ref_release(&q->ref);
    CU_ASSERT_EQUAL(payloads_freed, 1);
    aether_bus_destroy(bus);
    fx_free(f); /* destroys the actors with q queued */
    CU_ASSERT_EQUAL(payloads_freed, 2);
}

static void test_full_mailbox_counted(void)
{
    /* Capacity 2 holds one message in the ring; the rest of a burst waits in
     * each actor's overflow list (actor.h step 1b): nothing fails. */
    fixture *f = fx_new(3, 2);
    aether_metrics *metrics = NULL;
    aether_bus *bus = NULL;
    aether_bus_sub_id id;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&metrics), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(metrics, "node=\"a\"", &bus), AETHER_OK);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[i], &id),
                        AETHER_OK);

    payload *p = payload_new(1);
    aether_msg m = { .type = 4, .flags = AETHER_MSG_REF, .ptr = &p->ref };
    for (uint64_t k = 0; k < 3; k++) { /* fills every ring, then lists two each */
        m.arg64 = k;
        CU_ASSERT_EQUAL(aether_bus_publish(bus, (uint32_t)k % 2, &m), 0);
    }
    CU_ASSERT_EQUAL(aether_bus_failed_deliveries(bus), 0);
    CU_ASSERT_EQUAL(log_lines, 0); /* the bus has nothing to say; the actors logged */
    /* Every delivery holds its reference: 1 (publisher) + 3 x 3. */
    CU_ASSERT_EQUAL(p->ref.count, 10);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(aether_actor_full_count(f->actors[i]), 2);
        CU_ASSERT_EQUAL(aether_actor_overflow_depth(f->actors[i]), 2);
    }

    int64_t v = -1;
    CU_ASSERT_EQUAL(aether_metrics_read(metrics, "aether_bus_failed_deliveries_total",
                                        "node=\"a\"", &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL(v, 0);
    fx_run(f);
    for (int i = 0; i < 3; i++) { /* all three, in publish order */
        CU_ASSERT_EQUAL_FATAL(f->rec[i].n, 3);
        for (uint32_t k = 0; k < 3; k++)
            CU_ASSERT_EQUAL(f->rec[i].args[k], k);
    }
    CU_ASSERT_EQUAL(p->ref.count, 1);

    /* One actor is closed: that delivery fails, counted and logged. */
    aether_actor_close(f->actors[1]);
    aether_sim_clock_advance_ns(aether_step_clock(f->ex), 2 * AETHER_NS_PER_S);
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 0, &m), 1);
    CU_ASSERT_EQUAL(aether_bus_failed_deliveries(bus), 1);
    CU_ASSERT_EQUAL(aether_metrics_read(metrics, "aether_bus_failed_deliveries_total",
                                        "node=\"a\"", &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(log_lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(last_log, "WARN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(last_log, "sub1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(last_log, "ECLOSED"));
    fx_run(f);
    CU_ASSERT_EQUAL(f->rec[0].n, 4);
    CU_ASSERT_EQUAL(f->rec[1].n, 3);
    CU_ASSERT_EQUAL(f->rec[2].n, 4);

    aether_ref_release(&p->ref);
    CU_ASSERT_EQUAL(payloads_freed, 1);
    aether_bus_destroy(bus);
    fx_free(f);
    aether_metrics_destroy(metrics);
}

static void test_unsubscribe_stops_delivery(void)
{
    fixture *f = fx_new(2, 64);
    aether_bus *bus = NULL;
    aether_bus_sub_id a0, a1, fid;
    fn_calls calls = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_bus_create(NULL, NULL, &bus), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[0], &a0),
                    AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[1], &a1),
                    AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_subscribe_fn(bus, AETHER_BUS_ALL_TOPICS, fn_record, &calls, &fid),
                    AETHER_OK);

    aether_msg m = msg_of(1, 1);
    aether_bus_publish(bus, 0, &m);
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, a0), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, fid), AETHER_OK);
    m.arg64 = 2;
    aether_bus_publish(bus, 0, &m);
    fx_run(f);
    CU_ASSERT_EQUAL_FATAL(f->rec[0].n, 1);
    CU_ASSERT_EQUAL(f->rec[0].args[0], 1);
    CU_ASSERT_EQUAL(calls.n, 1);
    CU_ASSERT_EQUAL_FATAL(f->rec[1].n, 2);
    CU_ASSERT_EQUAL(f->rec[1].args[1], 2);

    /* Unknown, repeated and zero ids. */
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, a0), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, 0), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, 12345), AETHER_ENOTFOUND);

    /* The last one out: nothing is delivered and nothing fails. */
    CU_ASSERT_EQUAL(aether_bus_unsubscribe(bus, a1), AETHER_OK);
    CU_ASSERT_EQUAL(aether_bus_publish(bus, 0, &m), 0);
    fx_run(f);
    CU_ASSERT_EQUAL(f->rec[1].n, 2);

    /* A re-subscription gets a fresh id. */
    aether_bus_sub_id again;
    CU_ASSERT_EQUAL(aether_bus_subscribe_actor(bus, AETHER_BUS_ALL_TOPICS, f->actors[0], &again),
                    AETHER_OK);
    CU_ASSERT_TRUE(again != a0 && again != a1 && again != fid);
    aether_bus_destroy(bus);
    aether_bus_destroy(NULL);
    fx_free(f);
}

static void test_create_with_bad_labels_fails(void)
{
    aether_metrics *metrics = NULL;
    aether_bus *bus = (aether_bus *)&metrics; /* must be reset to NULL */
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&metrics), AETHER_OK);
    aether_log_set_sink(capture_sink, NULL);
    CU_ASSERT_NOT_EQUAL(aether_bus_create(metrics, "not labels", &bus), AETHER_OK);
    CU_ASSERT_PTR_NULL(bus);
    aether_log_set_sink(NULL, NULL);
    aether_metrics_destroy(metrics);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(order_per_publisher),
    AETHER_TEST(topic_mask_filtering),
    AETHER_TEST(function_subscriber),
    AETHER_TEST(ref_payload_freed_once),
    AETHER_TEST(full_mailbox_counted),
    AETHER_TEST(unsubscribe_stops_delivery),
    AETHER_TEST(create_with_bad_labels_fails),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("bus", NULL, NULL, tests);
