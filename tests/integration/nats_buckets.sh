#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_buckets.sh: the KV buckets deleted under a live 3-node cluster on a
# real nats-server come back (issue 12 item 5; transport/nats_kv.h step 5,
# actors/lease.h, member_lease.c step 6).
#
#   nats_buckets.sh BUILD_DIR [all|lease|state|wipe]     (default all)
#
# Steps (every wait bounded; lease_ttl_ms is the default 1000):
#  1. nats-server and n1..n3 (--shards 64), settled within 10 s; T1 = the
#     leader's term.
#  lease (the lease bucket deleted):
#  2. nats_probe delete-lease;
#  3. within ttl + 1 s = 2 s a node prints "LEADER elected term=T2", and
#     T2 > T1 (terms never repeat although the bucket's revisions restart
#     at 1: the state store records the term);
#  4. the cluster settles within 5 s with exactly one leader, and no shard
#     moved (I4: a change of leader alone moves nothing); a node logged
#     that it created the bucket again; the lease bucket names the leader.
#  state (the state bucket deleted):
#  5. nats_probe delete-state;
#  6. within 3 s the state bucket holds a map again (the leader wrote back
#     its current map: same version and ownership as before);
#  7. kill -9 a follower F: within 5 s the leader emits NodeFailed for F and
#     within 10 s the map is settled over the two survivors, only F's
#     shards moved;
#  8. (all) the lease bucket deleted once more: a new leader within 2 s, with
#     a term above every term before it (the leader recorded its term
#     again after the state bucket came back, so the record survived).
#  wipe (both buckets lost: the nats-server killed, its store removed,
#  restarted on the same port):
#  9. within 10 s the cluster settles over the same nodes with a leader
#     whose term is above every term before (the winner continues above
#     the highest term it saw, and says so), and no shard moved; before it
#     no node changed generation (a state bucket lost alone keeps its
#     generation: the leader writes it back), after it every node logged
#     "generation changed from X to Y: the store was lost", all with one Y
#     (actors/lease.h GENERATION);
# 10. the final checks of lib.sh (no VIOLATION, no older term accepted, no
#     two leaders acting at once).
# Prints the measured times. Takes ~8 s (its bounded waits add up to ~60 s).
# Exit 0 on success, 1 with the reason and every log's tail.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup buckets "${1:-}"
it_need_helpers
PARTS=${2:-all}
case $PARTS in all | lease | state | wipe) ;; *) fail "unknown part '$PARTS' (all, lease, state or wipe)" ;; esac
TTL_MS=1000

probe() { "$PROBE_BIN" --nats "$URL" --cluster "$CLUSTER" "$@"; }

cluster_up 3
TERM_NOW=$(leader_term "$LEADER")
echo "leader $LEADER, term $TERM_NOW"

