"""Google's own BigQuery client as the reference peer for the component's load job.

A local capture server answers like BigQuery. First Google's Python client makes the seed's
exact call against it; then the component, under `wasmtime serve` with
GCR_USAGE_BIGQUERY_ENDPOINT pointing at the same server, receives an event for the same object.
The component's jobs.insert must carry the same load semantics, plus what it adds on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

import events
import schema
import stack as stack_mod
from capture import Captured, CaptureServer
from conftest import require_loader, watched

PROJECT = "demo-project"
DATASET = "storageanalysis"
BUCKET = "demo-gcr-logs"
SHAPE = "cloudevent-binary"
OBJECT = events.fixture_object(SHAPE)  # accessLog_usage_..._00cbe..._v0
URI = f"gs://{BUCKET}/{OBJECT['name']}"
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture(scope="module")
def python_client_request(capture: CaptureServer) -> Captured:
    """The seed's call, made by google-cloud-bigquery against the capture server."""
    capture.clear()
    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=capture.url))
    dataset = bigquery.DatasetReference(PROJECT, DATASET)
    job_config = bigquery.LoadJobConfig()
    job_config.skip_leading_rows = 1
    job_config.source_format = bigquery.SourceFormat.CSV
    client.load_table_from_uri(URI, dataset.table("usage"), job_config=job_config)
    inserts = [r for r in capture.requests if r.method == "POST"]
    assert len(inserts) == 1, capture.requests
    capture.clear()
    return inserts[0]


@pytest.fixture(scope="module")
def component(capture: CaptureServer, python_client_request: Captured) -> Iterator[tuple[list, list[Captured]]]:
    """The component fed the same event twice; yields its answers and every request it made."""
    require_loader()
    with stack_mod.loader_only(capture.url, capture.url, name="wasmtime-serve-peer") as state, watched(state):
        event = events.load_fixture(SHAPE)
        answers = [events.deliver(state.loader_url, SHAPE, event) for _ in range(2)]
        yield answers, capture.requests


def load_config(request: Captured) -> dict:
    return request.json()["configuration"]["load"]


def job_inserts(requests: list[Captured]) -> list[Captured]:
    return [r for r in requests if r.method == "POST" and r.path.endswith("/jobs")]


# --- what Google's client sends (gcp-apis.md §2), checked without the component -----------------


def test_python_client_sends_the_documented_request(python_client_request: Captured) -> None:
    request = python_client_request
    assert request.method == "POST"
    assert request.path == f"/bigquery/v2/projects/{PROJECT}/jobs"
    assert request.query.get("prettyPrint") == ["false"]
    assert request.headers["content-type"].startswith("application/json")
    body = request.json()
    assert body["jobReference"]["projectId"] == PROJECT
    assert JOB_ID.match(body["jobReference"]["jobId"])
    load = body["configuration"]["load"]
    assert load["sourceUris"] == [URI]
    assert load["destinationTable"] == {"projectId": PROJECT, "datasetId": DATASET, "tableId": "usage"}
    assert load["sourceFormat"] == "CSV"
    assert int(load["skipLeadingRows"]) == 1
    # No schema and no dispositions: BigQuery's defaults apply and the table must exist already.
    assert not {"schema", "writeDisposition", "createDisposition"} & load.keys()


# --- the component against the same server ---------------------------------------------------------


def test_component_sends_one_insert_per_delivery_with_the_same_shape(
        component: tuple[list, list[Captured]], python_client_request: Captured) -> None:
    answers, requests = component
    inserts = job_inserts(requests)
    assert len(inserts) == 2, [(r.method, r.path) for r in requests]
    for insert in inserts:
        assert insert.method == python_client_request.method
        assert insert.path == python_client_request.path
        assert insert.headers.get("content-type", "").startswith("application/json")
        assert "authorization" not in insert.headers  # GCR_USAGE_AUTH=none


def test_component_keeps_the_seed_load_semantics(
        component: tuple[list, list[Captured]], python_client_request: Captured) -> None:
    reference = load_config(python_client_request)
    for insert in job_inserts(component[1]):
        load = load_config(insert)
        assert load["sourceUris"] == reference["sourceUris"]
        assert load["destinationTable"] == reference["destinationTable"]
        assert load.get("sourceFormat", "CSV") == reference["sourceFormat"]
        assert int(load["skipLeadingRows"]) == int(reference["skipLeadingRows"])
        assert insert.json()["jobReference"]["projectId"] == python_client_request.json()["jobReference"]["projectId"]


def test_component_adds_schema_dispositions_location(component: tuple[list, list[Captured]]) -> None:
    for insert in job_inserts(component[1]):
        body = insert.json()
        load = body["configuration"]["load"]
        assert schema.normalize(load["schema"]["fields"]) == schema.USAGE_FIELDS
        assert load["writeDisposition"] == "WRITE_APPEND"
        assert load["createDisposition"] == "CREATE_IF_NEEDED"
        assert body["jobReference"]["location"] == "US"


def test_component_job_id_is_valid_and_deterministic(
        component: tuple[list, list[Captured]], python_client_request: Captured) -> None:
    ids = [insert.json()["jobReference"]["jobId"] for insert in job_inserts(component[1])]
    assert all(JOB_ID.match(job_id) for job_id in ids), ids
    assert ids[0] == ids[1]
    assert ids[0] != python_client_request.json()["jobReference"]["jobId"]  # not a random uuid


def test_component_answers_loaded_then_duplicate(component: tuple[list, list[Captured]]) -> None:
    answers, requests = component
    first, second = (a.json() for a in answers)
    assert answers[0].status == 200 and first["outcome"] == "loaded", first
    assert answers[1].status == 200 and second["outcome"] == "duplicate", second
    job_id = job_inserts(requests)[0].json()["jobReference"]["jobId"]
    for answer in (first, second):
        assert answer["jobId"] == job_id
        assert answer["logKind"] == "usage"
        assert answer["destination"] == f"{PROJECT}:{DATASET}.usage"
        assert answer["object"]["bucket"] == BUCKET and answer["object"]["name"] == OBJECT["name"]
        assert str(answer["object"]["generation"]) == OBJECT["generation"]
    assert first["rows"] == 14  # the capture server's statistics.load.outputRows


def test_component_looks_up_the_existing_job_in_its_location(component: tuple[list, list[Captured]]) -> None:
    """After the 409, any jobs.get must name the job it inserted and the dataset's location."""
    requests = component[1]
    job_id = job_inserts(requests)[0].json()["jobReference"]["jobId"]
    for get in (r for r in requests if r.method == "GET"):
        assert get.path == f"/bigquery/v2/projects/{PROJECT}/jobs/{job_id}"
        assert get.query.get("location") == ["US"]


def test_component_calls_only_bigquery_jobs_or_the_log_object(component: tuple[list, list[Captured]]) -> None:
    """Loads run BigQuery-side from gs://; anything else the component calls must be about the object."""
    allowed = (f"/bigquery/v2/projects/{PROJECT}/jobs", f"/storage/v1/b/{BUCKET}/o/",
               f"/download/storage/v1/b/{BUCKET}/o/")
    for request in component[1]:
        assert request.path.startswith(allowed), (request.method, request.path)
