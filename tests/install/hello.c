/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello.c: the smallest embedder of an installed libaether (tests/install).
 * install_test.sh builds it against the installed copy, with pkg-config and
 * with find_package(aether), and runs it: it must compile from
 * <aether/aether.h> alone (C11, -Wall -Wextra -Werror), link with nothing
 * added by hand, and answer the way the library documents.
 *
 * It starts one in-process node with 1024 shards, waits until it is ready,
 * routes the documented test key ("user:42" is shard 450 of 1024), checks
 * the route from the receiving side (mine), refuses a bad key by name, and
 * stops. Exit 0 when every answer is the documented one, 1 otherwise
 * (saying which).
 */
#include <aether/aether.h>
#include <aether/aether_version.h>

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "hello: FAILED: %s (%s)\n", what, aether_last_error());
        failures++;
    }
}

int main(void)
{
    static const char key[] = "user:42";
    aether_options *opts = NULL;
    aether_node *node = NULL;
    if (aether_options_create(&opts) != AETHER_OK || aether_options_set(opts, "node", "hello-1") != AETHER_OK ||
        aether_options_set(opts, "cluster", "hello") != AETHER_OK) {
        fprintf(stderr, "hello: options: %s\n", aether_last_error());
        return 1;
    }
    check(aether_options_set(opts, "shard_cuont", "8") == AETHER_EINVAL &&
              strstr(aether_last_error(), "shard_cuont") != NULL,
          "a misspelt key is refused by name");
    aether_status st = aether_node_start(opts, &node);
    aether_options_destroy(opts); /* the node keeps its own copy */
    if (st != AETHER_OK) {
        fprintf(stderr, "hello: start: %s: %s\n", aether_status_str(st), aether_last_error());
        return 1;
    }
    check(aether_node_wait_ready(node, 10000) == AETHER_OK, "the node is ready within 10 s");

    aether_route r;
    check(aether_node_route_key(node, key, strlen(key), &r) == AETHER_OK, "aether_node_route_key answers");
    check(r.shard == 450u, "\"user:42\" is shard 450 of 1024");
    check(strcmp(r.owner, "hello-1") == 0 && r.self, "the only node owns it");
    aether_route c;
    check(aether_node_check_route(node, r.shard, r.map_version, &c) == AETHER_OK && c.answer == AETHER_ROUTE_MINE,
          "check_route: mine");

    printf("aether %s (%d, library %s): \"%s\" -> shard %u -> %s (map v%llu, term %llu)\n",
           AETHER_VERSION_STRING, AETHER_VERSION_NUMBER, aether_version(), key, r.shard, r.owner,
           (unsigned long long)r.map_version, (unsigned long long)r.term);
    check(strcmp(aether_version(), AETHER_VERSION_STRING) == 0, "header and library versions agree");

    aether_node_stop(node);
    aether_node_destroy(node);
    return failures == 0 ? 0 : 1;
}
