/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_conn.c: one nats.c connection from aether_nats_settings (transport
 * layer). See nats_conn.h.
 */
#include "nats_conn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "thread.h"

#define LOG_MOD "nats"
#define CONNECT_RETRY_MS 200u
#define RECONNECT_JITTER_MS 100

static bool is_set(const char *s) { return s != NULL && s[0] != '\0'; }

const char *aether_nats_auth_method(const aether_nats_settings *s)
{
    if (is_set(s->creds))
        return "credentials file";
    if (is_set(s->token))
        return "token";
    if (is_set(s->user))
        return "user/password";
    return "none";
}

static bool tls_wanted(const aether_nats_settings *s)
{
    return s->tls || is_set(s->tls_ca) || is_set(s->tls_cert) || strstr(s->urls, "tls://") != NULL;
}

/* nats.c threads: connection state changes, for the operator. */
static void on_disconnected(natsConnection *nc, void *closure)
{
    if (natsConnection_IsClosed(nc)) /* our own close */
        return;
    AETHER_WARN(LOG_MOD, "%s: connection to NATS lost; reconnecting", (const char *)closure);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    char url[256] = "";
    (void)natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    AETHER_INFO(LOG_MOD, "%s: reconnected to %s", (const char *)closure, url);
}

/* nats.c reports a slow consumer once per dropped batch: under a flood
 * that is hundreds of lines a second. One line per second, with the count
 * of what it stands for. nats.c calls this on one thread per connection;
 * the limiter is lock-free all the same. */
static aether_log_ratelimit g_error_log = { .window_ns = 1000000000ull, .window_start_ns = UINT64_MAX };

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)sub;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t suppressed = 0;
    if (!aether_log_ratelimit_allow(&g_error_log, now, &suppressed))
        return;
    /* A permissions violation names the refused subject only in the
     * connection's last error text: say it, so the operator knows which
     * permission is missing. */
    const char *text = NULL;
    if (err == NATS_NOT_PERMITTED && natsConnection_GetLastError(nc, &text) == NATS_NOT_PERMITTED &&
        text != NULL && text[0] != '\0') {
        AETHER_WARN(LOG_MOD, "%s: refused by the NATS server: %s [%llu more suppressed]",
                    (const char *)closure, text, (unsigned long long)suppressed);
        return;
    }
    AETHER_WARN(LOG_MOD, "%s: asynchronous NATS error: %s [%llu more suppressed]", (const char *)closure,
                natsStatus_GetText(err), (unsigned long long)suppressed);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A failure that waiting cannot heal. */
static bool permanent(natsStatus s)
{
    return s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED || s == NATS_SSL_ERROR ||
           s == NATS_INVALID_ARG || s == NATS_ERR || s == NATS_NO_MEMORY || s == NATS_NOT_FOUND;
}

/* The status text, plus nats.c's detail for this thread when it adds
 * something (the server's -ERR text, a TLS reason), without its
 * "(file.c:123): " source position. */
static void explain(natsStatus ns, char *out, size_t cap)
{
    const char *text = natsStatus_GetText(ns);
    const char *detail = nats_GetLastError(NULL);
    if (detail != NULL && detail[0] == '(') {
        const char *close = strstr(detail, "): ");
        if (close != NULL)
            detail = close + 3;
    }
    if (detail == NULL || detail[0] == '\0' || strcmp(detail, text) == 0) {
        snprintf(out, cap, "%s", text);
        return;
    }
    snprintf(out, cap, "%s: %.140s", text, detail);
    size_t len = strlen(out), tail = sizeof(": (null)") - 1u; /* nats.c's missing OpenSSL reason */
    if (len > tail && strcmp(out + len - tail, ": (null)") == 0)
        out[len - tail] = '\0';
}

