/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_util.h: what the libFuzzer targets of tests/fuzz share (tests layer,
 * fuzz build only).
 *
 * A target checks properties of the decoder it drives; a violated property
 * is a crash for libFuzzer: FUZZ_CHECK prints what broke, with the input
 * shown safely, and aborts, so libFuzzer writes the input as a reproducer.
 *
 * Seeds: each target can write its own seed corpus with the library's
 * encoders. When AETHER_FUZZ_SEED_OUT names a directory, the target's
 * LLVMFuzzerInitialize writes its seeds there and exits 0 (tools/fuzz
 * --gen-corpus); every seed written is also run through the target's
 * properties first, so a seed that does not round-trip is never committed.
 *
 * Threading: libFuzzer runs one input at a time on one thread.
 */
#ifndef AETHER_FUZZ_UTIL_H
#define AETHER_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input of the run in progress, for messages (set by FUZZ_BEGIN). */
static const uint8_t *fuzz_input;
static size_t fuzz_input_len;

#define FUZZ_BEGIN(data, size) (fuzz_input = (data), fuzz_input_len = (size))

/* Prints at most 512 bytes of buf, bytes outside printable ASCII as \xNN. */
static inline void fuzz_print_bytes(const char *label, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t n = len < 512 ? len : 512;
    fprintf(stderr, "  %s (%zu bytes): ", label, len);
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            fputc(p[i], stderr);
        else
            fprintf(stderr, "\\x%02x", p[i]);
    }
    fputs(n < len ? "...\n" : "\n", stderr);
}

/* A property of the decoder failed: say which, show the input, abort. */
#define FUZZ_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "\nfuzz property violated at %s:%d: %s\n  ", __FILE__, __LINE__,  \
                    #cond);                                                                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            fuzz_print_bytes("input", fuzz_input, fuzz_input_len);                             \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Seed writing (see the top). NULL unless AETHER_FUZZ_SEED_OUT is set. */
static inline const char *fuzz_seed_dir(void) { return getenv("AETHER_FUZZ_SEED_OUT"); }

/* Runs one seed through the target (its properties must hold) and writes it
 * as <dir>/<name>, exact bytes. Exits 1 when the file cannot be written. */
static inline void fuzz_seed_write(const char *dir, const char *name, const void *buf,
                                   size_t len)
{
    LLVMFuzzerTestOneInput(buf, len);
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = n > 0 && (size_t)n < sizeof(path) ? fopen(path, "wb") : NULL;
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write seed %s/%s\n", dir, name);
        exit(1);
    }
}

#endif
