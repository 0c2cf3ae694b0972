/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.c: GET /metrics over a minimal HTTP/1.x server of its own
 * (transport layer; see metrics_http.h for the contract).
 *
 * DESIGN
 *  1. One thread (started with every signal blocked, thread.h) polls the
 *     listening socket, the open connections and a wake-up pipe. A scrape
 *     every few seconds needs no more, and one thread keeps the renders
 *     serial. It used to be libmicrohttpd: that library and the GnuTLS it
 *     is built with mapped 2.4 MB of shared libraries into every node for
 *     one request line (docs/tuning.md).
 *  2. A connection sends one request: its head (request line and headers,
 *     up to HEAD_MAX bytes, ended by an empty line) is read without
 *     blocking; the answer goes out with "Connection: close" and the
 *     connection is closed. Prometheus and curl handle that; no keep-alive
 *     state to bound. A request body is never read: a method that carries
 *     one (anything but GET and HEAD) is answered 405 at once.
 *  3. A request for /metrics (a query string is ignored) renders the
 *     registry into a fresh buffer. The registry's mutex is the only lock
 *     taken; computed series read atomics and RCU snapshots, so a scrape
 *     never waits for an actor.
 *  4. Bounds: at most CONNECTIONS_MAX connections at once (more wait in
 *     the listen backlog); a connection idle for CONNECTION_TIMEOUT_MS, or
 *     whose head exceeds HEAD_MAX, is answered 400 or closed; the answer
 *     is written with a send timeout of SEND_TIMEOUT_MS (a reader that does
 *     not read cannot hold the thread longer).
 *  5. Stop: a byte on the wake-up pipe ends the loop; the thread is joined,
 *     every socket closed.
 */
#include "metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "assertion.h"
#include "log.h"
#include "settings.h"
#include "thread.h"

#define LOG_MOD "metrics_http"
#define CONNECTIONS_MAX 16u
#define CONNECTION_TIMEOUT_MS 10000u
#define SEND_TIMEOUT_MS 5000u
#define HEAD_MAX 4096u
#define LISTEN_BACKLOG 16
#define METRICS_PATH "/metrics"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct http_conn {
    int fd;              /* -1: free slot */
    uint64_t opened_ms;  /* monotonic */
    size_t len;          /* bytes of head read */
    char head[HEAD_MAX + 1];
} http_conn;

struct aether_metrics_http {
    aether_metrics *metrics;   /* borrowed; immutable */
    uint16_t port;             /* immutable after start */
    int listen_fd;             /* the server thread's after start */
    int wake[2];               /* pipe: stop writes [1], the thread polls [0] */
    pthread_t thread;
    bool started;              /* main thread */
    http_conn conns[CONNECTIONS_MAX]; /* the server thread's */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes all of buf, bounded by the socket's send timeout. */
static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void reply(int fd, bool http10, unsigned code, const char *reason, const char *type, const char *extra,
                  const char *body, size_t body_len, bool head_only)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.%c %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     http10 ? '0' : '1', code, reason, type, body_len, extra);
    AETHER_ASSERT(n > 0 && (size_t)n < sizeof(hdr));
    if (send_all(fd, hdr, (size_t)n) && !head_only && body_len > 0)
        (void)send_all(fd, body, body_len);
}

static void reply_text(int fd, bool http10, unsigned code, const char *reason, const char *text,
                       const char *extra)
{
    reply(fd, http10, code, reason, "text/plain; charset=utf-8", extra, text, strlen(text), false);
}