/* Builds the options; on failure err says which one and why. */
static aether_status build(const aether_nats_settings *s, const char *name, char **servers, int count,
                           natsOptions **out, aether_err *err)
{
    natsOptions *no = NULL;
    natsStatus ns = natsOptions_Create(&no);
    if (ns != NATS_OK)
        return aether_err_set(err, AETHER_ENOMEM, "nats options: %s", natsStatus_GetText(ns));
    const char *what = "";
/* Sets one option while all went well, remembering which one for the error. */
#define TRY(label, call)          \
    do {                          \
        if (ns == NATS_OK) {      \
            what = (label);       \
            ns = (call);          \
        }                         \
    } while (0)
    /* Footprint (nats_conn.h, docs/tuning.md): a request subscribes its
     * own inbox instead of sharing a multiplexer subscription, whose
     * delivery thread nats.c would keep for the connection's lifetime. */
    TRY("request style", natsOptions_UseOldRequestStyle(no, true));
    TRY("servers", natsOptions_SetServers(no, (const char **)servers, count));
    TRY("name", natsOptions_SetName(no, name));
    TRY("reconnect", natsOptions_SetMaxReconnect(no, -1)); /* forever (nats.h: a negative value) */
    TRY("reconnect wait", natsOptions_SetReconnectWait(no, (int64_t)s->reconnect_wait_ms));
    TRY("reconnect jitter", natsOptions_SetReconnectJitter(no, RECONNECT_JITTER_MS, RECONNECT_JITTER_MS));
    /* One attempt over the whole list fits in half the limit. */
    TRY("timeout", natsOptions_SetTimeout(no, (int64_t)(s->connect_timeout_ms / 2u / (unsigned)count) + 100));
    TRY("callbacks", natsOptions_SetDisconnectedCB(no, on_disconnected, (void *)name));
    TRY("callbacks", natsOptions_SetReconnectedCB(no, on_reconnected, (void *)name));
    TRY("callbacks", natsOptions_SetErrorHandler(no, on_error, (void *)name));
    if (is_set(s->user))
        TRY("user/password", natsOptions_SetUserInfo(no, s->user, s->password));
    if (is_set(s->token))
        TRY("token", natsOptions_SetToken(no, s->token));
    if (is_set(s->creds))
        TRY("credentials file", natsOptions_SetUserCredentialsFromFiles(no, s->creds, NULL));
    if (tls_wanted(s))
        TRY("TLS", natsOptions_SetSecure(no, true));
    if (is_set(s->tls_ca))
        TRY("TLS CA file", natsOptions_LoadCATrustedCertificates(no, s->tls_ca));
    if (is_set(s->tls_cert))
        TRY("TLS client certificate", natsOptions_LoadCertificatesChain(no, s->tls_cert, s->tls_key));
    if (is_set(s->tls_hostname))
        TRY("TLS hostname", natsOptions_SetExpectedHostname(no, s->tls_hostname));
    if (s->tls_skip_verify)
        TRY("TLS skip verify", natsOptions_SkipServerVerification(no, true));
#undef TRY
    if (ns != NATS_OK) {
        char why[192];
        explain(ns, why, sizeof(why));
        aether_err_set(err, ns == NATS_NO_MEMORY ? AETHER_ENOMEM : AETHER_EINVAL, "nats option %s: %s", what, why);
        natsOptions_Destroy(no);
        return err->code;
    }
    *out = no;
    return AETHER_OK;
}

