/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_nats_transport.c: the NATS transport (transport/nats_transport.h)
 * against a real nats-server (core NATS), started by each test on a free
 * loopback port. Two endpoints on two connections: broadcasts reach both
 * sinks (echo included) in order, maps and heartbeats round-trip, commands
 * get ENOTLEADER with nobody serving, a reply (even a late one, from another
 * thread) when served, ETIMEOUT when the server never replies, ECLOSED at
 * unbind; malformed input is dropped and counted; unbind stops callbacks.
 * End to end: three aether_member on the pool executor, each with its own
 * connection, NATS transport and NATS KV stores, elect one leader and serve
 * every shard.
 *
 * nats-server missing is a FAILURE, not a skip: the server is looked up and
 * started by tests/support/nats_server.h.
 *
 * AETHER_TEST_LABELS: integration
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "aether_internal.h"
#include "codec.h"
#include "cu_test.h"
#include "nats_kv.h"
#include "nats_server.h"
#include "nats_transport.h"
#include "shardmap_json.h"

#define MS 1000000ull
#define POLL_MS 5u
#define WAIT_MS 3000u   /* anything expected arrives within this */
#define QUIET_MS 200u   /* nothing unexpected arrives within this */
#define CLUSTER "test"
#define EVENTS 50u

/* ---- Time ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_since(uint64_t t0_ns) { return (now_ns() - t0_ns) / MS; }

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* bounded: the remaining time shrinks */
        ;
}

/* ---- The server (tests/support/nats_server.h) -------------------------------- */

static tns_server srv;

static natsConnection *connect_to_server(void)
{
    natsConnection *c = tns_connect(&srv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

/* ---- Recording sinks ------------------------------------------------------ */

#define REC_MAX 256u

typedef struct rec {
    pthread_mutex_t mu;
    uint32_t n_events;
    uint64_t seqs[REC_MAX];
    aether_event_type types[REC_MAX];
    uint32_t n_maps;
    char *last_map; /* canonical JSON of the last map */
    uint32_t n_hb;
    aether_node_id hb_node;
    uint64_t hb_inc;
    uint32_t n_cmds;
    aether_command last_cmd;
    aether_reply_fn held_reply; /* when hold: replied later by the test */
    void *held_arg;
    bool hold;   /* keep the reply instead of answering */
    uint32_t n_rel;
    aether_release_ack last_rel;
} rec;

static void rec_event(void *arg, const aether_event *e)
{
    rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n_events < REC_MAX) {
        r->seqs[r->n_events] = e->seq;
        r->types[r->n_events] = e->type;
    }
    r->n_events++;
    pthread_mutex_unlock(&r->mu);
}

static void rec_map(void *arg, const aether_shardmap *m, const char *bytes, size_t len)
{
    (void)bytes;
    (void)len;
    rec *r = arg;
    char *json = NULL;
    aether_status st = aether_shardmap_json_encode(m, &json, NULL, NULL);
    pthread_mutex_lock(&r->mu);
    r->n_maps++;
    free(r->last_map);
    r->last_map = st == AETHER_OK ? json : NULL;
    pthread_mutex_unlock(&r->mu);
}

static void rec_hb(void *arg, const aether_node_id *node, uint64_t inc)
{
    rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n_hb++;
    r->hb_node = *node;
    r->hb_inc = inc;
    pthread_mutex_unlock(&r->mu);
}

static void rec_cmd(void *arg, const aether_command *c, aether_reply_fn reply, void *reply_arg)
{
    rec *r = arg;
    aether_reply_fn old_fn = NULL;
    void *old_arg = NULL;
    pthread_mutex_lock(&r->mu);
    r->n_cmds++;
    r->last_cmd = *c;
    bool hold = r->hold;
    if (hold) { /* answered later by the test; a reply held before is answered now */
        old_fn = r->held_reply;
        old_arg = r->held_arg;
        r->held_reply = reply;
        r->held_arg = reply_arg;
    }
    pthread_mutex_unlock(&r->mu);
    if (old_fn != NULL)
        old_fn(old_arg, AETHER_ETIMEOUT, "superseded");
    if (!hold)
        reply(reply_arg, AETHER_OK, "accepted");
}

static void rec_rel(void *arg, const aether_release_ack *ack)
{
    rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->n_rel++;
    r->last_rel = *ack;
    pthread_mutex_unlock(&r->mu);
}

static uint32_t rec_count(rec *r, const uint32_t *field)
{
    pthread_mutex_lock(&r->mu);
    uint32_t n = *field;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits (bounded: WAIT_MS) until *field >= want. */
static bool rec_wait(rec *r, const uint32_t *field, uint32_t want)
{
    uint64_t t0 = now_ns();
    while (ms_since(t0) < WAIT_MS) { /* bounded */
        if (rec_count(r, field) >= want)
            return true;
        sleep_ms(POLL_MS);
    }
    return rec_count(r, field) >= want;
}

typedef struct reply_box {
    int calls; /* atomic */
    aether_status status;
    char reason[256];
    uint64_t at_ns;
} reply_box;

static void on_reply(void *arg, aether_status st, const char *reason)
{
    reply_box *b = arg;
    b->status = st;
    snprintf(b->reason, sizeof(b->reason), "%s", reason ? reason : "");
    b->at_ns = now_ns();
    __atomic_add_fetch(&b->calls, 1, __ATOMIC_RELEASE);
}

static bool reply_wait(reply_box *b, unsigned ms)
{
    uint64_t t0 = now_ns();
    while (ms_since(t0) < ms) { /* bounded */
        if (__atomic_load_n(&b->calls, __ATOMIC_ACQUIRE) > 0)
            return true;
        sleep_ms(POLL_MS);
    }
    return __atomic_load_n(&b->calls, __ATOMIC_ACQUIRE) > 0;
}

/* ---- Fixture ----------------------------------------------------------------- */

typedef struct side {
    natsConnection *nc;
    aether_transport *t;
    aether_node_id id;
    aether_codec_stats stats;
    rec r;
    aether_auth_sealer sealer; /* used when g_key is set */
} side;

static side A, B;
static aether_auth *g_key; /* set: the sides seal and verify (a cluster secret) */

static void drop_all(void);

static void side_up(side *s, const char *name, uint64_t timeout_ms)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->r.mu, NULL);
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr(name, &s->id, NULL), AETHER_OK);
    aether_codec_stats_init(&s->stats, NULL);
    s->nc = connect_to_server();
    aether_nats_transport_config cfg = {.conn = s->nc, .cluster = CLUSTER, .node = s->id,
                                        .cmd_timeout_ms = timeout_ms, .stats = &s->stats};
    if (g_key != NULL) {
        aether_auth_sealer_init(&s->sealer, g_key, &s->id, now_ns());
        cfg.sealer = &s->sealer;
    }
    aether_err err = {0};
    aether_status st = aether_nats_transport_create(&cfg, &s->t, &err);
    if (st != AETHER_OK)
        fprintf(stderr, "create: %s: %s\n", aether_status_str(st), err.msg);
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    aether_transport_sink sink = {.on_event = rec_event, .on_map = rec_map, .on_heartbeat = rec_hb,
                                  .on_command = rec_cmd, .on_release = rec_rel, .arg = &s->r};
    CU_ASSERT_EQUAL_FATAL(aether_transport_bind(s->t, &sink), AETHER_OK);
}

