#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# aetherctl_events.sh: `aetherctl events` (replay and follow of the event
# stream, per-term gap detection) and `aetherctl top` (--once, --frames,
# --json) against a live cluster: one nats-server and three aether-node
# --event-stream processes (tests layer).
#
#   aetherctl_events.sh BUILD_DIR      (or BUILD_DIR/bin/aether-node)
#
# Steps (every wait bounded; lib.sh kills everything in its EXIT trap):
#  1. cluster_up 3 --event-stream; `events` on a cluster without the stream
#     and on a port where nothing listens exit 3; bad --since exits 2;
#  2. `events --json` replays from stream #1: LeaderElected seq 1 first, every
#     event's (term, seq) follows the previous one of its term by exactly 1
#     (checked here, independently), stream sequences 1..N without a hole,
#     summary gaps 0, exit 0; the text form prints the same count;
#     2b. LeaseRenewed (every ttl/4) is on core NATS, not in the stream:
#     `watch --json` sees renewals of the leader (seq 0) while a replay
#     taken after them holds none, and the stream's subjects leave it out;
#     the bootstrap's ShardAssigned is one batch of every shard;
#  3. `events --follow --json` in the background; n4 joins; `events --since
#     K` (K = the first sequence after step 2) starts at #K, holds n4's
#     NodeJoined and a RebalanceCompleted, gap-free; the leader is killed
#     (kill -9): a new term whose events start at seq 1; SIGINT stops the
#     follower with exit 0 and it saw both terms, no gap;
#  4. a deposed leader's late event (RebalanceCompleted), forged with a seq past the old term's
#     last + 1: `events` reports the GAP and exits 1; `--since` that message
#     judges the term only from there (exit 0);
#     top runs beside it (step 3b): its last frame keeps n4's NodeJoined
#     and the kill's NodeFailed and LeaderElected in the membership pane,
#     the shard moves summarised per rebalance, no line over 79 columns;
#  5. `top --once`: leader and term as `status --json` says, a row per node
#     with its status and a bar, the map version, handoffs and lag lines;
#     `top --once --json` agrees with `status --json`; `--frames 2
#     --interval 200` prints 2 frames; an unknown cluster exits 3.
# Takes ~10 s; worst case ~60 s of bounded waits.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_setup aetherctl_events "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
command -v python3 >/dev/null || fail "python3 is needed to check the JSON output"
T0=$(now_ms)

# ctl COMMAND ARGS...: aetherctl COMMAND --nats $CTL_URL --cluster $CTL_CLUSTER
# ARGS... without the tests' AETHER_* variables; stdout $WORK/ctl.out, stderr
# $WORK/ctl.err, status CTL_RC.
ctl() {
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" "$1" --nats "$CTL_URL" --cluster "$CTL_CLUSTER" \
        "${@:2}" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
    CTL_RC=$?
}
expect_rc() {
    [[ "$CTL_RC" == "$1" ]] || fail "$2: exit $CTL_RC, want $1; stderr: $(head -c 600 "$WORK/ctl.err")"
}

# check_events FILE: the JSON lines of `events --json` in FILE: stream
# sequences contiguous, per-term seq +1 each (from stream #1, a term first met
# above every earlier one starts at 1), the
# summary agrees. Prints "events=N first=A last=B terms=T1,T2,...".
check_events() {
    python3 - "$1" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
evs = [l for l in lines if l.get("kind") == "event"]
summ = [l for l in lines if l.get("kind") == "summary"]
other = [l for l in lines if l.get("kind") not in ("event", "summary")]
bad = []
if other: bad.append(f"unexpected lines: {other[:2]}")
for a, b in zip(evs, evs[1:]):
    if b["stream_seq"] != a["stream_seq"] + 1:
        bad.append(f"stream #{a['stream_seq']} then #{b['stream_seq']}")
last, hi = {}, 0
for i, e in enumerate(evs):
    t, s = e["term"], e["seq"]
    if e["message"]["term"] != t or e["message"]["seq"] != s or e["message"]["type"] != e["type"]:
        bad.append(f"#{e['stream_seq']}: envelope disagrees")
    if t in last:
        if s != last[t] + 1: bad.append(f"term {t}: seq {last[t]} then {s} (#{e['stream_seq']})")
    elif t > hi and evs[0]["stream_seq"] == 1 and s != 1:
        bad.append(f"term {t} starts at seq {s} (#{e['stream_seq']})")
    last[t] = max(s, last.get(t, 0)); hi = max(hi, t)
if summ:
    s = summ[-1]
    if s["events"] != len(evs) or s["gaps"] != 0 or s["out_of_order"] != 0 or s["refused"] != 0:
        bad.append(f"summary {s} for {len(evs)} events")
if not evs: bad.append("no events")
if bad:
    print("BAD " + "; ".join(bad[:5])); sys.exit(0)
print(f"events={len(evs)} first={evs[0]['stream_seq']} last={evs[-1]['stream_seq']} "
      f"terms={','.join(str(t) for t in sorted(last))}")
EOF
}

