# SPDX-License-Identifier: Apache-2.0
# AetherPackage.cmake: the Debian package, built with CPack from the build
# tree (`cpack -G DEB` in build/, or `cmake --build build --target package`),
# and the files it adds to `cmake --install`'s (included by the top-level
# CMakeLists.txt once aether-node and aetherctl are defined).
#
# Package aether_<version>_<arch>.deb, prefix /usr:
#   bin/aether-node, bin/aetherctl; lib/libaether.so* and libaether.a,
#       include/aether/*.h, lib/pkgconfig/aether.pc, lib/cmake/aether/
#       (AetherInstall.cmake: one package, library and headers included);
#   share/man/man8/aether-node.8.gz, share/man/man1/aetherctl.1.gz: made at
#       build time by help2man from the programs' own --help and --version
#       (and tools/man/*.h2m: NAME, FILES, SEE ALSO; aetherctl(1) a COMMANDS
#       section of every `aetherctl help COMMAND`), so they never drift;
#   share/bash-completion/completions/aetherctl: made at build time from
#       aetherctl's --help and `help COMMAND` (tools/completion/);
#   lib/systemd/system/aether-node.service (docs/examples/systemd/);
#   share/doc/aether/: README.md, docs/*.md, the systemd and Prometheus
#       examples, copyright (LICENSE);
# and, when the prefix is /usr (the package; a `cmake --install --prefix
# /usr`), two configuration files, conffiles of the package:
#   /etc/aether/aether-node.conf (made from `aether-node --print-config`:
#       every key with its default, the node id left to the host) and
#   /etc/default/aether-node (AETHER_NODE=..., read by the unit).
# ctest install.deb_package builds the package, unpacks it with dpkg -x and
# checks that every file lands where the unit and the docs say.
include(GNUInstallDirs)

set(AETHER_PKG_DIR ${CMAKE_BINARY_DIR}/package)
find_program(AETHER_HELP2MAN help2man)
find_program(AETHER_GZIP gzip)
set(AETHER_PKG_OUTPUTS)
if(AETHER_HELP2MAN AND AETHER_GZIP)
  # aetherctl(1) also gets a COMMANDS section: every command's own
  # `aetherctl help COMMAND` (tools/man/gen-aetherctl-commands.sh).
  set(AETHER_CTL_CMDS_H2M ${AETHER_PKG_DIR}/man/aetherctl-commands.h2m)
  add_custom_command(OUTPUT ${AETHER_CTL_CMDS_H2M}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${AETHER_PKG_DIR}/man
    COMMAND ${CMAKE_SOURCE_DIR}/tools/man/gen-aetherctl-commands.sh $<TARGET_FILE:aetherctl>
            ${AETHER_CTL_CMDS_H2M}
    DEPENDS aetherctl ${CMAKE_SOURCE_DIR}/tools/man/gen-aetherctl-commands.sh
    COMMENT "aetherctl(1) COMMANDS section from aetherctl help COMMAND"
    VERBATIM)
  foreach(page "aether-node;8" "aetherctl;1")
    list(GET page 0 prog)
    list(GET page 1 sec)
    set(extra_include)
    set(extra_dep)
    if(prog STREQUAL "aetherctl")
      set(extra_include --include=${AETHER_CTL_CMDS_H2M})
      set(extra_dep ${AETHER_CTL_CMDS_H2M})
    endif()
    add_custom_command(OUTPUT ${AETHER_PKG_DIR}/man/${prog}.${sec}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${AETHER_PKG_DIR}/man
      COMMAND ${AETHER_HELP2MAN} --no-info --section=${sec}
              --include=${CMAKE_SOURCE_DIR}/tools/man/${prog}.h2m ${extra_include}
              --output=${AETHER_PKG_DIR}/man/${prog}.${sec} $<TARGET_FILE:${prog}>
      COMMAND ${AETHER_GZIP} -9nf ${AETHER_PKG_DIR}/man/${prog}.${sec}
      DEPENDS ${prog} ${CMAKE_SOURCE_DIR}/tools/man/${prog}.h2m ${extra_dep}
      COMMENT "man page ${prog}(${sec}) from ${prog} --help (help2man)"
      VERBATIM)
    list(APPEND AETHER_PKG_OUTPUTS ${AETHER_PKG_DIR}/man/${prog}.${sec}.gz)
    install(FILES ${AETHER_PKG_DIR}/man/${prog}.${sec}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sec})
  endforeach()
