/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.c: the commands that follow the cluster over time: watch, events,
 * top. watch and top receive on nats.c's subscription threads, which only
 * enqueue (see each section's DESIGN).
 */
#include "ctl.h"

/* ---- watch -----------------------------------------------------------------
 *
 * DESIGN
 *  1. Subscribe (async) to aether.<cluster>.evt.> and aether.<cluster>.map
 *     (with --all: aether.<cluster>.>). nats.c runs each subscription's
 *     callback on its own thread; the callback only appends the message to
 *     one bounded queue (WATCH_QUEUE_MAX; when full the message is dropped
 *     and counted, and the main thread reports the count), so a slow
 *     terminal never blocks nats.c.
 *  2. The main thread pops, decodes strictly (codec.h for envelopes,
 *     shardmap_codec.h for maps), prints one line (or one JSON object), and
 *     checks the stop conditions at least every WATCH_POLL_MS: a signal,
 *     --count messages printed, --duration elapsed.
 *  3. Refused messages are printed as such; nothing on the wire can crash
 *     us because both decoders are strict and bounded.
 * The queue is static: a callback that nats.c still runs while we
 * unsubscribe touches memory that lives as long as the process.
 */

#define WATCH_QUEUE_MAX 4096u /* messages waiting for the terminal */
#define WATCH_POLL_MS 100u    /* longest wait between stop-condition checks */
#define WATCH_DURATION_S_MAX (365.0 * 86400.0)

typedef struct watch_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;                 /* signalled on every append */
    natsMsg *items[WATCH_QUEUE_MAX];   /* ring, under mu */
    uint32_t head, count;              /* under mu */
    uint64_t dropped;                  /* under mu: refused because the ring was full */
} watch_queue;

static watch_queue g_watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void watch_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    watch_queue *q = closure;
    if (!ctl_authentic(msg, (uint64_t)(ctl_wall_ns() / 1000000))) {
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->count == WATCH_QUEUE_MAX) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        natsMsg_Destroy(msg);
        return;
    }
    q->items[(q->head + q->count) % WATCH_QUEUE_MAX] = msg;
    q->count++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Pops one message, waiting at most wait_ms; NULL if none. *dropped gets the
 * drop counter. */
static natsMsg *watch_pop(watch_queue *q, uint64_t wait_ms, uint64_t *dropped)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000u);
    ts.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    if (q->count == 0 && !g_ctl_stop)
        (void)pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    natsMsg *m = NULL;
    if (q->count > 0) {
        m = q->items[q->head];
        q->head = (q->head + 1) % WATCH_QUEUE_MAX;
        q->count--;
    }
    *dropped = q->dropped;
    pthread_mutex_unlock(&q->mu);
    return m;
}

static void watch_stamp(char *buf, size_t cap, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    if (localtime_r(&sec, &tm) == NULL) { /* a timestamp no calendar holds (bad input) */
        snprintf(buf, cap, "??:??:??.???");
        return;
    }
    size_t n = strftime(buf, cap, "%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03d", (int)((ns / 1000000) % 1000));
}

/* An event's ts_ms (any uint64 the codec accepts) as ns, saturated. */
static int64_t stamp_ns_of_ms(uint64_t ms)
{
    return ms > (uint64_t)INT64_MAX / 1000000u ? INT64_MAX : (int64_t)ms * 1000000;
}

/* A subject from the wire, printable: bytes outside 0x21..0x7e become '?'
 * (no terminal escapes, valid UTF-8 for JSON). */
static const char *printable_subject(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = (unsigned char)in[i] > 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
    return out;
}

typedef struct watch_ctx {
    const char *cluster;
    char prefix[CTL_BUCKET_MAX]; /* "aether.<cluster>." */
    size_t prefix_len;
    bool json;
    uint64_t events, maps, others, refused;
} watch_ctx;

static void watch_refused(watch_ctx *w, const char *stamp, int64_t ns, const char *subject,
                          size_t bytes, const char *why)
{
    w->refused++;
    char safe[256];
    subject = printable_subject(subject, safe, sizeof(safe));
    if (w->json) {
        json_t *o = json_pack("{s:I,s:s,s:s,s:I,s:s}", "received_ms", (json_int_t)(ns / 1000000),
                              "subject", subject, "kind", "refused", "bytes", (json_int_t)bytes,
                              "reason", why);
        (void)ctl_emit_json(o);
    } else {
        printf("%s REFUSED %s (%zu bytes): %s\n", stamp, subject, bytes, why);
    }
}

