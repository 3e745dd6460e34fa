#!/usr/bin/env python3
"""Cold start: from a request arriving to the loader's first outbound call, per host.

A benchmark, not a test: it prints a table and asserts nothing about time. Run it with the e2e
venv's python (``cargo xtask bench`` does):

    target/e2e-venv/bin/python bench/cold_start.py [--runs 10] [--warm 5] [--harness-bin PATH]

Hosts, all handed the same Cloud Functions (gen1) event for a fixture usage log:
  (a) deploy/serve.sh with the .wasm   -- the container's command line; Cranelift compiles at start
  (b) deploy/serve.sh with the .cwasm  -- what the image runs (precompiled by `serve.sh --compile`)
  (c) the host-test harness, component pre-instantiated (ProxyPre built), per request
      (host-test/src/bin/cold_start.rs, given with --harness-bin)
  (d) the seed's Python Cloud Function (bench/seed/main.py) under functions-framework
      --signature-type event, unchanged; the environment points google-cloud-bigquery at the fake
      (BIGQUERY_EMULATOR_HOST) and google-auth at a fake metadata server (GCE_METADATA_HOST/_IP),
      i.e. Compute Engine credentials as on Cloud Functions.

One fake Google (stdlib http.server, in this process) plays the metadata server and BigQuery; it
timestamps every request when its headers have arrived, with the same monotonic clock the driver
uses to stamp the moment it starts sending the event. "First outbound call" is the first request
the fake receives after that moment: the metadata token request for (a)-(d) on a cold instance.
The seed makes two metadata calls at import time (GCE detection, project id): those happen before
it listens and count in "start -> listening", not in the request figures.

Cold samples: each starts the server process afresh (no compilation cache: serve.sh runs
`-C cache=n`), waits until its port accepts a TCP connection (Cloud Run's default startup probe),
sends one event, then --warm more events to the same process. The hosts are interleaved run by run,
so that a change of machine load hits all of them alike. Reported: medians over --runs.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

import stack as stack_mod  # noqa: E402  (e2e/stack.py: serve.sh, precompile, spawn, free_port)
from capture import done_job  # noqa: E402

BENCH = REPO / "bench"
SEED = BENCH / "seed" / "main.py"
REQUIREMENTS = BENCH / "requirements.txt"
BENCH_SITE = REPO / "target" / "bench-site"
EVENT = REPO / "fixtures" / "events" / "legacy-background.json"
PROJECT, DATASET, TABLE, BUCKET = "demo-project", "storageanalysis", "usage", "demo-gcr-logs"
START_TIMEOUT = 180.0

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the fake Google: metadata server + BigQuery, stamping arrivals


class FakeGoogle:
    """Metadata server and BigQuery jobs/tables API on one loopback port."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[int, str, str]] = []  # (monotonic ns, method, path)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-google", daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> FakeGoogle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()

    def after(self, t_ns: int) -> list[tuple[int, str, str]]:
        with self.lock:
            return [a for a in self.arrivals if a[0] >= t_ns]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle + the client's
            # delayed ACK would add ~40 ms to every answer and penalise chatty clients.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _answer(self, status: int, body: bytes | Json, content_type: str = "application/json",
                        metadata: bool = False) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                if metadata:
                    self.send_header("Metadata-Flavor", "Google")
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self) -> None:
                arrived = time.monotonic_ns()  # request line and headers are in
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    fake.arrivals.append((arrived, self.command, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if path in ("", "/"):  # google-auth's GCE detection ping
                    return self._answer(200, b"", "text/plain", metadata=True)
                if path.startswith("/computeMetadata/v1/"):
                    return self._metadata(path.removeprefix("/computeMetadata/v1/"))
                return self._bigquery(path, body)

            def _metadata(self, key: str) -> None:
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._answer(403, b"Missing Metadata-Flavor:Google header.", "text/html", metadata=True)
                texts = {"project/project-id": PROJECT, "project/numeric-project-id": "123456789012",
                         "universe/universe-domain": "googleapis.com"}
                if key in texts:
                    return self._answer(200, texts[key].encode(), "application/text", metadata=True)
                if key.endswith("service-accounts/default/token"):
                    return self._answer(200, {"access_token": "ya29.fake", "expires_in": 3599,
                                              "token_type": "Bearer"}, metadata=True)
                if key.rstrip("/").endswith("service-accounts/default"):
                    return self._answer(200, {"email": f"loader@{PROJECT}.iam.gserviceaccount.com",
                                              "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                                              "aliases": ["default"]}, metadata=True)
                return self._answer(404, b"not found", "text/html", metadata=True)

            def _bigquery(self, path: str, body: bytes) -> None:
                prefix = f"/bigquery/v2/projects/{PROJECT}/"
                if self.command == "POST" and path == prefix + "jobs":
                    return self._answer(200, done_job(PROJECT, json.loads(body or b"{}"), 14))
                if self.command == "GET" and path.startswith(prefix + "jobs/"):
                    job_id = path.rsplit("/", 1)[1]
                    return self._answer(200, done_job(PROJECT, {"jobReference": {"jobId": job_id}}, 14))
                if self.command == "GET" and path == prefix + f"datasets/{DATASET}/tables/{TABLE}":
                    return self._answer(200, {"kind": "bigquery#table", "id": f"{PROJECT}:{DATASET}.{TABLE}",
                                              "tableReference": {"projectId": PROJECT, "datasetId": DATASET,
                                                                 "tableId": TABLE},
                                              "numRows": "14", "type": "TABLE", "schema": {"fields": []}})
                return self._answer(404, {"error": {"code": 404, "message": f"Not found: {path}",
                                                    "status": "NOT_FOUND"}})

            do_GET = do_POST = do_PUT = _handle

        return Handler


# ---------------------------------------------------------------------------------------------
# the hosts


@dataclass
class Host:
    key: str
    label: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]]
    check: Callable[[int, bytes], None]


def component_ok(status: int, body: bytes) -> None:
    answer = json.loads(body)
    if status != 200 or answer.get("outcome") != "loaded":
        raise RuntimeError(f"component answered {status} {answer}")


def seed_ok(status: int, body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"functions-framework answered {status} {body[:300]!r}")


def component_host(key: str, label: str, component: Path, fake: FakeGoogle) -> Host:
    config = {
        "GCR_USAGE_PROJECT": PROJECT, "GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_LOCATION": "US",
        "GCR_USAGE_AUTH": "metadata", "GCE_METADATA_HOST": fake.host, "GCR_USAGE_WAIT_SECONDS": "30",
        "GCR_USAGE_BIGQUERY_ENDPOINT": fake.url,
    }
    return Host(key, label, lambda port: [str(stack_mod.SERVE_SH), str(component)],
                lambda port: stack_mod.serve_env(port, config), component_ok)


def seed_host(fake: FakeGoogle, home: Path) -> Host:
    def env(port: int) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home), "CLOUDSDK_CONFIG": str(home / "gcloud"),  # no developer credentials
            "PYTHONPATH": str(BENCH_SITE), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "BIGQUERY_EMULATOR_HOST": fake.url,
            "GCE_METADATA_HOST": fake.host, "GCE_METADATA_IP": fake.host,
            "GCP_PROJECT": PROJECT,  # what the python37 runtime set
        }

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "functions_framework", "--target", "loader", "--source", str(SEED),
                "--signature-type", "event", "--host", "127.0.0.1", "--port", str(port)]

    return Host("d", "seed: functions-framework + google-cloud-bigquery", argv, env, seed_ok)


