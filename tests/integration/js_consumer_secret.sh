#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# js_consumer_secret.sh: the example JavaScript consumer with the cluster
# secret (docs/examples/js-consumer --cluster-secret-file; issue 13 item 1)
# against a cluster that has it: it builds its view from authentic data only
# and refuses, counts and logs what a client without the secret sends, and a
# replay of what a node sent (tests layer).
#
#   js_consumer_secret.sh BUILD_DIR      (or BUILD_DIR/bin/aether-node)
#
# Steps (every wait bounded; lib.sh kills everything in its EXIT trap):
#  1. node and npm; the example copied to $WORK and installed with `npm ci`
#     (not counted in the wall time); --check-vectors-only with
#     tests/vectors/auth.tsv (made by the C code): the JavaScript key
#     derivation and MAC give every tag of the file byte for byte; a secret
#     file too short is refused with exit 2 and one line naming it;
#  2. `aetherctl secret new`; cluster_up 3 with --event-stream and the
#     secret; a capture helper (node, the `nats` package) keeps the first map
#     publication it sees, with its genuine tag;
#  3. the consumer with the secret reaches the current map version, n4 joins
#     (with the secret) and it follows: nothing genuine was refused (auth
#     refused 0: the tags, the stored map's freshness against the server's
#     time and the replay windows accept everything the nodes sent);
#  4. the attack: the captured map publication sent again 3 times with its
#     tag (replays), and nats_unsealed --attack (an unsealed LeaderElected of
#     "evil" at term T+1000 that the event stream stores, an unsealed map
#     with version V+1000, a genuine event replayed 3 times with its tag,
#     unsealed commands and a forged lease value the nodes refuse);
#  5. the consumer refused them: reasons no_tag >= 2 (from the map subject
#     and the stream) and replayed >= 6 (3 maps, 3 events), one
#     UNAUTHENTICATED log line at least; its view still equals `aetherctl
#     shards --json --cluster-secret-file` (map version, term, per-node
#     counts and ranges, 12 keys' shard and primary), its leader is the real
#     one at its term, no gap;
#  6. a consumer with ANOTHER secret believes nothing: no map (the stored one
#     refused: wrong_mac from source kv), no event; a consumer WITHOUT a
#     secret (as before the secret existed) replays the stream and takes the
#     forged LeaderElected: its leader is "evil" (what the secret prevents);
#  7. SIGTERM stops the consumer with exit 0 and a final line counting the
#     refusals; the final checks of lib.sh;
#  8. the nodes killed, an unsealed map (version V+1000) written straight to
#     the state bucket: a consumer with the secret refuses the stored map
#     (source kv, no_tag) and has none; one without the secret takes it.
# Takes ~15-20 s after npm ci; worst case ~90 s of bounded waits.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=js_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/js_lib.sh"

it_setup js_secret "${1:-}"
it_need_helpers
CTL_BIN=$(dirname "$NODE_BIN")/aetherctl
[[ -x "$CTL_BIN" ]] || fail "aetherctl not found at $CTL_BIN"
UNSEALED_BIN=$(dirname "$PROBE_BIN")/nats_unsealed
[[ -x "$UNSEALED_BIN" ]] || fail "test helper $UNSEALED_BIN not built"
command -v python3 >/dev/null || fail "python3 is needed to compare the JSON views"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXAMPLE=$SRC/docs/examples/js-consumer
AUTH_VECTORS=$SRC/tests/vectors/auth.tsv
SECRET=$WORK/cluster.secret

# 1. node, npm, the example, the vectors.
js_install "$EXAMPLE"
node "$WORK/js/consumer.js" --check-vectors-only --auth-vectors "$AUTH_VECTORS" >"$WORK/vectors.out" 2>&1 ||
    fail "the JavaScript tag disagrees with the C code's vectors: $(cat "$WORK/vectors.out")"
want=$(grep -cv '^#' "$AUTH_VECTORS")
grep -q "^auth vectors: $want ok, 0 failed" "$WORK/vectors.out" || fail "expected $want auth vectors ok: $(cat "$WORK/vectors.out")"
echo "auth vectors: $want ok in JavaScript"
printf 'short\n' >"$WORK/short.secret"
node "$WORK/js/consumer.js" --nats nats://127.0.0.1:1 --cluster-secret-file "$WORK/short.secret" \
    >"$WORK/short.out" 2>"$WORK/short.err"