/* Decodes and prints one message. */
static void watch_print(watch_ctx *w, natsMsg *msg)
{
    int64_t now = ctl_wall_ns();
    char stamp[32];
    watch_stamp(stamp, sizeof(stamp), now);
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *suffix = strncmp(subject, w->prefix, w->prefix_len) == 0 ? subject + w->prefix_len
                                                                          : "";
    aether_err err = {0};
    if (strcmp(suffix, "map") == 0) {
        aether_shardmap *m = NULL;
        if (aether_shardmap_codec_decode(data, len, &m, NULL, &err) != AETHER_OK) {
            watch_refused(w, stamp, now, subject, len, err.msg);
            return;
        }
        w->maps++;
        uint32_t moving = ctl_map_moving(m);
        if (w->json) {
            json_t *o = json_object();
            ctl_jset(o, "received_ms", json_integer(now / 1000000));
            ctl_jset(o, "subject", json_string(subject));
            ctl_jset(o, "kind", json_string("map"));
            ctl_jset(o, "version", ctl_jint(m->version));
            ctl_jset(o, "term", ctl_jint(m->term));
            ctl_jset(o, "shard_count", ctl_jint(m->shard_count));
            ctl_jset(o, "replication", ctl_jint(m->replication));
            ctl_jset(o, "nodes", ctl_jint(m->node_count));
            ctl_jset(o, "moving", ctl_jint(moving));
            (void)ctl_emit_json(o);
        } else {
            printf("%s map version=%" PRIu64 " term=%" PRIu64 " shards=%u replication=%u nodes=%u "
                   "moving=%u\n",
                   stamp, m->version, (uint64_t)m->term, m->shard_count, m->replication,
                   m->node_count, moving);
        }
        aether_shardmap_destroy(m);
        return;
    }
    aether_codec_kind want;
    const char *want_type = NULL; /* the type the subject names, if any */
    if (strncmp(suffix, "evt.", 4) == 0) {
        want = AETHER_CODEC_EVENT;
        want_type = suffix + 4;
    } else if (strncmp(suffix, "cmd.", 4) == 0) {
        want = AETHER_CODEC_COMMAND;
        want_type = suffix + 4;
    } else if (strncmp(suffix, "hb.", 3) == 0) {
        want = AETHER_CODEC_HEARTBEAT;
    } else if (strcmp(suffix, "rel") == 0) {
        want = AETHER_CODEC_RELEASE;
    } else {
        watch_refused(w, stamp, now, subject, len, "not an aether subject");
        return;
    }
    aether_codec_limits lim = {.cluster = w->cluster};
    aether_codec_msg m;
    if (aether_codec_decode(data, len, &lim, &m, &err) != AETHER_OK) {
        watch_refused(w, stamp, now, subject, len, err.msg);
        return;
    }
    const char *type = NULL;
    char line[1024];
    line[0] = '\0';
    switch (m.kind) {
    case AETHER_CODEC_EVENT:
        type = aether_event_type_name(m.u.event->type);
        (void)aether_event_format(m.u.event, line, sizeof(line));
        break;
    case AETHER_CODEC_COMMAND: {
        const aether_command *c = &m.u.command;
        type = aether_command_type_name(c->type);
        int n = snprintf(line, sizeof(line), "%s sender=%s term=%" PRIu64, type, c->sender.str,
                         (uint64_t)c->term);
        size_t at = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
        switch (c->type) {
        case AETHER_CMD_JOIN_CLUSTER:
            n = snprintf(line + at, sizeof(line) - at, " node=%s address=%s zone=%s incarnation=%" PRIu64,
                         c->data.join.info.id.str, c->data.join.info.address,
                         c->data.join.info.zone[0] ? c->data.join.info.zone : "-",
                         c->data.join.info.incarnation);
            at = n > 0 && at + (size_t)n < sizeof(line) ? at + (size_t)n : sizeof(line) - 1;
            if (c->data.join.terms.shard_count == 0) /* a node from before admission terms */
                snprintf(line + at, sizeof(line) - at, " terms=none");
            else
                snprintf(line + at, sizeof(line) - at,
                         " shard_count=%u replication=%u wire=%u..%u params=%016" PRIx64,
                         c->data.join.terms.shard_count, c->data.join.terms.replication,
                         c->data.join.terms.wire_min, c->data.join.terms.wire_max,
                         c->data.join.terms.params);
            break;
        case AETHER_CMD_LEAVE_CLUSTER:
            snprintf(line + at, sizeof(line) - at, " node=%s", c->data.leave.node.str);
            break;
        case AETHER_CMD_MARK_NODE_FAILED:
            snprintf(line + at, sizeof(line) - at, " node=%s silent_ms=%" PRIu64,
                     c->data.mark_failed.node.str, c->data.mark_failed.silent_ms);
            break;
        case AETHER_CMD_ELECT_LEADER:
            snprintf(line + at, sizeof(line) - at, " candidate=%s", c->data.elect.candidate.str);
            break;
        case AETHER_CMD_REBALANCE_SHARDS:
            snprintf(line + at, sizeof(line) - at, " reason=%s", c->data.rebalance.reason);
            break;
        default:
            break;
        }
        break;
    }
    case AETHER_CODEC_HEARTBEAT:
        type = AETHER_CODEC_TYPE_HEARTBEAT;
        snprintf(line, sizeof(line), "%s node=%s incarnation=%" PRIu64, type,
                 m.u.heartbeat.node.str, m.u.heartbeat.incarnation);
        break;
    case AETHER_CODEC_RELEASE:
        type = AETHER_CODEC_TYPE_RELEASE;
        snprintf(line, sizeof(line), "%s shard=%u from=%s map_version=%" PRIu64 " term=%" PRIu64,
                 type, m.u.release.shard, m.u.release.from.str, m.u.release.map_version,
                 (uint64_t)m.u.release.term);
        break;
    default:
        type = AETHER_CODEC_TYPE_REPLY;
        break;
    }
    if (m.kind != want || (want_type != NULL && strcmp(want_type, type) != 0)) {
        char why[160];
        snprintf(why, sizeof(why), "a %s message on a subject for %s", type,
                 want_type != NULL ? want_type : suffix);
        aether_codec_msg_fini(&m);
        watch_refused(w, stamp, now, subject, len, why);
        return;
    }
    if (m.kind == AETHER_CODEC_EVENT)
        w->events++;
    else
        w->others++;
    if (w->json) {
        static const char *const kinds[] = {
            [AETHER_CODEC_EVENT] = "event",         [AETHER_CODEC_COMMAND] = "command",
            [AETHER_CODEC_RELEASE] = "release",     [AETHER_CODEC_HEARTBEAT] = "heartbeat",
            [AETHER_CODEC_REPLY] = "reply",
        };
        json_t *o = json_object();
        ctl_jset(o, "received_ms", json_integer(now / 1000000));
        ctl_jset(o, "subject", json_string(subject));
        ctl_jset(o, "kind", json_string(kinds[m.kind]));
        ctl_jset(o, "type", json_string(type));
        /* The codec accepted it, so it is one well-formed JSON object. */
        ctl_jset(o, "message", json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL));
        (void)ctl_emit_json(o);
    } else {
        printf("%s %s\n", stamp, line);
    }
    aether_codec_msg_fini(&m);
}

