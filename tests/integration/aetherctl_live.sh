#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# aetherctl_live.sh: every live aetherctl command against a real cluster -
# one nats-server (-js, temporary store, free loopback port) and three
# aether-node processes (--shards 64) - checking text and --json output and
# exit codes (tests layer).
#
#   aetherctl_live.sh BUILD_DIR      (or BUILD_DIR/bin/aether-node)
#
# Steps (every wait bounded; lib.sh kills everything in its EXIT trap):
#  1. usage errors exit 2; a port where nothing listens exits 3 for every
#     live command, naming the servers and the cluster;
#  2. cluster_up 3 (lib.sh: one leader, a balanced stable map, seen by
#     nats_probe); a second, empty nats-server and an unknown cluster name
#     exit 3 naming the missing bucket; a token server refuses a wrong
#     token (exit 3, "refused the credentials") and admits the right one;
#  3. status (text, --json; settings from flags, environment and --config,
#     flags beating the environment): the leader nats_probe sees, three
#     active nodes, 64 shards in all;
#  4. shards: counts sum to 64, balanced, --node ranges expand to the node's
#     primaries;
#  5. lookup: for 20 keys the shard equals `aetherctl shard-of --shards 64`
#     and the owner equals nats_probe's map; --shard too;
#  6. plan (live): no change for the settled cluster; --add n4 moves the
#     theoretical minimum; bad --add/--remove exit 2;
#  7. watch (text and --json in the background; --count alone): drain a
#     follower with --wait -> accepted, Left, owns nothing; the watchers saw
#     NodeDraining, NodeLeft and a map; forged messages are printed as
#     refused; SIGTERM stops them with exit 0; a second drain is rejected
#     (exit 1), an unknown node too;
#  8. every node killed: drain exits 3 after --timeout ("no leader answered");
#     status exits 3 once the lease is free (leader none, the map still
#     printed); lookup of a key whose owner is gone exits 1 ("serving no").
# No node may report a VIOLATION. Exit 0 on success, 1 with the reason.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

it_setup aetherctl_live "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
command -v python3 >/dev/null || fail "python3 is needed to check the JSON output"

# ctl ARGS...: aetherctl without the tests' AETHER_* variables (it refuses
# unknown ones, as aether-node does), stdout in $WORK/ctl.out, stderr in
# $WORK/ctl.err, exit status in CTL_RC; bounded by `timeout` as a backstop
# (every command bounds itself with --timeout).
CTL_ENV=()
ctl() {
    it_clean_env
    env "${CLEAN_ENV[@]}" "${CTL_ENV[@]}" timeout -s KILL 60 "$CTL_BIN" "$@" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
    CTL_RC=$?
    CTL_ENV=()
}

# expect_rc WANT WHAT: fails unless the last ctl exited WANT.
expect_rc() {
    [[ "$CTL_RC" -eq "$1" ]] ||
        fail "$2: exit $CTL_RC, want $1; stdout: $(head -c 600 "$WORK/ctl.out"); stderr: $(head -c 600 "$WORK/ctl.err")"
}

# jcheck WHAT PYTHON-EXPR: evaluates the expression with d = the JSON
# document in $WORK/ctl.out (must be exactly one line); fails unless true.
jcheck() {
    local what=$1 expr=$2 out
    out=$(python3 - "$WORK/ctl.out" "$expr" 2>&1 <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
if len(lines) != 1:
    print("expected one line of JSON, got %d" % len(lines)); sys.exit(1)
d = json.loads(lines[0])
ok = eval(sys.argv[2], {"d": d})
if not ok:
    print("false for: " + lines[0][:800]); sys.exit(1)
EOF
    ) || fail "$what: $out"
}

grep_out() { # WHAT ERE: stdout of the last ctl matches
    grep -qE -- "$2" "$WORK/ctl.out" || fail "$1: stdout does not match /$2/: $(head -c 800 "$WORK/ctl.out")"
}

grep_err() { # WHAT ERE: stderr of the last ctl matches
    grep -qE -- "$2" "$WORK/ctl.err" || fail "$1: stderr does not match /$2/: $(head -c 800 "$WORK/ctl.err")"
}

