/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_settings.c: the parameter table and its sources (transport/settings.h):
 * defaults, the INI file, AETHER_* variables, flag names, precedence, the
 * refusals and their messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_test.h"
#include "settings.h"

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/aether-settings-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    size_t len = strlen(text);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    close(fd);
    return path;
}

static void test_defaults_match_design(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    CU_ASSERT_STRING_EQUAL(s.node.cluster, "aether");
    CU_ASSERT_EQUAL(s.node.shard_count, 1024);
    CU_ASSERT_EQUAL(s.node.replication, 1);
    CU_ASSERT_EQUAL(s.node.heartbeat_interval_ms, 200);
    CU_ASSERT_EQUAL(s.node.failure_timeout_ms, 1000);
    CU_ASSERT_EQUAL(s.node.lease_ttl_ms, 1000);
    CU_ASSERT_EQUAL(s.node.lease_renew_interval_ms, 250);
    CU_ASSERT_EQUAL(s.node.rebalance_debounce_ms, 100);
    CU_ASSERT_EQUAL(s.node.handoff_timeout_ms, 5000);
    CU_ASSERT_EQUAL(s.node.mailbox_capacity, 4096);
    CU_ASSERT_EQUAL(s.node.max_concurrent_handoffs, 64);
    CU_ASSERT_EQUAL(s.node.brake_window_ms, 10000);
    CU_ASSERT_EQUAL(s.node.node_retention_ms, 600000);
    CU_ASSERT_EQUAL(s.nats.kv_replicas, 1);
    CU_ASSERT_STRING_EQUAL(s.log_format, "text");
    aether_err err;
    /* A client (aetherctl) needs no node id; a daemon does. */
    CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_check(&s, true, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node"));
}

static void test_file_sections_and_comments(void)
{
    const char *path = write_file("# comment\n"
                                  "cluster = prod\n"
                                  "[node]\n"
                                  "node = node-7\n"
                                  "zone = eu-1\n"
                                  "; another comment\n"
                                  "[cluster]\n"
                                  "shard_count = 4096\n"
                                  "lease_ttl_ms = 3000\n"
                                  "[nats]\n"
                                  "urls = nats://127.0.0.1:4222,nats://127.0.0.1:4223\n"
                                  "user = alice\n"
                                  "password = s3cret\n"
                                  "kv_replicas = 3\n");
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_settings_load_file(&s, path, &err), AETHER_OK);
    unlink(path);
    CU_ASSERT_STRING_EQUAL(s.node.cluster, "prod");
    CU_ASSERT_STRING_EQUAL(s.node.node.str, "node-7");
    CU_ASSERT_STRING_EQUAL(s.node.zone, "eu-1");
    CU_ASSERT_EQUAL(s.node.shard_count, 4096);
    CU_ASSERT_EQUAL(s.node.lease_ttl_ms, 3000);
    CU_ASSERT_EQUAL(s.node.lease_renew_interval_ms, 750); /* follows the ttl: ttl/4 */
    CU_ASSERT_EQUAL(s.node.lease_safety_margin_ms, 300);
    CU_ASSERT_STRING_EQUAL(s.nats.urls, "nats://127.0.0.1:4222,nats://127.0.0.1:4223");
    CU_ASSERT_STRING_EQUAL(s.nats.user, "alice");
    CU_ASSERT_STRING_EQUAL(s.nats.password, "s3cret");
    CU_ASSERT_EQUAL(s.nats.kv_replicas, 3);
    CU_ASSERT_EQUAL(aether_settings_check(&s, true, &err), AETHER_OK);
}