/* "S" or "S.fff" seconds, > 0. */
static int parse_seconds(const char *s, uint64_t *ms_out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v > 0.0) || v > WATCH_DURATION_S_MAX)
        return -1;
    uint64_t ms = (uint64_t)llround(v * 1000.0);
    *ms_out = ms == 0 ? 1 : ms;
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    const command *self = ctl_find_command("watch");
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"all", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t count = 0, duration_ms = 0;
    bool all = false;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "c:d:a", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 'c':
            if (ctl_parse_u64_in(optarg, 1, UINT32_MAX, &count) != 0)
                return ctl_usage_error(self, "--count must be a positive integer, got '%s'", optarg);
            break;
        case 'd':
            if (parse_seconds(optarg, &duration_ms) != 0)
                return ctl_usage_error(self, "--duration must be a positive number of seconds, got '%s'",
                                   optarg);
            break;
        case 'a': all = true; break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    /* Watching a cluster before its first node starts is legitimate (to see
     * the bootstrap), but a typo in --cluster would print nothing forever:
     * say so on stderr, and watch anyway. */
    kvStore *probe = NULL;
    natsStatus ns = js_KeyValue(&probe, cc.js, cc.state_bucket);
    if (ns == NATS_OK)
        kvStore_Destroy(probe);
    else if (ns == NATS_NOT_FOUND)
        fprintf(stderr, "aetherctl: note: cluster '%s' has no state bucket on %s yet (no node has "
                "run with --cluster %s); watching anyway\n",
                cc.cluster, cc.servers, cc.cluster);

    watch_ctx w = {.cluster = cc.cluster, .json = o.json};
    int pl = snprintf(w.prefix, sizeof(w.prefix), "aether.%s.", cc.cluster);
    w.prefix_len = pl > 0 ? (size_t)pl : 0;
    char subj[3][CTL_BUCKET_MAX + 8];
    int nsubs = 0;
    if (all) {
        snprintf(subj[nsubs++], sizeof(subj[0]), "%s>", w.prefix);
    } else {
        snprintf(subj[nsubs++], sizeof(subj[0]), "%sevt.>", w.prefix);
        snprintf(subj[nsubs++], sizeof(subj[0]), "%smap", w.prefix);
    }
    natsSubscription *subs[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nsubs && rc == 0; i++) {
        ns = natsConnection_Subscribe(&subs[i], cc.nc, subj[i], watch_on_msg, &g_watch);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "subscribing to %s: %s", subj[i], natsStatus_GetText(ns));
    }
    if (rc == 0 && (ns = natsConnection_FlushTimeout(cc.nc, (int64_t)cc.s.nats.request_timeout_ms)) !=
                       NATS_OK)
        rc = ctl_no_cluster(&cc, "the server did not confirm the subscriptions: %s",
                            natsStatus_GetText(ns));
    if (rc == 0 && !o.json)
        fprintf(stderr, "aetherctl: watching cluster '%s' at %s (%s%s%s); Ctrl-C stops\n",
                cc.cluster, cc.servers, subj[0], nsubs > 1 ? ", " : "", nsubs > 1 ? subj[1] : "");
    uint64_t end = duration_ms != 0 ? ctl_mono_ms() + duration_ms : UINT64_MAX;
    uint64_t printed = 0, dropped_seen = 0;
    while (rc == 0 && !g_ctl_stop && (count == 0 || printed < count)) {
        uint64_t now = ctl_mono_ms();
        if (now >= end)
            break;
        uint64_t wait = end - now < WATCH_POLL_MS ? end - now : WATCH_POLL_MS;
        uint64_t dropped = 0;
        natsMsg *msg = watch_pop(&g_watch, wait, &dropped);
        if (dropped > dropped_seen) {
            if (o.json)
                (void)ctl_emit_json(json_pack("{s:s,s:I}", "kind", "dropped", "count",
                                              (json_int_t)(dropped - dropped_seen)));
            else
                printf("DROPPED %" PRIu64 " messages (the output is slower than the cluster)\n",
                       dropped - dropped_seen);
            dropped_seen = dropped;
        }
        if (msg == NULL)
            continue;
        watch_print(&w, msg);
        natsMsg_Destroy(msg);
        printed++;
        fflush(stdout);
    }
    for (int i = 0; i < nsubs; i++) {
        if (subs[i] != NULL) {
            (void)natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    ctl_close(&cc);
    uint64_t ignored = 0;
    natsMsg *left;
    while ((left = watch_pop(&g_watch, 0, &ignored)) != NULL) /* bounded: the ring */
        natsMsg_Destroy(left);
    if (rc == 0 && !o.json)
        fprintf(stderr, "aetherctl: %" PRIu64 " events, %" PRIu64 " maps, %" PRIu64
                " other messages, %" PRIu64 " refused\n",
                w.events, w.maps, w.others, w.refused);
    return rc;
}

/* ---- events ------------------------------------------------------------------
 *
 * DESIGN
 *  1. The stream AETHER_<cluster>_EVENTS (aether-node --event-stream,
 *     transport/nats_conn.h) holds every event published on
 *     aether.<cluster>.evt.>. Its info gives the first and last stream
 *     sequence; a missing stream is "no cluster answers" (exit 3).
 *  2. An ordered consumer (nats.c: ephemeral, no acks, flow control and
 *     heartbeats, recreated by the library from the last delivered sequence
 *     if a message is missed) delivers from --since (default: the first
 *     message), synchronously on this thread: nothing is shared with nats.c
 *     threads.
 *  3. Each message is decoded strictly (codec.h, cluster = ours; its type
 *     must match its subject) and printed with its stream sequence, term and
 *     per-term seq. A refused one is printed as REFUSED and counted.
 *  4. Gaps: leader-issued events of term T carry seq 1, 2, 3, ... (DESIGN 2).
 *     For each term seen (the EVENTS_TERMS_MAX most recent) we keep the last
 *     seq; a seq above last+1 is a gap, one at or below last is out of order
 *     (a duplicate or a late copy). When the replay starts at stream
 *     sequence 1 (nothing ever discarded, no --since), a term above every
 *     term seen so far must also start at seq 1. Otherwise a term is judged
 *     from its first event in our window on: its earlier events may lie
 *     before the window even when an older term's event comes first in it
 *     (a deposed leader's LeadershipLost arrives after its successor's
 *     first events).
 *  5. Without --follow we stop at the message whose metadata says nothing is
 *     pending, or at the stream's last message when we started, whichever
 *     comes first; with --follow we go on
 *     until SIGINT/SIGTERM (or --count). If no message arrives for --timeout
 *     while the stream still holds undelivered ones, exit 3.
 */

#define EVENTS_TERMS_MAX 64u   /* terms whose last seq we remember */
#define EVENTS_POLL_MS 100u    /* longest wait between stop-condition checks */

typedef struct events_term {
    uint64_t term;
    uint64_t last_seq;
} events_term;

typedef struct events_ctx {
    const char *cluster;
    char prefix[CTL_BUCKET_MAX]; /* "aether.<cluster>.evt." */
    size_t prefix_len;
    bool json;
    bool complete;               /* the replay starts at stream sequence 1 */
    events_term terms[EVENTS_TERMS_MAX];
    uint32_t n_terms;
    uint64_t max_term;
    uint64_t events, refused, gaps, missing, out_of_order;
    uint64_t first_sseq, last_sseq;
} events_ctx;

static void events_gap(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t from, uint64_t to)
{
    x->gaps++;
    x->missing += to - from + 1;
    if (x->json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I}", "kind", "gap", "stream_seq",
                                      (json_int_t)sseq, "term", (json_int_t)term, "missing_from",
                                      (json_int_t)from, "missing_to", (json_int_t)to));
    else
        printf("GAP before #%" PRIu64 ": term %" PRIu64 " seq %" PRIu64 "..%" PRIu64
               " missing (%" PRIu64 " event%s)\n",
               sseq, term, from, to, to - from + 1, to == from ? "" : "s");
}

static void events_reorder(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t seq,
                           uint64_t last)
{
    x->out_of_order++;
    if (x->json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I}", "kind", "out_of_order",
                                      "stream_seq", (json_int_t)sseq, "term", (json_int_t)term,
                                      "seq", (json_int_t)seq, "after_seq", (json_int_t)last));
    else
        printf("OUT OF ORDER #%" PRIu64 ": term %" PRIu64 " seq %" PRIu64 " after seq %" PRIu64
               "\n", sseq, term, seq, last);
}

/* Step 4: called before the event is printed, so a gap line precedes it. */
static void events_check_seq(events_ctx *x, uint64_t sseq, uint64_t term, uint64_t seq)
{
    if (seq == 0) /* node-local: outside the per-term numbering */
        return;
    for (uint32_t i = 0; i < x->n_terms; i++) {
        events_term *t = &x->terms[i];
        if (t->term != term)
            continue;
        if (seq == t->last_seq + 1)
            t->last_seq = seq;
        else if (seq <= t->last_seq)
            events_reorder(x, sseq, term, seq, t->last_seq);
        else {
            events_gap(x, sseq, term, t->last_seq + 1, seq - 1);
            t->last_seq = seq;
        }
        return;
    }
    if (term > x->max_term && seq != 1 && x->complete)
        events_gap(x, sseq, term, 1, seq - 1);
    if (term > x->max_term)
        x->max_term = term;
    uint32_t slot = x->n_terms;
    if (slot == EVENTS_TERMS_MAX) { /* forget the oldest term */
        slot = 0;
        for (uint32_t i = 1; i < x->n_terms; i++)
            if (x->terms[i].term < x->terms[slot].term)
                slot = i;
    } else {
        x->n_terms++;
    }
    x->terms[slot] = (events_term){.term = term, .last_seq = seq};
}

