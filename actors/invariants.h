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

#endif
