"""Chaos end to end: hundreds of log objects, concurrent redeliveries, a faulty BigQuery.

For each mode (raw, classified, both) the component runs under `wasmtime serve` with
GCR_USAGE_BIGQUERY_ENDPOINT pointed at ``chaos_proxy.ChaosProxy``, which injects 503s, 429s,
connections dropped before forwarding, answers dropped *after* forwarding, and delays in front
of local-bigquery (Cloud Storage is reached directly). Every object's event is delivered 1-3
times, some of the copies at the same moment, through a pool of senders; every non-2xx answer is
redelivered as Pub/Sub would (backoff, bounded attempts) until each delivery chain has its 2xx.
The loader gets its smallest budget (GCR_USAGE_WAIT_SECONDS=10) and the proxy one 12 s outage
(every request 503), so some events run out of budget and the redeliveries matter too.

Then local-bigquery must hold every object's rows exactly once: none lost, none doubled.
Objects are made from the usage fixtures under new names, with request ids made unique per
object (``_<object index>`` appended), so a row of the usage table and an event of
registry_events each say which object they came from and the classified path's duplicate filter
never drops anything. A few large objects (several 256 KiB upload chunks) make the resumable
upload meet faults between chunks too.

The figures (seed, deliveries, faults by kind and by request, answers by status, outcomes,
latency p50/p99, wall times, end state) are printed per mode and summed up at the end.
GCR_USAGE_CHAOS_SEED overrides the seed (printed), GCR_USAGE_CHAOS_OBJECTS the objects per mode;
GCR_USAGE_CHAOS_EVIDENCE=1 writes the evidence file (answers, loader log lines, proxy records of
the objects no answer called `loaded`, or of any failure) even when the test passes;
GCR_USAGE_CHAOS_SERIALISE=0 lets the proxy forward concurrently, to see the emulator's own
concurrency failures (the test then fails on them: they are not the loader's).
"""

from __future__ import annotations

import http.client
import math
import json
import os
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import events
import expected
from chaos_proxy import ChaosProxy
from conftest import require_loader, watched
from stack import LOGS_DIR, Stack, loader_only, tagged_log

SEED = int(os.environ.get("GCR_USAGE_CHAOS_SEED") or 20240311)
OBJECTS = {"raw": 200, "classified": 150, "both": 120}
if os.environ.get("GCR_USAGE_CHAOS_OBJECTS"):
    OBJECTS = dict.fromkeys(OBJECTS, int(os.environ["GCR_USAGE_CHAOS_OBJECTS"]))
LARGE = 6  # objects per mode repeated to LARGE_ROWS rows (~3 upload chunks of events)
LARGE_ROWS = 840
SERIALISE = os.environ.get("GCR_USAGE_CHAOS_SERIALISE", "1") != "0"
EVIDENCE = os.environ.get("GCR_USAGE_CHAOS_EVIDENCE") == "1"
SENDERS = 12
MAX_ATTEMPTS = 15  # per delivery chain, as a subscription's max-delivery-attempts
BACKOFF_S, BACKOFF_CAP_S = 0.2, 3.0
WAIT_SECONDS = "10"  # the loader's smallest budget: an outage outlasts it, so redelivery is needed
OUTAGE = (150, 12.0)  # from the 150th BigQuery request on, 12 s of nothing but 503

SOURCES = [f for f in expected.log_files() if f.kind == "usage" and f.data_rows > 0]
SHAPES = list(events.SHAPES)


@dataclass(frozen=True)
class LogObject:
    index: int
    name: str
    data: bytes
    rows: int  # data rows = usage rows = classified events (ids unique, no malformed row)


@dataclass
class Attempt:
    chain: int
    attempt: int
    started: float
    ms: float
    status: int  # 0 = no HTTP answer
    body: Any


@dataclass
class Chain:
    """One delivery of an object's event and the redeliveries it needed."""

    index: int
    obj: int
    shapes: list[str]
    jitter: list[float]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.attempts) and 200 <= self.attempts[-1].status < 300


# ---------------------------------------------------------------------------------------------
# objects


def make_objects(mode: str, count: int) -> list[LogObject]:
    """``count`` usage logs named PREFIX_usage_YYYY_MM_DD_HH_00_00_ID_v0, distinct hours and ids."""
    start = datetime(2024, 4, 1, tzinfo=UTC)
    mode_digit = {"raw": 1, "classified": 2, "both": 3}[mode]
    made = []
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        hour = start + timedelta(hours=i)
        name = f"chaosLog_usage_{hour:%Y_%m_%d_%H}_00_00_{mode_digit}{i:04x}c4a05e_v0"
        data, rows = tagged_log((LOGS_DIR / source.object).read_bytes(), i, LARGE_ROWS if i < LARGE else 0)
        made.append(LogObject(i, name, data, rows))
    return made


