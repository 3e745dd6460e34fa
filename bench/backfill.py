#!/usr/bin/env python3
"""Backfill on the emulators: N usage logs loaded in batches, one job per object, and as live events.

A benchmark, not a test: it prints a table and asserts only that every path loaded every row
exactly once (the tables' row counts). Run it with the e2e venv's python:

    target/e2e-venv/bin/python bench/backfill.py [--objects 2000] [--concurrency 0|8] [--shape pubsub-push]

What it does, in one run on one emulator stack (e2e/stack.py: fake-gcs-server, local-bigquery
on DuckDB, the component under deploy/serve.sh = `wasmtime serve` on the precompiled .cwasm):

  1. Uploads --objects usage-log objects (thread pool of 8) to a bucket of their own,
     `PREFIX_usage_YYYY_MM_DD_HH_00_00_<hex id>_v0`, one per hour from 2024-01-01 over the three
     prefixes of fixtures/logs/, each with the fixtures' verbatim header and 1-5 data rows copied
     from the fixtures' usage logs (csv, every value quoted, a fifth with CRLF line ends).
  2. Loads all of them, raw mode, each path into a fresh dataset (BigQuery REST datasets.insert):
     (a) `gcr-usage backfill gs://BUCKET --json`, default flags (--objects-per-job 1000): one load
         job per 1,000 objects, after one reservation (a query job) per object;
     (b) the same with `--objects-per-job 1 --jobs-per-table-per-day 1500` (the most the CLI
         accepts: BigQuery's daily limit per table): one load job per object, still through the
         reservations; above 1,500 objects the run stops at the budget (exit 3) and the same
         command is run again, as a user would; the runs' figures are added up;
     (c) the live path: one event per object (e2e/events.py make_event + deliver, --shape) to the
         component, one at a time: one load job per object;
     (c8) with --concurrency 8 (default 0: left out), the same with 8 events in flight, into a
         second component process of its own dataset; answers local-bigquery's DuckDB refuses with a write-write
         conflict (422, an emulator limit, see e2e/test_hostile.py) or 503 are redelivered, and
         counted.
  Reported per path: wall time (the CLI process from start to exit; the deliveries from the first
  sent to the last answered), objects/s, load jobs (the summary's `load_jobs`; for events the
  distinct job ids of the `loaded` answers), reservations, the CLI's CPU seconds, rows loaded (the
  summary / the answers, and COUNT(*) of the table, both must equal the rows uploaded), and
  ratios of jobs and time to (c), measured in the same run.

Environment: GCR_USAGE_CLI (default target/release/gcr-usage when built, else
target/debug/gcr-usage), GCR_USAGE_WASM and WASMTIME as for e2e/stack.py. Figures go to stdout and
target/bench/backfill.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

import events as events_mod  # noqa: E402  (e2e/events.py: the fixture event shapes, the sender)
import stack as stack_mod  # noqa: E402  (e2e/stack.py: the emulator stack)

SEED = 20240312
BUCKET = "bench-backfill-logs"
PREFIXES = ("accessLog", "us.artifacts.demo-project.appspot.com", "gcr-usage.eu.artifacts.demo-project.appspot.com")
FIRST_HOUR = datetime(2024, 1, 1, tzinfo=UTC)
TABLE = "usage"
CLI_TIMEOUT = 900.0
UPLOAD_THREADS = 8
RETRYABLE = 5  # redeliveries of one event before giving up (c8 only)
MAX_JOBS_PER_TABLE = 1500  # the CLI's cap on --jobs-per-table-per-day (BigQuery's per-table daily limit)

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class LogObject:
    name: str
    data: bytes
    rows: int


def fixture_rows() -> tuple[list[str], list[list[str]]]:
    """The usage-log header and every data row of the fixture usage logs."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in stack_mod.fixture_log_files():
        if "_usage_" not in path.name:
            continue
        records = list(csv.reader(io.StringIO(path.read_text(newline=""))))
        header = header or records[0]
        assert records[0] == header, path
        rows += [r for r in records[1:] if len(r) == len(header)]
    assert header is not None and len(header) == 17 and len(rows) >= 20, (header, len(rows))
    return header, rows


def make_corpus(n: int) -> list[LogObject]:
    header, pool = fixture_rows()
    rng = random.Random(SEED)
    objects = []
    for i in range(n):
        hour = FIRST_HOUR + timedelta(hours=i)
        prefix = PREFIXES[i % len(PREFIXES)]
        count = rng.randint(1, 5)
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n" if rng.random() < 0.2 else "\n")
        writer.writerow(header)
        for row in rng.sample(pool, count):
            writer.writerow(row)
        name = f"{prefix}_usage_{hour:%Y_%m_%d_%H}_00_00_{rng.getrandbits(64):016x}_v0"
        objects.append(LogObject(name, out.getvalue().encode(), count))
    assert len({o.name for o in objects}) == n
    return objects


