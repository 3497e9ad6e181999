#!/usr/bin/env bash
# The QMP driver's cost to QEMU (issue 6): `migpilot migrate --source-qmp` against the same
# commands sent by hand at the same moments, QEMU's total-time, medians of interleaved runs.
#   Benchmarks/qemu-driver-overhead.sh [path/to/migpilot]     (RUNS=5; extra flags go to the .py)
# Target: the driver adds no more than 1% to QEMU's total migration time.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/migpilot}
shift || true
scripts/ensure-packages.sh qemu-system-x86 binutils python3 >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
guest=$(Tests/Fixtures/qemu-guest/build.sh "$tmp/guest")
echo "$(qemu-system-x86_64 --version | head -1); migpilot $bin; load average $(cut -d' ' -f1-3 /proc/loadavg)"
Benchmarks/qemu-driver-overhead.py "$bin" "$guest" --runs "${RUNS:-5}" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
