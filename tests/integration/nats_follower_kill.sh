#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_follower_kill.sh: kill -9 of a follower aether-node on a real
# nats-server: it is declared failed and its shards are re-owned (DESIGN 6,
# "follower crash"; issue 4 section 7).
#
#   nats_follower_kill.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n4 (--shards 64), settled within 10 s: one leader,
#     the map (state bucket, read by nats_probe) stable over all four, 16
#     primaries each;
#  2. kill -9 one follower F (before, the oracle must refuse the map as
#     settled over the three others);
#  3. within 5 s (failure_timeout 1 s + heartbeat + debounce, with room for
#     a loaded machine) the leader emits "NodeFailed ... node=F
#     silent_ms=N" with N >= 1000 (the failure timeout: not declared early);
#  4. within 5 s of the kill the map is settled over the three survivors
#     (stable, every shard owned, none by F, balance 21/21/22), and only F's
#     shards changed owner (minimal movement); the leader is the same node;
#  5. the final checks of lib.sh: no VIOLATION on any stderr, no node
#     accepted an event of an older term, no two leaders acted at once
#     (their --trace lines).
# Prints the measured kill -> NodeFailed and kill -> map settled times.
# Takes ~2 s on loopback (its bounded waits add up to at most ~25 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup follower-kill "${1:-}"
it_need_helpers

cluster_up 4
F=$(others "$LEADER" | head -n 1)
mapfile -t SURVIVORS < <(others "$F")
# The oracle can say no: over the three survivors, while F is still Active
# and owns shards, the map is not settled (nats_probe settled).
if settled "$WORK/map.tmp" "${SURVIVORS[@]}"; then
    fail "settled over ${SURVIVORS[*]} while $F is still Active"
fi
[[ "$SETTLED_WHY" == "not settled: "* ]] || fail "not settled for another reason: $SETTLED_WHY"
echo "before the kill, over ${SURVIVORS[*]}: $SETTLED_WHY"

t0=$(now_ms)
node_kill "$F"
wait_log 5000 "$WORK/$LEADER.out" "NodeFailed .* node=$F silent_ms=" ||
    fail "no NodeFailed for $F from the leader $LEADER within 5 s of kill -9"
t_failed=$(( $(now_ms) - t0 ))
silent=$(grep -E "NodeFailed .* node=$F silent_ms=" "$WORK/$LEADER.out" | head -n 1 | sed 's/.*silent_ms=\([0-9]*\).*/\1/')
(( silent >= 1000 )) || fail "$F declared failed after only ${silent} ms of silence (failure timeout 1000 ms)"
wait_settled 5000 "$WORK/map.after" "${SURVIVORS[@]}"
t_settled=$(( $(now_ms) - t0 ))
[[ "$LEADER_NOW" == "$LEADER" ]] || fail "the leader changed from $LEADER to $LEADER_NOW when a follower died"
moved=$(join <(ownership "$WORK/map.up") <(ownership "$WORK/map.after") | awk '$2 != $3')
bad=$(awk -v f="$F" '$2 != f' <<<"$moved")
[[ -z "$bad" ]] || fail "shards not owned by $F moved: $(tr '\n' ';' <<<"$bad")"
left=$(awk -v f="$F" '$2 == f' <(ownership "$WORK/map.up") | wc -l)
[[ $(grep -c . <<<"$moved") -eq "$left" ]] || fail "$left shards were on $F but $(grep -c . <<<"$moved") moved"
echo "kill -9 $F: NodeFailed (silent_ms=$silent) seen after ~$t_failed ms; its $left shards re-owned, map v$(map_version "$WORK/map.after") settled after ~$t_settled ms"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
