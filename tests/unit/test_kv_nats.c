/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kv_nats.c: the NATS JetStream KV store (transport/nats_kv.h) against
 * a real nats-server with JetStream, started by each test on a free
 * loopback port with its own storage directory. The cases mirror
 * test_kv_store.c where they apply on a real server: create-if-absent, CAS
 * conflict, one revision counter per bucket, delete markers and
 * conditional delete, TTL expiry without a watch event, watch order,
 * single-winner create under threads, a frozen server (timeouts: writes
 * unknown and applied later, reads unavailable), a killed server
 * (unavailable, fast), bucket re-creation (revisions restart), and the
 * lease protocol (actors/lease.h) unchanged on NATS stores.
 *
 * nats-server missing is a FAILURE, not a skip (tools/test installs it):
 * the server is looked up, started, frozen, killed and restarted by
 * tests/support/nats_server.h.
 *
 * AETHER_TEST_LABELS: integration
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "cu_test.h"
#include "kv_store.h"
#include "lease.h"
#include "nats_kv.h"
#include "nats_server.h"

#define MS AETHER_NS_PER_MS
#define POLL_MS 10u
#define EVENT_WAIT_MS 3000u      /* a watch event arrives within this */
#define STORES_MAX 8u
#define FAST_TIMEOUT_MS 300u     /* per-request timeout of the fault tests */

/* ---- Time ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * AETHER_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_since(uint64_t t0_ns)
{
    return (now_ns() - t0_ns) / MS;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* bounded: the remaining time shrinks */
        ;
}

/* ---- The server (tests/support/nats_server.h) -------------------------------- */

static tns_server srv;
static natsConnection *nc;
static aether_kv *stores[STORES_MAX];

static natsConnection *connect_to_server(void)
{
    natsConnection *c = tns_connect(&srv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static void drop_all(void);

/* Per test: a fresh server, storage directory and connection. */
static void up(void)
{
    drop_all();
    /* nats-server missing or not starting is a failure (the reason is on stderr). */
    CU_ASSERT_TRUE_FATAL(tns_start(&srv, "aether-kv-nats"));
    nc = connect_to_server();
}

/* Everything up() made, in reverse; safe after a fatal assertion. */
static void drop_all(void)
{
    for (unsigned i = 0; i < STORES_MAX; i++) {
        aether_kv_destroy(stores[i]);
        stores[i] = NULL;
    }
    natsConnection_Destroy(nc);
    nc = NULL;
    tns_destroy(&srv);
}

static int suite_cleanup(void)
{
    drop_all();
    nats_CloseAndWait(2000);
    return 0;
}

static aether_kv *open_store(const char *bucket, uint64_t ttl_ms, uint64_t timeout_ms)
{
    aether_kv_nats_config cfg = {.conn = nc, .bucket = bucket, .ttl_ms = ttl_ms,
                                 .timeout_ms = timeout_ms, .create_if_missing = true};
    aether_err err = {0};
    aether_kv *kv = NULL;
    aether_status s = aether_kv_nats_create(&cfg, &kv, &err);
    if (s != AETHER_OK)
        fprintf(stderr, "aether_kv_nats_create(%s): %s: %s\n", bucket, aether_status_str(s),
                err.msg);
    CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
    CU_ASSERT_TRUE_FATAL(aether_kv_is_nats(kv));
    CU_ASSERT_FALSE(aether_kv_is_mem(kv));
    CU_ASSERT_EQUAL(aether_kv_ttl_ms(kv), ttl_ms);
    for (unsigned i = 0; i < STORES_MAX; i++) {
        if (stores[i] == NULL) {
            stores[i] = kv;
            return kv;
        }
    }
    CU_FAIL_FATAL("too many stores in one test");
    return NULL;
}

static aether_kv *store(const char *bucket, uint64_t ttl_ms)
{
    return open_store(bucket, ttl_ms, 0);
}

static void drop_store(aether_kv *kv)
{
    for (unsigned i = 0; i < STORES_MAX; i++) {
        if (stores[i] == kv) {
            stores[i] = NULL;
            aether_kv_destroy(kv);
            return;
        }
    }
    CU_FAIL("not a store of this test");
}

/* ---- Helpers as in test_kv_store.c ------------------------------------------ */

static aether_status put_new(aether_kv *kv, const char *key, const char *val, uint64_t *rev)
{
    return aether_kv_create(kv, key, val, strlen(val), rev, NULL);
}

static aether_status put_cas(aether_kv *kv, const char *key, const char *val, uint64_t expected,
                             uint64_t *rev)
{
    return aether_kv_update(kv, key, val, strlen(val), expected, rev, NULL);
}

static void expect_value(aether_kv *kv, const char *key, const char *val, uint64_t rev)
{
    aether_kv_entry e;
    aether_err err = {0};
    aether_status s = aether_kv_get(kv, key, &e, &err);
    if (s != AETHER_OK)
        fprintf(stderr, "get %s: %s: %s\n", key, aether_status_str(s), err.msg);
    CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
    CU_ASSERT_STRING_EQUAL(e.key, key);
    CU_ASSERT_EQUAL(e.value_len, strlen(val));
    CU_ASSERT_STRING_EQUAL((const char *)e.value, val);
    CU_ASSERT_EQUAL(e.revision, rev);
    aether_kv_entry_fini(&e);
}

static void expect_absent(aether_kv *kv, const char *key)
{
    aether_kv_entry e;
    CU_ASSERT_EQUAL(aether_kv_get(kv, key, &e, NULL), AETHER_ENOTFOUND);
    CU_ASSERT_PTR_NULL(e.value);
}

/* ---- A recording watcher (callbacks come from the store's threads) ---------- */

#define REC_MAX 64
typedef struct rec_event {
    aether_kv_op op;
    char key[64];
    char value[64];
    uint64_t revision;
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every event */
    rec_event ev[REC_MAX];
    unsigned n;         /* under mu */
    unsigned overflow;  /* under mu */
    unsigned nul_missing; /* under mu: a PUT value without its NUL */
} recorder;

/* Static, so a watcher still running after a fatal assertion writes into
 * live memory until drop_all stops it. */
static recorder rec_a, rec_b, rec_c;

static void rec_init(recorder *r)
{
    memset(r->ev, 0, sizeof(r->ev));
    r->n = r->overflow = r->nul_missing = 0;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void record_cb(void *arg, const aether_kv_event *ev)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n < REC_MAX) {
        rec_event *e = &r->ev[r->n++];
        e->op = ev->op;
        snprintf(e->key, sizeof(e->key), "%s", ev->key);
        snprintf(e->value, sizeof(e->value), "%.*s", (int)ev->value_len,
                 ev->value ? (const char *)ev->value : "");
        e->revision = ev->revision;
        if (ev->op == AETHER_KV_OP_PUT && (ev->value == NULL || ev->value[ev->value_len] != 0))
            r->nul_missing++;
    } else {
        r->overflow++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits (bounded) until at least n events arrived; returns the count. */
static unsigned rec_wait(recorder *r, unsigned n, unsigned timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000u;
    deadline.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (r->n < n) { /* bounded: the deadline */
        if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT)
            break;
    }
    unsigned got = r->n;
    pthread_mutex_unlock(&r->mu);
    return got;
}

static unsigned rec_count(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    unsigned n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static rec_event rec_at(recorder *r, unsigned i)
{
    pthread_mutex_lock(&r->mu);
    rec_event e = i < r->n ? r->ev[i] : (rec_event){.op = AETHER_KV_OP_COUNT_};
    pthread_mutex_unlock(&r->mu);
    return e;
}

static void rec_dump(recorder *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    fprintf(stderr, "\n    [%s: %u events]\n", name, r->n);
    for (unsigned i = 0; i < r->n; i++)
        fprintf(stderr, "      %u: %s '%s' = '%s' @%llu\n", i, aether_kv_op_name(r->ev[i].op),
                r->ev[i].key, r->ev[i].value, (unsigned long long)r->ev[i].revision);
    pthread_mutex_unlock(&r->mu);
}

static aether_kv_watcher *watch(aether_kv *kv, const char *pattern, recorder *r)
{
    aether_kv_watcher *w = NULL;
    aether_err err = {0};
    aether_status s = aether_kv_watch(kv, pattern, record_cb, r, &w, &err);
    if (s != AETHER_OK)
        fprintf(stderr, "watch %s: %s: %s\n", pattern, aether_status_str(s), err.msg);
    CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    return w;
}

/* ---- Tests ------------------------------------------------------------------ */

static void test_create_if_absent(void)
{
    up();
    aether_kv *kv = store("t_create", 0);
    uint64_t r1 = 0, r2 = 99;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "leader", "a", &r1), AETHER_OK);
    CU_ASSERT_EQUAL(r1, 1); /* a fresh bucket's first write */
    CU_ASSERT_EQUAL(aether_kv_create(kv, "leader", "b", 1, &r2, &err), AETHER_EEXIST);
    CU_ASSERT_EQUAL(r2, 0);
    CU_ASSERT_EQUAL(err.code, AETHER_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "leader"));
    expect_value(kv, "leader", "a", 1); /* the loser changed nothing */
    /* An empty value is a value. */
    CU_ASSERT_EQUAL(aether_kv_create(kv, "empty", "", 0, &r2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r2, 2);
    expect_value(kv, "empty", "", 2);
    /* Binary values round-trip, NULs included. */
    const uint8_t bin[] = {0, 1, 2, 0xff, 0};
    CU_ASSERT_EQUAL(aether_kv_create(kv, "bin", bin, sizeof(bin), &r2, NULL), AETHER_OK);
    aether_kv_entry e;
    CU_ASSERT_EQUAL_FATAL(aether_kv_get(kv, "bin", &e, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(e.value_len, sizeof(bin));
    CU_ASSERT_EQUAL(memcmp(e.value, bin, sizeof(bin)), 0);
    CU_ASSERT_EQUAL(e.value[e.value_len], 0);
    aether_kv_entry_fini(&e);
    /* A second handle on the same bucket (create_if_missing is idempotent). */
    aether_kv *kv2 = store("t_create", 0);
    CU_ASSERT_EQUAL(put_new(kv2, "leader", "c", &r2), AETHER_EEXIST);
    expect_value(kv2, "leader", "a", 1);
    drop_all();
}

static void test_update_cas_conflict(void)
{
    up();
    aether_kv *kv = store("t_cas", 0);
    uint64_t r1, r2, r3;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "k", "v1", &r1), AETHER_OK);
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r2), AETHER_OK);
    CU_ASSERT_TRUE(r2 > r1);
    /* The first writer's revision is stale now. */
    CU_ASSERT_EQUAL(aether_kv_update(kv, "k", "v3", 2, r1, &r3, &err), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(r3, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "expected 1"));
    expect_value(kv, "k", "v2", r2);
    /* A future revision conflicts too. */
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v3", r2 + 5, &r3), AETHER_ECONFLICT);
    /* Absent key: conflict, nothing written. */
    CU_ASSERT_EQUAL(put_cas(kv, "nope", "x", 1, &r3), AETHER_ECONFLICT);
    expect_absent(kv, "nope");
    /* Expected revision 0 is create's job. */
    CU_ASSERT_EQUAL(aether_kv_update(kv, "k", "x", 1, 0, &r3, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "create"));
    /* None of the refused writes took a revision. */
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v4", r2, &r3), AETHER_OK);
    CU_ASSERT_EQUAL(r3, r2 + 1);
    drop_all();
}

