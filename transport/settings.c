/* SPDX-License-Identifier: Apache-2.0 */
/*
 * settings.c: the parameter table and its three sources (transport layer).
 * See settings.h for the precedence and the error contract.
 *
 * One row per parameter: its key, kind, where it lives in aether_settings,
 * its range and a line of help. File, environment and flags all end in
 * aether_settings_set, so a parameter is added in exactly one place.
 */
#include "settings.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "assertion.h"
#include "auth.h"
#include "log.h"
#include "nats_kv.h"
#include "node_id.h"

#define LOG_MOD "settings"

typedef enum kind {
    K_U32,     /* uint32_t at off, lo..hi */
    K_STR,     /* char[cap] at off */
    K_PATH,    /* char[cap] at off; a file path */
    K_SECRET,  /* char[cap] at off; never echoed */
    K_BOOL,    /* bool at off */
    K_NODE,    /* aether_node_id at off */
    K_CLUSTER, /* char[] cluster name at off */
    K_ZONE,    /* char[] zone at off: a node-id-shaped name or "" */
    K_ENUM,    /* char[cap] at off, one of choices ('|'-separated) */
    K_HOSTPORT, /* char[cap] at off: "" or HOST:PORT (aether_settings_parse_hostport) */
} kind;

typedef struct param {
    const char *key;
    kind k;
    size_t off, cap;
    uint32_t lo, hi;
    const char *choices;
    const char *help;
} param;

#define CFG(f) offsetof(aether_settings, node) + offsetof(aether_config, f)
#define NATS(f) offsetof(aether_settings, nats) + offsetof(aether_nats_settings, f)
#define U32(key, off, lo, hi, help) { key, K_U32, off, 0, lo, hi, NULL, help }
#define STRF(key, k, off, field_size, help) { key, k, off, field_size, 0, 0, NULL, help }
#define NSTR(key, k, f, help) STRF(key, k, NATS(f), sizeof(((aether_nats_settings *)0)->f), help)
#define BOOL(key, off, help) { key, K_BOOL, off, 0, 0, 0, NULL, help }

