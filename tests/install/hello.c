/*
 * hello.c: the smallest embedder of an installed libaether (tests/install).
 * install_test.sh builds it against the installed copy, with pkg-config and
 * with find_package(aether), and runs it: it must compile from
 * <aether/aether.h> alone, link, and answer the way the library documents.
 *
 * It prints the version, hashes the documented test key, lets the default
 * strategy assign 1024 shards to three nodes, publishes the map into a
 * routing slot and routes the key through it. Exit 0 when every answer is
 * the documented one, 1 otherwise (saying which).
 */
#include <aether/aether.h>
#include <aether/aether_version.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 1024u
#define NODES 3u

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "hello: FAILED: %s\n", what);
        failures++;
    }
}

int main(void)
{
    /* keyhash.h's documented vector: "user:42" is shard 450 of 1024. */
    static const char key[] = "user:42";
    uint32_t shard = aether_key_shard(key, strlen(key), SHARDS);
    check(shard == 450u, "aether_key_shard(\"user:42\", 1024) == 450");

    static const char *const ids[NODES] = { "node-a", "node-b", "node-c" };
    aether_strategy_node nodes[NODES];
    aether_err err = { 0 };
    for (uint32_t i = 0; i < NODES; i++)
        if (aether_strategy_node_make(&nodes[i], ids[i], NULL, AETHER_NODE_ACTIVE, &err) != AETHER_OK) {
            fprintf(stderr, "hello: node %s: %s\n", ids[i], err.msg);
            return 1;
        }
    aether_strategy_config sc = { .shard_count = SHARDS, .replication = 2 };
    aether_shardmap *map = NULL;
    aether_status st = aether_strategy_default()->compute(NULL, nodes, NODES, &sc, 1, &map, NULL, &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "hello: strategy: %s: %s\n", aether_status_str(st), err.msg);
        return 1;
    }

    aether_shardmap_slot slot;
    aether_shardmap_slot_init(&slot);
    st = aether_shardmap_slot_publish(&slot, &map);
    check(st == AETHER_OK && map == NULL, "publish takes the map");

    aether_route r;
    st = aether_route_key(&slot, key, strlen(key), &r);
    check(st == AETHER_OK, "aether_route_key answers");
    check(r.shard == shard, "the route's shard is the key's shard");
    check(r.owner_count == 2 && !r.moving, "two owners, stable");

    /* Perfect balance: primaries per node differ by at most one. */
    uint32_t min = SHARDS, max = 0;
    for (uint32_t i = 0; i < NODES; i++) {
        aether_node_id id;
        size_t n = 0;
        (void)aether_node_id_from_cstr(ids[i], &id, &err);
        st = aether_route_node_primary_shards(&slot, &id, NULL, 0, &n, NULL);
        check(st == AETHER_OK || st == AETHER_EFULL, "aether_route_node_primary_shards answers");
        if (n < min)
            min = (uint32_t)n;
        if (n > max)
            max = (uint32_t)n;
    }
    check(max - min <= 1 && min + max > 0, "primaries balanced within one");

    printf("aether %s (%d): \"%s\" -> shard %u -> %s (map v%llu, term %llu); primaries per node %u..%u\n",
           AETHER_VERSION_STRING, AETHER_VERSION_NUMBER, key, r.shard, r.primary.str,
           (unsigned long long)r.map_version, (unsigned long long)r.term, min, max);

    aether_shardmap_slot_fini(&slot);
    aether_rcu_barrier(); /* the retired map is freed before exit */
    return failures == 0 ? 0 : 1;
}
