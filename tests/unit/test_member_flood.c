/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_member_flood.c: no local delivery is lost when a member's actors
 * fall behind (issue 16 item 2, DESIGN 3; engine/actor.h step 1b), on the
 * simulated cluster (tests layer).
 *
 * Three members with the smallest mailbox the configuration allows (64)
 * bootstrap 65 536 shards: the leader publishes 64 ShardAssigned batches
 * (1024 shards each) in one burst, and every member's bus fans each one
 * out to its cluster actor, whose ring of 63 overflows (19 full sends). Before the overflow list, those deliveries were refused
 * ("N local deliveries of ShardAssigned failed") and the events lost; now
 * every one arrives: no bus delivery fails, the cluster settles, and the
 * mailbox_full counter says the overflow list was used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_test.h"
#include "metrics.h"
#include "sim_cluster.h"

#define FLOOD_SHARDS 65536u
#define FLOOD_NODES 3u
#define FLOOD_SETTLE_MS 5000u

/* Sums every series of `name` whose labels contain `with` in the rendered
 * registry (prometheus text: "name{labels} value"). */
static double metric_sum(aether_metrics *m, const char *name, const char *with)
{
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_render_prometheus(m, &text, &len), AETHER_OK);
    double sum = 0;
    size_t nlen = strlen(name);
    for (char *line = text; line != NULL && *line != '\0';) { /* bounded: the text */
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        if (strncmp(line, name, nlen) == 0 && line[nlen] == '{' &&
            (with == NULL || strstr(line, with) != NULL)) {
            const char *sp = strrchr(line, ' ');
            if (sp != NULL)
                sum += strtod(sp + 1, NULL);
        }
        line = end != NULL ? end + 1 : NULL;
    }
    free(text);
    return sum;
}

static void test_shard_assigned_flood_loses_nothing(void)
{
    aether_config base;
    aether_config_defaults(&base);
    base.mailbox_capacity = 64; /* the smallest allowed: 63 usable slots */
    sim_options o = { .seed = 16, .shard_count = FLOOD_SHARDS, .base = &base };
    sim_cluster *c = sim_cluster_create(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (uint32_t i = 0; i < FLOOD_NODES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%u", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sim_add(c, id, NULL));
    }
    sim_run_ms(c, FLOOD_SETTLE_MS);

    char why[256] = "";
    CU_ASSERT_EQUAL(sim_settled(c, why, sizeof(why)), 0);
    if (why[0] != '\0')
        fprintf(stderr, "not settled: %s\n", why);
    char first[256] = "";
    CU_ASSERT_EQUAL(sim_violations(c, first, sizeof(first)), 0);
    /* Every shard announced: the leader's ShardAssigned events reached the
     * test's observer. */
    CU_ASSERT(sim_event_count(c, AETHER_EVT_SHARD_ASSIGNED) >= FLOOD_SHARDS);

    aether_metrics *m = sim_metrics(c);
    double failed = metric_sum(m, "aether_bus_failed_deliveries_total", NULL);
    double full = metric_sum(m, "aether_mailbox_full_total", "actor=\"cluster\"");
    double refused = metric_sum(m, "aether_mailbox_overflow_refused_total", NULL);
    double listed_now = metric_sum(m, "aether_mailbox_overflow_depth", NULL);
    CU_ASSERT_EQUAL(failed, 0);
    CU_ASSERT(full > 0); /* the flood did overflow the cluster actors' rings */
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT_EQUAL(listed_now, 0); /* and the lists drained */
    fprintf(stderr, "cluster actors' full sends: %.0f, bus failures: %.0f\n", full, failed);
    sim_cluster_destroy(c);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(shard_assigned_flood_loses_nothing),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("member_flood", NULL, NULL, tests);
