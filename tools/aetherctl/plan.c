/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.c: the offline commands shard-of and secret, and plan (offline, and
 * live against the current map). Single-threaded.
 */
#include "ctl.h"

/* ---- shard-of -------------------------------------------------------------- */

/* A decimal integer in 1..AETHER_SHARD_COUNT_MAX, nothing else. */
static int parse_shard_count(const char *s, uint32_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > AETHER_SHARD_COUNT_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cmd_secret(int argc, char **argv)
{
    const command *self = ctl_find_command("secret");
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        ctl_print_command_help(stdout, self);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "new") != 0)
        return ctl_usage_error(self, argc < 3 ? "expected: secret new FILE%s" : "unexpected argument '%s'",
                           argc > 3 ? argv[3] : "");
    aether_err err = {0};
    aether_status st = aether_auth_new_secret_file(argv[2], &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "aetherctl: secret new: %s\n", err.msg);
        return EXIT_FAILED;
    }
    printf("wrote a new cluster secret to %s (mode 0600): give every node of the cluster this file as "
           "cluster_secret_file\n", argv[2]);
    return 0;
}

int cmd_shard_of(int argc, char **argv)
{
    const command *self = ctl_find_command("shard-of");
    static const struct option opts[] = {
        {"shards", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint32_t shards = AETHER_SHARD_COUNT_DEFAULT;
    int c;
    optind = 1;
    opterr = 0; /* our own messages */
    while ((c = getopt_long(argc, argv, ":n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_shard_count(optarg, &shards) != 0)
                return ctl_usage_error(self, "--shards must be an integer in 1..65536, got '%s'",
                                   optarg);
            break;
        case 'h':
            ctl_print_command_help(stdout, self);
            return 0;
        case ':':
            return ctl_usage_error(self, "option %s needs a value", argv[optind - 1]);
        default:
            return ctl_usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return ctl_usage_error(self, argc - optind == 0 ? "missing KEY%s" : "expected one KEY%s", "");
    const char *key = argv[optind];
    printf("%u\n", aether_shard_of_key(key, strlen(key), shards)); /* the public API's function */
    return 0;
}

/* ---- plan ------------------------------------------------------------------ */

#define PLAN_MOVES_SHOWN 20u

/* A decimal integer in lo..hi, nothing else. */
int ctl_parse_u64_in(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
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

/* Splits a comma-separated list in place; returns the item count or -1 on an
 * empty item. items must hold max entries. */
static int split_list(char *s, char **items, int max)
{
    int n = 0;
    for (char *tok = s;; ) {
        char *comma = strchr(tok, ',');
        if (comma != NULL)
            *comma = '\0';
        if (tok[0] == '\0' || n >= max)
            return -1;
        items[n++] = tok;
        if (comma == NULL)
            return n;
        tok = comma + 1;
    }
}

static int plan_find(const aether_strategy_node *nodes, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i].id.str, id) == 0)
            return (int)i;
    return -1;
}

/* Reads a whole file (at most AETHER_SHARDMAP_JSON_MAX_BYTES). */
static char *read_file(const char *path, size_t *len_out, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *why = strerror(errno);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (len == cap) {
            if (cap > AETHER_SHARDMAP_JSON_MAX_BYTES) {
                *why = "file too large";
                free(buf);
                buf = NULL;
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                *why = "read error";
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (buf == NULL && *why == NULL)
        *why = "out of memory";
    fclose(f);
    *len_out = len;
    return buf;
}

static const char *plan_node_name(const aether_rebalance_plan *p, uint32_t i)
{
    return i == AETHER_PLAN_NODE_NONE ? "(none)" : p->nodes[i].id.str;
}

static void print_plan(const aether_rebalance_plan *p, const aether_shardmap *m)
{
    printf("plan: map version %llu -> %llu, term %llu, %u shards, replication %u "
           "(%u owners per shard)\n",
           (unsigned long long)p->from_version, (unsigned long long)p->to_version,
           (unsigned long long)m->term, p->shard_count, p->replication, p->owner_count);
    printf("eligible nodes: %u, zones: %u%s%s\n", p->eligible_count, p->zone_count,
           p->zone_limited ? " (zone sizes prevent an even slot spread)" : "",
           p->brake_engaged ? ", brake engaged (only orphaned primaries move)" : "");
    printf("primaries moved:  %u (theoretical minimum %u; %u orphaned shards re-homed",
           p->primaries_moved, p->primaries_min, p->orphans);
    if (p->deferred > 0)
        printf(", %u deferred by the budget", p->deferred);
    printf(")\n");
    printf("owner slots added: %u (theoretical minimum %u), removed: %u\n", p->slots_added,
           p->slots_min, p->slots_removed);
    printf("\n%-24s %-9s %22s %22s\n", "node", "status", "primaries before->after",
           "slots before->after");
    for (uint32_t i = 0; i < p->node_count; i++) {
        const aether_plan_node *n = &p->nodes[i];
        char prim[48], slots[48];
        snprintf(prim, sizeof(prim), "%u -> %u (target %u)", n->primaries_before,
                 n->primaries_after, n->primary_target);
        snprintf(slots, sizeof(slots), "%u -> %u (target %u)", n->slots_before, n->slots_after,
                 n->slot_target);
        printf("%-24s %-9s %22s %22s\n", n->id.str,
               n->in_topology ? aether_node_status_name(n->status) : "gone", prim, slots);
    }
    if (p->move_count > 0) {
        if (p->move_count > PLAN_MOVES_SHOWN)
            printf("\nprimary moves (shard: from -> to), first %u:\n", PLAN_MOVES_SHOWN);
        else
            printf("\nprimary moves (shard: from -> to):\n");
        for (uint32_t i = 0; i < p->move_count && i < PLAN_MOVES_SHOWN; i++)
            printf("  %u: %s -> %s\n", p->moves[i].shard, plan_node_name(p, p->moves[i].from),
                   plan_node_name(p, p->moves[i].to));
        if (p->move_count > PLAN_MOVES_SHOWN)
            printf("  ... and %u more\n", p->move_count - PLAN_MOVES_SHOWN);
    }
}

/* ---- plan, live mode ---------------------------------------------------------
 * The strategy is a pure function of (map, topology, config), so the same
 * call the leader makes can be made here on what the cluster stored: the
 * current map and the healthy nodes of the stored topology, changed by the
 * operator's hypotheticals (--add, --remove, --draining, --zones).
 */

#define PLAN_NODES_MAX 4096

typedef struct plan_live_args {
    const char *add, *remove, *draining, *zones; /* comma-separated lists, NULL = none */
    uint32_t replication;                        /* 0 = the map's */
    uint32_t max_moves;
    bool brake;
} plan_live_args;

/* A copy of a list split in place: items point into *buf (caller frees).
 * Returns the count, or -1 (message printed) for an empty entry. */
static int plan_list(const char *opt, const char *arg, char **buf, char ***items)
{
    *buf = NULL;
    *items = NULL;
    if (arg == NULL)
        return 0;
    size_t max = 1;
    for (const char *p = arg; *p != '\0'; p++)
        max += *p == ',';
    *buf = strdup(arg);
    *items = calloc(max, sizeof(char *));
    if (*buf == NULL || *items == NULL) {
        fprintf(stderr, "aetherctl: out of memory\n");
        return -1;
    }
    int n = split_list(*buf, *items, (int)max);
    if (n < 0)
        fprintf(stderr, "aetherctl: --%s: empty entry in '%s'\n", opt, arg);
    return n;
}

/* --draining and --zones (lists split by plan_list) applied to nodes[0..n),
 * in both modes; `among` says which nodes may be named (for the error).
 * Each change is appended to changes' "draining" and "zones" arrays when
 * changes is not NULL. 0, or EXIT_USAGE with the reason said. */
static int plan_apply_draining_zones(aether_strategy_node *nodes, size_t n, char **dr, int n_dr,
                                     char **zn, int n_zn, const char *among, json_t *changes)
{
    for (int i = 0; i < n_dr; i++) {
        int at = plan_find(nodes, n, dr[i]);
        if (at < 0) {
            fprintf(stderr, "aetherctl: --draining: '%s' is not %s\n", dr[i], among);
            return EXIT_USAGE;
        }
        nodes[at].status = AETHER_NODE_DRAINING;
        if (changes != NULL)
            json_array_append_new(json_object_get(changes, "draining"), json_string(dr[i]));
    }
    for (int i = 0; i < n_zn; i++) {
        char *eq = strchr(zn[i], '=');
        if (eq == NULL) {
            fprintf(stderr, "aetherctl: --zones: '%s' is not NODE=ZONE\n", zn[i]);
            return EXIT_USAGE;
        }
        *eq = '\0';
        int at = plan_find(nodes, n, zn[i]);
        aether_err err = {0};
        if (at < 0) {
            fprintf(stderr, "aetherctl: --zones: '%s' is not %s\n", zn[i], among);
            return EXIT_USAGE;
        }
        if (aether_strategy_node_make(&nodes[at], zn[i], eq + 1, nodes[at].status, &err) !=
            AETHER_OK) {
            fprintf(stderr, "aetherctl: --zones: node '%s': %s\n", zn[i], err.msg);
            return EXIT_USAGE;
        }
        if (changes != NULL)
            json_array_append_new(json_object_get(changes, "zones"),
                                  json_pack("{s:s,s:s}", "node", zn[i], "zone", eq + 1));
        *eq = '=';
    }
    return 0;
}

static json_t *plan_json(const ctl_conn *cc, const aether_rebalance_plan *p,
                         const aether_shardmap *next, json_t *changes)
{
    json_t *doc = json_object();
    ctl_jset(doc, "cluster", json_string(cc->cluster));
    ctl_jset(doc, "live", json_true());
    ctl_jset(doc, "from_version", ctl_jint(p->from_version));
    ctl_jset(doc, "to_version", ctl_jint(p->to_version));
    ctl_jset(doc, "term", ctl_jint(next->term));
    ctl_jset(doc, "shard_count", ctl_jint(p->shard_count));
    ctl_jset(doc, "replication", ctl_jint(p->replication));
    ctl_jset(doc, "owner_count", ctl_jint(p->owner_count));
    ctl_jset(doc, "eligible", ctl_jint(p->eligible_count));
    ctl_jset(doc, "zones", ctl_jint(p->zone_count));
    ctl_jset(doc, "changes", changes);
    bool unchanged = p->move_count == 0 && p->slots_added == 0 && p->slots_removed == 0;
    ctl_jset(doc, "unchanged", json_boolean(unchanged));
    ctl_jset(doc, "primaries_moved", ctl_jint(p->primaries_moved));
    ctl_jset(doc, "primaries_min", ctl_jint(p->primaries_min));
    ctl_jset(doc, "orphans", ctl_jint(p->orphans));
    ctl_jset(doc, "slots_added", ctl_jint(p->slots_added));
    ctl_jset(doc, "slots_removed", ctl_jint(p->slots_removed));
    ctl_jset(doc, "slots_min", ctl_jint(p->slots_min));
    ctl_jset(doc, "deferred", ctl_jint(p->deferred));
    ctl_jset(doc, "brake_engaged", json_boolean(p->brake_engaged));
    ctl_jset(doc, "zone_limited", json_boolean(p->zone_limited));
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < p->node_count; i++) {
        const aether_plan_node *n = &p->nodes[i];
        json_t *jn = json_object();
        ctl_jset(jn, "id", json_string(n->id.str));
        ctl_jset(jn, "status", json_string(n->in_topology ? aether_node_status_name(n->status) : "gone"));
        ctl_jset(jn, "primaries_before", ctl_jint(n->primaries_before));
        ctl_jset(jn, "primaries_after", ctl_jint(n->primaries_after));
        ctl_jset(jn, "primary_target", ctl_jint(n->primary_target));
        ctl_jset(jn, "slots_before", ctl_jint(n->slots_before));
        ctl_jset(jn, "slots_after", ctl_jint(n->slots_after));
        ctl_jset(jn, "slot_target", ctl_jint(n->slot_target));
        json_array_append_new(nodes, jn);
    }
    ctl_jset(doc, "nodes", nodes);
    json_t *moves = json_array();
    for (uint32_t i = 0; i < p->move_count; i++) {
        const aether_plan_move *mv = &p->moves[i];
        json_t *jm = json_object();
        ctl_jset(jm, "shard", ctl_jint(mv->shard));
        ctl_jset(jm, "from", mv->from == AETHER_PLAN_NODE_NONE ? json_null()
                                                            : json_string(p->nodes[mv->from].id.str));
        ctl_jset(jm, "to", mv->to == AETHER_PLAN_NODE_NONE ? json_null()
                                                        : json_string(p->nodes[mv->to].id.str));
        json_array_append_new(moves, jm);
    }
    ctl_jset(doc, "moves", moves);
    json_t *map = NULL;
    if (aether_shardmap_json_pack(next, &map, NULL) == AETHER_OK)
        ctl_jset(doc, "map", map);
    return doc;
}

static int plan_live(const command *self, const ctl_opts *o, const plan_live_args *a)
{
    (void)self;
    char *add_buf = NULL, *rm_buf = NULL, *dr_buf = NULL, *zn_buf = NULL;
    char **add = NULL, **rm = NULL, **dr = NULL, **zn = NULL;
    int n_add = plan_list("add", a->add, &add_buf, &add);
    int n_rm = n_add < 0 ? -1 : plan_list("remove", a->remove, &rm_buf, &rm);
    int n_dr = n_rm < 0 ? -1 : plan_list("draining", a->draining, &dr_buf, &dr);
    int n_zn = n_dr < 0 ? -1 : plan_list("zones", a->zones, &zn_buf, &zn);
    int rc = n_zn < 0 ? EXIT_USAGE : 0;
    ctl_conn cc;
    memset(&cc, 0, sizeof(cc));
    ctl_view v;
    memset(&v, 0, sizeof(v));
    aether_strategy_node *nodes = NULL;
    size_t n = 0;
    json_t *changes = NULL;
    aether_shardmap *next = NULL;
    aether_rebalance_plan *plan = NULL;
    aether_err err = {0};

    if (rc == 0)
        rc = ctl_connect(o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc == 0)
        rc = ctl_read(&cc, &v, false);
    if (rc == 0 && v.map == NULL)
        rc = ctl_no_map(&cc);
    if (rc == 0 && !v.have_topo)
        rc = ctl_no_cluster(&cc, "no topology yet in bucket '%s'", cc.state_bucket);
    if (rc == 0) {
        nodes = calloc((size_t)v.topo.count + (size_t)n_add + 1, sizeof(*nodes));
        changes = json_pack("{s:[],s:[],s:[],s:[]}", "add", "remove", "draining", "zones");
        if (nodes == NULL || changes == NULL) {
            fprintf(stderr, "aetherctl: out of memory\n");
            rc = EXIT_FAILED;
        }
    }
    /* The healthy nodes as the cluster stores them. */
    for (uint32_t i = 0; rc == 0 && i < v.topo.count; i++)
        if (aether_node_status_is_healthy(v.topo.nodes[i].status))
            aether_strategy_node_from_info(&nodes[n++], &v.topo.nodes[i]);
    for (int i = 0; rc == 0 && i < n_rm; i++) {
        int at = plan_find(nodes, n, rm[i]);
        if (at < 0) {
            fprintf(stderr, "aetherctl: --remove: '%s' is not a healthy node of cluster '%s'\n",
                    rm[i], cc.cluster);
            rc = EXIT_USAGE;
            break;
        }
        memmove(&nodes[at], &nodes[at + 1], (n - (size_t)at - 1) * sizeof(*nodes));
        n--;
        json_array_append_new(json_object_get(changes, "remove"), json_string(rm[i]));
    }
    for (int i = 0; rc == 0 && i < n_add; i++) {
        if (plan_find(nodes, n, add[i]) >= 0) {
            fprintf(stderr, "aetherctl: --add: '%s' is already a healthy node of cluster '%s'\n",
                    add[i], cc.cluster);
            rc = EXIT_USAGE;
            break;
        }
        if (aether_strategy_node_make(&nodes[n], add[i], NULL, AETHER_NODE_ACTIVE, &err) !=
            AETHER_OK) {
            fprintf(stderr, "aetherctl: --add: invalid node id '%s': %s\n", add[i], err.msg);
            rc = EXIT_USAGE;
            break;
        }
        n++;
        json_array_append_new(json_object_get(changes, "add"), json_string(add[i]));
    }
    if (rc == 0)
        rc = plan_apply_draining_zones(nodes, n, dr, n_dr, zn, n_zn,
                                       "a healthy node (after --add and --remove)", changes);
    uint32_t repl = a->replication != 0 ? a->replication : (v.map ? v.map->replication : 1);
    if (rc == 0 && a->replication != 0 && a->replication > n) {
        fprintf(stderr, "aetherctl: --replication %u is larger than the healthy node count %zu\n",
                a->replication, n);
        rc = EXIT_USAGE;
    }
    if (rc == 0) {
        aether_strategy_config cfg = {.shard_count = v.map->shard_count,
                                      .replication = repl,
                                      .max_moves = a->max_moves,
                                      .brake_engaged = a->brake};
        aether_status st = aether_strategy_default()->compute(v.map, nodes, n, &cfg, v.map->term,
                                                              &next, &plan, &err);
        if (st != AETHER_OK) {
            fprintf(stderr, "aetherctl: plan: %s\n", err.msg);
            rc = st == AETHER_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        }
    }
    if (rc == 0) {
        bool unchanged = plan->move_count == 0 && plan->slots_added == 0 &&
                         plan->slots_removed == 0;
        if (o->json) {
            json_t *doc = plan_json(&cc, plan, next, changes);
            changes = NULL; /* the document holds it */
            rc = ctl_emit_json(doc);
        } else {
            printf("live plan for cluster '%s' at %s: map version %" PRIu64 " (term %" PRIu64
                   "), topology version %" PRIu64 "\n",
                   cc.cluster, cc.servers, v.map->version, (uint64_t)v.map->term, v.topo.version);
            printf("assuming: ");
            if (n_add + n_rm + n_dr + n_zn == 0)
                printf("the topology as it is");
            const char *sep = "";
            for (int i = 0; i < n_add; i++, sep = ", ")
                printf("%s+%s", sep, add[i]);
            for (int i = 0; i < n_rm; i++, sep = ", ")
                printf("%s-%s", sep, rm[i]);
            for (int i = 0; i < n_dr; i++, sep = ", ")
                printf("%s%s draining", sep, dr[i]);
            for (int i = 0; i < n_zn; i++, sep = ", ")
                printf("%szone %s", sep, zn[i]);
            printf("\n\n");
            print_plan(plan, next);
            if (unchanged)
                printf("\nno change: the current map is what the strategy wants\n");
        }
    }
    json_decref(changes);
    aether_rebalance_plan_destroy(plan);
    aether_shardmap_destroy(next);
    free(nodes);
    ctl_view_fini(&v);
    if (cc.nc != NULL)
        ctl_close(&cc);
    free(add_buf);
    free(rm_buf);
    free(dr_buf);
    free(zn_buf);
    free(add);
    free(rm);
    free(dr);
    free(zn);
    return rc;
}
int cmd_plan(int argc, char **argv)
{
    const command *self = ctl_find_command("plan");
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'N'},
        {"shards", required_argument, NULL, 'n'},
        {"replication", required_argument, NULL, 'r'},
        {"zones", required_argument, NULL, 'z'},
        {"draining", required_argument, NULL, 'd'},
        {"from", required_argument, NULL, 'f'},
        {"max-moves", required_argument, NULL, 'm'},
        {"brake", no_argument, NULL, 'b'},
        {"term", required_argument, NULL, 't'},
        {"live", no_argument, NULL, OPT_LIVE},
        {"add", required_argument, NULL, OPT_ADD},
        {"remove", required_argument, NULL, OPT_REMOVE},
        {NULL, 0, NULL, 0},
    };
    static aether_strategy_node nodes[PLAN_NODES_MAX];
    static char *items[PLAN_NODES_MAX];
    const char *nodes_arg = NULL, *zones_arg = NULL, *draining_arg = NULL, *from = NULL;
    const char *add_arg = NULL, *remove_arg = NULL;
    uint64_t shards = 0, repl = 0, max_moves = 0, term = 0;
    bool brake = false, json = false, have_term = false, live = false;
    ctl_opts o = {0};
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "N:n:r:z:d:f:m:bt:", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 'N': nodes_arg = optarg; break;
        case 'z': zones_arg = optarg; break;
        case 'd': draining_arg = optarg; break;
        case 'f': from = optarg; break;
        case 'b': brake = true; break;
        case OPT_LIVE: live = true; break;
        case OPT_ADD: add_arg = optarg; break;
        case OPT_REMOVE: remove_arg = optarg; break;
        case 'n':
            if (ctl_parse_u64_in(optarg, 1, AETHER_SHARD_COUNT_MAX, &shards) != 0)
                return ctl_usage_error(self, "--shards must be an integer in 1..65536, got '%s'",
                                   optarg);
            break;
        case 'r':
            if (ctl_parse_u64_in(optarg, 1, AETHER_REPLICATION_MAX, &repl) != 0)
                return ctl_usage_error(self, "--replication must be an integer in 1..7, got '%s'",
                                   optarg);
            break;
        case 'm':
            if (ctl_parse_u64_in(optarg, 0, UINT32_MAX, &max_moves) != 0)
                return ctl_usage_error(self, "--max-moves must be an integer >= 0, got '%s'", optarg);
            break;
        case 't':
            if (ctl_parse_u64_in(optarg, 0, INT64_MAX, &term) != 0)
                return ctl_usage_error(self, "--term must be an integer in 0..2^63-1, got '%s'",
                                   optarg);
            have_term = true;
            break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;
    json = o.json;
    if (live || (nodes_arg == NULL && from == NULL)) {
        if (nodes_arg != NULL || from != NULL || shards != 0 || have_term)
            return ctl_usage_error(self, "--nodes, --from, --shards and --term are offline options; "
                               "live mode reads the map and topology from the cluster%s", "");
        plan_live_args a = {.add = add_arg, .remove = remove_arg, .draining = draining_arg,
                            .zones = zones_arg, .replication = (uint32_t)repl,
                            .max_moves = (uint32_t)max_moves, .brake = brake};
        return plan_live(self, &o, &a);
    }
    if (add_arg != NULL || remove_arg != NULL || o.any_connection)
        return ctl_usage_error(self, "--add, --remove and the connection options need live mode "
                           "(no --nodes, no --from)%s", "");
    if (nodes_arg == NULL || nodes_arg[0] == '\0')
        return ctl_usage_error(self, "no nodes: --nodes A,B,... is required with --from%s", "");

    /* Topology. */
    char *buf = strdup(nodes_arg);
    if (buf == NULL)
        return 1;
    int count = split_list(buf, items, PLAN_NODES_MAX);
    if (count < 0) {
        free(buf);
        return ctl_usage_error(self, "--nodes: empty entry or more than 4096 nodes in '%s'",
                           nodes_arg);
    }
    for (int i = 0; i < count; i++) {
        aether_err err = {0};
        if (aether_strategy_node_make(&nodes[i], items[i], NULL, AETHER_NODE_ACTIVE, &err) !=
            AETHER_OK) {
            fprintf(stderr, "aetherctl: --nodes: invalid node id '%s': %s\n", items[i], err.msg);
            free(buf);
            return EXIT_USAGE;
        }
        if (plan_find(nodes, (size_t)i, items[i]) >= 0) {
            fprintf(stderr, "aetherctl: --nodes: node '%s' listed twice\n", items[i]);
            free(buf);
            return EXIT_USAGE;
        }
    }
    free(buf);
    char *dr_buf = NULL, *zn_buf = NULL;
    char **dr = NULL, **zn = NULL;
    int n_dr = plan_list("draining", draining_arg, &dr_buf, &dr);
    int n_zn = n_dr < 0 ? -1 : plan_list("zones", zones_arg, &zn_buf, &zn);
    int lists_rc = n_zn < 0 ? EXIT_USAGE
                            : plan_apply_draining_zones(nodes, (size_t)count, dr, n_dr, zn, n_zn,
                                                        "in --nodes", NULL);
    free(dr_buf);
    free(dr);
    free(zn_buf);
    free(zn);
    if (lists_rc != 0)
        return lists_rc;

    /* The current map. */
    aether_shardmap *old = NULL;
    if (from != NULL) {
        size_t len = 0;
        const char *why = NULL;
        char *text = read_file(from, &len, &why);
        if (text == NULL) {
            fprintf(stderr, "aetherctl: --from %s: %s\n", from, why);
            return EXIT_USAGE;
        }
        aether_err err = {0};
        /* The stored value as it is (format 2: `nats kv get --raw`), or
         * the JSON view that `aetherctl plan --json` prints. */
        aether_status st = len >= 4 && memcmp(text, AETHER_SHARDMAP_CODEC_MAGIC, 4) == 0
                               ? aether_shardmap_codec_decode(text, len, &old, NULL, &err)
                               : aether_shardmap_json_decode(text, len, &old, &err);
        free(text);
        if (st != AETHER_OK) {
            fprintf(stderr, "aetherctl: --from %s: malformed map: %s\n", from, err.msg);
            return EXIT_USAGE;
        }
        if (shards != 0 && shards != old->shard_count) {
            fprintf(stderr, "aetherctl: --shards %llu differs from the --from map's %u "
                    "(resharding is not a rebalance)\n", (unsigned long long)shards,
                    old->shard_count);
            aether_shardmap_destroy(old);
            return EXIT_USAGE;
        }
        shards = old->shard_count;
        if (repl == 0)
            repl = old->replication;
        if (!have_term)
            term = old->term;
    }
    if (shards == 0)
        shards = AETHER_SHARD_COUNT_DEFAULT;
    if (repl == 0)
        repl = 1;
    if (repl > (uint64_t)count) {
        fprintf(stderr, "aetherctl: --replication %llu is larger than the node count %d\n",
                (unsigned long long)repl, count);
        aether_shardmap_destroy(old);
        return EXIT_USAGE;
    }

    aether_strategy_config cfg = {.shard_count = (uint32_t)shards,
                                  .replication = (uint32_t)repl,
                                  .max_moves = (uint32_t)max_moves,
                                  .brake_engaged = brake};
    aether_shardmap *next = NULL;
    aether_rebalance_plan *plan = NULL;
    aether_err err = {0};
    aether_status st = aether_strategy_default()->compute(old, nodes, (size_t)count, &cfg, term,
                                                          &next, &plan, &err);
    aether_shardmap_destroy(old);
    if (st != AETHER_OK) {
        fprintf(stderr, "aetherctl: plan: %s\n", err.msg);
        return st == AETHER_EINVAL ? EXIT_USAGE : 1;
    }
    int rc = 0;
    if (json) {
        char *text = NULL;
        size_t len = 0;
        if (aether_shardmap_json_encode(next, &text, &len, &err) != AETHER_OK) {
            fprintf(stderr, "aetherctl: plan: %s\n", err.msg);
            rc = 1;
        } else {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
            free(text);
        }
    } else {
        print_plan(plan, next);
    }
    aether_rebalance_plan_destroy(plan);
    aether_shardmap_destroy(next);
    return rc;
}

