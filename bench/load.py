#!/usr/bin/env python3
"""Load: `wasmtime serve` (deploy/serve.sh, .cwasm) under concurrent deliveries.

A benchmark, not a test: it prints a table and asserts nothing about time. Run it with the e2e
venv's python (``cargo xtask bench`` does, after the cold-start benchmark):

    target/e2e-venv/bin/python bench/load.py [--events 4000] [--concurrency 16,32,64] [--rounds 3]
                                             [--warmup 200] [--fake asyncio|threading]

--rounds rounds, each running every level once (the one-at-a-time baseline first, then each
--concurrency level), so that the machine's other work hits all levels alike. Per run:
  - a fresh `deploy/serve.sh` process on the precompiled component (stack.py's ``precompiled``:
    `serve.sh --compile`, as the image build does), started exactly as the container starts it:
    serve.sh's defaults, i.e. instance reuse on (--max-instance-reuse-count 1000,
    --idle-instance-timeout 120s); raw mode (GCR_USAGE_MODE unset); GCR_USAGE_AUTH=metadata with
    GCE_METADATA_HOST, GCR_USAGE_BIGQUERY_ENDPOINT, GCR_USAGE_BUCKETS and GCR_USAGE_PROJECT set;
  - --warmup events at the run's concurrency (not timed: instances get made and fetch their
    token), then --events timed events, each naming a distinct usage-log object (its own name
    and generation, so each one is a fresh load), alternately as a Pub/Sub push (JSON_API_V1) and
    as a binary-mode CloudEvent (Eventarc);
  - C workers (C = 1, then each level), each with one keep-alive HTTP/1.1 connection, each
    sending its next event as soon as its previous answer is read (a closed loop: at most C in
    flight; a bounded number of events).

The fake Google is a separate process (this file with --serve-fake), so it does not share the
driver's interpreter lock: the metadata server (token, project id) and BigQuery jobs.insert
(a DONE job resource echoing the jobReference, statistics.load.outputRows) and jobs.get. The
default is a minimal asyncio HTTP/1.1 server; ``--fake threading`` uses stdlib
ThreadingHTTPServer instead (a thread per connection), to see whether the fake is the
bottleneck. The fake counts what it received; every instance caches its access token, so the
token requests it counts are the instances wasmtime made that served an event ("instances
(token fetches)").

Reported per level, over the rounds (and per round where it varies): throughput (timed events /
their wall time), p50 / p99 / max latency (request written -> whole answer read, at the driver),
errors by kind (non-2xx status with its `error`, an answer other than `loaded`, connection
errors), wasmtime's peak RSS (VmHWM; VmRSS polled every 20 ms), instances, the CPU time of
wasmtime, the fake and the driver per event and as a share of the machine, and ratios against
the one-at-a-time baseline of the same invocation. The machine's load average before and after
and its CPU count are printed too. Every figure goes to target/bench/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

import events as events_mod  # noqa: E402  (e2e/events.py: the fixture event shapes)
import stack as stack_mod  # noqa: E402  (e2e/stack.py: serve.sh, precompiled, spawn, free_port)

PROJECT, DATASET, BUCKET = "demo-project", "storageanalysis", "demo-gcr-logs"
OUTPUT_ROWS = 14  # statistics.load.outputRows of every job
TOKEN_PATH = "service-accounts/default/token"
PROJECT_ID_PATH = "project/project-id"
STATS_PATH, RESET_PATH = "/_bench/stats", "/_bench/reset"
REQUEST_TIMEOUT = 60.0  # per request at the driver (the loader's own budget is 30 s)
RSS_POLL_S = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")
SHAPES = ("pubsub-push", "cloudevent-binary")  # alternated, event by event

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the fake Google (its own process): routing shared by the two front-ends


class FakeState:
    """What the fake answers, and the count of what it received (by kind)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.token = json.dumps({"access_token": "ya29.fake", "expires_in": 3599,
                                 "token_type": "Bearer"}).encode()
        self.jobs_prefix = f"/bigquery/v2/projects/{PROJECT}/jobs"

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, bool]:
        """(status, JSON or text body, metadata flavour) for one request."""
        path = target.split("?", 1)[0]
        if path == STATS_PATH:
            with self.lock:
                return 200, json.dumps(dict(self.counts)).encode(), False
        if path == RESET_PATH:
            with self.lock:
                self.counts.clear()
            return 200, b"{}", False
        if path.startswith("/computeMetadata/v1/"):
            key = path.removeprefix("/computeMetadata/v1/")
            if headers.get("metadata-flavor") != "Google":
                self.count("metadata without flavor")
                return 403, b"Missing Metadata-Flavor:Google header.", True
            if key.endswith(TOKEN_PATH):
                self.count("token")
                return 200, self.token, True
            if key == PROJECT_ID_PATH:
                self.count("project id")
                return 200, PROJECT.encode(), True
            self.count(f"metadata {key}")
            return 404, b"not found", True
        if method == "POST" and path == self.jobs_prefix:
            self.count("jobs.insert")
            request = json.loads(body or b"{}")
            return 200, json.dumps(done_job(request.get("jobReference") or {},
                                            request.get("configuration"))).encode(), False
        if method == "GET" and path.startswith(self.jobs_prefix + "/"):
            self.count("jobs.get")
            return 200, json.dumps(done_job({"jobId": path.rsplit("/", 1)[1]}, None)).encode(), False
        self.count(f"{method} {path}")
        return 404, json.dumps({"error": {"code": 404, "message": f"Not found: {path}",
                                          "status": "NOT_FOUND"}}).encode(), False


