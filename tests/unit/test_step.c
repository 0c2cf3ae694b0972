/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_step.c: the deterministic step executor and timers on the simulated
 * clock (engine/exec_step.h, engine/actor.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "exec_step.h"

#define NACTORS 6
#define TRACE_MAX 4096

typedef struct trace {
    uint64_t hash;      /* FNV-1a over every delivery */
    uint32_t deliveries;
    char text[TRACE_MAX];
    size_t len;
} trace;

static void trace_fn(void *arg, uint64_t now_ns, const aether_actor *a, const aether_msg *m)
{
    trace *t = arg;
    char line[128];
    int n = snprintf(line, sizeof(line), "%llu %s %u %llu\n", (unsigned long long)now_ns,
                     aether_actor_name(a), m->type, (unsigned long long)m->arg64);
    for (int i = 0; i < n; i++) {
        t->hash ^= (unsigned char)line[i];
        t->hash *= UINT64_C(1099511628211);
    }
    if (t->len + (size_t)n < TRACE_MAX) {
        memcpy(t->text + t->len, line, (size_t)n);
        t->len += (size_t)n;
    }
    t->deliveries++;
}

typedef struct gossip {
    aether_actor *actors[NACTORS];
    uint32_t idx;
    struct gossip *all;
} gossip;

/* On each message with hops > 0, forward to two peers chosen from the
 * message itself (not from any randomness): only the schedule can change the
 * order of deliveries. */
static void gossip_handle(void *state, aether_actor *self, const aether_msg *m)
{
    gossip *g = state;
    (void)self;
    if (m->arg32 == 0)
        return;
    for (uint32_t k = 1; k <= 2; k++) {
        uint32_t to = (g->idx + k * (uint32_t)(m->arg64 % 5 + 1)) % NACTORS;
        aether_msg f = { .type = 1, .arg32 = m->arg32 - 1, .arg64 = m->arg64 * 3 + k };
        CU_ASSERT_EQUAL(aether_actor_send(g->all[to].actors[to], &f), AETHER_OK);
    }
}

static uint64_t run_gossip(uint64_t seed, trace *t)
{
    aether_executor *ex;
    aether_step_config cfg = { .seed = seed };
    CU_ASSERT_EQUAL_FATAL(aether_step_create(&cfg, &ex), AETHER_OK);
    memset(t, 0, sizeof(*t));
    t->hash = UINT64_C(14695981039346656037);
    aether_step_set_trace(ex, trace_fn, t);
    gossip g[NACTORS];
    aether_actor *actors[NACTORS];
    for (uint32_t i = 0; i < NACTORS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%u", i);
        g[i].idx = i;
        g[i].all = g;
        aether_actor_config ac = { .name = name, .handle = gossip_handle, .state = &g[i],
                                   .mailbox_capacity = 1024 };
        CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &actors[i]), AETHER_OK);
    }
    for (uint32_t i = 0; i < NACTORS; i++)
        for (uint32_t j = 0; j < NACTORS; j++)
            g[i].actors[j] = actors[j];
    /* Two seeds of gossip and a timer, so time and choice both matter. */
    aether_msg m1 = { .type = 1, .arg32 = 6, .arg64 = 1 };
    aether_msg m2 = { .type = 1, .arg32 = 5, .arg64 = 2 };
    CU_ASSERT_EQUAL(aether_actor_send(actors[0], &m1), AETHER_OK);
    CU_ASSERT_EQUAL(aether_actor_send(actors[3], &m2), AETHER_OK);
    aether_msg tick = { .type = 2, .arg32 = 1, .arg64 = 77 };
    aether_timer_id tid;
    CU_ASSERT_EQUAL(aether_timer_start(actors[1], 5 * AETHER_NS_PER_MS, 10 * AETHER_NS_PER_MS, &tick, &tid), AETHER_OK);
    aether_step_run_until(ex, 100 * AETHER_NS_PER_MS, 1000000);
    for (uint32_t i = 0; i < NACTORS; i++)
        aether_actor_destroy(actors[i]);
    aether_executor_destroy(ex);
    return t->hash;
}

