/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_kv.c: aether_kv on a NATS JetStream KV bucket through nats.c
 * (transport layer). The protocol, the status mapping table and the
 * threading contract are in nats_kv.h; this file is the only place that
 * turns a natsStatus or a JetStream error code into an aether_status
 * (nkv_map).
 */
#include "nats_kv.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assertion.h"
#include "clock.h"
#include "log.h"
#include "nats_auth.h"
#include "thread.h"

#define NKV_MODULE "kv_nats"
#define NKV_SUBJECT_PREFIX "$KV."
#define NKV_STREAM_PREFIX "KV_"
/* "$KV." bucket "." key, NUL. */
#define NKV_SUBJECT_CAP \
    (sizeof(NKV_SUBJECT_PREFIX) + AETHER_KV_NATS_BUCKET_LEN_MAX + 1 + AETHER_KV_KEY_LEN_MAX + 1)
#define NKV_STREAM_CAP (sizeof(NKV_STREAM_PREFIX) + AETHER_KV_NATS_BUCKET_LEN_MAX + 1)
/* The KV protocol headers (nats.c kv.c and the Go client use these values). */
#define NKV_OP_HEADER "KV-Operation"
#define NKV_OP_DEL "DEL"
#define NKV_OP_PURGE "PURGE"

AETHER_STATIC_ASSERT(AETHER_KV_VALUE_LEN_MAX <= (size_t)INT32_MAX, "values fit nats.c's int lengths");
AETHER_STATIC_ASSERT(AETHER_KV_NATS_TIMEOUT_MS_MAX <= INT64_MAX / 1000000, "timeouts fit in ns");
AETHER_STATIC_ASSERT(AETHER_KV_TTL_MS_MAX <= INT64_MAX / 1000000, "ttl fits kvConfig.TTL in ns");
AETHER_STATIC_ASSERT(AETHER_KV_NATS_WATCH_POLL_MS > 0, "kvWatcher_Next needs a positive timeout");

typedef struct kv_nats kv_nats;

struct aether_kv_watcher {
    struct aether_kv_watcher *next;  /* under n->mu: registration order */
    kv_nats *n;                      /* immutable */
    kvWatcher *w;                    /* immutable once started; nats.c makes Next vs
                                        Stop safe across threads */
    pthread_t thread;                /* immutable once started */
    bool thread_started;             /* immutable once started */
    aether_kv_watch_fn fn;           /* immutable */
    void *arg;                       /* immutable */
    atomic_bool stop;                /* release store by unwatch, acquire load by the
                                        thread: no callback starts after it is seen */
    char pattern[AETHER_KV_KEY_LEN_MAX + 1]; /* immutable, for logs */
};

struct kv_nats {
    aether_kv base;                                 /* must stay first */
    char bucket[AETHER_KV_NATS_BUCKET_LEN_MAX + 1]; /* immutable */
    char stream[NKV_STREAM_CAP];                    /* immutable: "KV_<bucket>" */
    uint64_t ttl_ms;                                /* immutable */
    int64_t timeout_ms;                             /* immutable */
    natsConnection *conn;                           /* immutable, borrowed */
    jsCtx *js;                                      /* immutable; nats.c: any thread */
    kvStore *kv;                                    /* immutable; nats.c: any thread */
    bool recreate;                                  /* immutable: create_if_missing */
    bool one_key;                                   /* immutable: DESIGN step 2b */
    uint32_t replicas;                              /* immutable: 1 or 3 */
    /* DESIGN step 5. check_after_ns: CAS by whichever caller wins the
     * window (relaxed: it only rate-limits, nothing is published by it);
     * recreated: relaxed counter, read by metrics. */
    _Atomic uint64_t check_after_ns;
    _Atomic uint64_t recreated;
    /* Set before the store is shared (aether_kv_nats_set_cas_histogram),
     * read by every CAS; the histogram's counts are relaxed atomics. */
    _Atomic(aether_histogram *) cas_hist;

    pthread_mutex_t mu;          /* guards the watcher registry */
    aether_kv_watcher *watchers; /* under mu */
    uint32_t watcher_count;      /* under mu */

    pthread_mutex_t cb_mu; /* held across every watch callback: one at a time per store */

    /* Step 7. sealer: borrowed, immutable but for its atomic counter (NULL
     * = no secret); stats: borrowed, atomic counters; auth_log: lock-free. */
    aether_auth_sealer *sealer;
    aether_codec_stats *stats;
    aether_log_ratelimit auth_log;
};

static const aether_kv_ops kv_nats_ops;

/* The store whose watch callback this thread is running, if any. */
static __thread const kv_nats *nkv_calling;

static kv_nats *to_nats(aether_kv *kv)
{
    AETHER_ASSERT(kv != NULL && kv->ops == &kv_nats_ops);
    kv_nats *n = (kv_nats *)kv;
    AETHER_ASSERT(nkv_calling != n); /* no re-entry from a watch callback */
    return n;
}

bool aether_kv_is_nats(const aether_kv *kv)
{
    return kv != NULL && kv->ops == &kv_nats_ops;
}

/* ---- The edge: natsStatus / jsErrCode -> aether_status -------------------- */

typedef enum nkv_dir {
    NKV_READ,  /* nothing to apply: a failure means "not done" */
    NKV_WRITE, /* the request may have reached the server */
} nkv_dir;

/* The mapping table of nats_kv.h, in one place. */
static aether_status nkv_map(natsStatus s, jsErrCode jerr, nkv_dir dir)
{
    if (s == NATS_OK)
        return AETHER_OK;
    switch ((int)jerr) {
    case 0:
        break;
    case JSStreamWrongLastSequenceErr:
        return AETHER_ECONFLICT;
    case JSInsufficientResourcesErr:
    case JSMemoryResourcesExceededErr:
    case JSStorageResourcesExceededErr:
    case JSStreamLimitsErr:
        return AETHER_EFULL;
    case JSStreamMessageExceedsMaximumErr:
        return AETHER_EINVAL;
    default:
        /* The server answered with a refusal: nothing was stored. */
        return s == NATS_NOT_FOUND && dir == NKV_READ ? AETHER_ENOTFOUND : AETHER_EUNAVAILABLE;
    }
    switch (s) {
    case NATS_NOT_FOUND:
        return dir == NKV_READ ? AETHER_ENOTFOUND : AETHER_EUNKNOWN;
    case NATS_NO_RESPONDERS:
        return AETHER_EUNAVAILABLE; /* no stream took it */
    case NATS_MAX_PAYLOAD:
        return AETHER_EINVAL; /* refused by nats.c before sending */
    case NATS_NO_MEMORY:
        return AETHER_ENOMEM;
    case NATS_TIMEOUT:
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_DRAINING:
    default:
        /* The connection was fine when we looked (nkv_connected), so a
         * write may have left: maybe applied, maybe later. */
        return dir == NKV_WRITE ? AETHER_EUNKNOWN : AETHER_EUNAVAILABLE;
    }
}

static void nkv_bucket_check(kv_nats *n);

