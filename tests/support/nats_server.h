/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_server.h: a real nats-server as a child process of a C test (tests
 * layer): found, started with JetStream on a free loopback port and its own
 * temporary store directory, waited for, frozen, killed, restarted on the
 * same port and store, stopped and cleaned up; and a client connection to
 * it. The one launcher of the C harnesses: the unit tests that run against
 * a real server (test_kv_nats.c, test_nats_transport.c) and the bench
 * harness (bench/pcluster.c, which also keeps its nodes' logs in dir); the
 * shell scripts of tests/integration/ have the same helpers in lib.sh.
 *
 * The prefix is tns_ ("test nats server"): nats_ belongs to nats.c.
 *
 * The binary is $AETHER_NATS_SERVER, else nats-server on $PATH, then in
 * /usr/sbin and /usr/local/bin. A missing server is the caller's FAILURE
 * to report (tools/test installs it), never a skip.
 *
 * The child gets PR_SET_PDEATHSIG(SIGKILL), so a test that dies leaves no
 * server behind. Its stdout and stderr are appended to <dir>/server.log;
 * "ready" means one more "Server is ready" line in that log than before the
 * start AND the port accepting connections: a port that accepts could
 * belong to another test's server that took it first.
 *
 * Every wait is bounded (TNS_START_MS, TNS_STOP_MS). Nothing here asserts:
 * failures are returned and explained on stderr, so the caller decides
 * (CU_ASSERT_TRUE_FATAL(tns_start(...)) in a CUnit test).
 *
 * Threading: a tns_server belongs to the thread that made it (the test's);
 * tns_connect's connection is the caller's, as any nats.c connection.
 */
#ifndef AETHER_TEST_NATS_SERVER_H
#define AETHER_TEST_NATS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <nats/nats.h>

#define TNS_START_MS 5000u      /* until the server says ready and the port accepts */
#define TNS_STOP_MS 2000u       /* SIGTERM grace before SIGKILL; SIGSTOP confirmation */
#define TNS_START_ATTEMPTS 3u   /* another port if one was taken meanwhile */
#define TNS_CONNECT_TIMEOUT_MS 1000
#define TNS_RECONNECT_MAX 100   /* tns_connect's connection: attempts ... */
#define TNS_RECONNECT_WAIT_MS 50 /* ... this far apart (5 s in all) */

typedef struct tns_server {
    pid_t pid;      /* 0 = not running */
    int port;       /* the client port on 127.0.0.1; kept across a kill for tns_spawn */
    char dir[64];   /* temporary store + server.log; "" = none made */
    char bin[512];  /* the nats-server binary */
    char url[64];   /* nats://127.0.0.1:<port> */
} tns_server;

/* The nats-server binary (see above) into out; false if there is none. */
bool tns_find_bin(char *out, size_t cap);

/* A loopback port nobody listens on right now (nats-server cannot bind
 * port 0, so the kernel picks one for a socket we close); -1 on failure. */
int tns_free_port(void);

/* True if something accepts TCP connections on 127.0.0.1:port. */
bool tns_port_accepts(int port);

/* Finds the binary, makes /tmp/<tag>-XXXXXX and starts the server with
 * JetStream on a free port, trying up to TNS_START_ATTEMPTS ports. false
 * with the reason on stderr (what was made is left for tns_destroy). s is
 * zeroed first; tag is at most 32 characters of a file name. */
bool tns_start(tns_server *s, const char *tag);

/* Starts the server (again) on s->port with the store in s->dir, as after
 * tns_kill: JetStream data written before survives. true once ready; false
 * if the child died or TNS_START_MS passed (the child, if any, is left
 * running for tns_stop). */
bool tns_spawn(tns_server *s);

/* SIGCONT (in case it was frozen), SIGTERM, SIGKILL after TNS_STOP_MS;
 * reaped. Nothing if not running. */
void tns_stop(tns_server *s);

/* SIGKILL and reap: the server vanishes without closing anything cleanly. */
void tns_kill(tns_server *s);

/* SIGSTOP, then waits (<= TNS_STOP_MS) until the kernel reports it stopped
 * (kill returns before every thread of it has stopped). false if not
 * running or not confirmed. */
bool tns_freeze(tns_server *s);

/* SIGCONT. false if not running. */
bool tns_thaw(tns_server *s);

/* tns_stop, then removes s->dir with everything in it. Safe on a zeroed or
 * already destroyed server. */
void tns_destroy(tns_server *s);

/* A new connection to s->url: TNS_CONNECT_TIMEOUT_MS per attempt, and
 * reconnecting (TNS_RECONNECT_MAX times, TNS_RECONNECT_WAIT_MS apart) so
 * a test can restart the server under it. NULL with the reason on stderr. */
natsConnection *tns_connect(const tns_server *s);

#endif
