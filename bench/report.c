/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.c: result rows, medians and the machine line (bench layer). See
 * report.h for the formats.
 *
 * Threading: main thread only, except bench_now_ns and bench_stats_of (any
 * thread).
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "assertion.h"

/* Longest /proc/cpuinfo line we look at, and the longest model name kept. */
#define CPUINFO_LINE_MAX 512
#define CPUINFO_LINES_MAX 4096u
#define MODEL_MAX 128

static bool machine_printed;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The 1-minute load average, or -1. */
double bench_load_average(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%lf", &l) != 1)
        l = -1;
    fclose(f);
    return l;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stats bench_stats_of(const double *v, unsigned n)
{
    AETHER_ASSERT(n >= 1 && n <= BENCH_RUNS_MAX);
    double s[BENCH_RUNS_MAX];
    memcpy(s, v, n * sizeof(*v));
    qsort(s, n, sizeof(*s), cmp_double);
    bench_stats st = { .min = s[0], .max = s[n - 1] };
    st.median = (n % 2) ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
    return st;
}

/* The first "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[CPUINFO_LINE_MAX];
    for (unsigned i = 0; i < CPUINFO_LINES_MAX && fgets(line, sizeof(line), f) != NULL; i++) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(out, cap, "%s", colon);
        out[strcspn(out, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* Writes s as a JSON string literal. */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* %.6g prints integers and rates exactly enough; JSON has no inf/nan. */
static void json_number(double v)
{
    if (v != v || v > 1e300 || v < -1e300)
        printf("null");
    else
        printf("%.6g", v);
}

void bench_report_machine(const bench_opts *o)
{
    if (machine_printed)
        return;
    machine_printed = true;
    char model[MODEL_MAX];
    cpu_model(model, sizeof(model));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    const char *kernel = uname(&u) == 0 ? u.release : "unknown";
    double load = bench_load_average();
    if (o->json) {
        /* The row shape (value = online cores) plus the machine's own fields. */
        printf("{\"bench\":\"machine\",\"case\":\"machine\",\"metric\":\"online_cores\",\"value\":%ld,"
               "\"unit\":\"cores\",\"baseline\":null,\"baseline_value\":null,\"ratio\":null,\"cpu\":",
               cores);
        json_string(model);
        printf(",\"cores\":%ld,\"kernel\":", cores);
        json_string(kernel);
        printf(",\"compiler\":");
        json_string(__VERSION__);
        printf(",\"loadavg_1m\":");
        json_number(load);
        printf(",\"runs\":%u,\"seconds\":", o->runs);
        json_number(o->seconds);
        printf("}\n");
    } else {
        printf("machine: %s, %ld online cores, kernel %s, gcc %s, load average %.2f at start\n",
               model, cores, kernel, __VERSION__, load);
        if (o->processes)
            printf("real processes: nats-server and aether-node children of this bench on this "
                   "machine; each row is many timed attempts\n");
        else
            printf("each case: %u runs of %.2f s, median reported (spread = (max-min)/median)\n",
                   o->runs, o->seconds);
    }
    fflush(stdout);
}

void bench_report_begin(const bench_opts *o, const char *bench, const char *note)
{
    bench_report_machine(o);
    if (o->json)
        return;
    printf("\n== %s ==\n", bench);
    if (note != NULL)
        printf("%s\n", note);
    printf("%-8s %-22s %-14s %12s %-9s %-16s %8s %7s\n", "bench", "case", "metric", "value",
           "unit", "baseline", "ratio", "spread");
    fflush(stdout);
}

/* 12.34 M style, for the table. */
static void human(double v, char *out, size_t cap)
{
    if (v >= 1e9)
        snprintf(out, cap, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, cap, "%.2f M", v / 1e6);
    else if (v >= 1e4)
        snprintf(out, cap, "%.1f k", v / 1e3);
    else if (v == (double)(long long)v)
        snprintf(out, cap, "%lld", (long long)v);
    else
        snprintf(out, cap, "%.2f", v);
}

void bench_report_row(const bench_opts *o, const char *bench, const char *case_name,
                      const char *metric, const bench_stats *st, const char *unit,
                      const char *baseline, double baseline_value)
{
    bool has_base = baseline != NULL && baseline_value > 0;
    double ratio = has_base ? st->median / baseline_value : 0;
    if (o->json) {
        printf("{\"bench\":");
        json_string(bench);
        printf(",\"case\":");
        json_string(case_name);
        printf(",\"metric\":");
        json_string(metric);
        printf(",\"value\":");
        json_number(st->median);
        printf(",\"unit\":");
        json_string(unit);
        if (has_base) {
            printf(",\"baseline\":");
            json_string(baseline);
            printf(",\"baseline_value\":");
            json_number(baseline_value);
            printf(",\"ratio\":");
            json_number(ratio);
            printf("}\n");
        } else {
            printf(",\"baseline\":null,\"baseline_value\":null,\"ratio\":null}\n");
        }
    } else {
        char val[32], ratio_s[32], spread_s[32];
        human(st->median, val, sizeof(val));
        if (has_base)
            snprintf(ratio_s, sizeof(ratio_s), "%.2fx", ratio);
        else
            snprintf(ratio_s, sizeof(ratio_s), "-");
        if (st->median > 0)
            snprintf(spread_s, sizeof(spread_s), "%.0f%%",
                     100.0 * (st->max - st->min) / st->median);
        else
            snprintf(spread_s, sizeof(spread_s), "-");
        printf("%-8s %-22s %-14s %12s %-9s %-16s %8s %7s\n", bench, case_name, metric, val, unit,
               has_base ? baseline : "-", ratio_s, spread_s);
    }
    fflush(stdout);
}

void bench_report_note(const bench_opts *o, const char *fmt, ...)
{
    if (o->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void bench_samples_write(const bench_opts *o, const char *bench, const char *metric, const double *v,
                         unsigned n)
{
    if (o->samples == NULL)
        return;
    AETHER_ASSERT(strchr(bench, '\t') == NULL && strchr(metric, '\t') == NULL);
    for (unsigned i = 0; i < n; i++)
        fprintf(o->samples, "%s\t%s\t%u\t%.3f\n", bench, metric, i + 1, v[i]);
    fflush(o->samples);
}

/* ---- latency rows ---------------------------------------------------------- */

static double nearest_rank(const double *sorted, unsigned n, double q)
{
    unsigned k = (unsigned)ceil(q * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

bench_latency bench_latency_of(double *v, unsigned n, unsigned timeouts, double target_ms)
{
    bench_latency l = { .samples = n, .timeouts = timeouts };
    if (n == 0)
        return l;
    qsort(v, n, sizeof(*v), cmp_double);
    for (unsigned k = 0; k < n && target_ms >= 0; k++)
        l.over += v[k] > target_ms;
    l.p50_ms = nearest_rank(v, n, 0.50);
    l.p99_ms = nearest_rank(v, n, 0.99);
    l.max_ms = v[n - 1];
    return l;
}

#define LAT_FMT "%-58s %7s %9s %9s %9s %9s %-13s %9s\n"

void bench_report_latency_begin(const bench_opts *o, const char *bench, const char *note)
{
    bench_report_machine(o);
    if (o->json)
        return;
    printf("\n== %s ==\n", bench);
    if (note != NULL)
        printf("%s\n", note);
    printf(LAT_FMT, "metric", "samples", "p50 ms", "p99 ms", "max ms", "target", "met", "p50/floor");
    fflush(stdout);
}

bool bench_report_latency_row(const bench_opts *o, const char *bench, const char *metric,
                              const bench_latency *l, double target_ms, const char *floor_name,
                              const bench_latency *floor)
{
    bool has_target = target_ms >= 0;
    bool met = !has_target || (l->samples > 0 && l->timeouts == 0 && l->p99_ms <= target_ms);
    bool has_floor = floor_name != NULL && floor != NULL && floor->samples > 0 && floor->p50_ms > 0;
    if (o->json) {
        printf("{\"bench\":");
        json_string(bench);
        printf(",\"case\":");
        json_string(metric);
        printf(",\"metric\":\"p99\",\"value\":");
        json_number(l->samples ? l->p99_ms : NAN);
        printf(",\"unit\":\"ms\",\"baseline\":");
        if (has_floor) {
            json_string(floor_name);
            printf(",\"baseline_value\":");
            json_number(floor->p99_ms);
            printf(",\"ratio\":");
            json_number(l->samples ? l->p99_ms / floor->p99_ms : NAN);
        } else {
            printf("null,\"baseline_value\":null,\"ratio\":null");
        }
        printf(",\"samples\":%u,\"timeouts\":%u,\"p50_ms\":", l->samples, l->timeouts);
        json_number(l->samples ? l->p50_ms : NAN);
        printf(",\"p99_ms\":");
        json_number(l->samples ? l->p99_ms : NAN);
        printf(",\"max_ms\":");
        json_number(l->samples ? l->max_ms : NAN);
        printf(",\"target_ms\":");
        json_number(has_target ? target_ms : NAN);
        printf(",\"over_target\":%u,\"met\":%s}\n", l->over, has_target ? (met ? "true" : "false") : "null");
    } else {
        char samples[32], p50[32], p99[32], mx[32], target[32], ratio[32], verdict[32];
        if (l->timeouts)
            snprintf(samples, sizeof(samples), "%u+%ut", l->samples, l->timeouts);
        else
            snprintf(samples, sizeof(samples), "%u", l->samples);
        if (l->samples) {
            snprintf(p50, sizeof(p50), "%.2f", l->p50_ms);
            snprintf(p99, sizeof(p99), "%.2f", l->p99_ms);
            snprintf(mx, sizeof(mx), "%.2f", l->max_ms);
        } else {
            snprintf(p50, sizeof(p50), "-");
            snprintf(p99, sizeof(p99), "-");
            snprintf(mx, sizeof(mx), "-");
        }
        if (has_target)
            snprintf(target, sizeof(target), "<= %.0f", target_ms);
        else
            snprintf(target, sizeof(target), "-");
        if (has_floor && l->samples)
            snprintf(ratio, sizeof(ratio), "%.0fx", l->p50_ms / floor->p50_ms);
        else
            snprintf(ratio, sizeof(ratio), "-");
        if (!has_target)
            snprintf(verdict, sizeof(verdict), "-");
        else if (l->over > 0)
            snprintf(verdict, sizeof(verdict), "%s (%u over)", met ? "met" : "NOT MET", l->over);
        else
            snprintf(verdict, sizeof(verdict), "%s", met ? "met" : "NOT MET");
        printf(LAT_FMT, metric, samples, p50, p99, mx, target, verdict, ratio);
    }
    fflush(stdout);
    return met;
}
