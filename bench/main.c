/*
 * main.c: `aether-bench`, the benchmark harness's command line (bench layer).
 *
 *   aether-bench mailbox|lookup [--json] [--seconds S] [--runs N]
 *   aether-bench --help
 *
 * Options may come before or after the bench name. An unknown bench or
 * option prints the usage to stderr and exits 2.
 *
 * Threading: main thread; each bench starts and joins its own threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines_placement.h" /* bench_rebalance_main */
#include "bench.h"
#include "report.h"

typedef struct bench_entry {
    const char *name;
    int (*main_fn)(const bench_opts *o);
    const char *what;
} bench_entry;

static const bench_entry benches[] = {
    { "mailbox", bench_mailbox_main,
      "messages/s through an actor on the pool executor (1 and 2 producers) vs a "
      "mutex+condvar queue and a raw ck_ring SPSC" },
    { "lookup", bench_lookup_main,
      "aether_route_key lookups/s (1 and 2 readers) while a writer republishes the map "
      "1000/s, vs rwlock, mutex and unsynchronised reads" },
    { "rebalance", bench_rebalance_main,
      "default rebalancing strategy vs ring/rendezvous/jump hashing: movement, balance, speed" },
};
#define BENCH_COUNT (sizeof(benches) / sizeof(benches[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aether-bench <bench> [--json] [--seconds S] [--runs N]\n"
            "       aether-bench --help\n"
            "  --json       one JSON object per line: {\"bench\",\"case\",\"metric\",\"value\",\n"
            "               \"unit\",\"baseline\",\"baseline_value\",\"ratio\"}\n"
            "  --seconds S  measured duration of one run of one case (default %.1f, max %.0f)\n"
            "  --runs N     runs per case, the median is reported (default %u, max %u)\n"
            "benches:\n",
            BENCH_SECONDS_DEFAULT, BENCH_SECONDS_MAX, BENCH_RUNS_DEFAULT, BENCH_RUNS_MAX);
    for (size_t i = 0; i < BENCH_COUNT; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].what);
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "aether-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    bench_opts o = { .json = false, .seconds = BENCH_SECONDS_DEFAULT, .runs = BENCH_RUNS_DEFAULT };
    const bench_entry *which = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--seconds") == 0 || strcmp(a, "--runs") == 0) {
            if (i + 1 >= argc)
                return bad_usage("%s needs a value", a);
            const char *v = argv[++i];
            char *end = NULL;
            if (strcmp(a, "--seconds") == 0) {
                o.seconds = strtod(v, &end);
                if (end == v || *end != '\0' || !(o.seconds > 0) || o.seconds > BENCH_SECONDS_MAX)
                    return bad_usage("bad --seconds '%s'", v);
            } else {
                unsigned long n = strtoul(v, &end, 10);
                if (end == v || *end != '\0' || n < 1 || n > BENCH_RUNS_MAX)
                    return bad_usage("bad --runs '%s'", v);
                o.runs = (unsigned)n;
            }
        } else if (a[0] == '-') {
            return bad_usage("unknown option '%s'", a);
        } else if (which != NULL) {
            return bad_usage("one bench at a time ('%s' is extra)", a);
        } else {
            for (size_t b = 0; b < BENCH_COUNT; b++)
                if (strcmp(a, benches[b].name) == 0)
                    which = &benches[b];
            if (which == NULL)
                return bad_usage("unknown bench '%s'", a);
        }
    }
    if (which == NULL)
        return bad_usage("%s", "no bench named");
    return which->main_fn(&o) == 0 ? 0 : 1;
}
