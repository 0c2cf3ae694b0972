#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_lease_deleted.sh: the lease key deleted under a live leader (an
# operator, a store accident) on a real nats-server: the leader's next
# renewal conflicts and it says so on the wire - LeadershipLost of the term
# it held - before anyone leads again (issue 12 item 4).
#
#   nats_lease_deleted.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n3 settled within 10 s; nats_probe watches the wire;
#  2. three times: read the lease (leader L, term T), nats_forge --delete-lease; within 5 s a LeaderElected of a
#     newer term is on the wire, and before it the old leader's
#     "LeadershipLost node=L term=T" (T its term, never 0); no node logged
#     "leadership of term 0 lost"; the cluster settles again (10 s);
#  3. over the whole wire log, every leader change after a live leader was
#     preceded by that leader's LeadershipLost (wire_check_handover);
#  4. the final checks of lib.sh.
# Takes ~3 s on loopback; its bounded waits add up to at most ~60 s.
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup lease-deleted "${1:-}"
it_need_helpers forge

cluster_up 3
wire_start

for round in 1 2 3; do
    # The lease itself says who leads in which term (a leader re-elected
    # within one of aether-node's 50 ms polls prints no new LEADER line).
    # Its term is 0 until the first renewal after the election writes it.
    lease_known() {
        lease=$("$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 2000 lease 2>>"$WORK/probe.err") ||
            return 1
        L=$(sed -n 's/.*leader=\([^ ]*\).*/\1/p' <<<"$lease")
        T=$(sed -n 's/.* term=\([0-9]*\).*/\1/p' <<<"$lease")
        [[ -n "$L" && -n "$T" && "$T" -gt 0 ]]
    }
    lease=""
    wait_for 3000 lease_known || fail "round $round: the lease ('$lease') names no leader and term"
    mark=$(wire_mark)
    t0=$(now_ms)
    "$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --delete-lease >>"$WORK/forge.log" 2>&1 ||
        fail "nats_forge --delete-lease failed: $(tail -n 2 "$WORK/forge.log")"
    elected_after() {
        wire_since "$mark" | awk -v t="$T" '$3 == "LeaderElected" { x = $5; sub("term=", "", x); if (x + 0 > t) { found = 1; exit } }
                                         END { exit !found }'
    }
    wait_for 5000 elected_after || fail "round $round: no new leader on the wire within 5 s of deleting the lease of $L (term $T)"
    t_new=$(( $(now_ms) - t0 ))
    order=$(wire_since "$mark" | awk -v l="node=$L" -v t="term=$T" -v tt="$T" '
        $3 == "LeadershipLost" && $4 == l && $5 == t && !elected { lost = 1 }
        $3 == "LeaderElected" { x = $5; sub("term=", "", x); if (x + 0 > tt) { elected = 1; print (lost ? "ok" : "missing") " " $4 " " $5; exit } }')
    [[ "$order" == ok* ]] ||
        fail "round $round: the new leader ($order) was elected with no LeadershipLost node=$L term=$T before it on the wire"
    ! grep -q "leadership of term 0 lost" "$WORK"/n*.err || fail "a node reported losing 'term 0'"
    wait_settled 10000 "$WORK/map.$round" "${NODES[@]}"
    LEADER=$LEADER_NOW
    echo "round $round: lease of $L (term $T) deleted; LeadershipLost term=$T on the wire, then $order after ~$t_new ms; settled, leader $LEADER"
done

wire_check_handover
# The first election predates the watch: the three rounds give >= 2 checked.
(( HANDOVERS >= 2 )) || fail "only $HANDOVERS leader handovers on the wire, want >= 2"
echo "every one of $HANDOVERS leader handovers on the wire followed the old leader's LeadershipLost"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
