/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_log.c: levelled logging, line formats, sink, clock and rate limit
 * (tests layer).
 *
 * Tests capture lines through a sink and log simulated time, so expected lines
 * are exact. The stderr test redirects fd 2 to a temporary file and has four
 * threads log at once, checking that every line arrives whole.
 *
 * AETHER_TEST_LABELS: concurrency
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_test.h"
#include "log.h"

#define CAP_LINES 16
#define CAP_LINE_MAX 4096

typedef struct capture {
    int n;
    aether_log_level levels[CAP_LINES];
    int lens[CAP_LINES];
    char lines[CAP_LINES][CAP_LINE_MAX];
} capture;

static capture cap;
static aether_sim_clock sim;

/* 2026-11-28T01:02:03.456Z */
#define WALL_MS UINT64_C(1795827723456)

static void capture_sink(void *arg, aether_log_level level, const char *line, int len)
{
    capture *c = arg;
    CU_ASSERT_EQUAL_FATAL((int)strlen(line), len); /* NUL-terminated at len */
    if (c->n < CAP_LINES) {
        c->levels[c->n] = level;
        c->lens[c->n] = len;
        snprintf(c->lines[c->n], CAP_LINE_MAX, "%s", line);
    }
    c->n++;
}

static int setup(void)
{
    memset(&cap, 0, sizeof(cap));
    aether_sim_clock_init(&sim, 0, WALL_MS);
    aether_log_set_clock(&sim.base);
    aether_log_set_sink(capture_sink, &cap);
    aether_log_set_format(AETHER_LOG_TEXT);
    aether_log_set_level(AETHER_LOG_DEBUG);
    return 0;
}

static void teardown(void)
{
    aether_log_set_sink(NULL, NULL);
    aether_log_set_clock(NULL);
    aether_log_set_format(AETHER_LOG_TEXT);
    aether_log_set_level(AETHER_LOG_INFO);
}

static int side_effects;
static int bump(void) { return ++side_effects; }

static void test_level_filtering(void)
{
    setup();
    aether_log_set_level(AETHER_LOG_WARN);
    side_effects = 0;
    AETHER_DEBUG("t", "debug %d", bump());
    AETHER_INFO("t", "info %d", bump());
    AETHER_WARN("t", "warn");
    AETHER_ERROR("t", "error");
    /* Disabled levels do not even evaluate their arguments. */
    CU_ASSERT_EQUAL(side_effects, 0);
    CU_ASSERT_EQUAL(cap.n, 2);
    CU_ASSERT_EQUAL(cap.levels[0], AETHER_LOG_WARN);
    CU_ASSERT_EQUAL(cap.levels[1], AETHER_LOG_ERROR);
    CU_ASSERT_FALSE(aether_log_enabled(AETHER_LOG_INFO));
    CU_ASSERT_TRUE(aether_log_enabled(AETHER_LOG_ERROR));

    /* Direct calls are filtered too. */
    aether_log_write(AETHER_LOG_INFO, "t", "direct info");
    CU_ASSERT_EQUAL(cap.n, 2);

    aether_log_set_level(AETHER_LOG_OFF);
    AETHER_ERROR("t", "nothing");
    CU_ASSERT_EQUAL(cap.n, 2);

    aether_log_set_level(AETHER_LOG_DEBUG);
    AETHER_DEBUG("t", "debug %d", bump());
    CU_ASSERT_EQUAL(side_effects, 1);
    CU_ASSERT_EQUAL(cap.n, 3);
    teardown();
}

static void test_level_parse(void)
{
    aether_log_level l = AETHER_LOG_INFO;
    CU_ASSERT_TRUE(aether_log_level_parse("debug", &l));
    CU_ASSERT_EQUAL(l, AETHER_LOG_DEBUG);
    CU_ASSERT_TRUE(aether_log_level_parse("WARN", &l));
    CU_ASSERT_EQUAL(l, AETHER_LOG_WARN);
    CU_ASSERT_TRUE(aether_log_level_parse("off", &l));
    CU_ASSERT_EQUAL(l, AETHER_LOG_OFF);
    CU_ASSERT_FALSE(aether_log_level_parse("verbose", &l));
    CU_ASSERT_FALSE(aether_log_level_parse("", &l));
    CU_ASSERT_FALSE(aether_log_level_parse(NULL, &l));
    CU_ASSERT_EQUAL(l, AETHER_LOG_OFF); /* untouched on failure */
    CU_ASSERT_STRING_EQUAL(aether_log_level_name(AETHER_LOG_ERROR), "error");
    CU_ASSERT_STRING_EQUAL(aether_log_level_name(AETHER_LOG_INFO), "info");
}

