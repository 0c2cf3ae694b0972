/*
 * member_state.c: a member's reads and writes of the state store (actors
 * layer, private to member*.c; the contract is member_internal.h's).
 *
 * DESIGN
 * The leader records a change in the state store before it publishes it,
 * with compare-and-set, and never overwrites a value stamped (term, version)
 * at or above its own (member_internal.h). Values up to
 * MEMBER_STATE_INLINE_MAX bytes are stored as they are, so tools read the
 * ShardMap JSON under "map" directly (aetherctl). A larger value - a map of
 * tens of thousands of shards is megabytes, above the 1 MiB a NATS message
 * (hence a KV value) may carry - is stored in parts:
 *  1. the value is cut into parts of at most MEMBER_STATE_INLINE_MAX bytes,
 *     each created under its own key "<key>.part.<term>.<version>.<attempt>.<i>"
 *     (attempt: a per-member counter, so two attempts at the same version
 *     never share keys); a create whose outcome is unknown is simply tried
 *     again (EEXIST: it is there, and it is ours);
 *  2. the commit point is the compare-and-set of <key> itself to a small
 *     manifest {"version":V,"term":T,"gen":G,"parts":n,"len":L,"prefix":"<...>"}
 *     ("gen" as in the value, when it has one),
 *     under exactly the rules of an inline value;
 *  3. readers read <key>; a manifest sends them to its parts, which they
 *     concatenate (a part that is gone means a newer commit removed it: the
 *     read fails and the caller reads again later);
 *  4. after a commit the parts of the value it replaced are deleted (best
 *     effort); the parts of an attempt that did not commit are deleted at
 *     once. A part left behind by a crash is never read again.
 * Generations (lease.h, GENERATION): every value here belongs to the
 * generation stored beside it, since they are lost together. A writer
 * that finds its key absent - the only way into a re-created bucket, as a
 * compare-and-set names a revision of the old one - first checks that the
 * bucket's generation is the one it follows: absent (the state bucket was
 * lost and our leader has not written it back yet) is AETHER_EUNAVAILABLE,
 * try again later; another one is AETHER_ESTALE (both buckets were lost
 * and a new generation began: we are deposed). So a leader of a lost
 * generation never seeds the new one's map or topology.
 * That guards creates only: a compare-and-set names a revision, and a
 * re-created bucket numbers its revisions afresh, so a deposed leader's
 * update at the revision it last knew can land in the new bucket (an
 * ABA). Hence every map and topology is stamped "gen" (the generation its
 * writer acts in; shardmap_json.h, topology_json.h), and:
 *  - readers (member_state_generation_check) never use a value of another
 *    generation than the one they follow: it is logged, counted
 *    (aether_generation_values_refused_total) and read as no value at all,
 *    so a new leader takes over as from a lost state bucket;
 *  - a writer that finds a value of another generation under its key
 *    overwrites it once the bucket's generation is shown to be its own
 *    (the value is a lost generation's leftover), and otherwise stops
 *    (ESTALE: it is the one deposed). Stamps of two generations are never
 *    compared.
 * A value without "gen" was written before generations (or by a writer
 * that had read none): it is judged by its (term, version) as before.
 * Threading: called by one actor per key (the assign actor for "map", the
 * cluster actor for "topology"); the stores are shared and thread-safe.
 */
#include "member_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

AETHER_STATIC_ASSERT(MEMBER_STATE_INLINE_MAX + 1024u <= AETHER_KV_VALUE_LEN_MAX,
                     "an inline value or a part fits in a KV value");

#define PARTS_MAX 4096u /* 4 GiB of value at most: far above any map */

/* The (term, version) stamp of a stored map, topology or manifest; a
 * topology has no term (0); *gen its "gen" (0: absent or malformed). False
 * if the value is not such a JSON object. */
