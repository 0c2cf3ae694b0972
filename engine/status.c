/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.c: names of the status codes and the error record (engine layer).
 * Any thread; no shared state.
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "assertion.h"

static const char *const status_names[] = {
    [AETHER_OK] = "OK",
    [AETHER_EINVAL] = "EINVAL",
    [AETHER_ENOMEM] = "ENOMEM",
    [AETHER_EFULL] = "EFULL",
    [AETHER_ECLOSED] = "ECLOSED",
    [AETHER_ENOTFOUND] = "ENOTFOUND",
    [AETHER_EEXIST] = "EEXIST",
    [AETHER_ECONFLICT] = "ECONFLICT",
    [AETHER_ETIMEOUT] = "ETIMEOUT",
    [AETHER_EUNKNOWN] = "EUNKNOWN",
    [AETHER_EUNAVAILABLE] = "EUNAVAILABLE",
    [AETHER_ESTALE] = "ESTALE",
    [AETHER_ENOTLEADER] = "ENOTLEADER",
    [AETHER_ESTATE] = "ESTATE",
    [AETHER_EIO] = "EIO",
    [AETHER_EPERM] = "EPERM",
    [AETHER_EINCOMPATIBLE] = "EINCOMPATIBLE",
    [AETHER_ESUPERSEDED] = "ESUPERSEDED",
};
AETHER_STATIC_ASSERT(sizeof(status_names) / sizeof(status_names[0]) == AETHER_STATUS_COUNT_,
                     "every status has a name");

const char *aether_status_str(aether_status s)
{
    if ((unsigned)s >= AETHER_STATUS_COUNT_)
        return "E?";
    return status_names[s];
}

aether_status aether_err_set(aether_err *err, aether_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

aether_status aether_err_prefix(aether_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return AETHER_EINVAL;
    char prefix[AETHER_ERR_MSG_MAX];
    char old[AETHER_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is fine: the start of the path matters most. */
    size_t p = strnlen(prefix, sizeof(prefix) - 1);
    size_t o = strnlen(old, sizeof(old) - 1);
    size_t cap = sizeof(err->msg) - 1, at = 0;
    size_t take = p < cap ? p : cap;
    memcpy(err->msg, prefix, take);
    at = take;
    for (const char *sep = ": "; *sep && at < cap; sep++)
        err->msg[at++] = *sep;
    take = o < cap - at ? o : cap - at;
    memcpy(err->msg + at, old, take);
    at += take;
    err->msg[at] = '\0';
    return err->code;
}
