"""`gcr-usage backfill` end to end: the Rust CLI lists a log bucket of fake-gcs-server and loads
its log objects into local-bigquery in a few large batch load jobs, exactly once.

The corpus is generated (``random.Random(SEED)``): one usage log per hour over 84 days of one
source bucket (1 to 5 rows each, some hours with a second object, some CRLF), 2,058 objects in
all, plus two objects that are not logs; smaller buckets hold a classified corpus (malformed and
duplicate rows included) and a corpus with one log BigQuery cannot load. Every scenario writes
into a dataset of its own on the session's emulators (the whole bucket: on emulators of its own),
so the expected row counts are exact:

- ``--dry-run``: what would be loaded and the plan, nothing loaded;
- the whole bucket, then a rerun that loads nothing;
- a run killed with SIGKILL after its first batch, then a rerun;
- two runs at once; live events through the component during a run;
- the per-table job budget (exit 3), an object BigQuery rejects (exit 4), classified mode;
- bad input: each error with its exit status and a message naming the problem.

Environment: ``GCR_USAGE_CLI`` (default target/debug/gcr-usage); without it the module is
skipped (failed with GCR_USAGE_E2E_STRICT=1).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import events
import stack as stack_mod
from chaos_proxy import ChaosProxy
from conftest import require, require_loader, watched
from stack import REPO_ROOT, Json, Stack, http_json, loader_env, loader_only

SEED = 20240101
BUCKET = "backfill-logs"
CLASSIFIED_BUCKET = "backfill-classified"
REJECT_BUCKET = "backfill-rejects"
SOURCE_BUCKET = "artifacts.demo-project.appspot.com"  # the logged bucket, and the log prefix
FIRST_HOUR = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 84
SECOND_OBJECT_EVERY = 48  # hours with a second log object (several objects per hour happen)
NOT_LOGS = ("notes/README.txt", f"{SOURCE_BUCKET}_usage_summary.csv")
CLASSIFIED_OBJECTS = 300
HEADER = ["time_micros", "c_ip", "c_ip_type", "c_ip_region", "cs_method", "cs_uri", "sc_status", "cs_bytes",
          "sc_bytes", "time_taken_micros", "cs_host", "cs_referer", "cs_user_agent", "s_request_id",
          "cs_operation", "cs_bucket", "cs_object"]
CLIENTS = ["198.51.100.23", "203.0.113.7", "192.0.2.45", "198.51.100.140", "2001:db8:85a3::8a2e:370:7334"]
AGENTS = ["docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 "
          "UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)",
          "containerd/v1.7.13,gzip(gfe)", "go-containerregistry/v0.19.0,gzip(gfe)",
          "kaniko/v1.20.0, go-containerregistry,gzip(gfe)"]
REPOSITORIES = ["demo-project/app", "demo-project/team/api/server", "demo-project/batch/worker"]
CLI_TIMEOUT = 600.0


# ---------------------------------------------------------------------------------------------
# the CLI


def cli_binary() -> Path:
    """The `gcr-usage` binary under test: GCR_USAGE_CLI, else target/debug/gcr-usage."""
    return Path(os.environ.get("GCR_USAGE_CLI") or REPO_ROOT / "target" / "debug" / "gcr-usage")


def cli_unavailable_reason() -> str | None:
    binary = cli_binary()
    if not binary.is_file():
        return f"gcr-usage CLI not built: {binary} (cargo build -p gcr-usage-cli, or set GCR_USAGE_CLI)"
    done = subprocess.run([str(binary), "backfill", "--help"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return f"{binary} has no `backfill` subcommand: {done.stderr.strip().splitlines()[:1]}"
    return None


@pytest.fixture(scope="module", autouse=True)
def cli() -> Path:
    require(cli_unavailable_reason())
    return cli_binary()


@dataclass
class Run:
    """One finished `gcr-usage backfill`."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> Json:
        """The one JSON object `--json` prints on stdout."""
        try:
            value = json.loads(self.stdout)
        except ValueError as err:
            raise AssertionError(f"stdout is not one JSON object ({err}):\n{self}") from None
        assert isinstance(value, dict), self
        return value

    def __repr__(self) -> str:  # what pytest shows in an assertion's message
        return (f"$ {' '.join(self.argv)}\nexit {self.code}\n--- stdout ---\n{self.stdout[-3000:]}"
                f"\n--- stderr ---\n{self.stderr[-6000:]}")


