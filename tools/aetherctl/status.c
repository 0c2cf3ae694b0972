/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.c: the read-only views of the live cluster: status, shards, lookup.
 * Single-threaded.
 */
#include "ctl.h"

/* ---- status ---------------------------------------------------------------- */

json_t *ctl_lease_json(const ctl_view *v)
{
    if (!v->have_lease)
        return json_null();
    json_t *o = json_object();
    if (v->lease_malformed) {
        ctl_jset(o, "malformed", json_string(v->lease_err));
    } else {
        ctl_jset(o, "node", json_string(v->lease.leader.str));
        ctl_jset(o, "term", ctl_jint(v->lease.term));
        ctl_jset(o, "establishing", json_boolean(v->lease.term == AETHER_TERM_NONE));
        ctl_jset(o, "ttl_ms", ctl_jint(v->lease.ttl_ms));
    }
    ctl_jset(o, "revision", ctl_jint(v->lease_revision));
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    ctl_jset(o, "renewed_ms_ago", json_integer(age_ms));
    ctl_jset(o, "expires_in_ms", json_integer((json_int_t)v->lease_ttl_ms - age_ms));
    return o;
}

static void ctl_print_lease(const ctl_conn *cc, const ctl_view *v)
{
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    int64_t left_ms = (int64_t)v->lease_ttl_ms - age_ms;
    if (!v->lease_bucket) {
        printf("leader    none (lease bucket '%s' does not exist)\n", cc->lease_bucket);
    } else if (!v->have_lease) {
        printf("leader    none (the lease is free; active nodes campaign for it)\n");
    } else if (v->lease_malformed) {
        printf("leader    unknown: the lease value does not decode: %s\n", v->lease_err);
    } else if (v->lease.term == AETHER_TERM_NONE) {
        printf("leader    %s, establishing its term (lease revision %" PRIu64
               "; written %" PRId64 " ms ago, expires in %" PRId64 " ms)\n",
               v->lease.leader.str, v->lease_revision, age_ms, left_ms);
    } else {
        printf("leader    %s, term %" PRIu64 " (lease renewed %" PRId64 " ms ago, expires in %" PRId64
               " ms; ttl %" PRIu64 " ms)\n",
               v->lease.leader.str, (uint64_t)v->lease.term, age_ms, left_ms, v->lease_ttl_ms);
    }
}

/* Whether a leader holds the lease as far as the lease bucket tells: a value
 * is there, decodes (and, with a secret, is authentic) and was written less
 * than its ttl ago. The age compares the server's clock with ours (exact on
 * one machine, as good as clock sync across machines). The server deletes an
 * expired entry by itself (the bucket's TTL is the lease ttl), so an expired
 * value is only seen in the short window before it does. */
static bool ctl_leader_holds(const ctl_view *v)
{
    if (!v->lease_bucket || !v->have_lease || v->lease_malformed)
        return false;
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    return v->lease_ttl_ms == 0 || age_ms <= (int64_t)v->lease_ttl_ms;
}