static void test_same_seed_same_trace(void)
{
    static trace a, b;
    uint64_t h1 = run_gossip(42, &a);
    uint64_t h2 = run_gossip(42, &b);
    CU_ASSERT_EQUAL(h1, h2);
    CU_ASSERT_EQUAL(a.deliveries, b.deliveries);
    CU_ASSERT_EQUAL(a.len, b.len);
    CU_ASSERT(memcmp(a.text, b.text, a.len) == 0);
    /* 2^7-1 + 2^6-1 gossip deliveries plus 10 ticks (each forwarding 2). */
    CU_ASSERT_EQUAL(a.deliveries, 127 + 63 + 10 * 3);
}

static void test_different_seeds_different_interleavings(void)
{
    static trace t;
    uint64_t hashes[8];
    uint32_t deliveries0 = 0;
    for (uint64_t s = 0; s < 8; s++) {
        hashes[s] = run_gossip(s + 1, &t);
        if (s == 0)
            deliveries0 = t.deliveries;
        CU_ASSERT_EQUAL(t.deliveries, deliveries0); /* same work, other order */
    }
    int distinct = 0;
    for (int i = 0; i < 8; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= hashes[j] == hashes[i];
        distinct += !seen;
    }
    CU_ASSERT(distinct >= 7);
}

typedef struct recorder {
    uint64_t times[64];
    uint64_t args[64];
    uint32_t n;
    aether_executor *ex;
} recorder;

static void record_handle(void *state, aether_actor *self, const aether_msg *m)
{
    recorder *r = state;
    if (r->n < 64) {
        r->times[r->n] = aether_clock_now_ns(aether_actor_clock(self));
        r->args[r->n] = m->arg64;
        r->n++;
    }
}

static aether_executor *new_exec(uint64_t seed)
{
    aether_executor *ex = NULL;
    aether_step_config cfg = { .seed = seed };
    CU_ASSERT_FATAL(aether_step_create(&cfg, &ex) == AETHER_OK);
    return ex;
}

#define MS AETHER_NS_PER_MS

static void test_timers_on_simulated_clock(void)
{
    aether_executor *ex = new_exec(1);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "rec", .handle = record_handle, .state = &r };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    aether_msg once = { .type = 1, .arg64 = 1 }, every = { .type = 1, .arg64 = 2 };
    aether_timer_id t1, t2;
    CU_ASSERT_EQUAL(aether_timer_start(a, 100 * MS, 0, &once, &t1), AETHER_OK);
    CU_ASSERT_EQUAL(aether_timer_start(a, 30 * MS, 30 * MS, &every, &t2), AETHER_OK);
    CU_ASSERT_NOT_EQUAL(t1, t2);
    aether_step_run_until(ex, 95 * MS, 1000);
    CU_ASSERT_EQUAL(aether_clock_now_ns(aether_executor_clock(ex)), 95 * MS);
    CU_ASSERT_EQUAL_FATAL(r.n, 3);
    CU_ASSERT_EQUAL(r.times[0], 30 * MS);
    CU_ASSERT_EQUAL(r.times[1], 60 * MS);
    CU_ASSERT_EQUAL(r.times[2], 90 * MS);
    aether_step_run_until(ex, 200 * MS, 1000);
    CU_ASSERT_EQUAL_FATAL(r.n, 7);
    CU_ASSERT_EQUAL(r.times[3], 100 * MS);
    CU_ASSERT_EQUAL(r.args[3], 1);
    CU_ASSERT_EQUAL(r.times[4], 120 * MS);
    CU_ASSERT_EQUAL(r.times[6], 180 * MS);
    /* The one-shot is gone; the periodic one is still pending. */
    CU_ASSERT_FALSE(aether_timer_cancel(a, t1));
    CU_ASSERT_TRUE(aether_timer_cancel(a, t2));
    aether_step_run_until(ex, 1000 * MS, 1000);
    CU_ASSERT_EQUAL(r.n, 7);
    uint64_t d;
    CU_ASSERT_FALSE(aether_step_next_deadline(ex, &d));
    aether_actor_destroy(a);
    aether_executor_destroy(ex);
}

