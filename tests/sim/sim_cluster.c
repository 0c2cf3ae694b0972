/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_cluster.c: the in-process scenario harness (tests layer). See
 * sim_cluster.h.
 */
#include "sim_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_step.h"
#include "inproc.h"
#include "invariants.h"
#include "kv_store.h"

typedef struct sim_node {
    struct sim_cluster *c;
    char id[AETHER_NODE_ID_LEN_MAX + 1];   /* the harness's name for this process */
    char node[AETHER_NODE_ID_LEN_MAX + 1]; /* its node id (== id unless a twin) */
    char zone[AETHER_NODE_ZONE_LEN_MAX + 1];
    aether_member *m;
    aether_transport *t;
    bool paused;
    uint8_t *serving; /* [AETHER_SHARD_COUNT_MAX]: a node may run another shard_count */
    uint64_t last_version;
    uint64_t last_generation; /* the generation last_version counts in (versions restart in a new one) */
} sim_node;

struct sim_cluster {
    aether_executor *ex;
    aether_rng rng;
    aether_inproc_hub *hub;
    aether_kv *lease_kv, *state_kv;
    aether_metrics *metrics; /* every node's series, labelled node="id" */
    aether_config base;
    sim_node nodes[SIM_CLUSTER_NODES_MAX];
    uint32_t n_nodes;
    aether_term_registry terms;
    uint32_t violations;
    char first_violation[400];
    uint32_t event_counts[AETHER_EVT_COUNT_]; /* entries: shards of a batch, else 1 */
    uint32_t event_msgs[AETHER_EVT_COUNT_];   /* events */
    aether_term event_last_term[AETHER_EVT_COUNT_]; /* envelope term of the last one counted */
    char last_event[AETHER_EVT_COUNT_][256]; /* aether_event_format of the newest one */
    uint64_t restarts;
    bool trace; /* AETHER_SIM_TRACE set: print every event (not renewals) */
    uint32_t moves[AETHER_SHARD_COUNT_MAX > 4096 ? 4096 : AETHER_SHARD_COUNT_MAX];
};

static void violation(sim_cluster *c, const char *fmt, const char *a, const char *b, uint64_t x)
{
    if (c->violations++ == 0)
        snprintf(c->first_violation, sizeof(c->first_violation), fmt, a, b, (unsigned long long)x);
}

static bool live(const sim_node *n) { return n->m != NULL && !n->paused; }

static void on_acquired(void *arg, uint32_t shard, uint64_t version)
{
    sim_node *n = arg;
    sim_cluster *c = n->c;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        sim_node *o = &c->nodes[i];
        if (o != n && o->m != NULL && o->serving[shard] && aether_member_may_serve(o->m))
            violation(c, "single ownership: %s acquired a shard %s serves (shard %llu)", n->id, o->id,
                      shard);
    }
    n->serving[shard] = 1;
    if (c->trace)
        fprintf(stderr, "t=%llu ACQUIRE %s shard %u v%llu\n", (unsigned long long)sim_now_ms(c), n->id,
                shard, (unsigned long long)version);
}

static void on_released(void *arg, uint32_t shard, uint64_t version)
{
    sim_node *n = arg;
    n->serving[shard] = 0;
    if (n->c->trace)
        fprintf(stderr, "t=%llu RELEASE %s shard %u v%llu\n", (unsigned long long)sim_now_ms(n->c),
                n->id, shard, (unsigned long long)version);
}

static void on_event(void *arg, const aether_event *e)
{
    sim_node *n = arg;
    sim_cluster *c = n->c;
    if (strcmp(e->node.str, n->node) == 0) {
        c->event_counts[e->type] += aether_event_entry_count(e); /* shards, for batches */
        c->event_msgs[e->type]++;
        c->event_last_term[e->type] = e->term;
        aether_event_format(e, c->last_event[e->type], sizeof(c->last_event[e->type]));
        for (uint32_t i = 0; e->type == AETHER_EVT_SHARD_MIGRATED &&
                             i < e->data.shard_migrated.count; i++) /* bounded: batch */
            if (e->data.shard_migrated.moves[i].shard < 4096)
                c->moves[e->data.shard_migrated.moves[i].shard]++;
        if (c->trace && e->type != AETHER_EVT_LEASE_RENEWED) {
            char line[512];
            aether_event_format(e, line, sizeof(line));
            fprintf(stderr, "t=%llu %s\n", (unsigned long long)sim_now_ms(c), line);
        }
    }
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        aether_err err;
        if (aether_term_registry_record(&c->terms, e->generation, e->data.leader_elected.term,
                                        &e->data.leader_elected.leader, &err) != AETHER_OK)
            violation(c, "%s%s (term %llu)", err.msg, "", e->data.leader_elected.term);
    }
}

