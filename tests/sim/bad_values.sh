#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bad_values.sh: aether-sim refuses option values that used to slip through
# (issue 13): --duration nan ran for 9223372036854776 s, --seed -1 wrapped
# to 2^64 - 1. Each must exit 2 at once naming the option.
#
#   bad_values.sh PATH/TO/aether-sim
set -u
sim=${1:?usage: bad_values.sh PATH/TO/aether-sim}
status=0
for args in "--duration nan" "--duration -nan" "--settle nan" "--loss nan" "--dup nan" \
    "--seed -1" "--seed -0" "--nodes -1" "--shards +8"; do
    # shellcheck disable=SC2086 # args holds an option and its value
    err=$(timeout 10 "$sim" $args 2>&1 >/dev/null)
    rc=$?
    opt=${args%% *}
    if [[ $rc -ne 2 || "$err" != *"$opt"* ]]; then
        echo "FAIL: aether-sim $args: exit $rc, stderr '$err' (want exit 2 naming $opt)"
        status=1
    else
        echo "ok: aether-sim $args: $err"
    fi
done
exit $status
