/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_lookup.c: `aether-bench lookup`, GetShardOwner(key) lookups per
 * second while the map is being republished (bench layer).
 *
 * Set-up: a 1024-shard map over 10 nodes with R = 2 (shard s owned by nodes
 * s%10 and (s+1)%10), and 64 Ki pre-generated random keys of random length
 * 16..32 bytes (xorshift64*, fixed seed, printed), so key generation is not
 * measured. Each reader walks the key array and folds every answer (shard
 * and the primary's first character) into its own sink, which is kept, so
 * no lookup can be optimised away; non-OK answers are counted and must be 0.
 *
 * Cases, 1 and 2 reader threads each:
 *   rcu_*    aether_route_key on an aether_shardmap_slot (the product), while
 *            a writer thread republishes the map 1000 times per second: it
 *            moves one shard, builds a new map with version + 1 and publishes
 *            it (deadlines by clock_nanosleep TIMER_ABSTIME).
 *   rwlock_* the same work under pthread_rwlock (baseline_lockedmap.h), the
 *            same writer swapping under the write lock.
 *   mutex_*  the same under a pthread_mutex.
 *   unsync_* the limit: the same code path with no synchronisation; the
 *            same writer swaps a plain pointer and keeps every replaced map
 *            until the run ends (baseline_lockedmap.h). So rcu_* / unsync_*
 *            is the whole cost of RCU with the same writer load.
 *   unsync_nowriter_* the same without any writer: the ceiling of the
 *            machine, and what the writer's CPU costs on 2 cores.
 * Ratios: every case against rwlock with the same readers; rcu also against
 * unsync. The achieved publish rate of every writer case is reported. With
 * 2 readers + the writer on a 2-core machine the threads oversubscribe the
 * cores: that is the scenario asked for, reported as measured.
 *
 * Threading: the main thread creates and joins the readers and the writer of
 * each run; it sleeps while they run.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assertion.h"
#include "baseline_lockedmap.h"
#include "bench.h"
#include "report.h"
#include "routing.h"
#include "shardmap.h"
#include "snapshot.h"

#define LK_BENCH "lookup"
#define LK_SHARDS 1024u
#define LK_NODES 10u
#define LK_REPLICATION 2u
#define LK_KEYS (64u * 1024u)               /* power of two: the walk masks */
#define LK_KEY_LEN_MIN 16u
#define LK_KEY_LEN_MAX 32u
#define LK_READERS_MAX 2u
#define LK_SEED UINT64_C(0x9e3779b97f4a7c15)
#define LK_STOP_CHECK 1024u                 /* lookups between looks at the stop flag */
#define LK_LOOKUPS_MAX (UINT64_C(1) << 42)  /* per reader per run: never reached */
#define LK_PUBLISH_PERIOD_NS 1000000ull     /* 1000 publishes per second */
#define LK_PUBLISH_SLACK 1000u              /* writer iterations beyond seconds*1000 */
#define LK_SLEEP_RETRIES 1000u              /* EINTR restarts of one sleep */

AETHER_STATIC_ASSERT((LK_KEYS & (LK_KEYS - 1)) == 0, "key walk uses a mask");

typedef enum lk_kind { LK_RCU, LK_RWLOCK, LK_MUTEX, LK_UNSYNC, LK_NOWRITER } lk_kind;

/* The pre-generated keys: immutable while readers run. */
typedef struct lk_keys {
    char (*bytes)[LK_KEY_LEN_MAX];
    uint8_t *len;
} lk_keys;

/* One reader's private results, on its own cache line. */
typedef struct lk_reader {
    struct lk_run *run;
    uint64_t count;
    uint64_t sink;
    uint64_t errors;
    uint64_t t0_ns, t1_ns;
} __attribute__((aligned(64))) lk_reader;

typedef struct lk_run {
    lk_kind kind;
    uint32_t readers;
    const lk_keys *keys;
    aether_shardmap_slot slot;   /* LK_RCU */
    bench_lockedmap lm;          /* the others */
    aether_shardmap_builder *b;  /* writer-owned */
    uint64_t version;            /* writer-owned */
    double seconds;
    uint32_t stop;               /* atomic: main sets (release), threads poll */
    uint64_t publishes;          /* written by the writer, read after join */
    pthread_barrier_t start;
    lk_reader reader[LK_READERS_MAX];
} lk_run;

static uint64_t xorshift64s(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(0x2545f4914f6cdd1d);
}

static int keys_make(lk_keys *k)
{
    k->bytes = malloc((size_t)LK_KEYS * sizeof(*k->bytes));
    k->len = malloc(LK_KEYS);
    if (k->bytes == NULL || k->len == NULL)
        return -1;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789:/_-";
    uint64_t s = LK_SEED;
    for (uint32_t i = 0; i < LK_KEYS; i++) {
        k->len[i] = (uint8_t)(LK_KEY_LEN_MIN + xorshift64s(&s) % (LK_KEY_LEN_MAX - LK_KEY_LEN_MIN + 1));
        for (uint32_t j = 0; j < LK_KEY_LEN_MAX; j++)
            k->bytes[i][j] = alphabet[xorshift64s(&s) % (sizeof(alphabet) - 1)];
    }
    return 0;
}

static void keys_free(lk_keys *k)
{
    free(k->bytes);
    free(k->len);
}

/* The builder of version 1: 10 nodes, shard s owned by s%10 then (s+1)%10. */
static aether_status builder_make(aether_shardmap_builder **out)
{
    aether_err err;
    aether_status st = aether_shardmap_builder_create(LK_SHARDS, LK_REPLICATION, out, &err);
    if (st != AETHER_OK)
        goto fail;
    aether_node_index idx[LK_NODES];
    for (uint32_t n = 0; n < LK_NODES; n++) {
        char name[16];
        aether_node_id id;
        snprintf(name, sizeof(name), "node-%u", n);
        if ((st = aether_node_id_from_cstr(name, &id, &err)) != AETHER_OK ||
            (st = aether_shardmap_builder_add_node(*out, &id, &idx[n], &err)) != AETHER_OK)
            goto fail;
    }
    for (uint32_t s = 0; s < LK_SHARDS; s++) {
        aether_node_index owners[LK_REPLICATION] = { idx[s % LK_NODES], idx[(s + 1) % LK_NODES] };
        if ((st = aether_shardmap_builder_set_owners(*out, s, owners, LK_REPLICATION, &err)) !=
            AETHER_OK)
            goto fail;
    }
    aether_shardmap_builder_set_version(*out, 1);
    aether_shardmap_builder_set_term(*out, 1);
    return AETHER_OK;
fail:
    fprintf(stderr, "aether-bench: cannot build the shard map: %s\n", err.msg);
    aether_shardmap_builder_destroy(*out);
    *out = NULL;
    return st;
}

/* The writer's next map: version + 1 with shard (version % shards) moved to
 * the next pair of nodes, so every publish is a real change. */
static aether_shardmap *next_map(lk_run *r)
{
    r->version++;
    uint32_t s = (uint32_t)(r->version % LK_SHARDS);
    uint32_t first = (uint32_t)((s + r->version) % LK_NODES);
    aether_node_index owners[LK_REPLICATION] = { (aether_node_index)first,
                                                 (aether_node_index)((first + 1) % LK_NODES) };
    aether_err err;
    AETHER_ASSERT(aether_shardmap_builder_set_owners(r->b, s, owners, LK_REPLICATION, &err) ==
                  AETHER_OK);
    aether_shardmap_builder_set_version(r->b, r->version);
    aether_shardmap *m = NULL;
    AETHER_ASSERT(aether_shardmap_build(r->b, &m, &err) == AETHER_OK);
    return m;
}

static void *writer_main(void *arg)
{
    lk_run *r = arg;
    if (r->kind == LK_RCU)
        aether_rcu_register_thread();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t iters = (uint64_t)(r->seconds * 1e9 / LK_PUBLISH_PERIOD_NS) + LK_PUBLISH_SLACK;
    for (uint64_t i = 0; i < iters && !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); i++) {
        next.tv_nsec += (long)LK_PUBLISH_PERIOD_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        /* Only EINTR makes it return early; the deadline is absolute. */
        for (uint32_t t = 0;
             t < LK_SLEEP_RETRIES && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0;
             t++)
            ;
        if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
            break;
        aether_shardmap *m = next_map(r);
        if (r->kind == LK_RCU)
            AETHER_ASSERT(aether_shardmap_slot_publish(&r->slot, &m) == AETHER_OK);
        else if (bench_lockedmap_swap(&r->lm, &m) != AETHER_OK)
            AETHER_ASSERT(!"out of memory for the retired maps");
        r->publishes++;
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    lk_reader *me = arg;
    lk_run *r = me->run;
    const lk_keys *k = r->keys;
    lk_kind kind = r->kind;
    uint64_t sink = 0, errors = 0, i = 0;
    uint32_t idx = (uint32_t)(me - r->reader) * (LK_KEYS / LK_READERS_MAX);
    if (kind == LK_RCU)
        aether_rcu_register_thread(); /* keep registration out of the timed loop */
    pthread_barrier_wait(&r->start);
    me->t0_ns = bench_now_ns();
    for (; i < LK_LOOKUPS_MAX; i++) {
        if ((i % LK_STOP_CHECK) == 0 && __atomic_load_n(&r->stop, __ATOMIC_RELAXED))
            break;
        aether_shard_route route;
        aether_status st;
        idx = (idx + 1) & (LK_KEYS - 1);
        if (kind == LK_RCU)
            st = aether_route_key(&r->slot, k->bytes[idx], k->len[idx], &route);
        else
            st = bench_lockedmap_route_key(&r->lm, k->bytes[idx], k->len[idx], &route);
        errors += st != AETHER_OK;
        sink ^= (uint64_t)route.shard ^ ((uint64_t)(unsigned char)route.primary.str[0] << 32);
    }
    me->t1_ns = bench_now_ns();
    me->count = i;
    me->sink = sink;
    me->errors = errors;
    return NULL;
}

typedef struct lk_result {
    double cores_used; /* process CPU time / wall time of the run */
    double lookups_per_s;
    double publishes_per_s;
    uint64_t sink;
} lk_result;

static int lk_run_once(lk_kind kind, uint32_t readers, const lk_keys *keys, double seconds,
                       lk_result *out)
{
    AETHER_ASSERT(readers >= 1 && readers <= LK_READERS_MAX);
    lk_run *r = aligned_alloc(64, sizeof(*r));
    if (r == NULL)
        return -1;
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->readers = readers;
    r->keys = keys;
    r->seconds = seconds;
    r->version = 1;
    uint64_t cpu0 = bench_process_cpu_ns(), wall0 = bench_now_ns();
    if (builder_make(&r->b) != AETHER_OK) {
        free(r);
        return -1;
    }
    aether_err err;
    aether_shardmap *m = NULL;
    AETHER_ASSERT(aether_shardmap_build(r->b, &m, &err) == AETHER_OK);
    if (kind == LK_RCU) {
        aether_shardmap_slot_init(&r->slot);
        AETHER_ASSERT(aether_shardmap_slot_publish(&r->slot, &m) == AETHER_OK);
    } else {
        bench_lock_kind lk = kind == LK_RWLOCK ? BENCH_LOCK_RWLOCK
                             : kind == LK_MUTEX ? BENCH_LOCK_MUTEX
                                                : BENCH_LOCK_NONE; /* UNSYNC, NOWRITER */
        bench_lockedmap_init(&r->lm, lk, &m);
    }
    bool has_writer = kind != LK_NOWRITER;
    pthread_barrier_init(&r->start, NULL, readers + 1);
    pthread_t rt[LK_READERS_MAX], wt;
    for (uint32_t i = 0; i < readers; i++) {
        r->reader[i].run = r;
        if (pthread_create(&rt[i], NULL, reader_main, &r->reader[i]) != 0) {
            fprintf(stderr, "aether-bench: cannot start reader threads\n");
            abort(); /* the barrier would never open */
        }
    }
    pthread_barrier_wait(&r->start);
    uint64_t t0 = bench_now_ns();
    if (has_writer && pthread_create(&wt, NULL, writer_main, r) != 0) {
        fprintf(stderr, "aether-bench: cannot start the writer thread\n");
        abort();
    }
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    for (uint32_t t = 0; t < LK_SLEEP_RETRIES && nanosleep(&ts, &ts) != 0; t++)
        ; /* EINTR: sleep the remaining time */
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    uint64_t t_stop = bench_now_ns();
    for (uint32_t i = 0; i < readers; i++)
        pthread_join(rt[i], NULL);
    if (has_writer)
        pthread_join(wt, NULL);

    uint64_t total = 0, errors = 0, first = UINT64_MAX, last = 0;
    out->sink = 0;
    for (uint32_t i = 0; i < readers; i++) {
        const lk_reader *rd = &r->reader[i];
        total += rd->count;
        errors += rd->errors;
        out->sink ^= rd->sink;
        first = rd->t0_ns < first ? rd->t0_ns : first;
        last = rd->t1_ns > last ? rd->t1_ns : last;
    }
    AETHER_ASSERT(errors == 0); /* every lookup answered from a published map */
    out->lookups_per_s = (double)total * 1e9 / (double)(last - first);
    out->cores_used = (double)(bench_process_cpu_ns() - cpu0) / (double)(bench_now_ns() - wall0);
    out->publishes_per_s = has_writer ? (double)r->publishes * 1e9 / (double)(t_stop - t0) : 0;
    if (kind == LK_RCU) {
        uint64_t v = 0;
        AETHER_ASSERT(aether_route_map_version(&r->slot, &v) == AETHER_OK);
        AETHER_ASSERT(v == 1 + r->publishes);
        aether_shardmap_slot_fini(&r->slot);
        aether_rcu_barrier(); /* every retired map freed before the next run */
    } else {
        bench_lockedmap_fini(&r->lm);
    }
    pthread_barrier_destroy(&r->start);
    aether_shardmap_builder_destroy(r->b);
    free(r);
    return 0;
}

typedef struct lk_case {
    const char *name;
    lk_kind kind;
    uint32_t readers;
    const char *baseline;  /* rwlock case with the same readers */
    const char *limit;     /* unsync case with the same readers; NULL: no row */
    bench_stats rate;
    bench_stats publishes;
    bench_stats cores;
} lk_case;

static double median_of(const lk_case *cases, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cases[i].name, name) == 0)
            return cases[i].rate.median;
    return 0;
}