static void events_print(events_ctx *x, natsMsg *msg, uint64_t sseq, int64_t stored_ns)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *want_type = strncmp(subject, x->prefix, x->prefix_len) == 0
                                ? subject + x->prefix_len
                                : NULL;
    aether_codec_limits lim = {.cluster = x->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    char why[AETHER_ERR_MSG_MAX + 64];
    why[0] = '\0';
    if (want_type == NULL) {
        snprintf(why, sizeof(why), "not an event subject of cluster '%s'", x->cluster);
    } else if (aether_codec_decode(data, len, &lim, &m, &err) != AETHER_OK) {
        snprintf(why, sizeof(why), "%s", err.msg);
    } else if (m.kind != AETHER_CODEC_EVENT ||
               strcmp(aether_event_type_name(m.u.event->type), want_type) != 0) {
        snprintf(why, sizeof(why), "a %s message on the subject of %s",
                 m.kind == AETHER_CODEC_EVENT ? aether_event_type_name(m.u.event->type)
                                              : "non-event",
                 want_type);
        aether_codec_msg_fini(&m);
    }
    if (why[0] != '\0') {
        x->refused++;
        char safe[256];
        subject = printable_subject(subject, safe, sizeof(safe));
        if (x->json)
            (void)ctl_emit_json(json_pack("{s:s,s:I,s:s,s:I,s:s}", "kind", "refused",
                                          "stream_seq", (json_int_t)sseq, "subject", subject,
                                          "bytes", (json_int_t)len, "reason", why));
        else
            printf("#%" PRIu64 " REFUSED %s (%zu bytes): %s\n", sseq, subject, len, why);
        return;
    }
    const aether_event *e = m.u.event;
    events_check_seq(x, sseq, e->term, e->seq);
    x->events++;
    if (x->json) {
        json_t *o = json_object();
        ctl_jset(o, "kind", json_string("event"));
        ctl_jset(o, "stream_seq", ctl_jint(sseq));
        ctl_jset(o, "stored_ms", json_integer(stored_ns / 1000000));
        ctl_jset(o, "subject", json_string(subject));
        ctl_jset(o, "type", json_string(aether_event_type_name(e->type)));
        ctl_jset(o, "term", ctl_jint(e->term));
        ctl_jset(o, "seq", ctl_jint(e->seq));
        ctl_jset(o, "node", json_string(e->node.str));
        ctl_jset(o, "ts", ctl_jint(e->ts_ms));
        /* The codec accepted it, so it is one well-formed JSON object. */
        ctl_jset(o, "message", json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL));
        (void)ctl_emit_json(o);
    } else {
        char stamp[32], line[1024];
        watch_stamp(stamp, sizeof(stamp), stamp_ns_of_ms(e->ts_ms));
        (void)aether_event_format(e, line, sizeof(line));
        printf("#%-6" PRIu64 " %s %s\n", sseq, stamp, line);
    }
    aether_codec_msg_fini(&m);
}

int cmd_events(int argc, char **argv)
{
    const command *self = ctl_find_command("events");
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"follow", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t since = 0, count = 0;
    bool follow = false;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "s:fc:", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 's':
            if (ctl_parse_u64_in(optarg, 1, INT64_MAX, &since) != 0)
                return ctl_usage_error(self, "--since must be a stream sequence >= 1, got '%s'",
                                   optarg);
            break;
        case 'f': follow = true; break;
        case 'c':
            if (ctl_parse_u64_in(optarg, 1, UINT32_MAX, &count) != 0)
                return ctl_usage_error(self, "--count must be a positive integer, got '%s'", optarg);
            break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    char stream[CTL_BUCKET_MAX], subject[CTL_BUCKET_MAX + 8];
    snprintf(stream, sizeof(stream), "AETHER_%s_EVENTS", cc.cluster);
    snprintf(subject, sizeof(subject), "aether.%s.evt.>", cc.cluster);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, cc.js, stream, NULL, &jerr);
    if (ns == NATS_NOT_FOUND) {
        rc = ctl_no_cluster(&cc, "event stream '%s' does not exist (no aether-node of cluster "
                            "'%s' runs with --event-stream on these servers)",
                            stream, cc.cluster);
        ctl_close(&cc);
        return rc;
    }
    if (ns != NATS_OK) {
        rc = ctl_no_cluster(&cc, "event stream '%s': %s", stream, natsStatus_GetText(ns));
        ctl_close(&cc);
        return rc;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    uint64_t start = since > first ? since : first;

    events_ctx x = {.cluster = cc.cluster, .json = o.json, .complete = start <= 1};
    int pl = snprintf(x.prefix, sizeof(x.prefix), "aether.%s.evt.", cc.cluster);
    x.prefix_len = pl > 0 ? (size_t)pl : 0;
    if (!o.json)
        fprintf(stderr, "aetherctl: stream %s holds #%" PRIu64 "..#%" PRIu64 " (%" PRIu64
                " events); replaying from #%" PRIu64 "%s\n",
                stream, first, last, msgs, start, follow ? ", then following (Ctrl-C stops)" : "");
    natsSubscription *sub = NULL;
    bool done = !follow && (msgs == 0 || start > last);
    if (!done) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream;
        so.Ordered = true;
        if (since > 1) {
            so.Config.DeliverPolicy = js_DeliverByStartSequence;
            so.Config.OptStartSeq = since;
        } else {
            so.Config.DeliverPolicy = js_DeliverAll;
        }
        ns = js_SubscribeSync(&sub, cc.js, subject, NULL, &so, &jerr);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "ordered consumer on %s: %s (JetStream error %d)", stream,
                                natsStatus_GetText(ns), (int)jerr);
    }
    uint64_t idle_since = ctl_mono_ms();
    while (rc == 0 && !done && !g_ctl_stop) {
        natsMsg *msg = NULL;
        ns = natsSubscription_NextMsg(&msg, sub, EVENTS_POLL_MS);
        if (ns == NATS_TIMEOUT) {
            if (!follow && ctl_mono_ms() - idle_since >= cc.timeout_ms)
                rc = ctl_no_cluster(&cc, "stream %s stopped delivering after #%" PRIu64
                                    " (nothing for %" PRIu64 " ms)",
                                    stream, x.last_sseq, cc.timeout_ms);
            continue;
        }
        if (ns != NATS_OK) {
            rc = ctl_no_cluster(&cc, "reading stream %s: %s", stream, natsStatus_GetText(ns));
            break;
        }
        idle_since = ctl_mono_ms();
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
            natsMsg_Destroy(msg); /* not a stream message (cannot happen on an ordered consumer) */
            continue;
        }
        uint64_t sseq = meta->Sequence.Stream;
        if (x.first_sseq == 0)
            x.first_sseq = sseq;
        x.last_sseq = sseq;
        /* Stored: fresh means sealed near when the stream stored it. */
        if (ctl_authentic(msg, meta->Timestamp > 0 ? (uint64_t)meta->Timestamp / 1000000u : 0))
            events_print(&x, msg, sseq, meta->Timestamp);
        else
            x.refused++;
        fflush(stdout);
        /* The end: nothing pending when this one was delivered, or the last
         * message the stream held when we started (so a busy cluster cannot
         * keep a replay going forever). */
        if (!follow && (meta->NumPending == 0 || sseq >= last))
            done = true;
        if (count != 0 && x.events + x.refused >= count)
            done = true;
        jsMsgMetaData_Destroy(meta);
        natsMsg_Destroy(msg);
    }
    if (sub != NULL) {
        (void)natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
        natsSubscription_Destroy(sub);
    }
    ctl_close(&cc);
    if (rc != 0)
        return rc;
    if (o.json)
        (void)ctl_emit_json(json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "kind", "summary",
                                      "events", (json_int_t)x.events, "first_stream_seq",
                                      (json_int_t)x.first_sseq, "last_stream_seq",
                                      (json_int_t)x.last_sseq, "gaps", (json_int_t)x.gaps,
                                      "missing", (json_int_t)x.missing, "out_of_order",
                                      (json_int_t)x.out_of_order, "refused",
                                      (json_int_t)x.refused));
    else
        fprintf(stderr, "aetherctl: %" PRIu64 " events (#%" PRIu64 "..#%" PRIu64 "), %" PRIu64
                " gaps (%" PRIu64 " missing), %" PRIu64 " out of order, %" PRIu64 " refused\n",
                x.events, x.first_sseq, x.last_sseq, x.gaps, x.missing, x.out_of_order,
                x.refused);
    return x.gaps + x.out_of_order + x.refused > 0 ? EXIT_FAILED : 0;
}