def upload_all(stack: stack_mod.Stack, objects: list[LogObject]) -> tuple[dict[str, Json], float]:
    stack.create_bucket(BUCKET)
    started = time.monotonic()
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        resources = list(pool.map(lambda o: stack.upload(BUCKET, o.name, o.data, "text/csv"), objects))
    return {r["name"]: r for r in resources}, time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# the paths


@dataclass
class Result:
    path: str
    what: str
    seconds: float
    load_jobs: int
    rows: int  # rows the path says it loaded (summary / answers)
    table_rows: int  # COUNT(*) of the table afterwards
    reservations: int | None = None
    cpu_seconds: float | None = None
    notes: list[str] = field(default_factory=list)


def cli_binary() -> Path:
    configured = os.environ.get("GCR_USAGE_CLI")
    if configured:
        return Path(configured)
    release = REPO / "target" / "release" / "gcr-usage"
    return release if release.is_file() else REPO / "target" / "debug" / "gcr-usage"


def fresh_dataset(stack: stack_mod.Stack, name: str) -> str:
    body = {"datasetReference": {"projectId": stack.project, "datasetId": name}, "location": stack.location}
    status, answer = stack_mod.http_json("POST", f"{stack.bigquery_url}/bigquery/v2/projects/{stack.project}/datasets",
                                         body)
    if status != 200:
        raise RuntimeError(f"datasets.insert {name}: {status} {answer}")
    return name


def table_rows(stack: stack_mod.Stack, dataset: str) -> int:
    return dataclasses.replace(stack, dataset=dataset, children=[]).row_count(TABLE)


def component_env(stack: stack_mod.Stack, dataset: str) -> dict[str, str]:
    return stack_mod.loader_env(stack, component_env_overrides(dataset))


def cli_failure(argv: list[str], done: subprocess.CompletedProcess[str], why: str) -> RuntimeError:
    return RuntimeError(f"{why}\n$ {' '.join(argv)}\nexit {done.returncode}\n--- stdout ---\n{done.stdout[-3000:]}"
                        f"\n--- stderr ---\n{done.stderr[-6000:]}")


def run_backfill(stack: stack_mod.Stack, path: str, what: str, dataset: str, objects: list[LogObject],
                 *flags: str, budget: int = MAX_JOBS_PER_TABLE) -> Result:
    """`gcr-usage backfill` until done: a run stopped by the job budget (exit 3, `stopped` set) is
    run again, as its message says, and the runs' figures are added up."""
    argv = [str(cli_binary()), "backfill", f"gs://{BUCKET}", "--json", "--progress", "never", *flags]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           **component_env(stack, dataset)}
    expected = sum(o.rows for o in objects)
    seconds = cpu = 0.0
    loaded = rows = jobs = reservations = 0
    notes: list[str] = []
    for invocation in range(1, len(objects) // budget + 3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
        seconds += time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 3):
            raise cli_failure(argv, done, f"({path}) the backfill failed")
        try:
            report = json.loads(done.stdout)
        except ValueError as err:
            raise cli_failure(argv, done, f"({path}) --json printed no JSON object ({err})") from None
        want = [("already_loaded", loaded), ("rejected", []), ("held_elsewhere", [])]
        if done.returncode == 0:
            want.append(("stopped", None))
        problems = [f"{k} {report.get(k)!r} (expected {v!r})" for k, v in want if report.get(k) != v]
        if problems or (done.returncode == 3 and not report.get("stopped")):
            raise cli_failure(argv, done, f"({path}) unexpected summary of run {invocation}: {', '.join(problems)}")
        loaded += report["loaded"]
        rows += report["rows"]
        jobs += sum(report["load_jobs"].values())
        reservations += report["reservations"]
        if done.returncode == 0:
            break
        stopped = str(report["stopped"])
        notes.append(f"run {invocation} stopped after {report['loaded']} objects (exit 3): "
                     f"{stopped[:110]}{'...' if len(stopped) > 110 else ''}")
    else:
        raise RuntimeError(f"({path}) still not done after {invocation} runs: {notes}")
    if (loaded, rows) != (len(objects), expected):
        raise RuntimeError(f"({path}) loaded {loaded} objects, {rows} rows; expected {len(objects)}, {expected}")
    if invocation > 1:
        notes.append(f"{invocation} runs of the same command; figures are their sums")
    return Result(path, what, seconds, jobs, rows, table_rows(stack, dataset), reservations=reservations,
                  cpu_seconds=cpu, notes=notes)


