#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_flood.sh: floods of commands fence nobody (issue 13 item 3), on a
# real nats-server with real aether-node processes, without and with a
# cluster secret.
#
#   nats_flood.sh BUILD_DIR [REQUESTS] [secret]
#
# Steps (every wait bounded):
#  1. nats-server and n1..n3 (--shards 64, --allowed-nodes n1,n2,n3, metrics;
#     with "secret", `aetherctl secret new` and --cluster-secret-file),
#     settled within 10 s, every node serving (its metrics);
#  2. nats_forge --flood publishes REQUESTS (default 100000) LeaveCluster
#     requests for a ghost id on aether.<cluster>.cmd.LeaveCluster, unpaced,
#     and collects the replies for 5 s; 2 s later, the checks below (with
#     the secret, each request carries a well-formed tag made with another
#     key, --wrong-key: every MAC must be computed to refuse it);
#  3. 4000 JoinCluster requests for new ids ghost-0..ghost-3999, one every
#     millisecond (the issue's "paced ghost joins"): every one answered
#     EPERM (allowed_nodes; with the secret: unauthenticated, no tag), and the checks
#     below.
# The checks after each flood: no node logged "fenced" and no LEADER line
# (elected or lost) since the flood began, the stored map has the same
# version and owners n1..n3, and every node installed it; by each node's
# /metrics, nobody is fenced and the shards owned add up to 64 with no
# multi-owner; the leader's log has no line more than twice within one
# second since the flood began (repeated lines are rate-limited). After the
# LeaveCluster flood also: at least 1000 requests were answered at all (core
# NATS drops what a subscription's pending limit cannot hold: "Slow
# Consumer"; the requester sees a timeout; how many depends on the load),
# and without the secret some were answered busy (EFULL: the leader's
# budget of waiting commands, not its mailbox, took the flood); with the
# secret every answer is EPERM (the transport refuses an unsealed request
# before any actor sees it) and the nodes count at least that many
# aether_decode_errors_total{reason="unauthenticated"}.
# Then the final checks of lib.sh. Prints each flood's figures.
# Takes ~25 s on loopback; its bounded waits add up to at most ~70 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODE=${3:-}
[[ -z "$MODE" || "$MODE" == secret ]] || { echo "nats_flood.sh: unknown mode '$MODE' (want secret)" >&2; exit 2; }
it_setup "flood${MODE:+-$MODE}" "${1:-}"
it_need_helpers forge
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"
REQUESTS=${2:-100000}

# 1. Three nodes that admit only themselves (and, in the secret mode, share a secret).
AUTH=()
if [[ "$MODE" == secret ]]; then
    CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
    it_clean_env
    env "${CLEAN_ENV[@]}" "$CTL_BIN" secret new "$WORK/cluster.secret" >"$WORK/secret.out" 2>&1 ||
        fail "aetherctl secret new: $(cat "$WORK/secret.out")"
    AUTH=(--cluster-secret-file "$WORK/cluster.secret")
fi
CLUSTER_METRICS=1 cluster_up 3 --allowed-nodes n1,n2,n3 "${AUTH[@]}"
wait_for 5000 serving_check "${NODES[@]}" || fail "not serving 5 s after settling: $SERVING_WHY"
unauth_sum() { # the nodes' aether_decode_errors_total{reason="unauthenticated"}, summed
    local id s=0 v
    for id in "${NODES[@]}"; do v=$(metric "$id" aether_decode_errors_total 'reason="unauthenticated"'); s=$(( s + ${v:-0} )); done
    echo "$s"
}
v0=$(map_version "$WORK/map.up")
term0=$(leader_term "$LEADER")
declare -A ERR_MARK

flood_begin() { # remember where every log stands
    log_mark "${NODES[@]}"
    local id
    for id in "${NODES[@]}"; do ERR_MARK[$id]=$(wc -l <"$WORK/$id.err"); done
}

