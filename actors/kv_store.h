/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv_store.h: the key-value store interface that holds the leadership lease
 * and the cluster state, plus its in-memory implementation (actors layer).
 *
 * One interface, two implementations: NATS JetStream KV (transport/nats_kv.h;
 * nats-server 2.9, nats.c 3.4.1) and the in-memory bucket below, which the
 * embedded mode, the unit tests and the simulator use. The in-memory bucket
 * reproduces the JetStream semantics the domain relies on, so code proven
 * against it keeps its guarantees on NATS:
 *
 *  - Revisions: one counter per bucket (a JetStream KV bucket is one stream
 *    and a revision is the stream sequence). Every write - put, delete
 *    marker, purge marker - takes the next value, across all keys, so
 *    revisions are strictly increasing and never reused within a bucket's
 *    life. Only re-creating the bucket (aether_kv_mem_wipe) restarts them
 *    at 1: whoever needs numbers that never repeat (terms) must not rely on
 *    revisions alone (see lease.h).
 *  - create(key): atomic create-if-absent. "Absent" means never written,
 *    deleted, purged or expired (nats.c kvStore_Create retries over a
 *    DEL/PURGE marker with the marker's revision as expected revision; the
 *    result is the same single-winner CAS). AETHER_EEXIST otherwise.
 *  - update(key, expected): compare-and-set against the key's LAST revision
 *    (JetStream Nats-Expected-Last-Subject-Sequence), which may be a delete
 *    or purge marker's: an update naming a marker's revision succeeds,
 *    exactly as on NATS. An expired or never-written key has no last
 *    revision, so every update of it is AETHER_ECONFLICT. expected_revision
 *    0 is refused (AETHER_EINVAL): that is create.
 *  - delete(key, expected): writes a delete marker (takes a revision; get
 *    then reports AETHER_ENOTFOUND; watchers see AETHER_KV_OP_DELETE; a later
 *    create succeeds). expected 0 = unconditional (kvStore_Delete; also
 *    writes a marker for an absent key). expected > 0 = conditional, CAS as
 *    in update: nats.c 3.4.1 has no API for it, the NATS implementation
 *    publishes the marker itself with js_PublishMsg, header
 *    "KV-Operation: DEL" and ExpectLastSubjectSeq. The lease resigns with
 *    it so a deposed holder can never delete its successor's lease.
 *  - purge(key): optional (ops->purge may be NULL -> AETHER_ESTATE). Writes a
 *    purge marker; watchers see AETHER_KV_OP_PURGE.
 *  - TTL: per bucket (ttl_ms 0 = never). An entry - value or marker - whose
 *    last write is ttl_ms or more ago reads as absent: at put_at + ttl it is
 *    gone (JetStream MaxAge; the server may remove later, never earlier than
 *    the publish it received, which is what the lease's "sent time" rule
 *    relies on). nats-server 2.9 emits NO watch event when an entry expires,
 *    and neither does this store.
 *  - watch(pattern): a NATS subject pattern over keys: an exact key, '*'
 *    for one token, '>' as the last token for one or more (a prefix watch is
 *    "prefix.>"). Like a nats.c watcher with default options, it first
 *    delivers the current last entry of each matching key (values and
 *    markers, oldest revision first; expired entries are gone), then one
 *    AETHER_KV_OP_INIT_DONE event (the NULL entry of kvWatcher_Next), then
 *    every later write in revision order. Wipe emits nothing: after it a
 *    watcher sees revisions restart at 1.
 *  - Keys: NATS KV keys, [-/_=.a-zA-Z0-9]+, no leading or trailing '.', and
 *    (stricter than nats.c, because the server rejects such subjects) no
 *    empty token ".."; at most AETHER_KV_KEY_LEN_MAX bytes. Values: 0 to
 *    AETHER_KV_VALUE_LEN_MAX bytes (the NATS default max_payload).
 *    Bad keys, patterns and values are AETHER_EINVAL with an aether_err
 *    message, checked by the aether_kv_* wrappers before any implementation
 *    sees them.
 *  - Operating failures: every operation may return AETHER_EUNAVAILABLE (the
 *    store cannot be reached: nothing happened) or AETHER_EUNKNOWN (a
 *    timeout: the write may or may not have happened, and may even happen
 *    later; re-read before believing either outcome).
 *
 * Threading contract (both implementations):
 *  - every aether_kv_* function may be called from any thread;
 *  - watch callbacks run on a thread of the store's choosing (the in-memory
 *    store: the thread of some caller of the store; NATS: a nats.c thread),
 *    WITHOUT any store lock held, one at a time per store, and for each
 *    watcher in revision order. A callback must only copy what it needs and
 *    enqueue it (e.g. aether_actor_send); it must not block and must not call
 *    back into the same store (the in-memory store asserts this);
 *  - once aether_kv_unwatch returns, the callback is not running and will
 *    not be called again, so its arg may be freed.
 *
 * The in-memory store (aether_kv_mem_*): a mutex guards it; time comes only
 * from the injected clock, randomness only from the injected seed. An
 * operation's own watch events are delivered before the operation returns,
 * so under the step executor (one thread) watchers see a write during the
 * call that made it. Fault injection points are named by call
 * ("create", "update", ...) and fault ("unavailable", "unknown-applied",
 * "unknown-not-applied"); every injected fault is counted and logged at
 * debug level under module "kv_mem".
 */
