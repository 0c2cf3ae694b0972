/*
 * tools/aether-node/main.c: the node daemon (tools layer).
 *
 *   aether-node --embedded [--nodes N] [--shards S] [--replication R]
 *               [--duration SECONDS] [--seed X] [--quiet] [--verbose]
 *   aether-node --embedded --scenario demo [--shards S] [--seed X] [--json]
 *               [--quiet] [--verbose]
 *
 * Embedded mode runs N members (node-1..node-N) in this process: one thread
 * pool executor on the real clock, one in-process hub, one in-memory lease
 * bucket (TTL = lease_ttl_ms) and one in-memory state bucket (no TTL). Every
 * event is printed once, by the node that emitted it, as
 * "+<ms since start>ms <node> <aether_event_format line>". The per-shard
 * ShardAssigned events of one map are folded into one count line unless
 * --verbose. It runs until SIGINT/SIGTERM or --duration, then stops every
 * member and frees everything.
 *
 *   aether-node --nats URL[,URL...] --node ID [--cluster NAME] [--zone Z]
 *               [--shards S] [--replication R] [--duration SECONDS]
 *               [--seed X] [--quiet] [--verbose]
 *
 * NATS mode runs ONE node in this process: one nats.c connection (the URL
 * list as its server pool; reconnects forever, NATS_RECONNECT_WAIT_MS
 * between attempts; the first connect is retried for CONNECT_LIMIT_MS, then
 * "cannot reach NATS at URL: <error>" and exit 1), the JetStream KV buckets
 * aether_<cluster>_lease (TTL = lease_ttl_ms) and aether_<cluster>_state (no
 * TTL), created if missing (while JetStream is unavailable - starting, or a
 * restarted cluster server without its routes yet - retried with backoff
 * for KV_CREATE_LIMIT_MS, then exit 1; a SIGINT/SIGTERM while waiting exits 0
 * at once, with a log line: it never joined), a NATS transport and a pool executor, all on
 * that connection. Events this node emits are printed as in the embedded
 * mode, plus "+<ms>ms <node> LEADER elected term=T" / "LEADER lost term=T"
 * when its view's is_leader flips. On SIGINT/SIGTERM or --duration it
 * drains (aether_member_drain), waits at most handoff_timeout_ms +
 * DRAIN_EXTRA_MS until the leader has declared it Left (a draining leader
 * first resigns and its successor finishes the drain) or no other node is
 * Active (nothing to hand off to), then stops, frees everything (member, transport, pool, stores, connection,
 * then nats_Close) and exits 0. A node drained from outside (aetherctl
 * drain) that the leader has declared Left has nothing left to do: it
 * stops the same way, at once, and exits 0 ("stopping (drained and left:
 * nothing left to do)").
 *
 * The demo scenario (--scenario demo) drives a 5-node cluster through a
 * join, a graceful drain, a follower crash and a leader crash on the real
 * clock, waits (bounded) for the cluster to settle after each step, and
 * prints a summary: per step its duration, the shards moved, the leader and
 * its term; the final shards per node; the failover time; and the
 * single-ownership violations seen (exit 1 unless zero and every step
 * settled).
 *
 * DESIGN
 *  1. The controlling (main) thread starts, drains, crashes and stops
 *     members, polls their views and sleeps in bounded loops. It is the only
 *     writer of node_slot.m/.t/.live (writes under mu; its own reads need no
 *     lock).
 *  2. The member callbacks run on pool workers, several members at once.
 *     They only touch the tracking state and stdout under the one mutex mu,
 *     and return quickly. The controlling thread never holds mu while it
 *     calls into a member that could wait for an actor (start, drain, stop,
 *     destroy), so a callback waiting for mu cannot deadlock a teardown.
 *  3. Single ownership is checked on every acquire: a shard acquired while
 *     another live node still serves it and may serve (its own clock says
 *     its right holds, aether_member_may_serve) is a violation. A crashed
 *     node stops being live (under mu) before it is stopped, so nobody asks
 *     a member being destroyed, and a dead node's shards never count.
 *  4. Settled = exactly one live member with is_leader, every live member
 *     on the same map version, the shards served over live members equal to
 *     the shard count; and, so that a half-done step cannot pass: every live
 *     node an Active member serving at least one shard, the map version
 *     (and after a leader crash the term) above the previous step's, no
 *     rebalance session open (RebalanceStarted without RebalanceCompleted
 *     from the current leader), and all of that steady for SETTLE_QUIET_MS
 *     (a multi-batch handoff publishes several maps, and events reach the
 *     callbacks asynchronously).
 *
 * A node superseded by a newer process of its id (member_cluster.c) stops
 * at once: no drain (it would drain the newer process), the final status,
 * exit 3.
 *
 * Exit status: 0 success; 1 a run failed (start error, a step did not
 * settle, a violation); 2 usage error, with a message on stderr, or (NATS
 * mode) the leader refused this node's join because its configuration
 * cannot serve the cluster: stderr says "join refused: <the leader's
 * sentence>" (e.g. "shard_count 1024 differs from the cluster's 64") and
 * this node's own terms. A wrong configuration, like a usage error, is not
 * fixed by restarting as is; 3 (NATS mode) superseded by a newer process
 * of the same node id.
 *
 * Threading: main thread as above; callbacks on executor workers; the
 * signal handler only sets a flag.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "aether.h"
#include "aether_build.h"
#include <aether/aether_version.h>
#include "metrics_http.h"

#define EXIT_USAGE 2
#define EXIT_INCOMPATIBLE 2         /* the leader refused the join: configuration differs */
/* NATS mode: a newer process of this node id was admitted (DESIGN 2.4);
 * this one stopped serving and exits without draining (a LeaveCluster
 * would drain the newer process). */
#define EXIT_SUPERSEDED 3
#define NODES_MAX 64u               /* --nodes upper bound (and demo slots) */
#define NODES_DEFAULT 3u
#define DURATION_S_MAX 31536000.0   /* one year */
#define TICK_MS 50u                 /* main-loop sleep in daemon mode */
#define BATCH_QUIET_MS 50u          /* a folded batch is printed after this long without growth */
#define LINE_CAP 768u

#define SETTINGS_PARAMS_MAX 64u     /* rows of the settings table (asserted) */
#define FLAG_NAME_MAX 48u           /* longest --flag name */
#define KV_RETRY_MS 200u            /* bucket creation retried after this, doubling... */
#define KV_RETRY_MAX_MS 2000u       /* ...up to this */
/* JetStream may be starting, or a restarted server of a cluster still
 * waiting for its routes and a meta leader (seen: 16 s under chaos):
 * retried this long, like a node waiting for its seeds, then exit 1. */
#define KV_CREATE_LIMIT_MS 60000u
#define KV_WARN_EVERY_MS 5000u      /* one log line per this while retrying */
#define DRAIN_EXTRA_MS 2000u        /* drain wait = handoff_timeout_ms + this */
#define DRAIN_RETRY_MS 1000u        /* re-ask while still Active (a request lost in a failover) */
/* "aether_<cluster>_lease" must fit a bucket name. */

#define DEMO_NODES 5u
#define DEMO_SLOTS (DEMO_NODES + 1u)
#define SETTLE_LIMIT_MS 10000u      /* per wait, bounded */
#define SETTLE_POLL_MS 10u
#define SETTLE_QUIET_MS 300u        /* settled must hold this long (> rebalance debounce) */
#define FAILOVER_POLL_MS 1u
#define DEMO_STEPS 5u

AETHER_STATIC_ASSERT(DEMO_SLOTS <= NODES_MAX, "demo nodes fit the slot table");
AETHER_STATIC_ASSERT(SETTLE_QUIET_MS > 100u, "longer than the default rebalance debounce");

#define FLAGS_MAX 128u

typedef struct options {
    bool embedded, quiet, verbose, json, help, version, trace, print_config;
    bool nodes_set, duration_set, replication_set, seed_set;
    bool nats_flag;          /* --nats given */
    bool nats_mode;          /* resolved: one node over NATS */
    const char *config_path; /* --config */
    uint32_t nodes;
    double duration_s;  /* 0 = until a signal */
    uint64_t seed;
    const char *scenario; /* NULL or "demo" */
    struct {
        const char *key, *name, *value; /* parameter, flag as typed (no dashes), value */
    } flags[FLAGS_MAX];   /* settings flags in command-line order */
    uint32_t n_flags;
    aether_settings s;    /* resolved: defaults < file < env < flags */
} options;

