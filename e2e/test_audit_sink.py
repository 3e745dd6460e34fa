"""sql/views/audit_sink_events.sql and audit_sink_events_sharded.sql on local-bigquery: Artifact
Registry audit entries routed by a log sink straight into BigQuery, read as registry_events rows.

Fixture tables are shaped like the sink's (`cloudaudit_googleapis_com_data_access`: top-level
`timestamp`, `receiveTimestamp`, `insertId`; `protoPayload` as the RECORD
`protopayload_auditlog`, its `request` as the JSON string `requestJson`) and filled with
streaming inserts from:

- fixtures/audit/cases.json: every case whose entry a sink table can hold (the merge patch over
  `defaults` as the cases' README says), one row each under its own insertId. The view must
  give each case's `expect` fields, the oracle the Rust classifier is tested with, except the
  lineage columns (source_*: there is no sink object, the view gives NULL). Malformed and
  skipped cases the table can hold (no methodName, bad resourceName, another service, no
  AuditLog payload, no insertId or timestamp) must give no row;
- the S0 sink object (fixtures/audit/sink/…_S0.json) minus its 2 lines that are not JSON
  objects: 35 events by the counts of sink/expected.json, in the partitioned table and in the
  date-sharded one (`…_20240704`), which must give the same rows.

The statistics views (viewrun.EVENT_VIEWS) then run over a `registry_events` fed from
audit_sink_events: a table filled by `INSERT … SELECT *` (partitioned sink) and a plain view
over it (sharded sink).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import string
from typing import Any

import pytest

from sqlrun import SQL_DIR, statements
from stack import REPO_ROOT, Stack, http_json
from test_views import EVENT_COLUMNS
from viewrun import EVENT_VIEWS, run_file, select

AUDIT = REPO_ROOT / "fixtures" / "audit"
CASES = json.loads((AUDIT / "cases.json").read_text())
S0 = AUDIT / "sink" / "cloudaudit.googleapis.com" / "data_access" / "2024" / "07" / "04" / "23:00:00_23:59:59_S0.json"
EXPECTED = json.loads((AUDIT / "sink" / "expected.json").read_text())

TABLE = "cloudaudit_googleapis_com_data_access"
SHARD = f"{TABLE}_20240704"
AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"

# Datasets: the cases' sink table with the view beside it (DATASET = SINK_DATASET); S0 as a
# partitioned sink read from another dataset; S0 as a date-sharded sink read through the adapter.
CASES_DS = "asink_cases"
PART_SINK, PART_STATS = "asink_part", "astats_part"
SHARD_SINK, SHARD_STATS = "asink_shard", "astats_shard"

INT_COLUMNS = {"time_micros", "status", "request_bytes", "response_bytes", "time_taken_micros", "source_generation",
               "source_row", "source_line"}
BOOL_COLUMNS = {"success", "invalid_utf8"}
# The loader's lineage of an event (the sink object it read): a sink table has no object.
LINEAGE = {"source_bucket", "source_object", "source_generation", "source_row", "source_line"}

SINK_FIELDS: list[dict[str, Any]] = [
    {"name": "logName", "type": "STRING"},
    {"name": "resource", "type": "RECORD", "fields": [
        {"name": "type", "type": "STRING"},
        {"name": "labels", "type": "RECORD", "fields": [
            {"name": "project_id", "type": "STRING"}, {"name": "method", "type": "STRING"},
            {"name": "service", "type": "STRING"}]}]},
    {"name": "timestamp", "type": "TIMESTAMP"},
    {"name": "receiveTimestamp", "type": "TIMESTAMP"},
    {"name": "severity", "type": "STRING"},
    {"name": "insertId", "type": "STRING"},
    {"name": "protopayload_auditlog", "type": "RECORD", "fields": [
        {"name": "serviceName", "type": "STRING"},
        {"name": "methodName", "type": "STRING"},
        {"name": "resourceName", "type": "STRING"},
        {"name": "status", "type": "RECORD", "fields": [
            {"name": "code", "type": "INTEGER"}, {"name": "message", "type": "STRING"}]},
        {"name": "authenticationInfo", "type": "RECORD", "fields": [
            {"name": "principalEmail", "type": "STRING"}, {"name": "principalSubject", "type": "STRING"}]},
        {"name": "requestMetadata", "type": "RECORD", "fields": [
            {"name": "callerIp", "type": "STRING"}, {"name": "callerSuppliedUserAgent", "type": "STRING"}]},
        {"name": "requestJson", "type": "STRING"}]},
]


# ---------------------------------------------------------------------------------------------
# LogEntry JSON -> a row of the sink's table


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z")


def timestamp_value(text: Any) -> str | None:
    """An RFC 3339 time as the microsecond UTC TIMESTAMP a sink table holds (nanoseconds
    truncated); None when the table could not hold it (what the reader calls malformed)."""
    match = RFC3339.match(text) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        local = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59),
                            int((fraction or "0")[:6].ljust(6, "0")))
        offset = dt.timedelta() if zone in ("Z", "z") else (1 if zone[0] == "+" else -1) * dt.timedelta(
            hours=int(zone[1:3]), minutes=int(zone[4:6]))
        utc = local - offset
    except (ValueError, OverflowError):
        return None
    return iso_micros(utc)


def iso_micros(utc: dt.datetime) -> str:
    """RFC 3339 UTC with 6 fraction digits and a 4-digit year (strftime writes year 1 as `1`)."""
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
            f".{utc.microsecond:06d}Z")


def strings(value: Any, *keys: str) -> dict[str, str | None] | None:
    """The string fields of a JSON object (None: it is not one, or a field is not a string)."""
    if not isinstance(value, dict) or any(value.get(k) is not None and not isinstance(value.get(k), str)
                                          for k in keys):
        return None
    return {k: value.get(k) for k in keys}


def sink_row(entry: Any) -> dict[str, Any] | None:
    """The sink table's row for a LogEntry, or None if the table's types cannot hold it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("insertId"), (str, type(None))):
        return None
    row: dict[str, Any] = {"insertId": entry.get("insertId"), "logName": entry.get("logName"),
                           "severity": entry.get("severity"), "timestamp": None, "receiveTimestamp": None}
    for field in ("timestamp", "receiveTimestamp"):
        if entry.get(field) is not None:
            row[field] = timestamp_value(entry[field])
            if row[field] is None:
                return None
    resource = entry.get("resource") or {}
    row["resource"] = {"type": resource.get("type"), "labels": strings(resource.get("labels") or {}, "project_id",
                                                                        "method", "service")}
    payload = entry.get("protoPayload")
    if payload is None:
        row["protopayload_auditlog"] = None
        return row
    if not isinstance(payload, dict):
        return None
    if payload.get("@type", AUDIT_LOG_TYPE) != AUDIT_LOG_TYPE:
        row["protopayload_auditlog"] = None  # another payload type goes to another column
        return row
    names = strings(payload, "serviceName", "methodName", "resourceName")
    status = payload.get("status")
    auth = payload.get("authenticationInfo")
    metadata = payload.get("requestMetadata")
    if names is None or (status is not None and not (
            isinstance(status, dict) and isinstance(status.get("code"), (int, type(None))))):
        return None
    auth_row = None if auth is None else strings(auth, "principalEmail", "principalSubject")
    metadata_row = None if metadata is None else strings(metadata, "callerIp", "callerSuppliedUserAgent")
    if (auth is not None and auth_row is None) or (metadata is not None and metadata_row is None):
        return None
    request = payload.get("request")
    row["protopayload_auditlog"] = {
        **names,
        "status": None if status is None else {"code": status.get("code"), "message": status.get("message")},
        "authenticationInfo": auth_row,
        "requestMetadata": metadata_row,
        "requestJson": None if request is None else json.dumps(request),
    }
    return row


