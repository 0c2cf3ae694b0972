/*
 * metrics.c: the registry of counters and gauges and its Prometheus text
 * rendering, exposition format 0.0.4 (engine layer).
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

typedef struct metric_series {
    struct metric_series *next; /* under the registry mutex */
    metric_kind kind;           /* immutable after registration */
    char *labels;               /* immutable; "" when none */
    aether_counter counter;     /* METRIC_COUNTER: atomic, relaxed */
    aether_gauge gauge;         /* METRIC_GAUGE: atomic, relaxed */
    aether_gauge_fn fn;         /* METRIC_*_FN: under the registry mutex */
    void *fn_arg;               /* METRIC_*_FN: under the registry mutex */
    aether_histogram hist;      /* METRIC_HISTOGRAM: bounds immutable, counts atomic */
} metric_series;

typedef struct metric_family {
    struct metric_family *next; /* under the registry mutex */
    char *name;                 /* immutable */
    char *help;                 /* immutable; the first registration's; NULL = none */
    bool is_counter;            /* immutable: Prometheus type counter, else gauge */
    bool is_histogram;          /* immutable: Prometheus type histogram (then not a counter) */
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
static bool kind_is_counter(metric_kind k) { return k == METRIC_COUNTER || k == METRIC_COUNTER_FN; }

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
        if (f->is_counter != kind_is_counter(kind) ||
            f->is_histogram != (kind == METRIC_HISTOGRAM)) {
            AETHER_ERROR("metrics", "refused %s %s{%s}: %s is already a %s", kind_name(kind), name,
                         labels, name,
                         f->is_histogram ? "histogram" : f->is_counter ? "counter" : "gauge");
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
        f->is_counter = kind_is_counter(kind);
        f->is_histogram = kind == METRIC_HISTOGRAM;
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

aether_histogram *aether_metrics_histogram(aether_metrics *m, const char *name, const char *help,
                                           const char *labels, const uint64_t *bounds_us,
                                           uint32_t bound_count)
{
    AETHER_ASSERT(m != NULL && (bounds_us != NULL || bound_count == 0));
    if (bound_count == 0 || bound_count > AETHER_HISTOGRAM_BOUNDS_MAX) {
        AETHER_ERROR("metrics", "refused histogram %s: %u bounds (1..%u)", name, bound_count,
                     AETHER_HISTOGRAM_BOUNDS_MAX);
        return NULL;
    }
    for (uint32_t i = 1; i < bound_count; i++) {
        if (bounds_us[i] <= bounds_us[i - 1]) {
            AETHER_ERROR("metrics", "refused histogram %s: bounds not strictly ascending", name);
            return NULL;
        }
    }
    metric_series *s;
    bool created;
    pthread_mutex_lock(&m->mu);
    aether_status st = series_get_locked(m, name, help, labels, METRIC_HISTOGRAM, &s, &created);
    if (st == AETHER_OK && created) {
        s->hist.bound_count = bound_count;
        memcpy(s->hist.bounds_us, bounds_us, bound_count * sizeof(bounds_us[0]));
    } else if (st == AETHER_OK && (s->hist.bound_count != bound_count ||
                                   memcmp(s->hist.bounds_us, bounds_us,
                                          bound_count * sizeof(bounds_us[0])) != 0)) {
        AETHER_ERROR("metrics", "refused histogram %s{%s}: registered with other bounds", name,
                     labels_or_empty(labels));
        st = AETHER_ECONFLICT;
    }
    pthread_mutex_unlock(&m->mu);
    return st == AETHER_OK ? &s->hist : NULL;
}

uint64_t aether_histogram_count(const aether_histogram *h)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i <= h->bound_count; i++)
        n += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
    return n;
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
        uint64_t v = aether_histogram_count(&s->hist);
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

/* Microseconds as seconds, shortest exact decimal: 500 -> "0.0005",
 * 2500000 -> "2.5", 1000000 -> "1". */
static void rb_put_seconds(render_buf *b, uint64_t us)
{
    uint64_t frac = us % 1000000u;
    if (frac == 0) {
        rb_printf(b, "%" PRIu64, us / 1000000u);
        return;
    }
    char digits[8];
    snprintf(digits, sizeof(digits), "%06" PRIu64, frac);
    size_t n = 6;
    while (n > 0 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    rb_printf(b, "%" PRIu64 ".%s", us / 1000000u, digits);
}

/* name_suffix{labels[,le="..."]} */
static void rb_put_hist_name(render_buf *b, const char *name, const char *suffix,
                             const char *labels, bool with_le)
{
    rb_puts(b, name);
    rb_puts(b, suffix);
    if (labels[0] == '\0' && !with_le)
        return;
    rb_puts(b, "{");
    rb_puts(b, labels);
    if (with_le)
        rb_puts(b, labels[0] != '\0' ? ",le=\"" : "le=\"");
}

static void rb_put_histogram(render_buf *b, const char *name, const metric_series *s)
{
    const aether_histogram *h = &s->hist;
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= h->bound_count; i++) {
        cum += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        rb_put_hist_name(b, name, "_bucket", s->labels, true);
        if (i < h->bound_count)
            rb_put_seconds(b, h->bounds_us[i]);
        else
            rb_puts(b, "+Inf");
        rb_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    rb_put_hist_name(b, name, "_sum", s->labels, false);
    rb_puts(b, s->labels[0] != '\0' ? "} " : " ");
    rb_put_seconds(b, __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED));
    rb_puts(b, "\n");
    rb_put_hist_name(b, name, "_count", s->labels, false);
    rb_printf(b, "%s%" PRIu64 "\n", s->labels[0] != '\0' ? "} " : " ", cum);
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
        rb_puts(&b, f->is_histogram ? " histogram\n" : f->is_counter ? " counter\n" : " gauge\n");
        for (metric_series *s = f->series; s != NULL; s = s->next) {
            if (s->kind == METRIC_HISTOGRAM) {
                rb_put_histogram(&b, f->name, s);
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
