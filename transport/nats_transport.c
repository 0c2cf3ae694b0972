/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_transport.c: the aether_transport on core NATS, as an actor
 * (transport layer). See nats_transport.h for the subjects and semantics.
 *
 * DESIGN
 * Threads, and what each one runs:
 *  1. nats.c's delivery threads (one per subscription) run the message
 *     handlers on_*_msg. A handler verifies the message's tag when the
 *     cluster has a secret (a pure MAC check; the replay windows are the
 *     actor's), decodes it, and posts one nt_in to the transport actor. It
 *     reads immutable fields and atomics only, and never calls the sink.
 *     It may wait (post_waiting): while the mailbox is full, and on cmd.>
 *     while NT_CMD_INFLIGHT_MAX of that subscription's messages and answers
 *     are queued, so a command flood backs up into nats.c's pending buffer
 *     of cmd.> (dropped there, "slow consumer") and never sits in the
 *     mailbox ahead of a keep-alive by more than that. A nats.c thread is no
 *     actor worker: its waiting holds up only its own subscription. The
 *     map subscription's thread, which decodes whole maps, lowers its own
 *     priority at its first message (AETHER_THREAD_BULK_NICE, issue 16).
 *  2. The transport actor: one aether_actor (ck_ring mailbox of
 *     NT_MAILBOX_CAPACITY) on a pool executor of one worker that the
 *     endpoint owns, so nats.c's publish path (which writes to the socket
 *     when its buffer fills) never holds up a worker that runs domain
 *     actors, and the lifecycle calls below may wait for it from any other
 *     thread. Its handler nt_handle is the only code that touches the
 *     endpoint's state (struct nt_state): the sink, bound/serving, the seven
 *     subscriptions, the reply inbox, the pending requests with their
 *     deadlines and retries, and the replay windows. It makes every
 *     publish, request and reply (sealing them), every subscribe and
 *     unsubscribe, and every sink and reply_fn call.
 *  3. Callers. publish_event/map/heartbeat, send_release, send_command and
 *     serve_commands encode on the caller's thread (pure work) and post a
 *     message; none waits (a domain actor calls them from its handler).
 *     bind, unbind, destroy and aether_nats_transport_sync post a control
 *     message, wait on a semaphore until the actor has handled it, then
 *     flush the connection on the caller's thread (a ping round trip, so
 *     the server has the SUBs/UNSUBs): lifecycle calls, made from a thread
 *     that is neither the transport actor nor one of its callbacks.
 *
 * Messages (type: payload, ownership passes to the actor with the post):
 *  NT_IN (nt_in): a decoded inbound message of one subscription family
 *    (nt_win): the actor admits its stamp to the family's replay window,
 *    then hands it to the sink if bound (and serving, for commands and
 *    releases); a command is answered EPERM / ENOTLEADER otherwise. A reply
 *    on the inbox completes (or, "no responders" with no_leader_retry,
 *    re-schedules) its pending request.
 *  NT_PUBLISH (nt_out): sends bytes on a subject, sealed for a family,
 *    unless the connection is not CONNECTED (then dropped: nothing is
 *    buffered to go out late).
 *  NT_REQUEST (nt_req): takes a pending slot, sends the request with the
 *    reply subject <inbox>.<id>; a send failure answers reply_fn at once.
 *  NT_REPLY (cmd_reply_ctx): the answer to a command this node served.
 *  NT_SERVE: applies serve_want (an atomic the caller stored): subscribe
 *    or unsubscribe cmd.>, cmd.JoinCluster and rel. State supersedes state:
 *    when the mailbox is full the next NT_TICK applies it.
 *  NT_TICK (timer, every AETHER_NATS_TRANSPORT_SWEEP_MS): times out and
 *    retries pending requests; applies serve_want.
 *  NT_BIND / NT_UNBIND / NT_SYNC (nt_ctl, owned by the waiting caller):
 *    done, then the caller's semaphore is posted.
 *
 * Orderings this relies on:
 *  - No sink call or reply_fn after unbind returns: only the actor calls
 *    them, and unbind returns after the actor handled NT_UNBIND (which
 *    clears bound and answers every pending request ECLOSED); anything
 *    handled later sees bound == false.
 *  - A send_command that returned AETHER_OK is answered exactly once: it
 *    posts inside a gate (req_gate, a seq_cst counter) after reading
 *    bound_pub; unbind stores bound_pub = false, then waits for the gate to
 *    drain before posting NT_UNBIND (Dekker: each side's store is a full
 *    barrier before its load, so either the request saw false and returned
 *    ECLOSED, or it is in the mailbox before NT_UNBIND and gets ECLOSED
 *    there).
 *  - Memory. The endpoint is reference counted: the handle holds one, each
 *    live subscription one (dropped by nats.c's completion callback, after
 *    which its handler never runs), each cmd_reply_ctx one (dropped when
 *    the reply is sent or refused). destroy unbinds, stores gone, waits for
 *    the post gate (post_gate) to drain, then closes and destroys the
 *    actor and the pool: a late handler or reply sees gone and drops what
 *    it has without touching the actor. The last reference frees the rest.
 *  - Per producer FIFO: the mailbox keeps one thread's posts in order, so
 *    a subscription's messages reach the sink in arrival order and one
 *    caller's publishes leave in call order.
 */
#include "nats_transport.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor.h"
#include "assertion.h"
#include "exec_pool.h"
#include "log.h"
#include "nats_auth.h"
#include "shardmap_codec.h"
#include "thread.h"

#define NT_LOG "nats_transport"
#define NT_SUBJECT_MAX 256u
/* The actor's mailbox: inbound messages of every subscription, outbound
 * publishes of every caller. The actor only forwards and sends, so it
 * drains far faster than any one nats.c thread decodes. */
#define NT_MAILBOX_CAPACITY 16384u
/* A lifecycle caller that finds the mailbox full retries every ms, at
 * most this often (the actor drains it in microseconds; failing this is
 * an actor stuck for seconds, a bug). */
#define NT_CTL_RETRY_MAX 10000u
/* Waiting for a gate to drain: a poster holds it for one send. */
#define NT_GATE_SPIN_MAX 100000000u
/* Inbound back-pressure (post_waiting): cmd.> waits while
 * NT_CMD_INFLIGHT_MAX of its messages and their answers are queued for the
 * actor (so a keep-alive or a heartbeat queues behind at most that many of
 * a flood's, a few ms); anything waits while the mailbox is full; a post
 * stops waiting after NT_IN_WAIT_MAX waits of NT_IN_WAIT_NS (1 s: the
 * actor is stuck) and lists the message in the actor's overflow list
 * (engine/actor.h step 1b, counted) instead of dropping it. */
#define NT_CMD_INFLIGHT_MAX 128u
#define NT_IN_WAIT_NS 100000L
#define NT_IN_WAIT_MAX 10000u
#define NT_RETRY_FIRST_MS 10u /* first wait after "no responders" */
#define NT_RETRY_MAX_MS 200u  /* the wait doubles up to this */

static_assert(NT_MAILBOX_CAPACITY <= AETHER_MAILBOX_CAPACITY_MAX, "mailbox bound");
static_assert((NT_MAILBOX_CAPACITY & (NT_MAILBOX_CAPACITY - 1)) == 0, "power of two");

/* Subscription families: one replay window each (the receiver's side), one
 * sealing counter each (the sender's side: a receiver's window sees only
 * the counters of its own family, contiguous but for reordering within
 * it, so a burst on one subject cannot push another subject's message more
 * than AETHER_AUTH_WINDOW_SPAN below what its receiver admitted). */
