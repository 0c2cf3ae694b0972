/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_lease_value.c: libFuzzer target for the lease records (actors/lease.h;
 * tests layer, fuzz build only): the lease key's value
 * (aether_lease_value_decode) and the recorded term in the state store (the
 * text aether_lease_recorded_term parses, reached through an in-memory KV
 * bucket, as a node reads it). Every input goes to both. Seeds:
 * tests/corpus/lease_value/, written by this target's own seed mode with
 * aether_lease_value_encode and the term's decimal form (tools/fuzz
 * --gen-corpus).
 *
 * Properties, each an abort when broken:
 *  1. a refused lease value is AETHER_EINVAL with its message and a zeroed
 *     *out; an accepted one has a valid leader, ttl in 1..max, term <= 2^63-1;
 *  2. lossless: the input and the re-encoding are equal JSON (json_equal);
 *  3. round trip: encode fits AETHER_LEASE_VALUE_LEN_MAX, decode(encode(v))
 *     == v, and encode(decode(encode(v))) == encode(v) byte for byte;
 *  4. a recorded term is accepted only as 1..20 decimal digits without
 *     overflow and never 0, and then its decimal form reads back the same
 *     term (the form aether_lease writes); a refusal is AETHER_EINVAL;
 *  5. the state bucket's generation (aether_lease_generation, the same
 *     way) is accepted only as exactly 16 lowercase hex digits not all
 *     zeros, and then aether_lease_generation_format gives the input back;
 *     a refusal is AETHER_EINVAL with generation 0. (The lease value's
 *     optional "gen" is property 1-3's.)
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fuzz_util.h"
#include "kv_store.h"
#include "lease.h"

#define TERM_KEY "fuzz-term"
#define GEN_KEY "fuzz-generation"

static aether_sim_clock fuzz_clock;
static aether_kv *state_kv;     /* the state bucket the recorded term is read from */
static uint64_t term_revision;  /* of TERM_KEY's last write */
static uint64_t gen_revision;   /* of GEN_KEY's last write */
static aether_lease_config cfg; /* only state_kv, term_key and generation_key are read */

static void check_value_round_trip(const uint8_t *data, size_t size, const aether_lease_value *v1)
{
    aether_err err = {0};
    char e1[AETHER_LEASE_VALUE_LEN_MAX + 1], e2[AETHER_LEASE_VALUE_LEN_MAX + 1];
    size_t l1 = 0, l2 = 0;
    aether_status st = aether_lease_value_encode(v1, e1, sizeof(e1), &l1, &err);
    FUZZ_CHECK(st == AETHER_OK, "decoded lease value does not encode: %s", err.msg);
    FUZZ_CHECK(l1 == strlen(e1) && l1 <= AETHER_LEASE_VALUE_LEN_MAX, "encoding length %zu", l1);

    json_error_t jerr;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    json_t *out = json_loadb(e1, l1, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(in != NULL && out != NULL && json_equal(in, out),
               "the value changed in decoding\n  encoding: %s", e1);
    json_decref(in);
    json_decref(out);

    aether_lease_value v2;
    st = aether_lease_value_decode(e1, l1, &v2, &err);
    FUZZ_CHECK(st == AETHER_OK, "own encoding refused: %s\n  encoding: %s", err.msg, e1);
    FUZZ_CHECK(memcmp(v1, &v2, sizeof(v2)) == 0, "decode(encode(v)) != v\n  encoding: %s", e1);
    st = aether_lease_value_encode(&v2, e2, sizeof(e2), &l2, &err);
    FUZZ_CHECK(st == AETHER_OK && l1 == l2 && memcmp(e1, e2, l1) == 0,
               "not a fixed point:\n  first:  %s\n  second: %s", e1, e2);
}

static void check_value(const uint8_t *data, size_t size)
{
    static const aether_lease_value zero;
    aether_lease_value v;
    aether_err err = {0};
    aether_status st = aether_lease_value_decode(data, size, &v, &err);
    if (st != AETHER_OK) {
        FUZZ_CHECK(st == AETHER_EINVAL && err.code == st && err.msg[0] != '\0',
                   "refused with %s: %s", aether_status_str(st), err.msg);
        FUZZ_CHECK(memcmp(&v, &zero, sizeof(v)) == 0, "a refusal left *out filled");
        return;
    }
    FUZZ_CHECK(aether_node_id_is_valid(&v.leader), "leader not valid");
    FUZZ_CHECK(v.ttl_ms >= 1 && v.ttl_ms <= AETHER_LEASE_TTL_MS_MAX, "ttl_ms %" PRIu64, v.ttl_ms);
    FUZZ_CHECK(v.term <= (uint64_t)INT64_MAX, "term %" PRIu64, v.term);
    check_value_round_trip(data, size, &v);
}

/* Writes bytes as the recorded term and reads them back as a node does. */
static aether_status read_term(const void *buf, size_t len, aether_term *term, aether_err *err)
{
    aether_err kerr = {0};
    aether_status st =
        aether_kv_update(state_kv, TERM_KEY, buf, len, term_revision, &term_revision, &kerr);
    FUZZ_CHECK(st == AETHER_OK, "in-memory KV update of %zu bytes: %s", len, kerr.msg);
    uint64_t rev = 0;
    st = aether_lease_recorded_term(&cfg, term, &rev, err);
    FUZZ_CHECK(st != AETHER_OK || rev == term_revision, "revision %" PRIu64 ", wrote %" PRIu64,
               rev, term_revision);
    return st;
}

/* The rule property 4 states, written independently of lease.c. */
static bool term_text_valid(const uint8_t *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > AETHER_LEASE_TERM_TEXT_MAX)
        return false;
    unsigned __int128 v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > UINT64_MAX)
        return false;
    *out = (uint64_t)v;
    return true;
}

