/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kv_store.c: the key-value store interface and its in-memory bucket
 * (actors/kv_store.h): create-if-absent, CAS, one revision counter per
 * bucket, delete markers, TTL expiry without events, watch order, fault
 * injection, wipe, and a threaded hammer test.
 * AETHER_TEST_LABELS: concurrency
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "kv_store.h"

#define MS AETHER_NS_PER_MS

static aether_sim_clock sim;

static aether_kv *mem_store(uint64_t ttl_ms, uint64_t seed)
{
    aether_sim_clock_init(&sim, 1000 * MS, 0);
    aether_rng rng;
    aether_rng_seed(&rng, seed);
    aether_kv_mem_config cfg = {.name = "test", .ttl_ms = ttl_ms, .clock = &sim.base, .rng = &rng};
    aether_kv *kv = NULL;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&cfg, &kv, &err), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(aether_kv_is_mem(kv));
    return kv;
}

static aether_status put_new(aether_kv *kv, const char *key, const char *val, uint64_t *rev)
{
    return aether_kv_create(kv, key, val, strlen(val), rev, NULL);
}

static aether_status put_cas(aether_kv *kv, const char *key, const char *val, uint64_t expected,
                             uint64_t *rev)
{
    return aether_kv_update(kv, key, val, strlen(val), expected, rev, NULL);
}

/* Reads key and checks value and revision. */
static void expect_value(aether_kv *kv, const char *key, const char *val, uint64_t rev)
{
    aether_kv_entry e;
    CU_ASSERT_EQUAL_FATAL(aether_kv_get(kv, key, &e, NULL), AETHER_OK);
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

/* ---- A recording watcher --------------------------------------------------- */

#define REC_MAX 64
typedef struct rec_event {
    aether_kv_op op;
    char key[64];
    char value[64];
    uint64_t revision;
} rec_event;

typedef struct recorder {
    rec_event ev[REC_MAX];
    unsigned n;
} recorder;

static void record_cb(void *arg, const aether_kv_event *ev)
{
    recorder *r = arg;
    if (r->n >= REC_MAX)
        return;
    rec_event *e = &r->ev[r->n++];
    e->op = ev->op;
    snprintf(e->key, sizeof(e->key), "%s", ev->key);
    snprintf(e->value, sizeof(e->value), "%.*s", (int)ev->value_len,
             ev->value ? (const char *)ev->value : "");
    e->revision = ev->revision;
}

/* ---- Tests ------------------------------------------------------------------ */

static void test_create_if_absent(void)
{
    aether_kv *kv = mem_store(0, 1);
    uint64_t r1 = 0, r2 = 99;
    aether_err err = {0};
    CU_ASSERT_EQUAL(put_new(kv, "leader", "a", &r1), AETHER_OK);
    CU_ASSERT_EQUAL(r1, 1);
    CU_ASSERT_EQUAL(aether_kv_create(kv, "leader", "b", 1, &r2, &err), AETHER_EEXIST);
    CU_ASSERT_EQUAL(r2, 0);
    CU_ASSERT_EQUAL(err.code, AETHER_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "leader"));
    expect_value(kv, "leader", "a", 1); /* the loser changed nothing */
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(kv), 1);
    /* An empty value is a value. */
    CU_ASSERT_EQUAL(aether_kv_create(kv, "empty", "", 0, &r2, NULL), AETHER_OK);
    expect_value(kv, "empty", "", 2);
    aether_kv_destroy(kv);
    aether_kv_destroy(NULL);
}

static void test_update_cas_conflict(void)
{
    aether_kv *kv = mem_store(0, 1);
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
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(kv), r2);
    aether_kv_destroy(kv);
}

