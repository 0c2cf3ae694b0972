#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_server_restart.sh: the nats-server under a settled cluster is killed
# (-9) and started again on the same port with the same JetStream store: the
# cluster recovers, one leader and every shard owned, WITHOUT reshuffling
# shards (DESIGN 6, "NATS server restart"; issue 4 section 7).
#
#   nats_server_restart.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1 n2 n3 (--shards 64), settled within 10 s; the map's
#     shard -> owner table is saved;
#  2. kill -9 the server; within 3 s every node reports on stderr that its
#     NATS connection was lost; the server stays down DOWN_MS = 2500 ms
#     (longer than the lease ttl and the failure timeout, 1000 ms each: the
#     lease lapses and every node has been silent for longer than the
#     failure timeout when the server returns);
#  3. restart the server on the same port and store (the KV buckets and
#     the map survive on disk); within 10 s every node reports it
#     reconnected;
#  4. within 15 s of the restart: exactly one node believes it leads, the
#     map is settled over n1 n2 n3 and every shard has the owner it had
#     before the kill (a server outage is not a node failure: nobody is
#     declared failed for it, nothing moves);
#  5. every node is still running; the final checks of lib.sh: no
#     VIOLATION on any stderr, no node accepted an event of an older term,
#     no two leaders acted at once (their --trace lines).
# Prints the measured restart -> recovered time and the map versions.
# Takes ~4 s on loopback (its bounded waits add up to at most ~50 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup server-restart "${1:-}"
it_need_helpers

DOWN_MS=2500

cluster_up 3
ownership "$WORK/map.up" >"$WORK/owners.before"
v_before=$(map_version "$WORK/map.up")

# ---- 2. the server dies -------------------------------------------------------------
all_lost() {
    local n
    for n in "${NODES[@]}"; do
        grep -qiE "connection to NATS lost|NATS connection lost" "$WORK/$n.err" || return 1
    done
}
t0=$(now_ms)
server_kill nats
wait_for 3000 all_lost || fail "not every node noticed the server's death within 3 s"
sleep "$(awk -v ms="$DOWN_MS" -v t0="$t0" -v now="$(now_ms)" 'BEGIN { d = (ms - (now - t0)) / 1000; print (d > 0 ? d : 0) }')"

# ---- 3. the server returns -------------------------------------------------------------
server_restart nats
t1=$(now_ms)
echo "server down for $(( t1 - t0 )) ms, back on $URL"
all_back() {
    local n
    for n in "${NODES[@]}"; do
        grep -qiE "reconnected to" "$WORK/$n.err" || return 1
    done
}
wait_for 10000 all_back || fail "not every node reconnected within 10 s of the restart"

# ---- 4. recovered, nothing moved ---------------------------------------------------------
wait_settled 15000 "$WORK/map.after" "${NODES[@]}"
t_rec=$(( $(now_ms) - t1 ))
ownership "$WORK/map.after" >"$WORK/owners.after"
if ! cmp -s "$WORK/owners.before" "$WORK/owners.after"; then
    fail "shards were reshuffled by the server restart: $(diff "$WORK/owners.before" "$WORK/owners.after" | grep -c '^>') changed owner"
fi
failed=$(grep -hE "NodeFailed " "$WORK"/n*.out | head -n 3)
[[ -z "$failed" ]] || fail "a node was declared failed for the server's outage: $failed"
echo "recovered after ~$t_rec ms: leader $LEADER_NOW, map v$v_before -> v$(map_version "$WORK/map.after"), ownership unchanged"

nodes_alive "${NODES[@]}" || fail "a node exited"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