static void test_text_format(void)
{
    setup();
    AETHER_WARN("mailbox", "actor '%s' mailbox full (cap %u)", "cluster", 4096u);
    AETHER_ERROR("decode", "bad\nline\t\x01" "end");
    AETHER_INFO("m", "%s", "");
    CU_ASSERT_EQUAL_FATAL(cap.n, 3);
    CU_ASSERT_STRING_EQUAL(cap.lines[0],
        "2026-11-28T01:02:03.456Z WARN  mailbox: actor 'cluster' mailbox full (cap 4096)");
    CU_ASSERT_EQUAL(cap.lens[0], (int)strlen(cap.lines[0]));
    /* A control character can never start a new line. */
    CU_ASSERT_STRING_EQUAL(cap.lines[1],
        "2026-11-28T01:02:03.456Z ERROR decode: bad\\nline\\t\\x01end");
    CU_ASSERT_STRING_EQUAL(cap.lines[2], "2026-11-28T01:02:03.456Z INFO  m: ");
    teardown();
}

static void test_json_format_escaping(void)
{
    setup();
    aether_log_set_format(AETHER_LOG_JSON);
    AETHER_WARN("mail\"box", "q\"b\\s/n\nt\tc\x01 caf\xc3\xa9 bad\xff!");
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_STRING_EQUAL(cap.lines[0],
        "{\"ts\":\"2026-11-28T01:02:03.456Z\",\"level\":\"warn\",\"module\":\"mail\\\"box\","
        "\"msg\":\"q\\\"b\\\\s/n\\nt\\tc\\u0001 caf\xc3\xa9 bad\\ufffd!\"}");

    /* And a JSON parser agrees on every field. */
    json_error_t jerr;
    json_t *j = json_loads(cap.lines[0], 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "level")), "warn");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "module")), "mail\"box");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "msg")),
                           "q\"b\\s/n\nt\tc\x01 caf\xc3\xa9 bad\xef\xbf\xbd!");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "ts")),
                           "2026-11-28T01:02:03.456Z");
    CU_ASSERT_EQUAL(json_object_size(j), 4);
    json_decref(j);
    teardown();
}

/* Node, term and subject: from the thread's context, else the process-wide
 * node and noted term; left out when unknown; escaped in both formats. */
static void test_context_fields(void)
{
    setup();
    uint64_t term = 7;
    aether_log_context ctx = { .node = "n\"1\n", .term = &term };
    CU_ASSERT_PTR_NULL(aether_log_thread_context_set(&ctx));
    aether_log_thread_subject_set("event", "NodeJoined");
    AETHER_INFO("member", "admitted");
    term = 8;
    aether_log_thread_subject_set(NULL, NULL);
    AETHER_INFO("member", "no subject");
    CU_ASSERT_PTR_EQUAL(aether_log_thread_context_set(NULL), &ctx);
    aether_log_set_node("node-b");
    aether_log_note_term(5);
    aether_log_note_term(3); /* only grows */
    aether_log_thread_subject_set("command", "JoinCluster");
    AETHER_WARN("member", "process node");
    aether_log_thread_subject_set(NULL, NULL);
    aether_log_set_node(NULL);
    AETHER_INFO("member", "none");
    CU_ASSERT_EQUAL_FATAL(cap.n, 4);
    CU_ASSERT_STRING_EQUAL(cap.lines[0],
        "2026-11-28T01:02:03.456Z INFO  member node=n\"1\\n term=7 event=NodeJoined: admitted");
    CU_ASSERT_STRING_EQUAL(cap.lines[1], "2026-11-28T01:02:03.456Z INFO  member node=n\"1\\n term=8: no subject");
    CU_ASSERT_STRING_EQUAL(cap.lines[2],
        "2026-11-28T01:02:03.456Z WARN  member node=node-b term=5 command=JoinCluster: process node");
    CU_ASSERT_STRING_EQUAL(cap.lines[3], "2026-11-28T01:02:03.456Z INFO  member: none");

    cap.n = 0;
    aether_log_set_format(AETHER_LOG_JSON);
    (void)aether_log_thread_context_set(&ctx);
    aether_log_thread_subject_set("event", "LeaseRenewed");
    AETHER_ERROR("member", "say \"hi\"\nnext\rline\x02 end\\");
    aether_log_thread_subject_set(NULL, NULL);
    (void)aether_log_thread_context_set(NULL);
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_STRING_EQUAL(cap.lines[0],
        "{\"ts\":\"2026-11-28T01:02:03.456Z\",\"level\":\"error\",\"module\":\"member\","
        "\"node\":\"n\\\"1\\n\",\"term\":8,\"event\":\"LeaseRenewed\","
        "\"msg\":\"say \\\"hi\\\"\\nnext\\rline\\u0002 end\\\\\"}");
    json_error_t jerr;
    json_t *j = json_loads(cap.lines[0], 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "node")), "n\"1\n");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "term")), 8);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")), "LeaseRenewed");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "msg")), "say \"hi\"\nnext\rline\x02 end\\");
    CU_ASSERT_EQUAL(json_object_size(j), 7);
    json_decref(j);
    teardown();
}

