/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_line.h: the one reader of `aether-node --trace` lines (tests layer),
 * for every harness that watches real node processes: the bench harness
 * (bench/pcluster.c), and through the trace_reader program
 * (tests/integration/trace_reader.c) the integration scripts and tools/demo.
 *
 * The format (written by tools/aether-node/node.c, node_trace), one line each:
 *   T <mono_us> <node> MAP <version> <term> gen=<hex>     node installed a map
 *   T <mono_us> <node> LEADER <leader|-> <term> gen=<hex> node learned of a leader
 *   T <mono_us> <node> EVENT <Type> <aether_event_format line>
 *   T <mono_us> <node> ACQUIRE|RELEASE <shard> <version>
 *   T <mono_us> <node> SUPERSEDED <incarnation> <by_incarnation>
 *   T <mono_us> <node> STATS key=value ...               at exit
 * mono_us is CLOCK_MONOTONIC in microseconds, comparable between processes
 * on one machine. An EVENT's text is "<Type> term=T seq=S node=<emitter>
 * <data fields>": the envelope's key=value fields come first, the data's
 * after them, so a key both have (node for node events, term for leadership
 * events) means the envelope at its first occurrence and the data at its
 * last. Any other stdout line is not a trace line.
 *
 * The prefix is trl_ ("trace line").
 *
 * Threading: none of its own; a trl_line and a trl_view belong to the
 * caller.
 */
#ifndef AETHER_TEST_TRACE_LINE_H
#define AETHER_TEST_TRACE_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRL_TOKENS_MAX 64u      /* tokens of one line looked at; the rest are ignored */
#define TRL_ID_MAX 64u          /* a NodeId's length bound */

typedef enum trl_kind {
    TRL_MAP = 1,
    TRL_LEADER,
    TRL_EVENT,
    TRL_OTHER /* ACQUIRE, RELEASE, SUPERSEDED, STATS and kinds to come */
} trl_kind;

/* One parsed line; its strings point into the line trl_parse split. */
typedef struct trl_line {
    uint64_t us;
    const char *node;       /* the node that printed it */
    trl_kind kind;
    const char *kind_name;  /* "MAP", "LEADER", "EVENT", ... */
    uint64_t num;           /* MAP: version; LEADER: term */
    uint64_t term;          /* MAP: the map's term (0 if absent); EVENT: the envelope's */
    const char *leader;     /* LEADER: the leader, NULL for "-" (none) */
    const char *type;       /* EVENT: the type name */
    char *tok[TRL_TOKENS_MAX];
    unsigned n_tok;
    unsigned fields_from;   /* EVENT: tok[fields_from..n_tok) are the key=value text */
} trl_line;

typedef enum trl_result {
    TRL_PARSED = 0,     /* a trace line, *out filled */
    TRL_NOT_TRACE,      /* not a "T " line: some other output */
    TRL_MALFORMED       /* starts with "T " but does not follow the format */
} trl_result;

/* Splits line in place (spaces become NULs) and fills *out. */
trl_result trl_parse(char *line, trl_line *out);

/* EVENT: the value of the first / last "key=" field of the text, or NULL. */
const char *trl_first(const trl_line *l, const char *key);
const char *trl_last(const trl_line *l, const char *key);

/* EVENT: "reason=" and the words after it up to the next key=value field
 * (a reason may hold spaces) into out; "" when there is none. */
void trl_reason(const trl_line *l, char *out, size_t cap);

/* A decimal u64 and nothing else; false for NULL, a sign, junk or overflow. */
bool trl_u64(const char *s, uint64_t *out);

/* What one node's trace says it believes: its newest map and the leader
 * and term it knows. A node that started under an established leader gets
 * no LeaderElected and so no LEADER line: its LeaseRenewed events are then
 * its word of the leader (a renewal of a newer term than the one known
 * counts too). changed_us is the time of the last line that changed
 * anything here. */
typedef struct trl_view {
    uint64_t map_version, map_us;
    bool leader_known;
    char leader[TRL_ID_MAX + 1];  /* "" = none */
    uint64_t term, leader_us;
    uint64_t changed_us;
} trl_view;

/* Folds one parsed line of the view's node into *v. */
void trl_view_apply(trl_view *v, const trl_line *l);

#endif
