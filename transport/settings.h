/* SPDX-License-Identifier: Apache-2.0 */
/*
 * settings.h: everything a NATS-mode process is configured with - the node's
 * aether_config (every DESIGN 5 parameter), the NATS connection (server
 * list, auth, TLS) and the daemon's own knobs - from three sources through
 * one table of parameters (transport layer).
 *
 * Sources, lowest precedence first (later ones override earlier ones):
 *   1. the built-in defaults (aether_config_defaults);
 *   2. a configuration file in INI format, parsed by inih (Debian
 *      libinih-dev): `key = value` lines, `#` or `;` comments; keys may sit
 *      at the top or in sections: [node] and [cluster] hold plain keys, and
 *      [nats] prefixes its keys with "nats_" (so `[nats] user = x` is
 *      nats_user);
 *   3. AETHER_<KEY> environment variables (the key upper-cased:
 *      AETHER_LEASE_TTL_MS, AETHER_NATS_TOKEN, ...);
 *   4. command-line flags --<key with '-' for '_'> (--lease-ttl-ms,
 *      --nats-token; --nats is nats_urls).
 * Flags beat the environment, which beats the file: the explicit command
 * line is the most specific statement of intent (etcd, Consul, Dapr and the
 * 12-factor convention agree). A flag that shadows a set environment
 * variable is logged (INFO) so an operator sees which one won.
 *
 * Every source goes through aether_settings_set: an unknown key, a value
 * that does not parse or is out of range is refused with an error naming
 * the source ("file x.ini line 7", "environment AETHER_LEASE_TTL_MS",
 * "flag --shards"), the key and the reason. aether_settings_check then
 * refuses combinations that cannot be safe (aether_config_validate: renew
 * interval not well below the ttl, failure timeout below two heartbeats,
 * ...) and NATS options that contradict each other (two auth methods,
 * a TLS key without a certificate), naming the parameter and the reason.
 *
 * Secrets (nats_password, nats_token) are never printed by
 * aether_settings_describe.
 *
 * Threading: a value owned by one thread; no shared state.
 */
#ifndef AETHER_SETTINGS_H
#define AETHER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "status.h"

#define AETHER_SETTINGS_STR_MAX 1023u  /* longest string value (URL list, path) */
#define AETHER_SETTINGS_URLS_MAX 16u   /* servers in nats_urls */
#define AETHER_SETTINGS_ENV_PREFIX "AETHER_"
#define AETHER_SETTINGS_FILE_BYTES_MAX (1u << 20) /* a configuration file is a few hundred bytes */
#define AETHER_SETTINGS_HOSTPORT_MAX 263u /* "[" 253-byte host or IPv6 literal "]:" 5-digit port */

/* The NATS connection: what aether_nats_connect (nats_conn.h) takes. */
typedef struct aether_nats_settings {
    char urls[AETHER_SETTINGS_STR_MAX + 1];      /* comma-separated; "" = not set */
    char user[AETHER_SETTINGS_STR_MAX + 1];      /* user/password auth */
    char password[AETHER_SETTINGS_STR_MAX + 1];
    char token[AETHER_SETTINGS_STR_MAX + 1];     /* token auth */
    char creds[AETHER_SETTINGS_STR_MAX + 1];     /* credentials file (JWT + nkey seed) */
    bool tls;                                    /* require TLS (also implied by tls_* / tls://) */
    char tls_ca[AETHER_SETTINGS_STR_MAX + 1];    /* CA bundle to verify the server */
    char tls_cert[AETHER_SETTINGS_STR_MAX + 1];  /* client certificate (mutual TLS) */
    char tls_key[AETHER_SETTINGS_STR_MAX + 1];   /* its private key */
    char tls_hostname[AETHER_SETTINGS_STR_MAX + 1]; /* expected server name, "" = from the URL */
    bool tls_skip_verify;                        /* testing only; logged as WARN */
    uint32_t connect_timeout_ms;                 /* first connect retried this long: 5000 */
    uint32_t reconnect_wait_ms;                  /* between reconnect attempts: 500 */
    uint32_t request_timeout_ms;                 /* KV requests and commands: 1000 */
    uint32_t kv_replicas;                        /* KV bucket replicas, 1 or 3: 1 */
} aether_nats_settings;

