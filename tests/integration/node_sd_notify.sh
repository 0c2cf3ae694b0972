#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# node_sd_notify.sh: aether-node --nats tells systemd its state through
# $NOTIFY_SOCKET (sd_notify, libsystemd), as docs/examples/systemd/aether-node.service
# (Type=notify) relies on: READY=1 once its member runs, STOPPING=1 when SIGTERM
# starts its drain, then exit 0 (tests layer).
#
#   node_sd_notify.sh BUILD_DIR
#
# A python3 listener binds an AF_UNIX datagram socket in $WORK and records
# what arrives; one nats-server and one node (--shards 64). Every wait is
# bounded. ~9 s: a lone node is the last Active one, its drain is refused and
# it waits its drain bound (handoff_timeout_ms + 2 s) before it exits 0.
# Exit 0 on success, 1 with the reason.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_setup sd-notify "${1:-}"
command -v python3 >/dev/null || fail "python3 is needed for the notify socket"
server_start nats
URL=$(server_url nats)
SOCK=$WORK/notify.sock
bg_start listener python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
s.settimeout(30)
while True:
    print(s.recv(4096).decode().replace("\n", "|"), flush=True)
' "$SOCK"
wait_log 5000 "$WORK/listener.log" '^bound' || fail "the notify listener did not bind"
NODE_ENV=(NOTIFY_SOCKET="$SOCK")
node_start n1 "$URL"
NODE_ENV=()
wait_log 10000 "$WORK/listener.log" '^READY=1\|STATUS=' || fail "no READY=1 on the notify socket within 10 s"
wait_log 10000 "$WORK/n1.out" ' LEADER elected ' || fail "n1 was not elected"
grep -q '^STOPPING=1' "$WORK/listener.log" && fail "STOPPING=1 before any signal"
node_stop n1 15000
[[ "$NODE_RC" -eq 0 ]] || fail "n1 exited $NODE_RC after SIGTERM, want 0"
wait_log 2000 "$WORK/listener.log" '^STOPPING=1\|STATUS=draining' || fail "no STOPPING=1 after SIGTERM"
bg_stop listener 1000
echo "notify: $(tr '\n' ' ' <"$WORK/listener.log")"
echo "PASS"
