/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_store.c: the store actor of a member (actors layer): the one actor
 * that waits on the KV stores. DESIGN: member_store_internal.h.
 * Threading: state owned by the store actor (its backlog of completions
 * a full requester's mailbox refused).
 */
#include "member_store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "keyhash.h"
#include "shardmap_codec.h"

/* A completion refused by a full mailbox is sent again after this. */
#define STORE_RETRY_MS 1u

typedef struct member_store_state {
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
    free(r);
}

aether_status member_store_request(aether_member *m, member_store_req *r)
{
    aether_msg msg = { .type = MSG_STORE_REQ, .ptr = r };
    aether_status st = aether_actor_send(m->store, &msg);
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
    member_store_state *ss = calloc(1, sizeof(*ss));
    if (ss == NULL)
        return AETHER_ENOMEM;
    m->ss = ss;
    return AETHER_OK;
}

void member_store_fini(aether_member *m)
{
    member_store_state *ss = m->ss;
    if (ss == NULL)
        return;
    for (uint32_t i = 0; i < ss->count; i++)
        member_store_req_free(ss->backlog[i]);
    free(ss->backlog);
    free(ss);
    m->ss = NULL;
}

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

static void arm_retry(aether_member *m, member_store_state *ss)
{
    if (ss->retry_armed)
        return;
    aether_msg t = { .type = MSG_STORE_RETRY };
    if (aether_timer_start(m->store, (uint64_t)STORE_RETRY_MS * AETHER_NS_PER_MS, 0, &t, NULL) ==
        AETHER_OK)
        ss->retry_armed = true;
}

static void backlog_push(aether_member *m, member_store_state *ss, member_store_req *r)
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
    arm_retry(m, ss);
}

/* Sends what waits, in order, up to the first refusal. */
static void flush_backlog(aether_member *m, member_store_state *ss)
{
    uint32_t sent = 0;
    while (sent < ss->count && deliver(ss->backlog[sent]) == AETHER_OK)
        sent++;
    memmove(ss->backlog, ss->backlog + sent, (ss->count - sent) * sizeof(*ss->backlog));
    ss->count -= sent;
    if (ss->count > 0)
        arm_retry(m, ss);
}

void member_store_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_member *m = state;
    member_store_state *ss = m->ss;
    (void)self;
    switch (msg->type) {
    case MSG_STORE_REQ: {
        member_store_req *r = msg->ptr;
        run(m, r);
        /* Behind what waits already: one requester's completions keep
         * their order. */
        if (ss->count > 0 || deliver(r) != AETHER_OK)
            backlog_push(m, ss, r);
        break;
    }
    case MSG_STORE_RETRY:
        ss->retry_armed = false;
        flush_backlog(m, ss);
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
