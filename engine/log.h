/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h: levelled logging (engine layer).
 *
 * Any thread. One line per call, written with a single write to the sink so
 * lines from different threads never interleave. The level, format and sink
 * are process-wide settings meant to be set once at start-up (reads are
 * relaxed atomics, so changing them later is safe but not ordered with other
 * threads' lines).
 *
 * Text line:  2026-11-28T01:02:03.456Z WARN  mailbox: actor 'cluster' mailbox full (cap 4096)
 * JSON line:  {"ts":"2026-11-28T01:02:03.456Z","level":"warn","module":"mailbox","msg":"..."}
 *
 * Context. A line also names the node, the term and the event or command it
 * concerns when the writing thread knows them (docs/observability.md, "Logs"):
 *   2026-11-28T01:02:03.456Z INFO  member node=n1 term=7 event=NodeJoined: ...
 *   {"ts":"...","level":"info","module":"member","node":"n1","term":7,
 *    "event":"NodeJoined","msg":"..."}
 * The node and term come from the thread's context (an actor sets it while
 * it runs: aether_actor_config.log_context), else from the process-wide
 * node (aether_log_set_node, for a one-node process) and the highest term
 * noted with aether_log_note_term. The event or command comes from the
 * thread's subject (the message an actor is handling). Absent fields are
 * left out, so a line without context keeps the plain shape above.
 *
 * The timestamp comes from the log clock (the real clock unless a simulation
 * injects its own with aether_log_set_clock, so simulated runs log simulated
 * time and stay byte-for-byte reproducible).
 *
 * Bursts: code that may log on every bad input (decoder errors, full
 * mailboxes) guards the line with an aether_log_ratelimit so a flood gives one
 * line per window plus a count of what was suppressed.
 */
#ifndef AETHER_LOG_H
#define AETHER_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

typedef enum aether_log_level {
    AETHER_LOG_DEBUG = 0,
    AETHER_LOG_INFO = 1,
    AETHER_LOG_WARN = 2,
    AETHER_LOG_ERROR = 3,
    AETHER_LOG_OFF = 4,
} aether_log_level;

typedef enum aether_log_format {
    AETHER_LOG_TEXT = 0,
    AETHER_LOG_JSON = 1,
} aether_log_format;

/* Receives each finished line (without the trailing newline) instead of
 * stderr. Called on the logging thread; must be thread-safe. */
typedef void (*aether_log_sink_fn)(void *arg, aether_log_level level, const char *line, int len);

void aether_log_set_level(aether_log_level level);
aether_log_level aether_log_get_level(void);
/* Parses "debug" | "info" | "warn" | "error" | "off"; returns false if unknown. */
bool aether_log_level_parse(const char *s, aether_log_level *out);
const char *aether_log_level_name(aether_log_level level);
void aether_log_set_format(aether_log_format format);
/* NULL restores stderr. */
void aether_log_set_sink(aether_log_sink_fn fn, void *arg);
/* NULL restores the real clock. The clock must outlive its use here. */
void aether_log_set_clock(aether_clock *clock);
/* Reads AETHER_LOG_LEVEL and AETHER_LOG_FORMAT ("text" | "json") if set. */
void aether_log_init_from_env(void);

static inline bool aether_log_enabled(aether_log_level level)
{
    return level >= aether_log_get_level();
}

/* Where a line comes from. Borrowed: it must outlive every line written
 * under it. `node` is immutable; `term` points to a 64-bit value another
 * thread may update (read relaxed, once per line). */
typedef struct aether_log_context {
    const char *node;     /* NULL = none */
    const uint64_t *term; /* NULL = none */
} aether_log_context;

/* The calling thread's context; NULL clears it. Returns the previous one so
 * a caller can restore it. */
const aether_log_context *aether_log_thread_context_set(const aether_log_context *ctx);
/* What the calling thread handles now: `field` is "event" or "command",
 * `name` the type's name; both static strings (or NULL: none). */
void aether_log_thread_subject_set(const char *field, const char *name);
/* The process-wide node (one node per process; copied, at most 64 bytes
 * kept; NULL or "" clears) and the highest term noted for it (only grows;
 * aether_log_set_node resets it). Used by threads without a context. */
void aether_log_set_node(const char *node);
void aether_log_note_term(uint64_t term);

void aether_log_write(aether_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define AETHER_LOG(level, module, ...)                                        \
    do {                                                                      \
        if (aether_log_enabled(level))                                        \
            aether_log_write((level), (module), __VA_ARGS__);                 \
    } while (0)
#define AETHER_DEBUG(module, ...) AETHER_LOG(AETHER_LOG_DEBUG, module, __VA_ARGS__)
#define AETHER_INFO(module, ...) AETHER_LOG(AETHER_LOG_INFO, module, __VA_ARGS__)
#define AETHER_WARN(module, ...) AETHER_LOG(AETHER_LOG_WARN, module, __VA_ARGS__)
#define AETHER_ERROR(module, ...) AETHER_LOG(AETHER_LOG_ERROR, module, __VA_ARGS__)

/* At most one line per window_ns for one source of bursts. Lock-free: any
 * thread may call allow() on a shared limiter. */
typedef struct aether_log_ratelimit {
    uint64_t window_ns;             /* immutable after init */
    uint64_t window_start_ns;       /* atomic (relaxed CAS) */
    uint64_t suppressed;            /* atomic (relaxed) */
} aether_log_ratelimit;

void aether_log_ratelimit_init(aether_log_ratelimit *rl, uint64_t window_ns);
/* True if the caller may log now; *suppressed_out (may be NULL) receives how
 * many calls were refused since the last allowed one, so the line can say so. */
bool aether_log_ratelimit_allow(aether_log_ratelimit *rl, uint64_t now_ns, uint64_t *suppressed_out);

#endif
