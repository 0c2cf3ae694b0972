/* SPDX-License-Identifier: Apache-2.0 */
/*
 * assertion.c: the failure path of AETHER_ASSERT (engine layer). Any thread.
 */
#include "assertion.h"

#include <stdio.h>
#include <stdlib.h>

void aether_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "aether: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}
