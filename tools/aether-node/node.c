/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/node.c: the run of aether-node (tools layer): output,
 * the member callbacks and the setup and teardown of the members, their
 * transport, stores and executor. Threading: node_run.h DESIGN.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node_run.h"

volatile sig_atomic_t node_stop_signal;

static void on_signal(int sig) { node_stop_signal = sig; }

uint64_t node_now_ns(void) { return aether_clock_now_ns(aether_clock_real()); }

uint64_t node_since_start_ms(const node_run *d) { return (node_now_ns() - d->start_ns) / AETHER_NS_PER_MS; }

void node_sleep_ms(uint32_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    (void)nanosleep(&ts, NULL); /* EINTR by a signal: the caller's loop checks the flag */
}

/* ---- output (callers hold mu) ----------------------------------------------- */

/* Event lines (run lines, node_say(), only stop for --json). */
bool node_printing(const node_run *d) { return !d->opt.quiet && !d->opt.json; }

static void flush_batch_locked(node_run *d, node_slot *n)
{
    if (n->batch_type == 0)
        return;
    if (node_printing(d))
        fprintf(stdout, "+%llums %s %s x%u (%u shards) term=%llu seq=%llu..%llu map_version=%llu%s\n",
                (unsigned long long)n->batch_first_ms, n->id, aether_event_type_name(n->batch_type),
                n->batch_count, n->batch_shards, (unsigned long long)n->batch_term,
                (unsigned long long)n->batch_seq_first, (unsigned long long)n->batch_seq_last,
                (unsigned long long)n->batch_version,
                d->opt.scenario == NULL ? " (--verbose: one line each)" : "");
    n->batch_type = 0;
    n->batch_count = 0;
    n->batch_shards = 0;
}

static uint64_t event_version(const aether_event *e)
{
    return e->type == AETHER_EVT_SHARD_ASSIGNED ? e->data.shard_assigned.map_version
                                                : e->data.shard_migrated.map_version;
}

/* Prints one event this node emitted (or folds it into its batch line). */
static void print_event_locked(node_run *d, node_slot *n, const aether_event *e)
{
    uint32_t bit = 1u << (uint32_t)e->type;
    if (d->hide_mask & bit)
        return;
    if (d->fold_mask & bit) {
        uint64_t v = event_version(e);
        if (n->batch_type != e->type || n->batch_version != v || n->batch_term != e->term)
            flush_batch_locked(d, n);
        if (n->batch_type == 0) {
            n->batch_type = e->type;
            n->batch_version = v;
            n->batch_term = e->term;
            n->batch_seq_first = e->seq;
            n->batch_first_ms = node_since_start_ms(d);
        }
        n->batch_count++;
        n->batch_shards += aether_event_entry_count(e);
        n->batch_seq_last = e->seq;
        n->batch_last_ns = node_now_ns();
        return;
    }
    flush_batch_locked(d, n);
    if (!node_printing(d))
        return;
    char line[LINE_CAP];
    aether_event_format(e, line, sizeof(line));
    fprintf(stdout, "+%llums %s %s\n", (unsigned long long)node_since_start_ms(d), n->id, line);
}

/* Main thread: prints the batches that stopped growing (all with force). */
void node_flush_quiet_batches(node_run *d, bool force)
{
    uint64_t now = node_now_ns();
    pthread_mutex_lock(&d->mu);
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        if (n->batch_type != 0 && (force || now - n->batch_last_ns >= BATCH_QUIET_MS * AETHER_NS_PER_MS))
            flush_batch_locked(d, n);
    }
    fflush(stdout);
    pthread_mutex_unlock(&d->mu);
}

