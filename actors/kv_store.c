/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv_store.c: key/pattern validation, the aether_kv_* wrappers and the
 * in-memory bucket (actors layer). See kv_store.h for the semantics.
 *
 * Threading: any thread. Every field of a store is either immutable after
 * create or guarded by the store mutex `mu` (said per field). Watch callbacks
 * run without `mu`.
 *
 * DESIGN (in-memory bucket)
 * Data: entries sorted by key (binary search; iteration order is the key
 * order, never a hash order), each the key's LAST write: a value or a
 * delete/purge marker, with its revision and the clock reading at the write.
 * Expiry is lazy: an entry with now >= put_at + ttl is treated as absent and
 * dropped by whichever call finds it, emitting nothing.
 *
 * Event delivery keeps three promises: callbacks run without `mu`, one at a
 * time, and each watcher sees its events in revision order.
 *  1. A write, under `mu`, takes the next revision and appends one queued
 *     event per matching watcher to the store's FIFO queue, stamping each
 *     with the next queue sequence number. Revisions and queue sequence
 *     numbers are both assigned under `mu`, so queue order is revision order.
 *     A new watcher's initial values and its INIT_DONE are queued under `mu`
 *     in the same critical section that registers it, so they precede every
 *     live event it can match.
 *  2. Still under `mu` the writer remembers the sequence number of its last
 *     event (`my_seq`), unlocks, and runs deliver_until(my_seq):
 *  3. while an event with seq <= my_seq is queued or in flight: if another
 *     thread is delivering (`dispatching`), wait on `cv`; otherwise pop the
 *     head, set `dispatching`, unlock, call the callback, relock, clear
 *     `dispatching`, broadcast `cv`.
 *  Only the dispatcher pops, and it pops the next event only after the
 *  previous callback returned: callbacks are serialized in queue order.
 *  Bound: events with seq <= my_seq never join the queue after step 2 (later
 *  events get larger numbers), so the loop ends after at most the events
 *  queued ahead of it at entry - itself at most (callers inside the store) x
 *  AETHER_KV_WATCHERS_MAX, because every caller drains its own events before
 *  returning - plus the one in flight.
 *  4. unwatch unlinks the watcher and drops its queued events under `mu`,
 *     then waits on `cv` until it is not the one in flight; after that no
 *     reference to it remains.
 * A callback that re-entered the store would wait for itself (step 3); a
 * thread-local marks the store whose callback the thread runs, and every
 * entry point asserts it is not that store.
 */
#include "kv_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- Names ---------------------------------------------------------------- */

const char *aether_kv_op_name(aether_kv_op op)
{
    static const char *const names[] = {"put", "delete", "purge", "init-done"};
    AETHER_STATIC_ASSERT(sizeof(names) / sizeof(names[0]) == AETHER_KV_OP_COUNT_, "op names");
    return (unsigned)op < AETHER_KV_OP_COUNT_ ? names[op] : "?";
}

const char *aether_kv_call_name(aether_kv_call call)
{
    static const char *const names[] = {"create", "update", "delete", "purge", "get", "watch"};
    AETHER_STATIC_ASSERT(sizeof(names) / sizeof(names[0]) == AETHER_KV_CALL_COUNT_,
                         "call names");
    return (unsigned)call < AETHER_KV_CALL_COUNT_ ? names[call] : "?";
}

const char *aether_kv_fault_name(aether_kv_fault fault)
{
    static const char *const names[] = {"none", "unavailable", "unknown-applied",
                                        "unknown-not-applied"};
    AETHER_STATIC_ASSERT(sizeof(names) / sizeof(names[0]) == AETHER_KV_FAULT_COUNT_,
                         "fault names");
    return (unsigned)fault < AETHER_KV_FAULT_COUNT_ ? names[fault] : "?";
}

void aether_kv_entry_fini(aether_kv_entry *e)
{
    if (e == NULL)
        return;
    free(e->value);
    memset(e, 0, sizeof(*e));
}

/* ---- Validation ------------------------------------------------------------ */

static bool key_char_is_valid(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '/' || c == '_' || c == '=' || c == '.';
}

/* Shared by keys and patterns: wildcards only when allowed, and then only as
 * whole tokens ('>' only as the last one). */
