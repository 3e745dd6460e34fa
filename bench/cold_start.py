#!/usr/bin/env python3
"""Cold start (request -> first outbound call) per host, warm requests with reuse on/off, fetches.

From a request arriving to the loader's first outbound call, per host (wasmtime serve, Spin, the
seed's Python function); warm requests with instance reuse on and off; and what reuse saves in
fetches (key set, token, project id).

A benchmark, not a test: it prints tables and asserts nothing about time. Run it with the e2e
venv's python (``cargo xtask bench`` does):

    target/e2e-venv/bin/python bench/cold_start.py [--runs 10] [--warm 5] [--fetch-events 100]
                                                   [--harness-bin PATH]

Hosts, all handed the same Cloud Functions (gen1) event for a fixture usage log:
  (a)  deploy/serve.sh with the .wasm, as deployed (instance reuse on: serve.sh's default
       --max-instance-reuse-count 1000) -- the container's command line; Cranelift compiles at start
  (a') the same with reuse off (SERVE_MAX_INSTANCE_REUSE_COUNT=1: a fresh instance per request,
       wasmtime serve's own default for WASI 0.2)
  (b)  deploy/serve.sh with the .cwasm, reuse on -- what the image runs (precompiled by
       `serve.sh --compile`)
  (b') the same with reuse off
  (c)  the host-test harness, component pre-instantiated (ProxyPre built), a fresh instance per
       request (host-test/src/bin/cold_start.rs, given with --harness-bin)
  (d)  the seed's Python Cloud Function (bench/seed/main.py) under functions-framework
       --signature-type event, unchanged; the environment points google-cloud-bigquery at the fake
       (BIGQUERY_EMULATOR_HOST) and google-auth at a fake metadata server (GCE_METADATA_HOST/_IP),
       i.e. Compute Engine credentials as on Cloud Functions.
  (e)  the Spin flavour (target/spin/wasm32-wasip2/component/gcr_usage_loader.wasm, `--features spin`)
       under a real `spin up --from spin.toml` -- the repository's own manifest, configured only by
       `--variable` (the same settings as (a)-(b), as Spin variables: stack.spin_variables), state
       and logs in a temp dir (stack.spin_up_argv). Spin 4 has no instance reuse: a fresh instance
       per request, so its warm figures belong with the reuse-off rows (a'), (b'). Spin's default
       Wasmtime compile cache is on (~/.cache/wasmtime): the throw-away start fills it, so each
       sampled start loads the cached artifact instead of compiling.
  (f)  the same with `spin up --disable-cache`: Cranelift compiles the component at every start,
       as (a) does -- a first start on a machine (or container) with an empty cache.
  Without a Spin runtime (stack.spin_binary: SPIN, ../shared/tools/spin, `spin` on PATH) or the
  Spin flavour built, one line says why and (e)/(f) are left out.

One fake Google (stdlib http.server, in this process) plays the metadata server, BigQuery and
Google's OIDC key endpoint (/certs); it timestamps every request when its headers have arrived,
with the same monotonic clock the driver uses to stamp the moment it starts sending the event.

"First outbound call" is the first request the fake receives after that moment, whatever it is:
the time the host takes to get from a request to its first network call. On a fresh instance that
is the metadata token request ((a)-(c); google-auth's service-account info for (d)). On a reused
instance the token is cached, so a warm request's first outbound call is jobs.insert, which comes
after more of the loader's own work (event parsing, building the job): the two "warm req -> 1st out"
figures time different stretches and are shown with what was first (the table says which). The
like-for-like comparison of reuse on and off is "warm req -> response", the whole request.
The seed makes two metadata calls at import time (GCE detection, project id): those happen before
it listens and count in "start -> listening", not in the request figures.

Cold samples: each starts the server process afresh (no compilation cache: serve.sh runs
`-C cache=n`; Spin's cache: see (e), (f)), waits until its port accepts a TCP connection (Cloud
Run's default startup probe), sends one event, then --warm more events to the same process (the
warm figures). The hosts are interleaved run by run, so that a change of machine load hits all of
them alike. Reported: medians over --runs (warm: over every warm request), with ratios to
baselines measured in the same run: the seed (d) in the main table, reuse off ((a') / (b')) in the
reuse table, where Spin's warm figures sit in the reuse-off column (with their ratio to (b')).

Fetches: one serve.sh process (.cwasm) per setting, reuse off then on, then one `spin up` (as
(e)), gets --fetch-events sequential events with GCR_USAGE_TRIGGER_AUTH=google-oidc (ID tokens
signed here, RS256, by a key the fake publishes at /certs with Cache-Control max-age),
GCR_USAGE_AUTH=metadata and no GCR_USAGE_PROJECT (the project id comes from the metadata server,
as on Cloud Run); the fake counts the key-set GETs, metadata token requests and project-id
requests it received, per 100 events.
Under Spin the key-set URL needs an allowed origin: the fake serves everything on one port, so
<fake>/certs is on the origin `{{ gcr_usage_bigquery_endpoint }}` allows -- as Google's own key
set (https://www.googleapis.com) is allowed by spin.toml in production; the manifest is not widened.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
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
# google-oidc trigger authentication for the fetch count.
CERTS_PATH = "/certs"
CERTS_CACHE_CONTROL = "public, max-age=21600, must-revalidate, no-transform"  # the shape of Google's
AUDIENCE = "https://gcr-usage-loader.bench.example/"
PUSHER = f"pusher@{PROJECT}.iam.gserviceaccount.com"
TOKEN_PATH = "service-accounts/default/token"
PROJECT_ID_PATH = "project/project-id"
# Instance reuse, as deploy/serve.sh reads it (unset = serve.sh's default, reuse on).
REUSE_OFF = {"SERVE_MAX_INSTANCE_REUSE_COUNT": "1"}

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# ID tokens, signed here as Google would sign them


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdTokens:
    """Two RSA keys published as a JWK set (Google publishes two or three); the first signs."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa  # the e2e venv has it

        self.keys = {f"bench-{i}": rsa.generate_private_key(public_exponent=65537, key_size=2048) for i in (1, 2)}
        self.kid = "bench-1"

        def jwk(kid: str, key: Any) -> Json:
            numbers = key.public_key().public_numbers()
            n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
            e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
            return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64url(n), "e": b64url(e)}

        self.jwks = json.dumps({"keys": [jwk(kid, key) for kid, key in self.keys.items()]}).encode()

    def token(self, audience: str, email: str, lifetime_s: int = 3600) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        claims = {"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890",
                  "sub": "112233445566778899000", "email": email, "email_verified": True,
                  "iat": now, "exp": now + lifetime_s}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.keys[self.kid].sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


