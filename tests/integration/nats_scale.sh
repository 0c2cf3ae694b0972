#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_scale.sh: ten aether-node processes at 65 536 shards on a real
# nats-server, through a bootstrap, a join, a drain and a leader kill
# (issue 16 item 4).
#
#   nats_scale.sh BUILD_DIR
#
# Steps (every wait bounded; SCALE_STEP_MS each):
#  1. nats-server -js on a free loopback port;
#  2. bootstrap: n1..n10 with --shards 65536 and --metrics-addr; settled
#     (one leader, the oracle finds the stored map settled, every node on
#     its version: lib.sh `settled`);
#  3. join: n11 starts; settled over n1..n11;
#  4. drain: SIGTERM of a follower; it exits 0; settled over the other ten;
#  5. leader kill: kill -9 of the leader; settled over the nine left, with a
#     new leader.
# After each step, once settled, `agree` checks what an operator and a
# client would see (timed_settled: both within SCALE_STEP_MS, the passes
# that found it settled but not agreeing are printed):
#  - `aetherctl shards --json` reads the stored map: shard_count 65536,
#    nothing moving, its nodes' primaries sum to 65 536 and only the live
#    nodes have any;
#  - every live node's /metrics: aether_map_version is that map's version
#    (every node agrees on the map), aether_fenced 0,
#    aether_shards_multi_owner 0, and aether_shards_owned sums to 65 536
#    over the live nodes (lib.sh serving_check: every shard served by
#    exactly one node, by the nodes' own account).
# The health counters of issue 16 (NATS reconnects, mailbox overflows,
# failed local deliveries, fencing lines in the nodes' logs, a leader lost
# during the follower's drain, passes settled but not agreeing) are printed
# at the end, not judged: aether-bench e2e/failover judge them
# (docs/tuning.md, "At scale"). Then lib.sh's final checks (no VIOLATION,
# no event of an older term accepted, never two leaders acting at once).
#
# Takes 17-25 s on the 2-core machine, 21-38 s under ctest (most of it the
# bootstrap's two lease ttls and the join's and drain's handoffs of ~6 000
# shards each, 64 at a time: measured bootstrap 3.1-4.3 s, join 5.4-9.9 s,
# drain 4-7 s + 0.6-0.8 s, leader kill 2.5-3.6 s); its
# bounded waits add up to at most 4 x SCALE_STEP_MS + ~30 s; ctest's
# TIMEOUT is the backstop.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup scale "${1:-}"
it_need_helpers

SHARDS=${SCALE_SHARDS:-65536} # SCALE_SHARDS: a smaller run of the same steps, by hand
SCALE_STEP_MS=${SCALE_STEP_MS:-25000}
LOG_TAIL_LINES=10
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
command -v python3 >/dev/null || fail "python3 is needed to read aetherctl's JSON"
command -v curl >/dev/null || fail "curl is needed to scrape /metrics"

# ctl COMMAND ARGS...: aetherctl COMMAND on this cluster without the tests'
# AETHER_* variables, stdout in $WORK/ctl.out; `timeout` is a backstop
# (aetherctl bounds itself).
ctl() {
    local cmd=$1
    shift
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" "$cmd" --nats "$URL" --cluster "$CLUSTER" "$@" \
        >"$WORK/ctl.out" 2>"$WORK/ctl.err"
}

