# SPDX-License-Identifier: Apache-2.0
# js_lib.sh: what the tests of the example JavaScript consumer share
# (docs/examples/js-consumer): its installation and the comparison of its
# view with aetherctl's. Sourced after lib.sh; each test defines `ctl`
# (aetherctl COMMAND ARGS..., output in $WORK/ctl.out and ctl.err).

# The keys every consumer test looks up.
JS_KEYS="user:42,user:0,user:1,a,0,-,abcd,hello world,order/2024-01-01/17,k-ü,k-日本,z"

# js_install EXAMPLE_DIR: node >= 18 and npm, the example copied to $WORK/js
# and installed with `npm ci` (from the npm cache when it can); T0 starts
# after it (the wall time the tests report leaves npm out).
js_install() {
    command -v node >/dev/null ||
        fail "node not found: the JavaScript consumer test needs Node.js >= 18 and npm (Debian: apt-get install nodejs npm; tools/deps installs them)"
    command -v npm >/dev/null ||
        fail "npm not found: the JavaScript consumer test needs npm (Debian: apt-get install npm; tools/deps installs it)"
    local node_major t_npm
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    (( node_major >= 18 )) || fail "node $(node --version) is too old: the consumer needs Node.js >= 18"
    mkdir -p "$WORK/js"
    cp "$1/package.json" "$1/package-lock.json" "$1/consumer.js" "$WORK/js/" ||
        fail "cannot copy the example from $1"
    t_npm=$(now_ms)
    (cd "$WORK/js" && timeout 300 npm ci --prefer-offline --no-audit --no-fund --loglevel=error) \
        >"$WORK/npm.log" 2>&1 || fail "npm ci failed (offline and the registry unreachable?): $(tail -n 5 "$WORK/npm.log")"
    echo "npm ci: $(( $(now_ms) - t_npm )) ms"
    T0=$(now_ms)
}

# js_compare_views [--leader ID --term T] [--joined ID] NODE...: the
# consumer's $WORK/view.json against `aetherctl shards --json` (map version,
# term, shape, per-node counts and primary ranges), `shards --node N` for
# each NODE and `lookup` of each of JS_KEYS; no gap in its event sequence;
# with --leader/--term its leader is that one; with --joined it saw that
# node's NodeJoined. Fails the test naming every difference.
js_compare_views() {
    local args=() n k keylist why
    while [[ "${1:-}" == --* ]]; do args+=("$1" "$2"); shift 2; done
    ctl shards --json || fail "aetherctl shards --json exited $?: $(cat "$WORK/ctl.err")"
    cp "$WORK/ctl.out" "$WORK/shards.json"
    for n in "$@"; do
        ctl shards --node "$n" --json || fail "aetherctl shards --node $n exited $?: $(cat "$WORK/ctl.err")"
        cp "$WORK/ctl.out" "$WORK/shards.$n.json"
    done
    IFS=, read -r -a keylist <<<"$JS_KEYS"
    : >"$WORK/lookups.json"
    for k in "${keylist[@]}"; do
        ctl lookup --json -- "$k" || fail "aetherctl lookup $k exited $?: $(cat "$WORK/ctl.err")"
        cat "$WORK/ctl.out" >>"$WORK/lookups.json"
    done
    why=$(python3 "$(dirname "${BASH_SOURCE[0]}")/js_view_check.py" "${args[@]}" "$WORK" "$@") ||
        fail "comparing the views failed"
    [[ -z "$why" ]] || fail "the consumer's view differs from aetherctl's: $why"
}
