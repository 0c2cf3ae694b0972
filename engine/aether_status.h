/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether_status.h: the status every call of libaether returns (public,
 * installed as <aether/aether_status.h>; engine layer). Included by
 * <aether/aether.h>; C11 and C++ (no dependency but the C library).
 *
 * Every value is documented here once; each call's header says which of
 * them it returns and when. AETHER_OK is 0. A failing call of the public
 * API also leaves a sentence in aether_last_error() (aether_options.h).
 */
#ifndef AETHER_PUBLIC_STATUS_H
#define AETHER_PUBLIC_STATUS_H

/* Marks the symbols libaether.so exports; everything else is hidden
 * (-fvisibility=hidden and cmake/aether.map). */
#if defined(__GNUC__) || defined(__clang__)
#define AETHER_API __attribute__((visibility("default")))
#else
#define AETHER_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aether_status {
    AETHER_OK = 0,          /* success */
    AETHER_EINVAL,          /* an argument or input is malformed or out of range */
    AETHER_ENOMEM,          /* an allocation failed */
    AETHER_EFULL,           /* a bounded queue (mailbox, run queue) is full: backpressure */
    AETHER_ECLOSED,         /* the target (actor, executor, bus, node) is closed or stopped */
    AETHER_ENOTFOUND,       /* the key, node, file or map does not exist (yet) */
    AETHER_EEXIST,          /* create-if-absent found the key present */
    AETHER_ECONFLICT,       /* compare-and-set lost: the expected revision is stale */
    AETHER_ETIMEOUT,        /* a deadline passed and the outcome is known to be "not done" */
    AETHER_EUNKNOWN,        /* the outcome is unknown (e.g. KV timeout): re-read before acting */
    AETHER_EUNAVAILABLE,    /* a server or store cannot be reached */
    AETHER_ESTALE,          /* the message or request carries an older term or version */
    AETHER_ENOTLEADER,      /* the command needs the leader and this node is not it */
    AETHER_ESTATE,          /* the operation is not allowed in the object's current state */
    AETHER_EIO,             /* an operating-system call failed */
    AETHER_EPERM,           /* not allowed: credentials refused, not authorized */
    AETHER_EINCOMPATIBLE,   /* this node's configuration cannot serve the cluster it tried
                               to join (shard_count, replication, wire versions or the
                               parameters fingerprint differ): the leader refused it; the
                               reason names what differs. Waiting cannot fix it. */
    AETHER_ESUPERSEDED,     /* this process was superseded: a newer process of the same node id
                               was admitted (DESIGN 2.4); it serves nothing and must exit */
    AETHER_STATUS_COUNT_    /* not a status: the number of them (grows with new ones) */
} aether_status;

/* A short constant name for a status ("EFULL"); "E?" for a value out of
 * range. Never NULL. Any thread. */
AETHER_API const char *aether_status_str(aether_status s);

#ifdef __cplusplus
}
#endif

#endif