def case_rows() -> tuple[list[tuple[int, dict, dict]], list[tuple[int, dict, dict]]]:
    """(cases with an event, malformed or skipped cases), each as (index, case, sink row) for
    the cases a sink table can hold. Every case gets its own insertId (case 0 keeps its own:
    its `expect` names it), so that the view's deduplication keeps them all."""
    events, others = [], []
    for index, case in enumerate(CASES["cases"]):
        if "entry" not in case:
            continue  # raw lines: not JSON objects, no sink row
        row = sink_row(merge_patch(CASES["defaults"], case["entry"]))
        if row is None:
            assert "expect" not in case, f"an event case the sink table cannot hold: {case['name']}"
            continue
        if index and row["insertId"] is not None:
            row["insertId"] = f"case-{index}"
        (events if "expect" in case else others).append((index, case, row))
    return events, others


def s0_entries() -> list[dict]:
    """The S0 object's lines that are JSON objects (its 2 malformed lines cannot be inserted)."""
    entries = []
    for line in S0.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def s0_rows() -> list[dict]:
    rows = [sink_row(entry) for entry in s0_entries()]
    assert None not in rows
    return rows


# ---------------------------------------------------------------------------------------------
# the emulator


def render(name: str, stack: Stack, dataset: str, sink_dataset: str) -> str:
    return string.Template((SQL_DIR / name).read_text()).substitute(
        PROJECT=stack.project, DATASET=dataset, SINK_DATASET=sink_dataset, LOCATION=stack.location)