/* Fills err with the call, the key and what nats.c said. Returns code. A
 * store that was not reachable may have lost its bucket: DESIGN step 5. */
static aether_status nkv_fail(kv_nats *n, aether_err *err, aether_status code,
                              const char *call, const char *key, natsStatus s, jsErrCode jerr)
{
    natsStatus last_s = NATS_OK;
    const char *text = nats_GetLastError(&last_s);
    if (text == NULL || text[0] == '\0' || last_s != s)
        text = natsStatus_GetText(s);
    const char *what = "";
    if (code == AETHER_EUNKNOWN)
        what = ": outcome unknown, re-read";
    else if (code == AETHER_EUNAVAILABLE)
        what = ": store unavailable, not applied";
    aether_status st = aether_err_set(err, code, "bucket '%s': %s '%s': %s (js %d)%s", n->bucket,
                                      call, key, text, (int)jerr, what);
    if (code == AETHER_EUNAVAILABLE && n->recreate)
        nkv_bucket_check(n); /* after the text: it makes nats.c calls of its own */
    return st;
}

static const char *conn_status_name(natsConnStatus cs)
{
    switch (cs) {
    case NATS_CONN_STATUS_DISCONNECTED: return "disconnected";
    case NATS_CONN_STATUS_CONNECTING: return "connecting";
    case NATS_CONN_STATUS_CONNECTED: return "connected";
    case NATS_CONN_STATUS_CLOSED: return "closed";
    case NATS_CONN_STATUS_RECONNECTING: return "reconnecting";
    case NATS_CONN_STATUS_DRAINING_SUBS: return "draining subscriptions";
    case NATS_CONN_STATUS_DRAINING_PUBS: return "draining publishers";
    default: return "?";
    }
}

/* DESIGN step 4: fail fast, before sending anything, when not connected. */
static aether_status nkv_connected(const kv_nats *n, const char *call, const char *key,
                                   aether_err *err)
{
    natsConnStatus cs = natsConnection_Status(n->conn);
    if (cs == NATS_CONN_STATUS_CONNECTED)
        return AETHER_OK;
    return aether_err_set(err, AETHER_EUNAVAILABLE,
                          "bucket '%s': %s '%s': NATS connection is %s: store unavailable, "
                          "nothing sent",
                          n->bucket, call, key, conn_status_name(cs));
}

/* ---- Writes (DESIGN step 2) ------------------------------------------------ */

typedef enum nkv_expect {
    NKV_EXPECT_ANY,  /* no expectation */
    NKV_EXPECT_NONE, /* the subject has no message */
    NKV_EXPECT_REV,  /* the subject's last message has this sequence */
} nkv_expect;

static void nkv_subject(const kv_nats *n, const char *key, char *buf)
{
    int len = snprintf(buf, NKV_SUBJECT_CAP, NKV_SUBJECT_PREFIX "%s.%s", n->bucket, key);
    AETHER_ASSERT(len > 0 && (size_t)len < NKV_SUBJECT_CAP); /* key and bucket are validated */
}

static uint64_t nkv_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One CAS round trip done: into the histogram, if there is one. */
static void nkv_cas_timed(const kv_nats *n, uint64_t t0_ns)
{
    aether_histogram *h = atomic_load_explicit(&n->cas_hist, memory_order_relaxed);
    if (h != NULL)
        aether_histogram_observe_ns(h, nkv_mono_ns() - t0_ns);
}

static uint64_t nkv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Step 7: true if msg (a stored value or marker, from js_GetMsg or
 * js_GetLastMsg) carries a tag that opens for its subject and bytes and
 * was made within AETHER_AUTH_SKEW_MS of when the server stored it; true
 * without a secret. A refusal is counted and logged when `count`. */
static bool nkv_authentic(kv_nats *n, natsMsg *msg, bool count)
{
    if (n->sealer == NULL)
        return true;
    int64_t stored_ns = natsMsg_GetTime(msg);
    aether_auth_stamp stamp;
    aether_err why = {0};
    aether_status st = aether_auth_open_msg(n->sealer->auth, msg,
                                            stored_ns > 0 ? (uint64_t)stored_ns / AETHER_NS_PER_MS : 0, &stamp, &why);
    if (st == AETHER_OK)
        return true;
    if (!count)
        return false;
    if (n->stats != NULL)
        __atomic_add_fetch(&n->stats->rejected[AETHER_CODEC_REJECT_UNAUTHENTICATED], 1, __ATOMIC_RELAXED);
    uint64_t suppressed = 0;
    if (aether_log_ratelimit_allow(&n->auth_log, aether_clock_now_ns(aether_clock_real()), &suppressed))
        AETHER_WARN(NKV_MODULE, "bucket '%s': unauthenticated entry at revision %" PRIu64 " of %s not "
                    "believed: %s [%" PRIu64 " more suppressed]", n->bucket, natsMsg_GetSequence(msg),
                    aether_auth_msg_subject(msg), why.msg, suppressed);
    return false;
}

/* One JetStream publish of a value or marker. *rev_out is set on NATS_OK
 * only; *jerr is the JetStream error code (0 if none). */
static natsStatus nkv_publish(const kv_nats *n, const char *key, aether_kv_op op,
                              const void *value, size_t len, nkv_expect expect,
                              uint64_t expected, uint64_t expected_stream, uint64_t *rev_out,
                              jsErrCode *jerr)
{
    AETHER_ASSERT(op == AETHER_KV_OP_PUT || len == 0);
    AETHER_ASSERT(len <= AETHER_KV_VALUE_LEN_MAX);
    AETHER_ASSERT((expect == NKV_EXPECT_REV) == (expected > 0));
    char subject[NKV_SUBJECT_CAP];
    nkv_subject(n, key, subject);
    *jerr = 0;

    natsMsg *msg = NULL;
    jsPubAck *ack = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, (const char *)value, (int)len);
    if (s == NATS_OK && op == AETHER_KV_OP_DELETE)
        s = natsMsgHeader_Set(msg, NKV_OP_HEADER, NKV_OP_DEL);
    if (s == NATS_OK && op == AETHER_KV_OP_PURGE) {
        s = natsMsgHeader_Set(msg, NKV_OP_HEADER, NKV_OP_PURGE);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, JSMsgRollup, JSMsgRollupSubject);
    }
    if (s == NATS_OK && n->sealer != NULL) { /* step 7 */
        char tag[AETHER_AUTH_TAG_MAX];
        if (aether_auth_seal(n->sealer, subject, value, len, nkv_wall_ms(), tag, sizeof(tag)) != AETHER_OK)
            s = NATS_ERR;
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, AETHER_AUTH_HEADER, tag);
    }
    if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = n->timeout_ms;
        if (expect == NKV_EXPECT_NONE)
            po.ExpectNoMessage = true;
        else if (expect == NKV_EXPECT_REV)
            po.ExpectLastSubjectSeq = expected;
        if (expect == NKV_EXPECT_REV && n->one_key)
            po.ExpectLastSeq = expected_stream != 0 ? expected_stream : expected; /* DESIGN step 2b */
        s = js_PublishMsg(&ack, n->js, msg, &po, jerr);
    }
    if (s == NATS_OK) {
        AETHER_ASSERT(ack != NULL && ack->Sequence > 0);
        AETHER_ASSERT(expect != NKV_EXPECT_REV || ack->Sequence > expected);
        *rev_out = ack->Sequence;
    }
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
    return s;
}

