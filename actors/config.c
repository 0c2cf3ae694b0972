/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c: defaults and the safety check of a node's configuration (actors
 * layer). See config.h for the rules.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "keyhash.h"
#include "mailbox.h"
#include "shardmap.h"
#include "strategy.h"

void aether_config_defaults(aether_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->cluster, sizeof(c->cluster), "aether");
    c->shard_count = 1024;
    c->replication = 1;
    c->heartbeat_interval_ms = 200;
    c->failure_timeout_ms = 1000;
    c->lease_ttl_ms = 1000;
    c->lease_renew_interval_ms = 250;
    c->lease_safety_margin_ms = 100;
    c->election_jitter_ms = 50;
    c->rebalance_debounce_ms = 100;
    c->handoff_timeout_ms = 5000;
    c->fence_margin_ms = 200;
    c->mailbox_capacity = 4096;
    c->max_concurrent_handoffs = 64;
    c->brake_max_offline = 0;
    c->brake_window_ms = 10000;
    c->node_retention_ms = 600000;
}

#define REFUSE(...) return aether_err_set(err, AETHER_EINVAL, __VA_ARGS__)

/* The next comma-separated entry of allowed_nodes from *at (an empty one
 * too, so validation can name it): false past the end. */
static bool allowed_next(const aether_config *c, size_t *at, const char **tok, size_t *n)
{
    const char *list = c->allowed_nodes;
    size_t len = strnlen(list, sizeof(c->allowed_nodes));
    if (*at > len)
        return false;
    size_t end = *at;
    while (end < len && list[end] != ',')
        end++;
    *tok = list + *at;
    *n = end - *at;
    *at = end + 1;
    return true;
}