def run_sql(stack: Stack, name: str, dataset: str, sink_dataset: str) -> None:
    for statement in statements(render(name, stack, dataset, sink_dataset)):
        stack.query(statement)


def create_sink_table(stack: Stack, dataset: str, table: str, rows: list[dict], partitioned: bool) -> None:
    body: dict[str, Any] = {"tableReference": {"projectId": stack.project, "datasetId": dataset, "tableId": table},
                            "schema": {"fields": SINK_FIELDS}}
    if partitioned:
        body["timePartitioning"] = {"type": "DAY", "field": "timestamp"}
    status, answer = http_json("POST", f"{stack.bigquery_api}/datasets/{dataset}/tables", body)
    assert status == 200, answer
    status, answer = http_json("POST", f"{stack.bigquery_api}/datasets/{dataset}/tables/{table}/insertAll",
                               {"rows": [{"json": row} for row in rows]})
    assert status == 200 and not (answer or {}).get("insertErrors"), answer
    assert int(stack.query(f"SELECT COUNT(*) AS n FROM `{stack.project}.{dataset}.{table}`")[0]["n"]) == len(rows)


def events(stack: Stack, dataset: str, where: str = "TRUE") -> list[dict[str, Any]]:
    """audit_sink_events as Python values (event_time as RFC 3339 with 6 digits, from its micros)."""
    columns = ", ".join("UNIX_MICROS(event_time) AS event_time" if c == "event_time" else c for c in EVENT_COLUMNS)
    rows = stack.query(f"SELECT {columns} FROM `{stack.project}.{dataset}.audit_sink_events` WHERE {where}")
    return [{k: value(k, v) for k, v in row.items()} for row in rows]


def value(column: str, raw: Any) -> Any:
    if raw is None:
        return None
    if column == "event_time":
        return iso_micros(dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(raw)))
    if column in INT_COLUMNS:
        return int(raw)
    if column in BOOL_COLUMNS:
        return raw == "true"
    return raw


DEDUP_ENTRY = {"insertId": "dup-same", "receiveTimestamp": "2024-07-04T23:50:16Z"}

# The unit tests of crates/core/src/usage/user_agent.rs (agent -> family, version), for the
# families cases.json does not reach (browsers, HTTP tools, kaniko, ko, containers/image, odd agents).
DOCKER_UA = ("docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 "
             "UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)")
