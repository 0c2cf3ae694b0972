/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_internal.h: the internal umbrella header of libaether, for the
 * programs of this tree (tools/, bench/, tests/) that use the internals.
 * Not installed: embedders include the public <aether/aether.h>
 * (transport/aether.h), which this one includes too.
 *
 * It sits in the top library layer (transport/) because it includes every
 * layer below: the engine (actors, executors, snapshots, bus, metrics,
 * logging), the domain (value objects, ShardMap, lookups, the embedding API
 * of a cluster node) and the transports.
 *
 * To embed a node: create an executor (aether_pool_create, or
 * aether_step_create for deterministic tests), a transport endpoint (the
 * in-process hub: aether_inproc_endpoint_create), the lease and state stores
 * (aether_kv_mem_create), then aether_member_start with an aether_config
 * (aether_config_defaults first). Route with aether_route_key on
 * aether_member_slot(member), from any thread, lock-free. See member.h for
 * who may call what from which thread, and docs/ for the protocols.
 */
#ifndef AETHER_INTERNAL_H
#define AETHER_INTERNAL_H

#include "aether.h"

#include "actor.h"
#include "assertion.h"
#include "bus.h"
#include "clock.h"
#include "exec_pool.h"
#include "exec_step.h"
#include "executor.h"
#include "log.h"
#include "mailbox.h"
#include "metrics.h"
#include "ref.h"
#include "rng.h"
#include "snapshot.h"
#include "status.h"

#include "config.h"
#include "events.h"
#include "invariants.h"
#include "keyhash.h"
#include "kv_store.h"
#include "lease.h"
#include "member.h"
#include "node.h"
#include "node_id.h"
#include "policies.h"
#include "routing.h"
#include "shardmap.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"
#include "strategy.h"
#include "topology.h"
#include "topology_json.h"
#include "transport.h"

#include "codec.h"
#include "inproc.h"
#include "nats_kv.h"
#include "nats_conn.h"
#include "nats_transport.h"
#include "settings.h"

#include "aether_node_hooks.h"

#endif
