#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# metrics_scrape.sh: aether-node --metrics-addr serves every DESIGN 7 metric
# in Prometheus text on GET /metrics, and --log-format json writes one JSON
# object per line naming the node and term (issue 6, sections 1 and 2).
#
#   metrics_scrape.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. a bad --metrics-addr is refused with the configuration: exit 2 and a
#     message naming metrics_addr, before anything starts;
#  2. nats-server and n1..n3 (--shards 1024 --replication 2), each with
#     --metrics-addr 127.0.0.1:<free port> and --log-format json (n1 also
#     --log-level debug, so its actors' lines name events), settled within
#     10 s;
#  3. curl scrapes every node: HTTP 200, text/plain version 0.0.4, a HELP
#     and a TYPE line for every expected metric, every sample name aether_*;
#  4. plausible values once settled (retried for up to 5 s, the scrapes of
#     the three nodes are not simultaneous): exactly one node has
#     aether_role_leader 1; all report the same aether_term and
#     aether_map_version; shards owned sum to 1024 (each shard served by its
#     primary), shards assigned (primary + replica) sum to 1024 x 2;
#     aether_shards_unowned, aether_shards_multi_owner,
#     aether_map_version_lag and aether_handoffs_in_flight are 0;
#     aether_nodes{status="active"} is 3 everywhere;
#  5. GET / is 404, POST /metrics is 405;
#  6. every stderr line of the nodes is a JSON object with ts, level,
#     module, node (its own id), term and msg; n1's debug lines include
#     some with "event"; no raw newline inside a line.
#  7. the final checks of lib.sh.
# Takes ~4 s on loopback; its bounded waits add up to at most ~30 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup metrics-scrape "${1:-}"
it_need_helpers
command -v curl >/dev/null || fail "curl is missing (tools/deps install)"

SHARDS=1024
R=2
EXPECTED=(
    aether_role_leader aether_term aether_leader_changes_total aether_lease_renewals_total
    aether_lease_failures_total aether_map_version aether_map_version_lag aether_shards_owned
    aether_shards_assigned aether_shards_unowned aether_shards_multi_owner aether_handoffs_in_flight
    aether_fenced aether_rebalances_total aether_rebalance_brake aether_shards_moved_total aether_heartbeats_missed
    aether_nodes aether_stale_messages_dropped_total aether_impostor_events_dropped_total
    aether_node_incompatible aether_joins_refused_total aether_commands_busy_total
    aether_fail_requests_refused_total aether_heartbeats_ignored_total
    aether_messages_decoded_total aether_decode_errors_total aether_mailbox_depth
    aether_mailbox_full_total aether_actor_messages_total aether_node_info
)
# Histograms (TYPE histogram; _bucket, _sum and _count samples).
HISTOGRAMS=(
    aether_lease_renewal_seconds aether_handoff_duration_seconds aether_rebalance_duration_seconds
    aether_kv_cas_seconds
)

# 1. A bad address is a configuration error.
server_start nats
URL=$(server_url nats)
"$NODE_BIN" --nats "$URL" --node bad --cluster "$CLUSTER" --metrics-addr "localhost" \
    >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
[[ $rc -eq 2 ]] || fail "--metrics-addr localhost: exit $rc, want 2"
grep -q "metrics_addr" "$WORK/bad.err" || fail "the refusal does not name metrics_addr: $(cat "$WORK/bad.err")"

# 2. Three nodes, each with its own metrics port.
declare -A MPORT=()
NODES=(n1 n2 n3)
for id in "${NODES[@]}"; do
    MPORT[$id]=$(free_port)
    extra=()
    [[ $id == n1 ]] && extra=(--log-level debug)
    node_start "$id" "$URL" --replication "$R" --metrics-addr "127.0.0.1:${MPORT[$id]}" \
        --log-format json "${extra[@]}"
done
t0=$(now_ms)
wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
echo "up: ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER_NOW"