static aether_status check_subject(const char *what, const char *s, bool wildcards,
                                   aether_err *err)
{
    if (s == NULL)
        return aether_err_set(err, AETHER_EINVAL, "%s is NULL", what);
    size_t len = strnlen(s, AETHER_KV_KEY_LEN_MAX + 1);
    if (len == 0)
        return aether_err_set(err, AETHER_EINVAL, "%s is empty", what);
    if (len > AETHER_KV_KEY_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "%s '%.32s...' is longer than %u bytes", what,
                              s, AETHER_KV_KEY_LEN_MAX);
    if (s[0] == '.' || s[len - 1] == '.')
        return aether_err_set(err, AETHER_EINVAL, "%s '%s' starts or ends with '.'", what, s);
    size_t token_start = 0;
    for (size_t i = 0; i <= len; i++) { /* bounded: len <= AETHER_KV_KEY_LEN_MAX */
        unsigned char c = (unsigned char)s[i];
        if (c == '.' || c == '\0') {
            size_t tlen = i - token_start;
            if (tlen == 0)
                return aether_err_set(err, AETHER_EINVAL, "%s '%s' has an empty token at %zu",
                                      what, s, i);
            token_start = i + 1;
            continue;
        }
        if (wildcards && (c == '*' || c == '>')) {
            bool whole = (i == token_start) && (s[i + 1] == '.' || s[i + 1] == '\0');
            if (!whole)
                return aether_err_set(err, AETHER_EINVAL,
                                      "%s '%s': wildcard '%c' at %zu is not a whole token",
                                      what, s, c, i);
            if (c == '>' && s[i + 1] != '\0')
                return aether_err_set(err, AETHER_EINVAL,
                                      "%s '%s': '>' must be the last token", what, s);
            continue;
        }
        if (!key_char_is_valid(c))
            return aether_err_set(err, AETHER_EINVAL,
                                  "%s '%s': byte 0x%02x at position %zu is outside "
                                  "[-/_=.a-zA-Z0-9]",
                                  what, s, c, i);
    }
    return AETHER_OK;
}

aether_status aether_kv_key_validate(const char *key, aether_err *err)
{
    return check_subject("key", key, false, err);
}

aether_status aether_kv_pattern_validate(const char *pattern, aether_err *err)
{
    return check_subject("watch pattern", pattern, true, err);
}

bool aether_kv_pattern_match(const char *pattern, const char *key)
{
    const char *p = pattern;
    const char *k = key;
    /* Bounded: each iteration consumes one token of the pattern, at most
     * AETHER_KV_KEY_LEN_MAX / 2 + 1 of them. */
    for (;;) {
        const char *pe = strchr(p, '.');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        if (plen == 1 && p[0] == '>')
            return *k != '\0'; /* one or more tokens left */
        if (*k == '\0')
            return false; /* pattern has more tokens than the key */
        const char *ke = strchr(k, '.');
        size_t klen = ke ? (size_t)(ke - k) : strlen(k);
        if (!(plen == 1 && p[0] == '*') && (plen != klen || memcmp(p, k, plen) != 0))
            return false;
        if (pe == NULL)
            return ke == NULL;
        if (ke == NULL)
            return false;
        p = pe + 1;
        k = ke + 1;
    }
}

static aether_status check_value(const void *value, size_t len, aether_err *err)
{
    if (len > AETHER_KV_VALUE_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "value is %zu bytes, more than %u", len,
                              AETHER_KV_VALUE_LEN_MAX);
    if (value == NULL && len > 0)
        return aether_err_set(err, AETHER_EINVAL, "value is NULL with length %zu", len);
    return AETHER_OK;
}

/* ---- Wrappers -------------------------------------------------------------- */

aether_status aether_kv_create(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t *rev_out, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL && rev_out != NULL);
    *rev_out = 0;
    aether_status s = aether_kv_key_validate(key, err);
    if (s == AETHER_OK)
        s = check_value(value, len, err);
    if (s != AETHER_OK)
        return s;
    s = kv->ops->create(kv, key, value, len, rev_out, err);
    AETHER_ASSERT((s == AETHER_OK) == (*rev_out != 0));
    return s;
}

aether_status aether_kv_update(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t expected_revision, uint64_t *rev_out, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL && rev_out != NULL);
    *rev_out = 0;
    aether_status s = aether_kv_key_validate(key, err);
    if (s == AETHER_OK)
        s = check_value(value, len, err);
    if (s == AETHER_OK && expected_revision == 0)
        s = aether_err_set(err, AETHER_EINVAL,
                           "update of '%s' with expected revision 0 (use create)", key);
    if (s != AETHER_OK)
        return s;
    s = kv->ops->update(kv, key, value, len, expected_revision, rev_out, err);
    AETHER_ASSERT((s == AETHER_OK) == (*rev_out != 0));
    AETHER_ASSERT(s != AETHER_OK || *rev_out > expected_revision);
    return s;
}

aether_status aether_kv_delete(aether_kv *kv, const char *key, uint64_t expected_revision,
                               uint64_t *rev_out, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL);
    uint64_t rev_local = 0;
    if (rev_out == NULL)
        rev_out = &rev_local;
    *rev_out = 0;
    aether_status s = aether_kv_key_validate(key, err);
    if (s != AETHER_OK)
        return s;
    return kv->ops->del(kv, key, expected_revision, rev_out, err);
}

aether_status aether_kv_purge(aether_kv *kv, const char *key, uint64_t *rev_out, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL);
    uint64_t rev_local = 0;
    if (rev_out == NULL)
        rev_out = &rev_local;
    *rev_out = 0;
    aether_status s = aether_kv_key_validate(key, err);
    if (s != AETHER_OK)
        return s;
    if (kv->ops->purge == NULL)
        return aether_err_set(err, AETHER_ESTATE, "this store does not support purge");
    return kv->ops->purge(kv, key, rev_out, err);
}

