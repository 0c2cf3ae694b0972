/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics.c: the metrics registry and its Prometheus rendering (tests
 * layer).
 *
 * Refusals are logged; the tests capture the log to check that they are.
 * Four threads update one counter and one gauge, and four more register the
 * same series at once.
 *
 * AETHER_TEST_LABELS: concurrency
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "log.h"
#include "metrics.h"

static int log_lines;

static void count_sink(void *arg, aether_log_level level, const char *line, int len)
{
    __atomic_fetch_add(&log_lines, 1, __ATOMIC_RELAXED);
}

static aether_metrics *new_registry(void)
{
    aether_metrics *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    log_lines = 0;
    aether_log_set_sink(count_sink, NULL);
    return m;
}

static void drop_registry(aether_metrics *m)
{
    aether_metrics_destroy(m);
    aether_log_set_sink(NULL, NULL);
}

static int64_t read_value(aether_metrics *m, const char *name, const char *labels)
{
    int64_t v = -999999;
    CU_ASSERT_EQUAL(aether_metrics_read(m, name, labels, &v), AETHER_OK);
    return v;
}

static void test_counter_and_gauge(void)
{
    aether_metrics *m = new_registry();
    aether_counter *c = aether_metrics_counter(m, "aether_things_total", "Things.", NULL);
    aether_gauge *g = aether_metrics_gauge(m, "aether_level", "Level.", "node=\"a\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);

    CU_ASSERT_EQUAL(aether_counter_get(c), 0);
    aether_counter_inc(c);
    aether_counter_add(c, 41);
    CU_ASSERT_EQUAL(aether_counter_get(c), 42);
    CU_ASSERT_EQUAL(read_value(m, "aether_things_total", NULL), 42);
    CU_ASSERT_EQUAL(read_value(m, "aether_things_total", ""), 42);

    aether_gauge_set(g, 10);
    aether_gauge_add(g, -15);
    CU_ASSERT_EQUAL(aether_gauge_get(g), -5);
    CU_ASSERT_EQUAL(read_value(m, "aether_level", "node=\"a\""), -5);

    int64_t v = 7;
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_level", NULL, &v), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_level", "node=\"b\"", &v), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(aether_metrics_read(m, "aether_nothing", NULL, &v), AETHER_ENOTFOUND);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(log_lines, 0);
    drop_registry(m);
}

static int64_t fn_value(void *arg) { return __atomic_load_n((int64_t *)arg, __ATOMIC_RELAXED); }
static int64_t fn_const(void *arg) { return 1000; }

static void test_gauge_fn(void)
{
    aether_metrics *m = new_registry();
    int64_t depth = 3;
    CU_ASSERT_EQUAL(aether_metrics_gauge_fn(m, "aether_depth", "Depth.", "actor=\"x\"", fn_value,
                                            &depth),
                    AETHER_OK);
    CU_ASSERT_EQUAL(read_value(m, "aether_depth", "actor=\"x\""), 3);
    depth = 17;
    CU_ASSERT_EQUAL(read_value(m, "aether_depth", "actor=\"x\""), 17);

    /* A re-registration takes the series over (an actor re-created under the
     * same name). */
    CU_ASSERT_EQUAL(aether_metrics_gauge_fn(m, "aether_depth", "Depth.", "actor=\"x\"", fn_const,
                                            NULL),
                    AETHER_OK);
    CU_ASSERT_EQUAL(read_value(m, "aether_depth", "actor=\"x\""), 1000);

    /* Set and computed gauges share the gauge type, so one name can hold both;
     * but one series cannot be both. */
    CU_ASSERT_PTR_NOT_NULL(aether_metrics_gauge(m, "aether_depth", "Depth.", "actor=\"y\""));
    CU_ASSERT_PTR_NULL(aether_metrics_gauge(m, "aether_depth", "Depth.", "actor=\"x\""));
    CU_ASSERT_NOT_EQUAL(aether_metrics_gauge_fn(m, "aether_depth", "Depth.", "actor=\"y\"",
                                                fn_const, NULL),
                        AETHER_OK);
    CU_ASSERT_EQUAL(log_lines, 2);
    drop_registry(m);
}

