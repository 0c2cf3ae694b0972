/*
 * nats_transport.c: the aether_transport on core NATS (transport layer).
 * See nats_transport.h for the subjects, the semantics and the threading.
 *
 * Locks: cb_mu (held while calling the sink or a reply_fn, and to change
 * the bound flag) is taken before mu (everything else: subscriptions,
 * the pending table, the sweeper). bound is written under both, so either
 * lock suffices to read it.
 */
#include "nats_transport.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "nats_auth.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"

#define NT_LOG "nats_transport"
#define NT_SUBJECT_MAX 256u

typedef struct pending {
    uint64_t id;
    aether_reply_fn fn;
    void *arg;
    uint64_t deadline_ns;
    /* Retry while nobody serves commands (cfg->no_leader_retry): */
    char *req;              /* the encoded request, owned; NULL = no retry */
    size_t req_len;
    aether_command_type type;
    uint64_t retry_at_ns;   /* 0 = none scheduled */
    uint32_t backoff_ms;    /* next wait after "no responders" */
    uint32_t attempts;
    bool no_responders;     /* the last answer was "no responders" */
} pending;

/* One replay window per subscription (auth.h: a window belongs to one
 * receiving thread). The mutex is uncontended but for the moment when
 * serve_commands replaces a subscription whose last handler may still run. */
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

typedef struct nt_window {
    pthread_mutex_t mu;
    aether_auth_window *w; /* under mu */
} nt_window;

#define NT_RETRY_FIRST_MS 10u  /* first wait after "no responders" */
#define NT_RETRY_MAX_MS 200u   /* the wait doubles up to this */

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
    int refs;                                  /* atomic */

    pthread_mutex_t cb_mu;
    aether_transport_sink sink; /* under cb_mu */
    bool bound;                 /* under cb_mu and mu */
    bool serving;               /* under cb_mu and mu */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; wakes the sweeper */
    natsSubscription *sub_evt, *sub_map, *sub_hb, *sub_inbox, *sub_cmd, *sub_join, *sub_rel;
    char inbox[128];   /* the reply inbox of this binding */
    pending table[AETHER_NATS_TRANSPORT_PENDING_MAX];
    uint32_t n_pending;
    uint64_t next_id;
    pthread_t sweeper;
    bool sweeper_on, sweeper_stop;
    bool destroyed;
    aether_log_ratelimit map_log; /* lock-free: refused maps, one WARN line per second */
    /* Cluster secret (NULL = none): the sealer is borrowed and immutable
     * but for its atomic counter; each window is its subscription's. */
    aether_auth_sealer *sealer;
    aether_log_ratelimit auth_log; /* lock-free: unauthenticated messages, one WARN line per second */
    nt_window win[NT_WIN_COUNT_];
    /* What this endpoint sends, one counter per subscription it reaches
     * (events, maps, heartbeats, replies, commands, JoinCluster, releases):
     * a receiver's window then sees only the counters of its own
     * subscription, contiguous but for concurrency within the family, so
     * a burst on one subject cannot push a message sealed on another
     * thread more than AETHER_AUTH_WINDOW_SPAN below what its receiver
     * admitted. The sender, key and epoch are cfg->sealer's; the counters
     * are atomic. */
    aether_auth_sealer seal[NT_WIN_COUNT_];
} nt;

/* A command being served: where its reply goes. */
typedef struct cmd_reply_ctx {
    nt *t; /* holds a reference */
    char *subject; /* NULL: the request asked for no reply */
} cmd_reply_ctx;

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

/* ---- references -------------------------------------------------------- */

static void nt_ref(nt *t) { __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED); }

static void nt_unref(nt *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (int i = 0; i < NT_WIN_COUNT_; i++) {
        aether_auth_window_destroy(t->win[i].w);
        pthread_mutex_destroy(&t->win[i].mu);
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->cb_mu);
    free(t);
}

static void on_sub_complete(void *closure) { nt_unref(closure); }

