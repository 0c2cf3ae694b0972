/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_codec.c: the wire codec of the NATS transport (transport/codec.h):
 * exact shape, byte-identical round trips of every kind, a table of forged
 * and malformed inputs refused with the right status, class and field path,
 * bounds on size and nesting, the statistics and their rate-limited log, the
 * committed seed corpus, and a seeded mutation loop.
 *
 * The corpus in tests/corpus/codec/ is checked against the encoder here; to
 * regenerate it after a deliberate wire change run tools/gen-codec-corpus
 * (which runs `test_codec corpus` with AETHER_CODEC_CORPUS_OUT set).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "cu_test.h"
#include "rng.h"

#define CORPUS_DIR AETHER_TEST_VECTORS_DIR "/../corpus/codec"
#define FUZZ_SEED UINT64_C(0xC0DEC0DE2026)
#define FUZZ_ITERATIONS 20000

/* ---- samples ------------------------------------------------------------- */

static aether_node_id nid(const char *s)
{
    aether_node_id id;
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr(s, &id, NULL), AETHER_OK);
    return id;
}

/* "aaaa..." of n characters (n < 300), in a static rotating buffer. */
static const char *rep(char c, size_t n)
{
    static char bufs[4][300];
    static int next;
    char *b = bufs[next++ % 4];
    CU_ASSERT_FATAL(n < sizeof(bufs[0]));
    memset(b, c, n);
    b[n] = '\0';
    return b;
}

/* The index of id in batch e's node table (added if new). */
static uint16_t batch_node(aether_event_nodes_ix *ix, const char *id)
{
    aether_node_id n = nid(id);
    uint16_t idx = UINT16_MAX;
    CU_ASSERT_EQUAL_FATAL(aether_event_nodes_ix_add(ix, &n, &idx), AETHER_OK);
    return idx;
}

/* extreme: every integer at its maximum, every string at its longest; a
 * batch at AETHER_EVENT_BATCH_MAX entries with every owner distinct (the
 * largest message there is). Otherwise a batch of three entries. */
static aether_event *sample_event(aether_event_type t, bool extreme)
{
    bool batch = t == AETHER_EVT_SHARD_ASSIGNED || t == AETHER_EVT_SHARD_MIGRATED;
    uint32_t entries = extreme ? AETHER_EVENT_BATCH_MAX : 3;
    aether_event *e = batch ? aether_event_create_batch(t, entries) : aether_event_create(t);
    aether_event_nodes_ix ix = {0};
    if (batch)
        CU_ASSERT_EQUAL_FATAL(aether_event_nodes_ix_init(&ix, e), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    const uint64_t big = extreme ? (uint64_t)INT64_MAX : 0;
    const char *a = extreme ? rep('a', 64) : "node-a";
    const char *b = extreme ? rep('b', 64) : "node-b";
    const char *reason = extreme ? rep('r', AETHER_REASON_MAX) : "node-c failed";
    snprintf(e->cluster, sizeof(e->cluster), "%s", extreme ? rep('p', 64) : "prod");
    e->term = extreme ? big : 42;
    e->seq = extreme ? big : 7;
    e->node = nid(a);
    e->ts_ms = extreme ? big : UINT64_C(1767225600123);
    switch (t) {
    case AETHER_EVT_NODE_JOINED:
        e->data.node_joined.node = nid(b);
        snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "%s",
                 extreme ? rep('x', AETHER_NODE_ADDRESS_LEN_MAX) : "10.0.0.2:4222");
        snprintf(e->data.node_joined.zone, sizeof(e->data.node_joined.zone), "%s",
                 extreme ? rep('z', AETHER_NODE_ZONE_LEN_MAX) : "eu-west-1a");
        e->data.node_joined.incarnation = extreme ? big : 3;
        e->data.node_joined.map_version = extreme ? big : 12;
        break;
    case AETHER_EVT_NODE_DRAINING:
        e->data.node_draining.node = nid(b);
        break;
    case AETHER_EVT_NODE_LEFT:
        e->data.node_left.node = nid(b);
        break;
    case AETHER_EVT_NODE_FAILED:
        e->data.node_failed.node = nid(b);
        e->data.node_failed.silent_ms = extreme ? big : 1250;
        break;
    case AETHER_EVT_LEADER_ELECTED:
        e->data.leader_elected.leader = nid(a);
        e->data.leader_elected.term = extreme ? big : 42;
        e->data.leader_elected.ttl_ms = extreme ? big : 1000;
        break;
    case AETHER_EVT_LEASE_RENEWED:
        e->data.lease_renewed.leader = nid(a);
        e->data.lease_renewed.term = extreme ? big : 42;
        e->data.lease_renewed.map_version = extreme ? big : 12;
        e->data.lease_renewed.topology_version = extreme ? big : 5;
        break;
    case AETHER_EVT_LEADERSHIP_LOST:
        e->data.leadership_lost.leader = nid(a);
        e->data.leadership_lost.term = extreme ? big : 42;
        aether_event_set_reason(e->data.leadership_lost.reason,
                                extreme ? reason : "renewal failed");
        break;
    case AETHER_EVT_SHARD_ASSIGNED: {
        /* Shards 17, 18, 3 (not sorted: the order is the leader's); extreme:
         * 65535 downwards, owners all distinct 64-byte ids. */
        static const uint32_t plain[3] = {17, 18, 3};
        uint32_t n = extreme ? AETHER_REPLICATION_MAX : 3;
        for (uint32_t k = 0; k < entries; k++) {
            aether_shard_owners *so = &e->data.shard_assigned.shards[k];
            so->shard = extreme ? AETHER_SHARD_COUNT_MAX - 1 - k : plain[k];
            for (uint32_t i = 0; i < n; i++) {
                char id[AETHER_NODE_ID_LEN_MAX + 1];
                if (extreme)
                    snprintf(id, sizeof(id), "%s%04u", rep('o', 60), k * n + i);
                else
                    snprintf(id, sizeof(id), "node-%c", (char)('c' - (char)((i + k) % 3)));
                so->owners[i] = batch_node(&ix, id);
            }
            so->owner_count = (uint16_t)n;
        }
        e->data.shard_assigned.map_version = extreme ? big : 12;
        break;
    }
    case AETHER_EVT_SHARD_MIGRATED: {
        static const uint32_t plain[3] = {17, 18, 3};
        for (uint32_t k = 0; k < entries; k++) {
            aether_shard_move *mv = &e->data.shard_migrated.moves[k];
            char to[AETHER_NODE_ID_LEN_MAX + 1];
            snprintf(to, sizeof(to), "%s%04u", extreme ? rep('b', 60) : "node-", k % 2);
            mv->shard = extreme ? AETHER_SHARD_COUNT_MAX - 1 - k : plain[k];
            mv->from = batch_node(&ix, a);
            mv->to = batch_node(&ix, extreme ? to : (k % 2 ? "node-c" : "node-b"));
        }
        e->data.shard_migrated.map_version = extreme ? big : 12;
        aether_event_set_reason(e->data.shard_migrated.reason, extreme ? reason : "handoff");
        break;
    }
    case AETHER_EVT_REBALANCE_STARTED:
        aether_event_set_reason(e->data.rebalance_started.reason, extreme ? reason : "NodeJoined");
        e->data.rebalance_started.from_version = extreme ? big : 11;
        e->data.rebalance_started.moves_planned = extreme ? UINT32_MAX : 256;
        break;
    case AETHER_EVT_REBALANCE_COMPLETED:
        e->data.rebalance_completed.map_version = extreme ? big : 12;
        e->data.rebalance_completed.moved = extreme ? UINT32_MAX : 256;
        e->data.rebalance_completed.duration_ms = extreme ? big : 84;
        break;
    default:
        CU_FAIL_FATAL("unknown event type");
    }
    aether_event_nodes_ix_fini(&ix);
    return e;
}

static aether_command sample_command(aether_command_type t, bool extreme)
{
    aether_command c;
    memset(&c, 0, sizeof(c));
    c.type = t;
    snprintf(c.cluster, sizeof(c.cluster), "%s", extreme ? rep('p', 64) : "prod");
    c.term = extreme ? (uint64_t)INT64_MAX : 42;
    c.sender = nid(extreme ? rep('s', 64) : "node-d");
    switch (t) {
    case AETHER_CMD_JOIN_CLUSTER:
        CU_ASSERT_EQUAL_FATAL(
            aether_node_info_make(&c.data.join.info, extreme ? rep('s', 64) : "node-d",
                                  extreme ? rep('x', AETHER_NODE_ADDRESS_LEN_MAX) : "10.0.0.4:4222",
                                  extreme ? rep('z', AETHER_NODE_ZONE_LEN_MAX) : "",
                                  AETHER_NODE_ACTIVE, extreme ? (uint64_t)INT64_MAX : 2, 0, NULL),
            AETHER_OK);
        /* The admission terms: every value the wire allows at its extremes. */
        c.data.join.terms.shard_count = extreme ? AETHER_SHARD_COUNT_MAX : 1024;
        c.data.join.terms.replication = extreme ? AETHER_REPLICATION_MAX : 1;
        c.data.join.terms.wire_min = extreme ? AETHER_WIRE_VERSION_LIMIT : 1;
        c.data.join.terms.wire_max = extreme ? AETHER_WIRE_VERSION_LIMIT : 1;
        c.data.join.terms.params = extreme ? UINT64_MAX : 0x00c0ffee0badf00dull;
        c.data.join.map_term = extreme ? (uint64_t)INT64_MAX : 0; /* optional: absent when 0 */
        break;
    case AETHER_CMD_LEAVE_CLUSTER:
        c.data.leave.node = nid("node-d");
        break;
    case AETHER_CMD_MARK_NODE_FAILED:
        c.data.mark_failed.node = nid("node-b");
        c.data.mark_failed.silent_ms = extreme ? (uint64_t)INT64_MAX : 1001;
        c.data.mark_failed.force = extreme != 0;
        break;
    case AETHER_CMD_ELECT_LEADER:
        c.data.elect.candidate = c.sender;
        break;
    case AETHER_CMD_ASSIGN_SHARDS:
        break;
    case AETHER_CMD_REBALANCE_SHARDS:
        aether_event_set_reason(c.data.rebalance.reason,
                                extreme ? rep('r', AETHER_REASON_MAX) : "operator");
        c.data.rebalance.release_brake = extreme != 0;
        break;
    default:
        CU_FAIL_FATAL("unknown command type");
    }
    return c;
}