# ---------------------------------------------------------------------------------------------
# delivery, as an at-least-once push subscription does it


def schedule(objects: list[LogObject], rng: random.Random) -> list[Chain]:
    """1-3 deliveries per object; for about half of the objects with several, the copies are
    queued side by side, so the senders deliver them at the same moment."""
    order: list[int] = []
    for obj in rng.sample(range(len(objects)), len(objects)):
        copies = rng.choice((1, 1, 2, 2, 3))
        order.append(obj)
        for _ in range(copies - 1):
            if rng.random() < 0.5:
                order.append(obj)  # concurrent with the first
            else:
                order.insert(rng.randrange(len(order) + 1), obj)  # at some other time
    return [Chain(i, obj, [rng.choice(SHAPES) for _ in range(MAX_ATTEMPTS)],
                  [rng.random() for _ in range(MAX_ATTEMPTS)]) for i, obj in enumerate(order)]


def run_chain(url: str, chain: Chain, resource: dict, epoch: float) -> None:
    for attempt in range(MAX_ATTEMPTS):
        shape = chain.shapes[attempt]
        request = events.to_request(shape, events.make_event(shape, resource))
        begin = time.monotonic()
        try:
            answer = events.post(url, request, timeout=120)
            status, raw = answer.status, answer.body
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        except (OSError, http.client.HTTPException) as err:
            status, body = 0, f"{type(err).__name__}: {err}"
        chain.attempts.append(Attempt(chain.index, attempt, round(begin - epoch, 3),
                                      (time.monotonic() - begin) * 1000, status, body))
        if 200 <= status < 300:
            return
        time.sleep(min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt) * (0.5 + 0.5 * chain.jitter[attempt]))


def overlapping(chains: list[Chain]) -> int:
    """Objects with two delivery chains in flight at the same time."""
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for chain in chains:
        first, last = chain.attempts[0], chain.attempts[-1]
        spans[chain.obj].append((first.started, last.started + last.ms / 1000))
    return sum(1 for s in spans.values() if any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(s)
                                                   for b in s[i + 1:]))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


# ---------------------------------------------------------------------------------------------
# the end state


def rows_per_object(stack: Stack, dataset: str, table: str, column: str) -> tuple[dict[int, int], int, list]:
    """Rows per object index (from the id's tag), distinct ids, and ids present more than once."""
    ref = f"`{stack.project}.{dataset}.{table}`"
    per = stack.query(f"SELECT SUBSTR({column}, -5) AS obj, COUNT(*) AS n FROM {ref} GROUP BY obj")
    distinct = stack.query(f"SELECT COUNT(DISTINCT {column}) AS d FROM {ref}")
    doubled = stack.query(f"SELECT {column} AS id, COUNT(*) AS n FROM {ref} GROUP BY id HAVING COUNT(*) > 1 "
                          f"ORDER BY id LIMIT 50")
    return {int(r["obj"]): int(r["n"]) for r in per}, int(distinct[0]["d"]), doubled


def loads_of(mode: str) -> list[tuple[str, str, str]]:
    """(label, table, id column) of what one usage log becomes in this mode."""
    raw = ("raw", "usage", "s_request_id")
    classified = ("events", "registry_events", "request_id")
    return {"raw": [raw], "classified": [classified], "both": [raw, classified]}[mode]


def claims(mode: str, body: Any) -> dict[str, dict]:
    """The answer of each load (raw / events) in one answer body."""
    if not isinstance(body, dict):
        return {}
    if mode == "raw":
        return {"raw": body}
    if mode == "classified":
        return {"events": body}
    return {"raw": body, "events": body.get("events") if isinstance(body.get("events"), dict) else {}}


def lineage(stack: Stack, dataset: str) -> dict[tuple[str, str], int]:
    """registry_events rows per (source_object, source_generation): the lineage columns."""
    rows = stack.query(f"SELECT source_object AS o, CAST(source_generation AS STRING) AS g, COUNT(*) AS n "
                       f"FROM `{stack.project}.{dataset}.registry_events` GROUP BY o, g")
    return {(r["o"], r["g"]): int(r["n"]) for r in rows}