struct node_run;

typedef struct node_slot {
    struct node_run *d;                     /* immutable */
    char id[AETHER_NODE_ID_LEN_MAX + 1];  /* immutable after setup */
    aether_member *m;                     /* main thread writes under mu */
    aether_transport *t;                  /* main thread only */
    bool live;                            /* main thread writes under mu: started, not stopped */
    bool crashed, left;                   /* main thread only: how it ended */
    uint8_t *serving;                     /* [shard_count], under mu */
    uint32_t serving_count;               /* under mu */
    /* The folded line this node's ShardAssigned (or, in the demo, also
     * ShardMigrated) events are gathered into; under mu. type 0 = none. */
    aether_event_type batch_type;
    uint32_t batch_count;
    uint64_t batch_version, batch_term, batch_seq_first, batch_seq_last;
    uint64_t batch_first_ms, batch_last_ns;
} node_slot;

typedef struct step_rec {
    const char *name;               /* immutable */
    uint64_t start_ns, end_ns;      /* main thread */
    uint32_t moved;                 /* under mu: ShardMigrated events in the step */
    char leader[AETHER_NODE_ID_LEN_MAX + 1]; /* main thread, at the end */
    aether_term term;
    uint64_t map_version;
    bool settled;
    char why[160];                  /* why it did not settle */
} step_rec;

typedef struct node_run {
    options opt;                    /* immutable */
    aether_config base;             /* immutable: node set per member */
    aether_executor *ex;
    aether_inproc_hub *hub;
    aether_kv *lease_kv, *state_kv;
    natsConnection *nc;             /* NATS mode only; main thread */
    aether_codec_stats codec_stats; /* NATS mode: the transport's refusals */
    aether_auth *auth;              /* NATS mode with cluster_secret_file; immutable after setup */
    aether_auth_sealer sealer;      /* seals what this process sends and stores (auth.h);
                                       immutable after setup but for its atomic counter */
    aether_metrics *metrics;        /* every node's series; immutable after setup */
    aether_metrics_http *http;      /* GET /metrics when metrics_addr is set; main thread */
    bool was_leader;                /* NATS mode: main thread */
    uint64_t was_leader_term;       /* NATS mode: main thread; the term it led at the last poll */
    aether_rng rng;                 /* main thread */
    uint64_t start_ns;              /* immutable after setup */
    uint64_t start_wall_ms;         /* immutable after setup: the process's incarnation */
    uint32_t hide_mask;             /* immutable: event types never printed */
    uint32_t fold_mask;             /* immutable: event types folded into count lines */
    pthread_mutex_t mu;
    node_slot nodes[NODES_MAX];
    uint32_t n_nodes;               /* immutable after setup */
    /* Under mu: */
    aether_term_registry terms;
    uint32_t violations;
    char first_violation[256];
    bool session_open;              /* RebalanceStarted seen, Completed not yet */
    int step;                       /* -1 = none */
    step_rec steps[DEMO_STEPS];
} node_run;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static uint64_t now_ns(void) { return aether_clock_now_ns(aether_clock_real()); }

static uint64_t since_start_ms(const node_run *d) { return (now_ns() - d->start_ns) / AETHER_NS_PER_MS; }

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    (void)nanosleep(&ts, NULL); /* EINTR by a signal: the caller's loop checks the flag */
}

/* ---- output (callers hold mu) ----------------------------------------------- */

/* Event lines (run lines, say(), only stop for --json). */
static bool printing(const node_run *d) { return !d->opt.quiet && !d->opt.json; }

static void flush_batch_locked(node_run *d, node_slot *n)
{
    if (n->batch_type == 0)
        return;
    if (printing(d))
        fprintf(stdout, "+%llums %s %s x%u term=%llu seq=%llu..%llu map_version=%llu%s\n",
                (unsigned long long)n->batch_first_ms, n->id, aether_event_type_name(n->batch_type),
                n->batch_count, (unsigned long long)n->batch_term,
                (unsigned long long)n->batch_seq_first, (unsigned long long)n->batch_seq_last,
                (unsigned long long)n->batch_version,
                d->opt.scenario == NULL ? " (--verbose: one line each)" : "");
    n->batch_type = 0;
    n->batch_count = 0;
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
            n->batch_first_ms = since_start_ms(d);
        }
        n->batch_count++;
        n->batch_seq_last = e->seq;
        n->batch_last_ns = now_ns();
        return;
    }
    flush_batch_locked(d, n);
    if (!printing(d))
        return;
    char line[LINE_CAP];
    aether_event_format(e, line, sizeof(line));
    fprintf(stdout, "+%llums %s %s\n", (unsigned long long)since_start_ms(d), n->id, line);
}

