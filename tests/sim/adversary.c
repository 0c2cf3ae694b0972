/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adversary.c: see adversary.h (tests layer, the simulation library).
 *
 * DESIGN
 *  1. observe() decodes a genuine message with the product's decoders (codec
 *     for envelopes, shardmap_json for maps) and keeps: the highest term,
 *     the highest seq within it, the generation, the leader, the map's
 *     version, shard count and replication, up to ADV_IDS_MAX node ids with
 *     the highest incarnation seen for each (NodeJoined, heartbeats,
 *     JoinCluster), and a copy of the bytes in one of ADV_SLOTS_PER_KIND
 *     slots of the message's kind (each event type, map, heartbeat,
 *     command), a random slot once they are full, so old messages survive
 *     for replays next to recent ones.
 *  2. next() draws a class (forged 50%, replayed 25% once something was
 *     captured, malformed 25%), then a kind and the values of every field
 *     from the generator (adv_term, adv_seq, adv_id, adv_incarnation...).
 *     Forged messages go through the product's encoders, so they are well
 *     formed by construction; the encoders refuse nothing the pickers make
 *     (terms and incarnations stay <= 2^63-1, ids are valid).
 *  3. Malformed copies alter the bytes of a forged or captured message.
 * Nothing else reads a clock or a global: the seed and the observations
 * decide every message.
 */
#include "adversary.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "codec.h"
#include "node_id.h"
#include "rng.h"
#include "shardmap.h"
#include "shardmap_codec.h"
#include "shardmap_json.h"

#define ADV_IDS_MAX 32u
#define ADV_SLOTS_PER_KIND 8u
#define ADV_KIND_MAP AETHER_EVT_COUNT_            /* slot groups: event types 1..10, then */
#define ADV_KIND_HB (AETHER_EVT_COUNT_ + 1)       /* map, heartbeat, command */
#define ADV_KIND_CMD (AETHER_EVT_COUNT_ + 2)
#define ADV_KINDS (AETHER_EVT_COUNT_ + 3)
#define ADV_BYTES_MAX ((size_t)64 << 10)          /* larger genuine messages are not kept */
#define ADV_TERM_TOP ((uint64_t)INT64_MAX)        /* the codec's largest integer */
#define ADV_MADE_UP_IDS 4u

AETHER_STATIC_ASSERT(ADV_KINDS < 32, "slot groups");

typedef struct adv_id {
    aether_node_id id;
    uint64_t incarnation; /* the highest seen, 0 = none */
} adv_id;

typedef struct adv_slot {
    char tail[AETHER_ADV_TAIL_MAX];
    char *bytes;
    size_t len;
} adv_slot;

struct aether_adversary {
    char cluster[AETHER_CLUSTER_NAME_MAX + 1];
    uint32_t without;
    aether_rng rng;  /* next() */
    aether_rng crng; /* observe(): which slot a capture replaces */
    aether_admission terms;
    /* What it learned. */
    uint64_t term, seq, generation;
    aether_node_id leader; /* len 0 = none seen */
    uint64_t map_version;
    uint32_t shard_count, replication;
    adv_id ids[ADV_IDS_MAX];
    uint32_t n_ids;
    adv_slot slots[ADV_KINDS][ADV_SLOTS_PER_KIND];
    uint32_t n_slots[ADV_KINDS];
    uint32_t n_captured; /* slots in use, all kinds */
    uint64_t observed;
    uint64_t made[AETHER_ADV_CLASS_COUNT_];
    uint64_t made_up; /* sequence of made-up join addresses */
};

static const char *const adv_made_up[ADV_MADE_UP_IDS] = {"evil", "ghost", "adv-1", "adv-2"};

const char *aether_adv_class_name(aether_adv_class c)
{
    static const char *const names[AETHER_ADV_CLASS_COUNT_] = {"forged", "replayed", "malformed"};
    return (unsigned)c < AETHER_ADV_CLASS_COUNT_ ? names[c] : "?";
}

aether_status aether_adversary_parse_without(const char *list, uint32_t *mask, aether_err *err)
{
    *mask = 0;
    char buf[128];
    if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
        return aether_err_set(err, AETHER_EINVAL, "adversary families '%.40s...': too long", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) { /* bounded: buf */
        if (strcmp(tok, "ahead-terms") == 0)
            *mask |= AETHER_ADV_WITHOUT_AHEAD_TERMS;
        else if (strcmp(tok, "join-incarnations") == 0)
            *mask |= AETHER_ADV_WITHOUT_JOIN_INCARNATIONS;
        else if (strcmp(tok, "operator-commands") == 0)
            *mask |= AETHER_ADV_WITHOUT_OPERATOR_COMMANDS;
        else if (strcmp(tok, "none") != 0)
            return aether_err_set(err, AETHER_EINVAL,
                                  "adversary family '%s' is none of ahead-terms, join-incarnations, "
                                  "operator-commands", tok);
    }
    return AETHER_OK;
}