aether_status aether_kv_compact(aether_kv *kv, uint64_t revision, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL);
    if (revision == 0)
        return aether_err_set(err, AETHER_EINVAL, "compact: revision 0");
    if (kv->ops->compact == NULL)
        return aether_err_set(err, AETHER_ESTATE, "this store does not support compact");
    return kv->ops->compact(kv, revision, err);
}

aether_status aether_kv_get(aether_kv *kv, const char *key, aether_kv_entry *out,
                            aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    aether_status s = aether_kv_key_validate(key, err);
    if (s != AETHER_OK)
        return s;
    s = kv->ops->get(kv, key, out, err);
    AETHER_ASSERT(s != AETHER_OK || (out->value != NULL && out->revision != 0));
    if (s != AETHER_OK)
        aether_kv_entry_fini(out);
    return s;
}

aether_status aether_kv_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn,
                              void *arg, aether_kv_watcher **out, aether_err *err)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL && fn != NULL && out != NULL);
    *out = NULL;
    aether_status s = aether_kv_pattern_validate(pattern, err);
    if (s != AETHER_OK)
        return s;
    return kv->ops->watch(kv, pattern, fn, arg, out, err);
}

void aether_kv_unwatch(aether_kv *kv, aether_kv_watcher *w)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL);
    if (w == NULL)
        return;
    kv->ops->unwatch(kv, w);
}

uint64_t aether_kv_ttl_ms(aether_kv *kv)
{
    AETHER_ASSERT(kv != NULL && kv->ops != NULL);
    return kv->ops->ttl_ms(kv);
}

void aether_kv_destroy(aether_kv *kv)
{
    if (kv == NULL)
        return;
    kv->ops->destroy(kv);
}

/* ---- In-memory bucket ------------------------------------------------------ */

typedef struct mem_entry {
    char *key;          /* malloc'd, valid key */
    uint8_t *value;     /* malloc'd value_len + 1 bytes for PUT; NULL for markers */
    size_t value_len;   /* 0 for markers */
    uint64_t revision;  /* >= 1 */
    uint64_t put_at_ns; /* store clock at the write */
    aether_kv_op op;    /* PUT, DELETE or PURGE */
} mem_entry;

/* One event queued for one watcher; key and value live in data[]. */
typedef struct mem_event {
    struct mem_event *next;
    aether_kv_watcher *w;
    uint64_t seq; /* queue order; strictly increasing along the queue */
    aether_kv_op op;
    uint64_t revision;
    size_t value_len;
    size_t key_len;
    char data[]; /* key, NUL, value, NUL */
} mem_event;

struct aether_kv_watcher {
    struct aether_kv_watcher *next; /* under mu: registration order */
    aether_kv_watch_fn fn;        /* immutable */
    void *arg;                    /* immutable */
    char pattern[AETHER_KV_KEY_LEN_MAX + 1]; /* immutable */
};

typedef struct kv_mem {
    aether_kv base; /* must stay first */
    char name[AETHER_KV_NAME_LEN_MAX + 1]; /* immutable */
    uint64_t ttl_ms;                       /* immutable */
    uint64_t ttl_ns;                       /* immutable; 0 = never */
    aether_clock *clock;                   /* immutable; read under mu */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled (broadcast) whenever a callback finishes */

    mem_entry *entries;     /* under mu: sorted by key */
    uint32_t entry_count;   /* under mu */
    uint32_t entry_cap;     /* under mu */
    uint64_t last_revision; /* under mu */

    aether_kv_watcher *watchers; /* under mu */
    uint32_t watcher_count;    /* under mu */

    mem_event *q_head;          /* under mu */
    mem_event *q_tail;          /* under mu */
    uint64_t q_next_seq;        /* under mu; starts at 1 */
    bool dispatching;           /* under mu: a callback is running */
    uint64_t inflight_seq;      /* under mu: seq of that callback's event */
    aether_kv_watcher *inflight_w; /* under mu: its watcher */

    aether_rng rng;                                  /* under mu */
    aether_kv_fault fault_kind[AETHER_KV_CALL_COUNT_]; /* under mu */
    uint32_t fault_ppm[AETHER_KV_CALL_COUNT_];        /* under mu */
    aether_kv_fault next_kind[AETHER_KV_CALL_COUNT_]; /* under mu */
    uint32_t next_count[AETHER_KV_CALL_COUNT_];       /* under mu */
    uint64_t faults_injected;                         /* under mu */
} kv_mem;

static const aether_kv_ops kv_mem_ops;

/* The store whose watch callback this thread is running, if any. */
static __thread const kv_mem *kv_mem_calling;

static kv_mem *to_mem(aether_kv *kv)
{
    AETHER_ASSERT(kv != NULL && kv->ops == &kv_mem_ops);
    return (kv_mem *)kv;
}

bool aether_kv_is_mem(const aether_kv *kv)
{
    return kv != NULL && kv->ops == &kv_mem_ops;
}

static void lock_store(kv_mem *m)
{
    /* A callback re-entering its own store would wait for itself. */
    AETHER_ASSERT(kv_mem_calling != m);
    AETHER_ASSERT(pthread_mutex_lock(&m->mu) == 0);
}

static void unlock_store(kv_mem *m)
{
    AETHER_ASSERT(pthread_mutex_unlock(&m->mu) == 0);
}