int cmd_status(int argc, char **argv)
{
    const command *self = ctl_find_command("status");
    ctl_opts o = {0};
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "", NULL, &o);
    if (!ctl_parser_end(&p, ctl_parser_next(&p), NULL))
        return p.exit_status;

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    rc = ctl_read(&cc, &v, true);
    if (rc != 0) {
        ctl_view_fini(&v);
        ctl_close(&cc);
        return rc;
    }
    uint32_t n = 0;
    ctl_row *rows = ctl_rows(&v, true, &n);
    if (rows == NULL) {
        fprintf(stderr, "aetherctl: out of memory\n");
        ctl_view_fini(&v);
        ctl_close(&cc);
        return EXIT_FAILED;
    }
    uint32_t by_status[AETHER_NODE_STATUS_COUNT_] = {0};
    for (uint32_t i = 0; i < n; i++)
        if (rows[i].info != NULL)
            by_status[rows[i].info->status]++;

    if (o.json) {
        json_t *doc = json_object();
        ctl_jset(doc, "cluster", json_string(cc.cluster));
        ctl_jset(doc, "servers", json_string(cc.servers));
        ctl_jset(doc, "leader", ctl_lease_json(&v));
        ctl_jset(doc, "recorded_term", v.have_term ? ctl_jint(v.recorded_term) : json_null());
        char gen[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
        aether_lease_generation_format(v.generation, gen, sizeof(gen));
        ctl_jset(doc, "generation", v.generation != 0 ? json_string(gen) : json_null());
        if (v.map != NULL) {
            json_t *m = json_object();
            ctl_jset(m, "version", ctl_jint(v.map->version));
            ctl_jset(m, "term", ctl_jint(v.map->term));
            ctl_jset(m, "shard_count", ctl_jint(v.map->shard_count));
            ctl_jset(m, "replication", ctl_jint(v.map->replication));
            ctl_jset(m, "moving", ctl_jint(ctl_map_moving(v.map)));
            ctl_jset(doc, "map", m);
        } else {
            ctl_jset(doc, "map", json_null());
        }
        ctl_jset(doc, "topology_version", v.have_topo ? ctl_jint(v.topo.version) : json_null());
        json_t *arr = json_array();
        for (uint32_t i = 0; i < n; i++) {
            const ctl_row *r = &rows[i];
            json_t *jn = json_object();
            ctl_jset(jn, "id", json_string(r->id.str));
            ctl_jset(jn, "status", json_string(ctl_row_status(r)));
            ctl_jset(jn, "leader", json_boolean(r->leader));
            ctl_jset(jn, "zone", json_string(r->info ? r->info->zone : ""));
            ctl_jset(jn, "address", json_string(r->info ? r->info->address : ""));
            ctl_jset(jn, "incarnation", r->info ? ctl_jint(r->info->incarnation) : json_null());
            ctl_jset(jn, "joined_at_ms", r->info ? ctl_jint(r->info->joined_at_ms) : json_null());
            ctl_jset(jn, "primaries", ctl_jint(r->primaries));
            ctl_jset(jn, "replicas", ctl_jint(r->replicas));
            json_array_append_new(arr, jn);
        }
        ctl_jset(doc, "nodes", arr);
        rc = ctl_emit_json(doc);
    } else {
        printf("cluster   '%s' at %s\n", cc.cluster, cc.servers);
        if (v.generation != 0)
            printf("generation %016" PRIx64 " (terms and map versions count within it)\n",
                   v.generation);
        ctl_print_lease(&cc, &v);
        if (v.map != NULL)
            printf("map       version %" PRIu64 ", term %" PRIu64 ", %u shards, replication %u, "
                   "%u moving\n",
                   v.map->version, (uint64_t)v.map->term, v.map->shard_count, v.map->replication,
                   ctl_map_moving(v.map));
        else
            printf("map       none yet\n");
        if (v.have_topo)
            printf("topology  version %" PRIu64 ", %u nodes: %u active, %u draining, %u left, "
                   "%u failed\n",
                   v.topo.version, v.topo.count, by_status[AETHER_NODE_ACTIVE],
                   by_status[AETHER_NODE_DRAINING], by_status[AETHER_NODE_LEFT],
                   by_status[AETHER_NODE_FAILED]);
        else
            printf("topology  none yet\n");
        if (n > 0) {
            int w = ctl_id_width(rows, n, 4), wz = 4, wi = 11;
            for (uint32_t i = 0; i < n; i++) {
                char inc[24];
                if (rows[i].info == NULL)
                    continue;
                int zl = (int)strlen(rows[i].info->zone);
                int il = snprintf(inc, sizeof(inc), "%" PRIu64, rows[i].info->incarnation);
                wz = zl > wz ? zl : wz;
                wi = il > wi ? il : wi;
            }
            printf("\n%-*s  %-8s  %-6s  %-*s  %*s  %9s  %8s  %s\n", w, "NODE", "STATUS", "ROLE",
                   wz, "ZONE", wi, "INCARNATION", "PRIMARIES", "REPLICAS", "ADDRESS");
            for (uint32_t i = 0; i < n; i++) {
                const ctl_row *r = &rows[i];
                char inc[24] = "-";
                if (r->info != NULL)
                    snprintf(inc, sizeof(inc), "%" PRIu64, r->info->incarnation);
                printf("%-*s  %-8s  %-6s  %-*s  %*s  %9u  %8u  %s\n", w, r->id.str,
                       ctl_row_status(r), r->leader ? "leader" : "-", wz,
                       r->info && r->info->zone[0] ? r->info->zone : "-", wi, inc, r->primaries,
                       r->replicas, r->info ? r->info->address : "-");
            }
        }
    }
    if (rc == 0 && v.map == NULL)
        rc = ctl_no_map(&cc);
    /* After printing what there is: a cluster nobody leads is not answering
     * (no admission, no failover, no map changes), so say so and exit 3; a
     * lease value that does not decode or is not authentic is exit 1, as for
     * any stored value that does not decode. */
    if (rc == 0 && v.have_lease && v.lease_malformed) {
        fprintf(stderr, "aetherctl: the lease value (bucket '%s') is not believed: %s\n",
                cc.lease_bucket, v.lease_err);
        rc = EXIT_FAILED;
    } else if (rc == 0 && !ctl_leader_holds(&v)) {
        rc = ctl_no_cluster(&cc, "no leader holds the lease (bucket '%s' key '%s' %s)",
                            cc.lease_bucket, AETHER_LEASE_KEY_DEFAULT,
                            !v.lease_bucket ? "does not exist"
                            : !v.have_lease ? "is empty: no node campaigns, or every one is down"
                                            : "has expired");
    }
    free(rows);
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- shards ---------------------------------------------------------------- */

/* "0-3,7,9-12" for ascending ids; "" for none. NULL when out of memory. */
static char *ctl_ranges(const uint32_t *ids, size_t n)
{
    size_t cap = n * 13 + 1;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && ids[j + 1] == ids[j] + 1)
            j++;
        int w = j > i ? snprintf(buf + len, cap - len, "%s%u-%u", len ? "," : "", ids[i], ids[j])
                      : snprintf(buf + len, cap - len, "%s%u", len ? "," : "", ids[i]);
        len += (size_t)w;
        i = j + 1;
    }
    return buf;
}

