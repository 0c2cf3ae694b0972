/*
 * aether-sim: deterministic simulation of a whole Aether cluster (tools
 * layer), in the spirit of FoundationDB's simulator and TigerBeetle's VOPR.
 *
 *   aether-sim --seed S --nodes N --duration SIM_SECONDS [fault options]
 *   aether-sim --soak --seed S          (N, shards, faults... derived from S)
 *
 * N members run the real domain code (actors/member.h) on the step executor
 * (engine/exec_step.h): one thread, a simulated clock, a seeded choice of
 * the next actor. Around them:
 *  - the network is an in-process hub in simulated-network mode
 *    (transport/inproc.h): per-delivery delay, loss, duplication and
 *    reordering drawn from a seed, symmetric and one-way partitions between
 *    groups, isolated nodes;
 *  - the lease and state stores are in-memory JetStream-like buckets
 *    (actors/kv_store.h) that every node reaches through its own proxy, which
 *    injects the store faults: unavailable (store outage, or this node cut
 *    off from it), unknown outcome (applied or not), slow (the call takes
 *    simulated time: the whole simulated world waits, as it would for a
 *    blocking call on one thread), and late (reported unknown, applied some
 *    time later, like a publish that was still in flight at the timeout);
 *  - every node reads its own drifting clock (engine/clock.h), within the
 *    bound the configuration allows (lease_safety_margin_ms / lease_ttl_ms
 *    and fence_margin_ms / failure_timeout_ms);
 *  - a fault schedule drawn from the seed crashes and restarts nodes (new
 *    incarnation), pauses them (longer than the ttl too), partitions them,
 *    cuts them off the stores, joins new nodes and drains others; on
 *    request (--faults ...,twin: not part of --all-faults or --soak, whose
 *    seeds keep their schedules) it starts a second process of a live node
 *    id (a restarted pod overlapping the old one). A process that learns it
 *    is superseded exits, as aether-node does; until then the oracle counts
 *    its shards like anyone's;
 *  - on request (--extra-faults forge,adversary), someone who can publish on
 *    the cluster's subjects: the present leader impersonated (forge), or an
 *    adversary that hears the network and sends forged, replayed and
 *    malformed events, maps, heartbeats and commands through the product's
 *    decoders (tools/sim/sim_adversary.h, tools/sim/adversary.h).
 * Options and fault kinds: tools/sim/sim_opts.h.
 *
 * DESIGN
 *  1. Boot: every node starts at t=0; the cluster must settle (see 4)
 *     within --settle seconds.
 *  2. Chaos for --duration simulated seconds. After every executor step
 *     the oracle checks, with the same functions the product uses
 *     (actors/invariants.h) where they apply:
 *       I1  at most one leader per term (a registry of every LeaderElected)
 *           and at most one node that may act as leader at any instant
 *           (paused nodes included: they would act the moment they resume);
 *       single ownership: no shard held by two nodes that both may serve
 *           (checked when a node acquires, and whenever a node that holds
 *           shards regains the right to serve);
 *       I2/I3 of every map a leader publishes, when it publishes it (the
 *           hub's map tap), against the topology it was computed from (the
 *           leader's, or the stored one at a take-over);
 *       I5  a leader that is not Active in its own topology while another
 *           Active node exists for longer than failure_timeout_ms (not
 *           counting time it is paused or isolated, cannot reach the state
 *           store, or a slow store call stalled the world);
 *       and: each node's map version and term never go back, no node
 *           installs a map of an older term than one it installed, each
 *           leader numbers its events 1, 2, 3... per term.
 *     With more than 64 nodes the checks that scan every node run every
 *     simulated millisecond instead of every step (the per-node view checks
 *     every 10 ms).
 *  3. Heal: the network is clean again (delay only), partitions and
 *     isolations end, paused nodes resume, store faults stop, about half of
 *     the crashed nodes restart.
 *  4. Liveness: within bounds there must be one leader, Active in its own
 *     topology; every shard stable with an Active live primary that serves
 *     it, nobody else serving it, min(R, Active) owners; every live node on
 *     the leader's map version and allowed to serve; every drained node Left.
 *  5. Balance, then I4: the map must become perfectly balanced (once a
 *     brake has run out); then the leader is cut off from the stores until
 *     it loses the lease; once a new leader has settled, no shard may have
 *     moved.
 * On a violation it prints the seed, the parameters, a replay command and
 * the last --tail lines of the trace (faults, every event the leaders and
 * nodes emit except lease renewals, domain warnings), and exits 1. The same
 * arguments give the same output byte for byte: nothing in it comes from
 * the real clock, addresses or hash order.
 *
 * Threading: one thread (the step executor's).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adversary.h"
#include "config.h"
#include "exec_step.h"
#include "inproc.h"
#include "invariants.h"
#include "kv_store.h"
#include "log.h"
#include "mailbox.h"
#include "member.h"
#include "shardmap.h"
#include "sim_adversary.h"
#include "sim_opts.h"
#include "strategy.h"
#include "topology_json.h"

#define SIM_LINE_MAX 480u
#define SIM_LATE_MAX 4096u          /* late store writes in flight */
#define SIM_SCAN_EVERY_STEP_MAX 64u /* nodes up to which every check runs every step */
#define SIM_KV_LOSS_GAP_MS 10000u   /* kv-loss: at most one loss per this (without
                                       kv-loss-both, never both buckets) */
#define MS AETHER_NS_PER_MS
#define SEC AETHER_NS_PER_S

#define SIM_MISFITS_MAX 4u /* misfit joiners per run */

#define F_KV_LOSS_WEIGHT 2u

#define F_TWIN_WEIGHT 2u

/* Relative weights of the scheduled events. */
static const uint32_t fault_weight[F_EVENT_COUNT_] = {
    [F_CRASH] = 4,   [F_PAUSE] = 3,  [F_PARTITION] = 2, [F_ONEWAY] = 2, [F_ISOLATE] = 2,
    [F_KV_OUTAGE] = 2, [F_KV_CUT] = 2, [F_JOIN] = 2,    [F_DRAIN] = 2,  [F_NET_BURST] = 2,
};

/* ---- state ------------------------------------------------------------------ */

struct sim;
struct snode;

/* A node's handle on one store: forwards to the shared bucket, injecting
 * that node's faults. */
typedef struct kvpx {
    aether_kv base; /* first */
    struct sim *sim;
    struct snode *node;
    int store;      /* 0 lease, 1 state */
} kvpx;

typedef struct snode {
    struct sim *sim;
    uint32_t idx;
    char id[24];
    aether_member *m;        /* NULL when down */
    aether_transport *t;
    aether_drift_clock clock;
    kvpx px[2];
    uint32_t runs;
    bool paused;
    bool drain_requested;
    bool left;               /* drained and stopped */
    bool kv_cut;
    uint8_t *serving;        /* [shards]: acquired and not released */
    uint32_t serving_count;
    bool may_serve_last;
    uint64_t last_map_version, last_map_term, last_term;
    uint64_t own_term, own_seq;
    uint64_t told_term;      /* highest term on_leader_changed named (this run) */
    /* The generation each per-node check above was judged in: terms and
     * map versions are compared within one (actors/lease.h GENERATION). */
    uint64_t told_gen, own_gen, map_gen, view_gen, map_view_gen;
    uint64_t i5_bad_since_ns;
    bool ever_led;
    bool listed_led;         /* in sim.led (any run) */
    uint64_t restart_at_ns, resume_at_ns, unisolate_at_ns, kv_uncut_at_ns;
    bool isolated;
    uint32_t misfit;         /* 0, or a misfit joiner (F_MISFIT): its shard_count / replication
                                differ from the cluster's; it must be refused, never serve,
                                never be on a map, and exits once refused */
    uint32_t misfit_shards, misfit_replication;
    bool superseded;         /* a newer process of its id took over: it exited for good */
} snode;

typedef struct late_write {
    uint64_t at_ns;
    int store;
    int op;                  /* 0 create, 1 update, 2 delete */
    char key[AETHER_KV_KEY_LEN_MAX + 1];
    void *value;
    size_t len;
    uint64_t expected;
} late_write;

typedef struct sim {
    opts o;
    aether_config base;
    aether_executor *ex;
    aether_sim_clock *clock;
    aether_rng frng;  /* fault schedule */
    aether_rng krng;  /* store faults */
    aether_rng mrng;  /* member seeds and clocks */
    aether_rng xrng;  /* opt-in fault kinds (F_MISFIT) */
    uint64_t next_misfit_ns;
    uint32_t misfits;
    aether_rng grng;  /* forgeries (F_FORGE): their own schedule */
    uint64_t forge_at_ns;      /* next forgery */
    aether_rng arng;  /* the adversary's schedule (F_ADVERSARY) */
    uint64_t adv_at_ns;        /* its next burst */
    sim_adversary *adv;        /* F_FORGE and F_ADVERSARY's hub endpoints */
    aether_inproc_hub *hub;
    aether_kv *kv[2];
    snode *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *led;     /* indices of nodes that ever won an election */
    uint32_t n_led;
    uint16_t *holders; /* [shards]: nodes holding the shard */
    aether_oracle_view *views; /* [cap_nodes]: scratch for the oracle */
    aether_term_registry terms;
    char (*ring)[SIM_LINE_MAX];
    uint32_t ring_n, ring_head;
    bool failed;
    char why[600];
    uint64_t steps;
    uint64_t injected[F_COUNT_];
    uint64_t elections, moves, maps_checked;
    bool chaos;
    bool i4_watch;     /* count ShardMigrated during the I4 check */
    uint64_t i4_moves;
    uint64_t next_fault_ns, next_ms_ns;
    uint64_t partition_until_ns, burst_until_ns;
    uint64_t kv_outage_until_ns[2];
    uint64_t kv_loss_last_ns;   /* the last kv-loss injected; 0 = none */
    char *aba_map;              /* kv-aba: the lost generation's stored map, to write back */
    uint64_t aba_at_ns;         /* when (0 = none pending) */
    uint32_t aba_tries;         /* attempts so far (the key may not be stored yet) */
    double kv_unknown, kv_slow, kv_late; /* current */
    late_write *late;
    uint32_t n_late;
    int64_t drift_ppm;
    uint64_t last_stall_ns; /* end of the last slow store call (the world waited) */
    bool scan_every_step;
    aether_inproc_net_faults calm, rough;
} sim;

/* ---- trace ------------------------------------------------------------------ */

static uint64_t now_ns(const sim *s) { return s->clock->now_ns; }