static void side_down(side *s)
{
    aether_transport_destroy(s->t);
    s->t = NULL;
    natsConnection_Destroy(s->nc);
    s->nc = NULL;
    free(s->r.last_map);
    s->r.last_map = NULL;
}

static void up2(uint64_t timeout_a)
{
    drop_all();
    /* nats-server missing or not starting is a failure (the reason is on stderr). */
    CU_ASSERT_TRUE_FATAL(tns_start(&srv, "aether-nats-tr"));
    side_up(&A, "node-a", timeout_a);
    side_up(&B, "node-b", 0);
}

static void drop_all(void)
{
    side_down(&A);
    side_down(&B);
    tns_destroy(&srv);
}

static int suite_cleanup(void)
{
    drop_all();
    nats_CloseAndWait(2000);
    return 0;
}

/* ---- Builders -------------------------------------------------------------- */

static aether_event *node_left(const side *s, uint64_t seq)
{
    aether_event *e = aether_event_create(AETHER_EVT_NODE_LEFT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    snprintf(e->cluster, sizeof(e->cluster), "%s", CLUSTER);
    e->term = 1;
    e->node = s->id;
    e->seq = seq;
    e->ts_ms = 1767225600123ull;
    e->data.node_left.node = s->id;
    return e;
}

static void elect_cmd(const side *s, aether_command *c)
{
    memset(c, 0, sizeof(*c));
    c->type = AETHER_CMD_ELECT_LEADER;
    snprintf(c->cluster, sizeof(c->cluster), "%s", CLUSTER);
    c->term = 3;
    c->sender = s->id;
    c->data.elect.candidate = s->id;
}

/* ---- Tests ------------------------------------------------------------------- */

static uint64_t unauthenticated(const side *s)
{
    return aether_codec_stats_rejected(&s->stats, AETHER_CODEC_REJECT_UNAUTHENTICATED);
}

static bool unauth_wait(const side *s, uint64_t want)
{
    uint64_t t0 = now_ns();
    while (unauthenticated(s) < want && ms_since(t0) < WAIT_MS)
        sleep_ms(POLL_MS); /* bounded: WAIT_MS */
    return unauthenticated(s) >= want;
}

/* With a cluster secret: sealed traffic flows; an unsealed copy, a replayed
 * genuine message (its tag copied), a message sealed with another secret
 * and an unsealed command are refused, counted, and reach no sink. */
static void test_sealed_traffic(void)
{
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_auth_create("0123456789abcdef0123456789abcdef", 32, &g_key, &err), AETHER_OK);
    up2(0);
    natsSubscription *tap = NULL; /* a bystander captures A's genuine event */
    CU_ASSERT_EQUAL_FATAL(natsConnection_SubscribeSync(&tap, A.nc, "aether." CLUSTER ".evt.>"), NATS_OK);
    CU_ASSERT_EQUAL_FATAL(natsConnection_FlushTimeout(A.nc, WAIT_MS), NATS_OK);
    aether_event *e = node_left(&A, 1);
    CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
    CU_ASSERT_EQUAL(aether_transport_publish_heartbeat(A.t, &A.id, 7), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_events, 1));
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_hb, 1));
    natsMsg *genuine = NULL;
    CU_ASSERT_EQUAL_FATAL(natsSubscription_NextMsg(&genuine, tap, WAIT_MS), NATS_OK);
    const char *tag = NULL;
    CU_ASSERT_EQUAL(natsMsgHeader_Get(genuine, AETHER_AUTH_HEADER, &tag), NATS_OK);
    CU_ASSERT_PTR_NOT_NULL(tag);

    /* 1. The same bytes without the tag. */
    const char *subj = natsMsg_GetSubject(genuine);
    CU_ASSERT_EQUAL(natsConnection_Publish(A.nc, subj, natsMsg_GetData(genuine), natsMsg_GetDataLength(genuine)),
                    NATS_OK);
    CU_ASSERT_TRUE(unauth_wait(&B, 1));
    /* 2. The same bytes with their genuine tag: a replay. */
    natsMsg *copy = NULL;
    CU_ASSERT_EQUAL_FATAL(natsMsg_Create(&copy, subj, NULL, natsMsg_GetData(genuine), natsMsg_GetDataLength(genuine)),
                          NATS_OK);
    CU_ASSERT_EQUAL(natsMsgHeader_Set(copy, AETHER_AUTH_HEADER, tag), NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishMsg(A.nc, copy), NATS_OK);
    CU_ASSERT_TRUE(unauth_wait(&B, 2));
    /* 3. The genuine tag moved to another subject (a heartbeat's). */
    natsMsg *moved = NULL;
    CU_ASSERT_EQUAL_FATAL(natsMsg_Create(&moved, "aether." CLUSTER ".hb.node-a", NULL, natsMsg_GetData(genuine),
                                         natsMsg_GetDataLength(genuine)), NATS_OK);
    CU_ASSERT_EQUAL(natsMsgHeader_Set(moved, AETHER_AUTH_HEADER, tag), NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishMsg(A.nc, moved), NATS_OK);
    CU_ASSERT_TRUE(unauth_wait(&B, 3));
    natsMsg_Destroy(moved);
    natsMsg_Destroy(copy);
    natsMsg_Destroy(genuine);
    natsSubscription_Destroy(tap);
    /* 4. Sealed with another secret. */
    aether_auth *other = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_auth_create("fedcba9876543210fedcba9876543210", 32, &other, &err), AETHER_OK);
    aether_auth_sealer os;
    aether_auth_sealer_init(&os, other, &A.id, now_ns());
    char *buf = NULL;
    size_t len = 0;
    aether_event *e2 = node_left(&A, 2);
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e2, &buf, &len, NULL), AETHER_OK);
    aether_event_release(e2);
    char otag[AETHER_AUTH_TAG_MAX];
    const char *esubj = "aether." CLUSTER ".evt.NodeLeft";
    CU_ASSERT_EQUAL(aether_auth_seal(&os, esubj, buf, len, (uint64_t)time(NULL) * 1000u, otag, sizeof(otag)),
                    AETHER_OK);
    natsMsg *om = NULL;
    CU_ASSERT_EQUAL_FATAL(natsMsg_Create(&om, esubj, NULL, buf, (int)len), NATS_OK);
    CU_ASSERT_EQUAL(natsMsgHeader_Set(om, AETHER_AUTH_HEADER, otag), NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishMsg(A.nc, om), NATS_OK);
    CU_ASSERT_TRUE(unauth_wait(&B, 4));
    natsMsg_Destroy(om);
    free(buf);
    aether_auth_destroy(other);
    /* 5. A command: sealed, served; unsealed, refused EPERM. */
    CU_ASSERT_EQUAL_FATAL(aether_transport_serve_commands(B.t, true), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_nats_transport_sync(B.t), AETHER_OK); /* the SUBs reached the server */
    aether_command c;
    elect_cmd(&A, &c);
    reply_box box = {0};
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(reply_wait(&box, WAIT_MS));
    CU_ASSERT_EQUAL(box.status, AETHER_OK);
    CU_ASSERT_EQUAL(aether_codec_encode_command(&c, (uint64_t)time(NULL) * 1000u, &buf, &len, NULL), AETHER_OK);
    natsMsg *reply = NULL;
    CU_ASSERT_EQUAL(natsConnection_Request(&reply, A.nc, "aether." CLUSTER ".cmd.ElectLeader", buf, (int)len, WAIT_MS),
                    NATS_OK);
    free(buf);
    aether_codec_msg m;
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), NULL, &m,
                                              NULL), AETHER_OK);
    CU_ASSERT_EQUAL(m.u.reply.status, AETHER_EPERM);
    aether_codec_msg_fini(&m);
    natsMsg_Destroy(reply);
    /* Nothing unauthenticated reached a sink. */
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_events), 1);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_hb), 1);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_cmds), 1);
    CU_ASSERT_EQUAL(unauthenticated(&B), 5);
    aether_event_release(e);
    drop_all();
    aether_auth_destroy(g_key);
    g_key = NULL;
}

