# The install RPATH of shmlink's programs (the CLI, the examples): $ORIGIN followed by the path
# from the installed bin directory to the installed library directory, so an install into any
# prefix starts without LD_LIBRARY_PATH (bin/shmlink -> $ORIGIN/../lib).
#
# Computed from GNUInstallDirs' full paths, CMAKE_INSTALL_FULL_BINDIR and CMAKE_INSTALL_FULL_LIBDIR
# (include(GNUInstallDirs) first), so an absolute CMAKE_INSTALL_LIBDIR or CMAKE_INSTALL_BINDIR
# (e.g. -DCMAKE_INSTALL_LIBDIR=/usr/lib/x86_64-linux-gnu) gives the right path too.
# Sets SHMLINK_INSTALL_RPATH. Checked by tests/install/rpath_test.cmake.
file(RELATIVE_PATH SHMLINK_BIN_TO_LIB "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
set(SHMLINK_INSTALL_RPATH "$ORIGIN/${SHMLINK_BIN_TO_LIB}")