static aether_codec_header sample_header(const char *node)
{
    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    snprintf(h.cluster, sizeof(h.cluster), "prod");
    h.term = 42;
    h.seq = 0;
    h.node = nid(node);
    h.ts_ms = UINT64_C(1767225600123);
    return h;
}

/* A named sample encoding (the corpus and the mutation seeds). */
typedef struct sample {
    char name[48];
    char *text;
    size_t len;
} sample;

#define SAMPLES_MAX 24

/* One valid encoding per kind: 11 events, 6 commands, ShardReleased,
 * Heartbeat and two replies. Returns the count. */
static size_t make_samples(sample *out)
{
    size_t n = 0;
    aether_err err = {0};
    for (int t = 1; t < AETHER_EVT_COUNT_; t++) {
        aether_event *e = sample_event((aether_event_type)t, false);
        snprintf(out[n].name, sizeof(out[n].name), "event-%s", aether_event_type_name(e->type));
        CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &out[n].text, &out[n].len, &err),
                              AETHER_OK);
        aether_event_release(e);
        n++;
    }
    for (int t = 1; t < AETHER_CMD_COUNT_; t++) {
        aether_command c = sample_command((aether_command_type)t, false);
        snprintf(out[n].name, sizeof(out[n].name), "command-%s",
                 aether_command_type_name(c.type));
        CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, UINT64_C(1767225600456),
                                                          &out[n].text, &out[n].len, &err),
                              AETHER_OK);
        n++;
    }
    /* One envelope with the optional generation (codec.h), so the fuzzers
     * start from the field too. */
    aether_event *g = sample_event(AETHER_EVT_LEASE_RENEWED, false);
    g->generation = UINT64_C(0x5be0c2a1d7f3e944);
    snprintf(out[n].name, sizeof(out[n].name), "event-LeaseRenewed-gen");
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(g, &out[n].text, &out[n].len, &err), AETHER_OK);
    aether_event_release(g);
    n++;
    aether_codec_header h = sample_header("node-c");
    aether_release_ack ack = {.from = nid("node-c"), .shard = 17, .map_version = 12, .term = 42};
    snprintf(out[n].name, sizeof(out[n].name), "release");
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_release(&h, &ack, &out[n].text, &out[n].len, &err),
                          AETHER_OK);
    n++;
    snprintf(out[n].name, sizeof(out[n].name), "heartbeat");
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_heartbeat(&h, 3, &out[n].text, &out[n].len, &err),
                          AETHER_OK);
    n++;
    snprintf(out[n].name, sizeof(out[n].name), "reply-ENOTLEADER");
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_reply(AETHER_ENOTLEADER,
                                                    "not leader; leader is node-b, term 17",
                                                    &out[n].text, &out[n].len, &err),
                          AETHER_OK);
    n++;
    snprintf(out[n].name, sizeof(out[n].name), "reply-OK");
    CU_ASSERT_EQUAL_FATAL(
        aether_codec_encode_reply(AETHER_OK, NULL, &out[n].text, &out[n].len, &err), AETHER_OK);
    n++;
    CU_ASSERT_FATAL(n <= SAMPLES_MAX);
    return n;
}

static void free_samples(sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].text);
}

/* ---- comparing decoded messages ------------------------------------------ */


/* Value equality of two decoded messages. Decode zeroes before it fills, so
 * bytewise comparison is exact (the event's refcount header is skipped). */
static bool msg_equal(const aether_codec_msg *a, const aether_codec_msg *b)
{
    if (a->kind != b->kind || memcmp(&a->hdr, &b->hdr, sizeof(a->hdr)) != 0)
        return false;
    switch (a->kind) {
    case AETHER_CODEC_EVENT:
        return aether_event_equal(a->u.event, b->u.event);
    case AETHER_CODEC_COMMAND:
        return memcmp(&a->u.command, &b->u.command, sizeof(a->u.command)) == 0;
    case AETHER_CODEC_RELEASE:
        return memcmp(&a->u.release, &b->u.release, sizeof(a->u.release)) == 0;
    case AETHER_CODEC_HEARTBEAT:
        return memcmp(&a->u.heartbeat, &b->u.heartbeat, sizeof(a->u.heartbeat)) == 0;
    case AETHER_CODEC_REPLY:
        return memcmp(&a->u.reply, &b->u.reply, sizeof(a->u.reply)) == 0;
    }
    return false;
}

/* text -> decode -> encode must give text back, byte for byte; returns the
 * decoded message in *msg (caller finis it). */
static void check_round_trip(const char *text, size_t len, aether_codec_msg *msg)
{
    aether_err err = {0};
    aether_status st = aether_codec_decode(text, len, NULL, msg, &err);
    if (st != AETHER_OK)
        fprintf(stderr, "decode failed: %s\n  input: %.*s\n", err.msg, (int)len, text);
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    char *again = NULL;
    size_t again_len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_msg(msg, &again, &again_len, &err), AETHER_OK);
    CU_ASSERT_EQUAL(again_len, len);
    CU_ASSERT_EQUAL(again_len, strlen(again));
    CU_ASSERT(again_len == len && memcmp(again, text, len) == 0);
    aether_codec_msg second;
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(again, again_len, NULL, &second, &err), AETHER_OK);
    CU_ASSERT(msg_equal(msg, &second));
    aether_codec_msg_fini(&second);
    free(again);
}

/* ---- tests: shape and round trips ---------------------------------------- */

static void test_event_exact_shape(void)
{
    aether_event *e = sample_event(AETHER_EVT_NODE_JOINED, false);
    char *text = NULL;
    size_t len = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
    static const char want[] =
        "{\"v\":1,\"type\":\"NodeJoined\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"
        "\"node\":\"node-a\",\"ts\":1767225600123,\"data\":{\"node\":\"node-b\","
        "\"address\":\"10.0.0.2:4222\",\"zone\":\"eu-west-1a\",\"incarnation\":3,"
        "\"map_version\":12}}";
    CU_ASSERT_STRING_EQUAL(text, want);
    CU_ASSERT_EQUAL(len, strlen(want));
    free(text);
    aether_event_release(e);
}

static void test_other_kinds_exact_shape(void)
{
    sample s[SAMPLES_MAX];
    size_t n = make_samples(s);
    const char *want[][2] = {
        {"event-ShardAssigned",
         "{\"v\":1,\"type\":\"ShardAssigned\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"
         "\"node\":\"node-a\",\"ts\":1767225600123,\"data\":{\"map_version\":12,"
         "\"shards\":[{\"shard\":17,\"owners\":[\"node-c\",\"node-b\",\"node-a\"]},"
         "{\"shard\":18,\"owners\":[\"node-b\",\"node-a\",\"node-c\"]},"
         "{\"shard\":3,\"owners\":[\"node-a\",\"node-c\",\"node-b\"]}]}}"},
        {"event-ShardMigrated",
         "{\"v\":1,\"type\":\"ShardMigrated\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"
         "\"node\":\"node-a\",\"ts\":1767225600123,\"data\":{\"map_version\":12,"
         "\"reason\":\"handoff\",\"moves\":[{\"shard\":17,\"from\":\"node-a\",\"to\":\"node-b\"},"
         "{\"shard\":18,\"from\":\"node-a\",\"to\":\"node-c\"},"
         "{\"shard\":3,\"from\":\"node-a\",\"to\":\"node-b\"}]}}"},
        {"command-JoinCluster",
         "{\"v\":1,\"type\":\"JoinCluster\",\"cluster\":\"prod\",\"term\":42,\"seq\":0,"
         "\"node\":\"node-d\",\"ts\":1767225600456,\"data\":{\"node\":\"node-d\","
         "\"address\":\"10.0.0.4:4222\",\"zone\":\"\",\"incarnation\":2,\"shard_count\":1024,"
         "\"replication\":1,\"wire_min\":1,\"wire_max\":1,\"params\":\"00c0ffee0badf00d\"}}"},
        {"command-AssignShards",
         "{\"v\":1,\"type\":\"AssignShards\",\"cluster\":\"prod\",\"term\":42,\"seq\":0,"
         "\"node\":\"node-d\",\"ts\":1767225600456,\"data\":{}}"},
        {"release",
         "{\"v\":1,\"type\":\"ShardReleased\",\"cluster\":\"prod\",\"term\":42,\"seq\":0,"
         "\"node\":\"node-c\",\"ts\":1767225600123,\"data\":{\"shard\":17,\"from\":\"node-c\","
         "\"map_version\":12,\"term\":42}}"},
        {"heartbeat",
         "{\"v\":1,\"type\":\"Heartbeat\",\"cluster\":\"prod\",\"term\":42,\"seq\":0,"
         "\"node\":\"node-c\",\"ts\":1767225600123,\"data\":{\"node\":\"node-c\","
         "\"incarnation\":3}}"},
        {"reply-ENOTLEADER",
         "{\"v\":1,\"type\":\"Reply\",\"status\":\"ENOTLEADER\","
         "\"reason\":\"not leader; leader is node-b, term 17\"}"},
        {"reply-OK", "{\"v\":1,\"type\":\"Reply\",\"status\":\"OK\",\"reason\":\"\"}"},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(s[i].name, want[w][0]) != 0)
                continue;
            found = true;
            if (strcmp(s[i].text, want[w][1]) != 0)
                fprintf(stderr, "%s:\n  got  %s\n  want %s\n", s[i].name, s[i].text, want[w][1]);
            CU_ASSERT_STRING_EQUAL(s[i].text, want[w][1]);
        }
        CU_ASSERT(found);
    }
    free_samples(s, n);
}

