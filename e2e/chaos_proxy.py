"""A fault-injecting HTTP proxy (stdlib, threaded, loopback) in front of the BigQuery emulator.

The loader's ``GCR_USAGE_BIGQUERY_ENDPOINT`` points here; every request is either answered by
the proxy itself with a fault or forwarded to local-bigquery. Per request, from one
``random.Random(seed)`` (drawn under a lock, so the *rates* are fixed by the seed; which request
meets which fault also depends on thread timing):

  ``503``          ``503 UNAVAILABLE`` in Google's error envelope (reason ``backendError``), not forwarded
  ``429``          ``429 RESOURCE_EXHAUSTED`` (reason ``rateLimitExceeded``), not forwarded
  ``drop_before``  the request is read, then the connection is closed: nothing forwarded
  ``drop_answer``  the request is forwarded and its answer read, then the connection is closed
                   without a reply: the upstream did the work, the client never learns it
  ``delay``        a pause of up to ``max_delay`` seconds before forwarding (outside the lock)

and, optionally, *outages*: from the N-th request on, every request for S seconds is answered
503 (``outage``), long enough that the loader's own retries run out of budget and it answers
503 itself, so that the sender's redelivery is exercised too.

What it serialises, and why. local-bigquery is not built for concurrent clients. Its
``jobs.insert`` checks whether the job id exists and then stores the job, unlocked: two
concurrent inserts of one job id can both pass the check, and then either both jobs run (both
answered 200, the object's rows loaded twice) or the second fails on the job store's unique key
(a 400, where BigQuery answers 409). Its load jobs run on a pool of threads, so concurrent loads
into one DuckDB table can meet write-write conflicts and fail. Real BigQuery has none of these
problems, and the loader must not be taught an emulator's quirks, so the proxy holds **one lock
around every forwarded request**, and a request that created a job (``jobs.insert``, the last
chunk of a resumable upload) keeps the lock until that job is DONE (it usually is already: the
emulator waits up to 1 s for a job before it answers). The loader still runs its events
concurrently, as many as the senders send; only the emulator sees them one at a time. Faults and
delays are decided and applied outside the lock. ``serialise=False`` turns the lock off, to see
the emulator's failures for oneself.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from capture import LoopbackServer, read_request_body

Json = dict[str, Any]

FAULTS = ("503", "429", "drop_before", "drop_answer", "delay")
#: Moderate defaults: 15% of requests meet a fault, 10% one that fails the request.
DEFAULT_RATES: dict[str, float] = {"503": 0.03, "429": 0.02, "drop_before": 0.025, "drop_answer": 0.025,
                                   "delay": 0.05}

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authenticate", "proxy-authorization", "content-length"}
JOB_CREATING = re.compile(r"^(?:/upload)?/bigquery/v2/projects/(?P<project>[^/]+)/jobs$")
JOB_IN_PATH = re.compile(r"/jobs/(?P<job>[A-Za-z0-9_-]+)")
UPLOAD_ID = re.compile(r"[?&]upload_id=(?P<id>[^&]+)")


def google_error(code: int) -> Json:
    """Google's JSON error envelope for the injected answers."""
    if code == 429:
        message = "Exceeded rate limits: too many api requests per user per method for this user_method"
        return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED",
                          "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded", "message": message}]}}
    message = "The service is currently unavailable (injected by chaos_proxy)."
    return {"error": {"code": code, "message": message, "status": "UNAVAILABLE",
                      "errors": [{"domain": "global", "reason": "backendError", "message": message}]}}


@dataclass
class Record:
    """One request as the proxy saw it (evidence for a failing run)."""

    at: float  # seconds since the proxy started
    method: str
    path: str
    kind: str  # request_kind()
    job: str  # job id named by the path or the request body, if any
    fault: str  # "" = none
    status: int | None  # upstream's status (None: not forwarded / upstream failed)
    ms: float  # time the proxy spent on it
    settled_ms: float = 0.0  # time the lock was held waiting for a job to finish
    content_range: str = ""  # the request's Content-Range (upload chunks)