/* Main thread: a line of the run itself (not an event). */
void node_say(node_run *d, const char *fmt, ...)
{
    if (d->opt.json)
        return;
    pthread_mutex_lock(&d->mu);
    for (uint32_t i = 0; i < d->n_nodes; i++)
        flush_batch_locked(d, &d->nodes[i]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
    pthread_mutex_unlock(&d->mu);
}

/* --trace: one machine-readable line "T <CLOCK_MONOTONIC us> <node> WHAT ..."
 * (comparable between processes on one machine), written whole and flushed.
 * Any thread; takes mu. */
void node_trace(node_run *d, const node_slot *n, const char *fmt, ...)
{
    if (!d->opt.trace)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[LINE_CAP];
    int len = snprintf(line, sizeof(line), "T %llu %s ",
                       (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u,
                       n->id);
    va_list ap;
    va_start(ap, fmt);
    if (len > 0 && (size_t)len < sizeof(line))
        (void)vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&d->mu);
    fprintf(stdout, "%s\n", line);
    fflush(stdout);
    pthread_mutex_unlock(&d->mu);
}

/* ---- member callbacks (executor workers) ---------------------------------- */

static void violation_locked(node_run *d, const char *msg)
{
    if (d->violations++ == 0)
        snprintf(d->first_violation, sizeof(d->first_violation), "%.*s",
                 (int)sizeof(d->first_violation) - 1, msg);
    if (!d->opt.json)
        fprintf(stderr, "+%llums VIOLATION %s\n", (unsigned long long)node_since_start_ms(d), msg);
}

static void on_acquired(void *arg, uint32_t shard, uint64_t version)
{
    node_slot *n = arg;
    node_run *d = n->d;
    if (shard >= d->base.shard_count)
        return;
    pthread_mutex_lock(&d->mu);
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *o = &d->nodes[i];
        if (o == n || !o->live || !o->serving[shard] || !aether_member_may_serve(o->m))
            continue;
        char msg[256];
        snprintf(msg, sizeof(msg), "single ownership: %s acquired shard %u (map v%llu) while %s serves it",
                 n->id, shard, (unsigned long long)version, o->id);
        violation_locked(d, msg);
    }
    if (!n->serving[shard]) {
        n->serving[shard] = 1;
        n->serving_count++;
    }
    pthread_mutex_unlock(&d->mu);
    node_trace(d, n, "ACQUIRE %u %llu", shard, (unsigned long long)version);
}

static void on_released(void *arg, uint32_t shard, uint64_t version)
{
    node_slot *n = arg;
    node_run *d = n->d;
    if (shard >= d->base.shard_count)
        return;
    pthread_mutex_lock(&d->mu);
    if (n->serving[shard]) {
        n->serving[shard] = 0;
        n->serving_count--;
    }
    pthread_mutex_unlock(&d->mu);
    node_trace(d, n, "RELEASE %u %llu", shard, (unsigned long long)version);
}

/* The member's view (generation, map generation) for a trace line; zeroed
 * until the main thread has stored the member (a callback may come first). */
static void slot_view(node_slot *n, aether_member_view *v)
{
    pthread_mutex_lock(&n->d->mu);
    aether_member *m = n->m;
    pthread_mutex_unlock(&n->d->mu);
    memset(v, 0, sizeof(*v));
    if (m != NULL) /* stopped only after its callbacks have returned */
        aether_member_view_get(m, v);
}

/* LEADER and MAP lines end with the generation their term or version counts
 * in (actors/lease.h GENERATION; the observer compares within one). */
static void on_leader_changed(void *arg, const aether_node_id *leader, aether_term term)
{
    node_slot *n = arg;
    if (n->d->opt.nats_mode)
        aether_log_note_term(term); /* the process's log lines name the node's term */
    aether_member_view v;
    slot_view(n, &v);
    node_trace(n->d, n, "LEADER %s %llu gen=%016llx", leader != NULL && leader->len > 0 ? leader->str : "-",
          (unsigned long long)term, (unsigned long long)v.generation);
}

