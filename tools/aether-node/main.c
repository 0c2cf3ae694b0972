/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/main.c: the node daemon (tools layer): command line,
 * settings, the embedded daemon mode and main().
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
 * "+<ms since start>ms <node> <aether_event_format line>". The ShardAssigned
 * events of one map (batches of up to 1024 shards) are folded into one count
 * line, and LeaseRenewed (every ttl/4) is not printed, unless --verbose. It runs until SIGINT/SIGTERM or --duration, then stops every
 * member and frees everything.
 *
 *   aether-node --nats URL[,URL...] --node ID [--cluster NAME] [--zone Z]
 *               [--shards S] [--replication R] [--duration SECONDS]
 *               [--seed X] [--quiet] [--verbose]
 *
 * NATS mode runs ONE node in this process, started like any embedder's:
 * aether_node_start (transport/aether_node.h) with the resolved settings,
 * which makes the nats.c connection (the URL list as its server pool;
 * reconnects forever; the first connect retried for
 * nats_connect_timeout_ms, then "cannot reach NATS at URL: <error>" and
 * exit 1), the JetStream KV buckets aether_<cluster>_lease (TTL =
 * lease_ttl_ms) and aether_<cluster>_state (no TTL) if missing, the NATS
 * transport and the executors. This program adds, through the internal
 * hooks (transport/aether_node_hooks.h), a JetStream wait of
 * KV_CREATE_LIMIT_MS (JetStream starting, or a restarted cluster server
 * without its routes yet; then exit 1) that a SIGINT/SIGTERM ends at once
 * with exit 0 and a log line (it never joined); a bucket of another TTL or
 * replica count exits 2. Events this node emits are printed as in the embedded
 * mode, plus "+<ms>ms <node> LEADER elected term=T" / "LEADER lost term=T"
 * when its view's is_leader flips. On SIGINT/SIGTERM or --duration it
 * drains (aether_node_drain), waits at most handoff_timeout_ms +
 * DRAIN_EXTRA_MS until the leader has declared it Left (a draining leader
 * first resigns and its successor finishes the drain) or no other node is
 * Active (nothing to hand off to), then stops and destroys the node (aether_node_stop,
 * aether_node_destroy: member, transport, executors, stores, connection),
 * ends the nats.c library and waits (at most NATS_CLOSE_WAIT_MS) for its
 * threads to end, then exits 0. A node drained from outside (aetherctl
 * drain) that the leader has declared Left has nothing left to do: it
 * stops the same way, at once, and exits 0 ("stopping (drained and left:
 * nothing left to do)").
 *
 * The demo scenario (--scenario demo): demo.c. The run's DESIGN: node_run.h.
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
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aether_build.h"
#include <aether/aether_version.h>

#include "node_run.h"

/* ---- footprint ------------------------------------------------------------------ */

/* glibc malloc, tuned for a daemon whose big allocations are shard maps
 * (docs/tuning.md has the measurements):
 *  - at most MALLOC_ARENAS arenas instead of 8 per core: each thread that
 *    allocates would otherwise get an arena of its own, and the memory
 *    freed in one is never reused by another;
 *  - blocks of MMAP_THRESHOLD_BYTES and more (maps, their encodings, KV
 *    values) mapped and unmapped on their own: a fixed threshold turns off
 *    glibc's dynamic one, which after the first large free serves 4 MB maps
 *    from the heap and keeps them resident after they are freed.
 * An environment variable the operator sets (MALLOC_ARENA_MAX,
 * MALLOC_MMAP_THRESHOLD_, glibc's tunables) takes precedence: nothing is
 * changed when one is present. Before any thread starts. */
#define MALLOC_ARENAS 2
#define MMAP_THRESHOLD_BYTES (128 * 1024)

static void malloc_tune(void)
{
    if (getenv("MALLOC_ARENA_MAX") == NULL && getenv("GLIBC_TUNABLES") == NULL)
        (void)mallopt(M_ARENA_MAX, MALLOC_ARENAS);
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL && getenv("GLIBC_TUNABLES") == NULL)
        (void)mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
}

