#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# embed_nats_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]: the NATS embedding
# example, docs/examples/embed-nats/shard_node.c, built from an installed
# libaether and run as three processes against a real nats-server (ctest
# entry install.embed_nats, labels install and integration).
#
#  1. cmake --install BUILD_DIR into a temporary prefix; shard_node.c built
#     with `cc -std=c11 -Wall -Wextra -Werror shard_node.c $(pkg-config
#     --cflags --libs aether)` and nothing else, and with find_package(aether)
#     (docs/examples/embed-nats/CMakeLists.txt); both load libaether.so;
#  2. a nats-server on a free loopback port (tests/integration/lib.sh);
#     n1 and n3 run the pkg-config build, n2 the CMake one;
#  3. join: all three READY, the 64 shards held, each node some;
#  4. kill -9 of the leader: the survivors take every shard it held and
#     elect a new leader of a higher term;
#  5. SIGTERM of the survivor that does not lead: it drains (DRAIN OK),
#     releases everything (EXIT held=0) and exits 0; the last node holds
#     all 64 shards and its last LEADER line names itself.
# Checked over the merged callback lines of the three processes (their
# CLOCK_REALTIME microseconds, one machine): a shard is acquired only when
# no live process holds it (released before, or its holder killed before),
# a process releases only what it holds; one leader per term; no process
# sees terms or map versions go back.
# Every wait is bounded; every process and the server are stopped by lib.sh's
# EXIT trap. ~15 s on 2 cores.
set -u

src=${1:?usage: embed_nats_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]}
build=${2:?usage: embed_nats_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]}
cc=${3:-cc}
src=$(cd "$src" && pwd)
build=$(cd "$build" && pwd)
# shellcheck source=../integration/lib.sh
. "$src/tests/integration/lib.sh"
it_setup embed-nats "$build"
it_clean_env

SHARDS=64
CLUSTER=embednats
JOIN_MS=20000     # three processes ready and the shards spread
FAILOVER_MS=15000 # the killed leader's shards taken over, a new leader
DRAIN_MS=20000    # the drained process gone (its own drain waits <= 30 s)
t0=$(now_ms)
step() { printf '== [%5d ms] %s\n' $(( $(now_ms) - t0 )) "$*"; }

# ---- 1. install, build both ways ------------------------------------------------
prefix=$WORK/prefix
step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$WORK/install.log" 2>&1 || fail "cmake --install"
pc=$(find "$prefix" -name aether.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n "$pc" ]] || fail "no aether.pc installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir aether)
example=$src/docs/examples/embed-nats
step "cc shard_node.c \$(pkg-config --cflags --libs aether)"
# shellcheck disable=SC2046 # pkg-config's words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$WORK/shard-node-pc" "$example/shard_node.c" \
    $(pkg-config --cflags --libs aether) -Wl,-rpath,"$libdir" >"$WORK/cc.log" 2>&1 ||
    fail "shard_node.c does not build with pkg-config alone"
step "find_package(aether): docs/examples/embed-nats"
{ cmake -S "$example" -B "$WORK/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
      -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
  cmake --build "$WORK/cmake" -j 2; } >"$WORK/cmake.log" 2>&1 ||
    fail "docs/examples/embed-nats does not build with find_package(aether)"
for b in "$WORK/shard-node-pc" "$WORK/cmake/shard-node"; do
    readelf -d "$b" | grep -q 'NEEDED.*\[libaether\.so' || fail "$b does not load libaether.so"
done
declare -A BIN=([n1]=$WORK/shard-node-pc [n2]=$WORK/cmake/shard-node [n3]=$WORK/shard-node-pc)

