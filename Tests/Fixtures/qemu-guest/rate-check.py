#!/usr/bin/env python3
"""How close the guest's dirty rate is to the rate= it was given, by the host's clock.

    rate-check.py GUEST.ELF [--seconds 10] RATE...

For each rate, boots the guest under TCG (fill=448M, -m 512), and times its "dirtied N" lines
(about one a second) with the host's monotonic clock: writes between the first and the last
line over the time between them. The guest's own clock (its TSC, measured against the PIT)
plays no part in the figure. Also prints the CPU QEMU used meanwhile (its utime + stime).
"""
import argparse, os, subprocess, time

def measure(elf, rate, seconds):
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "512", "-kernel", elf,
         "-append", f"fill=448M rate={rate}", "-display", "none", "-nodefaults", "-serial", "stdio"],
        stdout=subprocess.PIPE, text=True)
    tick = os.sysconf("SC_CLK_TCK")
    def cpu():
        fields = open(f"/proc/{qemu.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick
    points = []
    try:
        for line in qemu.stdout:
            if line.startswith("dirtied "):
                points.append((time.monotonic(), int(line.split()[1]), cpu()))
                if points[-1][0] - points[0][0] >= seconds:
                    break
    finally:
        qemu.kill()
        qemu.wait()
    (t0, n0, c0), (t1, n1, c1) = points[0], points[-1]
    got = (n1 - n0) / (t1 - t0)
    print(f"rate={rate}: {got:.0f} pages/s over {t1 - t0:.1f} s ({(got / rate - 1) * 100:+.2f}%), "
          f"QEMU used {(c1 - c0) / (t1 - t0) * 100:.0f}% of a core")

parser = argparse.ArgumentParser()
parser.add_argument("elf")
parser.add_argument("rates", type=int, nargs="+")
parser.add_argument("--seconds", type=float, default=10)
args = parser.parse_args()
for rate in args.rates:
    measure(args.elf, rate, args.seconds)
