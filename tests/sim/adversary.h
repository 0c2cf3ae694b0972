/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adversary.h: an adversary on a cluster's bus (tests layer, the simulation library; issue 13 item
 * 6). Shared by aether-sim (the `adversary` fault kind, through
 * tests/sim/sim_adversary.h) and by tests/integration/nats_forge
 * --adversary (tools/chaos --adversary), so both forge the same messages.
 *
 * The adversary is anyone who can publish on the cluster's subjects and
 * subscribe to them (without a cluster secret: every client of the server).
 * It knows only what it sees: the caller hands it every genuine message it
 * receives (aether_adversary_observe: a subject tail and the bytes), from
 * which it learns the highest term and its sequence, the generation, the
 * leader, the members and their incarnations, the map's version and shape,
 * and the admission terms of a captured JoinCluster; it keeps a few
 * messages of each kind for replays. aether_adversary_next then makes one
 * message, as the bytes to publish on aether.<cluster>.<tail>:
 *   forged     a well-formed message built with the codec (transport/codec.h)
 *              or the map encoder: an event of any of the eleven types, a
 *              map, a heartbeat, or a command (JoinCluster, LeaveCluster,
 *              MarkNodeFailed, ElectLeader, AssignShards, RebalanceShards),
 *              with a term equal to, just below, just above, 1000 above or
 *              far above (up to 2^63-1) the highest seen, or 0; a seq near
 *              the present one, 1, or far ahead; node ids of members, of the
 *              leader and made up; incarnations equal, older, +1, +1000,
 *              0, 1 or 2^63-1; shards in and out of range; map versions
 *              behind and ahead;
 *   replayed   the bytes of a captured genuine message, unchanged, on its
 *              own subject (seconds or minutes later);
 *   malformed  a forged or captured message truncated, with bytes flipped,
 *              a number made huge, or replaced by junk.
 * Everything it draws comes from its seed: with the same observations in
 * the same order, the same messages.
 *
 * Two families of attack can be left out (`without`), so that a run on code
 * that does not yet defend against them shows what else breaks:
 *   ahead-terms        no term above the highest seen (forged or in a
 *                      malformed copy);
 *   join-incarnations  no JoinCluster naming a known member's id (the
 *                      take-over of an id by dictating its incarnation);
 *   operator-commands  no operator's command: no LeaveCluster naming a
 *                      member (one naming an id no member has instead), no
 *                      forced MarkNodeFailed, no replay of a captured
 *                      LeaveCluster or MarkNodeFailed. Without a cluster
 *                      secret such a command from any client is the
 *                      operator's (docs/runbook.md, "The cluster secret"):
 *                      it drains or fails nodes by right. aether-sim leaves
 *                      this family out unless --adversary-without says
 *                      otherwise ("none": everything); with it the oracle
 *                      still judges safety and liveness.
 *
 * Threading: one thread (an adversary is owned by its caller).
 */
#ifndef AETHER_ADVERSARY_H
#define AETHER_ADVERSARY_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "status.h"

typedef struct aether_adversary aether_adversary;

#define AETHER_ADV_WITHOUT_AHEAD_TERMS (1u << 0)
#define AETHER_ADV_WITHOUT_JOIN_INCARNATIONS (1u << 1)
#define AETHER_ADV_WITHOUT_OPERATOR_COMMANDS (1u << 2)

/* "ahead-terms,join-incarnations,operator-commands" (any of them, or
 * "none") into a mask of AETHER_ADV_WITHOUT_*; AETHER_EINVAL naming the
 * unknown word. */
aether_status aether_adversary_parse_without(const char *list, uint32_t *mask, aether_err *err);

typedef enum aether_adv_class {
    AETHER_ADV_FORGED = 0,
    AETHER_ADV_REPLAYED,
    AETHER_ADV_MALFORMED,
    AETHER_ADV_CLASS_COUNT_
} aether_adv_class;

const char *aether_adv_class_name(aether_adv_class c);

#define AETHER_ADV_TAIL_MAX 96u
#define AETHER_ADV_WHAT_MAX 200u

/* One message to publish. Release with aether_adv_msg_fini. */
typedef struct aether_adv_msg {
    aether_adv_class cls;
    char tail[AETHER_ADV_TAIL_MAX];  /* evt.<Type>, map, hb.<node>, cmd.<Command> */
    char *bytes;                     /* malloc'd; len bytes (not NUL-terminated in general) */
    size_t len;
    char what[AETHER_ADV_WHAT_MAX];  /* one line for a trace: class, kind, term, ids */
} aether_adv_msg;

void aether_adv_msg_fini(aether_adv_msg *m); /* NULL is fine */

/* cluster: the cluster's name (copied). AETHER_EINVAL (bad name) or
 * AETHER_ENOMEM; *out NULL then. */
aether_status aether_adversary_create(const char *cluster, uint64_t seed, uint32_t without,
                                      aether_adversary **out, aether_err *err);
void aether_adversary_destroy(aether_adversary *a); /* NULL is fine */

/* The admission terms to put in forged joins when no genuine JoinCluster
 * has been seen (an insider who read the configuration). */
void aether_adversary_set_admission(aether_adversary *a, const aether_admission *terms);

/* A genuine message received on aether.<cluster>.<tail>; bytes borrowed. */
void aether_adversary_observe(aether_adversary *a, const char *tail, const void *bytes, size_t len);

/* Makes the next message; wall_ms stamps forged envelopes. AETHER_ENOMEM
 * only; out zeroed then. */
aether_status aether_adversary_next(aether_adversary *a, uint64_t wall_ms, aether_adv_msg *out,
                                    aether_err *err);

/* What it has learned and made, for a summary line. */
typedef struct aether_adv_stats {
    uint64_t made[AETHER_ADV_CLASS_COUNT_];
    uint64_t observed;   /* genuine messages seen */
    uint64_t term;       /* the highest term seen */
    uint32_t ids;        /* node ids known */
} aether_adv_stats;

void aether_adversary_stats(const aether_adversary *a, aether_adv_stats *out);

#endif
