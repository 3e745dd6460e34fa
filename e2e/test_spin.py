"""The Spin flavour under a real `spin up`, beside the portable build under `wasmtime serve`.

Both hosts get the same corpus of requests, byte for byte, in the same order, against the same
emulators and the same log objects, once per mode (raw, classified, both): every event shape,
usage, storage and audit-log sink objects, redeliveries, the same object through other shapes,
an event without a generation, bad input of every kind the loader refuses, and a classified log
large enough to travel in many upload chunks. Spin starts from the repository's own spin.toml,
configured only by `--variable` (its `allowed_outbound_hosts` are the endpoint variables, so
pointing the loader at the emulators allows exactly their origins).

What must be identical: the status and JSON answer of every request, every BigQuery request
the loader made (method, path, Content-Range: recorded by a pass-through proxy in front of
local-bigquery, which shows the large log's upload in its chunks), and every loaded table
(schema and rows). Each host loads into its own dataset (`serve_<mode>`, `spin_<mode>`), and a
job id hashes its destination, so answers are compared with the dataset's name and the job id's
16-hex-digit destination hash masked; everything else is compared as is. Each case also has an
expected status and outcome, so the two hosts agreeing on a failure would still fail the test.

Spin is found as ``stack.spin_binary`` says (SPIN, ../shared/tools/spin, `spin` on PATH); without
one these tests are skipped with the reason (failed under GCR_USAGE_E2E_STRICT=1, as in CI).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import events
import expected
import stack as stack_mod
from capture import CaptureServer
from chaos_proxy import ChaosProxy
from conftest import require_loader, require_spin, watched
from sqlrun import image_pulls
from stack import Stack, loader_only, spin_only

MODES = ("raw", "classified", "both")
BUCKET = "spin-corpus-logs"
OTHER_BUCKET = "other-team-logs"
LOGS = events.REPO_ROOT / "fixtures" / "logs"
SINK = events.REPO_ROOT / "fixtures" / "audit" / "sink"
AUDIT_OBJECTS = [
    "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json",
    "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_A1:1720140000.json",
]
LARGE = "accessLog_usage_2024_03_11_18_00_00_03cbe51e4b703105e9_v0"
LARGE_ROWS = 4000
BROKEN = "accessLog_usage_2024_03_11_17_00_00_0badc0de_v0"
CSV_AS_SINK = "cloudaudit.googleapis.com/data_access/2024/07/05/00:00:00_00:59:59_S0.json"
CHUNK_KIB = 256

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the log objects of the corpus


def large_usage_log() -> bytes:
    """A usage log of LARGE_ROWS registry requests: the first fixture's rows again and again, each
    copy with its own request id and time, so none is a duplicate of another."""
    source = (LOGS / "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0").read_text()
    header, *rows = list(csv.reader(io.StringIO(source)))
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    time_col, id_col = header.index("time_micros"), header.index("s_request_id")
    for n in range(LARGE_ROWS):
        row = list(rows[n % len(rows)])
        row[time_col] = str(int(row[time_col]) + n)
        row[id_col] = f"{row[id_col][:40]}{n:08d}"
        writer.writerow(row)
    return out.getvalue().encode()


def broken_usage_log() -> bytes:
    """A usage log BigQuery cannot load: its time_micros is not a number (a raw load fails)."""
    header = (LOGS / "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0").read_bytes().splitlines()[0]
    bad_row = (b'"not-a-number","192.0.2.1","1","","GET","/b/o","200","0","1","1","storage.googleapis.com",'
               b'"","ua","r1","GET_Object","b","o"')
    return header + b"\n" + bad_row + b"\n"


@pytest.fixture(scope="module")
def objects(emulators: Stack) -> dict[str, Json]:
    """The corpus bucket: every fixture log, both audit sink objects, the large and the broken
    log, a CSV under a sink object's name, and a note; and the other team's bucket."""
    emulators.create_bucket(BUCKET)
    emulators.create_bucket(OTHER_BUCKET)
    files = {p.name: p.read_bytes() for p in stack_mod.fixture_log_files()}
    files.update({name: (SINK / name).read_bytes() for name in AUDIT_OBJECTS})
    files.update({LARGE: large_usage_log(), BROKEN: broken_usage_log(), CSV_AS_SINK: files[sorted(files)[0]],
                  "notes/README.txt": b"not a log\n"})
    uploaded = {name: emulators.upload(BUCKET, name, data) for name, data in files.items()}
    first = stack_mod.fixture_log_files()[0]
    uploaded["other-team"] = emulators.upload(OTHER_BUCKET, first.name, first.read_bytes())
    return uploaded


# ---------------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class Case:
    label: str
    request: events.Request
    # mode -> (status, outcome): what the answer must be; the outcome is checked when not None.
    expect: dict[str, tuple[int, str | None]]


def every_mode(status: int, outcome: str | None) -> dict[str, tuple[int, str | None]]:
    return dict.fromkeys(MODES, (status, outcome))


LOADS = [p.name for p in stack_mod.fixture_log_files()] + AUDIT_OBJECTS + [LARGE]
STORAGE_LOG = next(name for name in LOADS if "_storage_" in name)


def corpus(objects: dict[str, Json]) -> list[Case]:
    """Every request of the comparison, built once: both hosts get the same bytes."""
    shapes = list(events.SHAPES)
    cases: list[Case] = []
    first: dict[str, events.Request] = {}
    for i, name in enumerate(LOADS):  # every shape carries some log, in turn
        shape = shapes[i % len(shapes)]
        request = events.to_request(shape, events.make_event(shape, objects[name], event_id=f"{100 + i}"))
        first[name] = request
        cases.append(Case(f"first {shape} {name[-24:]}", request, every_mode(200, "loaded")))
    for name in LOADS:
        cases.append(Case(f"redelivery {name[-24:]}", first[name], every_mode(200, "duplicate")))
    name = LOADS[0]
    for shape in shapes:
        event = events.make_event(shape, objects[name], event_id="900")
        cases.append(Case(f"again through {shape}", events.to_request(shape, event), every_mode(200, "duplicate")))

    def bare(body: object) -> events.Request:
        return events.Request({"content-type": "application/json"}, json.dumps(body).encode())

    cases += [
        Case("no generation: asks Storage, same job", bare({"bucket": BUCKET, "name": name}),
             every_mode(200, "duplicate")),
        Case("object that does not exist", bare({"bucket": BUCKET, "name": name.replace("_14_", "_23_")}),
             every_mode(400, None)),
        Case("not a log object", events.to_request("bare-object", objects["notes/README.txt"]),
             every_mode(200, "ignored")),
        Case("bucket outside the allow-list",
             events.to_request("cloudevent-binary", events.make_event("cloudevent-binary", objects["other-team"],
                                                                      event_id="901")),
             every_mode(403, None)),
        Case("a log BigQuery cannot load", events.to_request("bare-object", objects[BROKEN]),
             {"raw": (422, "failed"), "classified": (200, "loaded"), "both": (422, "failed")}),
        Case("a CSV under a sink object's name", events.to_request("bare-object", objects[CSV_AS_SINK]),
             every_mode(400, None)),
        Case("malformed JSON", events.Request({"content-type": "application/json"}, b"{not json"),
             every_mode(400, None)),
        Case("a JSON array", events.Request({"content-type": "application/json"}, b"[]"), every_mode(400, None)),
        Case("Pub/Sub data not base64", events.Request({"content-type": "application/json"},
                                                       b'{"message":{"data":"%%%"}}'), every_mode(400, None)),
    ]
    deleted = events.make_event("cloudevent-binary", objects[LOADS[1]], event_id="902")
    deleted["headers"]["ce-type"] = "google.cloud.storage.object.v1.deleted"
    cases.append(Case("a delete notification", events.to_request("cloudevent-binary", deleted),
                      every_mode(200, "ignored")))
    return cases


# ---------------------------------------------------------------------------------------------
# playing it on both hosts


@dataclass
class Played:
    mode: str
    datasets: dict[str, str]  # host -> dataset
    answers: dict[str, list[tuple[int, object]]]  # host -> (status, parsed body) per case
    cases: list[Case]
    logs: dict[str, str]  # host -> everything its process printed
    wire: dict[str, list[tuple[str, str, str, str]]]  # host -> (kind, method, path, Content-Range) to BigQuery


JOB_HASH = re.compile(r"(gcr_usage(?:_events)?_[A-Za-z0-9_-]*_g[0-9a-z]+)_[0-9a-f]{16}((?:_r\d+)?)\b")


def masked(body: object, dataset: str) -> object:
    """The answer with what depends on the destination dataset masked: its name, and the job
    id's hash of the destination (the readable part and the generation stay)."""
    text = json.dumps(body, sort_keys=True)
    text = text.replace(f":{dataset}.", ":<dataset>.").replace(f'"{dataset}"', '"<dataset>"')
    return json.loads(JOB_HASH.sub(r"\1_<destination-hash>\2", text))