def evidence(mode: str, obj: LogObject, chains: list[Chain], loader_log: str, proxy: ChaosProxy) -> dict:
    """Everything about one object: each answer it got, the loader's log lines, the proxy's records."""
    mine = [c for c in chains if c.obj == obj.index]
    jobs = {load.get("jobId") for c in mine for a in c.attempts for load in claims(mode, a.body).values()} - {None}
    return {
        "object": obj.name, "rows": obj.rows,
        "answers": [{"chain": a.chain, "attempt": a.attempt, "t": a.started, "ms": round(a.ms), "status": a.status,
                     "body": a.body} for c in mine for a in c.attempts],
        "loader_log": [line for line in loader_log.splitlines() if obj.name in line],
        "proxy": [r.__dict__ for r in proxy.records() if r.job and (obj.name in r.job or r.job in jobs)],
    }


def summary(figures: dict[str, dict], total_s: float) -> str:
    lines = [f"chaos end to end, seed {SEED}, total wall time {total_s:.1f} s"]
    for mode, f in figures.items():
        d, lat, px = f["deliveries"], f["latency_ms"], f["proxy"]
        lines += [
            f"  {mode}: {f['objects']} objects, {f['rows']} rows; deliveries {d['total']} = {d['first']} first + "
            f"{d['redeliveries']} redeliveries ({d['objects_delivered_concurrently']} objects delivered concurrently)",
            f"    BigQuery requests {px['requests']} ({px['forwarded']} forwarded) {px['requests_by_kind']}",
            f"    faults {px['faults']}; by request {px['faults_by_kind']}; "
            f"jobs waited for under the lock {px['jobs_settled_under_lock']}",
            f"    answers by status {f['answers_by_status']}; outcomes {f['outcomes']}; "
            f"answers with loader retries {f['answers_with_loader_retries']}",
            f"    latency p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms; deliveries "
            f"{f['delivery_wall_s']} s, mode {f['wall_s']} s; end state {f['end_state']}; objects no answer "
            f"called loaded {f['objects_no_answer_called_loaded']}",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the test


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, dict]]:
    collected: dict[str, dict] = {}
    begin = time.monotonic()
    yield collected
    if collected:
        print("\n" + summary(collected, time.monotonic() - begin))