/* Subscribes prefix+suffix (or the full subject when suffix is NULL). The
 * subscription holds a reference on t until nats.c reports it complete. */
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
        AETHER_WARN(NT_LOG, "%s: completion callback on %s: %s", t->self.str, subj,
                    natsStatus_GetText(s));
        s = NATS_OK;
    }
    *out = sub;
    return s;
}

static void sub_close(natsSubscription *sub)
{
    if (sub == NULL)
        return;
    (void)natsSubscription_Unsubscribe(sub); /* fails harmlessly on a closed connection */
    natsSubscription_Destroy(sub);
}

static aether_status conn_ready(nt *t)
{
    return natsConnection_Status(t->conn) == NATS_CONN_STATUS_CONNECTED ? AETHER_OK
                                                                         : AETHER_EUNAVAILABLE;
}

static void flush(nt *t)
{
    natsStatus s = natsConnection_FlushTimeout(t->conn, AETHER_NATS_TRANSPORT_FLUSH_MS);
    if (s != NATS_OK)
        AETHER_WARN(NT_LOG, "%s: flush: %s", t->self.str, natsStatus_GetText(s));
}

static void decode_limits(nt *t, aether_codec_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->cluster = t->cluster;
    lim->stats = t->stats;
}

/* With a cluster secret: true if msg's tag opens (right MAC for its
 * subject and payload, fresh) and its counter is new to window win.
 * Otherwise counted, logged (rate-limited) and false; msg is left to the
 * caller. Without a secret: true. */
static bool authentic(nt *t, natsMsg *msg, nt_win win)
{
    if (t->sealer == NULL)
        return true;
    aether_auth_stamp stamp;
    aether_err why = {0};
    aether_status st = aether_auth_open_msg(t->sealer->auth, msg, wall_ms(), &stamp, &why);
    if (st == AETHER_OK) {
        nt_window *w = &t->win[win];
        pthread_mutex_lock(&w->mu);
        st = aether_auth_window_admit(w->w, &stamp, &why);
        pthread_mutex_unlock(&w->mu);
    }
    if (st == AETHER_OK)
        return true;
    if (t->stats != NULL)
        __atomic_add_fetch(&t->stats->rejected[AETHER_CODEC_REJECT_UNAUTHENTICATED], 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&t->auth_log, mono_ns(), &suppressed))
        AETHER_WARN(NT_LOG, "%s: unauthenticated message on %s dropped: %s [%" PRIu64 " more suppressed]",
                    t->self.str, aether_auth_msg_subject(msg), why.msg, suppressed);
    return false;
}

/* Sends buf on subj (reply: the reply subject, or NULL), sealed when the
 * cluster has a secret with the counter of family fam (the subscription
 * it reaches): the tag covers subj and the bytes. */
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

/* Decodes msg (destroying it) into m once it is authentic for window win
 * (NT_WIN_COUNT_: the caller has authenticated it already); false =
 * dropped. */
static bool decode_msg(nt *t, natsMsg *msg, nt_win win, aether_codec_kind want, aether_codec_msg *m)
{
    if (win != NT_WIN_COUNT_ && !authentic(t, msg, win)) {
        natsMsg_Destroy(msg);
        return false;
    }
    aether_codec_limits lim;
    decode_limits(t, &lim);
    aether_err err = {0};
    aether_status st = aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                           &lim, m, &err);
    if (st != AETHER_OK) {
        if (t->stats == NULL)
            AETHER_DEBUG(NT_LOG, "%s: dropped on %s: %s", t->self.str, natsMsg_GetSubject(msg),
                         err.msg);
        natsMsg_Destroy(msg);
        return false;
    }
    if (m->kind != want) {
        AETHER_DEBUG(NT_LOG, "%s: dropped on %s: unexpected kind %d", t->self.str,
                     natsMsg_GetSubject(msg), (int)m->kind);
        natsMsg_Destroy(msg);
        aether_codec_msg_fini(m);
        return false;
    }
    natsMsg_Destroy(msg);
    return true;
}

/* ---- broadcast handlers ---------------------------------------------------- */