/* One complete head in c: answers it (DESIGN 2, 3). */
static void serve(aether_metrics_http *h, http_conn *c)
{
    char method[16], target[1024], version[16];
    bool http10 = false;
    if (sscanf(c->head, "%15s %1023s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        reply_text(c->fd, true, 400, "Bad Request", "bad request\n", "");
        return;
    }
    http10 = strcmp(version, "HTTP/1.0") == 0;
    char *q = strchr(target, '?');
    if (q != NULL)
        *q = '\0';
    if (strcmp(target, METRICS_PATH) != 0) {
        reply_text(c->fd, http10, 404, "Not Found", "not found: the metrics are at /metrics\n", "");
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        reply_text(c->fd, http10, 405, "Method Not Allowed", "method not allowed: use GET\n",
                   "Allow: GET, HEAD\r\n");
        return;
    }
    char *body = NULL;
    size_t len = 0;
    if (aether_metrics_render_prometheus(h->metrics, &body, &len) != AETHER_OK) {
        reply_text(c->fd, http10, 500, "Internal Server Error", "out of memory rendering the metrics\n", "");
        return;
    }
    reply(c->fd, http10, 200, "OK", CONTENT_TYPE, "", body, len, head);
    free(body);
}

static void conn_close(http_conn *c)
{
    (void)close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Reads what c has; answers and closes once its head is complete. */
static void conn_read(aether_metrics_http *h, http_conn *c)
{
    for (;;) { /* bounded: HEAD_MAX bytes */
        if (c->len == HEAD_MAX) {
            c->head[c->len] = '\0';
            reply_text(c->fd, true, 400, "Bad Request", "request head too long\n", "");
            conn_close(c);
            return;
        }
        ssize_t n = recv(c->fd, c->head + c->len, HEAD_MAX - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the rest later */
        if (n <= 0) {
            conn_close(c); /* closed by the client, or an error */
            return;
        }
        c->len += (size_t)n;
        c->head[c->len] = '\0';
        /* A method with a body is answered at its request line (DESIGN 2). */
        bool line_done = strstr(c->head, "\r\n") != NULL || strchr(c->head, '\n') != NULL;
        bool body_method = line_done && strncmp(c->head, "GET ", 4) != 0 && strncmp(c->head, "HEAD ", 5) != 0;
        if (body_method || strstr(c->head, "\r\n\r\n") != NULL || strstr(c->head, "\n\n") != NULL) {
            /* The answer is written blocking, bounded by SO_SNDTIMEO. */
            int flags = fcntl(c->fd, F_GETFL);
            if (flags >= 0)
                (void)fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
            serve(h, c);
            conn_close(c);
            return;
        }
    }
}

static void accept_new(aether_metrics_http *h)
{
    for (uint32_t tries = 0; tries < CONNECTIONS_MAX; tries++) {
        http_conn *c = NULL;
        for (uint32_t i = 0; i < CONNECTIONS_MAX && c == NULL; i++)
            if (h->conns[i].fd < 0)
                c = &h->conns[i];
        if (c == NULL)
            return; /* full: the rest wait in the backlog */
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a connection gone before accept */
        struct timeval tv = { .tv_sec = SEND_TIMEOUT_MS / 1000u, .tv_usec = 0 };
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->fd = fd;
        c->len = 0;
        c->opened_ms = mono_ms();
    }
}

static void *server_main(void *arg)
{
    aether_metrics_http *h = arg;
    struct pollfd pfd[2 + CONNECTIONS_MAX];
    for (;;) { /* until the wake-up pipe says stop */
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = h->wake[0], .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = h->listen_fd, .events = POLLIN };
        int slot[CONNECTIONS_MAX];
        uint64_t now = mono_ms();
        for (uint32_t i = 0; i < CONNECTIONS_MAX; i++) {
            http_conn *c = &h->conns[i];
            if (c->fd < 0)
                continue;
            if (now - c->opened_ms >= CONNECTION_TIMEOUT_MS) {
                conn_close(c); /* idle, or too slow to send its head */
                continue;
            }
            slot[n - 2] = (int)i;
            pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
        }
        int rc = poll(pfd, n, 1000); /* wakes up to close idle connections */
        if (rc < 0 && errno != EINTR) {
            AETHER_ERROR(LOG_MOD, "poll: %s; the metrics endpoint stops", strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        if (pfd[0].revents != 0)
            break;
        for (nfds_t k = 2; k < n; k++)
            if (pfd[k].revents != 0)
                conn_read(h, &h->conns[slot[k - 2]]);
        if (pfd[1].revents & POLLIN)
            accept_new(h);
    }
    for (uint32_t i = 0; i < CONNECTIONS_MAX; i++)
        if (h->conns[i].fd >= 0)
            conn_close(&h->conns[i]);
    return NULL;
}

static void http_free(aether_metrics_http *h)
{
    if (h->listen_fd >= 0)
        (void)close(h->listen_fd);
    if (h->wake[0] >= 0)
        (void)close(h->wake[0]);
    if (h->wake[1] >= 0)
        (void)close(h->wake[1]);
    free(h);
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
    h->port = port;
    h->wake[0] = h->wake[1] = -1;
    for (uint32_t i = 0; i < CONNECTIONS_MAX; i++)
        h->conns[i].fd = -1;
    h->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    int bind_errno = 0;
    if (h->listen_fd < 0 || setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(h->listen_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(h->listen_fd, LISTEN_BACKLOG) != 0)
        bind_errno = errno;
    freeaddrinfo(res);
    if (bind_errno != 0) {
        http_free(h);
        return aether_err_set(err, AETHER_EIO, "cannot serve metrics on %s: %s (address in use, or not this "
                              "host's?)", addr, strerror(bind_errno));
    }
    if (pipe2(h->wake, O_CLOEXEC) != 0 || aether_thread_create(&h->thread, server_main, h) != 0) {
        http_free(h);
        return aether_err_set(err, AETHER_EIO, "metrics endpoint %s: cannot start its thread", addr);
    }
    h->started = true;
    AETHER_INFO(LOG_MOD, "serving Prometheus metrics on http://%s/metrics", addr);
    *out = h;
    return AETHER_OK;
}

uint16_t aether_metrics_http_port(const aether_metrics_http *h) { return h->port; }

void aether_metrics_http_stop(aether_metrics_http *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        char b = 1;
        while (write(h->wake[1], &b, 1) < 0 && errno == EINTR) {
        }
        AETHER_ASSERT(pthread_join(h->thread, NULL) == 0);
    }
    http_free(h);
}