rc=$?
[[ $rc -eq 2 && $(wc -l <"$WORK/short.err") -eq 1 ]] && grep -q "$WORK/short.secret" "$WORK/short.err" ||
    fail "a 5-byte secret file: exit $rc, want 2 and one line naming it: $(cat "$WORK/short.err")"
echo "short secret refused: $(cat "$WORK/short.err")"

# ctl COMMAND ARGS...: aetherctl with the secret, output in $WORK/ctl.out.
ctl() {
    it_clean_env
    env "${CLEAN_ENV[@]}" timeout -s KILL 30 "$CTL_BIN" "$1" --nats "$URL" --cluster "$CLUSTER" \
        --cluster-secret-file "$SECRET" "${@:2}" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
}
# view FILE EXPR: a Python expression over the view JSON `v` (empty if unreadable).
view() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

# 2. The secret, the cluster, the capture helper.
it_clean_env
env "${CLEAN_ENV[@]}" "$CTL_BIN" secret new "$SECRET" >"$WORK/secret.out" 2>&1 ||
    fail "aetherctl secret new: $(cat "$WORK/secret.out")"
env "${CLEAN_ENV[@]}" "$CTL_BIN" secret new "$WORK/other.secret" >>"$WORK/secret.out" 2>&1 ||
    fail "aetherctl secret new (another): $(cat "$WORK/secret.out")"
cluster_up 3 --event-stream --cluster-secret-file "$SECRET"
term0=$(leader_term "$LEADER")
cat >"$WORK/js/replay_map.js" <<'EOF'
// replay_map.js URL CLUSTER GO_FILE: keeps the first map publication (bytes and
// headers, its genuine Aether-Auth tag among them); once GO_FILE exists
// (within 60 s) publishes it 3 times as it was: replays.
"use strict";
const fs = require("fs");
const { connect } = require("nats");
(async () => {
  const [url, cluster, go] = process.argv.slice(2);
  const nc = await connect({ servers: url, timeout: 5000 });
  const sub = nc.subscribe(`aether.${cluster}.map`, { max: 1 });
  console.log("subscribed");
  for await (const m of sub) {
    console.log(`captured map, tag ${m.headers ? m.headers.get("Aether-Auth") : "(none)"}`);
    for (let i = 0; i < 600 && !fs.existsSync(go); i++) await new Promise((r) => setTimeout(r, 100));
    if (!fs.existsSync(go)) throw new Error("never told to replay");
    for (let i = 0; i < 3; i++) nc.publish(m.subject, m.data, { headers: m.headers });
    await nc.flush();
    console.log("replayed map 3");
  }
  await nc.close();
})().catch((err) => { console.log(`replay_map: ${err.message}`); process.exit(1); });
EOF
bg_start replay_map node "$WORK/js/replay_map.js" "$URL" "$CLUSTER" "$WORK/go"
wait_log 10000 "$WORK/replay_map.log" "^subscribed" || fail "the capture helper did not subscribe: $(cat "$WORK/replay_map.log")"

# 3. The consumer with the secret, then a join.
bg_start consumer node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --replay --cluster-secret-file "$SECRET" \
    --view "$WORK/view.json" --keys "$JS_KEYS" --duration 90
v0=$(map_version "$WORK/map.up")
wait_for 10000 eval '[[ "$(view "$WORK/view.json" "v[\"map_version\"]")" == "$v0" ]]' ||
    fail "the consumer with the secret did not reach map v$v0 within 10 s (it has v$(view "$WORK/view.json" 'v["map_version"]'))"
echo "consumer: view at map v$v0 (source $(view "$WORK/view.json" 'v["map_source"]'))"
node_start n4 "$URL" --event-stream --cluster-secret-file "$SECRET"
NODES+=(n4)
wait_settled 15000 "$WORK/map.join" "${NODES[@]}"
v1=$(map_version "$WORK/map.join")
(( v1 > v0 )) || fail "the join did not change the map (v$v0 -> v$v1)"
wait_for 10000 eval '[[ "$(view "$WORK/view.json" "v[\"map_version\"]")" == "$v1" ]]' ||
    fail "the consumer did not follow to map v$v1 within 10 s (it has v$(view "$WORK/view.json" 'v["map_version"]'))"