void aether_adv_msg_fini(aether_adv_msg *m)
{
    if (m == NULL)
        return;
    free(m->bytes);
    memset(m, 0, sizeof(*m));
}

aether_status aether_adversary_create(const char *cluster, uint64_t seed, uint32_t without,
                                      aether_adversary **out, aether_err *err)
{
    *out = NULL;
    aether_status st = aether_cluster_name_validate(cluster, err);
    if (st != AETHER_OK)
        return st;
    aether_adversary *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "adversary: out of memory");
    snprintf(a->cluster, sizeof(a->cluster), "%s", cluster);
    a->without = without;
    aether_rng_seed(&a->rng, seed);
    aether_rng_split(&a->rng, &a->crng);
    *out = a;
    return AETHER_OK;
}

void aether_adversary_destroy(aether_adversary *a)
{
    if (a == NULL)
        return;
    for (uint32_t k = 0; k < ADV_KINDS; k++)            /* bounded: ADV_KINDS */
        for (uint32_t i = 0; i < a->n_slots[k]; i++) /* bounded: ADV_SLOTS_PER_KIND */
            free(a->slots[k][i].bytes);
    free(a);
}

void aether_adversary_set_admission(aether_adversary *a, const aether_admission *terms)
{
    a->terms = *terms;
}

void aether_adversary_stats(const aether_adversary *a, aether_adv_stats *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->made, a->made, sizeof(out->made));
    out->observed = a->observed;
    out->term = a->term;
    out->ids = a->n_ids;
}

/* ---- learning ---------------------------------------------------------------- */

static void adv_learn_id(aether_adversary *a, const aether_node_id *id, uint64_t incarnation)
{
    if (id->len == 0)
        return;
    for (uint32_t i = 0; i < a->n_ids; i++) { /* bounded: ADV_IDS_MAX */
        if (aether_node_id_equal(&a->ids[i].id, id)) {
            if (incarnation > a->ids[i].incarnation)
                a->ids[i].incarnation = incarnation;
            return;
        }
    }
    if (a->n_ids < ADV_IDS_MAX)
        a->ids[a->n_ids++] = (adv_id){.id = *id, .incarnation = incarnation};
}

/* Generations are random ids, not ordered: the adversary follows the last
 * one it heard (a deposed node's late message may switch it back for a
 * while; an adversary need not be exact). */
static void adv_learn_term(aether_adversary *a, uint64_t generation, uint64_t term, uint64_t seq)
{
    if (generation != 0 && generation != a->generation) {
        a->generation = generation;
        a->term = a->seq = 0;
    } else if (generation == 0 && a->generation != 0) {
        return; /* an emitter that has not read its generation yet: nothing to learn */
    }
    if (term > a->term) {
        a->term = term;
        a->seq = seq;
    } else if (term == a->term && seq > a->seq) {
        a->seq = seq;
    }
}

/* The operator's commands (adversary.h, operator-commands): a genuine one
 * replayed is the operator's command again. */
static bool adv_operator_tail(const char *tail)
{
    return strcmp(tail, "cmd.LeaveCluster") == 0 || strcmp(tail, "cmd.MarkNodeFailed") == 0;
}

static void adv_keep(aether_adversary *a, uint32_t kind, const char *tail, const void *bytes, size_t len)
{
    if (len == 0 || len > ADV_BYTES_MAX || kind >= ADV_KINDS)
        return;
    if ((a->without & AETHER_ADV_WITHOUT_OPERATOR_COMMANDS) && adv_operator_tail(tail))
        return;
    char *copy = malloc(len);
    if (copy == NULL)
        return; /* a replay less */
    memcpy(copy, bytes, len);
    adv_slot *slot;
    if (a->n_slots[kind] < ADV_SLOTS_PER_KIND) {
        slot = &a->slots[kind][a->n_slots[kind]++];
        a->n_captured++;
    } else {
        slot = &a->slots[kind][aether_rng_below(&a->crng, ADV_SLOTS_PER_KIND)];
        free(slot->bytes);
    }
    snprintf(slot->tail, sizeof(slot->tail), "%s", tail);
    slot->bytes = copy;
    slot->len = len;
}

