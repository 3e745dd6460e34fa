"""Running the files in sql/ against a stack: placeholders, statements, typed results."""

from __future__ import annotations

import datetime as dt
import string
from decimal import Decimal

import expected
from stack import REPO_ROOT, Stack

SQL_DIR = REPO_ROOT / "sql"


def render(name: str, stack: Stack, dataset: str | None = None) -> str:
    """sql/NAME with ${PROJECT}, ${DATASET}, ${LOCATION} substituted."""
    return string.Template((SQL_DIR / name).read_text()).substitute(
        PROJECT=stack.project, DATASET=dataset or stack.dataset, LOCATION=stack.location)


def statements(script: str) -> list[str]:
    """tables.sql's convention: comment lines dropped, statements split on ';'."""
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def micros_iso(micros: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def iso(rest_timestamp: str) -> str:
    """The REST API's TIMESTAMP value (seconds as a decimal string, maybe "1.7E9" style) as ISO 8601."""
    return micros_iso(int(Decimal(rest_timestamp) * 1_000_000))


def image_pulls(stack: Stack, dataset: str | None = None) -> list[expected.ImagePulls]:
    """Run sql/image_pulls_raw.sql and convert the REST answer to ImagePulls."""
    rows = stack.query(render("image_pulls_raw.sql", stack, dataset))
    return [
        expected.ImagePulls(r["registry_host"], r["repository"], int(r["blob_downloads"]), int(r["bytes_served"]),
                            int(r["distinct_client_ips"]), iso(r["first_seen"]), iso(r["last_seen"]))
        for r in rows
    ]
