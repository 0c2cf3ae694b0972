# AetherPublicHeaders.cmake: installs the public headers (run by
# `cmake --install`, from an install(CODE) rule of AetherInstall.cmake).
#
# The public headers are transport/aether.h and every header it reaches by
# #include "x.h" through engine/, actors/ and transport/; they are installed
# flat into <prefix>/include/aether/, where the quoted includes find their
# siblings. The set is computed when installing, from the sources as they
# are then: a header added to the umbrella is installed without touching the
# build files, and internal headers (member_internal.h, json_util.h, ...)
# never are. Inputs: AETHER_SOURCE_DIR, AETHER_HEADER_DEST (relative to the
# install prefix).

cmake_policy(PUSH)
cmake_policy(VERSION 3.22) # install scripts start with no policies set (IN_LIST)

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
if(IS_ABSOLUTE "${AETHER_HEADER_DEST}")
  set(_dest "${AETHER_HEADER_DEST}")
else()
  set(_dest "${CMAKE_INSTALL_PREFIX}/${AETHER_HEADER_DEST}")
endif()
file(INSTALL ${_seen} DESTINATION "${_dest}") # file(INSTALL) adds $DESTDIR itself
cmake_policy(POP)