static bool state_stamp(const char *json, size_t len, uint64_t *term, uint64_t *version,
                        uint64_t *gen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    bool ok = json_is_object(root);
    json_t *v = ok ? json_object_get(root, "version") : NULL;
    json_t *t = ok ? json_object_get(root, "term") : NULL;
    ok = ok && json_is_integer(v) && json_integer_value(v) >= 0 &&
         (t == NULL || (json_is_integer(t) && json_integer_value(t) >= 0));
    if (ok) {
        *version = (uint64_t)json_integer_value(v);
        *term = t != NULL ? (uint64_t)json_integer_value(t) : 0;
        if (!aether_json_generation_get(root, gen))
            *gen = 0;
    }
    json_decref(root);
    return ok;
}

aether_status member_state_generation_check(aether_member *m, const char *key, uint64_t value_gen,
                                            uint64_t version)
{
    if (value_gen == 0)
        return AETHER_OK; /* written before generations: judged as before */
    uint64_t ours = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    if (value_gen == ours)
        return AETHER_OK;
    member_check_generation(m); /* the store says which generation is current */
    if (ours == 0) {
        AETHER_DEBUG(MEMBER_LOG, "%s: the stored %s v%llu is of generation %016llx and this node "
                     "has read none yet: not used before it has", m->cfg.node.str, key,
                     (unsigned long long)version, (unsigned long long)value_gen);
        return AETHER_EUNAVAILABLE;
    }
    __atomic_add_fetch(&m->generation_values_refused, 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&m->gen_value_log, member_now_ns(m), &suppressed))
        AETHER_WARN(MEMBER_LOG, "%s: the stored %s v%llu is of generation %016llx, this node follows "
                    "generation %016llx: refused, not installed (a value of a lost generation, "
                    "written by a deposed leader) (%llu more not logged)",
                    m->cfg.node.str, key, (unsigned long long)version,
                    (unsigned long long)value_gen, (unsigned long long)ours,
                    (unsigned long long)suppressed);
    return AETHER_ESTALE;
}

bool member_state_value_foreign(aether_member *m, const char *key, const char *value, size_t len)
{
    uint64_t ours = __atomic_load_n(&m->generation, __ATOMIC_SEQ_CST);
    uint64_t term = 0, version = 0, gen = 0;
    bool foreign = ours != 0 && state_stamp(value, len, &term, &version, &gen) && gen != 0 && gen != ours;
    if (foreign)
        AETHER_WARN(MEMBER_LOG, "%s: the stored %s v%llu term %llu is of generation %016llx, this "
                    "leader's is %016llx (a deposed leader's write landed over ours): writing ours "
                    "back", m->cfg.node.str, key, (unsigned long long)version,
                    (unsigned long long)term, (unsigned long long)gen, (unsigned long long)ours);
    return foreign;
}

bool member_state_foreign(aether_member *m, const char *key, uint64_t rev)
{
    aether_kv_entry e;
    if (__atomic_load_n(&m->generation, __ATOMIC_SEQ_CST) == 0 ||
        aether_kv_get(m->deps.state_store, key, &e, NULL) != AETHER_OK)
        return false; /* none followed yet, absent (the write-back's case) or no answer */
    /* The revision we wrote or read is ours: no writer puts back a foreign
     * value unread (fence_topology_key replaces one instead). */
    bool foreign = e.revision != rev &&
                   member_state_value_foreign(m, key, (const char *)e.value, e.value_len);
    aether_kv_entry_fini(&e);
    return foreign;
}

#define PREFIX_MAX 160u /* "<key>.part.<term>.<version>.<attempt>": well below a key */
AETHER_STATIC_ASSERT(PREFIX_MAX + 12u <= AETHER_KV_KEY_LEN_MAX, "a part key is a valid key");

typedef struct manifest {
    char prefix[PREFIX_MAX];
    uint32_t parts;
    size_t len;
} manifest;

