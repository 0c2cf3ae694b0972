/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.c: message and stored-value authentication (transport layer).
 * See auth.h for the tag, the key derivation and the threading.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define AUTH_DOMAIN "aether-auth-1"
#define AUTH_PERSONAL "aether.key.v1..." /* crypto_generichash_blake2b_PERSONALBYTES = 16 */
#define AUTH_TAG_VERSION "1"

struct aether_auth {
    unsigned char key[crypto_auth_hmacsha512256_KEYBYTES];
    /* HMAC keyed once: the inner and outer hashes after the key's padded
     * block. Every MAC starts from a copy (saves two SHA-512 compressions
     * per message: aether-bench auth). Immutable after create. */
    crypto_auth_hmacsha512256_state keyed;
};

/* ---- the key ----------------------------------------------------------------- */

static aether_status sodium_ready(aether_err *err)
{
    if (sodium_init() < 0)
        return aether_err_set(err, AETHER_EIO, "libsodium could not start");
    return AETHER_OK;
}

aether_status aether_auth_create(const void *secret, size_t len, aether_auth **out, aether_err *err)
{
    *out = NULL;
    aether_status st = sodium_ready(err);
    if (st != AETHER_OK)
        return st;
    const unsigned char *b = secret;
    while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == '\t' || b[len - 1] == '\n' || b[len - 1] == '\r'))
        len--; /* bounded: len */
    if (len < AETHER_AUTH_SECRET_MIN)
        return aether_err_set(err, AETHER_EINVAL,
                              "the secret has %zu bytes, at least %u are needed (aetherctl secret new "
                              "FILE makes one)",
                              len, AETHER_AUTH_SECRET_MIN);
    if (len > AETHER_AUTH_SECRET_MAX)
        return aether_err_set(err, AETHER_EINVAL, "the secret has %zu bytes, at most %u are read", len,
                              AETHER_AUTH_SECRET_MAX);
    aether_auth *a = sodium_malloc(sizeof(*a));
    if (a == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    crypto_generichash_blake2b_salt_personal(a->key, sizeof(a->key), b, len, NULL, 0, NULL,
                                             (const unsigned char *)AUTH_PERSONAL);
    crypto_auth_hmacsha512256_init(&a->keyed, a->key, sizeof(a->key));
    *out = a;
    return AETHER_OK;
}

aether_status aether_auth_load_file(const char *path, aether_auth **out, aether_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return aether_err_set(err, AETHER_EINVAL, "cluster_secret_file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return aether_err_set(err, AETHER_EINVAL, "cluster_secret_file %s: not a regular file", path);
    }
    if (sb.st_size > (off_t)AETHER_AUTH_SECRET_MAX + 16) {
        close(fd);
        return aether_err_set(err, AETHER_EINVAL, "cluster_secret_file %s: %lld bytes, a secret file has at "
                              "most %u", path, (long long)sb.st_size, AETHER_AUTH_SECRET_MAX);
    }
    unsigned char buf[AETHER_AUTH_SECRET_MAX + 16];
    size_t len = 0;
    while (len < sizeof(buf)) { /* bounded: the buffer */
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    aether_status st = aether_auth_create(buf, len, out, err);
    sodium_memzero(buf, sizeof(buf));
    if (st != AETHER_OK)
        aether_err_prefix(err, "cluster_secret_file %s", path);
    return st;
}

void aether_auth_destroy(aether_auth *a)
{
    if (a != NULL)
        sodium_free(a); /* zeroes it */
}

aether_status aether_auth_new_secret_file(const char *path, aether_err *err)
{
    aether_status st = sodium_ready(err);
    if (st != AETHER_OK)
        return st;
    unsigned char raw[32];
    char hex[2 * sizeof(raw) + 2];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex) - 1, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    size_t n = strlen(hex);
    hex[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sodium_memzero(hex, sizeof(hex));
        return aether_err_set(err, errno == EEXIST ? AETHER_EEXIST : AETHER_EINVAL, "%s: %s%s", path,
                              strerror(errno), errno == EEXIST ? " (a secret is never overwritten)" : "");
    }
    ssize_t w = write(fd, hex, n);
    sodium_memzero(hex, sizeof(hex));
    if (w != (ssize_t)n || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return aether_err_set(err, AETHER_EIO, "%s: could not write the secret", path);
    }
    close(fd);
    return AETHER_OK;
}

/* ---- tags -------------------------------------------------------------------- */

