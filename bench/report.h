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

/* Median of v[0..n) (mean of the middle two when n is even), with min and
 * max; n >= 1. v is left unchanged. */
bench_stats bench_stats_of(const double *v, unsigned n);

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

/* A free-text line in table mode (nothing in JSON mode). */
void bench_report_note(const bench_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