static void on_map_installed(void *arg, uint64_t version, aether_term term)
{
    node_slot *n = arg;
    aether_member_view v;
    slot_view(n, &v);
    node_trace(n->d, n, "MAP %llu %llu gen=%016llx", (unsigned long long)version,
          (unsigned long long)term, (unsigned long long)v.map_generation);
}

/* The moment a newer process of this id took over (member.h): its shards
 * are already released; the main loop exits 3 at its next tick. */
static void on_superseded(void *arg, uint64_t incarnation, uint64_t by_incarnation)
{
    node_slot *n = arg;
    node_trace(n->d, n, "SUPERSEDED %llu %llu", (unsigned long long)incarnation,
          (unsigned long long)by_incarnation);
}

static void on_event(void *arg, const aether_event *e)
{
    node_slot *n = arg;
    node_run *d = n->d;
    bool own = strcmp(e->node.str, n->id) == 0;
    if (d->opt.nats_mode)
        aether_log_note_term(e->term);
    if (d->opt.trace) {
        char line[LINE_CAP];
        aether_event_format(e, line, sizeof(line));
        node_trace(d, n, "EVENT %s %s", aether_event_type_name(e->type), line);
    }
    pthread_mutex_lock(&d->mu);
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        /* I1, as every observer sees it. */
        aether_err err;
        if (aether_term_registry_record(&d->terms, e->generation, e->data.leader_elected.term,
                                        &e->data.leader_elected.leader, &err) != AETHER_OK) {
            char msg[AETHER_ERR_MSG_MAX + 96];
            snprintf(msg, sizeof(msg), "I1 (seen by %s): %s", n->id, err.msg);
            violation_locked(d, msg);
        }
    }
    if (own) {
        switch (e->type) {
        case AETHER_EVT_LEADER_ELECTED:
            d->session_open = false; /* a new leader opens its own sessions */
            break;
        case AETHER_EVT_REBALANCE_STARTED:
            d->session_open = true;
            break;
        case AETHER_EVT_REBALANCE_COMPLETED:
            d->session_open = false;
            break;
        case AETHER_EVT_SHARD_MIGRATED:
            if (d->step >= 0) /* moves, not events: a batch holds many */
                d->steps[d->step].moved += e->data.shard_migrated.count;
            break;
        default:
            break;
        }
        print_event_locked(d, n, e);
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- setup and teardown (main thread) -------------------------------------- */

/* Connects with the resolved NATS settings (servers, auth, TLS): 0 and
 * d->nc set, or -1 after saying why. The first connect is retried for
 * nats_connect_timeout_ms (a server that is still starting) unless the
 * failure cannot heal (credentials refused, TLS); afterwards nats.c
 * reconnects forever on its own (transport/nats_conn.h). */
static int nats_connect(node_run *d)
{
    AETHER_STATIC_ASSERT(sizeof(node_stop_signal) == sizeof(int), "sig_atomic_t is an int here");
    aether_err err = { 0 };
    aether_status st = aether_nats_connect(&d->opt.s.nats, d->nodes[0].id,
                                           (const volatile int *)&node_stop_signal, &d->nc, &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "aether-node: %s\n", err.msg);
        d->nc = NULL;
        return -1;
    }
    return 0;
}

/* One bucket, retried while JetStream is not ready (bounded). 0 ready, -1
 * failed (said why; also when the server refuses the user the JetStream
 * API: EPERM), EXIT_USAGE when the bucket exists with another TTL or
 * replica count (a configuration error: the sentence names both values),
 * 1 stopped by SIGINT/SIGTERM while waiting (said so): the node never
 * joined, so it has nothing to drain. Waits through
 * EUNAVAILABLE (no meta leader, replicas not placeable yet, timeouts) and
 * ENOTFOUND (a stream just created whose info a new stream leader cannot
 * give yet); anything else (a bucket with another TTL, a bad name) is
 * final at once. */
