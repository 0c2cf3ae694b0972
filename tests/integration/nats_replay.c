/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_replay.c: a duplicated event, as a reconnect buffer or a redelivery
 * would make one: captures the next genuine event of an Aether cluster on
 * NATS and publishes the very same bytes again, later (tests layer; the
 * `dup-event` fault of tools/chaos, issue 12 item 7).
 *
 *   nats_replay --nats URL[,URL...] --cluster C [--delay-ms D] [--count N]
 *               [--gap-ms G] [--timeout-ms T] [--skip TYPE | --type TYPE]
 *
 * It subscribes aether.<C>.evt.>, takes the first message that decodes as
 * an event (transport/codec.h: a genuine one, published by a node) - with
 * --skip, the first of another type within --timeout-ms (default 8000), else
 * the first of any type within 3 s more; with --type, the first of that
 * type within --timeout-ms - unsubscribes, waits --delay-ms
 * (default 500), then publishes the captured bytes on the captured subject
 * --count times (default 1, at most 10), --gap-ms apart (default 100).
 * Nothing is altered: the copy carries the original's term, seq, emitter
 * and ts. A node must drop it (a seq it has applied, or an older term); the
 * observer of tools/chaos checks that no node applies one twice.
 *
 * Output: one line
 *   replayed <subject tail> <Type> term=T seq=S node=N copies=K delay_ms=D
 * Exit: 0 replayed, 1 nothing captured in time or a publish failed (reason
 * on stderr), 2 usage. Every wait is bounded (--timeout-ms + 3 s + delay +
 * count x gap, plus a 10 s connect).
 *
 * Threading: one thread (a synchronous subscription).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "aether_internal.h"
#include "codec.h"

#define EXIT_USAGE 2
#define REPLAY_URLS_MAX 16
#define REPLAY_POLL_MS 100          /* NextMsg slice: signals and deadlines checked this often */
#define REPLAY_CONNECT_MS 10000u    /* connect attempts, bounded */
#define REPLAY_ANY_GRACE_MS 3000u   /* --skip: after --timeout-ms, any type this much longer */
#define REPLAY_COUNT_MAX 10u
#define REPLAY_FLUSH_MS 2000

typedef struct replay_opts {
    const char *urls, *cluster, *skip, *only;
    uint64_t delay_ms, count, gap_ms, timeout_ms;
} replay_opts;

static volatile sig_atomic_t replay_stop;

static void replay_on_signal(int sig) { replay_stop = sig; }

static uint64_t replay_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void replay_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal ends it early: the caller checks replay_stop */
}

static int replay_parse(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int replay_usage(const char *msg)
{
    fprintf(stderr, "nats_replay: %s\n"
                    "usage: nats_replay --nats URL[,URL...] --cluster C [--delay-ms D] [--count N]\n"
                    "                   [--gap-ms G] [--timeout-ms T] [--skip TYPE | --type TYPE]\n",
            msg);
    return EXIT_USAGE;
}

static natsConnection *replay_connect(const replay_opts *o)
{
    char *copy = strdup(o->urls);
    const char *servers[REPLAY_URLS_MAX];
    int count = 0;
    for (char *p = copy; p != NULL && count < REPLAY_URLS_MAX;) { /* bounded: REPLAY_URLS_MAX */
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0')
            servers[count++] = p;
        p = comma != NULL ? comma + 1 : NULL;
    }
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    natsStatus s = copy != NULL && count > 0 ? natsOptions_Create(&no) : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetServers(no, servers, count);
    if (s == NATS_OK)
        s = natsOptions_SetName(no, "nats_replay");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 100);
    uint64_t t0 = replay_mono_ms();
    while (s == NATS_OK) { /* bounded: REPLAY_CONNECT_MS */
        s = natsConnection_Connect(&nc, no);
        if (s == NATS_OK || replay_stop || replay_mono_ms() - t0 >= REPLAY_CONNECT_MS)
            break;
        replay_sleep_ms(200);
        s = NATS_OK;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "nats_replay: cannot connect to %s: %s\n", o->urls, natsStatus_GetText(s));
        nc = NULL;
    }
    natsOptions_Destroy(no);
    free(copy);
    return nc;
}

/* The captured message: its subject, bytes, and what it is. */
typedef struct captured {
    char subject[256];
    char *data;
    int len;
    char type[48], node[AETHER_NODE_ID_LEN_MAX + 1];
    uint64_t term, seq;
} captured;

