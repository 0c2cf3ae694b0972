/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_auth.c: libFuzzer target for the authenticated envelope
 * (transport/auth.h): the Aether-Auth tag parser and verifier, the sealer,
 * and the replay window (tests layer, fuzz build only). Seeds:
 * tests/corpus/auth/ (written by the target itself, tools/fuzz --gen-corpus).
 *
 * Input: byte 0 and 1 pick a position, byte 2 a bit, byte 3 a clock offset (0..60 s);
 * the rest is "subject NUL payload" (no NUL: all subject, empty payload).
 * Properties, each an abort when broken:
 *  1. the rest as a tag (NUL-terminated text) never opens for that subject
 *     and payload under the fuzz key (nobody without the key makes a valid
 *     MAC), and a refusal is AETHER_EPERM with a non-empty message of
 *     printable ASCII (it is logged: a forged tag must not forge a log line);
 *  2. seal then open: accepted, the stamp names the sealer, its epoch and
 *     the counter just used; opened again with the receiver's clock more
 *     than AETHER_AUTH_SKEW_MS away it is refused as stale, and with no
 *     clock (0, a stored value) accepted;
 *  3. one bit flipped anywhere in subject, payload or tag: refused, unless
 *     the flip only rewrote the tag's text into an equal parse (hex letter
 *     case) - then the stamp is the original one: nothing the MAC covers
 *     can change;
 *  4. the replay window against a model: stamps drawn from the input (3
 *     senders, 2 epochs, counters 1..200) are admitted only when new, never
 *     twice, never an epoch below one admitted for that sender, never more
 *     than AETHER_AUTH_WINDOW_SPAN below the highest; and a counter above
 *     the highest of the newest epoch is always admitted.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fuzz_util.h"

#define FUZZ_NOW_MS UINT64_C(1796600000000)
#define FUZZ_SUBJECT_MAX 256u
#define FUZZ_TAG_INPUT_MAX 300u

static aether_auth *fuzz_key;