/* True if value is a manifest (DESIGN 2); fills *mf. */
static bool parse_manifest(const char *value, size_t len, manifest *mf)
{
    if (len > 1024 || memmem(value, len, "\"prefix\"", 8) == NULL)
        return false;
    json_error_t jerr;
    json_t *root = json_loadb(value, len, 0, &jerr);
    json_t *p = json_object_get(root, "prefix");
    json_t *n = json_object_get(root, "parts");
    json_t *l = json_object_get(root, "len");
    bool ok = json_is_string(p) && json_is_integer(n) && json_is_integer(l) &&
              json_integer_value(n) > 0 && (uint64_t)json_integer_value(n) <= PARTS_MAX &&
              json_integer_value(l) > 0 && json_string_length(p) < sizeof(mf->prefix);
    if (ok) {
        snprintf(mf->prefix, sizeof(mf->prefix), "%s", json_string_value(p));
        mf->parts = (uint32_t)json_integer_value(n);
        mf->len = (size_t)json_integer_value(l);
    }
    json_decref(root);
    return ok;
}

static void part_key(char *out, size_t cap, const char *prefix, uint32_t i)
{
    snprintf(out, cap, "%s.%u", prefix, i);
}

/* DESIGN 4: best effort; a part that stays behind is never read. */
static void delete_parts(aether_kv *kv, const char *prefix, uint32_t parts)
{
    char k[AETHER_KV_KEY_LEN_MAX + 1];
    for (uint32_t i = 0; i < parts; i++) {
        part_key(k, sizeof(k), prefix, i);
        (void)aether_kv_delete(kv, k, 0, NULL, NULL);
    }
}

/* DESIGN 1: every part created; AETHER_OK or the store's error. */
static aether_status write_parts(aether_kv *kv, const char *prefix, const char *value, size_t len,
                                 uint32_t parts)
{
    char k[AETHER_KV_KEY_LEN_MAX + 1];
    for (uint32_t i = 0; i < parts; i++) {
        size_t off = (size_t)i * MEMBER_STATE_INLINE_MAX;
        size_t n = len - off < MEMBER_STATE_INLINE_MAX ? len - off : MEMBER_STATE_INLINE_MAX;
        part_key(k, sizeof(k), prefix, i);
        uint64_t rev;
        aether_status st = AETHER_EUNKNOWN;
        /* Bounded: an unknown outcome is retried a few times. */
        for (uint32_t tries = 0; tries < MEMBER_STATE_PUT_ROUNDS_MAX && st == AETHER_EUNKNOWN; tries++) {
            st = aether_kv_create(kv, k, value + off, n, &rev, NULL);
            if (st == AETHER_EEXIST)
                st = AETHER_OK; /* a retry of ours: the key is unique to this attempt */
        }
        if (st != AETHER_OK)
            return st;
    }
    return AETHER_OK;
}

/* DESIGN "Generations": may a value of generation `ours` (0: none known)
 * be created in this bucket, or replace one of another generation? */
static aether_status generation_guard(aether_member *m, uint64_t ours)
{
    if (ours == 0)
        return AETHER_OK; /* none read yet (a store from before generations) */
    aether_kv_entry e;
    aether_status st = aether_kv_get(m->deps.state_store, AETHER_LEASE_GENERATION_KEY_DEFAULT, &e, NULL);
    if (st == AETHER_ENOTFOUND)
        return AETHER_EUNAVAILABLE;
    if (st != AETHER_OK)
        return st;
    uint64_t g = 0;
    bool ok = aether_lease_generation_parse((const char *)e.value, e.value_len, &g);
    aether_kv_entry_fini(&e);
    if (!ok || g != ours) {
        member_check_generation(m); /* the lease actor follows the store */
        return AETHER_ESTALE;
    }
    return AETHER_OK;
}

