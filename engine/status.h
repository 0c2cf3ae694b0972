/*
 * status.h: the one project status enum and the error record (engine layer).
 * Any thread. Library codes (natsStatus, errno, jansson errors) are mapped to
 * these once, at the edge that calls the library.
 */
#ifndef AETHER_STATUS_H
#define AETHER_STATUS_H

#include <stddef.h>

typedef enum aether_status {
    AETHER_OK = 0,          /* success */
    AETHER_EINVAL,          /* an argument or input is malformed or out of range */
    AETHER_ENOMEM,          /* an allocation failed */
    AETHER_EFULL,           /* a bounded queue (mailbox, run queue) is full: backpressure */
    AETHER_ECLOSED,         /* the target (actor, executor, bus) is closed or stopped */
    AETHER_ENOTFOUND,       /* the key, node or subscription does not exist */
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
    AETHER_STATUS_COUNT_
} aether_status;

/* A short constant name for a status ("EFULL"). Never NULL. */
const char *aether_status_str(aether_status s);

/* An error record: the status plus a message naming what was wrong (for
 * example "shards[3].owners[1]: node id 'a b' has a character outside
 * [A-Za-z0-9_.-]"). Functions that can explain a failure take an optional
 * aether_err *; NULL means "don't explain". */
#define AETHER_ERR_MSG_MAX 240
typedef struct aether_err {
    aether_status code;
    char msg[AETHER_ERR_MSG_MAX];
} aether_err;

/* Fills err (if not NULL) and returns code, so callers can write
 * `return aether_err_set(err, AETHER_EINVAL, "shard_count %u > %u", n, max);` */
aether_status aether_err_set(aether_err *err, aether_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with "prefix: " (used to name the
 * enclosing field while an error travels up). Returns err->code. */
aether_status aether_err_prefix(aether_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