typedef enum nt_win {
    NT_WIN_EVT = 0,
    NT_WIN_MAP,
    NT_WIN_HB,
    NT_WIN_INBOX,
    NT_WIN_CMD,
    NT_WIN_JOIN,
    NT_WIN_REL,
    NT_WIN_COUNT_
} nt_win;

enum nt_msg_type {
    NT_IN = 1,
    NT_PUBLISH,
    NT_REQUEST,
    NT_REPLY,
    NT_SERVE,
    NT_TICK,
    NT_BIND,
    NT_UNBIND,
    NT_SYNC,
};

/* Subscription slots of the actor. */
enum nt_sub { NT_SUB_EVT = 0, NT_SUB_MAP, NT_SUB_HB, NT_SUB_INBOX, NT_SUB_CMD, NT_SUB_REL, NT_SUB_JOIN, NT_SUB_COUNT_ };

typedef struct pending {
    uint64_t id;
    aether_reply_fn fn;
    void *arg;
    uint64_t deadline_ns;
    /* Retry while nobody serves commands (cfg->no_leader_retry): */
    char *req; /* the encoded request, owned; NULL = no retry */
    size_t req_len;
    aether_command_type type;
    uint64_t retry_at_ns; /* 0 = none scheduled */
    uint32_t backoff_ms;  /* next wait after "no responders" */
    uint32_t attempts;
    bool no_responders;   /* the last answer was "no responders" */
} pending;

/* The actor's state: touched only by nt_handle (and by create/destroy
 * while no actor runs). */
typedef struct nt_state {
    aether_transport_sink sink;
    bool bound, serving;
    natsSubscription *subs[NT_SUB_COUNT_];
    char inbox[128]; /* the reply inbox of this binding */
    pending table[AETHER_NATS_TRANSPORT_PENDING_MAX];
    uint32_t n_pending;
    uint64_t next_id;
    aether_auth_window *win[NT_WIN_COUNT_]; /* NULL without a secret */
} nt_state;

typedef struct nt {
    aether_transport base; /* first */
    /* Immutable after create: */
    natsConnection *conn;
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    aether_node_id self;
    uint64_t timeout_ms;
    bool no_leader_retry;
    aether_codec_stats *stats;
    char prefix[AETHER_CLUSTER_NAME_MAX + 16]; /* "aether.<cluster>." */
    aether_auth_sealer *sealer;                /* borrowed; NULL = no secret */
    aether_executor *pool;                     /* owned; one worker */
    aether_actor *actor;                       /* owned */
    aether_timer_id tick;
    /* Atomics: */
    int refs;            /* acq_rel; the last one frees */
    int bound_pub;       /* seq_cst; the actor's bound, for send_command; pairs with req_gate */
    int serve_want;      /* release/acquire: what serve_commands asked last */
    int gone;            /* seq_cst; set by destroy; pairs with post_gate */
    uint32_t req_gate;   /* seq_cst: send_commands between their bound_pub read and their post */
    uint32_t post_gate;  /* seq_cst: posts between their gone read and their send */
    uint32_t outstanding; /* relaxed CAS: requests accepted and not yet answered */
    uint32_t cmd_inflight; /* relaxed: cmd.> messages and their answers posted, not yet handled */
    aether_log_ratelimit map_log;  /* lock-free: refused maps, one WARN line per second */
    aether_log_ratelimit auth_log; /* lock-free: unauthenticated messages, one WARN line per second */
    aether_log_ratelimit drop_log; /* lock-free: posts refused (mailbox full), one WARN line per second */
    /* Touched by the actor only (the sealers' counters are atomic anyway): */
    aether_auth_sealer seal[NT_WIN_COUNT_];
    nt_state st;
} nt;

/* Inbound: what a handler decoded, for the actor. */
typedef struct nt_in {
    nt_win win;
    bool stamped; /* stamp holds a verified tag for win's window */
    aether_auth_stamp stamp;
    aether_codec_msg m;           /* EVT, HB, REL, CMD */
    aether_shardmap *map;         /* MAP: decoded */
    natsMsg *raw;                 /* MAP: the bytes as published (for the sink) */
    struct cmd_reply_ctx *ctx;    /* CMD: where the answer goes */
    uint64_t id;                  /* INBOX: the request id */
    bool no_responders;           /* INBOX */
} nt_in;

/* A command being served: where its reply goes. */
typedef struct cmd_reply_ctx {
    nt *t;         /* holds a reference */
    char *subject; /* NULL: the request asked for no reply */
    bool flood;    /* came on cmd.>: its answer counts in cmd_inflight */
    aether_status status;
    char reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
} cmd_reply_ctx;

typedef struct nt_out {
    nt_win fam;
    char subject[NT_SUBJECT_MAX];
    char *buf; /* owned */
    size_t len;
} nt_out;

typedef struct nt_req {
    aether_reply_fn fn;
    void *arg;
    aether_command_type type;
    char *buf; /* owned */
    size_t len;
} nt_req;

/* A lifecycle call waiting for the actor; lives on the caller's stack. */
typedef struct nt_ctl {
    sem_t done;
    aether_transport_sink sink; /* NT_BIND */
    aether_status status;       /* out */
    bool had_subs;              /* out: NT_UNBIND/NT_SYNC: something to flush */
} nt_ctl;

static nt *as_nt(aether_transport *t) { return (nt *)t; }

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* bounded: the remaining time shrinks */
        ;
}

/* The one mapping of nats.c errors. */
static aether_status map_nats(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return AETHER_OK;
    case NATS_NO_MEMORY:
        return AETHER_ENOMEM;
    case NATS_TIMEOUT:
        return AETHER_ETIMEOUT;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_MAX_PAYLOAD:
        return AETHER_EINVAL;
    default: /* closed, disconnected, stale, I/O, not permitted, ... */
        return AETHER_EUNAVAILABLE;
    }
}

/* ---- references and gates -------------------------------------------------- */

static void nt_ref(nt *t) { __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED); }

static void nt_unref(nt *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The actor and the pool are gone already (nt_destroy). */
    for (int i = 0; i < NT_WIN_COUNT_; i++)
        aether_auth_window_destroy(t->st.win[i]);
    free(t);
}

static void gate_drain(uint32_t *gate)
{
    for (uint32_t i = 0; __atomic_load_n(gate, __ATOMIC_SEQ_CST) != 0; i++) {
        AETHER_ASSERT(i < NT_GATE_SPIN_MAX);
        sched_yield();
    }
}

/* Any thread: posts msg to the actor unless the endpoint is being
 * destroyed (AETHER_ECLOSED). ring_only: the ring alone (AETHER_EFULL when full,
 * for a nats.c thread that waits, post_waiting); otherwise a full ring
 * lists it in the actor's overflow list (engine/actor.h step 1b: a domain
 * actor's call never waits and its delivery is never lost). On failure
 * the caller keeps msg->ptr. */
static aether_status nt_post_as(nt *t, const aether_msg *msg, bool ring_only)
{
    __atomic_add_fetch(&t->post_gate, 1, __ATOMIC_SEQ_CST);
    aether_status st = AETHER_ECLOSED;
    if (!__atomic_load_n(&t->gone, __ATOMIC_SEQ_CST))
        st = ring_only ? aether_actor_try_send(t->actor, msg) : aether_actor_send(t->actor, msg);
    __atomic_sub_fetch(&t->post_gate, 1, __ATOMIC_SEQ_CST);
    return st;
}