static void test_revision_across_keys(void)
{
    up();
    aether_kv *kv = store("t_revs", 0);
    uint64_t last = 0, r;
    const char *keys[] = {"a", "b.c", "shard/1", "x=y"};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 4; i++) {
            aether_status s =
                round == 0 ? put_new(kv, keys[i], "v", &r)
                           : put_cas(kv, keys[i], "v", (uint64_t)(round - 1) * 4 + i + 1, &r);
            CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
            CU_ASSERT_EQUAL(r, last + 1); /* one counter, strictly increasing */
            last = r;
        }
    }
    /* Delete and purge markers take revisions too. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "a", 0, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r, last + 1);
    last = r;
    CU_ASSERT_EQUAL(aether_kv_purge(kv, "b.c", &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(r, last + 1);
    last = r;
    expect_absent(kv, "a");
    expect_absent(kv, "b.c");
    /* Failed writes do not. */
    CU_ASSERT_EQUAL(put_new(kv, "x=y", "v", &r), AETHER_EEXIST);
    CU_ASSERT_EQUAL(put_cas(kv, "x=y", "v", 1, &r), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(put_new(kv, "z", "v", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, last + 1);
    drop_all();
}

static void test_delete_then_create(void)
{
    up();
    aether_kv *kv = store("t_delete", 0);
    rec_init(&rec_a);
    aether_kv_watcher *w = watch(kv, "leader", &rec_a);
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 1, EVENT_WAIT_MS), 1); /* INIT_DONE only */
    CU_ASSERT_EQUAL(rec_at(&rec_a, 0).op, AETHER_KV_OP_INIT_DONE);
    uint64_t r1, rdel, r2, r3;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "leader", "a", &r1), AETHER_OK);
    /* History 1: a watcher that lags may skip a value already replaced, so
     * each event is awaited before the same key is written again. */
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 2, EVENT_WAIT_MS), 2);
    /* A conditional delete with a stale revision is refused. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r1 + 1, &rdel, &err), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(rdel, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "leader"));
    expect_value(kv, "leader", "a", r1);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r1, &rdel, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rdel, r1 + 1);
    expect_absent(kv, "leader");
    /* Watchers saw the delete. */
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 3, EVENT_WAIT_MS), 3);
    rec_event ev = rec_at(&rec_a, 2);
    CU_ASSERT_EQUAL(ev.op, AETHER_KV_OP_DELETE);
    CU_ASSERT_EQUAL(ev.revision, rdel);
    CU_ASSERT_STRING_EQUAL(ev.key, "leader");
    /* Create succeeds over the marker; the refused first try took no revision. */
    CU_ASSERT_EQUAL(put_new(kv, "leader", "b", &r2), AETHER_OK);
    CU_ASSERT_EQUAL(r2, rdel + 1);
    expect_value(kv, "leader", "b", r2);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 4, EVENT_WAIT_MS), 4);
    /* ... and over a purge marker. */
    uint64_t rp;
    CU_ASSERT_EQUAL(aether_kv_purge(kv, "leader", &rp, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 5, EVENT_WAIT_MS), 5);
    CU_ASSERT_EQUAL(put_new(kv, "leader", "b2", &r2), AETHER_OK);
    CU_ASSERT_EQUAL(r2, rp + 1);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 6, EVENT_WAIT_MS), 6);
    /* NATS semantics: CAS is against the key's last revision, a marker's too. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", 0, &rdel, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 7, EVENT_WAIT_MS), 7);
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "c", rdel, &r3), AETHER_OK);
    expect_value(kv, "leader", "c", r3);
    /* Unconditional delete of an absent key writes a marker (kvStore_Delete). */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "ghost", 0, &rdel, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rdel, r3 + 1);
    /* A conditional delete of an absent key conflicts. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "never", 1, NULL, NULL), AETHER_ECONFLICT);
    /* INIT_DONE, a, delete, b, purge, b2, delete, c: "ghost" is not watched. */
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 8, EVENT_WAIT_MS), 8);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 4).op, AETHER_KV_OP_PURGE);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 7).revision, r3);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 7).value, "c");
    sleep_ms(100);
    CU_ASSERT_EQUAL(rec_count(&rec_a), 8);
    aether_kv_unwatch(kv, w);
    aether_kv_unwatch(kv, NULL);
    drop_all();
}

