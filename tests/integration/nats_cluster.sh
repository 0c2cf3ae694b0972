#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_cluster.sh: aether-node processes on a 3-server NATS cluster with R3
# KV buckets; one server is killed and the cluster keeps working (issue 4
# section 7; DESIGN 2.4 on R3 buckets).
#
#   nats_cluster.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. three nats-servers s1 s2 s3 on loopback, each with JetStream, its own
#     store, a server name and a cluster port, routed to the other two; each
#     ready within 5 s;
#  2. nats_probe creates the buckets aether_<cluster>_lease and _state with
#     3 replicas, retrying (<= 20 s) until clustered JetStream has its meta
#     leader; it then reports each stream's leader and its 3 replicas;
#  3. n1 n2 n3 (--nats-kv-replicas 3, the URL list of all three servers in
#     a different order each), settled within 15 s;
#  4. kill -9 a server that leads neither stream: for 3 s after, the same
#     leader, nobody elected, nobody failed, the same map, every node on it
#     (a node on that server reconnects to another at once; R3 streams keep
#     their leaders);
#  5. restart it (same port, store, routes): within 15 s both streams list
#     it as a current replica again;
#  6. kill -9 the server that leads the lease bucket's stream (the worst
#     one to lose: JetStream must elect a new stream leader before the next
#     lease write): within 20 s the lease stream has a leader among the two
#     survivors, one node believes it leads and the map is settled over
#     n1 n2 n3 (whether the leader survived is printed: on nats-server 2.9
#     the stream election takes ~4-5 s on loopback, longer than this
#     test's lease ttl of 3000 ms, so leadership usually moves: DESIGN 2.4);
#  7. the cluster still makes decisions: once JetStream answers bucket
#     requests again (<= 15 s; its meta leader may have died too), n4 joins
#     through the survivors and within 15 s the map is settled over n1..n4;
#  8. the final checks of lib.sh (no VIOLATION, no older-term event
#     accepted, no two leaders acting at once).
# Takes ~15 s on loopback (its bounded waits add up to at most ~140 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup cluster "${1:-}"
it_need_helpers

TTL_MS=3000
NODE_ARGS=(--nats-kv-replicas 3 --lease-ttl-ms "$TTL_MS" --failure-timeout-ms "$TTL_MS")
"$NODE_BIN" --help | grep -q -- "--nats-kv-replicas" || fail "aether-node has no --nats-kv-replicas"

# ---- 1. three routed servers -------------------------------------------------------
servers_start_routed aether-it
URL="$(server_url s1),$(server_url s2),$(server_url s3)"
echo "servers: $URL"

# ---- 2. R3 buckets ----------------------------------------------------------------------
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 20000 --replicas 3 --ttl-ms "$TTL_MS" buckets \
    >>"$WORK/probe.log" 2>&1 || fail "could not create the R3 buckets within 20 s"
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 10000 streams >"$WORK/streams.before" 2>>"$WORK/probe.err" ||
    fail "the streams have no leader within 10 s"
while read -r _ name leader replicas _; do
    n=$(tr ',' '\n' <<<"${replicas#replicas=}" | grep -c .)
    [[ "$n" -eq 2 ]] || fail "stream $name: ${leader} with replicas '${replicas#replicas=}' (want 3 servers in all)"
done <"$WORK/streams.before"
sed 's/^/  /' "$WORK/streams.before"

# ---- 3. three nodes -----------------------------------------------------------------------
NODES=(n1 n2 n3)
node_start n1 "$(server_url s1),$(server_url s2),$(server_url s3)" "${NODE_ARGS[@]}"
node_start n2 "$(server_url s2),$(server_url s3),$(server_url s1)" "${NODE_ARGS[@]}"
node_start n3 "$(server_url s3),$(server_url s1),$(server_url s2)" "${NODE_ARGS[@]}"
t0=$(now_ms)
wait_settled 15000 "$WORK/map.up" "${NODES[@]}"
echo "up: ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER_NOW; map v$(map_version "$WORK/map.up")"

