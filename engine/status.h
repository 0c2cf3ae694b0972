/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.h: the one project status enum and the error record (engine layer).
 * Any thread. Library codes (natsStatus, errno, jansson errors) are mapped to
 * these once, at the edge that calls the library.
 */
#ifndef AETHER_STATUS_H
#define AETHER_STATUS_H

#include <stddef.h>

/* The enum and aether_status_str are public: engine/aether_status.h. */
#include "aether_status.h"

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
