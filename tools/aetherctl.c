/*
 * aetherctl.c: the operator CLI (tools layer). Single-threaded.
 *
 *   aetherctl [--help] COMMAND [ARGS...]
 *
 * Commands are rows of one table (name, one-line summary, usage, handler), so
 * adding one (status, shards, plan, ...) is adding a row and a function;
 * `aetherctl help` and `aetherctl --help` list the table. Each handler parses
 * its own options with getopt_long over its own argv (argv[0] = the command
 * name).
 *
 * Exit status: 0 success; 1 the command ran and failed; 2 usage error
 * (unknown command, bad option or argument), with a message on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhash.h"
#include "shardmap_json.h"
#include "strategy.h"

#define EXIT_USAGE 2

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage; /* printed after "usage: aetherctl " */
    const char *details;
    int (*run)(int argc, char **argv);
} command;

static int cmd_help(int argc, char **argv);
static int cmd_shard_of(int argc, char **argv);
static int cmd_plan(int argc, char **argv);

static const command COMMANDS[] = {
    {"shard-of", "print the shard a key maps to", "shard-of KEY [--shards N]",
     "Prints the shard of KEY: XXH64(KEY bytes, seed 0) mod N, the rule every\n"
     "node uses (see tests/vectors/README.md). KEY is taken as raw bytes; use\n"
     "`--` before a KEY that starts with '-'.\n"
     "\n"
     "options:\n"
     "  -n, --shards N   shard count, 1..65536 (default 1024)\n"
     "  -h, --help       show this help\n",
     cmd_shard_of},
    {"plan", "dry-run the rebalancing strategy: the next map and what moves",
     "plan --nodes A,B,... [--shards N] [--replication R] [--zones A=Z,...]\n"
     "       [--draining A,...] [--from MAP.json] [--max-moves N] [--brake] [--json]",
     "Computes, offline, the map the default strategy would publish next for the\n"
     "given topology, and what would move (nothing is applied). Without --from\n"
     "it is the bootstrap map (version 1). Nodes of the --from map that are not\n"
     "in --nodes count as failed/gone: their shards are re-homed.\n"
     "\n"
     "options:\n"
     "  -N, --nodes LIST        the healthy nodes, comma-separated node ids (required)\n"
     "  -n, --shards N          shard count, 1..65536 (default: the --from map's, else 1024)\n"
     "  -r, --replication R     owners per shard, 1..7, at most the node count\n"
     "                          (default: the --from map's, else 1)\n"
     "  -z, --zones LIST        NODE=ZONE pairs, comma-separated (nodes without one: no zone)\n"
     "  -d, --draining LIST     nodes of --nodes that are draining (emptied, kept until empty)\n"
     "  -f, --from FILE         the current map, in the ShardMap JSON shape\n"
     "  -m, --max-moves N       movement budget: primary changes in this step (default 0 = all)\n"
     "  -b, --brake             rebalance brake engaged: only re-home orphaned primaries\n"
     "  -t, --term T            term stamped on the new map (default: the --from map's, else 0)\n"
     "  -j, --json              print the new map as JSON (the --from shape) instead of the\n"
     "                          readable plan\n"
     "  -h, --help              show this help\n"
     "\n"
     "Exit status 2 on bad input: no nodes, an invalid or duplicate node id, R larger\n"
     "than the node count, a --zones or --draining entry naming an unknown node, a\n"
     "malformed --from map, a shard count out of range or different from --from's.\n",
     cmd_plan},
    {"help", "show help for aetherctl or a command", "help [COMMAND]", "", cmd_help},
};
#define COMMAND_COUNT (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: aetherctl [--help] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nRun 'aetherctl help COMMAND' or 'aetherctl COMMAND --help' for details.\n");
}

static void print_command_help(FILE *out, const command *c)
{
    fprintf(out, "usage: aetherctl %s\n\n%s.\n", c->usage, c->summary);
    if (c->details[0] != '\0')
        fprintf(out, "\n%s", c->details);
}

static int usage_error(const command *c, const char *fmt, const char *arg)
{
    fprintf(stderr, "aetherctl: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    if (c != NULL)
        fprintf(stderr, "usage: aetherctl %s\n", c->usage);
    else
        fprintf(stderr, "Run 'aetherctl --help' for the list of commands.\n");
    return EXIT_USAGE;
}

/* ---- help ------------------------------------------------------------------ */

static int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return usage_error(find_command("help"), "too many arguments to help%s", "");
    if (argc == 2) {
        const command *c = find_command(argv[1]);
        if (c == NULL)
            return usage_error(NULL, "unknown command '%s'", argv[1]);
        print_command_help(stdout, c);
        return 0;
    }
    print_usage(stdout);
    return 0;
}

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

static int cmd_shard_of(int argc, char **argv)
{
    const command *self = find_command("shard-of");
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
                return usage_error(self, "--shards must be an integer in 1..65536, got '%s'",
                                   optarg);
            break;
        case 'h':
            print_command_help(stdout, self);
            return 0;
        case ':':
            return usage_error(self, "option %s needs a value", argv[optind - 1]);
        default:
            return usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return usage_error(self, argc - optind == 0 ? "missing KEY%s" : "expected one KEY%s", "");
    const char *key = argv[optind];
    printf("%u\n", aether_key_shard(key, strlen(key), shards));
    return 0;
}

/* ---- plan ------------------------------------------------------------------ */

