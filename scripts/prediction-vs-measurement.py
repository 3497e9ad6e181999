#!/usr/bin/env python3
"""Prediction against measurement (issue 4): every dataset trace replayed as a `trace:`
workload by the embedded engine (`migpilot migrate`, a local guest migrated over loopback
tcp at a bandwidth cap), N runs, median (fewer once most of a row's runs have not finished:
its outcome is decided); against `migpilot whatif` on the same trace, policy and cap. Prints
one row per trace and policy, then the median and p90 of |error| for total time and downtime
(a downtime within 2 ms counts as no error).

The cap holds precopy's passes back, not the stop-and-copy, which the engine (as QEMU) sends
as fast as the link takes it, and begins with the guest still running (its flush ahead;
`migrate --no-flush-ahead` keeps it in the downtime): whatif is given that rate as
--switchover-bandwidth, the engine's
uncapped rate over loopback into populated memory, measured here too (median of 5) unless
given. The switch's own work (whatif's --switchover-* and --postcopy-switch-* options) is
measured here too, at the table's cap, median of 7 each (9 for the terms of short runs):
stop-and-copies with nothing pending of two guest sizes (the fixed part) and one with
thousands of short runs pending over a data-filled guest (per run), a switch to postcopy
with nothing stale (its fixed part), after a uniform writer (per stale run, dropped), after a
uniform writer over a data-filled guest (per held stale page, dropped in short runs as `auto`
drops them), after a sweep over a data-filled guest (per held stale page, moved) and after one
over a quarter of it (the fixed cost of moving). The per-run cost of a moved run is whatif's default.
The drops' terms come from the switches' listens (postcopy-listen drops what is stale before
the guest stops), the switch's fixed part from its downtime.
The first touch of fresh destination memory is measured in a stop whose scattered pending
pages land on fresh small pages, as a stop after pass 1 does. The calibration prices what each
stop and each listen carried as the engine counted it (the summary's stop_pages, stop_runs,
stop_fresh_pages, listen_s, listen_pages and listen_runs), and every migration starts after
SETTLE_S of quiet.

The migrations run interleaved: a round takes one run of every row and every calibration
term, and rounds follow until each has its runs. This machine's speed drifts over minutes
(a row's median of 7 moved by ±17 % between tables), and run one after another a row's runs
met whatever minutes they fell in, while the calibration met others.

Usage: scripts/prediction-vs-measurement.py path/to/migpilot [--runs 7] [--horizon 45s]
       [--bandwidth 1Gbit/s] [--switchover-bandwidth 1500MB/s] [--switchover-costs "--switchover-fixed 5ms ..."]
       [--policy policies/precopy.yaml ...] [--trace datasets/x.trace ...] [--json FILE]
"""
import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

DOWNTIME_SLACK_S = 0.002
# Seconds of quiet before every migration. This machine hands memory a process freed back to
# its host about 2 s later (free page reporting), and a run started in the seconds after the
# last one's exit ran its stop beside that: redis-benchmark under precopy.yaml, 8 runs each,
# interleaved, downtime 20–44 ms (median 27.9) back to back, 18–28 ms (median 23.0) after 4 s.
SETTLE_S = 4


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def trace_info(migpilot, path):
    out = subprocess.run([migpilot, "trace", "info", "--json", path], check=True, capture_output=True, text=True).stdout
    return last_json_line(out)


def migrate(cmd):
    """One `migpilot migrate --json` after SETTLE_S of quiet: its JSON lines, the summary last,
    with the 1-minute load average it started under as its "load"."""
    time.sleep(SETTLE_S)
    load = os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"no JSON line from {' '.join(cmd)}")
    lines[-1]["load"] = load
    return lines


class Job:
    """`want` runs of one `migpilot migrate --json` command, taken one a round with every other
    job's (`run_interleaved`), so that the machine's slow and fast minutes fall on every row and
    every calibration term alike instead of on whichever ran then. A row (`row`) keeps every
    run, completed or not, and is done once most of its runs cannot finish (its outcome is then
    decided, and each further run would wait out the horizon). A calibration run that
    `problem` finds fault with (it names the fault) is reported and not counted, up to twice as
    many attempts as wanted."""

    def __init__(self, name, cmd, want, problem=None, row=False):
        self.name, self.cmd, self.want, self.problem, self.row = name, cmd, want, problem, row
        self.results = []
        self.attempts = 0

    def done(self):
        if self.row:
            failed = sum(r["status"] != "completed" for r in self.results)
            return len(self.results) >= self.want or failed * 2 > self.want
        return len(self.results) >= self.want or self.attempts >= 2 * self.want

    def run_once(self):
        self.attempts += 1
        summary = migrate(self.cmd)[-1]
        if self.row and summary.get("status") == "completed" and not summary.get("verified"):
            sys.exit(f"verification failed: {' '.join(self.cmd)}: {summary.get('detail')}")
        fault = None if self.row else self.problem(summary)
        if fault:
            print(f"{self.name}: {fault}, not counted: {' '.join(self.cmd)}", file=sys.stderr, flush=True)
            return
        self.results.append(summary)


