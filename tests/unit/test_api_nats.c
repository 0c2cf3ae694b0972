/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_api_nats.c: the public API over a real nats-server
 * (tests/support/nats_server.h): aether_node_start with nats_urls connects,
 * creates the buckets aether_<cluster>_lease (with the lease TTL) and
 * aether_<cluster>_state, and three nodes (one connection and executor
 * each, as three processes would have) form a cluster that agrees on the
 * routes; check_route answers mine on the owner and moved elsewhere; a
 * drain hands the shards off; every thread, nats.c's included, blocks
 * SIGTERM.
 *
 * AETHER_TEST_LABELS: integration
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aether.h"
#include "cu_test.h"
#include "nats_server.h"

#define N 3u

static aether_options *nats_options(const tns_server *srv, const char *node, const char *ttl)
{
    aether_options *o = NULL;
    CU_ASSERT_FATAL(aether_options_create(&o) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "cluster", "apinats") == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "node", node) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "shard_count", "64") == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "lease_ttl_ms", ttl) == AETHER_OK);
    CU_ASSERT_FATAL(aether_options_set(o, "nats_urls", srv->url) == AETHER_OK);
    return o;
}

/* Threads of this process that do not block SIGTERM (from /proc), the
 * calling one excepted. */
static int threads_taking_sigterm(int *total)
{
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)gettid());
    DIR *d = opendir("/proc/self/task");
    CU_ASSERT_FATAL(d != NULL);
    int bad = 0;
    *total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        char path[320], line[128];
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long long blk;
            if (sscanf(line, "SigBlk: %llx", &blk) == 1) {
                (*total)++;
                if (!(blk >> (SIGTERM - 1) & 1u)) {
                    fprintf(stderr, "thread %s takes SIGTERM: SigBlk %llx\n", e->d_name, blk);
                    bad++;
                }
            }
        }
        fclose(f);
    }
    closedir(d);
    return bad;
}

static void test_three_nodes_over_nats(void)
{
    tns_server srv;
    CU_ASSERT_TRUE_FATAL(tns_start(&srv, "aether-api"));
    sigset_t none;
    sigemptyset(&none);
    CU_ASSERT_FATAL(pthread_sigmask(SIG_SETMASK, &none, NULL) == 0); /* the program blocks nothing */

    static const char *const names[N] = { "n1", "n2", "n3" };
    aether_node *nodes[N] = { NULL };
    for (uint32_t i = 0; i < N; i++) {
        aether_options *o = nats_options(&srv, names[i], "1000");
        aether_status st = aether_node_start(o, &nodes[i]);
        if (st != AETHER_OK)
            fprintf(stderr, "start %s: %s\n", names[i], aether_last_error());
        CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
        aether_options_destroy(o);
    }
    for (uint32_t i = 0; i < N; i++) {
        aether_status st = aether_node_wait_ready(nodes[i], 20000);
        if (st != AETHER_OK)
            fprintf(stderr, "wait_ready %s: %s\n", names[i], aether_last_error());
        CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    }
    int total = 0;
    CU_ASSERT_EQUAL(threads_taking_sigterm(&total), 0); /* nats.c's threads too */
    CU_ASSERT(total > 6);

    /* The lease bucket exists with a TTL of 1000 ms: a node asking for
     * another is refused, naming the parameter. */
    aether_options *odd = nats_options(&srv, "n4", "2000");
    aether_node *n4 = NULL;
    CU_ASSERT_EQUAL(aether_node_start(odd, &n4), AETHER_EINCOMPATIBLE);
    CU_ASSERT_PTR_NULL(n4);
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "lease_ttl_ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(aether_last_error(), "aether_apinats_lease"));
    aether_options_destroy(odd);

    /* Every node routes every shard to the same owner once their maps agree. */
    uint64_t v0 = 0;
    for (int round = 0; round < 200; round++) { /* bounded: 200 x 10 ms */
        uint64_t v[N];
        bool same = true;
        for (uint32_t i = 0; i < N; i++) {
            CU_ASSERT_EQUAL(aether_node_map_version(nodes[i], &v[i]), AETHER_OK);
            same = same && v[i] == v[0];
        }
        if (same) {
            v0 = v[0];
            break;
        }
        usleep(10000);
    }
    CU_ASSERT(v0 > 0);
    uint32_t owned[N] = { 0 };
    for (uint32_t s = 0; s < 64; s++) {
        aether_route r[N];
        for (uint32_t i = 0; i < N; i++)
            CU_ASSERT_EQUAL(aether_node_route_shard(nodes[i], s, &r[i]), AETHER_OK);
        CU_ASSERT_STRING_EQUAL(r[1].owner, r[0].owner);
        CU_ASSERT_STRING_EQUAL(r[2].owner, r[0].owner);
        for (uint32_t i = 0; i < N; i++) {
            aether_route c;
            CU_ASSERT_EQUAL(aether_node_check_route(nodes[i], s, r[0].map_version, &c), AETHER_OK);
            if (strcmp(r[0].owner, names[i]) == 0) {
                owned[i]++;
                CU_ASSERT(c.answer == AETHER_ROUTE_MINE || c.answer == AETHER_ROUTE_TRYAGAIN);
            } else {
                CU_ASSERT_EQUAL(c.answer, AETHER_ROUTE_MOVED);
                CU_ASSERT_STRING_EQUAL(c.owner, r[0].owner);
            }
        }
    }
    for (uint32_t i = 0; i < N; i++)
        CU_ASSERT(owned[i] >= 20 && owned[i] <= 22); /* 64 over 3, within one */

    /* n3 drains: its shards go to n1 and n2. */
    aether_status st = aether_node_drain(nodes[2], 20000);
    if (st != AETHER_OK)
        fprintf(stderr, "drain: %s\n", aether_last_error());
    CU_ASSERT_EQUAL(st, AETHER_OK);
    for (int round = 0; round < 300; round++) { /* bounded: 300 x 10 ms */
        uint32_t on_n3 = 0;
        for (uint32_t s = 0; s < 64; s++) {
            aether_route r;
            if (aether_node_route_shard(nodes[0], s, &r) == AETHER_OK && strcmp(r.owner, "n3") == 0)
                on_n3++;
        }
        if (on_n3 == 0)
            break;
        usleep(10000);
    }
    aether_route r;
    for (uint32_t s = 0; s < 64; s++) {
        CU_ASSERT_EQUAL(aether_node_route_shard(nodes[0], s, &r), AETHER_OK);
        CU_ASSERT(strcmp(r.owner, "n1") == 0 || strcmp(r.owner, "n2") == 0);
    }
    for (uint32_t i = 0; i < N; i++)
        aether_node_stop(nodes[i]);
    for (uint32_t i = 0; i < N; i++)
        aether_node_destroy(nodes[i]);
    tns_destroy(&srv);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(three_nodes_over_nats),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("api_nats", NULL, NULL, tests);
