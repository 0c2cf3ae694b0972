/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ref.h: a reference count for immutable payloads shared between actors
 * (engine layer). Any thread.
 *
 * A payload that several actors receive (an event published on the bus) embeds
 * an aether_ref as its first member. Each holder owns one reference; the last
 * release calls free_fn. A message whose flags carry AETHER_MSG_REF holds one
 * reference that the runtime releases after the handler returns (or when the
 * message is dropped undelivered), so handlers only borrow it.
 */
#ifndef AETHER_REF_H
#define AETHER_REF_H

#include <stddef.h>
#include <stdint.h>

#include "assertion.h"

typedef struct aether_ref aether_ref;
typedef void (*aether_ref_free_fn)(aether_ref *ref);

struct aether_ref {
    uint32_t count;             /* atomic: acq_rel on release, relaxed on retain */
    aether_ref_free_fn free_fn; /* immutable after init */
};

static inline void aether_ref_init(aether_ref *r, aether_ref_free_fn free_fn)
{
    r->count = 1;
    r->free_fn = free_fn;
}

static inline aether_ref *aether_ref_retain(aether_ref *r)
{
    uint32_t old = __atomic_fetch_add(&r->count, 1, __ATOMIC_RELAXED);
    AETHER_ASSERT(old > 0 && old < UINT32_MAX);
    return r;
}

/* NULL is fine. */
static inline void aether_ref_release(aether_ref *r)
{
    if (r == NULL)
        return;
    uint32_t old = __atomic_fetch_sub(&r->count, 1, __ATOMIC_ACQ_REL);
    AETHER_ASSERT(old > 0);
    if (old == 1)
        r->free_fn(r);
}

#endif