static void on_evt_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    aether_codec_msg m;
    if (!decode_msg(t, msg, NT_WIN_EVT, AETHER_CODEC_EVENT, &m))
        return;
    pthread_mutex_lock(&t->cb_mu);
    if (t->bound && t->sink.on_event != NULL)
        t->sink.on_event(t->sink.arg, m.u.event);
    pthread_mutex_unlock(&t->cb_mu);
    aether_codec_msg_fini(&m);
}

static void on_hb_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    aether_codec_msg m;
    if (!decode_msg(t, msg, NT_WIN_HB, AETHER_CODEC_HEARTBEAT, &m))
        return;
    pthread_mutex_lock(&t->cb_mu);
    if (t->bound && t->sink.on_heartbeat != NULL)
        t->sink.on_heartbeat(t->sink.arg, &m.u.heartbeat.node, m.u.heartbeat.incarnation);
    pthread_mutex_unlock(&t->cb_mu);
    aether_codec_msg_fini(&m);
}

static void on_map_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    if (!authentic(t, msg, NT_WIN_MAP)) {
        natsMsg_Destroy(msg);
        return;
    }
    aether_shardmap *map = NULL;
    aether_err err = {0};
    aether_status st = aether_shardmap_codec_decode(natsMsg_GetData(msg),
                                                   (size_t)natsMsg_GetDataLength(msg), &map, NULL, &err);
    if (st != AETHER_OK) {
        natsMsg_Destroy(msg);
        /* shardmap_codec does not classify its refusals: counted as bad_field. */
        if (t->stats != NULL)
            __atomic_add_fetch(&t->stats->rejected[AETHER_CODEC_REJECT_BAD_FIELD], 1,
                               __ATOMIC_RELAXED);
        uint64_t suppressed = 0;
        if (aether_log_ratelimit_allow(&t->map_log, mono_ns(), &suppressed))
            AETHER_WARN(NT_LOG, "%s: map dropped: %s [%" PRIu64 " more suppressed]", t->self.str,
                        err.msg, suppressed);
        return;
    }
    pthread_mutex_lock(&t->cb_mu);
    if (t->bound && t->sink.on_map != NULL)
        t->sink.on_map(t->sink.arg, map, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    pthread_mutex_unlock(&t->cb_mu);
    natsMsg_Destroy(msg);
    aether_shardmap_destroy(map);
}

/* ---- serving commands ---------------------------------------------------- */