/* Under mu. Consumes a scripted fault first, then rolls the probability. */
static aether_kv_fault pick_fault_locked(kv_mem *m, aether_kv_call call, const char *key)
{
    aether_kv_fault f = AETHER_KV_FAULT_NONE;
    if (m->next_count[call] > 0) {
        m->next_count[call]--;
        f = m->next_kind[call];
    } else if (m->fault_ppm[call] > 0 && m->fault_kind[call] != AETHER_KV_FAULT_NONE) {
        if (aether_rng_below(&m->rng, 1000000u) < m->fault_ppm[call])
            f = m->fault_kind[call];
    }
    if (f != AETHER_KV_FAULT_NONE) {
        m->faults_injected++;
        AETHER_DEBUG("kv_mem", "bucket '%s': injected %s on %s '%s'", m->name,
                     aether_kv_fault_name(f), aether_kv_call_name(call), key);
    }
    return f;
}

static aether_status fault_status(aether_kv_fault f, aether_err *err, const kv_mem *m,
                                  aether_kv_call call)
{
    if (f == AETHER_KV_FAULT_UNAVAILABLE)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "bucket '%s': %s: store unavailable",
                              m->name, aether_kv_call_name(call));
    return aether_err_set(err, AETHER_EUNKNOWN, "bucket '%s': %s: timed out, outcome unknown",
                          m->name, aether_kv_call_name(call));
}