/* one_key: the lease bucket holds the lease key only (nats_kv.h step 2b). */
static int nats_bucket(node_run *d, const char *suffix, uint64_t ttl_ms, bool one_key,
                       aether_kv **out)
{
    char bucket[AETHER_KV_NATS_BUCKET_LEN_MAX + 1];
    int len = snprintf(bucket, sizeof(bucket), "aether_%s_%s", d->base.cluster, suffix);
    if (len < 0 || (size_t)len >= sizeof(bucket)) { /* parse_args refuses such a cluster */
        fprintf(stderr, "aether-node: bucket name for cluster '%s' too long\n", d->base.cluster);
        return -1;
    }
    aether_kv_nats_config kc = { .conn = d->nc, .bucket = bucket, .ttl_ms = ttl_ms,
                                 .replicas = d->opt.s.nats.kv_replicas,
                                 .timeout_ms = d->opt.s.nats.request_timeout_ms, .create_if_missing = true,
                                 .one_key = one_key, .sealer = d->auth != NULL ? &d->sealer : NULL,
                                 .stats = &d->codec_stats };
    aether_err err = { 0 };
    uint64_t t0 = node_now_ns(), warned = 0;
    unsigned wait_ms = KV_RETRY_MS;
    for (;;) { /* bounded: KV_CREATE_LIMIT_MS, or a signal */
        aether_status st = aether_kv_nats_create(&kc, out, &err);
        if (st == AETHER_OK) {
            if (warned != 0)
                AETHER_INFO("aether-node", "KV bucket %s ready after %llu ms", bucket,
                            (unsigned long long)((node_now_ns() - t0) / AETHER_NS_PER_MS));
            return 0;
        }
        uint64_t waited_ms = (node_now_ns() - t0) / AETHER_NS_PER_MS;
        *out = NULL;
        if (node_stop_signal != 0 && (st == AETHER_EUNAVAILABLE || st == AETHER_ENOTFOUND)) {
            AETHER_INFO("aether-node", "stopped by signal %d after waiting %llu ms for KV bucket %s (%s); "
                        "never joined: nothing to drain", (int)node_stop_signal, (unsigned long long)waited_ms,
                        bucket, err.msg);
            return 1;
        }
        if (st == AETHER_EINCOMPATIBLE) {
            const char *param = strstr(err.msg, " replicas, ") != NULL ? "nats_kv_replicas"
                                : ttl_ms != 0                          ? "lease_ttl_ms"
                                                                       : NULL;
            if (param != NULL)
                fprintf(stderr, "aether-node: %s: %s; every node of cluster '%s' needs the same %s\n", param,
                        err.msg, d->base.cluster, param);
            else
                fprintf(stderr, "aether-node: KV bucket %s: %s; it was not made by aether-node\n", bucket,
                        err.msg);
            return EXIT_USAGE;
        }
        if (st == AETHER_EPERM) {
            fprintf(stderr, "aether-node: KV bucket %s: %s: user '%s' lacks the node role's NATS permissions "
                    "(docs/examples/nats/permissions.conf)\n", bucket, err.msg,
                    d->opt.s.nats.user[0] != '\0' ? d->opt.s.nats.user : "(token or credentials file)");
            return -1;
        }
        if ((st != AETHER_EUNAVAILABLE && st != AETHER_ENOTFOUND) || waited_ms >= KV_CREATE_LIMIT_MS) {
            fprintf(stderr, "aether-node: KV bucket %s: %s: %s%s\n", bucket, aether_status_str(st), err.msg,
                    st == AETHER_EUNAVAILABLE || st == AETHER_ENOTFOUND ? " (JetStream unavailable for the "
                                                                          "whole wait)" : "");
            return -1;
        }
        if (warned == 0 || waited_ms >= warned + KV_WARN_EVERY_MS) {
            AETHER_WARN("aether-node", "KV bucket %s not available yet (%s); retrying for up to %u s", bucket,
                        err.msg, KV_CREATE_LIMIT_MS / 1000u);
            warned = waited_ms + 1;
        }
        node_sleep_ms(wait_ms);
        wait_ms = wait_ms * 2 > KV_RETRY_MAX_MS ? KV_RETRY_MAX_MS : wait_ms * 2;
    }
}