else()
  message(WARNING "help2man or gzip not found: no man pages (tools/deps installs help2man)")
endif()

add_custom_command(OUTPUT ${AETHER_PKG_DIR}/completion/aetherctl
  COMMAND ${CMAKE_COMMAND} -E make_directory ${AETHER_PKG_DIR}/completion
  COMMAND ${CMAKE_SOURCE_DIR}/tools/completion/gen-bash-completion.sh $<TARGET_FILE:aetherctl>
          ${AETHER_PKG_DIR}/completion/aetherctl
  DEPENDS aetherctl ${CMAKE_SOURCE_DIR}/tools/completion/gen-bash-completion.sh
  COMMENT "bash completion of aetherctl from its --help"
  VERBATIM)
add_custom_command(OUTPUT ${AETHER_PKG_DIR}/etc/aether-node.conf
  COMMAND ${CMAKE_COMMAND} -DNODE=$<TARGET_FILE:aether-node> -DOUT=${AETHER_PKG_DIR}/etc/aether-node.conf
          -P ${CMAKE_SOURCE_DIR}/cmake/GenExampleConfig.cmake
  DEPENDS aether-node ${CMAKE_SOURCE_DIR}/cmake/GenExampleConfig.cmake
  COMMENT "example /etc/aether/aether-node.conf from aether-node --print-config"
  VERBATIM)
list(APPEND AETHER_PKG_OUTPUTS ${AETHER_PKG_DIR}/completion/aetherctl
     ${AETHER_PKG_DIR}/etc/aether-node.conf)
add_custom_target(aether_package_files ALL DEPENDS ${AETHER_PKG_OUTPUTS})

install(FILES ${AETHER_PKG_DIR}/completion/aetherctl
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${CMAKE_SOURCE_DIR}/docs/examples/systemd/aether-node.service
        DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
file(GLOB AETHER_DOC_PAGES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${AETHER_DOC_PAGES} DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/examples/systemd ${CMAKE_SOURCE_DIR}/docs/examples/prometheus
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# /etc only for a /usr prefix: `cmake --install --prefix /tmp/x` (the
# install tests) must not write the machine's /etc. The package installs
# with DESTDIR (CPACK_SET_DESTDIR), so these land in its staging tree.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    file(INSTALL DESTINATION /etc/aether TYPE FILE FILES \"${AETHER_PKG_DIR}/etc/aether-node.conf\")
    file(INSTALL DESTINATION /etc/default TYPE FILE
         FILES \"${CMAKE_SOURCE_DIR}/docs/examples/systemd/aether-node.default\" RENAME aether-node)
  endif()")
file(WRITE ${AETHER_PKG_DIR}/conffiles "/etc/aether/aether-node.conf\n/etc/default/aether-node\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME aether)
set(CPACK_PACKAGE_VENDOR "Aether")
set(CPACK_PACKAGE_CONTACT "Aether maintainers <aether@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "cluster-coordination engine: shard ownership over NATS")
set(CPACK_PACKAGE_DESCRIPTION
    "Aether assigns shards to the nodes of a cluster, elects a leader with a\nlease in NATS JetStream KV and moves shards when nodes join, drain or fail.\nThis package holds the daemon aether-node (systemd unit, man page), the\noperator CLI aetherctl (man page, bash completion), libaether and its headers.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr) # with SET_DESTDIR, the prefix the install runs with
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libsystemd0: loaded by aether-node only under systemd (tools/aether-node/notify.c).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nats-server, libsystemd0")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${AETHER_PKG_DIR}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