static void adv_observe_event(aether_adversary *a, const aether_event *e)
{
    adv_learn_term(a, e->generation, e->term, e->seq);
    adv_learn_id(a, &e->node, 0);
    switch (e->type) {
    case AETHER_EVT_NODE_JOINED:
        adv_learn_id(a, &e->data.node_joined.node, e->data.node_joined.incarnation);
        break;
    case AETHER_EVT_LEADER_ELECTED:
        if (e->term >= a->term)
            a->leader = e->data.leader_elected.leader;
        break;
    case AETHER_EVT_LEASE_RENEWED:
        if (e->term >= a->term)
            a->leader = e->data.lease_renewed.leader;
        if (e->data.lease_renewed.map_version > a->map_version)
            a->map_version = e->data.lease_renewed.map_version;
        break;
    default: break;
    }
}

static void adv_observe_msg(aether_adversary *a, const aether_codec_msg *m)
{
    switch (m->kind) {
    case AETHER_CODEC_EVENT: adv_observe_event(a, m->u.event); break;
    case AETHER_CODEC_HEARTBEAT:
        adv_learn_id(a, &m->u.heartbeat.node, m->u.heartbeat.incarnation);
        break;
    case AETHER_CODEC_COMMAND:
        adv_learn_id(a, &m->u.command.sender, 0);
        if (m->u.command.type == AETHER_CMD_JOIN_CLUSTER) {
            adv_learn_id(a, &m->u.command.data.join.info.id, m->u.command.data.join.info.incarnation);
            a->terms = m->u.command.data.join.terms; /* the genuine admission terms */
        }
        break;
    default: break;
    }
}

void aether_adversary_observe(aether_adversary *a, const char *tail, const void *bytes, size_t len)
{
    a->observed++;
    aether_err err = {0};
    if (strcmp(tail, "map") == 0) {
        aether_shardmap *map = NULL;
        if (aether_shardmap_codec_decode(bytes, len, &map, NULL, &err) != AETHER_OK)
            return;
        if (map->version > a->map_version)
            a->map_version = map->version;
        a->shard_count = map->shard_count;
        a->replication = map->replication;
        for (uint32_t i = 0; i < map->node_count; i++) /* bounded: the map's nodes */
            adv_learn_id(a, aether_shardmap_node(map, (aether_node_index)i), 0);
        aether_shardmap_destroy(map);
        adv_keep(a, ADV_KIND_MAP, tail, bytes, len);
        return;
    }
    aether_codec_limits lim = {.cluster = a->cluster};
    aether_codec_msg m;
    if (aether_codec_decode(bytes, len, &lim, &m, &err) != AETHER_OK)
        return;
    adv_observe_msg(a, &m);
    uint32_t kind = m.kind == AETHER_CODEC_EVENT       ? (uint32_t)m.u.event->type - 1
                    : m.kind == AETHER_CODEC_HEARTBEAT ? ADV_KIND_HB
                    : m.kind == AETHER_CODEC_COMMAND   ? ADV_KIND_CMD
                                                       : ADV_KINDS;
    aether_codec_msg_fini(&m);
    adv_keep(a, kind, tail, bytes, len);
}

/* ---- drawing values -------------------------------------------------------- */

/* The codec's largest integer: anything above would not encode. */
static uint64_t adv_cap(uint64_t x) { return x > ADV_TERM_TOP ? ADV_TERM_TOP : x; }

static bool adv_chance(aether_adversary *a, uint32_t percent)
{
    return aether_rng_below(&a->rng, 100) < percent;
}

/* A term near or far from the highest seen. */
static uint64_t adv_term(aether_adversary *a)
{
    uint64_t t = a->term;
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    bool ahead_ok = !(a->without & AETHER_ADV_WITHOUT_AHEAD_TERMS);
    if (r < 30 || (r >= 60 && !ahead_ok))
        return t;
    if (r < 45)
        return t - aether_rng_below(&a->rng, (t < 3 ? t : 3) + 1);
    if (r < 55)
        return aether_rng_below(&a->rng, t + 1);
    if (r < 60)
        return 0;
    if (t >= ADV_TERM_TOP - 2000)
        return ADV_TERM_TOP;
    if (r < 75)
        return t + 1 + aether_rng_below(&a->rng, 3);
    if (r < 85)
        return t + 1000;
    if (r < 92)
        return ADV_TERM_TOP;
    return t + ((uint64_t)1 << 32) + aether_rng_below(&a->rng, (uint64_t)1 << 40);
}

static uint64_t adv_seq_raw(aether_adversary *a)
{
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    if (r < 30)
        return a->seq + 1;
    if (r < 50)
        return a->seq > 0 ? a->seq : 1;
    if (r < 65)
        return 1;
    if (r < 80)
        return a->seq + 2 + aether_rng_below(&a->rng, 5);
    if (r < 90)
        return a->seq + 1000000;
    return 1 + aether_rng_below(&a->rng, ADV_TERM_TOP);
}

static uint64_t adv_seq(aether_adversary *a) { return adv_cap(adv_seq_raw(a)); }