static void test_revision_across_keys(void)
{
    aether_kv *kv = mem_store(0, 1);
    uint64_t last = 0, r;
    const char *keys[] = {"a", "b.c", "shard/1", "x=y", "a"};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 4; i++) {
            aether_status s = round == 0 ? put_new(kv, keys[i], "v", &r)
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
    /* Failed writes do not. */
    CU_ASSERT_EQUAL(put_new(kv, "x=y", "v", &r), AETHER_EEXIST);
    CU_ASSERT_EQUAL(put_cas(kv, "x=y", "v", 1, &r), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(put_new(kv, "z", "v", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, last + 1);
    aether_kv_destroy(kv);
}

static void test_delete_then_create(void)
{
    aether_kv *kv = mem_store(0, 1);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, "leader", record_cb, &rec, &w, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rec.n, 1); /* INIT_DONE only: nothing there */
    uint64_t r1, rdel, r2, r3;
    CU_ASSERT_EQUAL(put_new(kv, "leader", "a", &r1), AETHER_OK);
    /* A conditional delete with a stale revision is refused. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r1 + 1, &rdel, NULL), AETHER_ECONFLICT);
    expect_value(kv, "leader", "a", r1);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r1, &rdel, NULL), AETHER_OK);
    CU_ASSERT_TRUE(rdel > r1);
    expect_absent(kv, "leader");
    /* Watchers saw the delete. */
    CU_ASSERT_EQUAL_FATAL(rec.n, 3);
    CU_ASSERT_EQUAL(rec.ev[2].op, AETHER_KV_OP_DELETE);
    CU_ASSERT_EQUAL(rec.ev[2].revision, rdel);
    CU_ASSERT_STRING_EQUAL(rec.ev[2].key, "leader");
    /* Create succeeds over the marker. */
    CU_ASSERT_EQUAL(put_new(kv, "leader", "b", &r2), AETHER_OK);
    CU_ASSERT_TRUE(r2 > rdel);
    expect_value(kv, "leader", "b", r2);
    /* NATS semantics: CAS is against the key's last revision, a marker's too. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", 0, &rdel, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "c", rdel, &r3), AETHER_OK);
    expect_value(kv, "leader", "c", r3);
    /* Unconditional delete of an absent key writes a marker (kvStore_Delete). */
    uint64_t before = aether_kv_mem_last_revision(kv);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "ghost", 0, &rdel, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rdel, before + 1);
    aether_kv_unwatch(kv, w);
    aether_kv_unwatch(kv, NULL);
    aether_kv_destroy(kv);
}

static void test_ttl_expiry_no_event(void)
{
    aether_kv *kv = mem_store(1000, 1);
    CU_ASSERT_EQUAL(aether_kv_ttl_ms(kv), 1000);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, ">", record_cb, &rec, &w, NULL), AETHER_OK);
    uint64_t r1, r2, r3;
    CU_ASSERT_EQUAL(put_new(kv, "leader", "a", &r1), AETHER_OK); /* put at t0 */
    CU_ASSERT_EQUAL(rec.n, 2);
    aether_sim_clock_advance_ns(&sim, 500 * MS);
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "a2", r1, &r2), AETHER_OK); /* TTL restarts at t0+500 */
    aether_sim_clock_advance_ns(&sim, 999 * MS);
    expect_value(kv, "leader", "a2", r2); /* t0+1499: alive */
    aether_sim_clock_advance_ns(&sim, 1 * MS);
    expect_absent(kv, "leader"); /* t0+1500: gone */
    CU_ASSERT_EQUAL(rec.n, 3);   /* ... and no event for the expiry */
    /* Expired = absent: update conflicts, create succeeds. */
    CU_ASSERT_EQUAL(put_cas(kv, "leader", "x", r2, &r3), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r2, NULL, NULL), AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(put_new(kv, "leader", "b", &r3), AETHER_OK);
    CU_ASSERT_TRUE(r3 > r2);
    CU_ASSERT_EQUAL_FATAL(rec.n, 4);
    CU_ASSERT_EQUAL(rec.ev[3].op, AETHER_KV_OP_PUT);
    CU_ASSERT_STRING_EQUAL(rec.ev[3].value, "b");
    /* A delete, unlike expiry, is an event. */
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "leader", r3, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(rec.n, 5);
    CU_ASSERT_EQUAL(rec.ev[4].op, AETHER_KV_OP_DELETE);
    /* Markers expire as well: a new watcher does not see this one later. */
    aether_sim_clock_advance_ns(&sim, 1000 * MS);
    recorder rec2 = {0};
    aether_kv_watcher *w2 = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, ">", record_cb, &rec2, &w2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(rec2.n, 1);
    CU_ASSERT_EQUAL(rec2.ev[0].op, AETHER_KV_OP_INIT_DONE);
    CU_ASSERT_EQUAL(rec.n, 5);
    aether_kv_unwatch(kv, w2);
    aether_kv_unwatch(kv, w);
    aether_kv_destroy(kv);
}