# ---- 4. lose a server that leads no stream: seamless ----------------------------
stream_leader() { sed -n "s/^stream KV_aether_${CLUSTER}_$2 leader=\([^ ]*\) .*/\1/p" "$1"; }
live_url() { # the client URLs of the servers running now
    local s u=""
    for s in "${SERVERS[@]}"; do
        [[ -n "${SRV_PID[$s]:-}" ]] && u+="${u:+,}$(server_url "$s")"
    done
    echo "$u"
}
QUIET=""
for s in "${SERVERS[@]}"; do
    if [[ "$s" != "$(stream_leader "$WORK/streams.before" lease)" && "$s" != "$(stream_leader "$WORK/streams.before" state)" ]]; then
        QUIET=$s
        break
    fi
done
[[ -n "$QUIET" ]] || fail "every server leads a stream (3 servers, 2 streams?)"
LEADER=$LEADER_NOW
log_mark "${NODES[@]}"
server_kill "$QUIET"
URL=$(live_url)
sleep 3
settled "$WORK/map.quiet" "${NODES[@]}" || fail "losing $QUIET (no stream leader) disturbed the cluster: $SETTLED_WHY"
[[ "$LEADER_NOW" == "$LEADER" && -z "$(elected_nodes "${NODES[@]}")" ]] ||
    fail "losing $QUIET (no stream leader) changed the leader ($LEADER -> $LEADER_NOW)"
cmp -s <(ownership "$WORK/map.up") <(ownership "$WORK/map.quiet") || fail "losing $QUIET moved shards"
grep -q "NodeFailed" "$WORK"/n*.out && fail "losing $QUIET got a node declared failed"
echo "killed $QUIET (leads no stream): same leader $LEADER, same map, for 3 s"

# ---- 5. it comes back and catches up -------------------------------------------------
server_restart "$QUIET"
URL=$(live_url)
caught_up() {
    "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 1000 streams >"$WORK/streams.back" 2>>"$WORK/probe.err" || return 1
    ! grep -q "(behind)" "$WORK/streams.back" && grep -q "$QUIET" "$WORK/streams.back"
}
wait_for 15000 caught_up || fail "$QUIET did not catch up with both streams within 15 s of its restart"
echo "$QUIET restarted and current on both streams"

# ---- 6. lose the lease stream's leader: the cluster recovers ---------------------------
VICTIM=$(stream_leader "$WORK/streams.back" lease)
[[ -n "$VICTIM" && -n "${SRV_PID[$VICTIM]:-}" ]] || fail "cannot tell which server leads the lease stream"
t0=$(now_ms)
server_kill "$VICTIM"
URL=$(live_url)
new_stream_leader() {
    "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 1000 streams >"$WORK/streams.after" 2>>"$WORK/probe.err" || return 1
    local l
    l=$(stream_leader "$WORK/streams.after" lease)
    [[ -n "$l" && "$l" != "$VICTIM" ]]
}
wait_for 20000 new_stream_leader || fail "the lease stream has no leader among the survivors 20 s after killing $VICTIM"
t_stream=$(( $(now_ms) - t0 ))
wait_settled 20000 "$WORK/map.after" "${NODES[@]}"
echo "killed $VICTIM (leads the lease stream): new stream leader $(stream_leader "$WORK/streams.after" lease) seen after ~$t_stream ms; cluster settled after ~$(( $(now_ms) - t0 )) ms, leader $LEADER_NOW ($( [[ "$LEADER_NOW" == "$LEADER" ]] && echo kept || echo changed)), map v$(map_version "$WORK/map.after")"

# ---- 7. decisions still made: a join ---------------------------------------------------
# A starting node creates-or-binds its buckets: a JetStream API call that
# needs the meta leader, which the kill may have taken too. Wait for it.
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 15000 --replicas 3 --ttl-ms "$TTL_MS" buckets \
    >>"$WORK/probe.log" 2>&1 || fail "JetStream answers no bucket request 15 s after killing $VICTIM"
NODES+=(n4)
node_start n4 "$URL" "${NODE_ARGS[@]}"
t0=$(now_ms)
wait_settled 15000 "$WORK/map.join" "${NODES[@]}"
echo "n4 joined on the two surviving servers: map v$(map_version "$WORK/map.join") settled over ${NODES[*]} after $(( $(now_ms) - t0 )) ms"

final_checks "${NODES[@]}"
echo "PASS"
exit 0
