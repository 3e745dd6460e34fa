"""A loopback HTTP proxy in front of fake-gcs-server that cuts downloads off part-way.

Every request is forwarded. The first ``cuts`` media downloads (``GET /download/...?alt=media``)
are answered with the emulator's status and headers — its ``Content-Length`` and ``X-Goog-Hash``
for the whole object — and the first half of the body; then the connection is closed. That is
what a client sees when a connection resets mid-transfer: a head that promises more than arrives.
The loader runs under a real ``wasmtime serve``, so its hyper client, not our harness, decides
how the broken body reaches the component.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from capture import LoopbackServer, read_request_body
from chaos_proxy import HOP_BY_HOP


@dataclass
class CutState:
    upstream: str
    cuts: int
    cut: list[str] = field(default_factory=list)  # paths of the downloads cut off
    downloads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_handler(state: CutState) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(state.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _relay(self) -> None:
            body = read_request_body(self)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                status, answer_headers, raw = response.status, response.getheaders(), response.read()
            finally:
                conn.close()
            parts = urlsplit(self.path)
            media = (self.command == "GET" and parts.path.startswith("/download/")
                     and parse_qs(parts.query).get("alt") == ["media"])
            with state.lock:
                state.downloads += media
                cut = media and status == 200 and len(state.cut) < state.cuts
                if cut:
                    state.cut.append(parts.path)
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            if cut:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(raw[: len(raw) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay  # noqa: N815 - stdlib names

    return Handler


class CutOffProxy(LoopbackServer):
    """Context manager: the proxy on a free loopback port, serving from a daemon thread."""

    def __init__(self, upstream: str, cuts: int = 1) -> None:
        self.state = CutState(upstream.rstrip("/"), cuts)
        super().__init__(make_handler(self.state), "cutoff-proxy")