scrape() { # ID -> $WORK/ID.prom (body), $WORK/ID.hdr (headers); 0 on HTTP 200
    curl -s -m 2 -D "$WORK/$1.hdr" -o "$WORK/$1.prom" "http://127.0.0.1:${MPORT[$1]}/metrics" &&
        grep -q '^HTTP/1.[01] 200' "$WORK/$1.hdr"
}
value() { # FILE NAME [LABEL-REGEX]: the value of the first matching sample
    awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"({|$)" && $1 ~ l { print $2; exit }' "$1"
}
sum_of() { # NAME [LABEL-REGEX]: the sum of every matching sample over the nodes' scrapes
    local id
    for id in "${NODES[@]}"; do
        awk -v n="$1" -v l="${2:-}" '$1 ~ "^"n"({|$)" && $1 ~ l { print $2 }' "$WORK/$id.prom"
    done | awk '{ s += $1 } END { print s + 0 }'
}

# 3. Format: HELP and TYPE for every expected metric.
for id in "${NODES[@]}"; do
    scrape "$id" || fail "GET /metrics on $id (port ${MPORT[$id]}) did not answer 200"
    grep -qi '^Content-Type: text/plain; version=0.0.4' "$WORK/$id.hdr" ||
        fail "$id: Content-Type is not the Prometheus text format: $(cat "$WORK/$id.hdr")"
    for name in "${EXPECTED[@]}"; do
        grep -q "^# HELP $name " "$WORK/$id.prom" || fail "$id: no HELP line for $name"
        grep -qE "^# TYPE $name (counter|gauge)$" "$WORK/$id.prom" || fail "$id: no TYPE line for $name"
    done
    for name in "${HISTOGRAMS[@]}"; do
        grep -qE "^# TYPE $name histogram$" "$WORK/$id.prom" || fail "$id: no TYPE histogram line for $name"
        grep -qE "^${name}_bucket\{(.*,)?le=\"\+Inf\"\} [0-9]+$" "$WORK/$id.prom" || fail "$id: no +Inf bucket for $name"
        grep -qE "^${name}_count(\{[^}]*\})? [0-9]+$" "$WORK/$id.prom" || fail "$id: no _count for $name"
    done
    # One node per process: its identity is aether_node_info's, no other
    # series carries a node label (Prometheus adds the target's own).
    grep -qE "^aether_node_info\{node=\"$id\",cluster=\"$CLUSTER\",version=\"[0-9]+\.[0-9]+\.[0-9]+\",revision=\"[^\"]*\"\} 1$" "$WORK/$id.prom" ||
        fail "$id: no aether_node_info naming it: $(grep aether_node_info "$WORK/$id.prom")"
    bad=$(grep -v '^#' "$WORK/$id.prom" | grep -v '^aether_node_info{' | grep 'node="' | head -n 3)
    [[ -z "$bad" ]] || fail "$id: series with a node label besides aether_node_info: $bad"
    # The handler-time histogram (issue 14): its TYPE, and a count for each of the member's actors.
    grep -qE '^# TYPE aether_actor_handler_seconds histogram$' "$WORK/$id.prom" ||
        fail "$id: no histogram aether_actor_handler_seconds"
    for a in cluster lease assign; do
        grep -qE "^aether_actor_handler_seconds_count\{actor=\"$a\"[^}]*\} [1-9][0-9]*$" "$WORK/$id.prom" ||
            fail "$id: aether_actor_handler_seconds counts no run of the $a actor"
    done
    # Integers, but a histogram's _sum (seconds) may have a fraction.
    bad=$(grep -v '^#' "$WORK/$id.prom" | grep -vE '^aether_[a-z_]+(\{[^}]*\})? -?[0-9]+$' |
          grep -vE '^aether_[a-z_]+_sum(\{[^}]*\})? [0-9]+(\.[0-9]+)?$' | head -n 3)
    [[ -z "$bad" ]] || fail "$id: samples not in the expected shape: $bad"
    grep -E '^# TYPE [a-z_]+_total ' "$WORK/$id.prom" | grep -v ' counter$' | grep -q . &&
        fail "$id: a *_total metric that is not a counter"
done

