"""sql/registry_events.sql and sql/views/*.sql on local-bigquery, against answers computed by the
Rust CLI (`gcr-usage report … --format json`) from the same log files.

Two datasets: `viewlogs` holds fixtures/logs (answers: fixtures/report/report.json), `viewall`
holds fixtures/logs + fixtures/views (answers: fixtures/views/report.json; those rows exercise the
pull rule's edges: a pull across midnight, gaps of exactly 5 min and 5 min + 1 µs, equal times,
304s, an upper-case Referer host, empty request ids, a record repeated in another object, pushes).

`registry_events` is filled with `INSERT … SELECT` from `raw_registry_events` (the classification
in SQL over the raw table), plus one record copied under another log object to prove the views
count a request once. The raw views and the event views must then give the Rust CLI's numbers;
`raw_registry_events` is also checked row by row against fixtures/classification/cases.json, the
table of tricky rows the Rust classifier is tested with.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import schema
from sqlrun import render, statements
from stack import REPO_ROOT, Stack, fixture_log_files, http_json
from viewrun import (EVENT_VIEWS, NEW_SQL_FILES, RAW_VIEWS, SINK_VIEWS, VIEW_FILES, run_file, select, sql_file_text,
                     upload_and_load)

VIEWS_DIR = REPO_ROOT / "fixtures" / "views"
EVENT_COLUMNS = [
    "event_time", "time_micros", "registry_host", "project", "repository", "image", "digest", "target", "action",
    "success", "status", "method", "operation", "bucket", "object", "client_family", "client_version", "user_agent",
    "caller_class", "client_ip", "request_bytes", "response_bytes", "time_taken_micros", "request_id",
    "invalid_utf8", "source_bucket", "source_object", "source_generation", "source_row", "source_line",
    "source_kind", "principal", "artifact_format", "reference",
]

SCENARIOS = {
    "viewlogs": (REPO_ROOT / "fixtures" / "report" / "report.json", False),
    "viewall": (VIEWS_DIR / "report.json", True),
}


def usage_logs(with_views: bool) -> list[Path]:
    logs = [p for p in fixture_log_files() if "_usage_" in p.name]
    if with_views:
        logs += sorted(p for p in VIEWS_DIR.iterdir() if "_usage_" in p.name)
    return logs


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(request: pytest.FixtureRequest, emulators: Stack) -> tuple[str, dict]:
    """A dataset with the raw fixtures loaded, every view created, registry_events filled."""
    dataset = request.param
    report_path, with_views = SCENARIOS[dataset]
    emulators.create_dataset(dataset)
    run_file(emulators, "tables.sql", dataset)
    run_file(emulators, "registry_events.sql", dataset)
    for path in usage_logs(with_views):
        if path.parent == VIEWS_DIR:
            upload_and_load(emulators, dataset, path)
        else:  # already in the log bucket (the stack seeds fixtures/logs)
            upload_and_load(emulators, dataset, path.name)
    for name in VIEW_FILES:
        run_file(emulators, name, dataset)
    table = f"`{emulators.project}.{dataset}`"
    columns = ", ".join(EVENT_COLUMNS)
    emulators.query(f"INSERT INTO {table}.registry_events ({columns}) SELECT {columns} FROM {table}.raw_registry_events")
    # The same pull written into a second log object: registry_events_unique must drop it.
    copy_columns = columns.replace("source_object", "'another-log-object' AS source_object")
    emulators.query(
        f"INSERT INTO {table}.registry_events ({columns}) SELECT {copy_columns} FROM {table}.raw_registry_events "
        "WHERE action = 'pull' AND repository IS NOT NULL AND request_id != '' ORDER BY time_micros LIMIT 1")
    return dataset, json.loads(report_path.read_text())


def by(rows: list[dict], *keys: str) -> list[dict]:
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))


IMAGE_COLUMNS = ["registry_host", "repository", "pulls", "blob_downloads", "bytes_served", "clients", "first_seen",
                 "last_seen"]
DAILY_COLUMNS = ["day", "registry_host", "repository", "pulls", "blob_downloads", "bytes_served"]
CLIENT_COLUMNS = ["client_ip", "pulls", "blob_downloads", "bytes_served", "images", "client_families"]
PUSH_COLUMNS = ["bucket", "registry_host", "repository", "pushes", "failed", "bytes_received", "clients"]


def test_registry_events_table_has_the_event_columns(emulators: Stack, scenario: tuple[str, dict]) -> None:
    """sql/registry_events.sql: the RegistryEvent fields in order, with the brief's types."""
    dataset, _ = scenario
    status, answer = http_json("GET", f"{emulators.bigquery_api}/datasets/{dataset}/tables/registry_events")
    assert status == 200, answer
    fields = [(f["name"], f["type"]) for f in answer["schema"]["fields"]]
    expected_types = {"event_time": "TIMESTAMP", "success": "BOOLEAN", "invalid_utf8": "BOOLEAN"}
    ints = {"time_micros", "status", "request_bytes", "response_bytes", "time_taken_micros", "source_generation",
            "source_row", "source_line"}
    assert [n for n, _ in fields] == EVENT_COLUMNS
    for name, kind in fields:
        want = expected_types.get(name) or ("INTEGER" if name in ints else "STRING")
        assert kind in (want, {"INTEGER": "INT64", "BOOLEAN": "BOOL"}.get(want, want)), (name, kind)


