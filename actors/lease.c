/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lease.c: acquire, renew, reconcile, resign and may_act for the
 * leadership lease (actors layer). The protocol and why it is safe are in
 * lease.h. Called only from the LeadershipLease actor (one call at a time
 * per holder); the stores may be shared with other nodes and threads.
 */
#include "lease.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define LEASE_LOG "lease"

AETHER_STATIC_ASSERT(AETHER_LEASE_VALUE_LEN_MAX <= AETHER_KV_VALUE_LEN_MAX,
                     "a lease value fits in a KV value");
AETHER_STATIC_ASSERT(AETHER_LEASE_TTL_MS_MAX <= AETHER_KV_TTL_MS_MAX,
                     "every lease ttl is a valid bucket ttl");

static const char *lease_key(const aether_lease_config *cfg)
{
    return cfg->lease_key != NULL ? cfg->lease_key : AETHER_LEASE_KEY_DEFAULT;
}

static const char *term_key(const aether_lease_config *cfg)
{
    return cfg->term_key != NULL ? cfg->term_key : AETHER_LEASE_TERM_KEY_DEFAULT;
}

static const char *generation_key(const aether_lease_config *cfg)
{
    return cfg->generation_key != NULL ? cfg->generation_key : AETHER_LEASE_GENERATION_KEY_DEFAULT;
}

static uint64_t now_ns(const aether_lease_config *cfg)
{
    return aether_clock_now_ns(cfg->clock);
}

aether_status aether_lease_config_validate(const aether_lease_config *cfg, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL);
    if (cfg->lease_kv == NULL || cfg->state_kv == NULL)
        return aether_err_set(err, AETHER_EINVAL, "lease_kv and state_kv are required");
    if (cfg->clock == NULL)
        return aether_err_set(err, AETHER_EINVAL, "clock: required");
    if (!aether_node_id_is_valid(&cfg->self))
        return aether_err_set(err, AETHER_EINVAL, "self: not a parsed node id");
    if (cfg->ttl_ms == 0 || cfg->ttl_ms > AETHER_LEASE_TTL_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "ttl_ms: %" PRIu64 " is outside 1..%" PRIu64,
                              cfg->ttl_ms, AETHER_LEASE_TTL_MS_MAX);
    if (cfg->safety_margin_ms >= cfg->ttl_ms)
        return aether_err_set(err, AETHER_EINVAL,
                              "safety_margin_ms: %" PRIu64 " is not below ttl_ms %" PRIu64,
                              cfg->safety_margin_ms, cfg->ttl_ms);
    aether_status s = aether_kv_key_validate(lease_key(cfg), err);
    if (s != AETHER_OK)
        return aether_err_prefix(err, "lease_key");
    s = aether_kv_key_validate(term_key(cfg), err);
    if (s != AETHER_OK)
        return aether_err_prefix(err, "term_key");
    s = aether_kv_key_validate(generation_key(cfg), err);
    if (s != AETHER_OK)
        return aether_err_prefix(err, "generation_key");
    if (strcmp(term_key(cfg), generation_key(cfg)) == 0)
        return aether_err_set(err, AETHER_EINVAL, "generation_key: '%s' is the term key too",
                              generation_key(cfg));
    uint64_t bucket_ttl = aether_kv_ttl_ms(cfg->lease_kv);
    if (bucket_ttl != cfg->ttl_ms)
        return aether_err_set(err, AETHER_EINVAL,
                              "lease_kv: bucket TTL %" PRIu64 " ms differs from ttl_ms %" PRIu64
                              " (the store's expiry is what frees the lease)",
                              bucket_ttl, cfg->ttl_ms);
    if (aether_kv_ttl_ms(cfg->state_kv) != 0)
        return aether_err_set(err, AETHER_EINVAL,
                              "state_kv: has a TTL; the recorded term must never expire");
    return AETHER_OK;
}

/* ---- Values -------------------------------------------------------------- */

aether_status aether_lease_value_encode(const aether_lease_value *v, char *buf, size_t cap,
                                        size_t *len_out, aether_err *err)
{
    AETHER_ASSERT(v != NULL && buf != NULL && len_out != NULL);
    *len_out = 0;
    if (!aether_node_id_is_valid(&v->leader))
        return aether_err_set(err, AETHER_EINVAL, "leader: not a parsed node id");
    if (v->ttl_ms == 0 || v->ttl_ms > AETHER_LEASE_TTL_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "ttl_ms: %" PRIu64 " out of range", v->ttl_ms);
    if (v->term > (uint64_t)INT64_MAX)
        return aether_err_set(err, AETHER_EINVAL, "term: %" PRIu64 " beyond JSON integers",
                              v->term);
    /* The NodeId alphabet needs no JSON escaping. "gen" only when known:
     * absent means "not said" (lease.h). */
    char gen[32] = "";
    if (v->generation != 0)
        snprintf(gen, sizeof(gen), ",\"gen\":\"%016" PRIx64 "\"", v->generation);
    int n = snprintf(buf, cap,
                     "{\"leader\":\"%s\",\"ttl_ms\":%" PRIu64 ",\"term\":%" PRIu64
                     ",\"nonce\":\"%016" PRIx64 "\"%s}",
                     v->leader.str, v->ttl_ms, v->term, v->nonce, gen);
    if (n < 0 || (size_t)n >= cap)
        return aether_err_set(err, AETHER_EINVAL, "lease value needs %d bytes, buffer has %zu",
                              n, cap);
    *len_out = (size_t)n;
    return AETHER_OK;
}

