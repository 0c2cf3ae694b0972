/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.c: aetherctl's shared live-command machinery (tools layer): the
 * common options, settings resolution, the NATS connection, reading the
 * cluster's buckets into a ctl_view, and the output helpers (ctl.h).
 * Single-threaded; g_ctl_stop is set from signal handlers.
 */
#include "ctl.h"

/* ---- live commands: options, settings, connection ------------------------- */

/* Variables with our prefix that are not settings but that other tools and
 * the test scripts use: not a typo, so not refused. */
static const char *const CTL_ENV_IGNORED[] = {
    "AETHER_NATS_SERVER", "AETHER_KEEP_LOGS", "AETHER_SIM_SEED", "AETHER_SIM_SEEDS",
    "AETHER_SIM_TRACE",   "AETHER_CONFIG",    NULL,
};

/* Set by SIGINT/SIGTERM; polled by every wait (connect, retries, watch). */
volatile sig_atomic_t g_ctl_stop;

void ctl_on_signal(int sig)
{
    (void)sig;
    g_ctl_stop = 1;
}

static void ctl_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ctl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

uint64_t ctl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t ctl_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ctl_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_ctl_stop) {
    }
}

/* The options every live command takes (ctl_parser). */
static const struct option CTL_COMMON_OPTIONS[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"nats", required_argument, NULL, OPT_SETTING},
    {"cluster", required_argument, NULL, OPT_SETTING},
    {"nats-user", required_argument, NULL, OPT_SETTING},
    {"nats-password", required_argument, NULL, OPT_SETTING},
    {"nats-token", required_argument, NULL, OPT_SETTING},
    {"nats-creds", required_argument, NULL, OPT_SETTING},
    {"nats-tls-ca", required_argument, NULL, OPT_SETTING},
    {"nats-tls-cert", required_argument, NULL, OPT_SETTING},
    {"nats-tls-key", required_argument, NULL, OPT_SETTING},
    {"nats-tls-hostname", required_argument, NULL, OPT_SETTING},
    {"cluster-secret-file", required_argument, NULL, OPT_SETTING},
    {"log-level", required_argument, NULL, OPT_SETTING},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
#define CTL_COMMON_OPTION_COUNT (sizeof(CTL_COMMON_OPTIONS) / sizeof(CTL_COMMON_OPTIONS[0]) - 1u)

/* Handles one of the common options. Returns -1 if c is not one of them, 0 if
 * it was taken, or an exit status (usage error). */
static int ctl_common_opt(const command *self, ctl_opts *o, int c, const struct option *opts,
                          int longindex)
{
    uint64_t v = 0;
    switch (c) {
    case OPT_CONFIG:
        o->config = optarg;
        o->any_connection = true;
        return 0;
    case OPT_SETTING:
        if (o->n_flags == CTL_FLAGS_MAX)
            return ctl_usage_error(self, "too many connection options%s", "");
        o->flags[o->n_flags++] = (ctl_flag){opts[longindex].name, optarg};
        if (strcmp(opts[longindex].name, "log-level") == 0)
            o->log_level_set = true;
        o->any_connection = true;
        return 0;
    case OPT_TIMEOUT:
        if (ctl_parse_u64_in(optarg, 1, CTL_TIMEOUT_MS_MAX, &v) != 0)
            return ctl_usage_error(self, "--timeout must be an integer in 1..3600000 (ms), got '%s'",
                               optarg);
        o->timeout_ms = v;
        o->any_connection = true;
        return 0;
    case 'j':
        o->json = true;
        return 0;
    default:
        return -1;
    }
}

void ctl_parser_init(ctl_parser *p, const command *self, int argc, char **argv, const char *own_short,
                     const struct option *own_long, ctl_opts *o)
{
    memset(p, 0, sizeof(*p));
    p->self = self;
    p->argc = argc;
    p->argv = argv;
    p->o = o;
    int n = snprintf(p->shortopts, sizeof(p->shortopts), ":%sjh", own_short);
    AETHER_ASSERT(n > 0 && (size_t)n < sizeof(p->shortopts));
    size_t k = 0;
    for (; own_long != NULL && own_long[k].name != NULL; k++) {
        AETHER_ASSERT(k < CTL_LONGOPTS_MAX - CTL_COMMON_OPTION_COUNT - 1u);
        p->longopts[k] = own_long[k];
    }
    for (size_t i = 0; i <= CTL_COMMON_OPTION_COUNT; i++) /* with the {NULL} row */
        p->longopts[k + i] = CTL_COMMON_OPTIONS[i];
    optind = 1;
    opterr = 0;
}