def cli_env(stack: Stack, dataset: str, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The component's environment for the emulators (loader_env), into ``dataset``, with the
    corpus bucket allowed; an override of None removes the variable."""
    env = loader_env(stack, {"GCR_USAGE_DATASET": dataset, "GCR_USAGE_BUCKETS": BUCKET})
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}


def argv_of(bucket: str, args: list[str]) -> list[str]:
    return [str(cli_binary()), "backfill", f"gs://{bucket}", *args]


def backfill(stack: Stack, dataset: str, *args: str, bucket: str = BUCKET, json_out: bool = True,
             env: Mapping[str, str | None] | None = None) -> Run:
    argv = argv_of(bucket, [*args, "--json"] if json_out else list(args))
    done = subprocess.run(argv, env=cli_env(stack, dataset, env), capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)
    return Run(argv, done.returncode, done.stdout, done.stderr)


class Running:
    """A backfill started in the background; stderr is read line by line as it comes."""

    def __init__(self, stack: Stack, dataset: str, *args: str, bucket: str = BUCKET,
                 env: Mapping[str, str | None] | None = None) -> None:
        self.argv = argv_of(bucket, [*args, "--json"])
        self.proc = subprocess.Popen(self.argv, env=cli_env(stack, dataset, env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.out: list[str] = []
        self._readers = [threading.Thread(target=self._drain, args=(self.proc.stderr, self.lines), daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = CLI_TIMEOUT) -> Run:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        for reader in self._readers:
            reader.join(10)
        return Run(self.argv, code, "".join(self.out), "".join(self.lines))


# ---------------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class LogObject:
    name: str
    hour: datetime
    data: bytes
    rows: int  # data rows: raw rows a correct load appends
    events: int  # rows that classify as events (not malformed, not a repeated request id)


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def usage_row(rng: random.Random, hour: datetime, request_id: str) -> list[str]:
    """One blob download by a registry client, within ``hour``."""
    repository = rng.choice(REPOSITORIES)
    blob = f"sha256:{digest(f'{repository}/{rng.randrange(6)}')}"
    client = rng.choice(CLIENTS)
    micros = int(hour.timestamp()) * 1_000_000 + rng.randrange(3_600_000_000)
    return [str(micros), client, "2" if ":" in client else "1", "", "GET", f"/{SOURCE_BUCKET}/containers/images/{blob}",
            "200", "0", str(rng.randrange(1_000, 50_000_000)), str(rng.randrange(500, 90_000)),
            "storage.googleapis.com", f"https://gcr.io/v2/{repository}/blobs/{blob}", rng.choice(AGENTS), request_id,
            "GET_Object", SOURCE_BUCKET, f"containers/images/{blob}"]


def usage_log(rng: random.Random, hour: datetime, rows: int, tag: str, *, malformed: int = 0,
              repeated: int = 0) -> tuple[bytes, int]:
    """A usage-log CSV of ``rows`` data rows (header line, every value quoted); ``malformed`` of
    them with a status that is not a number, ``repeated`` of them a copy of an earlier row (the
    same request id). Returns the bytes and the number of rows that classify as events."""
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=newline)
    writer.writerow(HEADER)
    records = [usage_row(rng, hour, f"ADPyc{tag}r{n:02d}{rng.getrandbits(48):012x}") for n in range(rows - repeated)]
    for n in range(malformed):
        records[n][HEADER.index("sc_status")] = "OK"
    records += [list(records[-1 - n]) for n in range(repeated)]
    for record in records:
        writer.writerow(record)
    return out.getvalue().encode(), rows - malformed - repeated


def object_name(hour: datetime, rng: random.Random) -> str:
    return f"{SOURCE_BUCKET}_usage_{hour:%Y_%m_%d_%H}_00_00_{rng.getrandbits(40):010x}_v0"


def make_corpus(seed: int) -> list[LogObject]:
    """One usage log per hour over DAYS days (1-5 rows), a second one every SECOND_OBJECT_EVERY hours."""
    rng = random.Random(seed)
    objects: dict[str, LogObject] = {}
    for index in range(DAYS * 24):
        hour = FIRST_HOUR + timedelta(hours=index)
        for copy in range(2 if index % SECOND_OBJECT_EVERY == 7 else 1):
            rows = rng.randint(1, 5)
            data, good = usage_log(rng, hour, rows, f"{index:05d}{copy}")
            name = object_name(hour, rng)
            objects[name] = LogObject(name, hour, data, rows, good)
    return sorted(objects.values(), key=lambda o: o.name)


def make_classified_corpus(seed: int) -> list[LogObject]:
    """CLASSIFIED_OBJECTS usage logs of consecutive hours; every 7th has a malformed row, every
    11th a repeated one (neither is an event)."""
    rng = random.Random(seed)
    objects = []
    for index in range(CLASSIFIED_OBJECTS):
        hour = FIRST_HOUR + timedelta(hours=index)
        malformed, repeated = int(index % 7 == 3), int(index % 11 == 5)
        rows = rng.randint(1, 5) + malformed + repeated
        data, good = usage_log(rng, hour, rows, f"c{index:05d}", malformed=malformed, repeated=repeated)
        objects.append(LogObject(object_name(hour, rng), hour, data, rows, good))
    return sorted(objects, key=lambda o: o.name)


@dataclass
class Corpus:
    bucket: str
    objects: list[LogObject]
    resources: dict[str, Json]  # name -> resource as uploaded

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.objects)

    def window(self, since: datetime, until: datetime) -> list[LogObject]:
        """The objects whose name's hour is in [since, until]."""
        return [o for o in self.objects if since <= o.hour <= until]


def upload_all(stack: Stack, bucket: str, files: Mapping[str, bytes]) -> dict[str, Json]:
    stack.create_bucket(bucket)
    with ThreadPoolExecutor(8) as pool:
        resources = list(pool.map(lambda item: stack.upload(bucket, item[0], item[1]), files.items()))
    return {r["name"]: r for r in resources}


@pytest.fixture(scope="module")
def corpus(emulators: Stack) -> Corpus:
    objects = make_corpus(SEED)
    started = time.monotonic()
    files = {o.name: o.data for o in objects} | {name: b"not a log\n" for name in NOT_LOGS}
    resources = upload_all(emulators, BUCKET, files)
    print(f"uploaded {len(files)} objects in {time.monotonic() - started:.1f}s")
    return Corpus(BUCKET, objects, resources)


@pytest.fixture(scope="module")
def classified_corpus(emulators: Stack) -> Corpus:
    objects = make_classified_corpus(SEED + 1)
    resources = upload_all(emulators, CLASSIFIED_BUCKET, {o.name: o.data for o in objects})
    return Corpus(CLASSIFIED_BUCKET, objects, resources)


# ---------------------------------------------------------------------------------------------
# BigQuery


DATASETS: set[str] = set()


def dataset(stack: Stack, name: str) -> str:
    """A fresh dataset for one scenario (a name used once per session)."""
    assert name not in DATASETS, name
    DATASETS.add(name)
    stack.create_dataset(name)
    return name


@pytest.fixture(scope="module")
def scratch(emulators: Stack) -> str:
    """A dataset for runs that must load nothing (dry runs, refusals)."""
    return dataset(emulators, "backfill_scratch")


def rows_in(stack: Stack, dataset_id: str, table: str) -> int | None:
    """Rows of the table, None when it does not exist."""
    status, _ = http_json("GET", f"{stack.bigquery_api}/datasets/{dataset_id}/tables/{table}")
    if status == 404:
        return None
    assert status == 200, status
    return dataclasses.replace(stack, dataset=dataset_id, children=[]).row_count(table)


def name_of(item: str, bucket: str) -> str:
    """An object as the report names it (gs://bucket/name, maybe #generation) -> its name."""
    item = re.sub(r"#\d+$", "", item)
    return item.removeprefix(f"gs://{bucket}/")


def day(value: datetime) -> str:
    return f"{value:%Y-%m-%d}"


def window_args(first: datetime, last: datetime) -> list[str]:
    return ["--since", f"{first:%Y-%m-%dT%H}", "--until", f"{last:%Y-%m-%dT%H}"]


def assert_finished(run: Run, loaded: int, already: int) -> Json:
    """Exit 0, nothing rejected, held elsewhere, stopped; the counts given."""
    assert run.code == 0, run
    report = run.report
    assert (report["loaded"], report["already_loaded"]) == (loaded, already), run
    assert (report["rejected"], report["held_elsewhere"], report["stopped"], report["dry_run"]) == \
        ([], [], None, False), run
    return report


# ---------------------------------------------------------------------------------------------
# the corpus and dry runs


def test_the_corpus_is_what_the_tests_expect() -> None:
    objects = make_corpus(SEED)
    assert len(objects) == DAYS * 24 + DAYS * 24 // SECOND_OBJECT_EVERY == 2058
    assert len({o.name for o in objects}) == len(objects)
    assert {o.rows for o in objects} == {1, 2, 3, 4, 5}
    assert objects == make_corpus(SEED)  # deterministic
    first = objects[0].data.decode().splitlines()
    assert first[0] == ",".join(f'"{h}"' for h in HEADER)
    assert all(len(next(csv.reader([line]))) == 17 for line in first[1:])


def test_dry_run_lists_and_plans_without_loading(emulators: Stack, corpus: Corpus) -> None:
    ds = dataset(emulators, "backfill_dry_run")
    n = len(corpus.objects)
    run = backfill(emulators, ds, "--dry-run", "--objects-per-job", "300")
    assert run.code == 0, run
    report = run.report
    assert report["dry_run"] is True
    assert (report["listed"], report["log_objects"]) == (n + len(NOT_LOGS), n), run
    assert report["bytes"] == sum(len(o.data) for o in corpus.objects)
    assert report["plan"]["jobs_per_table"] == {"usage": math.ceil(n / 300)} == {"usage": 7}
    assert report["plan"]["over_budget"] == {}
    assert report["plan"]["estimated_seconds"] >= 0
    assert (report["loaded"], report["rows"], report["load_jobs"], report["reservations"]) == (0, 0, {}, 0), run
    assert rows_in(emulators, ds, "usage") in (None, 0)


@pytest.mark.parametrize(("since", "until"), [
    ("2024-02-01", "2024-02-01"),
    ("2024-02-01T05", "2024-02-01T07"),
    ("2024-03-24T23", None),  # the last hour of the corpus
    (None, "2024-01-01T00"),  # the first
])
def test_dry_run_since_until_choose_hours_by_the_name(emulators: Stack, corpus: Corpus, scratch: str,
                                                       since: str | None, until: str | None) -> None:
    def hour(text: str | None, default: datetime, last: int) -> datetime:
        if text is None:
            return default
        return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC) if "T" in text else \
            datetime.strptime(text, "%Y-%m-%d").replace(hour=last, tzinfo=UTC)

    expected = corpus.window(hour(since, corpus.objects[0].hour, 0), hour(until, corpus.objects[-1].hour, 23))
    args = [*(["--since", since] if since else []), *(["--until", until] if until else [])]
    run = backfill(emulators, scratch, "--dry-run", *args)
    assert run.code == 0, run
    assert run.report["log_objects"] == len(expected) > 0, run
    assert run.report["bytes"] == sum(len(o.data) for o in expected)
    assert run.report["plan"]["jobs_per_table"] == {"usage": 1}


