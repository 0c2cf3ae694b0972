/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_server.c: a real nats-server as a child process of a C test (tests
 * layer). See nats_server.h.
 *
 * Threading: the calling test's thread only.
 */
#include "nats_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TNS_POLL_MS 10u
#define TNS_LOG_SCAN_MAX ((size_t)256 << 10) /* bytes of server.log searched for "ready" */
#define TNS_PATH_MAX 4096u                   /* bytes of $PATH searched */
#define TNS_RM_FDS 16                        /* nftw's open directories */

static uint64_t tns_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tns_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* bounded: the remaining time shrinks */
        ;
}

bool tns_find_bin(char *out, size_t cap)
{
    const char *env = getenv("AETHER_NATS_SERVER");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    char dirs[TNS_PATH_MAX];
    const char *path = getenv("PATH");
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/bin", path != NULL ? path : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        /* bounded: the tokens of a TNS_PATH_MAX string */
        snprintf(out, cap, "%s/nats-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

int tns_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    close(fd);
    return ok ? ntohs(a.sin_port) : -1;
}

bool tns_port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* "Server is ready" lines in the log so far (it is appended to on every
 * start, so a restart is ready when the count grows). */
static unsigned tns_ready_count(const tns_server *s)
{
    char path[sizeof(s->dir) + 16];
    snprintf(path, sizeof(path), "%s/server.log", s->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char buf[TNS_LOG_SCAN_MAX];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f); /* bounded: the buffer */
    fclose(f);
    buf[n] = '\0';
    unsigned count = 0;
    for (const char *p = strstr(buf, "Server is ready"); p != NULL; /* bounded: n bytes */
         p = strstr(p + 1, "Server is ready"))
        count++;
    return count;
}

bool tns_spawn(tns_server *s)
{
    char port[16], log[sizeof(s->dir) + 16];
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
    char *argv[] = {"nats-server", "-js", "-sd", s->dir, "-a", "127.0.0.1", "-p", port, NULL};
    unsigned ready_before = tns_ready_count(s);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "nats_server: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. The server dies with us. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(s->bin, argv);
        _exit(127);
    }
    s->pid = pid;
    uint64_t t0 = tns_now_ms();
    while (tns_now_ms() - t0 < TNS_START_MS) { /* bounded */
        if (tns_ready_count(s) > ready_before && tns_port_accepts(s->port))
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            return false;
        }
        tns_sleep_ms(TNS_POLL_MS);
    }
    return false;
}

bool tns_start(tns_server *s, const char *tag)
{
    memset(s, 0, sizeof(*s));
    if (!tns_find_bin(s->bin, sizeof(s->bin))) {
        fprintf(stderr, "nats_server: nats-server not found ($AETHER_NATS_SERVER, $PATH, "
                        "/usr/sbin, /usr/local/bin); install it (tools/deps install, or "
                        "apt-get install nats-server)\n");
        return false;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/%.32s-XXXXXX", tag);
    if (mkdtemp(s->dir) == NULL) {
        fprintf(stderr, "nats_server: mkdtemp %s: %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return false;
    }
    for (unsigned i = 0; i < TNS_START_ATTEMPTS; i++) {
        s->port = tns_free_port();
        if (s->port <= 0)
            continue;
        if (tns_spawn(s))
            return true;
        tns_stop(s); /* lost a race for the port, or slow: try another */
    }
    fprintf(stderr, "nats_server: nats-server did not start (%u ports tried); see %s/server.log\n",
            TNS_START_ATTEMPTS, s->dir);
    return false;
}

void tns_stop(tns_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT); /* in case a test froze it */
    kill(s->pid, SIGTERM);
    uint64_t t0 = tns_now_ms();
    int status;
    while (tns_now_ms() - t0 < TNS_STOP_MS) { /* bounded */
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        tns_sleep_ms(TNS_POLL_MS);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0); /* SIGKILL cannot be ignored */
    s->pid = 0;
}

void tns_kill(tns_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    int status;
    waitpid(s->pid, &status, 0); /* SIGKILL cannot be ignored */
    s->pid = 0;
}

bool tns_freeze(tns_server *s)
{
    if (s->pid <= 0 || kill(s->pid, SIGSTOP) != 0)
        return false;
    uint64_t t0 = tns_now_ms();
    int status = 0;
    pid_t got = 0;
    while (got == 0 && tns_now_ms() - t0 < TNS_STOP_MS) { /* bounded */
        got = waitpid(s->pid, &status, WNOHANG | WUNTRACED);
        if (got == 0)
            tns_sleep_ms(1);
    }
    return got == s->pid && WIFSTOPPED(status);
}

bool tns_thaw(tns_server *s)
{
    return s->pid > 0 && kill(s->pid, SIGCONT) == 0;
}

static int tns_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tns_destroy(tns_server *s)
{
    tns_stop(s);
    if (s->dir[0] != '\0') {
        nftw(s->dir, tns_rm_entry, TNS_RM_FDS, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}

natsConnection *tns_connect(const tns_server *s)
{
    natsOptions *o = NULL;
    natsConnection *c = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = natsOptions_SetURL(o, s->url);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, TNS_CONNECT_TIMEOUT_MS);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, TNS_RECONNECT_MAX);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, TNS_RECONNECT_WAIT_MS);
    if (st == NATS_OK)
        st = natsConnection_Connect(&c, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        fprintf(stderr, "nats_server: connect %s: %s\n", s->url, natsStatus_GetText(st));
        return NULL;
    }
    return c;
}