static void check_term(const uint8_t *data, size_t size)
{
    if (size == 0 || size > AETHER_KV_VALUE_LEN_MAX)
        return; /* not a value the store holds: a missing term reads as none */
    aether_term t = 0;
    aether_err err = {0};
    aether_status st = read_term(data, size, &t, &err);
    uint64_t expect = 0;
    bool valid = term_text_valid(data, size, &expect);
    if (st != AETHER_OK) {
        FUZZ_CHECK(!valid, "valid term text refused: %s", err.msg);
        FUZZ_CHECK(st == AETHER_EINVAL && err.code == st && err.msg[0] != '\0',
                   "refused with %s: %s", aether_status_str(st), err.msg);
        FUZZ_CHECK(t == AETHER_TERM_NONE, "a refusal left a term");
        return;
    }
    FUZZ_CHECK(valid && t == expect, "accepted as term %" PRIu64, t);
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64, t);
    aether_term again = 0;
    st = read_term(text, (size_t)n, &again, &err);
    FUZZ_CHECK(st == AETHER_OK && again == t, "term %" PRIu64 " does not read back: %s", t,
               err.msg);
}

/* Property 5, the rule written independently of lease.c. */
static void check_generation(const uint8_t *data, size_t size)
{
    if (size == 0 || size > AETHER_KV_VALUE_LEN_MAX)
        return; /* not a value the store holds: a missing generation reads as none */
    aether_err kerr = {0};
    aether_status st =
        aether_kv_update(state_kv, GEN_KEY, data, size, gen_revision, &gen_revision, &kerr);
    FUZZ_CHECK(st == AETHER_OK, "in-memory KV update of %zu bytes: %s", size, kerr.msg);
    uint64_t g = 1, rev = 0;
    aether_err err = {0};
    st = aether_lease_generation(&cfg, &g, &rev, &err);
    bool valid = size == AETHER_LEASE_GENERATION_TEXT_LEN;
    bool zero = true;
    for (size_t i = 0; valid && i < size; i++) { /* bounded: 16 */
        valid = (data[i] >= '0' && data[i] <= '9') || (data[i] >= 'a' && data[i] <= 'f');
        zero = zero && data[i] == '0';
    }
    valid = valid && !zero;
    if (st != AETHER_OK) {
        FUZZ_CHECK(!valid, "valid generation text refused: %s", err.msg);
        FUZZ_CHECK(st == AETHER_EINVAL && err.code == st && err.msg[0] != '\0' && g == 0,
                   "refused with %s: %s", aether_status_str(st), err.msg);
        return;
    }
    FUZZ_CHECK(valid && g != 0 && rev == gen_revision, "accepted generation %016" PRIx64, g);
    char text[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
    aether_lease_generation_format(g, text, sizeof(text));
    FUZZ_CHECK(memcmp(text, data, size) == 0, "generation %s does not format back", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    check_value(data, size);
    check_term(data, size);
    check_generation(data, size);
    return 0;
}

/* ---- set-up and seeds ----------------------------------------------------- */

static void write_value_seed(const char *dir, const char *name, const char *leader,
                             uint64_t ttl_ms, aether_term term, uint64_t nonce, uint64_t gen)
{
    aether_lease_value v = {.ttl_ms = ttl_ms, .term = term, .nonce = nonce, .generation = gen};
    aether_err err = {0};
    FUZZ_CHECK(aether_node_id_from_cstr(leader, &v.leader, &err) == AETHER_OK, "%s", err.msg);
    char buf[AETHER_LEASE_VALUE_LEN_MAX + 1];
    size_t len = 0;
    FUZZ_CHECK(aether_lease_value_encode(&v, buf, sizeof(buf), &len, &err) == AETHER_OK, "%s",
               err.msg);
    fuzz_seed_write(dir, name, buf, len);
}

static void write_term_seed(const char *dir, const char *name, aether_term term)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64, term);
    fuzz_seed_write(dir, name, text, (size_t)n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    aether_sim_clock_init(&fuzz_clock, 0, 0);
    aether_kv_mem_config kc = {.name = "fuzz-state", .clock = &fuzz_clock.base};
    aether_err err = {0};
    FUZZ_CHECK(aether_kv_mem_create(&kc, &state_kv, &err) == AETHER_OK, "%s", err.msg);
    FUZZ_CHECK(aether_kv_create(state_kv, TERM_KEY, "1", 1, &term_revision, &err) == AETHER_OK,
               "%s", err.msg);
    FUZZ_CHECK(aether_kv_create(state_kv, GEN_KEY, "0000000000000001", 16, &gen_revision, &err) ==
                   AETHER_OK,
               "%s", err.msg);
    cfg.state_kv = state_kv;
    cfg.term_key = TERM_KEY;
    cfg.generation_key = GEN_KEY;

    const char *dir = fuzz_seed_dir();
    if (dir == NULL)
        return 0;
    write_value_seed(dir, "value-typical.json", "node-a", 10000, 42, 0x0123456789abcdefull, 0);
    write_value_seed(dir, "value-establishing.json", "n1", 1, AETHER_TERM_NONE, 0, 0);
    write_value_seed(dir, "value-extremes.json",
                     "a.b-c_d.EFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234567",
                     AETHER_LEASE_TTL_MS_MAX, (uint64_t)INT64_MAX, UINT64_MAX, 0);
    write_value_seed(dir, "value-generation.json", "node-a", 10000, 42, 0x0123456789abcdefull,
                     0x5be0c2a1d7f3e944ull);
    fuzz_seed_write(dir, "generation.txt", "5be0c2a1d7f3e944", 16);
    write_term_seed(dir, "term-1.txt", 1);
    write_term_seed(dir, "term-42.txt", 42);
    write_term_seed(dir, "term-max.txt", UINT64_MAX);
    aether_kv_destroy(state_kv);
    exit(0);
}