static void test_same_series_twice(void)
{
    aether_metrics *m = new_registry();
    aether_counter *a = aether_metrics_counter(m, "aether_x_total", "X.", "k=\"1\"");
    aether_counter *b = aether_metrics_counter(m, "aether_x_total", "other help", "k=\"1\"");
    aether_counter *c = aether_metrics_counter(m, "aether_x_total", "X.", "k=\"2\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT_PTR_NOT_EQUAL(a, c);
    aether_gauge *g1 = aether_metrics_gauge(m, "aether_g", NULL, NULL);
    aether_gauge *g2 = aether_metrics_gauge(m, "aether_g", NULL, "");
    CU_ASSERT_PTR_NOT_NULL(g1);
    CU_ASSERT_PTR_EQUAL(g1, g2);

    /* Many more registrations later, the first pointers still work: series
     * never move. */
    aether_counter_add(a, 5);
    char labels[32];
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(aether_metrics_counter(m, "aether_y_total", "Y.", labels));
    }
    aether_counter_inc(a);
    CU_ASSERT_EQUAL(read_value(m, "aether_x_total", "k=\"1\""), 6);
    CU_ASSERT_PTR_EQUAL(aether_metrics_counter(m, "aether_x_total", "X.", "k=\"1\""), a);
    CU_ASSERT_EQUAL(log_lines, 0);
    drop_registry(m);
}

static void test_kind_clash_refused(void)
{
    aether_metrics *m = new_registry();
    CU_ASSERT_PTR_NOT_NULL(aether_metrics_counter(m, "aether_c_total", "C.", NULL));
    CU_ASSERT_PTR_NOT_NULL(aether_metrics_gauge(m, "aether_g", "G.", NULL));

    CU_ASSERT_PTR_NULL(aether_metrics_gauge(m, "aether_c_total", "C.", NULL));
    CU_ASSERT_PTR_NULL(aether_metrics_gauge(m, "aether_c_total", "C.", "other=\"labels\""));
    CU_ASSERT_PTR_NULL(aether_metrics_counter(m, "aether_g", "G.", NULL));
    CU_ASSERT_NOT_EQUAL(aether_metrics_gauge_fn(m, "aether_c_total", "C.", "x=\"1\"", fn_const,
                                                NULL),
                        AETHER_OK);
    CU_ASSERT_EQUAL(log_lines, 4); /* each refusal is logged */

    /* The refused registrations left nothing behind. */
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, "# HELP aether_c_total C.\n"
                                 "# TYPE aether_c_total counter\n"
                                 "aether_c_total 0\n"
                                 "# HELP aether_g G.\n"
                                 "# TYPE aether_g gauge\n"
                                 "aether_g 0\n");
    free(text);
    drop_registry(m);
}

