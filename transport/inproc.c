/*
 * inproc.c: the in-process hub (transport layer). See inproc.h.
 */
#include "inproc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"

#define HUB_ENDPOINTS_MAX 4096u

typedef struct endpoint {
    aether_transport base; /* first */
    aether_inproc_hub *hub;
    aether_node_id self;   /* immutable */
    /* Under hub->mu: */
    aether_transport_sink sink;
    bool bound;
    bool serving;
} endpoint;

struct aether_inproc_hub {
    pthread_mutex_t mu;
    endpoint **eps;        /* under mu; creation order */
    uint32_t count, cap;
    /* Isolated node ids, under mu. */
    aether_node_id *isolated;
    uint32_t n_isolated, cap_isolated;
    uint64_t delivered;    /* under mu (read with a relaxed atomic) */
};

static bool is_isolated_locked(const aether_inproc_hub *h, const aether_node_id *id)
{
    for (uint32_t i = 0; i < h->n_isolated; i++)
        if (aether_node_id_equal(&h->isolated[i], id))
            return true;
    return false;
}

/* Calls fn for every bound, reachable endpoint. Caller holds mu. */
#define FOR_EACH_RECEIVER(h, from, ep)                                         \
    for (uint32_t i_ = 0; i_ < (h)->count; i_++)                               \
        for (endpoint *ep = (h)->eps[i_]; ep != NULL; ep = NULL)               \
            if (ep->bound && !is_isolated_locked((h), &ep->self))

static endpoint *as_ep(aether_transport *t) { return (endpoint *)t; }

static aether_status ep_bind(aether_transport *t, const aether_transport_sink *sink)
{
    endpoint *ep = as_ep(t);
    pthread_mutex_lock(&ep->hub->mu);
    ep->sink = *sink;
    ep->bound = true;
    pthread_mutex_unlock(&ep->hub->mu);
    return AETHER_OK;
}

static void ep_unbind(aether_transport *t)
{
    endpoint *ep = as_ep(t);
    pthread_mutex_lock(&ep->hub->mu);
    ep->bound = false;
    ep->serving = false;
    memset(&ep->sink, 0, sizeof(ep->sink));
    pthread_mutex_unlock(&ep->hub->mu);
}

/* Locks the hub and reports whether the sender may send. */
static aether_inproc_hub *lock_sender(endpoint *ep, bool *ok)
{
    aether_inproc_hub *h = ep->hub;
    pthread_mutex_lock(&h->mu);
    *ok = !is_isolated_locked(h, &ep->self);
    return h;
}

static aether_status ep_publish_event(aether_transport *t, const aether_event *e)
{
    bool ok;
    aether_inproc_hub *h = lock_sender(as_ep(t), &ok);
    if (ok) {
        FOR_EACH_RECEIVER(h, from, ep)
        {
            if (ep->sink.on_event != NULL) {
                ep->sink.on_event(ep->sink.arg, e);
                h->delivered++;
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

static aether_status ep_publish_map(aether_transport *t, const aether_shardmap *m)
{
    bool ok;
    aether_inproc_hub *h = lock_sender(as_ep(t), &ok);
    if (ok) {
        FOR_EACH_RECEIVER(h, from, ep)
        {
            if (ep->sink.on_map != NULL) {
                ep->sink.on_map(ep->sink.arg, m);
                h->delivered++;
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

static aether_status ep_publish_heartbeat(aether_transport *t, const aether_node_id *node,
                                          uint64_t incarnation)
{
    bool ok;
    aether_inproc_hub *h = lock_sender(as_ep(t), &ok);
    if (ok) {
        FOR_EACH_RECEIVER(h, from, ep)
        {
            if (ep->sink.on_heartbeat != NULL) {
                ep->sink.on_heartbeat(ep->sink.arg, node, incarnation);
                h->delivered++;
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return ok ? AETHER_OK : AETHER_EUNAVAILABLE;
}

static endpoint *server_locked(aether_inproc_hub *h)
{
    for (uint32_t i = 0; i < h->count; i++) {
        endpoint *ep = h->eps[i];
        if (ep->bound && ep->serving && !is_isolated_locked(h, &ep->self))
            return ep;
    }
    return NULL;
}

static aether_status ep_send_command(aether_transport *t, const aether_command *c,
                                     aether_reply_fn reply, void *reply_arg)
{
    bool ok;
    aether_inproc_hub *h = lock_sender(as_ep(t), &ok);
    aether_status st = AETHER_EUNAVAILABLE;
    if (ok) {
        endpoint *srv = server_locked(h);
        if (srv == NULL || srv->sink.on_command == NULL) {
            st = AETHER_ENOTLEADER;
        } else {
            srv->sink.on_command(srv->sink.arg, c, reply, reply_arg);
            h->delivered++;
            st = AETHER_OK;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

static aether_status ep_send_release(aether_transport *t, const aether_release_ack *ack)
{
    bool ok;
    aether_inproc_hub *h = lock_sender(as_ep(t), &ok);
    aether_status st = AETHER_EUNAVAILABLE;
    if (ok) {
        endpoint *srv = server_locked(h);
        if (srv == NULL || srv->sink.on_release == NULL) {
            st = AETHER_ENOTLEADER;
        } else {
            srv->sink.on_release(srv->sink.arg, ack);
            h->delivered++;
            st = AETHER_OK;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

static aether_status ep_serve_commands(aether_transport *t, bool on)
{
    endpoint *ep = as_ep(t);
    pthread_mutex_lock(&ep->hub->mu);
    ep->serving = on;
    pthread_mutex_unlock(&ep->hub->mu);
    return AETHER_OK;
}

static void ep_destroy(aether_transport *t)
{
    endpoint *ep = as_ep(t);
    aether_inproc_hub *h = ep->hub;
    pthread_mutex_lock(&h->mu);
    for (uint32_t i = 0; i < h->count; i++) {
        if (h->eps[i] == ep) {
            memmove(&h->eps[i], &h->eps[i + 1], (size_t)(h->count - i - 1) * sizeof(*h->eps));
            h->count--;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
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
};

aether_status aether_inproc_hub_create(aether_inproc_hub **out)
{
    aether_inproc_hub *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return AETHER_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return AETHER_OK;
}

void aether_inproc_hub_destroy(aether_inproc_hub *h)
{
    if (h == NULL)
        return;
    AETHER_ASSERT(h->count == 0); /* endpoints first */
    free(h->eps);
    free(h->isolated);
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
    pthread_mutex_lock(&h->mu);
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
    if (st == AETHER_OK)
        h->eps[h->count++] = ep;
    pthread_mutex_unlock(&h->mu);
    if (st != AETHER_OK) {
        free(ep);
        return st;
    }
    *out = &ep->base;
    return AETHER_OK;
}

void aether_inproc_set_isolated(aether_inproc_hub *h, const aether_node_id *node, bool isolated)
{
    pthread_mutex_lock(&h->mu);
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
    pthread_mutex_unlock(&h->mu);
}

uint64_t aether_inproc_delivered(const aether_inproc_hub *h)
{
    return __atomic_load_n(&h->delivered, __ATOMIC_RELAXED);
}
