"""Artifact Registry audit logs end to end: sink objects (fixtures/audit/sink/, named as a Cloud
Logging sink names them, with `/` and `:` in the name) are announced by their finalize events,
downloaded by the component under `wasmtime serve` from fake-gcs-server and loaded into
local-bigquery's `registry_events` with the usage-log rows' columns.

Also the upgrade: a `registry_events` created by the previous release's DDL (without the
audit-log columns) keeps loading — the load job adds the columns (ALLOW_FIELD_ADDITION).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

import events
from conftest import require_loader, watched
from sqlrun import render, statements
from stack import Stack, http_json, loader_only

AUDIT_BUCKET = "demo-audit-logs"
SINK = events.REPO_ROOT / "fixtures" / "audit" / "sink"
S0 = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json"
LATE = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_A1:1720140000.json"
EXPECTED = json.loads((SINK / "expected.json").read_text())
NEW_COLUMNS = ["source_kind", "principal", "artifact_format", "reference"]


def deliver(stack: Stack, resource: dict) -> dict:
    answer = events.deliver(stack.loader_url, "cloudevent-binary", events.make_event("cloudevent-binary", resource))
    return {"status": answer.status, **answer.json()}


@pytest.fixture(scope="module")
def audit(emulators: Stack) -> Iterator[tuple[Stack, dict[str, dict]]]:
    require_loader()
    emulators.create_dataset("audit")
    emulators.create_bucket(AUDIT_BUCKET)
    resources = {name: emulators.upload(AUDIT_BUCKET, name, (SINK / name).read_bytes()) for name in (S0, LATE)}
    # Raw mode: audit objects load as events whatever the mode (they have no raw table).
    overrides = {"GCR_USAGE_DATASET": "audit", "GCR_USAGE_BUCKETS": f"{emulators.bucket},{AUDIT_BUCKET}",
                 "GCR_USAGE_MODE": "raw"}
    with loader_only(emulators.bigquery_url, emulators.gcs_url, overrides, name="wasmtime-serve-audit") as running, \
            watched(running):
        yield running, resources


def count(emulators: Stack, dataset: str, where: str = "TRUE") -> int:
    rows = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{dataset}.registry_events` WHERE {where}")
    return int(rows[0]["n"])


def test_a_sink_object_loads_its_artifact_registry_entries(audit: tuple[Stack, dict], emulators: Stack) -> None:
    loader, resources = audit
    body = deliver(loader, resources[S0])
    assert (body["status"], body["outcome"], body["logKind"]) == (200, "loaded", "audit"), body
    counts = body["counts"]
    assert (counts["records"], counts["events"], counts["skipped"], counts["malformed"], counts["duplicates"]) == (
        EXPECTED["entries"], EXPECTED["events"], EXPECTED["skipped"], EXPECTED["malformed"], EXPECTED["duplicates"])
    assert [m["line"] for m in counts["firstMalformed"]] == EXPECTED["malformed_lines"]
    assert body["rows"] == EXPECTED["events"]
    assert body["jobId"].startswith("gcr_usage_events_"), body
    assert count(emulators, "audit") == EXPECTED["events"]
    by_action = emulators.query(
        f"SELECT action, COUNT(*) AS n FROM `{emulators.project}.audit.registry_events` GROUP BY action")
    assert {r["action"]: int(r["n"]) for r in by_action} == EXPECTED["pulls_by_action"]
    assert count(emulators, "audit", f"source_kind = 'audit_log' AND source_object = '{S0}'") == EXPECTED["events"]


def test_a_late_shard_loads_and_redeliveries_load_nothing(audit: tuple[Stack, dict], emulators: Stack) -> None:
    loader, resources = audit
    late = deliver(loader, resources[LATE])
    assert (late["status"], late["outcome"], late["rows"]) == (200, "loaded", 3), late
    before = count(emulators, "audit")
    for name in (S0, LATE):
        again = deliver(loader, resources[name])
        assert (again["status"], again["outcome"]) == (200, "duplicate"), again
    assert count(emulators, "audit") == before


def test_other_objects_of_the_sink_bucket_are_ignored_with_a_reason(audit: tuple[Stack, dict],
                                                                    emulators: Stack) -> None:
    loader, _ = audit
    for name, why in [
        ("cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59.json", "_SHARD"),
        ("cloudaudit.googleapis.com/system_event/2024/07/04/23:00:00_23:59:59_S0.json", "system_event"),
        ("cloudaudit.googleapis.com/data_access/2024/02/30/23:00:00_23:59:59_S0.json", "not a valid audit-log hour"),
    ]:
        resource = emulators.upload(AUDIT_BUCKET, name, b"{}\n")
        body = deliver(loader, resource)
        assert (body["status"], body["outcome"]) == (200, "ignored"), body
        assert why in body["reason"], body


def test_a_sink_object_that_is_not_json_lines_is_refused_whole(audit: tuple[Stack, dict], emulators: Stack) -> None:
    loader, _ = audit
    name = "cloudaudit.googleapis.com/data_access/2024/07/05/00:00:00_00:59:59_S0.json"
    # A JSON array cut off half-way: nothing of it may load.
    text = (events.REPO_ROOT / "fixtures" / "audit" / "gcloud" / "read.json").read_text()
    resource = emulators.upload(AUDIT_BUCKET, name, text[: len(text) // 2].encode())
    before = count(emulators, "audit")
    body = deliver(loader, resource)
    assert (body["status"], body["error"]) == (400, "invalid-input"), body
    assert "JSON array" in body["reason"], body
    assert count(emulators, "audit") == before


def test_a_table_of_the_previous_release_gains_the_new_columns(emulators: Stack) -> None:
    """The previous release's DDL is today's without the columns added for audit logs (always
    appended last); a classified load into it adds them and keeps the old rows."""
    require_loader()
    emulators.create_dataset("upgrade")
    ddl = render("registry_events.sql", emulators, "upgrade")
    old = re.sub(r",\n(\s*--[^\n]*\n)*\s*source_kind STRING.*?(?=\n\))", "", ddl, flags=re.S)
    assert "source_kind" not in old and "source_line INT64" in old
    for statement in statements(old):
        emulators.query(statement)
    status, table = http_json("GET", f"{emulators.bigquery_api}/datasets/upgrade/tables/registry_events")
    assert status == 200 and len(table["schema"]["fields"]) == 30, table
    emulators.query(f"INSERT INTO `{emulators.project}.upgrade.registry_events` (event_time, request_id) "
                    "VALUES (TIMESTAMP '2024-03-10 00:00:00', 'from-the-old-release')")
    overrides = {"GCR_USAGE_DATASET": "upgrade", "GCR_USAGE_MODE": "classified"}
    with loader_only(emulators.bigquery_url, emulators.gcs_url, overrides, name="wasmtime-serve-upgrade") as loader, \
            watched(loader):
        name = next(n for n in emulators.objects if "_usage_" in n and "_2024_03_11_14_" in n)
        body = deliver(loader, emulators.objects[name])
    assert (body["status"], body["outcome"]) == (200, "loaded"), body
    status, table = http_json("GET", f"{emulators.bigquery_api}/datasets/upgrade/tables/registry_events")
    assert [f["name"] for f in table["schema"]["fields"]][-4:] == NEW_COLUMNS, table
    assert count(emulators, "upgrade") == body["rows"] + 1
    assert count(emulators, "upgrade", "source_kind = 'usage_log'") == body["rows"]
    assert count(emulators, "upgrade", "request_id = 'from-the-old-release' AND source_kind IS NULL") == 1


def test_the_views_count_pulls_not_requests(audit: tuple[Stack, dict], emulators: Stack) -> None:
    """Rule A in SQL over the loaded sink objects (S0 and its late shard): the same pulls per
    image as the core's statistics (crates/core/src/audit/fixture_tests.rs), from one table."""
    from viewrun import EVENT_VIEWS, run_file, select
    for name in [f"views/{v}.sql" for v in EVENT_VIEWS]:
        run_file(emulators, name, "audit")
    want = EXPECTED["with_the_late_file"]
    daily = select(emulators, "audit", "image_pulls_daily", ["registry_host", "repository", "pulls"])
    pulls: dict[str, int] = {}
    for row in daily:
        key = f"{row['registry_host']}/{row['repository']}"
        pulls[key] = pulls.get(key, 0) + int(row["pulls"])
    assert {k: v for k, v in pulls.items() if v} == want["pulls_per_image"]
    agents = select(emulators, "audit", "agent_pulls_daily", ["repository", "principal", "manifest_reads"])
    assert sum(int(r["manifest_reads"]) for r in agents) == want["agent_pulls"], agents
    assert {r["principal"].split("@")[1] for r in agents} == {
        "container-analysis.iam.gserviceaccount.com", "cloudbuild.gserviceaccount.com"}
