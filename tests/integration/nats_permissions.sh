#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_permissions.sh: the NATS authorization we ship
# (docs/examples/nats/permissions.conf, used verbatim: cluster "prod", its
# example passwords) lets the nodes and the readers do their work and
# nothing more (issue 13 item 4).
#
#   nats_permissions.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server -c permissions.conf; n1..n3 as user aether-node (with
#     --metrics-addr and --event-stream) settle within 10 s; the server
#     logged no violation (the node role lacks nothing it uses: buckets,
#     watches, the event stream, commands and their answers);
#  2. as user aether-reader: aetherctl status (names the leader), shards,
#     lookup, watch, events and top --once all exit 0, and the server
#     logged no violation for them (nats_probe reads the map with the
#     reader's credentials throughout);
#  3. as aether-reader, aetherctl drain of a follower exits 1 within 3 s
#     saying the server refused it ("refused by the NATS server",
#     "Permissions Violation"), and the server logged the refused publish on
#     aether.prod.cmd.LeaveCluster;
#  4. as aether-reader, nats_forge --present-victim publishes a forged
#     NodeFailed of a follower in the leader's name and a forged map: the
#     server logged both publishes as violations; nats_forge --delete-lease
#     as aether-reader fails, the server refused the KV write;
#  5. the cluster is unaffected, at once and 1 s later: the same leader,
#     the stored map unchanged, every node serving exactly its primaries in
#     it (its /metrics), 64 shards served, no multi-owner, 3 Active nodes,
#     and no node saw the forgery (aether_events_refuted_total and
#     aether_event_seq_gaps_total unchanged: with node credentials the same
#     forgery is counted, see nats_authority.sh);
#  6. a node started with aether-reader credentials exits 1 within 3 s
#     naming the refused JetStream subject and the missing role (before:
#     it retried "create: Timeout" for 60 s), the cluster still unaffected;
#  7. the final checks of lib.sh.
# Takes ~6 s on loopback; its bounded waits add up to at most ~40 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup permissions "${1:-}"
it_need_helpers forge
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not built next to aether-node"
CONF=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../docs/examples/nats" && pwd)/permissions.conf
[[ -r "$CONF" ]] || fail "$CONF missing"

# The shipped file, as it is: its cluster and its example passwords.
CLUSTER=prod
NODE_PW=$(sed -n '/user: "aether-node"/{n;s/.*password: "\(.*\)".*/\1/p}' "$CONF")
READER_PW=$(sed -n '/user: "aether-reader"/{n;s/.*password: "\(.*\)".*/\1/p}' "$CONF")
[[ -n "$NODE_PW" && -n "$READER_PW" ]] || fail "no example passwords found in $CONF"
NODE_AUTH=(--nats-user aether-node --nats-password "$NODE_PW")
READER_AUTH=(--nats-user aether-reader --nats-password "$READER_PW")
PROBE_AUTH=(--user aether-reader --password "$READER_PW")

violations() { grep -c "Violation" "$WORK/nats.log"; } # the server's log
it_clean_env
ctl() { # aetherctl CMD ARGS... as the reader, stdout/stderr in $WORK/ctl-CMD.*
    local cmd=$1
    shift
    env "${CLEAN_ENV[@]}" timeout 20 "$CTL_BIN" "$cmd" --nats "$URL" --cluster "$CLUSTER" "${READER_AUTH[@]}" "$@" \
        >"$WORK/ctl-$cmd.out" 2>"$WORK/ctl-$cmd.err" </dev/null
}

# ---- 1. the nodes, as aether-node -------------------------------------------------
server_start nats -c "$CONF"
URL=$(server_url nats)
NODES=(n1 n2 n3)
for n in "${NODES[@]}"; do metrics_node_start "$n" "$URL" "${NODE_AUTH[@]}" --event-stream; done
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
L=$LEADER_NOW
mapfile -t FOLLOWERS < <(others "$L")
V=${FOLLOWERS[0]}
[[ "$(violations)" == 0 ]] || fail "the server refused the nodes something: $(grep -m3 Violation "$WORK/nats.log")"
echo "up as aether-node: ${NODES[*]}, leader $L; map v$(map_version "$WORK/map.up"); no violation"

