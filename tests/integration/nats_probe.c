/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_probe.c: a read-only observer of an Aether cluster on NATS, for the
 * integration scripts (tests layer). It joins nothing and publishes
 * nothing on aether.<cluster>.*; it reads the KV buckets and listens.
 *
 *   nats_probe --nats URL[,URL...] --cluster C [--timeout-ms N]
 *              [--user U --password P | --token T] COMMAND
 *
 * Commands (output is line-oriented, for grep and awk):
 *   map      the ShardMap in aether_<C>_state (key "map"):
 *              map version=V term=T shards=S replication=R moving=M unowned=U
 *              owner NODE primaries=K          (one per node of the map, sorted)
 *              shard ID OWNER[,OWNER...] STATE[ to=NODE]   (one per shard)
 *            Exit 1 if no map could be read within --timeout-ms.
 *   settled LEADER ID=VERSION...
 *            the map as `map` prints it, then judged by the oracle
 *            (actors/invariants.h, aether_invariants_check_settled and
 *            _check_balance) against the stored topology: LEADER (the one
 *            node that believes it leads) Active, every ID Active and on
 *            VERSION (the map version its --trace says it installed, ""
 *            for none) equal to the stored map's, every shard stable with
 *            min(R, Active) owners among the IDs, primaries and owners per
 *            node within one. What each node serves is not observed.
 *            Exit 1 with "not settled: WHY" on stderr if not (or no map).
 *   lease    the lease key "leader" of aether_<C>_lease and its revision:
 *              lease leader=NODE term=T revision=R
 *            Exit 1 if there is none (expired, resigned) or on error.
 *   watch    subscribes aether.<C>.> and prints one line per message, with
 *            CLOCK_MONOTONIC microseconds (comparable with aether-node
 *            --trace lines and between processes):
 *              <mono_us> <subject tail> <type> node=N term=T seq=S   (an envelope)
 *              <mono_us> map map version=V term=T                    (a ShardMap)
 *              <mono_us> <subject tail> undecodable                  (anything else)
 *            "watching" is printed once the subscription is confirmed by
 *            the server. Runs until SIGTERM/SIGINT or --duration S.
 *   buckets  creates aether_<C>_lease (TTL --ttl-ms, default 1000) and
 *            aether_<C>_state (no TTL) with --replicas R (1 or 3), as
 *            aether-node would, retrying while JetStream is not ready
 *            (clustered JetStream elects its meta leader after start), up
 *            to --timeout-ms. Prints "buckets replicas=R".
 *   delete-lease, delete-state
 *            deletes the bucket aether_<C>_lease or aether_<C>_state with
 *            everything in it (issue 12 item 5: the nodes must re-create
 *            it). Prints "deleted BUCKET". Exit 1 if there was none.
 *   streams  where JetStream placed the two buckets' streams, waiting (up to
 *            --timeout-ms) until each has a leader:
 *              stream KV_aether_<C>_<lease|state> leader=SERVER replicas=S2,S3 messages=N
 *            (a replica that is not current is shown as S(behind)).
 *
 * The decoding is lenient on purpose: it shows what is on the wire, forged
 * messages included; it never judges. --timeout-ms (default 5000) bounds
 * every command but watch, which --duration bounds (default 120 s).
 *
 * Exit status: 0 success, 1 failure (reason on stderr), 2 usage error.
 *
 * Threading: one thread (watch uses a synchronous subscription).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "aether_internal.h"
#include "invariants.h"
#include "topology_json.h"

#define EXIT_USAGE 2
#define PROBE_URLS_MAX 16
#define PROBE_POLL_MS 100       /* watch: NextMsg slice, signal checks */
#define PROBE_RETRY_MS 200      /* map/lease/buckets: between attempts */
#define PROBE_TIMEOUT_MS_DEFAULT 5000u
#define PROBE_DURATION_S_DEFAULT 120u
#define PROBE_KV_TIMEOUT_MS 1000u
#define PROBE_DATA_MAX ((size_t)1 << 20) /* watch: bigger messages are only sized */

typedef struct probe_opts {
    const char *urls, *cluster, *user, *password, *token, *command;
    char **args; /* settled: what follows the command */
    int n_args;
    uint64_t timeout_ms, ttl_ms, duration_s;
    uint32_t replicas;
} probe_opts;

static volatile sig_atomic_t probe_stop;

static int probe_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

static void probe_on_signal(int sig) { probe_stop = sig; }

static uint64_t probe_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void probe_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal ends it early: the caller's loop checks */
}

