/*
 * metrics.h: a registry of counters and gauges rendered as Prometheus text
 * (engine layer).
 *
 * Registration (aether_metrics_counter/gauge/gauge_fn) takes the registry
 * mutex and is meant for start-up; it returns a stable pointer the caller
 * keeps. Updates through that pointer are lock-free relaxed atomics, any
 * thread. Rendering takes the mutex and reads each value once (a scrape is a
 * set of individually consistent values, not a global snapshot).
 *
 * Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*. A series is a name plus
 * an optional label string in Prometheus syntax without the braces, e.g.
 * `node="node-a",actor="cluster"`. Registering the same name+labels twice
 * returns the same series; the same name with another kind is refused (NULL).
 * Rendering groups series of one name under one HELP/TYPE pair, in
 * registration order of the names.
 *
 * Histograms (aether_metrics_histogram) have fixed buckets given at
 * registration, in microseconds, and render in seconds as Prometheus
 * expects (name_bucket{le="0.005"}, name_sum, name_count; the name should
 * end in _seconds). An observation is two relaxed atomic adds, any thread;
 * a scrape reads each bucket once, so _count (the sum of the buckets it
 * read) always equals the +Inf bucket, and _sum may trail by the
 * observations in flight.
 */
#ifndef AETHER_METRICS_H
#define AETHER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct aether_metrics aether_metrics;

typedef struct aether_counter {
    uint64_t value; /* atomic, relaxed; only grows */
} aether_counter;

typedef struct aether_gauge {
    int64_t value; /* atomic, relaxed */
} aether_gauge;

/* At most this many finite bucket bounds per histogram (+Inf is implied). */
#define AETHER_HISTOGRAM_BOUNDS_MAX 16u

typedef struct aether_histogram {
    uint32_t bound_count;                            /* immutable after registration */
    uint64_t bounds_us[AETHER_HISTOGRAM_BOUNDS_MAX]; /* immutable: ascending upper bounds */
    uint64_t counts[AETHER_HISTOGRAM_BOUNDS_MAX + 1]; /* atomic, relaxed: per bucket, not
                                                         cumulative; [bound_count] = +Inf */
    uint64_t sum_us;                                  /* atomic, relaxed */
} aether_histogram;

/* A gauge computed at scrape time (e.g. a mailbox depth). Called under the
 * registry mutex on the scraping thread; must only read atomics. */
typedef int64_t (*aether_gauge_fn)(void *arg);

aether_status aether_metrics_create(aether_metrics **out);
void aether_metrics_destroy(aether_metrics *m); /* NULL is fine */

/* NULL on invalid name/labels, kind clash or out of memory (logged). */
aether_counter *aether_metrics_counter(aether_metrics *m, const char *name, const char *help,
                                       const char *labels);
aether_gauge *aether_metrics_gauge(aether_metrics *m, const char *name, const char *help,
                                   const char *labels);
aether_status aether_metrics_gauge_fn(aether_metrics *m, const char *name, const char *help,
                                      const char *labels, aether_gauge_fn fn, void *arg);

/* A histogram series with bound_count (1..AETHER_HISTOGRAM_BOUNDS_MAX)
 * strictly ascending bounds in microseconds. Registering the same
 * name+labels again returns the same series if the bounds are equal, else
 * NULL (logged), as for a kind clash. NULL on invalid input or out of
 * memory. */
aether_histogram *aether_metrics_histogram(aether_metrics *m, const char *name, const char *help,
                                           const char *labels, const uint64_t *bounds_us,
                                           uint32_t bound_count);

/* A counter computed at scrape time from a total its owner keeps (an atomic
 * that only grows): rendered as TYPE counter. Same contract as gauge_fn; a
 * name is either counters or gauges, so counter_fn and counter may share a
 * name under different labels, counter_fn and gauge_fn may not. */
aether_status aether_metrics_counter_fn(aether_metrics *m, const char *name, const char *help,
                                        const char *labels, aether_gauge_fn fn, void *arg);

/* The owner of arg is going away: the series (gauge_fn or counter_fn) stops
 * calling fn and reads 0 from now on (unless it was re-registered with
 * another arg, which is left alone). After it returns, fn is never called
 * with arg again. */
void aether_metrics_gauge_fn_release(aether_metrics *m, const char *name, const char *labels,
                                     void *arg);

static inline void aether_counter_add(aether_counter *c, uint64_t n)
{
    __atomic_fetch_add(&c->value, n, __ATOMIC_RELAXED);
}
static inline void aether_counter_inc(aether_counter *c) { aether_counter_add(c, 1); }
static inline uint64_t aether_counter_get(const aether_counter *c)
{
    return __atomic_load_n(&c->value, __ATOMIC_RELAXED);
}
static inline void aether_gauge_set(aether_gauge *g, int64_t v)
{
    __atomic_store_n(&g->value, v, __ATOMIC_RELAXED);
}
static inline void aether_gauge_add(aether_gauge *g, int64_t d)
{
    __atomic_fetch_add(&g->value, d, __ATOMIC_RELAXED);
}
static inline int64_t aether_gauge_get(const aether_gauge *g)
{
    return __atomic_load_n(&g->value, __ATOMIC_RELAXED);
}

/* Counts one observation of us microseconds. h NULL does nothing (a
 * component built without a registry). Any thread. */
static inline void aether_histogram_observe_us(aether_histogram *h, uint64_t us)
{
    if (h == NULL)
        return;
    uint32_t i = 0;
    while (i < h->bound_count && us > h->bounds_us[i])
        i++;
    __atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_us, us, __ATOMIC_RELAXED);
}

/* Observations so far (all buckets). Any thread. */
uint64_t aether_histogram_count(const aether_histogram *h);

/* Renders every series; *out is malloc'd, NUL-terminated, caller frees. */
aether_status aether_metrics_render_prometheus(aether_metrics *m, char **out, size_t *len_out);

/* Reads one series' current value (counter, gauge or gauge_fn) by name and
 * exact label string (NULL = no labels). AETHER_ENOTFOUND if absent. For
 * tests and aetherctl. */
aether_status aether_metrics_read(aether_metrics *m, const char *name, const char *labels,
                                  int64_t *value_out);

#endif