/* Under mu. Index of key, or -(insertion point) - 1. */
static int64_t find_locked(const kv_mem *m, const char *key)
{
    uint32_t lo = 0, hi = m->entry_count;
    while (lo < hi) { /* bounded: log2(AETHER_KV_MEM_KEYS_MAX) + 1 iterations */
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->entries[mid].key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(int64_t)lo - 1;
}

static bool expired(const kv_mem *m, const mem_entry *e, uint64_t now_ns)
{
    if (m->ttl_ns == 0)
        return false;
    uint64_t age = now_ns >= e->put_at_ns ? now_ns - e->put_at_ns : 0;
    return age >= m->ttl_ns;
}

static void entry_free(mem_entry *e)
{
    free(e->key);
    free(e->value);
    memset(e, 0, sizeof(*e));
}

static void remove_at_locked(kv_mem *m, uint32_t i)
{
    AETHER_ASSERT(i < m->entry_count);
    entry_free(&m->entries[i]);
    memmove(&m->entries[i], &m->entries[i + 1],
            (size_t)(m->entry_count - i - 1) * sizeof(mem_entry));
    m->entry_count--;
}

/* Under mu. The key's last write if it has one that has not expired; drops
 * an expired one (silently: TTL expiry emits no event). */
static mem_entry *lookup_locked(kv_mem *m, const char *key, uint64_t now_ns)
{
    int64_t i = find_locked(m, key);
    if (i < 0)
        return NULL;
    if (expired(m, &m->entries[i], now_ns)) {
        remove_at_locked(m, (uint32_t)i);
        return NULL;
    }
    return &m->entries[i];
}

static mem_event *event_new(aether_kv_watcher *w, aether_kv_op op, const char *key,
                            const void *value, size_t value_len, uint64_t revision)
{
    size_t key_len = strlen(key);
    mem_event *ev = malloc(sizeof(*ev) + key_len + 1 + value_len + 1);
    if (ev == NULL)
        return NULL;
    ev->next = NULL;
    ev->w = w;
    ev->seq = 0;
    ev->op = op;
    ev->revision = revision;
    ev->key_len = key_len;
    ev->value_len = value_len;
    memcpy(ev->data, key, key_len + 1);
    if (value_len > 0)
        memcpy(ev->data + key_len + 1, value, value_len);
    ev->data[key_len + 1 + value_len] = '\0';
    return ev;
}

/* Under mu: appends a chain of events (already allocated) and numbers them. */
static void enqueue_locked(kv_mem *m, mem_event *chain)
{
    for (mem_event *ev = chain; ev != NULL; ev = ev->next) /* bounded: chain length */
        ev->seq = m->q_next_seq++;
    if (chain == NULL)
        return;
    if (m->q_tail == NULL)
        m->q_head = chain;
    else
        m->q_tail->next = chain;
    mem_event *t = chain;
    while (t->next != NULL) /* bounded: chain length */
        t = t->next;
    m->q_tail = t;
}

static void free_chain(mem_event *chain)
{
    while (chain != NULL) { /* bounded: chain length */
        mem_event *next = chain->next;
        free(chain);
        chain = next;
    }
}

/* Under mu: one event per watcher whose pattern matches key, in registration
 * order. Allocated before the write is applied so a write never half-happens
 * for lack of memory. */
static aether_status build_events_locked(kv_mem *m, aether_kv_op op, const char *key,
                                         const void *value, size_t value_len,
                                         uint64_t revision, mem_event **chain_out)
{
    mem_event *head = NULL, *tail = NULL;
    for (aether_kv_watcher *w = m->watchers; w != NULL; w = w->next) { /* <= WATCHERS_MAX */
        if (!aether_kv_pattern_match(w->pattern, key))
            continue;
        mem_event *ev = event_new(w, op, key, value, value_len, revision);
        if (ev == NULL) {
            free_chain(head);
            return AETHER_ENOMEM;
        }
        if (tail == NULL)
            head = ev;
        else
            tail->next = ev;
        tail = ev;
    }
    *chain_out = head;
    return AETHER_OK;
}

/* Step 3 of the DESIGN. Called without mu; my_seq 0 = nothing to wait for. */
static void deliver_until(kv_mem *m, uint64_t my_seq)
{
    if (my_seq == 0)
        return;
    lock_store(m);
    for (;;) { /* bounded: see DESIGN step 3 */
        bool queued = m->q_head != NULL && m->q_head->seq <= my_seq;
        bool inflight = m->dispatching && m->inflight_seq <= my_seq;
        if (!queued && !inflight)
            break;
        if (m->dispatching) {
            AETHER_ASSERT(pthread_cond_wait(&m->cv, &m->mu) == 0);
            continue;
        }
        mem_event *ev = m->q_head;
        m->q_head = ev->next;
        if (m->q_head == NULL)
            m->q_tail = NULL;
        m->dispatching = true;
        m->inflight_seq = ev->seq;
        m->inflight_w = ev->w;
        aether_kv_watch_fn fn = ev->w->fn;
        void *arg = ev->w->arg;
        unlock_store(m);

        aether_kv_event out = {
            .op = ev->op,
            .key = ev->data,
            .value = ev->op == AETHER_KV_OP_PUT ? (const uint8_t *)ev->data + ev->key_len + 1
                                                : NULL,
            .value_len = ev->op == AETHER_KV_OP_PUT ? ev->value_len : 0,
            .revision = ev->revision,
        };
        const kv_mem *outer = kv_mem_calling; /* a callback of another store may be running */
        kv_mem_calling = m;
        fn(arg, &out);
        kv_mem_calling = outer;
        free(ev);

        lock_store(m);
        m->dispatching = false;
        m->inflight_seq = 0;
        m->inflight_w = NULL;
        AETHER_ASSERT(pthread_cond_broadcast(&m->cv) == 0);
    }
    unlock_store(m);
}

/* Under mu: writes (or overwrites) key's last write. value NULL for markers.
 * Builds the events first; on failure nothing changed. */
static aether_status write_locked(kv_mem *m, const char *key, aether_kv_op op, const void *value,
                                  size_t value_len, uint64_t now_ns, uint64_t *rev_out,
                                  uint64_t *my_seq, aether_err *err)
{
    int64_t idx = find_locked(m, key);
    if (idx < 0 && m->entry_count >= AETHER_KV_MEM_KEYS_MAX)
        return aether_err_set(err, AETHER_EFULL, "bucket '%s' holds %u keys, the maximum",
                              m->name, AETHER_KV_MEM_KEYS_MAX);
    uint64_t rev = m->last_revision + 1;
    uint8_t *copy = NULL;
    char *key_copy = NULL;
    mem_event *chain = NULL;
    if (op == AETHER_KV_OP_PUT) {
        copy = malloc(value_len + 1);
        if (copy == NULL)
            goto fail;
        if (value_len > 0)
            memcpy(copy, value, value_len);
        copy[value_len] = 0;
    }
    if (idx < 0) {
        key_copy = strdup(key);
        if (key_copy == NULL)
            goto fail;
        if (m->entry_count == m->entry_cap) {
            uint32_t cap = m->entry_cap ? m->entry_cap * 2 : 16;
            if (cap > AETHER_KV_MEM_KEYS_MAX)
                cap = AETHER_KV_MEM_KEYS_MAX;
            mem_entry *grown = realloc(m->entries, (size_t)cap * sizeof(mem_entry));
            if (grown == NULL)
                goto fail;
            m->entries = grown;
            m->entry_cap = cap;
        }
    }
    if (build_events_locked(m, op, key, value, value_len, rev, &chain) != AETHER_OK)
        goto fail;

    /* Nothing can fail from here on. */
    mem_entry *e;
    if (idx < 0) {
        uint32_t at = (uint32_t)(-idx - 1);
        memmove(&m->entries[at + 1], &m->entries[at],
                (size_t)(m->entry_count - at) * sizeof(mem_entry));
        m->entry_count++;
        e = &m->entries[at];
        memset(e, 0, sizeof(*e));
        e->key = key_copy;
    } else {
        e = &m->entries[idx];
        free(e->value);
    }
    e->value = copy;
    e->value_len = op == AETHER_KV_OP_PUT ? value_len : 0;
    e->revision = rev;
    e->put_at_ns = now_ns;
    e->op = op;
    m->last_revision = rev;
    enqueue_locked(m, chain);
    if (chain != NULL)
        *my_seq = m->q_next_seq - 1;
    *rev_out = rev;
    return AETHER_OK;

fail:
    free(copy);
    free(key_copy);
    return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': out of memory writing '%s'",
                          m->name, key);
}

/* The common shape of the four writes. `kind` decides whether the write may
 * proceed given the key's current last write. */
typedef enum write_kind { WRITE_CREATE, WRITE_UPDATE, WRITE_DELETE, WRITE_PURGE } write_kind;