static aether_kv_op nkv_msg_op(natsMsg *msg)
{
    const char *val = NULL;
    if (natsMsgHeader_Get(msg, NKV_OP_HEADER, &val) != NATS_OK || val == NULL)
        return AETHER_KV_OP_PUT;
    if (strcmp(val, NKV_OP_DEL) == 0)
        return AETHER_KV_OP_DELETE;
    if (strcmp(val, NKV_OP_PURGE) == 0)
        return AETHER_KV_OP_PURGE;
    return AETHER_KV_OP_PUT;
}

static aether_status nkv_create_untimed(aether_kv *kv, const char *key, const void *value,
                                        size_t len, uint64_t *rev_out, aether_err *err);

static aether_status nkv_create(aether_kv *kv, const char *key, const void *value, size_t len,
                                uint64_t *rev_out, aether_err *err)
{
    uint64_t t0 = nkv_mono_ns();
    aether_status st = nkv_create_untimed(kv, key, value, len, rev_out, err);
    nkv_cas_timed(to_nats(kv), t0);
    return st;
}

static aether_status nkv_create_untimed(aether_kv *kv, const char *key, const void *value,
                                        size_t len, uint64_t *rev_out, aether_err *err)
{
    kv_nats *n = to_nats(kv);
    aether_status st = nkv_connected(n, "create", key, err);
    if (st != AETHER_OK)
        return st;
    char subject[NKV_SUBJECT_CAP];
    nkv_subject(n, key, subject);
    nkv_expect expect = NKV_EXPECT_NONE;
    uint64_t expected = 0;
    for (unsigned attempt = 0; attempt < AETHER_KV_NATS_CREATE_ATTEMPTS_MAX; attempt++) {
        jsErrCode jerr = 0;
        natsStatus s = nkv_publish(n, key, AETHER_KV_OP_PUT, value, len, expect, expected, 0,
                                   rev_out, &jerr);
        if (s == NATS_OK)
            return AETHER_OK;
        st = nkv_map(s, jerr, NKV_WRITE);
        if (st != AETHER_ECONFLICT)
            return nkv_fail(n, err, st, "create", key, s, jerr);

        /* Refused: the subject has a last message. A value wins; a marker
         * (or nothing any more: it just expired) means the key is absent. */
        natsMsg *last = NULL;
        jsErrCode gerr = 0;
        s = js_GetLastMsg(&last, n->js, n->stream, subject, NULL, &gerr);
        if (s == NATS_NOT_FOUND && gerr != JSStreamNotFoundErr) {
            expect = NKV_EXPECT_NONE;
            expected = 0;
            continue;
        }
        if (s != NATS_OK) {
            /* We wrote nothing; we just cannot tell what is there. */
            st = nkv_map(s, gerr, NKV_READ);
            if (st == AETHER_ENOTFOUND)
                st = AETHER_EUNAVAILABLE;
            natsMsg_Destroy(last);
            return nkv_fail(n, err, st, "create (reading the key back)", key, s, gerr);
        }
        uint64_t seq = natsMsg_GetSequence(last);
        aether_kv_op op = nkv_msg_op(last);
        bool authentic = nkv_authentic(n, last, true);
        natsMsg_Destroy(last);
        AETHER_ASSERT(seq > 0);
        if (!authentic) /* step 7: what it hides may be a genuine holder's value */
            return aether_err_set(err, AETHER_EEXIST, "bucket '%s': key '%s' holds an unauthenticated entry "
                                  "(revision %" PRIu64 "): treated as taken until it expires", n->bucket, key,
                                  seq);
        if (op == AETHER_KV_OP_PUT)
            return aether_err_set(err, AETHER_EEXIST, "bucket '%s': key '%s' exists (revision %" PRIu64 ")",
                                  n->bucket, key, seq);
        expect = NKV_EXPECT_REV;
        expected = seq;
    }
    return aether_err_set(err, AETHER_EEXIST,
                          "bucket '%s': key '%s' changed under %u create attempts: treat it as "
                          "taken",
                          n->bucket, key, AETHER_KV_NATS_CREATE_ATTEMPTS_MAX);
}

/* Step 7: after a CAS naming `expected` was refused, whether every write
 * since then is still stored and unauthenticated (on key, or, in a one_key
 * bucket, on any key), at most AETHER_KV_NATS_FORGED_SKIP_MAX of them. If
 * so, *subject_last is the key's last revision and *stream_last the
 * stream's (one_key; else 0): the CAS to send again. Each forgery is
 * counted. */
static bool nkv_only_forged_since(kv_nats *n, const char *key, uint64_t expected, uint64_t *subject_last,
                                  uint64_t *stream_last)
{
    char subject[NKV_SUBJECT_CAP];
    nkv_subject(n, key, subject);
    uint64_t last = 0;
    jsErrCode jerr = 0;
    if (n->one_key) {
        jsStreamInfo *si = NULL;
        if (js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr) != NATS_OK) {
            jsStreamInfo_Destroy(si);
            return false;
        }
        last = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
    } else {
        natsMsg *m = NULL;
        if (js_GetLastMsg(&m, n->js, n->stream, subject, NULL, &jerr) != NATS_OK) {
            natsMsg_Destroy(m);
            return false;
        }
        last = natsMsg_GetSequence(m);
        natsMsg_Destroy(m);
    }
    if (last <= expected || last - expected > AETHER_KV_NATS_FORGED_SKIP_MAX)
        return false;
    uint64_t on_key = expected;
    for (uint64_t seq = expected + 1; seq <= last; seq++) { /* bounded: AETHER_KV_NATS_FORGED_SKIP_MAX */
        natsMsg *m = NULL;
        if (js_GetMsg(&m, n->js, n->stream, seq, NULL, &jerr) != NATS_OK) {
            natsMsg_Destroy(m); /* gone: replaced, and it may have been genuine */
            return false;
        }
        const char *ms = natsMsg_GetSubject(m);
        bool ours = ms != NULL && strcmp(ms, subject) == 0;
        bool forged = !nkv_authentic(n, m, false);
        natsMsg_Destroy(m);
        if (ours || n->one_key) {
            if (!forged)
                return false; /* a genuine write: a real conflict */
        }
        if (ours)
            on_key = seq;
    }
    for (uint64_t seq = expected + 1; seq <= last; seq++) { /* bounded: as above; count them now */
        natsMsg *m = NULL;
        if (js_GetMsg(&m, n->js, n->stream, seq, NULL, &jerr) == NATS_OK)
            (void)nkv_authentic(n, m, true);
        natsMsg_Destroy(m);
    }
    *subject_last = on_key;
    *stream_last = n->one_key ? last : 0;
    return true;
}

