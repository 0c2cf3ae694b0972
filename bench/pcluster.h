/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pcluster.h: a real cluster for the end-to-end benches (bench layer): one
 * nats-server with JetStream on a free loopback port and a temporary store
 * (tests/support/nats_server.h),
 * and N `aether-node --nats ... --trace` processes whose stdout this process
 * reads through pipes and parses into timestamped records.
 *
 * Observation contract (aether-node --trace, tools/aether-node/node.c; read
 * with the harnesses' one trace reader, tests/support/trace_line.h): lines
 *   T <mono_us> <node> MAP <version> [<term>]    node installed map <version>
 *   T <mono_us> <node> LEADER <leader|-> <term>  node learned of a new leader
 *   T <mono_us> <node> EVENT <Type> <text>       an event it applied or emitted
 *   T <mono_us> <node> STATS key=value ...       at exit
 * mono_us is CLOCK_MONOTONIC in microseconds, the clock pcl_now_us() reads,
 * so a node's trace times and the bench's own actions (spawn, kill) compare
 * directly. <text> is aether_event_format's line (envelope fields, then the
 * data fields; "node=" appears twice for node events: the emitter first,
 * the subject last). Every other stdout line is ignored.
 *
 * What is kept: MAP and LEADER lines, and the events the benches reason
 * about (node lifecycle, leadership, rebalance sessions); per-shard and
 * renewal events are parsed and dropped so memory stays small. A node that
 * starts under an established leader gets no LeaderElected and so no LEADER
 * line; its LeaseRenewed events then give its view of the leader (for
 * pcl_settled only: never a leader-change time).
 *
 * Binaries: aether-node is $AETHER_NODE_BIN or the one next to this
 * executable (/proc/self/exe's directory; the variable is removed from the
 * environment, since aether-node refuses unknown AETHER_* variables);
 * nats-server is started by the tests' launcher (tests/support/nats_server.h:
 * $AETHER_NATS_SERVER or the one on $PATH, then /usr/sbin, /usr/local/bin),
 * whose temporary directory (store, server.log) holds the nodes' logs too.
 *
 * Cleanup: every child gets PR_SET_PDEATHSIG(SIGKILL); pcl_teardown (also
 * run at exit) kills every child with SIGKILL, reaps it, stops the server
 * and removes the temporary directory (kept, with every node's stdout and
 * stderr, when AETHER_KEEP_LOGS is set). SIGINT/SIGTERM set a flag that
 * makes every wait return false (pcl_interrupted), so the bench unwinds
 * through its normal cleanup.
 *
 * Every wait is bounded by its caller's limit.
 *
 * Threading: main thread only; pcl_kv_floor uses a nats.c connection of its
 * own and closes it before returning.
 */
#ifndef BENCH_PCLUSTER_H
#define BENCH_PCLUSTER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nats_server.h"
#include "trace_line.h"

#define PCL_NODES_MAX 24u      /* aether-bench --nodes 20, + the e2e joiner, + spare */
#define PCL_ID_MAX 64u          /* a NodeId's length bound */
#define PCL_LINE_MAX 4096u      /* a longer stdout line is counted and skipped */
#define PCL_TYPE_MAX 32u
#define PCL_REASON_MAX 64u
#define PCL_PATH_MAX 1024u
#define PCL_OFFLINE_MAX 64u     /* remembered losses for pcl_pace */

typedef enum pcl_kind { PCL_MAP = 1, PCL_LEADER, PCL_EVENT } pcl_kind;

/* One kept trace line. */
typedef struct pcl_rec {
    uint64_t us;                  /* the node's mono_us */
    uint32_t node;                /* slot index */
    pcl_kind kind;
    char type[PCL_TYPE_MAX];      /* EVENT: the type name */
    char who[PCL_ID_MAX + 1];     /* LEADER: the leader ("" = none); EVENT: data's node
                                     (node events) or leader (leadership events) */
    char emitter[PCL_ID_MAX + 1]; /* EVENT: the emitting node */
    uint64_t num;                 /* MAP: version; LEADER: term; LeaderElected,
                                     LeadershipLost: term; RebalanceStarted: from_version;
                                     RebalanceCompleted: map_version */
    char reason[PCL_REASON_MAX];  /* LeadershipLost, RebalanceStarted */
} pcl_rec;