static void trace_line(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace_line(sim *s, const char *fmt, ...)
{
    char *line = s->ring[s->ring_head];
    uint64_t t = now_ns(s) - SEC; /* the simulation starts at 1 s */
    int n = snprintf(line, SIM_LINE_MAX, "%6" PRIu64 ".%03" PRIu64 " ", t / MS, (t % MS) / 1000u);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, SIM_LINE_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    s->ring_head = (s->ring_head + 1) % s->o.tail;
    if (s->ring_n < s->o.tail)
        s->ring_n++;
    if (s->o.trace)
        printf("%s\n", line);
}

static void fail(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    trace_line(s, "VIOLATION %s", s->why);
}

static void log_sink(void *arg, aether_log_level level, const char *line, int len)
{
    (void)level;
    sim *s = arg;
    trace_line(s, "log %.*s", len, line);
}

/* ---- nodes ------------------------------------------------------------------ */

/* The process of node id `id`: the running one if any (a twin of a live id
 * runs beside it until one is superseded), else the first slot of that id. */
static snode *node_of(sim *s, const char *id)
{
    snode *first = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (strcmp(s->nodes[i].id, id) == 0) {
            if (s->nodes[i].m != NULL)
                return &s->nodes[i];
            if (first == NULL)
                first = &s->nodes[i];
        }
    return first;
}

/* Another slot of n's node id runs a process (F_TWIN). */
static bool id_running_elsewhere(const sim *s, const snode *n)
{
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (&s->nodes[i] != n && s->nodes[i].m != NULL && strcmp(s->nodes[i].id, n->id) == 0)
            return true;
    return false;
}

static bool may_serve(const snode *n) { return n->m != NULL && aether_member_may_serve(n->m); }

/* Another node that may serve and holds shard; NULL if none. */
static snode *co_holder(sim *s, const snode *n, uint32_t shard)
{
    if (s->holders[shard] < 2)
        return NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *o = &s->nodes[i];
        if (o != n && o->m != NULL && o->serving[shard] && may_serve(o))
            return o;
    }
    return NULL;
}

static void on_acquired(void *arg, uint32_t shard, uint64_t version)
{
    snode *n = arg;
    sim *s = n->sim;
    if (n->misfit) { /* admission must keep it out of every map */
        fail(s, "misfit %s (%u shards, replication %u) acquired shard %u (map v%" PRIu64 ")", n->id,
             n->misfit_shards, n->misfit_replication, shard, version);
        return;
    }
    if (n->serving[shard])
        return;
    n->serving[shard] = 1;
    n->serving_count++;
    s->holders[shard]++;
    snode *o = co_holder(s, n, shard);
    if (o != NULL)
        fail(s, "single ownership: %s%s acquired shard %u (map v%" PRIu64 ") while %s%s still serves it",
             n->id, strcmp(n->id, o->id) == 0 ? " (its twin process)" : "", shard, version, o->id,
             strcmp(n->id, o->id) == 0 ? " (the other process)" : "");
}

static void on_released(void *arg, uint32_t shard, uint64_t version)
{
    snode *n = arg;
    (void)version;
    if (n->misfit || !n->serving[shard])
        return;
    n->serving[shard] = 0;
    n->serving_count--;
    n->sim->holders[shard]--;
}

static void drop_holdings(snode *n)
{
    for (uint32_t sh = 0; sh < n->sim->o.shards && n->serving_count > 0; sh++)
        if (n->serving[sh]) {
            n->serving[sh] = 0;
            n->serving_count--;
            n->sim->holders[sh]--;
        }
}

static void on_event(void *arg, const aether_event *e)
{
    snode *n = arg;
    sim *s = n->sim;
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        aether_err err;
        if (aether_term_registry_record(&s->terms, e->generation, e->data.leader_elected.term,
                                        &e->data.leader_elected.leader, &err) != AETHER_OK)
            fail(s, "%s", err.msg);
    }
    if (strcmp(e->node.str, n->id) != 0) {
        /* DESIGN 2.4, as the embedder sees it: once told of term T, it is
         * never handed another node's change of an older term (member.h). */
        if (e->type != AETHER_EVT_LEADERSHIP_LOST && e->generation == n->told_gen &&
            e->term < n->told_term)
            fail(s, "%s applied %s of term %" PRIu64 " after it was told of term %" PRIu64, n->id,
                 aether_event_type_name(e->type), e->term, n->told_term);
        return; /* other nodes' events are traced by their emitter */
    }
    if (e->seq != 0) {
        if (e->generation != n->own_gen) { /* terms start again in a new generation */
            n->own_gen = e->generation;
            n->own_term = n->own_seq = 0;
        }
        uint64_t want = e->term == n->own_term ? n->own_seq + 1 : 1;
        if (e->term < n->own_term || e->seq != want)
            fail(s, "%s emitted %s term %" PRIu64 " seq %" PRIu64 ", expected term >= %" PRIu64
                    " seq %" PRIu64,
                 n->id, aether_event_type_name(e->type), e->term, e->seq, n->own_term, want);
        n->own_term = e->term;
        n->own_seq = e->seq;
    }
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        s->elections++;
        if (!n->listed_led && s->n_led < s->cap_nodes) {
            s->led[s->n_led++] = n->idx; /* candidates for the per-step I1 check */
            n->listed_led = true;
        }
        n->ever_led = true;
    }
    if (e->type == AETHER_EVT_SHARD_MIGRATED) {
        s->moves++;
        if (s->i4_watch)
            s->i4_moves++;
    }
    if (e->type == AETHER_EVT_LEASE_RENEWED)
        return;
    char line[400];
    aether_event_format(e, line, sizeof(line));
    trace_line(s, "%s", line);
}

/* I2/I3 of every map a leader publishes, at the moment it publishes it,
 * against the topology it was computed from: the leader's own, or (at a
 * take-over) the stored one. Called by the hub's map tap. */
static void on_map_published(void *arg, const aether_node_id *from, const aether_shardmap *map)
{
    sim *s = arg;
    snode *n = node_of(s, from->str);
    if (n == NULL || n->m == NULL)
        return;
    /* Admission: no map of another shape, none naming a misfit joiner. */
    if (map->shard_count != s->base.shard_count || map->replication != s->base.replication) {
        fail(s, "%s published map v%" PRIu64 " with %u shards and replication %u (the cluster: %u, %u)",
             n->id, map->version, map->shard_count, map->replication, s->base.shard_count,
             s->base.replication);
        return;
    }
    aether_topology topo;
    if (aether_member_topology(n->m, &topo) != AETHER_OK)
        return;
    for (uint32_t i = 0; i < map->node_count; i++) {
        snode *o = node_of(s, map->nodes[i].str);
        if (o == NULL || !o->misfit)
            continue;
        /* The id, admitted at another address, is another process's: the
         * adversary's JoinCluster for a misfit's id, with the cluster's
         * shape (without a secret, a node like any other; seed 300032 of
         * --extra-faults misfit,twin,kv-loss,forge,adversary
         * --adversary-without none). The misfit process itself must still
         * never serve (on_acquired). */
        const aether_node_info *rec = aether_topology_find(&topo, &map->nodes[i]);
        if (rec != NULL && strcmp(rec->address, o->id) != 0)
            continue;
        fail(s, "%s published map v%" PRIu64 " naming misfit %s (%u shards, replication %u)", n->id,
             map->version, o->id, o->misfit_shards, o->misfit_replication);
        aether_topology_fini(&topo);
        return;
    }
    aether_err err = { 0 }, err2 = { 0 };
    s->maps_checked++;
    aether_status st = aether_invariants_check_map(map, &topo, &err);
    if (st == AETHER_ESTATE) {
        aether_kv_entry e;
        aether_topology stored;
        aether_topology_init(&stored, aether_member_id(n->m));
        if (aether_kv_get(s->kv[1], "topology", &e, NULL) == AETHER_OK) {
            if (aether_topology_json_decode((const char *)e.value, e.value_len, &stored, NULL) ==
                    AETHER_OK &&
                aether_invariants_check_map(map, &stored, &err2) == AETHER_OK)
                st = AETHER_OK;
            aether_kv_entry_fini(&e);
        }
        aether_topology_fini(&stored);
    }
    aether_topology_fini(&topo);
    if (st == AETHER_ESTATE)
        fail(s, "%s published map v%" PRIu64 ": %s", n->id, map->version, err.msg);
}

static void on_leader_changed(void *arg, const aether_node_id *leader, aether_term term)
{
    snode *n = arg;
    (void)leader;
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.generation != n->told_gen) {
        n->told_gen = v.generation;
        n->told_term = 0;
    }
    if (term > n->told_term)
        n->told_term = term;
}

static void on_map_installed(void *arg, uint64_t version, aether_term term)
{
    snode *n = arg;
    sim *s = n->sim;
    (void)version;
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.generation != n->map_gen) {
        n->map_gen = v.generation;
        n->last_map_term = 0;
    }
    if (term < n->last_map_term)
        fail(s, "%s installed map v%" PRIu64 " of term %" PRIu64 " after one of term %" PRIu64,
             n->id, version, term, n->last_map_term);
    n->last_map_term = term;
}

static const aether_kv_ops kvpx_ops;

static void node_start(sim *s, snode *n)
{
    AETHER_ASSERT(n->m == NULL);
    aether_config cfg = s->base;
    AETHER_ASSERT(aether_node_id_from_cstr(n->id, &cfg.node, NULL) == AETHER_OK);
    if (n->misfit) {
        cfg.shard_count = n->misfit_shards;
        cfg.replication = n->misfit_replication;
    }
    int32_t rate = 0;
    int64_t offset = 0, wall = 0;
    if (s->drift_ppm > 0) {
        rate = (int32_t)aether_rng_range(&s->mrng, 0, 2 * (uint64_t)s->drift_ppm) - (int32_t)s->drift_ppm;
        offset = (int64_t)aether_rng_below(&s->mrng, 1000 * SEC);
        wall = (int64_t)aether_rng_below(&s->mrng, 4001) - 2000;
    }
    aether_drift_clock_init(&n->clock, &s->clock->base, offset, rate, wall);
    for (int k = 0; k < 2; k++) {
        n->px[k].base.ops = &kvpx_ops;
        n->px[k].sim = s;
        n->px[k].node = n;
        n->px[k].store = k;
    }
    if (aether_inproc_endpoint_create(s->hub, &cfg.node, &n->t) != AETHER_OK) {
        fail(s, "%s: no endpoint", n->id);
        return;
    }
    aether_member_deps deps = { .executor = s->ex, .transport = n->t,
                                .lease_store = &n->px[0].base, .state_store = &n->px[1].base,
                                .seed = aether_rng_next(&s->mrng), .clock = &n->clock.base };
    aether_member_callbacks cb = { .on_shard_acquired = on_acquired,
                                   .on_shard_released = on_released,
                                   .on_event = on_event,
                                   .on_leader_changed = on_leader_changed,
                                   .on_map_installed = on_map_installed,
                                   .arg = n };
    aether_err err;
    n->runs++;
    n->paused = n->left = n->drain_requested = n->kv_cut = n->isolated = false;
    n->may_serve_last = false;
    n->last_map_version = n->last_map_term = n->last_term = 0;
    n->own_term = n->own_seq = 0;
    n->told_term = 0;
    n->told_gen = n->own_gen = n->map_gen = n->view_gen = n->map_view_gen = 0;
    n->i5_bad_since_ns = 0;
    n->ever_led = false;
    n->restart_at_ns = n->resume_at_ns = n->unisolate_at_ns = n->kv_uncut_at_ns = 0;
    trace_line(s, "FAULT start %s (run %u, clock %+" PRId32 " ppm, wall %+" PRId64 " ms)", n->id,
               n->runs, rate, wall);
    if (aether_member_start(&cfg, &deps, &cb, &n->m, &err) != AETHER_OK) {
        aether_transport_destroy(n->t);
        n->t = NULL;
        fail(s, "%s: start: %s", n->id, err.msg);
    }
}

