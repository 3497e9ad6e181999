#!/usr/bin/env python3
"""QEMU migrating Tests/Fixtures/qemu-guest over loopback tcp, the peer in Benchmarks/qemu.sh.

    qemu-migrate.py GUEST.ELF --case fresh|prealloc [--memory MiB] [--fill SIZE]

One run: it starts a destination QEMU (-incoming tcp:127.0.0.1:PORT, with -mem-prealloc in the
prealloc case) and a source QEMU booting the guest with fill=SIZE rate=0, both TCG, and waits
until the destination is listening (its QMP answers, status inmigrate: a preallocation is
over) and the guest has said "filled". Then over the source's QMP: max-bandwidth 100 GB/s (so
that nothing but the machine limits the rate), migrate, and query-migrate every 20 ms until
completed. Before quitting both, a sample of pages is read back at the destination (HMP xp)
and checked against what the guest wrote, so that a run that lost data is not counted.
Prints one JSON line with QEMU's own figures from query-migrate.
"""
import argparse, json, os, random, re, socket, subprocess, sys, tempfile, time

QEMU = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-display", "none", "-nodefaults"]
FILL_START = 0x200000


class QMP:
    """A QMP client over a unix socket: one command at a time, events skipped."""

    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no QMP at {path}")
                time.sleep(0.02)
        self.file = self.sock.makefile("rwb")
        self._read()  # the greeting: QEMU sends it once its main loop runs
        self.command("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name, **arguments):
        self.file.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"{name}: {reply['error']}")
        return reply["return"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(path, text, proc, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"QEMU exited ({proc.returncode}) before {text!r} in {path}")
        if os.path.exists(path) and text in open(path, errors="replace").read():
            return
        time.sleep(0.01)
    raise RuntimeError(f"no {text!r} in {path}")


def check_pages(qmp, fill_pages, samples=64):
    """Reads the first two words of sampled pages at the destination: page frame number and
    the number of the write (the fill's writes are numbered from 1, in address order)."""
    rng = random.Random(fill_pages)
    for page in [0, fill_pages - 1] + [rng.randrange(fill_pages) for _ in range(samples)]:
        address = FILL_START + page * 4096
        out = qmp.command("human-monitor-command", **{"command-line": f"xp /2wx {address:#x}"})
        words = [int(w, 16) for w in re.findall(r"0x([0-9a-f]{8})\b", out.split(":", 1)[1])]
        expected = [address >> 12, page + 1]
        if words != expected:
            raise RuntimeError(f"destination page {address:#x} holds {words}, not {expected}")


def run(args, tmp):
    port = free_port()
    src_qmp, dst_qmp = f"{tmp}/src.qmp", f"{tmp}/dst.qmp"
    src_serial = f"{tmp}/src.serial"
    common = QEMU + ["-m", str(args.memory), "-kernel", args.guest, "-append", f"fill={args.fill} rate=0"]
    dst = subprocess.Popen(common + ["-qmp", f"unix:{dst_qmp},server=on,wait=off", "-serial", "null",
                                     "-incoming", f"tcp:127.0.0.1:{port}"]
                           + (["-mem-prealloc"] if args.case == "prealloc" else []))
    src = subprocess.Popen(common + ["-qmp", f"unix:{src_qmp},server=on,wait=off", "-serial", f"file:{src_serial}"])
    try:
        deadline = time.monotonic() + 120
        d = QMP(dst_qmp, deadline)
        if d.command("query-status")["status"] != "inmigrate":
            raise RuntimeError("the destination is not waiting for a migration")
        s = QMP(src_qmp, deadline)
        wait_for_line(src_serial, "filled", src, deadline)
        s.command("migrate-set-parameters", **{"max-bandwidth": 100 * 10**9})
        s.command("migrate", uri=f"tcp:127.0.0.1:{port}")
        while True:
            info = s.command("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"migration still {info.get('status')} after 120 s")
            time.sleep(0.02)
        if info["status"] != "completed":
            raise RuntimeError(f"migration {info['status']}: {info.get('error-desc', '')}")
        # QEMU 7.2 says completed a moment before it works out total-time (the migration
        # thread sets the state, then the figures): until then total-time reads 0.
        while not info.get("total-time"):
            if time.monotonic() > deadline:
                raise RuntimeError("QEMU says completed but gives no total-time")
            time.sleep(0.01)
            info = s.command("query-migrate")
        while d.command("query-status")["status"] != "running":
            time.sleep(0.01)
        fill_pages = int(re.search(r"fill=(\d+) pages", open(src_serial).read()).group(1))
        check_pages(d, fill_pages)
        ram = info["ram"]
        return {"case": args.case, "total_time_ms": info["total-time"], "downtime_ms": info["downtime"],
                "setup_time_ms": info.get("setup-time"), "ram_transferred_bytes": ram["transferred"],
                "ram_normal_pages": ram["normal"], "ram_zero_pages": ram["duplicate"],
                "dirty_syncs": ram["dirty-sync-count"],
                "gb_per_s": ram["transferred"] / (info["total-time"] / 1000) / 1e9}
    finally:
        for p in (src, dst):
            p.kill()
            p.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("guest")
    parser.add_argument("--case", choices=["fresh", "prealloc"], required=True)
    parser.add_argument("--memory", type=int, default=512, help="MiB")
    parser.add_argument("--fill", default="448M")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args, tmp)))


if __name__ == "__main__":
    main()
