#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_js_wait.sh: aether-node started while JetStream cannot serve its
# buckets keeps waiting, bounded, and says so (issue 12 item 5; the chaos
# run logged "c2 refused to start (JetStream unavailable)").
#
#   nats_js_wait.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. a nats-server WITHOUT JetStream; n1 starts against it: it is still
#     running 3 s later and has logged that it waits for its KV bucket;
#     SIGTERM: it exits 0 within 5 s ("stopped ... never joined"), not 1
#     as a refusal to start (a churn node told to leave while it waits);
#  2. three routed servers with JetStream, one of them (s3) stopped before
#     any bucket exists: R3 buckets cannot be placed ("insufficient
#     resources"). n2 (--nats-kv-replicas 3) starts: 3 s later it is still
#     waiting; s3 comes back: within 20 s n2 has created its buckets and
#     leads (elected); its incarnation (its NodeJoined) is its start time,
#     not the end of its wait.
# Takes ~10 s (its bounded waits add up to ~45 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup js-wait "${1:-}"
it_need_helpers

# ---- 1. no JetStream at all; SIGTERM while waiting ----------------------------------
SRV_PORT[plain]=$(free_port) || fail "no free loopback port"
"$NATS_SERVER" -a 127.0.0.1 -p "${SRV_PORT[plain]}" >>"$WORK/plain.log" 2>&1 &
SRV_PID[plain]=$!
wait_for "$SERVER_READY_MS" server_ready plain 0 || fail "nats-server without JetStream did not start"
node_start n1 "$(server_url plain)"
wait_log 5000 "$WORK/n1.err" "KV bucket aether_${CLUSTER}_lease not available yet" ||
    fail "n1 did not say it waits for its KV bucket"
sleep 3
node_alive n1 || fail "n1 gave up within 3 s while JetStream was unavailable: $(tail -n 1 "$WORK/n1.err")"
node_stop n1 5000
(( NODE_RC == 0 )) || fail "n1 stopped by SIGTERM while waiting exited $NODE_RC, not 0: $(tail -n 1 "$WORK/n1.err")"
grep -q "stopped by signal .* waiting .* for KV bucket .* never joined" "$WORK/n1.err" ||
    fail "n1 did not say it stopped while waiting: $(tail -n 1 "$WORK/n1.err")"
echo "no JetStream: n1 waited, then SIGTERM: exit 0 ($(grep -o 'stopped by signal.*' "$WORK/n1.err" | cut -c1-80)...)"
server_kill plain

# ---- 2. R3 buckets while one server of three is down ----------------------------------
servers_start_routed aether-it
server_stop s3
started_ms=$(now_ms)
node_start n2 "$(server_url s1),$(server_url s2)" --nats-kv-replicas 3
sleep 3
node_alive n2 || fail "n2 gave up within 3 s while a server was down: $(tail -n 1 "$WORK/n2.err")"
grep -q "KV bucket aether_${CLUSTER}_lease not available yet" "$WORK/n2.err" ||
    fail "n2 did not say it waits for its KV bucket: $(tail -n 2 "$WORK/n2.err")"
echo "R3 with s3 down: n2 waits: $(grep -m1 -o 'not available yet.*' "$WORK/n2.err" | cut -c1-120)"
t0=$(now_ms)
server_restart s3
wait_log 20000 "$WORK/n2.out" " LEADER elected " ||
    fail "n2 not elected within 20 s of s3 coming back: $(tail -n 2 "$WORK/n2.err")"
echo "s3 back: n2 created its buckets and leads after ~$(( $(now_ms) - t0 )) ms"
# Its incarnation is its start time, not the end of its wait: a process of
# n2 started during that wait would be the newer one (issue 12, chaos seed
# 43: the twin started after a waiting process got the lower incarnation
# and was superseded by it).
wait_log 10000 "$WORK/n2.out" " EVENT NodeJoined .* node=n2 .*incarnation=" ||
    fail "no NodeJoined of n2 in its trace"
inc=$(grep -m1 -o " EVENT NodeJoined .* node=n2 .*incarnation=[0-9]*" "$WORK/n2.out" | grep -o "[0-9]*$")
(( inc >= started_ms - 1000 && inc <= started_ms + 1500 )) ||
    fail "n2's incarnation $inc is not its start time $started_ms (it waited ~3 s for JetStream first)"
echo "n2's incarnation $inc: its start time ($(( inc - started_ms )) ms from the script's clock), not the end of its wait"
node_stop n2 10000
final_checks n1 n2
echo "PASS"
exit 0
