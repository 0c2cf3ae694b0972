/* SPDX-License-Identifier: Apache-2.0 */
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

/* A drifting clock: another clock seen through a constant offset and rate
 * error, as one node of a simulated cluster sees time. Between init and now,
 * it advances (1 + rate_ppm / 1e6) times as fast as its reference; its
 * monotonic reading starts at the reference's plus offset_ns (an offset that
 * would go below zero is clamped); its wall clock is the reference's wall
 * clock shifted by wall_offset_ms plus the accumulated drift. Monotonic as
 * long as the reference is and rate_ppm > -1000000 (asserted). Touched only
 * by the reference's thread, like a simulated clock. */
typedef struct aether_drift_clock {
    aether_clock base;       /* must stay first */
    aether_clock *ref;       /* immutable after init */
    uint64_t ref_start_ns;   /* immutable: the reference's reading at init */
    uint64_t start_ns;       /* immutable: our reading at init */
    int32_t rate_ppm;        /* immutable */
    int64_t wall_offset_ms;  /* immutable */
} aether_drift_clock;

void aether_drift_clock_init(aether_drift_clock *c, aether_clock *ref, int64_t offset_ns,
                             int32_t rate_ppm, int64_t wall_offset_ms);

#define AETHER_NS_PER_MS UINT64_C(1000000)
#define AETHER_NS_PER_S UINT64_C(1000000000)

#endif