static void test_ttl_expiry_no_event(void)
{
    up();
    aether_kv *kv = store("t_ttl", 1000);
    CU_ASSERT_EQUAL(aether_kv_ttl_ms(kv), 1000);
    rec_init(&rec_a);
    aether_kv_watcher *w = watch(kv, ">", &rec_a);
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 1, EVENT_WAIT_MS), 1);
    uint64_t r1, r2, r3;
    CU_ASSERT_EQUAL_FATAL(put_new(kv, "leader", "a", &r1), AETHER_OK);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 2, EVENT_WAIT_MS), 2);
    sleep_ms(500);
    uint64_t sent = now_ns(); /* TTL restarts at the update, never before it is sent */
    CU_ASSERT_EQUAL_FATAL(put_cas(kv, "leader", "a2", r1, &r2), AETHER_OK);
    sleep_ms(700);
    expect_value(kv, "leader", "a2", r2); /* first put + 1200 ms: alive (the update counts) */
    /* Gone at sent + 1000 ms or (server timer) a little later, never before. */
    aether_status s = AETHER_OK;
    uint64_t gone_ms = 0;
    while (ms_since(sent) < 2500) { /* bounded: 1.5 s past the TTL */
        aether_kv_entry e;
        uint64_t before = ms_since(sent);
        s = aether_kv_get(kv, "leader", &e, NULL);
        aether_kv_entry_fini(&e);
        if (s != AETHER_OK) {
            gone_ms = before;
            break;
        }
        sleep_ms(POLL_MS);
    }
    CU_ASSERT_EQUAL_FATAL(s, AETHER_ENOTFOUND);
    CU_ASSERT_TRUE(gone_ms >= 950); /* 50 ms for the write's own trip */
    fprintf(stderr, "\n    [ttl: absent %llu ms after the update was sent]\n",
            (unsigned long long)gone_ms);
    sleep_ms(300);
    CU_ASSERT_EQUAL(rec_count(&rec_a), 3); /* ... and no event for the expiry */
    /* Expired = absent: update conflicts, create succeeds. */
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "x", r2, &r3), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r2, NULL, NULL), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(put_new(kv, "leader", "b", &r3), AETHER_OK);
    CU_ASSERT_TRUE(r3 > r2);
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 4, EVENT_WAIT_MS), 4);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 3).op, AETHER_KV_OP_PUT);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 3).value, "b");
    /* A delete, unlike expiry, is an event. */
    uint64_t marker_sent = now_ns();
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r3, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 5, EVENT_WAIT_MS), 5);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 4).op, AETHER_KV_OP_DELETE);
    /* Markers expire as well: a new watcher stops seeing this one. */
    bool marker_gone = false;
    sleep_ms(900);
    while (!marker_gone && ms_since(marker_sent) < 2500) { /* bounded: 1.5 s past the TTL */
        rec_init(&rec_b);
        aether_kv_watcher *w2 = watch(kv, ">", &rec_b);
        CU_ASSERT_TRUE(rec_wait(&rec_b, 1, EVENT_WAIT_MS) >= 1);
        rec_event first = rec_at(&rec_b, 0);
        aether_kv_unwatch(kv, w2);
        marker_gone = first.op == AETHER_KV_OP_INIT_DONE;
        if (!marker_gone)
            sleep_ms(50);
    }
    CU_ASSERT_TRUE(marker_gone);
    CU_ASSERT_EQUAL(rec_count(&rec_a), 5);
    aether_kv_unwatch(kv, w);
    drop_all();
}

