/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether-observer.c: the independent observer of tools/chaos (tools layer).
 *
 *   aether-observer --nats URL[,URL...] --cluster C --dir DIR
 *                   [--replication R] [--settle-ms N] [--duration S]
 *
 * It joins nothing and publishes nothing. With its own NATS connection it
 * subscribes aether.<C>.> and decodes every message with the product's wire
 * decoders only (transport/codec.h for envelopes, actors/shardmap_codec.h for
 * maps); none of the node's decision logic (member, invariants, strategy)
 * is linked in. Every event and map is recorded in DIR/observer.log
 * ("<mono_us> EVENT <Type> term=T seq=S node=N ts=MS" / "<mono_us> MAP
 * version=V term=T moving=M"; a second copy of an event's exact bytes is
 * logged as EVENT-REPLAY and changes nothing the checks track). At the end
 * it also reads the nodes' --trace output (DIR/<id>.out, "T <mono_us> <id>
 * MAP|LEADER|EVENT|ACQUIRE|RELEASE ...", each process start marked by the driver with
 * "# chaos start <id>"; a second process of a live id - the `twin` fault -
 * traces into its own file DIR/<id>@<k>.out, so every per-process check
 * reads one process's lines in order) and the driver's fault log
 * DIR/faults.log ("F <kind> <detail>" per fault, "X <id> <detail>" for a
 * process that died without being told to or did not exit as its fault
 * asked, a violation; "S <id> <detail>"
 * for a node that refused to start while JetStream could not bind its
 * buckets, counted apart; "R <kind> <id> <detail>" for an exit the fault
 * asked for: a misfit refused with exit 2, a superseded process exiting 3,
 * an event replayed).
 *
 * DESIGN. What is checked, and why each check is the claim itself. Terms and
 * map versions repeat across cluster generations (both stores lost:
 * actors/lease.h GENERATION), so every check below compares them within one
 * generation: wire events carry theirs ("gen"), the nodes' LEADER and MAP
 * trace lines end with "gen=<16 hex>" (a LEADER line marks each change, so
 * a process's events after it are judged in the new one), and wire maps,
 * which carry none, count in the newest generation an event on the wire
 * named (one publisher keeps its order, and a new leader's LeaderElected
 * precedes its maps). Check 2 orders terms within a generation only; the
 * lease keeps generations apart in time (lease.h step 2c).
 *  1. One leader per term (I1): every LeaderElected on the wire and every
 *     trace LEADER line names, for its term, the same node; every event on
 *     the wire of term T comes from that node (events are leader-issued).
 *  2. Never two leaders acting at once (I1, second half): the wall-clock
 *     stamps (ts, set by the emitter when it creates the event, on this one
 *     machine) of each term's events but LeadershipLost span an interval;
 *     sorted by term these intervals must not overlap.
 *  3. No accepted change of an older term: per node process (trace), an
 *     EVENT applied with a term below the highest it knew (LEADER lines,
 *     earlier events) is a violation, LeadershipLost excepted (it announces
 *     the end of an old term, member.c accepts it), and so are the node's
 *     own events (stamped while it led, not accepted from anyone); a MAP
 *     installed with a
 *     term below one installed before is one too.
 *  4. Map versions never go backwards, per node (trace MAP lines, across
 *     restarts of that node too), and one version is one map: the same
 *     version with two terms (traces) or two contents (wire) is a fork.
 *  5. Single ownership, as the maps tell it: between two consecutive map
 *     versions received on one connection, a shard's primary may change only
 *     if the earlier map had the shard moving (the handoff: the old owner
 *     releases or fences itself by its own clock) or if its old primary was
 *     declared Failed or Left after it took the shard. Anything else gives a
 *     shard to a new owner while the old one may still serve it. Pairs the
 *     observer cannot judge (a version gap, a reconnect in between) are
 *     counted, not guessed.
 *  6. After the driver heals everything and sends SIGUSR1 (DIR/expect lists
 *     the nodes that should be up), within --settle-ms: the newest map has
 *     no moving shard and every shard min(R, |expected|) distinct owners,
 *     all expected (so all Active: I2/I3); the leader's latest LeaseRenewed
 *     names that version; every expected node's last trace MAP is that
 *     version, its last LEADER line names that leader and term, and its
 *     present process serves (trace ACQUIRE/RELEASE) exactly the shards
 *     that map gives it as primary: every shard served, by one process.
 *  8. I3 on the wire: a map never names as owner a node declared Failed
 *     or Left (NodeFailed/NodeLeft received before the map; one leader's
 *     publications keep their order on its connection) and not re-admitted
 *     (NodeJoined) since. After an event seq gap (core NATS is at most
 *     once: a server restart loses messages, the NodeJoined among them)
 *     such a node is not judged until its next event, and check 5 does
 *     not judge a shard across the gap; both are counted.
 *  7. Every message on the subjects decodes (nothing forges in a chaos run:
 *     a refusal is a node putting bad bytes on the wire).
 *  9. Admission (the `misfit` fault: a joiner with another shard count or
 *     replication, "F misfit <id> ..."): no map on the wire ever names a
 *     misfit id, and no misfit's trace installs a map.
 * 10. A replayed event is not applied twice: per node process (trace), no
 *     EVENT line of another emitter with the same (term, seq, emitter) as an
 *     earlier one (the `dup-event` fault republishes a genuine event's exact
 *     bytes; a duplicate seq is not a fork, so check 1 is unaffected).
 *     LeadershipLost is exempt: it is accepted whatever its term (check 3)
 *     and applying it again changes nothing (it clears the leader only of
 *     its own term).
 * 11. With --adversary (tools/chaos --adversary: tests/nats_forge
 *     publishes forged, replayed and malformed messages on the cluster's
 *     subjects), the wire is no longer the cluster's word. The forger
 *     announces the XXH64 of each message's bytes on aether.<C>.adversary
 *     (no node subscribes there) before publishing it on the same
 *     connection (NATS keeps one publisher's order); a message whose hash
 *     was announced is recorded as FORGED and judged by no wire check (1, 2,
 *     4, 5, 7, 8, 9 judge only the cluster's own messages). What the nodes do
 *     is judged by their traces as always, plus: every leader a process
 *     follows (trace LEADER L T) is a process of the cluster whose own
 *     trace says it led term T - a node that follows `evil`, or a member in
 *     a term it never won, believed a forged claim.
 * The summary gives the faults per kind, leader changes, shards moved (primary
 * changes between consecutive maps, and the leaders' own RebalanceCompleted
 * counts), what could not be judged, and the violations; exit 1 if any.
 *
 * Exit status: 0 no violation, 1 a violation (or not settled), 2 usage.
 *
 * Threading: one thread; a synchronous subscription; nats.c's reconnect
 * callback only bumps an atomic epoch counter.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strndup */
#endif
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>
#include <xxhash.h>

#include <aether/aether_version.h>

#include "aether_build.h"
#include "aether_internal.h"
#include "codec.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"

#define EXIT_USAGE 2
#define OBS_URLS_MAX 16
#define OBS_POLL_MS 100          /* NextMsg slice: signals and deadlines checked this often */
#define OBS_SETTLE_POLL_MS 250   /* settle: between two looks at the traces */
#define OBS_TERMS_MAX 65536u     /* distinct terms remembered */
#define OBS_VERSIONS_MAX 262144u /* distinct map versions remembered */
#define OBS_NODES_MAX 1024u      /* distinct node ids remembered */
#define OBS_VIOLATIONS_SHOWN 40u /* violation lines printed in full */
#define OBS_LINE_MAX 4096
#define OBS_KINDS_MAX 32u        /* distinct fault kinds */
#define OBS_DATA_MAX ((size_t)8 << 20)
#define OBS_SET_MAX ((size_t)1 << 22)  /* keys remembered per set (wire events, one process's) */
#define OBS_MISFITS_MAX 64u       /* distinct misfit ids */
#define OBS_FOLLOWS_MAX 65536u    /* distinct (process, leader, term) judged by check 11 */
#define OBS_SHARDS_MAX 65536u     /* shard indexes in ACQUIRE/RELEASE trace lines */
#define OBS_SETTLE_MS_DEFAULT 60000u
#define OBS_DURATION_S_DEFAULT 3600u

/* ---- small helpers -------------------------------------------------------- */

static volatile sig_atomic_t obs_stop;   /* SIGTERM/SIGINT: stop, no settle phase */
static volatile sig_atomic_t obs_settle; /* SIGUSR1: settle phase requested */
static int obs_epoch;                    /* atomic, relaxed: +1 per reconnect */

static void on_stop(int sig) { obs_stop = sig; }
static void on_settle(int sig) { (void)sig; obs_settle = 1; }

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A set of 64-bit keys (open addressing, load at most 1/2; the key 0 is
 * stored as 1). Single-threaded, like the rest of the observer. */
typedef struct u64_set {
    uint64_t *slot;
    size_t cap, n;
} u64_set;

/* Adds key; true if it was not in the set. Past OBS_SET_MAX keys, or out of
 * memory, the set stops growing and a key not found counts as new: a
 * duplicate may then go unseen, none is ever invented. */
static bool set_add(u64_set *s, uint64_t key)
{
    if (key == 0)
        key = 1;
    if (s->cap > 0) {
        size_t mask = s->cap - 1;
        for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) { /* bounded: a free slot exists (load <= 1/2) */
            if (s->slot[i] == key)
                return false;
            if (s->slot[i] == 0)
                break;
        }
    }
    if ((s->n + 1) * 2 > s->cap) {
        if (s->n >= OBS_SET_MAX)
            return true;
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slot = calloc(cap, sizeof(*slot));
        if (slot == NULL)
            return true;
        for (size_t j = 0; j < s->cap; j++) { /* bounded: the old capacity */
            if (s->slot[j] == 0)
                continue;
            size_t i = (size_t)s->slot[j] & (cap - 1);
            while (slot[i] != 0) /* bounded: load <= 1/4 */
                i = (i + 1) & (cap - 1);
            slot[i] = s->slot[j];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t i = (size_t)key & (s->cap - 1);
    while (s->slot[i] != 0) /* bounded: load <= 1/2 */
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = key;
    s->n++;
    return true;
}

static bool set_has(const u64_set *s, uint64_t key)
{
    if (key == 0)
        key = 1;
    if (s->cap == 0)
        return false;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) { /* bounded: a free slot exists */
        if (s->slot[i] == key)
            return true;
        if (s->slot[i] == 0)
            return false;
    }
}

static void set_clear(u64_set *s)
{
    if (s->slot != NULL)
        memset(s->slot, 0, s->cap * sizeof(*s->slot));
    s->n = 0;
}

static void set_free(u64_set *s)
{
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

/* A trace file's stem is a node id, or "<id>@<k>" for a second process of
 * that id (tools/chaos's twin fault; '@' is never in a node id). Copies the
 * id part into out (cap >= AETHER_NODE_ID_LEN_MAX + 1). */
static void stem_id(const char *stem, char *out, size_t cap)
{
    size_t l = strcspn(stem, "@");
    snprintf(out, cap, "%.*s", (int)(l < cap ? l : cap - 1), stem);
}

/* ---- state ---------------------------------------------------------------- */

typedef struct term_rec {
    uint64_t generation; /* terms repeat across generations (actors/lease.h); 0 = not said */
    uint64_t term;
    char leader[AETHER_NODE_ID_LEN_MAX + 1]; /* from LeaderElected or the first event; "" unknown */
    char leader_src[48];                     /* where the leader was learnt */
    uint64_t lo_ts, hi_ts;                   /* acting interval (wall ms), events but LeadershipLost */
    uint64_t acts;
    uint64_t last_seq;
    bool elected_on_wire;
} term_rec;

typedef struct version_rec {
    uint64_t generation;          /* map versions are numbered per generation */
    uint64_t version, term, hash; /* hash 0: learnt from a trace only */
    char src[AETHER_NODE_ID_LEN_MAX + 8];
} version_rec;

typedef enum node_state { NS_UNKNOWN = 0, NS_ACTIVE, NS_DRAINING, NS_LEFT, NS_FAILED } node_state;

typedef struct node_rec {
    char id[AETHER_NODE_ID_LEN_MAX + 1];
    node_state state;
    uint64_t down_seq;       /* receive index of its last NodeFailed/NodeLeft; 0 none */
    uint64_t mapped_version; /* the first map on the wire naming it; 0 none (check 9) */
    bool unsure;             /* Failed/Left, but events were lost since (a seq gap): a NodeJoined
                                re-admitting it may be among them; cleared by its next event */
} node_rec;

typedef struct kind_rec {
    char kind[32];
    uint64_t count;
} kind_rec;

/* Check 11: a process (trace stem) followed `leader` in (gen, term). */
typedef struct follow_rec {
    char stem[AETHER_NODE_ID_LEN_MAX + 16];
    char leader[AETHER_NODE_ID_LEN_MAX + 1];
    uint64_t gen, term;
} follow_rec;

typedef struct obs {
    const char *urls, *cluster, *dir;
    bool adversary;             /* --adversary: check 11 */
    uint32_t replication;
    uint64_t settle_ms, duration_s;
    FILE *log;

    term_rec *terms;
    uint32_t n_terms;
    version_rec *versions;
    uint32_t n_versions;
    uint64_t wire_gen; /* the newest generation an event on the wire named (wire maps carry none) */
    node_rec *nodes;
    uint32_t n_nodes;

    aether_shardmap *last;      /* the newest map received (highest version) */
    int last_epoch;             /* obs_epoch when `last` arrived */
    uint64_t *primary_seq;      /* [last->shard_count]: receive index where the primary took it */
    int *primary_epoch;         /* [last->shard_count]: obs_epoch then */
    uint64_t recv_seq;          /* messages received, the receive index */

    /* The newest LeaseRenewed seen: */
    uint64_t renew_term, renew_map_version;
    char renew_leader[AETHER_NODE_ID_LEN_MAX + 1];

    /* Tallies. */
    uint64_t msgs, events, maps, heartbeats, commands, releases, refused;
    uint64_t map_dups, map_stale, pairs_judged, pairs_unjudged, primaries_moved;
    uint64_t rebalance_moved, seq_gaps, reconnects;
    uint64_t migrated_moves, assigned_shards; /* entries of ShardMigrated / ShardAssigned batches */
    uint64_t gap_seq;      /* receive index of the last event seq gap seen; 0 none */
    uint64_t i3_unjudged;  /* maps naming a node whose departure a lost event may have undone */
    uint64_t violations;
    uint64_t start_refusals; /* faults.log "S": a node refused to start (JetStream unavailable) */
    u64_set wire_events;     /* XXH64 of every event's bytes heard: a second copy is a replay */
    uint64_t event_replays;  /* copies heard again (EVENT-REPLAY) */
    /* faults.log "F misfit <id>": ids that must never be admitted (check 9) */
    char misfits[OBS_MISFITS_MAX][AETHER_NODE_ID_LEN_MAX + 1];
    uint32_t n_misfits;
    /* faults.log "R <kind> ...": the exits and replays the faults asked for */
    uint64_t misfits_refused, superseded_exits, replays_done;
    /* Check 11. */
    u64_set forged;             /* XXH64 of every message the forger announced */
    uint64_t forged_heard, forged_notes;
    u64_set claims;             /* (gen, term, id) of every trace LEADER line naming its own process */
    u64_set follow_keys;        /* (stem, leader, gen, term) already in follows */
    follow_rec *follows;
    uint32_t n_follows;
    bool settle_ran, settled;
    uint64_t settle_wait_ms;
    char settle_why[512];
} obs;

static void violation(obs *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(obs *o, const char *fmt, ...)
{
    char line[OBS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (o->violations++ < OBS_VIOLATIONS_SHOWN)
        fprintf(stdout, "VIOLATION %s\n", line);
    if (o->log != NULL)
        fprintf(o->log, "%" PRIu64 " VIOLATION %s\n", mono_us(), line);
    fflush(stdout);
}

static term_rec *term_get(obs *o, uint64_t gen, uint64_t term)
{
    for (uint32_t i = 0; i < o->n_terms; i++) /* bounded: OBS_TERMS_MAX */
        if (o->terms[i].term == term && o->terms[i].generation == gen)
            return &o->terms[i];
    if (o->n_terms >= OBS_TERMS_MAX)
        return NULL;
    term_rec *t = &o->terms[o->n_terms++];
    memset(t, 0, sizeof(*t));
    t->generation = gen;
    t->term = term;
    t->lo_ts = UINT64_MAX;
    return t;
}

/* Records that `who` leads `term` according to `src`; a different leader
 * already recorded for that term is check 1's violation. */
static void term_leader(obs *o, uint64_t gen, uint64_t term, const char *who, const char *src)
{
    term_rec *t = term_get(o, gen, term);
    if (t == NULL)
        return;
    if (t->leader[0] == '\0') {
        snprintf(t->leader, sizeof(t->leader), "%s", who);
        snprintf(t->leader_src, sizeof(t->leader_src), "%s", src);
    } else if (strcmp(t->leader, who) != 0) {
        violation(o, "two leaders in term %" PRIu64 " of generation %016" PRIx64 ": %s (%s) and %s (%s)",
                  term, gen, t->leader, t->leader_src, who, src);
    }
}

/* The "gen=<16 hex>" token of a trace line at tok[i] (aether-node's LEADER
 * and MAP lines), 0 if absent (a node from before generations). */
static uint64_t trace_gen(char *const *tok, int nt, int i)
{
    if (i >= nt || strncmp(tok[i], "gen=", 4) != 0)
        return 0;
    return strtoull(tok[i] + 4, NULL, 16);
}

static node_rec *node_get(obs *o, const char *id)
{
    for (uint32_t i = 0; i < o->n_nodes; i++) /* bounded: OBS_NODES_MAX */
        if (strcmp(o->nodes[i].id, id) == 0)
            return &o->nodes[i];
    if (o->n_nodes >= OBS_NODES_MAX)
        return NULL;
    node_rec *n = &o->nodes[o->n_nodes++];
    memset(n, 0, sizeof(*n));
    snprintf(n->id, sizeof(n->id), "%s", id);
    return n;
}

static version_rec *version_find(obs *o, uint64_t gen, uint64_t v)
{
    for (uint32_t i = o->n_versions; i > 0; i--) /* bounded: OBS_VERSIONS_MAX; newest first */
        if (o->versions[i - 1].version == v && o->versions[i - 1].generation == gen)
            return &o->versions[i - 1];
    return NULL;
}

/* Check 4's "one version is one map": hash 0 means "from a trace, content
 * unknown" (only the term is compared then). */
static void version_note(obs *o, uint64_t gen, uint64_t v, uint64_t term, uint64_t hash,
                         const char *src)
{
    version_rec *r = version_find(o, gen, v);
    if (r == NULL) {
        if (o->n_versions >= OBS_VERSIONS_MAX)
            return;
        r = &o->versions[o->n_versions++];
        r->generation = gen;
        r->version = v;
        r->term = term;
        r->hash = hash;
        snprintf(r->src, sizeof(r->src), "%s", src);
        return;
    }
    if (r->term != term)
        violation(o, "map v%" PRIu64 " exists with term %" PRIu64 " (%s) and term %" PRIu64 " (%s)", v,
                  r->term, r->src, term, src);
    else if (hash != 0 && r->hash != 0 && r->hash != hash)
        violation(o, "two different maps published as v%" PRIu64 " (term %" PRIu64 ")", v, term);
    else if (hash != 0 && r->hash == 0)
        r->hash = hash;
}

/* ---- the wire --------------------------------------------------------------- */

static void on_event(obs *o, const aether_event *e)
{
    o->events++;
    const char *type = aether_event_type_name(e->type);
    fprintf(o->log, "%" PRIu64 " EVENT %s term=%" PRIu64 " seq=%" PRIu64 " node=%s ts=%" PRIu64 "\n",
            mono_us(), type, e->term, e->seq, e->node.str, e->ts_ms);
    if (e->generation != 0)
        o->wire_gen = e->generation; /* the generation wire maps are counted in from here */
    term_rec *t = term_get(o, e->generation, e->term);
    if (t == NULL)
        return;
    if (e->type == AETHER_EVT_LEADER_ELECTED) {
        t->elected_on_wire = true;
        if (e->data.leader_elected.term != e->term)
            violation(o, "LeaderElected of %s: envelope term %" PRIu64 ", data term %" PRIu64,
                      e->data.leader_elected.leader.str, e->term, e->data.leader_elected.term);
        term_leader(o, e->generation, e->data.leader_elected.term, e->data.leader_elected.leader.str,
                    "LeaderElected");
    }
    /* Every event is leader-issued: its emitter leads its term. */
    term_leader(o, e->generation, e->term, e->node.str, "an event it emitted");
    if (e->seq != 0) {
        /* A gap, or a term first heard of past its seq 1 (its LeaderElected
         * and what followed were lost): core NATS is at most once, and a
         * server restart or a route cut loses messages. What was lost may
         * have re-admitted a Failed/Left node or declared one: checks 5 and
         * 8 do not judge across it. */
        if (e->seq > t->last_seq + 1) {
            o->seq_gaps++;
            o->gap_seq = o->recv_seq;
            for (uint32_t i = 0; i < o->n_nodes; i++) /* bounded: OBS_NODES_MAX */
                if (o->nodes[i].state == NS_FAILED || o->nodes[i].state == NS_LEFT)
                    o->nodes[i].unsure = true;
        }
        if (e->seq > t->last_seq)
            t->last_seq = e->seq;
    }
    if (e->type != AETHER_EVT_LEADERSHIP_LOST) {
        t->acts++;
        if (e->ts_ms < t->lo_ts)
            t->lo_ts = e->ts_ms;
        if (e->ts_ms > t->hi_ts)
            t->hi_ts = e->ts_ms;
    }
    node_rec *n = NULL;
    switch (e->type) {
    case AETHER_EVT_NODE_JOINED:
        if ((n = node_get(o, e->data.node_joined.node.str)) != NULL) {
            n->state = NS_ACTIVE;
            n->unsure = false;
        }
        break;
    case AETHER_EVT_NODE_DRAINING:
        if ((n = node_get(o, e->data.node_draining.node.str)) != NULL)
            n->state = NS_DRAINING;
        break;
    case AETHER_EVT_NODE_LEFT:
    case AETHER_EVT_NODE_FAILED:
        n = node_get(o, e->type == AETHER_EVT_NODE_LEFT ? e->data.node_left.node.str
                                                        : e->data.node_failed.node.str);
        if (n != NULL) {
            n->state = e->type == AETHER_EVT_NODE_LEFT ? NS_LEFT : NS_FAILED;
            n->down_seq = o->recv_seq;
            n->unsure = false;
        }
        break;
    case AETHER_EVT_LEASE_RENEWED:
        if (e->term >= o->renew_term) {
            o->renew_term = e->term;
            o->renew_map_version = e->data.lease_renewed.map_version;
            snprintf(o->renew_leader, sizeof(o->renew_leader), "%s", e->data.lease_renewed.leader.str);
        }
        break;
    case AETHER_EVT_REBALANCE_COMPLETED:
        o->rebalance_moved += e->data.rebalance_completed.moved;
        break;
    case AETHER_EVT_SHARD_MIGRATED: /* a batch: count its moves, not the event */
        o->migrated_moves += e->data.shard_migrated.count;
        break;
    case AETHER_EVT_SHARD_ASSIGNED:
        o->assigned_shards += e->data.shard_assigned.count;
        break;
    default:
        break;
    }
}

/* Check 5 between `prev` (the last map) and `m` (version prev + 1). */
static void judge_pair(obs *o, const aether_shardmap *prev, const aether_shardmap *m, int epoch)
{
    if (prev->shard_count != m->shard_count) {
        violation(o, "shard count changed from %u (v%" PRIu64 ") to %u (v%" PRIu64 ")",
                  prev->shard_count, prev->version, m->shard_count, m->version);
        return;
    }
    bool judged = false, unjudged = false;
    for (uint32_t s = 0; s < m->shard_count; s++) { /* bounded: shard_count */
        const aether_shard_entry *a = aether_shardmap_entry(prev, s);
        const aether_shard_entry *b = aether_shardmap_entry(m, s);
        const char *from = a->owner_count ? aether_shardmap_node(prev, a->primary)->str : NULL;
        const char *to = b->owner_count ? aether_shardmap_node(m, b->primary)->str : NULL;
        if (from == NULL || to == NULL || strcmp(from, to) == 0)
            continue;
        o->primaries_moved++;
        if (o->primary_epoch[s] != epoch || o->gap_seq > o->primary_seq[s]) {
            unjudged = true;
            o->primary_seq[s] = o->recv_seq;
            o->primary_epoch[s] = epoch;
            continue;
        }
        judged = true;
        node_rec *n = node_get(o, from);
        bool handoff = a->state == AETHER_SHARD_MOVING;
        /* Declared Failed/Left after it took the shard, or Failed/Left now
         * (it was given the shard while already declared: check 8). */
        bool declared = n != NULL && (n->down_seq > o->primary_seq[s] || n->state == NS_FAILED ||
                                      n->state == NS_LEFT);
        if (!handoff && !declared)
            violation(o, "single ownership: shard %u went from %s (v%" PRIu64 ", %s) to %s (v%" PRIu64
                         ", term %" PRIu64 ") without a handoff, and %s was not declared failed or left",
                      s, from, prev->version, a->state == AETHER_SHARD_MOVING ? "moving" : "stable", to,
                      m->version, m->term, from);
        o->primary_seq[s] = o->recv_seq;
        o->primary_epoch[s] = epoch;
    }
    if (judged)
        o->pairs_judged++;
    if (unjudged)
        o->pairs_unjudged++;
}

static void on_map(obs *o, const char *data, size_t len)
{
    aether_shardmap *m = NULL;
    aether_err err = {0};
    if (aether_shardmap_codec_decode(data, len, &m, NULL, &err) != AETHER_OK) {
        o->refused++;
        violation(o, "a map on the wire does not decode: %s", err.msg);
        return;
    }
    o->maps++;
    uint32_t moving = 0;
    for (uint32_t s = 0; s < m->shard_count; s++) /* bounded: shard_count */
        moving += aether_shardmap_entry(m, s)->state == AETHER_SHARD_MOVING;
    fprintf(o->log, "%" PRIu64 " MAP version=%" PRIu64 " term=%" PRIu64 " moving=%u nodes=%u\n", mono_us(),
            m->version, m->term, moving, m->node_count);
    int epoch = __atomic_load_n(&obs_epoch, __ATOMIC_RELAXED);
    bool seen = version_find(o, o->wire_gen, m->version) != NULL;
    /* Check 9 is judged at the end (faults.log names the misfits): note the
     * first map naming each node. */
    for (uint32_t i = 0; i < m->node_count; i++) { /* bounded: node_count */
        node_rec *n = node_get(o, m->nodes[i].str);
        if (n != NULL && n->mapped_version == 0)
            n->mapped_version = m->version > 0 ? m->version : 1;
    }
    /* Check 8 (I3): a map names as owner only nodes not declared Failed or
     * Left (by an event received before it, from one leader connection:
     * NATS keeps one publisher's order) and not re-admitted since. */
    for (uint32_t i = 0; !seen && i < m->node_count; i++) { /* bounded: node_count */
        node_rec *n = node_get(o, m->nodes[i].str);
        if (n == NULL || (n->state != NS_FAILED && n->state != NS_LEFT))
            continue;
        size_t owned = 0;
        (void)aether_shardmap_node_owner_shards(m, (aether_node_index)i, &owned);
        if (owned > 0 && n->unsure) {
            o->i3_unjudged++; /* a NodeJoined of it may be among the events lost */
        } else if (owned > 0) {
            violation(o, "I3: map v%" PRIu64 " (term %" PRIu64 ") gives %zu shards to %s, declared %s before it "
                         "was published (and not re-admitted)",
                      m->version, m->term, owned, n->id, n->state == NS_FAILED ? "Failed" : "Left");
        }
    }
    version_note(o, o->wire_gen, m->version, m->term, XXH64(data, len, 0), "wire");
    if (seen) {
        o->map_dups++;
        aether_shardmap_destroy(m);
        return;
    }
    if (o->last != NULL && m->version < o->last->version) {
        o->map_stale++; /* an older version after a newer one: a slow path, judged by the traces */
        aether_shardmap_destroy(m);
        return;
    }
    if (o->last == NULL || o->last->shard_count != m->shard_count) {
        free(o->primary_seq);
        free(o->primary_epoch);
        o->primary_seq = calloc(m->shard_count, sizeof(*o->primary_seq));
        o->primary_epoch = calloc(m->shard_count, sizeof(*o->primary_epoch));
        if (o->primary_seq == NULL || o->primary_epoch == NULL) {
            fprintf(stderr, "aether-observer: out of memory\n");
            exit(1);
        }
        for (uint32_t s = 0; s < m->shard_count; s++) {
            o->primary_seq[s] = o->recv_seq;
            o->primary_epoch[s] = epoch;
        }
    } else if (m->version == o->last->version + 1 && o->last_epoch == epoch) {
        judge_pair(o, o->last, m, epoch);
    } else {
        /* A gap or a reconnect: nothing judged, and nothing judged later
         * against what happened before it. */
        o->pairs_unjudged++;
        for (uint32_t s = 0; s < m->shard_count; s++) {
            const aether_shard_entry *a = aether_shardmap_entry(o->last, s);
            const aether_shard_entry *b = aether_shardmap_entry(m, s);
            if (a->owner_count && b->owner_count &&
                !aether_node_id_equal(aether_shardmap_node(o->last, a->primary),
                                      aether_shardmap_node(m, b->primary))) {
                o->primaries_moved++;
                o->primary_seq[s] = o->recv_seq;
                o->primary_epoch[s] = -1; /* never equal to a real epoch: unjudged next time */
            }
        }
    }
    aether_shardmap_destroy(o->last);
    o->last = m;
    o->last_epoch = epoch;
}

static void on_msg(obs *o, const char *prefix, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    size_t plen = strlen(prefix);
    const char *tail = strncmp(subject, prefix, plen) == 0 ? subject + plen : subject;
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    if (strcmp(tail, "adversary") == 0) { /* check 11: the forger's announcement */
        char hex[17];
        size_t n = len < 16 ? len : 16;
        memcpy(hex, data, n);
        hex[n] = '\0';
        (void)set_add(&o->forged, strtoull(hex, NULL, 16));
        o->forged_notes++;
        return;
    }
    if (o->adversary && o->forged.n > 0 && set_has(&o->forged, XXH64(data, len, 0))) {
        o->forged_heard++;
        fprintf(o->log, "%" PRIu64 " FORGED %.64s bytes=%zu\n", mono_us(), tail, len);
        return;
    }
    o->msgs++;
    o->recv_seq++;
    if (strcmp(tail, "map") == 0) {
        on_map(o, data, len);
        return;
    }
    aether_codec_limits lim = {.max_bytes = 0, .shard_count = 0, .cluster = o->cluster, .min_term = 0,
                               .stats = NULL};
    aether_codec_msg m;
    aether_err err = {0};
    aether_status st = aether_codec_decode(data, len, &lim, &m, &err);
    if (st != AETHER_OK) {
        o->refused++;
        violation(o, "a message on %.64s does not decode (%s): %s", tail, aether_status_str(st), err.msg);
        return;
    }
    switch (m.kind) {
    case AETHER_CODEC_EVENT:
        if (strncmp(tail, "evt.", 4) != 0 || strcmp(tail + 4, aether_event_type_name(m.u.event->type)) != 0)
            violation(o, "event %s on subject %.64s", aether_event_type_name(m.u.event->type), tail);
        if (set_add(&o->wire_events, XXH64(data, len, 0))) {
            on_event(o, m.u.event);
        } else {
            /* The same bytes again (the dup-event fault; a genuine event is
             * unique by its term and seq): the original was recorded. */
            o->event_replays++;
            o->events++;
            fprintf(o->log, "%" PRIu64 " EVENT-REPLAY %s term=%" PRIu64 " seq=%" PRIu64 " node=%s ts=%" PRIu64 "\n",
                    mono_us(), aether_event_type_name(m.u.event->type), m.u.event->term, m.u.event->seq,
                    m.u.event->node.str, m.u.event->ts_ms);
        }
        break;
    case AETHER_CODEC_HEARTBEAT:
        o->heartbeats++;
        break;
    case AETHER_CODEC_COMMAND:
        o->commands++;
        break;
    case AETHER_CODEC_RELEASE:
        o->releases++;
        break;
    case AETHER_CODEC_REPLY:
        break;
    }
    aether_codec_msg_fini(&m);
}

/* ---- the nodes' traces ---------------------------------------------------------- */

typedef struct trace_view {
    uint64_t last_map_version, last_map_term;
    char last_leader[AETHER_NODE_ID_LEN_MAX + 1];
    uint64_t last_leader_term;
    bool any;
    /* The shards the file's last process serves (ACQUIRE/RELEASE lines):
     * [OBS_SHARDS_MAX] bytes, NULL until its first ACQUIRE; trace_view_fini. */
    uint8_t *serving;
} trace_view;

static void trace_view_fini(trace_view *v)
{
    free(v->serving);
    v->serving = NULL;
}

static bool is_misfit(const obs *o, const char *id)
{
    for (uint32_t i = 0; i < o->n_misfits; i++) /* bounded: OBS_MISFITS_MAX */
        if (strcmp(o->misfits[i], id) == 0)
            return true;
    return false;
}

/* Reads DIR/<stem>.out (stem: a node id, or <id>@<k> for a twin process of
 * it); with `check`, runs checks 1, 3, 4, 9 and 10 on it. Only whole lines
 * count (a node may be writing the last one). 0, or -1 if unreadable. */
static uint64_t claim_key(const char *id, uint64_t gen, uint64_t term)
{
    char key[AETHER_NODE_ID_LEN_MAX + 48];
    int kl = snprintf(key, sizeof(key), "%" PRIu64 " %" PRIu64 " %s", gen, term, id);
    return XXH64(key, (size_t)(kl > 0 ? kl : 0), 0);
}

/* Check 11, first half: a LEADER line names its own process (a claim) or
 * another (a follow, judged in check_follows once every trace is read). */
static void note_follow(obs *o, const char *stem, const char *id, const char *leader, uint64_t gen, uint64_t term)
{
    if (strcmp(leader, id) == 0) {
        /* Also under generation 0: a follower that has not learned the
         * generation yet traces gen=0. */
        (void)set_add(&o->claims, claim_key(id, gen, term));
        (void)set_add(&o->claims, claim_key(id, 0, term));
        return;
    }
    char key[2 * AETHER_NODE_ID_LEN_MAX + 64];
    int kl = snprintf(key, sizeof(key), "%s %s", stem, leader);
    uint64_t k = claim_key(key, gen, term);
    (void)kl;
    if (o->n_follows >= OBS_FOLLOWS_MAX || !set_add(&o->follow_keys, k))
        return;
    if (o->n_follows % 1024 == 0) {
        follow_rec *grown = realloc(o->follows, (o->n_follows + 1024) * sizeof(*grown));
        if (grown == NULL)
            return; /* not judged: out of memory */
        o->follows = grown;
    }
    follow_rec *f = &o->follows[o->n_follows++];
    snprintf(f->stem, sizeof(f->stem), "%s", stem);
    snprintf(f->leader, sizeof(f->leader), "%s", leader);
    f->gen = gen;
    f->term = term;
}

/* Check 11, second half: every leader followed claimed that term itself. */
static void check_follows(obs *o)
{
    for (uint32_t i = 0; i < o->n_follows; i++) { /* bounded: OBS_FOLLOWS_MAX */
        const follow_rec *f = &o->follows[i];
        if (!set_has(&o->claims, claim_key(f->leader, f->gen, f->term)))
            violation(o, "%s followed %s as the leader of term %" PRIu64 " (generation %016" PRIx64
                         "), but no process of %s led that term: a forged claim believed",
                      f->stem, f->leader, f->term, f->gen, f->leader);
    }
}

static int trace_read(obs *o, const char *stem, bool check, trace_view *v)
{
    char path[4096], id[AETHER_NODE_ID_LEN_MAX + 1];
    snprintf(path, sizeof(path), "%s/%s.out", o->dir, stem);
    stem_id(stem, id, sizeof(id));
    FILE *f = fopen(path, "r");
    memset(v, 0, sizeof(*v));
    if (f == NULL)
        return -1;
    char line[OBS_LINE_MAX];
    uint64_t hi_term = 0;          /* per process: the highest term it knew */
    uint64_t map_v = 0, map_t = 0; /* over the file's processes (the id's lifetimes, in order) */
    uint64_t proc_map_t = 0;       /* per process: highest map term installed */
    uint64_t proc_gen = 0;         /* per process: the generation of its last LEADER line */
    uint64_t map_gen = 0;          /* the generation of its last MAP line */
    unsigned proc = 0;
    u64_set applied = {0};         /* per process: (term, seq, emitter) of events applied (check 10) */
    bool misfit = check && is_misfit(o, id);
    while (fgets(line, sizeof(line), f) != NULL) { /* bounded: the file */
        size_t l = strlen(line);
        if (l == 0 || line[l - 1] != '\n')
            break;
        line[l - 1] = '\0';
        if (strncmp(line, "# chaos start ", 14) == 0) {
            hi_term = 0;
            proc_gen = 0;
            proc_map_t = 0;
            set_clear(&applied);
            if (v->serving != NULL)
                memset(v->serving, 0, OBS_SHARDS_MAX);
            proc++;
            continue;
        }
        if (line[0] != 'T' || line[1] != ' ')
            continue;
        char *save = NULL, *tok[10] = {0};
        int nt = 0;
        for (char *p = strtok_r(line, " ", &save); p != NULL && nt < 10; p = strtok_r(NULL, " ", &save))
            tok[nt++] = p;
        if (nt < 4 || strcmp(tok[2], id) != 0)
            continue;
        uint64_t a = 0, b = 0;
        if (strcmp(tok[3], "MAP") == 0 && nt >= 6 && parse_u64(tok[4], 0, INT64_MAX, &a) == 0 &&
            parse_u64(tok[5], 0, INT64_MAX, &b) == 0) {
            uint64_t g = trace_gen(tok, nt, 6);
            if (g != map_gen) { /* versions and terms of maps count within a generation */
                map_gen = g;
                v->any = false;
                map_v = map_t = proc_map_t = 0;
            }
            if (check) {
                if (misfit)
                    violation(o, "admission: misfit %s installed map v%" PRIu64 " (term %" PRIu64
                                 ", process %u)", stem, a, b, proc);
                if (v->any && a < map_v)
                    violation(o, "%s's map version went backwards: installed v%" PRIu64 " after v%" PRIu64
                                 " (process %u)", stem, a, map_v, proc);
                if (b < proc_map_t)
                    violation(o, "%s installed map v%" PRIu64 " of term %" PRIu64
                                 " after a map of term %" PRIu64 " (process %u)", stem, a, b, proc_map_t, proc);
                char src[AETHER_NODE_ID_LEN_MAX + 8];
                snprintf(src, sizeof(src), "%s trace", stem);
                version_note(o, g, a, b, 0, src);
            }
            if (b > proc_map_t)
                proc_map_t = b;
            map_v = a;
            map_t = b;
            v->any = true;
            v->last_map_version = a;
            v->last_map_term = b;
        } else if ((strcmp(tok[3], "ACQUIRE") == 0 || strcmp(tok[3], "RELEASE") == 0) && nt >= 5 &&
                   parse_u64(tok[4], 0, OBS_SHARDS_MAX - 1, &a) == 0) {
            if (v->serving == NULL && (v->serving = calloc(OBS_SHARDS_MAX, 1)) == NULL) {
                fprintf(stderr, "aether-observer: out of memory\n");
                exit(1);
            }
            v->serving[a] = tok[3][0] == 'A';
        } else if (strcmp(tok[3], "LEADER") == 0 && nt >= 6 && parse_u64(tok[5], 0, INT64_MAX, &b) == 0) {
            uint64_t g = trace_gen(tok, nt, 6);
            if (g != proc_gen) {
                /* The node moved to another generation (it says so with a
                 * LEADER line before it takes any event of it): terms and
                 * (term, seq) start again. */
                proc_gen = g;
                hi_term = 0;
                set_clear(&applied);
            }
            if (check && strcmp(tok[4], "-") != 0) {
                char src[AETHER_NODE_ID_LEN_MAX + 24];
                snprintf(src, sizeof(src), "%s's trace", stem);
                term_leader(o, g, b, tok[4], src);
                if (o->adversary)
                    note_follow(o, stem, id, tok[4], g, b);
            }
            if (b > hi_term)
                hi_term = b;
            snprintf(v->last_leader, sizeof(v->last_leader), "%s", tok[4]);
            v->last_leader_term = b;
        } else if (strcmp(tok[3], "EVENT") == 0 && nt >= 7 && strncmp(tok[6], "term=", 5) == 0 &&
                   parse_u64(tok[6] + 5, 0, INT64_MAX, &b) == 0) {
            /* "EVENT <Type> <Type> term=T seq=S node=N ...". Its own events
             * (node=<id>) were stamped while it led: emitted, not accepted;
             * one may reach the trace after it learnt a newer term (the
             * callback runs on another actor's thread). */
            char own[AETHER_NODE_ID_LEN_MAX + 8];
            snprintf(own, sizeof(own), "node=%s", id);
            bool emitted = nt >= 9 && strcmp(tok[8], own) == 0;
            bool lost = strcmp(tok[4], "LeadershipLost") == 0;
            if (check && !emitted && !lost && b < hi_term)
                violation(o, "%s accepted %s of term %" PRIu64 " after it knew term %" PRIu64 " (process %u)",
                          stem, tok[4], b, hi_term, proc);
            uint64_t seq = 0;
            if (check && !emitted && !lost && nt >= 9 && strncmp(tok[7], "seq=", 4) == 0 &&
                parse_u64(tok[7] + 4, 1, INT64_MAX, &seq) == 0 && strncmp(tok[8], "node=", 5) == 0) {
                char key[OBS_LINE_MAX];
                int kl = snprintf(key, sizeof(key), "%" PRIu64 " %" PRIu64 " %s", b, seq, tok[8] + 5);
                if (kl > 0 && !set_add(&applied, XXH64(key, (size_t)kl, 0)))
                    violation(o, "%s applied %s term=%" PRIu64 " seq=%" PRIu64 " from %s twice (process %u): "
                                 "a duplicated event must be dropped",
                              stem, tok[4], b, seq, tok[8] + 5, proc);
            }
            if (b > hi_term)
                hi_term = b;
        }
    }
    (void)map_t;
    set_free(&applied);
    fclose(f);
    return 0;
}

/* The node ids with a trace file in DIR (malloc'd array of malloc'd names). */
static char **trace_ids(obs *o, size_t *count)
{
    *count = 0;
    DIR *d = opendir(o->dir);
    if (d == NULL)
        return NULL;
    char **ids = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && *count < OBS_NODES_MAX) { /* bounded */
        size_t l = strlen(de->d_name);
        if (l < 5 || l - 4 > AETHER_NODE_ID_LEN_MAX || strcmp(de->d_name + l - 4, ".out") != 0)
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            char **n = realloc(ids, cap * sizeof(*ids));
            if (n == NULL)
                break;
            ids = n;
        }
        ids[*count] = strndup(de->d_name, l - 4);
        if (ids[*count] != NULL)
            (*count)++;
    }
    closedir(d);
    return ids;
}

/* ---- settle (check 6) ------------------------------------------------------------ */

/* DIR/expect: the nodes that should be up, whitespace separated, each as
 * the stem of its present process's trace (its id, or <id>@<k> when that
 * process started as a twin). */
static char **expect_read(obs *o, size_t *count)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/expect", o->dir);
    *count = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char **ids = calloc(OBS_NODES_MAX, sizeof(*ids));
    char word[256];
    while (ids != NULL && *count < OBS_NODES_MAX && fscanf(f, "%255s", word) == 1) { /* bounded */
        aether_node_id tmp;
        aether_err err;
        char id[AETHER_NODE_ID_LEN_MAX + 1];
        stem_id(word, id, sizeof(id));
        if (aether_node_id_from_cstr(id, &tmp, &err) == AETHER_OK)
            ids[(*count)++] = strdup(word);
    }
    fclose(f);
    return ids;
}

static bool settled_now(obs *o, char **expect, size_t n_expect, char *why, size_t cap)
{
    const aether_shardmap *m = o->last;
    if (m == NULL) {
        snprintf(why, cap, "no map seen");
        return false;
    }
    uint32_t want = o->replication < n_expect ? o->replication : (uint32_t)n_expect;
    for (uint32_t s = 0; s < m->shard_count; s++) { /* bounded: shard_count */
        const aether_shard_entry *e = aether_shardmap_entry(m, s);
        if (e->state != AETHER_SHARD_STABLE) {
            snprintf(why, cap, "map v%" PRIu64 ": shard %u moving", m->version, s);
            return false;
        }
        if (e->owner_count != want) {
            snprintf(why, cap, "map v%" PRIu64 ": shard %u has %u owners, want min(R=%u, active=%zu)",
                     m->version, s, e->owner_count, o->replication, n_expect);
            return false;
        }
        const aether_node_index *ow = aether_shardmap_owners(m, s);
        for (uint32_t j = 0; j < e->owner_count; j++) {
            const char *id = aether_shardmap_node(m, ow[j])->str;
            bool ok = false;
            for (size_t k = 0; k < n_expect && !ok; k++) {
                char eid[AETHER_NODE_ID_LEN_MAX + 1];
                stem_id(expect[k], eid, sizeof(eid));
                ok = strcmp(eid, id) == 0;
            }
            if (!ok) {
                snprintf(why, cap, "map v%" PRIu64 ": shard %u owned by %s, which should be gone", m->version,
                         s, id);
                return false;
            }
        }
    }
    if (o->renew_map_version != m->version) {
        snprintf(why, cap, "leader %s (term %" PRIu64 ") renews with map v%" PRIu64 ", newest map v%" PRIu64,
                 o->renew_leader[0] ? o->renew_leader : "-", o->renew_term, o->renew_map_version, m->version);
        return false;
    }
    for (size_t k = 0; k < n_expect; k++) {
        trace_view v;
        bool ok = false;
        char eid[AETHER_NODE_ID_LEN_MAX + 1];
        stem_id(expect[k], eid, sizeof(eid));
        if (trace_read(o, expect[k], false, &v) != 0 || !v.any) {
            snprintf(why, cap, "%s has installed no map", expect[k]);
        } else if (v.last_map_version != m->version) {
            snprintf(why, cap, "%s is on map v%" PRIu64 ", the leader's is v%" PRIu64, expect[k],
                     v.last_map_version, m->version);
        } else if (strcmp(v.last_leader, o->renew_leader) != 0 || v.last_leader_term != o->renew_term) {
            snprintf(why, cap, "%s follows %s (term %" PRIu64 "), the leader is %s (term %" PRIu64 ")",
                     expect[k], v.last_leader, v.last_leader_term, o->renew_leader, o->renew_term);
        } else {
            /* Every shard served by its primary's present process, and by
             * nobody else (the trace's ACQUIRE/RELEASE lines): the map's
             * claim is what the processes do. */
            ok = true;
            for (uint32_t s = 0; ok && s < m->shard_count; s++) { /* bounded: shard_count */
                const aether_shard_entry *e = aether_shardmap_entry(m, s);
                bool mine = strcmp(aether_shardmap_node(m, e->primary)->str, eid) == 0;
                bool serves = v.serving != NULL && s < OBS_SHARDS_MAX && v.serving[s];
                if (mine && !serves)
                    snprintf(why, cap, "%s does not serve shard %u, its primary on map v%" PRIu64, expect[k], s,
                             m->version);
                else if (!mine && serves)
                    snprintf(why, cap, "%s serves shard %u, whose primary on map v%" PRIu64 " is %s", expect[k],
                             s, m->version, aether_shardmap_node(m, e->primary)->str);
                ok = mine == serves;
            }
        }
        trace_view_fini(&v);
        if (!ok)
            return false;
    }
    why[0] = '\0';
    return true;
}

/* ---- summary --------------------------------------------------------------------- */

static int cmp_term(const void *a, const void *b)
{
    const term_rec *x = a, *y = b;
    if (x->generation != y->generation)
        return x->generation < y->generation ? -1 : 1;
    return x->term < y->term ? -1 : x->term > y->term;
}

/* Check 2 over the terms heard on the wire. */
static void check_acting(obs *o)
{
    qsort(o->terms, o->n_terms, sizeof(*o->terms), cmp_term);
    const term_rec *prev = NULL;
    for (uint32_t i = 0; i < o->n_terms; i++) { /* bounded: n_terms */
        const term_rec *t = &o->terms[i];
        if (t->acts == 0)
            continue;
        if (prev != NULL && prev->generation == t->generation && prev->hi_ts >= t->lo_ts &&
            strcmp(prev->leader, t->leader) != 0)
            violation(o, "two leaders acting at once: %s (term %" PRIu64 ") acted until %" PRIu64
                         " ms, %s (term %" PRIu64 ") from %" PRIu64 " ms (wall clock, event ts)",
                      prev->leader, prev->term, prev->hi_ts, t->leader, t->term, t->lo_ts);
        prev = t;
    }
}

static void faults_read(obs *o, kind_rec *kinds, uint32_t *n_kinds, uint64_t *total)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/faults.log", o->dir);
    *n_kinds = 0;
    *total = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[OBS_LINE_MAX];
    while (fgets(line, sizeof(line), f) != NULL) { /* bounded: the file */
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "X ", 2) == 0) {
            violation(o, "process exit: %s", line + 2);
            continue;
        }
        if (strncmp(line, "S ", 2) == 0) {
            o->start_refusals++;
            continue;
        }
        char kind[32], id[AETHER_NODE_ID_LEN_MAX + 1];
        if (sscanf(line, "R %31s", kind) == 1) {
            o->misfits_refused += strcmp(kind, "misfit") == 0;
            o->superseded_exits += strcmp(kind, "twin") == 0;
            o->replays_done += strcmp(kind, "dup-event") == 0;
            continue;
        }
        if (sscanf(line, "F %31s", kind) != 1)
            continue;
        if (strcmp(kind, "misfit") == 0 && sscanf(line, "F misfit %64s", id) == 1 && !is_misfit(o, id) &&
            o->n_misfits < OBS_MISFITS_MAX)
            snprintf(o->misfits[o->n_misfits++], sizeof(o->misfits[0]), "%s", id);
        (*total)++;
        uint32_t i = 0;
        while (i < *n_kinds && strcmp(kinds[i].kind, kind) != 0)
            i++;
        if (i == *n_kinds) {
            if (*n_kinds >= OBS_KINDS_MAX)
                continue;
            snprintf(kinds[i].kind, sizeof(kinds[i].kind), "%s", kind);
            kinds[i].count = 0;
            (*n_kinds)++;
        }
        kinds[i].count++;
    }
    fclose(f);
}

