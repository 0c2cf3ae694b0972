/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_line.c: the one reader of `aether-node --trace` lines (tests
 * layer). See trace_line.h.
 *
 * Threading: none of its own.
 */
#include "trace_line.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool trl_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

trl_result trl_parse(char *line, trl_line *out)
{
    memset(out, 0, sizeof(*out));
    if (line[0] != 'T' || line[1] != ' ')
        return TRL_NOT_TRACE;
    char *save = NULL;
    for (char *t = strtok_r(line, " ", &save); t != NULL && out->n_tok < TRL_TOKENS_MAX; /* bounded */
         t = strtok_r(NULL, " ", &save))
        out->tok[out->n_tok++] = t;
    char **tok = out->tok;
    unsigned nt = out->n_tok;
    if (nt < 4 || !trl_u64(tok[1], &out->us))
        return TRL_MALFORMED;
    out->node = tok[2];
    out->kind_name = tok[3];
    if (strcmp(tok[3], "MAP") == 0) {
        out->kind = TRL_MAP;
        if (nt < 5 || !trl_u64(tok[4], &out->num))
            return TRL_MALFORMED;
        if (nt >= 6 && !trl_u64(tok[5], &out->term))
            return TRL_MALFORMED;
    } else if (strcmp(tok[3], "LEADER") == 0) {
        out->kind = TRL_LEADER;
        if (nt < 6 || !trl_u64(tok[5], &out->num))
            return TRL_MALFORMED;
        out->leader = strcmp(tok[4], "-") == 0 ? NULL : tok[4];
    } else if (strcmp(tok[3], "EVENT") == 0) {
        out->kind = TRL_EVENT;
        if (nt < 5)
            return TRL_MALFORMED;
        out->type = tok[4];
        out->fields_from = 5;
        if (nt > 5 && strcmp(tok[5], tok[4]) == 0)
            out->fields_from = 6; /* aether_event_format repeats the type */
        const char *term = trl_first(out, "term");
        if (term != NULL && !trl_u64(term, &out->term))
            return TRL_MALFORMED;
    } else {
        out->kind = TRL_OTHER;
    }
    return TRL_PARSED;
}

static const char *trl_val(const trl_line *l, const char *key, bool last)
{
    size_t kl = strlen(key);
    const char *v = NULL;
    for (unsigned k = l->fields_from; k < l->n_tok; k++) { /* bounded: TRL_TOKENS_MAX */
        if (strncmp(l->tok[k], key, kl) == 0 && l->tok[k][kl] == '=') {
            v = l->tok[k] + kl + 1;
            if (!last)
                break;
        }
    }
    return v;
}

const char *trl_first(const trl_line *l, const char *key)
{
    return l->kind == TRL_EVENT ? trl_val(l, key, false) : NULL;
}

const char *trl_last(const trl_line *l, const char *key)
{
    return l->kind == TRL_EVENT ? trl_val(l, key, true) : NULL;
}

void trl_reason(const trl_line *l, char *out, size_t cap)
{
    out[0] = '\0';
    if (l->kind != TRL_EVENT)
        return;
    for (unsigned k = l->fields_from; k < l->n_tok; k++) {
        if (strncmp(l->tok[k], "reason=", 7) != 0)
            continue;
        size_t len = (size_t)snprintf(out, cap, "%s", l->tok[k] + 7);
        for (unsigned j = k + 1; j < l->n_tok && strchr(l->tok[j], '=') == NULL && len < cap; j++)
            len += (size_t)snprintf(out + len, cap - len, " %s", l->tok[j]);
        return;
    }
}

void trl_view_apply(trl_view *v, const trl_line *l)
{
    if (l->kind == TRL_MAP) {
        if (l->num > v->map_version) {
            v->map_version = l->num;
            v->map_us = l->us;
            v->changed_us = l->us;
        }
    } else if (l->kind == TRL_LEADER) {
        v->leader_known = true;
        snprintf(v->leader, sizeof(v->leader), "%s", l->leader != NULL ? l->leader : "");
        v->term = l->num;
        v->leader_us = l->us;
        v->changed_us = l->us;
    } else if (l->kind == TRL_EVENT && strcmp(l->type, "LeaseRenewed") == 0) {
        uint64_t term = 0;
        const char *leader = trl_last(l, "leader");
        if (leader != NULL && trl_u64(trl_last(l, "term"), &term) && (!v->leader_known || term > v->term)) {
            v->leader_known = true;
            snprintf(v->leader, sizeof(v->leader), "%s", leader);
            v->term = term;
            v->leader_us = l->us;
            v->changed_us = l->us;
        }
    }
}