# 1. the cluster; errors before it has what events needs.
cluster_up 3 --event-stream
CTL_URL=$URL
CTL_CLUSTER=nosuch
ctl events
expect_rc 3 "events on a cluster without a stream"
grep -q "event stream 'AETHER_nosuch_EVENTS' does not exist" "$WORK/ctl.err" || fail "no stream: $(cat "$WORK/ctl.err")"
CTL_CLUSTER=$CLUSTER
ctl events --since 0
expect_rc 2 "events --since 0"
CTL_URL="nats://127.0.0.1:$(free_port)"
ctl events --timeout 1000
expect_rc 3 "events where nothing listens"
CTL_URL=$URL

# 2. the whole stream.
ctl events --json
expect_rc 0 "events --json"
cp "$WORK/ctl.out" "$WORK/replay1.json"
r1=$(check_events "$WORK/replay1.json")
[[ "$r1" == events=* ]] || fail "events --json: $r1"
[[ "$r1" == *" first=1 "* ]] || fail "the replay does not start at #1: $r1"
head -n 1 "$WORK/replay1.json" | grep -q '"type":"LeaderElected","term":[0-9]*,"seq":1,' ||
    fail "the first event is not LeaderElected seq 1: $(head -c 300 "$WORK/replay1.json")"
last1=$(sed -n 's/.* last=\([0-9]*\) .*/\1/p' <<<"$r1")
ctl events
expect_rc 0 "events (text)"
grep -q "^#1 .* LeaderElected term=[0-9]* seq=1 " "$WORK/ctl.out" || fail "text replay: $(head -n 2 "$WORK/ctl.out")"
grep -q " 0 gaps (0 missing), 0 out of order, 0 refused" "$WORK/ctl.err" || fail "text summary: $(cat "$WORK/ctl.err")"
echo "events: replay $r1"

# 2b. renewals: heard on core NATS, never stored.
ctl watch --count 8 --json --duration 10
expect_rc 0 "watch --count 8"
renewals=$(grep -c '"type":"LeaseRenewed"' "$WORK/ctl.out")
(( renewals >= 2 )) || fail "watch saw $renewals LeaseRenewed in 8 messages: $(head -c 600 "$WORK/ctl.out")"
grep '"type":"LeaseRenewed"' "$WORK/ctl.out" | grep -vq '"seq":0[,}]' &&
    fail "a LeaseRenewed with a seq other than 0: $(grep -m1 '"type":"LeaseRenewed"' "$WORK/ctl.out")"
