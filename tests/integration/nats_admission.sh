#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_admission.sh: admission refuses a node that cannot serve (issue 12
# item 1; DESIGN 2 "Admission") on a real nats-server with real aether-node
# processes.
#
#   nats_admission.sh BUILD_DIR | BUILD_DIR/bin/aether-node
#
# Steps (every wait bounded; ~5 s typical, ~40 s worst case):
#  1. nats-server; n1, n2, n3 with --shards 64 and their own --metrics-addr;
#     settled within 10 s;
#  2. three misfits start at once: m1 with --shards 1024, m2 with
#     --replication 2, m3 with --handoff-timeout-ms 6000 (a cluster-wide
#     timing, in the parameters fingerprint). Each must exit 2 within 10 s
#     with "join refused: <the leader's sentence>" on stderr:
#     "shard_count 1024 differs from the cluster's 64", "replication 2
#     differs from the cluster's 1", "parameters fingerprint ... differs";
#     while they run, the stored map is read every ~100 ms and must never
#     name any of them;
#  3. afterwards: the map still has exactly n1..n3 as owners, stable,
#     balanced, every node on it; `aetherctl status --json` lists only
#     n1..n3; the leader's /metrics counts the refusals
#     (aether_joins_refused_total >= 3), every member shows
#     aether_node_incompatible 0 and the shards it owns add up to 64;
#  4. no VIOLATION, terms and acting checks over the trace.
# On main (before admission checks) step 2 fails: m1 is admitted, assigned
# a third of the shards it never serves, and runs on.
# AETHER_KEEP_LOGS=1 keeps the logs. Exit 0 on success, 1 with the reason.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup admission "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"

# ---- 1. the cluster ------------------------------------------------------------
server_start nats
URL=$(server_url nats)
NODES=(n1 n2 n3)
for id in "${NODES[@]}"; do metrics_node_start "$id" "$URL"; done
t0=$(now_ms)
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
LEADER=$LEADER_NOW
echo "up: ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER; map v$(map_version "$WORK/map.up")"

# ---- 2. the misfits --------------------------------------------------------------
MISFITS=(m1 m2 m3)
declare -A WANT=(
    [m1]="join refused: shard_count 1024 differs from the cluster's 64"
    [m2]="join refused: replication 2 differs from the cluster's 1"
    [m3]="join refused: parameters fingerprint [0-9a-f]{16} differs from the cluster's [0-9a-f]{16}"
)
SHARDS=1024 node_start m1 "$URL"
node_start m2 "$URL" --replication 2
node_start m3 "$URL" --handoff-timeout-ms 6000
echo "started ${MISFITS[*]} (1024 shards; replication 2; handoff_timeout_ms 6000)"

# The map never names a misfit, read every ~100 ms until all have exited.
samples=0
t0=$(now_ms)
while :; do
    running=0
    for m in "${MISFITS[@]}"; do
        node_alive "$m" && running=$(( running + 1 ))
    done
    (( running > 0 )) || break
    (( $(now_ms) - t0 < 10000 )) || fail "after 10 s, $running misfit(s) still run: $(for m in "${MISFITS[@]}"; do node_alive "$m" && echo -n "$m "; done)"
    if probe_map "$WORK/map.now"; then
        samples=$(( samples + 1 ))
        named=$(awk '$1 == "owner" { print $2 }' "$WORK/map.now" | grep -E '^m[0-9]$' | tr '\n' ' ')
        [[ -z "$named" ]] || fail "the map names $named: $(grep '^map\|^owner' "$WORK/map.now" | tr '\n' ' ')"
    fi
    sleep 0.1
done
echo "misfits exited after $(( $(now_ms) - t0 )) ms; the map named none of them in $samples reads"
(( samples > 0 )) || fail "the map was never read while the misfits ran"

for m in "${MISFITS[@]}"; do
    node_wait "$m" 1000
    [[ "$NODE_RC" -eq 2 ]] || fail "$m exited $NODE_RC, want 2; stderr: $(tail -c 600 "$WORK/$m.err")"
    grep -qE "^aether-node: $m: ${WANT[$m]}" "$WORK/$m.err" ||
        fail "$m: no 'aether-node: $m: ${WANT[$m]}' on stderr: $(tail -c 600 "$WORK/$m.err")"
    echo "$m: exit 2: $(grep -E "^aether-node: $m: join refused" "$WORK/$m.err")"
done

# ---- 3. the cluster as it was -----------------------------------------------------
wait_settled 5000 "$WORK/map.end" "${NODES[@]}"
it_clean_env
env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" status --json --nats "$URL" --cluster "$CLUSTER" \
    >"$WORK/ctl.out" 2>"$WORK/ctl.err" || fail "aetherctl status: $(head -c 600 "$WORK/ctl.err")"
ids=$(python3 -c 'import json,sys; print(" ".join(sorted(n["id"] for n in json.load(open(sys.argv[1]))["nodes"])))' \
    "$WORK/ctl.out") || fail "aetherctl status --json unreadable: $(head -c 600 "$WORK/ctl.out")"
[[ "$ids" == "n1 n2 n3" ]] || fail "the topology lists '$ids', want 'n1 n2 n3'"

# A settled map is not yet a served one: a follower starts serving once a
# keep-alive confirms the map's term (a few hundred ms later under load), so
# this is polled, bounded, not read once.
wait_for 5000 serving_check "${NODES[@]}" || fail "5 s after the misfits: $SERVING_WHY"
for id in "${NODES[@]}"; do
    inc=$(value "$id" aether_node_incompatible)
    [[ "$inc" == 0 ]] || fail "$id: aether_node_incompatible is '$inc', want 0"
done
refused=$(value "$LEADER" aether_joins_refused_total)
[[ -n "$refused" && "$refused" -ge 3 ]] || fail "leader $LEADER: aether_joins_refused_total is '$refused', want >= 3"
echo "after: topology $ids; 64 shards owned by n1..n3; $LEADER refused $refused join(s)"

# ---- 4. ----------------------------------------------------------------------------
final_checks "${NODES[@]}"
echo "PASS"
