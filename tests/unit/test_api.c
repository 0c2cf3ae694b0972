/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_api.c: the public API (transport/aether.h): options by key with
 * errors that name the key, nodes started in-process, the route lookups and
 * the stale-route answers through a join and a drain, the signal rule.
 * Everything below but the table walk (settings.h, to reach every key) uses
 * only <aether/aether.h>.
 *
 * AETHER_TEST_LABELS: concurrency
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "aether.h"
#include "cu_test.h"
#include "settings.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- options -------------------------------------------------------------------- */

/* A valid value for a parameter that has none by default. */
static const char *sample_value(const char *key, const char *kind)
{
    static const struct { const char *key, *value; } by_key[] = {
        { "nats_urls", "nats://127.0.0.1:4222" }, { "metrics_addr", "127.0.0.1:9100" },
        { "allowed_nodes", "n1,n2" },             { "zone", "z1" },
        { "node", "n1" },                         { "address", "host-1:7000" },
    };
    for (size_t i = 0; i < sizeof(by_key) / sizeof(by_key[0]); i++)
        if (strcmp(key, by_key[i].key) == 0)
            return by_key[i].value;
    if (strcmp(kind, "path") == 0)
        return "/etc/hostname";
    if (strcmp(kind, "secret") == 0)
        return "s3cret";
    return "x";
}

static void test_options_every_key_settable(void)
{
    aether_options *o = NULL;
    CU_ASSERT_FATAL(aether_options_create(&o) == AETHER_OK && o != NULL);
    size_t keys = 0;
    const char *key, *kind, *help;
    for (size_t i = 0; aether_settings_param(i, &key, &kind, &help); i++) {
        char cur[1100], back[1100];
        CU_ASSERT_EQUAL_FATAL(aether_options_get(o, key, cur, sizeof(cur)), AETHER_OK);
        const char *v = cur[0] != '\0' && strcmp(kind, "secret") != 0 ? cur : sample_value(key, kind);
        aether_status st = aether_options_set(o, key, v);
        if (st != AETHER_OK)
            fprintf(stderr, "set %s = %s: %s\n", key, v, aether_last_error());
        CU_ASSERT_EQUAL(st, AETHER_OK);
        CU_ASSERT_EQUAL(aether_options_get(o, key, back, sizeof(back)), AETHER_OK);
        if (strcmp(kind, "secret") == 0) {
            CU_ASSERT_STRING_EQUAL(back, "(set)"); /* never read back */
        } else if (strcmp(kind, "bool") != 0) {
            CU_ASSERT_STRING_EQUAL(back, v);
        }
        keys++;
    }
    CU_ASSERT(keys >= 40); /* the whole table, not a part of it */
    char small[2];
    CU_ASSERT_EQUAL(aether_options_get(o, "cluster", small, sizeof(small)), AETHER_EFULL);
    CU_ASSERT_EQUAL(aether_options_set(o, "nats_tls", "yes"), AETHER_OK);
    char b[8];
    CU_ASSERT_EQUAL(aether_options_get(o, "nats_tls", b, sizeof(b)), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(b, "true");
    aether_options_destroy(o);
    aether_options_destroy(NULL);
}

static void test_options_errors_name_the_key(void)
{
    aether_options *o = NULL;
    CU_ASSERT_FATAL(aether_options_create(&o) == AETHER_OK);
    CU_ASSERT_EQUAL(aether_options_set(o, "no_such_key", "1"), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "no_such_key"));
    CU_ASSERT_EQUAL(aether_options_set(o, "lease_ttl_ms", "abc"), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "lease_ttl_ms"));
    CU_ASSERT_EQUAL(aether_options_set(o, "shard_count", "0"), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "shard_count"));
    static char long_secret[1200];
    memset(long_secret, 'h', sizeof(long_secret) - 1); /* longer than any value may be */
    CU_ASSERT_EQUAL(aether_options_set(o, "nats_password", long_secret), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "nats_password"));
    CU_ASSERT_PTR_NULL(strstr(aether_last_error(), "hhhhhhhh")); /* a secret is never quoted */
    CU_ASSERT_EQUAL(aether_options_set(o, NULL, "1"), AETHER_EINVAL);
    char buf[16];
    CU_ASSERT_EQUAL(aether_options_get(o, "no_such_key", buf, sizeof(buf)), AETHER_ENOTFOUND);
    /* the file: its name, the line and the key */
    char path[] = "/tmp/aether-api-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    static const char text[] = "[node]\nnode = n1\nheartbeat_interval_ms = soon\n";
    CU_ASSERT_FATAL(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    close(fd);
    CU_ASSERT_EQUAL(aether_options_load_file(o, path), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "heartbeat_interval_ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), path));
    unlink(path);
    CU_ASSERT_EQUAL(aether_options_load_file(o, "/nonexistent/aether.ini"), AETHER_ENOTFOUND);
    /* the environment: the variable */
    setenv("AETHER_LEASE_TTL_MS", "1500", 1);
    CU_ASSERT_EQUAL(aether_options_load_env(o), AETHER_OK);
    CU_ASSERT_EQUAL(aether_options_get(o, "lease_ttl_ms", buf, sizeof(buf)), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(buf, "1500");
    setenv("AETHER_NO_SUCH_PARAMETER", "1", 1);
    CU_ASSERT_EQUAL(aether_options_load_env(o), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "AETHER_NO_SUCH_PARAMETER"));
    unsetenv("AETHER_NO_SUCH_PARAMETER");
    unsetenv("AETHER_LEASE_TTL_MS");
    aether_options_destroy(o);
}

/* ---- nodes in one process ------------------------------------------------------- */

static aether_options *node_options(const char *cluster, const char *node, const char *shards)
{
    aether_options *o = NULL;
    CU_ASSERT_FATAL(aether_options_create(&o) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "cluster", cluster) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "node", node) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "shard_count", shards) == AETHER_OK);
    return o;
}

