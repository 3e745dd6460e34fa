"""The official Cloud Storage log schemas (cloud_storage_usage_schema_v0.json,
cloud_storage_storage_schema_v0.json), as (name, type, mode) in column order.

Types are compared after ``normalize_type``: BigQuery's REST API says INTEGER where DDL says
INT64, and a load job may send either.
"""

from __future__ import annotations

from typing import Any

USAGE_FIELDS: list[tuple[str, str, str]] = [
    ("time_micros", "INTEGER", "NULLABLE"),
    ("c_ip", "STRING", "NULLABLE"),
    ("c_ip_type", "INTEGER", "NULLABLE"),
    ("c_ip_region", "STRING", "NULLABLE"),
    ("cs_method", "STRING", "NULLABLE"),
    ("cs_uri", "STRING", "NULLABLE"),
    ("sc_status", "INTEGER", "NULLABLE"),
    ("cs_bytes", "INTEGER", "NULLABLE"),
    ("sc_bytes", "INTEGER", "NULLABLE"),
    ("time_taken_micros", "INTEGER", "NULLABLE"),
    ("cs_host", "STRING", "NULLABLE"),
    ("cs_referer", "STRING", "NULLABLE"),
    ("cs_user_agent", "STRING", "NULLABLE"),
    ("s_request_id", "STRING", "NULLABLE"),
    ("cs_operation", "STRING", "NULLABLE"),
    ("cs_bucket", "STRING", "NULLABLE"),
    ("cs_object", "STRING", "NULLABLE"),
]

STORAGE_FIELDS: list[tuple[str, str, str]] = [
    ("bucket", "STRING", "REQUIRED"),
    ("storage_byte_hours", "INTEGER", "REQUIRED"),
]

_TYPE_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN"}


def normalize_type(name: str) -> str:
    return _TYPE_ALIASES.get(name.upper(), name.upper())


def normalize(fields: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """A REST schema's fields as (name, TYPE, MODE); a missing mode means NULLABLE."""
    return [(f["name"], normalize_type(f["type"]), (f.get("mode") or "NULLABLE").upper()) for f in fields]