/* A member's id, the leader's, or one made up. *known: the index in ids. */
static aether_node_id adv_id_pick(aether_adversary *a, int *known)
{
    *known = -1;
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    aether_node_id id;
    memset(&id, 0, sizeof(id));
    if (r < 20 && a->leader.len != 0)
        return a->leader;
    if (r < 75 && a->n_ids > 0) {
        *known = (int)aether_rng_below(&a->rng, a->n_ids);
        return a->ids[*known].id;
    }
    const char *s = adv_made_up[aether_rng_below(&a->rng, ADV_MADE_UP_IDS)];
    aether_status st = aether_node_id_from_cstr(s, &id, NULL);
    AETHER_ASSERT(st == AETHER_OK);
    return id;
}

static int adv_known(const aether_adversary *a, const aether_node_id *id)
{
    for (uint32_t i = 0; i < a->n_ids; i++) /* bounded: ADV_IDS_MAX */
        if (aether_node_id_equal(&a->ids[i].id, id))
            return (int)i;
    return -1;
}

/* An incarnation for id: its own, older, newer, far newer, or extreme. */
static uint64_t adv_incarnation_raw(aether_adversary *a, const aether_node_id *id)
{
    int k = adv_known(a, id);
    uint64_t inc = k >= 0 ? a->ids[k].incarnation : 0;
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    if (r < 35)
        return inc;
    if (r < 50)
        return inc + 1;
    if (r < 60)
        return inc + 1000;
    if (r < 70)
        return ADV_TERM_TOP;
    if (r < 80)
        return 0;
    if (r < 90)
        return 1;
    return aether_rng_below(&a->rng, inc + 1);
}

static uint64_t adv_incarnation(aether_adversary *a, const aether_node_id *id)
{
    return adv_cap(adv_incarnation_raw(a, id));
}

static uint64_t adv_version_raw(aether_adversary *a)
{
    uint64_t v = a->map_version;
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    if (r < 25)
        return v;
    if (r < 50)
        return v + 1 + aether_rng_below(&a->rng, 3);
    if (r < 65)
        return v + 1000;
    if (r < 80)
        return v > 0 ? v - 1 - aether_rng_below(&a->rng, v < 5 ? v : 5) : 0;
    if (r < 90)
        return ADV_TERM_TOP;
    return aether_rng_below(&a->rng, v + 1);
}

static uint64_t adv_version(aether_adversary *a) { return adv_cap(adv_version_raw(a)); }

static uint32_t adv_shard(aether_adversary *a)
{
    uint32_t n = a->shard_count > 0 ? a->shard_count : 64;
    return adv_chance(a, 90) ? (uint32_t)aether_rng_below(&a->rng, n) : n + (uint32_t)aether_rng_below(&a->rng, 4);
}

/* ---- forging ------------------------------------------------------------------ */

