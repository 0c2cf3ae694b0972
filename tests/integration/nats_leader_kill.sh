#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_leader_kill.sh: kill -9 of the leader aether-node on a real
# nats-server: exactly one new leader, with a higher term, and the dead
# leader's shards re-owned (DESIGN 2.4 and 6, "leader crash"; issue 4
# section 7).
#
#   nats_leader_kill.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1..n4 (--shards 64), settled within 10 s; the old
#     term T1 is the leader's "LEADER elected term=T1" (the lease bucket,
#     read by nats_probe lease, names it); nats_probe
#     watch records every message on aether.<cluster>.> from here on;
#  2. kill -9 the leader L;
#  3. within 10 s exactly one survivor prints "LEADER elected term=T2" and
#     it is the only survivor that believes it leads; T2 > T1;
#  4. within 10 s of the kill the new leader emits NodeFailed for L and the
#     map is settled over the three survivors (only L's shards moved);
#  5. the wire since the kill has exactly one LeaderElected, from the new
#     leader, with term T2; every event and map published since the kill
#     carries term T2, events come only from the new leader and are
#     numbered seq 1, 2, 3, ... without a gap (DESIGN 2; LeaseRenewed seq 0); the lease
#     bucket names the new leader with term T2;
#  6. the final checks of lib.sh: no VIOLATION on any stderr, no node
#     accepted an event of an older term, no two leaders acted at once
#     (their --trace lines).
# Prints the measured kill -> new leader and kill -> map settled times.
# Takes ~3 s on loopback (its bounded waits add up to at most ~50 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup leader-kill "${1:-}"
it_need_helpers

cluster_up 4
T1=$(leader_term "$LEADER")
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | grep -q "^lease leader=$LEADER " ||
    fail "the lease bucket does not name $LEADER as leader"
wire_start
OLD=$LEADER
mapfile -t SURVIVORS < <(others "$OLD")
log_mark "${SURVIVORS[@]}"
mark=$(wire_mark)

t0=$(now_ms)
node_kill "$OLD"

one_new_leader() {
    nodes_alive "${SURVIVORS[@]}" || return 1
    [[ $(elected_nodes "${SURVIVORS[@]}" | wc -l) -ge 1 ]]
}
wait_for 10000 one_new_leader || fail "no survivor elected within 10 s of killing the leader $OLD"
t_elected=$(( $(now_ms) - t0 ))
elected=$(elected_nodes "${SURVIVORS[@]}")
[[ $(wc -l <<<"$elected") -eq 1 ]] || fail "more than one new leader: $(tr '\n' ' ' <<<"$elected")"
NEW=$elected
T2=$(since_mark "$NEW" | sed -n 's/.* LEADER elected term=\([0-9]*\).*/\1/p' | head -n 1)
(( T2 > T1 )) || fail "new term $T2 is not above the old term $T1"

wait_log 10000 "$WORK/$NEW.out" "NodeFailed .* node=$OLD silent_ms=" ||
    fail "no NodeFailed for the dead leader $OLD from $NEW within 10 s"
wait_settled 10000 "$WORK/map.after" "${SURVIVORS[@]}"
t_settled=$(( $(now_ms) - t0 ))
[[ "$LEADER_NOW" == "$NEW" ]] || fail "the leader is $LEADER_NOW, but $NEW was elected"
moved=$(join <(ownership "$WORK/map.up") <(ownership "$WORK/map.after") | awk '$2 != $3')
bad=$(awk -v f="$OLD" '$2 != f' <<<"$moved")
[[ -z "$bad" ]] || fail "shards not owned by $OLD moved: $(tr '\n' ';' <<<"$bad")"
elected_again=$(elected_nodes "${SURVIVORS[@]}" | wc -l)
[[ "$elected_again" -eq 1 ]] || fail "another survivor was elected after $NEW"

# The wire since the kill. Messages of the old leader's term that were
# still on their way to the watcher when the mark was taken (a LeaseRenewed
# published just before the kill -9) are not "since the kill": a killed
# process sends nothing, so whatever of $OLD's term T1 arrives after the
# mark was sent before it. They are set aside (and counted in the output),
# everything else must be the new leader's.
wire_since "$mark" >"$WORK/wire.all"
awk -v o="node=$OLD" -v t="term=$T1" '!($2 ~ /^evt\./ && $4 == o && $5 == t)' "$WORK/wire.all" >"$WORK/wire.after"
in_flight=$(( $(wc -l <"$WORK/wire.all") - $(wc -l <"$WORK/wire.after") ))
le=$(grep -c " LeaderElected " "$WORK/wire.after")
[[ "$le" -eq 1 ]] || fail "$le LeaderElected messages on the wire since the kill (want 1)"
grep -q " LeaderElected node=$NEW term=$T2 " "$WORK/wire.after" ||
    fail "the LeaderElected on the wire is not $NEW's of term $T2: $(grep ' LeaderElected ' "$WORK/wire.after")"
odd=$(awk -v n="$NEW" -v t="term=$T2" '$2 ~ /^evt\./ && ($4 != "node=" n || $5 != t)' "$WORK/wire.after")
[[ -z "$odd" ]] || fail "events since the kill not from $NEW in term $T2: $(head -n 3 <<<"$odd" | tr '\n' ';')"
# LeaseRenewed is a heartbeat outside the numbering: seq 0 (docs/wire.md).
gaps=$(awk '$2 ~ /^evt\./ { sub("seq=", "", $6)
    if ($3 == "LeaseRenewed") { if ($6 != 0) { print "LeaseRenewed with seq " $6 " (want 0)"; exit } next }
    if ($6 != ++want) { print "seq " $6 " where " want " was due"; exit } }' "$WORK/wire.after")
[[ -z "$gaps" ]] || fail "events of term $T2 on the wire are not numbered 1, 2, 3, ... : $gaps"
odd=$(awk -v t="term=$T2" '$2 == "map" && $5 != t' "$WORK/wire.after")
[[ -z "$odd" ]] || fail "maps since the kill not of term $T2: $(head -n 3 <<<"$odd" | tr '\n' ';')"
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | grep -q "^lease leader=$NEW term=$T2 " ||
    fail "the lease bucket does not name $NEW with term $T2"

echo "kill -9 leader $OLD (term $T1): $NEW elected (term $T2) after ~$t_elected ms, the only one; map v$(map_version "$WORK/map.after") settled after ~$t_settled ms ($in_flight event(s) of term $T1 still in flight at the kill)"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
