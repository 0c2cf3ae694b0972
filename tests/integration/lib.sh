# SPDX-License-Identifier: Apache-2.0
# lib.sh: shared scaffolding of the NATS integration scripts (tests layer).
# Sourced, never run:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   it_setup three_nodes "$@"      # BUILD_DIR or /path/to/aether-node
#
# it_setup makes $WORK (a temporary directory), finds nats-server
# ($AETHER_NATS_SERVER or the one on PATH; missing is a failure, not a
# skip), aether-node ($NODE_BIN) and the test helpers nats_probe and
# nats_forge ($PROBE_BIN, $FORGE_BIN, built into BUILD_DIR/tests), the
# trace reader ($TRACE_BIN: trace_reader, the one reader of --trace lines,
# tests/support/trace_line.h), and
# installs the EXIT trap: every process started through this file
# (servers, nodes, background helpers) is sent SIGCONT then SIGKILL if
# still alive, reaped, and $WORK is removed (AETHER_KEEP_LOGS=1 keeps it).
#
# What it offers, every wait bounded by an explicit deadline:
#   now_ms                       wall milliseconds (durations only)
#   wait_for MS CMD...           polls CMD every 100 ms until it succeeds (0) or MS pass (1)
#   fail MSG                     prints FAIL: MSG, the tail of every log in $WORK, exits 1
#   it_need_helpers [forge]      fails unless nats_probe (and nats_forge) are built
# Ports and servers:
#   free_port                    a loopback port below the ephemeral range nobody listens
#                                on and this script has not handed out yet
#   server_start NAME [ARGS...]  nats-server -js, store $WORK/NAME.js, log $WORK/NAME.log
#                                (appended), on 127.0.0.1:${SRV_PORT[NAME]} (picked if
#                                unset; then up to 5 ports are tried), extra nats-server
#                                ARGS (-c FILE, --user, --cluster ...) kept for restarts;
#                                waits <= SERVER_READY_MS until "Server is ready" appears
#                                once more in the log and the port accepts
#   server_url NAME              nats://127.0.0.1:PORT
#   server_stop NAME             SIGTERM, SIGKILL after SERVER_STOP_MS; reaped
#   server_kill NAME             SIGKILL; reaped
#   server_restart NAME          server_start again: same port, same store, same ARGS
# Processes:
#   node_start ID URL [ARGS...]  aether-node --nats URL --node ID --cluster $CLUSTER
#                                --shards $SHARDS --trace ARGS; stdout $WORK/ID.out,
#                                stderr $WORK/ID.err (appended: a restart keeps history)
#   node_start_as NAME ID URL [ARGS...]  the same for a second process of node ID,
#                                known to the script as NAME (files $WORK/NAME.*)
#   node_alive ID, nodes_alive ID...
#   node_kill ID                 SIGKILL; reaped, no job notice
#   node_wait ID MS              waits <= MS for ID's exit (else fails); NODE_RC = its status
#   node_stop ID MS              SIGTERM, then node_wait ID MS
#   bg_start NAME CMD...         any helper in the background, stdout $WORK/NAME.log
#   bg_stop NAME MS              SIGTERM, SIGKILL after MS; BG_RC = its status
# Logs (aether-node's stdout: "+<ms>ms <node> <event>", "LEADER elected term=T",
# "LEADER lost", and the --trace lines "T <mono_us> <node> MAP|LEADER|EVENT|STATS"):
#   log_mark ID... / since_mark ID   remember the line count of ID.out / what came after
#   wait_log MS FILE ERE         waits until grep -E ERE FILE matches
#   elected_nodes ID...          the nodes whose ID.out has "LEADER elected" since their mark
#   leaders_now ID...            the nodes whose latest LEADER line is "elected"
#   leader_term ID               the term of ID's last "LEADER elected term=T"
#   installed_version ID         the version of the last map ID installed (trace MAP)
# The cluster, through nats_probe (KV buckets and the wire) and the logs:
#   probe_map FILE               the ShardMap in the state bucket, summarised, into FILE
#   map_check FILE ID...         stable, every shard owned, owners exactly ID..., balanced
#   map_version FILE, ownership FILE
#   settled FILE ID...           one leader (LEADER_NOW) among ID..., and the oracle (nats_probe
#                                settled) finds the stored map settled for ID...; every
#                                one of ID... installed the current map version
#   wait_settled MS FILE ID...   settled within MS, or fail
#   cluster_up N [ARGS...]       server "nats" ($URL) and n1..nN (NODES) settled (LEADER)
#   others ID...                 the NODES not listed
#   wire_start / wire_mark / wire_since MARK
#   wire_check_handover [ALIVE...]  every new leader after a live one followed its LeadershipLost
#                                nats_probe watch into $WORK/wire.log: every message on
#                                aether.$CLUSTER.>, with CLOCK_MONOTONIC microseconds
# Final checks:
#   no_violation                 fails if any stderr in $WORK says VIOLATION
#   trace_check_terms ID...      no node accepted an event of a term below one it knew
#   trace_check_acting ID...     the leaders' own events, per term, from one node and in
#                                disjoint CLOCK_MONOTONIC intervals: never two acting at once
#   final_checks ID...           the three above
#
# Conventions: only 127.0.0.1; ports picked at runtime; processes started
# only through these helpers (so the trap knows them); scripts run with
# `set -u` and check every step themselves (no `set -e`); a node gets none
# of the tests' AETHER_* variables (see node_start).

