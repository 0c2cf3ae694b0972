/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_codec.c: libFuzzer target for the wire codec (transport/codec.h):
 * the envelope decoder and, through the "type" it names, every event,
 * command, ShardReleased, Heartbeat and Reply decoder (tests layer, fuzz
 * build only). Seeds: tests/corpus/codec/ (written by `test_codec corpus`).
 *
 * Each input is decoded twice: under the default limits, and under strict
 * ones (cluster "prod", 1024 shards, fencing term 42, 512 bytes, with stats
 * and a logging limiter on a simulated clock that lets every refusal be
 * logged).
 * Properties, each an abort when broken:
 *  1. a refusal is AETHER_EINVAL (defaults never fence, so never ESTALE) with
 *     err.code equal to the status and a non-empty message of printable
 *     ASCII only (codec.h: text copied from the input is stripped, so a
 *     forged message cannot forge a log line);
 *  2. strict limits only ever refuse more: accepted under them means
 *     accepted under the defaults with an equal value; ESTALE only for a
 *     well-formed event or ShardReleased whose fencing term is below 42;
 *     wrong_cluster only for a well-formed message of another cluster; the
 *     stats count each strict decode exactly once;
 *  3. round trip: what decode accepts, encode accepts (codec.h: "what we
 *     send we also accept", and the converse); decode(encode(m)) == m; and
 *     encode(decode(encode(m))) == encode(m) byte for byte (one round
 *     reaches the canonical fixed point);
 *  4. lossless: an accepted input and its re-encoding are equal JSON
 *     (jansson json_equal: same keys and values in any order), so decode
 *     dropped or bent nothing the sender said.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "fuzz_util.h"
#include "log.h"

#define STRICT_CLUSTER "prod"
#define STRICT_MIN_TERM 42u
#define STRICT_SHARDS 1024u
#define STRICT_MAX_BYTES 512u

static aether_sim_clock fuzz_clock;
static aether_codec_stats fuzz_stats;
static uint64_t fuzz_log_lines;

static void discard_line(void *arg, aether_log_level level, const char *line, int len)
{
    (void)arg;
    (void)level;
    (void)line;
    (void)len;
    fuzz_log_lines++;
}


static bool msg_equal(const aether_codec_msg *a, const aether_codec_msg *b)
{
    if (a->kind != b->kind || memcmp(&a->hdr, &b->hdr, sizeof(a->hdr)) != 0)
        return false;
    switch (a->kind) {
    case AETHER_CODEC_EVENT:
        return aether_event_equal(a->u.event, b->u.event);
    case AETHER_CODEC_COMMAND:
        return memcmp(&a->u.command, &b->u.command, sizeof(a->u.command)) == 0;
    case AETHER_CODEC_RELEASE:
        return memcmp(&a->u.release, &b->u.release, sizeof(a->u.release)) == 0;
    case AETHER_CODEC_HEARTBEAT:
        return memcmp(&a->u.heartbeat, &b->u.heartbeat, sizeof(a->u.heartbeat)) == 0;
    case AETHER_CODEC_REPLY:
        return memcmp(&a->u.reply, &b->u.reply, sizeof(a->u.reply)) == 0;
    }
    return false;
}

static bool printable_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void check_refusal(aether_status st, const aether_err *err, bool may_be_stale)
{
    FUZZ_CHECK(st == AETHER_EINVAL || (may_be_stale && st == AETHER_ESTALE),
               "refused with %s: %s", aether_status_str(st), err->msg);
    FUZZ_CHECK(err->code == st, "err.code %s, status %s", aether_status_str(err->code),
               aether_status_str(st));
    FUZZ_CHECK(err->msg[0] != '\0', "refusal without a message");
    FUZZ_CHECK(printable_ascii(err->msg), "error message with raw input bytes: %s", err->msg);
}

/* Property 4: the input against the re-encoding of what it decoded to. */
static void check_lossless(const uint8_t *data, size_t size, const char *enc, size_t enc_len)
{
    json_error_t jerr;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    json_t *out = json_loadb(enc, enc_len, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(in != NULL && out != NULL && json_equal(in, out),
               "the message changed in decoding\n  encoding: %s", enc);
    json_decref(in);
    json_decref(out);
}

/* Properties 3 and 4 on a message decoded from data. */
static void check_round_trip(const uint8_t *data, size_t size, const aether_codec_msg *m1)
{
    aether_err err = {0};
    char *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;
    aether_status st = aether_codec_encode_msg(m1, &e1, &l1, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded message does not encode: %s: %s", aether_status_str(st),
               err.msg);
    FUZZ_CHECK(l1 == strlen(e1) && l1 <= AETHER_CODEC_MAX_BYTES_DEFAULT, "encoding length %zu",
               l1);
    check_lossless(data, size, e1, l1);
    aether_codec_msg m2;
    st = aether_codec_decode(e1, l1, NULL, &m2, &err);
    FUZZ_CHECK(st == AETHER_OK, "own encoding refused: %s: %s\n  encoding: %s",
               aether_status_str(st), err.msg, e1);
    FUZZ_CHECK(msg_equal(m1, &m2), "decode(encode(m)) != m\n  encoding: %s", e1);
    st = aether_codec_encode_msg(&m2, &e2, &l2, &err);
    FUZZ_CHECK(st == AETHER_OK, "second encode failed: %s", err.msg);
    FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0,
               "not a fixed point:\n  first:  %s\n  second: %s", e1, e2);
    free(e1);
    free(e2);
    aether_codec_msg_fini(&m2);
}

/* The term step 5 fences on, for a message accepted under the defaults. */
static bool fenced_term(const aether_codec_msg *m, aether_term *t)
{
    if (m->kind == AETHER_CODEC_EVENT) {
        *t = m->hdr.term;
        return true;
    }
    if (m->kind == AETHER_CODEC_RELEASE) {
        *t = m->u.release.term;
        return true;
    }
    return false;
}

/* Property 2: the strict decode against the default one (st1, m1). */
static void check_strict(const uint8_t *data, size_t size, aether_status st1,
                         const aether_codec_msg *m1)
{
    static const aether_codec_limits strict = {
        .max_bytes = STRICT_MAX_BYTES,
        .shard_count = STRICT_SHARDS,
        .cluster = STRICT_CLUSTER,
        .min_term = STRICT_MIN_TERM,
        .stats = &fuzz_stats,
    };
    uint64_t before = aether_codec_stats_decoded(&fuzz_stats) +
                      aether_codec_stats_rejected_total(&fuzz_stats);
    uint64_t wrong_before = aether_codec_stats_rejected(&fuzz_stats,
                                                        AETHER_CODEC_REJECT_WRONG_CLUSTER);
    aether_sim_clock_advance_ns(&fuzz_clock, 2 * AETHER_NS_PER_S); /* the limiter lets it log */
    aether_codec_msg ms;
    aether_err err = {0};
    aether_status st = aether_codec_decode(data, size, &strict, &ms, &err);
    uint64_t after = aether_codec_stats_decoded(&fuzz_stats) +
                     aether_codec_stats_rejected_total(&fuzz_stats);
    FUZZ_CHECK(after == before + 1, "stats counted %llu decodes for one",
               (unsigned long long)(after - before));
    if (st == AETHER_OK) {
        FUZZ_CHECK(st1 == AETHER_OK, "accepted under strict limits, refused under the defaults");
        FUZZ_CHECK(msg_equal(m1, &ms), "strict and default decodes differ");
        aether_codec_msg_fini(&ms);
        return;
    }
    check_refusal(st, &err, true);
    aether_term t = 0;
    if (st == AETHER_ESTALE)
        FUZZ_CHECK(st1 == AETHER_OK && fenced_term(m1, &t) && t < STRICT_MIN_TERM &&
                       strcmp(m1->hdr.cluster, STRICT_CLUSTER) == 0,
                   "ESTALE for a message that is not a well-formed, fenced, older one: %s",
                   err.msg);
    if (aether_codec_stats_rejected(&fuzz_stats, AETHER_CODEC_REJECT_WRONG_CLUSTER) !=
        wrong_before)
        FUZZ_CHECK(st1 == AETHER_OK && strcmp(m1->hdr.cluster, STRICT_CLUSTER) != 0,
                   "wrong_cluster for a message that is not a well-formed one of another "
                   "cluster: %s",
                   err.msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    aether_sim_clock_init(&fuzz_clock, 0, 0);
    aether_codec_stats_init(&fuzz_stats, &fuzz_clock.base);
    aether_log_set_level(AETHER_LOG_WARN);
    aether_log_set_sink(discard_line, NULL);
    /* Seeds: tests/corpus/codec/ comes from `test_codec corpus` (tools/gen-codec-corpus). */
    if (fuzz_seed_dir() != NULL)
        exit(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    aether_codec_msg m1;
    aether_err err = {0};
    aether_status st = aether_codec_decode(data, size, NULL, &m1, &err);
    if (st != AETHER_OK) {
        check_refusal(st, &err, false);
        FUZZ_CHECK(m1.kind == 0 && m1.u.event == NULL, "refusal left a message behind");
    }
    check_strict(data, size, st, &m1);
    if (st == AETHER_OK) {
        check_round_trip(data, size, &m1);
        aether_codec_msg_fini(&m1);
    }
    return 0;
}
