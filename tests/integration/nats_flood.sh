#!/usr/bin/env bash
# nats_flood.sh: a flood of commands fences nobody (issue 13 item 3), on a
# real nats-server with real aether-node processes.
#
#   nats_flood.sh BUILD_DIR [REQUESTS]
#
# Steps (every wait bounded):
#  1. nats-server and n1..n3 (--shards 64), settled within 10 s;
#  2. nats_forge --flood publishes REQUESTS (default 100000) LeaveCluster
#     requests for a ghost id on aether.<cluster>.cmd.LeaveCluster, unpaced,
#     and collects the replies for 5 s;
#  3. 2 s later: no node logged "fenced" and no LEADER line (elected or
#     lost) since the flood began, the stored map has the same version, and
#     every node installed it; some requests were answered busy (EFULL: the
#     leader's budget of waiting commands, not its mailbox, took the flood)
#     and at least a quarter were answered at all (core NATS drops what a
#     subscription's pending limit cannot hold: "Slow Consumer"; the
#     requester sees a timeout); the leader's log has no more than 20 lines
#     since the flood began (repeated lines are rate-limited);
#  4. the final checks of lib.sh.
# Prints the flood's figures (requests, publish time, replies by status).
# Takes ~15 s on loopback; its bounded waits add up to at most ~40 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup flood "${1:-}"
it_need_helpers forge
REQUESTS=${2:-100000}

# 1. Three nodes.
cluster_up 3
v0=$(map_version "$WORK/map.up")
term0=$(leader_term "$LEADER")
log_mark "${NODES[@]}"
declare -A ERR_MARK
for id in "${NODES[@]}"; do ERR_MARK[$id]=$(wc -l <"$WORK/$id.err"); done

# 2. The flood.
t0=$(now_ms)
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --flood "$REQUESTS" --wait-ms 5000 \
    >"$WORK/flood.log" 2>&1 || fail "nats_forge --flood: $(tail -c 600 "$WORK/flood.log")"
echo "flood: $(tr '\n' ' ' <"$WORK/flood.log")($(( $(now_ms) - t0 )) ms in all)"
sleep 2

# 3. Nobody fenced, the same leader, the same map, answers.
for id in "${NODES[@]}"; do
    tail -n +"$(( ${ERR_MARK[$id]} + 1 ))" "$WORK/$id.err" >"$WORK/$id.err.flood"
    if grep -q "fenced" "$WORK/$id.err.flood"; then
        fail "$id fenced itself during the flood: $(grep -m1 "fenced" "$WORK/$id.err.flood")"
    fi
    if since_mark "$id" | grep -q "LEADER \(elected\|lost\)"; then
        fail "a leader change during the flood on $id: $(since_mark "$id" | grep -m1 "LEADER")"
    fi
done
probe_map "$WORK/map.after" || fail "the stored map is unreadable after the flood"
v1=$(map_version "$WORK/map.after")
[[ "$v1" == "$v0" ]] || fail "the map moved from v$v0 to v$v1 during the flood"
for id in "${NODES[@]}"; do
    [[ "$(installed_version "$id")" == "$v1" ]] || fail "$id has v$(installed_version "$id") installed, want v$v1"
done
[[ "$(leader_term "$LEADER")" == "$term0" ]] || fail "the leader's term moved from $term0 to $(leader_term "$LEADER")"
sent=$(sed -n 's/^flood sent=\([0-9]*\) .*/\1/p' "$WORK/flood.log")
replies=$(sed -n 's/^flood .* replies=\([0-9]*\)$/\1/p' "$WORK/flood.log")
[[ -n "$sent" && -n "$replies" ]] || fail "nats_forge --flood printed no figures: $(cat "$WORK/flood.log")"
busy=$(sed -n 's/^reply EFULL \([0-9]*\)$/\1/p' "$WORK/flood.log")
[[ -n "$busy" && "$busy" -gt 0 ]] || fail "no request was answered busy: the leader queued the whole flood"
(( replies * 4 >= sent )) || fail "only $replies of $sent requests were answered"
lines=$(wc -l <"$WORK/$LEADER.err.flood")
(( lines <= 20 )) || fail "the leader logged $lines lines during the flood (repeated lines must be rate-limited): $(sort "$WORK/$LEADER.err.flood" | cut -c 26- | uniq -c | sort -rn | head -3)"
echo "after the flood: leader $LEADER term $term0, map v$v1 everywhere, nobody fenced; the leader logged $lines lines"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
