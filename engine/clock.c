/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.c: the real and the simulated clock (engine layer). See clock.h for
 * the threading rules.
 */
#include "clock.h"

#include <time.h>

#include "assertion.h"

static uint64_t real_now_ns(aether_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * AETHER_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t real_wall_ms(aether_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / AETHER_NS_PER_MS;
}

static const aether_clock_ops real_ops = { real_now_ns, real_wall_ms };
static aether_clock real_clock = { &real_ops };

aether_clock *aether_clock_real(void) { return &real_clock; }

static uint64_t sim_now_ns(aether_clock *c) { return ((aether_sim_clock *)c)->now_ns; }

static uint64_t sim_wall_ms(aether_clock *c)
{
    aether_sim_clock *s = (aether_sim_clock *)c;
    return s->wall_epoch_ms + s->now_ns / AETHER_NS_PER_MS;
}

static const aether_clock_ops sim_ops = { sim_now_ns, sim_wall_ms };

void aether_sim_clock_init(aether_sim_clock *c, uint64_t start_ns, uint64_t wall_epoch_ms)
{
    c->base.ops = &sim_ops;
    c->now_ns = start_ns;
    c->wall_epoch_ms = wall_epoch_ms;
}

void aether_sim_clock_set_ns(aether_sim_clock *c, uint64_t t_ns)
{
    AETHER_ASSERT(t_ns >= c->now_ns);
    c->now_ns = t_ns;
}

void aether_sim_clock_advance_ns(aether_sim_clock *c, uint64_t delta_ns)
{
    AETHER_ASSERT(c->now_ns + delta_ns >= c->now_ns);
    c->now_ns += delta_ns;
}

/* Elapsed reference time scaled by (1 + ppm/1e6), in 128 bits so a day of
 * nanoseconds times a million cannot overflow. */
static uint64_t drift_now_ns(aether_clock *c)
{
    aether_drift_clock *d = (aether_drift_clock *)c;
    uint64_t ref = aether_clock_now_ns(d->ref);
    uint64_t elapsed = ref >= d->ref_start_ns ? ref - d->ref_start_ns : 0;
    __int128 scaled = (__int128)elapsed * (1000000 + (__int128)d->rate_ppm) / 1000000;
    return d->start_ns + (uint64_t)scaled;
}

static uint64_t drift_wall_ms(aether_clock *c)
{
    aether_drift_clock *d = (aether_drift_clock *)c;
    uint64_t ref_wall = aether_clock_wall_ms(d->ref);
    uint64_t ref = aether_clock_now_ns(d->ref);
    uint64_t elapsed = ref >= d->ref_start_ns ? ref - d->ref_start_ns : 0;
    int64_t drift_ms = (int64_t)((__int128)elapsed * d->rate_ppm / 1000000 /
                                 (__int128)AETHER_NS_PER_MS);
    int64_t w = (int64_t)ref_wall + d->wall_offset_ms + drift_ms;
    return w > 0 ? (uint64_t)w : 0;
}

static const aether_clock_ops drift_ops = { drift_now_ns, drift_wall_ms };

void aether_drift_clock_init(aether_drift_clock *c, aether_clock *ref, int64_t offset_ns,
                             int32_t rate_ppm, int64_t wall_offset_ms)
{
    AETHER_ASSERT(c != NULL && ref != NULL);
    AETHER_ASSERT(rate_ppm > -1000000);
    c->base.ops = &drift_ops;
    c->ref = ref;
    c->ref_start_ns = aether_clock_now_ns(ref);
    int64_t start = (int64_t)c->ref_start_ns + offset_ns;
    c->start_ns = start > 0 ? (uint64_t)start : 0;
    c->rate_ppm = rate_ppm;
    c->wall_offset_ms = wall_offset_ms;
}
