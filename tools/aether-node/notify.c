/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools/aether-node/notify.c: systemd's readiness notification (tools
 * layer; main thread), through libsystemd's sd_notify (Debian
 * libsystemd-dev; AETHER_SYSTEMD=OFF builds without it and notifies
 * nothing).
 *
 * Best effort, like sd_notify itself: without $NOTIFY_SOCKET (not started
 * by systemd as Type=notify) nothing is sent; a send that fails changes
 * nothing but a debug log line.
 */
#include "node_run.h"

#include <string.h>

#ifdef AETHER_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void node_notify_systemd(const char *state)
{
#ifdef AETHER_HAVE_SYSTEMD
    int rc = sd_notify(0, state);
    if (rc < 0)
        AETHER_DEBUG("aether-node", "sd_notify: %s", strerror(-rc));
#else
    (void)state;
#endif
}