/* The compare-and-set of member_internal.h, for a value that fits. */
static aether_status put_inline(aether_member *m, const char *key, const char *value, size_t len,
                                uint64_t gen, uint64_t term, uint64_t version, uint64_t *rev,
                                manifest *replaced)
{
    aether_kv *kv = m->deps.state_store;
    uint64_t next = 0;
    aether_status st = *rev ? aether_kv_update(kv, key, value, len, *rev, &next, NULL)
                            : AETHER_ECONFLICT;
    bool in_doubt = st == AETHER_EUNKNOWN;
    /* Bounded: each round either ends or follows a write by someone else or
     * an unknown outcome; a few are plenty, the caller retries later. */
    for (uint32_t round = 0; round < MEMBER_STATE_PUT_ROUNDS_MAX &&
                             (st == AETHER_ECONFLICT || st == AETHER_EUNKNOWN || st == AETHER_EEXIST);
         round++) {
        /* Someone wrote since our last write (another leader, or a write of
         * ours whose outcome was lost): look before writing again. */
        aether_kv_entry cur;
        aether_status gs = aether_kv_get(kv, key, &cur, NULL);
        if (gs == AETHER_ENOTFOUND) {
            st = generation_guard(m, gen);
            if (st != AETHER_OK)
                break;
            st = aether_kv_create(kv, key, value, len, &next, NULL);
            continue;
        }
        if (gs != AETHER_OK) {
            st = gs;
            break;
        }
        uint64_t cur_term = 0, cur_version = 0, cur_gen = 0;
        bool same = cur.value_len == len && memcmp(cur.value, value, len) == 0;
        bool stamped = !same && state_stamp((const char *)cur.value, cur.value_len, &cur_term,
                                            &cur_version, &cur_gen);
        /* Of another generation (DESIGN "Generations"): its stamp means nothing to ours. */
        bool foreign = stamped && gen != 0 && cur_gen != 0 && cur_gen != gen;
        if (same) {
            next = cur.revision; /* ours, already there */
            st = AETHER_OK;
        } else if (foreign && (st = generation_guard(m, gen)) != AETHER_OK) {
            /* The bucket is not of our generation: we are the one deposed
             * (ESTALE), or cannot tell yet. */
        } else if (foreign) {
            /* A lost generation's value in our bucket: replace it. */
            AETHER_WARN(MEMBER_LOG, "%s: the stored %s v%llu term %llu is of generation %016llx, the "
                        "bucket's is %016llx: replacing it with v%llu", m->cfg.node.str, key,
                        (unsigned long long)cur_version, (unsigned long long)cur_term,
                        (unsigned long long)cur_gen, (unsigned long long)gen,
                        (unsigned long long)version);
            if (!parse_manifest((const char *)cur.value, cur.value_len, replaced))
                replaced->parts = 0;
            st = aether_kv_update(kv, key, value, len, cur.revision, &next, NULL);
        } else if (stamped && (cur_term > term || cur_version >= version)) {
            /* Newer than ours: we are deposed or behind. Never overwrite it. */
            st = AETHER_ESTALE;
        } else {
            if (!parse_manifest((const char *)cur.value, cur.value_len, replaced))
                replaced->parts = 0;
            st = aether_kv_update(kv, key, value, len, cur.revision, &next, NULL);
        }
        aether_kv_entry_fini(&cur);
        in_doubt |= st == AETHER_EUNKNOWN;
    }
    if (st == AETHER_OK)
        *rev = next;
    else if (in_doubt && st != AETHER_ESTALE)
        st = AETHER_EUNKNOWN; /* a write of ours may still land: the caller must settle it */
    return st;
}

