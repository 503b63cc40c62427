#!/usr/bin/env python3
"""Regenerates scripts/symbol-order.txt: the functions `hookgate serve` runs, for the linker to
place side by side at the front of the code (see build.rs).

Why: the kernel maps a binary's code in 64 KiB windows around each page it runs, so code run at
start and per request, spread over the whole 10 MB of text, keeps most of it resident. Placed
together, the same code keeps a quarter of that.

How: a release build runs under valgrind's callgrind (which records every function executed)
through a typical life on the shipped routes.toml (plus an HTTP target): start, Databricks and
MLflow events accepted, a duplicate, refusals, deliveries to the log target and the HTTP one, a
metrics scrape, a graceful stop. The names it ran, as
the linker knows them, are written out sorted (their order within the group matters little, and
a sorted list changes only where the code did).

    apt-get install valgrind binutils        # callgrind, and nm for the binary's symbol names
    cargo build --release && python3 scripts/symbol-order.py

Run it again after a dependency or compiler upgrade, and after changes to the code a request
runs: the names carry hashes of their generic arguments, so such a change renames functions (one
small change to the connection loop renamed enough of them to keep 1 MB more code resident). A
stale list costs resident memory, nothing else: the linker skips names it does not find.
`python3 scripts/symbol-order.py --check` runs the same workload and reports the functions it ran
that the list lacks, without writing it.
"""
import argparse, base64, hashlib, hmac, http.server, json, os, re, shutil, signal, socket, subprocess, sys
import tempfile, threading, time, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "order-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sink(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def databricks(i):
    body = json.dumps({
        "event": "MODEL_VERSION_TRANSITIONED_STAGE", "webhook_id": "c5596721253c4b429368cf6f4341b88a",
        "event_timestamp": int(time.time() * 1000) + i, "model_name": "Airline_Delay_SparkML",
        "version": str(i), "to_stage": "Production", "from_stage": "None",
        "text": "Registered model 'Airline_Delay_SparkML' version 8 transitioned from None to Production.",
    }, separators=(",", ":")).encode()
    return body, {"X-Databricks-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def mlflow(i):
    body = json.dumps({
        "entity": "model_version_alias", "action": "created", "timestamp": "2026-11-25T14:32:45.203614+00:00",
        "data": {"name": "fraud-detector", "version": str(i), "alias": "champion"},
    }).encode()
    delivery, ts = str(uuid.uuid4()), str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"{delivery}.{ts}.".encode() + body, hashlib.sha256).digest()
    return body, {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": ts,
                  "X-MLflow-Signature": "v1," + base64.b64encode(mac).decode()}


def wait_port(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the gateway exited early (status {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"nothing listening on {port}")


def executed(callgrind_out):
    """Function names callgrind recorded, without its recursion suffixes."""
    seen, names = set(), []
    for line in open(callgrind_out, errors="replace"):
        m = re.match(r"^c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
        if m:
            name = re.sub(r"'\d+$", "", m.group(1))
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def text_symbols(binary):
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    return {p[2] for p in (l.split() for l in out.splitlines()) if len(p) == 3 and p[1] in "tTwW"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "hookgate"))
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "symbol-order.txt"))
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--check", action="store_true",
                    help="run the workload and report the functions it ran that the list lacks, without writing it "
                         "(exit 1 if more than a few)")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is required: apt-get install valgrind")

    tmp = tempfile.mkdtemp(prefix="hookgate-order-")
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    port, admin = free_port(), free_port()
    # The shipped routes.toml (so its routes, globs and templates are among what runs), with an
    # HTTP target added so the outbound path is too.
    cfg = os.path.join(tmp, "routes.toml")
    with open(os.path.join(ROOT, "routes.toml")) as shipped, open(cfg, "w") as f:
        f.write(shipped.read())
        f.write(f"""
[targets.order-sink]
kind = "http"
url = "http://127.0.0.1:{sink.server_address[1]}/hook"

[[routes]]
name = "production models to the sink"
events = ["MODEL_VERSION_TRANSITIONED_STAGE", "model_version_alias.created"]
models = ["Airline_*", "fraud-*"]
to = ["order-sink"]
""")
    env = dict(os.environ, HOOKGATE_LOG="warn", DATABRICKS_WEBHOOK_SECRET=SECRET, MLFLOW_WEBHOOK_SECRET=SECRET,
               HOOKGATE_SERVER__LISTEN=f"127.0.0.1:{port}", HOOKGATE_SERVER__ADMIN_LISTEN=f"127.0.0.1:{admin}",
               HOOKGATE_STORE__URL=f"sqlite://{tmp}/hookgate.db", HOOKGATE_ADMIN__TOKEN="order")
    out = os.path.join(tmp, "callgrind.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
                             args.binary, "serve", "--config", cfg],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "valgrind.log"), "w"),
                            env=env)
    try:
        wait_port(port, proc)
        base = f"http://127.0.0.1:{port}"
        statuses = []
        first = databricks(0)
        for i in range(args.events):
            statuses.append(post(base + "/hooks/databricks", *(first if i == 0 else databricks(i))))
            statuses.append(post(base + "/hooks/mlflow", *mlflow(i)))
        body, headers = first
        statuses.append(post(base + "/hooks/databricks", body, headers))  # a duplicate
        statuses.append(post(base + "/hooks/databricks", body, {"X-Databricks-Signature": "00" * 32}))
        statuses.append(post(base + "/hooks/unknown", body, headers))
        expected = 2 * args.events + 1  # the duplicate is answered 200 too
        if statuses.count(200) != expected:
            sys.exit(f"expected {expected} answers of 200, got {statuses}")
        deadline = time.time() + 120
        while Sink.received < 2 * args.events and time.time() < deadline:
            time.sleep(0.5)
        for path in ("/metrics", "/readyz", "/healthz"):
            urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=60).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
    names = executed(out)
    present = text_symbols(args.binary)
    order = sorted(n for n in names if n in present)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.check:
        with open(args.out) as f:
            listed = {l.strip() for l in f}
        unlisted = [n for n in order if n not in listed]
        print(f"{len(order) - len(unlisted)} of the {len(order)} functions this run executed are listed in "
              f"{os.path.relpath(args.out, ROOT)}; {len(unlisted)} are not")
        # A few differ from run to run (background tasks that did or did not run meanwhile).
        sys.exit(1 if len(unlisted) > 5 else 0)
    with open(args.out, "w") as f:
        f.write("".join(n + "\n" for n in order))
    print(f"{len(order)} of {len(names)} executed functions written to {os.path.relpath(args.out, ROOT)} "
          f"({Sink.received} deliveries seen by the sink)")


if __name__ == "__main__":
    main()
