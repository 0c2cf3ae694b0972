/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pcluster.c: a real nats-server and real aether-node processes for the
 * end-to-end benches (bench layer). See pcluster.h.
 *
 * DESIGN
 *  1. Children are forked with only async-signal-safe calls before exec,
 *     PR_SET_PDEATHSIG(SIGKILL) so none outlives us, stdout on a pipe whose
 *     read end is non-blocking and CLOEXEC (a later child does not inherit
 *     it), stderr appended to a log file in the temporary directory.
 *  2. The pipes are drained by poll() whenever the bench waits: a node that
 *     blocks on a full pipe would stall the callback that prints its trace
 *     (and the actor behind it), so the bench never sleeps without reading.
 *     The pipes are enlarged (F_SETPIPE_SZ) to ride out a burst of per-shard
 *     event lines.
 *  3. Latencies come from the nodes' own timestamps (mono_us), never from
 *     when this process happened to read a line, so a slow reader does not
 *     inflate them.
 *
 * Threading: main thread only; the signal handler only sets a flag.
 */
#include "pcluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "aether_internal.h"
#include "invariants.h"
#include "nats_kv.h"
#include "nats_server.h"
#include "report.h"
#include "trace_line.h"

#define PCL_HELP_MS 5000u            /* aether-node --help must answer within */
#define PCL_HELP_MAX 16384u          /* bytes of --help read */
#define PCL_PIPE_BYTES (1 << 20)     /* F_SETPIPE_SZ request; the default 64 KiB also works */
#define PCL_READ_CHUNK 65536u
#define PCL_READS_PER_PUMP 64u       /* bounded work per fd per pump */
#define PCL_RECS_MAX 4000000u        /* kept records, a runaway bound */
#define PCL_KV_TIMEOUT_MS 2000u

static volatile sig_atomic_t pcl_stop;
static pcluster *pcl_active; /* for the atexit cleanup */

static void pcl_on_signal(int sig)
{
    pcl_stop = sig;
}

bool pcl_interrupted(void)
{
    return pcl_stop != 0;
}

uint64_t pcl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void pcl_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    (void)nanosleep(&ts, NULL); /* EINTR: the caller's bounded loop looks at the flag */
}

bool pcl_live(const pcluster *c, uint32_t i)
{
    return i < c->n_nodes && c->nodes[i].pid > 0;
}

/* ---- finding things ------------------------------------------------------- */

static bool pcl_find_node(char *out, size_t cap)
{
    const char *env = getenv("AETHER_NODE_BIN");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        /* aether-node reads AETHER_<KEY> variables as parameters and refuses
         * unknown ones: the children must not inherit this one. */
        unsetenv("AETHER_NODE_BIN");
        return access(out, X_OK) == 0;
    }
    char self[PCL_PATH_MAX - 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    snprintf(out, cap, "%s/aether-node", self);
    return access(out, X_OK) == 0;
}

/* Runs `aether-node --help` and looks for "--trace" in what it prints. */
static bool pcl_node_has_trace(const char *bin)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return false;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execl(bin, "aether-node", "--help", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
    static char buf[PCL_HELP_MAX];
    size_t len = 0;
    uint64_t t0 = pcl_now_us();
    for (;;) { /* bounded: PCL_HELP_MS */
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        (void)poll(&pf, 1, 50);
        ssize_t r = read(p[0], buf + len, sizeof(buf) - 1 - len);
        if (r > 0) {
            len += (size_t)r;
            if (len + 1 >= sizeof(buf))
                break;
            continue;
        }
        if (r == 0)
            break;
        if (pcl_now_us() - t0 > PCL_HELP_MS * 1000ull)
            break;
    }
    buf[len] = '\0';
    close(p[0]);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    return strstr(buf, "--trace") != NULL;
}

/* ---- setup and teardown --------------------------------------------------- */

static void pcl_atexit(void)
{
    if (pcl_active != NULL)
        pcl_teardown(pcl_active);
}

