/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_opts.c: see sim_opts.h (tests layer, the simulation library).
 */
#include "sim_opts.h"

#include <stdlib.h>
#include <string.h>

#include "adversary.h"
#include "inproc.h"
#include "rng.h"
#include "shardmap.h"

const char *const sim_fault_names[F_COUNT_] = {
    "crash",  "pause",  "partition", "oneway", "isolate",    "kv-outage", "kv-cut",
    "join",   "drain",  "net-burst", "loss",   "dup",        "reorder",   "delay",
    "kv-unknown", "kv-slow", "kv-late", "drift", "misfit", "twin", "kv-loss", "forge",
    "kv-loss-both", "adversary", "forge-term", "kv-aba",
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aether-sim --seed S [--nodes N] [--duration SIM_SECONDS] [options]\n"
            "       aether-sim --soak --seed S      (everything else derived from S)\n"
            "       aether-sim --version\n"
            "\n"
            "cluster:  --nodes N (5)  --shards K (64)  --replication R (1)  --max-handoffs H\n"
            "          --duration S (30, simulated seconds of faults)  --settle S (30)\n"
            "          --node-retention S (10: departed nodes are forgotten within a run)\n"
            "faults:   --all-faults | --faults LIST  (comma list of: %s", sim_fault_names[0]);
    for (int i = 1; i < F_COUNT_; i++)
        fprintf(f, ",%s", sim_fault_names[i]);
    fprintf(f,
            ")\n"
            "          --extra-faults LIST (opt-in kinds, also with --soak: misfit; not in\n"
            "            --all-faults: a joiner with another shard_count or replication;\n"
            "            forge: the present leader impersonated; adversary: forged, replayed\n"
            "            and malformed events, maps, heartbeats and commands; kv-aba: after\n"
            "            a loss of both buckets the lost generation's map is written back)\n"
            "          --adversary-without LIST (ahead-terms,join-incarnations,operator-commands:\n"
            "            attack families the adversary leaves out; operator-commands unless\n"
            "            given; none: everything)\n"
            "          (--all-faults, 'all' and --soak leave out twin: a second process of a\n"
            "          live node id; add it with --faults all,twin)\n"
            "          --fault-rate R (scheduled faults per simulated second, 1)\n"
            "          --loss F (0.01)  --dup F (0.005)  --reorder F (0.01)   per delivery\n"
            "          --delay-us MIN,MAX[,MEAN] (100,3000; MEAN = exponential)\n"
            "          --kv-unknown F (0.01)  --kv-slow F (0.005)  --kv-late F (0.005)   per store call\n"
            "          --drift-ppm P (90%% of the bound the configuration allows)\n"
            "          --joins-max J (nodes that may join beyond --nodes; 4)  --no-i4\n"
            "output:   --trace (every line as it happens)  --tail N (40 lines on failure)\n"
            "          --log-level L (warn)  --wall (wall time on stderr)\n"
            "exit: 0 all checks held, 1 a check failed, 2 usage\n");
}

/* Decimal digits only: strtoull alone takes "-1" and wraps it to 2^64 - 1. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_frac(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0 && v <= 1)) /* NaN fails both */
        return false;
    *out = v;
    return true;
}

static bool parse_seconds_ms(const char *s, uint64_t *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0 && v <= 1e7)) /* NaN fails both */
        return false;
    *ms = (uint64_t)(v * 1000.0 + 0.5);
    return true;
}

static bool parse_faults(const char *list, uint32_t *mask)
{
    *mask = 0;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (strcmp(tok, "all") == 0) {
            *mask |= (1u << F_CLASSIC_COUNT_) - 1; /* the classic kinds; twin is opt-in */
            continue;
        }
        if (strcmp(tok, "none") == 0)
            continue;
        int found = -1;
        for (int i = 0; i < F_COUNT_; i++)
            if (strcmp(tok, sim_fault_names[i]) == 0)
                found = i;
        if (found < 0)
            return false;
        *mask |= 1u << found;
        if (found == F_KV_ABA)
            *mask |= 1u << F_KV_LOSS_BOTH | 1u << F_KV_LOSS; /* it follows their losses */
        if (found == F_KV_LOSS_BOTH)
            *mask |= 1u << F_KV_LOSS; /* its losses are kv-loss's, drawn by its schedule */
        if (found == F_FORGE_TERM)
            *mask |= 1u << F_FORGE; /* its claims ride on forge's schedule */
    }
    return true;
}

