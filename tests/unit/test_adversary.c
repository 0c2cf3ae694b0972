/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_adversary.c: the adversary's generator (tests/sim/adversary.h; tests
 * layer): one seed and one set of observations give one stream of
 * messages; what it forges is well formed; what it learns shows in what it
 * sends; the families it is told to leave out never appear - and do
 * appear when it is not told (so the checks can fail).
 */
#include <string.h>

#include "adversary.h"
#include "codec.h"
#include "cu_test.h"
#include "shardmap.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"

#define T_CLUSTER "advtest"
#define T_TERM 7u
#define T_GEN UINT64_C(0x1234567890abcdef)
#define T_MESSAGES 3000u

static void observe_event(aether_adversary *a, aether_event *e)
{
    char *buf = NULL;
    size_t len = 0;
    snprintf(e->cluster, sizeof(e->cluster), "%s", T_CLUSTER);
    e->generation = T_GEN;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &buf, &len, NULL), AETHER_OK);
    char tail[64];
    snprintf(tail, sizeof(tail), "evt.%s", aether_event_type_name(e->type));
    aether_adversary_observe(a, tail, buf, len);
    free(buf);
    aether_event_release(e);
}

/* A small cluster as a subscriber hears it: n1 leads term 7, n2 joined with
 * incarnation 5, n3 heartbeats with incarnation 9, map v12 of term 7. */
static void observe_cluster(aether_adversary *a)
{
    aether_event *e = aether_event_create(AETHER_EVT_LEADER_ELECTED);
    (void)aether_node_id_from_cstr("n1", &e->node, NULL);
    e->term = T_TERM;
    e->seq = 1;
    e->data.leader_elected.leader = e->node;
    e->data.leader_elected.term = T_TERM;
    e->data.leader_elected.ttl_ms = 1000;
    observe_event(a, e);
    e = aether_event_create(AETHER_EVT_NODE_JOINED);
    (void)aether_node_id_from_cstr("n1", &e->node, NULL);
    e->term = T_TERM;
    e->seq = 2;
    (void)aether_node_id_from_cstr("n2", &e->data.node_joined.node, NULL);
    snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "n2:1");
    e->data.node_joined.incarnation = 5;
    observe_event(a, e);

    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    snprintf(h.cluster, sizeof(h.cluster), "%s", T_CLUSTER);
    h.generation = T_GEN;
    h.term = T_TERM;
    (void)aether_node_id_from_cstr("n3", &h.node, NULL);
    char *buf = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_heartbeat(&h, 9, &buf, &len, NULL), AETHER_OK);
    aether_adversary_observe(a, "hb.n3", buf, len);
    free(buf);

    aether_shardmap_builder *b = NULL;
    aether_shardmap *m = NULL;
    aether_node_index idx[2];
    aether_node_id n1, n2;
    (void)aether_node_id_from_cstr("n1", &n1, NULL);
    (void)aether_node_id_from_cstr("n2", &n2, NULL);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(16, 1, &b, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &n1, &idx[0], NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &n2, &idx[1], NULL), AETHER_OK);
    for (uint32_t s = 0; s < 16; s++)
        CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, s, &idx[s % 2], 1, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, 12);
    aether_shardmap_builder_set_term(b, T_TERM);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_codec_encode(m, 0, &buf, &len, NULL), AETHER_OK);
    aether_adversary_observe(a, "map", buf, len);
    free(buf);
    aether_shardmap_destroy(m);
    aether_shardmap_builder_destroy(b);
}

static aether_adversary *make(uint64_t seed, uint32_t without)
{
    aether_adversary *a = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_adversary_create(T_CLUSTER, seed, without, &a, NULL), AETHER_OK);
    aether_admission terms = {.shard_count = 16, .replication = 1, .wire_min = 2, .wire_max = 2};
    aether_adversary_set_admission(a, &terms);
    observe_cluster(a);
    return a;
}

/* What a message would claim once decoded: the highest term it carries
 * anywhere (envelope, data, map), and for a JoinCluster the id it names.
 * false when the decoders refuse it. */