static int probe_usage(const char *msg)
{
    fprintf(stderr, "nats_probe: %s\n"
                    "usage: nats_probe --nats URL[,URL...] --cluster C [--timeout-ms N] "
                    "[--user U --password P | --token T]\n"
                    "                  map | lease | watch [--duration S] | "
                    "buckets [--replicas R] [--ttl-ms N] | streams |\n"
                    "                  delete-lease | delete-state\n",
            msg);
    return EXIT_USAGE;
}

/* ---- connection ----------------------------------------------------------- */

static natsConnection *probe_connect(const probe_opts *o)
{
    char *copy = strdup(o->urls);
    const char *servers[PROBE_URLS_MAX];
    int count = 0;
    for (char *p = copy; p != NULL && count < PROBE_URLS_MAX;) { /* bounded: PROBE_URLS_MAX */
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0')
            servers[count++] = p;
        p = comma != NULL ? comma + 1 : NULL;
    }
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    natsStatus s = copy != NULL ? natsOptions_Create(&no) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = natsOptions_SetServers(no, servers, count);
    if (s == NATS_OK)
        s = natsOptions_SetName(no, "nats_probe");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 100);
    if (s == NATS_OK && o->user != NULL)
        s = natsOptions_SetUserInfo(no, o->user, o->password != NULL ? o->password : "");
    if (s == NATS_OK && o->token != NULL)
        s = natsOptions_SetToken(no, o->token);
    uint64_t t0 = probe_mono_us();
    while (s == NATS_OK) { /* bounded: timeout_ms */
        s = natsConnection_Connect(&nc, no);
        if (s == NATS_OK || probe_stop || probe_mono_us() - t0 >= o->timeout_ms * 1000u)
            break;
        probe_sleep_ms(PROBE_RETRY_MS);
        s = NATS_OK;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "nats_probe: cannot connect to %s: %s\n", o->urls, natsStatus_GetText(s));
        nc = NULL;
    }
    natsOptions_Destroy(no);
    free(copy);
    return nc;
}

/* Binds to (or creates, with replicas) one of the cluster's buckets, retried
 * until the deadline. NULL after saying why. */
static aether_kv *probe_bucket(const probe_opts *o, natsConnection *nc, const char *suffix,
                               uint64_t ttl_ms, bool create, uint32_t replicas)
{
    char bucket[AETHER_KV_NATS_BUCKET_LEN_MAX + 1];
    snprintf(bucket, sizeof(bucket), "aether_%s_%s", o->cluster, suffix);
    aether_kv_nats_config kc = {.conn = nc, .bucket = bucket, .ttl_ms = ttl_ms,
                                .timeout_ms = PROBE_KV_TIMEOUT_MS, .create_if_missing = create,
                                .replicas = replicas};
    aether_err err = {0};
    aether_status st = AETHER_EUNAVAILABLE;
    aether_kv *kv = NULL;
    uint64_t t0 = probe_mono_us();
    for (;;) { /* bounded: timeout_ms */
        st = aether_kv_nats_create(&kc, &kv, &err);
        if (st == AETHER_OK)
            return kv;
        /* While a JetStream cluster forms, the server refuses (an
         * EINVAL-mapped error) with "temporarily unavailable" until its
         * meta leader is elected and "no suitable peers for placement"
         * until it knows enough peers for the replicas. */
        bool transient = st == AETHER_EUNAVAILABLE || st == AETHER_ENOTFOUND ||
                         (create && st == AETHER_EINVAL &&
                          (strstr(err.msg, "unavailable") != NULL || strstr(err.msg, "no suitable peers") != NULL));
        if (!transient || probe_stop || probe_mono_us() - t0 >= o->timeout_ms * 1000u)
            break;
        probe_sleep_ms(PROBE_RETRY_MS);
    }
    fprintf(stderr, "nats_probe: bucket %s: %s: %s\n", bucket, aether_status_str(st), err.msg);
    return NULL;
}

/* Reads key from kv, retried on "unavailable" until the deadline. */
static aether_status probe_get(const probe_opts *o, aether_kv *kv, const char *key,
                               aether_kv_entry *e, aether_err *err)
{
    uint64_t t0 = probe_mono_us();
    for (;;) { /* bounded: timeout_ms */
        aether_status st = aether_kv_get(kv, key, e, err);
        if (st != AETHER_EUNAVAILABLE || probe_stop || probe_mono_us() - t0 >= o->timeout_ms * 1000u)
            return st;
        probe_sleep_ms(PROBE_RETRY_MS);
    }
}

