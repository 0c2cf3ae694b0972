/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_store.c: the store actor of a member (actors layer): the one actor
 * that waits on the KV stores, and the one file of the member that calls
 * them (aether_kv_*, aether_lease_*): the state store's compare-and-set
 * writes and reads (member_state_put, _get, _foreign; their DESIGN, the
 * generations among it, is member_state.c's) and each request's run.
 * DESIGN: member_store_internal.h (two instances of the actor, the lease
 * lane and the state lane: item 6).
 * Threading: state owned by each instance of the store actor (its backlog
 * of completions a full requester's mailbox refused); the two instances
 * share only the member's immutable fields and atomics, and the stores
 * (any thread: kv_store.h).
 */
#include "member_store_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "keyhash.h"
#include "shardmap_codec.h"

/* A completion refused by a full mailbox is sent again after this. */
#define STORE_RETRY_MS 1u

typedef struct member_store_state {
    aether_member *m;           /* immutable after init */
    member_store_req **backlog; /* completions not delivered yet, in order */
    uint32_t count, cap;
    bool retry_armed;
    uint64_t redeliveries;      /* completions that waited for room */
} member_store_state;

member_store_req *member_store_req_new(member_store_op op, aether_actor *reply_to)
{
    member_store_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->op = op;
    r->reply_to = reply_to;
    return r;
}

void member_store_req_free(member_store_req *r)
{
    if (r == NULL)
        return;
    if (r->event != NULL)
        aether_event_release(r->event);
    if (r->ctx != NULL && r->ctx_free != NULL)
        r->ctx_free(r->ctx);
    aether_shardmap_destroy(r->map);
    free(r->value);
    free(r->doubt);
    free(r->got);
    free(r);
}

bool member_store_op_is_lease(member_store_op op)
{
    switch (op) {
    case MEMBER_STORE_LEASE_GENERATION:
    case MEMBER_STORE_LEASE_ACQUIRE:
    case MEMBER_STORE_LEASE_RENEW:
    case MEMBER_STORE_LEASE_RESIGN:
    case MEMBER_STORE_LEASE_CLAIM:
        return true;
    case MEMBER_STORE_STATE_PUT:
    case MEMBER_STORE_STATE_GET:
    case MEMBER_STORE_STATE_FOREIGN:
    case MEMBER_STORE_TOPO_FENCE:
        return false;
    }
    AETHER_ASSERT(!"store request: unknown op");
    return false;
}

aether_status member_store_request(aether_member *m, member_store_req *r)
{
    aether_msg msg = { .type = MSG_STORE_REQ, .ptr = r };
    /* The lane (member_store_internal.h, item 6). */
    aether_actor *lane = member_store_op_is_lease(r->op) ? m->store_lease : m->store;
    aether_status st = aether_actor_send(lane, &msg);
    if (st != AETHER_OK) {
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&m->send_log, member_now_ns(m), &suppressed))
            AETHER_WARN(MEMBER_LOG, "%s: store request %u refused (%s) [%llu more suppressed]",
                        m->cfg.node.str, (unsigned)r->op, aether_status_str(st),
                        (unsigned long long)suppressed);
    }
    return st;
}

aether_status member_store_init(aether_member *m)
{
    AETHER_ASSERT(m->ss == NULL && m->ss_lease == NULL);
    m->ss = calloc(1, sizeof(*m->ss));
    m->ss_lease = calloc(1, sizeof(*m->ss_lease));
    if (m->ss == NULL || m->ss_lease == NULL)
        return AETHER_ENOMEM; /* member_store_fini frees what was made */
    m->ss->m = m;
    m->ss_lease->m = m;
    return AETHER_OK;
}

static void state_free(member_store_state *ss)
{
    if (ss == NULL)
        return;
    for (uint32_t i = 0; i < ss->count; i++)
        member_store_req_free(ss->backlog[i]);
    free(ss->backlog);
    free(ss);
}

void member_store_fini(aether_member *m)
{
    state_free(m->ss);
    state_free(m->ss_lease);
    m->ss = NULL;
    m->ss_lease = NULL;
}