UPLOAD_ID = re.compile(r"upload_id=[^&]+")


def wire_of(proxy: ChaosProxy, dataset: str) -> list[tuple[str, str, str, str]]:
    """The BigQuery requests the proxy saw, masked like the answers (and the upload ids, which
    the emulator draws)."""
    def mask(path: str) -> str:
        return str(masked(UPLOAD_ID.sub("upload_id=<id>", path), dataset)).replace(f"/{dataset}/", "/<dataset>/")

    return [(r.kind, r.method, mask(r.path), r.content_range) for r in proxy.records()]


def play(url: str, cases: list[Case]) -> list[tuple[int, object]]:
    out = []
    for case in cases:
        answer = events.post(url, case.request)
        try:
            body: object = answer.json()
        except ValueError:
            body = answer.body.decode(errors="replace")
        out.append((answer.status, body))
    health = events.get(url, "/healthz")
    out.append((health.status, health.json()))
    return out


@pytest.fixture(scope="module", params=MODES)
def played(request: pytest.FixtureRequest, emulators: Stack, objects: dict[str, Json]) -> Iterator[Played]:
    require_loader()
    require_spin()
    mode = request.param
    cases = corpus(objects)
    datasets = {"serve": f"serve_{mode}", "spin": f"spin_{mode}"}
    answers, logs, wire = {}, {}, {}
    for host, dataset in datasets.items():
        emulators.create_dataset(dataset)
        overrides = {"GCR_USAGE_MODE": mode, "GCR_USAGE_DATASET": dataset, "GCR_USAGE_BUCKETS": BUCKET,
                     "GCR_USAGE_UPLOAD_CHUNK_KIB": str(CHUNK_KIB)}
        start = loader_only if host == "serve" else spin_only
        # No faults: a recorder in front of local-bigquery (it also serialises the emulator).
        with ChaosProxy(emulators.bigquery_url, seed=0, rates={}) as proxy, \
                start(proxy.url, emulators.gcs_url, overrides, name=f"{host}-{mode}") as running, watched(running):
            answers[host] = play(running.loader_url, cases)
            logs[host] = "\n".join(child.log_path.read_text(errors="replace") for child in running.children)
            wire[host] = wire_of(proxy, dataset)
    yield Played(mode, datasets, answers, cases, logs, wire)


