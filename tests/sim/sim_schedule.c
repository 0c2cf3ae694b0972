/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_schedule.c: the fault schedule (tests layer): what the seed injects and when,
 * and the housekeeping that ends faults. See sim_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"
#include "shardmap_codec.h"

/* Relative weights of the scheduled events. */
static const uint32_t fault_weight[F_EVENT_COUNT_] = {
    [F_CRASH] = 4,   [F_PAUSE] = 3,  [F_PARTITION] = 2, [F_ONEWAY] = 2, [F_ISOLATE] = 2,
    [F_KV_OUTAGE] = 2, [F_KV_CUT] = 2, [F_JOIN] = 2,    [F_DRAIN] = 2,  [F_NET_BURST] = 2,
};

/* ---- the fault schedule ------------------------------------------------------ */

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
    sim_world_trace(s, "FAULT %s partition (%s) for %" PRIu64 " ms, %u of %u live nodes in group 1:%s",
               oneway ? "one-way" : "symmetric",
               oneway ? (dir ? "0->1 down" : "1->0 down") : "0<->1 down",
               (s->partition_until_ns - now_ns(s)) / MS, in1, total, members);
}

void sim_schedule_heal_partition(sim *s)
{
    sim_world_trace(s, "FAULT heal partition");
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

void sim_schedule_add_node(sim *s)
{
    if (s->n_nodes == s->cap_nodes)
        return;
    snode *n = &s->nodes[s->n_nodes++];
    n->sim = s;
    n->idx = s->n_nodes - 1;
    snprintf(n->id, sizeof(n->id), "n%u", n->idx);
    n->serving = calloc(s->o.shards, 1);
    AETHER_ASSERT(n->serving != NULL);
    sim_world_node_start(s, n);
}

/* F_MISFIT: a node joins with twice (or half) the shard count, or another
 * replication: a copy-pasted configuration. Like aether-node it runs until
 * the leader refuses it, then exits (housekeeping); the oracle fails the run
 * if it ever acquires a shard or a map names it, and liveness (settled)
 * requires it refused and gone. */
void sim_schedule_add_misfit(sim *s)
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
        n->misfit = SIM_MISFIT_SHARDS;
        n->misfit_shards = s->base.shard_count * 2 <= AETHER_SHARD_COUNT_MAX
                               ? s->base.shard_count * 2
                               : s->base.shard_count / 2;
    } else {
        n->misfit = SIM_MISFIT_REPLICATION;
        n->misfit_replication = s->base.replication < AETHER_REPLICATION_MAX
                                    ? s->base.replication + 1
                                    : s->base.replication - 1;
    }
    n->serving = calloc(n->misfit_shards > s->o.shards ? n->misfit_shards : s->o.shards, 1);
    AETHER_ASSERT(n->serving != NULL);
    s->misfits++;
    s->injected[F_MISFIT]++;
    sim_world_trace(s, "FAULT misfit %s joins with %u shards, replication %u (the cluster: %u, %u)", n->id,
               n->misfit_shards, n->misfit_replication, s->base.shard_count, s->base.replication);
    sim_world_node_start(s, n);
}