def done_job(reference: Json, configuration: Json | None) -> Json:
    """A finished load job (e2e/capture.py's ``done_job``, without copying the whole request)."""
    reference = dict(reference)
    reference.setdefault("projectId", PROJECT)
    reference.setdefault("location", "US")
    now = str(int(time.time() * 1000))
    load = (configuration or {}).get("load") or {}
    return {
        "kind": "bigquery#job",
        "id": f"{PROJECT}:{reference['location']}.{reference.get('jobId', '')}",
        "jobReference": reference,
        "configuration": {"jobType": "LOAD", "load": {"destinationTable": load.get("destinationTable")}},
        "status": {"state": "DONE"},
        "statistics": {"creationTime": now, "startTime": now, "endTime": now,
                       "load": {"inputFiles": "1", "inputFileBytes": "8646", "outputRows": str(OUTPUT_ROWS),
                                "outputBytes": "1904", "badRecords": "0"}},
    }


REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 400: "Bad Request"}


def response_bytes(status: int, body: bytes, metadata: bool, close: bool) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            "Content-Type: application/json" if body[:1] in (b"{", b"[") else "Content-Type: text/plain",
            f"Content-Length: {len(body)}"]
    if metadata:
        head.append("Metadata-Flavor: Google")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class FakeProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 server side: keep-alive, Content-Length or chunked request bodies."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state.count("connections")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            request = self._take_request()
            if request is None:
                return
            method, target, headers, body, close = request
            status, answer, metadata = self.state.route(method, target, headers, body)
            self.transport.write(response_bytes(status, answer, metadata, close))
            if close:
                self.transport.close()

    def _take_request(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, consumed = bytearray(), start
            while True:
                eol = self.buffer.find(b"\r\n", consumed)
                if eol < 0:
                    return None
                size = int(bytes(self.buffer[consumed:eol]).split(b";")[0], 16)
                if size == 0:
                    trailer_end = self.buffer.find(b"\r\n\r\n", eol)
                    if trailer_end < 0 and self.buffer[eol:eol + 4] != b"\r\n\r\n":
                        return None
                    consumed = (trailer_end if trailer_end >= 0 else eol) + 4
                    break
                if len(self.buffer) < eol + 2 + size + 2:
                    return None
                body += self.buffer[eol + 2:eol + 2 + size]
                consumed = eol + 2 + size + 2
            del self.buffer[:consumed]
            body_bytes = bytes(body)
        else:
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < start + length:
                return None
            body_bytes = bytes(self.buffer[start:start + length])
            del self.buffer[:start + length]
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        return method, target, headers, body_bytes, close


def serve_fake_asyncio(port: int, state: FakeState) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FakeProtocol(state), "127.0.0.1", port, backlog=1024,
                                          reuse_address=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_fake_threading(port: int, state: FakeState) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            state.count("connections")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, metadata = state.route(self.command, self.path, headers, body)
            # One write: status line, headers and body together (as the asyncio fake does).
            close = headers.get("connection", "").lower() == "close"
            self.wfile.write(response_bytes(status, answer, metadata, close))
            if close:
                self.close_connection = True

        do_GET = do_POST = do_PUT = _handle

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    Server(("127.0.0.1", port), Handler).serve_forever()


def serve_fake(kind: str, port: int) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = FakeState()
    print(f"fake Google ({kind}) on 127.0.0.1:{port}", flush=True)
    (serve_fake_asyncio if kind == "asyncio" else serve_fake_threading)(port, state)
    return 0


# ---------------------------------------------------------------------------------------------
# the driver: events, an asyncio keep-alive client, /proc sampling


def object_resource(run: int, index: int) -> Json:
    """A distinct usage-log object: its own name (hour, id) and generation."""
    day, hour = 1 + index // 24 % 28, index % 24
    object_id = f"{run:02x}{index:08x}"  # lower-case hex, as Cloud Storage's ids are
    name = f"accessLog_usage_2024_03_{day:02d}_{hour:02d}_00_00_{object_id}_v0"
    generation = str(1710000000000000 + run * 10_000_000 + index)
    media = f"https://storage.googleapis.com/download/storage/v1/b/{BUCKET}/o/{name}?generation={generation}&alt=media"
    return {
        "kind": "storage#object", "id": f"{BUCKET}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{BUCKET}/o/{name}", "mediaLink": media,
        "name": name, "bucket": BUCKET, "generation": generation, "metageneration": "1",
        "contentType": "application/octet-stream", "storageClass": "STANDARD", "size": "8646",
        "md5Hash": "kDs/E1odRf+5LnoQ/B5wgQ==", "crc32c": "1GdYQQ==", "etag": "CM7iC711D8EAE=",
        "timeCreated": "2024-03-11T15:15:35.482Z", "updated": "2024-03-11T15:15:35.482Z",
        "timeStorageClassUpdated": "2024-03-11T15:15:35.482Z",
    }


def http_request(port: int, run: int, index: int) -> bytes:
    """The bytes of one POST: a Pub/Sub push or a binary-mode CloudEvent, alternately."""
    shape = SHAPES[index % len(SHAPES)]
    event = events_mod.make_event(shape, object_resource(run, index), event_id=f"{run}{index:012d}")
    request = events_mod.to_request(shape, event)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers.pop("content-length", None)
    lines = ["POST / HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(request.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + request.body


class HttpError(Exception):
    """A connection-level failure, named by its kind."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += await reader.readexactly(size + 2)
            del body[-2:]
        return status, headers, bytes(body)
    length = int(headers.get("content-length") or 0)
    return status, headers, await reader.readexactly(length) if length else b""


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0  # transient failures the loader retried past (answers' retries.count)
    connections: int = 0  # connections the driver opened (C, unless the server closed some)
    wall_s: float = 0.0


def classify(status: int, body: bytes, phase: Phase) -> None:
    """Count the answer: `loaded` with the job's rows is the one good answer."""
    try:
        answer = json.loads(body)
    except ValueError:
        phase.errors[f"HTTP {status}, not JSON"] += 1
        return
    outcome = answer.get("outcome") or answer.get("error") or "?"
    phase.outcomes[f"{status} {outcome}"] += 1
    retries = answer.get("retries") or {}
    phase.retries += int(retries.get("count", 0))
    if not 200 <= status < 300:
        phase.errors[f"HTTP {status} {outcome}"] += 1
    elif outcome != "loaded" or answer.get("rows") != OUTPUT_ROWS:
        phase.errors[f"HTTP {status} {outcome} (rows {answer.get('rows')})"] += 1


async def drive(port: int, requests: list[bytes], concurrency: int) -> Phase:
    """``concurrency`` workers, one keep-alive connection each, until ``requests`` are all sent."""
    phase = Phase()
    pending = iter(requests)

    async def worker() -> None:
        reader = writer = None
        for request in pending:  # one shared iterator: a bounded number of events in all
            sent = time.perf_counter_ns()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    phase.connections += 1
                    sent = time.perf_counter_ns()
                writer.write(request)
                status, headers, body = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT)
                phase.latencies_ms.append((time.perf_counter_ns() - sent) * 1e-6)
                classify(status, body, phase)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                    ValueError, IndexError) as err:
                kind = {asyncio.IncompleteReadError: "connection closed mid-answer",
                        asyncio.TimeoutError: f"no answer within {REQUEST_TIMEOUT:.0f} s"}.get(type(err))
                phase.errors[kind or f"connection error: {type(err).__name__} {err}"[:120]] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.wall_s = time.perf_counter() - started
    return phase


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def proc_status_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                values[name] = int(value.split()[0])
    return values