sim_cluster *sim_cluster_create(const sim_options *o)
{
    sim_cluster *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    aether_step_config sc = { .seed = o->seed, .start_ns = AETHER_NS_PER_S };
    if (aether_step_create(&sc, &c->ex) != AETHER_OK)
        goto fail;
    aether_rng_seed(&c->rng, o->seed * 7919 + 1);
    if (o->base != NULL)
        c->base = *o->base;
    else
        aether_config_defaults(&c->base);
    c->base.shard_count = o->shard_count ? o->shard_count : 64;
    c->base.replication = o->replication ? o->replication : 1;
    if (aether_inproc_hub_create(&c->hub) != AETHER_OK)
        goto fail;
    aether_kv_mem_config lk = { .name = "lease", .ttl_ms = c->base.lease_ttl_ms,
                                .clock = aether_executor_clock(c->ex), .rng = &c->rng };
    aether_kv_mem_config sk = { .name = "state", .ttl_ms = 0, .clock = aether_executor_clock(c->ex),
                                .rng = &c->rng };
    if (aether_kv_mem_create(&lk, &c->lease_kv, NULL) != AETHER_OK ||
        aether_kv_mem_create(&sk, &c->state_kv, NULL) != AETHER_OK)
        goto fail;
    aether_term_registry_init(&c->terms);
    if (aether_metrics_create(&c->metrics) != AETHER_OK)
        goto fail;
    c->trace = getenv("AETHER_SIM_TRACE") != NULL;
    return c;
fail:
    sim_cluster_destroy(c);
    return NULL;
}

static sim_node *find(sim_cluster *c, const char *id)
{
    for (uint32_t i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].id, id) == 0)
            return &c->nodes[i];
    return NULL;
}

static void stop_node(sim_node *n)
{
    if (n->m == NULL)
        return;
    aether_member_destroy(n->m);
    aether_transport_destroy(n->t);
    n->m = NULL;
    n->t = NULL;
    n->paused = false;
    memset(n->serving, 0, AETHER_SHARD_COUNT_MAX);
}

void sim_cluster_destroy(sim_cluster *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        stop_node(&c->nodes[i]);
        free(c->nodes[i].serving);
    }
    aether_kv_destroy(c->lease_kv);
    aether_kv_destroy(c->state_kv);
    aether_inproc_hub_destroy(c->hub);
    aether_executor_destroy(c->ex);
    aether_metrics_destroy(c->metrics);
    aether_term_registry_fini(&c->terms);
    aether_rcu_barrier();
    free(c);
}

static aether_member *start_process(sim_cluster *c, const char *name, const char *id,
                                    const char *zone, const aether_config *own)
{
    const aether_config *base = own != NULL ? own : &c->base;
    sim_node *n = find(c, name);
    if (n == NULL) {
        if (c->n_nodes == SIM_CLUSTER_NODES_MAX)
            return NULL;
        n = &c->nodes[c->n_nodes++];
        n->c = c;
        snprintf(n->id, sizeof(n->id), "%s", name);
        /* Room for the shards this node could acquire under either count. */
        n->serving = calloc(AETHER_SHARD_COUNT_MAX, 1);
        if (n->serving == NULL)
            return NULL;
    }
    stop_node(n);
    snprintf(n->node, sizeof(n->node), "%s", id);
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT start %s (node %s)\n", (unsigned long long)sim_now_ms(c), name, id);
    snprintf(n->zone, sizeof(n->zone), "%s", zone ? zone : "");
    aether_config cfg = *base;
    if (aether_node_id_from_cstr(id, &cfg.node, NULL) != AETHER_OK)
        return NULL;
    snprintf(cfg.zone, sizeof(cfg.zone), "%s", n->zone);
    if (aether_inproc_endpoint_create(c->hub, &cfg.node, &n->t) != AETHER_OK)
        return NULL;
    aether_member_deps deps = { .executor = c->ex, .transport = n->t, .lease_store = c->lease_kv,
                                .state_store = c->state_kv, .metrics = c->metrics,
                                .seed = aether_rng_next(&c->rng) };
    aether_member_callbacks cb = { .on_shard_acquired = on_acquired, .on_shard_released = on_released,
                                   .on_event = on_event, .arg = n };
    aether_err err;
    if (aether_member_start(&cfg, &deps, &cb, &n->m, &err) != AETHER_OK) {
        fprintf(stderr, "sim_add %s: %s\n", id, err.msg);
        aether_transport_destroy(n->t);
        n->t = NULL;
        return NULL;
    }
    n->last_version = 0;
    n->last_generation = 0;
    return n->m;
}