static void test_start_refusals(void)
{
    aether_options *o = NULL;
    aether_node *n = (aether_node *)&o; /* must be cleared on failure */
    CU_ASSERT_FATAL(aether_options_create(&o) == AETHER_OK);
    CU_ASSERT_EQUAL(aether_node_start(o, &n), AETHER_EINVAL); /* no node id */
    CU_ASSERT_PTR_NULL(n);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "node"));
    aether_options_destroy(o);

    o = node_options("refusals", "a", "16");
    aether_node *a = NULL, *dup = NULL, *other = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_node_start(o, &a), AETHER_OK);
    CU_ASSERT_EQUAL(aether_node_start(o, &dup), AETHER_EEXIST); /* same id, same cluster */
    CU_ASSERT_PTR_NULL(dup);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "'a'"));
    CU_ASSERT_FATAL(aether_options_set(o, "node", "b") == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "shard_count", "32") == AETHER_OK);
    CU_ASSERT_EQUAL(aether_node_start(o, &other), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "shard_count"));
    CU_ASSERT_EQUAL(aether_node_wait_ready(a, 10000), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(aether_node_name(a), "a");
    aether_route r;
    CU_ASSERT_EQUAL(aether_node_route_shard(a, 16, &r), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_node_route_key(a, "user:42", 7, &r), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(r.owner, "a");
    CU_ASSERT(r.self && r.map_version > 0 && r.answer == AETHER_ROUTE_LOOKUP);
    /* keyhash.h's vector: XXH64("user:42") = 0xdc1fea7da8d2d1c2; the hashed variant agrees */
    aether_route h;
    CU_ASSERT_EQUAL(aether_node_route_hash(a, 0xdc1fea7da8d2d1c2ull, &h), AETHER_OK);
    CU_ASSERT_EQUAL(h.shard, r.shard);
    CU_ASSERT_EQUAL(r.shard, (uint32_t)(0xdc1fea7da8d2d1c2ull % 16u));
    /* behind: a caller that knows a newer map */
    CU_ASSERT_EQUAL(aether_node_check_route(a, r.shard, r.map_version + 5, &r), AETHER_OK);
    CU_ASSERT_EQUAL(r.answer, AETHER_ROUTE_BEHIND);
    CU_ASSERT_EQUAL(aether_node_check_route(a, r.shard, 0, &r), AETHER_OK);
    CU_ASSERT_EQUAL(r.answer, AETHER_ROUTE_MINE);
    aether_node_stop(a);
    CU_ASSERT_EQUAL(aether_node_wait_ready(a, 0), AETHER_ECLOSED);
    aether_node_destroy(a);
    aether_node_destroy(NULL);
    aether_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL(aether_version());
    CU_ASSERT_STRING_EQUAL(aether_status_str(AETHER_ETIMEOUT), "ETIMEOUT");
}

/* Three nodes of one in-process cluster; a producer routes messages by key
 * on the nodes' maps and sends each to the owner it was told; each node's
 * worker asks check_route and serves (MINE), forwards (MOVED to the owner,
 * MOVING to the target) or holds and retries (BEHIND, TRYAGAIN). Node c
 * joins and node a drains while messages flow. Checked: every message is
 * served exactly once, by a node that holds its shard by the callbacks
 * (acquired, not released) while no other node does. */
#define T_NODES 3u
#define T_SHARDS 64u
#define T_MSGS_MAX 200000u
#define T_HOPS_MAX 100000u

typedef struct t_msg {
    uint32_t id, shard, hops;
    uint64_t version;
} t_msg;

typedef struct t_node {
    const char *name;
    uint32_t index;
    aether_node *n;
    pthread_mutex_t mu; /* serving: held by the worker while it serves, by the callbacks */
    uint8_t owned[T_SHARDS];
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    t_msg *q;
    size_t qhead, qlen, qcap;
    pthread_t worker;
    bool running;
    bool stop;
    uint64_t served, forwarded, retried;
} t_node;

static struct {
    t_node nodes[T_NODES];
    _Atomic int owner_of[T_SHARDS]; /* index of the node holding the shard, -1 */
    _Atomic uint32_t served[T_MSGS_MAX];
    _Atomic uint32_t violations;
    _Atomic uint64_t answers[6];
    _Atomic uint32_t sent;
    _Atomic bool producing;
    _Atomic uint32_t leader_calls, leader_none, maps;
} T;

static void violation(const char *what, uint32_t shard, const char *node)
{
    atomic_fetch_add(&T.violations, 1);
    fprintf(stderr, "VIOLATION: %s: shard %u on %s\n", what, shard, node);
}

static t_node *t_find(const char *name)
{
    for (uint32_t i = 0; i < T_NODES; i++)
        if (strcmp(T.nodes[i].name, name) == 0)
            return &T.nodes[i];
    return NULL;
}

static void t_push(t_node *to, t_msg m)
{
    pthread_mutex_lock(&to->qmu);
    if (to->qlen == to->qcap) {
        size_t cap = to->qcap ? to->qcap * 2 : 1024;
        t_msg *q = malloc(cap * sizeof(*q));
        if (q == NULL)
            abort(); /* a test out of memory */
        for (size_t i = 0; i < to->qlen; i++)
            q[i] = to->q[(to->qhead + i) % to->qcap];
        free(to->q);
        to->q = q;
        to->qcap = cap;
        to->qhead = 0;
    }
    to->q[(to->qhead + to->qlen++) % to->qcap] = m;
    pthread_cond_signal(&to->qcv);
    pthread_mutex_unlock(&to->qmu);
}

static void on_acquired(aether_node *n, uint32_t shard, uint64_t version, void *arg)
{
    t_node *t = arg;
    (void)n;
    (void)version;
    pthread_mutex_lock(&t->mu);
    int none = -1;
    if (!atomic_compare_exchange_strong(&T.owner_of[shard], &none, (int)t->index))
        violation("acquired while another node holds it", shard, t->name);
    t->owned[shard] = 1;
    pthread_mutex_unlock(&t->mu);
}

static void on_released(aether_node *n, uint32_t shard, uint64_t version, void *arg)
{
    t_node *t = arg;
    (void)n;
    (void)version;
    pthread_mutex_lock(&t->mu); /* waits for a message being served: then no more */
    t->owned[shard] = 0;
    int me = (int)t->index;
    if (!atomic_compare_exchange_strong(&T.owner_of[shard], &me, -1))
        violation("released a shard it did not hold", shard, t->name);
    pthread_mutex_unlock(&t->mu);
}

static void on_leader(aether_node *n, const char *leader, uint64_t term, void *arg)
{
    (void)n;
    (void)term;
    (void)arg;
    if (leader == NULL) /* never NULL: "" for none (CUnit is not thread-safe: counted) */
        violation("on_leader_changed passed NULL", 0, "?");
    atomic_fetch_add(&T.leader_calls, 1);
    if (leader != NULL && leader[0] == '\0')
        atomic_fetch_add(&T.leader_none, 1);
}

static void on_map(aether_node *n, uint64_t version, uint64_t term, void *arg)
{
    (void)n;
    (void)term;
    (void)arg;
    if (version == 0)
        violation("on_map_installed with version 0", 0, "?");
    atomic_fetch_add(&T.maps, 1);
}

static void *t_worker(void *arg)
{
    t_node *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->qmu);
        while (t->qlen == 0 && !t->stop)
            pthread_cond_wait(&t->qcv, &t->qmu);
        if (t->qlen == 0 && t->stop) {
            pthread_mutex_unlock(&t->qmu);
            return NULL;
        }
        t_msg m = t->q[t->qhead];
        t->qhead = (t->qhead + 1) % t->qcap;
        t->qlen--;
        pthread_mutex_unlock(&t->qmu);

        aether_route r;
        pthread_mutex_lock(&t->mu);
        aether_status st = aether_node_check_route(t->n, m.shard, m.version, &r);
        if (st != AETHER_OK) {
            pthread_mutex_unlock(&t->mu);
            violation("check_route failed", m.shard, t->name);
            atomic_fetch_add(&T.served[m.id], 1000);
            continue;
        }
        atomic_fetch_add(&T.answers[r.answer], 1);
        if (r.answer == AETHER_ROUTE_MINE) {
            if (!t->owned[m.shard] || atomic_load(&T.owner_of[m.shard]) != (int)t->index)
                violation("served without holding the shard", m.shard, t->name);
            if (atomic_fetch_add(&T.served[m.id], 1) != 0)
                violation("message served twice", m.shard, t->name);
            t->served++;
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        pthread_mutex_unlock(&t->mu);
        if (++m.hops > T_HOPS_MAX) {
            violation("message bounced too often", m.shard, t->name);
            atomic_fetch_add(&T.served[m.id], 1000); /* counted as lost/garbled at the end */
            continue;
        }
        t_node *to = NULL;
        if (r.answer == AETHER_ROUTE_MOVED)
            to = t_find(r.owner);
        else if (r.answer == AETHER_ROUTE_MOVING)
            to = t_find(r.to);
        if (to != NULL && to != t) {
            m.version = r.map_version; /* the sender fast-forwards */
            t->forwarded++;
            t_push(to, m);
        } else { /* BEHIND, TRYAGAIN: hold it a moment, ask again */
            t->retried++;
            sleep_ms(1);
            t_push(t, m);
        }
    }
}

