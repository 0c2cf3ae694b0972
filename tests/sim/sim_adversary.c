/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_adversary.c: see sim_adversary.h (tests layer, the simulation library).
 *
 * Its own publications come back to the listening endpoint (the hub echoes
 * broadcasts to their sender): it remembers a hash of the canonical bytes of
 * the last SIM_ADV_OWN_MAX it published and does not learn from those.
 */
#include "sim_adversary.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adversary.h"
#include "assertion.h"
#include "codec.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"
#include "transport.h"

#define SIM_ADV_OWN_MAX 256u /* own publications recognised when they come back */

struct sim_adversary {
    aether_inproc_hub *hub;
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    aether_adversary *gen;
    aether_transport *ep;     /* "adversary": listens and publishes; NULL unless listening */
    aether_transport *forger; /* "forger": the forge kind, made on first use, never bound */
    uint64_t forge_seq;       /* seqs the forger used so far */
    uint64_t own[SIM_ADV_OWN_MAX];
    uint32_t own_head;
    uint64_t refused;         /* messages the decoders refused */
    uint64_t replies[AETHER_STATUS_COUNT_];
};

static uint64_t sim_adv_hash(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < len; i++) { /* bounded: len */
        h ^= b[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static bool sim_adv_is_own(const sim_adversary *a, uint64_t h)
{
    for (uint32_t i = 0; i < SIM_ADV_OWN_MAX; i++) /* bounded: SIM_ADV_OWN_MAX */
        if (a->own[i] == h)
            return true;
    return false;
}

static void sim_adv_remember(sim_adversary *a, const void *p, size_t len)
{
    a->own[a->own_head] = sim_adv_hash(p, len);
    a->own_head = (a->own_head + 1) % SIM_ADV_OWN_MAX;
}

/* ---- listening ------------------------------------------------------------ */

static void sim_adv_heard(sim_adversary *a, const char *tail, const char *bytes, size_t len)
{
    if (!sim_adv_is_own(a, sim_adv_hash(bytes, len)))
        aether_adversary_observe(a->gen, tail, bytes, len);
}

static void sink_event(void *arg, const aether_event *e)
{
    sim_adversary *a = arg;
    char *buf = NULL;
    size_t len = 0;
    if (aether_codec_encode_event(e, &buf, &len, NULL) != AETHER_OK)
        return; /* nothing a node sends fails to encode; a forged one could */
    char tail[AETHER_ADV_TAIL_MAX];
    snprintf(tail, sizeof(tail), "evt.%s", aether_event_type_name(e->type));
    sim_adv_heard(a, tail, buf, len);
    free(buf);
}

static void sink_map(void *arg, const aether_shardmap *m, const char *json, size_t len)
{
    sim_adversary *a = arg;
    char *buf = NULL;
    if (json == NULL) {
        if (aether_shardmap_codec_encode(m, 0, &buf, &len, NULL) != AETHER_OK)
            return;
        json = buf;
    }
    sim_adv_heard(a, "map", json, len);
    free(buf);
}

static void sim_adv_reply(void *arg, aether_status status, const char *reason)
{
    sim_adversary *a = arg;
    (void)reason;
    if ((unsigned)status < AETHER_STATUS_COUNT_)
        a->replies[status]++;
}

static aether_transport *sim_adv_endpoint(aether_inproc_hub *hub, const char *name)
{
    aether_node_id id;
    aether_transport *t = NULL;
    AETHER_ASSERT(aether_node_id_from_cstr(name, &id, NULL) == AETHER_OK);
    AETHER_ASSERT(aether_inproc_endpoint_create(hub, &id, &t) == AETHER_OK);
    return t;
}

sim_adversary *sim_adversary_create(aether_inproc_hub *hub, const char *cluster, uint64_t seed,
                                    uint32_t without, const aether_admission *terms, bool listen)
{
    sim_adversary *a = calloc(1, sizeof(*a));
    AETHER_ASSERT(a != NULL);
    a->hub = hub;
    snprintf(a->cluster, sizeof(a->cluster), "%s", cluster);
    AETHER_ASSERT(aether_adversary_create(cluster, seed, without, &a->gen, NULL) == AETHER_OK);
    aether_adversary_set_admission(a->gen, terms);
    if (listen) {
        a->ep = sim_adv_endpoint(hub, "adversary");
        aether_transport_sink sink = {.on_event = sink_event, .on_map = sink_map, .arg = a};
        AETHER_ASSERT(aether_transport_bind(a->ep, &sink) == AETHER_OK);
    }
    return a;
}

void sim_adversary_destroy(sim_adversary *a)
{
    if (a == NULL)
        return;
    if (a->ep != NULL)
        aether_transport_unbind(a->ep);
    aether_transport_destroy(a->ep);
    aether_transport_destroy(a->forger);
    aether_adversary_destroy(a->gen);
    free(a);
}

/* ---- acting -------------------------------------------------------------- */

/* What a transport would do with these bytes on this subject: decode, then
 * hand over. Returns what became of it. */
static const char *sim_adv_deliver_map(sim_adversary *a, const aether_adv_msg *m, aether_err *err)
{
    aether_shardmap *map = NULL;
    if (aether_shardmap_codec_decode(m->bytes, m->len, &map, NULL, err) != AETHER_OK) {
        a->refused++;
        return "refused";
    }
    sim_adv_remember(a, m->bytes, m->len);
    aether_status st = aether_transport_publish_map_json(a->ep, map, m->bytes, m->len);
    aether_shardmap_destroy(map);
    return st == AETHER_OK ? "published" : "not published";
}

static const char *sim_adv_deliver(sim_adversary *a, const aether_adv_msg *m, aether_err *err)
{
    if (strcmp(m->tail, "map") == 0)
        return sim_adv_deliver_map(a, m, err);
    aether_codec_limits lim = {.cluster = a->cluster};
    aether_codec_msg msg;
    if (aether_codec_decode(m->bytes, m->len, &lim, &msg, err) != AETHER_OK) {
        a->refused++;
        return "refused";
    }
    aether_codec_kind want = strncmp(m->tail, "evt.", 4) == 0  ? AETHER_CODEC_EVENT
                             : strncmp(m->tail, "hb.", 3) == 0 ? AETHER_CODEC_HEARTBEAT
                                                               : AETHER_CODEC_COMMAND;
    const char *fate = "published";
    aether_status st = AETHER_OK;
    if (msg.kind != want) {
        a->refused++;
        fate = "refused (another kind on this subject)";
    } else if (msg.kind == AETHER_CODEC_EVENT) {
        char *canon = NULL;
        size_t len = 0;
        if (aether_codec_encode_event(msg.u.event, &canon, &len, NULL) == AETHER_OK)
            sim_adv_remember(a, canon, len);
        free(canon);
        st = aether_transport_publish_event(a->ep, msg.u.event);
    } else if (msg.kind == AETHER_CODEC_HEARTBEAT) {
        st = aether_transport_publish_heartbeat(a->ep, &msg.u.heartbeat.node, msg.u.heartbeat.incarnation);
    } else {
        fate = "sent";
        st = aether_transport_send_command(a->ep, &msg.u.command, sim_adv_reply, a);
        if (st == AETHER_ENOTLEADER)
            fate = "sent (nobody serves commands)";
    }
    if (st != AETHER_OK && st != AETHER_ENOTLEADER)
        fate = "not sent";
    aether_codec_msg_fini(&msg);
    return fate;
}

void sim_adversary_act(sim_adversary *a, uint64_t wall_ms, char *line, size_t cap)
{
    AETHER_ASSERT(a->ep != NULL);
    aether_adv_msg m;
    aether_err err = {0};
    if (aether_adversary_next(a->gen, wall_ms, &m, &err) != AETHER_OK) {
        snprintf(line, cap, "adversary: nothing made: %s", err.msg);
        return;
    }
    aether_err why = {0};
    const char *fate = sim_adv_deliver(a, &m, &why);
    snprintf(line, cap, "adversary %s %s on %s: %s%s%.120s", aether_adv_class_name(m.cls), m.what, m.tail,
             fate, why.msg[0] != '\0' ? ": " : "", why.msg);
    aether_adv_msg_fini(&m);
}

/* ---- forge: the present leader impersonated ----------------------------------- */

void sim_adversary_forge_present(sim_adversary *a, const aether_node_id *leader, aether_term term,
                                 uint64_t map_version, const aether_node_id *victim, uint32_t shards,
                                 bool far_term, uint32_t ttl_ms, char *line, size_t cap)
{
    if (a->forger == NULL)
        a->forger = sim_adv_endpoint(a->hub, "forger");
    aether_event *e = aether_event_create(AETHER_EVT_NODE_FAILED);
    AETHER_ASSERT(e != NULL);
    snprintf(e->cluster, sizeof(e->cluster), "%s", a->cluster);
    e->term = term;
    e->seq = 1000000 + ++a->forge_seq;
    e->node = *leader;
    e->data.node_failed.node = *victim;
    (void)aether_transport_publish_event(a->forger, e);
    aether_event_release(e);
    aether_shardmap_builder *b = NULL;
    aether_shardmap *map = NULL;
    aether_node_index vi;
    AETHER_ASSERT(aether_shardmap_builder_create(shards, 1, &b, NULL) == AETHER_OK);
    AETHER_ASSERT(aether_shardmap_builder_add_node(b, victim, &vi, NULL) == AETHER_OK);
    for (uint32_t sh = 0; sh < shards; sh++) /* bounded: shards */
        AETHER_ASSERT(aether_shardmap_builder_set_owners(b, sh, &vi, 1, NULL) == AETHER_OK);
    aether_shardmap_builder_set_version(b, map_version + 1000);
    aether_shardmap_builder_set_term(b, term);
    AETHER_ASSERT(aether_shardmap_build(b, &map, NULL) == AETHER_OK);
    aether_shardmap_builder_destroy(b);
    (void)aether_transport_publish_map(a->forger, map);
    aether_shardmap_destroy(map);
    int n = snprintf(line, cap,
                     "forged NodeFailed of %s (seq %" PRIu64 ") and map v%" PRIu64 " in %s's name, term %" PRIu64,
                     victim->str, 1000000 + a->forge_seq, map_version + 1000, leader->str, (uint64_t)term);
    if (!far_term)
        return;
    /* Believed, a far-ahead LeaderElected would make every node drop the
     * real leader's events as stale (for minutes, or for good). */
    aether_term far = (a->forge_seq & 1u) ? term + 1000 : (aether_term)INT64_MAX;
    aether_event *le = aether_event_create(AETHER_EVT_LEADER_ELECTED);
    AETHER_ASSERT(le != NULL);
    snprintf(le->cluster, sizeof(le->cluster), "%s", a->cluster);
    le->term = far;
    le->seq = 1;
    AETHER_ASSERT(aether_node_id_from_cstr("forger", &le->node, NULL) == AETHER_OK);
    le->data.leader_elected.leader = le->node;
    le->data.leader_elected.term = far;
    le->data.leader_elected.ttl_ms = ttl_ms;
    (void)aether_transport_publish_event(a->forger, le);
    aether_event_release(le);
    if (n >= 0 && (size_t)n < cap)
        snprintf(line + n, cap - (size_t)n, "; LeaderElected of term %" PRIu64 " from forger", (uint64_t)far);
}

void sim_adversary_summary(const sim_adversary *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (a == NULL || a->ep == NULL)
        return;
    aether_adv_stats st;
    aether_adversary_stats(a->gen, &st);
    int n = snprintf(buf, cap,
                     "adversary: %" PRIu64 " forged, %" PRIu64 " replayed, %" PRIu64
                     " malformed (%" PRIu64 " refused by the decoders); heard %" PRIu64
                     " genuine messages, highest term %" PRIu64 ", %u node ids; commands answered:",
                     st.made[AETHER_ADV_FORGED], st.made[AETHER_ADV_REPLAYED], st.made[AETHER_ADV_MALFORMED],
                     a->refused, st.observed, st.term, st.ids);
    bool any = false;
    for (unsigned k = 0; k < AETHER_STATUS_COUNT_ && n > 0 && (size_t)n < cap; k++) { /* bounded */
        if (a->replies[k] == 0)
            continue;
        n += snprintf(buf + n, cap - (size_t)n, " %s %" PRIu64, aether_status_str((aether_status)k),
                      a->replies[k]);
        any = true;
    }
    if (!any && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " none");
}
