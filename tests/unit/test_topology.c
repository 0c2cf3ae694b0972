/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_topology.c: the Cluster aggregate's decide/apply (actors/topology.h):
 * every command accepted and rejected, the node lifecycle, idempotent
 * retries, followers applying what the leader decided.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "config.h"
#include "topology.h"
#include "topology_json.h"

static aether_node_id id_of(const char *s)
{
    aether_node_id id;
    CU_ASSERT_FATAL(aether_node_id_from_cstr(s, &id, NULL) == AETHER_OK);
    return id;
}

/* A topology whose self is "a" and whose leader is a, term 5. */
static void leader_topology(aether_topology *t)
{
    aether_node_id a = id_of("a");
    aether_topology_init(t, &a);
    CU_ASSERT_TRUE(aether_topology_set_leader(t, &a, 5));
}

static aether_command join_cmd(const char *node, const char *address, const char *zone)
{
    aether_command c;
    memset(&c, 0, sizeof(c));
    c.type = AETHER_CMD_JOIN_CLUSTER;
    c.term = 5;
    CU_ASSERT_FATAL(aether_node_info_make(&c.data.join.info, node, address, zone,
                                          AETHER_NODE_ACTIVE, 0, 0, NULL) == AETHER_OK);
    return c;
}

static aether_command node_cmd(aether_command_type type, const char *node)
{
    aether_command c;
    memset(&c, 0, sizeof(c));
    c.type = type;
    c.term = 5;
    if (type == AETHER_CMD_LEAVE_CLUSTER)
        c.data.leave.node = id_of(node);
    else
        c.data.mark_failed.node = id_of(node);
    c.data.mark_failed.silent_ms = 1234;
    return c;
}

/* Decides and applies; returns the status and the number of events. */
static aether_status run(aether_topology *t, const aether_command *c, uint32_t *n_out,
                         aether_err *why)
{
    aether_event *ev[AETHER_TOPOLOGY_DECIDE_MAX];
    uint32_t n = 0;
    aether_status st = aether_topology_decide(t, c, 1000, ev, &n, why);
    for (uint32_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE(aether_topology_apply(t, ev[i]));
        aether_event_release(ev[i]);
    }
    if (n_out)
        *n_out = n;
    return st;
}

static void test_join_accepted_and_idempotent(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command c = join_cmd("b", "10.0.0.2:4000", "z1");
    uint32_t n;
    CU_ASSERT_EQUAL(run(&t, &c, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    aether_node_id b = id_of("b");
    const aether_node_info *info = aether_topology_find(&t, &b);
    CU_ASSERT_FATAL(info != NULL);
    CU_ASSERT_EQUAL(info->status, AETHER_NODE_ACTIVE);
    CU_ASSERT_EQUAL(info->incarnation, 1);
    CU_ASSERT_STRING_EQUAL(info->zone, "z1");
    uint64_t v = t.version;
    /* The same join again (a retry) is accepted and changes nothing. */
    CU_ASSERT_EQUAL(run(&t, &c, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(t.version, v);
    aether_topology_fini(&t);
}

static void test_join_rejected_when_not_leader(void)
{
    aether_node_id a = id_of("a"), b = id_of("node-b");
    aether_topology t;
    aether_topology_init(&t, &a);
    aether_topology_set_leader(&t, &b, 17);
    aether_command c = join_cmd("c", "x", "");
    c.term = 17;
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &c, NULL, &why), AETHER_ENOTLEADER);
    CU_ASSERT_STRING_EQUAL(why.msg, "not leader; leader is node-b, term 17");
    aether_topology_set_leader(&t, NULL, 18);
    c.term = 18;
    CU_ASSERT_EQUAL(run(&t, &c, NULL, &why), AETHER_ENOTLEADER);
    CU_ASSERT_STRING_EQUAL(why.msg, "not leader; no leader known (term 18)");
    CU_ASSERT_EQUAL(t.count, 0);
    aether_topology_fini(&t);
}

static void test_stale_term_rejected(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_node_id a = id_of("a");
    aether_topology_set_leader(&t, &a, 15);
    aether_command c = join_cmd("b", "x", "");
    c.term = 12;
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &c, NULL, &why), AETHER_ESTALE);
    CU_ASSERT_STRING_EQUAL(why.msg, "term 12 is older than 15");
    /* Terms never go back. */
    CU_ASSERT_FALSE(aether_topology_set_leader(&t, &a, 14));
    CU_ASSERT_EQUAL(t.term, 15);
    aether_topology_fini(&t);
}