static bool parse_hex64n(const char *s, size_t len, uint64_t *out)
{
    if (len != 16)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) { /* bounded: 16 digits */
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        v = (v << 4) | d;
    }
    *out = v;
    return true;
}

static bool parse_hex64(const char *s, uint64_t *out) { return parse_hex64n(s, strlen(s), out); }

void aether_lease_generation_format(uint64_t generation, char *out, size_t cap)
{
    AETHER_ASSERT(out != NULL && cap > AETHER_LEASE_GENERATION_TEXT_LEN);
    snprintf(out, cap, "%016" PRIx64, generation);
}

bool aether_lease_generation_parse(const char *text, size_t len, uint64_t *out)
{
    uint64_t g;
    if (text == NULL || !parse_hex64n(text, len, &g) || g == 0)
        return false;
    *out = g;
    return true;
}

aether_status aether_lease_value_decode(const void *buf, size_t len, aether_lease_value *out,
                                        aether_err *err)
{
    AETHER_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    aether_status s = AETHER_OK;
    json_t *root = NULL;
    if (buf == NULL || len == 0 || len > AETHER_LEASE_VALUE_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "lease value: %zu bytes, expected 1..%u", len,
                              AETHER_LEASE_VALUE_LEN_MAX);
    json_error_t jerr;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        s = aether_err_set(err, AETHER_EINVAL, "lease value: not JSON: %s", jerr.text);
        goto fail;
    }
    json_t *gen = json_is_object(root) ? json_object_get(root, "gen") : NULL;
    if (!json_is_object(root) || json_object_size(root) != (gen != NULL ? 5u : 4u)) {
        s = aether_err_set(err, AETHER_EINVAL,
                           "lease value: expected an object with leader, ttl_ms, term, nonce "
                           "and perhaps gen");
        goto fail;
    }
    if (gen != NULL && (!json_is_string(gen) ||
                        !aether_lease_generation_parse(json_string_value(gen),
                                                       json_string_length(gen), &out->generation))) {
        s = aether_err_set(err, AETHER_EINVAL,
                           "lease value: gen is not 16 hex digits naming a generation");
        goto fail;
    }
    json_t *leader = json_object_get(root, "leader");
    json_t *ttl = json_object_get(root, "ttl_ms");
    json_t *term = json_object_get(root, "term");
    json_t *nonce = json_object_get(root, "nonce");
    if (!json_is_string(leader) || !json_is_integer(ttl) || !json_is_integer(term) ||
        !json_is_string(nonce)) {
        s = aether_err_set(err, AETHER_EINVAL, "lease value: a field is missing or mistyped");
        goto fail;
    }
    s = aether_node_id_parse(json_string_value(leader), json_string_length(leader), &out->leader,
                             err);
    if (s != AETHER_OK) {
        aether_err_prefix(err, "lease value: leader");
        goto fail;
    }
    json_int_t t = json_integer_value(ttl);
    json_int_t tm = json_integer_value(term);
    if (t <= 0 || (uint64_t)t > AETHER_LEASE_TTL_MS_MAX || tm < 0) {
        s = aether_err_set(err, AETHER_EINVAL, "lease value: ttl_ms or term out of range");
        goto fail;
    }
    if (!parse_hex64(json_string_value(nonce), &out->nonce)) {
        s = aether_err_set(err, AETHER_EINVAL, "lease value: nonce is not 16 hex digits");
        goto fail;
    }
    out->ttl_ms = (uint64_t)t;
    out->term = (uint64_t)tm;
    json_decref(root);
    return AETHER_OK;

fail:
    json_decref(root);
    memset(out, 0, sizeof(*out));
    return s;
}

static aether_status parse_term_text(const uint8_t *p, size_t len, aether_term *out,
                                     aether_err *err)
{
    if (len == 0 || len > AETHER_LEASE_TERM_TEXT_MAX)
        return aether_err_set(err, AETHER_EINVAL, "recorded term: %zu bytes, expected 1..%u",
                              len, AETHER_LEASE_TERM_TEXT_MAX);
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) { /* bounded: <= 20 digits */
        if (p[i] < '0' || p[i] > '9')
            return aether_err_set(err, AETHER_EINVAL, "recorded term: byte 0x%02x is not a digit",
                                  p[i]);
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return aether_err_set(err, AETHER_EINVAL, "recorded term: overflows 64 bits");
        v = v * 10 + d;
    }
    if (v == AETHER_TERM_NONE)
        return aether_err_set(err, AETHER_EINVAL, "recorded term: 0 is never a term");
    *out = v;
    return AETHER_OK;
}