static void test_events_reach_both_in_order(void)
{
    up2(0);
    for (uint64_t i = 1; i <= EVENTS; i++) {
        aether_event *e = node_left(&A, i);
        CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
        aether_event_release(e);
    }
    CU_ASSERT_TRUE(rec_wait(&A.r, &A.r.n_events, EVENTS)); /* echo */
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_events, EVENTS));
    sleep_ms(QUIET_MS);
    CU_ASSERT_EQUAL(rec_count(&A.r, &A.r.n_events), EVENTS);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_events), EVENTS);
    for (uint32_t i = 0; i < EVENTS; i++) {
        CU_ASSERT_EQUAL(A.r.seqs[i], i + 1);
        CU_ASSERT_EQUAL(B.r.seqs[i], i + 1);
        CU_ASSERT_EQUAL(B.r.types[i], AETHER_EVT_NODE_LEFT);
    }
    CU_ASSERT_EQUAL(aether_codec_stats_decoded(&B.stats), EVENTS);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected_total(&B.stats), 0);
    drop_all();
}

static void test_map_round_trip(void)
{
    up2(0);
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(8, 2, &b, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, 3);
    aether_shardmap_builder_set_term(b, 2);
    aether_node_index ia, ib;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &A.id, &ia, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &B.id, &ib, NULL), AETHER_OK);
    for (uint32_t s = 0; s < 8; s++) {
        aether_node_index own[2] = {s % 2 ? ia : ib, s % 2 ? ib : ia};
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, own, 2, NULL), AETHER_OK);
    }
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    char *want = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_json_encode(m, &want, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_transport_publish_map(A.t, m), AETHER_OK);
    aether_shardmap_destroy(m);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_maps, 1));
    CU_ASSERT_TRUE(rec_wait(&A.r, &A.r.n_maps, 1));
    pthread_mutex_lock(&B.r.mu);
    CU_ASSERT_PTR_NOT_NULL(B.r.last_map);
    if (B.r.last_map != NULL)
        CU_ASSERT_STRING_EQUAL(B.r.last_map, want);
    pthread_mutex_unlock(&B.r.mu);
    free(want);
    drop_all();
}