static const param PARAMS[] = {
    /* identity */
    STRF("cluster", K_CLUSTER, CFG(cluster), sizeof(((aether_config *)0)->cluster),
         "subjects aether.<cluster>.*, buckets aether_<cluster>_* (default aether)"),
    STRF("node", K_NODE, CFG(node), 0, "this node's id, 1..64 of [A-Za-z0-9_.-] (required)"),
    STRF("address", K_STR, CFG(address), sizeof(((aether_config *)0)->address),
         "address other services reach this node at (default: the node id)"),
    STRF("zone", K_ZONE, CFG(zone), sizeof(((aether_config *)0)->zone),
         "failure zone; replicas are spread over zones (default none)"),
    /* DESIGN 5 */
    U32("shard_count", CFG(shard_count), 1, 65536, "shards (default 1024)"),
    U32("replication", CFG(replication), 1, 7, "owners per shard (default 1)"),
    U32("heartbeat_interval_ms", CFG(heartbeat_interval_ms), 1, 3600000,
        "how often a node tells the leader it is alive (default 200)"),
    U32("failure_timeout_ms", CFG(failure_timeout_ms), 1, 3600000,
        "silence after which the leader declares a node failed (default 1000)"),
    U32("lease_ttl_ms", CFG(lease_ttl_ms), 1, 3600000, "leadership lease ttl (default 1000)"),
    U32("lease_renew_interval_ms", CFG(lease_renew_interval_ms), 1, 3600000,
        "how often the leader renews the lease (default ttl/4; at most ttl/3)"),
    U32("lease_safety_margin_ms", CFG(lease_safety_margin_ms), 0, 3600000,
        "clock-drift allowance of the holder (default lease_ttl_ms/10)"),
    U32("election_jitter_ms", CFG(election_jitter_ms), 0, 60000, "campaign after 0..jitter (default 50)"),
    U32("rebalance_debounce_ms", CFG(rebalance_debounce_ms), 0, 600000,
        "membership changes within this window make one rebalance (default 100)"),
    U32("handoff_timeout_ms", CFG(handoff_timeout_ms), 1, 3600000,
        "an unacknowledged release is decreed after this (default 5000)"),
    U32("fence_margin_ms", CFG(fence_margin_ms), 0, 3600000,
        "a cut-off node stops serving at failure_timeout - this (default 200)"),
    U32("mailbox_capacity", CFG(mailbox_capacity), 64, 1u << 20, "per actor, a power of two (default 4096)"),
    U32("max_concurrent_handoffs", CFG(max_concurrent_handoffs), 1, 65536,
        "shards moving at once (default 64)"),
    U32("brake_max_offline", CFG(brake_max_offline), 0, 65536,
        "failures in brake_window_ms that pause rebalancing (0 = a third of the live nodes)"),
    U32("brake_window_ms", CFG(brake_window_ms), 1, 3600000, "see brake_max_offline (default 10000)"),
    U32("node_retention_ms", CFG(node_retention_ms), 1, 2592000000u,
        "a Left or Failed node leaves the topology after this (default 600000)"),
    STRF("allowed_nodes", K_STR, CFG(allowed_nodes), sizeof(((aether_config *)0)->allowed_nodes),
         "comma-separated node ids this node admits as leader, its own among them (default: any)"),
    /* NATS */
    NSTR("nats_urls", K_STR, urls, "comma-separated server URLs (flag --nats)"),
    NSTR("nats_user", K_STR, user, "user for user/password auth"),
    NSTR("nats_password", K_SECRET, password, "password for user/password auth"),
    NSTR("nats_token", K_SECRET, token, "token auth"),
    NSTR("nats_creds", K_PATH, creds, "credentials file (JWT and nkey seed)"),
    BOOL("nats_tls", NATS(tls), "require TLS (also implied by tls:// URLs and the nats_tls_* files)"),
    NSTR("nats_tls_ca", K_PATH, tls_ca, "CA certificates to verify the server with"),
    NSTR("nats_tls_cert", K_PATH, tls_cert, "client certificate (mutual TLS)"),
    NSTR("nats_tls_key", K_PATH, tls_key, "client certificate's private key"),
    NSTR("nats_tls_hostname", K_STR, tls_hostname, "server name expected in its certificate"),
    BOOL("nats_tls_skip_verify", NATS(tls_skip_verify), "do not verify the server (testing only)"),
    U32("nats_connect_timeout_ms", NATS(connect_timeout_ms), 100, 600000,
        "first connect retried this long (default 5000)"),
    U32("nats_reconnect_wait_ms", NATS(reconnect_wait_ms), 10, 60000,
        "between reconnect attempts (default 500)"),
    U32("nats_request_timeout_ms", NATS(request_timeout_ms), 10, 60000,
        "KV requests and commands (default 1000)"),
    U32("nats_kv_replicas", NATS(kv_replicas), 1, 5, "KV bucket replicas: 1 or 3 (default 1)"),
    /* daemon */
    BOOL("event_stream", offsetof(aether_settings, event_stream),
         "also persist every event in the JetStream stream AETHER_<cluster>_EVENTS"),
    { "log_level", K_ENUM, offsetof(aether_settings, log_level), sizeof(((aether_settings *)0)->log_level),
      0, 0, "debug|info|warn|error|off", "debug, info, warn, error or off (default info)" },
    { "log_format", K_ENUM, offsetof(aether_settings, log_format),
      sizeof(((aether_settings *)0)->log_format), 0, 0, "text|json", "text or json lines (default text)" },
    STRF("cluster_secret_file", K_PATH, offsetof(aether_settings, cluster_secret_file),
         sizeof(((aether_settings *)0)->cluster_secret_file),
         "file with the cluster secret (aetherctl secret new FILE); every message and stored value is "
         "then authenticated (default none)"),
    STRF("metrics_addr", K_HOSTPORT, offsetof(aether_settings, metrics_addr),
         sizeof(((aether_settings *)0)->metrics_addr),
         "serve Prometheus metrics on http://HOST:PORT/metrics (default off)"),
};
#define PARAM_COUNT (sizeof(PARAMS) / sizeof(PARAMS[0]))

void aether_settings_defaults(aether_settings *s)
{
    memset(s, 0, sizeof(*s));
    aether_config_defaults(&s->node);
    s->nats.connect_timeout_ms = 5000;
    s->nats.reconnect_wait_ms = 500;
    s->nats.request_timeout_ms = 1000;
    s->nats.kv_replicas = 1;
    snprintf(s->log_level, sizeof(s->log_level), "info");
    snprintf(s->log_format, sizeof(s->log_format), "text");
}

static const param *find(const char *key)
{
    for (size_t i = 0; i < PARAM_COUNT; i++)
        if (strcmp(PARAMS[i].key, key) == 0)
            return &PARAMS[i];
    return NULL;
}

