/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_auth.h: the tag of auth.h on a NATS message (transport layer; issue
 * 13 item 1). auth.h knows bytes and subjects; this is the one place that
 * reads them, and the AETHER_AUTH_HEADER header, from a natsMsg, for the
 * NATS transport (publications), the KV stores (stored values) and
 * aetherctl (what it reads).
 *
 * Threading: pure but for the clock reading the caller passes; any thread.
 */
#ifndef AETHER_NATS_AUTH_H
#define AETHER_NATS_AUTH_H

#include <stdint.h>

#include <nats/nats.h>

#include "auth.h"

/* aether_auth_open over msg's subject, payload and Aether-Auth header (a
 * missing header is "no Aether-Auth tag"). now_ms as aether_auth_open: 0
 * for no freshness check. */
aether_status aether_auth_open_msg(const aether_auth *a, natsMsg *msg, uint64_t now_ms, aether_auth_stamp *out,
                                   aether_err *why);

/* msg's subject, or "?" when it has none: for refusal log lines. */
const char *aether_auth_msg_subject(natsMsg *msg);

#endif