static void *t_producer(void *arg)
{
    (void)arg;
    uint32_t i = 0;
    while (atomic_load(&T.producing) && i < T_MSGS_MAX) {
        t_node *via = &T.nodes[i % 2]; /* a and b, started before the producer */
        char key[32];
        int len = snprintf(key, sizeof(key), "actor-%u", i % 5000u);
        aether_route r;
        aether_status st = aether_node_route_key(via->n, key, (size_t)len, &r);
        t_node *to = st == AETHER_OK ? t_find(r.owner) : NULL;
        t_msg m = { .id = i, .shard = r.shard, .version = r.map_version };
        if (st != AETHER_OK && st != AETHER_ENOTFOUND) {
            violation("route_key failed", r.shard, via->name);
            break;
        }
        if (to == NULL)
            to = via; /* no owner yet: the node we asked holds it */
        t_push(to, m);
        atomic_store(&T.sent, ++i);
        if (i % 16 == 0)
            sleep_ms(1);
    }
    return NULL;
}

static void t_start(uint32_t i, aether_options *o)
{
    t_node *t = &T.nodes[i];
    CU_ASSERT_FATAL(aether_options_set(o, "node", t->name) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_on_shard_acquired(o, on_acquired, t) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_on_shard_released(o, on_released, t) == AETHER_OK);
    aether_node *n = NULL;
    aether_status st = aether_node_start(o, &n);
    if (st != AETHER_OK)
        fprintf(stderr, "start %s: %s\n", t->name, aether_last_error());
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    pthread_mutex_lock(&t->qmu);
    t->n = n;
    pthread_mutex_unlock(&t->qmu);
    if (!t->running) {
        CU_ASSERT_FATAL(pthread_create(&t->worker, NULL, t_worker, t) == 0);
        t->running = true;
    }
    st = aether_node_wait_ready(n, 20000);
    if (st != AETHER_OK)
        fprintf(stderr, "wait_ready %s: %s\n", t->name, aether_last_error());
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
}

