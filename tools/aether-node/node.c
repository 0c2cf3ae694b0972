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

void node_idle_ms(node_run *d, uint32_t ms)
{
    if (d->http == NULL) {
        node_sleep_ms(ms);
        return;
    }
    /* The metrics endpoint has no thread of its own (metrics_http.c DESIGN
     * 1): the main thread serves scrapes while it would sleep, until the
     * deadline (a signal cuts one wait short, not the whole: the callers'
     * drain loop runs after the stop signal and must not spin). */
    uint64_t deadline = node_now_ns() + (uint64_t)ms * AETHER_NS_PER_MS;
    for (uint64_t now = node_now_ns(); now < deadline; now = node_now_ns())
        aether_metrics_http_serve(d->http, (uint32_t)((deadline - now + AETHER_NS_PER_MS - 1) / AETHER_NS_PER_MS));
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
/* leader: "" = none. */
static void leader_changed(node_slot *n, const char *leader, aether_term term)
{
    if (n->d->opt.nats_mode)
        aether_log_note_term(term); /* the process's log lines name the node's term */
    aether_member_view v;
    slot_view(n, &v);
    node_trace(n->d, n, "LEADER %s %llu gen=%016llx", leader[0] != '\0' ? leader : "-",
          (unsigned long long)term, (unsigned long long)v.generation);
}

static void on_leader_changed(void *arg, const aether_node_id *leader, aether_term term)
{
    leader_changed(arg, leader != NULL && leader->len > 0 ? leader->str : "", term);
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

/* 0 ready; -1 failed (said why). NATS mode sets up only the process's
 * own parts (tracking, metrics registry and endpoint): aether_node_start
 * (node_start) does the rest. */
int node_run_init(node_run *d, const options *o, uint32_t n_nodes)
{
    memset(d, 0, sizeof(*d));
    d->opt = *o;
    d->step = -1;
    pthread_mutex_init(&d->mu, NULL);
    aether_term_registry_init(&d->terms);
    aether_rng_seed(&d->rng, o->seed);
    d->start_ns = node_now_ns();
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
    if (o->nats_mode)
        return 0;
    /* N nodes: one worker per core. */
    aether_pool_config pc = { .workers = 0 };
    aether_status st = aether_pool_create(&pc, &d->ex);
    if (st == AETHER_OK)
        st = aether_pool_start(d->ex);
    aether_pool_config io = { .workers = 1 };
    if (st == AETHER_OK)
        st = aether_pool_create(&io, &d->io_ex);
    if (st == AETHER_OK)
        st = aether_pool_start(d->io_ex);
    if (st == AETHER_OK)
        st = aether_inproc_hub_create(&d->hub);
    if (st != AETHER_OK) {
        fprintf(stderr, "aether-node: executor/hub: %s\n", aether_status_str(st));
        return -1;
    }
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

/* The public callbacks of the NATS node (aether_options.h), onto the
 * member callbacks above: the slot rides in arg. */
static void pub_acquired(aether_node *node, uint32_t shard, uint64_t version, void *arg)
{
    (void)node;
    on_acquired(arg, shard, version);
}

static void pub_released(aether_node *node, uint32_t shard, uint64_t version, void *arg)
{
    (void)node;
    on_released(arg, shard, version);
}

static void pub_leader(aether_node *node, const char *leader, uint64_t term, void *arg)
{
    (void)node;
    leader_changed(arg, leader, (aether_term)term);
}

static void pub_map(aether_node *node, uint64_t version, uint64_t term, void *arg)
{
    (void)node;
    on_map_installed(arg, version, (aether_term)term);
}

/* NATS mode: the node through aether_node_start (connection, buckets
 * aether_<cluster>_lease|state, event stream, transport, executors: all the
 * library's), with the hooks this program needs on top (aether_node_hooks.h):
 * every event and the supersession for the printing and --trace, the
 * metrics registry, --seed, and the JetStream wait of KV_CREATE_LIMIT_MS
 * that SIGINT/SIGTERM cut short. 0, or the exit status after saying why:
 * EXIT_USAGE for a configuration the cluster refuses (a bucket of another
 * TTL or replica count, a secret file gone bad since the check),
 * NODE_START_STOPPED when a signal ended the wait (nothing joined), 1 else. */
static int node_start_nats(node_run *d, node_slot *n)
{
    AETHER_STATIC_ASSERT(sizeof(node_stop_signal) == sizeof(int), "sig_atomic_t is an int here");
    aether_options *opts = NULL;
    if (aether_options_create(&opts) != AETHER_OK) {
        fprintf(stderr, "aether-node: %s\n", aether_last_error());
        return 1;
    }
    aether_options_set_settings(opts, &d->opt.s);
    (void)aether_options_on_shard_acquired(opts, pub_acquired, n);
    (void)aether_options_on_shard_released(opts, pub_released, n);
    (void)aether_options_on_leader_changed(opts, pub_leader, n);
    (void)aether_options_on_map_installed(opts, pub_map, n);
    aether_node_hooks hooks = { .on_event = on_event, .on_superseded = on_superseded, .arg = n,
                                .metrics = d->metrics, .metric_labels = node_metric_labels(d),
                                .seed = aether_rng_next(&d->rng), .kv_wait_ms = KV_CREATE_LIMIT_MS,
                                .stop = (const volatile int *)&node_stop_signal };
    aether_options_set_hooks(opts, &hooks);
    aether_node *node = NULL;
    aether_status st = aether_node_start(opts, &node);
    aether_options_destroy(opts);
    if (st != AETHER_OK) {
        if (st == AETHER_ECLOSED && node_stop_signal != 0) {
            AETHER_INFO("aether-node", "stopped by signal %d while waiting for NATS: %s; never joined: "
                        "nothing to drain", (int)node_stop_signal, aether_last_error());
            return NODE_START_STOPPED;
        }
        fprintf(stderr, "aether-node: %s\n", aether_last_error());
        return st == AETHER_EINCOMPATIBLE || st == AETHER_EINVAL ? EXIT_USAGE : 1;
    }
    pthread_mutex_lock(&d->mu);
    d->node = node;
    n->m = aether_node_member(node);
    n->live = true;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

int node_start(node_run *d, uint32_t i)
{
    node_slot *n = &d->nodes[i];
    if (d->opt.nats_mode) {
        int rc = node_start_nats(d, n);
        if (rc != 0)
            return rc;
        if (node_metrics_register(d, n) != 0) {
            fprintf(stderr, "aether-node: %s: cannot register its metrics\n", n->id);
            return 1;
        }
        return 0;
    }
    aether_config cfg = d->base;
    aether_err err = { 0 };
    if (aether_node_id_from_cstr(n->id, &cfg.node, &err) != AETHER_OK ||
        aether_inproc_endpoint_create(d->hub, &cfg.node, &n->t) != AETHER_OK) {
        fprintf(stderr, "aether-node: %s: endpoint\n", n->id);
        return -1;
    }
    snprintf(cfg.address, sizeof(cfg.address), "inproc:%s", n->id);
    aether_member_deps deps = { .executor = d->ex, .io_executor = d->io_ex, .transport = n->t, .lease_store = d->lease_kv,
                                .state_store = d->state_kv, .metrics = d->metrics,
                                .metric_labels = node_metric_labels(d),
                                .seed = aether_rng_next(&d->rng), .incarnation = 0 };
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
    if (d->node != NULL) { /* NATS mode: the public teardown, in the library's order */
        aether_node_stop(d->node);
        aether_node_destroy(d->node);
    } else {
        aether_member_stop(n->m);
        aether_member_destroy(n->m);
    }
    pthread_mutex_lock(&d->mu);
    d->node = NULL;
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
    if (d->node != NULL)
        aether_node_stop(d->node);
    else
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