static aether_status nkv_cas_write(aether_kv *kv, const char *call, const char *key,
                                   aether_kv_op op, const void *value, size_t len,
                                   uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    kv_nats *n = to_nats(kv);
    aether_status st = nkv_connected(n, call, key, err);
    if (st != AETHER_OK)
        return st;
    jsErrCode jerr = 0;
    natsStatus s = nkv_publish(n, key, op, value, len,
                               expected > 0 ? NKV_EXPECT_REV : NKV_EXPECT_ANY, expected, 0, rev_out,
                               &jerr);
    uint64_t on_key = 0, on_stream = 0;
    if (s != NATS_OK && expected > 0 && n->sealer != NULL && jerr == JSStreamWrongLastSequenceErr &&
        nkv_only_forged_since(n, key, expected, &on_key, &on_stream)) {
        AETHER_WARN(NKV_MODULE, "bucket '%s': %s '%s': only unauthenticated writes since revision %" PRIu64
                    " (up to %" PRIu64 "): written again over them", n->bucket, call, key, expected,
                    on_stream != 0 ? on_stream : on_key);
        jerr = 0;
        s = nkv_publish(n, key, op, value, len, NKV_EXPECT_REV, on_key, on_stream, rev_out, &jerr);
    }
    if (s == NATS_OK)
        return AETHER_OK;
    st = nkv_map(s, jerr, NKV_WRITE);
    if (st == AETHER_ECONFLICT) {
        natsStatus last_s = NATS_OK;
        const char *text = nats_GetLastError(&last_s);
        return aether_err_set(err, AETHER_ECONFLICT,
                              "bucket '%s': %s '%s': expected %" PRIu64 " is not its last "
                              "revision (server: %s)",
                              n->bucket, call, key, expected, text != NULL ? text : "?");
    }
    return nkv_fail(n, err, st, call, key, s, jerr);
}

static aether_status nkv_update(aether_kv *kv, const char *key, const void *value, size_t len,
                                uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    AETHER_ASSERT(expected > 0); /* the wrapper refuses 0 */
    uint64_t t0 = nkv_mono_ns();
    aether_status st = nkv_cas_write(kv, "update", key, AETHER_KV_OP_PUT, value, len, expected,
                                     rev_out, err);
    nkv_cas_timed(to_nats(kv), t0);
    return st;
}

static aether_status nkv_del(aether_kv *kv, const char *key, uint64_t expected,
                             uint64_t *rev_out, aether_err *err)
{
    uint64_t t0 = nkv_mono_ns();
    aether_status st = nkv_cas_write(kv, "delete", key, AETHER_KV_OP_DELETE, NULL, 0, expected,
                                     rev_out, err);
    if (expected > 0)
        nkv_cas_timed(to_nats(kv), t0);
    return st;
}

static aether_status nkv_purge(aether_kv *kv, const char *key, uint64_t *rev_out,
                               aether_err *err)
{
    return nkv_cas_write(kv, "purge", key, AETHER_KV_OP_PURGE, NULL, 0, 0, rev_out, err);
}

/* Step 6: a stream purge up to (not including) revision; the server then
 * numbers the next message at least revision (nats-server 2.9: measured,
 * a purge with sequence 100000 of a one-message stream made the next put
 * revision 100000). */
static aether_status nkv_compact(aether_kv *kv, uint64_t revision, aether_err *err)
{
    kv_nats *n = to_nats(kv);
    aether_status st = nkv_connected(n, "compact", "*", err);
    if (st != AETHER_OK)
        return st;
    jsOptions po;
    jsOptions_Init(&po);
    po.Wait = n->timeout_ms;
    po.Stream.Purge.Sequence = revision;
    jsErrCode jerr = 0;
    natsStatus s = js_PurgeStream(n->js, n->stream, &po, &jerr);
    if (s == NATS_OK) {
        /* Rare and drastic (lease.h step 3): always in the log. */
        AETHER_INFO(NKV_MODULE, "bucket '%s' compacted: every entry below revision %" PRIu64
                    " purged", n->bucket, revision);
        return AETHER_OK;
    }
    return nkv_fail(n, err, nkv_map(s, jerr, NKV_WRITE), "compact", "*", s, jerr);
}

/* ---- Read (DESIGN step 1) -------------------------------------------------- */

/* Step 7, get: the key's last message (at `last`) is unauthenticated. The
 * newest genuine write of the key below it, if every message since (on the
 * key, and with one_key on the stream) is still stored and unauthenticated,
 * at most AETHER_KV_NATS_FORGED_SKIP_MAX of them: the value the cluster
 * wrote, with the forgeries left out - the revision a conditional write
 * naming it gets past them (update, above). NULL when there is none. */
static natsMsg *nkv_genuine_beneath(kv_nats *n, const char *subject, const char *key, uint64_t last)
{
    uint64_t floor = last > AETHER_KV_NATS_FORGED_SKIP_MAX ? last - AETHER_KV_NATS_FORGED_SKIP_MAX : 0;
    for (uint64_t seq = last - 1; seq > floor; seq--) { /* bounded: AETHER_KV_NATS_FORGED_SKIP_MAX */
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        if (js_GetMsg(&m, n->js, n->stream, seq, NULL, &jerr) != NATS_OK) {
            natsMsg_Destroy(m); /* gone: replaced, and it may have been genuine */
            return NULL;
        }
        const char *ms = natsMsg_GetSubject(m);
        if ((ms == NULL || strcmp(ms, subject) != 0) && !n->one_key) {
            natsMsg_Destroy(m); /* another key's write */
            continue;
        }
        if (!nkv_authentic(n, m, false)) {
            natsMsg_Destroy(m);
            continue;
        }
        uint64_t on_key = 0, on_stream = 0;
        if (ms != NULL && strcmp(ms, subject) == 0 && nkv_only_forged_since(n, key, seq, &on_key, &on_stream))
            return m;
        natsMsg_Destroy(m); /* a genuine write on another key of a one_key bucket, or not all forged since */
        return NULL;
    }
    return NULL;
}

