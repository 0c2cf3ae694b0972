/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c: levelled logging to stderr or an injected sink, in text or JSON
 * lines (engine layer).
 *
 * Threading: any thread. Every call formats its whole line in a stack buffer
 * and hands it over with one write(2) (or one sink call), so lines from
 * different threads never interleave; no lock is taken on the logging path.
 *
 * DESIGN
 * Settings. Level, format and clock are single words in relaxed atomics: a
 * setting changed while other threads log takes effect "soon", with no order
 * promised against their lines (log.h says so). The sink is two words (function
 * and argument) that must be seen together, so it sits behind a mutex: it is
 * set at start-up, and a line already costs a write(2).
 *
 * Lines. A line is at most LOG_LINE_MAX bytes; a longer message is cut at a
 * UTF-8 character boundary and marked with "...". Control characters are
 * escaped in both formats, so one call is always exactly one line and a
 * hostile string (a node id off the wire) cannot forge extra lines. JSON
 * strings escape '"', '\\' and control characters, and bytes that are not
 * valid UTF-8 become U+FFFD, so every JSON line parses.
 *
 * Context. The thread's context and subject are thread-locals set by the
 * actor runner around its handlers (or by any thread for itself), so
 * reading them costs nothing shared; the term behind a context is read
 * once per line with a relaxed load (a line may name a term a moment old).
 * The process-wide node shares the sink's mutex: both are set at start-up
 * and read once per line.
 *
 * Timestamps come from aether_clock_wall_ms of the log clock and are turned
 * into civil UTC dates by arithmetic (no gmtime_r, which takes glibc's tz
 * lock), so a simulated clock logs simulated, reproducible time.
 *
 * Rate limit. window_start_ns moves forward by CAS: the caller that wins the
 * CAS for a new window is the one allowed to log, and it takes the suppressed
 * count with an exchange. Increments racing that exchange land in the next
 * window's count: none is lost, none is counted twice.
 */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "assertion.h"

#define LOG_LINE_MAX 2048u   /* bytes of one line including the newline */
#define LOG_MSG_MAX 1024u    /* bytes of the formatted message before escaping */
#define LOG_MODULE_MAX 64u   /* bytes of the module name that are kept */
#define LOG_TS_LEN 24u       /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define LOG_ELLIPSIS "..."
#define LOG_NODE_MAX 64u     /* bytes of a node id that are kept */

/* One write(2) of at most PIPE_BUF bytes to a pipe is atomic; to a file or a
 * tty the kernel does not split a single small write between writers. */
AETHER_STATIC_ASSERT(LOG_LINE_MAX <= PIPE_BUF, "a line fits one atomic pipe write");
AETHER_STATIC_ASSERT(LOG_MSG_MAX < LOG_LINE_MAX, "the message fits a line before escaping");

/* ---- Settings ---------------------------------------------------------- */

static int log_level = AETHER_LOG_INFO;          /* atomic, relaxed */
static int log_format = AETHER_LOG_TEXT;         /* atomic, relaxed */
static aether_clock *log_clock;                  /* atomic, relaxed; NULL = real clock */
static pthread_mutex_t log_sink_mu = PTHREAD_MUTEX_INITIALIZER;
static aether_log_sink_fn log_sink_fn;           /* under log_sink_mu */
static void *log_sink_arg;                       /* under log_sink_mu */
static char log_node[LOG_NODE_MAX + 1];          /* under log_sink_mu; "" = none */
static uint64_t log_term;                        /* atomic, relaxed; max of the noted terms */
static __thread const aether_log_context *tls_ctx;   /* this thread's; NULL = none */
static __thread const char *tls_subject_field;       /* "event" | "command" | NULL */
static __thread const char *tls_subject_name;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };
static const char *const level_tags[] = { "DEBUG", "INFO", "WARN", "ERROR", "OFF" };
AETHER_STATIC_ASSERT(sizeof(level_names) / sizeof(level_names[0]) == AETHER_LOG_OFF + 1,
                     "every level has a name");

static bool level_is_valid(aether_log_level level)
{
    return (unsigned)level <= (unsigned)AETHER_LOG_OFF;
}