static bool printable(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void check_refusal(aether_status st, const aether_err *why, const char *what)
{
    FUZZ_CHECK(st == AETHER_EPERM, "%s: status %d, want EPERM", what, (int)st);
    FUZZ_CHECK(printable(why->msg), "%s: refusal message not printable ASCII: '%s'", what, why->msg);
}

/* Property 4: a model of the window (auth.h) beside the real one. */
typedef struct model_sender {
    uint64_t epoch, high;
    bool any;
    bool seen[2][201];
} model_sender;

static void check_window(const uint8_t *p, size_t n)
{
    aether_auth_window *w = NULL;
    FUZZ_CHECK(aether_auth_window_create(&w) == AETHER_OK, "window create");
    static const char *const names[3] = {"n1", "n2", "aetherctl"};
    model_sender m[3];
    memset(m, 0, sizeof(m));
    for (size_t i = 0; i + 1 < n; i += 2) { /* bounded: the input */
        unsigned s = p[i] % 3, e = (p[i] >> 2) & 1u;
        uint64_t ctr = 1 + (uint64_t)p[i + 1] % 200;
        aether_auth_stamp st = {.epoch = 100 + e, .ctr = ctr};
        (void)aether_node_id_from_cstr(names[s], &st.sender, NULL);
        aether_err why = {0};
        aether_status got = aether_auth_window_admit(w, &st, &why);
        model_sender *ms = &m[s];
        bool fresh_above = !ms->any || st.epoch > ms->epoch || (st.epoch == ms->epoch && ctr > ms->high);
        if (got == AETHER_OK) {
            FUZZ_CHECK(!ms->seen[e][ctr], "%s %u/%llu admitted twice", names[s], e, (unsigned long long)ctr);
            FUZZ_CHECK(!ms->any || st.epoch >= ms->epoch, "%s: epoch below one admitted", names[s]);
            FUZZ_CHECK(fresh_above || ms->high - ctr < AETHER_AUTH_WINDOW_SPAN,
                       "%s: counter %llu admitted more than the span below %llu", names[s],
                       (unsigned long long)ctr, (unsigned long long)ms->high);
            ms->seen[e][ctr] = true;
            if (fresh_above) {
                if (ms->any && st.epoch > ms->epoch)
                    memset(ms->seen[1 - e], 0, sizeof(ms->seen[1 - e])); /* an older epoch never again */
                ms->epoch = st.epoch;
                ms->high = ctr;
                ms->any = true;
            }
        } else {
            check_refusal(got, &why, "window refusal");
            FUZZ_CHECK(!fresh_above, "%s %u/%llu above the highest refused", names[s], e,
                       (unsigned long long)ctr);
        }
    }
    aether_auth_window_destroy(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_BEGIN(data, size);
    if (size < 4)
        return 0;
    size_t pos = (size_t)data[0] << 8 | data[1];
    unsigned bit = data[2] & 7u;
    uint64_t skew = (uint64_t)(data[3] % 61u) * 1000u; /* within AETHER_AUTH_SKEW_MS */
    const uint8_t *rest = data + 4;
    size_t rlen = size - 4;
    const uint8_t *nul = memchr(rest, 0, rlen);
    size_t slen = nul != NULL ? (size_t)(nul - rest) : rlen;
    if (slen >= FUZZ_SUBJECT_MAX)
        slen = FUZZ_SUBJECT_MAX - 1;
    char subject[FUZZ_SUBJECT_MAX];
    memcpy(subject, rest, slen);
    subject[slen] = '\0';
    const uint8_t *payload = nul != NULL ? nul + 1 : rest + rlen;
    size_t plen = (size_t)(rest + rlen - payload);

    /* 1. The input as a tag. */
    char tag_in[FUZZ_TAG_INPUT_MAX + 1];
    size_t tlen = rlen < FUZZ_TAG_INPUT_MAX ? rlen : FUZZ_TAG_INPUT_MAX;
    memcpy(tag_in, rest, tlen);
    tag_in[tlen] = '\0';
    aether_auth_stamp stamp;
    aether_err why = {0};
    aether_status st = aether_auth_open(fuzz_key, subject, payload, plen, tag_in, FUZZ_NOW_MS, &stamp, &why);
    check_refusal(st, &why, "input as a tag");

    /* 2. Seal, open. */
    aether_auth_sealer sealer;
    aether_node_id self;
    (void)aether_node_id_from_cstr("n1", &self, NULL);
    aether_auth_sealer_init(&sealer, fuzz_key, &self, UINT64_C(0x18eee3db0e42ac00));
    char tag[AETHER_AUTH_TAG_MAX];
    FUZZ_CHECK(aether_auth_seal(&sealer, subject, payload, plen, FUZZ_NOW_MS, tag, sizeof(tag)) == AETHER_OK, "seal");
    aether_auth_stamp good;
    st = aether_auth_open(fuzz_key, subject, payload, plen, tag, FUZZ_NOW_MS + skew, &good, &why);
    FUZZ_CHECK(st == AETHER_OK, "a sealed message did not open: %s", why.msg);
    FUZZ_CHECK(aether_node_id_equal(&good.sender, &self) && good.epoch == sealer.epoch && good.ctr == 1 &&
                   good.ts_ms == FUZZ_NOW_MS,
               "the stamp is not the sealer's");
    st = aether_auth_open(fuzz_key, subject, payload, plen, tag, FUZZ_NOW_MS + AETHER_AUTH_SKEW_MS + 1 + skew,
                          &stamp, &why);
    check_refusal(st, &why, "stale");
    st = aether_auth_open(fuzz_key, subject, payload, plen, tag, 0, &stamp, &why);
    FUZZ_CHECK(st == AETHER_OK, "a stored value (no clock) did not open: %s", why.msg);

    /* 3. One bit flipped in subject | payload | tag. */
    size_t tag_len = strlen(tag), total = slen + plen + tag_len;
    if (total > 0) {
        size_t at = pos % total;
        char s2[FUZZ_SUBJECT_MAX];
        memcpy(s2, subject, slen + 1);
        uint8_t *p2 = malloc(plen + 1);
        FUZZ_CHECK(p2 != NULL, "out of memory");
        if (plen > 0)
            memcpy(p2, payload, plen);
        char t2[AETHER_AUTH_TAG_MAX];
        memcpy(t2, tag, tag_len + 1);
        bool in_tag = false;
        if (at < slen)
            s2[at] ^= (char)(1u << bit);
        else if (at < slen + plen)
            p2[at - slen] ^= (uint8_t)(1u << bit);
        else {
            t2[at - slen - plen] ^= (char)(1u << bit);
            in_tag = true;
        }
        /* A NUL flipped into the subject or tag shortens it: still a change. */
        st = aether_auth_open(fuzz_key, s2, p2, plen, t2, FUZZ_NOW_MS, &stamp, &why);
        if (st == AETHER_OK) {
            FUZZ_CHECK(in_tag, "a flipped bit at %zu of the subject or payload still opened", at);
            FUZZ_CHECK(aether_node_id_equal(&stamp.sender, &good.sender) && stamp.epoch == good.epoch &&
                           stamp.ctr == good.ctr && stamp.ts_ms == good.ts_ms,
                       "a flipped tag opened with another stamp");
        } else {
            check_refusal(st, &why, "flipped");
        }
        free(p2);
    }

    /* 4. The replay window. */
    check_window(rest, rlen);
    return 0;
}

static void write_seed(const char *dir, const char *name, const char *subject, const char *payload)
{
    uint8_t buf[1024];
    size_t sl = strlen(subject), pl = strlen(payload);
    buf[0] = 0;
    buf[1] = 7;
    buf[2] = 5;
    buf[3] = 0;
    memcpy(buf + 4, subject, sl);
    buf[4 + sl] = 0;
    memcpy(buf + 5 + sl, payload, pl);
    fuzz_seed_write(dir, name, buf, 5 + sl + pl);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    aether_err err = {0};
    static const char secret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    FUZZ_CHECK(aether_auth_create(secret, sizeof(secret) - 1, &fuzz_key, &err) == AETHER_OK, "%s", err.msg);
    const char *dir = fuzz_seed_dir();
    if (dir == NULL)
        return 0;
    write_seed(dir, "heartbeat", "aether.prod.hb.n1",
               "{\"v\":1,\"type\":\"Heartbeat\",\"cluster\":\"prod\",\"term\":0,\"seq\":0,\"node\":\"n1\","
               "\"ts\":1796600000000,\"data\":{\"node\":\"n1\",\"incarnation\":7}}");
    write_seed(dir, "lease-value", "$KV.aether_prod_lease.leader",
               "{\"leader\":\"n1\",\"ttl_ms\":1000,\"term\":42,\"nonce\":\"0123456789abcdef\"}");
    write_seed(dir, "empty-payload", "aether.prod.map", "");
    write_seed(dir, "tag-like", "1 n1 18eee3db0e42ac00 1 1796600000000 "
                                "00000000000000000000000000000000000000000000000000000000000000zz", "x");
    aether_auth_destroy(fuzz_key);
    exit(0);
}