static aether_status nt_post(nt *t, const aether_msg *msg) { return nt_post_as(t, msg, false); }

static void note_dropped(nt *t, const char *what, aether_status st)
{
    uint64_t suppressed = 0;
    if (st == AETHER_EFULL && aether_log_ratelimit_allow(&t->drop_log, mono_ns(), &suppressed))
        AETHER_WARN(NT_LOG, "%s: transport mailbox full: %s dropped [%" PRIu64 " more suppressed]", t->self.str,
                    what, suppressed);
}

/* A lifecycle caller: posts c as type and waits until the actor has handled it. */
static void ctl_call(nt *t, uint16_t type, nt_ctl *c)
{
    aether_msg msg = {.type = type, .ptr = c};
    for (uint32_t i = 0;; i++) {
        aether_status st = nt_post(t, &msg);
        if (st == AETHER_OK)
            break;
        AETHER_ASSERT(st == AETHER_EFULL && i < NT_CTL_RETRY_MAX);
        sleep_ms(1);
    }
    while (sem_wait(&c->done) != 0) /* bounded: the actor posts it once handled */
        AETHER_ASSERT(errno == EINTR);
}

static void ctl_done(nt_ctl *c) { AETHER_ASSERT(sem_post(&c->done) == 0); }

static void flush(nt *t)
{
    natsStatus s = natsConnection_FlushTimeout(t->conn, AETHER_NATS_TRANSPORT_FLUSH_MS);
    if (s != NATS_OK)
        AETHER_WARN(NT_LOG, "%s: flush: %s", t->self.str, natsStatus_GetText(s));
}

static aether_status conn_ready(nt *t)
{
    return natsConnection_Status(t->conn) == NATS_CONN_STATUS_CONNECTED ? AETHER_OK
                                                                         : AETHER_EUNAVAILABLE;
}

/* ---- nats.c delivery threads: verify, decode, post -------------------------- */

static void auth_refused(nt *t, const char *subject, const char *why)
{
    if (t->stats != NULL)
        __atomic_add_fetch(&t->stats->rejected[AETHER_CODEC_REJECT_UNAUTHENTICATED], 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&t->auth_log, mono_ns(), &suppressed))
        AETHER_WARN(NT_LOG, "%s: unauthenticated message on %s dropped: %s [%" PRIu64 " more suppressed]",
                    t->self.str, subject, why, suppressed);
}

/* With a cluster secret: true if msg's tag opens (right MAC for its subject
 * and payload, fresh), with its stamp in in (the actor admits it to the
 * window). Otherwise counted, logged (rate-limited) and false; msg is left
 * to the caller. Without a secret: true. */
static bool tag_opens(nt *t, natsMsg *msg, nt_in *in)
{
    if (t->sealer == NULL)
        return true;
    aether_err why = {0};
    if (aether_auth_open_msg(t->sealer->auth, msg, wall_ms(), &in->stamp, &why) == AETHER_OK) {
        in->stamped = true;
        return true;
    }
    auth_refused(t, aether_auth_msg_subject(msg), why.msg);
    return false;
}

static bool decode_into(nt *t, natsMsg *msg, aether_codec_kind want, aether_codec_msg *m)
{
    aether_codec_limits lim;
    memset(&lim, 0, sizeof(lim));
    lim.cluster = t->cluster;
    lim.stats = t->stats;
    aether_err err = {0};
    if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &lim, m, &err) !=
        AETHER_OK) {
        if (t->stats == NULL)
            AETHER_DEBUG(NT_LOG, "%s: dropped on %s: %s", t->self.str, natsMsg_GetSubject(msg), err.msg);
        return false;
    }
    if (m->kind != want) {
        AETHER_DEBUG(NT_LOG, "%s: dropped on %s: unexpected kind %d", t->self.str, natsMsg_GetSubject(msg),
                     (int)m->kind);
        aether_codec_msg_fini(m);
        return false;
    }
    return true;
}

static void in_free(nt_in *in)
{
    if (in == NULL)
        return;
    aether_codec_msg_fini(&in->m);
    aether_shardmap_destroy(in->map);
    natsMsg_Destroy(in->raw);
    free(in);
}

static void cmd_ctx_free(cmd_reply_ctx *ctx)
{
    nt *t = ctx->t;
    free(ctx->subject);
    free(ctx);
    nt_unref(t);
}

/* True while cmd.> has NT_CMD_INFLIGHT_MAX messages queued for the actor
 * (false once destroy began: the post then fails at once). */
static bool cmd_backlog(nt *t)
{
    return __atomic_load_n(&t->cmd_inflight, __ATOMIC_RELAXED) >= NT_CMD_INFLIGHT_MAX &&
           !__atomic_load_n(&t->gone, __ATOMIC_SEQ_CST);
}

static void cmd_inflight_add(nt *t, int d)
{
    uint32_t before = __atomic_fetch_add(&t->cmd_inflight, (uint32_t)d, __ATOMIC_RELAXED);
    AETHER_ASSERT(d > 0 || before > 0);
}

/* A nats.c thread's post, which may wait: a full mailbox (or, for cmd.>,
 * NT_CMD_INFLIGHT_MAX of its own queued) holds the subscription back, so its
 * backlog stays in nats.c's pending buffer of that subscription and a
 * flood is dropped there ("slow consumer"), per subscription, as it was
 * before the actor: cmd.> never takes the room, nor the actor's time, that
 * heartbeats, keep-alives (cmd.JoinCluster) and events need. A cmd.>
 * message or answer (flood) counts in cmd_inflight until the actor has
 * handled it. */
static aether_status post_waiting(nt *t, const aether_msg *msg, nt_win win, bool flood)
{
    aether_status st = AETHER_EFULL;
    if (flood)
        cmd_inflight_add(t, 1);
    for (uint32_t i = 0; i < NT_IN_WAIT_MAX; i++) {
        if (win == NT_WIN_CMD && cmd_backlog(t)) {
            nanosleep(&(struct timespec){.tv_nsec = NT_IN_WAIT_NS}, NULL);
            continue;
        }
        st = nt_post_as(t, msg, true);
        if (st != AETHER_EFULL)
            break;
        nanosleep(&(struct timespec){.tv_nsec = NT_IN_WAIT_NS}, NULL);
    }
    if (st == AETHER_EFULL) /* waited NT_IN_WAIT_MAX: list it rather than lose it */
        st = nt_post(t, msg);
    if (flood && st != AETHER_OK)
        cmd_inflight_add(t, -1);
    return st;
}

/* Hands in to the actor; on failure frees it (a command's context goes with
 * it: its requester times out). */
static void post_in(nt *t, nt_in *in)
{
    aether_msg msg = {.type = NT_IN, .arg32 = (uint32_t)in->win, .ptr = in};
    aether_status st = post_waiting(t, &msg, in->win, in->win == NT_WIN_CMD);
    if (st == AETHER_OK)
        return;
    note_dropped(t, "an inbound message", st);
    if (in->ctx != NULL)
        cmd_ctx_free(in->ctx);
    in_free(in);
}

/* Evt, hb and rel: the same steps, another kind. */
static void on_plain_msg(nt *t, natsMsg *msg, nt_win win, aether_codec_kind kind)
{
    nt_in *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        natsMsg_Destroy(msg);
        return;
    }
    in->win = win;
    if (!tag_opens(t, msg, in) || !decode_into(t, msg, kind, &in->m)) {
        natsMsg_Destroy(msg);
        free(in);
        return;
    }
    natsMsg_Destroy(msg);
    post_in(t, in);
}