static void test_heartbeats(void)
{
    up2(0);
    CU_ASSERT_EQUAL(aether_transport_publish_heartbeat(A.t, &A.id, 7), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_hb, 1));
    pthread_mutex_lock(&B.r.mu);
    CU_ASSERT_TRUE(aether_node_id_equal(&B.r.hb_node, &A.id));
    CU_ASSERT_EQUAL(B.r.hb_inc, 7);
    pthread_mutex_unlock(&B.r.mu);
    drop_all();
}

static void test_command_no_leader(void)
{
    up2(5000); /* a timeout cannot pass for ENOTLEADER */
    aether_command c;
    elect_cmd(&A, &c);
    reply_box box = {0};
    uint64_t t0 = now_ns();
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(reply_wait(&box, WAIT_MS));
    CU_ASSERT_EQUAL(box.status, AETHER_ENOTLEADER);
    CU_ASSERT_TRUE((box.at_ns - t0) / MS < 1000);
    sleep_ms(QUIET_MS);
    CU_ASSERT_EQUAL(__atomic_load_n(&box.calls, __ATOMIC_ACQUIRE), 1);
    drop_all();
}

typedef struct late_reply {
    aether_reply_fn fn;
    void *arg;
} late_reply;

static void *late_reply_main(void *p)
{
    late_reply *l = p;
    sleep_ms(50);
    l->fn(l->arg, AETHER_ECONFLICT, "later, from another thread");
    return NULL;
}