static void cmd_reply(void *arg, aether_status status, const char *reason)
{
    cmd_reply_ctx *ctx = arg;
    nt *t = ctx->t;
    char cut[AETHER_CODEC_REPLY_REASON_MAX + 1];
    snprintf(cut, sizeof(cut), "%s", reason != NULL ? reason : "");
    for (char *p = cut; *p != '\0'; p++) /* bounded: the buffer */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    pthread_mutex_lock(&t->mu);
    bool gone = t->destroyed;
    pthread_mutex_unlock(&t->mu);
    if (ctx->subject != NULL && !gone) {
        char *buf = NULL;
        size_t len = 0;
        aether_err err = {0};
        aether_status st = aether_codec_encode_reply(status, cut, &buf, &len, &err);
        if (st == AETHER_OK) {
            natsStatus s = nt_send(t, NT_WIN_INBOX, ctx->subject, NULL, buf, len);
            if (s != NATS_OK)
                AETHER_DEBUG(NT_LOG, "%s: reply not sent: %s", t->self.str,
                             natsStatus_GetText(s));
        } else {
            AETHER_WARN(NT_LOG, "%s: reply not encoded: %s", t->self.str, err.msg);
        }
        free(buf);
    }
    free(ctx->subject);
    free(ctx);
    nt_unref(t);
}

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
    const char *reply = natsMsg_GetReply(msg);
    if (ctx == NULL || (reply != NULL && reply[0] != '\0' && (ctx->subject = strdup(reply)) == NULL)) {
        free(ctx);
        natsMsg_Destroy(msg); /* the requester times out */
        return;
    }
    ctx->t = t;
    nt_ref(t);
    /* The subject names the command: a payload of another type on it (a
     * JoinCluster sent on cmd.LeaveCluster to take the keep-alives'
     * budget, or the reverse to fill their subscription) is refused. */
    char want[64] = "";
    const char *subj = natsMsg_GetSubject(msg);
    size_t plen = strlen(t->prefix);
    if (subj != NULL && strncmp(subj, t->prefix, plen) == 0 && strncmp(subj + plen, "cmd.", 4) == 0)
        snprintf(want, sizeof(want), "%s", subj + plen + 4);
    if (!authentic(t, msg, win)) {
        natsMsg_Destroy(msg);
        cmd_reply(ctx, AETHER_EPERM, "unauthenticated: this cluster has a secret (cluster_secret_file)");
        return;
    }
    aether_codec_msg m;
    if (!decode_msg(t, msg, NT_WIN_COUNT_, AETHER_CODEC_COMMAND, &m)) {
        cmd_reply(ctx, AETHER_EINVAL, "malformed command");
        return;
    }
    if (strcmp(want, aether_command_type_name(m.u.command.type)) != 0) {
        aether_codec_msg_fini(&m);
        cmd_reply(ctx, AETHER_EINVAL, "the command's type is not the one its subject names");
        return;
    }
    pthread_mutex_lock(&t->cb_mu);
    bool taken = false;
    if (t->bound && t->serving && t->sink.on_command != NULL) {
        t->sink.on_command(t->sink.arg, &m.u.command, cmd_reply, ctx);
        taken = true;
    }
    pthread_mutex_unlock(&t->cb_mu);
    if (!taken)
        cmd_reply(ctx, AETHER_ENOTLEADER, "not serving commands");
    aether_codec_msg_fini(&m);
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

static void on_rel_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nt *t = closure;
    aether_codec_msg m;
    if (!decode_msg(t, msg, NT_WIN_REL, AETHER_CODEC_RELEASE, &m))
        return;
    pthread_mutex_lock(&t->cb_mu);
    if (t->bound && t->serving && t->sink.on_release != NULL)
        t->sink.on_release(t->sink.arg, &m.u.release);
    pthread_mutex_unlock(&t->cb_mu);
    aether_codec_msg_fini(&m);
}

/* ---- pending requests ---------------------------------------------------- */

/* Removes and returns the entry with id. Caller holds mu. */
static bool pending_take_locked(nt *t, uint64_t id, pending *out)
{
    for (uint32_t i = 0; i < t->n_pending; i++) {
        if (t->table[i].id == id) {
            *out = t->table[i];
            t->table[i] = t->table[--t->n_pending];
            return true;
        }
    }
    return false;
}

/* A request to send again (a copy: the entry may be answered meanwhile). */
typedef struct resend {
    char subject[NT_SUBJECT_MAX], reply[NT_SUBJECT_MAX];
    nt_win fam;
    char *buf;
    size_t len;
} resend;

/* Times out what is past its deadline (ENOTLEADER if nobody ever served
 * commands, else ETIMEOUT) and sends again what is due for a retry.
 * Caller holds cb_mu, not mu. */
