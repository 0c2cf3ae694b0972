/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_node.c: the public node (transport layer, the top of the library;
 * contract in aether_node.h). It wires executor, transport, lease and
 * state stores, secret and member, so an embedder makes one call;
 * aether-node's NATS mode is such an embedder (plus the internal hooks of
 * aether_node_hooks.h).
 *
 * DESIGN
 *  1. Two modes. NATS (nats_urls set): one connection, the buckets
 *     aether_<cluster>_lease (TTL lease_ttl_ms, one key) and
 *     aether_<cluster>_state created if missing and retried while JetStream
 *     is not ready (bounded by nats_connect_timeout_ms, or the hooks'
 *     kv_wait_ms), the NATS transport
 *     endpoint and an executor of its own. In-process: a process-wide
 *     registry of clusters keyed by name (clusters_mu); the first node of a
 *     name creates its executor, hub and in-memory stores, the last one to
 *     go frees them; the nodes in between share them, as N nodes of one
 *     aether-node --embedded do.
 *  2. Signals. aether_node_start blocks every signal in the calling thread
 *     for its whole duration and restores the mask before returning, so
 *     every thread started inside it - ours (thread.h does it again), the
 *     RCU reclaimer (started here on purpose), nats.c's (library threads at
 *     its first connect, one per subscription) - inherits a full mask.
 *     Later threads are started by those threads, which block everything.
 *  3. Serving state for the stale-route answers. held[shard] is 1 between
 *     the return of the embedder's on_shard_acquired and the start of its
 *     on_shard_released (atomics, written by the member's assign actor, read
 *     by check_route on any thread): check_route answers MINE only for a
 *     shard whose acquire the embedder has seen and whose release has not
 *     begun, so "mine" never runs ahead of the embedder's own callbacks.
 *  4. Lookups go through the member's RCU slot (routing.h): one map per
 *     answer, copied out into the public aether_route (fixed char arrays).
 *
 * Threading: start/wait_ready/drain/stop/destroy from one thread per node
 * at a time (not a library thread); lookups from any thread; the
 * callbacks below run on the member's actor threads.
 */
#include "aether_facade.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aether/aether_version.h>

#include "auth.h"
#include "clock.h"
#include "codec.h"
#include "exec_pool.h"
#include "inproc.h"
#include "keyhash.h"
#include "kv_store.h"
#include "log.h"
#include "member.h"
#include "nats_conn.h"
#include "nats_kv.h"
#include "nats_transport.h"
#include "routing.h"
#include "snapshot.h"
#include "thread.h"

#define NODE_LOG "node"
#define READY_POLL_NS (1u * AETHER_NS_PER_MS)      /* wait_ready / drain poll period */
#define DRAIN_RESEND_NS (1000u * AETHER_NS_PER_MS) /* drain asks again while not Draining */
#define MAP_READ_MIN_NS (2u * AETHER_NS_PER_MS)    /* "behind": at most one read per 2 ms */
#define KV_RETRY_MS 100u                           /* JetStream not ready: first retry */
#define KV_RETRY_MAX_MS 1000u
#define KV_WARN_EVERY_MS 5000u                     /* one warning per this while waiting */

AETHER_STATIC_ASSERT(AETHER_ID_LEN_MAX == AETHER_NODE_ID_LEN_MAX, "public id length is the node id's");
AETHER_STATIC_ASSERT(sizeof(((aether_route *)0)->owner) == sizeof(((aether_node_id *)0)->str),
                     "an id copies whole");

/* ---- in-process clusters (DESIGN 1) --------------------------------------- */

typedef struct inproc_cluster {
    struct inproc_cluster *next; /* clusters_mu */
    char name[AETHER_CLUSTER_NAME_MAX + 1];
    uint32_t nodes;              /* clusters_mu: nodes started and not destroyed */
    uint32_t shard_count, replication, lease_ttl_ms; /* immutable: every node must agree */
    aether_executor *ex;
    aether_inproc_hub *hub;
    aether_kv *lease_kv, *state_kv;
    aether_node *members;        /* clusters_mu: its nodes, for the duplicate-id check */
} inproc_cluster;

static pthread_mutex_t clusters_mu = PTHREAD_MUTEX_INITIALIZER;
static inproc_cluster *clusters;

