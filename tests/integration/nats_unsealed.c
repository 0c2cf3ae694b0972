/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_unsealed.c: what a NATS client WITHOUT the cluster secret can send to
 * an Aether cluster that has one, for nats_secret.sh (tests layer; issue 13
 * item 1). Every message is well formed, as a real node would encode it;
 * what it lacks is a valid Aether-Auth tag (transport/auth.h), or it carries
 * a genuine one copied from a captured message (a replay).
 *
 *   nats_unsealed --nats URL --cluster C --attack --victim A --rejoin B
 *
 * reads the lease (js_GetLastMsg of $KV.aether_<C>_lease.leader: the
 * leader L and its term T) and the stored map, then sends:
 *   1. evt.LeaderElected   leader "evil", term T + 1000 (unsealed)
 *   2. cmd.MarkNodeFailed  of A, a live node (request; sender "evil")
 *   3. cmd.JoinCluster     of B with incarnation 2^62 and address evil:1
 *   4. map                 the stored map with its version + 1000
 *   5. evt.<any>           the first genuine event seen on evt.>, copied with
 *                          its tag, published 3 times (replays)
 *   6. $KV.aether_<C>_lease.leader  a lease value {"leader":"evil",
 *                          "term":T+1000,...} written straight to the KV
 *                          (JetStream publish, no expectation)
 * and prints
 *   state leader=L term=T map_version=V
 *   reply <Command> <STATUS> <reason>        for 2 and 3 (or "noreply")
 *   replayed <subject tail>                  for 5
 *   sent N
 * Exit 0 when everything was sent, 1 otherwise (reason on stderr), 2 usage.
 *
 *   nats_unsealed --nats URL --cluster C --replay-hb ID [--for-ms MS]
 *
 * captures the first heartbeat on aether.<C>.hb.<ID> (within 5 s), prints
 * "captured hb.<ID>", then for MS (default 6000) every 50 ms publishes it
 * again twice: the captured bytes with their genuine tag (a replay), and the
 * same bytes with no tag (unsealed). Prints "sent K". The script kills ID
 * after "captured": the copies must keep nobody alive.
 *
 * Threading: one thread. Every wait is bounded.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "aether_internal.h"

#define EXIT_USAGE 2
#define US_WAIT_MS 3000       /* a request's reply, a capture */
#define US_HB_EVERY_MS 50
#define US_REPLAYS 3

static uint64_t us_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t us_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void us_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int us_fail(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_unsealed: %s: %s\n", what, natsStatus_GetText(s));
    return 1;
}

/* A copy of msg on its subject, with its tag when with_tag. */
static natsStatus us_republish(natsConnection *nc, natsMsg *msg, bool with_tag)
{
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, natsMsg_GetSubject(msg), NULL, natsMsg_GetData(msg),
                                  natsMsg_GetDataLength(msg));
    const char *tag = NULL;
    if (s == NATS_OK && with_tag && natsMsgHeader_Get(msg, AETHER_AUTH_HEADER, &tag) == NATS_OK)
        s = natsMsgHeader_Set(m, AETHER_AUTH_HEADER, tag);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(nc, m);
    natsMsg_Destroy(m);
    return s;
}

/* The first message on subject within US_WAIT_MS, or NULL. */
static natsMsg *us_capture(natsConnection *nc, const char *subject)
{
    natsSubscription *sub = NULL;
    natsMsg *msg = NULL;
    if (natsConnection_SubscribeSync(&sub, nc, subject) == NATS_OK)
        (void)natsSubscription_NextMsg(&msg, sub, US_WAIT_MS);
    natsSubscription_Destroy(sub);
    return msg;
}

static void us_ask(natsConnection *nc, const char *subject, const aether_command *c, int *sent)
{
    char *buf = NULL;
    size_t len = 0;
    aether_err err = {0};
    if (aether_codec_encode_command(c, us_wall_ms(), &buf, &len, &err) != AETHER_OK) {
        fprintf(stderr, "nats_unsealed: encode %s: %s\n", aether_command_type_name(c->type), err.msg);
        return;
    }
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, nc, subject, buf, (int)len, US_WAIT_MS);
    free(buf);
    (*sent)++;
    aether_codec_msg m;
    if (s == NATS_OK && aether_codec_decode(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), NULL,
                                            &m, &err) == AETHER_OK && m.kind == AETHER_CODEC_REPLY) {
        printf("reply %s %s %s\n", aether_command_type_name(c->type), aether_status_str(m.u.reply.status),
               m.u.reply.reason);
        aether_codec_msg_fini(&m);
    } else {
        printf("noreply %s %s\n", aether_command_type_name(c->type), natsStatus_GetText(s));
    }
    natsMsg_Destroy(reply);
}