# ---------------------------------------------------------------------------------------------
# the tests


def test_every_event_shape_and_source_is_in_the_corpus(objects: dict[str, Json]) -> None:
    labels = " ".join(c.label for c in corpus(objects))
    assert all(f"first {shape} " in labels for shape in events.SHAPES)
    assert any(name.startswith("cloudaudit.googleapis.com/") for name in LOADS)
    assert any("_storage_" in name for name in LOADS)


def test_each_answer_is_as_expected_on_both_hosts(played: Played) -> None:
    for host, answers in played.answers.items():
        for case, (status, body) in zip(played.cases, answers, strict=False):
            want_status, want_outcome = case.expect[played.mode]
            got_outcome = body.get("outcome") if isinstance(body, dict) else None
            assert status == want_status, (host, played.mode, case.label, body)
            if want_outcome is not None:
                assert got_outcome == want_outcome, (host, played.mode, case.label, body)
        assert answers[-1] == (200, {"status": "ok"}), host


def test_no_request_needed_a_retry(played: Played) -> None:
    """Nothing in front of the emulators injects faults: a retry would be a spurious failure of
    the host's HTTP client (as "writing the request body: stream closed" once was)."""
    for host, answers in played.answers.items():
        retried = [(case.label, body) for case, (_, body) in zip(played.cases, answers, strict=False)
                   if isinstance(body, dict) and (body.get("retries") or (body.get("events") or {}).get("retries"))]
        assert retried == [], (host, played.mode)


def test_both_hosts_give_identical_answers(played: Played) -> None:
    serve = [(s, masked(b, played.datasets["serve"])) for s, b in played.answers["serve"]]
    spin = [(s, masked(b, played.datasets["spin"])) for s, b in played.answers["spin"]]
    assert len(serve) == len(spin) == len(played.cases) + 1
    for case, a, b in zip([*played.cases, None], serve, spin, strict=True):
        assert a == b, (played.mode, case.label if case else "healthz")


