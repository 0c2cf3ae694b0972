/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c: the registry of counters and gauges and its Prometheus text
 * rendering, exposition format 0.0.4 (engine layer); histograms too.
 *
 * Threading: registration, rendering, reading and destroy take the registry
 * mutex; updates through a returned aether_counter/aether_gauge pointer are
 * relaxed atomics on any thread, without the mutex (metrics.h).
 *
 * DESIGN
 * The registry is a list of families (one per metric name, in registration
 * order), each holding its series in registration order. Every series is its
 * own allocation and is never moved or freed before the registry is
 * destroyed: the pointer handed out at registration stays valid for the
 * registry's lifetime, which is what lets updates skip the mutex. A family has
 * one Prometheus type; a counter and a gauge cannot share a name (registering
 * one would make the scrape invalid), but set gauges and computed gauges
 * (gauge_fn) are both "gauge" and may share a name under different labels.
 *
 * A series is identified by name plus its label string byte for byte, so
 * `a="1",b="2"` and `b="2",a="1"` are two series; callers build label strings
 * in one place each. NULL and "" both mean "no labels".
 *
 * Bound: at most METRICS_SERIES_MAX series per registry, so a label that
 * wrongly carries an unbounded value (a message id) fails loudly instead of
 * growing the scrape without limit.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "log.h"

#define METRICS_SERIES_MAX 65536u
#define METRICS_NAME_MAX 200u    /* bytes of a metric name */
#define METRICS_LABELS_MAX 1024u /* bytes of a label string */

typedef enum metric_kind {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_GAUGE_FN,
    METRIC_COUNTER_FN,
    METRIC_HISTOGRAM,
} metric_kind;

/* A family's Prometheus type. */
typedef enum family_type {
    FAMILY_GAUGE,
    FAMILY_COUNTER,
    FAMILY_HISTOGRAM,
} family_type;

typedef struct metric_series {
    struct metric_series *next; /* under the registry mutex */
    metric_kind kind;           /* immutable after registration */
    char *labels;               /* immutable; "" when none */
    aether_counter counter;     /* METRIC_COUNTER: atomic, relaxed */
    aether_gauge gauge;         /* METRIC_GAUGE: atomic, relaxed */
    aether_histogram histogram; /* METRIC_HISTOGRAM: bounds immutable, counts atomic */
    aether_gauge_fn fn;         /* METRIC_*_FN: under the registry mutex */
    void *fn_arg;               /* METRIC_*_FN: under the registry mutex */
} metric_series;

typedef struct metric_family {
    struct metric_family *next; /* under the registry mutex */
    char *name;                 /* immutable */
    char *help;                 /* immutable; the first registration's; NULL = none */
    family_type type;           /* immutable */
    metric_series *series;      /* under the registry mutex; registration order */
    metric_series *series_tail;
} metric_family;

struct aether_metrics {
    pthread_mutex_t mu;
    metric_family *families;    /* under mu; registration order */
    metric_family *families_tail;
    uint32_t series_count;      /* under mu */
};

/* ---- Validation -------------------------------------------------------- */

static bool name_char_first(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char_rest(char c) { return name_char_first(c) || (c >= '0' && c <= '9'); }

static bool metric_name_is_valid(const char *name)
{
    if (name == NULL || !name_char_first(name[0]))
        return false;
    size_t i = 1;
    for (; name[i] != '\0'; i++)
        if (!name_char_rest(name[i]))
            return false;
    return i <= METRICS_NAME_MAX;
}

/* Label names are [a-zA-Z_][a-zA-Z0-9_]*; names starting "__" are reserved
 * by Prometheus. */
static size_t label_name_len(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    size_t i = 1;
    while ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
           (s[i] >= '0' && s[i] <= '9'))
        i++;
    return i;
}

/* `name="value"` pairs separated by single commas, no spaces, no trailing
 * comma, no repeated name; a value escapes only \" \\ and \n and holds no raw
 * newline. */