static aether_status mem_write(aether_kv *kv, write_kind kind, const char *key,
                               const void *value, size_t len, uint64_t expected,
                               uint64_t *rev_out, aether_err *err)
{
    static const aether_kv_call calls[] = {AETHER_KV_CALL_CREATE, AETHER_KV_CALL_UPDATE,
                                           AETHER_KV_CALL_DELETE, AETHER_KV_CALL_PURGE};
    static const aether_kv_op ops[] = {AETHER_KV_OP_PUT, AETHER_KV_OP_PUT, AETHER_KV_OP_DELETE,
                                       AETHER_KV_OP_PURGE};
    kv_mem *m = to_mem(kv);
    aether_kv_call call = calls[kind];
    uint64_t my_seq = 0;
    aether_status s;

    lock_store(m);
    aether_kv_fault f = pick_fault_locked(m, call, key);
    if (f == AETHER_KV_FAULT_UNAVAILABLE || f == AETHER_KV_FAULT_UNKNOWN_NOT_APPLIED) {
        s = fault_status(f, err, m, call);
        unlock_store(m);
        return s;
    }
    uint64_t now = aether_clock_now_ns(m->clock);
    const mem_entry *e = lookup_locked(m, key, now);
    switch (kind) {
    case WRITE_CREATE:
        s = (e != NULL && e->op == AETHER_KV_OP_PUT)
                ? aether_err_set(err, AETHER_EEXIST, "key '%s' exists (revision %llu)", key,
                                 (unsigned long long)e->revision)
                : AETHER_OK;
        break;
    case WRITE_UPDATE:
    case WRITE_DELETE:
        if (kind == WRITE_DELETE && expected == 0)
            s = AETHER_OK;
        else if (e == NULL)
            s = aether_err_set(err, AETHER_ECONFLICT,
                               "key '%s' is absent, expected revision %llu", key,
                               (unsigned long long)expected);
        else if (e->revision != expected)
            s = aether_err_set(err, AETHER_ECONFLICT,
                               "key '%s' is at revision %llu, expected %llu", key,
                               (unsigned long long)e->revision, (unsigned long long)expected);
        else
            s = AETHER_OK;
        break;
    case WRITE_PURGE:
    default:
        s = AETHER_OK;
        break;
    }
    if (s == AETHER_OK)
        s = write_locked(m, key, ops[kind], value, len, now, rev_out, &my_seq, err);
    if (f == AETHER_KV_FAULT_UNKNOWN_APPLIED) {
        /* The write (or its refusal) happened; the reply was lost. */
        *rev_out = 0;
        s = fault_status(f, err, m, call);
    }
    unlock_store(m);
    deliver_until(m, my_seq);
    return s;
}

static aether_status mem_create(aether_kv *kv, const char *key, const void *value, size_t len,
                                uint64_t *rev_out, aether_err *err)
{
    return mem_write(kv, WRITE_CREATE, key, value, len, 0, rev_out, err);
}

static aether_status mem_update(aether_kv *kv, const char *key, const void *value, size_t len,
                                uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    return mem_write(kv, WRITE_UPDATE, key, value, len, expected, rev_out, err);
}

static aether_status mem_del(aether_kv *kv, const char *key, uint64_t expected,
                             uint64_t *rev_out, aether_err *err)
{
    return mem_write(kv, WRITE_DELETE, key, NULL, 0, expected, rev_out, err);
}

static aether_status mem_purge(aether_kv *kv, const char *key, uint64_t *rev_out,
                               aether_err *err)
{
    return mem_write(kv, WRITE_PURGE, key, NULL, 0, 0, rev_out, err);
}

static aether_status mem_compact(aether_kv *kv, uint64_t revision, aether_err *err)
{
    (void)err;
    kv_mem *m = to_mem(kv);
    lock_store(m);
    uint32_t keep = 0;
    for (uint32_t i = 0; i < m->entry_count; i++) { /* bounded: entry_count; order kept */
        if (m->entries[i].revision < revision)
            entry_free(&m->entries[i]);
        else
            m->entries[keep++] = m->entries[i];
    }
    m->entry_count = keep;
    if (m->last_revision < revision - 1)
        m->last_revision = revision - 1;
    unlock_store(m);
    return AETHER_OK;
}

static aether_status mem_get(aether_kv *kv, const char *key, aether_kv_entry *out,
                             aether_err *err)
{
    kv_mem *m = to_mem(kv);
    aether_status s = AETHER_OK;
    lock_store(m);
    aether_kv_fault f = pick_fault_locked(m, AETHER_KV_CALL_GET, key);
    if (f != AETHER_KV_FAULT_NONE) {
        s = fault_status(f, err, m, AETHER_KV_CALL_GET);
        goto out;
    }
    const mem_entry *e = lookup_locked(m, key, aether_clock_now_ns(m->clock));
    if (e == NULL || e->op != AETHER_KV_OP_PUT) {
        s = aether_err_set(err, AETHER_ENOTFOUND, "key '%s' not found", key);
        goto out;
    }
    out->value = malloc(e->value_len + 1);
    if (out->value == NULL) {
        s = aether_err_set(err, AETHER_ENOMEM, "out of memory reading '%s'", key);
        goto out;
    }
    memcpy(out->value, e->value, e->value_len + 1);
    out->value_len = e->value_len;
    out->revision = e->revision;
    snprintf(out->key, sizeof(out->key), "%s", key);
out:
    unlock_store(m);
    return s;
}