int ctl_parser_next(ctl_parser *p)
{
    for (;;) {
        int li = 0;
        int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts, &li);
        if (c == -1)
            return CTL_OPTS_DONE;
        int rc = ctl_common_opt(p->self, p->o, c, p->longopts, li);
        if (rc == 0)
            continue;
        if (rc > 0) {
            p->exit_status = rc;
            return CTL_OPTS_EXIT;
        }
        switch (c) {
        case 'h':
            ctl_print_command_help(stdout, p->self);
            p->exit_status = 0;
            return CTL_OPTS_EXIT;
        case ':':
            p->exit_status = ctl_usage_error(p->self, "option %s needs a value", p->argv[optind - 1]);
            return CTL_OPTS_EXIT;
        case '?':
            p->exit_status = ctl_usage_error(p->self, "unknown option '%s'", p->argv[optind - 1]);
            return CTL_OPTS_EXIT;
        default:
            AETHER_ASSERT(c > 0);
            return c; /* one of the command's own */
        }
    }
}

bool ctl_parser_end(ctl_parser *p, int c, const char *operand)
{
    if (c == CTL_OPTS_EXIT)
        return false;
    AETHER_ASSERT(c == CTL_OPTS_DONE);
    int n = p->argc - optind;
    if (operand == NULL && n > 0)
        p->exit_status = ctl_usage_error(p->self, "unexpected argument '%s'", p->argv[optind]);
    else if (operand != NULL && n != 1)
        p->exit_status = ctl_usage_error(p->self, n == 0 ? "missing %s" : "expected one %s", operand);
    else
        return true;
    return false;
}

/* The cluster key (ctl.h); set by ctl_connect, freed by ctl_close. */
aether_auth *g_ctl_auth;
static bool g_auth_warned; /* the first refusal is said on stderr, the rest counted */
static uint64_t g_auth_refused;

/* True if msg carries a valid tag for its subject and bytes, made within
 * AETHER_AUTH_SKEW_MS of now_ms (0: no freshness check); true without a
 * secret. A refusal is counted and the first one said. */
bool ctl_authentic(natsMsg *msg, uint64_t now_ms)
{
    if (g_ctl_auth == NULL)
        return true;
    aether_auth_stamp st;
    aether_err why = {0};
    if (aether_auth_open_msg(g_ctl_auth, msg, now_ms, &st, &why) == AETHER_OK)
        return true;
    if (!__atomic_exchange_n(&g_auth_warned, true, __ATOMIC_RELAXED))
        fprintf(stderr, "aetherctl: unauthenticated message on %s ignored: %s\n", aether_auth_msg_subject(msg),
                why.msg);
    __atomic_add_fetch(&g_auth_refused, 1, __ATOMIC_RELAXED);
    return false;
}

void ctl_close(ctl_conn *cc)
{
    aether_auth_destroy(g_ctl_auth); /* nothing reads it after the close */
    g_ctl_auth = NULL;
    aether_kv_destroy(cc->state_kv);
    cc->state_kv = NULL;
    if (cc->js != NULL)
        jsCtx_Destroy(cc->js);
    cc->js = NULL;
    if (cc->nc != NULL)
        natsConnection_Destroy(cc->nc);
    cc->nc = NULL;
}

uint64_t ctl_remaining_ms(const ctl_conn *cc)
{
    uint64_t now = ctl_mono_ms();
    return now >= cc->deadline_ms ? 0 : cc->deadline_ms - now;
}

/* Prints "no cluster answers" with the cluster and the servers; returns 3. */
/* True when the server refused something this connection sent (a publish or
 * a subscription outside the user's NATS permissions: the server answers
 * with an asynchronous -ERR, so the request itself only times out); the
 * server's sentence goes into text. nats.c keeps the last such error on the
 * connection. */