bool pcl_setup(pcluster *c, const char *tag, uint32_t shards, uint32_t replication)
{
    static bool atexit_done;
    memset(c, 0, sizeof(*c));
    for (uint32_t i = 0; i < PCL_NODES_MAX; i++)
        c->nodes[i].fd = -1;
    c->shards = shards;
    c->replication = replication;
    uint32_t grow = shards / 1024u * PCL_LIMIT_MS_PER_1024_SHARDS;
    c->step_limit_ms = grow > PCL_STEP_LIMIT_MS ? grow : PCL_STEP_LIMIT_MS;
    c->settle_limit_ms = grow > PCL_SETTLE_LIMIT_MS ? grow : PCL_SETTLE_LIMIT_MS;
    c->exit_limit_ms = grow > PCL_EXIT_LIMIT_MS ? grow : PCL_EXIT_LIMIT_MS;
    snprintf(c->cluster, sizeof(c->cluster), "bench");
    c->keep_logs = getenv("AETHER_KEEP_LOGS") != NULL && getenv("AETHER_KEEP_LOGS")[0] != '\0';
    pcl_active = c;
    if (!atexit_done) {
        atexit(pcl_atexit);
        atexit_done = true;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pcl_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll and sleeps return at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (!pcl_find_node(c->node_bin, sizeof(c->node_bin))) {
        fprintf(stderr, "aether-bench: aether-node not found next to aether-bench (or $AETHER_NODE_BIN); "
                        "build it: cmake --build <build dir>\n");
        return false;
    }
    if (!pcl_node_has_trace(c->node_bin)) {
        fprintf(stderr, "aether-bench: %s has no --trace option yet (the observation contract these "
                        "benches read); rebuild it from a tree that has it\n", c->node_bin);
        return false;
    }
    /* The server and the directory its store, its log (server.log) and the
     * nodes' logs share: the harnesses' one launcher (tests/support). */
    char server_tag[40];
    snprintf(server_tag, sizeof(server_tag), "aether-bench-%.19s", tag);
    if (!tns_start(&c->server, server_tag)) {
        if (c->server.dir[0] != '\0')
            fprintf(stderr, "aether-bench: see %s/server.log\n", c->server.dir);
        return false;
    }
    snprintf(c->dir, sizeof(c->dir), "%s", c->server.dir);
    snprintf(c->url, sizeof(c->url), "%s", c->server.url);
    return true;
}

void pcl_teardown(pcluster *c)
{
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        pcl_node *n = &c->nodes[i];
        if (n->pid > 0) {
            kill(n->pid, SIGKILL);
            int st;
            waitpid(n->pid, &st, 0); /* SIGKILL cannot be ignored */
            n->pid = 0;
        }
        if (n->fd >= 0) {
            close(n->fd);
            n->fd = -1;
        }
    }
    if (c->keep_logs) {
        tns_stop(&c->server);
        if (c->server.dir[0] != '\0')
            fprintf(stderr, "aether-bench: logs kept in %s\n", c->server.dir);
    } else {
        tns_destroy(&c->server);
    }
    c->server.dir[0] = '\0';
    c->dir[0] = '\0';
    free(c->recs);
    c->recs = NULL;
    c->n_recs = c->cap_recs = 0;
    if (pcl_active == c)
        pcl_active = NULL;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* ---- nodes ---------------------------------------------------------------- */

int pcl_add_node(pcluster *c, const char *id)
{
    if (c->n_nodes >= PCL_NODES_MAX || strlen(id) > PCL_ID_MAX)
        return -1;
    pcl_node *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof(*n));
    n->fd = -1;
    n->last_status = -1;
    snprintf(n->id, sizeof(n->id), "%s", id);
    return (int)c->n_nodes++;
}

static void pcl_log_line(const pcluster *c, const pcl_node *n, const char *line)
{
    if (!c->keep_logs)
        return;
    char path[PCL_PATH_MAX + PCL_ID_MAX + 8];
    snprintf(path, sizeof(path), "%s/%s.out", c->dir, n->id);
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return;
    fprintf(f, "%s\n", line);
    fclose(f);
}

static void pcl_drain_fd(pcluster *c, uint32_t i);

