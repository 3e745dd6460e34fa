"""Helpers of test_views.py: the files of sql/views/ in dependency order, loading usage-log files
into a dataset with REST load jobs, and reading the views' answers as plain Python values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import schema
from sqlrun import SQL_DIR, iso, render, statements
from stack import Stack, http_json

# Creation order: a view must exist before a view that reads it.
EVENT_VIEWS = ["registry_events_unique", "blob_downloads", "image_pulls_daily", "repository_bytes", "top_clients",
               "pushes", "failures", "agent_pulls_daily"]
RAW_VIEWS = ["raw_registry_events", "raw_blob_downloads", "raw_image_pulls_daily"]
# Over a Cloud Logging sink's own BigQuery table, not registry_events (e2e/test_audit_sink.py).
SINK_VIEWS = ["audit_sink_events", "audit_sink_events_sharded"]
VIEW_FILES = [f"views/{name}.sql" for name in EVENT_VIEWS + RAW_VIEWS]
NEW_SQL_FILES = ["registry_events.sql", *VIEW_FILES]


def run_file(stack: Stack, name: str, dataset: str) -> None:
    for statement in statements(render(name, stack, dataset)):
        stack.query(statement)


# Files of these tests go to their own bucket: the log bucket keeps exactly fixtures/logs.
VIEWS_BUCKET = "gcr-usage-views-fixtures"


def upload_and_load(stack: Stack, dataset: str, path_or_name: Path | str, data: bytes | None = None,
                    table: str = "usage") -> dict:
    """Append a usage-log object to DATASET.usage with a CSV load job carrying the official schema.
    A name alone is an object of the log bucket; a Path, or a name with `data`, is uploaded to
    VIEWS_BUCKET first."""
    name = path_or_name.name if isinstance(path_or_name, Path) else path_or_name
    bucket = stack.bucket
    if isinstance(path_or_name, Path) or data is not None:
        bucket = VIEWS_BUCKET
        stack.create_bucket(bucket)
        stack.upload(bucket, name, data if data is not None else Path(path_or_name).read_bytes())
    job = {
        "jobReference": {"projectId": stack.project, "location": stack.location,
                         "jobId": f"{dataset}_" + re.sub(r"[^A-Za-z0-9_-]", "_", name)},
        "configuration": {"load": {
            "sourceUris": [f"gs://{bucket}/{name}"],
            "destinationTable": {"projectId": stack.project, "datasetId": dataset, "tableId": table},
            "sourceFormat": "CSV", "skipLeadingRows": 1, "writeDisposition": "WRITE_APPEND",
            "schema": {"fields": [{"name": n, "type": t, "mode": m} for n, t, m in schema.USAGE_FIELDS]},
        }},
    }
    status, answer = http_json("POST", f"{stack.bigquery_api}/jobs", job)
    assert status == 200, answer
    assert "errorResult" not in answer["status"], answer["status"]
    return answer


def select(stack: Stack, dataset: str, view: str, columns: list[str]) -> list[dict[str, Any]]:
    """SELECT columns FROM the view, values converted: ints, bools, ISO timestamps, strings."""
    rows = stack.query(f"SELECT {', '.join(columns)} FROM `{stack.project}.{dataset}.{view}`")
    return [{k: convert(k, v) for k, v in row.items()} for row in rows]


INT_COLUMNS = {"pulls", "blob_downloads", "bytes_served", "clients", "images", "pushes", "failed", "bytes_received",
               "status", "count", "n", "time_micros", "response_bytes", "request_bytes", "manifest_reads"}
TIME_COLUMNS = {"first_seen", "last_seen", "event_time"}


def convert(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in INT_COLUMNS:
        return int(value)
    if column in TIME_COLUMNS:
        return iso(value)
    if column == "success":
        return value == "true"
    return value


def sql_file_text(name: str) -> str:
    return (SQL_DIR / name).read_text()