if [[ -n "${AETHER_IT_LIB_LOADED:-}" ]]; then
    return 0
fi
AETHER_IT_LIB_LOADED=1
# The harnesses' one launcher of servers and nodes (ports, readiness).
# shellcheck source=../support/launch.sh
. "$(dirname "${BASH_SOURCE[0]}")/../support/launch.sh"

# A script may change these after sourcing.
SERVER_READY_MS=5000 # a server start, until ready
SERVER_STOP_MS=5000  # SIGTERM grace before SIGKILL
CLUSTER=it           # --cluster of the nodes and helpers
SHARDS=64            # --shards of the nodes
LOG_TAIL_LINES=25    # per log, in fail's report

WORK=""
NODE_ENV=()
NODES=()
LEADER=""
PROBE_AUTH=()
URL=""
LEADER_NOW=""
MAP_WHY=""
SETTLED_WHY=""
declare -A SRV_PID=() SRV_PORT=() SRV_ARGS=() NODE_PID=() NODE_MARK=() NODE_ID=() BG_PID=() MPORT=()
NODE_RC=""
BG_RC=""

now_ms() { date +%s%3N; }

fail() {
    echo "FAIL: $*" >&2
    local f
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        for f in "$WORK"/*.log "$WORK"/*.out "$WORK"/*.err; do
            [[ -f "$f" ]] || continue
            echo "---- tail of $(basename "$f") ----" >&2
            tail -n "$LOG_TAIL_LINES" "$f" >&2
        done
    fi
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

# ---- setup and cleanup --------------------------------------------------------

it_cleanup() {
    local p
    local -a all=("${NODE_PID[@]}" "${BG_PID[@]}" "${SRV_PID[@]}")
    for p in "${all[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -CONT "$p" 2>/dev/null # a SIGSTOPped process dies of SIGKILL anyway; be explicit
            kill -9 "$p" 2>/dev/null
        fi
    done
    for p in "${all[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ -n "${AETHER_KEEP_LOGS:-}" ]]; then
            echo "logs kept in $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
}

# it_setup NAME ARG: ARG is a build directory or the path of its bin/aether-node.
it_setup() {
    local name=$1 arg=${2:-}
    local build=""
    if [[ -n "$arg" && -d "$arg" ]]; then
        build=$arg
    elif [[ -n "$arg" && -x "$arg" ]]; then
        build=$(cd "$(dirname "$arg")/.." && pwd)
    fi
    if [[ -z "$build" || ! -x "$build/bin/aether-node" ]]; then
        echo "usage: $0 BUILD_DIR | BUILD_DIR/bin/aether-node (got '${arg}')" >&2
        exit 2
    fi
    NODE_BIN=$build/bin/aether-node
    PROBE_BIN=$build/tests/nats_probe
    FORGE_BIN=$build/tests/nats_forge
    TRACE_BIN=$build/tests/trace_reader
    [[ -x "$TRACE_BIN" ]] || { echo "FAIL: test helper $TRACE_BIN not built" >&2; exit 1; }
    NATS_SERVER=${AETHER_NATS_SERVER:-$(command -v nats-server || true)}
    if [[ -z "$NATS_SERVER" || ! -x "$NATS_SERVER" ]]; then
        echo "FAIL: nats-server not found (set AETHER_NATS_SERVER or put it on PATH)" >&2
        exit 1
    fi
    WORK=$(mktemp -d "/tmp/aether-$name-XXXXXX") || { echo "FAIL: mktemp" >&2; exit 1; }
    trap it_cleanup EXIT
    trap 'echo "interrupted" >&2; exit 130' INT TERM
}

# it_need_helpers [forge]: fails unless nats_probe (and nats_forge) were built.
it_need_helpers() {
    [[ -x "$PROBE_BIN" ]] || fail "test helper $PROBE_BIN not built"
    [[ "${1:-}" != forge || -x "$FORGE_BIN" ]] || fail "test helper $FORGE_BIN not built"
}

# ---- ports --------------------------------------------------------------------

port_in_use() { launch_port_in_use "$1"; }

# free_port: echoes a port nobody listens on, below the kernel's ephemeral
# range, never one this script handed out before (launch_free_port).
# Callers use $(free_port), a subshell: the ports handed out are remembered
# in $WORK/ports.handed.
free_port() { launch_free_port "$WORK/ports.handed"; }

# ---- nats-server ---------------------------------------------------------------

server_ready() { # NAME READY_BEFORE
    launch_server_ready "${SRV_PID[$1]}" "$WORK/$1.log" "$2" "${SRV_PORT[$1]}"
}

# server_spawn NAME: one start on ${SRV_PORT[NAME]}; 0 once ready.
server_spawn() {
    local name=$1 before
    before=$(launch_ready_count "$WORK/$name.log")
    # shellcheck disable=SC2086 # SRV_ARGS holds separate words
    launch_server "$NATS_SERVER" "$WORK/$name.js" "${SRV_PORT[$name]}" "$WORK/$name.log" ${SRV_ARGS[$name]}
    SRV_PID[$name]=$LAUNCHED
    if wait_for "$SERVER_READY_MS" server_ready "$name" "$before"; then
        return 0
    fi
    kill -9 "${SRV_PID[$name]}" 2>/dev/null
    wait "${SRV_PID[$name]}" 2>/dev/null
    unset "SRV_PID[$name]"
    return 1
}

server_start() {
    local name=$1
    shift
    SRV_ARGS[$name]="$*"
    if [[ -n "${SRV_PORT[$name]:-}" ]]; then
        server_spawn "$name" || fail "nats-server $name did not become ready on port ${SRV_PORT[$name]} within ${SERVER_READY_MS} ms"
        return 0
    fi
    local _
    for _ in 1 2 3 4 5; do
        SRV_PORT[$name]=$(free_port) || fail "no free loopback port found"
        rm -rf "$WORK/$name.js"
        server_spawn "$name" && return 0
        # Lost a race for the port (or a slow start): another port.
        unset "SRV_PORT[$name]"
    done
    fail "nats-server $name did not become ready (5 ports tried)"
}

server_url() { echo "nats://127.0.0.1:${SRV_PORT[$1]}"; }

# Three routed servers s1 s2 s3 (one JetStream cluster named CLUSTER_NAME);
# their route ports stay in CPORT for a restart with the same routes.
declare -A CPORT=()
servers_start_routed() { # CLUSTER_NAME
    local s o routes
    SERVERS=(s1 s2 s3)
    for s in "${SERVERS[@]}"; do
        SRV_PORT[$s]=$(free_port) || fail "no free loopback port"
        CPORT[$s]=$(free_port) || fail "no free loopback port"
    done
    for s in "${SERVERS[@]}"; do
        routes=""
        for o in "${SERVERS[@]}"; do
            [[ "$o" == "$s" ]] || routes+="${routes:+,}nats://127.0.0.1:${CPORT[$o]}"
        done
        server_start "$s" --server_name "$s" --cluster_name "$1" \
            --cluster "nats://127.0.0.1:${CPORT[$s]}" --routes "$routes"
    done
}

server_kill() {
    local name=$1 p=${SRV_PID[$1]:-}
    [[ -n "$p" ]] || return 0
    { kill -9 "$p"; wait "$p"; } 2>/dev/null
    unset "SRV_PID[$name]"
}

server_stop() {
    local name=$1 p=${SRV_PID[$1]:-}
    [[ -n "$p" ]] || return 0
    kill -CONT "$p" 2>/dev/null
    kill -TERM "$p" 2>/dev/null
    if ! wait_for "$SERVER_STOP_MS" eval "! kill -0 $p 2>/dev/null"; then
        kill -9 "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    unset "SRV_PID[$name]"
}

server_restart() {
    local name=$1
    [[ -z "${SRV_PID[$name]:-}" ]] || server_kill "$name"
    # shellcheck disable=SC2086
    server_start "$name" ${SRV_ARGS[$name]}
}

# ---- aether-node -----------------------------------------------------------------

# it_clean_env: CLEAN_ENV=(-u VAR ...) for every AETHER_* variable set here
# but the log settings: `env "${CLEAN_ENV[@]}" CMD` runs aether-node or
# aetherctl without the tests' own (they refuse unknown AETHER_* names).
it_clean_env() {
    local v
    CLEAN_ENV=()
    for v in ${!AETHER_@}; do
        case $v in
            AETHER_LOG_LEVEL | AETHER_LOG_FORMAT) ;;
            *) CLEAN_ENV+=(-u "$v") ;;
        esac
    done
}

# The node gets no AETHER_* variable of ours (aether-node refuses unknown
# ones, and AETHER_KEEP_LOGS, AETHER_NATS_SERVER, ... are the tests'), except
# the log settings; a script passes its own through NODE_ENV=(K=V ...).
node_start() {
    local id=$1
    shift
    node_start_as "$id" "$id" "$@"
}

# node_start_as NAME ID URL [ARGS...]: a process of node ID the script calls
# NAME (a second process of a running id: NODE_ID[NAME] = ID).
node_start_as() {
    local name=$1 id=$2 url=$3
    shift 3
    it_clean_env
    LAUNCH_ENV=("${CLEAN_ENV[@]}" "${NODE_ENV[@]}")
    launch_node "$NODE_BIN" "$url" "$id" "$CLUSTER" "$SHARDS" "$WORK/$name.out" "$WORK/$name.err" "$@"
    LAUNCH_ENV=()
    NODE_PID[$name]=$LAUNCHED
    NODE_ID[$name]=$id
}

# metrics_node_start ID URL [ARGS...]: node_start with --metrics-addr on a
# free loopback port, kept in MPORT[ID] (scrape with curl).
metrics_node_start() {
    local id=$1 url=$2
    shift 2
    MPORT[$id]=$(free_port)
    node_start "$id" "$url" --metrics-addr "127.0.0.1:${MPORT[$id]}" "$@"
}

# scrape ID: ID's /metrics now into $WORK/ID.prom; 0 if it answered.
scrape() { curl -s -m 2 -o "$WORK/$1.prom" "http://127.0.0.1:${MPORT[$1]}/metrics"; }

# value ID NAME [LABEL-REGEX]: the value of the first sample of NAME (with
# labels matching LABEL-REGEX) in ID's last scrape; empty if none.
value() {
    awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"({|$)" && $1 ~ l { print $2; exit }' "$WORK/$1.prom" 2>/dev/null
}

# metric ID NAME [LABEL-REGEX]: scrape ID now and print that value.
metric() { scrape "$1" && value "$@"; }

# serving_check ID...: every ID answers /metrics with aether_fenced 0 and
# aether_shards_multi_owner 0, and their aether_shards_owned add up to
# $SHARDS (every shard served by exactly one of them, by their own account);
# otherwise 1 and SERVING_WHY says why. Leaves each scrape in $WORK/ID.prom.
serving_check() {
    local id n sum=0
    for id in "$@"; do
        scrape "$id" || { SERVING_WHY="$id: /metrics did not answer"; return 1; }
        [[ "$(value "$id" aether_fenced)" == 0 ]] || { SERVING_WHY="$id is fenced"; return 1; }
        [[ "$(value "$id" aether_shards_multi_owner)" == 0 ]] ||
            { SERVING_WHY="$id: aether_shards_multi_owner is $(value "$id" aether_shards_multi_owner)"; return 1; }
        n=$(value "$id" aether_shards_owned)
        [[ "$n" =~ ^[0-9]+$ ]] || { SERVING_WHY="$id: aether_shards_owned is '$n'"; return 1; }
        sum=$(( sum + n ))
    done
    (( sum == SHARDS )) || { SERVING_WHY="they serve $sum shards, want $SHARDS"; return 1; }
    SERVING_WHY=""
}

node_alive() { [[ -n "${NODE_PID[$1]:-}" ]] && kill -0 "${NODE_PID[$1]}" 2>/dev/null; }

nodes_alive() {
    local n
    for n in "$@"; do
        node_alive "$n" || return 1
    done
}

node_kill() {
    local id=$1 p=${NODE_PID[$1]:-}
    [[ -n "$p" ]] || return 0
    { kill -9 "$p"; wait "$p"; true; } 2>/dev/null # stderr off: no "Killed" job notice
    unset "NODE_PID[$id]"
}

# node_wait ID MS: waits <= MS for ID to exit (fails the test otherwise);
# NODE_RC = its exit status.
node_wait() {
    local id=$1 limit=$2 p=${NODE_PID[$1]:-}
    [[ -n "$p" ]] || fail "node_wait $id: not running"
    wait_for "$limit" eval "! kill -0 $p 2>/dev/null" || fail "$id still running after ${limit} ms"
    wait "$p"
    # shellcheck disable=SC2034 # read by the scripts
    NODE_RC=$?
    unset "NODE_PID[$id]"
}

node_stop() {
    local id=$1 p=${NODE_PID[$1]:-}
    [[ -n "$p" ]] || fail "node_stop $id: not running"
    kill -TERM "$p"
    node_wait "$id" "$2"
}

# ---- background helpers ---------------------------------------------------------------

bg_start() {
    local name=$1
    shift
    "$@" >>"$WORK/$name.log" 2>&1 &
    BG_PID[$name]=$!
}

bg_stop() {
    local name=$1 limit=$2 p=${BG_PID[$1]:-}
    [[ -n "$p" ]] || fail "bg_stop $name: not running"
    kill -TERM "$p" 2>/dev/null
    if ! wait_for "$limit" eval "! kill -0 $p 2>/dev/null"; then
        kill -9 "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    # shellcheck disable=SC2034 # read by the scripts
    BG_RC=$?
    unset "BG_PID[$name]"
}

# ---- logs -----------------------------------------------------------------------------

log_mark() {
    local n
    for n in "$@"; do
        NODE_MARK[$n]=$(wc -l <"$WORK/$n.out" 2>/dev/null || echo 0)
    done
}

since_mark() { tail -n +"$(( ${NODE_MARK[$1]:-0} + 1 ))" "$WORK/$1.out" 2>/dev/null; }

wait_log() { # MS FILE ERE
    wait_for "$1" grep -qE -- "$3" "$2"
}

elected_nodes() {
    local n
    for n in "$@"; do
        since_mark "$n" | grep -q " LEADER elected " && echo "$n"
    done
}

no_violation() {
    local f
    for f in "$WORK"/*.err; do
        [[ -f "$f" ]] || continue
        if grep -q "VIOLATION" "$f"; then
            fail "$(basename "$f" .err) reported a VIOLATION: $(grep -m1 VIOLATION "$f")"
        fi
    done
}

# ---- the cluster as the scripts observe it ----------------------------------------------
# (aether-node's stdout lines, and nats_probe's view of the KV buckets)

# leaders_now ID...: the nodes (among ID...) whose latest "LEADER elected" /
# "LEADER lost" line is "elected": those that believe they lead.
leaders_now() {
    local n last
    for n in "$@"; do
        last=$(grep -E " LEADER (elected|lost) " "$WORK/$n.out" 2>/dev/null | tail -n 1)
        [[ "$last" == *" LEADER elected "* ]] && echo "$n"
    done
}

# probe_map FILE: the current ShardMap (nats_probe map) into FILE; 1 if unreadable.
probe_map() {
    "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 2000 "${PROBE_AUTH[@]}" map \
        >"$1" 2>>"$WORK/probe.err"
}

# map_check FILE ID...: 0 if the map in FILE has every shard stable with an
# owner, exactly the nodes ID... as owners (each with at least one shard,
# nobody else with any), and per-node primaries differing by at most one
# (perfect balance); otherwise 1 and MAP_WHY says why.
map_check() {
    local file=$1
    shift
    local head owners want counts
    head=$(grep '^map ' "$file" 2>/dev/null) || { MAP_WHY="no map read"; return 1; }
    if [[ "$head" != *" moving=0 unowned=0" ]]; then
        MAP_WHY="not stable: $head"
        return 1
    fi
    owners=$(awk '$1 == "owner" && $3 != "primaries=0" { print $2 }' "$file" | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    if [[ "$owners" != "$want" ]]; then
        MAP_WHY="owners are '$owners', want '$want' ($head)"
        return 1
    fi
    counts=$(awk '$1 == "owner" && $3 != "primaries=0" { sub("primaries=", "", $3); print $3 }' "$file" | sort -n)
    if (( $(tail -n 1 <<<"$counts") - $(head -n 1 <<<"$counts") > 1 )); then
        MAP_WHY="unbalanced: $(grep '^owner ' "$file" | tr '\n' ' ')"
        return 1
    fi
    MAP_WHY=""
}

# map_version FILE: the version of the map in FILE.
map_version() { sed -n 's/^map version=\([0-9]*\) .*/\1/p' "$1"; }

# ownership FILE: "shard owner" lines of the map in FILE (to compare two maps).
ownership() { awk '$1 == "shard" { print $2, $3 }' "$1"; }

# installed_version ID: the version of the last map ID installed (its
# --trace "T <us> ID MAP <version> <term>" lines); empty if none.
installed_version() { "$TRACE_BIN" installed "${NODE_ID[$1]:-$1}" "$WORK/$1.out"; }

# leader_term ID: the term of ID's last "LEADER elected term=T" line.
leader_term() {
    sed -n 's/.* LEADER elected term=\([0-9]*\).*/\1/p' "$WORK/$1.out" | tail -n 1
}

# settled FILE ID...: exactly one of ID... believes it leads (LEADER_NOW is
# set to it), and the oracle (actors/invariants.h, through `nats_probe
# settled`) finds the stored map settled for ID... against the stored
# topology: every one of ID... Active and on the map version its trace says
# it installed (installing a newer map ends a node's fencing), every shard
# stable with min(R, Active) owners among ID..., primaries and owners per
# node within one. The map is saved in FILE (as `nats_probe map` prints it).
settled() {
    local file=$1
    shift
    nodes_alive "$@" || { SETTLED_WHY="a node exited"; return 1; }
    local l
    l=$(leaders_now "$@")
    if [[ $(wc -w <<<"$l") -ne 1 ]]; then
        SETTLED_WHY="leaders: '$(tr '\n' ' ' <<<"$l")'"
        return 1
    fi
    LEADER_NOW=$l
    local n views=()
    for n in "$@"; do
        views+=("${NODE_ID[$n]:-$n}=$(installed_version "$n")")
    done
    if ! "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" --timeout-ms 2000 "${PROBE_AUTH[@]}" \
            settled "${NODE_ID[$l]:-$l}" "${views[@]}" >"$file" 2>"$WORK/settled.err"; then
        SETTLED_WHY=$(grep -m 1 -E "^not settled|nats_probe" "$WORK/settled.err" || echo "map unreadable")
        cat "$WORK/settled.err" >>"$WORK/probe.err"
        return 1
    fi
    SETTLED_WHY=""
}

# wait_settled MS FILE ID...: settled within MS, or the test fails.
wait_settled() {
    local limit=$1
    shift
    wait_for "$limit" settled "$@" || fail "not settled within $limit ms (nodes ${*:2}): $SETTLED_WHY"
}

# cluster_up N [NODE ARGS...]: one nats-server ("nats", $URL), nodes n1..nN
# (NODES), settled within 10 s (LEADER = the leader; $WORK/map.up = the map).
# With CLUSTER_METRICS=1 each node gets --metrics-addr (metrics_node_start).
cluster_up() {
    local count=$1 i t0
    shift
    server_start nats
    URL=$(server_url nats)
    NODES=()
    for (( i = 1; i <= count; i++ )); do
        NODES+=("n$i")
        if [[ "${CLUSTER_METRICS:-0}" == 1 ]]; then metrics_node_start "n$i" "$URL" "$@"; else node_start "n$i" "$URL" "$@"; fi
    done
    t0=$(now_ms)
    wait_settled 10000 "$WORK/map.up" "${NODES[@]}"
    LEADER=$LEADER_NOW
    echo "up: nats-server at $URL; ${NODES[*]} settled after $(( $(now_ms) - t0 )) ms; leader $LEADER; map v$(map_version "$WORK/map.up")"
}

# others EXCLUDED...: the NODES not listed.
others() {
    local n x keep
    for n in "${NODES[@]}"; do
        keep=1
        for x in "$@"; do
            [[ "$n" == "$x" ]] && keep=0
        done
        (( keep )) && echo "$n"
    done
}

# wire_start: nats_probe watch in the background, every message on
# aether.$CLUSTER.> into $WORK/wire.log ("<mono_us> <subject tail> <type>
# node=N term=T seq=S", maps as "<mono_us> map map version=V term=T"); waits
# <= 5 s for its subscription.
wire_start() {
    bg_start wire "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" "${PROBE_AUTH[@]}" --duration 300 watch
    wait_log 5000 "$WORK/wire.log" "^watching " || fail "nats_probe watch did not subscribe within 5 s"
}

# wire_mark: the line count of wire.log now (what arrived so far).
wire_mark() { wc -l <"$WORK/wire.log"; }

# wire_since MARK: the wire.log lines after MARK.
wire_since() { tail -n +"$(( $1 + 1 ))" "$WORK/wire.log"; }

# wire_check_handover [ALIVE...]: in wire.log, every LeaderElected of a
# newer term whose predecessor (the leader of the last LeaderElected seen)
# is one of ALIVE (default: every node; a process that was killed or paused
# cannot speak) was preceded by that predecessor's LeadershipLost of its
# term: a live leader always says it lost (issue 12 item 4). Fails with the
# first handover that was not announced; HANDOVERS = how many were checked.
wire_check_handover() {
    local alive=" ${*:-${NODES[*]}} " bad
    bad=$(awk -v alive="$alive" '
        $3 == "LeadershipLost" { n = $4; t = $5; sub("node=", "", n); sub("term=", "", t); lost[n " " t] = 1 }
        $3 == "LeaderElected" {
            n = $4; t = $5; sub("node=", "", n); sub("term=", "", t); t += 0
            if (t <= term) next
            if (who != "" && index(alive, " " who " ") > 0) {
                checked++
                if (!((who " " term) in lost)) { print "term " t " (" n ") follows " who " (term " term ") with no LeadershipLost from it"; exit }
            }
            who = n; term = t
        }
        END { if (checked > 0) print "checked " checked }' "$WORK/wire.log")
    case $bad in
        checked*) HANDOVERS=${bad#checked } ;;
        "") HANDOVERS=0 ;;
        *) fail "leader handover not announced: $bad" ;;
    esac
}