bool aether_settings_known(const char *key) { return key != NULL && find(key) != NULL; }

static bool parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (v[0] < '0' || v[0] > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
        return false;
    *out = (uint32_t)x;
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool in_choices(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len + (bar != NULL);
    }
    return false;
}

char *aether_settings_printable(const char *in, char *out, size_t cap)
{
    AETHER_ASSERT(in != NULL && out != NULL && cap >= 5);
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) { /* bounded: cap */
        if (*p >= 0x20 && *p < 0x7f) {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 4 >= cap)
                break;
            snprintf(out + o, cap - o, "\\x%02x", *p);
            o += 4;
        }
    }
    out[o] = '\0';
    return out;
}

/* After lease_ttl_ms changes: the derived parameters follow unless given. */
static void derive(aether_settings *s)
{
    if (!s->renew_set_)
        s->node.lease_renew_interval_ms = s->node.lease_ttl_ms / 4u > 0 ? s->node.lease_ttl_ms / 4u : 1u;
    if (!s->margin_set_)
        s->node.lease_safety_margin_ms = s->node.lease_ttl_ms / 10u;
}

aether_status aether_settings_set(aether_settings *s, const char *key, const char *value,
                                  const char *source, aether_err *err)
{
    const char *src = source != NULL ? source : "setting";
    char vis[96]; /* the value as quoted in errors: control bytes escaped, never raw */
    const param *p = find(key);
    if (p == NULL)
        return aether_err_set(err, AETHER_EINVAL, "%s: unknown parameter '%s'", src,
                              aether_settings_printable(key, vis, sizeof(vis)));
    char *base = (char *)s + p->off;
    const char *shown = p->k == K_SECRET ? "(secret)" : aether_settings_printable(value, vis, sizeof(vis));
    aether_err inner;
    switch (p->k) {
    case K_U32: {
        uint32_t x;
        if (!parse_u32(value, p->lo, p->hi, &x))
            return aether_err_set(err, AETHER_EINVAL, "%s: %s wants an integer %u..%u, not '%.64s'", src,
                                  key, p->lo, p->hi, shown);
        memcpy(base, &x, sizeof(x));
        if (strcmp(key, "lease_renew_interval_ms") == 0)
            s->renew_set_ = true;
        else if (strcmp(key, "lease_safety_margin_ms") == 0)
            s->margin_set_ = true;
        else if (strcmp(key, "lease_ttl_ms") == 0)
            derive(s);
        return AETHER_OK;
    }
    case K_BOOL: {
        bool b;
        if (!parse_bool(value, &b))
            return aether_err_set(err, AETHER_EINVAL, "%s: %s wants true or false, not '%.64s'", src, key,
                                  shown);
        memcpy(base, &b, sizeof(b));
        return AETHER_OK;
    }
    case K_NODE:
        if (aether_node_id_from_cstr(value, (aether_node_id *)(void *)base, &inner) != AETHER_OK)
            return aether_err_set(err, AETHER_EINVAL, "%s: %s: %s", src, key, inner.msg);
        return AETHER_OK;
    case K_CLUSTER: {
        if (aether_cluster_name_validate(value, &inner) != AETHER_OK)
            return aether_err_set(err, AETHER_EINVAL, "%s: %s: %s", src, key, inner.msg);
        size_t max = AETHER_KV_NATS_BUCKET_LEN_MAX - (sizeof("aether__lease") - 1u);
        if (strlen(value) > max)
            return aether_err_set(err, AETHER_EINVAL,
                                  "%s: %s: '%.64s' is longer than %zu characters (the KV bucket "
                                  "aether_<cluster>_lease must fit %u)",
                                  src, key, value, max, AETHER_KV_NATS_BUCKET_LEN_MAX);
        for (const char *c = value; *c != '\0'; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '_' || *c == '-'))
                return aether_err_set(err, AETHER_EINVAL,
                                      "%s: %s: '%.64s' has '%c'; a bucket name allows [A-Za-z0-9_-]",
                                      src, key, value, *c);
        snprintf(base, AETHER_CLUSTER_NAME_MAX + 1, "%s", value);
        return AETHER_OK;
    }
    case K_ZONE:
        if (value[0] != '\0') {
            aether_node_id z;
            if (aether_node_id_parse_as("zone", value, strnlen(value, AETHER_NODE_ID_LEN_MAX + 1),
                                        &z, &inner) != AETHER_OK)
                return aether_err_set(err, AETHER_EINVAL, "%s: %s: %s", src, key, inner.msg);
        }
        /* fall through */
    case K_HOSTPORT:
        if (p->k == K_HOSTPORT && value[0] != '\0') {
            char host[256];
            uint16_t port;
            if (aether_settings_parse_hostport(value, host, sizeof(host), &port, &inner) != AETHER_OK)
                return aether_err_set(err, AETHER_EINVAL, "%s: %s: %s", src, key, inner.msg);
        }
        /* fall through */
    case K_STR:
    case K_PATH:
    case K_SECRET:
    case K_ENUM:
        if (strlen(value) >= p->cap)
            return aether_err_set(err, AETHER_EINVAL, "%s: %s: '%.32s...' is longer than %zu characters", src,
                                  key, shown, p->cap - 1u);
        if (p->k == K_ENUM && !in_choices(value, p->choices))
            return aether_err_set(err, AETHER_EINVAL, "%s: %s wants one of %s, not '%.64s'", src, key,
                                  p->choices, shown);
        memcpy(base, value, strlen(value) + 1u);
        return AETHER_OK;
    }
    return aether_err_set(err, AETHER_EINVAL, "%s: %s: unhandled kind", src, key);
}

