/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.h: the Prometheus scrape endpoint of a process, GET /metrics
 * over HTTP, served by libmicrohttpd (transport layer, kept out of
 * libaether: linked into aether-node only, so the library and its
 * pkg-config file do not depend on libmicrohttpd).
 *
 * It renders an aether_metrics registry (engine/metrics.h) in the text
 * exposition format 0.0.4 on every GET or HEAD of /metrics; any other path
 * is 404 and any other method 405 (with "Allow: GET, HEAD").
 *
 * Threading: start, serve and stop from one controlling thread. The server
 * has no thread of its own: requests are served inside
 * aether_metrics_http_serve, which only renders the registry (computed
 * series read atomics or RCU snapshots, metrics.h says so, never an actor's
 * state; the controlling thread registers with RCU on its first read,
 * engine/snapshot.h). Between two calls a connecting scraper waits in the
 * listen backlog. The registry must outlive the server.
 */
#ifndef AETHER_METRICS_HTTP_H
#define AETHER_METRICS_HTTP_H

#include <stdint.h>

#include "metrics.h"
#include "status.h"

typedef struct aether_metrics_http aether_metrics_http;

/* Listens on addr ("HOST:PORT", checked by aether_settings_parse_hostport)
 * and serves m. AETHER_OK and *out; AETHER_EINVAL (a bad address) or
 * AETHER_EIO (cannot listen: the port is taken, no permission), with err
 * saying why. */
aether_status aether_metrics_http_start(const char *addr, aether_metrics *m, aether_metrics_http **out,
                                        aether_err *err);

/* The port it listens on (useful with tests). */
uint16_t aether_metrics_http_port(const aether_metrics_http *h);

/* Serves what arrives for at most timeout_ms (less if libmicrohttpd has
 * an idle connection to close sooner, or a signal interrupts the wait):
 * waits on the daemon's descriptor, then handles every ready connection
 * without blocking. The controlling thread's loop calls it instead of
 * sleeping. */
void aether_metrics_http_serve(aether_metrics_http *h, uint32_t timeout_ms);

/* Stops listening, waits for the request in progress, frees. NULL is fine. */
void aether_metrics_http_stop(aether_metrics_http *h);

#endif