typedef struct claim {
    uint64_t term;
    bool join;
    aether_node_id joiner;
    aether_adv_class cls;
} claim;

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static bool decode_claim(const aether_adv_msg *m, claim *c)
{
    memset(c, 0, sizeof(*c));
    c->cls = m->cls;
    if (strcmp(m->tail, "map") == 0) {
        aether_shardmap *map = NULL;
        if (aether_shardmap_codec_decode(m->bytes, m->len, &map, NULL, NULL) != AETHER_OK)
            return false;
        c->term = map->term;
        aether_shardmap_destroy(map);
        return true;
    }
    aether_codec_limits lim = {.cluster = T_CLUSTER};
    aether_codec_msg msg;
    if (aether_codec_decode(m->bytes, m->len, &lim, &msg, NULL) != AETHER_OK)
        return false;
    c->term = msg.hdr.term;
    if (msg.kind == AETHER_CODEC_EVENT) {
        const aether_event *e = msg.u.event;
        if (e->type == AETHER_EVT_LEADER_ELECTED)
            c->term = max_u64(c->term, e->data.leader_elected.term);
        else if (e->type == AETHER_EVT_LEASE_RENEWED)
            c->term = max_u64(c->term, e->data.lease_renewed.term);
        else if (e->type == AETHER_EVT_LEADERSHIP_LOST)
            c->term = max_u64(c->term, e->data.leadership_lost.term);
    } else if (msg.kind == AETHER_CODEC_COMMAND && msg.u.command.type == AETHER_CMD_JOIN_CLUSTER) {
        c->join = true;
        c->joiner = msg.u.command.data.join.info.id;
        c->term = max_u64(c->term, msg.u.command.data.join.map_term);
    }
    aether_codec_msg_fini(&msg);
    return true;
}

static void test_same_seed_same_messages(void)
{
    aether_adversary *a = make(42, 0), *b = make(42, 0), *c = make(43, 0);
    uint32_t differ = 0;
    for (uint32_t i = 0; i < T_MESSAGES; i++) {
        aether_adv_msg x, y, z;
        CU_ASSERT_EQUAL_FATAL(aether_adversary_next(a, 1000 + i, &x, NULL), AETHER_OK);
        CU_ASSERT_EQUAL_FATAL(aether_adversary_next(b, 1000 + i, &y, NULL), AETHER_OK);
        CU_ASSERT_EQUAL_FATAL(aether_adversary_next(c, 1000 + i, &z, NULL), AETHER_OK);
        CU_ASSERT_EQUAL_FATAL(x.cls, y.cls);
        CU_ASSERT_STRING_EQUAL_FATAL(x.tail, y.tail);
        CU_ASSERT_EQUAL_FATAL(x.len, y.len);
        CU_ASSERT_FATAL(x.len == 0 || memcmp(x.bytes, y.bytes, x.len) == 0);
        differ += x.len != z.len || (x.len > 0 && memcmp(x.bytes, z.bytes, x.len) != 0);
        aether_adv_msg_fini(&x);
        aether_adv_msg_fini(&y);
        aether_adv_msg_fini(&z);
    }
    CU_ASSERT(differ > T_MESSAGES / 2); /* another seed, another stream */
    aether_adversary_destroy(a);
    aether_adversary_destroy(b);
    aether_adversary_destroy(c);
}

/* Forged messages are well formed; every class and every kind shows up;
 * without restrictions, terms far ahead (up to 2^63-1) and joins naming
 * members do too. */