void aether_auth_sealer_init(aether_auth_sealer *s, const aether_auth *a, const aether_node_id *sender,
                             uint64_t epoch)
{
    s->auth = a;
    s->sender = *sender;
    s->epoch = epoch;
    s->ctr = 0;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void mac_of(const aether_auth *a, const char *subject, const aether_node_id *sender, uint64_t epoch,
                   uint64_t ctr, uint64_t ts_ms, const void *payload, size_t len,
                   unsigned char mac[crypto_auth_hmacsha512256_BYTES])
{
    crypto_auth_hmacsha512256_state st = a->keyed;
    static const unsigned char zero = 0;
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)AUTH_DOMAIN, sizeof(AUTH_DOMAIN) - 1);
    crypto_auth_hmacsha512256_update(&st, &zero, 1);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)subject, strlen(subject));
    crypto_auth_hmacsha512256_update(&st, &zero, 1);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)sender->str, sender->len);
    crypto_auth_hmacsha512256_update(&st, &zero, 1);
    unsigned char nums[24];
    put_le64(nums, epoch);
    put_le64(nums + 8, ctr);
    put_le64(nums + 16, ts_ms);
    crypto_auth_hmacsha512256_update(&st, nums, sizeof(nums));
    crypto_auth_hmacsha512256_update(&st, payload, len);
    crypto_auth_hmacsha512256_final(&st, mac);
    sodium_memzero(&st, sizeof(st));
}

aether_status aether_auth_seal(aether_auth_sealer *s, const char *subject, const void *payload, size_t len,
                               uint64_t now_ms, char *tag, size_t cap)
{
    if (cap < AETHER_AUTH_TAG_MAX)
        return AETHER_EINVAL;
    uint64_t ctr = __atomic_add_fetch(&s->ctr, 1, __ATOMIC_RELAXED);
    unsigned char mac[crypto_auth_hmacsha512256_BYTES];
    mac_of(s->auth, subject, &s->sender, s->epoch, ctr, now_ms, payload, len, mac);
    char hex[2 * sizeof(mac) + 1];
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    snprintf(tag, cap, AUTH_TAG_VERSION " %s %016" PRIx64 " %" PRIu64 " %" PRIu64 " %s", s->sender.str,
             s->epoch, ctr, now_ms, hex);
    return AETHER_OK;
}

/* Splits tag into its six fields (pointers into copy). */
static aether_status parse_tag(const char *tag, char *copy, size_t cap, char *fields[6], aether_err *why)
{
    size_t n = strnlen(tag, cap);
    if (n == cap)
        return aether_err_set(why, AETHER_EPERM, "malformed tag: longer than %zu bytes", cap - 1);
    memcpy(copy, tag, n + 1);
    unsigned k = 0;
    char *save = NULL;
    for (char *f = strtok_r(copy, " ", &save); f != NULL; f = strtok_r(NULL, " ", &save)) { /* bounded: n */
        if (k == 6)
            return aether_err_set(why, AETHER_EPERM, "malformed tag: more than 6 fields");
        fields[k++] = f;
    }
    if (k != 6)
        return aether_err_set(why, AETHER_EPERM, "malformed tag: %u fields, 6 expected", k);
    if (strcmp(fields[0], AUTH_TAG_VERSION) != 0) {
        /* The refusal is logged: quote the field only if it is plain text. */
        bool text = true;
        for (const char *p = fields[0]; *p != '\0' && text; p++) /* bounded: the tag */
            text = (unsigned char)*p >= 0x21 && (unsigned char)*p < 0x7f;
        return text ? aether_err_set(why, AETHER_EPERM, "malformed tag: format '%.8s' is not " AUTH_TAG_VERSION,
                                     fields[0])
                    : aether_err_set(why, AETHER_EPERM, "malformed tag: format is not " AUTH_TAG_VERSION);
    }
    return AETHER_OK;
}

static bool parse_u64(const char *s, int base, uint64_t *out)
{
    if (s[0] == '\0' || s[0] == '-' || s[0] == '+')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, base);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

