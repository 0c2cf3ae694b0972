#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_secret.sh: with a cluster secret (cluster_secret_file, issue 13 item
# 1) a client without it can neither forge nor replay anything the cluster
# acts on, on a real nats-server with real aether-node processes.
#
#   nats_secret.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. `aetherctl secret new` makes the secret; aether-node refuses a missing
#     and a too short secret file with exit 2 and one line naming it;
#  2. nats-server and n1..n4 (--shards 64, the secret, metrics), settled
#     within 10 s; L the leader, A, B, D the followers;
#  3. nats_unsealed --replay-hb D captures a genuine heartbeat of D, then
#     D is killed (-9) while the captured heartbeat is sent again every 50 ms
#     for 6 s, with its genuine tag (a replay) and without one: D is Failed
#     in the stored topology within 5 s of the kill, and every live node
#     counted at least 20 of the copies as unauthenticated;
#  4. meanwhile nats_unsealed --attack: a LeaderElected of "evil" with term
#     T+1000, a MarkNodeFailed of A, a JoinCluster of B with incarnation
#     2^62 and address evil:1 (both answered EPERM "unauthenticated"), the
#     stored map with its version + 1000 on the map subject, a genuine
#     event replayed 3 times with its tag, and a lease value naming "evil"
#     at term T+1000 written straight to the lease bucket;
#  5. checks: no node logged "fenced" and none a LEADER line since the attack began;
#     L leads at the term it had; the stored lease names L again (its next
#     renewal wrote over the forged value and logged it); A is Active and
#     serving, B's stored address is not evil:1; every live node's
#     aether_decode_errors_total{reason="unauthenticated"} grew by at least
#     5 during the attack (LeaderElected, map, 3 replays; the leader's by at
#     least 7: the two commands); within 10 s the map
#     has owners L, A, B, balanced, every live node installed it, and the
#     live nodes' aether_shards_owned add up to the shard count with no
#     aether_shards_multi_owner;
#  6. `aetherctl drain A` without the secret is refused ("unauthenticated",
#     exit 1) and changes nothing; with --cluster-secret-file it is
#     accepted and A is Draining or Left in the stored topology;
#  7. the final checks of lib.sh.
# Takes ~15 s on loopback; its bounded waits add up to at most ~60 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup secret "${1:-}"
it_need_helpers forge
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"
command -v python3 >/dev/null || fail "python3 is missing"
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
UNSEALED_BIN=$(dirname "$FORGE_BIN")/nats_unsealed
[[ -x "$UNSEALED_BIN" ]] || fail "test helper $UNSEALED_BIN not built"
SECRET=$WORK/cluster.secret

# 1. The secret, and bad secret files refused at once.
it_clean_env
env "${CLEAN_ENV[@]}" "$CTL_BIN" secret new "$SECRET" >"$WORK/secret.out" 2>&1 ||
    fail "aetherctl secret new: $(cat "$WORK/secret.out")"
printf 'short\n' >"$WORK/short.secret"
for bad in "$WORK/missing.secret" "$WORK/short.secret" "$WORK"; do
    env "${CLEAN_ENV[@]}" timeout -s KILL 5 "$NODE_BIN" --nats nats://127.0.0.1:1 --node x --cluster "$CLUSTER" \
        --cluster-secret-file "$bad" >"$WORK/bad.out" 2>"$WORK/bad.err"
    rc=$?
    [[ $rc -eq 2 ]] || fail "aether-node --cluster-secret-file $bad exited $rc, want 2: $(cat "$WORK/bad.err")"
    [[ $(wc -l <"$WORK/bad.err") -eq 1 ]] && grep -q "cluster_secret_file $bad" "$WORK/bad.err" ||
        fail "aether-node --cluster-secret-file $bad: want one line naming it, got: $(cat "$WORK/bad.err")"
done
echo "bad secret files refused: $(cat "$WORK/bad.err")"

