/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timer_heap.c: executor timers (engine layer). See timer_heap.h.
 */
#include "timer_heap.h"

#include <stdlib.h>

#include "assertion.h"
#include "log.h"

static bool before(const aether_timer_entry *a, const aether_timer_entry *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->id < b->id;
}

static void swap(aether_timer_entry *a, aether_timer_entry *b)
{
    aether_timer_entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(aether_timer_heap *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(&h->v[i], &h->v[p]))
            break;
        swap(&h->v[i], &h->v[p]);
        i = p;
    }
}

static void sift_down(aether_timer_heap *h, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && before(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && before(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            return;
        swap(&h->v[i], &h->v[m]);
        i = m;
    }
}

static void remove_at(aether_timer_heap *h, uint32_t i)
{
    AETHER_ASSERT(i < h->n);
    h->n--;
    if (i == h->n)
        return;
    h->v[i] = h->v[h->n];
    sift_down(h, i);
    sift_up(h, i);
}

static aether_status push(aether_timer_heap *h, const aether_timer_entry *e)
{
    if (h->n == h->cap) {
        if (h->cap >= AETHER_TIMER_MAX)
            return AETHER_EFULL;
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        aether_timer_entry *v = realloc(h->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return AETHER_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n] = *e;
    sift_up(h, h->n);
    h->n++;
    return AETHER_OK;
}

void aether_timer_heap_init(aether_timer_heap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->next_id = 1;
    h->retries = 0;
}

void aether_timer_heap_fini(aether_timer_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

aether_status aether_timer_heap_add(aether_timer_heap *h, uint64_t deadline_ns, uint64_t period_ns,
                                    aether_actor *target, const aether_msg *msg,
                                    aether_timer_id *id_out)
{
    AETHER_ASSERT(target != NULL && msg != NULL);
    AETHER_ASSERT(msg->flags == 0 && msg->ptr == NULL);
    aether_timer_entry e = {
        .deadline_ns = deadline_ns,
        .id = h->next_id,
        .period_ns = period_ns,
        .target = target,
        .msg = *msg,
    };
    aether_status st = push(h, &e);
    if (st != AETHER_OK)
        return st;
    h->next_id++;
    if (id_out != NULL)
        *id_out = e.id;
    return AETHER_OK;
}

bool aether_timer_heap_cancel(aether_timer_heap *h, aether_timer_id id)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->v[i].id == id) {
            remove_at(h, i);
            return true;
        }
    }
    return false;
}

uint32_t aether_timer_heap_cancel_target(aether_timer_heap *h, const aether_actor *target)
{
    uint32_t removed = 0;
    for (uint32_t i = 0; i < h->n;) {
        if (h->v[i].target == target) {
            remove_at(h, i);
            removed++;
            i = 0; /* the heap was reshuffled */
        } else {
            i++;
        }
    }
    return removed;
}

bool aether_timer_heap_next(const aether_timer_heap *h, uint64_t *deadline_ns)
{
    if (h->n == 0)
        return false;
    *deadline_ns = h->v[0].deadline_ns;
    return true;
}

uint32_t aether_timer_heap_fire_due(aether_timer_heap *h, uint64_t now_ns)
{
    uint32_t delivered = 0;
    /* Bounded: each iteration removes a due entry or pushes it past now. */
    while (h->n > 0 && h->v[0].deadline_ns <= now_ns) {
        aether_timer_entry e = h->v[0];
        remove_at(h, 0);
        aether_status st = aether_actor_try_send(e.target, &e.msg); /* actor.h, Timers */
        if (st == AETHER_ECLOSED)
            continue;
        if (st == AETHER_EFULL) {
            h->retries++;
            AETHER_WARN("timer", "actor '%s' mailbox full at timer %llu; retrying in 1 ms",
                        aether_actor_name(e.target), (unsigned long long)e.id);
            e.deadline_ns = now_ns + AETHER_TIMER_RETRY_NS;
        } else {
            AETHER_ASSERT(st == AETHER_OK);
            delivered++;
            if (e.period_ns == 0)
                continue;
            e.deadline_ns += e.period_ns;
            if (e.deadline_ns <= now_ns) /* missed periods are skipped, not bunched */
                e.deadline_ns = now_ns + e.period_ns - (now_ns - e.deadline_ns) % e.period_ns;
        }
        /* Re-inserting what we just removed cannot need more room. */
        aether_status pst = push(h, &e);
        AETHER_ASSERT(pst == AETHER_OK);
    }
    return delivered;
}