static void adv_event_data(aether_adversary *a, aether_event *e)
{
    int known;
    switch (e->type) {
    case AETHER_EVT_NODE_JOINED:
        e->data.node_joined.node = adv_id_pick(a, &known);
        snprintf(e->data.node_joined.address, sizeof(e->data.node_joined.address), "adv:%u",
                 (unsigned)aether_rng_below(&a->rng, 100));
        e->data.node_joined.incarnation = adv_incarnation(a, &e->data.node_joined.node);
        e->data.node_joined.map_version = adv_version(a);
        break;
    case AETHER_EVT_NODE_DRAINING: e->data.node_draining.node = adv_id_pick(a, &known); break;
    case AETHER_EVT_NODE_LEFT: e->data.node_left.node = adv_id_pick(a, &known); break;
    case AETHER_EVT_NODE_FAILED:
        e->data.node_failed.node = adv_id_pick(a, &known);
        e->data.node_failed.silent_ms = aether_rng_below(&a->rng, 20000);
        break;
    case AETHER_EVT_LEADER_ELECTED:
        e->data.leader_elected.leader = e->node;
        e->data.leader_elected.term = adv_chance(a, 80) ? e->term : adv_term(a);
        e->data.leader_elected.ttl_ms = 100 + aether_rng_below(&a->rng, 10000);
        break;
    case AETHER_EVT_LEASE_RENEWED:
        e->data.lease_renewed.leader = e->node;
        e->data.lease_renewed.term = adv_chance(a, 80) ? e->term : adv_term(a);
        e->data.lease_renewed.map_version = adv_version(a);
        e->data.lease_renewed.topology_version = adv_version(a);
        break;
    case AETHER_EVT_LEADERSHIP_LOST:
        e->data.leadership_lost.leader = adv_chance(a, 70) && a->leader.len != 0 ? a->leader : e->node;
        e->data.leadership_lost.term = adv_chance(a, 70) ? a->term : e->term;
        aether_event_set_reason(e->data.leadership_lost.reason, "adversary");
        break;
    case AETHER_EVT_SHARD_ASSIGNED: { /* a batch of one (adv_forge_event made it) */
        uint32_t n = 1 + (uint32_t)aether_rng_below(&a->rng, AETHER_REPLICATION_MAX);
        aether_shard_owners *so = &e->data.shard_assigned.shards[0];
        aether_event_nodes_ix ix;
        so->shard = adv_shard(a);
        if (aether_event_nodes_ix_init(&ix, e) != AETHER_OK)
            break; /* no owners: still a well-formed forgery */
        for (uint32_t i = 0; i < n; i++) { /* bounded: AETHER_REPLICATION_MAX */
            aether_node_id id = adv_id_pick(a, &known);
            uint16_t idx;
            bool dup = false; /* duplicates among n would not encode */
            if (aether_event_nodes_ix_add(&ix, &id, &idx) != AETHER_OK)
                break;
            for (uint32_t j = 0; j < so->owner_count; j++) /* bounded: i */
                dup = dup || so->owners[j] == idx;
            if (!dup)
                so->owners[so->owner_count++] = idx;
        }
        aether_event_nodes_ix_fini(&ix);
        e->data.shard_assigned.map_version = adv_version(a);
        break;
    }
    case AETHER_EVT_SHARD_MIGRATED: {
        aether_shard_move *mv = &e->data.shard_migrated.moves[0];
        aether_event_nodes_ix ix;
        aether_node_id from, to;
        mv->shard = adv_shard(a);
        from = adv_id_pick(a, &known);
        to = adv_id_pick(a, &known);
        if (aether_event_nodes_ix_init(&ix, e) == AETHER_OK) {
            if (aether_event_nodes_ix_add(&ix, &from, &mv->from) != AETHER_OK ||
                aether_event_nodes_ix_add(&ix, &to, &mv->to) != AETHER_OK)
                mv->from = mv->to = UINT16_MAX; /* does not encode: the forgery is dropped */
            aether_event_nodes_ix_fini(&ix);
        }
        e->data.shard_migrated.map_version = adv_version(a);
        aether_event_set_reason(e->data.shard_migrated.reason, "adversary");
        break;
    }
    case AETHER_EVT_REBALANCE_STARTED:
        aether_event_set_reason(e->data.rebalance_started.reason, "adversary");
        e->data.rebalance_started.from_version = adv_version(a);
        e->data.rebalance_started.moves_planned = (uint32_t)aether_rng_below(&a->rng, 1000);
        break;
    case AETHER_EVT_REBALANCE_COMPLETED:
        e->data.rebalance_completed.map_version = adv_version(a);
        e->data.rebalance_completed.moved = (uint32_t)aether_rng_below(&a->rng, 1000);
        e->data.rebalance_completed.duration_ms = aether_rng_below(&a->rng, 100000);
        break;
    default: AETHER_ASSERT(!"event type");
    }
}

static aether_status adv_forge_event(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out,
                                     aether_err *err)
{
    aether_event_type t = (aether_event_type)(1 + aether_rng_below(&a->rng, AETHER_EVT_COUNT_ - 1));
    aether_event *e = t == AETHER_EVT_SHARD_ASSIGNED || t == AETHER_EVT_SHARD_MIGRATED
                          ? aether_event_create_batch(t, 1)
                          : aether_event_create(t);
    if (e == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "adversary: out of memory");
    int known;
    snprintf(e->cluster, sizeof(e->cluster), "%s", a->cluster);
    e->generation = adv_chance(a, 90)           ? a->generation
                    : a->generation + 3 == 0 ? aether_rng_next(&a->rng) /* no bound to draw below */
                                             : aether_rng_below(&a->rng, a->generation + 3);
    e->term = adv_term(a);
    e->node = adv_id_pick(a, &known);
    e->seq = adv_seq(a);
    e->ts_ms = wall_ms;
    adv_event_data(a, e);
    aether_status st = aether_codec_encode_event(e, &out->bytes, &out->len, err);
    if (st == AETHER_OK) {
        snprintf(out->tail, sizeof(out->tail), "evt.%s", aether_event_type_name(t));
        snprintf(out->what, sizeof(out->what), "%s from %s gen %" PRIu64 " term %" PRIu64 " seq %" PRIu64,
                 aether_event_type_name(t), e->node.str, e->generation, (uint64_t)e->term, e->seq);
    }
    aether_event_release(e);
    return st;
}

