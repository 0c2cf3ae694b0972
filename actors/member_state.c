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
 * This file holds what needs no store call (stamps, the generation test of
 * a value read); the reads and writes themselves (member_state_put, _get,
 * _foreign) are the store actor's, in member_store.c, the one file that
 * calls the KV stores.
 * Threading: any thread (no store call, no shared state but the member's
 * atomics).
 */
#include "member_internal.h"

#include <jansson.h>
#include <string.h>

#include "json_util.h"
#include "shardmap_codec.h"

/* The (term, version) stamp of a stored map (format 2: its header) or
 * topology (a JSON object; no term: 0); *gen its generation (0: absent or
 * malformed). False if the value is neither. */
bool member_state_stamp(const char *json, size_t len, uint64_t *term, uint64_t *version,
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
    bool foreign = ours != 0 && member_state_stamp(value, len, &term, &version, &gen) && gen != 0 && gen != ours;
    if (foreign)
        AETHER_WARN(MEMBER_LOG, "%s: the stored %s v%llu term %llu is of generation %016llx, this "
                    "leader's is %016llx (a deposed leader's write landed over ours): writing ours "
                    "back", m->cfg.node.str, key, (unsigned long long)version,
                    (unsigned long long)term, (unsigned long long)gen, (unsigned long long)ours);
    return foreign;
}

