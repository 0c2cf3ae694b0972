/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_state.c: a member's reads and writes of the state store (actors
 * layer, private to member*.c; the contract is member_internal.h's).
 *
 * DESIGN
 * The leader records a change in the state store before it publishes it,
 * with compare-and-set, and never overwrites a value stamped (term, version)
 * at or above its own (member_internal.h). Every value is one KV value
 * under its key, never split: tools read the map (ShardMap format 2,
 * shardmap_codec.h) and the topology (topology_json.h) under "map" and
 * "topology" directly (aetherctl, the JavaScript consumer). A value above
 * MEMBER_STATE_VALUE_MAX (under the 1 MiB a NATS message may carry) is
 * refused before any write, with its size and the limit in the log and
 * aether_state_values_too_large_total counted: the largest map, 65 536
 * shards x R7 over 20 nodes, is 917 KB; a topology reaches the limit only
 * past about 16 000 remembered nodes with long ids, which forgetting
 * (topology.h) keeps it far below. (Until map format 2 a large value was
 * cut into parts behind a manifest that no tool could read: issue 16.)
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
#include "shardmap_codec.h"

AETHER_STATIC_ASSERT(MEMBER_STATE_VALUE_MAX + 64u * 1024u <= AETHER_KV_VALUE_LEN_MAX,
                     "a value fits in a KV value with room for its subject and headers");

/* The (term, version) stamp of a stored map (format 2: its header) or
 * topology (a JSON object; no term: 0); *gen its generation (0: absent or
 * malformed). False if the value is neither. */
static bool state_stamp(const char *json, size_t len, uint64_t *term, uint64_t *version,
                        uint64_t *gen)
{
    if (aether_shardmap_codec_peek(json, len, version, term, gen))
        return true;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    /* A ShardMap of format 1 (JSON, "shards": one object per shard) was left
     * by the previous release (docs/wire.md, "Upgrade order"): no node of
     * it is admitted any more, so no live writer stands behind it. It is
     * unstamped: replaced, never held up as newer than ours. */
    bool ok = json_is_object(root) && json_object_get(root, "shards") == NULL;
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
                                uint64_t gen, uint64_t term, uint64_t version, uint64_t *rev)
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
            st = aether_kv_update(kv, key, value, len, cur.revision, &next, NULL);
        } else if (stamped && (cur_term > term || cur_version >= version)) {
            /* Newer than ours: we are deposed or behind. Never overwrite it. */
            st = AETHER_ESTALE;
        } else {
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
    if (len > MEMBER_STATE_VALUE_MAX) {
        /* Never split (DESIGN): said, counted, and not written. */
        __atomic_add_fetch(&m->state_too_large, 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->state_size_log, member_now_ns(m), &suppressed))
            AETHER_ERROR(MEMBER_LOG, "%s: the %s v%llu is %zu bytes, above the %u bytes one state-store "
                         "value may hold (the server's 1 MiB max_payload less headers): not stored, "
                         "not published (%llu more not logged)",
                         m->cfg.node.str, key, (unsigned long long)version, len,
                         MEMBER_STATE_VALUE_MAX, (unsigned long long)suppressed);
        return AETHER_EINVAL;
    }
    aether_status st = put_inline(m, key, value, len, gen, term, version, rev);
    if (st != AETHER_OK)
        AETHER_WARN(MEMBER_LOG, "%s: writing %s v%llu to the state store: %s", m->cfg.node.str, key,
                    (unsigned long long)version, aether_status_str(st));
    return st;
}

aether_status member_state_get(aether_member *m, const char *key, char **value, size_t *len,
                               uint64_t *rev)
{
    aether_kv_entry e;
    aether_status st = aether_kv_get(m->deps.state_store, key, &e, NULL);
    if (st != AETHER_OK)
        return st;
    if (strcmp(key, MEMBER_STATE_MAP) == 0 &&
        aether_shardmap_codec_is_format1((const char *)e.value, e.value_len)) {
        /* Left by a release before map format 2 (docs/wire.md, "Upgrade
         * order"): no node of it is admitted, so no live writer stands
         * behind it. Read as no map: a leader numbers its first map above
         * every earlier term's (as after a lost bucket) and replaces it. */
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->state_size_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: the stored map is format 1 (JSON, written by an earlier "
                        "release): read as no map; the leader's first map replaces it (%llu more "
                        "not logged)", m->cfg.node.str, (unsigned long long)suppressed);
        aether_kv_entry_fini(&e);
        return AETHER_ENOTFOUND;
    }
    *value = (char *)e.value; /* malloc'd with a NUL; ours now */
    *len = e.value_len;
    if (rev)
        *rev = e.revision;
    e.value = NULL;
    aether_kv_entry_fini(&e);
    return AETHER_OK;
}