static void test_file_errors_name_the_line(void)
{
    struct {
        const char *text, *want;
    } cases[] = {
        { "shard_count = 10\nbogus_key = 1\n", "line 2: unknown parameter 'bogus_key'" },
        { "\n\nshard_count = ten\n", "line 3: shard_count wants an integer 1..65536, not 'ten'" },
        { "replication = 9\n", "line 1: replication wants an integer 1..7, not '9'" },
        { "[weird]\nx = 1\n", "line 2: unknown section [weird]" },
        { "node = no spaces\n", "line 1: node:" },
        { "cluster = a.b\n", "line 1: cluster:" },
        { "log_format = xml\n", "log_format wants one of text|json, not 'xml'" },
        { "nats_tls = maybe\n", "nats_tls wants true or false" },
        { "shard_count = 1\njust words\n", "line 2: not a 'key = value' line" },
        /* issue 13: no silent last-wins, no junk echoed, no empty token */
        { "node = a\nshard_count = 8\nnode = b\n", "line 3: node is set twice (first on line 1)" },
        { "[nats]\nuser = x\n[node]\nnats_user = y\n", "line 4: nats_user is set twice (first on line 2)" },
        { "node = a\nzone = \x01\x02\n", "line 2: byte 0x01 is a control byte" },
        { "shard_count = 8\n\xff\xfe = 1\n", "line 2: byte 0xff is not UTF-8" },
        { "node = a..b\n", "line 1: node: node id 'a..b' has an empty subject token at position 1" },
        { "node = .\n", "line 1: node: node id '.' has an empty subject token" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file(cases[i].text);
        aether_settings s;
        aether_settings_defaults(&s);
        aether_err err = { 0 };
        CU_ASSERT_EQUAL(aether_settings_load_file(&s, path, &err), AETHER_EINVAL);
        if (strstr(err.msg, cases[i].want) == NULL || strstr(err.msg, path) == NULL)
            fprintf(stderr, "case %zu: got '%s', want '%s'\n", i, err.msg, cases[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].want));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
        unlink(path);
    }
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    CU_ASSERT_EQUAL(aether_settings_load_file(&s, "/nonexistent/aether.ini", &err), AETHER_ENOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/aether.ini"));
    /* Neither a directory (read as nothing) nor a device that never ends. */
    CU_ASSERT_EQUAL(aether_settings_load_file(&s, "/tmp", &err), AETHER_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "configuration file /tmp: is a directory");
    CU_ASSERT_EQUAL(aether_settings_load_file(&s, "/dev/zero", &err), AETHER_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "configuration file /dev/zero: is not a regular file or a pipe");
    /* Binary junk with a NUL in it: named by line and byte, not echoed. */
    static const char junk[] = "shard_count = 8\nab\0cd = 1\n";
    char path[64];
    snprintf(path, sizeof(path), "/tmp/aether-settings-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, junk, sizeof(junk) - 1) == (ssize_t)(sizeof(junk) - 1));
    close(fd);
    CU_ASSERT_EQUAL(aether_settings_load_file(&s, path, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "line 2: byte 0x00 is a control byte"));
    unlink(path);
    /* UTF-8 in a comment is text. */
    const char *ok = write_file("# caf\xc3\xa9 \xe2\x82\xac\nshard_count = 8\n");
    CU_ASSERT_EQUAL(aether_settings_load_file(&s, ok, &err), AETHER_OK);
    CU_ASSERT_EQUAL(s.node.shard_count, 8);
    unlink(ok);
}

static void test_env_variables(void)
{
    char *env[] = { "PATH=/bin", "AETHER_LEASE_TTL_MS=2000", "AETHER_NATS_TOKEN=tok",
                    "AETHER_NODE=node-e", "AETHER_NATS_SERVER=/usr/sbin/nats-server", NULL };
    const char *ignore[] = { "AETHER_NATS_SERVER", NULL };
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_settings_load_env(&s, env, ignore, &err), AETHER_OK);
    CU_ASSERT_EQUAL(s.node.lease_ttl_ms, 2000);
    CU_ASSERT_EQUAL(s.node.lease_renew_interval_ms, 500);
    CU_ASSERT_STRING_EQUAL(s.nats.token, "tok");
    CU_ASSERT_STRING_EQUAL(s.node.node.str, "node-e");

    /* A misspelt variable is refused, not ignored. */
    char *typo[] = { "AETHER_LEASE_TTL=2000", NULL };
    CU_ASSERT_EQUAL(aether_settings_load_env(&s, typo, ignore, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "AETHER_LEASE_TTL"));
    /* A bad value names the variable; a secret is not echoed. */
    char *bad[] = { "AETHER_SHARD_COUNT=0", NULL };
    CU_ASSERT_EQUAL(aether_settings_load_env(&s, bad, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "environment AETHER_SHARD_COUNT: shard_count"));
    char long_token[AETHER_SETTINGS_STR_MAX + 40] = "AETHER_NATS_TOKEN=";
    memset(long_token + strlen(long_token), 'x', AETHER_SETTINGS_STR_MAX + 10);
    char *secret[] = { long_token, NULL };
    CU_ASSERT_EQUAL(aether_settings_load_env(&s, secret, NULL, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NULL(strstr(err.msg, "xxxx"));
}

static void test_precedence_file_env_flags(void)
{
    const char *path = write_file("shard_count = 100\nreplication = 2\nlease_ttl_ms = 4000\n");
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    CU_ASSERT_EQUAL_FATAL(aether_settings_load_file(&s, path, &err), AETHER_OK);
    unlink(path);
    char *env[] = { "AETHER_SHARD_COUNT=200", "AETHER_REPLICATION=3", NULL };
    CU_ASSERT_EQUAL_FATAL(aether_settings_load_env(&s, env, NULL, &err), AETHER_OK);
    char key[64];
    CU_ASSERT_STRING_EQUAL(aether_settings_flag_key("--shards", key, sizeof(key)), "shard_count");
    CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, key, "300", "flag --shards", &err), AETHER_OK);
    CU_ASSERT_EQUAL(s.node.shard_count, 300); /* flag over env over file */
    CU_ASSERT_EQUAL(s.node.replication, 3);   /* env over file */
    CU_ASSERT_EQUAL(s.node.lease_ttl_ms, 4000); /* file over default */
    CU_ASSERT_STRING_EQUAL(aether_settings_flag_key("--nats", key, sizeof(key)), "nats_urls");
    CU_ASSERT_STRING_EQUAL(aether_settings_flag_key("--lease-renew-interval-ms", key, sizeof(key)),
                           "lease_renew_interval_ms");
    CU_ASSERT_PTR_NULL(aether_settings_flag_key("--no-such-thing", key, sizeof(key)));
}

/* node_retention_ms from the environment and as a flag; refused below
 * failure_timeout_ms or brake_window_ms, with the parameter named. */
static void test_node_retention(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    char *env[] = { "AETHER_NODE_RETENTION_MS=120000", "AETHER_NODE=n1", NULL };
    CU_ASSERT_EQUAL_FATAL(aether_settings_load_env(&s, env, NULL, &err), AETHER_OK);
    CU_ASSERT_EQUAL(s.node.node_retention_ms, 120000);
    char key[64];
    CU_ASSERT_STRING_EQUAL(aether_settings_flag_key("--node-retention-ms", key, sizeof(key)),
                           "node_retention_ms");
    CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, key, "20000", "flag --node-retention-ms", &err),
                          AETHER_OK);
    CU_ASSERT_EQUAL(aether_config_validate(&s.node, &err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, key, "5000", "flag --node-retention-ms", &err),
                          AETHER_OK);
    CU_ASSERT_EQUAL(aether_config_validate(&s.node, &err), AETHER_EINVAL); /* < brake_window_ms */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node_retention_ms"));
    CU_ASSERT_EQUAL(aether_settings_set(&s, key, "0", "flag --node-retention-ms", &err), AETHER_EINVAL);
}

