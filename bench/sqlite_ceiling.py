#!/usr/bin/env python3
"""What the disk allows: durable inserts per second with SQLite alone (Python's sqlite3, no HTTP,
no parsing), using hookgate's settings: WAL, synchronous=FULL, 1 KiB pages, an index on the
receive time, ~450-byte bodies, and one of three de-duplication keys:

  time-led   UNIQUE (key_time, event_id), the sender's clock first (what hookgate stores)
  id alone   UNIQUE (event_id): hex SHA-256, so each insert lands at a random place
  none       no unique key (what a store that did not de-duplicate would cost)

    python3 bench/sqlite_ceiling.py [--prefill 50000] [--seconds 5]

Each batch size is one transaction (one fsync) per batch, as hookgate's group commit does.
"""
import argparse, hashlib, os, sqlite3, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--prefill", type=int, default=50_000)
ap.add_argument("--seconds", type=float, default=5)
args = ap.parse_args()

KEYS = {
    "time-led": ", UNIQUE (key_time, event_id)",
    "id alone": ", UNIQUE (event_id)",
    "none": "",
}
BODY = b"x" * 450


def row():
    now = int(time.time() * 1000)
    return (now, hashlib.sha256(os.urandom(16)).hexdigest(), "databricks", "databricks",
            "MODEL_VERSION_TRANSITIONED_STAGE", "m", BODY, now)


def run(batch, key):
    d = tempfile.mkdtemp(prefix="sqlite-ceiling-")
    c = sqlite3.connect(os.path.join(d, "t.db"), isolation_level=None)
    c.execute("PRAGMA page_size=1024")
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, key_time INTEGER NOT NULL, event_id TEXT NOT NULL,"
              " endpoint TEXT NOT NULL, scheme TEXT NOT NULL, name TEXT NOT NULL, model TEXT, body BLOB NOT NULL,"
              f" received_at INTEGER NOT NULL{KEYS[key]})")
    c.execute("CREATE INDEX events_received_at ON events (received_at)")
    ins = "INSERT INTO events VALUES (NULL,?,?,?,?,?,?,?,?)"
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
print("| rows per commit | unique key | rows/s | ms per commit |")
print("|---|---|---|---|")
for batch in (1, 8, 32):
    for key in KEYS:
        rate, ms = run(batch, key)
        print(f"| {batch} | {key} | {rate:,.0f} | {ms:.2f} |", flush=True)
