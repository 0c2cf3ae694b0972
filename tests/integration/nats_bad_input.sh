#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_bad_input.sh: every bad configuration input of issue 13 gets exit
# status 2 (usage/configuration) from aether-node within a second, with one
# sentence naming the input and the reason, and no raw junk on the terminal.
#
#   nats_bad_input.sh BUILD_DIR
#
# Steps (each run bounded by `timeout 5`; each must end within 1000 ms):
#  1. node ids that break the NATS subject token rules ('.', '..', 'a..b',
#     'a.', 'a b', 'a*', 'a>'), an empty cluster name, an address with a
#     tab: exit 2 naming the value and the rule;
#  2. lease_ttl_ms 1 and 99 (below JetStream's 100 ms minimum max age):
#     exit 2 naming lease_ttl_ms (not the renew interval derived from it);
#  3. configuration files: /dev/zero and /dev/urandom (hung before), a
#     directory (accepted before), a key set twice (silent last-wins before),
#     binary junk (echoed raw before): exit 2 naming the file and the reason,
#     stderr printable; escape sequences given as a flag value, an
#     environment value or an argument (echoed raw before): quoted as \x1b;
#     server URLs that are not URLs ('not a url', port
#     99999, an unclosed '[', http://; before: 5 s of connect retries, exit
#     1), never echoing a password in the URL; a missing credentials or CA
#     file (before: exit 1 after the connect, or an SSL error); a cluster
#     secret file that is missing, too short, a directory or a FIFO (never
#     waits on it);
#  4. on a real nats-server: n1 with the default lease_ttl_ms (1000) leads;
#     n2 with --lease-ttl-ms 2000 exits 2 naming both values (1000 ms, 2000
#     ms) and lease_ttl_ms (before: exit 1, "Existing configuration is
#     different"); n1 still leads.
# Takes ~3 s. Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup bad-input "${1:-}"
it_clean_env

UNUSED_URL=nats://127.0.0.1:1 # never reached: every case is refused before connecting
RUNS=0

# refused NAME WANT ARGS...: aether-node ARGS exits 2 within 1000 ms
# (LIMIT_MS: the ttl-differs case reads the server's bucket first, three
# JetStream round trips, and gets 3000 on a loaded machine) and
# its stderr has the fixed string WANT on one line and only printable text.
refused() {
    local name=$1 want=$2
    shift 2
    local t0 rc ms
    t0=$(now_ms)
    env "${CLEAN_ENV[@]}" timeout 5 "$NODE_BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null
    rc=$?
    ms=$(( $(now_ms) - t0 ))
    [[ $rc -eq 2 ]] || fail "$name: exit status $rc, want 2 ($(head -c 300 "$WORK/$name.err" | cat -v))"
    (( ms <= ${LIMIT_MS:-1000} )) || fail "$name: took $ms ms to refuse, want <= ${LIMIT_MS:-1000}"
    grep -qF -- "$want" "$WORK/$name.err" || fail "$name: stderr does not say '$want': $(head -c 300 "$WORK/$name.err" | cat -v)"
    if LC_ALL=C grep -q '[^[:print:][:space:]]' "$WORK/$name.err" "$WORK/$name.out"; then
        fail "$name: printed bytes that are not text: $(head -c 300 "$WORK/$name.err" | cat -v)"
    fi
    RUNS=$(( RUNS + 1 ))
    echo "$name: exit 2 after $ms ms: $(grep -m1 -F -- "$want" "$WORK/$name.err")"
}

# ---- 1. names -------------------------------------------------------------------------
refused id-dot "node id '.' has an empty subject token" --nats "$UNUSED_URL" --node .
refused id-dotdot "node id '..' has an empty subject token" --nats "$UNUSED_URL" --node ..
refused id-inner "node id 'a..b' has an empty subject token at position 1" --nats "$UNUSED_URL" --node a..b
refused id-trailing "node id 'a.' has an empty subject token at position 1" --nats "$UNUSED_URL" --node a.
refused id-space "node id 'a b' has byte 0x20" --nats "$UNUSED_URL" --node "a b"
refused id-star "node id 'a*' has byte 0x2a" --nats "$UNUSED_URL" --node "a*"
refused id-gt "node id 'a>' has byte 0x3e" --nats "$UNUSED_URL" --node "a>"
refused cluster-empty "cluster: cluster name is empty" --nats "$UNUSED_URL" --node a --cluster ""
refused address-tab "address: has control byte 0x09" --nats "$UNUSED_URL" --node a --address $'x\ty'

# ---- 2. lease_ttl_ms below JetStream's minimum ------------------------------------------------
refused ttl-1 "lease_ttl_ms: 1 is below 100 ms" --nats "$UNUSED_URL" --node a --lease-ttl-ms 1
refused ttl-99 "lease_ttl_ms: 99 is below 100 ms" --nats "$UNUSED_URL" --node a --lease-ttl-ms 99

