#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deb_package_test.sh: builds the Debian package from the build tree
# (cpack -G DEB, cmake/AetherPackage.cmake), unpacks it into a scratch root
# with dpkg -x and checks that the files land where the systemd unit, the man
# pages and the docs say (tests layer; ctest install.deb_package, ~20 s, most
# of it cpack's compression):
#  1. the package's control: name, version, conffiles (/etc/aether/aether-node.conf,
#     /etc/default/aether-node), a Depends line from dpkg-shlibdeps;
#  2. the unit: ExecStart's program is in the package and executable, its
#     --config file and its EnvironmentFile are in it; Type=notify only if
#     the daemon calls sd_notify; TimeoutStopSec above the drain bound
#     (handoff_timeout_ms of the shipped config + 2 s); the daemon accepts the
#     shipped config (--print-config, exit 0); systemd-analyze verify, when
#     present, accepts the unit;
#  3. man -l renders aether-node(8) and aetherctl(1), each naming its options
#     and its version; aetherctl(1) has every command's help (COMMANDS);
#  4. the bash completion completes commands and a command's options;
#  5. library, headers, pkg-config file, CMake package, docs and examples.
#
#   deb_package_test.sh SOURCE_DIR BUILD_DIR
# Exit 0 ok, 1 with the reason, 77 (skipped) without cpack or dpkg-deb.
set -u
src=${1:?usage: deb_package_test.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: deb_package_test.sh SOURCE_DIR BUILD_DIR}
for t in cpack dpkg-deb; do
    command -v "$t" >/dev/null || { echo "$t not installed: skipped"; exit 77; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/aether-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
t0=$(date +%s%N)

# 1. Build and inspect the package.
(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || fail "cpack: $(tail -n 20 "$work/cpack.log")"
deb=$(find "$work/out" -maxdepth 1 -name 'aether_*.deb' | head -n 1)
[[ -n "$deb" ]] || fail "no aether_*.deb in $work/out: $(tail -n 5 "$work/cpack.log")"
version=$(sed -n 's/^project(aether VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ "$(dpkg-deb -f "$deb" Package)" == aether ]] || fail "package name: $(dpkg-deb -f "$deb" Package)"
[[ "$(dpkg-deb -f "$deb" Version)" == "$version" ]] || fail "package version $(dpkg-deb -f "$deb" Version), want $version"
dpkg-deb -f "$deb" Depends | grep -q 'libnats' || fail "Depends lacks libnats: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -e "$deb" "$work/control"
for f in /etc/aether/aether-node.conf /etc/default/aether-node; do
    grep -qx "$f" "$work/control/conffiles" || fail "$f is not a conffile: $(cat "$work/control/conffiles")"
done
root=$work/root
dpkg-deb -x "$deb" "$root"
nfiles=$(find "$root" -type f -o -type l | wc -l)

# 2. The unit and what it names.
unit=$root/usr/lib/systemd/system/aether-node.service
[[ -f "$unit" ]] || fail "no unit at /usr/lib/systemd/system/aether-node.service"
cmp -s "$unit" "$src/docs/examples/systemd/aether-node.service" || fail "the shipped unit differs from docs/examples/systemd/aether-node.service"
key() { sed -n "s/^$1=//p" "$unit" | head -n 1; }
exec_start=$(key ExecStart)
prog=${exec_start%% *}
[[ -x "$root$prog" ]] || fail "ExecStart's $prog is not an executable of the package"
conf=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$exec_start")
[[ -n "$conf" && -f "$root$conf" ]] || fail "ExecStart's --config '$conf' is not in the package"
envfile=$(key EnvironmentFile)
envfile=${envfile#-}
[[ -f "$root$envfile" ]] || fail "EnvironmentFile $envfile is not in the package"
type=$(key Type)
# sd_notify is linked, or libsystemd is loaded by its soname when systemd
# starts the node (tools/aether-node/notify.c: dlopen under $NOTIFY_SOCKET).
if nm -D "$root$prog" 2>/dev/null | grep -q ' U sd_notify' ||
   grep -aq 'libsystemd\.so\.0' "$root$prog"; then
    [[ "$type" == notify ]] || fail "$prog calls sd_notify but the unit says Type=$type"
else
    [[ "$type" == simple ]] || fail "$prog does not call sd_notify but the unit says Type=$type"
fi
"$root$prog" --config "$root$conf" --node n1 --print-config >"$work/print.conf" 2>"$work/print.err" ||
    fail "$prog refuses the shipped $conf: $(cat "$work/print.err")"
handoff=$(sed -n 's/^handoff_timeout_ms = //p' "$work/print.conf")
stop_s=$(key TimeoutStopSec)
[[ "$stop_s" =~ ^[0-9]+$ ]] || fail "TimeoutStopSec '$stop_s' is not whole seconds"
(( stop_s * 1000 > handoff + 2000 )) || fail "TimeoutStopSec ${stop_s}s is not above the drain bound ${handoff} + 2000 ms"
[[ -n "$(key Restart)" ]] || fail "the unit has no Restart policy"
if command -v systemd-analyze >/dev/null; then
    # verify looks the binaries up on this machine: point ExecStart at the copy
    # (and --man=no: the man pages are not installed here).
    sed "s|^ExecStart=$prog|ExecStart=$root$prog|" "$unit" >"$work/aether-node.service"
    SYSTEMD_LOG_LEVEL=err systemd-analyze verify --man=no "$work/aether-node.service" >"$work/verify.log" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$work/verify.log")"
fi

# 3. Man pages.
for page in usr/share/man/man8/aether-node.8.gz usr/share/man/man1/aetherctl.1.gz; do
    [[ -f "$root/$page" ]] || fail "no man page /$page"
    name=$(basename "$page" | cut -d. -f1)
    MANWIDTH=80 man -l "$root/$page" >"$work/$name.man" 2>"$work/$name.manerr" || fail "man -l /$page: $(cat "$work/$name.manerr")"
    grep -q "$version" "$work/$name.man" || fail "$name(8/1) does not name version $version"
done
grep -q -- "--nats" "$work/aether-node.man" || fail "aether-node(8) does not list --nats"
grep -q "lookup" "$work/aetherctl.man" || fail "aetherctl(1) does not list lookup"
if ! grep -q "^COMMANDS" "$work/aetherctl.man" || ! grep -q "usage: aetherctl lookup KEY" "$work/aetherctl.man"; then
    fail "aetherctl(1) has no COMMANDS section with each command's help"
fi

# 4. Completion.
comp=$root/usr/share/bash-completion/completions/aetherctl
[[ -f "$comp" ]] || fail "no bash completion at /usr/share/bash-completion/completions/aetherctl"
complete_words() { # WORDS...: what _aetherctl offers for the last word
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _aetherctl; echo "${COMPREPLY[*]}"' _ "$comp" "$@"
}
[[ "$(complete_words aetherctl loo)" == lookup ]] || fail "completion of 'aetherctl loo': '$(complete_words aetherctl loo)'"
[[ "$(complete_words aetherctl lookup --sh)" == --shard ]] || fail "completion of 'aetherctl lookup --sh': '$(complete_words aetherctl lookup --sh)'"
[[ "$(complete_words aetherctl drain --wa)" == --wait ]] || fail "completion of 'aetherctl drain --wa': '$(complete_words aetherctl drain --wa)'"
ncmds=$(complete_words aetherctl "" | wc -w)

# 5. Library, headers and the rest.
for f in usr/bin/aetherctl usr/lib/libaether.so "usr/lib/libaether.so.$(cut -d. -f1,2 <<<"$version")" usr/lib/libaether.a \
         usr/include/aether/aether.h usr/include/aether/aether_version.h usr/lib/pkgconfig/aether.pc \
         usr/lib/cmake/aether/aetherConfig.cmake usr/share/doc/aether/copyright usr/share/doc/aether/docs/configuration.md \
         usr/share/doc/aether/examples/prometheus/aether-alerts.yml; do
    [[ -e "$root/$f" ]] || fail "/$f is not in the package"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "PASS: $(basename "$deb"), $(stat -c %s "$deb") bytes, $nfiles files; unit Type=$type, TimeoutStopSec ${stop_s}s > drain bound $(( handoff + 2000 )) ms; man -l renders 2 pages; completion offers $ncmds words; $ms ms"
