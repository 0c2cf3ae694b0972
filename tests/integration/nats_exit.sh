#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nats_exit.sh: aether-node exits 0 even when a nats.c thread is still
# inside the library as the process exits (tools.nats_three_nodes once saw
# a survivor that had stopped cleanly die of SIGABRT, exit 134, with nothing
# on stderr: nats.c's atexit hook destroyed the library's mutex under such a
# thread; tools/aether-node/main.c, NATS_CLOSE_WAIT_MS).
#
#   nats_exit.sh BUILD_DIR
#
# Steps (every wait bounded):
#  1. nats-server; n1 starts with the LD_PRELOAD module
#     BUILD_DIR/tests/libnats_exit_shim.so (nats_exit_shim.c), which stages
#     the race every time: a reference of the library released last, off the
#     main thread, and _freeLib held up there while the process exits;
#  2. n1 runs 1 s (--duration 1), drains (alone: at most handoff_timeout_ms
#     + 2 s) and stops; it must exit 0 within 20 s, and its stderr must show
#     that the race was staged (the library freed off the main thread).
# With nats_Close in place of nats_CloseAndWait the node dies of SIGSEGV or
# SIGABRT here every time. Takes ~6 s.
# Exit 0 on success; otherwise 1 with the reason and the tail of every log.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup exit "${1:-}"
SHIM=$(dirname "$NODE_BIN")/../tests/libnats_exit_shim.so
[[ -f "$SHIM" ]] || fail "test module $SHIM not built"

# ---- 1. the server, the node under the shim -----------------------------------------
server_start nats
URL=$(server_url nats)
NODE_ENV=("LD_PRELOAD=$SHIM")
node_start n1 "$URL" --duration 1 --handoff-timeout-ms 1100
NODE_ENV=()

# ---- 2. its exit ---------------------------------------------------------------------
node_wait n1 20000
grep -q "nats_exit_shim: the library being freed off the main thread" "$WORK/n1.err" ||
    fail "the race was not staged (no 'library being freed off the main thread' from the shim; n1 exited $NODE_RC)"
[[ "$NODE_RC" -eq 0 ]] || fail "n1 exited $NODE_RC (want 0) with a nats.c thread still inside the library at exit"
echo "PASS: n1 exited 0 with the library freed off the main thread during its exit"
exit 0