@dataclass
class ProxyState:
    upstream: str
    seed: int
    rates: dict[str, float]
    max_delay: float
    settle_timeout: float
    serialise: bool = True
    outages: list[tuple[int, float]] = field(default_factory=list)  # (from request number, seconds)
    outage_started: dict[int, float] = field(default_factory=dict)  # outage index -> monotonic start
    rng: random.Random = field(init=False)
    rng_lock: threading.Lock = field(default_factory=threading.Lock)
    upstream_lock: threading.Lock = field(default_factory=threading.Lock)  # the serialisation
    stats_lock: threading.Lock = field(default_factory=threading.Lock)
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (request kind, fault)
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)  # upstream answers forwarded (or dropped)
    requests: int = 0
    forwarded: int = 0
    settled: int = 0  # job-creating answers whose job was still running
    records: list[Record] = field(default_factory=list)
    upload_jobs: dict[str, str] = field(default_factory=dict)  # resumable upload id -> its job id
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def in_outage(self, number: int) -> bool:
        """Whether request ``number`` (1-based) falls in an outage; call with stats_lock held."""
        now = time.monotonic()
        for index, (first, seconds) in enumerate(self.outages):
            if number >= first:
                started = self.outage_started.setdefault(index, now)
                if now < started + seconds:
                    return True
        return False

    def draw(self) -> tuple[str, float]:
        """(fault or "", delay seconds) for one request."""
        with self.rng_lock:
            roll = self.rng.random()
            delay = self.rng.uniform(0.05, self.max_delay)
        edge = 0.0
        for fault in FAULTS:
            edge += self.rates.get(fault, 0.0)
            if roll < edge:
                return fault, delay if fault == "delay" else 0.0
        return "", 0.0


def request_kind(method: str, path: str, content_range: str) -> str:
    """What a BigQuery request is, for the figures: which requests met which fault."""
    plain = urlsplit(path).path
    if plain.startswith("/upload/"):
        if method == "POST":
            return "upload.open"
        if content_range == "bytes */*":
            return "upload.status"
        return "upload.chunk" if content_range.endswith("/*") else "upload.last_chunk"
    if method == "POST" and JOB_CREATING.match(plain):
        return "jobs.insert"
    if method == "GET" and JOB_IN_PATH.search(plain):
        return "jobs.get"
    return f"{method} {plain}"


def _job_named(path: str, body: bytes, upload_jobs: dict[str, str]) -> str:
    match = JOB_IN_PATH.search(path)
    if match:
        return match["job"]
    upload = UPLOAD_ID.search(path)
    if upload:
        return upload_jobs.get(upload["id"], "")
    if body[:1] == b"{":
        try:
            return str((json.loads(body).get("jobReference") or {}).get("jobId") or "")
        except (ValueError, AttributeError):
            return ""
    return ""


