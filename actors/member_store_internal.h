/* SPDX-License-Identifier: Apache-2.0 */
/*
 * member_store_internal.h: the member's store actor and its requests
 * (actors layer, private to member*.c).
 *
 * DESIGN (DESIGN 3: "an actor never blocks"; issue 14, item 1)
 * The fourth actor of a member (in two instances, item 6). It alone calls
 * the blocking store functions (aether_lease_*, aether_kv_*,
 * member_state_put/get/foreign): on NATS each is a JetStream round trip,
 * so the domain actors (cluster, lease, assign) never
 * wait on the network; they send a request here and go on handling
 * messages, and the request comes back to them as a message when done.
 *  1. A request (member_store_req, heap) carries COPIES of every input the
 *     call needs (the lease configuration, the holding, the generation the
 *     requester follows, key and value bytes, ...) and slots for every
 *     output (statuses, the aether_err text, revisions, values, the new
 *     holding). The store actor reads nothing of the requester's state: a
 *     composite operation (the whole aether_lease_acquire protocol, a renewal
 *     with its reconcile and its record check, member_state_put's
 *     compare-and-set loop) runs whole inside one store-actor handler, on
 *     what the request carries and on the member's atomics, which any thread
 *     may read.
 *  2. The completion is the request itself, sent back to req->reply_to as
 *     MSG_STORE_DONE (ptr: the request, owned by the message; a requester's
 *     drop frees it with member_store_req_free). The requester dispatches on
 *     req->op. AETHER_EUNKNOWN comes back as such: "re-read before acting",
 *     as when the call was made in the handler.
 *  3. Order: one sender's requests are run in the order sent (the mailbox
 *     is FIFO per producer and the store actor runs them one at a time), and
 *     their completions reach that sender in the same order. A completion
 *     the requester's full mailbox refuses is never dropped: it waits in the
 *     store actor's backlog (FIFO, so the order holds) and is sent again 1 ms
 *     later (DESIGN 3: "an internal delivery is never lost"). A closed
 *     requester (the member stopping) frees it.
 *  4. Requesters are state machines: at most one request of a kind in
 *     flight per actor (member_lease.c: a renewal in flight makes the renew
 *     timer skip; a campaign in flight makes the campaign timer skip; term
 *     claims are judged one at a time, in order; member_assign.c: one map
 *     write, one map read, one topology read, what is asked for meanwhile
 *     riding on the next; member_topo_store.c: one topology request
 *     - a write, a read or a fence - the commands and events that come
 *     meanwhile held behind it, member_cluster_internal.h, "The cluster
 *     actor's store requests"), with what must happen
 *     after the call in the completion handler (member_internal.h, "The
 *     leader's two commit points", for the orders that matter). A request the store
 *     actor's mailbox refuses (full: it holds at most a few per requester;
 *     or closed) is treated as a store that did not answer.
 *  5. Executors: with deps.io_executor set (production: a 1-thread pool of
 *     the node wiring), the store actor runs there, so no worker that runs
 *     domain actors ever waits on NATS; NULL: it runs on the member's
 *     executor (the simulator's step executor and the unit tests: still
 *     deterministic, the stores being in memory). Domain code cannot tell.
 *  6. Two lanes (DESIGN 4: command and map traffic never delay lease
 *     renewals, keep-alives or heartbeats). The store actor runs as two
 *     instances of this code, each with its own mailbox, its own state
 *     (member_store_state: backlog, retry timer) and, in production, its
 *     own one-thread executor: the lease lane (m->store_lease,
 *     deps.lease_io_executor) runs the MEMBER_STORE_LEASE_* requests, which
 *     only the lease actor sends; the state lane (m->store, deps.io_executor)
 *     runs the MEMBER_STORE_STATE_* and MEMBER_STORE_TOPO_FENCE requests of
 *     the assign and cluster actors. member_store_request routes by op
 *     (member_store_op_is_lease) and each lane asserts it gets only its own.
 *     Why a renewal can no longer wait behind map I/O: a lane runs one
 *     request at a time, so what a request can wait behind is exactly the
 *     requests queued or running on its own lane. On the lease lane those
 *     are the lease actor's own, at most one of a kind in flight (item 4):
 *     a campaign, a renewal, a resignation, a generation read and a term
 *     claim, each a few small keys (the lease, the generation, the recorded
 *     term). A map write (128-500 KB at 65 536 shards, a compare-and-set
 *     loop of up to MEMBER_STATE_PUT_ROUNDS_MAX rounds), a map read, a
 *     topology write, read or fence is never on that lane: it sits in the
 *     state lane's mailbox and runs on the other thread. Item 3 still holds
 *     for every requester: each sends to one lane only (the lease actor to
 *     the lease lane; the cluster and assign actors to the state lane), so
 *     its requests and completions keep their order; no order between the
 *     lanes was ever promised (they come from different actors, and the
 *     leader's commit points, member_internal.h, are between the cluster
 *     and assign actors, both on the state lane). The two lanes share only
 *     what both could always read: the member's immutable fields and
 *     atomics, and the stores, which any thread may call (kv_store.h): the
 *     state store's generation key is read from both lanes (the state
 *     lane's generation guard before a write), the recorded term read and
 *     written (aether_lease_record_again) from the lease lane, each a read
 *     or a compare-and-set, as when two nodes do it. What remains shared with map
 *     traffic is below the lanes: the one NATS connection (its flusher and
 *     reader threads, the server) and the cores (the bulk executor, at nice
 *     +10, yields them). In the simulator and the unit tests both lanes
 *     run on the step executor like every actor, so the runs stay
 *     deterministic.
 * Threading: each instance's own state is its backlog only; the requests
 * it holds are owned by it between their two messages.
 */
