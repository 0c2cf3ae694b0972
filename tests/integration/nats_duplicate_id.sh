#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_duplicate_id.sh: a second aether-node process of a live node id (a
# restarted pod overlapping the old one, a copy-pasted config) on a real
# nats-server: the newer process wins, the older one stops serving at once
# and exits 3 (DESIGN 2.4; issue 12 item 2).
#
#   nats_duplicate_id.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n3 (--shards 64), each with --metrics-addr on a free
#     loopback port, settled within 10 s; D = a follower;
#  2. a second process of D ("twin", its own metrics port) starts;
#  3. every ~50 ms until the old D has exited (at most 10 s): scrape the
#     twin's aether_shards_owned, then the old D's. Once the twin serves
#     anything, the old D must serve nothing (it exited or reports 0): a
#     later sample with both serving is two processes serving the same
#     shards. Measured on one CLOCK_MONOTONIC (the --trace lines): the
#     leader's NodeJoined of D's new incarnation -> the old D's SUPERSEDED
#     (it has released everything); within failure_timeout (1000 ms);
#  4. the old D exits 3 within 10 s of the twin's start, its stderr says
#     "superseded by a newer process of node D (incarnation X > Y";
#  5. within 5 s: the map (state bucket) stable with owners n1..n3, the twin
#     has installed it, and aether_shards_owned of n1, the other node and the
#     twin sum to 64: exactly one process serves each shard;
#  6. the final checks of lib.sh over every process (the twin's trace too).
# Takes ~3 s on loopback; its bounded waits add up to at most ~40 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup duplicate-id "${1:-}"
it_need_helpers
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"

FAILURE_TIMEOUT_MS=1000 # the default failure_timeout_ms
EXIT_SUPERSEDED=3

# 1. Three nodes with metrics.
server_start nats
URL=$(server_url nats)
NODES=(n1 n2 n3)
for id in "${NODES[@]}"; do metrics_node_start "$id" "$URL"; done
t0=$(now_ms)
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
LEADER=$LEADER_NOW
D=$(others "$LEADER" | head -n 1)
OTHER=$(others "$LEADER" "$D")
echo "up: ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER; duplicating $D"

owned() { # NAME: its aether_shards_owned, empty if it does not answer
    curl -s -m 1 "http://127.0.0.1:${MPORT[$1]}/metrics" 2>/dev/null |
        awk '$1 ~ /^aether_shards_owned(\{|$)/ { print $2; exit }'
}
# Settled is the map; serving waits for the next acknowledged keep-alive
# (a new cluster's first leader acknowledges none before its first map).
d_serves() { before=$(owned "$D"); [[ -n "$before" && "$before" -gt 0 ]]; }
wait_for 3000 d_serves || fail "$D serves '$before' shards before the twin starts"

# 2. The twin.
MPORT[twin]=$(free_port)
log_mark "$LEADER"
t_start=$(now_ms)
node_start_as twin "$D" "$URL" --metrics-addr "127.0.0.1:${MPORT[twin]}"

# 3. Never both serving (the twin is scraped first: a later sample of the
# old one still serving is an overlap). The old one stops within
# failure_timeout of the twin's admission: the leader's NodeJoined of D and
# the old D's SUPERSEDED trace line, on one CLOCK_MONOTONIC.
twin_served=0 samples=0
while node_alive "$D" && (( $(now_ms) - t_start <= 10000 )); do
    new=$(owned twin)
    old=$(owned "$D")
    samples=$(( samples + 1 ))
    [[ -n "$new" && "$new" -gt 0 ]] && twin_served=1
    if (( twin_served )) && [[ -n "$old" && "$old" -gt 0 ]]; then
        fail "two processes of $D serve at once: the twin serves $new shards, the old process $old (sample $samples, $(( $(now_ms) - t_start )) ms after the twin's start)"
    fi
    sleep 0.05
done

# 4. The old process exits 3 and says why.
node_wait "$D" $(( 10000 - ($(now_ms) - t_start) > 0 ? 10000 - ($(now_ms) - t_start) : 1 ))
[[ "$NODE_RC" -eq $EXIT_SUPERSEDED ]] || fail "the old $D exited $NODE_RC, want $EXIT_SUPERSEDED (superseded)"
grep -qE "superseded by a newer process of node $D \(incarnation [0-9]+ > [0-9]+" "$WORK/$D.err" ||
    fail "the old $D did not log that it was superseded"
t_exit=$(( $(now_ms) - t_start ))
us_joined=$(since_mark "$LEADER" | awk -v d="node=$D" '$1 == "T" && $4 == "EVENT" && $5 == "NodeJoined" {
                for (i = 6; i <= NF; i++) if ($i == d) { print $2; exit } }')
[[ -n "$us_joined" ]] || fail "the leader $LEADER never admitted the twin of $D (no NodeJoined of $D)"
us_stopped=$(awk -v id="$D" '$1 == "T" && $3 == id && $4 == "SUPERSEDED" { print $2; exit }' "$WORK/$D.out")
[[ -n "$us_stopped" ]] || fail "the old $D has no SUPERSEDED trace line"
stop_ms=$(( (us_stopped - us_joined) / 1000 ))
(( stop_ms <= FAILURE_TIMEOUT_MS )) ||
    fail "the old $D stopped ${stop_ms} ms after the twin's admission (failure_timeout ${FAILURE_TIMEOUT_MS} ms)"

# 5. Exactly one process serves each shard.
SERVING_WHY=""
serving_ok() {
    probe_map "$WORK/map.after" || { SERVING_WHY="map unreadable"; return 1; }
    map_check "$WORK/map.after" "${NODES[@]}" || { SERVING_WHY=$MAP_WHY; return 1; }
    local v sum=0 n k
    v=$(map_version "$WORK/map.after")
    [[ "$(installed_version twin)" == "$v" ]] || { SERVING_WHY="twin installed v$(installed_version twin), current v$v"; return 1; }
    for n in "$LEADER" "$OTHER" twin; do
        k=$(owned "$n")
        [[ -n "$k" ]] || { SERVING_WHY="$n does not answer"; return 1; }
        sum=$(( sum + k ))
    done
    (( sum == SHARDS )) || { SERVING_WHY="shards owned sum to $sum over $LEADER $OTHER twin, want $SHARDS"; return 1; }
}
wait_for 5000 serving_ok || fail "not settled after the duplicate: $SERVING_WHY"
echo "twin of $D started; the old $D stopped serving ${stop_ms} ms after the leader admitted the twin (${samples} samples, never both) and exited $NODE_RC after ~${t_exit} ms; twin serves $(owned twin) shards, map v$(map_version "$WORK/map.after")"
final_checks "${NODES[@]}" twin
echo "PASS"
exit 0