/* Waits for the first genuine event (see the header). 0 captured, -1 not. */
static int capture(const replay_opts *o, natsConnection *nc, captured *c)
{
    char subject[128];
    snprintf(subject, sizeof(subject), "aether.%s.evt.>", o->cluster);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sub, nc, subject);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, REPLAY_FLUSH_MS);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_replay: subscribe %s: %s\n", subject, natsStatus_GetText(s));
        natsSubscription_Destroy(sub);
        return -1;
    }
    uint64_t t0 = replay_mono_ms();
    uint64_t strict_until = t0 + o->timeout_ms;
    uint64_t until = strict_until + (o->skip != NULL ? REPLAY_ANY_GRACE_MS : 0);
    int rc = -1;
    while (rc != 0 && !replay_stop && replay_mono_ms() < until) { /* bounded: until */
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, REPLAY_POLL_MS);
        if (s != NATS_OK) {
            if (s != NATS_TIMEOUT)
                replay_sleep_ms(REPLAY_POLL_MS); /* disconnected: resumes on reconnect */
            continue;
        }
        aether_codec_limits lim = {.max_bytes = 0, .shard_count = 0, .cluster = o->cluster, .min_term = 0,
                                   .stats = NULL};
        aether_codec_msg m;
        aether_err err = {0};
        const char *data = natsMsg_GetData(msg);
        int len = natsMsg_GetDataLength(msg);
        if (aether_codec_decode(data, (size_t)len, &lim, &m, &err) == AETHER_OK) {
            if (m.kind == AETHER_CODEC_EVENT) {
                const aether_event *e = m.u.event;
                const char *type = aether_event_type_name(e->type);
                bool skipped = (o->skip != NULL && strcmp(type, o->skip) == 0 && replay_mono_ms() < strict_until) ||
                               (o->only != NULL && strcmp(type, o->only) != 0);
                if (!skipped && (c->data = malloc((size_t)len)) != NULL) {
                    memcpy(c->data, data, (size_t)len);
                    c->len = len;
                    snprintf(c->subject, sizeof(c->subject), "%s", natsMsg_GetSubject(msg));
                    snprintf(c->type, sizeof(c->type), "%s", type);
                    snprintf(c->node, sizeof(c->node), "%s", e->node.str);
                    c->term = e->term;
                    c->seq = e->seq;
                    rc = 0;
                }
            }
            aether_codec_msg_fini(&m);
        }
        natsMsg_Destroy(msg);
    }
    (void)natsSubscription_Unsubscribe(sub); /* never hear our own copies */
    natsSubscription_Destroy(sub);
    if (rc != 0)
        fprintf(stderr, "nats_replay: no event on %s within %" PRIu64 " ms\n", subject, until - t0);
    return rc;
}

int main(int argc, char **argv)
{
    replay_opts o = {.delay_ms = 500, .count = 1, .gap_ms = 100, .timeout_ms = 8000};
    enum { OPT_NATS = 1, OPT_CLUSTER, OPT_DELAY, OPT_COUNT, OPT_GAP, OPT_TIMEOUT, OPT_SKIP, OPT_TYPE };
    static const struct option opts[] = {
        {"nats", required_argument, NULL, OPT_NATS},     {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"delay-ms", required_argument, NULL, OPT_DELAY}, {"count", required_argument, NULL, OPT_COUNT},
        {"gap-ms", required_argument, NULL, OPT_GAP},     {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"skip", required_argument, NULL, OPT_SKIP},      {"type", required_argument, NULL, OPT_TYPE},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_NATS: o.urls = optarg; break;
        case OPT_CLUSTER: o.cluster = optarg; break;
        case OPT_SKIP: o.skip = optarg; break;
        case OPT_TYPE: o.only = optarg; break;
        case OPT_DELAY:
            if (replay_parse(optarg, 0, 600000, &o.delay_ms) != 0)
                return replay_usage("--delay-ms wants 0..600000");
            break;
        case OPT_COUNT:
            if (replay_parse(optarg, 1, REPLAY_COUNT_MAX, &o.count) != 0)
                return replay_usage("--count wants 1..10");
            break;
        case OPT_GAP:
            if (replay_parse(optarg, 0, 60000, &o.gap_ms) != 0)
                return replay_usage("--gap-ms wants 0..60000");
            break;
        case OPT_TIMEOUT:
            if (replay_parse(optarg, 1, 600000, &o.timeout_ms) != 0)
                return replay_usage("--timeout-ms wants 1..600000");
            break;
        default: return replay_usage("unknown option or missing value");
        }
    }
    if (optind != argc || o.urls == NULL || o.cluster == NULL)
        return replay_usage("--nats and --cluster are required, nothing else");
    if (o.skip != NULL && o.only != NULL)
        return replay_usage("--skip and --type exclude each other");
    aether_err err;
    if (aether_cluster_name_validate(o.cluster, &err) != AETHER_OK)
        return replay_usage(err.msg);
    struct sigaction sa = {0};
    sa.sa_handler = replay_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    natsConnection *nc = replay_connect(&o);
    if (nc == NULL)
        return 1;
    captured c = {0};
    int rc = capture(&o, nc, &c);
    uint64_t sent = 0;
    if (rc == 0) {
        replay_sleep_ms(o.delay_ms);
        for (uint64_t i = 0; i < o.count && !replay_stop; i++) { /* bounded: count <= 10 */
            if (i > 0)
                replay_sleep_ms(o.gap_ms);
            natsStatus s = natsConnection_Publish(nc, c.subject, c.data, c.len);
            if (s == NATS_OK)
                s = natsConnection_FlushTimeout(nc, REPLAY_FLUSH_MS);
            if (s != NATS_OK) {
                fprintf(stderr, "nats_replay: publish on %s: %s\n", c.subject, natsStatus_GetText(s));
                rc = 1;
                break;
            }
            sent++;
        }
        size_t plen = strlen("aether.") + strlen(o.cluster) + 1;
        printf("replayed %s %s term=%" PRIu64 " seq=%" PRIu64 " node=%s copies=%" PRIu64 " delay_ms=%" PRIu64
               "\n",
               strlen(c.subject) > plen ? c.subject + plen : c.subject, c.type, c.term, c.seq, c.node, sent,
               o.delay_ms);
        if (sent == 0)
            rc = 1;
    } else {
        rc = 1;
    }
    free(c.data);
    natsConnection_Destroy(nc);
    nats_CloseAndWait(2000); /* the library's threads end before exit, as in nats_probe */
    return rc;
}