static void test_round_trip_events(void)
{
    for (int extreme = 0; extreme < 2; extreme++) {
        for (int t = 1; t < AETHER_EVT_COUNT_; t++) {
            aether_event *e = sample_event((aether_event_type)t, extreme);
            char *text = NULL;
            size_t len = 0;
            aether_err err = {0};
            CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
            aether_codec_msg m;
            check_round_trip(text, len, &m);
            CU_ASSERT_EQUAL_FATAL(m.kind, AETHER_CODEC_EVENT);
            /* The decoded event is a new one, equal in value to the original. */
            CU_ASSERT_PTR_NOT_EQUAL(m.u.event, e);
            CU_ASSERT(aether_event_equal(m.u.event, e));
            CU_ASSERT_EQUAL(m.hdr.term, e->term);
            CU_ASSERT_EQUAL(m.hdr.seq, e->seq);
            CU_ASSERT(aether_node_id_equal(&m.hdr.node, &e->node));
            /* The caller may keep the event beyond the message. */
            aether_event *kept = m.u.event;
            m.u.event = NULL;
            aether_codec_msg_fini(&m);
            CU_ASSERT_EQUAL(kept->type, (aether_event_type)t);
            aether_event_release(kept);
            aether_event_release(e);
            free(text);
        }
    }
}

/* The optional "gen" (codec.h): after "cluster" when the sender knows a
 * generation, absent otherwise; it round-trips on every envelope kind, and
 * a message without it decodes as generation 0 ("not said"). */
static void test_generation_field(void)
{
    aether_event *e = sample_event(AETHER_EVT_NODE_LEFT, false);
    e->generation = 0x5be0c2a1d7f3e944ull;
    char *text = NULL;
    size_t len = 0;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"cluster\":\"prod\",\"gen\":\"5be0c2a1d7f3e944\","
                                        "\"term\":42,"));
    aether_codec_msg m;
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.hdr.generation, e->generation);
    CU_ASSERT_EQUAL(m.u.event->generation, e->generation);
    aether_codec_msg_fini(&m);
    free(text);
    /* Without one: no key at all, and 0 back. */
    e->generation = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(text, "\"gen\""));
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.u.event->generation, 0);
    aether_codec_msg_fini(&m);
    free(text);
    aether_event_release(e);
    /* A command carries the sender's. */
    aether_command c;
    memset(&c, 0, sizeof(c));
    c.type = AETHER_CMD_REBALANCE_SHARDS;
    snprintf(c.cluster, sizeof(c.cluster), "prod");
    c.term = 9;
    c.generation = 0xffffffffffffffffull;
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("node-d", &c.sender, NULL), AETHER_OK);
    snprintf(c.data.rebalance.reason, sizeof(c.data.rebalance.reason), "x");
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 5, &text, &len, &err), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"gen\":\"ffffffffffffffff\""));
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.u.command.generation, c.generation);
    CU_ASSERT_EQUAL(m.hdr.generation, c.generation);
    aether_codec_msg_fini(&m);
    free(text);
    /* A heartbeat takes it from the header. */
    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    snprintf(h.cluster, sizeof(h.cluster), "prod");
    h.generation = 1;
    h.term = 3;
    CU_ASSERT_EQUAL(aether_node_id_from_cstr("node-c", &h.node, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_heartbeat(&h, 2, &text, &len, &err), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"gen\":\"0000000000000001\""));
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.hdr.generation, 1);
    aether_codec_msg_fini(&m);
    free(text);
}

static void test_round_trip_commands(void)
{
    for (int extreme = 0; extreme < 2; extreme++) {
        for (int t = 1; t < AETHER_CMD_COUNT_; t++) {
            aether_command c = sample_command((aether_command_type)t, extreme);
            char *text = NULL;
            size_t len = 0;
            aether_err err = {0};
            CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, &err),
                                  AETHER_OK);
            aether_codec_msg m;
            check_round_trip(text, len, &m);
            CU_ASSERT_EQUAL_FATAL(m.kind, AETHER_CODEC_COMMAND);
            CU_ASSERT(memcmp(&m.u.command, &c, sizeof(c)) == 0);
            CU_ASSERT_EQUAL(m.hdr.seq, 0);
            CU_ASSERT_EQUAL(m.hdr.ts_ms, 99);
            CU_ASSERT(aether_node_id_equal(&m.hdr.node, &c.sender));
            aether_codec_msg_fini(&m);
            free(text);
        }
    }
}

/* RebalanceShards' release_brake is optional on the wire: sent only when
 * true, absent reads as false (what senders that predate it send), and
 * anything but a JSON boolean is refused. */
static void test_release_brake_flag(void)
{
    aether_command c = sample_command(AETHER_CMD_REBALANCE_SHARDS, 0);
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(text, "release_brake"));
    free(text);
    c.data.rebalance.release_brake = true;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"release_brake\":true"));
    free(text);
    const char *head = "{\"v\":1,\"type\":\"RebalanceShards\",\"cluster\":\"prod\",\"term\":4,"
                       "\"seq\":0,\"node\":\"aetherctl\",\"ts\":1,\"data\":{\"reason\":\"op\"";
    const struct {
        const char *tail;
        aether_status st;
        bool flag;
    } cases[] = {
        {"}}", AETHER_OK, false},
        {",\"release_brake\":false}}", AETHER_OK, false},
        {",\"release_brake\":true}}", AETHER_OK, true},
        {",\"release_brake\":1}}", AETHER_EINVAL, false},
        {",\"release_brake\":\"yes\"}}", AETHER_EINVAL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s%s", head, cases[i].tail);
        aether_codec_msg m;
        aether_err err = {0};
        aether_status st = aether_codec_decode(buf, strlen(buf), NULL, &m, &err);
        CU_ASSERT_EQUAL(st, cases[i].st);
        if (st == AETHER_OK) {
            CU_ASSERT_EQUAL(m.u.command.data.rebalance.release_brake, cases[i].flag);
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "release_brake"));
        }
        aether_codec_msg_fini(&m);
    }
}

/* MarkNodeFailed's force flag (an operator's override) travels like
 * release_brake: only when true, absent = a request the leader judges. */
static void test_mark_failed_force_flag(void)
{
    aether_command c = sample_command(AETHER_CMD_MARK_NODE_FAILED, 0);
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(text, "force"));
    free(text);
    c.data.mark_failed.force = true;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"force\":true"));
    aether_codec_msg m;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(text, len, NULL, &m, &err), AETHER_OK);
    CU_ASSERT(m.u.command.data.mark_failed.force);
    aether_codec_msg_fini(&m);
    free(text);
    const char *bad = "{\"v\":1,\"type\":\"MarkNodeFailed\",\"cluster\":\"prod\",\"term\":4,"
                      "\"seq\":0,\"node\":\"aetherctl\",\"ts\":1,\"data\":{\"node\":\"n2\","
                      "\"silent_ms\":0,\"force\":1}}";
    CU_ASSERT_EQUAL(aether_codec_decode(bad, strlen(bad), NULL, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "force"));
    aether_codec_msg_fini(&m);
}

/* JoinCluster's map_term is optional on the wire: sent only when not 0,
 * absent reads as 0 (what senders that predate it send), and anything but
 * an integer in range is refused. */
static void test_join_map_term(void)
{
    aether_command c = sample_command(AETHER_CMD_JOIN_CLUSTER, 0);
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(text, "map_term"));
    free(text);
    c.data.join.map_term = 19;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"map_term\":19"));
    free(text);
    const char *head = "{\"v\":1,\"type\":\"JoinCluster\",\"cluster\":\"prod\",\"term\":4,"
                       "\"seq\":0,\"node\":\"node-a\",\"ts\":1,\"data\":{\"node\":\"node-a\","
                       "\"address\":\"h:1\",\"zone\":\"\",\"incarnation\":1";
    const struct {
        const char *tail;
        aether_status st;
        uint64_t map_term;
    } cases[] = {
        {"}}", AETHER_OK, 0},
        {",\"map_term\":0}}", AETHER_OK, 0},
        {",\"map_term\":19}}", AETHER_OK, 19},
        {",\"map_term\":19,\"shard_count\":64,\"replication\":1,\"wire_min\":1,\"wire_max\":1,"
         "\"params\":\"0000000000000000\"}}", AETHER_OK, 19},
        {",\"map_term\":-1}}", AETHER_EINVAL, 0},
        {",\"map_term\":\"19\"}}", AETHER_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s%s", head, cases[i].tail);
        aether_codec_msg m;
        aether_err err = {0};
        aether_status st = aether_codec_decode(buf, strlen(buf), NULL, &m, &err);
        CU_ASSERT_EQUAL(st, cases[i].st);
        if (st == AETHER_OK) {
            CU_ASSERT_EQUAL(m.u.command.data.join.map_term, cases[i].map_term);
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "map_term"));
        }
        aether_codec_msg_fini(&m);
    }
}

/* The process nonce (issue 13 item 2), in JoinCluster after map_term and
 * as NodeJoined's last field: optional, sent only when not 0, round trips. */
static void test_nonce_optional(void)
{
    aether_command c = sample_command(AETHER_CMD_JOIN_CLUSTER, 0);
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(text, "nonce"));
    free(text);
    c.data.join.info.nonce = (uint64_t)INT64_MAX;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_command(&c, 99, &text, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"nonce\":9223372036854775807"));
    aether_codec_msg m;
    aether_err err = {0};
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(text, len, NULL, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m.u.command.data.join.info.nonce, (uint64_t)INT64_MAX);
    aether_codec_msg_fini(&m);
    free(text);
    aether_event *e = aether_event_create(AETHER_EVT_NODE_JOINED);
    CU_ASSERT_FATAL(e != NULL);
    snprintf(e->cluster, sizeof(e->cluster), "prod");
    e->term = 3;
    e->seq = 1;
    CU_ASSERT_FATAL(aether_node_id_from_cstr("node-a", &e->node, NULL) == AETHER_OK);
    e->data.node_joined.node = e->node;
    snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "h:1");
    e->data.node_joined.incarnation = 5;
    e->data.node_joined.nonce = 77;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"map_version\":0,\"nonce\":77}"));
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(text, len, NULL, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m.u.event->data.node_joined.nonce, 77);
    aether_codec_msg_fini(&m);
    free(text);
    aether_event_release(e);
}