static void test_invalid_name_or_labels_refused(void)
{
    static const char *const bad_names[] = {
        "", "1abc", "a-b", "a b", "a.b", "émoji", "a\n",
    };
    static const char *const good_names[] = { "a", "_a", ":a", "a:b_c9", "AETHER_X" };
    static const char *const bad_labels[] = {
        "k",                      /* no value */
        "k=v",                    /* unquoted */
        "k=\"v",                  /* unterminated */
        "k=\"v\",",               /* trailing comma */
        ",k=\"v\"",               /* leading comma */
        "k=\"v\" ,j=\"w\"",       /* space */
        "1k=\"v\"",               /* name starts with a digit */
        "k-x=\"v\"",              /* bad name character */
        "__k=\"v\"",              /* reserved prefix */
        "k=\"v\",k=\"w\"",        /* repeated name */
        "k=\"a\\tb\"",            /* unknown escape */
        "k=\"a\nb\"",             /* raw newline */
        "k=\"a\"b\"",             /* raw quote */
        "k=\"v\"j=\"w\"",         /* missing comma */
    };
    static const char *const good_labels[] = {
        "k=\"\"",
        "k=\"v\",j=\"w\"",
        "k=\"a \\\"q\\\" \\\\ \\n z\"",
        "_k9=\"caf\xc3\xa9 , = {}\"",
    };
    aether_metrics *m = new_registry();
    int refusals = 0;
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        CU_ASSERT_PTR_NULL(aether_metrics_counter(m, bad_names[i], "h", NULL));
        CU_ASSERT_PTR_NULL(aether_metrics_gauge(m, bad_names[i], "h", NULL));
        CU_ASSERT_EQUAL(aether_metrics_gauge_fn(m, bad_names[i], "h", NULL, fn_const, NULL),
                        AETHER_EINVAL);
        refusals += 3;
    }
    CU_ASSERT_PTR_NULL(aether_metrics_counter(m, NULL, "h", NULL));
    refusals++;
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
        CU_ASSERT_PTR_NULL(aether_metrics_counter(m, "aether_ok_total", "h", bad_labels[i]));
        refusals++;
    }
    CU_ASSERT_EQUAL(log_lines, refusals);
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++)
        CU_ASSERT_PTR_NOT_NULL(aether_metrics_counter(m, good_names[i], "h", NULL));
    for (size_t i = 0; i < sizeof(good_labels) / sizeof(good_labels[0]); i++)
        CU_ASSERT_PTR_NOT_NULL(aether_metrics_counter(m, "aether_ok_total", "h", good_labels[i]));
    CU_ASSERT_EQUAL(log_lines, refusals);
    drop_registry(m);
}

static void test_render_prometheus_exact(void)
{
    aether_metrics *m = new_registry();
    int64_t depth = 42;
    aether_counter *ca = aether_metrics_counter(m, "aether_a_total", "A things.", "node=\"a\"");
    aether_gauge *g = aether_metrics_gauge(m, "aether_depth", "Depth \\ of\nthings.", NULL);
    aether_counter *cb = aether_metrics_counter(m, "aether_a_total", "A things.", "node=\"b\"");
    CU_ASSERT_EQUAL(aether_metrics_gauge_fn(m, "aether_depth", NULL, "actor=\"x\"", fn_value,
                                            &depth),
                    AETHER_OK);
    aether_gauge *nohelp = aether_metrics_gauge(m, "aether_nohelp", NULL, "v=\"q\\\"\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nohelp);
    aether_counter_add(ca, 3);
    aether_counter_add(cb, UINT64_C(18446744073709551615));
    aether_gauge_set(g, -5);
    aether_gauge_set(nohelp, INT64_MIN);

    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, &len), AETHER_OK);
    const char *want = "# HELP aether_a_total A things.\n"
                       "# TYPE aether_a_total counter\n"
                       "aether_a_total{node=\"a\"} 3\n"
                       "aether_a_total{node=\"b\"} 18446744073709551615\n"
                       "# HELP aether_depth Depth \\\\ of\\nthings.\n"
                       "# TYPE aether_depth gauge\n"
                       "aether_depth -5\n"
                       "aether_depth{actor=\"x\"} 42\n"
                       "# TYPE aether_nohelp gauge\n"
                       "aether_nohelp{v=\"q\\\"\"} -9223372036854775808\n";
    CU_ASSERT_STRING_EQUAL(text, want);
    CU_ASSERT_EQUAL(len, strlen(want));
    free(text);

    /* The scrape reads values when it runs. */
    depth = 7;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\naether_depth{actor=\"x\"} 7\n"));
    free(text);
    drop_registry(m);

    /* An empty registry renders an empty document. */
    m = new_registry();
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, &len), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, "");
    CU_ASSERT_EQUAL(len, 0);
    free(text);
    drop_registry(m);
    aether_metrics_destroy(NULL);
}

#define INC_THREADS 4
#define INC_PER_THREAD 200000

typedef struct inc_arg {
    aether_metrics *m;
    aether_counter *shared_counter;
    aether_gauge *shared_gauge;
    aether_counter *registered; /* what this thread got from registering */
    int id;
} inc_arg;