/* ---- the end of the nats.c library ------------------------------------------------ */

/* How long exit waits for the nats.c library's threads, at most. A
 * destroyed connection's threads (reader, flusher, subscription delivery)
 * end on their own, after natsConnection_Destroy has returned, and the last
 * one to end frees the library (natsLib_Release, then _freeLib, which locks
 * the library's mutex once more). nats_Close does not wait for them; exit()
 * then runs nats.c's atexit hook, which destroys that mutex if it reads no
 * reference left - while such a thread may still be inside _freeLib, between
 * its release and its last lock. nats.c's mutex calls abort() on a failed
 * lock or unlock, silently (or the thread finds the pointer NULL: SIGSEGV):
 * the likely cause of a node under load that stopped cleanly and died of
 * SIGABRT (exit 134) with nothing on stderr (tools.nats_three_nodes, once;
 * integration.nats_exit stages the race every time). nats_CloseAndWait
 * returns once the library is freed, so nothing of nats.c runs when exit()
 * begins (as nats_probe, nats_forge and nats_replay already do). Past the bound (a
 * thread stuck in a socket call) the daemon exits anyway and says so. */
#define NATS_CLOSE_WAIT_MS 5000

static void end_nats_library(void)
{
    natsStatus s = nats_CloseAndWait(NATS_CLOSE_WAIT_MS);
    if (s != NATS_OK)
        fprintf(stderr, "aether-node: the nats.c library did not end within %d ms (%s): exiting anyway\n",
                NATS_CLOSE_WAIT_MS, natsStatus_GetText(s));
}

/* ---- daemon mode -------------------------------------------------------------- */

static int run_daemon(node_run *d)
{
    node_say(d, "aether-node: embedded, %u nodes, %u shards, replication %u, seed %llu, pool of %u workers\n",
        d->n_nodes, d->base.shard_count, d->base.replication, (unsigned long long)d->opt.seed,
        aether_pool_workers(d->ex));
    for (uint32_t i = 0; i < d->n_nodes; i++) {
        if (node_start(d, i) != 0)
            return 1;
        node_say(d, "+%llums %s started\n", (unsigned long long)node_since_start_ms(d), d->nodes[i].id);
    }
    uint64_t ticks_max = d->opt.duration_s > 0 ? (uint64_t)ceil(d->opt.duration_s * 1000.0 / TICK_MS)
                                               : UINT64_MAX;
    uint64_t deadline = d->opt.duration_s > 0
                            ? d->start_ns + (uint64_t)(d->opt.duration_s * 1e9)
                            : UINT64_MAX;
    for (uint64_t tick = 0; tick < ticks_max && node_stop_signal == 0 && node_now_ns() < deadline; tick++) {
        node_idle_ms(d, TICK_MS);
        node_flush_quiet_batches(d, false);
    }
    node_flush_quiet_batches(d, true);
    node_say(d, "+%llums stopping (%s)\n", (unsigned long long)node_since_start_ms(d),
        node_stop_signal == SIGINT ? "SIGINT" : node_stop_signal == SIGTERM ? "SIGTERM" : "duration reached");
    node_print_status(d);
    return node_violations_exit(d);
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
            "  --verbose            print LeaseRenewed (hidden otherwise) and one line per\n"
            "                       ShardAssigned (and, in the demo, per ShardMigrated)\n"
            "                       event instead of a count\n"
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
    malloc_tune();
    setvbuf(stdout, NULL, _IOLBF, 0);
    node_signals_install();

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
        o.seed = h ^ node_now_ns() ^ ((uint64_t)getpid() << 32);
    }
    int init = node_run_init(d, &o, n_nodes);
    if (init != 0)
        rc = 1;
    else
        rc = o.nats_mode ? node_nats_mode_run(d) : o.scenario != NULL ? node_demo_run(d) : run_daemon(d);
    node_run_fini(d);
    free(d);
    if (o.nats_mode)
        end_nats_library(); /* the very end: every connection is destroyed */
    return rc;
}