static void test_watch_order(void)
{
    up();
    aether_kv *kv = store("t_watch", 0);
    uint64_t ra, rb, rc, r;
    CU_ASSERT_EQUAL(put_new(kv, "shard.b", "b1", &rb), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard.a", "a1", &ra), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "other", "o", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard.c", "c1", &rc), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "shard.c", rc, &rc, NULL), AETHER_OK);

    rec_init(&rec_a);
    aether_kv_watcher *w = watch(kv, "shard.>", &rec_a);
    /* Current values oldest first (not key order), the marker included, then INIT_DONE. */
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 4, EVENT_WAIT_MS), 4);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 0).key, "shard.b");
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 0).value, "b1");
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 1).key, "shard.a");
    CU_ASSERT_EQUAL(rec_at(&rec_a, 2).op, AETHER_KV_OP_DELETE);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 2).key, "shard.c");
    CU_ASSERT_EQUAL(rec_at(&rec_a, 2).revision, rc);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 3).op, AETHER_KV_OP_INIT_DONE);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 3).revision, 0);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 3).key, "");

    /* Live writes, in revision order; non-matching keys are not delivered. */
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a2", ra, &ra), AETHER_OK);
    if (rec_wait(&rec_a, 5, EVENT_WAIT_MS) != 5)
        rec_dump(&rec_a, "watch_order");
    CU_ASSERT_EQUAL(put_new(kv, "other2", "x", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard", "x", &r), AETHER_OK); /* '>' needs a token more */
    CU_ASSERT_EQUAL(put_new(kv, "shard.d.e", "de", &r), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_purge(kv, "shard.b", &rb, NULL), AETHER_OK);
    if (rec_wait(&rec_a, 7, EVENT_WAIT_MS) != 7)
        rec_dump(&rec_a, "watch_order");
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_a, 7, EVENT_WAIT_MS), 7);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 4).value, "a2");
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 5).key, "shard.d.e");
    CU_ASSERT_EQUAL(rec_at(&rec_a, 6).op, AETHER_KV_OP_PURGE);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 6).revision, rb);
    for (unsigned i = 5; i < 7; i++)
        CU_ASSERT_TRUE(rec_at(&rec_a, i).revision > rec_at(&rec_a, i - 1).revision);

    /* '*' is one token; an exact key watch sees only its key. */
    rec_init(&rec_b);
    rec_init(&rec_c);
    aether_kv_watcher *ws = watch(kv, "shard.*", &rec_b);
    aether_kv_watcher *we = watch(kv, "shard.a", &rec_c);
    /* Initial: shard.b (purge marker), shard.a, shard.c (marker) / shard.a; then INIT_DONE. */
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_b, 4, EVENT_WAIT_MS), 4);
    CU_ASSERT_EQUAL_FATAL(rec_wait(&rec_c, 2, EVENT_WAIT_MS), 2);
    CU_ASSERT_EQUAL(rec_at(&rec_b, 3).op, AETHER_KV_OP_INIT_DONE);
    CU_ASSERT_EQUAL(rec_at(&rec_c, 1).op, AETHER_KV_OP_INIT_DONE);
    CU_ASSERT_EQUAL(put_new(kv, "shard.d.f", "no", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a3", ra, &ra), AETHER_OK);
    CU_ASSERT_EQUAL(rec_wait(&rec_b, 5, EVENT_WAIT_MS), 5);
    CU_ASSERT_EQUAL(rec_wait(&rec_c, 3, EVENT_WAIT_MS), 3);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_b, 4).key, "shard.a"); /* not shard.d.f */
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_c, 2).value, "a3");

    /* After unwatch: no more events. */
    unsigned before = rec_wait(&rec_a, 9, EVENT_WAIT_MS);
    CU_ASSERT_EQUAL(before, 9); /* shard.d.f and shard.a */
    aether_kv_unwatch(kv, w);
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a4", ra, &ra), AETHER_OK);
    CU_ASSERT_EQUAL(rec_wait(&rec_c, 4, EVENT_WAIT_MS), 4);
    CU_ASSERT_EQUAL(rec_count(&rec_a), before);
    aether_kv_unwatch(kv, ws);
    aether_kv_unwatch(kv, we);
    pthread_mutex_lock(&rec_a.mu);
    CU_ASSERT_EQUAL(rec_a.nul_missing + rec_b.nul_missing + rec_c.nul_missing, 0);
    pthread_mutex_unlock(&rec_a.mu);
    drop_all();
}