static bool labels_are_valid(const char *labels)
{
    if (labels == NULL || labels[0] == '\0')
        return true;
    if (strlen(labels) > METRICS_LABELS_MAX)
        return false;

    /* Seen names, to refuse duplicates: bounded by the string length. */
    const char *seen[METRICS_LABELS_MAX / 4];
    size_t seen_len[METRICS_LABELS_MAX / 4];
    size_t nseen = 0;
    const char *p = labels;

    for (;;) {
        size_t n = label_name_len(p);
        if (n == 0 || (n >= 2 && p[0] == '_' && p[1] == '_'))
            return false;
        for (size_t i = 0; i < nseen; i++)
            if (seen_len[i] == n && memcmp(seen[i], p, n) == 0)
                return false;
        AETHER_ASSERT(nseen < sizeof(seen) / sizeof(seen[0])); /* each pair is >= 4 bytes */
        seen[nseen] = p;
        seen_len[nseen] = n;
        nseen++;
        p += n;
        if (p[0] != '=' || p[1] != '"')
            return false;
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return false;
            if (*p == '\\') {
                if (p[1] != '"' && p[1] != '\\' && p[1] != 'n')
                    return false;
                p++;
            }
            p++;
        }
        p++; /* closing quote */
        if (*p == '\0')
            return true;
        if (*p != ',' || p[1] == '\0')
            return false;
        p++;
    }
}

/* ---- Registry ---------------------------------------------------------- */

aether_status aether_metrics_create(aether_metrics **out)
{
    AETHER_ASSERT(out != NULL);
    *out = NULL;
    aether_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return AETHER_ENOMEM;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return AETHER_ENOMEM;
    }
    *out = m;
    return AETHER_OK;
}

