# SPDX-License-Identifier: Apache-2.0
# GenExampleConfig.cmake: writes OUT, the example /etc/aether/aether-node.conf
# of the Debian package, from `aether-node --print-config` (NODE), so every
# key and default is the program's own and never drifts. The node id is a
# per-host setting (AETHER_NODE in /etc/default/aether-node): commented out.
#   cmake -DNODE=<aether-node> -DOUT=<file> -P GenExampleConfig.cmake
execute_process(COMMAND ${NODE} --print-config --nats nats://127.0.0.1:4222 --node n1
                OUTPUT_VARIABLE cfg RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "aether-node --print-config failed (${rc}): ${err}")
endif()
string(REGEX REPLACE "(^|\n)node = n1\n" "\\1# node = (per host: AETHER_NODE in /etc/default/aether-node)\n" cfg "${cfg}")
if(NOT cfg MATCHES "# node = \\(per host")
  message(FATAL_ERROR "aether-node --print-config printed no 'node = n1' line")
endif()
file(WRITE ${OUT}.tmp
"# /etc/aether/aether-node.conf: the cluster-wide settings of aether-node
# (INI; every key with its default, as `aether-node --print-config` prints
# them). Keep it the same on every host of a cluster; per-host settings
# (AETHER_NODE, AETHER_ZONE, AETHER_ADDRESS) go in /etc/default/aether-node,
# which overrides this file key by key. Reference: docs/configuration.md
# (/usr/share/doc/aether/docs/configuration.md).
${cfg}")
file(RENAME ${OUT}.tmp ${OUT})