/* ---- top ---------------------------------------------------------------------
 *
 * DESIGN
 *  1. Every --interval (default 1 s) a frame: the lease, map, topology and
 *     recorded term read exactly as `status` reads them (ctl_read), drawn as
 *     leader and term, map and handoffs in flight, rebalances, map-version
 *     lag, one row per node with its status and a bar of its primaries, and
 *     the last events. Each frame is a whole new read: nothing is inferred
 *     across frames except what the wire told us (step 2).
 *  2. A core subscription to aether.<cluster>.evt.> and .hb.> feeds a small
 *     tally (top_live, under its mutex): each node's last heartbeat, the
 *     leader's map version from its LeaseRenewed (every ttl/4), rebalances
 *     started and completed, the last few events. The callback runs on a
 *     nats.c thread, decodes strictly and only updates the tally.
 *  3. Rebalance history before top started comes from the event stream when
 *     there is one (per-subject counts in the stream info, the last
 *     RebalanceCompleted by js_GetLastMsg); otherwise top counts what it
 *     sees.
 *  4. Map-version lag: the leader's version (LeaseRenewed) minus the stored
 *     map's version, i.e. how far the state bucket trails the leader; each
 *     node's own lag is in its metrics (aether-node --metrics-addr).
 *  5. On a terminal: alternate screen, cursor hidden, each frame drawn from
 *     the home position with ANSI escapes (clear to end of line / screen),
 *     lines cut to the terminal width; stdin in non-canonical, no-echo mode
 *     (termios), polled between frames: 'q' quits. The terminal is restored
 *     on every exit path (normal, SIGINT/SIGTERM/SIGHUP via the stop flag,
 *     atexit). When stdout is not a terminal: plain frames, one per
 *     interval, separated by a blank line; --json: one object per frame.
 */

#define TOP_NODES_MAX 256u     /* nodes whose heartbeat we track */
#define TOP_RECENT_MAX 6u      /* membership and leadership events shown */
#define TOP_REBAL_MAX 3u       /* completed rebalances shown */
#define TOP_INTERVAL_MS_DEFAULT 1000u
#define TOP_WIDTH_MIN 60
#define TOP_WIDTH_MAX 400

typedef struct top_hb {
    aether_node_id id;
    uint64_t at_ms;            /* monotonic */
} top_hb;

typedef struct top_live {
    pthread_mutex_t mu;
    /* Everything below under mu. */
    const char *cluster;       /* immutable after start */
    top_hb hb[TOP_NODES_MAX];
    uint32_t n_hb;
    bool have_renewal;
    uint64_t leader_map_version, leader_topo_version, renewal_term, renewal_at_ms;
    uint64_t rebalances_started, rebalances_completed; /* seen live */
    bool rebalancing;          /* a RebalanceStarted not yet completed */
    char last_started[160];
    char last_completed[160];
    uint64_t events;
    /* The membership pane: NodeJoined/Draining/Left/Failed, LeaderElected,
     * LeadershipLost, newest last; shard events never push them out. */
    char recent[TOP_RECENT_MAX][200];
    uint32_t recent_n, recent_head;
    uint64_t membership_events;
    /* Shard events summarised per rebalance: counted since the last
     * RebalanceStarted (or since top started), folded into one line by
     * RebalanceCompleted. */
    uint64_t n_assigned, n_handoff, n_failover;
    char rebal[TOP_REBAL_MAX][200];
    uint32_t rebal_n, rebal_head;
} top_live;

/* Appends line to a ring of `max` lines of `cap` bytes. */
static void top_ring_add(char *ring, size_t cap, uint32_t max, uint32_t *n, uint32_t *head, const char *line)
{
    uint32_t slot = (*head + *n) % max;
    if (*n == max)
        *head = (*head + 1) % max;
    else
        (*n)++;
    snprintf(ring + (size_t)slot * cap, cap, "%s", line);
}

static bool top_is_membership(aether_event_type type)
{
    switch (type) {
    case AETHER_EVT_NODE_JOINED:
    case AETHER_EVT_NODE_DRAINING:
    case AETHER_EVT_NODE_LEFT:
    case AETHER_EVT_NODE_FAILED:
    case AETHER_EVT_LEADER_ELECTED:
    case AETHER_EVT_LEADERSHIP_LOST:
        return true;
    default:
        return false;
    }
}