bool ctl_refused(const ctl_conn *cc, char *text, size_t cap)
{
    const char *last = NULL;
    if (cc->nc == NULL || natsConnection_GetLastError(cc->nc, &last) != NATS_NOT_PERMITTED)
        return false;
    snprintf(text, cap, "%s", last != NULL && last[0] != '\0' ? last : "permissions violation");
    return true;
}

/* Says the server refused (ctl_refused) and returns EXIT_FAILED: a refusal
 * never heals by waiting, and "no cluster answers" would send the operator
 * looking for a dead cluster. */
int ctl_say_refused(const ctl_conn *cc, const char *what, const char *text)
{
    const char *user = cc->s.nats.user[0] != '\0' ? cc->s.nats.user : "(token or credentials file)";
    if (strstr(what, text) != NULL) /* what already quotes the server (a bucket error) */
        fprintf(stderr,
                "aetherctl: %s: user '%s' has no permission for it (see docs/runbook.md, \"NATS "
                "permissions\")\n",
                what, user);
    else
        fprintf(stderr,
                "aetherctl: %s: refused by the NATS server (%s): user '%s' has no permission for it "
                "(see docs/runbook.md, \"NATS permissions\")\n",
                what, text, user);
    return EXIT_FAILED;
}

int ctl_no_cluster(const ctl_conn *cc, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char refused[300];
    if (ctl_refused(cc, refused, sizeof(refused)))
        return ctl_say_refused(cc, why, refused);
    fprintf(stderr, "aetherctl: no cluster answers (cluster '%s', servers %s): %s\n", cc->cluster,
            cc->servers, why);
    return EXIT_NO_CLUSTER;
}

