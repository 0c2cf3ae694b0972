/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_shape.c: the cluster actor's admission when the state store has
 * lost the cluster's terms (actors layer, part of the cluster actor:
 * member_cluster_internal.h): a newcomer leader stands down before a
 * member of other terms, and a leader with no stored map publishes its
 * shape only with a majority of the nodes it hears and the stored topology
 * records (the quorum of configuration). DESIGN: the two comments below; docs/cluster.md,
 * "Admission".
 * Threading: called only from the cluster actor; the state is its own.
 */
#include "member_cluster_internal.h"

#include <stdio.h>
#include <string.h>

/* Admission when the store has lost the cluster's terms (DESIGN 2,
 * "Admission"; docs/cluster.md). The cluster's shard_count, replication,
 * wire versions and parameters are those of its members, and a member is a
 * node that holds a map: a leader installs and publishes only maps of its
 * own terms, and a node installs only maps of its own terms (adopt), so
 * every map held was made under the cluster's terms. Normally the leader
 * compares itself with the stored map (check_stored_map_terms) and joiners
 * with itself. A leader that found no map stored and holds none (the state
 * bucket lost, and this node a newcomer: never a member, or restarted) has
 * nothing to compare itself with: its terms are the cluster's only until a
 * member shows otherwise. So a joiner whose keep-alive names a map of an
 * earlier term (map_term) and whose terms differ from ours suggests that
 * we are the node that does not fit. Only suggests: anyone who may send a
 * command can forge that keep-alive (issue 13), so it is never final:
 *  1. we stand down in this term (stood_down_term) - from then on we decide
 *     nothing and publish no map in it, the lease actor resigns at its next
 *     tick, and we do not campaign for lease_ttl + failure_timeout (the
 *     members' turn to lead). The verdict is the members' leader's: we
 *     rejoin like any node, and it refuses us for good
 *     (member_note_refused) only if our terms are not the cluster's;
 *  2. if our admission is in our topology, we record ourselves Failed
 *     (NodeFailed, stored first like any change, then announced), so no
 *     later leader gives us shards, and policy 9 resigns at once;
 *  3. the joiner gets ENOTLEADER (retry), never a refusal: it is not the
 *     misfit.
 * We publish no map before that can happen: a take-over from nothing waits
 * failure_timeout before its first map (member_assign.c, wait_first_map),
 * and a live member sends a keep-alive every heartbeat interval. A newcomer
 * leader that hears no member in that time (every member cut off from it)
 * does publish its terms; members then serve nothing and say so
 * (aether_node_incompatible): see docs/cluster.md. A joiner that holds no
 * map proves nothing: refused as usual when it differs. */