static void test_command_served(void)
{
    up2(0);
    CU_ASSERT_EQUAL_FATAL(aether_transport_serve_commands(B.t, true), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_nats_transport_sync(B.t), AETHER_OK); /* the SUBs reached the server */
    aether_command c;
    elect_cmd(&A, &c);
    reply_box box = {0};
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(reply_wait(&box, WAIT_MS));
    CU_ASSERT_EQUAL(box.status, AETHER_OK);
    CU_ASSERT_STRING_EQUAL(box.reason, "accepted");
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_cmds), 1);
    CU_ASSERT_EQUAL(rec_count(&A.r, &A.r.n_cmds), 0);
    pthread_mutex_lock(&B.r.mu);
    CU_ASSERT_EQUAL(B.r.last_cmd.type, AETHER_CMD_ELECT_LEADER);
    CU_ASSERT_TRUE(aether_node_id_equal(&B.r.last_cmd.sender, &A.id));
    CU_ASSERT_EQUAL(B.r.last_cmd.term, 3);
    B.r.hold = true;
    pthread_mutex_unlock(&B.r.mu);

    /* A reply given later, from another thread. */
    reply_box box2 = {0};
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box2), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(rec_wait(&B.r, &B.r.n_cmds, 2));
    late_reply l;
    pthread_mutex_lock(&B.r.mu);
    l.fn = B.r.held_reply;
    l.arg = B.r.held_arg;
    B.r.held_reply = NULL;
    pthread_mutex_unlock(&B.r.mu);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_reply_main, &l), 0);
    CU_ASSERT_TRUE(reply_wait(&box2, WAIT_MS));
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(box2.status, AETHER_ECONFLICT);
    CU_ASSERT_STRING_EQUAL(box2.reason, "later, from another thread");

    /* Releases reach the server. */
    aether_release_ack ack = {.from = A.id, .shard = 5, .map_version = 9, .term = 2};
    CU_ASSERT_EQUAL(aether_transport_send_release(A.t, &ack), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_rel, 1));
    pthread_mutex_lock(&B.r.mu);
    CU_ASSERT_EQUAL(B.r.last_rel.shard, 5);
    CU_ASSERT_EQUAL(B.r.last_rel.map_version, 9);
    CU_ASSERT_TRUE(aether_node_id_equal(&B.r.last_rel.from, &A.id));
    pthread_mutex_unlock(&B.r.mu);

    /* Serving off: nobody serves again. */
    CU_ASSERT_EQUAL(aether_transport_serve_commands(B.t, false), AETHER_OK);
    CU_ASSERT_EQUAL(aether_nats_transport_sync(B.t), AETHER_OK); /* the UNSUBs reached the server */
    reply_box box3 = {0};
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box3), AETHER_OK);
    CU_ASSERT_TRUE(reply_wait(&box3, WAIT_MS));
    CU_ASSERT_EQUAL(box3.status, AETHER_ENOTLEADER);
    drop_all();
}