static void test_equal_deadlines_fire_in_creation_order(void)
{
    aether_executor *ex = new_exec(9);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "rec", .handle = record_handle, .state = &r };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    for (uint64_t i = 0; i < 10; i++) {
        aether_msg m = { .type = 1, .arg64 = i };
        CU_ASSERT_EQUAL(aether_timer_start(a, 50 * MS, 0, &m, NULL), AETHER_OK);
    }
    aether_step_run_until(ex, 50 * MS, 1000);
    CU_ASSERT_EQUAL_FATAL(r.n, 10);
    for (uint64_t i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(r.args[i], i);
    aether_actor_destroy(a);
    aether_executor_destroy(ex);
}

static void test_timer_retries_when_mailbox_full(void)
{
    aether_executor *ex = new_exec(3);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "tiny", .handle = record_handle, .state = &r,
                               .mailbox_capacity = 2 };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    aether_msg fill = { .type = 1, .arg64 = 100 };
    CU_ASSERT_EQUAL(aether_actor_send(a, &fill), AETHER_OK);       /* the one usable slot */
    CU_ASSERT_EQUAL(aether_actor_try_send(a, &fill), AETHER_EFULL); /* the ring alone */
    aether_msg tm = { .type = 1, .arg64 = 5 };
    CU_ASSERT_EQUAL(aether_timer_start(a, 0, 0, &tm, NULL), AETHER_OK);
    /* The fire meets a full mailbox (fires before the actor runs), so it is
     * deferred by 1 ms, not lost. */
    aether_step_run_until(ex, 10 * MS, 1000);
    CU_ASSERT_EQUAL_FATAL(r.n, 2);
    CU_ASSERT_EQUAL(r.args[0], 100);
    CU_ASSERT_EQUAL(r.args[1], 5);
    CU_ASSERT_EQUAL(r.times[1], 1 * MS);
    CU_ASSERT_EQUAL(aether_actor_full_count(a), 2);
    aether_actor_destroy(a);
    aether_executor_destroy(ex);
}

/* ---- No delivery is lost (actor.h step 1b, DESIGN 3) -------------------- */

#define FLOOD_MSGS 1000u
#define FLOOD_SENDERS 3u

/* Records arg32 (the sender) and arg64 (its sequence number) of every
 * message, and checks each sender's order as it goes. */
typedef struct flood_sink {
    uint64_t next[FLOOD_SENDERS];
    uint64_t handled;
    uint64_t order_errors;
} flood_sink;

static void flood_handle(void *state, aether_actor *self, const aether_msg *m)
{
    flood_sink *s = state;
    (void)self;
    if (m->arg32 >= FLOOD_SENDERS || m->arg64 != s->next[m->arg32])
        s->order_errors++;
    else
        s->next[m->arg32]++;
    s->handled++;
}

/* A relay actor: on message k (arg64) it sends FLOOD_MSGS / 10 messages
 * to `to` as sender 1, from its handler, without ever waiting. */
typedef struct relay {
    aether_actor *to;
    uint64_t seq;
} relay;

static void relay_handle(void *state, aether_actor *self, const aether_msg *m)
{
    relay *r = state;
    (void)self;
    (void)m;
    for (uint32_t i = 0; i < FLOOD_MSGS / 10; i++) {
        aether_msg f = { .type = 2, .arg32 = 1, .arg64 = r->seq++ };
        CU_ASSERT_EQUAL(aether_actor_send(r->to, &f), AETHER_OK);
    }
}

/* A mailbox of 4 (3 usable) flooded by the test thread (sender 0) and by
 * another actor's handler (sender 1), interleaved, while the receiver runs
 * now and then: every message arrives, once, in each sender's order; the
 * counter and the gauge moved; one log line for the burst. The same seed
 * gives the same delivery trace twice. */
