#!/usr/bin/env bash
# The main job: a real program's memory behaviour replayed in a guest, migrated unattended by
# the embedded engine under adaptive.yaml over a capped link; then what whatif predicted for
# the same migration, beside what happened.
set -euo pipefail
bin=${1:-.build/release/migpilot}
cd "$(dirname "$0")/.."
trace=datasets/jvm-gc.trace
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo "== 1. What real programs' memory does (datasets/, recorded on this kind of machine)"
printf '%-22s %8s %9s %10s %10s %10s %10s\n' trace "RAM" duration "dirty/s" "p99/s" "WSS 1s" "WSS 10s"
for t in datasets/*.trace; do
  "$bin" trace info --json "$t" | python3 -c '
import json, sys
s = json.load(sys.stdin); mib = s["page_size"] / 2**20
name = s["path"].split("/")[-1].removesuffix(".trace")
r = s["dirty_pages_per_s"]; w = s["wss_pages"]
print("%-22s %7.0fM %8.1fs %10.0f %10.0f %9.1fM %9.1fM" % (name, s["pages"] * mib, s["duration_s"], r["median"], r["p99"], w["1s"] * mib, w["10s"] * mib))'
done
bytes=$("$bin" trace info --json "$trace" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["pages"]*s["page_size"])')

echo
echo "== 2. The main job: the JVM's memory ($trace, about 50,000 page writes/s, replayed by a"
echo "   guest) migrated unattended with policies/adaptive.yaml over a 1 Gbit/s cap (≈ 30,500 pages/s):"
echo "   its writes outrun the link, so precopy cannot converge. Embedded engine: userfaultfd dirty"
echo "   tracking, the stream over loopback tcp on io_uring, postcopy through userfaultfd at the"
echo "   destination, every page's stamp verified at the end."
echo "   \$ migpilot migrate --memory ${bytes}B --workload trace:$trace --bandwidth 1Gbit/s --json"
"$bin" migrate --memory "${bytes}B" --workload "trace:$trace" --bandwidth 1Gbit/s --json > "$tmp/run.jsonl"
python3 - "$tmp/run.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for d in lines[:-1]:
    s = d["status"]
    print("   %6.2f s  pass %-2d %-18s %s" % (d["time_s"], s["pass"], d["action"]["action"] if d["action"]["action"] != "continue" else s["status"], d["reason"]))
r = lines[-1]
print()
print("   status %s, verified %s: %s" % (r["status"], "yes" if r["verified"] else "NO", r["detail"]))
print("   total %.2f s, downtime %.1f ms, %.0f MiB sent, postcopy %.2f s, %d pages faulted in on demand" % (
    r["total_time_s"], (r["downtime_s"] or 0) * 1000, r["transferred_bytes"] / 2**20, r["postcopy_time_s"] or 0, r["remote_faults"]))
PY

echo
echo "== 3. What whatif predicted for that migration, beside what happened"
# The cap holds the passes back, not the stop or the switch, which go at the link's own rate
# (as QEMU's final copy ignores max-bandwidth): whatif is told that rate, measured here by one
# uncapped migration of a filled guest into populated memory.
"$bin" migrate --policy policies/precopy.yaml --memory 512MiB --workload fill:512MiB --mem-prealloc --json > "$tmp/link.jsonl" 2>/dev/null
link=$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print("%dMB/s" % (r["transferred_bytes"] / r["total_time_s"] / 1e6))' "$tmp/link.jsonl")
echo "   the link uncapped (loopback, one migration of a filled 512 MiB guest): $link"
echo "   \$ migpilot whatif --trace $trace --policy policies/adaptive.yaml --bandwidth 1Gbit/s --switchover-bandwidth $link --json"
"$bin" whatif --trace "$trace" --policy policies/adaptive.yaml --bandwidth 1Gbit/s --switchover-bandwidth "$link" --json > "$tmp/whatif.json"
python3 - "$tmp/run.jsonl" "$tmp/whatif.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
real = lines[-1]
switch = next((d["time_s"] for d in lines[:-1] if d["action"]["action"] == "start-postcopy"), None)
p = json.load(open(sys.argv[2]))["results"][0]
rows = [("total time", "%.2f s" % p["total_time_s"], "%.2f s" % real["total_time_s"]),
        ("switch to postcopy at", "%.2f s" % p["switch_at_s"] if p["switch_at_s"] is not None else "-", "%.2f s" % switch if switch is not None else "-"),
        ("downtime", "%.1f ms" % (p["downtime_s"] * 1000), "%.1f ms" % ((real["downtime_s"] or 0) * 1000)),
        ("postcopy time", "%.2f s" % p["postcopy_time_s"], "%.2f s" % (real["postcopy_time_s"] or 0)),
        ("remote faults", "%d" % p["remote_faults"], "%d" % real["remote_faults"])]
print("   %-22s %12s %12s" % ("", "predicted", "measured"))
for name, a, b in rows: print("   %-22s %12s %12s" % (name, a, b))
PY

echo
echo "== 4. Every shipped policy on the same memory and link (whatif, 300 ms downtime limit)"
policies=(); for p in precopy libvirt-postcopy-after-precopy libvirt-timeout-postcopy nova kubevirt adaptive; do policies+=(--policy "policies/$p.yaml"); done
"$bin" whatif --trace "$trace" "${policies[@]}" --bandwidth 1Gbit/s --switchover-bandwidth "$link" --downtime-limit 300ms