static void on_evt_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    on_plain_msg(closure, msg, NT_WIN_EVT, AETHER_CODEC_EVENT);
}

static void on_hb_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    on_plain_msg(closure, msg, NT_WIN_HB, AETHER_CODEC_HEARTBEAT);
}

static void on_rel_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    on_plain_msg(closure, msg, NT_WIN_REL, AETHER_CODEC_RELEASE);
}

/* Whether this thread has lowered its priority (on_map_msg). */
static __thread bool map_thread_lowered;

static void on_map_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    /* Decoding whole maps is bulk work (issue 16): the map subscription's
     * own delivery thread (nats.c starts one per subscription: no global
     * delivery pool here) yields the CPU to the threads of keep-alives,
     * heartbeats and renewals, as the assign actor's pool does. Once. */
    if (!map_thread_lowered) {
        map_thread_lowered = true;
        (void)aether_thread_lower_priority(AETHER_THREAD_BULK_NICE); /* failing: only slower */
    }
    nt_in *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        natsMsg_Destroy(msg);
        return;
    }
    in->win = NT_WIN_MAP;
    if (!tag_opens(t, msg, in)) {
        natsMsg_Destroy(msg);
        free(in);
        return;
    }
    aether_err err = {0};
    if (aether_shardmap_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &in->map, NULL,
                                     &err) != AETHER_OK) {
        natsMsg_Destroy(msg);
        free(in);
        /* shardmap_codec does not classify its refusals: counted as bad_field. */
        if (t->stats != NULL)
            __atomic_add_fetch(&t->stats->rejected[AETHER_CODEC_REJECT_BAD_FIELD], 1, __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&t->map_log, mono_ns(), &suppressed))
            AETHER_WARN(NT_LOG, "%s: map dropped: %s [%" PRIu64 " more suppressed]", t->self.str, err.msg,
                        suppressed);
        return;
    }
    in->raw = msg; /* the sink gets the bytes as published */
    post_in(t, in);
}

static void cmd_reply_post(cmd_reply_ctx *ctx, aether_status status, const char *reason, nt_win wait_as);

/* cmd.JoinCluster (keep-alives and joins) has a subscription of its own,
 * so a flood of any other command, which fills the cmd.> subscription's
 * pending limit (nats.c drops past it: "Slow Consumer"), never drops a
 * keep-alive: serving rights rest on their acknowledgements. cmd.> sees the
 * JoinCluster requests too (a wildcard cannot leave one subject out) and
 * drops them by subject, before any decoding. */
#define NT_JOIN_SUFFIX "cmd.JoinCluster"

static void serve_cmd(nt *t, natsMsg *msg, nt_win win)
{
    cmd_reply_ctx *ctx = calloc(1, sizeof(*ctx));
    nt_in *in = calloc(1, sizeof(*in));
    const char *reply = natsMsg_GetReply(msg);
    if (ctx == NULL || in == NULL ||
        (reply != NULL && reply[0] != '\0' && (ctx->subject = strdup(reply)) == NULL)) {
        free(ctx);
        free(in);
        natsMsg_Destroy(msg); /* the requester times out */
        return;
    }
    ctx->t = t;
    ctx->flood = win == NT_WIN_CMD;
    nt_ref(t);
    in->win = win;
    /* The subject names the command: a payload of another type on it (a
     * JoinCluster sent on cmd.LeaveCluster to take the keep-alives'
     * budget, or the reverse to fill their subscription) is refused. */
    char want[64] = "";
    const char *subj = natsMsg_GetSubject(msg);
    size_t plen = strlen(t->prefix);
    if (subj != NULL && strncmp(subj, t->prefix, plen) == 0 && strncmp(subj + plen, "cmd.", 4) == 0)
        snprintf(want, sizeof(want), "%s", subj + plen + 4);
    if (!tag_opens(t, msg, in)) {
        natsMsg_Destroy(msg);
        free(in);
        cmd_reply_post(ctx, AETHER_EPERM, "unauthenticated: this cluster has a secret (cluster_secret_file)", win);
        return;
    }
    bool ok = decode_into(t, msg, AETHER_CODEC_COMMAND, &in->m);
    natsMsg_Destroy(msg);
    if (!ok) {
        free(in);
        cmd_reply_post(ctx, AETHER_EINVAL, "malformed command", win);
        return;
    }
    if (strcmp(want, aether_command_type_name(in->m.u.command.type)) != 0) {
        in_free(in);
        cmd_reply_post(ctx, AETHER_EINVAL, "the command's type is not the one its subject names", win);
        return;
    }
    in->ctx = ctx;
    post_in(t, in);
}

static void on_join_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    serve_cmd(closure, msg, NT_WIN_JOIN);
}

static void on_cmd_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    const char *subj = natsMsg_GetSubject(msg);
    size_t plen = strlen(t->prefix);
    if (subj != NULL && strncmp(subj, t->prefix, plen) == 0 && strcmp(subj + plen, NT_JOIN_SUFFIX) == 0) {
        natsMsg_Destroy(msg); /* on_join_msg serves it */
        return;
    }
    serve_cmd(t, msg, NT_WIN_CMD);
}

static void on_inbox_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = subj != NULL ? strrchr(subj, '.') : NULL;
    char *end = NULL;
    uint64_t id = dot != NULL ? strtoull(dot + 1, &end, 10) : 0;
    if (dot == NULL || end == dot + 1 || *end != '\0') {
        natsMsg_Destroy(msg);
        return;
    }
    nt_in *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        natsMsg_Destroy(msg);
        return; /* the request times out */
    }
    in->win = NT_WIN_INBOX;
    in->id = id;
    if (natsMsg_IsNoResponders(msg)) {
        in->no_responders = true; /* from the server: carries no tag */
    } else if (!tag_opens(t, msg, in) || !decode_into(t, msg, AETHER_CODEC_REPLY, &in->m)) {
        natsMsg_Destroy(msg);
        free(in);
        return; /* the request times out */
    }
    natsMsg_Destroy(msg);
    post_in(t, in);
}

/* ---- any thread: a served command's answer -------------------------------- */

/* The reply_fn given to on_command (and used for refusals): any thread,
 * once. Posts the answer to the actor, which sends it; after destroy (or
 * with the mailbox full) it is dropped and the requester times out.
 * wait_as: NT_WIN_COUNT_ never waits (an actor's call); a family waits as
 * post_waiting does (a refusal made on that subscription's nats.c thread). */
static void cmd_reply_post(cmd_reply_ctx *ctx, aether_status status, const char *reason, nt_win wait_as)
{
    nt *t = ctx->t;
    if (ctx->subject == NULL) {
        cmd_ctx_free(ctx);
        return;
    }
    ctx->status = status;
    snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason != NULL ? reason : "");
    for (char *p = ctx->reason; *p != '\0'; p++) /* bounded: the buffer */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    aether_msg msg = {.type = NT_REPLY, .ptr = ctx};
    bool flood = ctx->flood; /* ctx is the actor's once posted */
    aether_status st = AETHER_OK;
    if (wait_as != NT_WIN_COUNT_) {
        st = post_waiting(t, &msg, wait_as, flood);
    } else {
        if (flood)
            cmd_inflight_add(t, 1);
        st = nt_post(t, &msg);
        if (flood && st != AETHER_OK)
            cmd_inflight_add(t, -1);
    }
    if (st != AETHER_OK) {
        note_dropped(t, "a command reply", st);
        cmd_ctx_free(ctx);
    }
}

