/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_auth.c: `aether-bench auth`, the per-message cost of the cluster
 * secret's MAC (transport/auth.h) beside the plain codec (bench layer).
 *
 * Cases, one thread, a heartbeat envelope as a node sends it (~150 bytes)
 * and a 16 KiB payload (a map of a few hundred shards):
 *   encode              aether_codec_encode_heartbeat (baseline of the next)
 *   encode_seal         the same, then aether_auth_seal over it
 *   decode              aether_codec_decode of that envelope (baseline of the next)
 *   seal_open_decode    a fresh tag for the envelope (aether_auth_seal: a
 *                       real sender's counter grows, so every message needs
 *                       one), aether_auth_open (MAC, clock), the replay
 *                       window, then the decode: sender's MAC plus what a
 *                       receiving node does; the receiver's share is this
 *                       minus decode minus (encode_seal - encode)
 *   copy_16k            memcpy of 16 KiB (baseline of the next two)
 *   seal_16k, open_16k  the MAC alone over 16 KiB
 * Each run times a fixed count of operations (calibrated so that a run
 * lasts about --seconds) and reports ns per operation; the median of
 * --runs runs is the row, with the ratio to its baseline. Every open is
 * checked to succeed, every decode to give the heartbeat back.
 *
 * Threading: main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bench.h"
#include "codec.h"
#include "report.h"

#define AU_BENCH "auth"
#define AU_BIG 16384u
#define AU_CALIBRATE_OPS 2000u
#define AU_OPS_MIN 1000u
#define AU_OPS_MAX 100000000u
#define AU_SUBJECT "aether.prod.hb.node-a"
#define AU_NOW_MS 1796600000000ull

typedef enum au_case { AU_ENCODE, AU_ENCODE_SEAL, AU_DECODE, AU_OPEN_DECODE, AU_COPY, AU_SEAL, AU_OPEN, AU_COUNT_ } au_case;

static const char *const au_names[AU_COUNT_] = {"encode", "encode_seal", "decode", "seal_open_decode",
                                                 "copy_16k", "seal_16k", "open_16k"};
static const int au_baseline[AU_COUNT_] = {-1, AU_ENCODE, -1, AU_DECODE, -1, AU_COPY, AU_COPY};

typedef struct au_ctx {
    aether_auth *key;
    aether_auth_sealer sealer;
    aether_auth_window *window;
    aether_codec_header h;
    char *hb;        /* a heartbeat envelope */
    size_t hb_len;
    char hb_tag[AETHER_AUTH_TAG_MAX];
    char big[AU_BIG], big_copy[AU_BIG];
    char big_tag[AETHER_AUTH_TAG_MAX];
    uint64_t sink;   /* folds results so nothing is optimised away */
    unsigned failed;
} au_ctx;

/* One operation of case c. */
static void au_op(au_ctx *x, au_case c)
{
    char tag[AETHER_AUTH_TAG_MAX];
    aether_auth_stamp st;
    switch (c) {
    case AU_ENCODE:
    case AU_ENCODE_SEAL: {
        char *buf = NULL;
        size_t len = 0;
        if (aether_codec_encode_heartbeat(&x->h, 7, &buf, &len, NULL) != AETHER_OK) {
            x->failed++;
            return;
        }
        if (c == AU_ENCODE_SEAL)
            (void)aether_auth_seal(&x->sealer, AU_SUBJECT, buf, len, AU_NOW_MS, tag, sizeof(tag));
        x->sink += len + (unsigned char)buf[len / 2];
        free(buf);
        return;
    }
    case AU_DECODE:
    case AU_OPEN_DECODE: {
        if (c == AU_OPEN_DECODE) {
            (void)aether_auth_seal(&x->sealer, AU_SUBJECT, x->hb, x->hb_len, AU_NOW_MS, tag, sizeof(tag));
            if (aether_auth_open(x->key, AU_SUBJECT, x->hb, x->hb_len, tag, AU_NOW_MS, &st, NULL) != AETHER_OK ||
                aether_auth_window_admit(x->window, &st, NULL) != AETHER_OK) {
                x->failed++;
                return;
            }
        }
        aether_codec_msg m;
        if (aether_codec_decode(x->hb, x->hb_len, NULL, &m, NULL) != AETHER_OK || m.kind != AETHER_CODEC_HEARTBEAT ||
            m.u.heartbeat.incarnation != 7) {
            x->failed++;
            return;
        }
        x->sink += m.u.heartbeat.incarnation;
        aether_codec_msg_fini(&m);
        return;
    }
    case AU_COPY:
        memcpy(x->big_copy, x->big, AU_BIG);
        x->sink += (unsigned char)x->big_copy[x->sink % AU_BIG];
        return;
    case AU_SEAL:
        (void)aether_auth_seal(&x->sealer, AU_SUBJECT, x->big, AU_BIG, AU_NOW_MS, tag, sizeof(tag));
        x->sink += (unsigned char)tag[70];
        return;
    case AU_OPEN:
        if (aether_auth_open(x->key, AU_SUBJECT, x->big, AU_BIG, x->big_tag, 0, &st, NULL) != AETHER_OK)
            x->failed++;
        x->sink += st.ctr;
        return;
    default:
        return;
    }
}