# ---------------------------------------------------------------------------------------------
# interrupted, concurrent, live


KILLED = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 12, 23, tzinfo=UTC))  # 12 days: ~290 objects
CONCURRENT = (datetime(2024, 1, 13, tzinfo=UTC), datetime(2024, 1, 22, 23, tzinfo=UTC))
LIVE = (datetime(2024, 1, 23, tzinfo=UTC), datetime(2024, 2, 1, 23, tzinfo=UTC))
BUDGET = (datetime(2024, 2, 2, tzinfo=UTC), datetime(2024, 2, 11, 23, tzinfo=UTC))


def test_killed_run_is_resumed_by_a_rerun(emulators: Stack, corpus: Corpus) -> None:
    """SIGKILL once the first batch's rows are in the table (later batches reserved or not),
    then the same command again: every row exactly once."""
    ds = dataset(emulators, "backfill_killed")
    objects = corpus.window(*KILLED)
    rows = sum(o.rows for o in objects)
    flags = [*window_args(*KILLED), "--objects-per-job", "100", "--batch-seconds", "15"]
    running = Running(emulators, ds, *flags)
    deadline = time.monotonic() + 300
    while running.proc.poll() is None and time.monotonic() < deadline and not rows_in(emulators, ds, "usage"):
        time.sleep(0.2)
    running.kill()
    killed = running.wait()
    at_kill = rows_in(emulators, ds, "usage") or 0
    assert killed.code == -signal.SIGKILL, f"the run ended before it was killed:\n{killed}"
    assert 0 < at_kill < rows, (at_kill, rows, str(killed))

    started = time.monotonic()
    rerun = backfill(emulators, ds, *flags)
    assert rerun.code == 0, rerun
    report = rerun.report
    assert report["loaded"] + report["already_loaded"] == len(objects), rerun
    assert report["already_loaded"] >= 100, rerun  # at least the first batch
    assert (report["rejected"], report["held_elsewhere"], report["stopped"]) == ([], [], None), rerun
    assert rows_in(emulators, ds, "usage") == rows
    print(f"killed at {at_kill}/{rows} rows; rerun {time.monotonic() - started:.1f}s: "
          f"loaded {report['loaded']}, already {report['already_loaded']}")