static void cmd_reply(void *arg, aether_status status, const char *reason)
{
    cmd_reply_post(arg, status, reason, NT_WIN_COUNT_);
}

/* ---- the actor --------------------------------------------------------------- */

/* Actor only. Sends buf on subj (reply: the reply subject, or NULL), sealed
 * when the cluster has a secret with the counter of family fam: the tag
 * covers subj and the bytes. */
static natsStatus nt_send(nt *t, nt_win fam, const char *subj, const char *reply, const char *buf, size_t len)
{
    if (t->sealer == NULL)
        return reply != NULL ? natsConnection_PublishRequest(t->conn, subj, reply, buf, (int)len)
                             : natsConnection_Publish(t->conn, subj, buf, (int)len);
    char tag[AETHER_AUTH_TAG_MAX];
    if (aether_auth_seal(&t->seal[fam], subj, buf, len, wall_ms(), tag, sizeof(tag)) != AETHER_OK)
        return NATS_ERR;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subj, reply, buf, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, AETHER_AUTH_HEADER, tag);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(t->conn, m);
    natsMsg_Destroy(m);
    return s;
}

static void on_sub_complete(void *closure) { nt_unref(closure); }

/* Actor only. Subscribes prefix+suffix. The subscription holds a reference
 * on t until nats.c reports it complete. */
static natsStatus sub_open(nt *t, natsSubscription **out, const char *prefix, const char *suffix,
                           natsMsgHandler h)
{
    char subj[NT_SUBJECT_MAX];
    snprintf(subj, sizeof(subj), "%s%s", prefix, suffix);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_Subscribe(&sub, t->conn, subj, h, t);
    if (s != NATS_OK) {
        AETHER_WARN(NT_LOG, "%s: subscribe %s: %s", t->self.str, subj, natsStatus_GetText(s));
        return s;
    }
    nt_ref(t);
    s = natsSubscription_SetOnCompleteCB(sub, on_sub_complete, t);
    if (s != NATS_OK) {
        /* Cannot know when the handler is done: keep the reference (leak
         * the endpoint rather than risk a use after free). */
        AETHER_WARN(NT_LOG, "%s: completion callback on %s: %s", t->self.str, subj, natsStatus_GetText(s));
        s = NATS_OK;
    }
    *out = sub;
    return s;
}

/* Actor only. Unsubscribes slots [from, to); true if any was open. */
static bool subs_close(nt *t, int from, int to)
{
    bool any = false;
    for (int i = from; i < to; i++) {
        natsSubscription *sub = t->st.subs[i];
        if (sub == NULL)
            continue;
        (void)natsSubscription_Unsubscribe(sub); /* fails harmlessly on a closed connection */
        natsSubscription_Destroy(sub);
        t->st.subs[i] = NULL;
        any = true;
    }
    return any;
}

/* Removes and returns the entry with id. */
static bool pending_take(nt_state *s, uint64_t id, pending *out)
{
    for (uint32_t i = 0; i < s->n_pending; i++) { /* bounded: the table */
        if (s->table[i].id == id) {
            *out = s->table[i];
            s->table[i] = s->table[--s->n_pending];
            return true;
        }
    }
    return false;
}

/* Calls p's reply_fn and releases its slot. */
static void pending_answer(nt *t, pending *p, aether_status status, const char *reason)
{
    p->fn(p->arg, status, reason);
    free(p->req);
    p->req = NULL;
    uint32_t before = __atomic_fetch_sub(&t->outstanding, 1, __ATOMIC_RELAXED);
    AETHER_ASSERT(before > 0);
}

/* The replay window of in's family admits its stamp (with a secret). */
static bool admitted(nt *t, const nt_in *in, const char *subject)
{
    if (!in->stamped)
        return t->sealer == NULL || in->no_responders;
    aether_err why = {0};
    if (aether_auth_window_admit(t->st.win[in->win], &in->stamp, &why) == AETHER_OK)
        return true;
    auth_refused(t, subject, why.msg);
    return false;
}

static void handle_inbox(nt *t, nt_in *in)
{
    nt_state *s = &t->st;
    if (!s->bound)
        return;
    if (in->no_responders) {
        if (t->no_leader_retry) {
            /* Nobody serves commands (an election is under way): try again
             * after a backoff, until the deadline (NT_TICK). */
            uint64_t now = mono_ns();
            for (uint32_t i = 0; i < s->n_pending; i++) { /* bounded: the table */
                pending *p = &s->table[i];
                if (p->id != in->id)
                    continue;
                p->no_responders = true;
                if (p->req != NULL && now + (uint64_t)p->backoff_ms * 1000000u < p->deadline_ns) {
                    p->retry_at_ns = now + (uint64_t)p->backoff_ms * 1000000u;
                    p->backoff_ms = p->backoff_ms * 2u > NT_RETRY_MAX_MS ? NT_RETRY_MAX_MS : p->backoff_ms * 2u;
                    return;
                }
                break;
            }
        }
        pending p;
        if (pending_take(s, in->id, &p))
            pending_answer(t, &p, AETHER_ENOTLEADER, "no leader is serving commands");
        return;
    }
    if (!admitted(t, in, "reply inbox"))
        return; /* the request times out */
    pending p;
    if (pending_take(s, in->id, &p))
        pending_answer(t, &p, in->m.u.reply.status, in->m.u.reply.reason);
}

static void handle_in(nt *t, nt_in *in)
{
    nt_state *s = &t->st;
    const aether_transport_sink *k = &s->sink;
    switch (in->win) {
    case NT_WIN_EVT:
        if (admitted(t, in, "evt") && s->bound && k->on_event != NULL)
            k->on_event(k->arg, in->m.u.event);
        break;
    case NT_WIN_HB:
        if (admitted(t, in, "hb") && s->bound && k->on_heartbeat != NULL)
            k->on_heartbeat(k->arg, &in->m.u.heartbeat.node, in->m.u.heartbeat.incarnation);
        break;
    case NT_WIN_MAP:
        if (admitted(t, in, "map") && s->bound && k->on_map != NULL)
            k->on_map(k->arg, in->map, natsMsg_GetData(in->raw), (size_t)natsMsg_GetDataLength(in->raw));
        break;
    case NT_WIN_REL:
        if (admitted(t, in, "rel") && s->bound && s->serving && k->on_release != NULL)
            k->on_release(k->arg, &in->m.u.release);
        break;
    case NT_WIN_CMD:
    case NT_WIN_JOIN: {
        cmd_reply_ctx *ctx = in->ctx;
        in->ctx = NULL;
        if (!admitted(t, in, in->win == NT_WIN_JOIN ? NT_JOIN_SUFFIX : "cmd"))
            cmd_reply(ctx, AETHER_EPERM, "unauthenticated: this cluster has a secret (cluster_secret_file)");
        else if (s->bound && s->serving && k->on_command != NULL)
            k->on_command(k->arg, &in->m.u.command, cmd_reply, ctx);
        else
            cmd_reply(ctx, AETHER_ENOTLEADER, "not serving commands");
        break;
    }
    case NT_WIN_INBOX:
        handle_inbox(t, in);
        break;
    default:
        AETHER_ASSERT(!"unknown subscription family");
    }
}