static int event_rev_cmp(const void *a, const void *b)
{
    const mem_entry *x = *(const mem_entry *const *)a;
    const mem_entry *y = *(const mem_entry *const *)b;
    return x->revision < y->revision ? -1 : x->revision > y->revision;
}

static aether_status mem_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn,
                               void *arg, aether_kv_watcher **out, aether_err *err)
{
    kv_mem *m = to_mem(kv);
    aether_status s = AETHER_OK;
    aether_kv_watcher *w = NULL;
    const mem_entry **matching = NULL;
    mem_event *chain = NULL, *tail = NULL;
    uint64_t my_seq = 0;

    lock_store(m);
    aether_kv_fault f = pick_fault_locked(m, AETHER_KV_CALL_WATCH, pattern);
    if (f != AETHER_KV_FAULT_NONE) {
        s = fault_status(f, err, m, AETHER_KV_CALL_WATCH);
        goto fail;
    }
    if (m->watcher_count >= AETHER_KV_WATCHERS_MAX) {
        s = aether_err_set(err, AETHER_EFULL, "bucket '%s' has %u watchers, the maximum",
                           m->name, AETHER_KV_WATCHERS_MAX);
        goto fail;
    }
    w = calloc(1, sizeof(*w));
    matching = malloc(((size_t)m->entry_count + 1) * sizeof(*matching));
    if (w == NULL || matching == NULL)
        goto nomem;
    w->fn = fn;
    w->arg = arg;
    snprintf(w->pattern, sizeof(w->pattern), "%s", pattern);

    /* Initial values: the live last write of each matching key, oldest first.
     * Expired entries are dropped on the way (no event). */
    uint64_t now = aether_clock_now_ns(m->clock);
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->entry_count;) { /* bounded: entry_count, which only shrinks */
        if (expired(m, &m->entries[i], now)) {
            remove_at_locked(m, i);
            continue;
        }
        if (aether_kv_pattern_match(pattern, m->entries[i].key))
            matching[n++] = &m->entries[i];
        i++;
    }
    qsort(matching, n, sizeof(*matching), event_rev_cmp);
    for (uint32_t i = 0; i <= n; i++) { /* bounded: n + 1 */
        mem_event *ev = i < n ? event_new(w, matching[i]->op, matching[i]->key,
                                          matching[i]->value, matching[i]->value_len,
                                          matching[i]->revision)
                              : event_new(w, AETHER_KV_OP_INIT_DONE, "", NULL, 0, 0);
        if (ev == NULL)
            goto nomem;
        if (tail == NULL)
            chain = ev;
        else
            tail->next = ev;
        tail = ev;
    }
    free(matching);
    matching = NULL;

    /* Register at the end: registration order is delivery order per write. */
    aether_kv_watcher **pp = &m->watchers;
    while (*pp != NULL) /* bounded: watcher_count < AETHER_KV_WATCHERS_MAX */
        pp = &(*pp)->next;
    *pp = w;
    m->watcher_count++;
    enqueue_locked(m, chain);
    my_seq = m->q_next_seq - 1;
    unlock_store(m);

    *out = w;
    deliver_until(m, my_seq);
    return AETHER_OK;

nomem:
    s = aether_err_set(err, AETHER_ENOMEM, "bucket '%s': out of memory starting a watch",
                       m->name);
fail:
    unlock_store(m);
    free_chain(chain);
    free(matching);
    free(w);
    return s;
}

static void mem_unwatch(aether_kv *kv, aether_kv_watcher *w)
{
    kv_mem *m = to_mem(kv);
    mem_event *dropped = NULL;
    lock_store(m);
    aether_kv_watcher **pp = &m->watchers;
    while (*pp != NULL && *pp != w) /* bounded: watcher_count */
        pp = &(*pp)->next;
    AETHER_ASSERT(*pp == w); /* a watcher of this store, not yet unwatched */
    *pp = w->next;
    m->watcher_count--;
    /* Drop its queued events; the queue keeps its order. */
    mem_event **ep = &m->q_head;
    m->q_tail = NULL;
    while (*ep != NULL) { /* bounded: queue length */
        mem_event *ev = *ep;
        if (ev->w == w) {
            *ep = ev->next;
            ev->next = dropped;
            dropped = ev;
        } else {
            m->q_tail = ev;
            ep = &ev->next;
        }
    }
    while (m->dispatching && m->inflight_w == w) /* bounded: one callback */
        AETHER_ASSERT(pthread_cond_wait(&m->cv, &m->mu) == 0);
    unlock_store(m);
    free_chain(dropped);
    free(w);
}

static uint64_t mem_ttl_ms(aether_kv *kv)
{
    return to_mem(kv)->ttl_ms;
}