/* Main thread: prints the batches that stopped growing (all with force). */
static void flush_quiet_batches(node_run *d, bool force)
{
    uint64_t now = now_ns();
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
static void say(node_run *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(node_run *d, const char *fmt, ...)
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
static void trace(node_run *d, const node_slot *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void trace(node_run *d, const node_slot *n, const char *fmt, ...)
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
        fprintf(stderr, "+%llums VIOLATION %s\n", (unsigned long long)since_start_ms(d), msg);
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
    trace(d, n, "ACQUIRE %u %llu", shard, (unsigned long long)version);
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
    trace(d, n, "RELEASE %u %llu", shard, (unsigned long long)version);
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
    trace(n->d, n, "LEADER %s %llu gen=%016llx", leader != NULL && leader->len > 0 ? leader->str : "-",
          (unsigned long long)term, (unsigned long long)v.generation);
}

static void on_map_installed(void *arg, uint64_t version, aether_term term)
{
    node_slot *n = arg;
    aether_member_view v;
    slot_view(n, &v);
    trace(n->d, n, "MAP %llu %llu gen=%016llx", (unsigned long long)version,
          (unsigned long long)term, (unsigned long long)v.map_generation);
}

/* The moment a newer process of this id took over (member.h): its shards
 * are already released; the main loop exits 3 at its next tick. */
static void on_superseded(void *arg, uint64_t incarnation, uint64_t by_incarnation)
{
    node_slot *n = arg;
    trace(n->d, n, "SUPERSEDED %llu %llu", (unsigned long long)incarnation,
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
        trace(d, n, "EVENT %s %s", aether_event_type_name(e->type), line);
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
            if (d->step >= 0)
                d->steps[d->step].moved++;
            break;
        default:
            break;
        }
        print_event_locked(d, n, e);
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- metrics of the daemon itself (scraping thread) ------------------------- */

/* DESIGN 7 "shards with more than one claimed owner", as one node can see
 * it: the shards this node serves (its on_shard_acquired/released, tracked
 * in n->serving) that its current map does not give it as a stable primary.
 * Each is claimed twice: by this node and by the map's owner. Summed over
 * the nodes of a cluster it counts the double claims; 0 whenever single
 * ownership holds. A node that may not serve (fenced, declared down)
 * claims nothing. Runs on the scraping thread under the registry mutex:
 * takes mu (never the other way round), reads the member through its
 * any-thread API and the map inside an RCU read-side section. */
static int64_t g_multi_owner(void *arg)
{
    node_slot *n = arg;
    node_run *d = n->d;
    int64_t claims = 0;
    pthread_mutex_lock(&d->mu);
    /* live is cleared under mu before the member is stopped (node_halt). */
    if (n->live && n->m != NULL && n->serving_count > 0 && aether_member_may_serve(n->m)) {
        aether_node_id me;
        (void)aether_node_id_from_cstr(n->id, &me, NULL);
        aether_rcu_read_lock();
        const aether_shardmap *map = aether_shardmap_slot_current(aether_member_slot(n->m));
        aether_node_index idx = map != NULL ? aether_shardmap_find_node(map, &me) : AETHER_NODE_INDEX_NONE;
        for (uint32_t s = 0; s < d->base.shard_count; s++) {
            if (!n->serving[s])
                continue;
            const aether_shard_entry *e =
                map != NULL && s < map->shard_count ? aether_shardmap_entry(map, s) : NULL;
            bool backed = e != NULL && idx != AETHER_NODE_INDEX_NONE && e->owner_count > 0 &&
                          e->primary == idx && e->state == AETHER_SHARD_STABLE;
            claims += !backed;
        }
        aether_rcu_read_unlock();
    }
    pthread_mutex_unlock(&d->mu);
    return claims;
}

static int64_t g_decoded(void *arg) { return (int64_t)aether_codec_stats_decoded(arg); }

static int64_t g_recreated(void *arg) { return (int64_t)aether_kv_nats_recreated(arg); }

/* One counter per refusal class: the class index rides in the argument. */
typedef struct decode_series {
    aether_codec_stats *stats;
    aether_codec_reject reason;
} decode_series;
static decode_series decode_series_args[AETHER_CODEC_REJECT_COUNT_];

static int64_t g_decode_errors(void *arg)
{
    const decode_series *ds = arg;
    return (int64_t)aether_codec_stats_rejected(ds->stats, ds->reason);
}

#define MULTI_OWNER_NAME "aether_shards_multi_owner"

static void node_labels(const node_slot *n, char *buf, size_t cap) { snprintf(buf, cap, "node=\"%s\"", n->id); }

/* The series only this tool knows: double claims per node, and (NATS mode)
 * the wire decoder's counts. 0 or -1. */
static int daemon_metrics_node(node_run *d, node_slot *n)
{
    char labels[128];
    node_labels(n, labels, sizeof(labels));
    if (aether_metrics_gauge_fn(d->metrics, MULTI_OWNER_NAME,
                                "Shards this node serves that its current map gives to no one or to another "
                                "node: each has more than one claimed owner. 0 while single ownership holds.",
                                labels, g_multi_owner, n) != AETHER_OK)
        return -1;
    if (d->nc == NULL)
        return 0;
    if (aether_metrics_counter_fn(d->metrics, "aether_messages_decoded_total",
                                  "Messages from the wire this node decoded and accepted.", labels, g_decoded,
                                  &d->codec_stats) != AETHER_OK)
        return -1;
    static const char *const suffixes[] = { "lease", "state" };
    aether_kv *stores[] = { d->lease_kv, d->state_kv };
    for (size_t b = 0; b < sizeof(stores) / sizeof(stores[0]); b++) {
        char bl[192];
        snprintf(bl, sizeof(bl), "%s,bucket=\"%s\"", labels, suffixes[b]);
        if (aether_metrics_counter_fn(d->metrics, "aether_kv_bucket_recreated_total",
                                      "Times this process found a KV bucket (lease or state) deleted and "
                                      "created it again (transport/nats_kv.h step 5).",
                                      bl, g_recreated, stores[b]) != AETHER_OK)
            return -1;
    }
    for (int r = 0; r < AETHER_CODEC_REJECT_COUNT_; r++) {
        char rl[192];
        snprintf(rl, sizeof(rl), "%s,reason=\"%s\"", labels, aether_codec_reject_name((aether_codec_reject)r));
        decode_series_args[r] = (decode_series){ &d->codec_stats, (aether_codec_reject)r };
        if (aether_metrics_counter_fn(d->metrics, "aether_decode_errors_total",
                                      "Messages from the wire this node refused, by reason (malformed, "
                                      "oversized, unknown_type, bad_field, stale_term, wrong_cluster, unauthenticated).",
                                      rl, g_decode_errors, &decode_series_args[r]) != AETHER_OK)
            return -1;
    }
    return 0;
}

/* ---- setup and teardown (main thread) -------------------------------------- */

/* Connects with the resolved NATS settings (servers, auth, TLS): 0 and
 * d->nc set, or -1 after saying why. The first connect is retried for
 * nats_connect_timeout_ms (a server that is still starting) unless the
 * failure cannot heal (credentials refused, TLS); afterwards nats.c
 * reconnects forever on its own (transport/nats_conn.h). */
static int nats_connect(node_run *d)
{
    AETHER_STATIC_ASSERT(sizeof(stop_signal) == sizeof(int), "sig_atomic_t is an int here");
    aether_err err = { 0 };
    aether_status st = aether_nats_connect(&d->opt.s.nats, d->nodes[0].id,
                                           (const volatile int *)&stop_signal, &d->nc, &err);
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
    uint64_t t0 = now_ns(), warned = 0;
    unsigned wait_ms = KV_RETRY_MS;
    for (;;) { /* bounded: KV_CREATE_LIMIT_MS, or a signal */
        aether_status st = aether_kv_nats_create(&kc, out, &err);
        if (st == AETHER_OK) {
            if (warned != 0)
                AETHER_INFO("aether-node", "KV bucket %s ready after %llu ms", bucket,
                            (unsigned long long)((now_ns() - t0) / AETHER_NS_PER_MS));
            return 0;
        }
        uint64_t waited_ms = (now_ns() - t0) / AETHER_NS_PER_MS;
        *out = NULL;
        if (stop_signal != 0 && (st == AETHER_EUNAVAILABLE || st == AETHER_ENOTFOUND)) {
            AETHER_INFO("aether-node", "stopped by signal %d after waiting %llu ms for KV bucket %s (%s); "
                        "never joined: nothing to drain", (int)stop_signal, (unsigned long long)waited_ms,
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
        sleep_ms(wait_ms);
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
static int daemon_init(node_run *d, const options *o, uint32_t n_nodes)
{
    memset(d, 0, sizeof(*d));
    d->opt = *o;
    d->step = -1;
    pthread_mutex_init(&d->mu, NULL);
    aether_term_registry_init(&d->terms);
    aether_codec_stats_init(&d->codec_stats, NULL);
    aether_rng_seed(&d->rng, o->seed);
    d->start_ns = now_ns();
    /* Before any wait (JetStream, up to a minute): a process started after
     * this one must be the newer one (docs/cluster.md, one process per
     * node id), however long each waited for its buckets. */
    d->start_wall_ms = aether_clock_wall_ms(aether_clock_real());
    d->base = o->s.node; /* node (and address) set per member */
    d->hide_mask = o->scenario != NULL && !o->verbose ? 1u << AETHER_EVT_LEASE_RENEWED : 0u;
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
    aether_pool_config pc = { 0 };
    aether_status st = aether_pool_create(&pc, &d->ex);
    if (st == AETHER_OK)
        st = aether_pool_start(d->ex);
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

static int node_start(node_run *d, uint32_t i)
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
    aether_member_deps deps = { .executor = d->ex, .transport = n->t, .lease_store = d->lease_kv,
                                .state_store = d->state_kv, .metrics = d->metrics,
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
    if (daemon_metrics_node(d, n) != 0) {
        fprintf(stderr, "aether-node: %s: cannot register its metrics\n", n->id);
        return -1;
    }
    return 0;
}

/* Takes a node out: no longer live (so no callback asks it anything), then
 * stopped and destroyed, then its serving set cleared. */
static void node_halt(node_run *d, uint32_t i)
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

static void daemon_fini(node_run *d)
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
    aether_term_registry_fini(&d->terms);
    pthread_mutex_destroy(&d->mu);
    aether_rcu_barrier(); /* retired maps and snapshots are freed before exit */
    aether_metrics_destroy(d->metrics); /* after every member released its series */
    d->metrics = NULL;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the main thread's sleep returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- daemon mode -------------------------------------------------------------- */

static void print_status(node_run *d)
{
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        if (n->m == NULL)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        say(d, "  %-8s %-8s %-8s term=%llu leader=%s map_version=%llu shards=%u\n", n->id,
            v.is_leader ? "LEADER" : "follower", aether_node_status_name(v.status),
            (unsigned long long)v.term, v.leader.len ? v.leader.str : "-",
            (unsigned long long)v.map_version, v.shards_serving);
    }
}

static int run_daemon(node_run *d)
{
    say(d, "aether-node: embedded, %u nodes, %u shards, replication %u, seed %llu, pool of %u workers\n",
        d->n_nodes, d->base.shard_count, d->base.replication, (unsigned long long)d->opt.seed,
        aether_pool_workers(d->ex));
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        if (node_start(d, i) != 0)
            return 1;
        say(d, "+%llums %s started\n", (unsigned long long)since_start_ms(d), d->nodes[i].id);
    }
    uint64_t ticks_max = d->opt.duration_s > 0 ? (uint64_t)ceil(d->opt.duration_s * 1000.0 / TICK_MS)
                                               : UINT64_MAX;
    uint64_t deadline = d->opt.duration_s > 0
                            ? d->start_ns + (uint64_t)(d->opt.duration_s * 1e9)
                            : UINT64_MAX;
    for (uint64_t tick = 0; tick < ticks_max && stop_signal == 0 && now_ns() < deadline; tick++) {
        sleep_ms(TICK_MS);
        flush_quiet_batches(d, false);
    }
    flush_quiet_batches(d, true);
    say(d, "+%llums stopping (%s)\n", (unsigned long long)since_start_ms(d),
        stop_signal == SIGINT ? "SIGINT" : stop_signal == SIGTERM ? "SIGTERM" : "duration reached");
    print_status(d);
    pthread_mutex_lock(&d->mu);
    uint32_t violations = d->violations;
    pthread_mutex_unlock(&d->mu);
    if (violations > 0) {
        fprintf(stderr, "aether-node: %u violation(s); first: %s\n", violations, d->first_violation);
        return 1;
    }
    return 0;
}

/* ---- NATS mode (one node) ------------------------------------------------------ */

/* Prints a line when this node's is_leader flips, or when it leads a new
 * term (a loss and a re-election between two polls: both lines). */
static void leader_poll(node_run *d)
{
    node_slot *n = &d->nodes[0];
    if (n->m == NULL)
        return;
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.is_leader == d->was_leader && (!v.is_leader || v.term == d->was_leader_term))
        return;
    if (v.is_leader && d->was_leader)
        say(d, "+%llums %s LEADER lost term=%llu leader=%s\n", (unsigned long long)since_start_ms(d),
            n->id, (unsigned long long)d->was_leader_term, n->id);
    d->was_leader = v.is_leader;
    d->was_leader_term = v.is_leader ? v.term : 0;
    if (v.is_leader)
        say(d, "+%llums %s LEADER elected term=%llu\n", (unsigned long long)since_start_ms(d), n->id,
            (unsigned long long)v.term);
    else
        say(d, "+%llums %s LEADER lost term=%llu leader=%s\n", (unsigned long long)since_start_ms(d),
            n->id, (unsigned long long)v.term, v.leader.len ? v.leader.str : "-");
}

static int run_nats(node_run *d)
{
    node_slot *n = &d->nodes[0];
    say(d, "aether-node: nats %s, node %s, cluster %s, %u shards, replication %u, pool of %u workers\n",
        d->opt.s.nats.urls, n->id, d->base.cluster, d->base.shard_count, d->base.replication,
        aether_pool_workers(d->ex));
    if (node_start(d, 0) != 0)
        return 1;
    say(d, "+%llums %s started\n", (unsigned long long)since_start_ms(d), n->id);
    uint64_t deadline = d->opt.duration_s > 0
                            ? d->start_ns + (uint64_t)(d->opt.duration_s * 1e9)
                            : UINT64_MAX;
    aether_member_view v;
    bool superseded = false;
    bool left = false; /* drained from outside (aetherctl drain) and declared Left */
    while (stop_signal == 0 && now_ns() < deadline && !superseded && !left) {
        sleep_ms(TICK_MS);
        flush_quiet_batches(d, false);
        leader_poll(d);
        aether_err why = { 0 };
        if (aether_member_admission(n->m, &why) == AETHER_EINCOMPATIBLE) {
            /* Nothing to drain: the cluster never admitted this node. */
            flush_quiet_batches(d, true);
            fprintf(stderr, "aether-node: %s: join refused: %s\n", n->id, why.msg);
            char params[256];
            (void)aether_config_params_text(&d->base, params, sizeof(params));
            fprintf(stderr, "aether-node: %s: this node: shard_count %u, replication %u, wire "
                    "versions %u..%u, %s\n", n->id, d->base.shard_count, d->base.replication,
                    AETHER_WIRE_VERSION_MIN, AETHER_WIRE_VERSION_MAX, params);
            return EXIT_INCOMPATIBLE;
        }
        aether_member_view_get(n->m, &v);
        superseded = v.superseded;
        left = v.has_left;
    }
    flush_quiet_batches(d, true);
    if (superseded) {
        /* No drain: a LeaveCluster names the node id, which the newer
         * process holds now (aether_member_drain refuses it anyway). */
        fprintf(stderr, "aether-node: %s superseded by a newer process of node %s (incarnation %llu > "
                "%llu): exiting %d without draining\n", n->id, n->id,
                (unsigned long long)v.superseded_by, (unsigned long long)v.incarnation, EXIT_SUPERSEDED);
        say(d, "+%llums %s superseded (incarnation %llu > %llu): stopping\n",
            (unsigned long long)since_start_ms(d), n->id, (unsigned long long)v.superseded_by,
            (unsigned long long)v.incarnation);
        print_status(d);
        return EXIT_SUPERSEDED;
    }
    say(d, "+%llums stopping (%s)\n", (unsigned long long)since_start_ms(d),
        left                    ? "drained and left: nothing left to do"
        : stop_signal == SIGINT  ? "SIGINT"
        : stop_signal == SIGTERM ? "SIGTERM"
                                 : "duration reached");

    /* Drain, bounded: until the leader says Left (a leader resigns first,
     * member_lease.c policy 9, and its successor finishes the drain). A
     * node that has left already skips it. */
    aether_status st = left ? AETHER_OK : aether_member_drain(n->m);
    uint64_t limit_ms = (uint64_t)d->base.handoff_timeout_ms + DRAIN_EXTRA_MS;
    if (!left)
        say(d, "+%llums %s draining (%s; waiting at most %llu ms)\n",
            (unsigned long long)since_start_ms(d), n->id,
            st == AETHER_OK ? "leave requested" : aether_status_str(st), (unsigned long long)limit_ms);
    uint64_t t0 = now_ns(), asked = t0;
    bool done = false;
    for (;;) {
        aether_member_view_get(n->m, &v);
        if (v.status == AETHER_NODE_LEFT || v.has_left) { /* the leader's NodeLeft: not declared
                                                              failed later */
            done = true;
            break;
        }
        if (v.status == AETHER_NODE_DRAINING && v.nodes_active == 0) {
            say(d, "+%llums %s no other active node: nothing to hand off to\n",
                (unsigned long long)since_start_ms(d), n->id);
            done = true;
            break;
        }
        uint64_t now = now_ns();
        if (now - t0 >= limit_ms * AETHER_NS_PER_MS)
            break;
        if (v.status == AETHER_NODE_ACTIVE && now - asked >= DRAIN_RETRY_MS * AETHER_NS_PER_MS) {
            (void)aether_member_drain(n->m); /* asynchronous; the leader may have changed */
            asked = now;
        }
        sleep_ms(TICK_MS);
        flush_quiet_batches(d, false);
        leader_poll(d);
    }
    flush_quiet_batches(d, true);
    leader_poll(d);
    if (done)
        say(d, "+%llums %s drained: status %s, serving %u\n", (unsigned long long)since_start_ms(d), n->id,
            aether_node_status_name(v.status), v.shards_serving);
    else
        say(d, "+%llums %s drain not finished after %llu ms (status %s, serving %u): stopping anyway\n",
            (unsigned long long)since_start_ms(d), n->id, (unsigned long long)limit_ms,
            aether_node_status_name(v.status), v.shards_serving);
    print_status(d);
    aether_member_view_get(n->m, &v);
    trace(d, n, "STATS decoded=%llu decode_rejected=%llu stale_dropped=%llu leader_changes=%llu "
          "rebalances=%llu shards_moved=%llu map_version=%llu term=%llu serving=%u",
          (unsigned long long)aether_codec_stats_decoded(&d->codec_stats),
          (unsigned long long)aether_codec_stats_rejected_total(&d->codec_stats),
          (unsigned long long)v.stale_dropped, (unsigned long long)v.leader_changes,
          (unsigned long long)v.rebalances, (unsigned long long)v.shards_moved,
          (unsigned long long)v.map_version, (unsigned long long)v.term, v.shards_serving);
    pthread_mutex_lock(&d->mu);
    uint32_t violations = d->violations;
    pthread_mutex_unlock(&d->mu);
    if (violations > 0) {
        fprintf(stderr, "aether-node: %u violation(s); first: %s\n", violations, d->first_violation);
        return 1;
    }
    return 0;
}

/* ---- demo scenario ------------------------------------------------------------ */

typedef struct goal {
    uint64_t version_above;   /* the leader's map version must exceed this */
    aether_term term_above;   /* the leader's term must exceed this */
} goal;

/* One look at the cluster: 0 if settled by the definition in the DESIGN
 * note (minus the quiet period), else -1 and why. */
static int settled_now(node_run *d, const goal *g, char *why, size_t cap, int *leader_out,
                       uint64_t *version_out)
{
    int leader = -1, leaders = 0;
    uint64_t version = 0;
    bool first = true;
    uint64_t served = 0;
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        node_slot *n = &d->nodes[i];
        if (!n->live)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (v.is_leader) {
            leaders++;
            leader = (int)i;
        }
        if (first)
            version = v.map_version;
        else if (v.map_version != version) {
            snprintf(why, cap, "%s on map v%llu, others on v%llu", n->id,
                     (unsigned long long)v.map_version, (unsigned long long)version);
            return -1;
        }
        first = false;
        served += v.shards_serving;
        if (!v.member || v.status != AETHER_NODE_ACTIVE) {
            snprintf(why, cap, "%s is not an Active member yet", n->id);
            return -1;
        }
        /* Every admitted node gets shards once balanced (when there are
         * enough of them): a node still at zero is a rebalance to come. */
        if (v.shards_serving == 0 && d->base.shard_count >= DEMO_SLOTS) {
            snprintf(why, cap, "%s serves nothing yet", n->id);
            return -1;
        }
    }
    *leader_out = leader;
    *version_out = version;
    if (leaders != 1) {
        snprintf(why, cap, "%d nodes act as leader", leaders);
        return -1;
    }
    aether_member_view lv;
    aether_member_view_get(d->nodes[leader].m, &lv);
    if (served != d->base.shard_count) {
        snprintf(why, cap, "%llu of %u shards served", (unsigned long long)served, d->base.shard_count);
        return -1;
    }
    if (version <= g->version_above) {
        snprintf(why, cap, "map still v%llu", (unsigned long long)version);
        return -1;
    }
    if (lv.term <= g->term_above) {
        snprintf(why, cap, "leader term still %llu", (unsigned long long)lv.term);
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    bool open = d->session_open;
    pthread_mutex_unlock(&d->mu);
    if (open) {
        snprintf(why, cap, "rebalance in progress");
        return -1;
    }
    return 0;
}

/* Waits (bounded by SETTLE_LIMIT_MS) until settled_now holds for
 * SETTLE_QUIET_MS on one map version. Fills the step's end fields. */
static bool wait_settled(node_run *d, step_rec *s, const goal *g)
{
    uint64_t steady_since = 0, steady_version = 0;
    char why[160] = "not checked";
    for (uint32_t t = 0; t < SETTLE_LIMIT_MS / SETTLE_POLL_MS && stop_signal == 0; t++) {
        int leader = -1;
        uint64_t version = 0;
        if (settled_now(d, g, why, sizeof(why), &leader, &version) == 0) {
            uint64_t now = now_ns();
            if (steady_since == 0 || version != steady_version) {
                steady_since = now;
                steady_version = version;
            } else if (now - steady_since >= SETTLE_QUIET_MS * AETHER_NS_PER_MS) {
                aether_member_view v;
                aether_member_view_get(d->nodes[leader].m, &v);
                snprintf(s->leader, sizeof(s->leader), "%s", d->nodes[leader].id);
                s->term = v.term;
                s->map_version = version;
                s->settled = true;
                s->why[0] = '\0';
                return true;
            }
        } else {
            steady_since = 0;
        }
        flush_quiet_batches(d, false);
        sleep_ms(SETTLE_POLL_MS);
    }
    snprintf(s->why, sizeof(s->why), "%s", stop_signal ? "interrupted" : why);
    s->settled = false;
    return false;
}

static void step_begin(node_run *d, uint32_t k, const char *name)
{
    step_rec *s = &d->steps[k];
    flush_quiet_batches(d, true);
    say(d, "\n== step %u: %s\n", k + 1, name);
    pthread_mutex_lock(&d->mu);
    s->name = name;
    s->start_ns = now_ns();
    d->step = (int)k;
    pthread_mutex_unlock(&d->mu);
}

static void step_end(node_run *d, uint32_t k)
{
    step_rec *s = &d->steps[k];
    s->end_ns = now_ns();
    flush_quiet_batches(d, true);
    if (s->settled)
        say(d, "-- settled in %llu ms: leader %s term %llu map v%llu\n",
            (unsigned long long)((s->end_ns - s->start_ns) / AETHER_NS_PER_MS), s->leader,
            (unsigned long long)s->term, (unsigned long long)s->map_version);
    else
        say(d, "-- NOT settled after %llu ms: %s\n",
            (unsigned long long)((s->end_ns - s->start_ns) / AETHER_NS_PER_MS), s->why);
}

/* A live node other than the leader (and other than `skip`), highest index
 * first so the joiner and the first nodes stay; -1 if none. */
static int pick_follower(node_run *d, int skip)
{
    for (int i = (int)d->n_nodes - 2; i >= 0; i--) {
        node_slot *n = &d->nodes[i];
        if (!n->live || i == skip)
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (!v.is_leader)
            return i;
    }
    return -1;
}

static int current_leader(node_run *d)
{
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        if (!d->nodes[i].live)
            continue;
        aether_member_view v;
        aether_member_view_get(d->nodes[i].m, &v);
        if (v.is_leader)
            return (int)i;
    }
    return -1;
}

/* Waits until node i is Left and owns nothing in the leader's map. */
static bool wait_drained(node_run *d, uint32_t i, step_rec *s)
{
    node_slot *n = &d->nodes[i];
    aether_node_id nid;
    (void)aether_node_id_from_cstr(n->id, &nid, NULL);
    char why[160] = "not checked";
    for (uint32_t t = 0; t < SETTLE_LIMIT_MS / SETTLE_POLL_MS && stop_signal == 0; t++) {
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        int leader = current_leader(d);
        size_t owned = 1;
        if (leader >= 0) {
            uint32_t one;
            aether_status st = aether_route_node_shards(aether_member_slot(d->nodes[leader].m), &nid,
                                                        &one, 0, &owned, NULL);
            if (st == AETHER_ENOTFOUND)
                owned = 0;
        }
        pthread_mutex_lock(&d->mu);
        uint32_t serving = n->serving_count;
        pthread_mutex_unlock(&d->mu);
        if (v.status == AETHER_NODE_LEFT && v.shards_serving == 0 && serving == 0 && owned == 0)
            return true;
        snprintf(why, sizeof(why), "%s is %s, serves %u, owns %zu in the leader's map", n->id,
                 aether_node_status_name(v.status), v.shards_serving, owned);
        flush_quiet_batches(d, false);
        sleep_ms(SETTLE_POLL_MS);
    }
    snprintf(s->why, sizeof(s->why), "%s", stop_signal ? "interrupted" : why);
    return false;
}

static uint64_t step_ms(const step_rec *s) { return (s->end_ns - s->start_ns) / AETHER_NS_PER_MS; }

static void print_summary_text(node_run *d, uint32_t steps_run, double failover_ms, int leader, bool ok)
{
    printf("\n== summary (%u nodes at start, %u shards, seed %llu)\n", DEMO_NODES, d->base.shard_count,
           (unsigned long long)d->opt.seed);
    printf("%-4s %-34s %9s %7s %-8s %5s %5s %s\n", "step", "what", "duration", "moved", "leader", "term",
           "map", "result");
    for (uint32_t k = 0; k < steps_run; k++) {
        const step_rec *s = &d->steps[k];
        char dur[24];
        snprintf(dur, sizeof(dur), "%llu ms", (unsigned long long)step_ms(s));
        printf("%-4u %-34s %9s %7u %-8s %5llu %5llu %s\n", k + 1, s->name, dur, s->moved,
               s->settled ? s->leader : "-", (unsigned long long)s->term,
               (unsigned long long)s->map_version, s->settled ? "settled" : s->why);
    }
    printf("\nfinal shards per node:\n");
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const node_slot *n = &d->nodes[i];
        const char *state = n->live ? "live" : n->left ? "left (drained)" : n->crashed ? "crashed" : "-";
        printf("  %-8s %-15s %5u%s\n", n->id, state, n->serving_count,
               leader == (int)i ? "  (leader)" : "");
    }
    if (failover_ms >= 0)
        printf("\nleader failover: %.0f ms from the crash to a new node acting as leader\n", failover_ms);
    else
        printf("\nleader failover: not measured\n");
    printf("single-ownership/I1 violations: %u%s%s\n", d->violations, d->violations ? ", first: " : "",
           d->violations ? d->first_violation : "");
    printf("result: %s\n", ok ? "OK" : "FAILED");
}

static void print_summary_json(node_run *d, uint32_t steps_run, double failover_ms, bool ok)
{
    json_t *root = json_object();
    json_t *steps = json_array();
    for (uint32_t k = 0; k < steps_run; k++) {
        const step_rec *s = &d->steps[k];
        json_t *js = json_object();
        json_object_set_new(js, "step", json_integer(k + 1));
        json_object_set_new(js, "what", json_string(s->name));
        json_object_set_new(js, "duration_ms", json_integer((json_int_t)step_ms(s)));
        json_object_set_new(js, "moved", json_integer(s->moved));
        json_object_set_new(js, "settled", json_boolean(s->settled));
        json_object_set_new(js, "leader", s->settled ? json_string(s->leader) : json_null());
        json_object_set_new(js, "term", json_integer((json_int_t)s->term));
        json_object_set_new(js, "map_version", json_integer((json_int_t)s->map_version));
        if (!s->settled)
            json_object_set_new(js, "why", json_string(s->why));
        json_array_append_new(steps, js);
    }
    json_t *shards = json_object();
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        const node_slot *n = &d->nodes[i];
        json_t *jn = json_object();
        json_object_set_new(jn, "state", json_string(n->live ? "live" : n->left ? "left" : n->crashed ? "crashed" : "-"));
        json_object_set_new(jn, "shards", json_integer(n->serving_count));
        json_object_set_new(shards, n->id, jn);
    }
    json_object_set_new(root, "nodes_at_start", json_integer(DEMO_NODES));
    json_object_set_new(root, "shard_count", json_integer(d->base.shard_count));
    json_object_set_new(root, "seed", json_integer((json_int_t)d->opt.seed));
    json_object_set_new(root, "steps", steps);
    json_object_set_new(root, "final", shards);
    json_object_set_new(root, "failover_ms", failover_ms >= 0 ? json_real(failover_ms) : json_null());
    json_object_set_new(root, "violations", json_integer(d->violations));
    if (d->violations)
        json_object_set_new(root, "first_violation", json_string(d->first_violation));
    json_object_set_new(root, "ok", json_boolean(ok));
    json_dumpf(root, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(root);
}

static int run_demo(node_run *d)
{
    say(d, "aether-node demo: %u nodes on the real clock (pool of %u workers), %u shards, seed %llu\n",
        DEMO_NODES, aether_pool_workers(d->ex), d->base.shard_count, (unsigned long long)d->opt.seed);
    uint32_t k = 0;
    bool ok = true;
    double failover_ms = -1;
    const uint32_t joiner = DEMO_NODES; /* index of node-6 */

    /* (a) five nodes start and settle. */
    step_begin(d, k, "start 5 nodes");
    for (uint32_t i = 0; i < DEMO_NODES && ok; i++)
        ok = node_start(d, i) == 0;
    goal g = { .version_above = 0, .term_above = 0 };
    ok = ok && wait_settled(d, &d->steps[k], &g);
    step_end(d, k++);

    /* (b) a sixth node joins. */
    if (ok) {
        step_begin(d, k, "node-6 joins");
        g = (goal){ .version_above = d->steps[k - 1].map_version };
        ok = node_start(d, joiner) == 0 && wait_settled(d, &d->steps[k], &g);
        step_end(d, k++);
    }

    /* (c) graceful drain of a follower. */
    if (ok) {
        int victim = pick_follower(d, -1);
        static char name_c[96];
        snprintf(name_c, sizeof(name_c), "drain %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_c);
        ok = victim >= 0 && aether_member_drain(d->nodes[victim].m) == AETHER_OK &&
             wait_drained(d, (uint32_t)victim, &d->steps[k]);
        if (ok) {
            say(d, "+%llums %s is Left and owns nothing: stopping it\n",
                (unsigned long long)since_start_ms(d), d->nodes[victim].id);
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].left = true;
            g = (goal){ .version_above = d->steps[k - 1].map_version };
            ok = wait_settled(d, &d->steps[k], &g);
        }
        step_end(d, k++);
    }

    /* (d) crash a follower: no drain, its shards are re-owned after it is
     * declared failed. */
    if (ok) {
        int victim = pick_follower(d, -1);
        static char name_d[96];
        snprintf(name_d, sizeof(name_d), "crash follower %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_d);
        ok = victim >= 0;
        if (ok) {
            say(d, "+%llums crashing %s (serving %u)\n", (unsigned long long)since_start_ms(d),
                d->nodes[victim].id, d->nodes[victim].serving_count);
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].crashed = true;
            g = (goal){ .version_above = d->steps[k - 1].map_version };
            ok = wait_settled(d, &d->steps[k], &g);
        }
        step_end(d, k++);
    }

    /* (e) crash the leader: measure the failover. */
    if (ok) {
        int victim = current_leader(d);
        static char name_e[96];
        snprintf(name_e, sizeof(name_e), "crash leader %s", victim >= 0 ? d->nodes[victim].id : "?");
        step_begin(d, k, name_e);
        ok = victim >= 0;
        if (ok) {
            aether_member_view old;
            aether_member_view_get(d->nodes[victim].m, &old);
            say(d, "+%llums crashing the leader %s (term %llu, serving %u)\n",
                (unsigned long long)since_start_ms(d), d->nodes[victim].id,
                (unsigned long long)old.term, d->nodes[victim].serving_count);
            uint64_t t0 = now_ns();
            node_halt(d, (uint32_t)victim);
            d->nodes[victim].crashed = true;
            int next = -1;
            for (uint32_t t = 0; t < SETTLE_LIMIT_MS / FAILOVER_POLL_MS && next < 0 && stop_signal == 0; t++) {
                for (uint32_t i = 0; i < d->n_nodes && next < 0; i++) {
                    if (!d->nodes[i].live)
                        continue;
                    aether_member_view v;
                    aether_member_view_get(d->nodes[i].m, &v);
                    if (v.is_leader && v.term > old.term)
                        next = (int)i;
                }
                if (next < 0)
                    sleep_ms(FAILOVER_POLL_MS);
            }
            if (next >= 0) {
                failover_ms = (double)(now_ns() - t0) / 1e6;
                say(d, "+%llums %s acts as leader: failover %.0f ms\n",
                    (unsigned long long)since_start_ms(d), d->nodes[next].id, failover_ms);
            }
            g = (goal){ .version_above = d->steps[k - 1].map_version, .term_above = old.term };
            ok = next >= 0 && wait_settled(d, &d->steps[k], &g);
            if (next < 0)
                snprintf(d->steps[k].why, sizeof(d->steps[k].why), "no new leader within %u ms",
                         SETTLE_LIMIT_MS);
        }
        step_end(d, k++);
    }

    flush_quiet_batches(d, true);
    int leader = current_leader(d); /* views are read outside mu */
    pthread_mutex_lock(&d->mu);
    d->step = -1;
    bool pass = ok && k == DEMO_STEPS && d->violations == 0;
    /* The summary reads the tracking state: hold mu so late callbacks wait. */
    if (d->opt.json)
        print_summary_json(d, k, failover_ms, pass);
    else
        print_summary_text(d, k, failover_ms, leader, pass);
    fflush(stdout);
    pthread_mutex_unlock(&d->mu);
    return pass ? 0 : 1;
}

/* ---- command line ------------------------------------------------------------- */

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: aether-node --embedded [--nodes N] [--duration SECONDS] [--seed X]\n"
            "                   [--quiet] [--verbose] [PARAMETERS]\n"
            "       aether-node --embedded --scenario demo [--seed X] [--json] [PARAMETERS]\n"
            "       aether-node [--config FILE] --nats URL[,URL...] --node ID [--trace]\n"
            "                   [--duration SECONDS] [--seed X] [--quiet] [--verbose]\n"
            "                   [PARAMETERS]\n"
            "       aether-node [--config FILE] [PARAMETERS] --print-config\n"
            "\n"
            "Runs Aether cluster nodes. Embedded mode: N nodes (node-1..node-N) in this\n"
            "process, on a thread pool with the real clock, an in-process hub and\n"
            "in-memory lease/state stores. NATS mode: one node in this process, talking\n"
            "to the others through NATS (core NATS plus the JetStream KV buckets\n"
            "aether_<cluster>_lease and aether_<cluster>_state, created if missing).\n"
            "Every event is printed once, by the node that emitted it:\n"
            "\"+<ms since start>ms <node> <event>\"; in NATS mode also\n"
            "\"+<ms>ms <node> LEADER elected term=T\" and \"... LEADER lost ...\".\n"
            "Stops on SIGINT/SIGTERM or after --duration (NATS mode: drains first,\n"
            "bounded by handoff_timeout + 2 s). In NATS mode a node drained from outside\n"
            "(aetherctl drain) stops once the leader declares it Left, and exits 0.\n"
            "\n"
            "Configuration: every PARAMETER below comes from, lowest precedence first,\n"
            "its default, the --config FILE (or $AETHER_CONFIG; INI: key = value, sections\n"
            "[node], [cluster], [nats] where [nats] keys drop the nats_ prefix), the\n"
            "variable AETHER_<KEY> (AETHER_LEASE_TTL_MS=2000), and the flag --<key> with\n"
            "'-' for '_' (--lease-ttl-ms 2000). A value out of range, an unknown key or\n"
            "variable, or timings that cannot be safe (renew interval above ttl/3,\n"
            "failure timeout below two heartbeats, ...) are refused with the reason\n"
            "(exit 2). --print-config prints the resolved configuration as a file.\n"
            "\n"
            "options:\n"
            "  --embedded           run N nodes in this process\n"
            "  --nats URL[,URL...]  run one node against these NATS servers (exit 1 if\n"
            "                       none is reachable within nats_connect_timeout_ms)\n"
            "  --config FILE        read parameters from FILE (INI)\n"
            "  --print-config       print the resolved parameters and exit\n"
            "  --trace              with --nats: also print machine-readable lines\n"
            "                       \"T <CLOCK_MONOTONIC us> <node> WHAT ...\":\n"
            "                       MAP <version> <term> (map installed),\n"
            "                       LEADER <id|-> <term>, EVENT <Type> <text> (every\n"
            "                       event applied or emitted), SUPERSEDED <inc> <by>\n"
            "                       (a newer process of this id took over), ACQUIRE|\n"
            "                       RELEASE <shard> <map version> (starts or stops\n"
            "                       serving a shard), STATS k=v\n"
            "                       ... (at exit)\n"
            "  --nodes N            embedded: nodes to run, 1..%u (default %u)\n"
            "  --duration SECONDS   stop after this long (default: until a signal)\n"
            "  --seed X             seeds election jitter and lease nonces\n"
            "  --quiet              print no events, only the start and the final status\n"
            "  --verbose            one line per ShardAssigned (and, in the demo, per\n"
            "                       ShardMigrated and LeaseRenewed) instead of a count\n"
            "  --scenario demo      5 nodes; a join, a drain, a follower crash, a leader\n"
            "                       crash; then a summary (exit 1 on a violation or a step\n"
            "                       that does not settle within %u s)\n"
            "  --json               with --scenario: print the summary as JSON only\n"
            "  -h, --help           show this help\n"
            "  -V, --version        print the version (and the git revision it was built from)\n"
            "\n"
            "PARAMETERS (--shards is --shard-count, --nats is --nats-urls):\n",
            NODES_MAX, NODES_DEFAULT, SETTLE_LIMIT_MS / 1000u);
    const char *key, *kind, *help;
    for (size_t i = 0; aether_settings_param(i, &key, &kind, &help); i++) {
        char flag[FLAG_NAME_MAX];
        size_t c = 0;
        for (; key[c] != '\0' && c + 1 < sizeof(flag); c++)
            flag[c] = key[c] == '_' ? '-' : key[c];
        flag[c] = '\0';
        fprintf(out, "  --%s (%s)\n      %s\n", flag, kind, help);
    }
    fprintf(out, "\nExit status: 0 success, 1 run failure, 2 usage or configuration error,\n"
                 "including (--nats) a join the leader refused because shard_count,\n"
                 "replication or a cluster-wide timing differ from the cluster's\n"
                 "(\"join refused: shard_count 1024 differs from the cluster's 64\");\n"
                 "3 (--nats) superseded: a newer process of the same --node was admitted, so\n"
                 "this one stopped serving and exits without draining.\n");
}

static int usage(const char *fmt, const char *arg)
{
    char vis[256]; /* an argument is quoted with its control bytes escaped, never raw */
    fprintf(stderr, "aether-node: ");
    fprintf(stderr, fmt, aether_settings_printable(arg, vis, sizeof(vis)));
    fprintf(stderr, "\nRun 'aether-node --help' for usage.\n");
    return EXIT_USAGE;
}

/* A decimal integer in lo..hi, nothing else. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum { OPT_EMBEDDED = 256, OPT_NODES, OPT_DURATION, OPT_SEED, OPT_QUIET, OPT_VERBOSE, OPT_SCENARIO,
       OPT_JSON, OPT_TRACE, OPT_CONFIG, OPT_PRINT_CONFIG, OPT_SETTING /* + parameter index */ };


