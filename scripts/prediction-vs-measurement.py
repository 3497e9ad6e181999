#!/usr/bin/env python3
"""Prediction against measurement (issue 4): every dataset trace replayed as a `trace:`
workload by the embedded engine (`migpilot migrate`, a local guest migrated over loopback
tcp at a bandwidth cap), N runs, median; against `migpilot whatif` on the same trace,
policy and cap. Prints one row per trace and policy, then the median and p90 of |error|
for total time and downtime (a downtime within 2 ms counts as no error).

The cap holds precopy's passes back, not the stop-and-copy, which the engine (as QEMU) sends
as fast as the link takes it: whatif is given that rate as --switchover-bandwidth, the engine's
uncapped rate over loopback into populated memory, measured here first (median of 3) unless
given.

Usage: scripts/prediction-vs-measurement.py path/to/migpilot [--runs 3] [--horizon 45s]
       [--bandwidth 1Gbit/s] [--switchover-bandwidth 1.5GB/s] [--policy policies/precopy.yaml ...]
       [--trace datasets/x.trace ...] [--json FILE]
"""
import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

DOWNTIME_SLACK_S = 0.002


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def trace_info(migpilot, path):
    out = subprocess.run([migpilot, "trace", "info", "--json", path], check=True, capture_output=True, text=True).stdout
    return last_json_line(out)


