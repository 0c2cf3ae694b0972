/* SPDX-License-Identifier: Apache-2.0 */
/*
 * node.c: NodeStatus names and transitions, NodeInfo and lease validation
 * (actors layer). Pure functions, any thread. See node.h.
 */
#include "node.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
    [AETHER_NODE_ACTIVE] = "active",
    [AETHER_NODE_DRAINING] = "draining",
    [AETHER_NODE_LEFT] = "left",
    [AETHER_NODE_FAILED] = "failed",
};
AETHER_STATIC_ASSERT(sizeof(status_names) / sizeof(status_names[0]) == AETHER_NODE_STATUS_COUNT_,
                     "every node status has a name");

const char *aether_node_status_name(aether_node_status s)
{
    if ((unsigned)s >= AETHER_NODE_STATUS_COUNT_)
        return "?";
    return status_names[s];
}

aether_status aether_node_status_parse(const char *name, aether_node_status *out,
                                       aether_err *err)
{
    AETHER_ASSERT(name != NULL && out != NULL);
    for (unsigned i = 0; i < AETHER_NODE_STATUS_COUNT_; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (aether_node_status)i;
            return AETHER_OK;
        }
    }
    return aether_err_set(err, AETHER_EINVAL,
                          "unknown node status '%.32s' (expected active, draining, left or failed)",
                          name);
}

bool aether_node_status_transition_is_valid(aether_node_status from, aether_node_status to)
{
    switch (from) {
    case AETHER_NODE_ACTIVE:
        return to == AETHER_NODE_DRAINING || to == AETHER_NODE_FAILED;
    case AETHER_NODE_DRAINING:
        return to == AETHER_NODE_LEFT || to == AETHER_NODE_FAILED;
    case AETHER_NODE_LEFT:
    case AETHER_NODE_FAILED:
    default:
        return false; /* coming back is a new incarnation, not a transition */
    }
}

/* ---- NodeInfo ------------------------------------------------------------ */

static aether_status check_address(const char *address, size_t cap, aether_err *err)
{
    size_t len = strnlen(address, cap);
    if (len == cap)
        return aether_err_set(err, AETHER_EINVAL, "address: longer than %zu bytes", cap - 1);
    if (len == 0)
        return aether_err_set(err, AETHER_EINVAL, "address: empty");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)address[i];
        if (c < 0x20 || c == 0x7f)
            return aether_err_set(err, AETHER_EINVAL,
                                  "address: control byte 0x%02x at position %zu", c, i);
    }
    return AETHER_OK;
}

static aether_status check_zone(const char *zone, size_t cap, aether_err *err)
{
    size_t len = strnlen(zone, cap);
    if (len == cap)
        return aether_err_set(err, AETHER_EINVAL, "zone: longer than %zu characters", cap - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)zone[i];
        if (!aether_node_id_char_is_valid(c))
            return aether_err_set(err, AETHER_EINVAL,
                                  "zone: byte 0x%02x at position %zu, outside [A-Za-z0-9_.-]", c,
                                  i);
    }
    return AETHER_OK;
}

aether_status aether_node_info_validate(const aether_node_info *info, aether_err *err)
{
    AETHER_ASSERT(info != NULL);
    aether_status st;
    if (!aether_node_id_is_valid(&info->id)) {
        /* Re-parse to explain; a bad length is reported as such. */
        size_t len = info->id.len <= AETHER_NODE_ID_LEN_MAX ? info->id.len : 0;
        aether_node_id tmp;
        st = aether_node_id_parse(info->id.str, len, &tmp, err);
        if (st == AETHER_OK)
            st = aether_err_set(err, AETHER_EINVAL, "malformed node id value");
        aether_err_prefix(err, "id");
        return st;
    }
    if ((st = check_address(info->address, sizeof(info->address), err)) != AETHER_OK)
        return st;
    if ((st = check_zone(info->zone, sizeof(info->zone), err)) != AETHER_OK)
        return st;
    if ((unsigned)info->status >= AETHER_NODE_STATUS_COUNT_)
        return aether_err_set(err, AETHER_EINVAL, "status: unknown value %u",
                              (unsigned)info->status);
    return AETHER_OK;
}

aether_status aether_node_info_make(aether_node_info *out, const char *id, const char *address,
                                    const char *zone, aether_node_status status,
                                    uint64_t incarnation, uint64_t joined_at_ms, aether_err *err)
{
    AETHER_ASSERT(out != NULL && id != NULL && address != NULL);
    memset(out, 0, sizeof(*out));
    aether_status st = aether_node_id_from_cstr(id, &out->id, err);
    if (st != AETHER_OK) {
        aether_err_prefix(err, "id");
        goto fail;
    }
    if ((st = check_address(address, sizeof(out->address), err)) != AETHER_OK)
        goto fail;
    memcpy(out->address, address, strlen(address) + 1);
    if (zone != NULL) {
        if ((st = check_zone(zone, sizeof(out->zone), err)) != AETHER_OK)
            goto fail;
        memcpy(out->zone, zone, strlen(zone) + 1);
    }
    out->status = status;
    out->incarnation = incarnation;
    out->joined_at_ms = joined_at_ms;
    if ((st = aether_node_info_validate(out, err)) != AETHER_OK)
        goto fail;
    return AETHER_OK;
fail:
    memset(out, 0, sizeof(*out));
    return st;
}

/* ---- lease --------------------------------------------------------------- */

aether_status aether_lease_validate(const aether_lease *lease, aether_err *err)
{
    AETHER_ASSERT(lease != NULL);
    if (!aether_node_id_is_valid(&lease->leader))
        return aether_err_set(err, AETHER_EINVAL, "leader: not a valid node id");
    if (lease->term == AETHER_TERM_NONE)
        return aether_err_set(err, AETHER_EINVAL, "term: 0 is not a term (terms start at 1)");
    if (lease->ttl_ms == 0 || lease->ttl_ms > AETHER_LEASE_TTL_MS_MAX)
        return aether_err_set(err, AETHER_EINVAL, "ttl_ms: %llu out of range 1..%llu",
                              (unsigned long long)lease->ttl_ms,
                              (unsigned long long)AETHER_LEASE_TTL_MS_MAX);
    if (lease->safety_margin_ms >= lease->ttl_ms)
        return aether_err_set(err, AETHER_EINVAL,
                              "safety_margin_ms: %llu must be below ttl_ms %llu",
                              (unsigned long long)lease->safety_margin_ms,
                              (unsigned long long)lease->ttl_ms);
    if (lease->renewed_at_ns < lease->acquired_at_ns)
        return aether_err_set(err, AETHER_EINVAL,
                              "renewed_at_ns: %llu is before acquired_at_ns %llu",
                              (unsigned long long)lease->renewed_at_ns,
                              (unsigned long long)lease->acquired_at_ns);
    uint64_t window_ns = (lease->ttl_ms - lease->safety_margin_ms) * UINT64_C(1000000);
    if (lease->renewed_at_ns > UINT64_MAX - window_ns)
        return aether_err_set(err, AETHER_EINVAL,
                              "renewed_at_ns: %llu puts the deadline past 2^64 ns",
                              (unsigned long long)lease->renewed_at_ns);
    return AETHER_OK;
}
