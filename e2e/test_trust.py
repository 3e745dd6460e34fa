"""Who may send events, and what an instance keeps, through the real `wasmtime serve`.

Every ``GCR_USAGE_TRIGGER_AUTH`` mode runs in a loader started by deploy/serve.sh (the
container's command line) against the suite's emulators, loading into a bucket and dataset of
this file's own. Tokens are made here: Cloud Run's verified form (``header.claims`` +
``.SIGNATURE_REMOVED_BY_GOOGLE``) and RS256 tokens signed with keys generated per run. Google's
key endpoint and the metadata server are small loopback HTTP servers in this process that count
what they are asked.

- ``none``: anyone's event loads.
- ``shared-secret``: the secret in the header or the query loads; a wrong or missing one is 401.
- ``cloud-run``: the verified token of an allowed account loads (caller logged); a token that
  still carries a signature is 401; a verified token of another invoker beside a self-signed
  ``Authorization`` naming the trigger's account (the forgery) is 403 and loads nothing.
- ``google-oidc``: a valid token loads; each broken claim is 401/403.
- Instance reuse (serve.sh's defaults against ``SERVE_MAX_INSTANCE_REUSE_COUNT=1``): Google's
  keys, the metadata server's token and the project id are fetched once per instance, so once
  for 20 sequential events when the instance is reused and 20 times when it is not; a flood of
  tokens naming unknown key ids refetches the keys at most once per 30 s. (Every request waits
  until the instance it follows is idle again: see IDLE_PAUSE.)

Every refusal is checked for its status, its reason, its log line, and for the credential being
in neither the answer nor the loader's log; each mode's refusals name one object, which the
mode's last test then loads (``loaded``, not ``duplicate``: the refusals created no job).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import events
import expected
import stack as stack_mod
from conftest import require_loader, watched
from stack import Stack, http_json

Json = dict[str, Any]

BUCKET = "trust-logs"
DATASET = "trust"
LOG = next(f for f in expected.log_files() if f.kind == "usage" and f.data_rows > 0)
LOG_BYTES = (stack_mod.LOGS_DIR / LOG.object).read_bytes()

TRIGGER_EMAIL = "gcr-usage-trigger@demo-project.iam.gserviceaccount.com"
OTHER_EMAIL = "other-invoker@demo-project.iam.gserviceaccount.com"  # may invoke, may not send events
AUDIENCE = "https://gcr-usage-e2e.a.run.app/"
SECRET = "e2e-shared-secret-5f0c9a7d31b2e4c8"
EVENTS = 20  # sequential events per cache measurement
FLOOD = 50  # tokens naming unknown key ids

REUSE_OFF = {"SERVE_MAX_INSTANCE_REUSE_COUNT": "1"}  # one instance per request (serve.sh setting)
HOUR = 3600
#: How long after an answer the next request is sent. `wasmtime serve` hands the answer over before
#: the guest call has returned and the instance is back in its pool; a request arriving in that gap
#: gets a second instance (with empty caches). Sent straight after the answer, about one request in
#: 300 did here; 10 ms later, none of 1,200. The events below are sequential *and* find the
#: instance idle, as events a second apart do.
IDLE_PAUSE = 0.025


# --- tokens ---------------------------------------------------------------------------------------


def b64url(data: bytes | Json) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**changes: Any) -> Json:
    """A Google ID token's claims for the trigger's account; a change to None drops the claim."""
    now = int(time.time())
    result = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "107e2e", "sub": "107e2e",
              "email": TRIGGER_EMAIL, "email_verified": True, "iat": now, "exp": now + 3600}
    result.update(changes)
    return {k: v for k, v in result.items() if v is not None}


def signed(key: rsa.RSAPrivateKey, payload: Json, kid: str, alg: str = "RS256") -> str:
    """A compact JWT signed RS256 (PKCS#1 v1.5, SHA-256), whatever ``alg`` the header claims."""
    signing_input = f"{b64url({'alg': alg, 'kid': kid, 'typ': 'JWT'})}.{b64url(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def verified_by_cloud_run(payload: Json, kid: str = "cloud-run-checked") -> str:
    """A token as Cloud Run forwards it after verifying it: the signature replaced."""
    return f"{b64url({'alg': 'RS256', 'kid': kid, 'typ': 'JWT'})}.{b64url(payload)}.SIGNATURE_REMOVED_BY_GOOGLE"


def bearer(token: str) -> str:
    return f"Bearer {token}"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> Json:
        """The public key as Google publishes its keys: n and e big-endian, base64url."""
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": b64url(big_endian(numbers.n)), "e": b64url(big_endian(numbers.e))}

    def token(self, payload: Json, alg: str = "RS256") -> str:
        return signed(self.private, payload, self.kid, alg)


def big_endian(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def new_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


# --- loopback servers that count ------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


class Recorder:
    """An HTTP server on 127.0.0.1 in a thread: answers every GET with ``answer(path, headers)``
    (headers lower-cased) and records (path, headers) of each, and when it came."""

    def __init__(self, answer: Callable[[str, Mapping[str, str]], Answer]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[float] = []  # time.monotonic() of each request
        times = self.times
        lock = threading.Lock()
        self._lock = lock
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    recorded.append((self.path, headers))
                    times.append(time.monotonic())
                status, extra, body = answer(self.path, headers)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p == path)

    def all(self) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return list(self.requests)

    def gaps(self) -> list[float]:
        """Seconds between successive requests."""
        with self._lock:
            return [b - a for a, b in itertools.pairwise(self.times)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def recorder(answer: Callable[[str, Mapping[str, str]], Answer]) -> Iterator[Recorder]:
    server = Recorder(answer)
    try:
        yield server
    finally:
        server.close()


CERTS = "/certs"


@contextlib.contextmanager
def google_keys(published: list[SigningKey]) -> Iterator[Recorder]:
    """Google's JWK endpoint, as https://www.googleapis.com/oauth2/v3/certs answers (max-age)."""
    body = json.dumps({"keys": [k.jwk() for k in published]}).encode()

    def answer(path: str, headers: Mapping[str, str]) -> Answer:
        if path != CERTS:
            return 404, {}, b"not found"
        return 200, {"Content-Type": "application/json; charset=UTF-8",
                     "Cache-Control": "public, max-age=3600, must-revalidate, no-transform"}, body

    with recorder(answer) as server:
        yield server


TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
PROJECT_PATH = "/computeMetadata/v1/project/project-id"
ACCESS_TOKEN = "ya29.e2e"


@contextlib.contextmanager
def metadata_server(project: str) -> Iterator[Recorder]:
    """The metadata server's token and project-id answers (403 without Metadata-Flavor: Google)."""
    def answer(path: str, headers: Mapping[str, str]) -> Answer:
        if headers.get("metadata-flavor") != "Google":
            return 403, {"Content-Type": "text/plain"}, b"Missing Metadata-Flavor:Google header.\n"
        if path == TOKEN_PATH:
            token = {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            return 200, {"Content-Type": "application/json", "Metadata-Flavor": "Google"}, json.dumps(token).encode()
        if path == PROJECT_PATH:
            return 200, {"Content-Type": "application/text", "Metadata-Flavor": "Google"}, project.encode()
        return 404, {"Content-Type": "text/plain"}, b"not found\n"

    with recorder(answer) as server:
        yield server


# --- the loaders ----------------------------------------------------------------------------------


@dataclass
class Loader:
    """A running loader, and the object this mode's refusals name (loaded by its last test)."""

    running: Stack
    refused: Json
    keys: Recorder | None = None
    answers: list[bytes] = field(default_factory=list)  # every answer body, for leak checks
    last_answer: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return self.running.loader_url

    def log_text(self) -> str:
        return self.running.children[0].log_path.read_text(errors="replace")

    def log_lines(self) -> list[Json]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def send(self, resource: Json, headers: Mapping[str, str] | None = None, *, shape: str = "cloudevent-binary",
             path: str = "/") -> tuple[int, Json]:
        """The object's event in ``shape``, with ``headers`` added, POSTed to ``path`` (at least
        IDLE_PAUSE after the previous answer)."""
        request = events.to_request(shape, events.make_event(shape, resource))
        time.sleep(max(0.0, self.last_answer + IDLE_PAUSE - time.monotonic()))
        answer = events.post(self.url, events.Request({**request.headers, **(headers or {})}, request.body), path=path)
        self.last_answer = time.monotonic()
        self.answers.append(answer.body)
        return answer.status, answer.json()


class Objects:
    """Fresh usage-log objects in the trust bucket: one per event that should load."""

    def __init__(self, trust: Stack) -> None:
        self.trust = trust
        self.seq = itertools.count()

    def fresh(self, tag: str) -> Json:
        name = f"{tag}_usage_2024_03_11_14_00_00_{next(self.seq):04x}_v0"
        return self.trust.upload(BUCKET, name, LOG_BYTES)


@pytest.fixture(scope="module")
def trust(emulators: Stack) -> Stack:
    require_loader()
    emulators.create_bucket(BUCKET)
    emulators.create_dataset(DATASET)
    return emulators


@pytest.fixture(scope="module")
def objects(trust: Stack) -> Objects:
    return Objects(trust)


@contextlib.contextmanager
def loader(trust: Stack, objects: Objects, name: str, overrides: Mapping[str, str],
           keys: Recorder | None = None) -> Iterator[Loader]:
    env = {"GCR_USAGE_BUCKETS": BUCKET, "GCR_USAGE_DATASET": DATASET, **overrides}
    with stack_mod.loader_only(trust.bigquery_url, trust.gcs_url, env, name=name) as running, watched(running):
        yield Loader(running, objects.fresh(f"{name}-refused"), keys)


def usage_rows(trust: Stack) -> int:
    status, _ = http_json("GET", f"{trust.bigquery_api}/datasets/{DATASET}/tables/usage")
    if status != 200:
        return 0  # no load yet
    return int(trust.query(f"SELECT COUNT(*) AS n FROM `{trust.project}.{DATASET}.usage`")[0]["n"])


# --- what every answer is checked for -------------------------------------------------------------


def assert_loaded(load: Loader, resource: Json, status: int, body: Json, caller: str | None) -> None:
    """A 200 `loaded` of exactly this object, and its log line (with `caller`, or none)."""
    assert (status, body.get("outcome")) == (200, "loaded"), body
    assert body["object"]["name"] == resource["name"] and body["rows"] == LOG.data_rows, body
    assert body["destination"] == f"{load.running.project}:{DATASET}.usage"
    line = next((line for line in load.log_lines() if line.get("jobId") == body["jobId"]), None)
    assert line is not None, f"no log line for {body['jobId']}"
    assert line.get("caller") == caller, line


def assert_refused(load: Loader, status: int, body: Json, expected_status: int, reason: str,
                   credentials: list[str]) -> None:
    """A 401/403 answer saying ``reason``, logged as such; no credential in answer or log."""
    error = {401: "unauthenticated", 403: "forbidden"}[expected_status]
    assert (status, body.get("error")) == (expected_status, error), body
    assert reason in body.get("reason", ""), body
    assert body.get("outcome") == "error" and not set(body) & {"jobId", "object", "destination"}, body
    line = load.log_lines()[-1]
    assert (line.get("httpStatus"), line.get("error"), line.get("reason")) == (expected_status, error, body["reason"])
    assert "caller" not in line, line
    text, answered = load.log_text(), b"".join(load.answers).decode(errors="replace")
    for credential in filter(None, credentials):
        assert credential not in text, "credential in the loader's log"
        assert credential not in answered, "credential in an answer"


def assert_refusals_loaded_nothing(trust: Stack, load: Loader, headers: Mapping[str, str] | None = None, *,
                                   shape: str = "cloudevent-binary", caller: str | None = None) -> None:
    """The object every refusal named loads now, as new: no refusal created its job."""
    before = usage_rows(trust)
    status, body = load.send(load.refused, headers, shape=shape)
    assert_loaded(load, load.refused, status, body, caller)
    assert usage_rows(trust) == before + LOG.data_rows


# --- none -----------------------------------------------------------------------------------------


def test_none_loads_anyones_event(trust: Stack, objects: Objects) -> None:
    with loader(trust, objects, "trust-none", {"GCR_USAGE_TRIGGER_AUTH": "none"}) as load:
        resource = objects.fresh("none")
        before = usage_rows(trust)
        status, body = load.send(resource, shape="cloudevent-structured")
        assert_loaded(load, resource, status, body, caller=None)
        assert usage_rows(trust) == before + LOG.data_rows


# --- shared-secret --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_loader(trust: Stack, objects: Objects) -> Iterator[Loader]:
    with loader(trust, objects, "trust-secret",
                {"GCR_USAGE_TRIGGER_AUTH": "shared-secret", "GCR_USAGE_TRIGGER_SECRET": SECRET}) as load:
        yield load


def test_shared_secret_in_the_header_loads(secret_loader: Loader, objects: Objects) -> None:
    resource = objects.fresh("secret-header")
    status, body = secret_loader.send(resource, {"X-Gcr-Usage-Token": SECRET}, shape="bare-object")
    assert_loaded(secret_loader, resource, status, body, caller=None)
    assert SECRET not in secret_loader.log_text() and SECRET.encode() not in secret_loader.answers[-1]


def test_shared_secret_in_the_query_loads(secret_loader: Loader, objects: Objects) -> None:
    resource = objects.fresh("secret-query")
    status, body = secret_loader.send(resource, path=f"/?token={SECRET}", shape="pubsub-push")
    assert_loaded(secret_loader, resource, status, body, caller=None)
    assert SECRET not in secret_loader.log_text() and SECRET.encode() not in secret_loader.answers[-1]


WRONG_SECRET = SECRET[:-4] + "0000"


@pytest.mark.parametrize(("headers", "path", "reason"), [
    ({}, "/", "no x-gcr-usage-token header or token query parameter"),
    ({"X-Gcr-Usage-Token": WRONG_SECRET}, "/", "the shared secret does not match"),
    ({}, f"/?token={WRONG_SECRET}", "the shared secret does not match"),
    ({"X-Gcr-Usage-Token": ""}, "/", "the shared secret does not match"),
    ({"Authorization": bearer(SECRET)}, "/", "no x-gcr-usage-token header"),  # the secret, in the wrong place
    ({}, f"/?secret={SECRET}", "no x-gcr-usage-token header"),
], ids=["missing", "wrong-header", "wrong-query", "empty-header", "as-bearer-token", "other-parameter"])
def test_shared_secret_refusals_are_401(secret_loader: Loader, headers: dict[str, str], path: str,
                                        reason: str) -> None:
    status, body = secret_loader.send(secret_loader.refused, headers, path=path, shape="bare-object")
    assert_refused(secret_loader, status, body, 401, reason, [SECRET, WRONG_SECRET])


def test_shared_secret_refusals_loaded_nothing(trust: Stack, secret_loader: Loader) -> None:
    assert_refusals_loaded_nothing(trust, secret_loader, {"X-Gcr-Usage-Token": SECRET}, shape="bare-object")
    assert SECRET not in secret_loader.log_text()


# --- cloud-run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_made_key() -> SigningKey:
    """Anyone's RSA key: a self-made token is properly signed, just not by Google."""
    return new_key("self-made")


@pytest.fixture(scope="module")
def cloud_run_loader(trust: Stack, objects: Objects) -> Iterator[Loader]:
    with loader(trust, objects, "trust-cloud-run",
                {"GCR_USAGE_TRIGGER_AUTH": "cloud-run", "GCR_USAGE_TRIGGER_EMAILS": TRIGGER_EMAIL}) as load:
        yield load


@pytest.mark.parametrize("header", ["X-Serverless-Authorization", "Authorization"])
def test_cloud_run_verified_token_of_the_trigger_loads(cloud_run_loader: Loader, objects: Objects, header: str) -> None:
    resource = objects.fresh("cloud-run")
    status, body = cloud_run_loader.send(resource, {header: bearer(verified_by_cloud_run(claims()))})
    assert_loaded(cloud_run_loader, resource, status, body, caller=TRIGGER_EMAIL)


def test_cloud_run_both_headers_naming_the_trigger_load(cloud_run_loader: Loader, objects: Objects) -> None:
    resource = objects.fresh("cloud-run-both")
    token = bearer(verified_by_cloud_run(claims()))
    status, body = cloud_run_loader.send(resource, {"X-Serverless-Authorization": token, "Authorization": token})
    assert_loaded(cloud_run_loader, resource, status, body, caller=TRIGGER_EMAIL)


def test_cloud_run_forged_authorization_beside_another_invoker_is_403(
        trust: Stack, cloud_run_loader: Loader, self_made_key: SigningKey) -> None:
    """The attack: a permitted invoker's token (verified by Cloud Run, in X-Serverless-Authorization)
    and, in Authorization, a self-made RS256 token claiming to be the trigger's account."""
    before = usage_rows(trust)
    forged = self_made_key.token(claims())
    headers = {"X-Serverless-Authorization": bearer(verified_by_cloud_run(claims(email=OTHER_EMAIL))),
               "Authorization": bearer(forged)}
    status, body = cloud_run_loader.send(cloud_run_loader.refused, headers)
    assert_refused(cloud_run_loader, status, body, 403,
                   "Authorization and X-Serverless-Authorization name different callers", [forged])
    assert usage_rows(trust) == before


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("signed-authorization", 401, "the Authorization token still carries a signature, so Cloud Run did not verify it"),
    ("signed-serverless", 401, "the X-Serverless-Authorization token still carries a signature"),
    ("other-invoker", 403, f"{OTHER_EMAIL} is not in GCR_USAGE_TRIGGER_EMAILS"),
    ("no-email", 403, "the token carries no email claim"),
    ("unreadable-authorization-beside", 401, "the Authorization header beside X-Serverless-Authorization"),
    ("not-bearer", 401, "the Authorization header is not a Bearer token"),
    ("none", 401, "no Authorization or X-Serverless-Authorization: Bearer token"),
])
def test_cloud_run_refusals(cloud_run_loader: Loader, self_made_key: SigningKey, case: str, status: int,
                            reason: str) -> None:
    signed_token = self_made_key.token(claims())
    verified = verified_by_cloud_run(claims())
    headers = {
        "signed-authorization": {"Authorization": bearer(signed_token)},
        "signed-serverless": {"X-Serverless-Authorization": bearer(signed_token)},
        "other-invoker": {"X-Serverless-Authorization": bearer(verified_by_cloud_run(claims(email=OTHER_EMAIL)))},
        "no-email": {"Authorization": bearer(verified_by_cloud_run(claims(email=None)))},
        "unreadable-authorization-beside": {"X-Serverless-Authorization": bearer(verified),
                                            "Authorization": "Bearer not-a-jwt"},
        "not-bearer": {"Authorization": f"Basic {base64.b64encode(b'trigger:pw').decode()}"},
        "none": {},
    }[case]
    answer_status, body = cloud_run_loader.send(cloud_run_loader.refused, headers)
    assert_refused(cloud_run_loader, answer_status, body, status, reason, [signed_token, verified])


def test_cloud_run_refusals_loaded_nothing(trust: Stack, cloud_run_loader: Loader) -> None:
    assert_refusals_loaded_nothing(trust, cloud_run_loader,
                                   {"X-Serverless-Authorization": bearer(verified_by_cloud_run(claims()))},
                                   caller=TRIGGER_EMAIL)


# --- google-oidc ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return new_key("e2e-google-1")


@pytest.fixture(scope="module")
def published(google_key: SigningKey) -> list[SigningKey]:
    """What the key endpoint serves: the signing key and a second one (Google publishes two or three)."""
    return [google_key, new_key("e2e-google-2")]


def oidc_env(keys: Recorder) -> dict[str, str]:
    return {"GCR_USAGE_TRIGGER_AUTH": "google-oidc", "GCR_USAGE_TRIGGER_AUDIENCE": AUDIENCE,
            "GCR_USAGE_TRIGGER_EMAILS": TRIGGER_EMAIL, "GCR_USAGE_OIDC_JWKS_URL": f"http://{keys.host}{CERTS}"}


@contextlib.contextmanager
def oidc_loader_with_keys(trust: Stack, objects: Objects, published: list[SigningKey], name: str,
                          serve: Mapping[str, str] | None = None) -> Iterator[Loader]:
    """A google-oidc loader with a key endpoint of its own (so the endpoint counts its fetches)."""
    with google_keys(published) as keys, \
            loader(trust, objects, name, {**oidc_env(keys), **(serve or {})}, keys) as load:
        yield load


@pytest.fixture(scope="module")
def oidc_loader(trust: Stack, objects: Objects, published: list[SigningKey]) -> Iterator[Loader]:
    with oidc_loader_with_keys(trust, objects, published, "trust-oidc") as load:
        yield load


def pubsub_auth(token: str) -> dict[str, str]:
    return {"Authorization": bearer(token)}



def test_oidc_valid_token_loads(oidc_loader: Loader, objects: Objects, google_key: SigningKey) -> None:
    resource = objects.fresh("oidc")
    status, body = oidc_loader.send(resource, pubsub_auth(google_key.token(claims())), shape="pubsub-push")
    assert_loaded(oidc_loader, resource, status, body, caller=TRIGGER_EMAIL)
    assert oidc_loader.keys is not None
    assert [path for path, _ in oidc_loader.keys.all()] == [CERTS], "the keys, fetched once"


def test_oidc_issuer_without_scheme_loads(oidc_loader: Loader, objects: Objects, google_key: SigningKey) -> None:
    resource = objects.fresh("oidc-iss")
    token = google_key.token(claims(iss="accounts.google.com"))
    status, body = oidc_loader.send(resource, pubsub_auth(token), shape="pubsub-push")
    assert_loaded(oidc_loader, resource, status, body, caller=TRIGGER_EMAIL)


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("forged-signature", 401, "the token is not Google's: the signature does not verify"),
    ("wrong-audience", 401, "the token's audience is not GCR_USAGE_TRIGGER_AUDIENCE"),
    ("wrong-issuer", 401, "the token's issuer is not accounts.google.com"),
    ("expired", 401, "the token has expired"),
    ("no-expiry", 401, "the token has no expiry"),
    ("issued-in-the-future", 401, "the token was issued in the future"),
    ("not-yet-valid", 401, "the token is not valid yet (nbf)"),
    ("unknown-kid", 401, "the token's key id is not among Google's signing keys"),
    ("hs256", 401, "the token is not signed with RS256"),
    ("unsigned-cloud-run-form", 401, "the token is not Google's"),
    ("no-token", 401, "no Authorization: Bearer token"),
    ("other-account", 403, f"{OTHER_EMAIL} is not in GCR_USAGE_TRIGGER_EMAILS"),
    ("unverified-email", 403, f"the email {TRIGGER_EMAIL} is not verified"),
])
def test_oidc_refusals(oidc_loader: Loader, google_key: SigningKey, self_made_key: SigningKey, case: str,
                       status: int, reason: str) -> None:
    now = int(time.time())
    impostor = SigningKey(google_key.kid, self_made_key.private)  # Google's kid, someone else's key
    token = {
        "forged-signature": lambda: impostor.token(claims()),
        "wrong-audience": lambda: google_key.token(claims(aud="https://elsewhere.a.run.app/")),
        "wrong-issuer": lambda: google_key.token(claims(iss="https://issuer.example")),
        "expired": lambda: google_key.token(claims(iat=now - 2 * HOUR, exp=now - HOUR)),
        "no-expiry": lambda: google_key.token(claims(exp=None)),
        "issued-in-the-future": lambda: google_key.token(claims(iat=now + HOUR, exp=now + 2 * HOUR)),
        "not-yet-valid": lambda: google_key.token(claims(nbf=now + HOUR)),
        "unknown-kid": lambda: SigningKey("e2e-retired-or-made-up", google_key.private).token(claims()),
        "hs256": lambda: google_key.token(claims(), alg="HS256"),
        "unsigned-cloud-run-form": lambda: verified_by_cloud_run(claims(), kid=google_key.kid),
        "no-token": lambda: "",
        "other-account": lambda: google_key.token(claims(email=OTHER_EMAIL)),
        "unverified-email": lambda: google_key.token(claims(email_verified=False)),
    }[case]()
    headers = pubsub_auth(token) if token else {}
    answer_status, body = oidc_loader.send(oidc_loader.refused, headers, shape="pubsub-push")
    assert_refused(oidc_loader, answer_status, body, status, reason, [token])