/* defaults < --config < AETHER_* < flags, then the cross-checks. */
static int ctl_settings(const ctl_opts *o, aether_settings *s)
{
    aether_err err = {0};
    aether_settings_defaults(s);
    /* As aether-node: --config, else $AETHER_CONFIG. */
    const char *config = o->config;
    const char *config_src = "--config";
    if (config == NULL && getenv("AETHER_CONFIG") != NULL && getenv("AETHER_CONFIG")[0] != '\0') {
        config = getenv("AETHER_CONFIG");
        config_src = "AETHER_CONFIG";
    }
    if (config != NULL && aether_settings_load_file(s, config, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s %s: %s\n", config_src, config, err.msg);
        return EXIT_USAGE;
    }
    if (aether_settings_load_env(s, environ, CTL_ENV_IGNORED, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    for (unsigned i = 0; i < o->n_flags; i++) {
        char keybuf[96], source[96];
        const char *key = aether_settings_flag_key(o->flags[i].name, keybuf, sizeof(keybuf));
        if (key == NULL) {
            fprintf(stderr, "aetherctl: --%s is not a setting this build knows\n",
                    o->flags[i].name);
            return EXIT_USAGE;
        }
        snprintf(source, sizeof(source), "flag --%s", o->flags[i].name);
        if (aether_settings_set(s, key, o->flags[i].value, source, &err) != AETHER_OK) {
            fprintf(stderr, "aetherctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    if (s->nats.urls[0] == '\0')
        snprintf(s->nats.urls, sizeof(s->nats.urls), "%s", CTL_URL_DEFAULT);
    if (aether_settings_check(s, false, &err) != AETHER_OK) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    /* A CLI keeps stderr for its own messages: the library says only
     * warnings unless a log level was asked for explicitly. */
    aether_log_level level = AETHER_LOG_WARN;
    if ((o->log_level_set || getenv("AETHER_LOG_LEVEL") != NULL) &&
        !aether_log_level_parse(s->log_level, &level))
        level = AETHER_LOG_WARN;
    aether_log_set_level(level);
    return 0;
}

/* Resolves the settings and connects. On 0 the caller must ctl_close. */
int ctl_connect(const ctl_opts *o, uint64_t default_timeout_ms, ctl_conn *cc)
{
    memset(cc, 0, sizeof(*cc));
    aether_log_set_level(AETHER_LOG_WARN); /* before the sources log what they set */
    int rc = ctl_settings(o, &cc->s);
    if (rc != 0)
        return rc;
    cc->cluster = cc->s.node.cluster;
    cc->servers = cc->s.nats.urls;
    cc->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : default_timeout_ms;
    cc->deadline_ms = ctl_mono_ms() + cc->timeout_ms;
    if (cc->s.nats.connect_timeout_ms > cc->timeout_ms)
        cc->s.nats.connect_timeout_ms = (uint32_t)cc->timeout_ms;
    if (cc->s.nats.request_timeout_ms > cc->timeout_ms)
        cc->s.nats.request_timeout_ms = (uint32_t)cc->timeout_ms;
    int n1 = snprintf(cc->state_bucket, sizeof(cc->state_bucket), "aether_%s_state", cc->cluster);
    int n2 = snprintf(cc->lease_bucket, sizeof(cc->lease_bucket), "aether_%s_lease", cc->cluster);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(cc->state_bucket) ||
        (size_t)n2 >= sizeof(cc->lease_bucket)) {
        fprintf(stderr, "aetherctl: cluster name '%s' is too long for a bucket name\n",
                cc->cluster);
        return EXIT_USAGE;
    }
    ctl_signals_install();
    aether_err err = {0};
    if (cc->s.cluster_secret_file[0] != '\0') {
        if (aether_auth_load_file(cc->s.cluster_secret_file, &g_ctl_auth, &err) != AETHER_OK) {
            fprintf(stderr, "aetherctl: %s\n", err.msg);
            return EXIT_USAGE;
        }
        aether_node_id self;
        (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
        aether_auth_sealer_init(&cc->sealer, g_ctl_auth, &self, (uint64_t)ctl_wall_ns());
    }
    aether_status st = aether_nats_connect(&cc->s.nats, CTL_SELF_ID, &g_ctl_stop, &cc->nc, &err);
    if (st == AETHER_EINVAL) {
        fprintf(stderr, "aetherctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (st == AETHER_ECLOSED || g_ctl_stop) {
        fprintf(stderr, "aetherctl: interrupted while connecting to %s\n", cc->servers);
        ctl_close(cc);
        return EXIT_FAILED;
    }
    if (st != AETHER_OK)
        return ctl_no_cluster(cc, "%s", err.msg);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = (int64_t)cc->s.nats.request_timeout_ms;
    natsStatus ns = natsConnection_JetStream(&cc->js, cc->nc, &jo);
    if (ns != NATS_OK) {
        ctl_close(cc);
        return ctl_no_cluster(cc, "JetStream context: %s", natsStatus_GetText(ns));
    }
    return 0;
}

/* Binds the state bucket read-only: its absence means no node of this
 * cluster ever ran on these servers. */
int ctl_bind_state(ctl_conn *cc)
{
    if (cc->state_kv != NULL)
        return 0;
    aether_kv_nats_config kc = {
        .conn = cc->nc,
        .bucket = cc->state_bucket,
        .ttl_ms = 0,
        .replicas = 0,
        .timeout_ms = cc->s.nats.request_timeout_ms,
        .create_if_missing = false,
        .sealer = g_ctl_auth != NULL ? &cc->sealer : NULL,
    };
    aether_err err = {0};
    aether_status st = aether_kv_nats_create(&kc, &cc->state_kv, &err);
    if (st == AETHER_ENOTFOUND)
        return ctl_no_cluster(cc,
                              "KV bucket '%s' does not exist (no aether-node has run with "
                              "--cluster %s on these servers)",
                              cc->state_bucket, cc->cluster);
    if (st != AETHER_OK)
        return ctl_no_cluster(cc, "%s", err.msg);
    return 0;
}

/* ---- reading the cluster --------------------------------------------------- */

void ctl_view_fini(ctl_view *v)
{
    aether_shardmap_destroy(v->map);
    v->map = NULL;
    if (v->have_topo)
        aether_topology_fini(&v->topo);
    v->have_topo = false;
}

/* Reads the lease (see the file comment for why nats.c directly). */
int ctl_read_lease(ctl_conn *cc, ctl_view *v)
{
    kvStore *kv = NULL;
    natsStatus s = js_KeyValue(&kv, cc->js, cc->lease_bucket);
    if (s == NATS_NOT_FOUND)
        return 0; /* no lease bucket: reported as "no leader" */
    if (s != NATS_OK)
        return ctl_no_cluster(cc, "bucket '%s': %s", cc->lease_bucket, natsStatus_GetText(s));
    v->lease_bucket = true;
    kvStatus *ks = NULL;
    if (kvStore_Status(&ks, kv) == NATS_OK) {
        int64_t ttl_ns = kvStatus_TTL(ks);
        v->lease_ttl_ms = ttl_ns > 0 ? (uint64_t)ttl_ns / 1000000u : 0;
        kvStatus_Destroy(ks);
    }
    kvEntry *e = NULL;
    s = kvStore_Get(&e, kv, AETHER_LEASE_KEY_DEFAULT);
    v->read_at_ns = ctl_wall_ns();
    if (s == NATS_OK && g_ctl_auth != NULL) {
        /* A kvEntry shows no headers: the same revision again, by number. */
        char stream[CTL_BUCKET_MAX + 8];
        snprintf(stream, sizeof(stream), "KV_%s", cc->lease_bucket);
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        bool ok = js_GetMsg(&m, cc->js, stream, kvEntry_Revision(e), NULL, &jerr) == NATS_OK &&
                  ctl_authentic(m, (uint64_t)natsMsg_GetTime(m) / 1000000u);
        natsMsg_Destroy(m);
        if (!ok) {
            v->have_lease = true;
            v->lease_malformed = true;
            v->lease_revision = kvEntry_Revision(e);
            v->lease_written_ns = kvEntry_Created(e);
            snprintf(v->lease_err, sizeof(v->lease_err), "unauthenticated (no valid %s tag for this "
                     "cluster's secret): not believed", AETHER_AUTH_HEADER);
            kvEntry_Destroy(e);
            kvStore_Destroy(kv);
            return 0;
        }
    }
    if (s == NATS_OK) {
        aether_err err = {0};
        v->have_lease = true;
        v->lease_revision = kvEntry_Revision(e);
        v->lease_written_ns = kvEntry_Created(e);
        if (aether_lease_value_decode(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &v->lease,
                                      &err) != AETHER_OK) {
            v->lease_malformed = true;
            snprintf(v->lease_err, sizeof(v->lease_err), "%s", err.msg);
        }
        kvEntry_Destroy(e);
    } else if (s != NATS_NOT_FOUND) {
        kvStore_Destroy(kv);
        return ctl_no_cluster(cc, "bucket '%s' key '%s': %s", cc->lease_bucket,
                              AETHER_LEASE_KEY_DEFAULT, natsStatus_GetText(s));
    }
    kvStore_Destroy(kv);
    return 0;
}

/* One key of the state bucket: 0 (found or absent: *found says), or 3. */
int ctl_state_get(ctl_conn *cc, const char *key, aether_kv_entry *e, bool *found)
{
    aether_err err = {0};
    aether_status st = aether_kv_get(cc->state_kv, key, e, &err);
    *found = st == AETHER_OK;
    if (st == AETHER_OK || st == AETHER_ENOTFOUND)
        return 0;
    return ctl_no_cluster(cc, "reading '%s' from bucket '%s': %s", key, cc->state_bucket,
                          err.msg);
}

/* Reads the map, the topology and the recorded term; the lease too if asked.
 * Returns 0, 1 (a stored value does not decode, or is stamped with another
 * generation than the bucket's) or 3. A missing map is not
 * an error here (v->map NULL): each command decides. */
int ctl_read(ctl_conn *cc, ctl_view *v, bool with_lease)
{
    memset(v, 0, sizeof(*v));
    int rc = ctl_bind_state(cc);
    if (rc != 0)
        return rc;
    if (with_lease && (rc = ctl_read_lease(cc, v)) != 0)
        return rc;
    aether_kv_entry e;
    bool found = false;
    aether_err err = {0};
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_MAP, &e, &found)) != 0)
        return rc;
    uint64_t map_gen = 0, topo_gen = 0; /* their "gen" (0: not said) */
    if (found) {
        v->map_revision = e.revision;
        aether_status st = aether_shardmap_codec_decode((const char *)e.value, e.value_len,
                                                           &v->map, &map_gen, &err);
        aether_kv_entry_fini(&e);
        if (st != AETHER_OK) {
            fprintf(stderr, "aetherctl: the stored map (bucket '%s' key 'map') is unreadable: %s\n",
                    cc->state_bucket, err.msg);
            return EXIT_FAILED;
        }
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_TOPOLOGY, &e, &found)) != 0)
        return rc;
    if (found) {
        aether_node_id self;
        (void)aether_node_id_from_cstr(CTL_SELF_ID, &self, NULL);
        if (aether_topology_init(&v->topo, &self) != AETHER_OK) {
            aether_kv_entry_fini(&e);
            fprintf(stderr, "aetherctl: out of memory\n");
            return EXIT_FAILED;
        }
        v->have_topo = true;
        v->topo_revision = e.revision;
        aether_status st = aether_topology_json_decode_gen((const char *)e.value, e.value_len,
                                                           &v->topo, &topo_gen, &err);
        aether_kv_entry_fini(&e);
        if (st != AETHER_OK) {
            fprintf(stderr,
                    "aetherctl: the stored topology (bucket '%s' key 'topology') is unreadable: "
                    "%s\n",
                    cc->state_bucket, err.msg);
            return EXIT_FAILED;
        }
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_TERM, &e, &found)) != 0)
        return rc;
    if (found) {
        uint64_t t = 0;
        if (ctl_parse_u64_in((const char *)e.value, 0, INT64_MAX, &t) == 0) {
            v->have_term = true;
            v->recorded_term = t;
        }
        aether_kv_entry_fini(&e);
    }
    if ((rc = ctl_state_get(cc, CTL_STATE_KEY_GENERATION, &e, &found)) != 0)
        return rc;
    if (found) {
        if (!aether_lease_generation_parse((const char *)e.value, e.value_len, &v->generation))
            v->generation = 0; /* shown as none; the nodes refuse it too */
        aether_kv_entry_fini(&e);
    }
    /* A value stamped with another generation than the bucket's belongs to
     * a lost one (written by a deposed leader after both buckets were
     * lost: actors/member_state.c, "Generations"): the nodes refuse it, and
     * so do we. A value without "gen" predates generations. */
    const struct {
        const char *key;
        uint64_t gen, version;
        bool have;
    } stamped[] = {
        { CTL_STATE_KEY_MAP, map_gen, v->map != NULL ? v->map->version : 0, v->map != NULL },
        { CTL_STATE_KEY_TOPOLOGY, topo_gen, v->topo.version, v->have_topo },
    };
    for (size_t i = 0; i < sizeof(stamped) / sizeof(stamped[0]); i++) {
        if (!stamped[i].have || stamped[i].gen == 0 || stamped[i].gen == v->generation)
            continue;
        char bucket_gen[AETHER_LEASE_GENERATION_TEXT_LEN + 1] = "none";
        if (v->generation != 0)
            aether_lease_generation_format(v->generation, bucket_gen, sizeof(bucket_gen));
        fprintf(stderr,
                "aetherctl: the stored %s (bucket '%s' key '%s', v%llu) is of generation %016llx, "
                "the bucket's generation is %s: a value of a lost generation (written by a deposed "
                "leader), refused; the nodes refuse it too and the leader writes its own back "
                "within lease_ttl_ms\n",
                stamped[i].key, cc->state_bucket, stamped[i].key,
                (unsigned long long)stamped[i].version, (unsigned long long)stamped[i].gen,
                bucket_gen);
        return EXIT_FAILED;
    }
    return 0;
}