def measure(migpilot, trace, policy, bandwidth, memory_bytes, horizon):
    """One real migration; its summary with the load average it started under."""
    load = os.getloadavg()[0]
    cmd = [migpilot, "migrate", "--policy", policy, "--memory", f"{memory_bytes}B", "--workload", f"trace:{trace}",
           "--bandwidth", bandwidth, "--timeout", horizon, "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    summary = last_json_line(run.stdout)
    if summary.get("status") == "completed" and not summary.get("verified"):
        sys.exit(f"verification failed: {' '.join(cmd)}: {summary.get('detail')}")
    summary["load"] = load
    return summary


def uncapped_rate(migpilot):
    """The engine's rate with no cap: a filled 512 MiB guest over loopback into populated memory."""
    rates = []
    for _ in range(3):
        run = subprocess.run([migpilot, "migrate", "--policy", "policies/precopy.yaml", "--memory", "512MiB",
                              "--workload", "fill:512MiB", "--mem-prealloc", "--json"], capture_output=True, text=True)
        summary = last_json_line(run.stdout)
        rates.append(summary["transferred_bytes"] / summary["total_time_s"])
    return statistics.median(rates)


def predict(migpilot, trace, policy, bandwidth, switchover, horizon):
    cmd = [migpilot, "whatif", "--trace", trace, "--policy", policy, "--bandwidth", bandwidth,
           "--switchover-bandwidth", switchover, "--horizon", horizon, "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["results"][0]


def switch_at(total, postcopy):
    """When the guest stopped on the source for the switch to postcopy (None: no switch)."""
    return None if postcopy is None else total - postcopy


def percentile(values, q):
    """Nearest rank: the smallest value with at least q of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def fmt(v, scale=1.0, digits=2):
    return "-" if v is None else f"{v * scale:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("migpilot")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--horizon", default="45s", help="migrate --timeout and whatif --horizon")
    ap.add_argument("--bandwidth", default="1Gbit/s")
    ap.add_argument("--switchover-bandwidth", help="whatif's rate for the stop-and-copy (default: measured)")
    ap.add_argument("--policy", action="append")
    ap.add_argument("--trace", action="append")
    ap.add_argument("--json", help="also write every run and prediction to this file")
    args = ap.parse_args()
    policies = args.policy or ["policies/precopy.yaml", "policies/adaptive.yaml"]
    traces = args.trace or sorted(glob.glob("datasets/*.trace"))

    if not args.switchover_bandwidth:
        print("measuring the engine's uncapped rate", file=sys.stderr, flush=True)
        args.switchover_bandwidth = f"{uncapped_rate(args.migpilot) / 1e6:.0f}MB/s"
    rows = []
    for trace in traces:
        info = trace_info(args.migpilot, trace)
        memory = info["pages"] * info["page_size"]
        for policy in policies:
            runs = []
            for i in range(args.runs):
                print(f"measuring {os.path.basename(trace)} {os.path.basename(policy)} run {i + 1}/{args.runs}",
                      file=sys.stderr, flush=True)
                runs.append(measure(args.migpilot, trace, policy, args.bandwidth, memory, args.horizon))
            predicted = predict(args.migpilot, trace, policy, args.bandwidth, args.switchover_bandwidth, args.horizon)
            rows.append(row(trace, policy, runs, predicted))
            time.sleep(1)
    report(rows, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def row(trace, policy, runs, predicted):
    completed = [r for r in runs if r["status"] == "completed"]
    measured_done = len(completed) * 2 > len(runs)  # the outcome of most runs
    r = {"trace": os.path.basename(trace), "policy": os.path.splitext(os.path.basename(policy))[0],
         "runs": runs, "predicted": predicted, "measured_completed": measured_done,
         "predicted_completed": predicted["completed"], "load": max(x["load"] for x in runs)}
    if measured_done:
        r["m_total"] = statistics.median(x["total_time_s"] for x in completed)
        r["m_downtime"] = statistics.median(x["downtime_s"] for x in completed)
        r["m_passes"] = statistics.median(x["passes"] for x in completed)
        switches = [switch_at(x["total_time_s"], x["postcopy_time_s"]) for x in completed]
        r["m_switch"] = statistics.median(switches) if all(s is not None for s in switches) else None
        r["m_postcopy_runs"] = sum(s is not None for s in switches)
    r["p_total"] = predicted["total_time_s"] if predicted["completed"] else None
    r["p_downtime"] = predicted["downtime_s"] if predicted["completed"] else None
    r["p_passes"] = predicted["passes"]
    r["p_switch"] = predicted["switch_at_s"]
    if measured_done and predicted["completed"]:
        r["e_total"] = (r["p_total"] - r["m_total"]) / r["m_total"]
        delta = r["p_downtime"] - r["m_downtime"]
        r["e_downtime"] = delta / r["m_downtime"]
        r["e_downtime_rule"] = 0.0 if abs(delta) <= DOWNTIME_SLACK_S else abs(r["e_downtime"])
    return r


def report(rows, args):
    header = ["trace", "policy", "load", "meas. total s", "downtime ms", "passes", "switch s",
              "pred. total s", "downtime ms", "passes", "switch s", "total err %", "downtime err %"]
    table = []
    for r in rows:
        if "e_total" in r:
            errors = [f"{r['e_total'] * 100:+.1f}",
                      f"{r['e_downtime'] * 100:+.1f}" + (" (≤ 2 ms)" if r["e_downtime_rule"] == 0 else "")]
        else:
            agree = r["measured_completed"] == r["predicted_completed"]
            outcome = "both not finished" if not r["measured_completed"] and agree else \
                f"{'agree' if agree else 'DISAGREE'}: measured {'finished' if r['measured_completed'] else 'not finished'}, " \
                f"predicted {'finished' if r['predicted_completed'] else 'not finished'}"
            errors = [f"outcome: {outcome} in {args.horizon}", ""]
        m_switch = r.get("m_switch")
        if r.get("m_postcopy_runs") and m_switch is None:
            m_switch_text = f"{r['m_postcopy_runs']}/{len(r['runs'])} switched"
        else:
            m_switch_text = fmt(m_switch)
        table.append([r["trace"], r["policy"], f"{r['load']:.1f}",
                      fmt(r.get("m_total")), fmt(r.get("m_downtime"), 1000, 1), fmt(r.get("m_passes"), digits=0), m_switch_text,
                      fmt(r["p_total"]), fmt(r["p_downtime"], 1000, 1), str(r["p_passes"]), fmt(r["p_switch"])] + errors)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(t, widths)) + " |")

    timed = [r for r in rows if "e_total" in r]
    total_errors = [abs(r["e_total"]) for r in timed]
    downtime_raw = [abs(r["e_downtime"]) for r in timed]
    downtime_rule = [r["e_downtime_rule"] for r in timed]
    outcomes = [r for r in rows if "e_total" not in r]
    agreeing = sum(r["measured_completed"] == r["predicted_completed"] for r in outcomes)
    print()
    print(f"rows with times: {len(timed)}; rows judged on the outcome: {len(outcomes)} ({agreeing} agree)")

    def line(name, values):
        if not values:
            return f"{name}: -"
        return f"{name}: median {statistics.median(values) * 100:.1f} %, p90 {percentile(values, 0.9) * 100:.1f} %"
    print(line("|error| total time", total_errors))
    print(line("|error| downtime (within 2 ms counts as 0)", downtime_rule))
    print(line("|error| downtime (raw)", downtime_raw))
    print(f"runs per row: {args.runs} (median); bandwidth {args.bandwidth}; switchover {args.switchover_bandwidth}; "
          f"horizon {args.horizon}")


if __name__ == "__main__":
    main()
