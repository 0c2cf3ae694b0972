#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install_test.sh SOURCE_DIR BUILD_DIR [C_COMPILER]: the installed libaether
# is usable by an embedder (ctest entry install.pkgconfig_and_find_package).
#
#  1. cmake --install BUILD_DIR into a temporary prefix; the layout is the
#     documented one (cmake/AetherInstall.cmake): shared library with its
#     SONAME, static library, include/aether/ without internal headers,
#     aether.pc, the CMake package, the two tools;
#     libaether.so exports exactly cmake/aether.map's list, each name
#     declared in an installed header; at most 8 headers, none of them
#     internal, none including ck, urcu, nats.c, xxHash or jansson;
#  2. every installed header compiles on its own from <aether/NAME.h>, in
#     C11 (-std=c11 -Wall -Wextra -Werror) and in C++17 (-std=c++17, the
#     same warnings);
#  3. pkg-config: tests/install/hello.c built with
#     `pkg-config --cflags --libs aether` (-std=c11 -Wall -Wextra -Werror)
#     and nothing else, linked against libaether.so, run; a C++17 program
#     using the API the same way; and hello.c with libaether.a and
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
for f in "$inc/aether.h" "$inc/aether_version.h" "$inc/aether_status.h" "$inc/aether_options.h" "$inc/aether_node.h" \
         "$libdir/libaether.a" "$libdir/libaether.so" \
         "$libdir/cmake/aether/aetherConfig.cmake" "$libdir/cmake/aether/aetherConfigVersion.cmake" \
         "$libdir/cmake/aether/aetherTargets.cmake" "$prefix/bin/aether-node" "$prefix/bin/aetherctl"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
for f in aether_internal.h member.h routing.h member_internal.h settings.h snapshot.h status.h; do
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
nheaders=$(ls "$inc" | wc -l)
[ "$nheaders" -le 8 ] || fail "$nheaders public headers installed (at most 8): $(ls "$inc" | tr '\n' ' ')"
if grep -n '#[[:space:]]*include[[:space:]]*<' "$inc"/*.h | grep -v -E '<(stdbool|stddef|stdint)\.h>'; then
    fail "an installed header includes more than the C library (above)"
fi
# Exactly the documented API: the version script's list, each declared in a header.
nm -D --defined-only "$libdir/libaether.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
sed -n 's/^[[:space:]]*\(aether_[a-z0-9_]*\);$/\1/p' "$src/cmake/aether.map" | sort -u >"$tmp/listed"
if ! diff -u "$tmp/listed" "$tmp/exported" >"$tmp/exports.diff"; then
    cat "$tmp/exports.diff" >&2
    fail "libaether.so does not export exactly cmake/aether.map's list (- listed only, + exported only)"
fi
while read -r sym; do
    grep -q "AETHER_API[^;]*[ *]$sym(" "$inc"/*.h || fail "exported $sym is declared in no installed header"
done <"$tmp/exported"
echo "   libaether.so exports $(wc -l <"$tmp/exported") symbols, all declared in include/aether/"
echo "   $(ls "$inc" | wc -l) headers, $soname, version $version"

export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion aether)" = "$version" ] || fail "pkg-config --modversion aether != $version"
cflags=$(pkg-config --cflags aether)

# ---- 2. every header on its own -------------------------------------------------
cxx=${CXX:-c++}
step "each installed header compiles alone (C11 and C++17)"
for h in "$inc"/*.h; do
    printf '#include <aether/%s>\nextern int aether_header_test;\n' "$(basename "$h")" |
        "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c - $cflags 2>"$tmp/hdr.log" ||
        { cat "$tmp/hdr.log" >&2; fail "include/aether/$(basename "$h") does not compile on its own (C11)"; }
    printf '#include <aether/%s>\n' "$(basename "$h")" |
        "$cxx" -std=c++17 -Wall -Wextra -Werror -fsyntax-only -x c++ - $cflags 2>"$tmp/hdr.log" ||
        { cat "$tmp/hdr.log" >&2; fail "include/aether/$(basename "$h") does not compile on its own (C++17)"; }
done

# ---- 3. pkg-config ---------------------------------------------------------------
step "pkg-config: cc -std=c11 hello.c \$(pkg-config --cflags --libs aether)"
case " $cflags " in *" -D"*) fail "pkg-config --cflags aether defines macros: $cflags" ;; esac
run_logged cc_pkgconfig "$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/hello_pc" "$src/tests/install/hello.c" \
    $cflags $(pkg-config --libs aether) -Wl,-rpath,"$(pkg-config --variable=libdir aether)"
readelf -d "$tmp/hello_pc" | grep -q "NEEDED.*\[$soname\]" || fail "hello_pc does not load $soname"
"$tmp/hello_pc" || fail "hello built with pkg-config"
# C++17: the same API from a C++ program, with pkg-config alone.
step "pkg-config: c++ -std=c++17 with <aether/aether.h>"
cat >"$tmp/hello.cpp" <<'CPP'
#include <aether/aether.h>
#include <cstdio>
#include <cstring>
int main()
{
    aether_options *opts = nullptr;
    aether_node *node = nullptr;
    if (aether_options_create(&opts) != AETHER_OK || aether_options_set(opts, "node", "cpp-1") != AETHER_OK ||
        aether_options_set(opts, "shard_count", "64") != AETHER_OK)
        return 1;
    aether_status st = aether_node_start(opts, &node);
    aether_options_destroy(opts);
    if (st != AETHER_OK || aether_node_wait_ready(node, 10000) != AETHER_OK) {
        std::fprintf(stderr, "hello.cpp: %s\n", aether_last_error());
        return 1;
    }
    aether_route r{};
    const char key[] = "user:42";
    bool ok = aether_node_route_key(node, key, std::strlen(key), &r) == AETHER_OK && r.self &&
              r.shard == 0xdc1fea7da8d2d1c2ull % 64u;
    std::printf("hello.cpp: aether %s: shard %u -> %s\n", aether_version(), r.shard, r.owner);
    aether_node_destroy(node);
    return ok ? 0 : 1;
}
CPP
run_logged cxx_pkgconfig "$cxx" -std=c++17 -Wall -Wextra -Werror -o "$tmp/hello_cpp" "$tmp/hello.cpp" \
    $cflags $(pkg-config --libs aether) -Wl,-rpath,"$(pkg-config --variable=libdir aether)"
"$tmp/hello_cpp" >/dev/null || fail "the C++17 program built with pkg-config"
# The static archive with the private requirements (pkg-config --static).
run_logged cc_pkgconfig_static "$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/hello_pc_static" \
    "$src/tests/install/hello.c" $cflags "$libdir/libaether.a" \
    $(pkg-config --static --libs aether | sed 's/-laether\b//')
if readelf -d "$tmp/hello_pc_static" | grep -q "NEEDED.*libaether"; then
    fail "hello_pc_static loads libaether.so"
fi
"$tmp/hello_pc_static" >/dev/null || fail "hello built with pkg-config --static"

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