aether_status aether_nats_connect(const aether_nats_settings *s, const char *name, const volatile int *stop,
                                  natsConnection **out, aether_err *err)
{
    *out = NULL;
    if (!is_set(s->urls))
        return aether_err_set(err, AETHER_EINVAL, "nats_urls: no server given");
    char list[AETHER_SETTINGS_STR_MAX + 1];
    snprintf(list, sizeof(list), "%s", s->urls);
    char *servers[AETHER_SETTINGS_URLS_MAX];
    int count = 0;
    for (char *p = list; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ')
            p++;
        if (*p != '\0') {
            if (count == (int)AETHER_SETTINGS_URLS_MAX)
                return aether_err_set(err, AETHER_EINVAL, "nats_urls: more than %u servers",
                                      AETHER_SETTINGS_URLS_MAX);
            servers[count++] = p;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    if (count == 0)
        return aether_err_set(err, AETHER_EINVAL, "nats_urls: no server given");
    natsOptions *no = NULL;
    /* nats.c starts its library threads at its first call (natsOptions_Create
     * opens the library) and the connection's threads at the connect: they
     * inherit the caller's mask, so every signal is blocked around both
     * (engine/thread.h: library threads never take a signal). */
    sigset_t mask;
    aether_signals_block_all(&mask);
    aether_status st = build(s, name, servers, count, &no, err);
    aether_signals_restore(&mask);
    if (st != AETHER_OK)
        return st;
    aether_clock *clk = aether_clock_real();
    uint64_t t0 = aether_clock_now_ns(clk);
    uint64_t limit = (uint64_t)s->connect_timeout_ms * AETHER_NS_PER_MS;
    natsStatus ns;
    for (;;) {
        aether_signals_block_all(&mask);
        ns = natsConnection_Connect(out, no);
        aether_signals_restore(&mask);
        if (ns == NATS_OK || permanent(ns))
            break;
        if (stop != NULL && *stop != 0) {
            natsOptions_Destroy(no);
            return aether_err_set(err, AETHER_ECLOSED, "connecting to NATS at %s: interrupted", s->urls);
        }
        if (aether_clock_now_ns(clk) - t0 + CONNECT_RETRY_MS * AETHER_NS_PER_MS >= limit)
            break;
        sleep_ms(CONNECT_RETRY_MS);
    }
    char why[192];
    explain(ns, why, sizeof(why));
    natsOptions_Destroy(no);
    if (ns == NATS_OK) {
        char url[256] = "";
        (void)natsConnection_GetConnectedUrl(*out, url, sizeof(url));
        AETHER_INFO(LOG_MOD, "%s: connected to %s (auth: %s%s)", name, url, aether_nats_auth_method(s),
                    tls_wanted(s) ? ", TLS" : "");
        return AETHER_OK;
    }
    *out = NULL;
    if (ns == NATS_CONNECTION_AUTH_FAILED || ns == NATS_NOT_PERMITTED)
        return aether_err_set(err, AETHER_EPERM, "NATS at %.100s refused the credentials (%s): %s", s->urls,
                              aether_nats_auth_method(s), why);
    if (ns == NATS_SSL_ERROR)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "NATS at %.100s: TLS handshake failed: %s", s->urls,
                              why);
    if (ns == NATS_NO_MEMORY)
        return aether_err_set(err, AETHER_ENOMEM, "connecting to NATS: %s", why);
    if (permanent(ns))
        return aether_err_set(err, AETHER_EINVAL, "NATS at %.100s: %s", s->urls, why);
    return aether_err_set(err, AETHER_EUNAVAILABLE, "cannot reach NATS at %.100s: %s (tried for %u ms)",
                          s->urls, why, s->connect_timeout_ms);
}

/* The subjects the event stream stores: every event type but LeaseRenewed
 * (a heartbeat every ttl/4, not history: DESIGN 2), one subject each, so a
 * renewal published on core NATS matches no stream. Fills subj[] (cap each)
 * and the pointers in subjects[]; returns the count. */
static int event_stream_subjects(const char *cluster, char subj[][160], const char **subjects)
{
    int n = 0;
    for (int t = 1; t < AETHER_EVT_COUNT_; t++) { /* bounded: eleven types */
        if (t == AETHER_EVT_LEASE_RENEWED)
            continue;
        snprintf(subj[n], 160, "aether.%s.evt.%s", cluster,
                 aether_event_type_name((aether_event_type)t));
        subjects[n] = subj[n];
        n++;
    }
    return n;
}

/* An existing stream on the subjects of a node before this rule
 * (aether.<cluster>.evt.>, renewals included) gets the stored subjects; its
 * other settings (an operator's limits) stay. Logged; a failure is only a
 * warning (the stream still works, with renewals in it). */
static void event_stream_update_subjects(jsCtx *js, const jsStreamInfo *si, const char *old_subject,
                                         const char **subjects, int n)
{
    const jsStreamConfig *have = si->Config;
    if (have == NULL || have->SubjectsLen != 1 || strcmp(have->Subjects[0], old_subject) != 0)
        return;
    jsStreamConfig cfg = *have;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = n;
    jsStreamInfo *out = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_UpdateStream(&out, js, &cfg, NULL, &jerr);
    if (ns == NATS_OK)
        AETHER_INFO(LOG_MOD, "event stream %s: subjects %s replaced by the %d stored event types "
                    "(LeaseRenewed is no longer stored)", have->Name, old_subject, n);
    else
        AETHER_WARN(LOG_MOD, "event stream %s: could not stop storing LeaseRenewed (update of "
                    "subjects %s: %s, JetStream error %d); it keeps storing every event",
                    have->Name, old_subject, natsStatus_GetText(ns), (int)jerr);
    jsStreamInfo_Destroy(out);
}

aether_status aether_nats_event_stream_ensure(natsConnection *nc, const char *cluster, uint32_t replicas,
                                              uint32_t timeout_ms, aether_err *err)
{
    char name[128], old_subject[160], subj[AETHER_EVT_COUNT_][160];
    const char *subjects[AETHER_EVT_COUNT_];
    if (snprintf(name, sizeof(name), "AETHER_%s_EVENTS", cluster) >= (int)sizeof(name) ||
        snprintf(old_subject, sizeof(old_subject), "aether.%s.evt.>", cluster) >= (int)sizeof(old_subject) ||
        strlen(cluster) > AETHER_NODE_ID_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "event stream: cluster name '%.64s' too long", cluster);
    int n_subjects = event_stream_subjects(cluster, subj, subjects);
    AETHER_ASSERT(n_subjects == AETHER_EVT_COUNT_ - 2);
    jsCtx *js = NULL;
    natsStatus ns = natsConnection_JetStream(&js, nc, NULL);
    if (ns != NATS_OK)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "event stream: JetStream context: %s",
                              natsStatus_GetText(ns));
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = n_subjects;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas > 0 ? (int64_t)replicas : 1;
    cfg.MaxAge = (int64_t)AETHER_EVENT_STREAM_MAX_AGE_S * 1000000000ll;
    cfg.MaxBytes = AETHER_EVENT_STREAM_MAX_BYTES;
    cfg.Discard = js_DiscardOld;
    aether_clock *clk = aether_clock_real();
    uint64_t t0 = aether_clock_now_ns(clk);
    aether_status st;
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        ns = js_GetStreamInfo(&si, js, name, NULL, &jerr);
        if (ns == NATS_OK) {
            event_stream_update_subjects(js, si, old_subject, subjects, n_subjects);
            jsStreamInfo_Destroy(si);
            st = AETHER_OK;
            break;
        }
        if (ns == NATS_NOT_FOUND) {
            ns = js_AddStream(&si, js, &cfg, NULL, &jerr);
            if (ns == NATS_OK) {
                jsStreamInfo_Destroy(si);
                AETHER_INFO(LOG_MOD, "event stream %s created on %s (every event type but "
                            "LeaseRenewed; R%lld)", name, old_subject, (long long)cfg.Replicas);
                st = AETHER_OK;
                break;
            }
            /* A JetStream cluster that is not ready yet passes (no meta
             * leader, too few servers up to place the replicas): retried. */
            bool transient = jerr == JSClusterNotAvailErr || jerr == JSInsufficientResourcesErr ||
                             jerr == JSClusterNoPeersErr || jerr == JSClusterNotLeaderErr ||
                             jerr == JSStreamOfflineErr;
            if (jerr != 0 && !transient) { /* the server said no: overlapping subjects, bad replicas, ... */
                st = aether_err_set(err, AETHER_EINVAL, "event stream %s: %s (JetStream error %d)", name,
                                    natsStatus_GetText(ns), (int)jerr);
                break;
            }
        }
        if (aether_clock_now_ns(clk) - t0 + CONNECT_RETRY_MS * AETHER_NS_PER_MS >=
            (uint64_t)timeout_ms * AETHER_NS_PER_MS) {
            st = aether_err_set(err, AETHER_EUNAVAILABLE, "event stream %s: %s (is JetStream enabled?)", name,
                                natsStatus_GetText(ns));
            break;
        }
        sleep_ms(CONNECT_RETRY_MS);
    }
    jsCtx_Destroy(js);
    return st;
}