int bench_lookup_main(const bench_opts *o)
{
    lk_case cases[] = {
        { .name = "rwlock_1r", .kind = LK_RWLOCK, .readers = 1, .baseline = "rwlock_1r" },
        { .name = "rwlock_2r", .kind = LK_RWLOCK, .readers = 2, .baseline = "rwlock_2r" },
        { .name = "mutex_1r", .kind = LK_MUTEX, .readers = 1, .baseline = "rwlock_1r" },
        { .name = "mutex_2r", .kind = LK_MUTEX, .readers = 2, .baseline = "rwlock_2r" },
        { .name = "unsync_1r", .kind = LK_UNSYNC, .readers = 1, .baseline = "rwlock_1r" },
        { .name = "unsync_2r", .kind = LK_UNSYNC, .readers = 2, .baseline = "rwlock_2r" },
        { .name = "unsync_nowriter_1r", .kind = LK_NOWRITER, .readers = 1,
          .baseline = "rwlock_1r" },
        { .name = "unsync_nowriter_2r", .kind = LK_NOWRITER, .readers = 2,
          .baseline = "rwlock_2r" },
        { .name = "rcu_1r", .kind = LK_RCU, .readers = 1, .baseline = "rwlock_1r",
          .limit = "unsync_1r" },
        { .name = "rcu_2r", .kind = LK_RCU, .readers = 2, .baseline = "rwlock_2r",
          .limit = "unsync_2r" },
    };
    const size_t ncases = sizeof(cases) / sizeof(cases[0]);
    lk_keys keys;
    if (keys_make(&keys) != 0) {
        keys_free(&keys);
        fprintf(stderr, "aether-bench: out of memory for keys\n");
        return -1;
    }
    char note[512];
    snprintf(note, sizeof(note),
             "lookups/s summed over readers; %u shards, %u nodes, R=%u; %u keys of %u..%u "
             "bytes (seed 0x%llx);\nrcu/rwlock/mutex/unsync: a writer republishes 1000/s "
             "(publishes row = achieved rate), unsync swaps a plain pointer;\n"
             "unsync_nowriter: no writer at all; cores_used = process CPU / wall time;\n"
             "liburcu memb read side uses "
             "%s",
             LK_SHARDS, LK_NODES, LK_REPLICATION, LK_KEYS, LK_KEY_LEN_MIN, LK_KEY_LEN_MAX,
             (unsigned long long)LK_SEED,
             urcu_memb_has_sys_membarrier ? "compiler barriers (sys_membarrier available)"
                                          : "full fences (no sys_membarrier)");
    bench_report_begin(o, LK_BENCH, note);
    uint64_t sink = 0;
    int rc = 0;
    for (size_t i = 0; i < ncases && rc == 0; i++) {
        lk_case *c = &cases[i];
        double rate[BENCH_RUNS_MAX], pubs[BENCH_RUNS_MAX], cores[BENCH_RUNS_MAX];
        lk_result warm;
        /* An unreported short run warms caches, the allocator and RCU. */
        if (lk_run_once(c->kind, c->readers, &keys, o->seconds / 5, &warm) != 0) {
            rc = -1;
            break;
        }
        for (unsigned run = 0; run < o->runs; run++) {
            lk_result res;
            if (lk_run_once(c->kind, c->readers, &keys, o->seconds, &res) != 0) {
                rc = -1;
                break;
            }
            rate[run] = res.lookups_per_s;
            pubs[run] = res.publishes_per_s;
            cores[run] = res.cores_used;
            sink ^= res.sink;
        }
        if (rc != 0)
            break;
        c->rate = bench_stats_of(rate, o->runs);
        c->publishes = bench_stats_of(pubs, o->runs);
        c->cores = bench_stats_of(cores, o->runs);
        bench_report_row(o, LK_BENCH, c->name, "throughput", &c->rate, "lookup/s", c->baseline,
                         median_of(cases, ncases, c->baseline));
        if (c->limit != NULL)
            bench_report_row(o, LK_BENCH, c->name, "throughput", &c->rate, "lookup/s", c->limit,
                             median_of(cases, ncases, c->limit));
        if (c->kind != LK_NOWRITER)
            bench_report_row(o, LK_BENCH, c->name, "publishes", &c->publishes, "pub/s", NULL, 0);
        bench_report_row(o, LK_BENCH, c->name, "cores_used", &c->cores, "cores", NULL, 0);
    }
    /* The sinks are consumed here so the lookups are observable output. */
    bench_report_note(o, "(reader sink %016llx)", (unsigned long long)sink);
    keys_free(&keys);
    return rc;
}
