#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_leader_pause.sh: the leader aether-node is frozen (SIGSTOP) for 3x the
# lease ttl and then resumed (SIGCONT) on a real nats-server: a new leader is
# elected meanwhile, the old one steps down and never acts on its old term
# again, and no two nodes act as leader at once (DESIGN 2.4 and 6, "leader
# paused longer than the ttl then resumed"; issue 4 section 7).
#
#   nats_leader_pause.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server and n1 n2 n3 (--shards 64), settled within 10 s; the old
#     leader L and its term T1 (its log; the lease bucket names it); nats_probe watch
#     records every message on aether.<cluster>.>;
#  2. SIGSTOP L for PAUSE_MS = 3 x lease ttl (1000 ms) = 3000 ms; during the
#     pause, sampled every 100 ms, at most one survivor believes it leads,
#     and by its end exactly one survivor N has printed "LEADER elected
#     term=T2", T2 > T1;
#  3. SIGCONT L; within 2 s L prints "LEADER lost";
#  4. 3 s later (L had time to act on a stale belief, and to come back):
#     - L never printed "LEADER elected" again;
#     - the wire since SIGCONT holds no event from L but its LeadershipLost
#       (the resignation notice, exempt from term fencing by design; its
#       trace line must name L and T1) and no map stamped with T1: L acted
#       on nothing with its old term after resuming;
#     - the leader-issued messages on the wire since SIGSTOP (events, maps)
#       never go back to a lower term once a higher one appeared: two leaders
#       acting at once would interleave their terms;
#     - exactly one LeaderElected since SIGSTOP (N's, term T2); the lease
#       names N with T2; exactly one node believes it leads, and it is N;
#  5. the cluster is whole again within 10 s: the map is settled over
#     n1 n2 n3 (L rejoined after it had been declared failed);
#  6. the final checks of lib.sh, from every node's --trace lines: no node
#     (L included, after resuming) accepted an event of a term below one it
#     knew, and the leaders' own events, per term, form disjoint intervals
#     of CLOCK_MONOTONIC time (L's last act before N's first); no VIOLATION
#     on any stderr.
# Takes ~7 s on loopback (its bounded waits add up to at most ~40 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup leader-pause "${1:-}"
it_need_helpers

TTL_MS=1000
PAUSE_MS=$(( 3 * TTL_MS ))

cluster_up 3
T1=$(leader_term "$LEADER")
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | grep -q "^lease leader=$LEADER " ||
    fail "the lease bucket does not name $LEADER as leader"
wire_start
OLD=$LEADER
mapfile -t SURVIVORS < <(others "$OLD")
log_mark "${NODES[@]}"

# ---- 2. the pause -----------------------------------------------------------------
mark_stop=$(wire_mark)
kill -STOP "${NODE_PID[$OLD]}"
t0=$(now_ms)
t_elected=""
while (( $(now_ms) - t0 < PAUSE_MS )); do # bounded: PAUSE_MS
    believers=$(leaders_now "${SURVIVORS[@]}")
    [[ $(wc -w <<<"$believers") -le 1 ]] || fail "two survivors believe they lead at once: $believers"
    if [[ -z "$t_elected" && -n "$(elected_nodes "${SURVIVORS[@]}")" ]]; then
        t_elected=$(( $(now_ms) - t0 ))
    fi
    sleep 0.1
done
elected=$(elected_nodes "${SURVIVORS[@]}")
[[ -n "$elected" ]] || fail "no survivor was elected during the ${PAUSE_MS} ms pause of $OLD"
[[ $(wc -l <<<"$elected") -eq 1 ]] || fail "more than one survivor was elected: $(tr '\n' ' ' <<<"$elected")"
NEW=$elected
T2=$(since_mark "$NEW" | sed -n 's/.* LEADER elected term=\([0-9]*\).*/\1/p' | head -n 1)
(( T2 > T1 )) || fail "new term $T2 is not above the old term $T1"
echo "pause: $OLD (term $T1) frozen; $NEW elected (term $T2) after ~$t_elected ms"

# ---- 3. resume ----------------------------------------------------------------------
mark_cont=$(wire_mark)
kill -CONT "${NODE_PID[$OLD]}"
t1=$(now_ms)
wait_for 2000 eval 'since_mark "$OLD" | grep -q " LEADER lost "' ||
    fail "$OLD did not print 'LEADER lost' within 2 s of SIGCONT"
echo "resume: $OLD stepped down after ~$(( $(now_ms) - t1 )) ms"

# ---- 4. nothing stamped with the old term, never two leaders ----------------------
sleep 3
node_alive "$OLD" || fail "$OLD exited after SIGCONT"
since_mark "$OLD" | grep -q " LEADER elected " && fail "$OLD was elected again after resuming"
wire_since "$mark_cont" >"$WORK/wire.cont"
# The one thing L may still say with T1 is that it lost it: LeadershipLost
# (every node accepts it whatever its term, and it changes nothing once T2
# is known: member.c, sink_event). Anything else would be acting on T1.
odd=$(awk -v o="node=$OLD" '$2 ~ /^evt\./ && $4 == o && $3 != "LeadershipLost"' "$WORK/wire.cont")
[[ -z "$odd" ]] || fail "$OLD published events after resuming: $(head -n 3 <<<"$odd" | tr '\n' ';')"
# ... and that notice speaks only for L and T1 (its own trace line).
odd=$(since_mark "$OLD" | awk -v o="$OLD" -v t="$T1" '$1 == "T" && $4 == "EVENT" && $5 == "LeadershipLost" && $9 == "node=" o &&
                                                    !($0 ~ (" leader=" o " term=" t " "))')
[[ -z "$odd" ]] || fail "$OLD's LeadershipLost after resuming is not about itself and term $T1: $odd"
odd=$(awk -v t="term=$T1" '$2 == "map" && $5 == t' "$WORK/wire.cont")
[[ -z "$odd" ]] || fail "a map of the old term $T1 was published after $OLD resumed"
wire_since "$mark_stop" >"$WORK/wire.stop"
back=$(awk '($2 ~ /^evt\./ && $3 != "LeadershipLost") || $2 == "map" {
              t = ($2 == "map") ? $5 : $5; sub("term=", "", t); t += 0
              if (t < hi) { print "term " t " after term " hi ": " $0; exit }
              if (t > hi) hi = t }' "$WORK/wire.stop")
[[ -z "$back" ]] || fail "leader-issued messages went back to an older term (two leaders acting): $back"
le=$(grep -c " LeaderElected " "$WORK/wire.stop")
[[ "$le" -eq 1 ]] || fail "$le LeaderElected messages since the pause (want 1)"
grep -q " LeaderElected node=$NEW term=$T2 " "$WORK/wire.stop" || fail "the LeaderElected since the pause is not $NEW's of term $T2"
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease | grep -q "^lease leader=$NEW term=$T2 " ||
    fail "the lease bucket does not name $NEW with term $T2"
believers=$(leaders_now "${NODES[@]}")
[[ "$believers" == "$NEW" ]] || fail "believing they lead: '$(tr '\n' ' ' <<<"$believers")', want $NEW"

# ---- 5. whole again -------------------------------------------------------------------
wait_settled 10000 "$WORK/map.end" "${NODES[@]}"
[[ "$LEADER_NOW" == "$NEW" ]] || fail "the leader is $LEADER_NOW, want $NEW"
echo "after: one leader ($NEW), map v$(map_version "$WORK/map.end") settled over ${NODES[*]}"
final_checks "${NODES[@]}"
echo "PASS"
exit 0