def test_oidc_refusals_loaded_nothing(trust: Stack, oidc_loader: Loader, google_key: SigningKey) -> None:
    assert_refusals_loaded_nothing(trust, oidc_loader, pubsub_auth(google_key.token(claims())), shape="pubsub-push",
                                   caller=TRIGGER_EMAIL)


# --- instance reuse: Google's keys ----------------------------------------------------------------


def send_valid_events(load: Loader, objects: Objects, key: SigningKey, count: int, tag: str) -> None:
    """``count`` events one after another, each a fresh object that must load."""
    for _ in range(count):
        resource = objects.fresh(tag)
        status, body = load.send(resource, pubsub_auth(key.token(claims())), shape="pubsub-push")
        assert_loaded(load, resource, status, body, caller=TRIGGER_EMAIL)


@pytest.fixture(scope="module")
def reused_oidc_loader(trust: Stack, objects: Objects, published: list[SigningKey]) -> Iterator[Loader]:
    """serve.sh's default reuse settings; its key endpoint saw nothing before the tests below."""
    with oidc_loader_with_keys(trust, objects, published, "trust-oidc-reused") as load:
        yield load


def test_oidc_keys_fetched_once_for_events_on_a_reused_instance(
        reused_oidc_loader: Loader, objects: Objects, google_key: SigningKey) -> None:
    assert reused_oidc_loader.keys is not None
    send_valid_events(reused_oidc_loader, objects, google_key, EVENTS, "oidc-reused")
    print(f"JWK set GETs for {EVENTS} events, instance reused: {reused_oidc_loader.keys.count(CERTS)}")
    assert reused_oidc_loader.keys.count(CERTS) == 1, f"s between GETs: {reused_oidc_loader.keys.gaps()}"