# pub SUBJECT PAYLOAD: publishes raw bytes with the NATS text protocol (a
# forger needs no client library), then PINGs and reads the PONG so the
# message has reached the server before we go on.
pub() {
    local port=$1 subj=$2 payload=$3
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'CONNECT {"verbose":false,"pedantic":false}\r\nPUB %s %d\r\n%s\r\nPING\r\n' \
            "$subj" "${#payload}" "$payload" >&3
        timeout 2 grep -qm1 PONG <&3
    ) || fail "could not publish on $subj"
}

# ---- 1. usage and nothing listening --------------------------------------------
ctl status --no-such-flag
expect_rc 2 "status --no-such-flag"
ctl lookup
expect_rc 2 "lookup without a key"
ctl drain 'bad id!'
expect_rc 2 "drain of an invalid node id"
ctl status --timeout 0
expect_rc 2 "status --timeout 0"
ctl watch --count 0
expect_rc 2 "watch --count 0"
ctl plan --nodes a,b --add c
expect_rc 2 "plan --nodes with --add"
ctl plan --nodes a,b,c --shards 16 --json
expect_rc 0 "offline plan"
jcheck "offline plan --json is a map" 'd["version"] == 1 and d["shard_count"] == 16 and len(d["shards"]) == 16'

DEAD_PORT=$(free_port) || fail "no free port"
DEAD_URL="nats://127.0.0.1:$DEAD_PORT"
for cmd in status shards "lookup k" "drain n1" plan "watch --count 1"; do
    t0=$(now_ms)
    # shellcheck disable=SC2086 # cmd holds the command and its argument
    ctl $cmd --nats "$DEAD_URL" --cluster dead --timeout 1500
    expect_rc 3 "$cmd against $DEAD_URL"
    grep_err "$cmd against $DEAD_URL" "no cluster answers \(cluster 'dead', servers $DEAD_URL\)"
    (( $(now_ms) - t0 < 10000 )) || fail "$cmd against $DEAD_URL took $(( $(now_ms) - t0 )) ms"
done
echo "usage errors exit 2; nothing listening on $DEAD_PORT: exit 3 for every command"

# ---- 2. the cluster; a server without the buckets --------------------------------
cluster_up 3
server_start empty
EMPTY_URL=$(server_url empty)
for cmd in status shards "lookup k" "drain n1" plan; do
    # shellcheck disable=SC2086
    ctl $cmd --nats "$EMPTY_URL" --cluster "$CLUSTER" --timeout 3000
    expect_rc 3 "$cmd against the empty server"
    grep_err "$cmd against the empty server" "KV bucket 'aether_${CLUSTER}_state' does not exist"
    grep_err "$cmd against the empty server" "servers $EMPTY_URL"
done
ctl status --nats "$URL" --cluster "no${CLUSTER}" --json
expect_rc 3 "status of an unknown cluster"
grep_err "status of an unknown cluster" "cluster 'no${CLUSTER}'"
echo "empty server and unknown cluster: exit 3 naming the bucket"
# Auth passes through settings.h and nats_conn.h: a wrong token is refused
# (exit 3, saying so), the right one gets as far as the (missing) bucket.
server_start auth --auth s3cret
AUTH_URL=$(server_url auth)
ctl status --nats "$AUTH_URL" --nats-token wrong --timeout 3000
expect_rc 3 "status with a wrong token"
grep_err "status with a wrong token" "refused the credentials \(token\)"
ctl status --nats "$AUTH_URL" --nats-token s3cret --cluster "$CLUSTER" --timeout 3000
expect_rc 3 "status with the right token on a server without buckets"
grep_err "status with the right token" "KV bucket 'aether_${CLUSTER}_state' does not exist"
ctl status --nats "$AUTH_URL" --nats-token s3cret --nats-user someone
expect_rc 2 "a token together with a user"
server_stop auth
echo "token auth: a wrong token is refused (exit 3), the right one reaches the server"

# ---- 3. status ------------------------------------------------------------------
"$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" lease >"$WORK/lease.txt" 2>>"$WORK/probe.err" ||
    fail "nats_probe lease failed"
PROBE_LEADER=$(sed -n 's/^lease leader=\([^ ]*\) .*/\1/p' "$WORK/lease.txt")
PROBE_TERM=$(sed -n 's/.* term=\([0-9]*\) .*/\1/p' "$WORK/lease.txt")
[[ "$PROBE_LEADER" == "$LEADER" ]] || fail "nats_probe sees leader '$PROBE_LEADER', the logs '$LEADER'"

