"""GCR_USAGE_MODE=both end to end: the component under `wasmtime serve` downloads each fixture log
from fake-gcs-server (generation-pinned, CRC32C checked), classifies it and uploads the events to
local-bigquery through a resumable upload session in 256 KiB chunks, beside the raw CSV load.

The component creates `registry_events` itself (schema, day partitions, clustering from its load
job); the SQL views created on top of it must then give the Rust CLI's answers for the same logs
(fixtures/report/report.json), and redeliveries must load nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import events
import expected
from chaos_proxy import UPLOAD_ID, ChaosProxy
from conftest import require_loader, watched
from cutoff_proxy import CutOffProxy
from stack import LOGS_DIR, Stack, http_json, loader_only, tagged_log
from test_views import CLIENT_COLUMNS, DAILY_COLUMNS, EVENT_COLUMNS, IMAGE_COLUMNS, by
from viewrun import VIEW_FILES, run_file, select

DATASET = "classified"
CUT_DATASET = "cut_off"
REPORT = events.REPO_ROOT / "fixtures" / "report" / "report.json"
USAGE_LOGS = [f for f in expected.log_files() if f.kind == "usage"]
ANSWERS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def loader(emulators: Stack) -> Iterator[Stack]:
    require_loader()
    emulators.create_dataset(DATASET)
    overrides = {"GCR_USAGE_MODE": "both", "GCR_USAGE_DATASET": DATASET, "GCR_USAGE_UPLOAD_CHUNK_KIB": "256"}
    with loader_only(emulators.bigquery_url, emulators.gcs_url, overrides, name="wasmtime-serve-both") as running, \
            watched(running):
        running.objects = emulators.objects
        yield running


def deliver(stack: Stack, name: str) -> dict:
    answer = events.deliver(stack.loader_url, "cloudevent-binary",
                            events.make_event("cloudevent-binary", stack.objects[name]))
    body = answer.json()
    assert answer.status == 200, body
    return body


@pytest.mark.parametrize("entry", USAGE_LOGS, ids=lambda f: f.object[:40])
def test_first_delivery_loads_raw_rows_and_events(loader: Stack, entry: expected.LogFile) -> None:
    body = deliver(loader, entry.object)
    assert (body["outcome"], body["rows"]) == ("loaded", entry.data_rows), body
    ev = body["events"]
    assert ev["outcome"] == "loaded", ev
    assert ev["destination"] == f"{loader.project}:{DATASET}.registry_events"
    assert ev["jobId"].startswith("gcr_usage_events_")
    counts = ev["counts"]
    assert counts["records"] == entry.data_rows
    assert counts["records"] == counts["events"] + counts["malformed"] + counts["duplicates"]
    assert ev["rows"] == counts["events"]
    ANSWERS[entry.object] = body


def test_registry_events_holds_every_event_once(loader: Stack, emulators: Stack) -> None:
    assert len(ANSWERS) == len(USAGE_LOGS)
    uploaded = sum(a["events"]["counts"]["events"] for a in ANSWERS.values())
    rows = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{DATASET}.registry_events`")
    assert int(rows[0]["n"]) == uploaded


def test_the_component_created_the_table_with_the_event_schema(emulators: Stack) -> None:
    """No DDL ran in this dataset before the loads: the load job's schema made the table."""
    status, table = http_json("GET", f"{emulators.bigquery_api}/datasets/{DATASET}/tables/registry_events")
    assert status == 200, table
    assert [f["name"] for f in table["schema"]["fields"]] == EVENT_COLUMNS


@pytest.mark.parametrize("entry", USAGE_LOGS, ids=lambda f: f.object[:40])
def test_redeliveries_are_duplicates_for_both_loads(loader: Stack, emulators: Stack, entry: expected.LogFile) -> None:
    before = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{DATASET}.registry_events`")
    for _ in range(3):
        body = deliver(loader, entry.object)
        assert (body["outcome"], body["events"]["outcome"]) == ("duplicate", "duplicate"), body
        assert body["events"]["jobId"] == ANSWERS[entry.object]["events"]["jobId"]
    after = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{DATASET}.registry_events`")
    assert after == before


def test_views_over_the_uploaded_events_give_the_cli_answers(loader: Stack, emulators: Stack) -> None:
    report = json.loads(REPORT.read_text())
    for name in VIEW_FILES:
        run_file(emulators, name, DATASET)
    assert select(emulators, DATASET, "registry_events_unique", ["COUNT(*) AS n"])[0]["n"] == report["summary"]["events"]
    daily = select(emulators, DATASET, "image_pulls_daily", ["CAST(day AS STRING) AS day", *DAILY_COLUMNS[1:]])
    assert by(daily, "day", "registry_host", "repository") == by(report["daily"], "day", "registry_host", "repository")
    images = select(emulators, DATASET, "repository_bytes", IMAGE_COLUMNS)
    assert by(images, "registry_host", "repository") == by(report["images"], "registry_host", "repository")
    clients = select(emulators, DATASET, "top_clients", CLIENT_COLUMNS)
    assert by(clients, "client_ip") == by(report["clients_by_pulls"], "client_ip")


def test_a_download_cut_off_part_way_is_read_again_and_loaded_once(emulators: Stack) -> None:
    """Storage's connection closes half-way through the first download (the head promised the
    whole object), after the first upload session already holds chunks of events: under a real
    `wasmtime serve`, the component's read of the body fails, that session is left unfinished
    (no job), and the retry reads the object again from its start into a new one. BigQuery's
    side is watched through a pass-through ChaosProxy (no faults)."""
    require_loader()
    emulators.create_dataset(CUT_DATASET)
    source = LOGS_DIR / USAGE_LOGS[0].object
    data, rows = tagged_log(source.read_bytes(), 90001, 840)  # ~3 chunks of 256 KiB of events
    name = "cutLog_usage_2024_05_01_00_00_00_90001c4a05e_v0"
    emulators.upload(emulators.bucket, name, data)
    overrides = {"GCR_USAGE_MODE": "classified", "GCR_USAGE_DATASET": CUT_DATASET, "GCR_USAGE_UPLOAD_CHUNK_KIB": "256"}
    with CutOffProxy(emulators.gcs_url, cuts=1) as storage, ChaosProxy(emulators.bigquery_url, 1, rates={}) as bq, \
            loader_only(bq.url, storage.url, overrides, name="wasmtime-serve-cut-off") as running, watched(running):
        running.objects = emulators.objects
        body = deliver(running, name)
    assert (len(storage.state.cut), storage.state.downloads) == (1, 2), (storage.state, body)
    assert body["outcome"] == "loaded", body
    assert body["retries"]["count"] == 1, body
    last = body["retries"]["last"]
    assert f"reading gs://{emulators.bucket}/{name} failed after" in last, last
    assert last.endswith("nothing of it was loaded"), last
    sessions: dict[str, list[str]] = {}
    for record in bq.records():
        upload = UPLOAD_ID.search(record.path)
        if upload and record.kind in ("upload.chunk", "upload.last_chunk"):
            sessions.setdefault(upload["id"], []).append(record.kind)
    assert len(sessions) == 2, sessions
    abandoned, finished = sessions.values()
    assert abandoned and "upload.last_chunk" not in abandoned, sessions
    assert finished[-1] == "upload.last_chunk", sessions
    counts = body["counts"]
    assert counts["records"] == rows, body
    table = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{CUT_DATASET}.registry_events`")
    assert int(table[0]["n"]) == body["rows"] == counts["events"] == rows, (table, body)
