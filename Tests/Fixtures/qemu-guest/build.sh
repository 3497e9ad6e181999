#!/usr/bin/env bash
# Assembles and links the QEMU test guest into OUTDIR and prints the ELF's path.
#   Tests/Fixtures/qemu-guest/build.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
as --32 -o "$out/guest.o" "$here/guest.s"
# -n: no page alignment of the file's sections, so the multiboot header sits right after the
# ELF headers instead of at a 4 KiB file offset (QEMU looks in the first 8 KiB only); one
# writable, executable segment is what a flat kernel image is, hence no warning about it.
ld -m elf_i386 -n --no-warn-rwx-segments -T "$here/link.ld" -o "$out/guest.elf" "$out/guest.o"
rm -f "$out/guest.o"
echo "$out/guest.elf"
