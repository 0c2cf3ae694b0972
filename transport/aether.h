/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether.h: the public umbrella header of libaether (installed as
 * <aether/aether.h>; transport layer, the top of the library).
 *
 * Everything an embedder uses, and nothing else: no header of ck, urcu,
 * nats.c or xxHash, no internal type. C11 and C++17.
 *   aether_status.h   the status every call returns, aether_status_str;
 *   aether_options.h  aether_options (the parameters, by the keys of the
 *                     configuration file) and the callbacks; aether_last_error;
 *   aether_node.h     aether_node: start (NATS or in-process), wait_ready,
 *                     route_key/_shard/_hash, check_route, drain, stop,
 *                     destroy; aether_version.
 * <aether/aether_version.h> (generated) has the version as macros.
 * docs/embedding.md: the lifecycle, the threading and signal rules, who
 * owns what, an example.
 *
 * The programs of this tree that use the internals include
 * aether_internal.h instead (not installed).
 */
#ifndef AETHER_H
#define AETHER_H

#include "aether_status.h"
#include "aether_options.h"
#include "aether_node.h"

#endif