static void node_stop(sim *s, snode *n, const char *why)
{
    if (n->m == NULL)
        return;
    trace_line(s, "FAULT %s %s", why, n->id);
    if (n->paused) {
        aether_actor *a[3];
        aether_member_actors(n->m, a);
        for (int i = 0; i < 3; i++)
            aether_step_freeze(s->ex, a[i], false);
    }
    aether_member_destroy(n->m);
    aether_transport_destroy(n->t);
    n->m = NULL;
    n->t = NULL;
    drop_holdings(n);
    /* The process is gone and so is what cut it off. */
    aether_node_id nid;
    if (n->isolated && aether_node_id_from_cstr(n->id, &nid, NULL) == AETHER_OK)
        aether_inproc_set_isolated(s->hub, &nid, false);
    n->paused = n->isolated = n->kv_cut = false;
}

static void node_pause(sim *s, snode *n, bool on)
{
    if (n->m == NULL || n->paused == on)
        return;
    trace_line(s, "FAULT %s %s", on ? "pause" : "resume", n->id);
    aether_actor *a[3];
    aether_member_actors(n->m, a);
    for (int i = 0; i < 3; i++)
        aether_step_freeze(s->ex, a[i], on);
    /* A stopped process's connection stops too: nothing reaches it. */
    aether_node_id nid;
    if (aether_node_id_from_cstr(n->id, &nid, NULL) == AETHER_OK && !n->isolated)
        aether_inproc_set_isolated(s->hub, &nid, on);
    n->paused = on;
}

static void node_isolate(sim *s, snode *n, bool on)
{
    if (n->m == NULL || n->isolated == on)
        return;
    trace_line(s, "FAULT %s %s", on ? "isolate" : "reconnect", n->id);
    aether_node_id nid;
    if (aether_node_id_from_cstr(n->id, &nid, NULL) == AETHER_OK && !n->paused)
        aether_inproc_set_isolated(s->hub, &nid, on);
    n->isolated = on;
}

/* ---- the stores, as each node reaches them ---------------------------------- */

static bool kv_down(kvpx *p)
{
    sim *s = p->sim;
    return p->node->kv_cut || now_ns(s) < s->kv_outage_until_ns[p->store];
}

static bool draw(sim *s, double p)
{
    return p > 0 && (double)aether_rng_below(&s->krng, 1000000u) < p * 1e6;
}

/* A slow call: the whole simulated world waits for it. */
static void maybe_slow(kvpx *p)
{
    sim *s = p->sim;
    if (!draw(s, s->kv_slow))
        return;
    uint64_t d = aether_rng_range(&s->krng, 1, s->base.lease_ttl_ms / 2) * MS;
    aether_sim_clock_advance_ns(s->clock, d);
    s->last_stall_ns = now_ns(s);
}

typedef enum px_fault { PX_NONE, PX_UNAVAILABLE, PX_UNKNOWN_APPLIED, PX_UNKNOWN_LOST, PX_LATE } px_fault;

static px_fault pick(kvpx *p, bool write)
{
    sim *s = p->sim;
    if (kv_down(p))
        return PX_UNAVAILABLE;
    if (draw(s, s->kv_unknown))
        return aether_rng_below(&s->krng, 2) ? PX_UNKNOWN_APPLIED : PX_UNKNOWN_LOST;
    if (write && draw(s, s->kv_late))
        return PX_LATE;
    return PX_NONE;
}

static aether_status px_status(px_fault f, aether_err *err)
{
    if (f == PX_UNAVAILABLE)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "simulated: store unreachable");
    return aether_err_set(err, AETHER_EUNKNOWN, "simulated: timed out, outcome unknown");
}

static void late_add(kvpx *p, int op, const char *key, const void *value, size_t len,
                     uint64_t expected)
{
    sim *s = p->sim;
    if (s->n_late == SIM_LATE_MAX)
        return; /* lost instead */
    late_write *w = &s->late[s->n_late];
    memset(w, 0, sizeof(*w));
    w->value = len ? malloc(len) : NULL;
    if (len && w->value == NULL)
        return;
    if (len)
        memcpy(w->value, value, len);
    w->len = len;
    w->at_ns = now_ns(s) + aether_rng_range(&s->krng, 10, 2 * s->base.lease_ttl_ms) * MS;
    w->store = p->store;
    w->op = op;
    snprintf(w->key, sizeof(w->key), "%s", key);
    w->expected = expected;
    s->n_late++;
}

static aether_status px_write(kvpx *p, int op, const char *key, const void *value, size_t len,
                              uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    sim *s = p->sim;
    *rev_out = 0;
    px_fault f = pick(p, true);
    if (f == PX_UNAVAILABLE || f == PX_UNKNOWN_LOST)
        return px_status(f, err);
    if (f == PX_LATE) {
        late_add(p, op, key, value, len, expected);
        return px_status(f, err);
    }
    maybe_slow(p);
    aether_status st;
    aether_kv *kv = s->kv[p->store];
    if (op == 0)
        st = aether_kv_create(kv, key, value, len, rev_out, err);
    else if (op == 1)
        st = aether_kv_update(kv, key, value, len, expected, rev_out, err);
    else
        st = aether_kv_delete(kv, key, expected, rev_out, err);
    maybe_slow(p);
    if (f == PX_UNKNOWN_APPLIED) {
        *rev_out = 0;
        return px_status(f, err);
    }
    return st;
}

static kvpx *as_px(aether_kv *kv) { return (kvpx *)kv; }

static aether_status px_create(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t *rev_out, aether_err *err)
{
    return px_write(as_px(kv), 0, key, value, len, 0, rev_out, err);
}

static aether_status px_update(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    return px_write(as_px(kv), 1, key, value, len, expected, rev_out, err);
}

static aether_status px_del(aether_kv *kv, const char *key, uint64_t expected, uint64_t *rev_out,
                            aether_err *err)
{
    return px_write(as_px(kv), 2, key, NULL, 0, expected, rev_out, err);
}

static aether_status px_get(aether_kv *kv, const char *key, aether_kv_entry *out, aether_err *err)
{
    kvpx *p = as_px(kv);
    px_fault f = pick(p, false);
    if (f != PX_NONE)
        return px_status(f == PX_UNAVAILABLE ? f : PX_UNKNOWN_LOST, err);
    maybe_slow(p);
    aether_status st = aether_kv_get(p->sim->kv[p->store], key, out, err);
    maybe_slow(p);
    return st;
}

static aether_status px_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn, void *arg,
                              aether_kv_watcher **out, aether_err *err)
{
    kvpx *p = as_px(kv);
    return aether_kv_watch(p->sim->kv[p->store], pattern, fn, arg, out, err);
}

static void px_unwatch(aether_kv *kv, aether_kv_watcher *w)
{
    kvpx *p = as_px(kv);
    aether_kv_unwatch(p->sim->kv[p->store], w);
}

static uint64_t px_ttl_ms(aether_kv *kv)
{
    kvpx *p = as_px(kv);
    return aether_kv_ttl_ms(p->sim->kv[p->store]);
}

static void px_destroy(aether_kv *kv) { (void)kv; /* embedded in its node */ }

static const aether_kv_ops kvpx_ops = {
    .create = px_create,
    .update = px_update,
    .del = px_del,
    .purge = NULL,
    .get = px_get,
    .watch = px_watch,
    .unwatch = px_unwatch,
    .ttl_ms = px_ttl_ms,
    .destroy = px_destroy,
};

static void late_apply_due(sim *s)
{
    for (uint32_t i = 0; i < s->n_late;) {
        late_write *w = &s->late[i];
        if (w->at_ns > now_ns(s)) {
            i++;
            continue;
        }
        uint64_t rev = 0;
        aether_kv *kv = s->kv[w->store];
        aether_status st = w->op == 0   ? aether_kv_create(kv, w->key, w->value, w->len, &rev, NULL)
                           : w->op == 1 ? aether_kv_update(kv, w->key, w->value, w->len, w->expected,
                                                           &rev, NULL)
                                        : aether_kv_delete(kv, w->key, w->expected, &rev, NULL);
        trace_line(s, "FAULT late %s of %s/%s applied: %s", w->op == 0 ? "create" : w->op == 1 ? "update" : "delete",
                   w->store ? "state" : "lease", w->key, aether_status_str(st));
        free(w->value);
        s->late[i] = s->late[--s->n_late];
    }
}

/* ---- checks ----------------------------------------------------------------- */

static bool kv_down(kvpx *p);

/* I1 at this instant: at most one node may act as leader
 * (aether_invariants_check_one_leader over the nodes that ever led, or all
 * of them while scan_every_step). */
static void check_leaders(sim *s)
{
    uint32_t count = s->scan_every_step ? s->n_nodes : s->n_led, k_views = 0;
    for (uint32_t k = 0; k < count; k++) {
        snode *n = s->scan_every_step ? &s->nodes[k] : &s->nodes[s->led[k]];
        if (n->m == NULL || (!s->scan_every_step && !n->ever_led))
            continue;
        if (!aether_member_leads(n->m))
            continue;
        s->views[k_views++] = (aether_oracle_view){ .name = n->id, .node = n->id, .running = true,
                                                    .is_leader = true };
    }
    aether_err err;
    if (k_views > 1 && aether_invariants_check_one_leader(s->views, k_views, &err) != AETHER_OK)
        fail(s, "%s", err.msg);
}

/* A node that holds shards and regains the right to serve must not hold one
 * that another node serves. */