/* ---- listen addresses -------------------------------------------------------- */

aether_status aether_settings_parse_hostport(const char *value, char *host, size_t host_cap,
                                             uint16_t *port, aether_err *err)
{
    AETHER_ASSERT(value != NULL && host != NULL && host_cap >= 254u && port != NULL);
    for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++) /* bounded: the string */
        if (*c <= 0x20 || *c >= 0x7f)
            return aether_err_set(err, AETHER_EINVAL,
                                  "has byte 0x%02x (a space, control or non-ASCII byte), not HOST:PORT", *c);
    const char *colon = strrchr(value, ':');
    if (colon == NULL || colon == value)
        return aether_err_set(err, AETHER_EINVAL, "'%.64s' is not HOST:PORT (e.g. 127.0.0.1:9100)", value);
    const char *h = value;
    size_t hlen = (size_t)(colon - value);
    if (value[0] == '[') {
        if (hlen < 3 || value[hlen - 1] != ']')
            return aether_err_set(err, AETHER_EINVAL, "'%.64s': an IPv6 address goes in brackets: [::1]:9100",
                                  value);
        h = value + 1;
        hlen -= 2;
    } else if (memchr(value, ':', hlen) != NULL) {
        return aether_err_set(err, AETHER_EINVAL, "'%.64s': an IPv6 address goes in brackets: [::1]:9100",
                              value);
    }
    if (hlen == 0 || hlen >= host_cap || hlen > 253u)
        return aether_err_set(err, AETHER_EINVAL, "'%.64s': the host is empty or too long", value);
    uint32_t p = 0;
    if (!parse_u32(colon + 1, 1, 65535, &p))
        return aether_err_set(err, AETHER_EINVAL, "'%.64s': the port wants an integer 1..65535, not '%.16s'",
                              value, colon + 1);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return aether_err_set(err, AETHER_EINVAL, "'%.64s': cannot resolve host '%.64s': %s", value, host,
                              gai_strerror(rc));
    freeaddrinfo(res);
    *port = (uint16_t)p;
    return AETHER_OK;
}

/* ---- file ------------------------------------------------------------------ */

typedef struct file_ctx {
    aether_settings *s;
    const char *path;
    aether_err *err;
    aether_status st;
    FILE *f;
    int lineno;     /* of the line inih read last (Debian's inih passes no line numbers) */
    bool line_done; /* the last chunk read ended its line */
    size_t bytes;   /* read so far: <= AETHER_SETTINGS_FILE_BYTES_MAX */
    int utf8_left;  /* continuation bytes still expected by the UTF-8 check */
    int set_on[sizeof(PARAMS) / sizeof(PARAMS[0])]; /* line each parameter was set on; 0 = not */
} file_ctx;

/* Refuses what is not text: a control byte other than tab, CR and LF (a
 * NUL, binary junk, /dev/zero) or a byte sequence that is not UTF-8. The
 * error names the line and the byte, never echoes the junk. */
