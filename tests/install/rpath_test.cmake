# Usage: cmake -DSOURCE=<repository root> -P rpath_test.cmake
# The install RPATH (cmake/InstallRpath.cmake) for relative and absolute install directories:
# each case sets the prefix and the directories as a user would on the command line, lets
# GNUInstallDirs compute the full paths, and compares the RPATH with the expected one.
cmake_minimum_required(VERSION 3.22)
set(failures 0)
function(check prefix bindir libdir expected)
  set(CMAKE_INSTALL_PREFIX "${prefix}")
  set(CMAKE_INSTALL_BINDIR "${bindir}")
  set(CMAKE_INSTALL_LIBDIR "${libdir}")
  include(GNUInstallDirs)
  include(${SOURCE}/cmake/InstallRpath.cmake)
  if(NOT SHMLINK_INSTALL_RPATH STREQUAL expected)
    message(SEND_ERROR "prefix ${prefix}, BINDIR ${bindir}, LIBDIR ${libdir}: install RPATH is "
                       "'${SHMLINK_INSTALL_RPATH}', expected '${expected}'")
  else()
    message(STATUS "prefix ${prefix}, BINDIR ${bindir}, LIBDIR ${libdir}: ${SHMLINK_INSTALL_RPATH}")
  endif()
endfunction()

check(/usr/local bin lib                            "$ORIGIN/../lib")
check(/usr       bin lib/x86_64-linux-gnu           "$ORIGIN/../lib/x86_64-linux-gnu")
check(/usr       bin /usr/lib/x86_64-linux-gnu      "$ORIGIN/../lib/x86_64-linux-gnu")
check(/opt/p     bin /opt/p/lib64                   "$ORIGIN/../lib64")
check(/opt/p     /opt/tools/bin /opt/p/lib          "$ORIGIN/../../p/lib")
check(/opt/p     libexec/shmlink lib                "$ORIGIN/../../lib")