static void test_command_timeout_then_closed(void)
{
    up2(300);
    CU_ASSERT_EQUAL_FATAL(aether_transport_serve_commands(B.t, true), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_nats_transport_sync(B.t), AETHER_OK); /* the SUBs reached the server */
    pthread_mutex_lock(&B.r.mu);
    B.r.hold = true;
    pthread_mutex_unlock(&B.r.mu);
    aether_command c;
    elect_cmd(&A, &c);
    reply_box box = {0};
    uint64_t t0 = now_ns();
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(reply_wait(&box, WAIT_MS));
    CU_ASSERT_EQUAL(box.status, AETHER_ETIMEOUT);
    uint64_t took = (box.at_ns - t0) / MS;
    CU_ASSERT_TRUE(took >= 290 && took < 1500);

    /* Outstanding at unbind: ECLOSED, once; a late reply changes nothing. */
    reply_box box2 = {0};
    CU_ASSERT_EQUAL_FATAL(aether_transport_send_command(A.t, &c, on_reply, &box2), AETHER_OK);
    CU_ASSERT_TRUE_FATAL(rec_wait(&B.r, &B.r.n_cmds, 2));
    aether_transport_unbind(A.t);
    CU_ASSERT_EQUAL(__atomic_load_n(&box2.calls, __ATOMIC_ACQUIRE), 1);
    CU_ASSERT_EQUAL(box2.status, AETHER_ECLOSED);
    pthread_mutex_lock(&B.r.mu);
    aether_reply_fn fn = B.r.held_reply;
    void *arg = B.r.held_arg;
    B.r.held_reply = NULL;
    pthread_mutex_unlock(&B.r.mu);
    fn(arg, AETHER_OK, "too late");
    sleep_ms(QUIET_MS);
    CU_ASSERT_EQUAL(__atomic_load_n(&box.calls, __ATOMIC_ACQUIRE), 1);
    CU_ASSERT_EQUAL(__atomic_load_n(&box2.calls, __ATOMIC_ACQUIRE), 1);
    /* Unbound: refused, reply_fn not called. */
    reply_box box3 = {0};
    CU_ASSERT_EQUAL(aether_transport_send_command(A.t, &c, on_reply, &box3), AETHER_ECLOSED);
    CU_ASSERT_EQUAL(__atomic_load_n(&box3.calls, __ATOMIC_ACQUIRE), 0);
    drop_all();
}

static void test_malformed_dropped_and_counted(void)
{
    up2(0);
    const char *subj = "aether." CLUSTER ".evt.NodeLeft";
    CU_ASSERT_EQUAL(natsConnection_PublishString(A.nc, subj, "{not json"), NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishString(A.nc, subj, "[1,2,3]"), NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishString(A.nc, "aether." CLUSTER ".hb.x", "{\"v\":2}"),
                    NATS_OK);
    CU_ASSERT_EQUAL(natsConnection_PublishString(A.nc, "aether." CLUSTER ".map", "{}"), NATS_OK);
    /* Another cluster's well-formed event, forced onto our subject. */
    aether_event *e = node_left(&A, 1);
    snprintf(e->cluster, sizeof(e->cluster), "other");
    char *buf = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &buf, &len, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(natsConnection_Publish(A.nc, subj, buf, (int)len), NATS_OK);
    free(buf);
    aether_event_release(e);
    /* Then a good one: once it arrives, the bad ones were handled. */
    e = node_left(&A, 2);
    CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
    aether_event_release(e);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_events, 1));
    uint64_t t0 = now_ns();
    while (aether_codec_stats_rejected_total(&B.stats) < 5 && ms_since(t0) < WAIT_MS)
        sleep_ms(POLL_MS); /* bounded: WAIT_MS (hb and evt are separate subscriptions) */
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_events), 1);
    CU_ASSERT_EQUAL(B.r.seqs[0], 2);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_hb), 0);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_maps), 0);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected_total(&B.stats), 5); /* the map too */
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&B.stats, AETHER_CODEC_REJECT_MALFORMED), 2);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&B.stats, AETHER_CODEC_REJECT_WRONG_CLUSTER), 1);
    CU_ASSERT_EQUAL(aether_codec_stats_decoded(&B.stats), 1);
    drop_all();
}

static void test_unbind_stops_callbacks(void)
{
    up2(0);
    aether_event *e = node_left(&A, 1);
    CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_events, 1));
    aether_transport_unbind(B.t);
    for (int i = 0; i < 20; i++)
        CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
    CU_ASSERT_EQUAL(aether_transport_publish_heartbeat(A.t, &A.id, 1), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&A.r, &A.r.n_events, 21)); /* A still hears its echo */
    sleep_ms(QUIET_MS);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_events), 1);
    CU_ASSERT_EQUAL(rec_count(&B.r, &B.r.n_hb), 0);
    /* Rebinding works. */
    aether_transport_sink sink = {.on_event = rec_event, .arg = &B.r};
    CU_ASSERT_EQUAL(aether_transport_bind(B.t, &sink), AETHER_OK);
    CU_ASSERT_EQUAL(aether_transport_publish_event(A.t, e), AETHER_OK);
    CU_ASSERT_TRUE(rec_wait(&B.r, &B.r.n_events, 2));
    aether_event_release(e);
    drop_all();
}