static void test_join_invalid_info_rejected(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command c = join_cmd("b", "x", "");
    c.data.join.info.address[0] = '\0';
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &c, NULL, &why), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "address"));
    CU_ASSERT_EQUAL(t.count, 0);
    aether_topology_fini(&t);
}

static void test_leave_drains_then_unknown_and_left(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command ja = join_cmd("a", "x", "");
    CU_ASSERT_EQUAL(run(&t, &ja, NULL, NULL), AETHER_OK);
    aether_command j = join_cmd("b", "x", "");
    CU_ASSERT_EQUAL(run(&t, &j, NULL, NULL), AETHER_OK);
    aether_command l = node_cmd(AETHER_CMD_LEAVE_CLUSTER, "b");
    uint32_t n;
    CU_ASSERT_EQUAL(run(&t, &l, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    aether_node_id b = id_of("b");
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_DRAINING);
    CU_ASSERT_EQUAL(run(&t, &l, &n, NULL), AETHER_OK); /* already draining */
    CU_ASSERT_EQUAL(n, 0);
    aether_command x = node_cmd(AETHER_CMD_LEAVE_CLUSTER, "node-x");
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &x, NULL, &why), AETHER_ENOTFOUND);
    CU_ASSERT_STRING_EQUAL(why.msg, "node-x unknown");
    /* The drain policy's NodeLeft completes the leave; leaving again is refused. */
    aether_event *left = aether_event_create(AETHER_EVT_NODE_LEFT);
    left->data.node_left.node = b;
    CU_ASSERT_TRUE(aether_topology_apply(&t, left));
    aether_event_release(left);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_LEFT);
    CU_ASSERT_EQUAL(run(&t, &l, NULL, &why), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(why.msg, "b already left");
    aether_topology_fini(&t);
}

/* The last Active node may not drain: nobody could take its shards, and
 * once it stepped down nobody could lead (without a cluster secret anyone
 * may ask: adversary soak seeds 300079, 300080, 300090, 300097 drained
 * every node, and the last one left the cluster without a leader). One
 * already draining does not count as a successor. */
static void test_leave_of_the_last_active_node_refused(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command ja = join_cmd("a", "x", "");
    CU_ASSERT_EQUAL(run(&t, &ja, NULL, NULL), AETHER_OK);
    aether_command la = node_cmd(AETHER_CMD_LEAVE_CLUSTER, "a");
    aether_err why;
    uint32_t n = 7;
    CU_ASSERT_EQUAL(run(&t, &la, &n, &why), AETHER_ESTATE);
    CU_ASSERT_STRING_EQUAL(why.msg, "a is the last Active node: nobody could take its shards");
    aether_command jb = join_cmd("b", "x", "");
    CU_ASSERT_EQUAL(run(&t, &jb, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(run(&t, &la, &n, NULL), AETHER_OK); /* b can take over */
    CU_ASSERT_EQUAL(n, 1);
    aether_node_id a = id_of("a");
    CU_ASSERT_EQUAL(aether_topology_find(&t, &a)->status, AETHER_NODE_DRAINING);
    aether_command lb = node_cmd(AETHER_CMD_LEAVE_CLUSTER, "b");
    CU_ASSERT_EQUAL(run(&t, &lb, NULL, &why), AETHER_ESTATE); /* a drains: no successor */
    CU_ASSERT_STRING_EQUAL(why.msg, "b is the last Active node: nobody could take its shards");
    aether_node_id b = id_of("b");
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_ACTIVE);
    aether_topology_fini(&t);
}

static void test_mark_failed_and_rejoin_new_incarnation(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command j = join_cmd("b", "x", "");
    CU_ASSERT_EQUAL(run(&t, &j, NULL, NULL), AETHER_OK);
    aether_command f = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "b");
    uint32_t n;
    CU_ASSERT_EQUAL(run(&t, &f, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    aether_node_id b = id_of("b");
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_FAILED);
    CU_ASSERT_EQUAL(run(&t, &f, &n, NULL), AETHER_OK); /* idempotent */
    CU_ASSERT_EQUAL(n, 0);
    aether_err why;
    aether_command fx = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "zz");
    CU_ASSERT_EQUAL(run(&t, &fx, NULL, &why), AETHER_ENOTFOUND);
    /* It comes back: Active again, incarnation 2. */
    CU_ASSERT_EQUAL(run(&t, &j, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_ACTIVE);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, 2);
    CU_ASSERT_EQUAL(aether_topology_count_status(&t, AETHER_NODE_ACTIVE), 1);
    aether_topology_fini(&t);
}

