#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/sim/determinism.sh BIN: the simulator's output is a function of its
# arguments. Runs aether-sim twice with the same seed and a full trace
# (every event, fault and domain warning, with simulated timestamps) and
# compares the two outputs byte for byte; then checks that another seed
# gives a different trace (the seed does steer the run).
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--nodes 7 --duration 40 --all-faults --shards 48 --replication 2 --trace --log-level info)
"$bin" --seed 4242 "${args[@]}" >"$tmp/a.txt"
"$bin" --seed 4242 "${args[@]}" >"$tmp/b.txt"
"$bin" --seed 4243 "${args[@]}" >"$tmp/c.txt"
lines=$(wc -l <"$tmp/a.txt")
if ! cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
  echo "determinism: two runs of seed 4242 differ:" >&2
  diff "$tmp/a.txt" "$tmp/b.txt" | head -20 >&2
  exit 1
fi
if [ "$lines" -lt 200 ]; then
  echo "determinism: only $lines trace lines: the run did not do much" >&2
  exit 1
fi
if cmp -s "$tmp/a.txt" "$tmp/c.txt"; then
  echo "determinism: seeds 4242 and 4243 gave the same trace" >&2
  exit 1
fi
# The adversary (its own generator, its hub endpoint hearing the network)
# is part of the same function: twice the same trace, whatever the verdict.
adv=(--soak --duration 30 --extra-faults adversary --trace --log-level info)
"$bin" --seed 300001 "${adv[@]}" >"$tmp/d.txt" || true
"$bin" --seed 300001 "${adv[@]}" >"$tmp/e.txt" || true
if ! cmp -s "$tmp/d.txt" "$tmp/e.txt"; then
  echo "determinism: two runs of seed 300001 with the adversary differ:" >&2
  diff "$tmp/d.txt" "$tmp/e.txt" | head -20 >&2
  exit 1
fi
if ! grep -q "FAULT adversary" "$tmp/d.txt"; then
  echo "determinism: the adversary did nothing in seed 300001" >&2
  exit 1
fi
echo "determinism: seed 4242 twice: $lines identical lines; seed 4243 differs; the adversary's seed 300001 twice: identical"
