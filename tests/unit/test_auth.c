/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_auth.c: the cluster secret's tags (transport/auth.h): a sealed
 * message opens under the same secret and on the same subject only; any
 * altered byte, another secret, a moved subject, a stale clock, a malformed
 * tag are refused with the reason; the window refuses replays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "auth.h"
#include "cu_test.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NOW 1765000000000ull

static aether_auth *key_of(const char *secret)
{
    aether_auth *a = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_auth_create(secret, strlen(secret), &a, NULL), AETHER_OK);
    return a;
}

static void sealer_of(aether_auth_sealer *s, const aether_auth *a, const char *sender, uint64_t epoch)
{
    aether_node_id id;
    CU_ASSERT_FATAL(aether_node_id_from_cstr(sender, &id, NULL) == AETHER_OK);
    aether_auth_sealer_init(s, a, &id, epoch);
}

static void test_seal_then_open(void)
{
    aether_auth *a = key_of(SECRET);
    aether_auth_sealer s;
    sealer_of(&s, a, "n1", 0x1234);
    const char *msg = "{\"v\":1,\"type\":\"LeaseRenewed\"}";
    char tag[AETHER_AUTH_TAG_MAX];
    CU_ASSERT_EQUAL(aether_auth_seal(&s, "aether.c.evt.LeaseRenewed", msg, strlen(msg), NOW, tag, sizeof(tag)),
                    AETHER_OK);
    CU_ASSERT_EQUAL(strncmp(tag, "1 n1 0000000000001234 1 1765000000000 ", 38), 0);
    aether_auth_stamp st;
    aether_err why = {0};
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.evt.LeaseRenewed", msg, strlen(msg), tag, NOW + 5, &st, &why),
                    AETHER_OK);
    CU_ASSERT_STRING_EQUAL(st.sender.str, "n1");
    CU_ASSERT_EQUAL(st.epoch, 0x1234);
    CU_ASSERT_EQUAL(st.ctr, 1);
    CU_ASSERT_EQUAL(st.ts_ms, NOW);
    /* The counter grows with every tag. */
    CU_ASSERT_EQUAL(aether_auth_seal(&s, "x", "", 0, NOW, tag, sizeof(tag)), AETHER_OK);
    CU_ASSERT_EQUAL(strncmp(tag, "1 n1 0000000000001234 2 ", 24), 0);
    /* A secret file's final newline and the same bytes give the same key. */
    aether_auth *b = key_of(SECRET "\n");
    CU_ASSERT_EQUAL(aether_auth_open(b, "x", "", 0, tag, NOW, &st, &why), AETHER_OK);
    aether_auth_destroy(b);
    aether_auth_destroy(a);
}

static void test_every_alteration_refused(void)
{
    aether_auth *a = key_of(SECRET);
    aether_auth *other = key_of(SECRET "x");
    aether_auth_sealer s;
    sealer_of(&s, a, "n1", 7);
    char msg[] = "{\"term\":42}";
    char tag[AETHER_AUTH_TAG_MAX];
    CU_ASSERT_EQUAL_FATAL(aether_auth_seal(&s, "aether.c.hb.n1", msg, strlen(msg), NOW, tag, sizeof(tag)),
                          AETHER_OK);
    aether_auth_stamp st;
    aether_err why = {0};
    /* Another secret. */
    CU_ASSERT_EQUAL(aether_auth_open(other, "aether.c.hb.n1", msg, strlen(msg), tag, NOW, &st, &why), AETHER_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "wrong MAC"));
    /* Another subject (a heartbeat moved to another node's subject). */
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n2", msg, strlen(msg), tag, NOW, &st, &why), AETHER_EPERM);
    /* Every single altered payload byte. */
    for (size_t i = 0; i < strlen(msg); i++) { /* bounded: the message */
        msg[i] ^= 1;
        CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), tag, NOW, &st, &why),
                        AETHER_EPERM);
        msg[i] ^= 1;
    }
    /* Every altered tag byte, but for those that keep a field's meaning. */
    size_t n = strlen(tag);
    for (size_t i = 0; i < n; i++) { /* bounded: the tag */
        char t2[AETHER_AUTH_TAG_MAX];
        memcpy(t2, tag, n + 1);
        t2[i] = t2[i] == '1' ? '2' : '1';
        CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), t2, NOW, &st, &why), AETHER_EPERM);
    }
    /* Missing, malformed. */
    CU_ASSERT_EQUAL(aether_auth_open(a, "s", msg, strlen(msg), NULL, NOW, &st, &why), AETHER_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "no Aether-Auth tag"));
    const char *bad[] = { "", "1", "1 n1 7 1 1 ab", "2 n1 0000000000000007 1 1 00", "1 n..1 0000000000000007 1 1 00",
                          "1 n1 0000000000000007 0 1 00", "1 n1 0000000000000007 -1 1 00",
                          "1 n1 0000000000000007 1 1 zz", "1 n1 0000000000000007 1 1 00 extra" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) { /* bounded: the table */
        CU_ASSERT_EQUAL(aether_auth_open(a, "s", msg, strlen(msg), bad[i], NOW, &st, &why), AETHER_EPERM);
        CU_ASSERT(strstr(why.msg, "malformed") != NULL || strstr(why.msg, "no Aether-Auth") != NULL);
    }
    /* Stale: beyond the skew either way. */
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), tag, NOW + AETHER_AUTH_SKEW_MS + 1, &st,
                                     &why),
                    AETHER_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "stale"));
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), tag, NOW - AETHER_AUTH_SKEW_MS - 1, &st,
                                     &why),
                    AETHER_EPERM);
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), tag, NOW + AETHER_AUTH_SKEW_MS, &st, &why),
                    AETHER_OK);
    /* A stored value (now 0): no freshness check. */
    CU_ASSERT_EQUAL(aether_auth_open(a, "aether.c.hb.n1", msg, strlen(msg), tag, 0, &st, &why), AETHER_OK);
    aether_auth_destroy(other);
    aether_auth_destroy(a);
}

