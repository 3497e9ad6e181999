#!/usr/bin/env bash
# migpilot benchmarks (release build). Prints every figure Benchmarks/README.md quotes.
#   Benchmarks/run.sh [path/to/migpilot]      (make bench builds and runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/migpilot}
bench=$(dirname "$bin")/migpilot-trace-bench
scripts/ensure-packages.sh hyperfine gcc >/dev/null
swift build -c release --product migpilot-trace-bench --product migpilot-stream-bench --product migpilot-guest-bench >/dev/null 2>&1 || swift build -c release >/dev/null
tmp=$(mktemp -d)
cleanup() { [[ -n ${dirtier_pid:-} ]] && kill "$dirtier_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo

largest=$(ls -S datasets/*.trace | head -1)
echo "== trace info on the largest dataset ($largest, $(du -h "$largest" | cut -f1)); target < 0.5 s"
hyperfine --style basic --warmup 2 --runs 20 -N --export-json "$tmp/info.json" "$bin trace info --json $largest" >/dev/null
python3 - "$tmp/info.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("trace info: mean %.1f ms, max %.1f ms over %d runs" % (r["mean"] * 1e3, r["max"] * 1e3, len(r["times"])))
PY
echo

echo "== decoding (open with every CRC checked, then decode every interval); target >= 200 M page-events/s"
"$bin" trace synth --kind zipf --memory 16GiB --rate 1000000 --duration 60s --seed 1 -o "$tmp/zipf-16GiB.trace"
"$bench" decode datasets/*.trace "$tmp/zipf-16GiB.trace"
echo

echo "== recorder scanning a 1 GiB process (Tests/Fixtures/dirtier.c, 20k pages/s); target <= 250 ms per interval"
cc -O2 -o "$tmp/dirtier" Tests/Fixtures/dirtier.c
"$tmp/dirtier" 1024 20000 30 > "$tmp/ready" &
dirtier_pid=$!
while [[ ! -s $tmp/ready ]]; do sleep 0.1; done
"$bin" trace record --pid "$dirtier_pid" --interval 500ms --duration 10s -o "$tmp/scan.trace" 2>/dev/null
"$bin" trace info --json "$tmp/scan.trace" | python3 -c '
import json, sys
p = json.load(sys.stdin)["provenance"]
print("scan of %.2f GiB resident: median %s ms, p99 %s ms, max %s ms, overruns %s" % (
    int(p["target_peak_rss_bytes"]) / 2**30, p["scan_ms_median"], p["scan_ms_p99"], p["scan_ms_max"], p["scan_overruns"]))'
"$bench" memcpy 1024 | tee "$tmp/memcpy"
python3 - "$tmp/scan.trace" "$tmp/memcpy" "$bin" <<'PY'
import json, subprocess, sys
p = json.loads(subprocess.run([sys.argv[3], "trace", "info", "--json", sys.argv[1]], capture_output=True, text=True).stdout)["provenance"]
floor = float(open(sys.argv[2]).read().split(":")[1].split("ms")[0])
print(f"scan / memcpy floor (same GiB, same run): {float(p['scan_ms_median'])/floor:.2f}x")
PY
echo

echo "== whatif on a 16 GiB (4 Mi pages), 10-minute, 100 ms-interval synthetic trace; target < 1 s per policy"
"$bin" trace synth --kind zipf --memory 16GiB --rate 200000 --duration 10m --interval 100ms --seed 1 -o "$tmp/zipf-16GiB-10m.trace"
policies=(precopy libvirt-postcopy-after-precopy libvirt-timeout-postcopy nova kubevirt adaptive)
args=(); for p in "${policies[@]}"; do args+=(--policy "policies/$p.yaml"); done
hyperfine --style basic --warmup 1 --runs 5 -N --export-json "$tmp/whatif.json" \
  "$bin whatif --trace $tmp/zipf-16GiB-10m.trace ${args[*]} --bandwidth 10Gbit/s --json" >/dev/null
python3 - "$tmp/whatif.json" "${#policies[@]}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]; n = int(sys.argv[2])
print("whatif, %d policies in one run (open + decode + simulate): mean %.2f s, max %.2f s -> %.3f s per policy" % (n, r["mean"], r["max"], r["mean"] / n))
PY
echo

echo "== tune on the dataset traces (default space, 96 points x 6 traces x 4 bandwidths); target >= 2,000 simulated migrations/s per core"
traces=(); for t in datasets/*.trace; do traces+=(--trace "$t"); done
for jobs in 1 2; do
  "$bin" tune "${traces[@]}" --bandwidth 1Gbit/s --bandwidth 2.5Gbit/s --bandwidth 5Gbit/s --bandwidth 10Gbit/s \
    --objective min-total-time --constraint 'downtime<=300ms' --jobs $jobs --json -o "$tmp/tuned.yaml" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("tune --jobs %d: %d simulations in %.2f s = %.0f per second per thread" % (r["jobs"], r["simulations"], r["seconds"], r["simulations"] / r["seconds"] / r["jobs"]))'
done

echo
echo "== dirty tracking in the guest (issue 4): page-write armed vs not, collect() on 1 GiB, 100k pages/s workload"
"$(dirname "$bin")/migpilot-guest-bench"
echo

echo "== migration stream (issue 4): encode/decode of page runs on one core, against memcpy"
"$(dirname "$bin")/migpilot-stream-bench"
echo

echo "== transport (issue 4): tcp over loopback (io_uring) against iperf3 in the same run"
Benchmarks/transport.sh 1
echo

echo "== embedded engine against QEMU (issue 4): 448 MiB over loopback tcp, unlimited bandwidth, fresh and pre-populated destinations"
Benchmarks/qemu.sh "$bin"

echo "== the switch's stale pages (issue 4): dropped (process_madvise) against moved (UFFDIO_MOVE), one thread"
Benchmarks/stale-drop.sh
echo

echo "== CRC32C of 64 KiB frames, from memory and cached, against plain reads"
Benchmarks/crc.sh
echo

echo "== postcopy recovery: resume span over 20 recoveries, dead-link detection, 16 GiB bitmap exchange"
swift build -c release --product migpilot-recovery-bench >/dev/null
python3 Benchmarks/recovery.py "$bin"
