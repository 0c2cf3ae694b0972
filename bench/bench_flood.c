/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_flood.c: `aether-bench flood`, a flood of commands against a real
 * cluster (bench layer; issue 13 item 3: floods do not fence anyone).
 *
 * Setup: pcluster.h (one nats-server -js, --nodes aether-node --trace
 * processes, default settings), settled. Each of --runs runs, two cases:
 *  - baseline "echo": FLOOD_REQUESTS requests, unpaced, on a subject served
 *    by a plain nats.c responder in this process (its own connection, an
 *    async subscription with nats.c's default pending limits, replying at
 *    once): what any NATS responder on this machine answers of such a
 *    flood;
 *  - "LeaveCluster": the same flood on aether.<cluster>.cmd.LeaveCluster
 *    for a ghost id, served by the leader.
 * Each request carries a reply subject in one inbox; replies are counted
 * until all came or FLOOD_WAIT_MS after the last was flushed. After the
 * Aether case the bench pumps the nodes' traces for FLOOD_AFTER_MS and
 * counts what the flood must not cause: LEADER lines (leader changes),
 * MAP lines (map changes), and "fenced" lines in the nodes' stderr.
 * Rows (medians over the runs): answered (% of requests) and replies/s,
 * each against the echo baseline; busy (% answered EFULL); and the counts
 * of leader changes, map changes and fenced lines (0 is the target).
 *
 * Exit status: 0 when every run ran, 1 when the cluster could not be set
 * up or a run could not flood (the reason on stderr).
 *
 * Threading: main thread; nats.c's threads deliver to the echo responder.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "aether_internal.h"
#include "bench.h"
#include "pcluster.h"
#include "report.h"

#define FLOOD_REQUESTS 100000u
#define FLOOD_WAIT_MS 3000u
#define FLOOD_AFTER_MS 1500u
#define FLOOD_GHOST "ghost"
#define FLOOD_ECHO_SUBJECT "aether-bench.flood.echo"

typedef struct flood_result {
    double answered_pct, replies_per_s, busy_pct;
} flood_result;

static void echo_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL)
        (void)natsConnection_PublishString(nc, reply, "ok");
    natsMsg_Destroy(msg);
}

/* FLOOD_REQUESTS requests of body on subject, then the replies. */
static bool flood_once(natsConnection *nc, const char *subject, const char *body, size_t len,
                       flood_result *out)
{
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    natsStatus s = natsInbox_Create(&inbox);
    char wild[160] = "";
    if (s == NATS_OK) {
        snprintf(wild, sizeof(wild), "%s.*", (const char *)inbox);
        s = natsConnection_SubscribeSync(&sub, nc, wild);
    }
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 2000);
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < FLOOD_REQUESTS && s == NATS_OK; i++) { /* bounded: FLOOD_REQUESTS */
        char reply[192];
        snprintf(reply, sizeof(reply), "%s.%u", (const char *)inbox, i);
        s = natsConnection_PublishRequest(nc, subject, reply, body, (int)len);
    }
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 10000);
    uint64_t until = bench_now_ns() + (uint64_t)FLOOD_WAIT_MS * 1000000u;
    uint32_t replies = 0, busy = 0;
    uint64_t last_ns = t0;
    while (s == NATS_OK && replies < FLOOD_REQUESTS) { /* bounded: until */
        uint64_t now = bench_now_ns();
        if (now >= until)
            break;
        natsMsg *msg = NULL;
        if (natsSubscription_NextMsg(&msg, sub, (int64_t)((until - now) / 1000000u) + 1) != NATS_OK)
            break;
        last_ns = bench_now_ns();
        replies++;
        aether_codec_msg m;
        if (aether_codec_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), NULL, &m,
                                NULL) == AETHER_OK) {
            busy += m.kind == AETHER_CODEC_REPLY && m.u.reply.status == AETHER_EFULL;
            aether_codec_msg_fini(&m);
        }
        natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    if (s != NATS_OK) {
        fprintf(stderr, "aether-bench: flood on %s: %s\n", subject, natsStatus_GetText(s));
        return false;
    }
    double secs = (double)(last_ns - t0) / 1e9;
    out->answered_pct = 100.0 * replies / FLOOD_REQUESTS;
    out->replies_per_s = secs > 0 ? replies / secs : 0;
    out->busy_pct = 100.0 * busy / FLOOD_REQUESTS;
    return true;
}

/* The "fenced" lines in every node's stderr log past offsets[i] (updated). */
static unsigned fenced_lines(const pcluster *c, long *offsets)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) { /* bounded: the nodes */
        char path[PCL_PATH_MAX + PCL_ID_MAX + 8];
        snprintf(path, sizeof(path), "%s/%s.err", c->dir, c->nodes[i].id);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fseek(f, offsets[i], SEEK_SET) == 0) {
            char line[PCL_LINE_MAX];
            while (fgets(line, sizeof(line), f) != NULL) /* bounded: the file */
                n += strstr(line, "fenced") != NULL;
        }
        offsets[i] = ftell(f);
        fclose(f);
    }
    return n;
}

