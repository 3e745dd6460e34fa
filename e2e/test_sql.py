"""sql/*.sql and the fixture README, checked on the emulators alone (no component needed).

The fixtures are loaded here by plain REST load jobs into a separate dataset, so a broken
component cannot hide a broken query or README, and vice versa.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

import expected
import schema
from sqlrun import image_pulls, micros_iso, render, statements
from stack import REPO_ROOT, Stack, fixture_log_files, http_json

DATASET = "sqlcheck"
LOG_NAME = re.compile(r"^(?P<prefix>.+)_(?P<kind>usage|storage)_\d{4}_\d{2}_\d{2}_\d{2}_00_00_[0-9a-f]+_v0$")
REFERER = re.compile(r"^https://((?:[a-z0-9-]+\.)*gcr\.io)/v2/([^?#]+)/blobs/sha256:[0-9a-f]{64}")


def load_job(stack: Stack, name: str, table: str, fields: list[tuple[str, str, str]]) -> dict:
    job = {
        "jobReference": {"projectId": stack.project, "jobId": "sqlcheck_" + re.sub(r"[^A-Za-z0-9_-]", "_", name),
                         "location": stack.location},
        "configuration": {"load": {
            "sourceUris": [f"gs://{stack.bucket}/{name}"],
            "destinationTable": {"projectId": stack.project, "datasetId": DATASET, "tableId": table},
            "sourceFormat": "CSV", "skipLeadingRows": 1, "writeDisposition": "WRITE_APPEND",
            "schema": {"fields": [{"name": n, "type": t, "mode": m} for n, t, m in fields]},
        }},
    }
    status, answer = http_json("POST", f"{stack.bigquery_api}/jobs", job)
    assert status == 200, answer
    assert "errorResult" not in answer["status"], answer["status"]
    return answer


@pytest.fixture(scope="module")
def sqlcheck(emulators: Stack) -> dict[str, dict]:
    """tables.sql run into `sqlcheck`, then every fixture loaded; returns the jobs by object."""
    for statement in statements(render("tables.sql", emulators, DATASET)):
        emulators.query(statement)
    jobs = {}
    for path in fixture_log_files():
        kind = LOG_NAME.match(path.name)["kind"]
        fields = schema.USAGE_FIELDS if kind == "usage" else schema.STORAGE_FIELDS
        jobs[path.name] = load_job(emulators, path.name, kind, fields)
    return jobs


def test_readme_lists_every_fixture_file() -> None:
    assert sorted(f.object for f in expected.log_files()) == [p.name for p in fixture_log_files()]


@pytest.mark.parametrize("entry", expected.log_files(), ids=lambda f: f.object[:40])
def test_fixture_file_matches_readme(entry: expected.LogFile) -> None:
    """Name, kind, row count and line ends of each fixture are what the README says."""
    raw = (REPO_ROOT / "fixtures" / "logs" / entry.object).read_bytes()
    match = LOG_NAME.match(entry.object)
    assert match and match["kind"] == entry.kind
    assert entry.line_ends == ("CRLF" if b"\r\n" in raw else "LF")
    lines = raw.decode().splitlines()
    header = expected_header(entry.kind)
    assert lines[0] == header
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert len(rows) - 1 == entry.data_rows
    width = len(header.split(","))
    assert all(len(r) == width for r in rows)
    # every value double-quoted, numbers included
    assert all(re.fullmatch(r'"[^"]*"(,"[^"]*")*', line) for line in lines), "unquoted value"


def expected_header(kind: str) -> str:
    fields = schema.USAGE_FIELDS if kind == "usage" else schema.STORAGE_FIELDS
    return ",".join(f'"{name}"' for name, _, _ in fields)


def test_tables_sql_creates_official_schemas(emulators: Stack, sqlcheck: dict) -> None:
    for table, fields in (("usage", schema.USAGE_FIELDS), ("storage", schema.STORAGE_FIELDS)):
        status, answer = http_json("GET", f"{emulators.bigquery_api}/datasets/{DATASET}/tables/{table}")
        assert status == 200, answer
        assert schema.normalize(answer["schema"]["fields"]) == fields


def test_tables_sql_is_idempotent(emulators: Stack, sqlcheck: dict) -> None:
    for statement in statements(render("tables.sql", emulators, DATASET)):
        emulators.query(statement)  # IF NOT EXISTS: no error, no data loss
    assert emulators.query(f"SELECT COUNT(*) AS n FROM `{emulators.project}.{DATASET}.usage`")[0]["n"] == str(
        expected.total_rows("usage"))


@pytest.mark.parametrize("entry", expected.log_files(), ids=lambda f: f.object[:40])
def test_load_job_rows_match_readme(sqlcheck: dict, entry: expected.LogFile) -> None:
    assert int(sqlcheck[entry.object]["statistics"]["load"]["outputRows"]) == entry.data_rows


def test_storage_log_row(emulators: Stack, sqlcheck: dict) -> None:
    rows = emulators.query(f"SELECT bucket, storage_byte_hours FROM `{emulators.project}.{DATASET}.storage`")
    assert rows == [{"bucket": "eu.artifacts.demo-project.appspot.com", "storage_byte_hours": "1296540825600"}]


def test_image_pulls_sql_matches_readme(emulators: Stack, sqlcheck: dict) -> None:
    assert image_pulls(emulators, DATASET) == expected.image_pulls()


def test_readme_answers_match_an_independent_count() -> None:
    """The README's numbers, recomputed from the CSVs in Python with the same rules."""
    seen: set[str] = set()
    stats: dict[tuple[str, str], dict] = {}
    for path in fixture_log_files():
        if LOG_NAME.match(path.name)["kind"] != "usage":
            continue
        for row in csv.DictReader(io.StringIO(path.read_text(), newline="")):
            referer = REFERER.match(row["cs_referer"])
            if (row["cs_method"] != "GET" or not 200 <= int(row["sc_status"]) <= 299
                    or not row["cs_object"].startswith("containers/images/sha256:") or not referer):
                continue
            if row["s_request_id"] in seen:
                continue
            seen.add(row["s_request_id"])
            s = stats.setdefault(referer.groups(), {"n": 0, "bytes": 0, "ips": set(), "t": []})
            s["n"] += 1
            s["bytes"] += int(row["sc_bytes"])
            s["ips"].add(row["c_ip"])
            s["t"].append(int(row["time_micros"]))
    computed = sorted(
        (expected.ImagePulls(h, r, s["n"], s["bytes"], len(s["ips"]), micros_iso(min(s["t"])), micros_iso(max(s["t"])))
         for (h, r), s in stats.items()),
        key=lambda p: (-p.blob_downloads, p.registry_host, p.repository))
    assert computed == expected.image_pulls()


