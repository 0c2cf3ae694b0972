/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_world.c: the simulated world (tests layer): nodes running the real member,
 * their callbacks, the run loop, the phases. See sim_world.h and
 * sim_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- trace ------------------------------------------------------------------ */

void sim_world_trace(sim *s, const char *fmt, ...)
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

void sim_world_fail(sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    sim_world_trace(s, "VIOLATION %s", s->why);
}

static void log_sink(void *arg, aether_log_level level, const char *line, int len)
{
    (void)level;
    sim *s = arg;
    sim_world_trace(s, "log %.*s", len, line);
}

/* ---- nodes ------------------------------------------------------------------ */

/* The process of node id `id`: the running one if any (a twin of a live id
 * runs beside it until one is superseded), else the first slot of that id. */
snode *sim_world_node_of(sim *s, const char *id)
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
bool sim_world_id_running_elsewhere(const sim *s, const snode *n)
{
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (&s->nodes[i] != n && s->nodes[i].m != NULL && strcmp(s->nodes[i].id, n->id) == 0)
            return true;
    return false;
}

/* Another node that may serve and holds shard; NULL if none. */
snode *sim_check_co_holder(sim *s, const snode *n, uint32_t shard)
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
        sim_world_fail(s, "misfit %s (%u shards, replication %u) acquired shard %u (map v%" PRIu64 ")", n->id,
             n->misfit_shards, n->misfit_replication, shard, version);
        return;
    }
    if (n->serving[shard])
        return;
    n->serving[shard] = 1;
    n->serving_count++;
    s->holders[shard]++;
    snode *o = sim_check_co_holder(s, n, shard);
    if (o != NULL)
        sim_world_fail(s, "single ownership: %s%s acquired shard %u (map v%" PRIu64 ") while %s%s still serves it",
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
            sim_world_fail(s, "%s", err.msg);
    }
    if (strcmp(e->node.str, n->id) != 0) {
        /* DESIGN 2.4, as the embedder sees it: once told of term T, it is
         * never handed another node's change of an older term (member.h). */
        if (e->type != AETHER_EVT_LEADERSHIP_LOST && e->generation == n->told_gen &&
            e->term < n->told_term)
            sim_world_fail(s, "%s applied %s of term %" PRIu64 " after it was told of term %" PRIu64, n->id,
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
            sim_world_fail(s, "%s emitted %s term %" PRIu64 " seq %" PRIu64 ", expected term >= %" PRIu64
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
    if (e->type == AETHER_EVT_SHARD_MIGRATED) { /* moves, not events: a batch holds many */
        s->moves += e->data.shard_migrated.count;
        if (s->i4_watch)
            s->i4_moves += e->data.shard_migrated.count;
    }
    if (e->type == AETHER_EVT_LEASE_RENEWED)
        return;
    char line[400];
    aether_event_format(e, line, sizeof(line));
    sim_world_trace(s, "%s", line);
}

/* I2/I3 of every map a leader publishes, at the moment it publishes it,
 * against the topology it was computed from: the leader's own, or (at a
 * take-over) the stored one. Called by the hub's map tap. */
static void on_map_published(void *arg, const aether_node_id *from, const aether_shardmap *map)
{
    sim *s = arg;
    snode *n = sim_world_node_of(s, from->str);
    if (n == NULL || n->m == NULL)
        return;
    /* Admission: no map of another shape, none naming a misfit joiner. */
    if (map->shard_count != s->base.shard_count || map->replication != s->base.replication) {
        sim_world_fail(s, "%s published map v%" PRIu64 " with %u shards and replication %u (the cluster: %u, %u)",
             n->id, map->version, map->shard_count, map->replication, s->base.shard_count,
             s->base.replication);
        return;
    }
    aether_topology topo;
    if (aether_member_topology(n->m, &topo) != AETHER_OK)
        return;
    for (uint32_t i = 0; i < map->node_count; i++) {
        snode *o = sim_world_node_of(s, map->nodes[i].str);
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
        sim_world_fail(s, "%s published map v%" PRIu64 " naming misfit %s (%u shards, replication %u)", n->id,
             map->version, o->id, o->misfit_shards, o->misfit_replication);
        aether_topology_fini(&topo);
        return;
    }
    aether_err err = { 0 }, err2 = { 0 };
    s->maps_checked++;
    /* The order of the leader's two commit points (member_internal.h). */
    if (aether_departures_check_map(&s->departures, from, map, &err) != AETHER_OK) {
        aether_topology_fini(&topo);
        sim_world_fail(s, "%s", err.msg);
        return;
    }
    aether_status st = aether_invariants_check_map(map, &topo, &err);
    if (st == AETHER_ESTATE) {
        aether_kv_entry e;
        aether_topology stored;
        aether_topology_init(&stored, aether_member_id(n->m));
        if (aether_kv_get(s->kv[SIM_STORE_STATE], "topology", &e, NULL) == AETHER_OK) {
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
        sim_world_fail(s, "%s published map v%" PRIu64 ": %s", n->id, map->version, err.msg);
}

/* Every event an endpoint puts on the hub, in the hub's one order with the
 * maps (on_map_published): the departures each node announced, for the
 * oracle's aether_departures_check_map. Only a node's own events count (a
 * forger's endpoint is not the node it names). */
static void on_event_published(void *arg, const aether_node_id *from, const aether_event *e)
{
    sim *s = arg;
    if (!aether_node_id_equal(from, &e->node) || sim_world_node_of(s, from->str) == NULL)
        return;
    if (aether_departures_note(&s->departures, e) != AETHER_OK)
        sim_world_fail(s, "out of memory noting %s", aether_event_type_name(e->type));
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
        sim_world_fail(s, "%s installed map v%" PRIu64 " of term %" PRIu64 " after one of term %" PRIu64,
             n->id, version, term, n->last_map_term);
    n->last_map_term = term;
}

void sim_world_node_start(sim *s, snode *n)
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
    for (sim_store_kind k = 0; k < SIM_STORE_COUNT_; k++) {
        n->px[k].base.ops = &sim_store_ops;
        n->px[k].sim = s;
        n->px[k].node = n;
        n->px[k].store = k;
    }
    if (aether_inproc_endpoint_create(s->hub, &cfg.node, &n->t) != AETHER_OK) {
        sim_world_fail(s, "%s: no endpoint", n->id);
        return;
    }
    aether_member_deps deps = { .executor = s->ex, .transport = n->t,
                                .lease_store = &n->px[SIM_STORE_LEASE].base,
                                .state_store = &n->px[SIM_STORE_STATE].base,
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
    sim_world_trace(s, "FAULT start %s (run %u, clock %+" PRId32 " ppm, wall %+" PRId64 " ms)", n->id,
               n->runs, rate, wall);
    if (aether_member_start(&cfg, &deps, &cb, &n->m, &err) != AETHER_OK) {
        aether_transport_destroy(n->t);
        n->t = NULL;
        sim_world_fail(s, "%s: start: %s", n->id, err.msg);
    }
}

void sim_world_node_stop(sim *s, snode *n, const char *why)
{
    if (n->m == NULL)
        return;
    sim_world_trace(s, "FAULT %s %s", why, n->id);
    if (n->paused) {
        aether_actor *a[AETHER_MEMBER_ACTORS];
        aether_member_actors(n->m, a);
        for (int i = 0; i < AETHER_MEMBER_ACTORS; i++)
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

void sim_world_node_pause(sim *s, snode *n, bool on)
{
    if (n->m == NULL || n->paused == on)
        return;
    sim_world_trace(s, "FAULT %s %s", on ? "pause" : "resume", n->id);
    aether_actor *a[AETHER_MEMBER_ACTORS];
    aether_member_actors(n->m, a);
    for (int i = 0; i < AETHER_MEMBER_ACTORS; i++)
        aether_step_freeze(s->ex, a[i], on);
    /* A stopped process's connection stops too: nothing reaches it. */
    aether_node_id nid;
    if (aether_node_id_from_cstr(n->id, &nid, NULL) == AETHER_OK && !n->isolated)
        aether_inproc_set_isolated(s->hub, &nid, on);
    n->paused = on;
}

void sim_world_node_isolate(sim *s, snode *n, bool on)
{
    if (n->m == NULL || n->isolated == on)
        return;
    sim_world_trace(s, "FAULT %s %s", on ? "isolate" : "reconnect", n->id);
    aether_node_id nid;
    if (aether_node_id_from_cstr(n->id, &nid, NULL) == AETHER_OK && !n->paused)
        aether_inproc_set_isolated(s->hub, &nid, on);
    n->isolated = on;
}

/* ---- the run loop ------------------------------------------------------------ */

static void every_ms(sim *s)
{
    sim_schedule_housekeeping(s);
    /* Above SIM_SCAN_EVERY_STEP_MAX nodes the per-node view checks (each
     * view reads the node's topology) run every 10 simulated ms. */
    bool views = s->scan_every_step || (now_ns(s) / MS) % 10 == 0;
    for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL)
            continue;
        if (views)
            sim_check_node_ms(s, n);
        if (!s->scan_every_step)
            sim_check_serving(s, n);
    }
    if (!s->scan_every_step)
        sim_check_leaders(s);
    if (s->chaos && enabled(s, F_MISFIT) && now_ns(s) >= s->next_misfit_ns) {
        if (s->next_misfit_ns != 0)
            sim_schedule_add_misfit(s);
        s->next_misfit_ns = now_ns(s) + aether_rng_range(&s->xrng, 500, 8000) * MS;
    }
    if (s->aba_map != NULL && now_ns(s) >= s->aba_at_ns)
        sim_schedule_aba_write(s);
    if (s->chaos && enabled(s, F_FORGE) && now_ns(s) >= s->forge_at_ns) {
        if (s->forge_at_ns != 0)
            sim_schedule_forge(s);
        /* about one every 2 simulated seconds, from its own generator */
        s->forge_at_ns = now_ns(s) + aether_rng_range(&s->grng, 500, 3500) * MS;
    }
    if (s->chaos && enabled(s, F_ADVERSARY) && now_ns(s) >= s->adv_at_ns) {
        if (s->adv_at_ns != 0)
            sim_schedule_adversary(s);
        /* a burst every 0.5 simulated seconds on average */
        s->adv_at_ns = now_ns(s) + aether_rng_range(&s->arng, 50, 950) * MS;
    }
    if (s->chaos && now_ns(s) >= s->next_fault_ns) {
        sim_schedule_inject(s);
        double mean_ms = 1000.0 / (s->o.fault_rate > 0 ? s->o.fault_rate : 1.0);
        /* exponential inter-arrival times, from the fault generator */
        double u = (double)(aether_rng_next(&s->frng) >> 11) * 0x1.0p-53;
        double gap = -mean_ms * log(1.0 - u);
        s->next_fault_ns = now_ns(s) + (uint64_t)(gap < 1 ? 1 : gap) * MS;
    }
}

/* Runs the world until `until` (or a failure), checking after every step. */
void sim_world_run_until(sim *s, uint64_t until)
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
            sim_check_step(s);
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
        if (sim_check_settled(s, why, sizeof(why)) == 0) {
            sim_world_trace(s, "CHECK %s: settled after %" PRIu64 " ms%s", phase, (now_ns(s) - start) / MS,
                       extended > 0 ? " (the brake held part of it)" : "");
            return true;
        }
        if (extended < extension_max && brake_held(s)) {
            start += 10 * MS; /* the slice run below is the brake's */
            extended += 10 * MS;
        }
        if (now_ns(s) > start && now_ns(s) - start >= bound_ms * MS) {
            sim_check_describe(s);
            sim_world_fail(s, "liveness: %s: not settled after %" PRIu64 " ms: %s", phase, bound_ms, why);
            return false;
        }
        sim_world_run_until(s, now_ns(s) + 10 * MS);
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
    sim_world_trace(s, "FAULT heal everything");
    set_chaos(s, false);
    sim_schedule_heal_partition(s);
    aether_inproc_heal(s->hub);
    s->kv_outage_until_ns[SIM_STORE_LEASE] = s->kv_outage_until_ns[SIM_STORE_STATE] = 0;
    uint32_t up = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        n->isolated = false;
        n->unisolate_at_ns = 0;
        if (n->m != NULL) {
            sim_world_node_pause(s, n, false);
            n->resume_at_ns = 0;
            n->kv_cut = false;
            n->kv_uncut_at_ns = 0;
        }
    }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL && !n->left && aether_rng_below(&s->frng, 2) == 0)
            sim_world_node_start(s, n);
        n->restart_at_ns = 0;
        up += n->m != NULL && !n->drain_requested && !n->misfit;
    }
    if (up == 0) {
        for (uint32_t i = 0; i < s->n_nodes && up == 0; i++) {
            snode *n = &s->nodes[i];
            if (n->m == NULL && !n->misfit && !n->superseded) {
                n->left = false;
                sim_world_node_start(s, n);
                up++;
            }
        }
    }
}