static void check_serving(sim *s, snode *n)
{
    bool ms = may_serve(n);
    if (ms && !n->may_serve_last && n->serving_count > 0) {
        for (uint32_t sh = 0; sh < s->o.shards; sh++) {
            if (!n->serving[sh])
                continue;
            snode *o = co_holder(s, n, sh);
            if (o != NULL) {
                fail(s, "single ownership: %s may serve shard %u again while %s serves it", n->id,
                     sh, o->id);
                break;
            }
        }
    }
    n->may_serve_last = ms;
}

static void check_node_ms(sim *s, snode *n)
{
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    if (v.generation != n->view_gen) { /* terms are compared within a generation */
        n->view_gen = v.generation;
        n->last_term = 0;
    }
    if (v.map_generation != n->map_view_gen) { /* map versions within theirs */
        n->map_view_gen = v.map_generation;
        n->last_map_version = 0;
    }
    if (v.map_version < n->last_map_version)
        fail(s, "%s: map version went back from %" PRIu64 " to %" PRIu64, n->id, n->last_map_version,
             v.map_version);
    if (v.term < n->last_term)
        fail(s, "%s: term went back from %" PRIu64 " to %" PRIu64, n->id, n->last_term, v.term);
    n->last_map_version = v.map_version;
    n->last_term = v.term;
    /* I5, with the grace the design allows (a new leader admits itself
     * within a heartbeat; a draining one leaves once a successor exists). */
    bool bad = false;
    if (v.is_leader && (!v.member || v.status != AETHER_NODE_ACTIVE)) {
        aether_topology topo;
        if (aether_member_topology(n->m, &topo) == AETHER_OK) {
            for (uint32_t i = 0; i < topo.count && !bad; i++)
                bad = topo.nodes[i].status == AETHER_NODE_ACTIVE &&
                      strcmp(topo.nodes[i].id.str, n->id) != 0;
            aether_topology_fini(&topo);
        } else {
            bad = true;
        }
    }
    /* The leader records its own admission in the state store first: while
     * it cannot reach the store, or while it is paused or isolated (its lease
     * runs out, or it resigns, meanwhile), or after a slow store call stalled
     * the world, I5 cannot be restored in time, and the grace starts again. */
    if (!bad || kv_down(&n->px[1]) || n->paused || n->isolated ||
        n->i5_bad_since_ns < s->last_stall_ns) {
        n->i5_bad_since_ns = 0;
    } else if (n->i5_bad_since_ns == 0) {
        n->i5_bad_since_ns = now_ns(s);
    } else if (now_ns(s) - n->i5_bad_since_ns > (uint64_t)s->base.failure_timeout_ms * MS) {
        fail(s, "I5: leader %s has been %s for %" PRIu64 " ms while an Active node exists", n->id,
             v.member ? aether_node_status_name(v.status) : "not a member",
             (now_ns(s) - n->i5_bad_since_ns) / MS);
    }
}

static void check_step(sim *s)
{
    check_leaders(s);
    if (s->scan_every_step)
        for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++)
            if (s->nodes[i].m != NULL)
                check_serving(s, &s->nodes[i]);
}

/* ---- the fault schedule ------------------------------------------------------ */

static bool enabled(const sim *s, fault_kind f) { return (s->o.faults >> f) & 1u; }

static uint32_t count_live(const sim *s)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++)
        k += s->nodes[i].m != NULL && !s->nodes[i].paused && !s->nodes[i].drain_requested &&
             !s->nodes[i].misfit;
    return k;
}

/* A random node satisfying pred, or NULL. */
static snode *pick_node(sim *s, bool (*pred)(const snode *))
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++)
        k += pred(&s->nodes[i]);
    if (k == 0)
        return NULL;
    uint32_t j = (uint32_t)aether_rng_below(&s->frng, k);
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (pred(&s->nodes[i]) && j-- == 0)
            return &s->nodes[i];
    return NULL;
}

/* Misfit joiners are no target of the other faults (they are a fault). */
static bool is_up(const snode *n)
{
    return n->m != NULL && !n->paused && !n->drain_requested && !n->misfit;
}
static bool is_up_plain(const snode *n) { return is_up(n) && !n->isolated && !n->kv_cut; }
static bool is_down(const snode *n) { return n->m == NULL && !n->left && !n->misfit; }

static uint64_t rand_ms(sim *s, uint64_t lo, uint64_t hi)
{
    return aether_rng_range(&s->frng, lo, hi) * MS;
}

static void partition(sim *s, bool oneway)
{
    char members[SIM_LINE_MAX / 2] = "";
    size_t len = 0;
    uint32_t in1 = 0, total = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        aether_node_id nid;
        if (aether_node_id_from_cstr(n->id, &nid, NULL) != AETHER_OK)
            continue;
        bool side = aether_rng_below(&s->frng, 2) == 1;
        aether_inproc_set_group(s->hub, &nid, side ? 1 : 0);
        if (side && len + strlen(n->id) + 2 < sizeof(members))
            len += (size_t)snprintf(members + len, sizeof(members) - len, " %s", n->id);
        in1 += side && n->m != NULL;
        total += n->m != NULL;
    }
    bool dir = aether_rng_below(&s->frng, 2) == 1;
    aether_inproc_set_link(s->hub, dir ? 0 : 1, dir ? 1 : 0, false);
    if (!oneway)
        aether_inproc_set_link(s->hub, dir ? 1 : 0, dir ? 0 : 1, false);
    s->partition_until_ns = now_ns(s) + rand_ms(s, 300, 6000);
    trace_line(s, "FAULT %s partition (%s) for %" PRIu64 " ms, %u of %u live nodes in group 1:%s",
               oneway ? "one-way" : "symmetric",
               oneway ? (dir ? "0->1 down" : "1->0 down") : "0<->1 down",
               (s->partition_until_ns - now_ns(s)) / MS, in1, total, members);
}

static void heal_partition(sim *s)
{
    trace_line(s, "FAULT heal partition");
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        aether_node_id nid;
        if (aether_node_id_from_cstr(s->nodes[i].id, &nid, NULL) == AETHER_OK)
            aether_inproc_set_group(s->hub, &nid, 0);
    }
    for (uint32_t a = 0; a < 2; a++)
        for (uint32_t b = 0; b < 2; b++)
            aether_inproc_set_link(s->hub, a, b, true);
    s->partition_until_ns = 0;
}

static void add_node(sim *s)
{
    if (s->n_nodes == s->cap_nodes)
        return;
    snode *n = &s->nodes[s->n_nodes++];
    n->sim = s;
    n->idx = s->n_nodes - 1;
    snprintf(n->id, sizeof(n->id), "n%u", n->idx);
    n->serving = calloc(s->o.shards, 1);
    AETHER_ASSERT(n->serving != NULL);
    node_start(s, n);
}

/* F_MISFIT: a node joins with twice (or half) the shard count, or another
 * replication: a copy-pasted configuration. Like aether-node it runs until
 * the leader refuses it, then exits (housekeeping); the oracle fails the run
 * if it ever acquires a shard or a map names it, and liveness (settled)
 * requires it refused and gone. */
static void add_misfit(sim *s)
{
    if (s->n_nodes == s->cap_nodes || s->misfits == SIM_MISFITS_MAX)
        return;
    snode *n = &s->nodes[s->n_nodes++];
    n->sim = s;
    n->idx = s->n_nodes - 1;
    snprintf(n->id, sizeof(n->id), "x%u", n->idx);
    n->misfit_shards = s->base.shard_count;
    n->misfit_replication = s->base.replication;
    if (aether_rng_below(&s->xrng, 2) == 0) {
        n->misfit = 1;
        n->misfit_shards = s->base.shard_count * 2 <= AETHER_SHARD_COUNT_MAX
                               ? s->base.shard_count * 2
                               : s->base.shard_count / 2;
    } else {
        n->misfit = 2;
        n->misfit_replication = s->base.replication < AETHER_REPLICATION_MAX
                                    ? s->base.replication + 1
                                    : s->base.replication - 1;
    }
    n->serving = calloc(n->misfit_shards > s->o.shards ? n->misfit_shards : s->o.shards, 1);
    AETHER_ASSERT(n->serving != NULL);
    s->misfits++;
    s->injected[F_MISFIT]++;
    trace_line(s, "FAULT misfit %s joins with %u shards, replication %u (the cluster: %u, %u)", n->id,
               n->misfit_shards, n->misfit_replication, s->base.shard_count, s->base.replication);
    node_start(s, n);
}