#ifndef AETHER_MEMBER_STORE_INTERNAL_H
#define AETHER_MEMBER_STORE_INTERNAL_H

#include "member_internal.h"

typedef enum member_store_op {
    /* Lease actor (member_lease.c). */
    MEMBER_STORE_LEASE_GENERATION, /* the state store's generation and recorded term */
    MEMBER_STORE_LEASE_ACQUIRE,    /* aether_lease_acquire; on AETHER_ESTALE or AETHER_EEXIST
                                      also the lease read (lease_restarted, lease_held), and on
                                      EEXIST with a lease of another generation than `gen`
                                      the generation reads as well */
    MEMBER_STORE_LEASE_RENEW,      /* reconcile a pending holding (stop if still in doubt or
                                      lost), the may-act test on the clock, the renewal, and on
                                      success aether_lease_record_again (with the generation
                                      reads if that says ESTALE) */
    MEMBER_STORE_LEASE_RESIGN,     /* aether_lease_resign */
    MEMBER_STORE_LEASE_CLAIM,      /* recorded term + lease read (judge_claim) */
    /* Assign and cluster actors: the state store (member_state.c). */
    MEMBER_STORE_STATE_PUT,        /* member_state_put of value (or, with `map` set, of map
                                      encoded here: value is then out) */
    MEMBER_STORE_STATE_GET,        /* member_state_get */
    MEMBER_STORE_STATE_FOREIGN,    /* member_state_foreign(key, state_rev) */
    /* Cluster actor: the stored topology read and its key fenced
     * (member_topo_store.c; run_topo_fence here): read the key; absent or
     * of a lost generation, write `value` (ours) there (member_state_put);
     * else, unless `doubt` settles it, write the bytes read again at the
     * revision read, so that no write naming an earlier revision (a
     * timed-out one of ours or of a previous leader) can land after what
     * was read. A write between the read and the rewrite (the
     * compare-and-set conflicts) makes it read again, at most
     * MEMBER_STATE_PUT_ROUNDS_MAX times. */
    MEMBER_STORE_TOPO_FENCE,
} member_store_op;

/* What MEMBER_STORE_TOPO_FENCE found and did (member_store_req.fenced). */
typedef enum member_store_fence {
    MEMBER_STORE_FENCE_FAILED = 0, /* st says why; a rewrite that came back AETHER_EUNKNOWN
                                      too (the same bytes: harmless if it lands) */
    MEMBER_STORE_FENCE_REWRITTEN,  /* got (at got_rev) written again: state_rev */
    MEMBER_STORE_FENCE_OURS,       /* absent, or a lost generation's: value written: state_rev;
                                      got is NULL */
    MEMBER_STORE_FENCE_RECORDED,   /* doubt: got is the in-doubt value, applied after all
                                      (nothing written; state_rev = got_rev) */
    MEMBER_STORE_FENCE_SUPERSEDED, /* doubt: got is stamped at or above doubt_version: another
                                      writer came after it, it can no longer apply (nothing
                                      written) */
} member_store_fence;

