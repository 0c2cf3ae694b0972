/*
 * gen_auth_vectors.c: the cluster-secret tag vectors of tests/vectors/auth.tsv,
 * made by the C code itself (transport/auth.h: aether_auth_create and
 * aether_auth_seal), so that another implementation (the JavaScript consumer
 * of docs/examples/js-consumer) can check it derives the same key and the
 * same MAC byte for byte (tests layer; issue 13 item 1).
 *
 *   gen_auth_vectors                 prints the vectors on stdout
 *   gen_auth_vectors --check FILE    exit 0 if FILE is exactly what it prints,
 *                                    1 naming the first line that differs
 *
 * Each vector is sealed by a sealer whose counter is set to ctr - 1, so
 * (epoch, ctr, ts_ms) are chosen, not drawn: the output is deterministic.
 * Every tag is also opened again (aether_auth_open, no freshness check) and
 * must verify; a copy with one payload byte changed must not.
 *
 * Threading: one thread.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define GV_SECRET_LEN_MAX 512u
#define GV_PAYLOAD_LEN_MAX 1200u
#define GV_OUT_MAX (64u * 1024u)

typedef struct gv_vector {
    const char *secret;     /* text; NULL: secret_hex is used */
    const char *secret_hex; /* raw bytes as hex (when secret is NULL) */
    const char *subject;
    const char *sender;
    uint64_t epoch, ctr, ts_ms;
    const char *payload;     /* text; NULL: payload_hex (or the 1 KiB pattern when both are NULL) */
    const char *payload_hex; /* raw bytes as hex */
} gv_vector;

/* A secret as `aetherctl secret new` writes it: 64 hex digits and a newline. */
#define GV_HEX_SECRET "3f2a9c0d5b7e14f86a1c3e5d7f9b0a2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a2b\n"

static const gv_vector gv_vectors[] = {
    /* a map publication */
    {GV_HEX_SECRET, NULL, "aether.aether.map", "n1", UINT64_C(0x1880d2b3c4a5e6f7), 1, UINT64_C(1796611200000),
     "{\"v\":1,\"version\":7,\"term\":2,\"shard_count\":4,\"replication\":1,\"shards\":[]}", NULL},
    /* an event, counter and clock far from the first */
    {GV_HEX_SECRET, NULL, "aether.aether.evt.NodeJoined", "n2", UINT64_C(0x1880d2b3c4a5e6f8), 4096,
     UINT64_C(1796611265432),
     "{\"v\":1,\"type\":\"NodeJoined\",\"cluster\":\"aether\",\"term\":2,\"seq\":3,\"node\":\"n1\","
     "\"data\":{\"node\":\"n2\"}}",
     NULL},
    /* a stored value: subject $KV.<bucket>.<key> */
    {GV_HEX_SECRET, NULL, "$KV.aether_aether_state.map", "node-a.rack_1", UINT64_C(0x0000000000000001), 2,
     UINT64_C(1), "{\"v\":1,\"version\":8}", NULL},
    /* trailing whitespace of every kind the C code strips: the same key as the first */
    {"3f2a9c0d5b7e14f86a1c3e5d7f9b0a2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a2b \t\r\n\n", NULL, "aether.aether.map", "n1",
     UINT64_C(0x1880d2b3c4a5e6f7), 2, UINT64_C(1796611200001), "{}", NULL},
    /* a raw binary secret of exactly 32 bytes (NULs and 0xff inside) */
    {NULL, "00ff10203040506070808090a0b0c0d0e0f000112233445566778899aabbccdd", "aether.c-1.hb.n3", "n3",
     UINT64_C(0xffffffffffffffff), UINT64_C(0xffffffffffffffff), UINT64_C(0xffffffffffffffff), NULL,
     "00"},
    /* an empty payload (a KV delete marker), the epoch's top bit set */
    {"a secret that is a sentence, longer than thirty-two bytes", NULL, "$KV.aether_prod_lease.leader",
     "aetherctl", UINT64_C(0x8000000000000000), UINT64_C(9007199254740993), UINT64_C(9007199254740993), "", NULL},
    /* a reply on an inbox, a binary payload */
    {GV_HEX_SECRET, NULL, "_INBOX.abcdefghijklmnopqrstuv.1", "a.b.c", UINT64_C(0x0123456789abcdef), 77,
     UINT64_C(1700000000123), NULL, "000102fffefd0a0d00"},
    /* a 1 KiB payload */
    {GV_HEX_SECRET, NULL, "aether.aether.evt.LeaseRenewed", "n1", UINT64_C(0x1880d2b3c4a5e6f7), 3,
     UINT64_C(1796611200002), NULL, NULL},
};
#define GV_COUNT (sizeof(gv_vectors) / sizeof(gv_vectors[0]))

static size_t gv_unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    if (n > cap)
        abort();
    for (size_t i = 0; i < n; i++) { /* bounded: n <= cap */
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            abort();
        out[i] = (unsigned char)v;
    }
    return n;
}

static void gv_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) /* bounded: n */
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

/* Appends one formatted piece to out (abort on overflow: a fixed table). */
static void gv_put(char *out, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void gv_put(char *out, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, GV_OUT_MAX - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= GV_OUT_MAX - *len)
        abort();
    *len += (size_t)n;
}