wait_for 5000 eval '[[ "$(view "$WORK/view.json" "v[\"statuses\"].get(\"n4\")")" == active ]]' ||
    fail "the consumer did not see n4's NodeJoined"
[[ "$(view "$WORK/view.json" 'v["auth"]["enabled"]')" == True ]] || fail "the view says the secret is off: $(cat "$WORK/view.json")"
refused=$(view "$WORK/view.json" 'v["auth"]["refused"]')
[[ "$refused" == 0 ]] || fail "the consumer refused $refused genuine messages: $(view "$WORK/view.json" 'v["auth"]'); $(grep -m3 UNAUTHENTICATED "$WORK/consumer.log")"
events1=$(view "$WORK/view.json" 'v["events"]')
echo "consumer: followed the join to map v$v1, $events1 events, nothing genuine refused"

# 4. The attack.
wait_log 5000 "$WORK/replay_map.log" "^captured map, tag 1 " ||
    fail "no sealed map publication captured: $(cat "$WORK/replay_map.log")"
touch "$WORK/go"
wait_log 5000 "$WORK/replay_map.log" "^replayed map 3" || fail "the map was not replayed: $(cat "$WORK/replay_map.log")"
A=$(others "$LEADER" | head -n 1)
B=$(others "$LEADER" "$A" | head -n 1)
"$UNSEALED_BIN" --nats "$URL" --cluster "$CLUSTER" --attack --victim "$A" --rejoin "$B" >"$WORK/attack.log" 2>&1 ||
    fail "nats_unsealed --attack: $(cat "$WORK/attack.log")"
echo "attack: $(tr '\n' ' ' <"$WORK/attack.log")"
grep -q "^replayed " "$WORK/attack.log" || fail "nats_unsealed replayed no event: $(cat "$WORK/attack.log")"

# 5. Refused and counted; the view unmoved.
refusals_in() {
    [[ "$(view "$WORK/view.json" 'v["auth"]["reasons"].get("no_tag", 0) >= 2 and v["auth"]["reasons"].get("replayed", 0) >= 6 and v["auth"]["sources"].get("map", 0) >= 4 and v["auth"]["sources"].get("event", 0) >= 4')" == True ]]
}
wait_for 5000 refusals_in || fail "the consumer's refusals $(view "$WORK/view.json" 'v["auth"]'), want no_tag >= 2, replayed >= 6, map >= 4, event >= 4"
grep -q "^UNAUTHENTICATED " "$WORK/consumer.log" || fail "no UNAUTHENTICATED line in the consumer's log"
echo "consumer refused: $(view "$WORK/view.json" 'v["auth"]'); first line: $(grep -m1 "^UNAUTHENTICATED " "$WORK/consumer.log")"
wait_settled 10000 "$WORK/map.after" "${NODES[@]}"
v2=$(map_version "$WORK/map.after")
wait_for 10000 eval '[[ "$(view "$WORK/view.json" "v[\"map_version\"]")" == "$v2" ]]' ||
    fail "the consumer's view is at v$(view "$WORK/view.json" 'v["map_version"]'), the stored map at v$v2"
js_compare_views --leader "$LEADER" --term "$term0" "${NODES[@]}"
echo "consumer: map v$v2, ${#NODES[@]} nodes' counts and ranges, 12 keys equal aetherctl's; leader $LEADER term $term0; no gap"

# 6. Another secret believes nothing; no secret believes the forgery.
bg_start other node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --replay --cluster-secret-file "$WORK/other.secret" \
    --view "$WORK/view.other.json" --duration 3
bg_start plain node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --replay --view "$WORK/view.plain.json" --duration 3
wait_for 15000 eval '! kill -0 ${BG_PID[other]} 2>/dev/null && ! kill -0 ${BG_PID[plain]} 2>/dev/null' ||
    fail "the two short consumers did not stop after --duration 3"
bg_stop other 1000
bg_stop plain 1000
[[ "$(view "$WORK/view.other.json" 'v["map_version"] is None and v["events"] == 0 and v["auth"]["sources"].get("kv", 0) >= 1 and v["auth"]["reasons"].get("wrong_mac", 0) >= '"$events1")" == True ]] ||
    fail "a consumer with another secret believed something: $(cat "$WORK/view.other.json")"
