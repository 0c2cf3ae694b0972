# SPDX-License-Identifier: Apache-2.0
# AetherPublicHeaders.cmake: installs the public headers (run by
# `cmake --install`, from an install(CODE) rule of AetherInstall.cmake).
#
# The public headers are transport/aether.h and every header it reaches by
# #include "x.h" through engine/, actors/ and transport/ (today
# aether_status.h, aether_options.h, aether_node.h); they are installed
# flat into <prefix>/include/aether/, where the quoted includes find their
# siblings. The set is computed when installing, from the sources as they
# are then: a header added to the umbrella is installed without touching the
# build files, and internal headers (aether_internal.h, member.h, ...)
# never are. Refused (the install fails): more than AETHER_PUBLIC_HEADERS_MAX
# headers (with the generated aether_version.h), and a public header whose
# #include <...> names anything but the C library (no ck, urcu, nats.c,
# xxHash, jansson: DESIGN 1, "Public surface"). Inputs: AETHER_SOURCE_DIR, AETHER_HEADER_DEST (relative to the
# install prefix).

cmake_policy(PUSH)
cmake_policy(VERSION 3.22) # install scripts start with no policies set (IN_LIST)

set(AETHER_PUBLIC_HEADERS_MAX 8)
set(_system_ok stdbool.h stddef.h stdint.h)
set(_dirs ${AETHER_SOURCE_DIR}/engine ${AETHER_SOURCE_DIR}/actors ${AETHER_SOURCE_DIR}/transport)
set(_todo ${AETHER_SOURCE_DIR}/transport/aether.h)
set(_seen)
set(_names)
while(_todo)
  list(POP_FRONT _todo _hdr)
  if(_hdr IN_LIST _seen)
    continue()
  endif()
  get_filename_component(_name ${_hdr} NAME)
  if(_name IN_LIST _names)
    message(FATAL_ERROR "two public headers named ${_name}: they cannot share include/aether/")
  endif()
  list(APPEND _seen ${_hdr})
  list(APPEND _names ${_name})
  file(STRINGS ${_hdr} _sys REGEX "^[ \t]*#[ \t]*include[ \t]+<[^>]+>")
  foreach(_line IN LISTS _sys)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+<([^>]+)>.*" "\\1" _inc "${_line}")
    if(NOT _inc IN_LIST _system_ok)
      message(FATAL_ERROR "public header ${_hdr} includes <${_inc}>: only ${_system_ok} may reach the embedder")
    endif()
  endforeach()
  file(STRINGS ${_hdr} _lines REGEX "^[ \t]*#[ \t]*include[ \t]+\"[^\"]+\"")
  foreach(_line IN LISTS _lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([^\"]+)\".*" "\\1" _inc "${_line}")
    set(_found)
    foreach(_d IN LISTS _dirs)
      if(EXISTS ${_d}/${_inc})
        set(_found ${_d}/${_inc})
        break()
      endif()
    endforeach()
    if(NOT _found)
      message(FATAL_ERROR "${_hdr} includes \"${_inc}\", found in none of engine/ actors/ transport/")
    endif()
    list(APPEND _todo ${_found})
  endforeach()
endwhile()
list(SORT _seen)
list(LENGTH _seen _count)
math(EXPR _count "${_count} + 1") # aether_version.h
if(_count GREATER AETHER_PUBLIC_HEADERS_MAX)
  message(FATAL_ERROR "${_count} public headers (${_names} aether_version.h): at most ${AETHER_PUBLIC_HEADERS_MAX}")
endif()
if(IS_ABSOLUTE "${AETHER_HEADER_DEST}")
  set(_dest "${AETHER_HEADER_DEST}")
else()
  set(_dest "${CMAKE_INSTALL_PREFIX}/${AETHER_HEADER_DEST}")
endif()
file(INSTALL ${_seen} DESTINATION "${_dest}") # file(INSTALL) adds $DESTDIR itself
cmake_policy(POP)