#define PLAN_MOVES_SHOWN 20u

/* A decimal integer in lo..hi, nothing else. */
static int parse_u64_in(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
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

static int plan_find(const aether_strategy_node *nodes, int count, const char *id)
{
    for (int i = 0; i < count; i++)
        if (strcmp(nodes[i].id.str, id) == 0)
            return i;
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

static int cmd_plan(int argc, char **argv)
{
    const command *self = find_command("plan");
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
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum { PLAN_NODES_MAX = 4096 };
    static aether_strategy_node nodes[PLAN_NODES_MAX];
    static char *items[PLAN_NODES_MAX];
    const char *nodes_arg = NULL, *zones_arg = NULL, *draining_arg = NULL, *from = NULL;
    uint64_t shards = 0, repl = 0, max_moves = 0, term = 0;
    bool brake = false, json = false, have_term = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":N:n:r:z:d:f:m:bt:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'N': nodes_arg = optarg; break;
        case 'z': zones_arg = optarg; break;
        case 'd': draining_arg = optarg; break;
        case 'f': from = optarg; break;
        case 'b': brake = true; break;
        case 'j': json = true; break;
        case 'n':
            if (parse_u64_in(optarg, 1, AETHER_SHARD_COUNT_MAX, &shards) != 0)
                return usage_error(self, "--shards must be an integer in 1..65536, got '%s'",
                                   optarg);
            break;
        case 'r':
            if (parse_u64_in(optarg, 1, AETHER_REPLICATION_MAX, &repl) != 0)
                return usage_error(self, "--replication must be an integer in 1..7, got '%s'",
                                   optarg);
            break;
        case 'm':
            if (parse_u64_in(optarg, 0, UINT32_MAX, &max_moves) != 0)
                return usage_error(self, "--max-moves must be an integer >= 0, got '%s'", optarg);
            break;
        case 't':
            if (parse_u64_in(optarg, 0, INT64_MAX, &term) != 0)
                return usage_error(self, "--term must be an integer in 0..2^63-1, got '%s'",
                                   optarg);
            have_term = true;
            break;
        case 'h':
            print_command_help(stdout, self);
            return 0;
        case ':':
            return usage_error(self, "option %s needs a value", argv[optind - 1]);
        default:
            return usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (nodes_arg == NULL || nodes_arg[0] == '\0')
        return usage_error(self, "no nodes: --nodes A,B,... is required%s", "");

    /* Topology. */
    char *buf = strdup(nodes_arg);
    if (buf == NULL)
        return 1;
    int count = split_list(buf, items, PLAN_NODES_MAX);
    if (count < 0) {
        free(buf);
        return usage_error(self, "--nodes: empty entry or more than 4096 nodes in '%s'",
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
        if (plan_find(nodes, i, items[i]) >= 0) {
            fprintf(stderr, "aetherctl: --nodes: node '%s' listed twice\n", items[i]);
            free(buf);
            return EXIT_USAGE;
        }
    }
    free(buf);
    if (zones_arg != NULL) {
        char *zb = strdup(zones_arg);
        if (zb == NULL)
            return 1;
        int nz = split_list(zb, items, PLAN_NODES_MAX);
        int rc = 0;
        if (nz < 0) {
            fprintf(stderr, "aetherctl: --zones: empty entry in '%s'\n", zones_arg);
            rc = EXIT_USAGE;
        }
        for (int i = 0; i < nz && rc == 0; i++) {
            char *eq = strchr(items[i], '=');
            if (eq == NULL) {
                fprintf(stderr, "aetherctl: --zones: '%s' is not NODE=ZONE\n", items[i]);
                rc = EXIT_USAGE;
                break;
            }
            *eq = '\0';
            int at = plan_find(nodes, count, items[i]);
            aether_err err = {0};
            if (at < 0) {
                fprintf(stderr, "aetherctl: --zones: unknown node '%s' (not in --nodes)\n",
                        items[i]);
                rc = EXIT_USAGE;
            } else if (aether_strategy_node_make(&nodes[at], items[i], eq + 1,
                                                 AETHER_NODE_ACTIVE, &err) != AETHER_OK) {
                fprintf(stderr, "aetherctl: --zones: node '%s': %s\n", items[i], err.msg);
                rc = EXIT_USAGE;
            }
        }
        free(zb);
        if (rc != 0)
            return rc;
    }
    if (draining_arg != NULL) {
        char *db = strdup(draining_arg);
        if (db == NULL)
            return 1;
        int nd = split_list(db, items, PLAN_NODES_MAX);
        int rc = 0;
        if (nd < 0) {
            fprintf(stderr, "aetherctl: --draining: empty entry in '%s'\n", draining_arg);
            rc = EXIT_USAGE;
        }
        for (int i = 0; i < nd && rc == 0; i++) {
            int at = plan_find(nodes, count, items[i]);
            if (at < 0) {
                fprintf(stderr, "aetherctl: --draining: unknown node '%s' (not in --nodes)\n",
                        items[i]);
                rc = EXIT_USAGE;
            } else {
                nodes[at].status = AETHER_NODE_DRAINING;
            }
        }
        free(db);
        if (rc != 0)
            return rc;
    }

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
        aether_status st = aether_shardmap_json_decode(text, len, &old, &err);
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

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (name[0] == '-')
        return usage_error(NULL, "unknown option '%s'", name);
    const command *c = find_command(name);
    if (c == NULL)
        return usage_error(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}