/* ---- Reads --------------------------------------------------------------- */

aether_status aether_lease_read(const aether_lease_config *cfg, aether_lease_value *out,
                                uint64_t *revision_out, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && out != NULL && revision_out != NULL);
    memset(out, 0, sizeof(*out));
    *revision_out = 0;
    aether_kv_entry e;
    aether_status s = aether_kv_get(cfg->lease_kv, lease_key(cfg), &e, err);
    if (s != AETHER_OK)
        return s;
    s = aether_lease_value_decode(e.value, e.value_len, out, err);
    if (s == AETHER_OK)
        *revision_out = e.revision;
    aether_kv_entry_fini(&e);
    return s;
}

aether_status aether_lease_recorded_term(const aether_lease_config *cfg, aether_term *term_out,
                                         uint64_t *revision_out, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && term_out != NULL && revision_out != NULL);
    *term_out = AETHER_TERM_NONE;
    *revision_out = 0;
    aether_kv_entry e;
    aether_status s = aether_kv_get(cfg->state_kv, term_key(cfg), &e, err);
    if (s == AETHER_ENOTFOUND)
        return AETHER_OK;
    if (s != AETHER_OK)
        return s;
    s = parse_term_text(e.value, e.value_len, term_out, err);
    if (s == AETHER_OK)
        *revision_out = e.revision;
    aether_kv_entry_fini(&e);
    return s;
}

aether_status aether_lease_generation(const aether_lease_config *cfg, uint64_t *generation_out,
                                      uint64_t *revision_out, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && generation_out != NULL && revision_out != NULL);
    *generation_out = 0;
    *revision_out = 0;
    aether_kv_entry e;
    aether_status s = aether_kv_get(cfg->state_kv, generation_key(cfg), &e, err);
    if (s == AETHER_ENOTFOUND)
        return AETHER_OK;
    if (s != AETHER_OK)
        return s;
    if (aether_lease_generation_parse((const char *)e.value, e.value_len, generation_out))
        *revision_out = e.revision;
    else
        s = aether_err_set(err, AETHER_EINVAL, "generation '%s': %zu bytes that are not 16 hex "
                           "digits naming a generation", generation_key(cfg), e.value_len);
    aether_kv_entry_fini(&e);
    return s;
}

/* Step 2a (and record_again): the state bucket's generation, created if
 * it has none: as `want`, or (want 0) as a new id drawn from rng only then,
 * so an acquire that finds one draws nothing. *created says whether this
 * call's create made it. A lost create race reads the winner's. */
static aether_status ensure_generation(const aether_lease_config *cfg, aether_rng *rng,
                                       uint64_t want, uint64_t *gen, bool *created,
                                       aether_err *err)
{
    AETHER_ASSERT(want != 0 || rng != NULL);
    *created = false;
    uint64_t rev;
    aether_status s = aether_lease_generation(cfg, gen, &rev, err);
    if (s != AETHER_OK || *gen != 0)
        return s;
    /* bounded: one more draw at most (a 0 has probability 2^-64) */
    for (int i = 0; i < 2 && want == 0; i++)
        want = aether_rng_next(rng);
    if (want == 0)
        want = 1; /* 0 means "none" */
    char text[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
    aether_lease_generation_format(want, text, sizeof(text));
    s = aether_kv_create(cfg->state_kv, generation_key(cfg), text, AETHER_LEASE_GENERATION_TEXT_LEN,
                         &rev, err);
    if (s == AETHER_OK) {
        *gen = want;
        *created = true;
        return AETHER_OK;
    }
    if (s != AETHER_EEXIST && s != AETHER_EUNKNOWN)
        return s;
    /* Someone else's won, or ours may have: whatever is there now is it. */
    aether_status rs = aether_lease_generation(cfg, gen, &rev, err);
    if (rs != AETHER_OK)
        return rs;
    if (*gen == 0)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "generation '%s': create %s and none "
                              "is stored", generation_key(cfg), aether_status_str(s));
    *created = *gen == want && s == AETHER_EUNKNOWN;
    return AETHER_OK;
}

/* What the lease key shows, as seen by a holder with `nonce`. */
typedef enum seen_kind { SEEN_ABSENT, SEEN_OURS, SEEN_OTHER } seen_kind;

static aether_status look(const aether_lease_config *cfg, uint64_t nonce, seen_kind *kind,
                          uint64_t *rev, aether_err *err)
{
    aether_lease_value v;
    aether_status s = aether_lease_read(cfg, &v, rev, err);
    if (s == AETHER_ENOTFOUND) {
        *kind = SEEN_ABSENT;
        return AETHER_OK;
    }
    if (s == AETHER_EINVAL) {
        /* Junk under the lease key is nobody's lease we can recognise, and
         * certainly not ours. */
        *kind = SEEN_OTHER;
        return AETHER_OK;
    }
    if (s != AETHER_OK)
        return s;
    *kind = (v.nonce == nonce && aether_node_id_equal(&v.leader, &cfg->self)) ? SEEN_OURS
                                                                               : SEEN_OTHER;
    return AETHER_OK;
}

