/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_opts.h: aether-sim's fault kinds and options (tests layer, the simulation library): what the
 * command line says, parsed and checked (sim_parse_args), and with --soak
 * derived from the seed. sim_world.h runs what they describe.
 * Threading: one thread (main, before the simulation starts).
 */
#ifndef AETHER_SIM_OPTS_H
#define AETHER_SIM_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "adversary.h"
#include "log.h"

#define SIM_NODES_MAX 4096u
#define SIM_TAIL_DEFAULT 40u

typedef enum fault_kind {
    /* scheduled events */
    F_CRASH = 0,
    F_PAUSE,
    F_PARTITION,
    F_ONEWAY,
    F_ISOLATE,
    F_KV_OUTAGE,
    F_KV_CUT,
    F_JOIN,
    F_DRAIN,
    F_NET_BURST,
    F_EVENT_COUNT_,
    /* background rates */
    F_LOSS = F_EVENT_COUNT_,
    F_DUP,
    F_REORDER,
    F_DELAY,
    F_KV_UNKNOWN,
    F_KV_SLOW,
    F_KV_LATE,
    F_DRIFT,
    /* Opt-in kinds: --extra-faults LIST (with --soak too) or --faults by
     * name; neither --all-faults nor --soak's derivation enables them, so
     * the regression seeds keep their schedules. misfit runs on its own
     * generator (xrng), beside the schedule above; twin is drawn by the
     * schedule (--faults all,twin). */
    F_MISFIT = F_DRIFT + 1, /* a joiner with another shard_count or replication */
    F_TWIN,                 /* a second process of a live node id */
    F_KV_LOSS,              /* a bucket deleted and re-created empty (scheduled, --faults all,kv-loss) */
    F_FORGE,                /* the present leader impersonated: its own schedule and generator
                               (forge_at), --faults ...,forge */
    F_KV_LOSS_BOTH,         /* kv-loss may lose both buckets at once (a new generation,
                               actors/lease.h GENERATION); implies kv-loss */
    F_ADVERSARY,            /* forged, replayed and malformed messages of every kind
                               (tests/sim/sim_adversary.h): its own schedule and generator */
    F_FORGE_TERM,           /* forge also claims a term far ahead (issue 13): implies forge; a
                               kind of its own so forge's seeds keep their schedules */
    F_KV_ABA,               /* after a loss of both buckets, the lost generation's leader's map
                               lands in the new state bucket by compare-and-set (revisions
                               restart: an ABA), numbered above the new generation's:
                               implies kv-loss-both (actors/member_state.c, "Generations") */
    F_COUNT_
} fault_kind;
#define F_CLASSIC_COUNT_ F_MISFIT /* --all-faults and --soak draw from the kinds before */

/* Their names on the command line, by fault_kind. */
extern const char *const sim_fault_names[F_COUNT_];

typedef struct opts {
    uint64_t seed;
    uint32_t nodes;
    uint64_t duration_ms;
    uint32_t shards;
    uint32_t replication;
    uint32_t max_handoffs;     /* 0 = the default */
    uint32_t faults;           /* bit per fault_kind */
    uint32_t extra_faults;     /* --extra-faults: opt-in kinds added after --soak's derivation */
    double fault_rate;         /* scheduled events per simulated second */
    double loss, dup, reorder; /* per delivery, while chaos lasts */
    uint64_t delay_min_us, delay_max_us, delay_mean_us; /* mean 0 = uniform */
    double kv_unknown, kv_slow, kv_late; /* per store call, while chaos lasts */
    int64_t drift_ppm;         /* -1 = 90% of the configured bound */
    uint64_t settle_ms;
    uint64_t retention_ms;     /* node_retention_ms of every node */
    uint32_t joins_max;        /* nodes that may join beyond --nodes */
    bool soak;
    bool trace;
    uint32_t tail;
    bool wall;
    aether_log_level log_level;
    bool i4;                   /* run the final I4 check */
    uint32_t adv_without;      /* --adversary-without: AETHER_ADV_WITHOUT_* families left out
                                  (SIM_ADV_WITHOUT_DEFAULT unless given) */
    char adv_without_arg[64];  /* as given, for the replay line */
} opts;

/* The families the adversary leaves out when --adversary-without is not
 * given: the operator's commands (tests/sim/adversary.h). */
#define SIM_ADV_WITHOUT_DEFAULT AETHER_ADV_WITHOUT_OPERATOR_COMMANDS

/* Fills o from the command line (defaults first; --soak derives the rest
 * from the seed). 0, or 2 after a message on stderr (usage); --help prints
 * the usage and exits 0. */
int sim_parse_args(int argc, char **argv, opts *o);

#endif