static void handle_reply(nt *t, cmd_reply_ctx *ctx)
{
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    if (aether_codec_encode_reply(ctx->status, ctx->reason, &buf, &len, &err) == AETHER_OK) {
        natsStatus s = nt_send(t, NT_WIN_INBOX, ctx->subject, NULL, buf, len);
        if (s != NATS_OK)
            AETHER_DEBUG(NT_LOG, "%s: reply not sent: %s", t->self.str, natsStatus_GetText(s));
    } else {
        AETHER_WARN(NT_LOG, "%s: reply not encoded: %s", t->self.str, err.msg);
    }
    free(buf);
}

static void handle_request(nt *t, nt_req *r)
{
    nt_state *s = &t->st;
    pending p = {.fn = r->fn, .arg = r->arg, .type = r->type, .backoff_ms = NT_RETRY_FIRST_MS, .attempts = 1};
    /* The gate of send_command (DESIGN) queues every request before the
     * NT_UNBIND that could end the binding it saw. */
    AETHER_ASSERT(s->bound);
    AETHER_ASSERT(s->n_pending < AETHER_NATS_TRANSPORT_PENDING_MAX); /* outstanding bounds it */
    p.id = ++s->next_id;
    p.deadline_ns = mono_ns() + t->timeout_ms * 1000000u;
    char subj[NT_SUBJECT_MAX], reply[NT_SUBJECT_MAX];
    snprintf(subj, sizeof(subj), "%scmd.%s", t->prefix, aether_command_type_name(r->type));
    snprintf(reply, sizeof(reply), "%s.%" PRIu64, s->inbox, p.id);
    natsStatus ns = conn_ready(t) == AETHER_OK
                        ? nt_send(t, r->type == AETHER_CMD_JOIN_CLUSTER ? NT_WIN_JOIN : NT_WIN_CMD, subj, reply,
                                  r->buf, r->len)
                        : NATS_CONNECTION_DISCONNECTED;
    if (ns != NATS_OK) {
        char why[128];
        snprintf(why, sizeof(why), "request not sent: %s", natsStatus_GetText(ns));
        pending_answer(t, &p, map_nats(ns), why);
        return;
    }
    if (t->no_leader_retry) { /* the entry keeps the request to send it again */
        p.req = r->buf;
        p.req_len = r->len;
        r->buf = NULL;
    }
    s->table[s->n_pending++] = p;
}

/* Times out what is past its deadline (ENOTLEADER if nobody ever served
 * commands, else ETIMEOUT) and sends again what is due for a retry. */
static void sweep(nt *t, uint64_t now)
{
    nt_state *s = &t->st;
    if (!s->bound)
        return;
    for (uint32_t i = 0; i < s->n_pending;) { /* bounded: the table */
        pending *p = &s->table[i];
        if (p->deadline_ns <= now) {
            pending due = *p;
            s->table[i] = s->table[--s->n_pending];
            if (due.no_responders) {
                char why[96];
                snprintf(why, sizeof(why), "no leader answered within %llu ms (%u attempts)",
                         (unsigned long long)t->timeout_ms, due.attempts);
                pending_answer(t, &due, AETHER_ENOTLEADER, why);
            } else {
                pending_answer(t, &due, AETHER_ETIMEOUT, "no reply from the leader in time");
            }
            continue;
        }
        if (p->retry_at_ns != 0 && p->retry_at_ns <= now) {
            char subj[NT_SUBJECT_MAX], reply[NT_SUBJECT_MAX];
            snprintf(subj, sizeof(subj), "%scmd.%s", t->prefix, aether_command_type_name(p->type));
            snprintf(reply, sizeof(reply), "%s.%" PRIu64, s->inbox, p->id);
            /* A failure here (disconnected) leaves the request to its deadline. */
            if (conn_ready(t) == AETHER_OK)
                (void)nt_send(t, p->type == AETHER_CMD_JOIN_CLUSTER ? NT_WIN_JOIN : NT_WIN_CMD, subj, reply,
                              p->req, p->req_len);
            p->attempts++;
            p->retry_at_ns = 0;
        }
        i++;
    }
}

/* Makes serving what serve_commands asked last. */
static void serve_apply(nt *t)
{
    nt_state *s = &t->st;
    bool want = __atomic_load_n(&t->serve_want, __ATOMIC_ACQUIRE) != 0;
    if (!s->bound || want == s->serving)
        return;
    if (!want) {
        s->serving = false;
        (void)subs_close(t, NT_SUB_CMD, NT_SUB_COUNT_);
        return;
    }
    natsStatus ns = sub_open(t, &s->subs[NT_SUB_CMD], t->prefix, "cmd.>", on_cmd_msg);
    if (ns == NATS_OK)
        ns = sub_open(t, &s->subs[NT_SUB_REL], t->prefix, "rel", on_rel_msg);
    if (ns == NATS_OK)
        ns = sub_open(t, &s->subs[NT_SUB_JOIN], t->prefix, NT_JOIN_SUFFIX, on_join_msg);
    if (ns != NATS_OK) { /* tried again at the next tick */
        (void)subs_close(t, NT_SUB_CMD, NT_SUB_COUNT_);
        return;
    }
    s->serving = true;
}

static void handle_bind(nt *t, nt_ctl *c)
{
    nt_state *s = &t->st;
    if (s->bound) {
        c->status = AETHER_ESTATE;
        return;
    }
    natsInbox *inbox = NULL;
    natsStatus ns = natsInbox_Create(&inbox);
    if (ns != NATS_OK) {
        c->status = map_nats(ns);
        return;
    }
    char inbox_sub[160];
    snprintf(inbox_sub, sizeof(inbox_sub), "%s.*", (const char *)inbox);
    snprintf(s->inbox, sizeof(s->inbox), "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);
    /* The sink first: a message may arrive as soon as we subscribe (it
     * queues behind this message anyway). */
    s->sink = c->sink;
    ns = sub_open(t, &s->subs[NT_SUB_EVT], t->prefix, "evt.>", on_evt_msg);
    if (ns == NATS_OK)
        ns = sub_open(t, &s->subs[NT_SUB_MAP], t->prefix, "map", on_map_msg);
    if (ns == NATS_OK)
        ns = sub_open(t, &s->subs[NT_SUB_HB], t->prefix, "hb.>", on_hb_msg);
    if (ns == NATS_OK)
        ns = sub_open(t, &s->subs[NT_SUB_INBOX], inbox_sub, "", on_inbox_msg);
    if (ns != NATS_OK) {
        (void)subs_close(t, 0, NT_SUB_COUNT_);
        memset(&s->sink, 0, sizeof(s->sink));
        c->status = map_nats(ns);
        return;
    }
    s->bound = true;
    __atomic_store_n(&t->bound_pub, 1, __ATOMIC_SEQ_CST);
    serve_apply(t); /* a serve_commands(true) made before bind */
    c->status = AETHER_OK;
}

static void handle_unbind(nt *t, nt_ctl *c)
{
    nt_state *s = &t->st;
    s->bound = false;
    s->serving = false;
    __atomic_store_n(&t->serve_want, 0, __ATOMIC_RELEASE); /* a rebind does not serve */
    while (s->n_pending > 0) { /* bounded: the table shrinks */
        pending p = s->table[--s->n_pending];
        pending_answer(t, &p, AETHER_ECLOSED, "transport unbound");
    }
    memset(&s->sink, 0, sizeof(s->sink));
    c->had_subs = subs_close(t, 0, NT_SUB_COUNT_);
    c->status = AETHER_OK;
}

static void nt_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    (void)self;
    nt *t = state;
    switch (msg->type) {
    case NT_IN: {
        nt_in *in = msg->ptr;
        bool flood = in->win == NT_WIN_CMD;
        handle_in(t, in);
        in_free(in);
        if (flood)
            cmd_inflight_add(t, -1);
        break;
    }
    case NT_PUBLISH: {
        nt_out *o = msg->ptr;
        /* Not connected (reconnecting, closed): dropped, so nothing is
         * buffered by nats.c and sent late. */
        if (conn_ready(t) == AETHER_OK) {
            natsStatus ns = nt_send(t, o->fam, o->subject, NULL, o->buf, o->len);
            if (ns != NATS_OK)
                AETHER_DEBUG(NT_LOG, "%s: publish on %s: %s", t->self.str, o->subject, natsStatus_GetText(ns));
        }
        free(o->buf);
        free(o);
        break;
    }
    case NT_REQUEST: {
        nt_req *r = msg->ptr;
        handle_request(t, r);
        free(r->buf);
        free(r);
        break;
    }
    case NT_REPLY: {
        cmd_reply_ctx *ctx = msg->ptr;
        bool flood = ctx->flood;
        handle_reply(t, ctx);
        cmd_ctx_free(ctx);
        if (flood)
            cmd_inflight_add(t, -1);
        break;
    }
    case NT_SERVE:
        serve_apply(t);
        break;
    case NT_TICK:
        sweep(t, mono_ns());
        serve_apply(t);
        break;
    case NT_BIND:
        handle_bind(t, msg->ptr);
        ctl_done(msg->ptr);
        break;
    case NT_UNBIND:
        handle_unbind(t, msg->ptr);
        ctl_done(msg->ptr);
        break;
    case NT_SYNC: {
        nt_ctl *c = msg->ptr;
        c->had_subs = t->st.bound;
        c->status = AETHER_OK;
        ctl_done(c);
        break;
    }
    default:
        AETHER_ASSERT(!"unknown transport message");
    }
}

