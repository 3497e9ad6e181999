#!/usr/bin/env python3
"""Postcopy recovery figures (issue 5), with the release build:
  1. from the resume request to postcopy-active on the source, over 20 recoveries
     (migrate --inject cuts the link 20 times; each recovery's span is read off the decision
     log: the `recovered` event's time less the `recover` decision's time and its back-off);
  2. detecting a dead link that gives no error, only silence: a forwarding process
     (Tests/Fixtures/link-proxy.py) between the two sides is frozen with SIGSTOP, and the time
     until the source reports `channel-broken` is measured on this clock;
  3. the received-bitmap exchange for a 16 GiB guest (migpilot-recovery-bench).
Usage: Benchmarks/recovery.py [path/to/migpilot]
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, ".build/release/migpilot"))
proxy_script = os.path.join(root, "Tests/Fixtures/link-proxy.py")


def resume_spans():
    run = subprocess.run([binary, "migrate", "--memory", "256MiB", "--workload", "fill:128MiB", "--workload", "uniform:rate=30000",
                          "--bandwidth", "150Mbit/s", "--inject", "cut:after=postcopy+0.3s,every=0.3s,count=20", "--json"],
                         capture_output=True, text=True, cwd=root)
    lines = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    summary = lines[-1]
    assert summary["status"] == "completed" and summary["verified"], summary
    spans, asked = [], None
    for d in lines[:-1]:
        events = [e["event"] for e in d.get("events", [])]
        if "recovered" in events and asked is not None:
            spans.append(d["time_s"] - asked)
            asked = None
        if d.get("action", {}).get("action") == "recover":
            asked = d["time_s"] + d["action"]["after_s"]
    return spans, summary


def silence_detection():
    sock = os.path.join(tempfile.mkdtemp(), "dest.sock")
    dest = subprocess.Popen([binary, "incoming", "unix:" + sock, "--memory", "64MiB"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(sock):
        time.sleep(0.01)
    proxy = subprocess.Popen([sys.executable, proxy_script, "0", "unix:" + sock], stdout=subprocess.PIPE, text=True)
    port = int(proxy.stdout.readline().split()[1])
    source = subprocess.Popen([binary, "migrate", "--to", "tcp:127.0.0.1:%d" % port, "--memory", "64MiB", "--workload", "fill:32MiB",
                               "--workload", "uniform:rate=30000", "--bandwidth", "100Mbit/s", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root)
    frozen_at, detected_at = None, None
    for line in source.stdout:
        if frozen_at is None and '"status":"postcopy-active"' in line:
            time.sleep(0.3)
            proxy.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
        elif frozen_at is not None and '"channel-broken"' in line:
            detected_at = time.monotonic()
            break
    # Let it finish: a new proxy on the same port, the old one gone.
    proxy.kill()
    again = subprocess.Popen([sys.executable, proxy_script, str(port), "unix:" + sock], stdout=subprocess.DEVNULL)
    source.stdout.read()
    source.wait(120)
    again.kill()
    dest.wait(30)
    return detected_at - frozen_at


spans, summary = resume_spans()
print("resume request -> postcopy-active on the source, %d recoveries: median %.1f ms, max %.1f ms (target: median <= 20 ms)"
      % (len(spans), statistics.median(spans) * 1e3, max(spans) * 1e3))
print("   (the migration: %.2f s in all, %.2f s paused, verified: %s)" % (summary["total_time_s"], summary["paused_s"], summary["verified"]))
detections = [silence_detection() for _ in range(3)]
print("dead link (frozen forwarder, no error) found in: %s s; max %.2f s (target <= 1 s)"
      % (", ".join("%.2f" % d for d in detections), max(detections)))
bench = os.path.join(os.path.dirname(binary), "migpilot-recovery-bench")
subprocess.run([bench], check=True)