# ---------------------------------------------------------------------------------------------
# one cold sample


@dataclass
class Sample:
    ready_ms: float
    first_ms: float  # request sent -> first outbound call
    response_ms: float  # request sent -> response read
    start_to_first_ms: float  # process start -> first outbound call after the request
    warm_ms: list[float] = field(default_factory=list)


def post(port: int, body: bytes) -> tuple[int, int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        sent = time.monotonic_ns()
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return sent, response.status, response.read()
    finally:
        conn.close()


def wait_listening(child: stack_mod.Child, port: int) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.monotonic_ns()
        except OSError:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}\n{child.tail()}") from None
            time.sleep(0.002)
    raise TimeoutError(f"{child.name} not listening after {START_TIMEOUT:.0f}s\n{child.tail()}")


def first_outbound(fake: FakeGoogle, sent: int, child: stack_mod.Child) -> int:
    arrivals = fake.after(sent)
    if not any(method == "POST" and path.endswith("/jobs") for _, method, path in arrivals):
        raise RuntimeError(f"{child.name}: no jobs.insert after the event: {arrivals}\n{child.tail()}")
    return arrivals[0][0]


def cold_sample(host: Host, fake: FakeGoogle, event: bytes, warm: int, logdir: Path) -> Sample:
    fake.reset()
    port = stack_mod.free_port()
    ms = 1e-6
    started = time.monotonic_ns()
    child = stack_mod.spawn(f"host-{host.key}", host.argv(port), logdir, host.env(port))
    try:
        ready = wait_listening(child, port)
        sent, status, body = post(port, event)
        done = time.monotonic_ns()
        host.check(status, body)
        first = first_outbound(fake, sent, child)
        sample = Sample((ready - started) * ms, (first - sent) * ms, (done - sent) * ms, (first - started) * ms)
        for _ in range(warm):
            sent, status, body = post(port, event)
            host.check(status, body)
            sample.warm_ms.append((first_outbound(fake, sent, child) - sent) * ms)
        return sample
    finally:
        child.stop()


