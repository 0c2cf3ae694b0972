/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inproc.c: the in-process hub (transport layer). See inproc.h for the
 * contract.
 *
 * DESIGN (simulated network)
 *  1. A send decides, under the hub mutex and in endpoint-creation order,
 *     which endpoints may receive (bound, not isolated, link up, and for
 *     heartbeats serving commands), then draws per receiver from the hub's
 *     generator: lost? delay, reordered? duplicated? It wraps the payload
 *     once in a reference-counted parcel (an event is retained, a map copied
 *     once) and pushes one delivery per receiver (and per duplicate) into a
 *     binary heap ordered by (time, sequence). The sequence number makes the
 *     order total, so equal times deliver in send order.
 *  2. Per link (sender slot -> receiver slot) the hub remembers the latest
 *     delivery time it scheduled; a delivery that is not reordered is
 *     scheduled no earlier, which keeps each link FIFO.
 *  3. The net actor is woken by a one-shot timer at the earliest delivery
 *     time (re-armed whenever a push brings that time forward). When it runs
 *     it pops every delivery due at the current time (at most
 *     NET_BATCH_MAX, then it yields to the other actors by sending itself a
 *     message) and calls the receiver's sink under the mutex, after checking
 *     again that the receiver still exists (slot and generation), is bound,
 *     not isolated, and reachable.
 *  4. Commands carry a reply box; the server's reply goes back through the
 *     hub (step 1 again, towards the sender) or, if lost, becomes an
 *     EUNKNOWN answer request_timeout later. The box is freed when its
 *     answer is delivered or dropped, so every box is freed exactly once.
 * The mutex is recursive: a sink may answer a command at once (mailbox
 * full), which re-enters the hub from inside a delivery.
 */
#include "inproc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "log.h"
#include "rng.h"

#define HUB_ENDPOINTS_MAX 4096u
#define NET_BATCH_MAX 4096u          /* deliveries per run of the net actor */
#define NET_QUEUE_MAX_DEFAULT (1u << 22)
#define NET_MSG_TICK 1
#define NET_MSG_MORE 2
#define INPROC_LOG "inproc"

AETHER_STATIC_ASSERT(AETHER_INPROC_GROUPS_MAX <= 32, "links fit in a 32-bit mask per group");

typedef struct endpoint {
    aether_transport base; /* first */
    aether_inproc_hub *hub;
    aether_node_id self;   /* immutable */
    uint32_t slot;         /* immutable: index in hub->slots */
    uint64_t gen;          /* immutable: tells this endpoint from earlier users of the slot */
    /* Under hub->mu: */
    aether_transport_sink sink;
    bool bound;
    bool unbound;          /* was bound, then unbound: replies are dropped */
    bool serving;
    uint64_t *fifo_at;     /* [fifo_len]: latest delivery time scheduled from slot i */
    uint32_t fifo_len;
} endpoint;

typedef enum parcel_kind {
    P_EVENT = 0,
    P_MAP,
    P_HEARTBEAT,
    P_COMMAND,
    P_RELEASE,
    P_REPLY,
} parcel_kind;

/* The reply path of one command. */
typedef struct reply_box {
    aether_inproc_hub *hub;
    uint32_t sender_slot;
    uint64_t sender_gen;
    aether_node_id sender;
    aether_node_id server; /* set when the command reaches its server */
    aether_reply_fn fn;
    void *arg;
} reply_box;

typedef struct parcel {
    uint32_t refs; /* under mu */
    parcel_kind kind;
    aether_node_id from; /* the sending node (the server, for a reply) */
    char *json;          /* P_MAP: owned copy of the published bytes, or NULL */
    size_t json_len;
    union {
        aether_event *event;   /* retained */
        aether_shardmap *map;  /* owned copy */
        struct {
            aether_node_id node;
            uint64_t incarnation;
        } hb;
        struct {
            aether_command cmd;
            reply_box *box;    /* owned until delivered */
        } command;
        aether_release_ack ack;
        struct {
            aether_status status;
            char reason[AETHER_ERR_MSG_MAX];
            reply_box *box;    /* owned */
            bool local;        /* a timeout: the sender's own doing, needs no network */
        } reply;
    } u;
} parcel;

typedef struct delivery {
    uint64_t at_ns;
    uint64_t seq;
    uint32_t to_slot;
    uint64_t to_gen;
    parcel *p;
} delivery;

struct aether_inproc_hub {
    pthread_mutex_t mu;    /* recursive */
    endpoint **eps;        /* under mu; creation order */
    uint32_t count, cap;
    endpoint **slots;      /* under mu: by slot index, NULL when free */
    uint32_t n_slots;
    uint64_t next_gen;
    /* Isolated node ids, under mu. */
    aether_node_id *isolated;
    uint32_t n_isolated, cap_isolated;
    /* Groups (under mu): ascending by id; node ids not listed are in group 0. */
    struct group_entry {
        aether_node_id id;
        uint32_t group;
    } *groups;
    uint32_t n_groups, cap_groups;
    uint32_t link_down[AETHER_INPROC_GROUPS_MAX]; /* bit b of [a]: link a->b is down */
    aether_inproc_stats stats; /* under mu (delivered also read with a relaxed atomic) */
    aether_inproc_map_tap_fn map_tap; /* under mu */
    void *map_tap_arg;
    aether_inproc_event_tap_fn event_tap; /* under mu */
    void *event_tap_arg;