# trace_check_terms ID...: from each node's --trace lines, no node applied
# an event of a term below one it already knew (from a LEADER line or an
# event it applied or emitted before): every leader-issued change of an
# older term was dropped. LeadershipLost is exempt: it announces the end of
# an old term and every node accepts it (member.c, sink_event).
trace_check_terms() {
    local n bad
    for n in "$@"; do
        bad=$("$TRACE_BIN" check-terms "${NODE_ID[$n]:-$n}" "$WORK/$n.out") ||
            fail "$n accepted an event of an older term: $bad"
    done
}

# trace_check_acting ID...: the events each leader emitted (its own --trace
# EVENT lines, LeadershipLost excepted), grouped by term, come from one node
# per term, and the terms' emission intervals [first, last] (CLOCK_MONOTONIC,
# comparable between the processes) do not overlap: a leader's last act
# precedes its successor's first. Two nodes acting as leader at once would
# fail this.
trace_check_acting() {
    local n files=() bad
    for n in "$@"; do
        files+=("$WORK/$n.out")
    done
    bad=$("$TRACE_BIN" check-acting "${files[@]}") || fail "two leaders acted at once: $bad"
}

# final_checks ID...: no VIOLATION on any stderr, and the trace checks above
# over the nodes ID... (all that ever ran).
final_checks() {
    no_violation
    trace_check_terms "$@"
    trace_check_acting "$@"
}