ctl events --json
expect_rc 0 "events --json after the renewals"
r1b=$(check_events "$WORK/ctl.out")
[[ "$r1b" == events=* ]] || fail "events --json after the renewals: $r1b"
grep -q '"type":"LeaseRenewed"' "$WORK/ctl.out" && fail "the stream holds a LeaseRenewed: $(grep -m1 LeaseRenewed "$WORK/ctl.out")"
why=$(python3 - "$WORK/ctl.out" "$SHARDS" <<'EOF2'
import json, sys
evs = [e for e in map(json.loads, open(sys.argv[1])) if e.get("kind") == "event"]
assigned = [e for e in evs if e["type"] == "ShardAssigned"]
shards = [x["shard"] for e in assigned for x in e["message"]["data"]["shards"]]
want = int(sys.argv[2])
bad = []
if sorted(shards) != list(range(want)): bad.append(f"ShardAssigned names {len(shards)} shards, {len(set(shards))} distinct, want 0..{want - 1} once")
if len(assigned) != (want + 1023) // 1024: bad.append(f"{len(assigned)} ShardAssigned events for {want} shards")
if any(len(e["message"]["data"]["shards"]) > 1024 for e in assigned): bad.append("a batch over 1024")
print("; ".join(bad))
EOF2
)
[[ -z "$why" ]] || fail "the bootstrap's ShardAssigned: $why"
subjects=$(python3 - "${SRV_PORT[nats]}" "$CLUSTER" <<'EOF2'
import json, socket, sys
port, cluster = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.si 1\r\n' +
          f"PUB $JS.API.STREAM.INFO.AETHER_{cluster}_EVENTS _INBOX.si 0\r\n\r\n".encode())
buf = b""
while True:
    chunk = s.recv(65536)
    if not chunk: sys.exit(1)
    buf += chunk
    if b"MSG _INBOX.si" in buf:
        head, _, rest = buf.partition(b"MSG _INBOX.si")
        line, _, body = rest.partition(b"\r\n")
        n = int(line.split()[-1])
        if len(body) >= n:
            print(" ".join(json.loads(body[:n])["config"]["subjects"])); break
EOF2
) || fail "could not read the stream's subjects"
[[ "$subjects" == *".evt.ShardAssigned"* && "$subjects" != *"LeaseRenewed"* && "$subjects" != *'>'* ]] ||
    fail "the stream's subjects: $subjects"
echo "events: $renewals LeaseRenewed seen by watch (seq 0), none in the stream ($r1b); subjects: $(wc -w <<<"$subjects") event types"

# 3. follow across a join and a leader kill; --since.
bg_start follow env -u AETHER_NATS_SERVER -u AETHER_KEEP_LOGS "$CTL_BIN" events --follow --json \
    --nats "$URL" --cluster "$CLUSTER"
wait_for 5000 grep -q '"kind":"event"' "$WORK/follow.log" || fail "events --follow printed nothing within 5 s"
# top across the same join and kill (plain frames, not a terminal): its
# membership pane must keep n4's NodeJoined and the kill's NodeFailed and
# LeaderElected however many shard events follow (step 3b below).
bg_start top env -u AETHER_NATS_SERVER -u AETHER_KEEP_LOGS "$CTL_BIN" top --frames 600 --interval 100 \
    --nats "$URL" --cluster "$CLUSTER"
K=$(( last1 + 1 ))
node_start n4 "$URL" --event-stream
NODES+=(n4)
wait_settled 15000 "$WORK/map.join" "${NODES[@]}"
LEADER=$LEADER_NOW # a loaded machine may have changed leaders meanwhile
ctl events --since "$K" --json
expect_rc 0 "events --since $K"
r2=$(check_events "$WORK/ctl.out")
[[ "$r2" == events=*" first=$K "* ]] || fail "events --since $K: $r2"
grep -q '"type":"NodeJoined".*"data":{"node":"n4"' "$WORK/ctl.out" || fail "--since $K: no NodeJoined of n4"
grep -q '"type":"RebalanceCompleted"' "$WORK/ctl.out" || fail "--since $K: no RebalanceCompleted"
echo "events: --since $K: $r2"
old=$LEADER
old_term=$(leader_term "$old")
node_kill "$old"
mapfile -t NODES < <(others "$old")
wait_settled 15000 "$WORK/map.kill" "${NODES[@]}"
LEADER=$LEADER_NOW
new_term=$(leader_term "$LEADER")
(( new_term > old_term )) || fail "no new term after the kill ($old_term -> $new_term)"
wait_for 5000 grep -q "\"type\":\"LeaderElected\",\"term\":$new_term,\"seq\":1," "$WORK/follow.log" ||
    fail "the follower did not see term $new_term's LeaderElected seq 1"
