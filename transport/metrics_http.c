/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.c: GET /metrics over libmicrohttpd (transport layer; see
 * metrics_http.h for the contract).
 *
 * DESIGN
 *  1. One libmicrohttpd daemon without a thread of its own (external
 *     polling, MHD_USE_EPOLL): the controlling thread lends it time with
 *     aether_metrics_http_serve, which waits on the daemon's one epoll
 *     descriptor and runs MHD_run (non-blocking sockets: it never waits on
 *     a slow client). aether-node's main thread, which sleeps between its
 *     50 ms ticks anyway, waits there instead: a scrape every few seconds
 *     needs no thread (issue 16: one thread fewer), and one thread keeps the
 *     renders serial. The cost: while the main thread does something else
 *     (starting, draining), a scrape waits in the listen backlog.
 *  2. A request for /metrics renders the registry into a fresh malloc'd
 *     buffer that the response takes over (MHD_RESPMEM_MUST_FREE). The
 *     registry's mutex is the only lock taken; computed series read atomics
 *     and RCU snapshots, so a scrape never waits for an actor.
 *  3. Bounds: at most CONNECTIONS_MAX connections at once, each closed after
 *     CONNECTION_TIMEOUT_S idle; request bodies are never read (a method
 *     that carries one is answered 405 at its first call).
 *  4. libmicrohttpd's own error messages go through the project logger.
 */
#include "metrics_http.h"

#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "assertion.h"
#include "log.h"
#include "settings.h"

#define LOG_MOD "metrics_http"
#define CONNECTIONS_MAX 16u
#define CONNECTION_TIMEOUT_S 10u
#define METRICS_PATH "/metrics"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct aether_metrics_http {
    struct MHD_Daemon *daemon; /* immutable after start */
    aether_metrics *metrics;   /* borrowed; immutable */
    uint16_t port;             /* immutable after start */
    int epoll_fd;              /* the daemon's; immutable after start */
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    AETHER_WARN(LOG_MOD, "libmicrohttpd: %s", line);
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int code, const char *text,
                                  bool allow_header)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (allow_header)
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    aether_metrics_http *h = cls;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(url, METRICS_PATH) != 0)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n", false);
    if (!get)
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n", true);

    char *body = NULL;
    size_t len = 0;
    if (aether_metrics_render_prometheus(h->metrics, &body, &len) != AETHER_OK)
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory rendering the metrics\n", false);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

aether_status aether_metrics_http_start(const char *addr, aether_metrics *m, aether_metrics_http **out,
                                        aether_err *err)
{
    AETHER_ASSERT(addr != NULL && m != NULL && out != NULL);
    *out = NULL;
    char host[256], port_s[8];
    uint16_t port = 0;
    aether_status st = aether_settings_parse_hostport(addr, host, sizeof(host), &port, err);
    if (st != AETHER_OK)
        return st;
    snprintf(port_s, sizeof(port_s), "%u", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0)
        return aether_err_set(err, AETHER_EINVAL, "metrics address %s: %s", addr, gai_strerror(rc));

    aether_metrics_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        freeaddrinfo(res);
        return aether_err_set(err, AETHER_ENOMEM, "out of memory");
    }
    h->metrics = m;
    unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG; /* DESIGN 1: no thread of its own */
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger first: libmicrohttpd wants it before the options it may
     * complain about. */
    h->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                 MHD_OPTION_SOCK_ADDR, res->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTIONS_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_END);
    freeaddrinfo(res);
    if (h->daemon == NULL) {
        free(h);
        return aether_err_set(err, AETHER_EIO,
                              "cannot serve metrics on %s (address in use, or not this host's?)", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : port;
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    AETHER_ASSERT(info != NULL && info->epoll_fd >= 0); /* MHD_USE_EPOLL without an internal thread */
    h->epoll_fd = info->epoll_fd;
    AETHER_INFO(LOG_MOD, "serving Prometheus metrics on http://%s/metrics", addr);
    *out = h;
    return AETHER_OK;
}

uint16_t aether_metrics_http_port(const aether_metrics_http *h) { return h->port; }

void aether_metrics_http_serve(aether_metrics_http *h, uint32_t timeout_ms)
{
    AETHER_ASSERT(h != NULL);
    /* libmicrohttpd's own deadline (an idle connection to close) may come
     * sooner than the caller's. */
    MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
    if (MHD_get_timeout(h->daemon, &mhd_ms) == MHD_YES && mhd_ms < timeout_ms)
        timeout_ms = (uint32_t)mhd_ms;
    struct pollfd p = { .fd = h->epoll_fd, .events = POLLIN };
    (void)poll(&p, 1, (int)timeout_ms); /* EINTR (a signal): the caller's loop checks its flag */
    (void)MHD_run(h->daemon);          /* what is ready now, without waiting */
}

void aether_metrics_http_stop(aether_metrics_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