ctl status --nats "$URL" --cluster "$CLUSTER"
expect_rc 0 "status"
grep_out "status: leader line" "^leader +$LEADER, term $PROBE_TERM \(lease renewed -?[0-9]+ ms ago, expires in -?[0-9]+ ms; ttl 1000 ms\)"
grep_out "status: map line" "^map +version [0-9]+, term [0-9]+, 64 shards, replication 1, 0 moving"
grep_out "status: topology line" "^topology +version [0-9]+, 3 nodes: 3 active, 0 draining, 0 left, 0 failed"
for n in "${NODES[@]}"; do
    grep_out "status: row of $n" "^$n +active "
done
grep_out "status: the leader's row" "^$LEADER +active +leader "

ctl status --nats "$URL" --cluster "$CLUSTER" --json
expect_rc 0 "status --json"
jcheck "status --json" "d['cluster'] == '$CLUSTER' and d['leader']['node'] == '$LEADER' and d['leader']['term'] == $PROBE_TERM \
 and not d['leader']['establishing'] and d['leader']['ttl_ms'] == 1000 and d['map']['shard_count'] == 64 \
 and d['map']['moving'] == 0 and [n['id'] for n in d['nodes']] == ['n1', 'n2', 'n3'] \
 and all(n['status'] == 'active' for n in d['nodes']) and sum(n['primaries'] for n in d['nodes']) == 64 \
 and [n['id'] for n in d['nodes'] if n['leader']] == ['$LEADER'] and d['recorded_term'] >= $PROBE_TERM"

# The same through the environment, through a file, and a flag beating the environment.
CTL_ENV=(AETHER_NATS_URLS="$URL" AETHER_CLUSTER="$CLUSTER")
ctl status --json
expect_rc 0 "status with AETHER_NATS_URLS and AETHER_CLUSTER"
jcheck "status from the environment" "d['cluster'] == '$CLUSTER' and len(d['nodes']) == 3"
CTL_ENV=(AETHER_CLUSTER="no${CLUSTER}")
ctl status --nats "$URL" --cluster "$CLUSTER" --json
expect_rc 0 "--cluster beating AETHER_CLUSTER"
CTL_ENV=(AETHER_CLUSTER="no${CLUSTER}")
ctl status --nats "$URL" --json
expect_rc 3 "AETHER_CLUSTER naming an unknown cluster"
printf '[cluster]\ncluster = %s\n[nats]\nurls = %s\n' "$CLUSTER" "$URL" >"$WORK/ctl.ini"
ctl status --config "$WORK/ctl.ini" --json
expect_rc 0 "status --config"
jcheck "status from --config" "d['cluster'] == '$CLUSTER' and d['leader']['node'] == '$LEADER'"
CTL_ENV=(AETHER_NO_SUCH_SETTING=1)
ctl status --nats "$URL" --cluster "$CLUSTER"
expect_rc 2 "an unknown AETHER_ variable"
echo "status: leader $LEADER term $PROBE_TERM, 3 active nodes (flags, environment, --config)"

C=(--nats "$URL" --cluster "$CLUSTER")

# ---- 4. shards ------------------------------------------------------------------
ctl shards "${C[@]}"
expect_rc 0 "shards"
grep_out "shards: header" "^cluster '$CLUSTER': map version [0-9]+, term [0-9]+, 64 shards, replication 1, 0 moving"
grep_out "shards: balance" "^balance \(active nodes\): primaries 21\.\.22 per node"
for n in "${NODES[@]}"; do
    grep_out "shards: row of $n" "^$n +active +2[12] +0 +0 +0 +#{21,22}$"
done
ctl shards "${C[@]}" --json
expect_rc 0 "shards --json"
jcheck "shards --json" "sum(n['primaries'] for n in d['nodes']) == 64 and d['balance']['primaries_max'] - d['balance']['primaries_min'] <= 1 \
 and d['moves'] == [] and len(d['nodes']) == 3"
ctl shards "${C[@]}" --node n2 --json
expect_rc 0 "shards --node n2 --json"
jcheck "shards --node ranges" "len(d['nodes']) == 1 and d['nodes'][0]['id'] == 'n2' and \
 sum((int(r.split('-')[1]) - int(r.split('-')[0]) + 1) if '-' in r else 1 for r in d['nodes'][0]['primary_shards'].split(',')) == d['nodes'][0]['primaries']"