# 4. Values.
VALUES_WHY=""
values_ok() {
    local id
    for id in "${NODES[@]}"; do scrape "$id" || { VALUES_WHY="$id did not answer"; return 1; }; done
    local leaders owned assigned terms versions
    leaders=$(sum_of aether_role_leader)
    owned=$(sum_of aether_shards_owned)
    assigned=$(sum_of aether_shards_assigned)
    terms=$(for id in "${NODES[@]}"; do value "$WORK/$id.prom" aether_term; done | sort -u | wc -l)
    versions=$(for id in "${NODES[@]}"; do value "$WORK/$id.prom" aether_map_version; done | sort -u | wc -l)
    (( leaders == 1 )) || { VALUES_WHY="aether_role_leader sums to $leaders"; return 1; }
    (( owned == SHARDS )) || { VALUES_WHY="aether_shards_owned sums to $owned, want $SHARDS"; return 1; }
    (( assigned == SHARDS * R )) || { VALUES_WHY="aether_shards_assigned sums to $assigned, want $(( SHARDS * R ))"; return 1; }
    (( terms == 1 && versions == 1 )) || { VALUES_WHY="terms or map versions differ between nodes"; return 1; }
    for id in "${NODES[@]}"; do
        local f=$WORK/$id.prom m
        for m in aether_shards_unowned aether_shards_multi_owner aether_map_version_lag aether_handoffs_in_flight aether_fenced; do
            [[ "$(value "$f" "$m")" == 0 ]] || { VALUES_WHY="$id: $m is $(value "$f" "$m")"; return 1; }
        done
        [[ "$(value "$f" aether_nodes 'status="active"')" == 3 ]] ||
            { VALUES_WHY="$id: aether_nodes{status=active} is $(value "$f" aether_nodes 'status="active"')"; return 1; }
        (( $(value "$f" aether_messages_decoded_total) > 0 )) || { VALUES_WHY="$id: decoded nothing"; return 1; }
    done
    VALUES_WHY=""
}
wait_for 5000 values_ok || fail "implausible metrics: $VALUES_WHY"
leader_id=$(for id in "${NODES[@]}"; do [[ "$(value "$WORK/$id.prom" aether_role_leader)" == 1 ]] && echo "$id"; done)
(( $(value "$WORK/$leader_id.prom" aether_lease_renewals_total) > 0 )) || fail "the leader $leader_id counts no renewals"
echo "scraped: leader $leader_id term $(value "$WORK/n1.prom" aether_term) map v$(value "$WORK/n1.prom" aether_map_version); owned $(sum_of aether_shards_owned), assigned $(sum_of aether_shards_assigned); unowned/multi-owner/lag 0"

# promtool (Debian package prometheus), when installed: the exposition of
# every node passes its linter.
if command -v promtool >/dev/null; then
    for id in "${NODES[@]}"; do
        promtool check metrics <"$WORK/$id.prom" >"$WORK/$id.promtool" 2>&1 ||
            fail "$id: promtool check metrics: $(head -n 5 "$WORK/$id.promtool")"
    done
    echo "promtool check metrics: ${#NODES[@]} nodes' scrapes pass"
else
    echo "promtool not installed (tools/deps): check metrics skipped"
fi

# 5. Other paths and methods.
code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${MPORT[n1]}/")
[[ $code == 404 ]] || fail "GET / answered $code, want 404"
code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST -d x "http://127.0.0.1:${MPORT[n1]}/metrics")
[[ $code == 405 ]] || fail "POST /metrics answered $code, want 405"

# 6. JSON log lines.
for id in "${NODES[@]}"; do
    [[ -s "$WORK/$id.err" ]] || fail "$id wrote no log line"
    bad=$(grep -vE "^\{\"ts\":\"[0-9T:.Z-]+\",\"level\":\"(debug|info|warn|error)\",\"module\":\"[^\"]+\",\"node\":\"$id\",\"term\":[0-9]+(,\"(event|command)\":\"[A-Za-z]+\")?,\"msg\":\".*\"\}$" "$WORK/$id.err" | head -n 3)
    [[ -z "$bad" ]] || fail "$id: log lines that are not the JSON shape: $bad"
done
grep -q '"event":"' "$WORK/n1.err" || fail "n1's debug lines name no event"
echo "logs: $(cat "$WORK"/n?.err | wc -l) JSON lines, $(grep -c '"event":"' "$WORK/n1.err") of n1's name their event"

final_checks "${NODES[@]}"
echo "PASS"
exit 0