def test_both_hosts_sent_bigquery_the_same_requests(played: Played) -> None:
    assert played.wire["serve"], "the proxy saw nothing"
    assert played.wire["serve"] == played.wire["spin"], played.mode


def test_the_large_log_went_up_in_many_chunks(played: Played) -> None:
    """Classified and both: the large log's events in many upload chunks. Raw mode has BigQuery
    read the CSVs from Cloud Storage; only the audit-log objects (events whatever the mode) are
    uploaded, in one chunk each."""
    for host, wire in played.wire.items():
        if played.mode == "raw":
            assert not any(kind == "upload.chunk" for kind, *_ in wire), (host, wire)
            continue
        ranges = [r for kind, _, _, r in wire if kind.startswith("upload.") and r]
        # 4,000 events are over 2 MiB of NDJSON: at 256 KiB a chunk, at least 8 chunks.
        assert sum(1 for kind, *_ in wire if kind == "upload.chunk") >= 8, (host, ranges)
        assert any(r.startswith(f"bytes {CHUNK_KIB * 1024}-") for r in ranges), (host, ranges)


def table_rows(emulators: Stack, dataset: str, table: str) -> list[str]:
    rows = emulators.query(f"SELECT * FROM `{emulators.project}.{dataset}.{table}`")
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def test_both_hosts_loaded_identical_tables(played: Played, emulators: Stack) -> None:
    serve, spin = played.datasets["serve"], played.datasets["spin"]
    loaded = 0
    for table in ("usage", "storage", "registry_events"):
        emulators.dataset, here = serve, emulators.dataset
        try:
            a = emulators.table(table)
            emulators.dataset = spin
            b = emulators.table(table)
        finally:
            emulators.dataset = here
        assert (a is None) == (b is None), (played.mode, table)
        if a is None or b is None:
            continue
        assert a["schema"] == b["schema"], (played.mode, table)
        rows = table_rows(emulators, serve, table)
        assert rows == table_rows(emulators, spin, table), (played.mode, table)
        loaded += len(rows)
    assert loaded > LARGE_ROWS if played.mode != "raw" else loaded > 0


def component_log(played: Played, host: str) -> list[object]:
    """The component's log lines as the host printed them (one JSON object a line), masked like
    the answers and without their timing (durationMs)."""
    lines = [json.loads(line) for line in played.logs[host].splitlines() if line.startswith("{")]
    return [masked({k: v for k, v in line.items() if k != "durationMs"}, played.datasets[host]) for line in lines]


def test_both_hosts_logged_the_same_lines(played: Played) -> None:
    """Spin prints the component's stdout/stderr on its own stderr (and in its log directory),
    serve.sh on its stdout: the same JSON lines, one object a line, each with a severity."""
    serve, spin = component_log(played, "serve"), component_log(played, "spin")
    assert len(spin) >= len(played.cases), played.logs["spin"][-2000:]
    assert all("severity" in line for line in spin)
    assert spin == serve, played.mode


# ---------------------------------------------------------------------------------------------
# Spin's own behaviour, with the repository's spin.toml


def spin_output(running: Stack) -> str:
    """Everything Spin wrote: its stdout/stderr and the component logs in its log directory."""
    parts = [child.log_path.read_text(errors="replace") for child in running.children]
    parts += [p.read_text(errors="replace") for p in running.logdir.rglob("*") if p.is_file() and p.suffix == ".txt"]
    return "\n".join(parts)


def bare_event(objects: dict[str, Json], name: str) -> events.Request:
    return events.to_request("bare-object", objects[name])


