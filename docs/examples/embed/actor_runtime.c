/* SPDX-License-Identifier: Apache-2.0 */
/*
 * actor_runtime.c: a tiny actor runtime embedding libaether (an example,
 * docs/examples/README.md). It uses only the public API, <aether/aether.h>.
 *
 * The runtime: four hosts (node-1..node-4), each one cluster node plus
 * one thread that processes messages for the actors it hosts. An actor is
 * an entity keyed by a string ("actor-17"); its shard is the key's shard
 * (aether_shard_of_key), and whoever holds the shard hosts the actor. Two
 * producer threads send every actor numbered messages, routing each by key
 * with aether_node_route_key on their own node's map.
 *
 * How the runtime follows the cluster (the contract of aether_options.h):
 *  1. on_shard_acquired(shard): the host activates the shard's actors (each
 *     actor's `host` goes from -1 to this host) and starts processing their
 *     messages, including those it set aside while waiting for the shard.
 *  2. on_shard_released(shard): the host stops processing the shard before
 *     the callback returns (it takes the host mutex, which a host holds while
 *     it processes one message), then passivates the actors (host back to -1).
 *  3. A host processes a message only for a shard it holds, and only while
 *     aether_node_may_serve says its right to serve holds. Otherwise it
 *     looks the key up on its own map and forwards the message to the owner
 *     it names (during a handoff, the old owner forwards to the new one), or
 *     sets it aside when its map names itself (not acquired yet) or no one;
 *     set-aside messages are retried when it acquires a shard and every
 *     RETRY_MS.
 *
 * The run: node-1..3 start and the leader assigns the shards; the producers
 * start; node-4 joins (a rebalance moves a quarter of the shards to it);
 * node-2 drains (its shards move away, it leaves); the producers stop; every
 * message sent must be processed.
 *
 * What it checks, and counts as a violation (exit 1):
 *  - single owner: an acquire finds an actor still active on another host;
 *    a host processes an actor that is not active on it; two hosts are inside
 *    one actor at once (a per-actor atomic "processing" flag, taken by
 *    compare-and-swap);
 *  - exactly once: a message number processed twice, or (at the end) one
 *    that was sent and never processed (lost);
 *  - the route's shard is not the key's shard.
 * Delivery order is not part of the contract: a message forwarded by the
 * old owner may arrive after a newer one sent straight to the new owner; the
 * summary counts such reorderings.
 *
 * Threading: the callbacks run on the library's threads; hosts and producers
 * on their own threads; the main thread drives the scenario. Every field
 * says who may touch it.
 *
 * Usage: actor-runtime [--actors N] [--shards N] [--seed X]
 * Exit: 0 no violation and nothing lost; 1 violation, loss or a step that did
 * not settle in time; 2 usage; 3 setup failure.
 */
#include <aether/aether.h>
#include <aether/aether_version.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOSTS 4u               /* node-1..3 at the start, node-4 joins */
#define PRODUCERS 2u           /* on node-1 and node-3, which stay */
#define ACTORS_DEFAULT 256u
#define ACTORS_MAX 4096u
#define SHARDS_DEFAULT 64u
#define SEQ_MAX 4096u          /* messages per actor: a bound on the run */
#define HOPS_MAX 8u            /* forwards before a message waits for a retry */
#define RETRY_MS 5u            /* set-aside messages are retried this often */
#define ROUND_PAUSE_US 5000u   /* producers: one message per actor, then this pause */
#define PHASE_PAUSE_MS 400u    /* traffic between the steps of the scenario */
#define SETTLE_MS 15000u       /* a step that takes longer is a failure */
#define VIOLATIONS_PRINTED 5u

typedef struct msg {
    uint32_t actor;
    uint32_t seq;  /* 0, 1, 2, ... per actor, in the order the producer sent them */
    uint32_t hops; /* forwards so far */
} msg;

/* A growable FIFO of messages, guarded by its host's mutex. */
typedef struct fifo {
    msg *buf;
    size_t cap, head, len;
} fifo;

