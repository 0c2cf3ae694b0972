/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_spscring.c: set-up of the raw ck_ring SPSC limit (bench layer).
 * See baseline_spscring.h. Threading: init/fini with no concurrent users.
 */
#include "baseline_spscring.h"

#include <stdlib.h>

aether_status bench_spscring_init(bench_spscring *r, uint32_t capacity)
{
    if (capacity < 2 || !aether_is_power_of_two(capacity))
        return AETHER_EINVAL;
    r->slots = aligned_alloc(64, (size_t)capacity * sizeof(aether_msg));
    if (r->slots == NULL)
        return AETHER_ENOMEM;
    ck_ring_init(&r->ring, capacity);
    return AETHER_OK;
}

void bench_spscring_fini(bench_spscring *r)
{
    free(r->slots);
    r->slots = NULL;
}
