/* SPDX-License-Identifier: Apache-2.0 */
/*
 * invariants.h: the domain invariants of DESIGN 2, in one place (actors
 * layer). The product calls them before it publishes a ShardMap or acts on
 * a lease; every test and the simulator use the same functions as their
 * oracle.
 *
 *  I1 at most one leader per term       -> aether_term_registry (an observer
 *                                           records every LeaderElected)
 *  I2 every shard has a primary while a node is healthy
 *  I3 owners are healthy and distinct; distinct zones when enough zones
 *                                        -> aether_invariants_check_map
 *  I4 assignments change only after a topology change or an explicit
 *     rebalance; a change of leader alone moves nothing
 *                                        -> aether_invariants_check_stable
 *  I5 the leader is an Active node      -> aether_invariants_check_leader
 *  single ownership: no shard is actively served by two nodes
 *                                        -> aether_invariants_check_claims
 *  announced departures: a leader publishes no map of its term naming as
 *     owner a node whose NodeFailed/NodeLeft it announced in that term,
 *     unless a NodeJoined of the node was announced since (the order of
 *     member_internal.h, "The leader's two commit points")
 *                                        -> aether_departures_check_map
 *
 * What a harness sees of a running cluster (the simulator, the scenario
 * tests, the bench harness, the demo, the integration probe) is a set of
 * per-process views (aether_oracle_view). On those:
 *  I1 at one instant: at most one process may act as leader
 *                                        -> aether_invariants_check_one_leader
 *  settled: one leader, Active in its own topology (I5); every process where
 *     the harness expects it in that topology; every shard stable with
 *     min(R, Active) owners, all Active and running (I2/I3); each shard
 *     served by its primary and by nobody else; every process on the
 *     leader's map version  -> aether_invariants_check_settled
 *  balance within the strategy's bound: primaries (and all owners) per
 *     Active node differ by at most one
 *                                        -> aether_invariants_check_balance
 *  progress: a node's map version and term never go back
 *                                        -> aether_invariants_check_progress
 * A check the product grows (say, a map naming a node already announced
 * Failed or Left) is one more function here with a test in
 * tests/unit/test_invariants.c that fails on a violating input.
 *
 * Each check returns AETHER_OK or AETHER_ESTATE with err naming the first
 * violation ("I2: shard 17 has no primary"). Pure functions of their
 * arguments; any thread; the registry is owned by one thread.
 */
#ifndef AETHER_INVARIANTS_H
#define AETHER_INVARIANTS_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "node_id.h"
#include "shardmap.h"
#include "status.h"
#include "topology.h"

/* I2 and I3 of map against topo; also: a moving shard's target is Active. */
aether_status aether_invariants_check_map(const aether_shardmap *map, const aether_topology *topo,
                                          aether_err *err);

/* I5: leader is a known Active node of topo. */
aether_status aether_invariants_check_leader(const aether_topology *topo,
                                             const aether_node_id *leader, aether_err *err);

/* I4: with neither a topology change nor an explicit rebalance since old,
 * next assigns every shard the same owners as old. */
aether_status aether_invariants_check_stable(const aether_shardmap *old, const aether_shardmap *next,
                                             bool topology_changed, bool explicit_rebalance,
                                             aether_err *err);

/* Single ownership: claims[i] lists the shards node i serves right now;
 * no shard may appear under two nodes. */
typedef struct aether_ownership_claim {
    aether_node_id node;
    const uint32_t *shards;
    uint32_t count;
} aether_ownership_claim;

aether_status aether_invariants_check_claims(uint32_t shard_count,
                                             const aether_ownership_claim *claims,
                                             uint32_t n_claims, aether_err *err);

/* I1 oracle: the leader seen for each (generation, term). Terms repeat
 * when both stores are lost (lease.h, GENERATION); the pair never does, so
 * that is what one leader per term means. Generation 0 = not said (an
 * emitter from before generations): a generation of its own here. */
typedef struct aether_term_registry {
    struct aether_term_entry {
        uint64_t generation;
        aether_term term;
        aether_node_id leader;
    } *entries;          /* ascending by (generation, term) */
    uint32_t count, cap;
} aether_term_registry;

void aether_term_registry_init(aether_term_registry *r);
void aether_term_registry_fini(aether_term_registry *r);
/* AETHER_ESTATE (I1) if another leader was already recorded for
 * (generation, term); AETHER_ENOMEM if it cannot grow. */
aether_status aether_term_registry_record(aether_term_registry *r, uint64_t generation,
                                          aether_term term, const aether_node_id *leader,
                                          aether_err *err);

/* Announced departures, noted in the order events and maps were published
 * (one observer thread, or under the lock that orders the publications):
 * a NodeFailed/NodeLeft adds (node, emitter, term); a NodeJoined of the
 * node, from anyone, removes the node's entries. Owned by one thread. */