USER_AGENTS = [
    (DOCKER_UA, "docker", "24.0.7"),
    ("containerd/v1.7.13,gzip(gfe)", "containerd", "1.7.13"),
    ("containerd/1.6.28-k3s2", "containerd", "1.6.28-k3s2"),
    ("cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64", "cri-o", "1.28.1"),
    ("buildkit/v0.12.5", "buildkit", "0.12.5"),
    ("kaniko/v1.21.0, go-containerregistry/v0.19.0,gzip(gfe)", "kaniko", "1.21.0"),
    ("crane/v0.19.1 go-containerregistry/v0.19.1,gzip(gfe)", "crane", "0.19.1"),
    ("ko/v0.15.1 go-containerregistry/v0.19.0", "go-containerregistry", "0.19.0"),
    ("go-containerregistry/v0.19.0", "go-containerregistry", "0.19.0"),
    ("Buildah/1.33.2", "buildah", "1.33.2"),
    ("podman/4.9.3", "podman", "4.9.3"),
    ("skopeo/1.14.2", "skopeo", "1.14.2"),
    ("containers/5.29.2 (github.com/containers/image)", "containers-image", "5.29.2"),
    ("gcloud/465.0.0 command/gcloud.storage.buckets.describe invocation-id/5f2c python/3.11.8,gzip(gfe)", "gcloud",
     "465.0.0"),
    ("apitools gsutil/5.27 Python/3.11.8 (linux) google-cloud-sdk/465.0.0 analytics/disabled,gzip(gfe)", "gsutil",
     "5.27"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
     "browser", "Chrome/122.0.0.0"),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/122.0 Safari/537.36 Edg/122.0.2365.80", "browser",
     "Edg/122.0.2365.80"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0", "browser", "Firefox/123.0"),
    ("Mozilla/5.0", "browser", None),
    ("GCS Lifecycle Management", "lifecycle", None),
    ("python-requests/2.31.0,gzip(gfe)", "http-client", "python-requests/2.31.0"),
    ("curl/8.5.0", "http-client", "curl/8.5.0"),
    ("Go-http-client/2.0", "http-client", "Go-http-client/2.0"),
    ("Java/1.8.0_171,gzip(gfe)", "http-client", "Java/1.8.0_171"),
    ("", "none", None),
    (",gzip(gfe)", "none", None),
    (" curl/8.5.0,gzip(gfe),gzip(gfe) ", "http-client", "curl/8.5.0"),
    ("my-scanner", "other", None),
    ("notdocker/1.0", "other", None),
    ("docker/", "other", None),
    ("Docker/20.10.7", "docker", "20.10.7"),
    ("containers/5.29 (example)", "other", None),
    ("gcs lifecycle management", "other", None),
    ("v/1", "other", None),
    ("\ufffddocker/1 (x)", "other", None),
]


@pytest.fixture(scope="module")
def sinks(emulators: Stack) -> Stack:
    """Every fixture table and view of this module."""
    for dataset in (CASES_DS, PART_SINK, PART_STATS, SHARD_SINK, SHARD_STATS):
        emulators.create_dataset(dataset)
    with_events, others = case_rows()
    # Deduplication: the same insertId and timestamp twice (received twice) is one event; the
    # same insertId at two times is two.
    base = CASES["defaults"]
    dedup = [sink_row(merge_patch(base, DEDUP_ENTRY)),
             sink_row(merge_patch(base, {**DEDUP_ENTRY, "receiveTimestamp": "2024-07-04T23:50:17Z"})),
             sink_row(merge_patch(base, {"insertId": "dup-time"})),
             sink_row(merge_patch(base, {"insertId": "dup-time", "timestamp": "2024-07-04T23:50:16Z"}))]
    agents = [sink_row(merge_patch(base, {"insertId": f"ua-{n}", "protoPayload": {"requestMetadata": {
        "callerSuppliedUserAgent": agent}}})) for n, (agent, _, _) in enumerate(USER_AGENTS)]
    create_sink_table(emulators, CASES_DS, TABLE, [r for _, _, r in with_events + others] + dedup + agents,
                      partitioned=True)
    run_sql(emulators, "views/audit_sink_events.sql", CASES_DS, CASES_DS)

    s0 = s0_rows()
    create_sink_table(emulators, PART_SINK, TABLE, s0, partitioned=True)
    run_sql(emulators, "views/audit_sink_events.sql", PART_STATS, PART_SINK)
    # registry_events as a table, appended from the view by position (same columns, same order)
    run_file(emulators, "registry_events.sql", PART_STATS)
    emulators.query(f"INSERT INTO `{emulators.project}.{PART_STATS}.registry_events` "
                    f"SELECT * FROM `{emulators.project}.{PART_STATS}.audit_sink_events`")

    create_sink_table(emulators, SHARD_SINK, SHARD, s0, partitioned=False)
    # Shares the prefix but is no day's table: the adapter must not read it.
    create_sink_table(emulators, SHARD_SINK, f"{TABLE}_backup", s0[:1], partitioned=False)
    run_sql(emulators, "views/audit_sink_events_sharded.sql", SHARD_STATS, SHARD_SINK)
    run_sql(emulators, "views/audit_sink_events.sql", SHARD_STATS, SHARD_STATS)
    # registry_events as a plain view over it
    emulators.query(f"CREATE VIEW `{emulators.project}.{SHARD_STATS}.registry_events` AS "
                    f"SELECT * FROM `{emulators.project}.{SHARD_STATS}.audit_sink_events`")
    for dataset in (PART_STATS, SHARD_STATS):
        for name in EVENT_VIEWS:
            run_file(emulators, f"views/{name}.sql", dataset)
    return emulators


