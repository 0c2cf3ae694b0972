/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailbox.h: a bounded many-producer single-consumer message queue on
 * Concurrency Kit's ck_ring indices with a per-slot commit (engine layer;
 * mailbox.c says why ck's in-order commit is not used).
 *
 * Messages are small fixed-size values copied into the ring (no allocation per
 * message); anything bigger travels as a pointer in msg.ptr whose ownership
 * the message type defines (see AETHER_MSG_REF in actor.h).
 *
 * Threading: aether_mailbox_send_mpsc and aether_mailbox_send_batch_mpsc
 * from any number of threads at once;
 * aether_mailbox_recv_sc from one consumer thread at a time (the actor's
 * runner). init/fini with no concurrent users.
 *
 * Bound: capacity is a power of two >= 2; as in ck_ring, one slot stays free,
 * so the mailbox holds capacity - 1 messages. A send that finds it full
 * returns AETHER_EFULL and is counted in full_count (a batch send that
 * finds room for only part of its batch sends that part and counts once);
 * nothing is dropped silently.
 */
#ifndef AETHER_MAILBOX_H
#define AETHER_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <ck_ring.h>

#include "status.h"

/* One message: 32 bytes, copied by value through the ring. */
typedef struct aether_msg {
    uint16_t type;   /* meaning defined by the receiving actor */
    uint16_t flags;  /* AETHER_MSG_* */
    uint32_t arg32;
    uint64_t arg64;
    uint64_t arg64b;
    void *ptr;       /* payload; ownership per type and flags */
} aether_msg;

/* msg.ptr is an aether_ref the message owns one reference of. */
#define AETHER_MSG_REF 0x0001u

#define AETHER_MAILBOX_CAPACITY_MIN 2u
#define AETHER_MAILBOX_CAPACITY_MAX (1u << 24)

typedef struct aether_mailbox {
    struct ck_ring ring;   /* ck's indices: producers CAS p_head, consumer owns c_head;
                            * p_tail is not used (mailbox.c) */
    aether_msg *slots;     /* immutable pointer after init; slot contents ordered by seq */
    unsigned int *seq;     /* immutable pointer after init; seq[t & mask] = t + 1 (store
                            * fence before it) publishes ticket t's slot to the consumer */
    uint32_t capacity;     /* immutable after init */
    uint64_t full_count;   /* atomic, relaxed: sends refused with AETHER_EFULL */
} aether_mailbox;

aether_status aether_mailbox_init(aether_mailbox *mb, uint32_t capacity);
void aether_mailbox_fini(aether_mailbox *mb);

/* Any thread. AETHER_OK or AETHER_EFULL (counted). */
aether_status aether_mailbox_send_mpsc(aether_mailbox *mb, const aether_msg *msg);

/* Any thread. Sends msgs[0..n) in order with one reservation (one CAS on
 * the producer index and one publication for the batch, not one per
 * message): as many as fit, a prefix, and returns how many. Fewer than n
 * means the mailbox was full: counted once in full_count. The messages of
 * one call sit next to each other in the mailbox. n == 0 sends nothing. */
uint32_t aether_mailbox_send_batch_mpsc(aether_mailbox *mb, const aether_msg *msgs, uint32_t n);

/* Consumer thread only. Copies up to max messages into out, oldest first;
 * returns how many. Messages from one producer come out in the order that
 * producer sent them. */
uint32_t aether_mailbox_recv_sc(aether_mailbox *mb, aether_msg *out, uint32_t max);

/* Any thread: messages reserved and not yet taken (committed or not);
 * exact only on the consumer thread with no producer mid-send, a snapshot
 * elsewhere. */
uint32_t aether_mailbox_depth(const aether_mailbox *mb);

/* Consumer thread only: true if the next message is committed, i.e. the
 * next recv returns at least one. */
bool aether_mailbox_ready_sc(const aether_mailbox *mb);

/* Consumer side: messages producers have reserved (committed or not) and the
 * consumer has not taken: p_head - c_head. The scheduling handshake reads
 * this, not the depth, because a producer's reservation is an atomic
 * read-modify-write, i.e. the one store of the send that is a full barrier
 * (actor.c). */
static inline uint32_t aether_mailbox_pending_sc(const aether_mailbox *mb)
{
    return ck_pr_load_uint(&mb->ring.p_head) - ck_pr_load_uint(&mb->ring.c_head);
}

static inline uint64_t aether_mailbox_full_count(const aether_mailbox *mb)
{
    return __atomic_load_n(&mb->full_count, __ATOMIC_RELAXED);
}

static inline bool aether_is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

#endif