static aether_status nkv_get(aether_kv *kv, const char *key, aether_kv_entry *out,
                             aether_err *err)
{
    kv_nats *n = to_nats(kv);
    aether_status st = nkv_connected(n, "get", key, err);
    if (st != AETHER_OK)
        return st;
    char subject[NKV_SUBJECT_CAP];
    nkv_subject(n, key, subject);
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&msg, n->js, n->stream, subject, NULL, &jerr);
    if (s == NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return aether_err_set(err, AETHER_ENOTFOUND, "bucket '%s': key '%s' not found",
                              n->bucket, key);
    if (s != NATS_OK) {
        /* No stream: the bucket itself is gone (step 5), not the key. */
        st = jerr == JSStreamNotFoundErr ? AETHER_EUNAVAILABLE : nkv_map(s, jerr, NKV_READ);
        return nkv_fail(n, err, st, "get", key, s, jerr);
    }
    uint64_t rev = natsMsg_GetSequence(msg);
    AETHER_ASSERT(rev > 0);
    if (!nkv_authentic(n, msg, true)) { /* step 7: damaged, never acted on, value or marker */
        bool marker = nkv_msg_op(msg) != AETHER_KV_OP_PUT;
        natsMsg *beneath = nkv_genuine_beneath(n, subject, key, rev);
        natsMsg_Destroy(msg);
        if (beneath == NULL)
            return aether_err_set(err, AETHER_EUNAVAILABLE, "bucket '%s': key '%s' holds an unauthenticated "
                                  "%s (revision %" PRIu64 "): not believed", n->bucket, key,
                                  marker ? "marker" : "value", rev);
        msg = beneath;
        rev = natsMsg_GetSequence(msg);
    }
    if (nkv_msg_op(msg) != AETHER_KV_OP_PUT) {
        natsMsg_Destroy(msg);
        return aether_err_set(err, AETHER_ENOTFOUND, "bucket '%s': key '%s' not found (deleted)",
                              n->bucket, key);
    }
    int vlen = natsMsg_GetDataLength(msg);
    const char *v = natsMsg_GetData(msg);
    AETHER_ASSERT(vlen >= 0 && (vlen == 0 || v != NULL));
    out->value = malloc((size_t)vlen + 1);
    if (out->value == NULL) {
        natsMsg_Destroy(msg);
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': out of memory reading '%s'",
                              n->bucket, key);
    }
    if (vlen > 0)
        memcpy(out->value, v, (size_t)vlen);
    out->value[vlen] = 0;
    out->value_len = (size_t)vlen;
    out->revision = rev;
    snprintf(out->key, sizeof(out->key), "%s", key);
    natsMsg_Destroy(msg);
    return AETHER_OK;
}

/* ---- Watch (DESIGN step 3) ------------------------------------------------- */

static aether_kv_op nkv_entry_op(kvEntry *e)
{
    switch (kvEntry_Operation(e)) {
    case kvOp_Delete: return AETHER_KV_OP_DELETE;
    case kvOp_Purge: return AETHER_KV_OP_PURGE;
    case kvOp_Put:
    case kvOp_Unknown:
    default: return AETHER_KV_OP_PUT;
    }
}

/* Calls the user's callback for one entry (NULL = init done), serialized
 * per store. An entry that cannot be copied (no memory) is logged and
 * skipped. */
static void nkv_deliver(aether_kv_watcher *aw, kvEntry *e)
{
    kv_nats *n = aw->n;
    aether_kv_event ev = {.op = AETHER_KV_OP_INIT_DONE, .key = ""};
    uint8_t *copy = NULL;
    if (e != NULL) {
        ev.op = nkv_entry_op(e);
        ev.key = kvEntry_Key(e);
        ev.revision = kvEntry_Revision(e);
        AETHER_ASSERT(ev.key != NULL && ev.revision > 0);
        if (ev.op == AETHER_KV_OP_PUT) {
            /* The contract promises a NUL after the value: copy it. */
            int vlen = kvEntry_ValueLen(e);
            AETHER_ASSERT(vlen >= 0);
            copy = malloc((size_t)vlen + 1);
            if (copy == NULL) {
                AETHER_ERROR(NKV_MODULE, "bucket '%s': watch '%s': out of memory, revision %" PRIu64
                             " of '%s' not delivered", n->bucket, aw->pattern, ev.revision, ev.key);
                return;
            }
            if (vlen > 0)
                memcpy(copy, kvEntry_Value(e), (size_t)vlen);
            copy[vlen] = 0;
            ev.value = copy;
            ev.value_len = (size_t)vlen;
        }
    }
    AETHER_ASSERT(pthread_mutex_lock(&n->cb_mu) == 0);
    if (!atomic_load_explicit(&aw->stop, memory_order_acquire)) {
        nkv_calling = n;
        aw->fn(aw->arg, &ev);
        nkv_calling = NULL;
    }
    AETHER_ASSERT(pthread_mutex_unlock(&n->cb_mu) == 0);
    free(copy);
}

/* Step 7: a kvEntry shows no headers, so the entry is fetched again by
 * revision. False (not delivered) if it does not authenticate, or if it is
 * gone (replaced: the write that replaced it is delivered next), or
 * cannot be fetched now (logged: the watch is a hint, get and CAS decide). */
static bool nkv_entry_authentic(kv_nats *n, kvEntry *e)
{
    if (n->sealer == NULL)
        return true;
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(&m, n->js, n->stream, kvEntry_Revision(e), NULL, &jerr);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        if (s != NATS_NOT_FOUND)
            AETHER_DEBUG(NKV_MODULE, "bucket '%s': revision %" PRIu64 " of '%s' not verified (%s): not delivered",
                         n->bucket, kvEntry_Revision(e), kvEntry_Key(e), natsStatus_GetText(s));
        return false;
    }
    bool ok = nkv_authentic(n, m, true);
    natsMsg_Destroy(m);
    return ok;
}

static void *nkv_watch_thread(void *p)
{
    aether_kv_watcher *aw = p;
    /* bounded: runs until unwatch sets stop (each wait is at most
     * AETHER_KV_NATS_WATCH_POLL_MS) or the subscription dies for good. */
    while (!atomic_load_explicit(&aw->stop, memory_order_acquire)) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, aw->w, AETHER_KV_NATS_WATCH_POLL_MS);
        if (s == NATS_TIMEOUT)
            continue;
        if (s == NATS_ILLEGAL_STATE) /* kvWatcher_Stop: unwatch */
            break;
        if (s != NATS_OK) {
            if (atomic_load_explicit(&aw->stop, memory_order_acquire))
                break;
            if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
                AETHER_ERROR(NKV_MODULE, "bucket '%s': watch '%s' ended: %s; no further events",
                             aw->n->bucket, aw->pattern, natsStatus_GetText(s));
                break;
            }
            /* One bad message (e.g. unparsable metadata): skip it. */
            AETHER_WARN(NKV_MODULE, "bucket '%s': watch '%s': %s", aw->n->bucket, aw->pattern,
                        natsStatus_GetText(s));
            continue;
        }
        if (e == NULL || nkv_entry_authentic(aw->n, e))
            nkv_deliver(aw, e);
        kvEntry_Destroy(e);
    }
    return NULL;
}

/* Stops and frees a watcher that is no longer registered. */
static void nkv_watcher_free(aether_kv_watcher *aw)
{
    atomic_store_explicit(&aw->stop, true, memory_order_release);
    if (aw->w != NULL)
        kvWatcher_Stop(aw->w);
    if (aw->thread_started)
        AETHER_ASSERT(pthread_join(aw->thread, NULL) == 0);
    if (aw->w != NULL)
        kvWatcher_Destroy(aw->w);
    free(aw);
}