static void test_watch_order(void)
{
    aether_kv *kv = mem_store(0, 1);
    uint64_t ra, rb, rc, r;
    CU_ASSERT_EQUAL(put_new(kv, "shard.b", "b1", &rb), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard.a", "a1", &ra), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "other", "o", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard.c", "c1", &rc), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "shard.c", rc, &rc, NULL), AETHER_OK);

    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, "shard.>", record_cb, &rec, &w, NULL), AETHER_OK);
    /* Current values oldest first (not key order), the marker included, then INIT_DONE. */
    CU_ASSERT_EQUAL_FATAL(rec.n, 4);
    CU_ASSERT_STRING_EQUAL(rec.ev[0].key, "shard.b");
    CU_ASSERT_STRING_EQUAL(rec.ev[0].value, "b1");
    CU_ASSERT_STRING_EQUAL(rec.ev[1].key, "shard.a");
    CU_ASSERT_EQUAL(rec.ev[2].op, AETHER_KV_OP_DELETE);
    CU_ASSERT_STRING_EQUAL(rec.ev[2].key, "shard.c");
    CU_ASSERT_EQUAL(rec.ev[3].op, AETHER_KV_OP_INIT_DONE);
    CU_ASSERT_EQUAL(rec.ev[3].revision, 0);

    /* Live writes, in revision order; non-matching keys are not delivered. */
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a2", ra, &ra), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "other2", "x", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "shard", "x", &r), AETHER_OK); /* '>' needs a token more */
    CU_ASSERT_EQUAL(put_new(kv, "shard.d.e", "de", &r), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_purge(kv, "shard.b", &rb, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(rec.n, 7);
    CU_ASSERT_STRING_EQUAL(rec.ev[4].value, "a2");
    CU_ASSERT_STRING_EQUAL(rec.ev[5].key, "shard.d.e");
    CU_ASSERT_EQUAL(rec.ev[6].op, AETHER_KV_OP_PURGE);
    CU_ASSERT_EQUAL(rec.ev[6].revision, rb);
    for (unsigned i = 5; i < rec.n; i++)
        CU_ASSERT_TRUE(rec.ev[i].revision > rec.ev[i - 1].revision);

    /* '*' is one token; an exact key watch sees only its key. */
    recorder star = {0}, exact = {0};
    aether_kv_watcher *ws = NULL, *we = NULL;
    CU_ASSERT_EQUAL(aether_kv_watch(kv, "shard.*", record_cb, &star, &ws, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_watch(kv, "shard.a", record_cb, &exact, &we, NULL), AETHER_OK);
    star.n = exact.n = 0;
    CU_ASSERT_EQUAL(put_new(kv, "shard.d.f", "no", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a3", ra, &ra), AETHER_OK);
    CU_ASSERT_EQUAL(star.n, 1);
    CU_ASSERT_EQUAL(exact.n, 1);
    CU_ASSERT_STRING_EQUAL(exact.ev[0].value, "a3");

    /* After unwatch: no more events. */
    unsigned before = rec.n;
    aether_kv_unwatch(kv, w);
    CU_ASSERT_EQUAL(put_cas(kv, "shard.a", "a4", ra, &ra), AETHER_OK);
    CU_ASSERT_EQUAL(rec.n, before);
    CU_ASSERT_EQUAL(exact.n, 2);
    aether_kv_unwatch(kv, ws);
    aether_kv_unwatch(kv, we);
    aether_kv_destroy(kv);
}

static void test_key_and_value_validation(void)
{
    aether_kv *kv = mem_store(0, 1);
    uint64_t r;
    aether_err err = {0};
    const char *good[] = {"a", "A-z_0=9", "a/b", "a.b.c", "term", "x=1/y-2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CU_ASSERT_EQUAL(aether_kv_key_validate(good[i], NULL), AETHER_OK);
    struct {
        const char *key;
        const char *expect;
    } bad[] = {{"", "empty"},        {".a", "starts or ends"}, {"a.", "starts or ends"},
               {"a..b", "empty token"}, {"a b", "0x20"},      {"a*", "0x2a"},
               {"a>", "0x3e"},       {"é", "0xc3"},            {"a:b", "position 1"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        CU_ASSERT_EQUAL(aether_kv_create(kv, bad[i].key, "v", 1, &r, &err), AETHER_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].expect));
    }
    char longkey[AETHER_KV_KEY_LEN_MAX + 2];
    memset(longkey, 'k', sizeof(longkey));
    longkey[AETHER_KV_KEY_LEN_MAX] = '\0';
    CU_ASSERT_EQUAL(aether_kv_key_validate(longkey, NULL), AETHER_OK);
    longkey[AETHER_KV_KEY_LEN_MAX] = 'k';
    longkey[AETHER_KV_KEY_LEN_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(aether_kv_key_validate(longkey, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "longer than 255"));
    /* Values: up to the maximum, not one byte more. */
    char *big = calloc(1, AETHER_KV_VALUE_LEN_MAX + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_EQUAL(aether_kv_create(kv, "big", big, AETHER_KV_VALUE_LEN_MAX, &r, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_update(kv, "big", big, AETHER_KV_VALUE_LEN_MAX + 1, r, &r, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "1048577"));
    free(big);
    /* Patterns. */
    CU_ASSERT_EQUAL(aether_kv_pattern_validate(">", NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_pattern_validate("a.*.c", NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_kv_pattern_validate("a.>.c", NULL), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_kv_pattern_validate("a*", NULL), AETHER_EINVAL);
    CU_ASSERT_TRUE(aether_kv_pattern_match("a.*.c", "a.b.c"));
    CU_ASSERT_FALSE(aether_kv_pattern_match("a.*.c", "a.b.d"));
    CU_ASSERT_FALSE(aether_kv_pattern_match("a.*", "a.b.c"));
    CU_ASSERT_TRUE(aether_kv_pattern_match("a.>", "a.b.c"));
    CU_ASSERT_FALSE(aether_kv_pattern_match("a.>", "a"));
    CU_ASSERT_FALSE(aether_kv_pattern_match("ab", "a"));
    CU_ASSERT_FALSE(aether_kv_pattern_match("a", "a.b"));
    aether_kv_watcher *w = NULL;
    recorder rec = {0};
    CU_ASSERT_EQUAL(aether_kv_watch(kv, "a.>.c", record_cb, &rec, &w, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(w);
    aether_kv_destroy(kv);
}

static void test_fault_unavailable(void)
{
    aether_kv *kv = mem_store(0, 1);
    uint64_t r;
    aether_err err = {0};
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_CREATE, AETHER_KV_FAULT_UNAVAILABLE, 2);
    CU_ASSERT_EQUAL(aether_kv_create(kv, "k", "v", 1, &r, &err), AETHER_EUNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unavailable"));
    CU_ASSERT_EQUAL(put_new(kv, "k", "v", &r), AETHER_EUNAVAILABLE);
    expect_absent(kv, "k"); /* not applied */
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(kv), 0);
    CU_ASSERT_EQUAL(put_new(kv, "k", "v", &r), AETHER_OK); /* the third one goes through */
    CU_ASSERT_EQUAL(r, 1);
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_GET, AETHER_KV_FAULT_UNAVAILABLE, 1);
    aether_kv_entry e;
    CU_ASSERT_EQUAL(aether_kv_get(kv, "k", &e, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_PTR_NULL(e.value);
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_WATCH, AETHER_KV_FAULT_UNAVAILABLE, 1);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL(aether_kv_watch(kv, ">", record_cb, &rec, &w, NULL), AETHER_EUNAVAILABLE);
    CU_ASSERT_EQUAL(rec.n, 0);
    CU_ASSERT_EQUAL(aether_kv_mem_faults_injected(kv), 4);
    aether_kv_destroy(kv);
}

static void test_fault_unknown_applied(void)
{
    aether_kv *kv = mem_store(0, 1);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, "k", record_cb, &rec, &w, NULL), AETHER_OK);
    uint64_t r1, r2;
    CU_ASSERT_EQUAL(put_new(kv, "k", "v1", &r1), AETHER_OK);
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 1);
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r2), AETHER_EUNKNOWN);
    CU_ASSERT_EQUAL(r2, 0);
    /* It happened: the value, the revision and the watchers say so. */
    expect_value(kv, "k", "v2", r1 + 1);
    CU_ASSERT_EQUAL(rec.n, 3);
    CU_ASSERT_STRING_EQUAL(rec.ev[2].value, "v2");
    /* Retrying blindly with the old revision now conflicts: re-read first. */
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r2), AETHER_ECONFLICT);
    /* A create hit by it also wins the key. */
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_CREATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 1);
    CU_ASSERT_EQUAL(put_new(kv, "c", "x", &r2), AETHER_EUNKNOWN);
    expect_value(kv, "c", "x", r1 + 2);
    aether_kv_unwatch(kv, w);
    aether_kv_destroy(kv);
}

static void test_fault_unknown_not_applied(void)
{
    aether_kv *kv = mem_store(0, 1);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, "k", record_cb, &rec, &w, NULL), AETHER_OK);
    uint64_t r1, r2;
    CU_ASSERT_EQUAL(put_new(kv, "k", "v1", &r1), AETHER_OK);
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED, 1);
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r2), AETHER_EUNKNOWN);
    expect_value(kv, "k", "v1", r1);
    CU_ASSERT_EQUAL(rec.n, 2);
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(kv), r1);
    aether_kv_mem_fail_next(kv, AETHER_KV_CALL_DELETE, AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED, 1);
    CU_ASSERT_EQUAL(aether_kv_delete(kv, "k", r1, NULL, NULL), AETHER_EUNKNOWN);
    expect_value(kv, "k", "v1", r1);
    /* The retry after re-reading succeeds. */
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v2", r1, &r2), AETHER_OK);
    aether_kv_unwatch(kv, w);
    aether_kv_destroy(kv);
}