# agree ID...: the checks above for the live nodes ID...; 0 if they hold,
# else 1 with AGREE_WHY (AGREED: the map version they agree on).
agree() {
    ctl shards --json || { AGREE_WHY="aetherctl shards --json failed: $(head -c 400 "$WORK/ctl.err")"; return 1; }
    local got
    got=$(python3 - "$WORK/ctl.out" "$SHARDS" "$@" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
shards, live = int(sys.argv[2]), set(sys.argv[3:])
bad = []
if doc["shard_count"] != shards:
    bad.append("shard_count %s" % doc["shard_count"])
if doc["moving"] != 0 or doc["moves"]:
    bad.append("%s shards moving" % doc["moving"])
total = sum(n["primaries"] for n in doc["nodes"])
if total != shards:
    bad.append("primaries sum to %d" % total)
owners = {n["id"] for n in doc["nodes"] if n["primaries"] > 0}
if owners != live:
    bad.append("owners %s, live %s" % (sorted(owners), sorted(live)))
print(("BAD " + "; ".join(bad)) if bad else "OK %d" % doc["map_version"])
EOF
)
    [[ "$got" == "OK "* ]] || { AGREE_WHY="aetherctl shards: ${got#BAD }"; return 1; }
    local v=${got#OK } id mv
    serving_check "$@" || { AGREE_WHY=$SERVING_WHY; return 1; }
    for id in "$@"; do
        mv=$(value "$id" aether_map_version)
        [[ "$mv" == "$v" ]] || { AGREE_WHY="$id serves map v$mv, the stored map is v$v"; return 1; }
    done
    AGREED=$v
    AGREE_WHY=""
}

# timed_settled STEP ID...: within SCALE_STEP_MS, the cluster is settled
# (lib.sh `settled`) and `agree` holds right after, in one pass; fails the
# test otherwise. Prints how long it took, and how many passes found it
# settled but not agreeing (a leader cut off or nodes fenced right after
# settling: issue 16's "no fencing of a live leader"; counted in
# DISAGREED, printed at the end).
DISAGREED=0
timed_settled() {
    local step=$1 t0 late=0
    shift
    t0=$(now_ms)
    AGREE_WHY=""
    while true; do # bounded: SCALE_STEP_MS
        if settled "$WORK/map.$step" "$@"; then
            agree "$@" && break
            late=$(( late + 1 ))
            echo "$step: settled, but: $AGREE_WHY"
        fi
        (( $(now_ms) - t0 < SCALE_STEP_MS )) ||
            fail "$step: not settled and agreed within $SCALE_STEP_MS ms (nodes $*): ${AGREE_WHY:-$SETTLED_WHY}"
        sleep 0.1
    done
    DISAGREED=$(( DISAGREED + late ))
    echo "$step: settled over $# nodes after $(( $(now_ms) - t0 )) ms (leader $LEADER_NOW); stored map v$AGREED (aetherctl shards): the $# live nodes own its $SHARDS primaries; every node on v$AGREED, $SHARDS served once, none fenced$( (( late > 0 )) && echo " ($late pass(es) settled but not agreeing first)")"
}

# ---- 1-2. server and bootstrap ----------------------------------------------------
server_start nats
URL=$(server_url nats)
LIVE=()
for i in $(seq 1 10); do
    metrics_node_start "n$i" "$URL"
    LIVE+=("n$i")
done
timed_settled bootstrap "${LIVE[@]}"

# ---- 3. join ------------------------------------------------------------------------
metrics_node_start n11 "$URL"
LIVE+=(n11)
timed_settled join "${LIVE[@]}"

# ---- 4. drain a follower -------------------------------------------------------------
LEADER=$LEADER_NOW
DRAINED=""
for n in "${LIVE[@]}"; do
    if [[ "$n" != "$LEADER" ]]; then DRAINED=$n; break; fi
done
t0=$(now_ms)
node_stop "$DRAINED" "$SCALE_STEP_MS"
[[ "$NODE_RC" -eq 0 ]] || fail "$DRAINED exited $NODE_RC after SIGTERM (want 0)"
echo "drain: $DRAINED exited 0 after $(( $(now_ms) - t0 )) ms"
REST=()
for n in "${LIVE[@]}"; do
    [[ "$n" == "$DRAINED" ]] || REST+=("$n")
done
LIVE=("${REST[@]}")
timed_settled drain "${LIVE[@]}"
# A leader lost during a follower's drain is issue 16's "fencing of a live
# leader": printed and counted (aether-bench judges it), not failed here.
LEADER_CHANGES=0
if [[ "$LEADER_NOW" != "$LEADER" ]]; then
    LEADER_CHANGES=1
    echo "drain: NOTE: the leader changed from $LEADER to $LEADER_NOW during a follower's drain"
fi

# ---- 5. leader kill ---------------------------------------------------------------------
node_kill "$LEADER"
REST=()
for n in "${LIVE[@]}"; do
    [[ "$n" == "$LEADER" ]] || REST+=("$n")
done
LIVE=("${REST[@]}")
timed_settled leader-kill "${LIVE[@]}"
[[ "$LEADER_NOW" != "$LEADER" ]] || fail "$LEADER was killed but still leads"

# ---- health, printed (issue 16: judged by aether-bench) -------------------------------
count() { cat "$WORK"/n*.err 2>/dev/null | grep -c -- "$1"; }
echo "passes settled but not agreeing: $DISAGREED; leader changes during the drain: $LEADER_CHANGES; health (node logs, whole run): NATS reconnects $(count 'connection to NATS lost'), 'mailbox full' $(count 'mailbox full'), failed local deliveries $(count 'local deliveries of'), fenced $(count 'fenced, serving nothing'); nats-server slow consumers $(grep -c 'Slow Consumer' "$WORK/nats.log")"

final_checks n1 n2 n3 n4 n5 n6 n7 n8 n9 n10 n11
echo "PASS"
exit 0
