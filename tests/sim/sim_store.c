/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim_store.c: each node's handle on the shared lease and state buckets, with
 * that node's store faults (tests layer). See sim_internal.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- the stores, as each node reaches them ---------------------------------- */

bool sim_store_down(kvpx *p)
{
    sim *s = p->sim;
    return p->node->kv_cut || now_ns(s) < s->kv_outage_until_ns[p->store];
}

static bool draw(sim *s, double p)
{
    return p > 0 && (double)aether_rng_below(&s->krng, 1000000u) < p * 1e6;
}

/* A slow call: the whole simulated world waits for it. */
static void maybe_slow(kvpx *p)
{
    sim *s = p->sim;
    if (!draw(s, s->kv_slow))
        return;
    uint64_t d = aether_rng_range(&s->krng, 1, s->base.lease_ttl_ms / 2) * MS;
    aether_sim_clock_advance_ns(s->clock, d);
    s->last_stall_ns = now_ns(s);
}

typedef enum px_fault { PX_NONE, PX_UNAVAILABLE, PX_UNKNOWN_APPLIED, PX_UNKNOWN_LOST, PX_LATE } px_fault;

static px_fault pick(kvpx *p, bool write)
{
    sim *s = p->sim;
    if (sim_store_down(p))
        return PX_UNAVAILABLE;
    if (draw(s, s->kv_unknown))
        return aether_rng_below(&s->krng, 2) ? PX_UNKNOWN_APPLIED : PX_UNKNOWN_LOST;
    if (write && draw(s, s->kv_late))
        return PX_LATE;
    return PX_NONE;
}

static aether_status px_status(px_fault f, aether_err *err)
{
    if (f == PX_UNAVAILABLE)
        return aether_err_set(err, AETHER_EUNAVAILABLE, "simulated: store unreachable");
    return aether_err_set(err, AETHER_EUNKNOWN, "simulated: timed out, outcome unknown");
}

static void late_add(kvpx *p, sim_write_op op, const char *key, const void *value, size_t len,
                     uint64_t expected)
{
    sim *s = p->sim;
    if (s->n_late == SIM_LATE_MAX)
        return; /* lost instead */
    late_write *w = &s->late[s->n_late];
    memset(w, 0, sizeof(*w));
    w->value = len ? malloc(len) : NULL;
    if (len && w->value == NULL)
        return;
    if (len)
        memcpy(w->value, value, len);
    w->len = len;
    w->at_ns = now_ns(s) + aether_rng_range(&s->krng, 10, 2 * s->base.lease_ttl_ms) * MS;
    w->store = p->store;
    w->op = op;
    snprintf(w->key, sizeof(w->key), "%s", key);
    w->expected = expected;
    s->n_late++;
}

static aether_status px_write(kvpx *p, sim_write_op op, const char *key, const void *value, size_t len,
                              uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    sim *s = p->sim;
    *rev_out = 0;
    px_fault f = pick(p, true);
    if (f == PX_UNAVAILABLE || f == PX_UNKNOWN_LOST)
        return px_status(f, err);
    if (f == PX_LATE) {
        late_add(p, op, key, value, len, expected);
        return px_status(f, err);
    }
    maybe_slow(p);
    aether_status st;
    aether_kv *kv = s->kv[p->store];
    if (op == SIM_WRITE_CREATE)
        st = aether_kv_create(kv, key, value, len, rev_out, err);
    else if (op == SIM_WRITE_UPDATE)
        st = aether_kv_update(kv, key, value, len, expected, rev_out, err);
    else
        st = aether_kv_delete(kv, key, expected, rev_out, err);
    maybe_slow(p);
    if (f == PX_UNKNOWN_APPLIED) {
        *rev_out = 0;
        return px_status(f, err);
    }
    return st;
}

static kvpx *as_px(aether_kv *kv) { return (kvpx *)kv; }

static aether_status px_create(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t *rev_out, aether_err *err)
{
    return px_write(as_px(kv), SIM_WRITE_CREATE, key, value, len, 0, rev_out, err);
}

static aether_status px_update(aether_kv *kv, const char *key, const void *value, size_t len,
                               uint64_t expected, uint64_t *rev_out, aether_err *err)
{
    return px_write(as_px(kv), SIM_WRITE_UPDATE, key, value, len, expected, rev_out, err);
}

static aether_status px_del(aether_kv *kv, const char *key, uint64_t expected, uint64_t *rev_out,
                            aether_err *err)
{
    return px_write(as_px(kv), SIM_WRITE_DELETE, key, NULL, 0, expected, rev_out, err);
}

static aether_status px_get(aether_kv *kv, const char *key, aether_kv_entry *out, aether_err *err)
{
    kvpx *p = as_px(kv);
    px_fault f = pick(p, false);
    if (f != PX_NONE)
        return px_status(f == PX_UNAVAILABLE ? f : PX_UNKNOWN_LOST, err);
    maybe_slow(p);
    aether_status st = aether_kv_get(p->sim->kv[p->store], key, out, err);
    maybe_slow(p);
    return st;
}

static aether_status px_watch(aether_kv *kv, const char *pattern, aether_kv_watch_fn fn, void *arg,
                              aether_kv_watcher **out, aether_err *err)
{
    kvpx *p = as_px(kv);
    return aether_kv_watch(p->sim->kv[p->store], pattern, fn, arg, out, err);
}

static void px_unwatch(aether_kv *kv, aether_kv_watcher *w)
{
    kvpx *p = as_px(kv);
    aether_kv_unwatch(p->sim->kv[p->store], w);
}

static uint64_t px_ttl_ms(aether_kv *kv)
{
    kvpx *p = as_px(kv);
    return aether_kv_ttl_ms(p->sim->kv[p->store]);
}

static void px_destroy(aether_kv *kv) { (void)kv; /* embedded in its node */ }

const aether_kv_ops sim_store_ops = {
    .create = px_create,
    .update = px_update,
    .del = px_del,
    .purge = NULL,
    .get = px_get,
    .watch = px_watch,
    .unwatch = px_unwatch,
    .ttl_ms = px_ttl_ms,
    .destroy = px_destroy,
};

void sim_store_apply_late(sim *s)
{
    for (uint32_t i = 0; i < s->n_late;) {
        late_write *w = &s->late[i];
        if (w->at_ns > now_ns(s)) {
            i++;
            continue;
        }
        uint64_t rev = 0;
        aether_kv *kv = s->kv[w->store];
        aether_status st = w->op == SIM_WRITE_CREATE   ? aether_kv_create(kv, w->key, w->value, w->len, &rev, NULL)
                           : w->op == SIM_WRITE_UPDATE ? aether_kv_update(kv, w->key, w->value, w->len, w->expected,
                                                           &rev, NULL)
                                        : aether_kv_delete(kv, w->key, w->expected, &rev, NULL);
        sim_world_trace(s, "FAULT late %s of %s/%s applied: %s", w->op == SIM_WRITE_CREATE   ? "create"
                   : w->op == SIM_WRITE_UPDATE ? "update"
                                               : "delete",
                   w->store == SIM_STORE_STATE ? "state" : "lease", w->key, aether_status_str(st));
        free(w->value);
        s->late[i] = s->late[--s->n_late];
    }
}