static void test_explicit_renew_survives_ttl_change(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err;
    CU_ASSERT_EQUAL(aether_settings_set(&s, "lease_renew_interval_ms", "100", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "lease_ttl_ms", "5000", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(s.node.lease_renew_interval_ms, 100);
    CU_ASSERT_EQUAL(s.node.lease_safety_margin_ms, 500);
}

static aether_status check_with(const char *key, const char *value, aether_err *err)
{
    aether_settings s;
    aether_settings_defaults(&s);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "node", "node-a", "t", err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_urls", "nats://127.0.0.1:1", "t", err), AETHER_OK);
    CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, key, value, "t", err), AETHER_OK);
    return aether_settings_check(&s, true, err);
}

static void test_unsafe_timings_refused_with_reason(void)
{
    aether_err err;
    CU_ASSERT_EQUAL(check_with("lease_renew_interval_ms", "900", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lease_renew_interval_ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not well below lease_ttl_ms"));
    CU_ASSERT_EQUAL(check_with("failure_timeout_ms", "300", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "failure_timeout_ms"));
    CU_ASSERT_EQUAL(check_with("heartbeat_interval_ms", "600", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "heartbeat"));
    CU_ASSERT_EQUAL(check_with("handoff_timeout_ms", "900", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "handoff_timeout_ms"));
    CU_ASSERT_EQUAL(check_with("mailbox_capacity", "1000", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "power of two"));
    CU_ASSERT_EQUAL(check_with("lease_ttl_ms", "3000", &err), AETHER_OK);
    /* Below JetStream's shortest max age: refused naming lease_ttl_ms (not
     * the renew interval derived from it, as before issue 13). */
    CU_ASSERT_EQUAL(check_with("lease_ttl_ms", "1", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lease_ttl_ms: 1 is below 100 ms"));
    CU_ASSERT_EQUAL(check_with("lease_ttl_ms", "99", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lease_ttl_ms: 99 is below 100 ms"));
    CU_ASSERT_EQUAL(check_with("lease_ttl_ms", "100", &err), AETHER_OK);
    /* A control byte in the address is refused now, not at the first join. */
    CU_ASSERT_EQUAL(check_with("address", "x\ty", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "address: has control byte 0x09 at position 1"));
}

/* allowed_nodes (issue 13 item 2): comma-separated NodeIds naming this
 * node; a bad entry or a list without this node is refused, naming it. */
static void test_allowed_nodes(void)
{
    aether_err err;
    CU_ASSERT_EQUAL(check_with("allowed_nodes", "node-a,node-b", &err), AETHER_OK);
    CU_ASSERT_EQUAL(check_with("allowed_nodes", "node-b,node-c", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "allowed_nodes: does not name this node (node-a)"));
    CU_ASSERT_EQUAL(check_with("allowed_nodes", "node-a,,node-b", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "allowed_nodes: entry"));
    CU_ASSERT_EQUAL(check_with("allowed_nodes", "node-a,a..b", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "allowed_nodes: entry a..b"));
    aether_config c;
    aether_config_defaults(&c);
    aether_node_id a, b, ab;
    CU_ASSERT_FATAL(aether_node_id_from_cstr("node-a", &a, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_node_id_from_cstr("node-b", &b, NULL) == AETHER_OK);
    CU_ASSERT_FATAL(aether_node_id_from_cstr("node-ab", &ab, NULL) == AETHER_OK);
    CU_ASSERT(aether_config_allows(&c, &ab)); /* "": anyone */
    snprintf(c.allowed_nodes, sizeof(c.allowed_nodes), "node-a,node-b");
    CU_ASSERT(aether_config_allows(&c, &a));
    CU_ASSERT(aether_config_allows(&c, &b));
    CU_ASSERT_FALSE(aether_config_allows(&c, &ab)); /* a prefix is not a match */
}

/* nats_urls entries and the files the NATS options name are checked before
 * connecting (issue 13: 'not a url' or port 99999 took the whole connect
 * timeout and exit 1; a missing CA file exit 1). */
static void test_nats_urls_and_files(void)
{
    struct {
        const char *urls, *want; /* want NULL: accepted */
    } cases[] = {
        { "nats://127.0.0.1:4222", NULL },
        { "127.0.0.1", NULL },
        { "tls://nats.example.com:4443/", NULL },
        { "nats://a:1, tls://[::1]:4222 ,b:5", NULL },
        { "nats://user:pw@host:4222", NULL },
        { "not a url", "'not a url' is not a server URL" },
        { "nats://127.0.0.1:99999", "the port '99999' is not an integer 1..65535" },
        { "nats://h:", "the port is empty" },
        { "http://h:80", "the scheme 'http' is not nats or tls" },
        { "nats://[::1", "no closing ']'" },
        { "nats://::1:4222", "more than one ':'" },
        { "nats://:4222", "the host is empty" },
        { "nats://h?x=1:2", "the host has '?'" },
        { "nats://a:1,,b:2", "entry 2 of the list is empty" },
        { "nats://u:secret@h:0", "'h:0' is not a server URL" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aether_settings s;
        aether_settings_defaults(&s);
        aether_err err = { 0 };
        CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, "nats_urls", cases[i].urls, "t", &err), AETHER_OK);
        aether_status st = aether_settings_check(&s, false, &err);
        if (cases[i].want == NULL) {
            if (st != AETHER_OK)
                fprintf(stderr, "case %zu (%s): refused: %s\n", i, cases[i].urls, err.msg);
            CU_ASSERT_EQUAL(st, AETHER_OK);
        } else {
            CU_ASSERT_EQUAL(st, AETHER_EINVAL);
            if (strstr(err.msg, cases[i].want) == NULL)
                fprintf(stderr, "case %zu (%s): got '%s'\n", i, cases[i].urls, err.msg);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].want));
            CU_ASSERT_PTR_NULL(strstr(err.msg, "secret")); /* credentials never echoed */
        }
    }
    const char *keys[] = { "nats_creds", "nats_tls_ca" };
    for (size_t i = 0; i < 2; i++) {
        aether_settings s;
        aether_settings_defaults(&s);
        aether_err err = { 0 };
        CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, keys[i], "/nonexistent/x.pem", "t", &err), AETHER_OK);
        CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, keys[i]));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/x.pem: No such file or directory"));
        CU_ASSERT_EQUAL_FATAL(aether_settings_set(&s, keys[i], "/tmp", "t", &err), AETHER_OK);
        CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    }
}