/* 200 updates under a 30 % fault rate: returns the outcome pattern. */
static void run_faulty(uint64_t seed, char *pattern)
{
    aether_kv *kv = mem_store(0, seed);
    aether_kv_mem_set_fault(kv, AETHER_KV_CALL_UPDATE, AETHER_KV_FAULT_UNKNOWN_APPLIED, 300000);
    uint64_t r;
    CU_ASSERT_EQUAL(put_new(kv, "k", "v", &r), AETHER_OK);
    for (int i = 0; i < 200; i++) {
        aether_status s = put_cas(kv, "k", "v", r, &r);
        pattern[i] = s == AETHER_OK ? '.' : 'U';
        if (s != AETHER_OK) {
            r = aether_kv_mem_last_revision(kv); /* applied anyway */
            CU_ASSERT_EQUAL(s, AETHER_EUNKNOWN);
        }
    }
    pattern[200] = '\0';
    uint64_t n = aether_kv_mem_faults_injected(kv);
    CU_ASSERT_TRUE(n > 30 && n < 100); /* ~60 expected */
    aether_kv_mem_clear_faults(kv);
    CU_ASSERT_EQUAL(put_cas(kv, "k", "v", r, &r), AETHER_OK);
    aether_kv_destroy(kv);
}

static void test_fault_probability_seeded(void)
{
    char a[201], b[201], c[201];
    run_faulty(42, a);
    run_faulty(42, b);
    run_faulty(43, c);
    CU_ASSERT_STRING_EQUAL(a, b);    /* same seed, same faults */
    CU_ASSERT_STRING_NOT_EQUAL(a, c); /* another seed, other faults */
}