typedef struct pcl_node {
    char id[PCL_ID_MAX + 1];
    pid_t pid;                    /* running child; 0 = none (reaped) */
    int fd;                       /* read end of its stdout; -1 = closed */
    bool expect_exit;             /* we signalled it: its exit is no surprise */
    char line[PCL_LINE_MAX];
    size_t len;
    bool overlong;                /* discarding the rest of an overlong line */
    uint64_t spawned_us;
    unsigned spawns;
    int last_status;              /* waitpid status of the last exit; -1 = none */
    trl_view view;                /* from its trace since the last spawn (trace_line.h) */
    int metrics_port;             /* its --metrics-addr 127.0.0.1:port (this spawn's); 0 = none */
} pcl_node;

typedef struct pcluster {
    char dir[PCL_PATH_MAX];       /* temporary directory: server store, logs */
    char node_bin[PCL_PATH_MAX];
    tns_server server;            /* nats-server (tests/support/nats_server.h); its dir is dir */
    char url[64];
    char cluster[32];
    uint32_t shards;
    uint32_t replication;         /* every node's --replication; 0 = the node's default */
    uint32_t step_limit_ms;       /* PCL_STEP_LIMIT_MS, or more at many shards (pcl_setup) */
    uint32_t settle_limit_ms;     /* PCL_SETTLE_LIMIT_MS, likewise */
    uint32_t exit_limit_ms;       /* PCL_EXIT_LIMIT_MS, likewise (a drain hands off too) */
    bool keep_logs;
    pcl_node nodes[PCL_NODES_MAX];
    uint32_t n_nodes;
    pcl_rec *recs;
    size_t n_recs, cap_recs;
    uint64_t lines_trace, lines_bad, lines_overlong;
    unsigned unexpected_exits;
    uint64_t offline_us[PCL_OFFLINE_MAX]; /* pcl_note_offline, a ring */
    unsigned n_offline;
    /* pcl_bootstrap's timing (pcl_now_us; 0 = not reached): */
    uint64_t boot_spawn_us;       /* the first node started */
    uint64_t boot_elected_us;     /* the first LeaderElected line */
    uint64_t boot_all_map_us;     /* the last node's first MAP line */
    uint64_t boot_settled_us;     /* the last MAP or LEADER line before the cluster settled */
} pcluster;

struct bench_opts;

/* What must never happen during a bench run (issue 16): a live leader
 * losing its leadership (fenced, lease lost: the trace's LeadershipLost it
 * emitted itself for any reason but its own drain), a NATS reconnect, a
 * mailbox overflow or a lost local delivery. pcl_health gathers them from
 * three witnesses:
 *  - the trace (whole run, every process): the LeadershipLost lines a
 *    leader printed of its own loss (every node prints the one it applies);
 *  - each node's stderr log <dir>/<id>.err (whole run, every process: the
 *    file is appended across restarts): the WARN lines
 *    "connection to NATS lost", "mailbox full", "local deliveries of",
 *    "fenced, serving nothing" (followers fence too when a killed leader is
 *    not replaced within their fence window: counted, not a target);
 *    aether_log_ratelimit may fold repeats into "N more suppressed", so a
 *    log count is a lower bound;
 *  - the live nodes' /metrics (since each live process started):
 *    aether_mailbox_full_total, aether_bus_failed_deliveries_total,
 *    aether_lease_failures_total, aether_fenced, aether_shards_multi_owner,
 *    aether_shards_owned;
 *  and nats-server's log: "Slow Consumer" lines. */
typedef struct pcl_health {
    unsigned scraped, scrape_failed;
    uint64_t m_mailbox_full, m_bus_failed, m_lease_failures, m_fenced, m_multi_owner, m_owned;
    uint64_t log_reconnects, log_mailbox_full, log_delivery_failed, log_fenced;
    uint64_t server_slow_consumers;
    uint64_t leader_lost;         /* trace: LeadershipLost by the leader itself, not draining */
    char first_lost[200];         /* the first such: who, term, reason */
} pcl_health;

/* Gathers the above (bounded: 2 s per node scraped, the log files' sizes).
 * Main thread. */
void pcl_health_of(pcluster *c, pcl_health *out);