# 2. Four nodes sharing the secret.
server_start nats
URL=$(server_url nats)
NODES=(n1 n2 n3 n4)
for id in "${NODES[@]}"; do metrics_node_start "$id" "$URL" --cluster-secret-file "$SECRET"; done
t0=$(now_ms)
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
LEADER=$LEADER_NOW
term0=$(leader_term "$LEADER")
A=$(others "$LEADER" | head -n 1)
B=$(others "$LEADER" "$A" | head -n 1)
D=$(others "$LEADER" "$A" "$B" | head -n 1)
echo "up: ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER term $term0; A=$A B=$B D=$D"

metric() { # ID NAME [LABEL-REGEX]: NAME's first sample (matching LABEL-REGEX) on ID's /metrics
    curl -s -m 1 "http://127.0.0.1:${MPORT[$1]}/metrics" 2>/dev/null |
        awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"({|$)" && index($1, l) > 0 { print $2; exit }'
}
unauth() { metric "$1" aether_decode_errors_total 'reason="unauthenticated"'; }
ctl() { # ARGS...: aetherctl against this cluster; stdout $WORK/ctl.out, stderr $WORK/ctl.err
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" "$@" --nats "$URL" --cluster "$CLUSTER" \
        >"$WORK/ctl.out" 2>"$WORK/ctl.err"
}
field_of() { # ID FIELD: the node's FIELD in the stored topology (aetherctl status --json), verified
    ctl status --json --cluster-secret-file "$SECRET" || return 0
    python3 -c 'import json,sys
for n in json.load(open(sys.argv[1]))["nodes"]:
    if n["id"] == sys.argv[2]: print(n[sys.argv[3]])' "$WORK/ctl.out" "$1" "$2" 2>/dev/null
}
lease_leader() {
    ctl status --json --cluster-secret-file "$SECRET" || return 0
    python3 -c 'import json,sys
l = json.load(open(sys.argv[1]))["leader"]
print(l.get("node", "") if isinstance(l, dict) else (l or ""))' "$WORK/ctl.out" 2>/dev/null
}

declare -A U0 ERR_MARK
for id in "${NODES[@]}"; do
    U0[$id]=$(unauth "$id")
    [[ -n "${U0[$id]}" ]] || fail "$id has no aether_decode_errors_total{reason=\"unauthenticated\"} series"
    ERR_MARK[$id]=$(wc -l <"$WORK/$id.err")
done
log_mark "${NODES[@]}"

# 3. A genuine heartbeat of D, captured, then D killed while it is replayed.
bg_start replay "$UNSEALED_BIN" --nats "$URL" --cluster "$CLUSTER" --replay-hb "$D" --for-ms 6000
wait_log 5000 "$WORK/replay.log" "^captured " || fail "no heartbeat of $D captured: $(cat "$WORK/replay.log")"
node_kill "$D"
t_kill=$(now_ms)
d_failed() { [[ "$(field_of "$D" status)" == "failed" ]]; }
wait_for 5000 d_failed || fail "$D is '$(field_of "$D" status)' 5 s after kill -9 while its heartbeat is replayed, want failed"
echo "$D failed $(( $(now_ms) - t_kill )) ms after kill -9 despite its replayed heartbeats"
wait_log 8000 "$WORK/replay.log" "^sent " || fail "nats_unsealed --replay-hb: $(cat "$WORK/replay.log")"
LIVE=("$LEADER" "$A" "$B")
declare -A U1
for id in "${LIVE[@]}"; do
    U1[$id]=$(unauth "$id")
    (( ${U1[$id]} - ${U0[$id]} >= 20 )) ||
        fail "$id counted $(( ${U1[$id]} - ${U0[$id]} )) unauthenticated heartbeats of $D, want >= 20: $(cat "$WORK/replay.log")"
    echo "$id: $(( ${U1[$id]} - ${U0[$id]} )) replayed or unsealed heartbeats refused"
done

# 4. The attack.
"$UNSEALED_BIN" --nats "$URL" --cluster "$CLUSTER" --attack --victim "$A" --rejoin "$B" >"$WORK/attack.log" 2>&1 ||
    fail "nats_unsealed --attack: $(cat "$WORK/attack.log")"
echo "attack: $(tr '\n' ' ' <"$WORK/attack.log")"
for cmd in MarkNodeFailed JoinCluster; do
    grep -q "^reply $cmd EPERM unauthenticated" "$WORK/attack.log" ||
        fail "the unsealed $cmd was not refused EPERM unauthenticated: $(grep "$cmd" "$WORK/attack.log")"
