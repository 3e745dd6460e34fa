"""A stdlib HTTP server that answers like BigQuery's jobs API and records every request.

Used to see exactly what a client sends (Google's Python client as the reference peer, then
the component) and compare the two. It answers:
  POST /bigquery/v2/projects/P/jobs     -> 200 the job resource, status DONE (load statistics),
                                           or 409 "duplicate" when the job id was seen before
  GET  /bigquery/v2/projects/P/jobs/ID  -> 200 the job resource, or 404 notFound
  anything else                         -> 404 notFound (still recorded)
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]

JOBS_PATH = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/jobs$")
JOB_PATH = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/jobs/(?P<job>[^/]+)$")


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Json:
        return json.loads(self.body)


@dataclass
class CaptureState:
    requests: list[Captured] = field(default_factory=list)
    jobs: dict[str, Json] = field(default_factory=dict)  # "project:jobId" -> job resource
    lock: threading.Lock = field(default_factory=threading.Lock)
    output_rows: int = 14  # what statistics.load.outputRows reports


def error_body(code: int, reason: str, message: str, status: str) -> Json:
    return {"error": {"code": code, "message": message, "status": status,
                      "errors": [{"domain": "global", "reason": reason, "message": message}]}}


def done_job(project: str, request: Json, output_rows: int) -> Json:
    """The job resource BigQuery returns for a finished load job."""
    reference = dict(request.get("jobReference") or {})
    reference.setdefault("projectId", project)
    reference.setdefault("location", "US")
    now = str(int(time.time() * 1000))
    return {
        "kind": "bigquery#job",
        "id": f"{project}:{reference['location']}.{reference.get('jobId', '')}",
        "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{project}/jobs/{reference.get('jobId', '')}"
                    f"?location={reference['location']}",
        "user_email": "loader@demo-project.iam.gserviceaccount.com",
        "jobReference": reference,
        "configuration": {"jobType": "LOAD", **(request.get("configuration") or {})},
        "status": {"state": "DONE"},
        "statistics": {
            "creationTime": now, "startTime": now, "endTime": now,
            "load": {"inputFiles": "1", "inputFileBytes": "8646", "outputRows": str(output_rows),
                     "outputBytes": "1904", "badRecords": "0"},
        },
    }


class LoopbackServer:
    """A stdlib HTTP server on a free loopback port, serving from a daemon thread while inside
    ``with`` (the capture server and the proxies of the e2e tests)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str, queue: int = 5) -> None:
        server = type("Server", (ThreadingHTTPServer,), {"daemon_threads": True, "request_queue_size": queue})
        self._server = server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request's body: Content-Length or chunked transfer coding (both valid HTTP/1.1)."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()  # CRLF after each chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def make_handler(state: CaptureState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # the recorded requests are the log

        def _read_body(self) -> bytes:
            return read_request_body(self)

        def _record(self) -> Captured:
            body = self._read_body()
            parts = urlsplit(self.path)
            captured = Captured(self.command, parts.path, parse_qs(parts.query),
                                {k.lower(): v for k, v in self.headers.items()}, body)
            with state.lock:
                state.requests.append(captured)
            return captured

        def _answer(self, status: int, body: Json) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            captured = self._record()
            match = JOBS_PATH.match(captured.path)
            if not match:
                self._answer(404, error_body(404, "notFound", f"Not found: {captured.path}", "NOT_FOUND"))
                return
            project = match["project"]
            try:
                request = captured.json()
            except ValueError:
                self._answer(400, error_body(400, "invalid", "Invalid JSON payload", "INVALID_ARGUMENT"))
                return
            job_id = (request.get("jobReference") or {}).get("jobId", "")
            key = f"{project}:{job_id}"
            with state.lock:
                existing = state.jobs.get(key)
                if existing is None:
                    state.jobs[key] = done_job(project, request, state.output_rows)
                    job = state.jobs[key]
            if existing is not None:
                location = existing["jobReference"]["location"]
                message = f"Already Exists: Job {project}:{location}.{job_id}"
                self._answer(409, error_body(409, "duplicate", message, "ALREADY_EXISTS"))
                return
            self._answer(200, job)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            captured = self._record()
            match = JOB_PATH.match(captured.path)
            job = state.jobs.get(f"{match['project']}:{match['job']}") if match else None
            if job is None:
                self._answer(404, error_body(404, "notFound", f"Not found: Job {captured.path}", "NOT_FOUND"))
                return
            self._answer(200, job)

        do_PUT = do_PATCH = do_DELETE = do_POST  # recorded and answered 404 by path

    return Handler


class CaptureServer(LoopbackServer):
    """Context manager: the server on a free loopback port, in a daemon thread."""

    def __init__(self) -> None:
        self.state = CaptureState()
        super().__init__(make_handler(self.state), "bigquery-capture")

    @property
    def requests(self) -> list[Captured]:
        with self.state.lock:
            return list(self.state.requests)

    def clear(self) -> None:
        with self.state.lock:
            self.state.requests.clear()
