/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_cluster.h: N members in one process on the step executor, the
 * in-process hub and in-memory stores, scripted by a test (tests layer,
 * the simulation library of tests/sim/; the seeded world with its fault
 * schedule is sim_world.h). The oracle is actors/invariants.h: the same
 * functions aether-sim, the demo and the bench harness call.
 *
 * Every member's shard callbacks feed one ownership table: an acquisition of
 * a shard another live, unpaused node still serves is a single-ownership
 * violation. Every LeaderElected feeds a term registry (I1). run() advances
 * simulated time 1 ms at a time and checks after each millisecond that at
 * most one live node may act as leader (aether_invariants_check_one_leader)
 * and that no node's map version goes back (_check_progress).
 *
 * Threading: one thread (the step executor's).
 */
#ifndef AETHER_SIM_CLUSTER_H
#define AETHER_SIM_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "member.h"

#define SIM_CLUSTER_NODES_MAX 64

typedef struct sim_cluster sim_cluster;

typedef struct sim_options {
    uint64_t seed;
    uint32_t shard_count;  /* 0 = 64 (tests stay fast) */
    uint32_t replication;  /* 0 = 1 */
    const aether_config *base; /* optional: timings etc.; node/zone are set per node */
} sim_options;

sim_cluster *sim_cluster_create(const sim_options *o);
void sim_cluster_destroy(sim_cluster *c);

/* Starts a node (again: a restart with a new incarnation). */
aether_member *sim_add(sim_cluster *c, const char *id, const char *zone);
/* The same with this node's own configuration (node and zone are set from
 * id and zone; the rest is cfg's): a misconfigured joiner, say another
 * shard_count. NULL cfg = the cluster's base. */
aether_member *sim_add_config(sim_cluster *c, const char *id, const char *zone,
                              const aether_config *cfg);
/* The cluster's base configuration (what sim_add gives every node). */
const aether_config *sim_base_config(sim_cluster *c);
/* A second process of node id `id` beside the running one (a restarted pod
 * overlapping the old one), known to the harness as `name` (use it for
 * sim_crash, sim_member, sim_serving...). Its shards count against every
 * other process's, the original's included. */
aether_member *sim_add_twin(sim_cluster *c, const char *name, const char *id);
void sim_crash(sim_cluster *c, const char *id);         /* kill -9 */
void sim_pause(sim_cluster *c, const char *id, bool on); /* SIGSTOP / SIGCONT: frozen and cut off */
/* Freezes (or thaws) a process's actors only: its transport still takes
 * messages into their mailboxes (a process descheduled for a while, or
 * one whose other processes' traffic must not be cut: a twin's id). */
void sim_freeze(sim_cluster *c, const char *name, bool on);
void sim_drain(sim_cluster *c, const char *id);
void sim_isolate(sim_cluster *c, const char *id, bool on);
void sim_run_ms(sim_cluster *c, uint64_t ms);
uint64_t sim_now_ms(sim_cluster *c);

aether_member *sim_member(sim_cluster *c, const char *id); /* NULL if not running */
/* The live (running, unpaused) node that may lead now, or NULL. */
const char *sim_leader(sim_cluster *c);
uint32_t sim_live_count(sim_cluster *c);

/* The settled predicate of the oracle (aether_invariants_check_settled):
 * one live leader, Active in its topology; every shard stable with min(R,
 * Active) owners (one while the leader's brake is engaged), all Active and
 * running, served by its primary and nobody else; every live node on the
 * leader's map version (but a node that cannot serve the cluster,
 * aether_member_view.incompatible, which must serve nothing). A process
 * superseded by a newer one of its id counts as stopped. 0 on success, else
 * writes why. */
int sim_settled(sim_cluster *c, char *why, size_t cap);
/* Violations seen so far (two leaders at once, I1, double ownership). */
uint32_t sim_violations(sim_cluster *c, char *first, size_t cap);
/* Shards currently served by node id. */
uint32_t sim_serving(sim_cluster *c, const char *id);
/* Events seen of a type, over all nodes' on_event, counted once per emitter+seq;
 * a ShardAssigned or ShardMigrated counts its entries (shards). */
uint32_t sim_event_count(sim_cluster *c, aether_event_type type);
/* The same, counting events (a batch counts once). */
uint32_t sim_event_msg_count(sim_cluster *c, aether_event_type type);
/* The envelope term of the last such event counted (0: none yet). */
aether_term sim_event_last_term(sim_cluster *c, aether_event_type type);
/* The newest event of a type, as aether_event_format prints it ("" if none). */
const char *sim_last_event(sim_cluster *c, aether_event_type type);
aether_executor *sim_executor(sim_cluster *c);
aether_kv *sim_lease_kv(sim_cluster *c);
aether_kv *sim_state_kv(sim_cluster *c);
aether_metrics *sim_metrics(sim_cluster *c);
/* An endpoint on the cluster's hub that is no member (a client, a CLI). */
aether_transport *sim_client(sim_cluster *c, const char *id);
/* Per shard: how many ShardMigrated events named it (moves it took). */
uint32_t sim_moves_of(sim_cluster *c, uint32_t shard);

#endif