# ---------------------------------------------------------------------------------------------
# setup


def ensure_functions_framework() -> None:
    """bench/requirements.txt into target/bench-site (pip --target, --no-deps), once per pin set."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()
    marker = BENCH_SITE / ".requirements.sha256"
    if marker.is_file() and marker.read_text().strip() == want:
        return
    shutil.rmtree(BENCH_SITE, ignore_errors=True)
    print(f"installing functions-framework into {BENCH_SITE}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(BENCH_SITE), "-r", str(REQUIREMENTS)], check=True)
    marker.write_text(want + "\n")


def run_harness(binary: Path, runs: int, warm: int) -> Json:
    env = dict(os.environ, GCR_USAGE_WASM=str(stack_mod.wasm_path()))
    done = subprocess.run([str(binary), "--runs", str(runs), "--warm", str(warm)], env=env, capture_output=True,
                          text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# report


def fmt(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    r = value / base
    return f"x{r:.2f}" if r >= 0.1 else f"1/{1 / r:.0f}"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(rows: dict[str, dict[str, float | None]], labels: dict[str, str], meta: Json) -> str:
    base = rows.get("d", {})
    cols = [("ready", "start->listening"), ("first", "request->1st out"), ("response", "request->response"),
            ("start_first", "start->1st out"), ("warm", "warm req->1st out")]
    width = 19
    head = f"{'':<4}{'host':<48}" + "".join(f"{title:>{width}}" for _, title in cols)
    lines = [head, "-" * len(head)]
    for key in ("a", "b", "c", "d"):
        if key not in rows:
            continue
        row = rows[key]
        lines.append(f"({key}) {labels[key]:<48}" + "".join(f"{fmt(row[c]):>{width}}" for c, _ in cols))
        if key != "d":
            lines.append(f"{'':<52}" + "".join(f"{ratio(row[c], base.get(c)):>{width}}" for c, _ in cols))
    lines.append("")
    lines.append("medians over the runs; the line under each host is its ratio to (d), the seed (1/30 = 30 times")
    lines.append("less time). 'start->1st out' = process start to the first outbound call of the first request.")
    lines.append(meta["note"])
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="cold starts per host (default 10)")
    parser.add_argument("--warm", type=int, default=5, help="warm requests after each cold one (default 5)")
    parser.add_argument("--harness-bin", type=Path, default=os.environ.get("GCR_USAGE_COLD_START_BIN"),
                        help="host-test's cold_start binary, for (c)")
    parser.add_argument("--json", type=Path, default=REPO / "target" / "bench" / "cold_start.json",
                        help="where to write every sample")
    args = parser.parse_args()

    reason = stack_mod.loader_unavailable_reason()
    if reason:
        print(f"cold_start: {reason}", file=sys.stderr)
        return 1
    ensure_functions_framework()
    wasm = stack_mod.wasm_path()
    cwasm = stack_mod.precompiled(wasm)
    event = EVENT.read_bytes()
    load_before = os.getloadavg()
    logdir = Path(tempfile.mkdtemp(prefix="gcr-usage-cold-start-"))
    samples: dict[str, list[Sample]] = {"a": [], "b": [], "d": []}
    harness: Json | None = None
    try:
        with FakeGoogle() as fake:
            hosts = [
                component_host("a", "wasmtime serve (deploy/serve.sh), .wasm", wasm, fake),
                component_host("b", "wasmtime serve (deploy/serve.sh), .cwasm", cwasm, fake),
                seed_host(fake, logdir / "home"),
            ]
            (logdir / "home").mkdir()
            # One throw-away start each: page cache and Python bytecode of the installed packages.
            for host in hosts:
                cold_sample(host, fake, event, 0, logdir)
            for run in range(args.runs):
                for host in hosts:
                    samples[host.key].append(cold_sample(host, fake, event, args.warm, logdir))
                print(f"  run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
        if args.harness_bin:
            harness = run_harness(args.harness_bin, args.runs, args.warm)
    except BaseException:
        print(f"logs kept in {logdir}", file=sys.stderr)
        raise
    shutil.rmtree(logdir, ignore_errors=True)
    load_after = os.getloadavg()

    rows: dict[str, dict[str, float | None]] = {}
    for key, values in samples.items():
        rows[key] = {
            "ready": median([s.ready_ms for s in values]),
            "first": median([s.first_ms for s in values]),
            "response": median([s.response_ms for s in values]),
            "start_first": median([s.start_to_first_ms for s in values]),
            "warm": median([w for s in values for w in s.warm_ms]),
        }
    labels = {"a": "wasmtime serve (deploy/serve.sh), .wasm", "b": "wasmtime serve (deploy/serve.sh), .cwasm",
              "c": "harness, ProxyPre ready (instantiate + handle)", "d": "seed (Python) under functions-framework"}
    if harness:
        us = 1e-3
        rows["c"] = {
            "ready": harness["prepare_us"] * us,
            "first": median([v * us for v in harness["first_us"]]),
            "response": median([v * us for i, v in enumerate(harness["total_us"]) if i % (args.warm + 1) == 0]),
            "start_first": None,
            "warm": median([v * us for v in harness["warm_us"]]),
        }
    wasmtime_version = subprocess.run([str(stack_mod.wasmtime_path()), "--version"], capture_output=True,
                                      text=True).stdout.strip()
    meta = {
        "runs": args.runs, "warm": args.warm, "cpus": os.cpu_count(), "machine": platform.machine(),
        "loadavg_before": load_before, "loadavg_after": load_after, "wasmtime": wasmtime_version,
        "python": platform.python_version(), "wasm": str(wasm), "wasm_bytes": wasm.stat().st_size,
        "cwasm_bytes": cwasm.stat().st_size,
        "note": ("(c) 'start -> listening' is the harness's one-time prepare (compile or cached artifact, link, "
                 "ProxyPre, one GET /healthz); its samples include fuel metering and a ~"
                 f"{harness['check_us']:.0f} µs paused-clock check." if harness else "(c) not run (no --harness-bin)."),
    }
    print()
    print(f"Cold start: request -> first outbound call ({args.runs} fresh processes per host, "
          f"{args.warm} warm requests after each)")
    print(f"  machine  {os.cpu_count()} CPUs ({platform.machine()}), load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (shared machine: other work runs beside this)")
    print(f"  hosts    {wasmtime_version}; Python {platform.python_version()}; component {wasm.stat().st_size} B "
          f".wasm, {cwasm.stat().st_size} B .cwasm")
    print("  upstream one fake metadata server + BigQuery on loopback "
          "(1st out = a metadata-server call: the token, or google-auth's account info)")
    print()
    print(report(rows, labels, meta))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "medians": rows, "samples": {k: [s.__dict__ for s in v]
                                                                              for k, v in samples.items()},
                                     "harness": harness}, indent=1) + "\n")
    print(f"\nevery sample: {args.json}")
    return 0


if __name__ == "__main__":
    stack_mod.stop_on_sigterm()
    sys.exit(main())