/* One process per node id (DESIGN 2.4): a newer process is admitted over a
 * healthy record; the older one's keep-alive is then refused with
 * ESUPERSEDED naming the newer incarnation; an unhealthy record's stale
 * incarnation is still ESTALE. */
static void test_newer_process_supersedes_older(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_node_id b = id_of("b");
    aether_command old = join_cmd("b", "x", "");
    old.data.join.info.incarnation = 100;
    uint32_t n;
    CU_ASSERT_EQUAL(run(&t, &old, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(run(&t, &old, &n, NULL), AETHER_OK); /* its keep-alive */
    CU_ASSERT_EQUAL(n, 0);
    aether_command twin = old;
    twin.data.join.info.incarnation = 250;
    CU_ASSERT_EQUAL(run(&t, &twin, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, 250);
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &old, &n, &why), AETHER_ESUPERSEDED);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "superseded by incarnation 250"));
    /* Failed: a stale incarnation is ESTALE (that run rejoins above it). */
    aether_command f = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "b");
    CU_ASSERT_EQUAL(run(&t, &f, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(run(&t, &old, &n, &why), AETHER_ESTALE);
    aether_topology_fini(&t);
}

/* Issue 13 item 2: incarnations are the leader's to assign. A join names
 * a process by its nonce; the incarnation it names is only a hint, clamped
 * to the leader's clock + AETHER_INCARNATION_AHEAD_MAX_MS and kept above
 * the record. Before, a forged join of incarnation 2^63-1 took the id for
 * good (every later join of it was ESTALE) and a join naming the record's
 * number took over a live process's record. */
static void test_incarnations_assigned_by_the_leader(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_node_id b = id_of("b");
    aether_command real = join_cmd("b", "b:1", "");
    real.data.join.info.incarnation = 100;
    real.data.join.info.nonce = 11;
    uint32_t n;
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &real, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, 100);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->nonce, 11);
    CU_ASSERT_EQUAL(run(&t, &real, &n, NULL), AETHER_OK); /* its keep-alive */
    CU_ASSERT_EQUAL(n, 0);
    /* A join without a nonce (a node from before) cannot supersede it. */
    aether_command legacy0 = join_cmd("b", "evil:1", "");
    legacy0.data.join.info.incarnation = 500;
    CU_ASSERT_EQUAL(run(&t, &legacy0, &n, &why), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "nonce"));
    /* Another process naming the record's number is not the record's. */
    aether_command same_number = real;
    same_number.data.join.info.nonce = 12;
    CU_ASSERT_EQUAL(run(&t, &same_number, &n, &why), AETHER_ESTALE);
    CU_ASSERT_EQUAL(n, 0);
    /* A forged second process naming 2^63-1: a second process (the newest
     * wins), at the clamped incarnation. */
    aether_command forged = join_cmd("b", "evil:1", "");
    forged.data.join.info.incarnation = (uint64_t)INT64_MAX;
    forged.data.join.info.nonce = 666;
    CU_ASSERT_EQUAL(run(&t, &forged, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    uint64_t clamped = 1000 + AETHER_INCARNATION_AHEAD_MAX_MS; /* run() decides at 1000 ms */
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, clamped);
    CU_ASSERT_EQUAL(run(&t, &real, &n, &why), AETHER_ESUPERSEDED); /* the old process stops */
    /* Its restart (a new process, a plausible start time) is told the id
     * is held above it, asks above that (member_cluster.c, claim_above)
     * and comes back at the record + 1, whatever it names. */
    aether_command restart = real;
    restart.data.join.info.incarnation = 2000;
    restart.data.join.info.nonce = 13;
    CU_ASSERT_EQUAL(run(&t, &restart, &n, &why), AETHER_ESUPERSEDED);
    restart.data.join.info.incarnation = (uint64_t)INT64_MAX - 1;
    CU_ASSERT_EQUAL(run(&t, &restart, &n, &why), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, clamped + 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->nonce, 13);
    CU_ASSERT_STRING_EQUAL(aether_topology_find(&t, &b)->address, "b:1");
    /* Its keep-alive names the one assigned once it has read it (or 0). */
    restart.data.join.info.incarnation = clamped + 1;
    CU_ASSERT_EQUAL(run(&t, &restart, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 0);
    /* A join without a nonce cannot supersede a process that has one, nor
     * name an incarnation beyond the leader's clock + a day. */
    aether_command legacy = join_cmd("b", "evil:1", "");
    legacy.data.join.info.incarnation = clamped + 1000;
    CU_ASSERT_EQUAL(run(&t, &legacy, &n, &why), AETHER_EINVAL);
    aether_command ghost = join_cmd("ghost", "evil:1", "");
    ghost.data.join.info.incarnation = (uint64_t)INT64_MAX;
    CU_ASSERT_EQUAL(run(&t, &ghost, &n, &why), AETHER_EINVAL);
    CU_ASSERT_EQUAL(n, 0);
    /* Failed, the process asks above its record: a new incarnation, its
     * nonce kept; naming the record itself is a stale keep-alive. */
    aether_command f = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "b");
    CU_ASSERT_EQUAL(run(&t, &f, NULL, NULL), AETHER_OK);
    aether_command stale = restart;
    stale.data.join.info.incarnation = clamped + 1; /* the one it read */
    CU_ASSERT_EQUAL(run(&t, &stale, &n, &why), AETHER_ESTALE);
    aether_command rejoin = restart;
    rejoin.data.join.info.incarnation = clamped + 2;
    CU_ASSERT_EQUAL(run(&t, &rejoin, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->incarnation, clamped + 2);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_ACTIVE);
    /* The stored topology keeps the nonce; a record without one reads as before. */
    char *json = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_topology_json_encode(&t, &json, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"nonce\":13"));
    aether_topology back;
    aether_topology_init(&back, NULL);
    CU_ASSERT_EQUAL(aether_topology_json_decode(json, len, &back, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_topology_find(&back, &b)->nonce, 13);
    CU_ASSERT_EQUAL(aether_topology_find(&back, &b)->incarnation, clamped + 2);
    free(json);
    /* The writer's generation ("gen", after version) round-trips beside it;
     * absent reads as 0, a malformed one is refused. */
    uint64_t gen = 1;
    CU_ASSERT_EQUAL_FATAL(aether_topology_json_encode_gen(&t, 0x5be0c2a1d7f3e944ull, &json, &len, NULL),
                          AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, ",\"gen\":\"5be0c2a1d7f3e944\",\"nodes\":"));
    CU_ASSERT_EQUAL(aether_topology_json_decode_gen(json, len, &back, &gen, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0x5be0c2a1d7f3e944ull);
    CU_ASSERT_EQUAL(aether_topology_find(&back, &b)->nonce, 13);
    free(json);
    CU_ASSERT_EQUAL_FATAL(aether_topology_json_encode(&t, &json, &len, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_topology_json_decode_gen(json, len, &back, &gen, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(gen, 0);
    free(json);
    const char *bad = "{\"version\":1,\"gen\":\"0000000000000000\",\"nodes\":[]}";
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_topology_json_decode_gen(bad, strlen(bad), &back, &gen, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "gen"));
    /* The admission terms a record keeps (member_shape.c, step 2d)
     * round-trip, params as 16 hex digits; absent reads as not recorded,
     * out of range is refused. */
    aether_admission terms = {.shard_count = 64, .replication = 2, .wire_min = 2, .wire_max = 2,
                              .params = 0xdf1220850a0d3ac5ull};
    CU_ASSERT_TRUE(aether_topology_set_terms(&t, &b, &terms));
    CU_ASSERT_EQUAL_FATAL(aether_topology_json_encode(&t, &json, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"terms\":{\"shard_count\":64,\"replication\":2,"
                                        "\"wire_min\":2,\"wire_max\":2,\"params\":\"df1220850a0d3ac5\"}"));
    CU_ASSERT_EQUAL(aether_topology_json_decode(json, len, &back, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(memcmp(&aether_topology_find(&back, &b)->terms, &terms, sizeof(terms)), 0);
    free(json);
    aether_admission none = {0};
    CU_ASSERT_TRUE(aether_topology_set_terms(&t, &b, &none));
    CU_ASSERT_EQUAL_FATAL(aether_topology_json_encode(&t, &json, &len, NULL), AETHER_OK);
    CU_ASSERT_PTR_NULL(strstr(json, "terms"));
    CU_ASSERT_EQUAL(aether_topology_json_decode(json, len, &back, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(aether_topology_find(&back, &b)->terms.shard_count, 0);
    free(json);
    const char *bad_terms = "{\"version\":1,\"nodes\":[{\"id\":\"a\",\"address\":\"x\",\"zone\":\"\","
                            "\"status\":\"active\",\"incarnation\":1,\"joined_at_ms\":1,\"terms\":"
                            "{\"shard_count\":0,\"replication\":2,\"wire_min\":2,\"wire_max\":2,"
                            "\"params\":\"df1220850a0d3ac5\"}}]}";
    CU_ASSERT_EQUAL(aether_topology_json_decode(bad_terms, strlen(bad_terms), &back, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "terms"));
    aether_topology_fini(&back);
    aether_topology_fini(&t);
}

/* Issue 13 item 2: a MarkNodeFailed naming the incarnation its asker saw
 * fails that process only. */
static void test_mark_failed_names_the_incarnation(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_node_id b = id_of("b");
    aether_command j = join_cmd("b", "x", "");
    j.data.join.info.incarnation = 100;
    j.data.join.info.nonce = 7;
    CU_ASSERT_EQUAL(run(&t, &j, NULL, NULL), AETHER_OK);
    aether_command f = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "b");
    f.data.mark_failed.incarnation = 99;
    aether_err why;
    uint32_t n;
    CU_ASSERT_EQUAL(run(&t, &f, &n, &why), AETHER_ESTALE);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "rejoined since"));
    f.data.mark_failed.incarnation = 100;
    CU_ASSERT_EQUAL(run(&t, &f, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_FAILED);
    j.data.join.info.incarnation = 101; /* the rejoin */
    CU_ASSERT_EQUAL(run(&t, &j, NULL, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(run(&t, &f, &n, &why), AETHER_ESTALE); /* the retry */
    CU_ASSERT_EQUAL(aether_topology_find(&t, &b)->status, AETHER_NODE_ACTIVE);
    f.data.mark_failed.incarnation = 0; /* any: as before */
    CU_ASSERT_EQUAL(run(&t, &f, &n, NULL), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    aether_topology_fini(&t);
}

static void test_not_a_cluster_command(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command c;
    memset(&c, 0, sizeof(c));
    c.type = AETHER_CMD_REBALANCE_SHARDS;
    aether_err why;
    aether_event *ev[1];
    uint32_t n = 9;
    CU_ASSERT_EQUAL(aether_topology_decide(&t, &c, 0, ev, &n, &why), AETHER_EINVAL);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_STRING_EQUAL(why.msg, "RebalanceShards is not a Cluster command");
    aether_topology_fini(&t);
}

static void test_follower_applies_and_ignores_nonsense(void)
{
    aether_topology leader, follower;
    leader_topology(&leader);
    aether_node_id f = id_of("f");
    aether_topology_init(&follower, &f);
    const char *nodes[] = { "c", "a", "b" };
    for (int i = 0; i < 3; i++) {
        aether_command j = join_cmd(nodes[i], "addr", "");
        aether_event *ev[1];
        uint32_t n;
        CU_ASSERT_EQUAL(aether_topology_decide(&leader, &j, 7, ev, &n, NULL), AETHER_OK);
        CU_ASSERT_EQUAL_FATAL(n, 1);
        aether_topology_apply(&leader, ev[0]);
        aether_topology_apply(&follower, ev[0]);
        aether_event_release(ev[0]);
    }
    CU_ASSERT_EQUAL(follower.count, 3);
    CU_ASSERT_EQUAL(follower.version, leader.version);
    /* Sorted by id whatever the join order. */
    CU_ASSERT_STRING_EQUAL(follower.nodes[0].id.str, "a");
    CU_ASSERT_STRING_EQUAL(follower.nodes[2].id.str, "c");
    /* A NodeLeft for an Active node (no drain first) and one for a stranger
     * are counted and ignored. */
    aether_event *bad = aether_event_create(AETHER_EVT_NODE_LEFT);
    bad->data.node_left.node = id_of("a");
    CU_ASSERT_FALSE(aether_topology_apply(&follower, bad));
    bad->data.node_left.node = id_of("stranger");
    CU_ASSERT_FALSE(aether_topology_apply(&follower, bad));
    aether_event_release(bad);
    CU_ASSERT_EQUAL(follower.ignored_events, 2);
    CU_ASSERT_EQUAL(follower.version, leader.version);
    aether_topology_fini(&leader);
    aether_topology_fini(&follower);
}

/* Admission (DESIGN 2): a joiner whose terms differ is refused with the
 * sentence and no event; the same node with the cluster's terms joins; an
 * established member's keep-alive is not judged again; a node without terms
 * (older than the check) is refused a new admission with EINVAL. */
static void test_join_refused_when_terms_differ(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_admission cluster = { .shard_count = 64, .replication = 1, .wire_min = 2,
                                 .wire_max = 2, .params = 0x1234 };
    t.admission = cluster;
    const struct {
        aether_admission terms;
        aether_status st;
        const char *why;
    } cases[] = {
        { { 1024, 1, 2, 2, 0x1234 }, AETHER_EINCOMPATIBLE, "shard_count 1024 differs from the cluster's 64" },
        { { 64, 3, 2, 2, 0x1234 }, AETHER_EINCOMPATIBLE, "replication 3 differs from the cluster's 1" },
        { { 64, 1, 3, 4, 0x1234 }, AETHER_EINCOMPATIBLE, "wire versions 3..4 do not include the cluster's 2" },
        /* A node of the previous release: the reason names the map format. */
        { { 64, 1, 1, 1, 0x1234 }, AETHER_EINCOMPATIBLE,
          "wire versions 1..1 do not include the cluster's 2: the node reads map format 1 only" },
        { { 64, 1, 2, 2, 0x99 }, AETHER_EINCOMPATIBLE,
          "parameters fingerprint 0000000000000099 differs from the cluster's 0000000000001234" },
        { { 0, 0, 0, 0, 0 }, AETHER_EINVAL, "predates admission checks" },
        { { 64, 1, 1, 7, 0x1234 }, AETHER_OK, "" }, /* speaks ours among others */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aether_command c = join_cmd("b", "h:1", "");
        c.data.join.terms = cases[i].terms;
        aether_err why = { 0 };
        uint32_t n = 99;
        CU_ASSERT_EQUAL(run(&t, &c, &n, &why), cases[i].st);
        if (cases[i].st != AETHER_OK) {
            CU_ASSERT_EQUAL(n, 0);
            CU_ASSERT_EQUAL(why.code, cases[i].st);
            CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, cases[i].why));
            aether_node_id b = id_of("b");
            CU_ASSERT_PTR_NULL(aether_topology_find(&t, &b));
        } else {
            CU_ASSERT_EQUAL(n, 1);
        }
    }
    /* b is a member now: its keep-alives (its incarnation, or 0) pass even
     * without terms; a new incarnation of it is judged again. */
    aether_node_id b = id_of("b");
    const aether_node_info *info = aether_topology_find(&t, &b);
    CU_ASSERT_FATAL(info != NULL);
    aether_command ka = join_cmd("b", "h:1", "");
    ka.data.join.info.incarnation = info->incarnation;
    CU_ASSERT_EQUAL(run(&t, &ka, NULL, NULL), AETHER_OK);
    ka.data.join.info.incarnation = info->incarnation + 1;
    ka.data.join.terms = cases[0].terms;
    aether_err why = { 0 };
    CU_ASSERT_EQUAL(run(&t, &ka, NULL, &why), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "shard_count 1024"));
    aether_topology_fini(&t);
}

/* The parameters fingerprint (config.h): per-node parameters do not move
 * it, each cluster-wide one does; shard_count and replication travel apart. */
static void test_admission_terms_of_a_config(void)
{
    aether_config base;
    aether_config_defaults(&base);
    aether_admission a, b;
    aether_config_admission(&base, &a);
    CU_ASSERT_EQUAL(a.shard_count, 1024);
    CU_ASSERT_EQUAL(a.replication, 1);
    CU_ASSERT_EQUAL(a.wire_min, AETHER_WIRE_VERSION_MIN);
    CU_ASSERT_EQUAL(a.wire_max, AETHER_WIRE_VERSION_MAX);
    aether_config c = base;
    c.heartbeat_interval_ms = 100;
    c.election_jitter_ms = 10;
    c.rebalance_debounce_ms = 10;
    c.mailbox_capacity = 1024;
    c.max_concurrent_handoffs = 8;
    c.lease_renew_interval_ms = 200;
    aether_config_admission(&c, &b);
    CU_ASSERT_EQUAL(a.params, b.params);
    uint32_t *wide[] = { &c.lease_ttl_ms, &c.failure_timeout_ms, &c.fence_margin_ms,
                         &c.handoff_timeout_ms };
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
        c = base; /* wide[] points into c */
        *wide[i] += 1;
        aether_config_admission(&c, &b);
        CU_ASSERT_NOT_EQUAL(a.params, b.params);
    }
    char text[256];
    CU_ASSERT(aether_config_params_text(&base, text, sizeof(text)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "failure_timeout_ms=1000"));
}

/* A 2-shard map: shard 0 owned by `owner`, shard 1 by "a" and, if `to` is
 * given, moving to it; `listed` is only in the node table. */
static aether_shardmap *small_map(const char *owner, const char *to, const char *listed)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_FATAL(aether_shardmap_builder_create(2, 1, &b, NULL) == AETHER_OK);
    aether_node_index ia, io, it;
    aether_node_id a = id_of("a"), o = id_of(owner);
    CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &a, &ia, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &o, &io, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_shardmap_builder_set_owners(b, 0, &io, 1, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_shardmap_builder_set_owners(b, 1, &ia, 1, NULL) == AETHER_OK);
    if (to != NULL) {
        aether_node_id t = id_of(to);
        CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &t, &it, NULL) == AETHER_OK);
        CU_ASSERT_FATAL(aether_shardmap_builder_set_moving(b, 1, it, NULL) == AETHER_OK);
    }
    if (listed != NULL) {
        aether_node_id l = id_of(listed);
        CU_ASSERT_FATAL(aether_shardmap_builder_add_node(b, &l, &it, NULL) == AETHER_OK);
    }
    aether_shardmap_builder_set_version(b, 1);
    aether_shardmap *m = NULL;
    CU_ASSERT_FATAL(aether_shardmap_build(b, &m, NULL) == AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return m;
}

/* Retention (DESIGN 2): a departed node is forgotten node_retention_ms after
 * it departed and never while the map names it (owner or handoff target);
 * a node only listed in the map's node table is not named. */
static void test_retention_forgets_departed_nodes_not_named_by_the_map(void)
{
    aether_topology t;
    leader_topology(&t);
    aether_command c = join_cmd("a", "a:1", "");
    uint32_t n;
    aether_err why;
    CU_ASSERT_EQUAL(run(&t, &c, &n, &why), AETHER_OK);
    c = join_cmd("x", "x:1", "");
    CU_ASSERT_EQUAL(run(&t, &c, &n, &why), AETHER_OK);
    const aether_node_id x = id_of("x");
    const uint64_t retention = 600000, at = 1000;
    aether_shardmap *named = small_map("x", NULL, NULL); /* x owns shard 0 */
    aether_shardmap *target = small_map("a", "x", NULL); /* shard 1 moves to x */
    aether_shardmap *listed = small_map("a", NULL, "x"); /* x owns nothing */
    /* Active: never, however old. */
    CU_ASSERT_FALSE(aether_topology_may_forget(aether_topology_find(&t, &x), at, at + 10 * retention,
                                               retention, listed));
    CU_ASSERT_FALSE(aether_topology_remove(&t, &x));
    c = node_cmd(AETHER_CMD_MARK_NODE_FAILED, "x");
    CU_ASSERT_EQUAL(run(&t, &c, &n, &why), AETHER_OK);
    const aether_node_info *info = aether_topology_find(&t, &x);
    CU_ASSERT_FATAL(info != NULL && info->status == AETHER_NODE_FAILED);
    CU_ASSERT_EQUAL(aether_topology_count_live(&t), 1);
    /* Too young, departure unknown, no map: kept. */
    CU_ASSERT_FALSE(aether_topology_may_forget(info, at, at + retention - 1, retention, listed));
    CU_ASSERT_FALSE(aether_topology_may_forget(info, 0, at + 10 * retention, retention, listed));
    CU_ASSERT_FALSE(aether_topology_may_forget(info, at, at + retention, retention, NULL));
    /* Old enough, but a map names it: kept. */
    CU_ASSERT_FALSE(aether_topology_may_forget(info, at, at + retention, retention, named));
    CU_ASSERT_FALSE(aether_topology_may_forget(info, at, at + retention, retention, target));
    /* Old enough and only listed: forgotten. */
    CU_ASSERT_TRUE(aether_topology_may_forget(info, at, at + retention, retention, listed));
    uint64_t v = t.version;
    CU_ASSERT_TRUE(aether_topology_remove(&t, &x));
    CU_ASSERT_EQUAL(t.version, v + 1);
    CU_ASSERT_PTR_NULL(aether_topology_find(&t, &x));
    CU_ASSERT_EQUAL(t.count, 1);
    /* The same id comes back as a new node (incarnation 1: no history). */
    c = join_cmd("x", "x:2", "");
    CU_ASSERT_EQUAL(run(&t, &c, &n, &why), AETHER_OK);
    CU_ASSERT_EQUAL(n, 1);
    info = aether_topology_find(&t, &x);
    CU_ASSERT_FATAL(info != NULL);
    CU_ASSERT_EQUAL(info->status, AETHER_NODE_ACTIVE);
    CU_ASSERT_EQUAL(info->incarnation, 1);
    aether_shardmap_destroy(named);
    aether_shardmap_destroy(target);
    aether_shardmap_destroy(listed);
    aether_topology_fini(&t);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(admission_terms_of_a_config),
    AETHER_TEST(join_refused_when_terms_differ),
    AETHER_TEST(retention_forgets_departed_nodes_not_named_by_the_map),
    AETHER_TEST(join_accepted_and_idempotent),
    AETHER_TEST(newer_process_supersedes_older),
    AETHER_TEST(incarnations_assigned_by_the_leader),
    AETHER_TEST(mark_failed_names_the_incarnation),
    AETHER_TEST(join_rejected_when_not_leader),
    AETHER_TEST(stale_term_rejected),
    AETHER_TEST(join_invalid_info_rejected),
    AETHER_TEST(leave_drains_then_unknown_and_left),
    AETHER_TEST(leave_of_the_last_active_node_refused),
    AETHER_TEST(mark_failed_and_rejoin_new_incarnation),
    AETHER_TEST(not_a_cluster_command),
    AETHER_TEST(follower_applies_and_ignores_nonsense),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("topology", NULL, NULL, tests);
