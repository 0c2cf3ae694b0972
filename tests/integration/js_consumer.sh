#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# js_consumer.sh: the example JavaScript consumer (docs/examples/js-consumer,
# the official `nats` npm package, run by node) against a live cluster: its
# own view of the map must equal aetherctl's, its key -> shard the vectors
# and the cluster's lookups (tests layer).
#
#   js_consumer.sh BUILD_DIR      (or BUILD_DIR/bin/aether-node)
#
# Steps (every wait bounded; lib.sh kills everything in its EXIT trap):
#  1. node and npm must exist (a clear failure otherwise); the example is
#     copied to $WORK and installed with `npm ci` (from the npm cache when it
#     has the package: --prefer-offline; not counted in the wall time);
#  2. consumer.js --check-vectors-only: XXH64 in JavaScript reproduces every
#     line of tests/vectors/keyhash.tsv (hash, and shards mod 1, 1024, 16384),
#     and its ShardMap format 2 decoder reads every tests/corpus/shardmap_codec
#     vector and re-encodes it to the exact bytes;
#  3. cluster_up 3 with --event-stream; the consumer starts (view in
#     $WORK/view.json) and reaches the map stored now: the settled one or,
#     if the cluster published again since (a new leader's first map of its
#     term), a later one - a consumer follows to the latest map;
#  4. n4 joins: the consumer follows the rebalance to the new map version
#     (or later, as in step 3);
#  5. its view equals `aetherctl shards --json` (map version, term, per-node
#     primaries and replicas) and, per node, `aetherctl shards --node ID
#     --json` (the primary shard ranges); for 12 keys its shard and primary
#     equal `aetherctl lookup KEY --json`;
#  6. a second consumer without --replay starts at the stream's last
#     sequence (not #1) and still has the map; --help exits 0;
#  7. the first (--replay) saw the events from stream #1 with no per-term
#     gap, including n4's NodeJoined; SIGTERM stops it with exit 0.
# Takes ~10-15 s after npm ci; worst case ~45 s of bounded waits.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=js_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/js_lib.sh"

it_setup js_consumer "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
command -v python3 >/dev/null || fail "python3 is needed to compare the JSON views"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXAMPLE=$SRC/docs/examples/js-consumer
VECTORS=$SRC/tests/vectors/keyhash.tsv
MAP_VECTORS=$SRC/tests/corpus/shardmap_codec

# 1. node and npm.
js_install "$EXAMPLE"

# 2. the vectors.
node "$WORK/js/consumer.js" --check-vectors-only --vectors "$VECTORS" --map-vectors "$MAP_VECTORS" \
    >"$WORK/vectors.out" 2>&1 ||
    fail "the JavaScript XXH64 or map decoder disagrees with the vectors: $(cat "$WORK/vectors.out")"
want=$(grep -cv '^#' "$VECTORS")
grep -q "^vectors: $want ok, 0 failed" "$WORK/vectors.out" ||
    fail "expected $want vectors ok: $(cat "$WORK/vectors.out")"
maps=$(find "$MAP_VECTORS" -name '*.bin' | wc -l)
grep -q "^map vectors: $maps ok, 0 failed" "$WORK/vectors.out" ||
    fail "expected $maps map vectors ok: $(cat "$WORK/vectors.out")"
echo "vectors: $want ok in JavaScript; $maps map format 2 vectors decode and re-encode exactly"

# --help: the usage on stdout, exit 0; an unknown option: exit 2.
node "$WORK/js/consumer.js" --help >"$WORK/help.out" 2>&1 || fail "consumer.js --help exited $?: $(cat "$WORK/help.out")"
grep -q "^usage: node consumer.js " "$WORK/help.out" && grep -q -- "--replay" "$WORK/help.out" ||
    fail "consumer.js --help: $(head -c 400 "$WORK/help.out")"
node "$WORK/js/consumer.js" --no-such-option >"$WORK/help.out" 2>&1
rc=$?
[[ $rc -eq 2 ]] || fail "consumer.js --no-such-option exited $rc, want 2"
node "$WORK/js/consumer.js" --replay --from-seq 3 >"$WORK/help.out" 2>&1
rc=$?
[[ $rc -eq 2 ]] || fail "consumer.js --replay --from-seq 3 exited $rc, want 2"
echo "consumer: --help exits 0, bad options exit 2"

# ctl COMMAND ARGS...: aetherctl COMMAND --nats URL --cluster C ARGS..., without the tests' AETHER_* variables, output in $WORK/ctl.out.
ctl() {
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" "$1" --nats "$URL" --cluster "$CLUSTER" "${@:2}" \
        >"$WORK/ctl.out" 2>"$WORK/ctl.err"
}

