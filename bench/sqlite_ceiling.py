#!/usr/bin/env python3
"""What the disk allows: durable inserts per second with SQLite alone (Python's sqlite3, no HTTP,
no parsing), using hookgate's settings: WAL, synchronous=FULL, 1 KiB pages, a UNIQUE event id
(hex SHA-256: random keys) and an index on the receive time, ~450-byte bodies.

    python3 bench/sqlite_ceiling.py [--prefill 50000] [--seconds 5]

Each batch size is one transaction (one fsync) per batch, as hookgate's group commit does.
"""
import argparse, hashlib, os, sqlite3, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--prefill", type=int, default=50_000)
ap.add_argument("--seconds", type=float, default=5)
args = ap.parse_args()

SCHEMA = [
    "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL,"
    " scheme TEXT NOT NULL, name TEXT NOT NULL, model TEXT, body BLOB NOT NULL, received_at INTEGER NOT NULL)",
    "CREATE INDEX events_received_at ON events (received_at)",
]
BODY = b"x" * 450


def row():
    return (hashlib.sha256(os.urandom(16)).hexdigest(), "databricks", "databricks",
            "MODEL_VERSION_TRANSITIONED_STAGE", "m", BODY, int(time.time() * 1000))


def run(batch, unique=True):
    d = tempfile.mkdtemp(prefix="sqlite-ceiling-")
    c = sqlite3.connect(os.path.join(d, "t.db"), isolation_level=None)
    c.execute("PRAGMA page_size=1024")
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    for s in SCHEMA:
        c.execute(s if unique else s.replace(" UNIQUE", ""))
    ins = "INSERT INTO events VALUES (NULL,?,?,?,?,?,?,?)"
    c.execute("PRAGMA synchronous=OFF")
    c.execute("BEGIN")
    c.executemany(ins, (row() for _ in range(args.prefill)))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("PRAGMA synchronous=FULL")
    n, commits, t0 = 0, 0, time.time()
    while time.time() - t0 < args.seconds:
        c.execute("BEGIN IMMEDIATE")
        c.executemany(ins, [row() for _ in range(batch)])
        c.execute("COMMIT")
        n += batch
        commits += 1
        if commits % 200 == 0:
            c.execute("PRAGMA wal_checkpoint(PASSIVE)")
    dt = time.time() - t0
    c.close()
    return n / dt, dt / commits * 1000


print(f"SQLite alone, {args.prefill:,} rows already stored, {args.seconds:.0f} s per line")
print("| rows per commit | unique event id | rows/s | ms per commit |")
print("|---|---|---|---|")
for batch in (1, 8, 23, 32, 64):
    for unique in (True, False):
        rate, ms = run(batch, unique)
        print(f"| {batch} | {'yes' if unique else 'no'} | {rate:,.0f} | {ms:.2f} |", flush=True)