/* The long options: this tool's own, then one per settings parameter
 * (key with '-' for '_'; booleans take no value) plus the aliases --nats
 * (nats_urls) and --shards (shard_count). Built once. */
static struct option longopts[16 + SETTINGS_PARAMS_MAX + 2 + 1];
static char flag_names[SETTINGS_PARAMS_MAX + 2][FLAG_NAME_MAX];

static void build_longopts(void)
{
    static const struct option own[] = {
        { "embedded", no_argument, NULL, OPT_EMBEDDED },
        { "nodes", required_argument, NULL, OPT_NODES },
        { "duration", required_argument, NULL, OPT_DURATION },
        { "seed", required_argument, NULL, OPT_SEED },
        { "quiet", no_argument, NULL, OPT_QUIET },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "scenario", required_argument, NULL, OPT_SCENARIO },
        { "json", no_argument, NULL, OPT_JSON },
        { "trace", no_argument, NULL, OPT_TRACE },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        longopts[n++] = own[i];
    const char *key, *kind, *help;
    size_t k = 0;
    for (size_t i = 0; aether_settings_param(i, &key, &kind, &help); i++) {
        AETHER_ASSERT(i < SETTINGS_PARAMS_MAX && strlen(key) < FLAG_NAME_MAX);
        char *f = flag_names[k++];
        for (size_t c = 0; key[c] != '\0' || (f[c] = '\0', false); c++)
            f[c] = key[c] == '_' ? '-' : key[c];
        bool is_bool = strcmp(kind, "bool") == 0;
        longopts[n++] = (struct option){ f, is_bool ? no_argument : required_argument, NULL,
                                         OPT_SETTING + (int)i };
        if (strcmp(key, "nats_urls") == 0 || strcmp(key, "shard_count") == 0) {
            char *alias = flag_names[k++];
            snprintf(alias, FLAG_NAME_MAX, "%s", key[0] == 'n' ? "nats" : "shards");
            longopts[n++] = (struct option){ alias, required_argument, NULL, OPT_SETTING + (int)i };
        }
    }
    longopts[n] = (struct option){ NULL, 0, NULL, 0 };
}

