/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics_http.c: GET /metrics over libmicrohttpd (tests layer).
 *
 * The server listens on 127.0.0.1 with a port picked by the kernel's
 * neighbour search below; a raw-socket client sends HTTP/1.0 requests and
 * reads whole replies (bounded by a receive timeout), so the test needs no
 * HTTP library and sees exactly what a scraper gets.
 *
 * AETHER_TEST_LABELS: concurrency
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cu_test.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"

#define REPLY_MAX 65536
#define RECV_TIMEOUT_S 5

/* A loopback port nobody listens on now (bind to 0, read it, close). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Sends `request` to 127.0.0.1:port, returns the whole reply (malloc'd). */
static char *http(uint16_t port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct timeval tv = { RECV_TIMEOUT_S, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    size_t n = strlen(request);
    CU_ASSERT_FATAL(write(fd, request, n) == (ssize_t)n);
    char *buf = calloc(1, REPLY_MAX + 1);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, REPLY_MAX - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || got + (size_t)r >= REPLY_MAX)
            break;
        got += (size_t)r;
    }
    close(fd);
    return buf;
}

typedef struct fixture {
    aether_metrics *m;
    aether_metrics_http *h;
    uint16_t port;
    pthread_t server;       /* serves h until stop_serving (the server has no thread of its own) */
    atomic_bool stop_serving;
} fixture;

#define SERVE_SLICE_MS 20u

/* The controlling thread of the server, as aether-node's main thread is:
 * bounded by the flag, each wait at most SERVE_SLICE_MS. */
static void *serve_main(void *arg)
{
    fixture *f = arg;
    while (!atomic_load(&f->stop_serving))
        aether_metrics_http_serve(f->h, SERVE_SLICE_MS);
    return NULL;
}

static void start(fixture *f)
{
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&f->m), AETHER_OK);
    aether_counter *c = aether_metrics_counter(f->m, "aether_test_total", "A test counter.", "node=\"n1\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    aether_counter_add(c, 7);
    aether_gauge *g = aether_metrics_gauge(f->m, "aether_test_gauge", "A test gauge.", NULL);
    aether_gauge_set(g, -3);
    char addr[32];
    aether_err err = { 0 };
    aether_status st = AETHER_EIO;
    /* Another process may take the port between the probe and the bind:
     * try a few. */
    for (int i = 0; i < 5 && st != AETHER_OK; i++) {
        f->port = free_port();
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", f->port);
        st = aether_metrics_http_start(addr, f->m, &f->h, &err);
    }
    CU_ASSERT_EQUAL_FATAL(st, AETHER_OK);
    CU_ASSERT_EQUAL(aether_metrics_http_port(f->h), f->port);
    atomic_init(&f->stop_serving, false);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&f->server, NULL, serve_main, f), 0);
}

static void stop(fixture *f)
{
    atomic_store(&f->stop_serving, true);
    CU_ASSERT_EQUAL(pthread_join(f->server, NULL), 0);
    aether_metrics_http_stop(f->h);
    aether_metrics_destroy(f->m);
}

static void test_get_metrics(void)
{
    fixture f;
    start(&f);
    char *r = http(f.port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "HTTP/1.0 200") != NULL ? r : strstr(r, "HTTP/1.1 200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    const char *body = strstr(r, "\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_STRING_EQUAL(body + 4, "# HELP aether_test_total A test counter.\n"
                                     "# TYPE aether_test_total counter\n"
                                     "aether_test_total{node=\"n1\"} 7\n"
                                     "# HELP aether_test_gauge A test gauge.\n"
                                     "# TYPE aether_test_gauge gauge\n"
                                     "aether_test_gauge -3\n");
    free(r);
    /* A query string does not change the path. */
    r = http(f.port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(r, " 200 "));
    free(r);
    stop(&f);
}

static void test_other_path_404(void)
{
    fixture f;
    start(&f);
    const char *paths[] = { "/", "/metric", "/metrics/", "/favicon.ico" };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", paths[i]);
        char *r = http(f.port, req);
        CU_ASSERT_PTR_NOT_NULL(strstr(r, " 404 "));
        CU_ASSERT_PTR_NULL(strstr(r, "aether_test_total"));
        free(r);
    }
    stop(&f);
}

static void test_other_method_405(void)
{
    fixture f;
    start(&f);
    char *r = http(f.port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    CU_ASSERT_PTR_NOT_NULL(strstr(r, " 405 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "Allow: GET, HEAD"));
    free(r);
    r = http(f.port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(r, " 405 "));
    free(r);
    /* HEAD: the headers of a GET, no body. */
    r = http(f.port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(r, " 200 "));
    CU_ASSERT_PTR_NULL(strstr(r, "aether_test_total"));
    free(r);
    stop(&f);
}

static void test_bad_address_refused(void)
{
    aether_metrics *m = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_metrics_create(&m), AETHER_OK);
    const char *bad[] = { "9100", ":9100", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:http", "::1:9100", "[::1:9100", "[]:9100" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aether_metrics_http *h = NULL;
        aether_err err = { 0 };
        CU_ASSERT_EQUAL(aether_metrics_http_start(bad[i], m, &h, &err), AETHER_EINVAL);
        CU_ASSERT_PTR_NULL(h);
        CU_ASSERT(err.msg[0] != '\0');
    }
    aether_metrics_destroy(m);
}

/* A port in use is a run failure (EIO), said clearly. */
static void test_port_in_use(void)
{
    fixture f;
    start(&f);
    aether_metrics_http *h2 = NULL;
    aether_err err = { 0 };
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", f.port);
    aether_log_level saved = aether_log_get_level();
    aether_log_set_level(AETHER_LOG_OFF); /* libmicrohttpd's bind complaint */
    CU_ASSERT_EQUAL(aether_metrics_http_start(addr, f.m, &h2, &err), AETHER_EIO);
    aether_log_set_level(saved);
    CU_ASSERT_PTR_NULL(h2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, addr));
    stop(&f);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(get_metrics),
    AETHER_TEST(other_path_404),
    AETHER_TEST(other_method_405),
    AETHER_TEST(bad_address_refused),
    AETHER_TEST(port_in_use),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("metrics_http", NULL, NULL, tests);