/* ---- Writes -------------------------------------------------------------- */

static aether_status encode_own(const aether_lease_config *cfg, const aether_lease_held *h,
                                aether_term term, char *buf, size_t *len, aether_err *err)
{
    aether_lease_value v = {.leader = cfg->self, .ttl_ms = cfg->ttl_ms, .term = term,
                            .nonce = h->nonce,
                            .generation = term != AETHER_TERM_NONE ? h->generation : 0};
    return aether_lease_value_encode(&v, buf, AETHER_LEASE_VALUE_LEN_MAX, len, err);
}

/* Before every conditional write of ours (CAS, conditional delete): does
 * the key still hold our own write (our nonce) at our revision? A
 * conditional write names only a revision, and revisions repeat across
 * lives of the bucket (deleted and re-created, it numbers from 1 again,
 * and a candidate's compaction carries the new life up to the record), so
 * a write naming ours can land on another node's write that happens to
 * have that number: ABA (lease.h, "Writes check the value"). AETHER_OK;
 * AETHER_ECONFLICT when the key is gone or another write is there (no
 * write of ours could succeed honestly); AETHER_EUNAVAILABLE when the read
 * failed (nothing was sent). */
static aether_status check_own(const aether_lease_config *cfg, const aether_lease_held *h,
                               aether_err *err)
{
    seen_kind kind;
    uint64_t rev = 0;
    aether_status s = look(cfg, h->nonce, &kind, &rev, err);
    if (s != AETHER_OK)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "lease '%s': reading it before a "
                              "conditional write failed (%s): nothing sent",
                              lease_key(cfg), aether_status_str(s));
    if (kind == SEEN_OURS && rev == h->revision)
        return AETHER_OK;
    if (kind == SEEN_OTHER && rev == h->revision)
        AETHER_WARN(LEASE_LOG,
                    "%s: lease '%s': another node's write is at our revision %" PRIu64
                    " (nonce %016" PRIx64 " is not there): the bucket was re-created and its "
                    "revisions reached ours again; a write naming the revision alone would "
                    "have taken it (not written)",
                    cfg->self.str, lease_key(cfg), h->revision, h->nonce);
    return aether_err_set(err, AETHER_ECONFLICT,
                          "lease '%s': %s at revision %" PRIu64 ", ours was %" PRIu64,
                          lease_key(cfg),
                          kind == SEEN_ABSENT ? "gone (expired or deleted)"
                          : kind == SEEN_OTHER ? "another node's write"
                                               : "our write",
                          kind == SEEN_ABSENT ? (uint64_t)0 : rev, h->revision);
}

/* One CAS write of our value, once check_own found our write still there;
 * on success the revision and renewed_at move. *sent_at_ns receives the
 * clock read just before that read, not before the write: the read saw our
 * write in the bucket life we hold the lease in, so whatever re-created the
 * bucket happened after it, and nobody acts in the new life before a ttl
 * after that (lease.h steps 2b, 2c). A deadline counted from the read ends
 * before, even if the write lands in the new life on a write of the same
 * revision. */
static aether_status send_update(const aether_lease_config *cfg, aether_lease_held *h,
                                 aether_term term, uint64_t *sent_at_ns, aether_err *err)
{
    char buf[AETHER_LEASE_VALUE_LEN_MAX];
    size_t len;
    aether_status s = encode_own(cfg, h, term, buf, &len, err);
    if (s != AETHER_OK)
        return s;
    uint64_t rev;
    *sent_at_ns = now_ns(cfg);
    s = check_own(cfg, h, err);
    if (s != AETHER_OK)
        return s;
    s = aether_kv_update(cfg->lease_kv, lease_key(cfg), buf, len, h->revision, &rev, err);
    if (s == AETHER_OK) {
        AETHER_ASSERT(rev > h->revision);
        h->revision = rev;
        h->lease.renewed_at_ns = *sent_at_ns;
    }
    return s;
}

/* After a write sent at sent_at_ns whose outcome is unknown: re-read and
 * decide. AETHER_OK (*applied says which), AETHER_ECONFLICT (lost), or the
 * read's failure (h unchanged). One write outstanding at a time means a
 * higher revision under our nonce is that write. */