def serialised(stack: Stack) -> ChaosProxy:
    """A fault-free ChaosProxy in front of local-bigquery: it forwards one request at a time (and
    holds a job-creating one until its job is DONE). local-bigquery's jobs.insert is not atomic:
    two inserts of one job id at the same moment get a 400 "Duplicate key" where BigQuery
    answers 409, and concurrent loads into one table can fail on write-write conflicts."""
    return ChaosProxy(stack.bigquery_url, seed=0, rates={})


def test_two_runs_at_once_load_each_object_once(emulators: Stack, corpus: Corpus) -> None:
    ds = dataset(emulators, "backfill_concurrent")
    objects = corpus.window(*CONCURRENT)
    flags = [*window_args(*CONCURRENT), "--objects-per-job", "200", "--batch-seconds", "20"]
    with serialised(emulators) as proxy:
        runs = [Running(emulators, ds, *flags, env={"GCR_USAGE_BIGQUERY_ENDPOINT": proxy.url}) for _ in range(2)]
        done = [r.wait() for r in runs]
    reports = []
    for run in done:
        assert run.code == 0, run
        reports.append(run.report)
        assert run.report["loaded"] + run.report["already_loaded"] == len(objects), run
    assert sum(r["loaded"] for r in reports) == len(objects), "\n\n".join(map(str, done))
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in objects)
    print(f"two runs: loaded {[r['loaded'] for r in reports]}, already {[r['already_loaded'] for r in reports]}, "
          f"load jobs {[r['load_jobs'] for r in reports]}")