def run_events(stack: stack_mod.Stack, loader_url: str, path: str, what: str, dataset: str,
               objects: list[LogObject], resources: dict[str, Json], shape: str, in_flight: int) -> Result:
    """One event per object, `in_flight` at a time; 503s and DuckDB write-write conflicts are
    delivered again (the same event id, as Pub/Sub or Eventarc would)."""
    redelivered = 0

    latencies: dict[str, float] = {}

    def one(obj: LogObject) -> tuple[LogObject, int, Json]:
        nonlocal redelivered
        event = events_mod.make_event(shape, resources[obj.name])
        sent = time.monotonic()
        for attempt in range(RETRYABLE + 1):
            answer = events_mod.deliver(loader_url, shape, event)
            retry = answer.status == 503 or (answer.status == 422 and b"write-write conflict" in answer.body)
            if not retry or attempt == RETRYABLE:
                break
            redelivered += 1
            time.sleep(0.05 * (attempt + 1))
        latencies[obj.name] = time.monotonic() - sent
        try:
            body = answer.json()
        except ValueError:
            body = {"outcome": "?", "body": answer.body[:300].decode(errors="replace")}
        return obj, answer.status, body

    started = time.monotonic()
    if in_flight <= 1:
        answers = [one(o) for o in objects]
    else:
        with ThreadPoolExecutor(in_flight) as pool:
            answers = list(pool.map(one, objects))
    seconds = time.monotonic() - started
    bad = [(o.name, status, body) for o, status, body in answers
           if status != 200 or body.get("outcome") != "loaded" or body.get("rows") != o.rows]
    if bad:
        raise RuntimeError(f"({path}) {len(bad)} of {len(objects)} events not loaded with their rows; first: {bad[:3]}")
    jobs = {body.get("jobId") for _, _, body in answers}
    notes = [f"{redelivered} redeliveries (503 or DuckDB write-write conflict)"] if in_flight > 1 else []
    ordered = [latencies[o.name] for o in objects]  # in the order sent
    tenth = max(1, len(ordered) // 10)
    ms = sorted(ordered)
    notes.append(f"per event (sent -> answered): p50 {1e3 * ms[len(ms) // 2]:.0f} ms, "
                 f"p90 {1e3 * ms[len(ms) * 9 // 10]:.0f} ms, max {1e3 * ms[-1]:.0f} ms; mean of the first "
                 f"{tenth} {1e3 * sum(ordered[:tenth]) / tenth:.0f} ms, of the last {tenth} "
                 f"{1e3 * sum(ordered[-tenth:]) / tenth:.0f} ms")
    return Result(path, what, seconds, len(jobs), sum(body["rows"] for _, _, body in answers),
                  table_rows(stack, dataset), notes=notes)


# ---------------------------------------------------------------------------------------------
# the report


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_report(results: list[Result], n: int, expected_rows: int, corpus_bytes: int, upload_s: float,
                 load: tuple[str, str], total_s: float) -> None:
    baseline = next(r for r in results if r.path == "(c)")
    cli = cli_binary()
    print()
    print(f"Backfill vs live events on the emulators: {n} usage-log objects, {expected_rows} rows, raw mode")
    print(f"  corpus   {n} objects ({corpus_bytes / 1e6:.2f} MB, 1-5 rows each, rows of fixtures/logs), "
          f"uploaded in {upload_s:.1f} s ({UPLOAD_THREADS} threads)")
    print(f"  cli      {cli.relative_to(REPO) if cli.is_relative_to(REPO) else cli} "
          f"({'release' if '/release/' in str(cli) else 'debug'} build)")
    print("  stack    fake-gcs-server + local-bigquery (DuckDB) + deploy/serve.sh (wasmtime serve, .cwasm), loopback")
    print(f"  machine  {os.cpu_count()} CPUs; before: {load[0]}")
    print(f"           after:  {load[1]}")
    print()
    header = (f"  {'path':<5} {'what':<60} {'wall s':>8} {'obj/s':>7} {'load jobs':>9} {'reserv.':>8} "
              f"{'CLI CPU s':>9} {'rows':>7} {'table':>7} {'jobs/(c)':>9} {'time/(c)':>9}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results:
        print(f"  {r.path:<5} {r.what:<60} {r.seconds:>8.1f} {n / r.seconds:>7.1f} {r.load_jobs:>9} "
              f"{'-' if r.reservations is None else r.reservations:>8} "
              f"{'-' if r.cpu_seconds is None else f'{r.cpu_seconds:.1f}':>9} {r.rows:>7} {r.table_rows:>7} "
              f"{r.load_jobs / baseline.load_jobs:>8.3f}x {r.seconds / baseline.seconds:>8.2f}x")
    print(f"  rows: what the path reported / COUNT(*) of its table; expected {expected_rows} everywhere (checked)")
    print("  jobs/(c), time/(c): ratio to the live path one event at a time, measured in the same run")
    for r in results:
        for note in r.notes:
            print(f"  {r.path}: {note}")
    print(f"  whole run {total_s:.0f} s (stack start, upload and checks included)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000, help="usage-log objects to load (default 2000)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="also run the live path with this many events in flight, e.g. 8 (default 0: not run; "
                             "in runs of 10-40 objects it was no faster than (c) on the emulators)")
    parser.add_argument("--budget", type=int, default=MAX_JOBS_PER_TABLE,
                        help="--jobs-per-table-per-day of (b) (default 1500, the most the CLI accepts)")
    parser.add_argument("--shape", default="pubsub-push", choices=sorted(events_mod.SHAPES),
                        help="event shape of the live path (default pubsub-push)")
    parser.add_argument("--json", type=Path, default=REPO / "target" / "bench" / "backfill.json",
                        help="where to write the figures (default target/bench/backfill.json)")
    args = parser.parse_args()
    n = args.objects
    cli = cli_binary()
    if not cli.is_file():
        print(f"no gcr-usage CLI at {cli} (cargo build -p gcr-usage-cli, or set GCR_USAGE_CLI)", file=sys.stderr)
        return 1
    reason = stack_mod.loader_unavailable_reason()
    if reason:
        print(f"cannot run the component: {reason}", file=sys.stderr)
        return 1

    run_started = time.monotonic()
    objects = make_corpus(n)
    expected = sum(o.rows for o in objects)
    load_before = uptime()
    results: list[Result] = []
    # The stack's component serves dataset "bench_live" (created before any event is sent).
    with stack_mod.stack(with_loader=True, loader_overrides=component_env_overrides("bench_live")) as stack:
        resources, upload_s = upload_all(stack, objects)
        print(f"uploaded {n} objects in {upload_s:.1f} s; loading ...", file=sys.stderr, flush=True)
        results.append(run_backfill(stack, "(a)", "backfill, default flags (--objects-per-job 1000)",
                                    fresh_dataset(stack, "bench_batched"), objects))
        print(f"(a) {results[-1].seconds:.1f} s", file=sys.stderr, flush=True)
        results.append(run_backfill(stack, "(b)", f"backfill --objects-per-job 1 --jobs-per-table-per-day {args.budget}",
                                    fresh_dataset(stack, "bench_one_per_job"), objects,
                                    "--objects-per-job", "1", "--jobs-per-table-per-day", str(args.budget),
                                    budget=args.budget))
        print(f"(b) {results[-1].seconds:.1f} s", file=sys.stderr, flush=True)
        fresh_dataset(stack, "bench_live")
        results.append(run_events(stack, stack.loader_url, "(c)", f"live: one {args.shape} event per object, 1 in flight",
                                  "bench_live", objects, resources, args.shape, 1))
        print(f"(c) {results[-1].seconds:.1f} s", file=sys.stderr, flush=True)
        if args.concurrency > 1:
            dataset = fresh_dataset(stack, "bench_live_concurrent")
            with stack_mod.loader_only(stack.bigquery_url, stack.gcs_url, component_env_overrides(dataset),
                                       name="wasmtime-serve-concurrent") as live:
                results.append(run_events(stack, live.loader_url, f"(c{args.concurrency})",
                                          f"live: the same, {args.concurrency} in flight", dataset, objects,
                                          resources, args.shape, args.concurrency))
            print(f"(c{args.concurrency}) {results[-1].seconds:.1f} s", file=sys.stderr, flush=True)
        load_after = uptime()
    for r in results:
        assert r.rows == expected == r.table_rows, (r.path, r.rows, r.table_rows, expected)
    total_s = time.monotonic() - run_started
    corpus_bytes = sum(len(o.data) for o in objects)
    print_report(results, n, expected, corpus_bytes, upload_s, (load_before, load_after), total_s)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "objects": n, "rows": expected, "bytes": corpus_bytes, "upload_seconds": upload_s, "cli": str(cli),
        "uptime_before": load_before, "uptime_after": load_after, "total_seconds": total_s,
        "results": [dataclasses.asdict(r) for r in results],
    }, indent=2) + "\n")
    return 0


def component_env_overrides(dataset: str) -> dict[str, str]:
    """What the component is told on top of stack.loader_env: its dataset, the corpus bucket, raw mode."""
    return {"GCR_USAGE_DATASET": dataset, "GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_MODE": "raw"}


if __name__ == "__main__":
    sys.exit(main())