static aether_status resolve(const aether_lease_config *cfg, aether_lease_held *h,
                             uint64_t sent_at_ns, bool *applied, aether_err *err)
{
    seen_kind kind;
    uint64_t rev;
    *applied = false;
    aether_status s = look(cfg, h->nonce, &kind, &rev, err);
    if (s != AETHER_OK)
        return s;
    if (kind == SEEN_OURS && rev == h->revision)
        return AETHER_OK;
    if (kind == SEEN_OURS && rev > h->revision) {
        h->revision = rev;
        h->lease.renewed_at_ns = sent_at_ns;
        *applied = true;
        return AETHER_OK;
    }
    return aether_err_set(err, AETHER_ECONFLICT, "lease '%s': %s", lease_key(cfg),
                          kind == SEEN_ABSENT ? "gone (expired or deleted)"
                          : kind == SEEN_OTHER ? "held by another node"
                                               : "at a revision below ours (bucket re-created)");
}

/* Acquire step 5: the key still holds our write, at our revision. A store
 * that let another create or CAS through on top of ours (nats-server 2.9 on
 * R3 buckets: nats_kv.h step 2b) shows its write here, and whoever wrote it
 * goes on to record a higher term: we step back before our first act.
 * AETHER_OK, AETHER_ECONFLICT (overtaken), or the read's failure. */
static aether_status verify_still_ours(const aether_lease_config *cfg, const aether_lease_held *h,
                                       aether_err *err)
{
    seen_kind kind;
    uint64_t rev;
    aether_status s = look(cfg, h->nonce, &kind, &rev, err);
    if (s != AETHER_OK)
        return s;
    if (kind == SEEN_OURS && rev == h->revision)
        return AETHER_OK;
    AETHER_WARN(LEASE_LOG,
                "%s: lease '%s': our write at revision %" PRIu64 " (nonce %016" PRIx64
                ") was overtaken before our first act: the key is %s at revision %" PRIu64
                "; not leading",
                cfg->self.str, lease_key(cfg), h->revision, h->nonce,
                kind == SEEN_ABSENT ? "gone" : kind == SEEN_OTHER ? "another node's" : "ours", rev);
    return aether_err_set(err, AETHER_ECONFLICT,
                          "lease '%s': our write at revision %" PRIu64 " was overtaken (the key "
                          "is at revision %" PRIu64 ")",
                          lease_key(cfg), h->revision, rev);
}

/* A conditional delete of our own write (check_own first: a delete naming
 * only our revision could remove another node's write of the same number
 * in a re-created bucket). */
static aether_status delete_own(const aether_lease_config *cfg, const aether_lease_held *h,
                                aether_err *err)
{
    aether_status s = check_own(cfg, h, err);
    if (s != AETHER_OK)
        return s;
    return aether_kv_delete(cfg->lease_kv, lease_key(cfg), h->revision, NULL, err);
}

/* Best effort: frees the key for other candidates. Conditional, so it can
 * only remove our own write. */
static void release_quietly(const aether_lease_config *cfg, const aether_lease_held *h)
{
    if (h->revision != 0)
        (void)delete_own(cfg, h, NULL);
}

/* DESIGN step 4: CAS the record from the revision we read to T. */
static aether_status record_term(const aether_lease_config *cfg, aether_term t,
                                 uint64_t read_revision, aether_err *err)
{
    char text[AETHER_LEASE_TERM_TEXT_MAX + 1];
    int n = snprintf(text, sizeof(text), "%" PRIu64, t);
    AETHER_ASSERT(n > 0 && (size_t)n < sizeof(text));
    uint64_t rev;
    aether_status s =
        read_revision == 0
            ? aether_kv_create(cfg->state_kv, term_key(cfg), text, (size_t)n, &rev, err)
            : aether_kv_update(cfg->state_kv, term_key(cfg), text, (size_t)n, read_revision, &rev,
                               err);
    if (s != AETHER_EUNKNOWN)
        return s;
    aether_term seen;
    uint64_t seen_rev;
    if (aether_lease_recorded_term(cfg, &seen, &seen_rev, NULL) != AETHER_OK)
        return s; /* still unknown; err says why */
    /* T is a revision of our own write in this bucket life; had anyone else
     * recorded T, we would have read R >= T and advanced past it. */
    if (seen == t)
        return AETHER_OK;
    return aether_err_set(err, AETHER_ECONFLICT, "term record: timed out and not applied");
}

/* Diagnostics (issue 12): what an acquire did, for the node's log. */
typedef struct acquire_trace {
    uint64_t created_rev;  /* the first create's revision */
    uint64_t created_ns;   /* its send time */
    uint32_t advanced;     /* advancing updates */
    uint64_t compacted_to; /* 0 = no compaction */
} acquire_trace;

static uint64_t ms_since(const aether_lease_config *cfg, uint64_t t0_ns)
{
    uint64_t now = now_ns(cfg);
    return now > t0_ns ? (now - t0_ns) / AETHER_NS_PER_MS : 0;
}

static void log_compaction(const aether_lease_config *cfg, const aether_lease_held *h,
                           aether_term recorded, const acquire_trace *tr)
{
    AETHER_WARN(LEASE_LOG,
                "%s: lease '%s': our key at revision %" PRIu64 " (nonce %016" PRIx64 ") is %" PRIu64
                " below the recorded term %" PRIu64 ", %" PRIu64 " ms after our create (a re-created "
                "lease bucket, or this candidate stalled): compacting the lease bucket to %" PRIu64,
                cfg->self.str, lease_key(cfg), h->revision, h->nonce, recorded - h->revision,
                recorded, ms_since(cfg, tr->created_ns), recorded);
}