/* 0 ok, EXIT_USAGE after printing why. Settings flags are only recorded
 * here (in order); resolve_settings applies them over file and env. */
static int parse_args(int argc, char **argv, options *o)
{
    build_longopts();
    memset(o, 0, sizeof(*o));
    o->nodes = NODES_DEFAULT;
    o->seed = 1;
    opterr = 0;
    for (int guard = 0; guard <= argc; guard++) {
        int optidx = 0;
        int c = getopt_long(argc, argv, ":hV", longopts, &optidx);
        if (c == -1)
            break;
        uint64_t v = 0;
        switch (c) {
        case OPT_EMBEDDED: o->embedded = true; break;
        case OPT_QUIET: o->quiet = true; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_JSON: o->json = true; break;
        case OPT_TRACE: o->trace = true; break;
        case OPT_PRINT_CONFIG: o->print_config = true; break;
        case OPT_CONFIG: o->config_path = optarg; break;
        case 'h': o->help = true; break;
        case 'V': o->version = true; break;
        case OPT_NODES:
            if (parse_u64(optarg, 1, NODES_MAX, &v) != 0)
                return usage("--nodes wants an integer 1..64, not '%s'", optarg);
            o->nodes = (uint32_t)v;
            o->nodes_set = true;
            break;
        case OPT_DURATION: {
            errno = 0;
            char *end = NULL;
            double s = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !isfinite(s) || s <= 0 ||
                s > DURATION_S_MAX)
                return usage("--duration wants a positive number of seconds, not '%s'", optarg);
            o->duration_s = s;
            o->duration_set = true;
            break;
        }
        case OPT_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &v) != 0)
                return usage("--seed wants a non-negative integer, not '%s'", optarg);
            o->seed = v;
            o->seed_set = true;
            break;
        case OPT_SCENARIO:
            if (strcmp(optarg, "demo") != 0)
                return usage("unknown scenario '%s' (known: demo)", optarg);
            o->scenario = "demo";
            break;
        case ':':
            return usage("option '%s' needs a value", argv[optind - 1]);
        default: {
            if (c < OPT_SETTING || o->n_flags == FLAGS_MAX)
                return usage("unknown option '%s'", argv[optind - 1]);
            const char *key, *kind, *help;
            if (!aether_settings_param((size_t)(c - OPT_SETTING), &key, &kind, &help))
                return usage("unknown option '%s'", argv[optind - 1]);
            o->flags[o->n_flags].key = key;
            o->flags[o->n_flags].name = longopts[optidx].name;
            o->flags[o->n_flags].value = optarg != NULL ? optarg : "true";
            o->n_flags++;
            if (strcmp(key, "replication") == 0)
                o->replication_set = true;
            if (strcmp(key, "nats_urls") == 0)
                o->nats_flag = true;
            break;
        }
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* Builds o->s: defaults < --config file (or AETHER_CONFIG) < AETHER_*
 * variables < flags. 0, or EXIT_USAGE after saying what was refused. */