/* ---- Quorum of configuration ------------------------------------------------
 *
 * DESIGN (docs/cluster.md, "Admission"). A leader that finds no map stored
 * (a new cluster, or the state bucket lost) has nothing that says which
 * shape - shard_count, replication, the admission terms - the cluster
 * runs; its own may be a misfit's. As etcd and Akka do with membership
 * configuration, the shape is what a majority agrees on, not what the first
 * node to win says:
 *  1. in such a term (shape_term), until its first map is out, the leader
 *     notes the shape of every node whose keep-alive it hears (JoinCluster
 *     carries the joiner's terms and the term of the map it holds); a joiner
 *     of another shape is not refused (that is final for it) but told to
 *     retry (EUNAVAILABLE);
 *  2. counting itself and the nodes heard within failure_timeout - only
 *     those holding a map (members: a node installs only maps of its own
 *     shape) when any does, itself included if it holds one, of any
 *     generation - its shape has a majority when more nodes share it than differ from it or are
 *     unknown: healthy members of the stored topology (as the count began)
 *     not heard, for SHAPE_ALONE_TIMEOUTS failure timeouts at most (then
 *     those heard decide; aether-sim --soak --seed 100174 --duration 120
 *     --extra-faults misfit,twin,kv-loss-both,forge: two misfits of one
 *     shape heard while a partition hid the members). It lacks one when
 *     more nodes differ than share it, or as many with a node holding a map
 *     among those that differ and none among those that share (a misfit
 *     never installs a map of its own shape before it has led). In a tie no
 *     map breaks (maps on both sides or on neither) nothing says which side
 *     is the cluster: undecided until a node more is heard or one leaves.
 *     Without a majority the assign actor publishes no first map
 *     (shape_blocked_term), nor before a leader that took over from nothing
 *     has heard for a whole failure_timeout from the first other node's
 *     keep-alive (the first to arrive need not be the majority);
 *  2b. a leader that took over from nothing (member_assign.c,
 *     wait_first_map: not a new cluster) whose stored topology names other
 *     nodes (in any state: a cluster lived here) and that hears no other
 *     node at all waits too, up to SHAPE_ALONE_TIMEOUTS failure timeouts:
 *     the live nodes may be cut off from it for a moment, and what it would
 *     publish alone may be a misfit's shape (aether-sim --soak --seed 100093
 *     --duration 120 --extra-faults misfit,twin,kv-loss,forge: misfit x8
 *     led while a partition kept n2 and n4 from it);
 *  2d. the recorded cluster: believe the store, not the message. The
 *     stored topology keeps on each node's record the admission terms its
 *     JoinCluster carried when a leader admitted it (aether_node_info.terms,
 *     set by lead_command; absent on older records). When the count began
 *     (shape_take_recorded), unless a map holder is heard (members first),
 *     the records that say terms are the cluster as the store knows it:
 *     a recorded node not heard votes by its recorded shape, in any state
 *     and without the SHAPE_ALONE_TIMEOUTS fallback (a record does not age
 *     as a keep-alive does); a node heard that the topology did not record
 *     then (a newcomer, of either shape) does not vote; and no first map goes
 *     out unless ours, with the recorded and heard nodes that share it,
 *     outnumbers the other recorded and heard shapes (else undecided:
 *     SHAPE_TIE, blocked, no verdict on ourselves - a record alone never
 *     refuses a node for good; step 3 still needs the nodes heard). A node
 *     that refuses itself or stands down (step 3, and the newcomer rule
 *     above) withdraws its own recorded terms in the NodeFailed it records
 *     (member_cluster_fail_self), so a refused misfit's record votes for
 *     nobody and cannot outvote the members after a second loss.
 *     Why this closes the hole the keep-alives leave: a misfit that stood
 *     down because a member's keep-alive named another shape forgot it at
 *     its next term (the stand-down is per term: a keep-alive can be
 *     forged), and if its NodeFailed did not land (EUNAVAILABLE) and the
 *     members then crashed, it led a later term hearing nobody of the
 *     cluster and published its own shape (aether-sim --soak --seed 100122
 *     --duration 120 --extra-faults misfit,twin,kv-loss,forge, x10 in term
 *     88). The members' records survive their crashes and the misfit's
 *     lost write: x10 finds n2 and n3 recorded with the cluster's terms and
 *     publishes nothing until they are heard, then refuses itself. Three
 *     misfits that joined after a loss outnumbered the two members the
 *     store recorded (seed 101148): as newcomers they no longer vote
 *     against the records. Deterministic: the records are read once per
 *     term, with the stored topology, and counted against our clock only.
 *     Not covered: nothing recorded at all (the state bucket lost with no
 *     leader alive to write the topology back, every member holding a map
 *     crashed since: seed 100923), where misfits of one shape that
 *     outnumber the members heard are still the cluster by this rule;
 *  2c. with a majority, members of the stored topology heard with another
 *     shape (a misfit leader before us admitted its kind) are recorded
 *     Failed before the first map, which would name them otherwise
 *     (aether-sim --soak --seed 100082 --duration 120 --extra-faults
 *     misfit,twin,kv-loss-both,forge: x11 admitted x14, refused itself,
 *     and n15's map named x14);
 *  3. a leader whose shape still lacks a majority once it has heard for a
 *     whole failure_timeout (every live node sends a keep-alive more often)
 *     refuses itself as a refused joiner would (member_note_refused: it
 *     serves nothing, records itself Failed, resigns, aether-node exits 2;
 *     counted in shape_refusals), and a node of the majority's shape leads
 *     next.
 * Once the first map is out the stored map is the cluster's shape and step
 * 1's joiners are refused as usual. Not covered: a leader that hears nobody
 * for SHAPE_ALONE_TIMEOUTS failure timeouts (every other node paused or cut
 * off) and finds no recorded terms (2d) publishes its own shape; a tie that lasts (a cluster of two, one a
 * misfit, after a store loss) publishes nothing; misfits of one shape that
 * outnumber the members heard and recorded are the cluster by this rule. */
bool member_shape_counting(aether_member *m, aether_term term)
{
    return m->cs->shape_term == term && term != AETHER_TERM_NONE &&
           __atomic_load_n(&m->map_term, __ATOMIC_SEQ_CST) != term;
}