/* ---- the state store (member_internal.h; DESIGN: member_state.c) ---------- */

AETHER_STATIC_ASSERT(MEMBER_STATE_VALUE_MAX + 64u * 1024u <= AETHER_KV_VALUE_LEN_MAX,
                     "a value fits in a KV value with room for its subject and headers");

bool member_state_foreign(aether_member *m, const char *key, uint64_t rev)
{
    aether_kv_entry e;
    if (__atomic_load_n(&m->generation, __ATOMIC_SEQ_CST) == 0 ||
        aether_kv_get(m->deps.state_store, key, &e, NULL) != AETHER_OK)
        return false; /* none followed yet, absent (the write-back's case) or no answer */
    /* The revision we wrote or read is ours: no writer puts back a foreign
     * value unread (the take-over's fence, MEMBER_STORE_TOPO_FENCE, replaces one instead). */
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
        bool stamped = !same && member_state_stamp((const char *)cur.value, cur.value_len, &cur_term,
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

/* ---- the requests ------------------------------------------------------------ */

/* The state store's generation and recorded term, into r's gen_* slots. */
static void read_generation(member_store_req *r)
{
    r->gen_done = true;
    r->gen_st = aether_lease_generation(&r->lcfg, &r->gen_read, &r->gen_rev, &r->err);
    if (r->gen_st == AETHER_OK)
        r->gen_st = aether_lease_recorded_term(&r->lcfg, &r->recorded, &r->trev, &r->err);
}

static void read_lease(member_store_req *r)
{
    r->read_done = true;
    r->read_st = aether_lease_read(&r->lcfg, &r->v, &r->rev, NULL);
}

static void run_acquire(member_store_req *r)
{
    r->st = aether_lease_acquire(&r->lcfg, &r->rng, &r->held, &r->err);
    if (r->st == AETHER_ESTALE || r->st == AETHER_EEXIST)
        read_lease(r);
    /* member_lease.c lease_held: a lease of another generation than ours
     * asks the store which one is current, before its term is judged. */
    if (r->st == AETHER_EEXIST && r->read_st == AETHER_OK && r->v.generation != 0 &&
        r->v.generation != r->gen)
        read_generation(r);
}

static void run_renew(member_store_req *r, aether_clock *clock)
{
    aether_lease_held cur = r->held;
    if (cur.pending) {
        bool applied = false;
        r->reconciled = true;
        r->rec_st = aether_lease_reconcile(&r->lcfg, &cur, &r->rec_next, &applied, &r->err);
        if (r->rec_st == AETHER_OK)
            cur = r->rec_next;
        else if (r->rec_st == AETHER_ECONFLICT || r->rec_st == AETHER_ENOTFOUND)
            return; /* lost: the lease actor reports it */
    }
    /* The time test before the write, as when the lease actor made it: a
     * holding that may not act any more is not renewed. */
    if (!aether_lease_may_act(&cur.lease, aether_clock_now_ns(clock), cur.lease.safety_margin_ms)) {
        r->expired = true;
        return;
    }
    if (cur.pending)
        return; /* still in doubt: the old deadline stands */
    r->renewed = true;
    uint64_t t0 = aether_clock_now_ns(clock);
    r->st = aether_lease_renew(&r->lcfg, &cur, &r->next, &r->err);
    if (r->st != AETHER_OK)
        return;
    r->renew_ns = aether_clock_now_ns(clock) - t0;
    aether_err err;
    r->record_st = aether_lease_record_again(&r->lcfg, &r->next, &r->rewritten, &err);
    if (r->record_st != AETHER_OK)
        r->err = err;
    if (r->record_st == AETHER_ESTALE)
        read_generation(r); /* member_lease.c step 6: which generation began */
}

static void run_claim(member_store_req *r)
{
    r->gen_done = true;
    r->gen_st = aether_lease_recorded_term(&r->lcfg, &r->recorded, &r->trev, &r->err);
    r->read_done = true;
    r->read_st = aether_lease_read(&r->lcfg, &r->v, &r->rev, &r->err);
}

/* A map is encoded here, off the requester's worker (a 1024-shard map is
 * ~47 KB, 1-2 ms of encoding); the bytes come back for its publication. */
static void run_state_put(aether_member *m, member_store_req *r)
{
    if (r->map != NULL) {
        AETHER_ASSERT(r->value == NULL);
        r->st = aether_shardmap_codec_encode(r->map, r->state_gen, &r->value, &r->len, NULL);
        if (r->st != AETHER_OK)
            return;
    }
    r->st = member_state_put(m, r->key, r->value, r->len, r->state_gen, r->state_term,
                             r->state_version, &r->state_rev);
    r->hash = r->st == AETHER_OK ? XXH64(r->value, r->len, 0) : 0;
}

/* The "version" of a stored topology (0: none or unreadable). */
static uint64_t topology_version_of(const char *json, size_t len)
{
    uint64_t v = 0;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    json_t *jv = json_object_get(root, "version");
    if (json_is_integer(jv) && json_integer_value(jv) >= 0)
        v = (uint64_t)json_integer_value(jv);
    json_decref(root);
    return v;
}

/* MEMBER_STORE_TOPO_FENCE (member_store_internal.h). Each round reads the
 * key and either ends or follows a write by someone else between its read
 * and its rewrite; bounded by MEMBER_STATE_PUT_ROUNDS_MAX. */
static void run_topo_fence(aether_member *m, member_store_req *r)
{
    aether_kv *kv = m->deps.state_store;
    r->fenced = MEMBER_STORE_FENCE_FAILED;
    r->st = AETHER_ECONFLICT;
    for (uint32_t round = 0; round < MEMBER_STATE_PUT_ROUNDS_MAX; round++) {
        aether_kv_entry cur;
        aether_status gs = aether_kv_get(kv, MEMBER_STATE_TOPOLOGY, &cur, NULL);
        bool foreign = gs == AETHER_OK &&
                       member_state_value_foreign(m, MEMBER_STATE_TOPOLOGY, (const char *)cur.value,
                                                  cur.value_len);
        if (gs == AETHER_ENOTFOUND || foreign) {
            if (foreign)
                aether_kv_entry_fini(&cur);
            /* Ours, written the way every value is (member_state_put: only
             * in a bucket of our generation, "Generations"), so a deposed
             * leader of a lost one never seeds a new bucket. */
            uint64_t rev = 0;
            r->st = member_state_put(m, MEMBER_STATE_TOPOLOGY, r->value, r->len, r->state_gen, 0,
                                     r->state_version, &rev);
            if (r->st == AETHER_OK) {
                r->fenced = MEMBER_STORE_FENCE_OURS;
                r->state_rev = rev;
            }
            return;
        }
        if (gs != AETHER_OK) {
            r->st = gs;
            return;
        }
        free(r->got);
        r->got = (char *)cur.value; /* malloc'd with a NUL: the request's now */
        r->got_len = cur.value_len;
        r->got_rev = cur.revision;
        cur.value = NULL;
        aether_kv_entry_fini(&cur);
        if (r->doubt != NULL) {
            if (r->got_len == r->doubt_len && memcmp(r->got, r->doubt, r->got_len) == 0) {
                r->st = AETHER_OK;
                r->fenced = MEMBER_STORE_FENCE_RECORDED;
                r->state_rev = r->got_rev;
                return;
            }
            if (topology_version_of(r->got, r->got_len) >= r->doubt_version) {
                r->st = AETHER_OK;
                r->fenced = MEMBER_STORE_FENCE_SUPERSEDED;
                return;
            }
        }
        uint64_t rev = 0;
        r->st = aether_kv_update(kv, MEMBER_STATE_TOPOLOGY, r->got, r->got_len, r->got_rev, &rev, NULL);
        if (r->st == AETHER_OK) {
            r->fenced = MEMBER_STORE_FENCE_REWRITTEN;
            r->state_rev = rev;
            return;
        }
        if (r->st != AETHER_ECONFLICT)
            return; /* AETHER_EUNKNOWN among them: the revision it left is not known */
    }
}

static void run(aether_member *m, member_store_req *r)
{
    switch (r->op) {
    case MEMBER_STORE_LEASE_GENERATION:
        read_generation(r);
        break;
    case MEMBER_STORE_LEASE_ACQUIRE:
        run_acquire(r);
        break;
    case MEMBER_STORE_LEASE_RENEW:
        run_renew(r, m->clock);
        break;
    case MEMBER_STORE_LEASE_RESIGN:
        r->st = aether_lease_resign(&r->lcfg, &r->held, &r->err);
        break;
    case MEMBER_STORE_LEASE_CLAIM:
        run_claim(r);
        break;
    case MEMBER_STORE_STATE_PUT:
        run_state_put(m, r);
        break;
    case MEMBER_STORE_STATE_GET:
        r->st = member_state_get(m, r->key, &r->value, &r->len, &r->state_rev);
        r->hash = r->st == AETHER_OK ? XXH64(r->value, r->len, 0) : 0;
        break;
    case MEMBER_STORE_STATE_FOREIGN:
        r->foreign = member_state_foreign(m, r->key, r->state_rev);
        break;
    case MEMBER_STORE_TOPO_FENCE:
        run_topo_fence(m, r);
        break;
    default:
        AETHER_ASSERT(!"store actor: unknown request");
    }
}

/* Sends the completion; AETHER_EFULL leaves it with the caller. A closed
 * requester (stopping) frees it. */
static aether_status deliver(member_store_req *r)
{
    aether_msg msg = { .type = MSG_STORE_DONE, .ptr = r };
    aether_status st = aether_actor_send(r->reply_to, &msg);
    if (st == AETHER_EFULL)
        return st;
    if (st != AETHER_OK)
        member_store_req_free(r);
    return AETHER_OK;
}

static void arm_retry(aether_actor *self, member_store_state *ss)
{
    if (ss->retry_armed)
        return;
    aether_msg t = { .type = MSG_STORE_RETRY };
    if (aether_timer_start(self, (uint64_t)STORE_RETRY_MS * AETHER_NS_PER_MS, 0, &t, NULL) ==
        AETHER_OK)
        ss->retry_armed = true;
}

static void backlog_push(aether_actor *self, member_store_state *ss, member_store_req *r)
{
    if (ss->count == ss->cap) {
        uint32_t cap = ss->cap ? ss->cap * 2 : 8;
        member_store_req **b = realloc(ss->backlog, cap * sizeof(*b));
        AETHER_ASSERT(b != NULL); /* a completion must not be lost */
        ss->backlog = b;
        ss->cap = cap;
    }
    ss->backlog[ss->count++] = r;
    ss->redeliveries++;
    arm_retry(self, ss);
}

/* Sends what waits, in order, up to the first refusal. */
static void flush_backlog(aether_actor *self, member_store_state *ss)
{
    uint32_t sent = 0;
    while (sent < ss->count && deliver(ss->backlog[sent]) == AETHER_OK)
        sent++;
    memmove(ss->backlog, ss->backlog + sent, (ss->count - sent) * sizeof(*ss->backlog));
    ss->count -= sent;
    if (ss->count > 0)
        arm_retry(self, ss);
}

void member_store_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    member_store_state *ss = state; /* this instance's (m->ss or m->ss_lease) */
    aether_member *m = ss->m;
    switch (msg->type) {
    case MSG_STORE_REQ: {
        member_store_req *r = msg->ptr;
        /* Each lane runs only its own kind (member_store_internal.h, item 6). */
        AETHER_ASSERT(member_store_op_is_lease(r->op) == (ss == m->ss_lease));
        run(m, r);
        /* Behind what waits already: one requester's completions keep
         * their order. */
        if (ss->count > 0 || deliver(r) != AETHER_OK)
            backlog_push(self, ss, r);
        break;
    }
    case MSG_STORE_RETRY:
        ss->retry_armed = false;
        flush_backlog(self, ss);
        break;
    default:
        AETHER_ASSERT(!"store actor: unknown message type");
    }
}

void member_store_drop(void *state, const aether_msg *msg)
{
    (void)state;
    if (msg->type == MSG_STORE_REQ)
        member_store_req_free(msg->ptr);
}
