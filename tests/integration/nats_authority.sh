#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_authority.sh: the stored state is the authority. A NodeFailed of a
# healthy follower in the present leader's name and term with seq 5000, and a
# map of the present term 1000 versions ahead giving every shard to that
# follower, change nothing any node serves; every node counts the seq jump
# and keeps taking the leader's later events (issue 12, item 3; DESIGN
# "events carry a per-term sequence number", 2.4, CONVENTIONS "believe the
# store, not the message").
#
#   nats_authority.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n3 (--shards 64), each with --metrics-addr, settled
#     within 10 s; the victim V is a follower;
#  2. nats_forge --present-victim V publishes the two forgeries;
#  3. within 2 s, and still 1 s later, through each node's /metrics: its
#     aether_map_version is the stored map's version (nobody installed the
#     forged map), its aether_shards_owned is its primaries in the stored map
#     (V serves all of its own again, the others serve nothing of V's), the
#     owned shards sum to 64 (every shard served), aether_shards_multi_owner
#     is 0; V counted the forged NodeFailed as refuted and both followers
#     counted the seq jump (aether_event_seq_gaps_total);
#  4. the leader's later events are still taken: n4 joins, the map settles
#     over n1..n4 within 5 s and every first node (V too) printed n4's
#     NodeJoined (on main the forged seq 5000 made them drop it) and counts 4
#     Active nodes;
#  5. the final checks of lib.sh.
# Takes ~6 s on loopback; its bounded waits add up to at most ~40 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup authority "${1:-}"
it_need_helpers forge
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"

# ---- 1. three nodes, each with its metrics ------------------------------------------
server_start nats
URL=$(server_url nats)
NODES=(n1 n2 n3)
for n in "${NODES[@]}"; do metrics_node_start "$n" "$URL"; done
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
L=$LEADER_NOW
mapfile -t FOLLOWERS < <(others "$L")
V=${FOLLOWERS[0]}
echo "up: ${NODES[*]}, leader $L, victim $V; map v$(map_version "$WORK/map.up")"

primaries() { # FILE ID: ID's primaries in the map in FILE
    awk -v id="$2" '$1 == "owner" && $2 == id { sub("primaries=", "", $3); print $3 }' "$1"
}

# every node installed the stored map and serves exactly its primaries in it
AUTH_WHY=""
on_stored_map() {
    probe_map "$WORK/map.now" || { AUTH_WHY="stored map unreadable"; return 1; }
    local v n sum=0 owned want
    v=$(map_version "$WORK/map.now")
    for n in "$@"; do
        scrape "$n" || { AUTH_WHY="$n: /metrics did not answer"; return 1; }
        [[ "$(value "$n" aether_map_version)" == "$v" ]] ||
            { AUTH_WHY="$n has map v$(value "$n" aether_map_version) installed, the stored one is v$v"; return 1; }
        owned=$(value "$n" aether_shards_owned)
        want=$(primaries "$WORK/map.now" "$n")
        [[ "$owned" == "${want:-0}" ]] ||
            { AUTH_WHY="$n serves $owned shards, its primaries in the stored map v$v are ${want:-0}"; return 1; }
        [[ "$(value "$n" aether_shards_multi_owner)" == 0 ]] ||
            { AUTH_WHY="$n: aether_shards_multi_owner is $(value "$n" aether_shards_multi_owner)"; return 1; }
        sum=$(( sum + owned ))
    done
    (( sum == SHARDS )) || { AUTH_WHY="the nodes serve $sum shards, want $SHARDS"; return 1; }
    AUTH_WHY=""
}
wait_for 5000 on_stored_map "${NODES[@]}" || fail "not serving the stored map before the forgery: $AUTH_WHY"
log_mark "${NODES[@]}"

# ---- 2. the forgeries ---------------------------------------------------------------
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --present-victim "$V" >"$WORK/forge.log" 2>&1 ||
    fail "nats_forge --present-victim failed: $(cat "$WORK/forge.log")"
t0=$(now_ms)
grep -q "^state leader=$L " "$WORK/forge.log" || fail "nats_forge saw another state: $(head -n 1 "$WORK/forge.log")"
echo "forged: NodeFailed $V in $L's name with seq 5000, and a map 1000 versions ahead giving $V every shard"

# ---- 3. nothing changed what anyone serves -----------------------------------------
wait_for 2000 on_stored_map "${NODES[@]}" || fail "not back on the stored map within 2 s of the forgery: $AUTH_WHY"
took=$(( $(now_ms) - t0 ))
sleep 1
on_stored_map "${NODES[@]}" || fail "1 s later: $AUTH_WHY"
[[ "$(map_version "$WORK/map.now")" == "$(map_version "$WORK/map.up")" ]] ||
    fail "the stored map moved from v$(map_version "$WORK/map.up") to v$(map_version "$WORK/map.now")"
(( $(value "$V" aether_events_refuted_total) >= 1 )) ||
    fail "$V did not count the forged NodeFailed as refuted (aether_events_refuted_total $(value "$V" aether_events_refuted_total))"
for n in "${FOLLOWERS[@]}"; do
    (( $(value "$n" aether_event_seq_gaps_total) >= 1 )) ||
        fail "$n did not count the seq jump (aether_event_seq_gaps_total $(value "$n" aether_event_seq_gaps_total))"
    (( $(value "$n" aether_map_store_reads_total) >= 1 )) ||
        fail "$n did not read the stored map on the forged publication"
done
echo "every node on the stored map v$(map_version "$WORK/map.now") and serving its primaries after ${took} ms (and 1 s later)"

# ---- 4. the leader's later events are still taken -----------------------------------
metrics_node_start n4 "$URL"
wait_settled 5000 "$WORK/map.join" n1 n2 n3 n4
for n in "${NODES[@]}"; do
    since_mark "$n" | grep -qE " EVENT NodeJoined .*n4" || fail "$n did not take n4's NodeJoined after the forgery"
    scrape "$n" || fail "$n: /metrics did not answer"
    [[ "$(value "$n" aether_nodes 'status="active"')" == 4 ]] ||
        fail "$n counts $(value "$n" aether_nodes 'status="active"') Active nodes, want 4"
done
wait_for 2000 on_stored_map n1 n2 n3 n4 || fail "after n4 joined: $AUTH_WHY"
echo "n4 joined: map v$(map_version "$WORK/map.join") settled over n1..n4; every node took its NodeJoined"

final_checks "${NODES[@]}" n4
echo "PASS"
exit 0
