/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_step.h: the deterministic step executor (engine layer).
 *
 * Everything runs on the calling thread. Time is an aether_sim_clock that
 * moves only when no actor can run: the executor jumps to the next timer
 * deadline. Among runnable actors the next one is picked by an aether_rng
 * seeded from config.seed, and it handles batch_max messages (default 1, so
 * interleavings are as fine as possible). Same seed, same code, same inputs
 * -> the same sequence of deliveries, byte for byte.
 *
 * Timers due at the same instant fire in (deadline, id) order. Due timers fire
 * before an actor is picked.
 *
 * Threading: one thread only (asserted): the one that created the executor.
 * Sends from any other thread are a programmer error here.
 */
#ifndef AETHER_EXEC_STEP_H
#define AETHER_EXEC_STEP_H

#include <stdbool.h>
#include <stdint.h>

#include "executor.h"
#include "rng.h"

typedef struct aether_step_config {
    uint64_t seed;
    uint64_t start_ns;      /* initial simulated monotonic time */
    uint64_t wall_epoch_ms; /* wall clock at start_ns; 0 = 2026-01-01T00:00:00Z */
    uint32_t batch_max;     /* 0 = 1 */
} aether_step_config;

aether_status aether_step_create(const aether_step_config *cfg, aether_executor **out);
aether_sim_clock *aether_step_clock(aether_executor *ex);
/* The executor's own seeded generator, for simulations that need randomness
 * consistent with the schedule. */
aether_rng *aether_step_rng(aether_executor *ex);
void aether_step_set_trace(aether_executor *ex, aether_exec_trace_fn fn, void *arg);

/* Fires due timers, then runs one batch of one randomly picked runnable
 * actor. False if nothing was runnable (time does not move). */
bool aether_step_run_one(aether_executor *ex);
/* Runs actors and fires timers, moving time forward deadline by deadline,
 * until nothing is runnable and no timer is due at or before until_ns; then
 * sets the clock to until_ns. Stops early after max_steps steps. Returns the
 * number of steps taken. */
uint64_t aether_step_run_until(aether_executor *ex, uint64_t until_ns, uint64_t max_steps);
/* run_until(now + duration_ns). */
uint64_t aether_step_run_for(aether_executor *ex, uint64_t duration_ns, uint64_t max_steps);
/* Runs until no actor is runnable without moving time (due timers fire). */
uint64_t aether_step_run_until_idle(aether_executor *ex, uint64_t max_steps);
/* Freezes an actor (a paused process): it keeps receiving messages and
 * timer fires but is never picked to run until unfrozen. Time goes on. */
void aether_step_freeze(aether_executor *ex, const aether_actor *a, bool frozen);
/* Deadline of the earliest pending timer; false if none. */
bool aether_step_next_deadline(aether_executor *ex, uint64_t *deadline_ns);
uint32_t aether_step_runnable(const aether_executor *ex);

#endif