typedef struct actor {
    char key[24];               /* immutable */
    size_t key_len;             /* immutable */
    uint32_t shard;             /* immutable: aether_key_shard(key) */
    atomic_int host;            /* index of the host it is active on, -1 = passive */
    atomic_uint processing;     /* host index + 1 while inside the actor, 0 = nobody */
    /* Touched only inside the actor (processing flag held): */
    uint8_t done[SEQ_MAX];      /* message seq processed */
    uint32_t processed;
    uint32_t next_seq;          /* one past the highest seq processed */
    uint32_t reordered;         /* processed after a higher seq */
    uint64_t state;             /* the actor's "work": a checksum of what it saw */
    /* Written by its producer only; read by main after the producers stop: */
    uint32_t sent;
} actor;

typedef struct host {
    uint32_t index;             /* immutable */
    char id[16];                /* immutable: node-<index+1> */
    aether_node *n;             /* main thread writes (start), then read by its thread
                                   and the producers, started after */
    pthread_t thread;           /* main thread */
    bool started;               /* main thread */
    pthread_mutex_t mu;         /* held while processing one message */
    pthread_cond_t cv;
    /* Under mu: */
    fifo inbox, aside;
    uint8_t *owned;             /* [shard_count]: shards acquired, not released */
    uint32_t owned_count;
    bool retry_aside;           /* a shard was acquired: retry set-aside messages */
    bool stop;
    uint64_t processed, forwarded, set_aside, acquired, released, activated;
} host;

typedef struct runtime {
    uint32_t shard_count, actor_count;    /* immutable after setup */
    uint64_t seed;
    actor *actors;                        /* [actor_count] */
    uint32_t *shard_first, *shard_actors; /* actors of shard s: shard_actors[shard_first[s] ..
                                             shard_first[s + 1]] (immutable) */
    host hosts[HOSTS];
    aether_options *opts;                 /* main thread: every host starts from it */
    atomic_bool producing;
    atomic_uint_fast64_t sent_total, processed_total;
    atomic_bool node2_left;               /* node-2's drain completed (declared Left) */
    pthread_mutex_t vmu;                  /* guards violations */
    uint32_t violations;
} runtime;

static runtime rt;

/* ---- small helpers ----------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    pthread_mutex_lock(&rt.vmu);
    if (rt.violations++ < VIOLATIONS_PRINTED) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "VIOLATION: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    pthread_mutex_unlock(&rt.vmu);
}

static uint32_t violations(void)
{
    pthread_mutex_lock(&rt.vmu);
    uint32_t v = rt.violations;
    pthread_mutex_unlock(&rt.vmu);
    return v;
}

static void fifo_push(fifo *q, msg m)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        msg *buf = malloc(cap * sizeof(*buf));
        if (buf == NULL) {
            fprintf(stderr, "actor-runtime: out of memory\n");
            abort();
        }
        for (size_t i = 0; i < q->len; i++)
            buf[i] = q->buf[(q->head + i) % q->cap];
        free(q->buf);
        q->buf = buf;
        q->cap = cap;
        q->head = 0;
    }
    q->buf[(q->head + q->len) % q->cap] = m;
    q->len++;
}

static bool fifo_pop(fifo *q, msg *out)
{
    if (q->len == 0)
        return false;
    *out = q->buf[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return true;
}

/* Host index of a node id "node-<k>", or -1. */
static int host_of(const char *id)
{
    for (uint32_t i = 0; i < HOSTS; i++)
        if (strcmp(id, rt.hosts[i].id) == 0)
            return (int)i;
    return -1;
}