static int us_attack(natsConnection *nc, const char *cluster, const char *victim, const char *rejoin)
{
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK)
        return us_fail("JetStream", s);
    char stream[128], subject[256], prefix[128];
    snprintf(prefix, sizeof(prefix), "aether.%s.", cluster);
    /* The present state, read as any client can. */
    snprintf(stream, sizeof(stream), "KV_aether_%s_lease", cluster);
    snprintf(subject, sizeof(subject), "$KV.aether_%s_lease.leader", cluster);
    natsMsg *lm = NULL;
    aether_lease_value lease;
    aether_err err = {0};
    s = js_GetLastMsg(&lm, js, stream, subject, NULL, NULL);
    if (s != NATS_OK || aether_lease_value_decode(natsMsg_GetData(lm), (size_t)natsMsg_GetDataLength(lm), &lease,
                                                  &err) != AETHER_OK) {
        natsMsg_Destroy(lm);
        jsCtx_Destroy(js);
        fprintf(stderr, "nats_unsealed: the lease cannot be read: %s %s\n", natsStatus_GetText(s), err.msg);
        return 1;
    }
    natsMsg_Destroy(lm);
    snprintf(stream, sizeof(stream), "KV_aether_%s_state", cluster);
    char map_subject[256];
    snprintf(map_subject, sizeof(map_subject), "$KV.aether_%s_state.map", cluster);
    natsMsg *mm = NULL;
    char *map = NULL; /* the stored bytes: ShardMap format 2 (shardmap_codec.h) */
    size_t map_len = 0;
    uint64_t version = 0, map_term = 0, map_gen = 0;
    if (js_GetLastMsg(&mm, js, stream, map_subject, NULL, NULL) == NATS_OK) {
        map_len = (size_t)natsMsg_GetDataLength(mm);
        map = malloc(map_len + 1);
        if (map != NULL)
            memcpy(map, natsMsg_GetData(mm), map_len);
    }
    natsMsg_Destroy(mm);
    if (map == NULL || !aether_shardmap_codec_peek(map, map_len, &version, &map_term, &map_gen)) {
        free(map);
        jsCtx_Destroy(js);
        fprintf(stderr, "nats_unsealed: the stored map cannot be read\n");
        return 1;
    }
    printf("state leader=%s term=%" PRIu64 " map_version=%llu\n", lease.leader.str, (uint64_t)lease.term,
           (unsigned long long)version);
    int sent = 0;
    aether_node_id evil;
    (void)aether_node_id_from_cstr("evil", &evil, NULL);

    /* 1. A leader of a term far ahead. */
    aether_event *e = aether_event_create(AETHER_EVT_LEADER_ELECTED);
    snprintf(e->cluster, sizeof(e->cluster), "%s", cluster);
    e->term = lease.term + 1000;
    e->node = evil;
    e->seq = 1;
    e->ts_ms = us_wall_ms();
    e->data.leader_elected.leader = evil;
    e->data.leader_elected.term = lease.term + 1000;
    e->data.leader_elected.ttl_ms = lease.ttl_ms;
    char *buf = NULL;
    size_t len = 0;
    if (aether_codec_encode_event(e, &buf, &len, &err) != AETHER_OK) {
        fprintf(stderr, "nats_unsealed: encode LeaderElected: %s\n", err.msg);
        aether_event_release(e);
        free(map);
        jsCtx_Destroy(js);
        return 1;
    }
    aether_event_release(e);
    snprintf(subject, sizeof(subject), "%sevt.LeaderElected", prefix);
    s = natsConnection_Publish(nc, subject, buf, (int)len);
    free(buf);
    sent += s == NATS_OK;

    /* 2, 3. Commands. */
    aether_command c;
    memset(&c, 0, sizeof(c));
    snprintf(c.cluster, sizeof(c.cluster), "%s", cluster);
    c.sender = evil;
    c.term = lease.term;
    c.type = AETHER_CMD_MARK_NODE_FAILED;
    (void)aether_node_id_from_cstr(victim, &c.data.mark_failed.node, NULL);
    c.data.mark_failed.silent_ms = 5000;
    snprintf(subject, sizeof(subject), "%scmd.MarkNodeFailed", prefix);
    us_ask(nc, subject, &c, &sent);
    memset(&c.data, 0, sizeof(c.data));
    c.type = AETHER_CMD_JOIN_CLUSTER;
    if (aether_node_info_make(&c.data.join.info, rejoin, "evil:1", NULL, AETHER_NODE_ACTIVE, UINT64_C(1) << 62, 0,
                              &err) == AETHER_OK) {
        aether_config def;
        aether_config_defaults(&def);
        aether_config_admission(&def, &c.data.join.terms);
        snprintf(subject, sizeof(subject), "%scmd.JoinCluster", prefix);
        us_ask(nc, subject, &c, &sent);
    }

    /* 4. A map far ahead: the stored bytes, version (header offset 12) + 1000. */
    for (int i = 0; i < 8; i++)
        map[12 + i] = (char)((version + 1000) >> (8 * i));
    snprintf(subject, sizeof(subject), "%smap", prefix);
    if (natsConnection_Publish(nc, subject, map, (int)map_len) == NATS_OK)
        sent++;
    free(map);

    /* 5. A genuine event, sent again with its genuine tag. */
    snprintf(subject, sizeof(subject), "%sevt.>", prefix);
    natsMsg *ev = us_capture(nc, subject);
    if (ev == NULL) {
        jsCtx_Destroy(js);
        fprintf(stderr, "nats_unsealed: no genuine event within %d ms\n", US_WAIT_MS);
        return 1;
    }
    for (int i = 0; i < US_REPLAYS; i++)
        sent += us_republish(nc, ev, true) == NATS_OK;
    printf("replayed %s\n", natsMsg_GetSubject(ev) + strlen(prefix));
    natsMsg_Destroy(ev);

    /* 6. A lease value written straight to the bucket. */
    aether_lease_value forged = {.leader = evil, .ttl_ms = lease.ttl_ms, .term = lease.term + 1000,
                                 .nonce = 0x0123456789abcdefu};
    char lv[256];
    size_t lvlen = 0;
    snprintf(subject, sizeof(subject), "$KV.aether_%s_lease.leader", cluster);
    if (aether_lease_value_encode(&forged, lv, sizeof(lv), &lvlen, &err) == AETHER_OK) {
        jsPubAck *ack = NULL;
        s = js_Publish(&ack, js, subject, lv, (int)lvlen, NULL, NULL);
        if (s == NATS_OK)
            printf("stored lease revision=%" PRIu64 "\n", ack->Sequence);
        else
            fprintf(stderr, "nats_unsealed: lease write: %s\n", natsStatus_GetText(s));
        jsPubAck_Destroy(ack);
        sent += s == NATS_OK;
    }
    (void)natsConnection_FlushTimeout(nc, US_WAIT_MS);
    jsCtx_Destroy(js);
    printf("sent %d\n", sent);
    return sent == 8 ? 0 : 1;
}