ctl shards "${C[@]}" --node nobody
expect_rc 1 "shards --node of an unknown node"
echo "shards: 64 primaries, balanced"

# ---- 5. lookup --------------------------------------------------------------------
probe_map "$WORK/map.now" || fail "nats_probe map failed"
PROBE_VERSION=$(map_version "$WORK/map.now")
for i in $(seq 1 20); do
    key="user-$i-$RANDOM"
    SHARD=$("$CTL_BIN" shard-of --shards 64 -- "$key") || fail "shard-of $key"
    OWNER=$(awk -v s="$SHARD" '$1 == "shard" && $2 == s { split($3, o, ","); print o[1] }' "$WORK/map.now")
    ctl lookup "${C[@]}" --json -- "$key"
    expect_rc 0 "lookup $key"
    jcheck "lookup $key" "d['key'] == '$key' and d['shard'] == $SHARD and d['shard_count'] == 64 and d['primary'] == '$OWNER' \
 and d['owners'] == ['$OWNER'] and d['owner_status'] == ['active'] and d['map_version'] == $PROBE_VERSION \
 and d['state'] == 'stable' and d['moving'] is False and d['to'] is None and d['serving'] is True \
 and d['not_serving'] is None"
done
ctl lookup "${C[@]}" -- "$key"
expect_rc 0 "lookup (text)"
grep_out "lookup text: shard" "^shard +$SHARD of 64 \(map version $PROBE_VERSION, term [0-9]+\)"
grep_out "lookup text: owners" "^owners +$OWNER \(primary, active\)"
grep_out "lookup text: state" "^state +stable"
ctl lookup "${C[@]}" --shard 7 --json
expect_rc 0 "lookup --shard 7"
OWNER7=$(awk '$1 == "shard" && $2 == 7 { split($3, o, ","); print o[1] }' "$WORK/map.now")
jcheck "lookup --shard 7" "d['shard'] == 7 and d['key'] is None and d['primary'] == '$OWNER7'"
ctl lookup "${C[@]}" --shard 64
expect_rc 2 "lookup --shard beyond the map"
echo "lookup: 20 keys agree with shard-of and nats_probe's map v$PROBE_VERSION"

# ---- 6. plan (live) -----------------------------------------------------------------
ctl plan "${C[@]}"
expect_rc 0 "plan (live)"
grep_out "plan: header" "^live plan for cluster '$CLUSTER'"
grep_out "plan: no change" "^no change: the current map is what the strategy wants"
ctl plan "${C[@]}" --json
expect_rc 0 "plan --json (live)"
jcheck "plan --json (live)" "d['live'] and d['unchanged'] and d['primaries_moved'] == 0 and d['from_version'] == $PROBE_VERSION \
 and d['map']['shard_count'] == 64"
ctl plan "${C[@]}" --add n4 --json
expect_rc 0 "plan --add n4"
jcheck "plan --add n4" "d['changes']['add'] == ['n4'] and d['eligible'] == 4 and d['primaries_moved'] == d['primaries_min'] == 16 \
 and all(m['to'] == 'n4' for m in d['moves']) and not d['unchanged']"
ctl plan "${C[@]}" --add n4 --remove n1
expect_rc 0 "plan --add n4 --remove n1"
grep_out "plan text: assumptions" "^assuming: \+n4, -n1"
ctl plan "${C[@]}" --add n1
expect_rc 2 "plan --add of a node already in the cluster"
ctl plan "${C[@]}" --remove n9
expect_rc 2 "plan --remove of an unknown node"
echo "plan (live): no change when settled; --add n4 moves the minimum (16)"

# ---- 7. watch and drain -----------------------------------------------------------------
WATCH_ENV=()
for v in ${!AETHER_@}; do
    case $v in AETHER_LOG_LEVEL | AETHER_LOG_FORMAT) ;; *) WATCH_ENV+=(-u "$v") ;; esac