static int finish(obs *o)
{
    kind_rec kinds[OBS_KINDS_MAX];
    uint32_t n_kinds = 0;
    uint64_t faults = 0;
    faults_read(o, kinds, &n_kinds, &faults); /* first: the traces' check 9 needs the misfits */
    size_t n_ids = 0;
    char **ids = trace_ids(o, &n_ids);
    for (size_t i = 0; i < n_ids; i++) {
        trace_view v;
        (void)trace_read(o, ids[i], true, &v);
        trace_view_fini(&v);
        free(ids[i]);
    }
    free(ids);
    if (o->adversary)
        check_follows(o);
    check_acting(o);
    for (uint32_t i = 0; i < o->n_misfits; i++) { /* check 9 on the wire */
        node_rec *n = node_get(o, o->misfits[i]);
        if (n != NULL && n->mapped_version != 0)
            violation(o, "admission: map v%" PRIu64 " names %s, a joiner with another shard count or "
                         "replication (it must be refused)", n->mapped_version, n->id);
    }
    if (o->settle_ran && !o->settled)
        violation(o, "not settled within %" PRIu64 " ms: %s", o->settle_ms, o->settle_why);

    uint64_t terms_elected = 0, terms_acting = 0;
    for (uint32_t i = 0; i < o->n_terms; i++) {
        terms_elected += o->terms[i].leader[0] != '\0';
        terms_acting += o->terms[i].acts != 0;
    }
    printf("== chaos summary (aether-observer)\n");
    printf("faults injected: %" PRIu64, faults);
    for (uint32_t i = 0; i < n_kinds; i++)
        printf("%s%s=%" PRIu64, i ? ", " : " (", kinds[i].kind, kinds[i].count);
    printf("%s\n", n_kinds ? ")" : "");
    printf("leader changes: %" PRIu64 " (terms with a known leader: %" PRIu64 ", terms acting on the wire: %" PRIu64 ")\n",
           terms_elected > 0 ? terms_elected - 1 : 0, terms_elected, terms_acting);
    printf("shards moved: %" PRIu64 " primary changes between consecutive maps; %" PRIu64
           " moves reported by RebalanceCompleted; %" PRIu64 " by ShardMigrated entries (%" PRIu64
           " shards assigned)\n",
           o->primaries_moved, o->rebalance_moved, o->migrated_moves, o->assigned_shards);
    printf("wire: %" PRIu64 " messages (%" PRIu64 " events, %" PRIu64 " maps (%" PRIu64 " versions, newest v%" PRIu64
           "), %" PRIu64 " heartbeats, %" PRIu64 " commands, %" PRIu64 " releases), %" PRIu64 " refused; "
           "%" PRIu64 " observer reconnects\n",
           o->msgs, o->events, o->maps, (uint64_t)o->n_versions, o->last ? o->last->version : 0, o->heartbeats,
           o->commands, o->releases, o->refused, o->reconnects);
    printf("single ownership: %" PRIu64 " map transitions judged, %" PRIu64
           " not judgeable (version gap, observer reconnect or lost events); %" PRIu64 " event seq gaps, %" PRIu64
           " stale map publications seen; %" PRIu64 " maps naming a departed node not judged (events lost since)\n",
           o->pairs_judged, o->pairs_unjudged, o->seq_gaps, o->map_stale, o->i3_unjudged);
    printf("traces: %zu trace files checked; %" PRIu64 " node starts refused while JetStream was unavailable "
           "(exit 1 before joining; restarted)\n", n_ids, o->start_refusals);
    printf("expected exits: %" PRIu64 " misfits refused (exit 2), %" PRIu64 " superseded processes (exit 3); "
           "%" PRIu64 " events replayed, %" PRIu64 " replayed copies heard\n",
           o->misfits_refused, o->superseded_exits, o->replays_done, o->event_replays);
    if (o->settle_ran)
        printf("settle: %s after %" PRIu64 " ms%s%s\n", o->settled ? "converged" : "NOT converged",
               o->settle_wait_ms, o->settled ? "" : ": ", o->settled ? "" : o->settle_why);
    else
        printf("settle: not run (stopped before the settle phase)\n");
    if (o->adversary)
        printf("adversary: %" PRIu64 " messages announced, %" PRIu64 " heard and left unjudged on the wire; "
               "%u leaders followed checked against the traces' own claims\n",
               o->forged_notes, o->forged_heard, o->n_follows);
    printf("violations: %" PRIu64 "\n", o->violations);
    fflush(stdout);
    return o->violations == 0 && (o->settle_ran ? o->settled : true) ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------------------- */

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    __atomic_add_fetch(&obs_epoch, 1, __ATOMIC_RELAXED);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    __atomic_add_fetch(&obs_epoch, 1, __ATOMIC_RELAXED);
}