static bool text_byte_ok(file_ctx *c, unsigned char b)
{
    const char *why = NULL;
    if (c->utf8_left > 0) {
        if ((b & 0xc0u) == 0x80u) {
            c->utf8_left--;
            return true;
        }
        why = "breaks a UTF-8 sequence";
    } else if ((b < 0x20 && b != '\t' && b != '\r' && b != '\n') || b == 0x7f) {
        why = "is a control byte";
    } else if (b >= 0x80) {
        if (b >= 0xc2 && b <= 0xdf)
            c->utf8_left = 1;
        else if (b >= 0xe0 && b <= 0xef)
            c->utf8_left = 2;
        else if (b >= 0xf0 && b <= 0xf4)
            c->utf8_left = 3;
        else
            why = "is not UTF-8";
    }
    if (why == NULL)
        return true;
    c->st = aether_err_set(c->err, AETHER_EINVAL,
                           "file %.160s line %d: byte 0x%02x %s: a configuration file is text", c->path,
                           c->line_done ? c->lineno + 1 : c->lineno, b, why);
    return false;
}

/* inih's reader: one line (or its first num - 1 bytes), checked byte by
 * byte, at most AETHER_SETTINGS_FILE_BYTES_MAX in all (so /dev/zero or an
 * endless pipe ends with an error instead of a hang). */
static char *read_line(char *str, int num, void *stream)
{
    file_ctx *c = stream;
    if (c->st != AETHER_OK || num < 2)
        return NULL;
    int n = 0;
    while (n < num - 1) { /* bounded: num */
        int ch = getc(c->f);
        if (ch == EOF)
            break;
        if (++c->bytes > AETHER_SETTINGS_FILE_BYTES_MAX) {
            c->st = aether_err_set(c->err, AETHER_EINVAL,
                                   "configuration file %.160s: longer than %u bytes; not a configuration file",
                                   c->path, AETHER_SETTINGS_FILE_BYTES_MAX);
            return NULL;
        }
        if (!text_byte_ok(c, (unsigned char)ch))
            return NULL;
        str[n++] = (char)ch;
        if (ch == '\n')
            break;
    }
    if (n == 0)
        return NULL;
    str[n] = '\0';
    if (c->line_done)
        c->lineno++;
    c->line_done = str[n - 1] == '\n';
    return str;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    file_ctx *c = user;
    int lineno = c->lineno;
    if (c->st != AETHER_OK)
        return 0;
    char key[128], source[AETHER_ERR_MSG_MAX];
    snprintf(source, sizeof(source), "file %.160s line %d", c->path, lineno);
    if (section[0] == '\0' || strcmp(section, "node") == 0 || strcmp(section, "cluster") == 0 ||
        strcmp(section, "aether") == 0) {
        snprintf(key, sizeof(key), "%s", name);
    } else if (strcmp(section, "nats") == 0) {
        if (strncmp(name, "nats_", 5) == 0)
            snprintf(key, sizeof(key), "%s", name);
        else
            snprintf(key, sizeof(key), "nats_%.100s", name);
        if (strcmp(key, "nats_url") == 0 || strcmp(key, "nats_servers") == 0)
            snprintf(key, sizeof(key), "nats_urls");
    } else {
        c->st = aether_err_set(c->err, AETHER_EINVAL,
                               "%s: unknown section [%.64s] (known: node, cluster, nats)", source, section);
        return 0;
    }
    const param *p = find(key);
    if (p != NULL) {
        int *on = &c->set_on[p - PARAMS];
        if (*on != 0) {
            c->st = aether_err_set(c->err, AETHER_EINVAL, "%s: %s is set twice (first on line %d)",
                                   source, key, *on);
            return 0;
        }
        *on = lineno;
    }
    c->st = aether_settings_set(c->s, key, value, source, c->err);
    return c->st == AETHER_OK;
}

aether_status aether_settings_load_file(aether_settings *s, const char *path, aether_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return aether_err_set(err, AETHER_ENOTFOUND, "configuration file %.160s: %s", path, strerror(errno));
    /* A regular file, or a pipe (`--config <(...)`); a directory reads as
     * nothing and a device (/dev/zero, a terminal) never ends. */
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !(S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode))) {
        const char *what = S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file or a pipe";
        fclose(f);
        return aether_err_set(err, AETHER_EINVAL, "configuration file %.160s: is %s", path, what);
    }
    /* inih reads one whole line (INI_MAX_LINE) before calling on_ini for
     * it, so lineno is the line being handled. */
    static file_ctx zero;
    file_ctx c = zero;
    c.s = s;
    c.path = path;
    c.err = err;
    c.st = AETHER_OK;
    c.f = f;
    c.line_done = true;
    int rc = ini_parse_stream(read_line, &c, on_ini, &c);
    bool read_failed = ferror(f) != 0;
    fclose(f);
    if (read_failed && c.st == AETHER_OK)
        return aether_err_set(err, AETHER_EIO, "configuration file %.160s: read error", path);
    if (c.st != AETHER_OK)
        return c.st;
    if (rc > 0)
        return aether_err_set(err, AETHER_EINVAL,
                              "file %.160s line %d: not a 'key = value' line or a [section]", path, rc);
    if (rc < 0)
        return aether_err_set(err, AETHER_EIO, "configuration file %.160s: read error", path);
    AETHER_INFO(LOG_MOD, "configuration read from %s", path);
    return AETHER_OK;
}