static void log_won(const aether_lease_config *cfg, const aether_lease_held *h,
                    aether_term recorded, const acquire_trace *tr)
{
    AETHER_INFO(LEASE_LOG,
                "%s: lease '%s' won: term %" PRIu64 " (nonce %016" PRIx64 "; created at revision %" PRIu64
                ", record read %" PRIu64 ", %" PRIu32 " advancing update(s), compacted to %" PRIu64
                "; %" PRIu64 " ms since the create, %" PRIu64 " ms since the last write was sent)",
                cfg->self.str, lease_key(cfg), h->lease.term, h->nonce, tr->created_rev, recorded,
                tr->advanced, tr->compacted_to, ms_since(cfg, tr->created_ns),
                ms_since(cfg, h->lease.renewed_at_ns));
}

aether_status aether_lease_acquire(const aether_lease_config *cfg, aether_rng *rng,
                                   aether_lease_held *held, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && rng != NULL && held != NULL);
    memset(held, 0, sizeof(*held));
    aether_status s = aether_lease_config_validate(cfg, err);
    if (s != AETHER_OK)
        return s;

    aether_lease_held h;
    memset(&h, 0, sizeof(h));
    h.nonce = aether_rng_next(rng);
    h.lease.leader = cfg->self;
    h.lease.ttl_ms = cfg->ttl_ms;
    h.lease.safety_margin_ms = cfg->safety_margin_ms;

    /* Step 1: create-if-absent. */
    char buf[AETHER_LEASE_VALUE_LEN_MAX];
    size_t len;
    s = encode_own(cfg, &h, AETHER_TERM_NONE, buf, &len, err);
    if (s != AETHER_OK)
        return s;
    uint64_t rev = 0;
    uint64_t sent = now_ns(cfg);
    s = aether_kv_create(cfg->lease_kv, lease_key(cfg), buf, len, &rev, err);
    if (s == AETHER_EUNKNOWN) {
        seen_kind kind;
        aether_status rs = look(cfg, h.nonce, &kind, &rev, NULL);
        if (rs != AETHER_OK)
            return s; /* still unknown: a stray lease of ours may exist and expire */
        if (kind == SEEN_OURS)
            s = AETHER_OK;
        else if (kind == SEEN_OTHER)
            return aether_err_set(err, AETHER_EEXIST, "lease '%s': held by another node",
                                  lease_key(cfg));
        else
            return aether_err_set(err, AETHER_EUNAVAILABLE,
                                  "lease '%s': create timed out and was not applied",
                                  lease_key(cfg));
    }
    if (s != AETHER_OK)
        return s;
    h.revision = rev;
    h.lease.acquired_at_ns = sent;
    h.lease.renewed_at_ns = sent;
    acquire_trace tr = {.created_rev = rev, .created_ns = sent};
    /* The caller's wait counts in the bucket life it waited in (lease.h,
     * restart_revision). */
    bool waited = cfg->restart_waited && rev > cfg->restart_revision;

    uint32_t steps_left =
        cfg->advance_steps_max != 0 ? cfg->advance_steps_max : AETHER_LEASE_ADVANCE_STEPS_MAX;

    for (uint32_t attempt = 0; attempt < AETHER_LEASE_RECORD_ATTEMPTS_MAX; attempt++) {
        /* Step 2: the highest recorded term. */
        aether_term recorded;
        uint64_t recorded_rev;
        s = aether_lease_recorded_term(cfg, &recorded, &recorded_rev, err);
        if (s != AETHER_OK)
            return s; /* left to expire, never acted on: a release would move the
                         bucket counter towards R (lease.h, "Any failure") */
        /* Step 2a, after R: a state bucket lost since R was read has lost
         * R's revision too, so step 4's CAS fails and we come back here. */
        bool created = false;
        s = ensure_generation(cfg, rng, 0, &h.generation, &created, err);
        if (s != AETHER_OK)
            return s; /* our create of it may have landed: the key is left to expire
                         (step 2c), never acted on */
        h.generation_created = h.generation_created || created;
        /* No record at all: the state bucket was lost (with the lease
         * bucket, or the terms could not matter). The highest term this
         * node has seen stands in for it. */
        uint64_t floor = cfg->term_floor != NULL ? __atomic_load_n(cfg->term_floor, __ATOMIC_RELAXED) : 0;
        aether_term stored = recorded; /* what the store says, before the floor stands in */
        h.floor_used = AETHER_TERM_NONE;
        if (recorded == AETHER_TERM_NONE && floor != AETHER_TERM_NONE &&
            floor < AETHER_LEASE_TERM_FLOOR_MAX) {
            recorded = floor;
            h.floor_used = floor;
        }

        /* Step 2c: we began a generation in a store that had no record: a
         * holder of the lost one may act until its deadline, whatever our
         * revision (a floor below it would let step 2b through), and even
         * if the highest term we saw is our own (one we missed may exist). */
        if (created && stored == AETHER_TERM_NONE && !waited) {
            char g[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
            aether_lease_generation_format(h.generation, g, sizeof(g));
            return aether_err_set(err, AETHER_ESTALE,
                                  "the state store had no generation and no term (a new cluster, "
                                  "or the store was lost): began generation %s; a holder of a "
                                  "lost one may act until its deadline, so the key '%s' is left "
                                  "to expire, campaign again after a ttl",
                                  g, lease_key(cfg));
        }
        /* Step 2b: a lease bucket restarted under the record (or the floor):
         * the holder of the last term may act until its deadline, which no
         * write of ours can end. Not before the caller waited a ttl. */
        if (recorded >= h.revision && !waited &&
            !(cfg->own_stopped_term != AETHER_TERM_NONE && stored == cfg->own_stopped_term)) {
            s = aether_err_set(err, AETHER_ESTALE,
                               "lease '%s': revision %" PRIu64 " is not above term %" PRIu64
                               ": the lease bucket was re-created (or, %" PRIu64 " ms after our "
                               "create: we stalled, our own record landed late, or the store "
                               "went back), and the holder of term %" PRIu64
                               " may act until its deadline; the key is left to expire, campaign "
                               "again after a ttl",
                               lease_key(cfg), h.revision, recorded, ms_since(cfg, tr.created_ns),
                               recorded);
            return s; /* kept, never acted on: see lease.h step 2b */
        }
        /* Step 3, a wide gap (a lease bucket re-created under a term recorded
         * long ago, or our create long ago: we were stalled): compact the
         * bucket to the recorded term and create again. Not to recorded + 1:
         * the holder of the recorded term has its key at exactly that
         * revision until its first renewal, and a compaction past it would
         * take a live lease away without a revision of its own (issue 12,
         * chaos seed 42: terms 142 and 143 acting at once). */
        if (recorded >= h.revision && recorded - h.revision >= AETHER_LEASE_COMPACT_GAP_MIN) {
            log_compaction(cfg, &h, recorded, &tr);
            s = aether_kv_compact(cfg->lease_kv, recorded, err);
            if (s == AETHER_OK) {
                tr.compacted_to = recorded;
                /* Our establishing write went with everything below recorded. */
                h.revision = 0;
                sent = now_ns(cfg);
                s = aether_kv_create(cfg->lease_kv, lease_key(cfg), buf, len, &rev, err);
                if (s != AETHER_OK)
                    return s; /* EEXIST: the holder of the record, or another candidate
                                 since; EUNKNOWN: a stray lease of ours may exist and
                                 expire, never acted on */
                /* At recorded itself only in a re-created bucket (no write there
                 * yet): one update below carries it past. */
                h.revision = rev;
                h.lease.acquired_at_ns = sent;
                h.lease.renewed_at_ns = sent;
                if (rev < recorded) { /* the store broke its compact contract */
                    s = aether_err_set(err, AETHER_ESTATE,
                                       "lease '%s': compacted to %" PRIu64 " but the create got "
                                       "revision %" PRIu64 " (the stream went back?); released",
                                       lease_key(cfg), recorded, rev);
                    goto release;
                }
            } else if (s != AETHER_ESTATE) {
                goto release;
            } /* ESTATE: the store cannot compact; the updates below do it */
        }
        /* Step 3: advance past it; bounded by steps_left (<= advance_steps_max). */
        while (h.revision <= recorded) {
            if (steps_left == 0) {
                s = aether_err_set(err, AETHER_ESTATE,
                                   "lease '%s': revision %" PRIu64 " still not above recorded "
                                   "term %" PRIu64 " after the advance budget; released, "
                                   "progress kept, campaign again",
                                   lease_key(cfg), h.revision, recorded);
                goto release;
            }
            steps_left--;
            tr.advanced++;
            uint64_t sent_at;
            s = send_update(cfg, &h, AETHER_TERM_NONE, &sent_at, err);
            if (s == AETHER_EUNKNOWN) {
                bool applied;
                s = resolve(cfg, &h, sent_at, &applied, err);
                if (s != AETHER_OK && s != AETHER_ECONFLICT)
                    s = AETHER_EUNKNOWN;
            }
            if (s != AETHER_OK)
                goto release;
        }

        /* Step 4: record T with CAS. */
        aether_term t = h.revision;
        s = record_term(cfg, t, recorded_rev, err);
        if (s == AETHER_OK) {
            /* Step 5: still ours before the first act? (Recorded or not,
             * a term never acted on is harmless.) */
            s = verify_still_ours(cfg, &h, err);
            if (s != AETHER_OK)
                goto release;
            h.lease.term = t;
            AETHER_ASSERT(aether_lease_validate(&h.lease, NULL) == AETHER_OK);
            log_won(cfg, &h, recorded, &tr);
            *held = h;
            return AETHER_OK; /* step 6 */
        }
        if (s != AETHER_ECONFLICT && s != AETHER_EEXIST)
            goto release;
        /* Someone recorded meanwhile: read again (step 2). */
    }
    s = aether_err_set(err, AETHER_ECONFLICT, "term record: lost the CAS %u times",
                       AETHER_LEASE_RECORD_ATTEMPTS_MAX);
release:
    release_quietly(cfg, &h);
    return s;
}

