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