static void inject(sim *s)
{
    uint32_t total = 0;
    for (uint32_t f = 0; f < F_EVENT_COUNT_; f++)
        total += enabled(s, (fault_kind)f) ? fault_weight[f] : 0;
    total += enabled(s, F_TWIN) ? F_TWIN_WEIGHT : 0;
    total += enabled(s, F_KV_LOSS) ? F_KV_LOSS_WEIGHT : 0;
    if (total == 0)
        return;
    uint32_t r = (uint32_t)aether_rng_below(&s->frng, total);
    /* What is left past the base kinds: twin, then kv-loss (each alone draws
     * as it did before the other existed). */
    fault_kind f = enabled(s, F_TWIN) && r >= total - F_TWIN_WEIGHT -
                                                 (enabled(s, F_KV_LOSS) ? F_KV_LOSS_WEIGHT : 0) &&
                           r < total - (enabled(s, F_KV_LOSS) ? F_KV_LOSS_WEIGHT : 0)
                       ? F_TWIN
                       : enabled(s, F_KV_LOSS) ? F_KV_LOSS : F_TWIN;
    for (uint32_t k = 0; k < F_EVENT_COUNT_; k++) {
        uint32_t w = enabled(s, (fault_kind)k) ? fault_weight[k] : 0;
        if (r < w) {
            f = (fault_kind)k;
            break;
        }
        r -= w;
    }
    uint32_t live = count_live(s);
    snode *n;
    switch (f) {
    case F_CRASH:
        if (live > 1 && (n = pick_node(s, is_up)) != NULL) {
            node_stop(s, n, "crash");
            if (aether_rng_below(&s->frng, 5) != 0)
                n->restart_at_ns = now_ns(s) + rand_ms(s, 50, 4000);
            s->injected[f]++;
        }
        break;
    case F_PAUSE:
        if (live > 1 && (n = pick_node(s, is_up_plain)) != NULL) {
            node_pause(s, n, true);
            n->resume_at_ns = now_ns(s) + rand_ms(s, s->base.lease_ttl_ms / 10, 7 * s->base.lease_ttl_ms / 2);
            s->injected[f]++;
        }
        break;
    case F_PARTITION:
    case F_ONEWAY:
        if (s->partition_until_ns == 0) {
            partition(s, f == F_ONEWAY);
            s->injected[f]++;
        }
        break;
    case F_ISOLATE:
        if (live > 1 && (n = pick_node(s, is_up_plain)) != NULL) {
            node_isolate(s, n, true);
            n->unisolate_at_ns = now_ns(s) + rand_ms(s, 100, 5000);
            s->injected[f]++;
        }
        break;
    case F_KV_OUTAGE: {
        int which = (int)aether_rng_below(&s->frng, 3); /* lease, state, both */
        uint64_t until = now_ns(s) + rand_ms(s, 50, 3000);
        for (int k = 0; k < 2; k++)
            if (which == 2 || which == k)
                s->kv_outage_until_ns[k] = until;
        trace_line(s, "FAULT %s store%s unavailable for %" PRIu64 " ms",
                   which == 2 ? "lease and state" : which ? "state" : "lease", which == 2 ? "s" : "",
                   (until - now_ns(s)) / MS);
        s->injected[f]++;
        break;
    }
    case F_KV_CUT:
        if ((n = pick_node(s, is_up_plain)) != NULL) {
            n->kv_cut = true;
            n->kv_uncut_at_ns = now_ns(s) + rand_ms(s, 100, 3000);
            trace_line(s, "FAULT %s cut off from the stores", n->id);
            s->injected[f]++;
        }
        break;
    case F_JOIN:
        if ((n = pick_node(s, is_down)) != NULL && aether_rng_below(&s->frng, 2) == 0) {
            node_start(s, n); /* a restart counts as a join of a known id */
            s->injected[f]++;
        } else if (s->n_nodes < s->cap_nodes) {
            add_node(s);
            s->injected[f]++;
        }
        break;
    case F_DRAIN:
        /* Not an id with two processes: LeaveCluster names only the id, so
         * the older process's drain, sent before it learns it is
         * superseded, drains the newer one (a known limit, docs/cluster.md). */
        if (live > 2 && (n = pick_node(s, is_up)) != NULL && !id_running_elsewhere(s, n)) {
            trace_line(s, "FAULT drain %s", n->id);
            n->drain_requested = true;
            (void)aether_member_drain(n->m);
            s->injected[f]++;
        }
        break;
    case F_TWIN:
        /* A second process of a live, reachable id (its own slot, the same
         * id), started while the first still runs. */
        if (s->n_nodes < s->cap_nodes && (n = pick_node(s, is_up_plain)) != NULL &&
            !id_running_elsewhere(s, n)) {
            snode *t = &s->nodes[s->n_nodes++];
            t->sim = s;
            t->idx = s->n_nodes - 1;
            snprintf(t->id, sizeof(t->id), "%s", n->id);
            t->serving = calloc(s->o.shards, 1);
            AETHER_ASSERT(t->serving != NULL);
            trace_line(s, "FAULT twin: a second process of %s", n->id);
            node_start(s, t);
            s->injected[f]++;
        }
        break;
    case F_NET_BURST:
        if (s->burst_until_ns == 0) {
            s->burst_until_ns = now_ns(s) + rand_ms(s, 100, 2000);
            aether_inproc_net_faults burst = s->rough;
            burst.loss_ppm = 200000;
            burst.dup_ppm = 50000;
            burst.reorder_ppm = 100000;
            burst.delay_max_us = s->rough.delay_max_us * 10 > AETHER_INPROC_DELAY_MAX_US
                                     ? AETHER_INPROC_DELAY_MAX_US
                                     : s->rough.delay_max_us * 10;
            if (burst.delay_mean_us > burst.delay_max_us)
                burst.delay_mean_us = burst.delay_max_us;
            aether_inproc_set_net_faults(s->hub, &burst);
            trace_line(s, "FAULT network burst: 20%% loss, 5%% dup, 10%% reorder for %" PRIu64 " ms",
                       (s->burst_until_ns - now_ns(s)) / MS);
            s->injected[f]++;
        }
        break;
    case F_KV_LOSS: {
        /* A bucket deleted and re-created (transport/nats_kv.h step 5 does
         * the re-creation on NATS; here it is instant): everything in it is
         * gone and its revisions restart at 1. The lease bucket or the state
         * bucket, one at a time (SIM_KV_LOSS_GAP_MS apart), and the lease
         * bucket only while the state bucket holds a term record. Both at
         * once is not modelled: a node that
         * (re)starts after such a loss remembers no term and may reuse one
         * (seed 3 of --faults all,kv-loss with both: "I1: term 1 has two
         * leaders"); telling the epochs apart needs the generation id of
         * issue 12 item 5, not done yet. */
        bool both_ok = enabled(s, F_KV_LOSS_BOTH);
        /* kv-loss-both: the lease bucket, the state bucket or both, with
         * none of the guards below: every node must move to the new
         * generation the next leader creates (actors/lease.h GENERATION),
         * and the oracle judges terms and maps per generation. */
        int which = (int)aether_rng_below(&s->frng, both_ok ? 3 : 2);
        if (both_ok) {
            uint64_t since = (now_ns(s) - s->kv_loss_last_ns) / MS;
            if (s->kv_loss_last_ns != 0 && since < SIM_KV_LOSS_GAP_MS) {
                trace_line(s, "FAULT bucket loss skipped: a bucket was lost less than 10 s ago");
                break;
            }
            s->kv_loss_last_ns = now_ns(s);
            if (which == 2 && enabled(s, F_KV_ABA) && s->aba_map == NULL) {
                /* The lost generation's leader is about to write its map:
                 * it lands later, in the re-created bucket (aba_write). */
                aether_kv_entry old;
                if (aether_kv_get(s->kv[1], "map", &old, NULL) == AETHER_OK) {
                    s->aba_map = strndup((const char *)old.value, old.value_len);
                    s->aba_at_ns = now_ns(s) + aether_rng_range(&s->frng, 500, 4000) * MS;
                    s->aba_tries = 0;
                    aether_kv_entry_fini(&old);
                }
            }
            for (int k = 0; k < 2; k++)
                if (which == 2 || which == k)
                    aether_kv_mem_wipe(s->kv[k]);
            trace_line(s, "FAULT %s deleted and re-created empty",
                       which == 2 ? "lease and state buckets" : which ? "state bucket" : "lease bucket");
            s->injected[F_KV_LOSS]++;
            if (which == 2)
                s->injected[F_KV_LOSS_BOTH]++;
            break;
        }
        aether_kv_entry rec;
        bool recorded = aether_kv_get(s->kv[1], "term", &rec, NULL) == AETHER_OK;
        /* The lease bucket's counter below the recorded term: it was
         * re-created and no term has been established in it since (lease.h
         * step 3 takes it past the record); the record is then the only
         * trace of the terms used, as if the lease bucket were lost too. */
        uint64_t recorded_term = recorded ? strtoull((const char *)rec.value, NULL, 10) : 0;
        aether_kv_entry_fini(&rec);
        bool lease_unhealed = recorded && aether_kv_mem_last_revision(s->kv[0]) < recorded_term;
        uint64_t since_ms = (now_ns(s) - s->kv_loss_last_ns) / MS;
        if ((which == 0 && !recorded) || (which == 1 && lease_unhealed) ||
            (s->kv_loss_last_ns != 0 && since_ms < SIM_KV_LOSS_GAP_MS)) {
            /* The state bucket has no term record (no leader wrote it back
             * yet), the lease bucket holds no term since it was lost, or the
             * other bucket was lost moments ago: losing this one now is
             * losing both. */
            trace_line(s, "FAULT %s bucket loss skipped: %s", which ? "state" : "lease",
                       which == 0 && !recorded ? "the state bucket has no term record yet"
                       : which == 1 && lease_unhealed
                           ? "no term established in the re-created lease bucket yet"
                           : "a bucket was lost less than 10 s ago");
            break;
        }
        s->kv_loss_last_ns = now_ns(s);
        aether_kv_mem_wipe(s->kv[which]);
        trace_line(s, "FAULT %s bucket deleted and re-created empty", which ? "state" : "lease");
        s->injected[f]++;
        break;
    }
    default:
        break;
    }
}

/* F_KV_ABA: a leader of the generation lost with both buckets writes its
 * map by compare-and-set at a revision the re-created bucket has reached
 * too, so the write lands (revisions restart at 1: an ABA). It numbers the
 * map above what the new generation stored (a deposed leader may have held
 * a term the new generation's nodes never saw). The map keeps the "gen"
 * its leader stamped; every reader must refuse it and the leader replace it
 * (actors/member_state.c, "Generations"). Tried every 500 ms until the new
 * generation has stored a map, at most 20 times. */
static void aba_write(sim *s)
{
    aether_kv *kv = s->kv[1];
    aether_kv_entry cur;
    unsigned long long v0 = 0, t0 = 0, cv = 0, ct = 0;
    int at = 0;
    bool have = aether_kv_get(kv, "map", &cur, NULL) == AETHER_OK;
    if (!have || sscanf(s->aba_map, "{\"version\":%llu,\"term\":%llu%n", &v0, &t0, &at) != 2 ||
        sscanf((const char *)cur.value, "{\"version\":%llu,\"term\":%llu", &cv, &ct) != 2) {
        if (have)
            aether_kv_entry_fini(&cur);
        if (++s->aba_tries < 20) {
            s->aba_at_ns = now_ns(s) + 500 * MS;
            return;
        }
        trace_line(s, "FAULT kv-aba skipped: no map of the new generation stored");
    } else {
        char head[96];
        int hn = snprintf(head, sizeof(head), "{\"version\":%llu,\"term\":%llu", cv + 1000, ct + 1);
        size_t rest = strlen(s->aba_map + at), len = (size_t)hn + rest;
        char *stale = malloc(len + 1);
        AETHER_ASSERT(stale != NULL);
        memcpy(stale, head, (size_t)hn);
        memcpy(stale + hn, s->aba_map + at, rest + 1);
        uint64_t rev = 0;
        aether_status st = aether_kv_update(kv, "map", stale, len, cur.revision, &rev, NULL);
        trace_line(s, "FAULT kv-aba: the lost generation's map v%llu term %llu written back as v%llu "
                   "term %llu over v%llu at revision %llu: %s", v0, t0, cv + 1000, ct + 1, cv,
                   (unsigned long long)cur.revision, aether_status_str(st));
        if (st == AETHER_OK)
            s->injected[F_KV_ABA]++;
        free(stale);
        aether_kv_entry_fini(&cur);
    }
    free(s->aba_map);
    s->aba_map = NULL;
    s->aba_at_ns = 0;
}

/* F_FORGE (issue 12, item 3): someone allowed to publish on the cluster's
 * subjects impersonates the present leader (sim_adversary_forge_present):
 * a NodeFailed of a live follower and a map giving it every shard. Both
 * contradict the state store; the oracle judges the rest (single
 * ownership, maps never going back, every shard served once settled). */