# delete_lease WHAT: deletes the lease bucket; a leader is back within ttl +
# 1 s with a term above TERM_NOW, the cluster settles over ALIVE with no
# shard moved from MAP_BEFORE. Sets TERM_NOW, LEADER.
delete_lease() {
    log_mark "${ALIVE[@]}"
    probe delete-lease >/dev/null || fail "nats_probe delete-lease failed"
    local t0 limit=$(( TTL_MS + 1000 ))
    t0=$(now_ms)
    one_elected() { [[ $(elected_nodes "${ALIVE[@]}" | wc -l) -ge 1 ]]; }
    wait_for "$limit" one_elected ||
        fail "$1: no leader within $limit ms (ttl + 1 s) of deleting the lease bucket"
    local t_elected=$(( $(now_ms) - t0 )) n term
    for n in $(elected_nodes "${ALIVE[@]}"); do
        term=$(since_mark "$n" | sed -n 's/.* LEADER elected term=\([0-9]*\).*/\1/p' | tail -n 1)
        (( term > TERM_NOW )) || fail "$1: $n elected with term $term, not above $TERM_NOW (a term repeated)"
    done
    wait_settled 5000 "$WORK/map.lease" "${ALIVE[@]}"
    LEADER=$LEADER_NOW
    term=$(leader_term "$LEADER")
    local moved
    moved=$(join <(ownership "$MAP_BEFORE") <(ownership "$WORK/map.lease") | awk '$2 != $3' | wc -l)
    (( moved == 0 )) || fail "$1: $moved shards moved although only the leader changed"
    grep -q "bucket 'aether_${CLUSTER}_lease' did not exist: created it again" "$WORK"/*.err ||
        fail "$1: no node logged that it created the lease bucket again"
    # The lease value says term 0 until the first renewal (actors/lease.h).
    lease_names() { probe lease 2>/dev/null | grep -q "^lease leader=$LEADER term=$term "; }
    wait_for 2000 lease_names ||
        fail "$1: the lease bucket does not name $LEADER with term $term: $(probe lease 2>&1)"
    echo "$1: lease bucket deleted; $LEADER elected after ~$t_elected ms with term $term (was $TERM_NOW); nothing moved"
    TERM_NOW=$term
}

ALIVE=("${NODES[@]}")
MAP_BEFORE=$WORK/map.up
if [[ $PARTS == all || $PARTS == lease ]]; then
    delete_lease "lease"
    cp "$WORK/map.lease" "$WORK/map.before-state"
    MAP_BEFORE=$WORK/map.before-state
fi

if [[ $PARTS == all || $PARTS == state ]]; then
    v_before=$(map_version "$MAP_BEFORE")
    probe delete-state >/dev/null || fail "nats_probe delete-state failed"
    t0=$(now_ms)
    map_back() { probe_map "$WORK/map.back" && [[ "$(map_version "$WORK/map.back")" -ge "$v_before" ]]; }
    wait_for 3000 map_back || fail "no map in the state bucket within 3 s of deleting it"
    t_back=$(( $(now_ms) - t0 ))
    [[ "$(ownership "$WORK/map.back")" == "$(ownership "$MAP_BEFORE")" ]] ||
        fail "the map written back differs from the one before the state bucket was deleted"
    grep -q "bucket 'aether_${CLUSTER}_state' did not exist: created it again" "$WORK"/*.err ||
        fail "no node logged that it created the state bucket again"
    echo "state: state bucket deleted; map v$(map_version "$WORK/map.back") back after ~$t_back ms"

    mapfile -t FOLLOWERS < <(others "$LEADER")
    F=${FOLLOWERS[0]}
    ALIVE=("$LEADER" "${FOLLOWERS[1]}")
    log_mark "$LEADER"
    t0=$(now_ms)
    node_kill "$F"
    wait_log 5000 "$WORK/$LEADER.out" "NodeFailed .* node=$F silent_ms=" ||
        fail "no NodeFailed for $F from $LEADER within 5 s (state bucket deleted before)"
    t_failed=$(( $(now_ms) - t0 ))
    wait_settled 10000 "$WORK/map.state" "${ALIVE[@]}"
    bad=$(join <(ownership "$MAP_BEFORE") <(ownership "$WORK/map.state") | awk -v f="$F" '$2 != $3 && $2 != f')
    [[ -z "$bad" ]] || fail "shards not owned by $F moved: $(head -n 3 <<<"$bad" | tr '\n' ';')"
    echo "state: $F killed; NodeFailed after ~$t_failed ms, its shards re-owned (map v$(map_version "$WORK/map.state"))"
    MAP_BEFORE=$WORK/map.state
fi

if [[ $PARTS == all ]]; then
    delete_lease "lease again"
fi

if [[ $PARTS == all || $PARTS == wipe ]]; then
    # Both buckets lost at once: the nats-server restarted with an empty
    # store. The nodes re-create the buckets; the winner continues above
    # the highest term it saw (no term record is left: actors/lease.h) and
    # takes over from the map it holds, so nothing moves.
    wait_settled 5000 "$WORK/map.before-wipe" "${ALIVE[@]}"
    term_before=$TERM_NOW
    for n in "${ALIVE[@]}"; do
        t=$(leader_term "$n")
        [[ -n "$t" ]] && (( t > term_before )) && term_before=$t
    done
    for n in "${ALIVE[@]}"; do
        grep -q "generation changed from" "$WORK/$n.err" &&
            fail "wipe: $n changed generation before both buckets were lost: $(grep "generation changed" "$WORK/$n.err" | head -n 1)"
    done
    log_mark "${ALIVE[@]}"
    server_kill nats
    rm -rf "$WORK/nats.js"
    server_restart nats
    t0=$(now_ms)
    wait_settled 10000 "$WORK/map.wipe" "${ALIVE[@]}"
    t_settled=$(( $(now_ms) - t0 ))
    LEADER=$LEADER_NOW
    term=$(leader_term "$LEADER")
    (( term > term_before )) || fail "wipe: $LEADER leads term $term, not above $term_before (a term repeated)"
    moved=$(join <(ownership "$WORK/map.before-wipe") <(ownership "$WORK/map.wipe") | awk '$2 != $3' | wc -l)
    (( moved == 0 )) || fail "wipe: $moved shards moved after the store was lost"
    grep -q "the state store recorded no term" "$WORK/$LEADER.err" ||
        fail "wipe: $LEADER did not say that the state store had no term record"
    gens=""
    for n in "${ALIVE[@]}"; do
        wait_for 5000 grep -qE "generation changed from [0-9a-f]{16} to [0-9a-f]{16}: the store was lost" "$WORK/$n.err" ||
            fail "wipe: $n did not say it moved to a new generation"
        gens+="$(grep -oE "generation changed from [0-9a-f]{16} to [0-9a-f]{16}" "$WORK/$n.err" | tail -n 1 | awk '{print $NF}')"$'\n'
    done
    (( $(sort -u <<<"${gens%$'\n'}" | wc -l) == 1 )) || fail "wipe: the nodes moved to different generations: $gens"
    echo "wipe: nats-server restarted with an empty store; settled after ~$t_settled ms, $LEADER leads term $term (was $term_before), nothing moved"
fi

final_checks "${NODES[@]}"
echo "PASS"
exit 0
