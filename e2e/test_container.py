"""The Cloud Run container's command line, proven without Docker.

deploy/Dockerfile precompiles the component with ``deploy/serve.sh --compile`` and runs
``deploy/serve.sh`` as its ENTRYPOINT. These tests check that the Dockerfile really does that,
record the exact argv serve.sh execs (a stand-in "wasmtime" prints it; instance reuse included,
its SERVE_* settings kept from the component), and run that command line for real against the
emulators with a .cwasm compiled by the same script: /healthz, a fixture log loaded end to end,
bare JSON log lines, and the refusal of a .cwasm without ``--allow-precompiled``. (The rest of
the suite starts its loaders through serve.sh too.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import events
import expected
import stack as stack_mod
from conftest import require_loader, watched
from stack import Stack

DOCKERFILE = stack_mod.REPO_ROOT / "deploy" / "Dockerfile"
SERVE_SH = stack_mod.SERVE_SH
IMAGE_COMPONENT = "/app/gcr_usage_loader.cwasm"
DATASET = "container"
USAGE_LOG = next(f for f in expected.log_files() if f.kind == "usage")


# --- the Dockerfile runs serve.sh -------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def test_dockerfile_builds_precompiles_and_runs_serve_sh() -> None:
    build, run = stages()
    assert re.fullmatch(r"rust:1\.95-(slim-)?bookworm AS build", build[0][1]), build[0]
    assert run[0] == ("FROM", "debian:bookworm-slim"), "glibc runtime of the same Debian release"
    build_runs = [args for keyword, args in build if keyword == "RUN"]
    assert "rustup target add wasm32-wasip2" in build_runs
    assert "cargo install wasmtime-cli --version 48.0.8 --locked --root /opt/wasmtime" in build_runs
    assert any("cargo build" in r and "--package gcr-usage-loader" in r and "--target wasm32-wasip2" in r
               and "--profile component" in r for r in build_runs)
    # The precompile step is serve.sh's, so its flags match the serve command line.
    assert any(r.endswith("WASMTIME=/opt/wasmtime/bin/wasmtime deploy/serve.sh --compile "
                          f"target/wasm32-wasip2/component/gcr_usage_loader.wasm {IMAGE_COMPONENT}") for r in build_runs)
    copies = [args for keyword, args in run if keyword == "COPY"]
    assert f"--from=build {IMAGE_COMPONENT} {IMAGE_COMPONENT}" in copies
    assert "--from=build /opt/wasmtime/bin/wasmtime /usr/local/bin/wasmtime" in copies
    assert "deploy/serve.sh /app/serve.sh" in copies
    entrypoint = [json.loads(args) for keyword, args in run if keyword == "ENTRYPOINT"]
    assert entrypoint == [["/bin/bash", "/app/serve.sh"]]
    assert not [args for keyword, args in run if keyword == "CMD"], "no CMD: serve.sh's default component runs"
    assert ("USER", "gcr-usage") in run


def test_no_configuration_or_secret_is_baked_into_the_image() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword in ("ENV", "ARG"):
            assert "GCR_USAGE" not in args and "TOKEN" not in args.upper() and "KEY" not in args.upper(), args


# --- the argv serve.sh execs ------------------------------------------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A stand-in for wasmtime that writes its argv, one per line, and exits."""
    out = tmp_path / "argv"
    script = tmp_path / "wasmtime"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{out}"\n')
    script.chmod(0o755)
    return script


def recorded_argv(recorder: Path, env: dict[str, str], *args: str) -> list[str]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WASMTIME": str(recorder), **env}
    subprocess.run(["bash", str(SERVE_SH), *args], env=full, check=True, timeout=30)
    return (recorder.parent / "argv").read_text().splitlines()


def test_serve_command_line(recorder: Path) -> None:
    argv = recorded_argv(recorder, {"PORT": "9090", "GCR_USAGE_PROJECT": "p", "GCR_USAGE_BUCKETS": "b"})
    assert argv == ["serve", "--addr", "0.0.0.0:9090", "-C", "cache=n", "--allow-precompiled", "-Scli",
                    "--no-logging-prefix", "--max-instance-reuse-count", "1000", "--idle-instance-timeout", "120s",
                    "--env", "GCR_USAGE_BUCKETS", "--env", "GCR_USAGE_PROJECT", IMAGE_COMPONENT]


