#!/usr/bin/env python3
"""whatif's prediction beside a real QEMU migration (issue 6): the test guest's workload
(Tests/Fixtures/qemu-guest: fill, then uniform writes over the filled pages) migrated by QEMU
under migpilot's policies over QMP, and `whatif` on the same workload as a synthetic trace.

    qemu-prediction.py MIGPILOT GUEST.ELF [--runs N] [--memory MiB] [--fill MiB]

Per scenario (policy, write rate, link cap) each run boots a fresh QEMU pair (TCG; the
destination with -incoming defer) and runs `migpilot migrate --source-qmp … --json`: total
time, downtime and switch time (total − postcopy time) are QEMU's own (query-migrate).
Then `trace synth --kind uniform --memory M --region 2MiB:FILL --rate R` and `whatif` with the
same policy and cap, what QEMU shows the policy (`--dirty-counts at-sync`: dirty pages only as
a rate at each sync), QEMU's switch terms: no stamps and no check (QEMU has neither), its
fixed stop time and its uncapped rate for the final copy (QEMU lifts max-bandwidth there),
both measured first by a run that stops with almost nothing pending and by an uncapped run.
Prints a table of medians and each figure's error.
"""
import argparse, importlib.util, json, os, statistics, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("qemu_driver_overhead", os.path.join(here, "qemu-driver-overhead.py"))
overhead = importlib.util.module_from_spec(spec)
spec.loader.exec_module(overhead)
FILL_OFFSET_MIB = 2  # the guest fills from 2 MiB on (Tests/Fixtures/qemu-guest/README.md)

SCENARIOS = [
    # policy, guest writes/s, cap (Mbit/s)
    ("precopy.yaml", 5000, 400),
    ("libvirt-postcopy-after-precopy.yaml", 20000, 400),
    ("adaptive.yaml", 40000, 400),
]


def migrate(args, tmp, tag, policy, rate, cap, extra=()):
    """One QEMU migration driven by migpilot; its summary line."""
    boot = argparse.Namespace(settle=0, memory=args.memory, guest=args.guest, fill=f"{args.fill}M", rate=rate)
    src, dst = overhead.boot(boot, tmp, tag)
    try:
        cmd = [args.migpilot, "migrate", "--source-qmp", f"{tmp}/{tag}-src.qmp", "--dest-qmp", f"{tmp}/{tag}-dst.qmp",
               "--to", f"unix:{tmp}/{tag}-mig.sock", "--policy", os.path.join(here, "..", "policies", policy), "--json", *extra]
        # No cap means none at all: QEMU's own default is 128 MiB/s.
        cmd += ["--bandwidth", f"{cap}Mbit/s" if cap else "100GB/s"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        if summary["status"] != "completed" or not summary["verified"]:
            sys.exit(f"{policy} at rate {rate}: {summary}\n{out.stderr}")
        return summary
    finally:
        overhead.stop(src, dst)


def switch_at(s):
    return None if s.get("postcopy_time_s") is None else s["total_time_s"] - s["postcopy_time_s"]


def predict(args, tmp, policy, rate, cap, rate_mbs, fixed_s):
    trace = f"{tmp}/uniform-{rate}.trace"
    subprocess.run([args.migpilot, "trace", "synth", "--kind", "uniform", "--memory", f"{args.memory}MiB",
                    "--region", f"{FILL_OFFSET_MIB}MiB:{args.fill}MiB", "--rate", str(rate), "--duration", "120s",
                    "--interval", "100ms", "-o", trace], check=True)
    cmd = [args.migpilot, "whatif", "--trace", trace, "--policy", os.path.join(here, "..", "policies", policy),
           "--bandwidth", f"{cap}Mbit/s", "--switchover-bandwidth", f"{rate_mbs:.0f}MB/s", "--dirty-counts", "at-sync", "--json",
           "--switchover-fixed", f"{fixed_s * 1e6:.0f}us", "--switchover-check-per-page", "0ns", "--switchover-stamp-bytes", "0",
           "--postcopy-switch-fixed", "0ns", "--postcopy-switch-per-run", "0ns", "--postcopy-switch-per-page", "0ns",
           "--no-postcopy-listen", "--no-flush-ahead"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["results"][0]


def error(measured, predicted):
    if measured is None or predicted is None:
        return "-" if measured is None and predicted is None else "outcome differs"
    return f"{(predicted - measured) / measured * 100:+.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("migpilot")
    ap.add_argument("guest")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", type=int, default=256, help="MiB")
    ap.add_argument("--fill", type=int, default=192, help="MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # QEMU's own switch: a stop with almost nothing pending (idle guest, 1 ms limit means
        # the stop comes once pass 1 is out) gives the fixed part; an uncapped run the rate.
        idle = [migrate(args, tmp, f"idle{i}", "precopy.yaml", 0, 400) for i in range(args.runs)]
        fixed = statistics.median(s["downtime_s"] for s in idle)
        fast = [migrate(args, tmp, f"fast{i}", "precopy.yaml", 0, 0) for i in range(args.runs)]
        rate_mbs = statistics.median(s["transferred_bytes"] / s["total_time_s"] / 1e6 for s in fast)
        print(f"QEMU's switch: {fixed * 1e3:.1f} ms with an idle guest (median of {args.runs}); uncapped rate {rate_mbs:.0f} MB/s",
              file=sys.stderr, flush=True)
        rows = []
        for policy, rate, cap in SCENARIOS:
            runs = [migrate(args, tmp, f"{policy[:4]}{rate}-{i}", policy, rate, cap) for i in range(args.runs)]
            m_total = statistics.median(s["total_time_s"] for s in runs)
            m_down = statistics.median(s["downtime_s"] for s in runs)
            switches = [switch_at(s) for s in runs]
            m_switch = statistics.median(switches) if all(x is not None for x in switches) else None
            p = predict(args, tmp, policy, rate, cap, rate_mbs, fixed)
            rows.append((policy, rate, cap, m_total, m_down, m_switch, p["total_time_s"], p["downtime_s"], p["switch_at_s"]))
            print(f"measured {policy} at {rate} pages/s", file=sys.stderr, flush=True)
    print(f"| policy | writes/s | cap | meas. total s | downtime ms | switch s | pred. total s | downtime ms | switch s | total err % | downtime err % | switch err % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for policy, rate, cap, mt, md, ms, pt, pd, ps in rows:
        f = lambda x, k=1: "-" if x is None else f"{x * k:.{2 if k == 1 else 1}f}"
        print(f"| {policy} | {rate} | {cap} Mbit/s | {f(mt)} | {f(md, 1e3)} | {f(ms)} | {f(pt)} | {f(pd, 1e3)} | {f(ps)} | "
              f"{error(mt, pt)} | {error(md, pd)} | {error(ms, ps)} |")


if __name__ == "__main__":
    main()
