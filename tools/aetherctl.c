/*
 * aetherctl.c: the operator CLI (tools layer). Single-threaded, except that
 * `watch` receives messages on nats.c's subscription threads (they only
 * enqueue; see watch below).
 *
 *   aetherctl [--help] COMMAND [ARGS...]
 *
 * Commands are rows of one table (name, one-line summary, usage, handler), so
 * adding one is adding a row and a function; `aetherctl help` and
 * `aetherctl --help` list the table. Each handler parses its own options with
 * getopt_long over its own argv (argv[0] = the command name).
 *
 * Offline commands (no server): shard-of, plan --nodes/--from.
 * Live commands talk to a running cluster over NATS: status, shards, lookup,
 * watch, drain, rebalance, plan (live mode). They share one option set (CTL_COMMON_*):
 * settings are resolved by transport/settings.h exactly as aether-node
 * resolves them (defaults < --config file < AETHER_* environment < flags),
 * the connection is made by transport/nats_conn.h, and the cluster is read
 * from where the nodes keep it (DESIGN 4):
 *   aether_<cluster>_state  key "map"      the current ShardMap (shardmap_json.h)
 *                           key "topology" the Cluster aggregate (topology_json.h)
 *                           key "term"     the highest recorded term (lease.h)
 *                           key "generation" the cluster generation (lease.h)
 *   aether_<cluster>_lease  key "leader"   the lease value (lease.h), read with
 *                           nats.c directly: the bucket TTL is the cluster's
 *                           lease ttl, which aetherctl does not know in advance
 *                           (aether_kv_nats_create checks it), and the entry's
 *                           server timestamp gives the lease's age.
 * Both are only read: aetherctl never creates a bucket or writes a key. The
 * commands that change the cluster ask the leader, as a node would: drain
 * with LeaveCluster, rebalance with RebalanceShards (request/reply on
 * aether.<cluster>.cmd.<Command>, the codec's envelope; ctl_ask_leader).
 *
 * Exit status (every command; also in `aetherctl --help` and docs/aetherctl.md):
 *   0  success;
 *   1  the command ran and failed, or the leader rejected it;
 *   2  usage error (unknown command, bad option or argument, bad settings);
 *   3  no cluster answers: cannot connect or authenticate, the cluster's
 *      buckets are missing, no shard map yet, or no leader answered a command
 *      before --timeout; the message names the servers and the cluster.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include <aether/aether_version.h>

#include "aether_build.h"
#include "auth.h"
#include "nats_auth.h"
#include "codec.h"
#include "keyhash.h"
#include "lease.h"
#include "log.h"
#include "nats_conn.h"
#include "nats_kv.h"
#include "settings.h"
#include "shardmap_json.h"
#include "strategy.h"
#include "topology.h"
#include "topology_json.h"

extern char **environ;

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_NO_CLUSTER 3

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage; /* printed after "usage: aetherctl " */
    const char *details;
    int (*run)(int argc, char **argv);
} command;

static int cmd_help(int argc, char **argv);
static int cmd_shard_of(int argc, char **argv);
static int cmd_secret(int argc, char **argv);
static int cmd_plan(int argc, char **argv);
static int cmd_status(int argc, char **argv);
static int cmd_shards(int argc, char **argv);
static int cmd_lookup(int argc, char **argv);
static int cmd_watch(int argc, char **argv);
static int cmd_drain(int argc, char **argv);
static int cmd_rebalance(int argc, char **argv);
static int cmd_fail(int argc, char **argv);
static int cmd_top(int argc, char **argv);
static int cmd_events(int argc, char **argv);

/* The options every live command takes; their help, shown under each. */
#define CTL_COMMON_USAGE "\n       [--nats URLS] [--cluster NAME] [--config FILE] [--json] [--timeout MS]"
#define CTL_COMMON_HELP                                                                        \
    "\n"                                                                                       \
    "connection (as aether-node: defaults < --config file < AETHER_* < flags):\n"             \
    "      --nats URLS          comma-separated server list (AETHER_NATS_URLS;\n"            \
    "                           default nats://127.0.0.1:4222)\n"                              \
    "      --cluster NAME       cluster name (AETHER_CLUSTER; default aether)\n"             \
    "      --config FILE        configuration file (INI, as aether-node's; default\n"      \
    "                           $AETHER_CONFIG)\n"                                          \
    "      --nats-user U, --nats-password P, --nats-token T, --nats-creds FILE,\n"           \
    "      --nats-tls-ca FILE, --nats-tls-cert FILE, --nats-tls-key FILE,\n"                 \
    "      --nats-tls-hostname NAME\n"                                                       \
    "                           NATS authentication and TLS\n"                               \
    "      --cluster-secret-file FILE\n"                                                    \
    "                           the cluster secret (AETHER_CLUSTER_SECRET_FILE): what is\n" \
    "                           read is verified with it, commands are sealed with it;\n"  \
    "                           drain, rebalance and fail need it when the cluster has one\n" \
    "      --log-level LEVEL    library log lines on stderr (default: warnings only)\n"      \
    "      --timeout MS         bound on the whole command (connect, reads, retries)\n"      \
    "  -j, --json               one JSON document on stdout instead of text\n"               \
    "  -h, --help               show this help\n"                                            \
    "\n"                                                                                       \
    "exit status: 0 ok; 1 failed or rejected; 2 usage; 3 no cluster answers (cannot\n"       \
    "connect, buckets missing, no map yet, no leader before --timeout).\n"

static const command COMMANDS[] = {
    {"status", "live: nodes, leader and lease, map and topology versions",
     "status" CTL_COMMON_USAGE,
     "Reads the cluster's state buckets and prints the leader (term, lease age and\n"
     "expiry), the map (version, term, shards, replication, shards moving), the\n"
     "topology version and every node: status (active, draining, left, failed),\n"
     "zone, incarnation, address and the shards it owns. Default --timeout 5000.\n"
     "Exit 3 if the cluster's buckets are missing, or (after printing what there\n"
     "is) when no shard map has been published yet.\n"
     CTL_COMMON_HELP,
     cmd_status},
    {"shards", "live: per-node shard counts and a distribution view",
     "shards [--node ID]" CTL_COMMON_USAGE,
     "Prints, from the current map, each node's primaries, replicas and shards\n"
     "moving out and in, one bar per node (primaries), the balance (min..max per\n"
     "node among active nodes) and the shards in handoff. With --node, that\n"
     "node's shards as ranges (\"0-3,9,12-15\"). Default --timeout 5000.\n"
     "\n"
     "options:\n"
     "      --node ID            show this node's shard ranges\n"
     CTL_COMMON_HELP,
     cmd_shards},
    {"lookup", "live: the shard of a key and its owners in the current map",
     "lookup KEY | --shard N" CTL_COMMON_USAGE,
     "Computes the shard of KEY exactly as shard-of does (with the live map's shard\n"
     "count) and prints its owners (primary first, with their status), the map\n"
     "version and whether the shard is moving (and to which node). Use `--` before\n"
     "a KEY that starts with '-'. Default --timeout 5000.\n"
     "\n"
     "options:\n"
     "      --shard N            look up shard N instead of a key\n"
     CTL_COMMON_HELP,
     cmd_lookup},
    {"watch", "live: print cluster events and map publications as they happen",
     "watch [--count N] [--duration S] [--all]" CTL_COMMON_USAGE,
     "Subscribes to aether.<cluster>.evt.> and aether.<cluster>.map and prints one\n"
     "line per message (with --json one JSON object per line) until SIGINT or\n"
     "SIGTERM, --count messages or --duration seconds. Every message is decoded\n"
     "strictly (transport/codec.h); one that is refused is printed as REFUSED with\n"
     "the reason (kind \"refused\" in JSON) and watching goes on. --timeout bounds\n"
     "only the connect (default 5000).\n"
     "\n"
     "options:\n"
     "  -c, --count N            stop after N messages\n"
     "  -d, --duration S         stop after S seconds (decimals allowed)\n"
     "  -a, --all                also heartbeats, commands and release acks\n"
     "                           (subscribes aether.<cluster>.>)\n"
     CTL_COMMON_HELP,
     cmd_watch},
    {"drain", "live: ask the leader to drain a node (LeaveCluster), optionally wait",
     "drain NODE [--wait]" CTL_COMMON_USAGE,
     "Sends LeaveCluster{NODE} to the leader (request on\n"
     "aether.<cluster>.cmd.LeaveCluster) and prints its verdict: accepted (the\n"
     "node is Draining; its shards move away, then it is Left) or rejected with\n"
     "the leader's reason (exit 1). While no leader answers (no responders, a node\n"
     "that is not the leader, a busy leader) it retries with backoff (50 ms\n"
     "doubling to 1 s) until --timeout (default 10000), then exits 3. Draining a\n"
     "node that is already draining is accepted (idempotent).\n"
     "\n"
     "options:\n"
     "  -w, --wait               then wait until the node is Left (exit 1 if it\n"
     "                           fails or --timeout passes first), printing the\n"
     "                           shards still on it each time that count changes\n"
     "                           (\"drain n3: 12 shards left\"); --timeout bounds\n"
     "                           the request and the wait together\n"
     CTL_COMMON_HELP,
     cmd_drain},
    {"rebalance", "live: ask the leader to rebalance, or to release the rebalance brake",
     "rebalance [--release-brake] [--reason TEXT]" CTL_COMMON_USAGE,
     "Sends RebalanceShards to the leader (request on\n"
     "aether.<cluster>.cmd.RebalanceShards) and prints its verdict. Without options\n"
     "the leader runs the strategy now (a balanced map moves nothing); TEXT is the\n"
     "reason of the RebalanceStarted it emits if anything moves.\n"
     "With --release-brake it releases the rebalance brake (engaged when more than\n"
     "brake_max_offline nodes failed or left within brake_window_ms): the losses so\n"
     "far stop counting, and a full rebalance starts at once with RebalanceStarted\n"
     "reason 'brake released by operator'. The leader logs who asked: TEXT, by\n"
     "default $USER@HOST. Refused (exit 1) when the brake is not engaged. Retries\n"
     "while no leader answers, as drain does, until --timeout (default 10000).\n"
     "\n"
     "options:\n"
     "  -r, --release-brake      release the rebalance brake\n"
     "      --reason TEXT        reason / who asks, 1..63 printable bytes\n"
     CTL_COMMON_HELP,
     cmd_rebalance},
    {"fail", "live: ask the leader to declare a node failed (MarkNodeFailed)",
     "fail NODE [--force] [--incarnation N]" CTL_COMMON_USAGE,
     "Sends MarkNodeFailed{NODE} to the leader (request on\n"
     "aether.<cluster>.cmd.MarkNodeFailed) and prints its verdict. A request, not an\n"
     "order: the leader fails the node only when it has heard nothing from it for\n"
     "two heartbeat intervals (so a runtime that knows a process died can fail it\n"
     "sooner than failure_timeout); a node it still hears is refused (exit 1).\n"
     "With --force the leader fails it anyway and logs that it was forced: its\n"
     "shards move at once and the node, if alive, must rejoin with a new\n"
     "incarnation. The request names the incarnation the stored topology has for\n"
     "NODE when aetherctl starts, so a retry never fails a process that rejoined\n"
     "since (the leader refuses: ESTALE). Retries while no leader answers, as drain\n"
     "does, until --timeout (default 10000).\n"
     "\n"
     "options:\n"
     "  -f, --force              fail the node even though the leader hears it\n"
     "      --incarnation N      fail only that process of NODE (default: the one the\n"
     "                           stored topology names now)\n"
     CTL_COMMON_HELP,
     cmd_fail},
    {"top", "live: a view of the cluster refreshed every second ('q' quits)",
     "top [--once | --frames N] [--interval MS]" CTL_COMMON_USAGE,
     "Draws, every --interval (default 1000 ms): the leader and its term, the map\n"
     "(version, shards, replication, handoffs in flight), the map-version lag (the\n"
     "leader's version from its LeaseRenewed minus the stored map's), rebalances\n"
     "(completed, the last one, one in progress), each node with its status, role,\n"
     "primaries, replicas, shards moving out/in, last heartbeat and a bar of its\n"
     "primaries, and the last events. Fits an 80-column terminal; on a terminal it\n"
     "uses the alternate screen and 'q' (or Ctrl-C) quits, restoring the terminal.\n"
     "When stdout is not a terminal it prints one plain frame per interval; --json\n"
     "prints one JSON object per frame. Rebalance counts come from the event stream\n"
     "when there is one (aether-node --event-stream), else from what top sees.\n"
     "Exit 3 if the cluster cannot be read at the start (and, with --once/--frames,\n"
     "when no map is published yet).\n"
     "\n"
     "options:\n"
     "  -1, --once               print one frame and exit\n"
     "  -n, --frames N           print N frames and exit\n"
     "  -i, --interval MS        time between frames, 100..3600000 (default 1000)\n"
     CTL_COMMON_HELP,
     cmd_top},
    {"events", "live: replay (and follow) the event stream, checking per-term sequences",
     "events [--since SEQ] [--follow] [--count N]" CTL_COMMON_USAGE,
     "Replays the JetStream stream AETHER_<cluster>_EVENTS (aether-node\n"
     "--event-stream) from stream sequence SEQ (default: its first message) with an\n"
     "ordered ephemeral consumer, and prints each event with its stream sequence,\n"
     "timestamp, type, term and per-term seq (--json: one object per line). Leader-\n"
     "issued events of a term carry seq 1, 2, 3, ...: a missing seq is reported as a\n"
     "GAP line, a repeated or earlier one as OUT OF ORDER, a message that does not\n"
     "decode as REFUSED. Without --follow it stops at the end of the stream; with\n"
     "--follow it goes on until SIGINT/SIGTERM. A summary goes to stderr (--json:\n"
     "a last object with kind \"summary\"). Default --timeout 5000 bounds the\n"
     "connect and, without --follow, any wait for the next stored event.\n"
     "\n"
     "options:\n"
     "  -s, --since SEQ          start at stream sequence SEQ (>= 1)\n"
     "  -f, --follow             keep following new events until interrupted\n"
     "  -c, --count N            stop after N messages\n"
     "\n"
     "exit status: 0 no gap; 1 a gap, an out-of-order event or a refused message was\n"
     "reported (everything is still printed); 2 usage; 3 no cluster answers or the\n"
     "stream does not exist.\n"
     CTL_COMMON_HELP,
     cmd_events},
    {"plan", "dry-run the rebalancing strategy: offline, or against the live map",
     "plan --nodes A,B,... [--shards N] [--replication R] [--zones A=Z,...]\n"
     "       [--draining A,...] [--from MAP.json] [--max-moves N] [--brake] [--json]\n"
     "   or: aetherctl plan [--live] [--add A,...] [--remove A,...] [--draining A,...]\n"
     "       [--zones A=Z,...] [--replication R] [--max-moves N] [--brake]" CTL_COMMON_USAGE,
     "Computes the map the default strategy would publish next and what would\n"
     "move; nothing is applied.\n"
     "\n"
     "Offline (--nodes given): for the given topology. Without --from it is the\n"
     "bootstrap map (version 1). Nodes of the --from map that are not in --nodes\n"
     "count as failed/gone: their shards are re-homed.\n"
     "\n"
     "Live (no --nodes and no --from, or --live): reads the current map and\n"
     "topology from the cluster; the healthy nodes (active, draining) are the\n"
     "topology, changed by --add (new active nodes), --remove (nodes gone, as if\n"
     "failed) and --draining. With no change it shows what the strategy still wants\n"
     "to do (nothing, for a settled cluster). The leader paces real moves by\n"
     "max_concurrent_handoffs; the plan shows the whole step.\n"
     "\n"
     "options:\n"
     "  -N, --nodes LIST        offline: the healthy nodes, comma-separated node ids\n"
     "  -n, --shards N          offline: shard count, 1..65536 (default: the --from\n"
     "                          map's, else 1024)\n"
     "  -r, --replication R     owners per shard, 1..7, at most the node count\n"
     "                          (default: the current map's, else 1)\n"
     "  -z, --zones LIST        NODE=ZONE pairs, comma-separated (offline: nodes\n"
     "                          without one have no zone; live: replaces the stored one)\n"
     "  -d, --draining LIST     nodes that are draining (emptied, kept until empty)\n"
     "  -f, --from FILE         offline: the current map, in the ShardMap JSON shape\n"
     "  -m, --max-moves N       movement budget: primary changes in this step (default 0 = all)\n"
     "  -b, --brake             rebalance brake engaged: only re-home orphaned primaries\n"
     "  -t, --term T            offline: term stamped on the new map (default: the\n"
     "                          --from map's, else 0)\n"
     "      --live              live mode (the default without --nodes and --from)\n"
     "      --add LIST          live: nodes that join (active)\n"
     "      --remove LIST       live: nodes that disappear (their shards are re-homed)\n"
     "  -j, --json              offline: the new map as JSON (the --from shape); live:\n"
     "                          one object: the plan's summary, nodes, moves and the\n"
     "                          new map under \"map\"\n"
     "  -h, --help              show this help\n"
     "\n"
     "Exit status 2 on bad input: no nodes, an invalid or duplicate node id, R larger\n"
     "than the node count, a --zones or --draining entry naming an unknown node, a\n"
     "malformed --from map, a shard count out of range or different from --from's,\n"
     "--add of a node already healthy, --remove of a node that is not.\n"
     "Live mode takes the connection options of status (below) and exits 3 as they do.\n"
     CTL_COMMON_HELP,
     cmd_plan},
    {"shard-of", "offline: print the shard a key maps to", "shard-of KEY [--shards N]",
     "Prints the shard of KEY: XXH64(KEY bytes, seed 0) mod N, the rule every\n"
     "node uses (see tests/vectors/README.md). KEY is taken as raw bytes; use\n"
     "`--` before a KEY that starts with '-'.\n"
     "\n"
     "options:\n"
     "  -n, --shards N   shard count, 1..65536 (default 1024)\n"
     "  -h, --help       show this help\n",
     cmd_shard_of},
    {"secret", "offline: make a new cluster secret file", "secret new FILE",
     "Writes FILE, a new cluster secret: 32 random bytes (libsodium) as 64 hex\n"
     "digits and a newline, mode 0600. FILE must not exist (a secret is never\n"
     "overwritten: exit 1). Every node of a cluster is given the same file as\n"
     "cluster_secret_file.\n"
     "\n"
     "options:\n"
     "  -h, --help       show this help\n",
     cmd_secret},
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
    fprintf(out, "usage: aetherctl [--help | --version] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out,
            "\nLive commands take --nats URLS (default nats://127.0.0.1:4222), --cluster NAME\n"
            "(default aether), --config FILE, NATS auth options, --json and --timeout MS.\n"
            "\nexit status: 0 ok; 1 the command ran and failed, or the leader rejected it;\n"
            "2 usage error; 3 no cluster answers (cannot connect, buckets missing, no map\n"
            "yet, no leader before --timeout).\n"
            "\nRun 'aetherctl help COMMAND' or 'aetherctl COMMAND --help' for details.\n");
}

