/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_announce.c: the cluster actor's announcement queue (actors layer,
 * part of the cluster actor: member_cluster_internal.h).
 *
 * DESIGN: member_internal.h, "The leader's two commit points". A change
 * the leader stored and published waits here until the assign actor has
 * passed the barrier sent after its snapshot (departures), then is
 * announced in the order decided; an entry whose term ended is dropped.
 * Threading: called only from the cluster actor; the state is its own.
 */
#include "member_cluster_internal.h"

#include <stdlib.h>
#include <string.h>

bool member_announce_is_departure(const aether_event *e)
{
    return e->type == AETHER_EVT_NODE_FAILED || e->type == AETHER_EVT_NODE_LEFT;
}

/* Room for n more entries, grown if needed; called before the change is
 * committed, so that queueing it afterwards cannot fail. False (out of
 * memory, or ANNOUNCE_PENDING_MAX): the caller does not commit it. */
bool member_announce_reserve(member_cluster_state *cs, uint32_t n)
{
    if (n > ANNOUNCE_PENDING_MAX - cs->ann_count)
        return false;
    if (cs->ann_head + cs->ann_count + n <= cs->ann_cap)
        return true;
    if (cs->ann_head > 0) {
        memmove(cs->ann, cs->ann + cs->ann_head, (size_t)cs->ann_count * sizeof(*cs->ann));
        cs->ann_head = 0;
        if (cs->ann_count + n <= cs->ann_cap)
            return true;
    }
    uint32_t cap = cs->ann_cap ? cs->ann_cap : 16u;
    while (cap < cs->ann_count + n) /* bounded: cap stays below 2 * ANNOUNCE_PENDING_MAX */
        cap *= 2u;
    announce_entry *v = realloc(cs->ann, (size_t)cap * sizeof(*v));
    if (v == NULL)
        return false;
    cs->ann = v;
    cs->ann_cap = cap;
    AETHER_ASSERT(cs->ann_head + cs->ann_count + n <= cs->ann_cap);
    return true;
}

/* Step 1: e (taken over), a change stored in `term` whose snapshot is
 * published, waits at the back of the queue; a departure takes a new
 * barrier number. member_announce_flush sends the barrier. */
void member_announce_push(aether_member *m, aether_event *e, aether_term term)
{
    member_cluster_state *cs = m->cs;
    AETHER_ASSERT(cs->ann_head + cs->ann_count < cs->ann_cap); /* member_announce_reserve first */
    AETHER_ASSERT(term != AETHER_TERM_NONE);                  /* a leader's change */
    if (member_announce_is_departure(e))
        cs->barrier_seq++;
    cs->ann[cs->ann_head + cs->ann_count++] = (announce_entry){ e, cs->barrier_seq, term };
}

/* Steps 1 and 6: the newest barrier goes to the assign actor once. Refused
 * (its mailbox full): tick_heartbeat sends it again. */
static void announce_send_barrier(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    if (cs->barrier_sent >= cs->barrier_seq)
        return;
    aether_msg b = { .type = MSG_ANNOUNCE_BARRIER, .arg64 = cs->barrier_seq };
    if (aether_actor_send(m->assign, &b) == AETHER_OK)
        cs->barrier_sent = cs->barrier_seq;
}

/* Steps 3 and 5: announces, in order, the entries whose barrier the assign
 * actor has passed; drops those of a term this node no longer leads; stops
 * at the first that must wait (its barrier, or a lease in doubt). */
void member_announce_flush(aether_member *m)
{
    member_cluster_state *cs = m->cs;
    while (cs->ann_count > 0) { /* bounded: ann_count, which only shrinks here */
        announce_entry *a = &cs->ann[cs->ann_head];
        aether_event *e = a->e;
        if (__atomic_load_n(&m->leading_term, __ATOMIC_ACQUIRE) != a->term) {
            cs->ann_dropped++;
            AETHER_INFO(MEMBER_LOG, "%s: %s of term %llu not announced: the term ended (the next "
                        "leader announces it from the stored topology; %llu so far)", m->cfg.node.str,
                        aether_event_type_name(e->type), (unsigned long long)a->term,
                        (unsigned long long)cs->ann_dropped);
        } else if (a->barrier > cs->barrier_acked || !member_may_lead(m, NULL)) {
            break;
        } else {
            aether_event_retain(e);
            (void)member_emit(m, e, AETHER_TERM_NONE); /* stamps it, takes one reference */
            member_cluster_notify_assign(m, e);
        }
        aether_event_release(e);
        cs->ann_head++;
        cs->ann_count--;
    }
    if (cs->ann_count == 0)
        cs->ann_head = 0;
    announce_send_barrier(m);
    if (cs->ann_count == 0 && cs->loaded_pending_term != AETHER_TERM_NONE) {
        if (__atomic_load_n(&m->leading_term, __ATOMIC_ACQUIRE) == cs->loaded_pending_term)
            __atomic_store_n(&m->topo_loaded_term, cs->loaded_pending_term, __ATOMIC_RELEASE);
        cs->loaded_pending_term = AETHER_TERM_NONE;
    }
}

/* A leader's change ev[0..n) (taken over), just stored in `term`: published
 * and announced in the order of the header. With nothing queued and nobody
 * departing, the events go out at once, before the snapshot that has them
 * (a node it revives is named by no map before its NodeJoined: step 4);
 * otherwise the snapshot first, then the queue (steps 1-3). */
void member_announce_committed(aether_member *m, aether_event *const *ev, uint32_t n,
                                      aether_term term)
{
    bool departure = false;
    for (uint32_t i = 0; i < n; i++)
        departure |= member_announce_is_departure(ev[i]);
    if (!departure && m->cs->ann_count == 0) {
        for (uint32_t i = 0; i < n; i++) {
            aether_event_retain(ev[i]);
            (void)member_emit(m, ev[i], AETHER_TERM_NONE); /* stamps it, takes one reference */
        }
        member_cluster_publish_self_status(m);
        for (uint32_t i = 0; i < n; i++) {
            member_cluster_notify_assign(m, ev[i]);
            aether_event_release(ev[i]);
        }
        return;
    }
    member_cluster_publish_self_status(m);
    for (uint32_t i = 0; i < n; i++)
        member_announce_push(m, ev[i], term);
    member_announce_flush(m);
}