static aether_status nkv_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn,
                               void *arg, aether_kv_watcher **out, aether_err *err)
{
    kv_nats *n = to_nats(kv);
    aether_status st = nkv_connected(n, "watch", pattern, err);
    if (st != AETHER_OK)
        return st;
    aether_kv_watcher *aw = calloc(1, sizeof(*aw));
    if (aw == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': out of memory starting a watch",
                              n->bucket);
    aw->n = n;
    aw->fn = fn;
    aw->arg = arg;
    atomic_init(&aw->stop, false);
    snprintf(aw->pattern, sizeof(aw->pattern), "%s", pattern);

    /* Reserve a registry slot first so the limit is exact. */
    AETHER_ASSERT(pthread_mutex_lock(&n->mu) == 0);
    if (n->watcher_count >= AETHER_KV_WATCHERS_MAX) {
        AETHER_ASSERT(pthread_mutex_unlock(&n->mu) == 0);
        free(aw);
        return aether_err_set(err, AETHER_EFULL, "bucket '%s' has %u watchers, the maximum",
                              n->bucket, AETHER_KV_WATCHERS_MAX);
    }
    n->watcher_count++;
    AETHER_ASSERT(pthread_mutex_unlock(&n->mu) == 0);

    natsStatus s = kvStore_Watch(&aw->w, n->kv, pattern, NULL);
    if (s != NATS_OK) {
        st = nkv_fail(n, err, nkv_map(s, 0, NKV_READ), "watch", pattern, s, 0);
        goto fail;
    }
    if (aether_thread_create(&aw->thread, nkv_watch_thread, aw) != 0) { /* signals blocked */
        st = aether_err_set(err, AETHER_ENOMEM, "bucket '%s': watch '%s': cannot start a thread",
                            n->bucket, pattern);
        goto fail;
    }
    aw->thread_started = true;

    AETHER_ASSERT(pthread_mutex_lock(&n->mu) == 0);
    aether_kv_watcher **pp = &n->watchers;
    while (*pp != NULL) /* bounded: watcher_count <= AETHER_KV_WATCHERS_MAX */
        pp = &(*pp)->next;
    *pp = aw;
    AETHER_ASSERT(pthread_mutex_unlock(&n->mu) == 0);
    *out = aw;
    return AETHER_OK;

fail:
    nkv_watcher_free(aw);
    AETHER_ASSERT(pthread_mutex_lock(&n->mu) == 0);
    n->watcher_count--;
    AETHER_ASSERT(pthread_mutex_unlock(&n->mu) == 0);
    return st;
}

static void nkv_unwatch(aether_kv *kv, aether_kv_watcher *aw)
{
    kv_nats *n = to_nats(kv);
    AETHER_ASSERT(pthread_mutex_lock(&n->mu) == 0);
    aether_kv_watcher **pp = &n->watchers;
    while (*pp != NULL && *pp != aw) /* bounded: watcher_count */
        pp = &(*pp)->next;
    AETHER_ASSERT(*pp == aw); /* a watcher of this store, not yet unwatched */
    *pp = aw->next;
    n->watcher_count--;
    AETHER_ASSERT(pthread_mutex_unlock(&n->mu) == 0);
    nkv_watcher_free(aw); /* joins: the callback is not running and never will */
}

/* ---- A lost bucket (DESIGN step 5) ------------------------------------------ */

/* Step 7: with a secret, a bucket keeps the AETHER_KV_NATS_FORGED_SKIP_MAX
 * writes below its last one, so that a genuine value under forgeries is
 * still there to read (get) and to check (the lease's read before every
 * conditional write); without, only the last. */
static uint64_t nkv_history(bool sealed)
{
    return sealed ? 1u + AETHER_KV_NATS_FORGED_SKIP_MAX : 1u;
}

static void nkv_kv_config(const kv_nats *n, kvConfig *kc)
{
    kvConfig_Init(kc);
    kc->Bucket = n->bucket;
    kc->History = (int64_t)nkv_history(n->sealer != NULL);
    kc->TTL = (int64_t)(n->ttl_ms * AETHER_NS_PER_MS);
    kc->Replicas = (int)n->replicas;
    kc->StorageType = js_FileStorage;
}

/* Called after a request found the store unreachable: at most once per
 * AETHER_KV_NATS_RECREATE_EVERY_MS per store (the caller that wins the
 * window does it; the others return at once), ask the server whether the
 * bucket's stream exists and, if it answers "stream not found", create the
 * bucket again with the configuration it had (the same call the store was
 * made with, so its TTL comes back too). The kvStore handle only names the
 * bucket, so it works again as it is. Anything else (no answer, a server
 * that refuses the create) is left to the next window. */
static void nkv_bucket_check(kv_nats *n)
{
    uint64_t now = aether_clock_now_ns(aether_clock_real());
    uint64_t after = atomic_load_explicit(&n->check_after_ns, memory_order_relaxed);
    if (now < after ||
        !atomic_compare_exchange_strong_explicit(
            &n->check_after_ns, &after,
            now + (uint64_t)AETHER_KV_NATS_RECREATE_EVERY_MS * AETHER_NS_PER_MS,
            memory_order_relaxed, memory_order_relaxed))
        return;
    if (natsConnection_Status(n->conn) != NATS_CONN_STATUS_CONNECTED)
        return; /* the server, not the bucket, is what is missing */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, n->stream, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr))
        return; /* it exists, or the server cannot say: not ours to fix */
    kvConfig kc;
    nkv_kv_config(n, &kc);
    kvStore *again = NULL;
    s = js_CreateKeyValue(&again, n->js, &kc);
    if (s != NATS_OK) {
        natsStatus last_s = NATS_OK;
        const char *text = nats_GetLastError(&last_s);
        AETHER_WARN(NKV_MODULE, "bucket '%s' does not exist and could not be created again: %s; "
                    "retrying in %u ms", n->bucket, text != NULL && text[0] != '\0' ? text
                    : natsStatus_GetText(s), AETHER_KV_NATS_RECREATE_EVERY_MS);
        return;
    }
    kvStore_Destroy(again);
    uint64_t count = atomic_fetch_add_explicit(&n->recreated, 1, memory_order_relaxed) + 1;
    AETHER_WARN(NKV_MODULE, "bucket '%s' did not exist: created it again (ttl %" PRIu64 " ms, %u "
                "replica(s)); everything it held is gone and its revisions restart at 1 "
                "(re-creation %" PRIu64 " by this process)", n->bucket, n->ttl_ms, n->replicas, count);
}

void aether_kv_nats_set_cas_histogram(aether_kv *kv, aether_histogram *h)
{
    atomic_store_explicit(&to_nats(kv)->cas_hist, h, memory_order_relaxed);
}

uint64_t aether_kv_nats_recreated(aether_kv *kv)
{
    AETHER_ASSERT(aether_kv_is_nats(kv));
    kv_nats *n = (kv_nats *)kv; /* only the atomic counter is read */
    return atomic_load_explicit(&n->recreated, memory_order_relaxed);
}

/* ---- Lifetime -------------------------------------------------------------- */

static uint64_t nkv_ttl_ms(aether_kv *kv)
{
    return to_nats(kv)->ttl_ms;
}