# ---- 2. the reader's commands ---------------------------------------------------------
ctl status || fail "aetherctl status as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-status.err")"
grep -qE "^leader +$L, " "$WORK/ctl-status.out" || fail "aetherctl status does not name leader $L: $(head -n 3 "$WORK/ctl-status.out")"
ctl shards || fail "aetherctl shards as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-shards.err")"
ctl lookup some-key || fail "aetherctl lookup as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-lookup.err")"
ctl watch --count 2 --duration 5 || fail "aetherctl watch as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-watch.err")"
ctl events || fail "aetherctl events as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-events.err")"
grep -q "LeaderElected" "$WORK/ctl-events.out" || fail "aetherctl events read no LeaderElected from the stream"
ctl top --once || fail "aetherctl top --once as aether-reader exited $?: $(tail -n 3 "$WORK/ctl-top.err")"
[[ "$(violations)" == 0 ]] || fail "the server refused the reader something it needs: $(grep -m3 Violation "$WORK/nats.log")"
echo "as aether-reader: status, shards, lookup, watch, events, top exit 0; no violation"

# every node installed the stored map and serves exactly its primaries in it
scrape() { curl -s -m 2 -o "$WORK/$1.prom" "http://127.0.0.1:${MPORT[$1]}/metrics"; }
value() { # ID NAME [LABEL-REGEX]: the value of ID's first matching sample (last scrape)
    awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"({|$)" && $1 ~ l { print $2; exit }' "$WORK/$1.prom"
}
primaries() { # FILE ID: ID's primaries in the map in FILE
    awk -v id="$2" '$1 == "owner" && $2 == id { sub("primaries=", "", $3); print $3 }' "$1"
}
declare -A REFUTED=() GAPS=()
UNAFFECTED_WHY=""
unaffected() { # the leader is L, the stored map is map.up's, every node serves its part, nobody saw a forgery
    local n sum=0 owned want
    [[ "$(leaders_now "${NODES[@]}")" == "$L" ]] || { UNAFFECTED_WHY="leaders now: '$(leaders_now "${NODES[@]}" | tr '\n' ' ')'"; return 1; }
    probe_map "$WORK/map.now" || { UNAFFECTED_WHY="stored map unreadable"; return 1; }
    [[ "$(ownership "$WORK/map.now")" == "$(ownership "$WORK/map.up")" && "$(map_version "$WORK/map.now")" == "$(map_version "$WORK/map.up")" ]] ||
        { UNAFFECTED_WHY="the stored map moved: v$(map_version "$WORK/map.up") -> v$(map_version "$WORK/map.now")"; return 1; }
    for n in "${NODES[@]}"; do
        scrape "$n" || { UNAFFECTED_WHY="$n: /metrics did not answer"; return 1; }
        owned=$(value "$n" aether_shards_owned)
        want=$(primaries "$WORK/map.now" "$n")
        [[ "$owned" == "${want:-0}" ]] || { UNAFFECTED_WHY="$n serves $owned shards, its primaries are ${want:-0}"; return 1; }
        [[ "$(value "$n" aether_shards_multi_owner)" == 0 ]] || { UNAFFECTED_WHY="$n: multi-owner shards"; return 1; }
        [[ "$(value "$n" aether_nodes 'status="active"')" == 3 ]] ||
            { UNAFFECTED_WHY="$n counts $(value "$n" aether_nodes 'status="active"') Active nodes, want 3"; return 1; }
        if [[ -n "${REFUTED[$n]:-}" ]]; then
            [[ "$(value "$n" aether_events_refuted_total)" == "${REFUTED[$n]}" && "$(value "$n" aether_event_seq_gaps_total)" == "${GAPS[$n]}" ]] ||
                { UNAFFECTED_WHY="$n saw the forgery: refuted ${REFUTED[$n]} -> $(value "$n" aether_events_refuted_total), seq gaps ${GAPS[$n]} -> $(value "$n" aether_event_seq_gaps_total)"; return 1; }
        fi
        sum=$(( sum + owned ))
    done
    (( sum == SHARDS )) || { UNAFFECTED_WHY="the nodes serve $sum shards, want $SHARDS"; return 1; }
}
wait_for 5000 unaffected || fail "not serving the stored map before the attempts: $UNAFFECTED_WHY"
for n in "${NODES[@]}"; do
    REFUTED[$n]=$(value "$n" aether_events_refuted_total)
    GAPS[$n]=$(value "$n" aether_event_seq_gaps_total)
    [[ -n "${REFUTED[$n]}" && -n "${GAPS[$n]}" ]] || fail "$n exports no aether_events_refuted_total or aether_event_seq_gaps_total"