static void print_command_help(FILE *out, const command *c)
{
    fprintf(out, "usage: aetherctl %s\n\n%s.\n", c->usage, c->summary);
    if (c->details[0] != '\0')
        fprintf(out, "\n%s", c->details);
}

static int usage_error(const command *c, const char *fmt, const char *arg)
{
    char vis[256]; /* an argument is quoted with its control bytes escaped, never raw */
    fprintf(stderr, "aetherctl: ");
    fprintf(stderr, fmt, aether_settings_printable(arg, vis, sizeof(vis)));
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

static int cmd_secret(int argc, char **argv)
{
    const command *self = find_command("secret");
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_command_help(stdout, self);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "new") != 0)
        return usage_error(self, argc < 3 ? "expected: secret new FILE%s" : "unexpected argument '%s'",
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

/* ---- live commands: options, settings, connection ------------------------- */

/* Long-only option codes (above every short option character). */
enum {
    OPT_CONFIG = 256, /* --config FILE */
    OPT_SETTING,      /* a settings.h parameter, forwarded by its flag name */
    OPT_TIMEOUT,      /* --timeout MS */
    OPT_LIVE,         /* plan --live */
    OPT_ADD,          /* plan --add */
    OPT_REMOVE,       /* plan --remove */
    OPT_NODE,         /* shards --node */
    OPT_SHARD,        /* lookup --shard */
};

#define CTL_COMMON_OPTIONS                                       \
    {"config", required_argument, NULL, OPT_CONFIG},             \
    {"nats", required_argument, NULL, OPT_SETTING},              \
    {"cluster", required_argument, NULL, OPT_SETTING},           \
    {"nats-user", required_argument, NULL, OPT_SETTING},         \
    {"nats-password", required_argument, NULL, OPT_SETTING},     \
    {"nats-token", required_argument, NULL, OPT_SETTING},        \
    {"nats-creds", required_argument, NULL, OPT_SETTING},        \
    {"nats-tls-ca", required_argument, NULL, OPT_SETTING},       \
    {"nats-tls-cert", required_argument, NULL, OPT_SETTING},     \
    {"nats-tls-key", required_argument, NULL, OPT_SETTING},      \
    {"nats-tls-hostname", required_argument, NULL, OPT_SETTING}, \
    {"cluster-secret-file", required_argument, NULL, OPT_SETTING}, \
    {"log-level", required_argument, NULL, OPT_SETTING},         \
    {"timeout", required_argument, NULL, OPT_TIMEOUT},           \
    {"json", no_argument, NULL, 'j'},                            \
    {"help", no_argument, NULL, 'h'}

#define CTL_FLAGS_MAX 32u                  /* connection flags on one command line */
#define CTL_URL_DEFAULT "nats://127.0.0.1:4222"
#define CTL_TIMEOUT_MS_DEFAULT 5000u       /* status, shards, lookup, plan, watch's connect */
#define CTL_DRAIN_TIMEOUT_MS_DEFAULT 10000u
#define CTL_TIMEOUT_MS_MAX 3600000u        /* one hour */
#define CTL_SELF_ID "aetherctl"            /* our NodeId on the wire and our connection name */
#define CTL_BUCKET_MAX 96u
/* Keys of the state bucket, as the member writes them (MEMBER_STATE_MAP and
 * MEMBER_STATE_TOPOLOGY in actors/member_internal.h; the term key is lease.h's). */
#define CTL_STATE_KEY_MAP "map"
#define CTL_STATE_KEY_TOPOLOGY "topology"
#define CTL_STATE_KEY_TERM AETHER_LEASE_TERM_KEY_DEFAULT
#define CTL_STATE_KEY_GENERATION AETHER_LEASE_GENERATION_KEY_DEFAULT
#define CTL_MOVES_SHOWN 20u                /* shards in handoff listed in text */

/* Variables with our prefix that are not settings but that other tools and
 * the test scripts use: not a typo, so not refused. */
static const char *const CTL_ENV_IGNORED[] = {
    "AETHER_NATS_SERVER", "AETHER_KEEP_LOGS", "AETHER_SIM_SEED", "AETHER_SIM_SEEDS",
    "AETHER_SIM_TRACE",   "AETHER_CONFIG",    NULL,
};

typedef struct ctl_flag {
    const char *name;  /* the long option, without "--" */
    const char *value; /* borrowed from argv */
} ctl_flag;

/* What the common options said; applied after the file and the environment. */
typedef struct ctl_opts {
    const char *config;
    ctl_flag flags[CTL_FLAGS_MAX];
    unsigned n_flags;
    bool json;
    bool log_level_set;
    bool any_connection; /* a connection option was given (plan: live only) */
    uint64_t timeout_ms; /* 0 = the command's default */
} ctl_opts;

/* Set by SIGINT/SIGTERM; polled by every wait (connect, retries, watch). */
static volatile sig_atomic_t g_stop;

static void ctl_on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void ctl_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
    }
}

/* Handles one of the common options. Returns -1 if c is not one of them, 0 if
 * it was taken, or an exit status (usage error). */
static int ctl_common_opt(const command *self, ctl_opts *o, int c, const struct option *opts,
                          int longindex)
{
    uint64_t v = 0;
    switch (c) {
    case OPT_CONFIG:
        o->config = optarg;
        o->any_connection = true;
        return 0;
    case OPT_SETTING:
        if (o->n_flags == CTL_FLAGS_MAX)
            return usage_error(self, "too many connection options%s", "");
        o->flags[o->n_flags++] = (ctl_flag){opts[longindex].name, optarg};
        if (strcmp(opts[longindex].name, "log-level") == 0)
            o->log_level_set = true;
        o->any_connection = true;
        return 0;
    case OPT_TIMEOUT:
        if (parse_u64_in(optarg, 1, CTL_TIMEOUT_MS_MAX, &v) != 0)
            return usage_error(self, "--timeout must be an integer in 1..3600000 (ms), got '%s'",
                               optarg);
        o->timeout_ms = v;
        o->any_connection = true;
        return 0;
    case 'j':
        o->json = true;
        return 0;
    default:
        return -1;
    }
}

/* Everything a live command holds while it runs. */
typedef struct ctl_conn {
    aether_settings s;
    const char *cluster;  /* s.node.cluster */
    const char *servers;  /* s.nats.urls */
    uint64_t timeout_ms;  /* --timeout or the command's default */
    uint64_t deadline_ms; /* monotonic: start + timeout_ms */
    natsConnection *nc;
    jsCtx *js;
    aether_kv *state_kv;  /* the state bucket, bound read-only */
    char state_bucket[CTL_BUCKET_MAX];
    char lease_bucket[CTL_BUCKET_MAX];
    aether_auth_sealer sealer; /* with cluster_secret_file: seals our commands */
} ctl_conn;

/* The cluster key when --cluster-secret-file (or the file or environment
 * equivalent) is given: everything read is verified with it (g_auth), and
 * commands are sealed. NULL = nothing verified; the leader of a cluster
 * with a secret then refuses the commands that change it. One per process,
 * set by ctl_connect. */
static aether_auth *g_auth;
static bool g_auth_warned; /* the first refusal is said on stderr, the rest counted */
static uint64_t g_auth_refused;

/* True if msg carries a valid tag for its subject and bytes, made within
 * AETHER_AUTH_SKEW_MS of now_ms (0: no freshness check); true without a
 * secret. A refusal is counted and the first one said. */
static bool ctl_authentic(natsMsg *msg, uint64_t now_ms)
{
    if (g_auth == NULL)
        return true;
    aether_auth_stamp st;
    aether_err why = {0};
    if (aether_auth_open_msg(g_auth, msg, now_ms, &st, &why) == AETHER_OK)
        return true;
    if (!__atomic_exchange_n(&g_auth_warned, true, __ATOMIC_RELAXED))
        fprintf(stderr, "aetherctl: unauthenticated message on %s ignored: %s\n", aether_auth_msg_subject(msg),
                why.msg);
    __atomic_add_fetch(&g_auth_refused, 1, __ATOMIC_RELAXED);
    return false;
}

static void ctl_close(ctl_conn *cc)
{
    aether_auth_destroy(g_auth); /* nothing reads it after the close */
    g_auth = NULL;
    aether_kv_destroy(cc->state_kv);
    cc->state_kv = NULL;
    if (cc->js != NULL)
        jsCtx_Destroy(cc->js);
    cc->js = NULL;
    if (cc->nc != NULL)
        natsConnection_Destroy(cc->nc);
    cc->nc = NULL;
}

static uint64_t ctl_remaining_ms(const ctl_conn *cc)
{
    uint64_t now = mono_ms();
    return now >= cc->deadline_ms ? 0 : cc->deadline_ms - now;
}

/* Prints "no cluster answers" with the cluster and the servers; returns 3. */
/* True when the server refused something this connection sent (a publish or
 * a subscription outside the user's NATS permissions: the server answers
 * with an asynchronous -ERR, so the request itself only times out); the
 * server's sentence goes into text. nats.c keeps the last such error on the
 * connection. */
static bool ctl_refused(const ctl_conn *cc, char *text, size_t cap)
{
    const char *last = NULL;
    if (cc->nc == NULL || natsConnection_GetLastError(cc->nc, &last) != NATS_NOT_PERMITTED)
        return false;
    snprintf(text, cap, "%s", last != NULL && last[0] != '\0' ? last : "permissions violation");
    return true;
}

/* Says the server refused (ctl_refused) and returns EXIT_FAILED: a refusal
 * never heals by waiting, and "no cluster answers" would send the operator
 * looking for a dead cluster. */
static int ctl_say_refused(const ctl_conn *cc, const char *what, const char *text)
{
    const char *user = cc->s.nats.user[0] != '\0' ? cc->s.nats.user : "(token or credentials file)";
    if (strstr(what, text) != NULL) /* what already quotes the server (a bucket error) */
        fprintf(stderr,
                "aetherctl: %s: user '%s' has no permission for it (see docs/runbook.md, \"NATS "
                "permissions\")\n",
                what, user);
    else
        fprintf(stderr,
                "aetherctl: %s: refused by the NATS server (%s): user '%s' has no permission for it "
                "(see docs/runbook.md, \"NATS permissions\")\n",
                what, text, user);
    return EXIT_FAILED;
}

