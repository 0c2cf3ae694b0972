/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.h: result rows, medians, the machine line and the clock of the
 * bench harness (bench layer).
 *
 * A row is one (bench, case, metric) with the median of its runs and,
 * optionally, the baseline case it is compared with:
 *   table: bench  case  metric  value  unit  baseline  ratio  spread
 *   JSON : {"bench","case","metric","value","unit","baseline",
 *           "baseline_value","ratio"}, ratio = value / baseline_value;
 *          a row without a baseline has null in the last three fields.
 * The machine (CPU model, online cores, kernel, 1-minute load average at
 * start) is printed once per process,
 * before the first row; in JSON as a line whose "bench" is "machine".
 *
 * Threading: main thread only (rows are printed as they are produced).
 * bench_now_ns and bench_median are pure / any thread.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

/* The median, minimum and maximum of one case's runs. */
typedef struct bench_stats {
    double median;
    double min;
    double max;
} bench_stats;

/* CLOCK_MONOTONIC in nanoseconds. Bench code only: domain code takes its
 * clock from the executor (CONVENTIONS "Determinism"). */
uint64_t bench_now_ns(void);

/* CPU time consumed so far by all threads of this process (nanoseconds).
 * A case reports (CPU time / wall time) of its runs as "cores_used", which
 * tells a run that had both cores from one that shared them with other
 * processes. */
uint64_t bench_process_cpu_ns(void);

/* CPU time consumed so far by the calling thread (nanoseconds). Time a
 * thread spends preempted is not in it, so a per-message CPU cost measured
 * with it moves far less with the machine's load than a throughput does. */
uint64_t bench_thread_cpu_ns(void);

/* Median of v[0..n) (mean of the middle two when n is even), with min and
 * max; n >= 1. v is left unchanged. */
bench_stats bench_stats_of(const double *v, unsigned n);

/* The 1-minute load average (/proc/loadavg), or -1. */
double bench_load_average(void);

/* Prints the machine once (later calls do nothing). */
void bench_report_machine(const bench_opts *o);

/* Prints a bench's title and, in table mode, the column header. `note` is a
 * free-text line (table mode only; may be NULL). */
void bench_report_begin(const bench_opts *o, const char *bench, const char *note);

/* One row. baseline may be NULL (no comparison); otherwise baseline_value is
 * that baseline's median and the ratio is printed. */
void bench_report_row(const bench_opts *o, const char *bench, const char *case_name,
                      const char *metric, const bench_stats *st, const char *unit,
                      const char *baseline, double baseline_value);

/* ---- Latency rows (the end-to-end benches: real processes, real server) ----
 * A row is one measured delay over many samples:
 *   table: metric  samples  p50  p99  max  target  met (samples over)  p50/floor
 *   JSON : the row shape above with metric "p99", value = p99 in ms,
 *          baseline = the floor's name (or null), baseline_value = the
 *          floor's p99, ratio = value / baseline_value, plus "samples",
 *          "timeouts", "p50_ms", "p99_ms", "max_ms", "target_ms" (null
 *          if none), "over_target" and "met" (true/false/null).
 * Percentiles are nearest-rank: p = v[ceil(q * n) - 1] of the sorted
 * samples (with 20 samples p99 is the maximum). */
typedef struct bench_latency {
    unsigned samples;   /* measured */
    unsigned timeouts;  /* attempts that did not complete within their bound */
    unsigned over;      /* samples above the target (0 without one) */
    double p50_ms, p99_ms, max_ms;
} bench_latency;

/* Sorts v[0..n) in place and fills the percentiles (all 0 when n is 0) and
 * the count above target_ms (< 0: no target). */
bench_latency bench_latency_of(double *v, unsigned n, unsigned timeouts, double target_ms);

/* The title and, in table mode, the header and a note (may be NULL). */
void bench_report_latency_begin(const bench_opts *o, const char *bench, const char *note);

/* One row. target_ms < 0 = no target (met is "-"); met means p99 <= target
 * and no timeout. floor_name NULL = no floor column. Returns met (true when
 * there is no target). */
bool bench_report_latency_row(const bench_opts *o, const char *bench, const char *metric,
                              const bench_latency *l, double target_ms, const char *floor_name,
                              const bench_latency *floor);

/* --samples FILE (e2e, failover): every sample of a latency row, in attempt
 * order, before the percentiles are taken, as tab-separated lines
 *   bench <TAB> metric <TAB> attempt (1..n) <TAB> milliseconds
 * after one header line starting with '#'; timeouts give no line. For
 * charts of the distribution (tools/bench-report). Does nothing when
 * o->samples is NULL. */
void bench_samples_write(const bench_opts *o, const char *bench, const char *metric, const double *v,
                         unsigned n);

/* A free-text line in table mode (nothing in JSON mode). */
void bench_report_note(const bench_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