static void test_round_trip_release_heartbeat_reply(void)
{
    aether_err err = {0};
    char *text = NULL;
    size_t len = 0;
    aether_codec_msg m;

    aether_codec_header h = sample_header("node-c");
    aether_release_ack ack = {.from = nid("node-c"), .shard = 1023, .map_version = 9, .term = 41};
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_release(&h, &ack, &text, &len, &err), AETHER_OK);
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.kind, AETHER_CODEC_RELEASE);
    CU_ASSERT(aether_node_id_equal(&m.u.release.from, &ack.from));
    CU_ASSERT_EQUAL(m.u.release.shard, ack.shard);
    CU_ASSERT_EQUAL(m.u.release.map_version, ack.map_version);
    CU_ASSERT_EQUAL(m.u.release.term, ack.term);
    CU_ASSERT(memcmp(&m.hdr, &h, sizeof(h)) == 0);
    aether_codec_msg_fini(&m);
    free(text);

    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_heartbeat(&h, 5, &text, &len, &err), AETHER_OK);
    check_round_trip(text, len, &m);
    CU_ASSERT_EQUAL(m.kind, AETHER_CODEC_HEARTBEAT);
    CU_ASSERT(aether_node_id_equal(&m.u.heartbeat.node, &h.node));
    CU_ASSERT_EQUAL(m.u.heartbeat.incarnation, 5);
    aether_codec_msg_fini(&m);
    free(text);

    /* Every status name maps back to its enum value. */
    for (int s = 0; s < AETHER_STATUS_COUNT_; s++) {
        const char *reason = s == AETHER_OK ? "" : "not leader; leader is node-b, term 17";
        CU_ASSERT_EQUAL_FATAL(aether_codec_encode_reply((aether_status)s, reason, &text, &len,
                                                        &err),
                              AETHER_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, aether_status_str((aether_status)s)));
        check_round_trip(text, len, &m);
        CU_ASSERT_EQUAL(m.kind, AETHER_CODEC_REPLY);
        CU_ASSERT_EQUAL(m.u.reply.status, (aether_status)s);
        CU_ASSERT_STRING_EQUAL(m.u.reply.reason, reason);
        aether_codec_msg_fini(&m);
        free(text);
    }
    /* A reason at the limit, with UTF-8 (not control bytes), is fine. */
    char long_reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
    memset(long_reason, 'w', sizeof(long_reason) - 1);
    memcpy(long_reason, "caf\xc3\xa9 ", 6);
    long_reason[AETHER_CODEC_REPLY_REASON_MAX] = '\0';
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_reply(AETHER_ESTALE, long_reason, &text, &len, &err),
                          AETHER_OK);
    check_round_trip(text, len, &m);
    CU_ASSERT_STRING_EQUAL(m.u.reply.reason, long_reason);
    aether_codec_msg_fini(&m);
    free(text);
}