static void nkv_destroy(aether_kv *kv)
{
    kv_nats *n = to_nats(kv);
    aether_kv_watcher *aw = n->watchers;
    n->watchers = NULL;
    while (aw != NULL) { /* bounded: watcher_count */
        aether_kv_watcher *next = aw->next;
        nkv_watcher_free(aw);
        n->watcher_count--;
        aw = next;
    }
    AETHER_ASSERT(n->watcher_count == 0);
    kvStore_Destroy(n->kv);
    jsCtx_Destroy(n->js);
    pthread_mutex_destroy(&n->cb_mu);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

static const aether_kv_ops kv_nats_ops = {
    .create = nkv_create,
    .update = nkv_update,
    .del = nkv_del,
    .purge = nkv_purge,
    .get = nkv_get,
    .watch = nkv_watch,
    .unwatch = nkv_unwatch,
    .ttl_ms = nkv_ttl_ms,
    .destroy = nkv_destroy,
    .compact = nkv_compact,
};

static aether_status bucket_validate(const char *bucket, aether_err *err)
{
    if (bucket == NULL)
        return aether_err_set(err, AETHER_EINVAL, "bucket: required");
    size_t len = strnlen(bucket, AETHER_KV_NATS_BUCKET_LEN_MAX + 1);
    if (len == 0 || len > AETHER_KV_NATS_BUCKET_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "bucket: must be 1..%u bytes",
                              AETHER_KV_NATS_BUCKET_LEN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bucket[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return aether_err_set(err, AETHER_EINVAL,
                                  "bucket '%s': byte 0x%02x at position %zu is outside "
                                  "[A-Za-z0-9_-]",
                                  bucket, c, i);
    }
    return AETHER_OK;
}

static int64_t timeout_or_default(uint64_t timeout_ms)
{
    return (int64_t)(timeout_ms == 0 ? AETHER_KV_NATS_TIMEOUT_MS_DEFAULT : timeout_ms);
}

/* A JetStream context whose requests wait at most timeout_ms. */
static natsStatus nkv_js_open(natsConnection *conn, int64_t timeout_ms, jsCtx **js)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = timeout_ms;
    return natsConnection_JetStream(js, conn, &jo);
}

/* True for the server's texts of a JetStream cluster that is not ready yet
 * (see nkv_bucket_fail), in any letter case. */
static bool nkv_text_is_transient(const char *text)
{
    static const char *const transient[] = {
        "temporarily unavailable", "insufficient resources", "no suitable peers", "offline",
    };
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strcasestr(text, transient[i]) != NULL)
            return true;
    return false;
}

/* The last create failed because another client created the same stream
 * at the same moment (nats-server 2.9: "subjects overlap with an existing
 * stream", error 10065, for a concurrent creation of one stream). */
static bool nkv_lost_create_race(void)
{
    natsStatus last_s = NATS_OK;
    const char *text = nats_GetLastError(&last_s);
    return text != NULL && strcasestr(text, "subjects overlap with an existing stream") != NULL;
}

/* Maps a failure of the bucket calls (bind, create, status, delete). */
static aether_status nkv_bucket_fail(natsConnection *conn, aether_err *err, const char *bucket,
                                     const char *call, natsStatus s)
{
    /* A JetStream API request outside the user's NATS permissions is
     * refused with an asynchronous -ERR, so the call itself only times
     * out: the connection's last error says why, and waiting cannot help.
     * That error is sticky, so it counts only when it names this bucket. */
    const char *refused = NULL;
    if (conn != NULL && s != NATS_OK && natsConnection_GetLastError(conn, &refused) == NATS_NOT_PERMITTED &&
        refused != NULL && strstr(refused, bucket) != NULL)
        return aether_err_set(err, AETHER_EPERM, "bucket '%s': %s: refused by the NATS server (%s)", bucket,
                              call, refused);
    natsStatus last_s = NATS_OK;
    const char *text = nats_GetLastError(&last_s);
    if (text == NULL || text[0] == '\0')
        text = natsStatus_GetText(s);
    aether_status code;
    switch (s) {
    case NATS_NOT_FOUND: code = AETHER_ENOTFOUND; break;
    case NATS_NO_MEMORY: code = AETHER_ENOMEM; break;
    case NATS_INVALID_ARG: code = AETHER_EINVAL; break;
    /* The server answered with an error: for a bucket create that is a
     * bucket with another configuration, or a bad configuration; or the
     * JetStream cluster is not ready, which passes: no meta leader (10008
     * "temporarily unavailable": a server just restarted, routes not up
     * yet), not enough servers up to place the replicas (10023
     * "insufficient resources", 10005 "no suitable peers for placement"),
     * a stream whose replicas are electing their leader ("offline").
     * js_CreateKeyValue gives no JetStream error code, only the server's
     * text. */
    case NATS_ERR:
        code = nkv_text_is_transient(text) ? AETHER_EUNAVAILABLE : AETHER_EINVAL;
        break;
    default: code = AETHER_EUNAVAILABLE; break; /* timeouts, no responders, connection */
    }
    return aether_err_set(err, code, "bucket '%s': %s: %s", bucket, call, text);
}