/* Junk given as a value is quoted with its control bytes escaped, never raw
 * (issue 13: binary junk was echoed to the terminal). */
static void test_junk_never_echoed_raw(void)
{
    char vis[16];
    CU_ASSERT_STRING_EQUAL(aether_settings_printable("a\x1b[1m\xff", vis, sizeof(vis)), "a\\x1b[1m\\xff");
    /* truncated, never in the middle of an escape */
    CU_ASSERT_STRING_EQUAL(aether_settings_printable("\x01\x02\x03\x04", vis, 9), "\\x01\\x02");
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    const char *keys[] = { "shard_count", "nats_tls", "log_level", "bogus\x1b" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        CU_ASSERT_EQUAL(aether_settings_set(&s, keys[i], "\x1b[31mX\x07", "flag", &err), AETHER_EINVAL);
        for (const char *c = err.msg; *c != '\0'; c++)
            CU_ASSERT_TRUE((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown parameter 'bogus\\x1b'"));
    CU_ASSERT_EQUAL(aether_settings_set(&s, "metrics_addr", "\x1b:1", "flag", &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "has byte 0x1b"));
}

static void test_nats_auth_cross_checks(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err;
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_user", "u", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_token", "x", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "choose one"));
    aether_settings_defaults(&s);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_password", "p", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "without nats_user"));
    aether_settings_defaults(&s);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_tls_key", "/k.pem", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "needs both"));
    aether_settings_defaults(&s);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_kv_replicas", "2", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_check(&s, false, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nats_kv_replicas"));
}