static aether_status adv_forge_map(aether_adversary *a, aether_adv_msg *out, aether_err *err)
{
    uint32_t shards = a->shard_count > 0 ? a->shard_count : 64;
    uint32_t repl = a->replication > 0 ? a->replication : 1;
    if (adv_chance(a, 10)) /* another shape */
        shards = adv_chance(a, 50) ? shards * 2 : shards / 2 + 1;
    aether_shardmap_builder *b = NULL;
    aether_shardmap *map = NULL;
    aether_status st = aether_shardmap_builder_create(shards, repl, &b, err);
    uint32_t n_nodes = 1 + (uint32_t)aether_rng_below(&a->rng, 3);
    aether_node_index idx[3];
    aether_node_id first = {0};
    for (uint32_t i = 0; i < n_nodes && st == AETHER_OK; i++) { /* bounded: 3 */
        int known;
        aether_node_id id = adv_id_pick(a, &known);
        if (i == 0)
            first = id;
        st = aether_shardmap_builder_add_node(b, &id, &idx[i], err);
    }
    for (uint32_t sh = 0; sh < shards && st == AETHER_OK; sh++) /* bounded: shards */
        st = aether_shardmap_builder_set_owners(b, sh, &idx[aether_rng_below(&a->rng, n_nodes)], 1, err);
    uint64_t version = adv_version(a), term = adv_term(a);
    if (st == AETHER_OK) {
        aether_shardmap_builder_set_version(b, version);
        aether_shardmap_builder_set_term(b, term);
        st = aether_shardmap_build(b, &map, err);
    }
    if (st == AETHER_OK)
        st = aether_shardmap_codec_encode(map, 0, &out->bytes, &out->len, err);
    aether_shardmap_builder_destroy(b);
    aether_shardmap_destroy(map);
    if (st == AETHER_OK) {
        snprintf(out->tail, sizeof(out->tail), "map");
        snprintf(out->what, sizeof(out->what), "map v%" PRIu64 " term %" PRIu64 " (%u shards, %u nodes, first %s)",
                 version, term, shards, n_nodes, first.str);
    }
    return st;
}

static aether_status adv_forge_heartbeat(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out,
                                         aether_err *err)
{
    aether_codec_header h;
    memset(&h, 0, sizeof(h));
    int known;
    snprintf(h.cluster, sizeof(h.cluster), "%s", a->cluster);
    h.generation = a->generation;
    h.term = adv_term(a);
    h.node = adv_id_pick(a, &known);
    h.ts_ms = wall_ms;
    uint64_t inc = adv_incarnation(a, &h.node);
    aether_status st = aether_codec_encode_heartbeat(&h, inc, &out->bytes, &out->len, err);
    if (st == AETHER_OK) {
        snprintf(out->tail, sizeof(out->tail), "hb.%s", h.node.str);
        snprintf(out->what, sizeof(out->what), "heartbeat of %s incarnation %" PRIu64, h.node.str, inc);
    }
    return st;
}

/* JoinCluster: an id (a member's unless that family is left out, or made
 * up), its incarnation, an address of the adversary's. */
static aether_status adv_join(aether_adversary *a, aether_command *c, aether_err *err)
{
    int known;
    aether_node_id id = adv_id_pick(a, &known);
    if ((a->without & AETHER_ADV_WITHOUT_JOIN_INCARNATIONS) && adv_known(a, &id) >= 0) {
        char s[AETHER_NODE_ID_LEN_MAX + 1];
        snprintf(s, sizeof(s), "adv-j%u", (unsigned)aether_rng_below(&a->rng, 8));
        aether_status st = aether_node_id_from_cstr(s, &id, err);
        AETHER_ASSERT(st == AETHER_OK);
    }
    char addr[32];
    snprintf(addr, sizeof(addr), "evil:%" PRIu64, ++a->made_up);
    aether_status st = aether_node_info_make(&c->data.join.info, id.str, addr, NULL, AETHER_NODE_ACTIVE,
                                             adv_incarnation(a, &id), 0, err);
    c->data.join.terms = a->terms;
    if (adv_chance(a, 10)) /* another shape */
        c->data.join.terms.shard_count = a->terms.shard_count * 2;
    c->data.join.map_term = adv_chance(a, 50) ? 0 : adv_term(a);
    return st;
}

