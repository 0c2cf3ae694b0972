/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c: `aether-bench`, the benchmark harness's command line (bench layer).
 *
 *   aether-bench mailbox|lookup|rebalance [--json] [--seconds S] [--runs N]
 *   (mailbox: --case A[,B...] measures only those cases, e.g. under perf)
 *   aether-bench e2e [--json] [--nodes N] [--joins J] [--shards S] [--replication R]
 *   aether-bench failover [--json] [--nodes N] [--kills K] [--shards S] [--replication R]
 *   aether-bench flood [--json] [--nodes N] [--runs N]
 *   (e2e, failover: --samples FILE also writes every latency sample there)
 *   aether-bench --help | --version
 *
 * Options may come before or after the bench name. An unknown bench or
 * option prints the usage to stderr and exits 2.
 *
 * Threading: main thread; each bench starts and joins its own threads.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aether/aether_version.h>

#include "aether_build.h"
#include "aether_internal.h" /* aether_config_defaults, AETHER_SHARD_COUNT_MAX, AETHER_REPLICATION_MAX */
#include "baselines_placement.h" /* bench_rebalance_main */
#include "bench.h"
#include "report.h"

typedef struct bench_entry {
    const char *name;
    int (*main_fn)(const bench_opts *o);
    const char *what;
} bench_entry;

static const bench_entry benches[] = {
    { "mailbox", bench_mailbox_main,
      "messages/s through an actor on the pool executor (1, 2 and 4 producers; single and batch sends) vs a "
      "mutex+condvar queue and a raw ck_ring SPSC moving batches (the ceiling)" },
    { "lookup", bench_lookup_main,
      "aether_route_key lookups/s (1 and 2 readers) while a writer republishes the map "
      "1000/s, vs rwlock, mutex and unsynchronised reads" },
    { "rebalance", bench_rebalance_main,
      "default rebalancing strategy vs ring/rendezvous/jump hashing: movement, balance, speed" },
    { "e2e", bench_e2e_main,
      "real nats-server + aether-node processes: a node joins -> the new map on every node "
      "(p50/p99), vs the KV compare-and-set round trip" },
    { "failover", bench_failover_main,
      "real nats-server + aether-node processes: kill -9 of the leader / of a follower, "
      "graceful resign (p50/p99), vs the KV compare-and-set round trip" },
    { "auth", bench_auth_main,
      "per-message cost of the cluster secret's MAC: encode+seal vs encode, seal+open+decode vs decode, "
      "seal/open of 16 KiB vs memcpy" },
    { "mapcodec", bench_mapcodec_main,
      "ShardMap size and encode/decode time, 1024 and 65 536 shards x R1/R3 over 3 and 20 nodes: "
      "format 2 (compact) vs format 1 (JSON per shard)" },
    { "flood", bench_flood_main,
      "real nats-server + aether-node processes: 100 000 unpaced LeaveCluster requests: "
      "answered, busy, leader/map changes, fencing, vs a plain NATS echo responder" },
};
#define BENCH_COUNT (sizeof(benches) / sizeof(benches[0]))

