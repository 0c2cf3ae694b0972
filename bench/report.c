/*
 * report.c: result rows, medians and the machine line (bench layer). See
 * report.h for the formats.
 *
 * Threading: main thread only, except bench_now_ns and bench_stats_of (any
 * thread).
 */
#include "report.h"

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

/* The 1-minute load average, or -1. */
static double load_average(void)
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
    double load = load_average();
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