class RssPoller:
    """VmRSS of a process every RSS_POLL_S, on a thread: peak and last value."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib, self.last_kib = pid, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rss-poller", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                rss = proc_status_kib(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.last_kib, self.peak_kib = rss, max(self.peak_kib, rss)
            self.stop.wait(RSS_POLL_S)

    def __enter__(self) -> RssPoller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def fake_get(port: int, path: str) -> Json:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def wait_port(port: int, child: stack_mod.Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited\n{child.tail()}") from None
            time.sleep(0.01)
    raise TimeoutError(f"{child.name} not listening\n{child.tail()}")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


# ---------------------------------------------------------------------------------------------
# one run: a fresh serve.sh process, warm-up, the timed events


def one_run(run: int, concurrency: int, events: int, warmup: int, cwasm: Path, fake_port: int,
            fake_pid: int, logdir: Path) -> Json:
    port = stack_mod.free_port()
    config = {"GCR_USAGE_PROJECT": PROJECT, "GCR_USAGE_DATASET": DATASET, "GCR_USAGE_BUCKETS": BUCKET,
              "GCR_USAGE_LOCATION": "US", "GCR_USAGE_AUTH": "metadata",
              "GCE_METADATA_HOST": f"127.0.0.1:{fake_port}",
              "GCR_USAGE_BIGQUERY_ENDPOINT": f"http://127.0.0.1:{fake_port}"}
    warm_requests = [http_request(port, run, i) for i in range(warmup)]
    timed_requests = [http_request(port, run, warmup + i) for i in range(events)]
    fake_get(fake_port, RESET_PATH)
    child = stack_mod.spawn(f"serve-c{concurrency}", [str(stack_mod.SERVE_SH), str(cwasm)], logdir,
                            stack_mod.serve_env(port, config))
    try:
        wait_port(port, child)
        pid = child.proc.pid  # serve.sh execs wasmtime: the same process
        rss_start = proc_status_kib(pid)["VmRSS"]
        with RssPoller(pid) as poller:
            warm = asyncio.run(drive(port, warm_requests, concurrency)) if warm_requests else Phase()
            rss_after_warmup = poller.last_kib
            warm_counts = fake_get(fake_port, STATS_PATH)
            cpu0 = {"wasmtime": proc_cpu_s(pid), "fake": proc_cpu_s(fake_pid), "driver": time.process_time(),
                    "machine": machine_busy_s()}
            timed = asyncio.run(drive(port, timed_requests, concurrency))
            cpu1 = {"wasmtime": proc_cpu_s(pid), "fake": proc_cpu_s(fake_pid), "driver": time.process_time(),
                    "machine": machine_busy_s()}
            counts = fake_get(fake_port, STATS_PATH)
            status = proc_status_kib(pid)
        if not child.alive():
            raise RuntimeError(f"wasmtime serve exited during the run\n{child.tail()}")
    finally:
        child.stop()
    lat = sorted(timed.latencies_ms)
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    timed_counts = {k: counts.get(k, 0) - warm_counts.get(k, 0) for k in set(counts) | set(warm_counts)}
    return {
        "concurrency": concurrency, "events": events, "warmup": warmup,
        "wall_s": timed.wall_s, "throughput": events / timed.wall_s if timed.wall_s else 0.0,
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else float("nan"),
        "mean_ms": sum(lat) / len(lat) if lat else float("nan"), "latencies_ms": timed.latencies_ms,
        "errors": dict(timed.errors), "warmup_errors": dict(warm.errors), "outcomes": dict(timed.outcomes),
        "retries": timed.retries + warm.retries, "connections": timed.connections,
        "rss_start_kib": rss_start, "rss_after_warmup_kib": rss_after_warmup, "rss_end_kib": status["VmRSS"],
        "rss_peak_polled_kib": poller.peak_kib, "vmhwm_kib": status["VmHWM"],
        "tokens_warmup": warm_counts.get("token", 0), "tokens_timed": timed_counts.get("token", 0),
        "upstream_timed": timed_counts, "cpu_s": cpu,
    }


# ---------------------------------------------------------------------------------------------
# report


def fmt_ms(ms: float) -> str:
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def ratio(value: float, base: float) -> str:
    return f"x{value / base:.2f}" if base else "-"


def errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])) or "0"


def span(values: list[int]) -> str:
    """``7`` or ``7..9``: one value per round."""
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}..{hi}"


def aggregate(rounds: list[Json]) -> Json:
    """One level's runs over the rounds: pooled latencies and CPU, throughput = events / wall."""
    lat = sorted(v for r in rounds for v in r["latencies_ms"])
    events = sum(r["events"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    errors: collections.Counter[str] = collections.Counter()
    warm_errors: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    upstream: collections.Counter[str] = collections.Counter()
    cpu: collections.Counter[str] = collections.Counter()
    for r in rounds:
        errors.update(r["errors"])
        warm_errors.update(r["warmup_errors"])
        outcomes.update(r["outcomes"])
        upstream.update(r["upstream_timed"])
        cpu.update(r["cpu_s"])
    return {
        "concurrency": rounds[0]["concurrency"], "rounds": len(rounds), "events": events, "wall_s": wall,
        "throughput": events / wall if wall else 0.0,
        "throughput_rounds": [r["throughput"] for r in rounds],
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else float("nan"),
        "errors": dict(errors), "warmup_errors": dict(warm_errors), "outcomes": dict(outcomes),
        "retries": sum(r["retries"] for r in rounds), "connections": [r["connections"] for r in rounds],
        "vmhwm_kib": max(r["vmhwm_kib"] for r in rounds),
        "tokens_warmup": [r["tokens_warmup"] for r in rounds], "tokens_timed": [r["tokens_timed"] for r in rounds],
        "upstream_timed": dict(upstream), "cpu_s": dict(cpu),
        "memory": [(r["rss_start_kib"], r["rss_after_warmup_kib"], r["rss_end_kib"], r["vmhwm_kib"])
                   for r in rounds],
    }


def report(levels: list[Json], meta: Json) -> str:
    cpus = meta["cpus"]
    head = (f"  {'in flight':>9}{'events/s':>10}{'p50':>10}{'p99':>10}{'max':>10}{'errors':>8}"
            f"{'peak RSS':>10}{'instances':>13}{'wasmtime CPU':>14}{'fake CPU':>10}{'driver CPU':>12}")
    lines = [head, f"  {'':>9}{'':>10}{'':>10}{'':>10}{'':>10}{'':>8}{'MiB':>10}{'(tokens)':>13}"
             f"{'per event':>14}{'per event':>10}{'per event':>12}", "  " + "-" * (len(head) - 2)]
    for r in levels:
        n = r["events"]
        cpu = {k: v * 1e6 / n for k, v in r["cpu_s"].items()}  # µs per event
        inst = f"{span(r['tokens_warmup'])}+{span(r['tokens_timed'])}"
        lines.append(f"  {r['concurrency']:>9}{r['throughput']:>10.0f}{fmt_ms(r['p50_ms']):>10}"
                     f"{fmt_ms(r['p99_ms']):>10}{fmt_ms(r['max_ms']):>10}{sum(r['errors'].values()):>8}"
                     f"{mib(r['vmhwm_kib']):>10}{inst:>13}{cpu['wasmtime']:>11.0f} µs{cpu['fake']:>7.0f} µs"
                     f"{cpu['driver']:>9.0f} µs")
    base = levels[0]
    lines.append("")
    lines.append("  ratios to the one-at-a-time baseline (in flight = 1), same invocation")
    lines.append(f"  {'in flight':>9}{'events/s':>10}{'p50':>10}{'p99':>10}{'max':>10}{'':>8}{'peak RSS':>10}")
    for r in levels[1:]:
        lines.append(f"  {r['concurrency']:>9}{ratio(r['throughput'], base['throughput']):>10}"
                     f"{ratio(r['p50_ms'], base['p50_ms']):>10}{ratio(r['p99_ms'], base['p99_ms']):>10}"
                     f"{ratio(r['max_ms'], base['max_ms']):>10}{'':>8}{ratio(r['vmhwm_kib'], base['vmhwm_kib']):>10}")
    lines.append("")
    lines.append("  events/s per round (the spread is the machine's other work as much as anything):")
    for r in levels:
        lines.append(f"  {r['concurrency']:>9}   " + "  ".join(f"{t:.0f}" for t in r["throughput_rounds"]))
    lines.append("")
    lines.append(f"  machine share during the timed events (CPU seconds / wall seconds; {cpus} CPUs = {cpus * 100}%;")
    lines.append("  other = the whole machine's busy time (/proc/stat) minus these three: other work, kernel threads):")
    for r in levels:
        share = {k: v / r["wall_s"] * 100 for k, v in r["cpu_s"].items()}
        ours = share["wasmtime"] + share["fake"] + share["driver"]
        lines.append(f"  {r['concurrency']:>9}   wasmtime {share['wasmtime']:4.0f}%   fake {share['fake']:3.0f}%"
                     f"   driver {share['driver']:3.0f}%   other {max(0.0, share['machine'] - ours):4.0f}%"
                     f"   idle {max(0.0, cpus * 100 - share['machine']):4.0f}%")
    lines.append("")
    lines.append("  wasmtime RSS, MiB, per round: listening -> after warm-up -> end of run (peak = VmHWM)")
    for r in levels:
        lines.append(f"  {r['concurrency']:>9}   " + "   ".join(
            f"{mib(a)} -> {mib(b)} -> {mib(c)} (peak {mib(d)})" for a, b, c, d in r["memory"]))
    top = levels[-1]
    if top["concurrency"] > 1:
        per = (top["vmhwm_kib"] - base["vmhwm_kib"]) / (top["concurrency"] - 1) / 1024
        lines.append(f"  => {per:.2f} MiB of peak RSS per extra event in flight (each has an instance of its own):"
                     f" (peak at {top['concurrency']} - peak at 1) / {top['concurrency'] - 1}")
    lines.append("")
    lines.append("  upstream calls the fake received per timed event:")
    for r in levels:
        calls = {k: v for k, v in r["upstream_timed"].items() if v}
        per = ", ".join(f"{k} {v / r['events']:.3g}" for k, v in sorted(calls.items()))
        lines.append(f"  {r['concurrency']:>9}   {per}")
    lines.append("")
    lines.append("  errors (timed events; warm-up in brackets), answers, loader retries, driver connections per round:")
    for r in levels:
        warm = f" [warm-up: {errors_text(r['warmup_errors'])}]" if r["warmup_errors"] else ""
        lines.append(f"  {r['concurrency']:>9}   errors {errors_text(r['errors'])}{warm}; answers "
                     f"{errors_text(r['outcomes'])}; retries {r['retries']}; connections "
                     f"{span(r['connections'])}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="timed events per run (default 4000)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="untimed events per run before the timed ones, at the run's concurrency (default 200)")
    parser.add_argument("--concurrency", default="16,32,64",
                        help="in-flight levels after the one-at-a-time baseline (default 16,32,64)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each runs every level once, baseline first (default 3)")
    parser.add_argument("--fake", choices=("asyncio", "threading"), default="asyncio",
                        help="the fake Google's HTTP server (default asyncio; threading = stdlib ThreadingHTTPServer)")
    parser.add_argument("--json", type=Path, default=REPO / "target" / "bench" / "load.json",
                        help="where to write the figures")
    parser.add_argument("--serve-fake", metavar="PORT", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        return serve_fake(args.fake, args.serve_fake)

    reason = stack_mod.loader_unavailable_reason()
    if reason:
        print(f"load: {reason}", file=sys.stderr)
        return 1
    levels = [1] + [int(c) for c in args.concurrency.split(",") if c.strip() and int(c) != 1]
    wasm = stack_mod.wasm_path()
    cwasm = stack_mod.precompiled(wasm)
    wasmtime_version = subprocess.run([str(stack_mod.wasmtime_path()), "--version"], capture_output=True,
                                      text=True).stdout.strip()
    load_before = os.getloadavg()
    started = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="gcr-usage-load-"))
    runs: dict[int, list[Json]] = {c: [] for c in levels}
    try:
        fake_port = stack_mod.free_port()
        fake = stack_mod.spawn("fake-google", [sys.executable, str(Path(__file__).resolve()), "--fake", args.fake,
                                               "--serve-fake", str(fake_port)], logdir,
                               {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"})
        try:
            wait_port(fake_port, fake)
            run = 0
            for round_ in range(args.rounds):
                for concurrency in levels:
                    r = one_run(run, concurrency, args.events, args.warmup, cwasm, fake_port, fake.proc.pid, logdir)
                    runs[concurrency].append(r)
                    run += 1
                    print(f"  round {round_ + 1}/{args.rounds}, in flight {concurrency}: {r['throughput']:.0f} "
                          f"events/s, p50 {fmt_ms(r['p50_ms'])}, {sum(r['errors'].values())} errors",
                          file=sys.stderr, flush=True)
        finally:
            fake.stop()
    except BaseException:
        print(f"logs kept in {logdir}", file=sys.stderr)
        raise
    shutil.rmtree(logdir, ignore_errors=True)
    load_after = os.getloadavg()
    summary = [aggregate(runs[c]) for c in levels]
    meta = {"cpus": os.cpu_count(), "machine": platform.machine(), "loadavg_before": load_before,
            "loadavg_after": load_after, "wasmtime": wasmtime_version, "python": platform.python_version(),
            "wasm": str(wasm), "cwasm_bytes": cwasm.stat().st_size, "fake": args.fake, "events": args.events,
            "warmup": args.warmup, "rounds": args.rounds, "levels": levels,
            "elapsed_s": time.monotonic() - started}
    print()
    print("Load: wasmtime serve (deploy/serve.sh, .cwasm, instance reuse on) under concurrent deliveries, raw mode")
    print(f"  machine  {meta['cpus']} CPUs ({platform.machine()}), load average (1/5/15 min) "
          f"{' '.join(f'{v:.2f}' for v in load_before)} before, {' '.join(f'{v:.2f}' for v in load_after)} after "
          f"(the benchmark's own processes count in 'after'; shared machine)")
    print(f"  hosts    {wasmtime_version}; component {cwasm.stat().st_size} B .cwasm; driver Python "
          f"{platform.python_version()}, asyncio, one keep-alive HTTP/1.1 connection per worker")
    print(f"  upstream fake metadata server + BigQuery in its own process ({args.fake}), loopback, "
          "every job DONE at once")
    print(f"  events   {args.rounds} rounds x ({args.events} timed after {args.warmup} untimed) per level, a fresh "
          f"serve.sh process per run; Pub/Sub push and binary CloudEvents alternately, each a distinct object; "
          f"{meta['elapsed_s']:.0f} s in all")
    print()
    print(report(summary, meta))
    print()
    print("  latency: request written -> whole answer read, at the driver; percentiles over every timed event of the")
    print("  rounds; events/s = timed events / their wall time, over the rounds. instances: metadata token requests,")
    print("  warm-up + timed (a..b: range over rounds); an instance fetches its token once, then serves up to 1000")
    print("  events, one at a time. peak RSS: the highest VmHWM of the rounds. CPU: /proc utime+stime (wasmtime: all")
    print("  its threads), the driver's process_time.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for r in (x for c in levels for x in runs[c]):
        r.pop("latencies_ms")
    args.json.write_text(json.dumps({"meta": meta, "levels": summary, "runs": runs}, indent=1) + "\n")
    print(f"\nfigures: {args.json}")
    return 0


if __name__ == "__main__":
    stack_mod.stop_on_sigterm()
    sys.exit(main())
