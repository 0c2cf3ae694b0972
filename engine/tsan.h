/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tsan.h: ThreadSanitizer annotations (engine layer). Any thread.
 *
 * Concurrency Kit and liburcu (0.13) publish with inline assembly that TSan
 * cannot see. Where our code relies on their ordering we tell TSan what it
 * cannot see: AETHER_TSAN_RELEASE(p) before a publication, AETHER_TSAN_ACQUIRE(p)
 * after the matching observation, and AETHER_TSAN_IGNORE_BEGIN/END around the
 * ring's own slot copies (their ordering is the ring's, modelled by the
 * release/acquire pair on the ring). In every other build these are empty.
 */
#ifndef AETHER_TSAN_H
#define AETHER_TSAN_H

#if defined(AETHER_TSAN) && AETHER_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define AETHER_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define AETHER_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define AETHER_TSAN_IGNORE_BEGIN()                                            \
    do {                                                                      \
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);                         \
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);                        \
    } while (0)
#define AETHER_TSAN_IGNORE_END()                                              \
    do {                                                                      \
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);                          \
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);                           \
    } while (0)
#else
#define AETHER_TSAN_ACQUIRE(p) ((void)0)
#define AETHER_TSAN_RELEASE(p) ((void)0)
#define AETHER_TSAN_IGNORE_BEGIN() ((void)0)
#define AETHER_TSAN_IGNORE_END() ((void)0)
#endif

#endif