static top_live g_top = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void top_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    top_live *t = closure;
    aether_codec_limits lim = {.cluster = t->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    if (!ctl_authentic(msg, (uint64_t)(ctl_wall_ns() / 1000000))) {
        natsMsg_Destroy(msg);
        return;
    }
    if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &lim, &m,
                            &err) != AETHER_OK) {
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t now = ctl_mono_ms();
    pthread_mutex_lock(&t->mu);
    if (m.kind == AETHER_CODEC_HEARTBEAT) {
        uint32_t i = 0;
        while (i < t->n_hb && !aether_node_id_equal(&t->hb[i].id, &m.u.heartbeat.node))
            i++;
        if (i == t->n_hb && t->n_hb < TOP_NODES_MAX)
            t->hb[t->n_hb++].id = m.u.heartbeat.node;
        if (i < t->n_hb)
            t->hb[i].at_ms = now;
    } else if (m.kind == AETHER_CODEC_EVENT) {
        const aether_event *e = m.u.event;
        if (e->type == AETHER_EVT_LEASE_RENEWED) {
            if (!t->have_renewal || e->term >= t->renewal_term) {
                t->have_renewal = true;
                t->leader_map_version = e->data.lease_renewed.map_version;
                t->leader_topo_version = e->data.lease_renewed.topology_version;
                t->renewal_term = e->term;
                t->renewal_at_ms = now;
            }
        } else if (top_is_membership(e->type)) {
            /* Renewals (4 a second) and shard events (batches of up to
             * 1024 shards each) are not listed: they would push these out. */
            char stamp[32], line[1024], out[200];
            watch_stamp(stamp, sizeof(stamp), stamp_ns_of_ms(e->ts_ms));
            (void)aether_event_format(e, line, sizeof(line));
            snprintf(out, sizeof(out), "%.12s %.*s", stamp, (int)sizeof(out) - 14, line);
            top_ring_add(&t->recent[0][0], sizeof(t->recent[0]), TOP_RECENT_MAX, &t->recent_n, &t->recent_head,
                         out);
            t->membership_events++;
        } else if (e->type == AETHER_EVT_SHARD_ASSIGNED) { /* shards, not events */
            t->n_assigned += e->data.shard_assigned.count;
        } else if (e->type == AETHER_EVT_SHARD_MIGRATED) {
            if (strcmp(e->data.shard_migrated.reason, "failover") == 0)
                t->n_failover += e->data.shard_migrated.count;
            else
                t->n_handoff += e->data.shard_migrated.count;
        }
        if (e->type == AETHER_EVT_REBALANCE_STARTED) {
            t->rebalances_started++;
            t->rebalancing = true;
            t->n_assigned = t->n_handoff = t->n_failover = 0;
            snprintf(t->last_started, sizeof(t->last_started),
                     "from map v%" PRIu64 ", %u moves planned (%s)",
                     e->data.rebalance_started.from_version,
                     e->data.rebalance_started.moves_planned, e->data.rebalance_started.reason);
        } else if (e->type == AETHER_EVT_REBALANCE_COMPLETED) {
            t->rebalances_completed++;
            t->rebalancing = false;
            snprintf(t->last_completed, sizeof(t->last_completed),
                     "map v%" PRIu64 ", %u moved in %" PRIu64 " ms",
                     e->data.rebalance_completed.map_version, e->data.rebalance_completed.moved,
                     e->data.rebalance_completed.duration_ms);
            char stamp[32], out[200];
            watch_stamp(stamp, sizeof(stamp), stamp_ns_of_ms(e->ts_ms));
            snprintf(out, sizeof(out),
                     "%.12s v%" PRIu64 ": %u moved (%" PRIu64 " handoff %" PRIu64
                     " failover %" PRIu64 " assigned) %" PRIu64 " ms",
                     stamp, e->data.rebalance_completed.map_version, e->data.rebalance_completed.moved,
                     t->n_handoff, t->n_failover, t->n_assigned, e->data.rebalance_completed.duration_ms);
            top_ring_add(&t->rebal[0][0], sizeof(t->rebal[0]), TOP_REBAL_MAX, &t->rebal_n, &t->rebal_head, out);
            t->n_assigned = t->n_handoff = t->n_failover = 0;
        }
        t->events++;
    }
    pthread_mutex_unlock(&t->mu);
    aether_codec_msg_fini(&m);
    natsMsg_Destroy(msg);
}

/* Rebalance history from the event stream (step 3); false without a stream. */
typedef struct top_history {
    bool have_stream;
    uint64_t started, completed; /* in the stream when top started */
    char last_completed[160];
} top_history;

static void top_read_history(ctl_conn *cc, top_history *h)
{
    memset(h, 0, sizeof(*h));
    char stream[CTL_BUCKET_MAX], filter[CTL_BUCKET_MAX + 16], last_subj[CTL_BUCKET_MAX + 32];
    snprintf(stream, sizeof(stream), "AETHER_%s_EVENTS", cc->cluster);
    snprintf(filter, sizeof(filter), "aether.%s.evt.*", cc->cluster); /* whole tokens only */
    snprintf(last_subj, sizeof(last_subj), "aether.%s.evt.RebalanceCompleted", cc->cluster);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)cc->s.nats.request_timeout_ms;
    jo.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, cc->js, stream, &jo, &jerr) != NATS_OK)
        return;
    h->have_stream = true;
    for (int i = 0; si->State.Subjects != NULL && i < si->State.Subjects->Count; i++) {
        const jsStreamStateSubject *s = &si->State.Subjects->List[i];
        const char *tail = strrchr(s->Subject, '.');
        if (tail != NULL && strcmp(tail, ".RebalanceStarted") == 0)
            h->started = s->Msgs;
        else if (tail != NULL && strcmp(tail, ".RebalanceCompleted") == 0)
            h->completed = s->Msgs;
    }
    jsStreamInfo_Destroy(si);
    natsMsg *msg = NULL;
    if (h->completed == 0 || js_GetLastMsg(&msg, cc->js, stream, last_subj, NULL, &jerr) != NATS_OK)
        return;
    aether_codec_limits lim = {.cluster = cc->cluster};
    aether_codec_msg m;
    aether_err err = {0};
    if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &lim, &m,
                            &err) == AETHER_OK) {
        if (m.kind == AETHER_CODEC_EVENT && m.u.event->type == AETHER_EVT_REBALANCE_COMPLETED)
            snprintf(h->last_completed, sizeof(h->last_completed),
                     "map v%" PRIu64 ", %u moved in %" PRIu64 " ms",
                     m.u.event->data.rebalance_completed.map_version,
                     m.u.event->data.rebalance_completed.moved,
                     m.u.event->data.rebalance_completed.duration_ms);
        aether_codec_msg_fini(&m);
    }
    natsMsg_Destroy(msg);
}

/* The terminal (step 5). */
static struct termios g_top_saved;
static bool g_top_raw;    /* stdin is in our mode: restore g_top_saved */
static bool g_top_screen; /* the alternate screen is on */

static void top_term_restore(void)
{
    if (g_top_screen) {
        fputs("\x1b[?25h\x1b[?1049l", stdout);
        fflush(stdout);
        g_top_screen = false;
    }
    if (g_top_raw) {
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &g_top_saved);
        g_top_raw = false;
    }
}

static void top_term_enter(void)
{
    /* Only the foreground process group may change the terminal (a
     * background one would be stopped by SIGTTOU): in the background, no
     * keys; Ctrl-C and SIGTERM still stop us. */
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp() &&
        tcgetattr(STDIN_FILENO, &g_top_saved) == 0) {
        struct termios raw = g_top_saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            g_top_raw = true;
    }
    fputs("\x1b[?1049h\x1b[?25l", stdout);
    g_top_screen = true;
    atexit(top_term_restore);
}

static int top_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        int w = ws.ws_col;
        return w < TOP_WIDTH_MIN ? TOP_WIDTH_MIN : w > TOP_WIDTH_MAX ? TOP_WIDTH_MAX : w;
    }
    return 80;
}

/* One frame is built as lines, then written in one go. */
typedef struct top_frame {
    char *buf;
    size_t len, cap;
    int width;  /* each line cut to width - 1 columns (the last column stays free) */
    bool tty;
} top_frame;