static void sweep_cb_locked(nt *t, uint64_t now)
{
    pending due[AETHER_NATS_TRANSPORT_PENDING_MAX];
    resend *again = NULL;
    uint32_t n = 0, n_again = 0;
    pthread_mutex_lock(&t->mu);
    if (t->bound) {
        for (uint32_t i = 0; i < t->n_pending;) { /* bounded: the table */
            pending *p = &t->table[i];
            if (p->deadline_ns <= now) {
                due[n++] = *p;
                t->table[i] = t->table[--t->n_pending];
                continue;
            }
            if (p->retry_at_ns != 0 && p->retry_at_ns <= now) {
                if (again == NULL)
                    again = calloc(AETHER_NATS_TRANSPORT_PENDING_MAX, sizeof(*again));
                resend *r = again != NULL ? &again[n_again] : NULL;
                if (r != NULL && (r->buf = malloc(p->req_len)) != NULL) {
                    memcpy(r->buf, p->req, p->req_len);
                    r->len = p->req_len;
                    snprintf(r->subject, sizeof(r->subject), "%scmd.%s", t->prefix,
                             aether_command_type_name(p->type));
                    r->fam = p->type == AETHER_CMD_JOIN_CLUSTER ? NT_WIN_JOIN : NT_WIN_CMD;
                    snprintf(r->reply, sizeof(r->reply), "%s.%" PRIu64, t->inbox, p->id);
                    n_again++;
                    p->attempts++;
                    p->retry_at_ns = 0;
                } /* out of memory: retried at the next sweep */
            }
            i++;
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (uint32_t i = 0; i < n_again; i++) {
        /* A failure here (disconnected) leaves the request to its deadline. */
        (void)nt_send(t, again[i].fam, again[i].subject, again[i].reply, again[i].buf, again[i].len);
        free(again[i].buf);
    }
    free(again);
    for (uint32_t i = 0; i < n; i++) {
        if (due[i].no_responders) {
            char why[96];
            snprintf(why, sizeof(why), "no leader answered within %llu ms (%u attempts)",
                     (unsigned long long)t->timeout_ms, due[i].attempts);
            due[i].fn(due[i].arg, AETHER_ENOTLEADER, why);
        } else {
            due[i].fn(due[i].arg, AETHER_ETIMEOUT, "no reply from the leader in time");
        }
        free(due[i].req);
    }
}

static void *sweeper_main(void *arg)
{
    nt *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->sweeper_stop) { /* bounded: until unbind */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)AETHER_NATS_TRANSPORT_SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (t->sweeper_stop || t->n_pending == 0)
            continue; /* retries are pending entries too */
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_lock(&t->cb_mu);
        sweep_cb_locked(t, mono_ns());
        pthread_mutex_unlock(&t->cb_mu);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
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
    aether_status status;
    char reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
    if (natsMsg_IsNoResponders(msg)) {
        natsMsg_Destroy(msg);
        status = AETHER_ENOTLEADER;
        snprintf(reason, sizeof(reason), "no leader is serving commands");
        if (t->no_leader_retry) {
            /* Nobody serves commands (an election is under way): try
             * again after a backoff, until the deadline (the sweeper). */
            bool scheduled = false;
            uint64_t now = mono_ns();
            pthread_mutex_lock(&t->mu);
            for (uint32_t i = 0; t->bound && i < t->n_pending; i++) {
                pending *p = &t->table[i];
                if (p->id != id)
                    continue;
                p->no_responders = true;
                if (p->req != NULL && now + (uint64_t)p->backoff_ms * 1000000u < p->deadline_ns) {
                    p->retry_at_ns = now + (uint64_t)p->backoff_ms * 1000000u;
                    p->backoff_ms = p->backoff_ms * 2u > NT_RETRY_MAX_MS ? NT_RETRY_MAX_MS : p->backoff_ms * 2u;
                    scheduled = true;
                }
                break;
            }
            pthread_mutex_unlock(&t->mu);
            if (scheduled)
                return;
        }
    } else {
        aether_codec_msg m;
        if (!decode_msg(t, msg, NT_WIN_INBOX, AETHER_CODEC_REPLY, &m))
            return; /* the request times out */
        status = m.u.reply.status;
        snprintf(reason, sizeof(reason), "%s", m.u.reply.reason);
        aether_codec_msg_fini(&m);
    }
    pthread_mutex_lock(&t->cb_mu);
    pending p;
    pthread_mutex_lock(&t->mu);
    bool found = t->bound && pending_take_locked(t, id, &p);
    pthread_mutex_unlock(&t->mu);
    if (found) {
        p.fn(p.arg, status, reason);
        free(p.req);
    }
    pthread_mutex_unlock(&t->cb_mu);
}

/* ---- operations ------------------------------------------------------------ */

static void close_subs(natsSubscription **subs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sub_close(subs[i]);
}

static aether_status nt_bind(aether_transport *tp, const aether_transport_sink *sink)
{
    nt *t = as_nt(tp);
    pthread_mutex_lock(&t->mu);
    bool already = t->bound || t->sub_evt != NULL;
    pthread_mutex_unlock(&t->mu);
    if (already)
        return AETHER_ESTATE;

    natsInbox *inbox = NULL;
    natsStatus s = natsInbox_Create(&inbox);
    if (s != NATS_OK)
        return map_nats(s);
    char inbox_sub[160];
    snprintf(inbox_sub, sizeof(inbox_sub), "%s.*", (const char *)inbox);
    char inbox_copy[128];
    snprintf(inbox_copy, sizeof(inbox_copy), "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);

    natsSubscription *subs[4] = {NULL, NULL, NULL, NULL};
    /* Set the sink first: a message may arrive as soon as we subscribe. */
    pthread_mutex_lock(&t->cb_mu);
    pthread_mutex_lock(&t->mu);
    t->sink = *sink;
    t->bound = true;
    t->sweeper_stop = false;
    snprintf(t->inbox, sizeof(t->inbox), "%s", inbox_copy);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&t->cb_mu);

    s = sub_open(t, &subs[0], t->prefix, "evt.>", on_evt_msg);
    if (s == NATS_OK)
        s = sub_open(t, &subs[1], t->prefix, "map", on_map_msg);
    if (s == NATS_OK)
        s = sub_open(t, &subs[2], t->prefix, "hb.>", on_hb_msg);
    if (s == NATS_OK)
        s = sub_open(t, &subs[3], inbox_sub, "", on_inbox_msg);
    int rc = 0;
    if (s == NATS_OK) {
        pthread_mutex_lock(&t->mu);
        rc = pthread_create(&t->sweeper, NULL, sweeper_main, t);
        t->sweeper_on = rc == 0;
        pthread_mutex_unlock(&t->mu);
    }
    if (s != NATS_OK || rc != 0) {
        pthread_mutex_lock(&t->cb_mu);
        pthread_mutex_lock(&t->mu);
        t->bound = false;
        memset(&t->sink, 0, sizeof(t->sink));
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_unlock(&t->cb_mu);
        close_subs(subs, 4);
        return s != NATS_OK ? map_nats(s) : AETHER_EIO;
    }
    pthread_mutex_lock(&t->mu);
    t->sub_evt = subs[0];
    t->sub_map = subs[1];
    t->sub_hb = subs[2];
    t->sub_inbox = subs[3];
    pthread_mutex_unlock(&t->mu);
    flush(t);
    return AETHER_OK;
}

static void nt_unbind(aether_transport *tp)
{
    nt *t = as_nt(tp);
    /* 1. Stop the sweeper (it takes cb_mu: join before we hold it). */
    pthread_mutex_lock(&t->mu);
    bool join = t->sweeper_on;
    t->sweeper_on = false;
    t->sweeper_stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (join)
        pthread_join(t->sweeper, NULL);

    /* 2. Clear the bound flag; outstanding requests end with ECLOSED. */
    pending closing[AETHER_NATS_TRANSPORT_PENDING_MAX];
    natsSubscription *subs[7];
    pthread_mutex_lock(&t->cb_mu);
    pthread_mutex_lock(&t->mu);
    t->bound = false;
    t->serving = false;
    uint32_t n = t->n_pending;
    memcpy(closing, t->table, (size_t)n * sizeof(*closing));
    t->n_pending = 0;
    subs[0] = t->sub_evt;
    subs[1] = t->sub_map;
    subs[2] = t->sub_hb;
    subs[3] = t->sub_inbox;
    subs[4] = t->sub_cmd;
    subs[5] = t->sub_rel;
    subs[6] = t->sub_join;
    t->sub_evt = t->sub_map = t->sub_hb = t->sub_inbox = t->sub_cmd = t->sub_rel = t->sub_join = NULL;
    pthread_mutex_unlock(&t->mu);
    for (uint32_t i = 0; i < n; i++) {
        closing[i].fn(closing[i].arg, AETHER_ECLOSED, "transport unbound");
        free(closing[i].req);
    }
    memset(&t->sink, 0, sizeof(t->sink));
    pthread_mutex_unlock(&t->cb_mu);

    /* 3. Unsubscribe; a late handler sees bound == false and drops. */
    close_subs(subs, 7);
    if (subs[0] != NULL && conn_ready(t) == AETHER_OK)
        flush(t);
}

static aether_status publish(nt *t, nt_win fam, const char *suffix, const char *buf, size_t len)
{
    aether_status st = conn_ready(t);
    if (st != AETHER_OK)
        return st;
    char subj[NT_SUBJECT_MAX];
    snprintf(subj, sizeof(subj), "%s%s", t->prefix, suffix);
    return map_nats(nt_send(t, fam, subj, NULL, buf, len));
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
    st = publish(t, NT_WIN_EVT, suffix, buf, len);
    free(buf);
    return st;
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
    st = publish(t, NT_WIN_MAP, "map", buf, len);
    free(buf);
    return st;
}

/* The leader encoded the map once for the state store: the same bytes go out. */
static aether_status nt_publish_map_json(aether_transport *tp, const aether_shardmap *m,
                                         const char *json, size_t len)
{
    (void)m;
    return publish(as_nt(tp), NT_WIN_MAP, "map", json, len);
}

static void header(nt *t, const aether_node_id *node, aether_term term, aether_codec_header *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->cluster, sizeof(h->cluster), "%s", t->cluster);
    h->term = term;
    h->node = *node;
    h->ts_ms = wall_ms();
}

