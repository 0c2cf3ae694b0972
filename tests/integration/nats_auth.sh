#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_auth.sh: aether-node on NATS servers that require authentication:
# user/password and token; wrong credentials give a clear error at once
# (DESIGN 4 "Auth"; issue 4 sections 4 and 7).
#
#   nats_auth.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. server "userpass": nats-server --user aether --pass <random>; n1 n2 n3
#     with --nats-user/--nats-password (n3's password from the environment,
#     AETHER_NATS_PASSWORD) settle within 10 s (nats_probe authenticates
#     the same way to read the map);
#  2. on that server, within 3 s each (a refusal cannot heal by waiting:
#     no retry for the 5 s connect timeout): a node with a wrong password,
#     and a node with no credentials, exit 1 with an error naming the
#     server and the refusal ("refused the credentials"), and the wrong
#     password appears nowhere in their output;
#  3. server "token": nats-server --auth <random>; n1 n2 n3 with
#     --nats-token settle within 10 s;
#  4. on that server, a node with a wrong token exits 1 within 3 s with the
#     same clear error, the wrong token appearing nowhere in its output;
#  5. the final checks of lib.sh, for each of the two clusters.
# Takes ~2 s on loopback (its bounded waits add up to at most ~45 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup auth "${1:-}"
it_need_helpers
for f in --nats-user --nats-password --nats-token; do
    "$NODE_BIN" --help | grep -q -- "$f" || fail "aether-node has no $f"
done

PASSWORD="pw-$RANDOM$RANDOM"
TOKEN="tok-$RANDOM$RANDOM"
WRONG="wrong-$RANDOM$RANDOM"

# refused ID MS: ID (already started) exits 1 within MS saying the
# credentials were refused, without echoing $WRONG.
refused() {
    local id=$1 t0
    t0=$(now_ms)
    node_wait "$id" "$2"
    [[ "$NODE_RC" -eq 1 ]] || fail "$id exited $NODE_RC with refused credentials (want 1)"
    grep -q "refused the credentials" "$WORK/$id.err" || fail "$id's error does not say the credentials were refused: $(tail -n 2 "$WORK/$id.err")"
    grep -q "127.0.0.1:${SRV_PORT[$3]}" "$WORK/$id.err" || fail "$id's error does not name the server"
    if grep -q -- "$WRONG" "$WORK/$id.out" "$WORK/$id.err"; then
        fail "$id printed the secret it was given"
    fi
    echo "$id: refused after $(( $(now_ms) - t0 )) ms: $(grep -m1 'refused the credentials' "$WORK/$id.err" | sed 's/^.*aether-node: //')"
}

# ---- 1. user/password -------------------------------------------------------------------
server_start userpass --user aether --pass "$PASSWORD"
URL=$(server_url userpass)
PROBE_AUTH=(--user aether --password "$PASSWORD")
node_start n1 "$URL" --nats-user aether --nats-password "$PASSWORD"
node_start n2 "$URL" --nats-user aether --nats-password "$PASSWORD"
NODE_ENV=(AETHER_NATS_PASSWORD="$PASSWORD")
node_start n3 "$URL" --nats-user aether
NODE_ENV=()
wait_settled 10000 "$WORK/map.userpass" n1 n2 n3
grep -q "auth: user/password" "$WORK/n1.err" || fail "n1 does not say it authenticated with user/password"
echo "user/password: n1 n2 n3 settled, leader $LEADER_NOW"

# ---- 2. refused ----------------------------------------------------------------------------
node_start bad-password "$URL" --nats-user aether --nats-password "$WRONG"
refused bad-password 3000 userpass
node_start no-credentials "$URL"
refused no-credentials 3000 userpass
for n in n1 n2 n3; do # drains are another test's subject
    node_kill "$n"
done
server_stop userpass

# ---- 3. token --------------------------------------------------------------------------------
CLUSTER=it-token
server_start token --auth "$TOKEN"
URL=$(server_url token)
PROBE_AUTH=(--token "$TOKEN")
for n in t1 t2 t3; do
    node_start "$n" "$URL" --nats-token "$TOKEN"
done
wait_settled 10000 "$WORK/map.token" t1 t2 t3
grep -q "auth: token" "$WORK/t1.err" || fail "t1 does not say it authenticated with a token"
echo "token: t1 t2 t3 settled, leader $LEADER_NOW"

# ---- 4. refused ------------------------------------------------------------------------------
node_start bad-token "$URL" --nats-token "$WRONG"
refused bad-token 3000 token

final_checks n1 n2 n3 # two clusters: each checked on its own
final_checks t1 t2 t3
echo "PASS"
exit 0
