"""Demo: the whole pipeline on this machine, no cloud needed.

    python3.13 e2e/bootstrap.py .venv && .venv/bin/python e2e/demo.py [--spin]

Starts fake-gcs-server, local-bigquery and the component under `wasmtime serve` (with --spin:
the Spin flavour under `spin up` of the repository's spin.toml, whose command line it prints), uploads the
fixture logs to the log bucket, delivers each as an Eventarc CloudEvent (binary mode), prints
one line per answer, then runs sql/image_pulls_raw.sql and prints the per-image table.
Then the same for Artifact Registry: the fixture audit-log sink objects (fixtures/audit/sink/)
are uploaded under the names a log sink gives them, delivered, loaded into registry_events,
and the views print Artifact Registry pulls per image (pull rule A) and Google's agents apart.
Exit code 0 only if every delivery loaded and the queries give the answers in
fixtures/logs/README.md and fixtures/audit/sink/expected.json.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import events  # noqa: E402
import expected  # noqa: E402
import stack as stack_mod  # noqa: E402
from sqlrun import image_pulls  # noqa: E402
from viewrun import EVENT_VIEWS, run_file, select  # noqa: E402

SHAPE = "cloudevent-binary"


def deliver_all(stack: stack_mod.Stack) -> list[str]:
    """Deliver every fixture log once; returns the problems seen."""
    problems = []
    for entry in expected.log_files():
        event = events.make_event(SHAPE, stack.objects[entry.object])
        answer = events.deliver(stack.loader_url, SHAPE, event)
        try:
            body = answer.json()
        except ValueError:
            body = {"outcome": "?", "reason": answer.body[:200].decode(errors="replace")}
        print(f"{answer.status} {body.get('outcome', '?'):<9} {body.get('logKind', '-'):<7} "
              f"rows={str(body.get('rows', '-')):>3} -> {body.get('destination', '-')}  {entry.object}"
              + (f"  reason={body['reason']}" if body.get("reason") and body.get("outcome") != "loaded" else ""))
        if answer.status != 200 or body.get("outcome") != "loaded" or body.get("rows") != entry.data_rows:
            problems.append(f"{entry.object}: {answer.status} {body}")
    return problems


def redeliver_first(stack: stack_mod.Stack) -> list[str]:
    """At-least-once delivery in action: the same event again must load nothing."""
    entry = expected.log_files()[0]
    answer = events.deliver(stack.loader_url, SHAPE, events.make_event(SHAPE, stack.objects[entry.object]))
    body = answer.json()
    print(f"\nthe same event delivered again:\n{answer.status} {body.get('outcome')}: {body.get('reason')}")
    if answer.status != 200 or body.get("outcome") != "duplicate":
        return [f"redelivery of {entry.object}: {answer.status} {body}"]
    return []


def as_row(pull: expected.ImagePulls) -> list[str]:
    def when(iso: str) -> str:
        return iso[:19].replace("T", " ")

    return [f"{pull.registry_host}/{pull.repository}", str(pull.blob_downloads), f"{pull.bytes_served:,}",
            str(pull.distinct_client_ips), when(pull.first_seen), when(pull.last_seen)]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        # numbers right-aligned, text left-aligned
        cells = (c.rjust(w) if c.replace(",", "").isdigit() else c.ljust(w) for c, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


AUDIT_SINK = events.REPO_ROOT / "fixtures" / "audit" / "sink"
AUDIT_OBJECTS = ["cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json",
                 "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_A1:1720140000.json"]


def artifact_registry(stack: stack_mod.Stack) -> list[str]:
    """Audit-log sink objects through the same component, then pulls per image from the views."""
    problems = []
    print("\nArtifact Registry audit-log sink objects:")
    for name in AUDIT_OBJECTS:
        resource = stack.upload(stack.bucket, name, (AUDIT_SINK / name).read_bytes())
        answer = events.deliver(stack.loader_url, SHAPE, events.make_event(SHAPE, resource))
        body = answer.json()
        counts = body.get("counts", {})
        print(f"{answer.status} {body.get('outcome', '?'):<9} {body.get('logKind', '-'):<7} "
              f"rows={str(body.get('rows', '-')):>3} -> {body.get('destination', '-')}  {name}\n"
              f"    entries={counts.get('records')} skipped={counts.get('skipped', 0)} "
              f"malformed={counts.get('malformed')} duplicates={counts.get('duplicates')}")
        if answer.status != 200 or body.get("outcome") != "loaded":
            problems.append(f"{name}: {answer.status} {body}")
    for view in EVENT_VIEWS:
        run_file(stack, f"views/{view}.sql", stack.dataset)
    daily = select(stack, stack.dataset, "image_pulls_daily", ["registry_host", "repository", "pulls", "clients"])
    pulls: dict[str, list[int]] = {}
    for row in daily:
        total = pulls.setdefault(f"{row['registry_host']}/{row['repository']}", [0, 0])
        total[0] += row["pulls"]
        total[1] = max(total[1], row["clients"])
    print(f"\nArtifact Registry pulls per image (sql/views/image_pulls_daily.sql, rule A, over "
          f"{stack.project}.{stack.dataset}.registry_events):\n")
    print_table(["image", "pulls", "clients"],
                [[image, str(p), str(c)] for image, (p, c) in sorted(pulls.items()) if p])
    agents = select(stack, stack.dataset, "agent_pulls_daily", ["repository", "principal", "manifest_reads"])
    print("\nmanifest reads by Google's own agents (sql/views/agent_pulls_daily.sql), not pulls:\n")
    print_table(["repository", "agent", "manifest reads"],
                [[a["repository"], a["principal"], str(a["manifest_reads"])] for a in agents])
    want = json.loads((AUDIT_SINK / "expected.json").read_text())["with_the_late_file"]
    if {k: v[0] for k, v in pulls.items() if v[0]} != want["pulls_per_image"]:
        problems.append(f"Artifact Registry pulls {pulls} != {want['pulls_per_image']}")
    if sum(a["manifest_reads"] for a in agents) != want["agent_pulls"]:
        problems.append(f"agent manifest reads {agents} != {want['agent_pulls']}")
    return problems


def main() -> int:
    spin = "--spin" in sys.argv[1:]
    reason = stack_mod.spin_unavailable_reason() if spin else stack_mod.loader_unavailable_reason()
    if reason:
        print(f"demo: {reason}", file=sys.stderr)
        return 2
    stack_mod.stop_on_sigterm()
    host = "the Spin flavour under spin up" if spin else "wasmtime serve"
    print(f"starting fake-gcs-server, local-bigquery and {host} ...", flush=True)
    with stack_mod.stack(spin=spin) as stack:
        print(f"loader {stack.loader_url}  BigQuery {stack.bigquery_url}  Cloud Storage {stack.gcs_url}", flush=True)
        if spin:
            print("  " + shlex.join(str(a) for a in stack.children[-1].proc.args), flush=True)
        print(flush=True)
        problems = deliver_all(stack)
        problems += redeliver_first(stack)
        counts = {t: stack.row_count(t) for t in ("usage", "storage") if stack.table(t)}
        print(f"\nrows: {counts}")
        pulls = image_pulls(stack)
        print(f"\nimage pulls (sql/image_pulls_raw.sql over {stack.project}.{stack.dataset}.usage):\n")
        print_table(["image", "blob downloads", "bytes served", "client IPs", "first seen (UTC)", "last seen (UTC)"],
                    [as_row(p) for p in pulls])
        if pulls != expected.image_pulls():
            problems.append("image pulls differ from fixtures/logs/README.md")
        wanted = {"usage": expected.total_rows("usage"), "storage": expected.total_rows("storage")}
        if counts != wanted:
            problems.append(f"row counts {counts} != {wanted}")
        problems += artifact_registry(stack)
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("\nOK: every log loaded once, answers match fixtures/logs/README.md and fixtures/audit/sink/expected.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # the stack has printed its children's logs already
        print(f"\nFAILED: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
