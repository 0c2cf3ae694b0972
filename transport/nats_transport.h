/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_transport.h: the aether_transport interface (actors/transport.h) on
 * core NATS through nats.c 3.4.1 (transport layer).
 *
 * One endpoint per node, on a borrowed natsConnection (the caller owns it,
 * may share it with the KV stores, and destroys it only after
 * aether_transport_destroy). Subjects, all under "aether.<cluster>.":
 *   evt.<EventType>  events (aether_codec envelope), to every node, echo included
 *   map              ShardMap publications (map format 2, actors/shardmap_codec.h)
 *   hb.<node>        heartbeats (aether_codec "Heartbeat")
 *   cmd.<Command>    commands, request/reply to the node serving commands
 *   rel              ShardReleased acks to the node serving commands
 * Replies travel to "<inbox>.<request-id>" (one inbox subscription per
 * endpoint, made at bind) as an aether_codec "Reply".
 *
 * The endpoint is an actor (nats_transport.c, DESIGN): nats.c's callbacks
 * verify, decode and post to it; it alone holds the subscriptions, the
 * pending requests and their deadlines, the replay windows and the sink,
 * and it makes every publish and every sink and reply_fn call. It runs on a
 * one-worker pool executor of its own.
 *
 * Semantics beyond transport.h:
 *  - bind subscribes evt.>, map, hb.> and the reply inbox, then flushes, so
 *    when bind returns the subscriptions are known to the server (a peer's
 *    later publication reaches this sink).
 *  - serve_commands only records what is wanted and posts it to the actor
 *    (it is called from the member's handlers, which never wait): cmd.>,
 *    cmd.JoinCluster and rel are subscribed or unsubscribed moments later,
 *    the SUB/UNSUB reaching the server with nats.c's next flush. A caller
 *    that must know the server has them (tests) calls
 *    aether_nats_transport_sync. serve_commands(true) unbound: AETHER_ECLOSED.
 *  - Publications fail fast with AETHER_EUNAVAILABLE while the connection
 *    is not CONNECTED (reconnecting, closed, draining), and one queued
 *    while the connection drops is dropped by the actor, so nothing is
 *    buffered and sent late. AETHER_OK means queued for the actor;
 *    AETHER_EFULL means its mailbox was full (counted by the actor's
 *    mailbox, logged at most once a second). Errors of nats.c are mapped
 *    once (map_nats in nats_transport.c).
 *  - send_command is asynchronous: AETHER_OK means the request is accepted
 *    and reply_fn will be called exactly once: with the leader's reply, or
 *    AETHER_ENOTLEADER when nobody serves commands (NATS "no responders"),
 *    or AETHER_ETIMEOUT after cmd_timeout_ms (the actor checks deadlines on
 *    a timer every AETHER_NATS_TRANSPORT_SWEEP_MS), or AETHER_ECLOSED at
 *    unbind, or the mapped nats.c error if the request could not be sent.
 *    The request goes out as a publish with the reply subject
 *    <inbox>.<id>; no thread waits for it. With no_leader_retry, "no
 *    responders" (an election under way) is not final: the request is sent
 *    again after 10, 20, 40, ... (at most 200) ms, on the timer's ticks,
 *    until cmd_timeout_ms; if nobody has served commands by then, reply_fn
 *    gets AETHER_ENOTLEADER "no leader answered within T ms (N attempts)".
 *    A retried request may reach a leader that already got an earlier copy
 *    only if that copy was lost in flight, as a "no responders" answer
 *    means nobody received it. At most AETHER_NATS_TRANSPORT_PENDING_MAX
 *    requests are outstanding (more: AETHER_EFULL). Not bound:
 *    AETHER_ECLOSED, reply_fn not called.
 *  - send_release is a plain publish: AETHER_OK means queued, not received
 *    (the old owner re-sends while the map still asks for the release).
 *  - Malformed input is decoded strictly (aether_codec, cluster = ours) and
 *    dropped; refusals are counted in cfg->stats (if any) and logged there
 *    rate-limited. A map that fails shardmap_codec decoding is dropped,
 *    counted as bad_field in cfg->stats (shardmap_codec does not classify
 *    its refusals) and logged (WARN, at most one line per second).
 *  - With a cluster secret (cfg->sealer, transport/auth.h): every publish,
 *    request and reply carries the tag in the header AETHER_AUTH_HEADER
 *    (sealed over the subject it is sent on and the payload), and every
 *    message received is opened (on nats.c's thread) and admitted to the
 *    replay window of its subscription family (evt, map, hb, inbox, cmd,
 *    JoinCluster, rel; on the actor) before it reaches the sink: a tag
 *    missing, malformed, wrong, made more than AETHER_AUTH_SKEW_MS from this
 *    node's clock, or admitted before drops the message, counted as
 *    AETHER_CODEC_REJECT_UNAUTHENTICATED in cfg->stats and logged (WARN,
 *    at most one line per second, with the count suppressed). An
 *    unauthenticated command is answered AETHER_EPERM "unauthenticated"
 *    (so an operator's aetherctl without the secret hears why) and never
 *    reaches the sink; an unauthenticated reply is dropped (the request
 *    times out). The endpoint seals with one counter per subscription
 *    family it sends to (cfg->sealer's sender, key and epoch), so a
 *    receiver's window sees that family's counters only: a burst on one
 *    subject never pushes another subject's message out of the window's
 *    span. Without a sealer nothing changes: no header is sent and none is
 *    looked at.
 *  - unbind flushes its UNSUBs, so a request sent afterwards gets "no
 *    responders" (AETHER_ENOTLEADER) at once.
 *
 * Threading: publish_*, send_command, send_release and serve_commands from
 * any thread, never waiting. bind, unbind, destroy and
 * aether_nats_transport_sync wait for the actor (and a flush): call them
 * from a thread that is not running a sink callback or a reply_fn of this
 * endpoint (that thread is the actor's; it would wait for itself). Sink
 * callbacks and reply_fn calls run on the actor's thread, one at a time,
 * and only while bound: once unbind returns, none runs again. The
 * endpoint's memory is reference counted (each subscription, until nats.c
 * reports it complete, and each command reply not yet given hold one), so
 * a late handler or a late reply never touches freed memory; a reply given
 * after destroy is dropped (the requester times out).
 */
#ifndef AETHER_NATS_TRANSPORT_H
#define AETHER_NATS_TRANSPORT_H

#include <stdint.h>

#include <nats/nats.h>

#include "auth.h"
#include "codec.h"
#include "node_id.h"
#include "status.h"
#include "transport.h"

#define AETHER_NATS_TRANSPORT_TIMEOUT_MS_DEFAULT 1000u
#define AETHER_NATS_TRANSPORT_PENDING_MAX 256u
#define AETHER_NATS_TRANSPORT_SWEEP_MS 20u
/* bind / serve_commands wait at most this long for the server to confirm. */
#define AETHER_NATS_TRANSPORT_FLUSH_MS 1000u

typedef struct aether_nats_transport_config {
    natsConnection *conn;        /* borrowed; must outlive the endpoint */
    const char *cluster;         /* a valid cluster name; copied */
    aether_node_id node;         /* this node; copied */
    uint64_t cmd_timeout_ms;     /* 0 = AETHER_NATS_TRANSPORT_TIMEOUT_MS_DEFAULT */
    aether_codec_stats *stats;   /* NULL = refusals not counted; must outlive the endpoint */
    bool no_leader_retry;        /* see send_command: retry while nobody serves commands */
    aether_auth_sealer *sealer;  /* NULL = no cluster secret; borrowed, must outlive the
                                    endpoint (may be shared with the KV stores) */
} aether_nats_transport_config;

/* AETHER_EINVAL (bad config, explained in err), AETHER_ENOMEM. */
aether_status aether_nats_transport_create(const aether_nats_transport_config *cfg,
                                           aether_transport **out, aether_err *err);

/* Waits until the actor has handled everything posted before (a
 * serve_commands, a publish) and the server has the SUBs/UNSUBs it made
 * (a flush): AETHER_OK, AETHER_ECLOSED (not bound) or the mapped nats.c
 * error of the flush. Same thread rule as unbind. */
aether_status aether_nats_transport_sync(aether_transport *t);

#endif