/* I4: a change of leader alone moves no shard. */
static void check_i4(sim *s)
{
    /* First the balance the strategy promises, once a brake (which a new
     * leader does not inherit) has run out. */
    uint64_t start = now_ns(s), bound = (uint64_t)s->base.brake_window_ms + s->o.settle_ms;
    char why[AETHER_ERR_MSG_MAX] = "";
    while (!s->failed && (sim_check_settled(s, why, sizeof(why)) != 0 || sim_check_balanced(s, why, sizeof(why)) != 0)) {
        if (now_ns(s) - start >= bound * MS) {
            sim_check_describe(s);
            sim_world_fail(s, "liveness: not settled and balanced %" PRIu64 " ms after heal: %s", bound, why);
            return;
        }
        sim_world_run_until(s, now_ns(s) + 10 * MS);
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
    sim_world_trace(s, "CHECK I4: %s cut off from the stores until it loses the lease", leader->id);
    leader->kv_cut = true;
    leader->kv_uncut_at_ns = now_ns(s) + 2 * (uint64_t)s->base.lease_ttl_ms * MS;
    sim_world_run_until(s, now_ns(s) + 3 * (uint64_t)s->base.lease_ttl_ms * MS);
    if (!s->failed && await_settled(s, s->o.settle_ms, "after a leader change") && s->i4_moves > 0)
        sim_world_fail(s, "I4: %" PRIu64 " shard moves after a change of leader alone (elections %" PRIu64
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


/* ---- the world's life ---------------------------------------------------------- */

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
sim_world *sim_world_create(const opts *o)
{
    sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->o = *o;
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
    aether_inproc_set_event_tap(s->hub, on_event_published, s);
    if (enabled(s, F_FORGE) || enabled(s, F_ADVERSARY)) {
        aether_admission terms;
        aether_config_admission(&s->base, &terms);
        s->adv = sim_adversary_create(s->hub, s->base.cluster, s->o.seed * 19 + 7, s->o.adv_without, &terms,
                                      enabled(s, F_ADVERSARY));
    }
    aether_kv_mem_config lk = { .name = "lease", .ttl_ms = s->base.lease_ttl_ms, .clock = &s->clock->base,
                                .rng = &s->krng };
    aether_kv_mem_config sk = { .name = "state", .ttl_ms = 0, .clock = &s->clock->base, .rng = &s->krng };
    AETHER_ASSERT(aether_kv_mem_create(&lk, &s->kv[SIM_STORE_LEASE], NULL) == AETHER_OK);
    AETHER_ASSERT(aether_kv_mem_create(&sk, &s->kv[SIM_STORE_STATE], NULL) == AETHER_OK);
    aether_term_registry_init(&s->terms);
    aether_departures_init(&s->departures);
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

    return s;
}

int sim_world_run(sim_world *s)
{
    /* 1. Boot. */
    for (uint32_t i = 0; i < s->o.nodes; i++)
        sim_schedule_add_node(s);
    s->next_ms_ns = now_ns(s);
    if (await_settled(s, s->o.settle_ms, "boot")) {
        /* 2. Chaos. */
        sim_world_trace(s, "CHECK chaos for %" PRIu64 " ms", s->o.duration_ms);
        set_chaos(s, true);
        s->next_fault_ns = now_ns(s);
        sim_world_run_until(s, now_ns(s) + s->o.duration_ms * MS);
    }
    if (!s->failed) {
        /* 3-4. Heal, then liveness. */
        heal(s);
        if (await_settled(s, s->o.settle_ms, "after heal") && s->o.i4)
            check_i4(s); /* 5 */
    }

    return s->failed ? 1 : 0;
}

void sim_world_report(sim_world *s)
{
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
}

void sim_world_destroy(sim_world *s)
{
    if (s == NULL)
        return;
    aether_log_set_sink(NULL, NULL);
    aether_log_set_clock(NULL);
    /* Tear down (also under ASan: no leaks). */
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        snode *n = &s->nodes[i];
        if (n->m != NULL) {
            if (n->paused) {
                aether_actor *a[AETHER_MEMBER_ACTORS];
                aether_member_actors(n->m, a);
                for (int k = 0; k < AETHER_MEMBER_ACTORS; k++)
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
    aether_kv_destroy(s->kv[SIM_STORE_LEASE]);
    aether_kv_destroy(s->kv[SIM_STORE_STATE]);
    aether_executor_destroy(s->ex);
    aether_term_registry_fini(&s->terms);
    aether_departures_fini(&s->departures);
    aether_rcu_barrier();
    free(s->nodes);
    free(s->led);
    free(s->views);
    free(s->holders);
    free(s->aba_map);
    free(s->late);
    free(s->ring);
    free(s);
}