bool pcl_spawn(pcluster *c, uint32_t i)
{
    pcl_node *n = &c->nodes[i];
    if (n->pid > 0)
        return false;
    if (n->fd >= 0) { /* what the previous incarnation still had in the pipe */
        pcl_drain_fd(c, i);
        if (n->fd >= 0) {
            close(n->fd);
            n->fd = -1;
        }
    }
    char shards[16], repl[16], err_path[PCL_PATH_MAX + PCL_ID_MAX + 8], maddr[32];
    snprintf(shards, sizeof(shards), "%u", c->shards);
    snprintf(repl, sizeof(repl), "%u", c->replication);
    snprintf(err_path, sizeof(err_path), "%s/%s.err", c->dir, n->id);
    n->metrics_port = tns_free_port();
    if (n->metrics_port <= 0)
        return false;
    snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", n->metrics_port);
    char *argv[] = { "aether-node", "--nats", c->url, "--node", n->id, "--cluster", c->cluster,
                     "--shards", shards, "--metrics-addr", maddr, "--trace", NULL, NULL, NULL };
    if (c->replication != 0) {
        argv[12] = "--replication";
        argv[13] = repl;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return false;
    (void)fcntl(p[0], F_SETPIPE_SZ, PCL_PIPE_BYTES); /* best effort: the default size also works */
    n->len = 0;
    n->overlong = false;
    memset(&n->view, 0, sizeof(n->view));
    n->expect_exit = false;
    pid_t parent = getpid();
    uint64_t t = pcl_now_us();
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec; the node dies with us. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        dup2(p[1], 1);
        execv(c->node_bin, argv);
        _exit(127);
    }
    close(p[1]);
    (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
    n->fd = p[0];
    n->pid = pid;
    n->spawned_us = t;
    n->spawns++;
    return true;
}

uint64_t pcl_signal(pcluster *c, uint32_t i, int sig)
{
    pcl_node *n = &c->nodes[i];
    if (n->pid <= 0)
        return pcl_now_us();
    n->expect_exit = true;
    uint64_t t = pcl_now_us();
    kill(n->pid, sig);
    if (sig == SIGKILL) {
        int st;
        waitpid(n->pid, &st, 0); /* SIGKILL cannot be ignored */
        n->last_status = st;
        n->pid = 0;
    }
    return t;
}

bool pcl_wait_exit(pcluster *c, uint32_t i, uint32_t limit_ms)
{
    uint64_t t0 = pcl_now_us();
    while (c->nodes[i].pid > 0) { /* bounded: limit_ms */
        if (pcl_interrupted() || pcl_now_us() - t0 > (uint64_t)limit_ms * 1000u)
            return false;
        pcl_pump(c, 10);
    }
    return true;
}

/* ---- parsing -------------------------------------------------------------- */

static bool pcl_kept_event(const char *type)
{
    static const char *const kept[] = { "NodeJoined", "NodeDraining", "NodeLeft", "NodeFailed",
                                        "LeaderElected", "LeadershipLost", "RebalanceStarted",
                                        "RebalanceCompleted" };
    for (size_t k = 0; k < sizeof(kept) / sizeof(kept[0]); k++)
        if (strcmp(type, kept[k]) == 0)
            return true;
    return false;
}

static void pcl_keep(pcluster *c, const pcl_rec *r)
{
    if (c->n_recs == c->cap_recs) {
        if (c->cap_recs >= PCL_RECS_MAX)
            return; /* runaway: stop keeping (the bench's waits time out and say so) */
        size_t cap = c->cap_recs ? c->cap_recs * 2 : 1024;
        pcl_rec *p = realloc(c->recs, cap * sizeof(*p));
        if (p == NULL)
            return;
        c->recs = p;
        c->cap_recs = cap;
    }
    c->recs[c->n_recs++] = *r;
}

static void pcl_parse_line(pcluster *c, uint32_t i, char *line)
{
    pcl_node *n = &c->nodes[i];
    pcl_log_line(c, n, line);
    trl_line l;
    trl_result res = trl_parse(line, &l);
    if (res == TRL_NOT_TRACE)
        return;
    c->lines_trace++;
    if (res != TRL_PARSED || strcmp(l.node, n->id) != 0) {
        c->lines_bad++;
        return;
    }
    trl_view_apply(&n->view, &l); /* MAP, LEADER, and LeaseRenewed for "settled" only */
    pcl_rec r;
    memset(&r, 0, sizeof(r));
    r.node = i;
    r.us = l.us;
    if (l.kind == TRL_MAP) {
        r.kind = PCL_MAP;
        r.num = l.num;
        pcl_keep(c, &r);
    } else if (l.kind == TRL_LEADER) {
        r.kind = PCL_LEADER;
        r.num = l.num;
        snprintf(r.who, sizeof(r.who), "%s", l.leader != NULL ? l.leader : "");
        pcl_keep(c, &r);
    } else if (l.kind == TRL_EVENT && pcl_kept_event(l.type)) {
        r.kind = PCL_EVENT;
        snprintf(r.type, sizeof(r.type), "%s", l.type);
        const char *em = trl_first(&l, "node");
        snprintf(r.emitter, sizeof(r.emitter), "%s", em ? em : "");
        const char *who = NULL, *num = NULL;
        if (strncmp(r.type, "Node", 4) == 0) {
            who = trl_last(&l, "node");
        } else if (strcmp(r.type, "LeaderElected") == 0 || strcmp(r.type, "LeadershipLost") == 0) {
            who = trl_last(&l, "leader");
            num = trl_last(&l, "term");
            trl_reason(&l, r.reason, sizeof(r.reason));
        } else if (strcmp(r.type, "RebalanceStarted") == 0) {
            num = trl_last(&l, "from_version");
            trl_reason(&l, r.reason, sizeof(r.reason));
        } else if (strcmp(r.type, "RebalanceCompleted") == 0) {
            num = trl_last(&l, "map_version");
        }
        snprintf(r.who, sizeof(r.who), "%s", who ? who : "");
        if (num != NULL && !trl_u64(num, &r.num)) {
            c->lines_bad++;
            return;
        }
        pcl_keep(c, &r);
    }
    /* Per-shard, renewal and STATS lines: not kept. */
}

/* Splits what arrived into lines. */
static void pcl_consume(pcluster *c, uint32_t i, const char *buf, size_t len)
{
    pcl_node *n = &c->nodes[i];
    for (size_t k = 0; k < len; k++) {
        char ch = buf[k];
        if (ch == '\n') {
            if (!n->overlong) {
                n->line[n->len] = '\0';
                pcl_parse_line(c, i, n->line);
            }
            n->len = 0;
            n->overlong = false;
        } else if (!n->overlong) {
            if (n->len + 1 >= sizeof(n->line)) {
                n->overlong = true;
                c->lines_overlong++;
            } else {
                n->line[n->len++] = ch;
            }
        }
    }
}

/* Reads what is available on node i's pipe (bounded); closes it at EOF. */
static void pcl_drain_fd(pcluster *c, uint32_t i)
{
    pcl_node *n = &c->nodes[i];
    static char buf[PCL_READ_CHUNK];
    for (unsigned k = 0; k < PCL_READS_PER_PUMP && n->fd >= 0; k++) {
        ssize_t r = read(n->fd, buf, sizeof(buf));
        if (r > 0) {
            pcl_consume(c, i, buf, (size_t)r);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close(n->fd); /* EOF or a hard error */
        n->fd = -1;
        n->len = 0;
    }
}

static void pcl_reap(pcluster *c)
{
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        pcl_node *n = &c->nodes[i];
        if (n->pid <= 0)
            continue;
        int st;
        if (waitpid(n->pid, &st, WNOHANG) != n->pid)
            continue;
        n->last_status = st;
        n->pid = 0;
        if (!n->expect_exit) {
            c->unexpected_exits++;
            fprintf(stderr, "aether-bench: node %s exited on its own (%s %d)\n", n->id,
                    WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            pcl_tail_log(c, i, 15);
        }
    }
}

void pcl_pump(pcluster *c, uint32_t wait_ms)
{
    struct pollfd pf[PCL_NODES_MAX];
    uint32_t idx[PCL_NODES_MAX];
    nfds_t nf = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].fd < 0)
            continue;
        pf[nf].fd = c->nodes[i].fd;
        pf[nf].events = POLLIN;
        pf[nf].revents = 0;
        idx[nf++] = i;
    }
    if (nf == 0) {
        if (wait_ms > 0)
            pcl_sleep_ms(wait_ms);
    } else if (poll(pf, nf, (int)wait_ms) > 0) {
        for (nfds_t k = 0; k < nf; k++)
            if (pf[k].revents != 0)
                pcl_drain_fd(c, idx[k]);
    }
    pcl_reap(c);
}

