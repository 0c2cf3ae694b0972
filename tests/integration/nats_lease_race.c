/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_lease_race.c: two candidates campaign at the same instant over a
 * resigned lease on a clustered (R3) bucket (issue 12; tests layer).
 *
 *   nats_lease_race --nats URL1 --nats2 URL2 [--rounds N] [--per-key]
 *                   [--timeout-ms N]
 *
 * The lease and state buckets are made as aether-node makes them
 * (aether_nats_lease_race_lease / _state, 3 replicas; the lease store with
 * one_key unless --per-key). Each round: a holder on the first connection
 * acquires the lease and resigns it (a delete marker: what a superseded or
 * draining leader leaves), then two candidates - one on each connection, so
 * on two servers - call aether_lease_acquire at a barrier, the way two
 * followers whose watchers saw the marker campaign at once. Both returning
 * AETHER_OK in one round is two leaders at once. The winner resigns and the
 * next round starts.
 *
 * Output, one line at the end:
 *   rounds=N both=B one=O none=Z per_key=0|1
 * and one line per double win ("round R: both won: terms T1 and T2").
 * Exit 0 when it ran (the script judges B), 1 on a setup failure, 2 usage.
 *
 * nats-server before 2.9.21 checks a conditional write's expected revision
 * on R3 streams before proposing only (nats-io/nats-server issue 4320): on
 * 2.9.10, --per-key gives double wins in a good share of the rounds; the
 * one_key stores (nats_kv.h step 2b) must give none.
 *
 * Threading: the main thread and two candidate threads per round, joined
 * before the next round.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "clock.h"
#include "lease.h"
#include "nats_kv.h"
#include "rng.h"

#define RACE_TTL_MS 2000u
#define RACE_MARGIN_MS 200u
#define RACE_ROUNDS_MAX 100000
#define RACE_BUCKET_TRIES 100 /* x 200 ms: clustered JetStream elects its meta leader */

typedef struct candidate {
    aether_lease_config cfg;
    aether_rng rng;
    pthread_barrier_t *start;
    aether_lease_held held;
    aether_status st;
} candidate;

static void *campaign(void *arg)
{
    candidate *c = arg;
    pthread_barrier_wait(c->start);
    c->st = aether_lease_acquire(&c->cfg, &c->rng, &c->held, NULL);
    return NULL;
}

static aether_kv *bucket(natsConnection *nc, const char *suffix, uint64_t ttl_ms, bool one_key,
                         uint64_t timeout_ms)
{
    char name[AETHER_KV_NATS_BUCKET_LEN_MAX + 1];
    snprintf(name, sizeof(name), "aether_nats_lease_race_%s", suffix);
    aether_kv_nats_config kc = {.conn = nc, .bucket = name, .ttl_ms = ttl_ms, .replicas = 3,
                                .timeout_ms = timeout_ms, .create_if_missing = true,
                                .one_key = one_key};
    aether_kv *kv = NULL;
    aether_err err = {0};
    for (int i = 0; i < RACE_BUCKET_TRIES; i++) { /* bounded: RACE_BUCKET_TRIES */
        if (aether_kv_nats_create(&kc, &kv, &err) == AETHER_OK)
            return kv;
        nats_Sleep(200);
    }
    fprintf(stderr, "nats_lease_race: bucket %s: %s\n", name, err.msg);
    return NULL;
}

static aether_lease_config lease_cfg(aether_kv *lease_kv, aether_kv *state_kv, const char *id)
{
    aether_lease_config cfg = {.lease_kv = lease_kv, .state_kv = state_kv,
                               .clock = aether_clock_real(), .ttl_ms = RACE_TTL_MS,
                               .safety_margin_ms = RACE_MARGIN_MS};
    if (aether_node_id_from_cstr(id, &cfg.self, NULL) != AETHER_OK)
        abort();
    return cfg;
}