/* ---- map ------------------------------------------------------------------ */

/* The stored value of key in aether_<C>_state; 1 (reason on stderr) if none. */
static int probe_state_get(const probe_opts *o, natsConnection *nc, const char *key, aether_kv_entry *e)
{
    aether_kv *kv = probe_bucket(o, nc, "state", 0, false, 0);
    if (kv == NULL)
        return 1;
    aether_err err = {0};
    aether_status st = probe_get(o, kv, key, e, &err);
    aether_kv_destroy(kv);
    if (st != AETHER_OK) {
        fprintf(stderr, "nats_probe: %s: %s: %s\n", key, aether_status_str(st), err.msg);
        return 1;
    }
    return 0;
}

static aether_shardmap *probe_read_map(const probe_opts *o, natsConnection *nc)
{
    aether_kv_entry e;
    if (probe_state_get(o, nc, "map", &e) != 0)
        return NULL;
    aether_shardmap *m = NULL;
    aether_err err = {0};
    aether_status st = aether_shardmap_codec_decode((const char *)e.value, e.value_len, &m, NULL, &err);
    aether_kv_entry_fini(&e);
    if (st != AETHER_OK) {
        fprintf(stderr, "nats_probe: map: undecodable: %s\n", err.msg);
        return NULL;
    }
    return m;
}

static void probe_print_map(const aether_shardmap *m)
{
    uint32_t moving = 0, unowned = 0;
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *se = aether_shardmap_entry(m, s);
        moving += se->state == AETHER_SHARD_MOVING;
        unowned += se->owner_count == 0;
    }
    printf("map version=%" PRIu64 " term=%" PRIu64 " shards=%u replication=%u moving=%u unowned=%u\n",
           m->version, (uint64_t)m->term, m->shard_count, m->replication, moving, unowned);
    for (uint32_t i = 0; i < m->node_count; i++) { /* nodes are sorted in the map */
        size_t k = 0;
        (void)aether_shardmap_node_primary_shards(m, (aether_node_index)i, &k);
        printf("owner %s primaries=%zu\n", aether_shardmap_node(m, (aether_node_index)i)->str, k);
    }
    for (uint32_t s = 0; s < m->shard_count; s++) {
        const aether_shard_entry *se = aether_shardmap_entry(m, s);
        const aether_node_index *own = aether_shardmap_owners(m, s);
        printf("shard %u ", s);
        if (se->owner_count == 0)
            printf("-");
        for (uint32_t r = 0; r < se->owner_count; r++)
            printf("%s%s", r ? "," : "", aether_shardmap_node(m, own[r])->str);
        printf(" %s", aether_shard_state_name((aether_shard_state)se->state));
        if (se->state == AETHER_SHARD_MOVING)
            printf(" to=%s", aether_shardmap_node(m, se->to)->str);
        printf("\n");
    }
}

static int probe_map(const probe_opts *o, natsConnection *nc)
{
    aether_shardmap *m = probe_read_map(o, nc);
    if (m == NULL)
        return 1;
    probe_print_map(m);
    aether_shardmap_destroy(m);
    return 0;
}

/* ---- settled ---------------------------------------------------------------- */

#define PROBE_SETTLED_NODES_MAX 64