aether_status aether_auth_open(const aether_auth *a, const char *subject, const void *payload, size_t len,
                               const char *tag, uint64_t now_ms, aether_auth_stamp *out, aether_err *why)
{
    if (tag == NULL || tag[0] == '\0')
        return aether_err_set(why, AETHER_EPERM, "no " AETHER_AUTH_HEADER " tag");
    char copy[AETHER_AUTH_TAG_MAX];
    char *f[6];
    aether_status st = parse_tag(tag, copy, sizeof(copy), f, why);
    if (st != AETHER_OK)
        return st;
    aether_auth_stamp s;
    memset(&s, 0, sizeof(s));
    aether_err inner;
    if (aether_node_id_from_cstr(f[1], &s.sender, &inner) != AETHER_OK)
        return aether_err_set(why, AETHER_EPERM, "malformed tag: sender: %s", inner.msg);
    if (strlen(f[2]) != 16 || !parse_u64(f[2], 16, &s.epoch))
        return aether_err_set(why, AETHER_EPERM, "malformed tag: epoch is not 16 hex digits");
    if (!parse_u64(f[3], 10, &s.ctr) || s.ctr == 0)
        return aether_err_set(why, AETHER_EPERM, "malformed tag: counter is not a positive integer");
    if (!parse_u64(f[4], 10, &s.ts_ms))
        return aether_err_set(why, AETHER_EPERM, "malformed tag: ts_ms is not an integer");
    unsigned char want[crypto_auth_hmacsha512256_BYTES], got[crypto_auth_hmacsha512256_BYTES];
    size_t got_len = 0;
    if (strlen(f[5]) != 2 * sizeof(got) ||
        sodium_hex2bin(got, sizeof(got), f[5], strlen(f[5]), NULL, &got_len, NULL) != 0 ||
        got_len != sizeof(got))
        return aether_err_set(why, AETHER_EPERM, "malformed tag: the MAC is not %zu hex digits",
                              2 * sizeof(got));
    mac_of(a, subject, &s.sender, s.epoch, s.ctr, s.ts_ms, payload, len, want);
    if (sodium_memcmp(want, got, sizeof(want)) != 0)
        return aether_err_set(why, AETHER_EPERM, "wrong MAC (another secret, or altered bytes, subject or tag)");
    uint64_t skew = now_ms > s.ts_ms ? now_ms - s.ts_ms : s.ts_ms - now_ms;
    if (now_ms != 0 && skew > AETHER_AUTH_SKEW_MS)
        return aether_err_set(why, AETHER_EPERM, "stale: made %" PRIu64 " ms %s this node's clock (at most %u)",
                              skew, now_ms > s.ts_ms ? "before" : "after", AETHER_AUTH_SKEW_MS);
    *out = s;
    return AETHER_OK;
}

/* ---- the replay window -------------------------------------------------------- */

typedef struct window_entry {
    aether_node_id sender;
    uint64_t epoch, ctr; /* the highest admitted */
    uint64_t seen;       /* bit i: ctr - i was admitted (i < AETHER_AUTH_WINDOW_SPAN) */
} window_entry;

struct aether_auth_window {
    window_entry *v; /* sorted by sender */
    uint32_t n, cap;
};

aether_status aether_auth_window_create(aether_auth_window **out)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? AETHER_OK : AETHER_ENOMEM;
}

void aether_auth_window_destroy(aether_auth_window *w)
{
    if (w == NULL)
        return;
    free(w->v);
    free(w);
}

aether_status aether_auth_window_admit(aether_auth_window *w, const aether_auth_stamp *st, aether_err *why)
{
    uint32_t lo = 0, hi = w->n;
    while (lo < hi) { /* bounded: log2(n) */
        uint32_t mid = lo + (hi - lo) / 2;
        int c = aether_node_id_compare(&w->v[mid].sender, &st->sender);
        if (c == 0) {
            window_entry *e = &w->v[mid];
            if (st->epoch > e->epoch || (st->epoch == e->epoch && st->ctr > e->ctr)) {
                uint64_t shift = st->epoch > e->epoch ? AETHER_AUTH_WINDOW_SPAN : st->ctr - e->ctr;
                e->seen = shift >= AETHER_AUTH_WINDOW_SPAN ? 1u : (e->seen << shift) | 1u;
                e->epoch = st->epoch;
                e->ctr = st->ctr;
                return AETHER_OK;
            }
            /* Within the span below the highest, once: a sealer shared by
             * threads publishes its counters slightly out of order. */
            uint64_t back = st->epoch == e->epoch ? e->ctr - st->ctr : AETHER_AUTH_WINDOW_SPAN;
            if (back < AETHER_AUTH_WINDOW_SPAN && (e->seen & (UINT64_C(1) << back)) == 0) {
                e->seen |= UINT64_C(1) << back;
                return AETHER_OK;
            }
            return aether_err_set(why, AETHER_EPERM,
                                  "replayed: %s's counter %016" PRIx64 "/%" PRIu64
                                  " was admitted already or is too old (highest %016" PRIx64 "/%" PRIu64 ")",
                                  st->sender.str, st->epoch, st->ctr, e->epoch, e->ctr);
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (w->n == AETHER_AUTH_WINDOW_SENDERS_MAX)
        return aether_err_set(why, AETHER_EFULL, "%u senders known already; %s not admitted",
                              AETHER_AUTH_WINDOW_SENDERS_MAX, st->sender.str);
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 16;
        window_entry *v = realloc(w->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return aether_err_set(why, AETHER_ENOMEM, "out of memory");
        w->v = v;
        w->cap = cap;
    }
    memmove(&w->v[lo + 1], &w->v[lo], (size_t)(w->n - lo) * sizeof(*w->v));
    w->v[lo] = (window_entry){ .sender = st->sender, .epoch = st->epoch, .ctr = st->ctr, .seen = 1u };
    w->n++;
    return AETHER_OK;
}
