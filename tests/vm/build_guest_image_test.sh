#!/usr/bin/env bash
# Tests scripts/vm/build-guest-image on small inputs (no boot): the ELF kernel is found in an XZ
# stream between other bytes, an image without one is copied as it is (the bzImage fallback), and
# the initramfs holds /init, busybox, each program and the shared libraries ldd names for it, and
# the kernel modules given with --module in their load order.
# Usage: build_guest_image_test.sh SCRIPT. Exit 77 (ctest: skipped) when a tool is missing.
set -euo pipefail
script=$1
for tool in busybox xz cpio strip ldd; do
  command -v "$tool" >/dev/null || { echo "skipped: no $tool (./scripts/bootstrap installs it)"; exit 77; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/shmlink-guest-image-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. An XZ stream holding an ELF file, after a fake setup header and a decoy magic, before trailing
#    bytes: the kernel is the decompressed ELF file.
printf '\177ELF fake kernel %s\n' "$(seq 1 200 | tr '\n' ' ')" > "$work/vmlinux"
{ head -c 3000 /dev/zero; printf '\375' ; printf '7zXZ\000garbage'; xz -c "$work/vmlinux"; head -c 500 /dev/zero; } > "$work/bzimage"
"$script" kernel "$work/bzimage" "$work/kernel"
cmp -s "$work/vmlinux" "$work/kernel" || fail "the kernel is not the ELF file inside the XZ stream"

# 2. No XZ stream: the image itself, and a message saying the guests boot it.
head -c 4096 /dev/urandom | tr -d '\375' > "$work/plain"
"$script" kernel "$work/plain" "$work/kernel2" 2> "$work/err"
cmp -s "$work/plain" "$work/kernel2" || fail "without an XZ stream the kernel is not a copy of the image"
grep -q "boot the bzImage" "$work/err" || fail "no message about the bzImage fallback: $(cat "$work/err")"

# 3. The initramfs: /init, busybox, the program and what ldd lists for it.
prog=$(type -P true)
"$script" initramfs "$(dirname "$script")/guest-init" "$work/initramfs.cpio" "$prog"
listing=$(cpio -it --quiet < "$work/initramfs.cpio")
for want in init bin/busybox bin/true; do
  grep -qx "$want" <<< "$listing" || fail "$want is not in the initramfs: $listing"
done
for lib in $(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  grep -qx "${lib#/}" <<< "$listing" || fail "$lib (ldd of $prog) is not in the initramfs: $listing"
done
# 4. Kernel modules (the guests' UIO driver and uio.ko): under /lib/modules, with the order /init
#    loads them in.
printf 'not really a module' > "$work/b.ko"
printf 'nor this one' > "$work/a.ko"
"$script" initramfs "$(dirname "$script")/guest-init" "$work/initramfs2.cpio" --module "$work/b.ko" --module "$work/a.ko" "$prog"
mkdir "$work/unpacked"
(cd "$work/unpacked" && cpio -id --quiet < "$work/initramfs2.cpio")
cmp -s "$work/b.ko" "$work/unpacked/lib/modules/b.ko" || fail "b.ko is not /lib/modules/b.ko in the initramfs"
[ "$(cat "$work/unpacked/lib/modules/load-order")" = "$(printf 'b.ko\na.ko')" ] ||
  fail "the load order is not b.ko, a.ko: $(cat "$work/unpacked/lib/modules/load-order")"
[ -x "$work/unpacked/bin/true" ] || fail "the program after the modules is not in the initramfs"
[ ! -e "$work/initramfs.cpio.tmp.$$" ] || fail "a temporary file was left behind"
echo "build-guest-image: kernel extraction, fallback, initramfs contents and modules as expected"