def test_instance_reuse_settings_are_serve_sh_s_own(recorder: Path) -> None:
    """SERVE_MAX_INSTANCE_REUSE_COUNT / SERVE_IDLE_INSTANCE_TIMEOUT replace the defaults and stay
    with serve.sh: the component is not handed them."""
    env = {"GCR_USAGE_BUCKETS": "b", "SERVE_MAX_INSTANCE_REUSE_COUNT": "1", "SERVE_IDLE_INSTANCE_TIMEOUT": "5s"}
    argv = recorded_argv(recorder, env)
    assert argv[argv.index("--no-logging-prefix"):argv.index("--env")] == [
        "--no-logging-prefix", "--max-instance-reuse-count", "1", "--idle-instance-timeout", "5s"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--env"] == ["GCR_USAGE_BUCKETS"]
    assert not [a for a in argv if "SERVE_" in a]
    # The suite's serve_env lets them through to serve.sh, and only to serve.sh.
    assert set(stack_mod.SERVE_SETTINGS) == {"SERVE_MAX_INSTANCE_REUSE_COUNT", "SERVE_IDLE_INSTANCE_TIMEOUT"}
    assert not any(stack_mod.passes_to_component(name) for name in stack_mod.SERVE_SETTINGS)
    assert stack_mod.serve_env(9090, env)["SERVE_MAX_INSTANCE_REUSE_COUNT"] == "1"


def test_port_defaults_to_8080_and_component_can_be_given(recorder: Path) -> None:
    argv = recorded_argv(recorder, {}, "/elsewhere/loader.wasm")
    assert argv[argv.index("--addr") + 1] == "0.0.0.0:8080"
    assert argv[-1] == "/elsewhere/loader.wasm"
    assert "--env" not in argv


def test_configuration_passes_by_name_only(recorder: Path) -> None:
    secret = "ya29.not-a-real-token"
    env = {"GCR_USAGE_TOKEN": secret, "GCR_USAGE_TRIGGER_AUTH": "cloud-run", "GCR_USAGE_EMPTY": "",
           "GCE_METADATA_HOST": "127.0.0.1:1", "HOME": "/home/x", "K_SERVICE": "gcr-usage",
           "OTHER_SECRET": "do-not-pass"}
    argv = recorded_argv(recorder, env)
    passed = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert sorted(passed) == ["GCE_METADATA_HOST", "GCR_USAGE_EMPTY", "GCR_USAGE_TOKEN", "GCR_USAGE_TRIGGER_AUTH"]
    assert not [a for a in argv if secret in a or "do-not-pass" in a], "values never on the command line"
    assert all(stack_mod.passes_to_component(name) for name in passed)


def test_compile_command_line(recorder: Path) -> None:
    argv = recorded_argv(recorder, {}, "--compile", "in.wasm", "out.cwasm")
    machine = os.uname().machine
    assert argv == ["compile", "-C", "cache=n", "--target", f"{machine}-unknown-linux-gnu", "-o", "out.cwasm", "in.wasm"]


# --- the command line, run against the emulators -----------------------------------------------


@pytest.fixture(scope="module")
def cwasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `serve.sh --compile` of the component (not the suite's cached copy)."""
    require_loader()
    return stack_mod.precompile(stack_mod.wasm_path(), tmp_path_factory.mktemp("cwasm") / "gcr_usage_loader.cwasm")


@pytest.fixture(scope="module")
def container(emulators: Stack, cwasm: Path) -> Iterator[Stack]:
    emulators.create_dataset(DATASET)
    with stack_mod.loader_only(emulators.bigquery_url, emulators.gcs_url, {"GCR_USAGE_DATASET": DATASET},
                               name="serve-sh-cwasm", component=cwasm) as running, watched(running):
        running.objects = emulators.objects
        yield running


def test_precompiled_artifact_is_not_a_wasm(cwasm: Path) -> None:
    assert cwasm.read_bytes()[:4] == b"\x7fELF"  # what --allow-precompiled is about


def test_container_serves_healthz_from_the_cwasm(container: Stack) -> None:
    answer = events.get(container.loader_url, "/healthz")
    assert (answer.status, answer.json()) == (200, {"status": "ok"})


def test_container_loads_a_fixture_log_end_to_end(container: Stack, emulators: Stack) -> None:
    name = USAGE_LOG.object
    answer = events.deliver(container.loader_url, "cloudevent-binary",
                            events.make_event("cloudevent-binary", container.objects[name]))
    body = answer.json()
    assert answer.status == 200, body
    assert (body["outcome"], body["rows"]) == ("loaded", USAGE_LOG.data_rows), body
    assert body["destination"] == f"{emulators.project}:{DATASET}.usage"
    rows = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{DATASET}.usage`")
    assert int(rows[0]["n"]) == USAGE_LOG.data_rows
    # --no-logging-prefix: the event's log line is a bare JSON object on its own line.
    child = next(c for c in container.children if c.name == "serve-sh-cwasm")
    lines = [json.loads(line) for line in child.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("outcome") == "loaded" and line.get("jobId") == body["jobId"] for line in lines), lines


def test_cwasm_is_refused_without_allow_precompiled(cwasm: Path, recorder: Path) -> None:
    argv = recorded_argv(recorder, {"PORT": str(stack_mod.free_port()), "GCR_USAGE_BUCKETS": "b"}, str(cwasm))
    assert "--allow-precompiled" in argv
    without = [str(stack_mod.wasmtime_path())] + [a for a in argv if a != "--allow-precompiled"]
    done = subprocess.run(without, env={"GCR_USAGE_BUCKETS": "b", "PATH": os.environ.get("PATH", "")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "requires the `--allow-precompiled` flag" in done.stderr, done.stderr


def test_serve_sh_also_runs_a_plain_wasm(emulators: Stack) -> None:
    require_loader()
    with stack_mod.loader_only(emulators.bigquery_url, emulators.gcs_url, name="serve-sh-wasm",
                               component=stack_mod.wasm_path()) as running:
        answer = events.get(running.loader_url, "/healthz")
        assert (answer.status, answer.json()) == (200, {"status": "ok"})