typedef struct member_store_req {
    member_store_op op;
    aether_actor *reply_to;        /* gets MSG_STORE_DONE */
    uint64_t tag;                  /* the requester's: which of its attempts this is */
    uint64_t arg;                  /* the requester's, returned as is */
    /* Inputs (copies). */
    aether_lease_config lcfg;      /* pointers in it (stores, clock, term floor) outlive the
                                      store actor */
    aether_rng rng;                /* acquire: nonces (split from the requester's) */
    aether_lease_held held;        /* renew, resign: the holding; acquire: out */
    uint64_t gen;                  /* the generation the requester follows */
    aether_term seen_before;       /* highest_term before the request (generation reads) */
    aether_event *event;           /* claim: the event judged (one reference, owned) */
    char reason[AETHER_ERR_MSG_MAX]; /* resign: why (for the completion's report) */
    /* Outputs. */
    aether_status st;              /* the main call's */
    aether_err err;
    /* renew */
    bool reconciled;               /* a pending holding was reconciled first */
    aether_status rec_st;          /* its status */
    aether_lease_held rec_next;    /* its holding on AETHER_OK */
    bool expired;                  /* the holding could not act any more: not renewed */
    bool renewed;                  /* the renewal was tried (st is its status) */
    aether_lease_held next;        /* renewal: on AETHER_OK or AETHER_EUNKNOWN */
    uint64_t renew_ns;             /* the renewal's duration, on AETHER_OK */
    aether_status record_st;       /* record_again's, on a renewal's AETHER_OK */
    bool rewritten;
    /* lease reads */
    bool read_done;
    aether_status read_st;
    aether_lease_value v;
    uint64_t rev;
    /* generation reads */
    bool gen_done;
    aether_status gen_st;          /* AETHER_OK: both read */
    uint64_t gen_read, gen_rev;
    aether_term recorded;
    uint64_t trev;
    /* State store (MEMBER_STORE_STATE_*). */
    char key[16];                  /* MEMBER_STATE_MAP or MEMBER_STATE_TOPOLOGY */
    char *value;                   /* put: the bytes (owned; with `map`, out); get: out (owned) */
    size_t len;
    aether_shardmap *map;          /* put: the map to encode and write (owned by the request
                                      until it comes back; the requester takes it then) */
    uint64_t state_gen, state_term, state_version; /* put: the stamp */
    uint64_t state_rev;            /* put: in (0 = read first) and out; get: out;
                                      foreign: in */
    uint64_t hash;                 /* put, get: XXH64 of value (0 if none) */
    bool foreign;                  /* foreign: out */
    /* MEMBER_STORE_TOPO_FENCE: value/len, state_gen, state_version are ours (in); */
    char *doubt;                   /* in: the in-doubt write's bytes (owned), or NULL */
    size_t doubt_len;
    uint64_t doubt_version;        /* in: its version */
    member_store_fence fenced;     /* out */
    char *got;                     /* out: the bytes the key held (owned), or NULL */
    size_t got_len;
    uint64_t got_rev;              /* out: their revision */
    void *ctx;                     /* the requester's (owned; ctx_free frees it) */
    void (*ctx_free)(void *ctx);
} member_store_req;

/* A zeroed request for op, to be answered to reply_to. NULL: no memory. */
member_store_req *member_store_req_new(member_store_op op, aether_actor *reply_to);
/* Frees it and the reference it holds. NULL is fine. */
void member_store_req_free(member_store_req *r);
/* Does op run on the lease lane (item 6)? Else on the state lane. */
bool member_store_op_is_lease(member_store_op op);
/* Sends r to its lane of the store actor (item 6). AETHER_OK: r is the
 * store actor's until it comes back as MSG_STORE_DONE; else (full, closed)
 * the caller keeps it. */
aether_status member_store_request(aether_member *m, member_store_req *r);

/* The store actor's handlers and state lifecycle (member_store.c). */
aether_status member_store_init(aether_member *m);
void member_store_fini(aether_member *m);
void member_store_handle(void *state, aether_actor *self, const aether_msg *msg);
void member_store_drop(void *state, const aether_msg *msg);
/* The capacity of each lane's mailbox: requests are few (at most one of a
 * kind per requester in flight). */
#define MEMBER_STORE_MAILBOX 1024u

#endif
