#!/usr/bin/env bash
# Usage: run.sh BUILD_DIR CONSUMER_SRC CXX CC PROGRAMS PYTHON PYTHON_SITE
#   PROGRAMS     the programs the build installs, comma-separated ("none" when it installs none)
#   PYTHON       the interpreter the Python package was built for, or "skip:REASON" when the build
#                has no Python package (the Python part then prints SKIP with the reason)
#   PYTHON_SITE  where `cmake --install` puts the package: relative to the prefix, or absolute
set -euo pipefail
build=$1 src=$2 cxx=$3 cc=$4 programs=$5 py=$6 py_site=$7
has() { case ",$programs," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
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

# Installed programs start from the prefix by themselves: their RUNPATH points at the prefix's
# library directory relative to the binary ($ORIGIN/../lib...), so no LD_LIBRARY_PATH is set.
for exe in ${programs//,/ }; do
  [ "$exe" = none ] && continue
  test -x "$prefix/bin/$exe" || { echo "not installed: bin/$exe"; exit 1; }
  runpath=$(readelf -d "$prefix/bin/$exe" | grep -E 'RUNPATH|RPATH' || true)
  case $runpath in *'$ORIGIN/'*) ;; *) echo "bin/$exe has no \$ORIGIN-relative RUNPATH: '$runpath'"; exit 1 ;; esac
done
unset LD_LIBRARY_PATH
if has shmlink; then
  "$prefix/bin/shmlink" --version | grep -q . || { echo "installed shmlink --version printed nothing"; exit 1; }
  "$prefix/bin/shmlink" ls | grep -q consumer_demo || { echo "installed shmlink ls misses consumer_demo"; exit 1; }
else
  echo "SKIP installed CLI: the build has no CLI (SHMLINK_BUILD_TOOLS=OFF)"
fi
if has shmlink-cosim; then
  "$prefix/bin/shmlink-cosim" monolithic --steps 200 >/dev/null || { echo "installed shmlink-cosim failed"; exit 1; }
fi
if has shmlink-ao-loop; then
  "$prefix/bin/shmlink-ao-loop" --help | grep -q 'shmlink-ao-loop' || { echo "installed shmlink-ao-loop --help failed"; exit 1; }
fi
if has shmlink-villas-echo; then
  "$prefix/bin/shmlink-villas-echo" --help | grep -q 'shmlink-villas-echo' ||
    { echo "installed shmlink-villas-echo --help failed"; exit 1; }
fi
if has shmlink-vm-pingpong; then
  "$prefix/bin/shmlink-vm-pingpong" --help | grep -q 'shmlink-vm-pingpong' ||
    { echo "installed shmlink-vm-pingpong --help failed"; exit 1; }
fi
has shmlink-cosim || has shmlink-ao-loop || echo "SKIP installed examples: the build has none (SHMLINK_BUILD_EXAMPLES=OFF)"

# The Python package, when it was built: installed into the prefix's site directory, imported
# from there by the interpreter it was built for, and used: a stream made by the installed CLI is
# written from Python and read back by the CLI, and one made in Python is read by a second Python
# process.
case $py in
skip:*)
  echo "SKIP installed Python package: ${py#skip:}" ;;
*)
  case $py_site in /*) site=$py_site ;; *) site=$prefix/$py_site ;; esac
  test -f "$site/shmlink/__init__.py"
  test -f "$site/shmlink/py.typed"
  test -f "$site/shmlink/_shmlink.pyi"
  export PYTHONPATH="$site" PYTHONDONTWRITEBYTECODE=1
  out=$(cd "$work" && "$py" -c '
import sys, shmlink
from shmlink.dao import shm
s = shmlink.Stream.open("consumer_demo")
print("python consumer:", s.cnt0, shmlink.__file__.startswith(sys.argv[1]))' "$site")
  [ "$out" = "python consumer: 1 True" ] || { echo "Python consumer printed: $out"; exit 1; }
  if has shmlink; then
    "$prefix/bin/shmlink" create from_cli --shape 3x2 --dtype u16 >/dev/null
    (cd "$work" && "$py" -c '
import numpy as np, shmlink
with shmlink.Stream.open("from_cli") as s:
    s.write(np.arange(6, dtype=np.uint16).reshape(2, 3))')
    "$prefix/bin/shmlink" cat from_cli --json | "$py" -c '
import json, sys
d = json.load(sys.stdin)
assert d["cnt0"] == 1, d' || { echo "installed CLI did not read what Python wrote"; exit 1; }
  fi
  (cd "$work" && "$py" -c '
import numpy as np, shmlink
with shmlink.Stream.create("from_python", shape=(2, 2), dtype="float32", mode="purge") as s:
    s.write(np.full((2, 2), 1.5, np.float32))')
  out=$(cd "$work" && "$py" -c '
import shmlink
with shmlink.Stream.open("from_python") as s:
    print("python reader:", s.cnt0, s.read().sum())')
  [ "$out" = "python reader: 1 6.0" ] || { echo "Python reader printed: $out"; exit 1; }
  ;;
esac
echo "install consumer: OK"