static void forge(sim *s)
{
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].m != NULL && aether_member_leads(s->nodes[i].m))
            leader = &s->nodes[i];
    if (leader == NULL)
        return;
    uint32_t live = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++)
        live += s->nodes[i].m != NULL && &s->nodes[i] != leader;
    if (live == 0)
        return;
    snode *victim = NULL;
    for (uint32_t i = 0, k = (uint32_t)aether_rng_below(&s->grng, live); victim == NULL; i++)
        if (s->nodes[i].m != NULL && &s->nodes[i] != leader && k-- == 0)
            victim = &s->nodes[i];
    aether_member_view v;
    aether_member_view_get(leader->m, &v);
    char line[SIM_LINE_MAX];
    sim_adversary_forge_present(s->adv, aether_member_id(leader->m), v.term, v.map_version,
                                aether_member_id(victim->m), s->o.shards, enabled(s, F_FORGE_TERM),
                                s->base.lease_ttl_ms, line, sizeof(line));
    trace_line(s, "FAULT %s", line);
    s->injected[F_FORGE]++;
    if (enabled(s, F_FORGE_TERM))
        s->injected[F_FORGE_TERM]++;
}

/* F_ADVERSARY (issue 13, item 6): a burst of 1-3 messages from the
 * adversary, each traced with what the decoders made of it. */
static void adversary(sim *s)
{
    uint32_t n = 1 + (uint32_t)aether_rng_below(&s->arng, 3);
    for (uint32_t i = 0; i < n && !s->failed; i++) { /* bounded: 3 */
        char line[SIM_LINE_MAX];
        sim_adversary_act(s->adv, (now_ns(s) + 1700000000000ull * MS) / MS, line, sizeof(line));
        trace_line(s, "FAULT %s", line);
        s->injected[F_ADVERSARY]++;
    }
}

/* A node drained from outside (aetherctl drain, or a LeaveCluster the
 * adversary sent in its name) exits once it has left, as aether-node does
 * (has_left). Its exit must rest on the store: the stored topology, when it
 * names the node, must say Left (a forged NodeLeft must not make a node
 * quit). */
static void exit_left(sim *s, snode *n)
{
    aether_kv_entry e;
    aether_topology stored;
    aether_topology_init(&stored, aether_member_id(n->m));
    if (aether_kv_get(s->kv[1], "topology", &e, NULL) == AETHER_OK) {
        if (aether_topology_json_decode((const char *)e.value, e.value_len, &stored, NULL) == AETHER_OK) {
            const aether_node_info *info = aether_topology_find(&stored, aether_member_id(n->m));
            if (info != NULL && info->status != AETHER_NODE_LEFT)
                fail(s, "%s exited as Left (drained from outside) but the stored topology says %s", n->id,
                     aether_node_status_name(info->status));
        }
        aether_kv_entry_fini(&e);
    }
    aether_topology_fini(&stored);
    node_stop(s, n, "exit (left: drained from outside)");
    n->left = true;
    n->restart_at_ns = 0;
}

/* Scheduled ends of faults, restarts, drained nodes that left. */
static void housekeeping(sim *s)
{
    uint64_t t = now_ns(s);
    late_apply_due(s);
    if (s->partition_until_ns != 0 && t >= s->partition_until_ns)
        heal_partition(s);
    if (s->burst_until_ns != 0 && t >= s->burst_until_ns) {
        s->burst_until_ns = 0;
        aether_inproc_set_net_faults(s->hub, s->chaos ? &s->rough : &s->calm);
        trace_line(s, "FAULT network burst over");
    }
    for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL) {
            if (n->restart_at_ns != 0 && t >= n->restart_at_ns)
                node_start(s, n);
            continue;
        }
        if (n->resume_at_ns != 0 && t >= n->resume_at_ns) {
            n->resume_at_ns = 0;
            node_pause(s, n, false);
        }
        if (n->unisolate_at_ns != 0 && t >= n->unisolate_at_ns) {
            n->unisolate_at_ns = 0;
            node_isolate(s, n, false);
        }
        if (n->kv_uncut_at_ns != 0 && t >= n->kv_uncut_at_ns) {
            n->kv_uncut_at_ns = 0;
            n->kv_cut = false;
            trace_line(s, "FAULT %s reaches the stores again", n->id);
        }
        aether_err why = { 0 };
        if (n->misfit && aether_member_admission(n->m, &why) == AETHER_EINCOMPATIBLE) {
            trace_line(s, "FAULT %s refused: %s", n->id, why.msg);
            node_stop(s, n, "exit 2 (join refused)");
            n->left = true;
            continue;
        }
        if (!n->paused) {
            /* aether-node exits 3 the moment it is superseded. */
            aether_member_view v;
            aether_member_view_get(n->m, &v);
            if (v.superseded) {
                node_stop(s, n, "exit (superseded)");
                n->superseded = n->left = true; /* never restarted: its id lives on */
                n->restart_at_ns = 0;
                continue;
            }
            if (v.has_left && !n->drain_requested) {
                exit_left(s, n);
                continue;
            }
        }
        if (n->drain_requested && !n->paused) {
            aether_member_view v;
            aether_member_view_get(n->m, &v);
            if (v.member && v.status == AETHER_NODE_LEFT) {
                node_stop(s, n, "exit (left)");
                n->left = true;
            }
        }
    }
}

static void every_ms(sim *s)
{
    housekeeping(s);
    /* Above SIM_SCAN_EVERY_STEP_MAX nodes the per-node view checks (each
     * view reads the node's topology) run every 10 simulated ms. */
    bool views = s->scan_every_step || (now_ns(s) / MS) % 10 == 0;
    for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL)
            continue;
        if (views)
            check_node_ms(s, n);
        if (!s->scan_every_step)
            check_serving(s, n);
    }
    if (!s->scan_every_step)
        check_leaders(s);
    if (s->chaos && enabled(s, F_MISFIT) && now_ns(s) >= s->next_misfit_ns) {
        if (s->next_misfit_ns != 0)
            add_misfit(s);
        s->next_misfit_ns = now_ns(s) + aether_rng_range(&s->xrng, 500, 8000) * MS;
    }
    if (s->aba_map != NULL && now_ns(s) >= s->aba_at_ns)
        aba_write(s);
    if (s->chaos && enabled(s, F_FORGE) && now_ns(s) >= s->forge_at_ns) {
        if (s->forge_at_ns != 0)
            forge(s);
        /* about one every 2 simulated seconds, from its own generator */
        s->forge_at_ns = now_ns(s) + aether_rng_range(&s->grng, 500, 3500) * MS;
    }
    if (s->chaos && enabled(s, F_ADVERSARY) && now_ns(s) >= s->adv_at_ns) {
        if (s->adv_at_ns != 0)
            adversary(s);
        /* a burst every 0.5 simulated seconds on average */
        s->adv_at_ns = now_ns(s) + aether_rng_range(&s->arng, 50, 950) * MS;
    }
    if (s->chaos && now_ns(s) >= s->next_fault_ns) {
        inject(s);
        double mean_ms = 1000.0 / (s->o.fault_rate > 0 ? s->o.fault_rate : 1.0);
        /* exponential inter-arrival times, from the fault generator */
        double u = (double)(aether_rng_next(&s->frng) >> 11) * 0x1.0p-53;
        double gap = -mean_ms * log(1.0 - u);
        s->next_fault_ns = now_ns(s) + (uint64_t)(gap < 1 ? 1 : gap) * MS;
    }
}

/* Runs the world until `until` (or a failure), checking after every step. */
static void run_until(sim *s, uint64_t until)
{
    while (!s->failed) {
        if (now_ns(s) >= s->next_ms_ns) {
            every_ms(s);
            s->next_ms_ns = (now_ns(s) / MS + 1) * MS;
            if (s->failed)
                break;
        }
        if (aether_step_run_one(s->ex)) {
            s->steps++;
            check_step(s);
            continue;
        }
        if (now_ns(s) >= until)
            break;
        uint64_t next = UINT64_MAX;
        (void)aether_step_next_deadline(s->ex, &next);
        if (next > s->next_ms_ns)
            next = s->next_ms_ns;
        if (next > until)
            next = until;
        if (next > now_ns(s))
            aether_sim_clock_set_ns(s->clock, next);
    }
}

/* ---- liveness ----------------------------------------------------------------- */

/* Every node's view for the oracle (actors/invariants.h), into s->views. */
static void oracle_views(sim *s)
{
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        aether_oracle_view *ov = &s->views[i];
        *ov = (aether_oracle_view){ .name = n->id, .node = n->id, .running = n->m != NULL,
                                    .frozen = n->paused, .serving = n->serving,
                                    .serving_count = n->serving_count };
        if (n->m == NULL) {
            /* Its id is another process's now, or it must be out of service. */
            ov->expect = n->superseded || id_running_elsewhere(s, n) ? AETHER_EXPECT_ANY
                                                                      : AETHER_EXPECT_DOWN;
            continue;
        }
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        ov->is_leader = v.is_leader;
        ov->may_serve = may_serve(n);
        ov->map_version = v.map_version;
        /* Left, then forgotten by the leader (node_retention_ms): the node
         * itself knows it left for good. */
        ov->expect = !n->drain_requested ? AETHER_EXPECT_ACTIVE
                     : v.has_left        ? AETHER_EXPECT_LEFT_OR_FORGOTTEN
                                         : AETHER_EXPECT_LEFT;
    }
}

/* 0 when the cluster has settled (DESIGN 4: aether_invariants_check_settled),
 * else writes why. */
static int settled(sim *s, char *why, size_t cap)
{
    oracle_views(s);
    aether_err err = { 0 };
    uint32_t li = 0;
    if (aether_invariants_leader(s->views, s->n_nodes, &li, &err) != AETHER_OK)
        return snprintf(why, cap, "%s", err.msg), -1;
    snode *leader = &s->nodes[li];
    aether_topology topo;
    bool have_topo = aether_member_topology(leader->m, &topo) == AETHER_OK;
    aether_rcu_read_lock();
    aether_settled_input in = {
        .views = s->views, .n_views = s->n_nodes, .leader = li,
        .map = aether_shardmap_slot_current(aether_member_slot(leader->m)),
        .topo = have_topo ? &topo : NULL, .replication = s->o.replication, .holders = s->holders,
    };
    aether_status st = aether_invariants_check_settled(&in, &err);
    aether_rcu_read_unlock();
    if (have_topo)
        aether_topology_fini(&topo);
    if (st != AETHER_OK)
        return snprintf(why, cap, "%s", err.msg), -1;
    return 0;
}

/* For a liveness failure: every node's view and, per node of the leader's
 * topology, its status and what the leader's map gives it. */