/* The shards where node idx is an owner but not the primary, ascending.
 * Caller frees; NULL when out of memory (n_out 0). */
static uint32_t *ctl_replica_shards(const aether_shardmap *m, aether_node_index idx, size_t *n_out)
{
    size_t slots = 0;
    const uint32_t *own = aether_shardmap_node_owner_shards(m, idx, &slots);
    uint32_t *out = malloc((slots + 1) * sizeof(*out));
    size_t n = 0;
    for (size_t i = 0; out != NULL && i < slots; i++)
        if (aether_shardmap_entry(m, own[i])->primary != idx)
            out[n++] = own[i];
    *n_out = n;
    return out;
}

int cmd_shards(int argc, char **argv)
{
    const command *self = ctl_find_command("shards");
    static const struct option opts[] = {
        {"node", required_argument, NULL, OPT_NODE},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    const char *node_arg = NULL;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case OPT_NODE: node_arg = optarg; break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;
    aether_node_id want;
    aether_err err = {0};
    if (node_arg != NULL && aether_node_id_from_cstr(node_arg, &want, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: --node: %s\n", err.msg);
        return EXIT_USAGE;
    }

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    rc = ctl_read(&cc, &v, false);
    if (rc == 0 && v.map == NULL)
        rc = ctl_no_map(&cc);
    uint32_t n = 0;
    ctl_row *rows = NULL;
    if (rc == 0 && (rows = ctl_rows(&v, false, &n)) == NULL) {
        fprintf(stderr, "aetherctl: out of memory\n");
        rc = EXIT_FAILED;
    }
    const ctl_row *only = NULL;
    if (rc == 0 && node_arg != NULL) {
        for (uint32_t i = 0; i < n; i++)
            if (aether_node_id_equal(&rows[i].id, &want))
                only = &rows[i];
        if (only == NULL) {
            fprintf(stderr, "aetherctl: node '%s' owns no shard in map version %" PRIu64
                    " and is not a healthy node of the topology\n",
                    want.str, v.map->version);
            rc = EXIT_FAILED;
        }
    }
    if (rc != 0) {
        free(rows);
        ctl_view_fini(&v);
        ctl_close(&cc);
        return rc;
    }
    const aether_shardmap *m = v.map;
    /* Balance among active nodes (the only ones that should own shards once
     * moves settle); all nodes of the map when the topology is unknown. */
    uint32_t pmin = UINT32_MAX, pmax = 0, smin = UINT32_MAX, smax = 0, pmax_all = 0;
    for (uint32_t i = 0; i < n; i++) {
        const ctl_row *r = &rows[i];
        if (r->primaries > pmax_all)
            pmax_all = r->primaries;
        if (r->info != NULL && r->info->status != AETHER_NODE_ACTIVE)
            continue;
        uint32_t slots = r->primaries + r->replicas;
        pmin = r->primaries < pmin ? r->primaries : pmin;
        pmax = r->primaries > pmax ? r->primaries : pmax;
        smin = slots < smin ? slots : smin;
        smax = slots > smax ? slots : smax;
    }
    if (pmin == UINT32_MAX)
        pmin = smin = 0;
    uint32_t moving = ctl_map_moving(m);

    if (o.json) {
        json_t *doc = json_object();
        ctl_jset(doc, "cluster", json_string(cc.cluster));
        ctl_jset(doc, "map_version", ctl_jint(m->version));
        ctl_jset(doc, "term", ctl_jint(m->term));
        ctl_jset(doc, "shard_count", ctl_jint(m->shard_count));
        ctl_jset(doc, "replication", ctl_jint(m->replication));
        ctl_jset(doc, "moving", ctl_jint(moving));
        json_t *arr = json_array();
        for (uint32_t i = 0; i < n; i++) {
            const ctl_row *r = &rows[i];
            if (only != NULL && r != only)
                continue;
            json_t *jn = ctl_row_json(r, false);
            if (only != NULL) {
                aether_node_index idx = aether_shardmap_find_node(m, &r->id);
                size_t np = 0, nr = 0;
                const uint32_t *prim =
                    idx != AETHER_NODE_INDEX_NONE ? aether_shardmap_node_primary_shards(m, idx, &np)
                                                  : NULL;
                uint32_t *rep = idx != AETHER_NODE_INDEX_NONE ? ctl_replica_shards(m, idx, &nr)
                                                              : NULL;
                char *pr = ctl_ranges(prim, np), *rr = ctl_ranges(rep, nr);
                ctl_jset(jn, "primary_shards", pr ? json_string(pr) : NULL);
                ctl_jset(jn, "replica_shards", rr ? json_string(rr) : NULL);
                free(pr);
                free(rr);
                free(rep);
            }
            json_array_append_new(arr, jn);
        }
        ctl_jset(doc, "nodes", arr);
        json_t *bal = json_object();
        ctl_jset(bal, "primaries_min", ctl_jint(pmin));
        ctl_jset(bal, "primaries_max", ctl_jint(pmax));
        ctl_jset(bal, "slots_min", ctl_jint(smin));
        ctl_jset(bal, "slots_max", ctl_jint(smax));
        ctl_jset(doc, "balance", bal);
        json_t *mv = json_array();
        for (uint32_t s = 0; s < m->shard_count; s++) {
            const aether_shard_entry *e = aether_shardmap_entry(m, s);
            if (e->state != AETHER_SHARD_MOVING)
                continue;
            if (only != NULL && !aether_node_id_equal(&m->nodes[e->primary], &only->id) &&
                !aether_node_id_equal(&m->nodes[e->to], &only->id))
                continue;
            json_array_append_new(mv, json_pack("{s:I,s:s,s:s}", "shard", (json_int_t)s, "from",
                                                m->nodes[e->primary].str, "to",
                                                m->nodes[e->to].str));
        }
        ctl_jset(doc, "moves", mv);
        rc = ctl_emit_json(doc);
    } else {
        printf("cluster '%s': map version %" PRIu64 ", term %" PRIu64 ", %u shards, replication "
               "%u, %u moving\n",
               cc.cluster, m->version, (uint64_t)m->term, m->shard_count, m->replication, moving);
        enum { BAR_MAX = 24 };
        uint32_t unit = pmax_all <= BAR_MAX ? 1 : (pmax_all + BAR_MAX - 1) / BAR_MAX;
        int w = ctl_id_width(rows, n, 4);
        printf("\n%-*s  %-8s  %9s  %8s  %3s  %3s  primaries (# = %u shard%s)\n", w, "NODE",
               "STATUS", "PRIMARIES", "REPLICAS", "OUT", "IN", unit, unit == 1 ? "" : "s");
        for (uint32_t i = 0; i < n; i++) {
            const ctl_row *r = &rows[i];
            if (only != NULL && r != only)
                continue;
            char bar[BAR_MAX + 1];
            uint32_t len = (r->primaries + unit - 1) / unit;
            if (len > BAR_MAX)
                len = BAR_MAX;
            memset(bar, '#', len);
            bar[len] = '\0';
            printf("%-*s  %-8s  %9u  %8u  %3u  %3u  %s\n", w, r->id.str, ctl_row_status(r),
                   r->primaries, r->replicas, r->moving_out, r->moving_in, bar);
        }
        if (only == NULL)
            printf("\nbalance (active nodes): primaries %u..%u per node, owner slots %u..%u\n",
                   pmin, pmax, smin, smax);
        if (only != NULL) {
            aether_node_index idx = aether_shardmap_find_node(m, &only->id);
            size_t np = 0, nr = 0;
            const uint32_t *prim =
                idx != AETHER_NODE_INDEX_NONE ? aether_shardmap_node_primary_shards(m, idx, &np)
                                              : NULL;
            uint32_t *rep = idx != AETHER_NODE_INDEX_NONE ? ctl_replica_shards(m, idx, &nr) : NULL;
            char *pr = ctl_ranges(prim, np), *rr = ctl_ranges(rep, nr);
            printf("\nprimary shards: %s\nreplica shards: %s\n", pr && pr[0] ? pr : "(none)",
                   rr && rr[0] ? rr : "(none)");
            free(pr);
            free(rr);
            free(rep);
        }
        if (moving > 0) {
            printf("\nin handoff (shard: from -> to):\n");
            uint32_t shown = 0, total = 0;
            for (uint32_t s = 0; s < m->shard_count; s++) {
                const aether_shard_entry *e = aether_shardmap_entry(m, s);
                if (e->state != AETHER_SHARD_MOVING)
                    continue;
                if (only != NULL && !aether_node_id_equal(&m->nodes[e->primary], &only->id) &&
                    !aether_node_id_equal(&m->nodes[e->to], &only->id))
                    continue;
                total++;
                if (shown++ < CTL_MOVES_SHOWN)
                    printf("  %u: %s -> %s\n", s, m->nodes[e->primary].str, m->nodes[e->to].str);
            }
            if (total > CTL_MOVES_SHOWN)
                printf("  ... and %u more\n", total - CTL_MOVES_SHOWN);
        }
    }
    free(rows);
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- lookup ---------------------------------------------------------------- */

int cmd_lookup(int argc, char **argv)
{
    const command *self = ctl_find_command("lookup");
    static const struct option opts[] = {
        {"shard", required_argument, NULL, OPT_SHARD},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t shard_arg = 0;
    bool by_shard = false;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case OPT_SHARD:
            if (ctl_parse_u64_in(optarg, 0, AETHER_SHARD_COUNT_MAX - 1, &shard_arg) != 0)
                return ctl_usage_error(self, "--shard must be an integer in 0..65535, got '%s'",
                                   optarg);
            by_shard = true;
            break;
        }
    }
    if (c == CTL_OPTS_EXIT)
        return p.exit_status;
    int nargs = argc - optind;
    if (by_shard && nargs != 0)
        return ctl_usage_error(self, "give a KEY or --shard N, not both%s", "");
    if (!by_shard && nargs != 1)
        return ctl_usage_error(self, nargs == 0 ? "missing KEY%s" : "expected one KEY%s", "");
    const char *key = by_shard ? NULL : argv[optind];

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    rc = ctl_read(&cc, &v, true);
    if (rc == 0 && v.map == NULL)
        rc = ctl_no_map(&cc);
    const aether_shardmap *m = v.map;
    uint32_t shard = 0;
    if (rc == 0) {
        if (key != NULL) {
            shard = aether_shard_of_key(key, strlen(key), m->shard_count); /* public API */
        } else if (shard_arg >= m->shard_count) {
            fprintf(stderr, "aetherctl: --shard %" PRIu64 " is not below the map's %u shards\n",
                    shard_arg, m->shard_count);
            rc = EXIT_USAGE;
        } else {
            shard = (uint32_t)shard_arg;
        }
    }
    if (rc != 0) {
        ctl_view_fini(&v);
        ctl_close(&cc);
        return rc;
    }
    const aether_shard_entry *e = aether_shardmap_entry(m, shard);
    const aether_node_index *own = aether_shardmap_owners(m, shard);
    bool moving = e->state == AETHER_SHARD_MOVING;
    const char *to = moving ? m->nodes[e->to].str : NULL;
    /* Whether the primary the map names serves the shard, as far as the
     * stored state tells: not when the topology has it Failed or Left (or
     * does not know it), nor when no leader holds the lease (every node cut
     * off from a leader fences itself within failure_timeout - fence_margin,
     * and a dead cluster keeps its last map and topology). */
    const char *not_serving = NULL;
    if (e->owner_count == 0) {
        not_serving = "the map has no owner for it";
    } else {
        const aether_node_info *pi =
            v.have_topo ? aether_topology_find(&v.topo, &m->nodes[own[0]]) : NULL;
        if (pi == NULL)
            not_serving = "the stored topology does not know the primary";
        else if (pi->status == AETHER_NODE_FAILED)
            not_serving = "the primary is failed";
        else if (pi->status == AETHER_NODE_LEFT)
            not_serving = "the primary has left";
        else if (v.have_lease && v.lease_malformed)
            not_serving = "the lease value is not believed (it does not decode, or is not "
                          "authentic): no leader can be confirmed";
        else if (!ctl_leader_holds(&v))
            not_serving = "no leader holds the lease: the owners are down or fenced";
    }
    if (o.json) {
        json_t *doc = json_object();
        ctl_jset(doc, "cluster", json_string(cc.cluster));
        ctl_jset(doc, "key", key != NULL ? json_string(key) : json_null());
        ctl_jset(doc, "shard", ctl_jint(shard));
        ctl_jset(doc, "shard_count", ctl_jint(m->shard_count));
        ctl_jset(doc, "map_version", ctl_jint(m->version));
        ctl_jset(doc, "term", ctl_jint(m->term));
        ctl_jset(doc, "primary", e->owner_count ? json_string(m->nodes[own[0]].str) : json_null());
        json_t *owners = json_array(), *statuses = json_array();
        for (uint32_t j = 0; j < e->owner_count; j++) {
            const aether_node_id *id = &m->nodes[own[j]];
            const aether_node_info *info = v.have_topo ? aether_topology_find(&v.topo, id) : NULL;
            json_array_append_new(owners, json_string(id->str));
            json_array_append_new(statuses, json_string(info ? aether_node_status_name(info->status)
                                                             : "unknown"));
        }
        ctl_jset(doc, "owners", owners);
        ctl_jset(doc, "owner_status", statuses);
        ctl_jset(doc, "state", json_string(aether_shard_state_name((aether_shard_state)e->state)));
        ctl_jset(doc, "moving", json_boolean(moving));
        ctl_jset(doc, "to", to != NULL ? json_string(to) : json_null());
        ctl_jset(doc, "serving", json_boolean(not_serving == NULL));
        ctl_jset(doc, "not_serving", not_serving ? json_string(not_serving) : json_null());
        rc = ctl_emit_json(doc);
    } else {
        if (key != NULL)
            printf("key       '%s'\n", key);
        printf("shard     %u of %u (map version %" PRIu64 ", term %" PRIu64 ")\n", shard,
               m->shard_count, m->version, (uint64_t)m->term);
        printf("owners    ");
        if (e->owner_count == 0)
            printf("none (the map has no nodes)");
        for (uint32_t j = 0; j < e->owner_count; j++) {
            const aether_node_id *id = &m->nodes[own[j]];
            const aether_node_info *info = v.have_topo ? aether_topology_find(&v.topo, id) : NULL;
            printf("%s%s (%s%s)", j ? ", " : "", id->str, j == 0 ? "primary, " : "",
                   info ? aether_node_status_name(info->status) : "unknown");
        }
        printf("\n");
        if (moving)
            printf("state     moving to %s (lookups answer %s until the handoff completes)\n", to,
                   m->nodes[own[0]].str);
        else
            printf("state     stable\n");
        if (not_serving != NULL)
            printf("serving   no: %s\n", not_serving);
    }
    if (rc == 0 && not_serving != NULL) {
        fprintf(stderr, "aetherctl: shard %u is not served: %s\n", shard, not_serving);
        rc = EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