# ---- the processes and their lines ------------------------------------------------
ex_start() { # ID
    env "${CLEAN_ENV[@]}" "${BIN[$1]}" --node "$1" --nats "$URL" --cluster "$CLUSTER" --shards "$SHARDS" \
        >>"$WORK/$1.out" 2>>"$WORK/$1.err" &
    NODE_PID[$1]=$!
}
KILLED=""     # the process killed with -9
KILL_US=0     # just before the kill, CLOCK_REALTIME microseconds
# check: the merged callback lines of n1..n3 through the rules above; prints
# "held ID N" per process, "leader ID TERM" (the last one named by anybody),
# "retaken N OF M" (the killed one's shards acquired by others after the kill)
# and one "VIOLATION ..." line per broken rule.
check() {
    cat "$WORK"/n[123].out 2>/dev/null | grep -E '^[0-9]+ n[123] [A-Z]+' | sort -s -n -k1,1 |
        awk -v killed="$KILLED" -v tkill="$KILL_US" '
        function snapshot(  s) { for (s in holder) if (holder[s] == killed) { kset[s] = 1; kcount++ } snapped = 1 }
        killed != "" && !snapped && $1 > tkill { snapshot() }
        $3 == "ACQUIRED" {
            s = $4; h = holder[s]
            if (h != "" && h != $2 && !(h == killed && $1 > tkill))
                print "VIOLATION shard " s " acquired by " $2 " at " $1 " while " h " holds it"
            if (h == killed && $2 != killed && $1 > tkill && (s in kset)) retaken[s] = 1
            holder[s] = $2
        }
        $3 == "RELEASED" {
            s = $4
            if (holder[s] != $2) print "VIOLATION shard " s " released by " $2 " at " $1 ", held by \"" holder[s] "\""
            else holder[s] = ""
        }
        $3 == "LEADER" {
            if ($5 + 0 < term[$2] + 0) print "VIOLATION " $2 " saw term " $5 " after term " term[$2]
            term[$2] = $5
            if ($4 != "-") {
                if (($5 in lead) && lead[$5] != $4) print "VIOLATION term " $5 " led by " lead[$5] " and " $4
                lead[$5] = $4; last_leader = $4; last_term = $5
            }
        }
        $3 == "MAP" {
            if ($4 + 0 <= mapv[$2] + 0) print "VIOLATION " $2 " installed map " $4 " after map " mapv[$2]
            mapv[$2] = $4
        }
        END {
            if (killed != "" && !snapped) snapshot()
            for (s in holder) if (holder[s] != "") held[holder[s]]++
            for (i = 1; i <= 3; i++) print "held n" i " " held["n" i] + 0
            print "leader " (last_leader == "" ? "-" : last_leader) " " last_term + 0
            n = 0; for (s in retaken) n++
            print "retaken " n " of " kcount + 0
        }'
}
field() { awk -v k="$1" -v id="${2:-}" '$1 == k && (id == "" || $2 == id) { print $NF }' "$WORK/check"; }
run_check() { check >"$WORK/check"; }
no_violation_lines() {
    if grep -q '^VIOLATION' "$WORK/check"; then
        grep '^VIOLATION' "$WORK/check" | head -n 10 >&2
        fail "the callbacks broke a rule (above)"
    fi
}
ready_all() { local n; for n in "$@"; do grep -q ' READY$' "$WORK/$n.out" 2>/dev/null || return 1; done; }
# spread WANT...: every shard held, each of WANT some, the others none.
spread() {
    run_check
    local n total=0 h
    for n in n1 n2 n3; do
        h=$(field held "$n")
        total=$((total + h))
        if [[ " $* " == *" $n "* ]]; then (( h > 0 )) || return 1; else (( h == 0 )) || return 1; fi
    done
    (( total == SHARDS ))
}
# leader_agreed ID...: the last LEADER line of each of ID... names the same live node of term > $1
leader_agreed() {
    local min=$1 n line l="" t
    shift
    for n in "$@"; do
        line=$(grep ' LEADER ' "$WORK/$n.out" | tail -n 1)
        [[ -n "$line" ]] || return 1
        read -r _ _ _ LEAD t <<<"$line"
        [[ "$LEAD" != "-" && (-z "$l" || "$LEAD" == "$l") ]] || return 1
        (( t > min )) || return 1
        l=$LEAD
        LEAD_TERM=$t
    done
    [[ " $* " == *" $l "* ]]
}