# ---------------------------------------------------------------------------------------------
# the fake Google: metadata server + BigQuery + OIDC keys, stamping arrivals


class FakeGoogle:
    """Metadata server, BigQuery jobs/tables API and Google's JWK set on one loopback port."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[int, str, str]] = []  # (monotonic ns, method, path)
        self.jwks: bytes | None = None  # served at CERTS_PATH once set
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
                        metadata: bool = False, cache_control: str | None = None) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                if metadata:
                    self.send_header("Metadata-Flavor", "Google")
                if cache_control:
                    self.send_header("Cache-Control", cache_control)
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
                if path == CERTS_PATH and self.command == "GET" and fake.jwks is not None:
                    return self._answer(200, fake.jwks, "application/json; charset=UTF-8",
                                        cache_control=CERTS_CACHE_CONTROL)
                return self._bigquery(path, body)

            def _metadata(self, key: str) -> None:
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._answer(403, b"Missing Metadata-Flavor:Google header.", "text/html", metadata=True)
                texts = {PROJECT_ID_PATH: PROJECT, "project/numeric-project-id": "123456789012",
                         "universe/universe-domain": "googleapis.com"}
                if key in texts:
                    return self._answer(200, texts[key].encode(), "application/text", metadata=True)
                if key.endswith(TOKEN_PATH):
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


def kind(method: str, path: str) -> str:
    """What an outbound call was, in a word or two."""
    if path.endswith(TOKEN_PATH):
        return "token"
    if path.endswith(PROJECT_ID_PATH):
        return "project id"
    if path.rstrip("/").endswith("service-accounts/default"):
        return "account info"
    if path == CERTS_PATH:
        return "key set"
    if method == "POST" and path.endswith("/jobs"):
        return "jobs.insert"
    return f"{method} {path}"


# ---------------------------------------------------------------------------------------------
# the hosts


@dataclass
class Host:
    key: str
    label: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]]
    check: Callable[[int, bytes], int]  # raises unless loaded; returns the retries the answer reports


#: The `retries.last` of every answer that reports retries (they are listed after the tables).
RETRIED: list[str] = []


def component_ok(status: int, body: bytes) -> int:
    answer = json.loads(body)
    if status != 200 or answer.get("outcome") != "loaded":
        raise RuntimeError(f"component answered {status} {answer}")
    retries = answer.get("retries") or {}
    if retries:
        RETRIED.append(str(retries.get("last", "")))
    return int(retries.get("count", 0))


def seed_ok(status: int, body: bytes) -> int:
    if status != 200:
        raise RuntimeError(f"functions-framework answered {status} {body[:300]!r}")
    return 0


def component_config(fake: FakeGoogle) -> dict[str, str]:
    return {
        "GCR_USAGE_PROJECT": PROJECT, "GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_LOCATION": "US",
        "GCR_USAGE_AUTH": "metadata", "GCE_METADATA_HOST": fake.host, "GCR_USAGE_WAIT_SECONDS": "30",
        "GCR_USAGE_BIGQUERY_ENDPOINT": fake.url,
    }


def component_host(key: str, label: str, component: Path, fake: FakeGoogle,
                   serve: dict[str, str] | None = None) -> Host:
    """serve.sh on ``component``; ``serve``: serve.sh's own settings (REUSE_OFF), else its defaults."""
    config = {**component_config(fake), **(serve or {})}
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

    return Host("d", LABELS["d"], argv, env, seed_ok)


