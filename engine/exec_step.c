/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_step.c: the deterministic step executor (engine layer). See
 * exec_step.h for the contract.
 *
 * Determinism rests on three things: the runnable set changes only through
 * schedule() calls made by code running on this thread, in program order;
 * the next actor is rng_below(runnable) with the executor's seeded rng; and
 * timers fire in (deadline, id) order on the simulated clock. No wall time,
 * no hash-table order, no thread enters.
 */
#include "exec_step.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "snapshot.h"
#include "timer_heap.h"

/* 2026-01-01T00:00:00Z: the default simulated wall clock at start. */
#define DEFAULT_WALL_EPOCH_MS UINT64_C(1767225600000)

typedef struct step_exec {
    aether_executor base; /* first: the executor ops cast back */
    aether_sim_clock clock;
    aether_rng rng;
    uint32_t batch_max;
    pthread_t owner;
    aether_actor **runnable; /* scheduled actors, in a deterministic order */
    uint32_t n_runnable;
    uint32_t cap_runnable;   /* >= attached actors, so schedule never allocates */
    uint32_t attached;
    aether_timer_heap timers;
    const aether_actor **frozen; /* actors that must not run (a paused process) */
    uint32_t n_frozen, cap_frozen;
} step_exec;

static step_exec *as_step(aether_executor *ex) { return (step_exec *)ex; }

static void assert_owner(const step_exec *s)
{
    AETHER_ASSERT(pthread_equal(pthread_self(), s->owner));
}

static aether_status step_attach(aether_executor *ex, aether_actor *a)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    if (s->attached == s->cap_runnable) {
        uint32_t cap = s->cap_runnable ? s->cap_runnable * 2 : 16;
        aether_actor **v = realloc(s->runnable, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return AETHER_ENOMEM;
        s->runnable = v;
        s->cap_runnable = cap;
    }
    s->attached++;
    (void)a;
    return AETHER_OK;
}

static void remove_runnable(step_exec *s, aether_actor *a)
{
    /* Order-preserving removal keeps the choice sequence a function of the
     * schedule history alone. */
    for (uint32_t i = 0; i < s->n_runnable; i++) {
        if (s->runnable[i] == a) {
            memmove(&s->runnable[i], &s->runnable[i + 1],
                    (size_t)(s->n_runnable - i - 1) * sizeof(*s->runnable));
            s->n_runnable--;
            return;
        }
    }
}

static void step_detach(aether_executor *ex, aether_actor *a)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    remove_runnable(s, a);
    aether_step_freeze(ex, a, false);
    aether_timer_heap_cancel_target(&s->timers, a);
    AETHER_ASSERT(s->attached > 0);
    s->attached--;
}

static void step_schedule(aether_executor *ex, aether_actor *a)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    AETHER_ASSERT(s->n_runnable < s->cap_runnable);
    s->runnable[s->n_runnable++] = a;
}

static void step_quiesce(aether_executor *ex, aether_actor *a)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    if (aether_actor_is_scheduled_(a)) {
        remove_runnable(s, a);
        aether_actor_unschedule_(a);
    }
}

static aether_status step_timer_start(aether_executor *ex, aether_actor *target, uint64_t delay_ns,
                                      uint64_t period_ns, const aether_msg *msg,
                                      aether_timer_id *out)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    return aether_timer_heap_add(&s->timers, s->clock.now_ns + delay_ns, period_ns, target, msg, out);
}

static bool step_timer_cancel(aether_executor *ex, aether_timer_id id)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    return aether_timer_heap_cancel(&s->timers, id);
}

static void step_destroy(aether_executor *ex)
{
    step_exec *s = as_step(ex);
    AETHER_ASSERT(s->attached == 0);
    aether_timer_heap_fini(&s->timers);
    free(s->runnable);
    free(s->frozen);
    free(s);
}

static const aether_executor_ops step_ops = {
    .attach = step_attach,
    .detach = step_detach,
    .schedule = step_schedule,
    .quiesce = step_quiesce,
    .timer_start = step_timer_start,
    .timer_cancel = step_timer_cancel,
    .destroy = step_destroy,
};

aether_status aether_step_create(const aether_step_config *cfg, aether_executor **out)
{
    AETHER_ASSERT(cfg != NULL && out != NULL);
    step_exec *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return AETHER_ENOMEM;
    aether_sim_clock_init(&s->clock, cfg->start_ns,
                          cfg->wall_epoch_ms ? cfg->wall_epoch_ms : DEFAULT_WALL_EPOCH_MS);
    aether_rng_seed(&s->rng, cfg->seed);
    s->batch_max = cfg->batch_max ? cfg->batch_max : 1;
    s->owner = pthread_self();
    aether_timer_heap_init(&s->timers);
    s->base.ops = &step_ops;
    s->base.clock = &s->clock.base;
    /* Actors on this thread read and publish snapshots. */
    aether_rcu_register_thread();
    *out = &s->base;
    return AETHER_OK;
}