static void test_window_refuses_replays(void)
{
    aether_auth_window *w = NULL;
    CU_ASSERT_EQUAL_FATAL(aether_auth_window_create(&w), AETHER_OK);
    aether_auth_stamp st;
    memset(&st, 0, sizeof(st));
    CU_ASSERT_FATAL(aether_node_id_from_cstr("n1", &st.sender, NULL) == AETHER_OK);
    aether_err why = {0};
    st.epoch = 10;
    st.ctr = 5;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK); /* new sender */
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM); /* the same again */
    CU_ASSERT_PTR_NOT_NULL(strstr(why.msg, "replayed"));
    st.ctr = 7;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK); /* a gap is fine */
    st.ctr = 6;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK); /* late, once */
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM); /* twice: no */
    st.ctr = 5;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM); /* admitted first */
    st.ctr = 7 + AETHER_AUTH_WINDOW_SPAN;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK);
    st.ctr = 7;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM); /* below the span */
    st.ctr = 8;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK); /* in the span, unseen */
    st.epoch = 9;
    st.ctr = 100;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM); /* an older process */
    st.epoch = 11;
    st.ctr = 1;
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_OK); /* a newer process */
    /* Senders are tracked apart. */
    aether_auth_stamp st2 = st;
    CU_ASSERT_FATAL(aether_node_id_from_cstr("n0", &st2.sender, NULL) == AETHER_OK);
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st2, &why), AETHER_OK);
    CU_ASSERT_EQUAL(aether_auth_window_admit(w, &st, &why), AETHER_EPERM);
    aether_auth_window_destroy(w);
}

static void test_secret_files(void)
{
    char dir[] = "/tmp/aether-auth-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/secret", dir);
    aether_err err = {0};
    CU_ASSERT_EQUAL(aether_auth_new_secret_file(path, &err), AETHER_OK);
    struct stat sb;
    CU_ASSERT_EQUAL(stat(path, &sb), 0);
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
    CU_ASSERT_EQUAL(sb.st_size, 65);
    CU_ASSERT_EQUAL(aether_auth_new_secret_file(path, &err), AETHER_EEXIST); /* never overwritten */
    aether_auth *a = NULL;
    CU_ASSERT_EQUAL(aether_auth_load_file(path, &a, &err), AETHER_OK);
    aether_auth_destroy(a);
    /* Too short, missing, not a regular file: refused naming the file. */
    char shortp[128];
    snprintf(shortp, sizeof(shortp), "%s/short", dir);
    FILE *f = fopen(shortp, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("too short\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(aether_auth_load_file(shortp, &a, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "at least 32"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, shortp));
    CU_ASSERT_EQUAL(aether_auth_load_file(dir, &a, &err), AETHER_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    CU_ASSERT_EQUAL(aether_auth_load_file(missing, &a, &err), AETHER_EINVAL);
    unlink(shortp);
    unlink(path);
    rmdir(dir);
}

static CU_TestInfo tests[] = {
    AETHER_TEST(seal_then_open),
    AETHER_TEST(every_alteration_refused),
    AETHER_TEST(window_refuses_replays),
    AETHER_TEST(secret_files),
    CU_TEST_INFO_NULL,
};
AETHER_SUITE("auth", NULL, NULL, tests);
