# SPDX-License-Identifier: Apache-2.0
# launch.sh: the shell harnesses' one launcher of nats-server and
# aether-node processes (tests layer), the counterpart of
# tests/support/nats_server.c for the C harnesses. Sourced, never run, by
# tests/integration/lib.sh and tools/demo:
#
#   . "$root/tests/support/launch.sh"
#
#   launch_port_in_use PORT          0 if something accepts on 127.0.0.1:PORT
#   launch_free_port [HANDED_FILE]   echoes a loopback port nobody listens on,
#                                    below the kernel's ephemeral range (so no
#                                    outgoing connection takes it while a server
#                                    is down for a restart); with HANDED_FILE,
#                                    never one listed there, and it is appended
#   launch_ready_count LOG           how many "Server is ready" lines LOG holds
#                                    (the log is appended to at every start, so
#                                    a start is ready when the count grows)
#   launch_server BIN STORE PORT LOG [ARGS...]
#                                    starts nats-server BIN with JetStream (store
#                                    STORE) on 127.0.0.1:PORT in the background,
#                                    stdout and stderr appended to LOG; LAUNCHED
#                                    = its pid. It does not wait: poll
#                                    launch_server_ready
#   launch_server_ready PID LOG BEFORE PORT
#                                    0 once PID lives, LOG has more ready lines
#                                    than BEFORE and PORT accepts (a port that
#                                    accepts could be another server's)
#   launch_node BIN URL ID CLUSTER SHARDS OUT ERR [ARGS...]
#                                    `BIN --nats URL --node ID --cluster CLUSTER
#                                    --shards SHARDS --trace ARGS` in the
#                                    background, stdout appended to OUT (the trace
#                                    that tests/support/trace_line.h reads),
#                                    stderr to ERR, through `env LAUNCH_ENV...`
#                                    (e.g. -u VAR, K=V); LAUNCHED = its pid
#
# Nothing here waits without a bound, kills or cleans up: the caller keeps
# the pids and its own deadlines and trap (lib.sh's it_cleanup, the demo's
# cleanup). Loopback only.

launch_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

launch_free_port() {
    local handed=${1:-} lo=32768 p _
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    fi
    (( lo > 12000 )) || lo=32768
    for _ in $(seq 1 100); do # bounded: 100 draws
        p=$(( 10000 + RANDOM % (lo - 10000) ))
        [[ -n "$handed" ]] && grep -qx "$p" "$handed" 2>/dev/null && continue
        launch_port_in_use "$p" && continue
        [[ -n "$handed" ]] && echo "$p" >>"$handed"
        echo "$p"
        return 0
    done
    return 1
}

launch_ready_count() {
    local c
    c=$(grep -c "Server is ready" "$1" 2>/dev/null)
    echo "${c:-0}"
}

launch_server() {
    local bin=$1 store=$2 port=$3 log=$4
    shift 4
    "$bin" -js -sd "$store" -a 127.0.0.1 -p "$port" "$@" >>"$log" 2>&1 &
    LAUNCHED=$!
}

launch_server_ready() {
    kill -0 "$1" 2>/dev/null || return 1
    (( $(launch_ready_count "$2") > $3 )) && launch_port_in_use "$4"
}

launch_node() {
    local bin=$1 url=$2 id=$3 cluster=$4 shards=$5 out=$6 err=$7
    shift 7
    env ${LAUNCH_ENV[@]+"${LAUNCH_ENV[@]}"} \
        "$bin" --nats "$url" --node "$id" --cluster "$cluster" --shards "$shards" --trace "$@" >>"$out" 2>>"$err" &
    LAUNCHED=$!
}
