/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_mapcodec.c: `aether-bench mapcodec`, the size and the encode/decode
 * time of the stored and published ShardMap (bench layer).
 *
 * Maps of 1024 and 65 536 shards x R1 and R3, over 3 and 20 nodes, built
 * the way the leader builds them (builder, round-robin owners, one shard
 * in 64 moving, ids of the length aether-node gives: "node-<12 hex>").
 * Per map and format, one thread:
 *   f1 encode / decode  format 1, one JSON object per shard (shardmap_json.h):
 *                       the baseline of the next two
 *   f2 encode / decode  format 2, the compact layout (shardmap_codec.h)
 * Decode is all a reader does with the bytes: parse, build, validate,
 * the per-node index. Each run times a fixed count of operations
 * (calibrated so a run lasts about --seconds); the median of --runs runs
 * is the row, with the ratio to format 1 of the same map in the same run.
 * encode_cpu / decode_cpu are the same runs in this thread's CPU time (the
 * machine is shared: wall time includes waiting for a core).
 * Every decode is checked to give the map back (version and owners).
 *
 * Threading: main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "report.h"
#include "shardmap.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"

#define MC_BENCH "mapcodec"
#define MC_OPS_MIN 3u
#define MC_OPS_MAX 1000000u
#define MC_MOVING_EVERY 64u

typedef struct mc_shape {
    uint32_t shards, replication, nodes;
} mc_shape;

static const mc_shape mc_shapes[] = {
    {1024, 1, 3}, {1024, 3, 3}, {1024, 1, 20}, {1024, 3, 20},
    {65536, 1, 3}, {65536, 3, 3}, {65536, 1, 20}, {65536, 3, 20},
};
#define MC_SHAPES (sizeof(mc_shapes) / sizeof(mc_shapes[0]))

typedef enum mc_format { MC_F1, MC_F2, MC_FORMATS_ } mc_format;
static const char *const mc_format_names[MC_FORMATS_] = {"f1", "f2"};

typedef struct mc_ctx {
    aether_shardmap *map;
    char *bytes[MC_FORMATS_];
    size_t len[MC_FORMATS_];
    uint64_t sink;
    unsigned failed;
} mc_ctx;

static aether_status mc_build(const mc_shape *s, aether_shardmap **out, aether_err *err)
{
    aether_shardmap_builder *b = NULL;
    aether_status st = aether_shardmap_builder_create(s->shards, s->replication, &b, err);
    aether_node_index idx[32];
    for (uint32_t n = 0; n < s->nodes && st == AETHER_OK; n++) {
        char id[32];
        snprintf(id, sizeof(id), "node-%012llx", 0x5be0c2a1d7f0ull + n * 0x1357ull);
        aether_node_id nid;
        st = aether_node_id_from_cstr(id, &nid, err);
        if (st == AETHER_OK)
            st = aether_shardmap_builder_add_node(b, &nid, &idx[n], err);
    }
    for (uint32_t sh = 0; sh < s->shards && st == AETHER_OK; sh++) {
        aether_node_index owners[AETHER_REPLICATION_MAX];
        uint32_t r = s->replication < s->nodes ? s->replication : s->nodes;
        for (uint32_t j = 0; j < r; j++)
            owners[j] = idx[(sh + j) % s->nodes];
        st = aether_shardmap_builder_set_owners(b, sh, owners, r, err);
        if (st == AETHER_OK && sh % MC_MOVING_EVERY == 0)
            st = aether_shardmap_builder_set_moving(b, sh, idx[(sh + r) % s->nodes == sh % s->nodes
                                                               ? (sh + 1) % s->nodes
                                                               : (sh + r) % s->nodes], err);
    }
    aether_shardmap_builder_set_version(b, 4242);
    aether_shardmap_builder_set_term(b, 17);
    if (st == AETHER_OK)
        st = aether_shardmap_build(b, out, err);
    aether_shardmap_builder_destroy(b);
    return st;
}

static aether_status mc_encode(const aether_shardmap *m, mc_format f, char **out, size_t *len)
{
    switch (f) {
    case MC_F1:
        return aether_shardmap_json_encode_gen(m, 0x5be0c2a1d7f3e944ull, out, len, NULL);
    case MC_F2:
        return aether_shardmap_codec_encode(m, 0x5be0c2a1d7f3e944ull, out, len, NULL);
    default:
        return AETHER_EINVAL;
    }
}

static aether_status mc_decode(const char *buf, size_t len, mc_format f, aether_shardmap **out)
{
    uint64_t gen;
    switch (f) {
    case MC_F1:
        return aether_shardmap_json_decode_gen(buf, len, out, &gen, NULL);
    case MC_F2:
        return aether_shardmap_codec_decode(buf, len, out, &gen, NULL);
    default:
        return AETHER_EINVAL;
    }
}

/* This thread's CPU time: the machine is shared, so beside the wall time
 * (what a reader waits) the CPU time says what the code costs. */
static uint64_t mc_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ns per operation over ops operations (wall; *cpu_ns the CPU time per
 * operation); decode when dec, else encode. */
