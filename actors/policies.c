/*
 * policies.c: the policy table (actors layer). See policies.h.
 */
#include "policies.h"

#include "assertion.h"

#define EVT(e) AETHER_TRIGGER_EVENT, AETHER_EVT_##e
#define TIMER AETHER_TRIGGER_TIMER, (aether_event_type)0
#define COMMAND AETHER_TRIGGER_COMMAND, (aether_event_type)0

static const aether_policy table[] = {
    { AETHER_POLICY_SINGLE_LEADER, "single-leader", COMMAND, false, false,
      AETHER_REACT_CREATE_LEASE, "lease",
      "ElectLeader succeeds only by an atomic create of the lease key" },
    { AETHER_POLICY_LEASE_RENEWAL, "lease-renewal", TIMER, true, false,
      AETHER_REACT_RENEW_OR_LOSE, "lease",
      "the leader renews every ttl/4; a failed or late renewal -> LeadershipLost at once" },
    { AETHER_POLICY_RE_ELECTION, "re-election", EVT(LEADERSHIP_LOST), false, false,
      AETHER_REACT_CAMPAIGN_SOON, "lease",
      "lease seen gone or LeadershipLost -> ElectLeader after a random jitter; only Active nodes" },
    { AETHER_POLICY_FAILURE_DETECTION, "failure-detection", TIMER, true, false,
      AETHER_REACT_MARK_FAILED, "cluster",
      "leader: no heartbeat for failure_timeout -> MarkNodeFailed" },
    { AETHER_POLICY_JOIN_REBALANCE, "join-rebalance", EVT(NODE_JOINED), true, false,
      AETHER_REACT_REBALANCE_DEBOUNCED, "assign", "NodeJoined -> RebalanceShards (debounced)" },
    { AETHER_POLICY_FAILURE_REBALANCE, "failure-rebalance", EVT(NODE_FAILED), true, false,
      AETHER_REACT_REBALANCE_NOW, "assign",
      "NodeFailed -> RebalanceShards at once: restore I2/I3 first, balance second" },
    { AETHER_POLICY_DRAIN, "drain", EVT(NODE_DRAINING), true, false,
      AETHER_REACT_REBALANCE_NOW, "assign",
      "NodeDraining -> move its shards away; when it owns none -> NodeLeft" },
    { AETHER_POLICY_STABILITY, "stability", EVT(NODE_LEFT), true, false,
      AETHER_REACT_REBALANCE_NOW, "assign",
      "no rebalance without a topology change since the last map; a burst of joins gives one" },
    { AETHER_POLICY_STEP_DOWN, "step-down", EVT(NODE_DRAINING), true, true, AETHER_REACT_RESIGN,
      "lease", "the leader's own node Draining or marked Failed -> resign (I5)" },
    { AETHER_POLICY_TAKE_OVER, "take-over", EVT(LEADER_ELECTED), true, true,
      AETHER_REACT_TAKE_OVER, "assign",
      "LeaderElected (self) -> load the last map and topology, validate, finish, publish" },
};

/* Rows that DESIGN states once but that fire on more than one event. */
static const aether_policy extra[] = {
    { AETHER_POLICY_STEP_DOWN, "step-down", EVT(NODE_FAILED), true, true, AETHER_REACT_RESIGN,
      "lease", "the leader's own node Draining or marked Failed -> resign (I5)" },
    { AETHER_POLICY_STEP_DOWN, "step-down", EVT(NODE_LEFT), true, true, AETHER_REACT_RESIGN,
      "lease", "a leader whose own node has left resigns" },
    { AETHER_POLICY_DRAIN, "drain", TIMER, true, false, AETHER_REACT_COMPLETE_DRAIN, "assign",
      "a draining node that owns no shard -> NodeLeft" },
};

AETHER_STATIC_ASSERT(sizeof(table) / sizeof(table[0]) == AETHER_POLICY_COUNT_ - 1,
                     "one row per DESIGN policy, in order");

const aether_policy *aether_policies(uint32_t *n_out)
{
    *n_out = (uint32_t)(sizeof(table) / sizeof(table[0]));
    return table;
}

const aether_policy *aether_policy_get(aether_policy_id id)
{
    AETHER_ASSERT(id > 0 && id < AETHER_POLICY_COUNT_);
    return &table[id - 1];
}

static bool applies(const aether_policy *p, aether_event_type type, bool leader, bool about_self)
{
    return p->trigger == AETHER_TRIGGER_EVENT && p->event == type && (!p->leader_only || leader) &&
           (!p->about_self || about_self);
}

uint32_t aether_policy_react(aether_event_type type, bool leader, bool about_self,
                             const aether_policy **out, uint32_t max)
{
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (applies(&table[i], type, leader, about_self) && n < max)
            out[n++] = &table[i];
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        if (applies(&extra[i], type, leader, about_self) && n < max)
            out[n++] = &extra[i];
    return n;
}

bool aether_policy_says(aether_event_type type, bool leader, bool about_self,
                        aether_policy_reaction reaction)
{
    const aether_policy *p[8];
    uint32_t n = aether_policy_react(type, leader, about_self, p, 8);
    for (uint32_t i = 0; i < n; i++)
        if (p[i]->reaction == reaction)
            return true;
    return false;
}