echo "another secret: no map, no event; refused $(view "$WORK/view.other.json" 'v["auth"]')"
[[ "$(view "$WORK/view.plain.json" 'v["leader"]')" == evil ]] ||
    fail "the consumer without a secret did not take the forged LeaderElected (leader $(view "$WORK/view.plain.json" 'v["leader"]')): the attack did not reach the stream?"
[[ "$(view "$WORK/view.plain.json" 'v["auth"]["enabled"]')" == False ]] || fail "the plain consumer says it verifies"
echo "no secret: leader 'evil' at term $(view "$WORK/view.plain.json" 'v["leader_term"]') from the forged event (what the secret prevents)"

# 7. Clean stop.
bg_stop consumer 5000
[[ "$BG_RC" == 0 ]] || fail "the consumer exited $BG_RC on SIGTERM: $(tail -n 5 "$WORK/consumer.log")"
grep -q "^final: map v$v2, .* 0 gaps, [0-9]* unauthenticated refused" "$WORK/consumer.log" ||
    fail "unexpected final line: $(tail -n 1 "$WORK/consumer.log")"
echo "$(tail -n 1 "$WORK/consumer.log")"
final_checks "${NODES[@]}"

# 8. A forged stored map: the nodes are killed first (so none rewrites or
# reacts to it), then an unsealed map with version V+1000 is written
# straight to the state bucket. The consumer with the secret refuses it
# (source kv, no_tag) and has no map; one without the secret takes it.
for n in "${NODES[@]}"; do node_kill "$n"; done
cat >"$WORK/js/forge_kv.js" <<'EOF'
// forge_kv.js URL CLUSTER: the stored map, version + 1000, written back unsealed.
"use strict";
const { connect } = require("nats");
(async () => {
  const [url, cluster] = process.argv.slice(2);
  const nc = await connect({ servers: url, timeout: 5000 });
  const bucket = `aether_${cluster}_state`;
  const kv = await nc.jetstream().views.kv(bucket, { bindOnly: true });
  // ShardMap format 2 (docs/wire.md): the version is the u64 at offset 12.
  const b = new Uint8Array((await kv.get("map")).value);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = dv.getBigUint64(12, true) + 1000n;
  dv.setBigUint64(12, version, true);
  const ack = await nc.jetstream().publish(`$KV.${bucket}.map`, b);
  console.log(`forged map v${version} at revision ${ack.seq}`);
  await nc.close();
})().catch((err) => { console.log(`forge_kv: ${err.message}`); process.exit(1); });
EOF
timeout 30 node "$WORK/js/forge_kv.js" "$URL" "$CLUSTER" >"$WORK/forge_kv.log" 2>&1 || fail "forge_kv: $(cat "$WORK/forge_kv.log")"
vf=$(( v2 + 1000 ))
grep -q "^forged map v$vf " "$WORK/forge_kv.log" || fail "forge_kv: $(cat "$WORK/forge_kv.log")"
for who in kvsecret kvplain; do
    extra=()
    [[ $who == kvsecret ]] && extra=(--cluster-secret-file "$SECRET")
    timeout 30 node "$WORK/js/consumer.js" --nats "$URL" --cluster "$CLUSTER" --replay "${extra[@]}" \
        --view "$WORK/view.$who.json" --duration 2 >"$WORK/$who.log" 2>&1
done
[[ "$(view "$WORK/view.kvsecret.json" 'v["map_version"] is None and v["auth"]["sources"].get("kv", 0) >= 1 and v["auth"]["reasons"].get("no_tag", 0) >= 1')" == True ]] ||
    fail "the consumer with the secret did not refuse the forged stored map: $(cat "$WORK/view.kvsecret.json")"
grep -q "^UNAUTHENTICATED stored map on \$KV.aether_${CLUSTER}_state.map refused: no Aether-Auth tag" "$WORK/kvsecret.log" ||
    fail "no refusal line for the forged stored map: $(cat "$WORK/kvsecret.log")"
[[ "$(view "$WORK/view.kvplain.json" 'v["map_version"]')" == "$vf" ]] ||
    fail "the consumer without a secret has map v$(view "$WORK/view.kvplain.json" 'v["map_version"]'), want the forged v$vf"
echo "forged stored map v$vf: refused with the secret (no map), taken without it"
echo "PASS: js_consumer_secret ($(( $(now_ms) - T0 )) ms after npm ci)"