static uint64_t flood_once(uint64_t seed, uint64_t *full, uint64_t *overflow_peak)
{
    aether_executor *ex = new_exec(seed);
    aether_metrics *m;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    trace t;
    memset(&t, 0, sizeof(t));
    t.hash = UINT64_C(14695981039346656037);
    aether_step_set_trace(ex, trace_fn, &t);
    flood_sink sink;
    memset(&sink, 0, sizeof(sink));
    aether_actor *rx, *rl;
    aether_actor_config ac = { .name = "small", .handle = flood_handle, .state = &sink,
                               .mailbox_capacity = 4, .metrics = m };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &rx), AETHER_OK);
    relay r = { .to = rx, .seq = 0 };
    aether_actor_config rc = { .name = "relay", .handle = relay_handle, .state = &r };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &rc, &rl), AETHER_OK);
    *overflow_peak = 0;
    for (uint64_t i = 0; i < FLOOD_MSGS; i++) {
        aether_msg f = { .type = 1, .arg32 = 0, .arg64 = i };
        CU_ASSERT_EQUAL(aether_actor_send(rx, &f), AETHER_OK);
        if (i % 100 == 0) {
            aether_msg go = { .type = 3 };
            CU_ASSERT_EQUAL(aether_actor_send(rl, &go), AETHER_OK);
        }
        uint64_t d = aether_actor_overflow_depth(rx);
        *overflow_peak = d > *overflow_peak ? d : *overflow_peak;
        if (i % 97 == 0) /* let the receiver and the relay run a little */
            aether_step_run_until(ex, aether_clock_now_ns(aether_executor_clock(ex)) + MS, 7);
    }
    aether_step_run_until_idle(ex, 100000);
    CU_ASSERT_EQUAL(sink.handled, FLOOD_MSGS + FLOOD_MSGS);
    CU_ASSERT_EQUAL(sink.next[0], FLOOD_MSGS);
    CU_ASSERT_EQUAL(sink.next[1], FLOOD_MSGS);
    CU_ASSERT_EQUAL(sink.order_errors, 0);
    CU_ASSERT_EQUAL(aether_actor_overflow_depth(rx), 0);
    CU_ASSERT_EQUAL(aether_actor_refused_count(rx), 0);
    *full = aether_actor_full_count(rx);
    int64_t v = -1;
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_full_total", "actor=\"small\"", &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL((uint64_t)v, *full);
    aether_actor_destroy(rl);
    aether_actor_destroy(rx);
    aether_metrics_destroy(m);
    aether_executor_destroy(ex);
    return t.hash;
}

static void test_full_mailbox_loses_nothing(void)
{
    uint64_t full1, full2, peak1, peak2;
    uint64_t h1 = flood_once(11, &full1, &peak1);
    uint64_t h2 = flood_once(11, &full2, &peak2);
    CU_ASSERT(full1 > FLOOD_MSGS / 2); /* the ring of 3 was full most of the time */
    CU_ASSERT(peak1 > 3);
    CU_ASSERT_EQUAL(h1, h2); /* deterministic on the step executor */
    CU_ASSERT_EQUAL(full1, full2);
    CU_ASSERT_EQUAL(peak1, peak2);
}

/* A payload that counts its frees. */
typedef struct state_box {
    aether_ref ref;
    uint64_t version;
} state_box;

static uint32_t boxes_freed;

static void state_box_free(aether_ref *r)
{
    boxes_freed++;
    free(r);
}

static uint32_t dropped;

static void count_drop(void *state, const aether_msg *m)
{
    (void)state;
    CU_ASSERT_PTR_EQUAL(m->ptr, &dropped);
    dropped++;
}

/* Past overflow_max a send is refused (and counted): the memory bound; the
 * messages already listed still arrive in order. try_send never lists. */