static void defaults(opts *o)
{
    memset(o, 0, sizeof(*o));
    /* Without a cluster secret an operator's command from anyone is the
     * operator's: left out unless asked for (adversary.h). */
    o->adv_without = SIM_ADV_WITHOUT_DEFAULT;
    snprintf(o->adv_without_arg, sizeof(o->adv_without_arg), "operator-commands");
    o->seed = 1;
    o->nodes = 5;
    o->duration_ms = 30000;
    o->shards = 64;
    o->replication = 1;
    o->fault_rate = 1.0;
    o->loss = 0.01;
    o->dup = 0.005;
    o->reorder = 0.01;
    o->delay_min_us = 100;
    o->delay_max_us = 3000;
    o->kv_unknown = 0.01;
    o->kv_slow = 0.005;
    o->kv_late = 0.005;
    o->drift_ppm = -1;
    o->settle_ms = 30000;
    /* The smallest retention the default brake window allows: departed
     * nodes are forgotten, and come back as new ones, within a run. */
    o->retention_ms = 10000;
    o->joins_max = 4;
    o->tail = SIM_TAIL_DEFAULT;
    o->log_level = AETHER_LOG_WARN;
    o->i4 = true;
}

/* --soak: the cluster and its faults come from the seed. */
static void derive(opts *o)
{
    aether_rng r;
    aether_rng_seed(&r, o->seed ^ UINT64_C(0x5eed50a4));
    o->nodes = (uint32_t)aether_rng_range(&r, 3, 20);
    static const uint32_t shard_choices[] = { 16, 32, 64, 128, 256 };
    o->shards = shard_choices[aether_rng_below(&r, 5)];
    o->replication = (uint32_t)aether_rng_range(&r, 1, 3);
    static const uint32_t handoff_choices[] = { 1, 4, 16, 64 };
    o->max_handoffs = handoff_choices[aether_rng_below(&r, 4)];
    o->faults = 0;
    for (int f = 0; f < F_CLASSIC_COUNT_; f++) /* F_TWIN is opt-in: seeds keep their schedules */
        if (aether_rng_below(&r, 10) < 7)
            o->faults |= 1u << f;
    o->fault_rate = 0.5 + (double)aether_rng_below(&r, 16) / 4.0; /* 0.5 .. 4.25 */
    o->loss = (double)aether_rng_below(&r, 31) / 1000.0;         /* 0 .. 3% */
    o->dup = (double)aether_rng_below(&r, 21) / 1000.0;
    o->reorder = (double)aether_rng_below(&r, 51) / 1000.0;
    o->delay_min_us = aether_rng_range(&r, 10, 500);
    o->delay_max_us = o->delay_min_us + aether_rng_range(&r, 0, 20000);
    o->delay_mean_us = aether_rng_below(&r, 2) ? 0 : o->delay_min_us + (o->delay_max_us - o->delay_min_us) / 8;
    o->kv_unknown = (double)aether_rng_below(&r, 31) / 1000.0;
    o->kv_slow = (double)aether_rng_below(&r, 11) / 1000.0;
    o->kv_late = (double)aether_rng_below(&r, 11) / 1000.0;
}