@pytest.fixture(scope="module")
def case_events(sinks: Stack) -> dict[str, dict]:
    rows = events(sinks, CASES_DS)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)) + 1, "only dup-time may repeat"
    return {r["request_id"]: r for r in rows}


# ---------------------------------------------------------------------------------------------
# cases.json


@pytest.mark.parametrize("index,case,row", case_rows()[0], ids=lambda v: str(v)[:50] if isinstance(v, str) else None)
def test_cases_classify_like_the_rust_classifier(case_events: dict, index: int, case: dict, row: dict) -> None:
    got = case_events.get(row["insertId"])
    assert got is not None, f"no row for case {index}: {case['name']}"
    want = {k: v for k, v in case["expect"].items() if k not in LINEAGE}
    assert {k: got[k] for k in want} == want, case["name"]
    assert {k: got[k] for k in LINEAGE} == dict.fromkeys(LINEAGE)


def test_malformed_and_skipped_cases_give_no_row(case_events: dict) -> None:
    with_events, others = case_rows()
    assert len(with_events) == sum("expect" in c for c in CASES["cases"])  # every event case is in the table
    assert {c.get("expect_skipped", False) for _, c, _ in others} == {True, False}  # both kinds are in it
    leaked = [c["name"] for _, c, r in others if r["insertId"] in case_events]
    assert leaked == []
    # the case without an insertId has no id to look for: the count says it made no row either
    assert len(case_events) == len(with_events) + 2 + len(USER_AGENTS)  # + dup-same + dup-time + ua-N


def test_user_agents_give_the_families_of_user_agent_rs(case_events: dict) -> None:
    got = [(agent, case_events[f"ua-{n}"]["client_family"], case_events[f"ua-{n}"]["client_version"])
           for n, (agent, _, _) in enumerate(USER_AGENTS)]
    assert got == USER_AGENTS


def test_an_entry_counts_once_per_insert_id_and_timestamp(sinks: Stack) -> None:
    rows = sinks.query(f"SELECT request_id, COUNT(*) AS n FROM `{sinks.project}.{CASES_DS}.audit_sink_events` "
                       "WHERE STARTS_WITH(request_id, 'dup-') GROUP BY request_id")
    assert {r["request_id"]: int(r["n"]) for r in rows} == {"dup-same": 1, "dup-time": 2}


# ---------------------------------------------------------------------------------------------
# the S0 sink object, partitioned and date-sharded


def test_s0_gives_the_readers_events(sinks: Stack) -> None:
    rows = events(sinks, PART_STATS)
    assert len(rows) == EXPECTED["events"]
    assert len({r["request_id"] for r in rows}) == EXPECTED["events"]  # the duplicate line is dropped
    by_action: dict[str, int] = {}
    for r in rows:
        by_action[r["action"]] = by_action.get(r["action"], 0) + 1
    assert by_action == EXPECTED["pulls_by_action"]
    assert {r["source_kind"] for r in rows} == {"audit_log"}
    lines = S0.read_text().splitlines()
    other_service = [json.loads(lines[n - 1])["insertId"] for n in EXPECTED["skipped_lines"]]
    assert not {r["request_id"] for r in rows} & set(other_service)


def test_the_sharded_sink_gives_the_same_rows(sinks: Stack) -> None:
    key = lambda r: (r["time_micros"], r["request_id"])  # noqa: E731
    partitioned = sorted(events(sinks, PART_STATS), key=key)
    sharded = sorted(events(sinks, SHARD_STATS), key=key)
    assert sharded == partitioned
    assert len(sharded) == EXPECTED["events"]  # the _backup table is not read


def schema_of(stack: Stack, sql: str) -> list[tuple[str, str]]:
    status, answer = http_json("POST", f"{stack.bigquery_api}/queries", {"query": sql, "useLegacySql": False})
    assert status == 200, answer
    return [(f["name"], f["type"]) for f in answer["schema"]["fields"]]