def test_oidc_keys_fetched_per_event_without_reuse(trust: Stack, objects: Objects, published: list[SigningKey],
                                                   google_key: SigningKey) -> None:
    with oidc_loader_with_keys(trust, objects, published, "trust-oidc-no-reuse", REUSE_OFF) as load:
        assert load.keys is not None
        send_valid_events(load, objects, google_key, EVENTS, "oidc-no-reuse")
        print(f"JWK set GETs for {EVENTS} events, one instance per request: {load.keys.count(CERTS)}")
        assert load.keys.count(CERTS) == EVENTS


def test_oidc_unknown_kid_flood_is_rate_limited(reused_oidc_loader: Loader, objects: Objects,
                                                google_key: SigningKey) -> None:
    """Tokens naming made-up key ids, as fast as they come: at most one refetch per 30 s, each
    answered 401; the keys held still verify Google's tokens afterwards."""
    keys = reused_oidc_loader.keys
    assert keys is not None
    send_valid_events(reused_oidc_loader, objects, google_key, 1, "oidc-flood")  # keys held (fetched at most now)
    first = keys.count(CERTS)
    assert first == 1
    kids = random.Random(FLOOD)
    started = time.monotonic()
    for _ in range(FLOOD):
        made_up = SigningKey(f"{kids.getrandbits(64):016x}", google_key.private)
        status, body = reused_oidc_loader.send(reused_oidc_loader.refused, pubsub_auth(made_up.token(claims())),
                                               shape="pubsub-push")
        assert (status, body.get("reason")) == (401, "the token's key id is not among Google's signing keys"), body
    elapsed = time.monotonic() - started
    print(f"JWK set GETs beyond the first during {FLOOD} unknown-kid tokens ({elapsed:.1f} s): "
          f"{keys.count(CERTS) - first}; seconds between GETs: {[round(g, 1) for g in keys.gaps()]}")
    # One instance refetches at most once per 30 s; 2 leaves room for a slow run past 30 s (or a
    # second instance, see IDLE_PAUSE). Without the limit it would be FLOOD.
    assert keys.count(CERTS) - first <= 2
    send_valid_events(reused_oidc_loader, objects, google_key, 1, "oidc-after-flood")