static void test_wipe_restarts_revisions(void)
{
    aether_kv *kv = mem_store(0, 1);
    recorder rec = {0};
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(kv, ">", record_cb, &rec, &w, NULL), AETHER_OK);
    uint64_t r;
    CU_ASSERT_EQUAL(put_new(kv, "a", "1", &r), AETHER_OK);
    CU_ASSERT_EQUAL(put_new(kv, "b", "1", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 2);
    aether_kv_mem_wipe(kv);
    expect_absent(kv, "a");
    CU_ASSERT_EQUAL(rec.n, 3); /* no events for the wipe */
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(kv), 0);
    CU_ASSERT_EQUAL(put_new(kv, "b", "2", &r), AETHER_OK);
    CU_ASSERT_EQUAL(r, 1); /* revisions restart */
    CU_ASSERT_EQUAL(rec.n, 4);
    CU_ASSERT_EQUAL(rec.ev[3].revision, 1);
    aether_kv_unwatch(kv, w);
    aether_kv_destroy(kv);
}

/* ---- Concurrency ------------------------------------------------------------ */

#define HAMMER_THREADS 4
#define HAMMER_ROUNDS 300
#define HAMMER_UPDATES 8 /* successful CAS writes per thread per round */
#define HAMMER_REVS_MAX (HAMMER_ROUNDS * (1 + HAMMER_THREADS * HAMMER_UPDATES + 1))