#ifndef AETHER_KV_STORE_H
#define AETHER_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "assertion.h"
#include "clock.h"
#include "rng.h"
#include "status.h"

#define AETHER_KV_KEY_LEN_MAX 255u                    /* bytes, without the NUL */
#define AETHER_KV_VALUE_LEN_MAX (1024u * 1024u)       /* bytes: NATS default max_payload */
#define AETHER_KV_TTL_MS_MAX UINT64_C(31536000000)    /* one year: keeps ns arithmetic far from overflow */
#define AETHER_KV_WATCHERS_MAX 1024u                  /* watchers per in-memory store */
#define AETHER_KV_MEM_KEYS_MAX 65536u                 /* live entries + markers per in-memory store */
#define AETHER_KV_NAME_LEN_MAX 64u                    /* bucket name for logs */

AETHER_STATIC_ASSERT(AETHER_KV_TTL_MS_MAX <= UINT64_MAX / 1000000u / 2u,
                     "ttl in ns plus any monotonic time fits in u64");

/* What a write did. INIT_DONE appears only in watch events. */
typedef enum aether_kv_op {
    AETHER_KV_OP_PUT = 0,   /* a value was written (create, update) */
    AETHER_KV_OP_DELETE,    /* a delete marker */
    AETHER_KV_OP_PURGE,     /* a purge marker */
    AETHER_KV_OP_INIT_DONE, /* watch only: every current value was delivered */
    AETHER_KV_OP_COUNT_
} aether_kv_op;

/* "put", "delete", "purge", "init-done"; "?" out of range. Never NULL. */
const char *aether_kv_op_name(aether_kv_op op);

/* A value read by aether_kv_get. Owns value; release with aether_kv_entry_fini. */
typedef struct aether_kv_entry {
    char key[AETHER_KV_KEY_LEN_MAX + 1];
    uint8_t *value;    /* malloc'd: value_len bytes plus a NUL (so text values are C strings) */
    size_t value_len;
    uint64_t revision; /* >= 1 */
} aether_kv_entry;

/* Frees the value and zeroes the entry. NULL and a zeroed entry are fine. */
void aether_kv_entry_fini(aether_kv_entry *e);

/* One watch event. Everything it points to is borrowed for the callback only. */
typedef struct aether_kv_event {
    aether_kv_op op;
    const char *key;      /* NUL-terminated; "" for INIT_DONE */
    const uint8_t *value; /* PUT: value_len bytes (NUL after them); otherwise NULL */
    size_t value_len;     /* 0 unless PUT */
    uint64_t revision;    /* the write's revision; 0 for INIT_DONE */
} aether_kv_event;

/* See the threading contract above: copy, enqueue, return. */
typedef void (*aether_kv_watch_fn)(void *arg, const aether_kv_event *ev);

typedef struct aether_kv aether_kv;
typedef struct aether_kv_watcher aether_kv_watcher; /* a watch handle, owned by the store */

/* The implementation's side. Arguments reaching these are already validated
 * by the wrappers below (key/pattern syntax, value size, expected > 0 for
 * update, non-NULL outputs). rev_out is never NULL. */