static aether_status adv_forge_command(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out,
                                       aether_err *err)
{
    aether_command c;
    memset(&c, 0, sizeof(c));
    int known;
    c.type = (aether_command_type)(1 + aether_rng_below(&a->rng, AETHER_CMD_COUNT_ - 1));
    snprintf(c.cluster, sizeof(c.cluster), "%s", a->cluster);
    c.generation = a->generation;
    c.term = adv_term(a);
    c.sender = adv_id_pick(a, &known);
    aether_status st = AETHER_OK;
    const char *subject = NULL;
    switch (c.type) {
    case AETHER_CMD_JOIN_CLUSTER: st = adv_join(a, &c, err); subject = c.data.join.info.id.str; break;
    case AETHER_CMD_LEAVE_CLUSTER:
        c.data.leave.node = adv_id_pick(a, &known);
        if ((a->without & AETHER_ADV_WITHOUT_OPERATOR_COMMANDS) && adv_known(a, &c.data.leave.node) >= 0) {
            /* An operator's drain of a member: an id no member has instead. */
            char s[AETHER_NODE_ID_LEN_MAX + 1];
            snprintf(s, sizeof(s), "adv-l%u", (unsigned)aether_rng_below(&a->rng, 8));
            aether_status ist = aether_node_id_from_cstr(s, &c.data.leave.node, err);
            AETHER_ASSERT(ist == AETHER_OK);
        }
        subject = c.data.leave.node.str;
        break;
    case AETHER_CMD_MARK_NODE_FAILED:
        c.data.mark_failed.node = adv_id_pick(a, &known);
        c.data.mark_failed.silent_ms = aether_rng_below(&a->rng, 20000);
        c.data.mark_failed.force = adv_chance(a, 5) && !(a->without & AETHER_ADV_WITHOUT_OPERATOR_COMMANDS);
        subject = c.data.mark_failed.node.str;
        break;
    case AETHER_CMD_ELECT_LEADER:
        c.data.elect.candidate = adv_id_pick(a, &known);
        subject = c.data.elect.candidate.str;
        break;
    case AETHER_CMD_ASSIGN_SHARDS: subject = ""; break;
    case AETHER_CMD_REBALANCE_SHARDS:
        aether_event_set_reason(c.data.rebalance.reason, "adversary");
        c.data.rebalance.release_brake = adv_chance(a, 30);
        subject = c.data.rebalance.release_brake ? "release brake" : "";
        break;
    default: AETHER_ASSERT(!"command type");
    }
    if (st == AETHER_OK)
        st = aether_codec_encode_command(&c, wall_ms, &out->bytes, &out->len, err);
    if (st == AETHER_OK) {
        snprintf(out->tail, sizeof(out->tail), "cmd.%s", aether_command_type_name(c.type));
        char inc[40] = "";
        if (c.type == AETHER_CMD_JOIN_CLUSTER)
            snprintf(inc, sizeof(inc), " incarnation %" PRIu64, c.data.join.info.incarnation);
        snprintf(out->what, sizeof(out->what), "%s %s%s from %s term %" PRIu64 "%s",
                 aether_command_type_name(c.type), subject, inc, c.sender.str, (uint64_t)c.term,
                 c.type == AETHER_CMD_MARK_NODE_FAILED && c.data.mark_failed.force ? " (force)" : "");
    }
    return st;
}

static aether_status adv_forge(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out, aether_err *err)
{
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    if (r < 40)
        return adv_forge_event(a, wall_ms, out, err);
    if (r < 55)
        return adv_forge_map(a, out, err);
    if (r < 70)
        return adv_forge_heartbeat(a, wall_ms, out, err);
    return adv_forge_command(a, wall_ms, out, err);
}

/* ---- replaying and garbling ---------------------------------------------------- */

static const adv_slot *adv_captured(aether_adversary *a)
{
    if (a->n_captured == 0)
        return NULL;
    uint32_t k = (uint32_t)aether_rng_below(&a->rng, a->n_captured);
    for (uint32_t kind = 0; kind < ADV_KINDS; kind++) { /* bounded: ADV_KINDS */
        if (k < a->n_slots[kind])
            return &a->slots[kind][k];
        k -= a->n_slots[kind];
    }
    AETHER_ASSERT(!"n_captured counts the slots");
    return NULL;
}

static aether_status adv_replay(aether_adversary *a, const adv_slot *s, aether_adv_msg *out, aether_err *err)
{
    out->bytes = malloc(s->len);
    if (out->bytes == NULL)
        return aether_err_set(err, AETHER_ENOMEM, "adversary: out of memory");
    memcpy(out->bytes, s->bytes, s->len);
    out->len = s->len;
    snprintf(out->tail, sizeof(out->tail), "%s", s->tail);
    snprintf(out->what, sizeof(out->what), "copy of a genuine %s (%zu bytes)", s->tail, s->len);
    (void)a;
    return AETHER_OK;
}

/* Replaces the first run of digits at or after a random offset by a number
 * too large for any field (or, without ahead terms, by 0). */
