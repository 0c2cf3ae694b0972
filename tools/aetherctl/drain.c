/* SPDX-License-Identifier: Apache-2.0 */
/*
 * drain.c: the commands that ask the leader to change the cluster: drain,
 * rebalance, fail (ctl_ask_leader). Single-threaded.
 */
#include "ctl.h"

/* ---- asking the leader -------------------------------------------------------
 * The commands that change the cluster (drain, rebalance) send one command
 * to the leader on aether.<cluster>.cmd.<Command> (request/reply, the
 * codec's envelope) and retry with backoff (50 ms doubling to 1 s) while no
 * leader answers - no responders, a node that is not the leader, a busy
 * leader - until the connection's deadline. */

#define DRAIN_BACKOFF_MS_FIRST 50u
#define DRAIN_BACKOFF_MS_MAX 1000u
#define DRAIN_POLL_MS 100u

/* Statuses after which asking again may succeed: nobody leads right now, or
 * the one that answered is not (or no longer) the leader, or it is busy. */
static bool drain_retryable(aether_status st)
{
    return st == AETHER_ENOTLEADER || st == AETHER_EFULL || st == AETHER_ECLOSED ||
           st == AETHER_EUNAVAILABLE || st == AETHER_ETIMEOUT || st == AETHER_EUNKNOWN;
}

typedef struct ctl_answer {
    bool accepted;      /* the leader said OK (else: rejected, with status and reason) */
    aether_status status;
    char reason[AETHER_CODEC_REPLY_REASON_MAX + 1];
    unsigned attempts;
} ctl_answer;

/* Sends cmd (cluster and sender filled here) until a leader gives a verdict.
 * 0 with *ans filled; EXIT_USAGE if cmd does not encode; EXIT_FAILED when
 * interrupted, EXIT_NO_CLUSTER when no leader answered before the deadline
 * (both said on stderr, naming `what`). */
