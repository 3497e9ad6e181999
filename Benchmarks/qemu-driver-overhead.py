#!/usr/bin/env python3
"""What migpilot's QMP driver costs QEMU: the same migration driven by `migpilot migrate
--source-qmp` and by hand, the same commands at the same moments, QEMU's total-time compared.

    qemu-driver-overhead.py MIGPILOT GUEST.ELF [--runs N] [--policy P] [--rate N] [--fill SIZE]
                            [--memory MiB] [--bandwidth Mbit/s] [--settle S]

Each round boots a fresh QEMU pair twice (TCG, 128 MiB by default, the guest with fill= and rate=, the
destination with -incoming defer). First migpilot drives it under the policy with --qmp-log,
which records every command it sent (polls aside) and when, relative to `migrate`. Then a plain
Python QMP client replays that log on the second pair: the commands before `migrate` in order,
the others at their recorded offsets, and polls query-migrate every 50 ms only to see the end.
Rounds alternate driver and replay so that a drift of the machine hits both. Prints each run
and the medians of QEMU's own total-time (query-migrate), and their ratio.
"""
import argparse, importlib.util, json, os, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("qemu_migrate", os.path.join(here, "qemu-migrate.py"))
qemu_migrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qemu_migrate)
QMP, QEMU, wait_for_line = qemu_migrate.QMP, qemu_migrate.QEMU, qemu_migrate.wait_for_line


def boot(args, tmp, tag):
    # Freed memory goes back to the hypervisor about 2 s after the free (Benchmarks/qemu.sh):
    # an unlimited link feels it, a capped one does not.
    time.sleep(args.settle)
    common = QEMU + ["-m", str(args.memory), "-kernel", args.guest, "-append", f"fill={args.fill} rate={args.rate}"]
    src = subprocess.Popen(common + ["-qmp", f"unix:{tmp}/{tag}-src.qmp,server=on,wait=off", "-serial", f"file:{tmp}/{tag}-src.serial"])
    dst = subprocess.Popen(common + ["-qmp", f"unix:{tmp}/{tag}-dst.qmp,server=on,wait=off", "-serial", "null", "-incoming", "defer"])
    wait_for_line(f"{tmp}/{tag}-src.serial", "filled", src, time.monotonic() + 60)
    return src, dst


def stop(*procs):
    for p in procs:
        p.kill()
        p.wait()


def driven(args, tmp, n):
    src, dst = boot(args, tmp, f"d{n}")
    try:
        log = f"{tmp}/d{n}.log"
        cmd = [args.migpilot, "migrate", "--source-qmp", f"{tmp}/d{n}-src.qmp", "--dest-qmp", f"{tmp}/d{n}-dst.qmp",
               "--to", f"unix:{tmp}/d{n}-mig.sock", "--policy", args.policy, "--json", "--qmp-log", log]
        if args.bandwidth:
            cmd += ["--bandwidth", f"{args.bandwidth}Mbit/s"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        if summary["status"] != "completed" or not summary["verified"]:
            sys.exit(f"migpilot: {summary}\n{out.stderr}")
        return summary["total_time_s"], [json.loads(l) for l in open(log)]
    finally:
        stop(src, dst)


def replayed(args, tmp, n, log):
    src, dst = boot(args, tmp, f"r{n}")
    try:
        deadline = time.monotonic() + 300
        sides = {"source": QMP(f"{tmp}/r{n}-src.qmp", deadline), "destination": QMP(f"{tmp}/r{n}-dst.qmp", deadline)}
        def send(entry):
            arguments = dict(entry.get("arguments", {}))
            if entry["command"] in ("migrate", "migrate-incoming"):
                arguments["uri"] = f"unix:{tmp}/r{n}-mig.sock"  # this pair's own socket
            sides[entry["side"]].command(entry["command"], **arguments)
        start = next(i for i, e in enumerate(log) if e["command"] == "migrate" and e["side"] == "source")
        for e in log[:start]:
            send(e)
        origin = time.monotonic()
        for e in log[start:]:
            delay = origin + e["t_s"] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send(e)
        while True:
            info = sides["source"].command("query-migrate")
            # QEMU says completed a moment before it has set total-time: read it once set.
            if info.get("status") == "completed" and info.get("total-time", 0) > 0 or info.get("status") in ("failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                sys.exit("replay: no end within 300 s")
            time.sleep(0.05)
        if info["status"] != "completed":
            sys.exit(f"replay: {info['status']}")
        return info["total-time"] / 1000
    finally:
        stop(src, dst)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("migpilot")
    parser.add_argument("guest")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--policy", default=os.path.join(here, "..", "policies", "precopy.yaml"))
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--settle", type=float, default=0, help="seconds to wait before each boot")
    parser.add_argument("--memory", type=int, default=128, help="MiB")
    parser.add_argument("--fill", default="96M")
    parser.add_argument("--bandwidth", type=int, default=400, help="Mbit/s, 0: QEMU's default")
    args = parser.parse_args()
    driver, hand = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            t, log = driven(args, tmp, n)
            driver.append(t)
            hand.append(replayed(args, tmp, n, log))
            print(f"round {n + 1}: driver {t * 1e3:.0f} ms, by hand {hand[-1] * 1e3:.0f} ms, "
                  f"{len(log)} commands ({', '.join(sorted({e['command'] for e in log}))})", flush=True)
    d, h = statistics.median(driver), statistics.median(hand)
    print(f"median total-time: driver {d * 1e3:.0f} ms, by hand {h * 1e3:.0f} ms, driver/hand {d / h:.4f} "
          f"({(d / h - 1) * 100:+.2f}%)")


if __name__ == "__main__":
    main()