static bool adv_huge_number(aether_adversary *a, aether_adv_msg *m)
{
    size_t from = (size_t)aether_rng_below(&a->rng, m->len);
    size_t i = from;
    while (i < m->len && (m->bytes[i] < '0' || m->bytes[i] > '9')) /* bounded: len */
        i++;
    if (i == m->len)
        return false;
    size_t j = i;
    while (j < m->len && m->bytes[j] >= '0' && m->bytes[j] <= '9') /* bounded: len */
        j++;
    const char *huge = (a->without & AETHER_ADV_WITHOUT_AHEAD_TERMS) ? "0" : "99999999999999999999999";
    size_t hl = strlen(huge);
    char *b = malloc(m->len - (j - i) + hl);
    if (b == NULL)
        return false;
    memcpy(b, m->bytes, i);
    memcpy(b + i, huge, hl);
    memcpy(b + i + hl, m->bytes + j, m->len - j);
    free(m->bytes);
    m->len = m->len - (j - i) + hl;
    m->bytes = b;
    return true;
}

/* A map of format 2 (binary, shardmap_codec.h): its term sits at bytes
 * 20..27 of the header, where no digit test applies. */
#define ADV_MAP_TERM_AT 20u
static bool adv_binary_map(const aether_adv_msg *m)
{
    return m->len >= AETHER_SHARDMAP_CODEC_HEADER_LEN &&
           memcmp(m->bytes, AETHER_SHARDMAP_CODEC_MAGIC, 4) == 0;
}

/* The binary map's "huge number": its term set to 2^64-1 (refused: above
 * 2^63-1) or 2^63-1 (decodes: a term far ahead); without ahead terms, 0. */
static void adv_map_term(aether_adversary *a, aether_adv_msg *m)
{
    uint64_t t = (a->without & AETHER_ADV_WITHOUT_AHEAD_TERMS) ? 0
                 : aether_rng_below(&a->rng, 2)                 ? UINT64_MAX
                                                                : (uint64_t)INT64_MAX;
    for (unsigned i = 0; i < 8; i++)
        m->bytes[ADV_MAP_TERM_AT + i] = (char)(t >> (8 * i));
}

static void adv_garble(aether_adversary *a, aether_adv_msg *m)
{
    bool binary = adv_binary_map(m);
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    const char *how;
    if (r < 40 && m->len > 1) {
        m->len = (size_t)aether_rng_below(&a->rng, m->len);
        how = "truncated";
    } else if (r < 70) {
        uint32_t flips = 1 + (uint32_t)aether_rng_below(&a->rng, 4);
        for (uint32_t i = 0; i < flips; i++) { /* bounded: 4 */
            size_t at = (size_t)aether_rng_below(&a->rng, m->len);
            char c = (char)aether_rng_below(&a->rng, 256);
            bool digit = binary ? at >= ADV_MAP_TERM_AT && at < ADV_MAP_TERM_AT + 8u
                                : (c >= '0' && c <= '9') || (m->bytes[at] >= '0' && m->bytes[at] <= '9');
            if (!(a->without & AETHER_ADV_WITHOUT_AHEAD_TERMS) || !digit) /* no digit: no term raised */
                m->bytes[at] = c;
        }
        how = "bytes flipped";
    } else if (r < 90 && binary) {
        adv_map_term(a, m);
        how = "the term made huge";
    } else if (r < 90 && adv_huge_number(a, m)) {
        how = "a number made huge";
    } else {
        size_t n = (size_t)aether_rng_below(&a->rng, m->len + 1);
        for (size_t i = 0; i < n; i++) /* bounded: len */
            m->bytes[i] = (char)aether_rng_below(&a->rng, 256);
        m->len = n;
        how = "junk";
    }
    char what[AETHER_ADV_WHAT_MAX];
    snprintf(what, sizeof(what), "%s", m->what);
    snprintf(m->what, sizeof(m->what), "%s: %.150s", how, what);
}

aether_status aether_adversary_next(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out,
                                    aether_err *err)
{
    memset(out, 0, sizeof(*out));
    uint32_t r = (uint32_t)aether_rng_below(&a->rng, 100);
    const adv_slot *s = r >= 50 ? adv_captured(a) : NULL;
    aether_status st;
    if (s != NULL && r < 75) {
        out->cls = AETHER_ADV_REPLAYED;
        st = adv_replay(a, s, out, err);
    } else if (s != NULL) {
        out->cls = AETHER_ADV_MALFORMED;
        st = adv_replay(a, s, out, err);
    } else {
        out->cls = r >= 75 ? AETHER_ADV_MALFORMED : AETHER_ADV_FORGED;
        st = adv_forge(a, wall_ms, out, err);
    }
    if (st == AETHER_OK && out->cls == AETHER_ADV_MALFORMED && out->len > 0)
        adv_garble(a, out);
    if (st != AETHER_OK) {
        aether_adv_msg_fini(out);
        return st;
    }
    a->made[out->cls]++;
    return AETHER_OK;
}