/* The kept MAP and LEADER records since index from. */
static void count_changes(const pcluster *c, size_t from, double *maps, double *leaders)
{
    *maps = *leaders = 0;
    for (size_t i = from; i < c->n_recs; i++) { /* bounded: the records */
        *maps += c->recs[i].kind == PCL_MAP;
        *leaders += c->recs[i].kind == PCL_LEADER;
    }
}

int bench_flood_main(const bench_opts *oin)
{
    bench_opts o = *oin;
    o.processes = true;
    unsigned runs = o.runs;
    aether_config def;
    aether_config_defaults(&def);
    pcluster *c = calloc(1, sizeof(*c));
    double *v = calloc((size_t)runs * 8u, sizeof(double));
    natsConnection *client = NULL, *echo_conn = NULL;
    natsSubscription *echo = NULL;
    int rc = 1;
    unsigned done = 0;
    if (c == NULL || v == NULL || !pcl_setup(c, "flood", def.shard_count, 0))
        goto out;
    bench_report_machine(&o);
    if (!pcl_bootstrap(c, o.nodes, "n"))
        goto out;
    natsStatus s = natsConnection_ConnectTo(&client, c->url);
    if (s == NATS_OK)
        s = natsConnection_ConnectTo(&echo_conn, c->url);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&echo, echo_conn, FLOOD_ECHO_SUBJECT, echo_reply, NULL);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(echo_conn, 2000);
    if (s != NATS_OK) {
        fprintf(stderr, "aether-bench: flood: connect to %s: %s\n", c->url, natsStatus_GetText(s));
        goto out;
    }
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_LEAVE_CLUSTER;
    snprintf(cmd.cluster, sizeof(cmd.cluster), "%s", c->cluster);
    (void)aether_node_id_from_cstr("aether-bench", &cmd.sender, NULL);
    (void)aether_node_id_from_cstr(FLOOD_GHOST, &cmd.data.leave.node, NULL);
    char *body = NULL;
    size_t len = 0;
    if (aether_codec_encode_command(&cmd, 1, &body, &len, NULL) != AETHER_OK)
        goto out;
    char subject[128];
    snprintf(subject, sizeof(subject), "aether.%s.cmd.LeaveCluster", c->cluster);
    if (!o.json)
        fprintf(stderr, "aether-bench flood: nats-server at %s, %u nodes, %u runs of %u requests\n", c->url,
                o.nodes, runs, FLOOD_REQUESTS);
    long offsets[PCL_NODES_MAX] = {0};
    (void)fenced_lines(c, offsets);
    for (done = 0; done < runs && !pcl_interrupted(); done++) { /* bounded: runs */
        flood_result echo_r, aether_r;
        if (!flood_once(client, FLOOD_ECHO_SUBJECT, body, len, &echo_r))
            break;
        pcl_idle(c, 100);
        size_t from = c->n_recs;
        if (!flood_once(client, subject, body, len, &aether_r))
            break;
        pcl_idle(c, FLOOD_AFTER_MS);
        double *r = &v[(size_t)done * 8u];
        r[0] = echo_r.answered_pct;
        r[1] = echo_r.replies_per_s;
        r[2] = aether_r.answered_pct;
        r[3] = aether_r.replies_per_s;
        r[4] = aether_r.busy_pct;
        count_changes(c, from, &r[5], &r[6]);
        r[7] = fenced_lines(c, offsets);
    }
    free(body);
    if (done < runs) {
        fprintf(stderr, "aether-bench: flood: stopped after %u of %u runs\n", done, runs);
        goto out;
    }
    char note[256];
    snprintf(note, sizeof(note),
             "%u unpaced requests per run, replies counted for %u ms; %u aether-node processes, "
             "default settings; nats-server %s",
             FLOOD_REQUESTS, FLOOD_WAIT_MS, o.nodes, c->url);
    bench_report_begin(&o, "flood", note);
    static const char *const metric[8] = { "answered",      "replies/s",      "answered",
                                           "replies/s",     "busy",           "map changes",
                                           "leader changes", "fenced lines" };
    static const char *const unit[8] = { "%", "1/s", "%", "1/s", "%", "count", "count", "count" };
    bench_stats st[8];
    for (unsigned k = 0; k < 8; k++) { /* bounded: 8 */
        double col[BENCH_RUNS_MAX];
        for (unsigned i = 0; i < done; i++)
            col[i] = v[(size_t)i * 8u + k];
        st[k] = bench_stats_of(col, done);
    }
    bench_report_row(&o, "flood", "echo responder", metric[0], &st[0], unit[0], NULL, 0);
    bench_report_row(&o, "flood", "echo responder", metric[1], &st[1], unit[1], NULL, 0);
    bench_report_row(&o, "flood", "LeaveCluster", metric[2], &st[2], unit[2], "echo responder",
                     st[0].median);
    bench_report_row(&o, "flood", "LeaveCluster", metric[3], &st[3], unit[3], "echo responder",
                     st[1].median);
    for (unsigned k = 4; k < 8; k++) /* bounded: 8 */
        bench_report_row(&o, "flood", "LeaveCluster", metric[k], &st[k], unit[k], NULL, 0);
    rc = 0;
out:
    natsSubscription_Destroy(echo);
    natsConnection_Destroy(echo_conn);
    natsConnection_Destroy(client);
    if (c != NULL)
        pcl_teardown(c);
    free(c);
    free(v);
    return rc;
}
