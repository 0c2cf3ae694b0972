/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cu_test.h: the shape every CUnit test file follows (tests layer).
 *
 *   static void test_order(void) { ... }
 *   static CU_TestInfo tests[] = { AETHER_TEST(order), CU_TEST_INFO_NULL };
 *   AETHER_SUITE("mailbox", NULL, NULL, tests);
 *
 * tests/CMakeLists.txt turns each AETHER_TEST(name) into a ctest entry
 * "<suite>.<name>" that runs `test_<suite> <name>`; with no argument the binary
 * runs the whole suite. Put "AETHER_TEST_LABELS: concurrency" in a comment of a
 * file whose tests run threads, so the TSan build picks them up.
 */
#ifndef AETHER_CU_TEST_H
#define AETHER_CU_TEST_H

#include <CUnit/CUnit.h>

#define AETHER_TEST(name) { #name, test_##name }

typedef struct aether_cu_suite {
    const char *name;
    CU_InitializeFunc init;
    CU_CleanupFunc cleanup;
    CU_TestInfo *tests;
} aether_cu_suite;

#define AETHER_SUITE(name_, init_, cleanup_, tests_) \
    const aether_cu_suite aether_cu_the_suite = { (name_), (init_), (cleanup_), (tests_) }

extern const aether_cu_suite aether_cu_the_suite;

#endif