typedef struct aether_kv_ops {
    aether_status (*create)(aether_kv *kv, const char *key, const void *value, size_t len,
                            uint64_t *rev_out, aether_err *err);
    aether_status (*update)(aether_kv *kv, const char *key, const void *value, size_t len,
                            uint64_t expected_revision, uint64_t *rev_out, aether_err *err);
    aether_status (*del)(aether_kv *kv, const char *key, uint64_t expected_revision,
                         uint64_t *rev_out, aether_err *err);
    aether_status (*purge)(aether_kv *kv, const char *key, uint64_t *rev_out,
                           aether_err *err); /* may be NULL */
    aether_status (*get)(aether_kv *kv, const char *key, aether_kv_entry *out, aether_err *err);
    aether_status (*watch)(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn, void *arg,
                           aether_kv_watcher **out, aether_err *err);
    void (*unwatch)(aether_kv *kv, aether_kv_watcher *w);
    uint64_t (*ttl_ms)(aether_kv *kv);
    void (*destroy)(aether_kv *kv);
    aether_status (*compact)(aether_kv *kv, uint64_t revision,
                             aether_err *err); /* may be NULL */
} aether_kv_ops;

struct aether_kv {
    const aether_kv_ops *ops; /* immutable after create */
};

/* ---- Validation (shared by every implementation) --------------------------- */

/* AETHER_OK or AETHER_EINVAL naming the problem, e.g.
 * "key 'a b': byte 0x20 at position 1 is outside [-/_=.a-zA-Z0-9]". */
aether_status aether_kv_key_validate(const char *key, aether_err *err);
/* A key that may also use '*' as a whole token and '>' as the whole last token. */
aether_status aether_kv_pattern_validate(const char *pattern, aether_err *err);
/* True if key (valid) matches pattern (valid), by NATS subject rules. */
bool aether_kv_pattern_match(const char *pattern, const char *key);

/* ---- The interface, as callers use it --------------------------------------
 * rev_out may be NULL where marked "optional". On failure *rev_out is 0. */

/* Create-if-absent. AETHER_OK + revision, AETHER_EEXIST, AETHER_EINVAL,
 * AETHER_EUNAVAILABLE, AETHER_EUNKNOWN, AETHER_ENOMEM, AETHER_EFULL (in-memory
 * store at AETHER_KV_MEM_KEYS_MAX). */
aether_status aether_kv_create(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t *rev_out, aether_err *err);
/* CAS write. AETHER_OK + new revision, AETHER_ECONFLICT (stale revision or key
 * absent/expired), AETHER_EINVAL (also expected_revision 0), EUNAVAILABLE,
 * EUNKNOWN. */
aether_status aether_kv_update(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t expected_revision, uint64_t *rev_out, aether_err *err);
/* Writes a delete marker. expected_revision 0 = unconditional; otherwise
 * AETHER_ECONFLICT unless the key's last revision is that one. rev_out optional. */
aether_status aether_kv_delete(aether_kv *kv, const char *key, uint64_t expected_revision,
                               uint64_t *rev_out, aether_err *err);
/* Writes a purge marker; AETHER_ESTATE if the implementation has no purge.
 * rev_out optional. */
aether_status aether_kv_purge(aether_kv *kv, const char *key, uint64_t *rev_out, aether_err *err);
/* Removes every entry (values and markers) whose revision is below
 * `revision` and makes every later write's revision at least `revision`
 * (JetStream: a stream purge with that sequence). No watch event. Used to
 * carry a re-created lease bucket past the recorded term in one step
 * (lease.h acquire step 3). AETHER_OK, AETHER_ESTATE if the implementation
 * has none, AETHER_EINVAL for revision 0, EUNAVAILABLE, EUNKNOWN. */
aether_status aether_kv_compact(aether_kv *kv, uint64_t revision, aether_err *err);
/* AETHER_OK and *out filled (caller finis it), AETHER_ENOTFOUND (absent,
 * deleted, purged or expired; *out zeroed), EINVAL, EUNAVAILABLE, EUNKNOWN,
 * ENOMEM. */
aether_status aether_kv_get(aether_kv *kv, const char *key, aether_kv_entry *out,
                            aether_err *err);