/* Hands m to host `to` (any thread, holding no host mutex). */
static void deliver(uint32_t to, msg m)
{
    host *h = &rt.hosts[to];
    pthread_mutex_lock(&h->mu);
    fifo_push(&h->inbox, m);
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Where `via`'s map sends actor a: the primary, or, when the shard is moving
 * away from `via` itself, the new owner. -1 when the map names no one. */
static int route_of(const host *via, const actor *a)
{
    aether_route r;
    if (aether_node_route_key(via->n, a->key, a->key_len, &r) != AETHER_OK)
        return -1;
    if (r.shard != a->shard)
        violation("route of %s: shard %u, but its key hashes to shard %u", a->key, r.shard, a->shard);
    int primary = host_of(r.owner);
    if (r.moving && primary == (int)via->index)
        return host_of(r.to);
    return primary;
}

/* ---- node callbacks (the library's threads) ----------------------------------- */

static void on_acquired(aether_node *node, uint32_t shard, uint64_t map_version, void *arg)
{
    host *h = arg;
    (void)node;
    pthread_mutex_lock(&h->mu);
    if (!h->owned[shard]) {
        for (uint32_t i = rt.shard_first[shard]; i < rt.shard_first[shard + 1]; i++) {
            actor *a = &rt.actors[rt.shard_actors[i]];
            int expected = -1;
            if (!atomic_compare_exchange_strong(&a->host, &expected, (int)h->index))
                violation("%s acquired shard %u (map v%" PRIu64 ") while %s is still active on %s",
                          h->id, shard, map_version, a->key,
                          expected >= 0 ? rt.hosts[expected].id : "?");
            else
                h->activated++;
        }
        h->owned[shard] = 1;
        h->owned_count++;
        h->acquired++;
        h->retry_aside = true;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

static void on_released(aether_node *node, uint32_t shard, uint64_t map_version, void *arg)
{
    host *h = arg;
    (void)node;
    (void)map_version;
    /* Taking mu waits for the message being processed, if any: once this
     * returns the host does not touch the shard's actors. */
    pthread_mutex_lock(&h->mu);
    if (h->owned[shard]) {
        h->owned[shard] = 0;
        h->owned_count--;
        h->released++;
        for (uint32_t i = rt.shard_first[shard]; i < rt.shard_first[shard + 1]; i++) {
            actor *a = &rt.actors[rt.shard_actors[i]];
            int expected = (int)h->index;
            if (!atomic_compare_exchange_strong(&a->host, &expected, -1))
                violation("%s released shard %u but %s was active on %s", h->id, shard, a->key,
                          expected >= 0 ? rt.hosts[expected].id : "nobody");
        }
    }
    pthread_mutex_unlock(&h->mu);
}

/* ---- hosts -------------------------------------------------------------------- */

/* Inside the actor: h->mu held, the shard held and serving allowed. */
static void process(host *h, actor *a, const msg *m)
{
    unsigned expected = 0;
    bool entered = atomic_compare_exchange_strong(&a->processing, &expected, h->index + 1);
    if (!entered)
        violation("%s and %s inside %s at once (message %u)", h->id,
                  expected >= 1 ? rt.hosts[expected - 1].id : "?", a->key, m->seq);
    int active_on = atomic_load(&a->host);
    if (active_on != (int)h->index)
        violation("%s processes %s message %u, but the actor is active on %s", h->id, a->key,
                  m->seq, active_on >= 0 ? rt.hosts[active_on].id : "nobody");
    if (a->done[m->seq])
        violation("%s message %u processed twice (now by %s)", a->key, m->seq, h->id);
    a->done[m->seq] = 1;
    a->processed++;
    if (m->seq < a->next_seq)
        a->reordered++;
    else
        a->next_seq = m->seq + 1;
    a->state = a->state * 1099511628211u + m->seq; /* the "work" */
    if (entered)
        atomic_store(&a->processing, 0u);
    h->processed++;
    atomic_fetch_add(&rt.processed_total, 1);
}

static void *host_main(void *arg)
{
    host *h = arg;
    uint64_t next_retry = now_ms() + RETRY_MS;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (h->aside.len > 0 && (h->retry_aside || now_ms() >= next_retry)) {
            /* Set-aside messages go back in front of the inbox, their hop
             * count reset: the map may have moved on since. */
            fifo merged = { 0 };
            msg m;
            while (fifo_pop(&h->aside, &m)) {
                m.hops = 0;
                fifo_push(&merged, m);
            }
            while (fifo_pop(&h->inbox, &m))
                fifo_push(&merged, m);
            free(h->inbox.buf);
            h->inbox = merged;
            h->retry_aside = false;
            next_retry = now_ms() + RETRY_MS;
        }
        msg m;
        if (!fifo_pop(&h->inbox, &m)) {
            if (h->stop)
                break;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)RETRY_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&h->cv, &h->mu, &until);
            continue;
        }
        actor *a = &rt.actors[m.actor];
        if (h->owned[a->shard] && aether_node_may_serve(h->n)) {
            process(h, a, &m);
            continue;
        }
        int to = route_of(h, a);
        if (to < 0 || to == (int)h->index || m.hops >= HOPS_MAX) {
            fifo_push(&h->aside, m); /* ours soon, or nobody's yet: wait */
            h->set_aside++;
            continue;
        }
        m.hops++;
        h->forwarded++;
        pthread_mutex_unlock(&h->mu); /* never hold two host mutexes */
        deliver((uint32_t)to, m);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static int host_start(host *h)
{
    /* The callbacks may fire before start returns: they touch only fields
     * under h->mu. Messages may be queued for this host as soon as a map
     * names it; its thread, which reads h->n, starts once h->n is set. */
    if (aether_options_set(rt.opts, "node", h->id) != AETHER_OK ||
        aether_options_on_shard_acquired(rt.opts, on_acquired, h) != AETHER_OK ||
        aether_options_on_shard_released(rt.opts, on_released, h) != AETHER_OK ||
        aether_node_start(rt.opts, &h->n) != AETHER_OK) {
        fprintf(stderr, "actor-runtime: %s: start: %s\n", h->id, aether_last_error());
        return -1;
    }
    if (pthread_create(&h->thread, NULL, host_main, h) != 0) {
        fprintf(stderr, "actor-runtime: %s: thread\n", h->id);
        return -1;
    }
    h->started = true;
    return 0;
}

/* ---- producers ---------------------------------------------------------------- */

static void *producer_main(void *arg)
{
    uint32_t p = (uint32_t)(uintptr_t)arg;
    const host *home = &rt.hosts[p == 0 ? 0 : 2]; /* node-1 and node-3 never leave */
    while (atomic_load(&rt.producing)) {
        for (uint32_t i = p; i < rt.actor_count; i += PRODUCERS) {
            actor *a = &rt.actors[i];
            if (a->sent == SEQ_MAX)
                continue;
            msg m = { .actor = i, .seq = a->sent++, .hops = 0 };
            int to = route_of(home, a); /* the hot path: lock-free, from this thread */
            deliver(to >= 0 ? (uint32_t)to : home->index, m);
            atomic_fetch_add(&rt.sent_total, 1);
        }
        sleep_us(ROUND_PAUSE_US);
    }
    return NULL;
}

/* ---- the scenario (main thread) ------------------------------------------------ */

static uint32_t owned_by(uint32_t i)
{
    host *h = &rt.hosts[i];
    pthread_mutex_lock(&h->mu);
    uint32_t n = h->owned_count;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Every shard held by exactly one of the hosts in `mask`, evenly (counts
 * within one), none by the others. */
static bool settled(uint32_t mask)
{
    uint32_t total = 0, lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < HOSTS; i++) {
        uint32_t n = rt.hosts[i].started ? owned_by(i) : 0;
        total += n;
        if (!(mask & (1u << i))) {
            if (n != 0)
                return false;
            continue;
        }
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    return total == rt.shard_count && hi - lo <= 1;
}

static void print_owned(const char *what, uint64_t t0)
{
    printf("%-34s after %5" PRIu64 " ms; shards held:", what, now_ms() - t0);
    for (uint32_t i = 0; i < HOSTS; i++)
        if (rt.hosts[i].started)
            printf(" %s=%u", rt.hosts[i].id, owned_by(i));
    printf("; messages sent %" PRIu64 ", processed %" PRIu64 "\n",
           (uint64_t)atomic_load(&rt.sent_total), (uint64_t)atomic_load(&rt.processed_total));
    fflush(stdout);
}

/* Waits until ready() holds (polling every 10 ms), at most SETTLE_MS. */
static bool wait_for(const char *what, bool (*ready)(uint32_t), uint32_t arg)
{
    uint64_t t0 = now_ms();
    while (!ready(arg)) {
        if (now_ms() - t0 > SETTLE_MS) {
            fprintf(stderr, "actor-runtime: '%s' did not happen within %u ms\n", what, SETTLE_MS);
            print_owned(what, t0);
            return false;
        }
        sleep_us(10000);
    }
    print_owned(what, t0);
    return true;
}

static bool node2_gone(uint32_t mask)
{
    return atomic_load(&rt.node2_left) && settled(mask);
}

static bool all_processed(uint32_t unused)
{
    (void)unused;
    return atomic_load(&rt.processed_total) == atomic_load(&rt.sent_total);
}

static int usage(const char *why)
{
    fprintf(stderr, "actor-runtime: %s\nusage: actor-runtime [--actors N (1..%u, default %u)] "
            "[--shards N (4..1024, default %u)] [--seed X]\n", why, ACTORS_MAX, ACTORS_DEFAULT,
            SHARDS_DEFAULT);
    return 2;
}

static int parse_args(int argc, char **argv)
{
    rt.actor_count = ACTORS_DEFAULT;
    rt.shard_count = SHARDS_DEFAULT;
    rt.seed = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage("missing value");
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(argv[i + 1], &end, 0);
        if (errno != 0 || end == argv[i + 1] || *end != '\0')
            return usage("not a number");
        if (strcmp(argv[i], "--actors") == 0 && v >= 1 && v <= ACTORS_MAX)
            rt.actor_count = (uint32_t)v;
        else if (strcmp(argv[i], "--shards") == 0 && v >= 4 && v <= 1024)
            rt.shard_count = (uint32_t)v;
        else if (strcmp(argv[i], "--seed") == 0)
            rt.seed = v;
        else
            return usage("unknown option or value out of range");
        i++;
    }
    return 0;
}

/* Actors and the per-shard index (counting sort by shard). */
static int setup_actors(void)
{
    rt.actors = calloc(rt.actor_count, sizeof(*rt.actors));
    rt.shard_first = calloc(rt.shard_count + 1, sizeof(*rt.shard_first));
    rt.shard_actors = calloc(rt.actor_count, sizeof(*rt.shard_actors));
    if (rt.actors == NULL || rt.shard_first == NULL || rt.shard_actors == NULL)
        return -1;
    for (uint32_t i = 0; i < rt.actor_count; i++) {
        actor *a = &rt.actors[i];
        a->key_len = (size_t)snprintf(a->key, sizeof(a->key), "actor-%u", i);
        a->shard = aether_shard_of_key(a->key, a->key_len, rt.shard_count);
        atomic_init(&a->host, -1);
        atomic_init(&a->processing, 0u);
        rt.shard_first[a->shard + 1]++;
    }
    for (uint32_t s = 0; s < rt.shard_count; s++)
        rt.shard_first[s + 1] += rt.shard_first[s];
    uint32_t *fill = calloc(rt.shard_count, sizeof(*fill));
    if (fill == NULL)
        return -1;
    for (uint32_t i = 0; i < rt.actor_count; i++) {
        uint32_t s = rt.actors[i].shard;
        rt.shard_actors[rt.shard_first[s] + fill[s]++] = i;
    }
    free(fill);
    return 0;
}

static int setup_cluster(void)
{
    /* Every node of this process with cluster "actor-runtime" shares one
     * in-process cluster (aether_node.h): no server, no wiring. */
    char shards[16];
    snprintf(shards, sizeof(shards), "%u", rt.shard_count);
    if (aether_options_create(&rt.opts) != AETHER_OK ||
        aether_options_set(rt.opts, "cluster", "actor-runtime") != AETHER_OK ||
        aether_options_set(rt.opts, "shard_count", shards) != AETHER_OK) {
        fprintf(stderr, "actor-runtime: options: %s\n", aether_last_error());
        return -1;
    }
    for (uint32_t i = 0; i < HOSTS; i++) {
        host *h = &rt.hosts[i];
        h->index = i;
        snprintf(h->id, sizeof(h->id), "node-%u", i + 1);
        pthread_mutex_init(&h->mu, NULL);
        pthread_cond_init(&h->cv, NULL);
        h->owned = calloc(rt.shard_count, 1);
        if (h->owned == NULL)
            return -1;
    }
    return 0;
}

/* Nodes stop first (no more callbacks), then the hosts' threads. */
static void stop_all(void)
{
    for (uint32_t i = 0; i < HOSTS; i++)
        aether_node_stop(rt.hosts[i].n); /* NULL is fine */
    for (uint32_t i = 0; i < HOSTS; i++) {
        host *h = &rt.hosts[i];
        if (!h->started)
            continue;
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
        h->started = false;
    }
}

/* After stop_all: the nodes, then the runtime. */
static void free_all(void)
{
    for (uint32_t i = 0; i < HOSTS; i++) {
        host *h = &rt.hosts[i];
        aether_node_destroy(h->n); /* the last one frees the in-process cluster */
        h->n = NULL;
    }
    aether_options_destroy(rt.opts);
    for (uint32_t i = 0; i < HOSTS; i++) {
        host *h = &rt.hosts[i];
        if (h->owned != NULL) { /* set up by setup_cluster */
            pthread_mutex_destroy(&h->mu);
            pthread_cond_destroy(&h->cv);
        }
        free(h->inbox.buf);
        free(h->aside.buf);
        free(h->owned);
    }
    free(rt.actors);
    free(rt.shard_first);
    free(rt.shard_actors);
}

/* The end-of-run check (after stop_all): every message sent was processed
 * exactly once. Returns the messages lost; *reordered_out the reorderings. */
static uint64_t count_lost(uint64_t *reordered_out)
{
    uint64_t lost = 0, reordered = 0;
    for (uint32_t i = 0; i < rt.actor_count; i++) {
        const actor *a = &rt.actors[i];
        reordered += a->reordered;
        for (uint32_t s = 0; s < a->sent; s++)
            if (!a->done[s] && lost++ < VIOLATIONS_PRINTED)
                fprintf(stderr, "LOST: %s message %u\n", a->key, s);
    }
    *reordered_out = reordered;
    return lost;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc != 0)
        return rc;
    pthread_mutex_init(&rt.vmu, NULL);
    atomic_init(&rt.producing, false);
    atomic_init(&rt.sent_total, 0);
    atomic_init(&rt.processed_total, 0);
    atomic_init(&rt.node2_left, false);
    printf("actor-runtime on libaether %s: %u hosts, %u actors, %u shards\n", AETHER_VERSION_STRING,
           HOSTS, rt.actor_count, rt.shard_count);
    if (setup_actors() != 0 || setup_cluster() != 0) {
        fprintf(stderr, "actor-runtime: setup failed\n");
        stop_all();
        free_all();
        return 3;
    }

    bool ok = true;
    pthread_t producers[PRODUCERS];
    uint32_t producers_started = 0;
    for (uint32_t i = 0; i < 3 && ok; i++)
        ok = host_start(&rt.hosts[i]) == 0;
    ok = ok && wait_for("node-1..3 up, shards assigned", settled, 0x7u);
    if (ok) {
        atomic_store(&rt.producing, true);
        for (uint32_t p = 0; p < PRODUCERS && ok; p++) {
            ok = pthread_create(&producers[p], NULL, producer_main, (void *)(uintptr_t)p) == 0;
            producers_started += ok;
        }
        sleep_us(PHASE_PAUSE_MS * 1000u);
    }
    if (ok) {
        printf("node-4 joins\n");
        ok = host_start(&rt.hosts[3]) == 0 && wait_for("node-4 holds its share", settled, 0xfu);
        sleep_us(PHASE_PAUSE_MS * 1000u);
    }
    if (ok) {
        printf("node-2 drains\n");
        /* drain returns once node-2 is declared Left, its shards handed off */
        aether_status st = aether_node_drain(rt.hosts[1].n, SETTLE_MS);
        if (st != AETHER_OK)
            fprintf(stderr, "actor-runtime: drain: %s\n", aether_last_error());
        atomic_store(&rt.node2_left, st == AETHER_OK);
        ok = st == AETHER_OK &&
             wait_for("node-2 left, its shards moved", node2_gone, 0xdu);
        sleep_us(PHASE_PAUSE_MS * 1000u);
    }
    atomic_store(&rt.producing, false);
    for (uint32_t p = 0; p < producers_started; p++)
        pthread_join(producers[p], NULL);
    if (ok)
        ok = wait_for("every message processed", all_processed, 0);
    stop_all();

    uint64_t reordered = 0;
    uint64_t lost = count_lost(&reordered);
    printf("\n%-8s %10s %10s %10s %9s %9s %10s\n", "host", "processed", "forwarded", "set-aside",
           "acquired", "released", "activated");
    for (uint32_t i = 0; i < HOSTS; i++) {
        const host *h = &rt.hosts[i];
        printf("%-8s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9" PRIu64 " %10" PRIu64 "\n",
               h->id, h->processed, h->forwarded, h->set_aside, h->acquired, h->released,
               h->activated);
    }
    uint32_t v = violations();
    printf("\nmessages sent %" PRIu64 ", processed %" PRIu64 ", lost %" PRIu64
           ", reordered across a handoff %" PRIu64 "; violations %u\n",
           (uint64_t)atomic_load(&rt.sent_total), (uint64_t)atomic_load(&rt.processed_total), lost,
           reordered, v);
    free_all();
    if (!ok || lost != 0 || v != 0) {
        printf("FAILED: %s\n", !ok ? "a step did not complete" : v != 0 ? "single-owner or exactly-once violated"
                                                                       : "messages lost");
        return 1;
    }
    printf("OK: no message processed by two owners, none processed twice, none lost\n");
    return 0;
}
