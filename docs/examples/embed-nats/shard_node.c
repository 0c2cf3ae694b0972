/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shard_node.c: one process of a sharded runtime over a real nats-server,
 * embedding libaether (an example, docs/examples/README.md). It uses only
 * the public API, <aether/aether.h>, and nothing but the C library and
 * pthreads besides.
 *
 * Where docs/examples/embed/ runs four hosts in one process, here one
 * process is one node: start three of them against one nats-server and
 * they form a cluster; kill one and the others take its shards over; send
 * one SIGTERM and it hands its shards off and leaves.
 *
 *   shard-node --node ID [--nats URLS] [--cluster NAME] [--shards N] [--keys N]
 *
 * The options come from the AETHER_* environment first (every key of
 * docs/configuration.md: AETHER_LEASE_TTL_MS=3000 ...), then from the flags.
 *
 * The runtime's work: a worker thread that, every TICK_MS, takes a message
 * for each of --keys keys ("order:0", "order:1", ...) and does what a
 * runtime that receives messages for any key does:
 *  1. route the key (aether_node_route_key): the owner and the map version;
 *  2. another node owns it: forward it there, with the map version (this
 *     example only counts it: a real runtime sends it over its own transport);
 *  3. this node owns it: as the receiver, check the route
 *     (aether_node_check_route with the sender's map version) and serve it
 *     only on AETHER_ROUTE_MINE, under the lock on_shard_released takes, so
 *     no message is served after the shard was released; MOVED or MOVING:
 *     forward; BEHIND or TRYAGAIN: hold it for the next tick.
 *
 * Output, one line per event, so that a test can check the cluster from the
 * outside (tests/install/embed_nats_test.sh):
 *   <unix_us> <node> ACQUIRED <shard> <map_version>    on_shard_acquired
 *   <unix_us> <node> RELEASED <shard> <map_version>    on_shard_released
 *   <unix_us> <node> LEADER <leader|-> <term>          on_leader_changed ("-": none)
 *   <unix_us> <node> MAP <map_version> <term>          on_map_installed
 *   <unix_us> <node> READY                             aether_node_wait_ready returned OK
 *   <unix_us> <node> DRAIN <status>                    SIGTERM taken; the drain's result
 *   <unix_us> <node> EXIT held=N served=N forwarded=N held_back=N
 * The times are CLOCK_REALTIME microseconds: lines of several processes on
 * one machine sort into one history. stdout is line-buffered, so a kill -9
 * loses no finished line.
 *
 * Signals: SIGTERM and SIGINT are blocked before the node starts (the
 * worker thread inherits that) and taken by sigwait in main; the library's
 * threads block every signal themselves.
 *
 * Exit: 0 drained (every shard released, the node Left); 1 a failure of the
 * library (start, ready, drain: aether_last_error printed); 2 usage.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask, nanosleep under -std=c11 */

#include <aether/aether.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS_MAX 65536u
#define KEYS_DEFAULT 256u
#define KEYS_MAX 100000u
#define TICK_MS 20u
#define READY_TIMEOUT_MS 30000u
#define DRAIN_TIMEOUT_MS 10000u
#define DRAIN_ATTEMPTS 3u  /* ETIMEOUT: ask again, this many times at most */

typedef struct runtime {
    aether_node *node;        /* set by main before the worker starts */
    uint32_t shard_count;     /* immutable */
    uint32_t key_count;       /* immutable */
    pthread_mutex_t mu;       /* serialises serving with on_shard_released */
    uint8_t *owned;           /* [shard_count], under mu: acquired, not released */
    uint32_t held;            /* under mu: shards owned */
    atomic_bool stop;         /* main -> worker */
    uint64_t served, forwarded, held_back; /* worker only; main reads after join */
} runtime;

static runtime rt;

static void emit(const aether_node *node, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(const aether_node *node, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One printf per line: stdio locks the stream, lines never interleave. */
    printf("%lld%06ld %s %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000L, aether_node_name(node), line);
}

/* ---- callbacks: the library's threads, one at a time; return quickly ------- */

static void on_acquired(aether_node *node, uint32_t shard, uint64_t map_version, void *arg)
{
    runtime *r = arg;
    pthread_mutex_lock(&r->mu);
    if (!r->owned[shard]) {
        r->owned[shard] = 1;
        r->held++;
    }
    emit(node, "ACQUIRED %u %" PRIu64, shard, map_version); /* printed once it serves */
    pthread_mutex_unlock(&r->mu);
}

static void on_released(aether_node *node, uint32_t shard, uint64_t map_version, void *arg)
{
    runtime *r = arg;
    /* The worker holds mu while it serves a message: once we have it, no
     * message of this shard is being served, and none will be. */
    pthread_mutex_lock(&r->mu);
    if (r->owned[shard]) {
        r->owned[shard] = 0;
        r->held--;
    }
    emit(node, "RELEASED %u %" PRIu64, shard, map_version); /* printed once it stopped */
    pthread_mutex_unlock(&r->mu);
}

static void on_leader(aether_node *node, const char *leader, uint64_t term, void *arg)
{
    (void)arg;
    emit(node, "LEADER %s %" PRIu64, leader[0] ? leader : "-", term); /* "" when none leads */
}

static void on_map(aether_node *node, uint64_t map_version, uint64_t term, void *arg)
{
    (void)arg;
    emit(node, "MAP %" PRIu64 " %" PRIu64, map_version, term);
}

/* ---- the runtime's work ------------------------------------------------------ */

/* The receiving side of a message for `shard` that a sender routed with its
 * map `sender_version` (here the sender is this very node). */
static void receive(runtime *r, uint32_t shard, uint64_t sender_version)
{
    aether_route c;
    if (aether_node_check_route(r->node, shard, sender_version, &c) != AETHER_OK) {
        r->held_back++; /* superseded or stopped: serve nothing */
        return;
    }
    switch (c.answer) {
    case AETHER_ROUTE_MINE:
        pthread_mutex_lock(&r->mu);
        if (r->owned[shard])
            r->served++; /* the work of a real runtime goes here, under mu */
        else
            r->held_back++; /* on_shard_acquired has not run yet */
        pthread_mutex_unlock(&r->mu);
        break;
    case AETHER_ROUTE_MOVED:  /* c.owner owns it: forward (or tell the sender) */
    case AETHER_ROUTE_MOVING: /* handed off to c.to: send it there */
        r->forwarded++;
        break;
    case AETHER_ROUTE_BEHIND:   /* the sender's map is newer: this node reads it now */
    case AETHER_ROUTE_TRYAGAIN: /* not serving yet: keep it and ask again */
    case AETHER_ROUTE_LOOKUP:
        r->held_back++;
        break;
    }
}

static void *worker_main(void *arg)
{
    runtime *r = arg;
    char key[32];
    while (!atomic_load(&r->stop)) {
        for (uint32_t k = 0; k < r->key_count; k++) {
            int len = snprintf(key, sizeof(key), "order:%u", k);
            aether_route route;
            if (aether_node_route_key(r->node, key, (size_t)len, &route) != AETHER_OK) {
                r->held_back++; /* no map or no owner yet */
                continue;
            }
            if (route.self)
                receive(r, route.shard, route.map_version);
            else
                r->forwarded++; /* send to route.owner with route.map_version */
        }
        struct timespec ts = { 0, (long)TICK_MS * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return NULL;
}

/* ---- main ---------------------------------------------------------------------- */

static int usage(const char *why)
{
    fprintf(stderr, "shard-node: %s\nusage: shard-node --node ID [--nats URLS] [--cluster NAME] "
                    "[--shards N] [--keys N]\n(AETHER_* variables first, then the flags)\n", why);
    return 2;
}

static int fail(const char *what)
{
    fprintf(stderr, "shard-node: %s: %s\n", what, aether_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    aether_options *o = NULL;
    if (aether_options_create(&o) != AETHER_OK)
        return fail("options");
    if (aether_options_load_env(o) != AETHER_OK) {
        aether_options_destroy(o);
        return fail("environment");
    }
    rt.key_count = KEYS_DEFAULT;
    static const char *const flags[][2] = {
        { "--node", "node" }, { "--nats", "nats_urls" }, { "--cluster", "cluster" }, { "--shards", "shard_count" },
    };
    for (int i = 1; i < argc; i++) {
        const char *key = NULL;
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
            if (strcmp(argv[i], flags[f][0]) == 0)
                key = flags[f][1];
        if (key == NULL && strcmp(argv[i], "--keys") != 0) {
            aether_options_destroy(o);
            return usage("unknown option");
        }
        if (i + 1 >= argc) {
            aether_options_destroy(o);
            return usage("an option without its value");
        }
        const char *value = argv[++i];
        if (key == NULL) { /* --keys */
            char *end;
            unsigned long n = strtoul(value, &end, 10);
            if (*end != '\0' || n == 0 || n > KEYS_MAX) {
                aether_options_destroy(o);
                return usage("--keys wants 1..100000");
            }
            rt.key_count = (uint32_t)n;
        } else if (aether_options_set(o, key, value) != AETHER_OK) {
            fprintf(stderr, "shard-node: %s\n", aether_last_error()); /* names the key and why */
            aether_options_destroy(o);
            return 2;
        }
    }
    char buf[16];
    if (aether_options_get(o, "shard_count", buf, sizeof(buf)) != AETHER_OK) {
        aether_options_destroy(o);
        return fail("shard_count");
    }
    rt.shard_count = (uint32_t)strtoul(buf, NULL, 10); /* range-checked by aether_options_set */
    rt.owned = calloc(rt.shard_count, 1);
    pthread_mutex_init(&rt.mu, NULL);
    atomic_init(&rt.stop, false);
    if (rt.owned == NULL || rt.shard_count == 0 || rt.shard_count > SHARDS_MAX) {
        aether_options_destroy(o);
        return fail("shards");
    }
    aether_options_on_shard_acquired(o, on_acquired, &rt);
    aether_options_on_shard_released(o, on_released, &rt);
    aether_options_on_leader_changed(o, on_leader, &rt);
    aether_options_on_map_installed(o, on_map, &rt);

    /* SIGTERM and SIGINT: blocked here, before any thread of ours exists,
     * and taken by sigwait below. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    pthread_sigmask(SIG_BLOCK, &term, NULL);

    aether_status st = aether_node_start(o, &rt.node); /* copies o; callbacks may fire from now on */
    aether_options_destroy(o);
    if (st != AETHER_OK)
        return fail("start");
    st = aether_node_wait_ready(rt.node, READY_TIMEOUT_MS);
    if (st != AETHER_OK) {
        int rc = fail("wait_ready");
        aether_node_destroy(rt.node);
        return rc;
    }
    emit(rt.node, "READY");
    pthread_t worker;
    if (pthread_create(&worker, NULL, worker_main, &rt) != 0) {
        aether_node_destroy(rt.node);
        fprintf(stderr, "shard-node: cannot start the worker thread\n");
        return 1;
    }

    int sig = 0;
    sigwait(&term, &sig);
    /* Drain: the leader moves every shard away (on_shard_released for each,
     * the worker keeps serving the rest meanwhile) and declares us Left. */
    st = AETHER_ETIMEOUT;
    for (uint32_t i = 0; i < DRAIN_ATTEMPTS && st == AETHER_ETIMEOUT; i++)
        st = aether_node_drain(rt.node, DRAIN_TIMEOUT_MS);
    emit(rt.node, "DRAIN %s", aether_status_str(st));
    if (st != AETHER_OK)
        fprintf(stderr, "shard-node: drain: %s\n", aether_last_error());
    atomic_store(&rt.stop, true);
    pthread_join(worker, NULL);
    aether_node_stop(rt.node); /* no callback after this */
    pthread_mutex_lock(&rt.mu);
    uint32_t held = rt.held;
    pthread_mutex_unlock(&rt.mu);
    emit(rt.node, "EXIT held=%u served=%" PRIu64 " forwarded=%" PRIu64 " held_back=%" PRIu64, held, rt.served,
         rt.forwarded, rt.held_back);
    aether_node_destroy(rt.node);
    free(rt.owned);
    return st == AETHER_OK && held == 0 ? 0 : 1;
}