typedef struct aether_settings {
    aether_config node;          /* DESIGN 5; node.node is required for a daemon */
    aether_nats_settings nats;
    bool event_stream;           /* also persist every event in AETHER_<cluster>_EVENTS */
    char log_level[16];          /* error|warn|info|debug: "info" */
    char log_format[16];         /* text|json: "text" */
    char metrics_addr[AETHER_SETTINGS_HOSTPORT_MAX + 1]; /* HOST:PORT of /metrics; "" = off */
    /* The cluster secret (transport/auth.h): "" = messages and stored
     * values travel unauthenticated. */
    char cluster_secret_file[AETHER_SETTINGS_STR_MAX + 1];
    /* Private: which derived parameters were given explicitly (otherwise
     * they follow lease_ttl_ms: renew = ttl/4, safety margin = ttl/10). */
    bool renew_set_, margin_set_;
} aether_settings;

/* Defaults everywhere (no node id, no URL). */
void aether_settings_defaults(aether_settings *s);

/* Sets one parameter by key (the file's spelling: "lease_ttl_ms",
 * "nats_urls"; flags and variables are mapped to it by the callers
 * below). `source` names where the value came from, for the error
 * ("flag --shards"). AETHER_OK, or AETHER_EINVAL with err saying
 * "<source>: <key>: <why>" (unknown key, bad number, out of range, too
 * long). The value is not echoed for secret keys. */
aether_status aether_settings_set(aether_settings *s, const char *key, const char *value,
                                  const char *source, aether_err *err);

/* Reads an INI file into s. AETHER_ENOTFOUND (cannot open; err has the
 * errno text), AETHER_EINVAL (syntax error or a refused key; err names the
 * file and line). Also refused, with EINVAL: a directory or a device (only
 * a regular file or a pipe is read), more than
 * AETHER_SETTINGS_FILE_BYTES_MAX bytes, a control byte or bytes that are
 * not UTF-8 (named by line and value, never echoed), a parameter set twice
 * (naming both lines: no silent last-wins). */
aether_status aether_settings_load_file(aether_settings *s, const char *path, aether_err *err);

/* Applies every AETHER_<KEY> variable of envp (NULL-terminated "K=V"
 * strings, e.g. environ) that names a known key. Variables with the prefix
 * but no known key are refused (a typo must not be silently ignored),
 * except the ones listed in `ignore` (NULL-terminated, may be NULL) that
 * other parts of the program read (AETHER_NATS_SERVER for the tests...). */
aether_status aether_settings_load_env(aether_settings *s, char *const *envp,
                                       const char *const *ignore, aether_err *err);

/* For flag parsing: the key a long option names ("lease-ttl-ms" ->
 * "lease_ttl_ms", "nats" -> "nats_urls"), or NULL if it is not a
 * parameter. `buf` receives the key. */
const char *aether_settings_flag_key(const char *flag, char *buf, size_t cap);

/* in as it may be quoted in a message: printable ASCII kept, every other
 * byte written as \xNN (so junk given as a value never reaches a terminal
 * raw); truncated to fit cap (>= 5). Returns out. */
char *aether_settings_printable(const char *in, char *out, size_t cap);

/* True if key names a parameter. */
bool aether_settings_known(const char *key);

/* The refusals of aether_config_validate plus the NATS cross-checks
 * (exactly one auth method, TLS files that go together, URL count), each
 * nats_urls entry parsed as [nats://|tls://][user[:password]@]HOST[:PORT]
 * (the user part never echoed), the creds and TLS files readable regular
 * files, and cluster_secret_file a usable secret (aether_auth_load_file:
 * a regular file of AETHER_AUTH_SECRET_MIN..MAX bytes). `need_node` also requires a node id and a URL (daemon), and
 * lease_ttl_ms >= AETHER_KV_NATS_TTL_MS_MIN (JetStream's shortest max age),
 * checked before the timing rules so the ttl itself is named. */
aether_status aether_settings_check(const aether_settings *s, bool need_node, aether_err *err);

/* One "key = value" line per parameter, secrets shown as "(set)", in the
 * file's format: a valid configuration file. */
void aether_settings_describe(const aether_settings *s, FILE *out);

/* Checks a listen address "HOST:PORT": HOST an IPv4 literal, a bracketed
 * IPv6 literal ("[::1]:9100") or a host name that resolves; PORT 1..65535.
 * Fills host (brackets removed; host_cap >= 254) and *port. AETHER_EINVAL
 * with err saying why. The metrics_addr parameter is checked with it, so a
 * bad address is refused with the configuration (exit 2), not at bind. */
aether_status aether_settings_parse_hostport(const char *value, char *host, size_t host_cap,
                                             uint16_t *port, aether_err *err);

/* Iteration over the table, for --help: key, kind ("integer", "string",
 * "bool", "path"), and a one-line description. Returns false past the end. */
bool aether_settings_param(size_t i, const char **key, const char **kind_name, const char **help);

#endif