#: `spin up` flags per Spin host: (e) as a user runs it (Wasmtime's compile cache on by default),
#: (f) with the cache off, so Cranelift compiles at every start.
SPIN_FLAGS = {"e": [], "f": ["--disable-cache"]}


def spin_argv(port: int, config: dict[str, str], state_root: Path, flags: list[str]) -> list[str]:
    """`spin up` on the repository's spin.toml, ``config`` as `--variable`s; a fresh state/log
    directory per process (under ``state_root``, never `.spin/` in the repository)."""
    state_dir = state_root / f"spin-{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    return stack_mod.spin_up_argv(port, stack_mod.spin_variables(config), state_dir) + flags


def spin_host(key: str, fake: FakeGoogle, state_root: Path) -> Host:
    """The Spin flavour under `spin up`: the settings the serve.sh hosts get, as Spin variables."""
    config = component_config(fake)
    return Host(key, LABELS[key], lambda port: spin_argv(port, config, state_root, SPIN_FLAGS[key]),
                lambda port: stack_mod.spin_env(), component_ok)


def spin_version() -> str:
    binary, _ = stack_mod.spin_binary()
    if binary is None:
        return "-"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.split()
    return " ".join(out[:2]) or "-"  # "spin 4.0.2 (<commit> <date>)"


def spin_log_findings(logdir: Path) -> tuple[list[str], int]:
    """Lines of Spin's own output (spin up's stdout/stderr, with the component's stdout mirrored)
    and of the component's stderr files that look like trouble: anything mentioning an error, a
    warning, a panic, a failure or a denial, except the component's own INFO answers; and how
    many files were read."""
    found: list[str] = []
    paths = [*sorted(logdir.glob("host-e-*.log")), *sorted(logdir.glob("host-f-*.log")),
             *sorted(logdir.glob("fetches-spin*.log")), *sorted(logdir.glob("spin-*/logs/*stderr*"))]
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    if json.loads(line).get("severity") == "INFO":
                        continue
                except ValueError:
                    pass
            if re.search(r"error|warn|panic|fail|denied", line, re.IGNORECASE):
                found.append(f"{path.name}: {line.strip()}")
    return found, len(paths)


