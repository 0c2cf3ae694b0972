/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cu_main.c: the runner shared by every CUnit test binary (tests layer).
 * `test_<suite> [NAME]` runs one test (as ctest does) or the whole suite; the
 * exit status is non-zero when any assertion failed or NAME is unknown.
 */
#include <stdio.h>
#include <string.h>
#include <CUnit/Basic.h>
#include "cu_test.h"

int main(int argc, char **argv)
{
    const aether_cu_suite *s = &aether_cu_the_suite;
    const char *only = argc > 1 ? argv[1] : NULL;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(s->name, s->init, s->cleanup);
    if (suite == NULL)
        return 2;
    int added = 0;
    for (CU_TestInfo *t = s->tests; t->pName != NULL; t++) {
        if (only != NULL && strcmp(only, t->pName) != 0)
            continue;
        if (CU_add_test(suite, t->pName, t->pTestFunc) == NULL)
            return 2;
        added++;
    }
    if (added == 0) {
        fprintf(stderr, "test_%s: no test named '%s'\n", s->name, only ? only : "");
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (failed || suites_failed) ? 1 : 0;
}
