#!/usr/bin/env bash
# nats_three_nodes.sh: three aether-node processes in NATS mode against a
# real nats-server (JetStream on, temporary store, free loopback port).
#
#   nats_three_nodes.sh /path/to/aether-node
#
# Steps (every wait bounded):
#  1. start nats-server -js; wait (<= 5 s) until it is ready;
#  2. start n1, n2, n3 (--shards 64); wait (<= 10 s) until exactly one log
#     says "LEADER elected" and the logs show NodeJoined for all three;
#  3. kill -9 the leader; wait (<= 10 s) for "LEADER elected" in another log;
#  4. SIGTERM the two survivors; each must exit 0 within 20 s (the daemon's
#     drain wait is bounded by handoff_timeout + 2 s = 7 s).
# No "VIOLATION" may appear in any node's stderr.
# nats-server is $AETHER_NATS_SERVER or the one on PATH; missing is a failure.
# Exit 0 on success; otherwise 1 with the reason and the tail of every log.
# AETHER_KEEP_LOGS=1 keeps the temporary directory (logs) for inspection.
# The EXIT trap kills (-9) whatever this script started and is still alive
# and removes the temporary directory.
set -u

NODE_BIN=${1:-}
if [[ -z "$NODE_BIN" || ! -x "$NODE_BIN" ]]; then
    echo "usage: $0 /path/to/aether-node (got '${NODE_BIN}')" >&2
    exit 2
fi
NATS_SERVER=${AETHER_NATS_SERVER:-$(command -v nats-server || true)}
if [[ -z "$NATS_SERVER" || ! -x "$NATS_SERVER" ]]; then
    echo "FAIL: nats-server not found (set AETHER_NATS_SERVER or put it on PATH)" >&2
    exit 1
fi

WORK=$(mktemp -d /tmp/aether-nats3-XXXXXX) || { echo "FAIL: mktemp" >&2; exit 1; }
SERVER_PID=""
declare -A NODE_PID=()

cleanup() {
    local p
    for p in "${NODE_PID[@]}" $SERVER_PID; do
        if kill -0 "$p" 2>/dev/null; then
            kill -9 "$p" 2>/dev/null
        fi
    done
    for p in "${NODE_PID[@]}" $SERVER_PID; do
        wait "$p" 2>/dev/null
    done
    if [[ -n "${AETHER_KEEP_LOGS:-}" ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

now_ms() { date +%s%3N; }

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$WORK"/nats.log "$WORK"/n*.out "$WORK"/n*.err; do
        [[ -f "$f" ]] || continue
        echo "---- tail of $(basename "$f") ----" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

# wait_for MS CMD...: polls CMD every 100 ms until it succeeds (0) or MS pass (1).
wait_for() {
    local limit=$1
    shift
    local deadline=$(( $(now_ms) + limit ))
    while true; do
        "$@" && return 0
        (( $(now_ms) >= deadline )) && return 1
        sleep 0.1
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

server_ready() {
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    grep -q "Server is ready" "$WORK/nats.log" 2>/dev/null && port_in_use "$PORT"
}

# ---- 1. the server ---------------------------------------------------------
PORT=""
for attempt in 1 2 3 4 5; do
    PORT=""
    for _ in $(seq 1 50); do
        p=$(( 20000 + RANDOM % 30000 ))
        if ! port_in_use "$p"; then PORT=$p; break; fi
    done
    [[ -n "$PORT" ]] || fail "no free loopback port found"
    rm -rf "$WORK/js"
    "$NATS_SERVER" -js -sd "$WORK/js" -a 127.0.0.1 -p "$PORT" >"$WORK/nats.log" 2>&1 &
    SERVER_PID=$!
    if wait_for 5000 server_ready; then
        break
    fi
    # Lost a race for the port (or slow start): stop it and try another port.
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
done
[[ -n "$SERVER_PID" ]] || fail "nats-server did not become ready (5 attempts)"
URL="nats://127.0.0.1:$PORT"
echo "nats-server pid $SERVER_PID at $URL"

# ---- 2. three nodes, one leader --------------------------------------------
NODES=(n1 n2 n3)
for n in "${NODES[@]}"; do
    "$NODE_BIN" --nats "$URL" --node "$n" --shards 64 >"$WORK/$n.out" 2>"$WORK/$n.err" &
    NODE_PID[$n]=$!
done

all_alive() {
    local n
    for n in "$@"; do
        kill -0 "${NODE_PID[$n]}" 2>/dev/null || return 1
    done
}

elected_logs() { # the nodes (among $@) whose log has an election line
    local n
    for n in "$@"; do
        grep -q " LEADER elected " "$WORK/$n.out" 2>/dev/null && echo "$n"
    done
}

first_settled() {
    all_alive "${NODES[@]}" || return 1
    local e n
    e=$(elected_logs "${NODES[@]}" | wc -l)
    [[ "$e" -eq 1 ]] || return 1
    for n in "${NODES[@]}"; do
        cat "$WORK"/n*.out | grep -q "NodeJoined .* node=$n address=" || return 1
    done
}

t0=$(now_ms)
if ! wait_for 10000 first_settled; then
    all_alive "${NODES[@]}" || fail "a node exited early"
    fail "within 10 s: expected exactly one 'LEADER elected' (got: $(elected_logs "${NODES[@]}" | tr '\n' ' ')) and NodeJoined for n1 n2 n3"
fi
LEADER=$(elected_logs "${NODES[@]}")
echo "leader $LEADER elected, all joined after $(( $(now_ms) - t0 )) ms"

# ---- 3. kill -9 the leader --------------------------------------------------
{ # stderr off: no "Killed" job notice from bash
    kill -9 "${NODE_PID[$LEADER]}"
    wait "${NODE_PID[$LEADER]}"
    true
} 2>/dev/null
unset "NODE_PID[$LEADER]"
SURVIVORS=()
for n in "${NODES[@]}"; do
    [[ "$n" == "$LEADER" ]] || SURVIVORS+=("$n")
done

new_leader() {
    all_alive "${SURVIVORS[@]}" || return 1
    [[ -n "$(elected_logs "${SURVIVORS[@]}")" ]]
}

t0=$(now_ms)
if ! wait_for 10000 new_leader; then
    all_alive "${SURVIVORS[@]}" || fail "a survivor exited after the leader was killed"
    fail "no new 'LEADER elected' among ${SURVIVORS[*]} within 10 s of killing $LEADER"
fi
echo "new leader $(elected_logs "${SURVIVORS[@]}" | tr '\n' ' ')after $(( $(now_ms) - t0 )) ms"

# ---- 4. SIGTERM the survivors: drained, exit 0 ------------------------------
for n in "${SURVIVORS[@]}"; do
    kill -TERM "${NODE_PID[$n]}"
done
none_alive() {
    local n
    for n in "${SURVIVORS[@]}"; do
        kill -0 "${NODE_PID[$n]}" 2>/dev/null && return 1
    done
    return 0
}
t0=$(now_ms)
wait_for 20000 none_alive || fail "survivors still running 20 s after SIGTERM"
for n in "${SURVIVORS[@]}"; do
    wait "${NODE_PID[$n]}"
    rc=$?
    unset "NODE_PID[$n]"
    [[ "$rc" -eq 0 ]] || fail "$n exited $rc after SIGTERM (want 0)"
done
echo "survivors exited 0 after $(( $(now_ms) - t0 )) ms"

if grep -l "VIOLATION" "$WORK"/n*.err >/dev/null 2>&1; then
    fail "a node reported a VIOLATION"
fi
echo "PASS"
exit 0