/* ---- environment -------------------------------------------------------------- */

aether_status aether_settings_load_env(aether_settings *s, char *const *envp, const char *const *ignore,
                                       aether_err *err)
{
    static const char prefix[] = AETHER_SETTINGS_ENV_PREFIX;
    const size_t plen = sizeof(prefix) - 1u;
    if (envp == NULL)
        return AETHER_OK;
    /* Order does not matter: a derived parameter (renew interval, safety
     * margin) given explicitly is never overwritten by lease_ttl_ms. */
    for (char *const *e = envp; *e != NULL; e++) {
        if (strncmp(*e, prefix, plen) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char name[128];
        if (nlen >= sizeof(name))
            return aether_err_set(err, AETHER_EINVAL, "environment: variable name %.60s... too long", *e);
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        bool skip = false;
        for (const char *const *i = ignore; i != NULL && *i != NULL; i++)
            if (strcmp(*i, name) == 0)
                skip = true;
        if (skip)
            continue;
        char key[128];
        size_t k = 0;
        for (const char *c = name + plen; *c != '\0' && k + 1 < sizeof(key); c++)
            key[k++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
        key[k] = '\0';
        char source[160];
        char vis_name[128];
        snprintf(source, sizeof(source), "environment %s",
                 aether_settings_printable(name, vis_name, sizeof(vis_name)));
        if (find(key) == NULL) {
            char vis[96];
            return aether_err_set(err, AETHER_EINVAL, "%s: no such parameter '%s' (see --help)", source,
                                  aether_settings_printable(key, vis, sizeof(vis)));
        }
        aether_status st = aether_settings_set(s, key, eq + 1, source, err);
        if (st != AETHER_OK)
            return st;
    }
    return AETHER_OK;
}

/* ---- flags ------------------------------------------------------------------- */

const char *aether_settings_flag_key(const char *flag, char *buf, size_t cap)
{
    if (flag == NULL || cap == 0)
        return NULL;
    while (*flag == '-')
        flag++;
    if (strcmp(flag, "nats") == 0)
        flag = "nats-urls";
    else if (strcmp(flag, "shards") == 0)
        flag = "shard-count";
    size_t n = strlen(flag);
    if (n + 1 > cap)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        buf[i] = flag[i] == '-' ? '_' : flag[i];
    return find(buf) != NULL ? buf : NULL;
}

/* ---- checks --------------------------------------------------------------------- */

static bool is_set(const char *s) { return s[0] != '\0'; }

#define URL_REFUSE(...)                                                                              \
    do {                                                                                             \
        char why_[160];                                                                              \
        snprintf(why_, sizeof(why_), __VA_ARGS__);                                                   \
        return aether_err_set(err, AETHER_EINVAL,                                                    \
                              "nats_urls: '%.*s' is not a server URL ([nats://|tls://]HOST[:PORT]): %s", \
                              (int)shown_len, shown, why_);                                          \
    } while (0)

/* One entry of nats_urls, [scheme://][user[:password]@]host[:port][/],
 * checked before nats.c sees it (which only says "No server available"
 * after the whole connect timeout). The user part is never echoed. */
static aether_status check_url(const char *u, size_t len, aether_err *err)
{
    const char *at = NULL;
    for (size_t i = 0; i < len; i++) /* bounded: len */
        if (u[i] == '@')
            at = u + i;
    /* What the errors quote: the part after the credentials, if any. */
    const char *shown = at != NULL ? at + 1 : u;
    size_t shown_len = (size_t)(u + len - shown);
    for (size_t i = 0; i < len; i++) { /* bounded: len */
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f)
            URL_REFUSE("a space or control byte (0x%02x)", c);
    }
    const char *p = u, *end = u + len;
    const char *sep = NULL;
    for (const char *q = u; q + 3 <= end; q++) /* bounded: len */
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            sep = q;
            break;
        }
    if (sep != NULL) {
        size_t slen = (size_t)(sep - u);
        if (!((slen == 4 && strncasecmp(u, "nats", 4) == 0) || (slen == 3 && strncasecmp(u, "tls", 3) == 0)))
            URL_REFUSE("the scheme '%.*s' is not nats or tls", (int)(slen < 16 ? slen : 16), u);
        p = sep + 3;
    }
    if (at != NULL && at >= p)
        p = at + 1;
    if (end > p && end[-1] == '/')
        end--;
    const char *host = p, *host_end, *port = NULL;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL)
            URL_REFUSE("an IPv6 address has no closing ']'");
        host = p + 1;
        host_end = close;
        if (close + 1 < end) {
            if (close[1] != ':')
                URL_REFUSE("'%c' after the IPv6 address, not ':PORT'", close[1]);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon != NULL ? colon : end;
        if (colon != NULL) {
            if (memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
                URL_REFUSE("more than one ':' (an IPv6 address goes in brackets: [::1]:4222)");
            port = colon + 1;
        }
    }
    if (host_end == host)
        URL_REFUSE("the host is empty");
    for (const char *h = host; h < host_end; h++) /* bounded: len */
        if (!(aether_node_id_char_is_valid((unsigned char)*h) || *h == ':' || *h == '%'))
            URL_REFUSE("the host has '%c'", *h);
    if (port != NULL) {
        size_t plen = (size_t)(end - port);
        char digits[8];
        uint32_t x;
        if (plen == 0 || plen >= sizeof(digits))
            URL_REFUSE("the port is empty or too long");
        memcpy(digits, port, plen);
        digits[plen] = '\0';
        if (!parse_u32(digits, 1, 65535, &x))
            URL_REFUSE("the port '%s' is not an integer 1..65535", digits);
    }
    return AETHER_OK;
}
#undef URL_REFUSE

