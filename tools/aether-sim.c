/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aether-sim: the command-line front end of the deterministic simulator
 * (tools layer). The simulation itself, its fault model and its checks are
 * the library in tests/sim/ (sim_world.h says what a run does); this file
 * parses the options (tests/sim/sim_opts.h), runs one world and prints the
 * verdict. Exit status: 0 pass, 1 a violation, 2 usage.
 *
 *   aether-sim --seed S --nodes N --duration SIM_SECONDS [fault options]
 *   aether-sim --soak --seed S          (N, shards, faults... derived from S)
 *   aether-sim --version                (the project version and git revision)
 *
 * The same arguments give the same output byte for byte (only --wall, on
 * stderr, reads the real clock).
 *
 * Threading: one thread.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <aether/aether_version.h>

#include "aether_build.h"
#include "sim_opts.h"
#include "sim_world.h"

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("aether-sim %s%s%s%s\n", AETHER_VERSION_STRING, AETHER_GIT_REVISION[0] ? " (git " : "",
                   AETHER_GIT_REVISION, AETHER_GIT_REVISION[0] ? ")" : "");
            return 0;
        }
    }
    opts o = { 0 };
    int rc = sim_parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    sim_world *w = sim_world_create(&o);
    if (w == NULL) {
        fprintf(stderr, "aether-sim: out of memory\n");
        return 1;
    }
    int exit_code = sim_world_run(w);
    sim_world_report(w);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    if (o.wall)
        fprintf(stderr, "aether-sim: wall time %.3f s\n",
                (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9);
    sim_world_destroy(w);
    return exit_code;
}