def test_spin_build_works_from_the_repository_root() -> None:
    """`spin build` runs spin.toml's build command from the repository root and leaves the Spin
    flavour where the manifest's `source` says (cargo finds it up to date after cargo xtask)."""
    require_spin()
    binary, _ = stack_mod.spin_binary()
    done = subprocess.run([str(binary), "build"], cwd=stack_mod.REPO_ROOT, env=stack_mod.spin_env(),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--features spin --target-dir target/spin" in done.stdout + done.stderr
    assert stack_mod.SPIN_WASM.is_file()


def test_a_required_variable_without_a_value_stops_spin_up(emulators: Stack, tmp_path: Path) -> None:
    """gcr_usage_buckets has no default: Spin refuses to start rather than serve a loader that
    would answer 500, and says which variable."""
    require_spin()
    variables = stack_mod.spin_variables(stack_mod.loader_env(emulators))
    del variables["gcr_usage_buckets"]
    done = subprocess.run(stack_mod.spin_up_argv(stack_mod.free_port(), variables, tmp_path),
                          env=stack_mod.spin_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'no provider resolved required variable(s): [Key("gcr_usage_buckets")]' in done.stderr, done.stderr


def test_variables_come_from_the_command_line_then_the_environment_then_the_defaults(
        emulators: Stack, objects: dict[str, Json]) -> None:
    """As the README says: `--variable` wins over SPIN_VARIABLE_*, which wins over spin.toml's
    default; an empty value counts as unset, and the component then reads its environment
    variable (`spin up --env`)."""
    require_spin()
    emulators.create_dataset("spin_from_flag")
    emulators.create_dataset("spin_from_env")
    environment = {"SPIN_VARIABLE_GCR_USAGE_DATASET": "spin_from_env",
                   "SPIN_VARIABLE_GCR_USAGE_USAGE_TABLE": "usage_from_env"}
    # the dataset from both (the flag wins), the usage table from the environment only
    with spin_only(emulators.bigquery_url, emulators.gcs_url,
                   {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_DATASET": "spin_from_flag"},
                   name="spin-variables", spin_environment=environment) as running, watched(running):
        usage = events.post(running.loader_url, bare_event(objects, LOADS[0])).json()
    assert usage["destination"] == f"{emulators.project}:spin_from_flag.usage_from_env", usage

    with spin_only(emulators.bigquery_url, emulators.gcs_url,
                   {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_DATASET": "spin_from_flag",
                    "GCR_USAGE_STORAGE_TABLE": ""},
                   name="spin-variables-empty", spin_environment={"SPIN_VARIABLE_GCR_USAGE_STORAGE_TABLE": "unused"},
                   component_env={"GCR_USAGE_STORAGE_TABLE": "storage_from_component_env"}) as running, \
            watched(running):
        storage = events.post(running.loader_url, bare_event(objects, STORAGE_LOG)).json()
    # Empty on the command line: that is the value (SPIN_VARIABLE_* is not consulted), and empty
    # counts as unset, so the component reads its own environment variable.
    assert storage["destination"] == f"{emulators.project}:spin_from_flag.storage_from_component_env", storage
    # and spin.toml's defaults for what nobody set: mode raw (no events), the location US
    assert "events" not in usage and "events" not in storage


def test_an_origin_spin_does_not_allow_is_answered_503_at_once(emulators: Stack, objects: dict[str, Json]) -> None:
    """A service-account key whose token_uri is not in allowed_outbound_hosts: Spin refuses the
    request (nothing reaches that server), and the loader answers 503 naming the origin and the
    manifest entry to add, without spending its retry budget."""
    require_spin()
    with CaptureServer() as token_server:
        key = service_account_key(f"{token_server.url}/token")
        overrides = {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_AUTH": "service-account",
                     "GCR_USAGE_SA_KEY": json.dumps(key), "GCR_USAGE_WAIT_SECONDS": "30"}
        with spin_only(emulators.bigquery_url, emulators.gcs_url, overrides, name="spin-denied") as running, \
                watched(running):
            answer = events.post(running.loader_url, bare_event(objects, LOADS[0]))
            output = spin_output(running)
        assert token_server.requests == []
    body = answer.json()
    assert (answer.status, body.get("error")) == (503, "upstream-unavailable"), body
    assert f"the host refused to send a request to {token_server.url} (ErrorCode::HttpRequestDenied)" in body["reason"]
    assert f'add "{token_server.url}"' in body["reason"] and "allowed_outbound_hosts" in body["reason"]
    assert "retries" not in body, body
    assert key["private_key"].splitlines()[1] not in output


def test_an_endpoint_variable_that_is_not_an_origin_makes_spin_refuse_everything(
        emulators: Stack, objects: dict[str, Json]) -> None:
    """spin.toml's allowed hosts are made from the endpoint variables: one set to "" is no valid
    entry, and Spin then refuses every outbound request, even to origins the list allows."""
    require_spin()
    overrides = {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_STORAGE_ENDPOINT": ""}
    with spin_only(emulators.bigquery_url, emulators.gcs_url, overrides, name="spin-empty-endpoint") as running, \
            watched(running):
        answer = events.post(running.loader_url, bare_event(objects, LOADS[0]))
    body = answer.json()
    assert (answer.status, body.get("error")) == (503, "upstream-unavailable"), body
    assert f"the host refused to send a request to {emulators.bigquery_url}" in body["reason"], body
    assert "empty or not an origin" in body["reason"], body


def test_secrets_never_appear_in_spin_output(emulators: Stack, objects: dict[str, Json]) -> None:
    """A bearer token (from SPIN_VARIABLE_*) and a trigger secret (from --variable), used for a
    load and for refused events: neither shows in anything Spin printed or logged."""
    require_spin()
    token = "ya29.spin-token-" + "7" * 40
    secret = "trigger-secret-" + "5" * 24
    overrides = {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_AUTH": "token", "GCR_USAGE_PROJECT": emulators.project,
                 "GCR_USAGE_TRIGGER_AUTH": "shared-secret", "GCR_USAGE_TRIGGER_SECRET": secret}
    with CaptureServer() as bigquery, \
            spin_only(bigquery.url, emulators.gcs_url, overrides, name="spin-secrets",
                      spin_environment={"SPIN_VARIABLE_GCR_USAGE_TOKEN": token}) as running, watched(running):
        request = bare_event(objects, LOADS[0])
        signed = events.Request({**request.headers, "X-Gcr-Usage-Token": secret}, request.body)
        loaded = events.post(running.loader_url, signed)
        wrong = events.post(running.loader_url, events.Request({**request.headers, "X-Gcr-Usage-Token": "x" * 20},
                                                               request.body))
        missing = events.post(running.loader_url, request)
        output = spin_output(running)
    assert loaded.status == 200, loaded.body
    assert (wrong.status, missing.status) == (401, 401), (wrong.body, missing.body)
    assert bigquery.requests and all(r.headers.get("authorization") == f"Bearer {token}" for r in bigquery.requests)
    assert output.strip(), "Spin printed nothing at all: the check would be empty"
    for value in (token, secret):
        assert value not in output
        assert value not in (loaded.body + wrong.body + missing.body).decode()


def service_account_key(token_uri: str) -> Json:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "demo-project", "private_key_id": "spin-test-key",
            "private_key": pem, "client_email": "loader@demo-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": token_uri}


README_BLOCK = re.compile(r"<!-- spin-up: run by e2e/test_spin.py -->\s*```sh\n(.*?)```\s*<!-- /spin-up -->", re.S)


def readme_commands() -> list[list[str]]:
    """The commands of README.md's `spin up` block, one argv each (continuations joined)."""
    match = README_BLOCK.search((stack_mod.REPO_ROOT / "README.md").read_text())
    assert match, "README.md: no <!-- spin-up --> block"
    return [shlex.split(line) for line in match.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_spin_up(tmp_path: Path) -> None:
    """README's "Deploying to Spin" block, run as written on emulators set up as the demo sets
    them up: only the port, the two endpoints' addresses and Spin's state directory differ."""
    require_spin()
    build, up = readme_commands()
    assert build == ["spin", "build"]  # run by test_spin_build_works_from_the_repository_root
    assert up[:2] == ["spin", "up"], up
    binary, _ = stack_mod.spin_binary()
    with stack_mod.stack(with_loader=False) as running, watched(running):
        addresses = {"gcr_usage_bigquery_endpoint": running.bigquery_url, "gcr_usage_storage_endpoint": running.gcs_url}
        argv, variables = [str(binary), "up"], {}
        args = iter(up[2:])
        for arg in args:
            value = next(args)
            if arg == "--listen":
                port = stack_mod.free_port()
                value = f"127.0.0.1:{port}"
            elif arg == "--variable":
                name, _, given = value.partition("=")
                variables[name] = given
                value = f"{name}={addresses.get(name, given)}"
            argv += [arg, value]
        assert set(addresses) <= set(variables), variables
        assert (variables["gcr_usage_buckets"], variables["gcr_usage_project"]) == (running.bucket, running.project)
        argv += ["--state-dir", str(tmp_path), "--log-dir", str(tmp_path / "logs")]
        child = stack_mod.spawn("readme-spin-up", argv, running.logdir, stack_mod.spin_env())
        running.children.append(child)
        url = f"http://127.0.0.1:{port}"
        stack_mod.wait_until(child, stack_mod.answers_200(f"{url}/healthz"), 180, "GET /healthz = 200")
        for entry in expected.log_files():
            answer = events.deliver(url, "cloudevent-binary",
                                    events.make_event("cloudevent-binary", running.objects[entry.object]))
            body = answer.json()
            assert (answer.status, body.get("outcome"), body.get("rows")) == (200, "loaded", entry.data_rows), body
            if entry.kind == "usage":  # gcr_usage_mode=both: the events too
                assert body["events"]["outcome"] == "loaded", body
        running.loader_url = url
        assert image_pulls(running) == expected.image_pulls()


def test_the_demo_runs_under_spin() -> None:
    """`cargo xtask demo --spin` (e2e/demo.py --spin): the whole demo with the Spin flavour."""
    require_spin()
    done = subprocess.run([sys.executable, str(stack_mod.REPO_ROOT / "e2e" / "demo.py"), "--spin"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " up --from " in done.stdout and "--variable gcr_usage_bigquery_endpoint=http://127.0.0.1:" in done.stdout
    assert "OK: every log loaded once" in done.stdout


# ---------------------------------------------------------------------------------------------
# the harness's imitation of Spin, held to the real one


@functools.cache
def spin_policy() -> Path:
    """host-test's `spin_policy` binary (what the harness's Spin imitation decides):
    GCR_USAGE_SPIN_POLICY (cargo xtask test builds it), else built here."""
    configured = os.environ.get("GCR_USAGE_SPIN_POLICY")
    if configured:
        return Path(configured)
    subprocess.run(["cargo", "build", "-q", "-p", "gcr-usage-host-test", "--bin", "spin_policy"],
                   cwd=stack_mod.REPO_ROOT, check=True, timeout=1800)
    meta = subprocess.run(["cargo", "metadata", "-q", "--format-version", "1", "--no-deps"], cwd=stack_mod.REPO_ROOT,
                          check=True, capture_output=True, text=True, timeout=300)
    return Path(json.loads(meta.stdout)["target_directory"]) / "debug" / "spin_policy"


ALLOWED_HOSTS_BLOCK = re.compile(r"^allowed_outbound_hosts = \[.*?^\]$", re.S | re.M)
SOURCE_LINE = re.compile(r'^source = "(?P<path>[^"]+)"$', re.M)


def derived_manifest(entries: list[str], directory: Path) -> Path:
    """The repository's spin.toml with only `allowed_outbound_hosts` replaced (and `source`
    made absolute, since the copy lives elsewhere)."""
    text = stack_mod.SPIN_MANIFEST.read_text()
    assert ALLOWED_HOSTS_BLOCK.search(text) and SOURCE_LINE.search(text), "spin.toml changed shape"
    text = ALLOWED_HOSTS_BLOCK.sub(lambda _: f"allowed_outbound_hosts = {json.dumps(entries)}", text, count=1)
    text = SOURCE_LINE.sub(lambda m: f'source = "{stack_mod.REPO_ROOT / m["path"]}"', text, count=1)
    path = directory / "spin.toml"
    path.write_text(text)
    return path


# (allowed_outbound_hosts, extra variables): {port} is the capture server's port.
POLICY_CASES: list[tuple[list[str], dict[str, str]]] = [
    (["http://127.0.0.1:{port}"], {}),
    (["http://127.0.0.1"], {}),  # port 80 only
    (["https://127.0.0.1:{port}"], {}),  # another scheme
    (["http://localhost:{port}"], {}),  # a name is not its address
    (["http://127.0.0.0/8:{port}"], {}),  # a CIDR block
    (["http://*:{port}"], {}),
    (["*://127.0.0.1:*"], {}),
    (["http://127.0.0.1:1..{port}"], {}),  # a range excludes its end
    (["http://127.0.0.1:1..65535"], {}),
    (["{{ gcr_usage_bigquery_endpoint }}"], {}),
    (["http://127.0.0.1:{port}", "{{ gcr_usage_storage_endpoint }}"], {"gcr_usage_storage_endpoint": ""}),
    (["http://127.0.0.1:{port}", "{{ gcr_usage_storage_endpoint }}"], {"gcr_usage_storage_endpoint": "http://x/y"}),
    (["http://127.0.0.1:{port}", "{{ no_such_variable }}"], {}),
    (["http://127.0.0.1:{port}/path"], {}),  # not a valid entry: spin up refuses to start
    (["http://127.0.0.1:{port}", "https://{{ gcr_usage_storage_endpoint }}"], {}),  # defaults give no entry
]


@pytest.mark.parametrize("case", range(len(POLICY_CASES)))
def test_the_harness_decides_outbound_requests_as_spin_does(case: int, tmp_path: Path,
                                                              objects: dict[str, Json]) -> None:
    """One manifest derived from spin.toml per case, run by a real `spin up` (a raw load whose
    BigQuery endpoint is a local capture server) and asked of the harness's imitation
    (`spin_policy`): whether Spin starts, and whether it lets the request out, must agree."""
    require_spin()
    with CaptureServer() as bigquery:
        port = bigquery.url.rsplit(":", 1)[1]
        entries = [e.replace("{port}", port) for e in POLICY_CASES[case][0]]
        manifest = derived_manifest(entries, tmp_path)
        # Only what the case needs: Spin's defaults for the rest (the storage endpoint's included).
        variables = {"gcr_usage_buckets": BUCKET, "gcr_usage_project": "demo-project", "gcr_usage_auth": "none",
                     "gcr_usage_bigquery_endpoint": bigquery.url, "gcr_usage_wait_seconds": "5",
                     **POLICY_CASES[case][1]}
        imitation = json.loads(subprocess.run(
            [str(spin_policy()), str(manifest), f"{bigquery.url}/bigquery/v2/projects/demo-project/jobs",
             *(f"{k}={v}" for k, v in variables.items())], check=True, capture_output=True, text=True).stdout)
        argv = stack_mod.spin_up_argv(stack_mod.free_port(), variables, tmp_path / "state", manifest=manifest)
        port_arg = int(argv[argv.index("--listen") + 1].rsplit(":", 1)[1])
        child = stack_mod.spawn("spin-policy", argv, tmp_path, stack_mod.spin_env())
        try:
            url = f"http://127.0.0.1:{port_arg}"
            started = True
            try:
                stack_mod.wait_until(child, stack_mod.answers_200(f"{url}/healthz"), 180, "GET /healthz = 200")
            except RuntimeError:
                started = False  # exited before serving
            assert started == imitation["starts"], (entries, imitation, child.tail())
            if not started:
                print(f"{entries}: spin up does not start: {imitation['start_error']}")
                return
            answer = events.post(url, bare_event(objects, LOADS[0]))
        finally:
            child.stop()
    body = answer.json()
    refused = answer.status == 503 and "the host refused to send a request" in body.get("reason", "")
    assert (answer.status == 200) != refused, (entries, body)  # allowed and loaded, or refused
    assert (not refused) == imitation["allowed"], (entries, imitation, body)
    assert bool(bigquery.requests) == imitation["allowed"], (entries, bigquery.requests)
    print(f"{entries} {POLICY_CASES[case][1]}: {'allowed' if imitation['allowed'] else 'refused'}")


def test_spin_is_looked_for_as_spin_then_the_shared_tools_then_path(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """SPIN (a path) first, then ../shared/tools/spin beside the repository, then `spin` on PATH;
    with none, one line that says where it looked (the skip reason)."""
    fake = tmp_path / "bin" / "spin"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(stack_mod, "SHARED_SPIN", tmp_path / "shared" / "tools" / "spin")
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv("SPIN", str(tmp_path / "nowhere"))
    assert stack_mod.spin_binary() == (None, f"SPIN={tmp_path / 'nowhere'} is not a file")
    monkeypatch.delenv("SPIN")
    assert stack_mod.spin_binary() == (fake, "PATH")
    shared = tmp_path / "shared" / "tools" / "spin"
    shared.parent.mkdir(parents=True)
    shared.write_text("#!/bin/sh\n")
    assert stack_mod.spin_binary() == (shared, str(shared))
    monkeypatch.setenv("SPIN", str(fake))
    assert stack_mod.spin_binary() == (fake, "SPIN")
    monkeypatch.delenv("SPIN")
    shared.unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary, why = stack_mod.spin_binary()
    assert binary is None and "\n" not in why
    assert why == (f"no Spin runtime: SPIN is unset, {shared} does not exist and `spin` is not on PATH")
    assert stack_mod.spin_unavailable_reason() == why
