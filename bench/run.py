#!/usr/bin/env python3
"""Side-by-side load benchmark: hookgate (durable ingest) next to the bare hyper + HMAC ceiling.

Everything runs on 127.0.0.1 in one interleaved run, so the ratios are comparable even on a noisy
machine. Needs wrk (`apt-get install wrk`) and a Rust toolchain.

    python3 bench/run.py                  # 3 reps x (c32, c1) x 10 s, relay and latency phases
    python3 bench/run.py --reps 1 --duration 5

Phases:
  ingest   wrk -t1 -c32 / -c1 with unique signed ~450-byte Databricks events (a repeated body
           would only be a duplicate): req/s, p50, p99, server CPU per request, RSS.
  relay    a backlog of N stored deliveries (dead, then replayed at once) sent to the ceiling
           server acting as a target that answers 200 at once: deliveries per second.
  latency  ~100 events/s (wrk -c1 with a 10 ms pause) relayed to that target: ingress-to-
           delivery time from hookgate_event_to_delivery_seconds.
  tls      (only when asked for: --phases tls) hookgate in the clear and with server.tls (the
           test certificate in tests/fixtures/tls), interleaved, wrk -c32 over keep-alive
           connections: what HTTPS costs per request once the connections are open.
"""
import argparse, os, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TICK = os.sysconf("SC_CLK_TCK")
SECRET = "anyRandomString"
# The gateway under test (`--binary` points elsewhere, e.g. at an older build to compare).
BINARY = os.path.join(ROOT, "target", "release", "hookgate")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    sh(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(BENCH, "ceiling", "Cargo.toml"),
        "--target-dir", os.path.join(ROOT, "target", "bench-ceiling")], cwd=ROOT)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=30):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, name, cmd, port, path, env=None, cwd=None):
        self.name, self.cmd, self.port, self.path, self.env, self.cwd = name, cmd, port, path, env, cwd
        self.proc = None

    def start(self):
        env = dict(os.environ, **(self.env or {}))
        self.log = open(os.path.join(tempfile.gettempdir(), f"bench-{self.name}.log"), "w")
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=self.cwd, stdout=self.log, stderr=self.log)
        wait_port(self.port)
        time.sleep(0.3)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid


def gateway_config(dir_, port, admin_port, target_url=None, max_attempts=12, concurrency=64, tls=False):
    routes = ""
    if tls:
        fixtures = os.path.join(ROOT, "tests", "fixtures", "tls")
        routes += f"""
[server.tls]
cert = "{fixtures}/server.pem"
key = "{fixtures}/server.key"
"""
    if target_url:
        routes += f"""
[targets.sink]
kind = "http"
url = "{target_url}"
concurrency = {concurrency}
[targets.sink.retry]
max_attempts = {max_attempts}
initial = "1s"

[[routes]]
name = "all to the sink"
to = ["sink"]
"""
    path = os.path.join(dir_, "routes.toml")
    with open(path, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
[store]
url = "sqlite://{dir_}/hookgate.db"
[admin]
token = "bench"
[[endpoints]]
name = "databricks"
path = "/hooks/databricks"
scheme = "databricks"
secrets = ["{SECRET}"]
{routes}
""")
    return path


def gateway(dir_, **kw):
    port, admin = free_port(), free_port()
    cfg = gateway_config(dir_, port, admin, **kw)
    s = Server("hookgate", [BINARY, "serve", "--config", cfg], port,
               "/hooks/databricks", env={"HOOKGATE_LOG": "warn"})
    s.admin = admin
    s.scheme = "https" if kw.get("tls") else "http"
    return s


def wrk(server, conns, duration, reqs, extra_env=None):
    env = dict(os.environ, REQS=reqs, URL_PATH=server.path, **(extra_env or {}))
    before = cpu_ticks(server.pid)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.wait(0.2):
            try:
                samples.append(rss_kb(server.pid))
            except OSError:
                return
    t = threading.Thread(target=sample)
    t.start()
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
                          "-s", os.path.join(BENCH, "unique_post.lua"), f"{getattr(server, 'scheme', 'http')}://127.0.0.1:{server.port}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    stop.set()
    t.join()
    time.sleep(0.5)  # let the server finish what it was doing
    ticks = cpu_ticks(server.pid) - before
    m = re.search(r"RESULT requests=(\d+) rps=([\d.]+) p50_us=(\d+) p99_us=(\d+) non2xx3xx=(\d+) errors=(\d+)", out)
    if not m:
        raise RuntimeError(out)
    n = int(m.group(1))
    return {"requests": n, "rps": float(m.group(2)), "p50_ms": int(m.group(3)) / 1000, "p99_ms": int(m.group(4)) / 1000,
            "non2xx": int(m.group(5)), "errors": int(m.group(6)),
            "cpu_us_per_req": ticks / TICK * 1e6 / max(n, 1),
            "rss_kb_end": samples[-3] if len(samples) >= 3 else (samples[-1] if samples else 0),
            "rss_kb_max": max(samples) if samples else 0}


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def histogram_quantile(text, name, q, labels=""):
    """Upper bound (ms) of the first bucket of a Prometheus histogram holding a fraction q."""
    buckets, count = {}, metric(text, f"{name}_count{labels and '{' + labels + '}'}")
    for line in text.splitlines():
        m = re.match(re.escape(name) + r'_bucket\{' + (re.escape(labels) + "," if labels else "") + r'le="([^"]+)"\} (\S+)', line)
        if m and m.group(1) != "+Inf":
            buckets[float(m.group(1))] = float(m.group(2))
    for le in sorted(buckets):
        if buckets[le] >= q * count:
            return le * 1000
    return float("inf")


def med(rows, key):
    vals = [r[key] for r in rows]
    return statistics.median(vals), min(vals), max(vals)


def fmt(rows, key, digits=0):
    m, lo, hi = med(rows, key)
    f = f"{{:,.{digits}f}}"
    return f"{f.format(m)} [{f.format(lo)}–{f.format(hi)}]" if len(rows) > 1 else f.format(m)


def ingest_phase(args, reqs, ceiling):
    results = {("ceiling", 32): [], ("hookgate", 32): [], ("ceiling", 1): [], ("hookgate", 1): []}
    idle = []
    accepted = []
    for rep in range(args.reps):
        for conns in (32, 1):
            for name in ("ceiling", "hookgate"):
                if name == "ceiling":
                    r = wrk(ceiling, conns, args.duration, reqs)
                else:
                    d = tempfile.mkdtemp(prefix="hookgate-bench-")
                    g = gateway(d)
                    g.start()
                    time.sleep(2)
                    idle.append(rss_kb(g.pid))
                    r = wrk(g, conns, args.duration, reqs)
                    r["rss_kb_after"] = rss_kb(g.pid)
                    text = metrics(g.admin)
                    accepted.append(metric(text, 'hookgate_events_total{endpoint="databricks",event="MODEL_VERSION_TRANSITIONED_STAGE"}'))
                    r["batch_mean"] = metric(text, "hookgate_store_commit_batch_size_sum") / max(1, metric(text, "hookgate_store_commit_batch_size_count"))
                    r["accepted"] = accepted[-1]
                    # wrk's percentiles are corrected for coordinated omission (a stall also
                    # counts the requests a client would have sent meanwhile); the server's own
                    # histogram (request head to answer) is the other view.
                    r["server_p99_le_ms"] = histogram_quantile(text, "hookgate_ingest_duration_seconds", 0.99)
                    g.stop()
                    shutil.rmtree(d, ignore_errors=True)
                results[(name, conns)].append(r)
                print(f"  rep {rep + 1} c{conns} {name:8} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                      f"cpu {r['cpu_us_per_req']:.1f} µs/req  rss {r['rss_kb_end'] / 1024:.1f} MB  non2xx {r['non2xx']}"
                      + (f"  accepted {r['accepted']:.0f}  mean batch {r['batch_mean']:.1f}  server p99 ≤ {r['server_p99_le_ms']} ms"
                         if name == "hookgate" else ""), flush=True)
    return results, idle


def tls_phase(args, reqs):
    rows = {False: [], True: []}
    for rep in range(args.reps):
        for tls in (False, True):
            d = tempfile.mkdtemp(prefix="hookgate-bench-")
            g = gateway(d, tls=tls)
            g.start()
            time.sleep(1)
            r = wrk(g, 32, args.duration, reqs)
            g.stop()
            shutil.rmtree(d, ignore_errors=True)
            rows[tls].append(r)
            print(f"  rep {rep + 1} {'TLS  ' if tls else 'clear'} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                  f"p99 {r['p99_ms']:.2f} ms  cpu {r['cpu_us_per_req']:.1f} µs/req  rss {r['rss_kb_end'] / 1024:.1f} MB  "
                  f"non2xx {r['non2xx']}", flush=True)
    print("\n## HTTPS on the ingress (c32, median [min–max])\n")
    print("| hookgate | req/s | p50 / p99 ms | server CPU µs/req | RSS end of run |")
    print("|---|---|---|---|---|")
    for tls in (False, True):
        a = rows[tls]
        print(f"| {'server.tls (TLS 1.3)' if tls else 'in the clear'} | {fmt(a, 'rps')} | {med(a, 'p50_ms')[0]:.2f} / "
              f"{med(a, 'p99_ms')[0]:.2f} | {fmt(a, 'cpu_us_per_req', 1)} | {med(a, 'rss_kb_end')[0] / 1024:.1f} MB |")


def relay_phase(args, reqs, ceiling_bin):
    """A backlog of dead deliveries replayed at once to a target that answers 200 at once."""
    out = []
    for rep in range(args.reps):
        d = tempfile.mkdtemp(prefix="hookgate-relay-")
        sink_port = free_port()
        g = gateway(d, target_url=f"http://127.0.0.1:{sink_port}/webhook", max_attempts=1)
        g.start()
        # Ingest with the target down: every delivery fails once (connection refused) and is dead.
        wrk(g, 32, args.relay_fill, reqs)
        n = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            text = metrics(g.admin)
            n = metric(text, 'hookgate_dead_letters{target="sink"}')
            if n > 0 and metric(text, 'hookgate_outbox_pending{target="sink"}') == 0:
                break
            time.sleep(0.5)
        sink = Server("sink", [ceiling_bin, f"127.0.0.1:{sink_port}"], sink_port, "/webhook")
        sink.start()
        before = cpu_ticks(g.pid)
        t0 = time.time()
        req = urllib.request.Request(f"http://127.0.0.1:{g.admin}/admin/deliveries/replay?status=dead&target=sink",
                                     method="POST", headers={"Authorization": "Bearer bench"})
        urllib.request.urlopen(req, timeout=60).read()
        while True:
            text = metrics(g.admin)
            done = metric(text, 'hookgate_deliveries_total{outcome="delivered",target="sink"}')
            if done >= n or time.time() - t0 > 300:
                break
            time.sleep(0.05)
        secs = time.time() - t0
        ticks = cpu_ticks(g.pid) - before
        r = {"deliveries": done, "secs": secs, "per_sec": done / secs, "cpu_us_per_delivery": ticks / TICK * 1e6 / max(done, 1),
             "rss_kb": rss_kb(g.pid)}
        out.append(r)
        print(f"  rep {rep + 1} relay {done:,.0f} deliveries in {secs:.2f} s = {r['per_sec']:,.0f}/s  "
              f"cpu {r['cpu_us_per_delivery']:.1f} µs/delivery  rss {r['rss_kb'] / 1024:.1f} MB", flush=True)
        g.stop()
        sink.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def latency_phase(args, reqs, ceiling_bin):
    out = []
    for rep in range(args.reps):
        d = tempfile.mkdtemp(prefix="hookgate-lat-")
        sink_port = free_port()
        sink = Server("sink", [ceiling_bin, f"127.0.0.1:{sink_port}"], sink_port, "/webhook")
        sink.start()
        g = gateway(d, target_url=f"http://127.0.0.1:{sink_port}/webhook")
        g.start()
        r = wrk(g, 1, args.duration, reqs, extra_env={"DELAY_MS": "10"})
        time.sleep(1)
        text = metrics(g.admin)
        count = metric(text, 'hookgate_event_to_delivery_seconds_count{target="sink"}')

        def quantile(q):
            return histogram_quantile(text, "hookgate_event_to_delivery_seconds", q, 'target="sink"')
        res = {"rate": r["rps"], "delivered": count, "p50_le_ms": quantile(0.5), "p99_le_ms": quantile(0.99),
               "ingest_p50_ms": r["p50_ms"], "ingest_p99_ms": r["p99_ms"]}
        out.append(res)
        print(f"  rep {rep + 1} latency at {r['rps']:.0f} events/s: {count:.0f} delivered; event→delivery p50 ≤ {res['p50_le_ms']} ms, "
              f"p99 ≤ {res['p99_le_ms']} ms; ingest answer p50 {r['p50_ms']:.2f} ms", flush=True)
        g.stop()
        sink.stop()
        shutil.rmtree(d, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--relay-fill", type=int, default=3, help="seconds of c32 ingest that make the relay backlog")
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--binary", help="the hookgate binary to measure (default: the release build; implies --skip-build)")
    ap.add_argument("--phases", default="ingest,relay,latency", help="comma-separated subset of ingest,relay,latency,tls")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk")
    if args.binary:
        global BINARY
        BINARY, args.skip_build = os.path.abspath(args.binary), True
    if not args.skip_build:
        print("building (release)...", flush=True)
        build()
    tmp = tempfile.mkdtemp(prefix="hookgate-bench-reqs-")
    reqs = os.path.join(tmp, "reqs.tsv")
    sh([sys.executable, os.path.join(BENCH, "gen_unique.py"), str(args.requests), reqs, SECRET])
    ceiling_bin = os.path.join(ROOT, "target", "bench-ceiling", "release", "ceiling-verify")
    ceiling = Server("ceiling-verify", [ceiling_bin, "127.0.0.1:18182"], 18182, "/webhook", env={"WEBHOOK_SECRET": SECRET})
    ceiling.start()
    phases = set(args.phases.split(","))
    sink_bin = os.path.join(ROOT, "target", "bench-ceiling", "release", "ceiling")
    results = relay = lat = idle = None
    try:
        if "ingest" in phases:
            print(f"ingest: {args.reps} reps x (c32, c1) x {args.duration} s, interleaved", flush=True)
            results, idle = ingest_phase(args, reqs, ceiling)
        if "relay" in phases:
            print("relay:", flush=True)
            relay = relay_phase(args, reqs, sink_bin)
        if "latency" in phases:
            print("latency:", flush=True)
            lat = latency_phase(args, reqs, sink_bin)
        if "tls" in phases:
            print(f"tls: {args.reps} reps x (clear, TLS) x c32 x {args.duration} s, interleaved", flush=True)
            tls_phase(args, reqs)
    finally:
        ceiling.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, results, idle, relay, lat)


def report(args, results, idle, relay, lat):
    if results is None:
        return report_rest(relay, lat)

    print("\n## Ingest (median [min–max] of %d runs)\n" % args.reps)
    print("| server | c32 req/s | c32 p50 / p99 ms | c1 req/s | c1 p50 / p99 ms | server CPU µs/req (c32) | RSS end of c32 run |")
    print("|---|---|---|---|---|---|---|")
    for name, label in (("ceiling", "ceiling-verify (hyper + HMAC, stores nothing)"), ("hookgate", "hookgate (verify + parse + route + fsync'd SQLite)")):
        a, b = results[(name, 32)], results[(name, 1)]
        print(f"| {label} | {fmt(a, 'rps')} | {med(a, 'p50_ms')[0]:.2f} / {med(a, 'p99_ms')[0]:.2f} | {fmt(b, 'rps')} | "
              f"{med(b, 'p50_ms')[0]:.2f} / {med(b, 'p99_ms')[0]:.2f} | {fmt(a, 'cpu_us_per_req', 1)} | {med(a, 'rss_kb_end')[0] / 1024:.1f} MB |")
    r32 = med(results[("hookgate", 32)], "rps")[0] / med(results[("ceiling", 32)], "rps")[0]
    r1 = med(results[("hookgate", 1)], "rps")[0] / med(results[("ceiling", 1)], "rps")[0]
    print(f"\nhookgate / ceiling: c32 {r32:.2f}x, c1 {r1:.2f}x; idle RSS {statistics.median(idle) / 1024:.1f} MB; "
          f"RSS after c32 run {statistics.median([r['rss_kb_after'] for r in results[('hookgate', 32)]]) / 1024:.1f} MB; "
          f"mean group-commit batch at c32 {statistics.median([r['batch_mean'] for r in results[('hookgate', 32)]]):.1f}; "
          f"server-side p99 at c32 ≤ {statistics.median([r['server_p99_le_ms'] for r in results[('hookgate', 32)]])} ms, "
          f"at c1 ≤ {statistics.median([r['server_p99_le_ms'] for r in results[('hookgate', 1)]])} ms")
    report_rest(relay, lat)


def report_rest(relay, lat):
    if relay:
        print(f"\n## Relay\n\n{fmt(relay, 'per_sec')} deliveries/s from a backlog of {relay[0]['deliveries']:,.0f}, "
              f"{fmt(relay, 'cpu_us_per_delivery', 1)} µs CPU per delivery")
    if lat:
        print(f"\n## Latency at ~100 events/s\n\nevent→delivery p50 ≤ {statistics.median([l['p50_le_ms'] for l in lat])} ms, "
              f"p99 ≤ {statistics.median([l['p99_le_ms'] for l in lat])} ms (histogram bucket bounds)")


if __name__ == "__main__":
    main()