aether_sim_clock *aether_step_clock(aether_executor *ex) { return &as_step(ex)->clock; }
aether_rng *aether_step_rng(aether_executor *ex) { return &as_step(ex)->rng; }

void aether_step_set_trace(aether_executor *ex, aether_exec_trace_fn fn, void *arg)
{
    ex->trace = fn;
    ex->trace_arg = arg;
}

#define STEP_FROZEN 1u /* exec flag: in s->frozen */

static bool is_frozen(const step_exec *s, const aether_actor *a)
{
    (void)s;
    return (aether_actor_exec_flags_(a) & STEP_FROZEN) != 0;
}

void aether_step_freeze(aether_executor *ex, const aether_actor *a, bool frozen)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    if (frozen == is_frozen(s, a))
        return;
    aether_actor *mut = (aether_actor *)a; /* the mark is the executor's own field */
    aether_actor_set_exec_flags_(mut, frozen ? aether_actor_exec_flags_(a) | STEP_FROZEN
                                             : aether_actor_exec_flags_(a) & ~STEP_FROZEN);
    if (!frozen) {
        for (uint32_t i = 0; i < s->n_frozen; i++)
            if (s->frozen[i] == a)
                s->frozen[i] = s->frozen[--s->n_frozen];
        return;
    }
    if (s->n_frozen == s->cap_frozen) {
        uint32_t cap = s->cap_frozen ? s->cap_frozen * 2 : 8;
        const aether_actor **v = realloc(s->frozen, (size_t)cap * sizeof(*v));
        AETHER_ASSERT(v != NULL); /* a simulation control, not a runtime path */
        s->frozen = v;
        s->cap_frozen = cap;
    }
    s->frozen[s->n_frozen++] = a;
}

bool aether_step_run_one(aether_executor *ex)
{
    step_exec *s = as_step(ex);
    assert_owner(s);
    aether_timer_heap_fire_due(&s->timers, s->clock.now_ns);
    if (s->n_runnable == 0)
        return false;
    if (s->n_frozen > 0) {
        /* Choose among the runnable actors that are not frozen, in order. */
        uint32_t live = 0;
        for (uint32_t k = 0; k < s->n_runnable; k++)
            live += !is_frozen(s, s->runnable[k]);
        if (live == 0)
            return false;
        uint32_t pick = (uint32_t)aether_rng_below(&s->rng, live);
        for (uint32_t k = 0; k < s->n_runnable; k++) {
            if (is_frozen(s, s->runnable[k]))
                continue;
            if (pick-- == 0) {
                aether_actor *a = s->runnable[k];
                s->runnable[k] = s->runnable[--s->n_runnable];
                if (aether_actor_run_(a, s->batch_max))
                    s->runnable[s->n_runnable++] = a;
                return true;
            }
        }
        AETHER_ASSERT(!"unreachable: live actors counted above");
    }
    uint32_t i = (uint32_t)aether_rng_below(&s->rng, s->n_runnable);
    aether_actor *a = s->runnable[i];
    s->runnable[i] = s->runnable[--s->n_runnable];
    if (aether_actor_run_(a, s->batch_max))
        s->runnable[s->n_runnable++] = a;
    return true;
}

uint64_t aether_step_run_until(aether_executor *ex, uint64_t until_ns, uint64_t max_steps)
{
    step_exec *s = as_step(ex);
    uint64_t steps = 0;
    while (steps < max_steps) {
        if (aether_step_run_one(ex)) {
            steps++;
            continue;
        }
        uint64_t next;
        if (!aether_timer_heap_next(&s->timers, &next) || next > until_ns)
            break;
        if (next > s->clock.now_ns)
            aether_sim_clock_set_ns(&s->clock, next);
    }
    if (steps < max_steps && until_ns > s->clock.now_ns)
        aether_sim_clock_set_ns(&s->clock, until_ns);
    return steps;
}

uint64_t aether_step_run_for(aether_executor *ex, uint64_t duration_ns, uint64_t max_steps)
{
    return aether_step_run_until(ex, as_step(ex)->clock.now_ns + duration_ns, max_steps);
}

uint64_t aether_step_run_until_idle(aether_executor *ex, uint64_t max_steps)
{
    return aether_step_run_until(ex, as_step(ex)->clock.now_ns, max_steps);
}

bool aether_step_next_deadline(aether_executor *ex, uint64_t *deadline_ns)
{
    return aether_timer_heap_next(&as_step(ex)->timers, deadline_ns);
}

uint32_t aether_step_runnable(const aether_executor *ex)
{
    return ((const step_exec *)ex)->n_runnable;
}