done

# 5. Nothing moved.
lease_back() { [[ "$(lease_leader)" == "$LEADER" ]]; }
wait_for 3000 lease_back || fail "the stored lease names '$(lease_leader)', want $LEADER: $(cat "$WORK/ctl.out")"
grep -q "only unauthenticated writes since revision" "$WORK/$LEADER.err" ||
    fail "the leader $LEADER did not write its renewal over the forged lease value"
for id in "${LIVE[@]}"; do
    tail -n +"$(( ${ERR_MARK[$id]} + 1 ))" "$WORK/$id.err" >"$WORK/$id.err.attack"
    if grep -q "fenced" "$WORK/$id.err.attack"; then
        fail "$id fenced itself during the attack: $(grep -m1 "fenced" "$WORK/$id.err.attack")"
    fi
    if since_mark "$id" | grep -q "LEADER \(elected\|lost\)"; then
        fail "a leader change during the attack on $id: $(since_mark "$id" | grep -m1 "LEADER")"
    fi
    want=5
    [[ "$id" == "$LEADER" ]] && want=7
    now=$(unauth "$id")
    (( now - ${U1[$id]} >= want )) ||
        fail "$id counted $(( now - ${U1[$id]} )) unauthenticated messages during the attack, want >= $want"
    echo "$id: $(( now - ${U1[$id]} )) unauthenticated messages of the attack refused; $(grep -c "unauthenticated" "$WORK/$id.err.attack") log lines since the heartbeats began"
done
[[ "$(leader_term "$LEADER")" == "$term0" ]] || fail "the leader's term moved from $term0 to $(leader_term "$LEADER")"
[[ "$(field_of "$A" status)" == "active" ]] || fail "$A is '$(field_of "$A" status)' after the forged MarkNodeFailed, want active"
[[ "$(field_of "$B" address)" != "evil:1" ]] || fail "$B's stored address became evil:1"
wait_settled 10000 "$WORK/map.after" "${LIVE[@]}"
[[ "$LEADER_NOW" == "$LEADER" ]] || fail "the leader is $LEADER_NOW, was $LEADER"
owned=0
for id in "${LIVE[@]}"; do
    o=$(metric "$id" aether_shards_owned)
    m=$(metric "$id" aether_shards_multi_owner)
    [[ -n "$o" && "$m" == "0" ]] || fail "$id: aether_shards_owned '$o', aether_shards_multi_owner '$m'"
    owned=$(( owned + o ))
done
(( owned == SHARDS )) || fail "the live nodes serve $owned shards in all, want $SHARDS (each by one node)"
echo "unaffected: leader $LEADER term $term0, $owned shards served once each by ${LIVE[*]}"

# 6. Changing the cluster needs the secret.
ctl drain "$A"
rc=$?
[[ $rc -eq 1 ]] || fail "aetherctl drain $A without the secret exited $rc, want 1: $(cat "$WORK/ctl.out" "$WORK/ctl.err")"
grep -q "unauthenticated" "$WORK/ctl.out" "$WORK/ctl.err" ||
    fail "aetherctl drain $A without the secret: no 'unauthenticated' in $(cat "$WORK/ctl.out" "$WORK/ctl.err")"
echo "refused without the secret: $(cat "$WORK/ctl.out" "$WORK/ctl.err" | head -n 1)"
[[ "$(field_of "$A" status)" == "active" ]] || fail "$A is '$(field_of "$A" status)' after a refused drain"
ctl drain "$A" --cluster-secret-file "$SECRET" ||
    fail "aetherctl drain $A with the secret exited $?: $(cat "$WORK/ctl.out" "$WORK/ctl.err")"
cp "$WORK/ctl.out" "$WORK/drain.out"
a_draining() { local s; s=$(field_of "$A" status); [[ "$s" == "draining" || "$s" == "left" ]]; }
wait_for 5000 a_draining || fail "$A is '$(field_of "$A" status)' after the sealed drain, want draining or left"
echo "drain with the secret: $(head -n 1 "$WORK/drain.out")"

# 7.
final_checks "${LIVE[@]}"
echo "PASS"
exit 0