static uint32_t t_held(uint32_t i)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < T_SHARDS; s++)
        n += atomic_load(&T.owner_of[s]) == (int)i;
    return n;
}

static void test_three_nodes_exactly_once(void)
{
    memset(&T, 0, sizeof(T));
    static const char *const names[T_NODES] = { "a", "b", "c" };
    for (uint32_t i = 0; i < T_NODES; i++) {
        T.nodes[i].name = names[i];
        T.nodes[i].index = i;
        pthread_mutex_init(&T.nodes[i].mu, NULL);
        pthread_mutex_init(&T.nodes[i].qmu, NULL);
        pthread_cond_init(&T.nodes[i].qcv, NULL);
    }
    for (uint32_t s = 0; s < T_SHARDS; s++)
        atomic_store(&T.owner_of[s], -1);
    aether_options *o = node_options("exactly_once", "a", "64");
    CU_ASSERT_FATAL(aether_options_on_leader_changed(o, on_leader, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_on_map_installed(o, on_map, NULL) == AETHER_OK);
    t_start(0, o);
    t_start(1, o);

    atomic_store(&T.producing, true);
    pthread_t producer;
    CU_ASSERT_FATAL(pthread_create(&producer, NULL, t_producer, NULL) == 0);
    sleep_ms(300);
    t_start(2, o); /* the join: a rebalance moves a third of the shards to c */
    uint64_t t0 = now_ms();
    while (t_held(2) < T_SHARDS / 3 - 1 && now_ms() - t0 < 20000)
        sleep_ms(10);
    CU_ASSERT(t_held(2) >= T_SHARDS / 3 - 1);
    sleep_ms(300);
    aether_status st = aether_node_drain(T.nodes[0].n, 20000); /* a leaves: its shards move */
    if (st != AETHER_OK)
        fprintf(stderr, "drain: %s\n", aether_last_error());
    CU_ASSERT_EQUAL(st, AETHER_OK);
    CU_ASSERT_EQUAL(t_held(0), 0);
    aether_route r;
    CU_ASSERT_EQUAL(aether_node_route_shard(T.nodes[1].n, 0, &r), AETHER_OK);
    CU_ASSERT(strcmp(r.owner, "b") == 0 || strcmp(r.owner, "c") == 0);
    sleep_ms(300);
    atomic_store(&T.producing, false);
    pthread_join(producer, NULL);

    uint32_t sent = atomic_load(&T.sent), done = 0;
    t0 = now_ms();
    for (;;) { /* bounded: 20 s */
        done = 0;
        for (uint32_t i = 0; i < sent; i++)
            done += atomic_load(&T.served[i]) != 0;
        if (done == sent || now_ms() - t0 > 20000)
            break;
        sleep_ms(10);
    }
    for (uint32_t i = 0; i < T_NODES; i++) /* no callback after stop */
        aether_node_stop(T.nodes[i].n);
    for (uint32_t i = 0; i < T_NODES; i++) {
        t_node *t = &T.nodes[i];
        pthread_mutex_lock(&t->qmu);
        t->stop = true;
        t->qlen = 0; /* nothing is left: every message was served */
        pthread_cond_signal(&t->qcv);
        pthread_mutex_unlock(&t->qmu);
        pthread_join(t->worker, NULL);
    }
    /* The workers are joined: their counters may be read. */
    uint32_t once = 0;
    for (uint32_t i = 0; i < sent; i++)
        once += atomic_load(&T.served[i]) == 1;
    printf("\n   sent %u, served once %u; answers mine %" PRIu64 " moved %" PRIu64 " moving %" PRIu64
           " behind %" PRIu64 " tryagain %" PRIu64 "; served a/b/c %" PRIu64 "/%" PRIu64 "/%" PRIu64
           "; leader callbacks %u (none %u), maps %u\n",
           sent, once, (uint64_t)atomic_load(&T.answers[AETHER_ROUTE_MINE]),
           (uint64_t)atomic_load(&T.answers[AETHER_ROUTE_MOVED]),
           (uint64_t)atomic_load(&T.answers[AETHER_ROUTE_MOVING]),
           (uint64_t)atomic_load(&T.answers[AETHER_ROUTE_BEHIND]),
           (uint64_t)atomic_load(&T.answers[AETHER_ROUTE_TRYAGAIN]), T.nodes[0].served, T.nodes[1].served,
           T.nodes[2].served, atomic_load(&T.leader_calls), atomic_load(&T.leader_none), atomic_load(&T.maps));
    CU_ASSERT(sent > 1000);
    CU_ASSERT_EQUAL(done, sent);
    CU_ASSERT_EQUAL(once, sent);
    CU_ASSERT_EQUAL(atomic_load(&T.violations), 0);
    CU_ASSERT(T.nodes[0].served > 0 && T.nodes[1].served > 0 && T.nodes[2].served > 0);
    CU_ASSERT(atomic_load(&T.leader_calls) > 0 && atomic_load(&T.maps) > 0);

    for (uint32_t i = 0; i < T_NODES; i++) {
        aether_node_destroy(T.nodes[i].n);
        free(T.nodes[i].q);
        pthread_mutex_destroy(&T.nodes[i].mu);
        pthread_mutex_destroy(&T.nodes[i].qmu);
        pthread_cond_destroy(&T.nodes[i].qcv);
    }
    aether_options_destroy(o);
}

/* ---- signals --------------------------------------------------------------------- */

/* SigBlk of every thread but the caller, from /proc: each must block
 * SIGTERM and SIGINT. Returns the number of threads checked. */
static int other_threads_block_term(bool *all)
{
    *all = true;
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)gettid());
    DIR *d = opendir("/proc/self/task");
    CU_ASSERT_FATAL(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        char path[320], line[128];
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* gone meanwhile */
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long long blk;
            if (sscanf(line, "SigBlk: %llx", &blk) == 1) {
                bool ok = (blk >> (SIGTERM - 1) & 1u) && (blk >> (SIGINT - 1) & 1u);
                if (!ok)
                    fprintf(stderr, "thread %s does not block SIGTERM/SIGINT: SigBlk %llx\n", e->d_name, blk);
                *all = *all && ok;
                n++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static void test_library_threads_block_signals(void)
{
    /* The program blocks nothing before starting the node. */
    sigset_t none, term;
    sigemptyset(&none);
    CU_ASSERT_FATAL(pthread_sigmask(SIG_SETMASK, &none, NULL) == 0);
    aether_options *o = node_options("signals", "s1", "16");
    aether_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_node_start(o, &n), AETHER_OK);
    CU_ASSERT_EQUAL(aether_node_wait_ready(n, 10000), AETHER_OK);
    sigset_t now;
    CU_ASSERT_FATAL(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0);
    CU_ASSERT(!sigismember(&now, SIGTERM)); /* the caller's mask is given back */
    bool all = false;
    int threads = other_threads_block_term(&all);
    CU_ASSERT(threads >= 2); /* executor workers, timer, RCU reclaimer */
    CU_ASSERT(all);
    /* Only now does the program block SIGTERM for sigwait: a library thread
     * that did not block it would take the signal and the process would die. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    CU_ASSERT_FATAL(pthread_sigmask(SIG_BLOCK, &term, NULL) == 0);
    CU_ASSERT_FATAL(kill(getpid(), SIGTERM) == 0);
    struct timespec limit = { .tv_sec = 5 };
    CU_ASSERT_EQUAL(sigtimedwait(&term, NULL, &limit), SIGTERM);
    CU_ASSERT_FATAL(pthread_sigmask(SIG_UNBLOCK, &term, NULL) == 0);
    aether_node_destroy(n);
    aether_options_destroy(o);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(options_every_key_settable),
    AETHER_TEST(options_errors_name_the_key),
    AETHER_TEST(start_refusals),
    AETHER_TEST(three_nodes_exactly_once),
    AETHER_TEST(library_threads_block_signals),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("api", NULL, NULL, tests);