aether_member *sim_add(sim_cluster *c, const char *id, const char *zone)
{
    return start_process(c, id, id, zone, NULL);
}

const aether_config *sim_base_config(sim_cluster *c) { return &c->base; }

aether_member *sim_add_config(sim_cluster *c, const char *id, const char *zone,
                              const aether_config *own)
{
    return start_process(c, id, id, zone, own);
}

aether_member *sim_add_twin(sim_cluster *c, const char *name, const char *id)
{
    sim_node *orig = find(c, id);
    return start_process(c, name, id, orig != NULL ? orig->zone : NULL, NULL);
}

void sim_crash(sim_cluster *c, const char *id)
{
    sim_node *n = find(c, id);
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT crash %s\n", (unsigned long long)sim_now_ms(c), id);
    if (n != NULL)
        stop_node(n);
    /* The process is gone and so is its partition: a restart starts clean. */
    aether_node_id nid;
    if (aether_node_id_from_cstr(id, &nid, NULL) == AETHER_OK)
        aether_inproc_set_isolated(c->hub, &nid, false);
}

/* Stops (on) or resumes the node's actors (aether_member_actors) on the step executor (the
 * store actor too: a paused process makes no store calls). */
static void freeze_actors(sim_cluster *c, sim_node *n, bool on)
{
    aether_actor *a[AETHER_MEMBER_ACTORS];
    aether_member_actors(n->m, a);
    for (int i = 0; i < AETHER_MEMBER_ACTORS; i++)
        aether_step_freeze(c->ex, a[i], on);
}

void sim_pause(sim_cluster *c, const char *id, bool on)
{
    sim_node *n = find(c, id);
    if (n == NULL || n->m == NULL)
        return;
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT pause %s %d\n", (unsigned long long)sim_now_ms(c), id, on);
    freeze_actors(c, n, on);
    /* A stopped process's transport threads stop too: nothing reaches it
     * (core NATS drops what a stalled client cannot take). */
    sim_isolate(c, id, on);
    n->paused = on;
}

void sim_freeze(sim_cluster *c, const char *name, bool on)
{
    sim_node *n = find(c, name);
    if (n == NULL || n->m == NULL)
        return;
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT freeze %s %d\n", (unsigned long long)sim_now_ms(c), name, on);
    freeze_actors(c, n, on);
}

void sim_drain(sim_cluster *c, const char *id)
{
    sim_node *n = find(c, id);
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT drain %s\n", (unsigned long long)sim_now_ms(c), id);
    if (n != NULL && n->m != NULL)
        (void)aether_member_drain(n->m);
}

void sim_isolate(sim_cluster *c, const char *id, bool on)
{
    if (c->trace)
        fprintf(stderr, "t=%llu FAULT isolate %s %d\n", (unsigned long long)sim_now_ms(c), id, on);
    aether_node_id nid;
    if (aether_node_id_from_cstr(id, &nid, NULL) == AETHER_OK)
        aether_inproc_set_isolated(c->hub, &nid, on);
}

/* One node's view for the oracle (actors/invariants.h). */
static aether_oracle_view oracle_view(sim_node *n)
{
    aether_oracle_view ov = { .name = n->id, .node = n->node, .running = n->m != NULL,
                              .frozen = n->paused, .serving = n->serving };
    if (n->m == NULL)
        return ov;
    for (uint32_t s = 0; s < AETHER_SHARD_COUNT_MAX; s++)
        ov.serving_count += n->serving[s] != 0;
    aether_member_view v;
    aether_member_view_get(n->m, &v);
    /* Superseded by a newer process of its id: out of service for good, as
     * aether-node exits (what it still serves counts all the same). */
    ov.running = !v.superseded;
    ov.is_leader = v.is_leader;
    ov.may_serve = aether_member_may_serve(n->m);
    ov.incompatible = v.incompatible;
    ov.map_version = v.map_version;
    return ov;
}

static void check_instant(sim_cluster *c)
{
    aether_oracle_view leaders[SIM_CLUSTER_NODES_MAX];
    uint32_t k = 0;
    aether_err err;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        sim_node *n = &c->nodes[i];
        if (!live(n))
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (v.map_generation != n->last_generation) { /* a new generation: versions restart */
            n->last_generation = v.map_generation;
            n->last_version = 0;
        }
        if (aether_invariants_check_progress(n->id, "map version", n->last_version, v.map_version,
                                             &err) != AETHER_OK)
            violation(c, "%s%s (at %llu ms)", err.msg, "", sim_now_ms(c));
        n->last_version = v.map_version;
        if (v.is_leader)
            leaders[k++] = (aether_oracle_view){ .name = n->id, .node = n->node, .running = true,
                                                 .is_leader = true };
    }
    if (aether_invariants_check_one_leader(leaders, k, &err) != AETHER_OK)
        violation(c, "%s%s (t=%llu ms)", err.msg, "", sim_now_ms(c));
}

