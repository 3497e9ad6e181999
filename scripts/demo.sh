#!/usr/bin/env bash
# The main job until the migration engine lands: what migpilot can already tell an operator
# about the memory behaviour of real programs, from the traces in datasets/.
set -euo pipefail
bin=${1:-.build/release/migpilot}
cd "$(dirname "$0")/.."
echo "== migpilot: dirty-page behaviour of real programs (datasets/, recorded on this kind of machine)"
printf '%-22s %8s %9s %10s %10s %10s %10s\n' trace "RAM" duration "dirty/s" "p99/s" "WSS 1s" "WSS 10s"
for t in datasets/*.trace; do
  "$bin" trace info --json "$t" | python3 -c '
import json, sys
s = json.load(sys.stdin); mib = s["page_size"] / 2**20
name = s["path"].split("/")[-1].removesuffix(".trace")
r = s["dirty_pages_per_s"]; w = s["wss_pages"]
print("%-22s %7.0fM %8.1fs %10.0f %10.0f %9.1fM %9.1fM" % (name, s["pages"] * mib, s["duration_s"], r["median"], r["p99"], w["1s"] * mib, w["10s"] * mib))'
done
echo
echo "== what each shipped policy would do to the JVM's memory over a 1 Gbit/s link (whatif, 300 ms limit)"
policies=(); for p in precopy libvirt-postcopy-after-precopy libvirt-timeout-postcopy nova kubevirt adaptive; do policies+=(--policy "policies/$p.yaml"); done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" whatif --trace datasets/jvm-gc.trace "${policies[@]}" --bandwidth 1Gbit/s --downtime-limit 300ms
echo
echo "== adaptive's decisions on that run (decision log, JSON lines)"
"$bin" whatif --trace datasets/jvm-gc.trace --policy policies/adaptive.yaml --bandwidth 1Gbit/s --log "$tmp/log.jsonl" >/dev/null
python3 - "$tmp/log.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    s = d["status"]
    print("t=%6.2fs  pass %-2d remaining %7d pages  %-18s %s" % (d["time_s"], s["pass"], s["remaining_pages"], d["action"]["action"], d["reason"]))
PY
echo
echo "== the same guest on four links: every policy's total time and downtime (docs/whatif.md has all datasets)"
"$bin" whatif --trace datasets/jvm-gc.trace "${policies[@]}" --bandwidth 1Gbit/s --bandwidth 2.5Gbit/s --bandwidth 5Gbit/s --bandwidth 10Gbit/s --downtime-limit 300ms --csv \
  | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
print("%-10s %-32s %10s %12s %s" % ("link", "policy", "total s", "downtime ms", "finished"))
for r in rows:
    done = ("precopy" if r["converged"] == "true" else "postcopy") if r["completed"] == "true" else "no"
    dt = "%.1f" % (float(r["downtime_s"]) * 1000) if r["downtime_s"] else "-"
    print("%-10s %-32s %10.2f %12s %s" % ("%.1fGbit/s" % (float(r["bandwidth_bytes_per_s"]) * 8 / 1e9), r["policy"], float(r["total_time_s"]), dt, done))'
echo
echo "== a real migration: a 256 MiB guest writing 20,000 pages/s, precopy.yaml over a 1 Gbit/s cap"
echo "   (embedded engine: userfaultfd dirty tracking, the stream over loopback tcp on io_uring,"
echo "    every page's stamp verified at the destination; postcopy is the engine's next step)"
"$bin" migrate --policy policies/precopy.yaml --memory 256MiB --workload fill:128MiB --workload uniform:rate=20000 --bandwidth 1Gbit/s