static natsConnection *obs_connect(const obs *o)
{
    char *copy = strdup(o->urls);
    const char *servers[OBS_URLS_MAX];
    int count = 0;
    for (char *p = copy; p != NULL && count < OBS_URLS_MAX;) { /* bounded */
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0')
            servers[count++] = p;
        p = comma != NULL ? comma + 1 : NULL;
    }
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    natsStatus s = copy != NULL && count > 0 ? natsOptions_Create(&no) : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetServers(no, servers, count);
    if (s == NATS_OK)
        s = natsOptions_SetName(no, "aether-observer");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 100);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(no, 0); /* publishes nothing anyway */
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(no, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(no, on_reconnected, NULL);
    uint64_t t0 = mono_us();
    while (s == NATS_OK) { /* bounded: 10 s */
        s = natsConnection_Connect(&nc, no);
        if (s == NATS_OK || obs_stop || mono_us() - t0 >= 10000000u)
            break;
        sleep_ms(200);
        s = NATS_OK;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "aether-observer: cannot connect to %s: %s\n", o->urls, natsStatus_GetText(s));
        nc = NULL;
    }
    natsOptions_Destroy(no);
    free(copy);
    return nc;
}

static int usage(const char *msg)
{
    fprintf(stderr, "aether-observer: %s\n"
                    "usage: aether-observer --nats URL[,URL...] --cluster C --dir DIR [--replication R]\n"
                    "                       [--settle-ms N] [--duration S] [--adversary]\n"
                    "       aether-observer --version\n"
                    "Records and checks a live cluster (see the comment atop tools/aether-observer.c);\n"
                    "SIGUSR1 starts the settle check (DIR/expect), SIGTERM ends without it.\n",
            msg);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    obs o = {.cluster = NULL, .replication = 1, .settle_ms = OBS_SETTLE_MS_DEFAULT,
             .duration_s = OBS_DURATION_S_DEFAULT};
    enum { OPT_NATS = 1, OPT_CLUSTER, OPT_DIR, OPT_REPL, OPT_SETTLE, OPT_DURATION, OPT_HELP, OPT_ADVERSARY,
           OPT_VERSION };
    static const struct option opts[] = {
        {"nats", required_argument, NULL, OPT_NATS},         {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"dir", required_argument, NULL, OPT_DIR},           {"replication", required_argument, NULL, OPT_REPL},
        {"settle-ms", required_argument, NULL, OPT_SETTLE}, {"duration", required_argument, NULL, OPT_DURATION},
        {"help", no_argument, NULL, OPT_HELP},               {"adversary", no_argument, NULL, OPT_ADVERSARY},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t v = 0;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case OPT_NATS: o.urls = optarg; break;
        case OPT_CLUSTER: o.cluster = optarg; break;
        case OPT_DIR: o.dir = optarg; break;
        case OPT_ADVERSARY: o.adversary = true; break;
        case OPT_REPL:
            if (parse_u64(optarg, 1, AETHER_REPLICATION_MAX, &v) != 0)
                return usage("--replication: an integer 1..7");
            o.replication = (uint32_t)v;
            break;
        case OPT_SETTLE:
            if (parse_u64(optarg, 0, 3600000, &o.settle_ms) != 0)
                return usage("--settle-ms: an integer 0..3600000");
            break;
        case OPT_DURATION:
            if (parse_u64(optarg, 1, 86400, &o.duration_s) != 0)
                return usage("--duration: an integer 1..86400");
            break;
        case OPT_HELP:
        case 'h':
            usage("help");
            return 0;
        case OPT_VERSION:
        case 'V':
            printf("aether-observer %s%s%s%s\n", AETHER_VERSION_STRING, AETHER_GIT_REVISION[0] ? " (git " : "",
                   AETHER_GIT_REVISION, AETHER_GIT_REVISION[0] ? ")" : "");
            return 0;
        default:
            return usage("unknown option");
        }
    }
    if (optind != argc)
        return usage("unexpected argument");
    if (o.urls == NULL || o.cluster == NULL || o.dir == NULL)
        return usage("--nats, --cluster and --dir are required");
    aether_err err;
    if (aether_cluster_name_validate(o.cluster, &err) != AETHER_OK)
        return usage(err.msg);

    char path[4096];
    snprintf(path, sizeof(path), "%s/observer.log", o.dir);
    o.log = fopen(path, "a");
    o.terms = calloc(OBS_TERMS_MAX, sizeof(*o.terms));
    o.versions = calloc(OBS_VERSIONS_MAX, sizeof(*o.versions));
    o.nodes = calloc(OBS_NODES_MAX, sizeof(*o.nodes));
    if (o.log == NULL || o.terms == NULL || o.versions == NULL || o.nodes == NULL) {
        fprintf(stderr, "aether-observer: cannot open %s or out of memory\n", path);
        return 1;
    }
    setvbuf(o.log, NULL, _IOLBF, 0);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_settle;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    natsConnection *nc = obs_connect(&o);
    if (nc == NULL)
        return 1;
    char subject[128], prefix[128];
    snprintf(prefix, sizeof(prefix), "aether.%s.", o.cluster);
    snprintf(subject, sizeof(subject), "aether.%s.>", o.cluster);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sub, nc, subject);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 2000);
    if (s != NATS_OK) {
        fprintf(stderr, "aether-observer: subscribe %s: %s\n", subject, natsStatus_GetText(s));
        natsSubscription_Destroy(sub);
        natsConnection_Destroy(nc);
        return 1;
    }
    printf("observing %s\n", subject);
    fflush(stdout);

    uint64_t t0 = mono_us(), settle_t0 = 0, next_look = 0;
    char **expect = NULL;
    size_t n_expect = 0;
    int seen_epoch = 0;
    while (!obs_stop && mono_us() - t0 < o.duration_s * 1000000u) { /* bounded: --duration */
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, OBS_POLL_MS);
        if (s == NATS_OK) {
            on_msg(&o, prefix, msg);
            natsMsg_Destroy(msg);
        } else if (s != NATS_TIMEOUT) {
            sleep_ms(OBS_POLL_MS); /* disconnected: the subscription resumes on reconnect */
        }
        int ep = __atomic_load_n(&obs_epoch, __ATOMIC_RELAXED);
        if (ep != seen_epoch) {
            o.reconnects += (uint64_t)(ep - seen_epoch) / 2u + (uint64_t)(ep - seen_epoch) % 2u;
            seen_epoch = ep;
        }
        if (obs_settle && !o.settle_ran) {
            o.settle_ran = true;
            settle_t0 = mono_us();
            expect = expect_read(&o, &n_expect);
            if (expect == NULL || n_expect == 0) {
                snprintf(o.settle_why, sizeof(o.settle_why), "%s/expect lists no node", o.dir);
                break;
            }
            printf("settling: expecting %zu nodes\n", n_expect);
            fflush(stdout);
        }
        if (o.settle_ran && mono_us() >= next_look) {
            next_look = mono_us() + OBS_SETTLE_POLL_MS * 1000u;
            o.settle_wait_ms = (mono_us() - settle_t0) / 1000u;
            if (settled_now(&o, expect, n_expect, o.settle_why, sizeof(o.settle_why))) {
                o.settled = true;
                break;
            }
            if (o.settle_wait_ms >= o.settle_ms)
                break;
        }
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    int rc = finish(&o);
    for (size_t i = 0; i < n_expect; i++)
        free(expect[i]);
    free(expect);
    aether_shardmap_destroy(o.last);
    set_free(&o.wire_events);
    set_free(&o.forged);
    set_free(&o.claims);
    set_free(&o.follow_keys);
    free(o.follows);
    free(o.primary_seq);
    free(o.primary_epoch);
    free(o.terms);
    free(o.versions);
    free(o.nodes);
    fclose(o.log);
    return rc;
}