kill -INT "${BG_PID[follow]}"
bg_stop follow 5000
[[ "$BG_RC" == 0 ]] || fail "events --follow exited $BG_RC after SIGINT"
r3=$(check_events "$WORK/follow.log")
[[ "$r3" == *"terms="*"$old_term"*"$new_term"* ]] || fail "events --follow: $r3"
echo "events: --follow across the kill of $old (term $old_term -> $new_term): $r3"

# 3b. top's last frame after the join and the kill: membership apart from
# shard moves (issue 18), moves summarised per rebalance, no line cut
# wider than the 80-column default.
sleep 0.3 # one more frame after the settled map
bg_stop top 5000
why=$(python3 - "$WORK/top.log" "$old" "$new_term" <<'EOF2'
import re, sys
text = open(sys.argv[1]).read(); old = sys.argv[2]; term = sys.argv[3]
frames = [f for f in re.split(r"\n(?=aether top - )", text) if f.startswith("aether top - ")]
if not frames: print("no frame"); sys.exit()
last = frames[-1].rstrip("\n").split("\n")
bad = []
try:
    m = last.index(next(l for l in last if l.startswith("membership and leadership")))
    r = last.index("shard moves, per rebalance")
except (StopIteration, ValueError):
    print("no membership or shard-moves pane in the last frame: " + " | ".join(last[-8:])); sys.exit()
members, moves = last[m + 1:r], last[r + 1:]
if not any("NodeJoined" in l and "node=n4" in l for l in members): bad.append("n4's NodeJoined gone")
if not any("NodeFailed" in l and f"node={old} " in l + " " for l in members): bad.append(f"no NodeFailed of {old}")
if not any("LeaderElected" in l and f"term={term} " in l for l in members): bad.append(f"no LeaderElected of term {term}")
if any("Shard" in l for l in members + moves): bad.append("a per-shard event line")
if not any(re.search(r"v\d+: \d+ moved \(\d+ handoff \d+ failover \d+ assigned\) \d+ ms", l) for l in moves):
    bad.append("no per-rebalance summary")
if any(len(l) > 79 for l in last): bad.append("a line wider than 79 columns")
print("; ".join(bad) + (" (last frame: " + " | ".join(last[m:]) + ")" if bad else ""))
EOF2
)
[[ -z "$why" ]] || fail "top across the join and the kill: $why"
echo "top: across the join and the kill, membership kept apart ($(grep -c '^aether top - ' "$WORK/top.log") frames)"

# 4. a deposed leader's late event with a seq past its term's end: a gap.
ctl events --json
old_last=$(python3 -c '
import json, sys
print(max(e["seq"] for e in map(json.loads, open(sys.argv[1])) if e.get("kind") == "event" and e["term"] == int(sys.argv[2])))' \
    "$WORK/ctl.out" "$old_term") || fail "no event of term $old_term in the stream"
forged=$(( old_last + 3 ))
python3 - "${SRV_PORT[nats]}" "$CLUSTER" "$old" "$old_term" "$forged" <<'EOF' || fail "could not publish the forged event"
import json, socket, sys, time
port, cluster, node, term, seq = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = json.dumps({"v": 1, "type": "RebalanceCompleted", "cluster": cluster, "term": term, "seq": seq,
                   "node": node, "ts": int(time.time() * 1000),
                   "data": {"map_version": 1, "moved": 0, "duration_ms": 1}},
                  separators=(",", ":")).encode()
s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
s.recv(4096)  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' +
          f"PUB aether.{cluster}.evt.RebalanceCompleted {len(body)}\r\n".encode() + body + b"\r\nPING\r\n")
buf = b""
while b"PONG" not in buf:
    chunk = s.recv(4096)
    if not chunk: sys.exit(1)
    buf += chunk
EOF
ctl events
expect_rc 1 "events over a stream with a gap"
grep -q "^GAP before #[0-9]*: term $old_term seq $(( old_last + 1 ))\.\.$(( old_last + 2 )) missing (2 events)" "$WORK/ctl.out" ||
    fail "no GAP line for term $old_term seq $(( old_last + 1 ))..$(( old_last + 2 )): $(grep -m3 GAP "$WORK/ctl.out")"