unaffected() { # NAME: nobody fenced, same leader and term, same map everywhere, few log lines
    local id v1 lines
    for id in "${NODES[@]}"; do
        tail -n +"$(( ${ERR_MARK[$id]} + 1 ))" "$WORK/$id.err" >"$WORK/$id.err.$1"
        if grep -q "fenced" "$WORK/$id.err.$1"; then
            fail "$id fenced itself during the $1: $(grep -m1 "fenced" "$WORK/$id.err.$1")"
        fi
        if since_mark "$id" | grep -q "LEADER \(elected\|lost\)"; then
            fail "a leader change during the $1 on $id: $(since_mark "$id" | grep -m1 "LEADER")"
        fi
    done
    probe_map "$WORK/map.$1" || fail "the stored map is unreadable after the $1"
    map_check "$WORK/map.$1" "${NODES[@]}" || fail "after the $1: $MAP_WHY"
    v1=$(map_version "$WORK/map.$1")
    [[ "$v1" == "$v0" ]] || fail "the map moved from v$v0 to v$v1 during the $1"
    for id in "${NODES[@]}"; do
        [[ "$(installed_version "$id")" == "$v1" ]] || fail "$id has v$(installed_version "$id") installed, want v$v1"
    done
    [[ "$(leader_term "$LEADER")" == "$term0" ]] || fail "the leader's term moved from $term0 to $(leader_term "$LEADER")"
    serving_check "${NODES[@]}" || fail "after the $1, by the nodes' metrics: $SERVING_WHY"
    lines=$(wc -l <"$WORK/$LEADER.err.$1")
    # Rate-limited: no line (its text without the suppressed count) twice
    # within one second, however long the flood lasted on this machine.
    local burst
    burst=$(sed -E 's/ \[[0-9]+ more suppressed\]//' "$WORK/$LEADER.err.$1" |
        awk '{ key = substr($1, 1, 19); $1 = ""; n[key $0]++ } END { m = 0; for (k in n) if (n[k] > m) m = n[k]; print m + 0 }')
    (( burst <= 2 )) || fail "the leader logged one line $burst times within a second during the $1 (repeated lines must be rate-limited): $(sort "$WORK/$LEADER.err.$1" | cut -c 26- | uniq -c | sort -rn | head -3)"
    echo "after the $1: leader $LEADER term $term0, map v$v1 everywhere, nobody fenced; the leader logged $lines lines"
}

figure() { # FILE KEY: the number after KEY= on the "flood" line, or "reply KEY N"
    sed -n "s/^flood .*$2=\([0-9]*\).*/\1/p; s/^reply $2 \([0-9]*\)$/\1/p" "$1" | head -n 1
}

# 2. An unpaced LeaveCluster flood.
flood_begin
unauth0=$(unauth_sum)
t0=$(now_ms)
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --flood "$REQUESTS" --wait-ms 5000 ${MODE:+--wrong-key} \
    >"$WORK/flood.log" 2>&1 || fail "nats_forge --flood: $(tail -c 600 "$WORK/flood.log")"
echo "LeaveCluster flood: $(tr '\n' ' ' <"$WORK/flood.log")($(( $(now_ms) - t0 )) ms in all)"
sleep 2
unaffected flood
sent=$(figure "$WORK/flood.log" sent)
replies=$(figure "$WORK/flood.log" replies)
busy=$(figure "$WORK/flood.log" EFULL)
[[ -n "$sent" && -n "$replies" ]] || fail "nats_forge --flood printed no figures: $(cat "$WORK/flood.log")"
(( replies >= 1000 )) || fail "only $replies of $sent requests were answered"
if [[ "$MODE" == secret ]]; then
    refused=$(figure "$WORK/flood.log" EPERM)
    [[ "$refused" == "$replies" ]] || fail "$replies answers but ${refused:-0} EPERM: an unsealed request got past the door"
    counted=$(( $(unauth_sum) - unauth0 ))
    (( counted >= refused )) || fail "the nodes counted $counted unauthenticated messages, fewer than the $refused refused"
    echo "with the secret: $refused answered EPERM unauthenticated (wrong MAC); the nodes counted $counted unauthenticated messages"
else
    [[ -n "$busy" && "$busy" -gt 0 ]] || fail "no request was answered busy: the leader queued the whole flood"
fi

# 3. 4000 paced joins of made-up ids.
flood_begin
t0=$(now_ms)
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --flood 4000 --joins --pace-us 1000 --wait-ms 5000 \
    >"$WORK/joins.log" 2>&1 || fail "nats_forge --flood --joins: $(tail -c 600 "$WORK/joins.log")"
echo "ghost joins: $(tr '\n' ' ' <"$WORK/joins.log")($(( $(now_ms) - t0 )) ms in all)"
sleep 1
unaffected "ghost joins"
refused=$(figure "$WORK/joins.log" EPERM)
[[ "$refused" == "4000" ]] || fail "$refused of 4000 ghost joins were refused EPERM: $(cat "$WORK/joins.log")"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