def test_the_view_has_the_registry_events_columns(sinks: Stack) -> None:
    """Names, order and types of the events table (the positional INSERT … SELECT * worked too)."""
    status, table = http_json("GET", f"{sinks.bigquery_api}/datasets/{PART_STATS}/tables/registry_events")
    assert status == 200, table
    want = [(f["name"], f["type"]) for f in table["schema"]["fields"]]
    assert [n for n, _ in want] == EVENT_COLUMNS
    for dataset in (CASES_DS, PART_STATS, SHARD_STATS):
        got = schema_of(sinks, f"SELECT * FROM `{sinks.project}.{dataset}.audit_sink_events` LIMIT 0")
        assert got == want, dataset
    count = sinks.query(f"SELECT COUNT(*) AS n FROM `{sinks.project}.{PART_STATS}.registry_events`")
    assert int(count[0]["n"]) == EXPECTED["events"]


# ---------------------------------------------------------------------------------------------
# the statistics views over it


def pulls_per_image(stack: Stack, dataset: str) -> dict[str, int]:
    pulls: dict[str, int] = {}
    for row in select(stack, dataset, "image_pulls_daily", ["registry_host", "repository", "pulls"]):
        key = f"{row['registry_host']}/{row['repository']}"
        pulls[key] = pulls.get(key, 0) + row["pulls"]
    return {k: v for k, v in pulls.items() if v}


@pytest.mark.parametrize("view", EVENT_VIEWS)
def test_every_statistics_view_runs_on_sink_events(sinks: Stack, view: str) -> None:
    """Each view answers over the sink's events, the same for both sink forms."""
    answers = [sorted(json.dumps(r, sort_keys=True) for r in
                      sinks.query(f"SELECT * FROM `{sinks.project}.{dataset}.{view}`"))
               for dataset in (PART_STATS, SHARD_STATS)]
    assert answers[0] == answers[1]
    assert answers[0], f"{view} is empty over S0's events"


def test_the_statistics_count_what_the_fixture_says(sinks: Stack) -> None:
    """The pull rule for audit rows is the views' own (sql/views/blob_downloads.sql); the numbers
    are sink/expected.json's, the same the loader-fed table gives (e2e/test_audit.py)."""
    assert pulls_per_image(sinks, PART_STATS) == EXPECTED["pulls_per_image"]
    if "agent_pulls_daily" in EVENT_VIEWS:
        agents = select(sinks, PART_STATS, "agent_pulls_daily", ["manifest_reads"])
        assert sum(int(r["manifest_reads"]) for r in agents) == EXPECTED["agent_pulls"]
    refused = {(e["insertId"], e["timestamp"]) for e in s0_entries()
               if e["protoPayload"].get("serviceName") == "artifactregistry.googleapis.com"
               and (e["protoPayload"].get("status") or {}).get("code")}
    failures = select(sinks, PART_STATS, "failures", ["status", "action", "count"])
    assert sum(r["count"] for r in failures) == len(refused) == 3
    pushes = select(sinks, PART_STATS, "pushes", ["bucket", "pushes", "failed", "bytes_received"])
    assert pushes == [{"bucket": None, "pushes": EXPECTED["pulls_by_action"]["push"], "failed": 0,
                       "bytes_received": 0}]
    totals = select(sinks, PART_STATS, "repository_bytes", ["pulls", "bytes_served"])
    assert sum(r["pulls"] for r in totals) == sum(EXPECTED["pulls_per_image"].values())
    assert {r["bytes_served"] for r in totals} == {0}  # audit entries carry no sizes


# ---------------------------------------------------------------------------------------------
# the files


@pytest.mark.parametrize("name", ["views/audit_sink_events.sql", "views/audit_sink_events_sharded.sql"])
def test_sql_parses_as_bigquery(emulators: Stack, name: str) -> None:
    import sqlglot
    from sqlglot.errors import ErrorLevel

    parsed = [sqlglot.parse_one(s, read="bigquery", error_level=ErrorLevel.RAISE)
              for s in statements(render(name, emulators, "storageanalysis", "auditsink"))]
    assert len(parsed) == 1
    assert parsed[0].sql(dialect="bigquery").upper().startswith("CREATE OR REPLACE VIEW")
