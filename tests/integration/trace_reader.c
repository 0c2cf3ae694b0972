/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_reader.c: the integration scripts' and tools/demo's reader of
 * `aether-node --trace` files (tests layer): the questions they ask of the
 * traces, answered with the one trace reader (tests/support/trace_line.h)
 * that the bench harness uses too, instead of awk that knows field
 * positions.
 *
 *   trace_reader view ID FILE
 *       "<map version> <leader or -> <term> <us of the last change>": what
 *       node ID believes (trl_view: a node that started under an established
 *       leader learns of it from LeaseRenewed); "0 - 0 0" if nothing yet.
 *   trace_reader installed ID FILE
 *       the version of the last map ID installed (its last MAP line: a map
 *       older than one before it shows, as a test of forged maps wants); an
 *       empty line if none.
 *   trace_reader leader FILE...
 *       the leader named by the highest-term LEADER line of any FILE (of
 *       equal terms, the last read); empty if none names one.
 *   trace_reader leader-known ID OLD MIN_TERM SINCE_US FILE
 *       the first time (us) ID learned of a leader other than OLD (and not
 *       none) with term >= MIN_TERM at or after SINCE_US; empty if never.
 *   trace_reader first-event TYPE SINCE_US [--subject ID] [--reason R]
 *                            [--reason-prefix P] FILE...
 *       the earliest time (us), over all FILEs, of an EVENT TYPE at or after
 *       SINCE_US whose subject (the data's node=, the last one) is ID, whose
 *       reason is R, and whose reason starts with P; empty if none.
 *   trace_reader check-terms ID FILE
 *       exit 1 with the line if ID applied an event of a term below one it
 *       already knew (from a LEADER line or an earlier event); LeadershipLost
 *       is exempt: it announces the end of an old term and everyone takes it.
 *   trace_reader check-acting FILE...
 *       exit 1 with the reason if the events leaders emitted (each node's own
 *       EVENT lines, LeadershipLost excepted), grouped by term, come from two
 *       nodes in one term, or the terms' emission intervals [first, last]
 *       overlap: a leader's last act must precede its successor's first.
 *
 * A FILE that does not exist holds nothing (a node that never started).
 * Exit status: 0 (answered, or the check holds), 1 a check failed, 2
 * usage. Malformed trace lines are counted and said on stderr, never
 * answered from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_line.h"

#define LINE_MAX_BYTES 8192u  /* a longer line is not a trace line we read */
#define TERMS_MAX 4096u       /* distinct terms check-acting follows */

static uint64_t g_malformed;

typedef void (*line_fn)(void *ctx, const trl_line *l);

/* Calls fn for every well-formed trace line of path (of node id when id is
 * not NULL). false if the file cannot be opened: a node that never started
 * has no file, which the callers treat as "nothing yet". */
static bool each_line(const char *path, const char *id, line_fn fn, void *ctx)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    static char buf[LINE_MAX_BYTES];
    while (fgets(buf, sizeof(buf), f) != NULL) { /* bounded: the file */
        size_t n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        trl_line l;
        trl_result r = trl_parse(buf, &l);
        if (r == TRL_MALFORMED)
            g_malformed++;
        if (r != TRL_PARSED || (id != NULL && strcmp(l.node, id) != 0))
            continue;
        fn(ctx, &l);
    }
    fclose(f);
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: trace_reader view|installed ID FILE\n"
                    "       trace_reader leader FILE...\n"
                    "       trace_reader leader-known ID OLD MIN_TERM SINCE_US FILE\n"
                    "       trace_reader first-event TYPE SINCE_US [--subject ID] [--reason R] [--reason-prefix P] FILE...\n"
                    "       trace_reader check-terms ID FILE\n"
                    "       trace_reader check-acting FILE...\n");
    return 2;
}

static bool arg_u64(const char *s, uint64_t *out)
{
    if (trl_u64(s, out))
        return true;
    fprintf(stderr, "trace_reader: '%s' is not a non-negative integer\n", s);
    return false;
}

/* ---- view, installed ------------------------------------------------------ */

static void view_line(void *ctx, const trl_line *l) { trl_view_apply(ctx, l); }

static void installed_line(void *ctx, const trl_line *l)
{
    if (l->kind == TRL_MAP)
        *(uint64_t *)ctx = l->num;
}

/* ---- leader ---------------------------------------------------------------- */