    /* Simulated network; net == false for a synchronous hub. */
    bool net;
    aether_executor *ex;   /* immutable */
    aether_clock *clock;   /* immutable: the executor's */
    aether_actor *actor;   /* immutable: the net actor */
    aether_rng rng;        /* under mu */
    aether_inproc_net_faults faults; /* under mu */
    uint64_t request_timeout_ns;     /* immutable */
    uint32_t queue_max;              /* immutable */
    delivery *heap;        /* under mu: min-heap by (at_ns, seq) */
    uint32_t heap_n, heap_cap;
    uint64_t next_seq;
    uint64_t armed_at;     /* earliest timer we armed that has not fired; UINT64_MAX = none */
    bool more_sent;        /* a NET_MSG_MORE is in the net actor's mailbox */
};

static void lock(aether_inproc_hub *h) { AETHER_ASSERT(pthread_mutex_lock(&h->mu) == 0); }
static void unlock(aether_inproc_hub *h) { AETHER_ASSERT(pthread_mutex_unlock(&h->mu) == 0); }

static bool is_isolated_locked(const aether_inproc_hub *h, const aether_node_id *id)
{
    for (uint32_t i = 0; i < h->n_isolated; i++)
        if (aether_node_id_equal(&h->isolated[i], id))
            return true;
    return false;
}