static void *inc_worker(void *p)
{
    inc_arg *a = p;
    /* All threads register the same series at once; all must get one. */
    a->registered = aether_metrics_counter(a->m, "aether_raced_total", "Raced.", "k=\"v\"");
    char labels[32];
    snprintf(labels, sizeof(labels), "t=\"%d\"", a->id);
    aether_gauge *own = aether_metrics_gauge(a->m, "aether_per_thread", "Per thread.", labels);
    for (int i = 0; i < INC_PER_THREAD; i++) {
        aether_counter_inc(a->shared_counter);
        aether_gauge_add(a->shared_gauge, (i & 1) ? -1 : 3);
        aether_counter_inc(a->registered);
        aether_gauge_add(own, 1);
    }
    return NULL;
}

/* A scrape concurrent with the updates sees values that only grow. */
static void *scrape_worker(void *p)
{
    aether_metrics *m = p;
    int64_t last = 0;
    for (int i = 0; i < 200; i++) {
        char *text = NULL;
        if (aether_metrics_render_prometheus(m, &text, NULL) != AETHER_OK)
            return (void *)1;
        free(text);
        int64_t v = 0;
        if (aether_metrics_read(m, "aether_shared_total", NULL, &v) != AETHER_OK || v < last)
            return (void *)1;
        last = v;
    }
    return NULL;
}

static void test_concurrent_increments_exact(void)
{
    aether_metrics *m = new_registry();
    aether_counter *c = aether_metrics_counter(m, "aether_shared_total", "Shared.", NULL);
    aether_gauge *g = aether_metrics_gauge(m, "aether_shared", "Shared.", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);

    pthread_t th[INC_THREADS], scraper;
    inc_arg args[INC_THREADS];
    for (int i = 0; i < INC_THREADS; i++) {
        args[i] = (inc_arg){ m, c, g, NULL, i };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, inc_worker, &args[i]), 0);
    }
    CU_ASSERT_EQUAL_FATAL(pthread_create(&scraper, NULL, scrape_worker, m), 0);
    for (int i = 0; i < INC_THREADS; i++)
        pthread_join(th[i], NULL);
    void *scrape_result = (void *)2;
    pthread_join(scraper, &scrape_result);
    CU_ASSERT_PTR_NULL(scrape_result);

    const uint64_t n = (uint64_t)INC_THREADS * INC_PER_THREAD;
    CU_ASSERT_EQUAL(aether_counter_get(c), n);
    CU_ASSERT_EQUAL(aether_gauge_get(g), (int64_t)n); /* +3 -1 per pair: +1 per update */
    CU_ASSERT_EQUAL(read_value(m, "aether_shared_total", NULL), (int64_t)n);
    for (int i = 1; i < INC_THREADS; i++)
        CU_ASSERT_PTR_EQUAL(args[i].registered, args[0].registered);
    CU_ASSERT_EQUAL(read_value(m, "aether_raced_total", "k=\"v\""), (int64_t)n);
    for (int i = 0; i < INC_THREADS; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "t=\"%d\"", i);
        CU_ASSERT_EQUAL(read_value(m, "aether_per_thread", labels), INC_PER_THREAD);
    }
    CU_ASSERT_EQUAL(log_lines, 0);
    drop_registry(m);
}

static int64_t fixed_total(void *arg) { return *(const int64_t *)arg; }

/* A computed counter renders as TYPE counter, shares its name with a set
 * counter under other labels, refuses a gauge of its name, and reads 0 once
 * released. */
static void test_counter_fn(void)
{
    aether_metrics *m = new_registry();
    int64_t total = 41;
    CU_ASSERT_EQUAL(aether_metrics_counter_fn(m, "aether_fn_total", "Computed \\ total.", "n=\"a\"",
                                              fixed_total, &total),
                    AETHER_OK);
    aether_counter *c = aether_metrics_counter(m, "aether_fn_total", NULL, "n=\"b\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    aether_counter_add(c, 2);
    total = 42;
    CU_ASSERT_EQUAL(aether_metrics_gauge_fn(m, "aether_fn_total", NULL, "n=\"c\"", fixed_total, &total),
                    AETHER_ECONFLICT);
    CU_ASSERT_EQUAL(log_lines, 1);
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, "# HELP aether_fn_total Computed \\\\ total.\n"
                                 "# TYPE aether_fn_total counter\n"
                                 "aether_fn_total{n=\"a\"} 42\n"
                                 "aether_fn_total{n=\"b\"} 2\n");
    free(text);
    aether_metrics_gauge_fn_release(m, "aether_fn_total", "n=\"a\"", &total);
    CU_ASSERT_EQUAL(read_value(m, "aether_fn_total", "n=\"a\""), 0);
    drop_registry(m);
}