static int probe_settled(const probe_opts *o, natsConnection *nc)
{
    if (o->n_args < 2 || o->n_args - 1 > PROBE_SETTLED_NODES_MAX) {
        fprintf(stderr, "nats_probe: settled wants LEADER and 1..%d ID=VERSION\n", PROBE_SETTLED_NODES_MAX);
        return 2;
    }
    const char *leader = o->args[0];
    aether_oracle_view views[PROBE_SETTLED_NODES_MAX];
    char ids[PROBE_SETTLED_NODES_MAX][AETHER_NODE_ID_LEN_MAX + 1];
    uint32_t n = 0, li = UINT32_MAX;
    for (int i = 1; i < o->n_args; i++, n++) {
        const char *eq = strchr(o->args[i], '=');
        size_t len = eq ? (size_t)(eq - o->args[i]) : 0;
        uint64_t version = 0;
        if (eq == NULL || len == 0 || len > AETHER_NODE_ID_LEN_MAX ||
            (eq[1] != '\0' && probe_u64(eq + 1, 0, UINT64_MAX, &version) != 0)) {
            fprintf(stderr, "nats_probe: settled: '%s' is not ID=VERSION\n", o->args[i]);
            return 2;
        }
        memcpy(ids[n], o->args[i], len);
        ids[n][len] = '\0';
        views[n] = (aether_oracle_view){ .name = ids[n], .node = ids[n], .running = true,
                                         .may_serve = true, .map_version = version,
                                         .is_leader = strcmp(ids[n], leader) == 0,
                                         .expect = AETHER_EXPECT_ACTIVE };
        if (views[n].is_leader)
            li = n;
    }
    if (li == UINT32_MAX) {
        fprintf(stderr, "nats_probe: settled: the leader %s is none of the IDs\n", leader);
        return 2;
    }
    aether_shardmap *m = probe_read_map(o, nc);
    if (m == NULL)
        return 1;
    probe_print_map(m);
    aether_topology topo;
    aether_topology_init(&topo, NULL);
    aether_kv_entry e;
    aether_err err = {0};
    int rc = 1;
    if (probe_state_get(o, nc, "topology", &e) == 0) {
        if (aether_topology_json_decode((const char *)e.value, e.value_len, &topo, &err) != AETHER_OK)
            fprintf(stderr, "not settled: stored topology undecodable: %s\n", err.msg);
        else {
            aether_settled_input in = { .views = views, .n_views = n, .leader = li, .map = m,
                                        .topo = &topo, .replication = m->replication,
                                        .serving_unobserved = true };
            if (aether_invariants_check_settled(&in, &err) != AETHER_OK ||
                aether_invariants_check_balance(m, &topo, &err) != AETHER_OK)
                fprintf(stderr, "not settled: %s\n", err.msg);
            else
                rc = 0;
        }
        aether_kv_entry_fini(&e);
    }
    aether_topology_fini(&topo);
    aether_shardmap_destroy(m);
    return rc;
}

/* ---- lease ---------------------------------------------------------------- */

static int probe_lease(const probe_opts *o, natsConnection *nc)
{
    /* Bind only: the lease bucket's TTL is checked against ttl_ms. */
    aether_kv *kv = probe_bucket(o, nc, "lease", o->ttl_ms, false, 0);
    if (kv == NULL)
        return 1;
    aether_kv_entry e;
    aether_err err = {0};
    aether_status st = probe_get(o, kv, AETHER_LEASE_KEY_DEFAULT, &e, &err);
    aether_kv_destroy(kv);
    if (st != AETHER_OK) {
        fprintf(stderr, "nats_probe: lease: %s: %s\n", aether_status_str(st), err.msg);
        return 1;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)e.value, e.value_len, 0, &je);
    const char *leader = root != NULL ? json_string_value(json_object_get(root, "leader")) : NULL;
    json_int_t term = root != NULL ? json_integer_value(json_object_get(root, "term")) : -1;
    printf("lease leader=%s term=%lld revision=%" PRIu64 "\n", leader != NULL ? leader : "?",
           (long long)term, e.revision);
    json_decref(root);
    aether_kv_entry_fini(&e);
    return 0;
}

/* ---- buckets -------------------------------------------------------------- */

static int probe_buckets(const probe_opts *o, natsConnection *nc)
{
    aether_kv *lease = probe_bucket(o, nc, "lease", o->ttl_ms, true, o->replicas);
    aether_kv *state = lease != NULL ? probe_bucket(o, nc, "state", 0, true, o->replicas) : NULL;
    bool ok = lease != NULL && state != NULL;
    aether_kv_destroy(lease);
    aether_kv_destroy(state);
    if (ok)
        printf("buckets replicas=%u\n", o->replicas);
    return ok ? 0 : 1;
}

/* ---- delete-lease, delete-state -------------------------------------------- */

static int probe_delete(const probe_opts *o, natsConnection *nc, const char *suffix)
{
    char bucket[AETHER_KV_NATS_BUCKET_LEN_MAX + 1];
    snprintf(bucket, sizeof(bucket), "aether_%s_%s", o->cluster, suffix);
    aether_err err = {0};
    aether_status st = aether_kv_nats_delete_bucket(nc, bucket, PROBE_KV_TIMEOUT_MS, &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "nats_probe: delete %s: %s\n", bucket, err.msg);
        return 1;
    }
    printf("deleted %s\n", bucket);
    return 0;
}

/* ---- streams --------------------------------------------------------------- */

/* The JetStream placement of the two KV streams: which server leads each
 * and which replicate it (a clustered test kills the lease stream's leader). */