void sim_run_ms(sim_cluster *c, uint64_t ms)
{
    for (uint64_t i = 0; i < ms; i++) {
        aether_step_run_for(c->ex, AETHER_NS_PER_MS, 1000000);
        check_instant(c);
    }
}

uint64_t sim_now_ms(sim_cluster *c) { return aether_clock_now_ms(aether_executor_clock(c->ex)); }

aether_member *sim_member(sim_cluster *c, const char *id)
{
    sim_node *n = find(c, id);
    return n ? n->m : NULL;
}

const char *sim_leader(sim_cluster *c)
{
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        sim_node *n = &c->nodes[i];
        if (!live(n))
            continue;
        aether_member_view v;
        aether_member_view_get(n->m, &v);
        if (v.is_leader)
            return n->id;
    }
    return NULL;
}

uint32_t sim_live_count(sim_cluster *c)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++)
        k += live(&c->nodes[i]);
    return k;
}

uint32_t sim_serving(sim_cluster *c, const char *id)
{
    sim_node *n = find(c, id);
    uint32_t k = 0;
    for (uint32_t s = 0; n != NULL && s < c->base.shard_count; s++)
        k += n->serving[s];
    return k;
}

int sim_settled(sim_cluster *c, char *why, size_t cap)
{
    aether_oracle_view views[SIM_CLUSTER_NODES_MAX];
    for (uint32_t i = 0; i < c->n_nodes; i++)
        views[i] = oracle_view(&c->nodes[i]);
    aether_err err = { 0 };
    uint32_t li = 0;
    if (aether_invariants_leader(views, c->n_nodes, &li, &err) != AETHER_OK) {
        snprintf(why, cap, "%s", err.msg);
        return -1;
    }
    aether_member *lm = c->nodes[li].m;
    aether_member_view leader_view;
    aether_member_view_get(lm, &leader_view);
    aether_topology topo;
    bool have_topo = aether_member_topology(lm, &topo) == AETHER_OK;
    aether_rcu_read_lock();
    aether_settled_input in = { .views = views, .n_views = c->n_nodes, .leader = li,
                                .map = aether_shardmap_slot_current(aether_member_slot(lm)),
                                .topo = have_topo ? &topo : NULL,
                                .replication = c->base.replication,
                                .brake_engaged = leader_view.brake_engaged };
    aether_status st = aether_invariants_check_settled(&in, &err);
    aether_rcu_read_unlock();
    if (have_topo)
        aether_topology_fini(&topo);
    if (st != AETHER_OK) {
        snprintf(why, cap, "%s", err.msg);
        return -1;
    }
    return 0;
}

uint32_t sim_violations(sim_cluster *c, char *first, size_t cap)
{
    if (first != NULL && cap > 0)
        snprintf(first, cap, "%s", c->violations ? c->first_violation : "");
    return c->violations;
}

uint32_t sim_event_count(sim_cluster *c, aether_event_type type) { return c->event_counts[type]; }
uint32_t sim_event_msg_count(sim_cluster *c, aether_event_type type) { return c->event_msgs[type]; }
aether_term sim_event_last_term(sim_cluster *c, aether_event_type type) { return c->event_last_term[type]; }
const char *sim_last_event(sim_cluster *c, aether_event_type type) { return c->last_event[type]; }

aether_executor *sim_executor(sim_cluster *c) { return c->ex; }
aether_kv *sim_lease_kv(sim_cluster *c) { return c->lease_kv; }
aether_kv *sim_state_kv(sim_cluster *c) { return c->state_kv; }
aether_metrics *sim_metrics(sim_cluster *c) { return c->metrics; }

aether_transport *sim_client(sim_cluster *c, const char *id)
{
    aether_node_id nid;
    aether_transport *t = NULL;
    if (aether_node_id_from_cstr(id, &nid, NULL) != AETHER_OK ||
        aether_inproc_endpoint_create(c->hub, &nid, &t) != AETHER_OK)
        return NULL;
    return t;
}
uint32_t sim_moves_of(sim_cluster *c, uint32_t shard) { return shard < 4096 ? c->moves[shard] : 0; }
