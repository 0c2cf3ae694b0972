#!/usr/bin/env bash
# install_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]: the installed libaether
# is usable by an embedder (ctest entry install.pkgconfig_and_find_package).
#
#  1. cmake --install BUILD_DIR into a temporary prefix; the layout is the
#     documented one (cmake/AetherInstall.cmake): shared library with its
#     SONAME, static library, include/aether/ without internal headers,
#     aether.pc, the CMake package, the two tools;
#  2. every installed header compiles on its own from <aether/NAME.h>;
#  3. pkg-config: tests/install/hello.c built with
#     `pkg-config --cflags --libs aether` (-Wall -Wextra -Werror), linked
#     against libaether.so, run; and with libaether.a and
#     `pkg-config --static --libs`, run;
#  4. find_package(aether): tests/install/CMakeLists.txt builds hello.c
#     against aether::aether (shared) and aether::aether_static, both run;
#  5. the embedding example docs/examples/embed built with find_package and
#     run (a join and a drain while messages flow, checked);
#  6. the prefix moved elsewhere still works through pkg-config (aether.pc
#     finds its prefix from its own directory).
# Needs cmake, pkg-config, a C compiler, nm and readelf. ~10 s on 2 cores.
set -euo pipefail

src=${1:?usage: install_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]}
build=${2:?usage: install_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]}
cc=${3:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aether-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
t0=$SECONDS

step() { printf '== [%3ds] %s\n' $((SECONDS - t0)) "$*"; }
fail() { echo "install_test: FAILED: $*" >&2; exit 1; }
run_logged() { # run_logged NAME CMD...: quiet unless it fails
    local log=$tmp/$1.log
    shift
    "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$*"; }
}

step "cmake --install $build --prefix $prefix"
run_logged install cmake --install "$build" --prefix "$prefix"

# ---- 1. layout ------------------------------------------------------------------
pc=$(find "$prefix" -name aether.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no aether.pc installed"
libdir=$(dirname "$(dirname "$pc")")
inc=$prefix/include/aether
for f in "$inc/aether.h" "$inc/aether_version.h" "$inc/member.h" "$inc/routing.h" \
         "$libdir/libaether.a" "$libdir/libaether.so" \
         "$libdir/cmake/aether/aetherConfig.cmake" "$libdir/cmake/aether/aetherConfigVersion.cmake" \
         "$libdir/cmake/aether/aetherTargets.cmake" "$prefix/bin/aether-node" "$prefix/bin/aetherctl"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
for f in member_internal.h json_util.h timer_heap.h; do
    [ ! -e "$inc/$f" ] || fail "internal header installed: include/aether/$f"
done
version=$(sed -n 's/^#define AETHER_VERSION_STRING "\(.*\)"$/\1/p' "$inc/aether_version.h")
[ -n "$version" ] || fail "aether_version.h has no AETHER_VERSION_STRING"
soname=$(readelf -d "$libdir/libaether.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
case "$soname" in
    libaether.so.[0-9]*) ;;
    *) fail "libaether.so has SONAME '$soname'" ;;
esac
[ -e "$libdir/$soname" ] || fail "no $soname link in ${libdir#"$prefix"/}"
[ -e "$libdir/libaether.so.$version" ] || fail "no libaether.so.$version"
exported_other=$(nm -D --defined-only "$libdir/libaether.so" | awk '{print $3}' | grep -v '^aether_' || true)
[ -z "$exported_other" ] || fail "libaether.so exports non-aether_ symbols: $(echo $exported_other | head -c 200)"
echo "   $(ls "$inc" | wc -l) headers, $soname, version $version"

export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion aether)" = "$version" ] || fail "pkg-config --modversion aether != $version"
cflags=$(pkg-config --cflags aether)