# ---- 3. configuration files ---------------------------------------------------------------------
refused file-zero "configuration file /dev/zero: is not a regular file or a pipe" --config /dev/zero
refused file-urandom "configuration file /dev/urandom: is not a regular file or a pipe" --config /dev/urandom
mkdir "$WORK/conf.d"
refused file-dir "configuration file $WORK/conf.d: is a directory" --config "$WORK/conf.d"
printf 'node = a\nnats_urls = %s\nnode = b\n' "$UNUSED_URL" >"$WORK/twice.ini"
refused file-twice "line 3: node is set twice (first on line 1)" --config "$WORK/twice.ini"
{ printf 'node = a\n'; head -c 512 /dev/urandom; } >"$WORK/junk.ini"
refused file-junk "$WORK/junk.ini line " --config "$WORK/junk.ini"
grep -qE "byte 0x[0-9a-f]{2} (is a control byte|is not UTF-8|breaks a UTF-8 sequence)" "$WORK/file-junk.err" ||
    fail "file-junk: the error does not name the byte: $(cat -v "$WORK/file-junk.err")"

# junk as a flag, an environment value or an argument: quoted escaped, never raw
refused flag-junk "shard_count wants an integer 1..65536, not '\x1b[31mX'" --node a --nats "$UNUSED_URL" --shards $'\x1b[31mX'
CLEAN_ENV+=(AETHER_SHARD_COUNT=$'\x1b[31mX')
refused env-junk "environment AETHER_SHARD_COUNT: shard_count wants an integer 1..65536, not '\x1b[31mX'" --node a --nats "$UNUSED_URL"
it_clean_env
refused arg-junk "unexpected argument '\x1b[31mX'" --node a --nats "$UNUSED_URL" $'\x1b[31mX'

# ---- 3b. server URLs and the files of the NATS options -------------------------------------------
refused url-words "nats_urls: 'not a url' is not a server URL" --node a --nats "not a url"
refused url-port "the port '99999' is not an integer 1..65535" --node a --nats nats://127.0.0.1:99999
refused url-bracket "an IPv6 address has no closing ']'" --node a --nats "nats://[::1"
refused url-scheme "the scheme 'http' is not nats or tls" --node a --nats http://127.0.0.1:4222
refused url-secret "'h:0' is not a server URL" --node a --nats "nats://u:s3cr3t@h:0"
grep -q s3cr3t "$WORK/url-secret.err" && fail "url-secret: the password in the URL was printed"
refused creds-missing "nats_creds: $WORK/none.creds: No such file or directory" --node a --nats "$UNUSED_URL" --nats-creds "$WORK/none.creds"
refused ca-missing "nats_tls_ca: $WORK/none.pem: No such file or directory" --node a --nats "$UNUSED_URL" --nats-tls-ca "$WORK/none.pem"
refused secret-missing "cluster_secret_file $WORK/none.secret: No such file or directory" --node a --nats "$UNUSED_URL" --cluster-secret-file "$WORK/none.secret"
printf 'too short\n' >"$WORK/short.secret"
refused secret-short "cluster_secret_file $WORK/short.secret: the secret has 9 bytes, at least 32 are needed" --node a --nats "$UNUSED_URL" --cluster-secret-file "$WORK/short.secret"
refused secret-dir "cluster_secret_file $WORK/conf.d: not a regular file" --node a --nats "$UNUSED_URL" --cluster-secret-file "$WORK/conf.d"
mkfifo "$WORK/secret.fifo"
refused secret-fifo "cluster_secret_file $WORK/secret.fifo: not a regular file" --node a --nats "$UNUSED_URL" --cluster-secret-file "$WORK/secret.fifo"

# ---- 4. a lease_ttl_ms other than the existing lease bucket's -------------------------------------
server_start nats
URL=$(server_url nats)
node_start n1 "$URL"
wait_log 10000 "$WORK/n1.out" " LEADER elected " || fail "n1 did not lead within 10 s"
LIMIT_MS=3000 refused ttl-differs "lease_ttl_ms: bucket 'aether_${CLUSTER}_lease' exists with a TTL of 1000 ms, not the 2000 ms asked for" \
    --nats "$URL" --node n2 --cluster "$CLUSTER" --lease-ttl-ms 2000
grep -qF "every node of cluster '$CLUSTER' needs the same lease_ttl_ms" "$WORK/ttl-differs.err" ||
    fail "ttl-differs: the error does not say the ttl must match"
node_alive n1 || fail "n1 exited"
[[ "$(leaders_now n1)" == n1 ]] || fail "n1 no longer leads"
no_violation
echo "PASS ($RUNS refusals)"
exit 0