/* A file the NATS options name must be readable now: nats.c would fail
 * later, with exit 1 and a less direct sentence. */
static aether_status check_file(const char *key, const char *path, aether_err *err)
{
    struct stat sb;
    if (!is_set(path))
        return AETHER_OK;
    if (stat(path, &sb) != 0)
        return aether_err_set(err, AETHER_EINVAL, "%s: %.200s: %s", key, path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return aether_err_set(err, AETHER_EINVAL, "%s: %.200s: not a regular file", key, path);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return aether_err_set(err, AETHER_EINVAL, "%s: %.200s: %s", key, path, strerror(errno));
    fclose(f);
    return AETHER_OK;
}

aether_status aether_settings_check(const aether_settings *s, bool need_node, aether_err *err)
{
    const aether_nats_settings *n = &s->nats;
    if (need_node) {
        if (!aether_node_id_is_valid(&s->node.node))
            return aether_err_set(err, AETHER_EINVAL, "node: a node id is required (--node, AETHER_NODE or "
                                                      "node = ... in the file)");
        /* Before the timing rules, which would blame the renew interval
         * derived from a too-short ttl instead of the ttl itself. */
        if (s->node.lease_ttl_ms < AETHER_KV_NATS_TTL_MS_MIN)
            return aether_err_set(err, AETHER_EINVAL,
                                  "lease_ttl_ms: %u is below %u ms, the shortest TTL JetStream "
                                  "accepts for the lease bucket",
                                  s->node.lease_ttl_ms, AETHER_KV_NATS_TTL_MS_MIN);
        aether_status st = aether_config_validate(&s->node, err);
        if (st != AETHER_OK)
            return st;
        if (!is_set(n->urls))
            return aether_err_set(err, AETHER_EINVAL, "nats_urls: at least one server URL is required");
    }
    size_t urls = 1;
    bool any = false;
    for (const char *p = n->urls; *p != '\0'; p++) {
        if (*p == ',')
            urls++;
        else if (*p != ' ')
            any = true;
    }
    if (is_set(n->urls) && (!any || urls > AETHER_SETTINGS_URLS_MAX))
        return aether_err_set(err, AETHER_EINVAL, "nats_urls: wants 1..%u comma-separated URLs",
                              AETHER_SETTINGS_URLS_MAX);
    unsigned entry = 1;
    for (const char *p = n->urls; is_set(n->urls) && *p != '\0';) { /* bounded: the string */
        const char *comma = strchr(p, ',');
        const char *e = comma != NULL ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && *b == ' ')
            b++;
        const char *t = e;
        while (t > b && t[-1] == ' ')
            t--;
        if (t == b)
            return aether_err_set(err, AETHER_EINVAL, "nats_urls: entry %u of the list is empty", entry);
        entry++;
        aether_status st = check_url(b, (size_t)(t - b), err);
        if (st != AETHER_OK)
            return st;
        p = comma != NULL ? comma + 1 : e;
    }
    int methods = (is_set(n->user) || is_set(n->password)) + is_set(n->token) + is_set(n->creds);
    if (methods > 1)
        return aether_err_set(err, AETHER_EINVAL,
                              "nats auth: choose one of user/password, token, credentials file");
    if (is_set(n->password) && !is_set(n->user))
        return aether_err_set(err, AETHER_EINVAL, "nats_password: given without nats_user");
    if (is_set(n->tls_key) != is_set(n->tls_cert))
        return aether_err_set(err, AETHER_EINVAL,
                              "nats_tls_cert and nats_tls_key: a client certificate needs both");
    static const struct {
        const char *key;
        size_t off;
    } files[] = {
        { "nats_creds", offsetof(aether_nats_settings, creds) },
        { "nats_tls_ca", offsetof(aether_nats_settings, tls_ca) },
        { "nats_tls_cert", offsetof(aether_nats_settings, tls_cert) },
        { "nats_tls_key", offsetof(aether_nats_settings, tls_key) },
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        aether_status st = check_file(files[i].key, (const char *)n + files[i].off, err);
        if (st != AETHER_OK)
            return st;
    }
    if (is_set(s->cluster_secret_file)) {
        aether_auth *a = NULL;
        aether_status st = aether_auth_load_file(s->cluster_secret_file, &a, err);
        aether_auth_destroy(a);
        if (st != AETHER_OK)
            return st;
    }
    if (n->kv_replicas != 1 && n->kv_replicas != 3)
        return aether_err_set(err, AETHER_EINVAL, "nats_kv_replicas: %u; JetStream KV here uses 1 or 3",
                              n->kv_replicas);
    if (n->kv_replicas == 3 && need_node && s->node.lease_ttl_ms < 3000)
        AETHER_WARN(LOG_MOD,
                    "lease_ttl_ms %u with R3 buckets: a JetStream stream-leader election takes seconds; "
                    "leadership will lapse during one (choose >= 3000, see docs/configuration.md)",
                    s->node.lease_ttl_ms);
    if (n->tls_skip_verify)
        AETHER_WARN(LOG_MOD, "nats_tls_skip_verify: the server's certificate is not verified");
    return AETHER_OK;
}