# ---- 2. every header on its own -------------------------------------------------
step "each installed header compiles alone"
for h in "$inc"/*.h; do
    printf '#include <aether/%s>\n' "$(basename "$h")" |
        "$cc" -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -x c - $cflags 2>"$tmp/hdr.log" ||
        { cat "$tmp/hdr.log" >&2; fail "include/aether/$(basename "$h") does not compile on its own"; }
done

# ---- 3. pkg-config ---------------------------------------------------------------
step "pkg-config: cc hello.c \$(pkg-config --cflags --libs aether)"
run_logged cc_pkgconfig "$cc" -std=gnu11 -Wall -Wextra -Werror -o "$tmp/hello_pc" "$src/tests/install/hello.c" \
    $cflags $(pkg-config --libs aether) -Wl,-rpath,"$(pkg-config --variable=libdir aether)"
readelf -d "$tmp/hello_pc" | grep -q "NEEDED.*\[$soname\]" || fail "hello_pc does not load $soname"
"$tmp/hello_pc" || fail "hello built with pkg-config"
# The static archive with the private requirements (pkg-config --static).
run_logged cc_pkgconfig_static "$cc" -std=gnu11 -Wall -Wextra -Werror -o "$tmp/hello_pc_static" \
    "$src/tests/install/hello.c" $cflags "$libdir/libaether.a" \
    $(pkg-config --static --libs aether | sed 's/-laether\b//')
if readelf -d "$tmp/hello_pc_static" | grep -q "NEEDED.*libaether"; then
    fail "hello_pc_static loads libaether.so"
fi
"$tmp/hello_pc_static" >/dev/null || fail "hello built with pkg-config --static"

# A program that also calls nats.c (the NATS wiring hands it natsConnection
# pointers) links with pkg-config alone; the Cflags carry no -D of a
# dependency (ck's pkg-config file adds -D__x86_64__).
step "pkg-config: a program calling nats.c through the installed headers"
case " $cflags " in *" -D"*) fail "pkg-config --cflags aether defines macros: $cflags" ;; esac
printf '%s\n' '#include <aether/aether.h>' '#include <aether/nats_conn.h>' \
    'int main(void) { natsConnection_Destroy(NULL); return aether_status_str(AETHER_OK)[0] == 0; }' \
    >"$tmp/uses_nats.c"
run_logged cc_uses_nats "$cc" -std=gnu11 -Wall -Wextra -Werror -o "$tmp/uses_nats" "$tmp/uses_nats.c" \
    $cflags $(pkg-config --libs aether) -Wl,-rpath,"$(pkg-config --variable=libdir aether)"
"$tmp/uses_nats" || fail "the program calling nats.c through aether's headers"

# ---- 4. find_package --------------------------------------------------------------
step "find_package(aether): tests/install (aether::aether, aether::aether_static)"
run_logged cfg_consumer cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_logged build_consumer cmake --build "$tmp/consumer" -j 2
readelf -d "$tmp/consumer/hello_shared" | grep -q "NEEDED.*\[$soname\]" || fail "hello_shared does not load $soname"
if readelf -d "$tmp/consumer/hello_static" | grep -q "NEEDED.*libaether"; then
    fail "hello_static loads libaether.so"
fi
"$tmp/consumer/hello_shared" || fail "hello_shared"
"$tmp/consumer/hello_static" || fail "hello_static"

# ---- 5. the embedding example ----------------------------------------------------
step "find_package(aether): docs/examples/embed (actor-runtime)"
run_logged cfg_embed cmake -S "$src/docs/examples/embed" -B "$tmp/embed" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_logged build_embed cmake --build "$tmp/embed" -j 2
readelf -d "$tmp/embed/actor-runtime" | grep -q "NEEDED.*\[$soname\]" || fail "actor-runtime does not load $soname"
"$tmp/embed/actor-runtime" >"$tmp/embed.log" 2>&1 || { cat "$tmp/embed.log" >&2; fail "actor-runtime"; }
grep -E '^(messages sent|OK)' "$tmp/embed.log" | sed 's/^/   /'

# ---- 6. relocated prefix -----------------------------------------------------------
step "the installed tree moved elsewhere (pkg-config)"
mv "$prefix" "$tmp/moved"
export PKG_CONFIG_PATH=$tmp/moved/${libdir#"$prefix"/}/pkgconfig
run_logged cc_moved "$cc" -std=gnu11 -o "$tmp/hello_moved" "$src/tests/install/hello.c" \
    $(pkg-config --cflags --libs aether) -Wl,-rpath,"$(pkg-config --variable=libdir aether)"
"$tmp/hello_moved" >/dev/null || fail "hello built against the moved prefix"

step "OK"