/* pcl_health_of, reported under `bench` as rows (each target: 0) and a
 * note. Returns true when clean: no live leader lost its leadership, no
 * reconnect, no mailbox overflow, no failed local delivery (logs and
 * metrics), no slow consumer. */
bool pcl_report_health(const struct bench_opts *o, const char *bench, pcluster *c);

/* Reports pcl_bootstrap's timing under `bench`: first process start -> a
 * map on every node (target target_ms; < 0 none), -> settled, and the
 * first LeaderElected -> a map on every node. A new cluster's bootstrap
 * holds two lease ttls by design (the first campaign waits a ttl for a
 * lost generation's key to expire; the first map is published a ttl after
 * the election, when every earlier serving right has lapsed: the node's log
 * says both), so the first row is at least 2 x lease_ttl_ms. Returns true
 * when the first is within its target. */
bool pcl_report_bootstrap(const struct bench_opts *o, const char *bench, const pcluster *c,
                          double target_ms);

/* Actors told apart in the per-actor rows (a member runs four, the node a
 * transport and a few more); further ones are only in the totals. */
#define PCL_HANDLER_ACTORS_MAX 16u
/* Handler run times of the live nodes (aether_actor_handler_seconds, the
 * engine's per-actor histogram, scraped from each node's --metrics-addr):
 * every run since each process started, summed over nodes and actors. */
typedef struct pcl_handler_stats {
    unsigned nodes;           /* nodes scraped */
    unsigned failed;          /* live nodes that could not be scraped */
    uint64_t runs;            /* handler runs observed */
    uint64_t over_1ms;        /* of them, above 1 ms */
    double worst_le_ms;       /* the slowest series: every run of it took at most this (the
                                 lowest bucket bound holding them all; INFINITY: above the
                                 last bound) */
    char worst[160];          /* that series: node and its labels */
    /* The same per actor (its "actor" label), over every node scraped. */
    struct {
        char actor[32];
        uint64_t runs, over_1ms;
        double worst_le_ms;   /* the slowest node's bound for this actor */
    } per_actor[PCL_HANDLER_ACTORS_MAX];
    unsigned n_actors;
} pcl_handler_stats;

/* Scrapes every live node (bounded: 2 s per node). false when no node
 * could be scraped. Main thread. */
bool pcl_handler_times(pcluster *c, pcl_handler_stats *out);

struct bench_opts;
/* Scrapes (pcl_handler_times) and reports it under `bench`: a row "handler
 * runs above 1 ms" (the target: none, issue 14), a note naming the
 * slowest series, and a note with each actor's runs, runs above 1 ms and
 * slowest node. Returns true when no run took above 1 ms. */
bool pcl_report_handlers(const struct bench_opts *o, const char *bench, pcluster *c);

/* Finds the binaries, checks that aether-node knows --trace, makes the
 * temporary directory, starts nats-server and installs the signal flag.
 * Every node will run with --shards shards and, when replication is not 0,
 * --replication replication.
 * false with the reason on stderr (call pcl_teardown anyway). */
bool pcl_setup(pcluster *c, const char *tag, uint32_t shards, uint32_t replication);

/* Kills (SIGKILL) and reaps every child, stops the server, removes the
 * directory unless kept. Idempotent. */
void pcl_teardown(pcluster *c);

/* A new slot with this id (not started); its index, or -1 when full. */
int pcl_add_node(pcluster *c, const char *id);

/* Starts node i: aether-node --nats URL --node ID --cluster C --shards S
 * [--replication R] --metrics-addr 127.0.0.1:<free port> --trace, stdout to a pipe, stderr appended to <dir>/<id>.err. Resets the
 * node's traced state. false if it could not be started. */
bool pcl_spawn(pcluster *c, uint32_t i);

/* Sends sig to node i and returns pcl_now_us() taken just before it. With
 * SIGKILL it also reaps the child. */
uint64_t pcl_signal(pcluster *c, uint32_t i, int sig);

/* Pumps until node i has exited (true) or limit_ms passed / interrupted. */
bool pcl_wait_exit(pcluster *c, uint32_t i, uint32_t limit_ms);

/* Reads what the children wrote, waiting at most wait_ms for something;
 * reaps children that exited (one that nobody signalled is reported on
 * stderr and counted in unexpected_exits). */