static int ctl_no_cluster(const ctl_conn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ctl_no_cluster(const ctl_conn *cc, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char refused[300];
    if (ctl_refused(cc, refused, sizeof(refused)))
        return ctl_say_refused(cc, why, refused);
    fprintf(stderr, "aetherctl: no cluster answers (cluster '%s', servers %s): %s\n", cc->cluster,
            cc->servers, why);
    return EXIT_NO_CLUSTER;
}

/* defaults < --config < AETHER_* < flags, then the cross-checks. */
static int ctl_settings(const ctl_opts *o, aether_settings *s)
{
    aether_err err = {0};
    aether_settings_defaults(s);
    /* As aether-node: --config, else $AETHER_CONFIG. */
    const char *config = o->config;
    const char *config_src = "--config";
    if (config == NULL && getenv("AETHER_CONFIG") != NULL && getenv("AETHER_CONFIG")[0] != '\0') {
        config = getenv("AETHER_CONFIG");
        config_src = "AETHER_CONFIG";
    }
    if (config != NULL && aether_settings_load_file(s, config, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s %s: %s\n", config_src, config, err.msg);
        return EXIT_USAGE;
    }
    if (aether_settings_load_env(s, environ, CTL_ENV_IGNORED, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    for (unsigned i = 0; i < o->n_flags; i++) {
        char keybuf[96], source[96];
        const char *key = aether_settings_flag_key(o->flags[i].name, keybuf, sizeof(keybuf));
        if (key == NULL) {
            fprintf(stderr, "aetherctl: --%s is not a setting this build knows\n",
                    o->flags[i].name);
            return EXIT_USAGE;
        }
        snprintf(source, sizeof(source), "flag --%s", o->flags[i].name);
        if (aether_settings_set(s, key, o->flags[i].value, source, &err) != AETHER_OK) {
            fprintf(stderr, "aetherctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    if (s->nats.urls[0] == '\0')
        snprintf(s->nats.urls, sizeof(s->nats.urls), "%s", CTL_URL_DEFAULT);
    if (aether_settings_check(s, false, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    /* A CLI keeps stderr for its own messages: the library says only
     * warnings unless a log level was asked for explicitly. */
    aether_log_level level = AETHER_LOG_WARN;
    if ((o->log_level_set || getenv("AETHER_LOG_LEVEL") != NULL) &&
        !aether_log_level_parse(s->log_level, &level))
        level = AETHER_LOG_WARN;
    aether_log_set_level(level);
    return 0;
}

/* Resolves the settings and connects. On 0 the caller must ctl_close. */
static int ctl_connect(const ctl_opts *o, uint64_t default_timeout_ms, ctl_conn *cc)
{
    memset(cc, 0, sizeof(*cc));
    aether_log_set_level(AETHER_LOG_WARN); /* before the sources log what they set */
    int rc = ctl_settings(o, &cc->s);
    if (rc != 0)
        return rc;
    cc->cluster = cc->s.node.cluster;
    cc->servers = cc->s.nats.urls;
    cc->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : default_timeout_ms;
    cc->deadline_ms = mono_ms() + cc->timeout_ms;
    if (cc->s.nats.connect_timeout_ms > cc->timeout_ms)
        cc->s.nats.connect_timeout_ms = (uint32_t)cc->timeout_ms;
    if (cc->s.nats.request_timeout_ms > cc->timeout_ms)
        cc->s.nats.request_timeout_ms = (uint32_t)cc->timeout_ms;
    int n1 = snprintf(cc->state_bucket, sizeof(cc->state_bucket), "aether_%s_state", cc->cluster);
    int n2 = snprintf(cc->lease_bucket, sizeof(cc->lease_bucket), "aether_%s_lease", cc->cluster);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(cc->state_bucket) ||
        (size_t)n2 >= sizeof(cc->lease_bucket)) {
        fprintf(stderr, "aetherctl: cluster name '%s' is too long for a bucket name\n",
                cc->cluster);
        return EXIT_USAGE;
    }
    ctl_signals_install();
    aether_err err = {0};
    if (cc->s.cluster_secret_file[0] != '\0') {
        if (aether_auth_load_file(cc->s.cluster_secret_file, &g_auth, &err) != AETHER_OK) {
            fprintf(stderr, "aetherctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
        aether_node_id self;
        (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
        aether_auth_sealer_init(&cc->sealer, g_auth, &self, (uint64_t)wall_ns());
    }
    aether_status st = aether_nats_connect(&cc->s.nats, CTL_SELF_ID, &g_stop, &cc->nc, &err);
    if (st == AETHER_EINVAL) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (st == AETHER_ECLOSED || g_stop) {
        fprintf(stderr, "aetherctl: interrupted while connecting to %s\n", cc->servers);
        ctl_close(cc);
        return EXIT_FAILED;
    }
    if (st != AETHER_OK)
        return ctl_no_cluster(cc, "%s", err.msg);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)cc->s.nats.request_timeout_ms;
    natsStatus ns = natsConnection_JetStream(&cc->js, cc->nc, &jo);
    if (ns != NATS_OK) {
        ctl_close(cc);
        return ctl_no_cluster(cc, "JetStream context: %s", natsStatus_GetText(ns));
    }
    return 0;
}

/* Binds the state bucket read-only: its absence means no node of this
 * cluster ever ran on these servers. */
static int ctl_bind_state(ctl_conn *cc)
{
    if (cc->state_kv != NULL)
        return 0;
    aether_kv_nats_config kc = {
        .conn = cc->nc,
        .bucket = cc->state_bucket,
        .ttl_ms = 0,
        .replicas = 0,
        .timeout_ms = cc->s.nats.request_timeout_ms,
        .create_if_missing = false,
        .sealer = g_auth != NULL ? &cc->sealer : NULL,
    };
    aether_err err = {0};
    aether_status st = aether_kv_nats_create(&kc, &cc->state_kv, &err);
    if (st == AETHER_ENOTFOUND)
        return ctl_no_cluster(cc,
                              "KV bucket '%s' does not exist (no aether-node has run with "
                              "--cluster %s on these servers)",
                              cc->state_bucket, cc->cluster);
    if (st != AETHER_OK)
        return ctl_no_cluster(cc, "%s", err.msg);
    return 0;
}

/* ---- reading the cluster --------------------------------------------------- */

typedef struct ctl_view {
    /* The lease bucket and its "leader" key. */
    bool lease_bucket;        /* the bucket exists */
    uint64_t lease_ttl_ms;    /* its TTL: the cluster's lease ttl */
    bool have_lease;          /* a value is there (a leader, or one establishing its term) */
    bool lease_malformed;     /* ... but it does not decode */
    char lease_err[AETHER_ERR_MSG_MAX];
    aether_lease_value lease;
    uint64_t lease_revision;
    int64_t lease_written_ns; /* server time of the last create/renewal (Unix ns) */
    int64_t read_at_ns;       /* our wall clock when we read it */
    /* The state bucket. */
    bool have_term;
    uint64_t recorded_term;   /* the highest term any leader recorded */
    uint64_t generation;      /* the cluster generation (lease.h GENERATION); 0 = none */
    aether_shardmap *map;     /* NULL: none published yet */
    uint64_t map_revision;
    bool have_topo;
    aether_topology topo;
    uint64_t topo_revision;
} ctl_view;

static void ctl_view_fini(ctl_view *v)
{
    aether_shardmap_destroy(v->map);
    v->map = NULL;
    if (v->have_topo)
        aether_topology_fini(&v->topo);
    v->have_topo = false;
}

/* Reads the lease (see the file comment for why nats.c directly). */
static int ctl_read_lease(ctl_conn *cc, ctl_view *v)
{
    kvStore *kv = NULL;
    natsStatus s = js_KeyValue(&kv, cc->js, cc->lease_bucket);
    if (s == NATS_NOT_FOUND)
        return 0; /* no lease bucket: reported as "no leader" */
    if (s != NATS_OK)
        return ctl_no_cluster(cc, "bucket '%s': %s", cc->lease_bucket, natsStatus_GetText(s));
    v->lease_bucket = true;
    kvStatus *ks = NULL;
    if (kvStore_Status(&ks, kv) == NATS_OK) {
        int64_t ttl_ns = kvStatus_TTL(ks);
        v->lease_ttl_ms = ttl_ns > 0 ? (uint64_t)ttl_ns / 1000000u : 0;
        kvStatus_Destroy(ks);
    }
    kvEntry *e = NULL;
    s = kvStore_Get(&e, kv, AETHER_LEASE_KEY_DEFAULT);
    v->read_at_ns = wall_ns();
    if (s == NATS_OK && g_auth != NULL) {
        /* A kvEntry shows no headers: the same revision again, by number. */
        char stream[CTL_BUCKET_MAX + 8];
        snprintf(stream, sizeof(stream), "KV_%s", cc->lease_bucket);
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        bool ok = js_GetMsg(&m, cc->js, stream, kvEntry_Revision(e), NULL, &jerr) == NATS_OK &&
                  ctl_authentic(m, (uint64_t)natsMsg_GetTime(m) / 1000000u);
        natsMsg_Destroy(m);
        if (!ok) {
            v->have_lease = true;
            v->lease_malformed = true;
            v->lease_revision = kvEntry_Revision(e);
            v->lease_written_ns = kvEntry_Created(e);
            snprintf(v->lease_err, sizeof(v->lease_err), "unauthenticated (no valid %s tag for this "
                     "cluster's secret): not believed", AETHER_AUTH_HEADER);
            kvEntry_Destroy(e);
            kvStore_Destroy(kv);
            return 0;
        }
    }
    if (s == NATS_OK) {
        aether_err err = {0};
        v->have_lease = true;
        v->lease_revision = kvEntry_Revision(e);
        v->lease_written_ns = kvEntry_Created(e);
        if (aether_lease_value_decode(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &v->lease,
                                      &err) != AETHER_OK) {
            v->lease_malformed = true;
            snprintf(v->lease_err, sizeof(v->lease_err), "%s", err.msg);
        }
        kvEntry_Destroy(e);
    } else if (s != NATS_NOT_FOUND) {
        kvStore_Destroy(kv);
        return ctl_no_cluster(cc, "bucket '%s' key '%s': %s", cc->lease_bucket,
                              AETHER_LEASE_KEY_DEFAULT, natsStatus_GetText(s));
    }
    kvStore_Destroy(kv);
    return 0;
}

/* One key of the state bucket: 0 (found or absent: *found says), or 3. */
static int ctl_state_get(ctl_conn *cc, const char *key, aether_kv_entry *e, bool *found)
{
    aether_err err = {0};
    aether_status st = aether_kv_get(cc->state_kv, key, e, &err);
    *found = st == AETHER_OK;
    if (st == AETHER_OK || st == AETHER_ENOTFOUND)
        return 0;
    return ctl_no_cluster(cc, "reading '%s' from bucket '%s': %s", key, cc->state_bucket,
                          err.msg);
}

/* Reads the map, the topology and the recorded term; the lease too if asked.
 * Returns 0, 1 (a stored value does not decode, or is stamped with another
 * generation than the bucket's) or 3. A missing map is not
 * an error here (v->map NULL): each command decides. */
static int ctl_read(ctl_conn *cc, ctl_view *v, bool with_lease)
{
    memset(v, 0, sizeof(*v));
    int rc = ctl_bind_state(cc);
    if (rc != 0)
        return rc;
    if (with_lease && (rc = ctl_read_lease(cc, v)) != 0)
        return rc;
    aether_kv_entry e;
    bool found = false;
    aether_err err = {0};
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_MAP, &e, &found)) != 0)
        return rc;
    uint64_t map_gen = 0, topo_gen = 0; /* their "gen" (0: not said) */
    if (found) {
        v->map_revision = e.revision;
        aether_status st = aether_shardmap_json_decode_gen((const char *)e.value, e.value_len,
                                                           &v->map, &map_gen, &err);
        aether_kv_entry_fini(&e);
        if (st != AETHER_OK) {
            fprintf(stderr, "aetherctl: the stored map (bucket '%s' key 'map') is unreadable: %s\n",
                    cc->state_bucket, err.msg);
            return EXIT_FAILED;
        }
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_TOPOLOGY, &e, &found)) != 0)
        return rc;
    if (found) {
        aether_node_id self;
        (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
        if (aether_topology_init(&v->topo, &self) != AETHER_OK) {
            aether_kv_entry_fini(&e);
            fprintf(stderr, "aetherctl: out of memory\n");
            return EXIT_FAILED;
        }
        v->have_topo = true;
        v->topo_revision = e.revision;
        aether_status st = aether_topology_json_decode_gen((const char *)e.value, e.value_len,
                                                           &v->topo, &topo_gen, &err);
        aether_kv_entry_fini(&e);
        if (st != AETHER_OK) {
            fprintf(stderr,
                    "aetherctl: the stored topology (bucket '%s' key 'topology') is unreadable: "
                    "%s\n",
                    cc->state_bucket, err.msg);
            return EXIT_FAILED;
        }
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_TERM, &e, &found)) != 0)
        return rc;
    if (found) {
        uint64_t t = 0;
        if (parse_u64_in((const char *)e.value, 0, INT64_MAX, &t) == 0) {
            v->have_term = true;
            v->recorded_term = t;
        }
        aether_kv_entry_fini(&e);
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_GENERATION, &e, &found)) != 0)
        return rc;
    if (found) {
        if (!aether_lease_generation_parse((const char *)e.value, e.value_len, &v->generation))
            v->generation = 0; /* shown as none; the nodes refuse it too */
        aether_kv_entry_fini(&e);
    }
    /* A value stamped with another generation than the bucket's belongs to
     * a lost one (written by a deposed leader after both buckets were
     * lost: actors/member_state.c, "Generations"): the nodes refuse it, and
     * so do we. A value without "gen" predates generations. */
    const struct {
        const char *key;
        uint64_t gen, version;
        bool have;
    } stamped[] = {
        { CTL_STATE_KEY_MAP, map_gen, v->map != NULL ? v->map->version : 0, v->map != NULL },
        { CTL_STATE_KEY_TOPOLOGY, topo_gen, v->topo.version, v->have_topo },
    };
    for (size_t i = 0; i < sizeof(stamped) / sizeof(stamped[0]); i++) {
        if (!stamped[i].have || stamped[i].gen == 0 || stamped[i].gen == v->generation)
            continue;
        char bucket_gen[AETHER_LEASE_GENERATION_TEXT_LEN + 1] = "none";
        if (v->generation != 0)
            aether_lease_generation_format(v->generation, bucket_gen, sizeof(bucket_gen));
        fprintf(stderr,
                "aetherctl: the stored %s (bucket '%s' key '%s', v%llu) is of generation %016llx, "
                "the bucket's generation is %s: a value of a lost generation (written by a deposed "
                "leader), refused; the nodes refuse it too and the leader writes its own back "
                "within lease_ttl_ms\n",
                stamped[i].key, cc->state_bucket, stamped[i].key,
                (unsigned long long)stamped[i].version, (unsigned long long)stamped[i].gen,
                bucket_gen);
        return EXIT_FAILED;
    }
    return 0;
}

static int ctl_no_map(const ctl_conn *cc)
{
    return ctl_no_cluster(cc, "no shard map yet in bucket '%s' (no leader has assigned shards)",
                          cc->state_bucket);
}

/* One JSON document on stdout. Takes the reference. */
static int ctl_emit_json(json_t *doc)
{
    if (doc == NULL) {
        fprintf(stderr, "aetherctl: out of memory building JSON\n");
        return EXIT_FAILED;
    }
    int rc = json_dumpf(doc, stdout, JSON_COMPACT) == 0 ? 0 : EXIT_FAILED;
    fputc('\n', stdout);
    json_decref(doc);
    return rc;
}

/* json_object_set_new that tolerates a NULL value (out of memory: the key is
 * simply missing, and the dump still happens). */
static void jset(json_t *obj, const char *key, json_t *value)
{
    if (obj != NULL && value != NULL)
        json_object_set_new(obj, key, value);
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* ---- rows: one per node of the topology and of the map ------------------- */

typedef struct ctl_row {
    aether_node_id id;
    const aether_node_info *info; /* NULL: in the map but not in the topology */
    bool leader;                  /* holds the lease */
    uint32_t primaries, replicas; /* in the current map */
    uint32_t moving_out, moving_in;
} ctl_row;

static int ctl_row_cmp(const void *a, const void *b)
{
    return aether_node_id_compare(&((const ctl_row *)a)->id, &((const ctl_row *)b)->id);
}

static const char *ctl_row_status(const ctl_row *r)
{
    return r->info != NULL ? aether_node_status_name(r->info->status) : "unknown";
}

/* Every node of the topology (left and failed ones only when with_gone or
 * when the map still names them) and every node the map names. Sorted by id.
 * NULL when out of memory. */
static ctl_row *ctl_rows(const ctl_view *v, bool with_gone, uint32_t *n_out)
{
    uint32_t topo_n = v->have_topo ? v->topo.count : 0;
    uint32_t map_n = v->map != NULL ? v->map->node_count : 0;
    ctl_row *rows = calloc((size_t)topo_n + map_n + 1, sizeof(*rows));
    uint32_t *row_of = calloc((size_t)map_n + 1, sizeof(*row_of)); /* map index -> row */
    if (rows == NULL || row_of == NULL) {
        free(rows);
        free(row_of);
        return NULL;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < topo_n; i++) {
        const aether_node_info *info = &v->topo.nodes[i];
        bool in_map = v->map != NULL &&
                      aether_shardmap_find_node(v->map, &info->id) != AETHER_NODE_INDEX_NONE;
        if (!with_gone && !aether_node_status_is_healthy(info->status) && !in_map)
            continue;
        rows[n].id = info->id;
        rows[n].info = info;
        n++;
    }
    for (uint32_t i = 0; i < map_n; i++) {
        const aether_node_id *id = aether_shardmap_node(v->map, (aether_node_index)i);
        if (v->have_topo && aether_topology_find(&v->topo, id) != NULL)
            continue;
        rows[n++].id = *id;
    }
    qsort(rows, n, sizeof(*rows), ctl_row_cmp);
    for (uint32_t r = 0; r < n; r++) {
        rows[r].leader = v->have_lease && !v->lease_malformed &&
                         aether_node_id_equal(&rows[r].id, &v->lease.leader);
        if (v->map == NULL)
            continue;
        aether_node_index idx = aether_shardmap_find_node(v->map, &rows[r].id);
        if (idx == AETHER_NODE_INDEX_NONE)
            continue;
        row_of[idx] = r;
        size_t prim = 0, slots = 0;
        (void)aether_shardmap_node_primary_shards(v->map, idx, &prim);
        (void)aether_shardmap_node_owner_shards(v->map, idx, &slots);
        rows[r].primaries = (uint32_t)prim;
        rows[r].replicas = (uint32_t)(slots - prim);
    }
    for (uint32_t s = 0; v->map != NULL && s < v->map->shard_count; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(v->map, s);
        if (e->state != AETHER_SHARD_MOVING)
            continue;
        rows[row_of[e->primary]].moving_out++;
        rows[row_of[e->to]].moving_in++;
    }
    free(row_of);
    *n_out = n;
    return rows;
}

static uint32_t ctl_map_moving(const aether_shardmap *m)
{
    uint32_t n = 0;
    for (uint32_t s = 0; m != NULL && s < m->shard_count; s++)
        n += aether_shardmap_entry(m, s)->state == AETHER_SHARD_MOVING;
    return n;
}

static int ctl_id_width(const ctl_row *rows, uint32_t n, int min)
{
    int w = min;
    for (uint32_t i = 0; i < n; i++)
        if ((int)rows[i].id.len > w)
            w = (int)rows[i].id.len;
    return w;
}

/* ---- status ---------------------------------------------------------------- */

static json_t *ctl_lease_json(const ctl_view *v)
{
    if (!v->have_lease)
        return json_null();
    json_t *o = json_object();
    if (v->lease_malformed) {
        jset(o, "malformed", json_string(v->lease_err));
    } else {
        jset(o, "node", json_string(v->lease.leader.str));
        jset(o, "term", jint(v->lease.term));
        jset(o, "establishing", json_boolean(v->lease.term == AETHER_TERM_NONE));
        jset(o, "ttl_ms", jint(v->lease.ttl_ms));
    }
    jset(o, "revision", jint(v->lease_revision));
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    jset(o, "renewed_ms_ago", json_integer(age_ms));
    jset(o, "expires_in_ms", json_integer((json_int_t)v->lease_ttl_ms - age_ms));
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

static int cmd_status(int argc, char **argv)
{
    const command *self = find_command("status");
    static const struct option opts[] = {CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":jh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
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
        jset(doc, "cluster", json_string(cc.cluster));
        jset(doc, "servers", json_string(cc.servers));
        jset(doc, "leader", ctl_lease_json(&v));
        jset(doc, "recorded_term", v.have_term ? jint(v.recorded_term) : json_null());
        char gen[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
        aether_lease_generation_format(v.generation, gen, sizeof(gen));
        jset(doc, "generation", v.generation != 0 ? json_string(gen) : json_null());
        if (v.map != NULL) {
            json_t *m = json_object();
            jset(m, "version", jint(v.map->version));
            jset(m, "term", jint(v.map->term));
            jset(m, "shard_count", jint(v.map->shard_count));
            jset(m, "replication", jint(v.map->replication));
            jset(m, "moving", jint(ctl_map_moving(v.map)));
            jset(doc, "map", m);
        } else {
            jset(doc, "map", json_null());
        }
        jset(doc, "topology_version", v.have_topo ? jint(v.topo.version) : json_null());
        json_t *arr = json_array();
        for (uint32_t i = 0; i < n; i++) {
            const ctl_row *r = &rows[i];
            json_t *jn = json_object();
            jset(jn, "id", json_string(r->id.str));
            jset(jn, "status", json_string(ctl_row_status(r)));
            jset(jn, "leader", json_boolean(r->leader));
            jset(jn, "zone", json_string(r->info ? r->info->zone : ""));
            jset(jn, "address", json_string(r->info ? r->info->address : ""));
            jset(jn, "incarnation", r->info ? jint(r->info->incarnation) : json_null());
            jset(jn, "joined_at_ms", r->info ? jint(r->info->joined_at_ms) : json_null());
            jset(jn, "primaries", jint(r->primaries));
            jset(jn, "replicas", jint(r->replicas));
            json_array_append_new(arr, jn);
        }
        jset(doc, "nodes", arr);
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

static int cmd_shards(int argc, char **argv)
{
    const command *self = find_command("shards");
    static const struct option opts[] = {
        {"node", required_argument, NULL, OPT_NODE}, CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    const char *node_arg = NULL;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":jh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case OPT_NODE: node_arg = optarg; break;
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
        jset(doc, "cluster", json_string(cc.cluster));
        jset(doc, "map_version", jint(m->version));
        jset(doc, "term", jint(m->term));
        jset(doc, "shard_count", jint(m->shard_count));
        jset(doc, "replication", jint(m->replication));
        jset(doc, "moving", jint(moving));
        json_t *arr = json_array();
        for (uint32_t i = 0; i < n; i++) {
            const ctl_row *r = &rows[i];
            if (only != NULL && r != only)
                continue;
            json_t *jn = json_object();
            jset(jn, "id", json_string(r->id.str));
            jset(jn, "status", json_string(ctl_row_status(r)));
            jset(jn, "primaries", jint(r->primaries));
            jset(jn, "replicas", jint(r->replicas));
            jset(jn, "moving_out", jint(r->moving_out));
            jset(jn, "moving_in", jint(r->moving_in));
            if (only != NULL) {
                aether_node_index idx = aether_shardmap_find_node(m, &r->id);
                size_t np = 0, nr = 0;
                const uint32_t *prim =
                    idx != AETHER_NODE_INDEX_NONE ? aether_shardmap_node_primary_shards(m, idx, &np)
                                                  : NULL;
                uint32_t *rep = idx != AETHER_NODE_INDEX_NONE ? ctl_replica_shards(m, idx, &nr)
                                                              : NULL;
                char *pr = ctl_ranges(prim, np), *rr = ctl_ranges(rep, nr);
                jset(jn, "primary_shards", pr ? json_string(pr) : NULL);
                jset(jn, "replica_shards", rr ? json_string(rr) : NULL);
                free(pr);
                free(rr);
                free(rep);
            }
            json_array_append_new(arr, jn);
        }
        jset(doc, "nodes", arr);
        json_t *bal = json_object();
        jset(bal, "primaries_min", jint(pmin));
        jset(bal, "primaries_max", jint(pmax));
        jset(bal, "slots_min", jint(smin));
        jset(bal, "slots_max", jint(smax));
        jset(doc, "balance", bal);
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
        jset(doc, "moves", mv);
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

static int cmd_lookup(int argc, char **argv)
{
    const command *self = find_command("lookup");
    static const struct option opts[] = {
        {"shard", required_argument, NULL, OPT_SHARD}, CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    uint64_t shard_arg = 0;
    bool by_shard = false;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":jh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case OPT_SHARD:
            if (parse_u64_in(optarg, 0, AETHER_SHARD_COUNT_MAX - 1, &shard_arg) != 0)
                return usage_error(self, "--shard must be an integer in 0..65535, got '%s'",
                                   optarg);
            by_shard = true;
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
    int nargs = argc - optind;
    if (by_shard && nargs != 0)
        return usage_error(self, "give a KEY or --shard N, not both%s", "");
    if (!by_shard && nargs != 1)
        return usage_error(self, nargs == 0 ? "missing KEY%s" : "expected one KEY%s", "");
    const char *key = by_shard ? NULL : argv[optind];

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    rc = ctl_read(&cc, &v, false);
    if (rc == 0 && v.map == NULL)
        rc = ctl_no_map(&cc);
    const aether_shardmap *m = v.map;
    uint32_t shard = 0;
    if (rc == 0) {
        if (key != NULL) {
            shard = aether_key_shard(key, strlen(key), m->shard_count);
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
    if (o.json) {
        json_t *doc = json_object();
        jset(doc, "cluster", json_string(cc.cluster));
        jset(doc, "key", key != NULL ? json_string(key) : json_null());
        jset(doc, "shard", jint(shard));
        jset(doc, "shard_count", jint(m->shard_count));
        jset(doc, "map_version", jint(m->version));
        jset(doc, "term", jint(m->term));
        jset(doc, "primary", e->owner_count ? json_string(m->nodes[own[0]].str) : json_null());
        json_t *owners = json_array(), *statuses = json_array();
        for (uint32_t j = 0; j < e->owner_count; j++) {
            const aether_node_id *id = &m->nodes[own[j]];
            const aether_node_info *info = v.have_topo ? aether_topology_find(&v.topo, id) : NULL;
            json_array_append_new(owners, json_string(id->str));
            json_array_append_new(statuses, json_string(info ? aether_node_status_name(info->status)
                                                             : "unknown"));
        }
        jset(doc, "owners", owners);
        jset(doc, "owner_status", statuses);
        jset(doc, "state", json_string(aether_shard_state_name((aether_shard_state)e->state)));
        jset(doc, "moving", json_boolean(moving));
        jset(doc, "to", to != NULL ? json_string(to) : json_null());
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
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- watch -----------------------------------------------------------------
 *
 * DESIGN
 *  1. Subscribe (async) to aether.<cluster>.evt.> and aether.<cluster>.map
 *     (with --all: aether.<cluster>.>). nats.c runs each subscription's
 *     callback on its own thread; the callback only appends the message to
 *     one bounded queue (WATCH_QUEUE_MAX; when full the message is dropped
 *     and counted, and the main thread reports the count), so a slow
 *     terminal never blocks nats.c.
 *  2. The main thread pops, decodes strictly (codec.h for envelopes,
 *     shardmap_json.h for maps), prints one line (or one JSON object), and
 *     checks the stop conditions at least every WATCH_POLL_MS: a signal,
 *     --count messages printed, --duration elapsed.
 *  3. Refused messages are printed as such; nothing on the wire can crash
 *     us because both decoders are strict and bounded.
 * The queue is static: a callback that nats.c still runs while we
 * unsubscribe touches memory that lives as long as the process.
 */

#define WATCH_QUEUE_MAX 4096u /* messages waiting for the terminal */
#define WATCH_POLL_MS 100u    /* longest wait between stop-condition checks */
#define WATCH_DURATION_S_MAX (365.0 * 86400.0)

typedef struct watch_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;                 /* signalled on every append */
    natsMsg *items[WATCH_QUEUE_MAX];   /* ring, under mu */
    uint32_t head, count;              /* under mu */
    uint64_t dropped;                  /* under mu: refused because the ring was full */
} watch_queue;

static watch_queue g_watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void watch_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    watch_queue *q = closure;
    if (!ctl_authentic(msg, (uint64_t)(wall_ns() / 1000000))) {
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->count == WATCH_QUEUE_MAX) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        natsMsg_Destroy(msg);
        return;
    }
    q->items[(q->head + q->count) % WATCH_QUEUE_MAX] = msg;
    q->count++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Pops one message, waiting at most wait_ms; NULL if none. *dropped gets the
 * drop counter. */
static natsMsg *watch_pop(watch_queue *q, uint64_t wait_ms, uint64_t *dropped)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000u);
    ts.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    if (q->count == 0 && !g_stop)
        (void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    natsMsg *m = NULL;
    if (q->count > 0) {
        m = q->items[q->head];
        q->head = (q->head + 1) % WATCH_QUEUE_MAX;
        q->count--;
    }
    *dropped = q->dropped;
    pthread_mutex_unlock(&q->mu);
    return m;
}

static void watch_stamp(char *buf, size_t cap, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    if (localtime_r(&sec, &tm) == NULL) { /* a timestamp no calendar holds (bad input) */
        snprintf(buf, cap, "??:??:??.???");
        return;
    }
    size_t n = strftime(buf, cap, "%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03d", (int)((ns / 1000000) % 1000));
}

/* An event's ts_ms (any uint64 the codec accepts) as ns, saturated. */
static int64_t stamp_ns_of_ms(uint64_t ms)
{
    return ms > (uint64_t)INT64_MAX / 1000000u ? INT64_MAX : (int64_t)ms * 1000000;
}

/* A subject from the wire, printable: bytes outside 0x21..0x7e become '?'
 * (no terminal escapes, valid UTF-8 for JSON). */
static const char *printable_subject(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = (unsigned char)in[i] > 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
    return out;
}

typedef struct watch_ctx {
    const char *cluster;
    char prefix[CTL_BUCKET_MAX]; /* "aether.<cluster>." */
    size_t prefix_len;
    bool json;
    uint64_t events, maps, others, refused;
} watch_ctx;

static void watch_refused(watch_ctx *w, const char *stamp, int64_t ns, const char *subject,
                          size_t bytes, const char *why)
{
    w->refused++;
    char safe[256];
    subject = printable_subject(subject, safe, sizeof(safe));
    if (w->json) {
        json_t *o = json_pack("{s:I,s:s,s:s,s:I,s:s}", "received_ms", (json_int_t)(ns / 1000000),
                              "subject", subject, "kind", "refused", "bytes", (json_int_t)bytes,
                              "reason", why);
        (void)ctl_emit_json(o);
    } else {
        printf("%s REFUSED %s (%zu bytes): %s\n", stamp, subject, bytes, why);
    }
}

/* Decodes and prints one message. */
static void watch_print(watch_ctx *w, natsMsg *msg)
{
    int64_t now = wall_ns();
    char stamp[32];
    watch_stamp(stamp, sizeof(stamp), now);
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *suffix = strncmp(subject, w->prefix, w->prefix_len) == 0 ? subject + w->prefix_len
                                                                          : "";
    aether_err err = {0};
    if (strcmp(suffix, "map") == 0) {
        aether_shardmap *m = NULL;
        if (aether_shardmap_json_decode(data, len, &m, &err) != AETHER_OK) {
            watch_refused(w, stamp, now, subject, len, err.msg);
            return;
        }
        w->maps++;
        uint32_t moving = ctl_map_moving(m);
        if (w->json) {
            json_t *o = json_object();
            jset(o, "received_ms", json_integer(now / 1000000));
            jset(o, "subject", json_string(subject));
            jset(o, "kind", json_string("map"));
            jset(o, "version", jint(m->version));
            jset(o, "term", jint(m->term));
            jset(o, "shard_count", jint(m->shard_count));
            jset(o, "replication", jint(m->replication));
            jset(o, "nodes", jint(m->node_count));
            jset(o, "moving", jint(moving));
            (void)ctl_emit_json(o);
        } else {
            printf("%s map version=%" PRIu64 " term=%" PRIu64 " shards=%u replication=%u nodes=%u "
                   "moving=%u\n",
                   stamp, m->version, (uint64_t)m->term, m->shard_count, m->replication,
                   m->node_count, moving);
        }
        aether_shardmap_destroy(m);
        return;
    }
    aether_codec_kind want;
    const char *want_type = NULL; /* the type the subject names, if any */
    if (strncmp(suffix, "evt.", 4) == 0) {
        want = AETHER_CODEC_EVENT;
        want_type = suffix + 4;
    } else if (strncmp(suffix, "cmd.", 4) == 0) {
        want = AETHER_CODEC_COMMAND;
        want_type = suffix + 4;
    } else if (strncmp(suffix, "hb.", 3) == 0) {
        want = AETHER_CODEC_HEARTBEAT;
    } else if (strcmp(suffix, "rel") == 0) {
        want = AETHER_CODEC_RELEASE;
    } else {
        watch_refused(w, stamp, now, subject, len, "not an aether subject");
        return;
    }
    aether_codec_limits lim = {.cluster = w->cluster};
    aether_codec_msg m;
    if (aether_codec_decode(data, len, &lim, &m, &err) != AETHER_OK) {
        watch_refused(w, stamp, now, subject, len, err.msg);
        return;
    }
    const char *type = NULL;
    char line[1024];
    line[0] = '\0';
    switch (m.kind) {
    case AETHER_CODEC_EVENT:
        type = aether_event_type_name(m.u.event->type);
        (void)aether_event_format(m.u.event, line, sizeof(line));
        break;
    case AETHER_CODEC_COMMAND: {
        const aether_command *c = &m.u.command;
        type = aether_command_type_name(c->type);
        int n = snprintf(line, sizeof(line), "%s sender=%s term=%" PRIu64, type, c->sender.str,
                         (uint64_t)c->term);
        size_t at = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
        switch (c->type) {
        case AETHER_CMD_JOIN_CLUSTER:
            n = snprintf(line + at, sizeof(line) - at, " node=%s address=%s zone=%s incarnation=%" PRIu64,
                         c->data.join.info.id.str, c->data.join.info.address,
                         c->data.join.info.zone[0] ? c->data.join.info.zone : "-",
                         c->data.join.info.incarnation);
            at = n > 0 && at + (size_t)n < sizeof(line) ? at + (size_t)n : sizeof(line) - 1;
            if (c->data.join.terms.shard_count == 0) /* a node from before admission terms */
                snprintf(line + at, sizeof(line) - at, " terms=none");
            else
                snprintf(line + at, sizeof(line) - at,
                         " shard_count=%u replication=%u wire=%u..%u params=%016" PRIx64,
                         c->data.join.terms.shard_count, c->data.join.terms.replication,
                         c->data.join.terms.wire_min, c->data.join.terms.wire_max,
                         c->data.join.terms.params);
            break;
        case AETHER_CMD_LEAVE_CLUSTER:
            snprintf(line + at, sizeof(line) - at, " node=%s", c->data.leave.node.str);
            break;
        case AETHER_CMD_MARK_NODE_FAILED:
            snprintf(line + at, sizeof(line) - at, " node=%s silent_ms=%" PRIu64,
                     c->data.mark_failed.node.str, c->data.mark_failed.silent_ms);
            break;
        case AETHER_CMD_ELECT_LEADER:
            snprintf(line + at, sizeof(line) - at, " candidate=%s", c->data.elect.candidate.str);
            break;
        case AETHER_CMD_REBALANCE_SHARDS:
            snprintf(line + at, sizeof(line) - at, " reason=%s", c->data.rebalance.reason);
            break;
        default:
            break;
        }
        break;
    }
    case AETHER_CODEC_HEARTBEAT:
        type = AETHER_CODEC_TYPE_HEARTBEAT;
        snprintf(line, sizeof(line), "%s node=%s incarnation=%" PRIu64, type,
                 m.u.heartbeat.node.str, m.u.heartbeat.incarnation);
        break;
    case AETHER_CODEC_RELEASE:
        type = AETHER_CODEC_TYPE_RELEASE;
        snprintf(line, sizeof(line), "%s shard=%u from=%s map_version=%" PRIu64 " term=%" PRIu64,
                 type, m.u.release.shard, m.u.release.from.str, m.u.release.map_version,
                 (uint64_t)m.u.release.term);
        break;
    default:
        type = AETHER_CODEC_TYPE_REPLY;
        break;
    }
    if (m.kind != want || (want_type != NULL && strcmp(want_type, type) != 0)) {
        char why[160];
        snprintf(why, sizeof(why), "a %s message on a subject for %s", type,
                 want_type != NULL ? want_type : suffix);
        aether_codec_msg_fini(&m);
        watch_refused(w, stamp, now, subject, len, why);
        return;
    }
    if (m.kind == AETHER_CODEC_EVENT)
        w->events++;
    else
        w->others++;
    if (w->json) {
        static const char *const kinds[] = {
            [AETHER_CODEC_EVENT] = "event",         [AETHER_CODEC_COMMAND] = "command",
            [AETHER_CODEC_RELEASE] = "release",     [AETHER_CODEC_HEARTBEAT] = "heartbeat",
            [AETHER_CODEC_REPLY] = "reply",
        };
        json_t *o = json_object();
        jset(o, "received_ms", json_integer(now / 1000000));
        jset(o, "subject", json_string(subject));
        jset(o, "kind", json_string(kinds[m.kind]));
        jset(o, "type", json_string(type));
        /* The codec accepted it, so it is one well-formed JSON object. */
        jset(o, "message", json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL));
        (void)ctl_emit_json(o);
    } else {
        printf("%s %s\n", stamp, line);
    }
    aether_codec_msg_fini(&m);
}

/* "S" or "S.fff" seconds, > 0. */
static int parse_seconds(const char *s, uint64_t *ms_out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v > 0.0) || v > WATCH_DURATION_S_MAX)
        return -1;
    uint64_t ms = (uint64_t)llround(v * 1000.0);
    *ms_out = ms == 0 ? 1 : ms;
    return 0;
}

static int cmd_watch(int argc, char **argv)
{
    const command *self = find_command("watch");
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"all", no_argument, NULL, 'a'},
        CTL_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t count = 0, duration_ms = 0;
    bool all = false;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:d:ajh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case 'c':
            if (parse_u64_in(optarg, 1, UINT32_MAX, &count) != 0)
                return usage_error(self, "--count must be a positive integer, got '%s'", optarg);
            break;
        case 'd':
            if (parse_seconds(optarg, &duration_ms) != 0)
                return usage_error(self, "--duration must be a positive number of seconds, got '%s'",
                                   optarg);
            break;
        case 'a': all = true; break;
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

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    /* Watching a cluster before its first node starts is legitimate (to see
     * the bootstrap), but a typo in --cluster would print nothing forever:
     * say so on stderr, and watch anyway. */
    kvStore *probe = NULL;
    natsStatus ns = js_KeyValue(&probe, cc.js, cc.state_bucket);
    if (ns == NATS_OK)
        kvStore_Destroy(probe);
    else if (ns == NATS_NOT_FOUND)
        fprintf(stderr, "aetherctl: note: cluster '%s' has no state bucket on %s yet (no node has "
                "run with --cluster %s); watching anyway\n",
                cc.cluster, cc.servers, cc.cluster);

    watch_ctx w = {.cluster = cc.cluster, .json = o.json};
    int pl = snprintf(w.prefix, sizeof(w.prefix), "aether.%s.", cc.cluster);
    w.prefix_len = pl > 0 ? (size_t)pl : 0;
    char subj[3][CTL_BUCKET_MAX + 8];
    int nsubs = 0;
    if (all) {
        snprintf(subj[nsubs++], sizeof(subj[0]), "%s>", w.prefix);
    } else {
        snprintf(subj[nsubs++], sizeof(subj[0]), "%sevt.>", w.prefix);
        snprintf(subj[nsubs++], sizeof(subj[0]), "%smap", w.prefix);
    }
    natsSubscription *subs[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nsubs && rc == 0; i++) {
        ns = natsConnection_Subscribe(&subs[i], cc.nc, subj[i], watch_on_msg, &g_watch);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "subscribing to %s: %s", subj[i], natsStatus_GetText(ns));
    }
    if (rc == 0 && (ns = natsConnection_FlushTimeout(cc.nc, (int64_t)cc.s.nats.request_timeout_ms)) !=
                       NATS_OK)
        rc = ctl_no_cluster(&cc, "the server did not confirm the subscriptions: %s",
                            natsStatus_GetText(ns));
    if (rc == 0 && !o.json)
        fprintf(stderr, "aetherctl: watching cluster '%s' at %s (%s%s%s); Ctrl-C stops\n",
                cc.cluster, cc.servers, subj[0], nsubs > 1 ? ", " : "", nsubs > 1 ? subj[1] : "");
    uint64_t end = duration_ms != 0 ? mono_ms() + duration_ms : UINT64_MAX;
    uint64_t printed = 0, dropped_seen = 0;
    while (rc == 0 && !g_stop && (count == 0 || printed < count)) {
        uint64_t now = mono_ms();
        if (now >= end)
            break;
        uint64_t wait = end - now < WATCH_POLL_MS ? end - now : WATCH_POLL_MS;
        uint64_t dropped = 0;
        natsMsg *msg = watch_pop(&g_watch, wait, &dropped);
        if (dropped > dropped_seen) {
            if (o.json)
                (void)ctl_emit_json(json_pack("{s:s,s:I}", "kind", "dropped", "count",
                                              (json_int_t)(dropped - dropped_seen)));
            else
                printf("DROPPED %" PRIu64 " messages (the output is slower than the cluster)\n",
                       dropped - dropped_seen);
            dropped_seen = dropped;
        }
        if (msg == NULL)
            continue;
        watch_print(&w, msg);
        natsMsg_Destroy(msg);
        printed++;
        fflush(stdout);
    }
    for (int i = 0; i < nsubs; i++) {
        if (subs[i] != NULL) {
            (void)natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    ctl_close(&cc);
    uint64_t ignored = 0;
    natsMsg *left;
    while ((left = watch_pop(&g_watch, 0, &ignored)) != NULL) /* bounded: the ring */
        natsMsg_Destroy(left);
    if (rc == 0 && !o.json)
        fprintf(stderr, "aetherctl: %" PRIu64 " events, %" PRIu64 " maps, %" PRIu64
                " other messages, %" PRIu64 " refused\n",
                w.events, w.maps, w.others, w.refused);
    return rc;
}

/* ---- asking the leader -------------------------------------------------------
 * The commands that change the cluster (drain, rebalance) send one command
 * to the leader on aether.<cluster>.cmd.<Command> (request/reply, the
 * codec's envelope) and retry with backoff (50 ms doubling to 1 s) while no
 * leader answers - no responders, a node that is not the leader, a busy
 * leader - until the connection's deadline. */

#define DRAIN_BACKOFF_MS_FIRST 50u
#define DRAIN_BACKOFF_MS_MAX 1000u
#define DRAIN_POLL_MS 100u

/* Statuses after which asking again may succeed: nobody leads right now, or
 * the one that answered is not (or no longer) the leader, or it is busy. */
static bool drain_retryable(aether_status st)
{
    return st == AETHER_ENOTLEADER || st == AETHER_EFULL || st == AETHER_ECLOSED ||
           st == AETHER_EUNAVAILABLE || st == AETHER_ETIMEOUT || st == AETHER_EUNKNOWN;
}

typedef struct ctl_answer {
    bool accepted;      /* the leader said OK (else: rejected, with status and reason) */
    aether_status status;
    char reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
    unsigned attempts;
} ctl_answer;

/* Sends cmd (cluster and sender filled here) until a leader gives a verdict.
 * 0 with *ans filled; EXIT_USAGE if cmd does not encode; EXIT_FAILED when
 * interrupted, EXIT_NO_CLUSTER when no leader answered before the deadline
 * (both said on stderr, naming `what`). */
static int ctl_ask_leader(ctl_conn *cc, aether_command *cmd, const char *what, ctl_answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    snprintf(cmd->cluster, sizeof(cmd->cluster), "%s", cc->cluster);
    (void)aether_node_id_from_cstr(CTL_SELF_ID, &cmd->sender, NULL);
    aether_err err = {0};
    char *body = NULL;
    size_t body_len = 0;
    if (aether_codec_encode_command(cmd, (uint64_t)(wall_ns() / 1000000), &body, &body_len,
                                    &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s: %s\n", what, err.msg);
        return EXIT_USAGE;
    }
    char subject[CTL_BUCKET_MAX + 32];
    snprintf(subject, sizeof(subject), "aether.%s.cmd.%s", cc->cluster,
             aether_command_type_name(cmd->type));
    bool verdict = false;
    char last_why[AETHER_CODEC_REPLY_REASON_MAX + 64] = "nothing sent";
    uint64_t backoff = DRAIN_BACKOFF_MS_FIRST;
    while (!g_stop) { /* bounded: the deadline */
        uint64_t left = ctl_remaining_ms(cc);
        if (left == 0)
            break;
        uint64_t per = cc->s.nats.request_timeout_ms < left ? cc->s.nats.request_timeout_ms : left;
        natsMsg *reply = NULL;
        natsStatus ns;
        if (g_auth == NULL) {
            ns = natsConnection_Request(&reply, cc->nc, subject, body, (int)body_len, (int64_t)per);
        } else {
            /* Sealed afresh for every attempt: a leader admits a counter once. */
            char tag[AETHER_AUTH_TAG_MAX];
            natsMsg *req = NULL;
            (void)aether_auth_seal(&cc->sealer, subject, body, body_len, (uint64_t)(wall_ns() / 1000000), tag,
                                   sizeof(tag));
            ns = natsMsg_Create(&req, subject, NULL, body, (int)body_len);
            if (ns == NATS_OK)
                ns = natsMsgHeader_Set(req, AETHER_AUTH_HEADER, tag);
            if (ns == NATS_OK)
                ns = natsConnection_RequestMsg(&reply, cc->nc, req, (int64_t)per);
            natsMsg_Destroy(req);
            if (ns == NATS_OK && !ctl_authentic(reply, (uint64_t)(wall_ns() / 1000000))) {
                natsMsg_Destroy(reply);
                reply = NULL;
                ns = NATS_TIMEOUT; /* a forged reply is no reply */
            }
        }
        ans->attempts++;
        if (ns == NATS_OK) {
            aether_codec_msg m;
            aether_err derr = {0};
            if (aether_codec_decode(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                                    NULL, &m, &derr) != AETHER_OK ||
                m.kind != AETHER_CODEC_REPLY) {
                if (derr.msg[0] == '\0')
                    snprintf(derr.msg, sizeof(derr.msg), "not a Reply");
                snprintf(last_why, sizeof(last_why), "unreadable reply: %s", derr.msg);
                aether_codec_msg_fini(&m);
            } else {
                ans->status = m.u.reply.status;
                snprintf(ans->reason, sizeof(ans->reason), "%s", m.u.reply.reason);
                aether_codec_msg_fini(&m);
                if (ans->status == AETHER_OK || !drain_retryable(ans->status)) {
                    ans->accepted = ans->status == AETHER_OK;
                    verdict = true;
                } else {
                    snprintf(last_why, sizeof(last_why), "%s: %s", aether_status_str(ans->status),
                             ans->reason);
                }
            }
            natsMsg_Destroy(reply);
            if (verdict)
                break;
        } else if (ctl_refused(cc, last_why, sizeof(last_why))) {
            break; /* the publish was refused: no retry can pass */
        } else if (ns == NATS_NO_RESPONDERS) {
            snprintf(last_why, sizeof(last_why), "no responders (no leader is serving commands)");
        } else if (ns == NATS_TIMEOUT) {
            snprintf(last_why, sizeof(last_why), "no reply within %" PRIu64 " ms", per);
        } else {
            snprintf(last_why, sizeof(last_why), "%s", natsStatus_GetText(ns));
        }
        left = ctl_remaining_ms(cc);
        sleep_ms(backoff < left ? backoff : left);
        backoff = backoff * 2 > DRAIN_BACKOFF_MS_MAX ? DRAIN_BACKOFF_MS_MAX : backoff * 2;
    }
    free(body);
    if (verdict)
        return 0;
    if (g_stop) {
        fprintf(stderr, "aetherctl: %s: interrupted (%u attempts; last: %s)\n", what, ans->attempts,
                last_why);
        return EXIT_FAILED;
    }
    char refused[300];
    if (ctl_refused(cc, refused, sizeof(refused)))
        return ctl_say_refused(cc, what, refused);
    return ctl_no_cluster(cc, "no leader answered %s within %" PRIu64 " ms (%u attempts; last: %s)",
                          subject, cc->timeout_ms, ans->attempts, last_why);
}

/* ---- drain ----------------------------------------------------------------- */

/* The node's status in the stored topology (0 and *found, or 1/3) and the
 * shards (any role) the stored map still gives it (*shards, -1 unknown). */
static int drain_node_status(ctl_conn *cc, const aether_node_id *node, aether_node_status *out,
                             bool *found, int64_t *shards)
{
    aether_kv_entry e;
    bool have = false;
    *found = false;
    *shards = -1;
    /* Values of another generation than the bucket's are not looked at
     * (ctl_read): the bucket's generation first. */
    uint64_t bucket_gen = 0, gen = 0;
    int rc = ctl_state_get(cc, CTL_STATE_KEY_GENERATION, &e, &have);
    if (rc != 0)
        return rc;
    if (have) {
        if (!aether_lease_generation_parse((const char *)e.value, e.value_len, &bucket_gen))
            bucket_gen = 0;
        aether_kv_entry_fini(&e);
    }
    rc = ctl_state_get(cc, CTL_STATE_KEY_MAP, &e, &have);
    if (rc != 0)
        return rc;
    if (have) {
        aether_shardmap *map = NULL;
        if (aether_shardmap_json_decode_gen((const char *)e.value, e.value_len, &map, &gen, NULL) ==
                AETHER_OK &&
            (gen == 0 || gen == bucket_gen)) {
            aether_node_index idx = aether_shardmap_find_node(map, node);
            size_t owned = 0;
            if (idx != AETHER_NODE_INDEX_NONE)
                (void)aether_shardmap_node_owner_shards(map, idx, &owned);
            *shards = (int64_t)owned;
        }
        aether_shardmap_destroy(map); /* NULL when not decoded */
        aether_kv_entry_fini(&e);
    }
    rc = ctl_state_get(cc, CTL_STATE_KEY_TOPOLOGY, &e, &have);
    if (rc != 0 || !have)
        return rc;
    aether_node_id self;
    (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
    aether_topology t;
    if (aether_topology_init(&t, &self) != AETHER_OK) {
        aether_kv_entry_fini(&e);
        return EXIT_FAILED;
    }
    aether_err err = {0};
    if (aether_topology_json_decode_gen((const char *)e.value, e.value_len, &t, &gen, &err) ==
            AETHER_OK &&
        (gen == 0 || gen == bucket_gen)) {
        const aether_node_info *info = aether_topology_find(&t, node);
        if (info != NULL) {
            *found = true;
            *out = info->status;
        }
    }
    aether_topology_fini(&t);
    aether_kv_entry_fini(&e);
    return 0;
}

static int cmd_drain(int argc, char **argv)
{
    const command *self = find_command("drain");
    static const struct option opts[] = {
        {"wait", no_argument, NULL, 'w'}, CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    bool wait = false;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":wjh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case 'w': wait = true; break;
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
        return usage_error(self, argc - optind == 0 ? "missing NODE%s" : "expected one NODE%s",
                           "");
    aether_node_id node;
    aether_err err = {0};
    if (aether_node_id_from_cstr(argv[optind], &node, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: NODE: %s\n", err.msg);
        return EXIT_USAGE;
    }

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_DRAIN_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    uint64_t t0 = mono_ms();
    ctl_view v;
    memset(&v, 0, sizeof(v));
    /* No state bucket: no such cluster; say so now rather than retrying. */
    if ((rc = ctl_bind_state(&cc)) != 0 || (rc = ctl_read_lease(&cc, &v)) != 0) {
        ctl_close(&cc);
        return rc;
    }
    /* Copied: v is re-read below when a wait ends badly. */
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    aether_node_id lease_leader = v.lease.leader;
    aether_term lease_term = v.lease.term;

    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_LEAVE_CLUSTER;
    /* The highest term we know: a deposed leader that still answers refuses
     * it as newer than its own, and we ask again. */
    cmd.term = lease_known ? lease_term : AETHER_TERM_NONE;
    cmd.data.leave.node = node;
    ctl_answer ans;
    char what[AETHER_NODE_ID_LEN_MAX + 8];
    snprintf(what, sizeof(what), "drain %s", node.str);
    if ((rc = ctl_ask_leader(&cc, &cmd, what, &ans)) != 0) {
        ctl_close(&cc);
        return rc;
    }
    unsigned attempts = ans.attempts;
    aether_status reply_status = ans.status;
    const char *reason = ans.reason;
    enum { VERDICT_ACCEPTED, VERDICT_REJECTED } verdict = ans.accepted ? VERDICT_ACCEPTED
                                                                       : VERDICT_REJECTED;

    /* Optionally wait for Left. */
    bool waited = false;
    aether_node_status final_status = AETHER_NODE_DRAINING;
    bool final_known = false;
    uint64_t wait_ms = 0;
    const char *wait_failure = NULL;
    if (verdict == VERDICT_ACCEPTED && wait) {
        waited = true;
        /* Progress, in text mode: the shards the stored map still gives the
         * node, each time that count changes. */
        int64_t shown = -1;
        while (rc == 0) { /* bounded: the deadline */
            bool found = false;
            aether_node_status st = AETHER_NODE_DRAINING;
            int64_t on_node = -1;
            rc = drain_node_status(&cc, &node, &st, &found, &on_node);
            if (rc != 0)
                break;
            if (found) {
                final_known = true;
                final_status = st;
            } else if (final_known && final_status == AETHER_NODE_DRAINING) {
                /* Seen draining, now gone: left and already forgotten
                 * (node_retention_ms shorter than our polls). */
                final_status = AETHER_NODE_LEFT;
                break;
            }
            if (!o.json && on_node >= 0 && on_node != shown && !(found && st == AETHER_NODE_LEFT)) {
                printf("drain %s: %" PRId64 " shard%s left\n", node.str, on_node, on_node == 1 ? "" : "s");
                fflush(stdout);
                shown = on_node;
            }
            if (found && (st == AETHER_NODE_LEFT || st == AETHER_NODE_FAILED))
                break;
            if (g_stop) {
                wait_failure = "interrupted";
                break;
            }
            uint64_t left = ctl_remaining_ms(&cc);
            if (left == 0) {
                wait_failure = "timed out";
                break;
            }
            sleep_ms(DRAIN_POLL_MS < left ? DRAIN_POLL_MS : left);
        }
        wait_ms = mono_ms() - t0;
        if (rc == 0 && wait_failure == NULL && final_status == AETHER_NODE_FAILED)
            wait_failure = "failed while draining";
    }
    if (rc != 0) {
        ctl_close(&cc);
        return rc;
    }
    /* What is left on the node, for a wait that did not end well. */
    uint32_t shards_left = 0;
    bool have_left = false;
    if (wait_failure != NULL) {
        ctl_view_fini(&v);
        if (ctl_read(&cc, &v, false) == 0 && v.map != NULL) {
            aether_node_index idx = aether_shardmap_find_node(v.map, &node);
            size_t slots = 0;
            if (idx != AETHER_NODE_INDEX_NONE)
                (void)aether_shardmap_node_owner_shards(v.map, idx, &slots);
            shards_left = (uint32_t)slots;
            have_left = true;
        }
    }

    if (o.json) {
        json_t *doc = json_object();
        jset(doc, "cluster", json_string(cc.cluster));
        jset(doc, "node", json_string(node.str));
        jset(doc, "verdict", json_string(verdict == VERDICT_ACCEPTED ? "accepted" : "rejected"));
        jset(doc, "status", json_string(aether_status_str(reply_status)));
        jset(doc, "reason", json_string(reason));
        jset(doc, "attempts", jint(attempts));
        jset(doc, "leader", lease_known ? json_string(lease_leader.str) : json_null());
        jset(doc, "term", lease_known ? jint(lease_term) : json_null());
        if (waited) {
            json_t *wj = json_object();
            jset(wj, "final_status",
                 final_known ? json_string(aether_node_status_name(final_status)) : json_null());
            jset(wj, "waited_ms", jint(wait_ms));
            jset(wj, "ok", json_boolean(wait_failure == NULL));
            jset(wj, "failure", wait_failure ? json_string(wait_failure) : json_null());
            if (have_left)
                jset(wj, "shards_left", jint(shards_left));
            jset(doc, "wait", wj);
        } else {
            jset(doc, "wait", json_null());
        }
        (void)ctl_emit_json(doc);
    } else if (verdict == VERDICT_ACCEPTED) {
        printf("drain %s: accepted by the leader", node.str);
        if (lease_known)
            printf(" (%s, term %" PRIu64 ")", lease_leader.str, (uint64_t)lease_term);
        printf("; %s is draining\n", node.str);
        if (waited && wait_failure == NULL)
            printf("%s is left after %" PRIu64 " ms\n", node.str, wait_ms);
    } else {
        printf("drain %s: rejected by the leader: %s%s%s\n", node.str,
               aether_status_str(reply_status), reason[0] ? ": " : "", reason);
    }
    if (verdict == VERDICT_REJECTED) {
        rc = EXIT_FAILED;
    } else if (wait_failure != NULL) {
        fprintf(stderr, "aetherctl: drain %s: %s after %" PRIu64 " ms: status %s", node.str,
                wait_failure, wait_ms,
                final_known ? aether_node_status_name(final_status) : "unknown");
        if (have_left)
            fprintf(stderr, ", %u shards still on it", shards_left);
        fprintf(stderr, "\n");
        rc = EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- rebalance ---------------------------------------------------------------- */

/* $USER@HOST, in the reason's alphabet (printable ASCII), for the leader's
 * record of who released the brake. */
static void rebalance_default_reason(char *out, size_t cap)
{
    const char *user = getenv("USER");
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    snprintf(out, cap, "%s@%s", user != NULL && user[0] != '\0' ? user : "operator",
             host[0] != '\0' ? host : "?");
    for (char *p = out; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
}

static int cmd_rebalance(int argc, char **argv)
{
    const command *self = find_command("rebalance");
    enum { OPT_REASON = 1000 };
    static const struct option opts[] = {{"release-brake", no_argument, NULL, 'r'},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         CTL_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    bool release = false;
    const char *reason_arg = NULL;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":rjh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case 'r': release = true; break;
        case OPT_REASON: reason_arg = optarg; break;
        case 'h':
            print_command_help(stdout, self);
            return 0;
        case ':':
            return usage_error(self, "option %s needs a value", argv[optind - 1]);
        default:
            return usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 0)
        return usage_error(self, "unexpected argument '%s'", argv[optind]);
    char reason[AETHER_REASON_MAX + 1];
    if (reason_arg != NULL) {
        size_t len = strlen(reason_arg);
        bool printable = len > 0 && len <= AETHER_REASON_MAX;
        for (size_t i = 0; i < len && printable; i++)
            printable = reason_arg[i] >= 0x20 && reason_arg[i] <= 0x7e;
        if (!printable)
            return usage_error(self, "--reason: '%s' is not 1..63 printable bytes", reason_arg);
        snprintf(reason, sizeof(reason), "%s", reason_arg);
    } else if (release) {
        rebalance_default_reason(reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "operator");
    }

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_DRAIN_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    memset(&v, 0, sizeof(v));
    if ((rc = ctl_bind_state(&cc)) != 0 || (rc = ctl_read_lease(&cc, &v)) != 0) {
        ctl_close(&cc);
        return rc;
    }
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_REBALANCE_SHARDS;
    cmd.term = lease_known ? v.lease.term : AETHER_TERM_NONE;
    aether_event_set_reason(cmd.data.rebalance.reason, reason);
    cmd.data.rebalance.release_brake = release;
    ctl_answer ans;
    rc = ctl_ask_leader(&cc, &cmd, "rebalance", &ans);
    if (rc == 0) {
        if (o.json) {
            json_t *doc = json_object();
            jset(doc, "cluster", json_string(cc.cluster));
            jset(doc, "release_brake", json_boolean(release));
            jset(doc, "reason", json_string(reason));
            jset(doc, "verdict", json_string(ans.accepted ? "accepted" : "rejected"));
            jset(doc, "status", json_string(aether_status_str(ans.status)));
            jset(doc, "reply", json_string(ans.reason));
            jset(doc, "attempts", jint(ans.attempts));
            jset(doc, "leader", lease_known ? json_string(v.lease.leader.str) : json_null());
            jset(doc, "term", lease_known ? jint(v.lease.term) : json_null());
            (void)ctl_emit_json(doc);
        } else if (ans.accepted) {
            printf("rebalance: %s by the leader", release ? "brake released" : "accepted");
            if (lease_known)
                printf(" (%s, term %" PRIu64 ")", v.lease.leader.str, (uint64_t)v.lease.term);
            if (release)
                printf("; a rebalance starts (RebalanceStarted reason 'brake released by operator'; "
                       "asked by %s)",
                       reason);
            printf("\n");
        } else {
            printf("rebalance: rejected by the leader: %s%s%s\n", aether_status_str(ans.status),
                   ans.reason[0] ? ": " : "", ans.reason);
        }
        if (!ans.accepted)
            rc = EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
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

static int plan_find_live(const aether_strategy_node *nodes, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i].id.str, id) == 0)
            return (int)i;
    return -1;
}

static json_t *plan_json(const ctl_conn *cc, const aether_rebalance_plan *p,
                         const aether_shardmap *next, json_t *changes)
{
    json_t *doc = json_object();
    jset(doc, "cluster", json_string(cc->cluster));
    jset(doc, "live", json_true());
    jset(doc, "from_version", jint(p->from_version));
    jset(doc, "to_version", jint(p->to_version));
    jset(doc, "term", jint(next->term));
    jset(doc, "shard_count", jint(p->shard_count));
    jset(doc, "replication", jint(p->replication));
    jset(doc, "owner_count", jint(p->owner_count));
    jset(doc, "eligible", jint(p->eligible_count));
    jset(doc, "zones", jint(p->zone_count));
    jset(doc, "changes", changes);
    bool unchanged = p->move_count == 0 && p->slots_added == 0 && p->slots_removed == 0;
    jset(doc, "unchanged", json_boolean(unchanged));
    jset(doc, "primaries_moved", jint(p->primaries_moved));
    jset(doc, "primaries_min", jint(p->primaries_min));
    jset(doc, "orphans", jint(p->orphans));
    jset(doc, "slots_added", jint(p->slots_added));
    jset(doc, "slots_removed", jint(p->slots_removed));
    jset(doc, "slots_min", jint(p->slots_min));
    jset(doc, "deferred", jint(p->deferred));
    jset(doc, "brake_engaged", json_boolean(p->brake_engaged));
    jset(doc, "zone_limited", json_boolean(p->zone_limited));
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < p->node_count; i++) {
        const aether_plan_node *n = &p->nodes[i];
        json_t *jn = json_object();
        jset(jn, "id", json_string(n->id.str));
        jset(jn, "status", json_string(n->in_topology ? aether_node_status_name(n->status) : "gone"));
        jset(jn, "primaries_before", jint(n->primaries_before));
        jset(jn, "primaries_after", jint(n->primaries_after));
        jset(jn, "primary_target", jint(n->primary_target));
        jset(jn, "slots_before", jint(n->slots_before));
        jset(jn, "slots_after", jint(n->slots_after));
        jset(jn, "slot_target", jint(n->slot_target));
        json_array_append_new(nodes, jn);
    }
    jset(doc, "nodes", nodes);
    json_t *moves = json_array();
    for (uint32_t i = 0; i < p->move_count; i++) {
        const aether_plan_move *mv = &p->moves[i];
        json_t *jm = json_object();
        jset(jm, "shard", jint(mv->shard));
        jset(jm, "from", mv->from == AETHER_PLAN_NODE_NONE ? json_null()
                                                            : json_string(p->nodes[mv->from].id.str));
        jset(jm, "to", mv->to == AETHER_PLAN_NODE_NONE ? json_null()
                                                        : json_string(p->nodes[mv->to].id.str));
        json_array_append_new(moves, jm);
    }
    jset(doc, "moves", moves);
    json_t *map = NULL;
    if (aether_shardmap_json_pack(next, &map, NULL) == AETHER_OK)
        jset(doc, "map", map);
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
        int at = plan_find_live(nodes, n, rm[i]);
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
        if (plan_find_live(nodes, n, add[i]) >= 0) {
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
    for (int i = 0; rc == 0 && i < n_dr; i++) {
        int at = plan_find_live(nodes, n, dr[i]);
        if (at < 0) {
            fprintf(stderr, "aetherctl: --draining: '%s' is not a healthy node (after --add and "
                    "--remove)\n", dr[i]);
            rc = EXIT_USAGE;
            break;
        }
        nodes[at].status = AETHER_NODE_DRAINING;
        json_array_append_new(json_object_get(changes, "draining"), json_string(dr[i]));
    }
    for (int i = 0; rc == 0 && i < n_zn; i++) {
        char *eq = strchr(zn[i], '=');
        if (eq == NULL) {
            fprintf(stderr, "aetherctl: --zones: '%s' is not NODE=ZONE\n", zn[i]);
            rc = EXIT_USAGE;
            break;
        }
        *eq = '\0';
        int at = plan_find_live(nodes, n, zn[i]);
        if (at < 0) {
            fprintf(stderr, "aetherctl: --zones: '%s' is not a healthy node (after --add and "
                    "--remove)\n", zn[i]);
            rc = EXIT_USAGE;
            break;
        }
        if (aether_strategy_node_make(&nodes[at], zn[i], eq + 1, nodes[at].status, &err) !=
            AETHER_OK) {
            fprintf(stderr, "aetherctl: --zones: node '%s': %s\n", zn[i], err.msg);
            rc = EXIT_USAGE;
            break;
        }
        json_array_append_new(json_object_get(changes, "zones"),
                              json_pack("{s:s,s:s}", "node", zn[i], "zone", eq + 1));
        *eq = '=';
    }
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
        {"live", no_argument, NULL, OPT_LIVE},
        {"add", required_argument, NULL, OPT_ADD},
        {"remove", required_argument, NULL, OPT_REMOVE},
        CTL_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static aether_strategy_node nodes[PLAN_NODES_MAX];
    static char *items[PLAN_NODES_MAX];
    const char *nodes_arg = NULL, *zones_arg = NULL, *draining_arg = NULL, *from = NULL;
    const char *add_arg = NULL, *remove_arg = NULL;
    uint64_t shards = 0, repl = 0, max_moves = 0, term = 0;
    bool brake = false, json = false, have_term = false, live = false;
    ctl_opts o = {0};
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":N:n:r:z:d:f:m:bt:jh", opts, &li)) != -1) {
        int crc = ctl_common_opt(self, &o, c, opts, li);
        if (crc >= 0) {
            if (crc != 0)
                return crc;
            continue;
        }
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
    json = o.json;
    if (live || (nodes_arg == NULL && from == NULL)) {
        if (nodes_arg != NULL || from != NULL || shards != 0 || have_term)
            return usage_error(self, "--nodes, --from, --shards and --term are offline options; "
                               "live mode reads the map and topology from the cluster%s", "");
        plan_live_args a = {.add = add_arg, .remove = remove_arg, .draining = draining_arg,
                            .zones = zones_arg, .replication = (uint32_t)repl,
                            .max_moves = (uint32_t)max_moves, .brake = brake};
        return plan_live(self, &o, &a);
    }
    if (add_arg != NULL || remove_arg != NULL || o.any_connection)
        return usage_error(self, "--add, --remove and the connection options need live mode "
                           "(no --nodes, no --from)%s", "");
    if (nodes_arg == NULL || nodes_arg[0] == '\0')
        return usage_error(self, "no nodes: --nodes A,B,... is required with --from%s", "");

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

/* ---- events ------------------------------------------------------------------
 *
 * DESIGN
 *  1. The stream AETHER_<cluster>_EVENTS (aether-node --event-stream,
 *     transport/nats_conn.h) holds every event published on
 *     aether.<cluster>.evt.>. Its info gives the first and last stream
 *     sequence; a missing stream is "no cluster answers" (exit 3).
 *  2. An ordered consumer (nats.c: ephemeral, no acks, flow control and
 *     heartbeats, recreated by the library from the last delivered sequence
 *     if a message is missed) delivers from --since (default: the first
 *     message), synchronously on this thread: nothing is shared with nats.c
 *     threads.
 *  3. Each message is decoded strictly (codec.h, cluster = ours; its type
 *     must match its subject) and printed with its stream sequence, term and
 *     per-term seq. A refused one is printed as REFUSED and counted.
 *  4. Gaps: leader-issued events of term T carry seq 1, 2, 3, ... (DESIGN 2).
 *     For each term seen (the EVENTS_TERMS_MAX most recent) we keep the last
 *     seq; a seq above last+1 is a gap, one at or below last is out of order
 *     (a duplicate or a late copy). When the replay starts at stream
 *     sequence 1 (nothing ever discarded, no --since), a term above every
 *     term seen so far must also start at seq 1. Otherwise a term is judged
 *     from its first event in our window on: its earlier events may lie
 *     before the window even when an older term's event comes first in it
 *     (a deposed leader's LeadershipLost arrives after its successor's
 *     first events).
 *  5. Without --follow we stop at the message whose metadata says nothing is
 *     pending, or at the stream's last message when we started, whichever
 *     comes first; with --follow we go on
 *     until SIGINT/SIGTERM (or --count). If no message arrives for --timeout
 *     while the stream still holds undelivered ones, exit 3.
 */

#define EVENTS_TERMS_MAX 64u   /* terms whose last seq we remember */
#define EVENTS_POLL_MS 100u    /* longest wait between stop-condition checks */

typedef struct events_term {
    uint64_t term;
    uint64_t last_seq;
} events_term;

typedef struct events_ctx {
    const char *cluster;
    char prefix[CTL_BUCKET_MAX]; /* "aether.<cluster>.evt." */
    size_t prefix_len;
    bool json;
    bool complete;               /* the replay starts at stream sequence 1 */
    events_term terms[EVENTS_TERMS_MAX];
    uint32_t n_terms;
    uint64_t max_term;
    uint64_t events, refused, gaps, missing, out_of_order;
    uint64_t first_sseq, last_sseq;
} events_ctx;

static void events_gap(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t from, uint64_t to)
{
    x->gaps++;
    x->missing += to - from + 1;
    if (x->json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I}", "kind", "gap", "stream_seq",
                                      (json_int_t)sseq, "term", (json_int_t)term, "missing_from",
                                      (json_int_t)from, "missing_to", (json_int_t)to));
    else
        printf("GAP before #%" PRIu64 ": term %" PRIu64 " seq %" PRIu64 "..%" PRIu64
               " missing (%" PRIu64 " event%s)\n",
               sseq, term, from, to, to - from + 1, to == from ? "" : "s");
}

static void events_reorder(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t seq,
                           uint64_t last)
{
    x->out_of_order++;
    if (x->json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I}", "kind", "out_of_order",
                                      "stream_seq", (json_int_t)sseq, "term", (json_int_t)term,
                                      "seq", (json_int_t)seq, "after_seq", (json_int_t)last));
    else
        printf("OUT OF ORDER #%" PRIu64 ": term %" PRIu64 " seq %" PRIu64 " after seq %" PRIu64
               "\n", sseq, term, seq, last);
}

/* Step 4: called before the event is printed, so a gap line precedes it. */
static void events_check_seq(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t seq)
{
    if (seq == 0) /* node-local: outside the per-term numbering */
        return;
    for (uint32_t i = 0; i < x->n_terms; i++) {
        events_term *t = &x->terms[i];
        if (t->term != term)
            continue;
        if (seq == t->last_seq + 1)
            t->last_seq = seq;
        else if (seq <= t->last_seq)
            events_reorder(x, sseq, term, seq, t->last_seq);
        else {
            events_gap(x, sseq, term, t->last_seq + 1, seq - 1);
            t->last_seq = seq;
        }
        return;
    }
    if (term > x->max_term && seq != 1 && x->complete)
        events_gap(x, sseq, term, 1, seq - 1);
    if (term > x->max_term)
        x->max_term = term;
    uint32_t slot = x->n_terms;
    if (slot == EVENTS_TERMS_MAX) { /* forget the oldest term */
        slot = 0;
        for (uint32_t i = 1; i < x->n_terms; i++)
            if (x->terms[i].term < x->terms[slot].term)
                slot = i;
    } else {
        x->n_terms++;
    }
    x->terms[slot] = (events_term){.term = term, .last_seq = seq};
}

static void events_print(events_ctx *x, natsMsg *msg, uint64_t sseq, int64_t stored_ns)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *want_type = strncmp(subject, x->prefix, x->prefix_len) == 0
                                ? subject + x->prefix_len
                                : NULL;
    aether_codec_limits lim = {.cluster = x->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    char why[AETHER_ERR_MSG_MAX + 64];
    why[0] = '\0';
    if (want_type == NULL) {
        snprintf(why, sizeof(why), "not an event subject of cluster '%s'", x->cluster);
    } else if (aether_codec_decode(data, len, &lim, &m, &err) != AETHER_OK) {
        snprintf(why, sizeof(why), "%s", err.msg);
    } else if (m.kind != AETHER_CODEC_EVENT ||
               strcmp(aether_event_type_name(m.u.event->type), want_type) != 0) {
        snprintf(why, sizeof(why), "a %s message on the subject of %s",
                 m.kind == AETHER_CODEC_EVENT ? aether_event_type_name(m.u.event->type)
                                              : "non-event",
                 want_type);
        aether_codec_msg_fini(&m);
    }
    if (why[0] != '\0') {
        x->refused++;
        char safe[256];
        subject = printable_subject(subject, safe, sizeof(safe));
        if (x->json)
            (void)ctl_emit_json(json_pack("{s:s,s:I,s:s,s:I,s:s}", "kind", "refused",
                                          "stream_seq", (json_int_t)sseq, "subject", subject,
                                          "bytes", (json_int_t)len, "reason", why));
        else
            printf("#%" PRIu64 " REFUSED %s (%zu bytes): %s\n", sseq, subject, len, why);
        return;
    }
    const aether_event *e = m.u.event;
    events_check_seq(x, sseq, e->term, e->seq);
    x->events++;
    if (x->json) {
        json_t *o = json_object();
        jset(o, "kind", json_string("event"));
        jset(o, "stream_seq", jint(sseq));
        jset(o, "stored_ms", json_integer(stored_ns / 1000000));
        jset(o, "subject", json_string(subject));
        jset(o, "type", json_string(aether_event_type_name(e->type)));
        jset(o, "term", jint(e->term));
        jset(o, "seq", jint(e->seq));
        jset(o, "node", json_string(e->node.str));
        jset(o, "ts", jint(e->ts_ms));
        /* The codec accepted it, so it is one well-formed JSON object. */
        jset(o, "message", json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL));
        (void)ctl_emit_json(o);
    } else {
        char stamp[32], line[1024];
        watch_stamp(stamp, sizeof(stamp), stamp_ns_of_ms(e->ts_ms));
        (void)aether_event_format(e, line, sizeof(line));
        printf("#%-6" PRIu64 " %s %s\n", sseq, stamp, line);
    }
    aether_codec_msg_fini(&m);
}

static int cmd_events(int argc, char **argv)
{
    const command *self = find_command("events");
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"follow", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'c'},
        CTL_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t since = 0, count = 0;
    bool follow = false;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:fc:jh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case 's':
            if (parse_u64_in(optarg, 1, INT64_MAX, &since) != 0)
                return usage_error(self, "--since must be a stream sequence >= 1, got '%s'",
                                   optarg);
            break;
        case 'f': follow = true; break;
        case 'c':
            if (parse_u64_in(optarg, 1, UINT32_MAX, &count) != 0)
                return usage_error(self, "--count must be a positive integer, got '%s'", optarg);
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

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    char stream[CTL_BUCKET_MAX], subject[CTL_BUCKET_MAX + 8];
    snprintf(stream, sizeof(stream), "AETHER_%s_EVENTS", cc.cluster);
    snprintf(subject, sizeof(subject), "aether.%s.evt.>", cc.cluster);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, cc.js, stream, NULL, &jerr);
    if (ns == NATS_NOT_FOUND) {
        rc = ctl_no_cluster(&cc, "event stream '%s' does not exist (no aether-node of cluster "
                            "'%s' runs with --event-stream on these servers)",
                            stream, cc.cluster);
        ctl_close(&cc);
        return rc;
    }
    if (ns != NATS_OK) {
        rc = ctl_no_cluster(&cc, "event stream '%s': %s", stream, natsStatus_GetText(ns));
        ctl_close(&cc);
        return rc;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    uint64_t start = since > first ? since : first;

    events_ctx x = {.cluster = cc.cluster, .json = o.json, .complete = start <= 1};
    int pl = snprintf(x.prefix, sizeof(x.prefix), "aether.%s.evt.", cc.cluster);
    x.prefix_len = pl > 0 ? (size_t)pl : 0;
    if (!o.json)
        fprintf(stderr, "aetherctl: stream %s holds #%" PRIu64 "..#%" PRIu64 " (%" PRIu64
                " events); replaying from #%" PRIu64 "%s\n",
                stream, first, last, msgs, start, follow ? ", then following (Ctrl-C stops)" : "");
    natsSubscription *sub = NULL;
    bool done = !follow && (msgs == 0 || start > last);
    if (!done) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream;
        so.Ordered = true;
        if (since > 1) {
            so.Config.DeliverPolicy = js_DeliverByStartSequence;
            so.Config.OptStartSeq = since;
        } else {
            so.Config.DeliverPolicy = js_DeliverAll;
        }
        ns = js_SubscribeSync(&sub, cc.js, subject, NULL, &so, &jerr);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "ordered consumer on %s: %s (JetStream error %d)", stream,
                                natsStatus_GetText(ns), (int)jerr);
    }
    uint64_t idle_since = mono_ms();
    while (rc == 0 && !done && !g_stop) {
        natsMsg *msg = NULL;
        ns = natsSubscription_NextMsg(&msg, sub, EVENTS_POLL_MS);
        if (ns == NATS_TIMEOUT) {
            if (!follow && mono_ms() - idle_since >= cc.timeout_ms)
                rc = ctl_no_cluster(&cc, "stream %s stopped delivering after #%" PRIu64
                                    " (nothing for %" PRIu64 " ms)",
                                    stream, x.last_sseq, cc.timeout_ms);
            continue;
        }
        if (ns != NATS_OK) {
            rc = ctl_no_cluster(&cc, "reading stream %s: %s", stream, natsStatus_GetText(ns));
            break;
        }
        idle_since = mono_ms();
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
            natsMsg_Destroy(msg); /* not a stream message (cannot happen on an ordered consumer) */
            continue;
        }
        uint64_t sseq = meta->Sequence.Stream;
        if (x.first_sseq == 0)
            x.first_sseq = sseq;
        x.last_sseq = sseq;
        /* Stored: fresh means sealed near when the stream stored it. */
        if (ctl_authentic(msg, meta->Timestamp > 0 ? (uint64_t)meta->Timestamp / 1000000u : 0))
            events_print(&x, msg, sseq, meta->Timestamp);
        else
            x.refused++;
        fflush(stdout);
        /* The end: nothing pending when this one was delivered, or the last
         * message the stream held when we started (so a busy cluster cannot
         * keep a replay going forever). */
        if (!follow && (meta->NumPending == 0 || sseq >= last))
            done = true;
        if (count != 0 && x.events + x.refused >= count)
            done = true;
        jsMsgMetaData_Destroy(meta);
        natsMsg_Destroy(msg);
    }
    if (sub != NULL) {
        (void)natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
        natsSubscription_Destroy(sub);
    }
    ctl_close(&cc);
    if (rc != 0)
        return rc;
    if (o.json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "kind", "summary",
                                      "events", (json_int_t)x.events, "first_stream_seq",
                                      (json_int_t)x.first_sseq, "last_stream_seq",
                                      (json_int_t)x.last_sseq, "gaps", (json_int_t)x.gaps,
                                      "missing", (json_int_t)x.missing, "out_of_order",
                                      (json_int_t)x.out_of_order, "refused",
                                      (json_int_t)x.refused));
    else
        fprintf(stderr, "aetherctl: %" PRIu64 " events (#%" PRIu64 "..#%" PRIu64 "), %" PRIu64
                " gaps (%" PRIu64 " missing), %" PRIu64 " out of order, %" PRIu64 " refused\n",
                x.events, x.first_sseq, x.last_sseq, x.gaps, x.missing, x.out_of_order,
                x.refused);
    return x.gaps + x.out_of_order + x.refused > 0 ? EXIT_FAILED : 0;
}

/* ---- fail -------------------------------------------------------------------- */

static int cmd_fail(int argc, char **argv)
{
    const command *self = find_command("fail");
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'}, {"incarnation", required_argument, NULL, 'I'},
        CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    ctl_opts o = {0};
    bool force = false;
    uint64_t incarnation = 0;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fjh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case 'f': force = true; break;
        case 'I':
            if (parse_u64_in(optarg, 1, INT64_MAX, &incarnation) != 0)
                return usage_error(self, "--incarnation wants a positive integer below 2^63, not '%s'",
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
        return usage_error(self, argc - optind == 0 ? "missing NODE%s" : "expected one NODE%s",
                           "");
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_MARK_NODE_FAILED;
    cmd.data.mark_failed.force = force;
    aether_err err = {0};
    if (aether_node_id_from_cstr(argv[optind], &cmd.data.mark_failed.node, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: NODE: %s\n", err.msg);
        return EXIT_USAGE;
    }
    const aether_node_id *node = &cmd.data.mark_failed.node;
    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_DRAIN_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    memset(&v, 0, sizeof(v));
    if ((rc = ctl_read(&cc, &v, true)) != 0) {
        ctl_view_fini(&v);
        ctl_close(&cc);
        return rc;
    }
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    cmd.term = lease_known ? v.lease.term : AETHER_TERM_NONE;
    /* The process we mean: every retry names it (issue 13). */
    const aether_node_info *seen = v.have_topo ? aether_topology_find(&v.topo, node) : NULL;
    cmd.data.mark_failed.incarnation = incarnation != 0 ? incarnation : seen != NULL ? seen->incarnation : 0;
    char what[AETHER_NODE_ID_LEN_MAX + 8];
    snprintf(what, sizeof(what), "fail %s", node->str);
    ctl_answer ans;
    rc = ctl_ask_leader(&cc, &cmd, what, &ans);
    if (rc == 0) {
        if (o.json) {
            json_t *doc = json_object();
            jset(doc, "cluster", json_string(cc.cluster));
            jset(doc, "node", json_string(node->str));
            jset(doc, "force", json_boolean(force));
            jset(doc, "incarnation", cmd.data.mark_failed.incarnation != 0
                                         ? jint(cmd.data.mark_failed.incarnation) : json_null());
            jset(doc, "verdict", json_string(ans.accepted ? "accepted" : "rejected"));
            jset(doc, "status", json_string(aether_status_str(ans.status)));
            jset(doc, "reason", json_string(ans.reason));
            jset(doc, "attempts", jint(ans.attempts));
            (void)ctl_emit_json(doc);
        } else if (ans.accepted) {
            /* A forced fail of a node the leader still hears is decided
             * once it has been silent failure_timeout_ms: the reason says so. */
            printf("fail %s: accepted by the leader%s; %s (incarnation %llu) is %s\n", node->str,
                   force ? " (forced)" : "", node->str,
                   (unsigned long long)cmd.data.mark_failed.incarnation,
                   ans.reason[0] ? ans.reason : "failed");
        } else {
            printf("fail %s: rejected by the leader: %s%s%s\n", node->str,
                   aether_status_str(ans.status), ans.reason[0] ? ": " : "", ans.reason);
        }
        rc = ans.accepted ? 0 : EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- top ---------------------------------------------------------------------
 *
 * DESIGN
 *  1. Every --interval (default 1 s) a frame: the lease, map, topology and
 *     recorded term read exactly as `status` reads them (ctl_read), drawn as
 *     leader and term, map and handoffs in flight, rebalances, map-version
 *     lag, one row per node with its status and a bar of its primaries, and
 *     the last events. Each frame is a whole new read: nothing is inferred
 *     across frames except what the wire told us (step 2).
 *  2. A core subscription to aether.<cluster>.evt.> and .hb.> feeds a small
 *     tally (top_live, under its mutex): each node's last heartbeat, the
 *     leader's map version from its LeaseRenewed (every ttl/4), rebalances
 *     started and completed, the last few events. The callback runs on a
 *     nats.c thread, decodes strictly and only updates the tally.
 *  3. Rebalance history before top started comes from the event stream when
 *     there is one (per-subject counts in the stream info, the last
 *     RebalanceCompleted by js_GetLastMsg); otherwise top counts what it
 *     sees.
 *  4. Map-version lag: the leader's version (LeaseRenewed) minus the stored
 *     map's version, i.e. how far the state bucket trails the leader; each
 *     node's own lag is in its metrics (aether-node --metrics-addr).
 *  5. On a terminal: alternate screen, cursor hidden, each frame drawn from
 *     the home position with ANSI escapes (clear to end of line / screen),
 *     lines cut to the terminal width; stdin in non-canonical, no-echo mode
 *     (termios), polled between frames: 'q' quits. The terminal is restored
 *     on every exit path (normal, SIGINT/SIGTERM/SIGHUP via the stop flag,
 *     atexit). When stdout is not a terminal: plain frames, one per
 *     interval, separated by a blank line; --json: one object per frame.
 */

#define TOP_NODES_MAX 256u     /* nodes whose heartbeat we track */
#define TOP_RECENT_MAX 5u      /* recent events shown */
#define TOP_INTERVAL_MS_DEFAULT 1000u
#define TOP_WIDTH_MIN 60
#define TOP_WIDTH_MAX 400

typedef struct top_hb {
    aether_node_id id;
    uint64_t at_ms;            /* monotonic */
} top_hb;

typedef struct top_live {
    pthread_mutex_t mu;
    /* Everything below under mu. */
    const char *cluster;       /* immutable after start */
    top_hb hb[TOP_NODES_MAX];
    uint32_t n_hb;
    bool have_renewal;
    uint64_t leader_map_version, leader_topo_version, renewal_term, renewal_at_ms;
    uint64_t rebalances_started, rebalances_completed; /* seen live */
    bool rebalancing;          /* a RebalanceStarted not yet completed */
    char last_started[160];
    char last_completed[160];
    uint64_t events;
    char recent[TOP_RECENT_MAX][200];
    uint32_t recent_n, recent_head;
} top_live;

static top_live g_top = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void top_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    top_live *t = closure;
    aether_codec_limits lim = {.cluster = t->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    if (!ctl_authentic(msg, (uint64_t)(wall_ns() / 1000000))) {
        natsMsg_Destroy(msg);
        return;
    }
    if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &lim, &m,
                            &err) != AETHER_OK) {
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t now = mono_ms();
    pthread_mutex_lock(&t->mu);
    if (m.kind == AETHER_CODEC_HEARTBEAT) {
        uint32_t i = 0;
        while (i < t->n_hb && !aether_node_id_equal(&t->hb[i].id, &m.u.heartbeat.node))
            i++;
        if (i == t->n_hb && t->n_hb < TOP_NODES_MAX)
            t->hb[t->n_hb++].id = m.u.heartbeat.node;
        if (i < t->n_hb)
            t->hb[i].at_ms = now;
    } else if (m.kind == AETHER_CODEC_EVENT) {
        const aether_event *e = m.u.event;
        if (e->type == AETHER_EVT_LEASE_RENEWED) {
            if (!t->have_renewal || e->term >= t->renewal_term) {
                t->have_renewal = true;
                t->leader_map_version = e->data.lease_renewed.map_version;
                t->leader_topo_version = e->data.lease_renewed.topology_version;
                t->renewal_term = e->term;
                t->renewal_at_ms = now;
            }
        } else {
            /* Renewals are 4 a second: they would push everything else out. */
            char stamp[32], line[1024];
            watch_stamp(stamp, sizeof(stamp), stamp_ns_of_ms(e->ts_ms));
            (void)aether_event_format(e, line, sizeof(line));
            uint32_t slot = (t->recent_head + t->recent_n) % TOP_RECENT_MAX;
            if (t->recent_n == TOP_RECENT_MAX)
                t->recent_head = (t->recent_head + 1) % TOP_RECENT_MAX;
            else
                t->recent_n++;
            snprintf(t->recent[slot], sizeof(t->recent[slot]), "%.12s %.*s", stamp,
                     (int)sizeof(t->recent[slot]) - 14, line);
        }
        if (e->type == AETHER_EVT_REBALANCE_STARTED) {
            t->rebalances_started++;
            t->rebalancing = true;
            snprintf(t->last_started, sizeof(t->last_started),
                     "from map v%" PRIu64 ", %u moves planned (%s)",
                     e->data.rebalance_started.from_version,
                     e->data.rebalance_started.moves_planned, e->data.rebalance_started.reason);
        } else if (e->type == AETHER_EVT_REBALANCE_COMPLETED) {
            t->rebalances_completed++;
            t->rebalancing = false;
            snprintf(t->last_completed, sizeof(t->last_completed),
                     "map v%" PRIu64 ", %u moved in %" PRIu64 " ms",
                     e->data.rebalance_completed.map_version, e->data.rebalance_completed.moved,
                     e->data.rebalance_completed.duration_ms);
        }
        t->events++;
    }
    pthread_mutex_unlock(&t->mu);
    aether_codec_msg_fini(&m);
    natsMsg_Destroy(msg);
}

/* Rebalance history from the event stream (step 3); false without a stream. */
typedef struct top_history {
    bool have_stream;
    uint64_t started, completed; /* in the stream when top started */
    char last_completed[160];
} top_history;

static void top_read_history(ctl_conn *cc, top_history *h)
{
    memset(h, 0, sizeof(*h));
    char stream[CTL_BUCKET_MAX], filter[CTL_BUCKET_MAX + 16], last_subj[CTL_BUCKET_MAX + 32];
    snprintf(stream, sizeof(stream), "AETHER_%s_EVENTS", cc->cluster);
    snprintf(filter, sizeof(filter), "aether.%s.evt.*", cc->cluster); /* whole tokens only */
    snprintf(last_subj, sizeof(last_subj), "aether.%s.evt.RebalanceCompleted", cc->cluster);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)cc->s.nats.request_timeout_ms;
    jo.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, cc->js, stream, &jo, &jerr) != NATS_OK)
        return;
    h->have_stream = true;
    for (int i = 0; si->State.Subjects != NULL && i < si->State.Subjects->Count; i++) {
        const jsStreamStateSubject *s = &si->State.Subjects->List[i];
        const char *tail = strrchr(s->Subject, '.');
        if (tail != NULL && strcmp(tail, ".RebalanceStarted") == 0)
            h->started = s->Msgs;
        else if (tail != NULL && strcmp(tail, ".RebalanceCompleted") == 0)
            h->completed = s->Msgs;
    }
    jsStreamInfo_Destroy(si);
    natsMsg *msg = NULL;
    if (h->completed == 0 || js_GetLastMsg(&msg, cc->js, stream, last_subj, NULL, &jerr) != NATS_OK)
        return;
    aether_codec_limits lim = {.cluster = cc->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &lim, &m,
                            &err) == AETHER_OK) {
        if (m.kind == AETHER_CODEC_EVENT && m.u.event->type == AETHER_EVT_REBALANCE_COMPLETED)
            snprintf(h->last_completed, sizeof(h->last_completed),
                     "map v%" PRIu64 ", %u moved in %" PRIu64 " ms",
                     m.u.event->data.rebalance_completed.map_version,
                     m.u.event->data.rebalance_completed.moved,
                     m.u.event->data.rebalance_completed.duration_ms);
        aether_codec_msg_fini(&m);
    }
    natsMsg_Destroy(msg);
}

/* The terminal (step 5). */
static struct termios g_top_saved;
static bool g_top_raw;    /* stdin is in our mode: restore g_top_saved */
static bool g_top_screen; /* the alternate screen is on */

static void top_term_restore(void)
{
    if (g_top_screen) {
        fputs("\x1b[?25h\x1b[?1049l", stdout);
        fflush(stdout);
        g_top_screen = false;
    }
    if (g_top_raw) {
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &g_top_saved);
        g_top_raw = false;
    }
}

static void top_term_enter(void)
{
    /* Only the foreground process group may change the terminal (a
     * background one would be stopped by SIGTTOU): in the background, no
     * keys; Ctrl-C and SIGTERM still stop us. */
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp() &&
        tcgetattr(STDIN_FILENO, &g_top_saved) == 0) {
        struct termios raw = g_top_saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            g_top_raw = true;
    }
    fputs("\x1b[?1049h\x1b[?25l", stdout);
    g_top_screen = true;
    atexit(top_term_restore);
}

