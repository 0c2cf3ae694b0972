/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_adversary.h: the simulator's forgers (tests layer, aether-sim's fault
 * kinds `forge` and `adversary`; docs/testing.md, "The adversary").
 *
 * Both publish on the simulated network (transport/inproc.h) through hub
 * endpoints that are no member:
 *  - forge (issue 12, item 3): "forger" impersonates the present leader: a
 *    NodeFailed of a live follower with a seq far from the term's, and a map
 *    of the present term 1000 versions ahead giving that follower every
 *    shard (sim_adversary_forge_present; aether-sim picks who);
 *  - adversary (issue 13, item 6): "adversary" listens to every broadcast
 *    like any subscriber (its own publications left out) and feeds what it
 *    hears to the generator of tests/sim/adversary.h; each act makes one
 *    message, as bytes, and hands it to the members exactly as a NATS
 *    transport that received those bytes would (transport/nats_transport.c):
 *    decoded by the product's decoders (codec, shardmap_json) under the
 *    cluster's limits, dropped if they refuse it, else published as an
 *    event, a map or a heartbeat, or sent as a command to whoever serves
 *    commands (the reply is counted).
 * Threading: the step executor's thread (the simulator's only one).
 */
#ifndef AETHER_SIM_ADVERSARY_H
#define AETHER_SIM_ADVERSARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "inproc.h"
#include "status.h"

typedef struct sim_adversary sim_adversary;

/* listen: create the "adversary" endpoint and bind it now (before the
 * members start, to hear the boot); false for forge alone. terms: the
 * cluster's admission terms, for forged joins. Aborts on ENOMEM. */
sim_adversary *sim_adversary_create(aether_inproc_hub *hub, const char *cluster, uint64_t seed,
                                    uint32_t without, const aether_admission *terms, bool listen);
void sim_adversary_destroy(sim_adversary *a); /* NULL is fine; before the hub */

/* One message of the adversary, at simulated wall time wall_ms. line: what
 * it was and what became of it, for the trace. */
void sim_adversary_act(sim_adversary *a, uint64_t wall_ms, char *line, size_t cap);

/* The forge kind: NodeFailed of victim and a map giving it every shard, in
 * the name of leader at term, map_version + 1000. far_term (the forge-term
 * kind, issue 13 item 2): also a LeaderElected in the forger's own name of a
 * term far ahead (term + 1000, or 2^63 - 1 every other time), announcing
 * ttl_ms. line: for the trace. */
void sim_adversary_forge_present(sim_adversary *a, const aether_node_id *leader, aether_term term,
                                 uint64_t map_version, const aether_node_id *victim, uint32_t shards,
                                 bool far_term, uint32_t ttl_ms, char *line, size_t cap);

/* "adversary: F forged, R replayed, M malformed (D refused by the
 * decoders), commands answered: OK n, ..." or "" when it made nothing. */
void sim_adversary_summary(const sim_adversary *a, char *buf, size_t cap);

#endif
