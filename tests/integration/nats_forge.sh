#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_forge.sh: malformed, oversized and forged messages on every subject of
# a running cluster leave it unaffected, and the nodes count what they
# refused (DESIGN 4 "Wire", 2.4 "drop anything older", 6 "malformed or
# forged messages"; issue 4 section 7).
#
#   nats_forge.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n4 (--shards 64), settled within 10 s; the leader
#     L1 and its term T1 are noted; kill -9 L1 and wait (<= 10 s) until the
#     three others are settled under a new leader L with a term T > T1, so
#     that an older term exists (L1 does not come back: every node that
#     receives the forgeries counts them);
#  2. snapshot: the leader, its term, the lease, the map (version and every
#     shard's owner) and every node's installed map version; marks in logs;
#  3. nats_forge publishes, on aether.<cluster>.evt.<each type>, evt.Bogus,
#     map, hb.<each node>, hb.ghost, cmd.<each command> (as requests) and
#     rel: junk, truncated and duplicate-key JSON, 96 KiB messages, unknown
#     type, version 2, invalid node ids, another cluster, terms -1 and
#     shards out of range, and well-formed messages of L1 stamped with T1
#     (see nats_forge.c); every command request must be refused (a reply,
#     never OK);
#  4. 2 s later (failure timeout + debounce) nothing changed: the same
#     leader believes it leads, nobody was elected, the lease names L with
#     T, the map has the same version and owners, every node still has that
#     version installed, no event since the forgery on any node's stdout
#     but LeaseRenewed (no NodeJoined of the ghost, no NodeFailed, no
#     rebalance), every node is alive;
#  5. the leader still makes decisions (a forged message must not have
#     switched off its leader role either): n5 joins and within 3 s (a
#     join settles in ~0.2 s; a leader that ignores ShardReleased acks
#     needs the 5 s handoff timeout) the map is settled over the three and
#     n5, under the same leader (a forged LeadershipLost naming the leader
#     with an old term is dropped: member.c, speaks_for_term);
#  6. SIGTERM every node, the leader first (its log must say "drained": it
#     released its shards), then the rest (each exits 0; the last one has
#     nobody to hand over to, so "drained" is not asked of them). Their
#     --trace STATS lines show, per node (n5 joined after the forgery and is
#     not counted): decode_rejected >= what nats_forge counted as refusable
#     on the broadcast subjects (plus the command ones for the leader),
#     stale_dropped >= the older-term events and maps; and the refusals were
#     logged rate-limited: at most 10 codec WARN lines per node;
#  7. the final checks of lib.sh (no VIOLATION, no older-term event
#     accepted, no two leaders acting at once).
# Takes ~9 s on loopback (its bounded waits add up to at most ~100 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup forge "${1:-}"
it_need_helpers forge

# ---- 1. a cluster with a past term ---------------------------------------------------
cluster_up 4
L1=$LEADER
T1=$(leader_term "$L1")
node_kill "$L1"
mapfile -t LIVE < <(others "$L1")
wait_settled 10000 "$WORK/map.before" "${LIVE[@]}"
L=$LEADER_NOW
T=$(leader_term "$L")
(( T > T1 )) || fail "the new term $T is not above the old term $T1"
echo "killed $L1 (term $T1); $L leads in term $T over ${LIVE[*]}"

# ---- 2. the state before ----------------------------------------------------------------
sleep 0.5 # the map's installation reaches every node's trace
settled "$WORK/map.before" "${LIVE[@]}" || fail "not settled before the forgery: $SETTLED_WHY"
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | sed 's/ revision=.*//' >"$WORK/lease.before"
declare -A INSTALLED=()
for n in "${LIVE[@]}"; do
    INSTALLED[$n]=$(installed_version "$n")
done
log_mark "${LIVE[@]}"

# ---- 3. the forgeries -----------------------------------------------------------------------
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --old-leader "$L1" --old-term "$T1" >"$WORK/forge.log" 2>&1
rc=$?
[[ "$rc" -eq 0 ]] || fail "nats_forge exited $rc (a command accepted, or the state unreadable)"
grep -q "^state leader=$L term=$T " "$WORK/forge.log" || fail "nats_forge saw another state: $(head -n 1 "$WORK/forge.log")"
[[ "$(sed -n 's/^noreply //p' "$WORK/forge.log")" == 0 ]] || fail "some forged commands got no reply: $(grep -E '^(reply|noreply)' "$WORK/forge.log" | tr '\n' ' ')"
echo "forged: $(sed -n 's/^sent //p' "$WORK/forge.log") messages; command replies: $(grep '^reply ' "$WORK/forge.log" | cut -d' ' -f2- | tr '\n' ';')"