static void test_config_and_validation(void)
{
    up();
    aether_err err = {0};
    aether_kv *kv = NULL;
    aether_kv_nats_config cfg = {.conn = nc, .bucket = "a.b", .create_if_missing = true};
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "0x2e"));
    CU_ASSERT_PTR_NULL(kv);
    cfg.bucket = "t_cfg";
    cfg.replicas = 2;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "replicas"));
    cfg.replicas = 1;
    cfg.conn = NULL;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINVAL);
    cfg.conn = nc;
    /* Bind only: no such bucket. */
    cfg.create_if_missing = false;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_ENOTFOUND);
    CU_ASSERT_PTR_NULL(kv);
    /* Made with one TTL, asked for another: refused both ways. */
    aether_kv *made = store("t_cfg", 0);
    CU_ASSERT_PTR_NOT_NULL(made);
    cfg.ttl_ms = 500;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "TTL of 0 ms, not the 500 ms"));
    /* Creating over it names both values too (nats.c alone says only
     * "Existing configuration is different"; issue 13). */
    cfg.create_if_missing = true;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bucket 't_cfg' exists with a TTL of 0 ms, not the 500 ms"));
    CU_ASSERT_PTR_NULL(kv);
    fprintf(stderr, "\n    [create over another config: %s]\n", err.msg);
    /* The same TTL with another replica count is refused too, naming both. */
    cfg.ttl_ms = 0;
    cfg.replicas = 3;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bucket 't_cfg' exists with 1 replicas, not the 3 asked for"));
    CU_ASSERT_PTR_NULL(kv);
    cfg.replicas = 1;
    cfg.ttl_ms = 0;
    cfg.create_if_missing = false;
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_OK);
    aether_kv_destroy(kv);
    /* Keys and values are checked before NATS sees them. */
    uint64_t r;
    CU_ASSERT_EQUAL(aether_kv_create(made, "a b", "v", 1, &r, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_kv_create(made, "a..b", "v", 1, &r, &err), AETHER_EINVAL);
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL(aether_kv_watch(made, "a.>.c", record_cb, &rec_a, &w, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(w);
    /* A value at the interface maximum: the server's max_payload counts the
     * headers, so this is refused as EINVAL, and the connection survives. */
    char *big = calloc(1, AETHER_KV_VALUE_LEN_MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    aether_status s = aether_kv_create(made, "big", big, AETHER_KV_VALUE_LEN_MAX, &r, &err);
    fprintf(stderr, "    [1 MiB value: %s %s]\n", aether_status_str(s), err.msg);
    CU_ASSERT_TRUE(s == AETHER_OK || s == AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_kv_create(made, "big2", big, 512u * 1024u, &r, NULL), AETHER_OK);
    free(big);
    CU_ASSERT_EQUAL(put_new(made, "after", "v", &r), AETHER_OK);
    drop_all();
}

/* ---- Single winner under threads -------------------------------------------- */

#define RACE_THREADS 4
#define RACE_ROUNDS 20

typedef struct race {
    aether_kv *kv;
    pthread_barrier_t barrier;
    unsigned wins[RACE_ROUNDS]; /* atomic */
    unsigned odd;               /* atomic: statuses other than OK / EEXIST */
} race;

typedef struct race_arg {
    race *r;
    unsigned id;
} race_arg;

static void *race_thread(void *p)
{
    race_arg *a = p;
    char val[8];
    snprintf(val, sizeof(val), "t%u", a->id);
    for (unsigned round = 0; round < RACE_ROUNDS; round++) {
        pthread_barrier_wait(&a->r->barrier);
        uint64_t rev;
        aether_status s = aether_kv_create(a->r->kv, "race", val, strlen(val), &rev, NULL);
        if (s == AETHER_OK)
            __atomic_fetch_add(&a->r->wins[round], 1, __ATOMIC_RELAXED);
        else if (s != AETHER_EEXIST)
            __atomic_fetch_add(&a->r->odd, 1, __ATOMIC_RELAXED);
        pthread_barrier_wait(&a->r->barrier);
        /* Alternate markers: every other round the create goes over a purge. */
        if (a->id == 0) {
            if (round % 2 == 0)
                aether_kv_delete(a->r->kv, "race", 0, NULL, NULL);
            else
                aether_kv_purge(a->r->kv, "race", NULL, NULL);
        }
    }
    return NULL;
}

static void test_concurrent_create_single_winner(void)
{
    up();
    static race r;
    memset(&r, 0, sizeof(r));
    r.kv = store("t_race", 0);
    pthread_barrier_init(&r.barrier, NULL, RACE_THREADS);
    pthread_t th[RACE_THREADS];
    race_arg args[RACE_THREADS];
    for (unsigned i = 0; i < RACE_THREADS; i++) {
        args[i] = (race_arg){&r, i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (unsigned i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.barrier);
    for (unsigned i = 0; i < RACE_ROUNDS; i++)
        CU_ASSERT_EQUAL(r.wins[i], 1); /* exactly one create wins per round */
    CU_ASSERT_EQUAL(r.odd, 0);
    drop_all();
}


/* Nodes started together create their buckets at once: every one of them
 * must get the bucket (nats-server answers a creation racing another of the
 * same stream with "subjects overlap with an existing stream"; before the
 * bind on that answer, aether-node exited 1 on it - seen in CI, three nodes
 * of integration.aetherctl_live starting together). */
#define OPEN_RACE_THREADS 8u
#define OPEN_RACE_ROUNDS 40u

typedef struct open_race {
    pthread_barrier_t barrier;
    uint64_t failed; /* atomic */
    char first[AETHER_ERR_MSG_MAX];
} open_race;

static void *open_race_thread(void *p)
{
    open_race *r = p;
    /* A connection of its own, as each node has: the server takes one
     * connection's requests in order, so only separate ones race. */
    natsConnection *own = tns_connect(&srv);
    for (unsigned round = 0; own != NULL && round < OPEN_RACE_ROUNDS; round++) {
        char bucket[32];
        snprintf(bucket, sizeof(bucket), "t_open%u", round);
        pthread_barrier_wait(&r->barrier);
        aether_kv_nats_config cfg = {.conn = own, .bucket = bucket, .ttl_ms = 1000,
                                     .create_if_missing = true};
        aether_err err = {0};
        aether_kv *kv = NULL;
        if (aether_kv_nats_create(&cfg, &kv, &err) != AETHER_OK &&
            __atomic_fetch_add(&r->failed, 1, __ATOMIC_RELAXED) == 0)
            snprintf(r->first, sizeof(r->first), "%s", err.msg);
        aether_kv_destroy(kv);
    }
    if (own == NULL)
        __atomic_fetch_add(&r->failed, 1, __ATOMIC_RELAXED);
    natsConnection_Destroy(own);
    return NULL;
}

static void test_concurrent_bucket_create_all_bind(void)
{
    up();
    static open_race r;
    memset(&r, 0, sizeof(r));
    pthread_barrier_init(&r.barrier, NULL, OPEN_RACE_THREADS);
    pthread_t th[OPEN_RACE_THREADS];
    for (unsigned i = 0; i < OPEN_RACE_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, open_race_thread, &r), 0);
    for (unsigned i = 0; i < OPEN_RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.barrier);
    if (r.failed != 0)
        fprintf(stderr, "concurrent bucket creates: %llu failed; first: %s\n",
                (unsigned long long)r.failed, r.first);
    CU_ASSERT_EQUAL(r.failed, 0);
    drop_all();
}

/* ---- Faults: a frozen server, a killed server ------------------------------- */

static void test_server_frozen_timeouts(void)
{
    up();
    aether_kv *kv = open_store("t_frozen", 0, FAST_TIMEOUT_MS);
    uint64_t r1, r;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(put_new(kv, "k", "v1", &r1), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(tns_freeze(&srv));

    /* A write times out: outcome unknown, reported within the timeout. */
    uint64_t t0 = now_ns();
    CU_ASSERT_EQUAL(aether_kv_update(kv, "k", "v2", 2, r1, &r, &err), AETHER_EUNKNOWN);
    uint64_t took = ms_since(t0);
    CU_ASSERT_TRUE(took >= FAST_TIMEOUT_MS - 50 && took < FAST_TIMEOUT_MS + 1000);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown"));
    CU_ASSERT_EQUAL(r, 0);
    /* A read times out: unavailable (nothing to apply). */
    aether_kv_entry e;
    t0 = now_ns();
    CU_ASSERT_EQUAL(aether_kv_get(kv, "k", &e, &err), AETHER_EUNAVAILABLE);
    CU_ASSERT_TRUE(ms_since(t0) < FAST_TIMEOUT_MS + 1000);
    CU_ASSERT_PTR_NULL(e.value);
    CU_ASSERT_EQUAL(aether_kv_create(kv, "other", "x", 1, &r, NULL), AETHER_EUNKNOWN);

    /* Thawed, the server processes what was in flight: the "unknown" update
     * WAS applied (later). Re-reading is the only way to know. */
    CU_ASSERT_TRUE_FATAL(tns_thaw(&srv));
    aether_status s = AETHER_EUNAVAILABLE;
    t0 = now_ns();
    while (ms_since(t0) < 3000) { /* bounded: 3 s */
        s = aether_kv_get(kv, "k", &e, NULL);
        bool applied = s == AETHER_OK && strcmp((const char *)e.value, "v2") == 0;
        aether_kv_entry_fini(&e);
        if (applied)
            break;
        sleep_ms(POLL_MS);
    }
    expect_value(kv, "k", "v2", r1 + 1);
    expect_value(kv, "other", "x", r1 + 2);
    /* Retrying the unknown write blindly now conflicts. */
    CU_ASSERT_EQUAL(aether_kv_update(kv, "k", "v2", 2, r1, &r, NULL), AETHER_ECONFLICT);
    drop_all();
}

static void test_server_killed_unavailable(void)
{
    up();
    aether_kv *kv = open_store("t_killed", 0, FAST_TIMEOUT_MS);
    uint64_t r1, r;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(put_new(kv, "k", "v1", &r1), AETHER_OK);
    rec_init(&rec_a);
    aether_kv_watcher *w = watch(kv, ">", &rec_a);
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 2, EVENT_WAIT_MS), 2);
    tns_kill(&srv); /* srv.port and srv.dir stay for the restart */

    /* Every call fails within the timeout: reads unavailable, writes
     * unavailable (found disconnected: nothing sent) or unknown (sent into
     * the dying connection). */
    uint64_t t0 = now_ns();
    aether_kv_entry e;
    CU_ASSERT_EQUAL(aether_kv_get(kv, "k", &e, &err), AETHER_EUNAVAILABLE);
    CU_ASSERT_TRUE(ms_since(t0) < FAST_TIMEOUT_MS + 1000);
    /* Once nats.c has noticed (at once on loopback), no request waits. */
    t0 = now_ns();
    while (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED && ms_since(t0) < 2000)
        sleep_ms(POLL_MS); /* bounded: 2 s */
    CU_ASSERT_NOT_EQUAL(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    t0 = now_ns();
    aether_status s = aether_kv_create(kv, "k2", "v", 1, &r, &err);
    CU_ASSERT_EQUAL(s, AETHER_EUNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nothing sent"));
    CU_ASSERT_EQUAL(aether_kv_update(kv, "k", "v", 1, r1, &r, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "k", r1, NULL, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(aether_kv_purge(kv, "k", NULL, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(aether_kv_get(kv, "k", &e, NULL), AETHER_EUNAVAILABLE);
    aether_kv_watcher *w2 = NULL;
    CU_ASSERT_EQUAL(aether_kv_watch(kv, ">", record_cb, &rec_b, &w2, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_TRUE(ms_since(t0) < 500); /* fail fast: no request waits for a timeout */

    /* The server comes back on the same port with the same storage: the
     * connection reconnects and the data written before the kill is there. */
    CU_ASSERT_TRUE_FATAL(tns_spawn(&srv));
    t0 = now_ns();
    while (natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED && ms_since(t0) < 5000)
        sleep_ms(POLL_MS); /* bounded: 5 s */
    CU_ASSERT_EQUAL_FATAL(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    s = AETHER_EUNAVAILABLE;
    t0 = now_ns();
    while (s != AETHER_OK && ms_since(t0) < 5000) { /* bounded: JetStream recovering */
        s = aether_kv_get(kv, "k", &e, NULL);
        aether_kv_entry_fini(&e);
        if (s != AETHER_OK)
            sleep_ms(50);
    }
    expect_value(kv, "k", "v1", r1);
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, r1 + 1);
    /* The watcher resumes where it was (nats.c's ordered consumer is
     * re-created from the last sequence it delivered): no gap, no repeat. */
    CU_ASSERT_EQUAL(rec_wait(&rec_a, 3, 8000), 3);
    CU_ASSERT_EQUAL(rec_at(&rec_a, 2).revision, r1 + 1);
    CU_ASSERT_STRING_EQUAL(rec_at(&rec_a, 2).value, "v2");
    /* nats.c 3.4.1 bug (seen under ASan): kvWatcher_Stop right after the
     * ordered consumer was re-created on reconnect can read the old
     * consumer name that the reset freed (jsSub_deleteConsumer). Let the
     * reset settle before unwatching; see the module's open concerns. */
    sleep_ms(500);
    aether_kv_unwatch(kv, w);
    drop_all();
}

/* ---- Bucket re-creation ------------------------------------------------------ */

static void test_bucket_recreated_revisions_restart(void)
{
    up();
    aether_kv *kv = store("t_recreate", 0);
    uint64_t r;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "a", "1", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "b", "1", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_cas(kv, "b", "2", r, &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 3);
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_delete_bucket(nc, "t_recreate", 0, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_nats_delete_bucket(nc, "t_recreate", 0, &err), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_kv_nats_delete_bucket(nc, "no.dots", 0, &err), AETHER_EINVAL);
    /* Without a bucket: writes find no stream (not applied). */
    aether_status s = put_new(kv, "a", "x", &r);
    fprintf(stderr, "\n    [create with the bucket gone: %s]\n", aether_status_str(s));
    CU_ASSERT_EQUAL(s, AETHER_EUNAVAILABLE);
    aether_kv_entry e;
    s = aether_kv_get(kv, "a", &e, &err);
    fprintf(stderr, "    [get with the bucket gone: %s %s]\n", aether_status_str(s), err.msg);
    CU_ASSERT_TRUE(s == AETHER_EUNAVAILABLE || s == AETHER_ENOTFOUND);
    /* The store found its bucket gone and created it again (nats_kv.h step
     * 5), once: the failed create did it, the get found the new bucket. */
    CU_ASSERT_EQUAL(aether_kv_nats_recreated(kv), 1);
    CU_ASSERT_EQUAL(s, AETHER_ENOTFOUND);
    /* Re-created: empty, and revisions restart at 1. */
    aether_kv *kv2 = store("t_recreate", 0);
    expect_absent(kv2, "a");
    CU_ASSERT_EQUAL(put_new(kv2, "b", "new", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 1);
    /* The old handle works on the new bucket too. */
    CU_ASSERT_EQUAL(put_new(kv, "a", "new", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 2);
    expect_value(kv2, "a", "new", 2);
    drop_all();
}

static void test_bucket_gone_fails_fast_and_comes_back(void)
{
    up();
    aether_kv *kv = store("t_gone", 1000);
    uint64_t r;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "a", "1", &r), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_delete_bucket(nc, "t_gone", 0, &err), AETHER_OK);
    /* A get of a deleted bucket answers at once (kvStore_Get's direct get
     * waited out the whole timeout) and brings the bucket back. */
    uint64_t t0 = aether_clock_now_ns(aether_clock_real());
    aether_kv_entry e;
    CU_ASSERT_EQUAL(aether_kv_get(kv, "a", &e, &err), AETHER_EUNAVAILABLE);
    uint64_t took_ms = (aether_clock_now_ns(aether_clock_real()) - t0) / AETHER_NS_PER_MS;
    fprintf(stderr, "\n    [get with the bucket gone: %llu ms: %s]\n", (unsigned long long)took_ms, err.msg);
    CU_ASSERT_TRUE(took_ms < 500);
    CU_ASSERT_EQUAL(aether_kv_nats_recreated(kv), 1);
    /* Back with its TTL: a fresh store with the same TTL binds to it. */
    aether_kv *kv2 = store("t_gone", 1000);
    CU_ASSERT_EQUAL(aether_kv_get(kv, "a", &e, &err), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(put_new(kv, "a", "2", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 1);
    /* Compact: everything below goes, the next revision is at least that. */
    CU_ASSERT_EQUAL(aether_kv_compact(kv, 1000, &err), AETHER_OK);
    expect_absent(kv2, "a");
    CU_ASSERT_EQUAL(put_new(kv, "b", "x", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 1000);
    CU_ASSERT_EQUAL(put_new(kv, "a", "3", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 1001);
    /* The entry at the compaction revision itself stays: lease.h step 3
     * compacts to the recorded term, and its holder's key may be there. */
    CU_ASSERT_EQUAL(aether_kv_compact(kv, 1001, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_kv_get(kv2, "a", &e, &err), AETHER_OK);
    CU_ASSERT_EQUAL(e.revision, 1001);
    aether_kv_entry_fini(&e);
    expect_absent(kv2, "b");
    /* Deleted again with no call failing since: it stays gone (only a failed
     * call of a store made with create_if_missing re-creates). */
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_delete_bucket(nc, "t_gone", 0, &err), AETHER_OK);
    aether_kv_nats_config bc = {.conn = nc, .bucket = "t_gone", .ttl_ms = 1000};
    aether_kv *bound = NULL;
    CU_ASSERT_EQUAL(aether_kv_nats_create(&bc, &bound, &err), AETHER_ENOTFOUND);
    CU_ASSERT_PTR_NULL(bound);
    drop_all();
}

/* ---- The lease protocol on NATS stores --------------------------------------- */

#define LEASE_TTL_MS 1000u
#define LEASE_MARGIN_MS 100u

static aether_lease_config lease_cfg(aether_kv *lease_kv, aether_kv *state_kv, const char *id)
{
    aether_lease_config cfg = {
        .lease_kv = lease_kv,
        .state_kv = state_kv,
        .clock = aether_clock_real(),
        .ttl_ms = LEASE_TTL_MS,
        .safety_margin_ms = LEASE_MARGIN_MS,
    };
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr(id, &cfg.self, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_lease_config_validate(&cfg, NULL), AETHER_OK);
    return cfg;
}

static void test_lease_on_nats(void)
{
    up();
    aether_kv *lease_kv = store("lease", LEASE_TTL_MS);
    aether_kv *state_kv = store("state", 0);
    aether_rng rng;
    aether_rng_seed(&rng, 11);
    aether_lease_config a = lease_cfg(lease_kv, state_kv, "node-a");
    aether_lease_config b = lease_cfg(lease_kv, state_kv, "node-b");
    aether_lease_held ha, hb;
    aether_err err = {0};
    aether_clock *clk = aether_clock_real();

    /* A new store: the first acquire begins the generation and leaves the
     * key to expire (lease.h step 2c); a ttl later the caller goes on. */
    aether_status s = aether_lease_acquire(&a, &rng, &ha, &err);
    CU_ASSERT_EQUAL_FATAL(s, AETHER_ESTALE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "began generation"));
    a.restart_waited = true;
    uint64_t g0 = now_ns();
    s = AETHER_EEXIST;
    while (s == AETHER_EEXIST && ms_since(g0) < 3000) { /* bounded: ttl + 2 s */
        s = aether_lease_acquire(&a, &rng, &ha, &err);
        if (s == AETHER_EEXIST)
            sleep_ms(50);
    }
    /* Single winner; the term is the create's revision and is recorded. */
    if (s != AETHER_OK)
        fprintf(stderr, "acquire: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
    aether_term t1 = ha.lease.term;
    CU_ASSERT_TRUE(t1 >= 2); /* the expired establishing write was 1 */
    CU_ASSERT_NOT_EQUAL(ha.generation, 0);
    CU_ASSERT_TRUE(aether_lease_may_act(&ha.lease, aether_clock_now_ns(clk), LEASE_MARGIN_MS));
    CU_ASSERT_EQUAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_EEXIST);
    aether_term t;
    uint64_t rev;
    CU_ASSERT_EQUAL(aether_lease_recorded_term(&a, &t, &rev, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(t, t1);
    /* Renewals move the revision, keep the term. */
    uint64_t before = ha.revision;
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &ha, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(ha.revision, before + 2);
    CU_ASSERT_EQUAL(ha.lease.term, t1);
    aether_lease_value v;
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &rev, NULL), AETHER_OK);
    CU_ASSERT_TRUE(aether_node_id_equal(&v.leader, &a.self));
    CU_ASSERT_EQUAL(rev, ha.revision);

    /* Resign (conditional delete): b wins at once with a higher term. */
    aether_lease_held stale = ha;
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &ha, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_lease_read(&b, &v, &rev, NULL), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL_FATAL(aether_lease_acquire(&b, &rng, &hb, NULL), AETHER_OK);
    CU_ASSERT_TRUE(hb.lease.term > t1);
    CU_ASSERT_EQUAL(hb.generation, ha.generation);
    /* a's stale holder can neither renew nor delete b's lease. */
    CU_ASSERT_EQUAL(aether_lease_renew(&a, &stale, &stale, NULL), AETHER_ECONFLICT);
    stale = hb;
    stale.revision = hb.revision - 1;
    CU_ASSERT_EQUAL(aether_lease_resign(&a, &stale, NULL), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(aether_lease_read(&a, &v, &rev, NULL), AETHER_OK);
    CU_ASSERT_TRUE(aether_node_id_equal(&v.leader, &b.self));
    aether_term tb = hb.lease.term;

    /* The lease bucket is deleted and re-created (revisions restart at 1):
     * the next term is still above every term before it. */
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_delete_bucket(nc, "lease", 0, NULL), AETHER_OK);
    drop_store(lease_kv);
    lease_kv = store("lease", LEASE_TTL_MS);
    aether_lease_config c = lease_cfg(lease_kv, state_kv, "node-c");
    aether_lease_held hc;
    /* First: b may still act until its deadline (lease.h step 2b); the key
     * is kept (term 0) until it expires. */
    CU_ASSERT_EQUAL(aether_lease_acquire(&c, &rng, &hc, &err), AETHER_ESTALE);
    CU_ASSERT_EQUAL(aether_lease_read(&c, &v, &rev, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(v.term, AETHER_TERM_NONE);
    c.restart_waited = true; /* the caller waits a ttl */
    uint64_t w0 = now_ns();
    s = AETHER_EEXIST;
    while (s == AETHER_EEXIST && ms_since(w0) < 3000) { /* bounded: ttl + 2 s */
        s = aether_lease_acquire(&c, &rng, &hc, &err);
        if (s == AETHER_EEXIST)
            sleep_ms(50);
    }
    CU_ASSERT_EQUAL_FATAL(s, AETHER_OK);
    CU_ASSERT_TRUE(hc.lease.term > tb);
    CU_ASSERT_EQUAL(aether_lease_recorded_term(&c, &t, &rev, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(t, hc.lease.term);
    /* Not renewed, the lease expires on the server by TTL: another node
     * then wins it by create (no event needed). */
    aether_lease_config a2 = lease_cfg(lease_kv, state_kv, "node-a");
    uint64_t t0 = now_ns();
    s = AETHER_EEXIST;
    while (s == AETHER_EEXIST && ms_since(t0) < 3000) { /* bounded: ttl + 2 s */
        s = aether_lease_acquire(&a2, &rng, &ha, NULL);
        if (s == AETHER_EEXIST)
            sleep_ms(50);
    }
    CU_ASSERT_EQUAL(s, AETHER_OK);
    CU_ASSERT_TRUE(ms_since(t0) >= LEASE_TTL_MS - 100);
    CU_ASSERT_TRUE(ha.lease.term > hc.lease.term);
    CU_ASSERT_EQUAL(aether_lease_resign(&a2, &ha, NULL), AETHER_OK);
    drop_all();
}

/* A value written straight to the stream subject, as any client can. */
static uint64_t raw_put(const char *bucket, const char *key, const char *val)
{
    jsCtx *js = NULL;
    CU_ASSERT_EQUAL_FATAL(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    char subj[300];
    snprintf(subj, sizeof(subj), "$KV.%s.%s", bucket, key);
    jsPubAck *ack = NULL;
    CU_ASSERT_EQUAL_FATAL(js_Publish(&ack, js, subj, val, (int)strlen(val), NULL, NULL), NATS_OK);
    uint64_t seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    jsCtx_Destroy(js);
    return seq;
}

/* nats_kv.h step 7: with a cluster secret, sealed values read back; a value
 * written without the secret is believed by no read, counted, taken for
 * create, written over by a CAS only when it is the one write since the
 * expected revision, and never delivered to a watcher. */
static void test_sealed_values(void)
{
    up();
    aether_auth *key = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_auth_create("0123456789abcdef0123456789abcdef", 32, &key, &err), AETHER_OK);
    aether_node_id self;
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr("n1", &self, NULL), AETHER_OK);
    aether_auth_sealer sealer;
    aether_auth_sealer_init(&sealer, key, &self, now_ns());
    aether_codec_stats stats;
    aether_codec_stats_init(&stats, NULL);
    aether_kv_nats_config cfg = {.conn = nc, .bucket = "t_sealed", .create_if_missing = true, .one_key = true,
                                 .sealer = &sealer, .stats = &stats};
    aether_kv *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_nats_create(&cfg, &kv, &err), AETHER_OK);
    stores[0] = kv;
    rec_init(&rec_a);
    aether_kv_watcher *w = watch(kv, "leader", &rec_a);
    uint64_t r1 = 0, r2 = 0;
    CU_ASSERT_EQUAL_FATAL(put_new(kv, "leader", "v1", &r1), AETHER_OK);
    expect_value(kv, "leader", "v1", r1);
    /* init-done and v1 delivered before anything replaces v1 (a watcher
     * fetches each entry again by revision: one already replaced is gone). */
    CU_ASSERT_TRUE(rec_wait(&rec_a, 2, 2000) >= 2);
    /* One forged write: counted, and read past (get gives the genuine v1
     * beneath it: the bucket keeps the writes below); create refused; the
     * CAS naming r1 goes through over it. */
    uint64_t f1 = raw_put("t_sealed", "leader", "forged");
    CU_ASSERT_EQUAL(f1, r1 + 1);
    expect_value(kv, "leader", "v1", r1);
    uint64_t unused = 0;
    CU_ASSERT_EQUAL(put_new(kv, "leader", "v2", &unused), AETHER_EEXIST);
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "v2", r1, &r2), AETHER_OK);
    CU_ASSERT_EQUAL(r2, f1 + 1);
    expect_value(kv, "leader", "v2", r2);
    CU_ASSERT_TRUE(rec_wait(&rec_a, 3, 2000) >= 3);
    /* Two forged writes: both read past and written over. */
    raw_put("t_sealed", "leader", "forged-a");
    raw_put("t_sealed", "leader", "forged-b");
    expect_value(kv, "leader", "v2", r2);
    uint64_t r3 = 0;
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "v3", r2, &r3), AETHER_OK);
    expect_value(kv, "leader", "v3", r3);
    CU_ASSERT_TRUE(rec_wait(&rec_a, 4, 2000) >= 4);
    /* More forged writes than the bucket keeps below its last: v3 is gone,
     * nothing can be said of the key (unreadable), and the conflict stands. */
    for (unsigned i = 0; i <= AETHER_KV_NATS_FORGED_SKIP_MAX; i++) /* bounded: SKIP_MAX + 1 */
        raw_put("t_sealed", "leader", "forged-n");
    aether_kv_entry e;
    CU_ASSERT_EQUAL(aether_kv_get(kv, "leader", &e, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "v4", r3, &unused), AETHER_ECONFLICT);
    /* get, create and the CAS each counted the first forgery (the watcher
     * counts those it fetched before they were replaced). */
    CU_ASSERT_TRUE(aether_codec_stats_rejected(&stats, AETHER_CODEC_REJECT_UNAUTHENTICATED) >= 3);
    /* The watcher delivered v1, v2 and v3 only (after init-done). */
    sleep_ms(300); /* any forged entry would be delivered by now */
    unsigned puts = 0;
    for (unsigned i = 0; i < rec_count(&rec_a); i++) {
        rec_event ev = rec_at(&rec_a, i);
        if (ev.op == AETHER_KV_OP_PUT) {
            CU_ASSERT_TRUE(strcmp(ev.value, "v1") == 0 || strcmp(ev.value, "v2") == 0 ||
                           strcmp(ev.value, "v3") == 0);
            puts++;
        }
    }
    CU_ASSERT_EQUAL(puts, 3);
    if (puts != 3)
        rec_dump(&rec_a, "sealed");
    aether_kv_unwatch(kv, w);
    drop_all();
    aether_auth_destroy(key);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(create_if_absent),
    AETHER_TEST(update_cas_conflict),
    AETHER_TEST(revision_across_keys),
    AETHER_TEST(delete_then_create),
    AETHER_TEST(ttl_expiry_no_event),
    AETHER_TEST(watch_order),
    AETHER_TEST(config_and_validation),
    AETHER_TEST(concurrent_create_single_winner),
    AETHER_TEST(concurrent_bucket_create_all_bind),
    AETHER_TEST(server_frozen_timeouts),
    AETHER_TEST(server_killed_unavailable),
    AETHER_TEST(bucket_recreated_revisions_restart),
    AETHER_TEST(bucket_gone_fails_fast_and_comes_back),
    AETHER_TEST(lease_on_nats),
    AETHER_TEST(sealed_values),
    CU_TEST_INFO_NULL,
};

AETHER_SUITE("kv_nats", NULL, suite_cleanup, tests);