/* send_command racing unbind from two threads: every request accepted
 * (AETHER_OK) is answered exactly once and before unbind returns (the
 * transport actor's gate, nats_transport.c DESIGN); every refused one
 * never; nothing is answered after unbind returned. */
#define RACE_SENDS 4000u
typedef struct racer {
    aether_transport *t;
    aether_command c;
    reply_box box[RACE_SENDS];
    aether_status st[RACE_SENDS];
    uint32_t n; /* sends made */
} racer;

static void *racer_main(void *p)
{
    racer *r = p;
    for (r->n = 0; r->n < RACE_SENDS;) { /* bounded: RACE_SENDS */
        aether_status st = aether_transport_send_command(r->t, &r->c, on_reply, &r->box[r->n]);
        r->st[r->n++] = st;
        if (st == AETHER_ECLOSED)
            break;
        if (st == AETHER_EFULL)
            sleep_ms(1);
    }
    return NULL;
}

static void test_send_command_races_unbind(void)
{
    up2(5000);
    static racer rs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].t = A.t;
        elect_cmd(&A, &rs[i].c);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    }
    sleep_ms(20);
    aether_transport_unbind(A.t);
    int calls_at_unbind[2][RACE_SENDS];
    for (int i = 0; i < 2; i++)
        for (uint32_t k = 0; k < RACE_SENDS; k++)
            calls_at_unbind[i][k] = __atomic_load_n(&rs[i].box[k].calls, __ATOMIC_ACQUIRE);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    sleep_ms(QUIET_MS);
    uint32_t accepted = 0, bad = 0;
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_TRUE(rs[i].n > 0 && rs[i].st[rs[i].n - 1] == AETHER_ECLOSED); /* each saw the unbind */
        for (uint32_t k = 0; k < rs[i].n; k++) {
            int now = __atomic_load_n(&rs[i].box[k].calls, __ATOMIC_ACQUIRE);
            bool ok = rs[i].st[k] == AETHER_OK;
            accepted += ok;
            /* A send after unbind returned may still be in flight at the
             * snapshot only if it was refused (calls stay 0). */
            if (now != (ok ? 1 : 0) || calls_at_unbind[i][k] != now)
                bad++;
        }
    }
    CU_ASSERT_TRUE(accepted > 0);
    CU_ASSERT_EQUAL(bad, 0);
    drop_all();
}