# ---- 4. nothing changed -----------------------------------------------------------------------
sleep 2
nodes_alive "${LIVE[@]}" || fail "a node died under the forgeries"
settled "$WORK/map.after" "${LIVE[@]}" || fail "not settled after the forgery: $SETTLED_WHY"
[[ "$LEADER_NOW" == "$L" ]] || fail "the leader changed from $L to $LEADER_NOW"
[[ -z "$(elected_nodes "${LIVE[@]}")" ]] || fail "someone was elected after the forgery: $(elected_nodes "${LIVE[@]}")"
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | sed 's/ revision=.*//' | cmp -s - "$WORK/lease.before" ||
    fail "the lease changed: $(cat "$WORK/lease.before") -> $("$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease)"
[[ "$(map_version "$WORK/map.after")" == "$(map_version "$WORK/map.before")" ]] ||
    fail "the map version moved from $(map_version "$WORK/map.before") to $(map_version "$WORK/map.after")"
cmp -s <(ownership "$WORK/map.before") <(ownership "$WORK/map.after") || fail "shard owners changed"
for n in "${LIVE[@]}"; do
    [[ "$(installed_version "$n")" == "${INSTALLED[$n]}" ]] ||
        fail "$n installed map v$(installed_version "$n") (was v${INSTALLED[$n]})"
    odd=$(since_mark "$n" | grep -E '^\+[0-9]+ms ' | grep -vE ' LeaseRenewed ' | head -n 3)
    [[ -z "$odd" ]] || fail "$n printed after the forgery: $(tr '\n' ';' <<<"$odd")"
done
echo "after 2 s: same leader $L (term $T), same lease, map v$(map_version "$WORK/map.after") with the same owners on every node"

# ---- 5. the leader still decides: a join --------------------------------------------
node_start n5 "$URL"
LIVE+=(n5)
t0=$(now_ms)
wait_for 3000 settled "$WORK/map.join" "${LIVE[@]}" ||
    fail "a join after the forgery did not settle within 3 s ($SETTLED_WHY): did a forged LeadershipLost switch off the leader's handoffs?"
[[ "$LEADER_NOW" == "$L" ]] || fail "the leader changed from $L to $LEADER_NOW on a join after the forgery"
echo "n5 joined after the forgery: map v$(map_version "$WORK/map.join") settled over ${LIVE[*]} after $(( $(now_ms) - t0 )) ms"

# ---- 6. the counters -------------------------------------------------------------------------
want_b=$(sed -n 's/^expect bcast_rejected>=\([0-9]*\) .*/\1/p' "$WORK/forge.log")
want_s=$(sed -n 's/^expect .*bcast_stale>=\([0-9]*\).*/\1/p' "$WORK/forge.log")
want_l=$(sed -n 's/^expect leader_rejected>=\([0-9]*\).*/\1/p' "$WORK/forge.log")
node_stop "$L" 15000
[[ "$NODE_RC" -eq 0 ]] || fail "$L exited $NODE_RC after SIGTERM"
grep -q " $L drained: " "$WORK/$L.out" || fail "the leader $L did not finish its drain: $(grep " $L drain" "$WORK/$L.out" | tail -n 1)"
for n in "${LIVE[@]}"; do
    [[ "$n" == "$L" ]] && continue
    node_stop "$n" 15000
    [[ "$NODE_RC" -eq 0 ]] || fail "$n exited $NODE_RC after SIGTERM"
done
for n in "${LIVE[@]}"; do
    [[ "$n" == n5 ]] && continue # joined after the forgery: received none of it
    stats=$(grep -E "^T [0-9]+ $n STATS " "$WORK/$n.out" | tail -n 1)
    [[ -n "$stats" ]] || fail "$n printed no STATS line at exit"
    rej=$(sed -n 's/.* decode_rejected=\([0-9]*\).*/\1/p' <<<"$stats")
    stale=$(sed -n 's/.* stale_dropped=\([0-9]*\).*/\1/p' <<<"$stats")
    want=$want_b
    [[ "$n" == "$L" ]] && want=$(( want_b + want_l ))
    (( rej >= want )) || fail "$n counted decode_rejected=$rej, fewer than the $want refusable messages it received"
    (( stale >= want_s )) || fail "$n counted stale_dropped=$stale, fewer than the $want_s older-term events and maps"
    warns=$(grep -c "WARN  codec" "$WORK/$n.err")
    (( warns <= 10 )) || fail "$n logged $warns codec WARN lines (want rate-limited, <= 10)"
    echo "$n: decode_rejected=$rej (>= $want) stale_dropped=$stale (>= $want_s), $warns codec WARN lines"
done

final_checks "${NODES[@]}" n5
echo "PASS"
exit 0
