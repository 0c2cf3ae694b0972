/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/notify.c: systemd's readiness protocol (tools layer;
 * main thread), without libsystemd.
 *
 * The protocol is one datagram per state change on the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace),
 * holding newline-separated assignments ("READY=1\nSTATUS=..."): what
 * sd_notify(3) documents as its stable interface and what libsystemd's
 * sd_notify sends. Written here because linking libsystemd only for this
 * mapped 0.9 MB of libraries into every node (libsystemd, libgcrypt,
 * libgpg-error, libzstd, liblzma, liblz4, libcap: docs/tuning.md).
 *
 * Best effort, like sd_notify: no socket set, a name too long, or a send
 * that fails changes nothing but a debug log line.
 */
#include "node_run.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void node_notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return; /* not started by systemd as Type=notify (or a vsock address: not supported) */
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path)) {
        AETHER_DEBUG("aether-node", "NOTIFY_SOCKET too long (%zu bytes): not notifying", len);
        return;
    }
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the address is the length given, no NUL */
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1u : 0u));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        AETHER_DEBUG("aether-node", "sd_notify: socket: %s", strerror(errno));
        return;
    }
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    if (n < 0)
        AETHER_DEBUG("aether-node", "sd_notify to %s: %s", path, strerror(errno));
    (void)close(fd);
}