static void test_create_rejects_bad_config(void)
{
    aether_transport *t = NULL;
    aether_err err = {0};
    aether_nats_transport_config cfg = {0};
    CU_ASSERT_EQUAL(aether_nats_transport_create(&cfg, &t, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(t);
}


/* ---- End to end: three members on NATS ------------------------------------ */

#define E2E_NODES 3
#define E2E_SHARDS 32

typedef struct e2e_node {
    natsConnection *nc;
    aether_transport *t;
    aether_kv *lease_kv, *state_kv;
    aether_member *m;
    uint8_t serving[E2E_SHARDS]; /* atomic bytes: written by the node's assign actor */
} e2e_node;

static e2e_node e2e[E2E_NODES];

static void e2e_acquired(void *arg, uint32_t shard, uint64_t version)
{
    (void)version;
    e2e_node *n = arg;
    if (shard < E2E_SHARDS)
        __atomic_store_n(&n->serving[shard], 1, __ATOMIC_RELEASE);
}

static void e2e_released(void *arg, uint32_t shard, uint64_t version)
{
    (void)version;
    e2e_node *n = arg;
    if (shard < E2E_SHARDS)
        __atomic_store_n(&n->serving[shard], 0, __ATOMIC_RELEASE);
}

/* One leader, and every shard served by exactly one node. */
static bool e2e_settled(int *leaders_out)
{
    int leaders = 0;
    for (int i = 0; i < E2E_NODES; i++) {
        aether_member_view v;
        aether_member_view_get(e2e[i].m, &v);
        leaders += v.is_leader;
    }
    *leaders_out = leaders;
    if (leaders != 1)
        return false;
    for (uint32_t s = 0; s < E2E_SHARDS; s++) {
        int k = 0;
        for (int i = 0; i < E2E_NODES; i++)
            k += __atomic_load_n(&e2e[i].serving[s], __ATOMIC_ACQUIRE);
        if (k != 1)
            return false;
    }
    return true;
}

static void test_three_members_on_nats(void)
{
    up2(0); /* the server (A and B are not used) */
    aether_executor *ex = NULL;
    aether_pool_config pc = {.workers = 2};
    CU_ASSERT_FATAL(aether_pool_create(&pc, &ex) == AETHER_OK);
    CU_ASSERT_FATAL(aether_pool_start(ex) == AETHER_OK);
    aether_config base;
    aether_config_defaults(&base);
    base.shard_count = E2E_SHARDS;
    memset(e2e, 0, sizeof(e2e));
    for (int i = 0; i < E2E_NODES; i++) {
        e2e_node *n = &e2e[i];
        aether_config cfg = base;
        char id[16];
        snprintf(id, sizeof(id), "n%d", i);
        CU_ASSERT_FATAL(aether_node_id_from_cstr(id, &cfg.node, NULL) == AETHER_OK);
        n->nc = connect_to_server();
        aether_err err = {0};
        aether_kv_nats_config lk = {.conn = n->nc, .bucket = "lease", .ttl_ms = base.lease_ttl_ms,
                                    .timeout_ms = 1000, .create_if_missing = true, .one_key = true};
        aether_kv_nats_config sk = {.conn = n->nc, .bucket = "state", .timeout_ms = 1000,
                                    .create_if_missing = true};
        aether_status st = aether_kv_nats_create(&lk, &n->lease_kv, &err);
        if (st == AETHER_OK)
            st = aether_kv_nats_create(&sk, &n->state_kv, &err);
        if (st != AETHER_OK)
            fprintf(stderr, "kv: %s: %s\n", aether_status_str(st), err.msg);
        CU_ASSERT_FATAL(st == AETHER_OK);
        aether_nats_transport_config tc = {.conn = n->nc, .cluster = cfg.cluster, .node = cfg.node};
        CU_ASSERT_FATAL(aether_nats_transport_create(&tc, &n->t, &err) == AETHER_OK);
        aether_member_deps deps = {.executor = ex, .transport = n->t, .lease_store = n->lease_kv,
                                   .state_store = n->state_kv, .seed = (uint64_t)i + 1};
        aether_member_callbacks cb = {.on_shard_acquired = e2e_acquired,
                                      .on_shard_released = e2e_released, .arg = n};
        st = aether_member_start(&cfg, &deps, &cb, &n->m, &err);
        if (st != AETHER_OK)
            fprintf(stderr, "member: %s: %s\n", aether_status_str(st), err.msg);
        CU_ASSERT_FATAL(st == AETHER_OK);
    }
    uint64_t t0 = now_ns();
    int leaders = 0;
    bool settled = false;
    while (!settled && ms_since(t0) < 10000) { /* bounded: 10 s */
        settled = e2e_settled(&leaders);
        if (!settled)
            sleep_ms(20);
    }
    if (!settled)
        fprintf(stderr, "not settled after 10 s: %d leader(s)\n", leaders);
    CU_ASSERT_TRUE(settled);
    CU_ASSERT_EQUAL(leaders, 1);

    for (int i = 0; i < E2E_NODES; i++)
        aether_member_stop(e2e[i].m);
    aether_pool_stop(ex);
    for (int i = 0; i < E2E_NODES; i++) {
        aether_member_destroy(e2e[i].m);
        aether_transport_destroy(e2e[i].t);
        aether_kv_destroy(e2e[i].lease_kv);
        aether_kv_destroy(e2e[i].state_kv);
        natsConnection_Destroy(e2e[i].nc);
    }
    aether_executor_destroy(ex);
    aether_rcu_barrier();
    drop_all();
}

static CU_TestInfo tests[] = {
    AETHER_TEST(create_rejects_bad_config),
    AETHER_TEST(events_reach_both_in_order),
    AETHER_TEST(map_round_trip),
    AETHER_TEST(heartbeats),
    AETHER_TEST(command_no_leader),
    AETHER_TEST(command_served),
    AETHER_TEST(command_timeout_then_closed),
    AETHER_TEST(malformed_dropped_and_counted),
    AETHER_TEST(unbind_stops_callbacks),
    AETHER_TEST(sealed_traffic),
    AETHER_TEST(send_command_races_unbind),
    AETHER_TEST(three_members_on_nats),
    CU_TEST_INFO_NULL,
};

AETHER_SUITE("nats_transport", NULL, suite_cleanup, tests);