/* Step 2 over the votes heard within failure_timeout. *agree, *differ: the
 * counts (ourselves included). */
typedef enum shape_verdict {
    SHAPE_MAJORITY,  /* ours is shared by more nodes than differ (or wins the tie) */
    SHAPE_TIE,       /* as many differ as share it and no map breaks the tie */
    SHAPE_MINORITY   /* more differ (or they win the tie): ours is not the cluster's */
} shape_verdict;

/* Was id in the stored topology when the count began? */
static bool shape_was_recorded(const member_cluster_state *cs, const aether_node_id *id)
{
    for (uint32_t i = 0; i < cs->n_shape_recorded; i++) /* bounded: SHAPE_VOTES_MAX */
        if (aether_node_id_equal(&cs->shape_recorded[i].id, id))
            return true;
    return false;
}

static shape_verdict shape_count(aether_member *m, uint32_t *agree, uint32_t *differ)
{
    member_cluster_state *cs = m->cs;
    uint64_t now = member_now_ns(m);
    uint64_t window = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
    bool self_map = __atomic_load_n(&m->map_version, __ATOMIC_SEQ_CST) != 0 ||
                    __atomic_load_n(&m->old_map_term, __ATOMIC_SEQ_CST) != 0;
    /* Members first: a node that holds a map installed it, and a node
     * installs only maps of its own shape that a leader published, so
     * when any node heard (or we) holds one, only those vote; a crowd of
     * newcomers without maps cannot outvote them (aether-sim --soak --seed
     * 200095 --duration 120 --extra-faults misfit,twin,kv-loss-both,forge:
     * n0, holding the cluster's map, refused itself when two misfits were
     * heard beside it). */
    bool members = self_map;
    for (uint32_t i = 0; i < cs->n_shape_votes && !members; i++) /* bounded: SHAPE_VOTES_MAX */
        members = cs->shape_votes[i].holds_map && now - cs->shape_votes[i].last_ns <= window;
    /* A recorded cluster (step 2d): some record says its node's terms. */
    bool recorded = false;
    for (uint32_t i = 0; i < cs->n_shape_recorded && !recorded; i++) /* bounded: SHAPE_VOTES_MAX */
        recorded = cs->shape_recorded[i].said;
    uint32_t a = members && !self_map ? 0 : 1, d = 0;
    bool a_map = self_map, d_map = false;
    for (uint32_t i = 0; i < cs->n_shape_votes; i++) { /* bounded: SHAPE_VOTES_MAX */
        const shape_vote *v = &cs->shape_votes[i];
        if (now - v->last_ns > window || (members && !v->holds_map) ||
            (!members && recorded && !shape_was_recorded(cs, &v->id)))
            continue;
        if (v->agrees) {
            a++;
            a_map = a_map || v->holds_map;
        } else {
            d++;
            d_map = d_map || v->holds_map;
        }
    }
    *agree = a;
    *differ = d;
    if (d > a || (d == a && d_map && !a_map))
        return SHAPE_MINORITY;
    if (d == a && a_map == d_map)
        return SHAPE_TIE;
    /* The recorded nodes not heard (step 2d): by the shape their record
     * says, whatever their state and for as long as the record stands;
     * those whose record says none are unknown, and until the fallback a
     * majority is one of all of them (a partition may hide the cluster's
     * members while a few misfits are heard). Members (maps) outrank
     * records: a node that holds a map holds one of its own shape. */
    uint32_t rec_a = 0, rec_d = 0, unknown = 0;
    for (uint32_t i = 0; i < cs->n_shape_recorded; i++) { /* bounded: SHAPE_VOTES_MAX */
        const shape_record *r = &cs->shape_recorded[i];
        bool heard = false;
        for (uint32_t j = 0; j < cs->n_shape_votes && !heard; j++) /* bounded: same */
            heard = aether_node_id_equal(&cs->shape_votes[j].id, &r->id) &&
                    now - cs->shape_votes[j].last_ns <= window;
        if (heard)
            continue;
        if (!r->said)
            unknown++;
        else if (r->agrees)
            rec_a++;
        else
            rec_d++;
    }
    if (!members && a + rec_a <= d + rec_d)
        return SHAPE_TIE; /* the store records no majority of ours: no first map, no verdict */
    if (now - cs->shape_since_ns < (uint64_t)SHAPE_ALONE_TIMEOUTS * window && a <= d + unknown)
        return SHAPE_TIE; /* undecided: nobody's shape yet */
    return SHAPE_MAJORITY;
}

