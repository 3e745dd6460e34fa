#!/usr/bin/env python3.13
"""Create (or verify) the virtualenv that runs the emulator e2e suite.

Usage: python3.13 e2e/bootstrap.py VENV_DIR

What it does, and why:
- creates VENV_DIR with the running interpreter (local-bigquery needs Python >= 3.13);
- installs exactly the pinned set in e2e/requirements.txt with ``--no-deps`` (the set is
  a complete freeze; local-bigquery's ``duckdb>=2`` requirement is deliberately
  overridden, see the comment in requirements.txt);
- copies the DuckDB extension binaries shipped in the ``duckdb-extension-*`` wheels into
  ``VENV_DIR/home/.duckdb/extensions/<duckdb version>/<platform>/`` so DuckDB never tries
  to download them (no internet here). Processes that run local-bigquery must use
  ``HOME=VENV_DIR/home`` (e2e/stack.py does);
- writes a marker file holding the hash of requirements.txt and the interpreter version,
  so a second run is a no-op that takes well under a second.

Exit code 0 on success; prints the venv's python path on the last line.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
MARKER_NAME = ".gcr-usage-e2e-bootstrap.json"
# The DuckDB version whose extension wheels are pinned; must match requirements.txt.
DUCKDB_VERSION = "1.5.5"
EXTENSIONS = ("icu", "httpfs", "ducklake", "spatial")


def duckdb_platform() -> str:
    """DuckDB's name for this platform's extension directory."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux_{arch}"


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def scratch_home(venv_dir: Path) -> Path:
    """HOME used by processes of the suite, so DuckDB finds the offline extensions."""
    return venv_dir / "home"


def extension_dir(venv_dir: Path) -> Path:
    return scratch_home(venv_dir) / ".duckdb" / "extensions" / f"v{DUCKDB_VERSION}" / duckdb_platform()


def wanted_state() -> dict[str, str]:
    """What the marker must say for the venv to count as up to date."""
    return {
        "requirements_sha256": hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest(),
        "python": platform.python_version(),
        "duckdb": DUCKDB_VERSION,
        "platform": duckdb_platform(),
    }


def pinned_versions() -> dict[str, str]:
    """name -> version for every `name==version` line of requirements.txt."""
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def is_up_to_date(venv_dir: Path) -> bool:
    marker = venv_dir / MARKER_NAME
    if not marker.is_file() or not venv_python(venv_dir).exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if {k: recorded.get(k) for k in wanted_state()} != wanted_state():
        return False
    # Cheap sanity check that nobody deleted the extension files since.
    return all((extension_dir(venv_dir) / f"{name}.duckdb_extension").is_file() for name in EXTENSIONS)


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def install_packages(venv_dir: Path) -> None:
    py = str(venv_python(venv_dir))
    # --no-deps: the file is a full freeze, and resolving would refuse duckdb 1.5.5.
    run([py, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "-r", str(REQUIREMENTS)])


def site_packages(venv_dir: Path) -> Path:
    out = subprocess.run(
        [str(venv_python(venv_dir)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def place_extensions(venv_dir: Path) -> None:
    """Copy the wheels' *.duckdb_extension files where DuckDB looks for installed extensions."""
    target = extension_dir(venv_dir)
    target.mkdir(parents=True, exist_ok=True)
    site = site_packages(venv_dir)
    for name in EXTENSIONS:
        source = site / f"duckdb_extension_{name}" / "extensions" / f"v{DUCKDB_VERSION}" / f"{name}.duckdb_extension"
        if not source.is_file():
            raise SystemExit(f"bootstrap: missing {source} (wheel layout changed?)")
        shutil.copy2(source, target / source.name)
    print(f"bootstrap: DuckDB extensions placed in {target}", flush=True)


def write_marker(venv_dir: Path) -> None:
    state = wanted_state() | {"pins": pinned_versions()}
    (venv_dir / MARKER_NAME).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.version_info < (3, 13):
        print(f"bootstrap: local-bigquery needs Python >= 3.13, this is {platform.python_version()}", file=sys.stderr)
        return 2
    venv_dir = Path(argv[1]).resolve()
    if is_up_to_date(venv_dir):
        print(f"bootstrap: {venv_dir} is up to date", flush=True)
        print(venv_python(venv_dir))
        return 0
    if not venv_python(venv_dir).exists():
        print(f"bootstrap: creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    install_packages(venv_dir)
    place_extensions(venv_dir)
    write_marker(venv_dir)
    print(f"bootstrap: {venv_dir} ready", flush=True)
    print(venv_python(venv_dir))
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv))
