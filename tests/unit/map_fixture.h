/* SPDX-License-Identifier: Apache-2.0 */
/*
 * map_fixture.h: the small ShardMap both map-format tests encode and decode
 * (test_shardmap_codec.c: format 2; test_shardmap_json.c: format 1), so
 * their vectors describe the same map (tests layer; include once, after
 * cu_test.h).
 */
#ifndef AETHER_TEST_MAP_FIXTURE_H
#define AETHER_TEST_MAP_FIXTURE_H

#include "cu_test.h"
#include "shardmap.h"

static aether_node_id nid(const char *s)
{
    aether_node_id id;
    CU_ASSERT_EQUAL_FATAL(aether_node_id_from_cstr(s, &id, NULL), AETHER_OK);
    return id;
}

/* 4 shards, R = 2, over node-a/b/c; shard 1 (one owner) moving to node-a. */
static aether_shardmap *small_map(void)
{
    aether_shardmap_builder *b = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_create(4, 2, &b, NULL), AETHER_OK);
    aether_shardmap_builder_set_version(b, 7);
    aether_shardmap_builder_set_term(b, 42);
    aether_node_index a, bb, c;
    aether_node_id ia = nid("node-a"), ib = nid("node-b"), ic = nid("node-c");
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &ic, &c, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &ia, &a, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_add_node(b, &ib, &bb, NULL), AETHER_OK);
    aether_node_index o0[2] = {a, c}, o1[1] = {bb}, o2[2] = {c, bb}, o3[2] = {bb, a};
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, 0, o0, 2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, 1, o1, 1, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, 2, o2, 2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_owners(b, 3, o3, 2, NULL), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_builder_set_moving(b, 1, a, NULL), AETHER_OK);
    aether_shardmap *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_shardmap_build(b, &m, NULL), AETHER_OK);
    aether_shardmap_builder_destroy(b);
    return m;
}

#endif