typedef struct leader_ctx {
    uint64_t term;
    bool have;
    char leader[TRL_ID_MAX + 1];
} leader_ctx;

static void leader_line(void *ctx, const trl_line *l)
{
    leader_ctx *c = ctx;
    if (l->kind == TRL_LEADER && l->leader != NULL && (!c->have || l->num >= c->term)) {
        c->have = true;
        c->term = l->num;
        snprintf(c->leader, sizeof(c->leader), "%s", l->leader);
    }
}

/* ---- leader-known ----------------------------------------------------------- */

typedef struct known_ctx {
    const char *old;
    uint64_t min_term, since, found;
} known_ctx;

static void known_line(void *ctx, const trl_line *l)
{
    known_ctx *k = ctx;
    if (k->found == 0 && l->kind == TRL_LEADER && l->leader != NULL && strcmp(l->leader, k->old) != 0 &&
        l->num >= k->min_term && l->us >= k->since)
        k->found = l->us;
}

/* ---- first-event -------------------------------------------------------------- */

typedef struct first_ctx {
    const char *type, *subject, *reason, *reason_prefix;
    uint64_t since, best;
    bool have;
} first_ctx;

static void first_line(void *ctx, const trl_line *l)
{
    first_ctx *c = ctx;
    if (l->kind != TRL_EVENT || strcmp(l->type, c->type) != 0 || l->us < c->since)
        return;
    if (c->subject != NULL) {
        const char *s = trl_last(l, "node");
        if (s == NULL || strcmp(s, c->subject) != 0)
            return;
    }
    if (c->reason != NULL || c->reason_prefix != NULL) {
        char reason[128];
        trl_reason(l, reason, sizeof(reason));
        if (c->reason != NULL && strcmp(reason, c->reason) != 0)
            return;
        if (c->reason_prefix != NULL && strncmp(reason, c->reason_prefix, strlen(c->reason_prefix)) != 0)
            return;
    }
    if (!c->have || l->us < c->best) {
        c->best = l->us;
        c->have = true;
    }
}

/* ---- check-terms ---------------------------------------------------------------- */

typedef struct terms_ctx {
    uint64_t hi;
    bool bad;
    char why[256];
} terms_ctx;

static void terms_line(void *ctx, const trl_line *l)
{
    terms_ctx *c = ctx;
    if (c->bad)
        return;
    if (l->kind == TRL_LEADER && l->num > c->hi) {
        c->hi = l->num;
    } else if (l->kind == TRL_EVENT) {
        if (strcmp(l->type, "LeadershipLost") != 0 && l->term < c->hi) {
            c->bad = true;
            snprintf(c->why, sizeof(c->why), "after term %llu: %s at %llu us of term %llu",
                     (unsigned long long)c->hi, l->type, (unsigned long long)l->us,
                     (unsigned long long)l->term);
            return;
        }
        if (l->term > c->hi)
            c->hi = l->term;
    }
}

/* ---- check-acting ------------------------------------------------------------------ */

typedef struct acting_term {
    uint64_t term, lo, hi;
    char who[TRL_ID_MAX + 1];
} acting_term;

typedef struct acting_ctx {
    acting_term terms[TERMS_MAX];
    uint32_t n;
    bool bad, full;
    char why[512];
} acting_ctx;

static void acting_line(void *ctx, const trl_line *l)
{
    acting_ctx *c = ctx;
    if (c->bad || l->kind != TRL_EVENT || strcmp(l->type, "LeadershipLost") == 0)
        return;
    const char *emitter = trl_first(l, "node");
    if (emitter == NULL || strcmp(emitter, l->node) != 0)
        return; /* applied, not emitted, by this node */
    acting_term *t = NULL;
    for (uint32_t i = 0; i < c->n && t == NULL; i++) /* bounded: TERMS_MAX */
        if (c->terms[i].term == l->term)
            t = &c->terms[i];
    if (t == NULL) {
        if (c->n == TERMS_MAX) {
            c->full = true;
            return;
        }
        t = &c->terms[c->n++];
        t->term = l->term;
        t->lo = t->hi = l->us;
        snprintf(t->who, sizeof(t->who), "%s", l->node);
    } else if (strcmp(t->who, l->node) != 0) {
        c->bad = true;
        snprintf(c->why, sizeof(c->why), "term %llu emitted by %s and %s", (unsigned long long)t->term,
                 t->who, l->node);
        return;
    }
    if (l->us < t->lo)
        t->lo = l->us;
    if (l->us > t->hi)
        t->hi = l->us;
}