struct aether_node {
    aether_options opts;         /* immutable copy: the callbacks and the settings */
    aether_config cfg;           /* immutable: this node's config */
    uint32_t shard_count;        /* immutable: cfg.shard_count */
    aether_member *m;            /* set before the member's first callback can use it */
    aether_transport *t;
    /* in-process */
    inproc_cluster *ic;
    aether_node *ic_next;        /* clusters_mu */
    /* NATS */
    natsConnection *nc;
    aether_executor *ex;         /* own executor (NATS mode) */
    aether_executor *io_ex;      /* NATS mode: one thread for the member's store actor, the
                                    one actor that waits on JetStream (member.h, io_executor) */
    aether_executor *lease_io_ex; /* NATS mode: one thread for the store actor's lease lane
                                    (member.h, lease_io_executor) */
    aether_executor *bulk_ex;    /* NATS mode: one thread at a lower priority for the assign
                                    actor's whole-map work (member.h, bulk_executor) */
    aether_kv *lease_kv, *state_kv;
    aether_auth *auth;
    aether_auth_sealer sealer;
    aether_codec_stats codec_stats;
    /* serving state (DESIGN 3) */
    _Atomic uint8_t *held;       /* [shard_count]; written by the assign actor, read anywhere */
    _Atomic uint64_t map_read_ns; /* last "behind" read asked for */
    _Atomic int stopped;         /* aether_node_stop ran */
    volatile int stopping;       /* polled by the NATS connect retry */
    const volatile int *stop;    /* immutable: &stopping, or the hooks' flag (aether_node_hooks.h) */
};

static uint64_t now_ns(void) { return aether_clock_now_ns(aether_clock_real()); }

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- the member's callbacks (its actor threads) ---------------------------- */

static void cb_acquired(void *arg, uint32_t shard, uint64_t map_version)
{
    aether_node *n = arg;
    if (n->opts.on_acquired != NULL)
        n->opts.on_acquired(n, shard, map_version, n->opts.acquired_arg);
    if (shard < n->shard_count) /* after the embedder's callback: DESIGN 3 */
        atomic_store_explicit(&n->held[shard], 1, memory_order_release);
}

static void cb_released(void *arg, uint32_t shard, uint64_t map_version)
{
    aether_node *n = arg;
    if (shard < n->shard_count) /* before it: from here on check_route says not mine */
        atomic_store_explicit(&n->held[shard], 0, memory_order_seq_cst);
    if (n->opts.on_released != NULL)
        n->opts.on_released(n, shard, map_version, n->opts.released_arg);
}

static void cb_leader(void *arg, const aether_node_id *leader, aether_term term)
{
    aether_node *n = arg;
    if (n->opts.on_leader != NULL) /* never NULL for the embedder: "" = no leader */
        n->opts.on_leader(n, leader != NULL ? leader->str : "", (uint64_t)term, n->opts.leader_arg);
}

static void cb_map(void *arg, uint64_t map_version, aether_term map_term)
{
    aether_node *n = arg;
    if (n->opts.on_map != NULL)
        n->opts.on_map(n, map_version, (uint64_t)map_term, n->opts.map_arg);
}

static void cb_event(void *arg, const aether_event *e)
{
    aether_node *n = arg;
    n->opts.hooks.on_event(n->opts.hooks.arg, e); /* set only when the hook is */
}

static void cb_superseded(void *arg, uint64_t incarnation, uint64_t by_incarnation)
{
    aether_node *n = arg;
    n->opts.hooks.on_superseded(n->opts.hooks.arg, incarnation, by_incarnation);
}

/* ---- in-process cluster registry --------------------------------------------- */

static void cluster_free(inproc_cluster *c)
{
    if (c == NULL)
        return;
    if (c->ex != NULL)
        aether_pool_stop(c->ex);
    aether_inproc_hub_destroy(c->hub);
    aether_kv_destroy(c->lease_kv);
    aether_kv_destroy(c->state_kv);
    aether_executor_destroy(c->ex);
    free(c);
    aether_rcu_barrier(); /* retired maps and snapshots are freed now */
}

