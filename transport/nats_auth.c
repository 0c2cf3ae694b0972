/* SPDX-License-Identifier: Apache-2.0 */
/* nats_auth.c: the tag of auth.h on a NATS message (see nats_auth.h). */
#include "nats_auth.h"

aether_status aether_auth_open_msg(const aether_auth *a, natsMsg *msg, uint64_t now_ms, aether_auth_stamp *out,
                                   aether_err *why)
{
    const char *tag = NULL;
    if (natsMsgHeader_Get(msg, AETHER_AUTH_HEADER, &tag) != NATS_OK)
        tag = NULL;
    const char *subj = natsMsg_GetSubject(msg);
    return aether_auth_open(a, subj != NULL ? subj : "", natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                            tag, now_ms, out, why);
}

const char *aether_auth_msg_subject(natsMsg *msg)
{
    const char *subj = natsMsg_GetSubject(msg);
    return subj != NULL ? subj : "?";
}
