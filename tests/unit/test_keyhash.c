/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyhash.c: the key -> shard rule (actors/keyhash.h) against the
 * independent vectors in tests/vectors/keyhash.tsv (made by tools/gen-vectors
 * with xxhsum, not with our code).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu_test.h"
#include "keyhash.h"

#define VECTORS_MIN_ROWS 20
#define KEY_MAX_BYTES 4096

typedef struct vector {
    unsigned char key[KEY_MAX_BYTES + 1]; /* + a terminator for argv use */
    size_t len;
    uint64_t hash;
    uint32_t shard_1, shard_1024, shard_16384;
} vector;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses "keyhex\thash\ts1\ts1024\ts16384". 0 on success. */
static int parse_row(char *line, vector *v)
{
    char *fields[5];
    char *p = line;
    for (int i = 0; i < 5; i++) {
        fields[i] = p;
        char *tab = strchr(p, i < 4 ? '\t' : '\n');
        if (tab == NULL && i < 4)
            return -1;
        if (tab != NULL) {
            *tab = '\0';
            p = tab + 1;
        }
    }
    size_t hexlen = strlen(fields[0]);
    if (hexlen % 2 != 0 || hexlen / 2 > KEY_MAX_BYTES)
        return -1;
    v->len = hexlen / 2;
    for (size_t i = 0; i < v->len; i++) {
        int hi = hexval(fields[0][2 * i]), lo = hexval(fields[0][2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        v->key[i] = (unsigned char)(hi << 4 | lo);
    }
    if (strlen(fields[1]) != 16)
        return -1;
    char *end;
    errno = 0;
    v->hash = strtoull(fields[1], &end, 16);
    if (errno != 0 || *end != '\0')
        return -1;
    unsigned long s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = strtoul(fields[2 + i], &end, 10);
        if (*end != '\0' || end == fields[2 + i])
            return -1;
    }
    v->shard_1 = (uint32_t)s[0];
    v->shard_1024 = (uint32_t)s[1];
    v->shard_16384 = (uint32_t)s[2];
    return 0;
}

static void test_vectors(void)
{
    const char *path = AETHER_TEST_VECTORS_DIR "/keyhash.tsv";
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char line[2 * KEY_MAX_BYTES + 256];
    static vector v;
    int rows = 0, lineno = 0;
    bool saw_empty = false, saw_nul = false, saw_kib = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (line[0] == '#')
            continue;
        if (parse_row(line, &v) != 0) {
            fprintf(stderr, "%s:%d: malformed row\n", path, lineno);
            CU_FAIL("malformed vector row");
            continue;
        }
        rows++;
        saw_empty |= v.len == 0;
        saw_nul |= v.len > 0 && memchr(v.key, 0, v.len) != NULL;
        saw_kib |= v.len >= 1024;
        uint64_t h = aether_key_hash(v.len ? v.key : NULL, v.len);
        if (h != v.hash)
            fprintf(stderr, "%s:%d: hash %016" PRIx64 ", vector says %016" PRIx64 "\n", path,
                    lineno, h, v.hash);
        CU_ASSERT_EQUAL(h, v.hash);
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, 1), v.shard_1);
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, 1024), v.shard_1024);
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, 16384), v.shard_16384);
        /* A count that is not a power of two takes the division path: it
         * must be the modulo of the full 64-bit hash from the vector. */
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, 1000), (uint32_t)(v.hash % 1000));
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, 65535), (uint32_t)(v.hash % 65535));
        CU_ASSERT_EQUAL(aether_key_shard(v.key, v.len, AETHER_SHARD_COUNT_MAX),
                        (uint32_t)(v.hash % AETHER_SHARD_COUNT_MAX));
    }
    fclose(f);
    if (rows < VECTORS_MIN_ROWS)
        fprintf(stderr, "%s: only %d rows\n", path, rows);
    CU_ASSERT_TRUE(rows >= VECTORS_MIN_ROWS);
    CU_ASSERT_TRUE(saw_empty);
    CU_ASSERT_TRUE(saw_nul);
    CU_ASSERT_TRUE(saw_kib);
}