/* One vector's line (with its newline) appended to out; 1 on a C-side failure. */
static int gv_line(const gv_vector *v, char *out, size_t *len)
{
    unsigned char secret[GV_SECRET_LEN_MAX], payload[GV_PAYLOAD_LEN_MAX];
    size_t slen = v->secret != NULL ? strlen(v->secret) : gv_unhex(v->secret_hex, secret, sizeof(secret));
    if (v->secret != NULL)
        memcpy(secret, v->secret, slen);
    size_t plen;
    if (v->payload != NULL) {
        plen = strlen(v->payload);
        memcpy(payload, v->payload, plen);
    } else if (v->payload_hex != NULL) {
        plen = gv_unhex(v->payload_hex, payload, sizeof(payload));
    } else {
        plen = 1024;
        for (size_t i = 0; i < plen; i++) /* bounded: 1024 */
            payload[i] = (unsigned char)('a' + i % 26);
    }
    aether_auth *a = NULL;
    aether_err err = {0};
    if (aether_auth_create(secret, slen, &a, &err) != AETHER_OK) {
        fprintf(stderr, "gen_auth_vectors: %s\n", err.msg);
        return 1;
    }
    aether_node_id sender;
    if (aether_node_id_from_cstr(v->sender, &sender, &err) != AETHER_OK) {
        fprintf(stderr, "gen_auth_vectors: %s\n", err.msg);
        aether_auth_destroy(a);
        return 1;
    }
    aether_auth_sealer s;
    aether_auth_sealer_init(&s, a, &sender, v->epoch);
    s.ctr = v->ctr - 1; /* the next seal uses ctr */
    char tag[AETHER_AUTH_TAG_MAX];
    int rc = 0;
    aether_auth_stamp st;
    if (aether_auth_seal(&s, v->subject, payload, plen, v->ts_ms, tag, sizeof(tag)) != AETHER_OK ||
        aether_auth_open(a, v->subject, payload, plen, tag, 0, &st, &err) != AETHER_OK || st.ctr != v->ctr) {
        fprintf(stderr, "gen_auth_vectors: %s: the C code does not open its own tag: %s\n", v->subject, err.msg);
        rc = 1;
    }
    payload[plen] = 'x'; /* one byte more: must not verify */
    if (rc == 0 && aether_auth_open(a, v->subject, payload, plen + 1, tag, 0, &st, &err) == AETHER_OK) {
        fprintf(stderr, "gen_auth_vectors: %s: a changed payload verifies\n", v->subject);
        rc = 1;
    }
    aether_auth_destroy(a);
    if (rc != 0)
        return rc;
    static char shex[2 * GV_SECRET_LEN_MAX + 1], phex[2 * GV_PAYLOAD_LEN_MAX + 1];
    gv_hex(secret, slen, shex);
    gv_hex(payload, plen, phex);
    gv_put(out, len, "%s\t%s\t%s\t%016" PRIx64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\t%s\n", shex, v->subject, v->sender,
           v->epoch, v->ctr, v->ts_ms, phex, tag);
    return 0;
}

static int gv_make(char *out, size_t *len)
{
    *len = 0;
    gv_put(out, len, "# Cluster-secret tag vectors (transport/auth.h; docs/wire.md, Authentication).\n");
    gv_put(out, len, "# Generated by the C code: tools/gen-vectors --auth BUILD_DIR (gen_auth_vectors); "
                     "do not edit by hand.\n");
    gv_put(out, len, "# Columns (tab-separated): secret_hex subject sender epoch_hex ctr ts_ms payload_hex tag\n");
    gv_put(out, len, "# secret_hex: the secret file's bytes (trailing whitespace included); payload_hex may be "
                     "empty; tag: the Aether-Auth header value.\n");
    for (size_t i = 0; i < GV_COUNT; i++) /* bounded: the table */
        if (gv_line(&gv_vectors[i], out, len) != 0)
            return 1;
    return 0;
}

static int gv_check(const char *path, const char *want, size_t want_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    static char got[GV_OUT_MAX];
    size_t n = fread(got, 1, sizeof(got) - 1, f);
    fclose(f);
    got[n] = '\0';
    if (n == want_len && memcmp(got, want, n) == 0) {
        printf("gen_auth_vectors: %s equals what the C code makes (%zu vectors)\n", path, GV_COUNT);
        return 0;
    }
    size_t line = 1;
    for (size_t i = 0; i < n && i < want_len && got[i] == want[i]; i++) /* bounded: n */
        line += got[i] == '\n';
    fprintf(stderr, "gen_auth_vectors: %s differs from what the C code makes, first at line %zu "
            "(regenerate: tools/gen-vectors --auth BUILD_DIR)\n", path, line);
    return 1;
}

int main(int argc, char **argv)
{
    static char out[GV_OUT_MAX];
    size_t len = 0;
    if (!(argc == 1 || (argc == 3 && strcmp(argv[1], "--check") == 0))) {
        fprintf(stderr, "usage: gen_auth_vectors [--check FILE]\n");
        return 2;
    }
    if (gv_make(out, &len) != 0)
        return 1;
    if (argc == 3)
        return gv_check(argv[2], out, len);
    return fwrite(out, 1, len, stdout) == len ? 0 : 1;
}