void aether_log_set_level(aether_log_level level)
{
    AETHER_ASSERT(level_is_valid(level));
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

aether_log_level aether_log_get_level(void)
{
    return (aether_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

bool aether_log_level_parse(const char *s, aether_log_level *out)
{
    AETHER_ASSERT(out != NULL);
    if (s == NULL)
        return false;
    for (int i = 0; i <= AETHER_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (aether_log_level)i;
            return true;
        }
    }
    return false;
}

const char *aether_log_level_name(aether_log_level level)
{
    return level_is_valid(level) ? level_names[level] : "?";
}

void aether_log_set_format(aether_log_format format)
{
    AETHER_ASSERT(format == AETHER_LOG_TEXT || format == AETHER_LOG_JSON);
    __atomic_store_n(&log_format, (int)format, __ATOMIC_RELAXED);
}

void aether_log_set_sink(aether_log_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&log_sink_mu);
    log_sink_fn = fn;
    log_sink_arg = fn != NULL ? arg : NULL;
    pthread_mutex_unlock(&log_sink_mu);
}

/* The sink pair changes only at start-up; a mutex keeps fn and arg matched
 * (logging is not a hot path: a line costs a write(2) anyway). node, when
 * not NULL, receives the process-wide node. */
static void sink_load(aether_log_sink_fn *fn, void **arg, char node[LOG_NODE_MAX + 1])
{
    pthread_mutex_lock(&log_sink_mu);
    *fn = log_sink_fn;
    *arg = log_sink_arg;
    if (node != NULL)
        memcpy(node, log_node, LOG_NODE_MAX + 1);
    pthread_mutex_unlock(&log_sink_mu);
}

const aether_log_context *aether_log_thread_context_set(const aether_log_context *ctx)
{
    const aether_log_context *prev = tls_ctx;
    tls_ctx = ctx;
    return prev;
}

void aether_log_thread_subject_set(const char *field, const char *name)
{
    tls_subject_field = field != NULL && name != NULL ? field : NULL;
    tls_subject_name = tls_subject_field != NULL ? name : NULL;
}

void aether_log_set_node(const char *node)
{
    pthread_mutex_lock(&log_sink_mu);
    snprintf(log_node, sizeof(log_node), "%s", node != NULL ? node : "");
    __atomic_store_n(&log_term, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&log_sink_mu);
}

void aether_log_note_term(uint64_t term)
{
    uint64_t cur = __atomic_load_n(&log_term, __ATOMIC_RELAXED);
    while (term > cur &&
           !__atomic_compare_exchange_n(&log_term, &cur, term, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void aether_log_set_clock(aether_clock *clock)
{
    __atomic_store_n(&log_clock, clock, __ATOMIC_RELAXED);
}

void aether_log_init_from_env(void)
{
    const char *lv = getenv("AETHER_LOG_LEVEL");
    const char *fmt = getenv("AETHER_LOG_FORMAT");
    bool fmt_bad = false;

    /* Format first, so a complaint about the level comes out in it. */
    if (fmt != NULL && *fmt != '\0') {
        if (strcasecmp(fmt, "text") == 0)
            aether_log_set_format(AETHER_LOG_TEXT);
        else if (strcasecmp(fmt, "json") == 0)
            aether_log_set_format(AETHER_LOG_JSON);
        else
            fmt_bad = true;
    }
    if (lv != NULL && *lv != '\0') {
        aether_log_level level;
        if (aether_log_level_parse(lv, &level))
            aether_log_set_level(level);
        else
            AETHER_WARN("log", "AETHER_LOG_LEVEL='%s' is not debug|info|warn|error|off; keeping %s",
                        lv, aether_log_level_name(aether_log_get_level()));
    }
    if (fmt_bad)
        AETHER_WARN("log", "AETHER_LOG_FORMAT='%s' is not text|json; keeping the current format",
                    fmt);
}

/* ---- Line building ----------------------------------------------------- */

/* A bounded output buffer. `cap` excludes room reserved for the line's tail
 * (closing quote and brace, newline), so appends never eat into it. */
typedef struct line_buf {
    char *p;
    size_t len;
    size_t cap;
} line_buf;

static bool lb_put(line_buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap)
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool lb_puts(line_buf *b, const char *s) { return lb_put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Appends s[0..n) escaped for a JSON string (json) or for a text line (!json).
 * Stops before the first character that does not fit whole; returns false if
 * it had to stop. */
static bool lb_put_escaped(line_buf *b, const char *s, size_t n, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = u[i];
        char esc[8];
        const char *out = esc;
        size_t out_len;
        size_t step = 1;

        if (c == '"' && json) {
            out = "\\\"", out_len = 2;
        } else if (c == '\\' && json) {
            out = "\\\\", out_len = 2;
        } else if (c == '\n') {
            out = "\\n", out_len = 2;
        } else if (c == '\r') {
            out = "\\r", out_len = 2;
        } else if (c == '\t') {
            out = "\\t", out_len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            out_len = (size_t)snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", c);
        } else if (c < 0x80) {
            out = (const char *)&u[i], out_len = 1;
        } else {
            step = utf8_seq_len(&u[i], n - i);
            if (step > 0) {
                out = (const char *)&u[i], out_len = step;
            } else if (json) {
                out = "\\ufffd", out_len = 6, step = 1;
            } else {
                out_len = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c), step = 1;
            }
        }
        if (!lb_put(b, out, out_len))
            return false;
        i += step;
    }
    return true;
}

/* Howard Hinnant's days_from_civil inverse: days since 1970-01-01 to y-m-d. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes v as exactly `width` decimal digits (v < 10^width). */
static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10u);
        v /= 10u;
    }
    return p + width;
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (LOG_TS_LEN chars + NUL) into ts. */
static void format_timestamp(uint64_t wall_ms, char ts[LOG_TS_LEN + 1])
{
    uint64_t secs = wall_ms / 1000u;
    unsigned sod = (unsigned)(secs % 86400u);
    int64_t y;
    unsigned mo, d;
    char *p = ts;

    civil_from_days((int64_t)(secs / 86400u), &y, &mo, &d);
    if (y > 9999) /* keep the fixed width; no real or simulated clock gets here */
        y = 9999;
    p = put_digits(p, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600u, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60u % 60u, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60u, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(wall_ms % 1000u), 3);
    *p++ = 'Z';
    *p = '\0';
    AETHER_ASSERT(p == ts + LOG_TS_LEN);
}

/* Formats the message; if it was cut, backs off to a UTF-8 boundary and marks
 * it. Returns its length. */
static size_t format_message(char *msg, const char *fmt, va_list ap)
{
    int n = vsnprintf(msg, LOG_MSG_MAX, fmt, ap);
    if (n < 0) {
        strcpy(msg, "(log format error)");
        return strlen(msg);
    }
    if ((size_t)n < LOG_MSG_MAX)
        return (size_t)n;
    size_t len = LOG_MSG_MAX - 1 - (sizeof(LOG_ELLIPSIS) - 1);
    while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
        len--; /* msg[len] continues a character: cut before that character */
    memcpy(msg + len, LOG_ELLIPSIS, sizeof(LOG_ELLIPSIS));
    return len + sizeof(LOG_ELLIPSIS) - 1;
}

/* The context fields after the module: `,"node":"n1","term":7,"event":"X"`
 * (JSON) or ` node=n1 term=7 event=X` (text); absent ones are left out.
 * Names are escaped like the message: a hostile id cannot break the line. */
static void put_context(line_buf *b, bool json, const char *node, bool have_term, uint64_t term,
                        const char *subject_field, const char *subject_name)
{
    char num[24];
    if (node[0] != '\0') {
        lb_puts(b, json ? ",\"node\":\"" : " node=");
        lb_put_escaped(b, node, strnlen(node, LOG_NODE_MAX), json);
        if (json)
            lb_puts(b, "\"");
    }
    if (have_term) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)term);
        lb_puts(b, json ? ",\"term\":" : " term=");
        lb_puts(b, num);
    }
    if (subject_field != NULL) {
        lb_puts(b, json ? ",\"" : " ");
        lb_puts(b, subject_field);
        lb_puts(b, json ? "\":\"" : "=");
        lb_put_escaped(b, subject_name, strnlen(subject_name, LOG_MODULE_MAX), json);
        if (json)
            lb_puts(b, "\"");
    }
}