aether_status aether_lease_record_again(const aether_lease_config *cfg,
                                       const aether_lease_held *held, bool *rewritten,
                                       aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && held != NULL && rewritten != NULL);
    AETHER_ASSERT(held->lease.term != AETHER_TERM_NONE); /* an established lease */
    *rewritten = false;
    aether_term recorded;
    uint64_t recorded_rev;
    aether_status s = aether_lease_recorded_term(cfg, &recorded, &recorded_rev, err);
    if (s != AETHER_OK || recorded >= held->lease.term)
        return s; /* unreadable, intact, or a newer term exists (we are deposed) */
    if (held->generation != 0) {
        /* The generation first: a record without it would be taken for a
         * store to upgrade, and the next candidate would start a new one. */
        uint64_t gen;
        bool created;
        s = ensure_generation(cfg, NULL, held->generation, &gen, &created, err);
        if (s != AETHER_OK)
            return s;
        if (gen != held->generation) {
            char a[AETHER_LEASE_GENERATION_TEXT_LEN + 1], b[AETHER_LEASE_GENERATION_TEXT_LEN + 1];
            aether_lease_generation_format(held->generation, a, sizeof(a));
            aether_lease_generation_format(gen, b, sizeof(b));
            return aether_err_set(err, AETHER_ESTALE, "generation: ours is %s, the store's %s: "
                                  "a candidate started a new one (both buckets lost)", a, b);
        }
    }
    s = record_term(cfg, held->lease.term, recorded_rev, err);
    if (s == AETHER_OK)
        *rewritten = true;
    return s;
}

