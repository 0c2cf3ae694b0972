/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/node_run.h: what the files of aether-node share (tools
 * layer): the run (node_run) with its node slots, the options, and the
 * calls between the files. Not installed; nothing outside this folder
 * includes it.
 *
 *   main.c       command line, settings, embedded daemon mode, main()
 *   node.c       output, member callbacks, setup and teardown of the run
 *                (NATS mode: aether_node_start and the public teardown; the
 *                connection, buckets and executors are the library's)
 *   metrics.c    the daemon's own metric series (scraping thread)
 *   nats_mode.c  one node per process over NATS
 *   demo.c       the scripted embedded demo (--scenario demo)
 *   notify.c     systemd's readiness notification (libsystemd's sd_notify)
 *
 * DESIGN
 *  1. The controlling (main) thread starts, drains, crashes and stops
 *     members, polls their views and sleeps in bounded loops. It is the only
 *     writer of node_slot.m/.t/.live (writes under mu; its own reads need no
 *     lock).
 *  2. The member callbacks run on pool workers, several members at once.
 *     They only touch the tracking state and stdout under the one mutex mu,
 *     and return quickly. The controlling thread never holds mu while it
 *     calls into a member that could wait for an actor (start, drain, stop,
 *     destroy), so a callback waiting for mu cannot deadlock a teardown.
 *  3. Single ownership is checked on every acquire: a shard acquired while
 *     another live node still serves it and may serve (its own clock says
 *     its right holds, aether_member_may_serve) is a violation. A crashed
 *     node stops being live (under mu) before it is stopped, so nobody asks
 *     a member being destroyed, and a dead node's shards never count.
 *  4. Settled = exactly one live member with is_leader, every live member
 *     on the same map version, the shards served over live members equal to
 *     the shard count; and, so that a half-done step cannot pass: every live
 *     node an Active member serving at least one shard, the map version
 *     (and after a leader crash the term) above the previous step's, no
 *     rebalance session open (RebalanceStarted without RebalanceCompleted
 *     from the current leader), and all of that steady for SETTLE_QUIET_MS
 *     (a multi-batch handoff publishes several maps, and events reach the
 *     callbacks asynchronously).
 */
#ifndef AETHER_TOOLS_NODE_RUN_H
#define AETHER_TOOLS_NODE_RUN_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aether_internal.h"
#include "metrics_http.h"

#define EXIT_USAGE 2
#define EXIT_INCOMPATIBLE 2         /* the leader refused the join: configuration differs */
/* NATS mode: a newer process of this node id was admitted (DESIGN 2.4);
 * this one stopped serving and exits without draining (a LeaveCluster
 * would drain the newer process). */
#define EXIT_SUPERSEDED 3
#define NODES_MAX 64u               /* --nodes upper bound (and demo slots) */
#define NODES_DEFAULT 3u
#define DURATION_S_MAX 31536000.0   /* one year */
#define TICK_MS 50u                 /* main-loop sleep in daemon mode */
#define BATCH_QUIET_MS 50u          /* a folded batch is printed after this long without growth */
#define LINE_CAP 768u

#define SETTINGS_PARAMS_MAX 64u     /* rows of the settings table (asserted) */
#define FLAG_NAME_MAX 48u           /* longest --flag name */
/* JetStream may be starting, or a restarted server of a cluster still
 * waiting for its routes and a meta leader (seen: 16 s under chaos):
 * retried this long, like a node waiting for its seeds, then exit 1. */
#define KV_CREATE_LIMIT_MS 60000u
#define DRAIN_EXTRA_MS 2000u        /* drain wait = handoff_timeout_ms + this */
#define DRAIN_RETRY_MS 1000u        /* re-ask while still Active (a request lost in a failover) */

#define DEMO_NODES 5u
#define DEMO_SLOTS (DEMO_NODES + 1u)
#define DEMO_STEPS 5u
#define SETTLE_LIMIT_MS 10000u      /* demo: per wait, bounded (printed by --help) */

AETHER_STATIC_ASSERT(DEMO_SLOTS <= NODES_MAX, "demo nodes fit the slot table");

#define FLAGS_MAX 128u

typedef struct options {
    bool embedded, quiet, verbose, json, help, version, trace, print_config;
    bool nodes_set, duration_set, replication_set, seed_set;
    bool nats_flag;          /* --nats given */
    bool nats_mode;          /* resolved: one node over NATS */
    const char *config_path; /* --config */
    uint32_t nodes;
    double duration_s;  /* 0 = until a signal */
    uint64_t seed;
    const char *scenario; /* NULL or "demo" */
    struct {
        const char *key, *name, *value; /* parameter, flag as typed (no dashes), value */
    } flags[FLAGS_MAX];   /* settings flags in command-line order */
    uint32_t n_flags;
    aether_settings s;    /* resolved: defaults < file < env < flags */
} options;

struct node_run;