static aether_status nt_publish_heartbeat(aether_transport *tp, const aether_node_id *node,
                                          uint64_t incarnation)
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
    st = publish(t, NT_WIN_HB, suffix, buf, len);
    free(buf);
    return st;
}

static aether_status nt_send_command(aether_transport *tp, const aether_command *c,
                                     aether_reply_fn reply, void *reply_arg)
{
    nt *t = as_nt(tp);
    aether_status st = conn_ready(t);
    if (st != AETHER_OK)
        return st;
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    st = aether_codec_encode_command(c, wall_ms(), &buf, &len, &err);
    if (st != AETHER_OK) {
        AETHER_WARN(NT_LOG, "%s: command not encoded: %s", t->self.str, err.msg);
        return st;
    }
    char subj[NT_SUBJECT_MAX], reply_subj[NT_SUBJECT_MAX];
    snprintf(subj, sizeof(subj), "%scmd.%s", t->prefix, aether_command_type_name(c->type));
    pthread_mutex_lock(&t->mu);
    if (!t->bound) {
        st = AETHER_ECLOSED;
    } else if (t->n_pending == AETHER_NATS_TRANSPORT_PENDING_MAX) {
        st = AETHER_EFULL;
    }
    /* With retries the entry keeps its own copy of the request. */
    char *keep = NULL;
    if (st == AETHER_OK && t->no_leader_retry && (keep = malloc(len)) != NULL)
        memcpy(keep, buf, len);
    uint64_t id = 0;
    if (st == AETHER_OK) {
        id = ++t->next_id;
        t->table[t->n_pending++] = (pending){
            .id = id, .fn = reply, .arg = reply_arg,
            .deadline_ns = mono_ns() + t->timeout_ms * 1000000u,
            .req = keep, .req_len = len, .type = c->type,
            .backoff_ms = NT_RETRY_FIRST_MS, .attempts = 1};
        snprintf(reply_subj, sizeof(reply_subj), "%s.%" PRIu64, t->inbox, id);
    }
    pthread_mutex_unlock(&t->mu);
    if (st != AETHER_OK) {
        free(keep);
        free(buf);
        return st;
    }
    natsStatus s = nt_send(t, c->type == AETHER_CMD_JOIN_CLUSTER ? NT_WIN_JOIN : NT_WIN_CMD, subj, reply_subj,
                           buf, len);
    free(buf);
    if (s == NATS_OK)
        return AETHER_OK;
    pending p;
    pthread_mutex_lock(&t->mu);
    bool ours = pending_take_locked(t, id, &p);
    pthread_mutex_unlock(&t->mu);
    if (ours)
        free(p.req);
    /* Not ours any more: unbind or the sweeper already answered it. */
    return ours ? map_nats(s) : AETHER_OK;
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
    st = publish(t, NT_WIN_REL, "rel", buf, len);
    free(buf);
    return st;
}

