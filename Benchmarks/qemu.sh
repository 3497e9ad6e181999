#!/usr/bin/env bash
# Embedded engine against QEMU (issue 4): a guest with 448 MiB of non-zero memory (512 MiB in
# all) migrated over loopback tcp at unlimited bandwidth, once to fresh destination memory and
# once to a pre-populated one (-mem-prealloc / --mem-prealloc), QEMU and migpilot in turns.
#   Benchmarks/qemu.sh [path/to/migpilot]        (RUNS=5 runs of each case by default)
# QEMU (TCG, Debian's qemu-system-x86) boots Tests/Fixtures/qemu-guest and is driven over
# QMP by Benchmarks/qemu-migrate.py; migpilot runs `migrate --policy policies/precopy.yaml`
# (QEMU's own completion rule). Throughput = bytes of the migration stream / total time, each
# side's own figures: QEMU's ram.transferred / total-time from query-migrate, migpilot's
# transferred_bytes / total_time_s; both from the migrate command to completed. Medians.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/migpilot}
runs=${RUNS:-5}
# This machine hands freed memory back to its hypervisor (virtio-balloon free page
# reporting, 2 s after the free): a destination that starts within that time gets memory the
# hypervisor still backs and pays a fraction of the first touch of really fresh memory
# (QEMU's fresh case came out at 1.9 GB/s instead of 0.25 GB/s). Each run waits it out, so
# that every fresh destination is fresh.
settle=5
scripts/ensure-packages.sh qemu-system-x86 binutils python3 >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
guest=$(Tests/Fixtures/qemu-guest/build.sh "$tmp/guest")

echo "$(qemu-system-x86_64 --version | head -1); migpilot $bin; $runs runs of each case"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 1; i <= runs; i++)); do
  for case in fresh prealloc; do
    sleep $settle
    Benchmarks/qemu-migrate.py "$guest" --case $case >> "$tmp/qemu-$case.jsonl"
    flags=(); [[ $case == prealloc ]] && flags=(--mem-prealloc)
    sleep $settle
    "$bin" migrate --policy policies/precopy.yaml --memory 512MiB --workload fill:448MiB --json "${flags[@]}" 2>/dev/null \
      | tail -1 >> "$tmp/migpilot-$case.jsonl"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp" <<'PY'
import json, statistics, sys
tmp = sys.argv[1]
def runs(who, case):
    out = []
    for line in open(f"{tmp}/{who}-{case}.jsonl"):
        r = json.loads(line)
        if who == "qemu":
            out.append((r["total_time_ms"] / 1e3, r["downtime_ms"] / 1e3, r["ram_transferred_bytes"]))
        else:
            if r["status"] != "completed" or not r["verified"]:
                sys.exit(f"migpilot {case}: {r['status']}, verified {r['verified']}: {r['detail']}")
            out.append((r["total_time_s"], r["downtime_s"], r["transferred_bytes"]))
    return out
rows = []
for case in ("fresh", "prealloc"):
    medians = {}
    for who in ("qemu", "migpilot"):
        rs = runs(who, case)
        rates = [b / t / 1e9 for t, _, b in rs]
        medians[who] = statistics.median(rates)
        print(f"{case:8} {who:8} total {statistics.median(t for t, _, _ in rs) * 1e3:6.0f} ms, "
              f"downtime {statistics.median(d for _, d, _ in rs) * 1e3:5.0f} ms, "
              f"{statistics.median(b for _, _, b in rs) / 1e6:.1f} MB (medians); GB/s per run: "
              + " ".join(f"{x:.2f}" for x in rates))
    rows.append((case, medians["qemu"], medians["migpilot"]))
print()
print("| case | QEMU GB/s | migpilot GB/s | migpilot/QEMU |")
print("|---|---|---|---|")
for case, q, m in rows:
    name = "fresh destination" if case == "fresh" else "pre-populated destination (-mem-prealloc)"
    print(f"| {name} | {q:.2f} | {m:.2f} | {m / q:.2f}x |")
PY