static int probe_streams(const probe_opts *o, natsConnection *nc)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)PROBE_KV_TIMEOUT_MS;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream(&js, nc, &jo);
    int rc = s == NATS_OK ? 0 : 1;
    static const char *const suffixes[] = {"lease", "state"};
    for (size_t i = 0; rc == 0 && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char stream[128];
        snprintf(stream, sizeof(stream), "KV_aether_%s_%s", o->cluster, suffixes[i]);
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        uint64_t t0 = probe_mono_us();
        for (;;) { /* bounded: timeout_ms; a stream may have no leader for a while */
            s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
            if ((s == NATS_OK && si->Cluster != NULL && si->Cluster->Leader != NULL) || probe_stop ||
                probe_mono_us() - t0 >= o->timeout_ms * 1000u)
                break;
            jsStreamInfo_Destroy(si);
            si = NULL;
            probe_sleep_ms(PROBE_RETRY_MS);
        }
        if (s != NATS_OK || si == NULL) {
            fprintf(stderr, "nats_probe: stream %s: %s (%d)\n", stream, natsStatus_GetText(s), (int)jerr);
            rc = 1;
            break;
        }
        printf("stream %s leader=%s replicas=", stream,
               si->Cluster != NULL && si->Cluster->Leader != NULL ? si->Cluster->Leader : "-");
        for (int r = 0; si->Cluster != NULL && r < si->Cluster->ReplicasLen; r++)
            printf("%s%s%s", r ? "," : "", si->Cluster->Replicas[r]->Name,
                   si->Cluster->Replicas[r]->Current ? "" : "(behind)");
        printf(" messages=%" PRIu64 "\n", si->State.Msgs);
        jsStreamInfo_Destroy(si);
    }
    jsCtx_Destroy(js);
    return rc;
}

/* ---- watch ---------------------------------------------------------------- */

static void probe_print_msg(const char *prefix, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *tail = strncmp(subject, prefix, strlen(prefix)) == 0 ? subject + strlen(prefix) : subject;
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    uint64_t now = probe_mono_us();
    if (strcmp(tail, "map") == 0) { /* ShardMap format 2 (binary, docs/wire.md) */
        aether_shardmap *m = NULL;
        aether_err err = {0};
        if (aether_shardmap_codec_decode(data, len, &m, NULL, &err) == AETHER_OK) {
            printf("%" PRIu64 " map map version=%llu term=%llu\n", now,
                   (unsigned long long)m->version, (unsigned long long)m->term);
            aether_shardmap_destroy(m);
        } else {
            printf("%" PRIu64 " map undecodable bytes=%zu\n", now, len);
        }
        return;
    }
    json_t *root = NULL;
    if (len <= PROBE_DATA_MAX) {
        json_error_t je;
        root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    }
    if (root != NULL && json_is_object(root) && json_is_string(json_object_get(root, "type")) &&
               json_is_string(json_object_get(root, "node")) &&
               json_is_integer(json_object_get(root, "term"))) {
        /* Printed as %.64s: a forged type or node cannot forge a log line. */
        char type[65], node[65];
        snprintf(type, sizeof(type), "%s", json_string_value(json_object_get(root, "type")));
        snprintf(node, sizeof(node), "%s", json_string_value(json_object_get(root, "node")));
        for (char *p = type; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                *p = '?';
        for (char *p = node; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                *p = '?';
        printf("%" PRIu64 " %.64s %s node=%s term=%lld seq=%lld\n", now, tail, type, node,
               (long long)json_integer_value(json_object_get(root, "term")),
               (long long)json_integer_value(json_object_get(root, "seq")));
    } else {
        printf("%" PRIu64 " %.64s undecodable bytes=%zu\n", now, tail, len);
    }
    json_decref(root);
}

static int probe_watch(const probe_opts *o, natsConnection *nc)
{
    char subject[128], prefix[128];
    snprintf(prefix, sizeof(prefix), "aether.%s.", o->cluster);
    snprintf(subject, sizeof(subject), "aether.%s.>", o->cluster);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sub, nc, subject);
    if (s == NATS_OK) /* never drop: a burst of forged messages must all be seen */
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 2000);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_probe: subscribe %s: %s\n", subject, natsStatus_GetText(s));
        natsSubscription_Destroy(sub);
        return 1;
    }
    printf("watching %s\n", subject);
    fflush(stdout);
    uint64_t t0 = probe_mono_us();
    while (!probe_stop && probe_mono_us() - t0 < o->duration_s * 1000000u) { /* bounded */
        natsMsg *msg = NULL;
        s = natsSubscription_NextMsg(&msg, sub, PROBE_POLL_MS);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            /* Disconnected (a server restart): the subscription resumes on
             * reconnect; wait a slice instead of spinning. */
            probe_sleep_ms(PROBE_POLL_MS);
            continue;
        }
        probe_print_msg(prefix, msg);
        natsMsg_Destroy(msg);
        fflush(stdout);
    }
    natsSubscription_Destroy(sub);
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