static void usage(FILE *f)
{
    aether_config def;
    aether_config_defaults(&def);
    fprintf(f,
            "usage: aether-bench <bench> [--json] [--seconds S] [--runs N]\n"
            "                            [--nodes N] [--kills K] [--joins J] [--samples FILE]\n"
            "                            [--shards S] [--replication R] [--case A[,B...]]\n"
            "       aether-bench --help | --version\n"
            "  --json       one JSON object per line: {\"bench\",\"case\",\"metric\",\"value\",\n"
            "               \"unit\",\"baseline\",\"baseline_value\",\"ratio\"}\n"
            "  --seconds S  measured duration of one run of one case (default %.1f, max %.0f)\n"
            "  --runs N     runs per case, the median is reported (default %u, max %u)\n"
            "  --nodes N    e2e, failover, flood: aether-node processes (default %u, %u..%u)\n"
            "  --kills K    failover: leader kills, and as many follower kills and resigns\n"
            "               (default %u, max %u)\n"
            "  --joins J    e2e: joins measured (default %u, max %u)\n"
            "  --shards S   e2e, failover: every node's --shards (default the node's, %u; 1..%u)\n"
            "  --replication R  e2e, failover: every node's --replication (default the node's, %u;\n"
            "               1..%u, at most --nodes)\n"
            "  --samples FILE  e2e, failover: also write every latency sample (ms) to FILE,\n"
            "               one per line: bench<TAB>metric<TAB>attempt<TAB>ms (FILE is replaced)\n"
            "  --case A[,B...]  mailbox: measure only these cases (e.g. actor_1p under perf);\n"
            "               a row whose baseline case is not among them has no ratio\n"
            "e2e, failover and flood need nats-server ($AETHER_NATS_SERVER or $PATH) and aether-node\n"
            "next to aether-bench ($AETHER_NODE_BIN overrides); AETHER_KEEP_LOGS=1 keeps the logs.\n"
            "benches:\n",
            BENCH_SECONDS_DEFAULT, BENCH_SECONDS_MAX, BENCH_RUNS_DEFAULT, BENCH_RUNS_MAX,
            BENCH_NODES_DEFAULT, BENCH_NODES_MIN, BENCH_NODES_MAX, BENCH_KILLS_DEFAULT,
            BENCH_ATTEMPTS_MAX, BENCH_JOINS_DEFAULT, BENCH_ATTEMPTS_MAX, def.shard_count,
            (unsigned)AETHER_SHARD_COUNT_MAX, def.replication, (unsigned)AETHER_REPLICATION_MAX);
    for (size_t i = 0; i < BENCH_COUNT; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].what);
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "aether-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    bench_opts o = { .json = false, .seconds = BENCH_SECONDS_DEFAULT, .runs = BENCH_RUNS_DEFAULT,
                     .nodes = BENCH_NODES_DEFAULT, .kills = BENCH_KILLS_DEFAULT,
                     .joins = BENCH_JOINS_DEFAULT };
    const bench_entry *which = NULL;
    const char *samples_path = NULL;
    char rbuf[16];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("aether-bench %s%s%s%s\n", AETHER_VERSION_STRING, AETHER_GIT_REVISION[0] ? " (git " : "",
                   AETHER_GIT_REVISION, AETHER_GIT_REVISION[0] ? ")" : "");
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--seconds") == 0 || strcmp(a, "--runs") == 0) {
            if (i + 1 >= argc)
                return bad_usage("%s needs a value", a);
            const char *v = argv[++i];
            char *end = NULL;
            if (strcmp(a, "--seconds") == 0) {
                o.seconds = strtod(v, &end);
                if (end == v || *end != '\0' || !(o.seconds > 0) || o.seconds > BENCH_SECONDS_MAX)
                    return bad_usage("bad --seconds '%s'", v);
            } else {
                unsigned long n = strtoul(v, &end, 10);
                if (end == v || *end != '\0' || n < 1 || n > BENCH_RUNS_MAX)
                    return bad_usage("bad --runs '%s'", v);
                o.runs = (unsigned)n;
            }
        } else if (strcmp(a, "--nodes") == 0 || strcmp(a, "--kills") == 0 ||
                   strcmp(a, "--joins") == 0) {
            if (i + 1 >= argc)
                return bad_usage("%s needs a value", a);
            const char *v = argv[++i];
            char *end = NULL;
            unsigned long n = strtoul(v, &end, 10);
            bool nodes = strcmp(a, "--nodes") == 0;
            unsigned long lo = nodes ? BENCH_NODES_MIN : 1, hi = nodes ? BENCH_NODES_MAX : BENCH_ATTEMPTS_MAX;
            if (end == v || *end != '\0' || v[0] == '-' || n < lo || n > hi)
                return bad_usage("bad value '%s' (see --help for the range)", v);
            if (nodes)
                o.nodes = (unsigned)n;
            else if (strcmp(a, "--kills") == 0)
                o.kills = (unsigned)n;
            else
                o.joins = (unsigned)n;
        } else if (strcmp(a, "--shards") == 0 || strcmp(a, "--replication") == 0) {
            if (i + 1 >= argc)
                return bad_usage("%s needs a value", a);
            const char *v = argv[++i];
            char *end = NULL;
            unsigned long n = strtoul(v, &end, 10);
            bool shards = strcmp(a, "--shards") == 0;
            unsigned long hi = shards ? AETHER_SHARD_COUNT_MAX : AETHER_REPLICATION_MAX;
            if (end == v || *end != '\0' || v[0] == '-' || n < 1 || n > hi)
                return bad_usage("bad value '%s' (see --help for the range)", v);
            if (shards)
                o.shards = (unsigned)n;
            else
                o.replication = (unsigned)n;
        } else if (strcmp(a, "--samples") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0')
                return bad_usage("%s needs a file name", a);
            samples_path = argv[++i];
        } else if (strcmp(a, "--case") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0')
                return bad_usage("%s needs case names", a);
            o.cases = argv[++i];
        } else if (a[0] == '-') {
            return bad_usage("unknown option '%s'", a);
        } else if (which != NULL) {
            return bad_usage("one bench at a time ('%s' is extra)", a);
        } else {
            for (size_t b = 0; b < BENCH_COUNT; b++)
                if (strcmp(a, benches[b].name) == 0)
                    which = &benches[b];
            if (which == NULL)
                return bad_usage("unknown bench '%s'", a);
        }
    }
    if (which == NULL)
        return bad_usage("%s", "no bench named");
    if (o.cases != NULL && strcmp(which->name, "mailbox") != 0)
        return bad_usage("--case is for the mailbox bench, not '%s'", which->name);
    if (o.replication > o.nodes) {
        snprintf(rbuf, sizeof(rbuf), "%u", o.replication);
        return bad_usage("--replication %s is above --nodes (every shard needs that many nodes)", rbuf);
    }
    if (samples_path != NULL) {
        o.samples = fopen(samples_path, "we"); /* close-on-exec: the node children must not hold it */
        if (o.samples == NULL) {
            fprintf(stderr, "aether-bench: --samples %s: cannot write it\n", samples_path);
            return 2;
        }
        fprintf(o.samples, "# bench\tmetric\tattempt\tms\n");
        fflush(o.samples); /* nothing buffered when the benches fork */
    }
    int rc = which->main_fn(&o) == 0 ? 0 : 1;
    if (o.samples != NULL && fclose(o.samples) != 0) {
        fprintf(stderr, "aether-bench: --samples %s: write failed\n", samples_path);
        rc = 1;
    }
    return rc;
}