# --- instance reuse: the metadata server's token and project id -----------------------------------


@pytest.fixture(scope="module")
def bigquery_takes_bearer_tokens(trust: Stack) -> None:
    """local-bigquery must take the loader's `Authorization: Bearer ya29.e2e` (it ignores it)."""
    request = urllib.request.Request(f"{trust.bigquery_api}/datasets/{DATASET}",
                                     headers={"Authorization": bearer(ACCESS_TOKEN)})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as err:
        status = err.code
    if status != 200:
        pytest.skip(f"local-bigquery answers {status} to a request with a bearer token")


@pytest.mark.usefixtures("bigquery_takes_bearer_tokens")
@pytest.mark.parametrize(("serve", "fetches"), [({}, 1), (REUSE_OFF, EVENTS)], ids=["reused", "no-reuse"])
def test_metadata_token_and_project_fetched_once_per_instance(trust: Stack, objects: Objects,
                                                              serve: dict[str, str], fetches: int) -> None:
    """GCR_USAGE_AUTH=metadata without GCR_USAGE_PROJECT: token and project id from the metadata
    server. (Behind a shared secret, so a refused event shows it asks the metadata server nothing.)"""
    tag = "metadata-" + ("no-reuse" if serve else "reused")
    env = {"GCR_USAGE_AUTH": "metadata", "GCR_USAGE_PROJECT": "", "GCR_USAGE_TRIGGER_AUTH": "shared-secret",
           "GCR_USAGE_TRIGGER_SECRET": SECRET, **serve}
    with metadata_server(trust.project) as metadata, \
            loader(trust, objects, f"trust-{tag}", {**env, "GCE_METADATA_HOST": metadata.host}) as load:
        status, body = load.send(load.refused)
        assert_refused(load, status, body, 401, "no x-gcr-usage-token header", [SECRET])
        assert metadata.all() == [], "a refused event made an outbound request"
        for _ in range(EVENTS):
            resource = objects.fresh(tag)
            status, body = load.send(resource, {"X-Gcr-Usage-Token": SECRET})
            assert_loaded(load, resource, status, body, caller=None)
        asked = metadata.all()
        print(f"metadata requests for {EVENTS} events ({tag}): token {metadata.count(TOKEN_PATH)}, "
              f"project id {metadata.count(PROJECT_PATH)}")
        assert (metadata.count(TOKEN_PATH), metadata.count(PROJECT_PATH)) == (fetches, fetches), metadata.gaps()
        assert len(asked) == 2 * fetches, [path for path, _ in asked]
        assert all(headers.get("metadata-flavor") == "Google" for _, headers in asked)
