/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_node_hooks.h: what the tools of this tree (aether-node) need from
 * a public aether_node beyond the public API (transport layer, internal:
 * never installed, none of it exported from libaether.so; the tools link
 * the static library). The daemon starts its node through
 * aether_node_start like any embedder and adds, through these: the full
 * event stream and the supersession moment (its printing and --trace), its
 * metrics registry, its --seed, a longer JetStream wait that its signal
 * handler can cut short, and the member, codec counters and stores behind
 * the node (status view, admission refusal, metric series).
 *
 * Threading: the setters on the thread that owns the options; the
 * accessors on any thread while the node is not destroyed.
 */
#ifndef AETHER_NODE_HOOKS_H
#define AETHER_NODE_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "aether_node.h"
#include "aether_options.h"
#include "settings.h"

struct aether_event;
struct aether_metrics;
struct aether_member;
struct aether_kv;
struct aether_codec_stats;

typedef struct aether_node_hooks {
    /* Every event the member sees (member.h on_event) and the moment a
     * newer process of this id took over (member.h on_superseded); on the
     * member's actor threads, with arg. NULL = not wanted. */
    void (*on_event)(void *arg, const struct aether_event *e);
    void (*on_superseded)(void *arg, uint64_t incarnation, uint64_t by_incarnation);
    void *arg;
    /* Registry the member's series go into (NULL: none) and their labels
     * (member.h aether_member_deps). Borrowed: outlives the node. */
    struct aether_metrics *metrics;
    const char *metric_labels;
    uint64_t seed;        /* the member's random source; 0 = from the clock */
    /* NATS mode: how long the buckets are waited for while JetStream is not
     * ready; 0 = nats_connect_timeout_ms. */
    uint32_t kv_wait_ms;
    /* Non-NULL: the NATS connect and bucket waits end once *stop != 0, and
     * aether_node_start leaves SIGINT and SIGTERM unblocked while it runs
     * (every other signal blocked as usual), so a handler that sets *stop
     * can cut the wait short. Borrowed. */
    const volatile int *stop;
} aether_node_hooks;

/* Replaces every setting of opts with s (already resolved and checked by
 * the caller: defaults < file < environment < flags). */
void aether_options_set_settings(aether_options *opts, const aether_settings *s);
/* Copies hooks into opts (NULL: clears them). */
void aether_options_set_hooks(aether_options *opts, const aether_node_hooks *hooks);

/* The member behind node (its view, admission, serving right). */
struct aether_member *aether_node_member(const aether_node *node);
/* NATS mode: the transport's and stores' decode counters; NULL in-process. */
struct aether_codec_stats *aether_node_codec_stats(aether_node *node);
/* NATS mode: the lease (lease = true) or state store; NULL in-process. */
struct aether_kv *aether_node_store(const aether_node *node, bool lease);

#endif