/* ns per operation over ops operations. */
static double au_run(au_ctx *x, au_case c, uint64_t ops)
{
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) /* bounded: ops */
        au_op(x, c);
    return (double)(bench_now_ns() - t0) / (double)ops;
}

int bench_auth_main(const bench_opts *o)
{
    au_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return 1;
    aether_err err = {0};
    int rc = 1;
    if (aether_auth_create("0123456789abcdef0123456789abcdef", 32, &x->key, &err) != AETHER_OK ||
        aether_auth_window_create(&x->window) != AETHER_OK) {
        fprintf(stderr, "aether-bench auth: %s\n", err.msg);
        goto out;
    }
    aether_node_id self;
    (void)aether_node_id_from_cstr("node-a", &self, NULL);
    aether_auth_sealer_init(&x->sealer, x->key, &self, 0x18eee3db0e42ac00ull);
    snprintf(x->h.cluster, sizeof(x->h.cluster), "prod");
    x->h.node = self;
    x->h.ts_ms = AU_NOW_MS;
    if (aether_codec_encode_heartbeat(&x->h, 7, &x->hb, &x->hb_len, &err) != AETHER_OK) {
        fprintf(stderr, "aether-bench auth: %s\n", err.msg);
        goto out;
    }
    for (unsigned i = 0; i < AU_BIG; i++)
        x->big[i] = (char)('a' + i % 26);
    (void)aether_auth_seal(&x->sealer, AU_SUBJECT, x->big, AU_BIG, AU_NOW_MS, x->big_tag, sizeof(x->big_tag));

    bench_report_machine(o);
    char note[160];
    snprintf(note, sizeof(note), "one thread; a %zu-byte heartbeat envelope and a %u-byte payload; "
             "HMAC-SHA-512-256 (libsodium)", x->hb_len, AU_BIG);
    bench_report_begin(o, AU_BENCH, note);
    bench_stats st[AU_COUNT_];
    for (int c = 0; c < AU_COUNT_; c++) {
        double warm = au_run(x, (au_case)c, AU_CALIBRATE_OPS);
        double want = o->seconds * 1e9 / (warm > 1.0 ? warm : 1.0);
        uint64_t ops = want < AU_OPS_MIN ? AU_OPS_MIN : want > AU_OPS_MAX ? AU_OPS_MAX : (uint64_t)want;
        double v[BENCH_RUNS_MAX];
        for (unsigned r = 0; r < o->runs; r++)
            v[r] = au_run(x, (au_case)c, ops);
        st[c] = bench_stats_of(v, o->runs);
    }
    if (x->failed != 0) {
        fprintf(stderr, "aether-bench auth: %u operations failed (an open or a decode refused)\n", x->failed);
        goto out;
    }
    for (int c = 0; c < AU_COUNT_; c++) {
        int b = au_baseline[c];
        bench_report_row(o, AU_BENCH, au_names[c], "time", &st[c], "ns/msg", b >= 0 ? au_names[b] : NULL,
                         b >= 0 ? st[b].median : 0);
    }
    double send = st[AU_ENCODE_SEAL].median - st[AU_ENCODE].median;
    bench_report_note(o, "MAC per heartbeat: %.0f ns to send (encode_seal - encode), %.0f ns to receive "
                      "(seal_open_decode - decode - that)", send,
                      st[AU_OPEN_DECODE].median - st[AU_DECODE].median - send);
    volatile uint64_t keep = x->sink; /* the sink only keeps the work alive */
    (void)keep;
    rc = 0;
out:
    free(x->hb);
    aether_auth_window_destroy(x->window);
    aether_auth_destroy(x->key);
    free(x);
    return rc;
}