static void test_encode_refuses_what_decode_would(void)
{
    char *text = (char *)1;
    aether_err err = {0};
    aether_event *e = sample_event(AETHER_EVT_NODE_FAILED, false);
    e->term = (uint64_t)INT64_MAX + 1;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "term: 9223372036854775808 out of range"));
    e->term = 1;
    e->data.node_failed.silent_ms = UINT64_MAX;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.silent_ms:"));
    e->data.node_failed.silent_ms = 1;
    memset(&e->data.node_failed.node, 0, sizeof(aether_node_id));
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.node: not a valid node id"));
    aether_event_release(e);

    e = sample_event(AETHER_EVT_SHARD_ASSIGNED, false);
    aether_shard_owners *so = &e->data.shard_assigned.shards[1];
    uint16_t saved = so->owners[2];
    so->owners[2] = so->owners[0];
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "data.shards[1].owners[2]: duplicate owner node-b");
    so->owners[2] = (uint16_t)e->node_count; /* outside the node table */
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.shards[1].owners: node 3 is not a valid node id"));
    so->owners[2] = saved;
    so->owner_count = AETHER_REPLICATION_MAX + 1;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.shards[1].owners: 8 owners, more than 7"));
    so->owner_count = 1;
    so->shard = AETHER_SHARD_COUNT_MAX;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.shards[1].shard: 65536 out of range"));
    so->shard = e->data.shard_assigned.shards[0].shard;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "data.shards[1].shard: shard 17 named twice in one event");
    so->shard = 0;
    e->data.shard_assigned.count = 0;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.shards: empty"));
    e->data.shard_assigned.count = 3;
    snprintf(e->cluster, sizeof(e->cluster), "pr od");
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cluster: not a valid cluster name"));
    aether_event_release(e);

    e = sample_event(AETHER_EVT_SHARD_MIGRATED, false);
    e->data.shard_migrated.count = AETHER_EVENT_BATCH_MAX + 1;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.moves: 1025 entries, more than 1024"));
    e->data.shard_migrated.count = 3;
    e->data.shard_migrated.moves[2].to = 9;
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.moves[2].to: node 9 is not a valid node id"));
    aether_event_release(e);

    e = sample_event(AETHER_EVT_LEADERSHIP_LOST, false);
    aether_event_set_reason(e->data.leadership_lost.reason, "line\nbreak");
    CU_ASSERT_EQUAL(aether_codec_encode_event(e, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.reason: control byte 0x0a at position 4"));
    aether_event_release(e);

    aether_command c = sample_command(AETHER_CMD_JOIN_CLUSTER, false);
    c.data.join.info.address[0] = '\0';
    CU_ASSERT_EQUAL(aether_codec_encode_command(&c, 1, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.address: empty"));
    c = sample_command(AETHER_CMD_JOIN_CLUSTER, false);
    c.data.join.terms.replication = 0;
    CU_ASSERT_EQUAL(aether_codec_encode_command(&c, 1, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.replication: 0 out of range"));
    c.data.join.terms.shard_count = 0; /* "no terms", but the rest is set */
    CU_ASSERT_EQUAL(aether_codec_encode_command(&c, 1, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.shard_count: 0 (no terms) while"));
    c.data.join.terms.shard_count = 64;
    c.data.join.terms.replication = 1;
    c.data.join.terms.wire_min = 2;
    CU_ASSERT_EQUAL(aether_codec_encode_command(&c, 1, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.wire_max: 1 is below wire_min 2"));

    aether_codec_header h = sample_header("node-c");
    aether_release_ack ack = {.from = nid("node-b"), .shard = 1, .map_version = 1, .term = 1};
    CU_ASSERT_EQUAL(aether_codec_encode_release(&h, &ack, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.from:"));
    h.seq = 1;
    CU_ASSERT_EQUAL(aether_codec_encode_heartbeat(&h, 1, &text, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "seq: must be 0"));
    CU_ASSERT_EQUAL(aether_codec_encode_reply(AETHER_EINVAL, "a\tb", &text, NULL, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "reason: control byte 0x09"));
    CU_ASSERT_EQUAL(aether_codec_encode_reply(AETHER_STATUS_COUNT_, "", &text, NULL, &err),
                    AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(text);
}

/* ---- tests: strict decoding ---------------------------------------------- */

#define S16 "abcdefghijklmnop"
#define S64 S16 S16 S16 S16
#define S256 S64 S64 S64 S64

/* An envelope of a leader-issued event (seq 7) or another kind (seq 0). */
#define ENV(type, data)                                                                      \
    "{\"v\":1,\"type\":\"" type "\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"            \
    "\"node\":\"node-a\",\"ts\":1767225600123,\"data\":" data "}"
#define ENV0(type, data)                                                                     \
    "{\"v\":1,\"type\":\"" type "\",\"cluster\":\"prod\",\"term\":42,\"seq\":0,"            \
    "\"node\":\"node-a\",\"ts\":1767225600123,\"data\":" data "}"
#define HDR(cluster, term, seq, node)                                                        \
    "{\"v\":1,\"type\":\"NodeLeft\",\"cluster\":" cluster ",\"term\":" term ",\"seq\":" seq \
    ",\"node\":" node ",\"ts\":1,\"data\":{\"node\":\"node-b\"}}"
#define JOINED(address, zone)                                                                \
    ENV("NodeJoined", "{\"node\":\"node-b\",\"address\":" address ",\"zone\":" zone          \
                      ",\"incarnation\":1,\"map_version\":2}")
#define ASSIGNED(shard, owners)                                                              \
    ENV("ShardAssigned", "{\"map_version\":2,\"shards\":[{\"shard\":1,\"owners\":[\"node-b\"]},"  \
                         "{\"shard\":" shard ",\"owners\":" owners "}]}")
#define ASSIGNED_RAW(shards) ENV("ShardAssigned", "{\"map_version\":2,\"shards\":" shards "}")
#define MIGRATED_RAW(moves)                                                                  \
    ENV("ShardMigrated", "{\"map_version\":2,\"reason\":\"handoff\",\"moves\":" moves "}")
#define REPLY(status, reason) "{\"v\":1,\"type\":\"Reply\",\"status\":" status ",\"reason\":" reason "}"

/* Limits a table row decodes under. */
enum { L_DEFAULT, L_PROD, L_MIN_TERM_50, L_SHARDS_16, L_MAX_100 };

typedef struct bad_case {
    const char *input; /* NUL-terminated unless len is given */
    size_t len;        /* 0 = strlen(input) */
    int limits;
    aether_status status;
    aether_codec_reject cls;
    const char *msg; /* a substring of the error */
} bad_case;

#define BAD(in, lim, cls_, msg_) {in, 0, lim, AETHER_EINVAL, AETHER_CODEC_REJECT_##cls_, msg_}

#define JOIN(terms)                                                                          \
    ENV0("JoinCluster", "{\"node\":\"node-a\",\"address\":\"h:1\",\"zone\":\"\","              \
                        "\"incarnation\":1" terms "}")
#define TERMS(sc, r, lo, hi, p)                                                              \
    ",\"shard_count\":" sc ",\"replication\":" r ",\"wire_min\":" lo ",\"wire_max\":" hi        \
    ",\"params\":" p

#define GEN(gen)                                                                             \
    "{\"v\":1,\"type\":\"NodeLeft\",\"cluster\":\"prod\",\"gen\":" gen ",\"term\":42,"       \
    "\"seq\":7,\"node\":\"node-a\",\"ts\":1767225600123,\"data\":{\"node\":\"node-b\"}}"

static const bad_case bad_cases[] = {
    /* The optional generation: 16 lowercase hex digits, never all zeros. */
    BAD(GEN("\"0000000000000000\""), L_DEFAULT, BAD_FIELD,
        "gen: '0000000000000000' is not 16 lowercase hex digits naming a generation"),
    BAD(GEN("\"5BE0C2A1D7F3E944\""), L_DEFAULT, BAD_FIELD, "gen: '5BE0C2A1D7F3E944' is not"),
    BAD(GEN("\"5be0c2a1d7f3e94\""), L_DEFAULT, BAD_FIELD, "gen: '5be0c2a1d7f3e94' is not"),
    BAD(GEN("7"), L_DEFAULT, BAD_FIELD, "gen: expected a string"),
    BAD(GEN("null"), L_DEFAULT, BAD_FIELD, "gen: expected a string"),
    /* JoinCluster's admission terms: all or none, each in range. */
    BAD(JOIN(",\"shard_count\":64"), L_DEFAULT, BAD_FIELD, "data.replication: missing"),
    BAD(JOIN(TERMS("0", "1", "1", "1", "\"0000000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.shard_count: 0 out of range 1..65536"),
    BAD(JOIN(TERMS("65537", "1", "1", "1", "\"0000000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.shard_count: 65537 out of range"),
    BAD(JOIN(TERMS("64", "8", "1", "1", "\"0000000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.replication: 8 out of range"),
    BAD(JOIN(TERMS("64", "1", "0", "1", "\"0000000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.wire_min: 0 out of range 1..65535"),
    BAD(JOIN(TERMS("64", "1", "2", "1", "\"0000000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.wire_max: 1 is below wire_min 2"),
    BAD(JOIN(TERMS("64", "1", "1", "1", "\"00000000000000\"")), L_DEFAULT, BAD_FIELD,
        "data.params: expected 16 lowercase hex digits, got 14 characters"),
    BAD(JOIN(TERMS("64", "1", "1", "1", "\"00000000000000AB\"")), L_DEFAULT, BAD_FIELD,
        "data.params: byte 0x41 at position 14 is not a lowercase hex digit"),
    BAD(JOIN(TERMS("64", "1", "1", "1", "7")), L_DEFAULT, BAD_FIELD,
        "data.params: expected a string"),
    BAD(JOIN(TERMS("64", "1", "1", "1", "\"0000000000000000\"") ",\"extra\":1"), L_DEFAULT,
        BAD_FIELD, "data.extra: unknown field"),
    /* Not JSON, or not our JSON. */
    BAD("", L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD("not json", L_DEFAULT, MALFORMED, "malformed JSON at line 1"),
    BAD("{\"v\":1,", L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD("[1,2]", L_DEFAULT, MALFORMED, "root: expected an object, got an array"),
    BAD("\"NodeLeft\"", L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD(ENV("NodeLeft", "{\"node\":\"node-b\"}") "x", L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD("{\"v\":1,\"v\":1,\"type\":\"NodeLeft\"}", L_DEFAULT, MALFORMED, "duplicate"),
    BAD(ENV("NodeLeft", "{\"node\":\"node-b\",\"node\":\"node-c\"}"), L_DEFAULT, MALFORMED,
        "duplicate"),
    BAD(ENV("NodeLeft", "{\"node\":\"node-\xff\"}"), L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD(ENV("NodeLeft", "{\"node\":\"a\\u0000b\"}"), L_DEFAULT, MALFORMED, "malformed JSON"),
    BAD(ENV("NodeFailed", "{\"node\":\"node-b\",\"silent_ms\":NaN}"), L_DEFAULT, MALFORMED,
        "malformed JSON"),
    /* Version and type. */
    BAD("{}", L_DEFAULT, UNKNOWN_TYPE, "v: missing"),
    BAD("{\"v\":2,\"type\":\"NodeLeft\"}", L_DEFAULT, UNKNOWN_TYPE, "v: unsupported version 2"),
    BAD("{\"v\":0,\"type\":\"NodeLeft\"}", L_DEFAULT, UNKNOWN_TYPE, "v: unsupported version 0"),
    BAD("{\"v\":\"1\",\"type\":\"NodeLeft\"}", L_DEFAULT, UNKNOWN_TYPE,
        "v: expected a non-negative integer, got a string"),
    BAD("{\"v\":1.0,\"type\":\"NodeLeft\"}", L_DEFAULT, UNKNOWN_TYPE,
        "v: expected a non-negative integer, got a real number"),
    BAD("{\"v\":1}", L_DEFAULT, UNKNOWN_TYPE, "type: missing"),
    BAD("{\"v\":1,\"type\":7}", L_DEFAULT, UNKNOWN_TYPE, "type: expected a string, got an integer"),
    BAD(ENV("NodeExploded", "{}"), L_DEFAULT, UNKNOWN_TYPE,
        "type: unknown message type 'NodeExploded'"),
    BAD(ENV("nodeleft", "{}"), L_DEFAULT, UNKNOWN_TYPE, "type: unknown message type 'nodeleft'"),
    BAD(ENV("\\u0007Bell\\nLine", "{}"), L_DEFAULT, UNKNOWN_TYPE,
        "type: unknown message type '?Bell?Line'"),
    /* Envelope fields. */
    BAD("{\"v\":1,\"type\":\"NodeLeft\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"
        "\"node\":\"node-a\",\"ts\":1,\"data\":{\"node\":\"node-b\"},\"sig\":\"x\"}",
        L_DEFAULT, BAD_FIELD, "sig: unknown field"),
    BAD("{\"v\":1,\"type\":\"NodeLeft\",\"term\":42,\"seq\":7,\"node\":\"node-a\",\"ts\":1,"
        "\"data\":{\"node\":\"node-b\"}}",
        L_DEFAULT, BAD_FIELD, "cluster: missing"),
    BAD(HDR("\"pr od\"", "42", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "cluster: not a valid cluster name"),
    BAD(HDR("\"\"", "42", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "cluster: not a valid cluster name: node id is empty"),
    BAD(HDR("[\"prod\"]", "42", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "cluster: expected a string, got an array"),
    BAD(HDR("\"prod\"", "-1", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "term: -1 is not a non-negative integer"),
    BAD(HDR("\"prod\"", "4.2", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "term: expected a non-negative integer, got a real number"),
    BAD(HDR("\"prod\"", "\"42\"", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "term: expected a non-negative integer, got a string"),
    BAD(HDR("\"prod\"", "9223372036854775808", "7", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "integer out of range 0..9223372036854775807"),
    BAD(HDR("\"prod\"", "42", "null", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "seq: expected a non-negative integer, got null"),
    BAD(HDR("\"prod\"", "42", "7", "\"\""), L_DEFAULT, BAD_FIELD, "node: node id is empty"),
    BAD(HDR("\"prod\"", "42", "7", "\"" S64 "x\""), L_DEFAULT, BAD_FIELD,
        "node: node id is 65 characters long, more than 64"),
    BAD(HDR("\"prod\"", "42", "7", "\"node a\""), L_DEFAULT, BAD_FIELD,
        "node: node id 'node a' has byte 0x20"),
    BAD(HDR("\"prod\"", "42", "7", "true"), L_DEFAULT, BAD_FIELD,
        "node: expected a string, got a boolean"),
    BAD("{\"v\":1,\"type\":\"NodeLeft\",\"cluster\":\"prod\",\"term\":42,\"seq\":7,"
        "\"node\":\"node-a\",\"ts\":1}",
        L_DEFAULT, BAD_FIELD, "data: missing"),
    BAD(ENV("NodeLeft", "[]"), L_DEFAULT, BAD_FIELD, "data: expected an object, got an array"),
    /* Data fields. */
    BAD(ENV("NodeLeft", "{\"node\":\"node-b\",\"why\":1}"), L_DEFAULT, BAD_FIELD,
        "data.why: unknown field"),
    BAD(ENV("NodeLeft", "{\"\\u0007x\\n\":1,\"node\":\"node-b\"}"), L_DEFAULT, BAD_FIELD,
        "data.?x?: unknown field"),
    BAD(ENV("NodeLeft", "{}"), L_DEFAULT, BAD_FIELD, "data.node: missing"),
    BAD(ENV0("AssignShards", "{\"force\":true}"), L_DEFAULT, BAD_FIELD,
        "data.force: unknown field"),
    BAD(JOINED("\"10.0.0.2:4222\"", "\"eu west\""), L_DEFAULT, BAD_FIELD,
        "data.zone: byte 0x20 at position 2"),
    BAD(JOINED("\"10.0.0.2:4222\"", "\"" S64 "z\""), L_DEFAULT, BAD_FIELD,
        "data.zone: 65 characters, longer than 64"),
    BAD(JOINED("\"\"", "\"\""), L_DEFAULT, BAD_FIELD, "data.address: empty"),
    BAD(JOINED("\"10.0.0.2\\u0001\"", "\"\""), L_DEFAULT, BAD_FIELD,
        "data.address: control byte 0x01 at position 8"),
    BAD(JOINED("\"" S256 "\"", "\"\""), L_DEFAULT, BAD_FIELD,
        "data.address: 256 bytes, longer than 255"),
    BAD(ENV("NodeJoined", "{\"node\":\"node-b\",\"address\":\"x\",\"zone\":\"\","
                          "\"incarnation\":1}"),
        L_DEFAULT, BAD_FIELD, "data.map_version: missing"),
    BAD(ENV("NodeFailed", "{\"node\":\"node-b\",\"silent_ms\":true}"), L_DEFAULT, BAD_FIELD,
        "data.silent_ms: expected a non-negative integer, got a boolean"),
    BAD(ENV("NodeFailed", "{\"node\":\"node-b\",\"silent_ms\":-5}"), L_DEFAULT, BAD_FIELD,
        "data.silent_ms: -5 is not a non-negative integer"),
    BAD(ENV("ElectLeader", "{\"candidate\":\"a/b\"}"), L_DEFAULT, BAD_FIELD,
        "data.candidate: node id 'a/b' has byte 0x2f"),
    BAD(ASSIGNED("17", "[\"node-a\",\"node-b\",\"node-a\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].owners[2]: duplicate owner node-a"),
    BAD(ASSIGNED("17", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].owners: 8 owners, more than 7"),
    BAD(ASSIGNED("17", "[1]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].owners[0]: expected a string, got an integer"),
    BAD(ASSIGNED("17", "[\"node-a\",\"\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].owners[1]: node id is empty"),
    BAD(ASSIGNED("17", "\"node-a\""), L_DEFAULT, BAD_FIELD,
        "data.shards[1].owners: expected an array, got a string"),
    BAD(ASSIGNED("16", "[\"node-a\"]"), L_SHARDS_16, BAD_FIELD,
        "data.shards[1].shard: 16 out of range 0..15"),
    BAD(ASSIGNED("65536", "[\"node-a\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].shard: 65536 out of range 0..65535"),
    BAD(ASSIGNED("1", "[\"node-a\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].shard: shard 1 named twice in one event"),
    BAD(ASSIGNED("-1", "[\"node-a\"]"), L_DEFAULT, BAD_FIELD,
        "data.shards[1].shard: expected a non-negative integer"),
    BAD(ASSIGNED_RAW("[]"), L_DEFAULT, BAD_FIELD, "data.shards: empty; a batch holds 1..1024"),
    BAD(ASSIGNED_RAW("{}"), L_DEFAULT, BAD_FIELD, "data.shards: expected an array, got an object"),
    BAD(ASSIGNED_RAW("[7]"), L_DEFAULT, BAD_FIELD, "data.shards[0]: expected an object, got an integer"),
    BAD(ASSIGNED_RAW("[{\"shard\":1}]"), L_DEFAULT, BAD_FIELD, "data.shards[0].owners: missing"),
    BAD(ASSIGNED_RAW("[{\"shard\":1,\"owners\":[],\"x\":1}]"), L_DEFAULT, BAD_FIELD,
        "data.shards[0].x: unknown field"),
    BAD(ENV("ShardAssigned", "{\"map_version\":2,\"shard\":1,\"owners\":[\"node-a\"]}"),
        L_DEFAULT, BAD_FIELD, "unknown field"), /* format before batches */
    BAD(MIGRATED_RAW("[{\"shard\":1,\"from\":\"node-a\"}]"), L_DEFAULT, BAD_FIELD,
        "data.moves[0].to: missing"),
    BAD(MIGRATED_RAW("[{\"shard\":1,\"from\":\"node-a\",\"to\":\"b c\"}]"), L_DEFAULT,
        BAD_FIELD, "data.moves[0].to: node id 'b c' has byte 0x20"),
    BAD(MIGRATED_RAW("[{\"shard\":1,\"from\":\"node-a\",\"to\":\"node-b\"},"
                     "{\"shard\":1,\"from\":\"node-a\",\"to\":\"node-b\"}]"),
        L_DEFAULT, BAD_FIELD, "data.moves[1].shard: shard 1 named twice in one event"),
    BAD(ENV("RebalanceCompleted", "{\"map_version\":1,\"moved\":4294967296,\"duration_ms\":1}"),
        L_DEFAULT, BAD_FIELD, "data.moved: 4294967296 out of range 0..4294967295"),
    BAD(ENV("LeadershipLost", "{\"leader\":\"node-a\",\"term\":42,\"reason\":\"" S64 "\"}"),
        L_DEFAULT, BAD_FIELD, "data.reason: 64 bytes, longer than 63"),
    BAD(ENV("LeadershipLost", "{\"leader\":\"node-a\",\"term\":42,\"reason\":\"a\\nb\"}"),
        L_DEFAULT, BAD_FIELD, "data.reason: control byte 0x0a at position 1"),
    BAD(ENV("ShardMigrated", "{\"map_version\":1,\"reason\":\"x\"}"), L_DEFAULT, BAD_FIELD,
        "data.moves: missing"),
    /* Kinds that speak only for their sender, and seq 0. */
    BAD(ENV0("Heartbeat", "{\"node\":\"node-b\",\"incarnation\":1}"), L_DEFAULT, BAD_FIELD,
        "data.node: heartbeat for node-b sent by node-a"),
    BAD(ENV0("ShardReleased", "{\"shard\":1,\"from\":\"node-b\",\"map_version\":1,\"term\":42}"),
        L_DEFAULT, BAD_FIELD, "data.from: node-a releases a shard of node-b"),
    BAD(ENV("Heartbeat", "{\"node\":\"node-a\",\"incarnation\":1}"), L_DEFAULT, BAD_FIELD,
        "seq: must be 0 for Heartbeat, got 7"),
    BAD(ENV("LeaveCluster", "{\"node\":\"node-a\"}"), L_DEFAULT, BAD_FIELD,
        "seq: must be 0 for LeaveCluster, got 7"),
    /* Replies. */
    BAD(REPLY("\"EBOGUS\"", "\"\""), L_DEFAULT, BAD_FIELD, "status: unknown status 'EBOGUS'"),
    BAD(REPLY("\"E?\"", "\"\""), L_DEFAULT, BAD_FIELD, "status: unknown status 'E?'"),
    BAD(REPLY("12", "\"\""), L_DEFAULT, BAD_FIELD, "status: expected a string, got an integer"),
    BAD("{\"v\":1,\"type\":\"Reply\",\"status\":\"OK\"}", L_DEFAULT, BAD_FIELD,
        "reason: missing"),
    BAD("{\"v\":1,\"type\":\"Reply\",\"status\":\"OK\",\"reason\":\"\",\"term\":3}", L_DEFAULT,
        BAD_FIELD, "term: unknown field"),
    BAD(REPLY("\"ENOTLEADER\"", "\"" S256 "\""), L_DEFAULT, BAD_FIELD,
        "reason: 256 bytes, longer than 255"),
    /* Policy: only on well-formed messages. */
    BAD(HDR("\"staging\"", "42", "7", "\"node-a\""), L_PROD, WRONG_CLUSTER,
        "cluster: 'staging' is not this cluster 'prod'"),
    BAD(HDR("\"staging\"", "-1", "7", "\"node-a\""), L_PROD, BAD_FIELD, "term: -1"),
    {HDR("\"prod\"", "42", "7", "\"node-a\""), 0, L_MIN_TERM_50, AETHER_ESTALE,
     AETHER_CODEC_REJECT_STALE_TERM, "term: 42 is older than 50"},
    {ENV0("ShardReleased", "{\"shard\":1,\"from\":\"node-a\",\"map_version\":1,\"term\":10}"), 0,
     L_MIN_TERM_50, AETHER_ESTALE, AETHER_CODEC_REJECT_STALE_TERM,
     "data.term: 10 is older than 50"},
    /* Size. */
    BAD(ENV("NodeLeft", "{\"node\":\"node-b\"}"), L_MAX_100, OVERSIZED,
        "message: 120 bytes, more than the limit 100"),
};

static aether_codec_limits limits_for(int which, aether_codec_stats *stats)
{
    aether_codec_limits l = {0};
    l.stats = stats;
    switch (which) {
    case L_PROD:
        l.cluster = "prod";
        break;
    case L_MIN_TERM_50:
        l.min_term = 50;
        break;
    case L_SHARDS_16:
        l.shard_count = 16;
        break;
    case L_MAX_100:
        l.max_bytes = 100;
        break;
    default:
        break;
    }
    return l;
}

/* A batch past AETHER_EVENT_BATCH_MAX entries is refused (counted as
 * bad_field) before any entry is read; the largest canonical message (a
 * ShardAssigned of 1024 shards x 7 distinct 64-byte owners) fits the default
 * limit, and NATS's default max_payload (1 MiB). */
static void test_batch_bounds(void)
{
    size_t cap = 64u << 10;
    char *buf = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    size_t n = (size_t)snprintf(buf, cap, "{\"v\":1,\"type\":\"ShardMigrated\",\"cluster\":\"prod\","
                                "\"term\":42,\"seq\":7,\"node\":\"node-a\",\"ts\":1,\"data\":{"
                                "\"map_version\":2,\"reason\":\"handoff\",\"moves\":[");
    for (uint32_t i = 0; i <= AETHER_EVENT_BATCH_MAX; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"shard\":%u,\"from\":\"a\",\"to\":\"b\"}",
                              i ? "," : "", i);
    n += (size_t)snprintf(buf + n, cap - n, "]}}");
    CU_ASSERT_FATAL(n < cap);
    aether_codec_stats stats;
    aether_codec_stats_init(&stats, NULL);
    aether_codec_limits lim = {.stats = &stats};
    aether_codec_msg m;
    aether_err err = {0};
    aether_log_set_level(AETHER_LOG_OFF);
    CU_ASSERT_EQUAL(aether_codec_decode(buf, n, &lim, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.moves: 1025 entries, more than 1024"));
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&stats, AETHER_CODEC_REJECT_BAD_FIELD), 1);
    aether_log_set_level(AETHER_LOG_INFO);
    /* One entry fewer is fine: drop the last entry. */
    char *last = strrchr(buf, '{');
    CU_ASSERT_FATAL(last != NULL && last[-1] == ',');
    n = (size_t)(last - 1 - buf);
    n += (size_t)snprintf(buf + n, cap - n, "]}}");
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(buf, n, &lim, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m.u.event->data.shard_migrated.count, AETHER_EVENT_BATCH_MAX);
    CU_ASSERT_EQUAL(m.u.event->node_count, 2);
    CU_ASSERT_EQUAL(m.u.event->data.shard_migrated.moves[1023].shard, 1023);
    aether_codec_msg_fini(&m);
    free(buf);

    aether_event *e = sample_event(AETHER_EVT_SHARD_ASSIGNED, true);
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_codec_encode_event(e, &text, &len, &err), AETHER_OK);
    CU_ASSERT(len > (size_t)480 << 10 && len <= AETHER_CODEC_MAX_BYTES_DEFAULT);
    CU_ASSERT_EQUAL(e->node_count, AETHER_EVENT_BATCH_NODES_MAX);
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(text, len, NULL, &m, &err), AETHER_OK);
    CU_ASSERT(aether_event_equal(m.u.event, e));
    aether_codec_msg_fini(&m);
    free(text);
    aether_event_release(e);
}

static void test_reject_table(void)
{
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    CU_ASSERT(n >= 40);
    aether_log_set_level(AETHER_LOG_OFF);
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        aether_codec_stats stats;
        aether_codec_stats_init(&stats, NULL);
        aether_codec_limits lim = limits_for(c->limits, &stats);
        size_t len = c->len ? c->len : strlen(c->input);
        aether_codec_msg m;
        memset(&m, 0xa5, sizeof(m));
        aether_err err = {0};
        aether_status st = aether_codec_decode(c->input, len, &lim, &m, &err);
        bool ok = st == c->status && strstr(err.msg, c->msg) != NULL &&
                  aether_codec_stats_rejected(&stats, c->cls) == 1 &&
                  aether_codec_stats_rejected_total(&stats) == 1 &&
                  aether_codec_stats_decoded(&stats) == 0 && err.code == st;
        if (!ok)
            fprintf(stderr,
                    "case %zu: got %s '%s' (class %s=%llu), want %s '%s' (%s)\n  input: %.200s\n",
                    i, aether_status_str(st), err.msg, aether_codec_reject_name(c->cls),
                    (unsigned long long)aether_codec_stats_rejected(&stats, c->cls),
                    aether_status_str(c->status), c->msg, aether_codec_reject_name(c->cls),
                    c->input);
        CU_ASSERT(ok);
        /* A refusal leaves nothing behind to release. */
        CU_ASSERT_EQUAL(m.kind, 0);
        CU_ASSERT_PTR_NULL(m.u.event);
        /* No err given: same verdict, nothing written. */
        CU_ASSERT_EQUAL(aether_codec_decode(c->input, len, &lim, &m, NULL), c->status);
    }
    aether_log_set_level(AETHER_LOG_INFO);
}

/* A valid message accepted under the limits that refuse its neighbours. */
static void test_limits_accept_boundaries(void)
{
    aether_codec_msg m;
    aether_err err = {0};
    const char *in = ASSIGNED("15", "[\"node-a\"]");
    aether_codec_limits lim = limits_for(L_SHARDS_16, NULL);
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_OK);
    aether_codec_msg_fini(&m);
    in = HDR("\"prod\"", "50", "7", "\"node-a\"");
    lim = limits_for(L_MIN_TERM_50, NULL);
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_OK);
    aether_codec_msg_fini(&m);
    /* Commands and heartbeats are not fenced by min_term (a joining node has no term). */
    in = "{\"v\":1,\"type\":\"JoinCluster\",\"cluster\":\"prod\",\"term\":0,\"seq\":0,"
         "\"node\":\"node-e\",\"ts\":1,\"data\":{\"node\":\"node-e\",\"address\":\"h:1\","
         "\"zone\":\"\",\"incarnation\":1}}";
    lim.cluster = "prod";
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_OK);
    CU_ASSERT_EQUAL(m.kind, AETHER_CODEC_COMMAND);
    CU_ASSERT_EQUAL(m.u.command.type, AETHER_CMD_JOIN_CLUSTER);
    CU_ASSERT_EQUAL(m.u.command.data.join.info.status, AETHER_NODE_ACTIVE);
    /* A join from before admission terms: decoded with terms of zeros (the
     * leader refuses it a new admission), and encoded back the same way. */
    CU_ASSERT_EQUAL(m.u.command.data.join.terms.shard_count, 0);
    CU_ASSERT_EQUAL(m.u.command.data.join.terms.params, 0);
    char *back = NULL;
    CU_ASSERT_EQUAL(aether_codec_encode_msg(&m, &back, NULL, NULL), AETHER_OK);
    CU_ASSERT(back != NULL && strcmp(back, in) == 0);
    free(back);
    aether_codec_msg_fini(&m);
    in = "{\"v\":1,\"type\":\"Heartbeat\",\"cluster\":\"prod\",\"term\":0,\"seq\":0,"
         "\"node\":\"node-e\",\"ts\":1,\"data\":{\"node\":\"node-e\",\"incarnation\":1}}";
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_OK);
    aether_codec_msg_fini(&m);
    /* Exactly at max_bytes is fine; one over is not. */
    in = ENV("NodeLeft", "{\"node\":\"node-b\"}");
    lim = limits_for(L_DEFAULT, NULL);
    lim.max_bytes = strlen(in);
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_OK);
    aether_codec_msg_fini(&m);
    lim.max_bytes--;
    CU_ASSERT_EQUAL(aether_codec_decode(in, strlen(in), &lim, &m, &err), AETHER_EINVAL);
    /* Whitespace and key order are free on input; output is canonical. */
    in = " { \"data\" : { \"node\" : \"node-b\" } , \"ts\":1767225600123,\"node\":\"node-a\","
         "\"seq\":7,\"term\":42,\"cluster\":\"prod\",\"type\":\"NodeLeft\",\"v\":1 }\n";
    CU_ASSERT_EQUAL_FATAL(aether_codec_decode(in, strlen(in), NULL, &m, &err), AETHER_OK);
    char *text = NULL;
    CU_ASSERT_EQUAL(aether_codec_encode_msg(&m, &text, NULL, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(text, ENV("NodeLeft", "{\"node\":\"node-b\"}"));
    free(text);
    aether_codec_msg_fini(&m);
    aether_codec_msg_fini(NULL);
}

static void test_oversized_refused_before_parsing(void)
{
    size_t len = AETHER_CODEC_MAX_BYTES_DEFAULT + 1;
    char *buf = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memset(buf, '[', len);
    aether_codec_stats stats;
    aether_codec_stats_init(&stats, NULL);
    aether_codec_limits lim = {.stats = &stats};
    aether_codec_msg m;
    aether_err err = {0};
    aether_log_set_level(AETHER_LOG_OFF);
    CU_ASSERT_EQUAL(aether_codec_decode(buf, len, &lim, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "1048577 bytes, more than the limit 1048576"));
    /* Had it been parsed it would be malformed; it was refused by size alone. */
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&stats, AETHER_CODEC_REJECT_OVERSIZED), 1);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&stats, AETHER_CODEC_REJECT_MALFORMED), 0);
    /* A size-checked decode never reads the bytes: an unreadable buffer is fine. */
    CU_ASSERT_EQUAL(aether_codec_decode((const void *)16, len, &lim, &m, &err), AETHER_EINVAL);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected(&stats, AETHER_CODEC_REJECT_OVERSIZED), 2);
    aether_log_set_level(AETHER_LOG_INFO);
    free(buf);
}

static void test_deep_nesting(void)
{
    aether_log_set_level(AETHER_LOG_OFF);
    aether_codec_msg m;
    aether_err err = {0};
    /* 1 MiB of '[' and of '{"a":' under a limit large enough to parse them:
     * jansson's depth bound (2048) stops the recursion. */
    size_t len = (size_t)1 << 20;
    char *buf = malloc(len + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    aether_codec_limits lim = {.max_bytes = len};
    memset(buf, '[', len);
    CU_ASSERT_EQUAL(aether_codec_decode(buf, len, &lim, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
    for (size_t i = 0; i + 5 <= len; i += 5)
        memcpy(buf + i, "{\"a\":", 5);
    CU_ASSERT_EQUAL(aether_codec_decode(buf, len - len % 5, &lim, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));

    /* Balanced nesting inside a field, within the default limit: parsed, then
     * refused by type. */
    char *p = buf;
    p += sprintf(p, "{\"v\":1,\"type\":\"NodeLeft\",\"cluster\":\"prod\",\"term\":1,\"seq\":1,"
                    "\"node\":\"node-a\",\"ts\":1,\"data\":{\"node\":");
    for (int i = 0; i < 2000; i++)
        *p++ = '[';
    for (int i = 0; i < 2000; i++)
        *p++ = ']';
    p += sprintf(p, "}}");
    CU_ASSERT_EQUAL(aether_codec_decode(buf, (size_t)(p - buf), NULL, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "data.node: expected a string, got an array"));
    /* Deeper than jansson allows: malformed, still no crash. */
    p = buf + sprintf(buf, "{\"v\":1,\"data\":");
    for (int i = 0; i < 5000; i++)
        *p++ = '[';
    for (int i = 0; i < 5000; i++)
        *p++ = ']';
    p += sprintf(p, "}");
    CU_ASSERT_EQUAL(aether_codec_decode(buf, (size_t)(p - buf), NULL, &m, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
    free(buf);
    aether_log_set_level(AETHER_LOG_INFO);
}

/* ---- tests: statistics and logging --------------------------------------- */

typedef struct log_capture {
    int n;
    char last[512];
} log_capture;

static void capture(void *arg, aether_log_level level, const char *line, int len)
{
    log_capture *c = arg;
    CU_ASSERT_EQUAL(level, AETHER_LOG_WARN);
    c->n++;
    snprintf(c->last, sizeof(c->last), "%.*s", len, line);
}

static void test_stats_and_rate_limited_log(void)
{
    aether_sim_clock clk;
    aether_sim_clock_init(&clk, 0, UINT64_C(1767225600000));
    aether_codec_stats stats;
    aether_codec_stats_init(&stats, &clk.base);
    aether_codec_limits lim = {.stats = &stats, .cluster = "prod", .min_term = 40,
                               .max_bytes = 4096};
    log_capture cap = {0};
    aether_log_set_sink(capture, &cap);
    aether_log_set_level(AETHER_LOG_WARN);

    sample s[SAMPLES_MAX];
    size_t n = make_samples(s);
    aether_codec_msg m;
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(aether_codec_decode(s[i].text, s[i].len, &lim, &m, NULL), AETHER_OK);
        aether_codec_msg_fini(&m);
    }
    CU_ASSERT_EQUAL(aether_codec_stats_decoded(&stats), n);
    CU_ASSERT_EQUAL(aether_codec_stats_rejected_total(&stats), 0);
    CU_ASSERT_EQUAL(cap.n, 0);

    static const struct {
        const char *in;
        aether_codec_reject cls;
    } bad[] = {
        {"{", AETHER_CODEC_REJECT_MALFORMED},
        {"[]", AETHER_CODEC_REJECT_MALFORMED},
        {"{\"v\":9}", AETHER_CODEC_REJECT_UNKNOWN_TYPE},
        {ENV("Nope", "{}"), AETHER_CODEC_REJECT_UNKNOWN_TYPE},
        {ENV("NodeLeft", "{}"), AETHER_CODEC_REJECT_BAD_FIELD},
        {HDR("\"prod\"", "39", "1", "\"node-a\""), AETHER_CODEC_REJECT_STALE_TERM},
        {HDR("\"dev\"", "45", "1", "\"node-a\""), AETHER_CODEC_REJECT_WRONG_CLUSTER},
    };
    uint64_t want[AETHER_CODEC_REJECT_COUNT_] = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_NOT_EQUAL(aether_codec_decode(bad[i].in, strlen(bad[i].in), &lim, &m, NULL),
                            AETHER_OK);
        want[bad[i].cls]++;
    }
    char big[5000];
    memset(big, ' ', sizeof(big));
    CU_ASSERT_EQUAL(aether_codec_decode(big, sizeof(big), &lim, &m, NULL), AETHER_EINVAL);
    want[AETHER_CODEC_REJECT_OVERSIZED]++;
    for (int r = 0; r < AETHER_CODEC_REJECT_COUNT_; r++) {
        CU_ASSERT_EQUAL(aether_codec_stats_rejected(&stats, (aether_codec_reject)r), want[r]);
        CU_ASSERT_STRING_NOT_EQUAL(aether_codec_reject_name((aether_codec_reject)r), "?");
    }
    CU_ASSERT_EQUAL(aether_codec_stats_rejected_total(&stats), 8);
    CU_ASSERT_EQUAL(aether_codec_stats_decoded(&stats), n);

    /* Eight refusals within one simulated second: one line, the first. */
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.last, "codec"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.last, "(malformed, EINVAL)"));
    /* A second later the next refusal logs again and says what was held back. */
    aether_sim_clock_advance_ns(&clk, AETHER_NS_PER_S);
    CU_ASSERT_EQUAL(aether_codec_decode("{\"v\":1}", 7, &lim, &m, NULL), AETHER_EINVAL);
    CU_ASSERT_EQUAL(cap.n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.last, "type: missing"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.last, "[7 more suppressed]"));
    /* Without stats: neither counted nor logged. */
    aether_sim_clock_advance_ns(&clk, AETHER_NS_PER_S);
    CU_ASSERT_EQUAL(aether_codec_decode("{", 1, NULL, &m, NULL), AETHER_EINVAL);
    CU_ASSERT_EQUAL(cap.n, 2);

    aether_log_set_sink(NULL, NULL);
    aether_log_set_level(AETHER_LOG_INFO);
    free_samples(s, n);
}

/* ---- tests: corpus ------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(AETHER_CODEC_MAX_BYTES_DEFAULT + 1);
    size_t n = buf != NULL ? fread(buf, 1, AETHER_CODEC_MAX_BYTES_DEFAULT + 1, f) : 0;
    fclose(f);
    *len = n;
    return buf;
}

/* The committed seed corpus: one file per sample with exactly the encoder's
 * bytes, and every file there decodes and re-encodes identically. With
 * AETHER_CODEC_CORPUS_OUT=<dir> the samples are written there instead. */
static void test_corpus(void)
{
    sample s[SAMPLES_MAX];
    size_t n = make_samples(s);
    const char *out_dir = getenv("AETHER_CODEC_CORPUS_OUT");
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        int pl = snprintf(path, sizeof(path), "%s/%.48s.json", out_dir ? out_dir : CORPUS_DIR,
                          s[i].name);
        CU_ASSERT_FATAL(pl > 0 && (size_t)pl < sizeof(path));
        if (out_dir != NULL) {
            FILE *f = fopen(path, "wb");
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            CU_ASSERT_EQUAL(fwrite(s[i].text, 1, s[i].len, f), s[i].len);
            CU_ASSERT_EQUAL(fclose(f), 0);
            continue;
        }
        size_t len = 0;
        char *buf = read_file(path, &len);
        if (buf == NULL)
            fprintf(stderr, "missing corpus file %s (run tools/gen-codec-corpus)\n", path);
        CU_ASSERT_PTR_NOT_NULL(buf);
        CU_ASSERT(buf != NULL && len == s[i].len && memcmp(buf, s[i].text, len) == 0);
        free(buf);
    }
    free_samples(s, n);
    if (out_dir != NULL)
        return;

    DIR *dir = opendir(CORPUS_DIR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        int pl = snprintf(path, sizeof(path), "%s/%.255s", CORPUS_DIR, de->d_name);
        CU_ASSERT_FATAL(pl > 0 && (size_t)pl < sizeof(path));
        size_t len = 0;
        char *buf = read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        aether_codec_msg m;
        check_round_trip(buf, len, &m);
        aether_codec_msg_fini(&m);
        free(buf);
        files++;
    }
    closedir(dir);
    CU_ASSERT_EQUAL(files, n);
}

/* ---- tests: mutation loop ------------------------------------------------ */

static const char interesting[] = "{}[]\":,0123456789-.eE \\tnufl\x01\x7f\xc3\xff";

/* Flips, overwrites, inserts or deletes 1..4 bytes of buf (len <= cap). */
static size_t mutate(aether_rng *r, char *buf, size_t len, size_t cap)
{
    int n = (int)aether_rng_range(r, 1, 4);
    for (int k = 0; k < n; k++) {
        size_t pos = len ? (size_t)aether_rng_below(r, len) : 0;
        switch (aether_rng_below(r, 5)) {
        case 0: /* flip one bit */
            if (len)
                buf[pos] ^= (char)(1u << aether_rng_below(r, 8));
            break;
        case 1: /* overwrite with an interesting byte */
            if (len)
                buf[pos] = interesting[aether_rng_below(r, sizeof(interesting) - 1)];
            break;
        case 2: /* insert a byte */
            if (len < cap) {
                memmove(buf + pos + 1, buf + pos, len - pos);
                buf[pos] = aether_rng_below(r, 2) ? (char)aether_rng_below(r, 256)
                                                  : interesting[aether_rng_below(
                                                        r, sizeof(interesting) - 1)];
                len++;
            }
            break;
        case 3: /* delete a byte */
            if (len) {
                memmove(buf + pos, buf + pos + 1, len - pos - 1);
                len--;
            }
            break;
        default: /* overwrite with a digit: keeps JSON valid more often */
            if (len)
                buf[pos] = (char)('0' + aether_rng_below(r, 10));
            break;
        }
    }
    return len;
}

static void test_mutation_loop(void)
{
    aether_rng rng;
    aether_rng_seed(&rng, FUZZ_SEED);
    sample s[SAMPLES_MAX];
    size_t n = make_samples(s);
    aether_codec_stats stats;
    aether_codec_stats_init(&stats, NULL);
    aether_codec_limits lim = {.stats = &stats};
    aether_log_set_level(AETHER_LOG_OFF);
    char buf[2048];
    size_t accepted = 0, failures = 0;
    for (int it = 0; it < FUZZ_ITERATIONS; it++) {
        const sample *seed = &s[aether_rng_below(&rng, n)];
        CU_ASSERT_FATAL(seed->len < sizeof(buf));
        memcpy(buf, seed->text, seed->len);
        size_t len = mutate(&rng, buf, seed->len, sizeof(buf));
        aether_codec_msg m1;
        aether_err err = {0};
        aether_status st = aether_codec_decode(buf, len, &lim, &m1, &err);
        if (st != AETHER_OK) {
            if (st != AETHER_EINVAL || err.code != st || err.msg[0] == '\0')
                failures++;
            continue;
        }
        /* An accepted mutant is a real message: it re-encodes, and that
         * encoding decodes to the same value and encodes to the same bytes. */
        accepted++;
        char *e1 = NULL, *e2 = NULL;
        size_t l1 = 0, l2 = 0;
        aether_codec_msg m2;
        bool ok = aether_codec_encode_msg(&m1, &e1, &l1, &err) == AETHER_OK &&
                  aether_codec_decode(e1, l1, &lim, &m2, &err) == AETHER_OK;
        if (ok) {
            ok = msg_equal(&m1, &m2) && aether_codec_encode_msg(&m2, &e2, &l2, &err) == AETHER_OK &&
                 l1 == l2 && memcmp(e1, e2, l1) == 0;
            aether_codec_msg_fini(&m2);
        }
        if (!ok) {
            failures++;
            fprintf(stderr, "seed %llu iteration %d: mutant '%.*s' -> '%s': %s\n",
                    (unsigned long long)FUZZ_SEED, it, (int)len, buf, e1 ? e1 : "", err.msg);
        }
        free(e1);
        free(e2);
        aether_codec_msg_fini(&m1);
    }
    aether_log_set_level(AETHER_LOG_INFO);
    printf("\n    mutation loop (seed %llu): %d mutants, %zu accepted, %llu refused\n",
           (unsigned long long)FUZZ_SEED, FUZZ_ITERATIONS, accepted,
           (unsigned long long)aether_codec_stats_rejected_total(&stats));
    CU_ASSERT_EQUAL(failures, 0);
    /* Both verdicts happen: digit changes keep many mutants valid. */
    CU_ASSERT(accepted > 100);
    CU_ASSERT(aether_codec_stats_rejected_total(&stats) > FUZZ_ITERATIONS / 4);
    CU_ASSERT_EQUAL(aether_codec_stats_decoded(&stats), 2 * accepted);
    free_samples(s, n);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(event_exact_shape),
    AETHER_TEST(other_kinds_exact_shape),
    AETHER_TEST(round_trip_events),
    AETHER_TEST(round_trip_commands),
    AETHER_TEST(generation_field),
    AETHER_TEST(release_brake_flag),
    AETHER_TEST(mark_failed_force_flag),
    AETHER_TEST(join_map_term),
    AETHER_TEST(nonce_optional),
    AETHER_TEST(round_trip_release_heartbeat_reply),
    AETHER_TEST(encode_refuses_what_decode_would),
    AETHER_TEST(reject_table),
    AETHER_TEST(batch_bounds),
    AETHER_TEST(limits_accept_boundaries),
    AETHER_TEST(oversized_refused_before_parsing),
    AETHER_TEST(deep_nesting),
    AETHER_TEST(stats_and_rate_limited_log),
    AETHER_TEST(corpus),
    AETHER_TEST(mutation_loop),
    CU_TEST_INFO_NULL,
};

AETHER_SUITE("codec", NULL, NULL, tests);