static void test_forges_every_kind(void)
{
    aether_adversary *a = make(7, 0);
    uint32_t cls[AETHER_ADV_CLASS_COUNT_] = {0}, evt = 0, map = 0, hb = 0, cmd = 0;
    uint32_t ahead = 0, top = 0, member_joins = 0, refused = 0;
    for (uint32_t i = 0; i < T_MESSAGES; i++) {
        aether_adv_msg m;
        CU_ASSERT_EQUAL_FATAL(aether_adversary_next(a, 1000 + i, &m, NULL), AETHER_OK);
        cls[m.cls]++;
        evt += strncmp(m.tail, "evt.", 4) == 0;
        map += strcmp(m.tail, "map") == 0;
        hb += strncmp(m.tail, "hb.", 3) == 0;
        cmd += strncmp(m.tail, "cmd.", 4) == 0;
        claim c;
        bool ok = decode_claim(&m, &c);
        if (m.cls == AETHER_ADV_FORGED)
            CU_ASSERT_FATAL(ok); /* built with the product's encoders */
        refused += !ok;
        if (ok) {
            ahead += c.term > T_TERM;
            top += c.term == (uint64_t)INT64_MAX;
            member_joins += c.join && (strcmp(c.joiner.str, "n1") == 0 || strcmp(c.joiner.str, "n2") == 0 ||
                                       strcmp(c.joiner.str, "n3") == 0);
        }
        aether_adv_msg_fini(&m);
    }
    for (int k = 0; k < AETHER_ADV_CLASS_COUNT_; k++)
        CU_ASSERT(cls[k] > T_MESSAGES / 10);
    CU_ASSERT(evt > 0 && map > 0 && hb > 0 && cmd > 0);
    CU_ASSERT(ahead > 0);
    CU_ASSERT(top > 0);
    CU_ASSERT(member_joins > 0);
    CU_ASSERT(refused > 0); /* malformed copies the decoders refuse */
    aether_adv_stats st;
    aether_adversary_stats(a, &st);
    CU_ASSERT_EQUAL(st.term, T_TERM);
    CU_ASSERT(st.ids >= 3); /* n1, n2, n3 */
    aether_adversary_destroy(a);
}

/* The families left out never appear, in forged messages or in malformed
 * copies that still decode. */
static void test_without_families(void)
{
    aether_adversary *a =
        make(7, AETHER_ADV_WITHOUT_AHEAD_TERMS | AETHER_ADV_WITHOUT_JOIN_INCARNATIONS);
    uint32_t decoded = 0, joins = 0;
    for (uint32_t i = 0; i < 3 * T_MESSAGES; i++) {
        aether_adv_msg m;
        CU_ASSERT_EQUAL_FATAL(aether_adversary_next(a, 1000 + i, &m, NULL), AETHER_OK);
        claim c;
        if (decode_claim(&m, &c)) {
            decoded++;
            CU_ASSERT_FATAL(c.term <= T_TERM);
            if (c.join) {
                joins++;
                CU_ASSERT_FATAL(strcmp(c.joiner.str, "n1") != 0 && strcmp(c.joiner.str, "n2") != 0 &&
                                strcmp(c.joiner.str, "n3") != 0);
            }
        }
        aether_adv_msg_fini(&m);
    }
    CU_ASSERT(decoded > T_MESSAGES);
    CU_ASSERT(joins > 0);
    aether_adversary_destroy(a);
}

static void test_parse_without(void)
{
    uint32_t mask = 99;
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_adversary_parse_without("ahead-terms,join-incarnations", &mask, &err), AETHER_OK);
    CU_ASSERT_EQUAL(mask, AETHER_ADV_WITHOUT_AHEAD_TERMS | AETHER_ADV_WITHOUT_JOIN_INCARNATIONS);
    CU_ASSERT_EQUAL(aether_adversary_parse_without("none", &mask, &err), AETHER_OK);
    CU_ASSERT_EQUAL(mask, 0);
    CU_ASSERT_EQUAL(aether_adversary_parse_without("ahead-terms,bogus", &mask, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bogus"));
    aether_adversary *a = NULL;
    CU_ASSERT_EQUAL(aether_adversary_create("has space", 1, 0, &a, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(a);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(same_seed_same_messages),
    AETHER_TEST(forges_every_kind),
    AETHER_TEST(without_families),
    AETHER_TEST(parse_without),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("adversary", NULL, NULL, tests);
