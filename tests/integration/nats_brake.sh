#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_brake.sh: a drain from outside and the rebalance brake released by an
# operator, on aether-node processes and a real nats-server (issue 12,
# item 6).
#
#   nats_brake.sh BUILD_DIR
#
# Steps (every wait bounded; lib.sh kills everything in its EXIT trap):
#  1. cluster_up 6 (n1..n6, --shards 64, --brake-window-ms 30000 so the brake
#     cannot clear by itself during the test);
#  2. `aetherctl rebalance --release-brake` with no brake engaged: exit 1,
#     "rebalance brake is not engaged";
#  3. `aetherctl drain F --wait` (text) of a follower: exit 0, progress lines
#     "drain F: N shards left", then "F is left"; the aether-node process of
#     F exits 0 by itself within 5 s, saying "drained and left";
#  4. kill -9 of three of the other four followers: the leader logs
#     "rebalance brake engaged" (a third of the live nodes: (2 + 4) / 3 = 2
#     losses tolerated, 4 seen: the leave and the three failures);
#  5. `aetherctl rebalance --release-brake --reason it-operator`: exit 0,
#     "brake released"; the leader logs who asked and emits RebalanceStarted
#     with reason "brake released by operator"; the map settles over the two
#     survivors (32 each) long before the 30 s window would have ended;
#  6. lib.sh's final checks (no VIOLATION, no older term accepted, never two
#     leaders acting).
# Takes ~8 s on loopback (bounded waits add up to at most ~70 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup brake "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"

ctl() {
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 60 "$CTL_BIN" "$@" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
    CTL_RC=$?
}
expect_rc() {
    [[ "$CTL_RC" -eq "$1" ]] ||
        fail "$2: exit $CTL_RC, want $1; stdout: $(head -c 600 "$WORK/ctl.out"); stderr: $(head -c 600 "$WORK/ctl.err")"
}

# ---- 1. six nodes ------------------------------------------------------------------------
cluster_up 6 --brake-window-ms 30000
C=(--nats "$URL" --cluster "$CLUSTER")
mapfile -t FOLLOWERS < <(others "$LEADER")

# ---- 2. nothing to release ------------------------------------------------------------------
ctl rebalance "${C[@]}" --release-brake
expect_rc 1 "release with no brake engaged"
grep -q "rebalance: rejected by the leader: ESTATE: the rebalance brake is not engaged" "$WORK/ctl.out" ||
    fail "release with no brake: $(cat "$WORK/ctl.out")"

# ---- 3. a drain from outside: progress, then the process exits 0 -----------------------------
DRAINED=${FOLLOWERS[0]}
t0=$(now_ms)
ctl drain "${C[@]}" "$DRAINED" --wait --timeout 20000
expect_rc 0 "drain $DRAINED --wait"
grep -qE "^drain $DRAINED: [1-9][0-9]* shards? left$" "$WORK/ctl.out" ||
    fail "drain --wait printed no progress: $(cat "$WORK/ctl.out")"
grep -q "^$DRAINED is left after " "$WORK/ctl.out" || fail "drain --wait: not left: $(cat "$WORK/ctl.out")"
echo "drain $DRAINED: left after $(( $(now_ms) - t0 )) ms; $(grep -c ' left$' "$WORK/ctl.out") progress line(s)"
node_wait "$DRAINED" 5000
[[ "$NODE_RC" -eq 0 ]] || fail "$DRAINED exited $NODE_RC after it was drained and left (want 0)"
grep -q "stopping (drained and left: nothing left to do)" "$WORK/$DRAINED.out" ||
    fail "$DRAINED exited without saying it had left"
echo "$DRAINED: aether-node exited 0 on its own after $(( $(now_ms) - t0 )) ms"

# ---- 4. three of the four other followers killed: the brake -------------------------------
for n in "${FOLLOWERS[@]:1:3}"; do
    node_kill "$n"
done
SURVIVORS=("$LEADER" "${FOLLOWERS[4]}")
wait_log 5000 "$WORK/$LEADER.err" "rebalance brake engaged" ||
    fail "the leader $LEADER did not engage the brake after losing 4 of 6 nodes within the window"
echo "brake engaged on $LEADER"

# ---- 5. the operator releases it ------------------------------------------------------------
t0=$(now_ms)
ctl rebalance "${C[@]}" --release-brake --reason it-operator
expect_rc 0 "rebalance --release-brake"
grep -q "^rebalance: brake released by the leader ($LEADER, term [0-9]*); .*asked by it-operator" "$WORK/ctl.out" ||
    fail "release: $(cat "$WORK/ctl.out")"
wait_log 5000 "$WORK/$LEADER.err" "rebalance brake released by operator aetherctl \(it-operator\)" ||
    fail "the leader did not log who released the brake"
wait_log 5000 "$WORK/$LEADER.out" "RebalanceStarted .* reason=brake released by operator " ||
    fail "no RebalanceStarted with reason 'brake released by operator'"
wait_settled 10000 "$WORK/map.released" "${SURVIVORS[@]}"
counts=$(ownership "$WORK/map.released" | awk '{ print $2 }' | sort | uniq -c | awk '{ print $1 }' | sort -n | tr '\n' ' ')
[[ "$counts" == "32 32 " ]] || fail "after the release the two survivors own '$counts' primaries (want 32 32)"
echo "released: map v$(map_version "$WORK/map.released") balanced over ${SURVIVORS[*]} after $(( $(now_ms) - t0 )) ms"

final_checks "${NODES[@]}"
echo "PASS"
exit 0