done
bg_start watch_text env "${WATCH_ENV[@]}" "$CTL_BIN" watch "${C[@]}" --duration 60
bg_start watch_json env "${WATCH_ENV[@]}" "$CTL_BIN" watch "${C[@]}" --duration 60 --json
wait_log 5000 "$WORK/watch_text.log" "^aetherctl: watching cluster '$CLUSTER'" || fail "the text watcher did not start"
wait_log 5000 "$WORK/watch_json.log" '"kind":"event"' || fail "the JSON watcher printed no event within 5 s"

# --count alone ends the command (LeaseRenewed arrives every ttl/4).
t0=$(now_ms)
ctl watch "${C[@]}" --count 3 --json
expect_rc 0 "watch --count 3"
[[ $(wc -l <"$WORK/ctl.out") -eq 3 ]] || fail "watch --count 3 printed $(wc -l <"$WORK/ctl.out") lines"
(( $(now_ms) - t0 < 10000 )) || fail "watch --count 3 took $(( $(now_ms) - t0 )) ms"

VICTIM=""
for n in "${NODES[@]}"; do
    [[ "$n" != "$LEADER" ]] && { VICTIM=$n; break; }
done
t0=$(now_ms)
ctl drain "${C[@]}" "$VICTIM" --wait --json --timeout 20000
expect_rc 0 "drain $VICTIM --wait"
jcheck "drain --json" "d['node'] == '$VICTIM' and d['verdict'] == 'accepted' and d['status'] == 'OK' and d['leader'] == '$LEADER' \
 and d['wait']['ok'] and d['wait']['final_status'] == 'left'"
echo "drain $VICTIM: accepted, left after $(( $(now_ms) - t0 )) ms"

ctl status "${C[@]}" --json
expect_rc 0 "status after the drain"
jcheck "status after the drain" "[(n['id'], n['status'], n['primaries']) for n in d['nodes'] if n['id'] == '$VICTIM'] == [('$VICTIM', 'left', 0)] \
 and sum(n['primaries'] for n in d['nodes']) == 64 and d['map']['moving'] == 0"
ctl shards "${C[@]}" --json
expect_rc 0 "shards after the drain"
jcheck "shards after the drain" "'$VICTIM' not in [n['id'] for n in d['nodes']] and sum(n['primaries'] for n in d['nodes']) == 64 \
 and d['balance']['primaries_min'] == d['balance']['primaries_max'] == 32"

ctl drain "${C[@]}" "$VICTIM"
expect_rc 1 "a second drain of $VICTIM"
grep_out "second drain" "^drain $VICTIM: rejected by the leader: ESTATE: $VICTIM already left"
ctl drain "${C[@]}" nosuchnode --json
expect_rc 1 "drain of an unknown node"
jcheck "drain of an unknown node" "d['verdict'] == 'rejected' and d['status'] == 'ENOTFOUND'"

# Forged and malformed messages: printed as refused, the watchers go on.
pub "${SRV_PORT[nats]}" "aether.$CLUSTER.evt.NodeJoined" '{"v":1,"type":"NodeJoined"'
pub "${SRV_PORT[nats]}" "aether.$CLUSTER.map" '[1,2,3]'
pub "${SRV_PORT[nats]}" "aether.$CLUSTER.evt.NodeLeft" '{"v":1,"type":"NodeLeft","cluster":"other","term":1,"seq":1,"node":"n1","ts":1,"data":{"node":"n1"}}'
wait_log 5000 "$WORK/watch_json.log" '"kind":"refused".*"subject":"aether\.'"$CLUSTER"'\.map"|"subject":"aether\.'"$CLUSTER"'\.map","kind":"refused"' ||
    fail "the JSON watcher did not report the malformed map as refused"
wait_log 5000 "$WORK/watch_text.log" "REFUSED aether\.$CLUSTER\.evt\.NodeLeft .*cluster" ||
    fail "the text watcher did not report the wrong-cluster event as refused"
sleep 0.3 # one more LeaseRenewed: still watching after the refusals
bg_stop watch_text 3000
[[ "$BG_RC" -eq 0 ]] || fail "text watch exited $BG_RC after SIGTERM (want 0)"
bg_stop watch_json 3000
[[ "$BG_RC" -eq 0 ]] || fail "JSON watch exited $BG_RC after SIGTERM (want 0)"
grep -qE " NodeDraining term=[0-9]+ seq=[0-9]+ node=$LEADER node=$VICTIM$" "$WORK/watch_text.log" ||
    fail "the text watcher did not see NodeDraining $VICTIM"
