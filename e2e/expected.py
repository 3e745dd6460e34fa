"""Expected answers, read from fixtures/logs/README.md (the one place that states them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "fixtures" / "logs" / "README.md"


@dataclass(frozen=True)
class LogFile:
    object: str
    kind: str  # usage | storage
    table: str
    data_rows: int
    line_ends: str


@dataclass(frozen=True)
class ImagePulls:
    registry_host: str
    repository: str
    blob_downloads: int
    bytes_served: int
    distinct_client_ips: int
    first_seen: str  # ISO 8601, UTC, microseconds, "Z"
    last_seen: str


def _table(name: str) -> list[list[str]]:
    """Cells of the markdown table between <!-- expected:NAME --> and <!-- /expected:NAME -->."""
    text = README.read_text()
    match = re.search(rf"<!-- expected:{name} -->(.*?)<!-- /expected:{name} -->", text, re.S)
    if not match:
        raise ValueError(f"{README}: no expected:{name} block")
    rows = [line.strip() for line in match.group(1).strip().splitlines() if line.strip().startswith("|")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]
    return [row for row in cells[1:] if not set("".join(row)) <= set("-: ")]  # drop header, rule


def log_files() -> list[LogFile]:
    return [LogFile(o, k, t, int(n), e) for o, k, t, n, e in _table("files")]


def image_pulls() -> list[ImagePulls]:
    return [ImagePulls(h, r, int(d), int(b), int(i), f, last) for h, r, d, b, i, f, last in _table("image_pulls")]


def total_rows(table: str) -> int:
    return sum(f.data_rows for f in log_files() if f.table == table)