/* Joins (or creates) the cluster of n->cfg.cluster. clusters_mu held. */
static aether_status cluster_join_locked(aether_node *n)
{
    const aether_config *cfg = &n->cfg;
    inproc_cluster *c = clusters;
    while (c != NULL && strcmp(c->name, cfg->cluster) != 0)
        c = c->next;
    if (c != NULL) {
        if (c->shard_count != cfg->shard_count || c->replication != cfg->replication ||
            c->lease_ttl_ms != cfg->lease_ttl_ms)
            return aether_facade_fail(AETHER_EINCOMPATIBLE,
                                      "in-process cluster '%s' runs shard_count %u, replication %u, "
                                      "lease_ttl_ms %u; this node asks for %u, %u, %u",
                                      c->name, c->shard_count, c->replication, c->lease_ttl_ms,
                                      cfg->shard_count, cfg->replication, cfg->lease_ttl_ms);
        for (aether_node *o = c->members; o != NULL; o = o->ic_next)
            if (aether_node_id_equal(&o->cfg.node, &cfg->node))
                return aether_facade_fail(AETHER_EEXIST, "node '%s' already runs in in-process cluster '%s'",
                                          cfg->node.str, c->name);
    } else {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return aether_facade_fail(AETHER_ENOMEM, "out of memory");
        snprintf(c->name, sizeof(c->name), "%s", cfg->cluster);
        c->shard_count = cfg->shard_count;
        c->replication = cfg->replication;
        c->lease_ttl_ms = cfg->lease_ttl_ms;
        aether_pool_config pc = { 0 };
        aether_err err = { 0 };
        aether_kv_mem_config lk = { .name = "lease", .ttl_ms = cfg->lease_ttl_ms, .clock = aether_clock_real() };
        aether_kv_mem_config sk = { .name = "state", .ttl_ms = 0, .clock = aether_clock_real() };
        aether_status st = aether_pool_create(&pc, &c->ex);
        if (st == AETHER_OK)
            st = aether_pool_start(c->ex);
        if (st == AETHER_OK)
            st = aether_inproc_hub_create(&c->hub);
        if (st == AETHER_OK)
            st = aether_kv_mem_create(&lk, &c->lease_kv, &err);
        if (st == AETHER_OK)
            st = aether_kv_mem_create(&sk, &c->state_kv, &err);
        if (st != AETHER_OK) {
            cluster_free(c);
            return aether_facade_fail(st, "in-process cluster '%s': %s%s", cfg->cluster, aether_status_str(st),
                                      err.msg[0] != '\0' ? err.msg : "");
        }
        c->next = clusters;
        clusters = c;
    }
    c->nodes++;
    n->ic = c;
    n->ic_next = c->members;
    c->members = n;
    return AETHER_OK;
}

