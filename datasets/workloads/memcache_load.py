#!/usr/bin/env python3
"""Fill a memcached server, then drive a skewed get/set load at it over loopback.

Text protocol over one TCP connection to 127.0.0.1 (the only address this accepts).
Fill: --keys items with values of 100..900 bytes (several slab classes), pipelined with
noreply. Then prints READY and, for --seconds, sends batches of pipelined commands at
--ops-per-s: --get-share gets, the rest sets; keys drawn from a Zipf-like distribution
(rank ~ U^--skew), so a small hot set takes most of the traffic. Exits by itself.
"""
import argparse
import random
import socket
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--keys", type=int, default=1_200_000)
p.add_argument("--seconds", type=float, default=90)
p.add_argument("--ops-per-s", type=float, default=40_000)
p.add_argument("--get-share", type=float, default=0.8)
p.add_argument("--skew", type=float, default=3.0)
args = p.parse_args()

s = socket.create_connection(("127.0.0.1", args.port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rnd = random.Random(5)
values = [rnd.randbytes(n).hex()[:n].encode() for n in range(100, 901)]


def key(i):
    return b"obj:%08d" % i


def wait_for_mn():
    """Read responses until the MN that ends a pipelined batch (values are hex, keys obj:N)."""
    tail = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            sys.exit("memcached closed the connection")
        data = tail + chunk
        if b"MN\r\n" in data:
            return
        tail = data[-3:]


# Fill
batch = []
for i in range(args.keys):
    v = values[rnd.randrange(len(values))]
    batch.append(b"set %s 0 0 %d noreply\r\n%s\r\n" % (key(i), len(v), v))
    if len(batch) == 2000:
        s.sendall(b"".join(batch))
        batch.clear()
s.sendall(b"".join(batch) + b"mn\r\n")
wait_for_mn()
print(f"READY keys={args.keys}", flush=True)

# Load
per_batch = 200
end = time.monotonic() + args.seconds
start = time.monotonic()
sent = 0
n = args.keys
while time.monotonic() < end:
    cmds = []
    for _ in range(per_batch):
        k = key(min(n - 1, int(n * rnd.random() ** args.skew)))
        if rnd.random() < args.get_share:
            cmds.append(b"mg %s v\r\n" % k)
        else:
            v = values[rnd.randrange(len(values))]
            cmds.append(b"ms %s %d q\r\n%s\r\n" % (k, len(v), v))
    s.sendall(b"".join(cmds) + b"mn\r\n")
    wait_for_mn()
    sent += per_batch
    ahead = sent / args.ops_per_s - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
s.close()
print(f"done ops={sent} rate={sent / (time.monotonic() - start):.0f}/s", file=sys.stderr)