static void mem_destroy(aether_kv *kv)
{
    kv_mem *m = to_mem(kv);
    AETHER_ASSERT(!m->dispatching);
    for (uint32_t i = 0; i < m->entry_count; i++) /* bounded: entry_count */
        entry_free(&m->entries[i]);
    free(m->entries);
    free_chain(m->q_head);
    aether_kv_watcher *w = m->watchers;
    while (w != NULL) { /* bounded: watcher_count */
        aether_kv_watcher *next = w->next;
        free(w);
        w = next;
    }
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const aether_kv_ops kv_mem_ops = {
    .create = mem_create,
    .update = mem_update,
    .del = mem_del,
    .purge = mem_purge,
    .get = mem_get,
    .watch = mem_watch,
    .unwatch = mem_unwatch,
    .ttl_ms = mem_ttl_ms,
    .destroy = mem_destroy,
    .compact = mem_compact,
};

aether_status aether_kv_mem_create(const aether_kv_mem_config *cfg, aether_kv **out,
                                   aether_err *err)
{
    AETHER_ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    const char *name = cfg->name ? cfg->name : "kv";
    size_t name_len = strnlen(name, AETHER_KV_NAME_LEN_MAX + 1);
    if (name_len == 0 || name_len > AETHER_KV_NAME_LEN_MAX)
        return aether_err_set(err, AETHER_EINVAL, "name: must be 1..%u bytes",
                              AETHER_KV_NAME_LEN_MAX);
    if (cfg->clock == NULL)
        return aether_err_set(err, AETHER_EINVAL, "clock: required");
    if (cfg->ttl_ms > AETHER_KV_TTL_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "ttl_ms: %llu is more than %llu",
                              (unsigned long long)cfg->ttl_ms,
                              (unsigned long long)AETHER_KV_TTL_MS_MAX);

    kv_mem *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "out of memory creating bucket '%s'", name);
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': mutex init failed", name);
    }
    if (pthread_cond_init(&m->cv, NULL) != 0) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return aether_err_set(err, AETHER_ENOMEM, "bucket '%s': condvar init failed", name);
    }
    m->base.ops = &kv_mem_ops;
    memcpy(m->name, name, name_len);
    m->ttl_ms = cfg->ttl_ms;
    m->ttl_ns = cfg->ttl_ms * AETHER_NS_PER_MS;
    m->clock = cfg->clock;
    m->q_next_seq = 1;
    if (cfg->rng != NULL)
        aether_rng_split(cfg->rng, &m->rng);
    else
        aether_rng_seed(&m->rng, 0);
    *out = &m->base;
    return AETHER_OK;
}

void aether_kv_mem_set_fault(aether_kv *kv, aether_kv_call call, aether_kv_fault fault,
                             uint32_t per_million)
{
    kv_mem *m = to_mem(kv);
    AETHER_ASSERT((unsigned)call < AETHER_KV_CALL_COUNT_);
    AETHER_ASSERT((unsigned)fault < AETHER_KV_FAULT_COUNT_);
    AETHER_ASSERT(per_million <= 1000000u);
    lock_store(m);
    m->fault_kind[call] = fault;
    m->fault_ppm[call] = fault == AETHER_KV_FAULT_NONE ? 0 : per_million;
    unlock_store(m);
}

void aether_kv_mem_fail_next(aether_kv *kv, aether_kv_call call, aether_kv_fault fault,
                             uint32_t count)
{
    kv_mem *m = to_mem(kv);
    AETHER_ASSERT((unsigned)call < AETHER_KV_CALL_COUNT_);
    AETHER_ASSERT((unsigned)fault < AETHER_KV_FAULT_COUNT_);
    lock_store(m);
    m->next_kind[call] = fault;
    m->next_count[call] = fault == AETHER_KV_FAULT_NONE ? 0 : count;
    unlock_store(m);
}

void aether_kv_mem_clear_faults(aether_kv *kv)
{
    kv_mem *m = to_mem(kv);
    lock_store(m);
    memset(m->fault_kind, 0, sizeof(m->fault_kind));
    memset(m->fault_ppm, 0, sizeof(m->fault_ppm));
    memset(m->next_kind, 0, sizeof(m->next_kind));
    memset(m->next_count, 0, sizeof(m->next_count));
    unlock_store(m);
}

uint64_t aether_kv_mem_faults_injected(aether_kv *kv)
{
    kv_mem *m = to_mem(kv);
    lock_store(m);
    uint64_t n = m->faults_injected;
    unlock_store(m);
    return n;
}

uint64_t aether_kv_mem_last_revision(aether_kv *kv)
{
    kv_mem *m = to_mem(kv);
    lock_store(m);
    uint64_t r = m->last_revision;
    unlock_store(m);
    return r;
}

void aether_kv_mem_wipe(aether_kv *kv)
{
    kv_mem *m = to_mem(kv);
    lock_store(m);
    for (uint32_t i = 0; i < m->entry_count; i++) /* bounded: entry_count */
        entry_free(&m->entries[i]);
    m->entry_count = 0;
    m->last_revision = 0;
    AETHER_INFO("kv_mem", "bucket '%s' wiped: revisions restart at 1", m->name);
    unlock_store(m);
}