void pcl_pump(pcluster *c, uint32_t wait_ms);

/* Pumps for ms milliseconds (a sleep that keeps the pipes drained). */
void pcl_idle(pcluster *c, uint32_t ms);

bool pcl_interrupted(void);
uint64_t pcl_now_us(void);
bool pcl_live(const pcluster *c, uint32_t i);

/* Settled: every live node has a map, all on the same version, all naming
 * the same live leader in the same term, and no MAP or LEADER line for
 * quiet_ms. false with the reason in why. */
bool pcl_settled(const pcluster *c, uint32_t quiet_ms, char *why, size_t cap);
bool pcl_wait_settled(pcluster *c, uint32_t quiet_ms, uint32_t limit_ms, char *why, size_t cap);

/* The agreed leader's slot (every live node names it), or -1. */
int pcl_leader(const pcluster *c);

/* The earliest kept EVENT of this type with us >= since_us; who (the
 * subject) and reader (the slot that printed it) are filters when non-NULL
 * / >= 0. NULL if none yet. */
const pcl_rec *pcl_first_event(const pcluster *c, uint64_t since_us, const char *type,
                               const char *who, int reader);

/* The time node i first installed a map version >= version with us >=
 * since_us; 0 if it has not (yet). */
uint64_t pcl_map_reached(const pcluster *c, uint32_t i, uint64_t version, uint64_t since_us);

/* The time node i first learned of a leader other than `not_leader` (and
 * not "none") with term >= min_term, at us >= since_us; 0 if not yet. */
uint64_t pcl_leader_seen(const pcluster *c, uint32_t i, const char *not_leader, uint64_t min_term,
                         uint64_t since_us);

/* ---- steps the benches share --------------------------------------------- */

#define PCL_SETTLE_QUIET_MS 500u   /* > debounce + a few handoff batches */
#define PCL_SETTLE_LIMIT_MS 30000u /* up to 1024 shards; pcluster.settle_limit_ms */
#define PCL_STEP_LIMIT_MS 10000u   /* one awaited reaction (election, failure, map), up to 1024
                                      shards; pcluster.step_limit_ms */
#define PCL_LIMIT_MS_PER_1024_SHARDS 1000u /* above 1024 shards both grow by this: a join's
                                      rebalance hands off shards / (nodes + 1), 64 at a time;
                                      at 65 536 x R3 over 21 nodes it outlasted 10 s) */
#define PCL_EXIT_LIMIT_MS 20000u   /* a SIGTERM'd node drains at most handoff + 2 s */
#define PCL_PACE_MARGIN_MS 1000u

/* Adds nodes <prefix>1..<prefix>n, starts them all and waits until the
 * cluster is settled; notes the boot_* times. false with the reason on
 * stderr. */
bool pcl_bootstrap(pcluster *c, unsigned n, const char *prefix);

/* Starts node i again and waits for its NodeJoined (since the start) and a
 * settled cluster. false with the reason on stderr. */
bool pcl_rejoin(pcluster *c, uint32_t i);

/* The rebalance brake (DESIGN "Beyond the seed") engages when more than
 * brake_max_offline nodes fail or leave within brake_window_ms; a braked
 * leader only restores I2, which would change what a later step measures.
 * The benches pace themselves instead: pcl_note_offline records when a
 * NodeFailed/NodeLeft happened, and pcl_pace waits (pumping) until fewer
 * than max_offline of them lie within window_ms + PCL_PACE_MARGIN_MS, so
 * the next loss stays within the budget. false if interrupted. */
void pcl_note_offline(pcluster *c, uint64_t us);
bool pcl_pace(pcluster *c, uint32_t window_ms, uint32_t max_offline);

/* Prints the last lines of node i's stderr log to stderr. */
void pcl_tail_log(const pcluster *c, uint32_t i, unsigned lines);

/* The floor: `count` compare-and-set round trips (aether_kv_update) on a
 * JetStream KV bucket of this server, after `warmup` unmeasured ones; each
 * in milliseconds into ms_out[0..count). Returns how many were measured
 * (less than count after an error, said on stderr). */
unsigned pcl_kv_floor(pcluster *c, unsigned warmup, unsigned count, double *ms_out);

#endif