void sim_schedule_inject(sim *s)
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
            sim_world_node_stop(s, n, "crash");
            if (aether_rng_below(&s->frng, 5) != 0)
                n->restart_at_ns = now_ns(s) + rand_ms(s, 50, 4000);
            s->injected[f]++;
        }
        break;
    case F_PAUSE:
        if (live > 1 && (n = pick_node(s, is_up_plain)) != NULL) {
            sim_world_node_pause(s, n, true);
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
            sim_world_node_isolate(s, n, true);
            n->unisolate_at_ns = now_ns(s) + rand_ms(s, 100, 5000);
            s->injected[f]++;
        }
        break;
    case F_KV_OUTAGE: {
        sim_store_kind which = (sim_store_kind)aether_rng_below(&s->frng, SIM_STORE_BOTH + 1);
        uint64_t until = now_ns(s) + rand_ms(s, 50, 3000);
        for (sim_store_kind k = 0; k < SIM_STORE_COUNT_; k++)
            if (which == SIM_STORE_BOTH || which == k)
                s->kv_outage_until_ns[k] = until;
        sim_world_trace(s, "FAULT %s store%s unavailable for %" PRIu64 " ms",
                   which == SIM_STORE_BOTH    ? "lease and state"
                   : which == SIM_STORE_STATE ? "state"
                                              : "lease",
                   which == SIM_STORE_BOTH ? "s" : "",
                   (until - now_ns(s)) / MS);
        s->injected[f]++;
        break;
    }
    case F_KV_CUT:
        if ((n = pick_node(s, is_up_plain)) != NULL) {
            n->kv_cut = true;
            n->kv_uncut_at_ns = now_ns(s) + rand_ms(s, 100, 3000);
            sim_world_trace(s, "FAULT %s cut off from the stores", n->id);
            s->injected[f]++;
        }
        break;
    case F_JOIN:
        if ((n = pick_node(s, is_down)) != NULL && aether_rng_below(&s->frng, 2) == 0) {
            sim_world_node_start(s, n); /* a restart counts as a join of a known id */
            s->injected[f]++;
        } else if (s->n_nodes < s->cap_nodes) {
            sim_schedule_add_node(s);
            s->injected[f]++;
        }
        break;
    case F_DRAIN:
        /* Not an id with two processes: LeaveCluster names only the id, so
         * the older process's drain, sent before it learns it is
         * superseded, drains the newer one (a known limit, docs/cluster.md). */
        if (live > 2 && (n = pick_node(s, is_up)) != NULL && !sim_world_id_running_elsewhere(s, n)) {
            sim_world_trace(s, "FAULT drain %s", n->id);
            n->drain_requested = true;
            (void)aether_member_drain(n->m);
            s->injected[f]++;
        }
        break;
    case F_TWIN:
        /* A second process of a live, reachable id (its own slot, the same
         * id), started while the first still runs. */
        if (s->n_nodes < s->cap_nodes && (n = pick_node(s, is_up_plain)) != NULL &&
            !sim_world_id_running_elsewhere(s, n)) {
            snode *t = &s->nodes[s->n_nodes++];
            t->sim = s;
            t->idx = s->n_nodes - 1;
            snprintf(t->id, sizeof(t->id), "%s", n->id);
            t->serving = calloc(s->o.shards, 1);
            AETHER_ASSERT(t->serving != NULL);
            sim_world_trace(s, "FAULT twin: a second process of %s", n->id);
            sim_world_node_start(s, t);
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
            sim_world_trace(s, "FAULT network burst: 20%% loss, 5%% dup, 10%% reorder for %" PRIu64 " ms",
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
        sim_store_kind which =
            (sim_store_kind)aether_rng_below(&s->frng, both_ok ? SIM_STORE_BOTH + 1 : SIM_STORE_COUNT_);
        if (both_ok) {
            uint64_t since = (now_ns(s) - s->kv_loss_last_ns) / MS;
            if (s->kv_loss_last_ns != 0 && since < SIM_KV_LOSS_GAP_MS) {
                sim_world_trace(s, "FAULT bucket loss skipped: a bucket was lost less than 10 s ago");
                break;
            }
            s->kv_loss_last_ns = now_ns(s);
            if (which == SIM_STORE_BOTH && enabled(s, F_KV_ABA) && s->aba_map == NULL) {
                /* The lost generation's leader is about to write its map:
                 * it lands later, in the re-created bucket (aba_write). */
                aether_kv_entry old;
                if (aether_kv_get(s->kv[SIM_STORE_STATE], "map", &old, NULL) == AETHER_OK) {
                    s->aba_map = malloc(old.value_len);
                    AETHER_ASSERT(s->aba_map != NULL);
                    memcpy(s->aba_map, old.value, old.value_len);
                    s->aba_map_len = old.value_len;
                    s->aba_at_ns = now_ns(s) + aether_rng_range(&s->frng, 500, 4000) * MS;
                    s->aba_tries = 0;
                    aether_kv_entry_fini(&old);
                }
            }
            for (sim_store_kind k = 0; k < SIM_STORE_COUNT_; k++)
                if (which == SIM_STORE_BOTH || which == k)
                    aether_kv_mem_wipe(s->kv[k]);
            sim_world_trace(s, "FAULT %s deleted and re-created empty",
                       which == SIM_STORE_BOTH    ? "lease and state buckets"
                       : which == SIM_STORE_STATE ? "state bucket"
                                                  : "lease bucket");
            s->injected[F_KV_LOSS]++;
            if (which == SIM_STORE_BOTH)
                s->injected[F_KV_LOSS_BOTH]++;
            break;
        }
        aether_kv_entry rec;
        bool recorded = aether_kv_get(s->kv[SIM_STORE_STATE], "term", &rec, NULL) == AETHER_OK;
        /* The lease bucket's counter below the recorded term: it was
         * re-created and no term has been established in it since (lease.h
         * step 3 takes it past the record); the record is then the only
         * trace of the terms used, as if the lease bucket were lost too. */
        uint64_t recorded_term = recorded ? strtoull((const char *)rec.value, NULL, 10) : 0;
        aether_kv_entry_fini(&rec);
        bool lease_unhealed = recorded && aether_kv_mem_last_revision(s->kv[SIM_STORE_LEASE]) < recorded_term;
        uint64_t since_ms = (now_ns(s) - s->kv_loss_last_ns) / MS;
        if ((which == SIM_STORE_LEASE && !recorded) || (which == SIM_STORE_STATE && lease_unhealed) ||
            (s->kv_loss_last_ns != 0 && since_ms < SIM_KV_LOSS_GAP_MS)) {
            /* The state bucket has no term record (no leader wrote it back
             * yet), the lease bucket holds no term since it was lost, or the
             * other bucket was lost moments ago: losing this one now is
             * losing both. */
            sim_world_trace(s, "FAULT %s bucket loss skipped: %s",
                            which == SIM_STORE_STATE ? "state" : "lease",
                       which == SIM_STORE_LEASE && !recorded ? "the state bucket has no term record yet"
                       : which == SIM_STORE_STATE && lease_unhealed
                           ? "no term established in the re-created lease bucket yet"
                           : "a bucket was lost less than 10 s ago");
            break;
        }
        s->kv_loss_last_ns = now_ns(s);
        aether_kv_mem_wipe(s->kv[which]);
        sim_world_trace(s, "FAULT %s bucket deleted and re-created empty",
                        which == SIM_STORE_STATE ? "state" : "lease");
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
void sim_schedule_aba_write(sim *s)
{
    aether_kv *kv = s->kv[SIM_STORE_STATE];
    aether_kv_entry cur;
    uint64_t v0 = 0, t0 = 0, g0 = 0, cv = 0, ct = 0, cg = 0;
    bool have = aether_kv_get(kv, "map", &cur, NULL) == AETHER_OK;
    if (!have || !aether_shardmap_codec_peek(s->aba_map, s->aba_map_len, &v0, &t0, &g0) ||
        !aether_shardmap_codec_peek((const char *)cur.value, cur.value_len, &cv, &ct, &cg)) {
        if (have)
            aether_kv_entry_fini(&cur);
        if (++s->aba_tries < 20) {
            s->aba_at_ns = now_ns(s) + 500 * MS;
            return;
        }
        sim_world_trace(s, "FAULT kv-aba skipped: no map of the new generation stored");
    } else {
        /* The stamp sits in the header: version at offset 12, term at 20. */
        size_t len = s->aba_map_len;
        char *stale = malloc(len);
        AETHER_ASSERT(stale != NULL);
        memcpy(stale, s->aba_map, len);
        uint64_t stamp[2] = {cv + 1000, ct + 1};
        for (int f = 0; f < 2; f++)
            for (int i = 0; i < 8; i++)
                stale[12 + 8 * f + i] = (char)(stamp[f] >> (8 * i));
        uint64_t rev = 0;
        aether_status st = aether_kv_update(kv, "map", stale, len, cur.revision, &rev, NULL);
        sim_world_trace(s, "FAULT kv-aba: the lost generation's map v%llu term %llu written back as v%llu "
                   "term %llu over v%llu at revision %llu: %s", (unsigned long long)v0,
                   (unsigned long long)t0, (unsigned long long)(cv + 1000), (unsigned long long)(ct + 1),
                   (unsigned long long)cv,
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
void sim_schedule_forge(sim *s)
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
    sim_world_trace(s, "FAULT %s", line);
    s->injected[F_FORGE]++;
    if (enabled(s, F_FORGE_TERM))
        s->injected[F_FORGE_TERM]++;
}

/* F_ADVERSARY (issue 13, item 6): a burst of 1-3 messages from the
 * adversary, each traced with what the decoders made of it. */
void sim_schedule_adversary(sim *s)
{
    uint32_t n = 1 + (uint32_t)aether_rng_below(&s->arng, 3);
    for (uint32_t i = 0; i < n && !s->failed; i++) { /* bounded: 3 */
        char line[SIM_LINE_MAX];
        sim_adversary_act(s->adv, (now_ns(s) + 1700000000000ull * MS) / MS, line, sizeof(line));
        sim_world_trace(s, "FAULT %s", line);
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
    if (aether_kv_get(s->kv[SIM_STORE_STATE], "topology", &e, NULL) == AETHER_OK) {
        if (aether_topology_json_decode((const char *)e.value, e.value_len, &stored, NULL) == AETHER_OK) {
            const aether_node_info *info = aether_topology_find(&stored, aether_member_id(n->m));
            if (info != NULL && info->status != AETHER_NODE_LEFT)
                sim_world_fail(s, "%s exited as Left (drained from outside) but the stored topology says %s", n->id,
                     aether_node_status_name(info->status));
        }
        aether_kv_entry_fini(&e);
    }
    aether_topology_fini(&stored);
    sim_world_node_stop(s, n, "exit (left: drained from outside)");
    n->left = true;
    n->restart_at_ns = 0;
}

/* Scheduled ends of faults, restarts, drained nodes that left. */
void sim_schedule_housekeeping(sim *s)
{
    uint64_t t = now_ns(s);
    sim_store_apply_late(s);
    if (s->partition_until_ns != 0 && t >= s->partition_until_ns)
        sim_schedule_heal_partition(s);
    if (s->burst_until_ns != 0 && t >= s->burst_until_ns) {
        s->burst_until_ns = 0;
        aether_inproc_set_net_faults(s->hub, s->chaos ? &s->rough : &s->calm);
        sim_world_trace(s, "FAULT network burst over");
    }
    for (uint32_t i = 0; i < s->n_nodes && !s->failed; i++) {
        snode *n = &s->nodes[i];
        if (n->m == NULL) {
            if (n->restart_at_ns != 0 && t >= n->restart_at_ns)
                sim_world_node_start(s, n);
            continue;
        }
        if (n->resume_at_ns != 0 && t >= n->resume_at_ns) {
            n->resume_at_ns = 0;
            sim_world_node_pause(s, n, false);
        }
        if (n->unisolate_at_ns != 0 && t >= n->unisolate_at_ns) {
            n->unisolate_at_ns = 0;
            sim_world_node_isolate(s, n, false);
        }
        if (n->kv_uncut_at_ns != 0 && t >= n->kv_uncut_at_ns) {
            n->kv_uncut_at_ns = 0;
            n->kv_cut = false;
            sim_world_trace(s, "FAULT %s reaches the stores again", n->id);
        }
        aether_err why = { 0 };
        if (n->misfit && aether_member_admission(n->m, &why) == AETHER_EINCOMPATIBLE) {
            sim_world_trace(s, "FAULT %s refused: %s", n->id, why.msg);
            sim_world_node_stop(s, n, "exit 2 (join refused)");
            n->left = true;
            continue;
        }
        if (!n->paused) {
            /* aether-node exits 3 the moment it is superseded. */
            aether_member_view v;
            aether_member_view_get(n->m, &v);
            if (v.superseded) {
                sim_world_node_stop(s, n, "exit (superseded)");
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
                sim_world_node_stop(s, n, "exit (left)");
                n->left = true;
            }
        }
    }
}
