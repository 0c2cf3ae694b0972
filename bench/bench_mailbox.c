/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_mailbox.c: `aether-bench mailbox`, messages per second through an
 * actor including handler dispatch (bench layer).
 *
 * Cases (same 32-byte aether_msg, same handler `sink_handle`, called through
 * a function pointer everywhere):
 *   actor_Np      one actor on the thread-pool executor with ONE worker,
 *                 fed by N = 1, 2, 4 producer threads through
 *                 aether_actor_try_send, one message per call (the ring alone,
 *                 as aether_actor_send while the ring has room); a producer that
 *                 gets AETHER_EFULL sched_yield()s and retries, and the
 *                 EFULL returns are reported.
 *   actor_batch_Np the same actor, each producer sending batches of MB_BATCH
 *                 through aether_actor_try_send_batch (one reservation per
 *                 batch); on AETHER_EFULL it yields and sends the rest.
 *   mutexq_Np     baseline A: bench_mutexq (mutex + 2 condvars, one message
 *                 per lock) and a consumer thread.
 *   spsc_ring     limit B, the ceiling: raw ck_ring SPSC between two threads
 *                 moving batches of MB_BATCH (one index exchange per batch
 *                 on each side; no scheduling, no CAS, no handshake, no
 *                 wake-up).
 * A run sends a fixed count (calibrated per case so a run lasts about
 * --seconds) and measures from the first send to the last message handled:
 * the handler stamps the time when its count reaches the run's total.
 * Throughput ratios are against the mutex queue with the same number of
 * producers (spsc_ring against mutexq_1p); each actor case has a second row,
 * of_ceiling, its throughput as a fraction of spsc_ring's. Every case
 * also reports send_cpu (the producer threads' CPU time per message) and
 * recv_cpu (the rest of the process's, i.e. the consumer's, idle spin
 * included): costs that time spent preempted does not inflate. --case
 * measures only the named cases. The handler sums
 * arg64 and the sum is checked after every run, so every message was really
 * handled once. A side that finds its queue full (or empty) spins
 * MB_SPINS_BEFORE_YIELD rounds and then yields: with 2 cores shared, a pure
 * spin burns the slice its peer needs.
 *
 * Threading: the main thread creates and joins every producer/consumer
 * thread and the pool of each run.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ck_pr.h>

#include "actor.h"
#include "assertion.h"
#include "baseline_mutexq.h"
#include "baseline_spscring.h"
#include "bench.h"
#include "exec_pool.h"
#include "executor.h"
#include "log.h"
#include "report.h"

#define MB_BENCH "mailbox"
#define MB_CAPACITY AETHER_ACTOR_MAILBOX_DEFAULT /* every queue holds the same bound */
#define MB_PRODUCERS_MAX 4u
#define MB_BATCH 64u                             /* spsc_ring: messages per index exchange */
#define MB_SPINS_BEFORE_YIELD 128u
#define MB_CALIBRATE_MSGS 1000000u               /* messages of the unreported warm-up run */
#define MB_MSGS_MIN 200000u                      /* per run, whatever the calibration says */
#define MB_MSGS_MAX 4000000000u
#define MB_RETRIES_MAX 100000000u                /* consecutive full sends before giving up */
#define MB_WAITS_MAX 100000000u                  /* consecutive full/empty polls (spsc_ring) */
#define MB_DONE_TIMEOUT_NS (120ull * 1000000000ull)
#define MB_POP_TIMEOUT_NS (1000000000ull)      /* a mutexq side waiting this long has failed */
#define MB_WAIT_POLL_NS 200000L

typedef enum mb_kind { MB_ACTOR, MB_ACTOR_BATCH, MB_MUTEXQ, MB_SPSC } mb_kind;

static bool mb_is_actor(mb_kind k) { return k == MB_ACTOR || k == MB_ACTOR_BATCH; }

/* The handler's state: written only by the consuming thread while a run is
 * on; `done` is the release store the main thread acquires. */
typedef struct mb_sink {
    uint64_t sum;
    uint64_t count;
    uint64_t target;  /* immutable during a run */
    uint64_t end_ns;  /* stamped when count reaches target */
    uint32_t done;    /* atomic: release by the handler, acquire by main */
} __attribute__((aligned(64))) mb_sink;

/* Minimal work: fold arg64 into a sum, stamp the clock on the last message. */
static void sink_handle(void *state, aether_actor *self, const aether_msg *m)
{
    (void)self;
    mb_sink *s = state;
    s->sum += m->arg64;
    if (AETHER_UNLIKELY(++s->count == s->target)) {
        s->end_ns = bench_now_ns();
        __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    }
}

/* One producer's private results, on its own cache line. */
typedef struct mb_producer {
    struct mb_run *run;
    uint64_t t0_ns;
    uint64_t cpu_ns;  /* the thread's CPU time over its sends */
    uint64_t efull;
    uint32_t failed;
} __attribute__((aligned(64))) mb_producer;

typedef struct mb_run {
    mb_sink sink;
    mb_kind kind;
    uint32_t producers;
    uint64_t per_producer;
    aether_actor_handle_fn handle; /* sink_handle, called indirectly everywhere */
    aether_actor *actor;           /* MB_ACTOR, MB_ACTOR_BATCH */
    bench_mutexq q;                /* MB_MUTEXQ */
    bench_spscring ring;           /* MB_SPSC */
    pthread_barrier_t start;
    uint32_t consumer_failed;
    mb_producer prod[MB_PRODUCERS_MAX];
} mb_run;

typedef struct mb_result {
    double cores_used; /* process CPU time / wall time of the run */
    double msgs_per_s;
    double efull;     /* EFULL returns (actor) or full waits (mutexq) */
    double send_cpu_ns; /* producer threads' CPU time per message sent */
    double recv_cpu_ns; /* the rest of the process's CPU time per message: the consumer's */
} mb_result;

/* One poll of a full or empty queue: spin, then yield. False once the
 * peer has made no progress for MB_WAITS_MAX polls. */
static bool mb_wait_turn(uint32_t *waits)
{
    if (++*waits > MB_WAITS_MAX)
        return false;
    if (*waits % MB_SPINS_BEFORE_YIELD == 0)
        sched_yield();
    else
        ck_pr_stall();
    return true;
}

static void *producer_main(void *arg)
{
    mb_producer *p = arg;
    mb_run *r = p->run;
    aether_msg m = { .type = 1 };
    pthread_barrier_wait(&r->start);
    p->t0_ns = bench_now_ns();
    uint64_t cpu0 = bench_thread_cpu_ns();
    for (uint64_t i = 0; i < r->per_producer; i++) {
        m.arg64 = i + 1;
        if (r->kind == MB_ACTOR) {
            aether_status st;
            uint32_t retries = 0;
            while ((st = aether_actor_try_send(r->actor, &m)) == AETHER_EFULL) {
                p->efull++;
                if (++retries > MB_RETRIES_MAX) {
                    p->failed = 1;
                    return NULL;
                }
                sched_yield();
            }
            AETHER_ASSERT(st == AETHER_OK);
        } else { /* MB_MUTEXQ */
            if (!bench_mutexq_push(&r->q, &m, MB_POP_TIMEOUT_NS)) {
                p->failed = 1;
                return NULL;
            }
        }
    }
    p->cpu_ns = bench_thread_cpu_ns() - cpu0;
    return NULL;
}

/* The batch producers (spsc_ring, actor_batch): fill a batch of MB_BATCH,
 * then hand over as much of it as the queue takes per call. */
static void *producer_batch_main(void *arg)
{
    mb_producer *p = arg;
    mb_run *r = p->run;
    aether_msg batch[MB_BATCH];
    memset(batch, 0, sizeof(batch));
    pthread_barrier_wait(&r->start);
    p->t0_ns = bench_now_ns();
    uint64_t cpu0 = bench_thread_cpu_ns();
    for (uint64_t i = 0; i < r->per_producer;) {
        uint64_t left = r->per_producer - i;
        uint32_t n = left < MB_BATCH ? (uint32_t)left : MB_BATCH;
        for (uint32_t j = 0; j < n; j++) {
            batch[j].type = 1;
            batch[j].arg64 = i + j + 1;
        }
        uint32_t sent = 0, waits = 0;
        while (sent < n) {
            if (r->kind == MB_SPSC) {
                uint32_t k = bench_spscring_send_batch(&r->ring, batch + sent, n - sent);
                sent += k;
                if (k == 0 && !mb_wait_turn(&waits)) {
                    p->failed = 1;
                    return NULL;
                }
                continue;
            }
            uint32_t k = 0;
            aether_status st = aether_actor_try_send_batch(r->actor, batch + sent, n - sent, &k);
            sent += k;
            if (st == AETHER_EFULL) { /* as actor_Np: yield, retry the rest */
                p->efull++;
                if (++waits > MB_RETRIES_MAX) {
                    p->failed = 1;
                    return NULL;
                }
                sched_yield();
            } else {
                AETHER_ASSERT(st == AETHER_OK && sent == n);
            }
        }
        i += n;
    }
    p->cpu_ns = bench_thread_cpu_ns() - cpu0;
    return NULL;
}

/* Consumer of the baselines (the actor's consumer is the pool worker). */
static void *consumer_main(void *arg)
{
    mb_run *r = arg;
    aether_msg m;
    uint64_t total = r->sink.target;
    if (r->kind == MB_MUTEXQ) {
        for (uint64_t i = 0; i < total; i++) {
            if (!bench_mutexq_pop(&r->q, &m, MB_POP_TIMEOUT_NS)) {
                r->consumer_failed = 1;
                return NULL;
            }
            r->handle(&r->sink, NULL, &m);
        }
    } else {
        aether_msg batch[MB_BATCH];
        uint32_t waits = 0;
        for (uint64_t got = 0; got < total;) {
            uint64_t left = total - got;
            uint32_t n = bench_spscring_recv_batch(&r->ring, batch,
                                                   left < MB_BATCH ? (uint32_t)left : MB_BATCH);
            if (n == 0) {
                if (!mb_wait_turn(&waits)) {
                    r->consumer_failed = 1;
                    return NULL;
                }
                continue;
            }
            waits = 0;
            for (uint32_t i = 0; i < n; i++)
                r->handle(&r->sink, NULL, &batch[i]);
            got += n;
        }
    }
    return NULL;
}

/* Waits (sleeping, so the waiter takes no core) until the handler saw the
 * last message. False on timeout. */
static bool wait_done(mb_run *r)
{
    uint64_t deadline = bench_now_ns() + MB_DONE_TIMEOUT_NS;
    while (!__atomic_load_n(&r->sink.done, __ATOMIC_ACQUIRE)) {
        if (bench_now_ns() > deadline)
            return false;
        struct timespec ts = { 0, MB_WAIT_POLL_NS };
        nanosleep(&ts, NULL);
    }
    return true;
}

/* One run of one case: `per_producer` messages from each of `producers`. */
static int mb_run_once(mb_kind kind, uint32_t producers, uint64_t per_producer, mb_result *out)
{
    AETHER_ASSERT(producers >= 1 && producers <= MB_PRODUCERS_MAX);
    mb_run *r = aligned_alloc(64, sizeof(*r));
    if (r == NULL)
        return -1;
    uint64_t cpu0 = bench_process_cpu_ns(), wall0 = bench_now_ns();
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->producers = producers;
    r->per_producer = per_producer;
    r->handle = sink_handle;
    r->sink.target = per_producer * producers;
    int rc = -1;
    aether_executor *pool = NULL;
    pthread_t consumer, prod[MB_PRODUCERS_MAX];
    bool consumer_started = false;
    uint32_t started = 0;

    if (mb_is_actor(kind)) {
        aether_pool_config pc = { .workers = 1 };
        if (aether_pool_create(&pc, &pool) != AETHER_OK || aether_pool_start(pool) != AETHER_OK)
            goto out;
        aether_actor_config ac = { .name = "bench-sink", .mailbox_capacity = MB_CAPACITY,
                                   .handle = sink_handle, .state = &r->sink };
        if (aether_actor_create(pool, &ac, &r->actor) != AETHER_OK)
            goto out;
    } else if (kind == MB_MUTEXQ) {
        if (bench_mutexq_init(&r->q, MB_CAPACITY) != AETHER_OK)
            goto out;
    } else {
        if (bench_spscring_init(&r->ring, MB_CAPACITY) != AETHER_OK)
            goto out;
    }
    pthread_barrier_init(&r->start, NULL, producers);
    if (!mb_is_actor(kind)) {
        if (pthread_create(&consumer, NULL, consumer_main, r) != 0)
            goto out_barrier;
        consumer_started = true;
    }
    for (; started < producers; started++) {
        r->prod[started].run = r;
        if (pthread_create(&prod[started], NULL, kind == MB_SPSC || kind == MB_ACTOR_BATCH ? producer_batch_main : producer_main,
                           &r->prod[started]) != 0)
            break;
    }
    if (started < producers) {
        /* The barrier would never open: nothing sensible to do but abort. */
        fprintf(stderr, "aether-bench: cannot start producer threads\n");
        abort();
    }
    bool done = wait_done(r);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(prod[i], NULL);
    if (consumer_started)
        pthread_join(consumer, NULL);
    uint64_t t0 = UINT64_MAX, efull = 0, send_cpu = 0;
    bool failed = r->consumer_failed;
    for (uint32_t i = 0; i < producers; i++) {
        t0 = r->prod[i].t0_ns < t0 ? r->prod[i].t0_ns : t0;
        efull += r->prod[i].efull;
        send_cpu += r->prod[i].cpu_ns;
        failed |= r->prod[i].failed != 0;
    }
    if (!done || failed) {
        fprintf(stderr, "aether-bench: mailbox run did not finish (kind %d, %u producers)\n",
                (int)kind, producers);
        goto out_barrier;
    }
    /* Behaviour check: every message handled exactly once. */
    uint64_t expect = producers * (per_producer * (per_producer + 1) / 2);
    AETHER_ASSERT(r->sink.count == r->sink.target && r->sink.sum == expect);
    if (mb_is_actor(kind))
        AETHER_ASSERT(aether_actor_full_count(r->actor) == efull);
    out->msgs_per_s = (double)r->sink.target * 1e9 / (double)(r->sink.end_ns - t0);
    out->efull = kind == MB_MUTEXQ ? (double)bench_mutexq_full_waits(&r->q) : (double)efull;
    out->send_cpu_ns = (double)send_cpu / (double)r->sink.target;
    uint64_t cpu_all = bench_process_cpu_ns() - cpu0;
    out->recv_cpu_ns = cpu_all > send_cpu ? (double)(cpu_all - send_cpu) / (double)r->sink.target : 0;
    out->cores_used = (double)(bench_process_cpu_ns() - cpu0) / (double)(bench_now_ns() - wall0);
    rc = 0;
out_barrier:
    pthread_barrier_destroy(&r->start);
out:
    if (mb_is_actor(kind)) {
        aether_actor_destroy(r->actor);
        if (pool != NULL)
            aether_pool_stop(pool);
        aether_executor_destroy(pool);
    } else if (kind == MB_MUTEXQ) {
        if (r->q.slots != NULL)
            bench_mutexq_fini(&r->q);
    } else if (r->ring.slots != NULL) {
        bench_spscring_fini(&r->ring);
    }
    free(r);
    return rc;
}

typedef struct mb_case {
    const char *name;
    mb_kind kind;
    uint32_t producers;
    const char *baseline; /* case compared with; NULL: none */
    bool measured;        /* selected by --case (all without it) and measured */
    bench_stats rate;
    bench_stats efull;
    bench_stats cores;
    bench_stats send_cpu;
    bench_stats recv_cpu;
} mb_case;

static int mb_measure(const bench_opts *o, mb_case *c)
{
    mb_result warm;
    uint32_t p = c->producers;
    if (mb_run_once(c->kind, p, MB_CALIBRATE_MSGS / p, &warm) != 0)
        return -1;
    double per = warm.msgs_per_s * o->seconds / p;
    uint64_t per_producer = per < MB_MSGS_MIN ? MB_MSGS_MIN : per > MB_MSGS_MAX ? MB_MSGS_MAX
                                                                               : (uint64_t)per;
    double rate[BENCH_RUNS_MAX], efull[BENCH_RUNS_MAX], cores[BENCH_RUNS_MAX];
    double send_cpu[BENCH_RUNS_MAX], recv_cpu[BENCH_RUNS_MAX];
    for (unsigned i = 0; i < o->runs; i++) {
        mb_result res;
        if (mb_run_once(c->kind, p, per_producer, &res) != 0)
            return -1;
        rate[i] = res.msgs_per_s;
        efull[i] = res.efull;
        cores[i] = res.cores_used;
        send_cpu[i] = res.send_cpu_ns;
        recv_cpu[i] = res.recv_cpu_ns;
    }
    c->rate = bench_stats_of(rate, o->runs);
    c->efull = bench_stats_of(efull, o->runs);
    c->cores = bench_stats_of(cores, o->runs);
    c->send_cpu = bench_stats_of(send_cpu, o->runs);
    c->recv_cpu = bench_stats_of(recv_cpu, o->runs);
    return 0;
}

/* True if --case names `name` (a comma-separated list), or there is no --case. */
static bool mb_selected(const bench_opts *o, const char *name)
{
    if (o->cases == NULL)
        return true;
    size_t len = strlen(name);
    for (const char *p = o->cases; *p != '\0';) { /* bounded by the list's length */
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return true;
        p += n + (comma != NULL);
    }
    return false;
}

int bench_mailbox_main(const bench_opts *o)
{
    mb_case cases[] = {
        { .name = "mutexq_1p", .kind = MB_MUTEXQ, .producers = 1, .baseline = "mutexq_1p" },
        { .name = "mutexq_2p", .kind = MB_MUTEXQ, .producers = 2, .baseline = "mutexq_2p" },
        { .name = "mutexq_4p", .kind = MB_MUTEXQ, .producers = 4, .baseline = "mutexq_4p" },
        { .name = "actor_1p", .kind = MB_ACTOR, .producers = 1, .baseline = "mutexq_1p" },
        { .name = "actor_2p", .kind = MB_ACTOR, .producers = 2, .baseline = "mutexq_2p" },
        { .name = "actor_4p", .kind = MB_ACTOR, .producers = 4, .baseline = "mutexq_4p" },
        { .name = "actor_batch_1p", .kind = MB_ACTOR_BATCH, .producers = 1, .baseline = "mutexq_1p" },
        { .name = "actor_batch_2p", .kind = MB_ACTOR_BATCH, .producers = 2, .baseline = "mutexq_2p" },
        { .name = "actor_batch_4p", .kind = MB_ACTOR_BATCH, .producers = 4, .baseline = "mutexq_4p" },
        { .name = "spsc_ring", .kind = MB_SPSC, .producers = 1, .baseline = "mutexq_1p" },
    };
    const size_t ncases = sizeof(cases) / sizeof(cases[0]);
    /* A full mailbox is this bench's expected backpressure; its rate-limited
     * warning would only clutter stderr. Errors still print. */
    aether_log_level saved = aether_log_get_level();
    aether_log_set_level(AETHER_LOG_ERROR);
    bench_report_begin(o, MB_BENCH,
                       "msgs/s from first send to last handled; handler sums arg64; queue bound "
                       "4096 everywhere;\nactor = pool executor, 1 worker, batch 64; "
                       "actor_batch = producers send 64 at a time (aether_actor_try_send_batch);\n"
                       "spsc_ring = the ceiling: batches of 64 each way, no wake-up;\n"
                       "of_ceiling = actor throughput / spsc_ring throughput;\n"
                       "efull = AETHER_EFULL returns per run (producer yields, retries),\n"
                       "full_waits = pushes that blocked on a full mutex queue per run;\n"
                       "send_cpu = producer threads' CPU time per message sent (time preempted "
                       "not counted:\nthe send path's cost, steadier under load than throughput);\n"
                       "recv_cpu = the rest of the process's CPU time per message: the consumer "
                       "(pool worker or\nconsumer thread), its idle spin included;\n"
                       "cores_used = process CPU time / wall time (2.0 = both cores were ours)");
    /* Every case is measured before any row is printed, so each ratio's
     * baseline exists whatever the order of the cases. */
    int rc = 0;
    size_t selected = 0;
    for (size_t i = 0; i < ncases && rc == 0; i++) {
        if (!mb_selected(o, cases[i].name))
            continue;
        selected++;
        rc = mb_measure(o, &cases[i]);
        cases[i].measured = rc == 0;
    }
    if (selected == 0) {
        fprintf(stderr, "aether-bench: --case %s names no mailbox case\n", o->cases);
        rc = 2;
    }
    const mb_case *ceiling = NULL;
    for (size_t j = 0; j < ncases; j++)
        if (cases[j].kind == MB_SPSC && cases[j].measured)
            ceiling = &cases[j];
    for (size_t i = 0; i < ncases && rc == 0; i++) {
        mb_case *c = &cases[i];
        if (!c->measured)
            continue;
        const mb_case *base = NULL; /* NULL: not measured in this run (--case) */
        for (size_t j = 0; j < ncases; j++)
            if (strcmp(cases[j].name, c->baseline) == 0 && cases[j].measured)
                base = &cases[j];
        AETHER_ASSERT(base == NULL || base->rate.median > 0);
        bench_report_row(o, MB_BENCH, c->name, "throughput", &c->rate, "msg/s",
                         base != NULL ? base->name : NULL, base != NULL ? base->rate.median : 0);
        if (mb_is_actor(c->kind) && ceiling != NULL)
            bench_report_row(o, MB_BENCH, c->name, "of_ceiling", &c->rate, "msg/s", ceiling->name,
                             ceiling->rate.median);
        if (mb_is_actor(c->kind))
            bench_report_row(o, MB_BENCH, c->name, "efull", &c->efull, "count", NULL, 0);
        else if (c->kind == MB_MUTEXQ)
            bench_report_row(o, MB_BENCH, c->name, "full_waits", &c->efull, "count", NULL, 0);
        bench_report_row(o, MB_BENCH, c->name, "send_cpu", &c->send_cpu, "ns", NULL, 0);
        bench_report_row(o, MB_BENCH, c->name, "recv_cpu", &c->recv_cpu, "ns", NULL, 0);
        bench_report_row(o, MB_BENCH, c->name, "cores_used", &c->cores, "cores", NULL, 0);
    }
    aether_log_set_level(saved);
    return rc;
}