def make_handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(state.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # the records are the log

        def _read_body(self) -> bytes:
            return read_request_body(self)

        def _drop(self) -> None:
            """Close the connection without a reply (RST, as a crashed front end would)."""
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes, float]:
            """Send the request upstream under the lock; hold it until a created job is DONE."""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            # Host stays the proxy's: the emulator builds the resumable session's Location from
            # it, and the loader accepts a session URL only on its BigQuery origin (this proxy).
            with state.upstream_lock if state.serialise else contextlib.nullcontext():
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    answer = (response.status, response.getheaders(), response.read())
                finally:
                    conn.close()
                settled = self._settle(answer[0], answer[2])
            return (*answer, settled)

        def _settle(self, status: int, body: bytes) -> float:
            """A job-creating answer whose job still runs: wait for it (the lock is held)."""
            if status != 200 or not JOB_CREATING.match(urlsplit(self.path).path):
                return 0.0
            try:
                job = json.loads(body)
                state_now = job["status"]["state"]
                reference = job["jobReference"]
            except (ValueError, KeyError, TypeError):
                return 0.0
            if state_now == "DONE":
                return 0.0
            begin = time.monotonic()
            path = (f"/bigquery/v2/projects/{reference['projectId']}/jobs/{reference['jobId']}"
                    f"?location={reference.get('location', 'US')}")
            while time.monotonic() - begin < state.settle_timeout:
                time.sleep(0.05)
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    raw = response.read()
                    if response.status == 200 and json.loads(raw).get("status", {}).get("state") == "DONE":
                        break
                except (OSError, ValueError, http.client.HTTPException):
                    pass
                finally:
                    conn.close()
            with state.stats_lock:
                state.settled += 1
            return (time.monotonic() - begin) * 1000

        def _relay(self) -> None:
            begin = time.monotonic()
            body = self._read_body()
            fault, delay = state.draw()
            kind = request_kind(self.command, self.path, self.headers.get("Content-Range") or "")
            status: int | None = None
            settled = 0.0
            with state.stats_lock:
                state.requests += 1
                if state.in_outage(state.requests):
                    fault, delay = "outage", 0.0
                state.kinds[kind] += 1
                if fault:
                    state.faults[fault] += 1
                    state.faults_by_kind[(kind, fault)] += 1
            try:
                if fault in ("503", "429", "outage"):
                    code = 429 if fault == "429" else 503
                    raw = json.dumps(google_error(code)).encode()
                    self._reply(code, [("Content-Type", "application/json; charset=UTF-8")], raw)
                elif fault == "drop_before":
                    self._drop()
                else:
                    if delay:
                        time.sleep(delay)
                    try:
                        status, headers, raw, settled = self._forward(body)
                    except (OSError, http.client.HTTPException) as err:
                        with state.stats_lock:
                            state.faults["upstream_error"] += 1
                        message = f"chaos_proxy: upstream failed: {err}"
                        envelope = {"error": {"code": 502, "message": message, "status": "UNAVAILABLE",
                                              "errors": [{"reason": "backendError", "message": message}]}}
                        self._reply(502, [("Content-Type", "application/json")], json.dumps(envelope).encode())
                    else:
                        location = dict((k.lower(), v) for k, v in headers).get("location", "")
                        upload = UPLOAD_ID.search(location)
                        with state.stats_lock:
                            state.forwarded += 1
                            state.statuses[status] += 1
                            if upload:
                                state.upload_jobs[upload["id"]] = _job_named("", body, {})
                        if fault == "drop_answer":
                            self._drop()
                        else:
                            self._reply(status, headers, raw)
            except OSError:
                pass  # the client went away (its timeout): nothing to answer
            finally:
                with state.stats_lock:
                    state.records.append(Record(round(begin - state.started, 3), self.command, self.path, kind,
                                                _job_named(self.path, body, state.upload_jobs), fault, status,
                                                round((time.monotonic() - begin) * 1000, 1), round(settled, 1),
                                                self.headers.get("Content-Range") or ""))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay  # noqa: N815 - stdlib names

    return Handler


class ChaosProxy(LoopbackServer):
    """Context manager: the proxy on a free loopback port, serving from a daemon thread."""

    def __init__(self, upstream: str, seed: int, rates: dict[str, float] | None = None, max_delay: float = 1.5,
                 settle_timeout: float = 30.0, serialise: bool = True,
                 outages: list[tuple[int, float]] | None = None) -> None:
        self.state = ProxyState(upstream.rstrip("/"), seed, dict(DEFAULT_RATES if rates is None else rates),
                                max_delay, settle_timeout, serialise, list(outages or []))
        # A burst of concurrent events must not meet a full accept queue.
        super().__init__(make_handler(self.state), "chaos-proxy", queue=128)

    def records(self) -> list[Record]:
        with self.state.stats_lock:
            return list(self.state.records)

    def figures(self) -> Json:
        with self.state.stats_lock:
            return {"requests": self.state.requests, "forwarded": self.state.forwarded,
                    "faults": dict(sorted(self.state.faults.items())),
                    "requests_by_kind": dict(sorted(self.state.kinds.items())),
                    "faults_by_kind": {f"{kind} {fault}": n
                                       for (kind, fault), n in sorted(self.state.faults_by_kind.items())},
                    "upstream_statuses": dict(sorted(self.state.statuses.items())),
                    "jobs_settled_under_lock": self.state.settled}