static int resolve_settings(options *o)
{
    static const char *const not_parameters[] = {
        "AETHER_CONFIG", "AETHER_NATS_SERVER", "AETHER_KEEP_LOGS", "AETHER_SIM_SEED", "AETHER_SIM_SEEDS",
        "AETHER_SIM_TRACE", NULL,
    };
    aether_settings_defaults(&o->s);
    aether_err err = { 0 };
    const char *path = o->config_path != NULL ? o->config_path : getenv("AETHER_CONFIG");
    if (path != NULL && path[0] != '\0' && aether_settings_load_file(&o->s, path, &err) != AETHER_OK)
        return usage("%s", err.msg);
    if (aether_settings_load_env(&o->s, environ, not_parameters, &err) != AETHER_OK)
        return usage("%s", err.msg);
    for (uint32_t i = 0; i < o->n_flags; i++) {
        char source[96], var[96];
        snprintf(source, sizeof(source), "flag --%s", o->flags[i].name);
        size_t k = (size_t)snprintf(var, sizeof(var), "AETHER_");
        for (const char *c = o->flags[i].key; *c != '\0' && k + 1 < sizeof(var); c++)
            var[k++] = (*c >= 'a' && *c <= 'z') ? (char)(*c - 'a' + 'A') : *c;
        var[k] = '\0';
        const char *env = getenv(var);
        if (env != NULL && strcmp(env, o->flags[i].value) != 0)
            AETHER_INFO("aether-node", "flag --%s overrides %s", o->flags[i].name, var);
        if (aether_settings_set(&o->s, o->flags[i].key, o->flags[i].value, source, &err) != AETHER_OK)
            return usage("%s", err.msg);
    }
    return 0;
}

