#!/bin/sh
# CRC32C of stream frames against plain reads, cached and not (Benchmarks/CRC/crc-bench.c, with
# the engine's own Sources/CUring/crc32c.c). Needs a C compiler.
set -e
root=$(dirname "$0")/..
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -I "$root/Sources/CUring/include" -o "$out/crc-bench" "$root/Benchmarks/CRC/crc-bench.c" "$root/Sources/CUring/crc32c.c"
"$out/crc-bench" 2>/dev/null