/* Every line is one valid JSON object, whatever bytes the message, the node
 * and the module carry: every byte value 1..255 in turn. */
static void test_json_lines_always_parse(void)
{
    setup();
    aether_log_set_format(AETHER_LOG_JSON);
    uint64_t term = 1;
    char node[8];
    aether_log_context ctx = { .node = node, .term = &term };
    (void)aether_log_thread_context_set(&ctx);
    for (int c = 1; c < 256; c++) {
        cap.n = 0;
        char msg[16], mod[4] = { 'm', (char)c, 'x', 0 };
        snprintf(node, sizeof(node), "n%c1", c);
        snprintf(msg, sizeof(msg), "a%cb%c", c, c);
        aether_log_thread_subject_set("command", "Join\"Cluster");
        AETHER_INFO(mod, "%s", msg);
        CU_ASSERT_EQUAL_FATAL(cap.n, 1);
        CU_ASSERT_PTR_NULL(strchr(cap.lines[0], '\n'));
        json_error_t jerr;
        json_t *j = json_loads(cap.lines[0], 0, &jerr);
        CU_ASSERT_PTR_NOT_NULL(j);
        if (j == NULL) {
            fprintf(stderr, "byte %d: %s: %s\n", c, cap.lines[0], jerr.text);
            continue;
        }
        CU_ASSERT_EQUAL(json_object_size(j), 7);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "command")), "Join\"Cluster");
        json_decref(j);
    }
    aether_log_thread_subject_set(NULL, NULL);
    (void)aether_log_thread_context_set(NULL);
    teardown();
}