grep -qE " NodeLeft term=[0-9]+ seq=[0-9]+ node=$LEADER node=$VICTIM$" "$WORK/watch_text.log" ||
    fail "the text watcher did not see NodeLeft $VICTIM"
grep -qE " map version=[0-9]+ term=[0-9]+ shards=64 replication=1 nodes=2 moving=0$" "$WORK/watch_text.log" ||
    fail "the text watcher did not see the final map"
grep -qE "^aetherctl: [0-9]+ events, [0-9]+ maps, 0 other messages, 3 refused$" "$WORK/watch_text.log" ||
    fail "the text watcher's summary: $(tail -n 1 "$WORK/watch_text.log")"
python3 - "$WORK/watch_json.log" "$VICTIM" <<'EOF' || fail "the JSON watcher's lines"
import json, sys
events, maps, refused = [], [], []
for line in open(sys.argv[1]):
    o = json.loads(line)  # every line is one JSON object
    if o["kind"] == "event":
        assert o["message"]["type"] == o["type"] and o["subject"].endswith(".evt." + o["type"])
        events.append((o["type"], o["message"]["data"].get("node")))
    elif o["kind"] == "map":
        maps.append(o)
    elif o["kind"] == "refused":
        refused.append(o)
v = sys.argv[2]
assert ("NodeDraining", v) in events and ("NodeLeft", v) in events, events[-10:]
assert any(m["nodes"] == 2 and m["moving"] == 0 for m in maps), maps
assert len(refused) == 3, refused
EOF
echo "watch: saw NodeDraining/NodeLeft $VICTIM and the maps; 3 forged messages refused; SIGTERM exits 0"
no_violation

# ---- 8. no leader -----------------------------------------------------------------------
for n in "${NODES[@]}"; do
    node_kill "$n"
done
t0=$(now_ms)
ctl drain "${C[@]}" n1 --timeout 2000
expect_rc 3 "drain with no node running"
grep_err "drain with no node running" "no leader answered aether\.$CLUSTER\.cmd\.LeaveCluster within 2000 ms"
took=$(( $(now_ms) - t0 ))
(( took >= 1900 && took < 8000 )) || fail "drain with no leader took $took ms (want about 2000)"
echo "no leader: drain exits 3 after $took ms"

# status exits 3 once no leader holds the lease (the lease bucket's TTL
# deletes the dead leader's value within about lease_ttl_ms), after printing
# what the buckets still hold; lookup then names an owner that is not
# serving and exits 1.
deadline=$(( $(now_ms) + 8000 ))
while :; do
    ctl status "${C[@]}" --timeout 3000
    [[ "$CTL_RC" -ne 0 ]] && break
    (( $(now_ms) < deadline )) || fail "status still exits 0 8 s after every node was killed: $(head -c 600 "$WORK/ctl.out")"
    sleep 0.2
done
expect_rc 3 "status with every node down"
grep_out "status with every node down: leader line" "^leader +none \(the lease is free"
grep_out "status with every node down: the map is still printed" "^map +version [0-9]+, term [0-9]+, 64 shards"
grep_err "status with every node down" "no leader holds the lease \(bucket 'aether_${CLUSTER}_lease' key 'leader' is empty"
ctl status "${C[@]}" --json --timeout 3000
expect_rc 3 "status --json with every node down"
jcheck "status --json with every node down" "d['leader'] is None and d['map']['shard_count'] == 64"
ctl lookup "${C[@]}" -- "$key"
expect_rc 1 "lookup with every node down"
grep_out "lookup with every node down: owners" "^owners +n[0-9] \(primary, active\)"
grep_out "lookup with every node down: serving" "^serving +no: no leader holds the lease"
grep_err "lookup with every node down" "shard $SHARD is not served: no leader holds the lease"
ctl lookup "${C[@]}" --json -- "$key"
expect_rc 1 "lookup --json with every node down"
jcheck "lookup --json with every node down" "d['primary'] in ('n1', 'n2', 'n3') and d['primary'] != '$VICTIM' and d['serving'] is False and 'no leader' in d['not_serving']"
echo "no leader: status exits 3, lookup $key (its owner gone) exits 1"
echo "PASS"
exit 0