/* ---- description ------------------------------------------------------------------ */

void aether_settings_describe(const aether_settings *s, FILE *out)
{
    for (size_t i = 0; i < PARAM_COUNT; i++) {
        const param *p = &PARAMS[i];
        const char *base = (const char *)s + p->off;
        switch (p->k) {
        case K_U32: {
            uint32_t x;
            memcpy(&x, base, sizeof(x));
            fprintf(out, "%s = %u\n", p->key, x);
            break;
        }
        case K_BOOL: {
            bool b;
            memcpy(&b, base, sizeof(b));
            fprintf(out, "%s = %s\n", p->key, b ? "true" : "false");
            break;
        }
        case K_NODE: {
            const aether_node_id *id = (const void *)base;
            fprintf(out, "%s%s = %s\n", id->len ? "" : "# ", p->key, id->len ? id->str : "");
            break;
        }
        case K_SECRET:
            fprintf(out, "%s%s = %s\n", base[0] ? "# " : "# ", p->key, base[0] ? "(set)" : "");
            break;
        default:
            fprintf(out, "%s%s = %s\n", base[0] ? "" : "# ", p->key, base);
            break;
        }
    }
}

bool aether_settings_param(size_t i, const char **key, const char **kind_name, const char **help)
{
    static const char *const names[] = { [K_U32] = "integer", [K_STR] = "string", [K_PATH] = "path",
                                         [K_SECRET] = "secret", [K_BOOL] = "bool",  [K_NODE] = "node id",
                                         [K_CLUSTER] = "name", [K_ZONE] = "zone",  [K_ENUM] = "choice",
                                         [K_HOSTPORT] = "host:port" };
    if (i >= PARAM_COUNT)
        return false;
    *key = PARAMS[i].key;
    *kind_name = names[PARAMS[i].k];
    *help = PARAMS[i].help;
    return true;
}