/* The two vectors quoted in keyhash.h. */
static void test_documented_vectors(void)
{
    CU_ASSERT_EQUAL(aether_key_hash("user:42", 7), UINT64_C(0xdc1fea7da8d2d1c2));
    CU_ASSERT_EQUAL(aether_key_shard("user:42", 7, 1024), 450);
    CU_ASSERT_EQUAL(aether_key_hash(NULL, 0), UINT64_C(0xef46db3751d8e999));
    CU_ASSERT_EQUAL(aether_key_shard("", 0, 1024), 409);
}

static void test_shard_in_range(void)
{
    /* Every count from 1 to 300 and a few large ones: result < count and
     * equal to the plain modulo. */
    char key[32];
    for (uint32_t n = 1; n <= 300; n++) {
        for (int k = 0; k < 20; k++) {
            int len = snprintf(key, sizeof(key), "key-%u-%d", n, k);
            uint32_t s = aether_key_shard(key, (size_t)len, n);
            CU_ASSERT_TRUE(s < n);
            CU_ASSERT_EQUAL(s, (uint32_t)(aether_key_hash(key, (size_t)len) % n));
        }
    }
}

/* Runs build/bin/aetherctl (beside this binary's tests/ directory) with argv
 * and captures stdout. Returns the exit status, or -1 if it could not run. */
static int run_aetherctl(char *const argv[], char *out, size_t out_size)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0'; /* .../build/tests */
    snprintf(path, sizeof(path), "%s/../bin/aetherctl", self);
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(path, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t r;
    while ((r = read(fds[0], out + used, out_size - 1 - used)) > 0 && used < out_size - 1)
        used += (size_t)r;
    out[used] = '\0';
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The CLI prints the same shards as the vectors, for every key that can be
 * an argv string (no NUL byte); keys are passed after "--" as raw bytes. */
static void test_aetherctl_matches_vectors(void)
{
    FILE *f = fopen(AETHER_TEST_VECTORS_DIR "/keyhash.tsv", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char line[2 * KEY_MAX_BYTES + 256];
    static vector v;
    char out[64];
    int checked = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#' || parse_row(line, &v) != 0)
            continue;
        if (v.len == 0 || memchr(v.key, 0, v.len) != NULL)
            continue;
        v.key[v.len] = '\0';
        char *argv_default[] = {"aetherctl", "shard-of", "--", (char *)v.key, NULL};
        CU_ASSERT_EQUAL_FATAL(run_aetherctl(argv_default, out, sizeof(out)), 0);
        CU_ASSERT_EQUAL(strtoul(out, NULL, 10), v.shard_1024);
        char *argv_16k[] = {"aetherctl", "shard-of", "--shards", "16384", "--", (char *)v.key,
                            NULL};
        CU_ASSERT_EQUAL_FATAL(run_aetherctl(argv_16k, out, sizeof(out)), 0);
        CU_ASSERT_EQUAL(strtoul(out, NULL, 10), v.shard_16384);
        checked++;
    }
    fclose(f);
    CU_ASSERT_TRUE(checked >= 20);
    /* Usage errors exit 2. */
    char *bad_count[] = {"aetherctl", "shard-of", "--shards", "0", "k", NULL};
    CU_ASSERT_EQUAL(run_aetherctl(bad_count, out, sizeof(out)), 2);
    char *unknown[] = {"aetherctl", "no-such-command", NULL};
    CU_ASSERT_EQUAL(run_aetherctl(unknown, out, sizeof(out)), 2);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(vectors),
    AETHER_TEST(documented_vectors),
    AETHER_TEST(shard_in_range),
    AETHER_TEST(aetherctl_matches_vectors),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("keyhash", NULL, NULL, tests);
