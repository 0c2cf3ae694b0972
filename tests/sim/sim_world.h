/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_world.h: deterministic simulation of a whole Aether cluster (tests
 * layer, the simulation library of tests/sim/), in the spirit of
 * FoundationDB's simulator and TigerBeetle's VOPR. tools/aether-sim.c is
 * its command-line front end:
 *
 *   aether-sim --seed S --nodes N --duration SIM_SECONDS [fault options]
 *   aether-sim --soak --seed S          (N, shards, faults... derived from S)
 *
 * N members run the real domain code (actors/member.h) on the step executor
 * (engine/exec_step.h): one thread, a simulated clock, a seeded choice of
 * the next actor. Around them:
 *  - the network is an in-process hub in simulated-network mode
 *    (transport/inproc.h): per-delivery delay, loss, duplication and
 *    reordering drawn from a seed, symmetric and one-way partitions between
 *    groups, isolated nodes;
 *  - the lease and state stores are in-memory JetStream-like buckets
 *    (actors/kv_store.h) that every node reaches through its own proxy, which
 *    injects the store faults: unavailable (store outage, or this node cut
 *    off from it), unknown outcome (applied or not), slow (the call takes
 *    simulated time: the whole simulated world waits, as it would for a
 *    blocking call on one thread), and late (reported unknown, applied some
 *    time later, like a publish that was still in flight at the timeout);
 *  - every node reads its own drifting clock (engine/clock.h), within the
 *    bound the configuration allows (lease_safety_margin_ms / lease_ttl_ms
 *    and fence_margin_ms / failure_timeout_ms);
 *  - a fault schedule drawn from the seed crashes and restarts nodes (new
 *    incarnation), pauses them (longer than the ttl too), partitions them,
 *    cuts them off the stores, joins new nodes and drains others; on
 *    request (--faults ...,twin: not part of --all-faults or --soak, whose
 *    seeds keep their schedules) it starts a second process of a live node
 *    id (a restarted pod overlapping the old one). A process that learns it
 *    is superseded exits, as aether-node does; until then the oracle counts
 *    its shards like anyone's;
 *  - on request (--extra-faults forge,adversary), someone who can publish on
 *    the cluster's subjects: the present leader impersonated (forge), or an
 *    adversary that hears the network and sends forged, replayed and
 *    malformed events, maps, heartbeats and commands through the product's
 *    decoders (tests/sim/sim_adversary.h, tests/sim/adversary.h).
 * Options and fault kinds: tests/sim/sim_opts.h. The files: sim_internal.h.
 *
 * DESIGN
 *  1. Boot: every node starts at t=0; the cluster must settle (see 4)
 *     within --settle seconds.
 *  2. Chaos for --duration simulated seconds. After every executor step
 *     the oracle checks, with the same functions the product uses
 *     (actors/invariants.h) where they apply:
 *       I1  at most one leader per term (a registry of every LeaderElected)
 *           and at most one node that may act as leader at any instant
 *           (paused nodes included: they would act the moment they resume);
 *       single ownership: no shard held by two nodes that both may serve
 *           (checked when a node acquires, and whenever a node that holds
 *           shards regains the right to serve);
 *       I2/I3 of every map a leader publishes, when it publishes it (the
 *           hub's map tap), against the topology it was computed from (the
 *           leader's, or the stored one at a take-over);
 *       I5  a leader that is not Active in its own topology while another
 *           Active node exists for longer than failure_timeout_ms (not
 *           counting time it is paused or isolated, cannot reach the state
 *           store, or a slow store call stalled the world);
 *       and: each node's map version and term never go back, no node
 *           installs a map of an older term than one it installed, each
 *           leader numbers its events 1, 2, 3... per term.
 *     With more than 64 nodes the checks that scan every node run every
 *     simulated millisecond instead of every step (the per-node view checks
 *     every 10 ms).
 *  3. Heal: the network is clean again (delay only), partitions and
 *     isolations end, paused nodes resume, store faults stop, about half of
 *     the crashed nodes restart.
 *  4. Liveness: within bounds there must be one leader, Active in its own
 *     topology; every shard stable with an Active live primary that serves
 *     it, nobody else serving it, min(R, Active) owners; every live node on
 *     the leader's map version and allowed to serve; every drained node Left
 *     (the oracle's settled predicate, aether_invariants_check_settled).
 *  5. Balance, then I4: the map must become balanced within the strategy's
 *     bound (aether_invariants_check_balance; once a
 *     brake has run out); then the leader is cut off from the stores until
 *     it loses the lease; once a new leader has settled, no shard may have
 *     moved.
 * On a violation it prints the seed, the parameters, a replay command and
 * the last --tail lines of the trace (faults, every event the leaders and
 * nodes emit except lease renewals, domain warnings), and exits 1. The same
 * arguments give the same output byte for byte: nothing in it comes from
 * the real clock, addresses or hash order.
 *
 * Threading: one thread (the step executor's).
 */
#ifndef AETHER_SIM_WORLD_H
#define AETHER_SIM_WORLD_H

#include "sim_opts.h"

typedef struct sim_world sim_world;

/* The world o describes (sim_parse_args filled it), built and booting at
 * t=0; prints the parameters line on stdout. NULL: out of memory. Sets the
 * process's log sink and clock to the world's until sim_world_destroy. */
sim_world *sim_world_create(const opts *o);
/* Runs steps 1-5 above: 0 when every check held, 1 on the first violation. */
int sim_world_run(sim_world *w);
/* Prints the verdict on stdout: the PASS summary, or the FAIL with the
 * replay command and the last --tail trace lines. */
void sim_world_report(sim_world *w);
/* Tears everything down (no leaks under ASan). NULL does nothing. */
void sim_world_destroy(sim_world *w);

#endif