/* The mode and the combinations of this tool's own flags. */
static int check_mode(options *o)
{
    o->nats_mode = !o->embedded && o->s.nats.urls[0] != '\0';
    if (o->embedded && o->nats_flag)
        return usage("%s--embedded and --nats exclude each other", "");
    if (!o->embedded && !o->nats_mode)
        return usage("%schoose a mode: --embedded, or --nats URL (or nats_urls in --config, or AETHER_NATS_URLS)",
                     "");
    if (o->quiet && o->verbose)
        return usage("%s--quiet and --verbose contradict each other", "");
    if (o->json && o->scenario == NULL)
        return usage("%s--json goes with --scenario", "");
    aether_err err = { 0 };
    if (o->nats_mode) {
        if (o->nodes_set || o->scenario != NULL)
            return usage("%s--nodes and --scenario go with --embedded", "");
        if (aether_settings_check(&o->s, true, &err) != AETHER_OK) {
            fprintf(stderr, "aether-node: configuration refused: %s\n", err.msg);
            return EXIT_USAGE;
        }
        return 0;
    }
    if (o->trace)
        return usage("%s--trace goes with --nats", "");
    if (o->s.nats.urls[0] != '\0' || o->s.node.node.len > 0)
        AETHER_INFO("aether-node", "embedded mode: nats_urls and node are not used");
    if (o->s.node.replication > o->nodes && o->scenario == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "replication %u needs at least %u nodes (--nodes %u)", o->s.node.replication,
                 o->s.node.replication, o->nodes);
        return usage("%s", msg);
    }
    if (o->scenario != NULL && (o->nodes_set || o->duration_set || o->replication_set))
        return usage("%s--scenario demo fixes its nodes, replication and duration", "");
    /* The check needs a node id; embedded nodes get node-1..node-N. */
    aether_config probe = o->s.node;
    (void)aether_node_id_from_cstr("node-1", &probe.node, NULL);
    if (aether_config_validate(&probe, &err) != AETHER_OK) {
        fprintf(stderr, "aether-node: configuration refused: %s\n", err.msg);
        return EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (o.help) {
        print_help(stdout);
        return 0;
    }
    if (o.version) {
        printf("aether-node %s%s%s%s\n", AETHER_VERSION_STRING, AETHER_GIT_REVISION[0] ? " (git " : "",
               AETHER_GIT_REVISION, AETHER_GIT_REVISION[0] ? ")" : "");
        return 0;
    }
    aether_log_init_from_env();
    if ((rc = resolve_settings(&o)) != 0 || (rc = check_mode(&o)) != 0)
        return rc;
    aether_log_level level;
    if (aether_log_level_parse(o.s.log_level, &level))
        aether_log_set_level(level);
    aether_log_set_format(strcmp(o.s.log_format, "json") == 0 ? AETHER_LOG_JSON : AETHER_LOG_TEXT);
    if (o.nats_mode)
        aether_log_set_node(o.s.node.node.str); /* one node per process: every line names it */
    if (o.print_config) {
        aether_settings_describe(&o.s, stdout);
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_signals();

    node_run *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        fprintf(stderr, "aether-node: out of memory\n");
        return 1;
    }
    uint32_t n_nodes = o.nats_mode ? 1u : o.scenario != NULL ? DEMO_SLOTS : o.nodes;
    if (o.nats_mode && !o.seed_set) {
        /* Distinct election jitter per node and run unless --seed says. */
        uint64_t h = 1469598103934665603ull;
        for (const char *p = o.s.node.node.str; *p != '\0'; p++)
            h = (h ^ (uint8_t)*p) * 1099511628211ull;
        o.seed = h ^ now_ns() ^ ((uint64_t)getpid() << 32);
    }
    int init = daemon_init(d, &o, n_nodes);
    if (init == 1)
        rc = 0; /* stopped while waiting for JetStream: never joined */
    else if (init == EXIT_USAGE)
        rc = EXIT_USAGE; /* a configuration the cluster's buckets refuse (said why) */
    else if (init != 0)
        rc = 1;
    else
        rc = o.nats_mode ? run_nats(d) : o.scenario != NULL ? run_demo(d) : run_daemon(d);
    daemon_fini(d);
    free(d);
    if (o.nats_mode)
        nats_Close(); /* the very end: every connection is destroyed */
    return rc;
}