int ctl_no_map(const ctl_conn *cc)
{
    return ctl_no_cluster(cc, "no shard map yet in bucket '%s' (no leader has assigned shards)",
                          cc->state_bucket);
}

/* One JSON document on stdout. Takes the reference. */
int ctl_emit_json(json_t *doc)
{
    if (doc == NULL) {
        fprintf(stderr, "aetherctl: out of memory building JSON\n");
        return EXIT_FAILED;
    }
    int rc = json_dumpf(doc, stdout, JSON_COMPACT) == 0 ? 0 : EXIT_FAILED;
    fputc('\n', stdout);
    json_decref(doc);
    return rc;
}

/* json_object_set_new that tolerates a NULL value (out of memory: the key is
 * simply missing, and the dump still happens). */
void ctl_jset(json_t *obj, const char *key, json_t *value)
{
    if (obj != NULL && value != NULL)
        json_object_set_new(obj, key, value);
}

json_t *ctl_jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* ---- rows: one per node of the topology and of the map ------------------- */

static int ctl_row_cmp(const void *a, const void *b)
{
    return aether_node_id_compare(&((const ctl_row *)a)->id, &((const ctl_row *)b)->id);
}

json_t *ctl_row_json(const ctl_row *r, bool with_leader)
{
    json_t *jn = json_object();
    ctl_jset(jn, "id", json_string(r->id.str));
    ctl_jset(jn, "status", json_string(ctl_row_status(r)));
    if (with_leader)
        ctl_jset(jn, "leader", json_boolean(r->leader));
    ctl_jset(jn, "primaries", ctl_jint(r->primaries));
    ctl_jset(jn, "replicas", ctl_jint(r->replicas));
    ctl_jset(jn, "moving_out", ctl_jint(r->moving_out));
    ctl_jset(jn, "moving_in", ctl_jint(r->moving_in));
    return jn;
}