aether_status aether_lease_renew(const aether_lease_config *cfg, const aether_lease_held *held,
                                 aether_lease_held *next, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && held != NULL && next != NULL);
    AETHER_ASSERT(held->lease.term != AETHER_TERM_NONE); /* an established lease */
    AETHER_ASSERT(!held->pending);                      /* reconcile first */
    aether_lease_held h = *held; /* built aside: *held is never half-changed */
    uint64_t sent_at;
    aether_status s = send_update(cfg, &h, h.lease.term, &sent_at, err);
    if (s == AETHER_EUNKNOWN) {
        h.pending = true;
        h.pending_sent_at_ns = sent_at;
    } else if (s != AETHER_OK) {
        h = *held; /* not renewed (or lost): the holding as it was, term included */
    }
    *next = h;
    return s;
}

aether_status aether_lease_reconcile(const aether_lease_config *cfg, const aether_lease_held *held,
                                     aether_lease_held *next, bool *applied, aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && held != NULL && next != NULL);
    AETHER_ASSERT(held->pending);
    AETHER_ASSERT(held->lease.term != AETHER_TERM_NONE);
    aether_lease_held h = *held;
    bool ap = false;
    aether_status s = resolve(cfg, &h, h.pending_sent_at_ns, &ap, err);
    if (s == AETHER_OK) {
        h.pending = false;
        h.pending_sent_at_ns = 0;
    } else {
        h = *held; /* unresolved or lost: unchanged */
        ap = false;
    }
    *next = h;
    if (applied != NULL)
        *applied = ap;
    return s;
}

aether_status aether_lease_resign(const aether_lease_config *cfg, const aether_lease_held *held,
                                  aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && held != NULL);
    aether_lease_held h = *held;
    aether_status s = AETHER_OK;
    if (h.pending && h.lease.term != AETHER_TERM_NONE)
        s = aether_lease_reconcile(cfg, held, &h, NULL, err);
    if (s == AETHER_OK && h.revision != 0)
        s = delete_own(cfg, &h, err);
    return s;
}

bool aether_lease_may_act(const aether_lease *lease, uint64_t now, uint64_t safety_margin_ms)
{
    AETHER_ASSERT(lease != NULL);
    if (lease->term == AETHER_TERM_NONE)
        return false;
    AETHER_ASSERT(lease->ttl_ms >= 1 && lease->ttl_ms <= AETHER_LEASE_TTL_MS_MAX);
    AETHER_ASSERT(safety_margin_ms < lease->ttl_ms);
    uint64_t window_ns = (lease->ttl_ms - safety_margin_ms) * AETHER_NS_PER_MS;
    AETHER_ASSERT(lease->renewed_at_ns <= UINT64_MAX - window_ns);
    return now < lease->renewed_at_ns + window_ns;
}
