#!/usr/bin/env bash
# Usage: run.sh BUILD_DIR CONSUMER_SRC CXX CC
set -euo pipefail
build=$1 src=$2 cxx=$3 cc=$4
work=$(mktemp -d /tmp/shmlink-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/shmlink/stream.hpp"
test -f "$prefix/include/shmlink/export.h"
test -f "$prefix/include/shmlink.h"
test -x "$prefix/bin/shmlink"
libdir=$(dirname "$(find "$prefix" -name 'libshmlink.so' | head -n1)")
test -f "$libdir/cmake/shmlink/shmlinkConfig.cmake"
test -f "$libdir/pkgconfig/shmlink.pc"

# C++ consumer through the CMake package.
cmake -S "$src" -B "$work/cpp" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/cpp" >/dev/null
export SHMLINK_DIR=$work/streams
mkdir -p "$SHMLINK_DIR"
out=$("$work/cpp/consumer")
[ "$out" = "consumer: cnt0=1 sum=28" ] || { echo "C++ consumer printed: $out"; exit 1; }

# C consumer through pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs shmlink)
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/c_consumer" "$src/c_consumer.c" $flags
out=$(LD_LIBRARY_PATH=$libdir "$work/c_consumer")
[ "$out" = "c consumer: cnt0=1 first=7" ] || { echo "C consumer printed: $out"; exit 1; }

# The installed CLI sees the C++ consumer's stream.
LD_LIBRARY_PATH=$libdir "$prefix/bin/shmlink" ls | grep -q consumer_demo
# The Python package, when it was built: installed into the prefix's site directory.
if ls "$build"/python/shmlink/_shmlink*.so >/dev/null 2>&1; then
  py=/usr/bin/python3
  site=$("$py" -c 'import sys; print(f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/dist-packages")')
  test -f "$prefix/$site/shmlink/__init__.py"
  test -f "$prefix/$site/shmlink/py.typed"
  test -f "$prefix/$site/shmlink/_shmlink.pyi"
  out=$(cd "$work" && PYTHONPATH="$prefix/$site" "$py" -c '
import sys, shmlink
from shmlink.dao import shm
s = shmlink.Stream.open("consumer_demo")
print("python consumer:", s.cnt0, shmlink.__file__.startswith(sys.argv[1]))' "$prefix")
  [ "$out" = "python consumer: 1 True" ] || { echo "Python consumer printed: $out"; exit 1; }
fi
echo "install consumer: OK"