aether_status member_state_put(aether_member *m, const char *key, const char *value, size_t len,
                               uint64_t gen, uint64_t term, uint64_t version, uint64_t *rev)
{
    aether_kv *kv = m->deps.state_store;
    manifest replaced = { .parts = 0 };
    aether_status st;
    if (len <= MEMBER_STATE_INLINE_MAX) {
        st = put_inline(m, key, value, len, gen, term, version, rev, &replaced);
    } else {
        uint32_t parts = (uint32_t)((len + MEMBER_STATE_INLINE_MAX - 1) / MEMBER_STATE_INLINE_MAX);
        char prefix[PREFIX_MAX], mfv[PREFIX_MAX + 256];
        snprintf(prefix, sizeof(prefix), "%s.part.%llu.%llu.%llu", key, (unsigned long long)term,
                 (unsigned long long)version, (unsigned long long)++m->state_attempts);
        char gen_field[32] = "";
        if (gen != 0)
            snprintf(gen_field, sizeof(gen_field), "\"gen\":\"%016llx\",", (unsigned long long)gen);
        int n = snprintf(mfv, sizeof(mfv),
                         "{\"version\":%llu,\"term\":%llu,%s\"parts\":%u,\"len\":%zu,\"prefix\":\"%s\"}",
                         (unsigned long long)version, (unsigned long long)term, gen_field, parts,
                         len, prefix);
        AETHER_ASSERT(n > 0 && (size_t)n < sizeof(mfv));
        st = parts <= PARTS_MAX ? write_parts(kv, prefix, value, len, parts) : AETHER_EINVAL;
        if (st == AETHER_OK)
            st = put_inline(m, key, mfv, (size_t)n, gen, term, version, rev, &replaced);
        if (st != AETHER_OK)
            delete_parts(kv, prefix, parts); /* this attempt did not commit */
    }
    if (st == AETHER_OK && replaced.parts > 0)
        delete_parts(kv, replaced.prefix, replaced.parts);
    if (st != AETHER_OK)
        AETHER_WARN(MEMBER_LOG, "%s: writing %s v%llu to the state store: %s", m->cfg.node.str, key,
                    (unsigned long long)version, aether_status_str(st));
    return st;
}

aether_status member_state_get(aether_member *m, const char *key, char **value, size_t *len,
                               uint64_t *rev)
{
    aether_kv *kv = m->deps.state_store;
    aether_kv_entry e;
    aether_status st = aether_kv_get(kv, key, &e, NULL);
    if (st != AETHER_OK)
        return st;
    manifest mf;
    if (!parse_manifest((const char *)e.value, e.value_len, &mf)) {
        *value = (char *)e.value; /* malloc'd with a NUL; ours now */
        *len = e.value_len;
        if (rev)
            *rev = e.revision;
        e.value = NULL;
        aether_kv_entry_fini(&e);
        return AETHER_OK;
    }
    /* DESIGN 3: the parts, in order. */
    char *buf = malloc(mf.len + 1);
    size_t at = 0;
    st = buf != NULL ? AETHER_OK : AETHER_ENOMEM;
    for (uint32_t i = 0; i < mf.parts && st == AETHER_OK; i++) {
        char k[AETHER_KV_KEY_LEN_MAX + 1];
        part_key(k, sizeof(k), mf.prefix, i);
        aether_kv_entry p;
        st = aether_kv_get(kv, k, &p, NULL);
        if (st == AETHER_ENOTFOUND)
            st = AETHER_ECONFLICT; /* replaced meanwhile: read again later */
        if (st != AETHER_OK)
            break;
        if (at + p.value_len > mf.len)
            st = AETHER_EINVAL;
        else
            memcpy(buf + at, p.value, p.value_len);
        at += p.value_len;
        aether_kv_entry_fini(&p);
    }
    if (st == AETHER_OK && at != mf.len)
        st = AETHER_EINVAL;
    if (st != AETHER_OK) {
        free(buf);
        aether_kv_entry_fini(&e);
        AETHER_DEBUG(MEMBER_LOG, "%s: reading %s from its parts: %s", m->cfg.node.str, key,
                     aether_status_str(st));
        return st == AETHER_ENOTFOUND ? AETHER_ECONFLICT : st;
    }
    buf[at] = '\0';
    *value = buf;
    *len = at;
    if (rev)
        *rev = e.revision;
    aether_kv_entry_fini(&e);
    return AETHER_OK;
}