static void describe(sim *s)
{
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL) {
            trace_line(s, "STATE %s down%s", n->id, n->left ? " (left)" : "");
            continue;
        }
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (v.is_leader)
            leader = n;
        trace_line(s, "STATE %s %s%s term %" PRIu64 " map v%" PRIu64 " %s serving %u may_serve %d%s",
                   n->id, v.is_leader ? "LEADER " : "", v.member ? aether_node_status_name(v.status) : "non-member",
                   v.term, v.map_version, v.fenced ? "fenced" : "", n->serving_count, may_serve(n),
                   n->paused ? " paused" : "");
    }
    if (leader == NULL)
        return;
    aether_topology topo;
    if (aether_member_topology(leader->m, &topo) != AETHER_OK)
        return;
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(aether_member_slot(leader->m));
    for (uint32_t i = 0; map != NULL && i < topo.count; i++) {
        aether_node_index idx = aether_shardmap_find_node(map, &topo.nodes[i].id);
        size_t p = 0, o = 0;
        if (idx != AETHER_NODE_INDEX_NONE) {
            (void)aether_shardmap_node_primary_shards(map, idx, &p);
            (void)aether_shardmap_node_owner_shards(map, idx, &o);
        }
        trace_line(s, "STATE leader's view: %s %s inc %" PRIu64 ": %zu primaries, %zu owned",
                   topo.nodes[i].id.str, aether_node_status_name(topo.nodes[i].status),
                   topo.nodes[i].incarnation, p, o);
    }
    /* What the default strategy would do from here. */
    aether_strategy_node *sn = calloc(topo.count ? topo.count : 1, sizeof(*sn));
    for (uint32_t i = 0; sn != NULL && i < topo.count; i++)
        aether_strategy_node_from_info(&sn[i], &topo.nodes[i]);
    aether_strategy_config sc = { .shard_count = s->o.shards, .replication = s->o.replication };
    aether_shardmap *target = NULL;
    aether_rebalance_plan *plan = NULL;
    if (sn != NULL && map != NULL &&
        aether_strategy_default()->compute(map, sn, topo.count, &sc, map->term, &target, &plan,
                                           NULL) == AETHER_OK)
        trace_line(s, "STATE the strategy from here: %u primaries move, %u slots added, %u deferred",
                   plan->primaries_moved, plan->slots_added, plan->deferred);
    aether_shardmap_destroy(target);
    aether_rebalance_plan_destroy(plan);
    free(sn);
    aether_rcu_read_unlock();
    aether_topology_fini(&topo);
}

/* A live leader holds the rebalance brake: only I2 is restored, drains and
 * balance wait for the window (DESIGN "Rebalance brake"). */
static bool brake_held(sim *s)
{
    for (uint32_t i = 0; i < s->n_nodes; i++) { /* bounded: the nodes */
        if (s->nodes[i].m == NULL || s->nodes[i].paused)
            continue;
        aether_member_view v;
        aether_member_view_get(s->nodes[i].m, &v);
        if (v.brake_engaged)
            return true;
    }
    return false;
}

/* Runs until settled or the bound; false (and a failure) if not. Time the
 * leader's brake holds does not count against the bound (a chain of
 * drained nodes leaving one by one engages it at each leave, each for up to
 * brake_window_ms), up to BRAKE_EXTENSION_WINDOWS windows in all. */
#define BRAKE_EXTENSION_WINDOWS 4u
static bool await_settled(sim *s, uint64_t bound_ms, const char *phase)
{
    uint64_t start = now_ns(s), extended = 0;
    uint64_t extension_max = (uint64_t)BRAKE_EXTENSION_WINDOWS * s->base.brake_window_ms * MS;
    char why[300] = "";
    while (!s->failed) {
        if (settled(s, why, sizeof(why)) == 0) {
            trace_line(s, "CHECK %s: settled after %" PRIu64 " ms%s", phase, (now_ns(s) - start) / MS,
                       extended > 0 ? " (the brake held part of it)" : "");
            return true;
        }
        if (extended < extension_max && brake_held(s)) {
            start += 10 * MS; /* the slice run below is the brake's */
            extended += 10 * MS;
        }
        if (now_ns(s) > start && now_ns(s) - start >= bound_ms * MS) {
            describe(s);
            fail(s, "liveness: %s: not settled after %" PRIu64 " ms: %s", phase, bound_ms, why);
            return false;
        }
        run_until(s, now_ns(s) + 10 * MS);
    }
    return false;
}

/* ---- phases ------------------------------------------------------------------- */

static void set_chaos(sim *s, bool on)
{
    s->chaos = on;
    s->kv_unknown = on && enabled(s, F_KV_UNKNOWN) ? s->o.kv_unknown : 0;
    s->kv_slow = on && enabled(s, F_KV_SLOW) ? s->o.kv_slow : 0;
    s->kv_late = on && enabled(s, F_KV_LATE) ? s->o.kv_late : 0;
    s->burst_until_ns = 0;
    aether_inproc_set_net_faults(s->hub, on ? &s->rough : &s->calm);
}

static void heal(sim *s)
{
    trace_line(s, "FAULT heal everything");
    set_chaos(s, false);
    heal_partition(s);
    aether_inproc_heal(s->hub);
    s->kv_outage_until_ns[0] = s->kv_outage_until_ns[1] = 0;
    uint32_t up = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        n->isolated = false;
        n->unisolate_at_ns = 0;
        if (n->m != NULL) {
            node_pause(s, n, false);
            n->resume_at_ns = 0;
            n->kv_cut = false;
            n->kv_uncut_at_ns = 0;
        }
    }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL && !n->left && aether_rng_below(&s->frng, 2) == 0)
            node_start(s, n);
        n->restart_at_ns = 0;
        up += n->m != NULL && !n->drain_requested && !n->misfit;
    }
    if (up == 0) {
        for (uint32_t i = 0; i < s->n_nodes && up == 0; i++) {
            snode *n = &s->nodes[i];
            if (n->m == NULL && !n->misfit && !n->superseded) {
                n->left = false;
                node_start(s, n);
                up++;
            }
        }
    }
}

/* The leader's map is balanced within the strategy's bound
 * (aether_invariants_check_balance): what the strategy reaches once no
 * brake holds it back. 0 if so, else writes why. */
static int balanced(sim *s, char *why, size_t cap)
{
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        aether_member_view v;
        if (s->nodes[i].m != NULL && (aether_member_view_get(s->nodes[i].m, &v), v.is_leader))
            leader = &s->nodes[i];
    }
    if (leader == NULL)
        return snprintf(why, cap, "no leader"), -1;
    aether_topology topo;
    if (aether_member_topology(leader->m, &topo) != AETHER_OK)
        return snprintf(why, cap, "no topology"), -1;
    int rc = 0;
    aether_err err = { 0 };
    aether_rcu_read_lock();
    const aether_shardmap *map = aether_shardmap_slot_current(aether_member_slot(leader->m));
    if (map == NULL)
        rc = -1, snprintf(why, cap, "no map");
    else if (aether_invariants_check_balance(map, &topo, &err) != AETHER_OK)
        rc = -1, snprintf(why, cap, "%s", err.msg);
    aether_rcu_read_unlock();
    aether_topology_fini(&topo);
    return rc;
}

/* I4: a change of leader alone moves no shard. */
static void check_i4(sim *s)
{
    /* First the balance the strategy promises, once a brake (which a new
     * leader does not inherit) has run out. */
    uint64_t start = now_ns(s), bound = (uint64_t)s->base.brake_window_ms + s->o.settle_ms;
    char why[AETHER_ERR_MSG_MAX] = "";
    while (!s->failed && (settled(s, why, sizeof(why)) != 0 || balanced(s, why, sizeof(why)) != 0)) {
        if (now_ns(s) - start >= bound * MS) {
            describe(s);
            fail(s, "liveness: not settled and balanced %" PRIu64 " ms after heal: %s", bound, why);
            return;
        }
        run_until(s, now_ns(s) + 10 * MS);
    }
    if (s->failed)
        return;
    snode *leader = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        aether_member_view v;
        if (n->m != NULL && (aether_member_view_get(n->m, &v), v.is_leader))
            leader = n;
    }
    if (leader == NULL)
        return;
    uint64_t elections = s->elections;
    s->i4_watch = true;
    s->i4_moves = 0;
    trace_line(s, "CHECK I4: %s cut off from the stores until it loses the lease", leader->id);
    leader->kv_cut = true;
    leader->kv_uncut_at_ns = now_ns(s) + 2 * (uint64_t)s->base.lease_ttl_ms * MS;
    run_until(s, now_ns(s) + 3 * (uint64_t)s->base.lease_ttl_ms * MS);
    if (!s->failed && await_settled(s, s->o.settle_ms, "after a leader change") && s->i4_moves > 0)
        fail(s, "I4: %" PRIu64 " shard moves after a change of leader alone (elections %" PRIu64
                " -> %" PRIu64 ")",
             s->i4_moves, elections, s->elections);
    s->i4_watch = false;
}

static void print_params(FILE *f, const sim *s, const char *prefix)
{
    const opts *o = &s->o;
    fprintf(f, "%s--seed %" PRIu64 " --nodes %u --duration %.3f --shards %u --replication %u", prefix,
            o->seed, o->nodes, (double)o->duration_ms / 1000.0, o->shards, o->replication);
    if (o->max_handoffs)
        fprintf(f, " --max-handoffs %u", o->max_handoffs);
    fprintf(f, " --faults ");
    bool first = true;
    for (int i = 0; i < F_COUNT_; i++)
        if ((o->faults >> i) & 1u) {
            fprintf(f, "%s%s", first ? "" : ",", sim_fault_names[i]);
            first = false;
        }
    if (first)
        fprintf(f, "none");
    fprintf(f, " --fault-rate %g --loss %g --dup %g --reorder %g --delay-us %" PRIu64 ",%" PRIu64,
            o->fault_rate, o->loss, o->dup, o->reorder, o->delay_min_us, o->delay_max_us);
    if (o->delay_mean_us)
        fprintf(f, ",%" PRIu64, o->delay_mean_us);
    fprintf(f, " --kv-unknown %g --kv-slow %g --kv-late %g --drift-ppm %" PRId64 " --joins-max %u --settle %.3f%s",
            o->kv_unknown, o->kv_slow, o->kv_late, s->drift_ppm, o->joins_max,
            (double)o->settle_ms / 1000.0, o->i4 ? "" : " --no-i4");
    if (o->adv_without != SIM_ADV_WITHOUT_DEFAULT)
        fprintf(f, " --adversary-without %s", o->adv_without_arg);
}


/* ---- main -------------------------------------------------------------------- */

