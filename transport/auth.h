/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.h: message and stored-value authentication with a cluster secret
 * (transport layer; DESIGN 2.4 and 4, issue 13 item 1).
 *
 * With `cluster_secret_file` set, every envelope a node publishes and every
 * value it writes to the lease and state buckets travels with a tag in the
 * NATS header AETHER_AUTH_HEADER; receivers act on nothing whose tag is
 * missing, malformed, wrong, stale or replayed. The tag is text:
 *     "1 <sender> <epoch> <ctr> <ts_ms> <mac>"
 *   1       the tag format;
 *   sender  the NodeId of the sealing process (aetherctl: "aetherctl");
 *   epoch   16 lowercase hex digits: the sealer's epoch, the wall-clock
 *           nanoseconds at which the sealing process made its sealer (a
 *           restarted process has a later one);
 *   ctr     decimal, 1, 2, ...: the sealer's counter, one per tag, growing
 *           within the epoch;
 *   ts_ms   decimal wall-clock milliseconds when the tag was made;
 *   mac     64 lowercase hex digits: HMAC-SHA-512-256 (libsodium's
 *           crypto_auth) under the cluster key over
 *             "aether-auth-1" 0x00 subject 0x00 sender 0x00
 *             epoch ctr ts_ms (each 8 bytes, little-endian) payload
 *           where subject is the NATS subject the bytes travel on (a KV
 *           value: its stream subject "$KV.<bucket>.<key>"), so a genuine
 *           message moved to another subject, or a value to another key,
 *           no longer verifies.
 * The cluster key is derived from the secret file's bytes (trailing
 * whitespace removed, at least AETHER_AUTH_SECRET_MIN of them) with
 * BLAKE2b (crypto_generichash) under a fixed personal string, so a
 * hex or base64 file works as well as raw bytes and an editor's final
 * newline changes nothing.
 *
 * What it protects against (docs/cluster.md says it for operators): a
 * client without the secret can no longer forge, alter, or move a message
 * or a stored value, and cannot replay one: a receiver admits a sender's
 * tag only once per (epoch, ctr), and only if that is above the highest it
 * admitted from that sender or within a span below it (aether_auth_window),
 * and, for a message, its ts_ms is within AETHER_AUTH_SKEW_MS
 * of its own clock (a receiver that restarted forgets the window: the
 * clock bound is what keeps old captures out then). What it does not: a
 * holder of the secret (any member) can speak for any node; NATS
 * authorization still decides who may publish at all.
 *
 * Threading: an aether_auth is immutable after create, any thread. A
 * sealer may be shared by threads (its counter is atomic). A window belongs
 * to one receiving thread (one per subscription: NATS keeps one publisher's
 * order per subscription, so each window sees that sender's counters
 * grow).
 */
#ifndef AETHER_AUTH_H
#define AETHER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "node_id.h"
#include "status.h"

#define AETHER_AUTH_HEADER "Aether-Auth"
#define AETHER_AUTH_SECRET_MIN 32u    /* bytes in the secret file, trailing whitespace aside */
#define AETHER_AUTH_SECRET_MAX 4096u  /* a larger file is not a secret file */
#define AETHER_AUTH_SKEW_MS 60000u    /* |receiver clock - ts_ms| admitted */
#define AETHER_AUTH_TAG_MAX 192u      /* a tag's text, NUL included */
#define AETHER_AUTH_WINDOW_SENDERS_MAX 4096u

typedef struct aether_auth aether_auth;

/* The key from a secret file. EINVAL naming the path and the reason
 * (unreadable, too short, too long, not a regular file); EIO if libsodium
 * cannot start. */
aether_status aether_auth_load_file(const char *path, aether_auth **out, aether_err *err);
/* The key from secret bytes (the same derivation). */
aether_status aether_auth_create(const void *secret, size_t len, aether_auth **out, aether_err *err);
void aether_auth_destroy(aether_auth *a); /* NULL is fine */

/* Writes a new secret file: 32 random bytes as 64 hex digits and a
 * newline, mode 0600; refuses to overwrite (EEXIST). For `aetherctl secret
 * new FILE`. */
aether_status aether_auth_new_secret_file(const char *path, aether_err *err);

/* One sealing process's identity and counter. */
typedef struct aether_auth_sealer {
    const aether_auth *auth;
    aether_node_id sender;
    uint64_t epoch;
    uint64_t ctr; /* atomic: the last counter used */
} aether_auth_sealer;

/* epoch: the wall-clock nanoseconds now (see above). */
void aether_auth_sealer_init(aether_auth_sealer *s, const aether_auth *a, const aether_node_id *sender,
                             uint64_t epoch);

/* The tag for payload on subject, into tag[cap] (cap >= AETHER_AUTH_TAG_MAX).
 * Any thread. EINVAL only for a cap too small. */
aether_status aether_auth_seal(aether_auth_sealer *s, const char *subject, const void *payload, size_t len,
                               uint64_t now_ms, char *tag, size_t cap);

/* What a verified tag says. */
typedef struct aether_auth_stamp {
    aether_node_id sender;
    uint64_t epoch, ctr, ts_ms;
} aether_auth_stamp;

/* Verifies tag (NULL = none) for payload on subject: AETHER_OK with *out
 * filled, or AETHER_EPERM with why naming the reason ("no Aether-Auth
 * tag", "malformed tag: ...", "wrong MAC", "stale: made N ms from this
 * node's clock"). now_ms 0: no freshness check (a stored value, which may
 * be old: its own versions order it). Pure but for the clock reading the
 * caller passes. */
aether_status aether_auth_open(const aether_auth *a, const char *subject, const void *payload, size_t len,
                               const char *tag, uint64_t now_ms, aether_auth_stamp *out, aether_err *why);

/* Replay window: per sender, the highest (epoch, ctr) admitted and which of
 * the AETHER_AUTH_WINDOW_SPAN counters below it were (a sealer shared by
 * threads publishes slightly out of order; IPsec's anti-replay window). */
#define AETHER_AUTH_WINDOW_SPAN 64u
typedef struct aether_auth_window aether_auth_window;
aether_status aether_auth_window_create(aether_auth_window **out);
void aether_auth_window_destroy(aether_auth_window *w); /* NULL is fine */
/* AETHER_OK (and remembered) when st's (epoch, ctr) is above the sender's
 * highest, or within the span below it and not admitted before, or the
 * sender is new; AETHER_EPERM "replayed: ..." otherwise (a later epoch
 * starts the window afresh; an earlier one is refused); AETHER_EFULL when
 * AETHER_AUTH_WINDOW_SENDERS_MAX senders are known and this is another. */
aether_status aether_auth_window_admit(aether_auth_window *w, const aether_auth_stamp *st, aether_err *why);

#endif