static void test_overflow_bound_refuses(void)
{
    aether_executor *ex = new_exec(12);
    flood_sink sink;
    memset(&sink, 0, sizeof(sink));
    aether_actor *a;
    aether_actor_config ac = { .name = "bounded", .handle = flood_handle, .state = &sink,
                               .drop = count_drop, .mailbox_capacity = 2, .overflow_max = 3 };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    aether_msg f = { .type = 1, .arg32 = 0 };
    for (f.arg64 = 0; f.arg64 < 4; f.arg64++) /* 1 in the ring, 3 listed */
        CU_ASSERT_EQUAL(aether_actor_send(a, &f), AETHER_OK);
    CU_ASSERT_EQUAL(aether_actor_send(a, &f), AETHER_EFULL);
    CU_ASSERT_EQUAL(aether_actor_try_send(a, &f), AETHER_EFULL);
    CU_ASSERT_EQUAL(aether_actor_overflow_depth(a), 3);
    CU_ASSERT_EQUAL(aether_actor_refused_count(a), 1);
    CU_ASSERT_EQUAL(aether_actor_full_count(a), 4); /* 3 listed + the try_send */
    aether_step_run_until_idle(ex, 1000);
    CU_ASSERT_EQUAL(sink.handled, 4);
    CU_ASSERT_EQUAL(sink.order_errors, 0);
    /* Drained: the ring takes sends again, try_send too. */
    CU_ASSERT_EQUAL(aether_actor_try_send(a, &f), AETHER_OK);
    aether_step_run_until_idle(ex, 1000);
    CU_ASSERT_EQUAL(sink.handled, 5);
    CU_ASSERT_EQUAL(sink.order_errors, 0);
    /* Destroyed with messages in the ring and in the list: every payload
     * is dropped once (the drop function, or the reference). */
    dropped = 0;
    boxes_freed = 0;
    for (uint32_t i = 0; i < 3; i++) {
        aether_msg owned = { .type = 1, .arg32 = 0, .arg64 = 5 + i, .ptr = &dropped };
        CU_ASSERT_EQUAL(aether_actor_send(a, &owned), AETHER_OK);
    }
    state_box *b = malloc(sizeof(*b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    aether_ref_init(&b->ref, state_box_free);
    aether_msg ref = { .type = 1, .flags = AETHER_MSG_REF, .ptr = &b->ref };
    CU_ASSERT_EQUAL(aether_actor_send(a, &ref), AETHER_OK); /* takes our reference */
    CU_ASSERT_EQUAL(aether_actor_overflow_depth(a), 3);
    aether_actor_destroy(a);
    CU_ASSERT_EQUAL(dropped, 3);
    CU_ASSERT_EQUAL(boxes_freed, 1);
    aether_executor_destroy(ex);
}

typedef struct latest_rx {
    aether_latest slot;
    uint64_t wakes;
    uint64_t empty_wakes;
    uint64_t seen[8];
    uint32_t n;
} latest_rx;

static void latest_handle(void *state, aether_actor *self, const aether_msg *m)
{
    latest_rx *rx = state;
    (void)self;
    (void)m;
    rx->wakes++;
    aether_ref *r = aether_latest_take(&rx->slot);
    if (r == NULL) {
        rx->empty_wakes++;
        return;
    }
    if (rx->n < 8)
        rx->seen[rx->n++] = ((state_box *)r)->version;
    aether_ref_release(r);
}

static void post_version(latest_rx *rx, aether_actor *a, uint64_t version)
{
    state_box *b = malloc(sizeof(*b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    aether_ref_init(&b->ref, state_box_free);
    b->version = version;
    aether_msg wake = { .type = 9 };
    CU_ASSERT_EQUAL(aether_latest_post(&rx->slot, a, &b->ref, &wake), AETHER_OK);
}

/* State supersedes state: 100 posts to a mailbox of 2 while the receiver
 * does not run make one wake-up, the newest value is taken, the 99 others
 * are freed and counted; a later post wakes it again. */
static void test_latest_coalesces_state(void)
{
    aether_executor *ex = new_exec(13);
    aether_metrics *m;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    latest_rx rx;
    memset(&rx, 0, sizeof(rx));
    aether_latest_init(&rx.slot, aether_metrics_counter(m, "aether_mailbox_coalesced_total",
                                                        "States superseded before taken.",
                                                        "actor=\"rx\""));
    boxes_freed = 0;
    aether_actor *a;
    aether_actor_config ac = { .name = "rx", .handle = latest_handle, .state = &rx,
                               .mailbox_capacity = 2 };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    for (uint64_t v = 1; v <= 100; v++)
        post_version(&rx, a, v);
    CU_ASSERT_EQUAL(aether_actor_depth(a), 1);
    CU_ASSERT_EQUAL(aether_actor_full_count(a), 0); /* nothing queued behind the wake-up */
    CU_ASSERT_EQUAL(boxes_freed, 99);
    CU_ASSERT_EQUAL(aether_latest_superseded(&rx.slot), 99);
    int64_t v = -1;
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_coalesced_total", "actor=\"rx\"", &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL(v, 99);
    aether_step_run_until_idle(ex, 100);
    CU_ASSERT_EQUAL(rx.wakes, 1);
    CU_ASSERT_EQUAL_FATAL(rx.n, 1);
    CU_ASSERT_EQUAL(rx.seen[0], 100);
    CU_ASSERT_EQUAL(boxes_freed, 100);
    post_version(&rx, a, 101);
    aether_step_run_until_idle(ex, 100);
    CU_ASSERT_EQUAL(rx.wakes, 2);
    CU_ASSERT_EQUAL_FATAL(rx.n, 2);
    CU_ASSERT_EQUAL(rx.seen[1], 101);
    CU_ASSERT_EQUAL(rx.empty_wakes, 0);
    /* A value left at shutdown is freed by fini. */
    post_version(&rx, a, 102);
    aether_actor_destroy(a);
    aether_latest_fini(&rx.slot);
    CU_ASSERT_EQUAL(boxes_freed, 102);
    aether_metrics_destroy(m);
    aether_executor_destroy(ex);
}

static void test_run_until_respects_max_steps(void)
{
    aether_executor *ex = new_exec(4);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "rec", .handle = record_handle, .state = &r };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    for (int i = 0; i < 10; i++) {
        aether_msg m = { .type = 1, .arg64 = (uint64_t)i };
        CU_ASSERT_EQUAL(aether_actor_send(a, &m), AETHER_OK);
    }
    CU_ASSERT_EQUAL(aether_step_run_until_idle(ex, 4), 4);
    CU_ASSERT_EQUAL(r.n, 4);
    CU_ASSERT_EQUAL(aether_step_runnable(ex), 1);
    CU_ASSERT_EQUAL(aether_step_run_until_idle(ex, 100), 6);
    CU_ASSERT_EQUAL(aether_step_runnable(ex), 0);
    aether_actor_destroy(a);
    aether_executor_destroy(ex);
}

static int freed_payloads;
static void payload_free(aether_ref *r)
{
    freed_payloads++;
    free(r);
}

static void test_close_refuses_and_destroy_drops(void)
{
    aether_executor *ex = new_exec(5);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "rec", .handle = record_handle, .state = &r };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    freed_payloads = 0;
    for (int i = 0; i < 3; i++) {
        aether_ref *p = malloc(sizeof(*p));
        aether_ref_init(p, payload_free);
        aether_msg m = { .type = 1, .flags = AETHER_MSG_REF, .ptr = p };
        CU_ASSERT_EQUAL(aether_actor_send(a, &m), AETHER_OK);
    }
    CU_ASSERT_EQUAL(aether_step_run_one(ex), true); /* handles one, releases its ref */
    CU_ASSERT_EQUAL(freed_payloads, 1);
    aether_actor_close(a);
    aether_msg m = { .type = 1 };
    CU_ASSERT_EQUAL(aether_actor_send(a, &m), AETHER_ECLOSED);
    CU_ASSERT_EQUAL(aether_step_runnable(ex), 0);
    CU_ASSERT_EQUAL(aether_step_run_until_idle(ex, 100), 0);
    aether_actor_destroy(a);
    CU_ASSERT_EQUAL(freed_payloads, 3);
    CU_ASSERT_EQUAL(r.n, 1);
    aether_executor_destroy(ex);
}

static void test_actor_metrics_outlive_actor(void)
{
    aether_executor *ex = new_exec(6);
    aether_metrics *m;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    recorder r = { .n = 0 };
    aether_actor *a;
    aether_actor_config ac = { .name = "metered", .handle = record_handle, .state = &r,
                               .mailbox_capacity = 2, .metrics = m,
                               .metric_labels = "node=\"n1\"" };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    aether_msg msg = { .type = 1 };
    CU_ASSERT_EQUAL(aether_actor_send(a, &msg), AETHER_OK);
    CU_ASSERT_EQUAL(aether_actor_send(a, &msg), AETHER_OK); /* the ring is full: listed */
    const char *labels = "actor=\"metered\",node=\"n1\"";
    int64_t v = -1;
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_depth", labels, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_overflow_depth", labels, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_full_total", labels, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 1);
    aether_step_run_until_idle(ex, 10);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_actor_messages_total", labels, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_overflow_depth", labels, &v), AETHER_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_mailbox_overflow_refused_total", labels, &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL(v, 0);
    aether_actor_destroy(a);
    /* The depth gauge no longer calls into the freed actor. */
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(aether_metrics_render_prometheus(m, &text, &len), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "aether_mailbox_depth{actor=\"metered\",node=\"n1\"} 0"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text, "aether_mailbox_overflow_depth{actor=\"metered\",node=\"n1\"} 0"));
    free(text);
    aether_metrics_destroy(m);
    aether_executor_destroy(ex);
}

