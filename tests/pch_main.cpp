// SPDX-License-Identifier: MIT
// Owner of the test binaries' precompiled headers (tests/CMakeLists.txt): it is built only so
// that its precompiled headers exist; main() comes from GTest::gtest_main and runs no test.