done

# ---- 3. a drain as aether-reader is refused by the server ------------------------------
t0=$(now_ms)
ctl drain "$V"
rc=$?
took=$(( $(now_ms) - t0 ))
[[ $rc -eq 1 ]] || fail "aetherctl drain as aether-reader exited $rc, want 1: $(tail -n 2 "$WORK/ctl-drain.err")"
(( took <= 3000 )) || fail "aetherctl drain took $took ms to say it was refused, want <= 3000"
grep -q "refused by the NATS server (Permissions Violation for Publish to \"aether.$CLUSTER.cmd.LeaveCluster\")" "$WORK/ctl-drain.err" ||
    fail "aetherctl drain does not say the server refused it: $(tail -n 2 "$WORK/ctl-drain.err")"
wait_for 2000 grep -q "Publish Violation - User \"aether-reader\", Subject \"aether.$CLUSTER.cmd.LeaveCluster\"" "$WORK/nats.log" ||
    fail "the server did not log the refused LeaveCluster"
echo "drain $V as aether-reader: exit 1 after $took ms: $(grep -m1 "^aetherctl: drain" "$WORK/ctl-drain.err" | sed 's/^aetherctl: //')"

# ---- 4. forged event and map as aether-reader -----------------------------------------------
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" "${PROBE_AUTH[@]}" --present-victim "$V" >"$WORK/forge.log" 2>&1 ||
    fail "nats_forge --present-victim as aether-reader failed: $(cat "$WORK/forge.log")"
grep -q "^state leader=$L " "$WORK/forge.log" || fail "nats_forge saw another state: $(head -n 1 "$WORK/forge.log")"
for subj in evt.NodeFailed map; do
    wait_for 2000 grep -q "Publish Violation - User \"aether-reader\", Subject \"aether.$CLUSTER.$subj\"" "$WORK/nats.log" ||
        fail "the server did not refuse the forged publish on aether.$CLUSTER.$subj"
done
echo "forged NodeFailed of $V in $L's name and a forged map as aether-reader: both refused by the server"

# the lease key deleted as aether-reader (a KV write): refused, the leader keeps its lease
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" "${PROBE_AUTH[@]}" --delete-lease >"$WORK/forge-delete.log" 2>&1 &&
    fail "nats_forge --delete-lease as aether-reader succeeded: $(cat "$WORK/forge-delete.log")"
wait_for 2000 grep -q "Publish Violation - User \"aether-reader\", Subject \"\$KV.aether_${CLUSTER}_lease.leader\"" "$WORK/nats.log" ||
    fail "the server did not refuse the reader's delete of the lease key"
echo "the lease key deleted as aether-reader: refused by the server"

# ---- 5. the cluster is unaffected ---------------------------------------------------------------
unaffected || fail "after the attempts: $UNAFFECTED_WHY"
sleep 1
unaffected || fail "1 s after the attempts: $UNAFFECTED_WHY"
echo "unaffected: leader $L, map v$(map_version "$WORK/map.now"), every node serving its primaries, $SHARDS shards served, no forgery seen"

# ---- 6. a node given the reader's credentials says so -------------------------------------------
t0=$(now_ms)
node_start r1 "$URL" "${READER_AUTH[@]}"
node_wait r1 5000
took=$(( $(now_ms) - t0 ))
[[ "$NODE_RC" -eq 1 ]] || fail "a node with aether-reader credentials exited $NODE_RC, want 1"
(( took <= 3000 )) || fail "a node with aether-reader credentials took $took ms to exit, want <= 3000"
grep -q "refused by the NATS server (Permissions Violation for Publish to \"\$JS.API.STREAM.CREATE.KV_aether_${CLUSTER}_lease\"): user 'aether-reader' lacks the node role's NATS permissions" "$WORK/r1.err" ||
    fail "r1 does not say the server refused its bucket creation: $(grep -v INFO "$WORK/r1.err" | tail -n 2)"
unaffected || fail "after r1: $UNAFFECTED_WHY"
echo "a node with aether-reader credentials: exit 1 after $took ms, naming the refused subject"

final_checks "${NODES[@]}"
echo "PASS"
exit 0