void aether_metrics_destroy(aether_metrics *m)
{
    if (m == NULL)
        return;
    metric_family *f = m->families;
    while (f != NULL) {
        metric_family *fnext = f->next;
        metric_series *s = f->series;
        while (s != NULL) {
            metric_series *snext = s->next;
            free(s->labels);
            free(s);
            s = snext;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const char *labels_or_empty(const char *labels) { return labels != NULL ? labels : ""; }

static metric_family *family_find_locked(aether_metrics *m, const char *name)
{
    for (metric_family *f = m->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static metric_series *series_find_locked(metric_family *f, const char *labels)
{
    for (metric_series *s = f->series; s != NULL; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    return NULL;
}

static const char *kind_name(metric_kind k)
{
    switch (k) {
    case METRIC_COUNTER:
        return "counter";
    case METRIC_GAUGE:
        return "gauge";
    case METRIC_GAUGE_FN:
        return "gauge_fn";
    case METRIC_COUNTER_FN:
        return "counter_fn";
    case METRIC_HISTOGRAM:
        return "histogram";
    }
    return "?";
}

/* Finds or adds the series name{labels} of kind `kind`. On success *created
 * says whether it is new. Logs and returns the reason on failure:
 * AETHER_EINVAL (name/labels), AETHER_ECONFLICT (another kind under this
 * name+labels or another type under this name), AETHER_EFULL (bound),
 * AETHER_ENOMEM. */
static family_type kind_family(metric_kind k)
{
    if (k == METRIC_HISTOGRAM)
        return FAMILY_HISTOGRAM;
    return k == METRIC_COUNTER || k == METRIC_COUNTER_FN ? FAMILY_COUNTER : FAMILY_GAUGE;
}

static const char *family_type_name(family_type t)
{
    return t == FAMILY_HISTOGRAM ? "histogram" : t == FAMILY_COUNTER ? "counter" : "gauge";
}

static aether_status series_get_locked(aether_metrics *m, const char *name, const char *help,
                                       const char *labels, metric_kind kind,
                                       metric_series **out, bool *created)
{
    metric_family *f = NULL;
    metric_series *s = NULL;
    bool new_family = false;

    *out = NULL;
    *created = false;
    if (!metric_name_is_valid(name)) {
        AETHER_ERROR("metrics", "refused metric name '%s': not [a-zA-Z_:][a-zA-Z0-9_:]*",
                     name != NULL ? name : "(null)");
        return AETHER_EINVAL;
    }
    if (!labels_are_valid(labels)) {
        AETHER_ERROR("metrics", "refused labels '%s' of metric %s: not name=\"value\",...",
                     labels, name);
        return AETHER_EINVAL;
    }
    labels = labels_or_empty(labels);

    f = family_find_locked(m, name);
    if (f != NULL) {
        if (f->type != kind_family(kind)) {
            AETHER_ERROR("metrics", "refused %s %s{%s}: %s is already a %s", kind_name(kind), name,
                         labels, name, family_type_name(f->type));
            return AETHER_ECONFLICT;
        }
        s = series_find_locked(f, labels);
        if (s != NULL) {
            if (s->kind != kind) {
                AETHER_ERROR("metrics", "refused %s %s{%s}: already registered as a %s",
                             kind_name(kind), name, labels, kind_name(s->kind));
                return AETHER_ECONFLICT;
            }
            *out = s;
            return AETHER_OK;
        }
    }
    if (m->series_count >= METRICS_SERIES_MAX) {
        AETHER_ERROR("metrics", "refused %s{%s}: registry holds %u series already", name, labels,
                     METRICS_SERIES_MAX);
        return AETHER_EFULL;
    }

    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL)
            goto fail;
        new_family = true;
        f->type = kind_family(kind);
        f->name = strdup(name);
        if (f->name == NULL)
            goto fail;
        if (help != NULL) {
            f->help = strdup(help);
            if (f->help == NULL)
                goto fail;
        }
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->kind = kind;
    s->labels = strdup(labels);
    if (s->labels == NULL)
        goto fail;

    /* Link only once nothing can fail. */
    if (f->series_tail != NULL)
        f->series_tail->next = s;
    else
        f->series = s;
    f->series_tail = s;
    if (new_family) {
        if (m->families_tail != NULL)
            m->families_tail->next = f;
        else
            m->families = f;
        m->families_tail = f;
    }
    m->series_count++;
    *out = s;
    *created = true;
    return AETHER_OK;

fail:
    if (s != NULL) {
        free(s->labels);
        free(s);
    }
    if (new_family) {
        free(f->name);
        free(f->help);
        free(f);
    }
    AETHER_ERROR("metrics", "out of memory registering %s{%s}", name, labels);
    return AETHER_ENOMEM;
}

aether_counter *aether_metrics_counter(aether_metrics *m, const char *name, const char *help,
                                       const char *labels)
{
    AETHER_ASSERT(m != NULL);
    metric_series *s;
    bool created;
    pthread_mutex_lock(&m->mu);
    aether_status st = series_get_locked(m, name, help, labels, METRIC_COUNTER, &s, &created);
    pthread_mutex_unlock(&m->mu);
    return st == AETHER_OK ? &s->counter : NULL;
}

aether_gauge *aether_metrics_gauge(aether_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    AETHER_ASSERT(m != NULL);
    metric_series *s;
    bool created;
    pthread_mutex_lock(&m->mu);
    aether_status st = series_get_locked(m, name, help, labels, METRIC_GAUGE, &s, &created);
    pthread_mutex_unlock(&m->mu);
    return st == AETHER_OK ? &s->gauge : NULL;
}

aether_histogram *aether_metrics_histogram(aether_metrics *m, const char *name, const char *help,
                                           const char *labels, const uint64_t *bound_ns, uint32_t n)
{
    AETHER_ASSERT(m != NULL && bound_ns != NULL);
    if (n == 0 || n > AETHER_HISTOGRAM_BUCKETS_MAX) {
        AETHER_ERROR("metrics", "refused histogram %s: %u buckets (1..%u)", name != NULL ? name : "(null)",
                     n, AETHER_HISTOGRAM_BUCKETS_MAX);
        return NULL;
    }
    for (uint32_t i = 1; i < n; i++)
        if (bound_ns[i] <= bound_ns[i - 1]) {
            AETHER_ERROR("metrics", "refused histogram %s: bucket bounds not ascending",
                         name != NULL ? name : "(null)");
            return NULL;
        }
    metric_series *s;
    bool created;
    pthread_mutex_lock(&m->mu);
    aether_status st = series_get_locked(m, name, help, labels, METRIC_HISTOGRAM, &s, &created);
    if (st == AETHER_OK && created) {
        s->histogram.n_bounds = n;
        memcpy(s->histogram.bound_ns, bound_ns, (size_t)n * sizeof(*bound_ns));
    }
    pthread_mutex_unlock(&m->mu);
    return st == AETHER_OK ? &s->histogram : NULL;
}

/* Registering name{labels} again replaces the function and its argument: the
 * same series, computed by the latest owner (an actor re-created under the
 * same name takes its series over instead of failing). */
static aether_status series_fn(aether_metrics *m, const char *name, const char *help,
                               const char *labels, metric_kind kind, aether_gauge_fn fn, void *arg)
{
    AETHER_ASSERT(m != NULL);
    AETHER_ASSERT(fn != NULL);
    metric_series *s;
    bool created;
    pthread_mutex_lock(&m->mu);
    aether_status st = series_get_locked(m, name, help, labels, kind, &s, &created);
    if (st == AETHER_OK) {
        s->fn = fn;
        s->fn_arg = arg;
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

aether_status aether_metrics_gauge_fn(aether_metrics *m, const char *name, const char *help,
                                      const char *labels, aether_gauge_fn fn, void *arg)
{
    return series_fn(m, name, help, labels, METRIC_GAUGE_FN, fn, arg);
}

aether_status aether_metrics_counter_fn(aether_metrics *m, const char *name, const char *help,
                                        const char *labels, aether_gauge_fn fn, void *arg)
{
    return series_fn(m, name, help, labels, METRIC_COUNTER_FN, fn, arg);
}

void aether_metrics_gauge_fn_release(aether_metrics *m, const char *name, const char *labels,
                                     void *arg)
{
    AETHER_ASSERT(m != NULL && name != NULL);
    pthread_mutex_lock(&m->mu);
    metric_family *f = family_find_locked(m, name);
    metric_series *s = f != NULL ? series_find_locked(f, labels_or_empty(labels)) : NULL;
    if (s != NULL && (s->kind == METRIC_GAUGE_FN || s->kind == METRIC_COUNTER_FN) &&
        s->fn_arg == arg) {
        s->fn = NULL;
        s->fn_arg = NULL;
    }
    pthread_mutex_unlock(&m->mu);
}

static int64_t series_value_locked(const metric_series *s)
{
    switch (s->kind) {
    case METRIC_COUNTER: {
        uint64_t v = aether_counter_get(&s->counter);
        return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    case METRIC_GAUGE:
        return aether_gauge_get(&s->gauge);
    case METRIC_GAUGE_FN:
    case METRIC_COUNTER_FN:
        return s->fn != NULL ? s->fn(s->fn_arg) : 0;
    case METRIC_HISTOGRAM: {
        uint64_t v = __atomic_load_n(&s->histogram.count, __ATOMIC_RELAXED);
        return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    }
    AETHER_ASSERT(!"unknown metric kind");
    return 0;
}

aether_status aether_metrics_read(aether_metrics *m, const char *name, const char *labels,
                                  int64_t *value_out)
{
    AETHER_ASSERT(m != NULL && name != NULL && value_out != NULL);
    aether_status st = AETHER_ENOTFOUND;
    pthread_mutex_lock(&m->mu);
    metric_family *f = family_find_locked(m, name);
    metric_series *s = f != NULL ? series_find_locked(f, labels_or_empty(labels)) : NULL;
    if (s != NULL) {
        *value_out = series_value_locked(s);
        st = AETHER_OK;
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

/* ---- Rendering --------------------------------------------------------- */

typedef struct render_buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} render_buf;

static void rb_reserve(render_buf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap != 0 ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void rb_put(render_buf *b, const char *s, size_t n)
{
    rb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void rb_puts(render_buf *b, const char *s) { rb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void rb_printf(render_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    AETHER_ASSERT(n >= 0 && (size_t)n < sizeof(tmp)); /* used for numbers only */
    rb_put(b, tmp, (size_t)n);
}

/* HELP text escapes only backslash and newline (format 0.0.4). */
static void rb_put_help(render_buf *b, const char *help)
{
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\')
            rb_puts(b, "\\\\");
        else if (*p == '\n')
            rb_puts(b, "\\n");
        else
            rb_put(b, p, 1);
    }
}

/* name{labels[,extra]} with no value yet. */
static void rb_put_series(render_buf *b, const char *name, const char *suffix, const char *labels,
                          const char *extra)
{
    rb_puts(b, name);
    rb_puts(b, suffix);
    if (labels[0] == '\0' && extra == NULL)
        return;
    rb_puts(b, "{");
    rb_puts(b, labels);
    if (extra != NULL) {
        if (labels[0] != '\0')
            rb_puts(b, ",");
        rb_puts(b, extra);
    }
    rb_puts(b, "}");
}

/* Nanoseconds as seconds, exactly (no binary rounding): 1500 -> "0.0000015".
 * buf holds SECONDS_TEXT_MAX bytes: 20 digits, a point, 9 digits, NUL. */
#define SECONDS_TEXT_MAX 32u
static void seconds_text(uint64_t ns, char buf[SECONDS_TEXT_MAX])
{
    uint64_t frac = ns % 1000000000u;
    int n = snprintf(buf, SECONDS_TEXT_MAX, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, frac);
    AETHER_ASSERT(n > 0 && (size_t)n < SECONDS_TEXT_MAX);
    while (buf[n - 1] == '0') /* bounded: the 9 fraction digits, then the point */
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
}

/* A histogram: cumulative buckets, then +Inf, _sum (seconds), _count. */
static void render_histogram(render_buf *b, const char *name, const metric_series *s)
{
    const aether_histogram *h = &s->histogram;
    uint64_t cum = 0;
    char secs[SECONDS_TEXT_MAX], le[SECONDS_TEXT_MAX + 8];
    for (uint32_t i = 0; i <= h->n_bounds; i++) { /* bounded: AETHER_HISTOGRAM_BUCKETS_MAX + 1 */
        cum += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        if (i == h->n_bounds) {
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        } else {
            seconds_text(h->bound_ns[i], secs);
            snprintf(le, sizeof(le), "le=\"%s\"", secs);
        }
        rb_put_series(b, name, "_bucket", s->labels, le);
        rb_printf(b, " %" PRIu64 "\n", cum);
    }
    rb_put_series(b, name, "_sum", s->labels, NULL);
    seconds_text(__atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED), secs);
    rb_puts(b, " ");
    rb_puts(b, secs);
    rb_puts(b, "\n");
    rb_put_series(b, name, "_count", s->labels, NULL);
    rb_printf(b, " %" PRIu64 "\n", __atomic_load_n(&h->count, __ATOMIC_RELAXED));
}

aether_status aether_metrics_render_prometheus(aether_metrics *m, char **out, size_t *len_out)
{
    AETHER_ASSERT(m != NULL && out != NULL);
    render_buf b = { NULL, 0, 0, false };

    *out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    rb_reserve(&b, 0); /* an empty registry still renders "" */
    if (!b.oom)
        b.p[0] = '\0';
    pthread_mutex_lock(&m->mu);
    for (metric_family *f = m->families; f != NULL; f = f->next) {
        if (f->help != NULL) {
            rb_puts(&b, "# HELP ");
            rb_puts(&b, f->name);
            rb_puts(&b, " ");
            rb_put_help(&b, f->help);
            rb_puts(&b, "\n");
        }
        rb_puts(&b, "# TYPE ");
        rb_puts(&b, f->name);
        rb_puts(&b, " ");
        rb_puts(&b, family_type_name(f->type));
        rb_puts(&b, "\n");
        for (metric_series *s = f->series; s != NULL; s = s->next) {
            if (s->kind == METRIC_HISTOGRAM) {
                render_histogram(&b, f->name, s);
                continue;
            }
            rb_puts(&b, f->name);
            if (s->labels[0] != '\0') {
                rb_puts(&b, "{");
                rb_puts(&b, s->labels);
                rb_puts(&b, "}");
            }
            if (s->kind == METRIC_COUNTER)
                rb_printf(&b, " %" PRIu64 "\n", aether_counter_get(&s->counter));
            else
                rb_printf(&b, " %" PRId64 "\n", series_value_locked(s));
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        return AETHER_ENOMEM;
    }
    *out = b.p;
    if (len_out != NULL)
        *len_out = b.len;
    return AETHER_OK;
}