typedef struct node_slot {
    struct node_run *d;                     /* immutable */
    char id[AETHER_NODE_ID_LEN_MAX + 1];  /* immutable after setup */
    aether_member *m;                     /* main thread writes under mu */
    aether_transport *t;                  /* main thread only */
    bool live;                            /* main thread writes under mu: started, not stopped */
    bool crashed, left;                   /* main thread only: how it ended */
    uint8_t *serving;                     /* [shard_count], under mu */
    uint32_t serving_count;               /* under mu */
    /* The folded line this node's ShardAssigned (or, in the demo, also
     * ShardMigrated) events are gathered into; under mu. type 0 = none. */
    aether_event_type batch_type;
    uint32_t batch_count;
    uint32_t batch_shards;            /* entries (shards) of the folded events */
    uint64_t batch_version, batch_term, batch_seq_first, batch_seq_last;
    uint64_t batch_first_ms, batch_last_ns;
} node_slot;

typedef struct step_rec {
    const char *name;               /* immutable */
    uint64_t start_ns, end_ns;      /* main thread */
    uint32_t moved;                 /* under mu: ShardMigrated events in the step */
    char leader[AETHER_NODE_ID_LEN_MAX + 1]; /* main thread, at the end */
    aether_term term;
    uint64_t map_version;
    bool settled;
    char why[AETHER_ERR_MSG_MAX];   /* why it did not settle */
} step_rec;

typedef struct node_run {
    options opt;                    /* immutable */
    aether_config base;             /* immutable: node set per member */
    /* NATS mode: the one node, started through the public API
     * (aether_node_start: connection, buckets, transport, executors) plus
     * the internal hooks (aether_node_hooks.h); main thread. */
    aether_node *node;
    /* Embedded mode: the wiring of the in-process members, by hand. */
    aether_executor *ex;
    aether_executor *io_ex; /* one thread: the members' store actors, the only actors that wait
                               on the stores (member.h, io_executor) */
    aether_inproc_hub *hub;
    aether_kv *lease_kv, *state_kv;
    aether_metrics *metrics;        /* every node's series; immutable after setup */
    aether_metrics_http *http;      /* GET /metrics when metrics_addr is set; main thread */
    bool was_leader;                /* NATS mode: main thread */
    uint64_t was_leader_term;       /* NATS mode: main thread; the term it led at the last poll */
    aether_rng rng;                 /* main thread */
    uint64_t start_ns;              /* immutable after setup */
    uint32_t hide_mask;             /* immutable: event types never printed */
    uint32_t fold_mask;             /* immutable: event types folded into count lines */
    pthread_mutex_t mu;
    node_slot nodes[NODES_MAX];
    uint32_t n_nodes;               /* immutable after setup */
    /* Under mu: */
    aether_term_registry terms;
    uint32_t violations;
    char first_violation[256];
    bool session_open;              /* RebalanceStarted seen, Completed not yet */
    int step;                       /* -1 = none */
    step_rec steps[DEMO_STEPS];
} node_run;


/* The last SIGINT/SIGTERM (0 = none); written only by the signal handler. */
extern volatile sig_atomic_t node_stop_signal;

/* node.c: clock and sleep (main thread) */
uint64_t node_now_ns(void);
uint64_t node_since_start_ms(const node_run *d);
void node_sleep_ms(uint32_t ms);
/* Main thread: ms of idle time, serving GET /metrics meanwhile when the
 * endpoint is on (it has no thread of its own). */
void node_idle_ms(node_run *d, uint32_t ms);
void node_signals_install(void);

/* node.c: output (say and trace take mu themselves) */
bool node_printing(const node_run *d);
void node_flush_quiet_batches(node_run *d, bool force);
void node_say(node_run *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void node_trace(node_run *d, const node_slot *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void node_print_status(node_run *d);
/* The exit status a run ends with: 1 after saying how many single-ownership
 * violations were seen and the first, 0 if none. Takes mu. */
int node_violations_exit(node_run *d);

/* node.c: lifecycle (main thread) */
int node_run_init(node_run *d, const options *o, uint32_t n_nodes);
void node_run_fini(node_run *d);
/* 0 started; else the exit status, after saying why (NATS mode: 0 is
 * never a failure; a signal during the JetStream wait returns
 * NODE_START_STOPPED). */
int node_start(node_run *d, uint32_t i);
#define NODE_START_STOPPED (-2)
void node_halt(node_run *d, uint32_t i);

/* metrics.c: registers node n's series in d->metrics (setup, main thread) */
int node_metrics_register(node_run *d, node_slot *n);

/* notify.c: tells systemd (Type=notify) what state the daemon is in:
 * "READY=1" once the member runs, "STOPPING=1" when the drain starts.
 * Nothing without $NOTIFY_SOCKET. */
void node_notify_systemd(const char *state);

/* the modes: each returns the process exit status */
int node_nats_mode_run(node_run *d);
/* The labels on every metric series of a node: "" (none) with one node per
 * process, NULL (node="<id>") when the demo runs several in one registry. */
const char *node_metric_labels(const node_run *d);
int node_demo_run(node_run *d);

#endif /* AETHER_TOOLS_NODE_RUN_H */
