/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/metrics.c: the daemon's own metric series (tools
 * layer): registered at setup on the main thread, read by the scraping
 * thread.
 */
#include "aether_build.h"
#include <aether/aether_version.h>

#include "node_run.h"

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

/* aether_kv_cas_seconds buckets, in nanoseconds (250 us .. 1 s): as the lease renewal's
 * (actors/member.c), one CAS each. Measured on loopback: lease bucket 79
 * CAS, 19 <= 0.2 ms, 69 <= 0.5 ms, 77 <= 2 ms, all <= 20 ms; state bucket
 * (map and topology, larger values) 23 CAS, 16 <= 1 ms, all <= 5 ms. */
#define US(x) ((uint64_t)(x) * 1000u)
static const uint64_t KV_CAS_BOUNDS_NS[] = { US(250),    US(500),    US(1000),   US(2500),
                                             US(5000),   US(10000),  US(25000),  US(50000),
                                             US(100000), US(250000), US(500000), US(1000000) };

/* The labels on every series of node n (node_metric_labels), joined with
 * one more label pair when extra is not NULL. */
static void node_labels(const node_run *d, const node_slot *n, const char *extra, char *buf,
                        size_t cap)
{
    const char *base = node_metric_labels(d);
    if (base == NULL)
        snprintf(buf, cap, "node=\"%s\"%s%s", n->id, extra ? "," : "", extra ? extra : "");
    else
        snprintf(buf, cap, "%s%s%s", base, base[0] && extra ? "," : "", extra ? extra : "");
}

const char *node_metric_labels(const node_run *d)
{
    /* One node per process (NATS mode): the scrape target is the node, so no
     * series carries its id (Prometheus adds the target's own labels; a
     * `node` label would become exported_node on Kubernetes). The demo runs
     * several nodes in one registry: there the id tells them apart. */
    return d->opt.nats_mode ? "" : NULL;
}

static int64_t g_one(void *arg)
{
    (void)arg;
    return 1;
}

/* The series only this tool knows: aether_node_info, double claims per
 * node, and (NATS mode) the wire decoder's counts. 0 or -1. */
int node_metrics_register(node_run *d, node_slot *n)
{
    char labels[128], info[AETHER_NODE_ID_LEN_MAX + AETHER_CLUSTER_NAME_MAX + 160];
    node_labels(d, n, NULL, labels, sizeof(labels));
    /* The Prometheus info-metric convention: the identity once, value 1,
     * joined onto other series with `* on(instance) group_left(node)
     * aether_node_info` (docs/observability.md). Ids, cluster names and the
     * version are [A-Za-z0-9._-], nothing to escape. */
    snprintf(info, sizeof(info), "node=\"%s\",cluster=\"%s\",version=\"%s\",revision=\"%s\"", n->id,
             d->base.cluster, AETHER_VERSION_STRING, AETHER_GIT_REVISION);
    if (aether_metrics_gauge_fn(d->metrics, "aether_node_info",
                                "Identity of this node: labels node, cluster, version and git revision; "
                                "value 1.",
                                info, g_one, n) != AETHER_OK)
        return -1;
    if (aether_metrics_gauge_fn(d->metrics, MULTI_OWNER_NAME,
                                "Shards this node serves that its current map gives to no one or to another "
                                "node: each has more than one claimed owner. 0 while single ownership holds.",
                                labels, g_multi_owner, n) != AETHER_OK)
        return -1;
    if (d->node == NULL)
        return 0;
    aether_codec_stats *codec_stats = aether_node_codec_stats(d->node);
    if (aether_metrics_counter_fn(d->metrics, "aether_messages_decoded_total",
                                  "Messages from the wire this node decoded and accepted.", labels, g_decoded,
                                  codec_stats) != AETHER_OK)
        return -1;
    static const char *const suffixes[] = { "lease", "state" };
    aether_kv *stores[] = { aether_node_store(d->node, true), aether_node_store(d->node, false) };
    for (size_t b = 0; b < sizeof(stores) / sizeof(stores[0]); b++) {
        char bl[192], pair[64];
        snprintf(pair, sizeof(pair), "bucket=\"%s\"", suffixes[b]);
        node_labels(d, n, pair, bl, sizeof(bl));
        if (aether_metrics_counter_fn(d->metrics, "aether_kv_bucket_recreated_total",
                                      "Times this process found a KV bucket (lease or state) deleted and "
                                      "created it again (transport/nats_kv.h step 5).",
                                      bl, g_recreated, stores[b]) != AETHER_OK)
            return -1;
        aether_histogram *h = aether_metrics_histogram(
            d->metrics, "aether_kv_cas_seconds",
            "Compare-and-set writes of this process to a KV bucket (create, update, conditional "
            "delete; one round trip each, whatever the outcome), by bucket.",
            bl, KV_CAS_BOUNDS_NS, (uint32_t)(sizeof(KV_CAS_BOUNDS_NS) / sizeof(KV_CAS_BOUNDS_NS[0])));
        if (h == NULL)
            return -1;
        aether_kv_nats_set_cas_histogram(stores[b], h);
    }
    for (int r = 0; r < AETHER_CODEC_REJECT_COUNT_; r++) {
        char rl[192], pair[64];
        snprintf(pair, sizeof(pair), "reason=\"%s\"", aether_codec_reject_name((aether_codec_reject)r));
        node_labels(d, n, pair, rl, sizeof(rl));
        decode_series_args[r] = (decode_series){ codec_stats, (aether_codec_reject)r };
        if (aether_metrics_counter_fn(d->metrics, "aether_decode_errors_total",
                                      "Messages from the wire this node refused, by reason (malformed, "
                                      "oversized, unknown_type, bad_field, stale_term, wrong_cluster, unauthenticated).",
                                      rl, g_decode_errors, &decode_series_args[r]) != AETHER_OK)
            return -1;
    }
    return 0;
}