static void test_describe_is_a_valid_file_without_secrets(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err;
    CU_ASSERT_EQUAL(aether_settings_set(&s, "node", "node-d", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "nats_token", "hunter2", "t", &err), AETHER_OK);
    CU_ASSERT_EQUAL(aether_settings_set(&s, "shard_count", "77", "t", &err), AETHER_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    aether_settings_describe(&s, f);
    fclose(f);
    CU_ASSERT_PTR_NULL(strstr(buf, "hunter2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "shard_count = 77\n"));
    /* Read back: the same values (the token is commented out). */
    const char *path = write_file(buf);
    free(buf);
    aether_settings r;
    aether_settings_defaults(&r);
    CU_ASSERT_EQUAL(aether_settings_load_file(&r, path, &err), AETHER_OK);
    unlink(path);
    CU_ASSERT_EQUAL(r.node.shard_count, 77);
    CU_ASSERT_STRING_EQUAL(r.node.node.str, "node-d");
    CU_ASSERT_STRING_EQUAL(r.nats.token, "");
    /* Every parameter has help. */
    const char *key, *kind, *help;
    size_t n = 0;
    while (aether_settings_param(n, &key, &kind, &help)) {
        CU_ASSERT_TRUE(aether_settings_known(key));
        CU_ASSERT_TRUE(help[0] != '\0');
        n++;
    }
    CU_ASSERT_TRUE(n >= 30);
}

/* metrics_addr: HOST:PORT checked where it is read (so aether-node refuses
 * it with the configuration, exit 2), from every source; "" is off. */
static void test_metrics_addr(void)
{
    aether_settings s;
    aether_settings_defaults(&s);
    aether_err err = { 0 };
    CU_ASSERT_STRING_EQUAL(s.metrics_addr, "");
    const char *good[] = { "127.0.0.1:9100", "0.0.0.0:1", "[::1]:65535", "localhost:9100" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CU_ASSERT_EQUAL(aether_settings_set(&s, "metrics_addr", good[i], "flag --metrics-addr", &err), AETHER_OK);
        CU_ASSERT_STRING_EQUAL(s.metrics_addr, good[i]);
    }
    const char *bad[] = { "localhost", "9100", ":9100", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
                          "::1:9100", "[::1]9100", "1.2.3.4:99999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        CU_ASSERT_EQUAL(aether_settings_set(&s, "metrics_addr", bad[i], "flag --metrics-addr", &err),
                        AETHER_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "flag --metrics-addr: metrics_addr: "));
    }
    CU_ASSERT_STRING_EQUAL(s.metrics_addr, "localhost:9100"); /* a refusal changes nothing */
    char *env[] = { "AETHER_METRICS_ADDR=127.0.0.1:9200", "AETHER_LOG_FORMAT=json", NULL };
    CU_ASSERT_EQUAL(aether_settings_load_env(&s, env, NULL, &err), AETHER_OK);
    CU_ASSERT_STRING_EQUAL(s.metrics_addr, "127.0.0.1:9200");
    CU_ASSERT_STRING_EQUAL(s.log_format, "json");
    char *env_bad[] = { "AETHER_LOG_FORMAT=xml", NULL };
    CU_ASSERT_EQUAL(aether_settings_load_env(&s, env_bad, NULL, &err), AETHER_EINVAL);
    char flag[32];
    CU_ASSERT_STRING_EQUAL(aether_settings_flag_key("--metrics-addr", flag, sizeof(flag)), "metrics_addr");
}

static CU_TestInfo tests[] = {
    AETHER_TEST(defaults_match_design),
    AETHER_TEST(file_sections_and_comments),
    AETHER_TEST(file_errors_name_the_line),
    AETHER_TEST(env_variables),
    AETHER_TEST(precedence_file_env_flags),
    AETHER_TEST(explicit_renew_survives_ttl_change),
    AETHER_TEST(node_retention),
    AETHER_TEST(unsafe_timings_refused_with_reason),
    AETHER_TEST(allowed_nodes),
    AETHER_TEST(nats_urls_and_files),
    AETHER_TEST(junk_never_echoed_raw),
    AETHER_TEST(nats_auth_cross_checks),
    AETHER_TEST(describe_is_a_valid_file_without_secrets),
    AETHER_TEST(metrics_addr),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("settings", NULL, NULL, tests);