LIVE_EVENTS = 100
LIVE_PACE = 0.15  # seconds between events: 100 events over about the run's first 15 s
ACCEPTED = ("loaded", "duplicate")


def deliver(url: str, resource: Json) -> events.Response:
    return events.deliver(url, "pubsub-push", events.make_event("pubsub-push", resource))


def test_live_events_during_a_run_load_each_object_once(emulators: Stack, corpus: Corpus) -> None:
    """The component answers events for objects of the window while the backfill loads it: 200
    (loaded, or the backfill's load), or 503 when the backfill has reserved the object and not
    created its load yet; a 503 is redelivered after the run and is then 200."""
    require_loader()
    ds = dataset(emulators, "backfill_live")
    objects = corpus.window(*LIVE)
    overrides = {"GCR_USAGE_DATASET": ds, "GCR_USAGE_BUCKETS": BUCKET}
    with serialised(emulators) as proxy, \
            loader_only(proxy.url, emulators.gcs_url, overrides, name="wasmtime-serve-backfill") as live, watched(live):
        chosen = random.Random(SEED).sample(objects, LIVE_EVENTS)
        running = Running(emulators, ds, *window_args(*LIVE), "--objects-per-job", "100", "--batch-seconds", "60",
                          env={"GCR_USAGE_BIGQUERY_ENDPOINT": proxy.url})
        started = time.monotonic()

        def paced(item: tuple[int, LogObject]) -> events.Response:
            """Event k at k * LIVE_PACE seconds: spread over the run, before, during and after batches."""
            time.sleep(max(0.0, started + item[0] * LIVE_PACE - time.monotonic()))
            return deliver(live.loader_url, corpus.resources[item[1].name])

        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(paced, enumerate(chosen)))
        run = running.wait()
        answers = list(zip(chosen, first, strict=True))
        later = [(o, deliver(live.loader_url, corpus.resources[o.name])) for o, a in answers if a.status == 503]
    odd = [(o.name, a.status, a.body[:300]) for o, a in answers if a.status not in (200, 503)]
    assert odd == [], odd
    for obj, answer in later:
        assert answer.status == 200, (obj.name, answer.body)
    final = [a.json() for o, a in answers if a.status == 200] + [a.json() for _, a in later]
    assert all(body["outcome"] in ACCEPTED for body in final), final
    live_loads = sum(body["outcome"] == "loaded" for body in final)
    assert run.code == 0, run
    report = run.report
    assert report["loaded"] + report["already_loaded"] == len(objects), run
    assert report["loaded"] + live_loads == len(objects), (live_loads, str(run))
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in objects)
    first_answers = Counter(f"{a.status} {a.json().get('outcome') or a.json().get('error')}" for _, a in answers)
    print(f"live: {LIVE_EVENTS} events, first answers {dict(first_answers)}, {len(later)} redelivered, "
          f"{live_loads} loaded live, backfill loaded {report['loaded']} of {len(objects)}")


