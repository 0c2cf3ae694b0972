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
 *
 * libsystemd is loaded (dlopen of its soname) only when $NOTIFY_SOCKET is
 * set, at the first notification: linked, it and what it pulls in
 * (libgcrypt, libgpg-error, libzstd, liblzma, liblz4, libcap) put about
 * 1 MB of library pages in every node's RSS, also where nobody listens
 * (issue 16 item 3; docs/tuning.md "Memory"). Under systemd the cost is the
 * same as linked. A libsystemd that cannot be loaded is said once and
 * nothing is sent, as for a failed send.
 */
#include "node_run.h"

#include <stdlib.h>
#include <string.h>

#ifdef AETHER_HAVE_SYSTEMD
#include <dlfcn.h>
#include <systemd/sd-daemon.h>

#define LIBSYSTEMD_SONAME "libsystemd.so.0"

typedef int (*sd_notify_fn)(int, const char *);
/* Main thread only: loaded once, kept to the end of the process. */
static sd_notify_fn notify_fn;
static bool notify_tried;

static sd_notify_fn notify_load(void)
{
    if (notify_tried)
        return notify_fn;
    notify_tried = true;
    void *lib = dlopen(LIBSYSTEMD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        AETHER_WARN("aether-node", "$NOTIFY_SOCKET is set but %s cannot be loaded (%s): systemd is not told "
                    "when the node is ready", LIBSYSTEMD_SONAME, dlerror());
        return NULL;
    }
    /* The prototype of the header, checked at compile time. */
    __typeof__(&sd_notify) fn = (__typeof__(&sd_notify))dlsym(lib, "sd_notify");
    if (fn == NULL)
        AETHER_WARN("aether-node", "%s has no sd_notify: systemd is not told when the node is ready",
                    LIBSYSTEMD_SONAME);
    notify_fn = fn;
    return notify_fn;
}
#endif

void node_notify_systemd(const char *state)
{
#ifdef AETHER_HAVE_SYSTEMD
    const char *sock = getenv("NOTIFY_SOCKET");
    if (sock == NULL || sock[0] == '\0') /* sd_notify would send nothing either */
        return;
    sd_notify_fn fn = notify_load();
    if (fn == NULL)
        return;
    int rc = fn(0, state);
    if (rc < 0)
        AETHER_DEBUG("aether-node", "sd_notify: %s", strerror(-rc));
#else
    (void)state;
#endif
}