static void test_long_message_truncated_valid(void)
{
    setup();
    /* 3000 two-byte characters: far past the line bound, and a cut in the
     * middle of a character would break UTF-8. */
    size_t n = 3000;
    char *big = malloc(n * 2 + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (size_t i = 0; i < n; i++) {
        big[2 * i] = '\xc3';
        big[2 * i + 1] = '\xa9';
    }
    big[2 * n] = '\0';

    aether_log_set_format(AETHER_LOG_JSON);
    AETHER_INFO("big", "%s", big);
    aether_log_set_format(AETHER_LOG_TEXT);
    AETHER_INFO("big", "%s\"\"\"", big);
    CU_ASSERT_EQUAL_FATAL(cap.n, 2);
    CU_ASSERT_TRUE(cap.lens[0] < 4096 && cap.lens[1] < 4096);
    json_error_t jerr;
    json_t *j = json_loads(cap.lines[0], 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    size_t ml = strlen(msg);
    CU_ASSERT_TRUE(ml > 1000);
    CU_ASSERT_STRING_EQUAL(msg + ml - 3, "...");
    CU_ASSERT_EQUAL((ml - 3) % 2, 0); /* whole characters only */
    json_decref(j);
    size_t tl = (size_t)cap.lens[1];
    CU_ASSERT_STRING_EQUAL(cap.lines[1] + tl - 3, "...");
    free(big);

    /* A message that fits but whose escapes do not: cut at a whole escape,
     * still one valid JSON object. */
    char ctrl[1001];
    memset(ctrl, '\x01', 1000);
    ctrl[1000] = '\0';
    aether_log_set_format(AETHER_LOG_JSON);
    cap.n = 0;
    AETHER_INFO("ctrl", "%s", ctrl);
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_TRUE(cap.lens[0] < 4096);
    j = json_loads(cap.lines[0], 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    msg = json_string_value(json_object_get(j, "msg"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    ml = strlen(msg);
    CU_ASSERT_TRUE(ml > 100 && ml < 1000);
    CU_ASSERT_STRING_EQUAL(msg + ml - 3, "...");
    CU_ASSERT_EQUAL(strspn(msg, "\x01"), ml - 3);
    json_decref(j);
    teardown();
}

static void test_sim_clock_timestamps(void)
{
    static const struct {
        uint64_t wall_ms;
        const char *ts;
    } cases[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { UINT64_C(1709251199999), "2024-02-29T23:59:59.999Z" },
        { UINT64_C(951868800000), "2000-03-01T00:00:00.000Z" },
        { UINT64_C(4133937600007), "2100-12-31T12:00:00.007Z" },
    };
    setup();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aether_sim_clock_init(&sim, 0, cases[i].wall_ms);
        cap.n = 0;
        AETHER_INFO("clk", "x");
        CU_ASSERT_EQUAL_FATAL(cap.n, 1);
        CU_ASSERT_NSTRING_EQUAL(cap.lines[0], cases[i].ts, 24);
    }
    /* Simulated time moves the timestamp, and only it does. */
    aether_sim_clock_init(&sim, 0, WALL_MS);
    aether_sim_clock_advance_ns(&sim, 1544 * AETHER_NS_PER_MS);
    cap.n = 0;
    AETHER_INFO("clk", "x");
    CU_ASSERT_STRING_EQUAL(cap.lines[0], "2026-11-28T01:02:05.000Z INFO  clk: x");

    /* Back on the real clock, the time is the real one, not the simulated. */
    aether_sim_clock_init(&sim, 0, 0);
    aether_log_set_clock(NULL);
    cap.n = 0;
    AETHER_INFO("clk", "x");
    CU_ASSERT_TRUE(strncmp(cap.lines[0], "1970", 4) != 0);
    CU_ASSERT_EQUAL(cap.lines[0][4], '-');
    CU_ASSERT_EQUAL(cap.lines[0][23], 'Z');
    teardown();
}

static void test_sink_restore(void)
{
    setup();
    AETHER_INFO("s", "one");
    CU_ASSERT_EQUAL(cap.n, 1);
    capture other;
    memset(&other, 0, sizeof(other));
    aether_log_set_sink(capture_sink, &other);
    AETHER_INFO("s", "two");
    CU_ASSERT_EQUAL(cap.n, 1);
    CU_ASSERT_EQUAL(other.n, 1);
    CU_ASSERT_STRING_EQUAL(other.lines[0], "2026-11-28T01:02:03.456Z INFO  s: two");
    teardown(); /* sink back to stderr */
    AETHER_INFO("s", "to stderr");
    CU_ASSERT_EQUAL(other.n, 1);
    CU_ASSERT_EQUAL(cap.n, 1);
}

static void test_init_from_env(void)
{
    setup();
    setenv("AETHER_LOG_LEVEL", "error", 1);
    setenv("AETHER_LOG_FORMAT", "json", 1);
    aether_log_init_from_env();
    CU_ASSERT_EQUAL(aether_log_get_level(), AETHER_LOG_ERROR);
    AETHER_ERROR("env", "e");
    CU_ASSERT_EQUAL_FATAL(cap.n, 1);
    CU_ASSERT_EQUAL(cap.lines[0][0], '{');

    /* An unknown value keeps the setting and says so (at WARN, which the
     * error level filters; lower it to see the complaint). */
    aether_log_set_level(AETHER_LOG_WARN);
    setenv("AETHER_LOG_LEVEL", "loud", 1);
    setenv("AETHER_LOG_FORMAT", "xml", 1);
    cap.n = 0;
    aether_log_init_from_env();
    CU_ASSERT_EQUAL(aether_log_get_level(), AETHER_LOG_WARN);
    CU_ASSERT_EQUAL_FATAL(cap.n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.lines[0], "AETHER_LOG_LEVEL='loud'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cap.lines[1], "AETHER_LOG_FORMAT='xml'"));
    CU_ASSERT_EQUAL(cap.lines[0][0], '{'); /* format kept: still JSON */

    unsetenv("AETHER_LOG_LEVEL");
    unsetenv("AETHER_LOG_FORMAT");
    teardown();
}

static void test_ratelimit_window(void)
{
    aether_log_ratelimit rl;
    uint64_t sup = 99;
    aether_log_ratelimit_init(&rl, AETHER_NS_PER_S);

    CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, 0, &sup)); /* first call, even at t=0 */
    CU_ASSERT_EQUAL(sup, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FALSE(aether_log_ratelimit_allow(&rl, 500 * AETHER_NS_PER_MS, &sup));
    CU_ASSERT_FALSE(aether_log_ratelimit_allow(&rl, AETHER_NS_PER_S - 1, NULL));
    CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, AETHER_NS_PER_S, &sup));
    CU_ASSERT_EQUAL(sup, 4);
    CU_ASSERT_FALSE(aether_log_ratelimit_allow(&rl, AETHER_NS_PER_S + 1, &sup));
    /* The window restarts at the allowed call, not on a fixed grid. */
    CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, 2 * AETHER_NS_PER_S + 7, &sup));
    CU_ASSERT_EQUAL(sup, 1);
    CU_ASSERT_FALSE(aether_log_ratelimit_allow(&rl, 3 * AETHER_NS_PER_S, &sup));
    CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, 3 * AETHER_NS_PER_S + 7, &sup));
    CU_ASSERT_EQUAL(sup, 1);

    /* A zero window limits nothing. */
    aether_log_ratelimit_init(&rl, 0);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, 42, &sup));
        CU_ASSERT_EQUAL(sup, 0);
    }
}

