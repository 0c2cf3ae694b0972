/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_conn.h: one nats.c connection from aether_nats_settings - server
 * list, auth (user/password, token, credentials file), TLS
 * (CA, client certificate, server name), reconnect policy - with errors an
 * operator can act on (transport layer).
 *
 * aether_nats_connect retries the first connect for connect_timeout_ms
 * (a server that is still starting) unless the failure cannot heal by
 * waiting: refused credentials, a TLS handshake failure, an unreadable
 * file. After the first connect nats.c reconnects on its own, forever,
 * reconnect_wait_ms (+ jitter) between attempts. (Aether's publishers
 * refuse to publish while disconnected, nats_transport.h, so nats.c's
 * reconnect buffer stays empty; a deposed leader's late messages would be
 * dropped by term anyway, DESIGN 2.4.)
 *
 * Error texts (err->msg) name the server list, the auth method and the
 * cause, e.g. "NATS at nats://127.0.0.1:4222 refused the credentials
 * (token): Authorization Violation", "cannot reach NATS at
 * nats://127.0.0.1:4222: No Server Available (tried for 5000 ms)",
 * "TLS: cannot read CA file /x/ca.pem: ...".
 *
 * Threads (docs/tuning.md has the measurements): requests use nats.c's
 * old style (natsOptions_UseOldRequestStyle): each request subscribes its
 * own inbox, synchronously, in the same write as the request, instead of
 * sharing the connection's response multiplexer, an asynchronous
 * subscription with a delivery thread of its own for the connection's
 * lifetime. The subscriptions keep one delivery thread each, on purpose:
 * nats.c's shared delivery pool (natsOptions_UseGlobalMessageDelivery)
 * saves 3 threads on a follower and 6 on the leader, but every
 * subscription then waits behind the others' messages, and under load a
 * command flood on cmd.> delays the leader's keep-alive answers past the
 * fence (integration.nats_flood and nats_flood_secret failed 2 runs in 4
 * with a pool of one, even with cmd.> shedding its backlog instead of
 * waiting and a 1024-message pending limit). "Send asap"
 * (natsOptions_SetSendAsap, -1 flusher thread) makes every reply of such a
 * flood one write on the transport actor's thread: the same test fences
 * its leader.
 *
 * Threading: connect from any thread; the callbacks run on nats.c threads
 * and only log.
 */
#ifndef AETHER_NATS_CONN_H
#define AETHER_NATS_CONN_H

#include <nats/nats.h>

#include "settings.h"
#include "status.h"

/* The auth method the settings select: "none", "user/password", "token",
 * "credentials file". */
const char *aether_nats_auth_method(const aether_nats_settings *s);

/* AETHER_OK and *out connected (destroy with natsConnection_Destroy after
 * everything that borrows it). Otherwise *out = NULL and: AETHER_EINVAL
 * (bad settings, unreadable file), AETHER_EPERM (credentials refused, or
 * not authorized), AETHER_EUNAVAILABLE (no server answered within the
 * limit; TLS handshake failures included, with the reason), AETHER_ENOMEM.
 * `name` is the connection name the server shows (node id, "aetherctl").
 * `stop` (may be NULL): polled between attempts; when it becomes non-zero
 * the retry ends with AETHER_ECLOSED. */
aether_status aether_nats_connect(const aether_nats_settings *s, const char *name,
                                  const volatile int *stop, natsConnection **out, aether_err *err);

/* The optional event stream (--event-stream, DESIGN 4): a JetStream stream
 * AETHER_<cluster>_EVENTS on the subjects aether.<cluster>.evt.<Type> of
 * every event type but LeaseRenewed (published on core NATS, not stored:
 * DESIGN 2), file storage, `replicas` copies, limits retention: at most
 * AETHER_EVENT_STREAM_MAX_AGE_S old and AETHER_EVENT_STREAM_MAX_BYTES big
 * (oldest discarded first). Every event a node publishes lands in it once;
 * consumers replay it by stream sequence and detect gaps by the per-term
 * seq of the envelope (LeaseRenewed takes no seq of its term's numbering...
 * see below). Creates it if missing; an existing stream is used as it is
 * (an operator may have tuned its limits), except that one on the subjects
 * of earlier versions (aether.<cluster>.evt.>) gets the stored subjects. Retried while
 * JetStream is not ready, for at most timeout_ms. AETHER_OK,
 * AETHER_EUNAVAILABLE (JetStream not enabled or not answering), or
 * AETHER_EINVAL (bad cluster name, or the subjects clash with another
 * stream), with err saying which. */
#define AETHER_EVENT_STREAM_MAX_AGE_S (7u * 24u * 3600u)
#define AETHER_EVENT_STREAM_MAX_BYTES (1ll << 30)
aether_status aether_nats_event_stream_ensure(natsConnection *nc, const char *cluster, uint32_t replicas,
                                              uint32_t timeout_ms, aether_err *err);

#endif