def run_interleaved(jobs):
    """Runs every job until it is done, one run of each a round."""
    rounds = 0
    while pending := [j for j in jobs if not j.done()]:
        rounds += 1
        for j in pending:
            print(f"round {rounds}: {j.name} run {len(j.results) + 1}/{j.want}", file=sys.stderr, flush=True)
            j.run_once()


def row_job(migpilot, trace, policy, bandwidth, memory_bytes, horizon, runs):
    """A real migration of a dataset trace, `runs` times."""
    cmd = [migpilot, "migrate", "--policy", policy, "--memory", f"{memory_bytes}B", "--workload", f"trace:{trace}",
           "--bandwidth", bandwidth, "--timeout", horizon, "--json"] + NO_MANUAL_RECOVERY
    return Job(f"{os.path.basename(trace)} {os.path.basename(policy)}", cmd, runs, row=True)


def uncapped_job(migpilot):
    """The engine's rate with no cap: a filled 512 MiB guest over loopback into populated memory,
    completed in precopy under precopy.yaml (median of 5)."""
    cmd = [migpilot, "migrate", "--policy", "policies/precopy.yaml", "--memory", "512MiB",
           "--workload", "fill:512MiB", "--json", "--mem-prealloc"]

    def problem(summary):
        if summary.get("status") != "completed" or summary.get("postcopy_time_s") is not None:
            return f"the uncapped run did not complete in precopy ({summary.get('status')})"
        return None
    return Job("uncapped rate", cmd, 5, problem)


def uncapped_rate(job):
    if not job.results:
        sys.exit(f"no uncapped run completed in precopy: {' '.join(job.cmd)}")
    return statistics.median(r["transferred_bytes"] / r["total_time_s"] for r in job.results)


# A postcopy run whose recovery retries ran out ends paused at once (exit 75, not completed)
# instead of waiting an hour for `migpilot recover`.
NO_MANUAL_RECOVERY = ["--recovery-window", "0s"]
RTT_S = 0.001  # whatif's default --rtt, part of every measured switch below
# Runs behind the terms that price the rows' short runs (per pending run, per stale run, per
# held page): each is a difference of two medians, and over 5 runs the terms moved by ±30 %
# from one calibration to the next here (per pending run 1.29 and 1.75 µs on 2026-12-04).
SHORT_RUN_TERMS_RUNS = 9
STAMP_BYTES = 8


def calibration_job(migpilot, name, policy, mib, workloads, bandwidth, discard="auto", postcopy=False, limit="1ms",
                    prealloc=False, runs=7):
    """`runs` completed migrations of a `mib` MiB guest at the table's `bandwidth`, with the
    downtime limit `limit` (1 ms: precopy stops or switches with almost nothing pending; None:
    the policy's) and the destination dropping stale pages as `discard` says, on populated
    memory if `prealloc`. Capped as the table's runs are, so that the destination keeps up
    with the stream: uncapped, the switch found it tens of milliseconds behind (pass 1's bytes
    still in the sockets and its first touches), which no term of the model is. One that does
    not complete (a postcopy link that broke and stayed paused), or that was to switch to
    postcopy (`postcopy`) and did not, is not counted. A stop-and-copy keeps its pending pages
    for the stop (--no-flush-ahead), where the terms they price are measured; the rows' stops,
    which flush them ahead, pay the same terms before the guest stops."""
    cmd = [migpilot, "migrate", "--policy", policy, "--memory", f"{mib}MiB", "--bandwidth", bandwidth,
           "--postcopy-discard", discard, "--no-flush-ahead", "--json"] + NO_MANUAL_RECOVERY
    cmd += ["--downtime-limit", limit] if limit else []
    cmd += ["--mem-prealloc"] if prealloc else []
    for w in workloads:
        cmd += ["--workload", w]

    def problem(summary):
        if summary.get("status") != "completed":
            return f"calibration run did not complete ({summary.get('status')})"
        if postcopy and summary.get("postcopy_time_s") is None:
            return "calibration run completed without switching to postcopy"
        return None
    return Job(f"calibration: {name}", cmd, runs, problem)