void pcl_idle(pcluster *c, uint32_t ms)
{
    uint64_t t0 = pcl_now_us();
    while (!pcl_interrupted()) { /* bounded: ms */
        uint64_t el = (pcl_now_us() - t0) / 1000u;
        if (el >= ms)
            return;
        pcl_pump(c, (uint32_t)(ms - el < 20 ? ms - el : 20));
    }
}

/* ---- queries -------------------------------------------------------------- */

int pcl_leader(const pcluster *c)
{
    const char *leader = NULL;
    uint64_t term = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        const pcl_node *n = &c->nodes[i];
        if (n->pid <= 0)
            continue;
        if (!n->view.leader_known || n->view.leader[0] == '\0')
            return -1;
        if (leader == NULL) {
            leader = n->view.leader;
            term = n->view.term;
        } else if (strcmp(leader, n->view.leader) != 0 || term != n->view.term) {
            return -1;
        }
    }
    if (leader == NULL)
        return -1;
    for (uint32_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].pid > 0 && strcmp(c->nodes[i].id, leader) == 0)
            return (int)i;
    return -1;
}

bool pcl_settled(const pcluster *c, uint32_t quiet_ms, char *why, size_t cap)
{
    /* The map versions the traces report, judged by the oracle
     * (actors/invariants.h); leader agreement and quiet are this harness's. */
    aether_oracle_view views[PCL_NODES_MAX];
    uint64_t version = 0, last = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        const pcl_node *n = &c->nodes[i];
        views[i] = (aether_oracle_view){ .name = n->id, .node = n->id, .running = n->pid > 0,
                                         .map_version = n->view.map_version };
        if (n->pid <= 0)
            continue;
        if (n->view.map_version == 0) {
            snprintf(why, cap, "%s has no map yet", n->id);
            return false;
        }
        if (n->view.map_us > last)
            last = n->view.map_us;
        if (n->view.leader_us > last)
            last = n->view.leader_us;
    }
    aether_err err;
    if (aether_invariants_check_one_version(views, c->n_nodes, &version, &err) != AETHER_OK) {
        snprintf(why, cap, "%s", err.msg);
        return false;
    }
    if (pcl_leader(c) < 0) {
        snprintf(why, cap, "the live nodes do not all name the same live leader and term");
        return false;
    }
    uint64_t now = pcl_now_us();
    if (now < last + (uint64_t)quiet_ms * 1000u) {
        snprintf(why, cap, "a map or leader change less than %u ms ago", quiet_ms);
        return false;
    }
    return true;
}

bool pcl_wait_settled(pcluster *c, uint32_t quiet_ms, uint32_t limit_ms, char *why, size_t cap)
{
    uint64_t t0 = pcl_now_us();
    for (;;) { /* bounded: limit_ms */
        if (pcl_settled(c, quiet_ms, why, cap))
            return true;
        if (c->unexpected_exits > 0) {
            snprintf(why, cap, "a node exited on its own");
            return false;
        }
        if (pcl_interrupted()) {
            snprintf(why, cap, "interrupted");
            return false;
        }
        if (pcl_now_us() - t0 > (uint64_t)limit_ms * 1000u)
            return false;
        pcl_pump(c, 10);
    }
}

const pcl_rec *pcl_first_event(const pcluster *c, uint64_t since_us, const char *type,
                               const char *who, int reader)
{
    const pcl_rec *best = NULL;
    for (size_t k = 0; k < c->n_recs; k++) {
        const pcl_rec *r = &c->recs[k];
        if (r->kind != PCL_EVENT || r->us < since_us || strcmp(r->type, type) != 0)
            continue;
        if (who != NULL && strcmp(r->who, who) != 0)
            continue;
        if (reader >= 0 && r->node != (uint32_t)reader)
            continue;
        if (best == NULL || r->us < best->us)
            best = r;
    }
    return best;
}

uint64_t pcl_map_reached(const pcluster *c, uint32_t i, uint64_t version, uint64_t since_us)
{
    uint64_t best = 0;
    for (size_t k = 0; k < c->n_recs; k++) {
        const pcl_rec *r = &c->recs[k];
        if (r->kind == PCL_MAP && r->node == i && r->us >= since_us && r->num >= version &&
            (best == 0 || r->us < best))
            best = r->us;
    }
    return best;
}

uint64_t pcl_leader_seen(const pcluster *c, uint32_t i, const char *not_leader, uint64_t min_term,
                         uint64_t since_us)
{
    uint64_t best = 0;
    for (size_t k = 0; k < c->n_recs; k++) {
        const pcl_rec *r = &c->recs[k];
        if (r->kind != PCL_LEADER || r->node != i || r->us < since_us || r->who[0] == '\0' ||
            r->num < min_term || (not_leader != NULL && strcmp(r->who, not_leader) == 0))
            continue;
        if (best == 0 || r->us < best)
            best = r->us;
    }
    return best;
}

/* ---- shared steps --------------------------------------------------------- */

