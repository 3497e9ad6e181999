#!/usr/bin/env python3
"""Jacobi relaxation of a 2-D grid with numpy: every sweep rewrites the whole output grid.

Two float64 grids (ROWS x COLS each) are swapped after every sweep; all arithmetic writes
into preallocated arrays (out=...), so the process keeps one stable set of big mappings.
Prints READY once both grids are allocated and touched, then sweeps for --seconds and exits.
"""
import argparse
import sys
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int, default=4096)
p.add_argument("--cols", type=int, default=5120)
p.add_argument("--seconds", type=float, default=90)
p.add_argument("--sweeps-per-s", type=float, default=0, help="0 = as fast as possible")
args = p.parse_args()

rng = np.random.default_rng(7)
a = rng.random((args.rows, args.cols))  # initial field
a[0, :] = 1.0                           # a hot edge keeps the field changing
b = a.copy()
tmp = np.empty((args.rows - 2, args.cols - 2))
print(f"READY grids={2 * a.nbytes >> 20}MiB numpy={np.__version__}", flush=True)

end = time.monotonic() + args.seconds
sweeps = 0
while time.monotonic() < end:
    t = time.monotonic()
    np.add(a[:-2, 1:-1], a[2:, 1:-1], out=tmp)
    np.add(tmp, a[1:-1, :-2], out=tmp)
    np.add(tmp, a[1:-1, 2:], out=tmp)
    np.multiply(tmp, 0.25, out=b[1:-1, 1:-1])
    a, b = b, a
    sweeps += 1
    if args.sweeps_per_s > 0:
        time.sleep(max(0.0, 1.0 / args.sweeps_per_s - (time.monotonic() - t)))
print(f"done sweeps={sweeps}", file=sys.stderr)