static aether_status nt_serve_commands(aether_transport *tp, bool on)
{
    nt *t = as_nt(tp);
    natsSubscription *subs[3] = {NULL, NULL, NULL};
    if (on) {
        pthread_mutex_lock(&t->mu);
        bool skip = !t->bound || t->sub_cmd != NULL;
        bool bound = t->bound;
        pthread_mutex_unlock(&t->mu);
        if (skip)
            return bound ? AETHER_OK : AETHER_ECLOSED;
        natsStatus s = sub_open(t, &subs[0], t->prefix, "cmd.>", on_cmd_msg);
        if (s == NATS_OK)
            s = sub_open(t, &subs[1], t->prefix, "rel", on_rel_msg);
        if (s == NATS_OK)
            s = sub_open(t, &subs[2], t->prefix, NT_JOIN_SUFFIX, on_join_msg);
        if (s != NATS_OK) {
            close_subs(subs, 3);
            return map_nats(s);
        }
        pthread_mutex_lock(&t->cb_mu);
        pthread_mutex_lock(&t->mu);
        bool install = t->bound && t->sub_cmd == NULL;
        if (install) {
            t->sub_cmd = subs[0];
            t->sub_rel = subs[1];
            t->sub_join = subs[2];
            t->serving = true;
        }
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_unlock(&t->cb_mu);
        if (!install) { /* raced with unbind or another serve_commands(true) */
            close_subs(subs, 3);
            return AETHER_OK;
        }
        flush(t);
        return AETHER_OK;
    }
    pthread_mutex_lock(&t->cb_mu);
    pthread_mutex_lock(&t->mu);
    t->serving = false;
    subs[0] = t->sub_cmd;
    subs[1] = t->sub_rel;
    subs[2] = t->sub_join;
    t->sub_cmd = t->sub_rel = t->sub_join = NULL;
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&t->cb_mu);
    close_subs(subs, 3);
    /* Once the server has the UNSUB, requests see "no responders" at once. */
    if (subs[0] != NULL || subs[1] != NULL || subs[2] != NULL)
        flush(t);
    return AETHER_OK;
}