bool pcl_bootstrap(pcluster *c, unsigned n, const char *prefix)
{
    c->boot_spawn_us = c->boot_elected_us = c->boot_all_map_us = c->boot_settled_us = 0;
    for (unsigned k = 1; k <= n; k++) {
        char id[PCL_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s%u", prefix, k);
        int i = pcl_add_node(c, id);
        if (i < 0 || !pcl_spawn(c, (uint32_t)i)) {
            fprintf(stderr, "aether-bench: cannot start node %s\n", id);
            return false;
        }
        if (c->boot_spawn_us == 0)
            c->boot_spawn_us = c->nodes[i].spawned_us;
    }
    char why[160] = "";
    bool ok = pcl_wait_settled(c, PCL_SETTLE_QUIET_MS, c->settle_limit_ms, why, sizeof(why));
    uint64_t all = 0, last = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        uint64_t t = pcl_map_reached(c, i, 1, c->boot_spawn_us);
        if (t == 0) {
            all = 0;
            break;
        }
        all = t > all ? t : all;
        const trl_view *v = &c->nodes[i].view;
        last = v->map_us > last ? v->map_us : last;
        last = v->leader_us > last ? v->leader_us : last;
    }
    c->boot_all_map_us = all;
    c->boot_settled_us = ok ? last : 0;
    const pcl_rec *el = pcl_first_event(c, c->boot_spawn_us, "LeaderElected", NULL, -1);
    c->boot_elected_us = el != NULL ? el->us : 0;
    if (!ok) {
        fprintf(stderr, "aether-bench: %u nodes did not settle within %u ms: %s\n", n,
                c->settle_limit_ms, why);
        return false;
    }
    return true;
}

bool pcl_rejoin(pcluster *c, uint32_t i)
{
    if (!pcl_spawn(c, i)) {
        fprintf(stderr, "aether-bench: cannot restart node %s\n", c->nodes[i].id);
        return false;
    }
    uint64_t t0 = c->nodes[i].spawned_us;
    while (pcl_first_event(c, t0, "NodeJoined", c->nodes[i].id, -1) == NULL) { /* bounded */
        if (pcl_interrupted() || c->unexpected_exits > 0 ||
            pcl_now_us() - t0 > c->step_limit_ms * 1000ull) {
            fprintf(stderr, "aether-bench: %s restarted but no NodeJoined for it within %u ms\n",
                    c->nodes[i].id, c->step_limit_ms);
            return false;
        }
        pcl_pump(c, 10);
    }
    char why[160] = "";
    if (!pcl_wait_settled(c, PCL_SETTLE_QUIET_MS, c->settle_limit_ms, why, sizeof(why))) {
        fprintf(stderr, "aether-bench: no settled cluster within %u ms after %s rejoined: %s\n",
                c->settle_limit_ms, c->nodes[i].id, why);
        return false;
    }
    return true;
}

void pcl_note_offline(pcluster *c, uint64_t us)
{
    c->offline_us[c->n_offline++ % PCL_OFFLINE_MAX] = us;
}

bool pcl_pace(pcluster *c, uint32_t window_ms, uint32_t max_offline)
{
    if (max_offline == 0)
        return true; /* no brake */
    uint64_t span = ((uint64_t)window_ms + PCL_PACE_MARGIN_MS) * 1000u;
    for (;;) { /* bounded: every remembered loss leaves the window within span */
        uint64_t now = pcl_now_us();
        unsigned count = c->n_offline < PCL_OFFLINE_MAX ? c->n_offline : PCL_OFFLINE_MAX, recent = 0;
        for (unsigned k = 0; k < count; k++)
            recent += now < c->offline_us[k] + span;
        if (recent < max_offline)
            return true;
        if (pcl_interrupted())
            return false;
        pcl_pump(c, 20);
    }
}

void pcl_tail_log(const pcluster *c, uint32_t i, unsigned lines)
{
    char path[PCL_PATH_MAX + PCL_ID_MAX + 8];
    snprintf(path, sizeof(path), "%s/%s.err", c->dir, c->nodes[i].id);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    /* Keep the last `lines` lines in a small ring. */
    enum { RING = 64, LINE = 512 };
    static char ring[RING][LINE];
    unsigned keep = lines < RING ? lines : RING, count = 0;
    char buf[LINE];
    while (fgets(buf, sizeof(buf), f) != NULL) /* bounded: the file */
        snprintf(ring[count++ % keep], LINE, "%s", buf);
    fclose(f);
    unsigned first = count > keep ? count - keep : 0;
    fprintf(stderr, "---- last lines of %s ----\n", path);
    for (unsigned k = first; k < count; k++)
        fputs(ring[k % keep], stderr);
}

/* ---- the KV compare-and-set floor ----------------------------------------- */

unsigned pcl_kv_floor(pcluster *c, unsigned warmup, unsigned count, double *ms_out)
{
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    natsStatus s = natsOptions_Create(&no);
    if (s == NATS_OK)
        s = natsOptions_SetURL(no, c->url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, PCL_KV_TIMEOUT_MS);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, no);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        fprintf(stderr, "aether-bench: kv floor: connect %s: %s\n", c->url, natsStatus_GetText(s));
        return 0;
    }
    aether_kv_nats_config kc = { .conn = nc, .bucket = "aether_bench_floor", .ttl_ms = 0,
                                 .timeout_ms = PCL_KV_TIMEOUT_MS, .create_if_missing = true };
    aether_kv *kv = NULL;
    aether_err err = { 0 };
    unsigned done = 0;
    aether_status st = aether_kv_nats_create(&kc, &kv, &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "aether-bench: kv floor: bucket: %s: %s\n", aether_status_str(st), err.msg);
        goto out;
    }
    static const char value[] = "{\"bench\":\"cas\"}";
    uint64_t rev = 0;
    st = aether_kv_create(kv, "cas", value, sizeof(value) - 1, &rev, &err);
    if (st != AETHER_OK) {
        fprintf(stderr, "aether-bench: kv floor: create: %s: %s\n", aether_status_str(st), err.msg);
        goto out;
    }
    for (unsigned k = 0; k < warmup + count && !pcl_interrupted(); k++) {
        uint64_t t0 = pcl_now_us();
        uint64_t next = 0;
        st = aether_kv_update(kv, "cas", value, sizeof(value) - 1, rev, &next, &err);
        uint64_t t1 = pcl_now_us();
        if (st != AETHER_OK) {
            fprintf(stderr, "aether-bench: kv floor: update: %s: %s\n", aether_status_str(st), err.msg);
            break;
        }
        AETHER_ASSERT(next > rev);
        rev = next;
        if (k >= warmup)
            ms_out[done++] = (double)(t1 - t0) / 1000.0;
        if ((k & 63u) == 0)
            pcl_pump(c, 0); /* keep the nodes' pipes drained */
    }
