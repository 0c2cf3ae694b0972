/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c: aetherctl's entry point and command table (tools layer): the
 * commands, their usage and help texts, `aetherctl help` and the dispatch.
 * The contract of the tool (exit status, what is read) is in ctl.h.
 */
#include "ctl.h"

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
    "exit status: 0 ok; 1 failed or rejected (lookup: the owner is not serving);\n"         \
    "2 usage; 3 no cluster answers (cannot connect, buckets missing, no map yet,\n"         \
    "status: no leader holds the lease; no leader answered before --timeout).\n"

static const command COMMANDS[] = {
    {"status", "live: nodes, leader and lease, map and topology versions",
     "status" CTL_COMMON_USAGE,
     "Reads the cluster's state buckets and prints the leader (term, lease age and\n"
     "expiry), the map (version, term, shards, replication, shards moving), the\n"
     "topology version and every node: status (active, draining, left, failed),\n"
     "zone, incarnation, address and the shards it owns. Default --timeout 5000.\n"
     "Exit 3 if the cluster's buckets are missing, or (after printing what there\n"
     "is) when no shard map has been published yet or no leader holds the lease\n"
     "(none, or expired); exit 1 when the lease value does not decode.\n"
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
     "Exit 1 (after printing, with \"serving   no: WHY\") when the primary is not\n"
     "serving as far as the stored state tells: the topology has it failed, left\n"
     "or unknown, or no leader holds the lease (owners cut off fence themselves).\n"
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

const command *ctl_find_command(const char *name)
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
            "\nexit status: 0 ok; 1 the command ran and failed, or the leader rejected it\n"
            "(lookup: the owner is not serving); 2 usage error; 3 no cluster answers\n"
            "(cannot connect, buckets missing, no map yet, status: no leader holds the\n"
            "lease; no leader answered before --timeout).\n"
            "\nRun 'aetherctl help COMMAND' or 'aetherctl COMMAND --help' for details.\n");
}

void ctl_print_command_help(FILE *out, const command *c)
{
    fprintf(out, "usage: aetherctl %s\n\n%s.\n", c->usage, c->summary);
    if (c->details[0] != '\0')
        fprintf(out, "\n%s", c->details);
}

int ctl_usage_error(const command *c, const char *fmt, const char *arg)
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

int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return ctl_usage_error(ctl_find_command("help"), "too many arguments to help%s", "");
    if (argc == 2) {
        const command *c = ctl_find_command(argv[1]);
        if (c == NULL)
            return ctl_usage_error(NULL, "unknown command '%s'", argv[1]);
        ctl_print_command_help(stdout, c);
        return 0;
    }
    print_usage(stdout);
    return 0;
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
        return ctl_usage_error(NULL, "unknown option '%s'", name);
    const command *c = ctl_find_command(name);
    if (c == NULL)
        return ctl_usage_error(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}