def medians(job):
    """A calibration job's medians: downtime, and what the stop carried as the engine counted
    it (pages, runs and, at the local destination, fresh pages)."""
    done = job.results
    if not done:
        sys.exit(f"no calibration run completed: {' '.join(job.cmd)}")
    med = lambda f: statistics.median(f(x) for x in done)
    return {"downtime": med(lambda x: x["downtime_s"]), "pages": med(lambda x: x["stop_pages"]), "runs": med(lambda x: x["stop_runs"]),
            "fresh": med(lambda x: x["stop_fresh_pages"] or 0), "listen": med(lambda x: x["listen_s"] or 0),
            "listen_pages": med(lambda x: x["listen_pages"] or 0), "listen_runs": med(lambda x: x["listen_runs"] or 0)}


SMALL_MIB, LARGE_MIB = 128, 512
# The writer whose pages make a stop's or a switch's short runs, in pages a second.
WRITES = 5000


def calibration_jobs(migpilot, bandwidth, tmp):
    """The migrations whatif's switch terms are measured from (`switchover_costs` says how),
    each a median of 7 runs (9 for the terms of short runs); synthetic traces go to `tmp`."""
    small, large, writes = SMALL_MIB, LARGE_MIB, WRITES
    after_pass = "policies/libvirt-postcopy-after-precopy.yaml"
    sweep_rate = 200000

    def synth(kind, rate, region):
        path = os.path.join(tmp, f"{kind}-{region}.trace")
        subprocess.run([migpilot, "trace", "synth", "--kind", kind, "--memory", f"{large}MiB", "--rate", str(rate),
                        "--duration", "30s", "--initial", "data", "--region", f"0MiB:{region}MiB", "-o", path], check=True)
        return f"trace:{path}"
    job = lambda name, *a, **k: calibration_job(migpilot, name, *a, **k)
    return {
        "stop-small": job("stop-small", "policies/precopy.yaml", small, [f"fill:{small}MiB"], bandwidth),
        "stop-large": job("stop-large", "policies/precopy.yaml", large, [f"fill:{large}MiB"], bandwidth),
        "scattered": job("scattered", "policies/precopy.yaml", large, [synth("uniform", writes, large)], bandwidth,
                         limit=None, runs=SHORT_RUN_TERMS_RUNS),
        "empty": job("empty", after_pass, large, [f"fill:{large // 2}MiB", "uniform:rate=100"], bandwidth, postcopy=True,
                     runs=SHORT_RUN_TERMS_RUNS),
        "dropped": job("dropped", after_pass, large, [f"fill:{large // 2}MiB", f"uniform:rate={writes}"], bandwidth, postcopy=True,
                       runs=SHORT_RUN_TERMS_RUNS),
        "held": job("held", after_pass, large, [synth("uniform", writes, large)], bandwidth, postcopy=True, runs=SHORT_RUN_TERMS_RUNS),
        "moved": job("moved", after_pass, large, [synth("sweep", sweep_rate, large)], bandwidth, postcopy=True),
        "moved-quarter": job("moved-quarter", after_pass, large, [synth("sweep", sweep_rate, large // 4)], bandwidth, postcopy=True),
        # 4,000 pages/s: what it writes during pass 1 fits the 300 ms budget, and the stop follows.
        "fresh": job("fresh", "policies/precopy.yaml", large, ["uniform:rate=4000", f"fill:{large // 2}MiB"], bandwidth, limit=None),
    }


def switchover_costs(jobs, rate):
    """whatif's options for the switch's own work, from the engine: downtime = RTT + stamps at
    `rate` + fixed (stop-and-copy; the stamp check comes after the downtime since protocol
    version 4 and keeps whatif's default), + postcopy fixed + per run × stale runs
    + per page × held stale pages (switch to postcopy), for dropped and for moved runs; a
    switch's listen before the stop (protocol version 5) = RTT + the same drops' terms."""
    small, large = SMALL_MIB, LARGE_MIB
    m = {name: medians(job) for name, job in jobs.items()}
    pages = {small: small * 256, large: large * 256}
    stop = {small: m["stop-small"]["downtime"], large: m["stop-large"]["downtime"]}
    per_guest_page = (stop[large] - stop[small]) / (pages[large] - pages[small])
    fixed = max(0.0, stop[small] - pages[small] * per_guest_page - RTT_S)
    # A stop with many short runs pending ("scattered"): a uniform writer over a guest whose
    # every page holds data, stopped under precopy.yaml's 300 ms limit, so that its pages land
    # where pass 1 put data at the destination, as the rows' do (their stops meet 0–969 fresh
    # pages of ≈ 9,100). Past the nothing-pending stop of the same guest and the pages' bytes at
    # `rate`, the rest is per run of what the engine sent. (Half the guest filled and the writer
    # over the other half, whose pending pages land on fresh memory, stopped faster: 6
    # interleaved pairs on 2026-12-07, median 18.8 against 23.0 ms; 13 pairs into a
    # pre-populated destination on 2026-12-06, 23.3 against 19.4 ms. Calibrated that way the
    # datasets' precopy stops came out 1–4 ms under the measured ones in every table since.)
    scattered = m["scattered"]
    per_pending_run = max(0.0, (scattered["downtime"] - stop[large] - scattered["pages"] * (4096 + 16) / rate) / scattered["runs"])
    # A switch to postcopy drops what is stale before the guest stops (postcopy-listen): its
    # listen takes a round trip, the list's bytes and the drops, priced per run and per held
    # page as the pause's few are (the registration is within the round trip). So the drops'
    # terms are measured on the listens, and the pause's fixed part on its downtime.
    # Nearly nothing stale ("empty"): a filled guest alone converges at the end of pass 1 and
    # never switches, so a writer of 100 pages/s keeps pass 2 above the threshold (a few hundred
    # stale runs, well under a millisecond).
    # Many short stale runs ("dropped"): the uniform writer's pages, dirtied independently, were
    # zero when pass 1 sent them, so the destination holds next to none of them and the cost is
    # per run (dropped, as `auto` drops short runs). Past the nearly-nothing-stale listen, per
    # run of the list the engine sent.
    empty, dropped = m["empty"], m["dropped"]
    per_run = max(0.0, (dropped["listen"] - empty["listen"]) / max(1, dropped["listen_runs"] - empty["listen_runs"]))
    postcopy_fixed = max(0.0, empty["downtime"] - RTT_S - pages[large] * STAMP_BYTES / rate - fixed - per_run * empty["runs"])
    # Stale pages the destination holds. Dropped ("held"): what `auto` drops is short runs, so
    # the same uniform writer over a guest whose every page holds data (pass 1 sent each page,
    # and the writer rewrites them one by one): past the per-run cost, per held page. (One
    # sweep's whole guest in one run, dropped, priced a page at 0.30 µs, a run `auto` would
    # move, and the adaptive rows' switches came out 2.4–7.7 ms above the measured ones.) Moved
    # (`auto`, as long runs are): a sweep over such a guest ("moved") rewrites, in pass 1, pages
    # pass 1 has already sent, in one or two runs, each moved out after the fixed cost of moving
    # at all, which a second sweep over a quarter of the guest ("moved-quarter", the rest zero)
    # tells apart.
    held, moved, moved_quarter = m["held"], m["moved"], m["moved-quarter"]
    per_page = max(0.0, (held["listen"] - empty["listen"] - per_run * (held["listen_runs"] - empty["listen_runs"])) / held["listen_pages"])
    per_moved_page = max(0.0, (moved["listen"] - moved_quarter["listen"]) / max(1, moved["listen_pages"] - moved_quarter["listen_pages"]))
    move_fixed = max(0.0, moved_quarter["listen"] - empty["listen"] - per_moved_page * moved_quarter["listen_pages"])
    # The datasets' destinations are fresh: a pending page that lands where no data was written
    # yet pays its first touch, which `rate` (into populated memory) does not contain. Measured
    # as the datasets' stops meet it ("fresh"), scattered and on small pages (a stop after pass
    # 1): the same writer, its half of the guest first, so that pass 1 sends it as zero pages at
    # once and what it writes while pass 1 sends the filled half is fresh at the stop. Past the
    # nothing-pending stop, the bytes and the runs, per fresh page (the destination counts them).
    fresh = m["fresh"]
    first_touch = max(0.0, (fresh["downtime"] - stop[large] - fresh["pages"] * (4096 + 16) / rate - per_pending_run * fresh["runs"])
                      / max(1, fresh["fresh"]))
    ms = lambda run: f"{run['downtime'] * 1e3:.1f} ms"
    lms = lambda run: f"{run['listen'] * 1e3:.1f} ms"
    print(f"switch: stop-and-copy {stop[small] * 1e3:.1f} ms at {small} MiB, {stop[large] * 1e3:.1f} ms at {large} MiB, "
          f"{ms(scattered)} with {scattered['pages']:.0f} pages pending in {scattered['runs']:.0f} runs (per run {per_pending_run * 1e9:.0f} ns) "
          f"({per_guest_page * 1e9:.1f} ns a guest page, the stamps on the wire {STAMP_BYTES / rate * 1e9:.1f} ns of it); "
          f"postcopy {ms(empty)} with {empty['runs']:.0f} stale runs at the stop; listens {lms(empty)} with {empty['listen_runs']:.0f} stale runs, "
          f"{lms(dropped)} with {dropped['listen_runs']:.0f} dropped (per run {per_run * 1e9:.0f} ns), "
          f"{lms(held)} with {held['listen_pages']:.0f} held stale pages in {held['listen_runs']:.0f} runs dropped, {lms(moved)} with {moved['listen_pages']:.0f} "
          f"moved and {lms(moved_quarter)} with {moved_quarter['listen_pages']:.0f} moved; "
          f"{ms(fresh)} with {fresh['pages']:.0f} pending of which {fresh['fresh']:.0f} fresh (first touch {first_touch * 1e6:.1f} us a page)",
          file=sys.stderr, flush=True)
    return ["--switchover-fixed", f"{fixed * 1e6:.0f}us", "--switchover-per-run", f"{per_pending_run * 1e9:.0f}ns",
            "--postcopy-switch-fixed", f"{postcopy_fixed * 1e6:.0f}us", "--postcopy-switch-per-run", f"{per_run * 1e9:.0f}ns",
            "--postcopy-switch-per-page", f"{per_page * 1e9:.0f}ns",
            "--postcopy-switch-per-moved-page", f"{per_moved_page * 1e9:.0f}ns",
            "--postcopy-switch-move-fixed", f"{move_fixed * 1e6:.0f}us",
            "--switchover-first-touch", f"{first_touch * 1e9:.0f}ns"]


def predict(migpilot, trace, policy, bandwidth, switchover, costs, horizon):
    cmd = [migpilot, "whatif", "--trace", trace, "--policy", policy, "--bandwidth", bandwidth,
           "--switchover-bandwidth", switchover, "--horizon", horizon, "--json"] + costs
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
    ap.add_argument("--runs", type=int, default=7, help="runs a row (default 7)")
    ap.add_argument("--horizon", default="45s", help="migrate --timeout and whatif --horizon")
    ap.add_argument("--bandwidth", default="1Gbit/s")
    ap.add_argument("--switchover-bandwidth", help="whatif's rate for the stop-and-copy, in MB/s (default: measured)")
    ap.add_argument("--switchover-costs", help="whatif's --switchover-* and --postcopy-switch-* options, as one string "
                    "(default: measured)")
    ap.add_argument("--policy", action="append")
    ap.add_argument("--trace", action="append")
    ap.add_argument("--json", help="also write every run and prediction to this file")
    args = ap.parse_args()
    policies = args.policy or ["policies/precopy.yaml", "policies/adaptive.yaml"]
    traces = args.trace or sorted(glob.glob("datasets/*.trace"))

    with tempfile.TemporaryDirectory() as tmp:
        uncapped = None if args.switchover_bandwidth else uncapped_job(args.migpilot)
        calibration = {} if args.switchover_costs else calibration_jobs(args.migpilot, args.bandwidth, tmp)
        rows_jobs = []
        for trace in traces:
            info = trace_info(args.migpilot, trace)
            memory = info["pages"] * info["page_size"]
            for policy in policies:
                rows_jobs.append((trace, policy, row_job(args.migpilot, trace, policy, args.bandwidth, memory, args.horizon, args.runs)))
        run_interleaved(([uncapped] if uncapped else []) + list(calibration.values()) + [j for _, _, j in rows_jobs])
    if uncapped:
        args.switchover_bandwidth = f"{uncapped_rate(uncapped) / 1e6:.0f}MB/s"
    if calibration:
        rate = float(args.switchover_bandwidth.removesuffix("MB/s")) * 1e6
        args.switchover_costs = " ".join(switchover_costs(calibration, rate))
    rows = []
    for trace, policy, job in rows_jobs:
        predicted = predict(args.migpilot, trace, policy, args.bandwidth, args.switchover_bandwidth,
                            args.switchover_costs.split(), args.horizon)
        rows.append(row(trace, policy, job.results, predicted))
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
          f"horizon {args.horizon}; {args.switchover_costs}")


if __name__ == "__main__":
    main()