/* A histogram: observations land in the first bucket whose bound holds
 * them (a bound is inclusive, as Prometheus's le), buckets render
 * cumulative in seconds, then +Inf, _sum and _count; bad bounds and kind
 * clashes are refused and logged; the same series twice is one. */
static void test_histogram(void)
{
    aether_metrics *m = new_registry();
    const uint64_t b[] = { 1000u, 500000u, 2000000000u };
    aether_histogram *h = aether_metrics_histogram(m, "aether_h_seconds", "H.", "actor=\"a\"", b, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_EQUAL(aether_metrics_histogram(m, "aether_h_seconds", "H.", "actor=\"a\"", b, 3), h);
    aether_histogram *none = aether_metrics_histogram(m, "aether_h2_seconds", "H.", NULL, b, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(none);
    aether_histogram_observe_ns(h, 0);
    aether_histogram_observe_ns(h, 1000);       /* on the bound: le="0.000001" */
    aether_histogram_observe_ns(h, 1001);
    aether_histogram_observe_ns(h, 2500000000u); /* above every bound */
    CU_ASSERT_EQUAL(read_value(m, "aether_h_seconds", "actor=\"a\""), 4);
    const uint64_t desc[] = { 5u, 5u };
    CU_ASSERT_PTR_NULL(aether_metrics_histogram(m, "aether_h3_seconds", "H.", NULL, desc, 2));
    CU_ASSERT_PTR_NULL(aether_metrics_histogram(m, "aether_h3_seconds", "H.", NULL, b, 0));
    CU_ASSERT_PTR_NULL(aether_metrics_counter(m, "aether_h_seconds", "H.", NULL));
    CU_ASSERT_PTR_NULL(aether_metrics_histogram(m, "aether_h_seconds", "H.", "actor=\"a b\",x", b, 3));
    CU_ASSERT_EQUAL(log_lines, 4);
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, NULL), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, "# HELP aether_h_seconds H.\n"
                                 "# TYPE aether_h_seconds histogram\n"
                                 "aether_h_seconds_bucket{actor=\"a\",le=\"0.000001\"} 2\n"
                                 "aether_h_seconds_bucket{actor=\"a\",le=\"0.0005\"} 3\n"
                                 "aether_h_seconds_bucket{actor=\"a\",le=\"2\"} 3\n"
                                 "aether_h_seconds_bucket{actor=\"a\",le=\"+Inf\"} 4\n"
                                 "aether_h_seconds_sum{actor=\"a\"} 2.500002001\n"
                                 "aether_h_seconds_count{actor=\"a\"} 4\n"
                                 "# HELP aether_h2_seconds H.\n"
                                 "# TYPE aether_h2_seconds histogram\n"
                                 "aether_h2_seconds_bucket{le=\"0.000001\"} 0\n"
                                 "aether_h2_seconds_bucket{le=\"+Inf\"} 0\n"
                                 "aether_h2_seconds_sum 0\n"
                                 "aether_h2_seconds_count 0\n");
    free(text);
    drop_registry(m);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(histogram),
    AETHER_TEST(counter_and_gauge),
    AETHER_TEST(counter_fn),
    AETHER_TEST(gauge_fn),
    AETHER_TEST(same_series_twice),
    AETHER_TEST(kind_clash_refused),
    AETHER_TEST(invalid_name_or_labels_refused),
    AETHER_TEST(render_prometheus_exact),
    AETHER_TEST(concurrent_increments_exact),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("metrics", NULL, NULL, tests);