@pytest.mark.parametrize("mode", ["raw", "classified", "both"])
def test_chaos_every_row_exactly_once(emulators: Stack, mode: str, figures: dict) -> None:
    require_loader()
    begin = time.monotonic()
    print(f"\n[chaos {mode}] seed {SEED} (GCR_USAGE_CHAOS_SEED to replay)")
    bucket, dataset = f"chaos-{mode}", f"chaos_{mode}"
    emulators.create_bucket(bucket)
    emulators.create_dataset(dataset)
    objects = make_objects(mode, OBJECTS[mode])
    resources = [emulators.upload(bucket, o.name, o.data) for o in objects]
    chains = schedule(objects, random.Random(SEED + 1))
    overrides = {"GCR_USAGE_MODE": mode, "GCR_USAGE_DATASET": dataset, "GCR_USAGE_BUCKETS": bucket,
                 "GCR_USAGE_UPLOAD_CHUNK_KIB": "256", "GCR_USAGE_WAIT_SECONDS": WAIT_SECONDS}

    with ChaosProxy(emulators.bigquery_url, SEED, outages=[OUTAGE], serialise=SERIALISE) as proxy, \
            loader_only(proxy.url, emulators.gcs_url, overrides, name=f"wasmtime-chaos-{mode}") as loader, \
            watched(loader):
        epoch = time.monotonic()
        with ThreadPoolExecutor(SENDERS, thread_name_prefix=f"pubsub-{mode}") as pool:
            for future in [pool.submit(run_chain, loader.loader_url, c, resources[c.obj], epoch) for c in chains]:
                future.result()
        delivery_s = time.monotonic() - epoch
        loader_log = loader.children[0].log_path.read_text(errors="replace")

    # -- the figures ------------------------------------------------------------------------------
    attempts = [a for c in chains for a in c.attempts]
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    loaded: dict[str, Counter[int]] = defaultdict(Counter)  # "loaded" answers per load and object
    for chain in chains:
        for attempt in chain.attempts:
            for load, answer in claims(mode, attempt.body).items():
                outcome = answer.get("outcome") or f"HTTP {attempt.status}"
                outcomes[load][outcome] += 1
                loaded[load][chain.obj] += outcome == "loaded"
    latencies = [a.ms for a in attempts]
    figure: dict[str, Any] = {
        "seed": SEED, "objects": len(objects), "rows": sum(o.rows for o in objects),
        "deliveries": {"first": len(chains), "redeliveries": len(attempts) - len(chains), "total": len(attempts),
                       "objects_delivered_concurrently": overlapping(chains)},
        "answers_by_status": dict(sorted(Counter(a.status for a in attempts).items())),
        "outcomes": {k: dict(sorted(v.items())) for k, v in outcomes.items()},
        "answers_with_loader_retries": sum(1 for a in attempts if isinstance(a.body, dict)
                                           and (a.body.get("retries") or {}).get("count")),
        "proxy": proxy.figures(),
        "latency_ms": {"p50": round(percentile(latencies, 50)), "p99": round(percentile(latencies, 99)),
                       "max": round(max(latencies))},
        "delivery_wall_s": round(delivery_s, 1),
    }

    # -- the end state: every object's rows exactly once -------------------------------------------
    problems: dict[str, list[LogObject]] = defaultdict(list)
    for chain in chains:  # what the classifier counted must be what the object holds
        for attempt in chain.attempts:
            counts = claims(mode, attempt.body).get("events", {}).get("counts")
            rows = objects[chain.obj].rows
            if counts and (counts["events"], counts["malformed"], counts["duplicates"]) != (rows, 0, 0):
                problems[f"events: counts {counts} in an answer"].append(objects[chain.obj])
    unfinished = [c for c in chains if not c.done]
    for chain in unfinished:
        problems[f"delivery chain without a 2xx after {MAX_ATTEMPTS} attempts"].append(objects[chain.obj])
    strays: list[str] = []  # rows that belong to no uploaded object
    end_state: dict[str, Any] = {}
    for load, table, column in loads_of(mode):
        per, distinct, doubled = rows_per_object(emulators, dataset, table, column)
        end_state[table] = {"rows": sum(per.values()), "distinct_ids": distinct, "ids_present_twice": len(doubled)}
        if doubled:
            end_state[table]["doubled_sample"] = doubled[:3]
        for obj in objects:
            if per.get(obj.index, 0) != obj.rows:
                problems[f"{table}: {per.get(obj.index, 0)} rows where the object has {obj.rows}"].append(obj)
        if set(per) - {o.index for o in objects}:
            strays.append(f"{table}: rows of objects never uploaded {sorted(set(per) - {o.index for o in objects})}")
        for index, n in loaded[load].items():
            if n > 1:  # "loaded" = this delivery submitted the job: one delivery per job at most
                problems[f"{load}: {n} answers say 'loaded'"].append(objects[index])
        if table == "registry_events":
            by_source = lineage(emulators, dataset)
            for obj, resource in zip(objects, resources, strict=True):
                if by_source.pop((obj.name, str(resource["generation"])), 0) != obj.rows:
                    problems["registry_events: lineage (source_object, source_generation) count wrong"].append(obj)
            if by_source:
                strays.append(f"registry_events: rows of unknown lineage {sorted(by_source)[:5]}")
    # Not a failure: the delivery that created the job may have run out of budget before it knew
    # (503), and every later delivery then rightly says `duplicate`.
    unclaimed = {load: [o for o in objects if not loaded[load][o.index]] for load, _, _ in loads_of(mode)}
    figure["objects_no_answer_called_loaded"] = {load: len(objs) for load, objs in unclaimed.items()}
    figure["end_state"] = end_state
    figure["wall_s"] = round(time.monotonic() - begin, 1)
    figures[mode] = figure
    print(f"[chaos {mode}] " + json.dumps(figure))

    if problems or strays or EVIDENCE:
        path = Path(tempfile.gettempdir()) / f"gcr-usage-chaos-{mode}-{SEED}.json"
        details = {why: [evidence(mode, o, chains, loader_log, proxy) for o in objs[:3]]
                   for why, objs in problems.items()}
        if EVIDENCE:
            details.update({f"{load}: no answer called it loaded": [evidence(mode, o, chains, loader_log, proxy)
                                                                     for o in objs[:3]]
                            for load, objs in unclaimed.items() if objs})
        path.write_text(json.dumps({"figure": figure, "strays": strays,
                                    "problems": {k: [o.name for o in v] for k, v in problems.items()},
                                    "details": details}, indent=1, default=str))
        print(f"[chaos {mode}] evidence (answers, loader log lines, proxy records) in {path}")
    if problems or strays:
        found = [f"{why}: {len(objs)} objects, e.g. {[o.name for o in objs[:3]]}" for why, objs in problems.items()]
        pytest.fail(f"{mode}: " + "; ".join([*strays, *found]) + f" (evidence in {path})")