/* Takes n out of its cluster; the last node frees it. */
static void cluster_leave(aether_node *n)
{
    inproc_cluster *c = n->ic, *dead = NULL;
    if (c == NULL)
        return;
    AETHER_ASSERT(pthread_mutex_lock(&clusters_mu) == 0);
    for (aether_node **p = &c->members; *p != NULL; p = &(*p)->ic_next)
        if (*p == n) {
            *p = n->ic_next;
            break;
        }
    if (--c->nodes == 0) {
        for (inproc_cluster **p = &clusters; *p != NULL; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
        dead = c;
    }
    AETHER_ASSERT(pthread_mutex_unlock(&clusters_mu) == 0);
    n->ic = NULL;
    cluster_free(dead); /* outside the lock: it joins threads */
}

/* ---- NATS mode --------------------------------------------------------------- */

/* One bucket, retried while JetStream is not ready, for at most
 * nats_connect_timeout_ms (or the hooks' kv_wait_ms), or until *n->stop.
 * Waits through EUNAVAILABLE (no meta leader, replicas not placeable yet,
 * timeouts) and ENOTFOUND (a stream just created whose info a new stream
 * leader cannot give yet); anything else is final at once: EINCOMPATIBLE
 * (the bucket exists with another TTL or replica count: the sentence names
 * the parameter every node must agree on), EPERM (the user lacks the JetStream
 * API), the rest. One warning per KV_WARN_EVERY_MS while waiting. */
static aether_status nats_bucket(aether_node *n, const char *suffix, uint64_t ttl_ms, bool one_key,
                                 aether_kv **out)
{
    const aether_nats_settings *ns = &n->opts.s.nats;
    char bucket[AETHER_KV_NATS_BUCKET_LEN_MAX + 1];
    int len = snprintf(bucket, sizeof(bucket), "aether_%s_%s", n->cfg.cluster, suffix);
    if (len < 0 || (size_t)len >= sizeof(bucket))
        return aether_facade_fail(AETHER_EINVAL, "cluster: '%s' makes a bucket name longer than %u bytes",
                                  n->cfg.cluster, (unsigned)AETHER_KV_NATS_BUCKET_LEN_MAX);
    aether_kv_nats_config kc = { .conn = n->nc, .bucket = bucket, .ttl_ms = ttl_ms,
                                 .replicas = ns->kv_replicas, .timeout_ms = ns->request_timeout_ms,
                                 .create_if_missing = true, .one_key = one_key,
                                 .sealer = n->auth != NULL ? &n->sealer : NULL, .stats = &n->codec_stats };
    uint32_t wait_limit_ms = n->opts.hooks.kv_wait_ms != 0 ? n->opts.hooks.kv_wait_ms : ns->connect_timeout_ms;
    uint64_t t0 = now_ns(), limit_ns = (uint64_t)wait_limit_ms * AETHER_NS_PER_MS, warned_ms = 0;
    bool warned = false;
    unsigned wait_ms = KV_RETRY_MS;
    for (;;) { /* bounded: wait_limit_ms, or *n->stop */
        aether_err err = { 0 };
        aether_status st = aether_kv_nats_create(&kc, out, &err);
        uint64_t waited_ms = (now_ns() - t0) / AETHER_NS_PER_MS;
        if (st == AETHER_OK) {
            if (warned)
                AETHER_INFO(NODE_LOG, "KV bucket %s ready after %llu ms", bucket, (unsigned long long)waited_ms);
            return AETHER_OK;
        }
        *out = NULL;
        if (st == AETHER_EINCOMPATIBLE) {
            const char *param = strstr(err.msg, " replicas, ") != NULL ? "nats_kv_replicas"
                                : ttl_ms != 0                          ? "lease_ttl_ms"
                                                                       : NULL;
            if (param == NULL)
                return aether_facade_fail(st, "KV bucket %s: %s; it was not made by Aether", bucket, err.msg);
            return aether_facade_fail(st, "%s: %s; every node of cluster '%s' needs the same %s", param, err.msg,
                                      n->cfg.cluster, param);
        }
        if (st == AETHER_EPERM)
            return aether_facade_fail(st, "KV bucket %s: %s: user '%s' lacks the node role's NATS permissions "
                                      "(docs/examples/nats/permissions.conf)", bucket, err.msg,
                                      ns->user[0] != '\0' ? ns->user : "(token or credentials file)");
        bool waitable = st == AETHER_EUNAVAILABLE || st == AETHER_ENOTFOUND;
        if (waitable && *n->stop != 0)
            return aether_facade_fail(AETHER_ECLOSED, "stop requested after waiting %llu ms for KV bucket %s (%s)",
                                      (unsigned long long)waited_ms, bucket, err.msg);
        if (!waitable || now_ns() - t0 >= limit_ns)
            return aether_facade_fail(st == AETHER_ENOTFOUND ? AETHER_EUNAVAILABLE : st, "KV bucket %s: %s: %s%s",
                                      bucket, aether_status_str(st), err.msg,
                                      waitable ? " (JetStream unavailable for the whole wait)" : "");
        if (!warned || waited_ms >= warned_ms + KV_WARN_EVERY_MS) {
            AETHER_WARN(NODE_LOG, "KV bucket %s not available yet (%s); retrying for up to %u s", bucket, err.msg,
                        wait_limit_ms / 1000u);
            warned = true;
            warned_ms = waited_ms;
        }
        sleep_ns((uint64_t)wait_ms * AETHER_NS_PER_MS);
        wait_ms = wait_ms * 2 > KV_RETRY_MAX_MS ? KV_RETRY_MAX_MS : wait_ms * 2;
    }
}

static aether_status nats_setup(aether_node *n)
{
    const aether_settings *s = &n->opts.s;
    aether_err err = { 0 };
    aether_status st;
    if (s->cluster_secret_file[0] != '\0') {
        st = aether_auth_load_file(s->cluster_secret_file, &n->auth, &err);
        if (st != AETHER_OK)
            return aether_facade_fail(st, "cluster_secret_file: %s", err.msg);
        aether_auth_sealer_init(&n->sealer, n->auth, &n->cfg.node,
                                aether_clock_wall_ms(aether_clock_real()) * 1000000u);
        AETHER_INFO(NODE_LOG, "cluster secret loaded from %s: messages and stored values are authenticated",
                    s->cluster_secret_file);
    }
    aether_codec_stats_init(&n->codec_stats, NULL);
    st = aether_nats_connect(&s->nats, n->cfg.node.str, n->stop, &n->nc, &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "%s", err.msg);
    st = nats_bucket(n, "lease", n->cfg.lease_ttl_ms, true, &n->lease_kv);
    if (st == AETHER_OK)
        st = nats_bucket(n, "state", 0, false, &n->state_kv);
    if (st != AETHER_OK)
        return st;
    if (s->event_stream) {
        st = aether_nats_event_stream_ensure(n->nc, n->cfg.cluster, s->nats.kv_replicas,
                                             s->nats.connect_timeout_ms, &err);
        if (st != AETHER_OK)
            return aether_facade_fail(st, "event_stream: %s", err.msg);
    }
    aether_pool_config pc = { .workers = aether_pool_node_workers() }; /* one node: docs/tuning.md */
    st = aether_pool_create(&pc, &n->ex);
    if (st == AETHER_OK)
        st = aether_pool_start(n->ex);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "executor: %s", aether_status_str(st));
    aether_pool_config io = { .workers = 1 };
    st = aether_pool_create(&io, &n->io_ex);
    if (st == AETHER_OK)
        st = aether_pool_start(n->io_ex);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "I/O executor: %s", aether_status_str(st));
    /* The lease's own lane: renewals never queue behind a map's I/O on
     * io_ex (member_store_internal.h, item 6). */
    st = aether_pool_create(&io, &n->lease_io_ex);
    if (st == AETHER_OK)
        st = aether_pool_start(n->lease_io_ex);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "lease I/O executor: %s", aether_status_str(st));
    /* One thread: the assign actor is one actor, run one message at a time. */
    aether_pool_config bulk = { .workers = 1, .nice_increment = AETHER_THREAD_BULK_NICE };
    st = aether_pool_create(&bulk, &n->bulk_ex);
    if (st == AETHER_OK)
        st = aether_pool_start(n->bulk_ex);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "bulk executor: %s", aether_status_str(st));
    aether_nats_transport_config tc = { .conn = n->nc, .cluster = n->cfg.cluster, .node = n->cfg.node,
                                        .cmd_timeout_ms = s->nats.request_timeout_ms,
                                        .stats = &n->codec_stats, .no_leader_retry = true,
                                        .sealer = n->auth != NULL ? &n->sealer : NULL };
    st = aether_nats_transport_create(&tc, &n->t, &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "NATS transport: %s", err.msg);
    return AETHER_OK;
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void node_free(aether_node *n)
{
    aether_member_destroy(n->m); /* NULL is fine; stops first */
    n->m = NULL;
    aether_transport_destroy(n->t);
    n->t = NULL;
    cluster_leave(n);
    if (n->ex != NULL)
        aether_pool_stop(n->ex);
    if (n->io_ex != NULL)
        aether_pool_stop(n->io_ex);
    if (n->lease_io_ex != NULL)
        aether_pool_stop(n->lease_io_ex);
    if (n->bulk_ex != NULL)
        aether_pool_stop(n->bulk_ex);
    aether_kv_destroy(n->lease_kv);
    aether_kv_destroy(n->state_kv);
    if (n->nc != NULL) /* after everything that borrowed it */
        natsConnection_Destroy(n->nc);
    aether_auth_destroy(n->auth); /* after the transport and stores that borrowed its sealer */
    aether_executor_destroy(n->ex);
    aether_executor_destroy(n->io_ex);
    aether_executor_destroy(n->lease_io_ex);
    aether_executor_destroy(n->bulk_ex);
    if (n->nc != NULL || n->ex != NULL)
        aether_rcu_barrier();
    free((void *)n->held);
    free(n);
}