/* Index of id in the groups (ascending by id), or where it would go. */
static uint32_t group_find_locked(const aether_inproc_hub *h, const aether_node_id *id, bool *found)
{
    uint32_t lo = 0, hi = h->n_groups;
    while (lo < hi) { /* bounded: log2(n_groups) + 1 */
        uint32_t mid = lo + (hi - lo) / 2;
        int c = aether_node_id_compare(&h->groups[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static uint32_t group_of_locked(const aether_inproc_hub *h, const aether_node_id *id)
{
    bool found;
    uint32_t i = group_find_locked(h, id, &found);
    return found ? h->groups[i].group : 0;
}

/* Can a message from `from` reach `to` now (isolation and group links)? */
static bool reachable_locked(const aether_inproc_hub *h, const aether_node_id *from,
                             const aether_node_id *to)
{
    if (is_isolated_locked(h, from) || is_isolated_locked(h, to))
        return false;
    if (h->n_groups == 0)
        return true;
    uint32_t a = group_of_locked(h, from), b = group_of_locked(h, to);
    return (h->link_down[a] & (1u << b)) == 0;
}

static endpoint *as_ep(aether_transport *t) { return (endpoint *)t; }

/* ---- parcels and the delivery heap ----------------------------------------- */

static parcel *parcel_new(parcel_kind kind, const aether_node_id *from)
{
    parcel *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->kind = kind;
        p->refs = 1;
        p->from = *from;
    }
    return p;
}

static void parcel_release_locked(parcel *p)
{
    AETHER_ASSERT(p->refs > 0);
    if (--p->refs > 0)
        return;
    switch (p->kind) {
    case P_EVENT:
        aether_event_release(p->u.event);
        break;
    case P_MAP:
        aether_shardmap_destroy(p->u.map);
        free(p->json);
        break;
    case P_COMMAND:
        free(p->u.command.box);
        break;
    case P_REPLY:
        free(p->u.reply.box);
        break;
    default:
        break;
    }
    free(p);
}

static bool delivery_before(const delivery *a, const delivery *b)
{
    return a->at_ns < b->at_ns || (a->at_ns == b->at_ns && a->seq < b->seq);
}

static void arm_locked(aether_inproc_hub *h, uint64_t at_ns)
{
    if (at_ns >= h->armed_at)
        return;
    uint64_t now = aether_clock_now_ns(h->clock);
    aether_msg t = { .type = NET_MSG_TICK };
    if (aether_timer_start(h->actor, at_ns > now ? at_ns - now : 0, 0, &t, NULL) == AETHER_OK)
        h->armed_at = at_ns;
}

/* Takes one reference to p for the delivery. False if the queue is full. */
static bool push_locked(aether_inproc_hub *h, uint64_t at_ns, const endpoint *to, parcel *p)
{
    if (h->heap_n >= h->queue_max) {
        h->stats.dropped++;
        return false;
    }
    if (h->heap_n == h->heap_cap) {
        uint32_t cap = h->heap_cap ? h->heap_cap * 2 : 1024;
        delivery *v = realloc(h->heap, (size_t)cap * sizeof(*v));
        if (v == NULL) {
            h->stats.dropped++;
            return false;
        }
        h->heap = v;
        h->heap_cap = cap;
    }
    delivery d = { .at_ns = at_ns, .seq = h->next_seq++, .to_slot = to->slot, .to_gen = to->gen, .p = p };
    p->refs++;
    uint32_t i = h->heap_n++;
    while (i > 0) { /* bounded: log2(heap_n) */
        uint32_t parent = (i - 1) / 2;
        if (!delivery_before(&d, &h->heap[parent]))
            break;
        h->heap[i] = h->heap[parent];
        i = parent;
    }
    h->heap[i] = d;
    h->stats.in_flight = h->heap_n;
    arm_locked(h, at_ns);
    return true;
}

static delivery pop_locked(aether_inproc_hub *h)
{
    AETHER_ASSERT(h->heap_n > 0);
    delivery top = h->heap[0];
    delivery last = h->heap[--h->heap_n];
    uint32_t i = 0;
    for (;;) { /* bounded: log2(heap_n) */
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const delivery *best = &last;
        if (l < h->heap_n && delivery_before(&h->heap[l], best)) {
            m = l;
            best = &h->heap[l];
        }
        if (r < h->heap_n && delivery_before(&h->heap[r], best))
            m = r;
        if (m == i)
            break;
        h->heap[i] = h->heap[m];
        i = m;
    }
    if (h->heap_n > 0)
        h->heap[i] = last;
    h->stats.in_flight = h->heap_n;
    return top;
}

static uint64_t draw_delay_ns(aether_inproc_hub *h)
{
    const aether_inproc_net_faults *f = &h->faults;
    uint64_t us;
    if (f->delay_max_us == f->delay_min_us) {
        us = f->delay_min_us;
    } else if (f->delay_kind == AETHER_INPROC_DELAY_EXPONENTIAL && f->delay_mean_us > f->delay_min_us) {
        /* Inverse transform of a uniform in (0, 1]; the same bits give the same
         * value on every run of the same binary. */
        double u = (double)(aether_rng_next(&h->rng) >> 11) * 0x1.0p-53;
        double x = -log(1.0 - u) * (double)(f->delay_mean_us - f->delay_min_us);
        double cap = (double)(f->delay_max_us - f->delay_min_us);
        us = f->delay_min_us + (uint64_t)(x < cap ? x : cap);
    } else {
        us = aether_rng_range(&h->rng, f->delay_min_us, f->delay_max_us);
    }
    return us * 1000u;
}

static bool chance(aether_inproc_hub *h, uint32_t ppm)
{
    return ppm > 0 && aether_rng_below(&h->rng, 1000000u) < ppm;
}

/* Step 1-2 of the DESIGN for one receiver: loss, delay, FIFO, reorder,
 * duplicate. `may_dup` is false for requests. Returns the copies queued (0:
 * lost or dropped). */
static uint32_t schedule_locked(aether_inproc_hub *h, const endpoint *from, endpoint *to,
                                parcel *p, bool may_dup)
{
    const aether_inproc_net_faults *f = &h->faults;
    if (chance(h, f->loss_ppm)) {
        h->stats.lost++;
        return 0;
    }
    uint64_t now = aether_clock_now_ns(h->clock);
    uint32_t copies = (may_dup && chance(h, f->dup_ppm)) ? 2 : 1;
    if (copies == 2)
        h->stats.duplicated++;
    uint32_t queued = 0;
    for (uint32_t c = 0; c < copies; c++) {
        uint64_t at = now + draw_delay_ns(h);
        if (chance(h, f->reorder_ppm)) {
            h->stats.reordered++;
            at += aether_rng_below(&h->rng, 3 * f->delay_max_us * 1000u + 1);
        } else {
            if (to->fifo_len <= from->slot) {
                uint32_t len = h->n_slots > from->slot ? h->n_slots : from->slot + 1;
                uint64_t *v = realloc(to->fifo_at, (size_t)len * sizeof(*v));
                if (v != NULL) {
                    memset(v + to->fifo_len, 0, (size_t)(len - to->fifo_len) * sizeof(*v));
                    to->fifo_at = v;
                    to->fifo_len = len;
                }
            }
            if (from->slot < to->fifo_len) {
                if (at < to->fifo_at[from->slot])
                    at = to->fifo_at[from->slot];
                to->fifo_at[from->slot] = at;
            }
        }
        queued += push_locked(h, at, to, p);
    }
    return queued;
}

/* Queues the answer to a command for its sender; consumes `box`. Lost on the
 * way back (or cut off from the server), or timed_out: the sender hears
 * AETHER_EUNKNOWN after the request timeout instead. */
static void answer_locked(aether_inproc_hub *h, reply_box *box, aether_status status,
                          const char *reason, bool timed_out)
{
    endpoint *to = box->sender_slot < h->n_slots ? h->slots[box->sender_slot] : NULL;
    if (to == NULL || to->gen != box->sender_gen) {
        free(box); /* the sender is gone */
        return;
    }
    if (!timed_out && !reachable_locked(h, &box->server, &box->sender)) {
        h->stats.blocked++;
        timed_out = true;
    } else if (!timed_out && chance(h, h->faults.loss_ppm)) {
        h->stats.lost++;
        timed_out = true;
    }
    parcel *p = parcel_new(P_REPLY, &box->server);
    if (p == NULL) {
        free(box);
        return;
    }
    p->u.reply.status = timed_out ? AETHER_EUNKNOWN : status;
    snprintf(p->u.reply.reason, sizeof(p->u.reply.reason), "%s",
             timed_out ? "request timed out" : reason ? reason : "");
    p->u.reply.box = box;
    p->u.reply.local = timed_out;
    uint64_t at = aether_clock_now_ns(h->clock);
    if (timed_out) {
        h->stats.timeouts++;
        at += h->request_timeout_ns;
    } else {
        at += draw_delay_ns(h);
    }
    (void)push_locked(h, at, to, p);
    parcel_release_locked(p); /* frees the box too if it could not be queued */
}

/* ---- the reply trampoline (both modes) -------------------------------------- */

static endpoint *slot_endpoint_locked(aether_inproc_hub *h, uint32_t slot, uint64_t gen)
{
    endpoint *ep = slot < h->n_slots ? h->slots[slot] : NULL;
    return ep != NULL && ep->gen == gen ? ep : NULL;
}

/* Server side: `arg` is the reply_box; called exactly once by the server. */
static void hub_reply(void *arg, aether_status status, const char *reason)
{
    reply_box *box = arg;
    aether_inproc_hub *h = box->hub;
    lock(h);
    if (h->net) {
        answer_locked(h, box, status, reason, false);
    } else {
        endpoint *to = slot_endpoint_locked(h, box->sender_slot, box->sender_gen);
        if (to != NULL && !to->unbound && box->fn != NULL)
            box->fn(box->arg, status, reason);
        free(box);
    }
    unlock(h);
}

/* ---- delivery (net actor) ------------------------------------------------- */

static void deliver_one_locked(aether_inproc_hub *h, const delivery *d)
{
    parcel *p = d->p;
    endpoint *to = slot_endpoint_locked(h, d->to_slot, d->to_gen);
    if (p->kind == P_REPLY) {
        reply_box *box = p->u.reply.box;
        if (box != NULL && to != NULL && !to->unbound && !p->u.reply.local &&
            is_isolated_locked(h, &to->self)) {
            /* The answer cannot reach an isolated sender: it times out. Every
             * request of a bound endpoint gets exactly one answer. */
            p->u.reply.box = NULL;
            h->stats.blocked++;
            answer_locked(h, box, AETHER_EUNKNOWN, NULL, true);
        } else if (box == NULL || to == NULL || to->unbound) {
            h->stats.dropped++;
        } else {
            p->u.reply.box = NULL; /* answered once */
            if (box->fn != NULL)
                box->fn(box->arg, p->u.reply.status, p->u.reply.reason);
            h->stats.delivered++;
            free(box);
        }
        return;
    }
    bool ok = to != NULL && to->bound && reachable_locked(h, &p->from, &to->self);
    if (ok && (p->kind == P_COMMAND || p->kind == P_RELEASE || p->kind == P_HEARTBEAT))
        ok = to->serving; /* for the leader only; it may have stepped down meanwhile */
    if (!ok) {
        if (to != NULL && to->bound)
            h->stats.blocked++;
        else
            h->stats.dropped++;
        if (p->kind == P_COMMAND && p->u.command.box != NULL) {
            reply_box *box = p->u.command.box;
            p->u.command.box = NULL;
            answer_locked(h, box, AETHER_EUNKNOWN, NULL, true);
        }
        return;
    }
    switch (p->kind) {
    case P_EVENT:
        if (to->sink.on_event != NULL)
            to->sink.on_event(to->sink.arg, p->u.event);
        break;
    case P_MAP:
        if (to->sink.on_map != NULL)
            to->sink.on_map(to->sink.arg, p->u.map, p->json, p->json_len);
        break;
    case P_HEARTBEAT:
        if (to->sink.on_heartbeat != NULL)
            to->sink.on_heartbeat(to->sink.arg, &p->u.hb.node, p->u.hb.incarnation);
        break;
    case P_COMMAND: {
        reply_box *box = p->u.command.box;
        p->u.command.box = NULL; /* the server answers through hub_reply */
        box->server = to->self;
        if (to->sink.on_command != NULL)
            to->sink.on_command(to->sink.arg, &p->u.command.cmd, hub_reply, box);
        else
            answer_locked(h, box, AETHER_EUNKNOWN, NULL, true);
        break;
    }
    case P_RELEASE:
        if (to->sink.on_release != NULL)
            to->sink.on_release(to->sink.arg, &p->u.ack);
        break;
    default:
        break;
    }
    h->stats.delivered++;
}

static void net_handle(void *state, aether_actor *self, const aether_msg *msg)
{
    aether_inproc_hub *h = state;
    (void)self;
    lock(h);
    uint64_t now = aether_clock_now_ns(h->clock);
    if (msg->type == NET_MSG_TICK && h->armed_at <= now)
        h->armed_at = UINT64_MAX;
    if (msg->type == NET_MSG_MORE)
        h->more_sent = false;
    uint32_t n = 0;
    while (h->heap_n > 0 && h->heap[0].at_ns <= now && n < NET_BATCH_MAX) {
        delivery d = pop_locked(h);
        deliver_one_locked(h, &d);
        parcel_release_locked(d.p);
        n++;
    }
    if (h->heap_n > 0 && h->heap[0].at_ns <= now) {
        /* More are due: let the other actors run first, then continue. */
        if (!h->more_sent) {
            aether_msg more = { .type = NET_MSG_MORE };
            if (aether_actor_send(h->actor, &more) == AETHER_OK)
                h->more_sent = true;
            else
                arm_locked(h, now);
        }
    } else if (h->heap_n > 0) {
        arm_locked(h, h->heap[0].at_ns);
    }
    unlock(h);
}

/* ---- endpoint operations ---------------------------------------------------- */

static aether_status ep_bind(aether_transport *t, const aether_transport_sink *sink)
{
    endpoint *ep = as_ep(t);
    lock(ep->hub);
    ep->sink = *sink;
    ep->bound = true;
    ep->unbound = false;
    unlock(ep->hub);
    return AETHER_OK;
}

static void ep_unbind(aether_transport *t)
{
    endpoint *ep = as_ep(t);
    lock(ep->hub);
    if (ep->bound)
        ep->unbound = true;
    ep->bound = false;
    ep->serving = false;
    memset(&ep->sink, 0, sizeof(ep->sink));
    unlock(ep->hub);
}

/* Locks the hub and reports whether the sender may send. */
static aether_inproc_hub *lock_sender(endpoint *ep, bool *ok)
{
    aether_inproc_hub *h = ep->hub;
    lock(h);
    *ok = !is_isolated_locked(h, &ep->self);
    return h;
}

/* Broadcast receivers: bound, and reachable from the sender. */
static bool receives_locked(aether_inproc_hub *h, const endpoint *from, const endpoint *to)
{
    if (!to->bound)
        return false;
    if (!reachable_locked(h, &from->self, &to->self)) {
        h->stats.blocked++;
        return false;
    }
    return true;
}

static aether_status ep_publish_event(aether_transport *t, const aether_event *e)
{
    endpoint *from = as_ep(t);
    bool ok;
    aether_inproc_hub *h = lock_sender(from, &ok);
    if (ok && h->event_tap != NULL)
        h->event_tap(h->event_tap_arg, &from->self, e);
    if (ok && h->net) {
        parcel *p = parcel_new(P_EVENT, &from->self);
        if (p != NULL) {
            p->u.event = aether_event_retain((aether_event *)e);
            for (uint32_t i = 0; i < h->count; i++)
                if (receives_locked(h, from, h->eps[i]) && h->eps[i]->sink.on_event != NULL)
                    schedule_locked(h, from, h->eps[i], p, true);
            parcel_release_locked(p);
        }
    } else if (ok) {
        for (uint32_t i = 0; i < h->count; i++) {
            endpoint *ep = h->eps[i];
            if (receives_locked(h, from, ep) && ep->sink.on_event != NULL) {
                ep->sink.on_event(ep->sink.arg, e);
                h->stats.delivered++;
            }
        }
    }
    unlock(h);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

/* A private copy of a borrowed map (maps are immutable). */
static aether_shardmap *map_copy(const aether_shardmap *src)
{
    return aether_shardmap_clone(src);
}

/* json/len: the map's published bytes (publish_map_json), or NULL. */
static aether_status publish_map_bytes(aether_transport *t, const aether_shardmap *m, const char *json,
                                       size_t len)
{
    endpoint *from = as_ep(t);
    bool ok;
    aether_inproc_hub *h = lock_sender(from, &ok);
    if (ok && h->map_tap != NULL)
        h->map_tap(h->map_tap_arg, &from->self, m);
    if (ok && h->net) {
        parcel *p = parcel_new(P_MAP, &from->self);
        if (p != NULL && json != NULL && (p->json = malloc(len + 1)) != NULL) {
            memcpy(p->json, json, len);
            p->json[len] = '\0';
            p->json_len = len;
        }
        if (p != NULL && (p->u.map = map_copy(m)) != NULL) {
            for (uint32_t i = 0; i < h->count; i++)
                if (receives_locked(h, from, h->eps[i]) && h->eps[i]->sink.on_map != NULL)
                    schedule_locked(h, from, h->eps[i], p, true);
        }
        if (p != NULL)
            parcel_release_locked(p);
    } else if (ok) {
        for (uint32_t i = 0; i < h->count; i++) {
            endpoint *ep = h->eps[i];
            if (receives_locked(h, from, ep) && ep->sink.on_map != NULL) {
                ep->sink.on_map(ep->sink.arg, m, json, json != NULL ? len : 0);
                h->stats.delivered++;
            }
        }
    }
    unlock(h);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

static aether_status ep_publish_map(aether_transport *t, const aether_shardmap *m)
{
    return publish_map_bytes(t, m, NULL, 0);
}

static aether_status ep_publish_map_json(aether_transport *t, const aether_shardmap *m, const char *json,
                                         size_t len)
{
    return publish_map_bytes(t, m, json, len);
}

static aether_status ep_publish_heartbeat(aether_transport *t, const aether_node_id *node,
                                          uint64_t incarnation)
{
    endpoint *from = as_ep(t);
    bool ok;
    aether_inproc_hub *h = lock_sender(from, &ok);
    if (ok && h->net) {
        parcel *p = parcel_new(P_HEARTBEAT, &from->self);
        if (p != NULL) {
            p->u.hb.node = *node;
            p->u.hb.incarnation = incarnation;
            for (uint32_t i = 0; i < h->count; i++) {
                endpoint *ep = h->eps[i];
                if (ep->serving && receives_locked(h, from, ep) && ep->sink.on_heartbeat != NULL)
                    schedule_locked(h, from, ep, p, true);
            }
            parcel_release_locked(p);
        }
    } else if (ok) {
        for (uint32_t i = 0; i < h->count; i++) {
            endpoint *ep = h->eps[i];
            if (receives_locked(h, from, ep) && ep->sink.on_heartbeat != NULL) {
                ep->sink.on_heartbeat(ep->sink.arg, node, incarnation);
                h->stats.delivered++;
            }
        }
    }
    unlock(h);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

static endpoint *server_locked(aether_inproc_hub *h, const endpoint *from)
{
    for (uint32_t i = 0; i < h->count; i++) {
        endpoint *ep = h->eps[i];
        if (ep->bound && ep->serving && !is_isolated_locked(h, &ep->self) &&
            reachable_locked(h, &from->self, &ep->self))
            return ep;
    }
    return NULL;
}

static aether_status ep_send_command(aether_transport *t, const aether_command *c,
                                     aether_reply_fn reply, void *reply_arg)
{
    endpoint *from = as_ep(t);
    bool ok;
    aether_inproc_hub *h = lock_sender(from, &ok);
    aether_status st = AETHER_EUNAVAILABLE;
    if (ok) {
        endpoint *srv = server_locked(h, from);
        reply_box *box = NULL;
        if (srv == NULL || srv->sink.on_command == NULL) {
            st = AETHER_ENOTLEADER;
        } else if ((box = calloc(1, sizeof(*box))) == NULL) {
            st = AETHER_ENOMEM;
        } else {
            *box = (reply_box){ .hub = h, .sender_slot = from->slot, .sender_gen = from->gen,
                                .sender = from->self, .fn = reply, .arg = reply_arg };
            st = AETHER_OK;
            if (h->net) {
                parcel *p = parcel_new(P_COMMAND, &from->self);
                if (p == NULL) {
                    free(box);
                    st = AETHER_ENOMEM;
                } else {
                    p->u.command.cmd = *c;
                    p->u.command.box = box;
                    if (schedule_locked(h, from, srv, p, false) == 0) {
                        p->u.command.box = NULL; /* lost: the sender times out */
                        answer_locked(h, box, AETHER_EUNKNOWN, NULL, true);
                    }
                    parcel_release_locked(p);
                }
            } else {
                box->server = srv->self;
                srv->sink.on_command(srv->sink.arg, c, hub_reply, box);
                h->stats.delivered++;
            }
        }
    }
    unlock(h);
    return st;
}

static aether_status ep_send_release(aether_transport *t, const aether_release_ack *ack)
{
    endpoint *from = as_ep(t);
    bool ok;
    aether_inproc_hub *h = lock_sender(from, &ok);
    aether_status st = AETHER_EUNAVAILABLE;
    if (ok) {
        endpoint *srv = server_locked(h, from);
        if (srv == NULL || srv->sink.on_release == NULL) {
            st = AETHER_ENOTLEADER;
        } else if (h->net) {
            parcel *p = parcel_new(P_RELEASE, &from->self);
            st = p != NULL ? AETHER_OK : AETHER_ENOMEM;
            if (p != NULL) {
                p->u.ack = *ack;
                schedule_locked(h, from, srv, p, true);
                parcel_release_locked(p);
            }
        } else {
            srv->sink.on_release(srv->sink.arg, ack);
            h->stats.delivered++;
            st = AETHER_OK;
        }
    }
    unlock(h);
    return st;
}

static aether_status ep_serve_commands(aether_transport *t, bool on)
{
    endpoint *ep = as_ep(t);
    lock(ep->hub);
    ep->serving = on;
    unlock(ep->hub);
    return AETHER_OK;
}

static void ep_destroy(aether_transport *t)
{
    endpoint *ep = as_ep(t);
    aether_inproc_hub *h = ep->hub;
    lock(h);
    for (uint32_t i = 0; i < h->count; i++) {
        if (h->eps[i] == ep) {
            memmove(&h->eps[i], &h->eps[i + 1], (size_t)(h->count - i - 1) * sizeof(*h->eps));
            h->count--;
            break;
        }
    }
    AETHER_ASSERT(h->slots[ep->slot] == ep);
    h->slots[ep->slot] = NULL; /* deliveries still queued for it find no endpoint */
    unlock(h);
    free(ep->fifo_at);
    free(ep);
}

static const aether_transport_ops inproc_ops = {
    .bind = ep_bind,
    .unbind = ep_unbind,
    .publish_event = ep_publish_event,
    .publish_map = ep_publish_map,
    .publish_heartbeat = ep_publish_heartbeat,
    .send_command = ep_send_command,
    .send_release = ep_send_release,
    .serve_commands = ep_serve_commands,
    .destroy = ep_destroy,
    .publish_map_json = ep_publish_map_json,
};

/* ---- hub lifecycle -------------------------------------------------------- */

static aether_status hub_alloc(aether_inproc_hub **out)
{
    aether_inproc_hub *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return AETHER_ENOMEM;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&h->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    h->armed_at = UINT64_MAX;
    h->next_gen = 1;
    *out = h;
    return AETHER_OK;
}

aether_status aether_inproc_hub_create(aether_inproc_hub **out)
{
    return hub_alloc(out);
}

static aether_status check_faults(const aether_inproc_net_faults *f)
{
    if (f->delay_min_us > f->delay_max_us || f->delay_max_us > AETHER_INPROC_DELAY_MAX_US ||
        (f->delay_kind == AETHER_INPROC_DELAY_EXPONENTIAL &&
         (f->delay_mean_us < f->delay_min_us || f->delay_mean_us > f->delay_max_us)) ||
        (unsigned)f->delay_kind > AETHER_INPROC_DELAY_EXPONENTIAL || f->loss_ppm > 1000000u ||
        f->dup_ppm > 1000000u || f->reorder_ppm > 1000000u)
        return AETHER_EINVAL;
    return AETHER_OK;
}

aether_status aether_inproc_hub_create_net(const aether_inproc_net_config *cfg,
                                           aether_inproc_hub **out)
{
    AETHER_ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    if (cfg->executor == NULL || check_faults(&cfg->faults) != AETHER_OK)
        return AETHER_EINVAL;
    aether_inproc_hub *h;
    aether_status st = hub_alloc(&h);
    if (st != AETHER_OK)
        return st;
    h->net = true;
    h->ex = cfg->executor;
    h->clock = aether_executor_clock(cfg->executor);
    aether_rng_seed(&h->rng, cfg->seed);
    h->faults = cfg->faults;
    h->request_timeout_ns = (cfg->request_timeout_us ? cfg->request_timeout_us : 1000000u) * 1000u;
    h->queue_max = cfg->queue_max ? cfg->queue_max : NET_QUEUE_MAX_DEFAULT;
    aether_actor_config ac = { .name = "net", .mailbox_capacity = 1024, .batch_max = 1,
                               .handle = net_handle, .state = h };
    st = aether_actor_create(cfg->executor, &ac, &h->actor);
    if (st != AETHER_OK) {
        h->net = false;
        aether_inproc_hub_destroy(h);
        return st;
    }
    *out = h;
    return AETHER_OK;
}

aether_status aether_inproc_set_net_faults(aether_inproc_hub *h, const aether_inproc_net_faults *f)
{
    AETHER_ASSERT(h->net);
    if (check_faults(f) != AETHER_OK)
        return AETHER_EINVAL;
    lock(h);
    h->faults = *f;
    unlock(h);
    return AETHER_OK;
}

void aether_inproc_hub_destroy(aether_inproc_hub *h)
{
    if (h == NULL)
        return;
    AETHER_ASSERT(h->count == 0); /* endpoints first */
    if (h->actor != NULL) {
        aether_actor_close(h->actor);
        aether_actor_destroy(h->actor);
    }
    for (uint32_t i = 0; i < h->heap_n; i++) /* bounded: heap_n */
        parcel_release_locked(h->heap[i].p);
    free(h->heap);
    free(h->eps);
    free(h->slots);
    free(h->isolated);
    free(h->groups);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

aether_status aether_inproc_endpoint_create(aether_inproc_hub *h, const aether_node_id *self,
                                            aether_transport **out)
{
    endpoint *ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return AETHER_ENOMEM;
    ep->base.ops = &inproc_ops;
    ep->hub = h;
    ep->self = *self;
    aether_status st = AETHER_OK;
    lock(h);
    if (h->count == HUB_ENDPOINTS_MAX) {
        st = AETHER_EFULL;
    } else if (h->count == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 8;
        endpoint **v = realloc(h->eps, (size_t)cap * sizeof(*v));
        if (v == NULL)
            st = AETHER_ENOMEM;
        else {
            h->eps = v;
            h->cap = cap;
        }
    }
    /* The lowest free slot (deterministic); a new one at the end if none. */
    uint32_t slot = 0;
    while (st == AETHER_OK && slot < h->n_slots && h->slots[slot] != NULL) /* bounded: n_slots */
        slot++;
    if (st == AETHER_OK && slot == h->n_slots) {
        endpoint **v = realloc(h->slots, (size_t)(h->n_slots + 1) * sizeof(*v));
        if (v == NULL)
            st = AETHER_ENOMEM;
        else {
            h->slots = v;
            h->slots[h->n_slots++] = NULL;
        }
    }
    if (st == AETHER_OK) {
        ep->slot = slot;
        ep->gen = h->next_gen++;
        h->slots[slot] = ep;
        h->eps[h->count++] = ep;
    }
    unlock(h);
    if (st != AETHER_OK) {
        free(ep);
        return st;
    }
    *out = &ep->base;
    return AETHER_OK;
}

void aether_inproc_set_isolated(aether_inproc_hub *h, const aether_node_id *node, bool isolated)
{
    lock(h);
    bool present = is_isolated_locked(h, node);
    if (isolated && !present) {
        if (h->n_isolated == h->cap_isolated) {
            uint32_t cap = h->cap_isolated ? h->cap_isolated * 2 : 8;
            aether_node_id *v = realloc(h->isolated, (size_t)cap * sizeof(*v));
            AETHER_ASSERT(v != NULL); /* a test-only fault switch */
            h->isolated = v;
            h->cap_isolated = cap;
        }
        h->isolated[h->n_isolated++] = *node;
    } else if (!isolated && present) {
        for (uint32_t i = 0; i < h->n_isolated; i++) {
            if (aether_node_id_equal(&h->isolated[i], node)) {
                h->isolated[i] = h->isolated[--h->n_isolated];
                break;
            }
        }
    }
    unlock(h);
}

void aether_inproc_set_group(aether_inproc_hub *h, const aether_node_id *node, uint32_t group)
{
    AETHER_ASSERT(group < AETHER_INPROC_GROUPS_MAX);
    lock(h);
    bool found;
    uint32_t i = group_find_locked(h, node, &found);
    if (group == 0) {
        if (found) {
            memmove(&h->groups[i], &h->groups[i + 1], (size_t)(h->n_groups - i - 1) * sizeof(*h->groups));
            h->n_groups--;
        }
    } else if (found) {
        h->groups[i].group = group;
    } else {
        if (h->n_groups == h->cap_groups) {
            uint32_t cap = h->cap_groups ? h->cap_groups * 2 : 16;
            struct group_entry *v = realloc(h->groups, (size_t)cap * sizeof(*v));
            AETHER_ASSERT(v != NULL); /* a test-only fault switch */
            h->groups = v;
            h->cap_groups = cap;
        }
        memmove(&h->groups[i + 1], &h->groups[i], (size_t)(h->n_groups - i) * sizeof(*h->groups));
        h->groups[i].id = *node;
        h->groups[i].group = group;
        h->n_groups++;
    }
    unlock(h);
}

void aether_inproc_set_link(aether_inproc_hub *h, uint32_t from_group, uint32_t to_group, bool up)
{
    AETHER_ASSERT(from_group < AETHER_INPROC_GROUPS_MAX && to_group < AETHER_INPROC_GROUPS_MAX);
    lock(h);
    if (up)
        h->link_down[from_group] &= ~(1u << to_group);
    else
        h->link_down[from_group] |= 1u << to_group;
    unlock(h);
}

void aether_inproc_heal(aether_inproc_hub *h)
{
    lock(h);
    memset(h->link_down, 0, sizeof(h->link_down));
    h->n_groups = 0;
    h->n_isolated = 0;
    unlock(h);
}

void aether_inproc_set_map_tap(aether_inproc_hub *h, aether_inproc_map_tap_fn fn, void *arg)
{
    lock(h);
    h->map_tap = fn;
    h->map_tap_arg = arg;
    unlock(h);
}

void aether_inproc_set_event_tap(aether_inproc_hub *h, aether_inproc_event_tap_fn fn, void *arg)
{
    lock(h);
    h->event_tap = fn;
    h->event_tap_arg = arg;
    unlock(h);
}

void aether_inproc_stats_get(aether_inproc_hub *h, aether_inproc_stats *out)
{
    lock(h);
    *out = h->stats;
    unlock(h);
}

uint64_t aether_inproc_delivered(const aether_inproc_hub *h)
{
    return __atomic_load_n(&h->stats.delivered, __ATOMIC_RELAXED);
}