# Row order of the tables; (x') is (x) with instance reuse off.
ORDER = ("a", "a'", "b", "b'", "c", "d", "e", "f")
SPIN_KEYS = ("e", "f")
LABELS = {
    "a": "wasmtime serve (deploy/serve.sh), .wasm, reuse on",
    "a'": "wasmtime serve (deploy/serve.sh), .wasm, reuse off",
    "b": "wasmtime serve (deploy/serve.sh), .cwasm, reuse on",
    "b'": "wasmtime serve (deploy/serve.sh), .cwasm, reuse off",
    "c": "harness, ProxyPre ready (instantiate + handle)",
    "d": "seed (Python) under functions-framework",
    "e": "spin up (spin.toml), compile cache on, reuse off",
    "f": "spin up --disable-cache, reuse off",
}


# ---------------------------------------------------------------------------------------------
# one cold sample


@dataclass
class Sample:
    ready_ms: float
    first_ms: float  # request sent -> first outbound call
    response_ms: float  # request sent -> response read
    start_to_first_ms: float  # process start -> first outbound call after the request
    first_kind: str = ""  # what that first outbound call was
    warm_ms: list[float] = field(default_factory=list)  # warm request sent -> first outbound call
    warm_response_ms: list[float] = field(default_factory=list)  # warm request sent -> response read
    warm_kinds: list[str] = field(default_factory=list)
    retries: int = 0  # transient failures the loader retried past, over the sample's requests