static void write_all_stderr(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing stderr */
        }
        p += w;
        n -= (size_t)w;
    }
}

void aether_log_write(aether_log_level level, const char *module, const char *fmt, ...)
{
    AETHER_ASSERT(level >= AETHER_LOG_DEBUG && level <= AETHER_LOG_ERROR);
    AETHER_ASSERT(module != NULL && fmt != NULL);
    if (!aether_log_enabled(level))
        return;

    int saved_errno = errno; /* callers log right before reading errno */
    char msg[LOG_MSG_MAX];
    char line[LOG_LINE_MAX];
    char ts[LOG_TS_LEN + 1];
    va_list ap;

    va_start(ap, fmt);
    size_t msg_len = format_message(msg, fmt, ap);
    va_end(ap);

    /* Context: the thread's, else the process-wide node and its term. */
    aether_log_sink_fn sink;
    void *sink_arg;
    char node[LOG_NODE_MAX + 1];
    sink_load(&sink, &sink_arg, node);
    const aether_log_context *ctx = tls_ctx;
    bool have_term = false;
    uint64_t term = 0;
    if (ctx != NULL && ctx->node != NULL)
        snprintf(node, sizeof(node), "%s", ctx->node);
    if (ctx != NULL && ctx->term != NULL) {
        term = __atomic_load_n(ctx->term, __ATOMIC_RELAXED);
        have_term = true;
    } else if (ctx == NULL && node[0] != '\0') {
        term = __atomic_load_n(&log_term, __ATOMIC_RELAXED);
        have_term = true;
    }
    const char *subject_field = tls_subject_field;
    const char *subject_name = tls_subject_name;

    aether_clock *clock = __atomic_load_n(&log_clock, __ATOMIC_RELAXED);
    format_timestamp(aether_clock_wall_ms(clock != NULL ? clock : aether_clock_real()), ts);
    bool json = __atomic_load_n(&log_format, __ATOMIC_RELAXED) == AETHER_LOG_JSON;
    size_t module_len = strnlen(module, LOG_MODULE_MAX);

    /* Reserve the tail: `"}` (JSON) and the newline, plus the ellipsis that
     * marks a line cut short by escaping. */
    const size_t tail = (json ? 2u : 0u) + 1u;
    line_buf b = { line, 0, sizeof(line) - tail - (sizeof(LOG_ELLIPSIS) - 1) };
    bool whole;
    if (json) {
        lb_puts(&b, "{\"ts\":\"");
        lb_puts(&b, ts);
        lb_puts(&b, "\",\"level\":\"");
        lb_puts(&b, level_names[level]);
        lb_puts(&b, "\",\"module\":\"");
        lb_put_escaped(&b, module, module_len, true);
        lb_puts(&b, "\"");
        put_context(&b, true, node, have_term, term, subject_field, subject_name);
        lb_puts(&b, ",\"msg\":\"");
    } else {
        char head[LOG_TS_LEN + 16];
        int hn = snprintf(head, sizeof(head), "%s %-5s ", ts, level_tags[level]);
        lb_put(&b, head, (size_t)hn);
        lb_put_escaped(&b, module, module_len, false);
        put_context(&b, false, node, have_term, term, subject_field, subject_name);
        lb_puts(&b, ": ");
    }
    whole = lb_put_escaped(&b, msg, msg_len, json);
    b.cap = sizeof(line) - 1; /* release the reserve; the newline slot stays */
    if (!whole)
        lb_puts(&b, LOG_ELLIPSIS);
    if (json)
        lb_puts(&b, "\"}");
    AETHER_ASSERT(b.len < sizeof(line));

    if (sink != NULL) {
        line[b.len] = '\0';
        sink(sink_arg, level, line, (int)b.len);
    } else {
        line[b.len] = '\n';
        write_all_stderr(line, b.len + 1);
    }
    errno = saved_errno;
}

