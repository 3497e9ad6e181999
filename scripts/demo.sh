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
largest=$(ls -S datasets/*.trace | head -1)
echo
echo "== the largest trace in full: $largest"
"$bin" trace info "$largest"
echo
echo "== a synthetic guest for comparison: 1 GiB, zipf writes at 50k pages/s, 30 s"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" trace synth --kind zipf --memory 1GiB --rate 50000 --duration 30s --seed 1 -o "$tmp/zipf.trace"
"$bin" trace info "$tmp/zipf.trace"