static int top_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        int w = ws.ws_col;
        return w < TOP_WIDTH_MIN ? TOP_WIDTH_MIN : w > TOP_WIDTH_MAX ? TOP_WIDTH_MAX : w;
    }
    return 80;
}

/* One frame is built as lines, then written in one go. */
typedef struct top_frame {
    char *buf;
    size_t len, cap;
    int width;  /* each line cut to width - 1 columns (the last column stays free) */
    bool tty;
} top_frame;

static void top_line(top_frame *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void top_line(top_frame *f, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t l = strlen(line);
    if (l > (size_t)(f->width - 1))
        l = (size_t)(f->width - 1);
    size_t need = f->len + l + 8;
    if (need > f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4096;
        while (cap < need)
            cap *= 2;
        char *b = realloc(f->buf, cap);
        if (b == NULL)
            return;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, line, l);
    f->len += l;
    if (f->tty) {
        memcpy(f->buf + f->len, "\x1b[K", 3);
        f->len += 3;
    }
    f->buf[f->len++] = '\n';
}

static void top_age(char *buf, size_t cap, uint64_t ms)
{
    if (ms < 10000)
        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", ms / 1000, (ms % 1000) / 100);
    else if (ms < 3600000)
        snprintf(buf, cap, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, cap, ">1h");
}

/* Draws one frame (text) or prints one JSON object. */
static void top_draw(const ctl_conn *cc, const ctl_view *v, const top_history *h, uint64_t frame,
                     bool json, bool tty, int width)
{
    uint32_t n = 0;
    ctl_row *rows = ctl_rows(v, false, &n);
    top_live t;
    pthread_mutex_lock(&g_top.mu);
    t = g_top; /* a copy: the drawing takes no lock */
    pthread_mutex_unlock(&g_top.mu);
    uint64_t now = mono_ms();
    uint32_t moving = ctl_map_moving(v->map);
    uint64_t stored = v->map != NULL ? v->map->version : 0;
    bool have_lag = t.have_renewal && v->map != NULL && t.renewal_term >= v->map->term;
    int64_t lag = have_lag ? (int64_t)t.leader_map_version - (int64_t)stored : 0;
    uint64_t reb_done = h->completed + t.rebalances_completed;
    const char *last_done = t.last_completed[0] ? t.last_completed : h->last_completed;
    uint32_t by_status[AETHER_NODE_STATUS_COUNT_] = {0};
    for (uint32_t i = 0; v->have_topo && i < v->topo.count; i++)
        by_status[v->topo.nodes[i].status]++;

    if (json) {
        json_t *doc = json_object();
        jset(doc, "frame", jint(frame));
        jset(doc, "cluster", json_string(cc->cluster));
        jset(doc, "leader", ctl_lease_json(v));
        if (v->map != NULL)
            jset(doc, "map", json_pack("{s:I,s:I,s:I,s:I,s:I}", "version", (json_int_t)stored,
                                       "term", (json_int_t)v->map->term, "shard_count",
                                       (json_int_t)v->map->shard_count, "replication",
                                       (json_int_t)v->map->replication, "moving",
                                       (json_int_t)moving));
        else
            jset(doc, "map", json_null());
        jset(doc, "handoffs_in_flight", jint(moving));
        jset(doc, "topology_version", v->have_topo ? jint(v->topo.version) : json_null());
        jset(doc, "leader_map_version", t.have_renewal ? jint(t.leader_map_version) : json_null());
        jset(doc, "map_version_lag", have_lag ? json_integer(lag) : json_null());
        json_t *rb = json_object();
        jset(rb, "completed", jint(reb_done));
        jset(rb, "source", json_string(h->have_stream ? "stream" : "live"));
        jset(rb, "in_progress", json_boolean(t.rebalancing));
        jset(rb, "last_completed", last_done[0] ? json_string(last_done) : json_null());
        jset(doc, "rebalances", rb);
        json_t *arr = json_array();
        for (uint32_t i = 0; rows != NULL && i < n; i++) {
            const ctl_row *r = &rows[i];
            json_t *jn = json_object();
            jset(jn, "id", json_string(r->id.str));
            jset(jn, "status", json_string(ctl_row_status(r)));
            jset(jn, "leader", json_boolean(r->leader));
            jset(jn, "primaries", jint(r->primaries));
            jset(jn, "replicas", jint(r->replicas));
            jset(jn, "moving_out", jint(r->moving_out));
            jset(jn, "moving_in", jint(r->moving_in));
            json_t *hb = json_null();
            for (uint32_t k = 0; k < t.n_hb; k++)
                if (aether_node_id_equal(&t.hb[k].id, &r->id))
                    hb = jint(now - t.hb[k].at_ms);
            jset(jn, "heartbeat_ms_ago", hb);
            json_array_append_new(arr, jn);
        }
        jset(doc, "nodes", arr);
        (void)ctl_emit_json(doc);
        fflush(stdout);
        free(rows);
        return;
    }

    top_frame f = {.width = width, .tty = tty};
    char clock[32];
    watch_stamp(clock, sizeof(clock), wall_ns());
    clock[8] = '\0'; /* HH:MM:SS */
    top_line(&f, "aether top - cluster '%s' at %s - %s%s", cc->cluster, cc->servers, clock,
             tty ? " (q quits)" : "");
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    if (!v->lease_bucket || !v->have_lease)
        top_line(&f, "leader    none (the lease is free)");
    else if (v->lease_malformed)
        top_line(&f, "leader    unknown (lease value does not decode)");
    else if (v->lease.term == AETHER_TERM_NONE)
        top_line(&f, "leader    %s, establishing its term", v->lease.leader.str);
    else
        top_line(&f, "leader    %s  term %" PRIu64 "  (renewed %" PRId64 " ms ago, ttl %" PRIu64
                 " ms)", v->lease.leader.str, (uint64_t)v->lease.term, age_ms, v->lease_ttl_ms);
    if (v->map != NULL)
        top_line(&f, "map       v%" PRIu64 " (term %" PRIu64 "), %u shards, R%u, handoffs in "
                 "flight %u", stored, (uint64_t)v->map->term, v->map->shard_count,
                 v->map->replication, moving);
    else
        top_line(&f, "map       none yet");
    if (have_lag)
        top_line(&f, "lag       stored map v%" PRIu64 ", leader's v%" PRIu64 ": %" PRId64
                 " version%s behind", stored, t.leader_map_version, lag, lag == 1 ? "" : "s");
    else
        top_line(&f, "lag       - (waiting for the leader's next LeaseRenewed)");
    if (v->have_topo)
        top_line(&f, "nodes     topology v%" PRIu64 ": %u active, %u draining, %u left, %u failed",
                 v->topo.version, by_status[AETHER_NODE_ACTIVE], by_status[AETHER_NODE_DRAINING],
                 by_status[AETHER_NODE_LEFT], by_status[AETHER_NODE_FAILED]);
    else
        top_line(&f, "nodes     no topology yet");
    top_line(&f, "rebalance %" PRIu64 " completed%s%s%s%s", reb_done,
             h->have_stream ? "" : " (seen by top)", last_done[0] ? ", last: " : "", last_done,
             t.rebalancing ? "; IN PROGRESS" : "");
    if (t.rebalancing)
        top_line(&f, "          started %s", t.last_started);
    top_line(&f, "%s", "");
    int idw = ctl_id_width(rows, rows != NULL ? n : 0, 4);
    uint32_t pmax = 1;
    for (uint32_t i = 0; rows != NULL && i < n; i++)
        pmax = rows[i].primaries > pmax ? rows[i].primaries : pmax;
    /* id, status 8, role 6, prim 5, repl 4, out 3, in 3, hb 5, separators */
    int fixed = idw + 2 + 8 + 1 + 6 + 1 + 5 + 1 + 4 + 1 + 3 + 1 + 3 + 1 + 5 + 2;
    int barw = width - 1 - fixed;
    if (barw < 4)
        barw = 4;
    top_line(&f, "%-*s  %-8s %-6s %5s %4s %3s %3s %5s  PRIMARIES", idw, "NODE", "STATUS", "ROLE",
             "PRIM", "REPL", "OUT", "IN", "HB");
    for (uint32_t i = 0; rows != NULL && i < n; i++) {
        const ctl_row *r = &rows[i];
        char hb[16] = "-", bar[TOP_WIDTH_MAX + 1];
        for (uint32_t k = 0; k < t.n_hb; k++)
            if (aether_node_id_equal(&t.hb[k].id, &r->id))
                top_age(hb, sizeof(hb), now - t.hb[k].at_ms);
        int len = (int)(((uint64_t)r->primaries * (uint64_t)barw + pmax - 1) / pmax);
        len = len > barw ? barw : len;
        memset(bar, '#', (size_t)len);
        bar[len] = '\0';
        top_line(&f, "%-*s  %-8s %-6s %5u %4u %3u %3u %5s  %s", idw, r->id.str, ctl_row_status(r),
                 r->leader ? "leader" : "-", r->primaries, r->replicas, r->moving_out,
                 r->moving_in, hb, bar);
    }
    if (rows == NULL)
        top_line(&f, "(out of memory)");
    top_line(&f, "%s", "");
    top_line(&f, "recent events (%" PRIu64 " seen since top started; lease renewals not listed)",
             t.events);
    for (uint32_t i = 0; i < t.recent_n; i++)
        top_line(&f, "  %s", t.recent[(t.recent_head + i) % TOP_RECENT_MAX]);
    if (tty) {
        fputs("\x1b[H", stdout);
        if (f.buf != NULL)
            fwrite(f.buf, 1, f.len, stdout);
        fputs("\x1b[J", stdout);
    } else {
        if (frame > 1)
            fputc('\n', stdout);
        if (f.buf != NULL)
            fwrite(f.buf, 1, f.len, stdout);
    }
    fflush(stdout);
    free(f.buf);
    free(rows);
}

/* Waits up to ms for the next frame; true if 'q' was typed. */
static bool top_wait(uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (!g_stop) {
        uint64_t now = mono_ms();
        if (now >= end)
            return false;
        uint64_t left = end - now;
        if (!g_top_raw) {
            sleep_ms(left < WATCH_POLL_MS ? left : WATCH_POLL_MS);
            continue;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, 1, (int)(left < WATCH_POLL_MS ? left : WATCH_POLL_MS));
        if (r > 0 && (p.revents & POLLIN)) {
            char ch[16];
            ssize_t got = read(STDIN_FILENO, ch, sizeof(ch));
            for (ssize_t i = 0; i < got; i++)
                if (ch[i] == 'q' || ch[i] == 'Q')
                    return true;
            if (got == 0) { /* end of input: no more keys, keep drawing */
                (void)tcsetattr(STDIN_FILENO, TCSANOW, &g_top_saved);
                g_top_raw = false;
            }
        }
    }
    return false;
}

static int cmd_top(int argc, char **argv)
{
    const command *self = find_command("top");
    static const struct option opts[] = {
        {"once", no_argument, NULL, '1'},
        {"frames", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        CTL_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t frames = 0, interval_ms = TOP_INTERVAL_MS_DEFAULT;
    int c, li = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":1n:i:jh", opts, &li)) != -1) {
        int rc = ctl_common_opt(self, &o, c, opts, li);
        if (rc >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (c) {
        case '1': frames = 1; break;
        case 'n':
            if (parse_u64_in(optarg, 1, UINT32_MAX, &frames) != 0)
                return usage_error(self, "--frames must be a positive integer, got '%s'", optarg);
            break;
        case 'i':
            if (parse_u64_in(optarg, 100, 3600000, &interval_ms) != 0)
                return usage_error(self, "--interval must be 100..3600000 (ms), got '%s'", optarg);
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

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    g_top.cluster = cc.cluster;
    char subj[2][CTL_BUCKET_MAX + 8];
    snprintf(subj[0], sizeof(subj[0]), "aether.%s.evt.>", cc.cluster);
    snprintf(subj[1], sizeof(subj[1]), "aether.%s.hb.>", cc.cluster);
    natsSubscription *subs[2] = {NULL, NULL};
    for (int i = 0; i < 2 && rc == 0; i++) {
        natsStatus ns = natsConnection_Subscribe(&subs[i], cc.nc, subj[i], top_on_msg, &g_top);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "subscribing to %s: %s", subj[i], natsStatus_GetText(ns));
    }
    top_history h;
    ctl_view v;
    memset(&v, 0, sizeof(v));
    if (rc == 0) {
        top_read_history(&cc, &h);
        rc = ctl_read(&cc, &v, true); /* the first read decides: exit 1 or 3 before drawing */
    }
    bool tty = !o.json && isatty(STDOUT_FILENO);
    /* The first frame has seen no renewal or heartbeat yet: wait (bounded:
     * renewals come every ttl/4) for one, so that even --once shows the lag. */
    uint64_t frame = 0;
    if (rc == 0) {
        uint64_t end = mono_ms() + 600;
        bool have = false;
        while (!have && !g_stop && mono_ms() < end) {
            sleep_ms(50);
            pthread_mutex_lock(&g_top.mu);
            have = g_top.have_renewal;
            pthread_mutex_unlock(&g_top.mu);
        }
    }
    if (rc == 0 && tty)
        top_term_enter();
    while (rc == 0 && !g_stop) {
        if (frame > 0) {
            ctl_view_fini(&v);
            int r = ctl_read(&cc, &v, true);
            if (r != 0 && !tty) { /* a plain reader wants to know; the screen keeps trying */
                rc = r;
                break;
            }
        }
        frame++;
        top_draw(&cc, &v, &h, frame, o.json, tty, tty ? top_width() : 80);
        if (frames != 0 && frame >= frames)
            break;
        if (top_wait(interval_ms))
            break;
    }
    top_term_restore();
    bool no_map = rc == 0 && v.map == NULL && frames != 0;
    for (int i = 0; i < 2; i++) {
        if (subs[i] != NULL) {
            (void)natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    if (no_map)
        rc = ctl_no_map(&cc);
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

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
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("aetherctl %s%s%s%s\n", AETHER_VERSION_STRING, AETHER_GIT_REVISION[0] ? " (git " : "",
               AETHER_GIT_REVISION, AETHER_GIT_REVISION[0] ? ")" : "");
        return 0;
    }
    if (name[0] == '-')
        return usage_error(NULL, "unknown option '%s'", name);
    const command *c = find_command(name);
    if (c == NULL)
        return usage_error(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}