out:
    aether_kv_destroy(kv);
    natsConnection_Destroy(nc);
    return done;
}

/* ---- handler run times (issue 14: no handler above 1 ms) ----------------- */

#define PCL_SCRAPE_MAX (8u << 20)  /* a longer /metrics answer is refused */
#define PCL_SCRAPE_TIMEOUT_S 2
#define PCL_HANDLER_METRIC "aether_actor_handler_seconds"

/* GET /metrics from 127.0.0.1:port over HTTP/1.0; *body_out malloc'd, NUL
 * terminated (the headers skipped). Bounded by PCL_SCRAPE_TIMEOUT_S per
 * read and PCL_SCRAPE_MAX bytes. */
static bool pcl_scrape(int port, char **body_out)
{
    *body_out = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct timeval tv = { .tv_sec = PCL_SCRAPE_TIMEOUT_S };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
        close(fd);
        return false;
    }
    size_t cap = 1u << 16, len = 0;
    char *buf = malloc(cap);
    bool ok = buf != NULL;
    while (ok) {
        if (len + 1 == cap) {
            char *nb = cap < PCL_SCRAPE_MAX ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) {
                ok = false;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r == 0)
            break;
        if (r < 0) {
            ok = errno == EINTR;
            continue;
        }
        len += (size_t)r;
    }
    close(fd);
    if (!ok) {
        free(buf);
        return false;
    }
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL || strncmp(buf, "HTTP/1.", 7) != 0 || strstr(buf, " 200") == NULL) {
        free(buf);
        return false;
    }
    memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
    *body_out = buf;
    return true;
}

/* Folds one node's exposition into *st: every series of the handler
 * histogram (its _bucket lines, cumulative, then its _count line). */
static void pcl_fold_handler(const char *node, const char *text, pcl_handler_stats *st)
{
    static const char bucket[] = PCL_HANDLER_METRIC "_bucket{";
    static const char count[] = PCL_HANDLER_METRIC "_count";
    uint64_t at_1ms = 0;
    double le_of[AETHER_HISTOGRAM_BUCKETS_MAX + 1];
    uint64_t cum_of[AETHER_HISTOGRAM_BUCKETS_MAX + 1];
    unsigned nb = 0;
    for (const char *l = text; l != NULL && *l != '\0';) { /* bounded: the scrape's lines */
        const char *eol = strchr(l, '\n');
        if (strncmp(l, bucket, sizeof(bucket) - 1) == 0) {
            const char *le = strstr(l, "le=\"");
            const char *end = strchr(l, '}');
            if (le != NULL && end != NULL && le < end && nb <= AETHER_HISTOGRAM_BUCKETS_MAX) {
                double v = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
                uint64_t cum = strtoull(end + 1, NULL, 10);
                le_of[nb] = v;
                cum_of[nb++] = cum;
                if (fabs(v - 0.001) < 1e-9) /* the 1 ms bound (engine/actor.c's buckets) */
                    at_1ms = cum;
            }
        } else if (strncmp(l, count, sizeof(count) - 1) == 0) {
            const char *sp = strchr(l, ' ');
            uint64_t n = sp != NULL ? strtoull(sp + 1, NULL, 10) : 0;
            st->runs += n;
            st->over_1ms += n >= at_1ms ? n - at_1ms : 0;
            double all_under = INFINITY;
            for (unsigned i = 0; i < nb; i++)
                if (cum_of[i] >= n) {
                    all_under = le_of[i];
                    break;
                }
            const char *ap = strstr(l, "actor=\"");
            const char *rbr = strchr(l, '}');
            if (ap != NULL && rbr != NULL && ap < rbr) {
                ap += strlen("actor=\"");
                const char *aq = strchr(ap, '"');
                int alen = aq != NULL && aq < rbr ? (int)(aq - ap) : 0;
                unsigned k = 0;
                while (k < st->n_actors && (strncmp(st->per_actor[k].actor, ap, (size_t)alen) != 0 ||
                                            st->per_actor[k].actor[alen] != '\0'))
                    k++;
                if (k == st->n_actors && k < PCL_HANDLER_ACTORS_MAX) {
                    snprintf(st->per_actor[k].actor, sizeof(st->per_actor[k].actor), "%.*s", alen, ap);
                    st->n_actors++;
                }
                if (k < st->n_actors) {
                    st->per_actor[k].runs += n;
                    st->per_actor[k].over_1ms += n >= at_1ms ? n - at_1ms : 0;
                    if (n > 0 && all_under * 1000.0 > st->per_actor[k].worst_le_ms)
                        st->per_actor[k].worst_le_ms = all_under * 1000.0;
                }
            }
            if (n > 0 && (st->worst[0] == '\0' || all_under * 1000.0 > st->worst_le_ms)) {
                st->worst_le_ms = all_under * 1000.0;
                const char *lb = strchr(l, '{'), *rb = strchr(l, '}');
                int lw = lb != NULL && rb != NULL && rb > lb ? (int)(rb - lb - 1) : 0;
                snprintf(st->worst, sizeof(st->worst), "%s {%.*s}", node, lw, lb != NULL ? lb + 1 : "");
            }
            nb = 0;
            at_1ms = 0;
        }
        l = eol != NULL ? eol + 1 : NULL;
    }
}

