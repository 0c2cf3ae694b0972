#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_drain.sh: bootstrap, join and graceful drain of aether-node processes
# on a real nats-server (DESIGN 6; issue 4 section 7).
#
#   nats_drain.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server -js on a free loopback port (<= 5 s ready);
#  2. bootstrap: n1 n2 n3 (--shards 64); within 10 s exactly one believes it
#     leads and the map (read from the state bucket by nats_probe) is stable,
#     every shard owned, owners exactly {n1,n2,n3}, primaries 21/21/22;
#  3. join: n4 starts; within 10 s NodeJoined n4 is emitted, the map is
#     settled again over {n1..n4} (16 each) and moved only what the join
#     needs: every shard that changed owner went to n4, and n4's shards came
#     from all three others (at most 16 + 1 of them changed);
#  4. drain: SIGTERM one follower; it exits 0 within 10 s and its log says
#     "drained"; within 10 s the leader's log has
#     NodeDraining and NodeLeft for it (a drain is a leave, not a failure: no
#     NodeFailed for it), and the map is settled over the three others with
#     only the drained node's shards moved;
#  5. the three survivors keep one leader and the same map for 2 s more;
#  6. drain the leader: SIGTERM; it exits 0 within 10 s saying "drained";
#     within 10 s of the signal one of the two others is the only one ever
#     elected since, and the map is settled over those two with only the
#     old leader's shards moved (the time from the old leader's exit to the
#     survivors installing that map is printed); the new leader records
#     NodeLeft for the old one (the draining leader resigns at its next
#     renewal, its successor finishes the drain; aether-node waits for Left),
#     never NodeFailed;
#  7. the final checks of lib.sh: no VIOLATION on any stderr, no node
#     accepted an event of an older term, no two leaders acted at once
#     (their --trace lines).
# Takes ~6 s on loopback (its bounded waits add up to at most ~90 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup drain "${1:-}"
it_need_helpers

# ---- 1. the server ---------------------------------------------------------------
server_start nats
URL=$(server_url nats)
echo "nats-server at $URL"

# ---- 2. bootstrap ------------------------------------------------------------------
for n in n1 n2 n3; do
    node_start "$n" "$URL"
done
t0=$(now_ms)
wait_settled 10000 "$WORK/map.boot" n1 n2 n3
echo "bootstrap: leader $LEADER_NOW, map v$(map_version "$WORK/map.boot") settled after $(( $(now_ms) - t0 )) ms"

# ---- 3. join -------------------------------------------------------------------------
node_start n4 "$URL"
t0=$(now_ms)
wait_log 10000 "$WORK/$LEADER_NOW.out" "NodeJoined .* node=n4 address=" ||
    fail "no NodeJoined for n4 from the leader $LEADER_NOW within 10 s"
wait_settled 10000 "$WORK/map.join" n1 n2 n3 n4
echo "join: map v$(map_version "$WORK/map.join") settled over n1..n4 after $(( $(now_ms) - t0 )) ms"
# Minimal movement: only shards that went to n4 changed owner.
moved=$(join <(ownership "$WORK/map.boot") <(ownership "$WORK/map.join") | awk '$2 != $3')
bad=$(awk '$3 != "n4"' <<<"$moved")
[[ -z "$bad" ]] || fail "the join moved shards between old nodes: $(tr '\n' ';' <<<"$bad")"
count=$(grep -c . <<<"$moved")
(( count <= 17 )) || fail "the join moved $count shards (want <= 64/4 + 1)"
givers=$(awk '{ print $2 }' <<<"$moved" | sort -u | tr '\n' ' ')
[[ "$givers" == "n1 n2 n3 " ]] || fail "n4's shards came from '$givers', not from each of n1 n2 n3 (balance)"
echo "join moved $count shards, all to n4"

# ---- 4. drain a follower -----------------------------------------------------------
LEADER=$LEADER_NOW
DRAINED=""
for n in n1 n2 n3 n4; do
    if [[ "$n" != "$LEADER" ]]; then DRAINED=$n; break; fi
done
SURVIVORS=()
for n in n1 n2 n3 n4; do
    [[ "$n" == "$DRAINED" ]] || SURVIVORS+=("$n")
done
t0=$(now_ms)
node_stop "$DRAINED" 10000
[[ "$NODE_RC" -eq 0 ]] || fail "$DRAINED exited $NODE_RC after SIGTERM (want 0)"
grep -q " $DRAINED drained: " "$WORK/$DRAINED.out" || fail "$DRAINED exited without saying 'drained'"
echo "drain: $DRAINED exited 0 after $(( $(now_ms) - t0 )) ms"
wait_log 10000 "$WORK/$LEADER.out" "NodeLeft .* node=$DRAINED\$" ||
    fail "no NodeLeft for $DRAINED from the leader $LEADER within 10 s"
