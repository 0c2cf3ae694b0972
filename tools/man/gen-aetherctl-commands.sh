#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# gen-aetherctl-commands.sh: writes a help2man include with a COMMANDS
# section: each command of `aetherctl --help` with its own `aetherctl help
# COMMAND` text, verbatim, so aetherctl(1) documents every command and option
# from the program itself (cmake/AetherPackage.cmake).
#
#   gen-aetherctl-commands.sh AETHERCTL OUT
set -euo pipefail
ctl=${1:?usage: gen-aetherctl-commands.sh AETHERCTL OUT}
out=${2:?usage: gen-aetherctl-commands.sh AETHERCTL OUT}
cmds=$("$ctl" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1; next } on && !/^  / { on = 0 }')
[[ -n "$cmds" ]] || { echo "gen-aetherctl-commands: no commands in '$ctl --help'" >&2; exit 1; }
{
    echo "[COMMANDS]"
    for c in $cmds; do
        [[ $c == help ]] && continue
        echo ".SS $c"
        echo ".nf"
        # roff: a leading dot or quote would be a request; backslashes escaped.
        "$ctl" help "$c" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
        echo ".fi"
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