static int usage(void)
{
    fprintf(stderr, "usage: nats_lease_race --nats URL1 --nats2 URL2 [--rounds N] [--per-key] "
                    "[--timeout-ms N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *url1 = NULL, *url2 = NULL;
    long rounds = 200, timeout_ms = 2000;
    bool per_key = false;
    static const struct option opts[] = {
        {"nats", required_argument, NULL, 'a'},   {"nats2", required_argument, NULL, 'b'},
        {"rounds", required_argument, NULL, 'r'}, {"per-key", no_argument, NULL, 'p'},
        {"timeout-ms", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'a': url1 = optarg; break;
        case 'b': url2 = optarg; break;
        case 'r': rounds = strtol(optarg, NULL, 10); break;
        case 'p': per_key = true; break;
        case 't': timeout_ms = strtol(optarg, NULL, 10); break;
        default: return usage();
        }
    }
    if (url1 == NULL || url2 == NULL || rounds < 1 || rounds > RACE_ROUNDS_MAX || timeout_ms < 1 ||
        timeout_ms > (long)AETHER_KV_NATS_TIMEOUT_MS_MAX)
        return usage();

    natsConnection *nc1 = NULL, *nc2 = NULL;
    if (natsConnection_ConnectTo(&nc1, url1) != NATS_OK ||
        natsConnection_ConnectTo(&nc2, url2) != NATS_OK) {
        fprintf(stderr, "nats_lease_race: cannot connect to %s and %s\n", url1, url2);
        return 1;
    }
    /* One lease store and one state store per connection, as two nodes have. */
    aether_kv *lease1 = bucket(nc1, "lease", RACE_TTL_MS, !per_key, (uint64_t)timeout_ms);
    aether_kv *state1 = bucket(nc1, "state", 0, false, (uint64_t)timeout_ms);
    aether_kv *lease2 = bucket(nc2, "lease", RACE_TTL_MS, !per_key, (uint64_t)timeout_ms);
    aether_kv *state2 = bucket(nc2, "state", 0, false, (uint64_t)timeout_ms);
    if (lease1 == NULL || state1 == NULL || lease2 == NULL || state2 == NULL)
        return 1;

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    candidate c[2];
    memset(c, 0, sizeof(c));
    c[0].cfg = lease_cfg(lease1, state1, "cand-a");
    c[1].cfg = lease_cfg(lease2, state2, "cand-b");
    aether_rng_seed(&c[0].rng, 1);
    aether_rng_seed(&c[1].rng, 2);
    aether_lease_config holder_cfg = lease_cfg(lease1, state1, "holder");
    aether_rng holder_rng;
    aether_rng_seed(&holder_rng, 3);

    long both = 0, one = 0, none = 0;
    for (long r = 0; r < rounds; r++) { /* bounded: rounds */
        /* A holder wins and resigns: a delete marker on the key. A round
         * whose holder cannot win (a candidate's lease still there) waits
         * for it to expire, bounded by its ttl. */
        aether_lease_held h;
        aether_status hs = AETHER_EEXIST;
        for (int t = 0; t < 50 && hs != AETHER_OK; t++) { /* bounded: 50 x 100 ms > ttl */
            hs = aether_lease_acquire(&holder_cfg, &holder_rng, &h, NULL);
            if (hs != AETHER_OK)
                nats_Sleep(100);
        }
        if (hs != AETHER_OK) {
            fprintf(stderr, "nats_lease_race: round %ld: the holder could not win (%s)\n", r,
                    aether_status_str(hs));
            return 1;
        }
        (void)aether_lease_resign(&holder_cfg, &h, NULL);
        pthread_t t[2];
        for (int i = 0; i < 2; i++) /* bounded: 2 */
            c[i].start = &start;
        for (int i = 0; i < 2; i++) /* bounded: 2 */
            if (pthread_create(&t[i], NULL, campaign, &c[i]) != 0)
                abort();
        for (int i = 0; i < 2; i++) /* bounded: 2 */
            pthread_join(t[i], NULL);
        int won = (c[0].st == AETHER_OK) + (c[1].st == AETHER_OK);
        if (won == 2) {
            both++;
            printf("round %ld: both won: terms %" PRIu64 " and %" PRIu64 "\n", r,
                   c[0].held.lease.term, c[1].held.lease.term);
        } else if (won == 1) {
            one++;
        } else {
            none++;
        }
        for (int i = 0; i < 2; i++) /* bounded: 2 */
            if (c[i].st == AETHER_OK)
                (void)aether_lease_resign(&c[i].cfg, &c[i].held, NULL);
    }
    printf("rounds=%ld both=%ld one=%ld none=%ld per_key=%d\n", rounds, both, one, none,
           per_key ? 1 : 0);
    fflush(stdout);
    aether_kv_destroy(lease1);
    aether_kv_destroy(state1);
    aether_kv_destroy(lease2);
    aether_kv_destroy(state2);
    natsConnection_Destroy(nc1);
    natsConnection_Destroy(nc2);
    nats_CloseAndWait(2000);
    return 0;
}