# ---------------------------------------------------------------------------------------------
# budget, rejects, classified


def test_job_budget_stops_with_exit_3_and_a_rerun_finishes(emulators: Stack, corpus: Corpus) -> None:
    ds = dataset(emulators, "backfill_budget")
    objects = corpus.window(*BUDGET)
    n = len(objects)
    flags = [*window_args(*BUDGET), "--objects-per-job", "50"]
    budget = ["--jobs-per-table-per-day", "2"]
    plan = backfill(emulators, ds, *flags, *budget, "--dry-run")
    assert plan.code == 0, plan
    assert plan.report["plan"]["jobs_per_table"] == {"usage": math.ceil(n / 50)} == {"usage": 5}, plan
    assert plan.report["plan"]["over_budget"] == {"usage": 5}, plan

    stopped = backfill(emulators, ds, *flags, *budget)
    assert stopped.code == 3, stopped
    report = stopped.report
    assert isinstance(report["stopped"], str) and report["stopped"], stopped
    assert (report["loaded"], report["load_jobs"]) == (100, {"usage": 2}), stopped
    # Batches are planned in name order and run in that order: the first two are the first 100.
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in objects[:100])

    rest = backfill(emulators, ds, *flags)
    report = assert_finished(rest, loaded=n - 100, already=100)
    assert report["load_jobs"] == {"usage": 3}
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in objects)


