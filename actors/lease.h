/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lease.h: leadership lease logic on top of the lease and state stores
 * (actors layer; DESIGN 2.4).
 *
 * These are the steps the LeadershipLease actor takes: acquire, renew,
 * reconcile after an unknown outcome, resign, and the "may I act?" check.
 * They are plain functions over two aether_kv stores and an injected clock;
 * they block for as long as the store calls do (NATS: ~0.15 ms each).
 *
 * Threading: a holder (aether_lease_held) is owned by one actor and is
 * passed to at most one of these calls at a time; the actor keeps at most
 * one lease write outstanding (the reconcile rule below relies on it). The
 * config is immutable but for restart_waited, restart_revision and
 * own_stopped_term (its
 * owning actor's). Stores may be shared with other nodes and threads.
 *
 * The lease key (cfg.lease_key in the lease bucket, whose TTL must equal
 * ttl_ms) holds a compact JSON value:
 *     {"leader":"node-a","ttl_ms":1000,"term":42,"nonce":"9f86d081884c7d65"}
 * "term" is 0 while the holder is still establishing its term (the create
 * and any advancing updates) and the term afterwards (renewals write it).
 * "nonce" is drawn once per acquisition from the caller's aether_rng: a
 * holder recognises its own writes by it when it re-reads after a timeout,
 * even against a later incarnation of the same node id.
 * "gen" (optional, 16 lowercase hex digits) is the generation the holder
 * recorded its term in (below); renewals write it, the establishing writes
 * (term 0) do not know it yet and omit it, and so does a holder from before
 * generations: absent means "not said", never a generation of its own.
 * The state bucket (no TTL) holds the highest recorded term under
 * cfg.term_key as decimal ASCII ("42"), and the cluster's generation under
 * cfg.generation_key as 16 lowercase hex digits ("5be0c2a1d7f3e944", never
 * all zeros).
 *
 * GENERATION (DESIGN 2.4: "if both buckets are lost, the cluster starts a
 * new generation")
 * A generation is one life of the state bucket: a random 64-bit id drawn
 * from the candidate's aether_rng and created, create-if-absent, by the
 * first candidate that finds the state bucket without one (acquire step
 * 2a); a racer's create fails (EEXIST) and it reads the winner's. It lives
 * exactly as long as the term record beside it: the two are lost together
 * with the state bucket, and nothing else ever writes the key. So:
 *  - state bucket lost alone, a leader alive: the leader writes back the
 *    generation it holds its term in, then its term
 *    (aether_lease_record_again): same generation, terms continue above the
 *    record as before;
 *  - state bucket lost with no leader alive, or both buckets lost: the next
 *    candidate finds no generation and creates a new one. Its term is still
 *    taken above cfg.term_floor (the highest term it saw), so for nodes that
 *    lived through the loss terms keep rising where they can; but what is
 *    guaranteed is only that (generation, term) never repeats: within a
 *    generation terms are above its record as below, and two generations
 *    are told apart by their ids (2^-64 per pair to collide).
 * Every envelope and stored value carries the generation, and a node
 * fences on (generation, term): it adopts a generation only by reading it
 * from the state bucket (the authority), and drops messages of any other
 * (member_internal.h, "Generations").
 * Upgrade: a state bucket from before generations (a term record, no
 * generation) gets one at the next acquire; its record still counts.
 * A generation is acted on only a ttl after it began (step 2c): the
 * candidate that creates it cannot know whether a holder of a lost
 * generation still acts (a process that never saw a term has no floor), so
 * it waits as step 2b does. Meanwhile that holder's renewal fails in the
 * new lease bucket, and its messages carry the old generation, dropped by
 * every node that read the new one.
 *
 * DESIGN
 * Term = the lease key revision at which the holder's establishment ended.
 * Acquire:
 *  1. Send create(lease_key, {self, ttl, term 0, nonce}); acquired_at =
 *     renewed_at = the clock read just before sending. EEXIST: someone
 *     holds it, return EEXIST. EUNKNOWN: re-read the key; our nonce there
 *     means the create happened (continue), anything else means it did not
 *     (EEXIST if another holder is there, EUNAVAILABLE if the key is absent).
 *  2a. Read the generation G from the state store (cfg.generation_key);
 *     absent: create it with a new random id (create-if-absent; EEXIST:
 *     read the winner's). A store failure here fails the acquire (the key
 *     is released). G is read again in every round of 2-4, after R, so a
 *     record CAS that wins (step 4) recorded T in G.
 *  2. Read the recorded term R and its revision from the state store
 *     (absent = R 0, or cfg.term_floor when given: the state bucket was
 *     lost, and the highest term this node saw is the best record left).
 *  2c. If step 2a created the generation and the store recorded no term
 *     (R absent: a brand-new cluster, or a state bucket lost with the lease
 *     bucket, or with no leader to write it back), a holder of the lost
 *     generation may still act until its deadline, a ttl after its last
 *     renewal at most, and nothing in the empty stores says so (a process
 *     that never saw a term has no floor for step 2b, and a floor below our
 *     revision lets 2b through). So, unless cfg.restart_waited, return
 *     AETHER_ESTALE (even if the highest term this node saw is its own
 *     cfg.own_stopped_term: a later one it missed may still be held:
 *     aether-sim --soak --seed 100133 --duration 120 --extra-faults
 *     misfit,twin,kv-loss-both,forge, n13 stopped at term 47 and acted beside
 *     n5's term 65) and leave the key, as in 2b: nobody gets
 *     it before it expires, at least a ttl after we found the store empty,
 *     so after every holder of the lost generation has stopped; whoever
 *     wins then finds the generation and goes on. The price is one ttl
 *     before the first leader of a new cluster. Likewise, if step 2a fails
 *     (its create may have landed), the key is left to expire.
 *  2b. Our revision <= R means the lease bucket was deleted and re-created
 *     (within one bucket life every create is above every recorded term
 *     recorded before it; a candidate stalled after its create also gets
 *     here, and waiting does it no harm):
 *     the lease key under which the holder of term R acted is gone early,
 *     not expired, and that holder may act until its own deadline, at most
 *     a ttl after the loss. Unless cfg.restart_waited (the caller waited a
 *     ttl since it first saw this) or the stored R is cfg.own_stopped_term
 *     (the holder of R is this node, and it has stopped; not a floor
 *     standing in for R, which may miss later terms), return AETHER_ESTALE
 *     and leave the key (term 0, never acted on) to expire by TTL. Not
 *     releasing it matters: every create and delete moves the bucket
 *     counter, and candidates releasing in turn would soon push it past R
 *     and erase the evidence. Held, the key keeps the others out (EEXIST)
 *     until it expires, at least a ttl after the loss, by when the holder
 *     of R has stopped; a create after that may find the counter past R
 *     and act, safely.
 *  3. While our lease revision <= R: send update(lease_key, same value,
 *     expected = our revision); each success moves our revision on (the
 *     bucket counter is shared by all writes) and sets renewed_at to its
 *     send time. At most cfg.advance_steps_max updates per acquire in all
 *     (AETHER_LEASE_ADVANCE_STEPS_MAX by default): past that the key is
 *     released (conditional delete) and AETHER_ESTATE returned. The progress
 *     is kept: the bucket counter never goes back, so the next acquire - ours
 *     or another node's - starts from where this one stopped.
 *     A gap of AETHER_LEASE_COMPACT_GAP_MIN or more is crossed in one step
 *     instead. It arises when the lease bucket was deleted and re-created
 *     (its revisions restarted at 1 under a record that may be in the
 *     hundreds of thousands, one per renewal), and also when our create
 *     was long ago: the candidate stalled between step 1 and step 2 (a
 *     SIGSTOP, a starved process) while others led and renewed. Compact the
 *     lease bucket to R (every entry below R goes, and the next write's
 *     revision is at least R; aether_kv_compact) and send the create of
 *     step 1 again. Safe: a lease someone may act on has a revision >= R.
 *     Within one bucket life, the holder of R wrote the key at R (its key
 *     stays at exactly R until its first renewal, above it after), and any
 *     later holder is above R. A key whose last write is below R was
 *     either written in this bucket life before R's holder created the key
 *     (so it had expired or been deleted by then), or it is an
 *     establishing write in a re-created bucket (term 0: its writer needs
 *     a revision above R and a CAS on the record before it acts). So what
 *     goes is our own establishing write, markers, or another candidate's
 *     establishing write (that candidate's next CAS fails: it never acts).
 *     Not R + 1: that took the live lease of R's holder away without a
 *     revision (issue 12: chaos seed 42 had terms 142 and 143 acting at
 *     once). A create that then finds the key taken is EEXIST, as in step
 *     1; a create at exactly R (a re-created bucket with nothing there
 *     yet) is carried past R by one update below.
 *  4. T = our revision (> R). Record it with CAS on the state key: update
 *     with expected = R's revision (create if R was absent). If the CAS loses
 *     (ECONFLICT/EEXIST) go back to 2; at most AETHER_LEASE_RECORD_ATTEMPTS_MAX
 *     rounds of 2-4. EUNKNOWN: re-read; the key holding exactly T means
 *     ours was recorded.
 *  5. Re-read the lease key: unless it holds our write at our revision,
 *     return AETHER_ECONFLICT (releasing, conditionally) - recorded or
 *     not, T is never acted on. A second line behind nats_kv.h step 2b: a
 *     store that let another create or CAS through on top of ours shows
 *     that write here, and its writer records a higher term and leads
 *     (issue 12). It cannot see a write not yet applied.
 *  6. Return AETHER_OK: the holder has term T in generation G
 *     (held->generation). It acts only while
 *     aether_lease_may_act(); establishing may have used up part of the ttl.
 *  Any failure after step 2b releases the key (conditional delete with our
 *  revision, result ignored) so followers can campaign at once; a lost
 *  CAS on the lease key (ECONFLICT) means our lease expired and someone
 *  else won it. A failure before it - the state store unreadable at step
 *  2 or 2a, or holding junk - leaves the key to expire instead, never
 *  acted on, as 2b and 2c do: every create and delete moves the bucket
 *  counter, and in a re-created lease bucket candidates releasing in turn
 *  while the state store is out would push it past R within milliseconds
 *  and erase step 2b's evidence (aether-sim --soak --seed 100186 --duration
 *  120 --extra-faults misfit,twin,kv-loss-both,forge: eight revisions in
 *  300 ms, then "I1: n6 and n4 both act as leader"). Kept, the keys let the
 *  counter move once per ttl at most until someone has waited.
 * Renew: send update(lease_key, {.., term T, nonce}, expected = our
 *  revision) with renewed_at = the clock read just before sending (the
 *  server starts the TTL later, never earlier, so now < renewed_at + ttl -
 *  margin stays inside the server's TTL). ECONFLICT = lost. EUNAVAILABLE =
 *  not renewed (the old deadline stands). EUNKNOWN = maybe: the holder is
 *  marked pending and must call aether_lease_reconcile before the next
 *  renew; until it succeeds the old deadline stands.
 * Reconcile: get the key. Our nonce at a revision above ours: the renewal
 *  was applied (renewed_at = its send time). Our nonce at our revision: not
 *  applied. Absent, someone else's, or lower: lost (ECONFLICT).
 * Resign: conditional delete(lease_key, expected = our revision): it can
 *  only ever remove our own lease, never a successor's. Watchers see the
 *  delete and campaign at once.
 * Writes check the value: every conditional write of a holder (renewal,
 *  advancing update, resign, release) first reads the key and goes on only
 *  if it holds our nonce at our revision; otherwise ECONFLICT, nothing
 *  sent. A conditional write names a revision only, and revisions repeat
 *  across lives of the lease bucket (re-created, it numbers from 1 again,
 *  and step 3's compaction carries the new life up to the record), so a
 *  write naming ours can land on another holder's write of the same number
 *  (ABA: aether-sim --soak --seed 100033 --duration 120 --extra-faults
 *  misfit,twin,kv-loss-both,forge, n7 paused through the loss of both
 *  buckets resigned by deleting n5's key of term 33, and led term 35
 *  beside it). A renewal counts its new deadline from the clock read
 *  before that read, not before the write: the read saw our write, so the
 *  bucket was re-created after it, and nobody acts in the new life before
 *  a ttl after that (steps 2b, 2c); our deadline ends before even if the
 *  write lands in the new life. What remains: a delete sent right after
 *  the read, delayed in flight for more than a ttl, landing in a new life
 *  on an acting holder's write of our exact revision. The store cannot
 *  make the check and the write one step (JetStream conditions a write on
 *  sequences only).
 *
 * Why terms never repeat, even when the lease bucket is deleted and
 * re-created (its revisions restart at 1):
 *  - a holder acts on T only after step 4 recorded T in the state store by
 *    a CAS that required T > R, where R is the record as of the revision the
 *    CAS named. So the record only grows, and each acted-on term is above
 *    every term recorded (hence acted on) before it;
 *  - within one bucket life, two terms are revisions of two distinct writes,
 *    and a bucket counter never repeats.
 * This needs the state bucket to outlive the lease bucket: if both are lost
 * together, the record is gone; the winner then continues above the
 * highest term it has seen (cfg.term_floor), which holds every term acted
 * on while it lived, but not terms of a cluster it never saw (all nodes
 * restarted with an empty store). Terms may then repeat, but the pair
 * (generation, term) does not: the lost state bucket took its generation
 * with it, and the winner records its term in a new one (GENERATION above).
 * A state bucket lost on
 * its own is re-created by the store (nats_kv.h step 5) and the leader
 * records its term again (aether_lease_record_again, at every renewal
 * that finds the record below its term), so the record survives as long
 * as the leader does.
 * Why at most one holder acts at a time (I1): the lease key is won only by
 * create, kept only by CAS, and expires at put_at + ttl on the store, where
 * put_at >= the holder's send time; the holder stops at send + ttl - margin.
 * This needs the store's create and CAS to be single-winner even for writes
 * sent at the same instant; nats-server 2.9 on R3 buckets is not (two
 * creates over one delete marker both applied, at consecutive revisions:
 * issue 12), and the NATS lease store makes it so (nats_kv.h step 2b).
 * Nor may anything take a live lease away without a revision of its own:
 * step 3's compaction stops at R, whose holder's key may be there.
 */
#ifndef AETHER_LEASE_H
#define AETHER_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "kv_store.h"
#include "node.h"
#include "node_id.h"
#include "rng.h"
#include "status.h"

#define AETHER_LEASE_KEY_DEFAULT "leader"
#define AETHER_LEASE_TERM_KEY_DEFAULT "term"
#define AETHER_LEASE_GENERATION_KEY_DEFAULT "generation"
/* A generation as text: 16 lowercase hex digits. */
#define AETHER_LEASE_GENERATION_TEXT_LEN 16u
/* Lease-key updates one acquire may spend advancing past the recorded term. */
#define AETHER_LEASE_ADVANCE_STEPS_MAX 4096u
/* A term floor this high is not believed (it leaves room to count on). */
#define AETHER_LEASE_TERM_FLOOR_MAX (UINT64_C(1) << 62)
/* A gap to the recorded term at least this wide is crossed by compacting
 * the lease bucket instead of updating the key once per revision. */
#define AETHER_LEASE_COMPACT_GAP_MIN 16u
/* Rounds of read-record / advance / CAS-record before giving up. */
#define AETHER_LEASE_RECORD_ATTEMPTS_MAX 8u
/* The encoded lease value never exceeds this. */
#define AETHER_LEASE_VALUE_LEN_MAX 256u
/* The recorded term is at most 20 decimal digits. */
#define AETHER_LEASE_TERM_TEXT_MAX 20u

typedef struct aether_lease_config {
    aether_kv *lease_kv;       /* the lease bucket; its TTL must equal ttl_ms */
    aether_kv *state_kv;       /* the state bucket; no TTL; outlives the lease bucket */
    aether_clock *clock;       /* this node's monotonic clock */
    aether_node_id self;       /* this node */
    const char *lease_key;     /* NULL = AETHER_LEASE_KEY_DEFAULT */
    const char *term_key;      /* NULL = AETHER_LEASE_TERM_KEY_DEFAULT */
    const char *generation_key; /* NULL = AETHER_LEASE_GENERATION_KEY_DEFAULT */
    uint64_t ttl_ms;           /* 1..AETHER_LEASE_TTL_MS_MAX */
    uint64_t safety_margin_ms; /* < ttl_ms: covers clock drift */
    uint32_t advance_steps_max; /* 0 = AETHER_LEASE_ADVANCE_STEPS_MAX */
    /* Optional (NULL = none): the highest term this node has seen (an
     * atomic another actor may raise; read relaxed). When the state store
     * records no term at all - the state bucket was lost - acquire step 2
     * takes it as R, so a node that lived through the loss never reuses a
     * term it knew. Ignored at or above AETHER_LEASE_TERM_FLOOR_MAX. */
    const uint64_t *term_floor;
    /* The owning actor sets this between calls once it has waited a ttl since
     * an acquire returned AETHER_ESTALE (step 2b). */
    bool restart_waited;
    /* With restart_waited: the revision of the kept key the caller waited
     * on (0 = none known). The wait counts only if this acquire's create
     * lands above it, i.e. in the same lease-bucket life: a bucket lost
     * again since restarts its revisions below it, and that is a new
     * restart to wait for (kept keys move the counter once per ttl at most,
     * see "Any failure"). */
    uint64_t restart_revision;
    /* Set by the owning actor too: the last term this node held and has
     * stopped acting on (0 = none). When it is the recorded term, its
     * holder - this node - acts no more, so step 2b needs no wait. */
    aether_term own_stopped_term;
} aether_lease_config;

/* Checks the config, including that the lease bucket's TTL equals ttl_ms and
 * the state bucket has none. AETHER_EINVAL naming the field otherwise. */
aether_status aether_lease_config_validate(const aether_lease_config *cfg, aether_err *err);

/* What the lease key holds. */
typedef struct aether_lease_value {
    aether_node_id leader;
    uint64_t ttl_ms;
    aether_term term; /* AETHER_TERM_NONE while the term is being established */
    uint64_t nonce;
    uint64_t generation; /* 0 = not said ("gen" absent; see the header) */
} aether_lease_value;

/* Encodes into buf (NUL-terminated); *len_out without the NUL. AETHER_EINVAL
 * if the value is malformed or does not fit. */
aether_status aether_lease_value_encode(const aether_lease_value *v, char *buf, size_t cap,
                                        size_t *len_out, aether_err *err);
/* Strict decode: exactly the four fields, or five with "gen" (16 hex
 * digits, not all zeros), valid leader, ttl in range.
 * AETHER_EINVAL with the reason otherwise; *out zeroed then. */
aether_status aether_lease_value_decode(const void *buf, size_t len, aether_lease_value *out,
                                        aether_err *err);

/* A lease this node holds (or is establishing). Owned by one actor. */
typedef struct aether_lease_held {
    aether_lease lease;          /* leader = self, term, ttl, acquired/renewed_at, margin */
    uint64_t revision;           /* the lease key's revision after our last write known
                                    to have been applied */
    uint64_t nonce;              /* tells our writes from anyone else's */
    bool pending;                /* a renewal's outcome is unknown: reconcile first */
    uint64_t pending_sent_at_ns; /* when that renewal was sent (valid if pending) */
    aether_term floor_used;      /* acquire found no recorded term and used
                                    cfg.term_floor instead (0 = it did not) */
    uint64_t generation;         /* the generation the term is recorded in (never 0
                                    once established) */
    bool generation_created;     /* this acquire created that generation (step 2a) */
} aether_lease_held;

/* Runs the acquire protocol (DESIGN steps 1-6). rng: this actor's generator
 * (for the nonce). On AETHER_OK *held is the new lease with its term.
 * Otherwise *held is zeroed and the status says why:
 *  AETHER_EEXIST      another node holds the lease;
 *  AETHER_ECONFLICT   we won the key but lost it while establishing the term;
 *  AETHER_ESTATE      the term gap needs more than advance_steps_max updates
 *                     (progress kept, key released; campaign again);
 *  AETHER_ESTALE      the lease bucket restarted below the recorded term, or
 *                     this acquire began a generation in an empty store, and
 *                     cfg.restart_waited is false (the key is left to expire;
 *                     campaign again a ttl later with restart_waited set:
 *                     steps 2b, 2c);
 *  AETHER_EUNAVAILABLE, AETHER_EUNKNOWN  a store failed (a stray lease of
 *                     ours may exist until it expires; it is never acted on);
 *  AETHER_EINVAL      bad config or a malformed record in the stores. */
aether_status aether_lease_acquire(const aether_lease_config *cfg, aether_rng *rng,
                                   aether_lease_held *held, aether_err *err);

/* A holder is a value: renew, reconcile and resign never change *held.
 * They build the next holding aside and hand it back in *next (which may be
 * held itself), so a failed operation cannot half-change what the caller
 * holds: after a loss the caller still knows the term it lost (and says so
 * in LeadershipLost) and drops the holding itself. */

/* Extends the lease (see DESIGN). held must have a term and not be pending
 * (asserted). AETHER_OK: *next has renewed_at = send time, the new revision,
 * the same term. AETHER_EUNKNOWN: *next is *held marked pending; call
 * aether_lease_reconcile. Any other status (AETHER_ECONFLICT or
 * AETHER_ENOTFOUND: lost; AETHER_EUNAVAILABLE: not renewed): *next = *held,
 * unchanged. */
aether_status aether_lease_renew(const aether_lease_config *cfg, const aether_lease_held *held,
                                 aether_lease_held *next, aether_err *err);

/* Puts the holder's generation and term back in the state store when the
 * record there is below the term: the state bucket was deleted and
 * re-created empty (or the key lost), and without the record a later
 * lease-bucket loss could repeat terms (see "Why terms never repeat"). The
 * generation goes first (create-if-absent, held->generation: the holder's
 * term is the highest of its generation, so the same generation continues)
 * and then the term, by the same CAS as acquire step 4, so the record still
 * only grows. held must have a term (asserted). AETHER_OK: *rewritten says
 * whether it wrote; AETHER_ESTALE: the store holds another generation (a
 * candidate created one: the lease bucket was lost too and we are deposed);
 * otherwise the store's error (ECONFLICT or EEXIST: someone recorded
 * meanwhile; look again later). */
aether_status aether_lease_record_again(const aether_lease_config *cfg,
                                       const aether_lease_held *held, bool *rewritten,
                                       aether_err *err);

/* Resolves a pending renewal by re-reading the lease key. held must be
 * pending (asserted). AETHER_OK: *next is resolved (pending cleared);
 * *applied says whether the renewal took effect (if so revision and
 * renewed_at moved). AETHER_ECONFLICT: the lease is lost. AETHER_EUNAVAILABLE
 * / AETHER_EUNKNOWN: the read failed; try again (the old deadline stands
 * meanwhile). On any failure *next = *held, unchanged (still pending).
 * applied may be NULL. */
aether_status aether_lease_reconcile(const aether_lease_config *cfg, const aether_lease_held *held,
                                     aether_lease_held *next, bool *applied, aether_err *err);

/* Gives the lease up: conditional delete with our revision (reconciling a
 * pending renewal first). The holder must already have stopped acting;
 * whatever the status, it must not act on this lease again (the caller
 * drops *held). AETHER_OK (deleted), AETHER_ECONFLICT (it was not ours any
 * more: nothing to delete), AETHER_EUNAVAILABLE / AETHER_EUNKNOWN (it
 * expires by TTL instead). */
aether_status aether_lease_resign(const aether_lease_config *cfg, const aether_lease_held *held,
                                  aether_err *err);

/* True while the holder may act as leader:
 *     term != none  and  now_ns < renewed_at + ttl - safety_margin
 * (strict: at the deadline itself it has already stopped). safety_margin_ms
 * < ttl_ms (asserted). aether_lease_may_act(l, now, l->safety_margin_ms) ==
 * aether_lease_valid_at(l, now) for an established lease. Pure. */
bool aether_lease_may_act(const aether_lease *lease, uint64_t now_ns, uint64_t safety_margin_ms);

/* A follower's view: the lease key's value and revision. AETHER_ENOTFOUND
 * when nobody holds it; AETHER_EINVAL if it holds something malformed. */
aether_status aether_lease_read(const aether_lease_config *cfg, aether_lease_value *out,
                                uint64_t *revision_out, aether_err *err);

/* The state bucket's generation (0 when absent) and its revision (0 when
 * absent). AETHER_EINVAL if the key holds something else than a generation. */
aether_status aether_lease_generation(const aether_lease_config *cfg, uint64_t *generation_out,
                                      uint64_t *revision_out, aether_err *err);

/* A generation as its 16 hex digits (out: at least 17 bytes), and back
 * (exactly 16 lowercase hex digits, not all zeros; false otherwise). */
void aether_lease_generation_format(uint64_t generation, char *out, size_t cap);
bool aether_lease_generation_parse(const char *text, size_t len, uint64_t *out);

/* The highest recorded term (AETHER_TERM_NONE when none) and the state key's
 * revision (0 when absent). */
aether_status aether_lease_recorded_term(const aether_lease_config *cfg, aether_term *term_out,
                                         uint64_t *revision_out, aether_err *err);

#endif
