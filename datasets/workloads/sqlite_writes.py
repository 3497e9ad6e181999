#!/usr/bin/env python3
"""A write-heavy SQLite workload with a large page cache (python3 sqlite3 module).

Builds a table of --rows rows (~200-byte payloads, a secondary index) in a database file,
reads it once so the whole database sits in SQLite's own page cache (PRAGMA cache_size
below), prints READY, then for --seconds runs transactions of random-key UPDATEs, appended
INSERTs and DELETEs, and exits.
"""
import argparse
import os
import random
import sqlite3
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--db", required=True)
p.add_argument("--rows", type=int, default=1_200_000)
p.add_argument("--cache-kib", type=int, default=400_000)
p.add_argument("--seconds", type=float, default=90)
p.add_argument("--tx-per-s", type=float, default=0, help="0 = as fast as possible")
args = p.parse_args()

if os.path.exists(args.db):
    os.remove(args.db)
db = sqlite3.connect(args.db, isolation_level=None)
db.execute(f"PRAGMA cache_size=-{args.cache_kib}")
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=OFF")
db.execute("PRAGMA wal_autocheckpoint=10000")
db.execute("CREATE TABLE kv(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, updated REAL NOT NULL, payload BLOB NOT NULL)")
db.execute("CREATE INDEX kv_grp ON kv(grp)")
rnd = random.Random(11)
db.execute("BEGIN")
db.executemany("INSERT INTO kv VALUES (?,?,?,?)",
               ((i, rnd.randrange(100_000), 0.0, rnd.randbytes(200)) for i in range(args.rows)))
db.execute("COMMIT")
db.execute("SELECT sum(length(payload)), count(*) FROM kv").fetchone()        # pull the table into the cache
db.execute("SELECT count(*) FROM kv INDEXED BY kv_grp WHERE grp >= 0").fetchone()  # and the index
pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
print(f"READY db={pages >> 20}MiB sqlite={sqlite3.sqlite_version}", flush=True)

end = time.monotonic() + args.seconds
next_id = args.rows
tx = 0
while time.monotonic() < end:
    t = time.monotonic()
    db.execute("BEGIN")
    for _ in range(50):
        db.execute("UPDATE kv SET grp=?, updated=?, payload=? WHERE id=?",
                   (rnd.randrange(100_000), t, rnd.randbytes(200), rnd.randrange(next_id)))
    for _ in range(10):
        db.execute("INSERT INTO kv VALUES (?,?,?,?)", (next_id, rnd.randrange(100_000), t, rnd.randbytes(200)))
        next_id += 1
    for _ in range(5):
        db.execute("DELETE FROM kv WHERE id=?", (rnd.randrange(next_id),))
    db.execute("COMMIT")
    tx += 1
    if args.tx_per_s > 0:
        time.sleep(max(0.0, 1.0 / args.tx_per_s - (time.monotonic() - t)))
db.close()
print(f"done transactions={tx}", file=sys.stderr)
