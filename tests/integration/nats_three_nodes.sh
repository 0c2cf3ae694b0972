#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_three_nodes.sh: three aether-node processes in NATS mode against a
# real nats-server (JetStream on, temporary store, free loopback port).
#
#   nats_three_nodes.sh BUILD_DIR | BUILD_DIR/bin/aether-node
#
# Steps (every wait bounded):
#  1. start nats-server -js; wait (<= 5 s) until it is ready;
#  2. start n1, n2, n3 (--shards 64); wait (<= 10 s) until exactly one log
#     says "LEADER elected" and the logs show NodeJoined for all three;
#  3. kill -9 the leader; wait (<= 10 s) for "LEADER elected" in another log;
#  4. SIGTERM the two survivors; each must exit 0 within 20 s (the daemon's
#     drain wait is bounded by handoff_timeout + 2 s = 7 s).
# No "VIOLATION" may appear in any node's stderr.
# nats-server is $AETHER_NATS_SERVER or the one on PATH; missing is a failure.
# Exit 0 on success; otherwise 1 with the reason and the tail of every log.
# AETHER_KEEP_LOGS=1 keeps the temporary directory (logs) for inspection.
# The EXIT trap (lib.sh) kills (-9) whatever this script started and is
# still alive and removes the temporary directory.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup nats3 "${1:-}"

# ---- 1. the server ---------------------------------------------------------
server_start nats
URL=$(server_url nats)
echo "nats-server pid ${SRV_PID[nats]} at $URL"

# ---- 2. three nodes, one leader --------------------------------------------
NODES=(n1 n2 n3)
for n in "${NODES[@]}"; do
    node_start "$n" "$URL"
done

first_settled() {
    nodes_alive "${NODES[@]}" || return 1
    local e n
    e=$(elected_nodes "${NODES[@]}" | wc -l)
    [[ "$e" -eq 1 ]] || return 1
    for n in "${NODES[@]}"; do
        cat "$WORK"/n*.out | grep -q "NodeJoined .* node=$n address=" || return 1
    done
}

t0=$(now_ms)
if ! wait_for 10000 first_settled; then
    nodes_alive "${NODES[@]}" || fail "a node exited early"
    fail "within 10 s: expected exactly one 'LEADER elected' (got: $(elected_nodes "${NODES[@]}" | tr '\n' ' ')) and NodeJoined for n1 n2 n3"
fi
LEADER=$(elected_nodes "${NODES[@]}")
echo "leader $LEADER elected, all joined after $(( $(now_ms) - t0 )) ms"

# ---- 3. kill -9 the leader --------------------------------------------------
node_kill "$LEADER"
SURVIVORS=()
for n in "${NODES[@]}"; do
    [[ "$n" == "$LEADER" ]] || SURVIVORS+=("$n")
done

new_leader() {
    nodes_alive "${SURVIVORS[@]}" || return 1
    [[ -n "$(elected_nodes "${SURVIVORS[@]}")" ]]
}

t0=$(now_ms)
if ! wait_for 10000 new_leader; then
    nodes_alive "${SURVIVORS[@]}" || fail "a survivor exited after the leader was killed"
    fail "no new 'LEADER elected' among ${SURVIVORS[*]} within 10 s of killing $LEADER"
fi
echo "new leader $(elected_nodes "${SURVIVORS[@]}" | tr '\n' ' ')after $(( $(now_ms) - t0 )) ms"

# ---- 4. SIGTERM the survivors: drained, exit 0 ------------------------------
for n in "${SURVIVORS[@]}"; do
    kill -TERM "${NODE_PID[$n]}"
done
t0=$(now_ms)
for n in "${SURVIVORS[@]}"; do
    left=$(( 20000 - ($(now_ms) - t0) ))
    (( left > 0 )) || left=1
    node_wait "$n" "$left"
    [[ "$NODE_RC" -eq 0 ]] || fail "$n exited $NODE_RC after SIGTERM (want 0)"
done
echo "survivors exited 0 after $(( $(now_ms) - t0 )) ms"

no_violation
echo "PASS"
exit 0
