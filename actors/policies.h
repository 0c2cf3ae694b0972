/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policies.h: the event-driven policies of DESIGN 2 as one table (actors
 * layer).
 *
 * A policy is "when this happens, do that". A row says, for one event type,
 * which node reacts (the node that may lead or any node, about itself or
 * any node) and the reaction. The actors ask aether_policy_says before they
 * react to an event (member_lease.c on_event: policies 3 and 9;
 * member_assign.c on_event: 5, 6, 7, 8 and 10), so the table is what runs,
 * not a comment: changing a row changes behaviour, and test_policies.c
 * (the rows) and test_cluster.c (their effect) fail.
 *
 * Only rows something reads have a place (issue 14, item 5). Policies
 * driven by a timer or a command, not by an event, have none: a row no
 * dispatch consults would be a comment that looks like code. They are
 * implemented, and tested, where they run:
 *  1. single leader: member_lease.c campaign (the atomic create of the
 *     lease key, lease.c);
 *  2. lease renewal: member_lease.c renew (MSG_TICK_RENEW, every ttl/4);
 *  4. failure detection: member_detect.c detect_tick_failcheck
 *     (MSG_TICK_FAILCHECK);
 *  7, second half (a draining node that owns no shard -> NodeLeft):
 *     member_assign.c notify_drained -> MSG_DRAINED -> member_admit.c
 *     member_admit_drained.
 * aether_policy_id still names all ten, so a row and a comment can cite
 * DESIGN's number.
 *
 * Threading: constant data; pure functions.
 */
#ifndef AETHER_POLICIES_H
#define AETHER_POLICIES_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"

typedef enum aether_policy_id {
    AETHER_POLICY_SINGLE_LEADER = 1, /* ElectLeader succeeds only by an atomic create */
    AETHER_POLICY_LEASE_RENEWAL,     /* renew every ttl/4; failure -> LeadershipLost at once */
    AETHER_POLICY_RE_ELECTION,       /* lease gone or LeadershipLost -> ElectLeader after jitter */
    AETHER_POLICY_FAILURE_DETECTION, /* no heartbeat for failure_timeout -> MarkNodeFailed */
    AETHER_POLICY_JOIN_REBALANCE,    /* NodeJoined -> RebalanceShards (debounced) */
    AETHER_POLICY_FAILURE_REBALANCE, /* NodeFailed -> RebalanceShards at once */
    AETHER_POLICY_DRAIN,             /* NodeDraining -> move its shards; owns none -> NodeLeft */
    AETHER_POLICY_STABILITY,         /* no rebalance without a topology change; bursts -> one */
    AETHER_POLICY_STEP_DOWN,         /* own node Draining or Failed -> resign */
    AETHER_POLICY_TAKE_OVER,         /* LeaderElected(self) -> load state, finish, publish */
    AETHER_POLICY_COUNT_
} aether_policy_id;

/* What a row prescribes; each is read by one actor (its row's `actor`). */
typedef enum aether_policy_reaction {
    AETHER_REACT_NONE = 0,
    AETHER_REACT_CAMPAIGN_SOON,       /* lease: campaign after a random jitter */
    AETHER_REACT_REBALANCE_DEBOUNCED, /* assign: arm the debounce timer */
    AETHER_REACT_REBALANCE_NOW,       /* assign: rebalance in this handler run */
    AETHER_REACT_RESIGN,              /* lease: give the lease up */
    AETHER_REACT_TAKE_OVER,           /* assign: load the stored state, then publish */
} aether_policy_reaction;

typedef struct aether_policy {
    aether_policy_id id;
    const char *name;
    aether_event_type event;     /* the trigger */
    bool leader_only;            /* only the node that may lead reacts */
    bool about_self;             /* only when the event is about the reacting node */
    aether_policy_reaction reaction;
    const char *actor;           /* "cluster", "lease" or "assign" */
    const char *rule;            /* DESIGN's sentence */
} aether_policy;

/* The table, rows in DESIGN's order (a policy that fires on several
 * events has a row for each); *n_out rows. */
const aether_policy *aether_policies(uint32_t *n_out);

/* Which reactions the table prescribes for event type `type` seen by a node
 * that may lead (`leader`), where `about_self` says whether the event
 * concerns that node. Writes up to max policy ids to out (ascending) and
 * returns how many apply. */
uint32_t aether_policy_react(aether_event_type type, bool leader, bool about_self,
                             const aether_policy **out, uint32_t max);

/* True if some policy prescribes `reaction` for that event and role. */
bool aether_policy_says(aether_event_type type, bool leader, bool about_self,
                        aether_policy_reaction reaction);

#endif