def post(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        sent = time.monotonic_ns()
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json", **(headers or {})})
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


def first_outbound(fake: FakeGoogle, sent: int, child: stack_mod.Child) -> tuple[int, str]:
    """(arrival, kind) of the first request the fake received after ``sent``, whatever it was."""
    arrivals = fake.after(sent)
    if not any(method == "POST" and path.endswith("/jobs") for _, method, path in arrivals):
        raise RuntimeError(f"{child.name}: no jobs.insert after the event: {arrivals}\n{child.tail()}")
    at, method, path = arrivals[0]
    return at, kind(method, path)


def cold_sample(host: Host, fake: FakeGoogle, event: bytes, warm: int, logdir: Path) -> Sample:
    fake.reset()
    port = stack_mod.free_port()
    ms = 1e-6
    started = time.monotonic_ns()
    # One log per process (host key and port): Spin's output of every start is looked through at the end.
    child = stack_mod.spawn(f"host-{host.key}-{port}", host.argv(port), logdir, host.env(port))
    try:
        ready = wait_listening(child, port)
        sent, status, body = post(port, event)
        done = time.monotonic_ns()
        retries = host.check(status, body)
        first, first_kind = first_outbound(fake, sent, child)
        sample = Sample((ready - started) * ms, (first - sent) * ms, (done - sent) * ms, (first - started) * ms,
                        first_kind, retries=retries)
        for _ in range(warm):
            sent, status, body = post(port, event)
            done = time.monotonic_ns()
            sample.retries += host.check(status, body)
            first, first_kind = first_outbound(fake, sent, child)
            sample.warm_ms.append((first - sent) * ms)
            sample.warm_response_ms.append((done - sent) * ms)
            sample.warm_kinds.append(first_kind)
        return sample
    finally:
        child.stop()


# ---------------------------------------------------------------------------------------------
# fetches per 100 events, reuse off and on


#: How a fetch-count process starts: (port, the loader's configuration) -> (argv, environment).
Launch = Callable[[int, dict[str, str]], tuple[list[str], dict[str, str]]]


def serve_launch(component: Path, serve: dict[str, str]) -> Launch:
    """serve.sh on ``component``, with serve.sh's own settings ``serve`` (REUSE_OFF, or {})."""
    return lambda port, config: ([str(stack_mod.SERVE_SH), str(component)],
                                 stack_mod.serve_env(port, {**config, **serve}))


def spin_launch(state_root: Path) -> Launch:
    """`spin up` as (e): the same configuration as Spin variables."""
    return lambda port, config: (spin_argv(port, config, state_root, SPIN_FLAGS["e"]), stack_mod.spin_env())


def fetch_count(launch: Launch, fake: FakeGoogle, tokens: IdTokens, event: bytes, events: int,
                logdir: Path, name: str) -> Json:
    """One host process, ``events`` sequential google-oidc events; what the fake received."""
    config = {k: v for k, v in component_config(fake).items() if k != "GCR_USAGE_PROJECT"}
    config.update({"GCR_USAGE_TRIGGER_AUTH": "google-oidc", "GCR_USAGE_TRIGGER_AUDIENCE": AUDIENCE,
                   "GCR_USAGE_TRIGGER_EMAILS": PUSHER, "GCR_USAGE_OIDC_JWKS_URL": fake.url + CERTS_PATH})
    headers = {"Authorization": f"Bearer {tokens.token(AUDIENCE, PUSHER)}"}
    fake.reset()
    port = stack_mod.free_port()
    argv, env = launch(port, config)
    child = stack_mod.spawn(name, argv, logdir, env)
    try:
        wait_listening(child, port)
        response_ms, retries = [], 0
        for _ in range(events):
            sent, status, body = post(port, event, headers)
            response_ms.append((time.monotonic_ns() - sent) * 1e-6)
            try:
                retries += component_ok(status, body)
            except RuntimeError as err:
                raise RuntimeError(f"{name}: {err}\n{child.tail()}") from None
    finally:
        child.stop()
    counts = collections.Counter(kind(method, path) for _, method, path in fake.after(0))
    return {"events": events, "key_set": counts["key set"], "token": counts["token"],
            "project_id": counts["project id"], "jobs_insert": counts["jobs.insert"], "retries": retries,
            "response_ms": response_ms, "response_median_ms": median(response_ms)}


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


def most_common(kinds: list[str]) -> str:
    """The usual first call, and how often it was first when it was not always."""
    if not kinds:
        return "-"
    (top, n), = collections.Counter(kinds).most_common(1)
    return top if n == len(kinds) else f"{top} ({n}/{len(kinds)})"


COLS = [("ready", "start->listening"), ("first", "request->1st out"), ("response", "request->response"),
        ("start_first", "start->1st out"), ("warm", "warm req->1st out"), ("warm_response", "warm req->resp")]
LABEL_WIDTH, WIDTH = 52, 18


def report(rows: dict[str, dict[str, float | None]], meta: Json) -> str:
    base = rows.get("d", {})
    head = f"{'':<5}{'host':<{LABEL_WIDTH}}" + "".join(f"{title:>{WIDTH}}" for _, title in COLS)
    lines = [head, "-" * len(head)]
    for key in ORDER:
        if key not in rows:
            continue
        row = rows[key]
        lines.append(f"{'(' + key + ')':<5}{LABELS[key]:<{LABEL_WIDTH}}"
                     + "".join(f"{fmt(row[c]):>{WIDTH}}" for c, _ in COLS))
        if key != "d":
            ratios = "".join(f"{ratio(row[c], base.get(c)):>{WIDTH}}" for c, _ in COLS)
            lines.append(f"{'':<{5 + LABEL_WIDTH}}" + ratios)
    lines.append("")
    lines.append("medians over the runs (warm: over every warm request); the line under each host is its ratio to")
    lines.append("(d), the seed, in this run (1/30 = 30 times less time). 'start->1st out' = process start to the")
    lines.append("first outbound call of the first request. Reuse on = serve.sh's default (1000 requests per")
    lines.append("instance); reuse off = SERVE_MAX_INSTANCE_REUSE_COUNT=1, a fresh instance per request.")
    lines.extend(textwrap.wrap(meta["note"], 100))
    # Without Spin, one line saying why; else the note on (e) and (f), wrapped like the one above.
    lines.extend([meta["spin_note"]] if meta["spin_unavailable"] else textwrap.wrap(meta["spin_note"], 100))
    lines.append("")
    lines.append("first outbound call (the usual one; 'n/m' when not always):")
    for key in ORDER:
        if key in meta["first_kinds"]:
            cold, warm = meta["first_kinds"][key]
            lines.append(f"  ({key}){'':<{4 - len(key)}}cold: {cold:<22} warm: {warm}")
    retried = ", ".join(f"({k}) {n}" for k, n in meta["retries"].items() if n)
    lines.append("transient failures the loader retried past (answers' retries.count): " + (retried or "none"))
    for last in sorted(set(RETRIED)):  # also from the throw-away starts and the fetch count
        lines.append(f"  retried after: {last[:200]}")
    return "\n".join(lines)


def reuse_report(rows: dict[str, dict[str, float | None]], warm: int) -> str:
    cols = [("warm", "warm req->1st out"), ("warm_response", "warm req->response")]
    head = (f"  {'component':<10}" + "".join(f"{title + ', off':>24}{'on':>11}{'on/off':>9}" for _, title in cols))
    lines = [f"Warm requests, instance reuse off vs on ({warm} warm requests after each cold one, same process;",
             "baseline: reuse off, i.e. (a') for .wasm and (b') for .cwasm, measured in the same run)", "",
             head, "  " + "-" * (len(head) - 2)]
    for on, off, name in (("a", "a'", ".wasm"), ("b", "b'", ".cwasm")):
        if on not in rows or off not in rows:
            continue
        cells = "".join(f"{fmt(rows[off][c]):>24}{fmt(rows[on][c]):>11}{ratio(rows[on][c], rows[off][c]):>9}"
                        for c, _ in cols)
        lines.append(f"  {name:<10}" + cells)
    spin = [key for key in SPIN_KEYS if key in rows]
    for key in spin:  # no reuse option: a fresh instance per request, i.e. the "off" column
        cells = "".join(f"{fmt(rows[key][c]):>24}{'n/a':>11}{'-':>9}" for c, _ in cols)
        lines.append(f"  {'Spin (' + key + ')':<10}" + cells)
    lines.append("")
    if spin:
        lines.append("Spin (e), (f): Spin 4 creates a fresh instance per request and has no reuse option, so its warm")
        lines.append("figures are reuse-off figures ('on': n/a). Against (b') (.cwasm, reuse off), same run:")
        base = rows.get("b'", {})
        for key in spin:
            lines.append(f"  ({key}) / (b'):  "
                         + ",  ".join(f"{title} {ratio(rows[key][c], base.get(c))}" for c, title in cols))
        lines.append("")
    lines.append("warm req->1st out: reuse off, the metadata token request (every fresh instance fetches it);")
    lines.append("reuse on, jobs.insert (the instance holds the token) -- a longer stretch of the loader's own")
    lines.append("work, so not like for like. warm req->response (the whole request) is the fair comparison.")
    return "\n".join(lines)


def per_100(count: int, events: int) -> str:
    value = count * 100 / events
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def fetch_report(fetches: dict[str, Json]) -> str:
    off, on, spin = fetches["off"], fetches["on"], fetches.get("spin")
    head = (f"  {'setting':<56}{'key-set fetches':>16}{'token fetches':>15}{'project id':>12}"
            f"{'req->response':>15}")
    hosts = "serve.sh + .cwasm; spin up" if spin else "serve.sh + .cwasm"
    lines = [f"Fetches per 100 events: one process per setting ({hosts}), {off['events']} sequential events",
             "  with GCR_USAGE_TRIGGER_AUTH=google-oidc (RS256 ID tokens; the key set is served with",
             f"  'Cache-Control: {CERTS_CACHE_CONTROL}'), GCR_USAGE_AUTH=metadata and the project id",
             "  from the metadata server (no GCR_USAGE_PROJECT); counted: the requests the fake received", "",
             head, "  " + "-" * (len(head) - 2)]
    settings = [("before: reuse off (SERVE_MAX_INSTANCE_REUSE_COUNT=1)", off),
                ("after:  reuse on (serve.sh default, 1000 per instance)", on)]
    if spin:
        settings.append(("spin up (e): a fresh instance per request, no reuse", spin))
    for label, f in settings:
        lines.append(f"  {label:<56}{per_100(f['key_set'], f['events']):>16}{per_100(f['token'], f['events']):>15}"
                     f"{per_100(f['project_id'], f['events']):>12}{fmt(f['response_median_ms']):>15}")
    lines.append(f"  {'after / before (request->response: median over the events)':<56}{'':>16}{'':>15}{'':>12}"
                 f"{ratio(on['response_median_ms'], off['response_median_ms']):>15}")
    if spin:
        lines.append(f"  {'spin up / before (request->response)':<56}{'':>16}{'':>15}{'':>12}"
                     f"{ratio(spin['response_median_ms'], off['response_median_ms']):>15}")
        lines.append("  spin up: the key set URL is <fake>/certs, on the fake's one origin, which spin.toml allows as")
        lines.append("  {{ gcr_usage_bigquery_endpoint }} (Google's own key set, https://www.googleapis.com, is listed")
        lines.append("  there for production); spin.toml is used as it is, not widened")
    for label, f in (("reuse off", off), ("reuse on", on), ("spin up", spin)):
        if f and (f["retries"] or f["jobs_insert"] != f["events"]):
            lines.append(f"  note: {label}: {f['jobs_insert']} jobs.insert for {f['events']} events, "
                         f"{f['retries']} retries reported")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="cold starts per host (default 10)")
    parser.add_argument("--warm", type=int, default=5, help="warm requests after each cold one (default 5)")
    parser.add_argument("--fetch-events", type=int, default=100,
                        help="google-oidc events per setting for the fetch count (default 100; 0 = skip)")
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
    spin_reason = stack_mod.spin_unavailable_reason()  # then (e), (f) are left out, the report says why
    wasm = stack_mod.wasm_path()
    cwasm = stack_mod.precompiled(wasm)
    event = EVENT.read_bytes()
    load_before = os.getloadavg()
    logdir = Path(tempfile.mkdtemp(prefix="gcr-usage-cold-start-"))
    samples: dict[str, list[Sample]] = {key: [] for key in ("a", "a'", "b", "b'", "d")}
    if not spin_reason:
        samples.update({key: [] for key in SPIN_KEYS})
    harness: Json | None = None
    fetches: dict[str, Json] = {}
    spin_findings: list[str] = []
    spin_logs = 0
    try:
        with FakeGoogle() as fake:
            hosts = [
                component_host("a", LABELS["a"], wasm, fake),
                component_host("a'", LABELS["a'"], wasm, fake, REUSE_OFF),
                component_host("b", LABELS["b"], cwasm, fake),
                component_host("b'", LABELS["b'"], cwasm, fake, REUSE_OFF),
                seed_host(fake, logdir / "home"),
            ]
            if not spin_reason:
                hosts += [spin_host(key, fake, logdir) for key in SPIN_KEYS]
            (logdir / "home").mkdir()
            # One throw-away start each: page cache and Python bytecode of the installed packages;
            # for (e), Spin's compile cache (a miss compiles and stores the artifact).
            for host in hosts:
                cold_sample(host, fake, event, 0, logdir)
            for run in range(args.runs):
                for host in hosts:
                    samples[host.key].append(cold_sample(host, fake, event, args.warm, logdir))
                print(f"  run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
            if args.fetch_events > 0:
                tokens = IdTokens()
                fake.jwks = tokens.jwks
                launches = {"off": serve_launch(cwasm, REUSE_OFF), "on": serve_launch(cwasm, {})}
                if not spin_reason:
                    launches["spin"] = spin_launch(logdir)
                for setting, launch in launches.items():
                    name = "fetches-spin" if setting == "spin" else f"fetches-reuse-{setting}"
                    fetches[setting] = fetch_count(launch, fake, tokens, event, args.fetch_events, logdir, name)
                print("  fetch count done", file=sys.stderr, flush=True)
        if args.harness_bin:
            harness = run_harness(args.harness_bin, args.runs, args.warm)
        if not spin_reason:
            spin_findings, spin_logs = spin_log_findings(logdir)
    except BaseException:
        print(f"logs kept in {logdir}", file=sys.stderr)
        raise
    shutil.rmtree(logdir, ignore_errors=True)
    load_after = os.getloadavg()

    rows: dict[str, dict[str, float | None]] = {}
    first_kinds: dict[str, tuple[str, str]] = {}
    for key, values in samples.items():
        rows[key] = {
            "ready": median([s.ready_ms for s in values]),
            "first": median([s.first_ms for s in values]),
            "response": median([s.response_ms for s in values]),
            "start_first": median([s.start_to_first_ms for s in values]),
            "warm": median([w for s in values for w in s.warm_ms]),
            "warm_response": median([w for s in values for w in s.warm_response_ms]),
        }
        first_kinds[key] = (most_common([s.first_kind for s in values]),
                            most_common([k for s in values for k in s.warm_kinds]))
    if harness:
        us = 1e-3
        group = args.warm + 1
        rows["c"] = {
            "ready": harness["prepare_us"] * us,
            "first": median([v * us for v in harness["first_us"]]),
            "response": median([v * us for i, v in enumerate(harness["total_us"]) if i % group == 0]),
            "start_first": None,
            "warm": median([v * us for v in harness["warm_us"]]),
            "warm_response": median([v * us for i, v in enumerate(harness["total_us"]) if i % group != 0]),
        }
        first_kinds["c"] = ("token", "token")  # a fresh instance per request
    spin = "-" if spin_reason else spin_version()
    wasmtime_version = subprocess.run([str(stack_mod.wasmtime_path()), "--version"], capture_output=True,
                                      text=True).stdout.strip()
    meta = {
        "runs": args.runs, "warm": args.warm, "fetch_events": args.fetch_events, "cpus": os.cpu_count(),
        "machine": platform.machine(), "loadavg_before": load_before, "loadavg_after": load_after,
        "wasmtime": wasmtime_version, "python": platform.python_version(), "wasm": str(wasm),
        "wasm_bytes": wasm.stat().st_size, "cwasm_bytes": cwasm.stat().st_size, "first_kinds": first_kinds,
        "spin": spin, "spin_wasm": str(stack_mod.SPIN_WASM), "spin_unavailable": spin_reason,
        "spin_wasm_bytes": None if spin_reason else stack_mod.SPIN_WASM.stat().st_size,
        "spin_log_findings": spin_findings,
        "retries": {key: sum(s.retries for s in values) for key, values in samples.items()},
        "note": ("(c) 'start -> listening' is the harness's one-time prepare (compile or cached artifact, link, "
                 "ProxyPre, one GET /healthz); a fresh instance per request, like reuse off; its samples include "
                 f"fuel metering and a ~{harness['check_us']:.0f} µs paused-clock check." if harness
                 else "(c) not run (no --harness-bin)."),
        "spin_note": (f"(e), (f) and Spin's fetch count not run: {spin_reason}" if spin_reason else
                      "(e), (f): Spin 4 has no instance reuse (a fresh instance per request), so they compare with the "
                      "reuse-off rows; (e) = spin up as a user runs it, Wasmtime's compile cache on by default "
                      "(~/.cache/wasmtime, filled by the throw-away start: each start loads the cached artifact); "
                      "(f) = --disable-cache, Cranelift compiles at each start like (a)."),
    }
    print()
    print(f"Cold start: request -> first outbound call ({args.runs} fresh processes per host, "
          f"{args.warm} warm requests after each)")
    print(f"  machine  {os.cpu_count()} CPUs ({platform.machine()}), load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (shared machine: other work runs beside this)")
    print(f"  hosts    {wasmtime_version}; Python {platform.python_version()}; component {wasm.stat().st_size} B "
          f".wasm, {cwasm.stat().st_size} B .cwasm"
          + ("" if spin_reason else f"; {spin}, Spin flavour {meta['spin_wasm_bytes']} B .wasm"))
    print("  upstream one fake metadata server + BigQuery on loopback "
          "(1st out = the first request it gets after the event is sent, whatever it is; listed below the table)")
    print()
    print(report(rows, meta))
    print()
    print(reuse_report(rows, args.warm))
    if fetches:
        print()
        print(fetch_report(fetches))
    if not spin_reason:
        print()
        print(f"Spin's logs ({spin_logs} files: spin up's output of every start, the component's stderr files): "
              f"{len(spin_findings)} line(s) mentioning an error, a warning, a panic, a failure or a denial"
              + (":" if spin_findings else ""))
        for line in sorted(set(spin_findings))[:10]:
            print(f"  {line[:200]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "medians": rows, "samples": {k: [s.__dict__ for s in v]
                                                                              for k, v in samples.items()},
                                     "harness": harness, "fetches": fetches}, indent=1) + "\n")
    print(f"\nevery sample: {args.json}")
    return 0


if __name__ == "__main__":
    stack_mod.stop_on_sigterm()
    sys.exit(main())