static aether_status node_start(aether_node *n)
{
    const aether_settings *s = &n->opts.s;
    bool nats = s->nats.urls[0] != '\0';
    aether_err err = { 0 };
    if (s->node.node.len == 0)
        return aether_facade_fail(AETHER_EINVAL, "node: required (this node's id, 1..64 of [A-Za-z0-9_.-])");
    aether_status st = aether_settings_check(s, nats, &err);
    if (st != AETHER_OK)
        return aether_facade_fail(st, "%s", err.msg);
    n->cfg = s->node;
    n->shard_count = n->cfg.shard_count;
    n->held = calloc(n->shard_count, sizeof(*n->held));
    if (n->held == NULL)
        return aether_facade_fail(AETHER_ENOMEM, "out of memory");
    aether_rcu_start_reclaimer(); /* DESIGN 2 */
    uint64_t incarnation = 0;
    aether_executor *ex, *io_ex = NULL, *lease_io_ex = NULL, *bulk_ex = NULL; /* in-process: the stores are in memory,
                                                           one executor runs every node */
    aether_kv *lease_kv, *state_kv;
    if (nats) {
        incarnation = aether_clock_wall_ms(aether_clock_real()); /* before any wait: docs/cluster.md */
        st = nats_setup(n);
        if (st != AETHER_OK)
            return st;
        ex = n->ex;
        io_ex = n->io_ex;
        lease_io_ex = n->lease_io_ex;
        bulk_ex = n->bulk_ex;
        lease_kv = n->lease_kv;
        state_kv = n->state_kv;
    } else {
        AETHER_ASSERT(pthread_mutex_lock(&clusters_mu) == 0);
        st = cluster_join_locked(n);
        AETHER_ASSERT(pthread_mutex_unlock(&clusters_mu) == 0);
        if (st != AETHER_OK)
            return st;
        st = aether_inproc_endpoint_create(n->ic->hub, &n->cfg.node, &n->t);
        if (st != AETHER_OK)
            return aether_facade_fail(st, "in-process endpoint: %s", aether_status_str(st));
        ex = n->ic->ex;
        lease_kv = n->ic->lease_kv;
        state_kv = n->ic->state_kv;
    }
    const aether_node_hooks *h = &n->opts.hooks;
    aether_member_deps deps = { .executor = ex, .io_executor = io_ex, .lease_io_executor = lease_io_ex,
                                .bulk_executor = bulk_ex, .transport = n->t, .lease_store = lease_kv,
                                .state_store = state_kv, .metrics = h->metrics, .metric_labels = h->metric_labels,
                                .seed = h->seed != 0 ? h->seed
                                                     : now_ns() ^ ((uint64_t)(uintptr_t)n << 16) ^
                                                           aether_node_id_hash(&n->cfg.node),
                                .incarnation = incarnation };
    aether_member_callbacks cb = { .on_shard_acquired = cb_acquired, .on_shard_released = cb_released,
                                   .on_leader_changed = cb_leader, .on_map_installed = cb_map,
                                   .on_event = h->on_event != NULL ? cb_event : NULL,
                                   .on_superseded = h->on_superseded != NULL ? cb_superseded : NULL, .arg = n };
    st = aether_member_start(&n->cfg, &deps, &cb, &n->m, &err);
    if (st != AETHER_OK) {
        n->m = NULL;
        return aether_facade_fail(st, "start: %s", err.msg);
    }
    return AETHER_OK;
}

