/*
 * policies.h: the ten policies of DESIGN 2 as one table (actors layer).
 *
 * A policy is "when this happens, do that". The table says, for each one, its
 * trigger (an event type, a timer or a command), which node reacts (the
 * leader or any node, about itself or any node) and the reaction. The
 * actors ask aether_policy_react what to do with each event they see, so
 * the table is what runs, not a comment: changing a row changes behaviour.
 * Timer-driven policies (lease renewal, failure detection, re-election by
 * expiry) have rows too, with the actor and period that implement them.
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

typedef enum aether_policy_reaction {
    AETHER_REACT_NONE = 0,
    AETHER_REACT_CREATE_LEASE,      /* try the atomic create of the lease key */
    AETHER_REACT_RENEW_OR_LOSE,     /* renew; on failure emit LeadershipLost */
    AETHER_REACT_CAMPAIGN_SOON,     /* campaign after a random jitter */
    AETHER_REACT_MARK_FAILED,       /* decide MarkNodeFailed for silent nodes */
    AETHER_REACT_REBALANCE_DEBOUNCED,
    AETHER_REACT_REBALANCE_NOW,
    AETHER_REACT_COMPLETE_DRAIN,    /* NodeLeft once the node owns no shard */
    AETHER_REACT_RESIGN,
    AETHER_REACT_TAKE_OVER,
} aether_policy_reaction;

typedef enum aether_policy_trigger {
    AETHER_TRIGGER_EVENT,
    AETHER_TRIGGER_TIMER,
    AETHER_TRIGGER_COMMAND,
} aether_policy_trigger;

typedef struct aether_policy {
    aether_policy_id id;
    const char *name;
    aether_policy_trigger trigger;
    aether_event_type event;     /* for AETHER_TRIGGER_EVENT */
    bool leader_only;            /* only the node that may lead reacts */
    bool about_self;             /* only when the event is about the reacting node */
    aether_policy_reaction reaction;
    const char *actor;           /* "cluster", "lease" or "assign" */
    const char *rule;            /* DESIGN's sentence */
} aether_policy;

/* The table, in DESIGN's order; *n_out = AETHER_POLICY_COUNT_ - 1. */
const aether_policy *aether_policies(uint32_t *n_out);
const aether_policy *aether_policy_get(aether_policy_id id);

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
