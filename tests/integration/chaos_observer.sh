#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# chaos_observer.sh: the checks aether-observer (tools/chaos's judge) runs for
# the misfit, twin and dup-event faults (issue 12 item 7), on known input: a
# real nats-server and one real aether-node, plus trace files written here.
#
#   chaos_observer.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server; aether-observer --dir $WORK/obs; faults.log names m1 a
#     misfit ("F misfit m1 ...") and records a superseded twin ("R twin");
#  2. a real aether-node with the id m1 (configured like everyone, so it is
#     admitted and on the map: what a misfit must never be) tracing into
#     obs/m1.out, until it has installed a map (<= 10 s);
#  3. nats_replay republishes its next event twice (<= 5 s);
#  4. traces written here: n1.out, one process applying NodeJoined term=1003
#     seq=4 from n2 twice (a violation), LeadershipLost of term 1001 twice
#     (exempt) and its own event of an older term (emitted, not accepted:
#     exempt), then a second process (after "# chaos start n1") applying
#     the same NodeJoined once more (a new process: fine); n3.out and
#     n3@1.out, an old process and its twin whose map versions interleave
#     in time (v1005, v1007 / v1006, v1008), each file in order (fine);
#  5. a RELEASE of shard 0 appended to m1's trace (as if its process had
#     stopped serving it), DIR/expect = m1, SIGUSR1: the settle check must
#     not converge ("m1 does not serve shard 0") within --settle-ms 2000;
#  6. the observer's output must name exactly: the map naming m1 (wire),
#     m1's trace installing a map, n1 applying seq=4 twice (process 1), not
#     settled - and nothing else; the summary counts 2 replayed copies heard
#     and 1 superseded process; observer.log has the EVENT-REPLAY lines.
# Takes ~5 s. Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup chaos-observer "${1:-}"
it_need_helpers
OBS_BIN=$(dirname "$NODE_BIN")/aether-observer
REPLAY_BIN=$(dirname "$PROBE_BIN")/nats_replay
[[ -x "$OBS_BIN" ]] || fail "$OBS_BIN not built"
[[ -x "$REPLAY_BIN" ]] || fail "$REPLAY_BIN not built"
SHARDS=8
OBS=$WORK/obs
mkdir -p "$OBS"

# 1. The server, the fault log, the observer.
server_start nats
URL=$(server_url nats)
cat >"$OBS/faults.log" <<'EOF'
F misfit m1 (site a) --shards 16 --replication 1: must exit 2 (join refused), never on a map
F twin n3: a second process (trace n3@1.out); the old one (pid 1, n3.out) must exit 3
R twin n3: the old process (n3) exited 3: aether-node: n3 superseded by a newer process of node n3 (incarnation 2 > 1)
EOF
bg_start observer "$OBS_BIN" --nats "$URL" --cluster "$CLUSTER" --dir "$OBS" --duration 60 --settle-ms 2000
wait_log 10000 "$WORK/observer.log" "^observing " || fail "the observer did not subscribe"

# 2. m1, admitted (the observer must flag it: faults.log calls it a misfit).
echo "# chaos start m1" >>"$OBS/m1.out"
node_start_as obs/m1 m1 "$URL"
wait_log 10000 "$OBS/m1.out" "^T [0-9]+ m1 MAP " || fail "m1 installed no map within 10 s"

# 3. Its next event, twice more.
"$REPLAY_BIN" --nats "$URL" --cluster "$CLUSTER" --delay-ms 100 --count 2 --gap-ms 50 --timeout-ms 5000 \
    >"$WORK/replay.log" 2>&1 || fail "nats_replay: $(cat "$WORK/replay.log")"
grep -q "^replayed evt\..* copies=2 " "$WORK/replay.log" || fail "nats_replay: $(cat "$WORK/replay.log")"