static void nt_destroy(aether_transport *tp)
{
    nt *t = as_nt(tp);
    nt_unbind(tp);
    pthread_mutex_lock(&t->mu);
    t->destroyed = true;
    pthread_mutex_unlock(&t->mu);
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

aether_status aether_nats_transport_create(const aether_nats_transport_config *cfg,
                                           aether_transport **out, aether_err *err)
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
    for (int i = 0; i < NT_WIN_COUNT_; i++) {
        if (t->sealer != NULL)
            aether_auth_sealer_init(&t->seal[i], t->sealer->auth, &t->sealer->sender, t->sealer->epoch);
        pthread_mutex_init(&t->win[i].mu, NULL);
        if (t->sealer != NULL && aether_auth_window_create(&t->win[i].w) != AETHER_OK) {
            for (int j = 0; j <= i; j++) {
                aether_auth_window_destroy(t->win[j].w);
                pthread_mutex_destroy(&t->win[j].mu);
            }
            free(t);
            return aether_err_set(err, AETHER_ENOMEM, "out of memory");
        }
    }
    t->refs = 1;
    aether_log_ratelimit_init(&t->map_log, 1000000000u);
    aether_log_ratelimit_init(&t->auth_log, 1000000000u);
    pthread_mutex_init(&t->cb_mu, NULL);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = &t->base;
    return AETHER_OK;
}