/* Messages never handled (the actor destroyed with a non-empty mailbox):
 * only posts that raced destroy; no lifecycle call can be among them. */
static void nt_drop(void *state, const aether_msg *msg)
{
    (void)state;
    switch (msg->type) {
    case NT_IN: {
        nt_in *in = msg->ptr;
        if (in->ctx != NULL)
            cmd_ctx_free(in->ctx);
        in_free(in);
        break;
    }
    case NT_PUBLISH: {
        nt_out *o = msg->ptr;
        free(o->buf);
        free(o);
        break;
    }
    case NT_REQUEST: {
        nt_req *r = msg->ptr;
        free(r->buf);
        free(r);
        break;
    }
    case NT_REPLY:
        cmd_ctx_free(msg->ptr);
        break;
    case NT_SERVE:
    case NT_TICK:
        break;
    default:
        AETHER_ASSERT(!"a lifecycle call left in the transport mailbox");
    }
}

/* ---- operations (callers' threads) ------------------------------------------ */

static aether_status nt_bind(aether_transport *tp, const aether_transport_sink *sink)
{
    nt *t = as_nt(tp);
    nt_ctl c = {.sink = *sink, .status = AETHER_EIO};
    AETHER_ASSERT(sem_init(&c.done, 0, 0) == 0);
    ctl_call(t, NT_BIND, &c);
    sem_destroy(&c.done);
    if (c.status == AETHER_OK)
        flush(t); /* the server has the SUBs: a peer's later publication reaches the sink */
    return c.status;
}

static void nt_unbind(aether_transport *tp)
{
    nt *t = as_nt(tp);
    /* Close the gate of send_command, wait for those inside it: every
     * request accepted so far is queued before NT_UNBIND. */
    __atomic_store_n(&t->bound_pub, 0, __ATOMIC_SEQ_CST);
    gate_drain(&t->req_gate);
    nt_ctl c = {.status = AETHER_EIO};
    AETHER_ASSERT(sem_init(&c.done, 0, 0) == 0);
    ctl_call(t, NT_UNBIND, &c);
    sem_destroy(&c.done);
    /* Once the server has the UNSUBs, requests see "no responders" at once. */
    if (c.had_subs && conn_ready(t) == AETHER_OK)
        flush(t);
}

aether_status aether_nats_transport_sync(aether_transport *tp)
{
    nt *t = as_nt(tp);
    nt_ctl c = {.status = AETHER_EIO};
    AETHER_ASSERT(sem_init(&c.done, 0, 0) == 0);
    ctl_call(t, NT_SYNC, &c);
    sem_destroy(&c.done);
    if (!c.had_subs)
        return AETHER_ECLOSED;
    natsStatus s = natsConnection_FlushTimeout(t->conn, AETHER_NATS_TRANSPORT_FLUSH_MS);
    return map_nats(s);
}

/* Posts buf (taken: freed here on failure) for a publish on prefix+suffix. */
static aether_status publish(nt *t, nt_win fam, const char *suffix, char *buf, size_t len)
{
    aether_status st = conn_ready(t);
    nt_out *o = st == AETHER_OK ? malloc(sizeof(*o)) : NULL;
    if (st == AETHER_OK && o == NULL)
        st = AETHER_ENOMEM;
    if (st != AETHER_OK) {
        free(buf);
        return st;
    }
    o->fam = fam;
    snprintf(o->subject, sizeof(o->subject), "%s%s", t->prefix, suffix);
    o->buf = buf;
    o->len = len;
    aether_msg msg = {.type = NT_PUBLISH, .ptr = o};
    st = nt_post(t, &msg);
    if (st != AETHER_OK) {
        note_dropped(t, "a publish", st);
        free(o->buf);
        free(o);
    }
    return st;
}

static aether_status nt_publish_event(aether_transport *tp, const aether_event *e)
{
    nt *t = as_nt(tp);
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    aether_status st = aether_codec_encode_event(e, &buf, &len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: event not encoded: %s", t->self.str, err.msg);
        return st;
    }
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "evt.%s", aether_event_type_name(e->type));
    return publish(t, NT_WIN_EVT, suffix, buf, len);
}

static aether_status nt_publish_map(aether_transport *tp, const aether_shardmap *m)
{
    nt *t = as_nt(tp);
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    aether_status st = aether_shardmap_codec_encode(m, 0, &buf, &len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: map not encoded: %s", t->self.str, err.msg);
        return st;
    }
    return publish(t, NT_WIN_MAP, "map", buf, len);
}

/* The leader encoded the map once for the state store: the same bytes go
 * out (copied: the caller keeps json). */
static aether_status nt_publish_map_json(aether_transport *tp, const aether_shardmap *m, const char *json,
                                         size_t len)
{
    (void)m;
    char *buf = malloc(len + 1);
    if (buf == NULL)
        return AETHER_ENOMEM;
    memcpy(buf, json, len);
    buf[len] = '\0';
    return publish(as_nt(tp), NT_WIN_MAP, "map", buf, len);
}

static void header(nt *t, const aether_node_id *node, aether_term term, aether_codec_header *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->cluster, sizeof(h->cluster), "%s", t->cluster);
    h->term = term;
    h->node = *node;
    h->ts_ms = wall_ms();
}

static aether_status nt_publish_heartbeat(aether_transport *tp, const aether_node_id *node, uint64_t incarnation)
{
    nt *t = as_nt(tp);
    aether_codec_header h;
    header(t, node, 0, &h);
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    aether_status st = aether_codec_encode_heartbeat(&h, incarnation, &buf, &len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: heartbeat not encoded: %s", t->self.str, err.msg);
        return st;
    }
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "hb.%s", node->str);
    return publish(t, NT_WIN_HB, suffix, buf, len);
}

