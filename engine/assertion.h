/* SPDX-License-Identifier: Apache-2.0 */
/*
 * assertion.h: always-on assertions for programmer errors (engine layer).
 * Any thread. AETHER_ASSERT never compiles out (NDEBUG does not touch it), so
 * never put logic that must run inside anything but the condition's
 * evaluation; it prints the expression, file and line, then aborts.
 * Operating errors (full mailbox, lost CAS, malformed input) are returned as
 * aether_status, never asserted.
 */
#ifndef AETHER_ASSERT_H
#define AETHER_ASSERT_H


#define AETHER_STATIC_ASSERT(cond, why) _Static_assert(cond, why)

#define AETHER_LIKELY(x) __builtin_expect(!!(x), 1)
#define AETHER_UNLIKELY(x) __builtin_expect(!!(x), 0)

__attribute__((noreturn, cold)) void aether_assert_fail(const char *expr, const char *file,
                                                        int line, const char *func);

#define AETHER_ASSERT(expr)                                                   \
    do {                                                                      \
        if (AETHER_UNLIKELY(!(expr)))                                         \
            aether_assert_fail(#expr, __FILE__, __LINE__, __func__);          \
    } while (0)

/* An assertion too dear for a hot path (O(shards) or more): checked only in
 * builds with AETHER_DEEP_CHECKS (CMake option, on in Debug builds), where
 * it is AETHER_ASSERT; elsewhere expr is not evaluated. So expr calls only
 * pure predicates (`*_is_valid`). */
#if defined(AETHER_DEEP_CHECKS) && AETHER_DEEP_CHECKS
#define AETHER_DEEP_ASSERT(expr) AETHER_ASSERT(expr)
#else
#define AETHER_DEEP_ASSERT(expr) ((void)sizeof(!(expr)))
#endif

#endif