grep -qE "NodeDraining .* node=$DRAINED\$" "$WORK/$LEADER.out" ||
    fail "NodeLeft without NodeDraining for $DRAINED"
if grep -qE "NodeFailed .* node=$DRAINED " "$WORK"/n*.out; then
    fail "the drained node $DRAINED was declared failed (a drain must end in NodeLeft)"
fi
wait_settled 10000 "$WORK/map.drain" "${SURVIVORS[@]}"
[[ "$LEADER_NOW" == "$LEADER" ]] || fail "the leader changed from $LEADER to $LEADER_NOW during a follower's drain"
moved=$(join <(ownership "$WORK/map.join") <(ownership "$WORK/map.drain") | awk '$2 != $3')
bad=$(awk -v d="$DRAINED" '$2 != d' <<<"$moved")
[[ -z "$bad" ]] || fail "the drain moved shards that $DRAINED did not own: $(tr '\n' ';' <<<"$bad")"
echo "drain: map v$(map_version "$WORK/map.drain") settled over ${SURVIVORS[*]}, $(grep -c . <<<"$moved") shards moved, all from $DRAINED"

# ---- 5. steady --------------------------------------------------------------------------
sleep 2
settled "$WORK/map.end" "${SURVIVORS[@]}" || fail "not steady 2 s after the drain: $SETTLED_WHY"
[[ "$LEADER_NOW" == "$LEADER" ]] || fail "the leader changed from $LEADER to $LEADER_NOW after the drain"
cmp -s <(ownership "$WORK/map.drain") <(ownership "$WORK/map.end") || fail "the map changed after the drain settled"
# ---- 6. drain the leader -------------------------------------------------------------
REST=()
for n in "${SURVIVORS[@]}"; do
    [[ "$n" == "$LEADER" ]] || REST+=("$n")
done
log_mark "${REST[@]}"
cp "$WORK/map.end" "$WORK/map.before-leader-drain"
t0=$(now_ms)
node_stop "$LEADER" 10000
[[ "$NODE_RC" -eq 0 ]] || fail "the leader $LEADER exited $NODE_RC after SIGTERM (want 0)"
grep -q " $LEADER drained: " "$WORK/$LEADER.out" || fail "$LEADER exited without saying 'drained'"
t_exit=$(( $(now_ms) - t0 ))
wait_settled 10000 "$WORK/map.leader-drain" "${REST[@]}"
t_settled=$(( $(now_ms) - t0 ))
elected=$(elected_nodes "${REST[@]}")
[[ "$elected" == "$LEADER_NOW" ]] || fail "elected since the leader's drain: '$(tr '\n' ' ' <<<"$elected")', leading now: $LEADER_NOW"
moved=$(join <(ownership "$WORK/map.before-leader-drain") <(ownership "$WORK/map.leader-drain") | awk '$2 != $3')
bad=$(awk -v d="$LEADER" '$2 != d' <<<"$moved")
[[ -z "$bad" ]] || fail "the leader's drain moved shards that $LEADER did not own: $(tr '\n' ';' <<<"$bad")"
if ! grep -qE "^\+[0-9]+ms $LEADER_NOW NodeLeft .* node=$LEADER\$" "$WORK/$LEADER_NOW.out"; then
    how=$(grep -hE "^\+[0-9]+ms $LEADER_NOW NodeFailed .* node=$LEADER " "$WORK/$LEADER_NOW.out" | head -n 1)
    fail "the new leader $LEADER_NOW recorded no NodeLeft for the drained leader $LEADER (${how:-nor NodeFailed}): the leader's drain is not a leave"
fi
# From the drained leader's exit (its STATS line) to the last survivor
# installing the settled map (CLOCK_MONOTONIC, --trace): how long its
# shards waited for their new owners.
v=$(map_version "$WORK/map.leader-drain")
t_gone=$(awk -v id="$LEADER" '$1 == "T" && $3 == id && $4 == "STATS" { print $2 }' "$WORK/$LEADER.out" | tail -n 1)
t_last=$(for n in "${REST[@]}"; do awk -v id="$n" -v v="$v" '$1 == "T" && $3 == id && $4 == "MAP" && $5 == v { print $2; exit }' "$WORK/$n.out"; done | sort -n | tail -n 1)
echo "leader drain: $LEADER exited 0 after $t_exit ms; $LEADER_NOW leads; map v$v settled over ${REST[*]} after $t_settled ms (exit -> all on v$v: $(( (t_last - t_gone) / 1000 )) ms)"

final_checks n1 n2 n3 n4
echo "PASS"
exit 0
