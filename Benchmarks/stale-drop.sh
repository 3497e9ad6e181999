#!/bin/sh
# The kernel's cost of dropping stale pages, both ways (Benchmarks/StaleDrop/stale-drop.c):
# where `StaleRunDrop.shortestMovedRun` comes from. Needs a C compiler and Linux 6.8+.
set -e
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/stale-drop" "$(dirname "$0")/StaleDrop/stale-drop.c"
"$out/stale-drop"