bool pcl_handler_times(pcluster *c, pcl_handler_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        pcl_node *n = &c->nodes[i];
        if (n->pid <= 0 || n->metrics_port <= 0)
            continue;
        char *body = NULL;
        if (!pcl_scrape(n->metrics_port, &body)) {
            out->failed++;
            continue;
        }
        pcl_fold_handler(n->id, body, out);
        free(body);
        out->nodes++;
    }
    return out->nodes > 0;
}

bool pcl_report_handlers(const struct bench_opts *o, const char *bench, pcluster *c)
{
    pcl_handler_stats h;
    if (!pcl_handler_times(c, &h)) {
        bench_report_note(o, "handler run times: no node's metrics could be scraped (%u failed)", h.failed);
        return false;
    }
    double over = (double)h.over_1ms;
    bench_stats st = bench_stats_of(&over, 1);
    bench_report_row(o, bench, "handler runs above 1 ms (aether_actor_handler_seconds, live nodes)",
                     "count", &st, "runs", NULL, 0);
    bench_report_note(o, "handler run times since each live process started (%u nodes scraped, %u not): "
                         "%llu runs, %llu above 1 ms; slowest series: every run <= %g ms (%s)",
                      h.nodes, h.failed, (unsigned long long)h.runs, (unsigned long long)h.over_1ms,
                      h.worst_le_ms, h.worst);
    char line[1024];
    size_t at = 0;
    for (unsigned k = 0; k < h.n_actors && at < sizeof(line); k++) {
        int w = snprintf(line + at, sizeof(line) - at, "%s%s %llu runs, %llu > 1 ms, worst <= %g ms",
                         k ? "; " : "", h.per_actor[k].actor, (unsigned long long)h.per_actor[k].runs,
                         (unsigned long long)h.per_actor[k].over_1ms, h.per_actor[k].worst_le_ms);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    if (h.n_actors > 0)
        bench_report_note(o, "handler run times per actor (every node; worst: the slowest node's "
                             "bucket bound): %s", line);
    return h.over_1ms == 0;
}

/* ---- health: what must never happen during a run (issue 16) ------------- */

#define PCL_LOG_LINE_MAX 1024u

/* Sum of every series of metric `name` (its lines "name value" and
 * "name{...} value") in one exposition. */
static uint64_t pcl_metric_sum(const char *text, const char *name)
{
    size_t nl = strlen(name);
    uint64_t sum = 0;
    for (const char *l = text; l != NULL && *l != '\0';) { /* bounded: the scrape's lines */
        const char *eol = strchr(l, '\n');
        if (strncmp(l, name, nl) == 0 && (l[nl] == ' ' || l[nl] == '{')) {
            const char *sp = l[nl] == ' ' ? l + nl : strchr(l + nl, '}');
            if (sp != NULL && (eol == NULL || sp < eol)) {
                sp = sp[0] == '}' ? sp + 1 : sp;
                double v = strtod(sp, NULL);
                sum += v > 0 ? (uint64_t)(v + 0.5) : 0;
            }
        }
        l = eol != NULL ? eol + 1 : NULL;
    }
    return sum;
}

/* Lines of `path` holding each needle: counts[k] += lines with needles[k]. */
static void pcl_log_count(const char *path, const char *const *needles, uint64_t *counts, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char buf[PCL_LOG_LINE_MAX];
    while (fgets(buf, sizeof(buf), f) != NULL) /* bounded: the file */
        for (size_t k = 0; k < n; k++)
            if (strstr(buf, needles[k]) != NULL)
                counts[k]++;
    fclose(f);
}

void pcl_health_of(pcluster *c, pcl_health *h)
{
    memset(h, 0, sizeof(*h));
    for (size_t k = 0; k < c->n_recs; k++) {
        const pcl_rec *r = &c->recs[k];
        /* Every node prints the LeadershipLost it applies: count the
         * leader's own line only (printed by the slot whose id emitted it). */
        if (r->kind != PCL_EVENT || strcmp(r->type, "LeadershipLost") != 0 ||
            strcmp(r->emitter, r->who) != 0 || strcmp(c->nodes[r->node].id, r->emitter) != 0 ||
            strstr(r->reason, "draining") != NULL)
            continue;
        if (h->leader_lost++ == 0)
            snprintf(h->first_lost, sizeof(h->first_lost), "%s term %llu: %s", r->who,
                     (unsigned long long)r->num, r->reason);
    }
    static const char *const needles[] = { "connection to NATS lost", "mailbox full", "local deliveries of",
                                           "fenced, serving nothing" };
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        char path[PCL_PATH_MAX + PCL_ID_MAX + 8];
        snprintf(path, sizeof(path), "%s/%s.err", c->dir, c->nodes[i].id);
        uint64_t n[4] = { 0 };
        pcl_log_count(path, needles, n, 4);
        h->log_reconnects += n[0];
        h->log_mailbox_full += n[1];
        h->log_delivery_failed += n[2];
        h->log_fenced += n[3];
        pcl_node *nd = &c->nodes[i];
        if (nd->pid <= 0 || nd->metrics_port <= 0)
            continue;
        char *body = NULL;
        if (!pcl_scrape(nd->metrics_port, &body)) {
            h->scrape_failed++;
            continue;
        }
        h->scraped++;
        h->m_mailbox_full += pcl_metric_sum(body, "aether_mailbox_full_total");
        h->m_bus_failed += pcl_metric_sum(body, "aether_bus_failed_deliveries_total");
        h->m_lease_failures += pcl_metric_sum(body, "aether_lease_failures_total");
        h->m_fenced += pcl_metric_sum(body, "aether_fenced");
        h->m_multi_owner += pcl_metric_sum(body, "aether_shards_multi_owner");
        h->m_owned += pcl_metric_sum(body, "aether_shards_owned");
        free(body);
    }
    static const char *const slow[] = { "Slow Consumer" };
    char path[PCL_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/server.log", c->dir);
    pcl_log_count(path, slow, &h->server_slow_consumers, 1);
}

static void pcl_health_row(const struct bench_opts *o, const char *bench, const char *metric, uint64_t v)
{
    double d = (double)v;
    bench_stats st = bench_stats_of(&d, 1);
    bench_report_row(o, bench, metric, "count", &st, "target 0", NULL, 0);
}

bool pcl_report_health(const struct bench_opts *o, const char *bench, pcluster *c)
{
    pcl_health h;
    pcl_health_of(c, &h);
    pcl_health_row(o, bench, "live leader lost its leadership (trace LeadershipLost, not draining)",
                   h.leader_lost);
    pcl_health_row(o, bench, "NATS reconnects (node logs)", h.log_reconnects);
    pcl_health_row(o, bench, "mailbox overflows (node logs + aether_mailbox_full_total, live)",
                   h.log_mailbox_full + h.m_mailbox_full);
    pcl_health_row(o, bench, "failed local deliveries (node logs + aether_bus_failed_deliveries_total)",
                   h.log_delivery_failed + h.m_bus_failed);
    pcl_health_row(o, bench, "slow consumers (nats-server log)", h.server_slow_consumers);
    bench_report_note(o,
                      "health over the whole run: leaderships lost by a live leader %llu%s%s; node logs: "
                      "reconnects %llu, 'mailbox full' %llu, failed local deliveries %llu, fenced %llu "
                      "(followers fence when a killed leader is not replaced within their window); live "
                      "nodes' /metrics (%u scraped, %u not): mailbox_full_total %llu, "
                      "bus_failed_deliveries_total %llu, lease_failures_total %llu, fenced now %llu, "
                      "shards owned %llu (shard_count %u), multi-owner %llu; nats-server slow consumers %llu",
                      (unsigned long long)h.leader_lost, h.leader_lost ? ", first: " : "", h.first_lost,
                      (unsigned long long)h.log_reconnects, (unsigned long long)h.log_mailbox_full,
                      (unsigned long long)h.log_delivery_failed, (unsigned long long)h.log_fenced, h.scraped,
                      h.scrape_failed, (unsigned long long)h.m_mailbox_full, (unsigned long long)h.m_bus_failed,
                      (unsigned long long)h.m_lease_failures, (unsigned long long)h.m_fenced,
                      (unsigned long long)h.m_owned, c->shards, (unsigned long long)h.m_multi_owner,
                      (unsigned long long)h.server_slow_consumers);
    bool clean = h.leader_lost == 0 && h.log_reconnects == 0 && h.log_mailbox_full + h.m_mailbox_full == 0 &&
                 h.log_delivery_failed + h.m_bus_failed == 0 && h.server_slow_consumers == 0;
    bench_report_note(o, "run clean (no live leader lost, no reconnect, no mailbox overflow, no lost delivery, "
                         "no slow consumer): %s", clean ? "yes" : "NO");
    return clean;
}

bool pcl_report_bootstrap(const struct bench_opts *o, const char *bench, const pcluster *c, double target_ms)
{
    double v[1];
    bench_latency l;
    bool met = false;
    if (c->boot_all_map_us != 0) {
        v[0] = (double)(c->boot_all_map_us - c->boot_spawn_us) / 1000.0;
        l = bench_latency_of(v, 1, 0, target_ms);
    } else {
        l = bench_latency_of(v, 0, 1, target_ms);
    }
    met = bench_report_latency_row(o, bench, "bootstrap: first process start -> a map on every node", &l,
                                   target_ms, NULL, NULL);
    if (c->boot_settled_us != 0) {
        v[0] = (double)(c->boot_settled_us - c->boot_spawn_us) / 1000.0;
        l = bench_latency_of(v, 1, 0, -1);
    } else {
        l = bench_latency_of(v, 0, 1, -1);
    }
    bench_report_latency_row(o, bench, "bootstrap: first process start -> last map/leader change (settled)",
                             &l, -1, NULL, NULL);
    if (c->boot_all_map_us != 0 && c->boot_elected_us != 0 && c->boot_all_map_us >= c->boot_elected_us) {
        v[0] = (double)(c->boot_all_map_us - c->boot_elected_us) / 1000.0;
        l = bench_latency_of(v, 1, 0, -1);
    } else {
        l = bench_latency_of(v, 0, 1, -1);
    }
    bench_report_latency_row(o, bench, "bootstrap: first LeaderElected -> a map on every node", &l, -1, NULL,
                             NULL);
    return met;
}
