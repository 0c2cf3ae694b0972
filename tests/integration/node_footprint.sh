#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# node_footprint.sh: what one aether-node --nats process costs at the
# default 1024 shards, as deployed (metrics endpoint on), read from /proc
# (tests layer; docs/tuning.md has the thread-by-thread budget and the
# measurements behind the bounds).
#
#   node_footprint.sh BUILD_DIR
#
# One nats-server, three nodes (--shards 1024), settled, then FOOT_HOLD_S
# seconds of steady state; every node's /proc/PID/status must show at most
# THREADS_MAX threads (the budget of docs/tuning.md, counted exactly: a new
# thread anywhere fails it) and at most RSS_MAX_KB resident. ~15 s; every
# wait is bounded. Exit 0 on success, 1 with the reason.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup footprint "${1:-}"
# docs/tuning.md "Threads", counted exactly for the leader (a follower has
# three fewer): main 1 (it also serves the metrics endpoint, which has no
# thread of its own); executor workers min(cores, 2) (they fire the timers
# too); the NATS transport actor's worker 1; the member store actor's I/O
# executors 2 (the state lane, and the lease lane that keeps renewals from
# waiting behind map I/O: actors/member_store_internal.h, item 6); the RCU
# reclaimer 1; nats.c: timers, asynchronous callbacks,
# garbage collector, the connection's reader and flusher 5, one delivery
# thread per subscription 7 (evt, map, hb, the inbox; and serving: cmd,
# rel, join); the assign actor's bulk executor 1 (issue 16: whole-map work
# at nice +10, so renewals and keep-alives get a core first).
CORES=$(nproc)
WORKERS=$(( CORES < 2 ? CORES : 2 ))
THREADS_MAX=$(( 1 + WORKERS + 1 + 2 + 1 + 5 + 7 + 1 ))
# docs/tuning.md "Memory": 11.6-12.4 MB RSS measured here with the metrics
# endpoint, of which ~9 MB are pages of shared libraries (libcrypto 3.4 MB;
# libmicrohttpd's GnuTLS ~2.4 MB), shared between the nodes: PSS (the
# process's fair share) ~4 MB. libsystemd is loaded only under systemd
# (tools/aether-node/notify.c). 13 MB leaves room for a busier leader, not
# for a library or an arena more.
RSS_MAX_KB=${FOOT_RSS_MAX_KB:-13312}
FOOT_HOLD_S=5
SHARDS=1024
CLUSTER_METRICS=1
cluster_up 3
sleep "$FOOT_HOLD_S"
worst_rss=0 worst_threads=0
for n in "${NODES[@]}"; do
    node_alive "$n" || fail "$n exited"
    status=/proc/${NODE_PID[$n]}/status
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "$status")
    threads=$(awk '$1 == "Threads:" { print $2 }' "$status")
    [[ "$rss" =~ ^[0-9]+$ && "$threads" =~ ^[0-9]+$ ]] || fail "$n: cannot read $status"
    pss=$(awk '$1 == "Pss:" { print $2 }' /proc/"${NODE_PID[$n]}"/smaps_rollup 2>/dev/null)
    echo "$n: rss ${rss} kB, pss ${pss:-?} kB, ${threads} threads ($(ls /proc/"${NODE_PID[$n]}"/task | wc -l) tasks)"
    (( threads <= THREADS_MAX )) ||
        fail "$n runs $threads threads, the budget is $THREADS_MAX ($CORES cores; docs/tuning.md): $(cat /proc/"${NODE_PID[$n]}"/task/*/comm | sort | uniq -c | tr '\n' ' ')"
    (( rss <= RSS_MAX_KB )) || fail "$n holds $rss kB resident, the bound is $RSS_MAX_KB kB (docs/tuning.md)"
    (( rss > worst_rss )) && worst_rss=$rss
    (( threads > worst_threads )) && worst_threads=$threads
done
no_violation "${NODES[@]}"
echo "footprint at $SHARDS shards: at most $worst_rss kB (bound $RSS_MAX_KB), $worst_threads threads (budget $THREADS_MAX)"
echo "PASS"