/* Starts a watcher (see above for what it delivers). *out is the handle for
 * unwatch. AETHER_EFULL at AETHER_KV_WATCHERS_MAX. */
aether_status aether_kv_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn,
                              void *arg, aether_kv_watcher **out, aether_err *err);
/* Stops a watcher; NULL is fine. Returns once its callback is not running and
 * will not run again. Never from inside a callback of the same store. */
void aether_kv_unwatch(aether_kv *kv, aether_kv_watcher *w);
/* The bucket TTL in ms (0 = none). */
uint64_t aether_kv_ttl_ms(aether_kv *kv);
/* Destroys the store handle (the in-memory store: its data, and any watchers
 * still registered). NULL is fine. No thread may use it concurrently. */
void aether_kv_destroy(aether_kv *kv);

/* ---- The in-memory implementation ------------------------------------------ */

typedef struct aether_kv_mem_config {
    const char *name;    /* for logs: 1..AETHER_KV_NAME_LEN_MAX bytes; NULL = "kv" */
    uint64_t ttl_ms;     /* 0 = entries never expire; <= AETHER_KV_TTL_MS_MAX */
    aether_clock *clock; /* required; must be safe to read from every thread that
                            calls the store (the real clock, or a simulated one
                            used by a single thread) */
    aether_rng *rng;     /* seeds the fault injector: a child is split off (this
                            advances *rng). NULL = seed 0. */
} aether_kv_mem_config;

/* A new, empty bucket. AETHER_EINVAL (bad config, explained), AETHER_ENOMEM. */
aether_status aether_kv_mem_create(const aether_kv_mem_config *cfg, aether_kv **out,
                                   aether_err *err);

/* True if kv was made by aether_kv_mem_create (the functions below assert it). */
bool aether_kv_is_mem(const aether_kv *kv);

/* The named calls a fault can hit. */
typedef enum aether_kv_call {
    AETHER_KV_CALL_CREATE = 0,
    AETHER_KV_CALL_UPDATE,
    AETHER_KV_CALL_DELETE,
    AETHER_KV_CALL_PURGE,
    AETHER_KV_CALL_GET,
    AETHER_KV_CALL_WATCH,
    AETHER_KV_CALL_COUNT_
} aether_kv_call;

/* What an injected fault does. For get and watch (nothing to apply) both
 * UNKNOWN kinds just return AETHER_EUNKNOWN. */
typedef enum aether_kv_fault {
    AETHER_KV_FAULT_NONE = 0,
    AETHER_KV_FAULT_UNAVAILABLE,         /* not applied; AETHER_EUNAVAILABLE */
    AETHER_KV_FAULT_UNKNOWN_APPLIED,     /* applied as usual (events too) but reported
                                            as AETHER_EUNKNOWN (the reply was lost) */
    AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED, /* not applied; AETHER_EUNKNOWN (the request was lost) */
    AETHER_KV_FAULT_COUNT_
} aether_kv_fault;

const char *aether_kv_call_name(aether_kv_call call);    /* "create", ...; "?" */
const char *aether_kv_fault_name(aether_kv_fault fault); /* "unavailable", ...; "?" */

/* Every later `call` fails with `fault` with probability per_million / 1e6,
 * drawn from the store's seeded generator (a draw is taken only while a
 * probability is set, so a run replays from its seed). per_million 0 or
 * fault NONE turns it off. Any thread. */
void aether_kv_mem_set_fault(aether_kv *kv, aether_kv_call call, aether_kv_fault fault,
                             uint32_t per_million);
/* The next `count` calls of `call` fail with `fault`, before any probability
 * is consulted. count 0 cancels. Any thread. */
void aether_kv_mem_fail_next(aether_kv *kv, aether_kv_call call, aether_kv_fault fault,
                             uint32_t count);
/* Turns every fault off. */
void aether_kv_mem_clear_faults(aether_kv *kv);
/* Faults injected so far. */
uint64_t aether_kv_mem_faults_injected(aether_kv *kv);
/* The bucket's last revision (0 when nothing was written since create/wipe). */
uint64_t aether_kv_mem_last_revision(aether_kv *kv);
/* The bucket is deleted and re-created: every key is gone and revisions
 * restart at 1. Watchers stay registered and get no event. Faults are kept. */
void aether_kv_mem_wipe(aether_kv *kv);

#endif