aether_status aether_kv_nats_create(const aether_kv_nats_config *cfg, aether_kv **out,
                                    aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    if (cfg->conn == NULL)
        return aether_err_set(err, AETHER_EINVAL, "conn: required");
    aether_status st = bucket_validate(cfg->bucket, err);
    if (st != AETHER_OK)
        return st;
    if (cfg->ttl_ms > AETHER_KV_TTL_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "ttl_ms: %" PRIu64 " is more than %" PRIu64,
                              cfg->ttl_ms, AETHER_KV_TTL_MS_MAX);
    if (cfg->ttl_ms != 0 && cfg->ttl_ms < AETHER_KV_NATS_TTL_MS_MIN)
        return aether_err_set(err, AETHER_EINVAL,
                              "ttl_ms: %" PRIu64 " is below %u, the shortest TTL JetStream accepts",
                              cfg->ttl_ms, AETHER_KV_NATS_TTL_MS_MIN);
    if (cfg->replicas != 0 && cfg->replicas != 1 && cfg->replicas != 3)
        return aether_err_set(err, AETHER_EINVAL, "replicas: %u is not 1 or 3", cfg->replicas);
    if (cfg->timeout_ms > AETHER_KV_NATS_TIMEOUT_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "timeout_ms: %" PRIu64 " is more than %u",
                              cfg->timeout_ms, AETHER_KV_NATS_TIMEOUT_MS_MAX);

    kv_nats *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory creating bucket '%s'",
                              cfg->bucket);
    if (pthread_mutex_init(&n->mu, NULL) != 0) {
        free(n);
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': mutex init failed", cfg->bucket);
    }
    if (pthread_mutex_init(&n->cb_mu, NULL) != 0) {
        pthread_mutex_destroy(&n->mu);
        free(n);
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': mutex init failed", cfg->bucket);
    }
    n->base.ops = &kv_nats_ops;
    snprintf(n->bucket, sizeof(n->bucket), "%s", cfg->bucket);
    snprintf(n->stream, sizeof(n->stream), NKV_STREAM_PREFIX "%s", cfg->bucket);
    n->ttl_ms = cfg->ttl_ms;
    n->timeout_ms = timeout_or_default(cfg->timeout_ms);
    n->conn = cfg->conn;
    n->recreate = cfg->create_if_missing;
    n->one_key = cfg->one_key;
    n->sealer = cfg->sealer;
    n->stats = cfg->stats;
    aether_log_ratelimit_init(&n->auth_log, 1000000000u);
    n->replicas = cfg->replicas == 0 ? 1u : cfg->replicas;
    atomic_init(&n->check_after_ns, 0);
    atomic_init(&n->recreated, 0);
    atomic_init(&n->cas_hist, NULL);

    /* From here on a failure goes through the normal destroy. */
    if (natsConnection_Status(cfg->conn) != NATS_CONN_STATUS_CONNECTED) {
        st = aether_err_set(err, AETHER_EUNAVAILABLE, "bucket '%s': NATS connection is %s",
                            cfg->bucket, conn_status_name(natsConnection_Status(cfg->conn)));
        goto fail;
    }
    natsStatus s = nkv_js_open(cfg->conn, n->timeout_ms, &n->js);
    if (s != NATS_OK) {
        st = nkv_bucket_fail(cfg->conn, err, cfg->bucket, "JetStream context", s);
        goto fail;
    }
    bool create_refused = false;
    if (cfg->create_if_missing) {
        kvConfig kc;
        nkv_kv_config(n, &kc);
        s = js_CreateKeyValue(&n->kv, n->js, &kc);
        if (s == NATS_ERR && nkv_lost_create_race()) {
            /* Nodes started together create the bucket at once; the server
             * answers a creation racing another of the same stream with
             * "subjects overlap with an existing stream". The winner's
             * bucket is there: bind it (its TTL is checked below, so a
             * bucket of another configuration is still refused). */
            AETHER_DEBUG(NKV_MODULE, "bucket '%s': created concurrently by another node; binding it",
                         cfg->bucket);
            s = js_KeyValue(&n->kv, n->js, cfg->bucket);
        }
        if (s != NATS_OK) {
            st = nkv_bucket_fail(cfg->conn, err, cfg->bucket, "create", s);
            /* nats.c refuses to create a bucket that exists with another
             * configuration ("Existing configuration is different") without
             * saying which: bind it, so the TTL check below names both
             * values (issue 13); the create error stands otherwise. */
            if (s == NATS_ERR && js_KeyValue(&n->kv, n->js, cfg->bucket) == NATS_OK) {
                s = NATS_OK;
                create_refused = true; /* its error stands if no check below names the difference */
            } else {
                goto fail;
            }
        }
    } else {
        s = js_KeyValue(&n->kv, n->js, cfg->bucket);
        if (s != NATS_OK) {
            st = nkv_bucket_fail(cfg->conn, err, cfg->bucket, "bind", s);
            goto fail;
        }
    }
    /* The bucket's TTL is what frees a lease: it must be what we were told. */
    kvStatus *ks = NULL;
    s = kvStore_Status(&ks, n->kv);
    if (s != NATS_OK) {
        st = nkv_bucket_fail(cfg->conn, err, cfg->bucket, "status", s);
        goto fail;
    }
    int64_t ttl_ns = kvStatus_TTL(ks);
    int64_t replicas = kvStatus_Replicas(ks);
    int64_t history = kvStatus_History(ks);
    kvStatus_Destroy(ks);
    if (ttl_ns < 0 || (uint64_t)ttl_ns != cfg->ttl_ms * AETHER_NS_PER_MS) {
        if (ttl_ns >= 0 && ttl_ns % (int64_t)AETHER_NS_PER_MS == 0)
            st = aether_err_set(err, AETHER_EINCOMPATIBLE,
                                "bucket '%s' exists with a TTL of %" PRId64 " ms, not the %" PRIu64
                                " ms asked for",
                                cfg->bucket, ttl_ns / (int64_t)AETHER_NS_PER_MS, cfg->ttl_ms);
        else
            st = aether_err_set(err, AETHER_EINCOMPATIBLE,
                                "bucket '%s' exists with a TTL of %" PRId64 " ns, not the %" PRIu64
                                " ms asked for",
                                cfg->bucket, ttl_ns, cfg->ttl_ms);
        goto fail;
    }
    /* A creator asked for a replica count: binding a bucket made with
     * another one would silently change the cluster's durability. */
    if (cfg->create_if_missing && cfg->replicas != 0 && replicas != (int64_t)cfg->replicas) {
        st = aether_err_set(err, AETHER_EINCOMPATIBLE,
                            "bucket '%s' exists with %" PRId64 " replicas, not the %u asked for", cfg->bucket,
                            replicas, cfg->replicas);
        goto fail;
    }
    /* Its history says whether the cluster that made it has a secret (a
     * node's concern; a reader binds what is there). */
    if (cfg->create_if_missing && history != (int64_t)nkv_history(n->sealer != NULL)) {
        st = aether_err_set(err, AETHER_EINCOMPATIBLE,
                            "bucket '%s' keeps %" PRId64 " revision(s) per key, not the %" PRIu64 " of a "
                            "cluster %s a secret: cluster_secret_file differs from the setting of the nodes "
                            "that made it (turning the secret on or off needs new buckets: docs/runbook.md)",
                            cfg->bucket, history, nkv_history(n->sealer != NULL),
                            n->sealer != NULL ? "with" : "without");
        goto fail;
    }
    /* The bucket differs in something else than the TTL, the replicas and
     * the history (storage, value size): the create's refusal stands. */
    if (create_refused)
        goto fail;
    AETHER_DEBUG(NKV_MODULE, "bucket '%s' bound (ttl %" PRIu64 " ms, timeout %" PRId64 " ms)",
                 n->bucket, n->ttl_ms, n->timeout_ms);
    *out = &n->base;
    return AETHER_OK;

fail:
    nkv_destroy(&n->base);
    return st;
}

aether_status aether_kv_nats_delete_bucket(natsConnection *conn, const char *bucket,
                                           uint64_t timeout_ms, aether_err *err)
{
    AETHER_ASSERT(conn != NULL);
    aether_status st = bucket_validate(bucket, err);
    if (st != AETHER_OK)
        return st;
    if (timeout_ms > AETHER_KV_NATS_TIMEOUT_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "timeout_ms: %" PRIu64 " is more than %u",
                              timeout_ms, AETHER_KV_NATS_TIMEOUT_MS_MAX);
    if (natsConnection_Status(conn) != NATS_CONN_STATUS_CONNECTED)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "bucket '%s': NATS connection is %s",
                              bucket, conn_status_name(natsConnection_Status(conn)));
    jsCtx *js = NULL;
    natsStatus s = nkv_js_open(conn, timeout_or_default(timeout_ms), &js);
    if (s == NATS_OK)
        s = js_DeleteKeyValue(js, bucket);
    if (s != NATS_OK)
        st = nkv_bucket_fail(conn, err, bucket, "delete", s);
    jsCtx_Destroy(js);
    if (st == AETHER_OK)
        AETHER_INFO(NKV_MODULE, "bucket '%s' deleted: revisions restart at 1", bucket);
    return st;
}
