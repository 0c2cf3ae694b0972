/*
 * clock.h: the injected clock (engine layer).
 *
 * Domain code never reads the time itself; it asks the aether_clock it was
 * given. Two implementations:
 *  - the real clock (CLOCK_MONOTONIC for now_ns, CLOCK_REALTIME for wall_ms),
 *    a process-wide singleton safe on any thread;
 *  - the simulated clock, advanced explicitly by its owner (the step executor
 *    or a test). It is touched only by the thread that owns it.
 * now_ns is monotonic: it never goes backwards for a given clock.
 */
#ifndef AETHER_CLOCK_H
#define AETHER_CLOCK_H

#include <stdint.h>

typedef struct aether_clock aether_clock;

typedef struct aether_clock_ops {
    uint64_t (*now_ns)(aether_clock *c);   /* monotonic nanoseconds */
    uint64_t (*wall_ms)(aether_clock *c);  /* Unix epoch milliseconds, for event timestamps */
} aether_clock_ops;

struct aether_clock {
    const aether_clock_ops *ops; /* immutable after init */
};

static inline uint64_t aether_clock_now_ns(aether_clock *c) { return c->ops->now_ns(c); }
static inline uint64_t aether_clock_now_ms(aether_clock *c) { return c->ops->now_ns(c) / 1000000u; }
static inline uint64_t aether_clock_wall_ms(aether_clock *c) { return c->ops->wall_ms(c); }

/* The real clock. Never NULL; any thread. */
aether_clock *aether_clock_real(void);

/* A simulated clock: time moves only when its owner says so. */
typedef struct aether_sim_clock {
    aether_clock base;      /* must stay first: (aether_clock *)&sim works */
    uint64_t now_ns;        /* owned by the clock's thread */
    uint64_t wall_epoch_ms; /* wall_ms() = wall_epoch_ms + now_ns / 1e6 */
} aether_sim_clock;

void aether_sim_clock_init(aether_sim_clock *c, uint64_t start_ns, uint64_t wall_epoch_ms);
/* Moves time to t_ns; t_ns earlier than now is a programmer error (asserted). */
void aether_sim_clock_set_ns(aether_sim_clock *c, uint64_t t_ns);
void aether_sim_clock_advance_ns(aether_sim_clock *c, uint64_t delta_ns);

#define AETHER_NS_PER_MS UINT64_C(1000000)
#define AETHER_NS_PER_S UINT64_C(1000000000)

#endif