# ---- 2. server, 3. join ---------------------------------------------------------------
server_start nats
URL=$(server_url nats)
step "nats-server at $URL; n1 n2 n3 start"
ex_start n1
ex_start n2
ex_start n3
wait_for "$JOIN_MS" eval 'ready_all n1 n2 n3 && spread n1 n2 n3 && leader_agreed 0 n1 n2 n3' ||
    { run_check; cat "$WORK/check" >&2; fail "n1 n2 n3: not all ready with the $SHARDS shards spread and one leader within ${JOIN_MS} ms"; }
no_violation_lines
leader=$LEAD
old_term=$LEAD_TERM
step "joined: $(grep '^held' "$WORK/check" | cut -d' ' -f2,3 | tr '\n' ' ')leader $leader (term $old_term)"

# ---- 4. kill -9 of the leader ----------------------------------------------------------
survivors=()
for n in n1 n2 n3; do [[ "$n" == "$leader" ]] || survivors+=("$n"); done
KILLED=$leader
KILL_US=$(date +%s%6N)
node_kill "$leader"
step "kill -9 $leader"
# shellcheck disable=SC2016 # eval expands them, at each poll
wait_for "$FAILOVER_MS" eval 'spread "${survivors[@]}" && leader_agreed "$old_term" "${survivors[@]}"' ||
    { run_check; cat "$WORK/check" >&2; fail "${survivors[*]}: $leader's shards not taken over or no new leader within ${FAILOVER_MS} ms"; }
run_check
no_violation_lines
read -r _ retaken _ killed_held <<<"$(grep '^retaken' "$WORK/check")"
(( killed_held > 0 && retaken == killed_held )) ||
    fail "$leader held $killed_held shards at the kill; $retaken of them acquired by the survivors after it"
new_leader=$LEAD
step "after the kill: $(grep '^held' "$WORK/check" | cut -d' ' -f2,3 | tr '\n' ' ')leader $new_leader (term $LEAD_TERM); $retaken of $leader's $killed_held shards taken over"

# ---- 5. drain of the survivor that does not lead -----------------------------------------
drained=${survivors[0]}
[[ "$drained" != "$new_leader" ]] || drained=${survivors[1]}
last=${survivors[0]}
[[ "$last" != "$drained" ]] || last=${survivors[1]}
kill -TERM "${NODE_PID[$drained]}"
step "SIGTERM $drained (drain)"
node_wait "$drained" "$DRAIN_MS"
[[ "$NODE_RC" == 0 ]] || fail "$drained exited $NODE_RC after SIGTERM, not 0"
grep -q " $drained DRAIN OK$" "$WORK/$drained.out" || fail "$drained: no 'DRAIN OK'"
exit_line=$(grep " $drained EXIT " "$WORK/$drained.out") || fail "$drained: no EXIT line"
[[ "$exit_line" == *" held=0 "* ]] || fail "$drained still held shards: $exit_line"
[[ "$exit_line" != *" served=0 "* ]] || fail "$drained served nothing: $exit_line"
# shellcheck disable=SC2016
wait_for 5000 eval 'spread "$last"' || { run_check; cat "$WORK/check" >&2; fail "$last does not hold all $SHARDS shards after $drained drained"; }
run_check
no_violation_lines
[[ "$(field held "$drained")" == 0 ]] || fail "$drained's lines leave it holding shards"
if ! leader_agreed "$old_term" "$last" || [[ "$LEAD" != "$last" ]]; then
    fail "$last's last LEADER line does not name itself"
fi
no_violation
step "after the drain: $last holds $(field held "$last") shards and leads (term $LEAD_TERM); $drained: ${exit_line#* EXIT }"
step "OK"