#define RL_THREADS 4
#define RL_CALLS 20000

typedef struct rl_arg {
    aether_log_ratelimit *rl;
    uint64_t allowed;
} rl_arg;

static void *rl_worker(void *p)
{
    rl_arg *a = p;
    for (int i = 0; i < RL_CALLS; i++)
        if (aether_log_ratelimit_allow(a->rl, 1000 + (uint64_t)(i % 7), NULL))
            a->allowed++;
    return NULL;
}

static void test_ratelimit_concurrent(void)
{
    aether_log_ratelimit rl;
    aether_log_ratelimit_init(&rl, AETHER_NS_PER_S);
    pthread_t th[RL_THREADS];
    rl_arg args[RL_THREADS];
    for (int i = 0; i < RL_THREADS; i++) {
        args[i] = (rl_arg){ &rl, 0 };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, rl_worker, &args[i]), 0);
    }
    uint64_t allowed = 0;
    for (int i = 0; i < RL_THREADS; i++) {
        pthread_join(th[i], NULL);
        allowed += args[i].allowed;
    }
    /* One window: exactly one caller in all threads was allowed, and the
     * next window reports every other call as suppressed. */
    CU_ASSERT_EQUAL(allowed, 1);
    uint64_t sup = 0;
    CU_ASSERT_TRUE(aether_log_ratelimit_allow(&rl, 1000 + AETHER_NS_PER_S + 10, &sup));
    CU_ASSERT_EQUAL(sup, (uint64_t)RL_THREADS * RL_CALLS - 1);
}

#define ST_THREADS 4
#define ST_LINES 500

static void *stderr_worker(void *p)
{
    long id = (long)p;
    for (int i = 0; i < ST_LINES; i++)
        AETHER_INFO("thread", "t=%ld i=%d %s", id, i,
                    "padding padding padding padding padding padding padding padding");
    return NULL;
}

static void test_stderr_lines_whole_concurrent(void)
{
    char path[] = "/tmp/aether_test_log_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(saved >= 0);
    CU_ASSERT_FATAL(dup2(fd, STDERR_FILENO) == STDERR_FILENO);

    aether_log_set_sink(NULL, NULL);
    aether_log_set_clock(NULL);
    aether_log_set_level(AETHER_LOG_INFO);
    aether_log_set_format(AETHER_LOG_TEXT);
    pthread_t th[ST_THREADS];
    for (long i = 0; i < ST_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, stderr_worker, (void *)i), 0);
    for (int i = 0; i < ST_THREADS; i++)
        pthread_join(th[i], NULL);

    dup2(saved, STDERR_FILENO);
    close(saved);

    FILE *f = fdopen(fd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    rewind(f);
    char line[512];
    int next[ST_THREADS] = { 0 };
    int total = 0, bad = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        long id;
        int i;
        const char *body = strstr(line, " INFO  thread: t=");
        if (body == NULL || line[23] != 'Z' ||
            sscanf(body, " INFO  thread: t=%ld i=%d", &id, &i) != 2 || id < 0 ||
            id >= ST_THREADS || line[strlen(line) - 1] != '\n' ||
            strstr(line, "padding\n") == NULL || strstr(body + 1, " INFO ") != NULL) {
            bad++;
            continue;
        }
        /* Each thread's lines come out whole and in its own order. */
        if (i != next[id])
            bad++;
        next[id] = i + 1;
        total++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(total, ST_THREADS * ST_LINES);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(level_filtering),
    AETHER_TEST(level_parse),
    AETHER_TEST(text_format),
    AETHER_TEST(json_format_escaping),
    AETHER_TEST(context_fields),
    AETHER_TEST(json_lines_always_parse),
    AETHER_TEST(long_message_truncated_valid),
    AETHER_TEST(sim_clock_timestamps),
    AETHER_TEST(sink_restore),
    AETHER_TEST(init_from_env),
    AETHER_TEST(ratelimit_window),
    AETHER_TEST(ratelimit_concurrent),
    AETHER_TEST(stderr_lines_whole_concurrent),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("log", NULL, NULL, tests);