# 3. the cluster, then the consumer.
cluster_up 3 --event-stream
bg_start consumer node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --replay \
    --view "$WORK/view.json" --keys "$JS_KEYS" --duration 60
view_version() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["map_version"])' "$WORK/view.json" 2>/dev/null; }
# stored_version: the version of the map stored now ($WORK/map.now).
stored_version() { probe_map "$WORK/map.now" && map_version "$WORK/map.now"; }
# caught_up VMIN: the consumer's view is at the map stored now, and that is
# VMIN or later. Not "at VMIN": the cluster may publish again after the
# state a step waited for (a leader that loses its lease under load: its
# successor's first map of its term is the next version, nothing moved;
# actors/member_assign.c, force_publish), and a consumer follows to the
# latest map.
caught_up() {
    local vv sv
    vv=$(view_version) && [[ -n "$vv" ]] || return 1
    sv=$(stored_version) && [[ -n "$sv" ]] || return 1
    (( vv >= $1 && vv == sv ))
}
v0=$(map_version "$WORK/map.up")
wait_for 10000 caught_up "$v0" ||
    fail "the consumer's view did not reach the stored map (v$v0 or later) within 10 s (it has v$(view_version), the store v$(stored_version))"
v0=$(view_version)
echo "consumer: view at map v$v0"

# 4. a join: the consumer must follow.
node_start n4 "$URL" --event-stream
NODES+=(n4)
wait_settled 15000 "$WORK/map.join" "${NODES[@]}"
v1=$(map_version "$WORK/map.join")
(( v1 > v0 )) || fail "the join did not change the map (v$v0 -> v$v1)"
wait_for 10000 caught_up "$v1" ||
    fail "the consumer's view did not follow to the stored map (v$v1 or later) within 10 s (it has v$(view_version), the store v$(stored_version))"
v1=$(view_version)
echo "consumer: followed the join to map v$v1"

# 5. its view against aetherctl's.
js_compare_views --joined n4 "${NODES[@]}"
echo "consumer: map v$v1, ${#NODES[@]} nodes' counts and shard ranges, 12 keys equal aetherctl's; no gap"

# 6. without --replay a consumer starts at the stream's last sequence: it
# replays nothing older (no LeaderElected #1), and its view still has the map.
last=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_stream_seq"])' "$WORK/view.json")
timeout 30 node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --view "$WORK/view.now.json" \
    --duration 1 >"$WORK/now.log" 2>&1 || fail "a consumer without --replay exited $?: $(tail -n 5 "$WORK/now.log")"
# Its map: v1, or a later one if the cluster published again meanwhile
# (the one stored once it has exited).
vnow=$(stored_version) || fail "the stored map is unreadable: $(tail -n 3 "$WORK/probe.err")"
python3 - "$WORK/view.now.json" "$last" "$v1" "$vnow" <<'EOF' || fail "a consumer without --replay: $(head -c 600 "$WORK/view.now.json")"
import json, sys
v = json.load(open(sys.argv[1]))
last, v1, vnow = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert v["from_stream_seq"] >= last > 1, (v["from_stream_seq"], last)
assert v1 <= v["map_version"] == vnow and v["gaps"] == [], (v, v1, vnow)
EOF
if grep -q "^#1 " "$WORK/now.log"; then fail "a consumer without --replay replayed stream #1: $(head -n 3 "$WORK/now.log")"; fi
echo "consumer: without --replay it starts at stream #$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["from_stream_seq"])' "$WORK/view.now.json") (the last was #$last), map v$vnow"

# 7. clean stop.
bg_stop consumer 5000
[[ "$BG_RC" == 0 ]] || fail "the consumer exited $BG_RC on SIGTERM: $(tail -n 5 "$WORK/consumer.log")"
# The first leader's term: 1, or 2 when it waited a ttl after creating the
# cluster's generation (actors/lease.h step 2c).
grep -qE "^#1 LeaderElected term=[0-9]+ seq=1 " "$WORK/consumer.log" || fail "the consumer did not replay the stream from #1"
# Its final map: the one it held at the stop, v1 or later.
vf=$(view_version)
[[ -n "$vf" ]] && (( vf >= v1 )) || fail "the consumer's last view is at v${vf:-?}, before v$v1"
grep -q "^final: map v$vf, .* 0 gaps" "$WORK/consumer.log" || fail "unexpected final line (want map v$vf): $(tail -n 1 "$WORK/consumer.log")"
final_checks "${NODES[@]}"
echo "PASS: js_consumer ($(( $(now_ms) - T0 )) ms after npm ci)"