/* Step 2b: does the stored topology name a node other than us, in any
 * state (a cluster lived here: not a new one)? */
static bool others_recorded(const aether_member *m)
{
    const aether_topology *t = &m->cs->topo;
    for (uint32_t i = 0; i < t->count; i++) /* bounded: the topology's nodes */
        if (!aether_node_id_equal(&t->nodes[i].id, &m->cfg.node))
            return true;
    return false;
}

/* Step 2c: a node heard with another shape that the stored topology has as
 * a healthy member (a misfit leader before us admitted it). First one at
 * i or after; NULL when none. */
static const aether_node_id *shape_misfit_member(const aether_member *m, uint32_t *i)
{
    const member_cluster_state *cs = m->cs;
    for (; *i < cs->n_shape_votes; (*i)++) { /* bounded: SHAPE_VOTES_MAX */
        const shape_vote *v = &cs->shape_votes[*i];
        const aether_node_info *n = v->agrees ? NULL : aether_topology_find(&cs->topo, &v->id);
        if (n != NULL && aether_node_status_is_healthy(n->status))
            return &v->id;
    }
    return NULL;
}

static void shape_publish(aether_member *m, aether_term term)
{
    uint32_t a, d, from = 0;
    bool lacks = shape_count(m, &a, &d) != SHAPE_MAJORITY || shape_misfit_member(m, &from) != NULL;
    uint64_t ft = (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS;
    uint64_t now = member_now_ns(m);
    const member_cluster_state *cs = m->cs;
    if (__atomic_load_n(&m->mapless_term, __ATOMIC_SEQ_CST) == term) {
        if (cs->shape_heard_ns == 0 && others_recorded(m) &&
            now - cs->shape_since_ns < SHAPE_ALONE_TIMEOUTS * ft)
            lacks = true; /* step 2b: nobody heard yet */
        if (cs->shape_heard_ns != 0 && now - cs->shape_heard_ns < ft)
            lacks = true; /* step 2: still hearing (every live node within a failure_timeout) */
    }
    bool was = __atomic_load_n(&m->shape_blocked_term, __ATOMIC_SEQ_CST) == term;
    if (was != lacks)
        AETHER_INFO(MEMBER_LOG, "%s: no map stored, the shape of the nodes heard in term %llu: "
                    "%u share ours, %u differ: %s", m->cfg.node.str, (unsigned long long)term, a, d,
                    lacks ? "no first map yet" : "publishing");
    __atomic_store_n(&m->shape_blocked_term, lacks ? term : AETHER_TERM_NONE, __ATOMIC_SEQ_CST);
}

/* Step 1: notes a keep-alive's shape. AETHER_OK (it shares ours: decide it
 * as usual) or AETHER_EUNAVAILABLE (it differs: retry). */
aether_status member_shape_note(aether_member *m, const aether_command *c, aether_term term,
                                aether_err *why)
{
    member_cluster_state *cs = m->cs;
    if (aether_node_id_equal(&c->data.join.info.id, &m->cfg.node) ||
        c->data.join.terms.shard_count == 0)
        return AETHER_OK;
    aether_err diff;
    bool agrees = aether_admission_check(&m->admission, &c->data.join.terms, &diff) == AETHER_OK;
    shape_vote *v = NULL;
    for (uint32_t i = 0; i < cs->n_shape_votes && v == NULL; i++) /* bounded: SHAPE_VOTES_MAX */
        if (aether_node_id_equal(&cs->shape_votes[i].id, &c->data.join.info.id))
            v = &cs->shape_votes[i];
    if (v == NULL && cs->n_shape_votes < SHAPE_VOTES_MAX)
        v = &cs->shape_votes[cs->n_shape_votes++];
    if (cs->shape_heard_ns == 0)
        cs->shape_heard_ns = member_now_ns(m);
    if (v != NULL) { /* beyond the bound a node is not counted: the others still are */
        v->id = c->data.join.info.id;
        v->agrees = agrees;
        v->holds_map = c->data.join.map_term != AETHER_TERM_NONE;
        v->last_ns = member_now_ns(m);
    }
    shape_publish(m, term);
    if (agrees)
        return AETHER_OK;
    return aether_err_set(why, AETHER_EUNAVAILABLE, "no map stored: the cluster's shape is being "
                          "settled by the nodes heard (%s); retry", diff.msg);
}

/* Step 3 (and 2c), on every heartbeat tick of a counting leader. */
void member_shape_check_self(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    aether_term term;
    if (!member_may_lead(m, &term) || !member_shape_counting(m, term))
        return;
    shape_publish(m, term);
    uint32_t a, d;
    shape_verdict verdict = shape_count(m, &a, &d);
    if (cs->shape_heard_ns == 0 ||
        member_now_ns(m) - cs->shape_heard_ns < (uint64_t)m->cfg.failure_timeout_ms * AETHER_NS_PER_MS)
        return;
    if (verdict == SHAPE_MAJORITY) { /* step 2c: members of another shape are failed first */
        uint32_t i = 0;
        for (const aether_node_id *id; (id = shape_misfit_member(m, &i)) != NULL; i++) {
            if (m->cs->commit != NULL)
                break; /* one topology write at a time: the rest at the next tick */
            aether_command c; /* bounded: SHAPE_VOTES_MAX */
            member_cluster_base_command(m, &c, AETHER_CMD_MARK_NODE_FAILED);
            c.data.mark_failed.node = *id;
            aether_err why;
            if (member_cluster_lead_command(m, &c, &why) != AETHER_OK)
                AETHER_WARN(MEMBER_LOG, "%s: could not fail %s: %s", m->cfg.node.str, id->str,
                            why.msg);
            else
                AETHER_WARN(MEMBER_LOG, "%s: %s, a member of another shape (a leader of its "
                            "shape admitted it), failed before this term's first map",
                            m->cfg.node.str, id->str);
        }
        shape_publish(m, term);
        return;
    }
    if (verdict != SHAPE_MINORITY)
        return;
    char reason[AETHER_ERR_MSG_MAX];
    snprintf(reason, sizeof(reason), "shard_count %u, replication %u: %u of the %u live nodes this "
             "node heard in term %llu run other terms (the state store had no map to say which "
             "are the cluster's; the majority's are)", m->cfg.shard_count, m->cfg.replication, d,
             a + d, (unsigned long long)term);
    __atomic_add_fetch(&m->shape_refusals, 1, __ATOMIC_RELAXED);
    AETHER_ERROR(MEMBER_LOG, "%s: leading with no stored map, this node's shape lacks a majority: %s",
                 m->cfg.node.str, reason);
    member_note_refused(m, reason); /* first: no map is published from here */
    const aether_node_info *me = aether_topology_find(&cs->topo, &m->cfg.node);
    if (me != NULL && aether_node_status_is_healthy(me->status))
        member_cluster_fail_self(m);
}

bool member_shape_newcomer_refuses(aether_member *m, const aether_command *c, aether_term term)
{
    member_cluster_state *cs = m->cs;
    if (c->type != AETHER_CMD_JOIN_CLUSTER || cs->newcomer_term != term ||
        c->data.join.map_term == AETHER_TERM_NONE || c->data.join.map_term >= term ||
        c->data.join.terms.shard_count == 0)
        return false;
    aether_err why;
    /* The joiner's terms as the cluster's, ours as a joiner's: the sentence
     * the members' leader gives a misfit. */
    if (aether_admission_check(&c->data.join.terms, &m->admission, &why) != AETHER_EINCOMPATIBLE)
        return false;
    char reason[AETHER_ERR_MSG_MAX + AETHER_NODE_ID_LEN_MAX + 160]; /* member_note_refused cuts it */
    snprintf(reason, sizeof(reason), "%s (%s, a member holding a map of term %llu, has the cluster's "
             "terms; the state store had lost them when this node took over in term %llu)",
             why.msg, c->data.join.info.id.str, (unsigned long long)c->data.join.map_term,
             (unsigned long long)term);
    AETHER_WARN(MEMBER_LOG, "%s: leading with no stored map, this node may not fit the cluster: %s; "
                "standing down in term %llu (the members' leader will judge its admission)",
                m->cfg.node.str, reason, (unsigned long long)term);
    /* The pause first, then the term: whoever sees the term sees the pause. */
    __atomic_store_n(&m->stood_down_until_ns,
                     member_now_ns(m) + (uint64_t)(m->cfg.lease_ttl_ms + m->cfg.failure_timeout_ms) *
                                            AETHER_NS_PER_MS,
                     __ATOMIC_SEQ_CST);
    __atomic_store_n(&m->stood_down_term, term, __ATOMIC_SEQ_CST); /* first: no map from here */
    const aether_node_info *me = aether_topology_find(&cs->topo, &m->cfg.node);
    if (me != NULL && aether_node_status_is_healthy(me->status))
        member_cluster_fail_self(m);
    return true;
}
