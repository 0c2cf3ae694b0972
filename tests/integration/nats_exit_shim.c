/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nats_exit_shim.c: an LD_PRELOAD module for integration.nats_exit (tests
 * layer) that stages, every time, the exit race a node under load met once:
 * a nats.c thread still inside the library when the process exits.
 *
 * DESIGN
 * nats.c frees its library when the last reference goes (natsLib_Release,
 * then _freeLib, which locks the library's mutex once more at its end), and
 * registers an atexit hook that destroys that mutex if it reads no
 * reference left. Every nats.c thread holds a reference until it ends. A
 * daemon that ends the library with nats_Close (no wait) and exits while
 * such a thread is between its release and _freeLib's last lock has the
 * hook destroy the mutex under it: nats.c's mutex calls abort() on the
 * failed lock (SIGABRT, nothing on stderr), or the thread finds it NULL
 * (SIGSEGV). Staged here:
 *  1. nats_Close or nats_CloseAndWait (interposed, called by the daemon's
 *     main thread): a reference is taken (natsLib_Retain), as a nats.c
 *     thread holds one, and a thread is started that gives it back
 *     SHIM_RELEASE_MS later - after the main thread's own release, so it
 *     is the last one and runs _freeLib;
 *  2. natsNUID_free, which _freeLib calls before its last lock, waits
 *     SHIM_FREE_MS on that thread (a thread preempted there under load);
 *  3. nats_Close then returns after SHIM_EXIT_MS (a main thread slow to
 *     reach exit): the hook runs while _freeLib waits in step 2 and reads
 *     no reference left; and this module's destructor, which runs after
 *     the hook, keeps the process alive until step 2 is over.
 * nats_CloseAndWait is only observed: it returns once _freeLib is done, so
 * the hook finds nothing running. Each step says so on stderr
 * ("nats_exit_shim: ...") for the script to check that the race was staged.
 * Any thread (the interposed calls are nats.c's).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* The interposed symbols, as libnats declares them (natsStatus is an
 * int-sized enum). */
void nats_Close(void);
int nats_CloseAndWait(int64_t timeout);
void natsNUID_free(void);

#define SHIM_RELEASE_MS 100
#define SHIM_FREE_MS 600
#define SHIM_EXIT_MS 300
#define SHIM_FINI_MS (SHIM_RELEASE_MS + SHIM_FREE_MS + 300)

static pthread_t main_thread;
static int staged; /* atomic: step 1 ran */

__attribute__((constructor)) static void shim_init(void) { main_thread = pthread_self(); }

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void say(const char *what)
{
    fprintf(stderr, "nats_exit_shim: %s\n", what);
    fflush(stderr);
}

static void *late_release(void *arg)
{
    (void)arg;
    sleep_ms(SHIM_RELEASE_MS);
    void (*release)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "natsLib_Release");
    say("the last reference released off the main thread");
    release();
    return NULL;
}

/* Step 1. */
static void stage(void)
{
    void (*retain)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "natsLib_Retain");
    if (retain == NULL)
        return;
    retain();
    pthread_t t;
    if (pthread_create(&t, NULL, late_release, NULL) != 0)
        return; /* not staged: the script sees no line */
    (void)pthread_detach(t);
    __atomic_store_n(&staged, 1, __ATOMIC_SEQ_CST);
}

void nats_Close(void)
{
    void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "nats_Close");
    stage();
    real();
    say("nats_Close returned");
    sleep_ms(SHIM_EXIT_MS); /* step 3 */
}

int nats_CloseAndWait(int64_t timeout)
{
    int (*real)(int64_t) = (int (*)(int64_t))dlsym(RTLD_NEXT, "nats_CloseAndWait");
    stage();
    int s = real(timeout);
    say("nats_CloseAndWait returned");
    return s;
}

/* Step 2. */
void natsNUID_free(void)
{
    void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "natsNUID_free");
    if (!pthread_equal(pthread_self(), main_thread)) {
        say("the library being freed off the main thread");
        sleep_ms(SHIM_FREE_MS);
    }
    real();
}

/* Step 3, the end: after nats.c's atexit hook (ELF destructors run after
 * the atexit handlers). */
__attribute__((destructor)) static void shim_fini(void)
{
    if (__atomic_load_n(&staged, __ATOMIC_SEQ_CST))
        sleep_ms(SHIM_FINI_MS);
}