int sim_parse_args(int argc, char **argv, opts *o)
{
    defaults(o);
    bool have_faults = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        bool ok = true;
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (v == NULL) {                                                                           \
            fprintf(stderr, "aether-sim: %s needs a value\n", a);                                  \
            return 2;                                                                              \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--seed") == 0) {
            NEEDV();
            ok = parse_u64(v, &o->seed);
        } else if (strcmp(a, "--soak") == 0) {
            o->soak = true;
        } else if (strcmp(a, "--nodes") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u >= 1 && u <= SIM_NODES_MAX / 2;
            o->nodes = (uint32_t)u;
        } else if (strcmp(a, "--duration") == 0) {
            NEEDV();
            ok = parse_seconds_ms(v, &o->duration_ms);
        } else if (strcmp(a, "--settle") == 0) {
            NEEDV();
            ok = parse_seconds_ms(v, &o->settle_ms) && o->settle_ms > 0;
        } else if (strcmp(a, "--node-retention") == 0) {
            NEEDV();
            ok = parse_seconds_ms(v, &o->retention_ms) && o->retention_ms >= 10000 &&
                 o->retention_ms <= UINT32_MAX;
        } else if (strcmp(a, "--shards") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u >= 1 && u <= AETHER_SHARD_COUNT_MAX;
            o->shards = (uint32_t)u;
        } else if (strcmp(a, "--replication") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u >= 1 && u <= AETHER_REPLICATION_MAX;
            o->replication = (uint32_t)u;
        } else if (strcmp(a, "--max-handoffs") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u >= 1 && u <= AETHER_SHARD_COUNT_MAX;
            o->max_handoffs = (uint32_t)u;
        } else if (strcmp(a, "--all-faults") == 0) {
            o->faults = (1u << F_CLASSIC_COUNT_) - 1;
            have_faults = true;
        } else if (strcmp(a, "--extra-faults") == 0) {
            NEEDV();
            ok = parse_faults(v, &o->extra_faults);
        } else if (strcmp(a, "--adversary-without") == 0) {
            NEEDV();
            ok = aether_adversary_parse_without(v, &o->adv_without, NULL) == AETHER_OK &&
                 snprintf(o->adv_without_arg, sizeof(o->adv_without_arg), "%s", v) <
                     (int)sizeof(o->adv_without_arg);
        } else if (strcmp(a, "--faults") == 0) {
            NEEDV();
            ok = parse_faults(v, &o->faults);
            have_faults = true;
        } else if (strcmp(a, "--fault-rate") == 0) {
            NEEDV();
            char *end;
            o->fault_rate = strtod(v, &end);
            ok = end != v && *end == '\0' && o->fault_rate > 0 && o->fault_rate <= 1000;
        } else if (strcmp(a, "--loss") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->loss);
        } else if (strcmp(a, "--dup") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->dup);
        } else if (strcmp(a, "--reorder") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->reorder);
        } else if (strcmp(a, "--kv-unknown") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->kv_unknown);
        } else if (strcmp(a, "--kv-slow") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->kv_slow);
        } else if (strcmp(a, "--kv-late") == 0) {
            NEEDV();
            ok = parse_frac(v, &o->kv_late);
        } else if (strcmp(a, "--delay-us") == 0) {
            NEEDV();
            unsigned long long lo, hi, mean = 0;
            int k = sscanf(v, "%llu,%llu,%llu", &lo, &hi, &mean);
            ok = (k == 2 || k == 3) && lo <= hi && hi <= AETHER_INPROC_DELAY_MAX_US &&
                 (k == 2 || (mean >= lo && mean <= hi));
            o->delay_min_us = lo;
            o->delay_max_us = hi;
            o->delay_mean_us = k == 3 ? mean : 0;
        } else if (strcmp(a, "--drift-ppm") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u < 500000;
            o->drift_ppm = (int64_t)u;
        } else if (strcmp(a, "--joins-max") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u <= SIM_NODES_MAX / 2;
            o->joins_max = (uint32_t)u;
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = true;
        } else if (strcmp(a, "--tail") == 0) {
            NEEDV();
            ok = parse_u64(v, &u) && u >= 1 && u <= 100000;
            o->tail = (uint32_t)u;
        } else if (strcmp(a, "--log-level") == 0) {
            NEEDV();
            ok = aether_log_level_parse(v, &o->log_level);
        } else if (strcmp(a, "--wall") == 0) {
            o->wall = true;
        } else if (strcmp(a, "--no-i4") == 0) {
            o->i4 = false;
        } else {
            fprintf(stderr, "aether-sim: unknown option '%s' (see --help)\n", a);
            return 2;
        }
#undef NEEDV
        if (!ok) {
            fprintf(stderr, "aether-sim: bad value for %s: '%s'\n", a, v ? v : "");
            return 2;
        }
    }
    if (o->soak) {
        /* Derived values win over defaults; explicit options given after
         * --soak are not supported (the seed is the whole description). */
        uint64_t seed = o->seed, dur = o->duration_ms;
        bool trace = o->trace, wall = o->wall;
        uint32_t tail = o->tail;
        aether_log_level lvl = o->log_level;
        derive(o);
        o->seed = seed;
        o->duration_ms = dur;
        o->trace = trace;
        o->wall = wall;
        o->tail = tail;
        o->log_level = lvl;
    } else if (!have_faults) {
        o->faults = 0;
    }
    o->faults |= o->extra_faults;
    if (o->replication > o->nodes + o->joins_max)
        o->replication = o->nodes;
    return 0;
}