static int cmp_term(const void *a, const void *b)
{
    const acting_term *x = a, *y = b;
    return x->term < y->term ? -1 : x->term > y->term;
}

/* ------------------------------------------------------------------------------------ */

static int finish(int rc)
{
    if (g_malformed > 0)
        fprintf(stderr, "trace_reader: %llu malformed trace line(s) skipped\n", (unsigned long long)g_malformed);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "view") == 0 && argc == 4) {
        trl_view v;
        memset(&v, 0, sizeof(v));
        (void)each_line(argv[3], argv[2], view_line, &v);
        printf("%llu %s %llu %llu\n", (unsigned long long)v.map_version,
               v.leader_known && v.leader[0] != '\0' ? v.leader : "-", (unsigned long long)v.term,
               (unsigned long long)v.changed_us);
        return finish(0);
    }
    if (strcmp(cmd, "installed") == 0 && argc == 4) {
        uint64_t last = 0;
        (void)each_line(argv[3], argv[2], installed_line, &last);
        if (last > 0)
            printf("%llu\n", (unsigned long long)last);
        else
            printf("\n");
        return finish(0);
    }
    if (strcmp(cmd, "leader") == 0 && argc >= 3) {
        leader_ctx c = { 0 };
        for (int i = 2; i < argc; i++)
            (void)each_line(argv[i], NULL, leader_line, &c);
        printf("%s\n", c.have ? c.leader : "");
        return finish(0);
    }
    if (strcmp(cmd, "leader-known") == 0 && argc == 7) {
        known_ctx k = { .old = argv[3] };
        if (!arg_u64(argv[4], &k.min_term) || !arg_u64(argv[5], &k.since))
            return 2;
        (void)each_line(argv[6], argv[2], known_line, &k);
        if (k.found != 0)
            printf("%llu\n", (unsigned long long)k.found);
        return finish(0);
    }
    if (strcmp(cmd, "first-event") == 0 && argc >= 5) {
        first_ctx c = { .type = argv[2] };
        if (!arg_u64(argv[3], &c.since))
            return 2;
        int i = 4;
        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) { /* bounded: argc */
            if (strcmp(argv[i], "--subject") == 0)
                c.subject = argv[i + 1];
            else if (strcmp(argv[i], "--reason") == 0)
                c.reason = argv[i + 1];
            else if (strcmp(argv[i], "--reason-prefix") == 0)
                c.reason_prefix = argv[i + 1];
            else
                return usage();
        }
        for (; i < argc; i++)
            (void)each_line(argv[i], NULL, first_line, &c);
        if (c.have)
            printf("%llu\n", (unsigned long long)c.best);
        return finish(0);
    }
    if (strcmp(cmd, "check-terms") == 0 && argc == 4) {
        terms_ctx c = { 0 };
        (void)each_line(argv[3], argv[2], terms_line, &c); /* no file: nothing applied */
        if (c.bad)
            printf("%s\n", c.why);
        return finish(c.bad ? 1 : 0);
    }
    if (strcmp(cmd, "check-acting") == 0 && argc >= 3) {
        static acting_ctx c;
        for (int i = 2; i < argc; i++)
            (void)each_line(argv[i], NULL, acting_line, &c);
        if (c.full) {
            fprintf(stderr, "trace_reader: more than %u terms\n", TERMS_MAX);
            return finish(2);
        }
        if (!c.bad) {
            qsort(c.terms, c.n, sizeof(c.terms[0]), cmp_term);
            for (uint32_t i = 1; i < c.n && !c.bad; i++) {
                const acting_term *a = &c.terms[i - 1], *b = &c.terms[i];
                if (a->hi >= b->lo) {
                    c.bad = true;
                    snprintf(c.why, sizeof(c.why), "%s (term %llu) acted until %llu us, %s (term %llu) from %llu us",
                             a->who, (unsigned long long)a->term, (unsigned long long)a->hi, b->who,
                             (unsigned long long)b->term, (unsigned long long)b->lo);
                }
            }
        }
        if (c.bad)
            printf("%s\n", c.why);
        return finish(c.bad ? 1 : 0);
    }
    return usage();
}