static int ctl_ask_leader(ctl_conn *cc, aether_command *cmd, const char *what, ctl_answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    snprintf(cmd->cluster, sizeof(cmd->cluster), "%s", cc->cluster);
    (void)aether_node_id_from_cstr(CTL_SELF_ID, &cmd->sender, NULL);
    aether_err err = {0};
    char *body = NULL;
    size_t body_len = 0;
    if (aether_codec_encode_command(cmd, (uint64_t)(ctl_wall_ns() / 1000000), &body, &body_len,
                                    &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s: %s\n", what, err.msg);
        return EXIT_USAGE;
    }
    char subject[CTL_BUCKET_MAX + 32];
    snprintf(subject, sizeof(subject), "aether.%s.cmd.%s", cc->cluster,
             aether_command_type_name(cmd->type));
    bool verdict = false;
    char last_why[AETHER_CODEC_REPLY_REASON_MAX + 64] = "nothing sent";
    uint64_t backoff = DRAIN_BACKOFF_MS_FIRST;
    while (!g_ctl_stop) { /* bounded: the deadline */
        uint64_t left = ctl_remaining_ms(cc);
        if (left == 0)
            break;
        uint64_t per = cc->s.nats.request_timeout_ms < left ? cc->s.nats.request_timeout_ms : left;
        natsMsg *reply = NULL;
        natsStatus ns;
        if (g_ctl_auth == NULL) {
            ns = natsConnection_Request(&reply, cc->nc, subject, body, (int)body_len, (int64_t)per);
        } else {
            /* Sealed afresh for every attempt: a leader admits a counter once. */
            char tag[AETHER_AUTH_TAG_MAX];
            natsMsg *req = NULL;
            (void)aether_auth_seal(&cc->sealer, subject, body, body_len, (uint64_t)(ctl_wall_ns() / 1000000), tag,
                                   sizeof(tag));
            ns = natsMsg_Create(&req, subject, NULL, body, (int)body_len);
            if (ns == NATS_OK)
                ns = natsMsgHeader_Set(req, AETHER_AUTH_HEADER, tag);
            if (ns == NATS_OK)
                ns = natsConnection_RequestMsg(&reply, cc->nc, req, (int64_t)per);
            natsMsg_Destroy(req);
            if (ns == NATS_OK && !ctl_authentic(reply, (uint64_t)(ctl_wall_ns() / 1000000))) {
                natsMsg_Destroy(reply);
                reply = NULL;
                ns = NATS_TIMEOUT; /* a forged reply is no reply */
            }
        }
        ans->attempts++;
        if (ns == NATS_OK) {
            aether_codec_msg m;
            aether_err derr = {0};
            if (aether_codec_decode(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                                    NULL, &m, &derr) != AETHER_OK ||
                m.kind != AETHER_CODEC_REPLY) {
                if (derr.msg[0] == '\0')
                    snprintf(derr.msg, sizeof(derr.msg), "not a Reply");
                snprintf(last_why, sizeof(last_why), "unreadable reply: %s", derr.msg);
                aether_codec_msg_fini(&m);
            } else {
                ans->status = m.u.reply.status;
                snprintf(ans->reason, sizeof(ans->reason), "%s", m.u.reply.reason);
                aether_codec_msg_fini(&m);
                if (ans->status == AETHER_OK || !drain_retryable(ans->status)) {
                    ans->accepted = ans->status == AETHER_OK;
                    verdict = true;
                } else {
                    snprintf(last_why, sizeof(last_why), "%s: %s", aether_status_str(ans->status),
                             ans->reason);
                }
            }
            natsMsg_Destroy(reply);
            if (verdict)
                break;
        } else if (ctl_refused(cc, last_why, sizeof(last_why))) {
            break; /* the publish was refused: no retry can pass */
        } else if (ns == NATS_NO_RESPONDERS) {
            snprintf(last_why, sizeof(last_why), "no responders (no leader is serving commands)");
        } else if (ns == NATS_TIMEOUT) {
            snprintf(last_why, sizeof(last_why), "no reply within %" PRIu64 " ms", per);
        } else {
            snprintf(last_why, sizeof(last_why), "%s", natsStatus_GetText(ns));
        }
        left = ctl_remaining_ms(cc);
        ctl_sleep_ms(backoff < left ? backoff : left);
        backoff = backoff * 2 > DRAIN_BACKOFF_MS_MAX ? DRAIN_BACKOFF_MS_MAX : backoff * 2;
    }
    free(body);
    if (verdict)
        return 0;
    if (g_ctl_stop) {
        fprintf(stderr, "aetherctl: %s: interrupted (%u attempts; last: %s)\n", what, ans->attempts,
                last_why);
        return EXIT_FAILED;
    }
    char refused[300];
    if (ctl_refused(cc, refused, sizeof(refused)))
        return ctl_say_refused(cc, what, refused);
    return ctl_no_cluster(cc, "no leader answered %s within %" PRIu64 " ms (%u attempts; last: %s)",
                          subject, cc->timeout_ms, ans->attempts, last_why);
}

/* ---- drain ----------------------------------------------------------------- */

/* The node's status in the stored topology (0 and *found, or 1/3) and the
 * shards (any role) the stored map still gives it (*shards, -1 unknown). */
static int drain_node_status(ctl_conn *cc, const aether_node_id *node, aether_node_status *out,
                             bool *found, int64_t *shards)
{
    aether_kv_entry e;
    bool have = false;
    *found = false;
    *shards = -1;
    /* Values of another generation than the bucket's are not looked at
     * (ctl_read): the bucket's generation first. */
    uint64_t bucket_gen = 0, gen = 0;
    int rc = ctl_state_get(cc, CTL_STATE_KEY_GENERATION, &e, &have);
    if (rc != 0)
        return rc;
    if (have) {
        if (!aether_lease_generation_parse((const char *)e.value, e.value_len, &bucket_gen))
            bucket_gen = 0;
        aether_kv_entry_fini(&e);
    }
    rc = ctl_state_get(cc, CTL_STATE_KEY_MAP, &e, &have);
    if (rc != 0)
        return rc;
    if (have) {
        aether_shardmap *map = NULL;
        if (aether_shardmap_codec_decode((const char *)e.value, e.value_len, &map, &gen, NULL) ==
                AETHER_OK &&
            (gen == 0 || gen == bucket_gen)) {
            aether_node_index idx = aether_shardmap_find_node(map, node);
            size_t owned = 0;
            if (idx != AETHER_NODE_INDEX_NONE)
                (void)aether_shardmap_node_owner_shards(map, idx, &owned);
            *shards = (int64_t)owned;
        }
        aether_shardmap_destroy(map); /* NULL when not decoded */
        aether_kv_entry_fini(&e);
    }
    rc = ctl_state_get(cc, CTL_STATE_KEY_TOPOLOGY, &e, &have);
    if (rc != 0 || !have)
        return rc;
    aether_node_id self;
    (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
    aether_topology t;
    if (aether_topology_init(&t, &self) != AETHER_OK) {
        aether_kv_entry_fini(&e);
        return EXIT_FAILED;
    }
    aether_err err = {0};
    if (aether_topology_json_decode_gen((const char *)e.value, e.value_len, &t, &gen, &err) ==
            AETHER_OK &&
        (gen == 0 || gen == bucket_gen)) {
        const aether_node_info *info = aether_topology_find(&t, node);
        if (info != NULL) {
            *found = true;
            *out = info->status;
        }
    }
    aether_topology_fini(&t);
    aether_kv_entry_fini(&e);
    return 0;
}

/* Connects (CTL_DRAIN_TIMEOUT_MS_DEFAULT unless --timeout) and reads the
 * lease: 0 with cc open and v holding it, or the exit status with nothing
 * left open. No state bucket means no such cluster: said now rather than
 * retried. */
static int drain_connect_lease(const ctl_opts *o, ctl_conn *cc, ctl_view *v)
{
    int rc = ctl_connect(o, CTL_DRAIN_TIMEOUT_MS_DEFAULT, cc);
    if (rc != 0)
        return rc;
    memset(v, 0, sizeof(*v));
    if ((rc = ctl_bind_state(cc)) != 0 || (rc = ctl_read_lease(cc, v)) != 0)
        ctl_close(cc);
    return rc;
}

int cmd_drain(int argc, char **argv)
{
    const command *self = ctl_find_command("drain");
    static const struct option opts[] = {
        {"wait", no_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    bool wait = false;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "w", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 'w': wait = true; break;
        }
    }
    if (!ctl_parser_end(&p, c, "NODE"))
        return p.exit_status;
    aether_node_id node;
    aether_err err = {0};
    if (aether_node_id_from_cstr(argv[optind], &node, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: NODE: %s\n", err.msg);
        return EXIT_USAGE;
    }

    ctl_conn cc;
    ctl_view v;
    int rc = drain_connect_lease(&o, &cc, &v);
    if (rc != 0)
        return rc;
    uint64_t t0 = ctl_mono_ms();
    /* Copied: v is re-read below when a wait ends badly. */
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    aether_node_id lease_leader = v.lease.leader;
    aether_term lease_term = v.lease.term;

    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_LEAVE_CLUSTER;
    /* The highest term we know: a deposed leader that still answers refuses
     * it as newer than its own, and we ask again. */
    cmd.term = lease_known ? lease_term : AETHER_TERM_NONE;
    cmd.data.leave.node = node;
    ctl_answer ans;
    char what[AETHER_NODE_ID_LEN_MAX + 8];
    snprintf(what, sizeof(what), "drain %s", node.str);
    if ((rc = ctl_ask_leader(&cc, &cmd, what, &ans)) != 0) {
        ctl_close(&cc);
        return rc;
    }
    unsigned attempts = ans.attempts;
    aether_status reply_status = ans.status;
    const char *reason = ans.reason;
    enum { VERDICT_ACCEPTED, VERDICT_REJECTED } verdict = ans.accepted ? VERDICT_ACCEPTED
                                                                       : VERDICT_REJECTED;

    /* Optionally wait for Left. */
    bool waited = false;
    aether_node_status final_status = AETHER_NODE_DRAINING;
    bool final_known = false;
    uint64_t wait_ms = 0;
    const char *wait_failure = NULL;
    if (verdict == VERDICT_ACCEPTED && wait) {
        waited = true;
        /* Progress, in text mode: the shards the stored map still gives the
         * node, each time that count changes. */
        int64_t shown = -1;
        while (rc == 0) { /* bounded: the deadline */
            bool found = false;
            aether_node_status st = AETHER_NODE_DRAINING;
            int64_t on_node = -1;
            rc = drain_node_status(&cc, &node, &st, &found, &on_node);
            if (rc != 0)
                break;
            if (found) {
                final_known = true;
                final_status = st;
            } else if (final_known && final_status == AETHER_NODE_DRAINING) {
                /* Seen draining, now gone: left and already forgotten
                 * (node_retention_ms shorter than our polls). */
                final_status = AETHER_NODE_LEFT;
                break;
            }
            if (!o.json && on_node >= 0 && on_node != shown && !(found && st == AETHER_NODE_LEFT)) {
                printf("drain %s: %" PRId64 " shard%s left\n", node.str, on_node, on_node == 1 ? "" : "s");
                fflush(stdout);
                shown = on_node;
            }
            if (found && (st == AETHER_NODE_LEFT || st == AETHER_NODE_FAILED))
                break;
            if (g_ctl_stop) {
                wait_failure = "interrupted";
                break;
            }
            uint64_t left = ctl_remaining_ms(&cc);
            if (left == 0) {
                wait_failure = "timed out";
                break;
            }
            ctl_sleep_ms(DRAIN_POLL_MS < left ? DRAIN_POLL_MS : left);
        }
        wait_ms = ctl_mono_ms() - t0;
        if (rc == 0 && wait_failure == NULL && final_status == AETHER_NODE_FAILED)
            wait_failure = "failed while draining";
    }
    if (rc != 0) {
        ctl_close(&cc);
        return rc;
    }
    /* What is left on the node, for a wait that did not end well. */
    uint32_t shards_left = 0;
    bool have_left = false;
    if (wait_failure != NULL) {
        ctl_view_fini(&v);
        if (ctl_read(&cc, &v, false) == 0 && v.map != NULL) {
            aether_node_index idx = aether_shardmap_find_node(v.map, &node);
            size_t slots = 0;
            if (idx != AETHER_NODE_INDEX_NONE)
                (void)aether_shardmap_node_owner_shards(v.map, idx, &slots);
            shards_left = (uint32_t)slots;
            have_left = true;
        }
    }

    if (o.json) {
        json_t *doc = json_object();
        ctl_jset(doc, "cluster", json_string(cc.cluster));
        ctl_jset(doc, "node", json_string(node.str));
        ctl_jset(doc, "verdict", json_string(verdict == VERDICT_ACCEPTED ? "accepted" : "rejected"));
        ctl_jset(doc, "status", json_string(aether_status_str(reply_status)));
        ctl_jset(doc, "reason", json_string(reason));
        ctl_jset(doc, "attempts", ctl_jint(attempts));
        ctl_jset(doc, "leader", lease_known ? json_string(lease_leader.str) : json_null());
        ctl_jset(doc, "term", lease_known ? ctl_jint(lease_term) : json_null());
        if (waited) {
            json_t *wj = json_object();
            ctl_jset(wj, "final_status",
                 final_known ? json_string(aether_node_status_name(final_status)) : json_null());
            ctl_jset(wj, "waited_ms", ctl_jint(wait_ms));
            ctl_jset(wj, "ok", json_boolean(wait_failure == NULL));
            ctl_jset(wj, "failure", wait_failure ? json_string(wait_failure) : json_null());
            if (have_left)
                ctl_jset(wj, "shards_left", ctl_jint(shards_left));
            ctl_jset(doc, "wait", wj);
        } else {
            ctl_jset(doc, "wait", json_null());
        }
        (void)ctl_emit_json(doc);
    } else if (verdict == VERDICT_ACCEPTED) {
        printf("drain %s: accepted by the leader", node.str);
        if (lease_known)
            printf(" (%s, term %" PRIu64 ")", lease_leader.str, (uint64_t)lease_term);
        printf("; %s is draining\n", node.str);
        if (waited && wait_failure == NULL)
            printf("%s is left after %" PRIu64 " ms\n", node.str, wait_ms);
    } else {
        printf("drain %s: rejected by the leader: %s%s%s\n", node.str,
               aether_status_str(reply_status), reason[0] ? ": " : "", reason);
    }
    if (verdict == VERDICT_REJECTED) {
        rc = EXIT_FAILED;
    } else if (wait_failure != NULL) {
        fprintf(stderr, "aetherctl: drain %s: %s after %" PRIu64 " ms: status %s", node.str,
                wait_failure, wait_ms,
                final_known ? aether_node_status_name(final_status) : "unknown");
        if (have_left)
            fprintf(stderr, ", %u shards still on it", shards_left);
        fprintf(stderr, "\n");
        rc = EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- rebalance ---------------------------------------------------------------- */

/* $USER@HOST, in the reason's alphabet (printable ASCII), for the leader's
 * record of who released the brake. */
static void rebalance_default_reason(char *out, size_t cap)
{
    const char *user = getenv("USER");
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    snprintf(out, cap, "%s@%s", user != NULL && user[0] != '\0' ? user : "operator",
             host[0] != '\0' ? host : "?");
    for (char *p = out; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
}

int cmd_rebalance(int argc, char **argv)
{
    const command *self = ctl_find_command("rebalance");
    enum { OPT_REASON = 1000 };
    static const struct option opts[] = {
        {"release-brake", no_argument, NULL, 'r'},
        {"reason", required_argument, NULL, OPT_REASON},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    bool release = false;
    const char *reason_arg = NULL;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "r", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 'r': release = true; break;
        case OPT_REASON: reason_arg = optarg; break;
        }
    }
    if (!ctl_parser_end(&p, c, NULL))
        return p.exit_status;
    char reason[AETHER_REASON_MAX + 1];
    if (reason_arg != NULL) {
        size_t len = strlen(reason_arg);
        bool printable = len > 0 && len <= AETHER_REASON_MAX;
        for (size_t i = 0; i < len && printable; i++)
            printable = reason_arg[i] >= 0x20 && reason_arg[i] <= 0x7e;
        if (!printable)
            return ctl_usage_error(self, "--reason: '%s' is not 1..63 printable bytes", reason_arg);
        snprintf(reason, sizeof(reason), "%s", reason_arg);
    } else if (release) {
        rebalance_default_reason(reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "operator");
    }

    ctl_conn cc;
    ctl_view v;
    int rc = drain_connect_lease(&o, &cc, &v);
    if (rc != 0)
        return rc;
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_REBALANCE_SHARDS;
    cmd.term = lease_known ? v.lease.term : AETHER_TERM_NONE;
    aether_event_set_reason(cmd.data.rebalance.reason, reason);
    cmd.data.rebalance.release_brake = release;
    ctl_answer ans;
    rc = ctl_ask_leader(&cc, &cmd, "rebalance", &ans);
    if (rc == 0) {
        if (o.json) {
            json_t *doc = json_object();
            ctl_jset(doc, "cluster", json_string(cc.cluster));
            ctl_jset(doc, "release_brake", json_boolean(release));
            ctl_jset(doc, "reason", json_string(reason));
            ctl_jset(doc, "verdict", json_string(ans.accepted ? "accepted" : "rejected"));
            ctl_jset(doc, "status", json_string(aether_status_str(ans.status)));
            ctl_jset(doc, "reply", json_string(ans.reason));
            ctl_jset(doc, "attempts", ctl_jint(ans.attempts));
            ctl_jset(doc, "leader", lease_known ? json_string(v.lease.leader.str) : json_null());
            ctl_jset(doc, "term", lease_known ? ctl_jint(v.lease.term) : json_null());
            (void)ctl_emit_json(doc);
        } else if (ans.accepted) {
            printf("rebalance: %s by the leader", release ? "brake released" : "accepted");
            if (lease_known)
                printf(" (%s, term %" PRIu64 ")", v.lease.leader.str, (uint64_t)v.lease.term);
            if (release)
                printf("; a rebalance starts (RebalanceStarted reason 'brake released by operator'; "
                       "asked by %s)",
                       reason);
            printf("\n");
        } else {
            printf("rebalance: rejected by the leader: %s%s%s\n", aether_status_str(ans.status),
                   ans.reason[0] ? ": " : "", ans.reason);
        }
        if (!ans.accepted)
            rc = EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

/* ---- fail -------------------------------------------------------------------- */

int cmd_fail(int argc, char **argv)
{
    const command *self = ctl_find_command("fail");
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"incarnation", required_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    ctl_opts o = {0};
    bool force = false;
    uint64_t incarnation = 0;
    ctl_parser p;
    ctl_parser_init(&p, self, argc, argv, "f", opts, &o);
    int c;
    while ((c = ctl_parser_next(&p)) > 0) {
        switch (c) {
        case 'f': force = true; break;
        case 'I':
            if (ctl_parse_u64_in(optarg, 1, INT64_MAX, &incarnation) != 0)
                return ctl_usage_error(self, "--incarnation wants a positive integer below 2^63, not '%s'",
                                   optarg);
            break;
        }
    }
    if (!ctl_parser_end(&p, c, "NODE"))
        return p.exit_status;
    aether_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = AETHER_CMD_MARK_NODE_FAILED;
    cmd.data.mark_failed.force = force;
    aether_err err = {0};
    if (aether_node_id_from_cstr(argv[optind], &cmd.data.mark_failed.node, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: NODE: %s\n", err.msg);
        return EXIT_USAGE;
    }
    const aether_node_id *node = &cmd.data.mark_failed.node;
    ctl_conn cc;
    int rc = ctl_connect(&o, CTL_DRAIN_TIMEOUT_MS_DEFAULT, &cc);
    if (rc != 0)
        return rc;
    ctl_view v;
    memset(&v, 0, sizeof(v));
    if ((rc = ctl_read(&cc, &v, true)) != 0) {
        ctl_view_fini(&v);
        ctl_close(&cc);
        return rc;
    }
    bool lease_known = v.have_lease && !v.lease_malformed && v.lease.term != AETHER_TERM_NONE;
    cmd.term = lease_known ? v.lease.term : AETHER_TERM_NONE;
    /* The process we mean: every retry names it (issue 13). */
    const aether_node_info *seen = v.have_topo ? aether_topology_find(&v.topo, node) : NULL;
    cmd.data.mark_failed.incarnation = incarnation != 0 ? incarnation : seen != NULL ? seen->incarnation : 0;
    char what[AETHER_NODE_ID_LEN_MAX + 8];
    snprintf(what, sizeof(what), "fail %s", node->str);
    ctl_answer ans;
    rc = ctl_ask_leader(&cc, &cmd, what, &ans);
    if (rc == 0) {
        if (o.json) {
            json_t *doc = json_object();
            ctl_jset(doc, "cluster", json_string(cc.cluster));
            ctl_jset(doc, "node", json_string(node->str));
            ctl_jset(doc, "force", json_boolean(force));
            ctl_jset(doc, "incarnation", cmd.data.mark_failed.incarnation != 0
                                         ? ctl_jint(cmd.data.mark_failed.incarnation) : json_null());
            ctl_jset(doc, "verdict", json_string(ans.accepted ? "accepted" : "rejected"));
            ctl_jset(doc, "status", json_string(aether_status_str(ans.status)));
            ctl_jset(doc, "reason", json_string(ans.reason));
            ctl_jset(doc, "attempts", ctl_jint(ans.attempts));
            (void)ctl_emit_json(doc);
        } else if (ans.accepted) {
            /* A forced fail of a node the leader still hears is decided
             * once it has been silent failure_timeout_ms: the reason says so. */
            printf("fail %s: accepted by the leader%s; %s (incarnation %llu) is %s\n", node->str,
                   force ? " (forced)" : "", node->str,
                   (unsigned long long)cmd.data.mark_failed.incarnation,
                   ans.reason[0] ? ans.reason : "failed");
        } else {
            printf("fail %s: rejected by the leader: %s%s%s\n", node->str,
                   aether_status_str(ans.status), ans.reason[0] ? ": " : "", ans.reason);
        }
        rc = ans.accepted ? 0 : EXIT_FAILED;
    }
    ctl_view_fini(&v);
    ctl_close(&cc);
    return rc;
}