static int us_replay_hb(natsConnection *nc, const char *cluster, const char *id, uint64_t for_ms)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "aether.%s.hb.%s", cluster, id);
    natsMsg *hb = us_capture(nc, subject);
    if (hb == NULL) {
        fprintf(stderr, "nats_unsealed: no heartbeat of %s within %d ms\n", id, US_WAIT_MS);
        return 1;
    }
    printf("captured hb.%s\n", id);
    fflush(stdout);
    uint64_t end = us_mono_ms() + for_ms, sent = 0;
    while (us_mono_ms() < end) { /* bounded: for_ms */
        sent += us_republish(nc, hb, true) == NATS_OK;
        sent += us_republish(nc, hb, false) == NATS_OK;
        us_sleep_ms(US_HB_EVERY_MS);
    }
    natsMsg_Destroy(hb);
    (void)natsConnection_FlushTimeout(nc, US_WAIT_MS);
    printf("sent %" PRIu64 "\n", sent);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *cluster = NULL, *victim = NULL, *rejoin = NULL, *hb = NULL;
    bool attack = false;
    uint64_t for_ms = 6000;
    enum { O_NATS = 1, O_CLUSTER, O_ATTACK, O_VICTIM, O_REJOIN, O_HB, O_FOR };
    static const struct option opts[] = {
        {"nats", required_argument, NULL, O_NATS},     {"cluster", required_argument, NULL, O_CLUSTER},
        {"attack", no_argument, NULL, O_ATTACK},       {"victim", required_argument, NULL, O_VICTIM},
        {"rejoin", required_argument, NULL, O_REJOIN}, {"replay-hb", required_argument, NULL, O_HB},
        {"for-ms", required_argument, NULL, O_FOR},    {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_NATS: url = optarg; break;
        case O_CLUSTER: cluster = optarg; break;
        case O_ATTACK: attack = true; break;
        case O_VICTIM: victim = optarg; break;
        case O_REJOIN: rejoin = optarg; break;
        case O_HB: hb = optarg; break;
        case O_FOR: for_ms = strtoull(optarg, NULL, 10); break;
        default: return EXIT_USAGE;
        }
    }
    if (url == NULL || cluster == NULL || (attack == (hb != NULL)) ||
        (attack && (victim == NULL || rejoin == NULL)) || for_ms == 0 || for_ms > 600000) {
        fprintf(stderr, "usage: nats_unsealed --nats URL --cluster C (--attack --victim A --rejoin B | "
                        "--replay-hb ID [--for-ms MS])\n");
        return EXIT_USAGE;
    }
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s != NATS_OK)
        return us_fail(url, s);
    int rc = attack ? us_attack(nc, cluster, victim, rejoin) : us_replay_hb(nc, cluster, hb, for_ms);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