const char *ctl_row_status(const ctl_row *r)
{
    return r->info != NULL ? aether_node_status_name(r->info->status) : "unknown";
}

/* Every node of the topology (left and failed ones only when with_gone or
 * when the map still names them) and every node the map names. Sorted by id.
 * NULL when out of memory. */
ctl_row *ctl_rows(const ctl_view *v, bool with_gone, uint32_t *n_out)
{
    uint32_t topo_n = v->have_topo ? v->topo.count : 0;
    uint32_t map_n = v->map != NULL ? v->map->node_count : 0;
    ctl_row *rows = calloc((size_t)topo_n + map_n + 1, sizeof(*rows));
    uint32_t *row_of = calloc((size_t)map_n + 1, sizeof(*row_of)); /* map index -> row */
    if (rows == NULL || row_of == NULL) {
        free(rows);
        free(row_of);
        return NULL;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < topo_n; i++) {
        const aether_node_info *info = &v->topo.nodes[i];
        bool in_map = v->map != NULL &&
                      aether_shardmap_find_node(v->map, &info->id) != AETHER_NODE_INDEX_NONE;
        if (!with_gone && !aether_node_status_is_healthy(info->status) && !in_map)
            continue;
        rows[n].id = info->id;
        rows[n].info = info;
        n++;
    }
    for (uint32_t i = 0; i < map_n; i++) {
        const aether_node_id *id = aether_shardmap_node(v->map, (aether_node_index)i);
        if (v->have_topo && aether_topology_find(&v->topo, id) != NULL)
            continue;
        rows[n++].id = *id;
    }
    qsort(rows, n, sizeof(*rows), ctl_row_cmp);
    for (uint32_t r = 0; r < n; r++) {
        rows[r].leader = v->have_lease && !v->lease_malformed &&
                         aether_node_id_equal(&rows[r].id, &v->lease.leader);
        if (v->map == NULL)
            continue;
        aether_node_index idx = aether_shardmap_find_node(v->map, &rows[r].id);
        if (idx == AETHER_NODE_INDEX_NONE)
            continue;
        row_of[idx] = r;
        size_t prim = 0, slots = 0;
        (void)aether_shardmap_node_primary_shards(v->map, idx, &prim);
        (void)aether_shardmap_node_owner_shards(v->map, idx, &slots);
        rows[r].primaries = (uint32_t)prim;
        rows[r].replicas = (uint32_t)(slots - prim);
    }
    for (uint32_t s = 0; v->map != NULL && s < v->map->shard_count; s++) {
        const aether_shard_entry *e = aether_shardmap_entry(v->map, s);
        if (e->state != AETHER_SHARD_MOVING)
            continue;
        rows[row_of[e->primary]].moving_out++;
        rows[row_of[e->to]].moving_in++;
    }
    free(row_of);
    *n_out = n;
    return rows;
}

uint32_t ctl_map_moving(const aether_shardmap *m)
{
    uint32_t n = 0;
    for (uint32_t s = 0; m != NULL && s < m->shard_count; s++)
        n += aether_shardmap_entry(m, s)->state == AETHER_SHARD_MOVING;
    return n;
}

int ctl_id_width(const ctl_row *rows, uint32_t n, int min)
{
    int w = min;
    for (uint32_t i = 0; i < n; i++)
        if ((int)rows[i].id.len > w)
            w = (int)rows[i].id.len;
    return w;
}

