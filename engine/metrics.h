/* SPDX-License-Identifier: Apache-2.0 */
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
 * A histogram (aether_metrics_histogram) counts observations in fixed
 * buckets chosen at registration; observing is a few relaxed atomic adds
 * (no mutex), rendered as Prometheus's _bucket{le=...} (cumulative), _sum
 * (seconds) and _count series. Like any series it is one scrape-consistent
 * value per line, not a snapshot: a scrape racing an observation may show
 * a bucket one ahead of _count.
 *
 * Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*. A series is a name plus
 * an optional label string in Prometheus syntax without the braces, e.g.
 * `node="node-a",actor="cluster"`. Registering the same name+labels twice
 * returns the same series; the same name with another kind is refused (NULL).
 * Rendering groups series of one name under one HELP/TYPE pair, in
 * registration order of the names.
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

/* A gauge computed at scrape time (e.g. a mailbox depth). Called under the
 * registry mutex on the scraping thread; must only read atomics. */
typedef int64_t (*aether_gauge_fn)(void *arg);

/* Buckets of a histogram, at most. */
#define AETHER_HISTOGRAM_BUCKETS_MAX 16u

typedef struct aether_histogram {
    uint32_t n_bounds;                            /* immutable after registration */
    uint64_t bound_ns[AETHER_HISTOGRAM_BUCKETS_MAX]; /* immutable: upper bounds, ascending */
    uint64_t counts[AETHER_HISTOGRAM_BUCKETS_MAX + 1]; /* atomic, relaxed; [n_bounds] = above all */
    uint64_t sum_ns;                              /* atomic, relaxed */
    uint64_t count;                               /* atomic, relaxed */
} aether_histogram;

aether_status aether_metrics_create(aether_metrics **out);
void aether_metrics_destroy(aether_metrics *m); /* NULL is fine */

/* NULL on invalid name/labels, kind clash or out of memory (logged). */
aether_counter *aether_metrics_counter(aether_metrics *m, const char *name, const char *help,
                                       const char *labels);
aether_gauge *aether_metrics_gauge(aether_metrics *m, const char *name, const char *help,
                                   const char *labels);
aether_status aether_metrics_gauge_fn(aether_metrics *m, const char *name, const char *help,
                                      const char *labels, aether_gauge_fn fn, void *arg);

/* A counter computed at scrape time from a total its owner keeps (an atomic
 * that only grows): rendered as TYPE counter. Same contract as gauge_fn; a
 * name is either counters or gauges, so counter_fn and counter may share a
 * name under different labels, counter_fn and gauge_fn may not. */
aether_status aether_metrics_counter_fn(aether_metrics *m, const char *name, const char *help,
                                        const char *labels, aether_gauge_fn fn, void *arg);

/* A histogram of durations: bound_ns[0..n) are the buckets' upper bounds in
 * nanoseconds, strictly ascending, 1 <= n <= AETHER_HISTOGRAM_BUCKETS_MAX
 * (rendered in seconds, the Prometheus unit). Registering name{labels}
 * again returns the same histogram (its bounds stay the first ones). NULL
 * on invalid arguments, kind clash or out of memory (logged). */
aether_histogram *aether_metrics_histogram(aether_metrics *m, const char *name, const char *help,
                                           const char *labels, const uint64_t *bound_ns, uint32_t n);

/* Any thread, lock-free: one observation of `ns` nanoseconds. */
static inline void aether_histogram_observe_ns(aether_histogram *h, uint64_t ns)
{
    uint32_t i = 0;
    while (i < h->n_bounds && ns > h->bound_ns[i]) /* bounded: AETHER_HISTOGRAM_BUCKETS_MAX */
        i++;
    __atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, ns, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

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

/* Renders every series; *out is malloc'd, NUL-terminated, caller frees. */
aether_status aether_metrics_render_prometheus(aether_metrics *m, char **out, size_t *len_out);

/* Reads one series' current value (counter, gauge or gauge_fn; a
 * histogram's count) by name and exact label string (NULL = no labels).
 * AETHER_ENOTFOUND if absent. For tests and aetherctl. */
aether_status aether_metrics_read(aether_metrics *m, const char *name, const char *labels,
                                  int64_t *value_out);

#endif