typedef struct aether_departures {
    struct aether_departure {
        aether_node_id node;
        aether_node_id emitter;
        aether_term term;
    } *entries;
    uint32_t count, cap;
} aether_departures;

void aether_departures_init(aether_departures *d);
void aether_departures_fini(aether_departures *d);
/* Notes e (other types: nothing). AETHER_ENOMEM if it cannot grow. */
aether_status aether_departures_note(aether_departures *d, const aether_event *e);
/* map, just published by `from`: AETHER_ESTATE if it names as owner a node
 * whose departure `from` announced in map's term (and nobody revived). */
aether_status aether_departures_check_map(const aether_departures *d, const aether_node_id *from,
                                          const aether_shardmap *map, aether_err *err);
/* ---- a running cluster, as a harness sees it ---------------------------------- */

/* What the harness expects of a process's record in the leader's topology
 * once settled. */
typedef enum aether_oracle_expect {
    AETHER_EXPECT_ANY = 0,          /* nothing (the harness does not track it) */
    AETHER_EXPECT_ACTIVE,           /* running: Active */
    AETHER_EXPECT_LEFT,             /* drained: Left */
    AETHER_EXPECT_LEFT_OR_FORGOTTEN,/* drained and told it left: Left or dropped */
    AETHER_EXPECT_DOWN,             /* stopped: not healthy (absent, Failed or Left) */
} aether_oracle_expect;

/* One process. A node id may have two processes (a twin); name tells them
 * apart in messages. */
typedef struct aether_oracle_view {
    const char *name;            /* the harness's name for the process */
    const char *node;            /* its node id */
    bool running;                /* a process runs (paused or not) */
    bool frozen;                 /* paused: its view is stale, exempt from version agreement */
    bool is_leader;              /* it acts as leader now (by its own view) */
    bool may_serve;              /* aether_member_may_serve */
    bool incompatible;           /* cannot serve this cluster: must serve nothing, installs
                                    none of its maps */
    uint64_t map_version;        /* installed */
    const uint8_t *serving;      /* [shard_count]: nonzero = serving now; NULL = nothing */
    uint32_t serving_count;
    aether_oracle_expect expect;
} aether_oracle_view;

/* I1 at an instant: at most one view with is_leader (frozen ones count: a
 * paused leader acts the moment it resumes). */
aether_status aether_invariants_check_one_leader(const aether_oracle_view *views, uint32_t n,
                                                 aether_err *err);

typedef struct aether_settled_input {
    const aether_oracle_view *views;
    uint32_t n_views;
    uint32_t leader;             /* index of the leader's view (aether_invariants_leader) */
    const aether_shardmap *map;  /* the leader's installed map (NULL: none yet) */
    const aether_topology *topo; /* the leader's topology (NULL: it has none) */
    uint32_t replication;
    /* The leader's rebalance brake is engaged (DESIGN "Rebalance brake"):
     * only I2 is restored meanwhile, so a shard needs one owner, not
     * min(R, Active). A harness that waits the brake out passes false. */
    bool brake_engaged;
    /* The harness cannot see what each process serves (a script reading
     * the stored map and the nodes' traces): the checks of who serves what
     * are left out, the rest holds. */
    bool serving_unobserved;
    /* Optional, [map->shard_count]: how many views serve each shard (a
     * harness that keeps the count saves a scan of every view). */
    const uint16_t *holders;
} aether_settled_input;

/* The view of the one process acting as leader: AETHER_OK and *leader, or
 * AETHER_ESTATE "no leader" / "two nodes act as leader: a and b". Frozen
 * views are skipped. */
aether_status aether_invariants_leader(const aether_oracle_view *views, uint32_t n,
                                       uint32_t *leader, aether_err *err);

/* Every running, unfrozen, compatible view on one map version, and a
 * version at all: AETHER_OK and *version, or AETHER_ESTATE "x has no map
 * yet" / "x on map v3, others on v2" / "no live node". The part of settled a
 * harness that sees only versions (the bench harness, reading traces) can
 * check. */
aether_status aether_invariants_check_one_version(const aether_oracle_view *views, uint32_t n,
                                                  uint64_t *version, aether_err *err);

/* The settled predicate (DESIGN 2, section 4 of tools/aether-sim.c):
 * AETHER_OK, or AETHER_ESTATE with the first thing that is not settled yet. */
aether_status aether_invariants_check_settled(const aether_settled_input *in, aether_err *err);

/* Balance within the default strategy's bound: over the Active nodes of
 * topo, primaries per node and owned shards per node each differ by at most
 * one. */
aether_status aether_invariants_check_balance(const aether_shardmap *map, const aether_topology *topo,
                                              aether_err *err);

/* A node's map version or term never goes back within one generation:
 * what ("map version", "term") of name went from before to now. */
aether_status aether_invariants_check_progress(const char *name, const char *what, uint64_t before,
                                               uint64_t now, aether_err *err);

#endif