/* A handler that takes arg64 ns of simulated time (a slow store call). */
static void slow_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    (void)self;
    aether_sim_clock_advance_ns(state, msg->arg64);
}

/* aether_actor_handler_seconds: one observation per message handled, the
 * time its handler took by the executor's clock, in the bucket it falls in. */
static void test_actor_handler_time_histogram(void)
{
    aether_executor *ex = new_exec(7);
    aether_metrics *m;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    aether_actor *a;
    aether_actor_config ac = { .name = "slow", .handle = slow_handle, .state = aether_step_clock(ex),
                               .metrics = m, .metric_labels = "node=\"n1\"" };
    CU_ASSERT_EQUAL_FATAL(aether_actor_create(ex, &ac, &a), AETHER_OK);
    const uint64_t took_ns[] = { 0u, 2000000u, 700000000u }; /* 0, 2 ms, 700 ms */
    for (uint32_t i = 0; i < 3; i++) {
        aether_msg msg = { .type = 1, .arg64 = took_ns[i] };
        CU_ASSERT_EQUAL(aether_actor_send(a, &msg), AETHER_OK);
    }
    aether_step_run_until_idle(ex, 10);
    int64_t v = -1;
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_actor_handler_seconds", "actor=\"slow\",node=\"n1\"", &v),
                    AETHER_OK);
    CU_ASSERT_EQUAL(v, 3);
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, NULL), AETHER_OK);
    const char *want[] = {
        "# TYPE aether_actor_handler_seconds histogram\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"0.00001\"} 1\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"0.001\"} 1\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"0.0025\"} 2\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"0.5\"} 2\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"1\"} 3\n",
        "aether_actor_handler_seconds_bucket{actor=\"slow\",node=\"n1\",le=\"+Inf\"} 3\n",
        "aether_actor_handler_seconds_sum{actor=\"slow\",node=\"n1\"} 0.702\n",
        "aether_actor_handler_seconds_count{actor=\"slow\",node=\"n1\"} 3\n",
    };
    for (uint32_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(text, want[i]) == NULL) {
            fprintf(stderr, "missing: %s", want[i]);
            CU_FAIL("a handler-time line is missing");
        }
    free(text);
    aether_actor_destroy(a);
    aether_metrics_destroy(m);
    aether_executor_destroy(ex);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(actor_handler_time_histogram),
    AETHER_TEST(actor_metrics_outlive_actor),
    AETHER_TEST(same_seed_same_trace),
    AETHER_TEST(different_seeds_different_interleavings),
    AETHER_TEST(timers_on_simulated_clock),
    AETHER_TEST(equal_deadlines_fire_in_creation_order),
    AETHER_TEST(timer_retries_when_mailbox_full),
    AETHER_TEST(full_mailbox_loses_nothing),
    AETHER_TEST(overflow_bound_refuses),
    AETHER_TEST(latest_coalesces_state),
    AETHER_TEST(run_until_respects_max_steps),
    AETHER_TEST(close_refuses_and_destroy_drops),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("step", NULL, NULL, tests);
