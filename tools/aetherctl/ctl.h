/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl.h: the internal header of aetherctl, the operator CLI (tools layer).
 * Single-threaded, except that `watch` and `top` receive messages on nats.c's
 * subscription threads (they only enqueue; see watch.c).
 *
 * Source layout (tools/aetherctl/): main.c the command table and dispatch;
 * conn.c the common options, settings, connection, reading the cluster and
 * the output helpers declared here; status.c status/shards/lookup; drain.c
 * drain/rebalance/fail; watch.c watch/events/top; plan.c plan/shard-of/secret.
 *
 *   aetherctl [--help] COMMAND [ARGS...]
 *
 * Commands are rows of one table (name, one-line summary, usage, handler), so
 * adding one is adding a row and a function; `aetherctl help` and
 * `aetherctl --help` list the table. Each handler gets its own argv (argv[0] =
 * the command name); the live ones parse it with the one ctl_parser (below),
 * which takes the common options and hands back only the command's own; the
 * offline shard-of and secret, which take no connection option, keep a short
 * getopt_long loop of their own.
 *
 * Offline commands (no server): shard-of, plan --nodes/--from.
 * Live commands talk to a running cluster over NATS: status, shards, lookup,
 * watch, drain, rebalance, plan (live mode). They share one option set (the
 * common options of ctl_parser, help text CTL_COMMON_HELP in main.c):
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
 *   1  the command ran and failed, or the leader rejected it; lookup: the
 *      primary is not serving (failed, left, unknown, or no leader holds the
 *      lease);
 *   2  usage error (unknown command, bad option or argument, bad settings);
 *   3  no cluster answers: cannot connect or authenticate, the cluster's
 *      buckets are missing, no shard map yet, status: no leader holds the
 *      lease, or no leader answered a command before --timeout; the message
 *      names the servers and the cluster.
 */
#ifndef AETHER_TOOLS_CTL_H
#define AETHER_TOOLS_CTL_H

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

#include "aether.h" /* the public API: aether_shard_of_key */
#include "aether_build.h"
#include "assertion.h"
#include "auth.h"
#include "nats_auth.h"
#include "codec.h"
#include "lease.h"
#include "log.h"
#include "nats_conn.h"
#include "nats_kv.h"
#include "settings.h"
#include "shardmap_codec.h"
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
extern volatile sig_atomic_t g_ctl_stop;

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
 * equivalent) is given: everything read is verified with it (g_ctl_auth), and
 * commands are sealed. NULL = nothing verified; the leader of a cluster
 * with a secret then refuses the commands that change it. One per process,
 * set by ctl_connect. */
extern aether_auth *g_ctl_auth;

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

typedef struct ctl_row {
    aether_node_id id;
    const aether_node_info *info; /* NULL: in the map but not in the topology */
    bool leader;                  /* holds the lease */
    uint32_t primaries, replicas; /* in the current map */
    uint32_t moving_out, moving_in;
} ctl_row;

const command *ctl_find_command(const char *name);
void ctl_print_command_help(FILE *out, const command *c);
int ctl_usage_error(const command *c, const char *fmt, const char *arg);
int cmd_help(int argc, char **argv);
int ctl_parse_u64_in(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int cmd_shard_of(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_plan(int argc, char **argv);
void ctl_on_signal(int sig);
uint64_t ctl_mono_ms(void);
int64_t ctl_wall_ns(void);
void ctl_sleep_ms(uint64_t ms);
bool ctl_authentic(natsMsg *msg, uint64_t now_ms);
void ctl_close(ctl_conn *cc);
uint64_t ctl_remaining_ms(const ctl_conn *cc);
bool ctl_refused(const ctl_conn *cc, char *text, size_t cap);
int ctl_say_refused(const ctl_conn *cc, const char *what, const char *text);
int ctl_no_cluster(const ctl_conn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ctl_connect(const ctl_opts *o, uint64_t default_timeout_ms, ctl_conn *cc);
int ctl_bind_state(ctl_conn *cc);
void ctl_view_fini(ctl_view *v);
int ctl_read_lease(ctl_conn *cc, ctl_view *v);
int ctl_state_get(ctl_conn *cc, const char *key, aether_kv_entry *e, bool *found);
int ctl_read(ctl_conn *cc, ctl_view *v, bool with_lease);
int ctl_no_map(const ctl_conn *cc);
int ctl_emit_json(json_t *doc);
void ctl_jset(json_t *obj, const char *key, json_t *value);
json_t *ctl_jint(uint64_t v);
const char *ctl_row_status(const ctl_row *r);
/* A row as the JSON object status, shards and top print: id, status,
 * leader (when with_leader), primaries, replicas, moving_out, moving_in. */
json_t *ctl_row_json(const ctl_row *r, bool with_leader);
ctl_row *ctl_rows(const ctl_view *v, bool with_gone, uint32_t *n_out);
uint32_t ctl_map_moving(const aether_shardmap *m);
int ctl_id_width(const ctl_row *rows, uint32_t n, int min);
json_t *ctl_lease_json(const ctl_view *v);
int cmd_status(int argc, char **argv);
int cmd_shards(int argc, char **argv);
int cmd_lookup(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_drain(int argc, char **argv);
int cmd_rebalance(int argc, char **argv);
int cmd_fail(int argc, char **argv);


/* ---- the one option parser ------------------------------------------------
 * Every live command parses its argv (argv[0] = the command name) with it:
 * the command's own options (short string without the leading ':' and
 * without "jh"; long options ending with a {NULL} row, or NULL) and the
 * common ones (--nats, --cluster, --config, the NATS auth options,
 * --cluster-secret-file, --log-level, --timeout, -j/--json, -h/--help),
 * which it takes into a ctl_opts itself. ctl_parser_next returns the code of
 * the command's next own option (> 0, optarg set), CTL_OPTS_DONE when the
 * options end (argv[optind..] are the operands), or CTL_OPTS_EXIT when the
 * command must return exit_status at once: 0 after --help (printed), 2 after
 * a usage error (said). */
#define CTL_SHORTOPTS_MAX 32u /* bytes of ":" + own + "jh" + NUL */
#define CTL_LONGOPTS_MAX 40u  /* own + common long options + the {NULL} row */
enum { CTL_OPTS_EXIT = -1, CTL_OPTS_DONE = 0 };

typedef struct ctl_parser {
    const command *self;
    int argc;
    char **argv;
    ctl_opts *o;
    char shortopts[CTL_SHORTOPTS_MAX];
    struct option longopts[CTL_LONGOPTS_MAX];
    int exit_status; /* with CTL_OPTS_EXIT */
} ctl_parser;

void ctl_parser_init(ctl_parser *p, const command *self, int argc, char **argv, const char *own_short,
                     const struct option *own_long, ctl_opts *o);
int ctl_parser_next(ctl_parser *p);
/* After the option loop (c = ctl_parser_next's last result): true when the
 * command goes on, with no operand (operand NULL) or exactly one, named
 * operand in the usage error ("missing NODE", "expected one NODE"), at
 * argv[optind]; false when it must return p->exit_status (help printed,
 * usage error said). */
bool ctl_parser_end(ctl_parser *p, int c, const char *operand);

#endif /* AETHER_TOOLS_CTL_H */