def test_registry_events_sql_is_idempotent(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, _ = scenario
    before = emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{dataset}.registry_events`")
    run_file(emulators, "registry_events.sql", dataset)
    assert emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{dataset}.registry_events`") == before


def test_events_count_once(emulators: Stack, scenario: tuple[str, dict]) -> None:
    """Rows of the raw table minus duplicate request ids = the CLI's events; the copied record is dropped."""
    dataset, report = scenario
    summary = report["summary"]
    count = lambda view: select(emulators, dataset, view, ["COUNT(*) AS n"])[0]["n"]  # noqa: E731
    assert count("raw_registry_events") == summary["events"]
    assert count("registry_events") == summary["events"] + 1
    assert count("registry_events_unique") == summary["events"]


@pytest.mark.parametrize("source", ["events", "raw"])
def test_daily_pulls_match_the_cli(emulators: Stack, scenario: tuple[str, dict], source: str) -> None:
    dataset, report = scenario
    view = "image_pulls_daily" if source == "events" else "raw_image_pulls_daily"
    got = select(emulators, dataset, view, ["CAST(day AS STRING) AS day", *DAILY_COLUMNS[1:]])
    assert by(got, "day", "registry_host", "repository") == by(report["daily"], "day", "registry_host", "repository")


def test_daily_pulls_have_clients(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    rows = select(emulators, dataset, "image_pulls_daily", ["clients", "pulls"])
    assert all(r["clients"] >= 1 for r in rows)
    assert sum(r["pulls"] for r in rows) == report["summary"]["pulls"]


def test_images_match_the_cli(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    got = select(emulators, dataset, "repository_bytes", IMAGE_COLUMNS)
    assert by(got, "registry_host", "repository") == by(report["images"], "registry_host", "repository")


def test_top_clients_match_the_cli(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    got = select(emulators, dataset, "top_clients", CLIENT_COLUMNS)
    assert by(got, "client_ip") == by(report["clients_by_pulls"], "client_ip")
    # the CLI's ranking is ORDER BY pulls DESC, bytes_served DESC, client_ip
    ranked = emulators.query(f"SELECT client_ip FROM `{emulators.project}.{dataset}.top_clients` "
                             "ORDER BY pulls DESC, bytes_served DESC, client_ip")
    assert [r["client_ip"] for r in ranked] == [c["client_ip"] for c in report["clients_by_pulls"]]


def test_pushes_match_the_cli(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    got = select(emulators, dataset, "pushes", PUSH_COLUMNS)
    assert by(got, "bucket", "repository") == by(report["pushes"], "bucket", "repository")


def test_failures_match_the_cli(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    got = select(emulators, dataset, "failures", ["status", "action", "count"])
    assert by(got, "status", "action") == by(report["failures"], "status", "action")


def test_summary_matches_the_cli(emulators: Stack, scenario: tuple[str, dict]) -> None:
    dataset, report = scenario
    s = report["summary"]
    totals = select(emulators, dataset, "blob_downloads", [
        "COUNTIF(new_pull) AS pulls", "COUNT(*) AS blob_downloads", "SUM(response_bytes) AS bytes_served",
        "COUNT(DISTINCT client_ip) AS clients", "COUNT(DISTINCT CONCAT(registry_host, '/', repository)) AS images"])[0]
    assert totals == {"pulls": s["pulls"], "blob_downloads": s["blob_downloads"], "bytes_served": s["bytes_served"],
                      "clients": s["pulling_clients"], "images": s["images"]}
    rows = emulators.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(response_bytes), 0) AS b "
        f"FROM `{emulators.project}.{dataset}.registry_events_unique` "
        "WHERE action = 'pull' AND success AND repository IS NULL")
    assert (int(rows[0]["n"]), int(rows[0]["b"])) == (s["unattributed_blob_downloads"], s["unattributed_bytes"])


def test_raw_views_are_the_event_views_renamed() -> None:
    """raw_blob_downloads / raw_image_pulls_daily are the same statements over raw_registry_events."""
    for name in ("blob_downloads", "image_pulls_daily"):
        event = statements(sql_file_text(f"views/{name}.sql"))
        raw = statements(sql_file_text(f"views/raw_{name}.sql"))
        renamed = [s.replace("raw_registry_events`", "registry_events_unique`")
                   .replace(".raw_blob_downloads`", ".blob_downloads`")
                   .replace(".raw_image_pulls_daily`", ".image_pulls_daily`") for s in raw]
        assert renamed == event, name


# ---------------------------------------------------------------------------------------------
# raw_registry_events, row by row, against the Rust classifier's table of tricky rows

CASES = json.loads((REPO_ROOT / "fixtures" / "classification" / "cases.json").read_text())
# Event fields the SQL derives exactly as the Rust classifier does (client_family, caller_class:
# approximations, compared separately; client_version, invalid_utf8, lineage: not derived).
EXACT_FIELDS = ["event_time", "time_micros", "registry_host", "project", "repository", "image", "digest", "target",
                "action", "success", "status", "method", "operation", "bucket", "object", "user_agent", "client_ip",
                "request_bytes", "response_bytes", "request_id"]
APPROXIMATE_FIELDS = ["client_family", "caller_class"]


def usable_cases() -> list[tuple[int, dict]]:
    """Cases that are one well-formed row (no raw bytes, truncation, extra columns, malformed)."""
    return [(i, c) for i, c in enumerate(CASES["cases"])
            if "expect" in c and not ({"row_bytes", "truncate", "extra", "expect_malformed"} & c.keys())]


@pytest.fixture(scope="module")
def classified_cases(emulators: Stack) -> dict[str, dict]:
    """Every usable case as one usage row (request id = case number), through raw_registry_events."""
    dataset = "viewcases"
    emulators.create_dataset(dataset)
    run_file(emulators, "tables.sql", dataset)
    header = [n for n, _, _ in schema.USAGE_FIELDS]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    for i, case in usable_cases():
        row = {**CASES["defaults"], **case.get("row", {}), "s_request_id": f"case-{i}"}
        writer.writerow([row.get(n, "") for n in header])
    upload_and_load(emulators, dataset, "viewcases_usage_2024_03_11_14_00_00_00_v0", out.getvalue().encode())
    run_file(emulators, "views/raw_registry_events.sql", dataset)
    rows = select(emulators, dataset, "raw_registry_events", EVENT_COLUMNS)
    return {r["request_id"]: r for r in rows}


@pytest.mark.parametrize("index,case", usable_cases(), ids=lambda v: str(v)[:50] if isinstance(v, str) else None)
def test_raw_registry_events_classifies_like_rust(classified_cases: dict, index: int, case: dict) -> None:
    got = classified_cases[f"case-{index}"]
    want = {k: v for k, v in case["expect"].items() if k in EXACT_FIELDS and k != "request_id"}
    assert {k: got[k] for k in want} == want, case["name"]


def test_raw_registry_events_client_family_is_close(classified_cases: dict) -> None:
    """The SQL's user-agent reading is an approximation: list the cases where it differs."""
    differ = []
    for index, case in usable_cases():
        got = classified_cases[f"case-{index}"]
        for field in APPROXIMATE_FIELDS:
            if field in case["expect"] and got[field] != case["expect"][field]:
                differ.append((case["name"], field, got[field], case["expect"][field]))
    assert differ == [], differ


@pytest.mark.parametrize("name", NEW_SQL_FILES)
def test_sql_parses_as_bigquery(emulators: Stack, name: str) -> None:
    """sqlglot's BigQuery dialect (pinned, the one local-bigquery uses) parses every statement strictly."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    for statement in statements(render(name, emulators, "storageanalysis")):
        parsed = sqlglot.parse_one(statement, read="bigquery", error_level=ErrorLevel.RAISE)
        assert parsed is not None
        round_trip = parsed.sql(dialect="bigquery").upper()
        if name == "registry_events.sql":
            assert "PARTITION BY DATE(EVENT_TIME)" in round_trip
            assert "CLUSTER BY REGISTRY_HOST, REPOSITORY, CLIENT_IP" in round_trip
        else:
            assert round_trip.startswith("CREATE OR REPLACE VIEW"), round_trip[:80]


def test_every_view_file_is_listed() -> None:
    on_disk = sorted(p.stem for p in (REPO_ROOT / "sql" / "views").glob("*.sql"))
    assert on_disk == sorted(EVENT_VIEWS + RAW_VIEWS + SINK_VIEWS)