def test_seed_regex_is_what_the_new_query_fixes(emulators: Stack, sqlcheck: dict) -> None:
    """The article's regex keeps only the 3rd path segment and only gcr.io: documents why we differ."""
    rows = emulators.query(
        "SELECT DISTINCT REGEXP_EXTRACT(cs_referer, r'^https://gcr.io(?:[^/]*)/(?:[^/]*/){2}([^/]*)') AS image "
        f"FROM `{emulators.project}.{DATASET}.usage` WHERE cs_referer LIKE '%gcr.io/v2/%' ORDER BY image")
    images = {r["image"] for r in rows}
    assert "team" in images  # nested demo-project/team/api/server collapses to "team"
    assert None in images  # us.gcr.io / eu.gcr.io referers do not match at all


@pytest.mark.parametrize("name", ["tables.sql", "image_pulls_raw.sql"])
def test_sql_parses_as_bigquery(emulators: Stack, name: str) -> None:
    """No real BigQuery here: sqlglot's BigQuery dialect (pinned, used by local-bigquery) must
    parse every statement strictly and read back the BigQuery functions we rely on."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    for statement in statements(render(name, emulators, "storageanalysis")):
        parsed = sqlglot.parse_one(statement, read="bigquery", error_level=ErrorLevel.RAISE)
        assert parsed is not None
        round_trip = parsed.sql(dialect="bigquery")
        if name == "image_pulls_raw.sql":
            for function in ("REGEXP_EXTRACT", "REGEXP_CONTAINS", "STARTS_WITH", "TIMESTAMP_MICROS", "QUALIFY"):
                assert function in round_trip.upper(), function
