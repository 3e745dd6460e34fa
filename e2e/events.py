"""Event shapes that deliver a "new log object" to the loader, and a tiny HTTP sender.

The files in fixtures/events/ are the reference for each shape. ``retarget`` keeps a fixture as
it is and swaps in the object resource an emulator really holds (its generation differs from the
fixture's); ``make_event`` builds the same shape for any object.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "fixtures" / "events"

# shape name -> fixture file
SHAPES: dict[str, str] = {
    "cloudevent-binary": "cloudevent-binary.json",
    "cloudevent-structured": "cloudevent-structured.json",
    "pubsub-push": "pubsub-push.json",
    "legacy-background": "legacy-background.json",
    "bare-object": "bare-object.json",
}

FINALIZED = "google.cloud.storage.object.v1.finalized"

Json = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """An HTTP request to POST to the loader."""

    headers: dict[str, str]
    body: bytes


def load_fixture(shape: str) -> Json:
    return json.loads((EVENTS_DIR / SHAPES[shape]).read_text())


def fixture_object(shape: str) -> Json:
    """The object resource a fixture event carries."""
    return object_of(shape, load_fixture(shape))


def object_of(shape: str, event: Json) -> Json:
    if shape == "cloudevent-binary":
        return event["body"]
    if shape == "cloudevent-structured":
        return event["data"]
    if shape == "pubsub-push":
        return json.loads(base64.b64decode(event["message"]["data"]))
    if shape == "legacy-background":
        return event["data"]
    if shape == "bare-object":
        return event
    raise KeyError(shape)


def retarget(shape: str, event: Json, resource: Json) -> Json:
    """The fixture event with its object resource replaced (same bucket and name expected)."""
    event = copy.deepcopy(event)
    if shape == "cloudevent-binary":
        event["body"] = resource
    elif shape == "cloudevent-structured":
        event["data"] = resource
    elif shape == "pubsub-push":
        event["message"]["data"] = _b64json(resource)
        event["message"]["attributes"]["objectGeneration"] = str(resource.get("generation", ""))
    elif shape == "legacy-background":
        event["data"] = resource
    elif shape == "bare-object":
        event = resource
    else:
        raise KeyError(shape)
    return event


def make_event(shape: str, resource: Json, event_id: str | None = None) -> Json:
    """The fixture's shape, rewritten for an arbitrary object resource."""
    event_id = event_id or str(uuid.uuid4().int)[:17]
    bucket, name = resource["bucket"], resource["name"]
    event = retarget(shape, load_fixture(shape), resource)
    if shape == "cloudevent-binary":
        headers = event["headers"]
        headers["ce-id"] = event_id
        headers["ce-source"] = f"//storage.googleapis.com/projects/_/buckets/{bucket}"
        headers["ce-subject"] = f"objects/{name}"
        headers["ce-bucket"] = bucket
    elif shape == "cloudevent-structured":
        event["id"] = event_id
        event["source"] = f"//storage.googleapis.com/projects/_/buckets/{bucket}"
        event["subject"] = f"objects/{name}"
    elif shape == "pubsub-push":
        message = event["message"]
        message["messageId"] = message["message_id"] = event_id
        message["attributes"]["bucketId"] = bucket
        message["attributes"]["objectId"] = name
        message["attributes"]["notificationConfig"] = f"projects/_/buckets/{bucket}/notificationConfigs/1"
    elif shape == "legacy-background":
        event["context"]["eventId"] = event_id
        event["context"]["resource"]["name"] = f"projects/_/buckets/{bucket}/objects/{name}"
    return event


def to_request(shape: str, event: Json) -> Request:
    """How the event travels over HTTP."""
    if shape == "cloudevent-binary":
        return Request(dict(event["headers"]), json.dumps(event["body"]).encode())
    content_type = "application/cloudevents+json" if shape == "cloudevent-structured" else "application/json"
    return Request({"content-type": content_type}, json.dumps(event).encode())


def _b64json(value: Json) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Json:
        return json.loads(self.body)


def post(base_url: str, request: Request, path: str = "/", timeout: float = 120.0) -> Response:
    """POST without any retry: a redelivery must be a deliberate second call."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        return Response(response.status, response.read())
    finally:
        conn.close()


def get(base_url: str, path: str, timeout: float = 10.0) -> Response:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return Response(response.status, response.read())
    finally:
        conn.close()


def deliver(base_url: str, shape: str, event: Json) -> Response:
    return post(base_url, to_request(shape, event))