static int probe_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_NATS = 256, O_CLUSTER, O_TIMEOUT, O_TTL, O_REPLICAS, O_DURATION, O_USER, O_PASSWORD, O_TOKEN };
    static const struct option longopts[] = {
        {"nats", required_argument, NULL, O_NATS},         {"cluster", required_argument, NULL, O_CLUSTER},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT}, {"ttl-ms", required_argument, NULL, O_TTL},
        {"replicas", required_argument, NULL, O_REPLICAS}, {"duration", required_argument, NULL, O_DURATION},
        {"user", required_argument, NULL, O_USER},         {"password", required_argument, NULL, O_PASSWORD},
        {"token", required_argument, NULL, O_TOKEN},       {NULL, 0, NULL, 0},
    };
    probe_opts o = {.timeout_ms = PROBE_TIMEOUT_MS_DEFAULT, .ttl_ms = 1000, .replicas = 1,
                    .duration_s = PROBE_DURATION_S_DEFAULT};
    opterr = 0;
    for (int guard = 0; guard <= argc; guard++) { /* bounded: one option per argument */
        int c = getopt_long(argc, argv, "+", longopts, NULL);
        if (c == -1)
            break;
        uint64_t v = 0;
        switch (c) {
        case O_NATS: o.urls = optarg; break;
        case O_CLUSTER: o.cluster = optarg; break;
        case O_USER: o.user = optarg; break;
        case O_PASSWORD: o.password = optarg; break;
        case O_TOKEN: o.token = optarg; break;
        case O_TIMEOUT:
            if (probe_u64(optarg, 1, 600000, &o.timeout_ms) != 0)
                return probe_usage("--timeout-ms wants 1..600000");
            break;
        case O_TTL:
            if (probe_u64(optarg, 1, 3600000, &o.ttl_ms) != 0)
                return probe_usage("--ttl-ms wants 1..3600000");
            break;
        case O_DURATION:
            if (probe_u64(optarg, 1, 3600, &o.duration_s) != 0)
                return probe_usage("--duration wants 1..3600 seconds");
            break;
        case O_REPLICAS:
            if (probe_u64(optarg, 1, 3, &v) != 0 || v == 2)
                return probe_usage("--replicas wants 1 or 3");
            o.replicas = (uint32_t)v;
            break;
        default: return probe_usage("unknown option or missing value");
        }
    }
    if (o.urls == NULL || o.cluster == NULL || optind >= argc)
        return probe_usage("--nats, --cluster and one command are required");
    o.command = argv[optind];
    o.args = argv + optind + 1;
    o.n_args = argc - optind - 1;
    if (o.n_args > 0 && strcmp(o.command, "settled") != 0)
        return probe_usage("only settled takes arguments");
    if (strcmp(o.command, "map") != 0 && strcmp(o.command, "lease") != 0 &&
        strcmp(o.command, "settled") != 0 &&
        strcmp(o.command, "watch") != 0 && strcmp(o.command, "buckets") != 0 &&
        strcmp(o.command, "streams") != 0 && strcmp(o.command, "delete-lease") != 0 &&
        strcmp(o.command, "delete-state") != 0)
        return probe_usage("unknown command");

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = probe_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    natsConnection *nc = probe_connect(&o);
    int rc = 1;
    if (nc != NULL) {
        if (strcmp(o.command, "map") == 0)
            rc = probe_map(&o, nc);
        else if (strcmp(o.command, "settled") == 0)
            rc = probe_settled(&o, nc);
        else if (strcmp(o.command, "lease") == 0)
            rc = probe_lease(&o, nc);
        else if (strcmp(o.command, "watch") == 0)
            rc = probe_watch(&o, nc);
        else if (strcmp(o.command, "streams") == 0)
            rc = probe_streams(&o, nc);
        else if (strcmp(o.command, "delete-lease") == 0)
            rc = probe_delete(&o, nc, "lease");
        else if (strcmp(o.command, "delete-state") == 0)
            rc = probe_delete(&o, nc, "state");
        else
            rc = probe_buckets(&o, nc);
        natsConnection_Destroy(nc);
    }
    nats_CloseAndWait(2000);
    return rc;
}