static void top_line(top_frame *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void top_line(top_frame *f, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t l = strlen(line);
    size_t max = (size_t)(f->width - 1);
    if (l > max) {
        /* Cut at a word boundary within the last 16 columns, marked "...",
         * never mid-word when a space is near (issue 18). */
        size_t cut = max - 3;
        size_t sp = cut;
        while (sp > 0 && sp + 16 > cut && line[sp] != ' ')
            sp--;
        if (sp > 0 && line[sp] == ' ')
            cut = sp;
        memcpy(line + cut, "...", 4);
        l = cut + 3;
    }
    size_t need = f->len + l + 8;
    if (need > f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4096;
        while (cap < need)
            cap *= 2;
        char *b = realloc(f->buf, cap);
        if (b == NULL)
            return;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, line, l);
    f->len += l;
    if (f->tty) {
        memcpy(f->buf + f->len, "\x1b[K", 3);
        f->len += 3;
    }
    f->buf[f->len++] = '\n';
}

static void top_age(char *buf, size_t cap, uint64_t ms)
{
    if (ms < 10000)
        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", ms / 1000, (ms % 1000) / 100);
    else if (ms < 3600000)
        snprintf(buf, cap, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, cap, ">1h");
}

/* Draws one frame (text) or prints one JSON object. */
static void top_draw(const ctl_conn *cc, const ctl_view *v, const top_history *h, uint64_t frame,
                     bool json, bool tty, int width)
{
    uint32_t n = 0;
    ctl_row *rows = ctl_rows(v, false, &n);
    top_live t;
    pthread_mutex_lock(&g_top.mu);
    t = g_top; /* a copy: the drawing takes no lock */
    pthread_mutex_unlock(&g_top.mu);
    uint64_t now = ctl_mono_ms();
    uint32_t moving = ctl_map_moving(v->map);
    uint64_t stored = v->map != NULL ? v->map->version : 0;
    bool have_lag = t.have_renewal && v->map != NULL && t.renewal_term >= v->map->term;
    int64_t lag = have_lag ? (int64_t)t.leader_map_version - (int64_t)stored : 0;
    uint64_t reb_done = h->completed + t.rebalances_completed;
    const char *last_done = t.last_completed[0] ? t.last_completed : h->last_completed;
    uint32_t by_status[AETHER_NODE_STATUS_COUNT_] = {0};
    for (uint32_t i = 0; v->have_topo && i < v->topo.count; i++)
        by_status[v->topo.nodes[i].status]++;

    if (json) {
        json_t *doc = json_object();
        ctl_jset(doc, "frame", ctl_jint(frame));
        ctl_jset(doc, "cluster", json_string(cc->cluster));
        ctl_jset(doc, "leader", ctl_lease_json(v));
        if (v->map != NULL)
            ctl_jset(doc, "map", json_pack("{s:I,s:I,s:I,s:I,s:I}", "version", (json_int_t)stored,
                                       "term", (json_int_t)v->map->term, "shard_count",
                                       (json_int_t)v->map->shard_count, "replication",
                                       (json_int_t)v->map->replication, "moving",
                                       (json_int_t)moving));
        else
            ctl_jset(doc, "map", json_null());
        ctl_jset(doc, "handoffs_in_flight", ctl_jint(moving));
        ctl_jset(doc, "topology_version", v->have_topo ? ctl_jint(v->topo.version) : json_null());
        ctl_jset(doc, "leader_map_version", t.have_renewal ? ctl_jint(t.leader_map_version) : json_null());
        ctl_jset(doc, "map_version_lag", have_lag ? json_integer(lag) : json_null());
        json_t *rb = json_object();
        ctl_jset(rb, "completed", ctl_jint(reb_done));
        ctl_jset(rb, "source", json_string(h->have_stream ? "stream" : "live"));
        ctl_jset(rb, "in_progress", json_boolean(t.rebalancing));
        ctl_jset(rb, "last_completed", last_done[0] ? json_string(last_done) : json_null());
        ctl_jset(doc, "rebalances", rb);
        json_t *arr = json_array();
        for (uint32_t i = 0; rows != NULL && i < n; i++) {
            const ctl_row *r = &rows[i];
            json_t *jn = ctl_row_json(r, true);
            json_t *hb = json_null();
            for (uint32_t k = 0; k < t.n_hb; k++)
                if (aether_node_id_equal(&t.hb[k].id, &r->id))
                    hb = ctl_jint(now - t.hb[k].at_ms);
            ctl_jset(jn, "heartbeat_ms_ago", hb);
            json_array_append_new(arr, jn);
        }
        ctl_jset(doc, "nodes", arr);
        (void)ctl_emit_json(doc);
        fflush(stdout);
        free(rows);
        return;
    }

    top_frame f = {.width = width, .tty = tty};
    char clock[32];
    watch_stamp(clock, sizeof(clock), ctl_wall_ns());
    clock[8] = '\0'; /* HH:MM:SS */
    top_line(&f, "aether top - cluster '%s' at %s - %s%s", cc->cluster, cc->servers, clock,
             tty ? " (q quits)" : "");
    int64_t age_ms = (v->read_at_ns - v->lease_written_ns) / 1000000;
    if (!v->lease_bucket || !v->have_lease)
        top_line(&f, "leader    none (the lease is free)");
    else if (v->lease_malformed)
        top_line(&f, "leader    unknown (lease value does not decode)");
    else if (v->lease.term == AETHER_TERM_NONE)
        top_line(&f, "leader    %s, establishing its term", v->lease.leader.str);
    else
        top_line(&f, "leader    %s  term %" PRIu64 "  (renewed %" PRId64 " ms ago, ttl %" PRIu64
                 " ms)", v->lease.leader.str, (uint64_t)v->lease.term, age_ms, v->lease_ttl_ms);
    if (v->map != NULL)
        top_line(&f, "map       v%" PRIu64 " (term %" PRIu64 "), %u shards, R%u, handoffs in "
                 "flight %u", stored, (uint64_t)v->map->term, v->map->shard_count,
                 v->map->replication, moving);
    else
        top_line(&f, "map       none yet");
    if (have_lag)
        top_line(&f, "lag       stored map v%" PRIu64 ", leader's v%" PRIu64 ": %" PRId64
                 " version%s behind", stored, t.leader_map_version, lag, lag == 1 ? "" : "s");
    else
        top_line(&f, "lag       - (waiting for the leader's next LeaseRenewed)");
    if (v->have_topo)
        top_line(&f, "nodes     topology v%" PRIu64 ": %u active, %u draining, %u left, %u failed",
                 v->topo.version, by_status[AETHER_NODE_ACTIVE], by_status[AETHER_NODE_DRAINING],
                 by_status[AETHER_NODE_LEFT], by_status[AETHER_NODE_FAILED]);
    else
        top_line(&f, "nodes     no topology yet");
    top_line(&f, "rebalance %" PRIu64 " completed%s%s%s%s", reb_done,
             h->have_stream ? "" : " (seen by top)", last_done[0] ? ", last: " : "", last_done,
             t.rebalancing ? "; IN PROGRESS" : "");
    if (t.rebalancing)
        top_line(&f, "          started %s", t.last_started);
    top_line(&f, "%s", "");
    int idw = ctl_id_width(rows, rows != NULL ? n : 0, 4);
    uint32_t pmax = 1;
    for (uint32_t i = 0; rows != NULL && i < n; i++)
        pmax = rows[i].primaries > pmax ? rows[i].primaries : pmax;
    /* id, status 8, role 6, prim 5, repl 4, out 3, in 3, hb 5, separators */
    int fixed = idw + 2 + 8 + 1 + 6 + 1 + 5 + 1 + 4 + 1 + 3 + 1 + 3 + 1 + 5 + 2;
    int barw = width - 1 - fixed;
    if (barw < 4)
        barw = 4;
    top_line(&f, "%-*s  %-8s %-6s %5s %4s %3s %3s %5s  PRIMARIES", idw, "NODE", "STATUS", "ROLE",
             "PRIM", "REPL", "OUT", "IN", "HB");
    for (uint32_t i = 0; rows != NULL && i < n; i++) {
        const ctl_row *r = &rows[i];
        char hb[16] = "-", bar[TOP_WIDTH_MAX + 1];
        for (uint32_t k = 0; k < t.n_hb; k++)
            if (aether_node_id_equal(&t.hb[k].id, &r->id))
                top_age(hb, sizeof(hb), now - t.hb[k].at_ms);
        int len = (int)(((uint64_t)r->primaries * (uint64_t)barw + pmax - 1) / pmax);
        len = len > barw ? barw : len;
        memset(bar, '#', (size_t)len);
        bar[len] = '\0';
        top_line(&f, "%-*s  %-8s %-6s %5u %4u %3u %3u %5s  %s", idw, r->id.str, ctl_row_status(r),
                 r->leader ? "leader" : "-", r->primaries, r->replicas, r->moving_out,
                 r->moving_in, hb, bar);
    }
    if (rows == NULL)
        top_line(&f, "(out of memory)");
    top_line(&f, "%s", "");
    top_line(&f, "membership and leadership (%" PRIu64 " of %" PRIu64 " events seen since top started)",
             t.membership_events, t.events);
    for (uint32_t i = 0; i < t.recent_n; i++)
        top_line(&f, "  %s", t.recent[(t.recent_head + i) % TOP_RECENT_MAX]);
    top_line(&f, "shard moves, per rebalance");
    for (uint32_t i = 0; i < t.rebal_n; i++)
        top_line(&f, "  %s", t.rebal[(t.rebal_head + i) % TOP_REBAL_MAX]);
    if (t.n_assigned + t.n_handoff + t.n_failover > 0)
        top_line(&f, "  %s: %" PRIu64 " handoffs, %" PRIu64 " failovers, %" PRIu64 " assigned so far",
                 t.rebalancing ? "in progress" : "outside a rebalance", t.n_handoff, t.n_failover,
                 t.n_assigned);
    if (tty) {
        fputs("\x1b[H", stdout);
        if (f.buf != NULL)
            fwrite(f.buf, 1, f.len, stdout);
        fputs("\x1b[J", stdout);
    } else {
        if (frame > 1)
            fputc('\n', stdout);
        if (f.buf != NULL)
            fwrite(f.buf, 1, f.len, stdout);
    }
    fflush(stdout);
    free(f.buf);
    free(rows);
}

/* Waits up to ms for the next frame; true if 'q' was typed. */
static bool top_wait(uint64_t ms)
{
    uint64_t end = ctl_mono_ms() + ms;
    while (!g_ctl_stop) {
        uint64_t now = ctl_mono_ms();
        if (now >= end)
            return false;
        uint64_t left = end - now;
        if (!g_top_raw) {
            ctl_sleep_ms(left < WATCH_POLL_MS ? left : WATCH_POLL_MS);
            continue;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, 1, (int)(left < WATCH_POLL_MS ? left : WATCH_POLL_MS));
        if (r > 0 && (p.revents & POLLIN)) {
            char ch[16];
            ssize_t got = read(STDIN_FILENO, ch, sizeof(ch));
            for (ssize_t i = 0; i < got; i++)
                if (ch[i] == 'q' || ch[i] == 'Q')
                    return true;
            if (got == 0) { /* end of input: no more keys, keep drawing */
                (void)tcsetattr(STDIN_FILENO, TCSANOW, &g_top_saved);
                g_top_raw = false;
            }
        }
    }
    return false;
}

int cmd_top(int argc, char **argv)
{
    const command *self = ctl_find_command("top");
    static const struct option opts[] = {
        {"once", no_argument, NULL, '1'},
        {"frames", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    uint64_t frames = 0, interval_ms = TOP_INTERVAL_MS_DEFAULT;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "1n:i:", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case '1': frames = 1; break;
        case 'n':
            if (ctl_parse_u64_in(optarg, 1, UINT32_MAX, &frames) != 0)
                return ctl_usage_error(self, "--frames must be a positive integer, got '%s'", optarg);
            break;
        case 'i':
            if (ctl_parse_u64_in(optarg, 100, 3600000, &interval_ms) != 0)
                return ctl_usage_error(self, "--interval must be 100..3600000 (ms), got '%s'", optarg);
            break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;

    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    g_top.cluster = cc.cluster;
    char subj[2][CTL_BUCKET_MAX + 8];
    snprintf(subj[0], sizeof(subj[0]), "aether.%s.evt.>", cc.cluster);
    snprintf(subj[1], sizeof(subj[1]), "aether.%s.hb.>", cc.cluster);
    natsSubscription *subs[2] = {NULL, NULL};
    for (int i = 0; i < 2 && rc == 0; i++) {
        natsStatus ns = natsConnection_Subscribe(&subs[i], cc.nc, subj[i], top_on_msg, &g_top);
        if (ns != NATS_OK)
            rc = ctl_no_cluster(&cc, "subscribing to %s: %s", subj[i], natsStatus_GetText(ns));
    }
    top_history h;
    ctl_view v;
    memset(&v, 0, sizeof(v));
    if (rc == 0) {
        top_read_history(&cc, &h);
        rc = ctl_read(&cc, &v, true); /* the first read decides: exit 1 or 3 before drawing */
    }
    bool tty = !o.json && isatty(STDOUT_FILENO);
    /* The first frame has seen no renewal or heartbeat yet: wait (bounded:
     * renewals come every ttl/4) for one, so that even --once shows the lag. */
    uint64_t frame = 0;
    if (rc == 0) {
        uint64_t end = ctl_mono_ms() + 600;
        bool have = false;
        while (!have && !g_ctl_stop && ctl_mono_ms() < end) {
            ctl_sleep_ms(50);
            pthread_mutex_lock(&g_top.mu);
            have = g_top.have_renewal;
            pthread_mutex_unlock(&g_top.mu);
        }
    }
    if (rc == 0 && tty)
        top_term_enter();
    while (rc == 0 && !g_ctl_stop) {
        if (frame > 0) {
            ctl_view_fini(&v);
            int r = ctl_read(&cc, &v, true);
            if (r != 0 && !tty) { /* a plain reader wants to know; the screen keeps trying */
                rc = r;
                break;
            }
        }
        frame++;
        top_draw(&cc, &v, &h, frame, o.json, tty, tty ? top_width() : 80);
        if (frames != 0 && frame >= frames)
            break;
        if (top_wait(interval_ms))
            break;
    }
    top_term_restore();
    bool no_map = rc == 0 && v.map == NULL && frames != 0;
    for (int i = 0; i < 2; i++) {
        if (subs[i] != NULL) {
            (void)natsSubscription_Unsubscribe(subs[i]);
            natsSubscription_Destroy(subs[i]);
        }
    }
    if (no_map)
        rc = ctl_no_map(&cc);
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

