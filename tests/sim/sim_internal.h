/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_internal.h: the simulated world's state, shared by the files of the
 * simulation library (tests/sim/): sim_world.c (nodes, the run loop, the
 * phases), sim_store.c (each node's faulty handle on the stores),
 * sim_check.c (the oracle's side: per-step checks, settled, balance),
 * sim_schedule.c (the fault schedule). Not for the front end
 * (tools/aether-sim.c uses sim_world.h).
 *
 * Threading: one thread (the step executor's).
 */
#ifndef AETHER_SIM_INTERNAL_H
#define AETHER_SIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "adversary.h"
#include "config.h"
#include "exec_step.h"
#include "inproc.h"
#include "invariants.h"
#include "kv_store.h"
#include "log.h"
#include "mailbox.h"
#include "member.h"
#include "shardmap.h"
#include "sim_adversary.h"
#include "sim_opts.h"
#include "sim_world.h"
#include "strategy.h"
#include "topology_json.h"

#define SIM_LINE_MAX 480u          /* one trace line, with its timestamp */
#define SIM_LATE_MAX 4096u          /* late store writes in flight */
#define SIM_SCAN_EVERY_STEP_MAX 64u /* nodes up to which every check runs every step */
#define SIM_KV_LOSS_GAP_MS 10000u   /* kv-loss: at most one loss per this (without
                                       kv-loss-both, never both buckets) */
#define MS AETHER_NS_PER_MS
#define SEC AETHER_NS_PER_S

#define SIM_MISFITS_MAX 4u /* misfit joiners per run */

#define F_KV_LOSS_WEIGHT 2u

#define F_TWIN_WEIGHT 2u

/* The two buckets every node reaches through its proxy. SIM_STORE_BOTH
 * is what a fault drawn from 0..2 names when it hits both (the values are
 * the draws: changing them changes every seed's schedule). */
typedef enum sim_store_kind {
    SIM_STORE_LEASE = 0,
    SIM_STORE_STATE = 1,
    SIM_STORE_COUNT_ = 2,
    SIM_STORE_BOTH = SIM_STORE_COUNT_,
} sim_store_kind;

/* A store write the proxy forwards (or applies late). */
typedef enum sim_write_op { SIM_WRITE_CREATE = 0, SIM_WRITE_UPDATE, SIM_WRITE_DELETE } sim_write_op;

/* A misfit joiner (F_MISFIT): what differs from the cluster's shape. */
typedef enum sim_misfit_kind {
    SIM_MISFIT_NONE = 0,
    SIM_MISFIT_SHARDS,       /* another shard_count */
    SIM_MISFIT_REPLICATION,  /* another replication */
} sim_misfit_kind;

/* ---- state ------------------------------------------------------------------ */

struct sim_world;
struct snode;

/* A node's handle on one store: forwards to the shared bucket, injecting
 * that node's faults. */
typedef struct kvpx {
    aether_kv base; /* first */
    struct sim_world *sim;
    struct snode *node;
    sim_store_kind store;
} kvpx;

typedef struct snode {
    struct sim_world *sim;
    uint32_t idx;
    char id[24];
    aether_member *m;        /* NULL when down */
    aether_transport *t;
    aether_drift_clock clock;
    kvpx px[SIM_STORE_COUNT_];
    uint32_t runs;
    bool paused;
    bool drain_requested;
    bool left;               /* drained and stopped */
    bool kv_cut;
    uint8_t *serving;        /* [shards]: acquired and not released */
    uint32_t serving_count;
    bool may_serve_last;
    uint64_t last_map_version, last_map_term, last_term;
    uint64_t own_term, own_seq;
    uint64_t told_term;      /* highest term on_leader_changed named (this run) */
    /* The generation each per-node check above was judged in: terms and
     * map versions are compared within one (actors/lease.h GENERATION). */
    uint64_t told_gen, own_gen, map_gen, view_gen, map_view_gen;
    uint64_t i5_bad_since_ns;
    bool ever_led;
    bool listed_led;         /* in sim.led (any run) */
    uint64_t restart_at_ns, resume_at_ns, unisolate_at_ns, kv_uncut_at_ns;
    bool isolated;
    sim_misfit_kind misfit;  /* SIM_MISFIT_NONE, or a misfit joiner (F_MISFIT): its shard_count / replication
                                differ from the cluster's; it must be refused, never serve,
                                never be on a map, and exits once refused */
    uint32_t misfit_shards, misfit_replication;
    bool superseded;         /* a newer process of its id took over: it exited for good */
} snode;

typedef struct late_write {
    uint64_t at_ns;
    sim_store_kind store;
    sim_write_op op;
    char key[AETHER_KV_KEY_LEN_MAX + 1];
    void *value;
    size_t len;
    uint64_t expected;
} late_write;

struct sim_world {
    opts o;
    aether_config base;
    aether_executor *ex;
    aether_sim_clock *clock;
    aether_rng frng;  /* fault schedule */
    aether_rng krng;  /* store faults */
    aether_rng mrng;  /* member seeds and clocks */
    aether_rng xrng;  /* opt-in fault kinds (F_MISFIT) */
    uint64_t next_misfit_ns;
    uint32_t misfits;
    aether_rng grng;  /* forgeries (F_FORGE): their own schedule */
    uint64_t forge_at_ns;      /* next forgery */
    aether_rng arng;  /* the adversary's schedule (F_ADVERSARY) */
    uint64_t adv_at_ns;        /* its next burst */
    sim_adversary *adv;        /* F_FORGE and F_ADVERSARY's hub endpoints */
    aether_inproc_hub *hub;
    aether_kv *kv[SIM_STORE_COUNT_];
    snode *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *led;     /* indices of nodes that ever won an election */
    uint32_t n_led;
    uint16_t *holders; /* [shards]: nodes holding the shard */
    aether_oracle_view *views; /* [cap_nodes]: scratch for the oracle */
    aether_term_registry terms;
    aether_departures departures; /* announced on the hub (sim_world.c, on_event_published) */
    char (*ring)[SIM_LINE_MAX];
    uint32_t ring_n, ring_head;
    bool failed;
    char why[600];
    uint64_t steps;
    uint64_t injected[F_COUNT_];
    uint64_t elections, moves, maps_checked;
    bool chaos;
    bool i4_watch;     /* count ShardMigrated during the I4 check */
    uint64_t i4_moves;
    uint64_t next_fault_ns, next_ms_ns;
    uint64_t partition_until_ns, burst_until_ns;
    uint64_t kv_outage_until_ns[SIM_STORE_COUNT_];
    uint64_t kv_loss_last_ns;   /* the last kv-loss injected; 0 = none */
    char *aba_map;              /* kv-aba: the lost generation's stored map, to write back */
    size_t aba_map_len;         /* its bytes (format 2: binary, shardmap_codec.h) */
    uint64_t aba_at_ns;         /* when (0 = none pending) */
    uint32_t aba_tries;         /* attempts so far (the key may not be stored yet) */
    double kv_unknown, kv_slow, kv_late; /* current */
    late_write *late;
    uint32_t n_late;
    int64_t drift_ppm;
    uint64_t last_stall_ns; /* end of the last slow store call (the world waited) */
    bool scan_every_step;
    aether_inproc_net_faults calm, rough;
};

typedef struct sim_world sim;

static inline uint64_t now_ns(const sim *s) { return s->clock->now_ns; }
static inline bool enabled(const sim *s, fault_kind f) { return (s->o.faults >> f) & 1u; }
static inline bool may_serve(const snode *n)
{
    return n->m != NULL && aether_member_may_serve(n->m);
}

/* sim_world.c */
void sim_world_trace(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first violation ends the run: traced, kept in s->why. */
void sim_world_fail(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
snode *sim_world_node_of(sim *s, const char *id);
bool sim_world_id_running_elsewhere(const sim *s, const snode *n);
void sim_world_node_start(sim *s, snode *n);
void sim_world_node_stop(sim *s, snode *n, const char *why);
void sim_world_node_pause(sim *s, snode *n, bool on);
void sim_world_node_isolate(sim *s, snode *n, bool on);
void sim_world_run_until(sim *s, uint64_t until);

/* sim_store.c */
extern const aether_kv_ops sim_store_ops;
bool sim_store_down(kvpx *p);
void sim_store_apply_late(sim *s);

/* sim_check.c */
snode *sim_check_co_holder(sim *s, const snode *n, uint32_t shard);
void sim_check_leaders(sim *s);
void sim_check_serving(sim *s, snode *n);
void sim_check_node_ms(sim *s, snode *n);
void sim_check_step(sim *s);
int sim_check_settled(sim *s, char *why, size_t cap);
void sim_check_describe(sim *s);
int sim_check_balanced(sim *s, char *why, size_t cap);

/* sim_schedule.c */
void sim_schedule_inject(sim *s);
void sim_schedule_heal_partition(sim *s);
void sim_schedule_add_node(sim *s);
void sim_schedule_add_misfit(sim *s);
void sim_schedule_aba_write(sim *s);
void sim_schedule_forge(sim *s);
void sim_schedule_adversary(sim *s);
void sim_schedule_housekeeping(sim *s);

#endif