# 4. Synthetic traces (terms 1001+: m1's own cluster never gets there).
cat >"$OBS/n1.out" <<'EOF'
# chaos start n1
T 100 n1 LEADER n2 1003
T 101 n1 EVENT NodeJoined NodeJoined term=1003 seq=4 node=n2 node=n9
T 102 n1 EVENT LeadershipLost LeadershipLost term=1001 seq=9 node=n5 leader=n5 term=1001
T 103 n1 EVENT LeadershipLost LeadershipLost term=1001 seq=9 node=n5 leader=n5 term=1001
T 104 n1 EVENT NodeFailed NodeFailed term=1002 seq=2 node=n1 node=n7
T 105 n1 EVENT NodeJoined NodeJoined term=1003 seq=4 node=n2 node=n9
T 106 n1 EVENT NodeJoined NodeJoined term=1003 seq=5 node=n2 node=n8
# chaos start n1
T 200 n1 LEADER n2 1003
T 201 n1 EVENT NodeJoined NodeJoined term=1003 seq=4 node=n2 node=n9
EOF
cat >"$OBS/n3.out" <<'EOF'
# chaos start n3
T 100 n3 LEADER n2 1003
T 101 n3 MAP 1005 1003
T 103 n3 MAP 1007 1003
EOF
# A new generation (both stores lost, actors/lease.h): n4 moves from
# generation aa to bb, where terms and map versions are lower: not a
# violation; n5 names another leader for term 1005 of aa: one.
cat >"$OBS/n4.out" <<'EOF'
# chaos start n4
T 100 n4 LEADER n5 1005 gen=00000000000000aa
T 101 n4 MAP 1009 1005 gen=00000000000000aa
T 102 n4 LEADER - 0 gen=00000000000000bb
T 103 n4 LEADER n6 1004 gen=00000000000000bb
T 104 n4 EVENT NodeJoined NodeJoined term=1004 seq=2 node=n6 node=n9
T 105 n4 MAP 1002 1004 gen=00000000000000bb
EOF
cat >"$OBS/n5.out" <<'EOF'
# chaos start n5
T 100 n5 LEADER n7 1005 gen=00000000000000aa
T 101 n5 LEADER n6 1005 gen=00000000000000bb
EOF
cat >"$OBS/n3@1.out" <<'EOF'
# chaos start n3 twin
T 102 n3 LEADER n2 1003
T 102 n3 MAP 1006 1003
T 104 n3 MAP 1008 1003
EOF

# 5. Shard 0 no longer served by the only node: never settled.
sleep 0.5 # the last copy reaches the observer
echo "T $(( $(date +%s%N) / 1000 )) m1 RELEASE 0 0" >>"$OBS/m1.out" # its clock does not matter
echo m1 >"$OBS/expect"
kill -USR1 "${BG_PID[observer]}"
wait_for 8000 eval '! kill -0 ${BG_PID[observer]} 2>/dev/null' || fail "the observer did not end its settle phase"

# 6. The verdict.
bg_stop observer 5000
OUT=$WORK/observer.log
grep -q "^VIOLATION admission: map v[0-9]* names m1, a joiner with another shard count" "$OUT" ||
    fail "no violation for a map naming the misfit m1"
grep -q "^VIOLATION admission: misfit m1 installed map v" "$OUT" ||
    fail "no violation for the misfit m1's trace installing a map"
grep -q "^VIOLATION n1 applied NodeJoined term=1003 seq=4 from n2 twice (process 1)" "$OUT" ||
    fail "no violation for n1 applying one event twice"
grep -qE "^VIOLATION two leaders in term 1005 of generation 00000000000000aa: (n5 \(n4's trace\) and n7 \(n5's trace\)|n7 \(n5's trace\) and n5 \(n4's trace\))" "$OUT" ||
    fail "no violation for two leaders of term 1005 in one generation"
grep -q "^VIOLATION two leaders in term 1005 of generation 00000000000000bb" "$OUT" &&
    fail "term 1005 of generation bb has one leader, n6"
grep -q "^VIOLATION not settled within 2000 ms: m1 does not serve shard 0, its primary on map v" "$OUT" ||
    fail "a shard its primary's process does not serve: settled anyway ($(grep "^settle" "$OUT"))"
others=$(grep "^VIOLATION" "$OUT" | grep -v "names m1, a joiner\|misfit m1 installed map\|n1 applied NodeJoined term=1003 seq=4 from n2 twice (process 1)\|not settled within 2000 ms: m1 does not serve shard 0\|two leaders in term 1005 of generation 00000000000000aa")
[[ -z "$others" ]] || fail "unexpected violations: $others"
(( $(grep -c "^VIOLATION .* twice" "$OUT") == 1 )) || fail "applied twice reported more than once"
grep -q "^expected exits: 0 misfits refused (exit 2), 1 superseded processes (exit 3); 0 events replayed, 2 replayed copies heard" "$OUT" ||
    fail "summary: $(grep "^expected exits" "$OUT")"
(( $(grep -c " EVENT-REPLAY " "$OBS/observer.log") == 2 )) || fail "observer.log has not 2 EVENT-REPLAY lines"
(( BG_RC == 1 )) || fail "the observer exited $BG_RC, expected 1 (violations)"
echo "PASS: misfit on a map and in a trace, an event applied twice, a shard its primary does not serve, two leaders of one (generation, term): flagged; a LeadershipLost twice, an own event, a new process, a twin's interleaved maps, lower terms and versions in a new generation: not; 2 replayed copies heard"
exit 0