static int64_t drift_bound_ppm(const aether_config *c)
{
    /* Slow clock: a leader acts (ttl - margin) of its time, which must end
     * before the store's ttl: rate >= 1 - margin/ttl. Fencing: a node stops
     * serving (failure_timeout - fence_margin) of its time after the
     * acknowledgement it relies on, the leader fails it failure_timeout of
     * its time after: (1 + d) / (1 - d) < ft / (ft - fm). */
    double lease = (double)c->lease_safety_margin_ms / (double)c->lease_ttl_ms;
    double fence = (double)c->fence_margin_ms / (2.0 * c->failure_timeout_ms - c->fence_margin_ms);
    double b = lease < fence ? lease : fence;
    return (int64_t)(b * 0.9 * 1e6);
}

int main(int argc, char **argv)
{
    sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return 1;
    int rc = sim_parse_args(argc, argv, &s->o);
    if (rc != 0) {
        free(s);
        return rc;
    }
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);

    aether_config_defaults(&s->base);
    s->base.shard_count = s->o.shards;
    s->base.replication = s->o.replication;
    s->base.node_retention_ms = (uint32_t)s->o.retention_ms;
    if (s->o.max_handoffs)
        s->base.max_concurrent_handoffs = s->o.max_handoffs;
    /* A rebalance emits an event per shard it places, and every node's
     * actors receive them all: the mailboxes must hold one burst. */
    uint32_t mb = 4096;
    while (mb < 2 * s->o.shards + 4096 && mb < AETHER_MAILBOX_CAPACITY_MAX)
        mb *= 2;
    s->base.mailbox_capacity = mb;
    s->drift_ppm = s->o.drift_ppm >= 0 ? s->o.drift_ppm : drift_bound_ppm(&s->base);
    if (!enabled(s, F_DRIFT))
        s->drift_ppm = 0;
    s->scan_every_step = s->o.nodes + s->o.joins_max <= SIM_SCAN_EVERY_STEP_MAX;

    aether_step_config sc = { .seed = s->o.seed, .start_ns = SEC };
    AETHER_ASSERT(aether_step_create(&sc, &s->ex) == AETHER_OK);
    s->clock = aether_step_clock(s->ex);
    aether_rng_seed(&s->frng, s->o.seed * 3 + 1);
    aether_rng_seed(&s->krng, s->o.seed * 5 + 2);
    aether_rng_seed(&s->mrng, s->o.seed * 7 + 3);
    aether_rng_seed(&s->xrng, s->o.seed * 13 + 5);
    aether_rng_seed(&s->grng, s->o.seed * 11 + 4);
    aether_rng_seed(&s->arng, s->o.seed * 17 + 6);
    s->ring = calloc(s->o.tail, sizeof(*s->ring));
    AETHER_ASSERT(s->ring != NULL);
    aether_log_set_clock(&s->clock->base);
    aether_log_set_level(s->o.log_level);
    aether_log_set_sink(log_sink, s);

    s->calm = (aether_inproc_net_faults){ .delay_kind = AETHER_INPROC_DELAY_UNIFORM,
                                          .delay_min_us = 100, .delay_max_us = 1000 };
    if (enabled(s, F_DELAY)) {
        s->calm.delay_min_us = s->o.delay_min_us;
        s->calm.delay_max_us = s->o.delay_max_us;
        if (s->o.delay_mean_us) {
            s->calm.delay_kind = AETHER_INPROC_DELAY_EXPONENTIAL;
            s->calm.delay_mean_us = s->o.delay_mean_us;
        }
    }
    s->rough = s->calm;
    s->rough.loss_ppm = enabled(s, F_LOSS) ? (uint32_t)(s->o.loss * 1e6) : 0;
    s->rough.dup_ppm = enabled(s, F_DUP) ? (uint32_t)(s->o.dup * 1e6) : 0;
    s->rough.reorder_ppm = enabled(s, F_REORDER) ? (uint32_t)(s->o.reorder * 1e6) : 0;
    aether_inproc_net_config nc = { .executor = s->ex, .seed = s->o.seed * 11 + 4, .faults = s->calm };
    AETHER_ASSERT(aether_inproc_hub_create_net(&nc, &s->hub) == AETHER_OK);
    aether_inproc_set_map_tap(s->hub, on_map_published, s);
    if (enabled(s, F_FORGE) || enabled(s, F_ADVERSARY)) {
        aether_admission terms;
        aether_config_admission(&s->base, &terms);
        s->adv = sim_adversary_create(s->hub, s->base.cluster, s->o.seed * 19 + 7, s->o.adv_without, &terms,
                                      enabled(s, F_ADVERSARY));
    }
    aether_kv_mem_config lk = { .name = "lease", .ttl_ms = s->base.lease_ttl_ms, .clock = &s->clock->base,
                                .rng = &s->krng };
    aether_kv_mem_config sk = { .name = "state", .ttl_ms = 0, .clock = &s->clock->base, .rng = &s->krng };
    AETHER_ASSERT(aether_kv_mem_create(&lk, &s->kv[0], NULL) == AETHER_OK);
    AETHER_ASSERT(aether_kv_mem_create(&sk, &s->kv[1], NULL) == AETHER_OK);
    aether_term_registry_init(&s->terms);
    s->holders = calloc(s->o.shards, sizeof(*s->holders));
    s->late = calloc(SIM_LATE_MAX, sizeof(*s->late));
    s->cap_nodes = s->o.nodes + (enabled(s, F_JOIN) ? s->o.joins_max : 0) +
                   (enabled(s, F_MISFIT) ? SIM_MISFITS_MAX : 0) +
                   (enabled(s, F_TWIN) ? s->o.joins_max : 0);
    s->nodes = calloc(s->cap_nodes, sizeof(*s->nodes));
    s->led = calloc(s->cap_nodes, sizeof(*s->led));
    s->views = calloc(s->cap_nodes, sizeof(*s->views));
    AETHER_ASSERT(s->led != NULL && s->views != NULL);
    AETHER_ASSERT(s->holders != NULL && s->late != NULL && s->nodes != NULL);

    printf("aether-sim: ");
    print_params(stdout, s, "");
    printf("\n");
    fflush(stdout);

    /* 1. Boot. */
    for (uint32_t i = 0; i < s->o.nodes; i++)
        add_node(s);
    s->next_ms_ns = now_ns(s);
    if (await_settled(s, s->o.settle_ms, "boot")) {
        /* 2. Chaos. */
        trace_line(s, "CHECK chaos for %" PRIu64 " ms", s->o.duration_ms);
        set_chaos(s, true);
        s->next_fault_ns = now_ns(s);
        run_until(s, now_ns(s) + s->o.duration_ms * MS);
    }
    if (!s->failed) {
        /* 3-4. Heal, then liveness. */
        heal(s);
        if (await_settled(s, s->o.settle_ms, "after heal") && s->o.i4)
            check_i4(s); /* 5 */
    }

    uint64_t faults = 0;
    for (int f = 0; f < F_COUNT_; f++)
        faults += f == F_FORGE_TERM ? 0 : s->injected[f]; /* a forge fault's part, counted there */
    aether_inproc_stats ns;
    aether_inproc_stats_get(s->hub, &ns);
    if (s->failed) {
        printf("aether-sim: FAIL seed %" PRIu64 " at %.3f s: %s\n", s->o.seed,
               (double)(now_ns(s) - SEC) / 1e9, s->why);
        printf("replay: aether-sim");
        if (s->o.soak) {
            printf(" --soak --seed %" PRIu64 " --duration %.3f", s->o.seed, (double)s->o.duration_ms / 1000.0);
            for (int f = F_CLASSIC_COUNT_, first = 1; f < F_COUNT_; f++)
                if ((s->o.extra_faults >> f) & 1u) {
                    printf("%s%s", first ? " --extra-faults " : ",", sim_fault_names[f]);
                    first = 0;
                }
            if (s->o.adv_without != SIM_ADV_WITHOUT_DEFAULT)
                printf(" --adversary-without %s", s->o.adv_without_arg);
        } else
            print_params(stdout, s, " ");
        printf(" --trace\n");
        printf("parameters: ");
        print_params(stdout, s, "");
        printf("\nlast %u trace lines:\n", s->ring_n);
        for (uint32_t i = 0; i < s->ring_n; i++) {
            uint32_t k = (s->ring_head + s->o.tail - s->ring_n + i) % s->o.tail;
            printf("  %s\n", s->ring[k]);
        }
    } else {
        printf("aether-sim: PASS seed %" PRIu64 ": %.3f simulated s, %" PRIu64 " steps, %" PRIu64
               " faults (",
               s->o.seed, (double)(now_ns(s) - SEC) / 1e9, s->steps, faults);
        bool first = true;
        for (int f = 0; f < F_COUNT_; f++)
            if (s->injected[f] && (f < F_EVENT_COUNT_ || f >= F_CLASSIC_COUNT_)) {
                printf("%s%s %" PRIu64, first ? "" : ", ", sim_fault_names[f], s->injected[f]);
                first = false;
            }
        printf("), %" PRIu64 " elections, %" PRIu64 " shard moves, %" PRIu64
               " maps checked; network: %" PRIu64 " delivered, %" PRIu64 " lost, %" PRIu64
               " duplicated, %" PRIu64 " reordered, %" PRIu64 " blocked\n",
               s->elections, s->moves, s->maps_checked, ns.delivered, ns.lost, ns.duplicated,
               ns.reordered, ns.blocked);
    }
    char adv_line[SIM_LINE_MAX];
    sim_adversary_summary(s->adv, adv_line, sizeof(adv_line));
    if (adv_line[0] != '\0')
        printf("%s\n", adv_line);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    if (s->o.wall)
        fprintf(stderr, "aether-sim: wall time %.3f s\n",
                (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9);

    int exit_code = s->failed ? 1 : 0;
    /* Tear down (also under ASan: no leaks). */
    aether_log_set_sink(NULL, NULL);
    aether_log_set_clock(NULL);
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m != NULL) {
            if (n->paused) {
                aether_actor *a[3];
                aether_member_actors(n->m, a);
                for (int k = 0; k < 3; k++)
                    aether_step_freeze(s->ex, a[k], false);
            }
            aether_member_destroy(n->m);
            aether_transport_destroy(n->t);
        }
        free(n->serving);
    }
    for (uint32_t i = 0; i < s->n_late; i++)
        free(s->late[i].value);
    sim_adversary_destroy(s->adv);
    aether_inproc_hub_destroy(s->hub);
    aether_kv_destroy(s->kv[0]);
    aether_kv_destroy(s->kv[1]);
    aether_executor_destroy(s->ex);
    aether_term_registry_fini(&s->terms);
    aether_rcu_barrier();
    free(s->nodes);
    free(s->led);
    free(s->views);
    free(s->holders);
    free(s->aba_map);
    free(s->late);
    free(s->ring);
    free(s);
    return exit_code;
}