def broken_log(hour: datetime) -> bytes:
    """A usage log BigQuery cannot load: the first record's time_micros is not a number."""
    data, _ = usage_log(random.Random(7), hour, 2, "broken")
    header, first, rest = data.split(b"\n", 2)
    return b"\n".join([header, re.sub(rb'^"\d+"', b'"not-a-number"', first), rest])


def test_an_object_bigquery_rejects_is_named_and_the_rest_load_exit_4(emulators: Stack) -> None:
    good = make_corpus(SEED + 2)[:40]
    broken_name = object_name(good[17].hour, random.Random(99))
    data = broken_log(good[17].hour)
    assert b'"not-a-number"' in data
    upload_all(emulators, REJECT_BUCKET, {o.name: o.data for o in good} | {broken_name: data})
    ds = dataset(emulators, "backfill_rejects")
    env = {"GCR_USAGE_BUCKETS": REJECT_BUCKET}
    run = backfill(emulators, ds, "--objects-per-job", "10", bucket=REJECT_BUCKET, env=env)
    assert run.code == 4, run
    report = run.report
    assert [name_of(r["object"], REJECT_BUCKET) for r in report["rejected"]] == [broken_name], run
    assert report["rejected"][0]["reason"], run
    assert report["loaded"] == len(good), run
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in good)
    # A rerun loads nothing more and names the same object again.
    again = backfill(emulators, ds, "--objects-per-job", "10", bucket=REJECT_BUCKET, env=env)
    assert again.code == 4, again
    assert (again.report["loaded"], again.report["already_loaded"]) == (0, len(good)), again
    assert [name_of(r["object"], REJECT_BUCKET) for r in again.report["rejected"]] == [broken_name], again
    assert rows_in(emulators, ds, "usage") == sum(o.rows for o in good)


def test_classified_mode_uploads_each_event_once(emulators: Stack, classified_corpus: Corpus) -> None:
    ds = dataset(emulators, "backfill_classified")
    objects = classified_corpus.objects
    good = sum(o.events for o in objects)
    assert good < classified_corpus.rows  # malformed and repeated rows are in the corpus
    env = {"GCR_USAGE_BUCKETS": CLASSIFIED_BUCKET}
    run = backfill(emulators, ds, "--mode", "classified", "--objects-per-job", "100", bucket=CLASSIFIED_BUCKET, env=env)
    report = assert_finished(run, loaded=len(objects), already=0)
    assert report["load_jobs"] == {"registry_events": 3}, run
    assert rows_in(emulators, ds, "registry_events") == good
    assert report["rows"] == good, run
    assert rows_in(emulators, ds, "usage") is None  # classified only: no raw table

    again = backfill(emulators, ds, "--mode", "classified", "--objects-per-job", "100", bucket=CLASSIFIED_BUCKET,
                     env=env)
    report = assert_finished(again, loaded=0, already=len(objects))
    assert report["load_jobs"] == {}, again
    assert rows_in(emulators, ds, "registry_events") == good


# ---------------------------------------------------------------------------------------------
# bad input


#: Runs that must be refused still ask for little, in case one is not.
LAST_HOUR = ["--since", "2024-03-24T23"]
ERROR_LINE = re.compile(r"^(gcr-usage: )?error: ")


def assert_error(run: Run, code: int, *words: str) -> None:
    """Exit ``code`` and an error line on stderr (``error: ``, clap's, or ``gcr-usage: error: ``,
    the CLI's own as its `report` writes it) naming every one of ``words``."""
    assert run.code == code, run
    errors = [line for line in run.stderr.splitlines() if ERROR_LINE.match(line)]
    assert errors, run
    assert any(all(w.lower() in line.lower() for w in words) for line in errors), (words, str(run))


