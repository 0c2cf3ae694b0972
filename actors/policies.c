/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policies.c: the policy table (actors layer). See policies.h.
 */
#include "policies.h"

#include "assertion.h"

#define EVT(e) AETHER_EVT_##e

/* Every row is read by an aether_policy_says call of its actor (policies.h). */
static const aether_policy table[] = {
    { AETHER_POLICY_RE_ELECTION, "re-election", EVT(LEADERSHIP_LOST), false, false,
      AETHER_REACT_CAMPAIGN_SOON, "lease",
      "lease seen gone or LeadershipLost -> ElectLeader after a random jitter; only Active nodes" },
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
    { AETHER_POLICY_STEP_DOWN, "step-down", EVT(NODE_FAILED), true, true, AETHER_REACT_RESIGN,
      "lease", "the leader's own node Draining or marked Failed -> resign (I5)" },
    { AETHER_POLICY_STEP_DOWN, "step-down", EVT(NODE_LEFT), true, true, AETHER_REACT_RESIGN,
      "lease", "a leader whose own node has left resigns" },
    { AETHER_POLICY_TAKE_OVER, "take-over", EVT(LEADER_ELECTED), true, true,
      AETHER_REACT_TAKE_OVER, "assign",
      "LeaderElected (self) -> load the last map and topology, validate, finish, publish" },
};

#define TABLE_ROWS (sizeof(table) / sizeof(table[0]))
AETHER_STATIC_ASSERT(TABLE_ROWS == 9, "one row per (policy, event) that an actor dispatches on");

const aether_policy *aether_policies(uint32_t *n_out)
{
    *n_out = (uint32_t)TABLE_ROWS;
    return table;
}

static bool applies(const aether_policy *p, aether_event_type type, bool leader, bool about_self)
{
    return p->event == type && (!p->leader_only || leader) && (!p->about_self || about_self);
}

uint32_t aether_policy_react(aether_event_type type, bool leader, bool about_self,
                             const aether_policy **out, uint32_t max)
{
    uint32_t n = 0;
    for (size_t i = 0; i < TABLE_ROWS; i++)
        if (applies(&table[i], type, leader, about_self) && n < max)
            out[n++] = &table[i];
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