static double mc_run(mc_ctx *x, mc_format f, bool dec, uint64_t ops, double *cpu_ns)
{
    uint64_t t0 = bench_now_ns(), c0 = mc_thread_cpu_ns();
    for (uint64_t i = 0; i < ops; i++) { /* bounded: ops */
        if (dec) {
            aether_shardmap *m = NULL;
            if (mc_decode(x->bytes[f], x->len[f], f, &m) != AETHER_OK ||
                m->version != x->map->version || m->shard_count != x->map->shard_count ||
                memcmp(m->owners, x->map->owners,
                       (size_t)m->shard_count * m->replication * sizeof(*m->owners)) != 0)
                x->failed++;
            else
                x->sink += m->node_count;
            aether_shardmap_destroy(m);
        } else {
            char *buf = NULL;
            size_t len = 0;
            if (mc_encode(x->map, f, &buf, &len) != AETHER_OK)
                x->failed++;
            x->sink += len;
            free(buf);
        }
    }
    *cpu_ns = (double)(mc_thread_cpu_ns() - c0) / (double)ops;
    return (double)(bench_now_ns() - t0) / (double)ops;
}

static bench_stats mc_measure(const bench_opts *o, mc_ctx *x, mc_format f, bool dec,
                              bench_stats *cpu)
{
    double c[BENCH_RUNS_MAX];
    double warm = mc_run(x, f, dec, MC_OPS_MIN, &c[0]);
    double want = o->seconds * 1e9 / (warm > 1.0 ? warm : 1.0);
    uint64_t ops = want < MC_OPS_MIN ? MC_OPS_MIN : want > MC_OPS_MAX ? MC_OPS_MAX : (uint64_t)want;
    double v[BENCH_RUNS_MAX];
    for (unsigned r = 0; r < o->runs; r++)
        v[r] = mc_run(x, f, dec, ops, &c[r]) / 1e3; /* us */
    for (unsigned r = 0; r < o->runs; r++)
        c[r] /= 1e3;
    *cpu = bench_stats_of(c, o->runs);
    return bench_stats_of(v, o->runs);
}

int bench_mapcodec_main(const bench_opts *o)
{
    aether_err err = {0};
    bench_report_machine(o);
    bench_report_begin(o, MC_BENCH, "one thread; node ids of 17 bytes, one shard in 64 moving; "
                                    "decode = parse + build + validate + per-node index");
    int rc = 0;
    for (size_t i = 0; i < MC_SHAPES && rc == 0; i++) {
        const mc_shape *s = &mc_shapes[i];
        mc_ctx x = {0};
        if (mc_build(s, &x.map, &err) != AETHER_OK) {
            fprintf(stderr, "aether-bench mapcodec: building the map: %s\n", err.msg);
            return 1;
        }
        for (int f = 0; f < MC_FORMATS_ && rc == 0; f++)
            if (mc_encode(x.map, (mc_format)f, &x.bytes[f], &x.len[f]) != AETHER_OK) {
                fprintf(stderr, "aether-bench mapcodec: encoding %s failed\n", mc_format_names[f]);
                rc = 1;
            }
        bench_stats enc[MC_FORMATS_], dec[MC_FORMATS_], size[MC_FORMATS_], enc_cpu[MC_FORMATS_],
            dec_cpu[MC_FORMATS_];
        for (int f = 0; f < MC_FORMATS_ && rc == 0; f++) {
            enc[f] = mc_measure(o, &x, (mc_format)f, false, &enc_cpu[f]);
            dec[f] = mc_measure(o, &x, (mc_format)f, true, &dec_cpu[f]);
            double sz = (double)x.len[f];
            size[f] = bench_stats_of(&sz, 1);
        }
        if (rc == 0 && x.failed != 0) {
            fprintf(stderr, "aether-bench mapcodec: %u decodes did not give the map back\n", x.failed);
            rc = 1;
        }
        for (int f = 0; f < MC_FORMATS_ && rc == 0; f++) {
            char name[64], base[64];
            snprintf(name, sizeof(name), "%us_r%u_n%u_%s", s->shards, s->replication, s->nodes,
                     mc_format_names[f]);
            snprintf(base, sizeof(base), "%us_r%u_n%u_%s", s->shards, s->replication, s->nodes,
                     mc_format_names[MC_F1]);
            const char *b = f == MC_F1 ? NULL : base;
            bench_report_row(o, MC_BENCH, name, "size", &size[f], "bytes", b, size[MC_F1].median);
            bench_report_row(o, MC_BENCH, name, "encode", &enc[f], "us", b, enc[MC_F1].median);
            bench_report_row(o, MC_BENCH, name, "decode", &dec[f], "us", b, dec[MC_F1].median);
            bench_report_row(o, MC_BENCH, name, "encode_cpu", &enc_cpu[f], "us", b,
                             enc_cpu[MC_F1].median);
            bench_report_row(o, MC_BENCH, name, "decode_cpu", &dec_cpu[f], "us", b,
                             dec_cpu[MC_F1].median);
        }
        for (int f = 0; f < MC_FORMATS_; f++)
            free(x.bytes[f]);
        aether_shardmap_destroy(x.map);
        volatile uint64_t keep = x.sink;
        (void)keep;
    }
    return rc;
}