aether_status aether_config_validate(const aether_config *c, aether_err *err)
{
    aether_err inner;
    if (aether_cluster_name_validate(c->cluster, &inner) != AETHER_OK)
        REFUSE("cluster: %s", inner.msg);
    if (!aether_node_id_is_valid(&c->node))
        REFUSE("node: a node id (1..64 characters of [A-Za-z0-9_.-]) is required");
    if (c->shard_count < 1 || c->shard_count > AETHER_SHARD_COUNT_MAX)
        REFUSE("shard_count: %u is outside 1..%u", c->shard_count, AETHER_SHARD_COUNT_MAX);
    if (c->replication < 1 || c->replication > AETHER_REPLICATION_MAX)
        REFUSE("replication: %u is outside 1..%u", c->replication, AETHER_REPLICATION_MAX);
    if (c->heartbeat_interval_ms == 0)
        REFUSE("heartbeat_interval_ms: must be above 0");
    if (c->failure_timeout_ms < 2 * c->heartbeat_interval_ms)
        REFUSE("failure_timeout_ms: %u is below twice heartbeat_interval_ms (%u): one lost "
               "heartbeat would fail a node",
               c->failure_timeout_ms, c->heartbeat_interval_ms);
    if (c->lease_ttl_ms == 0)
        REFUSE("lease_ttl_ms: must be above 0");
    if (c->lease_renew_interval_ms == 0 || c->lease_renew_interval_ms > c->lease_ttl_ms / 3)
        REFUSE("lease_renew_interval_ms: %u is not well below lease_ttl_ms %u (at most ttl/3, "
               "so two renewals can fail before the lease lapses)",
               c->lease_renew_interval_ms, c->lease_ttl_ms);
    if (c->lease_safety_margin_ms >= c->lease_ttl_ms ||
        c->lease_ttl_ms - c->lease_safety_margin_ms <= c->lease_renew_interval_ms)
        REFUSE("lease_safety_margin_ms: %u leaves no time to act: ttl %u minus margin must "
               "exceed the renew interval %u",
               c->lease_safety_margin_ms, c->lease_ttl_ms, c->lease_renew_interval_ms);
    if (c->fence_margin_ms >= c->failure_timeout_ms)
        REFUSE("fence_margin_ms: %u must be below failure_timeout_ms %u (a cut-off node "
               "fences itself before it may be declared failed)",
               c->fence_margin_ms, c->failure_timeout_ms);
    if (c->handoff_timeout_ms <= c->failure_timeout_ms)
        REFUSE("handoff_timeout_ms: %u must exceed failure_timeout_ms %u (an old owner that "
               "missed the handoff has fenced itself by then)",
               c->handoff_timeout_ms, c->failure_timeout_ms);
    if (c->mailbox_capacity < 64 || c->mailbox_capacity > AETHER_MAILBOX_CAPACITY_MAX ||
        !aether_is_power_of_two(c->mailbox_capacity))
        REFUSE("mailbox_capacity: %u is not a power of two in 64..%u", c->mailbox_capacity,
               AETHER_MAILBOX_CAPACITY_MAX);
    if (c->max_concurrent_handoffs == 0)
        REFUSE("max_concurrent_handoffs: must be above 0");
    if (c->brake_window_ms == 0)
        REFUSE("brake_window_ms: must be above 0");
    if (c->node_retention_ms < c->failure_timeout_ms || c->node_retention_ms < c->brake_window_ms)
        REFUSE("node_retention_ms: %u is below failure_timeout_ms %u or brake_window_ms %u (a "
               "departed node must be remembered while its departure still counts)",
               c->node_retention_ms, c->failure_timeout_ms, c->brake_window_ms);
    /* The wire refuses control bytes in an address (codec.c): say so now,
     * not when the first join is encoded. */
    for (size_t i = 0; i < sizeof(c->address) && c->address[i] != '\0'; i++) {
        unsigned char b = (unsigned char)c->address[i];
        if (b < 0x20 || b == 0x7f)
            REFUSE("address: has control byte 0x%02x at position %zu (an address is 1..%d bytes "
                   "without control bytes)",
                   b, i, AETHER_NODE_ADDRESS_LEN_MAX);
    }
    if (c->zone[0] != '\0') {
        aether_node_id z;
        if (aether_node_id_parse_as("zone", c->zone, strnlen(c->zone, sizeof(c->zone)), &z,
                                    &inner) != AETHER_OK)
            REFUSE("zone: %s", inner.msg);
    }
    if (c->allowed_nodes[0] != '\0') {
        const char *tok;
        size_t at = 0, n;
        while (allowed_next(c, &at, &tok, &n)) { /* bounded: the list */
            aether_node_id id;
            if (aether_node_id_parse_as("node id", tok, n, &id, &inner) != AETHER_OK)
                REFUSE("allowed_nodes: entry %.*s: %s", (int)(n > 64 ? 64 : n), tok, inner.msg);
        }
        if (c->node.len != 0 && !aether_config_allows(c, &c->node))
            REFUSE("allowed_nodes: does not name this node (%s): it could not be admitted", c->node.str);
    }
    return AETHER_OK;
}

bool aether_config_allows(const aether_config *c, const aether_node_id *id)
{
    if (c->allowed_nodes[0] == '\0')
        return true;
    const char *tok;
    size_t at = 0, n;
    while (allowed_next(c, &at, &tok, &n)) /* bounded: the list */
        if (n == id->len && memcmp(tok, id->str, n) == 0)
            return true;
    return false;
}

int aether_config_params_text(const aether_config *c, char *buf, size_t cap)
{
    /* Changing this text changes every fingerprint: a cluster mixing
     * builds that print it differently refuses the newer joiners. */
    return snprintf(buf, cap,
                    "key_hash=xxh64-seed0 strategy=%s lease_ttl_ms=%u failure_timeout_ms=%u "
                    "fence_margin_ms=%u handoff_timeout_ms=%u",
                    aether_strategy_default()->name, c->lease_ttl_ms, c->failure_timeout_ms,
                    c->fence_margin_ms, c->handoff_timeout_ms);
}

void aether_config_admission(const aether_config *c, aether_admission *out)
{
    char text[256];
    int n = aether_config_params_text(c, text, sizeof(text));
    AETHER_ASSERT(n > 0 && (size_t)n < sizeof(text));
    memset(out, 0, sizeof(*out));
    out->shard_count = c->shard_count;
    out->replication = c->replication;
    out->wire_min = AETHER_WIRE_VERSION_MIN;
    out->wire_max = AETHER_WIRE_VERSION_MAX;
    out->params = XXH64(text, (size_t)n, 0);
}