aether_status aether_node_start(const aether_options *opts, aether_node **out)
{
    if (out != NULL)
        *out = NULL;
    if (opts == NULL || out == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_node_start: %s is NULL", opts == NULL ? "opts" : "out");
    aether_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return aether_facade_fail(AETHER_ENOMEM, "aether_node_start: out of memory");
    n->opts = *opts;
    atomic_init(&n->map_read_ns, 0);
    atomic_init(&n->stopped, 0);
    n->stop = opts->hooks.stop != NULL ? opts->hooks.stop : &n->stopping;
    sigset_t old;
    aether_signals_block_all(&old); /* DESIGN 2: every thread started below blocks every signal */
    if (opts->hooks.stop != NULL) { /* but the ones that end the tool's waits (aether_node_hooks.h) */
        sigset_t stop_sigs;
        sigemptyset(&stop_sigs);
        sigaddset(&stop_sigs, SIGINT);
        sigaddset(&stop_sigs, SIGTERM);
        AETHER_ASSERT(pthread_sigmask(SIG_UNBLOCK, &stop_sigs, NULL) == 0);
    }
    aether_status st = node_start(n);
    if (st != AETHER_OK)
        node_free(n);
    aether_signals_restore(&old);
    if (st == AETHER_OK)
        *out = n;
    return st;
}

void aether_node_stop(aether_node *node)
{
    if (node == NULL)
        return;
    node->stopping = 1;
    atomic_store(&node->stopped, 1);
    if (node->m != NULL)
        aether_member_stop(node->m);
}

void aether_node_destroy(aether_node *node)
{
    if (node == NULL)
        return;
    aether_node_stop(node);
    node_free(node);
}

const char *aether_version(void) { return AETHER_VERSION_STRING; }

/* ---- internal accessors (aether_node_hooks.h) ----------------------------------- */

aether_member *aether_node_member(const aether_node *node) { return node != NULL ? node->m : NULL; }

aether_codec_stats *aether_node_codec_stats(aether_node *node)
{
    return node != NULL && node->nc != NULL ? &node->codec_stats : NULL;
}

aether_kv *aether_node_store(const aether_node *node, bool lease)
{
    if (node == NULL || node->nc == NULL)
        return NULL;
    return lease ? node->lease_kv : node->state_kv;
}

const char *aether_node_name(const aether_node *node) { return node != NULL ? node->cfg.node.str : ""; }

bool aether_node_may_serve(const aether_node *node)
{
    return node != NULL && !atomic_load(&node->stopped) && aether_member_may_serve(node->m);
}

/* Why the node is not ready, for aether_last_error. */
static const char *not_ready_reason(const aether_member_view *v, bool has_map)
{
    if (v->leader.len == 0)
        return "no leader known yet";
    if (!v->member)
        return "not admitted to the cluster's topology yet";
    if (!has_map)
        return "no shard map installed yet";
    if (v->fenced)
        return "fenced: no keep-alive acknowledged by the leader lately";
    return "its map is not the newest the leader announced yet";
}

aether_status aether_node_wait_ready(aether_node *node, uint32_t timeout_ms)
{
    if (node == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_node_wait_ready: node is NULL");
    uint64_t t0 = now_ns(), limit = (uint64_t)timeout_ms * AETHER_NS_PER_MS;
    for (;;) { /* bounded: timeout_ms */
        if (atomic_load(&node->stopped))
            return aether_facade_fail(AETHER_ECLOSED, "node '%s' is stopped", node->cfg.node.str);
        aether_err why = { 0 };
        if (aether_member_admission(node->m, &why) == AETHER_EINCOMPATIBLE)
            return aether_facade_fail(AETHER_EINCOMPATIBLE, "node '%s' refused by the leader: %s",
                                      node->cfg.node.str, why.msg);
        uint64_t version = 0;
        bool has_map = aether_route_map_version(aether_member_slot(node->m), &version) == AETHER_OK;
        if (has_map && aether_member_may_serve(node->m))
            return AETHER_OK;
        aether_member_view v;
        aether_member_view_get(node->m, &v);
        if (v.superseded)
            return aether_facade_fail(AETHER_ESUPERSEDED, "node '%s' was superseded by a newer process "
                                      "of its id (incarnation %llu)", node->cfg.node.str,
                                      (unsigned long long)v.superseded_by);
        uint64_t waited = now_ns() - t0;
        if (waited >= limit)
            return aether_facade_fail(AETHER_ETIMEOUT, "node '%s' not ready after %u ms: %s", node->cfg.node.str,
                                      timeout_ms, not_ready_reason(&v, has_map));
        sleep_ns(limit - waited < READY_POLL_NS ? limit - waited : READY_POLL_NS);
    }
}

aether_status aether_node_drain(aether_node *node, uint32_t timeout_ms)
{
    if (node == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_node_drain: node is NULL");
    if (atomic_load(&node->stopped))
        return aether_facade_fail(AETHER_ECLOSED, "node '%s' is stopped", node->cfg.node.str);
    uint64_t t0 = now_ns(), limit = (uint64_t)timeout_ms * AETHER_NS_PER_MS, asked = 0;
    bool ever_asked = false;
    for (;;) { /* bounded: timeout_ms */
        aether_member_view v;
        aether_member_view_get(node->m, &v);
        if (v.has_left)
            return AETHER_OK;
        if (v.superseded)
            return aether_facade_fail(AETHER_ESUPERSEDED, "node '%s' was superseded", node->cfg.node.str);
        uint64_t now = now_ns();
        if (v.status != AETHER_NODE_DRAINING && (!ever_asked || now - asked >= DRAIN_RESEND_NS)) {
            aether_status st = aether_member_drain(node->m);
            if (st == AETHER_ESUPERSEDED || st == AETHER_ECLOSED)
                return aether_facade_fail(st, "node '%s': drain: %s", node->cfg.node.str, aether_status_str(st));
            ever_asked = true; /* EFULL: asked again after DRAIN_RESEND_NS */
            asked = now;
        }
        if (now - t0 >= limit) {
            if (v.status != AETHER_NODE_DRAINING && v.leader.len == 0)
                return aether_facade_fail(AETHER_ENOTLEADER, "node '%s': no leader to ask for the drain "
                                          "within %u ms", node->cfg.node.str, timeout_ms);
            return aether_facade_fail(AETHER_ETIMEOUT, "node '%s' not declared Left within %u ms (%s, %u shards "
                                      "still served)", node->cfg.node.str, timeout_ms,
                                      v.status == AETHER_NODE_DRAINING ? "draining" : "drain not accepted yet",
                                      v.shards_serving);
        }
        sleep_ns(READY_POLL_NS);
    }
}

/* ---- lookups (any thread, lock-free) ---------------------------------------- */

static void route_copy(const aether_node *n, const aether_shard_route *r, aether_route *out)
{
    out->map_version = r->map_version;
    out->term = (uint64_t)r->term;
    out->shard = r->shard;
    out->owner_count = r->owner_count;
    out->moving = r->moving && r->owner_count > 0; /* aether_route_fill sets `to` only then */
    out->answer = AETHER_ROUTE_LOOKUP;
    if (r->owner_count > 0) {
        memcpy(out->owner, r->primary.str, sizeof(out->owner));
        out->self = aether_node_id_equal(&r->primary, &n->cfg.node);
    } else {
        out->owner[0] = '\0';
        out->self = false;
    }
    if (out->moving)
        memcpy(out->to, r->to.str, sizeof(out->to));
    else
        out->to[0] = '\0';
}

static void route_empty(aether_route *out)
{
    memset(out, 0, sizeof(*out)); /* map_version 0, owner "", to "" */
}

/* One map, one answer: the shard (given, or hash % the map's shard_count)
 * and its owners, copied out inside one read-side section (routing.h). */
static aether_status route_pick(const aether_node *n, bool by_hash, uint64_t hash, uint32_t shard,
                                aether_route *out)
{
    aether_shard_route r;
    aether_rcu_read_lock();
    const aether_shardmap *m = aether_shardmap_slot_current(aether_member_slot(n->m));
    if (AETHER_UNLIKELY(m == NULL)) {
        aether_rcu_read_unlock();
        route_empty(out);
        out->shard = by_hash ? 0 : shard;
        return AETHER_ENOTFOUND;
    }
    if (by_hash)
        shard = aether_key_shard_of_hash(hash, m->shard_count);
    else if (AETHER_UNLIKELY(shard >= m->shard_count)) {
        aether_rcu_read_unlock();
        route_empty(out);
        out->shard = shard;
        return AETHER_EINVAL;
    }
    aether_status st = aether_route_fill(m, shard, &r);
    aether_rcu_read_unlock();
    route_copy(n, &r, out);
    return st;
}

aether_status aether_node_route_key(const aether_node *node, const void *key, size_t len, aether_route *out)
{
    if (AETHER_UNLIKELY(node == NULL || out == NULL || (key == NULL && len != 0)))
        return AETHER_EINVAL;
    return route_pick(node, true, aether_key_hash(key, len), 0, out);
}

aether_status aether_node_route_hash(const aether_node *node, uint64_t hash, aether_route *out)
{
    if (AETHER_UNLIKELY(node == NULL || out == NULL))
        return AETHER_EINVAL;
    return route_pick(node, true, hash, 0, out);
}

aether_status aether_node_route_shard(const aether_node *node, uint32_t shard, aether_route *out)
{
    if (AETHER_UNLIKELY(node == NULL || out == NULL))
        return AETHER_EINVAL;
    if (AETHER_UNLIKELY(shard >= node->shard_count)) { /* the map's count is the config's */
        route_empty(out);
        out->shard = shard;
        return AETHER_EINVAL;
    }
    return route_pick(node, false, 0, shard, out);
}

uint32_t aether_shard_of_key(const void *key, size_t len, uint32_t shard_count)
{
    if (shard_count == 0 || (key == NULL && len != 0))
        return 0;
    return aether_key_shard(key, len, shard_count);
}

aether_status aether_node_map_version(const aether_node *node, uint64_t *version)
{
    if (node == NULL || version == NULL)
        return aether_facade_fail(AETHER_EINVAL, "aether_node_map_version: %s is NULL",
                                  node == NULL ? "node" : "version");
    *version = 0;
    return aether_route_map_version(aether_member_slot(node->m), version);
}

/* "behind": one stored-map read per MAP_READ_MIN_NS, whoever asks. */
static void ask_map_read(aether_node *n)
{
    uint64_t now = now_ns(), last = atomic_load_explicit(&n->map_read_ns, memory_order_relaxed);
    if (now - last < MAP_READ_MIN_NS ||
        !atomic_compare_exchange_strong_explicit(&n->map_read_ns, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* someone asked just now */
    (void)aether_member_read_stored_map(n->m); /* refused (mailbox full): the next check asks again */
}

aether_status aether_node_check_route(aether_node *node, uint32_t shard, uint64_t caller_map_version,
                                      aether_route *out)
{
    if (AETHER_UNLIKELY(node == NULL || out == NULL))
        return AETHER_EINVAL;
    aether_status st = aether_node_route_shard(node, shard, out);
    if (st == AETHER_EINVAL)
        return AETHER_EINVAL;
    if (caller_map_version > out->map_version) {
        ask_map_read(node);
        out->answer = AETHER_ROUTE_BEHIND;
        return AETHER_OK;
    }
    bool held = shard < node->shard_count && atomic_load_explicit(&node->held[shard], memory_order_seq_cst);
    if (out->owner_count == 0) {
        out->answer = AETHER_ROUTE_TRYAGAIN;
    } else if (out->self) {
        if (held && aether_node_may_serve(node))
            out->answer = AETHER_ROUTE_MINE;
        else if (out->moving && !held)
            out->answer = AETHER_ROUTE_MOVING;
        else
            out->answer = AETHER_ROUTE_TRYAGAIN;
    } else if (out->moving && strcmp(out->to, node->cfg.node.str) == 0) {
        out->answer = AETHER_ROUTE_TRYAGAIN; /* coming to us: hold it until we acquire */
    } else {
        out->answer = AETHER_ROUTE_MOVED;
    }
    if (out->answer == AETHER_ROUTE_TRYAGAIN && out->self) {
        aether_member_view v; /* rare path: tell a superseded process apart */
        aether_member_view_get(node->m, &v);
        if (v.superseded)
            return aether_facade_fail(AETHER_ESUPERSEDED, "node '%s' was superseded", node->cfg.node.str);
    }
    return AETHER_OK;
}