def test_a_missing_bucket_is_named(emulators: Stack, scratch: str) -> None:
    run = backfill(emulators, scratch, bucket="no-such-log-bucket", env={"GCR_USAGE_BUCKETS": None})
    assert_error(run, 1, "no-such-log-bucket")


def test_since_after_until_is_refused(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, "--since", "2024-03-02", "--until", "2024-03-01")
    assert run.code in (1, 2), run
    assert_error(run, run.code, "--since", "--until")


def test_a_bad_hour_is_refused(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, "--since", "2024-02-30")
    assert run.code in (1, 2), run
    assert_error(run, run.code, "--since")


def test_an_unknown_mode_is_an_argument_error(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, "--mode", "everything")
    assert run.code == 2, run
    assert "everything" in run.stderr, run


def test_a_prefix_without_logs_says_so(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, "--prefix", "nothing-logs-here")
    assert_error(run, 1, "no log objects")


def test_a_missing_dataset_is_named(emulators: Stack, corpus: Corpus) -> None:
    run = backfill(emulators, "no_such_dataset", *window_args(*KILLED))
    assert_error(run, 1, "no_such_dataset")
    status, _ = http_json("GET", f"{emulators.bigquery_api}/datasets/no_such_dataset")
    assert status == 404  # not created behind the user's back


def test_token_auth_without_a_token_names_the_variable(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, *LAST_HOUR, env={"GCR_USAGE_AUTH": "token", "GCR_USAGE_TOKEN": None})
    assert_error(run, 1, "GCR_USAGE_TOKEN")


def test_a_bucket_outside_the_allow_list_is_refused(emulators: Stack, corpus: Corpus, scratch: str) -> None:
    run = backfill(emulators, scratch, *LAST_HOUR, env={"GCR_USAGE_BUCKETS": "some-other-bucket"})
    assert_error(run, 1, BUCKET, "GCR_USAGE_BUCKETS")
    assert rows_in(emulators, scratch, "usage") is None


# ---------------------------------------------------------------------------------------------
# the whole bucket


@pytest.fixture(scope="module")
def own_emulators() -> Iterator[Stack]:
    """Emulators of its own for the whole bucket: local-bigquery's jobs.insert gets slower with
    every job it holds (about 45 ms on a fresh one, twice that after 2,600 jobs), and a run
    creates one reservation per object; the other tests leave thousands of jobs behind."""
    with stack_mod.stack(with_loader=False) as running, watched(running):
        upload_all(running, BUCKET, {o.name: o.data for o in make_corpus(SEED)} | dict.fromkeys(NOT_LOGS, b"x\n"))
        yield running


def test_whole_bucket_loads_every_row_once_and_a_rerun_loads_nothing(own_emulators: Stack) -> None:
    emulators, objects = own_emulators, make_corpus(SEED)
    rows = sum(o.rows for o in objects)
    ds = dataset(emulators, "backfill_whole")
    n = len(objects)
    started = time.monotonic()
    run = backfill(emulators, ds, "--objects-per-job", "500")
    first_s = time.monotonic() - started
    report = assert_finished(run, loaded=n, already=0)
    assert (report["listed"], report["log_objects"]) == (n + len(NOT_LOGS), n)
    assert (report["rows"], report["reservations"]) == (rows, n)  # one reservation per object
    assert report["load_jobs"] == {"usage": math.ceil(n / 500)} == {"usage": 5}
    assert rows_in(emulators, ds, "usage") == rows

    started = time.monotonic()
    again = backfill(emulators, ds, "--objects-per-job", "500")
    report = assert_finished(again, loaded=0, already=n)
    assert (report["rows"], report["load_jobs"], report["reservations"]) == (0, {}, 0), again
    assert rows_in(emulators, ds, "usage") == rows
    print(f"whole bucket: {n} objects in {first_s:.1f}s, rerun {time.monotonic() - started:.1f}s")