grep -q " 1 gaps (2 missing)" "$WORK/ctl.err" || fail "gap summary: $(cat "$WORK/ctl.err")"
fseq=$(sed -n "s/^#\([0-9]*\) .* RebalanceCompleted term=$old_term seq=$forged .*/\1/p" "$WORK/ctl.out")
[[ -n "$fseq" ]] || fail "the forged event is not in the replay"
ctl events --since "$fseq"
expect_rc 0 "events --since the forged event"
echo "events: the forged late event (term $old_term seq $forged at #$fseq) is reported as a gap; --since it is clean"

# 5. top.
ctl status --json
expect_rc 0 "status --json"
cp "$WORK/ctl.out" "$WORK/status.json"
ctl top --once
expect_rc 0 "top --once"
cp "$WORK/ctl.out" "$WORK/top.txt"
why=$(python3 - "$WORK/status.json" "$WORK/top.txt" <<'EOF'
import json, re, sys
st = json.load(open(sys.argv[1])); lines = open(sys.argv[2]).read().split("\n")
bad = []
if any(len(l) > 79 for l in lines): bad.append("a line is wider than 79 columns")
if "\x1b" in "".join(lines): bad.append("escape sequences in plain output")
if not any(re.match(rf"leader +{st['leader']['node']} +term {st['leader']['term']} ", l) for l in lines):
    bad.append("no leader line for " + st["leader"]["node"])
if not any(re.match(rf"map +v{st['map']['version']} .*handoffs in flight \d+", l) for l in lines):
    bad.append("no map line")
if not any(l.startswith("lag ") for l in lines): bad.append("no lag line")
if not any(l.startswith("rebalance ") for l in lines): bad.append("no rebalance line")
for n in st["nodes"]:
    if n["status"] not in ("active", "draining"): continue
    if not any(re.match(rf"{re.escape(n['id'])} +{n['status']} +(leader|-) +{n['primaries']} .*#", l) for l in lines):
        bad.append(f"no row for {n['id']} ({n['status']}, {n['primaries']} primaries, with a bar)")
print("; ".join(bad))
EOF
)
[[ -z "$why" ]] || fail "top --once: $why; output: $(cat "$WORK/top.txt")"
ctl top --once --json
expect_rc 0 "top --once --json"
why=$(python3 - "$WORK/status.json" "$WORK/ctl.out" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1])); top = json.loads(open(sys.argv[2]).read())
bad = []
if top["leader"]["node"] != st["leader"]["node"] or top["leader"]["term"] != st["leader"]["term"]: bad.append("leader")
if top["map"]["version"] != st["map"]["version"]: bad.append("map version")
if top["rebalances"]["source"] != "stream" or top["rebalances"]["completed"] < 1: bad.append(f"rebalances {top['rebalances']}")
if top["map_version_lag"] not in (0, None): bad.append(f"lag {top['map_version_lag']}")
want = sorted((n["id"], n["primaries"]) for n in st["nodes"] if n["status"] in ("active", "draining"))
have = sorted((n["id"], n["primaries"]) for n in top["nodes"] if n["status"] in ("active", "draining"))
if want != have: bad.append(f"nodes {have} != {want}")
print("; ".join(bad))
EOF
)
[[ -z "$why" ]] || fail "top --once --json disagrees with status --json: $why"
t_top=$(now_ms)
ctl top --frames 2 --interval 200
expect_rc 0 "top --frames 2"
[[ $(grep -c "^aether top - cluster '$CLUSTER'" "$WORK/ctl.out") == 2 ]] || fail "top --frames 2 printed $(grep -c '^aether top' "$WORK/ctl.out") frames"
echo "top: --once (text, json) agree with status; --frames 2 in $(( $(now_ms) - t_top )) ms"
CTL_CLUSTER=nosuch
ctl top --once
expect_rc 3 "top on an unknown cluster"

final_checks n1 n2 n3 n4
echo "PASS: aetherctl_events ($(( $(now_ms) - T0 )) ms)"
