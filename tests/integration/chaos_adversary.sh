#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# chaos_adversary.sh: how aether-observer judges a run with an adversary on
# the wire (tools/chaos --adversary, issue 13 item 6), on known input: a
# real nats-server, the real forger (nats_forge --adversary) and trace
# files written here. No aether-node: the forger's messages are all there is.
#
#   chaos_adversary.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server; two observers: A with --adversary, B without;
#  2. nats_forge --adversary 7 for 1.5 s, a message every 20 ms on average:
#     forged, replayed (of its own? it hears nothing genuine: none) and
#     malformed events, maps, heartbeats and commands, each announced on
#     aether.<cluster>.adversary first;
#  3. traces in A's directory: n1 led term 5 (its own LEADER line); n2
#     followed n1 in term 5 (fine), `evil` in term 9 and n1 in term 7 (n1
#     never claimed it); n3 followed n1 in term 5 before it knew the
#     generation (gen 0: fine);
#  4. both observers stopped (no settle phase).
#  5. A must report exactly the two follows (check 11) and nothing about the
#     wire, and count every announced message as heard and unjudged; B,
#     which takes the wire for the cluster's word, must report violations
#     (the forgeries would be judged: the test can fail).
# Takes ~4 s. Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup chaos-adversary "${1:-}"
it_need_helpers forge
OBS_BIN=$(dirname "$NODE_BIN")/aether-observer
[[ -x "$OBS_BIN" ]] || fail "$OBS_BIN not built"

# 1. The server and two observers.
server_start nats
URL=$(server_url nats)
mkdir -p "$WORK/a" "$WORK/b"
: >"$WORK/a/faults.log"
: >"$WORK/b/faults.log"
bg_start obsa "$OBS_BIN" --adversary --nats "$URL" --cluster "$CLUSTER" --dir "$WORK/a" --duration 60
bg_start obsb "$OBS_BIN" --nats "$URL" --cluster "$CLUSTER" --dir "$WORK/b" --duration 60
wait_log 10000 "$WORK/obsa.log" "^observing " || fail "observer A did not subscribe"
wait_log 10000 "$WORK/obsb.log" "^observing " || fail "observer B did not subscribe"

# 2. The forger.
"$FORGE_BIN" --nats "$URL" --cluster "$CLUSTER" --adversary 7 --for-ms 1500 --every-ms 20 \
    >"$WORK/forge.log" 2>&1 || fail "nats_forge --adversary: $(tail -3 "$WORK/forge.log")"
sent=$(sed -n 's/^adversary sent=\([0-9]*\) .*/\1/p' "$WORK/forge.log")
[[ -n "$sent" ]] && (( sent >= 20 )) || fail "the forger sent '${sent:-nothing}', want >= 20: $(tail -3 "$WORK/forge.log")"

# 3. What the nodes would have traced.
cat >"$WORK/a/n1.out" <<'EOF'
# chaos start n1
T 100 n1 LEADER n1 5 gen=00000000000000aa
EOF
cat >"$WORK/a/n2.out" <<'EOF'
# chaos start n2
T 100 n2 LEADER n1 5 gen=00000000000000aa
T 101 n2 LEADER evil 9 gen=00000000000000aa
T 102 n2 LEADER n1 7 gen=00000000000000aa
EOF
cat >"$WORK/a/n3.out" <<'EOF'
# chaos start n3
T 100 n3 LEADER n1 5 gen=0000000000000000
EOF

# 4. Both observers stop (the last messages have had 0.5 s to arrive).
sleep 0.5
bg_stop obsa 5000
RC_A=$BG_RC
bg_stop obsb 5000
RC_B=$BG_RC

# 5. The verdicts.
OUT=$WORK/obsa.log
grep -q "^VIOLATION n2 followed evil as the leader of term 9 (generation 00000000000000aa), but no process of evil led that term" "$OUT" ||
    fail "A: no violation for n2 following evil"
grep -q "^VIOLATION n2 followed n1 as the leader of term 7 (generation 00000000000000aa), but no process of n1 led that term" "$OUT" ||
    fail "A: no violation for n2 following n1 in a term n1 never led"
others=$(grep "^VIOLATION" "$OUT" | grep -v "n2 followed evil as the leader of term 9\|n2 followed n1 as the leader of term 7")
[[ -z "$others" ]] || fail "A: unexpected violations (the forger's messages judged?): $others"
grep -q "^adversary: $sent messages announced, $sent heard and left unjudged on the wire; 4 leaders followed checked" "$OUT" ||
    fail "A: summary: $(grep "^adversary:" "$OUT"), want $sent announced and heard, 4 follows"
(( RC_A == 1 )) || fail "observer A exited $RC_A, expected 1 (violations)"
grep -q "^VIOLATION" "$WORK/obsb.log" || fail "B (no --adversary) found nothing to say about the forgeries"
(( RC_B == 1 )) || fail "observer B exited $RC_B, expected 1"
echo "PASS: $sent forged, replayed and malformed messages announced and left unjudged by the adversary-aware observer (the other reports $(grep -c "^VIOLATION" "$WORK/obsb.log") violations); a node following evil, or a member in a term it never led: flagged; a follower before it knew the generation: not"
exit 0
