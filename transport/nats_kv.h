/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_kv.h: the aether_kv interface (actors/kv_store.h) on a NATS JetStream
 * KV bucket through nats.c 3.4.1, against nats-server 2.9 (transport layer).
 *
 * Threading: every aether_kv_* call may come from any thread; the calls
 * block for at most the store's timeout_ms per round trip to the server
 * (create may take up to AETHER_KV_NATS_CREATE_ATTEMPTS_MAX * 2 of them).
 * Watch callbacks run on a thread this module starts per watcher, one
 * callback at a time per store (a store mutex is held across each call),
 * in revision order per watcher, never while an aether_kv call of this
 * store holds a lock. As in kv_store.h, a callback only copies what it
 * needs and enqueues it; it must not block and must not call back into
 * the same store (asserted). The natsConnection is borrowed: the caller
 * owns it, may share it with the rest of the transport, and destroys it
 * only after aether_kv_destroy.
 *
 * DESIGN
 * The bucket is a JetStream KV bucket made by js_CreateKeyValue (history 1,
 * or 1 + AETHER_KV_NATS_FORGED_SKIP_MAX with a cluster secret: step 7;
 * MaxAge = ttl_ms, file storage, 1 or 3 replicas). A revision is the stream
 * sequence, so the in-memory store's one-counter-per-bucket rule holds by
 * construction, and deleting and re-creating the bucket restarts it at 1.
 *  1. get: js_GetLastMsg of the key's subject (the stream's message-get
 *     API, answered by the stream leader; not kvStore_Get's direct get,
 *     which for a deleted bucket gets no answer at all and waits out the
 *     whole timeout, where the API answers "stream not found" at once:
 *     AETHER_EUNAVAILABLE, and step 5 brings the bucket back); a delete or
 *     purge marker reads as AETHER_ENOTFOUND, as does a key the server has
 *     already expired.
 *  2. Every write is one js_PublishMsg to "$KV.<bucket>.<key>" with the
 *     store's timeout as MaxWait, because only js_PublishMsg returns the
 *     JetStream error code (kvStore_Create/Update report every refusal as
 *     NATS_ERR) and kvStore_Delete/Purge return no revision:
 *       update        ExpectLastSubjectSeq = expected revision
 *       create        ExpectNoMessage; if refused with "wrong last
 *                     sequence", read the subject's last message
 *                     (js_GetLastMsg): a value means AETHER_EEXIST, a
 *                     delete/purge marker means publish again expecting
 *                     the marker's revision (nats.c kvStore_Create does
 *                     the same), nothing means it just expired: publish
 *                     again expecting nothing. At most
 *                     AETHER_KV_NATS_CREATE_ATTEMPTS_MAX publishes; a key
 *                     that keeps changing under us is AETHER_EEXIST.
 *       delete        header "KV-Operation: DEL"; expected > 0 adds
 *                     ExpectLastSubjectSeq (the conditional delete nats.c
 *                     3.4.1 lacks); expected 0 is kvStore_Delete exactly.
 *       purge         headers "KV-Operation: PURGE", "Nats-Rollup: sub"
 *                     (what kvStore_Purge sends).
 *     The single-winner property of create and of every CAS is the
 *     server's - but see 2b.
 *  2b. On an R3 bucket nats-server 2.9 (before 2.9.21: nats-io/nats-server
 *     issue 4320) checks ExpectLastSubjectSeq > 0 only before proposing,
 *     against what the stream leader has applied, not against the writes
 *     still in flight: two conditional writes naming the same revision,
 *     sent at once, can both be applied, at consecutive revisions, and both
 *     writers told OK. Measured on 2.9.10 (3 routed servers, two clients
 *     at a barrier; integration.nats_lease_race does the same with the
 *     lease protocol): an update naming the same revision won twice in 117
 *     of 300 rounds, a create over a
 *     delete marker in 44 of 300; a create of an absent key (expecting no
 *     message, checked when applied) never, nor anything on R1. For the
 *     lease bucket this was two leaders (issue 12: chaos seed 42, terms
 *     142 and 143 elected in one millisecond). A store made with one_key
 *     (a bucket holding a single key) therefore adds ExpectLastSeq =
 *     expected revision to every write that names one: with one key, the
 *     key's last revision is the stream's last sequence, and nats-server
 *     checks that one against its proposal counter, writes in flight
 *     included (measured: 0 double wins in the same rounds). Any other
 *     write to the bucket in between makes the write ECONFLICT, as it
 *     should. The state bucket holds several keys and cannot do this: its
 *     CAS writes (term record, topology, map) have one writer at a time by
 *     construction (the leader), which the race needs two of.
 *  3. watch: kvStore_Watch(pattern) with default options (last value per
 *     key, markers included, then the NULL "init done" entry, then every
 *     later write), drained by one thread per watcher with kvWatcher_Next
 *     in slices of AETHER_KV_NATS_WATCH_POLL_MS (nats.c 3.4.1 has no watch
 *     callback). The thread turns each entry into an aether_kv_event and
 *     calls the user's callback under the store's callback mutex. Unwatch
 *     sets the stop flag, kvWatcher_Stop wakes the thread, and the join
 *     guarantees the callback is not running and never runs again.
 *  4. Before any request the connection status is checked: a connection
 *     that is not CONNECTED (reconnecting, closed, draining) fails fast
 *     with AETHER_EUNAVAILABLE and nothing is sent. Otherwise nats.c could
 *     put a write into its reconnect buffer and send it much later.
 *  5. A lost bucket comes back. A store made with create_if_missing (the
 *     nodes' stores; aetherctl only binds) that gets AETHER_EUNAVAILABLE
 *     from the server (a publish to a deleted bucket finds no responders)
 *     asks, at most once per AETHER_KV_NATS_RECREATE_EVERY_MS, whether the
 *     bucket's stream exists; on "stream not found" it creates the bucket
 *     again with the configuration it was made with (TTL, replicas), logs
 *     a warning and counts it (aether_kv_nats_recreated). The failed call
 *     still fails; the next one finds an empty bucket whose revisions
 *     restart at 1, so a CAS naming an old revision is AETHER_ECONFLICT and
 *     a create succeeds. Whoever needs numbers that never repeat or state
 *     that must survive re-writes it (lease.h, member_state.c): the store
 *     only restores the container. Several nodes may race to re-create:
 *     js_CreateKeyValue with the same configuration is idempotent.
 *  6. compact(revision): js_PurgeStream with that sequence: every message
 *     below it goes and the stream numbers the next one at least revision.
 *  7. With a cluster secret (cfg->sealer, transport/auth.h) every write,
 *     values and markers alike, carries the tag in the header
 *     AETHER_AUTH_HEADER, sealed over "$KV.<bucket>.<key>" and the value,
 *     and nothing unauthenticated is believed. Stored values have no
 *     replay window (revisions order them); their freshness is measured
 *     against the time the server stored them (natsMsg_GetTime): a tag made
 *     more than AETHER_AUTH_SKEW_MS before or after it was stored is a
 *     replayed capture. A refusal is counted (cfg->stats, reason
 *     "unauthenticated") and logged (WARN, one line per second per store).
 *      history a bucket made with a secret keeps 1 +
 *              AETHER_KV_NATS_FORGED_SKIP_MAX revisions per key (without,
 *              1), so that a genuine value under forgeries is still there
 *              to read; a node whose setting differs from the bucket's is
 *              refused (EINCOMPATIBLE, naming both).
 *      get     an unauthenticated value or marker on top of the key
 *              reads as the newest genuine write beneath it when every
 *              message since that write is still stored and
 *              unauthenticated (the same rule as update, below: that is
 *              the value the cluster wrote, and a conditional write naming
 *              its revision gets past the forgeries); otherwise as
 *              AETHER_EUNAVAILABLE ("damaged": nothing can be said about
 *              the key, not even that it is absent; no caller acts on it).
 *      create  an unauthenticated last message, value or marker, counts
 *              as taken (AETHER_EEXIST): what it hides may be a genuine
 *              holder's value, and the key's TTL removes it.
 *      update, conditional delete
 *              refused as ECONFLICT, the write is sent once more if every
 *              revision after the expected one, up to the key's last (and,
 *              with one_key, the stream's last), is still stored and
 *              unauthenticated (a value on another key of a one_key bucket
 *              too), at most AETHER_KV_NATS_FORGED_SKIP_MAX of them,
 *              expecting the last of them. Safe: those are exactly the
 *              writes since the expected revision, none genuine, so the
 *              CAS is the one the caller asked for with the forgeries
 *              left out. A revision that is gone (more forgeries than
 *              the history keeps replaced it) cannot be told apart from a
 *              genuine write: the conflict stands. So up to
 *              AETHER_KV_NATS_FORGED_SKIP_MAX forged writes between two
 *              renewals are read past (get) and undone by the leader's
 *              next renewal; more cost a leadership change.
 *      watch   every entry is fetched again by revision (js_GetMsg: a
 *              kvEntry shows no headers) and delivered only if it
 *              authenticates; one that is gone (replaced: its successor
 *              comes next) is skipped. So a genuine value replaced by a
 *              forged one before the watcher fetched it is never
 *              delivered: the watch no longer converges to the latest
 *              value while forgeries sit on top (it stays a hint; get and
 *              CAS decide, as ever).
 *
 * Status mapping (done once, in nkv_map in nats_kv.c):
 *   NATS_OK                                     AETHER_OK
 *   JS 10071 "wrong last sequence"              AETHER_ECONFLICT (update,
 *                                               conditional delete);
 *                                               create: see step 2
 *                                               (AETHER_EEXIST)
 *   NATS_NOT_FOUND (get, bucket bind)           AETHER_ENOTFOUND
 *   JS 10059 "stream not found" (get)           AETHER_EUNAVAILABLE (the
 *                                               bucket is gone: step 5)
 *   NATS_TIMEOUT                                write: AETHER_EUNKNOWN (it
 *                                               may have been applied, or
 *                                               may be applied later);
 *                                               read/watch: AETHER_EUNAVAILABLE
 *   NATS_NO_RESPONDERS                          AETHER_EUNAVAILABLE (no
 *                                               stream took it: not applied)
 *   not CONNECTED before sending (step 4),
 *   NATS_CONNECTION_CLOSED, NATS_NO_SERVER,
 *   NATS_CONNECTION_DISCONNECTED,
 *   NATS_STALE_CONNECTION, NATS_NOT_YET_CONNECTED,
 *   NATS_DRAINING                               read: AETHER_EUNAVAILABLE;
 *                                               write: AETHER_EUNAVAILABLE
 *                                               if found before sending,
 *                                               AETHER_EUNKNOWN if the
 *                                               connection failed while the
 *                                               request was out
 *   JS 10023/10028/10047 (insufficient
 *   resources, memory, storage), 10053
 *   (stream limits)                             AETHER_EFULL (not stored)
 *   JS 10054 (message exceeds maximum),
 *   NATS_MAX_PAYLOAD                            AETHER_EINVAL (value plus
 *                                               headers over the limit)
 *   other JS error (server refused: not stored) AETHER_EUNAVAILABLE, with
 *                                               the server's text and code
 *   NATS_NO_MEMORY                              AETHER_ENOMEM
 *   anything else                               write: AETHER_EUNKNOWN;
 *                                               read: AETHER_EUNAVAILABLE
 *
 * What differs from the in-memory store (kv_store.h), and why it is safe:
 *  - Expiry time: the server removes an entry at put_at + ttl or somewhat
 *    later (its expiry timer), never earlier. Until it does, get, create
 *    and update all still see the entry, consistently. The lease relies
 *    only on "never earlier" (lease.h).
 *  - A timeout may be applied later, not only "now or never": a request
 *    that left before the connection dropped can reach the server after
 *    the reconnect. AETHER_EUNKNOWN already means "re-read before
 *    believing either outcome".
 *  - Watchers: events of writes made by this store are delivered
 *    asynchronously (after the write returns), not before the call
 *    returns; a watcher whose subscription dies for good (connection
 *    closed) logs an error and delivers nothing more. Watch events for
 *    one watcher are in revision order, as in memory, and a watcher
 *    resumes after a reconnect (nats.c re-creates its ordered consumer).
 *    But a watcher that lags behind the stream may SKIP a write that a
 *    later write to the same key already replaced (history 1: the stream
 *    keeps only each key's last message); it always converges to the
 *    latest value. Watch is therefore a hint: correctness must come from
 *    get/create/CAS (the lease already works that way, DESIGN 2.4).
 *  - Values near AETHER_KV_VALUE_LEN_MAX may be refused (AETHER_EINVAL):
 *    the server's max_payload counts the headers too.
 *  - No fault injection and no wipe: tests kill, stop or restart the
 *    server, and delete the bucket (aether_kv_nats_delete_bucket; step 5
 *    brings it back, empty, like aether_kv_mem_wipe).
 */
#ifndef AETHER_NATS_KV_H
#define AETHER_NATS_KV_H

#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

#include "auth.h"
#include "codec.h"
#include "kv_store.h"
#include "metrics.h"
#include "status.h"

#define AETHER_KV_NATS_TIMEOUT_MS_DEFAULT 2000u /* per request, when the config says 0 */
#define AETHER_KV_NATS_TIMEOUT_MS_MAX 60000u    /* per request */
#define AETHER_KV_NATS_CREATE_ATTEMPTS_MAX 3u   /* publishes per create (step 2) */
#define AETHER_KV_NATS_WATCH_POLL_MS 200        /* one kvWatcher_Next wait */
#define AETHER_KV_NATS_RECREATE_EVERY_MS 250u   /* step 5: one existence check per store per this */
#define AETHER_KV_NATS_BUCKET_LEN_MAX AETHER_KV_NAME_LEN_MAX
/* The shortest TTL JetStream accepts for a bucket (its stream's max_age):
 * nats-server 2.9 refuses 99 ms with "max age needs to be >= 100ms". */
#define AETHER_KV_NATS_TTL_MS_MIN 100u
/* Step 7: forged writes a CAS may look past. */
#define AETHER_KV_NATS_FORGED_SKIP_MAX 8u

typedef struct aether_kv_nats_config {
    natsConnection *conn;   /* required; borrowed: must outlive the store */
    const char *bucket;     /* 1..AETHER_KV_NATS_BUCKET_LEN_MAX of [A-Za-z0-9_-] */
    uint64_t ttl_ms;        /* bucket TTL (MaxAge); 0 = none; <= AETHER_KV_TTL_MS_MAX.
                               An existing bucket must have exactly this TTL. */
    uint32_t replicas;      /* 0 = 1; otherwise 1 or 3 */
    uint64_t timeout_ms;    /* per request; 0 = AETHER_KV_NATS_TIMEOUT_MS_DEFAULT */
    bool create_if_missing; /* true: js_CreateKeyValue (idempotent for the same
                               config); false: bind to an existing bucket only */
    bool one_key;           /* the bucket holds a single key (the lease bucket):
                               every conditional write also expects the stream's
                               last sequence (step 2b) */
    aether_auth_sealer *sealer; /* NULL = no cluster secret; else step 7. Borrowed:
                                   must outlive the store (may be shared) */
    aether_codec_stats *stats;  /* NULL = refusals not counted; counts step 7's
                                   refusals as AETHER_CODEC_REJECT_UNAUTHENTICATED */
} aether_kv_nats_config;

/* Binds to (and if asked creates) the bucket. AETHER_OK and *out = a store
 * for aether_kv_* calls (destroy with aether_kv_destroy). Otherwise *out is
 * NULL and: AETHER_EINVAL (bad config; the bucket exists with another
 * configuration), AETHER_EINCOMPATIBLE (the bucket exists with another TTL,
 * or, when creating with a replica count, another one: err names both,
 * "bucket 'b' exists with a TTL of 1000 ms, not the 2000 ms asked for"),
 * AETHER_ENOTFOUND (no such bucket and
 * !create_if_missing), AETHER_EUNAVAILABLE (server unreachable, JetStream
 * disabled, timeout), AETHER_ENOMEM. Any thread. */
aether_status aether_kv_nats_create(const aether_kv_nats_config *cfg, aether_kv **out,
                                    aether_err *err);

/* True if kv was made by aether_kv_nats_create. */
bool aether_kv_is_nats(const aether_kv *kv);

/* How many times this store found its bucket gone and created it again
 * (DESIGN step 5). kv must be a NATS store (asserted). Any thread. */
uint64_t aether_kv_nats_recreated(aether_kv *kv);

/* Times this store's compare-and-set writes (create, update, conditional
 * delete: one round trip to the server each, whatever the outcome) into h
 * (NULL: stop). kv must be a NATS store (asserted). Call it before the
 * store is shared; observations are relaxed atomics from any thread. */
void aether_kv_nats_set_cas_histogram(aether_kv *kv, aether_histogram *h);

/* Deletes the bucket on the server with everything in it (tests, and an
 * operator's re-creation). Stores bound to it keep working once it is
 * created again, with revisions restarting at 1. AETHER_ENOTFOUND if there
 * was none; AETHER_EUNAVAILABLE; AETHER_EINVAL for a bad name. timeout_ms
 * 0 = the default. Any thread. */
aether_status aether_kv_nats_delete_bucket(natsConnection *conn, const char *bucket,
                                           uint64_t timeout_ms, aether_err *err);

#endif