typedef struct hammer {
    aether_kv *kv;
    pthread_barrier_t barrier;
    unsigned wins[HAMMER_ROUNDS];          /* atomic */
    uint64_t revs[HAMMER_REVS_MAX];        /* slots claimed atomically */
    uint64_t rev_count;                    /* atomic */
    uint64_t conflicts;                    /* atomic */
    /* watcher state: callbacks are serialized by the store */
    uint64_t last_seen;
    uint64_t seen;
    uint64_t order_errors;
} hammer;

static void hammer_note(hammer *h, uint64_t rev)
{
    uint64_t slot = __atomic_fetch_add(&h->rev_count, 1, __ATOMIC_RELAXED);
    if (slot < HAMMER_REVS_MAX)
        h->revs[slot] = rev;
}

static void hammer_watch_cb(void *arg, const aether_kv_event *ev)
{
    hammer *h = arg;
    if (ev->op == AETHER_KV_OP_INIT_DONE)
        return;
    if (ev->revision <= h->last_seen)
        h->order_errors++;
    h->last_seen = ev->revision;
    h->seen++;
}

typedef struct hammer_arg {
    hammer *h;
    unsigned id;
} hammer_arg;

static void *hammer_thread(void *p)
{
    hammer_arg *a = p;
    hammer *h = a->h;
    char val[16];
    snprintf(val, sizeof(val), "t%u", a->id);
    for (unsigned round = 0; round < HAMMER_ROUNDS; round++) {
        pthread_barrier_wait(&h->barrier);
        uint64_t r;
        aether_status s = aether_kv_create(h->kv, "race", val, strlen(val), &r, NULL);
        if (s == AETHER_OK) {
            __atomic_fetch_add(&h->wins[round], 1, __ATOMIC_RELAXED);
            hammer_note(h, r);
        } else if (s != AETHER_EEXIST) {
            __atomic_fetch_add(&h->conflicts, 1000000, __ATOMIC_RELAXED); /* must not happen */
        }
        pthread_barrier_wait(&h->barrier); /* everyone has tried the create */
        /* CAS increments: read, update, retry on conflict (bounded). */
        unsigned done = 0;
        for (unsigned attempt = 0; attempt < 100000 && done < HAMMER_UPDATES; attempt++) {
            aether_kv_entry e;
            if (aether_kv_get(h->kv, "race", &e, NULL) != AETHER_OK)
                break;
            uint64_t base = e.revision;
            aether_kv_entry_fini(&e);
            s = aether_kv_update(h->kv, "race", val, strlen(val), base, &r, NULL);
            if (s == AETHER_OK) {
                hammer_note(h, r);
                done++;
            } else {
                __atomic_fetch_add(&h->conflicts, 1, __ATOMIC_RELAXED);
            }
        }
        pthread_barrier_wait(&h->barrier);
        if (a->id == 0) {
            uint64_t rd;
            if (aether_kv_delete(h->kv, "race", 0, &rd, NULL) == AETHER_OK)
                hammer_note(h, rd);
        }
    }
    return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_create_update(void)
{
    hammer *h = calloc(1, sizeof(*h));
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    aether_kv_mem_config cfg = {.name = "hammer", .clock = aether_clock_real()};
    CU_ASSERT_EQUAL_FATAL(aether_kv_mem_create(&cfg, &h->kv, NULL), AETHER_OK);
    aether_kv_watcher *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_kv_watch(h->kv, ">", hammer_watch_cb, h, &w, NULL), AETHER_OK);
    pthread_barrier_init(&h->barrier, NULL, HAMMER_THREADS);
    pthread_t th[HAMMER_THREADS];
    hammer_arg args[HAMMER_THREADS];
    for (unsigned i = 0; i < HAMMER_THREADS; i++) {
        args[i] = (hammer_arg){h, i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer_thread, &args[i]), 0);
    }
    for (unsigned i = 0; i < HAMMER_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&h->barrier);

    for (unsigned r = 0; r < HAMMER_ROUNDS; r++)
        CU_ASSERT_EQUAL(h->wins[r], 1); /* exactly one create wins per round */
    CU_ASSERT_TRUE(h->conflicts < 1000000);
    uint64_t n = h->rev_count;
    CU_ASSERT_EQUAL_FATAL(n, (uint64_t)HAMMER_REVS_MAX);
    qsort(h->revs, n, sizeof(uint64_t), u64_cmp);
    for (uint64_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(h->revs[i], i + 1); /* unique, gap-free: failed writes take none */
    CU_ASSERT_EQUAL(aether_kv_mem_last_revision(h->kv), n);
    /* The watcher saw every write once, in revision order. */
    aether_kv_unwatch(h->kv, w);
    CU_ASSERT_EQUAL(h->seen, n);
    CU_ASSERT_EQUAL(h->order_errors, 0);
    aether_kv_destroy(h->kv);
    free(h);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(create_if_absent),
    AETHER_TEST(update_cas_conflict),
    AETHER_TEST(revision_across_keys),
    AETHER_TEST(delete_then_create),
    AETHER_TEST(ttl_expiry_no_event),
    AETHER_TEST(watch_order),
    AETHER_TEST(key_and_value_validation),
    AETHER_TEST(fault_unavailable),
    AETHER_TEST(fault_unknown_applied),
    AETHER_TEST(fault_unknown_not_applied),
    AETHER_TEST(fault_probability_seeded),
    AETHER_TEST(wipe_restarts_revisions),
    AETHER_TEST(concurrent_create_update),
    CU_TEST_INFO_NULL,
};

AETHER_SUITE("kv_store", NULL, NULL, tests);
