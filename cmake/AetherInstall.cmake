# SPDX-License-Identifier: Apache-2.0
# AetherInstall.cmake: how libaether is packaged for embedders (included by
# the top-level CMakeLists.txt right after the `aether` target is defined).
#
# What `cmake --install` puts under the prefix:
#   lib/libaether.so.X.Y.Z (SONAME libaether.so.<soversion>) and its links,
#       exporting only the public API: the objects are compiled with
#       -fvisibility=hidden (the API is marked AETHER_API) and linked with the
#       explicit list of cmake/aether.map;
#   lib/libaether.a, the same code with every internal symbol (the tools,
#       the bench harness and the tests link this one, and may use internals);
#   include/aether/aether.h, the public umbrella header, with the headers it
#       reaches (aether_status.h, aether_options.h, aether_node.h:
#       AetherPublicHeaders.cmake follows its #include "..." lines, refuses
#       more than 8 headers or one that includes anything but the C library),
#       and include/aether/aether_version.h (AETHER_VERSION_*);
#   lib/pkgconfig/aether.pc (relocatable: paths from ${pcfiledir});
#   lib/cmake/aether/aetherConfig.cmake, aetherConfigVersion.cmake and
#       aetherTargets*.cmake: targets aether::aether (the shared library) and
#       aether::aether_static;
#   bin/aether-node and bin/aetherctl (tools/CMakeLists.txt).
# Embedders write #include <aether/aether.h>; inside the build tree the same
# include works (a forwarding header in <build>/include/aether/). The
# programs of this tree that use internals include aether_internal.h.
#
# The shared library is built from the static library's objects (compiled
# once, position-independent), so it costs one link. Sanitizer and fuzzing
# builds (AETHER_SANITIZE, AETHER_FUZZ) build no shared library: their
# objects are instrumented and only make sense inside those builds.
#
# SONAME: before 1.0 every minor release may break the ABI, so the soversion
# is MAJOR.MINOR (libaether.so.0.1); from 1.0 on it is MAJOR. The CMake
# package says the same (SameMinorVersion before 1.0, SameMajorVersion after).

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(AETHER_SHARED "Build libaether.so next to libaether.a (plain builds only)" ON)
set(AETHER_BUILD_SHARED OFF)
if(AETHER_SHARED AND AETHER_SANITIZE STREQUAL "" AND NOT AETHER_FUZZ)
  set(AETHER_BUILD_SHARED ON)
endif()

if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(AETHER_SOVERSION "${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}")
  set(AETHER_VERSION_COMPAT SameMinorVersion)
else()
  set(AETHER_SOVERSION "${PROJECT_VERSION_MAJOR}")
  set(AETHER_VERSION_COMPAT SameMajorVersion)
endif()

set(AETHER_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/aether)
set(AETHER_GEN_INCLUDE ${CMAKE_BINARY_DIR}/include)

configure_file(${CMAKE_CURRENT_LIST_DIR}/aether_version.h.in
               ${AETHER_GEN_INCLUDE}/aether/aether_version.h @ONLY)
# <aether/aether.h> in the build tree (the example under docs/examples/ is
# compiled both here and against an installed copy, with the same include).
file(CONFIGURE OUTPUT ${AETHER_GEN_INCLUDE}/aether/aether.h
     CONTENT "/* Generated: the build tree's <aether/aether.h>. */\n#include \"${CMAKE_SOURCE_DIR}/transport/aether.h\"\n")
target_include_directories(aether PUBLIC
  $<BUILD_INTERFACE:${AETHER_GEN_INCLUDE}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(aether PROPERTIES EXPORT_NAME aether_static)
add_library(aether::aether_static ALIAS aether)

# ---- the shared library --------------------------------------------------------
set(AETHER_INSTALL_TARGETS aether)
if(AETHER_BUILD_SHARED)
  # -fno-semantic-interposition keeps calls inside the library direct (and
  # inlinable), as in a non-PIC build; what PIC still costs on x86-64 is
  # small (the linker relaxes GOT and TLS accesses in executables).
  # AETHER_SHARED=OFF builds the static library without PIC.
  set_target_properties(aether PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  target_compile_options(aether PRIVATE -fno-semantic-interposition)
  add_library(aether_shared SHARED $<TARGET_OBJECTS:aether>)
  set_target_properties(aether_shared PROPERTIES
    OUTPUT_NAME aether
    EXPORT_NAME aether
    VERSION ${PROJECT_VERSION}
    SOVERSION ${AETHER_SOVERSION}
    LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/aether.map)
  target_link_options(aether_shared PRIVATE
    -Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/aether.map -Wl,--no-undefined)
  # The public headers include only the C library and inline nothing of
  # the dependencies: an embedder needs the include directory and
  # libaether.so, whose own NEEDED entries bring the rest.
  # (In the build tree the forwarding <aether/aether.h> reaches the public
  # headers in engine/ and transport/.)
  target_include_directories(aether_shared PUBLIC
    "$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/engine;${CMAKE_SOURCE_DIR}/transport>"
    $<BUILD_INTERFACE:${AETHER_GEN_INCLUDE}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(aether_shared
    PRIVATE PkgConfig::URCU Threads::Threads PkgConfig::JANSSON PkgConfig::XXHASH PkgConfig::NATS
            PkgConfig::INIH PkgConfig::SODIUM ${CK_LIB} m)
  add_library(aether::aether ALIAS aether_shared)
  list(APPEND AETHER_INSTALL_TARGETS aether_shared)
else()
  add_library(aether::aether ALIAS aether)
endif()

# ---- install rules ---------------------------------------------------------------
install(TARGETS ${AETHER_INSTALL_TARGETS} EXPORT aetherTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(CODE "set(AETHER_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
set(AETHER_HEADER_DEST \"${CMAKE_INSTALL_INCLUDEDIR}/aether\")
include(\"${CMAKE_CURRENT_LIST_DIR}/AetherPublicHeaders.cmake\")")
install(FILES ${AETHER_GEN_INCLUDE}/aether/aether_version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/aether)
install(EXPORT aetherTargets NAMESPACE aether:: DESTINATION ${AETHER_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/aetherConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/aetherConfig.cmake
  INSTALL_DESTINATION ${AETHER_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/aetherConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${AETHER_VERSION_COMPAT})
install(FILES ${CMAKE_BINARY_DIR}/cmake/aetherConfig.cmake
              ${CMAKE_BINARY_DIR}/cmake/aetherConfigVersion.cmake
  DESTINATION ${AETHER_INSTALL_CMAKEDIR})

# aether.pc locates the prefix from its own directory, so an installed tree
# can be moved (and `cmake --install --prefix P` needs no reconfigure).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(AETHER_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(AETHER_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(AETHER_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH rel "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" rel "${rel}")
  set(AETHER_PC_PREFIX "\${pcfiledir}/${rel}")
  set(AETHER_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(AETHER_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/aether.pc.in ${CMAKE_BINARY_DIR}/cmake/aether.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/aether.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