/* The cluster secret, before anything is sent or stored: 0, or EXIT_USAGE
 * after saying why (aether_settings_check read it already; it may have
 * changed since). The sealer's epoch is the wall clock now, so a restarted
 * process's counters start above its previous life's (auth.h). */
static int load_secret(node_run *d)
{
    const char *path = d->opt.s.cluster_secret_file;
    if (path[0] == '\0')
        return 0;
    aether_err err = { 0 };
    if (aether_auth_load_file(path, &d->auth, &err) != AETHER_OK) {
        fprintf(stderr, "aether-node: %s\n", err.msg);
        return EXIT_USAGE;
    }
    aether_node_id self = d->opt.s.node.node;
    aether_auth_sealer_init(&d->sealer, d->auth, &self, aether_clock_wall_ms(aether_clock_real()) * 1000000u);
    AETHER_INFO("aether-node", "cluster secret loaded from %s: messages and stored values are authenticated",
                path);
    return 0;
}

static int nats_setup(node_run *d)
{
    int secret = load_secret(d);
    if (secret != 0)
        return secret;
    if (nats_connect(d) != 0)
        return -1;
    int rc = nats_bucket(d, "lease", d->base.lease_ttl_ms, true, &d->lease_kv);
    if (rc == 0)
        rc = nats_bucket(d, "state", 0, false, &d->state_kv);
    if (rc != 0)
        return rc;
    if (d->opt.s.event_stream) {
        aether_err err = { 0 };
        if (aether_nats_event_stream_ensure(d->nc, d->base.cluster, d->opt.s.nats.kv_replicas,
                                            d->opt.s.nats.connect_timeout_ms, &err) != AETHER_OK) {
            fprintf(stderr, "aether-node: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

/* 0 ready; -1 failed (said why); 1 (NATS mode) stopped by a signal while
 * waiting for JetStream, before joining. */
int node_run_init(node_run *d, const options *o, uint32_t n_nodes)
{
    memset(d, 0, sizeof(*d));
    d->opt = *o;
    d->step = -1;
    pthread_mutex_init(&d->mu, NULL);
    aether_term_registry_init(&d->terms);
    aether_codec_stats_init(&d->codec_stats, NULL);
    aether_rng_seed(&d->rng, o->seed);
    d->start_ns = node_now_ns();
    /* Before any wait (JetStream, up to a minute): a process started after
     * this one must be the newer one (docs/cluster.md, one process per
     * node id), however long each waited for its buckets. */
    d->start_wall_ms = aether_clock_wall_ms(aether_clock_real());
    d->base = o->s.node; /* node (and address) set per member */
    /* LeaseRenewed is a heartbeat (ttl/4), not history: printed only with
     * --verbose (--trace records it regardless). */
    d->hide_mask = !o->verbose ? 1u << AETHER_EVT_LEASE_RENEWED : 0u;
    d->fold_mask = 0;
    if (!o->verbose) {
        d->fold_mask |= 1u << AETHER_EVT_SHARD_ASSIGNED;
        if (o->scenario != NULL)
            d->fold_mask |= 1u << AETHER_EVT_SHARD_MIGRATED;
    }
    d->n_nodes = n_nodes;
    for (uint32_t i = 0; i < n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        n->d = d;
        if (o->nats_mode)
            snprintf(n->id, sizeof(n->id), "%s", o->s.node.node.str);
        else
            snprintf(n->id, sizeof(n->id), "node-%u", i + 1);
        n->serving = calloc(d->base.shard_count, 1);
        if (n->serving == NULL) {
            fprintf(stderr, "aether-node: out of memory\n");
            return -1;
        }
    }
    if (aether_metrics_create(&d->metrics) != AETHER_OK) {
        fprintf(stderr, "aether-node: out of memory\n");
        return -1;
    }
    if (o->s.metrics_addr[0] != '\0') {
        aether_err merr = { 0 };
        if (aether_metrics_http_start(o->s.metrics_addr, d->metrics, &d->http, &merr) != AETHER_OK) {
            fprintf(stderr, "aether-node: %s\n", merr.msg);
            return -1;
        }
    }
    /* One node (NATS mode): at most two workers; N nodes: one per core. */
    aether_pool_config pc = { .workers = o->nats_mode ? aether_pool_node_workers() : 0 };
    aether_status st = aether_pool_create(&pc, &d->ex);
    if (st == AETHER_OK)
        st = aether_pool_start(d->ex);
    aether_pool_config io = { .workers = 1 };
    if (st == AETHER_OK)
        st = aether_pool_create(&io, &d->io_ex);
    if (st == AETHER_OK)
        st = aether_pool_start(d->io_ex);
    if (st == AETHER_OK && !o->nats_mode)
        st = aether_inproc_hub_create(&d->hub);
    if (st != AETHER_OK) {
        fprintf(stderr, "aether-node: executor/hub: %s\n", aether_status_str(st));
        return -1;
    }
    if (o->nats_mode)
        return nats_setup(d);
    aether_err err;
    aether_kv_mem_config lk = { .name = "lease", .ttl_ms = d->base.lease_ttl_ms,
                                .clock = aether_clock_real(), .rng = &d->rng };
    aether_kv_mem_config sk = { .name = "state", .ttl_ms = 0, .clock = aether_clock_real(),
                                .rng = &d->rng };
    if (aether_kv_mem_create(&lk, &d->lease_kv, &err) != AETHER_OK ||
        aether_kv_mem_create(&sk, &d->state_kv, &err) != AETHER_OK) {
        fprintf(stderr, "aether-node: stores: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int node_start(node_run *d, uint32_t i)
{
    node_slot *n = &d->nodes[i];
    aether_config cfg = d->base;
    aether_err err = { 0 };
    if (d->nc != NULL) {
        if (aether_node_id_from_cstr(n->id, &cfg.node, &err) != AETHER_OK) {
            fprintf(stderr, "aether-node: %s: %s\n", n->id, err.msg);
            return -1;
        }
        aether_nats_transport_config tc = { .conn = d->nc, .cluster = cfg.cluster, .node = cfg.node,
                                            .cmd_timeout_ms = d->opt.s.nats.request_timeout_ms,
                                            .stats = &d->codec_stats, .no_leader_retry = true,
                                            .sealer = d->auth != NULL ? &d->sealer : NULL };
        if (aether_nats_transport_create(&tc, &n->t, &err) != AETHER_OK) {
            fprintf(stderr, "aether-node: %s: NATS transport: %s\n", n->id, err.msg);
            return -1;
        }
    } else {
        if (aether_node_id_from_cstr(n->id, &cfg.node, &err) != AETHER_OK ||
            aether_inproc_endpoint_create(d->hub, &cfg.node, &n->t) != AETHER_OK) {
            fprintf(stderr, "aether-node: %s: endpoint\n", n->id);
            return -1;
        }
        snprintf(cfg.address, sizeof(cfg.address), "inproc:%s", n->id);
    }
    aether_member_deps deps = { .executor = d->ex, .io_executor = d->io_ex, .transport = n->t, .lease_store = d->lease_kv,
                                .state_store = d->state_kv, .metrics = d->metrics,
                                .metric_labels = node_metric_labels(d),
                                .seed = aether_rng_next(&d->rng),
                                .incarnation = d->opt.nats_mode ? d->start_wall_ms : 0 };
    aether_member_callbacks cb = { .on_shard_acquired = on_acquired, .on_shard_released = on_released,
                                   .on_event = on_event, .on_leader_changed = on_leader_changed,
                                   .on_map_installed = on_map_installed,
                                   .on_superseded = on_superseded, .arg = n };
    aether_member *m = NULL;
    if (aether_member_start(&cfg, &deps, &cb, &m, &err) != AETHER_OK) {
        fprintf(stderr, "aether-node: %s: start: %s\n", n->id, err.msg);
        aether_transport_destroy(n->t);
        n->t = NULL;
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    n->m = m;
    n->live = true;
    pthread_mutex_unlock(&d->mu);
    if (node_metrics_register(d, n) != 0) {
        fprintf(stderr, "aether-node: %s: cannot register its metrics\n", n->id);
        return -1;
    }
    return 0;
}

/* Takes a node out: no longer live (so no callback asks it anything), then
 * stopped and destroyed, then its serving set cleared. */
void node_halt(node_run *d, uint32_t i)
{
    node_slot *n = &d->nodes[i];
    if (n->m == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    n->live = false;
    pthread_mutex_unlock(&d->mu);
    aether_member_stop(n->m);
    aether_member_destroy(n->m);
    pthread_mutex_lock(&d->mu);
    n->m = NULL;
    memset(n->serving, 0, d->base.shard_count);
    n->serving_count = 0;
    flush_batch_locked(d, n);
    pthread_mutex_unlock(&d->mu);
    aether_transport_destroy(n->t);
    n->t = NULL;
}

void node_run_fini(node_run *d)
{
    /* No scrape from here on: the series below go away one by one. */
    aether_metrics_http_stop(d->http);
    d->http = NULL;
    /* Everyone stops first, so no survivor starts failing over the others
     * while they are torn down one by one. */
    pthread_mutex_lock(&d->mu);
    for (uint32_t i = 0; i < d->n_nodes; i++)
        d->nodes[i].live = false;
    pthread_mutex_unlock(&d->mu);
    for (uint32_t i = 0; i < d->n_nodes; i++)
        aether_member_stop(d->nodes[i].m);
    for (uint32_t i = 0; i < d->n_nodes; i++)
        node_halt(d, i);
    if (d->ex != NULL)
        aether_pool_stop(d->ex);
    if (d->io_ex != NULL)
        aether_pool_stop(d->io_ex);
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        free(d->nodes[i].serving);
        d->nodes[i].serving = NULL;
    }
    aether_inproc_hub_destroy(d->hub);
    aether_kv_destroy(d->lease_kv);
    aether_kv_destroy(d->state_kv);
    if (d->nc != NULL) { /* after everything that borrowed it */
        natsConnection_Destroy(d->nc);
    }
    d->nc = NULL;
    aether_auth_destroy(d->auth); /* after the transport and the stores that borrowed its sealer */
    d->auth = NULL;
    aether_executor_destroy(d->ex);
    aether_executor_destroy(d->io_ex);
    aether_term_registry_fini(&d->terms);
    pthread_mutex_destroy(&d->mu);
    aether_rcu_barrier(); /* retired maps and snapshots are freed before exit */
    aether_metrics_destroy(d->metrics); /* after every member released its series */
    d->metrics = NULL;
}

void node_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the main thread's sleep returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void node_print_status(node_run *d)
{
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        if (n->m == NULL)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        node_say(d, "  %-8s %-8s %-8s term=%llu leader=%s map_version=%llu shards=%u\n", n->id,
            v.is_leader ? "LEADER" : "follower", aether_node_status_name(v.status),
            (unsigned long long)v.term, v.leader.len ? v.leader.str : "-",
            (unsigned long long)v.map_version, v.shards_serving);
    }
}

int node_violations_exit(node_run *d)
{
    pthread_mutex_lock(&d->mu);
    uint32_t violations = d->violations;
    pthread_mutex_unlock(&d->mu);
    if (violations > 0) {
        fprintf(stderr, "aether-node: %u violation(s); first: %s\n", violations, d->first_violation);
        return 1;
    }
    return 0;
}