static aether_status nt_send_release(aether_transport *tp, const aether_release_ack *ack)
{
    nt *t = as_nt(tp);
    aether_codec_header h;
    header(t, &ack->from, ack->term, &h);
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    aether_status st = aether_codec_encode_release(&h, ack, &buf, &len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: release not encoded: %s", t->self.str, err.msg);
        return st;
    }
    return publish(t, NT_WIN_REL, "rel", buf, len);
}

/* Takes a slot of the AETHER_NATS_TRANSPORT_PENDING_MAX outstanding requests. */
static bool outstanding_take(nt *t)
{
    uint32_t n = __atomic_load_n(&t->outstanding, __ATOMIC_RELAXED);
    do { /* bounded: fails only when another sender took or gave a slot */
        if (n >= AETHER_NATS_TRANSPORT_PENDING_MAX)
            return false;
    } while (!__atomic_compare_exchange_n(&t->outstanding, &n, n + 1, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return true;
}

static aether_status nt_send_command(aether_transport *tp, const aether_command *c, aether_reply_fn reply,
                                     void *reply_arg)
{
    nt *t = as_nt(tp);
    aether_status st = conn_ready(t);
    if (st != AETHER_OK)
        return st;
    nt_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return AETHER_ENOMEM;
    aether_err err = {0};
    st = aether_codec_encode_command(c, wall_ms(), &r->buf, &r->len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: command not encoded: %s", t->self.str, err.msg);
        free(r);
        return st;
    }
    r->fn = reply;
    r->arg = reply_arg;
    r->type = c->type;
    aether_msg msg = {.type = NT_REQUEST, .ptr = r};
    /* The gate (see DESIGN): read bound_pub and post inside it. */
    __atomic_add_fetch(&t->req_gate, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&t->bound_pub, __ATOMIC_SEQ_CST))
        st = AETHER_ECLOSED;
    else if (!outstanding_take(t))
        st = AETHER_EFULL;
    else if ((st = nt_post(t, &msg)) != AETHER_OK)
        __atomic_sub_fetch(&t->outstanding, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&t->req_gate, 1, __ATOMIC_SEQ_CST);
    if (st != AETHER_OK) {
        free(r->buf);
        free(r);
    }
    return st;
}

static aether_status nt_serve_commands(aether_transport *tp, bool on)
{
    nt *t = as_nt(tp);
    __atomic_store_n(&t->serve_want, on ? 1 : 0, __ATOMIC_RELEASE);
    if (!__atomic_load_n(&t->bound_pub, __ATOMIC_SEQ_CST))
        return on ? AETHER_ECLOSED : AETHER_OK;
    aether_msg msg = {.type = NT_SERVE};
    aether_status st = nt_post(t, &msg);
    /* Full: the want is stored, the next tick applies it (state supersedes state). */
    return st == AETHER_EFULL ? AETHER_OK : st;
}

static void nt_destroy(aether_transport *tp)
{
    nt *t = as_nt(tp);
    nt_unbind(tp);
    __atomic_store_n(&t->gone, 1, __ATOMIC_SEQ_CST);
    gate_drain(&t->post_gate); /* no post reaches the actor any more */
    aether_actor_close(t->actor);
    aether_pool_stop(t->pool);
    aether_actor_destroy(t->actor);
    aether_executor_destroy(t->pool);
    t->actor = NULL;
    t->pool = NULL;
    nt_unref(t);
}

static const aether_transport_ops nats_ops = {
    .bind = nt_bind,
    .unbind = nt_unbind,
    .publish_event = nt_publish_event,
    .publish_map = nt_publish_map,
    .publish_map_json = nt_publish_map_json,
    .publish_heartbeat = nt_publish_heartbeat,
    .send_command = nt_send_command,
    .send_release = nt_send_release,
    .serve_commands = nt_serve_commands,
    .destroy = nt_destroy,
};

aether_status aether_nats_transport_create(const aether_nats_transport_config *cfg, aether_transport **out,
                                           aether_err *err)
{
    if (cfg == NULL || out == NULL || cfg->conn == NULL)
        return aether_err_set(err, AETHER_EINVAL, "config and connection are required");
    if (cfg->cluster == NULL)
        return aether_err_set(err, AETHER_EINVAL, "cluster: missing");
    aether_status st = aether_cluster_name_validate(cfg->cluster, err);
    if (st != AETHER_OK)
        return aether_err_prefix(err, "cluster: ");
    if (cfg->node.len == 0)
        return aether_err_set(err, AETHER_EINVAL, "node: missing");
    nt *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    t->base.ops = &nats_ops;
    t->conn = cfg->conn;
    snprintf(t->cluster, sizeof(t->cluster), "%s", cfg->cluster);
    snprintf(t->prefix, sizeof(t->prefix), "aether.%s.", cfg->cluster);
    t->self = cfg->node;
    t->timeout_ms = cfg->cmd_timeout_ms ? cfg->cmd_timeout_ms : AETHER_NATS_TRANSPORT_TIMEOUT_MS_DEFAULT;
    t->no_leader_retry = cfg->no_leader_retry;
    t->stats = cfg->stats;
    t->sealer = cfg->sealer;
    t->refs = 1;
    aether_log_ratelimit_init(&t->map_log, 1000000000u);
    aether_log_ratelimit_init(&t->auth_log, 1000000000u);
    aether_log_ratelimit_init(&t->drop_log, 1000000000u);
    for (int i = 0; i < NT_WIN_COUNT_ && t->sealer != NULL; i++) {
        aether_auth_sealer_init(&t->seal[i], t->sealer->auth, &t->sealer->sender, t->sealer->epoch);
        if (aether_auth_window_create(&t->st.win[i]) != AETHER_OK)
            goto nomem;
    }
    aether_pool_config pc = {.workers = 1, .max_actors = 2, .spin_iterations = 200};
    if (aether_pool_create(&pc, &t->pool) != AETHER_OK)
        goto nomem;
    char name[AETHER_ACTOR_NAME_MAX];
    snprintf(name, sizeof(name), "nats_transport/%.40s", t->self.str);
    aether_actor_config ac = {.name = name, .mailbox_capacity = NT_MAILBOX_CAPACITY, .handle = nt_handle,
                              .drop = nt_drop, .state = t};
    if (aether_actor_create(t->pool, &ac, &t->actor) != AETHER_OK)
        goto nomem;
    if (aether_pool_start(t->pool) != AETHER_OK)
        goto nomem;
    aether_msg tick = {.type = NT_TICK};
    uint64_t period_ns = (uint64_t)AETHER_NATS_TRANSPORT_SWEEP_MS * 1000000u;
    if (aether_timer_start(t->actor, period_ns, period_ns, &tick, &t->tick) != AETHER_OK)
        goto nomem;
    *out = &t->base;
    return AETHER_OK;
nomem:
    if (t->pool != NULL)
        aether_pool_stop(t->pool);
    aether_actor_destroy(t->actor);
    aether_executor_destroy(t->pool);
    for (int i = 0; i < NT_WIN_COUNT_; i++)
        aether_auth_window_destroy(t->st.win[i]);
    free(t);
    return aether_err_set(err, AETHER_ENOMEM, "out of memory (or no thread for the transport actor)");
}
