/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.h: the benchmark harness's options and entry points (bench layer).
 *
 * `aether-bench <name> [--json] [--seconds S] [--runs N] [--nodes N] [--kills K]
 * [--joins J] [--shards S] [--replication R] [--samples FILE]` picks one entry
 * below (main.c). Every bench runs each of its cases `runs` times, reports
 * the median through report.h and prints its baselines beside it in the same
 * run, as ratios (CONVENTIONS "Tests and benchmarks").
 *
 * Threading: an entry point is called from the main thread; it starts and
 * joins every thread it uses before it returns.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stdio.h>

#define BENCH_RUNS_DEFAULT 5u
#define BENCH_RUNS_MAX 101u
#define BENCH_SECONDS_DEFAULT 0.5
#define BENCH_SECONDS_MAX 60.0

#define BENCH_NODES_DEFAULT 5u   /* e2e, failover: aether-node processes */
#define BENCH_NODES_MIN 3u
#define BENCH_NODES_MAX 20u    /* issue 16: 20 node processes (+1 joiner in e2e) */
#define BENCH_KILLS_DEFAULT 30u  /* failover: leader kills (and follower kills, resigns) */
#define BENCH_JOINS_DEFAULT 20u  /* e2e: joins */
#define BENCH_ATTEMPTS_MAX 1000u /* --kills, --joins */

typedef struct bench_opts {
    bool json;       /* one JSON object per line instead of a table */
    double seconds;  /* measured duration of one run of one case */
    unsigned runs;   /* runs per case; the median is reported */
    /* The end-to-end benches (real nats-server, real aether-node processes): */
    unsigned nodes;  /* cluster size */
    unsigned kills;  /* failover: attempts per kind */
    unsigned joins;  /* e2e: joins */
    unsigned shards; /* e2e, failover: --shards of every node; 0 = the default shard_count */
    unsigned replication; /* e2e, failover: --replication of every node; 0 = the default */
    bool processes;  /* set by those benches: the machine line says what a row is */
    FILE *samples;   /* --samples FILE: every latency sample, raw (report.h); NULL = none */
    const char *cases; /* mailbox --case A,B: only these cases (for perf); NULL = all */
} bench_opts;

/* Each returns 0 on success, non-zero after printing why to stderr. */
int bench_mailbox_main(const bench_opts *o);
int bench_lookup_main(const bench_opts *o);
int bench_e2e_main(const bench_opts *o);      /* bench_e2e.c */
int bench_failover_main(const bench_opts *o); /* bench_failover.c */
int bench_flood_main(const bench_opts *o);    /* bench_flood.c */
int bench_auth_main(const bench_opts *o);     /* bench_auth.c */
int bench_mapcodec_main(const bench_opts *o); /* bench_mapcodec.c */

#endif