/* ---- Rate limit -------------------------------------------------------- */

/* window_start_ns before the first allowed call: the first call always passes,
 * even at simulated time 0. */
#define RATELIMIT_NEVER UINT64_MAX

void aether_log_ratelimit_init(aether_log_ratelimit *rl, uint64_t window_ns)
{
    AETHER_ASSERT(rl != NULL);
    rl->window_ns = window_ns;
    rl->window_start_ns = RATELIMIT_NEVER;
    rl->suppressed = 0;
}

bool aether_log_ratelimit_allow(aether_log_ratelimit *rl, uint64_t now_ns, uint64_t *suppressed_out)
{
    AETHER_ASSERT(rl != NULL);
    uint64_t start = __atomic_load_n(&rl->window_start_ns, __ATOMIC_RELAXED);

    /* now_ns < start happens when another thread read a later clock value and
     * opened the window first: that is inside the window too. */
    bool in_window = start != RATELIMIT_NEVER &&
                     (now_ns < start || now_ns - start < rl->window_ns);
    if (!in_window &&
        __atomic_compare_exchange_n(&rl->window_start_ns, &start, now_ns, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        uint64_t n = __atomic_exchange_n(&rl->suppressed, 0, __ATOMIC_RELAXED);
        if (suppressed_out != NULL)
            *suppressed_out = n;
        return true;
    }
    /* Inside the window, or another caller won this window's CAS. */
    __atomic_fetch_add(&rl->suppressed, 1, __ATOMIC_RELAXED);
    if (suppressed_out != NULL)
        *suppressed_out = 0;
    return false;
}
